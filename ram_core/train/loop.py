"""A generic training loop: batches, steps, checkpoints that resume, a progress bar.

The loop knows nothing of the model: ``make_batch(step, rng)`` draws a batch with the
loop's numpy generator and ``loss_fn(model, batch)`` returns a scalar tensor. A checkpoint
holds the model, the optimizer, the step, both random generators and the caller's config,
written atomically (a temporary file beside it, then a rename), so an interrupted run
resumes where its last checkpoint was, drawing the batches it would have drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ram_core.io.atomic import atomic_file

CHECKPOINT_FORMAT = "ram-train-checkpoint"
CHECKPOINT_VERSION = 1


@dataclass
class TrainResult:
    """losses: one per step this call ran (not those before a resume); final_step: the
    steps done in all (a resumed run counts the earlier ones); start_step: where this call
    began (0, or the checkpoint's step)."""

    losses: list[float] = field(default_factory=list)
    final_step: int = 0
    start_step: int = 0


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    rng: np.random.Generator,
    config: dict[str, Any] | None,
) -> Path:
    """Write a checkpoint atomically; returns its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": int(step),
        "numpy_rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state(),
        "config": config or {},
    }
    with atomic_file(target) as stream:
        torch.save(state, stream)
    return target


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by ``save_checkpoint`` (tensors and plain data only: loaded with
    ``weights_only``). ValueError for a file that is not one."""
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a damaged file
        raise ValueError(f"{path} is not a readable training checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} file")
    if state.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {state.get('version')!r}")
    return state


def train_loop(
    model: torch.nn.Module,
    make_batch: Callable[[int, np.random.Generator], Any],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    steps: int,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    checkpoint_every: int = 100,
    seed: int = 0,
    config: dict[str, Any] | None = None,
    max_grad_norm: float | None = 1.0,
) -> TrainResult:
    """Run ``steps`` optimisation steps in all and return the losses.

    ``resume``: continue from ``checkpoint_path`` when it exists (model, optimizer, step,
    random state; its config must equal ``config``); start afresh when it does not. A
    checkpoint is written every ``checkpoint_every`` steps and at the end. ``progress``:
    a tqdm bar on stderr. ``max_grad_norm``: gradients clipped to this norm (None: not).
    A non-finite loss stops the run with a ValueError, before it spoils the weights.
    """
    if steps < 0 or checkpoint_every < 1:
        raise ValueError("steps must be >= 0 and checkpoint_every >= 1")
    if resume and checkpoint_path is None:
        raise ValueError("resume needs a checkpoint path")
    config = config or {}
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    start = 0
    if resume and Path(checkpoint_path).is_file():
        state = load_checkpoint(checkpoint_path)
        if state["config"] != config:
            raise ValueError(
                f"{checkpoint_path} was made with other settings ({state['config']}); "
                f"these are {config}"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])
    result = TrainResult(final_step=max(start, 0), start_step=start)
    if start >= steps:
        return result

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, desc="train", unit="step", dynamic_ncols=True)
    model.train()
    try:
        for step in range(start, steps):
            batch = make_batch(step, rng)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model, batch)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ValueError(f"the loss is {value} at step {step}; training stopped")
            loss.backward()
            if max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            result.losses.append(value)
            result.final_step = step + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            done = step + 1
            if checkpoint_path is not None and (done % checkpoint_every == 0 or done == steps):
                save_checkpoint(checkpoint_path, model, optimizer, done, rng, config)
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return result
