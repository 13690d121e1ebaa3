"""T-HMR: HMR2.0 with a per-track Memory Cache and a MemFormer between backbone and head.

``THmr.step`` is the inference path, one frame of B people at a time: backbone tokens ->
each track's candidates from the cache -> dual-branch scores -> top-k -> MemFormer -> SMPL
head; afterwards the frame's own (pre-fusion) tokens go into the cache for the people the
caller marked as reliable. Fusing never feeds back into memory: the cache holds what the
backbone saw, so a MemFormer mistake cannot compound over frames.

``regress_with_memory`` / ``forward_with_memory`` are the training path (gradients flow into
the scorer and MemFormer; HMR2.0 is frozen by the trainer).

The MemFormer and scorer weights are saved apart from HMR2.0's checkpoint
(``save_memformer_file`` / ``load_memformer_file``): about 35 MB in fp32 at the defaults,
against HMR2.0's 2.5 GB.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ram_core.errors import BadInputError
from ram_core.reconstruct.hmr2 import Hmr2, Hmr2Config, Hmr2Output, build_hmr2
from ram_core.reconstruct.thmr_memory import (
    MemFormer,
    MemoryBatch,
    MemoryCache,
    MemoryConfig,
    MemoryScorer,
    fuse_memory,
)

MEMFORMER_FILE_FORMAT = "ram-memformer"
MEMFORMER_FILE_VERSION = 1


def token_grid(config: Hmr2Config) -> tuple[int, int]:
    """The backbone's token grid (Hp, Wp) for an HMR2.0 config."""
    return config.grid_height, config.grid_width


class THmr(nn.Module):
    """HMR2.0 + Memory Cache + dual-branch scorer + MemFormer."""

    def __init__(self, hmr2: Hmr2, memory_config: MemoryConfig | None = None) -> None:
        super().__init__()
        self.memory_config = memory_config or MemoryConfig()
        self.hmr2 = hmr2
        self.embed_dim = hmr2.config.embed_dim
        self.grid = token_grid(hmr2.config)
        self.scorer = MemoryScorer(self.memory_config, self.embed_dim)
        self.memformer = MemFormer(self.memory_config, self.embed_dim, self.grid)
        # Activations, not weights: kept out of state_dict() and .to(); made on the first step
        # on the features' device.
        self._cache: MemoryCache | None = None

    @property
    def cache(self) -> MemoryCache | None:
        """The Memory Cache (None before the first step or after ``reset_memory``)."""
        return self._cache

    def reset_memory(self) -> None:
        """Forgets every track."""
        self._cache = None

    def forget(self, track_id: int) -> None:
        """Frees one track's memory."""
        if self._cache is not None:
            self._cache.forget(track_id)

    def fuse(self, features: torch.Tensor, memory: MemoryBatch) -> torch.Tensor:
        """Backbone features (B, C, Hp, Wp) with their memory -> fused features (same shape)."""
        return fuse_memory(features, memory, self.scorer, self.memformer, self.memory_config.top_k)

    def regress_with_memory(self, features: torch.Tensor, memory: MemoryBatch) -> Hmr2Output:
        """Training path from backbone features: fuse, then HMR2.0's SMPL head."""
        return self.hmr2.regress(self.fuse(features, memory))

    def forward_with_memory(self, crops: torch.Tensor, memory: MemoryBatch) -> Hmr2Output:
        """Training path from crops (B, 3, 256, 192): backbone, fuse, SMPL head."""
        return self.regress_with_memory(self.hmr2.features(crops), memory)

    def step(
        self,
        crops: torch.Tensor,
        track_ids: Sequence[int],
        frame_index: int,
        remember: Sequence[bool],
    ) -> Hmr2Output:
        """One frame of B people: crops (B, 3, 256, 192), their track ids (distinct), the
        frame's index, and which of them enter memory afterwards (reliable frames only).

        Runs under ``torch.inference_mode``. Returns HMR2.0's output for each person.
        """
        batch = crops.shape[0]
        if len(track_ids) != batch or len(remember) != batch:
            raise ValueError(
                f"step got {batch} crops, {len(track_ids)} track ids and {len(remember)} "
                "remember flags"
            )
        if len({int(t) for t in track_ids}) != batch:
            raise ValueError(f"step got a track twice in one frame: {list(track_ids)}")
        with torch.inference_mode():
            features = self.hmr2.features(crops)
            cache = self._cache_for(features)
            memory = cache.candidates(track_ids, frame_index)
            output = self.hmr2.regress(self.fuse(features, memory))
            for row, (track_id, keep) in enumerate(zip(track_ids, remember, strict=True)):
                if keep:
                    cache.push(track_id, frame_index, features[row])
        return output

    def memformer_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained part (scorer + MemFormer), keys prefixed ``scorer.`` / ``memformer.``."""
        state = {f"scorer.{k}": v for k, v in self.scorer.state_dict().items()}
        state.update({f"memformer.{k}": v for k, v in self.memformer.state_dict().items()})
        return state

    def load_memformer_state(self, state: dict[str, torch.Tensor]) -> None:
        """Loads ``memformer_state_dict()``'s output strictly (RuntimeError on any mismatch)."""
        parts: dict[str, dict[str, torch.Tensor]] = {"scorer": {}, "memformer": {}}
        for key, value in state.items():
            prefix, _, rest = key.partition(".")
            if prefix not in parts:
                raise RuntimeError(f"unexpected key in MemFormer state: {key}")
            parts[prefix][rest] = value
        self.scorer.load_state_dict(parts["scorer"], strict=True)
        self.memformer.load_state_dict(parts["memformer"], strict=True)

    def save_memformer_file(self, path: str | Path) -> None:
        """Writes the scorer + MemFormer weights with the settings that shape them."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "format": MEMFORMER_FILE_FORMAT,
            "version": MEMFORMER_FILE_VERSION,
            "embed_dim": self.embed_dim,
            "grid": list(self.grid),
            "memory_config": dataclasses.asdict(self.memory_config),
            "state": {k: v.detach().cpu() for k, v in self.memformer_state_dict().items()},
        }
        partial = path.with_name(path.name + ".partial")
        torch.save(record, partial)
        partial.replace(path)

    def load_memformer_file(self, path: str | Path) -> None:
        """Loads a ``save_memformer_file`` file; BadInputError when it does not fit."""
        path = Path(path)
        try:
            record: Any = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for a bad file
            raise BadInputError(f"{path}: not a readable MemFormer file ({error})") from None
        if not isinstance(record, dict) or record.get("format") != MEMFORMER_FILE_FORMAT:
            raise BadInputError(f"{path}: not a {MEMFORMER_FILE_FORMAT} file")
        if record.get("version") != MEMFORMER_FILE_VERSION:
            raise BadInputError(
                f"{path}: MemFormer file version {record.get('version')}, this build reads "
                f"{MEMFORMER_FILE_VERSION}"
            )
        if record.get("embed_dim") != self.embed_dim or tuple(record.get("grid", ())) != self.grid:
            raise BadInputError(
                f"{path}: made for backbone width {record.get('embed_dim')} and token grid "
                f"{record.get('grid')}, this T-HMR has {self.embed_dim} and {list(self.grid)}"
            )
        try:
            self.load_memformer_state(record["state"])
        except RuntimeError as error:
            saved = record.get("memory_config", {})
            ours = dataclasses.asdict(self.memory_config)
            differing = sorted(k for k in ours if saved.get(k) != ours[k])
            raise BadInputError(
                f"{path}: the MemFormer weights do not fit this model (settings that differ: "
                f"{', '.join(differing) or 'none'}): {error}"
            ) from None

    def _cache_for(self, features: torch.Tensor) -> MemoryCache:
        if self._cache is None:
            self._cache = MemoryCache(
                self.memory_config, self.embed_dim, self.grid, device=features.device
            )
        elif self._cache.device != features.device:
            raise RuntimeError(
                f"T-HMR's memory is on {self._cache.device} but the model now runs on "
                f"{features.device}; call reset_memory() after moving it"
            )
        return self._cache


def build_thmr_model(
    hmr2_config: Hmr2Config,
    *,
    memory_length: int = 16,
    memory_top_k: int = 4,
    memory_config: MemoryConfig | None = None,
    device: str | torch.device = "cpu",
) -> THmr:
    """T-HMR with random HMR2.0 weights and an untrained MemFormer, in eval mode.

    ``memory_config`` (when given) overrides ``memory_length`` / ``memory_top_k``.
    """
    if memory_config is None:
        memory_config = MemoryConfig(length=memory_length, top_k=memory_top_k)
    model = THmr(build_hmr2(hmr2_config, device), memory_config)
    return model.to(device).eval()
