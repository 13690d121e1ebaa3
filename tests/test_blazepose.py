"""Our LiteRT runner of BlazePose's landmark model: the region maths, the heatmap refinement,
and agreement with MediaPipe 0.10.14's own graph on the fixture frame (its output is stored by
tools/make_mediapipe_reference.py, since MediaPipe itself no longer installs here)."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.segment.blazepose import (
    BODY_CIRCLE,
    HIPS_CENTRE,
    INPUT_SIZE,
    PoseLandmarkModel,
    PoseRoi,
    apply_affine,
    refine_from_heatmap,
    roi_from_box,
    roi_from_landmarks,
)
from ram_core.segment.lite import BlazePoseSegmenter, default_model_path
from ram_core.types import Frame, Prompt

FIXTURES = Path(__file__).parent / "fixtures"
LIMBS = [11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


@pytest.fixture(scope="module")
def people_frame():
    rgb = cv2.cvtColor(cv2.imread(str(FIXTURES / "people_frame.png")), cv2.COLOR_BGR2RGB)
    boxes = np.array(json.loads((FIXTURES / "people_frame.json").read_text()), dtype=float)
    return rgb, boxes


@pytest.fixture(scope="module")
def reference():
    stored = np.load(FIXTURES / "people_frame_mediapipe.npz")
    masks = np.unpackbits(stored["masks"], axis=-1)[..., :640].astype(bool)
    return {**{k: stored[k] for k in ("image_px", "world_m", "visibility")}, "masks": masks}


@pytest.fixture(scope="module")
def model():
    return PoseLandmarkModel(default_model_path(), num_threads=2)


def test_roi_maps_are_inverse_and_turn_as_documented():
    roi = PoseRoi(100.0, 50.0, 64.0, np.deg2rad(90.0))
    to_image, to_crop = roi.crop_to_image(), roi.image_to_crop()
    centre = apply_affine(to_image, np.array([[INPUT_SIZE / 2, INPUT_SIZE / 2]]))
    np.testing.assert_allclose(centre, [[100.0, 50.0]])
    # Turned 90 degrees: the crop's x axis runs down the image, its y axis to the left.
    right_edge = apply_affine(to_image, np.array([[INPUT_SIZE, INPUT_SIZE / 2]]))
    np.testing.assert_allclose(right_edge, [[100.0, 82.0]], atol=1e-9)
    points = np.random.default_rng(0).uniform(0, 300, (10, 2))
    np.testing.assert_allclose(apply_affine(to_image, apply_affine(to_crop, points)), points)
    assert roi.bounds(640, 360) == (68, 18, 132, 82)
    assert PoseRoi(-100.0, -100.0, 10.0).bounds(640, 360) is None


def test_roi_from_box_and_from_landmarks():
    roi = roi_from_box(np.array([10.0, 20.0, 50.0, 120.0]), 1.25)
    assert (roi.centre_x, roi.centre_y, roi.side, roi.rotation) == (30.0, 70.0, 125.0, 0.0)
    points = np.zeros((39, 2))
    points[HIPS_CENTRE] = (200.0, 300.0)
    points[BODY_CIRCLE] = (200.0, 220.0)  # straight up: an upright person
    upright = roi_from_landmarks(points)
    assert upright.rotation == pytest.approx(0.0)
    assert upright.side == pytest.approx(2 * 1.25 * 80.0)
    assert (upright.centre_x, upright.centre_y) == (200.0, 300.0)
    points[BODY_CIRCLE] = (280.0, 300.0)  # lying with the head to the image right
    lying = roi_from_landmarks(points)
    # The crop's up (-y) axis must point from the hips to the circle point.
    up = -lying.crop_to_image()[:, 1]
    np.testing.assert_allclose(up / np.linalg.norm(up), [1.0, 0.0], atol=1e-9)


def test_heatmap_refinement_moves_to_a_confident_peak_only():
    heatmap = np.full((64, 64, 2), -10.0)
    heatmap[20, 31, 0] = 10.0  # landmark 0: a sharp peak one cell right of it
    points = np.array([[30.5 * 4, 20.5 * 4], [100.0, 100.0]])
    refined = refine_from_heatmap(points, heatmap)
    np.testing.assert_allclose(refined[0], [31 * 4, 20 * 4], atol=0.01)
    np.testing.assert_array_equal(refined[1], points[1])  # nothing confident: unchanged


def test_agrees_with_mediapipe_on_the_fixture(people_frame, reference):
    rgb, boxes = people_frame
    with BlazePoseSegmenter() as segmenter:
        found = segmenter.segment(Frame(0, rgb), [Prompt(box) for box in boxes])
    assert [len(r) for r in found] == [1, 1]
    for person, (observation,) in enumerate(found):
        height = boxes[person][3] - boxes[person][1]
        landmarks = observation.landmarks
        error = np.linalg.norm(landmarks.image_px - reference["image_px"][person], axis=1)
        # MediaPipe finds its own region with its pose detector; ours comes from the box.
        # Measured: median 0.5% of the box height for both, worst limb joint 1.6%.
        assert np.median(error) / height < 0.01
        assert error[LIMBS].max() / height < 0.04
        world_error = np.linalg.norm(landmarks.world_m - reference["world_m"][person], axis=1)
        assert np.median(world_error) < 0.06  # metres; measured 0.02 and 0.04
        # Visible joints agree on being visible.
        seen, seen_there = landmarks.visibility > 0.5, reference["visibility"][person] > 0.5
        assert (seen == seen_there).mean() >= 0.85
        theirs = reference["masks"][person]
        ours = observation.mask
        assert (ours & theirs).sum() / (ours | theirs).sum() > 0.8  # measured 0.93, 0.88


def test_a_turned_person_is_found_through_a_turned_region(people_frame, model):
    rgb, boxes = people_frame
    upright = model.estimate(rgb, [roi_from_box(boxes[0], 1.25)])[0]
    # The whole frame turned 60 degrees about the person's hips: the landmarks of the
    # upright pass, turned the same way, give the region of the turned person.
    centre = tuple(float(v) for v in upright.points_px[HIPS_CENTRE])
    turn = cv2.getRotationMatrix2D(centre, 60.0, 1.0)
    turned_rgb = cv2.warpAffine(rgb, turn, (rgb.shape[1], rgb.shape[0]))
    expected = apply_affine(turn, upright.points_px)
    roi = roi_from_landmarks(expected)
    assert abs(np.rad2deg(roi.rotation)) == pytest.approx(60.0, abs=10.0)
    turned = model.estimate(turned_rgb, [roi])[0]
    assert turned.pose_score > 0.5
    height = boxes[0][3] - boxes[0][1]
    error = np.linalg.norm(turned.points_px[:33] - expected[:33], axis=1)
    assert np.median(error) / height < 0.03
    # World landmarks stay in the camera's axes: the body's up turns with the image.
    up = upright.world_m[0] - upright.world_m[[23, 24]].mean(axis=0)
    turned_up = turned.world_m[0] - turned.world_m[[23, 24]].mean(axis=0)
    angle = np.rad2deg(np.arctan2(turned_up[1], turned_up[0]) - np.arctan2(up[1], up[0]))
    assert (angle + 180) % 360 - 180 == pytest.approx(-60.0, abs=12.0)


def test_a_batch_gives_what_one_at_a_time_gives(people_frame, model):
    rgb, boxes = people_frame
    rois = [roi_from_box(box, 1.25) for box in boxes]
    together = model.estimate(rgb, rois)
    apart = [model.estimate(rgb, [roi])[0] for roi in rois]
    for a, b in zip(together, apart, strict=True):
        np.testing.assert_allclose(a.points_px, b.points_px, atol=1e-2)
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-3)
    off_frame = PoseRoi(-500.0, -500.0, 50.0)
    assert model.estimate(rgb, [off_frame, rois[0]])[0] is None
    assert model.estimate(rgb, []) == []


def test_a_crowd_runs_in_calls_of_at_most_max_batch(people_frame, model):
    rgb, boxes = people_frame
    rois = [roi_from_box(box, 1.25) for box in boxes] * 3  # more people than one call takes
    chunked = PoseLandmarkModel(default_model_path(), num_threads=2, max_batch=2)
    sizes = []
    resize = chunked._resize
    chunked._resize = lambda batch: (sizes.append(batch), resize(batch))
    split = chunked.estimate(rgb, rois)
    assert max(sizes) == 2 and sum(sizes) == len(rois)
    for a, b in zip(split, model.estimate(rgb, rois), strict=True):
        np.testing.assert_allclose(a.points_px, b.points_px, atol=1e-2)
        np.testing.assert_allclose(a.world_m, b.world_m, atol=1e-3)
        np.testing.assert_allclose(a.probability, b.probability, atol=1e-3)
    with pytest.raises(ValueError, match="max_batch"):
        PoseLandmarkModel(default_model_path(), max_batch=0)


def test_an_empty_region_has_a_low_pose_score(people_frame, model):
    rgb, _ = people_frame
    floor = model.estimate(rgb, [roi_from_box(np.array([250.0, 200.0, 330.0, 350.0]), 1.25)])
    assert floor[0].pose_score < 0.5


def test_the_model_sees_only_the_keep_box(people_frame, model):
    rgb, boxes = people_frame
    roi = roi_from_box(boxes[0], 1.25)
    (plain,) = model.estimate(rgb, [roi])
    (everything,) = model.estimate(rgb, [roi], [np.array([-1e4, -1e4, 1e4, 1e4])])
    np.testing.assert_allclose(everything.points_px, plain.points_px)
    # Only the floor beside the person is left: nobody there.
    _, y0, x1, y1 = boxes[0]
    (floor_only,) = model.estimate(rgb, [roi], [np.array([x1 + 2, y0, x1 + 30, y1])])
    assert floor_only.pose_score < 0.5
    with pytest.raises(ValueError):
        model.estimate(rgb, [roi], [])
