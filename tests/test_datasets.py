"""Dataset readers on tiny files in each format, written by the tests themselves."""

from __future__ import annotations

import json
import pickle
import pickletools
import struct
from pathlib import Path

import numpy as np
import pytest

from ram_core.errors import BadInputError
from ram_core.eval.datasets import load_numpy_pickle, read_3dpw, read_mot_challenge, read_posetrack

# --- MOTChallenge -------------------------------------------------------------------------


def test_mot_reads_comma_and_space_separated_rows(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text(
        "1,1,11,21,30,40,1,-1,-1,-1\n"
        "\n"
        "1 2 101.5 1 10 10 0 1 0.5\n"
        "2.0,1,12,22,30,40\n"  # six columns, a frame number printed as a float
    )
    seq = read_mot_challenge(path)
    assert seq.boxes.frame.tolist() == [1, 1, 2]
    assert seq.boxes.track_id.tolist() == [1, 2, 1]
    # 1-based MOTChallenge pixels become 0-based corners.
    assert np.allclose(seq.boxes.box_xyxy[0], [10, 20, 40, 60])
    assert np.allclose(seq.boxes.box_xyxy[1], [100.5, 0, 110.5, 10])
    assert seq.confidence.tolist() == [1.0, 0.0, 1.0]
    kept = seq.with_min_confidence(1.0)
    assert kept.boxes.track_id.tolist() == [1, 1]


def test_mot_empty_file_is_no_boxes(tmp_path):
    path = tmp_path / "pred.txt"
    path.write_text("")
    assert len(read_mot_challenge(path).boxes) == 0


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("1,1,10,20,30\n", 1, ("at least 6 values",)),
        ("1,1,10,20,30,40\n1,x,1,1,1,1\n", 2, ("not a number",)),
        ("1,1,10,20,-3,40\n", 1, ("negative",)),
        ("1,1,10,20,3,nan\n", 1, ("NaN",)),
        ("1.5,1,10,20,3,4\n", 1, ("not a number", "whole number")),
        ("3,7,1,1,1,1\n3,7,2,2,2,2\n", 2, ("id 7 appears twice in frame 3", "first on line 1")),
    ],
)
def test_mot_malformed_lines_name_file_and_line(tmp_path, content, line, words):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(BadInputError) as info:
        read_mot_challenge(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: ")
    assert "\n" not in message
    for word in words:
        assert word in message


def test_mot_missing_file(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        read_mot_challenge(tmp_path / "absent.txt")


def test_mot_binary_file(tmp_path):
    path = tmp_path / "video.mp4"
    path.write_bytes(b"\x00\xff\xfe" * 50)
    with pytest.raises(BadInputError, match="cannot read"):
        read_mot_challenge(path)


# --- PoseTrack ----------------------------------------------------------------------------


def posetrack_file(tmp_path: Path, annotations: list, images: list | None = None) -> Path:
    if images is None:
        # Listed out of order: frame_id, not list position, orders the frames.
        images = [
            {"id": 10010002, "frame_id": 10010002, "file_name": "images/val/001/000002.jpg"},
            {"id": 10010000, "frame_id": 10010000, "file_name": "images/val/001/000000.jpg"},
            {"id": 10010001, "frame_id": 10010001, "file_name": "images/val/001/000001.jpg"},
        ]
    path = tmp_path / "001_val.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_posetrack_reads_box_tracks_in_frame_order(tmp_path):
    path = posetrack_file(
        tmp_path,
        [
            {"image_id": 10010000, "track_id": 0, "bbox": [10, 20, 30, 40], "id": 1},
            {"image_id": 10010002, "track_id": 0, "bbox": [14, 20, 30, 40.5], "id": 2},
            {"image_id": 10010002, "track_id": 3, "bbox": [100, 20, 30, 40], "id": 3},
            {"image_id": 10010001, "track_id": 3, "keypoints": [0] * 51, "id": 4},  # no box
            {"image_id": 10010001, "track_id": 5, "bbox": [], "id": 5},  # empty box
        ],
    )
    seq = read_posetrack(path)
    assert seq.image_ids.tolist() == [10010000, 10010001, 10010002]
    assert seq.file_names[0].endswith("000000.jpg")
    assert seq.boxes.frame.tolist() == [0, 2, 2]
    assert seq.boxes.track_id.tolist() == [0, 0, 3]
    assert np.allclose(seq.boxes.box_xyxy[1], [14, 20, 44, 60.5])


def test_posetrack_without_frame_id_keeps_list_order(tmp_path):
    images = [{"id": 7, "file_name": "a.jpg"}, {"id": 3, "file_name": "b.jpg"}]
    path = posetrack_file(
        tmp_path, [{"image_id": 3, "track_id": 1, "bbox": [0, 0, 1, 1]}], images=images
    )
    seq = read_posetrack(path)
    assert seq.image_ids.tolist() == [7, 3]
    assert seq.boxes.frame.tolist() == [1]


@pytest.mark.parametrize(
    ("annotations", "words"),
    [
        ([{"image_id": 1, "track_id": 0, "bbox": [0, 0, 1, 1]}], ("image_id 1",)),
        ([{"image_id": 10010000, "bbox": [0, 0, 1, 1]}], ("annotations[0]", "'track_id'")),
        ([{"image_id": 10010000, "track_id": 0, "bbox": [0, 0, 1]}], ("bbox",)),
        ([{"image_id": 10010000, "track_id": 0, "bbox": [0, 0, -1, 1]}], ("negative",)),
        ([{"image_id": 10010000, "track_id": "a", "bbox": [0, 0, 1, 1]}], ("integer",)),
        (
            [{"image_id": 10010000, "track_id": 0, "bbox": [0, 0, 1, 1]}] * 2,
            ("track 0 appears more than once",),
        ),
        (["not an object"], ("annotations[0]",)),
    ],
)
def test_posetrack_malformed_annotations(tmp_path, annotations, words):
    path = posetrack_file(tmp_path, annotations)
    with pytest.raises(BadInputError) as info:
        read_posetrack(path)
    for word in (path.name, *words):
        assert word in str(info.value)


def test_posetrack_not_json_or_wrong_layout(tmp_path):
    path = tmp_path / "x.json"
    path.write_text("{ images: ")
    with pytest.raises(BadInputError, match="not valid JSON"):
        read_posetrack(path)
    path.write_text(json.dumps({"images": []}))
    with pytest.raises(BadInputError, match="missing 'annotations'"):
        read_posetrack(path)


# --- 3DPW ---------------------------------------------------------------------------------


class Python2Pickler(pickle._Pickler):
    """Writes text and bytes as Python 2 ``str`` (BINSTRING), as 3DPW's own files hold them."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def write_python2_pickle(path: Path, obj) -> Path:
    with path.open("wb") as f:
        Python2Pickler(f, protocol=2).dump(obj)
    return path


def tiny_3dpw(actors: int = 2, frames: int = 4) -> dict:
    rng = np.random.default_rng(0)
    return {
        "sequence": "courtyard_tiny_00",
        "poses": [rng.normal(size=(frames, 72)) for _ in range(actors)],
        "trans": [rng.normal(size=(frames, 3)) for _ in range(actors)],
        "betas": [rng.normal(size=10) for _ in range(actors)],
        "jointPositions": [rng.normal(size=(frames, 72)) for _ in range(actors)],
        "cam_poses": np.tile(np.eye(4), (frames, 1, 1)),
        "campose_valid": [np.array([1, 1, 0, 1], dtype=bool)[:frames] for _ in range(actors)],
        "cam_intrinsics": np.array([[1961.0, 0, 540], [0, 1969.0, 960], [0, 0, 1]]),
        "genders": ["m", "f"][:actors],
        "img_frame_ids": np.arange(frames),
        "poses2d": [rng.normal(size=(frames, 3, 18)) for _ in range(actors)],
    }


def test_3dpw_python2_latin1_pickle(tmp_path):
    raw = tiny_3dpw()
    path = write_python2_pickle(tmp_path / "courtyard_tiny_00.pkl", raw)
    # The file really is Python 2 style: text and numpy buffers as 8-bit strings only.
    opcodes = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
    assert "SHORT_BINSTRING" in opcodes
    assert not opcodes & {"BINUNICODE", "SHORT_BINBYTES", "BINBYTES", "SHORT_BINUNICODE"}
    seq = read_3dpw(path)
    assert seq.name == "courtyard_tiny_00"
    assert (seq.num_actors, seq.num_frames) == (2, 4)
    assert np.array_equal(seq.poses[1], raw["poses"][1])
    assert seq.trans.shape == (2, 4, 3)
    assert seq.betas.shape == (2, 10)
    assert np.array_equal(seq.joint_positions[0, 2], raw["jointPositions"][0][2].reshape(24, 3))
    assert seq.cam_poses.shape == (4, 4, 4)
    assert seq.campose_valid.tolist() == [[True, True, False, True]] * 2
    assert seq.cam_intrinsics[0, 0] == 1961.0
    assert seq.genders == ("m", "f")
    assert seq.img_frame_ids.tolist() == [0, 1, 2, 3]


def test_3dpw_optional_fields_may_be_absent(tmp_path):
    raw = {k: tiny_3dpw(actors=1)[k] for k in ("poses", "trans", "betas")}
    raw["betas"] = [np.zeros(300)]  # more shape coefficients than SMPL's 10
    seq = read_3dpw(write_python2_pickle(tmp_path / "walking_00.pkl", raw))
    assert seq.name == "walking_00"
    assert seq.joint_positions is None and seq.cam_poses is None and seq.cam_intrinsics is None
    assert seq.campose_valid.all()
    assert seq.betas.shape == (1, 10)


def test_3dpw_refuses_code_in_the_pickle(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"poses": Payload()}, protocol=2))
    with pytest.raises(BadInputError, match="refusing to load"):
        load_numpy_pickle(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d.pop("poses"), ("missing 'poses'",)),
        (lambda d: d.update(trans=[np.zeros((3, 3))] * 2), ("'trans'", "4 frames")),
        (lambda d: d.update(poses=[np.zeros((4, 69))] * 2), ("'poses'", "(P, T, 72)")),
        (lambda d: d.update(cam_poses=np.zeros((4, 3, 4))), ("'cam_poses'",)),
        (lambda d: d.update(betas=[np.zeros(3)] * 2), ("'betas'",)),
    ],
)
def test_3dpw_malformed(tmp_path, change, words):
    raw = tiny_3dpw()
    change(raw)
    path = write_python2_pickle(tmp_path / "bad.pkl", raw)
    with pytest.raises(BadInputError) as info:
        read_3dpw(path)
    for word in ("bad.pkl", *words):
        assert word in str(info.value)


def test_3dpw_not_a_pickle(tmp_path):
    path = tmp_path / "seq.pkl"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(BadInputError, match="not a readable 3DPW pickle"):
        read_3dpw(path)
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(BadInputError, match="expected a dict"):
        read_3dpw(path)
    with pytest.raises(BadInputError, match="not found"):
        read_3dpw(tmp_path / "absent.pkl")
