"""The bundled demo clip agrees with its ground truth, and the occlusion it exists for is there."""

from pathlib import Path

import cv2
import numpy as np
import pytest

DEMO = Path(__file__).resolve().parent.parent / "demo"
VIDEO = DEMO / "three_people.mp4"
GT = DEMO / "three_people_gt.npz"


@pytest.fixture(scope="module")
def gt() -> dict[str, np.ndarray]:
    with np.load(GT) as data:
        return {key: data[key] for key in data.files}


def _longest_run(flags: np.ndarray) -> int:
    run = best = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def test_video_matches_ground_truth_size_rate_and_length(gt):
    capture = cv2.VideoCapture(str(VIDEO))
    assert capture.isOpened()
    frame_count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (int(gt["height"]), int(gt["width"]), 3)
        frame_count += 1
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    assert frame_count == gt["box_full_xyxy"].shape[0]
    assert fps == pytest.approx(float(gt["fps"]), abs=0.01)


def test_arrays_have_consistent_shapes_and_types(gt):
    frames, people = gt["visible_fraction"].shape
    assert people == 3 and 72 <= frames <= 96
    assert gt["person_ids"].dtype == np.int32
    assert gt["person_ids"].tolist() == list(range(1, people + 1))
    assert gt["K"].shape == (3, 3) and gt["R_world_to_cam"].shape == (3, 3)
    assert gt["t_world_to_cam"].shape == (3,)
    assert gt["box_full_xyxy"].shape == (frames, people, 4)
    assert gt["box_visible_xyxy"].shape == (frames, people, 4)
    assert gt["joints_world"].shape == (frames, people, 24, 3)
    assert gt["joints_cam"].shape == (frames, people, 24, 3)
    for key in ("K", "box_full_xyxy", "visible_fraction", "joints_world", "joints_cam"):
        assert gt[key].dtype == np.float32, key
    rotation = gt["R_world_to_cam"].astype(np.float64)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)


def test_camera_joints_are_the_world_joints_moved_by_the_extrinsics(gt):
    moved = gt["joints_world"] @ gt["R_world_to_cam"].T + gt["t_world_to_cam"]
    np.testing.assert_allclose(moved, gt["joints_cam"], atol=1e-3)
    # OpenCV axes: everyone stands in front of the camera, heads above (smaller y) feet.
    assert (gt["joints_cam"][..., 2] > 1.0).all()
    head, ankles = gt["joints_cam"][:, :, 15, 1], gt["joints_cam"][:, :, 7:9, 1].mean(axis=2)
    assert (head < ankles).all()


def test_projected_joints_fall_inside_the_full_boxes(gt):
    uvw = gt["joints_cam"].astype(np.float64) @ gt["K"].astype(np.float64).T
    pixels = uvw[..., :2] / uvw[..., 2:3]  # (T, P, 24, 2)
    box = gt["box_full_xyxy"][:, :, None, :]
    slack = 1.0
    assert (pixels[..., 0] >= box[..., 0] - slack).all()
    assert (pixels[..., 0] <= box[..., 2] + slack).all()
    assert (pixels[..., 1] >= box[..., 1] - slack).all()
    assert (pixels[..., 1] <= box[..., 3] + slack).all()


def test_people_are_fully_in_frame_and_of_the_intended_size(gt):
    box = gt["box_full_xyxy"]
    heights = box[..., 3] - box[..., 1]
    assert heights.min() >= 130.0 and heights.max() <= 295.0
    assert (box[..., 3] < gt["height"]).all()  # feet in frame
    assert (box[..., 0] > 0).all() and (box[..., 2] < gt["width"]).all()


def test_visible_boxes_lie_inside_full_boxes(gt):
    full, visible = gt["box_full_xyxy"], gt["box_visible_xyxy"]
    seen = ~np.isnan(visible).any(axis=-1)
    assert np.array_equal(seen, gt["visible_fraction"] > 0)
    tol = 0.5
    assert (visible[seen][:, :2] >= full[seen][:, :2] - tol).all()
    assert (visible[seen][:, 2:] <= full[seen][:, 2:] + tol).all()
    assert ((gt["visible_fraction"] >= 0) & (gt["visible_fraction"] <= 1)).all()


def test_one_person_is_hidden_for_about_a_second_while_the_others_stay_visible(gt):
    fraction = gt["visible_fraction"]
    hidden_runs = [_longest_run(fraction[:, p] < 0.2) for p in range(fraction.shape[1])]
    hidden = int(np.argmax(hidden_runs))
    assert hidden_runs[hidden] >= 15
    others = [p for p in range(fraction.shape[1]) if p != hidden]
    for p in others:
        assert (fraction[:, p] > 0.8).mean() >= 0.9
    # The hidden person is seen before and after, so a tracker has someone to re-find.
    assert fraction[:8, hidden].min() > 0.9 and fraction[-8:, hidden].min() > 0.9
