"""The artist's ID and occlusion edits, checked against the result before anything changes.

No bpy here: the operators turn their arguments (scene frames, as on the timeline) into one
edit of ``ram_core.io.edits``' log, or an ``EditError`` that says what is wrong, so a bad
argument changes nothing. Scene frame ``f`` is video frame ``f - FRAME_OFFSET``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ram_core.io.edits import MAX_TRACK_ID, edited_tracks

from .results import FRAME_OFFSET


class EditError(ValueError):
    """An edit that cannot be made as asked (unknown track, frame outside the track...)."""


@dataclass(frozen=True)
class TrackSpan:
    """One track as the track list shows it. Frames are scene frames, inclusive."""

    track_id: int
    frame_first: int
    frame_last: int
    frame_count: int
    occluded_share: float

    def holds(self, scene_frame: int) -> bool:
        return self.frame_first <= scene_frame <= self.frame_last


def track_spans(tracks: dict[str, np.ndarray]) -> dict[int, TrackSpan]:
    """Each track of a (sorted, edited) tracks table: {track_id: TrackSpan}."""
    ids = np.asarray(tracks["track_id"])
    frames = np.asarray(tracks["frame"])
    occluded = np.asarray(tracks["occluded"], dtype=bool)
    spans: dict[int, TrackSpan] = {}
    if ids.size == 0:
        return spans
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    stops = np.r_[starts[1:], ids.size]
    for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
        spans[int(ids[start])] = TrackSpan(
            track_id=int(ids[start]),
            frame_first=int(frames[start:stop].min()) + FRAME_OFFSET,
            frame_last=int(frames[start:stop].max()) + FRAME_OFFSET,
            frame_count=stop - start,
            occluded_share=float(occluded[start:stop].mean()),
        )
    return spans


def new_track_id(spans: dict[int, TrackSpan], edits: list[dict[str, Any]]) -> int:
    """An ID no track has had in this result: above every present ID and every ID the log
    names, so a split never takes the ID of a track deleted or merged away earlier."""
    candidate = max([0, *spans, *edited_tracks(edits)]) + 1
    if candidate > MAX_TRACK_ID:
        raise EditError(f"No track ID is left (IDs go up to {MAX_TRACK_ID}).")
    return candidate


def swap_edit(spans: dict[int, TrackSpan], track_a: int, track_b: int, frame: int) -> dict:
    """Tracks A and B exchange IDs from scene frame ``frame`` on."""
    span_a, span_b = _known(spans, track_a), _known(spans, track_b)
    if track_a == track_b:
        raise EditError(f"Swapping track {track_a} with itself changes nothing.")
    if not (span_a.holds(frame) or span_b.holds(frame)):
        raise EditError(
            f"Frame {frame} is outside both track {track_a} ({_range(span_a)}) and track "
            f"{track_b} ({_range(span_b)})."
        )
    return {
        "op": "swap",
        "track_a": track_a,
        "track_b": track_b,
        "from_frame": _video_frame(frame),
    }


def merge_edit(spans: dict[int, TrackSpan], into: int, source: int) -> dict:
    """Track ``source``'s rows become track ``into``'s."""
    _known(spans, into)
    _known(spans, source)
    if into == source:
        raise EditError(f"Merging track {into} into itself changes nothing.")
    return {"op": "merge", "into": into, "from": source}


def split_edit(
    spans: dict[int, TrackSpan], edits: list[dict[str, Any]], track: int, frame: int
) -> dict:
    """Track ``track``'s rows from scene frame ``frame`` on become a new track."""
    span = _known(spans, track)
    if not span.frame_first < frame <= span.frame_last:
        raise EditError(
            f"Track {track} can be split at frames {span.frame_first + 1}..{span.frame_last} "
            f"(it spans {_range(span)}), not at {frame}."
        )
    return {
        "op": "split",
        "track": track,
        "from_frame": _video_frame(frame),
        "new_id": new_track_id(spans, edits),
    }


def delete_edit(spans: dict[int, TrackSpan], track: int) -> dict:
    """Track ``track`` goes."""
    _known(spans, track)
    return {"op": "delete", "track": track}


def occlusion_edit(
    spans: dict[int, TrackSpan], track: int, frame_start: int, frame_end: int, occluded: bool
) -> dict:
    """Scene frames ``frame_start..frame_end`` (inclusive) of a track are marked occluded
    (or trusted, ``occluded`` False)."""
    span = _known(spans, track)
    if frame_start > frame_end:
        raise EditError(f"The range {frame_start}..{frame_end} is empty (start after end).")
    if not (span.holds(frame_start) and span.holds(frame_end)):
        raise EditError(
            f"Frames {frame_start}..{frame_end} are not all inside track {track} ({_range(span)})."
        )
    return {
        "op": "occlusion",
        "track": track,
        "start": _video_frame(frame_start),
        "end": _video_frame(frame_end),
        "occluded": bool(occluded),
    }


def _known(spans: dict[int, TrackSpan], track: int) -> TrackSpan:
    if track not in spans:
        known = ", ".join(str(t) for t in sorted(spans)) or "none"
        raise EditError(f"There is no track {track} (tracks: {known}).")
    return spans[track]


def _range(span: TrackSpan) -> str:
    return f"frames {span.frame_first}..{span.frame_last}"


def _video_frame(scene_frame: int) -> int:
    frame = int(scene_frame) - FRAME_OFFSET
    if frame < 0:
        raise EditError(f"Frame {scene_frame} is before the video's first frame.")
    return frame
