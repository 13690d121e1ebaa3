"""Training the learned Predictor (``ram_core.motion.learned``) on motion windows.

Each sample is ``window`` frames of a clip and the frames after them. The model predicts
the next ``horizon`` poses; its first one is appended to the history and it predicts again,
``rollout`` times, as the Combiner runs it through a hidden stretch (each prediction
continues the previous combined frame, which while hidden is the previous prediction). The
loss, averaged over those steps: the mean distance of the pelvis-centred joints on the
built-in skeleton (what ``benchmarks/bench_predictor.py`` measures) plus
``rotation_weight`` times the squared Frobenius distance of the joint rotations (the hands
and feet move no joint, so positions alone would leave their rotations free).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ram_core.train.loop import TrainResult, train_loop
from ram_core.train.motion_data import MotionClip, MotionWindows
from ram_core.train.motion_models import LearnedPredictorModel, export_numpy
from ram_core.train.torch_rotations import pelvis_centred_joints


@dataclass(frozen=True)
class PredictorTrainConfig:
    """The model (window, dct_size, horizon, hidden_sizes, layer_norm: see
    ``learned.LearnedPredictorWeights``) and how it is trained.

    rollout: predictions chained per sample (frames of a hidden stretch learned).
    mirror: half the windows are mirrored left to right (twice the motion from few data).
    rotation_weight: the rotation term's weight in the loss.
    weight_decay: AdamW's.
    """

    window: int = 16
    dct_size: int = 8
    horizon: int = 1
    hidden_sizes: tuple[int, ...] = (256, 256)
    layer_norm: bool = True
    rollout: int = 12
    mirror: bool = True
    rotation_weight: float = 0.1
    weight_decay: float = 1e-4

    def __post_init__(self) -> None:
        if not 1 <= self.dct_size <= self.window or self.horizon < 1 or self.rollout < 1:
            raise ValueError(
                "predictor training needs 1 <= dct_size <= window, horizon >= 1, rollout >= 1"
            )

    @property
    def future(self) -> int:
        """Frames after the window a sample needs."""
        return self.rollout + self.horizon - 1


def pose_error(
    predicted: torch.Tensor, target: torch.Tensor, rotation_weight: float
) -> torch.Tensor:
    """Mean joint distance (m, pelvis-centred) + rotation_weight x mean squared Frobenius
    distance of the rotations. (..., 24, 3, 3) each -> scalar."""
    offset = pelvis_centred_joints(predicted) - pelvis_centred_joints(target)
    # A small floor under the square root: the pelvis is always at zero distance.
    distance = torch.sqrt((offset * offset).sum(dim=-1) + 1e-10).mean()
    rotation = ((predicted - target) ** 2).sum(dim=(-1, -2)).mean()
    return distance + rotation_weight * rotation


def predictor_rollout_loss(
    model: LearnedPredictorModel, windows: torch.Tensor, config: PredictorTrainConfig
) -> torch.Tensor:
    """windows: (B, window + future, 24, 3, 3) -> the loss (module docstring)."""
    history = windows[:, : config.window]
    future = windows[:, config.window :]
    total = windows.new_zeros(())
    for k in range(config.rollout):
        predicted = model.predict_next(history)
        total = total + pose_error(
            predicted, future[:, k : k + config.horizon], config.rotation_weight
        )
        history = torch.cat([history[:, 1:], predicted[:, :1]], dim=1)
    return total / config.rollout


def train_predictor(
    config: PredictorTrainConfig,
    data: Sequence[MotionClip],
    *,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-3,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    checkpoint_every: int = 200,
    seed: int = 0,
    export: str | Path | None = None,
    device: str = "cpu",
) -> tuple[LearnedPredictorModel, TrainResult]:
    """Train a learned Predictor on ``data``; export it for numpy when ``export`` is given.

    Returns the model (on the CPU, in eval mode) and the loop's result.
    """
    windows = MotionWindows(data, config.window, config.future, config.mirror)
    torch.manual_seed(seed)  # the same initial weights for the same seed
    model = LearnedPredictorModel(
        config.window, config.dct_size, config.horizon, config.hidden_sizes, config.layer_norm
    ).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=config.weight_decay)

    def make_batch(step: int, rng) -> torch.Tensor:
        return torch.as_tensor(windows.sample(rng, batch_size), device=device)

    def loss_fn(model: LearnedPredictorModel, batch: torch.Tensor) -> torch.Tensor:
        return predictor_rollout_loss(model, batch, config)

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
        config={"model": "predictor", **dataclasses.asdict(config)},
    )
    model = model.cpu().eval()
    if export is not None:
        export_numpy(model, export)
    return model, result
