"""T-HMR as the reconstruction stage: crops, conversion to our convention, batching, memory.

The network is the tiny configuration of the real code with random weights; what is checked
is the stage's geometry and bookkeeping, not pose quality.
"""

from __future__ import annotations

import numpy as np
import pytest

from ram_core.body.skeleton import REST_JOINTS_M
from ram_core.config import config_from_dict
from ram_core.reconstruct.thmr import (
    CROP_HEIGHT,
    CROP_SQUARE,
    CROP_WIDTH,
    MEAN_SHAPE_PELVIS_M,
    THmrConfig,
    crop_square,
    cut_crop,
    estimates_from_outputs,
)
from ram_core.types import CameraIntrinsics


def test_thmr_crop_square_has_the_backbone_aspect_and_whole_pixels():
    # A tall box: the padded height sets the square; a wide one: the width widened to 3:4.
    centre, side = crop_square(np.array([100.0, 50.0, 140.0, 250.0]), 1.2)
    assert side == 240.0
    np.testing.assert_allclose(centre, [120.0, 150.0])
    centre, side = crop_square(np.array([0.0, 0.0, 300.0, 100.0]), 1.0)
    assert side == 400.0  # 300 wide -> 400 high at 3:4; the square is the longer side
    centre, side = crop_square(np.array([10.3, 20.7, 51.1, 119.9]), 1.25)
    assert side == round(side)
    assert np.all(centre - side / 2 == np.floor(centre - side / 2))


def test_thmr_cut_crop_maps_the_square_onto_the_backbone_input():
    rgb = np.zeros((480, 640, 3), dtype=np.uint8)
    rgb[100:300, 300:340] = (255, 0, 0)  # a 40 x 200 "person"
    centre, side = crop_square(np.array([300.0, 100.0, 340.0, 300.0]), 1.0)
    crop = cut_crop(rgb, centre, side)
    assert crop.shape == (CROP_HEIGHT, CROP_WIDTH, 3) and crop.dtype == np.uint8
    red = crop[..., 0] > 127
    rows, cols = np.flatnonzero(red.any(1)), np.flatnonzero(red.any(0))
    # 200 px tall in a 200 px square -> the whole 256 rows; 40 px wide -> ~51 columns, centred.
    assert rows[0] <= 1 and rows[-1] >= CROP_HEIGHT - 2
    assert abs(len(cols) - 40 * CROP_SQUARE / 200) <= 2
    assert abs(0.5 * (cols[0] + cols[-1]) - (CROP_WIDTH - 1) / 2) <= 1.5


def test_thmr_cut_crop_is_black_off_the_frame():
    rgb = np.full((100, 100, 3), 200, dtype=np.uint8)
    crop = cut_crop(rgb, np.array([0.0, 50.0]), 100.0)  # left half of the square is off-frame
    assert crop[:, :40].max() == 0 and crop[:, -40:].min() == 200


def _crop_camera_pixel(point, weak_camera, focal=5000.0, crop=256):
    """Where HMR2.0's crop camera puts a point of the SMPL model (crop pixels)."""
    s, tx, ty = weak_camera
    t = np.array([tx, ty, 2 * focal / (crop * s)])
    p = point + t
    return focal * p[:2] / p[2] + crop / 2


def test_thmr_estimates_put_the_pelvis_where_the_crop_camera_sees_it():
    camera = CameraIntrinsics(fx=900.0, fy=880.0, cx=330.0, cy=230.0, width=640, height=480)
    weak_camera = np.array([[0.9, 0.05, 0.12]])
    centre, side = np.array([[250.0, 200.0]]), np.array([180.0])
    rotation = np.diag([1.0, -1.0, -1.0])[None]  # upright in OpenCV camera axes
    (estimate,) = estimates_from_outputs(
        rotation,
        np.broadcast_to(np.eye(3), (1, 23, 3, 3)),
        np.zeros((1, 10)),
        weak_camera,
        centre,
        side,
        camera,
        np.array([0.8]),
        focal_length_px=5000.0,
    )
    pelvis_cam = REST_JOINTS_M[0] + estimate.transl
    in_crop = _crop_camera_pixel(MEAN_SHAPE_PELVIS_M, weak_camera[0])
    expected_px = centre[0] + (in_crop - CROP_SQUARE / 2) * side[0] / CROP_SQUARE
    np.testing.assert_allclose(camera.project(pelvis_cam), expected_px, atol=0.5)
    np.testing.assert_allclose(estimate.global_orient, [np.pi, 0.0, 0.0], atol=1e-6)
    assert estimate.confidence == pytest.approx(0.8)


def test_thmr_estimate_behind_the_camera_is_none():
    camera = CameraIntrinsics.assumed(640, 480)
    estimates = estimates_from_outputs(
        np.eye(3)[None],
        np.broadcast_to(np.eye(3), (1, 23, 3, 3)),
        np.zeros((1, 10)),
        np.array([[-1.0, 0.0, 0.0]]),  # negative scale: depth < 0
        np.array([[320.0, 240.0]]),
        np.array([200.0]),
        camera,
        np.array([1.0]),
        focal_length_px=5000.0,
    )
    assert estimates == [None]


def test_thmr_config_section_is_validated():
    config = config_from_dict({"thmr": {"memory_length": 8, "memory_top_k": 3}})
    assert config.thmr.memory_length == 8
    with pytest.raises(ValueError, match="memory_top_k"):
        THmrConfig(memory_length=2, memory_top_k=3)
    with pytest.raises(ValueError, match="reconstructor"):
        config_from_dict({"thmr": {"reconstructor": "vibe"}})


# ---------------------------------------------------------------- the stage, tiny network

torch = pytest.importorskip("torch")


def _tracks(boxes, reliabilities):
    from ram_core.types import Observation, TrackObservation

    tracks = []
    for track_id, (box, reliability) in enumerate(zip(boxes, reliabilities, strict=True), 1):
        box = np.asarray(box, dtype=np.float64)
        observation = Observation(
            mask=np.zeros((240, 320), bool),
            box_xyxy=box,
            quality=1.0,
            object_score=1.0,
            appearance=np.zeros(4, np.float32),
        )
        tracks.append(TrackObservation(track_id, observation, box, reliability))
    return tracks


def _tiny_reconstructor(**overrides):
    from ram_core.reconstruct.thmr import THmrReconstructor, build_thmr

    torch.manual_seed(0)
    config = THmrConfig(architecture="tiny", **overrides)
    return THmrReconstructor(build_thmr(config), config)


def _frame(index=0):
    from ram_core.types import Frame

    rgb = np.random.default_rng(index).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    return Frame(index, rgb)


def test_thmr_reconstructor_batches_people_and_remembers_reliable_frames_only():
    camera = CameraIntrinsics.assumed(320, 240)
    tracks = _tracks([[40, 30, 90, 200], [180, 20, 250, 230], [260, 60, 300, 180]], [0.9, 0.2, 0.7])
    with _tiny_reconstructor(batch_size=2) as one_call, _tiny_reconstructor() as per_person:
        for index in range(3):
            batched = one_call.reconstruct(_frame(index), tracks, camera)
            single = [per_person.reconstruct(_frame(index), [t], camera)[0] for t in tracks]
            assert len(batched) == 3 and all(e is not None for e in batched)
            for a, b in zip(batched, single, strict=True):
                np.testing.assert_allclose(a.body_pose, b.body_pose, atol=1e-4)
                np.testing.assert_allclose(a.transl, b.transl, rtol=1e-4)
        cache = one_call.model.cache
        # The unreliable person (0.2 < remember_min_reliability) never enters memory.
        assert sorted(cache.track_ids()) == [1, 3]
        one_call.forget(1)
        assert sorted(cache.track_ids()) == [3] and cache.nbytes(1) == 0
        assert one_call.reconstruct(_frame(9), [], camera) == []


def test_thmr_reconstructor_loads_a_lightning_checkpoint_strictly(tmp_path):
    from ram_core.errors import BadInputError
    from ram_core.reconstruct.hmr2 import Hmr2Config, build_hmr2
    from ram_core.reconstruct.thmr import THmrReconstructor

    torch.manual_seed(1)
    tiny = build_hmr2(Hmr2Config.tiny())
    state = {f"{k}": v for k, v in tiny.state_dict().items()}
    state["discriminator.fc.weight"] = torch.zeros(2, 2)
    path = tmp_path / "epoch=35-step=1000000.ckpt"
    torch.save({"state_dict": state, "epoch": 35}, path)

    config = THmrConfig(architecture="tiny")
    with THmrReconstructor.from_checkpoint(path, config) as reconstructor:
        loaded = reconstructor.model.hmr2.state_dict()
        assert all(torch.equal(loaded[k], v) for k, v in tiny.state_dict().items())
        crops = torch.zeros(1, 3, 256, 192)
        assert torch.equal(reconstructor.model.hmr2(crops).betas, tiny(crops).betas)
    # The public architecture does not take the tiny network's tensors.
    with pytest.raises(BadInputError, match="missing"):
        THmrReconstructor.from_checkpoint(path, THmrConfig(architecture="hmr2"))


def test_thmr_train_memformer_command_end_to_end_and_a_run_loads_its_export(
    tmp_path, monkeypatch, capsys
):
    """``ram-core train memformer`` on a tiny scene with the tiny network's hmr2_data; the
    export is what ``thmr.memformer_weights`` loads, and it changes the output."""
    import yaml
    from hmr2_archive import tiny_hmr2_weights
    from test_thmr_memory import write_tiny_scene

    from ram_core.cli import main
    from ram_core.models import weights
    from ram_core.models.backends import THMR_WEIGHTS
    from ram_core.reconstruct.thmr import THmrReconstructor

    root = tiny_hmr2_weights(tmp_path / "weights", tmp_path / "staging")
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(root))
    write_tiny_scene(tmp_path / "scene")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"thmr": {"architecture": "tiny", "memory_length": 4}}))
    export = tmp_path / "memformer.pt"
    argv = ["train", "memformer", "--data", str(tmp_path / "scene"), "--steps", "3",
            "--batch-size", "2", "--config", str(config), "--export", str(export),
            "--progress", "none"]  # fmt: skip
    assert main(argv) == 0
    assert "to step 3" in capsys.readouterr().out and export.is_file()

    checkpoint = weights.extract_member(THMR_WEIGHTS)
    plain = THmrConfig(architecture="tiny", memory_length=4)
    trained = THmrConfig(architecture="tiny", memory_length=4, memformer_weights=str(export))
    camera = CameraIntrinsics.assumed(320, 240)
    tracks = _tracks([[40, 30, 90, 200]], [0.9])
    outputs = []
    for thmr_config in (plain, trained):
        with THmrReconstructor.from_checkpoint(checkpoint, thmr_config) as reconstructor:
            for index in range(3):
                (estimate,) = reconstructor.reconstruct(_frame(index), tracks, camera)
            outputs.append(estimate.body_pose)
    assert not np.allclose(outputs[0], outputs[1])
    # A damaged export is one clear error; a missing one names the command that makes it.
    from ram_core.errors import BadInputError, MissingModelError

    export.write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match="not a readable MemFormer file"):
        THmrReconstructor.from_checkpoint(checkpoint, trained)
    export.unlink()
    with pytest.raises(MissingModelError, match="ram-core train memformer"):
        THmrReconstructor.from_checkpoint(checkpoint, trained)
