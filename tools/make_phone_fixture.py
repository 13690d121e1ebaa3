"""Writes tests/fixtures/phone_turned.mp4: four 640x360 frames stored sideways with a
rotation tag of 90 degrees (as a phone writes them), a red block in the upright picture's
top-left corner. For the Blender tests, whose environments have no OpenCV.

    .venv/bin/python tools/make_phone_fixture.py
"""

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from rotated_video import write_turned_video  # noqa: E402


def main() -> None:
    upright = []
    for _ in range(4):
        frame = np.full((360, 640, 3), 40, np.uint8)
        frame[:60, :90] = (230, 30, 30)
        upright.append(frame)
    path = write_turned_video(ROOT / "tests" / "fixtures" / "phone_turned.mp4", upright, 90)
    print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main()
