"""Rotation conversions and interpolation on SO(3), batched, numpy only.

Blender imports this module, so it uses nothing beyond numpy and the standard library.

Conventions:
- axis-angle ``aa``: (..., 3), the rotation axis scaled by the angle in radians.
- matrices ``R``: (..., 3, 3), acting on column vectors (``x' = R @ x``).
- quaternions ``q``: (..., 4) ordered (w, x, y, z), unit norm; ``q`` and ``-q`` are the same
  rotation. Conversions that return quaternions pick ``w >= 0``.
- 6D ``rot6d``: (..., 6), the first two columns of R (Zhou et al.'s continuous representation).
"""

from __future__ import annotations

import numpy as np

# Below this angle the series expansions are used: the closed forms divide by the angle.
_SMALL_ANGLE = 1e-6


def axis_angle_to_matrix(aa: np.ndarray) -> np.ndarray:
    """Rodrigues' formula (the exponential map). (..., 3) -> (..., 3, 3)."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1)[..., None, None]
    K = hat(aa)
    small = theta < _SMALL_ANGLE
    safe = np.where(small, 1.0, theta)
    # sin(t)/t and (1 - cos t)/t^2, with their Taylor series near 0 where they are 0/0.
    a = np.where(small, 1.0 - theta**2 / 6.0, np.sin(safe) / safe)
    b = np.where(small, 0.5 - theta**2 / 24.0, (1.0 - np.cos(safe)) / safe**2)
    eye = np.broadcast_to(np.eye(3), K.shape)
    return eye + a * K + b * (K @ K)


def hat(v: np.ndarray) -> np.ndarray:
    """Cross-product matrix: hat(v) @ x == cross(v, x). (..., 3) -> (..., 3, 3)."""
    v = np.asarray(v, dtype=np.float64)
    zero = np.zeros(v.shape[:-1])
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.stack(
        [
            np.stack([zero, -z, y], axis=-1),
            np.stack([z, zero, -x], axis=-1),
            np.stack([-y, x, zero], axis=-1),
        ],
        axis=-2,
    )


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> (..., 4) unit (w, x, y, z) with w >= 0.

    Shepperd's method: each of the four candidate formulas divides by a different diagonal
    combination; taking the one with the largest denominator stays accurate near pi, where
    the trace-based formula alone loses all precision.
    """
    R = np.asarray(R, dtype=np.float64)
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    trace = m00 + m11 + m22
    candidates = np.stack(
        [
            np.stack(
                [
                    1.0 + trace,
                    R[..., 2, 1] - R[..., 1, 2],
                    R[..., 0, 2] - R[..., 2, 0],
                    R[..., 1, 0] - R[..., 0, 1],
                ],
                axis=-1,
            ),
            np.stack(
                [
                    R[..., 2, 1] - R[..., 1, 2],
                    1.0 + m00 - m11 - m22,
                    R[..., 0, 1] + R[..., 1, 0],
                    R[..., 0, 2] + R[..., 2, 0],
                ],
                axis=-1,
            ),
            np.stack(
                [
                    R[..., 0, 2] - R[..., 2, 0],
                    R[..., 0, 1] + R[..., 1, 0],
                    1.0 - m00 + m11 - m22,
                    R[..., 1, 2] + R[..., 2, 1],
                ],
                axis=-1,
            ),
            np.stack(
                [
                    R[..., 1, 0] - R[..., 0, 1],
                    R[..., 0, 2] + R[..., 2, 0],
                    R[..., 1, 2] + R[..., 2, 1],
                    1.0 - m00 - m11 + m22,
                ],
                axis=-1,
            ),
        ],
        axis=-2,
    )  # (..., 4 candidates, 4 components), candidate i is 4 * q_i * q
    pivots = np.stack(
        [1.0 + trace, 1.0 + m00 - m11 - m22, 1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22], axis=-1
    )
    best = np.argmax(pivots, axis=-1)
    q = np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return canonical_quaternion(q)


def canonical_quaternion(q: np.ndarray) -> np.ndarray:
    """Flip quaternions to w >= 0 (same rotation). (..., 4) -> (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    return np.where(q[..., :1] < 0.0, -q, q)


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) -> (..., 3, 3). The input is normalised first."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=-2,
    )


def axis_angle_to_quaternion(aa: np.ndarray) -> np.ndarray:
    """(..., 3) -> (..., 4) unit (w, x, y, z). Angles beyond pi give w < 0 (not flipped)."""
    aa = np.asarray(aa, dtype=np.float64)
    theta = np.linalg.norm(aa, axis=-1, keepdims=True)
    small = theta < _SMALL_ANGLE
    safe = np.where(small, 1.0, theta)
    # sin(t/2)/t, Taylor near 0.
    s = np.where(small, 0.5 - theta**2 / 48.0, np.sin(safe / 2.0) / safe)
    return np.concatenate([np.cos(theta / 2.0), s * aa], axis=-1)


def quaternion_to_axis_angle(q: np.ndarray) -> np.ndarray:
    """(..., 4) -> (..., 3) with angle in [0, pi] (the shorter of q and -q).

    atan2 of the vector norm and w keeps full precision at both ends of the range, unlike
    acos(w) near 0 or asin(|v|) near pi.
    """
    q = canonical_quaternion(q)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w = q[..., :1]
    v = q[..., 1:]
    sin_half = np.linalg.norm(v, axis=-1, keepdims=True)
    half = np.arctan2(sin_half, w)
    small = sin_half < _SMALL_ANGLE
    safe = np.where(small, 1.0, sin_half)
    # angle / sin(angle / 2); near 0 this is 2 / w (w ~ 1) to second order.
    scale = np.where(
        small, 2.0 / np.maximum(w, 1e-12) * (1.0 + sin_half**2 / 6.0), 2.0 * half / safe
    )
    return scale * v


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """The logarithm map. (..., 3, 3) -> (..., 3), angle in [0, pi]."""
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def so3_exp(aa: np.ndarray) -> np.ndarray:
    """exp: so(3) -> SO(3). (..., 3) -> (..., 3, 3)."""
    return axis_angle_to_matrix(aa)


def so3_log(R: np.ndarray) -> np.ndarray:
    """log: SO(3) -> so(3), the principal value. (..., 3, 3) -> (..., 3)."""
    return matrix_to_axis_angle(R)


def quaternion_multiply(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Hamilton product q1 * q2 (apply q2 first). (..., 4), (..., 4) -> (..., 4)."""
    q1 = np.asarray(q1, dtype=np.float64)
    q2 = np.asarray(q2, dtype=np.float64)
    w1, x1, y1, z1 = np.moveaxis(q1, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(q2, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quaternion_conjugate(q: np.ndarray) -> np.ndarray:
    """Inverse of a unit quaternion. (..., 4) -> (..., 4)."""
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quaternion_slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Spherical linear interpolation along the shorter arc.

    q0, q1: (..., 4); t: scalar or broadcastable to (...,), 0 gives q0 and 1 gives the
    rotation of q1. Antipodal inputs (q1 ~ -q0) are the same rotation and interpolate to it;
    nearly equal inputs fall back to a normalised lerp where sin(angle) would vanish.
    """
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64)
    q0 = q0 / np.linalg.norm(q0, axis=-1, keepdims=True)
    q1 = q1 / np.linalg.norm(q1, axis=-1, keepdims=True)
    t = np.asarray(t, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    # q and -q are one rotation: flip q1 into q0's hemisphere for the shorter arc.
    q1 = np.where(dot < 0.0, -q1, q1)
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    omega = np.arccos(dot)
    sin_omega = np.sin(omega)
    near = sin_omega < 1e-6
    safe = np.where(near, 1.0, sin_omega)
    w0 = np.where(near, 1.0 - t, np.sin((1.0 - t) * omega) / safe)
    w1 = np.where(near, t, np.sin(t * omega) / safe)
    q = w0 * q0 + w1 * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def slerp_axis_angle(aa0: np.ndarray, aa1: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Slerp between axis-angle rotations. (..., 3), (..., 3), t -> (..., 3).

    At t == 0 and t == 1 the inputs come back exactly (not through a round trip), so a gate
    of exactly 0 or 1 reproduces its source bit for bit.
    """
    aa0 = np.asarray(aa0, dtype=np.float64)
    aa1 = np.asarray(aa1, dtype=np.float64)
    q = quaternion_slerp(axis_angle_to_quaternion(aa0), axis_angle_to_quaternion(aa1), t)
    out = quaternion_to_axis_angle(q)
    t_b = np.broadcast_to(np.asarray(t, dtype=np.float64)[..., None], out.shape)
    out = np.where(t_b == 0.0, np.broadcast_to(aa0, out.shape), out)
    return np.where(t_b == 1.0, np.broadcast_to(aa1, out.shape), out)


def geodesic_angle(R0: np.ndarray, R1: np.ndarray) -> np.ndarray:
    """Angle in [0, pi] of R0^T R1. (..., 3, 3), (..., 3, 3) -> (...,)."""
    rel = np.swapaxes(R0, -1, -2) @ R1
    return np.linalg.norm(matrix_to_axis_angle(rel), axis=-1)


def axis_angle_distance(aa0: np.ndarray, aa1: np.ndarray) -> np.ndarray:
    """Geodesic angle in [0, pi] between axis-angle rotations. (..., 3), (..., 3) -> (...,)."""
    rel = quaternion_multiply(
        quaternion_conjugate(axis_angle_to_quaternion(aa0)), axis_angle_to_quaternion(aa1)
    )
    # 2 atan2(|v|, |w|) keeps precision for nearly equal rotations, where acos would not.
    return 2.0 * np.arctan2(np.linalg.norm(rel[..., 1:], axis=-1), np.abs(rel[..., 0]))


def matrix_to_rot6d(R: np.ndarray) -> np.ndarray:
    """First two columns of R, column by column. (..., 3, 3) -> (..., 6)."""
    R = np.asarray(R, dtype=np.float64)
    return np.concatenate([R[..., :, 0], R[..., :, 1]], axis=-1)


def rot6d_to_matrix(rot6d: np.ndarray) -> np.ndarray:
    """Gram-Schmidt on the two columns. (..., 6) -> (..., 3, 3)."""
    rot6d = np.asarray(rot6d, dtype=np.float64)
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = a1 / np.linalg.norm(a1, axis=-1, keepdims=True)
    a2 = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2 / np.linalg.norm(a2, axis=-1, keepdims=True)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def rotation_between_vectors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction a to direction b. (..., 3), (..., 3) -> (..., 3, 3).

    For opposite directions any half-turn about an axis perpendicular to a works; we pick
    the one about the axis of a's smallest component, so the result is deterministic.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    sin_t = np.linalg.norm(axis, axis=-1, keepdims=True)
    cos_t = np.sum(a * b, axis=-1, keepdims=True)
    angle = np.arctan2(sin_t, cos_t)
    degenerate = sin_t < 1e-9
    # Perpendicular fallback axis for the antiparallel case.
    helper = np.eye(3)[np.argmin(np.abs(a), axis=-1)]
    perp = np.cross(a, helper)
    perp = perp / np.linalg.norm(perp, axis=-1, keepdims=True)
    unit_axis = np.where(degenerate, perp, axis / np.where(degenerate, 1.0, sin_t))
    # Parallel case: angle is 0 and the axis is irrelevant.
    return axis_angle_to_matrix(unit_axis * angle)
