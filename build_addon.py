"""Build the Blender extension: the ram_core wheel, the assembled folder, the validated zip.

    python build_addon.py [--output-dir dist] [--blender-ext PATH/TO/blender_ext.py]

1. ``pip wheel`` builds the Blender wheel of ``ram_core`` into ``wheels/``: only the rooms
   Blender imports (``BLENDER_ROOMS``: the result contract, the Predictor and Combiner, the
   body), pure Python that needs numpy alone; the manifest must name exactly that wheel.
   The stages, the models and the evaluation code stay in the pipeline's own Python.
2. The extension is assembled in a temporary folder: the manifest, ``ram_blender/``'s
   modules at the top level (the extension's package), and ``wheels/``.
3. Blender's own builder (``bl_pkg/cli/blender_ext.py``, standard library only) builds the
   zip and validates it. One zip serves every platform because the only wheel is pure.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent
MANIFEST = REPO / "blender_manifest.toml"
PACKAGE_DIR = REPO / "ram_blender"
WHEELS_DIR = REPO / "wheels"
BUILDER_RELATIVE = Path("addons_core", "bl_pkg", "cli", "blender_ext.py")
# What Blender imports of ram_core: these top-level modules and whole rooms, nothing else.
BLENDER_MODULES = ("__init__.py", "errors.py")
BLENDER_ROOMS = ("io", "motion", "body")


class BuildError(Exception):
    """A build step failed; the message says which and why."""


def read_manifest(path: Path = MANIFEST) -> dict:
    with open(path, "rb") as stream:
        return tomllib.load(stream)


def build_ram_core_wheel(wheels_dir: Path = WHEELS_DIR, python: str = sys.executable) -> Path:
    """Build the Blender wheel of ram_core into ``wheels_dir`` (old ram_core wheels removed)."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    for old in wheels_dir.glob("ram_core-*.whl"):
        old.unlink()
    command = [python, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(wheels_dir)]
    with tempfile.TemporaryDirectory() as scratch:
        # A lean copy keeps build/ and *.egg-info out of the working tree too.
        source = Path(scratch) / "src"
        assemble_blender_wheel_source(source)
        completed = subprocess.run([*command, str(source)], capture_output=True, text=True)
    if completed.returncode != 0:
        raise BuildError(f"pip wheel failed:\n{completed.stderr.strip()}")
    built = sorted(wheels_dir.glob("ram_core-*.whl"))
    if len(built) != 1:
        raise BuildError(f"expected one ram_core wheel in {wheels_dir}, found {built}")
    return built[0]


def assemble_blender_wheel_source(destination: Path) -> Path:
    """The source tree of the Blender wheel: ``BLENDER_MODULES`` and ``BLENDER_ROOMS`` of
    ram_core, and a pyproject with the project's name, version and licence that needs numpy
    alone and installs no command."""
    with open(REPO / "pyproject.toml", "rb") as stream:
        project = tomllib.load(stream)["project"]
    package = destination / "ram_core"
    package.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for module in BLENDER_MODULES:
        shutil.copy2(REPO / "ram_core" / module, package / module)
    for room in BLENDER_ROOMS:
        shutil.copytree(REPO / "ram_core" / room, package / room, ignore=ignore)
    rooms = ", ".join(f'"ram_core.{room}"' for room in BLENDER_ROOMS)
    data = "\n".join(
        f'"ram_core.{room}" = ["data/*"]'
        for room in BLENDER_ROOMS
        if (REPO / "ram_core" / room / "data").is_dir()
    )
    (destination / "pyproject.toml").write_text(
        f"""[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{project["name"]}"
version = "{project["version"]}"
description = "RAM result reader, Predictor and Combiner: the part of ram_core Blender runs"
requires-python = "{project["requires-python"]}"
license = "{project["license"]}"
dependencies = ["numpy>=1.24"]

[tool.setuptools]
packages = ["ram_core", {rooms}]

[tool.setuptools.package-data]
{data}
""",
        encoding="utf-8",
    )
    return destination


def manifest_wheels(manifest: dict) -> list[str]:
    return list(manifest.get("wheels", []))


def assemble_extension(destination: Path, include_wheels: bool = True) -> Path:
    """Lay out the extension's source in ``destination`` (created; must not exist).

    Without ``include_wheels`` the manifest's ``wheels`` line is dropped, for a development
    repository whose Python already has ram_core.
    """
    manifest = read_manifest()
    shutil.copytree(PACKAGE_DIR, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    text = MANIFEST.read_text(encoding="utf-8")
    if include_wheels:
        for wheel in manifest_wheels(manifest):
            source = (REPO / wheel).resolve()
            if not source.is_file():
                raise BuildError(f"the manifest names {wheel}, which was not built")
            (destination / "wheels").mkdir(exist_ok=True)
            shutil.copy2(source, destination / "wheels" / source.name)
    else:
        text = "\n".join(line for line in text.splitlines() if not line.startswith("wheels")) + "\n"
    (destination / "blender_manifest.toml").write_text(text, encoding="utf-8")
    return destination


def find_blender_builder(explicit: str | None = None) -> Path:
    """Blender's ``blender_ext.py``: given, from this Python's bpy, or a .venv-blender*."""
    if explicit:
        return Path(explicit)
    if importlib.util.find_spec("bpy") is not None:
        import bpy

        return Path(bpy.utils.system_resource("SCRIPTS")) / BUILDER_RELATIVE
    pattern = str(REPO / ".venv-blender*/lib/python3*/site-packages/bpy/*/scripts")
    for scripts in sorted(glob.glob(pattern), reverse=True):
        candidate = Path(scripts) / BUILDER_RELATIVE
        if candidate.is_file():
            return candidate
    raise BuildError(
        "Blender's extension builder was not found: install bpy (tools/test_blender.sh makes "
        ".venv-blender) or pass --blender-ext PATH/TO/blender_ext.py"
    )


def run_builder(builder: Path, *arguments: str) -> str:
    completed = subprocess.run(
        [sys.executable, str(builder), *arguments], capture_output=True, text=True
    )
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise BuildError(f"blender_ext.py {arguments[0]} failed:\n{output}")
    return output


def build(output_dir: Path, builder: Path) -> Path:
    """Everything: wheel, assembly, Blender's build and validation. Returns the zip."""
    manifest = read_manifest()
    wheel = build_ram_core_wheel()
    expected = f"./wheels/{wheel.name}"
    if manifest_wheels(manifest) != [expected]:
        raise BuildError(
            f'blender_manifest.toml must list wheels = ["{expected}"] (the wheel just built); '
            f"it lists {manifest_wheels(manifest)}"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        source = assemble_extension(Path(scratch) / manifest["id"])
        run_builder(builder, "build", "--source-dir", str(source), "--output-dir", str(output_dir))
    archive = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    if not archive.is_file():
        raise BuildError(f"Blender's builder did not write {archive}")
    run_builder(builder, "validate", str(archive))
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=str(REPO / "dist"))
    parser.add_argument("--blender-ext", default=None, help="path to Blender's blender_ext.py")
    args = parser.parse_args(argv)
    try:
        archive = build(Path(args.output_dir), find_blender_builder(args.blender_ext))
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
