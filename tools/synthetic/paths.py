"""Where a walker stands and which way it faces at each distance along its path (numpy only).

Anny bodies face -Y; a body's yaw (about +Z) turns that front onto the walking direction.
Headings are in the ground plane: 0 walks along +X, 90° along +Y.
"""

import math

import numpy as np


def straight_path(
    start_xy: np.ndarray, heading_deg: float, distance_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A straight walk: (T,) distances -> ground points (T, 2) and body yaw (T,) in radians."""
    heading = math.radians(float(heading_deg))
    direction = np.array([math.cos(heading), math.sin(heading)])
    yaw = math.atan2(direction[0], -direction[1])
    ground_xy = np.asarray(start_xy, dtype=np.float64)[None] + distance_m[:, None] * direction
    return ground_xy, np.full(len(distance_m), yaw)


def polyline_path(
    waypoints_xy: np.ndarray, distance_m: np.ndarray, turn_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """A walk through waypoints (N, 2), N >= 2: (T,) distances -> ground (T, 2), yaw (T,).

    The feet follow the polyline; past its end the walker keeps going along the last leg.
    At each corner the body turns gradually over `turn_m` of path centred on the corner
    (a quick turn is a short `turn_m`), so the yaw never jumps between frames.
    """
    points = np.asarray(waypoints_xy, dtype=np.float64)
    legs = np.diff(points, axis=0)
    leg_length = np.linalg.norm(legs, axis=1)
    if len(points) < 2 or np.any(leg_length <= 0.0):
        raise ValueError("a path needs at least two distinct consecutive waypoints")
    corner_at = np.concatenate([[0.0], np.cumsum(leg_length)])  # arc length of each waypoint
    leg = np.clip(np.searchsorted(corner_at, distance_m, side="right") - 1, 0, len(legs) - 1)
    along = distance_m - corner_at[leg]
    ground_xy = points[leg] + along[:, None] * (legs[leg] / leg_length[leg, None])

    leg_heading = np.unwrap(np.arctan2(legs[:, 1], legs[:, 0]))
    heading = np.full(len(distance_m), leg_heading[0])
    for corner in range(1, len(legs)):
        # Ramp from the previous leg's heading to this leg's across the turn window.
        share = np.clip((distance_m - corner_at[corner]) / max(turn_m, 1e-6) + 0.5, 0.0, 1.0)
        heading = heading + share * (leg_heading[corner] - leg_heading[corner - 1])
    yaw = heading + math.pi / 2.0  # the front (-Y) turned onto (cos h, sin h)
    return ground_xy, yaw


def yaw_rotations(yaw_rad: np.ndarray) -> np.ndarray:
    """(T,) yaw angles -> (T, 3, 3) rotations about +Z."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    rotation = np.zeros((len(yaw_rad), 3, 3))
    rotation[:, 0, 0], rotation[:, 0, 1] = c, -s
    rotation[:, 1, 0], rotation[:, 1, 1] = s, c
    rotation[:, 2, 2] = 1.0
    return rotation
