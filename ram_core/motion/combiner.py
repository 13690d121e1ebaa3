"""The Combiner: a gate from observation reliability, and the blend it drives.

Blender re-runs this after the artist's edits: numpy + stdlib only.

The gate g in [0, 1] says how much to trust the reconstruction over the prediction:
- g = 0 where the frame is occluded or has no reconstruction;
- elsewhere g = logistic((reliability - midpoint) / width), so a clearly reliable frame
  follows the observation and a doubtful one leans on the prediction;
- optionally rate-limited in time (g may change by at most ``max_gate_step`` per frame,
  in both directions), so that when a person disappears behind someone or comes back the
  pose glides from one source to the other instead of jumping. A hard zero (occluded, no
  reconstruction) is kept: the limit only delays the return to the observation, and the
  fall to zero ramps in the frames *before* the hard zero (the table is offline, so we can
  look ahead).
The blend is a per-joint slerp from the prediction (g = 0) to the reconstruction (g = 1)
and a linear blend of the translation.

Two ways to run it over a track:
- ``combine`` blends a given prediction (``predictor.predict_track``, made from the
  observed frames only). Simple and stateless, but when a long gap ends the prediction
  re-anchors on the first new observation at once, so the blended pose jumps by whatever
  the extrapolation had drifted, however slowly the gate rises.
- ``combine_track`` applies the Predictor's motion (velocities measured on observed
  frames) to the *combined* frame before, so the output is continuous: after a gap it
  moves from the extrapolation toward the observation at the pace of the gate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ram_core.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle, slerp_axis_angle
from ram_core.motion.predictor import PredictorConfig, prediction_steps


@dataclass(frozen=True)
class CombinerConfig:
    """Settings of the gate.

    reliability_midpoint: the reliability at which the gate is 0.5.
    reliability_width: the logistic's scale; reliability one width above the midpoint gives
        g = 0.73, three widths above g = 0.95.
    max_gate_step: the most g may change from one frame to the next (1 = no rate limit).
    """

    reliability_midpoint: float = 0.5
    reliability_width: float = 0.08
    max_gate_step: float = 0.2

    def __post_init__(self) -> None:
        if self.reliability_width <= 0.0:
            raise ValueError("combiner reliability_width must be > 0")
        if not 0.0 < self.max_gate_step <= 1.0:
            raise ValueError("combiner max_gate_step must lie in (0, 1]")


def _rate_limit(target: np.ndarray, max_step: float) -> np.ndarray:
    """The largest sequence g <= target with |g[t] - g[t-1]| <= max_step.

    Two sweeps: a forward one limits how fast g rises, a backward one makes g fall early
    enough to reach every low target (such as a hard zero) in time.
    """
    g = target.copy()
    for t in range(1, g.shape[0]):
        g[t] = min(g[t], g[t - 1] + max_step)
    for t in range(g.shape[0] - 2, -1, -1):
        g[t] = min(g[t], g[t + 1] + max_step)
    return g


def gate_from_reliability(
    reliability: np.ndarray,
    occluded: np.ndarray,
    recon_valid: np.ndarray,
    config: CombinerConfig | None = None,
) -> np.ndarray:
    """The gate of one track. reliability (T,), occluded (T,) bool, recon_valid (T,) bool
    -> g (T,) float64 in [0, 1]."""
    config = config or CombinerConfig()
    reliability = np.asarray(reliability, dtype=np.float64)
    occluded = np.asarray(occluded, dtype=bool)
    recon_valid = np.asarray(recon_valid, dtype=bool)
    if not reliability.shape == occluded.shape == recon_valid.shape or reliability.ndim != 1:
        raise ValueError(
            f"reliability, occluded and recon_valid must be (T,) alike; got "
            f"{reliability.shape}, {occluded.shape}, {recon_valid.shape}"
        )
    z = np.nan_to_num(reliability, nan=0.0) - config.reliability_midpoint
    z = np.clip(z / config.reliability_width, -60.0, 60.0)  # exp overflow guard
    g = 1.0 / (1.0 + np.exp(-z))
    g = np.where(occluded | ~recon_valid, 0.0, g)
    if config.max_gate_step < 1.0:
        g = _rate_limit(g, config.max_gate_step)
    return np.clip(g, 0.0, 1.0)


def combine(
    recon_pose: np.ndarray,
    recon_transl: np.ndarray,
    pred_pose: np.ndarray,
    pred_transl: np.ndarray,
    gate: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend reconstruction and prediction frame by frame.

    recon_pose, pred_pose: (T, 24, 3) axis-angle; recon_transl, pred_transl: (T, 3);
    gate: (T,) in [0, 1]. Returns pose (T, 24, 3) (per-joint slerp, exactly the
    reconstruction at g = 1 and the prediction at g = 0) and transl (T, 3) (linear).
    """
    recon_pose = np.asarray(recon_pose, dtype=np.float64)
    pred_pose = np.asarray(pred_pose, dtype=np.float64)
    recon_transl = np.asarray(recon_transl, dtype=np.float64)
    pred_transl = np.asarray(pred_transl, dtype=np.float64)
    gate = np.clip(np.asarray(gate, dtype=np.float64), 0.0, 1.0)
    T = gate.shape[0]
    if (
        recon_pose.shape != pred_pose.shape
        or recon_pose.shape[:1] != (T,)
        or recon_transl.shape != (T, 3)
        or pred_transl.shape != (T, 3)
    ):
        raise ValueError(
            f"combine needs poses (T, J, 3), translations (T, 3) and gate (T,); got "
            f"{recon_pose.shape}, {pred_pose.shape}, {recon_transl.shape}, "
            f"{pred_transl.shape}, {gate.shape}"
        )
    joint_gate = np.broadcast_to(gate[:, None], recon_pose.shape[:2])
    pose = slerp_axis_angle(pred_pose, recon_pose, joint_gate)
    transl = pred_transl + gate[:, None] * (recon_transl - pred_transl)
    transl = np.where(gate[:, None] == 1.0, recon_transl, transl)
    return pose, transl


def combine_track(
    recon_pose: np.ndarray,
    recon_transl: np.ndarray,
    gate: np.ndarray,
    observed: np.ndarray,
    config: PredictorConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Predict and combine frame by frame, each prediction anchored on the combined frame
    before it.

    recon_pose: (T, J, 3) axis-angle; recon_transl: (T, 3); gate: (T,) in [0, 1];
    observed: (T,) bool, frames whose reconstruction may be used (elsewhere the gate is
    treated as 0 and ``recon_*`` may hold anything, NaN included).
    The motion from frame t-1 to t is the Predictor's (``predictor.prediction_steps``:
    velocities measured on the observed frames, damped while coasting); it is applied to
    the combined frame t-1 instead of the last observation. Before the first observed frame
    the output is that frame; a track with none gets the rest pose at zero translation.
    Returns pose (T, J, 3), transl (T, 3), pred_pose (T, J, 3), pred_transl (T, 3).
    """
    recon_pose = np.asarray(recon_pose, dtype=np.float64)
    recon_transl = np.asarray(recon_transl, dtype=np.float64)
    gate = np.clip(np.nan_to_num(np.asarray(gate, dtype=np.float64)), 0.0, 1.0)
    observed = np.asarray(observed, dtype=bool)
    T = gate.shape[0]
    if recon_pose.shape[:1] != (T,) or recon_transl.shape != (T, 3) or observed.shape != (T,):
        raise ValueError(
            f"combine_track needs pose (T, J, 3), transl (T, 3), gate and observed (T,); got "
            f"{recon_pose.shape}, {recon_transl.shape}, {gate.shape}, {observed.shape}"
        )
    usable = (
        observed
        & np.all(np.isfinite(recon_pose), axis=(1, 2))
        & np.all(np.isfinite(recon_transl), axis=1)
    )
    gate = np.where(usable, gate, 0.0)
    pose = np.zeros_like(recon_pose)
    transl = np.zeros((T, 3))
    pred_pose = np.zeros_like(recon_pose)
    pred_transl = np.zeros((T, 3))
    if not np.any(usable):
        return pose, transl, pred_pose, pred_transl
    clean_pose = np.where(usable[:, None, None], recon_pose, 0.0)
    clean_transl = np.where(usable[:, None], recon_transl, 0.0)
    rot_step, transl_step = prediction_steps(clean_pose, clean_transl, usable, config)
    step_R = axis_angle_to_matrix(rot_step)
    first = int(np.argmax(usable))
    pred_pose[: first + 1] = clean_pose[first]
    pred_transl[: first + 1] = clean_transl[first]
    pose[: first + 1] = clean_pose[first]
    transl[: first + 1] = clean_transl[first]
    for t in range(first + 1, T):
        pred_pose[t] = matrix_to_axis_angle(axis_angle_to_matrix(pose[t - 1]) @ step_R[t])
        pred_transl[t] = transl[t - 1] + transl_step[t]
        if gate[t] > 0.0:
            pose[t] = slerp_axis_angle(pred_pose[t], clean_pose[t], gate[t])
            transl[t] = pred_transl[t] + gate[t] * (clean_transl[t] - pred_transl[t])
        else:
            pose[t], transl[t] = pred_pose[t], pred_transl[t]
    return pose, transl, pred_pose, pred_transl
