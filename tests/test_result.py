"""The ram-motion result folder: atomic writing, reading, refusing what must not be touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ram_core.errors import BadInputError
from ram_core.io.edits import append_edit
from ram_core.io.result import (
    FORMAT_NAME,
    FORMAT_VERSION,
    TRACK_ARRAYS,
    ResultFormatError,
    ResultWriter,
    check_output_path,
    load_result,
    mask_path,
    read_mask,
    validate_tracks,
)

ROWS = [(1, 0), (1, 1), (1, 2), (4, 1), (4, 2)]
MANIFEST = {
    "source_video": {"path": "clip.mp4", "fps": 25.0, "width": 8, "height": 6, "frame_count": 3},
    "tool_version": "0.1.0",
}


def make_tracks(rows=ROWS, seed=0) -> dict[str, np.ndarray]:
    """A valid table with random values, in float64 and int64 to exercise the casting."""
    rng = np.random.default_rng(seed)
    n = len(rows)
    tracks = {}
    for name, (trailing, dtype) in TRACK_ARRAYS.items():
        if dtype == np.bool_:
            tracks[name] = rng.random((n, *trailing)) < 0.5
        else:
            tracks[name] = rng.random((n, *trailing))
    tracks["track_id"] = np.array([r[0] for r in rows], np.int64)
    tracks["frame"] = np.array([r[1] for r in rows], np.int64)
    return tracks


def leftovers(parent: Path, name: str) -> list[str]:
    """Temporary or old siblings a writer might have left beside ``name``."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(name + "."))


def write_result(out, tracks=None, masks=()):
    with ResultWriter(out) as writer:
        for frame, labels in masks:
            writer.write_mask(frame, labels)
        return writer.finish(MANIFEST, make_tracks() if tracks is None else tracks)


def test_round_trip(tmp_path):
    out = tmp_path / "clip.ram"
    tracks = make_tracks()
    assert write_result(out, tracks) == out
    result = load_result(out)
    assert result.manifest["format"] == FORMAT_NAME
    assert result.manifest["version"] == FORMAT_VERSION
    assert result.manifest["source_video"] == MANIFEST["source_video"]
    assert result.edits == []
    assert set(result.tracks) == set(TRACK_ARRAYS)
    for name, (trailing, dtype) in TRACK_ARRAYS.items():
        assert result.tracks[name].dtype == dtype
        assert result.tracks[name].shape == (len(ROWS), *trailing)
        np.testing.assert_array_equal(result.tracks[name], tracks[name].astype(dtype))
    edits_document = json.loads((out / "edits.json").read_text())
    assert edits_document == {"format": "ram-edits", "version": 1, "edits": []}
    assert leftovers(tmp_path, "clip.ram") == []


def test_track_access(tmp_path):
    out = tmp_path / "clip.ram"
    write_result(out)
    result = load_result(out)
    assert result.track_ids().tolist() == [1, 4]
    track = result.track(4)
    assert track["frame"].tolist() == [1, 2]
    assert track["body_pose"].shape == (2, 23, 3)
    with pytest.raises(KeyError):
        result.track(2)


def test_manifest_numpy_values_become_json(tmp_path):
    out = tmp_path / "clip.ram"
    with ResultWriter(out) as writer:
        writer.finish(
            {"fps": np.float32(25.0), "K": np.eye(3), "video": Path("a.mp4")}, make_tracks()
        )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fps"] == 25.0 and manifest["K"][1] == [0.0, 1.0, 0.0]
    assert manifest["video"] == "a.mp4"
    assert list(manifest)[:2] == ["format", "version"]


def test_masks_round_trip_8_and_16_bit(tmp_path):
    out = tmp_path / "clip.ram"
    small = np.zeros((6, 8), np.int64)
    small[1:4, 2:5] = 1
    small[4:, 6:] = 4
    large = small.copy()
    large[0, 0] = 300
    write_result(out, masks=[(0, small), (1, large)])
    assert mask_path(out, 1) == out / "masks" / "000001.png"
    for frame, labels in ((0, small), (1, large)):
        read = read_mask(out, frame)
        assert read.dtype == np.uint16
        np.testing.assert_array_equal(read, labels)
    import cv2

    assert cv2.imread(str(mask_path(out, 0)), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    assert cv2.imread(str(mask_path(out, 1)), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    with pytest.raises(ResultFormatError, match="no mask for frame 2"):
        read_mask(out, 2)


def test_bad_masks_are_refused(tmp_path):
    with ResultWriter(tmp_path / "clip.ram") as writer:
        with pytest.raises(ValueError, match=r"\(H, W\)"):
            writer.write_mask(0, np.zeros((4, 4, 3), np.uint8))
        with pytest.raises(ValueError, match=r"0\.\.65535"):
            writer.write_mask(0, np.full((4, 4), 70000))
        with pytest.raises(ValueError, match="integer"):
            writer.write_mask(0, np.zeros((4, 4), np.float32))
        writer.write_mask(0, np.zeros((4, 4), np.uint8))
        with pytest.raises(ValueError, match="earlier masks"):
            writer.write_mask(1, np.zeros((4, 5), np.uint8))


def test_newer_version_is_refused_with_a_clear_message(tmp_path):
    out = tmp_path / "clip.ram"
    write_result(out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["version"] = 2
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultFormatError) as caught:
        load_result(out)
    message = str(caught.value)
    assert "written by a newer ram-core" in message
    assert "version 2" in message
    assert "this reader knows version 1" in message
    assert "update the add-on" in message
    assert isinstance(caught.value, BadInputError)


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"format": "ram-motion", "version": 0}, "version 0"),
        ({"format": "ram-motion", "version": "1"}, "version '1'"),
        ({"format": "something-else", "version": 1}, "not 'ram-motion'"),
        ({"version": 1}, "not a ram-motion result folder"),
    ],
)
def test_other_formats_and_versions_are_refused(tmp_path, manifest, message):
    out = tmp_path / "clip.ram"
    write_result(out)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ResultFormatError, match=message):
        load_result(out)


def test_not_a_result_folder_is_refused(tmp_path):
    with pytest.raises(ResultFormatError, match="No result folder"):
        load_result(tmp_path / "nowhere.ram")
    plain = tmp_path / "holiday"
    plain.mkdir()
    (plain / "photo.jpg").write_bytes(b"jpeg")
    with pytest.raises(ResultFormatError, match="not a ram-motion result folder"):
        load_result(plain)
    a_file = tmp_path / "file.ram"
    a_file.write_text("x")
    with pytest.raises(ResultFormatError, match="is a file"):
        load_result(a_file)


def test_corrupt_or_incomplete_tracks_are_refused(tmp_path):
    out = tmp_path / "clip.ram"
    write_result(out)
    (out / "tracks.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ResultFormatError, match="corrupt"):
        load_result(out)
    incomplete = make_tracks()
    del incomplete["gate"]
    np.savez_compressed(out / "tracks.npz", **incomplete)
    with pytest.raises(ResultFormatError, match=r"lacks array.*gate"):
        load_result(out)
    (out / "tracks.npz").unlink()
    with pytest.raises(ResultFormatError, match=r"no tracks\.npz"):
        load_result(out)


def test_edits_are_applied_on_load_unless_asked_not_to(tmp_path):
    out = tmp_path / "clip.ram"
    write_result(out)
    append_edit(out, {"op": "delete", "track": 1})
    edited = load_result(out)
    assert edited.track_ids().tolist() == [4]
    assert edited.edits == [{"op": "delete", "track": 1}] and edited.edits_applied
    raw = load_result(out, apply_edits=False)
    assert raw.track_ids().tolist() == [1, 4] and not raw.edits_applied
    assert len(raw.edits) == 1


def test_exception_inside_the_writer_leaves_nothing(tmp_path):
    out = tmp_path / "clip.ram"
    with pytest.raises(RuntimeError, match="stage failed"), ResultWriter(out) as writer:
        writer.write_mask(0, np.ones((6, 8), np.uint8))
        temporary = writer.temporary_path
        assert temporary.is_dir() and temporary.name.startswith("clip.ram.tmp-")
        raise RuntimeError("stage failed")
    assert not out.exists()
    assert leftovers(tmp_path, "clip.ram") == []


def test_keyboard_interrupt_inside_the_writer_leaves_nothing(tmp_path):
    out = tmp_path / "clip.ram"
    with pytest.raises(KeyboardInterrupt), ResultWriter(out) as writer:
        writer.write_mask(0, np.ones((6, 8), np.uint8))
        raise KeyboardInterrupt
    assert not out.exists()
    assert leftovers(tmp_path, "clip.ram") == []


def test_leaving_without_finish_leaves_nothing(tmp_path):
    out = tmp_path / "clip.ram"
    with ResultWriter(out) as writer:
        writer.write_mask(0, np.ones((6, 8), np.uint8))
    assert not out.exists()
    assert leftovers(tmp_path, "clip.ram") == []


def test_invalid_tracks_at_finish_leave_nothing(tmp_path):
    out = tmp_path / "clip.ram"
    bad = make_tracks()
    bad["transl"][1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"), ResultWriter(out) as writer:
        writer.finish(MANIFEST, bad)
    assert not out.exists()
    assert leftovers(tmp_path, "clip.ram") == []


def test_finish_failing_outside_a_with_block_cleans_up(tmp_path):
    out = tmp_path / "clip.ram"
    writer = ResultWriter(out).__enter__()
    with pytest.raises(TypeError, match="cannot go into a manifest"):
        writer.finish({"callback": print}, make_tracks())
    assert not out.exists()
    assert leftovers(tmp_path, "clip.ram") == []


def test_replacing_a_result_without_edits(tmp_path):
    out = tmp_path / "clip.ram"
    write_result(out, make_tracks(seed=1), masks=[(0, np.ones((6, 8), np.uint8))])
    second = make_tracks(rows=[(2, 5)], seed=2)
    write_result(out, second)
    result = load_result(out)
    np.testing.assert_array_equal(result.tracks["transl"], second["transl"].astype(np.float32))
    assert not mask_path(out, 0).exists()
    assert leftovers(tmp_path, "clip.ram") == []


def test_a_result_with_edits_is_never_overwritten(tmp_path):
    out = tmp_path / "clip.ram"
    write_result(out)
    append_edit(out, {"op": "swap", "track_a": 1, "track_b": 4, "from_frame": 1})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(BadInputError, match=r"edit.*never overwritten.*another -o or remove it"):
        check_output_path(out)
    with pytest.raises(BadInputError, match="never overwritten"):
        ResultWriter(out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_edits_made_during_a_run_stop_the_final_rename(tmp_path):
    out = tmp_path / "clip.ram"
    write_result(out)
    with pytest.raises(BadInputError, match="never overwritten"), ResultWriter(out) as writer:
        # The artist edits the old result while the pipeline is still running.
        append_edit(out, {"op": "delete", "track": 4})
        writer.finish(MANIFEST, make_tracks(seed=5))
    assert load_result(out, apply_edits=False).edits == [{"op": "delete", "track": 4}]
    assert leftovers(tmp_path, "clip.ram") == []


def test_output_paths_that_are_not_results_are_refused(tmp_path):
    a_file = tmp_path / "notes.ram"
    a_file.write_text("mine")
    with pytest.raises(BadInputError, match="not a ram-motion result folder"):
        check_output_path(a_file)
    other = tmp_path / "photos"
    other.mkdir()
    (other / "a.jpg").write_bytes(b"x")
    with pytest.raises(BadInputError, match="not a ram-motion result folder"):
        ResultWriter(other)
    assert (other / "a.jpg").exists() and a_file.read_text() == "mine"
    under_a_file = a_file / "out.ram"
    with pytest.raises(BadInputError, match="is not a folder"):
        check_output_path(under_a_file)


def test_missing_parent_folders_are_made(tmp_path):
    out = tmp_path / "renders" / "shot_010" / "clip.ram"
    assert check_output_path(out) == out
    write_result(out)
    assert load_result(out).track_ids().tolist() == [1, 4]


def test_validate_tracks_casts_and_checks():
    checked = validate_tracks(make_tracks())
    assert all(checked[name].dtype == dtype for name, (_, dtype) in TRACK_ARRAYS.items())
    with_ints = make_tracks()
    with_ints["occluded"] = with_ints["occluded"].astype(np.int64)
    assert validate_tracks(with_ints)["occluded"].dtype == np.bool_


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update(body_pose=t["body_pose"][:, :22]), r"'body_pose' has shape"),
        (lambda t: t.update(betas=t["betas"][:-1]), r"'betas' has shape"),
        (lambda t: t.update(frame=t["frame"][::-1].copy()), "sorted by track then frame"),
        (lambda t: t.update(frame=np.array([0, 1, 1, 1, 2])), "sorted by track then frame"),
        (lambda t: t.update(track_id=t["track_id"] * 0), "1..65535"),
        (lambda t: t.update(frame=t["frame"] - 5), ">= 0"),
        (lambda t: t.update(track_id=t["track_id"].astype(float)), "integers"),
        (lambda t: t.update(occluded=t["s_kf"]), "booleans"),
        (lambda t: t.update(gate=np.full(5, 1e300)), "infinite"),
        (lambda t: t.update(extra=np.zeros(5)), "unknown array"),
        (lambda t: t.pop("recon_valid"), "lacks array.*recon_valid"),
    ],
)
def test_validate_tracks_rejects(change, message):
    tracks = make_tracks()
    change(tracks)
    with pytest.raises(ValueError, match=message):
        validate_tracks(tracks)


def test_reader_and_masks_work_without_cv2_or_scipy(tmp_path):
    """Blender's Python has neither: the reader, the edits and the masks need only numpy."""
    out = tmp_path / "clip.ram"
    labels = np.zeros((6, 8), np.uint16)
    labels[1:4, 2:5] = 1
    labels[4:, 6:] = 4
    write_result(out, masks=[(0, labels)])
    script = (
        "import sys\n"
        "for name in ('cv2', 'scipy', 'yaml', 'torch', 'mediapipe', 'ai_edge_litert', 'PIL'):\n"
        "    sys.modules[name] = None\n"
        "import numpy as np\n"
        "from ram_core import load_result, read_mask\n"
        f"result = load_result({str(out)!r})\n"
        "assert result.track_ids().tolist() == [1, 4]\n"
        f"print(read_mask({str(out)!r}, 0).tolist())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == labels.tolist()
    (out / "masks" / "000000.png").write_bytes(b"\x89PNG")
    with pytest.raises(ResultFormatError, match="not a greyscale PNG"):
        read_mask(out, 0)


@pytest.mark.parametrize("replacing", [False, True])
def test_a_failing_final_rename_leaves_the_target_as_it_was(tmp_path, monkeypatch, replacing):
    out = tmp_path / "clip.ram"
    if replacing:
        write_result(out, make_tracks(seed=3))
    real_rename = os.rename

    def rename_failing_into_target(source, destination):
        if Path(destination) == out and ".tmp-" in Path(source).name:
            raise OSError("no space left")
        real_rename(source, destination)

    monkeypatch.setattr(os, "rename", rename_failing_into_target)
    with pytest.raises(OSError, match="no space left"), ResultWriter(out) as writer:
        writer.finish(MANIFEST, make_tracks(seed=4))
    monkeypatch.undo()
    assert leftovers(tmp_path, "clip.ram") == []
    if replacing:
        kept = load_result(out).tracks["transl"]
        np.testing.assert_array_equal(kept, make_tracks(seed=3)["transl"].astype(np.float32))
    else:
        assert not out.exists()
