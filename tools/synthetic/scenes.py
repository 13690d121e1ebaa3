"""The synthetic occlusion benchmark's scenes, as data, and their seeded variations (numpy only).

A scene is people on paths (waypoints on the ground, metres; the camera stands near the
origin looking along +Y), a camera that may pan or truck, and boxes that may hide people.
`plan_scene(spec, seed, ...)` turns a spec into the concrete inputs of the posing and
rendering steps; the seed jitters phenotypes, clothing colours, start points, speeds and
gait phases by amounts small enough that each scene still stresses what it says.

The set behind the people (tools/synthetic/blender_scene.py) has its wall at y = 14 m and
props from y = SET_PROPS_FROM_Y_M; people stay nearer (tools/make_bench_scenes.py checks),
so only the occluders listed here can hide them.
"""

import dataclasses
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .camera import PinholeCamera

# Nothing the set puts behind the people (wall, far pillar, bench) is nearer than this.
SET_PROPS_FROM_Y_M = 12.2

# Linear-RGB clothing palettes (the keys walk_poses.py colours by).
RED = {
    "skin": (0.62, 0.40, 0.30),
    "shirt": (0.75, 0.06, 0.05),
    "trousers": (0.05, 0.08, 0.25),
    "shoes": (0.90, 0.90, 0.90),
    "hair": (0.06, 0.04, 0.03),
}
YELLOW = {
    "skin": (0.35, 0.20, 0.13),
    "shirt": (0.90, 0.70, 0.05),
    "trousers": (0.30, 0.30, 0.32),
    "shoes": (0.05, 0.05, 0.05),
    "hair": (0.02, 0.02, 0.02),
}
GREEN = {
    "skin": (0.70, 0.50, 0.38),
    "shirt": (0.05, 0.45, 0.20),
    "trousers": (0.55, 0.42, 0.25),
    "shoes": (0.25, 0.12, 0.05),
    "hair": (0.40, 0.22, 0.08),
}
BLUE = {
    "skin": (0.55, 0.36, 0.26),
    "shirt": (0.08, 0.25, 0.70),
    "trousers": (0.75, 0.72, 0.62),
    "shoes": (0.35, 0.20, 0.10),
    "hair": (0.15, 0.08, 0.04),
}
PURPLE = {
    "skin": (0.45, 0.28, 0.20),
    "shirt": (0.45, 0.10, 0.55),
    "trousers": (0.10, 0.10, 0.10),
    "shoes": (0.80, 0.10, 0.10),
    "hair": (0.03, 0.02, 0.02),
}
# One outfit for the look-alike scene: grey tops, dark trousers, as a team might wear.
UNIFORM = {
    "skin": (0.55, 0.36, 0.26),
    "shirt": (0.42, 0.44, 0.46),
    "trousers": (0.04, 0.04, 0.05),
    "shoes": (0.06, 0.06, 0.06),
    "hair": (0.05, 0.03, 0.02),
}

# Light clothes (whites, cream, pale grey) for the low-contrast scene.
WHITE = {
    "skin": (0.62, 0.42, 0.32),
    "shirt": (0.85, 0.85, 0.82),
    "trousers": (0.70, 0.68, 0.62),
    "shoes": (0.90, 0.90, 0.88),
    "hair": (0.55, 0.42, 0.25),
}
CREAM = {
    "skin": (0.40, 0.25, 0.17),
    "shirt": (0.80, 0.74, 0.58),
    "trousers": (0.78, 0.77, 0.74),
    "shoes": (0.70, 0.68, 0.62),
    "hair": (0.04, 0.03, 0.02),
}
PALE_GREY = {
    "skin": (0.70, 0.50, 0.40),
    "shirt": (0.62, 0.64, 0.66),
    "trousers": (0.55, 0.55, 0.52),
    "shoes": (0.85, 0.85, 0.85),
    "hair": (0.75, 0.65, 0.45),
}

# Builds on Anny's 0..1 sliders (gender 0 reads as male, 1 as female).
BROAD_TALL = {
    "gender": 0.0,
    "age": 0.7,
    "muscle": 0.8,
    "weight": 0.95,
    "height": 0.45,
    "proportions": 0.5,
}
SLIM_SHORT = {
    "gender": 1.0,
    "age": 0.75,
    "muscle": 0.35,
    "weight": 0.3,
    "height": 0.2,
    "proportions": 0.5,
}
AVERAGE_MAN = {
    "gender": 0.1,
    "age": 0.72,
    "muscle": 0.55,
    "weight": 0.55,
    "height": 0.5,
    "proportions": 0.5,
}
AVERAGE_WOMAN = {
    "gender": 0.9,
    "age": 0.75,
    "muscle": 0.45,
    "weight": 0.5,
    "height": 0.4,
    "proportions": 0.5,
}
ATHLETE = {
    "gender": 0.2,
    "age": 0.68,
    "muscle": 0.75,
    "weight": 0.4,
    "height": 0.55,
    "proportions": 0.5,
}


@dataclass(frozen=True)
class PersonSpec:
    """One person: a build, an outfit and a path walked (or run) at a constant speed."""

    phenotype: Mapping[str, float]
    palette: Mapping[str, tuple[float, float, float]]
    waypoints_m: tuple[tuple[float, float], ...]
    speed_mps: float
    stride_m: float  # one gait cycle (two steps)
    gait: str = "walk"
    turn_m: float = 0.6  # path length over which the body turns at a corner


@dataclass(frozen=True)
class CameraSpec:
    """A camera that may truck/dolly (`velocity_mps`) and pan (`pan_dps`) at constant rates."""

    location_m: tuple[float, float, float] = (0.0, 0.0, 1.7)
    pitch_deg: float = 7.0
    yaw_deg: float = 0.0
    lens_mm: float = 50.0
    sensor_width_mm: float = 36.0
    velocity_mps: tuple[float, float, float] = (0.0, 0.0, 0.0)
    pan_dps: float = 0.0

    def at(self, times_s: np.ndarray, width_px: int, height_px: int) -> list[PinholeCamera]:
        """The camera at each time, in the renderer's and the ground truth's terms."""
        return [
            PinholeCamera(
                location_m=tuple(
                    float(x + v * t)
                    for x, v in zip(self.location_m, self.velocity_mps, strict=True)
                ),
                pitch_deg=self.pitch_deg,
                yaw_deg=float(self.yaw_deg + self.pan_dps * t),
                lens_mm=self.lens_mm,
                sensor_width_mm=self.sensor_width_mm,
                width_px=width_px,
                height_px=height_px,
            )
            for t in times_s
        ]

    @property
    def moves(self) -> bool:
        return self.pan_dps != 0.0 or any(v != 0.0 for v in self.velocity_mps)


@dataclass(frozen=True)
class Occluder:
    """An axis-aligned box standing in the set (a pillar, a screen)."""

    name: str
    center_m: tuple[float, float, float]
    size_m: tuple[float, float, float]
    rgb: tuple[float, float, float] = (0.62, 0.62, 0.60)


@dataclass(frozen=True)
class SceneSpec:
    name: str
    description: str
    frame_count: int
    people: tuple[PersonSpec, ...]
    camera: CameraSpec = field(default_factory=CameraSpec)
    occluders: tuple[Occluder, ...] = ()
    fps: int = 24
    # Seeded variation: phenotype sliders ±, palette channels ×(1 ±), start point ± metres,
    # speed ×(1 ±).
    phenotype_jitter: float = 0.03
    palette_jitter: float = 0.06
    start_jitter_m: float = 0.1
    speed_jitter: float = 0.04


def _line(start: tuple[float, float], heading_deg: float, length_m: float):
    """Waypoints of a straight path."""
    heading = math.radians(heading_deg)
    end = (start[0] + length_m * math.cos(heading), start[1] + length_m * math.sin(heading))
    return (start, end)


SCENES: dict[str, SceneSpec] = {
    spec.name: spec
    for spec in (
        SceneSpec(
            name="crossing",
            description=(
                "two people in different clothes cross paths diagonally at nearly the same "
                "depth; the farther one is partly hidden for a moment (identity swap risk)"
            ),
            frame_count=48,
            people=(
                PersonSpec(BROAD_TALL, RED, _line((-1.45, 6.2), 12.0, 8.0), 1.35, 1.45),
                PersonSpec(AVERAGE_WOMAN, BLUE, _line((1.45, 7.55), 192.0, 8.0), 1.3, 1.35),
            ),
        ),
        SceneSpec(
            name="hidden_person",
            description=(
                "a short, slim person walks behind a broad one going the same way and stays "
                "hidden for over a second, seen before and after (re-identification)"
            ),
            frame_count=84,
            people=(
                PersonSpec(BROAD_TALL, RED, _line((-0.3, 7.0), -90.0, 8.0), 0.35, 0.85),
                PersonSpec(SLIM_SHORT, YELLOW, _line((-1.28, 10.5), 0.0, 12.0), 0.45, 0.95),
                PersonSpec(AVERAGE_MAN, GREEN, _line((2.2, 6.8), 95.0, 8.0), 0.45, 0.95),
            ),
        ),
        SceneSpec(
            name="hidden_pillar",
            description=(
                "a walker passes behind a pillar near the camera and is fully hidden for "
                "over a second; a second person walks the other way in the open"
            ),
            frame_count=72,
            people=(
                PersonSpec(AVERAGE_MAN, BLUE, _line((-1.9, 9.5), 0.0, 8.0), 0.9, 1.3),
                PersonSpec(AVERAGE_WOMAN, PURPLE, _line((2.2, 6.6), 180.0, 8.0), 0.45, 0.95),
            ),
            occluders=(Occluder("NearPillar", (-0.35, 5.2, 1.6), (0.8, 0.8, 3.2)),),
        ),
        SceneSpec(
            name="lookalike",
            description=(
                "three people of similar build in the same outfit; two cross, one passing in "
                "front of the other (appearance cannot tell them apart)"
            ),
            frame_count=48,
            people=(
                PersonSpec(AVERAGE_MAN, UNIFORM, _line((-1.8, 6.4), 5.0, 8.0), 1.25, 1.4),
                PersonSpec(AVERAGE_MAN, UNIFORM, _line((1.9, 7.2), 183.0, 8.0), 1.2, 1.35),
                PersonSpec(AVERAGE_MAN, UNIFORM, _line((2.2, 9.8), 120.0, 8.0), 0.6, 1.1),
            ),
            phenotype_jitter=0.06,
            palette_jitter=0.03,
        ),
        SceneSpec(
            name="fast_motion",
            description=(
                "a runner crosses the whole frame in under two seconds while a jogger "
                "zig-zags with quick turns (large motion between frames)"
            ),
            frame_count=48,
            people=(
                PersonSpec(ATHLETE, RED, _line((-3.6, 7.2), 0.0, 20.0), 4.2, 2.8, gait="run"),
                PersonSpec(
                    AVERAGE_WOMAN,
                    GREEN,
                    ((1.4, 6.4), (0.4, 7.3), (1.3, 8.2), (0.3, 9.1), (1.2, 10.0), (0.2, 10.9)),
                    2.4,
                    2.1,
                    gait="run",
                    turn_m=0.35,
                ),
            ),
        ),
        SceneSpec(
            name="enter_leave",
            description=(
                "one person walks in from the left edge, one walks out through the right "
                "edge, one enters from the right in the distance (tracks born and ended)"
            ),
            frame_count=48,
            people=(
                PersonSpec(AVERAGE_MAN, YELLOW, _line((-3.7, 7.0), 0.0, 10.0), 1.45, 1.45),
                PersonSpec(AVERAGE_WOMAN, BLUE, _line((0.9, 6.0), 0.0, 10.0), 1.4, 1.4),
                PersonSpec(BROAD_TALL, GREEN, _line((4.4, 9.6), 180.0, 10.0), 1.3, 1.4),
            ),
        ),
        SceneSpec(
            name="camera_pan",
            description=(
                "the camera pans left and trucks sideways while three people walk; everyone "
                "moves in the image, people drift out of and into view"
            ),
            frame_count=48,
            people=(
                PersonSpec(AVERAGE_WOMAN, RED, _line((0.6, 7.0), 180.0, 10.0), 1.1, 1.3),
                PersonSpec(BROAD_TALL, BLUE, _line((1.5, 9.0), 165.0, 10.0), 0.8, 1.2),
                PersonSpec(AVERAGE_MAN, YELLOW, _line((-3.8, 8.2), 10.0, 10.0), 0.9, 1.25),
            ),
            camera=CameraSpec(velocity_mps=(-0.6, 0.0, 0.0), pan_dps=9.0),
        ),
        # The second set (issue 12): scenes the tracker was not tuned on.
        SceneSpec(
            name="small_people",
            description=(
                "six people 40-90 px tall under a wide lens walk across and toward each "
                "other at 6-12 m, some crossing (small people, a group of six)"
            ),
            frame_count=60,
            people=(
                PersonSpec(AVERAGE_MAN, RED, _line((-5.0, 6.0), 10.0, 9.0), 1.3, 1.4),
                PersonSpec(AVERAGE_WOMAN, BLUE, _line((5.0, 7.0), 185.0, 9.0), 1.2, 1.35),
                PersonSpec(ATHLETE, GREEN, _line((-4.0, 9.0), 0.0, 8.0), 1.4, 1.45),
                PersonSpec(SLIM_SHORT, YELLOW, _line((4.5, 10.0), 175.0, 8.0), 1.0, 1.2),
                PersonSpec(BROAD_TALL, PURPLE, _line((-2.0, 11.5), -5.0, 7.0), 1.1, 1.35),
                PersonSpec(AVERAGE_MAN, UNIFORM, _line((1.0, 8.0), 200.0, 6.0), 0.9, 1.2),
            ),
            camera=CameraSpec(lens_mm=16.0),
        ),
        SceneSpec(
            name="back_views",
            description=(
                "two people walk away from the camera and one toward it (backs and fronts, "
                "people shrinking and growing in the image)"
            ),
            frame_count=60,
            people=(
                PersonSpec(AVERAGE_MAN, BLUE, _line((-1.0, 4.5), 90.0, 7.0), 1.1, 1.35),
                PersonSpec(AVERAGE_WOMAN, RED, _line((1.4, 11.5), 270.0, 6.5), 1.0, 1.3),
                PersonSpec(BROAD_TALL, GREEN, _line((0.3, 6.0), 80.0, 6.0), 0.9, 1.3),
            ),
            camera=CameraSpec(lens_mm=35.0),
        ),
        SceneSpec(
            name="light_clothes",
            description=(
                "three people in white, cream and pale grey cross in front of the pale "
                "ground and wall (low contrast)"
            ),
            frame_count=48,
            people=(
                PersonSpec(AVERAGE_WOMAN, WHITE, _line((-2.2, 7.0), 8.0, 8.0), 1.2, 1.35),
                PersonSpec(AVERAGE_MAN, CREAM, _line((2.3, 8.2), 188.0, 8.0), 1.15, 1.35),
                PersonSpec(SLIM_SHORT, PALE_GREY, _line((-0.5, 10.5), 60.0, 6.0), 0.7, 1.1),
            ),
        ),
        SceneSpec(
            name="long_occlusion",
            description=(
                "a walker passes behind a wide screen and is fully hidden for about two "
                "seconds; a second person walks the other way further back, in the open"
            ),
            frame_count=120,
            people=(
                PersonSpec(AVERAGE_WOMAN, GREEN, _line((-2.2, 9.5), 0.0, 8.0), 0.8, 1.1),
                PersonSpec(AVERAGE_MAN, RED, _line((3.0, 11.0), 180.0, 6.0), 0.7, 1.05),
            ),
            occluders=(Occluder("Screen", (0.0, 6.0, 1.2), (1.4, 0.3, 2.4), (0.35, 0.45, 0.6)),),
        ),
    )
}
DEFAULT_SCENES = tuple(SCENES)


@dataclass(frozen=True)
class ScenePlan:
    """A spec made concrete for one seed, length, rate and image size."""

    spec: SceneSpec
    seed: int
    fps: int
    frame_count: int
    people: list[dict]  # walk_poses.py's person entries
    cameras: list[PinholeCamera]  # one per frame
    occluders: list[dict]  # blender_scene.py's occluder entries

    @property
    def occluder_boxes(self) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
        return [(tuple(o["center_m"]), tuple(o["size_m"])) for o in self.occluders]


def scene_rng(name: str, seed: int) -> np.random.Generator:
    """Each scene varies independently of the others for the same seed."""
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def plan_scene(
    spec: SceneSpec,
    seed: int,
    frame_count: int | None = None,
    fps: int | None = None,
    size_px: tuple[int, int] = (640, 360),
) -> ScenePlan:
    """The concrete people, cameras and occluders of one scene for one seed."""
    rng = scene_rng(spec.name, seed)
    frame_count = spec.frame_count if frame_count is None else frame_count
    fps = spec.fps if fps is None else fps
    if frame_count < 1 or fps < 1:
        raise ValueError("a scene needs at least one frame and a positive frame rate")
    people = []
    for person in spec.people:
        phenotype = {
            key: float(np.clip(value + rng.uniform(-1, 1) * spec.phenotype_jitter, 0.0, 1.0))
            for key, value in person.phenotype.items()
        }
        palette = {
            region: [
                float(np.clip(c * (1.0 + rng.uniform(-1, 1) * spec.palette_jitter), 0.0, 1.0))
                for c in rgb
            ]
            for region, rgb in person.palette.items()
        }
        shift = rng.uniform(-1, 1, size=2) * spec.start_jitter_m
        waypoints = [[float(x + shift[0]), float(y + shift[1])] for x, y in person.waypoints_m]
        people.append(
            {
                "phenotype": phenotype,
                "palette": palette,
                "waypoints": waypoints,
                "turn_m": person.turn_m,
                "speed_mps": person.speed_mps * (1.0 + rng.uniform(-1, 1) * spec.speed_jitter),
                "stride_m": person.stride_m,
                "gait": person.gait,
                "phase0": float(rng.uniform(0.0, 2.0 * math.pi)),
            }
        )
    times = np.arange(frame_count) / fps
    cameras = spec.camera.at(times, *size_px)
    occluders = [dataclasses.asdict(o) for o in spec.occluders]
    return ScenePlan(spec, seed, fps, frame_count, people, cameras, occluders)
