"""Model zoo: `build_model(model_cfg, input_size, num_classes)` for every model of the paper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from antisym.errors import ConfigError
from antisym.models.cells import AblationCell, AntisymmetricCell, EulerCell, GatedAntisymmetricCell
from antisym.models.classifier import EulerClassifier, LSTMClassifier, euler_recurrence

CELLS: dict[str, type[EulerCell]] = {
    "asym": AntisymmetricCell,
    "gated": GatedAntisymmetricCell,
    "ablation": AblationCell,
}
MODEL_NAMES = (*CELLS, "lstm")


def validate_model_cfg(cfg: Mapping[str, Any]) -> None:
    """Reject values the equations do not admit, with a message that says what to change."""
    name = cfg.get("name")
    if name not in MODEL_NAMES:
        raise ConfigError(f"model.name={name!r} is not a model of this suite; choose one of {', '.join(MODEL_NAMES)}.")
    n = cfg.get("hidden_size")
    if not isinstance(n, int) or n <= 0:
        raise ConfigError(f"model.hidden_size must be a positive integer, got {n!r}; the paper uses 128 or 256.")
    if float(cfg.get("init_std", 0.0)) < 0:
        raise ConfigError(f"model.init_std (sigma_w) must be >= 0, got {cfg['init_std']}; the paper's grid is 0-16.")
    if name in CELLS:
        if float(cfg.get("eps", 0.0)) <= 0:
            raise ConfigError(
                f"model.eps (Euler step size) must be > 0, got {cfg.get('eps')}; the paper's grid is 0.01, 0.1, 1."
            )
        if float(cfg.get("gamma", -1.0)) < 0:
            raise ConfigError(
                f"model.gamma (diffusion) must be >= 0, got {cfg.get('gamma')}; the paper's grid is 0.001-1."
            )


def build_model(model_cfg: Mapping[str, Any], input_size: int, num_classes: int) -> nn.Module:
    """Build a classifier whose forward maps (B, T, input_size) floats to (B, num_classes) logits."""
    validate_model_cfg(model_cfg)
    name, n = model_cfg["name"], int(model_cfg["hidden_size"])
    init_std = float(model_cfg.get("init_std", 1.0))
    if name == "lstm":
        return LSTMClassifier(input_size, n, num_classes, init_std=init_std)
    cell = CELLS[name](input_size, n, eps=float(model_cfg["eps"]), gamma=float(model_cfg["gamma"]), init_std=init_std)
    # model.impl: eager (default until the kernels are GPU-verified) | fused (Triton) | auto (fused where it can run).
    # model.precision of the fused path: "ieee" (fp32 dots) is the default because it is the one that follows fp32
    # eager over hundreds of steps; tf32x3, tf32 and bf16 are faster, less exact options (antisym.kernels).
    impl, precision = str(model_cfg.get("impl", "eager")), str(model_cfg.get("precision", "ieee"))
    return EulerClassifier(cell, num_classes, impl=impl, precision=precision)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = ["MODEL_NAMES", "build_model", "count_parameters", "euler_recurrence", "validate_model_cfg"]
