"""The tracking loop's detector runs ahead, on a thread of its own: same detections, same
order, a bounded read-ahead, and failures that reach the loop."""

from __future__ import annotations

import os
import sys
import threading

import numpy as np
import pytest

from ram_core.pipeline import (
    DETECTIONS_AHEAD,
    HELPER_THREAD_NICE,
    StageTimer,
    _frames_with_detections,
)
from ram_core.types import Detection, Frame

EVERY = 3


class CountingFrames:
    """Frames 0..n-1, counting how many were read."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read = 0

    def __iter__(self):
        for index in range(self.count):
            self.read = index + 1
            yield Frame(index, np.full((4, 4, 3), index, dtype=np.uint8))


class RecordingDetector:
    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.seen: list[int] = []
        self.threads: set[str] = set()
        self.nice: set[int] = set()

    def detect(self, frame: Frame) -> list[Detection]:
        self.threads.add(threading.current_thread().name)
        if sys.platform == "linux":
            self.nice.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        if frame.index == self.fail_at:
            raise RuntimeError(f"the detector broke on frame {frame.index}")
        self.seen.append(frame.index)
        box = np.array([frame.index, 0.0, frame.index + 1.0, 2.0])
        return [Detection(box_xyxy=box, score=0.9)]


def test_detections_come_with_their_frames_in_order_from_another_thread():
    source = CountingFrames(11)
    detector = RecordingDetector()
    timer = StageTimer()
    frames = _frames_with_detections(iter(source), lambda f: f.index % EVERY == 0, detector, timer)
    handed = []
    for frame, detecting in frames:
        # At most DETECTIONS_AHEAD detection intervals are read past the frame handed out,
        # and that many are queued when the source has them.
        assert source.read <= frame.index + DETECTIONS_AHEAD * EVERY + 1
        assert source.read >= min(source.count, frame.index + (DETECTIONS_AHEAD - 1) * EVERY + 1)
        found = None if detecting is None else detecting.result()
        handed.append(frame.index)
        assert (found is not None) == (frame.index % EVERY == 0)
        if found is not None:
            assert found[0].box_xyxy[0] == frame.index
    assert handed == list(range(11))
    assert detector.seen == [0, 3, 6, 9]
    assert detector.threads and threading.current_thread().name not in detector.threads
    assert timer.calls["detect"] == 4


def test_a_failing_detector_fails_the_loop_and_stops_the_thread():
    detector = RecordingDetector(fail_at=3)
    frames = _frames_with_detections(
        iter(CountingFrames(20)), lambda f: f.index % EVERY == 0, detector, StageTimer()
    )
    with pytest.raises(RuntimeError, match="broke on frame 3"):
        for _, detecting in frames:
            if detecting is not None:
                detecting.result()
    frames.close()
    assert not any(t.name.startswith("ram-detect") for t in threading.enumerate())


@pytest.mark.skipif(sys.platform != "linux", reason="a thread's own nice value is Linux's")
def test_the_detector_thread_yields_the_cores_to_the_segmenter():
    detector = RecordingDetector()
    main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    frames = _frames_with_detections(
        iter(CountingFrames(4)), lambda f: True, detector, StageTimer()
    )
    for _, detecting in frames:
        detecting.result()
    assert detector.nice == {max(main_nice, HELPER_THREAD_NICE)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_nice
