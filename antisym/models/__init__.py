"""Models by config: `build_model(model_cfg, input_size, num_classes)` builds whatever class `_target_` names.

The interface a model class must meet (checked when it is built, with an error naming what is missing):

- constructor `Model(input_size: int, hidden_size: int, num_classes: int, **settings)`; every other key of the model
  config except `name` is one of its keyword arguments, typed by annotation (checked before any data is read);
  invalid values raise `antisym.errors.ConfigError` (one sentence: the key and what to set);
- `forward(x)`: inputs (B, T, input_size) float -> logits (B, num_classes);
- `final_state(x, h0=None)`: the state after the last step, (B, state_size); h0 of the same shape, zeros if None;
- `hidden_size` (units) and optionally `state_size` (default: hidden_size; e.g. 2n for coRNN's [y | z]);
- parameters: every trainable parameter counts (`count_parameters`).
- optionally, for packed sweeps (hydra/launcher=packed): `packed_forward(models, x)`, logits of R models of the class
  on inputs x (R, B, T, m) (`staticmethod(antisym.models.ensemble.vmap_forward)` for any plain-PyTorch forward whose
  per-member settings are buffers, `register_settings`), and `member_settings`, the config keys members of one pack may
  differ in (every other key must be equal; absent: all). Without `packed_forward` a class trains in packs of one.

The built-in models take the same path: `name` alone (an old config without `_target_`) is looked up in `BUILTIN`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from antisym.checks import ClassConfig
from antisym.errors import ConfigError
from antisym.models.classifier import (
    AblationRNN,
    AntisymmetricRNN,
    EulerClassifier,
    GatedAntisymmetricRNN,
    LSTMClassifier,
    euler_recurrence,
)

BUILTIN: dict[str, type[nn.Module]] = {
    "asym": AntisymmetricRNN,
    "gated": GatedAntisymmetricRNN,
    "ablation": AblationRNN,
    "lstm": LSTMClassifier,
}
SHAPE_ARGS = ("input_size", "hidden_size", "num_classes")


def model_config(cfg: Mapping[str, Any]) -> ClassConfig:
    """The model section checked against its class's constructor (types and keys; ranges when it is built)."""
    cfg = dict(cfg)
    if "_target_" not in cfg:
        name = cfg.get("name")
        if name not in BUILTIN:
            raise ConfigError(
                f"model.name={name!r} is not a built-in model ({', '.join(BUILTIN)}) and the model config names no "
                "`_target_` class; set model=<asym|gated|ablation|lstm> or give model._target_=package.module.Class."
            )
        cls = BUILTIN[name]
        cfg["_target_"] = f"{cls.__module__}.{cls.__qualname__}"
    return ClassConfig.from_mapping(
        "model",
        cfg,
        skip=("input_size", "num_classes"),
        extra=("name",),
        needs=SHAPE_ARGS,
        interface="A model takes (input_size, hidden_size, num_classes, **settings); see antisym/models/__init__.py "
        "for the whole interface.",
    )


def build_model(model_cfg: Mapping[str, Any] | ClassConfig, input_size: int, num_classes: int) -> nn.Module:
    """Build a classifier whose forward maps (B, T, input_size) floats to (B, num_classes) logits."""
    parsed = model_cfg if isinstance(model_cfg, ClassConfig) else model_config(model_cfg)
    model = parsed.target(input_size=input_size, num_classes=num_classes, **parsed.kwargs)
    lacking = [attr for attr in ("forward", "final_state", "hidden_size") if not hasattr(model, attr)]
    if not isinstance(model, nn.Module) or lacking:
        what = "is not a torch.nn.Module" if not isinstance(model, nn.Module) else f"has no {', '.join(lacking)}"
        raise ConfigError(
            f"model._target_={parsed.target.__module__}.{parsed.target.__qualname__} {what}. A model must be an "
            "nn.Module with forward(x) -> logits, final_state(x, h0=None) and hidden_size; see "
            "antisym/models/__init__.py."
        )
    return model


def pack_forward(models: list[nn.Module], xs: list[Tensor]) -> list[Tensor]:
    """Logits of each member on its batch: one model as it is; several of a class with `packed_forward` as one
    batched computation (antisym.models.ensemble.vmap_forward, or the Euler models' fused member axis); otherwise one
    after another."""
    packed = getattr(type(models[0]), "packed_forward", None)
    if len(models) > 1 and packed is not None and all(type(m) is type(models[0]) for m in models):
        return packed(models, torch.stack(xs))
    return [model(x) for model, x in zip(models, xs, strict=True)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "BUILTIN",
    "AblationRNN",
    "AntisymmetricRNN",
    "EulerClassifier",
    "GatedAntisymmetricRNN",
    "LSTMClassifier",
    "build_model",
    "count_parameters",
    "euler_recurrence",
    "model_config",
    "pack_forward",
]
