"""build_addon.py's zip installs with Blender's installer into a fresh user folder and runs.

The install happens in a child process: this test process already has the development copy
of the same extension enabled, and a fresh user folder must start Blender from nothing.
"""

import json
import subprocess
import sys
import textwrap
import zipfile

import pytest
from conftest import REPO, write_result

from ram_core.io.edits import append_edit

sys.path.insert(0, str(REPO))
import build_addon

INSTALL_AND_RUN = textwrap.dedent(
    """
    import json, os, sys
    # ram_core must come from the extension's bundled wheel, not this environment's editable
    # install of the repository.
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
    # Blender's Python has none of these; the bundled wheel must not need them.
    for name in ("cv2", "scipy", "yaml", "torch", "ai_edge_litert", "tqdm"):
        sys.modules[name] = None
    import bpy
    zip_path, result_path = sys.argv[1], sys.argv[2]
    bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True
    )
    module = "bl_ext.user_default.ram_motion"
    enabled = module in bpy.context.preferences.addons
    state = bpy.ops.ram.import_result(filepath=result_path) if enabled else None
    import ram_core
    edited = ram_core.load_result(result_path)
    print(json.dumps({
        "track_ids": edited.track_ids().tolist(),
        "layers": list(edited.layers),
        "enabled": enabled,
        "operator": sorted(state) if state else None,
        "armatures": sorted(o.name for o in bpy.data.objects if o.type == "ARMATURE"),
        "ram_core_file": ram_core.__file__,
    }))
    sys.stdout.flush()
    os._exit(0)
    """
)


@pytest.mark.slow
def test_built_zip_installs_enables_and_imports(tmp_path):
    archive = build_addon.build(tmp_path / "dist", build_addon.find_blender_builder())
    with zipfile.ZipFile(archive) as bundle:
        names = bundle.namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert any(name.startswith("wheels/ram_core-") for name in names)

    result = write_result(tmp_path / "take.ram", {3: range(5), 5: range(2, 5)})
    append_edit(result, {"op": "split", "track": 3, "from_frame": 3, "new_id": 7})
    script = tmp_path / "install_and_run.py"
    script.write_text(INSTALL_AND_RUN)
    user = tmp_path / "fresh_user"
    user.mkdir()
    env = {"BLENDER_USER_RESOURCES": str(user), "PATH": "/usr/bin:/bin", "HOME": str(user)}
    completed = subprocess.run(
        [sys.executable, str(script), str(archive), str(result)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["enabled"], completed.stdout[-2000:]
    assert report["operator"] == ["FINISHED"]
    assert report["armatures"] == ["RAM_Person_003", "RAM_Person_005", "RAM_Person_007"]
    assert report["track_ids"] == [3, 5, 7] and report["layers"] == ["pipeline", "edits"]
    assert str(user) in report["ram_core_file"]
