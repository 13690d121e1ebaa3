"""SAM2.1 as SegFollow's segmenter, streamed one frame at a time (the full backend).

Frames enter one by one through ``segment``; the image encoder runs once per frame and all
people share its features. Nothing keeps past frames' images or features: what SAM2 needs
from the past lives in a bounded memory per person (track id), written by ``commit`` after
SegFollow has decided who is who. SAM2's ``init_state`` / ``propagate_in_video`` (which load
the whole video) are never used; the per-frame steps are the model's own modules, called in
the order its video predictor calls them, so that with ``memory="fifo"`` and SegFollow's
``alpha = 1`` the masks are the stock predictor's (``tests/test_sam2_segmenter.py`` checks
this against the real library). Frame indices must increase from call to call.

Decisions, where the stock predictor leaves a choice:

- **Preprocessing** is the stock JPEG loader's: PIL ``resize`` to ``image_size`` squared
  (its default filter), ``/ 255`` in float64 then float32, ImageNet mean and std.
- **A prompt without a track id** (a detection) runs SAM2's interactive step on this frame
  with no memory: the box, then the prompt's points (the detector's keypoints) as clicks,
  in video pixels scaled to the model's input as the predictor's ``add_new_points_or_box``
  does. SAM2 answers a box with one mask (its three-mask output is for a single click; its
  stability fallback may pick one of the three), so such a prompt gives one candidate.
- **A prompt with a track id** runs SAM2's memory-conditioned tracking step for that person
  and returns its three multimask candidates. SAM2 does not look at the prompt's box (the
  Kalman-predicted box only enters SegFollow's score), exactly as SAM2 tracks without
  prompts. A track id with no memory yet is answered like a detection prompt.
- **Candidates**: the mask is SAM2's low-resolution logits resized to the frame
  (bilinear) and thresholded at 0, as the predictor outputs them; ``quality`` is SAM2's
  predicted IoU, ``object_score`` its object score logit, ``appearance`` the candidate's
  object pointer (the decoder token SAM2 keeps as the person's identity), compared by
  cosine similarity clipped to [0, 1]. Candidates whose mask is empty (SAM2 says nobody is
  there: it blanks every mask when the object score is <= 0) are not returned. Each
  Observation carries a private handle (``state``) naming the candidate; the tensors stay in
  the segmenter until the next ``segment`` call, so Observations hold no torch memory.
- **Memory per person**: the conditioning (prompt) frame's memory and object pointer, kept
  for the whole track, plus, by ``memory``:
  ``"fifo"`` - SAM2's stock memory bank: every committed frame enters; the last
  ``num_maskmem - 1`` (6) frames' memories at their temporal positions, and the object
  pointers of the frames within the pointer window (``max_object_pointers - 1`` frames back,
  15 by default). SegFollow's admission and lambda are ignored (stock SAM2 has neither);
  ``"ema"`` - RAM's buffer ``M_t = lam * M_{t-1} + (1 - lam) * m_t`` of the memory
  features, with lam from SegFollow (rising as the Kalman consistency falls). Only admitted
  frames (SegFollow's rule from NOTES-method.md, which includes object score > 0) write it;
  others leave it unchanged (frozen). The buffer starts as the first admitted frame's memory
  and is shown to SAM2's memory attention in the slot of the most recent frame (temporal
  position t-1), beside the conditioning frame. Object pointers: the admitted frames' own
  pointers within the same window as the stock bank (a short list, at most
  ``max_object_pointers - 1``), each at its true temporal distance; an average of pointers
  would not be a pointer SAM2 was trained on.
  Frame memories are stored in bfloat16 as the stock predictor stores them; the EMA buffer
  is float32 (repeated blending in bfloat16 would drift). A missed frame (SegFollow found
  nobody) writes nothing; in ``fifo`` mode it leaves a gap that SAM2 skips, like the stock
  bank's padding frames. At 1024 px a frame memory is 64x64x64 (512 KiB in bfloat16): a
  person holds about 1.5 MiB in ``ema`` mode and 3.5 MiB in ``fifo`` mode, whatever the
  video length.
- **Object pointer window**: the stock predictor uses ``min(video length, 16)``; a stream has
  no length, so it is ``max_object_pointers`` (default: the model's 16). It also sets the
  scale of the pointers' temporal encoding, which is why the equivalence test on an 8-frame
  clip sets it to 8.
- **Hooks** (``MemorySegmenter`` in types.py): ``commit(frame_index, track_id, observation,
  lam, admitted)`` with ``lam=None`` makes the candidate the person's conditioning frame (a
  birth; any earlier memory of that id is replaced) and encodes it as SAM2 encodes a
  prompted frame (binarised mask); with a float ``lam`` it is a tracked frame (encoded from
  the soft mask). ``forget(track_id)`` drops a person's memory; ``close()`` everything.
- **Hole filling**: the stock predictor fills small holes with sam2's optional compiled
  CUDA extension (``sam2._C``); without it (pip's sdist built without CUDA, or on the CPU)
  SAM2 warns on every frame and skips the step. We check once: on CUDA with the extension,
  holes are filled as SAM2 does; otherwise the step is skipped with one debug log line,
  which is what SAM2 does after its warning.
- **Devices**: ``cpu`` or ``cuda``; on CUDA with ``half_precision`` the model runs under
  autocast in bfloat16 (float16 where the GPU has no bfloat16); never on the CPU.
- **Checkpoints**: Meta's files (``{"model": state_dict}``), loaded with
  ``weights_only=True``. A missing, unreadable or wrong-architecture file raises
  ``MissingModelError`` (exit 3) naming the command that fetches the right one.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ram_core.detect.boxes import mask_box
from ram_core.errors import MissingModelError
from ram_core.types import Frame, Observation, Prompt

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

MEMORY_MODES = ("ema", "fifo")
# The config's model size -> the weights manager's model name.
SAM2_MODELS: dict[str, str] = {
    "tiny": "sam2.1_hiera_tiny",
    "small": "sam2.1_hiera_small",
    "base_plus": "sam2.1_hiera_base_plus",
    "large": "sam2.1_hiera_large",
}
# The config's model size -> the model config packaged inside the sam2 wheel.
SAM2_CONFIGS: dict[str, str] = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
_IMAGE_MEAN = (0.485, 0.456, 0.406)
_IMAGE_STD = (0.229, 0.224, 0.225)
# Hiera's four stages halve the resolution from stride 4 to 32.
_IMAGE_SIZE_STEP = 32


@dataclass(frozen=True)
class Sam2SegmenterConfig:
    """Which SAM2.1 model, at what input size, with which memory."""

    model: str = "small"
    """tiny, small, base_plus or large (SAM2_MODELS names the weights)."""
    image_size: int | None = None
    """Square model input in pixels; None keeps the model's own (1024)."""
    memory: str = "ema"
    """"ema": RAM's EMA buffer steered by SegFollow; "fifo": SAM2's stock memory bank."""
    half_precision: bool = True
    """Autocast to bfloat16 (else float16) on CUDA; ignored on the CPU."""
    max_object_pointers: int | None = None
    """Object pointer window in frames (the conditioning frame's included); None keeps the
    model's own (16)."""

    def __post_init__(self) -> None:
        if self.model not in SAM2_MODELS:
            raise ValueError(
                f"model must be one of {', '.join(SAM2_MODELS)}, got {self.model!r}"
            )
        if self.image_size is not None and (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or self.image_size < 2 * _IMAGE_SIZE_STEP
            or self.image_size % _IMAGE_SIZE_STEP
        ):
            raise ValueError(
                f"image_size must be a multiple of {_IMAGE_SIZE_STEP} and at least "
                f"{2 * _IMAGE_SIZE_STEP} (or None for the model's 1024), got {self.image_size!r}"
            )
        if self.memory not in MEMORY_MODES:
            raise ValueError(f"memory must be 'ema' or 'fifo', got {self.memory!r}")
        if self.max_object_pointers is not None and (
            isinstance(self.max_object_pointers, bool)
            or not isinstance(self.max_object_pointers, int)
            or self.max_object_pointers < 2
        ):
            raise ValueError(
                f"max_object_pointers must be an integer >= 2 or None, "
                f"got {self.max_object_pointers!r}"
            )


# ---------------------------------------------------------------- per-person memory


@dataclass
class PersonMemory:
    """What SAM2 remembers of one person. Tensors are (1, ...) slices on the model's device.

    cond_features: (1, mem_dim, h, w) memory of the conditioning frame; cond_pointer: (1, C).
    recent: frame -> memory features of that frame (fifo mode only).
    pointers: frame -> object pointer (fifo: every committed frame; ema: admitted frames).
    ema: (1, mem_dim, h, w) float32 EMA buffer (ema mode; None until a frame is admitted).
    """

    cond_frame: int
    cond_features: torch.Tensor
    cond_pointer: torch.Tensor
    recent: dict[int, torch.Tensor] = field(default_factory=dict)
    pointers: dict[int, torch.Tensor] = field(default_factory=dict)
    ema: torch.Tensor | None = None

    def tensors(self) -> list[torch.Tensor]:
        held = [self.cond_features, self.cond_pointer, *self.recent.values()]
        held += list(self.pointers.values())
        if self.ema is not None:
            held.append(self.ema)
        return held

    def size(self) -> tuple[int, int]:
        """(number of tensors, bytes) held."""
        tensors = self.tensors()
        return len(tensors), sum(t.numel() * t.element_size() for t in tensors)

    def forget_before(self, features_from: int, pointers_from: int) -> None:
        """Drops frame memories older than ``features_from`` and pointers older than
        ``pointers_from`` (frame indices): they can no longer enter the memory window."""
        self.recent = {t: f for t, f in self.recent.items() if t >= features_from}
        self.pointers = {t: p for t, p in self.pointers.items() if t >= pointers_from}


def ema_blend(buffer: torch.Tensor | None, features: torch.Tensor, lam: float) -> torch.Tensor:
    """RAM's memory update M_t = lam * M_{t-1} + (1 - lam) * m_t, in float32.

    The first admitted frame starts the buffer (there is no M_0 to blend with).
    """
    new = features.float()
    if buffer is None:
        return new.clone()
    return lam * buffer + (1.0 - lam) * new


def remember_tracked_frame(
    memory: PersonMemory,
    mode: str,
    frame_index: int,
    features: torch.Tensor,
    pointer: torch.Tensor,
    object_score: float,
    lam: float,
    admitted: bool,
) -> bool:
    """Writes one tracked frame into a person's memory; returns whether it was written.

    fifo: always (SAM2's stock bank has no admission), features stored in bfloat16 as the
    stock predictor stores them. ema: only admitted frames with object score > 0 (else the
    buffer is frozen), features blended with decay ``lam``.
    """
    import torch

    if mode == "fifo":
        memory.recent[frame_index] = features.to(torch.bfloat16)
        memory.pointers[frame_index] = pointer
        return True
    if not admitted or object_score <= 0:
        return False
    memory.ema = ema_blend(memory.ema, features, lam)
    memory.pointers[frame_index] = pointer
    return True


# ---------------------------------------------------------------- per-frame working state


@dataclass(frozen=True)
class _CandidateRef:
    """What an Observation's ``state`` holds: which candidate of which segment call."""

    segmenter_id: int
    frame_index: int
    key: int


@dataclass
class _Candidate:
    """One candidate's tensors, kept until the next ``segment`` call."""

    low_res: torch.Tensor  # (1, 1, s/4, s/4) mask logits as output (holes filled if enabled)
    low_res_raw: torch.Tensor  # the same before hole filling (what SAM2 encodes when tracking)
    object_score: torch.Tensor  # (1, 1)
    pointer: torch.Tensor  # (1, C)
    iou: float  # SAM2's predicted IoU
    prompted: bool  # from a box / point prompt (SAM2 binarises such masks for memory)


@dataclass
class _FrameFeatures:
    index: int
    height: int
    width: int
    vision_feats: list  # per level (HW, 1, C)
    vision_pos: list
    feat_sizes: list  # per level (h, w)
    high_res: list  # the SAM head's two finer levels, (1, C, h, w)


class Sam2Segmenter:
    """``Segmenter`` (and ``MemorySegmenter``) over a SAM2.1 video model.

    ``model``: an already built SAM2 video model to wrap (tests share one between the stock
    predictor and this class); otherwise it is built from ``config`` with the packaged model
    config and, when given, the weights in ``checkpoint`` (random weights without one: only
    tests and benchmarks do that). Use as a context manager or call ``close()``.
    """

    def __init__(
        self,
        config: Sam2SegmenterConfig | None = None,
        device: str = "cpu",
        checkpoint: Path | str | None = None,
        model: Any = None,
    ) -> None:
        import torch

        self.config = config or Sam2SegmenterConfig()
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
        self.device = torch.device(device)
        if model is None:
            model = build_sam2_model(self.config, device, checkpoint)
        else:
            if checkpoint is not None:
                load_checkpoint(model, Path(checkpoint), self.config.model)
            model = model.to(self.device).eval()
            size = self.config.image_size
            if size is not None and size != model.image_size:
                raise ValueError(
                    f"config image_size {size} does not match the model's {model.image_size}"
                )
        if model.memory_temporal_stride_for_eval != 1:
            raise ValueError("only SAM2 models with memory stride 1 (all packaged ones) work")
        self._model = model
        self._max_pointers = min(
            self.config.max_object_pointers or model.max_obj_ptrs_in_encoder,
            model.max_obj_ptrs_in_encoder,
        )
        self._autocast_dtype = None
        if self.device.type == "cuda" and self.config.half_precision:
            self._autocast_dtype = (
                torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            )
        self._fill_holes = (
            model.fill_hole_area > 0 and self.device.type == "cuda" and _hole_filling_available()
        )
        self._mean = torch.tensor(_IMAGE_MEAN, dtype=torch.float32, device=self.device)[
            :, None, None
        ]
        self._std = torch.tensor(_IMAGE_STD, dtype=torch.float32, device=self.device)[
            :, None, None
        ]
        self._people: dict[int, PersonMemory] = {}
        self._memory_pos: torch.Tensor | None = None  # the same for every memory
        self._frame: _FrameFeatures | None = None
        self._last_index: int | None = None
        self._pending: dict[int, _Candidate] = {}

    # -- lifetime ----------------------------------------------------------------------
    @property
    def model(self) -> Any:
        if self._model is None:
            raise RuntimeError("Sam2Segmenter is closed")
        return self._model

    def close(self) -> None:
        """Releases the model, every person's memory and the current frame's features."""
        self._people.clear()
        self._pending.clear()
        self._frame = None
        self._memory_pos = None
        if self._model is not None:
            self._model = None
            import torch

            if self.device.type == "cuda":
                torch.cuda.empty_cache()

    def __enter__(self) -> Sam2Segmenter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def forget(self, track_id: int) -> None:
        """Drops a person's memory (their track ended or was dropped)."""
        self._people.pop(int(track_id), None)

    # -- what tests and benchmarks look at ---------------------------------------------
    @property
    def people(self) -> tuple[int, ...]:
        """Track ids that have a memory."""
        return tuple(self._people)

    def conditioning_frame(self, track_id: int) -> int:
        """The frame a person's memory is conditioned on (their prompt frame)."""
        return self._people[int(track_id)].cond_frame

    def memory_size(self, track_id: int) -> tuple[int, int]:
        """(tensors, bytes) held for one person."""
        return self._people[int(track_id)].size()

    def memory_of(self, track_id: int) -> PersonMemory:
        """One person's memory (read it, do not change it)."""
        return self._people[int(track_id)]

    # -- Segmenter -----------------------------------------------------------------------
    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        return pointer_similarity(memory, appearance)

    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        import torch

        model = self.model
        self._pending.clear()
        self._frame = None
        if self._last_index is not None and frame.index <= self._last_index:
            raise ValueError(
                f"frames must come in increasing order: got {frame.index} after "
                f"{self._last_index}"
            )
        self._last_index = frame.index
        if not prompts:
            return []
        results: list[list[Observation]] = []
        with torch.inference_mode(), self._autocast():
            self._frame = self._encode_frame(frame)
            for prompt in prompts:
                track_id = None if prompt.track_id is None else int(prompt.track_id)
                person = self._people.get(track_id) if track_id is not None else None
                if person is not None:
                    pix_feat = self._condition_on_memory(person, frame.index)
                    candidates = self._decode(
                        pix_feat, None, model._use_multimask(False, None), prompted=False
                    )
                else:
                    points = self._point_inputs(prompt)
                    pix_feat = self._without_memory(frame.index)
                    candidates = self._decode(
                        pix_feat, points, model._use_multimask(True, points), prompted=True
                    )
                results.append(
                    [obs for c in candidates if (obs := self._observation(c)) is not None]
                )
        return results

    # -- MemorySegmenter -----------------------------------------------------------------
    def commit(
        self,
        frame_index: int,
        track_id: int,
        observation: Observation,
        lam: float | None,
        admitted: bool,
    ) -> None:
        """Makes a candidate of the last ``segment`` call this person's memory for the frame.

        ``lam=None``: the person's conditioning (prompt) frame, replacing any memory they had.
        Otherwise a tracked frame with EMA decay ``lam`` in [0, 1] and SegFollow's admission.
        """
        import torch

        candidate = self._candidate_of(observation, frame_index)
        track_id = int(track_id)
        if lam is not None and not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}")
        person = self._people.get(track_id)
        if lam is not None and person is None:
            raise ValueError(f"track {track_id} has no memory: commit its prompt frame first")
        score = float(candidate.object_score)
        mode = self.config.memory
        if lam is not None and mode == "ema" and not (admitted and score > 0):
            return  # frozen: the memory encoder need not run
        with torch.inference_mode(), self._autocast():
            if lam is None:
                features = self._encode_memory(candidate, candidate.low_res, conditioning=True)
                self._people[track_id] = PersonMemory(
                    cond_frame=frame_index,
                    cond_features=features.to(torch.bfloat16),  # as SAM2 stores memories
                    cond_pointer=candidate.pointer,
                )
                return
            assert person is not None
            features = self._encode_memory(candidate, candidate.low_res_raw, conditioning=False)
            remember_tracked_frame(
                person, mode, frame_index, features, candidate.pointer, score, lam, admitted
            )
        person.forget_before(
            features_from=frame_index + 2 - self.model.num_maskmem,
            pointers_from=frame_index + 2 - self._max_pointers,
        )

    # -- the model's steps ---------------------------------------------------------------
    def _autocast(self):
        import torch

        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self._autocast_dtype)

    def _encode_frame(self, frame: Frame) -> _FrameFeatures:
        """Image encoder on one frame, preprocessed exactly as SAM2's JPEG loader does."""
        import torch
        from PIL import Image

        model = self.model
        rgb = np.ascontiguousarray(frame.rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"frame.rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        size = model.image_size
        resized = np.array(Image.fromarray(rgb).resize((size, size))) / 255.0
        image = torch.from_numpy(resized).permute(2, 0, 1).to(torch.float32).to(self.device)
        image = ((image - self._mean) / self._std).unsqueeze(0)
        backbone_out = model.forward_image(image)
        _, vision_feats, vision_pos, feat_sizes = model._prepare_backbone_features(backbone_out)
        high_res = [
            x.permute(1, 2, 0).view(x.size(1), x.size(2), *s)
            for x, s in zip(vision_feats[:-1], feat_sizes[:-1], strict=True)
        ]
        return _FrameFeatures(
            index=frame.index,
            height=rgb.shape[0],
            width=rgb.shape[1],
            vision_feats=vision_feats,
            vision_pos=vision_pos,
            feat_sizes=feat_sizes,
            high_res=high_res,
        )

    def _point_inputs(self, prompt: Prompt) -> dict[str, torch.Tensor]:
        """Box corners (labels 2, 3) then the clicks, in the model's input pixels."""
        import torch

        assert self._frame is not None
        box = torch.tensor(np.asarray(prompt.box_xyxy, dtype=np.float32).reshape(1, 2, 2))
        labels = torch.tensor([[2, 3]], dtype=torch.int32)
        if prompt.points_xy is not None and len(prompt.points_xy):
            if prompt.point_labels is None or len(prompt.point_labels) != len(prompt.points_xy):
                raise ValueError("a prompt's points_xy and point_labels must come together")
            points = torch.tensor(np.asarray(prompt.points_xy, dtype=np.float32).reshape(1, -1, 2))
            box = torch.cat([box, points], dim=1)
            point_labels = np.asarray(prompt.point_labels, dtype=np.int32).reshape(1, -1)
            labels = torch.cat([labels, torch.from_numpy(point_labels)], dim=1)
        coords = box / torch.tensor([self._frame.width, self._frame.height])
        coords = coords * self.model.image_size
        return {"point_coords": coords.to(self.device), "point_labels": labels.to(self.device)}

    def _without_memory(self, frame_index: int) -> torch.Tensor:
        """The current frame's features as SAM2 sees a prompted first frame (no memory)."""
        frame = self._frame
        assert frame is not None
        return self.model._prepare_memory_conditioned_features(
            frame_idx=frame_index,
            is_init_cond_frame=True,
            current_vision_feats=frame.vision_feats[-1:],
            current_vision_pos_embeds=frame.vision_pos[-1:],
            feat_sizes=frame.feat_sizes[-1:],
            output_dict={"cond_frame_outputs": {}, "non_cond_frame_outputs": {}},
            num_frames=frame_index + 1,
        )

    def _condition_on_memory(self, person: PersonMemory, frame_index: int) -> torch.Tensor:
        """Memory attention of the current frame to one person's memory -> (1, C, h, w)."""
        import torch

        model = self.model
        frame = self._frame
        assert frame is not None and self._memory_pos is not None
        memory, memory_pos = [], []
        for t_pos, features in self._spatial_memories(person, frame_index):
            memory.append(features.to(self.device).flatten(2).permute(2, 0, 1))
            temporal = model.maskmem_tpos_enc[model.num_maskmem - t_pos - 1]
            memory_pos.append(self._memory_pos + temporal)
        pointer_tokens = 0
        if model.use_obj_ptrs_in_encoder:
            pointers, pointer_pos = self._pointer_memories(person, frame_index)
            memory.append(pointers)
            memory_pos.append(pointer_pos)
            pointer_tokens = pointers.shape[0]
        channels = model.hidden_dim
        height, width = frame.feat_sizes[-1]
        pix_feat = model.memory_attention(
            curr=frame.vision_feats[-1:],
            curr_pos=frame.vision_pos[-1:],
            memory=torch.cat(memory, dim=0),
            memory_pos=torch.cat(memory_pos, dim=0),
            num_obj_ptr_tokens=pointer_tokens,
        )
        return pix_feat.permute(1, 2, 0).view(1, channels, height, width)

    def _spatial_memories(
        self, person: PersonMemory, frame_index: int
    ) -> list[tuple[int, torch.Tensor]]:
        """(temporal position, features): the conditioning frame at 0, then older to newer,
        the newest (the frame before) at num_maskmem - 1, as SAM2 orders them."""
        last = self.model.num_maskmem - 1
        chosen = [(0, person.cond_features)]
        if self.config.memory == "fifo":
            for t_pos in range(1, last + 1):
                features = person.recent.get(frame_index - (last + 1 - t_pos))
                if features is not None:
                    chosen.append((t_pos, features))
        elif person.ema is not None:
            chosen.append((last, person.ema))
        return chosen

    def _pointer_memories(
        self, person: PersonMemory, frame_index: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Object pointer tokens and their temporal encoding, as SAM2 builds them."""
        import torch
        from sam2.modeling.sam2_utils import get_1d_sine_pe

        model = self.model
        # Frames come in increasing order, so the conditioning frame is never in the future.
        distances_and_pointers = [(frame_index - person.cond_frame, person.cond_pointer)]
        for distance in range(1, self._max_pointers):
            if frame_index - distance < 0:
                break
            pointer = person.pointers.get(frame_index - distance)
            if pointer is not None:
                distances_and_pointers.append((distance, pointer))
        distances, pointers = zip(*distances_and_pointers, strict=True)
        tokens = torch.stack(pointers, dim=0)  # (n, 1, C)
        mem_dim, channels = model.mem_dim, model.hidden_dim
        if model.add_tpos_enc_to_obj_ptrs:
            position = torch.tensor(distances).to(device=self.device) / (self._max_pointers - 1)
            pe_dim = channels if model.proj_tpos_enc_in_obj_ptrs else mem_dim
            pos = model.obj_ptr_tpos_proj(get_1d_sine_pe(position, dim=pe_dim))
            pos = pos.unsqueeze(1).expand(-1, 1, mem_dim)
        else:
            pos = tokens.new_zeros(len(distances), 1, mem_dim)
        if mem_dim < channels:
            # A pointer is split into channels / mem_dim tokens of the memory's width.
            tokens = tokens.reshape(-1, 1, channels // mem_dim, mem_dim)
            tokens = tokens.permute(0, 2, 1, 3).flatten(0, 1)
            pos = pos.repeat_interleave(channels // mem_dim, dim=0)
        return tokens, pos

    def _decode(
        self,
        pix_feat: torch.Tensor,
        point_inputs: dict[str, torch.Tensor] | None,
        multimask: bool,
        prompted: bool,
    ) -> list[_Candidate]:
        """SAM's heads on memory-conditioned features -> every candidate with its pointer."""
        model = self.model
        frame = self._frame
        assert frame is not None
        captured: dict[str, torch.Tensor] = {}

        def keep_tokens(_module, _inputs, outputs) -> None:
            captured["tokens"] = outputs[2]  # (1, M or 1, C): the decoder's output tokens

        hook = model.sam_mask_decoder.register_forward_hook(keep_tokens)
        try:
            low_res_multi, _, ious, _, _, _, object_score = model._forward_sam_heads(
                backbone_features=pix_feat,
                point_inputs=point_inputs,
                mask_inputs=None,
                high_res_features=frame.high_res,
                multimask_output=multimask,
            )
        finally:
            hook.remove()
        tokens = captured["tokens"]
        candidates = []
        for k, iou in enumerate(ious[0].float().tolist()):
            raw = low_res_multi[:, k : k + 1]
            token = tokens[:, k] if tokens.shape[1] == low_res_multi.shape[1] else tokens[:, 0]
            shown = raw
            if self._fill_holes:
                from sam2.utils.misc import fill_holes_in_mask_scores

                shown = fill_holes_in_mask_scores(raw, model.fill_hole_area)
            candidates.append(
                _Candidate(
                    low_res=shown,
                    low_res_raw=raw,
                    object_score=object_score,
                    pointer=self._object_pointer(token, object_score),
                    iou=iou,
                    prompted=prompted,
                )
            )
        return candidates

    def _object_pointer(self, token: torch.Tensor, object_score: torch.Tensor) -> torch.Tensor:
        """SAM2's object pointer of one decoder token, blended to its no-object pointer by
        the object score as the model does."""
        model = self.model
        pointer = model.obj_ptr_proj(token)
        if model.pred_obj_scores:
            if model.soft_no_obj_ptr:
                appearing = object_score.sigmoid()
            else:
                appearing = (object_score > 0).float()
            if model.fixed_no_obj_ptr:
                pointer = appearing * pointer
            pointer = pointer + (1 - appearing) * model.no_obj_ptr
        return pointer

    def _observation(self, candidate: _Candidate) -> Observation | None:
        import torch

        frame = self._frame
        assert frame is not None
        logits = torch.nn.functional.interpolate(
            candidate.low_res.float(),
            size=(frame.height, frame.width),
            mode="bilinear",
            align_corners=False,
        )
        mask = (logits[0, 0] > 0).cpu().numpy()
        box = mask_box(mask)
        if box is None:
            return None
        key = len(self._pending)
        self._pending[key] = candidate
        return Observation(
            mask=mask,
            box_xyxy=box,
            quality=candidate.iou,
            object_score=float(candidate.object_score),
            appearance=candidate.pointer[0].float().cpu().numpy(),
            state=_CandidateRef(id(self), frame.index, key),
        )

    def _candidate_of(self, observation: Observation, frame_index: int) -> _Candidate:
        ref = observation.state
        if (
            not isinstance(ref, _CandidateRef)
            or ref.segmenter_id != id(self)
            or self._frame is None
            or ref.frame_index != self._frame.index
            or ref.frame_index != frame_index
            or ref.key not in self._pending
        ):
            raise ValueError(
                "commit takes an Observation from this segmenter's latest segment() call, "
                f"for that frame (got frame {frame_index})"
            )
        return self._pending[ref.key]

    def _encode_memory(
        self, candidate: _Candidate, low_res: torch.Tensor, conditioning: bool
    ) -> torch.Tensor:
        """SAM2's memory encoder on the current frame and one mask -> (1, mem_dim, h, w)."""
        import torch

        model = self.model
        frame = self._frame
        assert frame is not None
        size = model.image_size
        high_res = torch.nn.functional.interpolate(
            low_res, size=(size, size), mode="bilinear", align_corners=False
        )
        features, pos = model._encode_new_memory(
            current_vision_feats=frame.vision_feats,
            feat_sizes=frame.feat_sizes,
            pred_masks_high_res=high_res,
            object_score_logits=candidate.object_score,
            is_mask_from_pts=candidate.prompted and conditioning,
        )
        if self._memory_pos is None:
            self._memory_pos = pos[-1][0:1].clone().flatten(2).permute(2, 0, 1)
        return features


# ---------------------------------------------------------------- pure helpers


def pointer_similarity(memory: np.ndarray, appearance: np.ndarray) -> float:
    """Cosine similarity of two object pointers, clipped to [0, 1] (opposite = unrelated)."""
    a = np.asarray(memory, dtype=np.float64).ravel()
    b = np.asarray(appearance, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"object pointers differ in size: {a.shape} and {b.shape}")
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0.0:
        return 0.0
    return float(np.clip(a @ b / norms, 0.0, 1.0))


def _hole_filling_available() -> bool:
    """Whether sam2's optional compiled extension (used to fill small mask holes) loads."""
    try:
        from sam2 import _C  # noqa: F401
    except ImportError:
        log.debug("sam2._C is not built: small holes in SAM2 masks are left unfilled")
        return False
    return True


# ---------------------------------------------------------------- building and loading


def build_sam2_model(
    config: Sam2SegmenterConfig, device: str, checkpoint: Path | str | None
) -> Any:
    """A SAM2.1 video model from the packaged config, with the checkpoint's weights."""
    from sam2.build_sam import build_sam2_video_predictor

    overrides = []
    if config.image_size is not None:
        overrides.append(f"++model.image_size={config.image_size}")
    model = build_sam2_video_predictor(
        SAM2_CONFIGS[config.model], ckpt_path=None, device="cpu", hydra_overrides_extra=overrides
    )
    if checkpoint is not None:
        load_checkpoint(model, Path(checkpoint), config.model)
    return model.to(device).eval()


def load_checkpoint(model: Any, path: Path, size: str) -> None:
    """Loads Meta's ``{"model": state_dict}`` file; any problem is a MissingModelError."""
    import torch

    name = SAM2_MODELS[size]
    fetch = f"fetch it with: ram-core weights download {name}"
    if not path.is_file():
        raise MissingModelError(f"SAM2 checkpoint {path} does not exist; {fetch}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on a damaged file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingModelError(
            f"{path} is not a readable SAM2 checkpoint ({reason[:200]}); {fetch}"
        ) from exc
    state = blob.get("model") if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise MissingModelError(f"{path} holds no SAM2 weights (no 'model' entry); {fetch}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        missing = set(model.state_dict()) - set(state)
        detail = (
            f"{len(missing)} of the model's tensors are missing"
            if missing
            else "tensor shapes or names differ"
        )
        raise MissingModelError(
            f"{path} does not hold SAM2.1 hiera {size} weights ({detail}); "
            f"was it downloaded for another model size? {fetch}"
        ) from exc

