"""Predictor + Combiner over a whole track table (numpy only, so Blender can run it too).

The pipeline calls this once at the end of a run; ``ram-core combine`` and the add-on call
it again after the artist's edits change which frames count as observed. It reads the
reconstruction (``recon_*``, ``recon_valid``) and the reliability columns and rewrites the
prediction (``pred_*``), the gate and the final pose columns.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from ram_core.motion.combiner import (
    CombinerConfig,
    combine_tracks,
    gate_from_learned,
    gate_from_reliability,
)
from ram_core.motion.learned import (
    LearnedGateWeights,
    LearnedPredictorWeights,
    load_learned_weights,
)
from ram_core.motion.predictor import PredictorConfig


def track_slices(track_id: np.ndarray) -> list[slice]:
    """Row ranges of each track in a table sorted by track then frame."""
    if track_id.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, track_id[1:] != track_id[:-1]])
    ends = np.r_[starts[1:], track_id.size]
    return [slice(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def track_reconstruction(
    table: dict[str, np.ndarray], rows: slice | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One track's reconstruction (or any rows'): pose (T, 24, 3) axis-angle, transl (T, 3),
    recon_valid (T,), and observed (T,): a real reconstruction not marked occluded, the
    frames that may feed a prediction."""
    pose = np.concatenate(
        [table["recon_global_orient"][rows, None, :], table["recon_body_pose"][rows]], axis=1
    ).astype(np.float64)
    transl = table["recon_transl"][rows].astype(np.float64)
    valid = table["recon_valid"][rows].astype(bool)
    observed = valid & ~table["occluded"][rows].astype(bool)
    return pose, transl, valid, observed


def fuse_tracks(
    tracks: dict[str, np.ndarray],
    predictor_config: PredictorConfig | None = None,
    combiner_config: CombinerConfig | None = None,
    track_ids: Iterable[int] | None = None,
    learned_predictor: LearnedPredictorWeights | None = None,
    learned_gate: LearnedGateWeights | None = None,
) -> dict[str, np.ndarray]:
    """Returns a new table with ``pred_*``, ``gate`` and the final pose filled in.

    A frame feeds the Predictor's history only when its reconstruction is real and it is
    not marked occluded; where the reconstruction is missing, ``recon_*`` take the
    prediction so the table never holds holes. ``track_ids``: fuse only these tracks (the
    add-on re-running the one an edit touched); the other rows are copied unchanged. The
    tracks run side by side (``combine_tracks``), each as it would on its own.

    A learned Predictor or gate (``kind`` / ``gate`` "learned") reads its weights from the
    path its config names, or takes them from ``learned_predictor`` / ``learned_gate``.
    """
    predictor_config = predictor_config or PredictorConfig()
    combiner_config = combiner_config or CombinerConfig()
    if combiner_config.gate == "learned" and learned_gate is None:
        learned_gate = load_learned_weights(combiner_config.gate_weights, "gate")
    elif combiner_config.gate == "analytic" and learned_gate is not None:
        raise ValueError("learned_gate was given but the Combiner's gate is 'analytic'")
    if predictor_config.kind == "learned" and learned_predictor is None:
        learned_predictor = load_learned_weights(predictor_config.weights, "predictor")
    out = {k: np.array(v, copy=True) for k, v in tracks.items()}
    slices = track_slices(out["track_id"])
    if track_ids is not None:
        wanted = {int(i) for i in track_ids}
        slices = [s for s in slices if int(out["track_id"][s.start]) in wanted]
    if not slices:
        return out
    lengths = np.array([s.stop - s.start for s in slices])
    contiguous = all(a.stop == b.start for a, b in itertools.pairwise(slices))
    rows: slice | np.ndarray = (
        slice(slices[0].start, slices[-1].stop)
        if contiguous
        else np.concatenate([np.arange(s.start, s.stop) for s in slices])
    )
    # The chosen tracks' rows, one after the other.
    offsets = np.cumsum(lengths) - lengths
    local = [slice(int(a), int(a + n)) for a, n in zip(offsets, lengths, strict=True)]
    recon_pose, recon_transl, recon_valid, observed = track_reconstruction(out, rows)
    occluded = out["occluded"][rows].astype(bool)

    # The gates, tracks as the rows of a padded (tracks, frames) layout; the padding
    # (reliable, observed) never binds the rate limit.
    frames = np.arange(lengths.max())
    padded = frames[None, :] < lengths[:, None]
    at = offsets[:, None] + np.minimum(frames[None, :], lengths[:, None] - 1)
    reliability = out["reliability"][rows].astype(np.float64)
    if combiner_config.gate == "learned":
        # Its features read neighbouring frames: the padding repeats each track's last.
        gate = gate_from_learned(
            reliability[at],
            occluded[at],
            recon_valid[at],
            learned_gate,
            combiner_config,
            inside=padded,
        )[padded]
    else:
        gate = gate_from_reliability(
            np.where(padded, reliability[at], 1e9),
            padded & occluded[at],
            ~padded | recon_valid[at],
            combiner_config,
        )[padded]
    # Each prediction continues the previous *combined* frame, so the output moves
    # back toward a returning observation only as fast as the gate opens.
    pose, transl, pred_pose, pred_transl = combine_tracks(
        recon_pose,
        recon_transl,
        gate,
        observed,
        local,
        predictor_config,
        learned_predictor,
    )
    recon_pose = np.where(recon_valid[:, None, None], recon_pose, pred_pose)
    recon_transl = np.where(recon_valid[:, None], recon_transl, pred_transl)

    out["recon_global_orient"][rows] = recon_pose[:, 0]
    out["recon_body_pose"][rows] = recon_pose[:, 1:]
    out["recon_transl"][rows] = recon_transl
    out["pred_global_orient"][rows] = pred_pose[:, 0]
    out["pred_body_pose"][rows] = pred_pose[:, 1:]
    out["pred_transl"][rows] = pred_transl
    out["gate"][rows] = gate
    out["global_orient"][rows] = pose[:, 0]
    out["body_pose"][rows] = pose[:, 1:]
    out["transl"][rows] = transl
    return out
