"""Instance masks by z-buffer rasterisation of the posed meshes (numpy only).

A pixel belongs to the person whose surface is nearest the camera at the pixel's centre,
unless an occluder (a pillar) or nothing is nearer; a pixel's centre is inside a
triangle when all three edge functions agree in sign (edges count as inside), and the depth
there is interpolated perspective-correctly (1/z is linear in screen space). The image
pixel (x, y) spans [x, x+1) × [y, y+1), so its centre is (x + 0.5, y + 0.5) in the
coordinates `K` projects to; that is also where Blender samples its pixels.
"""

from dataclasses import dataclass

import numpy as np

# Triangles with a vertex nearer than this (metres) are left out: nothing in the scenes
# comes this close to the camera, and a triangle crossing the camera plane has no
# meaningful projection.
NEAR_M = 0.1
# Candidate pixels tested at once; bounds the memory of one batch to some tens of MB.
BATCH_CANDIDATES = 1 << 21


@dataclass(frozen=True)
class Window:
    """A rectangle of whole pixels: columns x0 .. x0+width-1, rows y0 .. y0+height-1."""

    x0: int
    y0: int
    width: int
    height: int


def box_mesh(center_m, size_m) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned box: vertices (8, 3) and outward-agnostic triangles (12, 3)."""
    corners = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    vertices = np.asarray(center_m, dtype=np.float64) + corners * np.asarray(size_m)
    # Corner index = 4*ix + 2*iy + iz; two triangles per face.
    quads = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    faces = np.array([tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))])
    return vertices, faces.astype(np.int64)


def rasterize_depth(
    pixel_xy: np.ndarray, depth_m: np.ndarray, faces: np.ndarray, window: Window
) -> np.ndarray:
    """Nearest surface depth per pixel of `window`: (V, 2), (V,), (F, 3) -> (h, w), inf = empty.

    `pixel_xy` are the projected vertices, `depth_m` their camera-frame z.
    """
    zbuffer = np.full(window.height * window.width, np.inf)
    corners_xy = pixel_xy[faces]  # (F, 3, 2)
    corners_z = depth_m[faces]  # (F, 3)
    # Pixel columns/rows whose centres can fall inside each triangle, cut to the window.
    low = np.ceil(corners_xy.min(axis=1) - 0.5)
    high = np.floor(corners_xy.max(axis=1) - 0.5)
    low = np.maximum(low, [window.x0, window.y0])
    high = np.minimum(high, [window.x0 + window.width - 1, window.y0 + window.height - 1])
    span = (high - low + 1).astype(np.int64)  # (F, 2)
    a, b, c = corners_xy[:, 0], corners_xy[:, 1], corners_xy[:, 2]
    area = _edge(a, b, c)
    keep = (corners_z > NEAR_M).all(axis=1) & (span > 0).all(axis=1) & (area != 0.0)
    if not keep.any():
        return zbuffer.reshape(window.height, window.width)

    # Triangles are grouped by the power of two that covers their span on each axis, so one
    # vectorised pass tests every candidate pixel of every triangle in the group.
    size_class = np.ceil(np.log2(np.maximum(span, 1))).astype(np.int64)
    kept = np.flatnonzero(keep)
    classes = np.unique(size_class[kept], axis=0)
    for class_x, class_y in classes:
        in_class = kept[(size_class[kept, 0] == class_x) & (size_class[kept, 1] == class_y)]
        grid_x, grid_y = 1 << int(class_x), 1 << int(class_y)
        offset_x = np.tile(np.arange(grid_x), grid_y)  # (S,)
        offset_y = np.repeat(np.arange(grid_y), grid_x)
        batch = max(1, BATCH_CANDIDATES // (grid_x * grid_y))
        for start in range(0, len(in_class), batch):
            tri = in_class[start : start + batch]
            _splat_triangles(
                zbuffer, window, tri, low, span, a, b, c, area, corners_z, offset_x, offset_y
            )
    return zbuffer.reshape(window.height, window.width)


def _edge(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Twice the signed area of (p, q, r), over the last axis of (..., 2) points."""
    return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (
        r[..., 0] - p[..., 0]
    )


def _splat_triangles(zbuffer, window, tri, low, span, a, b, c, area, corners_z, dx, dy) -> None:
    """Writes the nearest depth of triangles `tri` into `zbuffer` over candidate offsets."""
    column = low[tri, 0, None] + dx[None]  # (N, S)
    row = low[tri, 1, None] + dy[None]
    candidate = (dx[None] < span[tri, 0, None]) & (dy[None] < span[tri, 1, None])
    centre = np.stack([column + 0.5, row + 0.5], axis=-1)  # (N, S, 2)
    w_a = _edge(b[tri, None], c[tri, None], centre) / area[tri, None]
    w_b = _edge(c[tri, None], a[tri, None], centre) / area[tri, None]
    w_c = 1.0 - w_a - w_b
    inside = candidate & (w_a >= 0.0) & (w_b >= 0.0) & (w_c >= 0.0)
    inverse_z = 1.0 / corners_z[tri]  # (N, 3)
    depth = 1.0 / (
        w_a * inverse_z[:, 0, None] + w_b * inverse_z[:, 1, None] + w_c * inverse_z[:, 2, None]
    )
    flat = (row[inside] - window.y0).astype(np.int64) * window.width + (
        column[inside] - window.x0
    ).astype(np.int64)
    np.minimum.at(zbuffer, flat, depth[inside])


def bounding_window(pixel_xy: np.ndarray) -> Window:
    """The smallest window holding every pixel whose centre a set of points (N, 2) can cover."""
    low = np.floor(pixel_xy.min(axis=0)).astype(np.int64)
    high = np.ceil(pixel_xy.max(axis=0)).astype(np.int64)
    return Window(int(low[0]), int(low[1]), int(high[0] - low[0]) + 1, int(high[1] - low[1]) + 1)


def paste(depth: np.ndarray, window: Window, width: int, height: int) -> np.ndarray:
    """A window's depth map placed on the (height, width) image; inf outside the window."""
    image = np.full((height, width), np.inf)
    x_lo, y_lo = max(window.x0, 0), max(window.y0, 0)
    x_hi = min(window.x0 + window.width, width)
    y_hi = min(window.y0 + window.height, height)
    if x_lo < x_hi and y_lo < y_hi:
        image[y_lo:y_hi, x_lo:x_hi] = depth[
            y_lo - window.y0 : y_hi - window.y0, x_lo - window.x0 : x_hi - window.x0
        ]
    return image


def nearest_labels(person_depth: np.ndarray, occluder_depth: np.ndarray) -> np.ndarray:
    """(P, H, W) person depths and (H, W) occluder depth -> (H, W) uint8 labels.

    0 where nothing or an occluder is nearest, i + 1 where person i is.
    """
    stacked = np.concatenate([occluder_depth[None], person_depth], axis=0)
    nearest = np.argmin(stacked, axis=0)
    seen = np.isfinite(np.min(stacked, axis=0))
    return np.where(seen, nearest, 0).astype(np.uint8)
