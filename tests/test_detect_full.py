import copy
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.detect.keypoint_rcnn import (
    COCO_KEYPOINTS,
    PERSON_LABEL,
    WEIGHTS_NAME,
    FullDetectorConfig,
    KeypointRcnnDetector,
    build_keypoint_rcnn,
    detections_from_outputs,
    keypoint_prompts,
    sigmoid,
)
from ram_core.errors import BadInputError, MissingModelError
from ram_core.types import Frame

FIXTURES = Path(__file__).parent / "fixtures"

try:
    import torch
    import torchvision  # noqa: F401  (a CUDA/CPU build mismatch fails here, not later)

    TORCH_MISSING = None
except (ImportError, RuntimeError) as exc:
    TORCH_MISSING = exc

# The README's test command and CI set RAM_REQUIRE_FULL=1: there a missing torch fails.
needs_torch = pytest.mark.skipif(
    TORCH_MISSING is not None and os.environ.get("RAM_REQUIRE_FULL") != "1",
    reason=f"torch / torchvision not importable ({TORCH_MISSING})",
)

# Small enough for a CPU test: a 640x360 frame is seen at 341x192.
TEST_CONFIG = FullDetectorConfig(score_threshold=0.1, min_side=192, max_side=342, max_detections=4)


@pytest.fixture(scope="module")
def people_frame():
    bgr = cv2.imread(str(FIXTURES / "people_frame.png"))
    return Frame(index=0, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


@pytest.fixture(scope="module")
def reference_model():
    """torchvision's own builder, random weights: the layout a trainable model saves."""
    from torchvision.models.detection import keypointrcnn_resnet50_fpn

    torch.manual_seed(0)
    return keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None).eval()


@pytest.fixture(scope="module")
def weights_file(reference_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / f"{WEIGHTS_NAME}.pth"
    torch.save(reference_model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def detector(weights_file):
    with KeypointRcnnDetector(weights_file, TEST_CONFIG, device="cpu") as det:
        yield det


@pytest.fixture(scope="module")
def detections(detector, people_frame):
    return detector.detect(people_frame)


# ---------------------------------------------------------------- the real network


@needs_torch
def test_detections_are_well_formed(detections, people_frame):
    height, width = people_frame.rgb.shape[:2]
    assert len(detections) >= 1  # random weights still score some boxes above 0.1
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True)
    for det in detections:
        x0, y0, x1, y1 = det.box_xyxy
        assert det.box_xyxy.shape == (4,) and det.box_xyxy.dtype == np.float64
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert TEST_CONFIG.score_threshold <= det.score <= 1.0
        assert det.keypoints.shape == (17, 3) and np.all(np.isfinite(det.keypoints))
        assert np.all((det.keypoints[:, 2] >= 0) & (det.keypoints[:, 2] <= 1))
        # Keypoint R-CNN places each keypoint inside its own box (heatmap over the box).
        xy = det.keypoints[:, :2]
        assert np.all((xy[:, 0] >= x0 - 1) & (xy[:, 0] <= x1 + 1))
        assert np.all((xy[:, 1] >= y0 - 1) & (xy[:, 1] <= y1 + 1))


@needs_torch
def test_boxes_come_back_in_full_frame_pixels(detector, detections, people_frame):
    # Twice the frame is resized to the same 341x192 network input: the boxes must come
    # back twice as large, and reach past that input's size.
    big = Frame(1, cv2.resize(people_frame.rgb, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR))
    big_detections = detector.detect(big)
    assert big_detections
    boxes = np.array([d.box_xyxy for d in big_detections])
    assert boxes[:, 2].max() > 342 or boxes[:, 3].max() > 192
    from ram_core.detect.boxes import iou

    assert iou(big_detections[0].box_xyxy / 2, detections[0].box_xyxy) > 0.8


@needs_torch
def test_network_matches_torchvisions_builder(detector, reference_model):
    # Same weights; the builder's eval-mode batch norm given our frozen one's eps (0):
    # the feature pyramids agree.
    reference = copy.deepcopy(reference_model)
    for module in reference.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eps = 0.0
    torch.manual_seed(1)
    image = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        ours = detector._model.backbone(image)
        theirs = reference.backbone(image)
    assert list(ours) == list(theirs)
    for level in ours:
        torch.testing.assert_close(ours[level], theirs[level], rtol=1e-4, atol=1e-5)


@needs_torch
def test_frozen_layout_without_batch_counters_loads(detector, tmp_path):
    # The published COCO file comes from a frozen-batch-norm model: no num_batches_tracked.
    state = detector._model.state_dict()
    assert not any("num_batches_tracked" in key for key in state)
    path = tmp_path / "frozen.pth"
    torch.save(state, path)
    KeypointRcnnDetector(path, TEST_CONFIG).close()


@needs_torch
def test_missing_file_names_the_download_command(tmp_path):
    path = tmp_path / "nowhere" / f"{WEIGHTS_NAME}.pth"
    with pytest.raises(MissingModelError) as info:
        KeypointRcnnDetector(path)
    assert str(path) in str(info.value)
    assert f"ram-core weights download {WEIGHTS_NAME}" in str(info.value)
    assert info.value.exit_code == 3


@needs_torch
@pytest.mark.parametrize("content", [b"not a torch file at all", b""])
def test_corrupt_file_is_refused(tmp_path, content):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(MissingModelError, match="corrupt") as info:
        KeypointRcnnDetector(path)
    assert str(path) in str(info.value)


@needs_torch
def test_truncated_file_is_refused(weights_file, tmp_path):
    path = tmp_path / "truncated.pth"
    path.write_bytes(weights_file.read_bytes()[:100_000])
    with pytest.raises(MissingModelError, match="corrupt"):
        KeypointRcnnDetector(path)


@needs_torch
def test_file_without_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(3)], path)
    with pytest.raises(MissingModelError, match="no state dict"):
        KeypointRcnnDetector(path)


@needs_torch
def test_wrong_architecture_is_refused(tmp_path):
    path = tmp_path / "linear.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(MissingModelError, match="not a Keypoint R-CNN") as info:
        KeypointRcnnDetector(path, TEST_CONFIG)
    message = str(info.value)
    assert str(path) in message and "missing" in message and "unexpected" in message


@needs_torch
def test_wrong_number_of_keypoints_is_refused(weights_file, tmp_path):
    state = torch.load(weights_file, weights_only=True)
    # A 14-keypoint head (another dataset's skeleton) in an otherwise identical model.
    weight = "roi_heads.keypoint_predictor.kps_score_lowres.weight"  # (in, keypoints, 4, 4)
    bias = "roi_heads.keypoint_predictor.kps_score_lowres.bias"  # (keypoints,)
    state[weight], state[bias] = state[weight][:, :14], state[bias][:14]
    path = tmp_path / "fourteen.pth"
    torch.save(state, path)
    with pytest.raises(MissingModelError, match="wrong shape"):
        KeypointRcnnDetector(path, TEST_CONFIG)


@needs_torch
def test_devices(weights_file):
    with pytest.raises(BadInputError, match="unknown device"):
        KeypointRcnnDetector(weights_file, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BadInputError, match="no CUDA device"):
            KeypointRcnnDetector(weights_file, device="cuda")


@needs_torch
def test_closed_detector_refuses(weights_file, people_frame):
    det = KeypointRcnnDetector(weights_file, TEST_CONFIG)
    det.close()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(people_frame)


@pytest.mark.gpu
@needs_torch
def test_half_precision_on_cuda(weights_file, people_frame):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    with KeypointRcnnDetector(weights_file, TEST_CONFIG, device="cuda") as det:
        for d in det.detect(people_frame):
            assert np.all(np.isfinite(d.box_xyxy)) and np.all(np.isfinite(d.keypoints))


# ---------------------------------------------------------------- post-processing


def keypoint_grid(offset):
    """(17, 2) keypoints at distinct positions shifted by offset."""
    return np.stack([np.arange(17) * 2.0 + offset, np.arange(17) * 3.0 + offset], axis=1)


def test_postprocessing_filters_sorts_and_maps_scores():
    boxes = np.array(
        [[10, 20, 50, 120], [-5, -8, 700, 400], [100, 100, 140, 200], [0, 0, 10, 10]], float
    )
    labels = np.array([PERSON_LABEL, PERSON_LABEL, PERSON_LABEL, 7])
    scores = np.array([0.6, 0.9, 0.5, 0.99])
    keypoints = np.stack([
        np.concatenate([keypoint_grid(i), np.ones((17, 1))], 1) for i in range(4)
    ])  # fmt: skip
    logits = np.tile(np.linspace(-3, 3, 17), (4, 1))
    logits[1, 0] = -1000.0  # far below: must not overflow
    found = detections_from_outputs(boxes, labels, scores, keypoints, logits, 640, 360, 0.55)
    # label 7 is no person, 0.5 is under the threshold; highest score first
    assert [d.score for d in found] == [0.9, 0.6]
    np.testing.assert_allclose(found[0].box_xyxy, [0, 0, 640, 360])  # clipped to the frame
    np.testing.assert_allclose(found[1].box_xyxy, boxes[0])
    np.testing.assert_allclose(found[0].keypoints[:, :2], keypoint_grid(1))
    np.testing.assert_allclose(found[1].keypoints[:, :2], keypoint_grid(0))
    expected = 1 / (1 + np.exp(-np.linspace(-3, 3, 17)))
    np.testing.assert_allclose(found[1].keypoints[:, 2], expected)
    assert found[0].keypoints[0, 2] == 0.0 and found[0].keypoints[8, 2] == 0.5


def test_postprocessing_threshold_is_inclusive_and_accepts_xy_keypoints():
    found = detections_from_outputs(
        np.array([[1.0, 2.0, 3.0, 4.0]]),
        np.array([PERSON_LABEL]),
        np.array([0.5]),
        keypoint_grid(0)[None],
        np.full((1, 17), 2.0),
        10,
        10,
        0.5,
    )
    assert len(found) == 1
    np.testing.assert_allclose(found[0].keypoints[:, 2], 0.8807970779778823)


def test_postprocessing_of_nothing_and_of_inconsistent_shapes():
    empty = detections_from_outputs(
        np.zeros((0, 4)), np.zeros(0), np.zeros(0), np.zeros((0, 17, 3)), np.zeros((0, 17)),
        640, 360, 0.5,
    )  # fmt: skip
    assert empty == []
    with pytest.raises(ValueError, match="inconsistent"):
        detections_from_outputs(
            np.zeros((2, 4)), np.ones(2), np.ones(2), np.zeros((2, 14, 3)), np.zeros((2, 14)),
            640, 360, 0.5,
        )  # fmt: skip


def test_sigmoid_is_the_logistic_function_without_overflow():
    np.testing.assert_allclose(sigmoid(np.array([0.0, 2.0, -2.0])), [0.5, 0.880797, 0.119203],
                               atol=1e-6)  # fmt: skip
    with np.errstate(over="raise"):
        assert sigmoid(np.array([-1e4]))[0] == 0.0
        assert sigmoid(np.array([1e4]))[0] == 1.0


# ---------------------------------------------------------------- prompts


def test_keypoint_prompts_take_confident_shoulders_hips_and_knees():
    keypoints = np.zeros((17, 3))
    keypoints[:, 0] = np.arange(17) * 10.0
    keypoints[:, 1] = np.arange(17) * 5.0
    keypoints[:, 2] = 0.95
    names = list(COCO_KEYPOINTS)
    keypoints[names.index("right_hip"), 2] = 0.4  # unsure: left out
    keypoints[names.index("left_knee"), 2] = 0.88  # at the threshold: kept
    points, labels = keypoint_prompts(keypoints, min_score=0.88)
    wanted = ["left_shoulder", "right_shoulder", "left_hip", "left_knee", "right_knee"]
    expected = keypoints[[names.index(n) for n in wanted], :2]
    np.testing.assert_allclose(points, expected)
    assert labels.dtype == np.int32 and labels.tolist() == [1] * 5


def test_keypoint_prompts_when_nothing_is_confident():
    keypoints = np.zeros((17, 3))
    keypoints[:, 2] = 0.3
    keypoints[0, 2] = 0.99  # a confident nose is not a prompt keypoint
    points, labels = keypoint_prompts(keypoints, min_score=0.5)
    assert points.shape == (0, 2) and labels.shape == (0,)


def test_keypoint_prompts_skip_non_finite_and_check_the_shape():
    keypoints = np.ones((17, 3))
    keypoints[5, 0] = np.nan
    points, _ = keypoint_prompts(keypoints, min_score=0.5)
    assert len(points) == 5 and np.all(np.isfinite(points))
    with pytest.raises(ValueError, match="shape"):
        keypoint_prompts(np.ones((17, 2)), 0.5)


def test_config_validation():
    with pytest.raises(ValueError, match="score_threshold"):
        FullDetectorConfig(score_threshold=1.5)
    with pytest.raises(ValueError, match="max_side"):
        FullDetectorConfig(min_side=800, max_side=600)
    with pytest.raises(ValueError, match="min_side"):
        FullDetectorConfig(min_side=8, max_side=600)


@needs_torch
def test_model_filters_boxes_below_the_threshold_itself():
    model = build_keypoint_rcnn(FullDetectorConfig(score_threshold=0.6, max_detections=7))
    assert model.roi_heads.score_thresh == 0.6
    assert model.roi_heads.detections_per_img == 7
    assert model.transform.min_size == (640,) and model.transform.max_size == 1066
