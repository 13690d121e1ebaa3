"""Writes tests/fixtures/vfr_clip.mp4, a variable-frame-rate clip as phones write them, and
vfr_clip.json, the decoded frame Blender's movie strip shows at each strip frame.

40 frames of 128x64 in a 30 fps H.264 stream; frames 10 to 19 are 1/15 s apart (a slow
stretch), the others 1/30 s. Each frame shows its own index in binary: eight 16-pixel
columns, white for a 1 bit (lowest bit on the left), so a test can read which frame it sees
after compression. The strip plays 50 frames on the 30 fps grid and shows each frame at or
before its time: frames 10 to 19 twice (``ram_core.video.timing``; measured with bpy 4.2 and
5.2, and checked by ``tests/blender/test_video_import.py``).

    .venv/bin/python tools/make_vfr_fixture.py
"""

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
FRAMES, SLOW = 40, range(10, 20)
RATE, TICKS = 30, 90000


def frame_image(index: int) -> np.ndarray:
    image = np.zeros((64, 128, 3), np.uint8)
    for bit in range(8):
        if (index >> bit) & 1:
            image[:, bit * 16 : (bit + 1) * 16] = 255
    return image


def main() -> None:
    path = FIXTURES / "vfr_clip.mp4"
    times = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=RATE)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, TICKS)
        t = Fraction(0)
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(frame_image(index), format="rgb24")
            frame.pts, frame.time_base = round(t * TICKS), Fraction(1, TICKS)
            times.append(float(t))
            container.mux(stream.encode(frame))
            t += Fraction(2 if index in SLOW else 1, RATE)
        container.mux(stream.encode())
    span = float(t)  # first frame to the end of the last
    grid = np.arange(round(span * RATE)) / RATE
    shown = np.searchsorted(np.array(times), grid + 1e-6, side="right") - 1
    (FIXTURES / "vfr_clip.json").write_text(
        json.dumps({"fps": RATE, "decoded_frames": FRAMES, "strip_shows": shown.tolist()}) + "\n"
    )
    print(path, path.stat().st_size, "bytes;", len(shown), "strip frames")


if __name__ == "__main__":
    main()
