"""Training T-HMR's MemFormer and memory scorer on short clips of one person; HMR2.0 is frozen.

Each batch is B clips of T frames. HMR2.0's backbone gives every frame's tokens once (no
gradient); frame t of a clip then gets as memory the reliable frames before it, exactly as
the Memory Cache would hold them (``causal_clip_memory``), so one backbone pass trains T
queries. The fused tokens go through HMR2.0's frozen SMPL head, whose output is posed on our
built-in skeleton (``REST_JOINTS_M``) by the torch forward kinematics of
``ram_core.train.torch_rotations``; HMR2.0's betas are not used, since the skeleton's bones are
fixed.

Loss per query frame (only frames that have some memory, the others are HMR2.0 alone):
``joint_weight`` x the mean 3D joint error after pelvis centring (metres) +
``reprojection_weight`` x the mean 2D error of the joints projected through the predicted crop
camera (in crop units: 1 = the crop square's side), against the ground truth projected into
the same crop.

Robustness to bad memory is trained directly: with probability ``outlier_rate`` a reliable
memory frame is swapped for the same frame of another clip of the batch (another person or
pose, still marked reliable), which the scorer's reliability branch has to learn to demote.

The loop is the shared one (``ram_core.train.loop``: seeded batches, checkpoints of the
trained parts, optimizer, step and random state that resume exactly, a tqdm bar); its model is
the scorer + MemFormer only, so checkpoints stay small.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ram_core.body.skeleton import NUM_JOINTS
from ram_core.errors import BadInputError
from ram_core.reconstruct.hmr2 import Hmr2Output, normalise_crops
from ram_core.reconstruct.thmr import MEAN_SHAPE_PELVIS_M
from ram_core.reconstruct.thmr_memory import causal_clip_memory
from ram_core.reconstruct.thmr_model import THmr
from ram_core.train.loop import TrainResult, load_checkpoint, train_loop
from ram_core.train.scene_data import ClipArrays
from ram_core.train.torch_rotations import pelvis_centred_joints

# Frames per training clip for the command: up to 7 frames of memory for the last one.
COMMAND_CLIP_LEN = 8
# Nearest depth (metres) a projected joint may have: keeps the 2D loss finite while the
# predicted camera is still wild.
MIN_DEPTH_M = 0.1


@dataclass(frozen=True)
class MemFormerTrainConfig:
    """steps: total optimizer steps (a resumed run continues up to it).
    batch_size: clips per step. learning_rate, weight_decay: AdamW. grad_clip: global
    gradient norm limit (0: none).
    joint_weight, reprojection_weight: the two loss terms. outlier_rate: chance that a
    reliable memory frame is swapped for another clip's. checkpoint_every: steps between
    checkpoints (one is also written at the end). seed: batches and outliers.
    """

    steps: int = 20_000
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    joint_weight: float = 1.0
    reprojection_weight: float = 1.0
    outlier_rate: float = 0.1
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError(
                "memformer training needs steps >= 0, batch_size and checkpoint_every >= 1"
            )
        if self.learning_rate <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError(
                "memformer training needs learning_rate > 0, weight_decay and grad_clip >= 0"
            )
        if self.joint_weight < 0 or self.reprojection_weight < 0:
            raise ValueError("loss weights must be >= 0")
        if not 0.0 <= self.outlier_rate < 1.0:
            raise ValueError(f"outlier_rate must lie in [0, 1), got {self.outlier_rate}")


def crop_keypoints(
    joints_cam: np.ndarray, intrinsics: np.ndarray, crop_boxes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth joints in crop units, as HMR2.0's crop camera projects them.

    joints_cam (N, T, J, 3) metres; intrinsics (N, 3, 3); crop_boxes (N, T, 3) (centre x, y,
    side, pixels). Returns (uv - centre) / side, (N, T, J, 2), and a mask (N, T, J) of joints
    in front of the camera.
    """
    joints = np.asarray(joints_cam, dtype=np.float64)
    K = np.asarray(intrinsics, dtype=np.float64)[:, None, None]  # (N, 1, 1, 3, 3)
    depth = joints[..., 2]
    valid = np.isfinite(joints).all(axis=-1) & (depth > 1e-3)
    safe = np.where(valid[..., None], joints, [0.0, 0.0, 1.0])
    pixels = np.einsum("ntjab,ntjb->ntja", np.broadcast_to(K, (*safe.shape[:3], 3, 3)), safe)
    uv = pixels[..., :2] / pixels[..., 2:]
    boxes = np.asarray(crop_boxes, dtype=np.float64)
    keypoints = (uv - boxes[..., None, :2]) / boxes[..., None, 2:3]
    return np.where(valid[..., None], keypoints, 0.0).astype(np.float32), valid


@dataclass(frozen=True)
class ClipBatch:
    """B clips of T frames on a device: crops (B, T, 3, 256, 192) normalised; joints_cam
    (B, T, 24, 3); keypoints_crop (B, T, 24, 2); keypoints_valid (B, T, 24); reliable (B, T)."""

    crops: torch.Tensor
    joints_cam: torch.Tensor
    keypoints_crop: torch.Tensor
    keypoints_valid: torch.Tensor
    reliable: torch.Tensor


class ClipCropDataset:
    """Clips of one person: crops uint8 (N, T, 256, 192, 3) RGB, cut as T-HMR cuts them;
    joints_cam (N, T, 24, 3) metres in the camera frame; crop_boxes (N, T, 3): each crop's
    square (centre x, centre y, side) in full-frame pixels; intrinsics (N, 3, 3); reliable
    (N, T) bool: frames that may enter memory (default all).
    """

    def __init__(
        self,
        crops: np.ndarray,
        joints_cam: np.ndarray,
        crop_boxes: np.ndarray,
        intrinsics: np.ndarray,
        reliable: np.ndarray | None = None,
    ) -> None:
        crops = np.asarray(crops)
        if crops.dtype != np.uint8 or crops.ndim != 5 or crops.shape[-1] != 3:
            raise ValueError(
                f"crops must be uint8 (N, T, H, W, 3), got {crops.dtype} {crops.shape}"
            )
        clips, frames = crops.shape[:2]
        if frames < 2:
            raise ValueError(f"clips need at least 2 frames, got {frames}")
        reliable = np.ones((clips, frames), bool) if reliable is None else np.asarray(reliable)
        expected = {
            "joints_cam": (np.shape(joints_cam), (clips, frames, NUM_JOINTS, 3)),
            "crop_boxes": (np.shape(crop_boxes), (clips, frames, 3)),
            "intrinsics": (np.shape(intrinsics), (clips, 3, 3)),
            "reliable": (reliable.shape, (clips, frames)),
        }
        for name, (shape, want) in expected.items():
            if tuple(shape) != want:
                raise ValueError(f"{name} must have shape {want}, got {tuple(shape)}")
        self.crops = crops
        self.joints_cam = np.asarray(joints_cam, dtype=np.float32)
        self.reliable = reliable.astype(bool)
        self.keypoints_crop, self.keypoints_valid = crop_keypoints(
            self.joints_cam, intrinsics, crop_boxes
        )

    @classmethod
    def from_clips(cls, clips: ClipArrays) -> ClipCropDataset:
        return cls(
            clips.crops, clips.joints_cam, clips.crop_boxes, clips.intrinsics, clips.reliable
        )

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def clip_len(self) -> int:
        return self.crops.shape[1]

    def batch(self, indices: Sequence[int] | np.ndarray, device: torch.device) -> ClipBatch:
        indices = np.asarray(indices, dtype=np.int64)
        crops = self.crops[indices]  # (B, T, H, W, 3)
        # Moved as uint8 (a quarter of the bytes), normalised on the device.
        pixels = torch.from_numpy(crops.reshape(-1, *crops.shape[2:])).to(device)
        normalised = normalise_crops(pixels)
        return ClipBatch(
            crops=normalised.reshape(*crops.shape[:2], *normalised.shape[1:]),
            joints_cam=torch.from_numpy(self.joints_cam[indices]).to(device),
            keypoints_crop=torch.from_numpy(self.keypoints_crop[indices]).to(device),
            keypoints_valid=torch.from_numpy(self.keypoints_valid[indices]).to(device),
            reliable=torch.from_numpy(self.reliable[indices]).to(device),
        )


# ------------------------------------------------------------------------- geometry (torch)


def crop_camera_translation(
    weak_camera: torch.Tensor, focal_length_px: float, crop_size: int
) -> torch.Tensor:
    """HMR2.0's (s, tx, ty) -> the SMPL origin's translation in the crop camera (..., 3).

    The scale is floored at 1e-2 so that depth stays finite while training.
    """
    scale = weak_camera[..., 0].clamp(min=1e-2)
    depth = 2.0 * focal_length_px / (crop_size * scale)
    return torch.stack([weak_camera[..., 1], weak_camera[..., 2], depth], dim=-1)


def project_to_crop(
    points_cam: torch.Tensor, focal_length_px: float, crop_size: int
) -> torch.Tensor:
    """Crop-camera points (..., 3) -> crop units (..., 2): f / crop_size * (x, y) / z."""
    depth = points_cam[..., 2:].clamp(min=MIN_DEPTH_M)
    return (focal_length_px / crop_size) * points_cam[..., :2] / depth


@dataclass(frozen=True)
class MemFormerLosses:
    """Scalars: total, joints_m (mean 3D error, pelvis-centred), reprojection (crop units),
    and queries (how many frames had memory and were counted)."""

    total: torch.Tensor
    joints_m: torch.Tensor
    reprojection: torch.Tensor
    queries: int


def memformer_losses(
    output: Hmr2Output,
    joints_cam: torch.Tensor,
    keypoints_crop: torch.Tensor,
    keypoints_valid: torch.Tensor,
    counted: torch.Tensor,
    config: MemFormerTrainConfig,
    focal_length_px: float,
    crop_size: int,
) -> MemFormerLosses:
    """Losses over Q query frames: output for Q crops, joints_cam (Q, 24, 3), keypoints_crop
    (Q, 24, 2), keypoints_valid (Q, 24), counted (Q,) bool."""
    rotations = torch.cat([output.global_orient[..., None, :, :], output.body_pose], dim=-3)
    centred = pelvis_centred_joints(rotations.float())
    truth = joints_cam - joints_cam[..., :1, :]
    # The pelvis is 0 on both sides by construction: left out (and its zero norm has no
    # gradient).
    joint_error = (centred - truth)[..., 1:, :].norm(dim=-1).mean(dim=-1)  # (Q,)

    # HMR2.0's camera places SMPL's origin; its pelvis sits J0 (unrotated) from it.
    pelvis = torch.as_tensor(MEAN_SHAPE_PELVIS_M, dtype=torch.float32, device=centred.device)
    origin = crop_camera_translation(output.weak_camera.float(), focal_length_px, crop_size)
    posed = centred + pelvis + origin[..., None, :]
    projected = project_to_crop(posed, focal_length_px, crop_size)
    offsets = (projected - keypoints_crop).square().sum(dim=-1)
    distances = (offsets + 1e-12).sqrt() * keypoints_valid
    reprojection = distances.sum(dim=-1) / keypoints_valid.sum(dim=-1).clamp(min=1)  # (Q,)

    weights = counted.float()
    count = weights.sum().clamp(min=1.0)
    joints_m = (joint_error * weights).sum() / count
    reprojection_mean = (reprojection * weights).sum() / count
    total = config.joint_weight * joints_m + config.reprojection_weight * reprojection_mean
    return MemFormerLosses(
        total=total,
        joints_m=joints_m,
        reprojection=reprojection_mean,
        queries=int(counted.sum()),
    )


# ----------------------------------------------------------------------------- one step


@dataclass(frozen=True)
class MemFormerBatch:
    """A training batch: the clips, and for each of their frames the clip whose same frame
    replaces it in memory (donors (B, T) int64; -1: the clip's own frame)."""

    clips: ClipBatch
    donors: torch.Tensor


def draw_outlier_donors(reliable: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """For reliable (B, T): which clip's frame each memory frame becomes (-1: its own).

    A reliable frame is swapped with probability ``rate`` for the same frame of another clip
    of the batch (a different person or pose, still marked reliable), which the scorer's
    reliability branch must learn to distrust. Needs two clips or more.
    """
    batch, frames = reliable.shape
    donors = np.full((batch, frames), -1, dtype=np.int64)
    if rate <= 0 or batch < 2:
        return donors
    swap = (rng.random((batch, frames)) < rate) & reliable
    others = (np.arange(batch)[:, None] + rng.integers(1, batch, (batch, frames))) % batch
    return np.where(swap, others, donors)


def swap_outliers(features: torch.Tensor, donors: torch.Tensor) -> torch.Tensor:
    """Memory features (B, T, C, Hp, Wp) with the donors' frames swapped in."""
    swap = donors >= 0
    if not bool(swap.any()):
        return features
    clip, frame = swap.nonzero(as_tuple=True)
    swapped = features.clone()
    swapped[clip, frame] = features[donors[clip, frame], frame]
    return swapped


def clip_losses(
    model: THmr, batch: MemFormerBatch, config: MemFormerTrainConfig
) -> MemFormerLosses:
    """Backbone once per frame (frozen), causal memory per frame, fuse, regress, losses."""
    clips = batch.clips
    count, frames = clips.crops.shape[:2]
    on_cuda = clips.crops.device.type == "cuda"
    # The frozen backbone under float16 autocast on a GPU, as T-HMR runs it there
    # (``thmr.half_precision``), so the MemFormer learns on the tokens it will be given.
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.float16, enabled=on_cuda):
        features = model.hmr2.features(clips.crops.flatten(0, 1))
    features = features.float().reshape(count, frames, *features.shape[1:])
    memory_features = swap_outliers(features, batch.donors)
    memory = causal_clip_memory(memory_features, clips.reliable, model.memory_config)
    output = model.regress_with_memory(features.flatten(0, 1), memory)
    hmr2_config = model.hmr2.config
    return memformer_losses(
        output,
        clips.joints_cam.flatten(0, 1),
        clips.keypoints_crop.flatten(0, 1),
        clips.keypoints_valid.flatten(0, 1),
        memory.valid.any(dim=-1),
        config,
        hmr2_config.focal_length_px,
        hmr2_config.crop_size,
    )


# ----------------------------------------------------------------------------- the loop


def trainable_parts(model: THmr) -> nn.ModuleDict:
    """The scorer and MemFormer as one module: what the optimizer, the gradient clipping and
    the checkpoints see (state-dict keys as ``THmr.memformer_state_dict``), so a checkpoint
    never holds HMR2.0's 2.5 GB."""
    return nn.ModuleDict({"scorer": model.scorer, "memformer": model.memformer})


def make_optimizer(parts: nn.Module, config: MemFormerTrainConfig) -> torch.optim.AdamW:
    """AdamW; no weight decay on biases and LayerNorm gains (1-D parameters)."""
    params = list(parts.parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=config.learning_rate,
    )


def checkpoint_settings(model: THmr, config: MemFormerTrainConfig) -> dict[str, Any]:
    """What a checkpoint must have been made with to be resumed (not ``steps`` or
    ``checkpoint_every``, which a resumed run may change)."""
    train = dataclasses.asdict(config)
    del train["steps"], train["checkpoint_every"]
    return {
        "model": "memformer",
        "embed_dim": model.embed_dim,
        "memory": dataclasses.asdict(model.memory_config),
        "train": train,
    }


def usable_clips(dataset: ClipCropDataset) -> np.ndarray:
    """Clips with a reliable frame before their last: the others give no frame any memory."""
    return np.flatnonzero(dataset.reliable[:, :-1].any(axis=1))


def train_memformer(
    model: THmr,
    dataset: ClipCropDataset,
    config: MemFormerTrainConfig,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Trains the scorer and MemFormer of ``model``; HMR2.0's weights stay as they are.

    The shared loop (``ram_core.train.loop``) runs it: checkpoints to ``checkpoint_path``,
    ``resume`` continues from it when it exists. Each step draws ``batch_size`` usable clips
    (without replacement when there are enough) and their outlier swaps from the loop's
    generator.
    """
    usable = usable_clips(dataset)
    if len(usable) == 0:
        raise ValueError("no training clip has a reliable frame before its last")
    device = next(model.parameters()).device
    model.hmr2.requires_grad_(False)
    model.hmr2.eval()
    parts = trainable_parts(model)
    optimizer = make_optimizer(parts, config)

    def make_batch(step: int, rng: np.random.Generator) -> MemFormerBatch:
        replace = len(usable) < config.batch_size
        indices = rng.choice(usable, size=config.batch_size, replace=replace)
        donors = draw_outlier_donors(dataset.reliable[indices], config.outlier_rate, rng)
        return MemFormerBatch(dataset.batch(indices, device), torch.from_numpy(donors).to(device))

    def loss_fn(_parts: nn.Module, batch: MemFormerBatch) -> torch.Tensor:
        return clip_losses(model, batch, config).total

    return train_loop(
        parts,
        make_batch,
        loss_fn,
        optimizer,
        config.steps,
        checkpoint_path=checkpoint_path,
        resume=resume,
        progress=progress,
        checkpoint_every=config.checkpoint_every,
        seed=config.seed,
        config=checkpoint_settings(model, config),
        max_grad_norm=config.grad_clip if config.grad_clip > 0 else None,
    )


def load_trained_memformer(checkpoint: Path, model: THmr) -> int:
    """A training checkpoint's scorer + MemFormer into ``model``; returns its step.

    BadInputError for a file that is not one, or one made for another T-HMR.
    """
    try:
        state = load_checkpoint(checkpoint)
    except ValueError as error:
        raise BadInputError(str(error)) from None
    settings = state["config"]
    if settings.get("model") != "memformer" or settings.get("embed_dim") != model.embed_dim:
        raise BadInputError(f"{checkpoint}: not a MemFormer checkpoint for this T-HMR")
    if settings.get("memory") != dataclasses.asdict(model.memory_config):
        raise BadInputError(
            f"{checkpoint}: made with memory settings {settings.get('memory')}, this T-HMR "
            f"has {dataclasses.asdict(model.memory_config)}"
        )
    model.load_memformer_state(state["model"])
    return int(state["step"])


def export_memformer(checkpoint: Path, model: THmr, out_path: Path) -> None:
    """A training checkpoint -> the small weights file T-HMR loads (``thmr.memformer_weights``)."""
    load_trained_memformer(checkpoint, model)
    model.save_memformer_file(out_path)


# ----------------------------------------------------------------------------- the command


def scene_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """Scene folders (holding gt.npz and video.mp4) given directly or as a parent's children."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / "gt.npz").is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p.parent for p in path.glob("*/gt.npz")))
        else:
            raise BadInputError(f"{path}: not a scene folder nor a folder of scenes")
    return found


def train_memformer_command(args: Any) -> int:
    """``ram-core train memformer --data SCENES... [--steps --batch-size --lr --seed
    --checkpoint FILE --resume --export FILE --progress]``.

    Needs HMR2.0's weights (``hmr2_data``); clips of ``COMMAND_CLIP_LEN`` frames are cut from
    the benchmark scenes given; the export is the file ``thmr.memformer_weights`` names.
    """
    from ram_core.config import load_config
    from ram_core.io.protocol import ExitCode
    from ram_core.models import weights
    from ram_core.models.backends import THMR_WEIGHTS, resolve_device
    from ram_core.reconstruct.thmr import load_thmr
    from ram_core.train.scene_data import concatenate_clips, scene_clip_crops

    if args.data_format != "scenes":
        raise BadInputError("train memformer reads benchmark scenes (--format scenes)")
    if not args.data:
        raise BadInputError("train memformer needs --data SCENE_FOLDER...")
    if args.resume and not args.checkpoint:
        raise BadInputError("--resume needs --checkpoint FILE")
    try:
        given = {"batch_size": args.batch_size, "learning_rate": args.lr}
        config = MemFormerTrainConfig(
            steps=args.steps,
            seed=args.seed,
            **{name: value for name, value in given.items() if value is not None},
        )
    except ValueError as error:
        raise BadInputError(str(error)) from None
    scenes = scene_dirs(args.data)
    if not scenes:
        raise BadInputError(f"no scene folders in {', '.join(map(str, args.data))}")
    thmr_config = load_config(getattr(args, "config", None)).thmr
    clips = concatenate_clips(
        [scene_clip_crops(s, COMMAND_CLIP_LEN, box_padding=thmr_config.box_padding) for s in scenes]
    )
    device = resolve_device("auto")
    # The run config's network and memory, so the export fits the runs that load it.
    model = load_thmr(weights.extract_member(THMR_WEIGHTS), thmr_config, device)
    try:
        result = train_memformer(
            model,
            ClipCropDataset.from_clips(clips),
            config,
            checkpoint_path=Path(args.checkpoint) if args.checkpoint else None,
            resume=args.resume,
            progress=args.progress == "bar",
        )
    except ValueError as error:  # settings that do not fit the data or the checkpoint
        raise BadInputError(str(error)) from None
    if args.export:
        model.save_memformer_file(args.export)
    last = result.losses[-1] if result.losses else float("nan")
    print(
        f"trained the memformer on {len(clips)} clips from {len(scenes)} scenes to step "
        f"{result.final_step} (from {result.start_step}); last loss {last:.5g}"
        + (f"; exported {Path(args.export)}" if args.export else "")
    )
    return ExitCode.OK
