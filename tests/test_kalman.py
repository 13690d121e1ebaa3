import numpy as np
from filterpy.kalman import KalmanFilter

from ram_core.detect.boxes import iou_matrix, mask_box, xyah_to_xyxy, xyxy_to_xyah
from ram_core.track import kalman


def test_kalman_agrees_with_filterpy_on_the_same_model():
    rng = np.random.default_rng(0)
    truth = np.array([100.0, 200.0, 0.4, 180.0])
    velocity = np.array([3.0, -1.0, 0.0, 0.5])
    first = truth + rng.normal(0, 2, 4)

    mean, cov = kalman.initiate(first)
    reference = KalmanFilter(dim_x=8, dim_z=4)
    reference.F = kalman.TRANSITION.copy()
    reference.H = kalman.OBSERVATION.copy()
    reference.x = mean.copy()
    reference.P = cov.copy()

    for step in range(1, 40):
        # Both use the noise of the current height, as DeepSORT does.
        reference.Q = kalman.process_noise(reference.x[3])
        reference.predict()
        mean, cov = kalman.predict(mean, cov)
        np.testing.assert_allclose(mean, reference.x, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(cov, reference.P, rtol=1e-9, atol=1e-9)
        if step % 7 == 0:
            continue  # a missed frame: predict only
        z = truth + step * velocity + rng.normal(0, 2, 4) * [1, 1, 0.01, 1]
        reference.R = kalman.measurement_noise(reference.x[3])
        reference.update(z)
        mean, cov = kalman.update(mean, cov, z)
        np.testing.assert_allclose(mean, reference.x, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(cov, reference.P, rtol=1e-7, atol=1e-7)

    # It has learned the velocity.
    np.testing.assert_allclose(mean[4:6], velocity[:2], atol=0.5)


def test_gate_widens_while_a_track_coasts():
    mean, cov = kalman.initiate(np.array([100.0, 100.0, 0.5, 100.0]))
    far = np.array([[140.0, 100.0]])
    d0 = kalman.position_distance(mean, cov, far)[0]
    for _ in range(20):
        mean, cov = kalman.predict(mean, cov)
    assert kalman.position_distance(mean, cov, far)[0] < d0


def test_box_conversions_and_iou():
    box = np.array([10.0, 20.0, 50.0, 120.0])
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(box)), box)
    shifted = [box + np.array([dx, 0, dx, 0]) for dx in (0, 20, 100)]
    ious = iou_matrix(box, np.array(shifted))
    np.testing.assert_allclose(ious[0], [1.0, 2000 / 6000, 0.0])
    mask = np.zeros((50, 60), bool)
    mask[5:9, 10:30] = True
    np.testing.assert_array_equal(mask_box(mask), [10, 5, 30, 9])
    assert mask_box(np.zeros((3, 3), bool)) is None


def test_the_gates_extent_is_the_box_around_its_ellipse():
    mean, cov = kalman.initiate(np.array([100.0, 80.0, 0.4, 120.0]))
    cov[0, 1] = cov[1, 0] = 0.5 * np.sqrt(cov[0, 0] * cov[1, 1])  # a tilted ellipse
    chi2 = 9.21
    half_w, half_h = kalman.gate_half_extent(mean, cov, chi2)
    _, s = kalman.project(mean, cov)
    # The ellipse's rightmost and lowest points lie on the gate, at the extent.
    right = mean[:2] + np.array([half_w, s[0, 1] / s[0, 0] * half_w])
    low = mean[:2] + np.array([s[0, 1] / s[1, 1] * half_h, half_h])
    np.testing.assert_allclose(kalman.position_distance(mean, cov, np.array([right, low])), chi2)
    # Nothing beyond the extent passes the gate.
    rng = np.random.default_rng(0)
    extent = np.array([half_w, half_h])
    outside = mean[:2] + rng.uniform(-3, 3, size=(500, 2)) * extent
    beyond = (np.abs(outside - mean[:2]) > extent).any(axis=1)
    assert (kalman.position_distance(mean, cov, outside)[beyond] > chi2).all()
