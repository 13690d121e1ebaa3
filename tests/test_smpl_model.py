"""ram_core.body.smpl_model against the real smplx package, on random files in SMPL's layout."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from ram_core.body.skeleton import NUM_JOINTS, forward_kinematics
from ram_core.body.smpl_model import SMPL_WEBSITE, load_smpl_model, smpl_model_from_arrays
from ram_core.errors import BadInputError, MissingModelError

# The random-file writers are shared with the Blender tests (they run there too).
sys.path.insert(0, str(Path(__file__).resolve().parent / "blender"))
from smpl_files import (
    random_smpl_arrays,
    write_plain_pickle,
    write_python2_pickle,
)

try:
    import smplx
    import torch
except ImportError:
    smplx = torch = None

needs_smplx = pytest.mark.skipif(
    smplx is None and os.environ.get("RAM_REQUIRE_FULL") != "1",
    reason="torch and smplx are not installed (the full extra); RAM_REQUIRE_FULL=1 fails",
)


@pytest.fixture(scope="module")
def arrays():
    return random_smpl_arrays(np.random.default_rng(7))


@pytest.fixture(scope="module")
def small_arrays():
    """A model with few vertices: the checks of the layout do not need SMPL's 6890."""
    return random_smpl_arrays(np.random.default_rng(8), num_vertices=240)


@pytest.fixture(scope="module")
def plain_file(arrays, tmp_path_factory):
    """The layout smplx reads: numpy arrays and, as in MPI-IS's files, a csc J_regressor."""
    entries = dict(arrays)
    try:
        import scipy.sparse
    except ImportError:
        pass
    else:
        entries["J_regressor"] = scipy.sparse.csc_matrix(arrays["J_regressor"])
    return write_plain_pickle(tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl", entries)


def _random_parameters(rng, count):
    return (
        rng.normal(scale=0.8, size=(count, 3)),
        rng.normal(scale=0.5, size=(count, 23, 3)),
        rng.normal(scale=1.5, size=(count, 10)),
        rng.normal(scale=1.0, size=(count, 3)),
    )


def _smplx_forward(path: Path, global_orient, body_pose, betas, transl):
    if smplx is None:
        pytest.fail("RAM_REQUIRE_FULL=1 but torch and smplx cannot be imported")
    model = smplx.SMPL(model_path=str(path), num_betas=betas.shape[1], dtype=torch.float64)
    with torch.no_grad():
        output = model(
            global_orient=torch.from_numpy(global_orient),
            body_pose=torch.from_numpy(body_pose.reshape(len(body_pose), -1)),
            betas=torch.from_numpy(betas),
            transl=torch.from_numpy(transl),
        )
    # smplx appends extra joints picked from vertices; the first 24 are SMPL's.
    return output.joints[:, :NUM_JOINTS].numpy(), output.vertices.numpy()


@needs_smplx
def test_joints_and_vertices_equal_smplx(plain_file):
    model = load_smpl_model(plain_file)
    global_orient, body_pose, betas, transl = _random_parameters(np.random.default_rng(1), 4)
    joints_smplx, vertices_smplx = _smplx_forward(
        plain_file, global_orient, body_pose, betas, transl
    )
    for i in range(4):
        joints, _ = forward_kinematics(
            global_orient[i], body_pose[i], transl[i], model.rest_joints(betas[i])
        )
        assert np.abs(joints - joints_smplx[i]).max() < 1e-5
        vertices = model.posed_vertices(global_orient[i], body_pose[i], betas[i], transl[i])
        assert vertices.shape == (6890, 3)
        assert np.abs(vertices - vertices_smplx[i]).max() < 1e-5
    # The comparison has teeth: pose blend shapes and betas both move the surface.
    without_blend = model.posed_vertices(
        global_orient[0], body_pose[0], betas[0], transl[0], pose_blend_shapes=False
    )
    assert np.abs(without_blend - vertices_smplx[0]).max() > 1e-3
    assert np.abs(model.rest_joints(betas[0]) - model.rest_joints(np.zeros(10))).max() > 0.01


@needs_smplx
def test_plain_skinning_equals_smplx_without_pose_blend_shapes(arrays, tmp_path):
    flat = dict(arrays, posedirs=np.zeros_like(arrays["posedirs"]))
    path = write_plain_pickle(tmp_path / "no_pose_blend.pkl", flat)
    global_orient, body_pose, betas, transl = _random_parameters(np.random.default_rng(2), 2)
    _, vertices_smplx = _smplx_forward(path, global_orient, body_pose, betas, transl)
    model = load_smpl_model(write_plain_pickle(tmp_path / "full.pkl", arrays))
    vertices = model.posed_vertices(
        global_orient, body_pose, betas[0], transl, pose_blend_shapes=False
    )
    assert vertices.shape == (2, 6890, 3)
    assert np.abs(vertices[0] - vertices_smplx[0]).max() < 1e-5


def test_python2_chumpy_pickle_loads_without_chumpy_or_scipy(arrays, tmp_path):
    assert "chumpy" not in sys.modules
    raw = write_python2_pickle(tmp_path / "basicModel_neutral.pkl", arrays).read_bytes()
    assert b"chumpy.ch\nCh\n" in raw and b"scipy.sparse.csc\ncsc_matrix\n" in raw
    model = load_smpl_model(tmp_path / "basicModel_neutral.pkl")
    assert "chumpy" not in sys.modules
    for key in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights"):
        assert np.array_equal(getattr(model, key), arrays[key]), key
    assert np.array_equal(model.faces, arrays["f"])
    assert model.faces.dtype == np.int32 and model.num_betas == 10


def test_npz_layout_gives_the_same_model(arrays, tmp_path):
    np.savez(tmp_path / "smpl.npz", **arrays)
    from_npz = load_smpl_model(tmp_path / "smpl.npz")
    from_pickle = load_smpl_model(write_plain_pickle(tmp_path / "smpl.pkl", arrays))
    betas = np.linspace(-1.0, 1.0, 10)
    assert np.array_equal(from_npz.rest_joints(betas), from_pickle.rest_joints(betas))


def test_shape_and_pose_conventions(arrays):
    model = smpl_model_from_arrays(arrays, "random")
    betas = np.array([0.5, -1.0, 2.0])
    padded = np.concatenate([betas, np.zeros(7)])
    assert np.allclose(model.shaped_vertices(betas), model.shaped_vertices(padded), atol=1e-12)
    assert np.allclose(
        model.rest_joints(betas), arrays["J_regressor"] @ model.shaped_vertices(betas)
    )
    transl = np.array([0.1, -0.2, 3.0])
    rest_posed = model.posed_vertices(np.zeros(3), np.zeros((23, 3)), betas, transl)
    assert np.allclose(rest_posed, model.shaped_vertices(betas) + transl, atol=1e-12)
    with pytest.raises(ValueError, match="betas"):
        model.rest_joints(np.zeros(11))
    with pytest.raises(ValueError, match="body_pose"):
        model.posed_vertices(np.zeros(3), np.zeros(69), betas, transl)
    # The caller's arrays stay writable; the model's are frozen.
    assert arrays["v_template"].flags.writeable and not model.v_template.flags.writeable


def test_missing_file_is_a_missing_model_with_where_to_get_it(tmp_path):
    with pytest.raises(MissingModelError) as caught:
        load_smpl_model(tmp_path / "SMPL_NEUTRAL.pkl")
    assert caught.value.exit_code == 3
    assert SMPL_WEBSITE in str(caught.value) and "SMPL_NEUTRAL.pkl" in str(caught.value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("J_regressor"), "lacks J_regressor"),
        (lambda a: a.update(weights=a["weights"][:, :16]), "weights has shape"),
        (lambda a: a.update(v_template=a["v_template"][:100]), "has shape"),
        (lambda a: a.update(kintree_table=a["kintree_table"][:, ::-1]), "not SMPL's 24-joint"),
        (lambda a: a.update(weights=2.0 * a["weights"]), "sum to 1"),
        (lambda a: a.update(f=a["f"] + 240), "must index the 240 vertices"),
        (lambda a: a.update(shapedirs=a["shapedirs"][:, :, 0]), "shapedirs has shape"),
    ],
)
def test_wrong_layout_is_bad_input(small_arrays, tmp_path, change, message):
    broken = dict(small_arrays)
    change(broken)
    path = write_plain_pickle(tmp_path / "broken.pkl", broken)
    with pytest.raises(BadInputError, match=message) as caught:
        load_smpl_model(path)
    assert caught.value.exit_code == 2
    assert str(path) in str(caught.value)


def test_unreadable_files_are_bad_input(small_arrays, tmp_path):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x80\x02this is not a pickle")
    truncated = tmp_path / "truncated.pkl"
    whole = write_plain_pickle(tmp_path / "whole.pkl", small_arrays).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    listing = write_plain_pickle(tmp_path / "list.pkl", [1, 2, 3])
    not_npz = tmp_path / "model.npz"
    not_npz.write_text("plain text")
    cases = [
        (garbage, "not a readable SMPL model pickle"),
        (truncated, "not a readable SMPL model pickle"),
        (listing, "holds a list, not an SMPL model"),
        (not_npz, "not a readable SMPL model .npz"),
        (tmp_path, "is a folder"),
    ]
    wrong_suffix = tmp_path / "model.obj"
    wrong_suffix.write_text("v 0 0 0")
    cases.append((wrong_suffix, "ends in .pkl or .npz"))
    for path, message in cases:
        with pytest.raises(BadInputError, match=message):
            load_smpl_model(path)


def test_chumpy_expression_is_refused_clearly(small_arrays, tmp_path):
    path = write_python2_pickle(tmp_path / "expr.pkl", small_arrays, expression_key="shapedirs")
    with pytest.raises(BadInputError, match=r"shapedirs is a chumpy expression \(chumpy"):
        load_smpl_model(path)


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_cannot_run_code(small_arrays, tmp_path):
    marker = tmp_path / "ran"
    entries = dict(small_arrays, v_template=_RunsCommand(marker))
    with open(tmp_path / "evil.pkl", "wb") as stream:
        pickle.dump(entries, stream, protocol=2)
    with pytest.raises(BadInputError, match=r"v_template is a (posix|nt)\.system object"):
        load_smpl_model(tmp_path / "evil.pkl")
    assert not marker.exists()
