"""T-HMR as the full backend's reconstruction stage: HMR2.0 crops, memory, SMPL out.

Each confirmed track of a frame gets one crop, cut as HMR2.0's demo cuts a person box: the
box (grown by ``box_padding``) is widened or heightened to the 192:256 aspect of the
backbone's input, and the square of its longer side is resized to 256 x 256, from which the
backbone reads the middle 192 columns. The people of a frame go through the network in one
batch (``T-HMR.step``): backbone tokens, the track's Memory Cache scored and fused by the
MemFormer, then HMR2.0's SMPL head. A frame enters the track's memory only when SegFollow
found it reliable (``remember_min_reliability``), so an occluded or doubtful frame never
becomes a temporal prior.

Outputs are converted to our convention (``ram_core.types``): axis-angle rotations in the
camera frame with OpenCV axes, and the translation such that the posed pelvis is at
``REST_JOINTS_M[0] + transl`` (the built-in skeleton's pelvis is its origin). HMR2.0's camera
places the SMPL model's own origin, and SMPL's pelvis sits ``J0(betas)`` from it: with the
user's SMPL file (``smpl_model``) that offset is computed from the file; without it the mean
shape's offset below is used, an approximation for every other shape.

Nothing here needs the SMPL licence: the network gives the parameters and the body comes from
the built-in skeleton (or the artist's SMPL file in Blender).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.body.rotations import matrix_to_axis_angle
from ram_core.body.skeleton import REST_JOINTS_M, builtin_rest_skeleton
from ram_core.types import BodyEstimate, CameraIntrinsics, Frame, TrackObservation

ARCHITECTURES = ("hmr2", "tiny")
RECONSTRUCTORS = ("thmr", "blazepose_ik")
# HMR2.0's backbone input (height, width) and the square crop its camera refers to.
CROP_HEIGHT, CROP_WIDTH, CROP_SQUARE = 256, 192, 256
# The neutral SMPL mean shape's pelvis relative to the model's origin, metres, SMPL axes (the
# J_regressor's pelvis row on the neutral template, as commonly reported; not measured here,
# since the SMPL file is licensed). Used only without an SMPL file; with one
# (``thmr.smpl_model``) each shape's own pelvis is computed.
MEAN_SHAPE_PELVIS_M = np.array([-0.0022, -0.2408, 0.0286])


@dataclass(frozen=True)
class THmrConfig:
    """The full backend's reconstruction.

    reconstructor: ``thmr`` (HMR2.0 weights + Memory Cache + MemFormer; needs
        ``ram-core weights download hmr2_data``) or ``blazepose_ik`` (BlazePose in each SAM2
        mask, then the lite IK; no extra weights).
    architecture: ``hmr2`` (the public checkpoint's ViT-H) or ``tiny`` (the same code at a
        small width, for tests and CPU benchmarks with random weights).
    box_padding: the track's box is grown by this factor before cropping (HMR2.0 was trained
        on boxes with some margin around the body).
    memory_length, memory_top_k: frames kept per track, and how many of them the MemFormer
        fuses each frame.
    remember_min_reliability: a frame enters its track's memory only at or above this
        SegFollow reliability.
    memformer_weights: a trained MemFormer + scorer (``ram-core train memformer --export``);
        empty: untrained, which leaves HMR2.0's output exactly unchanged.
    smpl_model: the artist's SMPL file (.pkl or .npz), for the exact pelvis offset per shape.
    batch_size: at most this many crops per forward pass.
    half_precision: fp16 autocast on CUDA (ignored on the CPU).
    """

    reconstructor: str = "thmr"
    architecture: str = "hmr2"
    box_padding: float = 1.2
    memory_length: int = 16
    memory_top_k: int = 4
    remember_min_reliability: float = 0.5
    memformer_weights: str = ""
    smpl_model: str = ""
    batch_size: int = 16
    half_precision: bool = True

    def __post_init__(self) -> None:
        if self.reconstructor not in RECONSTRUCTORS:
            raise ValueError(f"thmr reconstructor must be one of {', '.join(RECONSTRUCTORS)}")
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"thmr architecture must be one of {', '.join(ARCHITECTURES)}")
        if not 1.0 <= self.box_padding <= 3.0:
            raise ValueError("thmr box_padding must lie in [1, 3]")
        if self.memory_length < 1 or not 1 <= self.memory_top_k <= self.memory_length:
            raise ValueError("thmr needs memory_length >= 1 and 1 <= memory_top_k <= length")
        if not 0.0 <= self.remember_min_reliability <= 1.0:
            raise ValueError("thmr remember_min_reliability must lie in [0, 1]")
        if self.batch_size < 1:
            raise ValueError("thmr batch_size must be >= 1")


def crop_square(box_xyxy: np.ndarray, box_padding: float) -> tuple[np.ndarray, float]:
    """The crop of one person box: its centre (2,) and the side of its square, pixels.

    The padded box is widened (or heightened) to the backbone's 192:256 aspect, and the
    square is its longer side, as HMR2.0's demo crops. The square is snapped to whole pixels
    (integer side and corner), so the crop cut is exactly the square the camera refers to.
    """
    x0, y0, x1, y1 = (float(c) for c in box_xyxy)
    centre = np.array([0.5 * (x0 + x1), 0.5 * (y0 + y1)])
    width = max(x1 - x0, 1.0) * box_padding
    height = max(y1 - y0, 1.0) * box_padding
    aspect = CROP_WIDTH / CROP_HEIGHT
    if width / height < aspect:
        width = height * aspect
    else:
        height = width / aspect
    side = max(round(max(width, height)), 1)
    corner = np.floor(centre - 0.5 * side)
    return corner + 0.5 * side, float(side)


def cut_crop(rgb: np.ndarray, centre: np.ndarray, side: float) -> np.ndarray:
    """The backbone's input for one person: (256, 192, 3) uint8.

    The square of ``side`` pixels around ``centre`` is resized to 256 x 256 (area averaging
    when shrinking, so small detail does not alias), black where it leaves the frame, and its
    middle 192 columns are kept.
    """
    import cv2

    height, width = rgb.shape[:2]
    # The square (whole pixels, see crop_square), clipped to the frame, placed into a black
    # canvas; then one resize.
    side_px = max(round(side), 1)
    left, top = (round(c - 0.5 * side_px) for c in centre)
    canvas = np.zeros((side_px, side_px, 3), dtype=np.uint8)
    src_x0, src_y0 = max(left, 0), max(top, 0)
    src_x1, src_y1 = min(left + side_px, width), min(top + side_px, height)
    if src_x1 > src_x0 and src_y1 > src_y0:
        canvas[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = rgb[
            src_y0:src_y1, src_x0:src_x1
        ]
    interpolation = cv2.INTER_AREA if side_px > CROP_SQUARE else cv2.INTER_LINEAR
    square = cv2.resize(canvas, (CROP_SQUARE, CROP_SQUARE), interpolation=interpolation)
    margin = (CROP_SQUARE - CROP_WIDTH) // 2
    return np.ascontiguousarray(square[:, margin : margin + CROP_WIDTH])


def pelvis_offsets(betas: np.ndarray, smpl_model: Any | None) -> np.ndarray:
    """SMPL's pelvis relative to its origin, (N, 3) metres, for betas (N, 10).

    With the artist's SMPL model it is the model's own J0 of each shape; without, the mean
    shape's.
    """
    betas = np.asarray(betas, dtype=np.float64)
    if smpl_model is None:
        return np.broadcast_to(MEAN_SHAPE_PELVIS_M, (betas.shape[0], 3)).copy()
    return np.stack([smpl_model.rest_joints(b)[0] for b in betas])


def estimates_from_outputs(
    global_orient: np.ndarray,
    body_pose: np.ndarray,
    betas: np.ndarray,
    weak_camera: np.ndarray,
    centres: np.ndarray,
    sides: np.ndarray,
    camera: CameraIntrinsics,
    reliabilities: np.ndarray,
    focal_length_px: float,
    smpl_model: Any | None = None,
) -> list[BodyEstimate]:
    """HMR2.0's outputs for N people -> our BodyEstimates.

    global_orient (N, 3, 3), body_pose (N, 23, 3, 3), betas (N, 10), weak_camera (N, 3);
    centres (N, 2) and sides (N,) of the crops in the full frame; reliabilities (N,).
    """
    from ram_core.reconstruct.hmr2 import weak_camera_to_translation

    origin_cam = weak_camera_to_translation(
        np.asarray(weak_camera, dtype=np.float64),
        np.asarray(centres, dtype=np.float64),
        np.asarray(sides, dtype=np.float64),
        camera.fx,
        camera.fy,
        camera.cx,
        camera.cy,
        focal_length_px=focal_length_px,
        crop_size=CROP_SQUARE,
    )
    # The posed pelvis is at origin + J0 (global rotations turn about the pelvis); ours is
    # at REST_JOINTS_M[0] + transl.
    pelvis_cam = origin_cam + pelvis_offsets(betas, smpl_model)
    transl = pelvis_cam - REST_JOINTS_M[0]
    orient_aa = matrix_to_axis_angle(np.asarray(global_orient, dtype=np.float64))
    body_aa = matrix_to_axis_angle(np.asarray(body_pose, dtype=np.float64))
    estimates = []
    for i in range(len(transl)):
        finite = all(
            np.all(np.isfinite(a)) for a in (orient_aa[i], body_aa[i], betas[i], transl[i])
        )
        in_front = transl[i][2] + REST_JOINTS_M[0][2] > 1e-3
        if not (finite and in_front):
            estimates.append(None)
            continue
        estimates.append(
            BodyEstimate(
                global_orient=orient_aa[i],
                body_pose=body_aa[i],
                betas=np.asarray(betas[i], dtype=np.float64),
                transl=transl[i],
                # HMR2.0 gives no confidence of its own; the tracker's trust in the frame is
                # what the Combiner should weigh.
                confidence=float(np.clip(reliabilities[i], 0.0, 1.0)),
            )
        )
    return estimates


class THmrReconstructor:
    """``Reconstructor``: T-HMR over the people of each frame, batched.

    Keeps each track's Memory Cache between calls; ``forget`` frees it. Use it as a context
    manager or call ``close()``.
    """

    def __init__(self, model: Any, config: THmrConfig, device: str = "cpu") -> None:
        self.config = config
        self.device = device
        self._model = model
        self._smpl = None
        if config.smpl_model:
            from ram_core.body.smpl_model import load_smpl_model

            self._smpl = load_smpl_model(config.smpl_model)
        self.rest_skeleton: dict[str, Any] = builtin_rest_skeleton()

    @classmethod
    def from_checkpoint(
        cls, checkpoint: Path, config: THmrConfig, device: str = "cpu"
    ) -> THmrReconstructor:
        """T-HMR on HMR2.0's checkpoint (``load_thmr``), with the trained MemFormer if set."""
        model = load_thmr(checkpoint, config, device)
        if config.memformer_weights:
            load_memformer_weights(model, Path(config.memformer_weights))
        return cls(model, config, device)

    @property
    def model(self) -> Any:
        if self._model is None:
            raise RuntimeError("THmrReconstructor is closed")
        return self._model

    def reconstruct(
        self, frame: Frame, tracks: Sequence[TrackObservation], camera: CameraIntrinsics
    ) -> list[BodyEstimate | None]:
        """One estimate per track, in the order given."""
        if not tracks:
            return []
        rgb = np.asarray(frame.rgb)
        squares = [crop_square(t.box_xyxy, self.config.box_padding) for t in tracks]
        crops = np.stack([cut_crop(rgb, centre, side) for centre, side in squares])
        centres = np.stack([centre for centre, _ in squares])
        sides = np.array([side for _, side in squares])
        reliabilities = np.array([t.reliability for t in tracks], dtype=np.float64)
        outputs = []
        for start in range(0, len(tracks), self.config.batch_size):
            chunk = slice(start, start + self.config.batch_size)
            outputs.append(
                self._step(
                    crops[chunk],
                    [t.track_id for t in tracks[chunk]],
                    frame.index,
                    [r >= self.config.remember_min_reliability for r in reliabilities[chunk]],
                )
            )
        global_orient, body_pose, betas, weak_camera = (
            np.concatenate([o[k] for o in outputs]) for k in range(4)
        )
        return estimates_from_outputs(
            global_orient,
            body_pose,
            betas,
            weak_camera,
            centres,
            sides,
            camera,
            reliabilities,
            self.model.hmr2.config.focal_length_px,
            self._smpl,
        )

    def _step(
        self, crops: np.ndarray, track_ids: list[int], frame_index: int, remember: list[bool]
    ) -> tuple[np.ndarray, ...]:
        import torch

        from ram_core.reconstruct.hmr2 import normalise_crops

        model = self.model
        batch = normalise_crops(crops).to(self.device)
        half = self.config.half_precision and self.device.startswith("cuda")
        with (
            torch.inference_mode(),
            torch.autocast("cuda", dtype=torch.float16, enabled=half),
        ):
            out = model.step(batch, track_ids, frame_index, remember)
        return tuple(
            t.detach().float().cpu().numpy().astype(np.float64)
            for t in (out.global_orient, out.body_pose, out.betas, out.weak_camera)
        )

    def forget(self, track_id: int) -> None:
        if self._model is not None:
            self._model.forget(track_id)

    def close(self) -> None:
        """Frees the network and every track's memory."""
        self._model = None

    def __enter__(self) -> THmrReconstructor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def hmr2_config(config: THmrConfig) -> Any:
    """The HMR2.0 network's configuration for ``config.architecture``."""
    from ram_core.reconstruct.hmr2 import Hmr2Config

    return Hmr2Config() if config.architecture == "hmr2" else Hmr2Config.tiny()


def memory_config(config: THmrConfig) -> Any:
    """The Memory Cache's and MemFormer's configuration."""
    from ram_core.reconstruct.thmr_memory import MemoryConfig

    # The tiny test network keeps the MemFormer at its own width (the public size projects
    # 1280 -> 512).
    width = None if config.architecture == "tiny" else MemoryConfig.width
    return MemoryConfig(length=config.memory_length, top_k=config.memory_top_k, width=width)


def load_thmr(checkpoint: Path, config: THmrConfig, device: str = "cpu") -> Any:
    """T-HMR on HMR2.0's checkpoint (strictly loaded), MemFormer untrained, in eval mode.

    The network is built on the meta device and takes the checkpoint's tensors as they
    load, so its 670 M parameters are never initialised at random or held twice.
    """
    from ram_core.reconstruct.hmr2 import build_hmr2, load_hmr2_checkpoint
    from ram_core.reconstruct.thmr_model import THmr

    hmr2 = build_hmr2(hmr2_config(config), "meta")
    load_hmr2_checkpoint(hmr2, checkpoint)
    return THmr(hmr2, memory_config(config)).to(device).eval()


def build_thmr(config: THmrConfig, device: str = "cpu") -> Any:
    """T-HMR with random weights of the configured architecture (MemFormer untrained)."""
    from ram_core.reconstruct.thmr_model import build_thmr_model

    return build_thmr_model(hmr2_config(config), memory_config=memory_config(config), device=device)


def load_memformer_weights(model: Any, path: Path) -> None:
    """Loads a trained MemFormer + scorer; MissingModelError / BadInputError when unusable."""
    from ram_core.errors import MissingModelError

    if not path.is_file():
        raise MissingModelError(
            f"the MemFormer weights {path} do not exist (thmr.memformer_weights; made by "
            "ram-core train memformer --export FILE)"
        )
    model.load_memformer_file(path)
