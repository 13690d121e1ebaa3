"""Wires the stages: video -> detect every K frames -> SegFollow -> reconstruct -> Predictor
+ Combiner -> result folder (+ preview).

Frames stream through one at a time. Tracks are reported a few frames late
(``SegFollowConfig.confirmation_delay``) so that a new person's first frames are kept once
the track is confirmed, and a false start is never written. The reconstruction stage runs
at that release, once per frame for every confirmed and observed track, so it sees each
track's frames in order and never a false start; a track's ``forget`` follows its last
frame. Only ``confirmation_delay`` frames are held back, so memory stays flat.

Two stages can be swapped by a caller (the ablations in ``ram_core.eval.ablations`` do): the
tracker (``tracking``: a factory that wraps the segmenter in SegFollow by default, or in
another tracker with SegFollow's ``step`` / ``is_confirmed`` contract) and the fusion of
reconstruction and prediction at the end (``fusion``: Predictor + Combiner by default).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import itertools
import os
import platform
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ram_core import __version__
from ram_core.body.skeleton import REST_JOINTS_M
from ram_core.config import RunConfig, config_to_dict
from ram_core.detect.boxes import box_area, bridge_gaps, intersection_matrix, short_dropouts
from ram_core.detect.regions import detect_in_windows, merge_windows
from ram_core.io.palette import track_color
from ram_core.io.progress import NoProgress, Progress
from ram_core.io.result import CAMERA_FILE_NAME, TRACK_ARRAYS, ResultWriter, check_output_path
from ram_core.models.backends import Backend, resolve_backend
from ram_core.motion.feet import plant_feet
from ram_core.motion.fusion import fuse_tracks
from ram_core.motion.recombine import check_learned_models, store_learned_models
from ram_core.motion.world import (
    camera_to_world_per_frame,
    camera_to_world_rows,
    estimate_world,
    nearest_frame,
)
from ram_core.track.segfollow import SegFollow
from ram_core.types import (
    BodyEstimate,
    CameraIntrinsics,
    Detection,
    Detector,
    Frame,
    FramesReconstructor,
    MemorySegmenter,
    Observation,
    Prompt,
    Reconstructor,
    Segmenter,
    TrackFrame,
    TrackObservation,
    VideoInfo,
)
from ram_core.video.camera_motion import BackgroundTracker
from ram_core.video.reader import frame_range, probe_video, stream_frames


class FrameTracker(Protocol):
    """What the pipeline needs from a tracker: SegFollow's contract.

    ``step`` returns a row for every live track (seen or coasting); a track missing from a
    frame's rows has ended for good, and the reconstruction stage is told to forget it.
    """

    def step(
        self, frame: Frame, detections: Sequence[Detection] | None = None
    ) -> list[TrackFrame]: ...

    def is_confirmed(self, track_id: int) -> bool: ...


@dataclass(frozen=True)
class TrackingStage:
    """A tracker and how many frames its rows must be held back: a new track is known to
    be confirmed or dropped at most this many frames after its birth."""

    tracker: FrameTracker
    confirmation_delay: int


TrackerFactory = Callable[[Segmenter, RunConfig, float], TrackingStage]
"""Builds the tracking stage around the (timed) segmenter of a run, for the video's frame
rate."""

TrackFusion = Callable[[dict[str, np.ndarray], RunConfig], dict[str, np.ndarray]]
"""Turns the tracked table (``recon_*`` filled) into the final one (``pred_*``, ``gate``,
final pose)."""


def segfollow_tracking(segmenter: Segmenter, config: RunConfig, fps: float) -> TrackingStage:
    """The pipeline's own tracker: SegFollow with the run's settings."""
    return TrackingStage(
        SegFollow(segmenter, config.segfollow, fps), config.segfollow.confirmation_delay
    )


def predictor_combiner_fusion(
    table: dict[str, np.ndarray], config: RunConfig
) -> dict[str, np.ndarray]:
    """The pipeline's own fusion: the Predictor and the Combiner (``fuse_tracks``)."""
    return fuse_tracks(table, config.predictor, config.combiner)


# Frames handed to the release worker at a time (see ``_track``).
RELEASE_FRAMES = 5


@dataclass
class StageTimer:
    """Wall time per stage, summed over the run."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:  # the reconstruction may run on a worker thread
            self.seconds[stage] += seconds
            self.calls[stage] += 1


class _TimedSegmenter:
    """Lets the timer tell the segmenter's time from the tracker's own logic.

    Forwards ``forget`` (a track ended) when the segmenter has it; ``timed_segmenter``
    picks the subclass that also forwards ``commit`` for a ``MemorySegmenter``, so the
    tracker sees the same kind of segmenter it would see unwrapped.
    """

    def __init__(self, inner: Segmenter, timer: StageTimer) -> None:
        self.inner = inner
        self.timer = timer

    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        t0 = time.perf_counter()
        try:
            return self.inner.segment(frame, prompts)
        finally:
            self.timer.add("segment", time.perf_counter() - t0)

    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        return self.inner.appearance_similarity(memory, appearance)

    def forget(self, track_id: int) -> None:
        forget = getattr(self.inner, "forget", None)
        if forget is not None:
            forget(track_id)


class _TimedMemorySegmenter(_TimedSegmenter):
    """``_TimedSegmenter`` for a ``MemorySegmenter`` (SAM2): its memory writes count as
    segmenter time too."""

    inner: MemorySegmenter

    def commit(
        self,
        frame_index: int,
        track_id: int,
        observation: Observation,
        lam: float | None,
        admitted: bool,
    ) -> None:
        t0 = time.perf_counter()
        try:
            self.inner.commit(frame_index, track_id, observation, lam, admitted)
        finally:
            self.timer.add("segment", time.perf_counter() - t0)


def timed_segmenter(inner: Segmenter, timer: StageTimer) -> _TimedSegmenter:
    """The segmenter wrapped so its time is counted apart from the tracker's."""
    if isinstance(inner, MemorySegmenter):
        return _TimedMemorySegmenter(inner, timer)
    return _TimedSegmenter(inner, timer)


@dataclass
class _Pending:
    """A frame held back until its tracks are known to be confirmed or dropped: the frame
    itself (the reconstructor needs its pixels), the tracker's rows, and the tracks that
    ended just before it."""

    frame: Frame
    track_frames: list[TrackFrame]
    ended: list[int]


@dataclass
class _Row:
    frame: TrackFrame
    body: BodyEstimate | None


class _TrackTable:
    """Per-track rows of the run, turned into the ``tracks.npz`` columns at the end.

    dropout_max_frames, dropout_any_height_below_px: see ``PipelineConfig``."""

    # A lost frame whose box is covered this much by someone else's may be a real occlusion.
    DROPOUT_MAX_COVERED = 0.25
    # How tall, against the tallest of the frames before, a view around a dropout must be.
    DROPOUT_AS_TALL = 0.9

    def __init__(
        self, dropout_max_frames: int = 0, dropout_any_height_below_px: float = 0.0
    ) -> None:
        # Per track: each row with the box of the mask the segmenter saw (None: not seen).
        self.rows: dict[int, list[tuple[_Row, np.ndarray | None]]] = defaultdict(list)
        self.dropout_max_frames = dropout_max_frames
        self.dropout_any_height_below_px = dropout_any_height_below_px

    def add(self, row: _Row) -> None:
        # The table keeps scores, not the observation's full-frame mask: memory must not
        # grow with the length of the video.
        observation = row.frame.observation
        view = None if observation is None else np.asarray(observation.box_xyxy, np.float64)
        kept = dataclasses.replace(row.frame, observation=None)
        self.rows[row.frame.track_id].append((_Row(kept, row.body), view))

    def columns(self) -> dict[str, np.ndarray]:
        records: list[_Row] = []
        boxes: list[np.ndarray] = []
        dropouts: list[np.ndarray] = []
        for track_id in sorted(self.rows):
            rows = sorted(self.rows[track_id], key=lambda r: r[0].frame.frame)
            seen = [i for i, (_, view) in enumerate(rows) if view is not None]
            if not seen:
                continue
            # After its last sighting a track only coasted until it ended: the person left.
            kept = rows[: seen[-1] + 1]
            records.extend(row for row, _ in kept)
            frames = np.array([row.frame.frame for row, _ in kept])
            raw = np.array([row.frame.box_xyxy for row, _ in kept])
            was_seen = np.array([view is not None for _, view in kept])
            # Whether a view is whole goes by what the segmenter saw, not by the reported
            # box, which margins and landmarks widen.
            views = np.array(
                [row.frame.box_xyxy if view is None else view for row, view in kept]
            )
            clear = was_seen & ~np.array([row.frame.occluded for row, _ in kept])
            boxes.append(bridge_gaps(frames, raw, was_seen, view_boxes_xyxy=views))
            tallest = float(np.max(raw[was_seen, 3] - raw[was_seen, 1]))
            as_tall = 0.0 if tallest < self.dropout_any_height_below_px else self.DROPOUT_AS_TALL
            dropouts.append(
                short_dropouts(frames, raw, clear, was_seen, self.dropout_max_frames, as_tall)
            )
        n = len(records)
        table = {
            name: np.zeros((n, *shape), dtype=dtype)
            for name, (shape, dtype) in TRACK_ARRAYS.items()
        }
        if boxes:
            table["box_xyxy"][:] = np.concatenate(boxes)
        for i, row in enumerate(records):
            tf = row.frame
            table["track_id"][i] = tf.track_id
            table["frame"][i] = tf.frame
            table["s_mask"][i] = tf.s_mask
            table["s_kf"][i] = tf.s_kf
            table["s_fused"][i] = tf.s_fused
            table["reliability"][i] = tf.reliability
            table["occluded"][i] = tf.occluded
            if row.body is not None:
                table["recon_valid"][i] = True
                table["recon_global_orient"][i] = row.body.global_orient
                table["recon_body_pose"][i] = row.body.body_pose
                table["recon_transl"][i] = row.body.transl
                table["betas"][i] = row.body.betas
                table["recon_confidence"][i] = row.body.confidence
        if dropouts:
            in_view = self._uncovered(table, np.flatnonzero(np.concatenate(dropouts)))
            table["occluded"][in_view] = False
        return table

    def _uncovered(self, table: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """Of ``rows``, those whose box no other track's box of the frame covers by
        ``DROPOUT_MAX_COVERED`` or more of its area: nobody stood where the person was."""
        if rows.size == 0:
            return rows
        order = np.argsort(table["frame"], kind="stable")
        sorted_frames = table["frame"][order]
        keep = []
        for row in rows:
            frame = table["frame"][row]
            lo, hi = np.searchsorted(sorted_frames, [frame, frame + 1])
            others = order[lo:hi]
            others = others[table["track_id"][others] != table["track_id"][row]]
            box = table["box_xyxy"][row]
            area = max(float(box_area(box)), 1.0)
            covered = intersection_matrix(box, table["box_xyxy"][others])[0] / area
            if not np.any(covered >= self.DROPOUT_MAX_COVERED):
                keep.append(row)
        return np.array(keep, dtype=np.int64)


def _label_image(rows: list[_Row], height: int, width: int) -> np.ndarray:
    """Track ids per pixel; nearer people (lower box bottom) are painted last, on top."""
    labels = np.zeros((height, width), dtype=np.uint16)
    visible = [r.frame for r in rows if r.frame.observation is not None]
    for tf in sorted(visible, key=lambda t: t.box_xyxy[3]):
        labels[tf.observation.mask] = tf.track_id
    return labels


@contextlib.contextmanager
def lite_thread_limits(active: bool) -> Iterator[None]:
    """One BLAS thread and one OpenCV thread while the lite backend runs (nothing when
    ``active`` is false); LiteRT's interpreter keeps its own threads.

    The BLAS work is on 2x2 to 8x8 matrices, where a second OpenBLAS thread only waits for a
    core that the interpreter is using: measured here, a 2x2 inverse took 1-2 ms instead of
    4-7 us while the interpreter ran (1,566 of them cost 2.7 s in 100 frames of a street
    clip). OpenCV's network runs on a thread of its own beside the interpreter
    (``_frames_with_detections``); a second OpenCV thread made one SSDLite view 29 ms
    instead of 35 ms of wall time here, for 57 instead of 35 ms of CPU time, which the
    interpreter needs. Both limits hold for this run only.
    """
    if not active:
        yield
        return
    import cv2

    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            pass
        else:
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        stack.callback(cv2.setNumThreads, opencv_threads)
        yield


def run_pipeline(
    video_path: str | Path,
    out_path: str | Path,
    *,
    backend: str = "auto",
    device: str = "auto",
    start: int = 0,
    end: int | None = None,
    config: RunConfig | None = None,
    progress: Progress | None = None,
    stages: Backend | None = None,
    tracking: TrackerFactory | None = None,
    fusion: TrackFusion | None = None,
) -> Path:
    """Runs the whole pipeline on a video and writes ``out_path`` (a ``.ram`` folder).

    ``stages`` replaces the backend's parts (tests and benchmarks inject their own);
    ``tracking`` and ``fusion`` replace SegFollow and the Predictor + Combiner (ablations).
    The manifest names the two under ``stages``.
    """
    tracking = tracking or segfollow_tracking
    fusion = fusion or predictor_combiner_fusion
    config = config or RunConfig()
    progress = progress or NoProgress()
    started = time.perf_counter()
    info = probe_video(video_path)
    first, stop = frame_range(info, start, end)
    out = check_output_path(out_path)
    camera = CameraIntrinsics.assumed(info.width, info.height, config.pipeline.focal_px)
    # A learned Predictor's or gate's weights are checked now, not after the tracking.
    learned = check_learned_models(config.predictor, config.combiner)

    parts = stages or resolve_backend(backend, device, config, progress)
    progress.info(f"backend: {parts.name} ({parts.reason})")
    if info.rotation_deg:
        progress.info(
            f"the video is stored turned; frames are turned {info.rotation_deg} deg upright"
        )
    try:
        with ResultWriter(out) as writer, lite_thread_limits(parts.name == "lite"):
            timer = StageTimer()
            background = BackgroundTracker(config.camera_motion)
            table = _track(
                info,
                first,
                stop,
                camera,
                parts,
                tracking,
                config,
                writer,
                timer,
                progress,
                background,
            )
            t0 = time.perf_counter()
            motion = background.solve(
                camera.fx, camera.cx, camera.cy, focal_known=config.pipeline.focal_px is not None
            )
            timer.add("camera_motion", time.perf_counter() - t0)
            if motion.focal_px is not None:
                # Depth from a body's size in the image goes with the focal length.
                table = _rescale_depth(table, motion.focal_px / camera.fx)
                camera = dataclasses.replace(camera, fx=motion.focal_px, fy=motion.focal_px)
            t0 = time.perf_counter()
            fused = fusion(table, config)
            timer.add("predict_combine", time.perf_counter() - t0)
            manifest = _manifest(info, first, stop, camera, parts, config, fused, timer)
            manifest["camera"]["focal_source"] = (
                "given"
                if config.pipeline.focal_px is not None
                else "estimated from the camera's turn"
                if motion.focal_px is not None
                else "assumed (the image diagonal)"
            )
            manifest["stages"] = {"tracking": _name(tracking), "fusion": _name(fusion)}
            if learned and writer.temporary_path is not None:
                # The result carries the weights it was made with, so it re-runs anywhere.
                models, fields = store_learned_models(
                    config.predictor, config.combiner, writer.temporary_path, learned
                )
                manifest["learned_models"] = models
                for section, values in fields.items():
                    manifest["config"][section].update(values)
            rotations = (
                motion.rotations[nearest_frame(motion.frames, fused["frame"])]
                if motion.turning
                else None
            )
            world = estimate_world(fused, REST_JOINTS_M, info.fps, rotations=rotations)
            if world is not None:
                manifest["world"] = {
                    **world.to_manifest(),
                    "camera_motion": motion.verdict,
                    "turning": motion.turning,
                }
                camera_track = None
                if motion.turning:
                    per_frame = camera_to_world_per_frame(world.camera_to_world, motion.rotations)
                    writer.write_camera_track(motion.frames, per_frame)
                    camera_track = (motion.frames, per_frame)
                    manifest["world"]["camera_track"] = CAMERA_FILE_NAME
                t0 = time.perf_counter()
                fused = plant_feet(
                    fused,
                    camera_to_world_rows(world.camera_to_world, camera_track, fused["frame"]),
                    camera.fx,
                    info.fps,
                    config.feet,
                )
                timer.add("feet", time.perf_counter() - t0)
            if config.pipeline.preview and writer.temporary_path is not None:
                from ram_core.video.preview import write_preview

                t0 = time.perf_counter()
                write_preview(writer.temporary_path, info, fused, camera, first, stop, progress)
                timer.add("preview", time.perf_counter() - t0)
            manifest["timings_s"] = _timings(timer, time.perf_counter() - started, stop - first)
            if len(fused["track_id"]) == 0:
                progress.info(
                    f"found nobody in frames {first}-{stop - 1}: the result holds no tracks "
                    "(small or mostly hidden people can be missed)"
                )
            return writer.finish(manifest, fused)
    finally:
        parts.close()


def _track(
    info: VideoInfo,
    first: int,
    stop: int,
    camera: CameraIntrinsics,
    parts: Backend,
    tracking: TrackerFactory,
    config: RunConfig,
    writer: ResultWriter,
    timer: StageTimer,
    progress: Progress,
    background: BackgroundTracker,
) -> dict[str, np.ndarray]:
    stage = tracking(timed_segmenter(parts.segmenter, timer), config, info.fps)
    tracker = stage.tracker
    lag = stage.confirmation_delay
    reconstructor = parts.reconstructor
    pending: deque[_Pending] = deque()
    table = _TrackTable(
        config.pipeline.dropout_max_frames, config.pipeline.dropout_any_height_below_px
    )
    confirmed: set[int] = set()

    def release(batch: list[tuple[_Pending, frozenset[int]]]) -> None:
        """Reconstructs a few frames, in order, and writes their rows and masks."""
        kept_of = [
            [tf for tf in held.track_frames if tf.track_id in confirmed]
            for held, confirmed in batch
        ]
        observed_of = [
            [tf for tf in kept if tf.observation is not None and not tf.occluded]
            for kept in kept_of
        ]
        t0 = time.perf_counter()
        estimates_of = _reconstruct_frames(
            reconstructor,
            [
                (
                    held.frame,
                    [
                        TrackObservation(tf.track_id, tf.observation, tf.box_xyxy, tf.reliability)
                        for tf in observed
                    ],
                    held.ended,
                )
                for (held, _), observed in zip(batch, observed_of, strict=True)
            ],
            camera,
        )
        timer.add("reconstruct", time.perf_counter() - t0)
        for (held, _), kept, observed, estimates in zip(
            batch, kept_of, observed_of, estimates_of, strict=True
        ):
            bodies = {tf.track_id: body for tf, body in zip(observed, estimates, strict=True)}
            rows = [_Row(tf, bodies.get(tf.track_id)) for tf in kept]
            for row in rows:
                table.add(row)
            labels = _label_image(rows, info.height, info.width)
            writer.write_mask(held.frame.index, labels)
            t0 = time.perf_counter()
            background.add(held.frame.index, held.frame.rgb, labels > 0)
            timer.add("camera_motion", time.perf_counter() - t0)

    # Frames are released (reconstructed, masks written) on one worker thread, in order,
    # while the next frame is segmented: LiteRT's interpreter and OpenCV let go of the
    # interpreter lock, the IK's numpy holds it, so the two overlap on two cores. They go
    # a few at a time, so a reconstructor that solves frames together makes fewer calls.
    worker = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="ram-release", initializer=_yield_to_the_segmenter
    )
    released: deque[Future] = deque()
    waiting: list[tuple[_Pending, frozenset[int]]] = []

    def release_later(held: _Pending | None) -> None:
        """Queues ``held`` with the tracks confirmed now; None sends off what waits."""
        if held is not None:
            waiting.append((held, frozenset(confirmed)))
        if waiting and (held is None or len(waiting) >= RELEASE_FRAMES):
            released.append(worker.submit(release, list(waiting)))
            waiting.clear()
        while len(released) > 1 or (released and released[0].done()):
            released.popleft().result()  # in order; re-raises what the worker raised

    try:
        live = _track_frames(
            info, first, stop, parts, tracker, lag, config, timer, progress, pending,
            confirmed, release_later,
        )  # fmt: skip
        while pending:
            release_later(pending.popleft())
        release_later(None)
        while released:
            released.popleft().result()
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
    for track_id in sorted(live):
        reconstructor.forget(track_id)
    return table.columns()


def _reconstruct_frames(
    reconstructor: Reconstructor,
    frames: Sequence[tuple[Frame, Sequence[TrackObservation], Sequence[int]]],
    camera: CameraIntrinsics,
) -> list[list[BodyEstimate | None]]:
    """Estimates for each frame's tracks, frames in order. ``frames``: (frame, its tracks,
    the tracks that ended after it); those are forgotten once the frames are solved (an
    ended track is in no later frame). A ``FramesReconstructor`` solves them in one call."""
    if isinstance(reconstructor, FramesReconstructor):
        estimates_of = reconstructor.reconstruct_frames(
            [(frame, tracks) for frame, tracks, _ in frames], camera
        )
    else:
        estimates_of = [
            reconstructor.reconstruct(frame, tracks, camera) if tracks else []
            for frame, tracks, _ in frames
        ]
    for (_, tracks, ended), estimates in zip(frames, estimates_of, strict=True):
        if len(estimates) != len(tracks):
            raise RuntimeError(
                f"the reconstructor gave {len(estimates)} estimates for {len(tracks)} tracks"
            )
        for track_id in ended:
            reconstructor.forget(track_id)
    return estimates_of


def _track_frames(
    info: VideoInfo,
    first: int,
    stop: int,
    parts: Backend,
    tracker,
    lag: int,
    config: RunConfig,
    timer: StageTimer,
    progress: Progress,
    pending: deque,
    confirmed: set[int],
    release: Callable[[Any], None],
) -> set[int]:
    """Detects and tracks every frame; hands each frame to ``release`` once its tracks are
    known to be confirmed or not. Returns the tracks live at the end."""
    progress.stage("track", total=stop - first)
    live: set[int] = set()
    frames = _frames_with_detections(
        stream_frames(info, first, stop),
        lambda frame: (frame.index - first) % config.pipeline.detect_every == 0,
        parts.detector,
        timer,
    )
    with contextlib.closing(frames):  # a failure stops the detector's thread now
        for frame, detecting in frames:
            detections = None if detecting is None else detecting.result()
            if detections is None:
                offset = frame.index - first
                detections = _search_hidden(frame, offset, tracker, parts, config, timer)

            t0 = time.perf_counter()
            segment_before = timer.seconds["segment"]
            track_frames = tracker.step(frame, detections)
            segment_during = timer.seconds["segment"] - segment_before
            timer.add("segfollow", time.perf_counter() - t0 - segment_during)
            confirmed.update(t.track_id for t in track_frames if tracker.is_confirmed(t.track_id))

            # A track the tracker no longer reports has ended: its last row is in an earlier,
            # so earlier released, frame.
            now_live = {tf.track_id for tf in track_frames}
            pending.append(_Pending(frame, track_frames, sorted(live - now_live)))
            live = now_live
            while len(pending) > lag:
                release(pending.popleft())
            progress.advance()
    return live


def _search_hidden(
    frame: Frame,
    offset: int,
    tracker: FrameTracker,
    parts: Backend,
    config: RunConfig,
    timer: StageTimer,
) -> list[Detection] | None:
    """Detections in windows around where the hidden people may be in ``frame`` (the
    tracker's ``search_regions``), on a frame the regular detection skips; None where the
    frame is not searched (``PipelineConfig.search_every``), nobody is hidden, or the
    backend has no detector of its own for searches.

    It runs here, before the frame is tracked, on a detector of its own: the read-ahead
    thread's may be busy with a whole frame, and searches queued on that thread waited
    behind it."""
    settings = config.pipeline
    search_regions = getattr(tracker, "search_regions", None)
    if (
        parts.search_detector is None
        or search_regions is None
        or settings.search_every == 0
        or offset % settings.search_every
    ):
        return None
    regions = search_regions()
    if not regions:
        return None
    t0 = time.perf_counter()
    height, width = frame.rgb.shape[:2]
    windows = merge_windows(regions, width, height, settings.search_min_window_px)
    found = detect_in_windows(
        parts.search_detector, frame, windows, settings.search_full_frame_share
    )
    timer.add("search", time.perf_counter() - t0)
    return found


def _frames_with_detections(
    frames: Iterator[Frame],
    wanted: Callable[[Frame], bool],
    detector: Detector,
    timer: StageTimer,
) -> Iterator[tuple[Frame, Future | None]]:
    """Each frame with its detections to come (None where ``wanted`` says no).

    The next frames to detect are read ahead and detected on a thread while the frames
    before them are segmented: OpenCV's network lets go of the interpreter lock, so on two
    cores the detector costs the tracking loop little. At most ``DETECTIONS_AHEAD``
    detection intervals of frames wait in memory.
    """

    def detect(frame: Frame) -> list[Detection]:
        t0 = time.perf_counter()
        found = detector.detect(frame)
        timer.add("detect", time.perf_counter() - t0)
        return found

    ahead: deque[tuple[Frame, Future | None]] = deque()
    worker = ThreadPoolExecutor(
        max_workers=1, thread_name_prefix="ram-detect", initializer=_yield_to_the_segmenter
    )
    try:
        exhausted = False
        while True:
            # Read on until DETECTIONS_AHEAD frames after the one handed out are being
            # detected (or the video ends).
            while not exhausted and sum(
                future is not None for _, future in itertools.islice(ahead, 1, None)
            ) < DETECTIONS_AHEAD:
                frame = next(frames, None)
                if frame is None:
                    exhausted = True
                else:
                    ahead.append((frame, worker.submit(detect, frame) if wanted(frame) else None))
            if not ahead:
                return
            yield ahead.popleft()
    finally:
        worker.shutdown(wait=True, cancel_futures=True)
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # the decoder lets go of the file


# Frames to detect queued on the detector's thread beyond the one the loop waits for. With
# one, the niced detector fell behind while the segmenter kept both cores busy, and the loop
# waited for it at 15 of 20 detection frames of the real clip's first 100 (1.3-1.5 s in
# all); with two, at 7 (0.75-0.9 s, most of it the first frame's), 10.9 -> 10.7 s a run.
DETECTIONS_AHEAD = 2
# The nice value of the read-ahead detector's thread and of the release thread (Linux; 19
# is the lowest priority).
HELPER_THREAD_NICE = 19


def _yield_to_the_segmenter() -> None:
    """Lowers the calling thread's priority (Linux only, where a thread has a nice value of
    its own; elsewhere a no-op).

    The detector works frames ahead, the segmenter's LiteRT threads on the frame the loop
    waits for: at equal priority the detector took one of two cores from them. Niced, it
    runs when they wait (the tracking's Python between model calls). The real clip's first
    100 frames: 11.7 s against 12.4-13.0 s, turns taken in one run. The release thread
    (reconstruction, masks, camera motion) works on frames the loop has finished with and
    gets the same: 10.4 -> 10.1 s, three turns each (LiteRT's two threads wait for the
    slower of them, so one preempted thread stalled every model call)."""
    if sys.platform != "linux":
        return  # elsewhere a thread id is no process id: setpriority could hit another
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HELPER_THREAD_NICE)


def _rescale_depth(table: dict[str, np.ndarray], factor: float) -> dict[str, np.ndarray]:
    """The table as it would be solved with the focal length times ``factor``: every pelvis
    ``factor`` times as deep on its line of sight's image point, so x and y stay and z
    scales (the built-in skeleton's rest pelvis)."""
    out = dict(table)
    pelvis_z = REST_JOINTS_M[0, 2]
    for name in ("transl", "recon_transl", "pred_transl"):
        column = np.array(table[name], copy=True)
        column[:, 2] = factor * (column[:, 2] + pelvis_z) - pelvis_z
        out[name] = column
    return out


def _name(function: Callable[..., Any]) -> str:
    return f"{function.__module__}.{getattr(function, '__qualname__', repr(function))}"


def _timings(timer: StageTimer, total_s: float, n_frames: int) -> dict[str, Any]:
    stages = {k: round(v, 4) for k, v in timer.seconds.items()}
    return {"total": round(total_s, 4), "frames": n_frames, "stages": stages}


def _manifest(
    info: VideoInfo,
    first: int,
    stop: int,
    camera: CameraIntrinsics,
    parts: Backend,
    config: RunConfig,
    tracks: dict[str, np.ndarray],
    timer: StageTimer,
) -> dict[str, Any]:
    track_entries = []
    for track_id in np.unique(tracks["track_id"]):
        frames = tracks["frame"][tracks["track_id"] == track_id]
        track_entries.append(
            {
                "track_id": int(track_id),
                "first_frame": int(frames.min()),
                "last_frame": int(frames.max()),
                "color": [round(c, 4) for c in track_color(int(track_id))],
            }
        )
    return {
        "tool": {"name": "ram-core", "version": __version__, "python": platform.python_version()},
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "source_video": {
            "path": str(Path(info.path).resolve()),
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "frame_count": info.frame_count,
            "start": first,
            "end": stop,
            # The clockwise turn that stands the file's frames upright (its rotation tag);
            # width, height, masks and the camera are all upright.
            "rotation_deg": info.rotation_deg,
            # A variable-frame-rate file is read on the constant grid Blender's movie strip
            # plays it on: fps is that grid's, frame_count the strip's length.
            "variable_frame_rate": info.frame_sources is not None,
        },
        "camera": {
            "fx": camera.fx,
            "fy": camera.fy,
            "cx": camera.cx,
            "cy": camera.cy,
            "width": camera.width,
            "height": camera.height,
            "assumed": config.pipeline.focal_px is None,
            "note": "pinhole, OpenCV axes; without a known focal length the image diagonal "
            "in pixels is assumed",
        },
        "backend": {"name": parts.name, "reason": parts.reason, **parts.description},
        "rest_skeleton": parts.reconstructor.rest_skeleton,
        "config": config_to_dict(config),
        "tracks": track_entries,
    }
