"""PNG encoder and decoder for greyscale label images, with zlib, struct and numpy only.

Blender's Python has no cv2, PIL or scipy, yet it must read and write the mask label images
of a result folder (track ID per pixel, 0 = background), so this module stands alone.

The encoder writes greyscale PNGs (colour type 0), 8-bit when every label is below 256 and
16-bit otherwise, with filter type 2 (Up) on every scanline: rows of a label image mostly
repeat the row above, so the filtered data is nearly all zeros and compresses to almost
nothing, and decoding is a running sum down the image (one vectorised add per row).

The decoder reads any valid, non-interlaced, 8- or 16-bit greyscale PNG, whichever of the
five scanline filters each row uses, because masks written earlier by OpenCV (libpng picks a
filter per row adaptively) must stay readable. Rows filtered with None, Sub or Up decode a
whole row (or all Sub rows) per numpy call; runs of rows containing Average or Paeth, whose
bytes depend on the decoded byte to their left, decode along anti-diagonals (a wavefront), so
numpy does the work of each diagonal at once and Python loops only over diagonals, never over
pixels.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_LABEL = 65535

_COLOUR_TYPE_GREY = 0
_FILTER_NONE, _FILTER_SUB, _FILTER_UP, _FILTER_AVERAGE, _FILTER_PAETH = range(5)
# Any IDAT size up to 2**31 - 1 is legal; 1 MiB keeps the chunk count (and per-chunk CRC
# and header overhead) low while staying friendly to readers that buffer one chunk at a time.
_IDAT_CHUNK_BYTES = 1 << 20
# Deflate can expand at most ~1032:1 (a 258-byte match in 2 bits), so the compressed size bounds
# what inflating can allocate; below this many bytes, the unbounded one-shot inflate is allowed.
_DEFLATE_MAX_RATIO = 1032
_UNBOUNDED_INFLATE_BYTES = 64 << 20
_MAX_CHUNK_LENGTH = 2**31 - 1
_IHDR = struct.Struct(">IIBBBBB")
_CHUNK_HEADER = struct.Struct(">I4s")
_CRC = struct.Struct(">I")
# A wavefront pass costs one numpy step per anti-diagonal, i.e. about (rows + width) steps.
# Starting a new pass costs ~width steps, so fast rows between two Average/Paeth rows are
# folded into the same pass unless the run of fast rows is longer than the image is wide.
# Passes are capped in height because the skewed int32 buffer of a pass holds (rows + width)
# diagonals of (rows + 1) cells: with rows <= width it stays within 8x the pass's own bytes
# (images narrower than 64 pixels excepted, where it is small anyway).
_WAVEFRONT_MIN_HEIGHT = 64
_WAVEFRONT_MAX_HEIGHT = 2048
# The wavefront's predictor table is indexed by b - c and a - c, each in -255..255.
_TABLE_SIDE = 511
_TABLE_CENTRE = 255 * _TABLE_SIDE + 255


def encode_label_png(labels: np.ndarray, compression_level: int = 6) -> bytes:
    """Encode a label image as a greyscale PNG file's bytes.

    labels: (H, W) integer or bool array, non-empty, values in 0..65535. The PNG is 8-bit when
    every value is below 256, else 16-bit. compression_level: zlib level 0 (none) to 9 (best).
    Raises ValueError for any other input.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"Label image must be a 2-D (H, W) array, got shape {labels.shape}.")
    if labels.size == 0:
        raise ValueError(f"Label image must not be empty, got shape {labels.shape}.")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise ValueError(f"Label image must have an integer or bool dtype, got {labels.dtype}.")
    if (
        isinstance(compression_level, bool)
        or not isinstance(compression_level, int | np.integer)
        or not 0 <= compression_level <= 9
    ):
        raise ValueError(f"compression_level must be an int in 0..9, got {compression_level!r}.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > MAX_LABEL:
        raise ValueError(f"Labels must be in 0..{MAX_LABEL}, got values in {low}..{high}.")

    height, width = labels.shape
    if high < 256:
        bit_depth = 8
        planes = labels.astype(np.uint8)
    else:
        bit_depth = 16
        # PNG stores 16-bit samples big-endian; each pixel becomes two adjacent bytes.
        planes = labels.astype(">u2").view(np.uint8).reshape(height, width * 2)
    scanlines = np.empty((height, 1 + planes.shape[1]), dtype=np.uint8)
    scanlines[:, 0] = _FILTER_UP
    scanlines[0, 1:] = planes[0]  # the row above the first row is all zeros
    # uint8 subtraction wraps modulo 256, exactly as the PNG filter arithmetic does.
    np.subtract(planes[1:], planes[:-1], out=scanlines[1:, 1:])
    compressed = zlib.compress(scanlines, int(compression_level))

    header = _IHDR.pack(width, height, bit_depth, _COLOUR_TYPE_GREY, 0, 0, 0)
    parts = [PNG_SIGNATURE, _chunk(b"IHDR", header)]
    parts.extend(
        _chunk(b"IDAT", compressed[start : start + _IDAT_CHUNK_BYTES])
        for start in range(0, len(compressed), _IDAT_CHUNK_BYTES)
    )
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def decode_png(data: bytes) -> np.ndarray:
    """Decode a non-interlaced 8- or 16-bit greyscale PNG (colour type 0) from its bytes.

    data: the whole file (any bytes-like object). Returns an (H, W) uint8 array for 8-bit
    files, (H, W) uint16 for 16-bit ones. Ancillary chunks are skipped (their CRCs are still
    checked). Raises ValueError for anything that is not such a PNG or is damaged.
    """
    view = memoryview(data).cast("B")
    if len(view) < len(PNG_SIGNATURE) or view[: len(PNG_SIGNATURE)] != PNG_SIGNATURE:
        raise ValueError("Not a PNG file: the 8-byte PNG signature is missing.")

    header: tuple[int, int, int, int, int, int, int] | None = None
    idat: list[memoryview] = []
    seen_iend = False
    for index, (kind, body) in enumerate(_chunks(view, len(PNG_SIGNATURE))):
        if index == 0 and kind != b"IHDR":
            raise ValueError(f"PNG's first chunk must be IHDR, got {kind!r}.")
        if kind == b"IHDR":
            if header is not None:
                raise ValueError("PNG has more than one IHDR chunk.")
            if len(body) != _IHDR.size:
                raise ValueError(f"PNG IHDR chunk must be {_IHDR.size} bytes, got {len(body)}.")
            header = _IHDR.unpack(body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            seen_iend = True
            break
        elif kind[0] & 0x20 == 0:
            # Bit 5 of the first letter clear = critical chunk (PLTE, or an unknown one) that a
            # greyscale image cannot use; decoding past it could give wrong pixels.
            raise ValueError(f"PNG has a critical chunk {kind!r} this decoder does not support.")
    if header is None:
        raise ValueError("PNG is truncated: it has no IHDR chunk.")
    if not seen_iend:
        raise ValueError("PNG is truncated: it ends before the IEND chunk.")
    if not idat:
        raise ValueError("PNG has no IDAT chunk (no image data).")

    width, height, bit_depth, colour_type, compression, filter_method, interlace = header
    if width == 0 or height == 0 or width > _MAX_CHUNK_LENGTH or height > _MAX_CHUNK_LENGTH:
        raise ValueError(f"PNG has an invalid size {width}x{height}.")
    if colour_type != _COLOUR_TYPE_GREY:
        raise ValueError(
            f"Unsupported PNG colour type {colour_type}: only greyscale (0) label images."
        )
    if bit_depth not in (8, 16):
        raise ValueError(f"Unsupported PNG bit depth {bit_depth}: only 8 and 16.")
    if compression != 0 or filter_method != 0:
        raise ValueError(
            f"Unsupported PNG compression method {compression} / filter method {filter_method}."
        )
    if interlace != 0:
        raise ValueError(f"Unsupported PNG interlace method {interlace}: only non-interlaced.")

    bpp = bit_depth // 8
    row_bytes = 1 + width * bpp
    expected = height * row_bytes
    raw = _inflate(b"".join(idat), expected)
    scanlines = np.frombuffer(raw, dtype=np.uint8).reshape(height, row_bytes)
    filter_types = scanlines[:, 0]
    bad_rows = np.flatnonzero(filter_types > _FILTER_PAETH)
    if bad_rows.size:
        row = int(bad_rows[0])
        raise ValueError(f"PNG row {row} has unknown filter type {int(filter_types[row])}.")
    # Byte planes: (H, W, bpp). A byte's "left" neighbour in the PNG filters is bpp bytes back,
    # i.e. the same plane of the previous pixel, so the planes never mix.
    pixels = _unfilter(scanlines[:, 1:].reshape(height, width, bpp), filter_types)
    if bpp == 1:
        return pixels.reshape(height, width)
    return pixels.reshape(height, width * 2).view(">u2").astype(np.uint16)


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a greyscale PNG file: (H, W) uint8 (8-bit file) or uint16 (16-bit file)."""
    return decode_png(Path(path).read_bytes())


def write_label_png(
    path: str | os.PathLike[str], labels: np.ndarray, compression_level: int = 6
) -> None:
    """Write an (H, W) label image (values 0..65535) to ``path`` as a greyscale PNG."""
    Path(path).write_bytes(encode_label_png(labels, compression_level))


def _chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data."""
    return b"".join(
        (
            _CHUNK_HEADER.pack(len(body), kind),
            body,
            _CRC.pack(zlib.crc32(body, zlib.crc32(kind))),
        )
    )


def _chunks(view: memoryview, offset: int) -> Iterator[tuple[bytes, memoryview]]:
    """(type, data) of each chunk from ``offset`` on, length and CRC checked."""
    total = len(view)
    while offset < total:
        if offset + _CHUNK_HEADER.size > total:
            raise ValueError("PNG is truncated: a chunk header is cut off.")
        length, kind = _CHUNK_HEADER.unpack_from(view, offset)
        if length > _MAX_CHUNK_LENGTH:
            raise ValueError(f"PNG chunk {kind!r} has an invalid length {length}.")
        start = offset + _CHUNK_HEADER.size
        end = start + length
        if end + _CRC.size > total:
            raise ValueError(f"PNG is truncated: chunk {kind!r} is cut off.")
        body = view[start:end]
        (stored_crc,) = _CRC.unpack_from(view, end)
        if zlib.crc32(body, zlib.crc32(kind)) != stored_crc:
            raise ValueError(f"PNG chunk {kind!r} at byte {offset} fails its CRC check.")
        yield kind, body
        offset = end + _CRC.size


def _inflate(compressed: bytes, expected: int) -> bytes:
    """The zlib stream's output, which must be exactly ``expected`` bytes long."""
    max_output = len(compressed) * _DEFLATE_MAX_RATIO + 1024
    try:
        if max_output <= max(4 * expected, _UNBOUNDED_INFLATE_BYTES):
            # Even a hostile stream cannot grow past ``max_output``, so inflate in one call into a
            # buffer of the right size: several ms faster on a 1080p 16-bit image than the
            # growing buffer of the bounded path. A header claiming a huge size with little
            # data behind it must not allocate that size up front, hence the min.
            raw = zlib.decompress(compressed, bufsize=min(expected, max_output))
            finished = True
        else:
            inflater = zlib.decompressobj()
            # One byte over the size is enough to tell "too much data" without inflating a
            # hostile stream in full.
            raw = inflater.decompress(compressed, expected + 1)
            finished = inflater.eof
    except zlib.error as error:
        raise ValueError(f"PNG image data is damaged or truncated (zlib: {error}).") from error
    if len(raw) > expected:
        raise ValueError(
            f"PNG image data decompresses to more than the {expected} bytes its header's size "
            "needs."
        )
    if len(raw) < expected:
        raise ValueError(
            f"PNG image data decompresses to {len(raw)} bytes; its header's size needs {expected}."
        )
    if not finished:
        raise ValueError("PNG is truncated: its zlib stream is incomplete.")
    return raw


def _unfilter(filtered: np.ndarray, filter_types: np.ndarray) -> np.ndarray:
    """Undo the scanline filters. filtered: (H, W, bpp) uint8; filter_types: (H,) in 0..4.

    Returns the (H, W, bpp) uint8 raw bytes.
    """
    height, width, _ = filtered.shape
    slow_rows = np.flatnonzero(filter_types >= _FILTER_AVERAGE)
    if slow_rows.size == 0:
        return _unfilter_fast(filtered, filter_types, None)
    out = np.empty_like(filtered)
    previous: np.ndarray | None = None
    done = 0
    for start, stop in _wavefront_passes(slow_rows, width):
        if start > done:
            out[done:start] = _unfilter_fast(
                filtered[done:start], filter_types[done:start], previous
            )
        out[start:stop] = _unfilter_wavefront(
            filtered[start:stop], filter_types[start:stop], out[start - 1] if start else None
        )
        previous = out[stop - 1]
        done = stop
    if done < height:
        out[done:] = _unfilter_fast(filtered[done:], filter_types[done:], previous)
    return out


def _wavefront_passes(slow_rows: np.ndarray, width: int) -> Iterator[tuple[int, int]]:
    """Row ranges [start, stop) to decode by wavefront, covering every Average/Paeth row."""
    gaps = np.diff(slow_rows) - 1
    breaks = np.flatnonzero(gaps > width)
    firsts = np.concatenate(([slow_rows[0]], slow_rows[breaks + 1]))
    lasts = np.concatenate((slow_rows[breaks], [slow_rows[-1]]))
    max_height = min(max(width, _WAVEFRONT_MIN_HEIGHT), _WAVEFRONT_MAX_HEIGHT)
    for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
        for start in range(first, last + 1, max_height):
            yield start, min(start + max_height, last + 1)


def _unfilter_fast(
    filtered: np.ndarray, filter_types: np.ndarray, previous: np.ndarray | None
) -> np.ndarray:
    """Undo None/Sub/Up filters, whole rows at a time.

    filtered: (n, W, bpp) uint8, every filter type in 0..2; previous: (W, bpp) raw row above
    the first row (None = zeros, the top of the image). Returns (n, W, bpp) uint8.
    """
    rows = np.array(filtered, dtype=np.uint8)
    sub = filter_types == _FILTER_SUB
    if sub.any():
        # Sub rows need nothing from the row above, so all of them go in one call.
        rows[sub] = np.cumsum(rows[sub], axis=1, dtype=np.uint8)
    # Up rows chain down the image. One add per row beats np.cumsum(axis=0) by ~10x here:
    # numpy accumulates along axis 0 column by column with a strided inner loop.
    up_rows = np.flatnonzero(filter_types == _FILTER_UP).tolist()
    if up_rows and up_rows[0] == 0:
        if previous is not None:
            rows[0] += previous
        up_rows = up_rows[1:]
    add = np.add
    for row in up_rows:
        target = rows[row]
        add(target, rows[row - 1], out=target)
    return rows


def _unfilter_wavefront(
    filtered: np.ndarray, filter_types: np.ndarray, previous: np.ndarray | None
) -> np.ndarray:
    """Undo any mix of the five filters, one anti-diagonal of pixels at a time.

    filtered: (n, W, bpp) uint8; previous: (W, bpp) raw row above the first row (None = zeros).
    Returns (n, W, bpp) uint8.

    Pixel (r, c) depends on (r, c-1), (r-1, c) and (r-1, c-1), all on earlier anti-diagonals
    r + c, so each diagonal decodes in one vectorised step, its per-row filter choice folded
    into one gather from ``_predictor_table``. The block is padded with a row above
    (``previous``) and a zero column on the left, then skewed: the grid's row d holds the cells
    on diagonal d, so every neighbour is a contiguous slice of the previous two rows.
    """
    n, width, bpp = filtered.shape
    # int32 because the predictor-table index below needs it; values stay in 0..255.
    grid = np.empty((n + width + 1, n + 1, bpp), dtype=np.int32)
    itemsize = grid.itemsize
    # Padded cell (i, j) lives at grid[i + j, i]; this strided view addresses it as [i, j].
    cells = as_strided(
        grid,
        shape=(n + 1, width + 1, bpp),
        strides=((n + 2) * bpp * itemsize, (n + 1) * bpp * itemsize, itemsize),
    )
    # Only the padding needs initialising: every other cell read is on an earlier diagonal.
    cells[:, 0] = 0
    cells[0, 1:] = 0 if previous is None else previous
    # Copying plane by plane gives numpy inner loops W long instead of bpp long: ~4x faster.
    for plane in range(bpp):
        cells[1:, 1:, plane] = filtered[:, :, plane]

    table = _predictor_table()
    # Per padded row i >= 1 (so indexed i - 1): where its filter's slice of the table starts.
    row_offset = np.empty((n, bpp), dtype=np.int32)
    row_offset[:] = (filter_types.astype(np.int32) * _TABLE_SIDE**2 + _TABLE_CENTRE)[:, None]
    # None rows predict 0, which is not "c + f(b - c, a - c)": their c is masked out instead.
    keep_up_left: np.ndarray | None = None
    if bool((filter_types == _FILTER_NONE).any()):
        keep_up_left = np.empty((n, bpp), dtype=np.int32)
        keep_up_left[:] = np.where(filter_types == _FILTER_NONE, 0, -1)[:, None]
    for diagonal in range(2, n + width + 1):
        # Padded rows lo..hi-1 have a cell on this diagonal, in columns 1..width.
        lo = max(1, diagonal - width)
        hi = min(n, diagonal - 1) + 1
        left = grid[diagonal - 1, lo:hi]
        up = grid[diagonal - 1, lo - 1 : hi - 1]
        up_left = grid[diagonal - 2, lo - 1 : hi - 1]
        index = up - up_left
        index *= _TABLE_SIDE
        index += left
        index -= up_left
        index += row_offset[lo - 1 : hi - 1]
        # Indices are in range by construction; "clip" skips numpy's bounds-error bookkeeping.
        predictor = table.take(index, mode="clip")
        if keep_up_left is None:
            predictor += up_left
        else:
            predictor += up_left & keep_up_left[lo - 1 : hi - 1]
        target = grid[diagonal, lo:hi]
        target += predictor
        target &= 0xFF
    out = np.empty((n, width, bpp), dtype=np.uint8)
    for plane in range(bpp):
        out[:, :, plane] = cells[1:, 1:, plane]
    return out


@cache
def _predictor_table() -> np.ndarray:
    """Every filter's predictor minus c, by filter type, b - c and a - c, flattened.

    a, b, c are the raw bytes left, above and above-left. Each predictor is c plus a function
    of (b - c, a - c): Sub = a, Up = b, Average = floor((a + b) / 2) and Paeth's choice of a,
    b or c all are, which turns the per-type branches into one gather. Row type 0 (None) is
    zeros; its c is masked by the caller. Shape (5 * 511 * 511,) int32, about 5 MB.
    """
    span = np.arange(-255, 256, dtype=np.int32)
    b_minus_c = span[:, None]
    a_minus_c = span[None, :]
    # Paeth per the PNG spec: p = a + b - c; pick the nearest of a, b, c to p, ties in that
    # order. |p - a| = |b - c|, |p - b| = |a - c|, |p - c| = |(b - c) + (a - c)|.
    pa = np.abs(b_minus_c)
    pb = np.abs(a_minus_c)
    pc = np.abs(b_minus_c + a_minus_c)
    paeth = np.where((pa <= pb) & (pa <= pc), a_minus_c, np.where(pb <= pc, b_minus_c, 0))
    shape = (_TABLE_SIDE, _TABLE_SIDE)
    table = np.stack(
        [
            np.zeros(shape, dtype=np.int32),
            np.broadcast_to(a_minus_c, shape),
            np.broadcast_to(b_minus_c, shape),
            (a_minus_c + b_minus_c) >> 1,  # c + floor((a - c + b - c) / 2) = floor((a + b) / 2)
            paeth,
        ]
    ).astype(np.int32)
    table.flags.writeable = False
    return table.reshape(-1)
