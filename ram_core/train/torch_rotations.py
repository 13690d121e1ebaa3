"""Rotation conversions in torch, differentiable, for training the motion models.

The numpy twins are in ``ram_core.body.rotations`` (same conventions: matrices act on column
vectors, quaternions are (w, x, y, z), 6D is the first two columns of the matrix); the
learned models' numpy inference uses those, so the formulas here are the same ones.
"""

from __future__ import annotations

import numpy as np
import torch

from ram_core.body.skeleton import PARENTS, REST_JOINTS_M


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6), the first column then the second."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


def rot6d_to_matrix(rot6d: torch.Tensor) -> torch.Tensor:
    """Gram-Schmidt on the two columns. (..., 6) -> (..., 3, 3)."""
    a1, a2 = rot6d[..., :3], rot6d[..., 3:]
    b1 = a1 / torch.linalg.vector_norm(a1, dim=-1, keepdim=True)
    a2 = a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1
    b2 = a2 / torch.linalg.vector_norm(a2, dim=-1, keepdim=True)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) (w, x, y, z), any norm -> (..., 3, 3)."""
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ]
    return torch.stack(rows, dim=-2)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) unit (w, x, y, z), w >= 0.

    Shepperd's method as in numpy: of the four candidate formulas, the one with the largest
    denominator (so no division by a value near zero, and finite gradients).
    """
    m00, m11, m22 = R[..., 0, 0], R[..., 1, 1], R[..., 2, 2]
    trace = m00 + m11 + m22
    r21, r12 = R[..., 2, 1], R[..., 1, 2]
    r02, r20 = R[..., 0, 2], R[..., 2, 0]
    r10, r01 = R[..., 1, 0], R[..., 0, 1]
    candidates = torch.stack(
        [
            torch.stack([1.0 + trace, r21 - r12, r02 - r20, r10 - r01], -1),
            torch.stack([r21 - r12, 1.0 + m00 - m11 - m22, r01 + r10, r02 + r20], -1),
            torch.stack([r02 - r20, r01 + r10, 1.0 - m00 + m11 - m22, r12 + r21], -1),
            torch.stack([r10 - r01, r02 + r20, r12 + r21, 1.0 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # (..., 4, 4): candidate c is 4 q_c q (up to scale), its c-th entry 4 q_c^2
    diagonal = torch.diagonal(candidates, dim1=-2, dim2=-1)
    best = diagonal.argmax(dim=-1, keepdim=True)
    index = best[..., None].expand(*best.shape, 4)
    q = torch.gather(candidates, -2, index)[..., 0, :]
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0.0, -q, q)


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Along the shorter arc: (..., 4), (..., 4), t broadcastable to (...) -> (..., 4).

    The cosine is kept a hair below 1, so the angle never reaches 0 and the weights'
    gradients stay finite; the weights are then within (angle)^2 of exact.
    """
    t = t[..., None]
    dot = (q0 * q1).sum(dim=-1, keepdim=True)
    q1 = torch.where(dot < 0.0, -q1, q1)
    omega = torch.acos(dot.abs().clamp(max=1.0 - 1e-6))
    sin_omega = torch.sin(omega)
    q = torch.sin((1.0 - t) * omega) / sin_omega * q0 + torch.sin(t * omega) / sin_omega * q1
    return q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)


def pelvis_centred_joints(rotations: torch.Tensor) -> torch.Tensor:
    """Forward kinematics on the built-in skeleton, pelvis at the origin (what the
    Predictor benchmark measures). (..., 24, 3, 3) local rotations -> (..., 24, 3)."""
    rest = torch.tensor(np.array(REST_JOINTS_M), dtype=rotations.dtype, device=rotations.device)
    world = [rotations[..., 0, :, :]]
    joints = [torch.zeros_like(rotations[..., 0, :, 0])]
    for j in range(1, len(PARENTS)):
        p = PARENTS[j]
        bone = rest[j] - rest[p]
        joints.append(joints[p] + world[p] @ bone)
        world.append(world[p] @ rotations[..., j, :, :])
    return torch.stack(joints, dim=-2)
