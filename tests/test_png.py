"""ram_core.io.png: round trips, every PNG filter type, OpenCV interop, damaged files."""

from __future__ import annotations

import itertools
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from ram_core.io.png import decode_png, encode_label_png, read_label_png, write_label_png

SIGNATURE = b"\x89PNG\r\n\x1a\n"
NONE, SUB, UP, AVERAGE, PAETH = range(5)


# A PNG writer independent of the module under test, simple enough to check by eye.


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ihdr(width: int, height: int, bit_depth: int = 8, colour_type: int = 0, interlace: int = 0):
    fields = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    return chunk(b"IHDR", fields)


def paeth(a: int, b: int, c: int) -> int:
    """The Paeth predictor exactly as the PNG specification writes it."""
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    if pb <= pc:
        return b
    return c


def reference_filter(image: np.ndarray, filter_types: list[int]) -> bytes:
    """Scanlines of a uint8/uint16 (H, W) image, row r filtered with filter_types[r]."""
    bpp = image.dtype.itemsize
    rows = [row.astype(">u2" if bpp == 2 else np.uint8).tobytes() for row in image]
    out = bytearray()
    prior = bytes(len(rows[0]))
    for raw, kind in zip(rows, filter_types, strict=True):
        out.append(kind)
        for i, x in enumerate(raw):
            a = raw[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            predictor = (0, a, b, (a + b) // 2, paeth(a, b, c))[kind]
            out.append((x - predictor) % 256)
        prior = raw
    return bytes(out)


def build_png(
    image: np.ndarray,
    filter_types: list[int],
    *,
    idat_pieces: int = 1,
    before_idat: bytes = b"",
    header: bytes | None = None,
) -> bytes:
    """A whole PNG file of ``image`` with the given per-row filters, IDAT split in pieces."""
    height, width = image.shape
    data = zlib.compress(reference_filter(image, filter_types))
    cuts = np.linspace(0, len(data), idat_pieces + 1).astype(int).tolist()
    idat = b"".join(chunk(b"IDAT", data[s:e]) for s, e in itertools.pairwise(cuts))
    if header is None:
        header = ihdr(width, height, 8 * image.dtype.itemsize)
    return SIGNATURE + header + before_idat + idat + chunk(b"IEND", b"")


def png_chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, stored CRC) of every chunk."""
    assert data[:8] == SIGNATURE
    chunks, pos = [], 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        chunks.append((kind, body, crc))
        pos += 12 + length
    return chunks


def png_filter_types(data: bytes) -> set[int]:
    chunks = png_chunks(data)
    width, _, bit_depth = struct.unpack(">IIB", chunks[0][1][:9])
    raw = zlib.decompress(b"".join(body for kind, body, _ in chunks if kind == b"IDAT"))
    return set(raw[:: 1 + width * bit_depth // 8])


def label_image(height: int, width: int, ids: list[int]) -> np.ndarray:
    """Filled ellipses (people) and rectangles (limbs) of track IDs on a zero background."""
    labels = np.zeros((height, width), dtype=np.uint16)
    yy, xx = np.ogrid[:height, :width]
    rng = np.random.default_rng(len(ids))
    for track_id in ids:
        cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.1, 0.9) * width
        ry, rx = 0.2 * height, 0.05 * width
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = track_id
        top, left = int(cy + 0.1 * height), int(cx - rx / 2)
        labels[top : top + int(0.3 * height), left : left + int(rx)] = track_id
    return labels


def sample_image(height: int, width: int, dtype: type, seed: int = 0) -> np.ndarray:
    """Noise, extremes and smooth ramps side by side, so every predictor branch is exercised."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    image = rng.integers(0, top, (height, width), endpoint=True).astype(dtype)
    yy, xx = np.mgrid[:height, :width]
    ramp = (xx * 37 + yy * 11 + xx * yy) % (top + 1)
    image[:, : width // 2] = ramp[:, : width // 2].astype(dtype)
    image[0, 0], image[-1, -1], image[height // 2, width // 2] = top, top, 0
    return image


# Round trips through our encoder.


@pytest.mark.parametrize("shape", [(1, 1), (1, 57), (43, 1), (31, 47)])
@pytest.mark.parametrize(("high", "dtype"), [(255, np.uint8), (65535, np.uint16)])
def test_round_trip_random(shape: tuple[int, int], high: int, dtype: type) -> None:
    labels = np.random.default_rng(7).integers(0, high, shape, endpoint=True)
    labels.flat[0] = high  # pins the bit depth even for a single pixel
    decoded = decode_png(encode_label_png(labels))
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, labels)


@pytest.mark.parametrize(
    ("ids", "dtype"), [([1, 2, 3, 4], np.uint8), ([7, 300, 4097, 65535], np.uint16)]
)
def test_round_trip_label_images(ids: list[int], dtype: type) -> None:
    labels = label_image(360, 640, ids)
    for level in (0, 1, 6, 9):
        decoded = decode_png(encode_label_png(labels, compression_level=level))
        assert decoded.dtype == dtype
        np.testing.assert_array_equal(decoded, labels)


def test_bit_depth_follows_the_values_not_the_dtype() -> None:
    small = np.full((4, 5), 255, dtype=np.int64)
    assert decode_png(encode_label_png(small)).dtype == np.uint8
    large = np.full((4, 5), 256, dtype=np.uint16)
    assert decode_png(encode_label_png(large)).dtype == np.uint16
    mask = np.eye(6, dtype=bool)
    np.testing.assert_array_equal(decode_png(encode_label_png(mask)), mask.astype(np.uint8))


def test_encoder_writes_up_filtered_greyscale_with_valid_chunks() -> None:
    labels = label_image(90, 120, [3, 900])
    data = encode_label_png(labels)
    chunks = png_chunks(data)
    kinds = [kind for kind, _, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and set(kinds[1:-1]) == {b"IDAT"}
    for kind, body, crc in chunks:
        assert zlib.crc32(kind + body) == crc
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (120, 90, 16, 0, 0, 0, 0)
    assert png_filter_types(data) == {UP}


def test_identical_rows_compress_to_almost_nothing() -> None:
    row = np.random.default_rng(3).integers(0, 256, 700)
    data = encode_label_png(np.tile(row, (500, 1)))
    # 350 KB of scanlines: one incompressible row (~700 bytes), then 499 rows that are all zero
    # after the Up filter, which deflate squeezes towards its ~1:1032 limit.
    assert len(data) < 0.01 * 500 * 701


def test_incompressible_image_spans_several_idat_chunks() -> None:
    labels = np.random.default_rng(5).integers(0, 65536, (700, 800))
    data = encode_label_png(labels, compression_level=0)
    assert [kind for kind, _, _ in png_chunks(data)].count(b"IDAT") >= 2
    np.testing.assert_array_equal(decode_png(data), labels)


def test_read_and_write_label_png(tmp_path: Path) -> None:
    labels = label_image(48, 64, [1, 2, 65535])
    write_label_png(tmp_path / "a.png", labels)
    np.testing.assert_array_equal(read_label_png(tmp_path / "a.png"), labels)
    write_label_png(str(tmp_path / "b.png"), labels, compression_level=9)
    np.testing.assert_array_equal(read_label_png(str(tmp_path / "b.png")), labels)


def test_full_hd_16_bit_label_image() -> None:
    labels = label_image(1080, 1920, [301, 302, 1303, 40004])
    decoded = decode_png(encode_label_png(labels))
    assert decoded.shape == (1080, 1920) and decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, labels)


# Every filter type, from the reference filter encoder above.


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("filters", ["none", "sub", "up", "average", "paeth", "mixed"])
def test_each_filter_type(filters: str, dtype: type) -> None:
    image = sample_image(19, 23, dtype)
    if filters == "mixed":
        filter_types = [(3 * r + r // 5) % 5 for r in range(19)]
        assert set(filter_types) == {NONE, SUB, UP, AVERAGE, PAETH}
    else:
        filter_types = [["none", "sub", "up", "average", "paeth"].index(filters)] * 19
    decoded = decode_png(build_png(image, filter_types))
    assert decoded.dtype == dtype
    np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("width", [3, 90])
def test_long_runs_of_mixed_filters(width: int, dtype: type) -> None:
    # Runs of fast rows longer than the width between Average/Paeth rows, and Average/Paeth
    # stretches taller than one wavefront pass, in the same image.
    height = 230
    rng = np.random.default_rng(width)
    filter_types = rng.integers(0, 5, height).tolist()
    filter_types[20:120] = [UP] * 60 + [SUB, UP, NONE, UP] * 10
    image = sample_image(height, width, dtype, seed=width)
    image[150:170] = image[149]  # flat stretch: Paeth and Average then predict from the left
    np.testing.assert_array_equal(decode_png(build_png(image, filter_types)), image)


def test_idat_split_and_ancillary_chunks_are_handled() -> None:
    image = sample_image(12, 9, np.uint16)
    extra = chunk(b"tEXt", b"Comment\x00hello") + chunk(b"pHYs", bytes(9))
    data = build_png(image, [PAETH] * 12, idat_pieces=4, before_idat=extra)
    data += b"trailing bytes after IEND"
    np.testing.assert_array_equal(decode_png(data), image)


def test_reference_files_read_by_opencv() -> None:
    # Cross-checks the reference filter encoder against libpng.
    cv2 = pytest.importorskip("cv2")
    image = sample_image(19, 23, np.uint16)
    data = build_png(image, [(3 * r + r // 5) % 5 for r in range(19)])
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, image)


# Interop with OpenCV (libpng).


def opencv_images(dtype: type) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[:60, :80]
    wave = 0.5 + 0.4 * np.sin(xx / 9.0) * np.cos(yy / 7.0)
    return {
        "noise": rng.integers(0, top, (60, 80), endpoint=True).astype(dtype),
        "gradient": ((xx * 3 + yy * 2 + (xx * yy) // 7) * (top // 255) % (top + 1)).astype(dtype),
        "smooth": (wave * top + rng.integers(0, 4, (60, 80))).astype(dtype),
        "labels": label_image(120, 200, [1, 2, 3] if dtype == np.uint8 else [1, 300, 65535]),
    }


@pytest.mark.parametrize("level", [0, 1, 3, 9])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_decodes_files_written_by_opencv(tmp_path: Path, level: int, dtype: type) -> None:
    cv2 = pytest.importorskip("cv2")
    params = [cv2.IMWRITE_PNG_COMPRESSION, level]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):
        # OpenCV 4.12+ can be told to let libpng pick any filter per row; 4.11 does once a
        # compression level is given.
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_ALL_FILTERS]
    seen_filters: set[int] = set()
    for name, image in opencv_images(dtype).items():
        path = tmp_path / f"{name}.png"
        assert cv2.imwrite(str(path), image.astype(dtype), params)
        expected = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        decoded = read_label_png(path)
        assert decoded.dtype == expected.dtype == dtype
        np.testing.assert_array_equal(decoded, expected)
        seen_filters |= png_filter_types(path.read_bytes())
    assert {SUB, UP, AVERAGE, PAETH} <= seen_filters, "libpng should have used every filter"


@pytest.mark.parametrize(("ids", "dtype"), [([1, 2, 3], np.uint8), ([5, 256, 65535], np.uint16)])
def test_opencv_reads_our_files(tmp_path: Path, ids: list[int], dtype: type) -> None:
    cv2 = pytest.importorskip("cv2")
    for index, labels in enumerate([label_image(120, 200, ids), label_image(1, 1, ids[-1:])]):
        labels.flat[0] = ids[-1]
        path = tmp_path / f"{index}.png"
        write_label_png(path, labels)
        read_back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        assert read_back.dtype == dtype
        np.testing.assert_array_equal(read_back, labels)
    noise = np.random.default_rng(2).integers(0, np.iinfo(dtype).max, (50, 70), endpoint=True)
    read_back = cv2.imdecode(np.frombuffer(encode_label_png(noise), np.uint8), -1)
    np.testing.assert_array_equal(read_back, noise)


# Damaged and unsupported files.


def valid_file() -> bytes:
    return build_png(sample_image(6, 7, np.uint8), [NONE, SUB, UP, AVERAGE, PAETH, UP])


def test_valid_file_decodes() -> None:
    np.testing.assert_array_equal(decode_png(valid_file()), sample_image(6, 7, np.uint8))


@pytest.mark.parametrize("data", [b"", b"\x89PNG", b"GIF89a" + bytes(40), b"\x89PNG\r\n\x1b\n"])
def test_bad_signature(data: bytes) -> None:
    with pytest.raises(ValueError, match="signature"):
        decode_png(data)


@pytest.mark.parametrize("keep", [8, 12, 20, 33 + 10, -13, -12, -1])
def test_truncated_file(keep: int) -> None:
    data = valid_file()
    with pytest.raises(ValueError, match="truncated"):
        decode_png(data[:keep])


@pytest.mark.parametrize("where", ["IHDR data", "IDAT data", "IDAT crc", "IEND crc"])
def test_corrupted_crc(where: str) -> None:
    data = bytearray(valid_file())
    offsets = {"IHDR data": 8 + 8 + 3, "IDAT data": 33 + 8 + 2, "IDAT crc": -13, "IEND crc": -1}
    data[offsets[where]] ^= 0x40
    with pytest.raises(ValueError, match="CRC"):
        decode_png(bytes(data))


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (ihdr(7, 6, colour_type=2), "colour type 2"),
        (ihdr(7, 6, colour_type=3), "colour type 3"),
        (ihdr(7, 6, bit_depth=4), "bit depth 4"),
        (ihdr(7, 6, bit_depth=1), "bit depth 1"),
        (ihdr(7, 6, interlace=1), "interlace"),
        (ihdr(0, 6), "size"),
    ],
)
def test_unsupported_header(header: bytes, message: str) -> None:
    data = build_png(sample_image(6, 7, np.uint8), [NONE] * 6, header=header)
    with pytest.raises(ValueError, match=message):
        decode_png(data)


def test_unknown_filter_type() -> None:
    image = sample_image(4, 5, np.uint8)
    scanlines = bytearray(reference_filter(image, [UP] * 4))
    scanlines[2 * 6] = 5
    data = SIGNATURE + ihdr(5, 4) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="row 2 has unknown filter type 5"):
        decode_png(data)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (zlib.compress(bytes(4 * 6 - 1)), "decompresses to 23 bytes"),
        (zlib.compress(bytes(4 * 6 + 1)), "more than"),
        (zlib.compress(bytes(4 * 6))[:-2], "truncated"),
        (b"definitely not zlib", "zlib"),
        # So incompressible that the decoder must inflate with an output limit.
        (zlib.compress(np.random.default_rng(0).bytes(100_000), 0), "more than the 24 bytes"),
    ],
)
def test_wrong_image_data_size(payload: bytes, message: str) -> None:
    data = SIGNATURE + ihdr(5, 4) + chunk(b"IDAT", payload) + chunk(b"IEND", b"")
    with pytest.raises(ValueError, match=message):
        decode_png(data)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (ihdr(1, 1) + chunk(b"IEND", b""), "no IDAT"),
        (chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""), "first chunk"),
        (ihdr(1, 1) + chunk(b"PLTE", bytes(3)) + chunk(b"IEND", b""), "critical chunk"),
        (ihdr(1, 1) + ihdr(1, 1) + chunk(b"IEND", b""), "more than one IHDR"),
    ],
)
def test_malformed_chunk_sequence(chunks: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode_png(SIGNATURE + chunks)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.zeros(5, dtype=np.uint8), "2-D"),
        (np.zeros((2, 3, 1), dtype=np.uint8), "2-D"),
        (np.zeros((0, 4), dtype=np.uint8), "empty"),
        (np.array([[0, -1]]), "0..65535"),
        (np.array([[0, 65536]]), "0..65535"),
        (np.zeros((2, 2), dtype=np.float32), "integer or bool"),
        (np.array([[1, None]], dtype=object), "integer or bool"),
    ],
)
def test_encoder_rejects_bad_labels(labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_label_png(labels)


@pytest.mark.parametrize("level", [-1, 10, 2.0, True])
def test_encoder_rejects_bad_compression_level(level: object) -> None:
    with pytest.raises(ValueError, match="compression_level"):
        encode_label_png(np.zeros((2, 2), dtype=np.uint8), compression_level=level)  # type: ignore[arg-type]
