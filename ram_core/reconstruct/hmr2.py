"""HMR2.0's network (4D-Humans, MIT) in our own code, so the public checkpoint loads strictly.

T-HMR's per-frame regressor is HMR2.0 unchanged: a ViT-H/16 backbone (ViTPose-H's) turns a
256 x 192 person crop into a 16 x 12 grid of 1280-d tokens, and a transformer decoder with one
query token cross-attends to them and regresses SMPL's 24 joint rotations (6D), 10 shape
coefficients and a weak-perspective camera as residuals on the mean parameters. ``features``
and ``regress`` are separate because T-HMR's MemFormer fuses a track's memory into the tokens
between the two.

Details that change the outputs with the public weights, as 4D-Humans' source has them:

- Backbone input: the demo crops a 256 x 256 square around the box and the model reads its
  middle 192 columns (``img[:, :, :, 32:-32]``); pixels are RGB, normalised by ImageNet's mean
  and standard deviation on the 0-255 scale (:func:`normalise_crops`).
- Patch embedding: a 16 x 16 convolution with stride 16 and 2 px of zero padding (ViTPose's
  ``4 + 2 * (ratio // 2 - 1)`` with ratio 1); with H and W multiples of 16 the grid is still
  H/16 x W/16.
- Position embedding: (1, 1 + Hp*Wp, C), shaped for a class token the model does not use; the
  class slot is not dropped but added to every token (``x + pos[:, 1:] + pos[:, :1]``).
- Backbone blocks: pre-norm, LayerNorm eps 1e-6, qkv with bias, exact GELU, attention scale
  head_dim^-0.5; a final LayerNorm (``last_norm``). Drop path is a training-time device and is
  absent here.
- Head: the query is a constant zero token of width 1 embedded by a Linear (HMR2.0's config
  leaves ``TRANSFORMER_INPUT`` at 'zero'; 'mean_shape' would feed the current estimate); each
  of 6 layers is self-attention, cross-attention to the tokens and an MLP, each pre-norm
  (torch's default LayerNorm eps 1e-5) with a residual; q/k/v projections have no bias. One
  iteration (``IEF_ITERS`` is unset in the published config, default 1). Outputs are added to
  the buffers ``init_body_pose`` (1, 144), ``init_betas`` (1, 10), ``init_cam`` (1, 3), which
  the checkpoint holds (SPIN's smpl_mean_params).
- 6D rotations: consecutive 6 values per joint are the first two columns of the rotation,
  column after column (reshape to (2, 3), then transpose), orthonormalised by Gram-Schmidt
  (:func:`rot6d_to_matrix_hmr2`). This is not SPIN's (3, 2) row layout.
- Camera: (s, tx, ty) for a focal length of 5000 px on the 256 px square crop; depth is
  2 f / (256 s) (:func:`weak_camera_to_translation`).

Loading (:func:`load_hmr2_checkpoint`): the PyTorch-Lightning checkpoint pickles its
hyper-parameters as yacs ``CfgNode`` objects and other classes we neither depend on nor want to
run. ``torch.load(weights_only=True)`` refuses any class it does not know, and its allowlist
(``add_safe_globals``) wants the class objects themselves, i.e. importing yacs. So the file is
unpickled with a restricted unpickler instead: it resolves only torch's tensor-rebuild
functions, storages, dtypes, ``OrderedDict`` and a few harmless builtins; every other global
becomes an inert placeholder that records its name and never imports or calls anything. Only
the ``state_dict`` entry is used, and its ``backbone.`` / ``smpl_head.`` keys must match this
model exactly (names and shapes); the SMPL layer's buffers, the discriminator and the other
entries are reported as ignored.
"""

from __future__ import annotations

import collections
import math
import pickle
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from ram_core.errors import BadInputError, MissingModelError
from ram_core.models.weights import HMR2_CHECKPOINT_MEMBER, fetch_command, key_mismatch_parts

__all__ = [
    "HMR2_CHECKPOINT_MEMBER",
    "IMAGENET_MEAN_RGB",
    "IMAGENET_STD_RGB",
    "CheckpointMismatchError",
    "Hmr2",
    "Hmr2Config",
    "Hmr2LoadReport",
    "Hmr2Output",
    "build_hmr2",
    "find_hmr2_checkpoint",
    "load_hmr2_checkpoint",
    "normalise_crops",
    "rot6d_to_matrix_hmr2",
    "weak_camera_to_translation",
]

# HMR2.0's MODEL.IMAGE_MEAN / IMAGE_STD (ImageNet's, RGB, 0-1 scale); its demo applies them
# as 255 * mean and 255 * std to 0-255 pixels, which is the same normalisation.
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
# The two state-dict prefixes that are this network; anything else in the checkpoint is not.
MODEL_PREFIXES = ("backbone", "smpl_head")
QUERY_TOKENS = ("zero", "mean_params")
# Values of one joint's 6D rotation, and of the weak-perspective camera (s, tx, ty).
ROT6D_SIZE = 6
CAMERA_SIZE = 3


@dataclass(frozen=True)
class Hmr2Config:
    """The network's shape; the defaults are HMR2.0's published model.

    image_height, image_width: the backbone's input, pixels (the middle 192 columns of the
        256 x 256 crop).
    patch_size, patch_padding_px: the patch embedding's kernel/stride and zero padding.
    embed_dim, depth, num_heads, mlp_ratio, qkv_bias, backbone_norm_eps: the ViT.
    head_dim, head_depth, head_heads, head_dim_head, head_mlp_dim, head_norm_eps: the SMPL
        head's transformer decoder (its context width is embed_dim).
    query_token: 'zero' (HMR2.0: a constant zero token) or 'mean_params' (the current
        estimate, HMR2.0's TRANSFORMER_INPUT='mean_shape'; another checkpoint layout).
    ief_iters: decoder passes, each adding its residual to the estimate.
    num_body_joints, num_betas: SMPL's 23 body joints (plus the global orientation) and shape
        coefficients.
    focal_length_px, crop_size: the camera the weak-perspective output refers to: this focal
        length on the square crop of this many pixels.
    """

    image_height: int = 256
    image_width: int = 192
    patch_size: int = 16
    patch_padding_px: int = 2
    embed_dim: int = 1280
    depth: int = 32
    num_heads: int = 16
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    backbone_norm_eps: float = 1e-6
    head_dim: int = 1024
    head_depth: int = 6
    head_heads: int = 8
    head_dim_head: int = 64
    head_mlp_dim: int = 1024
    head_norm_eps: float = 1e-5
    query_token: str = "zero"
    ief_iters: int = 1
    num_body_joints: int = 23
    num_betas: int = 10
    focal_length_px: float = 5000.0
    crop_size: int = 256

    def __post_init__(self) -> None:
        positive = {
            "image_height": self.image_height,
            "image_width": self.image_width,
            "patch_size": self.patch_size,
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "head_dim": self.head_dim,
            "head_depth": self.head_depth,
            "head_heads": self.head_heads,
            "head_dim_head": self.head_dim_head,
            "head_mlp_dim": self.head_mlp_dim,
            "ief_iters": self.ief_iters,
            "num_body_joints": self.num_body_joints,
            "num_betas": self.num_betas,
            "crop_size": self.crop_size,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"hmr2 {name} must be a positive integer, got {value!r}")
        if self.image_height % self.patch_size or self.image_width % self.patch_size:
            raise ValueError(
                f"hmr2 image {self.image_height}x{self.image_width} must be a multiple of the "
                f"patch size {self.patch_size}"
            )
        # With 2p < P the padded convolution still gives H/P x W/P patches.
        if not 0 <= 2 * self.patch_padding_px < self.patch_size:
            raise ValueError(
                f"hmr2 patch_padding_px must satisfy 0 <= 2p < patch_size, got "
                f"{self.patch_padding_px}"
            )
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"hmr2 embed_dim {self.embed_dim} must divide into {self.num_heads} heads"
            )
        if not (math.isfinite(self.mlp_ratio) and self.mlp_ratio > 0):
            raise ValueError(f"hmr2 mlp_ratio must be positive, got {self.mlp_ratio}")
        if int(self.embed_dim * self.mlp_ratio) < 1:
            raise ValueError("hmr2 embed_dim * mlp_ratio must be at least 1")
        for name, eps in (("backbone", self.backbone_norm_eps), ("head", self.head_norm_eps)):
            if not (math.isfinite(eps) and eps > 0):
                raise ValueError(f"hmr2 {name}_norm_eps must be positive, got {eps}")
        if self.query_token not in QUERY_TOKENS:
            raise ValueError(f"hmr2 query_token must be one of {', '.join(QUERY_TOKENS)}")
        if not (math.isfinite(self.focal_length_px) and self.focal_length_px > 0):
            raise ValueError(f"hmr2 focal_length_px must be positive, got {self.focal_length_px}")
        if max(self.image_height, self.image_width) > self.crop_size:
            raise ValueError(
                f"hmr2 backbone input {self.image_height}x{self.image_width} must fit in the "
                f"{self.crop_size} px square crop"
            )

    @classmethod
    def tiny(cls) -> Hmr2Config:
        """The same code at a small width and depth, for tests and CPU runs (random weights).

        The input size and the SMPL outputs are HMR2.0's, so crops, the 16 x 12 grid and the
        camera are the real ones.
        """
        return cls(
            embed_dim=64,
            depth=2,
            num_heads=4,
            head_dim=64,
            head_depth=1,
            head_heads=2,
            head_dim_head=16,
            head_mlp_dim=64,
        )

    @property
    def grid_height(self) -> int:
        return self.image_height // self.patch_size

    @property
    def grid_width(self) -> int:
        return self.image_width // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_height * self.grid_width

    @property
    def num_joints(self) -> int:
        """Global orientation plus the body joints."""
        return self.num_body_joints + 1

    @property
    def pose_size(self) -> int:
        """6D values of all joints."""
        return ROT6D_SIZE * self.num_joints


@dataclass(frozen=True)
class Hmr2Output:
    """HMR2.0's prediction for B crops (tensors).

    global_orient (B, 3, 3) and body_pose (B, 23, 3, 3): rotation matrices in HMR2.0's camera
    frame (x right, y down, z forward); betas (B, 10); weak_camera (B, 3): (s, tx, ty) for the
    square crop (:func:`weak_camera_to_translation`).
    """

    global_orient: Tensor
    body_pose: Tensor
    betas: Tensor
    weak_camera: Tensor


# ------------------------------------------------------------------------------- geometry


def rot6d_to_matrix_hmr2(x: Tensor) -> Tensor:
    """HMR2.0's 6D rotation -> rotation matrix. (..., 6) -> (..., 3, 3).

    The 6 values are the matrix's first column then its second (HMR2.0 reshapes to (2, 3) and
    transposes); Gram-Schmidt keeps the first column's direction, the third is their cross
    product. Same layout as ``ram_core.body.rotations.rot6d_to_matrix``.
    """
    if x.shape[-1] != ROT6D_SIZE:
        raise ValueError(f"6D rotations need a last axis of 6, got shape {tuple(x.shape)}")
    first, second = x[..., :3], x[..., 3:]
    b1 = functional.normalize(first, dim=-1)
    b2 = functional.normalize(second - (b1 * second).sum(dim=-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def weak_camera_to_translation(
    weak_camera: np.ndarray,
    box_centre_px: np.ndarray,
    box_size_px: np.ndarray,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    focal_length_px: float = 5000.0,
    crop_size: int = 256,
) -> np.ndarray:
    """HMR2.0's crop camera -> the SMPL origin's translation in the full image's camera.

    weak_camera (N, 3): (s, tx, ty) as HMR2.0 predicts it for a square crop of side
    box_size_px (N,) centred at box_centre_px (N, 2) in the full image (pixels, origin at the
    top-left pixel corner), resized to crop_size. Returns (N, 3) metres, OpenCV axes.

    The crop camera has focal length f = focal_length_px and its principal point at the
    crop's centre, and places the body at t = (tx, ty, 2 f / (crop_size s)). In full-image
    pixels it projects a body point X as ``box_centre + (b s / 2) (X_xy + t_xy)`` near the
    body's depth (b = box size). The full camera (fx, fy, cx, cy) gives the same image of the
    origin and the same size with

        Tz = 2 F / (b s),  Tx = (F / fx) (2 (bx - cx) / (b s) + tx),
        Ty = (F / fy) (2 (by - cy) / (b s) + ty),

    where F = sqrt(fx fy). With fx = fy = F and (cx, cy) the image centre this is 4D-Humans'
    ``cam_crop_to_full``. With fx != fy no single depth matches both axes' scale (the square
    crop of non-square pixels was stretched); F splits the difference and the origin still
    projects exactly. Points off the origin's depth plane differ slightly from the crop camera's
    projection, which is a much longer lens; that is inherent in the conversion.

    Rows whose scale s is not positive (no depth in front of the camera) are NaN.
    """
    weak_camera = np.asarray(weak_camera, dtype=np.float64)
    box_centre_px = np.asarray(box_centre_px, dtype=np.float64)
    box_size_px = np.asarray(box_size_px, dtype=np.float64)
    if weak_camera.ndim != 2 or weak_camera.shape[1] != CAMERA_SIZE:
        raise ValueError(f"weak_camera must be (N, 3), got {weak_camera.shape}")
    n = weak_camera.shape[0]
    if box_centre_px.shape != (n, 2) or box_size_px.shape != (n,):
        raise ValueError(
            f"box_centre_px must be ({n}, 2) and box_size_px ({n},), got "
            f"{box_centre_px.shape} and {box_size_px.shape}"
        )
    if not np.all(np.isfinite(box_size_px) & (box_size_px > 0)):
        raise ValueError("box_size_px must be positive")
    for name, value in (("fx", fx), ("fy", fy), ("focal_length_px", focal_length_px)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be positive, got {value}")
    if crop_size < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    scale, tx, ty = weak_camera.T
    focal = math.sqrt(fx * fy)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale_px = np.where(scale > 0, box_size_px * scale, np.nan)  # b s
        tz = 2.0 * focal / scale_px
        tx_full = (focal / fx) * (2.0 * (box_centre_px[:, 0] - cx) / scale_px + tx)
        ty_full = (focal / fy) * (2.0 * (box_centre_px[:, 1] - cy) / scale_px + ty)
    return np.stack([tx_full, ty_full, tz], axis=-1)


def normalise_crops(crops: np.ndarray | Tensor) -> Tensor:
    """RGB uint8 crops (B, H, W, 3) -> the network's input (B, 3, H, W) float32.

    ImageNet normalisation as HMR2.0 applies it: (pixel - 255 mean) / (255 std). A tensor stays
    on its device; a numpy array becomes a CPU tensor.
    """
    pixels = (
        torch.from_numpy(np.ascontiguousarray(crops)) if isinstance(crops, np.ndarray) else crops
    )
    if pixels.dtype != torch.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(
            f"crops must be uint8 (B, H, W, 3) RGB, got {pixels.dtype} {tuple(pixels.shape)}"
        )
    mean = torch.tensor(IMAGENET_MEAN_RGB, device=pixels.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD_RGB, device=pixels.device).view(1, 3, 1, 1) * 255.0
    return (pixels.permute(0, 3, 1, 2).float() - mean) / std


# ------------------------------------------------------------------------------- the network


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, heads * d) -> (B, heads, N, d); heads are the major part of the feature axis."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _attend(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """Scaled dot-product attention (scale d^-0.5) over heads. -> (B, Nq, heads * d)."""
    out = functional.scaled_dot_product_attention(
        _split_heads(q, heads), _split_heads(k, heads), _split_heads(v, heads)
    )
    return out.transpose(1, 2).flatten(2)


class PatchEmbedding(nn.Module):
    """(B, 3, H, W) -> (B, C, H/P, W/P)."""

    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.proj = nn.Conv2d(
            3,
            config.embed_dim,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            padding=config.patch_padding_px,
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images)


class VitAttention(nn.Module):
    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.heads = config.num_heads
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim, bias=config.qkv_bias)
        self.proj = nn.Linear(config.embed_dim, config.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.proj(_attend(q, k, v, self.heads))


class VitMlp(nn.Module):
    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        hidden = int(config.embed_dim * config.mlp_ratio)
        self.fc1 = nn.Linear(config.embed_dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, config.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VitBlock(nn.Module):
    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim, eps=config.backbone_norm_eps)
        self.attn = VitAttention(config)
        self.norm2 = nn.LayerNorm(config.embed_dim, eps=config.backbone_norm_eps)
        self.mlp = VitMlp(config)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VitBackbone(nn.Module):
    """ViTPose's ViT as HMR2.0 uses it: crops (B, 3, H, W) -> tokens (B, C, H/P, W/P)."""

    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbedding(config)
        # One slot more than patches: the pretraining's class token, whose embedding is added
        # to every patch (see forward).
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.embed_dim))
        self.blocks = nn.ModuleList(VitBlock(config) for _ in range(config.depth))
        self.last_norm = nn.LayerNorm(config.embed_dim, eps=config.backbone_norm_eps)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, images: Tensor) -> Tensor:
        grid = self.patch_embed(images)
        batch, channels, grid_height, grid_width = grid.shape
        x = grid.flatten(2).transpose(1, 2)
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for block in self.blocks:
            x = block(x)
        x = self.last_norm(x)
        return x.transpose(1, 2).reshape(batch, channels, grid_height, grid_width)


class PreNorm(nn.Module):
    """LayerNorm, then ``fn``; the caller adds the residual."""

    def __init__(self, dim: int, fn: nn.Module, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.fn = fn

    def forward(self, x: Tensor, **kwargs: Tensor) -> Tensor:
        return self.fn(self.norm(x), **kwargs)


def _output_projection(config: Hmr2Config) -> nn.Module:
    """The heads' output projection; HMR2.0 omits it when one head already spans dim."""
    inner = config.head_heads * config.head_dim_head
    if config.head_heads == 1 and config.head_dim_head == config.head_dim:
        return nn.Identity()
    # A Sequential so the Linear is ``to_out.0``, as in the checkpoint (HMR2.0 puts a dropout
    # after it, which has no weights).
    return nn.Sequential(nn.Linear(inner, config.head_dim))


class DecoderSelfAttention(nn.Module):
    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.heads = config.head_heads
        inner = config.head_heads * config.head_dim_head
        self.to_qkv = nn.Linear(config.head_dim, 3 * inner, bias=False)
        self.to_out = _output_projection(config)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.to_qkv(x).chunk(3, dim=-1)
        return self.to_out(_attend(q, k, v, self.heads))


class DecoderCrossAttention(nn.Module):
    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.heads = config.head_heads
        inner = config.head_heads * config.head_dim_head
        self.to_kv = nn.Linear(config.embed_dim, 2 * inner, bias=False)
        self.to_q = nn.Linear(config.head_dim, inner, bias=False)
        self.to_out = _output_projection(config)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        k, v = self.to_kv(context).chunk(2, dim=-1)
        return self.to_out(_attend(self.to_q(x), k, v, self.heads))


class DecoderFeedForward(nn.Module):
    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        # Slots 2 and 4 of HMR2.0's Sequential are dropouts (no weights, off at inference);
        # identities keep the Linears at ``net.0`` and ``net.3`` as the checkpoint names them.
        self.net = nn.Sequential(
            nn.Linear(config.head_dim, config.head_mlp_dim),
            nn.GELU(),
            nn.Identity(),
            nn.Linear(config.head_mlp_dim, config.head_dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class DecoderLayers(nn.Module):
    """``layers[i]`` = (self-attention, cross-attention, feed-forward), each pre-norm."""

    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        eps = config.head_norm_eps
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [
                    PreNorm(config.head_dim, DecoderSelfAttention(config), eps),
                    PreNorm(config.head_dim, DecoderCrossAttention(config), eps),
                    PreNorm(config.head_dim, DecoderFeedForward(config), eps),
                ]
            )
            for _ in range(config.head_depth)
        )

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        for self_attention, cross_attention, feed_forward in self.layers:
            x = self_attention(x) + x
            x = cross_attention(x, context=context) + x
            x = feed_forward(x) + x
        return x


class QueryDecoder(nn.Module):
    """One query token, embedded, attending to the context tokens. -> (B, 1, head_dim)."""

    def __init__(self, config: Hmr2Config, token_size: int) -> None:
        super().__init__()
        self.to_token_embedding = nn.Linear(token_size, config.head_dim)
        self.pos_embedding = nn.Parameter(torch.randn(1, 1, config.head_dim))
        self.transformer = DecoderLayers(config)

    def forward(self, token: Tensor, context: Tensor) -> Tensor:
        x = self.to_token_embedding(token) + self.pos_embedding
        return self.transformer(x, context=context)


class SmplHead(nn.Module):
    """Tokens (B, C, Hp, Wp) -> SMPL parameters and camera, as residuals on the mean."""

    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.config = config
        token_size = 1
        if config.query_token == "mean_params":
            token_size = config.pose_size + config.num_betas + CAMERA_SIZE
        self.transformer = QueryDecoder(config, token_size)
        self.decpose = nn.Linear(config.head_dim, config.pose_size)
        self.decshape = nn.Linear(config.head_dim, config.num_betas)
        self.deccam = nn.Linear(config.head_dim, CAMERA_SIZE)
        # The starting estimate; the checkpoint holds SPIN's mean parameters. Until it loads:
        # an upright body facing the camera (180 degrees about x: SMPL is y-up, the camera
        # y-down), joints at rest, mean shape, and SPIN's mean scale 0.9.
        upright = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        rest = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        init_pose = torch.tensor(upright + rest * config.num_body_joints).unsqueeze(0)
        self.register_buffer("init_body_pose", init_pose)
        self.register_buffer("init_betas", torch.zeros(1, config.num_betas))
        self.register_buffer("init_cam", torch.tensor([[0.9, 0.0, 0.0]]))

    def forward(self, tokens: Tensor) -> Hmr2Output:
        batch = tokens.shape[0]
        context = tokens.flatten(2).transpose(1, 2)  # (B, Hp*Wp, C), row by row
        pose = self.init_body_pose.expand(batch, -1)
        betas = self.init_betas.expand(batch, -1)
        camera = self.init_cam.expand(batch, -1)
        # The query in the embedding's own precision (autocast, if on, takes it from there).
        token_dtype = self.transformer.to_token_embedding.weight.dtype
        for _ in range(self.config.ief_iters):
            if self.config.query_token == "mean_params":
                token = torch.cat([pose, betas, camera], dim=-1).unsqueeze(1).to(token_dtype)
            else:
                token = torch.zeros(batch, 1, 1, dtype=token_dtype, device=context.device)
            out = self.transformer(token, context=context).squeeze(1)
            # Residuals accumulate in float32 (fp16 under autocast would coarsen the pose).
            pose = self.decpose(out).float() + pose
            betas = self.decshape(out).float() + betas
            camera = self.deccam(out).float() + camera
        rotations = rot6d_to_matrix_hmr2(pose.view(batch, self.config.num_joints, ROT6D_SIZE))
        return Hmr2Output(
            global_orient=rotations[:, 0],
            body_pose=rotations[:, 1:],
            betas=betas,
            weak_camera=camera,
        )


class Hmr2(nn.Module):
    """HMR2.0: ``features`` (the ViT) then ``regress`` (the SMPL head).

    Submodule names are the checkpoint's state-dict prefixes (``backbone.``, ``smpl_head.``).
    """

    def __init__(self, config: Hmr2Config) -> None:
        super().__init__()
        self.config = config
        self.backbone = VitBackbone(config)
        self.smpl_head = SmplHead(config)

    def features(self, crops: Tensor) -> Tensor:
        """Normalised crops (B, 3, H, W) -> tokens (B, C, Hp, Wp); (B, 1280, 16, 12) for HMR2.0."""
        expected = (3, self.config.image_height, self.config.image_width)
        if crops.ndim != 4 or tuple(crops.shape[1:]) != expected:
            raise ValueError(
                f"crops must be (B, {', '.join(map(str, expected))}), got {tuple(crops.shape)}"
            )
        return self.backbone(crops)

    def regress(self, features: Tensor) -> Hmr2Output:
        """Tokens (B, C, Hp, Wp) -> SMPL rotations, betas and the crop camera."""
        if features.ndim != 4 or features.shape[1] != self.config.embed_dim:
            raise ValueError(
                f"features must be (B, {self.config.embed_dim}, Hp, Wp), got "
                f"{tuple(features.shape)}"
            )
        return self.smpl_head(features)

    def forward(self, crops: Tensor) -> Hmr2Output:
        return self.regress(self.features(crops))


def build_hmr2(config: Hmr2Config, device: str | torch.device = "cpu") -> Hmr2:
    """HMR2.0 with random weights, in eval mode, allocated directly on ``device``.

    On ``torch.device('meta')`` nothing is allocated: names, shapes and the parameter count
    can be checked, and :func:`load_hmr2_checkpoint` then fills it with the checkpoint's
    tensors without a second copy.
    """
    with torch.device(device):
        model = Hmr2(config)
    return model.eval()


# ------------------------------------------------------------------------------- the checkpoint


class CheckpointMismatchError(BadInputError):
    """A checkpoint whose HMR2.0 keys or shapes differ from the network's (exit 2)."""


@dataclass(frozen=True)
class Hmr2LoadReport:
    """What :func:`load_hmr2_checkpoint` did.

    loaded_keys: tensors copied into the model (all of its state dict).
    ignored_keys: the checkpoint's other keys by their first dotted part (``smpl``,
        ``discriminator``, ...), which are not part of this network.
    unloaded_classes: classes the file refers to that were not imported (``module.Name``).
    """

    path: Path
    loaded_keys: int
    ignored_keys: dict[str, tuple[str, ...]]
    unloaded_classes: tuple[str, ...]

    def summary(self) -> str:
        ignored = ", ".join(f"{prefix} ({len(keys)})" for prefix, keys in self.ignored_keys.items())
        return (
            f"loaded {self.loaded_keys} tensors from {self.path.name}; ignored: {ignored or 'none'}"
        )


def find_hmr2_checkpoint(data_dir: Path) -> Path:
    """HMR2.0's checkpoint inside the folder the ``hmr2_data`` archive was unpacked into."""
    path = Path(data_dir) / HMR2_CHECKPOINT_MEMBER
    if not path.is_file():
        raise MissingModelError(
            f"HMR2.0's checkpoint is not at {path}; run `{fetch_command('hmr2_data')}` "
            "(4D-Humans' hmr2_data archive, which holds it)"
        )
    return path


def load_hmr2_checkpoint(model: Hmr2, path: Path) -> Hmr2LoadReport:
    """Loads HMR2.0's weights into ``model``, strictly, without running the file's classes.

    Every tensor of the model must be in the checkpoint's state dict under the same name with
    the same shape, and every ``backbone.`` / ``smpl_head.`` key of the checkpoint must be the
    model's; otherwise :class:`CheckpointMismatchError` lists the first differences. Accepts a
    Lightning checkpoint (a dict with ``state_dict``) or a bare state dict. A model built on the
    meta device takes the loaded tensors themselves (no second copy).
    """
    path = Path(path)
    checkpoint, unloaded = _restricted_torch_load(path)
    state = _state_dict_of(checkpoint, path)
    ours = model.state_dict()
    theirs = {k: v for k, v in state.items() if k.split(".", 1)[0] in MODEL_PREFIXES}
    _check_keys(ours, theirs, path)
    on_meta = any(t.is_meta for t in ours.values())
    if on_meta:
        loadable = {k: theirs[k].to(dtype=ours[k].dtype) for k in ours}
    else:
        loadable = {k: theirs[k] for k in ours}
    model.load_state_dict(loadable, strict=True, assign=on_meta)
    ignored: dict[str, list[str]] = collections.defaultdict(list)
    for key in state:
        prefix = key.split(".", 1)[0]
        if prefix not in MODEL_PREFIXES:
            ignored[prefix].append(key)
    return Hmr2LoadReport(
        path=path,
        loaded_keys=len(loadable),
        ignored_keys={prefix: tuple(keys) for prefix, keys in sorted(ignored.items())},
        unloaded_classes=tuple(sorted(unloaded)),
    )


def _state_dict_of(checkpoint: Any, path: Path) -> Mapping[str, Any]:
    if isinstance(checkpoint, Mapping):
        state = checkpoint.get("state_dict")
        if isinstance(state, Mapping):
            return state
        if checkpoint and all(isinstance(v, Tensor) for v in checkpoint.values()):
            return checkpoint
    raise BadInputError(f"{path} holds no state dict (not a PyTorch-Lightning checkpoint)")


def _check_keys(ours: Mapping[str, Tensor], theirs: Mapping[str, Any], path: Path) -> None:
    missing = [k for k in ours if k not in theirs]
    unexpected = [k for k in theirs if k not in ours]
    reshaped = [
        f"{k} {_shape_of(theirs[k])} in the file, {tuple(ours[k].shape)} here"
        for k in ours
        if k in theirs and _shape_of(theirs[k]) != tuple(ours[k].shape)
    ]
    if not (missing or unexpected or reshaped):
        return
    problems = key_mismatch_parts(
        (("missing", missing), ("unexpected", unexpected), ("of another shape", reshaped)),
        separator="; ",  # the shapes hold commas
    )
    raise CheckpointMismatchError(
        f"{path} does not fit the HMR2.0 network: {', '.join(problems)}; it is not the "
        "hmr2_data checkpoint, or the configured architecture differs"
    )


def _shape_of(value: Any) -> tuple[int, ...] | str:
    return tuple(value.shape) if isinstance(value, Tensor) else f"a {type(value).__name__}"


def _restricted_torch_load(path: Path) -> tuple[Any, set[str]]:
    """torch.load through the restricted unpickler. -> (object, names of unloaded classes)."""
    if not path.is_file():
        raise BadInputError(f"the checkpoint {path} does not exist")
    if not zipfile.is_zipfile(path):
        # The legacy (pre-1.6) format would go through other code paths; HMR2.0's is a zip.
        raise BadInputError(f"{path} is not a PyTorch zip checkpoint")
    with zipfile.ZipFile(path) as archive:
        # torch.load hands a TorchScript archive to torch.jit.load, which runs its code.
        if any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist()):
            raise BadInputError(f"{path} is a TorchScript archive, not a checkpoint")
    unloaded: set[str] = set()
    try:
        checkpoint = torch.load(
            path,
            map_location="cpu",
            pickle_module=_restricted_pickle_module(unloaded),
            weights_only=False,  # the restricted unpickler does the restricting
            mmap=True,
        )
    except Exception as exc:  # a damaged or foreign file fails in many ways, all the input's
        raise BadInputError(f"cannot read the checkpoint {path}: {exc}") from None
    return checkpoint, unloaded


class UnloadedObject:
    """Stands in for an object whose class the checkpoint loader would not import.

    It accepts whatever the unpickler does with it (construction arguments, items, state)
    and only stores it; nothing of the real class runs.
    """

    qualified_name: ClassVar[str] = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> UnloadedObject:
        instance = super().__new__(cls)
        instance.__dict__["arguments"] = (args, kwargs)
        instance.__dict__["items"] = {}
        instance.__dict__["elements"] = []
        instance.__dict__["state"] = None
        return instance

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.elements.append(value)

    def extend(self, values: Any) -> None:
        self.elements.extend(values)

    def __setstate__(self, state: Any) -> None:
        self.__dict__["state"] = state

    def __repr__(self) -> str:
        return f"<not loaded: {self.qualified_name}>"


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """What the restricted unpickler resolves: what rebuilds tensors, and plain containers."""
    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("torch", "Tensor"): torch.Tensor,
        ("torch", "UntypedStorage"): torch.UntypedStorage,
        ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("builtins", "complex"): complex,
        ("builtins", "slice"): slice,
        ("builtins", "bytearray"): bytearray,
    }
    # Protocol 2 pickles bytes as _codecs.encode(text, 'latin1').
    import _codecs

    allowed[("_codecs", "encode")] = _codecs.encode
    for name in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
    ):
        function = getattr(torch._utils, name, None)
        if function is not None:
            allowed[("torch._utils", name)] = function
    allowed[("torch._tensor", "_rebuild_from_type_v2")] = torch._tensor._rebuild_from_type_v2
    for name, value in vars(torch).items():
        if isinstance(value, torch.dtype):
            allowed[("torch", name)] = value
    return allowed


def _restricted_pickle_module(unloaded: set[str]) -> types.ModuleType:
    """A ``pickle_module`` for torch.load whose unpickler imports nothing outside the allowlist.

    Names it refuses are added to ``unloaded``; each becomes a subclass of
    :class:`UnloadedObject`. (torch.load itself resolves storage type names before asking.)
    """
    allowed = _allowed_globals()
    placeholders: dict[tuple[str, str], type] = {}

    class RestrictedUnpickler(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            key = (module, name)
            if key in allowed:
                return allowed[key]
            if key not in placeholders:
                qualified = f"{module}.{name}"
                unloaded.add(qualified)
                placeholders[key] = type(
                    f"Unloaded_{name}", (UnloadedObject,), {"qualified_name": qualified}
                )
            return placeholders[key]

    def load(file: Any, **kwargs: Any) -> Any:
        return RestrictedUnpickler(file, **kwargs).load()

    module = types.ModuleType("ram_core_restricted_pickle")
    module.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
    module.load = load  # type: ignore[attr-defined]
    return module
