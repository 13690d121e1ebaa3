"""A turning camera (``ram_core.video.camera_motion``): its rotation per frame and its focal
length from a textured background, a static camera left static, and the pipeline placing
people who stand still in a turning shot at one place in the world."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from ram_core.body.rotations import axis_angle_to_matrix, geodesic_angle, matrix_to_axis_angle
from ram_core.body.skeleton import REST_JOINTS_M, builtin_rest_skeleton, forward_kinematics
from ram_core.config import RunConfig
from ram_core.detect.boxes import iou_matrix
from ram_core.eval.turning_camera import background_frames, moving_people
from ram_core.io.result import ResultFormatError, load_result
from ram_core.models.backends import Backend
from ram_core.pipeline import run_pipeline
from ram_core.track.segfollow import SegFollowConfig
from ram_core.types import BodyEstimate, Detection, Frame, Observation, Prompt
from ram_core.video.camera_motion import BackgroundTracker, CameraMotionConfig

WIDTH, HEIGHT = 640, 360
FOCAL = 700.0
SMPL_TO_WORLD = axis_angle_to_matrix(np.array([np.pi / 2, 0.0, 0.0]))  # y up -> z up


def follow(images, masks, focal_known: bool = False, config=None):
    tracker = BackgroundTracker(config)
    for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
        tracker.add(index, image, mask)
    return tracker.solve(800.0 if not focal_known else FOCAL, WIDTH / 2, HEIGHT / 2, focal_known)


@pytest.mark.parametrize(("pan", "tilt"), [(15.0, 0.0), (10.0, 4.0)])
def test_a_turning_camera_gives_its_rotations_and_focal_length(pan, tilt):
    images, truth = background_frames(np.random.default_rng(0), 40, pan, tilt)
    images, masks = moving_people(images)
    motion = follow(images, masks)
    assert motion.turning and motion.followed_fraction == 1.0
    assert motion.focal_px == pytest.approx(FOCAL, rel=0.02)
    assert np.degrees(geodesic_angle(motion.rotations, truth)).max() < 0.3
    assert "turning" in motion.verdict and "focal length" in motion.verdict


def test_a_small_turn_keeps_the_focal_length_it_was_given():
    images, truth = background_frames(np.random.default_rng(1), 20, 3.0)
    motion = follow(images, [None] * len(images))
    assert motion.turning and motion.focal_px is None
    # Rotations with the (wrong) focal length given: still close for a small turn.
    assert np.degrees(geodesic_angle(motion.rotations, truth)).max() < 0.6


def test_a_static_camera_stays_static_with_people_and_shadows_moving():
    images, _ = background_frames(np.random.default_rng(2), 30, 0.0)
    images, masks = moving_people(images)
    motion = follow(images, masks)
    assert not motion.turning and motion.focal_px is None and motion.verdict == "static"
    np.testing.assert_array_equal(motion.rotations, np.tile(np.eye(3), (30, 1, 1)))


def test_a_plain_background_that_cannot_be_followed_counts_as_static():
    plain = [np.full((HEIGHT, WIDTH, 3), 128, np.uint8) for _ in range(10)]
    images, masks = moving_people(plain)
    motion = follow(images, masks)
    assert not motion.turning and motion.followed_fraction < 0.5
    assert "could be followed on" in motion.verdict


def test_following_can_be_switched_off_and_bad_settings_are_refused():
    images, _ = background_frames(np.random.default_rng(3), 10, 10.0)
    motion = follow(images, [None] * 10, config=CameraMotionConfig(enabled=False))
    assert not motion.turning and motion.verdict == "not followed"
    with pytest.raises(ValueError, match="camera_motion"):
        CameraMotionConfig(min_inliers=2)


# ---------------------------------------------------------------- through the pipeline

PEOPLE_WORLD = np.array([[-0.8, 5.0], [0.9, 6.5]])  # (x, y) on the floor, standing still
CAMERA_HEIGHT, CAMERA_PITCH_DEG = 1.6, -8.0


def world_to_first_camera() -> tuple[np.ndarray, np.ndarray]:
    """The first frame's world -> camera rotation and translation (camera at height, looking
    along +y, pitched down)."""
    level = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    pitch = axis_angle_to_matrix(np.array([np.radians(CAMERA_PITCH_DEG), 0.0, 0.0]))
    rotation = pitch.T @ level
    return rotation, -rotation @ np.array([0.0, 0.0, CAMERA_HEIGHT])


class StandingPeople:
    """Detector, segmenter and reconstructor of two people standing still in the world of a
    turning camera. The reconstructor answers as one fitting a body of known size with the
    focal length it is given would: the pelvis on its true line of sight, its depth scaled
    by given / true focal length."""

    rest_skeleton = builtin_rest_skeleton()

    def __init__(self, rotations: np.ndarray) -> None:
        world_to_camera, translation = world_to_first_camera()
        self.bodies = []  # per frame: (people, 24, 3) joints and (people, 3) root rotation
        for turn in rotations:
            joints, orients = [], []
            for x, y in PEOPLE_WORLD:
                body_to_world = SMPL_TO_WORLD @ axis_angle_to_matrix(np.array([0, np.pi, 0]))
                orient = turn @ world_to_camera @ body_to_world
                rest, _ = forward_kinematics(matrix_to_axis_angle(orient), np.zeros((23, 3)), 0)
                # The toe bases (the lowest joints) 2.8 cm over the floor: soles on it.
                lowest = (rest @ world_to_camera)[:, 2].min()
                offset_world = np.array([x, y, 0.028 - lowest])
                place = turn @ (world_to_camera @ offset_world + translation)
                joints.append(rest + place)
                orients.append(matrix_to_axis_angle(orient))
            self.bodies.append((np.array(joints), np.array(orients)))

    def boxes(self, frame: int) -> np.ndarray:
        joints = self.bodies[frame][0]
        pixels = FOCAL * joints[..., :2] / joints[..., 2:] + [WIDTH / 2, HEIGHT / 2]
        margin = np.array([-12.0, -20.0, 12.0, 8.0])
        return np.concatenate([pixels.min(axis=1), pixels.max(axis=1)], axis=1) + margin

    def detect(self, frame: Frame) -> list[Detection]:
        return [Detection(box_xyxy=box, score=0.9) for box in self.boxes(frame.index)]

    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        boxes = self.boxes(frame.index)
        results = []
        for prompt in prompts:
            overlap = iou_matrix(prompt.box_xyxy, boxes)[0]
            if overlap.max() < 0.1:
                results.append([])
                continue
            person = int(np.argmax(overlap))
            x1, y1, x2, y2 = np.clip(boxes[person], 0, [WIDTH, HEIGHT, WIDTH, HEIGHT]).astype(int)
            mask = np.zeros((HEIGHT, WIDTH), bool)
            mask[y1:y2, x1:x2] = True
            appearance = np.eye(2, dtype=np.float32)[person]
            results.append([Observation(mask, boxes[person], 0.9, 3.0, appearance)])
        return results

    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        return float(np.dot(memory, appearance) / max(np.linalg.norm(memory), 1e-9))

    def reconstruct(self, frame: Frame, tracks, camera) -> list[BodyEstimate]:
        joints, orients = self.bodies[frame.index]
        estimates = []
        for track in tracks:
            person = int(np.argmax(track.observation.appearance))
            pelvis = joints[person, 0] * [1.0, 1.0, camera.fx / FOCAL]
            estimates.append(
                BodyEstimate(
                    global_orient=orients[person],
                    body_pose=np.zeros((23, 3)),
                    betas=np.zeros(10),
                    transl=pelvis - REST_JOINTS_M[0],
                    confidence=1.0,
                )
            )
        return estimates

    def forget(self, track_id: int) -> None:
        pass


def write_video(path, images) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24.0, (WIDTH, HEIGHT))
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()


def test_people_standing_still_in_a_turning_shot_stand_still_in_the_world(tmp_path):
    frames = 36
    images, truth = background_frames(np.random.default_rng(4), frames, 16.0, 2.0)
    people = StandingPeople(truth)
    painted = []
    for frame, image in enumerate(images):
        image = image.copy()
        for colour, box in zip(((220, 40, 40), (40, 40, 220)), people.boxes(frame), strict=True):
            x1, y1, x2, y2 = box.astype(int)
            cv2.rectangle(image, (x1, y1), (x2, y2), colour, -1)
        painted.append(image)
    video = tmp_path / "turning.mp4"
    write_video(video, painted)
    config = RunConfig(segfollow=SegFollowConfig(birth_min_size_px=(10.0, 20.0)))
    config = dataclasses.replace(
        config, pipeline=dataclasses.replace(config.pipeline, preview=False)
    )
    out = run_pipeline(
        video,
        tmp_path / "turning.ram",
        config=config,
        stages=Backend("scripted", people, people, people, {}, "test"),
    )
    result = load_result(out)
    manifest = result.manifest
    assert manifest["world"]["turning"] and manifest["world"]["camera_track"] == "camera.npz"
    assert manifest["camera"]["focal_source"] == "estimated from the camera's turn"
    assert manifest["camera"]["fx"] == pytest.approx(FOCAL, rel=0.03)
    assert manifest["world"]["camera_height_m"] == pytest.approx(CAMERA_HEIGHT, abs=0.1)
    assert manifest["world"]["pitch_deg"] == pytest.approx(CAMERA_PITCH_DEG, abs=1.5)
    frames_stored, per_frame = result.camera_track
    assert len(frames_stored) == frames
    # Each person's pelvis through its frame's camera_to_world: one place in the world.
    tracks = result.tracks
    joints, _ = forward_kinematics(tracks["global_orient"], tracks["body_pose"], tracks["transl"])
    matrices = per_frame[np.searchsorted(frames_stored, tracks["frame"])]
    pelvis = np.einsum("nij,nj->ni", matrices[:, :3, :3], joints[:, 0]) + matrices[:, :3, 3]
    for track in np.unique(tracks["track_id"]):
        path = pelvis[tracks["track_id"] == track]
        assert np.linalg.norm(path - path.mean(axis=0), axis=1).max() < 0.08
    # A damaged camera track is refused with one clear error.
    (out / "camera.npz").write_bytes(b"not a zip")
    with pytest.raises(ResultFormatError, match=r"camera\.npz"):
        load_result(out)
    assert json.loads((out / "manifest.json").read_text())["world"]["turning"]
