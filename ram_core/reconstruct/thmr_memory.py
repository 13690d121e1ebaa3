"""T-HMR's temporal memory: a per-track Memory Cache, dual-branch scoring, the MemFormer.

The pieces sit between HMR2.0's backbone and its SMPL head (``Hmr2.features`` ->
``Hmr2.regress``), all on backbone tokens of shape (B, C, Hp, Wp):

- ``MemoryCache`` keeps, per track, the last ``length`` frames that the caller found reliable,
  average-pooled by ``pool`` (16 x 12 -> 8 x 6 = 48 tokens a frame at the default), plus each
  frame's summary (its mean token). Buffers are preallocated per track, so a track costs
  ``length * (Tm + 1) * C`` numbers however long the video is (C = 1280, fp32, the defaults:
  4,014,208 bytes, about 4 MB, with the frame-index array).
- ``MemoryScorer`` scores each candidate with two branches, as RAM's T-HMR does. Relevance: the
  current frame's attention to the candidate (its summary as the query, the candidates'
  summaries as keys). Reliability: the candidate's mean agreement with the *other* valid
  candidates, so a frame that disagrees with the rest (a wrong reconstruction, an occluder, a
  different person after a tracking slip) scores low even when it looks like the current
  frame. Each branch is a masked softmax over the valid candidates; the combined score is the
  log of their weighted geometric mean, ``w log p_relevance + (1 - w) log p_reliability``,
  and the top-k valid candidates are kept. Relevance alone would keep a look-alike frame that
  was reconstructed wrongly; reliability alone, a stable but unrelated one.
- ``MemFormer`` lets the current tokens cross-attend to the kept frames' tokens (pre-norm
  blocks, a learned age and in-frame position embedding on the memory, the scores as a log
  prior on each kept frame's attention) and adds the result through a zero-initialised
  linear layer. Untrained, it returns its input bit for bit, so T-HMR with untrained weights is
  exactly HMR2.0.

Shapes: B people, L memory slots, Tm pooled tokens per frame, k kept frames, C channels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class MemoryConfig:
    """T-HMR's Memory Cache, scorer and MemFormer.

    length: reliable frames kept per track (the ring buffer's size, L).
    top_k: frames the MemFormer fuses each frame, chosen by the scorer among the valid ones.
    pool: tokens are average-pooled by this factor per side before they are stored
        (16 x 12 -> 8 x 6 at 2): four times less memory and attention, and a frame's pose
        cue survives pooling, since the head reads the whole token grid anyway.
    max_age: frames; an entry older than this is never a candidate (a person's pose a few
        seconds ago says little about now). Also the size of the age embedding.
    score_dim: width of the scoring branches' projections.
    relevance_weight: w in ``w log p_relevance + (1 - w) log p_reliability``; 1 or 0 leaves
        one branch alone (ablations); None learns it (starting at 0.5).
    width: the MemFormer's inner width (tokens are projected C -> width); None keeps C. At
        C = 1280 a width of 512 makes a MemFormer of 7.7 M parameters (~43 M at 1280), next
        to the scorer's 1.0 M.
    depth, heads, mlp_ratio: the MemFormer's cross-attention blocks.
    """

    length: int = 16
    top_k: int = 4
    pool: int = 2
    max_age: int = 64
    score_dim: int = 256
    relevance_weight: float | None = 0.5
    width: int | None = 512
    depth: int = 2
    heads: int = 8
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"memory length must be >= 1, got {self.length}")
        if not 1 <= self.top_k <= self.length:
            raise ValueError(f"memory top_k must lie in [1, length={self.length}]")
        if self.pool < 1:
            raise ValueError(f"memory pool must be >= 1, got {self.pool}")
        if self.max_age < 1:
            raise ValueError(f"memory max_age must be >= 1, got {self.max_age}")
        if self.score_dim < 1:
            raise ValueError(f"memory score_dim must be >= 1, got {self.score_dim}")
        if self.relevance_weight is not None and not 0.0 <= self.relevance_weight <= 1.0:
            raise ValueError("memory relevance_weight must lie in [0, 1] or be None (learned)")
        if self.width is not None and self.width < 1:
            raise ValueError(f"memformer width must be >= 1, got {self.width}")
        if self.depth < 1 or self.heads < 1:
            raise ValueError("memformer depth and heads must be >= 1")
        if (self.width is not None) and self.width % self.heads:
            raise ValueError(f"memformer width {self.width} is not divisible by {self.heads} heads")
        if self.mlp_ratio <= 0:
            raise ValueError(f"memformer mlp_ratio must be > 0, got {self.mlp_ratio}")

    def inner_width(self, embed_dim: int) -> int:
        width = embed_dim if self.width is None else self.width
        if width % self.heads:
            raise ValueError(f"memformer width {width} is not divisible by {self.heads} heads")
        return width

    def pooled_grid(self, grid: tuple[int, int]) -> tuple[int, int]:
        """The stored token grid for a backbone grid (Hp, Wp); both must divide by ``pool``."""
        height, width = grid
        if height % self.pool or width % self.pool:
            raise ValueError(f"token grid {height}x{width} is not divisible by pool {self.pool}")
        return height // self.pool, width // self.pool

    def tokens_per_frame(self, grid: tuple[int, int]) -> int:
        height, width = self.pooled_grid(grid)
        return height * width


@dataclass(frozen=True)
class MemoryBatch:
    """Candidate memory for B people, padded to L slots.

    tokens (B, L, Tm, C); summaries (B, L, C) (each frame's mean token); ages (B, L) int64
    frames between the stored frame and the current one (0 where invalid); valid (B, L) bool.
    """

    tokens: torch.Tensor
    summaries: torch.Tensor
    ages: torch.Tensor
    valid: torch.Tensor

    def __post_init__(self) -> None:
        batch, slots = self.valid.shape
        if (
            self.tokens.dim() != 4
            or self.tokens.shape[:2] != (batch, slots)
            or self.summaries.shape != (batch, slots, self.tokens.shape[-1])
            or self.ages.shape != (batch, slots)
        ):
            raise ValueError(
                "memory batch shapes disagree: tokens (B, L, Tm, C), summaries (B, L, C), "
                f"ages and valid (B, L); got {tuple(self.tokens.shape)}, "
                f"{tuple(self.summaries.shape)}, {tuple(self.ages.shape)}, "
                f"{tuple(self.valid.shape)}"
            )


def pool_tokens(features: torch.Tensor, pool: int) -> torch.Tensor:
    """Backbone features (..., C, Hp, Wp) -> pooled tokens (..., Tm, C), row-major."""
    lead = features.shape[:-3]
    channels, height, width = features.shape[-3:]
    flat = features.reshape(-1, channels, height, width)
    if pool > 1:
        flat = functional.avg_pool2d(flat, kernel_size=pool, stride=pool)
    tokens = flat.flatten(2).transpose(1, 2)
    return tokens.reshape(*lead, tokens.shape[-2], channels)


def frame_summary(features: torch.Tensor) -> torch.Tensor:
    """The mean token of features (..., C, Hp, Wp) -> (..., C).

    With ``pool`` dividing the grid, this equals the mean of the pooled tokens, so a stored
    frame and the current one are summarised alike.
    """
    return features.mean(dim=(-2, -1))


@dataclass
class _TrackMemory:
    tokens: torch.Tensor  # (L, Tm, C)
    summaries: torch.Tensor  # (L, C)
    frame_indices: np.ndarray  # (L,) int64, -1 where the slot is empty
    next_slot: int = 0
    last_frame: int = -1


class MemoryCache:
    """Per-track ring buffers of reliable frames' pooled tokens, on one device.

    Not an ``nn.Module``: it holds activations, not weights. Tensors are written and read
    outside inference mode (and without autograd), so the cache works both under
    ``torch.inference_mode`` (T-HMR's step) and in ordinary code.
    """

    def __init__(
        self,
        config: MemoryConfig,
        embed_dim: int,
        grid: tuple[int, int],
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be >= 1, got {embed_dim}")
        self.config = config
        self.embed_dim = embed_dim
        self.grid = (int(grid[0]), int(grid[1]))
        self.tokens_per_frame = config.tokens_per_frame(self.grid)
        self.device = torch.device(device)
        self.dtype = dtype
        self._tracks: dict[int, _TrackMemory] = {}

    def track_ids(self) -> list[int]:
        return sorted(self._tracks)

    def nbytes(self, track_id: int | None = None) -> int:
        """Bytes of tensor storage held for one track (0 when unknown), or for all tracks."""
        tracks = self._tracks.values() if track_id is None else [self._tracks.get(track_id)]
        return sum(
            t.tokens.nbytes + t.summaries.nbytes + t.frame_indices.nbytes
            for t in tracks
            if t is not None
        )

    def push(self, track_id: int, frame_index: int, features: torch.Tensor) -> None:
        """Stores one reliable frame of a track: features (C, Hp, Wp) from the backbone.

        The oldest entry is overwritten once the track holds ``length`` frames. Frame indices
        must increase per track (a rewound video needs ``forget`` first).
        """
        expected = (self.embed_dim, *self.grid)
        if tuple(features.shape) != expected:
            raise ValueError(f"memory push wants features {expected}, got {tuple(features.shape)}")
        track_id, frame_index = int(track_id), int(frame_index)
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0, got {frame_index}")
        track = self._tracks.get(track_id)
        if track is not None and frame_index <= track.last_frame:
            raise ValueError(
                f"track {track_id}: frame {frame_index} is not after its last stored frame "
                f"{track.last_frame}"
            )
        with torch.inference_mode(False), torch.no_grad():
            if track is None:
                track = self._allocate()
                self._tracks[track_id] = track
            tokens = pool_tokens(features, self.config.pool)
            slot = track.next_slot
            track.tokens[slot].copy_(tokens)
            track.summaries[slot].copy_(tokens.mean(dim=0))
        track.frame_indices[slot] = frame_index
        track.next_slot = (slot + 1) % self.config.length
        track.last_frame = frame_index

    def candidates(self, track_ids: Sequence[int], frame_index: int) -> MemoryBatch:
        """The memory of each of B tracks at ``frame_index``, padded to L slots.

        A slot is valid when it holds a frame at most ``max_age`` frames before (or at)
        ``frame_index``; unknown tracks get no valid slots. Slots are in buffer order; ages
        say which is which.
        """
        length, batch = self.config.length, len(track_ids)
        frame_indices = np.full((batch, length), -1, dtype=np.int64)
        with torch.inference_mode(False), torch.no_grad():
            tokens = torch.zeros(
                (batch, length, self.tokens_per_frame, self.embed_dim),
                device=self.device,
                dtype=self.dtype,
            )
            summaries = torch.zeros(
                (batch, length, self.embed_dim), device=self.device, dtype=self.dtype
            )
            for row, track_id in enumerate(track_ids):
                track = self._tracks.get(int(track_id))
                if track is None:
                    continue
                tokens[row].copy_(track.tokens)
                summaries[row].copy_(track.summaries)
                frame_indices[row] = track.frame_indices
            ages = int(frame_index) - frame_indices
            valid = (frame_indices >= 0) & (ages >= 0) & (ages <= self.config.max_age)
            ages = np.where(valid, ages, 0)
            return MemoryBatch(
                tokens=tokens,
                summaries=summaries,
                ages=torch.from_numpy(ages).to(self.device),
                valid=torch.from_numpy(valid).to(self.device),
            )

    def forget(self, track_id: int) -> None:
        """Frees a track's buffers (its memory is gone; a later push starts it afresh)."""
        self._tracks.pop(int(track_id), None)

    def clear(self) -> None:
        self._tracks.clear()

    def _allocate(self) -> _TrackMemory:
        length = self.config.length
        kwargs = {"device": self.device, "dtype": self.dtype}
        return _TrackMemory(
            tokens=torch.zeros((length, self.tokens_per_frame, self.embed_dim), **kwargs),
            summaries=torch.zeros((length, self.embed_dim), **kwargs),
            frame_indices=np.full(length, -1, dtype=np.int64),
        )


def causal_clip_memory(
    features: torch.Tensor, reliable: torch.Tensor, config: MemoryConfig
) -> MemoryBatch:
    """Training-time memory for every frame of B clips, as the cache would have held it.

    features (B, T, C, Hp, Wp); reliable (B, T) bool. Returns a MemoryBatch over B*T queries
    (clip-major: query b*T + t) with L = T slots: frame j is a candidate for frame t when
    j < t, j is reliable, t - j <= max_age and j is among the ``length`` most recent reliable
    frames before t (the ring buffer's reach).
    """
    batch, frames = features.shape[:2]
    if reliable.shape != (batch, frames):
        raise ValueError(f"reliable must be (B, T) = {(batch, frames)}, got {reliable.shape}")
    tokens = pool_tokens(features, config.pool)  # (B, T, Tm, C)
    summaries = tokens.mean(dim=-2)  # (B, T, C)
    query = torch.arange(frames, device=features.device)
    ages = query[:, None] - query[None, :]  # (T_query, T_slot)
    reliable = reliable.to(torch.bool)
    # Reliable frames strictly between slot j and query t: the ones that would have pushed
    # j out of a ring buffer of `length`.
    counts = torch.cumsum(reliable.to(torch.int64), dim=1)  # (B, T): reliable frames <= t
    newer = counts[:, None, :].new_zeros(batch, frames, frames)
    newer += torch.cat([counts.new_zeros(batch, 1), counts[:, :-1]], dim=1)[:, :, None]
    newer -= counts[:, None, :]
    valid = (
        (ages > 0)[None]
        & (ages <= config.max_age)[None]
        & reliable[:, None, :]
        & (newer < config.length)
    )
    tokens_per_query = tokens[:, None].expand(batch, frames, *tokens.shape[1:])
    summaries_per_query = summaries[:, None].expand(batch, frames, *summaries.shape[1:])
    return MemoryBatch(
        tokens=tokens_per_query.reshape(batch * frames, *tokens.shape[1:]),
        summaries=summaries_per_query.reshape(batch * frames, *summaries.shape[1:]),
        ages=torch.where(valid, ages[None], 0).reshape(batch * frames, frames),
        valid=valid.reshape(batch * frames, frames),
    )


def masked_log_softmax(logits: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """log softmax over the valid entries of the last axis; -inf elsewhere.

    Rows with no valid entry give all -inf and no NaN (torch's softmax over an all -inf row
    is NaN, in the forward pass and the gradient).
    """
    any_valid = valid.any(dim=-1, keepdim=True)
    safe = torch.where(valid, logits, float("-inf"))
    safe = torch.where(any_valid, safe, torch.zeros_like(logits))
    return torch.where(valid, torch.log_softmax(safe, dim=-1), float("-inf"))


@dataclass(frozen=True)
class MemoryScores:
    """Per-candidate scores (B, L): log-probabilities over the valid candidates (-inf invalid).

    combined = w * relevance + (1 - w) * reliability (the log of a weighted geometric mean).
    """

    relevance: torch.Tensor
    reliability: torch.Tensor
    combined: torch.Tensor


class MemoryScorer(nn.Module):
    """Dual-branch scoring of memory candidates (relevance to now, reliability among them).

    Initialisation: the query, key and agreement projections all start as the same
    semi-orthogonal matrix over layer-normalised summaries. Then q.k and r_i.r_j are (up to
    the projection) dot products of the normalised summaries, so untrained relevance is feature
    similarity to the current frame and untrained reliability is agreement with the other
    candidates: the top-k is already the intended one before training. Independent random
    projections would instead rank candidates by noise, and the MemFormer would learn on
    arbitrary frames.
    """

    def __init__(self, config: MemoryConfig, embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        self.norm = nn.LayerNorm(embed_dim)
        self.query = nn.Linear(embed_dim, config.score_dim, bias=False)
        self.key = nn.Linear(embed_dim, config.score_dim, bias=False)
        self.agreement = nn.Linear(embed_dim, config.score_dim, bias=False)
        shared = torch.empty(config.score_dim, embed_dim)
        nn.init.orthogonal_(shared)
        with torch.no_grad():
            for projection in (self.query, self.key, self.agreement):
                projection.weight.copy_(shared)
        if config.relevance_weight is None:
            # sigmoid(0) = 0.5: both branches start equal.
            self.relevance_logit = nn.Parameter(torch.zeros(()))
        else:
            self.relevance_logit = None

    def relevance_weight(self) -> torch.Tensor:
        if self.relevance_logit is not None:
            return torch.sigmoid(self.relevance_logit)
        return torch.tensor(self.config.relevance_weight, device=self.query.weight.device)

    def forward(
        self, current_summary: torch.Tensor, summaries: torch.Tensor, valid: torch.Tensor
    ) -> MemoryScores:
        """current_summary (B, C), candidate summaries (B, L, C), valid (B, L) -> scores."""
        scale = 1.0 / math.sqrt(self.config.score_dim)
        current = self.norm(current_summary)
        candidates = self.norm(summaries)
        query = self.query(current)  # (B, D)
        keys = self.key(candidates)  # (B, L, D)
        relevance_logits = torch.einsum("bd,bld->bl", query, keys) * scale
        # Reliability: agreement of candidate i with each other valid candidate j, averaged
        # (equivalently, with the mean of the others): a lone outlier agrees with no one.
        agreement = self.agreement(candidates)
        pairwise = torch.einsum("bid,bjd->bij", agreement, agreement) * scale
        slots = valid.shape[-1]
        not_self = ~torch.eye(slots, dtype=torch.bool, device=valid.device)
        others = valid[:, None, :] & valid[:, :, None] & not_self
        # A candidate with no other valid one gets 0: no evidence either way.
        reliability_logits = torch.where(others, pairwise, 0.0).sum(-1) / others.sum(-1).clamp(
            min=1
        )
        relevance = masked_log_softmax(relevance_logits, valid)
        reliability = masked_log_softmax(reliability_logits, valid)
        weight = self.relevance_weight().to(relevance.dtype)
        finite = valid.any(dim=-1, keepdim=True) & valid
        # Mixed on finite values only: 0 * -inf would be NaN when a weight is 0 or 1.
        combined = weight * torch.where(finite, relevance, 0.0) + (1 - weight) * torch.where(
            finite, reliability, 0.0
        )
        combined = torch.where(valid, combined, float("-inf"))
        return MemoryScores(relevance=relevance, reliability=reliability, combined=combined)

    @staticmethod
    def select(
        scores: torch.Tensor, valid: torch.Tensor, k: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k valid candidates by score: indices (B, k) int64 and keep (B, k) bool.

        Highest first. With fewer than k valid candidates (or fewer than k slots), the extra
        entries have ``keep`` False and an arbitrary in-range index.
        """
        if k < 1:
            raise ValueError(f"top-k needs k >= 1, got {k}")
        slots = scores.shape[-1]
        masked = torch.where(valid, scores, float("-inf"))
        take = min(k, slots)
        indices = torch.topk(masked, take, dim=-1).indices
        keep = valid.gather(-1, indices)
        if take < k:
            pad = k - take
            indices = torch.cat([indices, indices.new_zeros(indices.shape[0], pad)], dim=-1)
            keep = torch.cat([keep, keep.new_zeros(keep.shape[0], pad)], dim=-1)
        return indices, keep


class CrossAttentionBlock(nn.Module):
    """Pre-norm: h += Attn(LN(h), LN(memory)); h += MLP(LN(h))."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.heads = heads
        self.query_norm = nn.LayerNorm(width)
        self.memory_norm = nn.LayerNorm(width)
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.attention_out = nn.Linear(width, width)
        hidden = max(1, round(width * mlp_ratio))
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(
        self, hidden: torch.Tensor, memory: torch.Tensor, attention_bias: torch.Tensor
    ) -> torch.Tensor:
        """hidden (B, N, W), memory (B, M, W), attention_bias (B, 1, 1, M) -> (B, N, W)."""
        batch, queries, width = hidden.shape
        keys = memory.shape[1]
        head_dim = width // self.heads
        query = self.query(self.query_norm(hidden))
        query = query.view(batch, queries, self.heads, head_dim).transpose(1, 2)
        key_value = self.key_value(self.memory_norm(memory))
        key, value = key_value.view(batch, keys, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        attended = functional.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_bias.to(query.dtype)
        )
        hidden = hidden + self.attention_out(
            attended.transpose(1, 2).reshape(batch, queries, width)
        )
        return hidden + self.mlp(self.mlp_norm(hidden))


class MemFormer(nn.Module):
    """Fuses kept memory frames into the current backbone tokens, as a zero-init residual.

    The current tokens (B, Hp*Wp, C) cross-attend to the kept frames' tokens (B, k*Tm, C),
    which carry a learned embedding of their age and of their place in the pooled grid; each
    kept frame's tokens get its log score weight added to their attention logits (so the
    scorer is trained through the fusion, although top-k itself has no gradient). The blocks'
    output goes through ``output``, a zero-initialised linear layer, and is added to the
    input: untrained, the output is the input exactly, and HMR2.0's weights behave as
    published until the MemFormer has learned something.
    """

    def __init__(self, config: MemoryConfig, embed_dim: int, grid: tuple[int, int]) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        self.grid = (int(grid[0]), int(grid[1]))
        width = config.inner_width(embed_dim)
        self.tokens_per_frame = config.tokens_per_frame(self.grid)
        self.token_norm = nn.LayerNorm(embed_dim)
        self.token_in = nn.Linear(embed_dim, width)
        self.age_embedding = nn.Embedding(config.max_age + 1, width)
        self.slot_embedding = nn.Parameter(torch.zeros(self.tokens_per_frame, width))
        nn.init.trunc_normal_(self.age_embedding.weight, std=0.02)
        nn.init.trunc_normal_(self.slot_embedding, std=0.02)
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(width, config.heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.output_norm = nn.LayerNorm(width)
        self.output = nn.Linear(width, embed_dim)
        nn.init.zeros_(self.output.weight)
        nn.init.zeros_(self.output.bias)

    def is_identity(self) -> bool:
        """Whether the output layer is still all zeros (untrained), so that the fusion adds
        exactly nothing: inference (no gradient) then skips the blocks, and an untrained
        MemFormer costs no time. With gradients on, the blocks always run, since the zero
        layer's gradient needs their output."""
        return not (bool(self.output.weight.any()) or bool(self.output.bias.any()))

    def forward(
        self,
        features: torch.Tensor,
        memory_tokens: torch.Tensor,
        ages: torch.Tensor,
        keep: torch.Tensor,
        frame_log_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """features (B, C, Hp, Wp); memory_tokens (B, k, Tm, C); ages, keep (B, k);
        frame_log_weights (B, k) or None (uniform) -> fused features (B, C, Hp, Wp).

        Rows with nothing kept come back unchanged; with nothing kept anywhere, the input
        tensor itself is returned.
        """
        batch, channels, height, width = features.shape
        if channels != self.embed_dim or (height, width) != self.grid:
            raise ValueError(
                f"memformer wants features (B, {self.embed_dim}, {self.grid[0]}, "
                f"{self.grid[1]}), got {tuple(features.shape)}"
            )
        has_memory = keep.any(dim=-1)
        if not bool(has_memory.any()):
            return features
        if not torch.is_grad_enabled() and self.is_identity():
            return features
        kept = keep.shape[1]
        current = features.flatten(2).transpose(1, 2)  # (B, N, C)
        hidden = self.token_in(self.token_norm(current))
        memory = self.token_in(self.token_norm(memory_tokens))  # (B, k, Tm, W)
        age_index = ages.clamp(0, self.config.max_age)
        memory = memory + self.slot_embedding + self.age_embedding(age_index)[:, :, None, :]
        memory = memory.reshape(batch, kept * self.tokens_per_frame, -1)
        bias = (
            torch.zeros(keep.shape, device=features.device)
            if frame_log_weights is None
            else frame_log_weights.float()
        )
        bias = torch.where(keep, bias, float("-inf"))
        # A row with nothing kept would softmax over all -inf (NaN): let it attend to
        # everything, and drop its result below.
        bias = torch.where(has_memory[:, None], bias, 0.0)
        bias = bias.repeat_interleave(self.tokens_per_frame, dim=1)[:, None, None, :]
        for block in self.blocks:
            hidden = block(hidden, memory, bias)
        update = self.output(self.output_norm(hidden))  # (B, N, C)
        update = update.transpose(1, 2).reshape(batch, channels, height, width)
        return torch.where(has_memory[:, None, None, None], features + update, features)


def fuse_memory(
    features: torch.Tensor,
    memory: MemoryBatch,
    scorer: MemoryScorer,
    memformer: MemFormer,
    top_k: int,
) -> torch.Tensor:
    """Scores the candidates, keeps the top-k valid ones, fuses them: (B, C, Hp, Wp) out."""
    if memory.valid.shape[0] != features.shape[0]:
        raise ValueError(
            f"memory for {memory.valid.shape[0]} people, features for {features.shape[0]}"
        )
    if not bool(memory.valid.any()):
        return features
    scores = scorer(frame_summary(features), memory.summaries, memory.valid)
    indices, keep = scorer.select(scores.combined, memory.valid, top_k)
    rows = torch.arange(indices.shape[0], device=indices.device)[:, None]
    kept_tokens = memory.tokens[rows, indices]  # (B, k, Tm, C)
    kept_ages = memory.ages[rows, indices]
    frame_log_weights = masked_log_softmax(scores.combined.gather(-1, indices), keep)
    return memformer(features, kept_tokens, kept_ages, keep, frame_log_weights)
