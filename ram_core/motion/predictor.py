"""The Predictor: SMPL parameters of a track extrapolated from its own history.

Blender re-runs this (with the Combiner) after the artist's edits: numpy + stdlib only.

For every frame t the prediction uses only frames before t whose observation is valid:
- joint rotations: constant angular velocity on SO(3) per joint. From the last two valid
  frames a < b, the per-frame body-frame velocity is w = log(R_a^T R_b) / (b - a); the
  prediction k = t - b frames after b is R_b exp(s_k w) with s_k = sum_{i=0..k-1} d^i: the
  next frame moves by the full velocity, which then decays geometrically by the
  ``damping`` d each frame (d = 1: constant velocity, s_k = k). With one valid frame so far
  it holds that frame.
- the longer a person stays hidden, the more their body joints (not the global
  orientation) relax toward their usual pose: the mean of the valid frames among the
  ``usual_pose_frames`` up to b. From the second frame after b on, each frame's prediction
  is moved a fraction 1 - exp(-1 / ``relax_frames``) of the way there (a normalised lerp of
  quaternions on the shorter arc), so it is mostly there after a few ``relax_frames``.
  Where the phase of a walk or a gesture is unknown, the usual pose is the better guess.
- root translation: a constant-velocity Kalman filter per axis (state: position and
  velocity, white-noise acceleration), updated at valid frames; while coasting through
  invalid frames its velocity decays by ``transl_damping`` each frame.
- before the first valid frame the prediction is the first valid observation; a track with
  no valid frame predicts the rest pose at zero translation.
All units are per frame (the Predictor does not know the frame rate).

This is the analytic Predictor; ``PredictorConfig.kind`` "learned" chooses the learned one
(``ram_core.motion.learned``) for the joint rotations, the translation staying as here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ram_core.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    quaternion_multiply,
    quaternion_to_axis_angle,
)


@dataclass(frozen=True)
class PredictorConfig:
    """Settings of the Predictor (per-frame units).

    damping: per-frame decay of the angular velocity while extrapolating (1 = none; 0 moves
        one frame on and then holds).
    max_angular_speed: cap on a joint's estimated speed, rad/frame; a faster change between
        two observations is more likely a reconstruction flip than motion.
    max_velocity_gap: the two valid frames that give the velocity may be at most this many
        frames apart; further apart the prediction holds the last pose. 0, the default:
        joint rotations are never extrapolated (held, then relaxed). Measured on the lite
        reconstructions of the first benchmark scene set (benchmarks/bench_predictor.py):
        the angular velocity of two noisy frames makes the pose worse than holding it at
        every time hidden (damping 0.9 gave 44-100% more joint error than holding; even a
        single frame of it, damping 0, lost to holding at 0.25 s). With a cleaner
        reconstruction (the full backend) a gap of 5 and damping 0.9 may pay.
    transl_damping: per-frame decay of the root velocity while coasting (1 = none).
    transl_accel_std_m: the Kalman filter's process noise, m/frame^2 (~ a few m/s^2 at
        30 fps).
    transl_meas_std_m: the Kalman filter's measurement noise, m (the lite backend's depth is
        good to a few cm).
    transl_init_speed_std_m: prior spread of the root speed at a track's first frame, m/frame.
    relax_frames: frames over which a hidden person's body joints relax toward their usual
        pose (the time constant; 0 = never). Chosen with usual_pose_frames on the same
        benchmark: 12 and 48 beat holding the last pose at 0.25, 0.5, 1 and 2 s hidden.
    usual_pose_frames: the frames (up to the last valid one) whose valid poses are averaged
        into the usual pose.
    kind: "analytic" (all of the above) or "learned": joint rotations from the learned
        Predictor (``ram_core.motion.learned``) over the previous combined frames; the root
        translation keeps the Kalman filter, and the rotation settings above are unused.
    weights: the learned Predictor's exported ``.npz`` (kind "learned" only). In a result's
        manifest: the copy inside the result folder, relative to it.
    """

    damping: float = 0.0
    max_angular_speed: float = 0.35
    max_velocity_gap: int = 0
    transl_damping: float = 0.9
    transl_accel_std_m: float = 0.005
    transl_meas_std_m: float = 0.03
    transl_init_speed_std_m: float = 0.05
    relax_frames: float = 12.0
    usual_pose_frames: int = 48
    kind: str = "analytic"
    weights: str = ""

    def __post_init__(self) -> None:
        check_model_choice("predictor", "kind", self.kind, "weights", self.weights)
        if self.relax_frames < 0.0 or self.usual_pose_frames < 1:
            raise ValueError("predictor relax_frames must be >= 0 and usual_pose_frames >= 1")
        if not 0.0 <= self.damping <= 1.0 or not 0.0 <= self.transl_damping <= 1.0:
            raise ValueError("predictor damping values must lie in [0, 1]")
        if self.max_angular_speed <= 0.0 or self.max_velocity_gap < 0:
            raise ValueError("predictor max_angular_speed must be > 0, max_velocity_gap >= 0")
        if (
            min(self.transl_accel_std_m, self.transl_meas_std_m, self.transl_init_speed_std_m)
            <= 0.0
        ):
            raise ValueError("predictor noise levels must be > 0")


MODEL_KINDS = ("analytic", "learned")


def check_model_choice(
    section: str, kind_name: str, kind: str, weights_name: str, weights: str
) -> None:
    """ValueError unless ``kind`` is analytic (and no weights are named) or learned with
    the path of its weights."""
    if kind not in MODEL_KINDS:
        raise ValueError(
            f"{section} {kind_name} must be one of {', '.join(MODEL_KINDS)}, got {kind!r}"
        )
    if kind == "learned" and not weights:
        raise ValueError(
            f"{section} {kind_name} 'learned' needs {weights_name}: the path of the exported "
            f".npz (`ram-core train ... --export FILE`)"
        )
    if kind == "analytic" and weights:
        raise ValueError(
            f"{section} {weights_name} is only read with {kind_name} 'learned' (it is "
            f"{kind!r}); remove it or set {kind_name}: learned"
        )


def _check_inputs(pose_aa: np.ndarray, transl: np.ndarray, valid: np.ndarray):
    pose_aa = np.asarray(pose_aa, dtype=np.float64)
    transl = np.asarray(transl, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    T = valid.shape[0] if valid.ndim == 1 else -1
    if pose_aa.shape != (T, 24, 3) or transl.shape != (T, 3):
        raise ValueError(
            f"expected pose (T, 24, 3), transl (T, 3), valid (T,); got {pose_aa.shape}, "
            f"{transl.shape}, {valid.shape}"
        )
    # Non-finite observations cannot feed a history.
    valid = valid & np.all(np.isfinite(pose_aa), axis=(1, 2)) & np.all(np.isfinite(transl), axis=1)
    return pose_aa, transl, valid


def _last_valid_before(valid: np.ndarray) -> np.ndarray:
    """Index of the last valid frame strictly before each frame, -1 where none.

    valid: (T, ...) bool, frames along the first axis (further axes: independent tracks)
    -> (T, ...) int.
    """
    T = valid.shape[0]
    frames = np.arange(T).reshape((T,) + (1,) * (valid.ndim - 1))
    marks = np.where(valid, frames, -1)
    if not T:
        return marks
    upto = np.maximum.accumulate(marks, axis=0)  # last valid at or before t
    return np.concatenate([np.full((1, *valid.shape[1:]), -1), upto[:-1]], axis=0)


def _damped_horizon(k: np.ndarray, damping: float) -> np.ndarray:
    """sum_{i=0..k-1} damping^i, elementwise over integer horizons k >= 0: the first frame
    ahead moves by the full velocity, each further one by ``damping`` times the last."""
    k = k.astype(np.float64)
    if damping >= 1.0:
        return k
    return (1.0 - damping**k) / (1.0 - damping)


def relax_fraction(config: PredictorConfig) -> float:
    """How far one hidden frame moves the body joints toward the usual pose, in [0, 1)."""
    return 0.0 if config.relax_frames <= 0.0 else float(-np.expm1(-1.0 / config.relax_frames))


def usual_poses(
    pose_aa: np.ndarray,
    valid: np.ndarray,
    window: int,
    track_start: np.ndarray | None = None,
) -> np.ndarray:
    """For each row t, the mean axis-angle of the valid rows among the ``window`` rows up
    to t (not before ``track_start[t]``, the first row of its track; default 0); zero where
    there is none. (T, J, 3), (T,) -> (T, J, 3). Joint rotations of one person stay within
    a small part of SO(3), where the mean of axis-angles is a fair mean rotation.
    """
    T = valid.shape[0]
    sums = np.zeros((T + 1, *pose_aa.shape[1:]))
    np.cumsum(np.where(valid[:, None, None], pose_aa, 0.0), axis=0, out=sums[1:])
    counts = np.concatenate([[0.0], np.cumsum(valid, dtype=np.float64)])
    upto = np.arange(1, T + 1)
    lower = np.maximum(upto - window, 0 if track_start is None else track_start)
    count = counts[upto] - counts[lower]
    return (sums[upto] - sums[lower]) / np.maximum(count, 1.0)[:, None, None]


def relax_toward(q: np.ndarray, usual: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The normalised lerp of unit quaternions q toward ``usual`` on the shorter arc, by
    ``weight``: (..., 4), (..., 4), (...) -> (..., 4)."""
    dot = np.sum(q * usual, axis=-1)
    w = np.copysign(weight, dot)[..., None]
    moved = q * (1.0 - np.abs(w)) + usual * w
    return moved / np.linalg.norm(moved, axis=-1, keepdims=True)


def _fill_before_first(pred_pose, pred_transl, pose_aa, transl, valid):
    """Frames before the first valid one take it; a track with none gets rest and zero."""
    if not np.any(valid):
        pred_pose[:] = 0.0
        pred_transl[:] = 0.0
        return
    first = int(np.argmax(valid))
    pred_pose[: first + 1] = pose_aa[first]
    pred_transl[: first + 1] = transl[first]


def hold_last_pose(
    pose_aa: np.ndarray,
    transl: np.ndarray,
    valid: np.ndarray,
    config: PredictorConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: each frame predicts the last valid frame before it.

    pose_aa: (T, 24, 3), transl: (T, 3), valid: (T,) -> (T, 24, 3), (T, 3).
    ``config`` is accepted for the same signature and unused.
    """
    del config
    pose_aa, transl, valid = _check_inputs(pose_aa, transl, valid)
    last = _last_valid_before(valid)
    pred_pose = pose_aa[np.maximum(last, 0)].copy()
    pred_transl = transl[np.maximum(last, 0)].copy()
    _fill_before_first(pred_pose, pred_transl, pose_aa, transl, valid)
    return pred_pose, pred_transl


def _rotation_velocity(
    pose_aa: np.ndarray, valid: np.ndarray, config: PredictorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """For each frame t: the last valid frame before it (T,), -1 where none, and the
    per-frame body-frame angular velocity (T, J, 3) measured between that frame and the
    valid one before it (zero when there is none or they are too far apart)."""
    last = _last_valid_before(valid)
    before_last = _last_valid_before(valid)
    prev = np.where(last >= 0, before_last[np.maximum(last, 0)], -1)
    gap = last - prev
    moving = (last >= 0) & (prev >= 0) & (gap <= config.max_velocity_gap)
    R = axis_angle_to_matrix(pose_aa)  # (T, J, 3, 3)
    relative = np.swapaxes(R[np.maximum(prev, 0)], -1, -2) @ R[np.maximum(last, 0)]
    velocity = matrix_to_axis_angle(relative) / np.maximum(gap, 1)[:, None, None]
    speed = np.linalg.norm(velocity, axis=-1, keepdims=True)
    velocity = velocity * np.minimum(1.0, config.max_angular_speed / np.maximum(speed, 1e-12))
    return last, np.where(moving[:, None, None], velocity, 0.0)


def predict_rotations(
    pose_aa: np.ndarray, valid: np.ndarray, config: PredictorConfig
) -> np.ndarray:
    """Damped constant angular velocity per joint, relaxing toward the usual pose while
    hidden (module docstring). (T, J, 3), (T,) -> (T, J, 3).

    Frames with no valid frame before them are left at zero (the caller fills them).
    """
    T = valid.shape[0]
    out = np.zeros_like(pose_aa)
    last, velocity = _rotation_velocity(pose_aa, valid, config)
    has_last = last >= 0
    if not np.any(has_last):
        return out
    R_last = axis_angle_to_matrix(pose_aa[np.maximum(last, 0)])
    horizon = _damped_horizon(np.arange(T) - last, config.damping)
    step = velocity * horizon[:, None, None]
    out[has_last] = matrix_to_axis_angle(R_last @ axis_angle_to_matrix(step))[has_last]
    fraction = relax_fraction(config)
    if fraction > 0.0:
        out = _relax_hidden(out, pose_aa, valid, last, velocity, config, fraction)
    return out


def _relax_hidden(
    extrapolated: np.ndarray,
    pose_aa: np.ndarray,
    valid: np.ndarray,
    last: np.ndarray,
    velocity: np.ndarray,
    config: PredictorConfig,
    fraction: float,
) -> np.ndarray:
    """The prediction k >= 2 frames after the last valid one, made as the Combiner's
    recursion makes it: frame t-1's prediction, moved by the damped velocity, relaxed."""
    T = valid.shape[0]
    ahead = np.arange(T) - last
    usual = axis_angle_to_quaternion(
        usual_poses(pose_aa, valid, config.usual_pose_frames)[np.maximum(last, 0)]
    )
    step = velocity * (config.damping ** np.maximum(ahead - 1, 0))[:, None, None]
    weight = np.full(pose_aa.shape[1], fraction)
    weight[0] = 0.0  # the global orientation keeps its own motion
    out = extrapolated.copy()
    q = axis_angle_to_quaternion(out)
    for k in range(2, int(ahead[last >= 0].max(initial=0)) + 1):
        frames = np.flatnonzero((last >= 0) & (ahead == k))
        moved = quaternion_multiply(q[frames - 1], axis_angle_to_quaternion(step[frames]))
        q[frames] = relax_toward(moved, usual[frames], weight)
    hidden = (last >= 0) & (ahead >= 2)
    out[hidden] = quaternion_to_axis_angle(q[hidden])
    return out


def _kalman_priors(transl: np.ndarray, valid: np.ndarray, config: PredictorConfig) -> np.ndarray:
    """Constant-velocity Kalman filter per axis over the valid frames.

    Returns the prior mean at each frame, (T, 3, 2) [position, velocity]; frames up to the
    first valid one are zero.
    """
    T = valid.shape[0]
    priors = np.zeros((T, 3, 2))
    if not np.any(valid):
        return priors
    first = int(np.argmax(valid))
    q = config.transl_accel_std_m**2
    Q = q * np.array([[0.25, 0.5], [0.5, 1.0]])  # white acceleration over one frame
    r = config.transl_meas_std_m**2
    # Per axis: mean (3, 2); the covariance is the same for all axes.
    mean = np.stack([transl[first], np.zeros(3)], axis=1)
    cov = np.diag([r, config.transl_init_speed_std_m**2])
    for t in range(first + 1, T):
        decay = 1.0 if valid[t - 1] else config.transl_damping
        F = np.array([[1.0, 1.0], [0.0, decay]])
        mean = mean @ F.T
        cov = F @ cov @ F.T + Q
        priors[t] = mean
        if valid[t]:
            innovation = transl[t] - mean[:, 0]  # (3,)
            gain = cov[:, 0] / (cov[0, 0] + r)  # (2,)
            mean = mean + innovation[:, None] * gain[None, :]
            cov = cov - np.outer(gain, cov[0, :])
    return priors


def predict_translation(
    transl: np.ndarray, valid: np.ndarray, config: PredictorConfig
) -> np.ndarray:
    """The Kalman filter's prior position at each frame. (T, 3), (T,) -> (T, 3).

    Frames up to the first valid one are left at zero (the caller fills them).
    """
    return _kalman_priors(transl, valid, config)[:, :, 0]


def prediction_steps(
    pose_aa: np.ndarray,
    transl: np.ndarray,
    valid: np.ndarray,
    config: PredictorConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The motion the Predictor expects from frame t-1 to frame t, for recursive use.

    Returns rot_step (T, J, 3), the body-frame rotation to apply to frame t-1's pose
    (the observed angular velocity times damping^(k-1), k frames after the last valid
    one), and transl_step (T, 3), the Kalman filter's prior velocity at t. Chaining the
    steps from the last valid frame reproduces ``predict_track``'s rotations.
    """
    config = config or PredictorConfig()
    pose_aa, transl, valid = _check_inputs(pose_aa, transl, valid)
    T = valid.shape[0]
    last, velocity = _rotation_velocity(pose_aa, valid, config)
    k = np.maximum(np.arange(T) - last, 1)
    rot_step = velocity * (config.damping ** (k - 1))[:, None, None]
    return rot_step, _kalman_priors(transl, valid, config)[:, :, 1]


def velocity_frames(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two frames a prediction's angular velocity is measured between.

    valid: (T, ...) bool, frames along the first axis (further axes: independent tracks).
    Returns (last, before), (T, ...) int each: the last valid frame strictly before each
    frame and the valid frame before that one, -1 where there is none.
    """
    last = _last_valid_before(valid)
    before = np.take_along_axis(last, np.maximum(last, 0), axis=0)
    return last, np.where(last >= 0, before, -1)


def rotation_step_quaternions(
    q_before: np.ndarray,
    q_last: np.ndarray,
    gap: np.ndarray,
    ahead: np.ndarray,
    config: PredictorConfig | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """``prediction_steps``' rotation step into frames, as quaternions, any number at once.

    q_before, q_last: (4, ...) unit quaternion components (w, x, y, z), the poses at the
    two last valid frames before each frame (``velocity_frames``), ``gap`` frames apart
    (0 where there are not two: no motion); ahead: how many frames the frame comes after
    q_last's (>= 1). gap and ahead broadcast against the planes (...). Returns (4, ...)
    (into ``out`` if given): the step that continues frame t-1's pose q as q * step (the
    Hamilton product, the step in the body frame), the rotation of ``rot_step``.
    """
    config = config or PredictorConfig()
    aw, ax, ay, az = q_before
    bw, bx, by, bz = q_last
    # a^-1 b: its angle (in [0, pi]) and unit axis, of the representative with w >= 0.
    w = aw * bw + ax * bx + ay * by + az * bz
    vx = aw * bx - bw * ax - ay * bz + az * by
    vy = aw * by - bw * ay - az * bx + ax * bz
    vz = aw * bz - bw * az - ax * by + ay * bx
    sin_half = np.sqrt(vx * vx + vy * vy + vz * vz)
    gap = np.asarray(gap)
    ahead = np.asarray(ahead)
    moving = (gap >= 1) & (gap <= config.max_velocity_gap)
    # The velocity (capped), damped by damping^(k-1) k frames ahead: a quarter of the
    # step's angle, whose tan gives the cos and sin of half of it (numpy's tan is several
    # times faster than its sin and cos).
    h = np.arctan2(sin_half, np.abs(w))
    h *= 2.0 / np.maximum(gap, 1)
    np.minimum(h, config.max_angular_speed, out=h)
    h *= 0.25 * config.damping ** (np.maximum(ahead, 1) - 1) * moving
    np.tan(h, out=h)
    h2 = h * h
    scale = 1.0 / (1.0 + h2)
    step = np.empty((4, *w.shape)) if out is None else out
    np.multiply(1.0 - h2, scale, out=step[0])
    scale *= 2.0 * h
    scale *= np.copysign(1.0, w)
    scale /= np.maximum(sin_half, 1e-300)  # sin(half) / |v|, signed
    for c, v in ((1, vx), (2, vy), (3, vz)):
        np.multiply(scale, v, out=step[c])
    return step


def predict_track(
    pose_aa: np.ndarray,
    transl: np.ndarray,
    valid: np.ndarray,
    config: PredictorConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Predict every frame of one track from the valid frames before it.

    pose_aa: (T, 24, 3) axis-angle (joint 0 = global orientation); transl: (T, 3) metres;
    valid: (T,) bool, which frames may feed the history. Returns (pred_pose_aa (T, 24, 3),
    pred_transl (T, 3)), always finite.
    """
    config = config or PredictorConfig()
    pose_aa, transl, valid = _check_inputs(pose_aa, transl, valid)
    pred_pose = predict_rotations(pose_aa, valid, config)
    pred_transl = predict_translation(transl, valid, config)
    _fill_before_first(pred_pose, pred_transl, pose_aa, transl, valid)
    return pred_pose, pred_transl
