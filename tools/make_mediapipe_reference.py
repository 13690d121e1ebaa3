"""Writes tests/fixtures/people_frame_mediapipe.npz: MediaPipe 0.10.14's own output on the
rendered fixture frame, the reference that tests/test_blazepose.py holds our LiteRT runner of
the same landmark model to.

Needs mediapipe 0.10.14 (Python 3.11 or 3.12, numpy<2), which the project no longer installs:
    python -m venv /tmp/mp && /tmp/mp/bin/pip install "numpy<2" opencv-python-headless \\
        "protobuf<5" absl-py attrs flatbuffers matplotlib
    /tmp/mp/bin/pip install --no-deps mediapipe==0.10.14
    /tmp/mp/bin/python tools/make_mediapipe_reference.py

For each fixture box, the box grown by 20% a side (at least twice as high as wide) is cut out,
upscaled to 256 px high, and MediaPipe Pose (model complexity 1, static image mode,
segmentation on) runs on it, as the lite segmenter did before it ran the model itself.
"""

import json
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> None:
    bgr = cv2.imread(str(FIXTURES / "people_frame.png"))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    height, width = rgb.shape[:2]
    boxes = json.loads((FIXTURES / "people_frame.json").read_text())
    image_px, world_m, visibility, masks = [], [], [], []
    with mp.solutions.pose.Pose(
        static_image_mode=True, model_complexity=1, enable_segmentation=True
    ) as pose:
        for x0, y0, x1, y1 in boxes:
            wanted_h = 2.0 * (x1 - x0)
            if y1 - y0 < wanted_h:
                centre = (y0 + y1) / 2
                y0, y1 = centre - wanted_h / 2, centre + wanted_h / 2
            dx, dy = 0.2 * (x1 - x0), 0.2 * (y1 - y0)
            cx0, cy0 = max(0, int(np.floor(x0 - dx))), max(0, int(np.floor(y0 - dy)))
            cx1, cy1 = min(width, int(np.ceil(x1 + dx))), min(height, int(np.ceil(y1 + dy)))
            crop = rgb[cy0:cy1, cx0:cx1]
            scale = 256 / crop.shape[0]
            resized = cv2.resize(crop, (round(crop.shape[1] * scale), 256))
            result = pose.process(resized)
            marks = result.pose_landmarks.landmark
            points = np.array(
                [[m.x * crop.shape[1] + cx0, m.y * crop.shape[0] + cy0] for m in marks]
            )
            image_px.append(points)
            visibility.append([m.visibility for m in marks])
            world_m.append([[m.x, m.y, m.z] for m in result.pose_world_landmarks.landmark])
            mask = np.zeros((height, width), dtype=bool)
            probability = cv2.resize(result.segmentation_mask, (crop.shape[1], crop.shape[0]))
            mask[cy0:cy1, cx0:cx1] = probability > 0.5
            masks.append(mask)
    np.savez_compressed(
        FIXTURES / "people_frame_mediapipe.npz",
        image_px=np.array(image_px),
        world_m=np.array(world_m),
        visibility=np.array(visibility),
        masks=np.packbits(np.array(masks), axis=-1),
        mediapipe_version=np.array(mp.__version__),
    )


if __name__ == "__main__":
    main()
