import numpy as np
import pytest
from scripted_world import (
    ScriptedPerson,
    ScriptedWorld,
    identity_of,
    linear_path,
    run,
)

from ram_core.detect.boxes import box_area, xyxy_to_xyah
from ram_core.track import kalman
from ram_core.track.segfollow import SegFollow, SegFollowConfig, Track, edge_completed_box
from ram_core.types import Detection, Frame, Observation, PoseLandmarks

RED, BLUE, GREEN = (1.0, 0.1, 0.1), (0.1, 0.1, 1.0), (0.1, 0.9, 0.1)


def confirmed_ids(followed) -> set[int]:
    return {t for frame in followed.values() for t in frame}


def assert_one_person_per_track(followed, expected_people: int):
    ids = confirmed_ids(followed)
    assert len(ids) == expected_people, f"tracks {ids}"
    people = [identity_of(followed, t) for t in ids]
    assert all(len(p) == 1 for p in people), f"a track followed several people: {people}"
    assert len(set().union(*people)) == expected_people


def test_two_people_crossing_keep_their_ids():
    world = ScriptedWorld(
        [
            ScriptedPerson(1, RED, depth=5, path=linear_path((100, 200), (2, 0))),
            ScriptedPerson(2, BLUE, depth=8, path=linear_path((540, 200), (-2, 0)), size=(40, 110)),
        ]
    )
    tracker = SegFollow(world)
    followed = run(world, tracker, range(200))
    assert_one_person_per_track(followed, 2)
    # The farther person was hidden for a while and was reported occluded then.
    hidden = [f for f, tracks in followed.items() if None in tracks.values()]
    assert len(hidden) >= 5


def test_person_hidden_for_twenty_frames_keeps_the_id():
    pillar = ScriptedPerson(
        1, GREEN, depth=4, path=linear_path((320, 200), (0, 0)), size=(120, 170)
    )
    walker = ScriptedPerson(2, RED, depth=9, path=linear_path((80, 195), (3, 0)))
    world = ScriptedWorld([pillar, walker])
    followed = run(world, SegFollow(world), range(150))
    assert_one_person_per_track(followed, 2)
    walker_track = next(t for t in confirmed_ids(followed) if identity_of(followed, t) == {2})
    coasting = [f for f, tr in followed.items() if walker_track in tr and tr[walker_track] is None]
    assert len(coasting) >= 18  # fully hidden ~20 frames, kept alive, then found again
    assert followed[149][walker_track] == 2


def _look_alikes_crossing():
    return ScriptedWorld(
        [
            ScriptedPerson(1, RED, depth=5, path=linear_path((80, 200), (3, 0))),
            # Farther, so higher in the image: feet on a ground plane seen from above.
            ScriptedPerson(2, RED, depth=7, path=linear_path((560, 195), (-3, 0))),
        ]
    )


def test_look_alike_distractor_does_not_steal_the_id():
    world = _look_alikes_crossing()
    followed = run(world, SegFollow(world), range(150))
    assert_one_person_per_track(followed, 2)

    # Appearance alone (no Kalman term, no motion gate) cannot tell them apart.
    world = _look_alikes_crossing()
    blind = SegFollow(world, SegFollowConfig(alpha=1.0, gate_chi2=float("inf")))
    followed = run(world, blind, range(150))
    assert any(len(identity_of(followed, t)) > 1 for t in confirmed_ids(followed))


@pytest.mark.parametrize("near_speed", [2, 3, 4])
@pytest.mark.parametrize("far_speed", [-2, -3, -5])
@pytest.mark.parametrize("far_higher_px", [0, 5, 10, 20])
def test_look_alikes_crossing_keep_their_ids(near_speed, far_speed, far_higher_px):
    # The farther one walks behind the nearer one: what shows of them slides along the near
    # one's side and drags their box onto the near one, who must still keep their own mask.
    # Before the person in front chose first, 7 of these 36 crossings swapped.
    world = ScriptedWorld(
        [
            ScriptedPerson(1, RED, depth=5, path=linear_path((80, 200), (near_speed, 0))),
            ScriptedPerson(
                2, RED, depth=7, path=linear_path((560, 200 - far_higher_px), (far_speed, 0))
            ),
        ]
    )
    followed = run(world, SegFollow(world), range(150))
    assert_one_person_per_track(followed, 2)


def test_late_entry_gets_a_new_track_and_exit_ends_one():
    world = ScriptedWorld(
        [
            ScriptedPerson(1, RED, depth=5, path=linear_path((150, 200), (0, 0))),
            ScriptedPerson(2, BLUE, depth=6, path=linear_path((420, 200), (0, 0), first=30)),
            ScriptedPerson(3, GREEN, depth=7, path=linear_path((500, 190), (6, 0), last=60)),
        ]
    )
    config = SegFollowConfig(max_hidden_s=2.0)
    tracker = SegFollow(world, config, fps=10.0)  # 20 frames
    followed = run(world, tracker, range(120))
    assert_one_person_per_track(followed, 3)
    late = next(t for t in confirmed_ids(followed) if identity_of(followed, t) == {2})
    first_seen = min(f for f, tr in followed.items() if late in tr)
    assert 30 <= first_seen <= 30 + 5 + config.n_init
    leaver = next(t for t in confirmed_ids(followed) if identity_of(followed, t) == {3})
    assert tracker.max_age == 20
    assert leaver not in tracker.tracks  # ended after 20 frames without the person
    assert leaver not in followed[119]


def test_a_person_leaving_at_the_side_ends_their_track_and_leaves_the_next_one_theirs():
    # The frame's side cuts the leaver's mask; that must not read as walking back in. Their
    # track coasts out and ends there, and a look-alike who then walks in from the same side
    # gets a track of their own.
    world = ScriptedWorld(
        [
            ScriptedPerson(1, GREEN, depth=7, path=linear_path((500, 190), (6, 0))),
            ScriptedPerson(2, GREEN, depth=7, path=linear_path((650, 195), (-4, 0), first=36)),
        ]
    )
    tracker = SegFollow(world, fps=24.0)
    followed = run(world, tracker, range(80))
    assert_one_person_per_track(followed, 2)
    leaver = next(t for t in confirmed_ids(followed) if identity_of(followed, t) == {1})
    last_row = max(f for f, tr in followed.items() if leaver in tr)
    assert last_row <= 33  # the box is wholly past the side at frame 29, not 3 s later


def test_a_box_cut_by_the_frames_side_is_completed_past_it():
    # 20 px of a 40 x 100 person at each side; a box touching neither side, or both, stays.
    assert edge_completed_box(np.array([0.0, 50, 20, 150]), 0.4, 640) == pytest.approx(
        [-20.0, 50, 20, 150]
    )
    assert edge_completed_box(np.array([620.0, 50, 640, 150]), 0.4, 640) == pytest.approx(
        [620.0, 50, 660, 150]
    )
    for box in ([300.0, 50, 340, 150], [0.0, 0, 640, 360], [0.0, 50, 60, 150]):
        assert edge_completed_box(np.array(box), 0.4, 640) == pytest.approx(box)


class _OnePersonSegmenter:
    """A single person whose observations the test chooses frame by frame."""

    def __init__(self):
        self.next_obs: Observation | None = None

    def segment(self, frame, prompts):
        return [[self.next_obs] if self.next_obs is not None else [] for _ in prompts]

    def appearance_similarity(self, memory, appearance):
        return float(1.0 / (1.0 + np.abs(memory - appearance).sum()))


def _obs(x: float, quality=0.9, object_score=2.0, appearance=(1.0, 0.0)):
    box = np.array([x, 100.0, x + 50, 250.0])
    mask = np.zeros((360, 640), bool)
    mask[100:250, int(x) : int(x) + 50] = True
    return Observation(mask, box, quality, object_score, np.asarray(appearance, np.float32))


def _born(tracker, seg, x=100.0):
    from ram_core.types import Detection

    seg.next_obs = _obs(x)
    out = tracker.step(
        Frame(0, np.zeros((360, 640, 3), np.uint8)), [Detection(_obs(x).box_xyxy, 0.9)]
    )
    assert len(out) == 1
    return tracker.tracks[out[0].track_id]


def _seen_for(frames: int) -> tuple[_OnePersonSegmenter, SegFollow, object]:
    """A tracker at 24 frames/s that has seen one still person in frames 0 to ``frames``."""
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(min_match_score=0.0), fps=24)
    track = _born(tracker, seg)
    for i in range(1, frames + 1):
        seg.next_obs = _obs(100.0)
        tracker.step(Frame(i, np.zeros((360, 640, 3), np.uint8)))
    return seg, tracker, track


def test_confidence_gate_opens_after_tau_kf_reliable_frames():
    seg = _OnePersonSegmenter()
    cfg = SegFollowConfig(tau_kf=4, alpha=0.6)
    tracker = SegFollow(seg, cfg)
    _born(tracker, seg)
    for i in range(1, 8):
        seg.next_obs = _obs(100.0 + 2 * i)
        (tf,) = tracker.step(Frame(i, np.zeros((1, 1, 3), np.uint8)))
        if i + 1 <= cfg.tau_kf:  # streak before this frame < tau_kf: motion not trusted
            assert tf.s_fused == pytest.approx(tf.s_mask)
        else:
            assert tf.s_fused == pytest.approx(0.6 * tf.s_mask + 0.4 * tf.s_kf)
        assert not tf.occluded and 0 < tf.reliability <= 1
    # An unreliable frame (low mask quality) resets the streak: the gate closes again.
    seg.next_obs = _obs(116.0, quality=0.1)
    (tf,) = tracker.step(Frame(8, np.zeros((1, 1, 3), np.uint8)))
    assert tf.occluded
    assert tracker.tracks[tf.track_id].reliable_streak == 0


def test_hiding_keeps_the_confidence_gate_open():
    seg = _OnePersonSegmenter()
    cfg = SegFollowConfig(tau_kf=4, alpha=0.6, min_match_score=0.0)
    tracker = SegFollow(seg, cfg)
    track = _born(tracker, seg)
    frame = np.zeros((360, 640, 3), np.uint8)  # wide enough that the coasting box stays in
    for i in range(1, 6):
        seg.next_obs = _obs(100.0 + 2 * i)
        tracker.step(Frame(i, frame))
    streak = track.reliable_streak
    assert streak >= cfg.tau_kf
    seg.next_obs = None  # hidden for three frames: coasted, not taught by a bad view
    for i in range(6, 9):
        (tf,) = tracker.step(Frame(i, frame))
        assert tf.occluded and tf.observation is None
    assert track.reliable_streak == streak
    # Found again: the motion term still counts, as it does for anyone seen all along, so a
    # look-alike in front of them is not outscored on appearance alone.
    seg.next_obs = _obs(118.0)
    (tf,) = tracker.step(Frame(9, frame))
    assert 0 < tf.s_kf < 1
    assert tf.s_fused == pytest.approx(0.6 * tf.s_mask + 0.4 * tf.s_kf)
    assert track.reliable_streak == streak + 1


def test_unreliable_frames_do_not_move_the_kalman_state():
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(min_match_score=0.0))
    track = _born(tracker, seg)
    seg.next_obs = _obs(160.0, quality=0.2)  # a bad mask far off
    tracker.step(Frame(1, np.zeros((1, 1, 3), np.uint8)))
    # Predicted only (velocity was zero): the centre stays where it was.
    assert track.mean[0] == pytest.approx(125.0)


def test_ema_memory_follows_kalman_consistency_and_freezes_when_nobody_is_there():
    seg = _OnePersonSegmenter()
    cfg = SegFollowConfig(ema_lambda_min=0.5, ema_lambda_max=0.9, min_match_score=0.0)
    tracker = SegFollow(seg, cfg)
    track = _born(tracker, seg)
    frame = Frame(1, np.zeros((1, 1, 3), np.uint8))

    # Perfect consistency (the box is where the Kalman filter predicts): lam = 0.5.
    seg.next_obs = _obs(100.0, appearance=(0.8, 0.2))
    (tf,) = tracker.step(frame)
    lam = 0.9 - 0.4 * tf.s_kf
    np.testing.assert_allclose(
        track.memory, lam * np.array([1.0, 0.0]) + (1 - lam) * np.array([0.8, 0.2]), atol=1e-6
    )
    assert tf.s_kf > 0.95

    # Object score <= 0: nobody there, the memory is frozen.
    before = track.memory.copy()
    seg.next_obs = _obs(100.0, object_score=-1.0, appearance=(0.0, 1.0))
    tracker.step(frame)
    np.testing.assert_array_equal(track.memory, before)

    # s_mask below the admission threshold: not written either.
    seg.next_obs = _obs(100.0, quality=0.4, appearance=(0.7, 0.3))
    tracker.step(frame)
    np.testing.assert_array_equal(track.memory, before)


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        SegFollowConfig(alpha=1.5)
    with pytest.raises(ValueError):
        SegFollowConfig(ema_lambda_min=0.9, ema_lambda_max=0.5)
    with pytest.raises(ValueError):
        SegFollowConfig(n_init=0)
    with pytest.raises(ValueError, match="tentative_behind_max_misses"):
        SegFollowConfig(tentative_behind_max_misses=-1)
    with pytest.raises(ValueError, match="birth_partial_height"):
        SegFollowConfig(birth_partial_height=1.5)
    with pytest.raises(ValueError, match="partial_keeps_height_px"):
        SegFollowConfig(partial_keeps_height_px=-1.0)


@pytest.mark.parametrize(("x", "found"), [(600.0, False), (300.0, True)])
def test_a_much_shorter_mask_at_the_frames_side_is_not_the_tracks_person(x, found):
    # A person (150 px) leaving the 640 px frame on the right keeps their height while the
    # edge cuts their width; the crop then shows someone farther away, half as tall. Away
    # from the side, a short mask is the person partly hidden, and is still theirs.
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(min_match_score=0.0))
    track = _born(tracker, seg, x=x)
    farther = np.array([x, 175.0, x + 40.0, 250.0])
    mask = np.zeros((360, 640), bool)
    mask[175:250, int(x) : int(x) + 40] = True
    seg.next_obs = Observation(mask, farther, 0.9, 2.0, np.asarray((1.0, 0.0), np.float32))
    (tf,) = tracker.step(Frame(1, np.zeros((360, 640, 3), np.uint8)))
    assert (tf.observation is not None) is found
    assert track.frames_since_seen == (0 if found else 1)


class _TracksFirstSegmenter(_OnePersonSegmenter):
    """Once ``tracks_first``, paints out whom a track's crop finds: a detection's crop over
    them finds nobody."""

    tracks_first = False

    def segment(self, frame, prompts):
        found = super().segment(frame, prompts)
        if not self.tracks_first:
            return found
        return [f if p.track_id is not None else [] for p, f in zip(prompts, found, strict=True)]


@pytest.mark.parametrize("adopt_iou", [0.5, 1.1])
def test_a_newcomer_a_leavers_crop_found_and_turned_down_gets_a_track(adopt_iou):
    # A person (150 px) leaves on the right while a farther one (75 px) walks in where the
    # leaver is predicted: the leaver's crop finds the newcomer first, so the newcomer's
    # own detection comes back empty, and the leaver turns the mask down as too short. The
    # detection takes that mask, and the leaver, hidden now, does not block the birth.
    seg = _TracksFirstSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(adopt_detection_iou=adopt_iou))
    leaver = _born(tracker, seg, x=600.0)
    seg.tracks_first = True
    farther = np.array([600.0, 175.0, 640.0, 250.0])
    seg.next_obs = _rect_obs(farther)
    rows = tracker.step(
        Frame(1, np.zeros((360, 640, 3), np.uint8)), [Detection(farther.copy(), 0.9)]
    )
    assert leaver.frames_since_seen == 1
    born = [r for r in rows if r.track_id != leaver.track_id]
    if adopt_iou > 1.0:  # adoption off: nobody starts a track on the newcomer
        assert born == []
        return
    (newcomer,) = born
    assert newcomer.observation is seg.next_obs
    assert newcomer.box_xyxy == pytest.approx(farther)
    with pytest.raises(ValueError, match="adopt_detection_iou"):
        SegFollowConfig(adopt_detection_iou=0.0)


class _WhereAskedSegmenter(_OnePersonSegmenter):
    """Finds a person filling every prompt's box, each in their own colour."""

    def segment(self, frame, prompts):
        found = []
        for prompt in prompts:
            box = np.asarray(prompt.box_xyxy, dtype=np.float64)
            mask = np.zeros(frame.rgb.shape[:2], bool)
            mask[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = True
            colour = np.asarray((box[0] / 640.0, 1.0), np.float32)
            found.append([Observation(mask, box, 0.9, 2.0, colour)])
        return found


@pytest.mark.parametrize(
    ("x", "score", "born"),
    [(400.0, 0.4, True), (400.0, 0.2, False), (130.0, 0.4, False), (130.0, 0.6, True)],
)
def test_a_less_sure_detection_starts_a_track_only_where_nobody_is_tracked(x, score, born):
    # Someone is tracked at x 100-150. A detection scoring under birth_min_score may start
    # a track away from them (x 400), not where it touches their predicted box (x 130:
    # a crossing pair's loose box), and never under birth_min_score_untracked.
    tracker = SegFollow(_WhereAskedSegmenter(), SegFollowConfig(duplicate_overlap=1.1))
    first = Detection(np.array([100.0, 100.0, 150.0, 250.0]), 0.9)
    (tracked,) = tracker.step(Frame(0, np.zeros((360, 640, 3), np.uint8)), [first])
    other = Detection(np.array([x, 100.0, x + 50.0, 250.0]), score)
    rows = tracker.step(Frame(1, np.zeros((360, 640, 3), np.uint8)), [other])
    assert len([r for r in rows if r.track_id != tracked.track_id]) == int(born)
    with pytest.raises(ValueError, match="birth_min_score_untracked"):
        SegFollowConfig(birth_min_score_untracked=1.5)
    # Under a lower birth_min_score, that one holds everywhere.
    SegFollowConfig(birth_min_score=0.0)


@pytest.mark.parametrize(
    ("height", "x0", "occluded", "offset"),
    [
        (60.0, 113.0, False, 0.15),  # small, narrow, centred: legs passing each other
        (60.0, 100.0, True, 0.15),  # small, narrow, at one side: partly behind something
        (60.0, 113.0, True, None),  # the rule off
        (150.0, 113.0, False, 0.15),  # tall, with nobody in front: legs together
        (150.0, 100.0, True, 0.15),  # tall, narrow, at one side
    ],
)
def test_a_small_persons_narrow_centred_view_is_not_counted_as_hidden(height, x0, occluded, offset):
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(narrow_view_max_offset=offset))
    seg.next_obs = _rect_obs([100.0, 100.0, 140.0, 100.0 + height])
    tracker.step(
        Frame(0, np.zeros((360, 640, 3), np.uint8)), [Detection(seg.next_obs.box_xyxy, 0.9)]
    )
    seg.next_obs = _rect_obs([x0, 100.0, x0 + 14.0, 100.0 + height])
    (row,) = tracker.step(Frame(1, np.zeros((360, 640, 3), np.uint8)))
    assert row.observation is seg.next_obs
    assert row.occluded is occluded
    with pytest.raises(ValueError, match="narrow_view_max_offset"):
        SegFollowConfig(narrow_view_max_offset=0.6)


@pytest.mark.parametrize("weight", [0.5, 0.0])
def test_rows_report_the_mask_box_widened_as_the_detector_boxes_the_person(weight):
    # A small person's mask misses their thin limbs: the detector's box is 5 px wider on
    # each side. Rows report the mask's box so widened, also between detections; the
    # observation (and the motion model) keep the mask's box.
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(detector_box_weight=weight))
    seg.next_obs = _obs(100.0)
    wide = Detection(np.array([95.0, 100.0, 155.0, 250.0]), 0.9)
    (born,) = tracker.step(Frame(0, np.zeros((360, 640, 3), np.uint8)), [wide])
    seg.next_obs = _obs(103.0)
    (later,) = tracker.step(Frame(1, np.zeros((360, 640, 3), np.uint8)))
    widen = 5.0 if weight else 0.0
    assert born.box_xyxy == pytest.approx([100.0 - widen, 100.0, 150.0 + widen, 250.0])
    assert later.box_xyxy == pytest.approx([103.0 - widen, 100.0, 153.0 + widen, 250.0])
    assert later.observation.box_xyxy == pytest.approx([103.0, 100.0, 153.0, 250.0])
    with pytest.raises(ValueError, match="detector_box_weight"):
        SegFollowConfig(detector_box_weight=1.5)


def test_rows_reach_out_to_the_persons_visible_landmarks_sideways_only():
    # The mask (x 100-150, y 100-250) misses an arm swung out to x 170 that the pose model
    # sees (visibility 0.9); a foot it guesses at x 60 (visibility 0.2) and a point below
    # the mask (y 300) widen nothing up or down, nor left.
    image_px = np.full((33, 2), [125.0, 175.0])
    visibility = np.full(33, 0.9)
    image_px[16] = [170.0, 180.0]  # right wrist
    image_px[27] = [60.0, 240.0]  # left ankle
    visibility[27] = 0.2
    image_px[28] = [130.0, 300.0]  # right ankle
    landmarks = PoseLandmarks(image_px, visibility, np.zeros((33, 3)))

    def seen_with(config):
        seg = _OnePersonSegmenter()
        tracker = SegFollow(seg, config)
        obs = _obs(100.0)
        seg.next_obs = Observation(
            obs.mask, obs.box_xyxy, obs.quality, obs.object_score, obs.appearance,
            landmarks=landmarks,
        )  # fmt: skip
        (row,) = tracker.step(
            Frame(0, np.zeros((360, 640, 3), np.uint8)), [Detection(obs.box_xyxy, 0.9)]
        )
        return row

    row = seen_with(SegFollowConfig(detector_box_weight=0.0))
    assert row.box_xyxy == pytest.approx([100.0, 100.0, 170.0, 250.0])
    assert row.observation.box_xyxy == pytest.approx([100.0, 100.0, 150.0, 250.0])
    off = seen_with(SegFollowConfig(detector_box_weight=0.0, landmark_box_min_visibility=None))
    assert off.box_xyxy == pytest.approx([100.0, 100.0, 150.0, 250.0])
    with pytest.raises(ValueError, match="landmark_box_min_visibility"):
        SegFollowConfig(landmark_box_min_visibility=1.5)


def test_the_box_widens_only_from_a_detection_of_one_person_alone():
    world = ScriptedWorld(
        [
            ScriptedPerson(1, RED, depth=5, path=linear_path((200, 200), (0, 0))),
            ScriptedPerson(2, BLUE, depth=5, path=linear_path((300, 200), (0, 0))),
        ]
    )
    tracker = SegFollow(world)
    for f in range(3):
        tracker.step(world.render(f), world.detect(world.render(f)))
    left, right = sorted(tracker.tracks.values(), key=lambda t: t.mean[0])
    mask_of = {1: [170.0, 120.0, 230.0, 280.0], 2: [270.0, 120.0, 330.0, 280.0]}

    def boxes(rows):
        return {row.track_id: list(row.box_xyxy) for row in rows}

    # A box around the left person that reaches into the right one's (the detector boxing
    # two people at once) teaches nothing; a box narrower than a mask does not narrow it.
    spanning = Detection(np.array([160.0, 120.0, 280.0, 280.0]), 0.9)
    narrow = Detection(np.array([280.0, 120.0, 320.0, 280.0]), 0.9)
    rows = boxes(tracker.step(world.render(3), [spanning, narrow]))
    assert rows[left.track_id] == pytest.approx(mask_of[1])
    assert rows[right.track_id] == pytest.approx(mask_of[2])
    # The left person's own box, 10 px past the mask on each side: half of it (the EMA).
    alone = Detection(np.array([160.0, 120.0, 240.0, 280.0]), 0.9)
    rows = boxes(tracker.step(world.render(4), [alone]))
    assert rows[left.track_id] == pytest.approx([165.0, 120.0, 235.0, 280.0])
    assert rows[right.track_id] == pytest.approx(mask_of[2])


def test_a_returning_sliver_does_not_re_anchor_the_motion_model():
    # The coasted box shrank with the partial views before the person vanished; what the
    # crop finds next to the occluder is a sliver far shorter than the person (150 px).
    # Its share of the shrunken box passes the returning test's area bound, but it must not
    # pull the motion model onto it.
    seg, tracker, track = _seen_for(7)
    seg.next_obs = None
    for i in range(8, 18):
        tracker.step(Frame(i, np.zeros((360, 640, 3), np.uint8)))
    track.mean[3] *= 0.55  # the ratchet of partial views
    centre_x, centre_y = float(track.mean[0]), float(track.mean[1])
    sliver_box = np.array([centre_x + 8.0, centre_y - 35.0, centre_x + 23.0, centre_y + 35.0])
    mask = np.zeros((360, 640), bool)
    x0, y0, x1, y1 = (int(v) for v in sliver_box)
    mask[y0:y1, x0:x1] = True
    share = float(box_area(sliver_box)) / float(box_area(track.predicted_box))
    assert tracker.config.occluded_below_visible <= share < tracker.config.kalman_min_visible
    seg.next_obs = Observation(mask, sliver_box, 0.9, 2.0, np.asarray((1.0, 0.0), np.float32))
    (tf,) = tracker.step(Frame(18, np.zeros((360, 640, 3), np.uint8)))
    assert tf.observation is not None  # found, as a partial view
    assert abs(track.mean[0] - centre_x) < 3.0  # the motion model stays where it was


# ---------------------------------------------------------------- memory segmenters (SAM2)


class _CandidatesSegmenter:
    """A SAM2-like MemorySegmenter: the test sets each prompt kind's candidates; it records
    what SegFollow commits and forgets."""

    def __init__(self):
        self.tracked: list[Observation] = []  # candidates for every track's own prompt
        self.detected: list[Observation] = []  # candidates for every detection prompt
        self.prompts: list[list] = []
        self.commits: list[tuple] = []
        self.forgotten: list[int] = []

    def segment(self, frame, prompts):
        self.prompts.append(list(prompts))
        return [list(self.tracked if p.track_id is not None else self.detected) for p in prompts]

    def appearance_similarity(self, memory, appearance):
        return float(1.0 / (1.0 + np.abs(memory - appearance).sum()))

    def commit(self, frame_index, track_id, observation, lam, admitted):
        self.commits.append((frame_index, track_id, observation, lam, admitted))

    def forget(self, track_id):
        self.forgotten.append(track_id)


def _birth(tracker, seg):
    seg.detected = [_obs(100.0)]
    frame = Frame(0, np.zeros((360, 640, 3), np.uint8))
    tracker.step(frame, [Detection(_obs(100.0).box_xyxy, 0.9)])


def _walk(tracker, seg, frames, speed=4.0):
    """One person walking right at ``speed`` px/frame, one clear candidate a frame."""
    for i in frames:
        seg.tracked = [_obs(100.0 + speed * i)]
        (tf,) = tracker.step(Frame(i, np.zeros((360, 640, 3), np.uint8)))
    return tf


def _choose_under_motion_prior(alpha: float) -> tuple[Observation, Observation, list]:
    seg = _CandidatesSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(alpha=alpha, tau_kf=5))
    _birth(tracker, seg)
    _walk(tracker, seg, range(1, 12))
    (track,) = tracker.tracks.values()
    assert track.reliable_streak >= tracker.config.tau_kf  # the Kalman term is on
    predicted_x = float(track.predicted_box[0]) + 4.0  # where the walk takes it next
    # SAM2's three candidates: the best by its own confidence stopped 12 px short, a close
    # second is where the motion model expects the person, a third is a part of them. The
    # first two share 76% of their pixels: de-duplication must not merge one prompt's
    # alternatives, or the second would never reach the assignment.
    stopped = _obs(predicted_x - 12.0, quality=0.80)
    walking = _obs(predicted_x, quality=0.76)
    part = _obs(predicted_x, quality=0.40)
    seg.tracked = [stopped, walking, part]
    (tf,) = tracker.step(Frame(12, np.zeros((360, 640, 3), np.uint8)))
    return tf.observation, walking, seg.commits


def test_motion_prior_picks_among_one_persons_candidates():
    chosen, walking, commits = _choose_under_motion_prior(alpha=0.75)
    assert chosen is walking
    assert commits[-1][:3] == (12, 1, walking)  # the segmenter's memory gets that one too

    chosen, walking, _ = _choose_under_motion_prior(alpha=1.0)
    assert chosen is not walking and chosen.quality == 0.80  # SAM2's own pick


def test_memory_segmenter_hears_births_hits_and_ends():
    seg = _CandidatesSegmenter()
    cfg = SegFollowConfig(max_hidden_s=0.1, min_match_score=0.0)
    tracker = SegFollow(seg, cfg)  # 3 frames at the default 30 fps
    _birth(tracker, seg)
    frame_index, track_id, obs, lam, admitted = seg.commits[0]
    assert (frame_index, track_id, lam, admitted) == (0, 1, None, True)  # the prompt frame
    assert obs is seg.detected[0]

    # Looks unlike the memory (similarity 0.5), but it answers the track's own prompt.
    seg.tracked = [_obs(100.0, appearance=(0.5, 0.5))]
    (tf,) = tracker.step(Frame(1, np.zeros((1, 1, 3), np.uint8)))
    _, _, _, lam, admitted = seg.commits[-1]
    span = cfg.ema_lambda_max - cfg.ema_lambda_min
    assert lam == pytest.approx(cfg.ema_lambda_max - span * tf.s_kf)
    assert admitted
    # A memory segmenter's own candidate is scored by its confidence alone.
    assert tf.s_mask == pytest.approx(0.9)

    seg.tracked = [_obs(100.0, object_score=-1.0)]  # nobody there: not admitted
    tracker.step(Frame(2, np.zeros((1, 1, 3), np.uint8)))
    assert seg.commits[-1][4] is False

    seg.tracked = []  # the person is gone: the track ends after max_age and is forgotten
    assert tracker.max_age == 3
    for i in range(3, 3 + tracker.max_age + 2):
        tracker.step(Frame(i, np.zeros((1, 1, 3), np.uint8)))
    assert seg.forgotten == [1]
    assert not tracker.tracks


def test_detection_keypoints_become_point_prompts():
    seg = _CandidatesSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(prompt_keypoint_min_score=0.5))
    keypoints = np.array(
        [[110.0, 120.0, 0.9], [120.0, 200.0, 0.6], [130.0, 150.0, 0.2], [700.0, 150.0, 0.9]]
    )
    seg.detected = [_obs(100.0)]
    box = _obs(100.0).box_xyxy
    tracker.step(Frame(0, np.zeros((360, 640, 3), np.uint8)), [Detection(box, 0.9, keypoints)])
    (prompt,) = seg.prompts[-1]
    # unsure (0.2) and out-of-frame (x = 700 > 640) keypoints are left out
    np.testing.assert_array_equal(prompt.points_xy, [[110.0, 120.0], [120.0, 200.0]])
    np.testing.assert_array_equal(prompt.point_labels, [1, 1])
    assert prompt.track_id is None

    seg2 = _CandidatesSegmenter()
    SegFollow(seg2).step(Frame(0, np.zeros((360, 640, 3), np.uint8)), [Detection(box, 0.9)])
    assert seg2.prompts[-1][0].points_xy is None


def test_hidden_tracks_compete_for_a_returning_person_whatever_the_time_hidden():
    # Two people hidden behind the same screen, for 49 and 72 frames; the one who comes
    # back looks like the longer-hidden track's person (long_occlusion's ID switch).
    s_fused = np.array([[0.40], [0.87]])
    feasible = np.ones((2, 1), dtype=bool)
    assert SegFollow._assign(s_fused, feasible, [49, 72]) == {1: 0}
    # A track seen a frame ago still chooses before any hidden one.
    assert SegFollow._assign(np.array([[0.5], [0.9]]), feasible, [0, 5]) == {0: 0}


def test_the_person_in_front_chooses_before_the_one_behind():
    # Look-alikes, both seen a frame ago; the farther one's box has been dragged onto the
    # nearer one by the part of them still in view, so it overlaps the mask of the person
    # in front better (seed 409's look-alikes): the mask goes to the person in front.
    s_fused = np.array([[0.88, 0.70], [0.89, 0.30]])  # rows: in front, behind
    feasible = np.ones((2, 2), dtype=bool)
    assert SegFollow._assign(s_fused, feasible, [0, 0]) == {0: 1, 1: 0}
    assert SegFollow._assign(s_fused, feasible, [0, 0], [False, True]) == {0: 0, 1: 1}
    # Behind someone, a track seen a frame ago still chooses before a hidden one.
    only = np.array([[0.5], [0.9]])
    assert SegFollow._assign(only, feasible[:, :1], [0, 3], [True, False]) == {0: 0}


def test_a_mask_found_for_the_person_behind_waits_for_them():
    # The front track scores the behind one's mask a hair above its own (appearance noise
    # between look-alikes); choosing first it would take it. The mask came from the crop
    # of the track behind, so it waits for the second round, where that track takes it.
    s_fused = np.array([[0.75, 0.76], [0.68, 0.84]])  # rows: in front, behind
    feasible = np.ones((2, 2), dtype=bool)
    assert SegFollow._assign(s_fused, feasible, [0, 0], [False, True]) == {0: 1, 1: 0}
    assert SegFollow._assign(s_fused, feasible, [0, 0], [False, True], [False, True]) == {
        0: 0,
        1: 1,
    }
    # Nobody behind takes it: a front track left without a mask may have it after all.
    only_theirs = np.array([[False, True]])
    assert SegFollow._assign(s_fused[:1], only_theirs, [0], [False], [False, True]) == {0: 1}


def _track_at(track_id: int, box_xyxy, streak: int, since_seen: int = 0) -> Track:
    mean, cov = kalman.initiate(xyxy_to_xyah(np.array(box_xyxy, dtype=np.float64)))
    return Track(
        track_id=track_id,
        mean=mean,
        cov=cov,
        memory=np.zeros(3, np.float32),
        confirmed=True,
        reliable_streak=streak,
        frames_since_seen=since_seen,
    )


def test_behind_a_settled_person_means_half_hidden_by_someone_nearer():
    tracker = SegFollow(_CandidatesSegmenter())
    settled = tracker.config.tau_kf
    near = _track_at(1, (100, 40, 160, 200), settled)
    far = _track_at(2, (120, 30, 180, 190), settled)  # feet 10 px higher: farther
    tracker.tracks = {1: near, 2: far}
    assert tracker._behind_someone(far, settled_nearer=True)
    assert not tracker._behind_someone(near, settled_nearer=True)  # the far one is not nearer
    assert tracker._behind_someone(near)  # without the condition, any overlap by half counts
    # Nobody behind a young track: its box, from appearance alone, says too little.
    near.reliable_streak = settled - 1
    assert not tracker._behind_someone(far, settled_nearer=True)
    # Nor behind one not seen a frame ago, nor behind one covering less than half of them.
    near.reliable_streak, near.frames_since_seen = settled, 1
    assert not tracker._behind_someone(far, settled_nearer=True)
    near.frames_since_seen = 0
    far.mean, far.cov = kalman.initiate(xyxy_to_xyah(np.array([140.0, 30.0, 200.0, 190.0])))
    assert not tracker._behind_someone(far, settled_nearer=True)  # a third covered


class _SplitPersonSegmenter:
    """Two detection prompts whose disjoint masks (an exclusive segmenter's) show two
    halves of one body, each with the pose its crop found (a second pose whose ankles are
    ``second_feet_drop`` rows lower, or whose torso is ``second_torso_length`` long instead of
    60 px, is somebody else)."""

    def __init__(
        self,
        second_torso_x: float,
        second_feet_drop: float = 0.0,
        second_torso_length: float = 60.0,
    ):
        self.second_torso_x = second_torso_x
        self.second_feet_drop = second_feet_drop
        self.second_torso_length = second_torso_length

    def segment(self, frame, prompts):
        def half(rows, torso_x, feet_drop=0.0, torso_length=60.0):
            mask = np.zeros((360, 640), bool)
            mask[rows, 100:150] = True
            points = np.tile([[torso_x, 170.0]], (33, 1))
            points[[11, 12], 1] -= torso_length / 2  # shoulders
            points[[23, 24], 1] += torso_length / 2  # hips
            points[[27, 28], 1] += feet_drop
            landmarks = PoseLandmarks(points, np.ones(33), np.zeros((33, 3)))
            box = np.array([100.0, rows.start, 150.0, rows.stop])
            return Observation(mask, box, 0.9, 2.0, np.ones(2, np.float32), landmarks)

        halves = [
            half(slice(100, 175), 125.0),
            half(
                slice(175, 250),
                self.second_torso_x,
                self.second_feet_drop,
                self.second_torso_length,
            ),
        ]
        return [[h] for h in halves[: len(prompts)]]

    def appearance_similarity(self, memory, appearance):
        return 1.0


@pytest.mark.parametrize(
    ("second_torso_x", "second_feet_drop", "second_torso_length", "births"),
    [
        (128.0, 0.0, 60.0, 1),  # one body found twice
        (128.0, 0.0, 52.0, 1),  # ...its torso a little shorter in the second crop's pose
        (400.0, 0.0, 60.0, 2),  # two people side by side
        # Torsos in one place, feet 0.4 box heights apart: a person standing behind
        # another, as a far look-alike behind a walker.
        (128.0, 30.0, 60.0, 2),
        # Torsos and feet in one place (the first pose put an ankle at the knee), but a
        # torso two thirds as long: a person farther back.
        (128.0, 0.0, 40.0, 2),
    ],
)
def test_a_detection_whose_pose_is_anothers_starts_no_track(
    second_torso_x, second_feet_drop, second_torso_length, births
):
    segmenter = _SplitPersonSegmenter(second_torso_x, second_feet_drop, second_torso_length)
    tracker = SegFollow(segmenter, SegFollowConfig())
    detections = [
        Detection(np.array([100.0, 100.0, 150.0, 250.0]), 0.95),
        Detection(np.array([90.0, 120.0, 160.0, 300.0]), 0.7),  # spans this one and more
    ]
    out = tracker.step(Frame(0, np.zeros((360, 640, 3), np.uint8)), detections)
    assert len(out) == births


def test_a_much_taller_mask_is_not_the_tracks_person():
    # A far person (150 px) goes behind a near one; their crop shows the near one (250 px).
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(min_match_score=0.0))
    track = _born(tracker, seg)
    near = _obs(100.0)
    taller = np.array([100.0, 40.0, 150.0, 290.0])
    seg.next_obs = Observation(near.mask, taller, 0.9, 2.0, near.appearance)
    (tf,) = tracker.step(Frame(1, np.zeros((360, 640, 3), np.uint8)))
    assert tf.observation is None and track.frames_since_seen == 1
    # Back to the person's own height after being hidden: found again.
    seg.next_obs = _obs(100.0)
    (tf,) = tracker.step(Frame(2, np.zeros((360, 640, 3), np.uint8)))
    assert tf.observation is not None
    with pytest.raises(ValueError, match="max_height_growth"):
        SegFollowConfig(max_height_growth=0.9)


def test_the_height_gate_starts_from_the_mask_not_the_detectors_looser_box():
    # The detector boxed the person 30 px taller than their mask (150 px). Once the motion
    # model has settled on the mask's height, a mask a little over 1.35 x 150 px tall (the
    # person in front) must stay out, as it would after a tight detector box.
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(min_match_score=0.0))
    seg.next_obs = _obs(100.0)
    loose = np.array([95.0, 80.0, 155.0, 260.0])
    (born,) = tracker.step(Frame(0, np.zeros((360, 640, 3), np.uint8)), [Detection(loose, 0.9)])
    track = tracker.tracks[born.track_id]
    assert track.tallest_px == pytest.approx(150.0)
    for i in range(1, 15):
        tracker.step(Frame(i, np.zeros((360, 640, 3), np.uint8)))
    assert track.mean[3] < 155.0
    near = _obs(100.0)
    taller = np.array([100.0, 40.0, 150.0, 40.0 + 1.4 * 155.0])
    seg.next_obs = Observation(near.mask, taller, 0.9, 2.0, near.appearance)
    (tf,) = tracker.step(Frame(15, np.zeros((360, 640, 3), np.uint8)))
    assert tf.observation is None


def test_a_returning_person_re_anchors_the_motion_model():
    # Hidden for 30 frames the coasted box drifts on and widens; the person comes back
    # elsewhere, whole but narrower than that box (visible share 0.4-0.6 of it). That
    # view corrects the Kalman state, so the track's own prompt looks where they are.
    seg = _OnePersonSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(min_match_score=0.0, max_hidden_s=3.0), fps=24)
    track = _born(tracker, seg)
    for i in range(1, 8):  # walking right, 3 px a frame
        seg.next_obs = _obs(100.0 + 3 * i)
        tracker.step(Frame(i, np.zeros((360, 640, 3), np.uint8)))
    seg.next_obs = None
    for i in range(8, 38):
        tracker.step(Frame(i, np.zeros((360, 640, 3), np.uint8)))
    track.mean[2] *= 1.8  # the coasted box has grown wider than the person
    back = _obs(100.0 + 3 * 38 + 40.0)  # out again, further on than the walk predicts
    seg.next_obs = back
    predicted_area = float(box_area(track.predicted_box))
    share = float(box_area(back.box_xyxy)) / predicted_area
    assert tracker.config.occluded_below_visible <= share < tracker.config.kalman_min_visible
    (tf,) = tracker.step(Frame(38, np.zeros((360, 640, 3), np.uint8)))
    assert tf.observation is back and not tf.occluded
    centre = 0.5 * (back.box_xyxy[0] + back.box_xyxy[2])
    assert abs(track.mean[0] - centre) < 5.0  # anchored on the view, not left behind
    # A person merely partly hidden while tracked (seen the frame before) still does not
    # correct it with that view.
    seg.next_obs = _obs(centre - 25.0 + 3.0)
    tracker.step(Frame(39, np.zeros((360, 640, 3), np.uint8)))
    track.mean[2] *= 1.8
    before = track.mean[0]
    seg.next_obs = _obs(centre - 25.0 + 30.0)
    tracker.step(Frame(40, np.zeros((360, 640, 3), np.uint8)))
    assert abs(track.mean[0] - before) < 10.0


def _turning_back_behind_a_pillar():
    # The walker goes behind a pillar, turns there and comes out the way they went in:
    # their track's motion model looks for them on the pillar's far side.
    def walker(frame: int):
        x = 150 + 4 * frame if frame <= 40 else 310 - 4 * (frame - 40)
        return (x, 195.0)

    pillar_path = linear_path((320, 200), (0, 0))
    pillar = ScriptedPerson(1, GREEN, depth=4, path=pillar_path, size=(120, 170))
    return ScriptedWorld([pillar, ScriptedPerson(2, RED, depth=9, path=walker)])


def _inside_any(box, windows) -> bool:
    return any(np.all(box[:2] >= w[:2]) and np.all(box[2:] <= w[2:]) for w in windows)


def _searching(world, tracker):
    """The pipeline's search between detections: the detector sees only the people wholly
    inside the windows around the hidden tracks' ``search_regions``."""
    from scripted_world import HEIGHT, WIDTH

    from ram_core.detect.regions import merge_windows

    def search(frame):
        windows = merge_windows(tracker.search_regions(), WIDTH, HEIGHT, 128.0)
        return [d for d in world.detect(frame) if _inside_any(d.box_xyxy, windows)]

    return search


@pytest.mark.parametrize(("search", "found_by"), [(False, 60), (True, 55)])
def test_a_search_around_a_hidden_person_finds_them_before_the_next_detection(search, found_by):
    world = _turning_back_behind_a_pillar()
    tracker = SegFollow(world, fps=24.0)
    assert tracker.search_regions() == []
    between = _searching(world, tracker) if search else None
    followed = run(world, tracker, range(70), detect_every=10, between=between)
    (walker,) = [t for t in confirmed_ids(followed) if identity_of(followed, t) == {2}]
    hidden = [f for f, tracks in followed.items() if tracks.get(walker, 2) is None]
    back = min(f for f in range(45, 70) if followed[f].get(walker) == 2)
    assert hidden and back > max(hidden)
    assert back == found_by


class _BlindToTracksSegmenter:
    """Finds the person only under a detection's prompt: a track's own crop shows nothing,
    as when a coasted box has drifted off its person onto someone else."""

    def __init__(self) -> None:
        self.prompted: list[list[int | None]] = []

    def segment(self, frame, prompts):
        self.prompted.append([p.track_id for p in prompts])
        mask = np.zeros((360, 640), bool)
        mask[100:260, 200:260] = True
        box = np.array([200.0, 100.0, 260.0, 260.0])
        found = [Observation(mask, box, 0.95, 2.0, np.ones(2, np.float32))]
        return [[] if p.track_id is not None else found for p in prompts]

    def appearance_similarity(self, memory, appearance):
        return 1.0


def test_a_detection_at_a_hidden_persons_predicted_box_is_prompted_again():
    segmenter = _BlindToTracksSegmenter()
    tracker = SegFollow(segmenter, SegFollowConfig(n_init=1))
    frame = Frame(0, np.zeros((360, 640, 3), np.uint8))
    detection = [Detection(box_xyxy=np.array([198.0, 98.0, 262.0, 262.0]), score=0.9)]
    (born,) = tracker.step(frame, detection)
    assert not tracker.step(Frame(1, frame.rgb), None)[0].observation  # hidden
    (found,) = tracker.step(Frame(2, frame.rgb), detection)
    # The detection lies on the hidden track's predicted box and was still prompted; its
    # mask went back to that track.
    assert segmenter.prompted[-1] == [born.track_id, None]
    assert found.track_id == born.track_id and found.observation is not None
    # Near a track seen in the frame before, the track's own crop is left to find them.
    tracker.step(Frame(3, frame.rgb), detection)
    assert segmenter.prompted[-1] == [born.track_id]


@pytest.mark.parametrize("detected", [True, False])
def test_a_detection_of_a_narrow_view_shows_the_whole_person(detected):
    # A small walker's mask narrows to a third of the box the motion model learnt from a
    # wide stride: by area alone that is a person half hidden. A detection that pairs with
    # the view, as tall as it, says the narrow view is the whole person.
    # (Off the box's centre: a centred one is whole anyway while nobody is in front.)
    seg, tracker, track = _seen_for(5)
    narrow_box = np.array([102.0, 100.0, 118.0, 250.0])
    mask = np.zeros((360, 640), bool)
    mask[100:250, 102:118] = True
    seg.next_obs = Observation(mask, narrow_box, 0.9, 2.0, np.asarray((1.0, 0.0), np.float32))
    share = float(box_area(narrow_box)) / float(box_area(track.predicted_box))
    assert share < tracker.config.occluded_below_visible
    aspect_before = float(track.mean[2])
    detections = [Detection(narrow_box + np.array([-1.0, 2.0, 1.0, -2.0]), 0.9)] if detected else []
    (tf,) = tracker.step(Frame(6, np.zeros((360, 640, 3), np.uint8)), detections)
    assert tf.occluded is not detected
    narrowed = float(track.mean[2]) < aspect_before - 0.01
    assert narrowed == detected  # only a whole view corrects the motion model


class _ByTrackSegmenter:
    """Answers a track's prompt with what the test set for that track (nothing if unset),
    a detection's prompt with a mask filling its box."""

    def __init__(self):
        self.answers: dict[int, Observation] = {}

    def segment(self, frame, prompts):
        return [
            [_rect_obs(p.box_xyxy)] if p.track_id is None
            else [self.answers[p.track_id]] if p.track_id in self.answers
            else []
            for p in prompts
        ]  # fmt: skip

    def appearance_similarity(self, memory, appearance):
        return 1.0


@pytest.mark.parametrize(
    ("other_box", "occluded"),
    [
        ((120.0, 110.0, 200.0, 280.0), True),  # nearer (lower feet) and reaching in: hidden
        ((120.0, 90.0, 170.0, 200.0), False),  # farther back: nobody hides them
        ((400.0, 100.0, 450.0, 290.0), False),  # nearer, but elsewhere in the frame
    ],
)
def test_a_tall_persons_narrow_centred_view_is_whole_unless_someone_is_in_front(
    other_box, occluded
):
    seg = _ByTrackSegmenter()
    tracker = SegFollow(seg, SegFollowConfig(n_init=1))
    frame = np.zeros((360, 640, 3), np.uint8)
    person = np.array([100.0, 100.0, 140.0, 250.0])
    rows = tracker.step(
        Frame(0, frame), [Detection(person, 0.9), Detection(np.array(other_box), 0.9)]
    )
    walker, other = (r.track_id for r in rows)
    assert all(tracker.is_confirmed(t) for t in (walker, other))
    # Legs together: a third as wide as the box learnt from a stride, as tall, centred.
    seg.answers = {walker: _rect_obs([113.0, 100.0, 127.0, 250.0]), other: _rect_obs(other_box)}
    by_track = {r.track_id: r for r in tracker.step(Frame(1, frame))}
    assert by_track[walker].observation is seg.answers[walker]
    assert by_track[walker].occluded is occluded


def _rect_obs(box) -> Observation:
    box = np.asarray(box, dtype=np.float64)
    mask = np.zeros((360, 640), bool)
    mask[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])] = True
    return Observation(mask, box, 0.9, 2.0, np.asarray((1.0, 0.0), np.float32))


@pytest.mark.parametrize(
    ("newcomer_box", "misses_survived"), [((230, 120, 280, 300), 6), ((500, 120, 550, 300), 2)]
)
def test_a_newcomer_behind_someone_may_miss_longer_before_being_dropped(
    newcomer_box, misses_survived
):
    # A person born beside or behind someone already followed, whose crop then finds
    # nobody: behind the person in front they are hidden, and their track waits longer.
    front_box = np.array([200.0, 100.0, 310.0, 350.0])
    newcomer_box = np.asarray(newcomer_box, dtype=np.float64)
    front = _rect_obs(front_box)
    front.mask[
        int(newcomer_box[1]) : int(newcomer_box[3]), int(newcomer_box[0]) : int(newcomer_box[2])
    ] = False

    class Segmenter:
        def segment(self, frame, prompts):
            # The front person's crop and detection find them; the newcomer's detection
            # finds the newcomer, whose own crop then finds nobody.
            def found(prompt):
                if prompt.track_id == 1 or np.allclose(prompt.box_xyxy, front_box):
                    return [front]
                return [_rect_obs(newcomer_box)] if prompt.track_id is None else []

            return [found(p) for p in prompts]

        def appearance_similarity(self, memory, appearance):
            return 1.0

    config = SegFollowConfig(n_init=2, tentative_max_misses=2, tentative_behind_max_misses=6)
    tracker = SegFollow(Segmenter(), config)
    frame = np.zeros((360, 640, 3), np.uint8)
    tracker.step(Frame(0, frame), [Detection(front_box, 0.9)])
    tracker.step(Frame(1, frame))
    assert tracker.is_confirmed(1)
    rows = tracker.step(Frame(2, frame), [Detection(newcomer_box, 0.9)])
    (newcomer,) = [r.track_id for r in rows if r.track_id != 1]
    misses = 0
    while newcomer in tracker.tracks:
        tracker.step(Frame(3 + misses, frame))
        misses += 1
    assert misses - 1 == misses_survived
    assert newcomer in tracker.dropped_tentative
    assert config.confirmation_delay == config.n_init - 1 + 6


@pytest.mark.parametrize(("partial_height", "keeps_whole_view"), [(0.75, True), (0.0, False)])
def test_a_person_born_partly_hidden_is_as_tall_as_their_detection(
    partial_height, keeps_whole_view
):
    # Born from the lower 100 px of a 150 px person (the rest behind someone) and seen so for
    # a while, the motion model's box shrinks toward 100 px: their whole view later is theirs.
    # (Short views keep a tall person's box at their height, ``partial_keeps_height_px``:
    # off here, so the birth rule alone is tested.)
    seg = _OnePersonSegmenter()
    config = SegFollowConfig(
        min_match_score=0.0, birth_partial_height=partial_height, partial_keeps_height_px=None
    )
    tracker = SegFollow(seg, config)
    frame = np.zeros((360, 640, 3), np.uint8)
    seg.next_obs = _rect_obs([100.0, 150.0, 150.0, 250.0])
    (born,) = tracker.step(
        Frame(0, frame), [Detection(np.array([100.0, 100.0, 150.0, 250.0]), 0.9)]
    )
    for i in range(1, 8):
        tracker.step(Frame(i, frame))
    assert tracker.tracks[born.track_id].mean[3] < 110.0
    seg.next_obs = _rect_obs([100.0, 100.0, 150.0, 250.0])
    (row,) = tracker.step(Frame(8, frame))
    assert (row.observation is not None) == keeps_whole_view


def test_a_detection_of_a_persons_upper_half_does_not_make_it_whole():
    # Behind a sign the detector boxes what it sees, the upper third, as the mask does: the
    # two agree, but a view a third as tall as the person has been is a part of them.
    seg, tracker, track = _seen_for(5)
    upper_box = np.array([100.0, 100.0, 150.0, 150.0])
    seg.next_obs = _rect_obs(upper_box)
    height_before = float(track.mean[3])
    (tf,) = tracker.step(Frame(6, np.zeros((360, 640, 3), np.uint8)), [Detection(upper_box, 0.9)])
    assert tf.occluded
    assert float(track.mean[3]) == pytest.approx(height_before, abs=1.0)


@pytest.mark.parametrize(
    ("person_box", "short_box", "keeps_height_px", "height_kept"),
    [
        ((100, 100, 150, 250), (104, 100, 154, 200), 80.0, True),
        ((100, 100, 150, 250), (104, 100, 154, 200), None, False),
        # Under 80 px the pose model's mask loses the legs in plain view: the box follows it.
        ((100, 100, 120, 160), (104, 100, 124, 140), 80.0, False),
    ],
)
def test_a_view_too_short_to_be_whole_moves_the_box_sideways_only(
    person_box, short_box, keeps_height_px, height_kept
):
    seg = _OnePersonSegmenter()
    config = SegFollowConfig(min_match_score=0.0, partial_keeps_height_px=keeps_height_px)
    tracker = SegFollow(seg, config, fps=24)
    frame = np.zeros((360, 640, 3), np.uint8)
    seg.next_obs = _rect_obs(person_box)
    tracker.step(Frame(0, frame), [Detection(np.array(person_box, dtype=np.float64), 0.9)])
    for i in range(1, 6):
        tracker.step(Frame(i, frame))
    (track,) = tracker.tracks.values()
    height, centre_x = float(track.mean[3]), float(track.mean[0])
    short_height = short_box[3] - short_box[1]
    # Short enough to be a part of the person, big enough to correct the motion model.
    assert short_height < height / config.max_height_growth
    assert short_height / height >= config.kalman_min_visible
    seg.next_obs = _rect_obs(short_box)
    tracker.step(Frame(6, frame))
    assert float(track.mean[0]) > centre_x + 1.0  # moved sideways either way
    assert (float(track.mean[3]) > height - 1.0) == height_kept


def _posed_obs(box, ankle_row: float, ankle_visibility: float = 1.0) -> Observation:
    """A mask filling ``box`` with a pose whose ankles are at ``ankle_row``."""
    rect = _rect_obs(box)
    points = np.tile([[(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]], (33, 1))
    points[[27, 28], 1] = ankle_row
    visibility = np.ones(33)
    visibility[[27, 28]] = ankle_visibility
    landmarks = PoseLandmarks(points, visibility, np.zeros((33, 3)))
    return Observation(rect.mask, rect.box_xyxy, 0.9, 2.0, rect.appearance, landmarks)


@pytest.mark.parametrize(
    ("ankle_visibility", "frames_hidden", "near_ankle_row", "max_feet_drop", "taken"),
    [
        (1.0, 0, 300.0, 0.15, False),  # the near person, feet 0.37 heights lower: turned down
        (1.0, 0, 300.0, None, True),  # ...unless the gate is off
        (1.0, 0, 255.0, 0.15, True),  # feet 0.07 heights lower: a step of the same person
        (0.2, 0, 300.0, 0.15, True),  # feet only guessed before: nothing to judge by
        (1.0, 30, 300.0, 0.15, True),  # a second hidden: they may have walked that far
    ],
)
def test_a_pose_with_the_feet_much_lower_than_the_person_stood_is_someone_nearer(
    ankle_visibility, frames_hidden, near_ankle_row, max_feet_drop, taken
):
    # A far person stands still (150 px, ankles at row 245); their crop then shows the
    # body of someone nearer the camera, tall enough to pass the height gate.
    seg = _ByTrackSegmenter()
    config = SegFollowConfig(n_init=1, min_match_score=0.0, max_feet_drop=max_feet_drop)
    tracker = SegFollow(seg, config, fps=30.0)
    frame = np.zeros((360, 640, 3), np.uint8)
    person = [100.0, 100.0, 150.0, 250.0]
    (row,) = tracker.step(Frame(0, frame), [Detection(np.array(person), 0.9)])
    track = tracker.tracks[row.track_id]
    seg.answers = {row.track_id: _posed_obs(person, 245.0, ankle_visibility)}
    for i in range(1, 6):
        tracker.step(Frame(i, frame))
    assert track.feet_row == (245.0 if ankle_visibility == 1.0 else None)
    seg.answers = {}
    for i in range(6, 6 + frames_hidden):
        tracker.step(Frame(i, frame))
    nearer = _posed_obs([95.0, 60.0, 160.0, 262.0], near_ankle_row)  # 202 px < 1.35 x 150
    seg.answers = {row.track_id: nearer}
    (row,) = tracker.step(Frame(6 + frames_hidden, frame))
    assert (row.observation is nearer) is taken
    with pytest.raises(ValueError, match="max_feet_drop"):
        SegFollowConfig(max_feet_drop=-0.1)
