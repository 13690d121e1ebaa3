""""Download models" in the preferences: the real weights manager, a local HTTP mirror.

The pipeline Python is the repository's ``.venv`` (ram_core with its core dependencies;
this bpy environment has ram_core without them); ``RAM_WEIGHTS_BASE_URL`` points the
manager at a server on 127.0.0.1. The modal operator is ticked as ``modal()``
ticks it, with the real ``bpy.context`` and a stand-in event.
"""

import http.server
import stat
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest
from conftest import EXTENSION_MODULE, REPO, submodule

TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")
PIPELINE_PYTHON = REPO / ".venv" / "bin" / "python"
MODEL = "sam2.1_hiera_tiny"
PAYLOAD = bytes(range(256)) * 9000  # 2.3 MB: more than the manager's 1 MiB read


class _Mirror(http.server.ThreadingHTTPServer):
    """Serves ``files`` by name; with ``stall`` set, sends half of a file and waits."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MirrorHandler)
        self.files: dict[str, bytes] = {}
        self.stall = threading.Event()
        self.released = threading.Event()
        self.ranges: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    server: _Mirror

    def log_message(self, format, *args):  # keep the test output clean
        pass

    def do_GET(self):
        data = self.server.files.get(self.path.lstrip("/"))
        requested = self.headers.get("Range")
        self.server.ranges.append(requested)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = int(requested.split("=")[1].split("-")[0]) if requested else 0
        self.send_response(206 if requested else 200)
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if self.server.stall.is_set():
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.server.released.wait(30)
            return
        self.wfile.write(body)


@pytest.fixture
def mirror(monkeypatch):
    server = _Mirror()
    server.files[f"{MODEL}.pt"] = PAYLOAD
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("RAM_WEIGHTS_BASE_URL", server.url)
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def prefs(ext, tmp_path):
    """Online, the pipeline's Python, a fresh weights folder; restored afterwards."""
    if not PIPELINE_PYTHON.is_file():
        pytest.skip("no .venv with the pipeline (tools/setup.sh makes it)")
    prefs = bpy.context.preferences.addons[EXTENSION_MODULE].preferences
    system = bpy.context.preferences.system
    was_online = system.use_online_access
    system.use_online_access = True
    prefs.pipeline_python = str(PIPELINE_PYTHON)
    prefs.weights_dir = str(tmp_path / "weights")
    yield prefs
    system.use_online_access = was_online
    prefs.pipeline_python = ""
    prefs.weights_dir = ""


def _tick_until_ended(modal_job, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = modal_job.tick(bpy.context, TIMER)
        if result.ended:
            return result
        time.sleep(0.02)
    raise AssertionError("the download did not end")


def _start(models=()):
    modal_job = submodule("operators_weights").start_model_download(bpy.context, models)
    modal_job.begin(bpy.context)
    return modal_job


def test_download_shows_byte_progress_and_the_listing_sees_the_model(prefs, mirror, tmp_path):
    operators_weights = submodule("operators_weights")
    weights = submodule("weights")
    folder = Path(prefs.weights_dir)
    listing_request = operators_weights.listing_request(bpy.context)
    before = operators_weights.LISTINGS.wait(listing_request, timeout=60)
    assert before.listing is not None, before.error
    assert before.listing.weights_dir == str(folder)
    assert {m.name: m.present for m in before.listing.models}[MODEL] is False

    modal_job = _start((MODEL,))
    command = modal_job.job.command
    assert command[1:6] == ["-m", "ram_core", "weights", "download", MODEL]
    assert command[-4:] == ["--progress", "json", "--dir", str(folder)]
    assert modal_job.job.env["RAM_WEIGHTS_DIR"] == str(folder)
    assert bpy.ops.ram.download_models.poll() is False
    result = _tick_until_ended(modal_job)
    assert result.status == "FINISHED"
    assert result.reports == (
        ("INFO", f"The models are downloaded and checked. ({folder})"),
    )
    assert (folder / f"{MODEL}.pt").read_bytes() == PAYLOAD
    assert modal_job.job.stage == f"download {MODEL}" and modal_job.job.total == len(PAYLOAD)
    assert weights.download_status_line(modal_job.job) == (
        f"RAM models: download {MODEL}, 2.3 of 2.3 MB"
    )
    after = operators_weights.LISTINGS.wait(listing_request, timeout=60)
    assert {m.name: m.present for m in after.listing.models}[MODEL] is True


def test_escape_ends_the_download_and_keeps_the_partial_file(prefs, mirror):
    mirror.stall.set()
    folder = Path(prefs.weights_dir)
    modal_job = _start((MODEL,))
    deadline = time.monotonic() + 30
    while modal_job.job.done == 0 and time.monotonic() < deadline:
        assert modal_job.tick(bpy.context, TIMER).status == "RUNNING_MODAL"
        time.sleep(0.02)
    assert modal_job.job.done > 0 and not modal_job.job.finished()
    assert modal_job.status_line().startswith(f"RAM models: download {MODEL}, 1.0 of 2.3 MB")
    result = modal_job.tick(bpy.context, ESC)
    assert result.status == "CANCELLED"
    assert result.reports == (
        ("WARNING", "The model download was cancelled; Download Models resumes it."),
    )
    assert modal_job.job.finished() and modal_job.job.outcome().cancelled
    assert submodule("operators_weights").RUNNING_DOWNLOAD.current is None
    partial = folder / f"{MODEL}.pt.part"
    assert partial.is_file() and 0 < partial.stat().st_size < len(PAYLOAD)
    assert not (folder / f"{MODEL}.pt").exists()
    # The next download resumes from the partial file (the manager's business).
    resume_from = partial.stat().st_size
    mirror.stall.clear()
    mirror.released.set()
    assert _tick_until_ended(_start((MODEL,))).status == "FINISHED"
    assert mirror.ranges[-1] == f"bytes={resume_from}-"
    assert (folder / f"{MODEL}.pt").read_bytes() == PAYLOAD


def test_http_failure_and_unknown_model_are_one_error_each(prefs, mirror):
    del mirror.files[f"{MODEL}.pt"]
    result = _tick_until_ended(_start((MODEL,)))
    assert result.status == "CANCELLED" and len(result.reports) == 1
    level, text = result.reports[0]
    assert level == "ERROR"
    assert text.startswith(f"The model download failed: could not download {mirror.url}/")
    assert "HTTP 404" in text
    result = _tick_until_ended(_start(("no_such_model",)))
    assert result.reports == (
        (
            "ERROR",
            "The model download was refused: unknown model 'no_such_model'; known models: "
            + ", ".join(m.name for m in _known_models()),
        ),
    )


def _known_models():
    from ram_core.models.weights import list_models

    return list_models()


def test_missing_model_exit_code_is_its_own_error(prefs, tmp_path):
    script = tmp_path / "fake_python"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        'print(json.dumps({"event": "error", "exit_code": 3, "message": "offline: '
        'sam2.1_hiera_small is not in /w"}), flush=True)\nsys.exit(3)\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    operators_weights = submodule("operators_weights")
    modal_job = operators_weights.start_model_download(bpy.context, (), python=str(script))
    modal_job.begin(bpy.context)
    result = _tick_until_ended(modal_job)
    assert result.reports == (
        ("ERROR", "A model is missing: offline: sam2.1_hiera_small is not in /w"),
    )


def test_refused_without_online_access_and_without_a_python(prefs):
    operators_weights = submodule("operators_weights")
    bpy.context.preferences.system.use_online_access = False
    assert bpy.app.online_access is False
    with pytest.raises(RuntimeError, match="does not allow online access"):
        bpy.ops.ram.download_models()
    assert operators_weights.RUNNING_DOWNLOAD.current is None
    assert not Path(prefs.weights_dir).exists()
    bpy.context.preferences.system.use_online_access = True
    prefs.pipeline_python = "/no/such/python"
    with pytest.raises(RuntimeError, match="Cannot start the pipeline Python /no/such/python"):
        bpy.ops.ram.download_models(model=MODEL)
    assert operators_weights.RUNNING_DOWNLOAD.current is None


def test_listing_of_a_python_without_ram_core_is_an_error_not_a_hang(ext, tmp_path):
    weights = submodule("weights")
    cache = weights.ModelListingCache()
    request = weights.WeightsRequest(str(tmp_path / "no_python"), str(tmp_path))
    state = cache.wait(request, timeout=30)
    assert state.listing is None and state.error.startswith("Cannot list the models with ")
    with pytest.raises(weights.ModelListingError, match="not readable"):
        weights.parse_model_listing('{"models": "nope"}')


class _RecordingLayout:
    """Stands in for a UILayout: records labels and buttons, checks icon names."""

    def __init__(self, record=None) -> None:
        self.record = record if record is not None else []

    def _icon(self, icon: str) -> None:
        icons = bpy.types.UILayout.bl_rna.functions["label"].parameters["icon"].enum_items
        assert icon in icons, icon

    def row(self, **_):
        return _RecordingLayout(self.record)

    box = column = row

    def label(self, text="", icon="NONE"):
        self._icon(icon)
        self.record.append(("label", text, icon))

    def prop(self, data, name, **_):
        assert hasattr(data, name), name
        self.record.append(("prop", name))

    def progress(self, factor=0.0, type="BAR", text=""):
        self.record.append(("progress", text))

    def operator(self, idname, text="", icon="NONE"):
        self._icon(icon)
        assert getattr(bpy.ops.ram, idname.split(".")[1]).idname()
        self.record.append(("operator", idname, text))
        return SimpleNamespace()


def test_preferences_show_which_models_are_present(prefs, mirror):
    operators_weights = submodule("operators_weights")
    request = operators_weights.listing_request(bpy.context)
    operators_weights.LISTINGS.wait(request, timeout=60)
    layout = _RecordingLayout()
    submodule("preferences").draw_preferences(prefs, layout, bpy.context)
    labels = [entry[1] for entry in layout.record if entry[0] == "label"]
    assert f"Models in {prefs.weights_dir}" in labels
    assert MODEL in labels
    assert ("operator", "ram.download_models", "") in layout.record  # per missing model
    assert ("prop", "smpl_model") in layout.record and ("prop", "weights_dir") in layout.record
