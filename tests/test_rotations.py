"""Rotation math checked against scipy.spatial.transform (scipy only in tests)."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from ram_core.body import rotations as rot


def _random_aa(rng: np.random.Generator, n: int) -> np.ndarray:
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return axes * rng.uniform(0.0, np.pi, size=(n, 1))


def _edge_aa() -> np.ndarray:
    """Angles at 0, tiny, and at / just below pi, on several axes."""
    axes = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [-1, 2, 0.5]], dtype=float)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = [0.0, 1e-12, 1e-7, 1e-4, np.pi - 1e-7, np.pi - 1e-4, np.pi]
    return np.concatenate([axes * a for a in angles])


def test_axis_angle_to_matrix_matches_scipy():
    aa = np.concatenate([_random_aa(np.random.default_rng(0), 200), _edge_aa()])
    np.testing.assert_allclose(
        rot.axis_angle_to_matrix(aa), Rotation.from_rotvec(aa).as_matrix(), atol=1e-12
    )


def test_matrix_to_axis_angle_round_trips_as_rotation():
    aa = np.concatenate([_random_aa(np.random.default_rng(1), 200), _edge_aa()])
    R = Rotation.from_rotvec(aa).as_matrix()
    back = rot.matrix_to_axis_angle(R)
    # At exactly pi the sign of the axis is ambiguous: compare as rotations.
    np.testing.assert_allclose(rot.axis_angle_to_matrix(back), R, atol=1e-9)
    assert np.all(np.linalg.norm(back, axis=1) <= np.pi + 1e-12)
    away_from_pi = np.linalg.norm(aa, axis=1) < np.pi - 1e-3
    np.testing.assert_allclose(back[away_from_pi], aa[away_from_pi], atol=1e-9)


def test_quaternion_conversions_match_scipy():
    aa = np.concatenate([_random_aa(np.random.default_rng(2), 200), _edge_aa()])
    scipy_q = Rotation.from_rotvec(aa).as_quat()  # (x, y, z, w)
    expected = rot.canonical_quaternion(scipy_q[:, [3, 0, 1, 2]])
    np.testing.assert_allclose(
        rot.canonical_quaternion(rot.axis_angle_to_quaternion(aa)), expected, atol=1e-12
    )
    R = Rotation.from_rotvec(aa).as_matrix()
    from_matrix = rot.matrix_to_quaternion(R)
    # Near w == 0 both signs are canonical up to rounding: compare up to sign.
    sign = np.sign(np.sum(from_matrix * expected, axis=1, keepdims=True))
    np.testing.assert_allclose(from_matrix * sign, expected, atol=1e-9)
    np.testing.assert_allclose(rot.quaternion_to_matrix(expected), R, atol=1e-12)


def test_quaternion_multiply_composes_like_matrices():
    rng = np.random.default_rng(3)
    a, b = _random_aa(rng, 50), _random_aa(rng, 50)
    q = rot.quaternion_multiply(rot.axis_angle_to_quaternion(a), rot.axis_angle_to_quaternion(b))
    expected = rot.axis_angle_to_matrix(a) @ rot.axis_angle_to_matrix(b)
    np.testing.assert_allclose(rot.quaternion_to_matrix(q), expected, atol=1e-12)


def test_log_exp_inverse_and_small_angle_precision():
    aa = np.array([[1e-9, -2e-9, 3e-10], [0.0, 0.0, 0.0], [1e-5, 0.0, 0.0]])
    np.testing.assert_allclose(rot.so3_log(rot.so3_exp(aa)), aa, rtol=1e-6, atol=1e-15)


def test_slerp_matches_scipy_and_takes_the_short_way():
    rng = np.random.default_rng(4)
    for _ in range(20):
        pair = _random_aa(rng, 2)
        key_rots = Rotation.from_rotvec(pair)
        times = np.linspace(0.0, 1.0, 7)
        expected = Slerp([0.0, 1.0], key_rots)(times).as_matrix()
        q0, q1 = rot.axis_angle_to_quaternion(pair)
        got = rot.quaternion_to_matrix(rot.quaternion_slerp(q0, -q1, times))  # -q1: antipodal
        np.testing.assert_allclose(got, expected, atol=1e-9)


def test_slerp_tiny_angle_and_identical_inputs():
    q0 = rot.axis_angle_to_quaternion(np.array([0.3, 0.2, -0.1]))
    q1 = rot.axis_angle_to_quaternion(np.array([0.3, 0.2, -0.1 + 1e-10]))
    mid = rot.quaternion_slerp(q0, q1, 0.5)
    assert np.all(np.isfinite(mid))
    np.testing.assert_allclose(mid, q0, atol=1e-9)
    np.testing.assert_allclose(rot.quaternion_slerp(q0, q0, 0.3), q0, atol=1e-15)


def test_slerp_axis_angle_endpoints_exact_and_midpoint_geodesic():
    rng = np.random.default_rng(5)
    a, b = _random_aa(rng, 30), _random_aa(rng, 30)
    np.testing.assert_array_equal(rot.slerp_axis_angle(a, b, 0.0), a)
    np.testing.assert_array_equal(rot.slerp_axis_angle(a, b, 1.0), b)
    mid = rot.slerp_axis_angle(a, b, 0.5)
    d_am = rot.axis_angle_distance(a, mid)
    d_mb = rot.axis_angle_distance(mid, b)
    np.testing.assert_allclose(d_am, d_mb, atol=1e-9)
    np.testing.assert_allclose(d_am + d_mb, rot.axis_angle_distance(a, b), atol=1e-9)


def test_distance_matches_scipy_magnitude():
    rng = np.random.default_rng(6)
    a, b = _random_aa(rng, 100), _random_aa(rng, 100)
    expected = (Rotation.from_rotvec(a).inv() * Rotation.from_rotvec(b)).magnitude()
    np.testing.assert_allclose(rot.axis_angle_distance(a, b), expected, atol=1e-9)
    Ra, Rb = rot.axis_angle_to_matrix(a), rot.axis_angle_to_matrix(b)
    np.testing.assert_allclose(rot.geodesic_angle(Ra, Rb), expected, atol=1e-9)


def test_rot6d_round_trip():
    R = Rotation.from_rotvec(_random_aa(np.random.default_rng(7), 50)).as_matrix()
    np.testing.assert_allclose(rot.rot6d_to_matrix(rot.matrix_to_rot6d(R)), R, atol=1e-12)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
        ([0.0, 0.0, 1.0], [0.0, 0.0, 1.0]),
        ([0.0, 1.0, 0.0], [0.0, -1.0, 0.0]),
        ([0.3, -0.4, 0.8], [-0.3, 0.4, -0.8]),
        ([0.3, -0.4, 0.8], [0.5, 0.1, 0.2]),
    ],
)
def test_rotation_between_vectors(a, b):
    a, b = np.array(a), np.array(b)
    R = rot.rotation_between_vectors(a, b)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(R @ (a / np.linalg.norm(a)), b / np.linalg.norm(b), atol=1e-12)
    # Minimal: the rotation angle equals the angle between the vectors.
    cos = np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)
    angle = np.linalg.norm(rot.matrix_to_axis_angle(R))
    assert angle == pytest.approx(np.arccos(np.clip(cos, -1, 1)), abs=1e-9)
