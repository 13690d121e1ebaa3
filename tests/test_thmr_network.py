"""T-HMR's HMR2.0 network: shapes, the public checkpoint's layout, strict and safe loading, the
6D rotations and the camera conversion. Everything runs on the CPU in seconds: the full-size
model is only ever built on the meta device."""

from __future__ import annotations

import contextlib
import math
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch.nn import functional

from ram_core.body.rotations import axis_angle_to_matrix, matrix_to_rot6d, rot6d_to_matrix
from ram_core.errors import BadInputError, MissingModelError
from ram_core.reconstruct.hmr2 import (
    HMR2_CHECKPOINT_MEMBER,
    IMAGENET_MEAN_RGB,
    CheckpointMismatchError,
    Hmr2Config,
    build_hmr2,
    find_hmr2_checkpoint,
    load_hmr2_checkpoint,
    normalise_crops,
    rot6d_to_matrix_hmr2,
    weak_camera_to_translation,
)

TINY = Hmr2Config.tiny()


def _tiny_model(seed: int):
    torch.manual_seed(seed)
    return build_hmr2(TINY)


def _crops(batch: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (batch, 256, 192, 3), dtype=torch.uint8, generator=generator)
    return normalise_crops(pixels)


# ------------------------------------------------------------------------------ shapes


def test_thmr_tiny_forward_shapes_and_rotations():
    model = _tiny_model(0)
    crops = _crops(3)
    with torch.inference_mode():
        tokens = model.features(crops)
        out = model.regress(tokens)
    assert tokens.shape == (3, TINY.embed_dim, 16, 12)
    assert out.global_orient.shape == (3, 3, 3)
    assert out.body_pose.shape == (3, 23, 3, 3)
    assert out.betas.shape == (3, 10)
    assert out.weak_camera.shape == (3, 3)
    rotations = torch.cat([out.global_orient[:, None], out.body_pose], dim=1).double()
    identity = torch.eye(3, dtype=torch.float64).expand_as(rotations)
    assert torch.allclose(rotations.transpose(-1, -2) @ rotations, identity, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(3, 24, dtype=torch.float64))
    # forward is features then regress, and regress takes tokens from elsewhere (MemFormer).
    with torch.inference_mode():
        again = model(crops)
        shifted = model.regress(tokens + 0.1)
    assert torch.equal(again.body_pose, out.body_pose)
    assert not torch.allclose(shifted.body_pose, out.body_pose)


def test_thmr_mixed_precision_keeps_the_estimate_in_float32():
    # The reconstructor runs under fp16 autocast on CUDA; bfloat16 on the CPU takes the same
    # path through the head (half-precision tokens, float32 residuals and rotations).
    model = _tiny_model(0)
    crops = _crops(2)
    with torch.inference_mode():
        exact = model(crops)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            # The backbone ends in a LayerNorm (float32 under autocast); a MemFormer may hand
            # over half-precision tokens.
            mixed = model.regress(model.features(crops).bfloat16())
    for name in ("global_orient", "body_pose", "betas", "weak_camera"):
        assert getattr(mixed, name).dtype == torch.float32, name
    assert torch.allclose(torch.linalg.det(mixed.body_pose), torch.ones(2, 23), atol=1e-5)
    assert torch.allclose(mixed.body_pose, exact.body_pose, atol=0.1)


def test_thmr_inputs_of_the_wrong_shape_are_refused():
    model = _tiny_model(0)
    with pytest.raises(ValueError, match="crops must be"):
        model.features(torch.zeros(1, 3, 256, 256))
    with pytest.raises(ValueError, match="features must be"):
        model.regress(torch.zeros(1, TINY.embed_dim + 1, 16, 12))


def test_thmr_mean_params_query_and_iterations_run():
    config = Hmr2Config(**{**TINY.__dict__, "query_token": "mean_params", "ief_iters": 3})
    model = build_hmr2(config)
    assert model.smpl_head.transformer.to_token_embedding.weight.shape == (64, 144 + 10 + 3)
    with torch.inference_mode():
        out = model(_crops(1))
    assert out.body_pose.shape == (1, 23, 3, 3)


def test_thmr_config_is_validated():
    base = TINY.__dict__
    bad = [
        {"image_width": 200},  # not a multiple of the patch
        {"patch_padding_px": 8},  # 2p >= patch size would change the grid
        {"num_heads": 3},  # 64 does not divide into 3 heads
        {"depth": 0},
        {"query_token": "mean_shape"},
        {"focal_length_px": -1.0},
        {"crop_size": 128},  # the backbone input must fit in the square crop
        {"mlp_ratio": float("nan")},
    ]
    for change in bad:
        with pytest.raises(ValueError):
            Hmr2Config(**{**base, **change})


# ------------------------------------------------------------------------------ the public layout


# The public checkpoint's size, from the architecture in 4D-Humans' source (vit.py's ViT-H as
# hmr2.py builds it, smpl_head.py + pose_transformer.py with hmr_vit_transformer.yaml):
# ViT-H/16 backbone on 256 x 192 (ViTPose-H without its keypoint decoder):
#   patch embedding  1280*3*16*16 + 1280                      =     984,320
#   pos_embed        (16*12 + 1) * 1280                       =     247,040
#   32 blocks * (2 LayerNorms 4*1280 + qkv 1280*3840 + 3840 + proj 1280*1280 + 1280
#                + fc1 1280*5120 + 5120 + fc2 5120*1280 + 1280) = 32 * 19,677,440
#                                                             = 629,678,080
#   last_norm        2*1280                                   =       2,560
#   backbone                                                  = 630,912,000  (the "~631M")
# SMPL head (dim 1024, 6 layers, 8 heads of 64, MLP 1024, context 1280, zero token of width 1):
#   token embedding 1*1024 + 1024, pos_embedding 1024          =       3,072
#   6 layers * (3 LayerNorms 3*2048
#               + self-attn to_qkv 1024*1536 + to_out 512*1024 + 1024
#               + cross-attn to_kv 1280*1024 + to_q 1024*512 + to_out 512*1024 + 1024
#               + MLP 2 * (1024*1024 + 1024))                  = 6 * 6,563,840 = 39,383,040
#   decpose 1024*144 + 144, decshape 1024*10 + 10, deccam 1024*3 + 3 =   160,925
#   head                                                      =  39,547,037
# Total 670,459,037 parameters (plus the 157 values of the init_* buffers).
HMR2_BACKBONE_PARAMETERS = 630_912_000
HMR2_HEAD_PARAMETERS = 39_547_037
HMR2_PARAMETERS = 670_459_037


def _published_key_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor name and shape of HMR2.0's backbone and smpl_head, as its modules name them."""
    shapes: dict[str, tuple[int, ...]] = {
        "backbone.patch_embed.proj.weight": (1280, 3, 16, 16),
        "backbone.patch_embed.proj.bias": (1280,),
        "backbone.pos_embed": (1, 193, 1280),
        "backbone.last_norm.weight": (1280,),
        "backbone.last_norm.bias": (1280,),
    }
    for i in range(32):
        block = f"backbone.blocks.{i}."
        for norm in ("norm1", "norm2"):
            shapes[block + norm + ".weight"] = (1280,)
            shapes[block + norm + ".bias"] = (1280,)
        shapes[block + "attn.qkv.weight"] = (3840, 1280)
        shapes[block + "attn.qkv.bias"] = (3840,)
        shapes[block + "attn.proj.weight"] = (1280, 1280)
        shapes[block + "attn.proj.bias"] = (1280,)
        shapes[block + "mlp.fc1.weight"] = (5120, 1280)
        shapes[block + "mlp.fc1.bias"] = (5120,)
        shapes[block + "mlp.fc2.weight"] = (1280, 5120)
        shapes[block + "mlp.fc2.bias"] = (1280,)
    decoder = "smpl_head.transformer."
    shapes[decoder + "to_token_embedding.weight"] = (1024, 1)
    shapes[decoder + "to_token_embedding.bias"] = (1024,)
    shapes[decoder + "pos_embedding"] = (1, 1, 1024)
    for i in range(6):
        layer = f"{decoder}transformer.layers.{i}."
        for part in range(3):
            shapes[f"{layer}{part}.norm.weight"] = (1024,)
            shapes[f"{layer}{part}.norm.bias"] = (1024,)
        shapes[layer + "0.fn.to_qkv.weight"] = (1536, 1024)
        shapes[layer + "1.fn.to_kv.weight"] = (1024, 1280)
        shapes[layer + "1.fn.to_q.weight"] = (512, 1024)
        for part in (0, 1):
            shapes[f"{layer}{part}.fn.to_out.0.weight"] = (1024, 512)
            shapes[f"{layer}{part}.fn.to_out.0.bias"] = (1024,)
        for linear in (0, 3):
            shapes[f"{layer}2.fn.net.{linear}.weight"] = (1024, 1024)
            shapes[f"{layer}2.fn.net.{linear}.bias"] = (1024,)
    for name, size in (("decpose", 144), ("decshape", 10), ("deccam", 3)):
        shapes[f"smpl_head.{name}.weight"] = (size, 1024)
        shapes[f"smpl_head.{name}.bias"] = (size,)
    shapes["smpl_head.init_body_pose"] = (1, 144)
    shapes["smpl_head.init_betas"] = (1, 10)
    shapes["smpl_head.init_cam"] = (1, 3)
    return shapes


def test_thmr_full_size_model_matches_the_public_checkpoint_layout():
    model = build_hmr2(Hmr2Config(), device="meta")
    assert sum(p.numel() for p in model.backbone.parameters()) == HMR2_BACKBONE_PARAMETERS
    assert sum(p.numel() for p in model.smpl_head.parameters()) == HMR2_HEAD_PARAMETERS
    assert sum(p.numel() for p in model.parameters()) == HMR2_PARAMETERS
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == _published_key_shapes()
    # The grid and outputs of the real size, propagated on the meta device (no compute).
    tokens = model.features(torch.empty(2, 3, 256, 192, device="meta"))
    assert tokens.shape == (2, 1280, 16, 12)
    out = model.regress(tokens)
    assert out.body_pose.shape == (2, 23, 3, 3) and out.weak_camera.shape == (2, 3)
    assert model.backbone.patch_embed.proj.padding == (2, 2)
    assert model.backbone.blocks[0].norm1.eps == 1e-6
    assert model.smpl_head.transformer.transformer.layers[0][0].norm.eps == 1e-5


def test_thmr_class_position_embedding_is_added_to_every_patch():
    model = _tiny_model(0)
    crops = _crops(1)
    with torch.inference_mode():
        before = model.features(crops)
        model.backbone.pos_embed[:, 0] += 0.5
        after = model.features(crops)
    assert not torch.allclose(before, after)


def _reference_forward(state: dict[str, torch.Tensor], config: Hmr2Config, crops: torch.Tensor):
    """A second transcription of 4D-Humans' forward pass with explicit products, written from
    vit.py (qkv reshaped to (B, N, 3, heads, d)), pose_transformer.py (chunks split as
    'b n (h d) -> b h n d') and smpl_head.py, on the same state dict."""

    def linear(x, name, bias=True):
        return functional.linear(
            x, state[name + ".weight"], state[name + ".bias"] if bias else None
        )

    def norm(x, name, eps):
        return functional.layer_norm(
            x, x.shape[-1:], state[name + ".weight"], state[name + ".bias"], eps
        )

    def heads_first(t, heads):
        batch, n, width = t.shape
        return t.reshape(batch, n, heads, width // heads).transpose(1, 2)

    def attention(q, k, v):
        weights = (q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5).softmax(dim=-1)
        out = weights @ v
        return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)

    x = functional.conv2d(
        crops,
        state["backbone.patch_embed.proj.weight"],
        state["backbone.patch_embed.proj.bias"],
        stride=16,
        padding=2,
    )
    batch, width, grid_h, grid_w = x.shape
    x = x.flatten(2).transpose(1, 2)
    pos = state["backbone.pos_embed"]
    x = x + pos[:, 1:] + pos[:, :1]
    heads = config.num_heads
    for i in range(config.depth):
        block = f"backbone.blocks.{i}."
        h = norm(x, block + "norm1", 1e-6)
        qkv = linear(h, block + "attn.qkv")
        qkv = qkv.reshape(batch, x.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
        x = x + linear(attention(qkv[0], qkv[1], qkv[2]), block + "attn.proj")
        h = norm(x, block + "norm2", 1e-6)
        x = x + linear(functional.gelu(linear(h, block + "mlp.fc1")), block + "mlp.fc2")
    x = norm(x, "backbone.last_norm", 1e-6)
    context = x.permute(0, 2, 1).reshape(batch, width, grid_h, grid_w).flatten(2).transpose(1, 2)

    decoder = "smpl_head.transformer."
    token = torch.zeros(batch, 1, 1)
    t = linear(token, decoder + "to_token_embedding") + state[decoder + "pos_embedding"]
    h_ = config.head_heads
    for i in range(config.head_depth):
        layer = f"{decoder}transformer.layers.{i}."
        q, k, v = linear(norm(t, layer + "0.norm", 1e-5), layer + "0.fn.to_qkv", False).chunk(3, -1)
        t = t + linear(
            attention(heads_first(q, h_), heads_first(k, h_), heads_first(v, h_)),
            layer + "0.fn.to_out.0",
        )
        q = linear(norm(t, layer + "1.norm", 1e-5), layer + "1.fn.to_q", False)
        k, v = linear(context, layer + "1.fn.to_kv", False).chunk(2, -1)
        t = t + linear(
            attention(heads_first(q, h_), heads_first(k, h_), heads_first(v, h_)),
            layer + "1.fn.to_out.0",
        )
        h = norm(t, layer + "2.norm", 1e-5)
        t = t + linear(functional.gelu(linear(h, layer + "2.fn.net.0")), layer + "2.fn.net.3")
    out = t[:, 0]
    pose = linear(out, "smpl_head.decpose") + state["smpl_head.init_body_pose"]
    betas = linear(out, "smpl_head.decshape") + state["smpl_head.init_betas"]
    camera = linear(out, "smpl_head.deccam") + state["smpl_head.init_cam"]
    six = pose.reshape(-1, 2, 3).permute(0, 2, 1)
    b1 = functional.normalize(six[:, :, 0])
    a2 = six[:, :, 1]
    b2 = functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1)
    rotations = torch.stack((b1, b2, torch.linalg.cross(b1, b2)), dim=-1).view(batch, 24, 3, 3)
    return rotations, betas, camera


def test_thmr_forward_matches_a_direct_transcription_of_hmr2():
    model = _tiny_model(3)
    with torch.no_grad():  # random biases everywhere, so no term hides behind a zero init
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    crops = _crops(2, seed=4)
    with torch.inference_mode():
        out = model(crops)
        rotations, betas, camera = _reference_forward(model.state_dict(), TINY, crops)
    ours = torch.cat([out.global_orient[:, None], out.body_pose], dim=1)
    assert torch.allclose(ours, rotations, atol=1e-5)
    assert torch.allclose(out.betas, betas, atol=1e-5)
    assert torch.allclose(out.weak_camera, camera, atol=1e-5)


# ------------------------------------------------------------------------------ loading


def _lightning_checkpoint(model, **extra) -> dict:
    """The layout of HMR2.0's Lightning checkpoint: the network's keys next to others."""
    state = OrderedDict(model.state_dict())
    state["smpl.shapedirs"] = torch.zeros(6890, 3, 10)
    state["smpl.faces_tensor"] = torch.zeros(13776, 3, dtype=torch.long)
    state["discriminator.D_conv1.weight"] = torch.zeros(32, 9, 1, 1)
    state["initialized"] = torch.tensor(True)
    return {"epoch": 35, "global_step": 1_000_000, "state_dict": state, **extra}


def test_thmr_strict_loading_round_trips_a_lightning_checkpoint(tmp_path):
    source, target = _tiny_model(1), _tiny_model(2)
    path = tmp_path / "epoch=35-step=1000000.ckpt"
    torch.save(_lightning_checkpoint(source), path)
    report = load_hmr2_checkpoint(target, path)
    assert report.loaded_keys == len(source.state_dict())
    assert report.ignored_keys == {
        "discriminator": ("discriminator.D_conv1.weight",),
        "initialized": ("initialized",),
        "smpl": ("smpl.shapedirs", "smpl.faces_tensor"),
    }
    assert report.unloaded_classes == ()
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    crops = _crops(1)
    with torch.inference_mode():
        assert torch.equal(target(crops).body_pose, source(crops).body_pose)
    assert "loaded" in report.summary()


def test_thmr_a_bare_state_dict_loads_too(tmp_path):
    source, target = _tiny_model(1), _tiny_model(2)
    path = tmp_path / "hmr2.pt"
    torch.save(source.state_dict(), path)
    assert load_hmr2_checkpoint(target, path).loaded_keys == len(source.state_dict())


def test_thmr_a_model_on_the_meta_device_takes_the_checkpoint(tmp_path):
    source = _tiny_model(1)
    path = tmp_path / "hmr2.ckpt"
    torch.save(_lightning_checkpoint(source), path)
    target = build_hmr2(TINY, device="meta")
    load_hmr2_checkpoint(target, path)
    assert not any(t.is_meta for t in target.state_dict().values())
    crops = _crops(1)
    with torch.inference_mode():
        assert torch.equal(target(crops).weak_camera, source(crops).weak_camera)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("missing", ["1 missing", "smpl_head.deccam.bias"]),
        ("extra", ["1 unexpected", "backbone.blocks.7.attn.qkv.weight"]),
        ("shape", ["1 of another shape", "smpl_head.decpose.weight (143, 64)", "(144, 64)"]),
    ],
)
def test_thmr_each_mismatch_is_one_clear_error(tmp_path, change, words):
    source, target = _tiny_model(1), _tiny_model(2)
    checkpoint = _lightning_checkpoint(source)
    state = checkpoint["state_dict"]
    if change == "missing":
        del state["smpl_head.deccam.bias"]
    elif change == "extra":
        state["backbone.blocks.7.attn.qkv.weight"] = torch.zeros(192, 64)
    else:
        state["smpl_head.decpose.weight"] = torch.zeros(143, 64)
    path = tmp_path / "hmr2.ckpt"
    torch.save(checkpoint, path)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as caught:
        load_hmr2_checkpoint(target, path)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message
    assert isinstance(caught.value, BadInputError)
    # Nothing was loaded from the file that did not fit.
    assert all(torch.equal(target.state_dict()[k], v) for k, v in before.items())


# What a malicious or merely foreign checkpoint could make the unpickler run.
EXECUTED: list[str] = []


def record_execution(tag: str) -> str:
    EXECUTED.append(tag)
    return tag


class LightningStyleHyperParameters(dict):
    """Stands for yacs' CfgNode: a dict subclass only this test module defines."""

    def __setitem__(self, key, value):
        EXECUTED.append("setitem")
        super().__setitem__(key, value)

    def __setstate__(self, state):
        EXECUTED.append("setstate")


class CodeOnLoad:
    """Unpickling this calls a function of this module (the classic pickle exploit's shape)."""

    def __reduce__(self):
        return (record_execution, ("reduce",))


def test_thmr_checkpoint_classes_are_neither_imported_nor_run(tmp_path):
    source, target = _tiny_model(1), _tiny_model(2)
    hyper = LightningStyleHyperParameters(MODEL={"IMAGE_SIZE": 256})
    hyper.__dict__["frozen"] = True
    # A class from a module that cannot be imported at load time.
    gone = types.ModuleType("ram_test_module_gone")

    class Elsewhere:
        pass

    Elsewhere.__module__ = gone.__name__
    Elsewhere.__qualname__ = "Elsewhere"
    gone.Elsewhere = Elsewhere
    sys.modules[gone.__name__] = gone
    try:
        checkpoint = _lightning_checkpoint(
            source,
            hyper_parameters={"cfg": hyper},
            callbacks={"ModelCheckpoint": CodeOnLoad(), "other": Elsewhere()},
        )
        path = tmp_path / "hmr2.ckpt"
        torch.save(checkpoint, path)
    finally:
        del sys.modules[gone.__name__]
    EXECUTED.clear()

    report = load_hmr2_checkpoint(target, path)

    assert EXECUTED == []
    names = report.unloaded_classes
    assert any(n.endswith(".LightningStyleHyperParameters") for n in names)
    assert any(n.endswith(".record_execution") for n in names)
    assert "ram_test_module_gone.Elsewhere" in names
    assert torch.equal(
        target.state_dict()["smpl_head.decpose.weight"], source.smpl_head.decpose.weight
    )
    # The fixture is meaningful: torch's unrestricted loader runs this module's code.
    with contextlib.suppress(ModuleNotFoundError):  # the module that is gone, reached last
        torch.load(path, weights_only=False)
    assert "reduce" in EXECUTED or "setitem" in EXECUTED
    EXECUTED.clear()


def test_thmr_files_that_are_not_checkpoints_are_refused(tmp_path):
    model = _tiny_model(0)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(BadInputError, match="not a PyTorch zip checkpoint"):
        load_hmr2_checkpoint(model, junk)
    scripted = tmp_path / "scripted.pt"
    with zipfile.ZipFile(scripted, "w") as archive:
        archive.writestr("scripted/constants.pkl", b"")
        archive.writestr("scripted/data.pkl", b"")
    with pytest.raises(BadInputError, match="TorchScript"):
        load_hmr2_checkpoint(model, scripted)
    no_state = tmp_path / "no_state.ckpt"
    torch.save({"epoch": 35}, no_state)
    with pytest.raises(BadInputError, match="no state dict"):
        load_hmr2_checkpoint(model, no_state)
    with pytest.raises(BadInputError, match="does not exist"):
        load_hmr2_checkpoint(model, tmp_path / "absent.ckpt")


def test_thmr_checkpoint_is_found_in_the_unpacked_archive(tmp_path):
    assert HMR2_CHECKPOINT_MEMBER == (
        "logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt"
    )
    with pytest.raises(MissingModelError, match="ram-core weights download hmr2_data"):
        find_hmr2_checkpoint(tmp_path)
    path = tmp_path / HMR2_CHECKPOINT_MEMBER
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    assert find_hmr2_checkpoint(tmp_path) == path


# ------------------------------------------------------------------------------ rotations


def test_thmr_rot6d_hand_computed_examples():
    examples = {
        # first column x, second y: the identity
        (1.0, 0.0, 0.0, 0.0, 1.0, 0.0): np.eye(3),
        # columns y and -x: +90 degrees about z
        (0.0, 1.0, 0.0, -1.0, 0.0, 0.0): [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
        # columns 2z and x (unnormalised): third column z cross x = y. Read as SPIN's (3, 2)
        # rows instead, these values give two parallel columns, so the layout is pinned.
        (0.0, 0.0, 2.0, 1.0, 0.0, 0.0): [[0, 1, 0], [0, 0, 1], [1, 0, 0]],
        # Gram-Schmidt keeps the first column's direction and straightens the second.
        (3.0, 0.0, 0.0, 1.0, 1.0, 0.0): np.eye(3),
    }
    for six, expected in examples.items():
        got = rot6d_to_matrix_hmr2(torch.tensor(six, dtype=torch.float64))
        np.testing.assert_allclose(got.numpy(), np.asarray(expected, dtype=float), atol=1e-12)


def test_thmr_rot6d_round_trips_a_matrix_first_two_columns():
    rng = np.random.default_rng(0)
    matrices = axis_angle_to_matrix(rng.normal(size=(2, 5, 3)))
    six = np.concatenate([matrices[..., :, 0], matrices[..., :, 1]], axis=-1)
    np.testing.assert_allclose(six, matrix_to_rot6d(matrices))
    back = rot6d_to_matrix_hmr2(torch.from_numpy(six))
    assert back.shape == (2, 5, 3, 3)
    np.testing.assert_allclose(back.numpy(), matrices, atol=1e-12)
    # Arbitrary 6D values: the same as our numpy conversion (one convention in the project).
    raw = rng.normal(size=(7, 6))
    np.testing.assert_allclose(
        rot6d_to_matrix_hmr2(torch.from_numpy(raw)).numpy(), rot6d_to_matrix(raw), atol=1e-12
    )
    with pytest.raises(ValueError):
        rot6d_to_matrix_hmr2(torch.zeros(3, 9))


# ------------------------------------------------------------------------------ crops


def test_thmr_crops_are_normalised_as_hmr2_does():
    mean_pixel = np.round(np.array(IMAGENET_MEAN_RGB) * 255).astype(np.uint8)
    crops = np.broadcast_to(mean_pixel, (2, 256, 192, 3)).copy()
    crops[1, 0, 0] = (255, 0, 0)
    out = normalise_crops(crops)
    assert out.shape == (2, 3, 256, 192) and out.dtype == torch.float32
    expected_first = (np.round(0.485 * 255) - 0.485 * 255) / (0.229 * 255)
    assert out[0, 0, 5, 5].item() == pytest.approx(expected_first, abs=1e-6)
    assert out[1, 0, 0, 0].item() == pytest.approx((255 - 0.485 * 255) / (0.229 * 255))
    assert torch.equal(normalise_crops(torch.from_numpy(crops)), out)
    with pytest.raises(ValueError):
        normalise_crops(crops.astype(np.float32))


# ------------------------------------------------------------------------------ the camera


def _crop_projection_in_full_pixels(points, weak_camera, centre, side, f=5000.0, crop=256):
    """HMR2.0's crop camera: focal f on the crop, principal point at its centre; then the crop
    pixel placed back in the full image (the crop is the square of ``side`` around ``centre``)."""
    s, tx, ty = weak_camera
    tz = 2.0 * f / (crop * s)
    moved = points + np.array([tx, ty, tz])
    crop_px = f * moved[:, :2] / moved[:, 2:] + crop / 2.0
    return centre + (crop_px - crop / 2.0) * side / crop


def _full_projection(points, translation, fx, fy, cx, cy):
    moved = points + translation
    return np.stack(
        [fx * moved[:, 0] / moved[:, 2] + cx, fy * moved[:, 1] / moved[:, 2] + cy], axis=-1
    )


def test_thmr_camera_hand_computed_and_as_4d_humans():
    # A 256 px box at the principal point with f = 5000: the crop camera itself.
    translation = weak_camera_to_translation(
        np.array([[1.0, 0.1, -0.2]]), np.array([[640.0, 360.0]]), np.array([256.0]),
        5000.0, 5000.0, 640.0, 360.0,
    )  # fmt: skip
    np.testing.assert_allclose(translation, [[0.1, -0.2, 2 * 5000 / 256]])
    # 4D-Humans' cam_crop_to_full: principal point at the image centre, one focal length.
    rng = np.random.default_rng(1)
    cams = np.column_stack([rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, (4, 2))])
    centres = rng.uniform(100, 900, (4, 2))
    sides = rng.uniform(100, 600, 4)
    width, height, focal = 1280.0, 720.0, 1100.0
    got = weak_camera_to_translation(cams, centres, sides, focal, focal, width / 2, height / 2)
    bs = sides * cams[:, 0]
    expected = np.column_stack(
        [
            2 * (centres[:, 0] - width / 2) / bs + cams[:, 1],
            2 * (centres[:, 1] - height / 2) / bs + cams[:, 2],
            2 * focal / bs,
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_thmr_camera_full_image_pixels_agree_with_the_crop():
    rng = np.random.default_rng(2)
    fx = fy = 1450.0
    cx, cy = 700.0, 330.0  # off the centre of a 1280 x 720 image
    for _ in range(20):
        weak = np.array([rng.uniform(0.6, 1.3), *rng.normal(0, 0.15, 2)])
        centre = rng.uniform([200, 150], [1100, 600])
        side = rng.uniform(150, 700)
        translation = weak_camera_to_translation(
            weak[None], centre[None], np.array([side]), fx, fy, cx, cy
        )[0]
        # Points in the body origin's depth plane: the two cameras agree exactly.
        plane = np.column_stack([rng.uniform(-0.9, 0.9, (50, 2)), np.zeros(50)])
        np.testing.assert_allclose(
            _full_projection(plane, translation, fx, fy, cx, cy),
            _crop_projection_in_full_pixels(plane, weak, centre, side),
            atol=1e-6,
        )
        # Off that plane each camera scales the plane's image by its own perspective about its
        # own centre: the full camera about the principal point, the crop camera (a far longer
        # lens, at depth tz) about the box centre. Nothing else differs.
        body = rng.uniform([-0.9, -0.9, -0.3], [0.9, 0.9, 0.3], (50, 3))
        in_plane = _full_projection(body * [1, 1, 0], translation, fx, fy, cx, cy)
        depth = body[:, 2:]
        crop_tz = 2 * 5000.0 / (256 * weak[0])
        expected_gap = -(in_plane - [cx, cy]) * depth / (depth + translation[2]) + (
            in_plane - centre
        ) * depth / (depth + crop_tz)
        gap = _full_projection(body, translation, fx, fy, cx, cy) - (
            _crop_projection_in_full_pixels(body, weak, centre, side)
        )
        np.testing.assert_allclose(gap, expected_gap, atol=1e-6)


def test_thmr_camera_with_unequal_focal_lengths_keeps_the_origin_exact():
    weak = np.array([[0.9, 0.05, -0.1]])
    centre, side = np.array([[500.0, 420.0]]), np.array([300.0])
    fx, fy, cx, cy = 1500.0, 1350.0, 640.0, 360.0
    translation = weak_camera_to_translation(weak, centre, side, fx, fy, cx, cy)[0]
    origin = np.zeros((1, 3))
    np.testing.assert_allclose(
        _full_projection(origin, translation, fx, fy, cx, cy),
        _crop_projection_in_full_pixels(origin, weak[0], centre[0], side[0]),
        atol=1e-9,
    )
    assert translation[2] == pytest.approx(2 * math.sqrt(fx * fy) / (side[0] * 0.9))


def test_thmr_camera_bad_rows_and_arguments():
    got = weak_camera_to_translation(
        np.array([[0.0, 0.1, 0.1], [-0.5, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        np.full((3, 2), 300.0), np.full(3, 200.0), 1000.0, 1000.0, 320.0, 240.0,
    )  # fmt: skip
    assert np.isnan(got[:2]).all() and np.isfinite(got[2]).all()
    with pytest.raises(ValueError):
        weak_camera_to_translation(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2), 1, 1, 0, 0)
    with pytest.raises(ValueError):
        weak_camera_to_translation(np.ones((1, 3)), np.zeros((1, 2)), np.zeros(1), 1, 1, 0, 0)
    with pytest.raises(ValueError):
        weak_camera_to_translation(np.ones((1, 3)), np.zeros((1, 2)), np.ones(1), 0, 1, 0, 0)
