"""Ground truth of a benchmark scene from the posed meshes, the cameras and the occluders.

numpy only. Everything a frame's masks say is derived from one z-buffer per frame
(masks.py), so the masks, the visible boxes and the visible fractions agree exactly:

- `labels` (F, H, W) uint8: 0 background (or an occluder), i + 1 where person i is nearest;
- `visible_fraction`: person i's label pixels over the pixels its silhouette would cover if
  it stood alone in front of an unbounded image (so leaving the frame lowers it too);
- `box_visible_xyxy`: the pixel-edge box of those label pixels, NaN when there are none;
- `in_frame`: the person's lone silhouette covers at least one image pixel;
- `box_full_xyxy`: the box of all its projected vertices cut to the image, NaN when not
  `in_frame`.
"""

from collections.abc import Callable, Sequence

import numpy as np

from .camera import PinholeCamera, project
from .masks import Window, bounding_window, box_mesh, nearest_labels, paste, rasterize_depth


def scene_ground_truth(
    vertices_world: np.ndarray,
    joints_world: np.ndarray,
    faces: np.ndarray,
    cameras: Sequence[PinholeCamera],
    occluders: Sequence[tuple[Sequence[float], Sequence[float]]],
    fps: int,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The GT arrays of scene_format.md and the label images.

    vertices_world (F, P, V, 3), joints_world (F, P, 24, 3), faces (T, 3), one camera per
    frame (all with the same intrinsics and size), occluders as (center_m, size_m) boxes.
    Returns (gt, labels (F, H, W) uint8).
    """
    frame_count, person_count = vertices_world.shape[:2]
    if len(cameras) != frame_count:
        raise ValueError(f"{len(cameras)} cameras for {frame_count} frames")
    width, height = cameras[0].width_px, cameras[0].height_px
    K = cameras[0].intrinsics()
    if any(not np.array_equal(camera.intrinsics(), K) for camera in cameras):
        raise ValueError("every frame's camera must share the intrinsics")
    boxes = [box_mesh(center, size) for center, size in occluders]

    rotations = np.empty((frame_count, 3, 3))
    translations = np.empty((frame_count, 3))
    labels = np.zeros((frame_count, height, width), dtype=np.uint8)
    fraction = np.zeros((frame_count, person_count))
    in_frame = np.zeros((frame_count, person_count), dtype=bool)
    box_full = np.full((frame_count, person_count, 4), np.nan)
    box_visible = np.full((frame_count, person_count, 4), np.nan)
    image = Window(0, 0, width, height)
    for frame, camera in enumerate(cameras):
        R, t = camera.world_to_camera()
        rotations[frame], translations[frame] = R, t
        occluder_depth = np.full((height, width), np.inf)
        for vertices, box_faces in boxes:
            points_cam = vertices @ R.T + t
            depth = rasterize_depth(project(points_cam, K), points_cam[:, 2], box_faces, image)
            occluder_depth = np.minimum(occluder_depth, depth)
        person_depth = np.full((person_count, height, width), np.inf)
        silhouette_px = np.zeros(person_count)
        for p in range(person_count):
            points_cam = vertices_world[frame, p].astype(np.float64) @ R.T + t
            if points_cam[:, 2].min() <= 0.0:
                raise ValueError(f"person {p + 1} reaches behind the camera in frame {frame}")
            pixels = project(points_cam, K)
            window = bounding_window(pixels)
            if not _overlaps(window, width, height):
                continue
            alone = rasterize_depth(pixels, points_cam[:, 2], faces, window)
            silhouette_px[p] = np.isfinite(alone).sum()
            person_depth[p] = paste(alone, window, width, height)
            if np.isfinite(person_depth[p]).any():
                in_frame[frame, p] = True
                low, high = pixels.min(axis=0), pixels.max(axis=0)
                box_full[frame, p] = [
                    max(low[0], 0.0),
                    max(low[1], 0.0),
                    min(high[0], width),
                    min(high[1], height),
                ]
        labels[frame] = nearest_labels(person_depth, occluder_depth)
        for p in range(person_count):
            rows, columns = np.nonzero(labels[frame] == p + 1)
            if rows.size:
                fraction[frame, p] = rows.size / silhouette_px[p]
                box_visible[frame, p] = [
                    columns.min(),
                    rows.min(),
                    columns.max() + 1,
                    rows.max() + 1,
                ]
        if on_frame is not None:
            on_frame(frame)

    joints = joints_world.astype(np.float64)
    joints_cam = np.einsum("fij,fpkj->fpki", rotations, joints) + translations[:, None, None]
    gt = {
        "fps": np.int32(fps),
        "width": np.int32(width),
        "height": np.int32(height),
        "K": K.astype(np.float32),
        "R_world_to_cam": rotations.astype(np.float32),
        "t_world_to_cam": translations.astype(np.float32),
        "person_ids": np.arange(1, person_count + 1, dtype=np.int32),
        "box_full_xyxy": box_full.astype(np.float32),
        "box_visible_xyxy": box_visible.astype(np.float32),
        "visible_fraction": fraction.astype(np.float32),
        "in_frame": in_frame,
        "joints_world": joints.astype(np.float32),
        "joints_cam": joints_cam.astype(np.float32),
    }
    return gt, labels


def _overlaps(window: Window, width: int, height: int) -> bool:
    return (
        window.x0 < width
        and window.y0 < height
        and window.x0 + window.width > 0
        and window.y0 + window.height > 0
    )
