"""Streaming video input: probing, decoding ranges, and refusing bad files."""

from __future__ import annotations

import dataclasses
import inspect
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from ram_core.errors import BadInputError
from ram_core.video.reader import (
    DEFAULT_FPS,
    count_tolerance,
    iter_frames,
    probe_video,
    sane_fps,
    stream_frames,
)

WIDTH, HEIGHT, FPS, COUNT = 64, 48, 25.0, 30


def frame_rgb(index: int) -> np.ndarray:
    """A frame that identifies its index: a flat colour that changes with it. (H, W, 3)."""
    rgb = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    rgb[:] = ((index * 8) % 256, 255 - (index * 8) % 256, 90)
    return rgb


def write_clip(path, fourcc="mp4v", count=COUNT, fps=FPS):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for index in range(count):
        writer.write(cv2.cvtColor(frame_rgb(index), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def clip(tmp_path):
    return write_clip(tmp_path / "clip.mp4")


def nearest_written_index(rgb: np.ndarray) -> int:
    errors = [np.abs(rgb.astype(int) - frame_rgb(i)).mean() for i in range(COUNT)]
    return int(np.argmin(errors))


def test_probe_reports_what_was_written(clip):
    info = probe_video(clip)
    assert (info.width, info.height, info.frame_count) == (WIDTH, HEIGHT, COUNT)
    assert info.fps == pytest.approx(FPS)
    assert info.path == str(clip)


def test_frames_match_what_was_written(clip):
    frames = list(iter_frames(clip))
    assert [f.index for f in frames] == list(range(COUNT))
    for frame in frames:
        assert frame.rgb.shape == (HEIGHT, WIDTH, 3) and frame.rgb.dtype == np.uint8
        # mp4v is lossy; flat colours survive within a few levels, and in RGB order.
        assert np.abs(frame.rgb.astype(int) - frame_rgb(frame.index)).mean() < 4.0


def test_start_and_end_select_a_range(clip):
    frames = list(iter_frames(clip, start=17, end=23))
    assert [f.index for f in frames] == list(range(17, 23))
    # The seek lands on the right picture, not just the right counter.
    assert [nearest_written_index(f.rgb) for f in frames] == list(range(17, 23))


def test_iter_frames_is_lazy(clip):
    stream = iter_frames(clip, start=3)
    assert inspect.isgenerator(stream)
    first = next(stream)
    assert first.index == 3 and nearest_written_index(first.rgb) == 3
    stream.close()


def test_last_frame_alone(clip):
    frames = list(iter_frames(clip, start=COUNT - 1))
    assert [f.index for f in frames] == [COUNT - 1]
    assert nearest_written_index(frames[0].rgb) == COUNT - 1


@pytest.mark.parametrize(
    ("start", "end"),
    [(-1, None), (COUNT, None), (0, COUNT + 1), (5, 5), (9, 4), (1.5, None)],
)
def test_bad_range_is_refused_before_decoding(clip, start, end):
    with pytest.raises(BadInputError, match="frame"):
        iter_frames(clip, start=start, end=end)


def test_missing_path(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        probe_video(tmp_path / "nowhere.mp4")


def test_directory(tmp_path):
    with pytest.raises(BadInputError, match="folder"):
        probe_video(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty"):
        probe_video(path)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(BadInputError, match=r"notes\.mp4 cannot be read as a video"):
        probe_video(path)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "noise.avi"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, np.uint8).tobytes())
    with pytest.raises(BadInputError, match=r"noise\.avi"):
        iter_frames(path)


@pytest.mark.parametrize(("name", "fourcc"), [("zero.mp4", "mp4v"), ("zero.avi", "MJPG")])
def test_video_with_zero_frames(tmp_path, name, fourcc):
    path = write_clip(tmp_path / name, fourcc=fourcc, count=0)
    with pytest.raises(BadInputError, match=name.replace(".", r"\.")):
        probe_video(path)


def test_mp4_cut_in_half_is_refused(clip, tmp_path):
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadInputError, match=r"cut\.mp4"):
        probe_video(cut)


def test_avi_cut_in_half_is_detected_as_truncated(tmp_path):
    # An AVI keeps its frame count in the header, so a cut copy still opens and claims all
    # its frames: only decoding shows that two thirds of them are gone.
    data = write_clip(tmp_path / "whole.avi", fourcc="MJPG").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    capture = cv2.VideoCapture(str(cut), cv2.CAP_FFMPEG)
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == COUNT
    capture.release()
    with pytest.raises(BadInputError, match=r"cut\.avi is truncated"):
        probe_video(cut)


def test_decoding_that_stops_early_is_refused(clip):
    info = probe_video(clip)
    claims_more = dataclasses.replace(info, frame_count=2 * COUNT)
    stream = stream_frames(claims_more, start=COUNT - 3)
    assert next(stream).index == COUNT - 3
    with pytest.raises(BadInputError, match="truncated"):
        list(stream)


def test_a_slightly_approximate_count_ends_with_a_warning(clip):
    info = probe_video(clip)
    approximate = dataclasses.replace(info, frame_count=COUNT + count_tolerance(COUNT))
    with pytest.warns(RuntimeWarning, match="decoding stopped"):
        frames = list(stream_frames(approximate, start=COUNT - 2))
    assert [f.index for f in frames] == [COUNT - 2, COUNT - 1]


@pytest.mark.parametrize("raw", [0.0, -5.0, float("nan"), float("inf")])
def test_unusable_fps_falls_back_with_a_warning(raw):
    with pytest.warns(RuntimeWarning, match="frame rate"):
        assert sane_fps(raw, "x.mp4") == DEFAULT_FPS


def test_usable_fps_is_kept():
    assert sane_fps(29.97, "x.mp4") == pytest.approx(29.97)


def test_unreadable_permissions(clip):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    clip.chmod(0)
    try:
        with pytest.raises(BadInputError, match=r"clip\.mp4"):
            probe_video(clip)
    finally:
        clip.chmod(0o644)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_video_stored_turned_comes_out_upright(tmp_path, rotation):
    from rotated_video import write_turned_video

    upright = []
    for index in range(6):
        frame = np.full((48, 80, 3), 40, np.uint8)
        frame[:16, :24] = (230, 30, 30)  # a red block in the top-left corner
        frame[-8:, -8:] = (30, 30, 30 + 30 * index)
        upright.append(frame)
    path = write_turned_video(tmp_path / f"turned{rotation}.mp4", upright, rotation)
    stored = cv2.VideoCapture(str(path))
    stored.set(cv2.CAP_PROP_ORIENTATION_AUTO, 0)  # OpenCV 4.12 and later turn by default
    ok, raw = stored.read()
    stored.release()
    assert ok and (raw.shape[:2] == (80, 48)) == (rotation != 180)  # sideways in the file
    info = probe_video(path)
    assert (info.width, info.height, info.rotation_deg) == (80, 48, rotation)
    frames = list(iter_frames(path))
    assert len(frames) == 6 and frames[0].rgb.shape == (48, 80, 3)
    red = np.argwhere((frames[0].rgb[..., 0] > 150) & (frames[0].rgb[..., 1] < 100))
    assert red.mean(axis=0) == pytest.approx([7.5, 11.5], abs=1.5)


# ---------------------------------------------------------------- variable frame rate

VFR_CLIP = os.path.join(os.path.dirname(__file__), "fixtures", "vfr_clip.mp4")


def _binary_index(rgb: np.ndarray) -> int:
    """The frame index tools/make_vfr_fixture.py wrote into a frame (white columns = 1s)."""
    return sum(1 << b for b in range(8) if rgb[:, b * 16 + 4 : (b + 1) * 16 - 4, 1].mean() > 127)


def test_variable_frame_rate_clip_is_read_on_blenders_grid():
    import json

    from ram_core.video.reader import probe_video, stream_frames

    expected = json.loads(Path(VFR_CLIP).with_suffix(".json").read_text())
    info = probe_video(VFR_CLIP)
    assert (info.fps, info.frame_count) == (expected["fps"], len(expected["strip_shows"]))
    assert list(info.frame_sources) == expected["strip_shows"]
    assert [_binary_index(f.rgb) for f in stream_frames(info)] == expected["strip_shows"]
    # A range starting inside the slow stretch (where frames repeat) reads the same frames.
    assert [_binary_index(f.rgb) for f in stream_frames(info, 13, 20)] == expected[
        "strip_shows"
    ][13:20]


def test_constant_rate_clip_keeps_its_decoded_frames(clip):
    from ram_core.video.reader import probe_video

    assert probe_video(clip).frame_sources is None


def test_timing_grid_repeats_and_skips_frames():
    from ram_core.video.timing import (
        constant_rate_frame_count,
        constant_rate_sources,
        is_variable_rate,
    )

    steady = np.arange(10) / 30
    assert not is_variable_rate(steady, 30.0)
    assert constant_rate_frame_count(steady, 30.0) == 10
    # A 15 fps stretch shows each frame twice; a 60 fps one skips every other frame.
    slow = np.array([0, 1, 2, 4, 6, 7]) / 30
    assert is_variable_rate(slow, 30.0)
    assert constant_rate_sources(slow, 30.0, 8).tolist() == [0, 1, 2, 2, 3, 3, 4, 5]
    fast = np.array([0, 1, 1.5, 2, 2.5, 3]) / 30
    assert constant_rate_sources(fast, 30.0, 4).tolist() == [0, 1, 3, 5]
    assert constant_rate_frame_count(slow, 30.0) == 8
