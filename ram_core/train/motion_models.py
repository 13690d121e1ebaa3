"""The learned Predictor and gate as torch modules, and their export to numpy.

Each mirrors ``ram_core.motion.learned`` step for step (the numpy inference Blender runs):
the same DCT, MLP (Linear, optional LayerNorm, tanh-GELU), residual, Gram-Schmidt and root
canonicalisation. ``export_numpy`` writes the ``.npz`` ``load_learned_weights`` reads;
``model_from_weights`` goes the other way (a torch twin of exported weights).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ram_core.motion.learned import (
    NUM_JOINTS,
    POSE_FEATURES,
    LearnedGateWeights,
    LearnedPredictorWeights,
    LearnedWeights,
    MLPWeights,
    dct_matrix,
    gate_feature_count,
    save_learned_weights,
)
from ram_core.train.torch_rotations import matrix_to_rot6d, rot6d_to_matrix


class MotionMLP(nn.Module):
    """Hidden layers of Linear, LayerNorm (optional) and tanh-GELU; a last Linear.

    ``zero_output``: the last layer starts at zero (the Predictor then starts as holding
    the last pose, a strong baseline, and learns the residual)."""

    def __init__(
        self,
        in_size: int,
        hidden_sizes: tuple[int, ...],
        out_size: int,
        layer_norm: bool,
        zero_output: bool = False,
    ) -> None:
        super().__init__()
        sizes = [in_size, *hidden_sizes, out_size]
        self.linear = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.norm = nn.ModuleList(nn.LayerNorm(h) for h in hidden_sizes) if layer_norm else None
        self.activation = nn.GELU(approximate="tanh")
        if zero_output:
            nn.init.zeros_(self.linear[-1].weight)
            nn.init.zeros_(self.linear[-1].bias)

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(layer.out_features for layer in self.linear[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.linear):
            x = layer(x)
            if i < len(self.linear) - 1:
                if self.norm is not None:
                    x = self.norm[i](x)
                x = self.activation(x)
        return x

    def numpy_weights(self) -> MLPWeights:
        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(np.float32)

        linear = tuple((array(m.weight), array(m.bias)) for m in self.linear)
        norms = (
            () if self.norm is None else tuple((array(m.weight), array(m.bias)) for m in self.norm)
        )
        return MLPWeights(linear, norms)

    def load_numpy_weights(self, mlp: MLPWeights) -> None:
        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.array(array, dtype=np.float32))  # a writable copy

        with torch.no_grad():
            for module, (weight, bias) in zip(self.linear, mlp.linear, strict=True):
                module.weight.copy_(tensor(weight))
                module.bias.copy_(tensor(bias))
            if self.norm is not None:
                for module, (weight, bias) in zip(self.norm, mlp.norms, strict=True):
                    module.weight.copy_(tensor(weight))
                    module.bias.copy_(tensor(bias))


class LearnedPredictorModel(nn.Module):
    """``learned.predictor_network`` and ``learned.predict_next_rotations`` in torch."""

    def __init__(
        self,
        window: int = 16,
        dct_size: int = 10,
        horizon: int = 1,
        hidden_sizes: tuple[int, ...] = (256, 256),
        layer_norm: bool = True,
    ) -> None:
        super().__init__()
        if not 1 <= dct_size <= window or horizon < 1:
            raise ValueError(
                f"the learned Predictor needs 1 <= dct_size <= window and horizon >= 1; got "
                f"dct_size {dct_size}, window {window}, horizon {horizon}"
            )
        self.window, self.dct_size, self.horizon = window, dct_size, horizon
        self.output_coefficients = min(dct_size, horizon)
        self.mlp = MotionMLP(
            dct_size * POSE_FEATURES,
            tuple(hidden_sizes),
            self.output_coefficients * POSE_FEATURES,
            layer_norm,
            zero_output=True,
        )
        dct = torch.as_tensor(dct_matrix(window)[:dct_size], dtype=torch.float32)
        idct = torch.as_tensor(
            dct_matrix(horizon).T[:, : self.output_coefficients], dtype=torch.float32
        )
        self.register_buffer("dct", dct, persistent=False)
        self.register_buffer("idct", idct, persistent=False)

    def forward(self, window_rot6d: torch.Tensor) -> torch.Tensor:
        """(B, window, 24, 6) -> (B, horizon, 24, 6)."""
        B, W = window_rot6d.shape[:2]
        flat = window_rot6d.reshape(B, W, POSE_FEATURES)
        last = flat[:, -1]
        coefficients = self.dct @ (flat - last[:, None])
        out = self.mlp(coefficients.reshape(B, -1))
        residual = self.idct @ out.reshape(B, self.output_coefficients, POSE_FEATURES)
        return (last[:, None] + residual).reshape(B, self.horizon, NUM_JOINTS, 6)

    def predict_next(self, history: torch.Tensor) -> torch.Tensor:
        """(B, window, 24, 3, 3) rotations, oldest first -> (B, horizon, 24, 3, 3); the
        global orientation relative to the last frame's on the way in, turned back out."""
        root_last = history[:, -1, 0]  # (B, 3, 3)
        root = root_last.transpose(-1, -2)[:, None] @ history[:, :, 0]
        window = torch.cat([root[:, :, None], history[:, :, 1:]], dim=2)
        predicted = rot6d_to_matrix(self(matrix_to_rot6d(window)))
        root_out = root_last[:, None] @ predicted[:, :, 0]
        return torch.cat([root_out[:, :, None], predicted[:, :, 1:]], dim=2)

    def numpy_weights(self) -> LearnedPredictorWeights:
        return LearnedPredictorWeights(
            self.window, self.dct_size, self.horizon, self.mlp.numpy_weights()
        )


class LearnedGateModel(nn.Module):
    """``learned.gate_probability`` in torch: features (..., F) -> g (...,) in (0, 1)."""

    def __init__(
        self, radius: int = 2, hidden_sizes: tuple[int, ...] = (32, 32), layer_norm: bool = False
    ) -> None:
        super().__init__()
        if radius < 0:
            raise ValueError(f"the learned gate's radius must be >= 0, got {radius}")
        self.radius = radius
        self.mlp = MotionMLP(gate_feature_count(radius), tuple(hidden_sizes), 1, layer_norm)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.mlp(features)[..., 0])

    def numpy_weights(self) -> LearnedGateWeights:
        return LearnedGateWeights(self.radius, self.mlp.numpy_weights())


def model_from_weights(weights: LearnedWeights) -> LearnedPredictorModel | LearnedGateModel:
    """A torch model holding exported weights (float32)."""
    layer_norm = bool(weights.mlp.norms)
    if isinstance(weights, LearnedPredictorWeights):
        model: LearnedPredictorModel | LearnedGateModel = LearnedPredictorModel(
            weights.window, weights.dct_size, weights.horizon, weights.mlp.hidden_sizes, layer_norm
        )
    else:
        model = LearnedGateModel(weights.radius, weights.mlp.hidden_sizes, layer_norm)
    model.mlp.load_numpy_weights(weights.mlp)
    return model


def export_numpy(model: LearnedPredictorModel | LearnedGateModel, path: str | Path) -> Path:
    """Write the model as the numpy ``.npz`` Blender and the pipeline run (atomically)."""
    if not isinstance(model, LearnedPredictorModel | LearnedGateModel):
        raise TypeError(f"export_numpy takes a learned Predictor or gate, not {type(model)}")
    return save_learned_weights(model.numpy_weights(), path)
