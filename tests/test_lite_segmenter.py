import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.detect.boxes import iou_matrix
from ram_core.segment.lite import (
    APPEARANCE_DIM,
    POSE_MODELS,
    BlazePoseSegmenter,
    LiteSegmenterConfig,
    appearance_descriptor,
    appearance_similarity,
    context_box,
    overlap_waves,
    pose_component,
    prompt_contexts,
    visibility_logit,
)
from ram_core.types import Frame, Prompt

FIXTURES = Path(__file__).parent / "fixtures"
LEFT_SHOULDER, RIGHT_SHOULDER, NOSE, LEFT_HIP, RIGHT_HIP = 11, 12, 0, 23, 24


@pytest.fixture(scope="module")
def people_frame():
    bgr = cv2.imread(str(FIXTURES / "people_frame.png"))
    boxes = np.array(json.loads((FIXTURES / "people_frame.json").read_text()), dtype=float)
    return Frame(index=0, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), boxes


# Every test of the model on a real image runs on both landmark models.
@pytest.fixture(scope="module", params=sorted(POSE_MODELS))
def segmenter(request):
    with BlazePoseSegmenter(LiteSegmenterConfig(model=request.param)) as seg:
        yield seg


@pytest.fixture(scope="module")
def person_observations(segmenter, people_frame):
    frame, boxes = people_frame
    return segmenter.segment(frame, [Prompt(box, track_id=i) for i, box in enumerate(boxes)])


def grow(box, fraction):
    w, h = box[2] - box[0], box[3] - box[1]
    return box + np.array([-w, -h, w, h]) * fraction


# ---------------------------------------------------------------- BlazePose on a real image


def test_one_observation_per_person_prompt(person_observations, people_frame):
    frame, boxes = people_frame
    assert [len(r) for r in person_observations] == [1, 1]
    for (obs,), box in zip(person_observations, boxes, strict=True):
        assert obs.mask.shape == frame.rgb.shape[:2] and obs.mask.dtype == bool
        x0, y0, x1, y1 = np.round(box).astype(int)
        inside = obs.mask[y0:y1, x0:x1].sum() / obs.mask.sum()
        assert inside >= 0.95
        assert obs.mask.sum() >= 0.3 * (x1 - x0) * (y1 - y0)  # a body, not a speck
        assert iou_matrix(obs.box_xyxy, box)[0, 0] >= 0.7
        assert 0.5 < obs.quality <= 1.0
        assert obs.object_score > 0
        assert obs.appearance.shape == (APPEARANCE_DIM,) and obs.appearance.dtype == np.float32


def test_landmarks_lie_inside_the_person_box(person_observations, people_frame):
    _, boxes = people_frame
    for (obs,), box in zip(person_observations, boxes, strict=True):
        marks = obs.landmarks
        assert marks.image_px.shape == (33, 2) and marks.world_m.shape == (33, 3)
        assert marks.visibility.shape == (33,)
        seen = marks.image_px[marks.visibility > 0.5]
        x0, y0, x1, y1 = grow(box, 0.05)
        assert len(seen) >= 20
        assert np.all((seen[:, 0] >= x0) & (seen[:, 0] <= x1))
        assert np.all((seen[:, 1] >= y0) & (seen[:, 1] <= y1))
        # The nose sits in the top fifth of the body, the hips near the middle.
        height = box[3] - box[1]
        assert marks.image_px[NOSE, 1] < box[1] + 0.2 * height
        hips_y = marks.image_px[[LEFT_HIP, RIGHT_HIP], 1].mean()
        assert box[1] + 0.3 * height < hips_y < box[1] + 0.7 * height


def test_world_landmarks_axes(person_observations):
    for (obs,) in person_observations:
        world = obs.landmarks.world_m
        hips = world[[LEFT_HIP, RIGHT_HIP]].mean(axis=0)
        assert np.linalg.norm(hips) < 0.05  # hip-centred
        assert world[NOSE, 1] < -0.4  # y down: the head is well above the hips (metres)
        # x right: world x follows image x across the body
        image_x = obs.landmarks.image_px[:, 0]
        assert np.corrcoef(image_x, world[:, 0])[0, 1] > 0.8
    # z away from the camera: the left person faces image-right, so their left side is far.
    (left_person,) = person_observations[0]
    world = left_person.landmarks.world_m
    assert world[LEFT_SHOULDER, 2] > world[RIGHT_SHOULDER, 2] + 0.1
    assert left_person.landmarks.visibility[13] < 0.5  # the far (left) elbow is hidden


def test_appearance_is_closer_for_the_same_person(segmenter, person_observations, people_frame):
    frame, boxes = people_frame
    shifted = [Prompt(boxes[0] + [6, -4, 6, -4]), Prompt(boxes[1] + [-5, 3, -5, 3])]
    again = segmenter.segment(frame, shifted)
    first = [r[0].appearance for r in person_observations]
    second = [r[0].appearance for r in again]
    same = [segmenter.appearance_similarity(first[i], second[i]) for i in range(2)]
    across = [segmenter.appearance_similarity(first[i], second[1 - i]) for i in range(2)]
    assert min(same) > 0.9
    assert max(across) < min(same) - 0.2


def test_empty_areas_give_no_observation(segmenter, people_frame):
    frame, _ = people_frame
    floor = Prompt(np.array([250.0, 200.0, 330.0, 350.0]))
    wall = Prompt(np.array([230.0, 0.0, 330.0, 80.0]))
    assert segmenter.segment(frame, [floor, wall]) == [[], []]


def test_degenerate_and_no_prompts(segmenter, people_frame):
    frame, _ = people_frame
    assert segmenter.segment(frame, []) == []
    outside = Prompt(np.array([700.0, 10.0, 800.0, 200.0]))  # right of the frame
    assert segmenter.segment(frame, [outside]) == [[]]


def test_nothing_is_kept_per_track(segmenter, people_frame):
    frame, boxes = people_frame
    prompts = [Prompt(b, track_id=10 + i) for i, b in enumerate(boxes)]
    first = segmenter.segment(frame, prompts)
    segmenter.forget(10)
    segmenter.forget(99)  # never seen: harmless
    again = segmenter.segment(frame, prompts[::-1])[::-1]
    for (a,), (b,) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.landmarks.image_px, b.landmarks.image_px, atol=1e-3)


def test_a_closed_segmenter_refuses_work(people_frame):
    frame, boxes = people_frame
    with BlazePoseSegmenter() as seg:
        pass
    with pytest.raises(RuntimeError):
        seg.segment(frame, [Prompt(boxes[0])])


def test_a_missing_model_names_the_command_that_fetches_it(tmp_path, monkeypatch):
    from ram_core.errors import MissingModelError

    monkeypatch.setenv("RAM_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(
        MissingModelError, match="ram-core weights download blazepose_landmark_full"
    ):
        BlazePoseSegmenter()
    with pytest.raises(
        MissingModelError, match="ram-core weights download blazepose_landmark_lite"
    ):
        BlazePoseSegmenter(LiteSegmenterConfig(model="lite"))


def test_an_unknown_landmark_model_is_refused():
    with pytest.raises(ValueError, match="model must be one of"):
        LiteSegmenterConfig(model="heavy")


# ---------------------------------------------------------------- pure helpers


def test_overlap_waves_batch_people_who_do_not_overlap():
    near, beside, behind_near, behind_both = (
        (0, 0, 10, 10),
        (20, 0, 30, 10),
        (5, 5, 15, 15),
        (8, 0, 25, 9),
    )
    assert overlap_waves([near, beside]) == [0, 0]
    assert overlap_waves([near, beside, behind_near]) == [0, 0, 1]
    assert overlap_waves([near, behind_near, behind_both]) == [0, 1, 2]
    assert overlap_waves([near, None, behind_near]) == [0, 0, 1]
    assert overlap_waves([]) == []


def test_visibility_logit_sign_and_zero_point():
    assert visibility_logit(np.full(33, 0.9)) > 0
    assert visibility_logit(np.full(33, 0.2)) < 0
    assert visibility_logit(np.full(33, 0.5)) == pytest.approx(0.0)
    assert visibility_logit(np.full(33, 0.7), zero_at=0.7) == pytest.approx(0.0)
    assert np.isfinite(visibility_logit(np.ones(33)))


def test_context_box_widens_narrow_boxes_of_small_people_only():
    config = LiteSegmenterConfig()  # 0.4 of the height, under 80 px, margin 0.2
    narrow_small = np.array([100.0, 100.0, 110.0, 150.0])  # 10 x 50 px
    x0, y0, x1, y1 = context_box(narrow_small, config)
    assert x1 - x0 == pytest.approx(0.4 * 50 * 1.4) and (x0 + x1) / 2 == pytest.approx(105)
    assert (y0, y1) == pytest.approx((90, 160))
    unwidened = context_box(narrow_small, config, widen=False)
    assert unwidened[2] - unwidened[0] == pytest.approx(10 * 1.4)
    # As tall as 80 px, or already wide enough: the box's own width.
    narrow_tall = np.array([100.0, 100.0, 120.0, 180.0])
    np.testing.assert_allclose(context_box(narrow_tall, config), [96, 84, 124, 196])
    wide_small = np.array([100.0, 100.0, 125.0, 150.0])
    np.testing.assert_allclose(context_box(wide_small, config), [95, 90, 130, 160])


def test_prompt_contexts_widen_only_away_from_other_prompts():
    config = LiteSegmenterConfig()
    alone = np.array([100.0, 100.0, 110.0, 150.0])
    far = np.array([300.0, 100.0, 310.0, 150.0])
    near = np.array([118.0, 100.0, 128.0, 150.0])  # each in the other's wider view
    contexts = prompt_contexts([alone, far], config)
    np.testing.assert_allclose(contexts[0], context_box(alone, config))
    assert contexts[0][2] - contexts[0][0] > 20
    contexts = prompt_contexts([alone, near, far], config)
    np.testing.assert_allclose(contexts[0], context_box(alone, config, widen=False))
    np.testing.assert_allclose(contexts[1], context_box(near, config, widen=False))
    np.testing.assert_allclose(contexts[2], context_box(far, config))


def test_pose_component_keeps_the_blob_with_the_body_landmarks():
    mask = np.zeros((100, 100), dtype=bool)
    mask[10:90, 10:40] = True  # the person (smaller)
    mask[5:95, 60:98] = True  # a larger blob beside them
    points = np.zeros((33, 2))
    points[:, 0], points[:, 1] = 25.0, np.linspace(15, 85, 33)
    visibility = np.ones(33)
    kept = pose_component(mask, points, visibility)
    assert kept[50, 25] and not kept[50, 80]
    # No visible landmark on the mask: the largest blob wins.
    kept = pose_component(mask, points, np.zeros(33))
    assert kept[50, 80] and not kept[50, 25]


def test_appearance_descriptor_separates_colours_and_halves():
    red_over_blue = np.zeros((100, 40, 3), dtype=np.uint8)
    red_over_blue[:50] = (220, 30, 30)
    red_over_blue[50:] = (30, 30, 200)
    blue_over_red = red_over_blue[::-1].copy()
    mask = np.ones((100, 40), dtype=bool)
    a = appearance_descriptor(red_over_blue, mask, split_row=50)
    b = appearance_descriptor(blue_over_red, mask, split_row=50)
    assert a.shape == (APPEARANCE_DIM,) and a.dtype == np.float32
    assert appearance_similarity(a, a) == pytest.approx(1.0)
    # Same colours, swapped between upper and lower body: hue blocks disagree.
    assert appearance_similarity(a, b) < 0.6
    assert 0.0 <= appearance_similarity(a, b) <= 1.0
    # An EMA memory (scaled, mixed) still compares in [0, 1] and prefers its own person.
    memory = 0.8 * a + 0.1 * b
    assert appearance_similarity(memory, a) > appearance_similarity(memory, b)


def test_appearance_descriptor_bins_as_histograms_over_the_documented_ranges():
    # Every hue, saturation and value the image holds, at and beside the bin edges: the
    # descriptor's integer binning matches numpy's histograms over (0, 180) x (40, 256) and
    # (0, 256), block by block, each normalised.
    import cv2

    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 90, 3), dtype=np.uint8)
    mask = rng.random((64, 90)) < 0.7
    descriptor = appearance_descriptor(rgb, mask, split_row=20.5)
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    expected = []
    for half in (np.arange(64)[:, None] < 20.5, np.arange(64)[:, None] >= 20.5):
        pixels = hsv[mask & half].astype(np.float64)
        chroma = pixels[pixels[:, 1] >= 40]
        hue_sat = np.histogram2d(
            chroma[:, 0], chroma[:, 1], bins=(12, 3), range=((0, 180), (40, 256))
        )[0]
        value = np.histogram(pixels[:, 2], bins=8, range=(0, 256))[0]
        expected += [hue_sat.ravel() / hue_sat.sum(), value / value.sum()]
    np.testing.assert_array_equal(descriptor, np.concatenate(expected).astype(np.float32))


def test_appearance_similarity_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        appearance_similarity(np.zeros(5), np.zeros(APPEARANCE_DIM))


def test_grey_clothing_is_compared_by_value_only():
    grey = np.full((60, 20, 3), 128, dtype=np.uint8)
    dark = np.full((60, 20, 3), 30, dtype=np.uint8)
    mask = np.ones((60, 20), dtype=bool)
    g, d = (appearance_descriptor(img, mask, 30) for img in (grey, dark))
    assert appearance_similarity(g, g) == pytest.approx(1.0)
    assert appearance_similarity(g, d) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"roi_scale": 0.1},
        {"crop_min_height_per_width": -1.0},
        {"mask_threshold": 1.0},
        {"visibility_zero": 0.0},
        {"min_pose_score": 1.0},
        {"min_mask_box_fraction": 1.0},
        {"context_min_width_per_height": -0.1},
        {"context_widen_below_px": -1.0},
        {"num_threads": -1},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        LiteSegmenterConfig(**kwargs)


# ---------------------------------------------------------------- the demo clip


@pytest.mark.slow
def test_follows_demo_people_in_camera_aligned_axes():
    root = Path(__file__).resolve().parents[1] / "demo"
    truth = np.load(root / "three_people_gt.npz")
    visible_box, full_box = truth["box_visible_xyxy"], truth["box_full_xyxy"]
    fraction, joints_cam = truth["visible_fraction"], truth["joints_cam"]
    capture = cv2.VideoCapture(str(root / "three_people.mp4"))
    found = total = 0
    box_ious, shoulder_cos, up_cos = [], [], []
    with BlazePoseSegmenter() as seg:
        for index in range(len(fraction)):
            ok, bgr = capture.read()
            assert ok
            people = [p for p in range(fraction.shape[1]) if fraction[index, p] > 0.7]
            prompts = [Prompt(visible_box[index, p], track_id=p) for p in people]
            results = seg.segment(
                Frame(index=index, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), prompts
            )
            for person, result in zip(people, results, strict=True):
                total += 1
                if not result:
                    continue
                found += 1
                obs = result[0]
                box_ious.append(iou_matrix(obs.box_xyxy, full_box[index, person])[0, 0])
                world, joints = obs.landmarks.world_m, joints_cam[index, person]
                # SMPL-24: 0 pelvis, 15 head, 16 / 17 left / right shoulder
                pairs = (
                    (world[LEFT_SHOULDER] - world[RIGHT_SHOULDER], joints[16] - joints[17]),
                    (world[NOSE] - world[[LEFT_HIP, RIGHT_HIP]].mean(0), joints[15] - joints[0]),
                )
                for out, (a, b) in zip((shoulder_cos, up_cos), pairs, strict=True):
                    out.append(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    capture.release()
    assert found / total >= 0.95  # measured 207 / 207
    assert np.mean(box_ious) >= 0.85  # measured 0.93
    # World landmarks share the camera's axes (x right, y down, z away from the camera).
    assert np.median(shoulder_cos) > 0.9
    assert np.median(up_cos) > 0.9


def test_exclusive_mode_never_gives_one_person_twice(people_frame):
    frame, boxes = people_frame
    twice = [Prompt(boxes[0]), Prompt(boxes[0] + np.array([4.0, 2.0, 4.0, 2.0]))]
    with BlazePoseSegmenter(LiteSegmenterConfig(exclusive=False)) as seg:
        shared = seg.segment(frame, twice)
    assert [len(r) for r in shared] == [1, 1]
    assert (shared[0][0].mask & shared[1][0].mask).sum() > 0.8 * shared[0][0].mask.sum()
    with BlazePoseSegmenter(LiteSegmenterConfig(exclusive=True)) as seg:
        apart = seg.segment(frame, twice)
    # The nearer prompt (lower box bottom) takes the person; the other finds only leftovers.
    assert [len(r) for r in apart] == [0, 1]
    np.testing.assert_array_equal(apart[1][0].mask, shared[1][0].mask)
