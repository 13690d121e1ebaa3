"""Foot contact and the foot clean-up (``ram_core.motion.feet``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from test_world import camera_pose, people_table

from ram_core.body.skeleton import JOINT_INDEX, REST_JOINTS_M, forward_kinematics
from ram_core.motion.feet import (
    LEG_JOINTS,
    FootConfig,
    pin_targets,
    plant_feet,
    runs,
    tidy_contacts,
    two_bone_ik,
)

FPS = 25.0
FOCAL_PX = 800.0
ANKLES = [leg[2] for leg in LEG_JOINTS]


def camera_to_world(rotation, translation) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, :3] = rotation.T
    matrix[:3, 3] = -rotation.T @ translation
    return matrix


def jittered_in_depth(table, sigma_m: float, seed: int = 1):
    """The table with each row's body moved along its line of sight by N(0, sigma): what a
    reconstruction from one view does to a person standing still."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in table.items()}
    pelvis = out["transl"] + REST_JOINTS_M[0]
    sight = pelvis / np.linalg.norm(pelvis, axis=1, keepdims=True)
    out["transl"] = out["transl"] + rng.normal(0.0, sigma_m, (len(pelvis), 1)) * sight
    return out


def joints_of(table) -> np.ndarray:
    joints, _ = forward_kinematics(table["global_orient"], table["body_pose"], table["transl"])
    return joints


def pixels(joints: np.ndarray) -> np.ndarray:
    return FOCAL_PX * joints[..., :2] / joints[..., 2:]


def test_runs_and_tidying():
    flags = np.array([1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1], dtype=bool)
    assert runs(flags) == [(0, 2), (3, 6), (9, 10), (11, 14)]
    tidy = tidy_contacts(flags, fill_gap=1, min_frames=3)
    # The one-frame gaps close; the lone frame 9 joins 11..13 across its gap; nothing short.
    assert runs(tidy) == [(0, 6), (9, 14)]
    assert not tidy_contacts(np.array([1, 1, 0, 0, 1], dtype=bool), 0, 3).any()


def test_pin_targets_hold_the_median_and_ease_in_and_out():
    positions = np.zeros((12, 3))
    positions[:, 0] = np.arange(12) * 0.1
    contacts = np.zeros(12, dtype=bool)
    contacts[4:8] = True
    targets, weights = pin_targets(positions, contacts, ramp_frames=2)
    np.testing.assert_allclose(targets[4:8, 0], 0.55)
    np.testing.assert_allclose(weights, [0, 0, 1 / 3, 2 / 3, 1, 1, 1, 1, 2 / 3, 1 / 3, 0, 0])
    np.testing.assert_allclose(targets[weights == 0], positions[weights == 0])


def test_two_bone_ik_reaches_what_a_leg_can_reach():
    rng = np.random.default_rng(3)
    count = 200
    hip = rng.normal(0.0, 1.0, (count, 3))
    knee = hip + _random_directions(rng, count) * 0.42
    ankle = knee + _random_directions(rng, count) * 0.40
    target = hip + _random_directions(rng, count) * rng.uniform(0.1, 0.8, (count, 1))
    left = _random_directions(rng, count)
    swing, bend = two_bone_ik(hip, knee, ankle, target, left)
    new_knee = hip + np.einsum("tij,tj->ti", swing, knee - hip)
    new_ankle = new_knee + np.einsum("tij,tj->ti", swing @ bend, ankle - knee)
    np.testing.assert_allclose(new_ankle, target, atol=1e-6)
    # The bones keep their lengths.
    np.testing.assert_allclose(np.linalg.norm(new_knee - hip, axis=1), 0.42)
    np.testing.assert_allclose(np.linalg.norm(new_ankle - new_knee, axis=1), 0.40)
    # Out of reach: the leg straightens toward the target.
    far = hip + _random_directions(rng, count) * 1.5
    swing, bend = two_bone_ik(hip, knee, ankle, far, left)
    new_ankle = hip + np.einsum("tij,tj->ti", swing, knee - hip)
    new_ankle += np.einsum("tij,tj->ti", swing @ bend, ankle - knee)
    towards = (far - hip) / 1.5
    np.testing.assert_allclose(new_ankle, hip + towards * 0.82, atol=1e-3)


def test_a_straight_leg_bends_its_knee_backwards():
    hip = np.array([[0.0, 0.0, 0.0]])
    knee = np.array([[0.0, -0.4, 0.0]])
    ankle = np.array([[0.0, -0.8, 0.0]])
    left = np.array([[1.0, 0.0, 0.0]])  # SMPL: +x is the body's left, +z its front
    swing, _ = two_bone_ik(hip, knee, ankle, np.array([[0.0, -0.6, 0.0]]), left)
    new_knee = np.einsum("ij,j->i", swing[0], knee[0] - hip[0])
    assert new_knee[2] > 0.1  # the knee comes forward, so the shin bends back


def test_jitter_in_depth_is_taken_out_of_planted_feet_without_moving_the_image():
    rotation, translation = camera_pose(1.7, -10.0)
    truth = people_table(rotation, translation, frames=32, walking=False)
    noisy = jittered_in_depth(truth, sigma_m=0.06)
    world = camera_to_world(rotation, translation)
    cleaned = plant_feet(noisy, world, FOCAL_PX, FPS)

    contacts = cleaned["foot_contact"]
    assert contacts.mean() > 0.9
    before = joints_of(noisy) @ world[:3, :3].T + world[:3, 3]
    after = joints_of(cleaned) @ world[:3, :3].T + world[:3, 3]
    worst_before, worst_after = 0.0, 0.0
    for track in np.unique(cleaned["track_id"]):
        rows = np.flatnonzero(cleaned["track_id"] == track)
        for foot, ankle in enumerate(ANKLES):
            for start, stop in runs(contacts[rows, foot]):
                if stop - start < 4:
                    continue
                span = rows[start + 1 : stop - 1]
                worst_before = max(worst_before, _spread(before[span, ankle]))
                worst_after = max(worst_after, _spread(after[span, ankle]))
    assert worst_before > 0.08
    assert worst_after < 0.02  # feet in contact stay within 2 cm
    # The image hardly moves: the pelvis not at all, the rest by a few pixels. The jitter
    # moved the noisy ankles across the image too (the whole body went along the pelvis's
    # line of sight); the clean-up takes them back toward the truth's pixels.
    shift = np.linalg.norm(pixels(joints_of(cleaned)) - pixels(joints_of(noisy)), axis=-1)
    assert shift[:, 0].max() < 1e-6
    assert np.percentile(shift, 95) < 3.0
    seen = pixels(joints_of(truth))[:, ANKLES]
    error_before = np.linalg.norm(pixels(joints_of(noisy))[:, ANKLES] - seen, axis=-1)
    error_after = np.linalg.norm(pixels(joints_of(cleaned))[:, ANKLES] - seen, axis=-1)
    assert error_after.max() < FootConfig().max_image_shift_px
    assert error_after.mean() < 0.5 * error_before.mean()
    # And the soles are on the floor.
    soles = np.minimum(after[:, ANKLES, 2] - 0.081, after[:, [10, 11], 2] - 0.028)
    assert np.abs(soles[contacts]).max() < 0.02


def test_a_body_standing_still_on_the_floor_is_left_as_it_is():
    rotation, translation = camera_pose(1.7, -10.0)
    truth = people_table(rotation, translation, frames=20, walking=False)
    cleaned = plant_feet(truth, camera_to_world(rotation, translation), FOCAL_PX, FPS)
    assert cleaned["foot_contact"].all()
    # Nothing moves by more than the few millimetres the table's poses jitter.
    np.testing.assert_allclose(joints_of(cleaned), joints_of(truth), atol=0.01)


def test_a_swinging_foot_is_not_in_contact():
    rotation, translation = camera_pose(1.7, -10.0)
    table = people_table(rotation, translation, frames=30, walking=False)
    # The left leg swings back and forth at the hip, a metre a second at the ankle.
    phase = np.sin(np.arange(len(table["frame"])) * 2 * np.pi / 15)
    table["body_pose"][:, JOINT_INDEX["left_hip"] - 1, 0] += 0.6 * phase
    contacts = plant_feet(
        table, camera_to_world(rotation, translation), FOCAL_PX, FPS, FootConfig(enabled=False)
    )["foot_contact"]
    assert contacts[:, 0].mean() < 0.2
    assert contacts[:, 1].mean() > 0.9


def test_only_the_tracks_asked_for_and_nothing_when_disabled():
    rotation, translation = camera_pose(1.7, -10.0)
    table = people_table(rotation, translation, frames=24, walking=False)
    noisy = jittered_in_depth(table, sigma_m=0.05)
    world = camera_to_world(rotation, translation)
    some = plant_feet(noisy, world, FOCAL_PX, FPS, track_ids=[2])
    others = noisy["track_id"] != 2
    for name in ("transl", "body_pose", "global_orient"):
        np.testing.assert_array_equal(some[name][others], noisy[name][others])
    # The root moves and the legs bend; the body keeps its facing.
    for name in ("transl", "body_pose"):
        assert not np.allclose(some[name][~others], noisy[name][~others])
    assert not some["foot_contact"][others].any() and some["foot_contact"][~others].any()
    off = plant_feet(noisy, world, FOCAL_PX, FPS, dataclasses.replace(FootConfig(), enabled=False))
    for name in ("transl", "body_pose", "global_orient"):
        np.testing.assert_array_equal(off[name], noisy[name])
    np.testing.assert_array_equal(
        off["foot_contact"], plant_feet(noisy, world, FOCAL_PX, FPS)["foot_contact"]
    )


@pytest.mark.parametrize(
    "bad", [{"max_sole_height_m": 0}, {"min_contact_frames": 0}, {"max_root_shift_m": -1}]
)
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="feet"):
        FootConfig(**bad)


def _spread(points: np.ndarray) -> float:
    return float(np.linalg.norm(points - points.mean(axis=0), axis=1).max())


def _random_directions(rng, count):
    vectors = rng.normal(size=(count, 3))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_the_feet_keep_their_world_orientation():
    rotation, translation = camera_pose(1.7, -10.0)
    table = people_table(rotation, translation, frames=24, walking=False)
    noisy = jittered_in_depth(table, sigma_m=0.05)
    cleaned = plant_feet(noisy, camera_to_world(rotation, translation), FOCAL_PX, FPS)
    _, before = forward_kinematics(noisy["global_orient"], noisy["body_pose"], noisy["transl"])
    _, after = forward_kinematics(cleaned["global_orient"], cleaned["body_pose"], cleaned["transl"])
    for ankle in ANKLES:
        np.testing.assert_allclose(after[:, ankle], before[:, ankle], atol=1e-5)


def test_ram_core_combine_plants_the_feet_in_the_stored_world(tmp_path):
    from ram_core.io.result import ResultWriter, load_result
    from ram_core.motion.recombine import recombine_result
    from ram_core.motion.world import estimate_world

    rotation, translation = camera_pose(1.7, -10.0)
    table = jittered_in_depth(people_table(rotation, translation, frames=24, walking=False), 0.05)
    table["recon_global_orient"] = table["global_orient"].copy()
    table["recon_body_pose"] = table["body_pose"].copy()
    table["recon_transl"] = table["transl"].copy()
    table["reliability"][:] = 1.0
    manifest = {
        "source_video": {"fps": FPS, "width": 640, "height": 360},
        "camera": {"fx": FOCAL_PX, "fy": FOCAL_PX, "cx": 320.0, "cy": 180.0},
        "config": {"feet": dataclasses.asdict(FootConfig())},
    }
    without_world = tmp_path / "old.ram"
    with ResultWriter(without_world) as writer:
        writer.finish(manifest, table)
    manifest["world"] = estimate_world(table, REST_JOINTS_M, FPS).to_manifest()
    with ResultWriter(tmp_path / "new.ram") as writer:
        with_world = writer.finish(manifest, table)
    for path in (without_world, with_world):
        recombine_result(path)
    # A result from before the world frame is re-run as it was made: no contacts.
    assert not load_result(without_world).tracks["foot_contact"].any()
    combined = load_result(with_world).tracks
    assert combined["foot_contact"].mean() > 0.9
    world = camera_to_world(rotation, translation)
    after = joints_of(combined) @ world[:3, :3].T + world[:3, 3]
    for track in np.unique(combined["track_id"]):
        ankles = after[combined["track_id"] == track][4:-4, ANKLES[0]]
        assert _spread(ankles) < 0.02
