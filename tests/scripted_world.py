"""A scripted 2D world for testing SegFollow without a neural segmenter.

People are boxes that move on scripted paths at a depth; nearer people hide farther ones.
The segmenter sees what a real one would: the visible part of the person under a prompt,
with that person's colour as appearance. Ground-truth identity rides along so tests can
check who SegFollow followed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ram_core.detect.boxes import iou_matrix, mask_box
from ram_core.types import Detection, Frame, Observation, Prompt

WIDTH, HEIGHT = 640, 360


@dataclass(frozen=True)
class ScriptedPerson:
    person_id: int
    colour: tuple[float, float, float]
    depth: float
    path: Callable[[int], tuple[float, float] | None]  # frame -> centre, None = absent
    size: tuple[float, float] = (60.0, 160.0)

    def box(self, frame: int) -> np.ndarray | None:
        centre = self.path(frame)
        if centre is None:
            return None
        w, h = self.size
        return np.array(
            [centre[0] - w / 2, centre[1] - h / 2, centre[0] + w / 2, centre[1] + h / 2]
        )


def linear_path(start: tuple[float, float], velocity: tuple[float, float], first=0, last=10**9):
    def path(frame: int):
        if not first <= frame <= last:
            return None
        t = frame - first
        return (start[0] + velocity[0] * t, start[1] + velocity[1] * t)

    return path


def _rect_mask(box: np.ndarray) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    x1, y1, x2, y2 = np.clip(np.round(box), 0, [WIDTH, HEIGHT, WIDTH, HEIGHT]).astype(int)
    mask[y1:y2, x1:x2] = True
    return mask


class ScriptedWorld:
    """Renders visibility masks; acts as Segmenter and Detector for SegFollow."""

    def __init__(self, people: Sequence[ScriptedPerson], seed: int = 0) -> None:
        self.people = list(people)
        self.rng = np.random.default_rng(seed)
        self.frame = 0
        self.visible: dict[int, np.ndarray] = {}
        # id(Observation) -> (person id, the observation, kept alive so ids are not reused)
        self.observed: dict[int, tuple[int, Observation]] = {}

    def render(self, frame: int) -> Frame:
        self.frame = frame
        self.visible = {}
        nearer = np.zeros((HEIGHT, WIDTH), bool)
        for person in sorted(self.people, key=lambda p: p.depth):
            box = person.box(frame)
            if box is None:
                continue
            full = _rect_mask(box)
            visible = full & ~nearer
            nearer |= full
            if visible.sum() > 0.05 * max(full.sum(), 1):
                self.visible[person.person_id] = visible
        return Frame(index=frame, rgb=np.zeros((HEIGHT, WIDTH, 3), np.uint8))

    def person(self, person_id: int) -> ScriptedPerson:
        return next(p for p in self.people if p.person_id == person_id)

    # -- Detector ----------------------------------------------------------------------
    def detect(self, frame: Frame) -> list[Detection]:
        found = []
        for person_id, mask in self.visible.items():
            box = self.person(person_id).box(self.frame)
            if mask.sum() > 0.6 * _rect_mask(box).sum():
                found.append(Detection(box_xyxy=mask_box(mask), score=0.9))
        return found

    # -- Segmenter ---------------------------------------------------------------------
    def segment(self, frame: Frame, prompts: Sequence[Prompt]) -> list[list[Observation]]:
        results = []
        ids = list(self.visible)
        boxes = np.array([mask_box(self.visible[i]) for i in ids]).reshape(-1, 4)
        for prompt in prompts:
            if not ids:
                results.append([])
                continue
            overlap = iou_matrix(prompt.box_xyxy, boxes)[0]
            best = int(np.argmax(overlap))
            if overlap[best] < 0.1:
                results.append([])
                continue
            person_id = ids[best]
            colour = np.asarray(self.person(person_id).colour, np.float32)
            appearance = np.clip(colour + self.rng.normal(0, 0.02, 3), 0, None).astype(np.float32)
            obs = Observation(
                mask=self.visible[person_id],
                box_xyxy=boxes[best],
                quality=0.9,
                object_score=3.0,
                appearance=appearance,
            )
            self.observed[id(obs)] = (person_id, obs)
            results.append([obs])
        return results

    def appearance_similarity(self, memory: np.ndarray, appearance: np.ndarray) -> float:
        return float(np.exp(-4.0 * np.linalg.norm(memory - appearance)))


def run(
    world: ScriptedWorld,
    tracker,
    frames: range,
    detect_every: int = 5,
    between: Callable[[Frame], list[Detection] | None] | None = None,
):
    """Runs the tracker; returns {frame: {track_id: person_id or None (coasting)}}.
    ``between``: the detections of a frame without a regular detection (None: none)."""
    followed: dict[int, dict[int, int | None]] = {}
    for f in frames:
        frame = world.render(f)
        detections = world.detect(frame) if f % detect_every == 0 else None
        if detections is None and between is not None:
            detections = between(frame)
        out = tracker.step(frame, detections)
        followed[f] = {
            tf.track_id: (world.observed[id(tf.observation)][0] if tf.observation else None)
            for tf in out
            if tracker.is_confirmed(tf.track_id)
        }
    return followed


def identity_of(followed, track_id: int) -> set[int]:
    """The set of people a track was matched to over the run."""
    return {p for frame in followed.values() for t, p in frame.items() if t == track_id and p}
