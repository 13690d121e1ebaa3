"""The wheel Blender installs is lean: only what ``ram_blender`` imports, and all of it runs
with numpy alone (Blender's Python has no cv2, scipy, yaml, torch or mediapipe).

The wheel is built by ``build_addon.build_ram_core_wheel``, as the extension's build does,
and its modules are imported from the unpacked wheel in a child process where those
libraries cannot be imported. ``tests/blender/test_build_addon.py`` installs the same wheel
in real Blender.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import build_addon  # noqa: E402

FORBIDDEN = (
    "cv2",
    "scipy",
    "yaml",
    "torch",
    "torchvision",
    "mediapipe",
    "ai_edge_litert",
    "sam2",
    "PIL",
    "tqdm",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return build_addon.build_ram_core_wheel(tmp_path_factory.mktemp("wheels"))


def wheel_modules(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    modules = []
    for name in names:
        if name.endswith(".py"):
            parts = Path(name).with_suffix("").parts
            modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(modules)


def test_the_wheel_holds_only_the_blender_rooms(wheel):
    modules = wheel_modules(wheel)
    rooms = {m.split(".")[1] for m in modules if m.count(".") >= 1}
    top = {m.split(".")[1] for m in modules if m.count(".") == 1}
    assert rooms - {"errors"} == set(build_addon.BLENDER_ROOMS)
    assert top == {"errors", *build_addon.BLENDER_ROOMS}
    for absent in ("ram_core.cli", "ram_core.pipeline", "ram_core.eval.metrics",
                   "ram_core.segment.sam2_video", "ram_core.detect.keypoint_rcnn",
                   "ram_core.video.reader"):  # fmt: skip
        assert absent not in modules
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "ram_core/body/data/smpl24_rest.json" in names
    assert "Requires-Dist: numpy" in metadata
    assert "Requires-Dist: scipy" not in metadata
    assert not [n for n in names if n.endswith("entry_points.txt")]


def test_ram_blender_imports_only_what_the_wheel_carries(wheel):
    carried = set(wheel_modules(wheel))
    wanted = set()
    for path in (ROOT / "ram_blender").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ram_core"):
                wanted.add(node.module)
            elif isinstance(node, ast.Import):
                wanted.update(a.name for a in node.names if a.name.startswith("ram_core"))
    assert wanted and wanted <= carried, sorted(wanted - carried)


def test_every_module_of_the_wheel_imports_with_numpy_alone(wheel, tmp_path):
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    script = f"""
import importlib, json, sys
sys.path.insert(0, {str(unpacked)!r})
# The development install of the repository must not answer for the wheel.
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
for name in {FORBIDDEN!r}:
    sys.modules[name] = None
import ram_core
assert ram_core.__file__.startswith({str(unpacked)!r}), ram_core.__file__
for module in {wheel_modules(wheel)!r}:
    importlib.import_module(module)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r}
                        and sys.modules[m] is not None)))
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert json.loads(completed.stdout) == []
