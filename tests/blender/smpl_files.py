"""Random SMPL model files in the official layout, for tests: no licensed data needed.

Used by ``tests/test_smpl_model.py`` (plain pytest) and the Blender tests; numpy and the
standard library only, so it runs in the bpy environments too.

``write_python2_pickle`` writes what MPI-IS's files look like byte for byte in kind: a
protocol-2 pickle whose strings are Python 2 byte strings, whose arrays are chumpy ``Ch``
objects and whose ``J_regressor`` is a scipy ``csc_matrix`` — without chumpy, scipy or
Python 2, through a pure-Python pickler that spells those classes' names.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np

from ram_core.body.skeleton import NUM_JOINTS, PARENTS, REST_JOINTS_M

SMPL_VERTICES = 6890
# SMPL's files do not put the rest pelvis at the origin (it is about 22 cm below it); the
# random models do likewise, so code that assumes a pelvis at the origin fails with them.
REST_PELVIS_M = np.array([0.0, -0.22, 0.03])
# SMPL 1.0's kintree_table root entry: -1 stored as an unsigned 32-bit integer.
_ROOT_PARENT = 2**32 - 1


def random_smpl_arrays(
    rng: np.random.Generator, num_vertices: int = SMPL_VERTICES, num_betas: int = 10
) -> dict[str, np.ndarray]:
    """A random body model with SMPL's keys, shapes and conventions.

    Each vertex belongs to one joint and sits in a small cloud around the built-in rest
    joint (moved to SMPL's rest pelvis), so the regressed rest skeleton is body-like; each
    shape component moves every joint's cloud coherently (a few cm per unit beta), so betas
    change the skeleton; each vertex is skinned to its joint and that joint's parent, as
    SMPL's weights mostly are.
    """
    owner = np.arange(num_vertices) % NUM_JOINTS
    rest_joints = REST_JOINTS_M - REST_JOINTS_M[0] + REST_PELVIS_M
    v_template = rest_joints[owner] + rng.normal(scale=0.03, size=(num_vertices, 3))
    regressor = np.zeros((NUM_JOINTS, num_vertices))
    regressor[owner, np.arange(num_vertices)] = 1.0
    regressor /= regressor.sum(axis=1, keepdims=True)
    joint_shift = rng.normal(scale=0.02, size=(NUM_JOINTS, 3, num_betas))
    shapedirs = joint_shift[owner] + rng.normal(scale=0.003, size=(num_vertices, 3, num_betas))
    posedirs = rng.normal(scale=0.002, size=(num_vertices, 3, (NUM_JOINTS - 1) * 9))
    weights = np.zeros((num_vertices, NUM_JOINTS))
    own_share = rng.uniform(0.6, 1.0, num_vertices)
    parent = np.array(PARENTS)[owner]
    weights[np.arange(num_vertices), owner] = own_share
    has_parent = parent >= 0
    weights[np.flatnonzero(has_parent), parent[has_parent]] += 1.0 - own_share[has_parent]
    weights[~has_parent, 0] = 1.0
    # Triangles within one joint's cloud (vertex i, i+24, i+48 share an owner).
    first = np.arange(num_vertices)
    faces = np.concatenate(
        [
            np.column_stack([first, first + NUM_JOINTS, first + 2 * NUM_JOINTS]),
            np.column_stack([first, first + 2 * NUM_JOINTS, first + 3 * NUM_JOINTS]),
        ]
    ) % num_vertices
    kintree = np.array([[_ROOT_PARENT, *PARENTS[1:]], list(range(NUM_JOINTS))], dtype=np.int64)
    return {
        "v_template": v_template,
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": kintree,
        "f": faces.astype(np.uint32),
    }


def write_plain_pickle(path: Path, contents: object, protocol: int = 2) -> Path:
    """``contents`` (the keys as numpy arrays, or a scipy matrix where given) pickled."""
    with open(path, "wb") as stream:
        pickle.dump(contents, stream, protocol=protocol)
    return path


class Python2Ch:
    """Pickles as chumpy 1.0's ``chumpy.ch.Ch`` holding ``x``, with chumpy's own state."""

    pickled_as = ("chumpy.ch", "Ch")

    def __init__(self, x: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=np.float64)

    def __getstate__(self) -> dict:
        return {
            "x": self.x,
            "_dirty_vars": set(),
            "_itr": None,
            "_depends_on_deps": {},
            "_make_dense": False,
            "_make_sparse": False,
        }


class Python2ChumpyExpression(Python2Ch):
    """Pickles as a chumpy expression (``chumpy.ch_ops.add``): no value without chumpy."""

    pickled_as = ("chumpy.ch_ops", "add")

    def __getstate__(self) -> dict:
        return {"a": Python2Ch(self.x), "b": Python2Ch(np.zeros_like(self.x))}


class Python2CscMatrix:
    """Pickles as an old scipy's ``scipy.sparse.csc.csc_matrix`` of a dense matrix."""

    pickled_as = ("scipy.sparse.csc", "csc_matrix")

    def __init__(self, dense: np.ndarray) -> None:
        dense = np.asarray(dense, dtype=np.float64)
        columns, rows = np.nonzero(dense.T)  # column-major order, as CSC stores it
        counts = np.bincount(columns, minlength=dense.shape[1])
        self.state = {
            "_shape": dense.shape,
            "maxprint": 50,
            "indices": rows.astype(np.int32),
            "indptr": np.concatenate([[0], np.cumsum(counts)]).astype(np.int32),
            "data": dense[rows, columns],
        }

    def __reduce_ex__(self, protocol: int):
        return copyreg._reconstructor, (type(self), object, None), self.state


class _Python2Pickler(pickle._Pickler):
    """Writes ``str`` and ``bytes`` as Python 2 byte strings and spells stand-in classes."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_global(self, obj, name=None):
        spelled = getattr(obj, "pickled_as", None)
        if not isinstance(spelled, tuple):
            return super().save_global(obj, name)
        module, qualname = spelled
        self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
        self.memoize(obj)
        return None

    def _save_python2_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else bytes(obj)
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = _save_python2_string
    dispatch[bytes] = _save_python2_string


def write_python2_pickle(path: Path, arrays: dict, expression_key: str | None = None) -> Path:
    """An MPI-IS-style pickle: ``Ch`` arrays, a csc ``J_regressor``, Python 2 strings.

    ``expression_key`` names an entry written as a chumpy expression instead of a ``Ch``.
    """
    entries = {}
    for key, value in arrays.items():
        if key == "J_regressor":
            entries[key] = Python2CscMatrix(value)
        elif key in ("kintree_table", "f"):
            entries[key] = np.asarray(value)
        elif key == expression_key:
            entries[key] = Python2ChumpyExpression(value)
        else:
            entries[key] = Python2Ch(value)
    entries["bs_style"] = "lbs"
    entries["bs_type"] = "lrotmin"
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(entries)
    Path(path).write_bytes(buffer.getvalue())
    return Path(path)
