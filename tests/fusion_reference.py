"""The Predictor + Combiner as they were before the batched version: one track at a time,
rotation matrices, a Python loop over frames. The batched ``fuse_tracks`` is tested against
it (``tests/test_fusion_batched.py``) and timed against it (``benchmarks/bench_combiner.py``,
``benchmarks/bench_artist_loop.py``)."""

from __future__ import annotations

import numpy as np

from ram_core.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
    quaternion_to_axis_angle,
    slerp_axis_angle,
)
from ram_core.motion.fusion import track_reconstruction, track_slices


def last_valid_before(valid):
    T = valid.shape[0]
    marks = np.where(valid, np.arange(T), -1)
    upto = np.maximum.accumulate(marks) if T else marks
    return np.concatenate([[-1], upto[:-1]]) if T else upto


def prediction_steps(pose_aa, transl, valid, config):
    """predictor.prediction_steps as it was: rot_step (T, J, 3), transl_step (T, 3)."""
    T = valid.shape[0]
    last = last_valid_before(valid)
    prev = np.where(last >= 0, last_valid_before(valid)[np.maximum(last, 0)], -1)
    gap = last - prev
    moving = (last >= 0) & (prev >= 0) & (gap <= config.max_velocity_gap)
    R = axis_angle_to_matrix(pose_aa)
    relative = np.swapaxes(R[np.maximum(prev, 0)], -1, -2) @ R[np.maximum(last, 0)]
    velocity = matrix_to_axis_angle(relative) / np.maximum(gap, 1)[:, None, None]
    speed = np.linalg.norm(velocity, axis=-1, keepdims=True)
    velocity = velocity * np.minimum(1.0, config.max_angular_speed / np.maximum(speed, 1e-12))
    velocity = np.where(moving[:, None, None], velocity, 0.0)
    k = np.maximum(np.arange(T) - last, 1)
    rot_step = velocity * (config.damping ** (k - 1))[:, None, None]

    priors = np.zeros((T, 3, 2))
    if np.any(valid):
        first = int(np.argmax(valid))
        q = config.transl_accel_std_m**2
        Q = q * np.array([[0.25, 0.5], [0.5, 1.0]])
        r = config.transl_meas_std_m**2
        mean = np.stack([transl[first], np.zeros(3)], axis=1)
        cov = np.diag([r, config.transl_init_speed_std_m**2])
        for t in range(first + 1, T):
            decay = 1.0 if valid[t - 1] else config.transl_damping
            F = np.array([[1.0, 1.0], [0.0, decay]])
            mean = mean @ F.T
            cov = F @ cov @ F.T + Q
            priors[t] = mean
            if valid[t]:
                innovation = transl[t] - mean[:, 0]
                gain = cov[:, 0] / (cov[0, 0] + r)
                mean = mean + innovation[:, None] * gain[None, :]
                cov = cov - np.outer(gain, cov[0, :])
    return rot_step, priors[:, :, 1]


def usual_pose(pose_aa, valid, upto, window):
    """The mean axis-angle of the valid frames among the ``window`` frames up to ``upto``."""
    frames = [t for t in range(max(0, upto - window + 1), upto + 1) if valid[t]]
    return np.mean(pose_aa[frames], axis=0) if frames else np.zeros(pose_aa.shape[1:])


def relax(pose_aa, usual_aa, fraction):
    """Body joints (not joint 0) a fraction of the way to the usual pose: the normalised
    lerp of quaternions on the shorter arc."""
    q, u = axis_angle_to_quaternion(pose_aa), axis_angle_to_quaternion(usual_aa)
    out = pose_aa.copy()
    for j in range(1, pose_aa.shape[0]):
        w = fraction if q[j] @ u[j] >= 0 else -fraction
        moved = q[j] * (1.0 - fraction) + u[j] * w
        out[j] = quaternion_to_axis_angle(moved / np.linalg.norm(moved))
    return out


def rate_limit(target, max_step):
    g = target.copy()
    for t in range(1, g.shape[0]):
        g[t] = min(g[t], g[t - 1] + max_step)
    for t in range(g.shape[0] - 2, -1, -1):
        g[t] = min(g[t], g[t + 1] + max_step)
    return g


def gate_of_track(reliability, occluded, recon_valid, config):
    z = np.nan_to_num(reliability, nan=0.0) - config.reliability_midpoint
    z = np.clip(z / config.reliability_width, -60.0, 60.0)
    g = 1.0 / (1.0 + np.exp(-z))
    g = np.where(occluded | ~recon_valid, 0.0, g)
    if config.max_gate_step < 1.0:
        g = rate_limit(g, config.max_gate_step)
    return np.clip(g, 0.0, 1.0)


def combine_track(recon_pose, recon_transl, gate, observed, config):
    recon_pose = np.asarray(recon_pose, dtype=np.float64)
    recon_transl = np.asarray(recon_transl, dtype=np.float64)
    gate = np.clip(np.nan_to_num(np.asarray(gate, dtype=np.float64)), 0.0, 1.0)
    T = gate.shape[0]
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
    last = last_valid_before(usable)
    fraction = 0.0 if config.relax_frames <= 0 else 1.0 - np.exp(-1.0 / config.relax_frames)
    for t in range(first + 1, T):
        pred_pose[t] = matrix_to_axis_angle(axis_angle_to_matrix(pose[t - 1]) @ step_R[t])
        if fraction > 0.0 and t - last[t] >= 2:
            usual = usual_pose(clean_pose, usable, last[t], config.usual_pose_frames)
            pred_pose[t] = relax(pred_pose[t], usual, fraction)
        pred_transl[t] = transl[t - 1] + transl_step[t]
        if gate[t] > 0.0:
            pose[t] = slerp_axis_angle(pred_pose[t], clean_pose[t], gate[t])
            transl[t] = pred_transl[t] + gate[t] * (clean_transl[t] - pred_transl[t])
        else:
            pose[t], transl[t] = pred_pose[t], pred_transl[t]
    return pose, transl, pred_pose, pred_transl


def fuse_tracks(tracks, predictor_config, combiner_config):
    out = {k: np.array(v, copy=True) for k, v in tracks.items()}
    for rows in track_slices(out["track_id"]):
        recon_pose, recon_transl, recon_valid, observed = track_reconstruction(out, rows)
        occluded = out["occluded"][rows].astype(bool)
        gate = gate_of_track(
            out["reliability"][rows].astype(np.float64), occluded, recon_valid, combiner_config
        )
        pose, transl, pred_pose, pred_transl = combine_track(
            recon_pose, recon_transl, gate, observed, predictor_config
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


# --------------------------------------------------------------------------- data
