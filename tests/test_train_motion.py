"""Training the learned Predictor and Combiner gate: the motion loaders (AMASS, 3DPW),
the windows, the generic loop's checkpoints and resume, both trainers, the export to
numpy and the ``train`` command."""

from __future__ import annotations

import argparse
import pickle
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ram_core.body.rotations import axis_angle_to_matrix  # noqa: E402
from ram_core.errors import BadInputError  # noqa: E402
from ram_core.motion.combiner import CombinerConfig  # noqa: E402
from ram_core.motion.learned import (  # noqa: E402
    gate_features,
    gate_probability,
    load_learned_weights,
    predict_next_rotations,
)
from ram_core.motion.predictor import PredictorConfig  # noqa: E402
from ram_core.train.cli import add_train_parser, run_train  # noqa: E402
from ram_core.train.combiner import (  # noqa: E402
    GateTrainConfig,
    gate_loss,
    simulate_gate_batch,
    train_combiner,
)
from ram_core.train.loop import load_checkpoint, train_loop  # noqa: E402
from ram_core.train.motion_data import (  # noqa: E402
    MotionClip,
    MotionWindows,
    load_3dpw_sequence,
    load_amass_motion,
    load_motion_clips,
    mirror_rotations,
    read_restricted_pickle,
)
from ram_core.train.motion_models import export_numpy, model_from_weights  # noqa: E402
from ram_core.train.predictor import (  # noqa: E402
    PredictorTrainConfig,
    predictor_rollout_loss,
    train_predictor,
)


def smooth_motion(frames: int, seed: int = 0, speed: float = 0.15) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames)[:, None, None]
    return 0.3 * np.sin(speed * t + rng.uniform(0.0, 6.0, (1, 24, 3)))


def tiny_clips() -> list[MotionClip]:
    return [MotionClip(f"c{i}", smooth_motion(50, i), np.zeros((50, 3)), 30.0) for i in range(2)]


# ------------------------------------------------------------------ loaders


@pytest.mark.parametrize("width", [72, 156])
def test_amass_loader_takes_24_joints_and_resamples_60_to_30_fps(tmp_path, width):
    frames = 21
    rng = np.random.default_rng(0)
    poses = rng.normal(0.0, 0.3, (frames, width))
    trans = np.cumsum(rng.normal(0.0, 0.01, (frames, 3)), axis=0)
    path = tmp_path / "walk_poses.npz"
    np.savez(path, poses=poses, trans=trans, betas=np.zeros(16), mocap_framerate=np.array(60.0))
    clip = load_amass_motion(path)
    assert clip.fps == 30.0 and clip.name == "walk_poses"
    assert clip.pose_aa.shape == (11, 24, 3) and clip.transl.shape == (11, 3)
    # 60 -> 30 fps takes every other frame exactly.
    np.testing.assert_allclose(clip.pose_aa[:, :22], poses[::2, :66].reshape(-1, 22, 3))
    np.testing.assert_allclose(clip.transl, trans[::2])
    hands = poses[::2, 66:72].reshape(-1, 2, 3) if width == 72 else np.zeros((11, 2, 3))
    np.testing.assert_allclose(clip.pose_aa[:, 22:], hands)


def test_amass_loader_slerps_between_frames_at_other_rates(tmp_path):
    poses = np.zeros((3, 72))
    poses[:, 3] = [0.0, 0.4, 0.8]  # the left hip turning about x at 0.4 rad a frame
    np.savez(
        tmp_path / "m.npz", poses=poses, trans=np.zeros((3, 3)), mocap_frame_rate=np.array(20.0)
    )
    clip = load_amass_motion(tmp_path / "m.npz")
    assert len(clip) == 4  # 0, 1/30, 2/30, 3/30 s of a 0.1 s motion
    np.testing.assert_allclose(clip.pose_aa[:, 1, 0], [0.0, 0.8 / 3, 1.6 / 3, 0.8], atol=1e-9)


def test_amass_loader_refuses_a_file_that_is_not_a_motion(tmp_path):
    np.savez(tmp_path / "bad.npz", poses=np.zeros((4, 50)), trans=np.zeros((4, 3)),
             mocap_framerate=np.array(30.0))  # fmt: skip
    with pytest.raises(BadInputError, match="SMPL-H"):
        load_amass_motion(tmp_path / "bad.npz")
    np.savez(tmp_path / "norate.npz", poses=np.zeros((4, 72)), trans=np.zeros((4, 3)))
    with pytest.raises(BadInputError, match="mocap_framerate"):
        load_amass_motion(tmp_path / "norate.npz")


def write_3dpw(path, protocol=4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    poses = [rng.normal(0.0, 0.3, (12, 72)), rng.normal(0.0, 0.3, (12, 72))]
    valid = [np.ones(12), np.r_[np.ones(5), 0, 0, np.ones(5)]]
    document = {
        "sequence": "courtyard_test_00",
        "poses": poses,
        "trans": [np.zeros((12, 3)), np.ones((12, 3))],
        "betas": [np.zeros(10), np.zeros(10)],
        "campose_valid": valid,
    }
    path.write_bytes(pickle.dumps(document, protocol=protocol))
    return poses[0], poses[1]


@pytest.mark.parametrize("protocol", [2, 4])
def test_3dpw_loader_gives_each_persons_valid_runs(tmp_path, protocol):
    first, second = write_3dpw(tmp_path / "courtyard_test_00.pkl", protocol)
    clips = load_3dpw_sequence(tmp_path / "courtyard_test_00.pkl")
    assert [len(c) for c in clips] == [12, 5, 5]
    np.testing.assert_allclose(clips[0].pose_aa, first.reshape(12, 24, 3))
    np.testing.assert_allclose(clips[2].pose_aa, second[7:].reshape(5, 24, 3))
    np.testing.assert_allclose(clips[2].transl, np.ones((5, 3)))
    assert all(c.fps == 30.0 for c in clips)


class Payload:
    """What a crafted pickle would build: a call at load time."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_3dpw_pickle_holding_anything_but_arrays_is_refused(tmp_path, capsys):
    document = {"poses": [np.zeros((4, 72))], "trans": [np.zeros((4, 3))], "x": Payload()}
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(document))
    with pytest.raises(BadInputError, match=r"refused to build builtins\.print"):
        load_3dpw_sequence(tmp_path / "evil.pkl")
    assert "never run" not in capsys.readouterr().out
    with pytest.raises(pickle.UnpicklingError, match=r"collections\.OrderedDict"):
        import collections

        read_restricted_pickle(pickle.dumps(collections.OrderedDict(a=1)))


def test_motion_files_are_found_under_folders(tmp_path):
    (tmp_path / "CMU" / "01").mkdir(parents=True)
    for i in range(2):
        np.savez(tmp_path / "CMU" / "01" / f"m{i}.npz", poses=np.zeros((6, 156)),
                 trans=np.zeros((6, 3)), mocap_framerate=np.array(30.0))  # fmt: skip
    assert len(load_motion_clips([tmp_path], "amass")) == 2
    with pytest.raises(BadInputError, match=r"no \.pkl files"):
        load_motion_clips([tmp_path], "3dpw")


# ------------------------------------------------------------------ windows


def test_windows_start_on_a_padded_history_and_mirror_twice_is_identity():
    clip = MotionClip("c", smooth_motion(10), np.zeros((10, 3)), 30.0)
    windows = MotionWindows([clip], history=4, future=2, mirror=False)
    assert len(windows) == 10 - 2  # every frame after the first starts a future
    R = axis_angle_to_matrix(clip.pose_aa)
    first = windows.frames[windows.starts[0] + np.arange(6)]
    np.testing.assert_allclose(first, R[[0, 0, 0, 0, 1, 2]], atol=1e-6)
    mirrored = mirror_rotations(R)
    np.testing.assert_allclose(mirror_rotations(mirrored), R, atol=1e-12)
    # A left hip turned about x is a right hip turned the same way about x.
    aa = np.zeros((24, 3))
    aa[1] = [0.3, 0.2, 0.1]
    out = mirror_rotations(axis_angle_to_matrix(aa))
    np.testing.assert_allclose(out[2], axis_angle_to_matrix(np.array([0.3, -0.2, -0.1])))
    np.testing.assert_allclose(out[1], np.eye(3), atol=1e-12)


# ------------------------------------------------------------------ loop


def fit_line(steps, checkpoint=None, resume=False, config=None, checkpoint_every=3):
    torch.manual_seed(0)  # the same initial weights every time
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    truth = torch.tensor([[1.0, -2.0, 0.5]])

    def make_batch(step, rng):
        x = torch.as_tensor(rng.normal(size=(16, 3)), dtype=torch.float32)
        return x, x @ truth.T

    def loss_fn(model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    result = train_loop(
        model, make_batch, loss_fn, optimizer, steps, checkpoint, resume,
        checkpoint_every=checkpoint_every, seed=7, config=config or {"lr": 0.05},
    )  # fmt: skip
    return model, result


def test_train_loop_checkpoints_and_resumes_where_it_stopped(tmp_path):
    checkpoint = tmp_path / "run" / "line.pt"
    _, first = fit_line(6, checkpoint)
    state = load_checkpoint(checkpoint)
    assert state["step"] == 6 and first.final_step == 6 and len(first.losses) == 6
    resumed, second = fit_line(10, checkpoint, resume=True)
    assert second.start_step == 6 and second.final_step == 10 and len(second.losses) == 4
    straight, whole = fit_line(10)
    # The same batches and updates as a run that was never stopped.
    np.testing.assert_allclose(second.losses, whole.losses[6:], rtol=1e-6)
    torch.testing.assert_close(resumed.weight, straight.weight)
    assert whole.losses[-1] < whole.losses[0]
    assert load_checkpoint(checkpoint)["step"] == 10
    assert not list(checkpoint.parent.glob("*.tmp-*"))
    # Resuming a finished run does nothing; other settings are refused.
    assert fit_line(10, checkpoint, resume=True)[1].losses == []
    with pytest.raises(ValueError, match="other settings"):
        fit_line(12, checkpoint, resume=True, config={"lr": 0.1})
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable training checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


# ------------------------------------------------------------------ trainers


def test_predictor_trainer_lowers_its_loss_and_exports_what_it_learned(tmp_path):
    config = PredictorTrainConfig(window=6, dct_size=4, hidden_sizes=(32,), rollout=3)
    model, _ = train_predictor(
        config, tiny_clips(), steps=40, batch_size=16, lr=3e-3,
        checkpoint=tmp_path / "p.pt", export=tmp_path / "p.npz", checkpoint_every=20,
    )  # fmt: skip
    # It starts as holding the last pose and learns the motion: on the same windows, less.
    untrained, _ = train_predictor(config, tiny_clips(), steps=0)
    windows = MotionWindows(tiny_clips(), config.window, config.future, mirror=False)
    held_out = torch.as_tensor(windows.sample(np.random.default_rng(5), 64))
    with torch.no_grad():
        before = float(predictor_rollout_loss(untrained, held_out, config))
        after = float(predictor_rollout_loss(model, held_out, config))
    assert after < 0.7 * before
    assert load_checkpoint(tmp_path / "p.pt")["step"] == 40
    weights = load_learned_weights(tmp_path / "p.npz", "predictor")
    history = axis_angle_to_matrix(smooth_motion(6, 5))[None]
    with torch.no_grad():
        theirs = model.predict_next(torch.as_tensor(history, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(predict_next_rotations(weights, history), theirs, atol=1e-5)
    # Resume continues from the checkpoint's step.
    _, more = train_predictor(
        config, tiny_clips(), steps=45, batch_size=16, lr=3e-3,
        checkpoint=tmp_path / "p.pt", resume=True,
    )  # fmt: skip
    assert more.start_step == 40 and more.final_step == 45 and len(more.losses) == 5


@pytest.mark.parametrize("with_learned_predictor", [False, True])
def test_combiner_trainer_lowers_its_loss_and_exports_the_gate(tmp_path, with_learned_predictor):
    learned = None
    if with_learned_predictor:
        config = PredictorTrainConfig(window=4, dct_size=3, hidden_sizes=(16,), rollout=2)
        train_predictor(config, tiny_clips(), steps=5, batch_size=8, export=tmp_path / "p.npz")
        learned = load_learned_weights(tmp_path / "p.npz")
    config = GateTrainConfig(length=12, hidden_sizes=(16,))
    options = {"learned_predictor": learned, "batch_size": 16, "lr": 3e-2, "seed": 1}
    untrained, _ = train_combiner(config, tiny_clips(), steps=0, **options)
    model, result = train_combiner(
        config, tiny_clips(), steps=30, checkpoint=tmp_path / "g.pt", export=tmp_path / "g.npz",
        **options,
    )  # fmt: skip
    assert result.final_step == 30 and load_checkpoint(tmp_path / "g.pt")["step"] == 30
    # On the same held-out batch of simulated trouble, the trained gate does better (the
    # hidden frames, a large share of the error, are the prediction's whatever the gate).
    rng = np.random.default_rng(123)
    windows = MotionWindows(tiny_clips(), 1, config.length - 1, mirror=False)
    batch = simulate_gate_batch(windows.sample(rng, 64), rng, config, PredictorConfig())
    frozen = None if learned is None else model_from_weights(learned)
    with torch.no_grad():
        before = float(gate_loss(untrained, batch, CombinerConfig(), frozen, 0.1))
        after = float(gate_loss(model, batch, CombinerConfig(), frozen, 0.1))
    assert after < 0.93 * before
    weights = load_learned_weights(tmp_path / "g.npz", "gate")
    rng = np.random.default_rng(0)
    features = gate_features(
        rng.uniform(0, 1, (3, 12)), rng.random((3, 12)) < 0.2, np.ones((3, 12), bool), 2
    )
    with torch.no_grad():
        theirs = model(torch.as_tensor(features, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(gate_probability(weights, features), theirs, atol=1e-5)
    # What it learned: a clean, reliable frame is trusted more than a doubtful one.
    reliable = gate_features(np.ones((1, 5)), np.zeros((1, 5), bool), np.ones((1, 5), bool), 2)
    doubtful = gate_features(np.full((1, 5), 0.1), np.zeros((1, 5), bool), np.ones((1, 5), bool), 2)
    assert gate_probability(weights, reliable)[0, 2] > gate_probability(weights, doubtful)[0, 2]


def test_export_refuses_other_modules(tmp_path):
    with pytest.raises(TypeError, match="learned Predictor or gate"):
        export_numpy(torch.nn.Linear(2, 2), tmp_path / "x.npz")


# ------------------------------------------------------------------ command


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ram-core")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_train_command_trains_the_predictor_on_amass_files_and_resumes(tmp_path, capsys):
    (tmp_path / "amass").mkdir()
    for i in range(2):
        poses = smooth_motion(40, i).reshape(40, 72)
        np.savez(tmp_path / "amass" / f"m{i}.npz", poses=poses, trans=np.zeros((40, 3)),
                 mocap_framerate=np.array(30.0))  # fmt: skip
    argv = ["train", "predictor", "--format", "amass", "--data", str(tmp_path / "amass"),
            "--steps", "3",
            "--batch-size", "4", "--checkpoint", str(tmp_path / "c.pt"), "--export",
            str(tmp_path / "p.npz"), "--progress", "none"]  # fmt: skip
    assert run_train(parse(argv)) == 0
    assert load_learned_weights(tmp_path / "p.npz").window == PredictorTrainConfig().window
    argv[argv.index("3")] = "5"
    assert run_train(parse([*argv, "--resume"])) == 0
    assert "step 5 (from 3)" in capsys.readouterr().out
    with pytest.raises(BadInputError, match="needs --data"):
        run_train(parse(["train", "combiner", "--progress", "none"]))
    with pytest.raises(BadInputError, match="--resume needs --checkpoint"):
        run_train(parse(["train", "predictor", "--data", str(tmp_path), "--resume"]))


def test_train_memformer_is_handed_to_its_own_module(monkeypatch):
    seen = []
    module = types.ModuleType("ram_core.train.memformer")
    module.train_memformer_command = lambda args: seen.append(args.target) or 0
    monkeypatch.setitem(sys.modules, "ram_core.train.memformer", module)
    assert run_train(parse(["train", "memformer", "--data", "x"])) == 0
    assert seen == ["memformer"]


def test_train_without_torch_is_one_clear_exit_3(monkeypatch, capsys):
    import importlib.util

    from ram_core.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *rest: None if name == "torch" else real_find_spec(name, *rest),
    )
    assert main(["train", "predictor", "--data", "x", "--progress", "none"]) == 3
    err = capsys.readouterr().err
    assert "needs PyTorch" in err and "Traceback" not in err
