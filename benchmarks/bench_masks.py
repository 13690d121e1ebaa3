"""Mask label images: our numpy-only PNG codec (what Blender reads with) against OpenCV.

A 1080p label image with a few person-sized blobs, as a result folder holds one per frame,
encoded and decoded both ways in the same run (median of repeats), plus ``read_mask`` with
and without an edit log to remap through: the cost of showing one frame's masks in Blender.
Files written by older results (OpenCV's, with libpng's adaptive filters) are decoded too.

    .venv/bin/python benchmarks/bench_masks.py [--repeats 15] [--height 1080 --width 1920]

Writes benchmarks/results/masks.md. Absolute times belong to the machine named in the
table; the ratios measured in the same run are the headline.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def person_labels(height: int, width: int, people: int = 4, first_id: int = 301) -> np.ndarray:
    """(H, W) uint16: upright ellipses for bodies and circles for heads, nearer ones on top."""
    rows, cols = np.mgrid[0:height, 0:width]
    labels = np.zeros((height, width), np.uint16)
    rng = np.random.default_rng(0)
    for person in range(people):
        cx = width * (person + 0.5) / people + rng.uniform(-20, 20)
        body_h = height * rng.uniform(0.35, 0.6)
        cy = height * 0.6
        body = ((cols - cx) / (body_h * 0.18)) ** 2 + ((rows - cy) / (body_h / 2)) ** 2 <= 1
        head = (cols - cx) ** 2 + (rows - (cy - body_h * 0.6)) ** 2 <= (body_h * 0.1) ** 2
        labels[body | head] = first_id + person
    return labels


def median_ms(work: Callable[[], object], repeats: int) -> float:
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return 1000.0 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--width", type=int, default=1920)
    parser.add_argument("--output", type=Path, default=RESULTS / "masks.md")
    args = parser.parse_args()

    import cv2

    from ram_core.io.edits import append_edit
    from ram_core.io.png import decode_png, encode_label_png
    from ram_core.io.result import MASK_COMPRESSION_LEVEL, read_mask

    labels = person_labels(args.height, args.width)
    level = MASK_COMPRESSION_LEVEL
    ours = encode_label_png(labels, level)
    ok, theirs = cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, level])
    assert ok
    theirs = theirs.tobytes()
    assert np.array_equal(decode_png(ours), labels) and np.array_equal(decode_png(theirs), labels)

    def cv2_decode(data: bytes):
        return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)

    def encode_ours():
        return encode_label_png(labels, level)

    def encode_theirs():
        return cv2.imencode(".png", labels, [cv2.IMWRITE_PNG_COMPRESSION, level])

    old_file = "decode an OpenCV file (older results)"
    rows = [
        ("encode", "ours (numpy + zlib)", median_ms(encode_ours, args.repeats), len(ours)),
        ("encode", "OpenCV", median_ms(encode_theirs, args.repeats), len(theirs)),
        ("decode our file", "ours", median_ms(lambda: decode_png(ours), args.repeats), len(ours)),
        ("decode our file", "OpenCV", median_ms(lambda: cv2_decode(ours), args.repeats), len(ours)),
        (old_file, "ours", median_ms(lambda: decode_png(theirs), args.repeats), len(theirs)),
        (old_file, "OpenCV", median_ms(lambda: cv2_decode(theirs), args.repeats), len(theirs)),
    ]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "clip.ram"
        (folder / "masks").mkdir(parents=True)
        (folder / "masks" / "000000.png").write_bytes(ours)
        (folder / "edits.json").write_text('{"format": "ram-edits", "version": 1, "edits": []}')
        plain = median_ms(lambda: read_mask(folder, 0), args.repeats)
        for _ in range(10):
            append_edit(folder, {"op": "swap", "track_a": 301, "track_b": 302, "from_frame": 0})
        edited = median_ms(lambda: read_mask(folder, 0), args.repeats)
    rows += [
        ("`read_mask`, no edits", "ours", plain, len(ours)),
        ("`read_mask`, 10 edits to remap through", "ours", edited, len(ours)),
    ]

    table = [
        f"# Mask label images, {args.width}x{args.height} uint16, zlib level {level}",
        "",
        f"Machine: {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, numpy {np.__version__}, OpenCV {cv2.__version__}; "
        f"median of {args.repeats}.",
        "",
        "| step | by | ms | file bytes |",
        "|---|---|---:|---:|",
        *(f"| {step} | {who} | {ms:.2f} | {size:,} |" for step, who, ms, size in rows),
        "",
        f"Ours / OpenCV, same run: encode {rows[0][2] / rows[1][2]:.2f}x, decode of our file "
        f"{rows[2][2] / rows[3][2]:.2f}x, decode of an OpenCV file "
        f"{rows[4][2] / rows[5][2]:.2f}x.",
    ]
    text = "\n".join(table) + "\n"
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
