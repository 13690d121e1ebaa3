"""The Kalman + IoU baseline tracker on hand-made boxes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from ram_core.eval.iou_tracker import IouTracker, IouTrackerConfig, associate
from ram_core.track.segfollow import SegFollowConfig
from ram_core.types import Detection, Frame, Observation, Prompt

WIDTH, HEIGHT = 320, 200


class BoxSegmenter:
    """Returns the prompt's box as a filled mask (a perfect segmenter); records prompts."""

    def __init__(self, find: bool = True) -> None:
        self.find = find
        self.prompts: list[list[Prompt]] = []
        self.forgotten: list[int] = []

    def forget(self, track_id: int) -> None:
        self.forgotten.append(track_id)

    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        self.prompts.append(list(prompts))
        if not self.find:
            return [[] for _ in prompts]
        results = []
        for prompt in prompts:
            x1, y1, x2, y2 = np.round(prompt.box_xyxy).astype(int)
            mask = np.zeros((HEIGHT, WIDTH), bool)
            mask[max(y1, 0) : y2, max(x1, 0) : x2] = True
            results.append(
                [
                    Observation(
                        mask=mask,
                        box_xyxy=np.asarray(prompt.box_xyxy, np.float64),
                        quality=0.9,
                        object_score=2.0,
                        appearance=np.zeros(3, np.float32),
                    )
                ]
            )
        return results

    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        raise AssertionError("the IoU tracker must not use appearance")


def box(cx: float, cy: float, w: float = 30.0, h: float = 80.0) -> np.ndarray:
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def frame(index: int) -> Frame:
    return Frame(index=index, rgb=np.zeros((HEIGHT, WIDTH, 3), np.uint8))


def detections(*boxes: np.ndarray) -> list[Detection]:
    return [Detection(box_xyxy=b, score=0.9) for b in boxes]


def confirmed_ids(tracker: IouTracker, out) -> dict[int, np.ndarray]:
    return {tf.track_id: tf.box_xyxy for tf in out if tracker.is_confirmed(tf.track_id)}


def test_ids_are_kept_through_a_crossing_at_constant_velocity():
    tracker = IouTracker(BoxSegmenter(), IouTrackerConfig(min_hits=3))
    # A walks right, B walks left a little lower; they overlap for several frames.
    identity: dict[int, str] = {}
    for f in range(40):
        a, b = box(40 + 6 * f, 100), box(280 - 6 * f, 110)
        out = tracker.step(frame(f), detections(a, b))
        seen = confirmed_ids(tracker, out)
        for track_id, tracked in seen.items():
            who = "A" if np.allclose(tracked, a) else "B" if np.allclose(tracked, b) else "?"
            assert identity.setdefault(track_id, who) == who, f"frame {f}: track {track_id}"
    assert sorted(identity.values()) == ["A", "B"]
    assert tracker.tracks.keys() == {1, 2}


def test_a_person_gone_longer_than_max_age_comes_back_with_a_new_id():
    config = IouTrackerConfig(min_hits=2, max_age=5)
    segmenter = BoxSegmenter()
    tracker = IouTracker(segmenter, config)
    still = box(100, 100)
    for f in range(5):
        tracker.step(frame(f), detections(still))
    assert tracker.is_confirmed(1)
    # Gone for max_age frames: the track coasts (occluded, its Kalman box) and survives.
    for f in range(5, 10):
        (coasting,) = tracker.step(frame(f), [])
        assert coasting.track_id == 1 and coasting.occluded and coasting.observation is None
    (back,) = tracker.step(frame(10), detections(still))
    assert back.track_id == 1 and not back.occluded
    # Gone for max_age + 1 frames: the track ends and the person is someone new.
    for f in range(11, 17):
        tracker.step(frame(f), [])
    assert 1 not in tracker.tracks and segmenter.forgotten == [1]
    (new,) = tracker.step(frame(17), detections(still))
    assert new.track_id == 2 and not tracker.is_confirmed(2)


def test_a_one_frame_false_positive_never_becomes_a_confirmed_track():
    tracker = IouTracker(BoxSegmenter(), IouTrackerConfig(min_hits=3, tentative_max_misses=1))
    person = box(100, 100)
    reported = set()
    for f in range(12):
        found = detections(person, box(250, 60)) if f == 4 else detections(person)
        out = tracker.step(frame(f), found)
        reported |= set(confirmed_ids(tracker, out))
    assert reported == {1}
    assert set(tracker.tracks) == {1}  # the false positive was dropped after its misses


def test_track_frames_carry_the_segmenters_observation_and_scores():
    segmenter = BoxSegmenter()
    tracker = IouTracker(segmenter, IouTrackerConfig(min_hits=1))
    first = tracker.step(frame(0), detections(box(100, 100)))
    second = tracker.step(frame(1), detections(box(103, 100)))
    assert first[0].s_kf == 1.0 and first[0].observation is not None
    tf = second[0]
    assert 0.3 < tf.s_kf < 1.0 and tf.s_fused == tf.s_kf and tf.s_mask == 0.9
    presence = 1 / (1 + np.exp(-2.0))
    assert tf.reliability == pytest.approx(tf.s_kf * presence)
    # The segmenter was prompted with the detection box, under the track's id.
    (prompt,) = segmenter.prompts[-1]
    assert prompt.track_id == 1
    np.testing.assert_allclose(prompt.box_xyxy, box(103, 100))


def test_a_detection_the_segmenter_cannot_explain_has_no_pose():
    tracker = IouTracker(BoxSegmenter(find=False), IouTrackerConfig(min_hits=1))
    (tf,) = tracker.step(frame(0), detections(box(100, 100)))
    assert tf.observation is None and tf.occluded and tf.reliability == 0.0
    np.testing.assert_allclose(tf.box_xyxy, box(100, 100))


def test_small_or_unsure_detections_start_no_track():
    tracker = IouTracker(BoxSegmenter(), IouTrackerConfig(min_hits=1))
    unsure = Detection(box_xyxy=box(100, 100), score=0.3)
    small = Detection(box_xyxy=box(200, 100, w=10, h=20), score=0.9)
    assert tracker.step(frame(0), [unsure, small]) == []


def test_associate_keeps_only_pairs_above_the_threshold():
    predicted = np.array([box(50, 50), box(200, 50)])
    found = np.array([box(205, 50), box(52, 50), box(400, 50)])
    pairs, overlap = associate(predicted, found, 0.3)
    assert sorted(pairs) == [(0, 1), (1, 0)]
    assert overlap.shape == (2, 3)
    assert associate(np.zeros((0, 4)), found, 0.3)[0] == []


def test_config_follows_segfollow_and_refuses_bad_values():
    config = IouTrackerConfig.from_segfollow(SegFollowConfig(n_init=4, max_hidden_s=1.5), 20.0)
    assert (config.min_hits, config.max_age, config.confirmation_delay) == (4, 30, 5)
    with pytest.raises(ValueError, match="min_iou"):
        IouTrackerConfig(min_iou=0.0)
    with pytest.raises(ValueError, match="min_hits"):
        IouTrackerConfig(min_hits=0)
