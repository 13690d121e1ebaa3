"""T-HMR's Memory Cache, dual-branch scorer, MemFormer, the composed model and its trainer.

Tiny sizes on the CPU; every test name holds ``thmr`` or ``memformer``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ram_core.errors import BadInputError  # noqa: E402
from ram_core.reconstruct.hmr2 import (  # noqa: E402
    Hmr2Config,
    build_hmr2,
    weak_camera_to_translation,
)
from ram_core.reconstruct.thmr_memory import (  # noqa: E402
    MemFormer,
    MemoryCache,
    MemoryConfig,
    MemoryScorer,
    causal_clip_memory,
    pool_tokens,
)
from ram_core.reconstruct.thmr_model import THmr, build_thmr_model  # noqa: E402
from ram_core.train.memformer import (  # noqa: E402
    ClipCropDataset,
    MemFormerTrainConfig,
    crop_camera_translation,
    crop_keypoints,
    draw_outlier_donors,
    export_memformer,
    load_trained_memformer,
    project_to_crop,
    scene_dirs,
    swap_outliers,
    train_memformer,
)

EMBED = 16
GRID = (4, 4)
SMALL = MemoryConfig(
    length=3, top_k=2, pool=2, max_age=8, score_dim=16, width=32, depth=1, heads=4, mlp_ratio=2
)
OUTPUT_FIELDS = ("global_orient", "body_pose", "betas", "weak_camera")


def frame_features(seed: int, channels: int = EMBED, grid=GRID) -> torch.Tensor:
    return torch.randn((channels, *grid), generator=torch.Generator().manual_seed(seed))


def tiny_thmr(memory_config: MemoryConfig | None = None) -> THmr:
    torch.manual_seed(0)
    config = memory_config or MemoryConfig(
        length=4, top_k=2, score_dim=32, width=32, depth=1, heads=4, mlp_ratio=2
    )
    return build_thmr_model(Hmr2Config.tiny(), memory_config=config)


def random_crops(count: int, seed: int) -> torch.Tensor:
    return torch.randn((count, 3, 256, 192), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "fields",
    [
        {"length": 0},
        {"top_k": 5, "length": 4},
        {"top_k": 0},
        {"pool": 0},
        {"max_age": 0},
        {"relevance_weight": 1.5},
        {"width": 30, "heads": 4},
        {"mlp_ratio": 0.0},
    ],
)
def test_thmr_memory_config_rejects_bad_values(fields):
    with pytest.raises(ValueError):
        MemoryConfig(**fields)


def test_thmr_memory_config_rejects_grid_not_divisible_by_pool():
    with pytest.raises(ValueError, match="divisible by pool"):
        MemoryCache(MemoryConfig(pool=3), EMBED, (16, 12))


# ----------------------------------------------------------------------------- cache


def test_thmr_memory_cache_gives_pooled_tokens_summaries_and_ages():
    cache = MemoryCache(SMALL, EMBED, GRID)
    frames = {0: frame_features(0), 2: frame_features(2), 5: frame_features(5)}
    for index, features in frames.items():
        cache.push(7, index, features)
    memory = cache.candidates([7, 99], frame_index=6)

    assert memory.tokens.shape == (2, 3, 4, EMBED)  # 4x4 grid pooled by 2 -> 4 tokens
    assert memory.valid.tolist() == [[True, True, True], [False, False, False]]
    assert memory.ages[0].tolist() == [6, 4, 1]
    for slot, index in enumerate(frames):
        pooled = torch.nn.functional.avg_pool2d(frames[index][None], 2)[0]
        expected = pooled.flatten(1).T  # (Tm, C), row-major
        torch.testing.assert_close(memory.tokens[0, slot], expected)
        torch.testing.assert_close(memory.summaries[0, slot], frames[index].mean(dim=(1, 2)))


def test_thmr_memory_cache_ring_buffer_wraps_and_stays_bounded():
    cache = MemoryCache(SMALL, EMBED, GRID)
    cache.push(1, 0, frame_features(0))
    size = cache.nbytes(1)
    assert size > 0
    for index in range(1, 10):
        cache.push(1, index, frame_features(index))
        assert cache.nbytes(1) == size  # preallocated: never grows with the video
    memory = cache.candidates([1], frame_index=10)
    assert memory.valid.all()
    assert sorted(memory.ages[0].tolist()) == [1, 2, 3]  # frames 7, 8, 9: the last L = 3
    by_age = dict(zip(memory.ages[0].tolist(), memory.tokens[0], strict=True))
    for index in (7, 8, 9):
        torch.testing.assert_close(by_age[10 - index], pool_tokens(frame_features(index), 2))


def test_thmr_memory_cache_ignores_entries_older_than_max_age():
    cache = MemoryCache(SMALL, EMBED, GRID)  # max_age 8
    cache.push(1, 0, frame_features(0))
    cache.push(1, 5, frame_features(5))
    memory = cache.candidates([1], frame_index=10)
    assert memory.valid[0].tolist() == [False, True, False]
    assert memory.ages[0, 1] == 5
    # Entries from after the asked frame are not candidates either.
    assert not cache.candidates([1], frame_index=4).valid[0, 1]


def test_thmr_memory_cache_forget_frees_that_track_only():
    cache = MemoryCache(SMALL, EMBED, GRID)
    cache.push(1, 0, frame_features(0))
    cache.push(2, 0, frame_features(1))
    before = cache.nbytes(2)
    cache.forget(1)
    assert cache.nbytes(1) == 0
    assert cache.nbytes(2) == before == cache.nbytes()
    assert cache.track_ids() == [2]
    assert not cache.candidates([1], 1).valid.any()
    cache.push(1, 0, frame_features(0))  # a forgotten track starts afresh
    assert cache.candidates([1], 1).valid.sum() == 1


def test_thmr_memory_cache_rejects_bad_pushes():
    cache = MemoryCache(SMALL, EMBED, GRID)
    with pytest.raises(ValueError, match="wants features"):
        cache.push(1, 0, torch.zeros(EMBED, 4, 2))
    cache.push(1, 3, frame_features(0))
    with pytest.raises(ValueError, match="not after"):
        cache.push(1, 3, frame_features(1))


def test_thmr_memory_cache_filled_in_inference_mode_trains_outside_it():
    cache = MemoryCache(SMALL, EMBED, GRID)
    with torch.inference_mode():
        cache.push(1, 0, frame_features(0))
    memory = cache.candidates([1], 1)
    memformer = MemFormer(SMALL, EMBED, GRID)
    current = frame_features(3)[None]
    keep = memory.valid[:, :1]
    fused = memformer(current, memory.tokens[:, :1], memory.ages[:, :1], keep)
    fused.sum().backward()  # an inference tensor in the graph would raise here
    assert memformer.output.weight.grad is not None


def test_thmr_memory_clip_memory_matches_the_cache():
    frames = 7
    features = torch.stack([frame_features(i) for i in range(frames)])[None]
    reliable = torch.tensor([[True, False, True, True, True, False, True]])
    memory = causal_clip_memory(features, reliable, SMALL)  # length 3
    cache = MemoryCache(SMALL, EMBED, GRID)
    for t in range(frames):
        from_cache = cache.candidates([0], t)
        query = memory.valid[t]
        assert sorted(memory.ages[t][query].tolist()) == sorted(
            from_cache.ages[0][from_cache.valid[0]].tolist()
        )
        for age in memory.ages[t][query].tolist():
            slot = int((memory.ages[t] == age).nonzero()[0, 0])
            cached = int(((from_cache.ages[0] == age) & from_cache.valid[0]).nonzero()[0, 0])
            torch.testing.assert_close(memory.tokens[t, slot], from_cache.tokens[0, cached])
        if reliable[0, t]:
            cache.push(0, t, features[0, t])
    assert memory.valid[6].sum() == 3  # frames 2, 3, 4 (frame 0 pushed out)


# ----------------------------------------------------------------------------- scoring


def unit(vector: torch.Tensor) -> torch.Tensor:
    return vector / vector.norm()


def scoring_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three mutually consistent candidates (direction a) and one outlier (direction o);
    the current frame is closer to the outlier than to the others."""
    generator = torch.Generator().manual_seed(3)
    basis, _ = torch.linalg.qr(torch.randn(EMBED, EMBED, generator=generator))
    # Zero-mean directions, so LayerNorm keeps them apart.
    a = unit(basis[:, 0] - basis[:, 0].mean())
    o = unit(basis[:, 1] - basis[:, 1].mean())
    noise = 0.1 * torch.randn(3, EMBED, generator=generator) / EMBED**0.5
    candidates = torch.stack([a + noise[0], o, a + noise[1], a + noise[2]])[None]  # (1, 4, C)
    current = unit(0.6 * o + 0.4 * a)[None]
    return current, candidates, torch.ones(1, 4, dtype=torch.bool)


def scorer(relevance_weight: float | None = 0.5) -> MemoryScorer:
    torch.manual_seed(0)
    return MemoryScorer(dataclasses.replace(SMALL, relevance_weight=relevance_weight), EMBED)


def test_thmr_scorer_relevance_prefers_the_candidate_like_the_current_frame():
    generator = torch.Generator().manual_seed(5)
    candidates = torch.randn(1, 4, EMBED, generator=generator)
    current = candidates[:, 2] + 0.05 * torch.randn(1, EMBED, generator=generator)
    scores = scorer()(current, candidates, torch.ones(1, 4, dtype=torch.bool))
    assert int(scores.relevance.argmax()) == 2
    torch.testing.assert_close(scores.relevance.exp().sum(), torch.tensor(1.0))


def test_thmr_scorer_reliability_demotes_the_outlier():
    current, candidates, valid = scoring_case()
    with torch.no_grad():
        scores = scorer()(current, candidates, valid)
    assert int(scores.reliability.argmin()) == 1
    assert float(scores.reliability[0, 1]) < float(scores.reliability[0, [0, 2, 3]].min()) - 1.0


def test_thmr_scorer_needs_both_branches():
    current, candidates, valid = scoring_case()
    relevance_only = scorer(relevance_weight=1.0)(current, candidates, valid).combined
    combined = scorer(relevance_weight=0.5)(current, candidates, valid).combined
    learned = scorer(relevance_weight=None)(current, candidates, valid).combined  # starts 0.5
    assert int(relevance_only.argmax()) == 1  # relevance alone takes the outlier
    assert int(combined.argmax()) != 1
    torch.testing.assert_close(learned, combined)
    indices, keep = MemoryScorer.select(combined, valid, 2)
    assert 1 not in indices[0].tolist() and keep.all()


def test_thmr_scorer_select_with_fewer_than_k_valid():
    scores = torch.tensor([[0.5, 3.0, 2.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    valid = torch.tensor([[True, False, True, False], [False, False, False, False]])
    indices, keep = MemoryScorer.select(scores, valid, 3)
    assert indices.shape == keep.shape == (2, 3)
    assert indices[0, :2].tolist() == [2, 0]  # highest valid first; slot 1 is invalid
    assert keep.tolist() == [[True, True, False], [False, False, False]]
    # Fewer slots than k: padded, and the padding is not kept.
    indices, keep = MemoryScorer.select(scores[:, :2], valid[:, :2], 3)
    assert indices.shape == (2, 3) and keep.tolist()[0] == [True, False, False]


def test_thmr_scorer_no_valid_candidates_gives_no_nan():
    current, candidates, _ = scoring_case()
    valid = torch.tensor([[False, True, False, False]])
    for mask in (torch.zeros(1, 4, dtype=torch.bool), valid):
        scores = scorer(relevance_weight=None)(current, candidates.requires_grad_(), mask)
        assert not scores.combined.isnan().any()
        assert torch.isneginf(scores.combined[~mask]).all()
        finite = scores.combined[mask]
        (finite.sum() + scores.relevance[mask].sum()).backward()
        assert not candidates.grad.isnan().any()
        candidates.grad = None


# ----------------------------------------------------------------------------- MemFormer


def memformer_inputs(batch: int = 2, kept: int = 2):
    generator = torch.Generator().manual_seed(11)
    features = torch.randn(batch, EMBED, *GRID, generator=generator)
    tokens = torch.randn(batch, kept, 4, EMBED, generator=generator)
    ages = torch.tensor([[1, 3]] * batch)
    return features, tokens, ages


def test_memformer_zero_init_returns_the_input_exactly():
    features, tokens, ages = memformer_inputs()
    memformer = MemFormer(SMALL, EMBED, GRID)
    keep = torch.tensor([[True, True], [True, False]])
    weights = torch.log_softmax(torch.tensor([[0.3, -0.2], [0.0, float("-inf")]]), dim=-1)
    assert torch.equal(memformer(features, tokens, ages, keep, weights), features)
    nothing = torch.zeros_like(keep)
    assert memformer(features, tokens, ages, nothing) is features


def test_memformer_rows_without_memory_stay_unchanged_and_finite():
    features, tokens, ages = memformer_inputs()
    memformer = MemFormer(SMALL, EMBED, GRID)
    torch.nn.init.normal_(memformer.output.weight, std=0.5)  # as if trained
    keep = torch.tensor([[True, False], [False, False]])
    fused = memformer(features, tokens, ages, keep)
    assert torch.isfinite(fused).all()
    assert torch.equal(fused[1], features[1])
    assert not torch.equal(fused[0], features[0])
    fused.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in memformer.parameters() if p.grad is not None)


def test_memformer_learns_from_one_gradient_step():
    features, tokens, ages = memformer_inputs()
    memformer = MemFormer(SMALL, EMBED, GRID)
    keep = torch.ones(2, 2, dtype=torch.bool)
    target = torch.randn(features.shape, generator=torch.Generator().manual_seed(2))
    optimizer = torch.optim.SGD(memformer.parameters(), lr=0.1)
    loss = (memformer(features, tokens, ages, keep) - target).square().mean()
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        after = memformer(features, tokens, ages, keep)
    assert not torch.equal(after, features)
    assert float((after - target).square().mean()) < float(loss.detach())


def test_memformer_rejects_features_of_another_shape():
    features, tokens, ages = memformer_inputs()
    with pytest.raises(ValueError, match="memformer wants"):
        MemFormer(SMALL, EMBED, GRID)(features[:, :8], tokens, ages, torch.ones(2, 2).bool())


# ----------------------------------------------------------------------------- T-HMR


def test_thmr_untrained_equals_plain_hmr2_exactly():
    model = tiny_thmr()
    for frame in range(5):
        crops = random_crops(3, seed=frame)
        out = model.step(crops, [4, 9, 2], frame, remember=[True, frame % 2 == 0, False])
        with torch.no_grad():
            plain = model.hmr2(crops)
        for field in OUTPUT_FIELDS:
            assert torch.equal(getattr(out, field), getattr(plain, field)), (frame, field)
    # Memory was there to use: tracks 4 and 9 hold frames, track 2 never was remembered.
    assert model.cache.track_ids() == [4, 9]
    memory = model.cache.candidates([4, 9, 2], 5)
    assert memory.valid.sum(dim=1).tolist() == [4, 3, 0]


def test_thmr_trained_memformer_changes_only_tracks_with_memory():
    model = tiny_thmr()
    torch.nn.init.normal_(model.memformer.output.weight, std=0.2)
    crops = random_crops(2, seed=1)
    model.step(crops, [1, 2], 0, remember=[True, False])
    out = model.step(crops, [1, 2], 1, remember=[True, True])
    with torch.no_grad():
        plain = model.hmr2(crops)
    assert not torch.equal(out.body_pose[0], plain.body_pose[0])
    assert torch.equal(out.body_pose[1], plain.body_pose[1])
    # Memory holds what the backbone saw, not the fused tokens (no compounding).
    memory = model.cache.candidates([1], 1)
    (now,) = (memory.ages[0] == 0).nonzero()[0]
    with torch.no_grad():
        seen = pool_tokens(model.hmr2.features(crops)[0], model.memory_config.pool)
    torch.testing.assert_close(memory.tokens[0, now], seen)
    model.forget(1)
    again = model.step(crops[:1], [1], 2, remember=[False])
    with torch.no_grad():
        alone = model.hmr2(crops[:1])  # same batch size: bitwise comparable
    assert torch.equal(again.body_pose, alone.body_pose)


def test_thmr_step_rejects_mismatched_arguments():
    model = tiny_thmr()
    crops = random_crops(2, seed=0)
    with pytest.raises(ValueError, match="track ids"):
        model.step(crops, [1], 0, [True, True])
    with pytest.raises(ValueError, match="twice"):
        model.step(crops, [1, 1], 0, [True, True])


def test_thmr_memformer_file_round_trip_and_mismatch(tmp_path):
    model = tiny_thmr()
    torch.nn.init.normal_(model.memformer.output.weight)
    path = tmp_path / "memformer.pt"
    model.save_memformer_file(path)
    other = tiny_thmr()
    other.load_memformer_file(path)
    for key, value in model.memformer_state_dict().items():
        assert torch.equal(other.memformer_state_dict()[key], value), key
    deeper = tiny_thmr(dataclasses.replace(model.memory_config, depth=2))
    with pytest.raises(BadInputError, match="depth"):
        deeper.load_memformer_file(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError):
        other.load_memformer_file(tmp_path / "junk.pt")


# ----------------------------------------------------------------------------- training


def tiny_dataset(clips: int = 2, frames: int = 3) -> ClipCropDataset:
    rng = np.random.default_rng(0)
    joints = rng.normal(0.0, 0.3, (clips, frames, 24, 3)).astype(np.float32)
    joints[..., 2] += 4.0
    return ClipCropDataset(
        crops=rng.integers(0, 256, (clips, frames, 256, 192, 3), dtype=np.uint8),
        joints_cam=joints,
        crop_boxes=np.tile(np.float32([320.0, 180.0, 200.0]), (clips, frames, 1)),
        intrinsics=np.tile(np.float32([[500, 0, 320], [0, 500, 180], [0, 0, 1]]), (clips, 1, 1)),
    )


TRAIN = MemFormerTrainConfig(steps=8, batch_size=2, learning_rate=1e-3, checkpoint_every=4, seed=1)


def test_memformer_training_lowers_the_loss():
    model = tiny_thmr()
    hmr2_before = {k: v.clone() for k, v in model.hmr2.state_dict().items()}
    result = train_memformer(model, tiny_dataset(), TRAIN, progress=False)
    assert result.final_step == 8 and len(result.losses) == 8
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3]) - 1e-3
    # HMR2.0 is frozen.
    for key, value in model.hmr2.state_dict().items():
        assert torch.equal(value, hmr2_before[key]), key


def test_memformer_training_resumes_where_the_checkpoint_stopped(tmp_path):
    dataset = tiny_dataset()
    straight = tiny_thmr()
    train_memformer(straight, dataset, TRAIN, progress=False)

    checkpoint = tmp_path / "train.pt"
    first = tiny_thmr()
    half = dataclasses.replace(TRAIN, steps=4)
    assert train_memformer(first, dataset, half, checkpoint, progress=False).final_step == 4

    resumed = tiny_thmr()
    assert load_trained_memformer(checkpoint, resumed) == 4
    for key, value in first.memformer_state_dict().items():
        assert torch.equal(resumed.memformer_state_dict()[key], value), key
    result = train_memformer(resumed, dataset, TRAIN, checkpoint, resume=True, progress=False)
    assert (result.start_step, result.final_step, len(result.losses)) == (4, 8, 4)
    # Same batches, outliers, optimizer state and weights as the uninterrupted run.
    for key, value in straight.memformer_state_dict().items():
        torch.testing.assert_close(resumed.memformer_state_dict()[key], value)
    # The checkpoint holds the trained parts only, and exports to T-HMR's weights file.
    assert not any(k.startswith("hmr2") for k in torch.load(checkpoint)["model"])
    export_memformer(checkpoint, tiny_thmr(), tmp_path / "memformer.pt")
    loaded = tiny_thmr()
    loaded.load_memformer_file(tmp_path / "memformer.pt")
    for key, value in straight.memformer_state_dict().items():
        torch.testing.assert_close(loaded.memformer_state_dict()[key], value)


def test_memformer_checkpoint_for_another_memory_is_refused(tmp_path):
    checkpoint = tmp_path / "train.pt"
    train_memformer(
        tiny_thmr(), tiny_dataset(), dataclasses.replace(TRAIN, steps=1), checkpoint, progress=False
    )
    other = tiny_thmr(dataclasses.replace(tiny_thmr().memory_config, depth=2))
    with pytest.raises(BadInputError, match="memory settings"):
        load_trained_memformer(checkpoint, other)


def test_memformer_outlier_swaps_only_reliable_frames_from_other_clips():
    reliable = np.array([[True, True, False, True]] * 3)
    donors = draw_outlier_donors(reliable, 0.999, np.random.default_rng(0))
    assert (donors[:, 2] == -1).all()
    swapped = donors[reliable]
    assert (swapped >= 0).all()
    assert (donors[reliable] != np.nonzero(reliable)[0]).all()  # never the clip itself
    assert (draw_outlier_donors(reliable, 0.0, np.random.default_rng(0)) == -1).all()
    features = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 4, 1, 1, 1)
    out = swap_outliers(features, torch.from_numpy(donors))
    for clip in range(3):
        for frame in range(4):
            source = clip if donors[clip, frame] < 0 else donors[clip, frame]
            assert out[clip, frame].item() == features[source, frame].item()


def test_memformer_training_needs_clips_with_memory():
    dataset = tiny_dataset()
    dataset.reliable[:] = False
    dataset.reliable[:, -1] = True  # only the last frame: nothing ever has a past
    with pytest.raises(ValueError, match="reliable frame before its last"):
        train_memformer(tiny_thmr(), dataset, TRAIN, progress=False)


def test_memformer_crop_keypoints_match_hmr2_camera_conversion():
    """The 2D targets (full camera into the crop) and the 2D predictions (HMR2.0's crop
    camera) agree on where the body's origin lands."""
    weak = np.array([[0.8, 0.05, -0.1], [1.3, -0.2, 0.15]])
    centres = np.array([[300.0, 200.0], [120.0, 90.0]])
    sides = np.array([180.0, 90.0])
    fx = fy = 600.0
    cx, cy = 320.0, 180.0
    origin = weak_camera_to_translation(weak, centres, sides, fx, fy, cx, cy)
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]])
    boxes = np.concatenate([centres, sides[:, None]], axis=1)
    truth, valid = crop_keypoints(origin[:, None, None, :], np.stack([K, K]), boxes[:, None, :])
    assert valid.all()
    config = Hmr2Config()
    predicted = project_to_crop(
        crop_camera_translation(torch.tensor(weak), config.focal_length_px, config.crop_size),
        config.focal_length_px,
        config.crop_size,
    )
    np.testing.assert_allclose(truth[:, 0, 0], predicted.numpy(), atol=1e-6)


def test_memformer_dataset_rejects_mismatched_arrays():
    dataset = tiny_dataset()
    with pytest.raises(ValueError, match="joints_cam"):
        ClipCropDataset(
            dataset.crops, dataset.joints_cam[:, :2], np.zeros((2, 3, 3)), np.zeros((2, 3, 3))
        )


def test_thmr_hmr2_tiny_grid_is_what_the_memory_expects():
    hmr2 = build_hmr2(Hmr2Config.tiny())
    with torch.no_grad():
        features = hmr2.features(random_crops(1, seed=0))
    model = THmr(hmr2)
    assert tuple(features.shape[1:]) == (model.embed_dim, *model.grid)


# ----------------------------------------------------------------------------- scene clips


def write_tiny_scene(scene_dir, frames: int = 8) -> dict[str, np.ndarray]:
    """Two people as flat rectangles; person 1 leaves after frame 2; person 0 is mostly
    hidden in frame 1."""
    from tests.rotated_video import write_video

    width, height, focal, depth = 160, 120, 100.0, 3.0
    K = np.float32([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    boxes = np.zeros((frames, 2, 4), np.float32)
    in_frame = np.ones((frames, 2), bool)
    in_frame[3:, 1] = False
    images = []
    for f in range(frames):
        boxes[f, 0] = (30 + 2 * f, 20, 60 + 2 * f, 100)
        boxes[f, 1] = (110, 30, 140, 90) if in_frame[f, 1] else np.nan
        image = np.full((height, width, 3), 30, np.uint8)
        for p, value in ((0, 240), (1, 128)):
            if in_frame[f, p]:
                x0, y0, x1, y1 = boxes[f, p].astype(int)
                image[y0:y1, x0:x1] = value
        images.append(image)
    centres = np.stack(
        [(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1
    )
    joints = np.zeros((frames, 2, 24, 3), np.float32)
    joints[..., 0] = ((centres[..., 0] - width / 2) / focal * depth)[..., None]
    joints[..., 1] = ((centres[..., 1] - height / 2) / focal * depth)[..., None]
    joints[..., 2] = depth
    joints[..., 1:, 1] -= 0.5  # the other joints above the pelvis
    visible = np.ones((frames, 2), np.float32)
    visible[1, 0] = 0.2
    scene_dir.mkdir()
    write_video(scene_dir / "video.mp4", images)
    np.savez(
        scene_dir / "gt.npz",
        K=K,
        joints_cam=joints,
        box_full_xyxy=boxes,
        box_visible_xyxy=boxes,
        visible_fraction=visible,
        in_frame=in_frame,
    )
    return {"boxes": boxes}


def test_memformer_scene_clip_crops_cut_like_thmr(tmp_path):
    from ram_core.reconstruct.thmr import crop_square
    from ram_core.train.scene_data import scene_clip_crops

    scene = write_tiny_scene(tmp_path / "scene")
    clips = scene_clip_crops(tmp_path / "scene", clip_len=3, stride=2)
    # Person 0: starts 0, 2, 4 (frames 0-7); person 1: start 0 only (gone from frame 3).
    assert len(clips) == 4
    assert clips.crops.shape == (4, 3, 256, 192, 3) and clips.crops.dtype == np.uint8
    assert clips.reliable[0].tolist() == [True, False, True]
    assert clips.reliable[1:].all()  # frame 1 of person 0 is only in the first clip
    centre, side = crop_square(scene["boxes"][2, 0], 1.2)
    np.testing.assert_allclose(clips.crop_boxes[1, 0], [*centre, side], rtol=1e-6)
    # The person fills the middle of its crop; the person-1 clip is the grey one.
    assert clips.crops[0, :, 128, 96].mean() > 200
    assert abs(float(clips.crops[3, :, 128, 96].mean()) - 128) < 20
    dataset = ClipCropDataset.from_clips(clips)
    np.testing.assert_allclose(dataset.keypoints_crop[:, :, 0], 0.0, atol=1e-5)
    assert dataset.keypoints_valid.all()
    assert (dataset.keypoints_crop[:, :, 1:, 1] < 0).all()  # above the pelvis: up in the crop


def test_memformer_scene_clip_crops_rejects_bad_arguments(tmp_path):
    from ram_core.train.scene_data import scene_clip_crops

    with pytest.raises(ValueError, match="clip_len"):
        scene_clip_crops(tmp_path, clip_len=1)
    with pytest.raises(ValueError, match="box_key"):
        scene_clip_crops(tmp_path, clip_len=3, box_key="box")


def test_memformer_scene_dirs_finds_scenes_directly_or_inside(tmp_path):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gt.npz").write_bytes(b"")
    assert scene_dirs([tmp_path]) == [tmp_path / "a", tmp_path / "b"]
    assert scene_dirs([tmp_path / "b"]) == [tmp_path / "b"]
    with pytest.raises(BadInputError):
        scene_dirs([tmp_path / "missing"])


def test_memformer_command_rejects_bad_arguments(tmp_path):
    import argparse

    from ram_core.train.memformer import train_memformer_command

    def args(**fields):
        defaults = {
            "data": [str(tmp_path)],
            "data_format": "scenes",
            "steps": 10,
            "batch_size": 2,
            "lr": 1e-4,
            "seed": 0,
            "checkpoint": None,
            "resume": False,
            "export": None,
            "progress": "none",
        }
        return argparse.Namespace(**{**defaults, **fields})

    with pytest.raises(BadInputError, match="scenes"):
        train_memformer_command(args(data_format="amass"))
    with pytest.raises(BadInputError, match="--resume"):
        train_memformer_command(args(resume=True))
    with pytest.raises(BadInputError, match="batch_size"):
        train_memformer_command(args(batch_size=0))
    with pytest.raises(BadInputError, match="no scene folders"):
        train_memformer_command(args())
