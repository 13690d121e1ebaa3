"""``ram-core combine``: re-run the Predictor and Combiner on a result with its edits.

The pipeline's own ``tracks.npz`` is never rewritten; the edited, re-combined table goes to
``combined.npz`` beside it (same arrays, same format), replaced atomically each time.
numpy only, so the add-on can call it inside Blender too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ram_core.io.result import load_result, validate_tracks
from ram_core.motion.combiner import CombinerConfig
from ram_core.motion.fusion import fuse_tracks
from ram_core.motion.predictor import PredictorConfig

COMBINED_FILE_NAME = "combined.npz"


def recombine_result(
    path: str | Path,
    predictor_config: PredictorConfig | None = None,
    combiner_config: CombinerConfig | None = None,
) -> Path:
    """Applies ``edits.json`` and re-runs Predictor + Combiner; returns combined.npz's path."""
    result = load_result(path, apply_edits=True)
    fused = validate_tracks(fuse_tracks(result.tracks, predictor_config, combiner_config))
    target = result.path / COMBINED_FILE_NAME
    temporary = target.with_name(f".{COMBINED_FILE_NAME}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as stream:
            np.savez_compressed(stream, **fused)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target
