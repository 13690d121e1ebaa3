"""The shot's world frame from the people's feet (``ram_core.motion.world``)."""

from __future__ import annotations

import numpy as np
import pytest

from ram_core.body.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from ram_core.body.skeleton import JOINT_INDEX, REST_JOINTS_M, forward_kinematics
from ram_core.io.result import TRACK_ARRAYS
from ram_core.motion.world import FOOT_JOINTS, SOLE_HEIGHT_M, estimate_world

FEET = [JOINT_INDEX[name] for name in FOOT_JOINTS]

# SMPL rest axes (x left, y up, z front) -> a Z-up world, the person facing -Y (the camera).
SMPL_TO_WORLD = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))


def camera_pose(height: float, pitch_deg: float, roll_deg: float = 0.0):
    """world -> camera rotation and translation for a camera at (0, 0, height) looking
    along +Y, pitched (negative: down) and rolled."""
    level = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # world->camera
    pitch = axis_angle_to_matrix(np.array([np.radians(pitch_deg), 0.0, 0.0]))
    roll = axis_angle_to_matrix(np.array([0.0, 0.0, np.radians(roll_deg)]))
    rotation = roll @ pitch.T @ level
    return rotation, -rotation @ np.array([0.0, 0.0, height])


def people_table(rotation, translation, frames: int = 40, seed: int = 0, walking: bool = True):
    """People on the floor z = 0 at several depths, walking (feet planted by turns)."""
    rng = np.random.default_rng(seed)
    rows = []
    for person, (x, y) in enumerate([(-1.5, 4.0), (0.5, 6.5), (2.0, 9.0), (-0.5, 12.0)]):
        stance = rng.normal(0.0, 0.08, (23, 3))  # each person's own posture
        for frame in range(frames):
            # Feet planted by turns: the body moves in bursts.
            step = (frame // 8) * 0.3 if walking else 0.0
            body_world = SMPL_TO_WORLD @ axis_angle_to_matrix(
                np.array([0.0, np.pi + 0.3 * person, 0.0])
            )
            orient_cam = rotation @ body_world
            # Reconstruction noise: a few millimetres at the feet.
            pose = stance + rng.normal(0.0, 0.002, (23, 3))
            joints, _ = forward_kinematics(matrix_to_axis_angle(orient_cam), pose, np.zeros(3))
            # Place the lowest sole of the body on the floor at (x, y + step).
            joints_world = (joints - translation) @ rotation  # camera -> world
            lowest = (joints_world[FEET, 2] - SOLE_HEIGHT_M).min()
            offset_world = np.array([x, y + step, -lowest]) - joints_world[0] * [1, 1, 0]
            transl = rotation @ offset_world
            rows.append((person + 1, frame, matrix_to_axis_angle(orient_cam), pose, transl))
    table = {n: np.zeros((len(rows), *s), dtype=d) for n, (s, d) in TRACK_ARRAYS.items()}
    table["track_id"][:] = [r[0] for r in rows]
    table["frame"][:] = [r[1] for r in rows]
    table["global_orient"][:] = [r[2] for r in rows]
    table["body_pose"][:] = [r[3] for r in rows]
    table["transl"][:] = [r[4] for r in rows]
    table["recon_valid"][:] = True
    return table


@pytest.mark.parametrize(("height", "pitch", "roll"), [(1.85, -9.0, 0.0), (3.0, -20.0, 2.0)])
def test_the_floor_gives_the_camera_height_pitch_and_roll(height, pitch, roll):
    rotation, translation = camera_pose(height, pitch, roll)
    world = estimate_world(people_table(rotation, translation), REST_JOINTS_M, fps=25.0)
    assert world.method == "feet-plane" and world.contact_points >= 12
    assert world.camera_height_m == pytest.approx(height, abs=0.03)
    assert world.pitch_deg == pytest.approx(pitch, abs=0.5)
    assert world.roll_deg == pytest.approx(roll, abs=0.5)
    # Every person's lowest foot lands on z = 0 in the world frame.
    table = people_table(rotation, translation)
    joints, _ = forward_kinematics(table["global_orient"], table["body_pose"], table["transl"])
    world_joints = joints @ world.camera_to_world[:3, :3].T + world.camera_to_world[:3, 3]
    soles = (world_joints[:, FEET, 2] - SOLE_HEIGHT_M).min(axis=1)
    assert np.abs(soles).max() < 0.03


def test_without_contacts_the_bodies_give_up_and_their_feet_the_floor():
    rotation, translation = camera_pose(1.6, -5.0)
    table = people_table(rotation, translation, frames=2, walking=False)
    table["recon_valid"][:] = False  # nothing observed: no contact points
    world = estimate_world(table, REST_JOINTS_M, fps=25.0)
    assert world.method == "body-axis"
    # Rougher: a body's spine is only roughly vertical.
    assert world.camera_height_m == pytest.approx(1.6, abs=0.25)
    assert world.pitch_deg == pytest.approx(-5.0, abs=6.0)
