"""MediaPipe Pose world landmarks -> SMPL-24 joint rotations on the built-in skeleton.

MediaPipe's 33 world landmarks are metric and hip-centred, with the camera's axes: x right,
y down, z away from the camera. We checked this on a rendered frame
(``tests/fixtures/people_frame.png``): a person seen in profile facing the image's right has
the nose at larger x than the ears, and her left shoulder (the far one) at larger z; a
person turned toward the camera has the near shoulder at smaller z. So MediaPipe's world
axes are OpenCV's camera axes and the rotations found here are camera-frame rotations.

The solve, on the skeleton's T-pose rest (``ram_core.body.skeleton``):
1. landmark targets are scaled so their limb lengths and hip width match the skeleton's;
2. the pelvis frame comes from the hip line and the torso's up vector, the chest frame from
   the shoulder line and the same up vector; the chest's rotation relative to the pelvis is
   split evenly over spine1..3 (MediaPipe sees nothing in between);
3. collars swing toward the shoulders; optionally a few Levenberg-Marquardt steps fit the
   torso rotations and the pelvis position to the hip and shoulder targets, held near the
   analytic answer by a prior;
4. each limb bone gets the smallest rotation (swing) taking its rest direction to the
   target direction in its parent's frame; the hip and the shoulder additionally turn
   about the bone (twist) so that the knee / elbow bends about its own hinge axis (faded
   out for a nearly straight limb, where the twist is unobservable); the ankle turns so
   the heel, ankle and toe landmarks match the rest foot;
5. the neck points at the head joint implied by the ears, and the head turns to the face
   frame (ears, nose).
Joints with no information (hand roll, forearm twist) keep their rest rotation (the wrist
only swings toward the index/pinky midpoint).

Every step works on all of a frame's people at once (``fit_landmarks_batch``): the solve is
a few hundred small numpy calls, and a call on N people costs little more than on one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ram_core.body.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    rotation_between_vectors,
)
from ram_core.body.skeleton import (
    JOINT_INDEX,
    NUM_JOINTS,
    PARENTS,
    REST_JOINTS_M,
    forward_kinematics_matrices,
)

# MediaPipe Pose landmark indices.
LANDMARK_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip
LM: dict[str, int] = {name: i for i, name in enumerate(LANDMARK_NAMES)}
NUM_LANDMARKS = 33

# MediaPipe world axes -> camera axes (OpenCV). Identity: see the module docstring.
MEDIAPIPE_WORLD_TO_CAMERA = np.eye(3)

# SMPL joints that have a landmark of their own (used for the fit error and the scale).
DIRECT_JOINTS: tuple[str, ...] = (
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip

# Face points in the head joint's rest frame (SMPL axes, metres from the head joint), for an
# average adult head. The IK only uses the directions ear -> ear and mid-ears -> nose, so
# their exact size does not matter; the nose sits a little below the ear line.
FACE_POINTS_HEAD_FRAME: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.07, 0.115),
    "left_eye_inner": (0.015, 0.105, 0.095),
    "left_eye": (0.032, 0.105, 0.09),
    "left_eye_outer": (0.048, 0.105, 0.085),
    "right_eye_inner": (-0.015, 0.105, 0.095),
    "right_eye": (-0.032, 0.105, 0.09),
    "right_eye_outer": (-0.048, 0.105, 0.085),
    "left_ear": (0.075, 0.09, 0.0),
    "right_ear": (-0.075, 0.09, 0.0),
    "mouth_left": (0.025, 0.035, 0.1),
    "mouth_right": (-0.025, 0.035, 0.1),
}

# Where MediaPipe's heel and toe-tip landmarks sit for a foot at rest: the ankle joint's
# height above the sole, and how far behind / in front of it along the foot.
ANKLE_HEIGHT_M = 0.08
HEEL_BACK_M = 0.05
TOE_FORWARD_M = 0.2


@dataclass(frozen=True)
class IkConfig:
    """Settings of the landmark IK.

    refine_torso: run the least-squares torso fit after the analytic solve.
    prior_m_per_rad: weight of the prior that keeps the torso fit near the analytic answer;
        a 1 rad departure costs as much as this many metres of joint error.
    refine_steps: Levenberg-Marquardt steps of the torso fit (each one Jacobian and one
        trial). MEASURED_REFINE
    hinge_twist_from_deg, hinge_twist_full_deg: the hip/shoulder twist that makes the knee /
        elbow a hinge is undefined for a straight limb; it fades in between these bend angles.
    min_visibility: landmarks below this count half in the scale and fit error.
    """

    refine_torso: bool = True
    prior_m_per_rad: float = 0.05
    refine_steps: int = 8
    hinge_twist_from_deg: float = 8.0
    hinge_twist_full_deg: float = 20.0
    min_visibility: float = 0.5


@dataclass(frozen=True)
class IkResult:
    """What the IK found, all in camera axes.

    global_orient: (3,) and body_pose: (23, 3) axis-angle, SMPL convention.
    joints_m: (24, 3) posed skeleton joints in the landmarks' hip-centred frame, at the
        skeleton's own size (landmarks divided by ``scale``).
    pelvis_m: (3,) the pelvis position in that frame (== joints_m[0]).
    scale: landmark size / skeleton size (1.0 for a person built like the skeleton).
    fit_error_m: visibility-weighted mean distance of the directly observed joints to
        their scaled targets.
    """

    global_orient: np.ndarray
    body_pose: np.ndarray
    joints_m: np.ndarray
    pelvis_m: np.ndarray
    scale: float
    fit_error_m: float


def _unit(v: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis; a zero vector stays zero."""
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product over the last axis. (..., 3), (..., 3) -> (...)."""
    return np.einsum("...i,...i->...", a, b)


def _apply(R: np.ndarray, v: np.ndarray) -> np.ndarray:
    """R @ v for stacks of matrices and vectors. (..., 3, 3), (..., 3) -> (..., 3)."""
    return np.einsum("...ij,...j->...i", R, v)


def _apply_transposed(R: np.ndarray, v: np.ndarray) -> np.ndarray:
    """R.T @ v for stacks. (..., 3, 3), (..., 3) -> (..., 3)."""
    return np.einsum("...ji,...j->...i", R, v)


def _frame_from_side_and_up(side: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3) with columns (left, up, front) from left-pointing side
    vectors and approximate up vectors (SMPL's x, y, z)."""
    x = _unit(side)
    y = _unit(up - _dot(up, x)[..., None] * x)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def _fractional_rotation(R: np.ndarray, fraction: float) -> np.ndarray:
    return axis_angle_to_matrix(matrix_to_axis_angle(R) * fraction)


def _hinge_angle(rest_dir: np.ndarray, hinge: np.ndarray, target_dir: np.ndarray) -> np.ndarray:
    """Signed angles about ``hinge`` between the projections of the two directions."""
    a = rest_dir - _dot(rest_dir, hinge)[..., None] * hinge
    b = target_dir - _dot(target_dir, hinge)[..., None] * hinge
    return np.arctan2(_dot(np.cross(a, b), hinge), _dot(a, b))


def _hinge_then_correct(
    rest_dir: np.ndarray, hinge: np.ndarray, target_dir: np.ndarray
) -> np.ndarray:
    """Local rotations (..., 3, 3): turn about the hinge, then the smallest turn onto the
    target."""
    angle = _hinge_angle(rest_dir, hinge, target_dir)
    about_hinge = axis_angle_to_matrix(hinge * angle[..., None])
    return rotation_between_vectors(_apply(about_hinge, rest_dir), target_dir) @ about_hinge


def _hinge_twist(u1: np.ndarray, u2: np.ndarray, h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Twists beta (N,) about u1 (of the upper frame) after which v (N, 3), seen from the
    upper frame, lies on the circle that turning u2 about h sweeps, bent the natural way.

    Seen from a frame turned by beta about u1, v turns by -beta; a turn about h keeps the
    h-component of u2, so we need (Rot(u1, -beta) v) . h == u2 . h, i.e.
    A cos(beta) + B sin(beta) == C with the A, B, C below. Of the two solutions the one
    that bends the lower bone forward about the hinge wins (the first on a tie).
    """
    v_par = v @ u1
    v_perp = v - v_par[:, None] * u1
    A = v_perp @ h
    B = -(np.cross(u1, v_perp) @ h)
    C = float(u2 @ h) - v_par * float(u1 @ h)
    radius = np.hypot(A, B)
    reachable = radius >= 1e-9
    base = np.arctan2(B, A)
    spread = np.arccos(np.clip(C / np.where(reachable, radius, 1.0), -1.0, 1.0))
    candidates = np.stack([base + spread, base - spread], axis=1)  # (N, 2)
    turned = _apply(axis_angle_to_matrix(-u1 * candidates[..., None]), v[:, None, :])
    flex = _hinge_angle(u2, h, turned)
    best = np.where(flex[:, 1] > flex[:, 0], candidates[:, 1], candidates[:, 0])
    return np.where(reachable, np.arctan2(np.sin(best), np.cos(best)), 0.0)


def rest_foot_points(rest: np.ndarray, ankle: int, foot: int) -> tuple[np.ndarray, np.ndarray]:
    """Heel and toe-tip landmarks relative to the ankle joint in its rest frame, (3,) each:
    on the floor under the ankle, behind it and in front along the rest foot's heading."""
    sole = rest[foot] - rest[ankle]
    sole[1] = 0.0
    sole = _unit(sole)
    under_ankle = np.array([0.0, -ANKLE_HEIGHT_M, 0.0])
    return under_ankle - HEEL_BACK_M * sole, under_ankle + TOE_FORWARD_M * sole


# Joints placed on a landmark of their own, and the landmark.
_DIRECT_TARGETS = [
    (JOINT_INDEX[f"{side}_{joint}"], LM[f"{side}_{joint}"])
    for side in ("left", "right")
    for joint in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")
] + [(JOINT_INDEX[f"{side}_foot"], LM[f"{side}_foot_index"]) for side in ("left", "right")]
_DIRECT_TARGET_JOINTS = np.array([j for j, _ in _DIRECT_TARGETS])
_DIRECT_TARGET_LANDMARKS = np.array([lm for _, lm in _DIRECT_TARGETS])


def landmark_targets(world_cam: np.ndarray) -> np.ndarray:
    """Where each SMPL joint should be, from landmarks in camera axes. (..., 33, 3) ->
    (..., 24, 3).

    Joints without a landmark get a stand-in that the solve only uses as a direction:
    feet at the toe landmarks, hands between index and pinky, spine and neck on the line
    from mid-hips to mid-shoulders, head at the mid-ears.
    """
    w = np.asarray(world_cam, dtype=np.float64)
    t = np.zeros((*w.shape[:-2], NUM_JOINTS, 3))
    t[..., _DIRECT_TARGET_JOINTS, :] = w[..., _DIRECT_TARGET_LANDMARKS, :]
    for side in ("left", "right"):
        t[..., JOINT_INDEX[f"{side}_hand"], :] = 0.5 * (
            w[..., LM[f"{side}_index"], :] + w[..., LM[f"{side}_pinky"], :]
        )
    mid_hip = 0.5 * (w[..., LM["left_hip"], :] + w[..., LM["right_hip"], :])
    mid_shoulder = 0.5 * (w[..., LM["left_shoulder"], :] + w[..., LM["right_shoulder"], :])
    t[..., JOINT_INDEX["pelvis"], :] = mid_hip
    for name, f in (("spine1", 0.25), ("spine2", 0.45), ("spine3", 0.7), ("neck", 1.0)):
        t[..., JOINT_INDEX[name], :] = mid_hip + f * (mid_shoulder - mid_hip)
    for side in ("left", "right"):
        t[..., JOINT_INDEX[f"{side}_collar"], :] = t[..., JOINT_INDEX["spine3"], :]
    t[..., JOINT_INDEX["head"], :] = 0.5 * (w[..., LM["left_ear"], :] + w[..., LM["right_ear"], :])
    return t


# The direct joints' indices in the skeleton and their landmarks' indices.
DIRECT_JOINT_IDS = np.array([JOINT_INDEX[name] for name in DIRECT_JOINTS])
DIRECT_LANDMARK_IDS = np.array([LM[name] for name in DIRECT_JOINTS])


def _weights(visibility: np.ndarray, config: IkConfig) -> np.ndarray:
    """(N, 33) visibility -> (N, 24) weights of the directly observed joints (0 elsewhere)."""
    weights = np.zeros((len(visibility), NUM_JOINTS))
    v = visibility[:, DIRECT_LANDMARK_IDS]
    weights[:, DIRECT_JOINT_IDS] = np.where(v >= config.min_visibility, v, 0.5 * v)
    return weights


# Lengths no pose changes: the limbs' bones and the hip width.
_FIXED_LENGTH_PAIRS = np.array(
    [
        (JOINT_INDEX[f"{s}_{a}"], JOINT_INDEX[f"{s}_{b}"])
        for s in ("left", "right")
        for a, b in (("hip", "knee"), ("knee", "ankle"), ("shoulder", "elbow"), ("elbow", "wrist"))
    ]
    + [(JOINT_INDEX["left_hip"], JOINT_INDEX["right_hip"])]
)


def _skeleton_scale(targets: np.ndarray, weights: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Landmark size / skeleton size (N,) from the lengths no pose changes; 1 where the
    landmarks give none."""
    a, b = _FIXED_LENGTH_PAIRS[:, 0], _FIXED_LENGTH_PAIRS[:, 1]
    w = np.minimum(weights[:, a], weights[:, b])
    num = np.sum(w * np.linalg.norm(targets[:, a] - targets[:, b], axis=-1), axis=1)
    den = w @ np.linalg.norm(rest[a] - rest[b], axis=-1)
    usable = (den > 1e-9) & (num > 1e-9)
    return np.where(usable, num / np.where(usable, den, 1.0), 1.0)


J = JOINT_INDEX
# The torso fit: these joints' rotations and the pelvis position, on these joints' targets.
_TORSO_FREE = (0, J["spine1"], J["spine2"], J["spine3"], J["left_collar"], J["right_collar"])
_TORSO_FITTED = (J["left_hip"], J["right_hip"], J["left_shoulder"], J["right_shoulder"])


class _Solver:
    """The local rotations (N, 24, 3, 3) of N people while the solve fills them in, root
    first, with each settled joint's world rotation and position kept up to date."""

    def __init__(self, targets: np.ndarray, rest: np.ndarray, config: IkConfig):
        self.targets = targets
        self.rest = rest
        self.config = config
        count = len(targets)
        self.local = np.broadcast_to(np.eye(3), (count, NUM_JOINTS, 3, 3)).copy()
        self.world = self.local.copy()
        self.joints = np.zeros((count, NUM_JOINTS, 3))
        self.pelvis = np.zeros((count, 3))

    def _position(self, joint: int) -> np.ndarray:
        """Where ``joint`` sits (N, 3), from its settled parent."""
        parent = PARENTS[joint]
        bone = self.rest[joint] - self.rest[parent]
        return self.joints[:, parent] + self.world[:, parent] @ bone

    def _settle(self, *joints: int) -> None:
        """World rotation and position of each joint from its (settled) parent, in order."""
        for joint in joints:
            if joint == 0:
                self.world[:, 0] = self.local[:, 0]
                self.joints[:, 0] = self.pelvis
                continue
            self.joints[:, joint] = self._position(joint)
            self.world[:, joint] = self.world[:, PARENTS[joint]] @ self.local[:, joint]

    def solve_torso(self) -> None:
        tg, rest = self.targets, self.rest

        def up_of(points: np.ndarray) -> np.ndarray:
            def middle(a: str, b: str) -> np.ndarray:
                return 0.5 * (points[..., J[a], :] + points[..., J[b], :])

            return middle("left_shoulder", "right_shoulder") - middle("left_hip", "right_hip")

        rest_up, up = up_of(rest), up_of(tg)
        rest_pelvis = _frame_from_side_and_up(rest[J["left_hip"]] - rest[J["right_hip"]], rest_up)
        pelvis = _frame_from_side_and_up(tg[:, J["left_hip"]] - tg[:, J["right_hip"]], up)
        root = pelvis @ rest_pelvis.T
        rest_chest = _frame_from_side_and_up(
            rest[J["left_shoulder"]] - rest[J["right_shoulder"]], rest_up
        )
        chest = _frame_from_side_and_up(tg[:, J["left_shoulder"]] - tg[:, J["right_shoulder"]], up)
        chest_rel = np.swapaxes(root, -1, -2) @ chest @ rest_chest.T
        self.local[:, 0] = root
        step = _fractional_rotation(chest_rel, 1.0 / 3.0)
        for name in ("spine1", "spine2", "spine3"):
            self.local[:, J[name]] = step
        # Put the mid-hips of the skeleton on the targets' mid-hips.
        rest_mid_hip = 0.5 * (rest[J["left_hip"]] + rest[J["right_hip"]]) - rest[0]
        self.pelvis = 0.5 * (tg[:, J["left_hip"]] + tg[:, J["right_hip"]]) - root @ rest_mid_hip
        self._settle(0, J["spine1"], J["spine2"], J["spine3"])
        for side in ("left", "right"):
            self._swing(J[f"{side}_collar"], J[f"{side}_shoulder"])

    def _torso_fit_positions(self, rotations: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
        """Positions (M, 4, 3) of the fitted joints for the free joints' local rotations
        (M, 6, 3, 3) and pelvis positions (M, 3): forward kinematics on that chain only."""
        rest = self.rest
        root, spine1, spine2, spine3 = (rotations[:, k] for k in range(4))

        def step(position, world, child, parent):
            return position + world @ (rest[child] - rest[parent])

        hips = [step(pelvis, root, J[f"{s}_hip"], 0) for s in ("left", "right")]
        world = root @ spine1
        position = step(pelvis, root, J["spine1"], 0)
        position, world = step(position, world, J["spine2"], J["spine1"]), world @ spine2
        position, world = step(position, world, J["spine3"], J["spine2"]), world @ spine3
        shoulders = []
        for k, side in ((4, "left"), (5, "right")):
            collar, shoulder = J[f"{side}_collar"], J[f"{side}_shoulder"]
            collar_position = step(position, world, collar, J["spine3"])
            shoulders.append(step(collar_position, world @ rotations[:, k], shoulder, collar))
        return np.stack([*hips, *shoulders], axis=1)

    def refine_torso(self, weights: np.ndarray) -> None:
        """Levenberg-Marquardt on the root, spine1..3, collars and the pelvis position of
        every person at once: the hips and shoulders onto their targets, held near the
        analytic answer by a prior. ``config.refine_steps`` trial steps, forward-difference
        Jacobians (every column of every person in one batched evaluation)."""
        free, fitted = list(_TORSO_FREE), list(_TORSO_FITTED)
        sqrt_w = np.sqrt(weights[:, fitted])[..., None]  # (N, 4, 1)
        active = sqrt_w.sum(axis=(1, 2)) > 0.0
        if not np.any(active):
            return
        count = len(weights)
        n_rot = 3 * len(free)
        x0 = np.concatenate(
            [matrix_to_axis_angle(self.local[:, free]).reshape(count, n_rot), self.pelvis], axis=1
        )
        prior = self.config.prior_m_per_rad
        targets = self.targets[:, fitted]

        def residuals(xs: np.ndarray, rows: np.ndarray) -> np.ndarray:
            """(N, K, n) parameter vectors, K per person -> (N, K, m) residuals."""
            k = xs.shape[1]
            flat = xs.reshape(-1, xs.shape[-1])
            rotations = axis_angle_to_matrix(flat[:, :n_rot].reshape(-1, len(free), 3))
            positions = self._torso_fit_positions(rotations, flat[:, n_rot:])
            positions = positions.reshape(len(xs), k, len(fitted), 3)
            fit = (sqrt_w[rows, None] * (positions - targets[rows, None])).reshape(len(xs), k, -1)
            return np.concatenate([fit, prior * (xs[..., :n_rot] - x0[rows, None, :n_rot])], -1)

        rows = np.flatnonzero(active)
        x = x0[rows]
        finite_step = 1e-7
        shifted_by = finite_step * np.eye(x.shape[1])
        damping = np.full(len(rows), 1e-3)
        r = residuals(x[:, None], rows)[:, 0]
        cost = np.sum(r**2, axis=1)
        for _ in range(self.config.refine_steps):
            evaluated = residuals(x[:, None] + shifted_by[None], rows)
            jac = np.swapaxes((evaluated - r[:, None]) / finite_step, 1, 2)  # (N, m, n)
            normal = np.swapaxes(jac, 1, 2) @ jac
            gradient = np.einsum("nmi,nm->ni", jac, r)
            diagonal = np.einsum("nii->ni", normal)
            lifted = normal + (damping[:, None] * np.maximum(diagonal, 1e-9))[:, :, None] * np.eye(
                x.shape[1]
            )
            delta = np.linalg.solve(lifted, -gradient[..., None])[..., 0]
            trial = x + delta
            r_trial = residuals(trial[:, None], rows)[:, 0]
            cost_trial = np.sum(r_trial**2, axis=1)
            better = cost_trial < cost
            x = np.where(better[:, None], trial, x)
            r = np.where(better[:, None], r_trial, r)
            cost = np.where(better, cost_trial, cost)
            damping = np.where(better, damping / 3.0, damping * 4.0)
        solved = x0.copy()
        solved[rows] = x
        self.local[:, free] = axis_angle_to_matrix(solved[:, :n_rot].reshape(count, -1, 3))
        self.pelvis = solved[:, n_rot:]
        self._settle(*free)

    def _swing(self, joint: int, child: int) -> None:
        """Turn ``joint`` by the smallest rotation pointing its bone to ``child`` at the
        target, then settle it."""
        position = self._position(joint)
        self._point(joint, self.rest[child] - self.rest[joint], self.targets[:, child] - position)

    def _point(self, joint: int, rest_dir: np.ndarray, target_dir: np.ndarray) -> None:
        """Smallest rotation of ``joint`` taking ``rest_dir`` (its rest frame) to
        ``target_dir`` (N, 3, camera axes); a zero-length target leaves the joint as it is."""
        reachable = np.linalg.norm(target_dir, axis=-1) >= 1e-9
        wanted = _apply_transposed(self.world[:, PARENTS[joint]], target_dir)
        wanted = np.where(reachable[:, None], wanted, rest_dir)
        turned = rotation_between_vectors(rest_dir, wanted)
        self.local[:, joint] = np.where(reachable[:, None, None], turned, self.local[:, joint])
        self._settle(joint)

    def solve_foot(self, ankle: int, foot: int, heel: np.ndarray, toe: np.ndarray) -> None:
        """Turn the ankle so the foot's heel -> toe line and its heel -> ankle line match.

        heel, toe: (N, 3) the landmarks, scaled like the targets (the ankle's target is its
        landmark). MediaPipe's toe landmark is at the tip of the toes on the floor while
        SMPL's foot joint is above the ball of the foot, so we match the sole rather than
        the ankle -> foot bone. The rest sole is flat on the floor (``rest_foot_points``).
        """
        rest_heel, rest_toe = rest_foot_points(self.rest, ankle, foot)
        rest_frame = _frame_from_side_and_up(rest_toe - rest_heel, -rest_heel)
        frame = _frame_from_side_and_up(toe - heel, self.targets[:, ankle] - heel)
        parent_world = self.world[:, PARENTS[ankle]]
        self.local[:, ankle] = np.swapaxes(parent_world, -1, -2) @ frame @ rest_frame.T
        self._settle(ankle, foot)

    def solve_limb(self, upper: int, middle: int, lower: int, hinge_local: np.ndarray) -> None:
        """Two-bone chain upper -> middle -> lower with a hinge at ``middle``.

        hinge_local: (3,) the middle joint's flexion axis in its rest frame (positive
        rotation about it is a natural bend). The upper joint swings to the middle target,
        then twists about its bone so the lower bone can be reached by turning about the
        hinge alone; the middle joint turns about the hinge, plus the smallest correction
        when the target is off the hinge's circle.
        """
        self._swing(upper, middle)
        # In the upper joint's frame (the middle joint's parent frame): u1 the upper bone at
        # rest, u2 the lower bone at rest, v the wanted lower-bone direction.
        u1 = _unit(self.rest[middle] - self.rest[upper])
        u2 = _unit(self.rest[lower] - self.rest[middle])
        h = _unit(hinge_local)
        target_dir = self.targets[:, lower] - self.targets[:, middle]
        reachable = np.linalg.norm(target_dir, axis=-1) >= 1e-9
        target_dir = np.where(reachable[:, None], _unit(target_dir), 0.0)
        v = _apply_transposed(self.world[:, upper], target_dir)
        v_par = v @ u1
        v_perp = v - v_par[:, None] * u1
        bend = np.degrees(np.arctan2(np.linalg.norm(v_perp, axis=-1), v_par))
        cfg = self.config
        fade = np.clip(
            (bend - cfg.hinge_twist_from_deg)
            / (cfg.hinge_twist_full_deg - cfg.hinge_twist_from_deg),
            0.0,
            1.0,
        )
        beta = np.where(reachable, _hinge_twist(u1, u2, h, v) * fade, 0.0)
        self.local[:, upper] = self.local[:, upper] @ axis_angle_to_matrix(u1 * beta[:, None])
        self._settle(upper)
        v = _apply_transposed(self.world[:, upper], target_dir)
        bent = _hinge_then_correct(u2, h, np.where(reachable[:, None], v, u2))
        self.local[:, middle] = np.where(reachable[:, None, None], bent, self.local[:, middle])
        self._settle(middle, lower)

    def solve_head(self, face_cam: dict[str, np.ndarray]) -> None:
        """The neck points at the head joint implied by the ears; the head turns to the face.

        face_cam: the ears' and the nose's landmarks (N, 3) each. Where the neck's swing
        leaves nothing to do (a face looking straight ahead above an upright chest) the neck
        stays at rest, and the head takes the whole face turn.
        """
        fp = {k: np.asarray(v) for k, v in FACE_POINTS_HEAD_FRAME.items()}
        rest_face = self._face_frame(fp["left_ear"], fp["right_ear"], fp["nose"])
        face = self._face_frame(face_cam["left_ear"], face_cam["right_ear"], face_cam["nose"])
        head_world = face @ rest_face.T
        mid_ear_offset = 0.5 * (fp["left_ear"] + fp["right_ear"])
        mid_ear = 0.5 * (face_cam["left_ear"] + face_cam["right_ear"])
        self.targets[:, J["head"]] = mid_ear - head_world @ mid_ear_offset
        self._swing(J["neck"], J["head"])
        self.local[:, J["head"]] = np.swapaxes(self.world[:, J["neck"]], -1, -2) @ head_world
        self._settle(J["head"])

    @staticmethod
    def _face_frame(left_ear: np.ndarray, right_ear: np.ndarray, nose: np.ndarray) -> np.ndarray:
        """Columns (left, up, front) from the ear line and the nose's forward direction."""
        x = _unit(left_ear - right_ear)
        forward = nose - 0.5 * (left_ear + right_ear)
        z = _unit(forward - _dot(forward, x)[..., None] * x)
        return np.stack([x, np.cross(z, x), z], axis=-1)


# Knee: positive rotation about +x swings the shin backward. Elbows: the left forearm
# (along +x) bends forward about -y, the right one (along -x) about +y.
_HINGES = {
    "left_knee": np.array([1.0, 0.0, 0.0]),
    "right_knee": np.array([1.0, 0.0, 0.0]),
    "left_elbow": np.array([0.0, -1.0, 0.0]),
    "right_elbow": np.array([0.0, 1.0, 0.0]),
}


def fit_landmarks_batch(
    world_m: np.ndarray,
    visibility: np.ndarray,
    config: IkConfig | None = None,
    rest_joints: np.ndarray = REST_JOINTS_M,
) -> list[IkResult]:
    """Solve SMPL-24 rotations for N people at once (each alone: the batch only shares the
    numpy calls).

    world_m: (N, 33, 3) metres, MediaPipe world axes (hip-centred); visibility: (N, 33).
    Raises ValueError on wrong shapes or non-finite landmarks.
    """
    config = config or IkConfig()
    world_m = np.asarray(world_m, dtype=np.float64)
    visibility = np.asarray(visibility, dtype=np.float64)
    if (
        world_m.ndim != 3
        or world_m.shape[1:] != (NUM_LANDMARKS, 3)
        or visibility.shape != world_m.shape[:2]
    ):
        raise ValueError(
            f"expected (N, 33, 3) landmarks and (N, 33) visibility, got {world_m.shape} and "
            f"{visibility.shape}"
        )
    if not np.all(np.isfinite(world_m)):
        raise ValueError("landmarks contain non-finite values")
    if len(world_m) == 0:
        return []
    world_cam = world_m @ MEDIAPIPE_WORLD_TO_CAMERA.T
    rest = np.asarray(rest_joints, dtype=np.float64)
    raw_targets = landmark_targets(world_cam)
    weights = _weights(np.clip(visibility, 0.0, 1.0), config)
    scale = _skeleton_scale(raw_targets, weights, rest)
    targets = raw_targets / scale[:, None, None]
    scaled = world_cam / scale[:, None, None]

    solver = _Solver(targets, rest, config)
    solver.solve_torso()
    if config.refine_torso:
        solver.refine_torso(weights)
    for side in ("left", "right"):
        solver.solve_limb(
            J[f"{side}_hip"], J[f"{side}_knee"], J[f"{side}_ankle"], _HINGES[f"{side}_knee"]
        )
        solver.solve_foot(
            J[f"{side}_ankle"],
            J[f"{side}_foot"],
            scaled[:, LM[f"{side}_heel"]],
            scaled[:, LM[f"{side}_foot_index"]],
        )
        solver.solve_limb(
            J[f"{side}_shoulder"], J[f"{side}_elbow"], J[f"{side}_wrist"], _HINGES[f"{side}_elbow"]
        )
        solver._swing(J[f"{side}_wrist"], J[f"{side}_hand"])
        solver._settle(J[f"{side}_hand"])
    solver.solve_head({k: scaled[:, LM[k]] for k in ("left_ear", "right_ear", "nose")})

    joints, _ = forward_kinematics_matrices(solver.local, solver.pelvis - rest[0], rest)
    pose_aa = matrix_to_axis_angle(solver.local)
    err = np.linalg.norm(joints - targets, axis=-1)
    fit_error = np.sum(weights * err, axis=1) / np.maximum(np.sum(weights, axis=1), 1e-9)
    return [
        IkResult(
            global_orient=pose_aa[n, 0],
            body_pose=pose_aa[n, 1:],
            joints_m=joints[n],
            pelvis_m=joints[n, 0].copy(),
            scale=float(scale[n]),
            fit_error_m=float(fit_error[n]),
        )
        for n in range(len(world_m))
    ]


def fit_landmarks(
    world_m: np.ndarray,
    visibility: np.ndarray,
    config: IkConfig | None = None,
    rest_joints: np.ndarray = REST_JOINTS_M,
) -> IkResult:
    """Solve SMPL-24 rotations from one person's MediaPipe world landmarks.

    world_m: (33, 3) metres, MediaPipe world axes (hip-centred); visibility: (33,).
    Raises ValueError on wrong shapes or non-finite landmarks.
    """
    world_m = np.asarray(world_m, dtype=np.float64)
    visibility = np.asarray(visibility, dtype=np.float64)
    if world_m.shape != (NUM_LANDMARKS, 3) or visibility.shape != (NUM_LANDMARKS,):
        raise ValueError(
            f"expected (33, 3) landmarks and (33,) visibility, got {world_m.shape} and "
            f"{visibility.shape}"
        )
    return fit_landmarks_batch(world_m[None], visibility[None], config, rest_joints)[0]


def landmarks_to_smpl(
    world_m: np.ndarray, visibility: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """MediaPipe world landmarks -> (global_orient (3,), body_pose (23, 3), fit_error_m).

    world_m: (33, 3) metres, MediaPipe world axes; visibility: (33,). The orientation is in
    the camera frame (OpenCV axes), SMPL convention, on the built-in skeleton.
    """
    result = fit_landmarks(world_m, visibility)
    return result.global_orient, result.body_pose, result.fit_error_m


def synthetic_landmarks(
    global_orient: np.ndarray,
    body_pose: np.ndarray,
    rest_joints: np.ndarray = REST_JOINTS_M,
) -> np.ndarray:
    """A MediaPipe-like landmark layout from a posed skeleton: (33, 3), hip-centred,
    MediaPipe world axes. Body landmarks sit on the joints; face, hand and foot landmarks
    are placed from their joints' frames (``FACE_POINTS_HEAD_FRAME``, index and pinky either
    side of the hand joint, heel and toe tip on the sole under the ankle).
    """
    pose_aa = np.concatenate([np.asarray(global_orient)[None], np.asarray(body_pose)])
    local = axis_angle_to_matrix(pose_aa)
    joints, world = forward_kinematics_matrices(local, np.zeros(3), rest_joints)
    J = JOINT_INDEX
    out = np.zeros((NUM_LANDMARKS, 3))
    for side in ("left", "right"):
        for joint in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            out[LM[f"{side}_{joint}"]] = joints[J[f"{side}_{joint}"]]
        ankle = J[f"{side}_ankle"]
        heel, toe = rest_foot_points(rest_joints, ankle, J[f"{side}_foot"])
        out[LM[f"{side}_heel"]] = joints[ankle] + world[ankle] @ heel
        out[LM[f"{side}_foot_index"]] = joints[ankle] + world[ankle] @ toe
        wrist, hand = joints[J[f"{side}_wrist"]], joints[J[f"{side}_hand"]]
        across = world[J[f"{side}_wrist"]] @ np.array([0.0, 0.0, 0.03])  # palm width
        out[LM[f"{side}_index"]] = hand + across
        out[LM[f"{side}_pinky"]] = hand - across
        out[LM[f"{side}_thumb"]] = wrist + 0.5 * (hand - wrist) + 1.5 * across
    head, head_rot = joints[J["head"]], world[J["head"]]
    for name, offset in FACE_POINTS_HEAD_FRAME.items():
        out[LM[name]] = head + head_rot @ np.asarray(offset)
    mid_hip = 0.5 * (out[LM["left_hip"]] + out[LM["right_hip"]])
    return (out - mid_hip) @ MEDIAPIPE_WORLD_TO_CAMERA
