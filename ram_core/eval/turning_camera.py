"""Synthetic footage of a turning camera with known truth: a textured picture seen by a
camera that pans and tilts about its centre, with boxes for people crossing it and a dark
shadow beside each (outside their masks, as a real shadow is). For testing and benchmarking
``ram_core.video.camera_motion``, whose rendered benchmark scenes have walls too plain to
follow."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ram_core.body.rotations import axis_angle_to_matrix


def textured_panorama(rng: np.random.Generator, width: int = 2400, height: int = 1400):
    """(height, width, 3) uint8 RGB with texture at several scales."""
    coarse = cv2.resize(
        rng.random((height // 8, width // 8)).astype(np.float32),
        (width, height),
        interpolation=cv2.INTER_CUBIC,
    )
    fine = cv2.GaussianBlur(rng.random((height, width)).astype(np.float32), (0, 0), 1.5)
    gray = np.clip(0.6 * coarse + 0.4 * fine, 0.0, 1.0)
    return (np.dstack([gray, 0.9 * gray, 0.8 * gray]) * 255).astype(np.uint8)


def camera_turn(t: float, pan_deg: float, tilt_deg: float) -> np.ndarray:
    """Rotation from the first frame's camera to the one at t in [0, 1]: x_t = R x_0."""
    pan = axis_angle_to_matrix(np.array([0.0, np.radians(pan_deg) * t, 0.0]))
    tilt = axis_angle_to_matrix(np.array([np.radians(tilt_deg) * t, 0.0, 0.0]))
    return tilt @ pan


def background_frames(
    rng: np.random.Generator,
    frames: int,
    pan_deg: float,
    tilt_deg: float = 0.0,
    focal_px: float = 700.0,
    size: tuple[int, int] = (640, 360),
) -> tuple[list[np.ndarray], np.ndarray]:
    """RGB frames of a textured picture seen by a camera turning evenly by ``pan_deg`` and
    ``tilt_deg`` over the clip, and the true rotations (frames, 3, 3)."""
    width, height = size
    panorama = textured_panorama(rng)
    to_first = np.array(
        [
            [1.0, 0.0, -(panorama.shape[1] - width) / 2],
            [0.0, 1.0, -(panorama.shape[0] - height) / 2],
            [0.0, 0.0, 1.0],
        ]
    )
    k = np.array([[focal_px, 0, width / 2], [0, focal_px, height / 2], [0, 0, 1.0]])
    images, rotations = [], []
    for frame in range(frames):
        rotation = camera_turn(frame / max(frames - 1, 1), pan_deg, tilt_deg)
        homography = k @ rotation @ np.linalg.inv(k) @ to_first
        images.append(cv2.warpPerspective(panorama, homography, (width, height)))
        rotations.append(rotation)
    return images, np.array(rotations)


def moving_people(images: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The frames with two boxes crossing them, each with a shadow beside it; and the
    boxes' masks."""
    painted, masks = [], []
    for frame, image in enumerate(images):
        image = image.copy()
        mask = np.zeros(image.shape[:2], dtype=bool)
        for k in range(2):
            x, y = 100 + 250 * k + 6 * frame, 120
            cv2.rectangle(image, (x, y), (x + 60, y + 200), (200, 60 * k, 40), -1)
            mask[y : y + 200, x : x + 60] = True
            cv2.ellipse(image, (x + 80, y + 215), (60, 12), 0, 0, 360, (30, 30, 30), -1)
        painted.append(image)
        masks.append(mask)
    return painted, masks
