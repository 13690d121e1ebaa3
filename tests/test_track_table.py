"""The pipeline's track table: rows of a person the segmenter lost for a frame or two in
plain view are not counted as hidden; a lost frame under someone else's box still is."""

from __future__ import annotations

import numpy as np

from ram_core.pipeline import _Row, _TrackTable
from ram_core.types import Observation, TrackFrame


def _row(
    track_id: int, frame: int, box: list[float], seen: bool, mask_box: list[float] | None = None
) -> _Row:
    """A row reporting ``box``; a seen row's segmenter saw ``mask_box`` (default: box)."""
    box_xyxy = np.array(box, dtype=np.float64)
    observation = None
    if seen:
        observation = Observation(
            mask=np.ones((2, 2), dtype=bool),
            box_xyxy=np.array(box if mask_box is None else mask_box, dtype=np.float64),
            quality=0.9,
            object_score=1.0,
            appearance=np.zeros(4, dtype=np.float32),
        )
    return _Row(
        TrackFrame(
            track_id=track_id,
            frame=frame,
            box_xyxy=box_xyxy,
            s_mask=0.9 if seen else 0.0,
            s_kf=0.9 if seen else 0.0,
            s_fused=0.9 if seen else 0.0,
            reliability=0.8 if seen else 0.0,
            occluded=not seen,
            observation=observation,
        ),
        None,
    )


def _walk(track_id: int, x0: float, lost: set[int], frames: int = 8) -> list[_Row]:
    return [
        _row(track_id, f, [x0 + 2 * f, 100.0, x0 + 2 * f + 20, 160.0], f not in lost)
        for f in range(frames)
    ]


def _occluded_by_frame(table: dict[str, np.ndarray], track_id: int) -> list[bool]:
    rows = np.flatnonzero(table["track_id"] == track_id)
    rows = rows[np.argsort(table["frame"][rows])]
    return table["occluded"][rows].tolist()


def test_a_short_loss_in_plain_view_is_not_hidden_and_one_under_someone_else_is():
    table = _TrackTable(dropout_max_frames=2)
    # Track 1 is lost at frames 2 and 5-6 in the open; track 2 at frame 3, where track 3
    # (a person passing in front, seen only then) covers its box.
    for row in _walk(1, 0.0, {2, 5, 6}) + _walk(2, 300.0, {3}):
        table.add(row)
    table.add(_row(3, 3, [300.0, 90.0, 330.0, 170.0], True))
    table.add(_row(3, 4, [310.0, 90.0, 340.0, 170.0], True))
    columns = table.columns()
    assert _occluded_by_frame(columns, 1) == [False] * 8
    assert _occluded_by_frame(columns, 2) == [False, False, False, True] + [False] * 4
    # The lost rows' boxes lie on the line between the views around them.
    row = np.flatnonzero((columns["track_id"] == 1) & (columns["frame"] == 5))[0]
    np.testing.assert_allclose(columns["box_xyxy"][row], [10.0, 100.0, 30.0, 160.0])
    # The loss stays a loss for the pose: nothing was reconstructed there.
    assert not columns["recon_valid"][row]

    # Lost for longer than two frames: hidden.
    longer = _TrackTable(dropout_max_frames=2)
    for row in _walk(1, 0.0, {2, 3, 4}):
        longer.add(row)
    assert _occluded_by_frame(longer.columns(), 1) == [False, False, True, True, True] + [False] * 3

    off = _TrackTable(dropout_max_frames=0)
    for row in _walk(1, 0.0, {2}):
        off.add(row)
    assert _occluded_by_frame(off.columns(), 1)[2] is True


def test_a_partial_view_widened_for_the_report_is_no_anchor_for_the_hidden_rows():
    # The person walks 2 px a frame; at frame 3 the segmenter sees a sliver (x 6-9) that the
    # reported box widens past the whole width (say, to the landmarks of an arm); frame 4 is
    # lost. Both rows are moved onto the line between the whole views of frames 2 and 5.
    table = _TrackTable()
    for f in range(7):
        box = [2.0 * f, 100.0, 2.0 * f + 20, 160.0]
        if f == 3:
            sliver = [6.0, 100.0, 9.0, 160.0]
            table.add(_row(1, f, [6.0, 100.0, 30.0, 160.0], True, mask_box=sliver))
        else:
            table.add(_row(1, f, box if f != 4 else [0.0, 0.0, 1.0, 1.0], f != 4))
    columns = table.columns()
    rows = np.flatnonzero(columns["track_id"] == 1)
    rows = rows[np.argsort(columns["frame"][rows])]
    np.testing.assert_allclose(columns["box_xyxy"][rows[4]], [8.0, 100.0, 28.0, 160.0])
    np.testing.assert_allclose(columns["box_xyxy"][rows[3]], [6.0, 100.0, 26.0, 160.0])


def _short_view_then_lost(track_id: int, height: float) -> list[_Row]:
    """Walking 2 px a frame; at frame 3 the mask is half as high (the legs lost), at frame
    4 the segmenter finds nobody."""
    rows = []
    for f in range(8):
        top = 100.0 + (height / 2 if f == 3 else 0.0)
        rows.append(_row(track_id, f, [2.0 * f, top, 2.0 * f + 20, 100.0 + height], f != 4))
    return rows


def test_a_small_persons_dropout_needs_clear_views_around_it_not_tall_ones():
    # Under dropout_any_height_below_px, a short view before the loss still bridges it
    # (BlazePose's masks of small people lose the legs in plain view); a taller person's
    # short view is a person going behind something, and the loss stays hidden.
    for height, below, hidden in ((60.0, 80.0, False), (60.0, 0.0, True), (120.0, 80.0, True)):
        table = _TrackTable(dropout_max_frames=2, dropout_any_height_below_px=below)
        for row in _short_view_then_lost(1, height):
            table.add(row)
        assert _occluded_by_frame(table.columns(), 1)[4] is hidden, (height, below)
