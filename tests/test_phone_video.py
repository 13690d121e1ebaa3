"""Phone footage: a clip stored sideways with a rotation tag tracks like the same clip
stored upright, and a run that finds nobody says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from rotated_video import write_turned_video, write_video

from ram_core.config import load_config
from ram_core.io.progress import NoProgress
from ram_core.io.result import load_result, read_mask
from ram_core.pipeline import run_pipeline
from ram_core.video.reader import iter_frames

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "demo" / "three_people.mp4"
DEMO_CONFIG = ROOT / "demo" / "demo.yaml"
FRAMES = 24


class Recorded(NoProgress):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)


def quiet_config():
    config = load_config(DEMO_CONFIG)
    return dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, preview=False))


@pytest.mark.slow
def test_a_turned_phone_clip_tracks_like_the_upright_one(tmp_path):
    upright = [frame.rgb for frame in iter_frames(CLIP, 0, FRAMES)]
    runs = {}
    for name, path in (
        ("upright", write_video(tmp_path / "upright.mp4", upright)),
        ("turned", write_turned_video(tmp_path / "turned.mp4", upright, 90)),
    ):
        runs[name] = load_result(
            run_pipeline(path, tmp_path / f"{name}.ram", backend="lite", config=quiet_config())
        )
    upright_run, turned_run = runs["upright"], runs["turned"]
    assert turned_run.manifest["source_video"]["rotation_deg"] == 90
    for key in ("width", "height"):
        assert turned_run.manifest["source_video"][key] == upright_run.manifest["source_video"][key]
    assert len(upright_run.track_ids()) >= 2
    assert len(turned_run.track_ids()) == len(upright_run.track_ids())
    # The same people in the same places: boxes and masks agree.
    for track in upright_run.track_ids():
        ours = upright_run.track(int(track))
        boxes = turned_run.tracks["box_xyxy"]
        nearest = [
            np.abs(boxes[turned_run.tracks["frame"] == f] - box).sum(axis=1).min()
            for f, box in zip(ours["frame"], ours["box_xyxy"], strict=True)
        ]
        assert np.median(nearest) < 12.0
    frame = FRAMES // 2
    a, b = read_mask(upright_run.path, frame) > 0, read_mask(turned_run.path, frame) > 0
    assert a.shape == b.shape and (a & b).sum() / max((a | b).sum(), 1) > 0.8


def test_a_run_that_finds_nobody_says_so(tmp_path):
    empty = [np.full((120, 160, 3), 90, np.uint8) for _ in range(6)]
    video = write_video(tmp_path / "empty.mp4", empty)
    progress = Recorded()
    out = run_pipeline(
        video, tmp_path / "empty.ram", backend="lite", config=quiet_config(), progress=progress
    )
    assert len(load_result(out).track_ids()) == 0
    assert any("found nobody" in message for message in progress.messages)
