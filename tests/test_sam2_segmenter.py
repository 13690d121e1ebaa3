"""The streamed SAM2 segmenter against the real sam2 library (random hiera-t weights).

Random weights cannot find people: every prompt gets a mask over most of the frame. What
these tests check is therefore the machinery, exactly: the same masks, object pointers and
object scores as SAM2's own video predictor, bounded memory, late people, the hooks,
checkpoint loading. Where SegFollow tells people apart by mask overlap (de-duplication,
births over someone's mask), that overlap is switched off, since here every mask overlaps.
"""

import os
import warnings
import weakref

import numpy as np
import pytest


def _require_full_backend() -> None:
    """Skip without sam2, unless RAM_REQUIRE_FULL=1 (CI): then a missing sam2 fails."""
    try:
        import sam2  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        if os.environ.get("RAM_REQUIRE_FULL") == "1":
            raise
        pytest.skip("sam2 is not installed (tools/setup.sh --full)", allow_module_level=True)


_require_full_backend()

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ram_core.detect.keypoint_rcnn import COCO_KEYPOINTS, PROMPT_KEYPOINTS  # noqa: E402
from ram_core.errors import MissingModelError  # noqa: E402
from ram_core.segment.sam2_video import (  # noqa: E402
    SAM2_CONFIGS,
    SAM2_MODELS,
    PersonMemory,
    Sam2Segmenter,
    Sam2SegmenterConfig,
    build_sam2_model,
    ema_blend,
    pointer_similarity,
    remember_tracked_frame,
)
from ram_core.track.segfollow import SegFollow, SegFollowConfig  # noqa: E402
from ram_core.types import Detection, Frame, MemorySegmenter, Prompt  # noqa: E402

IMAGE_SIZE = 128
HEIGHT, WIDTH = 120, 200
CLIP_FRAMES = 8
# Overlap shares are at most 1: these values switch SegFollow's overlap rules off.
OVERLAP_RULES_OFF = {"duplicate_overlap": 2.0, "birth_max_covered": 2.0}


def _config(**overrides) -> Sam2SegmenterConfig:
    return Sam2SegmenterConfig(model="tiny", image_size=IMAGE_SIZE, **overrides)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The test model is tiny: one thread is as fast, and spin-waiting threads on a busy
    machine made these tests five times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_sam2_model(_config(), "cpu", None)


def _render(t: int) -> np.ndarray:
    """Two people (head and body) walking towards each other on a textured floor."""
    import cv2

    rng = np.random.default_rng(7)
    tiles = rng.integers(50, 130, (HEIGHT // 6, WIDTH // 6, 3)).astype(np.uint8)
    rgb = cv2.resize(tiles, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST)
    for x0, vx, colour in ((45, 4, (220, 50, 40)), (150, -3, (40, 70, 220))):
        x = x0 + vx * t
        cv2.rectangle(rgb, (x - 12, 35), (x + 12, 105), colour, -1)
        cv2.circle(rgb, (x, 25), 10, (230, 190, 160), -1)
    return rgb


# Frame-0 boxes of the two people, and a click on each one's head.
BOXES = {1: np.array([31.0, 13.0, 59.0, 107.0]), 2: np.array([136.0, 13.0, 164.0, 107.0])}
CLICKS = {1: None, 2: np.array([[150.0, 25.0], [150.0, 70.0]])}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The clip as the JPEG folder SAM2's loader wants, and the same decoded frames."""
    folder = tmp_path_factory.mktemp("clip")
    frames = []
    for t in range(CLIP_FRAMES):
        Image.fromarray(_render(t)).save(folder / f"{t:05d}.jpg", quality=95)
        frames.append(Frame(t, np.array(Image.open(folder / f"{t:05d}.jpg").convert("RGB"))))
    return folder, frames


@pytest.fixture(scope="module")
def stock(model, clip):
    """SAM2's own video predictor on the clip: per frame, per person (mask, pointer, score)."""
    folder, _ = clip
    with warnings.catch_warnings():
        # Without sam2's optional _C extension SAM2 warns once a frame and skips hole filling.
        warnings.filterwarnings("ignore", message="(?s).*Skipping the post-processing")
        state = model.init_state(str(folder))
        for person, box in BOXES.items():
            clicks = CLICKS[person]
            model.add_new_points_or_box(
                state,
                frame_idx=0,
                obj_id=person,
                box=box,
                points=clicks,
                labels=None if clicks is None else np.ones(len(clicks), np.int32),
            )
        masks = {t: (m[:, 0] > 0).cpu().numpy() for t, _, m in model.propagate_in_video(state)}
    out = {}
    for t in range(CLIP_FRAMES):
        for index, person in enumerate(BOXES):
            outputs = state["output_dict_per_obj"][index]
            frame_out = outputs["cond_frame_outputs"].get(t) or outputs["non_cond_frame_outputs"][t]
            out[t, person] = (
                masks[t][index],
                frame_out["obj_ptr"][0].numpy(),
                float(frame_out["object_score_logits"]),
            )
    return out


def _detection_prompt(person: int) -> Prompt:
    clicks = CLICKS[person]
    return Prompt(
        box_xyxy=BOXES[person],
        points_xy=clicks,
        point_labels=None if clicks is None else np.ones(len(clicks), np.int32),
    )


def _assert_same_as_stock(observation, stock_out) -> None:
    mask, pointer, score = stock_out
    # Same operations in the same order on the same batch sizes: no float batching
    # difference, so no pixel may differ.
    assert np.array_equal(observation.mask, mask)
    np.testing.assert_allclose(observation.appearance, pointer, rtol=0, atol=1e-5)
    assert observation.object_score == pytest.approx(score, abs=1e-5)


# ---------------------------------------------------------------- 1. equivalence


def test_streamed_segmenter_driven_directly_matches_stock_predictor(model, clip, stock):
    _, frames = clip
    segmenter = Sam2Segmenter(
        _config(memory="fifo", max_object_pointers=CLIP_FRAMES), model=model
    )
    for frame in frames:
        if frame.index == 0:
            prompts = [_detection_prompt(person) for person in BOXES]
        else:  # a track's box is not used by SAM2: a wrong one must not matter
            prompts = [Prompt(np.zeros(4), track_id=person) for person in BOXES]
        answers = segmenter.segment(frame, prompts)
        for person, candidates in zip(BOXES, answers, strict=True):
            assert len(candidates) == (1 if frame.index == 0 else 3)
            best = max(candidates, key=lambda o: o.quality)
            _assert_same_as_stock(best, stock[frame.index, person])
            lam = None if frame.index == 0 else 0.5
            segmenter.commit(frame.index, person, best, lam, admitted=False)
    assert segmenter.conditioning_frame(1) == segmenter.conditioning_frame(2) == 0


def test_segfollow_with_alpha_one_and_fifo_memory_gives_stock_sam2(model, clip, stock):
    _, frames = clip
    segmenter = Sam2Segmenter(
        _config(memory="fifo", max_object_pointers=CLIP_FRAMES), model=model
    )
    assert isinstance(segmenter, MemorySegmenter)
    tracker = SegFollow(segmenter, SegFollowConfig(alpha=1.0, n_init=1, **OVERLAP_RULES_OFF))
    for frame in frames:
        detections = (
            [Detection(BOXES[1], 0.9), Detection(BOXES[2], 0.9, keypoints=_keypoints(2))]
            if frame.index == 0
            else []
        )
        followed = {tf.track_id: tf for tf in tracker.step(frame, detections)}
        assert sorted(followed) == [1, 2]  # born in detection order, never lost
        for person, track_frame in followed.items():
            assert not track_frame.occluded
            _assert_same_as_stock(track_frame.observation, stock[frame.index, person])


def _keypoints(person: int) -> np.ndarray:
    """COCO keypoints: the test's clicks on the shoulders, confident; a confident hip outside
    the frame, a confident nose (not a prompt keypoint) and the rest unsure: none of those
    may become a click."""
    keypoints = np.tile([100.0, 60.0, 0.1], (17, 1))
    shoulders, hip = list(PROMPT_KEYPOINTS[:2]), PROMPT_KEYPOINTS[2]
    keypoints[shoulders] = np.column_stack([CLICKS[person], [0.95, 0.95]])
    keypoints[hip] = [WIDTH + 5.0, 60.0, 0.95]
    keypoints[COCO_KEYPOINTS.index("nose")] = [10.0, 10.0, 0.99]
    return keypoints


# ---------------------------------------------------------------- 3. bounded memory


@pytest.mark.slow
@pytest.mark.parametrize("memory", ["ema", "fifo"])
def test_memory_stops_growing_after_warm_up(memory):
    torch.manual_seed(0)  # a random model whose object score for this person is > 0
    segmenter = Sam2Segmenter(Sam2SegmenterConfig(model="tiny", image_size=64, memory=memory))
    # every frame admitted, so the EMA mode's pointer list fills up too
    tracker = SegFollow(segmenter, SegFollowConfig(n_init=1, memory_admit_mask=0.0))
    box = np.array([20.0, 8.0, 50.0, 72.0])
    sizes = []
    rgb = np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)
    for t in range(240):
        shifted = np.roll(rgb, t, axis=1)  # the scene moves: every frame is new
        (followed,) = tracker.step(Frame(t, shifted), [Detection(box, 0.9)] if t == 0 else [])
        assert followed.track_id == 1 and not followed.occluded
        sizes.append(segmenter.memory_size(1))
    warm = 16  # the 15-frame pointer window is full by then
    tensors, n_bytes = sizes[warm]
    assert all(size == (tensors, n_bytes) for size in sizes[warm:])
    assert max(sizes) == sizes[warm]
    # conditioning frame (features + pointer), 15 pointers, and 6 frames or one EMA buffer
    assert tensors == (2 + 15 + 6 if memory == "fifo" else 2 + 15 + 1)


# ---------------------------------------------------------------- 4. a person added later


def test_person_added_at_frame_ten_is_tracked_from_there(model):
    segmenter = Sam2Segmenter(_config(), model=model)
    tracker = SegFollow(segmenter, SegFollowConfig(n_init=3, **OVERLAP_RULES_OFF))
    first_seen: dict[int, int] = {}
    for t in range(16):
        detections = {0: [Detection(BOXES[1], 0.9)], 10: [Detection(BOXES[2], 0.9)]}.get(t, [])
        for track_frame in tracker.step(Frame(t, _render(t)), detections):
            first_seen.setdefault(track_frame.track_id, t)
            assert not track_frame.occluded
        if t >= 10:
            assert sorted(segmenter.people) == [1, 2]
    assert first_seen == {1: 0, 2: 10}
    assert segmenter.conditioning_frame(1) == 0
    assert segmenter.conditioning_frame(2) == 10
    assert tracker.is_confirmed(2)


# ---------------------------------------------------------------- 5. lifetime, checkpoints


def _first_frame_answer(segmenter: Sam2Segmenter, frame: Frame) -> list:
    (candidates,) = segmenter.segment(frame, [_detection_prompt(2)])
    return candidates


def test_forget_and_close_free_the_state(model, clip):
    _, frames = clip
    segmenter = Sam2Segmenter(_config(), model=model)
    answers = segmenter.segment(frames[0], [_detection_prompt(1), _detection_prompt(2)])
    for person, (candidate,) in zip(BOXES, answers, strict=True):
        segmenter.commit(0, person, candidate, None, True)
    held = weakref.ref(segmenter.memory_of(1).cond_features)
    segmenter.forget(1)
    assert segmenter.people == (2,)
    assert held() is None
    segmenter.forget(99)  # unknown ids are fine: the track may never have had memory

    (tracked,) = segmenter.segment(frames[1], [Prompt(np.zeros(4), track_id=2)])
    with pytest.raises(ValueError, match="latest segment"):  # a candidate of frame 0
        segmenter.commit(1, 2, answers[1][0], 0.5, True)
    with pytest.raises(ValueError, match="no memory"):  # tracked before its prompt frame
        segmenter.commit(1, 1, tracked[0], 0.5, True)

    held = weakref.ref(segmenter.memory_of(2).cond_features)
    segmenter.close()
    assert segmenter.people == ()
    assert held() is None
    with pytest.raises(RuntimeError, match="closed"):
        segmenter.segment(frames[2], [_detection_prompt(1)])


def test_checkpoint_round_trip_gives_identical_outputs(model, clip, tmp_path):
    _, frames = clip
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    expected = _first_frame_answer(Sam2Segmenter(_config(), model=model), frames[0])

    torch.manual_seed(123)  # a different random model unless the weights are loaded
    loaded = _first_frame_answer(Sam2Segmenter(_config(), checkpoint=path), frames[0])
    unloaded = _first_frame_answer(Sam2Segmenter(_config()), frames[0])

    assert len(expected) == len(loaded) == 1
    assert np.array_equal(loaded[0].mask, expected[0].mask)
    np.testing.assert_array_equal(loaded[0].appearance, expected[0].appearance)
    assert loaded[0].quality == expected[0].quality
    assert len(unloaded) != 1 or not np.allclose(unloaded[0].appearance, expected[0].appearance)


def test_bad_checkpoints_are_missing_model_errors(model, tmp_path):
    good = tmp_path / "good.pt"
    torch.save({"model": model.state_dict()}, good)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    no_model = tmp_path / "no_model.pt"
    torch.save({"weights": {}}, no_model)
    partial = tmp_path / "partial.pt"
    state = dict(model.state_dict())
    state.pop(next(iter(state)))
    torch.save({"model": state}, partial)

    cases = {
        tmp_path / "absent.pt": "does not exist",
        corrupt: "not a readable SAM2 checkpoint",
        no_model: "no 'model' entry",
        partial: "1 of the model's tensors are missing",
    }
    for path, message in cases.items():
        with pytest.raises(MissingModelError, match=message) as caught:
            Sam2Segmenter(_config(), checkpoint=path)
        assert caught.value.exit_code == 3
        assert "ram-core weights download sam2.1_hiera_tiny" in str(caught.value)
    # hiera-t weights for a hiera-s model: the right file format, the wrong architecture
    with pytest.raises(MissingModelError, match=r"does not hold SAM2\.1 hiera small weights"):
        Sam2Segmenter(Sam2SegmenterConfig(model="small", image_size=IMAGE_SIZE), checkpoint=good)


# ---------------------------------------------------------------- 6. the EMA update


def _tiny_memory() -> PersonMemory:
    return PersonMemory(
        cond_frame=0, cond_features=torch.zeros(1, 2, 1, 1), cond_pointer=torch.zeros(1, 3)
    )


def test_ema_update_on_hand_made_tensors():
    memory = _tiny_memory()
    first = torch.tensor([1.0, 2.0]).reshape(1, 2, 1, 1)
    second = torch.tensor([3.0, -2.0]).reshape(1, 2, 1, 1)
    pointer = torch.ones(1, 3)

    assert remember_tracked_frame(memory, "ema", 1, first, pointer, 0.4, lam=0.8, admitted=True)
    assert memory.ema.flatten().tolist() == [1.0, 2.0]  # the first admitted frame starts it
    assert remember_tracked_frame(memory, "ema", 2, second, pointer, 0.4, lam=0.75, admitted=True)
    # M = lam * M + (1 - lam) * m
    np.testing.assert_allclose(memory.ema.flatten().numpy(), [1.5, 1.0])
    assert sorted(memory.pointers) == [1, 2]

    before = memory.ema.clone()
    # nobody there (object score <= 0): frozen, even when admitted
    assert not remember_tracked_frame(memory, "ema", 3, first, pointer, -0.1, 0.5, True)
    assert not remember_tracked_frame(memory, "ema", 4, first, pointer, 0.0, 0.5, True)
    # not admitted: unchanged
    assert not remember_tracked_frame(memory, "ema", 5, first, pointer, 2.0, 0.5, False)
    assert torch.equal(memory.ema, before)
    assert sorted(memory.pointers) == [1, 2]
    assert memory.recent == {}

    # lam = 1 keeps the buffer, lam = 0 replaces it
    assert torch.equal(ema_blend(before, second, 1.0), before)
    assert torch.equal(ema_blend(before, second, 0.0), second)


def test_ema_buffer_blends_the_frame_memories_the_stock_bank_keeps(model, clip):
    """Lock-step fifo and ema segmenters: the EMA buffer is the lam-blend of the memories
    the stock bank stores (to bfloat16 precision, the bank's storage type)."""
    _, frames = clip
    fifo = Sam2Segmenter(_config(memory="fifo"), model=model)
    ema = Sam2Segmenter(_config(memory="ema"), model=model)
    lams = {1: 0.3, 2: 0.7}
    for frame in frames[:3]:
        for segmenter in (fifo, ema):
            prompt = _detection_prompt(1) if frame.index == 0 else Prompt(BOXES[1], track_id=1)
            (candidates,) = segmenter.segment(frame, [prompt])
            lam = lams.get(frame.index)
            segmenter.commit(frame.index, 1, candidates[0], lam, admitted=True)
    bank = fifo.memory_of(1).recent
    expected = 0.7 * bank[1].float() + 0.3 * bank[2].float()
    buffer = ema.memory_of(1).ema
    assert buffer.dtype == torch.float32
    torch.testing.assert_close(buffer, expected, rtol=0, atol=0.01)
    assert sorted(ema.memory_of(1).pointers) == [1, 2]

    # a frame that is not admitted changes nothing
    before = buffer.clone()
    (candidates,) = ema.segment(frames[3], [Prompt(BOXES[1], track_id=1)])
    ema.commit(3, 1, candidates[0], 0.5, admitted=False)
    assert torch.equal(ema.memory_of(1).ema, before)
    assert sorted(ema.memory_of(1).pointers) == [1, 2]


def test_fifo_memory_keeps_every_frame_and_a_bounded_window():
    memory = _tiny_memory()
    features = torch.tensor([1.0, 2.0]).reshape(1, 2, 1, 1)
    for t in range(1, 30):
        # the stock bank has no admission: not admitted and nobody there still enter
        pointer = torch.ones(1, 3)
        assert remember_tracked_frame(memory, "fifo", t, features, pointer, -1.0, 0.9, False)
        memory.forget_before(features_from=t - 5, pointers_from=t - 14)
    assert sorted(memory.recent) == list(range(24, 30))
    assert sorted(memory.pointers) == list(range(15, 30))
    assert memory.recent[29].dtype == torch.bfloat16  # stored as SAM2 stores it
    assert memory.ema is None


# ---------------------------------------------------------------- the rest of the surface


def test_detection_clicks_change_the_answer(model, clip):
    _, frames = clip
    segmenter = Sam2Segmenter(_config(), model=model)
    with_clicks, box_only = segmenter.segment(
        frames[0], [_detection_prompt(2), Prompt(BOXES[2])]
    )
    assert not np.allclose(with_clicks[0].appearance, box_only[0].appearance)


def test_frames_must_come_in_order(model, clip):
    _, frames = clip
    segmenter = Sam2Segmenter(_config(), model=model)
    segmenter.segment(frames[3], [])
    with pytest.raises(ValueError, match="increasing order"):
        segmenter.segment(frames[2], [_detection_prompt(1)])


def test_pointer_similarity():
    assert pointer_similarity(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(1.0)
    assert pointer_similarity(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 0.0
    assert pointer_similarity(np.array([1.0, 0.0]), np.array([-1.0, 0.0])) == 0.0
    assert pointer_similarity(np.zeros(2), np.ones(2)) == 0.0


def test_config_and_model_tables():
    assert set(SAM2_MODELS) == set(SAM2_CONFIGS) == {"tiny", "small", "base_plus", "large"}
    assert SAM2_MODELS["base_plus"] == "sam2.1_hiera_base_plus"
    for bad in (
        {"model": "huge"},
        {"image_size": 100},
        {"image_size": 32},
        {"memory": "lifo"},
        {"max_object_pointers": 1},
    ):
        with pytest.raises(ValueError):
            Sam2SegmenterConfig(**bad)


@pytest.mark.gpu
def test_cuda_half_precision_runs(clip):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    _, frames = clip
    torch.manual_seed(0)
    segmenter = Sam2Segmenter(_config(half_precision=True), device="cuda")
    (candidates,) = segmenter.segment(frames[0], [_detection_prompt(1)])
    segmenter.commit(0, 1, candidates[0], None, True)
    (tracked,) = segmenter.segment(frames[1], [Prompt(np.zeros(4), track_id=1)])
    assert len(tracked) == 3
    segmenter.commit(1, 1, tracked[0], 0.6, True)
    assert segmenter.memory_size(1)[0] == 2 + 1 + 1
