"""Constant-velocity Kalman filter on boxes, in the DeepSORT/SAMURAI form.

State ``[cx, cy, a, h, vx, vy, va, vh]`` (centre, aspect ratio w/h, height and their
velocities), one frame per step, measurement ``[cx, cy, a, h]``. Noise scales with the box
height so near and far people are treated alike. Pure functions over ``(mean, cov)``; the
track object owns the state.
"""

from __future__ import annotations

import numpy as np

STATE_DIM = 8
MEASUREMENT_DIM = 4
CHI2_95_2DOF = 5.9915
CHI2_95_4DOF = 9.4877

# Relative noise levels (NOTES-method.md).
_STD_POSITION = 1.0 / 20.0
_STD_VELOCITY = 1.0 / 160.0

TRANSITION = np.eye(STATE_DIM)
TRANSITION[:4, 4:] = np.eye(4)
OBSERVATION = np.eye(MEASUREMENT_DIM, STATE_DIM)


def initial_covariance(h: float) -> np.ndarray:
    """P0 for a box of height h: (8, 8)."""
    std = [
        2 * _STD_POSITION * h,
        2 * _STD_POSITION * h,
        1e-2,
        2 * _STD_POSITION * h,
        10 * _STD_VELOCITY * h,
        10 * _STD_VELOCITY * h,
        1e-5,
        10 * _STD_VELOCITY * h,
    ]
    return np.diag(np.square(std))


def process_noise(h: float) -> np.ndarray:
    """Q for a box of height h: (8, 8)."""
    std = [
        _STD_POSITION * h,
        _STD_POSITION * h,
        1e-2,
        _STD_POSITION * h,
        _STD_VELOCITY * h,
        _STD_VELOCITY * h,
        1e-5,
        _STD_VELOCITY * h,
    ]
    return np.diag(np.square(std))


def measurement_noise(h: float) -> np.ndarray:
    """R for a box of height h: (4, 4)."""
    std = [_STD_POSITION * h, _STD_POSITION * h, 1e-1, _STD_POSITION * h]
    return np.diag(np.square(std))


def initiate(measurement_xyah: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A new track from its first box: mean (8,), cov (8, 8); velocities start at zero."""
    z = np.asarray(measurement_xyah, dtype=np.float64)
    mean = np.concatenate([z, np.zeros(4)])
    return mean, initial_covariance(z[3])


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: x = F x, P = F P F^T + Q(h)."""
    q = process_noise(mean[3])
    return TRANSITION @ mean, TRANSITION @ cov @ TRANSITION.T + q


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Into measurement space: H x (4,), H P H^T + R(h) (4, 4)."""
    r = measurement_noise(mean[3])
    return OBSERVATION @ mean, OBSERVATION @ cov @ OBSERVATION.T + r


def update(
    mean: np.ndarray, cov: np.ndarray, measurement_xyah: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct with a measured box; Joseph-free form, solved by Cholesky for stability."""
    z_mean, s = project(mean, cov)
    pht = cov @ OBSERVATION.T
    gain = np.linalg.solve(s, pht.T).T  # K = P H^T S^-1 (S symmetric)
    innovation = np.asarray(measurement_xyah, dtype=np.float64) - z_mean
    new_mean = mean + gain @ innovation
    new_cov = cov - gain @ s @ gain.T
    return new_mean, 0.5 * (new_cov + new_cov.T)


def coast(
    mean: np.ndarray, cov: np.ndarray, velocity_decay: float, extra_position_std: float
) -> tuple[np.ndarray, np.ndarray]:
    """One frame of a person nobody sees: the velocity decays, the position spreads.

    The velocity (and its covariance rows and columns) is scaled by ``velocity_decay``; the
    centre's variance grows by ``(extra_position_std * h)**2`` in x and y.
    """
    mean = mean.copy()
    mean[4:6] *= velocity_decay
    scale = np.ones(STATE_DIM)
    scale[4:6] = velocity_decay
    cov = cov * np.outer(scale, scale)
    spread = (extra_position_std * mean[3]) ** 2
    cov[0, 0] += spread
    cov[1, 1] += spread
    return mean, cov


def position_distance(mean: np.ndarray, cov: np.ndarray, centres_xy: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distance of box centres (M, 2) to the predicted centre: (M,).

    Only the centre is gated: a partly hidden person's mask box changes shape and size, but
    its centre still has to be where the motion model allows.
    """
    z_mean, s = project(mean, cov)
    d = np.atleast_2d(centres_xy) - z_mean[:2]
    s_inv = np.linalg.inv(s[:2, :2])
    return np.einsum("mi,ij,mj->m", d, s_inv, d)


def gate_half_extent(mean: np.ndarray, cov: np.ndarray, chi2: float) -> np.ndarray:
    """Half-width and half-height (2,) of the smallest axis-aligned box around the predicted
    centre holding every centre within squared Mahalanobis distance ``chi2``
    (``position_distance``'s gate)."""
    _, s = project(mean, cov)
    return np.sqrt(chi2 * np.diag(s)[:2])
