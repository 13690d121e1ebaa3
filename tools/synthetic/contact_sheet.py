"""One frame per benchmark scene with its ground truth drawn on, tiled into one image.

For looking at the scenes: each tile shows the frame where the most people are in view and
someone is most hidden, each person's visible mask tinted in the person's colour, the full
box (thin), the visible box (thick) and "id: visible fraction".
"""

from pathlib import Path

import cv2
import numpy as np

# BGR, one per person index.
PERSON_COLOURS = ((60, 60, 230), (230, 160, 40), (60, 200, 60), (40, 200, 230), (200, 60, 200))
MASK_ALPHA = 0.45


def telling_frame(gt: dict[str, np.ndarray]) -> int:
    """The frame with the most people wholly inside the image, then the most hidden of them.

    Wholly inside: the full box keeps off the image border, so a low visible fraction there
    means someone or something hides the person, not the frame edge.
    """
    full = gt["box_full_xyxy"]
    width, height = float(gt["width"]), float(gt["height"])
    inside = (
        (full[..., 0] > 0) & (full[..., 1] > 0) & (full[..., 2] < width) & (full[..., 3] < height)
    )  # NaN boxes compare False
    least_seen = np.where(inside, gt["visible_fraction"], 1.0).min(axis=1)
    return int(np.argmax(inside.sum(axis=1) + (1.0 - least_seen)))


def read_frame(video: Path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(video))
    try:
        for _ in range(index + 1):
            ok, image = capture.read()
            if not ok:
                raise ValueError(f"{video} has no frame {index}")
    finally:
        capture.release()
    return image


def draw_ground_truth(
    image: np.ndarray, gt: dict[str, np.ndarray], labels: np.ndarray, frame: int
) -> np.ndarray:
    """The frame with masks, boxes and IDs drawn (a copy)."""
    out = image.copy()
    for p, person_id in enumerate(gt["person_ids"]):
        colour = np.array(PERSON_COLOURS[p % len(PERSON_COLOURS)], dtype=np.float64)
        mask = labels[frame] == p + 1
        out[mask] = ((1.0 - MASK_ALPHA) * out[mask] + MASK_ALPHA * colour).astype(np.uint8)
        bgr = tuple(int(c) for c in colour)
        full = gt["box_full_xyxy"][frame, p]
        if np.isfinite(full).all():
            cv2.rectangle(out, _corner(full[:2]), _corner(full[2:]), bgr, 1)
        visible = gt["box_visible_xyxy"][frame, p]
        if np.isfinite(visible).all():
            cv2.rectangle(out, _corner(visible[:2]), _corner(visible[2:]), bgr, 2)
        if np.isfinite(full).all():
            text = f"{int(person_id)}: {gt['visible_fraction'][frame, p]:.2f}"
            anchor = (_corner(full[:2])[0] + 2, max(_corner(full[:2])[1] - 4, 12))
            cv2.putText(out, text, anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3)
            cv2.putText(out, text, anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.45, bgr, 1)
    return out


def _corner(xy: np.ndarray) -> tuple[int, int]:
    return round(float(xy[0])), round(float(xy[1]))


def scene_tile(scene_dir: Path) -> np.ndarray:
    """The telling frame of one scene folder, annotated and captioned."""
    with np.load(scene_dir / "gt.npz") as data:
        gt = {key: data[key] for key in data.files}
    with np.load(scene_dir / "masks.npz") as data:
        labels = data["labels"]
    frame = telling_frame(gt)
    tile = draw_ground_truth(read_frame(scene_dir / "video.mp4", frame), gt, labels, frame)
    caption = f"{scene_dir.name}  frame {frame}"
    cv2.putText(tile, caption, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 4)
    cv2.putText(tile, caption, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return tile


def contact_sheet(scene_dirs: list[Path], columns: int = 2) -> np.ndarray:
    """Tiles (all the same size) in rows of `columns`; blank where a row runs short."""
    tiles = [scene_tile(folder) for folder in scene_dirs]
    height, width = tiles[0].shape[:2]
    tiles = [cv2.resize(tile, (width, height)) for tile in tiles]
    blank = np.full((height, width, 3), 255, dtype=np.uint8)
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i : i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)
