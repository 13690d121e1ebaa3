"""The learned Predictor and gate at inference (numpy, as Blender runs them): the same
numbers as their torch twins, the weight files, the config that chooses them, the fusion
that runs them, and results that carry their weights and re-run with them."""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from test_ablations import GroundTruthWorld
from test_bench_scenes import tiny_ground_truth, write_scene

from ram_core.body.rotations import axis_angle_to_matrix
from ram_core.body.skeleton import REST_JOINTS_M
from ram_core.config import RunConfig, config_from_dict, config_to_dict
from ram_core.eval.bench_scenes import load_scene
from ram_core.io.result import COMBINED_FILE_NAME, TRACK_ARRAYS, ResultFormatError, load_result
from ram_core.models.backends import Backend
from ram_core.motion.combiner import CombinerConfig, gate_from_learned
from ram_core.motion.fusion import fuse_tracks, track_slices
from ram_core.motion.learned import (
    POSE_FEATURES,
    LearnedGateWeights,
    LearnedPredictorWeights,
    LearnedWeightsError,
    LearnedWeightsMissingError,
    MLPWeights,
    file_sha256,
    gate_feature_count,
    gate_features,
    gate_probability,
    load_learned_weights,
    predict_next_rotations,
    predictor_network,
    save_learned_weights,
)
from ram_core.motion.predictor import PredictorConfig
from ram_core.motion.recombine import (
    LEARNED_FILES,
    motion_config_record,
    recombine_result,
    recorded_motion_config,
)
from ram_core.pipeline import run_pipeline
from ram_core.track.segfollow import SegFollowConfig


def random_mlp(rng, sizes, layer_norm, scale=0.1) -> MLPWeights:
    linear = tuple(
        (rng.normal(0.0, scale, (b, a)), rng.normal(0.0, scale, b))
        for a, b in itertools.pairwise(sizes)
    )
    norms = ()
    if layer_norm:
        norms = tuple((rng.uniform(0.5, 1.5, h), rng.normal(0.0, 0.1, h)) for h in sizes[1:-1])
    return MLPWeights(linear, norms)


def random_predictor(seed=0, window=6, dct_size=4, horizon=2, hidden=(16,), layer_norm=True):
    rng = np.random.default_rng(seed)
    sizes = [dct_size * POSE_FEATURES, *hidden, min(dct_size, horizon) * POSE_FEATURES]
    return LearnedPredictorWeights(
        window, dct_size, horizon, random_mlp(rng, sizes, layer_norm, scale=0.02)
    )


def random_gate(seed=0, radius=2, hidden=(8, 8), layer_norm=False):
    rng = np.random.default_rng(seed)
    sizes = [gate_feature_count(radius), *hidden, 1]
    return LearnedGateWeights(radius, random_mlp(rng, sizes, layer_norm, scale=1.0))


def random_rotations(seed, shape):
    return axis_angle_to_matrix(np.random.default_rng(seed).normal(0.0, 0.7, (*shape, 3)))


# ------------------------------------------------------------------ numpy == torch


@pytest.mark.parametrize("layer_norm", [True, False])
def test_learned_predictor_numpy_forward_matches_torch(layer_norm):
    torch = pytest.importorskip("torch")
    from ram_core.train.motion_models import model_from_weights

    weights = random_predictor(layer_norm=layer_norm, hidden=(24, 16))
    model = model_from_weights(weights).eval()
    history = random_rotations(1, (5, weights.window, 24))
    window6d = np.random.default_rng(2).normal(0.0, 1.0, (5, weights.window, 24, 6))
    with torch.no_grad():
        net = model(torch.as_tensor(window6d, dtype=torch.float32)).numpy()
        nxt = model.predict_next(torch.as_tensor(history, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(predictor_network(weights, window6d), net, atol=1e-5)
    ours = predict_next_rotations(weights, history)
    np.testing.assert_allclose(ours, nxt, atol=1e-5)
    assert ours.shape == (5, weights.horizon, 24, 3, 3)
    # The output is rotations, and the residual moved them off the last pose.
    np.testing.assert_allclose(
        ours @ np.swapaxes(ours, -1, -2), np.eye(3) * np.ones_like(ours), atol=1e-9
    )
    assert np.abs(ours[:, 0] - history[:, -1]).max() > 1e-3


def test_learned_gate_numpy_matches_torch_through_the_rate_limit():
    torch = pytest.importorskip("torch")
    from ram_core.train.combiner import GateBatch, gate_of_batch
    from ram_core.train.motion_models import model_from_weights

    weights = random_gate(layer_norm=True)
    rng = np.random.default_rng(3)
    reliability = rng.uniform(0.0, 1.0, (4, 30))
    occluded = rng.random((4, 30)) < 0.15
    recon_valid = rng.random((4, 30)) > 0.1
    features = gate_features(reliability, occluded, recon_valid, weights.radius)
    model = model_from_weights(weights).eval()
    with torch.no_grad():
        probability = model(torch.as_tensor(features, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(gate_probability(weights, features), probability, atol=1e-5)

    config = CombinerConfig(max_gate_step=0.15)
    ours = gate_from_learned(reliability, occluded, recon_valid, weights, config)
    batch = GateBatch(
        truth=None,
        recon_q=None,
        features=torch.as_tensor(features, dtype=torch.float32),
        usable=torch.as_tensor(recon_valid & ~occluded),
        usual_q=None,
        relax=None,
    )
    with torch.no_grad():
        theirs = gate_of_batch(model, batch, config).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    assert np.all(ours[occluded | ~recon_valid] == 0.0)
    assert np.abs(np.diff(ours, axis=1)).max() <= 0.15 + 1e-12
    # One track alone gives its row of the batch.
    np.testing.assert_array_equal(
        gate_from_learned(reliability[1], occluded[1], recon_valid[1], weights, config), ours[1]
    )


# ------------------------------------------------------------------ files


def test_learned_weights_round_trip_through_npz(tmp_path):
    for weights in (random_predictor(), random_gate(layer_norm=True)):
        path = save_learned_weights(weights, tmp_path / "w.npz")
        loaded = load_learned_weights(path)
        assert type(loaded) is type(weights) and loaded.sha256 == file_sha256(path)
        assert loaded.mlp.hidden_sizes == weights.mlp.hidden_sizes
        for (a, b), (c, d) in zip(loaded.mlp.linear, weights.mlp.linear, strict=True):
            np.testing.assert_allclose(a, c, rtol=1e-6)  # stored as float32
            np.testing.assert_allclose(b, d, rtol=1e-6)
    history = random_rotations(4, (2, 6, 24))
    np.testing.assert_allclose(
        predict_next_rotations(load_learned_weights(save_learned_weights(random_predictor(),
                               tmp_path / "p.npz")), history),
        predict_next_rotations(random_predictor(), history),
        atol=1e-5,
    )  # fmt: skip


def test_bad_learned_weight_files_are_refused_with_a_reason(tmp_path):
    with pytest.raises(LearnedWeightsMissingError, match="not found") as missing:
        load_learned_weights(tmp_path / "missing.npz")
    assert missing.value.exit_code == 3  # as any missing weights
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(LearnedWeightsError, match=r"not a learned model's \.npz"):
        load_learned_weights(tmp_path / "junk.npz")
    good = save_learned_weights(random_gate(), tmp_path / "gate.npz")
    with pytest.raises(LearnedWeightsError, match="holds a learned gate, not a learned predictor"):
        load_learned_weights(good, "predictor")

    def altered(change) -> str:
        with np.load(good) as archive:
            arrays = dict(archive)
        change(arrays)
        np.savez(tmp_path / "bad.npz", **arrays)
        with pytest.raises(LearnedWeightsError) as caught:
            load_learned_weights(tmp_path / "bad.npz")
        return str(caught.value)

    assert "lacks 'linear1.bias'" in altered(lambda a: a.pop("linear1.bias"))
    assert "'linear0.weight' must be float (8, 10)" in altered(
        lambda a: a.update({"linear0.weight": np.zeros((8, 9), np.float32)})
    )
    assert "NaN" in altered(lambda a: a["linear2.weight"].fill(np.nan))
    assert "unexpected array(s): extra" in altered(lambda a: a.update(extra=np.zeros(1)))
    assert "newer than this reader" in altered(lambda a: a.update(version=np.asarray(2)))
    assert "unknown model 'memformer'" in altered(lambda a: a.update(model=np.asarray("memformer")))
    # An object array would need pickle: refused, never unpickled.
    with np.load(good) as archive:
        arrays = dict(archive)
    arrays["hidden_sizes"] = np.array([8, 8], dtype=object)
    np.savez(tmp_path / "pickled.npz", **arrays)
    with pytest.raises(LearnedWeightsError, match="pickle"):
        load_learned_weights(tmp_path / "pickled.npz")


# ------------------------------------------------------------------ config


def test_the_config_chooses_learned_parts_and_checks_them():
    assert PredictorConfig().kind == "analytic" and CombinerConfig().gate == "analytic"
    with pytest.raises(ValueError, match="predictor kind 'learned' needs weights"):
        PredictorConfig(kind="learned")
    with pytest.raises(ValueError, match="combiner gate 'learned' needs gate_weights"):
        CombinerConfig(gate="learned")
    with pytest.raises(ValueError, match="must be one of analytic, learned"):
        PredictorConfig(kind="neural", weights="w.npz")
    with pytest.raises(ValueError, match="weights is only read with kind 'learned'"):
        PredictorConfig(weights="w.npz")
    document = {
        "predictor": {"kind": "learned", "weights": "p.npz"},
        "combiner": {"gate": "learned", "gate_weights": "g.npz", "max_gate_step": 0.3},
    }
    config = config_from_dict(document)
    assert config.predictor == PredictorConfig(kind="learned", weights="p.npz")
    assert config.combiner.gate_weights == "g.npz" and config.combiner.max_gate_step == 0.3
    assert config_from_dict(config_to_dict(config)) == config
    with pytest.raises(ValueError, match="needs weights"):
        config_from_dict({"predictor": {"kind": "learned"}})


def test_an_analytic_record_is_the_one_written_before_learned_parts(tmp_path):
    record = json.loads(motion_config_record(PredictorConfig(), CombinerConfig()))
    assert record["predictor"] == {
        k: v
        for k, v in dataclasses.asdict(PredictorConfig()).items()
        if k not in ("kind", "weights")
    }
    assert "gate" not in record["combiner"] and "gate_weights" not in record["combiner"]
    path = save_learned_weights(random_predictor(), tmp_path / "p.npz")
    learned = json.loads(
        motion_config_record(PredictorConfig(kind="learned", weights=str(path)), CombinerConfig())
    )
    assert learned["predictor"]["kind"] == "learned"
    assert learned["predictor"]["weights"] == "sha256:" + file_sha256(path)


# ------------------------------------------------------------------ fusion


def make_table(seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    spans = {1: range(40), 2: range(12), 5: range(5, 33)}
    rows = [(track, frame) for track, frames in spans.items() for frame in frames]
    n = len(rows)
    table = {name: np.zeros((n, *s), dtype=d) for name, (s, d) in TRACK_ARRAYS.items()}
    table["track_id"][:] = [r[0] for r in rows]
    table["frame"][:] = [r[1] for r in rows]
    frames = table["frame"][:, None, None].astype(float)
    table["recon_body_pose"][:] = 0.4 * np.sin(0.2 * frames + rng.uniform(0, 6, (1, 23, 3)))
    table["recon_global_orient"][:] = rng.normal(0.0, 0.05, (n, 3)) + np.array([0.0, 2.5, 0.0])
    table["recon_transl"][:] = rng.normal(0.0, 0.01, (n, 3)) + np.array([0.0, 0.0, 5.0])
    table["recon_valid"][:] = rng.random(n) > 0.1
    table["occluded"][:] = rng.random(n) < 0.15
    table["reliability"][:] = rng.uniform(0.2, 1.0, n)
    return table


def test_fuse_tracks_runs_the_learned_parts_track_by_track_as_in_a_batch(tmp_path):
    predictor_path = save_learned_weights(random_predictor(), tmp_path / "p.npz")
    gate_path = save_learned_weights(random_gate(), tmp_path / "g.npz")
    predictor = PredictorConfig(kind="learned", weights=str(predictor_path))
    combiner = CombinerConfig(gate="learned", gate_weights=str(gate_path))
    table = make_table()
    fused = fuse_tracks(table, predictor, combiner)
    for name in ("global_orient", "body_pose", "transl", "gate", "pred_body_pose"):
        assert np.all(np.isfinite(fused[name])), name
    analytic = fuse_tracks(table)
    assert not np.allclose(fused["pred_body_pose"], analytic["pred_body_pose"], atol=1e-3)
    assert not np.allclose(fused["gate"], analytic["gate"], atol=1e-3)
    # The gate's hard zero, and the Kalman translation of the analytic Predictor.
    hidden = table["occluded"] | ~table["recon_valid"]
    assert np.all(fused["gate"][hidden] == 0.0)
    gate_only = fuse_tracks(table, PredictorConfig(), combiner)
    np.testing.assert_array_equal(gate_only["gate"], fused["gate"])
    # Where the gate is 0 the final pose is the prediction; each track as alone.
    np.testing.assert_array_equal(fused["body_pose"][hidden], fused["pred_body_pose"][hidden])
    for rows in track_slices(table["track_id"]):
        alone = fuse_tracks({k: v[rows] for k, v in table.items()}, predictor, combiner)
        for name in ("body_pose", "global_orient", "transl", "gate", "pred_global_orient"):
            np.testing.assert_allclose(alone[name], fused[name][rows], atol=1e-6, err_msg=name)
    # Weights given in memory are the file's.
    given = fuse_tracks(
        table,
        predictor,
        combiner,
        learned_predictor=load_learned_weights(predictor_path),
        learned_gate=load_learned_weights(gate_path),
    )
    np.testing.assert_array_equal(given["body_pose"], fused["body_pose"])


def test_a_hidden_stretch_follows_the_learned_prediction_from_the_combined_pose(tmp_path):
    """While hidden, frame t's pose is the learned model's next pose after the combined
    frames before it (the recursion), not after the observations."""
    weights = random_predictor(window=4, dct_size=3, horizon=1)
    path = save_learned_weights(weights, tmp_path / "p.npz")
    weights = load_learned_weights(path)
    table = make_table()
    table["occluded"][:] = False
    table["recon_valid"][:] = True
    rows = track_slices(table["track_id"])[0]
    table["occluded"][rows.start + 20 : rows.start + 30] = True
    fused = fuse_tracks(table, PredictorConfig(kind="learned", weights=str(path)))
    pose = np.concatenate(
        [fused["global_orient"][rows][:, None], fused["body_pose"][rows]], axis=1
    ).astype(np.float64)
    R = axis_angle_to_matrix(pose)
    for t in range(21, 30):
        expected = predict_next_rotations(weights, R[None, t - 4 : t])[0, 0]
        np.testing.assert_allclose(R[t], expected, atol=2e-5)


# ------------------------------------------------------------------ results


class PosingWorld(GroundTruthWorld):
    """The ground truth's parts, with a reconstruction that moves the joints."""

    def reconstruct(self, frame, tracks, camera):
        estimates = super().reconstruct(frame, tracks, camera)
        out = []
        for track, estimate in zip(tracks, estimates, strict=True):
            phase = 0.3 * frame.index + track.track_id
            body = 0.3 * np.sin(phase + np.arange(69).reshape(23, 3))
            out.append(dataclasses.replace(estimate, body_pose=body, global_orient=[0, 0.1, 0]))
        return out


def run_learned(tmp_path, predictor_weights, gate_weights) -> tuple:
    frames = 14
    gt = tiny_ground_truth(frames)
    joints = np.zeros_like(gt["joints_cam"])
    for f in range(frames):
        joints[f, 0] = REST_JOINTS_M + np.array([0.05 * f, 0.0, 5.0])
        joints[f, 1] = REST_JOINTS_M + np.array([0.4, 0.0, 6.0])
    scene = load_scene(
        write_scene(tmp_path, frames=frames, gt={"joints_cam": joints, "joints_world": joints})
    )
    world = PosingWorld(scene)
    config = RunConfig(
        segfollow=SegFollowConfig(birth_min_size_px=(10.0, 20.0)),
        predictor=PredictorConfig(kind="learned", weights=str(predictor_weights)),
        combiner=CombinerConfig(gate="learned", gate_weights=str(gate_weights)),
    )
    out = run_pipeline(
        scene.video_path,
        tmp_path / "out.ram",
        config=config,
        stages=Backend("truth", world, world, world, {}, "test"),
    )
    return out, config


def test_a_learned_result_carries_its_weights_and_re_runs_with_them(tmp_path):
    weights_dir = tmp_path / "weights"
    predictor_path = save_learned_weights(random_predictor(), weights_dir / "p.npz")
    gate_path = save_learned_weights(random_gate(), weights_dir / "g.npz")
    out, config = run_learned(tmp_path, predictor_path, gate_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["predictor"]["kind"] == "learned"
    assert manifest["config"]["predictor"]["weights"] == LEARNED_FILES["predictor"]
    assert manifest["config"]["combiner"]["gate_weights"] == LEARNED_FILES["combiner"]
    for section, source in (("predictor", predictor_path), ("combiner", gate_path)):
        record = manifest["learned_models"][section]
        assert record["sha256"] == file_sha256(source) == file_sha256(out / record["file"])
        assert record["source"] == str(source.resolve())
    pipeline = load_result(out).tracks
    expected = fuse_tracks(pipeline, config.predictor, config.combiner)
    np.testing.assert_allclose(pipeline["gate"], expected["gate"], atol=1e-6)

    # Self-contained: the folder moved, the original weights gone.
    moved = tmp_path / "moved.ram"
    shutil.copytree(out, moved)
    shutil.rmtree(weights_dir)
    predictor, combiner = recorded_motion_config(load_result(moved).manifest, moved)
    assert predictor.weights == str(moved / LEARNED_FILES["predictor"])
    assert combiner.gate == "learned"
    assert recombine_result(moved) == moved / COMBINED_FILE_NAME
    rerun = load_result(moved)
    assert rerun.layers[-1] == "combined"
    for name in ("global_orient", "body_pose", "transl", "gate", "pred_body_pose", "pred_transl"):
        np.testing.assert_allclose(rerun.tracks[name], pipeline[name], atol=1e-4, err_msg=name)

    # Without the folder (the add-on must give it) and with altered weights: refused.
    with pytest.raises(ResultFormatError, match="give the folder"):
        recorded_motion_config(rerun.manifest)
    save_learned_weights(random_predictor(seed=9), moved / LEARNED_FILES["predictor"])
    with pytest.raises(ResultFormatError, match="not the ones it was made with"):
        recombine_result(moved)
    (moved / LEARNED_FILES["predictor"]).unlink()
    with pytest.raises(ResultFormatError, match="weights are missing"):
        recombine_result(moved)


def test_a_bad_weights_file_stops_the_run_before_tracking(tmp_path):
    (tmp_path / "p.npz").write_bytes(b"junk")
    gate_path = save_learned_weights(random_gate(), tmp_path / "g.npz")
    with pytest.raises(LearnedWeightsError, match=r"p\.npz"):
        run_learned(tmp_path, tmp_path / "p.npz", gate_path)
    assert not (tmp_path / "out.ram").exists()


def test_an_analytic_result_records_no_learned_models(tmp_path):
    frames = 8
    scene = load_scene(write_scene(tmp_path, frames=frames))
    world = GroundTruthWorld(scene)
    out = run_pipeline(
        scene.video_path,
        tmp_path / "out.ram",
        config=RunConfig(segfollow=SegFollowConfig(birth_min_size_px=(10.0, 20.0))),
        stages=Backend("truth", world, world, world, {}, "test"),
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert "learned_models" not in manifest and not (out / "models").exists()
    assert recorded_motion_config(manifest) == (PredictorConfig(), CombinerConfig())


def test_a_batch_skips_a_learned_result_only_while_its_weights_are_the_same(tmp_path):
    """The manifest records the weights as the copies in the result: a batch must read that
    as the same settings, and other weights (same path, new content) as different ones."""
    from ram_core.batch import RunSettings, existing_result

    weights_dir = tmp_path / "weights"
    predictor_path = save_learned_weights(random_predictor(), weights_dir / "p.npz")
    gate_path = save_learned_weights(random_gate(), weights_dir / "g.npz")
    out, config = run_learned(tmp_path, predictor_path, gate_path)
    video = Path(json.loads((out / "manifest.json").read_text())["source_video"]["path"])
    settings = RunSettings(backend="auto", config=config)

    found = existing_result(out, video, settings)
    assert found is not None and found.complete, found
    save_learned_weights(random_predictor(seed=5), predictor_path)
    found = existing_result(out, video, settings)
    assert found is not None and not found.complete
    assert "other learned weights" in found.reason
