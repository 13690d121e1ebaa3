"""A turning camera: its rotation per frame from the background, and its focal length when
it turns enough.

A camera that pans or tilts on a tripod (or in a hand held still) maps one frame onto the
next by a homography ``H = K R K^-1``. Corners outside the people's masks are followed with
pyramidal Lucas-Kanade from frame to frame, and a RANSAC homography of each step, chained,
gives ``H_0t`` from the first frame to each frame. For a focal length ``f``,
``K^-1 H_0t K`` is a rotation times a scale; the ``f`` that makes the chain's homographies
most like rotations is the focal length. That is well posed only once the camera has turned
some degrees (``CameraMotionConfig.min_turn_for_focal_deg``); a camera that hardly turns
keeps the focal length it was given. The camera's centre is taken as fixed: a camera that
travels is not followed.

``rotations[t]`` takes the first frame's camera coordinates to frame t's:
``x_t = R_t @ x_0``. OpenCV and SciPy are imported where used, so the settings load without
them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraMotionConfig:
    """How the background is followed.

    enabled: follow it at all (off: the camera is static).
    max_corners, min_corner_distance_px: the corners followed (Shi-Tomasi).
    ransac_px: RANSAC's reprojection threshold of a step's homography.
    min_inliers: a step with fewer inlier corners than this is taken as no motion.
    min_key_corners: a key frame with fewer background corners than this cannot be
        followed (a plain wall and floor, where shadows and people's edges are most of the
        corners); unless ``min_followed_fraction`` of the frames are followed, the camera
        is taken as static.
    min_turn_for_focal_deg: the camera must turn this much before its focal length is
        estimated from the turn.
    static_below_deg: a camera that never turns more than this from its first frame is
        static (its per-frame rotations are not stored).
    """

    enabled: bool = True
    max_corners: int = 400
    min_corner_distance_px: int = 8
    ransac_px: float = 1.0
    min_inliers: int = 25
    min_key_corners: int = 100
    min_followed_fraction: float = 0.8
    min_turn_for_focal_deg: float = 8.0
    static_below_deg: float = 0.3

    def __post_init__(self) -> None:
        if self.max_corners < 8 or self.min_inliers < 4 or self.ransac_px <= 0:
            raise ValueError(
                "camera_motion needs max_corners >= 8, min_inliers >= 4 and ransac_px > 0"
            )


@dataclass(frozen=True)
class CameraMotion:
    """frames (F,) and rotations (F, 3, 3) from the first frame's camera to each frame's;
    the focal length the turn gave (None when it did not turn enough); whether it turned at
    all; the largest turn from the first frame (degrees); the share of frames whose
    background could be followed, and in words how the camera was judged."""

    frames: np.ndarray
    rotations: np.ndarray
    focal_px: float | None
    turning: bool
    max_turn_deg: float
    followed_fraction: float
    verdict: str


class BackgroundTracker:
    """Follows the background: ``add`` each frame in order with the people's mask, then
    ``solve``.

    Corners are taken on a key frame and followed frame by frame; each frame's homography is
    fitted to where they are now against where they were on the key frame, and chained to
    the key frame's own. A new key frame is taken when too few corners are left, so the
    chain has a link per key frame, not per frame, and drifts less.
    """

    def __init__(self, config: CameraMotionConfig | None = None) -> None:
        self.config = config or CameraMotionConfig()
        self.frames: list[int] = []
        self.chain: list[np.ndarray] = []  # H from the first frame to each frame
        self._previous: np.ndarray | None = None
        self._key_points: np.ndarray | None = None  # (N, 1, 2) on the key frame
        self._points: np.ndarray | None = None  # the same corners on the previous frame
        self._key_chain = np.eye(3)  # H from the first frame to the key frame
        self._followed: list[bool] = []
        self._key_followable = False

    def add(self, index: int, rgb: np.ndarray, people: np.ndarray | None) -> None:
        """Frame ``index`` (frames in order), (H, W, 3) RGB and a (H, W) bool mask of the
        people (no corners are taken there)."""
        if not self.config.enabled:
            self.chain.append(np.eye(3))
            self.frames.append(int(index))
            self._followed.append(True)
            return
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        since_key = None
        if self._previous is not None and self._points is not None and len(self._points) >= 8:
            moved, status, _ = cv2.calcOpticalFlowPyrLK(
                self._previous, gray, self._points, None, winSize=(21, 21), maxLevel=3
            )
            found = status.ravel() == 1
            self._key_points, self._points = self._key_points[found], moved[found]
            if found.sum() >= self.config.min_inliers:
                homography, inliers = cv2.findHomography(
                    self._key_points, self._points, cv2.RANSAC, self.config.ransac_px
                )
                if homography is not None and inliers.sum() >= self.config.min_inliers:
                    since_key = homography / homography[2, 2]
                    keep = inliers.ravel() == 1
                    self._key_points, self._points = self._key_points[keep], self._points[keep]
        if since_key is None:
            # Lost (or the first frame): no motion since the previous frame.
            chained = self.chain[-1] if self.chain else np.eye(3)
            renew = True
        else:
            chained = since_key @ self._key_chain
            renew = len(self._points) < 2 * self.config.min_inliers
        chained = chained / chained[2, 2]
        self.chain.append(chained)
        self.frames.append(int(index))
        self._followed.append(
            self._previous is None or (since_key is not None and self._key_followable)
        )
        self._previous = gray
        if renew:
            self._key_chain = chained
            self._key_points = self._corners(gray, people)
            self._points = self._key_points
            corners = 0 if self._key_points is None else len(self._key_points)
            self._key_followable = corners >= self.config.min_key_corners

    def _corners(self, gray: np.ndarray, people: np.ndarray | None) -> np.ndarray | None:
        import cv2

        background = np.full(gray.shape, 255, np.uint8)
        if people is not None:
            background[people] = 0
            # Corners right at a person's edge move with the person.
            background = cv2.erode(background, np.ones((9, 9), np.uint8))
        return cv2.goodFeaturesToTrack(
            gray,
            self.config.max_corners,
            0.01,
            self.config.min_corner_distance_px,
            mask=background,
        )

    def solve(self, focal_px: float, cx: float, cy: float, focal_known: bool) -> CameraMotion:
        """The rotations, with the focal length estimated from the turn unless
        ``focal_known``."""
        homographies = np.array(self.chain) if self.chain else np.zeros((0, 3, 3))
        frames = np.array(self.frames, dtype=np.int64)
        followed = float(np.mean(self._followed)) if self._followed else 0.0
        static = np.tile(np.eye(3), (len(frames), 1, 1))
        if not self.config.enabled:
            return CameraMotion(frames, static, None, False, 0.0, followed, "not followed")
        if followed < self.config.min_followed_fraction:
            return CameraMotion(
                frames,
                static,
                None,
                False,
                0.0,
                followed,
                f"static: the background could be followed on {followed:.0%} of the frames",
            )
        rotations = rotations_from_homographies(homographies, focal_px, cx, cy)
        turn = _max_turn_deg(rotations)
        focal = None
        if not focal_known and turn >= self.config.min_turn_for_focal_deg:
            focal = focal_from_homographies(homographies, focal_px, cx, cy)
            rotations = rotations_from_homographies(homographies, focal, cx, cy)
            turn = _max_turn_deg(rotations)
        if turn < self.config.static_below_deg:
            return CameraMotion(frames, static, None, False, turn, followed, "static")
        verdict = f"turning (up to {turn:.1f} deg)" + (
            f", focal length {focal:.0f} px from the turn" if focal is not None else ""
        )
        return CameraMotion(frames, rotations, focal, True, turn, followed, verdict)


def intrinsics(focal_px: float, cx: float, cy: float) -> np.ndarray:
    return np.array([[focal_px, 0.0, cx], [0.0, focal_px, cy], [0.0, 0.0, 1.0]])


def nearest_rotations(matrices: np.ndarray) -> np.ndarray:
    """(..., 3, 3) the rotations nearest each matrix (polar decomposition, det +1)."""
    u, _, vt = np.linalg.svd(matrices)
    sign = np.sign(np.linalg.det(u @ vt))
    u[..., :, 2] *= sign[..., None]
    return u @ vt


def rotations_from_homographies(
    homographies: np.ndarray, focal_px: float, cx: float, cy: float
) -> np.ndarray:
    """(F, 3, 3) rotations of rotation-only homographies ``H = K R K^-1``."""
    if len(homographies) == 0:
        return np.zeros((0, 3, 3))
    k = intrinsics(focal_px, cx, cy)
    return nearest_rotations(np.linalg.inv(k) @ homographies @ k)


def rotation_misfit(homographies: np.ndarray, focal_px: float, cx: float, cy: float) -> float:
    """How far ``K^-1 H K`` is from a scaled rotation, summed over the homographies."""
    k = intrinsics(focal_px, cx, cy)
    conjugated = np.linalg.inv(k) @ homographies @ k
    scale = np.cbrt(np.linalg.det(conjugated))[:, None, None]
    normalised = conjugated / scale
    return float(np.sum((normalised - nearest_rotations(normalised)) ** 2))


def focal_from_homographies(
    homographies: np.ndarray, focal_guess: float, cx: float, cy: float
) -> float:
    """The focal length (px) that makes the homographies most like rotations, searched from
    a third to three times the guess."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_f: rotation_misfit(homographies, float(np.exp(log_f)), cx, cy),
        bounds=(np.log(focal_guess / 3), np.log(focal_guess * 3)),
        method="bounded",
        options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def _max_turn_deg(rotations: np.ndarray) -> float:
    if len(rotations) == 0:
        return 0.0
    cosine = (np.trace(rotations, axis1=1, axis2=2) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))).max())
