"""Members of a pack as one computation, by PyTorch's model-ensembling recipe (torch.func.vmap over functional_call).

Any model class packs this way when its forward is plain PyTorch and the settings its members may differ in live in
floating buffers (`register_settings`), not in Python attributes. Each iteration stacks the members' parameters with
a differentiable `torch.stack` (where `torch.func.stack_module_state` would make new leaves): every member's gradient
reaches its own parameters, so each keeps its own optimizer, clipping and checkpoints, exactly as a solo run.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from antisym.errors import ConfigError


def register_settings(module: nn.Module, **values: float) -> None:
    """Keep float hyperparameters as 0-d buffers so that vmap gives each member its own.

    float64 so that a float64 run computes with the config's exact value (`.to(dtype)` rounds them with the
    parameters); non-persistent, so checkpoints hold parameters only, as before.
    """
    for name, value in values.items():
        module.register_buffer(name, torch.tensor(float(value), dtype=torch.float64), persistent=False)
    # The values as set, readable without a device sync: members sharing a setting share its tensor under vmap.
    module._settings = {**getattr(module, "_settings", {}), **{k: float(v) for k, v in values.items()}}


def settings_of(model: nn.Module) -> dict[str, float]:
    """Every value `register_settings` stored in the model and its submodules, by buffer name."""
    return {
        f"{prefix}.{k}" if prefix else k: v
        for prefix, module in model.named_modules()
        for k, v in getattr(module, "_settings", {}).items()
    }


def cast(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A copy of `model` in `dtype` whose settings hold their configured values: a model trained in float32 holds
    them rounded, and `.to(torch.float64)` alone would keep the rounding (a chaotic model's float64 predictions and
    a Jacobian's eigenvalues are computed with the eps and gamma the config gives)."""
    copied = copy.deepcopy(model).to(dtype)
    for name, value in settings_of(copied).items():
        copied.get_buffer(name).fill_(value)
    return copied


def check_member_settings(models: list[nn.Module]) -> None:
    """Refuse a pack whose members differ in a `member_settings` key the model keeps as a plain number: vmap would
    give every member the first one's value, silently."""
    for key in getattr(type(models[0]), "member_settings", ()):
        values = {getattr(m, key, None) for m in models}
        if len(values) > 1 and all(isinstance(v, (int, float)) for v in values):
            raise ConfigError(
                f"{type(models[0]).__qualname__}.member_settings lists {key!r}, and the pack's members differ in it "
                f"({', '.join(map(str, sorted(values)))}), but the model keeps it as a Python number, which vmap "
                f"cannot vary per member. Keep it as a buffer (antisym.models.ensemble.register_settings(self, "
                f"{key}=...)) or take it out of member_settings, so that runs differing in it train in separate packs."
            )


def vmap_forward(models: list[nn.Module], x: Tensor, **kwargs: Any) -> list[Tensor]:
    """Logits of R models of one class on their own inputs x (R, B, T, m): `models[0]`'s forward, vmapped.

    Parameters and floating buffers are stacked along a member axis, except settings every member shares (a seed or
    learning-rate sweep: then eps scales each step by one number, as in a solo run, not by a broadcast (R, 1, 1)
    tensor); other buffers (index tables that only depend on the shape, which a pack shares) are taken from the first
    member. `kwargs` go to forward.
    """
    base = models[0]
    check_member_settings(models)
    states = [(dict(m.named_parameters()), dict(m.named_buffers())) for m in models]
    params = {k: torch.stack([p[k] for p, _ in states]) for k in states[0][0]}
    values = [settings_of(m) for m in models]
    same = {k for k, v in values[0].items() if all(other.get(k) == v for other in values[1:])}
    batched = {k for k, v in states[0][1].items() if v.is_floating_point() and k not in same}
    settings = {k: torch.stack([b[k] for _, b in states]) for k in batched}
    shared = {k: v for k, v in states[0][1].items() if k not in batched}

    def member(p: dict[str, Tensor], s: dict[str, Tensor], x_r: Tensor) -> Tensor:
        return functional_call(base, (p, s, shared), (x_r,), kwargs)

    return list(vmap(member)(params, settings, x).unbind(0))
