"""Pinhole camera shared by the Blender render and the ground truth (numpy only)."""

from dataclasses import dataclass

import numpy as np

# Blender cameras look down their local -Z with +Y up; OpenCV cameras look down +Z with +Y
# down. The two frames differ by a half-turn about the camera's X axis.
BLENDER_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class PinholeCamera:
    """A level-horizon camera: pitched down by `pitch_deg`, turned left by `yaw_deg`.

    Horizontal sensor fit, no lens shift, square pixels, as Blender renders it.
    """

    location_m: tuple[float, float, float]
    pitch_deg: float
    yaw_deg: float
    lens_mm: float
    sensor_width_mm: float
    width_px: int
    height_px: int

    def blender_rotation_euler(self) -> tuple[float, float, float]:
        """XYZ Euler angles (radians) of the Blender camera object."""
        return (np.radians(90.0 - self.pitch_deg), 0.0, np.radians(self.yaw_deg))

    def intrinsics(self) -> np.ndarray:
        """K (3, 3) in pixels, principal point at the image centre."""
        focal_px = self.lens_mm / self.sensor_width_mm * self.width_px
        return np.array(
            [
                [focal_px, 0.0, self.width_px / 2.0],
                [0.0, focal_px, self.height_px / 2.0],
                [0.0, 0.0, 1.0],
            ]
        )

    def world_to_camera(self) -> tuple[np.ndarray, np.ndarray]:
        """R (3, 3) and t (3,) with x_cam = R @ x_world + t in OpenCV axes."""
        rx, _, rz = self.blender_rotation_euler()
        cx, sx, cz, sz = np.cos(rx), np.sin(rx), np.cos(rz), np.sin(rz)
        rot_x = np.array([[1.0, 0.0, 0.0], [0.0, cx, -sx], [0.0, sx, cx]])
        rot_z = np.array([[cz, -sz, 0.0], [sz, cz, 0.0], [0.0, 0.0, 1.0]])
        blender_camera_to_world = rot_z @ rot_x
        opencv_camera_to_world = blender_camera_to_world @ BLENDER_TO_OPENCV_CAMERA
        rotation = opencv_camera_to_world.T
        translation = -rotation @ np.asarray(self.location_m, dtype=np.float64)
        return rotation, translation


def project(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(..., 3) camera-frame points -> (..., 2) pixel coordinates (x right, y down)."""
    uvw = points_cam @ intrinsics.T
    return uvw[..., :2] / uvw[..., 2:3]
