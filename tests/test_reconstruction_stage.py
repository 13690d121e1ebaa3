"""The reconstruction stage as the pipeline drives it: once per frame, confirmed tracks only,
each track's frames in order, ``forget`` after a track's last frame, confidence kept."""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections import defaultdict

import numpy as np
from test_ablations import GroundTruthWorld
from test_bench_scenes import tiny_ground_truth, write_scene

from ram_core.config import RunConfig
from ram_core.eval.bench_scenes import load_scene
from ram_core.io.result import load_result
from ram_core.models.backends import Backend
from ram_core.pipeline import HELPER_THREAD_NICE, run_pipeline
from ram_core.track.segfollow import SegFollowConfig


class RecordingReconstructor:
    """The ground truth's reconstructor, with every call written down."""

    def __init__(self, inner: GroundTruthWorld) -> None:
        self.inner = inner
        self.rest_skeleton = inner.rest_skeleton
        self.calls: list[tuple[int, list[int]]] = []
        self.forgotten: list[tuple[int, int]] = []  # (after this many calls, track)
        self.confidence: dict[tuple[int, int], float] = {}
        self.nice: set[int] = set()  # of the threads it ran on

    def reconstruct(self, frame, tracks, camera):
        self.calls.append((frame.index, [t.track_id for t in tracks]))
        if sys.platform == "linux":
            self.nice.add(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        for track in tracks:
            assert track.mask.shape == frame.rgb.shape[:2] and track.mask.any()
            assert 0.0 <= track.reliability <= 1.0 and track.box_xyxy.shape == (4,)
        estimates = []
        truth = self.inner.reconstruct(frame, tracks, camera)
        for track, estimate in zip(tracks, truth, strict=True):
            confidence = 0.25 + 0.5 * ((frame.index + track.track_id) % 3) / 2
            self.confidence[(track.track_id, frame.index)] = confidence
            estimates.append(dataclasses.replace(estimate, confidence=confidence))
        return estimates

    def forget(self, track_id: int) -> None:
        self.forgotten.append((len(self.calls), track_id))


def test_the_pipeline_drives_the_stage_by_the_contract(tmp_path):
    frames = 12
    gt = tiny_ground_truth(frames)
    scene = load_scene(write_scene(tmp_path, frames=frames, gt={"joints_cam": gt["joints_cam"]}))
    world = GroundTruthWorld(scene)
    recorder = RecordingReconstructor(world)
    # The tiny scene's people (20 x 40 px) are below the default birth size.
    config = RunConfig(segfollow=SegFollowConfig(birth_min_size_px=(10.0, 20.0)))
    out = run_pipeline(
        scene.video_path,
        tmp_path / "out.ram",
        config=config,
        stages=Backend("truth", world, world, recorder, {}, "test"),
    )
    result = load_result(out)

    called_frames = [frame for frame, _ in recorder.calls]
    assert called_frames == sorted(set(called_frames))  # once per frame, in order
    per_track: dict[int, list[int]] = defaultdict(list)
    for frame, track_ids in recorder.calls:
        for track_id in track_ids:
            per_track[track_id].append(frame)
    # Only confirmed tracks, each from its first frame (held back until confirmed).
    assert set(per_track) == set(result.track_ids().tolist())
    for track_id, track_frames in per_track.items():
        rows = result.track(track_id)
        assert track_frames == rows["frame"][rows["recon_valid"]].tolist()
        assert track_frames[0] == int(rows["frame"][0])
        np.testing.assert_allclose(
            rows["recon_confidence"][rows["recon_valid"]],
            [recorder.confidence[(track_id, f)] for f in track_frames],
        )
        assert np.all(rows["recon_confidence"][~rows["recon_valid"]] == 0.0)
    # forget: once per track, after its last reconstruction.
    forgotten = [track_id for _, track_id in recorder.forgotten]
    assert sorted(forgotten) == sorted(set(forgotten)) and set(per_track) <= set(forgotten)
    for calls_before, track_id in recorder.forgotten:
        assert all(track_id not in ids for _, ids in recorder.calls[calls_before:])
    assert result.rest_skeleton["kind"] == "builtin" and result.rest_skeleton["recorded"]
    if sys.platform == "linux":  # on a thread that yields the cores to the segmenter
        main_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert recorder.nice == {max(main_nice, HELPER_THREAD_NICE)}


class RecordingFramesReconstructor(RecordingReconstructor):
    """The same, solving several frames per call (``FramesReconstructor``)."""

    def __init__(self, inner: GroundTruthWorld) -> None:
        super().__init__(inner)
        self.batches: list[list[int]] = []

    def reconstruct_frames(self, frames, camera):
        self.batches.append([frame.index for frame, _ in frames])
        return [self.reconstruct(frame, tracks, camera) for frame, tracks in frames]


def test_frames_solved_together_give_what_frames_solved_one_by_one(tmp_path):
    frames = 12
    gt = tiny_ground_truth(frames)
    scene = load_scene(write_scene(tmp_path, frames=frames, gt={"joints_cam": gt["joints_cam"]}))
    config = RunConfig(segfollow=SegFollowConfig(birth_min_size_px=(10.0, 20.0)))
    results = {}
    recorders = {}
    for name, kind in (("one", RecordingReconstructor), ("many", RecordingFramesReconstructor)):
        world = GroundTruthWorld(scene)
        recorders[name] = kind(world)
        out = run_pipeline(
            scene.video_path,
            tmp_path / f"{name}.ram",
            config=config,
            stages=Backend("truth", world, world, recorders[name], {}, "test"),
        )
        results[name] = load_result(out)
    batches = recorders["many"].batches
    assert max(len(b) for b in batches) > 1  # frames did go together
    assert [f for b in batches for f in b] == list(range(frames))  # every frame, in order
    many = recorders["many"]
    assert sorted(t for _, t in many.forgotten) == sorted(t for _, t in recorders["one"].forgotten)
    for calls_before, track_id in many.forgotten:  # after the track's last reconstruction
        assert all(track_id not in ids for _, ids in many.calls[calls_before:])
    for column, values in results["one"].tracks.items():
        np.testing.assert_array_equal(results["many"].tracks[column], values, err_msg=column)
