"""The add-on's real install on Blender 5.2's Python (3.13): the plan the Install button runs,
from PyPI, then the lite pipeline on a few frames of the bundled clip with that environment.

Slow (a minute or two: pip fetches OpenCV, SciPy, LiteRT and MediaPipe's wheel for the pose
model) and only on Python 3.13, the one that MediaPipe's own package never supported; 3.11
is the main test environment's own Python.
"""

import json
import subprocess
import sys

import pytest
from conftest import REPO, submodule

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.version_info < (3, 13), reason="proves the install on Python 3.13"),
]


def test_install_button_plan_gives_a_working_lite_pipeline_on_python_3_13(extension, tmp_path):
    environment = submodule("environment")
    env_dir, weights_dir = tmp_path / "env", tmp_path / "weights"
    plan = environment.plan_install(env_dir, sys.executable, None, REPO, str(weights_dir))
    outcome = environment.start_install(plan).wait(timeout=900)
    assert outcome.ok, outcome.message
    assert (weights_dir / "pose_landmark_full.tflite").is_file()
    version = subprocess.run(
        [str(outcome.python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "(3, 13)"
    out = tmp_path / "clip.ram"
    run = subprocess.run(
        [str(outcome.python), "-m", "ram_core", "run", str(REPO / "demo" / "three_people.mp4"),
         "-o", str(out), "--backend", "lite", "--end", "15", "--progress", "none"],
        capture_output=True, text=True, timeout=600,
        env=environment.child_environment({"RAM_WEIGHTS_DIR": str(weights_dir)}),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # third-party logs stay hidden
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["backend"]["name"] == "lite"
    assert len(manifest["tracks"]) == 3  # the clip's three people
