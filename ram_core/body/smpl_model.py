"""The user's SMPL body model file: read, checked, shaped and posed with numpy alone.

Blender imports this module: numpy and the standard library only (no torch, scipy, chumpy).

SMPL is licensed by MPI-IS and never ships with RAM; the artist downloads it from
https://smpl.is.tue.mpg.de and names the file. Two layouts are read, with the same keys
(``v_template, shapedirs, posedirs, J_regressor, weights, kintree_table, f``):

- ``.pkl`` as MPI-IS publishes it: a Python 2 pickle whose arrays may be chumpy ``Ch``
  objects and whose ``J_regressor`` is a scipy sparse matrix. It is unpickled without
  either library: the unpickler resolves numpy's own reconstruction functions and a few
  builtins, turns chumpy objects and scipy sparse matrices into small numpy-backed
  stand-ins, and turns every other class into an inert placeholder, so no code from the
  file runs.
- ``.npz`` with the same keys as plain arrays (``J_regressor`` dense).

Conventions are SMPL's (and ``ram_core.body.skeleton``'s): the shaped template is
``v_template + shapedirs @ betas``, the rest joints are ``J_regressor @ shaped``, pose blend
shapes add ``posedirs @ (R_j - I)`` for joints 1..23, and linear blend skinning moves each
vertex by the weighted joint transforms ``G_j (v - J_j) + p_j`` of the forward kinematics.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ram_core.body.rotations import axis_angle_to_matrix
from ram_core.body.skeleton import NUM_JOINTS, PARENTS, forward_kinematics_matrices
from ram_core.errors import BadInputError, MissingModelError

REQUIRED_KEYS: tuple[str, ...] = (
    "v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f",
)  # fmt: skip
# Pose blend shapes: one 3x3 (R - I) per non-root joint.
POSE_FEATURES = (NUM_JOINTS - 1) * 9
SMPL_WEBSITE = "https://smpl.is.tue.mpg.de"
# Skinning weights of one vertex must sum to one within this.
_WEIGHT_SUM_TOLERANCE = 1e-3

# Globals a model pickle may name that are resolved for real: numpy's array and scalar
# reconstruction and the builtins its state uses. Both Python 2 and 3 spellings.
_REAL_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    ]
    + [(module, "_frombuffer") for module in ("numpy.core.numeric", "numpy._core.numeric")]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]
    + [(module, "_reconstructor") for module in ("copy_reg", "copyreg")]
    + [
        (module, name)
        for module in ("__builtin__", "builtins")
        for name in ("object", "set", "frozenset", "list", "dict", "tuple", "slice")
    ]
)
_SPARSE_FORMATS = ("csc", "csr", "coo")


@dataclass(frozen=True)
class SmplModel:
    """An SMPL body model, checked. V vertices, B shape components, F triangles.

    v_template (V, 3), shapedirs (V, 3, B), posedirs (V, 3, 207), J_regressor (24, V),
    weights (V, 24) skinning weights (rows sum to 1), faces (F, 3) int32; metres, SMPL rest
    axes (y up, x to the body's left, z to its front). ``source`` names the file.
    """

    v_template: np.ndarray
    shapedirs: np.ndarray
    posedirs: np.ndarray
    J_regressor: np.ndarray
    weights: np.ndarray
    faces: np.ndarray
    source: str

    @property
    def num_vertices(self) -> int:
        return int(self.v_template.shape[0])

    @property
    def num_betas(self) -> int:
        """How many shape components the file has (10 for SMPL 1.0, 300 for 1.1)."""
        return int(self.shapedirs.shape[-1])

    def shaped_vertices(self, betas: np.ndarray) -> np.ndarray:
        """The rest (T-pose) surface for shape ``betas`` (B',) with B' <= B: (V, 3)."""
        betas = self._betas(betas)
        return self.v_template + self.shapedirs[:, :, : len(betas)] @ betas

    def rest_joints(self, betas: np.ndarray) -> np.ndarray:
        """The rest joints for shape ``betas``: (24, 3), regressed from the shaped surface."""
        return self.J_regressor @ self.shaped_vertices(betas)

    def posed_vertices(
        self,
        global_orient: np.ndarray,
        body_pose: np.ndarray,
        betas: np.ndarray,
        transl: np.ndarray,
        pose_blend_shapes: bool = True,
    ) -> np.ndarray:
        """The posed surface: (..., V, 3) metres.

        global_orient (..., 3) and body_pose (..., 23, 3) axis-angle, transl (..., 3)
        metres, betas (B',) one person's shape. ``pose_blend_shapes=False`` gives plain
        linear blend skinning, which is what Blender's Armature modifier computes.
        """
        global_orient = np.asarray(global_orient, dtype=np.float64)
        body_pose = np.asarray(body_pose, dtype=np.float64)
        transl = np.asarray(transl, dtype=np.float64)
        if global_orient.shape[-1:] != (3,) or body_pose.shape[-2:] != (NUM_JOINTS - 1, 3):
            raise ValueError(
                f"expected global_orient (..., 3) and body_pose (..., 23, 3), got "
                f"{global_orient.shape} and {body_pose.shape}"
            )
        if transl.shape[-1:] != (3,):
            raise ValueError(f"expected transl (..., 3), got {transl.shape}")
        shaped = self.shaped_vertices(betas)
        rest = self.J_regressor @ shaped
        pose_aa = np.concatenate([global_orient[..., None, :], body_pose], axis=-2)
        local = axis_angle_to_matrix(pose_aa)  # (..., 24, 3, 3)
        joints, world = forward_kinematics_matrices(local, transl, rest)
        surface = np.broadcast_to(shaped, (*joints.shape[:-2], *shaped.shape))
        if pose_blend_shapes:
            feature = (local[..., 1:, :, :] - np.eye(3)).reshape(*local.shape[:-3], POSE_FEATURES)
            surface = surface + np.einsum("vcp,...p->...vc", self.posedirs, feature)
        # Joint j moves a rest point x to G_j (x - J_j) + p_j; blend rotations and offsets.
        offsets = joints - np.einsum("...jab,jb->...ja", world, rest)
        blended_rotations = np.einsum("vj,...jab->...vab", self.weights, world)
        blended_offsets = np.einsum("vj,...ja->...va", self.weights, offsets)
        return np.einsum("...vab,...vb->...va", blended_rotations, surface) + blended_offsets

    def _betas(self, betas: np.ndarray) -> np.ndarray:
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) > self.num_betas:
            raise ValueError(
                f"betas must be (B',) with B' <= {self.num_betas} (the model's shape "
                f"components), got {betas.shape}"
            )
        return betas


def load_smpl_model(path: str | Path) -> SmplModel:
    """Read and check an SMPL model file (``.pkl`` or ``.npz``).

    Raises MissingModelError (exit 3) when there is no file at ``path`` and BadInputError
    (exit 2) when the file is not an SMPL model in the expected layout.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise MissingModelError(
            f"No SMPL model file at {path}. SMPL is licensed by MPI-IS and not included: "
            f"register at {SMPL_WEBSITE}, download the SMPL for Python model and choose "
            "one of its .pkl files (e.g. SMPL_NEUTRAL.pkl)."
        )
    if not path.is_file():
        raise BadInputError(f"{path} is a folder; choose the SMPL model file itself (.pkl).")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        arrays = _read_pickle(path)
    elif suffix == ".npz":
        arrays = _read_npz(path)
    else:
        raise BadInputError(f"{path}: an SMPL model file ends in .pkl or .npz, not {suffix!r}.")
    return smpl_model_from_arrays(arrays, str(path))


def smpl_model_from_arrays(arrays: Mapping[str, Any], source: str) -> SmplModel:
    """Check the SMPL keys of ``arrays`` and build the model. Raises BadInputError."""
    missing = [key for key in REQUIRED_KEYS if key not in arrays]
    if missing:
        raise BadInputError(
            f"{source} is not an SMPL model: it lacks {', '.join(missing)} (an SMPL file "
            f"holds {', '.join(REQUIRED_KEYS)})."
        )
    values = {key: _as_array(arrays[key], key, source) for key in REQUIRED_KEYS}
    v_template = values["v_template"]
    count = v_template.shape[0] if v_template.ndim == 2 else -1
    posedirs = values["posedirs"]
    if posedirs.ndim == 2 and posedirs.shape == (3 * count, POSE_FEATURES):
        posedirs = posedirs.reshape(count, 3, POSE_FEATURES)
    expected = {
        "v_template": (count, 3),
        "posedirs": (count, 3, POSE_FEATURES),
        "J_regressor": (NUM_JOINTS, count),
        "weights": (count, NUM_JOINTS),
        "kintree_table": (2, NUM_JOINTS),
    }
    checked = {**values, "posedirs": posedirs}
    for key, shape in expected.items():
        if count < 1 or checked[key].shape != shape:
            raise BadInputError(
                f"{source}: {key} has shape {checked[key].shape}; an SMPL model with "
                f"{max(count, 0)} vertices and 24 joints has {shape}."
            )
    shapedirs = values["shapedirs"]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (count, 3) or shapedirs.shape[2] < 1:
        raise BadInputError(
            f"{source}: shapedirs has shape {shapedirs.shape}, expected ({count}, 3, B)."
        )
    faces = values["f"]
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise BadInputError(f"{source}: f has shape {faces.shape}, expected (F, 3) triangles.")
    for key, value in checked.items():
        if not np.all(np.isfinite(value)):
            raise BadInputError(f"{source}: {key} holds values that are not finite.")
    if np.any(faces != np.round(faces)) or faces.min() < 0 or faces.max() >= count:
        raise BadInputError(f"{source}: f must index the {count} vertices.")
    parents = checked["kintree_table"][0].astype(np.int64)
    if tuple(parents[1:]) != PARENTS[1:]:
        raise BadInputError(
            f"{source}: its joint tree (kintree_table) is not SMPL's 24-joint body; SMPL-H, "
            "SMPL-X and other models are not supported."
        )
    weights = checked["weights"]
    sums = weights.sum(axis=1)
    if weights.min() < 0.0 or np.abs(sums - 1.0).max() > _WEIGHT_SUM_TOLERANCE:
        worst = int(np.argmax(np.abs(sums - 1.0)))
        raise BadInputError(
            f"{source}: skinning weights must be non-negative and sum to 1 per vertex "
            f"(vertex {worst} sums to {sums[worst]:.4f})."
        )
    model = SmplModel(
        v_template=v_template,
        shapedirs=shapedirs,
        posedirs=posedirs,
        J_regressor=checked["J_regressor"],
        weights=weights,
        faces=faces.astype(np.int32),
        source=source,
    )
    for array in (model.v_template, model.shapedirs, model.posedirs, model.J_regressor):
        array.setflags(write=False)
    model.weights.setflags(write=False)
    model.faces.setflags(write=False)
    return model


class _ChumpyObject:
    """A chumpy object from a model pickle, kept as its pickled state.

    A plain ``chumpy.ch.Ch`` holds its value in ``x``; other chumpy classes are expressions
    that only chumpy can evaluate.
    """

    qualified_name = "chumpy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}

    def value(self) -> np.ndarray | None:
        x = self.state.get("x")
        if self.qualified_name == "chumpy.ch.Ch" and x is not None:
            return np.asarray(x)
        return None


class _SparseMatrix:
    """A scipy sparse matrix (csc, csr or coo) from a model pickle, as its pickled state."""

    qualified_name = "scipy.sparse"
    sparse_format = "csc"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        self.state = state if isinstance(state, dict) else {}

    def toarray(self) -> np.ndarray:
        """The dense matrix. Raises ValueError when the state is not a sparse matrix's."""
        state = self.state
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape", ())))
        if len(shape) != 2:
            raise ValueError(f"a {self.qualified_name} without a 2-D shape")
        data = np.asarray(state["data"], dtype=np.float64)
        dense = np.zeros(shape)
        if self.sparse_format == "coo":
            coords = state.get("coords") or (state["row"], state["col"])
            rows, cols = (np.asarray(c, dtype=np.int64) for c in coords)
        else:
            indptr = np.asarray(state["indptr"], dtype=np.int64)
            indices = np.asarray(state["indices"], dtype=np.int64)
            outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            rows, cols = (indices, outer) if self.sparse_format == "csc" else (outer, indices)
        # Duplicate entries add up, as in scipy.
        np.add.at(dense, (rows, cols), data)
        return dense


class _Unsupported:
    """Any other class a pickle names: created inert, so nothing from the file runs."""

    qualified_name = "unknown"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _ModelUnpickler(pickle.Unpickler):
    """Resolves numpy's reconstruction and safe builtins; stands in for everything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _REAL_GLOBALS:
            try:
                return super().find_class(module, name)
            except ModuleNotFoundError:
                # numpy 2 writes numpy._core, numpy 1 reads numpy.core (and the reverse).
                other = module.replace("numpy._core", "numpy.core", 1)
                if other == module:
                    other = module.replace("numpy.core", "numpy._core", 1)
                return super().find_class(other, name)
        qualified = f"{module}.{name}"
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyObject,), {"qualified_name": qualified})
        sparse_format = name.split("_", 1)[0]
        if module.startswith("scipy.sparse") and sparse_format in _SPARSE_FORMATS:
            attributes = {"qualified_name": qualified, "sparse_format": sparse_format}
            return type(name, (_SparseMatrix,), attributes)
        return type(name, (_Unsupported,), {"qualified_name": qualified})


def _read_pickle(path: Path) -> Mapping[str, Any]:
    try:
        with path.open("rb") as stream:
            # Python 2 pickles hold numpy's buffers as byte strings: latin1 maps them 1:1.
            loaded = _ModelUnpickler(stream, encoding="latin1").load()
    except OSError as exc:
        raise BadInputError(f"Cannot read the SMPL model file {path}: {exc}") from exc
    except Exception as exc:  # every way a byte stream can fail to be a pickle
        raise BadInputError(
            f"{path} is not a readable SMPL model pickle ({type(exc).__name__}: {exc})."
        ) from exc
    if not isinstance(loaded, dict):
        raise BadInputError(f"{path} holds a {type(loaded).__name__}, not an SMPL model.")
    return loaded


def _read_npz(path: Path) -> Mapping[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except OSError as exc:
        raise BadInputError(f"Cannot read the SMPL model file {path}: {exc}") from exc
    except (ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(f"{path} is not a readable SMPL model .npz ({exc}).") from exc


def _as_array(value: Any, key: str, source: str) -> np.ndarray:
    """A model entry as a float64 array. Raises BadInputError naming the entry."""
    if isinstance(value, _ChumpyObject):
        array = value.value()
        if array is None:
            raise BadInputError(
                f"{source}: {key} is a chumpy expression ({value.qualified_name}) that only "
                "chumpy can evaluate; use the model file as MPI-IS publishes it."
            )
        value = array
    elif isinstance(value, _SparseMatrix):
        try:
            value = value.toarray()
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise BadInputError(
                f"{source}: {key} is a damaged {value.qualified_name} ({exc})."
            ) from exc
    elif isinstance(value, _Unsupported):
        raise BadInputError(
            f"{source}: {key} is a {value.qualified_name} object, not an array."
        )
    try:
        # A copy: the model's arrays are made read-only, the caller's must not be.
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInputError(f"{source}: {key} is not a numeric array ({exc}).") from exc
