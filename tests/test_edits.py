"""The artist's edit log: validation, reading, atomic appends, and applying each op."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ram_core.io.edits import (
    EDITS_FILE_NAME,
    append_edit,
    apply_edits,
    empty_edits_document,
    read_edits,
    validate_edit,
)


def table(rows: list[tuple[int, int]]) -> dict[str, np.ndarray]:
    """A small tracks table from (track_id, frame) rows, in the given order.

    ``marker`` tells each original row apart after edits move rows around.
    """
    track_id = np.array([r[0] for r in rows], np.int32)
    frame = np.array([r[1] for r in rows], np.int32)
    return {
        "track_id": track_id,
        "frame": frame,
        "marker": np.arange(len(rows), dtype=np.float32) * 10.0,
        "occluded": np.zeros(len(rows), bool),
        "reliability": np.full(len(rows), 0.5, np.float32),
        "transl": np.arange(len(rows) * 3, dtype=np.float32).reshape(-1, 3),
    }


def pairs(tracks: dict[str, np.ndarray]) -> list[tuple[int, int]]:
    return list(zip(tracks["track_id"].tolist(), tracks["frame"].tolist(), strict=True))


TWO_TRACKS = [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1), (2, 2), (2, 3)]


def test_swap_exchanges_ids_from_a_frame_on():
    before = table(TWO_TRACKS)
    after = apply_edits(before, [{"op": "swap", "track_a": 1, "track_b": 2, "from_frame": 2}])
    assert pairs(after) == TWO_TRACKS
    # Track 1 keeps its own rows before frame 2 and takes track 2's from frame 2 on.
    assert after["marker"].tolist() == [0, 10, 60, 70, 40, 50, 20, 30]
    # Every array moves with its row.
    np.testing.assert_array_equal(after["transl"][2], before["transl"][6])


def test_swap_with_an_absent_track_is_a_rename():
    after = apply_edits(
        table(TWO_TRACKS), [{"op": "swap", "track_a": 2, "track_b": 9, "from_frame": 1}]
    )
    assert pairs(after) == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (9, 1), (9, 2), (9, 3)]


def test_merge_keeps_the_target_rows_where_both_exist():
    before = table([(1, 0), (1, 1), (3, 1), (3, 2), (3, 3)])
    after = apply_edits(before, [{"op": "merge", "into": 1, "from": 3}])
    assert pairs(after) == [(1, 0), (1, 1), (1, 2), (1, 3)]
    # Frame 1 is track 1's own row (marker 10), not track 3's (marker 20).
    assert after["marker"].tolist() == [0, 10, 30, 40]


def test_merge_into_a_higher_id_resorts_rows():
    after = apply_edits(table([(1, 5), (1, 6), (4, 0)]), [{"op": "merge", "into": 4, "from": 1}])
    assert pairs(after) == [(4, 0), (4, 5), (4, 6)]


def test_split_moves_later_frames_to_a_new_id():
    after = apply_edits(
        table(TWO_TRACKS), [{"op": "split", "track": 1, "from_frame": 2, "new_id": 7}]
    )
    assert pairs(after) == [(1, 0), (1, 1), (2, 0), (2, 1), (2, 2), (2, 3), (7, 2), (7, 3)]
    assert after["marker"].tolist() == [0, 10, 40, 50, 60, 70, 20, 30]


def test_split_onto_an_existing_track_is_refused():
    with pytest.raises(ValueError, match="track 2 already exists"):
        apply_edits(table(TWO_TRACKS), [{"op": "split", "track": 1, "from_frame": 2, "new_id": 2}])


def test_delete_drops_a_track():
    after = apply_edits(table(TWO_TRACKS), [{"op": "delete", "track": 1}])
    assert pairs(after) == TWO_TRACKS[4:]
    assert set(after) == set(table(TWO_TRACKS))


def test_occlusion_marks_an_inclusive_range():
    after = apply_edits(
        table(TWO_TRACKS), [{"op": "occlusion", "track": 2, "start": 1, "end": 2, "occluded": True}]
    )
    assert after["occluded"].tolist() == [False] * 5 + [True, True, False]
    assert after["reliability"].tolist() == [0.5] * 5 + [0.0, 0.0, 0.5]
    assert after["reliability"].dtype == np.float32


def test_occlusion_false_forces_frames_reliable():
    before = table(TWO_TRACKS)
    before["occluded"][:] = True
    after = apply_edits(
        before, [{"op": "occlusion", "track": 1, "start": 3, "end": 3, "occluded": False}]
    )
    assert after["occluded"].tolist() == [True, True, True, False, True, True, True, True]
    assert after["reliability"][3] == 1.0


def test_order_of_edits_matters_and_is_respected():
    swap = {"op": "swap", "track_a": 1, "track_b": 2, "from_frame": 2}
    delete = {"op": "delete", "track": 1}
    swap_then_delete = apply_edits(table(TWO_TRACKS), [swap, delete])
    delete_then_swap = apply_edits(table(TWO_TRACKS), [delete, swap])
    # Swap first: track 1 holds 2's late rows when deleted, so 2 keeps 1's late rows.
    assert pairs(swap_then_delete) == [(2, 0), (2, 1), (2, 2), (2, 3)]
    assert swap_then_delete["marker"].tolist() == [40, 50, 20, 30]
    # Delete first: track 1 is gone, so the swap renames 2's late rows to 1.
    assert pairs(delete_then_swap) == [(1, 2), (1, 3), (2, 0), (2, 1)]
    assert delete_then_swap["marker"].tolist() == [60, 70, 40, 50]


def test_apply_does_not_mutate_its_input():
    before = table(TWO_TRACKS)
    snapshot = {name: array.copy() for name, array in before.items()}
    apply_edits(
        before,
        [
            {"op": "occlusion", "track": 1, "start": 0, "end": 3, "occluded": True},
            {"op": "swap", "track_a": 1, "track_b": 2, "from_frame": 0},
        ],
    )
    for name, array in before.items():
        np.testing.assert_array_equal(array, snapshot[name])


def test_no_edits_returns_sorted_copies():
    before = table([(2, 0), (1, 1), (1, 0)])
    after = apply_edits(before, [])
    assert pairs(after) == [(1, 0), (1, 1), (2, 0)]
    assert after["frame"] is not before["frame"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"op": "rename", "track": 1}, "Unknown edit op"),
        ("swap", "JSON object"),
        ({"op": "swap", "track_a": 1, "track_b": 2}, "needs from_frame"),
        ({"op": "swap", "track_a": 1, "track_b": 1, "from_frame": 0}, "two different"),
        ({"op": "merge", "into": 3, "from": 3}, "two different"),
        ({"op": "split", "track": 3, "from_frame": 0, "new_id": 3}, "new ID"),
        ({"op": "delete", "track": 0}, "not a track ID"),
        ({"op": "delete", "track": 70000}, "not a track ID"),
        ({"op": "delete", "track": 1.0}, "whole number"),
        ({"op": "delete", "track": True}, "whole number"),
        ({"op": "delete", "track": 1, "color": "red"}, "unknown field"),
        ({"op": "swap", "track_a": 1, "track_b": 2, "from_frame": -1}, "negative"),
        ({"op": "occlusion", "track": 1, "start": 5, "end": 4, "occluded": True}, "start <= end"),
        ({"op": "occlusion", "track": 1, "start": 0, "end": 4, "occluded": 1}, "true or false"),
    ],
)
def test_invalid_edits_are_refused(edit, message):
    with pytest.raises(ValueError, match=message):
        validate_edit(edit)
    with pytest.raises(ValueError, match=message):
        apply_edits(table(TWO_TRACKS), [edit])


def test_validate_returns_plain_values():
    clean = validate_edit(
        {"op": "split", "track": np.int32(2), "from_frame": np.int64(4), "new_id": 5}
    )
    assert clean == {"op": "split", "track": 2, "from_frame": 4, "new_id": 5}
    assert all(type(v) is int for k, v in clean.items() if k != "op")


def result_folder(tmp_path):
    folder = tmp_path / "clip.ram"
    folder.mkdir()
    (folder / "manifest.json").write_text('{"format": "ram-motion", "version": 1}')
    (folder / EDITS_FILE_NAME).write_text(json.dumps(empty_edits_document()))
    return folder


def test_append_keeps_earlier_edits_and_touches_only_the_log(tmp_path):
    folder = result_folder(tmp_path)
    manifest_before = (folder / "manifest.json").read_bytes()
    first = {"op": "delete", "track": 3}
    second = {"op": "swap", "track_a": 1, "track_b": 2, "from_frame": 10}
    assert append_edit(folder, first) == [first]
    assert append_edit(folder, second) == [first, second]
    assert read_edits(folder) == [first, second]
    assert read_edits(folder / EDITS_FILE_NAME) == [first, second]
    assert (folder / "manifest.json").read_bytes() == manifest_before
    assert sorted(p.name for p in folder.iterdir()) == [EDITS_FILE_NAME, "manifest.json"]


def test_append_of_an_invalid_edit_leaves_the_log_alone(tmp_path):
    folder = result_folder(tmp_path)
    append_edit(folder, {"op": "delete", "track": 3})
    before = (folder / EDITS_FILE_NAME).read_bytes()
    with pytest.raises(ValueError):
        append_edit(folder, {"op": "delete", "track": -3})
    assert (folder / EDITS_FILE_NAME).read_bytes() == before


def test_append_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    folder = result_folder(tmp_path)
    append_edit(folder, {"op": "delete", "track": 3})
    before = (folder / EDITS_FILE_NAME).read_bytes()

    def failing_replace(source, destination):
        raise OSError("disk full")

    # Only the final rename is made to fail: the log must still be the old one, whole, and
    # no temporary file may stay behind.
    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        append_edit(folder, {"op": "delete", "track": 4})
    monkeypatch.undo()
    assert (folder / EDITS_FILE_NAME).read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == [EDITS_FILE_NAME, "manifest.json"]


def test_folder_without_a_log_has_no_edits(tmp_path):
    folder = result_folder(tmp_path)
    (folder / EDITS_FILE_NAME).unlink()
    assert read_edits(folder) == []
    append_edit(folder, {"op": "delete", "track": 2})
    assert json.loads((folder / EDITS_FILE_NAME).read_text())["format"] == "ram-edits"


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_edits(tmp_path / "nowhere.ram")
    with pytest.raises(FileNotFoundError):
        append_edit(tmp_path / "nowhere.ram", {"op": "delete", "track": 2})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other", "version": 1, "edits": []}', "not a 'ram-edits'"),
        ('{"format": "ram-edits", "version": 2, "edits": []}', "newer ram-core"),
        ('{"format": "ram-edits", "version": 1}', "no 'edits' list"),
        ('{"format": "ram-edits", "version": 1, "edits": [{"op": "nope"}]}', "edit 0"),
    ],
)
def test_bad_logs_are_refused(tmp_path, content, message):
    folder = result_folder(tmp_path)
    (folder / EDITS_FILE_NAME).write_text(content)
    with pytest.raises(ValueError, match=message):
        read_edits(folder)
