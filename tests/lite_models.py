"""The lite backend's fetched models, copied into a test's own weights folder.

The setup fetches them into the user's weights folder; tests that point RAM_WEIGHTS_DIR at a
folder of their own copy them there (checked against the published hash, as the weights
manager checks any file put in place by hand).
"""

import shutil
from pathlib import Path

from ram_core.models import weights

# Read when the test session imports this, before any test moves RAM_WEIGHTS_DIR.
SETUP_WEIGHTS_DIR = weights.weights_dir()


def copy_lite_models(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in weights.LITE_MODELS:
        shutil.copy2(weights.require(name, SETUP_WEIGHTS_DIR), weights.model_path(name, folder))
        assert weights.verify(name, folder).ok
    return folder
