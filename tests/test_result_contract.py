"""The result contract, writer to reader, every layer: the pipeline's output, the edits
(tracks and masks alike), the Combiner's re-run, the rest skeleton, and the version rule
that keeps older version-1 results loading.

The tracks table and the masks must always name the same people: on every frame, the labels
drawn in the mask are exactly the tracks with a row there.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

import ram_core
from ram_core.body.skeleton import builtin_rest_skeleton
from ram_core.io.edits import append_edit
from ram_core.io.result import (
    COMBINED_FILE_NAME,
    TRACK_ARRAYS,
    TRACKS_FILE_NAME,
    ResultFormatError,
    ResultWriter,
    load_result,
    read_mask,
    solved_rest_skeleton,
    write_combined,
)
from ram_core.motion.combiner import CombinerConfig
from ram_core.motion.fusion import fuse_tracks
from ram_core.motion.predictor import PredictorConfig
from ram_core.motion.recombine import (
    motion_config_record,
    recombine_result,
    recorded_foot_config,
    tracks_to_refuse,
)

FRAMES = 10
HEIGHT, WIDTH = 12, 30
# Track -> its frames; each track paints its own column band in the masks.
SPANS = {1: range(10), 2: range(6), 5: range(3, 10)}
BANDS = {1: slice(0, 8), 2: slice(10, 18), 5: slice(20, 28)}
RECORDED_PREDICTOR = PredictorConfig(damping=0.8)
RECORDED_COMBINER = CombinerConfig(reliability_midpoint=0.7)


def make_table(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = [(track, frame) for track, frames in SPANS.items() for frame in frames]
    n = len(rows)
    table = {
        name: np.zeros((n, *shape), dtype=dtype) for name, (shape, dtype) in TRACK_ARRAYS.items()
    }
    table["track_id"][:] = [r[0] for r in rows]
    table["frame"][:] = [r[1] for r in rows]
    for name in ("recon_global_orient", "recon_body_pose", "recon_transl"):
        table[name][:] = rng.normal(0.0, 0.3, table[name].shape)
    table["recon_transl"][:, 2] += 5.0
    table["recon_valid"][:] = True
    table["recon_confidence"][:] = rng.uniform(0.2, 1.0, n)
    table["reliability"][:] = rng.uniform(0.6, 1.0, n)
    table["box_xyxy"][:] = [0.0, 0.0, 8.0, 12.0]
    # The pipeline fuses with the settings its manifest records (see ``result``).
    return fuse_tracks(table, RECORDED_PREDICTOR, RECORDED_COMBINER)


def labels_of(frame: int) -> np.ndarray:
    labels = np.zeros((HEIGHT, WIDTH), np.uint16)
    for track, frames in SPANS.items():
        if frame in frames:
            labels[:, BANDS[track]] = track
    return labels


@pytest.fixture
def result(tmp_path):
    out = tmp_path / "clip.ram"
    manifest = {
        "source_video": {"path": "clip.mp4", "fps": 25.0, "width": WIDTH, "height": HEIGHT},
        # As the pipeline records them: every field of each section.
        "config": {
            "combiner": dataclasses.asdict(RECORDED_COMBINER),
            "predictor": dataclasses.asdict(RECORDED_PREDICTOR),
        },
        "rest_skeleton": builtin_rest_skeleton(),
    }
    with ResultWriter(out) as writer:
        for frame in range(FRAMES):
            writer.write_mask(frame, labels_of(frame))
        writer.finish(manifest, make_table())
    return out


def assert_masks_name_the_tracks(out) -> None:
    loaded = ram_core.load_result(out)
    for frame in range(FRAMES):
        drawn = set(np.unique(ram_core.read_mask(out, frame)).tolist()) - {0}
        rows = set(loaded.tracks["track_id"][loaded.tracks["frame"] == frame].tolist())
        assert drawn == rows, f"frame {frame}: mask draws {drawn}, the table has {rows}"


def band_owner(out, frame: int, track: int) -> int:
    """Which label the pixels first painted by ``track`` carry now."""
    return int(read_mask(out, frame)[0, BANDS[track].start])


def test_the_pipeline_layer_reads_back_as_written(result):
    loaded = ram_core.load_result(result)
    assert loaded.layers == ("pipeline", "edits")
    written = make_table()["recon_confidence"]
    np.testing.assert_array_equal(loaded.tracks["recon_confidence"], written)
    for frame in range(FRAMES):
        np.testing.assert_array_equal(ram_core.read_mask(result, frame), labels_of(frame))
    assert_masks_name_the_tracks(result)


def test_swap_from_a_frame_swaps_tracks_and_labels_from_there_on(result):
    append_edit(result, {"op": "swap", "track_a": 1, "track_b": 2, "from_frame": 4})
    assert [band_owner(result, f, 1) for f in (3, 4, 5)] == [1, 2, 2]
    assert [band_owner(result, f, 2) for f in (3, 4, 5)] == [2, 1, 1]
    assert band_owner(result, 8, 1) == 2  # track 2 now goes on where 1 was
    loaded = load_result(result)
    assert sorted(loaded.track(2)["frame"].tolist()) == [*range(4), *range(4, 10)]
    assert_masks_name_the_tracks(result)
    assert read_mask(result, 5, apply_edits=False)[0, 0] == 1


def test_merge_relabels_the_source_everywhere(result):
    append_edit(result, {"op": "merge", "into": 2, "from": 5})
    assert [band_owner(result, f, 5) for f in (3, 9)] == [2, 2]
    assert 5 not in load_result(result).track_ids()
    assert_masks_name_the_tracks(result)


def test_split_moves_the_later_frames_to_the_new_id(result):
    append_edit(result, {"op": "split", "track": 1, "from_frame": 6, "new_id": 9})
    assert [band_owner(result, f, 1) for f in (5, 6, 9)] == [1, 9, 9]
    assert load_result(result).track(9)["frame"].tolist() == [6, 7, 8, 9]
    assert_masks_name_the_tracks(result)


def test_delete_clears_the_track_to_background(result):
    append_edit(result, {"op": "delete", "track": 2})
    assert all(band_owner(result, f, 2) == 0 for f in range(FRAMES))
    assert 2 not in load_result(result).track_ids()
    assert_masks_name_the_tracks(result)


def test_occlusion_edits_change_the_table_not_the_masks(result):
    append_edit(result, {"op": "occlusion", "track": 1, "start": 2, "end": 4, "occluded": True})
    for frame in range(FRAMES):
        np.testing.assert_array_equal(read_mask(result, frame), labels_of(frame))
    rows = load_result(result).track(1)
    assert rows["occluded"][2:5].all() and not rows["occluded"][5:].any()


def test_a_chain_of_edits_keeps_tracks_and_masks_together(result):
    for edit in (
        {"op": "swap", "track_a": 1, "track_b": 5, "from_frame": 5},
        {"op": "split", "track": 2, "from_frame": 3, "new_id": 7},
        {"op": "merge", "into": 7, "from": 1},
        {"op": "delete", "track": 5},
        {"op": "swap", "track_a": 7, "track_b": 2, "from_frame": 0},
    ):
        append_edit(result, edit)
        assert_masks_name_the_tracks(result)


def test_the_combined_layer_is_read_with_later_edits_on_top(result):
    occlusion = {"op": "occlusion", "track": 1, "start": 2, "end": 6, "occluded": True}
    append_edit(result, occlusion)
    before = load_result(result)
    assert np.all(before.track(1)["gate"][2:7] > 0)  # the old gate until the re-run

    written = recombine_result(result)
    assert written == result / COMBINED_FILE_NAME
    combined = load_result(result)
    assert combined.layers == ("pipeline", "edits", "combined")
    assert np.all(combined.track(1)["gate"][2:7] == 0)
    # The Combiner ran with the settings the run recorded, not the defaults.
    recorded = fuse_tracks(
        load_result(result, use_combined=False).tracks,
        PredictorConfig(damping=0.8),
        CombinerConfig(reliability_midpoint=0.7),
    )
    np.testing.assert_allclose(combined.tracks["gate"], recorded["gate"])
    np.testing.assert_allclose(combined.tracks["body_pose"], recorded["body_pose"], atol=1e-6)
    default = fuse_tracks(load_result(result, use_combined=False).tracks)
    assert not np.allclose(default["gate"], recorded["gate"])

    append_edit(result, {"op": "swap", "track_a": 1, "track_b": 2, "from_frame": 0})
    swapped = load_result(result)
    assert swapped.layers == ("pipeline", "edits", "combined")
    np.testing.assert_array_equal(swapped.track(2)["gate"], combined.track(1)["gate"])
    assert_masks_name_the_tracks(result)
    # The pipeline's own output is never rewritten.
    raw = load_result(result, apply_edits=False)
    np.testing.assert_array_equal(raw.tracks["gate"], make_table()["gate"])


def test_a_combined_file_from_another_log_is_not_used(result):
    append_edit(result, {"op": "delete", "track": 5})
    recombine_result(result)
    log = json.loads((result / "edits.json").read_text())
    log["edits"][0]["track"] = 2  # the log no longer starts with what was combined
    (result / "edits.json").write_text(json.dumps(log))
    loaded = load_result(result)
    assert loaded.layers == ("pipeline", "edits") and loaded.combined_stale
    assert 2 not in loaded.track_ids() and 5 in loaded.track_ids()
    # A damaged re-run never keeps the artist from the result and its edits.
    (result / COMBINED_FILE_NAME).write_bytes(b"not a zip")
    damaged = load_result(result)
    assert damaged.combined_stale and 2 not in damaged.track_ids()


def test_an_older_version_1_result_still_loads(result):
    """Before the confidence column and the rest_skeleton field: defaults, documented."""
    with np.load(result / TRACKS_FILE_NAME) as archive:
        arrays = {name: archive[name] for name in archive.files if name != "recon_confidence"}
    arrays["recon_valid"][:3] = False
    np.savez_compressed(result / TRACKS_FILE_NAME, **arrays)
    manifest = json.loads((result / "manifest.json").read_text())
    del manifest["rest_skeleton"]
    (result / "manifest.json").write_text(json.dumps(manifest))

    loaded = load_result(result)
    np.testing.assert_array_equal(
        loaded.tracks["recon_confidence"], arrays["recon_valid"].astype(np.float32)
    )
    skeleton = loaded.rest_skeleton
    assert skeleton["kind"] == "builtin" and skeleton["recorded"] is False
    assert skeleton["sha256"] == builtin_rest_skeleton()["sha256"]


def test_the_rest_skeleton_is_read_from_the_manifest():
    builtin = builtin_rest_skeleton()
    assert solved_rest_skeleton({"rest_skeleton": builtin})["recorded"] is True
    smpl = {"kind": "smpl_file", "sha256": "ab" * 32}
    assert solved_rest_skeleton({"rest_skeleton": smpl})["kind"] == "smpl_file"
    with pytest.raises(ResultFormatError, match="not one this reader knows"):
        solved_rest_skeleton({"rest_skeleton": {"kind": "mystery"}})


def test_the_package_exports_the_reader():
    from ram_core.io import result

    assert ram_core.load_result is result.load_result
    assert ram_core.read_mask is result.read_mask
    with pytest.raises(AttributeError):
        _ = ram_core.no_such_name


def test_tracks_edited_since_the_last_run_are_the_ones_a_rerun_changes(result):
    assert load_result(result).unfused_tracks == frozenset()
    append_edit(result, {"op": "occlusion", "track": 2, "start": 1, "end": 3, "occluded": True})
    current = load_result(result)
    assert current.unfused_tracks == {2}
    assert tracks_to_refuse(current, RECORDED_PREDICTOR, RECORDED_COMBINER) == {2}
    # Re-running track 2 alone gives what re-running every track gives.
    partial = fuse_tracks(current.tracks, RECORDED_PREDICTOR, RECORDED_COMBINER, track_ids=[2])
    recombine_result(result)
    full = load_result(result)
    assert full.unfused_tracks == frozenset() and full.layers[-1] == "combined"
    for name in ("global_orient", "body_pose", "transl", "gate", "pred_transl"):
        np.testing.assert_allclose(partial[name], full.tracks[name], atol=1e-5)
    # Later edits mark the tracks they name, through swaps too.
    append_edit(result, {"op": "swap", "track_a": 1, "track_b": 5, "from_frame": 4})
    assert load_result(result).unfused_tracks == {1, 5}
    # A re-run of some tracks records the others it left behind.
    edited = load_result(result)
    record = motion_config_record(
        RECORDED_PREDICTOR, RECORDED_COMBINER, recorded_foot_config(edited.manifest)
    )
    write_combined(result, edited.tracks, edited.edits, {5}, motion_config=record)
    again = load_result(result)
    assert again.unfused_tracks == {5} and again.combined_motion_config == record
    assert tracks_to_refuse(again, RECORDED_PREDICTOR, RECORDED_COMBINER) == {5}
    # Other settings than the last run's: every track.
    assert tracks_to_refuse(again, PredictorConfig(), RECORDED_COMBINER) == {1, 2, 5}


def test_a_result_from_before_the_relaxation_is_re_run_without_it():
    from ram_core.motion.recombine import recorded_motion_config

    old = {"config": {"predictor": {"damping": 0.9, "transl_damping": 0.9}}}
    predictor, _ = recorded_motion_config(old)
    assert predictor.relax_frames == 0.0 and predictor.damping == 0.9
    current = {"config": {"predictor": dataclasses.asdict(PredictorConfig())}}
    assert recorded_motion_config(current)[0] == PredictorConfig()
