import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.body.skeleton import REST_JOINTS_M
from ram_core.detect.boxes import mask_box
from ram_core.reconstruct.crop_pose import (
    OUTSIDE_MASK_RGB,
    CropPoseConfig,
    CropPoseReconstructor,
    isolate_person,
)
from ram_core.reconstruct.lite import LiteReconstructor
from ram_core.segment.lite import BlazePoseSegmenter
from ram_core.types import CameraIntrinsics, Frame, Observation, Prompt, TrackObservation

FIXTURES = Path(__file__).parent / "fixtures"
LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 11, 12, 23, 24


@pytest.fixture(scope="module")
def people_frame():
    bgr = cv2.imread(str(FIXTURES / "people_frame.png"))
    boxes = np.array(json.loads((FIXTURES / "people_frame.json").read_text()), dtype=float)
    return Frame(index=0, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), boxes


@pytest.fixture(scope="module")
def camera(people_frame):
    frame, _ = people_frame
    height, width = frame.rgb.shape[:2]
    return CameraIntrinsics.assumed(width, height)


@pytest.fixture(scope="module")
def lite_observations(people_frame):
    """What the lite segmenter finds for each person: masks and landmarks."""
    frame, boxes = people_frame
    with BlazePoseSegmenter() as segmenter:
        results = segmenter.segment(frame, [Prompt(box) for box in boxes])
    assert [len(r) for r in results] == [1, 1]
    return [r[0] for r in results]


@pytest.fixture(scope="module")
def reconstructor():
    with CropPoseReconstructor() as rec:
        yield rec


def without_landmarks(observation):
    """A SAM2-like observation: mask and box, no pose."""
    return dataclasses.replace(observation, landmarks=None)


def rectangle_observation(shape, box):
    mask = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = np.round(box).astype(int)
    mask[y0:y1, x0:x1] = True
    return Observation(
        mask=mask,
        box_xyxy=np.asarray(box, dtype=float),
        quality=0.9,
        object_score=1.0,
        appearance=np.zeros(4, dtype=np.float32),
    )


def pelvis_pixel(estimate, camera):
    return camera.project(estimate.transl + REST_JOINTS_M[0])


def assert_sane(estimate):
    assert estimate is not None
    assert estimate.global_orient.shape == (3,) and estimate.body_pose.shape == (23, 3)
    assert estimate.betas.shape == (10,) and estimate.transl.shape == (3,)
    for values in (estimate.global_orient, estimate.body_pose, estimate.betas, estimate.transl):
        assert np.all(np.isfinite(values))
    assert estimate.transl[2] > 0.5  # in front of the camera
    assert 0.0 < estimate.confidence <= 1.0


# ---------------------------------------------------------------- on the rendered people


def test_a_mask_without_pose_gives_the_lite_estimate(
    reconstructor, lite_observations, people_frame, camera
):
    frame, _ = people_frame
    lite = LiteReconstructor()
    for observation in lite_observations:
        estimate = reconstructor.estimate(frame, without_landmarks(observation), camera)
        assert_sane(estimate)
        # The same person through the lite backend (pose found on the unmasked crop).
        reference = lite.estimate(frame, observation, camera)
        depth = reference.transl[2]
        assert np.linalg.norm(estimate.transl - reference.transl) < 0.1 * depth
        box = observation.box_xyxy
        u, v = pelvis_pixel(estimate, camera)
        assert box[0] < u < box[2] and box[1] < v < box[3]


def test_a_mask_from_a_known_person_box(reconstructor, people_frame, camera):
    frame, boxes = people_frame
    for box in boxes:
        observation = rectangle_observation(frame.rgb.shape[:2], box)
        estimate = reconstructor.estimate(frame, observation, camera)
        assert_sane(estimate)
        u, v = pelvis_pixel(estimate, camera)
        assert box[0] < u < box[2] and box[1] + 0.3 * (box[3] - box[1]) < v < box[3]


def test_a_crop_that_shows_nobody_gives_none(reconstructor, people_frame, camera):
    frame, _ = people_frame
    for box in ([250.0, 200.0, 330.0, 350.0], [230.0, 0.0, 330.0, 80.0]):  # floor, wall
        observation = rectangle_observation(frame.rgb.shape[:2], box)
        assert reconstructor.find_landmarks(frame, observation) is None
        assert reconstructor.estimate(frame, observation, camera) is None


def test_empty_mask_gives_none(reconstructor, people_frame, camera):
    frame, boxes = people_frame
    observation = rectangle_observation(frame.rgb.shape[:2], boxes[0])
    empty = dataclasses.replace(observation, mask=np.zeros_like(observation.mask))
    assert reconstructor.estimate(frame, empty, camera) is None


def test_a_neighbour_in_front_does_not_steal_the_pose(
    reconstructor, lite_observations, people_frame
):
    # The right-hand person, 1.2 times larger, pasted 20 px right of the left person's centre
    # and nearer the camera: they hide a fifth of the left person and fill much of the crop.
    frame, _ = people_frame
    person, neighbour = lite_observations
    x0, y0, x1, y1 = neighbour.box_xyxy.astype(int)
    patch = cv2.resize(frame.rgb[y0:y1, x0:x1], None, fx=1.2, fy=1.2)
    patch_mask = cv2.resize(
        neighbour.mask[y0:y1, x0:x1].astype(np.uint8),
        None,
        fx=1.2,
        fy=1.2,
        interpolation=cv2.INTER_NEAREST,
    ).astype(bool)
    h, w = patch_mask.shape
    left = int((person.box_xyxy[0] + person.box_xyxy[2]) / 2 + 20) - w // 2
    top = int(person.box_xyxy[3]) + 10 - h
    rgb = frame.rgb.copy()
    in_front = np.zeros(rgb.shape[:2], dtype=bool)
    in_front[top : top + h, left : left + w] = patch_mask
    rgb[in_front] = patch[patch_mask]
    visible = person.mask & ~in_front
    assert 0.6 < visible.sum() / person.mask.sum() < 0.9
    observation = Observation(
        mask=visible,
        box_xyxy=mask_box(visible),
        quality=0.9,
        object_score=1.0,
        appearance=np.zeros(4, dtype=np.float32),
    )
    marks = reconstructor.find_landmarks(Frame(0, rgb), observation)
    assert marks is not None
    for pair in ((LEFT_HIP, RIGHT_HIP), (LEFT_SHOULDER, RIGHT_SHOULDER)):
        u, v = np.round(marks.image_px[list(pair)].mean(axis=0)).astype(int)
        assert visible[v, u] and not in_front[v, u]


def test_observations_with_landmarks_go_straight_to_the_lite_reconstructor(
    lite_observations, people_frame, camera
):
    frame, _ = people_frame
    # A frame of noise: had MediaPipe run again it would not find these landmarks.
    noise = Frame(0, np.random.default_rng(0).integers(0, 255, frame.rgb.shape, dtype=np.uint8))
    with CropPoseReconstructor() as rec:
        for observation in lite_observations:
            ours = rec.estimate(noise, observation, camera)
            theirs = LiteReconstructor().estimate(frame, observation, camera)
            np.testing.assert_array_equal(ours.body_pose, theirs.body_pose)
            np.testing.assert_array_equal(ours.transl, theirs.transl)


def test_closed_reconstructor_and_bad_masks(people_frame, camera):
    frame, boxes = people_frame
    observation = rectangle_observation(frame.rgb.shape[:2], boxes[0])
    rec = CropPoseReconstructor()
    with pytest.raises(ValueError, match="does not match"):
        rec.find_landmarks(frame, dataclasses.replace(observation, mask=np.ones((4, 4), bool)))
    rec.close()
    rec.close()
    with pytest.raises(RuntimeError, match="closed"):
        rec.estimate(frame, observation, camera)


# ---------------------------------------------------------------- pure helpers


def test_isolate_person_keeps_the_dilated_mask_inside_the_region():
    rgb = np.full((20, 30, 3), 200, dtype=np.uint8)
    mask = np.zeros((20, 30), dtype=bool)
    mask[8:12, 10:14] = True
    mask[0, 0] = True  # outside the region: greyed anyway
    out = isolate_person(rgb, mask, (5, 3, 25, 18), dilation_px=0)
    kept = np.all(out == 200, axis=2)
    assert np.array_equal(kept, mask & _region(5, 3, 25, 18))
    assert np.all(out[~kept] == OUTSIDE_MASK_RGB)
    grown = np.all(isolate_person(rgb, mask, (5, 3, 25, 18), dilation_px=2) == 200, axis=2)
    assert grown[7:13, 9:15].all() and grown[6, 11] and not grown[5, 11]
    assert not grown[6, 8]  # the disc's corner: an ellipse, not a square
    assert not grown[0, 0]


def _region(x0, y0, x1, y1):
    region = np.zeros((20, 30), dtype=bool)
    region[y0:y1, x0:x1] = True
    return region


def test_isolate_person_leaves_the_frame_untouched():
    rgb = np.random.default_rng(1).integers(0, 255, (10, 10, 3), dtype=np.uint8)
    before = rgb.copy()
    isolate_person(rgb, np.ones((10, 10), bool), (0, 0, 5, 5), dilation_px=1)
    np.testing.assert_array_equal(rgb, before)


def test_config_validation():
    with pytest.raises(ValueError, match="mask_dilation"):
        CropPoseConfig(mask_dilation=-0.1)


def test_the_stage_takes_every_track_of_a_frame_at_once(lite_observations, people_frame, camera):
    """The track-aware stage gives, in order, exactly the per-person estimates, for the lite
    reconstructor and for the crop one; both keep nothing per track."""
    frame, _ = people_frame
    tracks = [
        TrackObservation(track_id, observation, observation.box_xyxy, 0.9)
        for track_id, observation in enumerate(lite_observations, start=3)
    ]
    crop_tracks = [
        dataclasses.replace(track, observation=without_landmarks(track.observation))
        for track in tracks
    ]
    with CropPoseReconstructor() as crop:
        for rec, batch in ((LiteReconstructor(), tracks), (crop, crop_tracks)):
            assert rec.rest_skeleton["kind"] == "builtin"
            estimates = rec.reconstruct(frame, batch, camera)
            assert len(estimates) == len(batch)
            for track, estimate in zip(batch, estimates, strict=True):
                single = rec.estimate(frame, track.observation, camera)
                np.testing.assert_array_equal(estimate.body_pose, single.body_pose)
                np.testing.assert_array_equal(estimate.transl, single.transl)
                assert estimate.confidence == single.confidence
            rec.forget(tracks[0].track_id)
            assert rec.reconstruct(frame, [], camera) == []
