"""The learned Predictor and the learned Combiner gate: weights and forward passes in numpy.

Blender re-runs the Combiner, and its Python has numpy but no torch, so the models trained
with torch (``ram_core.train``) are exported to an ``.npz`` of plain arrays and run here.
numpy + stdlib only. ``ram_core.train.motion_models`` holds the torch twins; a test keeps
the two forward passes equal to 1e-5.

Both models are small multilayer perceptrons: hidden layers of Linear, then LayerNorm
(optional), then GELU (its tanh form, which numpy computes without erf); a last Linear.

The learned Predictor (siMLPe's recipe: a DCT over time, an MLP, a residual on the last
pose) predicts joint rotations only; the root translation stays with the analytic Kalman
filter. Input: the last ``window`` poses of a track, 24 joints as 6D rotations (the first
two columns of each matrix), the global orientation (joint 0) taken relative to the last
frame's, so that where the camera looks from does not matter. The window minus its last
pose goes through the first ``dct_size`` rows of the orthonormal DCT-II over time (the low
frequencies: noisy reconstructions jitter at high ones), is flattened and goes through the
MLP, whose output is ``min(dct_size, horizon)`` DCT coefficients of the next ``horizon``
frames. Their inverse DCT, added to the last pose, gives the next ``horizon`` poses in 6D;
Gram-Schmidt makes them rotations. The Combiner uses the first one, recursively.

The learned gate reads, for each frame, features the Combiner has without any prediction:
the reliabilities and whether the reconstruction may be used (real and not occluded) at the
frames t - radius .. t + radius of the same track (edge frames repeated). A sigmoid gives
g; ``combiner.gate_from_learned`` then applies the analytic gate's hard zero and rate limit.

File format (``save_learned_weights`` / ``load_learned_weights``): an uncompressed ``.npz``
read with ``allow_pickle=False``: ``model`` ("predictor" or "gate"), ``version`` (1), the
metadata of the model as integer arrays, and ``linear{i}.weight`` (out, in),
``linear{i}.bias`` (out,), ``norm{i}.weight`` / ``norm{i}.bias`` (hidden,) as torch names
them. Any other shape, a missing or extra array, or a non-finite value is refused.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ram_core.body.rotations import matrix_to_rot6d, rot6d_to_matrix
from ram_core.errors import BadInputError, MissingModelError
from ram_core.io.atomic import atomic_file

LEARNED_WEIGHTS_VERSION = 1
NUM_JOINTS = 24
# Values per frame the Predictor's network reads and writes: 24 joints x 6D.
POSE_FEATURES = NUM_JOINTS * 6
# LayerNorm's epsilon, torch's default.
LAYER_NORM_EPS = 1e-5
PREDICTOR_MODEL = "predictor"
GATE_MODEL = "gate"


class LearnedWeightsError(BadInputError):
    """A learned model's weight file that is unreadable or not what it claims."""


class LearnedWeightsMissingError(MissingModelError):
    """A learned model's weight file that is not there (exit 3, as any missing weights)."""


@dataclass(frozen=True, eq=False)
class MLPWeights:
    """An MLP's parameters as torch names them: ``linear`` (weight (out, in), bias (out,))
    per layer, the last one the output; ``norms`` (weight, bias) per hidden layer, empty
    without LayerNorm."""

    linear: tuple[tuple[np.ndarray, np.ndarray], ...]
    norms: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(int(w.shape[0]) for w, _ in self.linear[:-1])


@dataclass(frozen=True, eq=False)
class LearnedPredictorWeights:
    """The learned Predictor (module docstring). window: poses read; dct_size: DCT rows
    kept of the window (<= window); horizon: poses predicted; sha256: of the file it was
    loaded from ("" when made in memory)."""

    window: int
    dct_size: int
    horizon: int
    mlp: MLPWeights
    version: int = LEARNED_WEIGHTS_VERSION
    sha256: str = ""

    @property
    def output_coefficients(self) -> int:
        return min(self.dct_size, self.horizon)

    @property
    def input_size(self) -> int:
        return self.dct_size * POSE_FEATURES

    @property
    def output_size(self) -> int:
        return self.output_coefficients * POSE_FEATURES


@dataclass(frozen=True, eq=False)
class LearnedGateWeights:
    """The learned gate (module docstring). radius: neighbouring frames read on each side;
    sha256: of the file it was loaded from ("" when made in memory)."""

    radius: int
    mlp: MLPWeights
    version: int = LEARNED_WEIGHTS_VERSION
    sha256: str = ""

    @property
    def input_size(self) -> int:
        return gate_feature_count(self.radius)


LearnedWeights = LearnedPredictorWeights | LearnedGateWeights


def gate_feature_count(radius: int) -> int:
    """Features per frame: a reliability and a usable flag at each of 2 radius + 1 frames."""
    return 2 * (2 * radius + 1)


# ---------------------------------------------------------------------------- forward


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh form (torch's ``approximate="tanh"``)."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Over the last axis, biased variance (torch's LayerNorm)."""
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(variance + LAYER_NORM_EPS) * weight + bias


def mlp_forward(mlp: MLPWeights, x: np.ndarray) -> np.ndarray:
    """(..., in) -> (..., out), float64."""
    h = np.asarray(x, dtype=np.float64)
    last = len(mlp.linear) - 1
    for i, (weight, bias) in enumerate(mlp.linear):
        h = h @ np.asarray(weight, dtype=np.float64).T + np.asarray(bias, dtype=np.float64)
        if i < last:
            if mlp.norms:
                norm_weight, norm_bias = mlp.norms[i]
                h = layer_norm(
                    h,
                    np.asarray(norm_weight, dtype=np.float64),
                    np.asarray(norm_bias, dtype=np.float64),
                )
            h = gelu(h)
    return h


def dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II, (n, n): row k is frequency k over n frames; its transpose is
    the inverse."""
    frames = np.arange(n)
    k = np.arange(n)[:, None]
    basis = np.cos(np.pi * (frames[None, :] + 0.5) * k / n) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return basis


def predictor_network(weights: LearnedPredictorWeights, window_rot6d: np.ndarray) -> np.ndarray:
    """The network alone: (B, window, 24, 6) poses -> (B, horizon, 24, 6) (not yet
    rotations), float64."""
    window_rot6d = np.asarray(window_rot6d, dtype=np.float64)
    B, W = window_rot6d.shape[:2]
    if window_rot6d.shape[1:] != (weights.window, NUM_JOINTS, 6):
        raise ValueError(
            f"the learned Predictor reads (B, {weights.window}, {NUM_JOINTS}, 6) poses; got "
            f"{window_rot6d.shape}"
        )
    flat = window_rot6d.reshape(B, W, POSE_FEATURES)
    last = flat[:, -1]
    coefficients = dct_matrix(W)[: weights.dct_size] @ (flat - last[:, None])
    out = mlp_forward(weights.mlp, coefficients.reshape(B, weights.input_size))
    K = weights.output_coefficients
    residual = dct_matrix(weights.horizon).T[:, :K] @ out.reshape(B, K, POSE_FEATURES)
    return (last[:, None] + residual).reshape(B, weights.horizon, NUM_JOINTS, 6)


def predict_next_rotations(weights: LearnedPredictorWeights, history: np.ndarray) -> np.ndarray:
    """The next ``horizon`` poses of B tracks from their last ``window`` poses.

    history: (B, window, 24, 3, 3) joint rotation matrices, oldest first (joint 0 the global
    orientation) -> (B, horizon, 24, 3, 3). The global orientations go in relative to the
    last one and come out turned back.
    """
    history = np.asarray(history, dtype=np.float64)
    root_last = history[:, -1, 0]  # (B, 3, 3)
    window = history.copy()
    window[:, :, 0] = np.swapaxes(root_last, -1, -2)[:, None] @ history[:, :, 0]
    predicted = rot6d_to_matrix(predictor_network(weights, matrix_to_rot6d(window)))
    predicted[:, :, 0] = root_last[:, None] @ predicted[:, :, 0]
    return predicted


def gate_features(
    reliability: np.ndarray, occluded: np.ndarray, recon_valid: np.ndarray, radius: int
) -> np.ndarray:
    """The learned gate's input: (..., T) each -> (..., T, 2 (2 radius + 1)).

    For offsets -radius..radius: the reliability (NaN as 0, clipped to [0, 1]), then
    whether the reconstruction may be used (real and not occluded), frames past either end
    of the last axis taking the end frame's.
    """
    reliability = np.clip(np.nan_to_num(np.asarray(reliability, dtype=np.float64)), 0.0, 1.0)
    usable = (np.asarray(recon_valid, dtype=bool) & ~np.asarray(occluded, dtype=bool)).astype(
        np.float64
    )
    T = reliability.shape[-1]
    offsets = np.clip(np.arange(T)[:, None] + np.arange(-radius, radius + 1)[None, :], 0, T - 1)
    return np.concatenate([reliability[..., offsets], usable[..., offsets]], axis=-1)


def gate_probability(weights: LearnedGateWeights, features: np.ndarray) -> np.ndarray:
    """(..., F) features -> (...,) the sigmoid of the MLP, in [0, 1]."""
    logit = np.clip(mlp_forward(weights.mlp, features)[..., 0], -60.0, 60.0)
    return 1.0 / (1.0 + np.exp(-logit))


# ---------------------------------------------------------------------------- files


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, hex. LearnedWeightsError when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise LearnedWeightsError(f"learned model weights {path} cannot be read: {exc}") from exc
    return digest.hexdigest()


def save_learned_weights(weights: LearnedWeights, path: str | Path) -> Path:
    """Write ``weights`` as the ``.npz`` ``load_learned_weights`` reads, atomically (a
    temporary file beside it, then a rename). Returns the path."""
    target = Path(path)
    entries: dict[str, np.ndarray] = {"version": np.asarray(weights.version, dtype=np.int64)}
    if isinstance(weights, LearnedPredictorWeights):
        entries["model"] = np.asarray(PREDICTOR_MODEL)
        for name in ("window", "dct_size", "horizon"):
            entries[name] = np.asarray(getattr(weights, name), dtype=np.int64)
    else:
        entries["model"] = np.asarray(GATE_MODEL)
        entries["radius"] = np.asarray(weights.radius, dtype=np.int64)
    entries["hidden_sizes"] = np.asarray(weights.mlp.hidden_sizes, dtype=np.int64)
    entries["layer_norm"] = np.asarray(bool(weights.mlp.norms))
    for i, (weight, bias) in enumerate(weights.mlp.linear):
        entries[f"linear{i}.weight"] = np.asarray(weight, dtype=np.float32)
        entries[f"linear{i}.bias"] = np.asarray(bias, dtype=np.float32)
    for i, (weight, bias) in enumerate(weights.mlp.norms):
        entries[f"norm{i}.weight"] = np.asarray(weight, dtype=np.float32)
        entries[f"norm{i}.bias"] = np.asarray(bias, dtype=np.float32)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as stream:
        np.savez(stream, **entries)
    return target


def load_learned_weights(path: str | Path, model: str | None = None) -> LearnedWeights:
    """Read an exported model (module docstring). ``model``: "predictor" or "gate" to
    insist on one. LearnedWeightsMissingError when there is no such file;
    LearnedWeightsError, naming the file and what is wrong, for a bad one."""
    file = Path(path)
    if not file.is_file():
        raise LearnedWeightsMissingError(
            f"learned model weights not found: {file} (export them with `ram-core train "
            "predictor|combiner --export FILE`)"
        )
    sha256 = file_sha256(file)
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise LearnedWeightsError(f"{file} is not a learned model's .npz: {exc}") from exc
    try:
        weights = _weights_from_arrays(arrays, sha256)
    except (KeyError, TypeError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else exc
        raise LearnedWeightsError(f"{file} is not a valid learned model: {message}") from exc
    kind = PREDICTOR_MODEL if isinstance(weights, LearnedPredictorWeights) else GATE_MODEL
    if model is not None and kind != model:
        raise LearnedWeightsError(f"{file} holds a learned {kind}, not a learned {model}")
    return weights


def _scalar_int(arrays: dict[str, np.ndarray], name: str, minimum: int) -> int:
    if name not in arrays:
        raise KeyError(f"it lacks '{name}'")
    value = arrays.pop(name)
    if value.ndim != 0 or value.dtype.kind not in "iu" or int(value) < minimum:
        raise ValueError(f"'{name}' must be one integer >= {minimum}, got {value!r}")
    return int(value)


def _weights_from_arrays(arrays: dict[str, np.ndarray], sha256: str) -> LearnedWeights:
    arrays = dict(arrays)
    model = arrays.pop("model", None)
    if model is None or model.ndim != 0 or model.dtype.kind != "U":
        raise ValueError("it names no model ('model' must be 'predictor' or 'gate')")
    model = str(model)
    if model not in (PREDICTOR_MODEL, GATE_MODEL):
        raise ValueError(f"unknown model {model!r} (known: predictor, gate)")
    version = _scalar_int(arrays, "version", 1)
    if version > LEARNED_WEIGHTS_VERSION:
        raise ValueError(
            f"version {version} is newer than this reader's {LEARNED_WEIGHTS_VERSION}; update"
        )
    if model == PREDICTOR_MODEL:
        window = _scalar_int(arrays, "window", 1)
        dct_size = _scalar_int(arrays, "dct_size", 1)
        horizon = _scalar_int(arrays, "horizon", 1)
        if dct_size > window:
            raise ValueError(f"dct_size {dct_size} exceeds the window {window}")
        in_size = dct_size * POSE_FEATURES
        out_size = min(dct_size, horizon) * POSE_FEATURES
    else:
        radius = _scalar_int(arrays, "radius", 0)
        in_size, out_size = gate_feature_count(radius), 1
    hidden = arrays.pop("hidden_sizes", None)
    norm_flag = arrays.pop("layer_norm", None)
    if hidden is None or hidden.ndim != 1 or hidden.dtype.kind not in "iu" or np.any(hidden < 1):
        raise ValueError("'hidden_sizes' must be a 1-D array of positive integers")
    if norm_flag is None or norm_flag.ndim != 0 or norm_flag.dtype != np.bool_:
        raise ValueError("'layer_norm' must be one boolean")
    sizes = [in_size, *(int(h) for h in hidden), out_size]
    linear = []
    for i in range(len(sizes) - 1):
        linear.append(
            (
                _parameter(arrays, f"linear{i}.weight", (sizes[i + 1], sizes[i])),
                _parameter(arrays, f"linear{i}.bias", (sizes[i + 1],)),
            )
        )
    norms = []
    if bool(norm_flag):
        for i, size in enumerate(sizes[1:-1]):
            norms.append(
                (
                    _parameter(arrays, f"norm{i}.weight", (size,)),
                    _parameter(arrays, f"norm{i}.bias", (size,)),
                )
            )
    if arrays:
        raise ValueError(f"unexpected array(s): {', '.join(sorted(arrays))}")
    mlp = MLPWeights(tuple(linear), tuple(norms))
    if model == PREDICTOR_MODEL:
        return LearnedPredictorWeights(window, dct_size, horizon, mlp, version, sha256)
    return LearnedGateWeights(radius, mlp, version, sha256)


def _parameter(arrays: dict[str, np.ndarray], name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in arrays:
        raise KeyError(f"it lacks '{name}'")
    value = arrays.pop(name)
    if value.shape != shape or value.dtype.kind != "f":
        raise ValueError(f"'{name}' must be float {shape}, got {value.dtype} {value.shape}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"'{name}' holds NaN or infinite values")
    value = value.astype(np.float64)
    value.setflags(write=False)
    return value
