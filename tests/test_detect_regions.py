"""Detection in windows around hidden people: the windows, and the boxes found in them."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.detect.boxes import iou_matrix
from ram_core.detect.lite import YoloV4TinyDetector
from ram_core.detect.regions import detect_in_windows, merge_windows
from ram_core.types import Detection, Frame

FIXTURES = Path(__file__).parent / "fixtures"


class WindowDetector:
    """Finds one person at a fixed place of whatever it is shown, and records the sizes."""

    def __init__(self, box: list[float]) -> None:
        self.box = np.array(box, dtype=np.float64)
        self.shapes: list[tuple[int, int]] = []

    def detect(self, frame: Frame) -> list[Detection]:
        self.shapes.append(frame.rgb.shape[:2])
        keypoints = np.array([[5.0, 6.0, 1.0]])
        return [Detection(box_xyxy=self.box.copy(), score=0.9, keypoints=keypoints)]


def test_windows_grow_to_the_least_side_and_stay_in_the_frame():
    (window,) = merge_windows([np.array([-10.0, 50.0, 10.0, 60.0])], 200, 100, 64.0)
    assert window.tolist() == [0, 23, 32, 87]
    assert window.dtype.kind == "i"


def test_overlapping_windows_join_and_apart_ones_do_not():
    boxes = ([0, 0, 50, 50], [40, 40, 90, 90], [85, 0, 95, 10])
    regions = [np.array(box, dtype=float) for box in boxes]
    windows = merge_windows(regions, 300, 300, 0.0)
    # The first two overlap; their union reaches the third, which joins too.
    assert [w.tolist() for w in windows] == [[0, 0, 95, 90]]
    regions = [np.array([0.0, 0, 20, 20]), np.array([200.0, 0, 220, 20])]
    apart = merge_windows(regions, 300, 300, 0.0)
    assert len(apart) == 2


def test_boxes_come_back_in_frame_pixels_and_cut_people_are_left_out():
    frame = Frame(index=7, rgb=np.zeros((100, 200, 3), dtype=np.uint8))
    inside = WindowDetector([10.0, 10.0, 20.0, 40.0])
    (found,) = detect_in_windows(inside, frame, [np.array([50, 20, 110, 90])], 0.5)
    assert found.box_xyxy.tolist() == [60.0, 30.0, 70.0, 60.0]
    assert found.keypoints[0].tolist() == [55.0, 26.0, 1.0]
    assert inside.shapes == [(70, 60)]
    # A box against a window side inside the frame is a person the window cuts...
    cut = WindowDetector([0.0, 10.0, 20.0, 40.0])
    assert detect_in_windows(cut, frame, [np.array([50, 20, 110, 90])], 0.5) == []
    # ...but against the frame's own side it is the person as the frame shows them.
    (edge,) = detect_in_windows(cut, frame, [np.array([0, 20, 60, 90])], 0.5)
    assert edge.box_xyxy.tolist() == [0.0, 30.0, 20.0, 60.0]


def test_windows_covering_most_of_the_frame_detect_it_whole():
    frame = Frame(index=0, rgb=np.zeros((100, 200, 3), dtype=np.uint8))
    detector = WindowDetector([10.0, 10.0, 20.0, 40.0])
    (found,) = detect_in_windows(detector, frame, [np.array([0, 0, 150, 100])], 0.5)
    assert detector.shapes == [(100, 200)]
    assert found.box_xyxy.tolist() == [10.0, 10.0, 20.0, 40.0]
    assert detect_in_windows(detector, frame, [], 0.5) == []


def test_yolov4_tiny_finds_a_person_in_a_window_where_it_finds_them_in_the_frame():
    bgr = cv2.imread(str(FIXTURES / "people_frame.png"))
    frame = Frame(index=0, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    truth = np.array(json.loads((FIXTURES / "people_frame.json").read_text()), dtype=float)
    height, width = frame.rgb.shape[:2]
    windows = merge_windows([truth[1] + [-40, -20, 40, 20]], width, height, 128.0)
    found = detect_in_windows(YoloV4TinyDetector(), frame, windows, 0.9)
    assert len(found) == 1
    assert iou_matrix(found[0].box_xyxy, truth[1])[0, 0] >= 0.7


class HiddenSomewhere:
    """A tracker with someone hidden around ``region`` (nobody when None)."""

    def __init__(self, region: list[float] | None) -> None:
        self.region = region

    def search_regions(self) -> list[np.ndarray]:
        return [] if self.region is None else [np.array(self.region, dtype=np.float64)]


def _parts(search_detector):
    from ram_core.models.backends import Backend

    return Backend("test", None, None, None, {}, "test", search_detector=search_detector)


def test_the_tracking_loop_searches_every_nth_frame_while_someone_is_hidden():
    from ram_core.config import PipelineConfig, RunConfig
    from ram_core.pipeline import StageTimer, _search_hidden

    frame = Frame(index=12, rgb=np.zeros((360, 640, 3), dtype=np.uint8))
    config = RunConfig(pipeline=PipelineConfig(search_every=2, search_min_window_px=64.0))
    detector = WindowDetector([10.0, 10.0, 30.0, 60.0])
    timer = StageTimer()
    hidden = HiddenSomewhere([300.0, 100.0, 340.0, 200.0])
    (found,) = _search_hidden(frame, 4, hidden, _parts(detector), config, timer)
    assert detector.shapes == [(100, 64)]  # the region, widened to the least window side
    assert found.box_xyxy.tolist() == [298.0, 110.0, 318.0, 160.0]
    assert timer.calls["search"] == 1
    # Odd frames, nobody hidden, no detector of its own, or searching off: no search.
    assert _search_hidden(frame, 5, hidden, _parts(detector), config, timer) is None
    assert _search_hidden(frame, 4, HiddenSomewhere(None), _parts(detector), config, timer) is None
    assert _search_hidden(frame, 4, hidden, _parts(None), config, timer) is None
    off = RunConfig(pipeline=PipelineConfig(search_every=0))
    assert _search_hidden(frame, 4, hidden, _parts(detector), off, timer) is None
    assert _search_hidden(frame, 4, object(), _parts(detector), config, timer) is None
    assert len(detector.shapes) == 1


def test_the_lite_backend_has_a_second_detector_only_when_searching():
    from ram_core.config import PipelineConfig, RunConfig
    from ram_core.models.backends import resolve_backend

    searching = resolve_backend("lite", "cpu", RunConfig())
    try:
        assert type(searching.search_detector) is type(searching.detector)
        assert searching.search_detector is not searching.detector
        # It sees at most search_max_side_px, the regular one the whole frame.
        assert searching.search_detector.config.yolo_max_side_px == 512
        assert searching.detector.config.yolo_max_side_px == 1024
    finally:
        searching.close()
    plain = resolve_backend("lite", "cpu", RunConfig(pipeline=PipelineConfig(search_every=0)))
    try:
        assert plain.search_detector is None
    finally:
        plain.close()


def test_the_search_detectors_largest_input_must_be_a_network_size():
    from ram_core.config import PipelineConfig

    with pytest.raises(ValueError, match="search_max_side_px"):
        PipelineConfig(search_max_side_px=16)
