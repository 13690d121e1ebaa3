"""HMR2.0's data archive for tests: 4D-Humans' layout holding the tiny network's weights,
put into a weights folder through the real download path (a server on 127.0.0.1)."""

from __future__ import annotations

import dataclasses
import functools
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

from ram_core.models import weights
from ram_core.models.backends import THMR_WEIGHTS
from ram_core.reconstruct.hmr2 import Hmr2Config, build_hmr2


def write_hmr2_data(archive: Path, staging: Path, seed: int = 0) -> None:
    """A tar.gz laid out as 4D-Humans' hmr2_data, holding a Lightning checkpoint of the tiny
    network (plus keys of parts that are not ours, which the loader ignores)."""
    torch.manual_seed(seed)
    state = dict(build_hmr2(Hmr2Config.tiny()).state_dict())
    state["discriminator.D_conv_stage.0.weight"] = torch.zeros(4, 4)
    checkpoint = staging / weights.HMR2_CHECKPOINT_MEMBER
    checkpoint.parent.mkdir(parents=True)
    torch.save({"state_dict": state, "epoch": 35}, checkpoint)
    (staging / "data").mkdir()
    (staging / "data" / "README.txt").write_text("not the checkpoint")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname=".")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """The files of ``folder`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def download_from(base_url: str, root: Path, names: tuple[str, ...]) -> None:
    """Fetches ``names`` from ``base_url`` into ``root`` as ``ram-core weights download``
    does; torchvision's hash prefix, which a random file cannot match, is not checked."""
    for name in names:
        model = weights.MODELS[name]
        local = dataclasses.replace(model, url=f"{base_url}/{model.filename}", sha256_prefix=None)
        weights.download_file(local, root)


def tiny_hmr2_weights(root: Path, staging: Path) -> Path:
    """A weights folder holding only hmr2_data (the tiny network), fetched for real."""
    upstream = staging / "upstream"
    upstream.mkdir(parents=True)
    write_hmr2_data(upstream / weights.MODELS[THMR_WEIGHTS].filename, staging / "archive")
    with served(upstream) as url:
        download_from(url, root, (THMR_WEIGHTS,))
    return root
