"""RAM pipeline: video of several people -> per-person SMPL motion (format ``ram-motion``).

Importing this package is cheap: heavy libraries (mediapipe, torch, sam2) are imported
inside the stage that needs them, and even numpy waits until the reader is first used.

The result contract, readable with numpy alone (inside Blender too):
``ram_core.load_result(path)`` (the pipeline's output, the edits applied, the Combiner's
re-run where there is one) and ``ram_core.read_mask(path, frame)`` (the label image
remapped through the same edits). Both live in ``ram_core.io.result``.
"""

import os

__version__ = "0.1.0"

# OpenCV and its FFmpeg print their own warnings on stderr for every unreadable file
# ("moov atom not found"); ours say it once, clearly. Read when cv2 is first imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

_RESULT_NAMES = ("load_result", "read_mask", "RamResult", "ResultFormatError")
__all__ = ["__version__", *_RESULT_NAMES]


def __getattr__(name: str):
    # PEP 562: the reader (and numpy) load on first use, not on ``import ram_core``.
    if name in _RESULT_NAMES:
        from ram_core.io import result

        return getattr(result, name)
    raise AttributeError(f"module 'ram_core' has no attribute {name!r}")
