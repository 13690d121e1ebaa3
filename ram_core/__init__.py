"""RAM pipeline: video of several people -> per-person SMPL motion (format ``ram-motion``).

Importing this package is cheap: heavy libraries (mediapipe, torch, sam2) are imported
inside the stage that needs them.
"""

import os

__version__ = "0.1.0"

# OpenCV and its FFmpeg print their own warnings on stderr for every unreadable file
# ("moov atom not found"); ours say it once, clearly. Read when cv2 is first imported.
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
