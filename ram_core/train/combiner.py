"""Training the learned Combiner gate end to end, on motion windows with simulated trouble.

A sample is ``length`` frames of a clip, taken as the truth. Its reconstruction is made
from it: a little rotation noise on every joint, and
- corrupted runs (a reconstruction gone wrong): much more noise, and a reliability that
  falls with how bad the frame is (plus noise, so it is only a hint);
- at most one occluded stretch: marked occluded, the reconstruction missing on half of
  them; the gate is zero there whatever it learns, the prediction fills them.
The first frame is clean (a track starts on a usable frame).

The gate (``LearnedGateModel`` on ``learned.gate_features``, then the analytic gate's hard
zero and rate limit) drives the Combiner's recursion as ``combiner.combine_tracks`` runs
it: each frame's prediction continues the previous *combined* frame, then the slerp by g
toward the reconstruction. The loss is the combined pose's error against the truth
(``predictor.pose_error``), so the gate learns when the reconstruction beats the
prediction, through the recursion. Only joint rotations are combined here: the
translation's blend uses the same g and is left out of the loss.

The prediction is the one the gate will run with: the analytic Predictor as the default
settings run it (the last combined pose held, the body relaxing toward the usual pose
while hidden; its angular velocity, ``max_velocity_gap`` > 0, is not modelled here), or a
learned Predictor (its weights frozen).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ram_core.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    matrix_to_axis_angle,
)
from ram_core.motion.combiner import CombinerConfig
from ram_core.motion.learned import LearnedPredictorWeights, gate_features
from ram_core.motion.predictor import PredictorConfig, relax_fraction, usual_poses
from ram_core.train.loop import TrainResult, train_loop
from ram_core.train.motion_data import MotionClip, MotionWindows
from ram_core.train.motion_models import LearnedGateModel, export_numpy, model_from_weights
from ram_core.train.predictor import pose_error
from ram_core.train.torch_rotations import (
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
)


@dataclass(frozen=True)
class GateTrainConfig:
    """The gate model (radius, hidden_sizes, layer_norm: see ``learned.LearnedGateWeights``)
    and the simulated trouble.

    length: frames per sample.
    clean_noise_rad: rotation noise (std per axis, rad) on every reconstructed joint.
    corrupt_start_rate: the chance that a frame starts a corrupted run.
    corrupt_run_frames: (shortest, longest) corrupted run.
    corrupt_noise_rad: extra rotation noise at the worst corrupted frame.
    reliability_noise: std of the noise on the reliability.
    occlusion_rate: the chance that a sample holds an occluded stretch.
    occlusion_frames: (shortest, longest) occluded stretch.
    mirror: half the samples mirrored left to right.
    rotation_weight: the rotation term's weight in the loss.
    """

    radius: int = 2
    hidden_sizes: tuple[int, ...] = (32, 32)
    layer_norm: bool = False
    length: int = 32
    clean_noise_rad: float = 0.03
    corrupt_start_rate: float = 0.06
    corrupt_run_frames: tuple[int, int] = (1, 6)
    corrupt_noise_rad: float = 0.6
    reliability_noise: float = 0.12
    occlusion_rate: float = 0.5
    occlusion_frames: tuple[int, int] = (3, 16)
    mirror: bool = True
    rotation_weight: float = 0.1

    def __post_init__(self) -> None:
        if self.length < 2 or self.radius < 0:
            raise ValueError("gate training needs length >= 2 and radius >= 0")
        for low, high in (self.corrupt_run_frames, self.occlusion_frames):
            if not 1 <= low <= high:
                raise ValueError("run lengths must be (shortest, longest) with 1 <= shortest")


@dataclass(frozen=True)
class GateBatch:
    """A batch of B samples of L frames: truth (B, L, 24, 3, 3); recon_q (B, L, 24, 4)
    (identity where unusable); features (B, L, F); usable (B, L); usual_q (B, L, 24, 4)
    and relax (B, L): the analytic Predictor's relaxation target and weight per frame."""

    truth: torch.Tensor
    recon_q: torch.Tensor
    features: torch.Tensor
    usable: torch.Tensor
    usual_q: torch.Tensor
    relax: torch.Tensor


def _runs(rng: np.random.Generator, B: int, L: int, rate: float, span: tuple[int, int]):
    """(B, L) bool: runs of span[0]..span[1] frames, each frame starting one with ``rate``."""
    marked = np.zeros((B, L), dtype=bool)
    starts = np.argwhere(rng.random((B, L)) < rate)
    lengths = rng.integers(span[0], span[1] + 1, size=len(starts))
    for (b, t), n in zip(starts, lengths, strict=True):
        marked[b, t : t + n] = True
    return marked


def simulate_gate_batch(
    truth: np.ndarray,
    rng: np.random.Generator,
    config: GateTrainConfig,
    predictor: PredictorConfig,
) -> GateBatch:
    """Corrupt windows of true motion (module docstring). truth: (B, L, 24, 3, 3)."""
    B, L = truth.shape[:2]
    severity = np.where(
        _runs(rng, B, L, config.corrupt_start_rate, config.corrupt_run_frames),
        rng.uniform(0.3, 1.0, (B, L)),
        0.0,
    )
    severity[:, 0] = 0.0
    reliability = np.clip(
        0.9 - 0.7 * severity + rng.normal(0.0, config.reliability_noise, (B, L)), 0.0, 1.0
    )
    noise_std = config.clean_noise_rad + severity * config.corrupt_noise_rad
    noise = rng.normal(size=(B, L, 24, 3)) * noise_std[..., None, None]
    recon = truth @ axis_angle_to_matrix(noise)

    occluded = np.zeros((B, L), dtype=bool)
    recon_valid = np.ones((B, L), dtype=bool)
    for b in np.flatnonzero(rng.random(B) < config.occlusion_rate):
        n = int(rng.integers(config.occlusion_frames[0], config.occlusion_frames[1] + 1))
        start = int(rng.integers(1, max(2, L - n + 1)))
        occluded[b, start : start + n] = True
        if rng.random() < 0.5:
            recon_valid[b, start : start + n] = False
        reliability[b, start : start + n] = rng.uniform(0.0, 0.5, min(n, L - start))
    usable = recon_valid & ~occluded

    recon_aa = np.where(usable[..., None, None], matrix_to_axis_angle(recon), 0.0)
    features = gate_features(reliability, occluded, recon_valid, config.radius)
    # The analytic Predictor's relaxation toward the usual pose at the last usable frame.
    usual = np.zeros((B, L, 24, 3))
    relax = np.zeros((B, L))
    fraction = relax_fraction(predictor)
    frames = np.arange(L)
    for b in range(B):
        last = np.maximum.accumulate(np.where(usable[b], frames, -1))
        last = np.r_[-1, last[:-1]]
        usual[b] = usual_poses(recon_aa[b], usable[b], predictor.usual_pose_frames)[
            np.maximum(last, 0)
        ]
        relax[b] = np.where((last >= 0) & (frames - last >= 2), fraction, 0.0)

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float32))

    return GateBatch(
        truth=tensor(truth),
        recon_q=tensor(axis_angle_to_quaternion(recon_aa)),
        features=tensor(features),
        usable=torch.as_tensor(usable),
        usual_q=tensor(axis_angle_to_quaternion(usual)),
        relax=tensor(relax),
    )


def rate_limit(target: torch.Tensor, max_step: float) -> torch.Tensor:
    """``combiner._rate_limit`` in torch along the last axis: a forward sweep limits the
    rise, a backward one the fall (together the min over s of target[s] + |t - s| step)."""
    columns = list(target.unbind(-1))
    for t in range(1, len(columns)):
        columns[t] = torch.minimum(columns[t], columns[t - 1] + max_step)
    for t in range(len(columns) - 2, -1, -1):
        columns[t] = torch.minimum(columns[t], columns[t + 1] + max_step)
    return torch.stack(columns, dim=-1)


def gate_of_batch(
    model: LearnedGateModel, batch: GateBatch, combiner: CombinerConfig
) -> torch.Tensor:
    """``combiner.gate_from_learned`` in torch: (B, L)."""
    g = torch.where(batch.usable, model(batch.features), torch.zeros(()))
    if combiner.max_gate_step < 1.0:
        g = rate_limit(g, combiner.max_gate_step)
    return g.clamp(0.0, 1.0)


def _relax_toward(q: torch.Tensor, usual: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``predictor.relax_toward`` for the body joints (joint 0 keeps its own), weight (B,)."""
    w = weight[:, None].expand(q.shape[:2]).clone()
    w[:, 0] = 0.0
    w = torch.copysign(w, (q * usual).sum(dim=-1))[..., None]
    moved = q * (1.0 - w.abs()) + usual * w
    return moved / torch.linalg.vector_norm(moved, dim=-1, keepdim=True)


def combine_batch(
    g: torch.Tensor, batch: GateBatch, learned_predictor: torch.nn.Module | None
) -> torch.Tensor:
    """The Combiner's recursion over a batch: (B, L) gate -> (B, L, 24, 4) combined."""
    L = g.shape[1]
    combined = [batch.recon_q[:, 0]]
    history = None
    if learned_predictor is not None:
        start = quaternion_to_matrix(batch.recon_q[:, 0])
        history = [start] * learned_predictor.window
    for t in range(1, L):
        if learned_predictor is None:
            predicted = combined[-1]
            if bool((batch.relax[:, t] > 0).any()):
                predicted = _relax_toward(predicted, batch.usual_q[:, t], batch.relax[:, t])
        else:
            window = torch.stack(history[-learned_predictor.window :], dim=1)
            predicted = matrix_to_quaternion(learned_predictor.predict_next(window)[:, 0])
        state = quaternion_slerp(predicted, batch.recon_q[:, t], g[:, t, None].expand(-1, 24))
        combined.append(state)
        if history is not None:
            history.append(quaternion_to_matrix(state))
    return torch.stack(combined, dim=1)


def gate_loss(
    model: LearnedGateModel,
    batch: GateBatch,
    combiner: CombinerConfig,
    learned_predictor: torch.nn.Module | None,
    rotation_weight: float,
) -> torch.Tensor:
    combined = combine_batch(gate_of_batch(model, batch, combiner), batch, learned_predictor)
    return pose_error(quaternion_to_matrix(combined[:, 1:]), batch.truth[:, 1:], rotation_weight)


def train_combiner(
    config: GateTrainConfig,
    data: Sequence[MotionClip],
    *,
    predictor: PredictorConfig | None = None,
    learned_predictor: LearnedPredictorWeights | None = None,
    combiner: CombinerConfig | None = None,
    steps: int = 1000,
    batch_size: int = 32,
    lr: float = 3e-3,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    checkpoint_every: int = 200,
    seed: int = 0,
    export: str | Path | None = None,
) -> tuple[LearnedGateModel, TrainResult]:
    """Train a learned gate on ``data`` for the Predictor it will run with: the analytic
    one with ``predictor``'s settings, or ``learned_predictor`` (frozen); the rate limit is
    ``combiner``'s. Export it for numpy when ``export`` is given. Returns the model (eval
    mode) and the loop's result."""
    predictor = predictor or PredictorConfig()
    combiner = combiner or CombinerConfig()
    if learned_predictor is None and predictor.kind == "analytic" and predictor.max_velocity_gap:
        raise ValueError(
            "gate training models the analytic Predictor without angular velocity; use "
            "max_velocity_gap 0 (the default) or a learned Predictor"
        )
    frozen = None
    if learned_predictor is not None:
        frozen = model_from_weights(learned_predictor).eval()
        for parameter in frozen.parameters():
            parameter.requires_grad_(False)
    windows = MotionWindows(data, 1, config.length - 1, config.mirror)
    torch.manual_seed(seed)
    model = LearnedGateModel(config.radius, config.hidden_sizes, config.layer_norm)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def make_batch(step: int, rng: np.random.Generator) -> GateBatch:
        return simulate_gate_batch(windows.sample(rng, batch_size), rng, config, predictor)

    def loss_fn(model: LearnedGateModel, batch: GateBatch) -> torch.Tensor:
        return gate_loss(model, batch, combiner, frozen, config.rotation_weight)

    record = {
        "model": "gate",
        **dataclasses.asdict(config),
        "predictor": dataclasses.asdict(predictor),
        "learned_predictor": learned_predictor.sha256 if learned_predictor else None,
        "max_gate_step": combiner.max_gate_step,
    }
    result = train_loop(
        model,
        make_batch,
        loss_fn,
        optimizer,
        steps,
        checkpoint_path=checkpoint,
        resume=resume,
        progress=progress,
        checkpoint_every=checkpoint_every,
        seed=seed,
        config=record,
    )
    model.eval()
    if export is not None:
        export_numpy(model, export)
    return model, result
