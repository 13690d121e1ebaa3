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
and a linear blend of the translation. ``CombinerConfig.gate`` "learned" takes g from the
learned gate instead of the logistic (``gate_from_learned``; the hard zero and the rate
limit stay), and ``PredictorConfig.kind`` "learned" the joint rotations' prediction from
the learned Predictor (``ram_core.motion.learned``), in the same recursion.

Two ways to run it over a track:
- ``combine`` blends a given prediction (``predictor.predict_track``, made from the
  observed frames only). Simple and stateless, but when a long gap ends the prediction
  re-anchors on the first new observation at once, so the blended pose jumps by whatever
  the extrapolation had drifted, however slowly the gate rises.
- ``combine_track`` applies the Predictor's motion (velocities measured on observed
  frames) to the *combined* frame before, so the output is continuous: after a gap it
  moves from the extrapolation toward the observation at the pace of the gate. This is
  recursive over frames; ``combine_tracks`` runs it for many tracks at once, the tracks
  and joints side by side on quaternions, so a frame costs a fixed few dozen numpy calls
  however many tracks there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ram_core.body.rotations import (
    axis_angle_to_quaternion,
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    slerp_axis_angle,
)
from ram_core.motion.learned import (
    LearnedGateWeights,
    LearnedPredictorWeights,
    gate_features,
    gate_probability,
    load_learned_weights,
    predict_next_rotations,
)
from ram_core.motion.predictor import (
    PredictorConfig,
    check_model_choice,
    relax_fraction,
    rotation_step_quaternions,
    usual_poses,
    velocity_frames,
)


@dataclass(frozen=True)
class CombinerConfig:
    """Settings of the gate.

    reliability_midpoint: the reliability at which the gate is 0.5.
    reliability_width: the logistic's scale; reliability one width above the midpoint gives
        g = 0.73, three widths above g = 0.95.
    max_gate_step: the most g may change from one frame to the next (1 = no rate limit).
    gate: "analytic" (the logistic above) or "learned": g from the learned gate
        (``ram_core.motion.learned``), with the same hard zero and rate limit; the midpoint
        and width are then unused.
    gate_weights: the learned gate's exported ``.npz`` (gate "learned" only). In a result's
        manifest: the copy inside the result folder, relative to it.
    """

    reliability_midpoint: float = 0.5
    reliability_width: float = 0.08
    max_gate_step: float = 0.2
    gate: str = "analytic"
    gate_weights: str = ""

    def __post_init__(self) -> None:
        check_model_choice("combiner", "gate", self.gate, "gate_weights", self.gate_weights)
        if self.reliability_width <= 0.0:
            raise ValueError("combiner reliability_width must be > 0")
        if not 0.0 < self.max_gate_step <= 1.0:
            raise ValueError("combiner max_gate_step must lie in (0, 1]")


def _rate_limit(target: np.ndarray, max_step: float) -> np.ndarray:
    """The largest sequence g <= target with |g[t] - g[t-1]| <= max_step, along the last
    axis (the rows of a 2-D array are independent sequences).

    That is g[t] = min over s of target[s] + |t - s| * max_step: a forward sweep limits how
    fast g rises, a backward one makes g fall early enough to reach every low target (such
    as a hard zero) in time. Each sweep doubles its reach per pass (the minimum over the last
    2d frames is the minimum over the last d, combined with the same d frames earlier), and
    frames further apart than (max - min of target) / max_step cannot bind.
    """
    g = np.array(target, dtype=np.float64)
    T = g.shape[-1] if g.ndim else 0
    if T < 2:
        return g
    span = float(np.max(g) - np.min(g))
    reach = T - 1 if not np.isfinite(span) else min(T - 1, int(np.ceil(span / max_step)))
    for backward in (False, True):
        shift, covered = 1, 0
        while covered < reach:
            shift = min(shift, reach - covered)
            if backward:
                np.minimum(g[..., :-shift], g[..., shift:] + shift * max_step, out=g[..., :-shift])
            else:
                np.minimum(g[..., shift:], g[..., :-shift] + shift * max_step, out=g[..., shift:])
            covered += shift
            shift *= 2
    return g


def _gate_inputs(
    reliability: np.ndarray, occluded: np.ndarray, recon_valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gate's inputs as arrays, checked to be (T,) or (N, T) alike."""
    reliability = np.asarray(reliability, dtype=np.float64)
    occluded = np.asarray(occluded, dtype=bool)
    recon_valid = np.asarray(recon_valid, dtype=bool)
    if not reliability.shape == occluded.shape == recon_valid.shape or reliability.ndim < 1:
        raise ValueError(
            f"reliability, occluded and recon_valid must be (T,) or (N, T) alike; got "
            f"{reliability.shape}, {occluded.shape}, {recon_valid.shape}"
        )
    return reliability, occluded, recon_valid


def gate_from_reliability(
    reliability: np.ndarray,
    occluded: np.ndarray,
    recon_valid: np.ndarray,
    config: CombinerConfig | None = None,
) -> np.ndarray:
    """The gate of one track. reliability (T,), occluded (T,) bool, recon_valid (T,) bool
    -> g (T,) float64 in [0, 1]. (N, T) inputs give the gates of N tracks of T frames."""
    config = config or CombinerConfig()
    reliability, occluded, recon_valid = _gate_inputs(reliability, occluded, recon_valid)
    z = np.nan_to_num(reliability, nan=0.0) - config.reliability_midpoint
    z = np.clip(z / config.reliability_width, -60.0, 60.0)  # exp overflow guard
    g = 1.0 / (1.0 + np.exp(-z))
    g = np.where(occluded | ~recon_valid, 0.0, g)
    if config.max_gate_step < 1.0:
        g = _rate_limit(g, config.max_gate_step)
    return np.clip(g, 0.0, 1.0)


def gate_from_learned(
    reliability: np.ndarray,
    occluded: np.ndarray,
    recon_valid: np.ndarray,
    weights: LearnedGateWeights,
    config: CombinerConfig | None = None,
    inside: np.ndarray | None = None,
) -> np.ndarray:
    """The learned gate of one track, (T,) each -> (T,), or of N tracks, (N, T) each.

    The learned g (``learned.gate_probability``) is zero where the frame is occluded or has
    no reconstruction and rate-limited by ``config.max_gate_step``, as the analytic gate.
    ``inside``: (N, T) bool, which columns are real frames when tracks of different
    lengths are padded to T (the padding should repeat each track's last frame, which the
    features then read as the analytic gate's edge does); padding never binds the limit.
    """
    config = config or CombinerConfig()
    reliability, occluded, recon_valid = _gate_inputs(reliability, occluded, recon_valid)
    if inside is None:
        inside = np.ones(reliability.shape, dtype=bool)
    features = gate_features(reliability, occluded, recon_valid, weights.radius)
    g = np.where(inside, gate_probability(weights, features), 1.0)
    g = np.where(inside & (occluded | ~recon_valid), 0.0, g)
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
    learned_predictor: LearnedPredictorWeights | None = None,
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
    With ``config.kind`` "learned" the rotations come from the learned Predictor instead
    (``combine_tracks``). Returns pose (T, J, 3), transl (T, 3), pred_pose (T, J, 3),
    pred_transl (T, 3).
    """
    gate = np.asarray(gate)
    T = gate.shape[0] if gate.ndim == 1 else -1
    return combine_tracks(
        recon_pose,
        recon_transl,
        gate,
        observed,
        [slice(0, max(T, 0))],
        config,
        learned_predictor,
    )


# Tracks combined side by side (frames x tracks rows, padded to the longest); more go in
# several batches, longest first, so that short tracks are not padded to a long one's length.
_BATCH_ROWS = 1 << 17
# Joint-frames whose quaternions are worked on at once (memory, cache).
_CHUNK_JOINT_FRAMES = 1 << 13
# The largest double below 1: the slerp's arccos then never gives 0, whose weights would be
# 0 / 0 (their limits 1 - g and g are reached to within 1e-16 at the angle this gives).
_BELOW_ONE = np.nextafter(1.0, 0.0)
# q1 * q2 = M(q1) q2 (the Hamilton product), M[c, b] = sign[c, b] q1[index[c, b]].
_LEFT_PRODUCT_INDEX = np.array([0, 1, 2, 3, 1, 0, 3, 2, 2, 3, 0, 1, 3, 2, 1, 0])
_LEFT_PRODUCT_SIGN = np.array([1, -1, -1, -1, 1, 1, -1, 1, 1, 1, 1, -1, 1, -1, 1, 1.0])


def combine_tracks(
    recon_pose: np.ndarray,
    recon_transl: np.ndarray,
    gate: np.ndarray,
    observed: np.ndarray,
    track_rows: Sequence[slice],
    config: PredictorConfig | None = None,
    learned_predictor: LearnedPredictorWeights | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``combine_track`` on many tracks at once, each its own rows of one table.

    recon_pose: (R, J, 3) axis-angle; recon_transl: (R, 3); gate: (R,); observed: (R,) bool;
    track_rows: the rows of each track (slices with step 1, not overlapping), its frames in
    order. Returns pose, transl, pred_pose, pred_transl shaped like the inputs: each track's
    rows as ``combine_track`` on those rows alone gives them, rows in no track zero.

    The recursion over frames runs once for all the tracks and joints side by side, on
    quaternions, so its cost per frame hardly depends on how many tracks there are.

    With ``config.kind`` "learned" each frame's joint rotations are the learned Predictor's
    next pose after the track's last ``window`` combined frames (``_combine_rotation_learned``,
    the tracks side by side too); ``learned_predictor``: its weights when the caller has
    loaded them (else read from ``config.weights``). The translation is the Kalman filter's
    either way.
    """
    config = config or PredictorConfig()
    learned = None
    if config.kind == "learned":
        learned = learned_predictor or load_learned_weights(config.weights, "predictor")
    elif learned_predictor is not None:
        raise ValueError("learned_predictor was given but the Predictor's kind is 'analytic'")
    recon_pose = np.asarray(recon_pose, dtype=np.float64)
    recon_transl = np.asarray(recon_transl, dtype=np.float64)
    gate = np.clip(np.nan_to_num(np.asarray(gate, dtype=np.float64)), 0.0, 1.0)
    observed = np.asarray(observed, dtype=bool)
    R = gate.shape[0] if gate.ndim == 1 else -1
    if (
        recon_pose.ndim != 3
        or recon_pose.shape[:1] != (R,)
        or recon_pose.shape[2] != 3
        or recon_transl.shape != (R, 3)
        or observed.shape != (R,)
    ):
        raise ValueError(
            f"combine_track needs pose (T, J, 3), transl (T, 3), gate and observed (T,); got "
            f"{recon_pose.shape}, {recon_transl.shape}, {gate.shape}, {observed.shape}"
        )
    starts = np.array([0 if s.start is None else s.start for s in track_rows], dtype=np.int64)
    stops = np.array([R if s.stop is None else s.stop for s in track_rows], dtype=np.int64)
    if any(s.step not in (None, 1) for s in track_rows) or np.any(
        (starts < 0) | (stops > R) | (starts > stops)
    ):
        raise ValueError(f"track_rows must be slices of rows within 0..{R} with step 1")
    usable = (
        observed
        & np.all(np.isfinite(recon_pose), axis=(1, 2))
        & np.all(np.isfinite(recon_transl), axis=1)
    )
    gate = np.where(usable, gate, 0.0)
    clean_transl = np.where(usable[:, None], recon_transl, 0.0)
    # Each row's usual pose (the Predictor's relaxation target), within its own track.
    usual_planes = None
    if learned is None and relax_fraction(config) > 0.0:
        track_start = np.zeros(R, dtype=np.int64)
        for start, stop in zip(starts, stops, strict=True):
            track_start[start:stop] = start
        clean_pose = np.where(usable[:, None, None], recon_pose, 0.0)
        usual = usual_poses(clean_pose, usable, config.usual_pose_frames, track_start)
        usual_planes = usual.transpose(2, 0, 1)
    outputs = pose, transl, pred_pose, pred_transl = (
        np.zeros_like(recon_pose),
        np.zeros((R, 3)),
        np.zeros_like(recon_pose),
        np.zeros((R, 3)),
    )

    # Each track's first usable row; a track with none stays at zero.
    usable_rows = np.flatnonzero(usable)
    if not usable_rows.size:
        return outputs
    at = np.searchsorted(usable_rows, starts)
    first = usable_rows[np.minimum(at, usable_rows.size - 1)]
    active = (at < usable_rows.size) & (first < stops)
    starts, stops, first = starts[active], stops[active], first[active]
    # From the first usable row on: in batches of tracks of similar length.
    spans = stops - first
    order = np.argsort(-spans, kind="stable")
    # The usable reconstruction as component planes, (3, R, J), 0 elsewhere.
    pose_planes = np.where(usable[None, :, None], recon_pose.transpose(2, 0, 1), 0.0)
    i = 0
    while i < order.size:
        count = max(1, min(order.size - i, _BATCH_ROWS // int(spans[order[i]])))
        batch = order[i : i + count]
        rows, inside = _batch_rows(first[batch], spans[batch])
        _combine_translation(clean_transl, gate, usable, rows, inside, config, outputs)
        if learned is None:
            _combine_rotation(
                pose_planes, usual_planes, gate, usable, rows, inside, config, outputs
            )
        else:
            _combine_rotation_learned(pose_planes, gate, rows, inside, learned, outputs)
        i += count
    # Exactly the prediction where g = 0 and the reconstruction where g = 1.
    covered = np.zeros(R + 1, dtype=np.int64)
    np.add.at(covered, first, 1)
    np.add.at(covered, stops, -1)
    covered = np.cumsum(covered[:-1]) > 0
    held = np.flatnonzero(covered & (gate == 0.0))
    pose[held] = pred_pose[held]
    followed = np.flatnonzero(covered & (gate == 1.0))
    pose[followed] = recon_pose[followed]  # (usable rows)
    # The rows up to each track's first usable one take it.
    lead = first - starts + 1
    lead_rows = np.arange(lead.sum()) + np.repeat(starts - (np.cumsum(lead) - lead), lead)
    source = np.repeat(first, lead)
    pose[lead_rows] = pred_pose[lead_rows] = recon_pose[source]
    transl[lead_rows] = pred_transl[lead_rows] = clean_transl[source]
    return outputs


def _batch_rows(first: np.ndarray, spans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tracks side by side from their first usable row: (L, n) table rows, frame-major,
    row 0 each track's first usable frame, and (L, n) whether the row is the track's (the
    shorter tracks are padded at the end with their last row, unused and dropped)."""
    steps = np.arange(int(spans.max()))[:, None]
    inside = steps < spans[None, :]
    return first[None, :] + np.minimum(steps, spans[None, :] - 1), inside


def _combine_translation(
    clean_transl: np.ndarray,
    gate: np.ndarray,
    usable: np.ndarray,
    rows: np.ndarray,
    inside: np.ndarray,
    config: PredictorConfig,
    outputs: tuple[np.ndarray, ...],
) -> None:
    """Translation of tracks laid out by ``_batch_rows``: the Kalman filter's prior velocity
    moves the combined translation before, then the gate blends in the reconstruction.

    The covariance (shared by the three axes), and so the gains, do not depend on the data:
    a first pass finds them; the means and the combined translation are then linear in the
    state before, one small matrix product per frame.
    """
    L, n = rows.shape
    x = clean_transl[rows]  # (L, n, 3)
    usable_f = (usable[rows] & inside).astype(np.float64)
    g = np.where(inside, gate[rows], 0.0)
    # The velocity decays in a frame that follows an unusable one.
    decay = np.ones((L, n))
    decay[1:] = np.where(usable_f[:-1] > 0.0, 1.0, config.transl_damping)

    r = config.transl_meas_std_m**2
    q = config.transl_accel_std_m**2
    # The covariance per track as (c00, c01, c10, c11, c00 + r, 1); its prior F C F^T + Q,
    # F = [[1, 1], [0, d]], is (c00 + c01 + c10 + c11, d (c01 + c11), d (c10 + c11),
    # d^2 c11) + q (1/4, 1/2, 1/2, 1): one matrix per track and frame.
    to_prior = np.zeros((L, n, 5, 6))
    to_prior[:, :, 0, :4] = 1.0
    to_prior[:, :, 1, [1, 3]] = decay[..., None]
    to_prior[:, :, 2, [2, 3]] = decay[..., None]
    to_prior[:, :, 3, 3] = decay * decay
    to_prior[:, :, 4, :4] = 1.0
    to_prior[:, :, :, 5] = q * np.array([0.25, 0.5, 0.5, 1.0, 0.25]) + [0, 0, 0, 0, r]
    covs = np.zeros((2, n, 6, 1))  # the covariance before and after a frame, in turns
    covs[:, :, 5] = 1.0
    covs[0, :, :4, 0] = [r, 0.0, 0.0, config.transl_init_speed_std_m**2]
    turns = ((covs[0], covs[1, :, :5]), (covs[1], covs[0, :, :5]))
    gains = np.zeros((L, n, 2, 1))  # the (position, velocity) gain, 0 where not usable
    usable_f = usable_f[:, :, None, None]
    change = np.empty((n, 2, 2))
    matmul, multiply, divide = np.matmul, np.multiply, np.divide
    for t in range(1, L):
        cov, prior = turns[(t - 1) % 2]
        matmul(to_prior[t], cov, out=prior)
        # (c00, c10) / (c00 + r) where usable
        gain = divide(prior[:, 0:3:2], prior[:, 4:5], out=gains[t])
        gain *= usable_f[t]
        multiply(gain, prior[:, None, :2, 0], out=change)  # gain (c00, c01)
        prior[:, :4, 0] -= change.reshape(n, 4)

    # The state (position, velocity, combined translation) per axis after frame t:
    # p = (1 - k0) (p + v) + k0 x; v = d v - k1 (p + v) + k1 x; T = (1 - g) (T + d v) + g x,
    # with x, frame t's reconstruction, kept as a 4th row of the state before (so one
    # product per frame does it all).
    k0, k1 = gains[:, :, 0, 0], gains[:, :, 1, 0]
    zero = np.zeros_like(k0)
    step = np.stack(
        [
            np.stack([1.0 - k0, 1.0 - k0, zero, k0], axis=-1),
            np.stack([-k1, decay - k1, zero, k1], axis=-1),
            np.stack([zero, (1.0 - g) * decay, 1.0 - g, g], axis=-1),
        ],
        axis=-2,
    )  # (L, n, 3, 4)
    state = np.empty((L, n, 4, 3))
    state[0, :, 0] = state[0, :, 2] = x[0]
    state[0, :, 1] = 0.0
    state[:-1, :, 3] = x[1:]
    for t in range(1, L):
        matmul(step[t], state[t - 1], out=state[t, :, :3])
    combined = state[:, :, 2]
    predicted = np.empty_like(combined)
    predicted[0] = x[0]
    predicted[1:] = combined[:-1] + decay[1:, :, None] * state[:-1, :, 1]
    _, transl, _, pred_transl = outputs
    taken = rows[inside]
    transl[taken] = combined[inside]
    pred_transl[taken] = predicted[inside]


def _combine_rotation(
    pose_planes: np.ndarray,
    usual_planes: np.ndarray | None,
    gate: np.ndarray,
    usable: np.ndarray,
    rows: np.ndarray,
    inside: np.ndarray,
    config: PredictorConfig,
    outputs: tuple[np.ndarray, ...],
) -> None:
    """Joint rotations of tracks laid out by ``_batch_rows``: the Predictor's step continues
    the combined frame before, the slerp by the gate toward the reconstruction gives the
    combined frame. Quaternions, laid out (frame, component, track, joint) so that one
    frame's step works on contiguous (4, n, J) arrays with few numpy calls; the frames in
    chunks, each prepared (quaternions, the Predictor's steps) and written back at once.

    The slerp is the one of ``rotations.slerp_axis_angle`` (shorter arc; g = 0 and g = 1
    are made exact afterwards, by ``combine_tracks``); its weights come from tan, not sin.
    While a person is hidden (two or more frames after the last usable one) the predicted
    body joints move toward the usual pose at that last frame (``usual_planes``, (3, R, J)
    axis-angle; None: no relaxation), as ``predictor.relax_toward`` moves them.
    """
    L, n = rows.shape
    J = pose_planes.shape[2]
    recon = np.empty((L, 4, n, J))  # filled chunk by chunk
    usable_rows = usable[rows] & inside
    g = np.where(inside, gate[rows], 0.0)
    # The slerp's weights are sin((1 - g) w) and sin(g w) over sin(w); these halve the angle.
    half_gate = 0.5 * np.stack([1.0 - g, g, np.ones_like(g)], axis=1)[..., None]
    # The Predictor's step into each frame, from the two valid frames before it.
    last, before = velocity_frames(usable_rows)
    pick = (np.arange(4)[None, :, None], np.arange(n)[None, None, :])
    gap = np.where(before >= 0, last - before, 0)[..., None]
    ahead = (np.arange(L)[:, None] - last)[..., None]
    # The relaxation toward the usual pose: its weight per frame and track (joint 0, the
    # global orientation, keeps its own motion), and the rows whose usual pose it targets.
    relax_w = np.zeros((L, n))
    if usual_planes is not None:
        relax_w = np.where((last >= 0) & (ahead[..., 0] >= 2), relax_fraction(config), 0.0)
    relaxing = relax_w.any(axis=1)
    usual_rows = rows[np.maximum(last, 0), np.arange(n)[None, :]]
    joint_weight = np.ones(J)
    joint_weight[0] = 0.0
    last = np.maximum(last, 0)[:, None, :]
    before = np.maximum(before, 0)[:, None, :]

    pose, _, pred_pose, _ = outputs
    chunk = max(1, _CHUNK_JOINT_FRAMES // (n * J))
    state = recon[0]
    x = np.empty((3, n, J))
    y = np.empty((3, n, J))
    omega = np.empty((n, J))
    weights = np.empty((2, n, J))
    blend = np.empty((4, n, J))
    pose_aa = np.empty((chunk, n, J, 3))
    pred_aa = np.empty((chunk, n, J, 3))
    step_buf = np.empty((chunk, 4, n, J))
    left = np.empty((16, n, J))
    left4 = left.reshape(4, 4, n, J)
    sign = _LEFT_PRODUCT_SIGN[:, None, None]
    combined_buf = np.empty((chunk, 4, n, J))
    predicted_buf = np.empty((chunk, 4, n, J))
    usual_buf = np.empty((chunk, 4, n, J))
    relax = np.empty((n, J))
    einsum, absolute, minimum, arccos = np.einsum, np.abs, np.minimum, np.arccos
    multiply, tan, add, divide, copysign = np.multiply, np.tan, np.add, np.divide, np.copysign
    take = np.take
    for c0 in range(0, L, chunk):
        c1 = min(L, c0 + chunk)
        K = c1 - c0
        recon_aa = pose_planes[:, rows[c0:c1]]  # (3, K, n, J)
        _axis_angle_to_quaternion_planes(recon_aa, recon[c0:c1].transpose(1, 0, 2, 3))
        # (The two frames before a frame come before it: in this chunk or an earlier one.)
        step = step_buf[:K]
        rotation_step_quaternions(
            recon[(before[c0:c1], *pick)].transpose(1, 0, 2, 3),
            recon[(last[c0:c1], *pick)].transpose(1, 0, 2, 3),
            gap[c0:c1],
            ahead[c0:c1],
            config,
            out=step.transpose(1, 0, 2, 3),
        )
        combined = combined_buf[:K]
        predicted = predicted_buf[:K]
        usual_q = usual_buf[:K]
        if usual_planes is not None and relaxing[c0:c1].any():
            _axis_angle_to_quaternion_planes(
                usual_planes[:, usual_rows[c0:c1]], usual_q.transpose(1, 0, 2, 3)
            )
        for k in range(K):
            rec = recon[c0 + k]
            if c0 + k == 0:
                combined[k] = predicted[k] = rec
                continue
            # state * step = M(state) step, M's entries signed components of state.
            take(state, _LEFT_PRODUCT_INDEX, axis=0, out=left)
            multiply(left, sign, out=left)
            pred = einsum("cbnj,bnj->cnj", left4, step[k], out=predicted[k])
            if relaxing[c0 + k]:
                # The normalised lerp toward the usual pose, on the shorter arc.
                np.outer(relax_w[c0 + k], joint_weight, out=relax)
                copysign(relax, einsum("cnj,cnj->nj", pred, usual_q[k]), out=relax)
                multiply(pred, 1.0 - absolute(relax), out=pred)
                add(pred, multiply(usual_q[k], relax, out=blend), out=pred)
                divide(pred, np.sqrt(einsum("cnj,cnj->nj", pred, pred)), out=pred)
            dot = einsum("cnj,cnj->nj", pred, rec)
            absolute(dot, out=omega)
            minimum(omega, _BELOW_ONE, out=omega)
            arccos(omega, out=omega)
            # sin(a w) ~ tan(a w / 2) / (1 + tan^2): numpy's tan is faster than its sin.
            multiply(omega, half_gate[c0 + k], out=x)
            tan(x, out=x)
            multiply(x, x, out=y)
            add(y, 1.0, out=y)
            divide(x, y, out=x)
            divide(x[:2], x[2], out=weights)
            copysign(weights[1], dot, out=weights[1])  # the shorter arc
            state = multiply(pred, weights[0], out=combined[k])
            add(state, multiply(rec, weights[1], out=blend), out=state)

        # Back to axis-angle, (K, n, J, 3), and into the tracks' rows.
        _quaternion_to_axis_angle_planes(combined.transpose(1, 0, 2, 3), pose_aa[:K])
        _quaternion_to_axis_angle_planes(predicted.transpose(1, 0, 2, 3), pred_aa[:K])
        keep = inside[c0:c1]
        taken = rows[c0:c1][keep]
        pose[taken] = pose_aa[:K][keep]
        pred_pose[taken] = pred_aa[:K][keep]


def _combine_rotation_learned(
    pose_planes: np.ndarray,
    gate: np.ndarray,
    rows: np.ndarray,
    inside: np.ndarray,
    weights: LearnedPredictorWeights,
    outputs: tuple[np.ndarray, ...],
) -> None:
    """Joint rotations of tracks laid out by ``_batch_rows``, the prediction from the learned
    Predictor: for each frame, the model reads every track's last ``window`` combined frames
    (a ring of rotation matrices; before a track's first usable frame, that frame) and its
    next pose is slerped toward the reconstruction by the gate (``quaternion_slerp``; g = 0
    and g = 1 are made exact by ``combine_tracks``). Where the gate is 0 the reconstruction
    is unused (``pose_planes`` holds 0 there).
    """
    L = rows.shape[0]
    g = np.where(inside, gate[rows], 0.0)  # (L, n)
    recon_q = axis_angle_to_quaternion(pose_planes[:, rows].transpose(1, 2, 3, 0))  # (L, n, J, 4)
    combined = np.empty_like(recon_q)
    predicted = np.empty_like(recon_q)
    combined[0] = predicted[0] = recon_q[0]
    W = weights.window
    history = np.empty((W, *recon_q.shape[1:3], 3, 3))  # frame s in slot s % W
    history[:] = quaternion_to_matrix(recon_q[0])
    for t in range(1, L):
        window = history[(t + np.arange(W)) % W].swapaxes(0, 1)  # frames t - W .. t - 1
        predicted[t] = matrix_to_quaternion(predict_next_rotations(weights, window)[:, 0])
        combined[t] = quaternion_slerp(predicted[t], recon_q[t], g[t][:, None])
        history[t % W] = quaternion_to_matrix(combined[t])
    pose, _, pred_pose, _ = outputs
    taken = rows[inside]
    pose[taken] = quaternion_to_axis_angle(combined[inside])
    pred_pose[taken] = quaternion_to_axis_angle(predicted[inside])


def _axis_angle_to_quaternion_planes(aa: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(3, ...) axis-angle components -> (4, ...) unit (w, x, y, z) components (into
    ``out`` if given).

    cos and sin of half the angle come from tan of a quarter of it (numpy's tan is several
    times faster than its sin and cos); the identities hold at any angle.
    """
    x, y, z = aa
    theta = np.sqrt(x * x + y * y + z * z)
    h = np.tan(0.25 * theta)
    h2 = h * h
    scale = 1.0 / (1.0 + h2)
    q = np.empty((4, *theta.shape)) if out is None else out
    np.multiply(1.0 - h2, scale, out=q[0])
    scale *= 2.0 * h
    scale /= np.maximum(theta, 1e-300)  # sin(theta / 2) / theta
    for c in range(3):
        np.multiply(scale, aa[c], out=q[c + 1])
    return q


def _quaternion_to_axis_angle_planes(q: np.ndarray, out: np.ndarray) -> None:
    """(4, ...) (w, x, y, z) components, any norm -> ``out`` (..., 3) axis-angle, angle in
    [0, pi]."""
    w, x, y, z = q
    sin_half = np.sqrt(x * x + y * y + z * z)
    scale = np.arctan2(sin_half, np.abs(w))
    scale *= np.copysign(2.0, w)
    scale /= np.maximum(sin_half, 1e-300)
    for c, v in enumerate((x, y, z)):
        np.multiply(scale, v, out=out[..., c])
