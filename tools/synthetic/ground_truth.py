"""Ground truth of a rendered clip from posed vertices and the camera (numpy only).

Visibility comes from a z-buffer per person, filled with points sampled densely over the
mesh's triangles (so a body's surface has no holes, even where its vertices lie several
pixels apart): a vertex counts as visible when it falls inside the image and no other
person's surface lies in front of it at its pixel. Self-occlusion does not count (a person
seen from the side is fully visible).
"""

import numpy as np

# Triangles are sampled on a barycentric grid fine enough that neighbouring samples land
# less than this many pixels apart; each sample also fills the pixels around it.
SAMPLE_SPACING_PX = 1.5
MAX_SUBDIVISIONS = 6
SPLAT_RADIUS_PX = 1
# Depth slack (metres) so a person's own surface never counts as hiding it.
DEPTH_TOLERANCE_M = 0.05


def world_to_camera_points(points_world: np.ndarray, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(..., 3) world points -> (..., 3) OpenCV camera points."""
    return points_world @ R.T + t


def full_boxes(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(T, P, V, 2) vertex pixels -> (T, P, 4) xyxy boxes of all vertices, clipped."""
    low = pixels.min(axis=2)
    high = pixels.max(axis=2)
    box = np.concatenate([low, high], axis=-1)
    box[..., [0, 2]] = box[..., [0, 2]].clip(0.0, width)
    box[..., [1, 3]] = box[..., [1, 3]].clip(0.0, height)
    return box


def _depth_map(pixel_xy: np.ndarray, depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest depth per pixel (H, W) from points (N, 2) splatted in a small square."""
    zbuffer = np.full(height * width, np.inf)
    base_x = np.floor(pixel_xy[:, 0]).astype(np.int64)
    base_y = np.floor(pixel_xy[:, 1]).astype(np.int64)
    for dy in range(-SPLAT_RADIUS_PX, SPLAT_RADIUS_PX + 1):
        for dx in range(-SPLAT_RADIUS_PX, SPLAT_RADIUS_PX + 1):
            x, y = base_x + dx, base_y + dy
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height) & (depth > 0)
            np.minimum.at(zbuffer, y[inside] * width + x[inside], depth[inside])
    return zbuffer.reshape(height, width)


def surface_samples(pixel_xy: np.ndarray, depth: np.ndarray, faces: np.ndarray):
    """Points spread over every triangle: (V, 2), (V,), (F, 3) -> (N, 2), (N,).

    Depth is interpolated linearly in screen space, which is exact enough for triangles a
    few pixels wide.
    """
    corners_xy = pixel_xy[faces]  # (F, 3, 2)
    edges = np.linalg.norm(corners_xy - np.roll(corners_xy, 1, axis=1), axis=-1)
    longest = np.nanmax(edges) if edges.size else 0.0
    n = int(np.clip(np.ceil(longest / SAMPLE_SPACING_PX), 1, MAX_SUBDIVISIONS))
    grid = (
        np.array(
            [(i, j, n - i - j) for i in range(n + 1) for j in range(n + 1 - i)], dtype=np.float64
        )
        / n
    )  # (S, 3) barycentric weights
    samples_xy = np.einsum("sk,fkc->fsc", grid, corners_xy).reshape(-1, 2)
    samples_z = (depth[faces] @ grid.T).reshape(-1)
    return samples_xy, samples_z


def visibility(pixels: np.ndarray, depths: np.ndarray, faces: np.ndarray, width: int, height: int):
    """Per-frame occlusion between people.

    pixels (T, P, V, 2), depths (T, P, V) camera z in metres, faces (F, 3) shared by all
    people. Returns visible_fraction (T, P) and box_visible_xyxy (T, P, 4), NaN where
    nothing of a person is visible.
    """
    frame_count, person_count = depths.shape[:2]
    fraction = np.zeros((frame_count, person_count))
    box = np.full((frame_count, person_count, 4), np.nan)
    for frame in range(frame_count):
        maps = [
            _depth_map(*surface_samples(pixels[frame, p], depths[frame, p], faces), width, height)
            for p in range(person_count)
        ]
        for p in range(person_count):
            xy, z = pixels[frame, p], depths[frame, p]
            px = np.floor(xy[:, 0]).astype(np.int64)
            py = np.floor(xy[:, 1]).astype(np.int64)
            inside = (px >= 0) & (px < width) & (py >= 0) & (py < height) & (z > 0)
            others = [maps[q] for q in range(person_count) if q != p]
            nearest_other = np.min(others, axis=0) if others else np.full((height, width), np.inf)
            front = np.full(len(z), np.inf)
            front[inside] = nearest_other[py[inside], px[inside]]
            visible = inside & (z <= front + DEPTH_TOLERANCE_M)
            fraction[frame, p] = visible.mean()
            if visible.any():
                seen = xy[visible]
                box[frame, p] = [
                    max(seen[:, 0].min(), 0.0),
                    max(seen[:, 1].min(), 0.0),
                    min(seen[:, 0].max(), width),
                    min(seen[:, 1].max(), height),
                ]
    return fraction, box
