"""Which runs of a sweep can train as one pack (antisym.training.trainer.run_pack), and how they are grouped.

Members of a pack share everything that fixes the shape and the rhythm of the computation: the model class and every
model setting but those its class lists in `member_settings` (hidden size, impl, precision, scheme, ...), the data's
shapes (task family, sequence length, input width), batch size, max_steps, eval_every, device, dtype, optimizer class
and lr schedule. They may differ in seed, the model's `member_settings` (eps, gamma, sigma_w, ...), learning rate and
the optimizer's other settings, gradient clipping, permutation and noise seeds, and pixel vs permuted MNIST. A model
class without `packed_forward` (the LSTM: cuDNN cannot batch different weights; user cells unless they add it)
trains in packs of one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from antisym.config import RunConfig
from antisym.data import task_spec

FAMILIES = {"pmnist": "mnist"}  # the identity permutation is a permutation: pixel and permuted MNIST share packs


def pack_key(cfg: Mapping[str, Any]) -> tuple | None:
    """What a run must share with the other members of its pack; None where it can only run alone."""
    try:
        settings = RunConfig.from_cfg(cfg)
    except Exception:  # an invalid run fails alone, with its own message, when its pack of one starts
        return None
    model = settings.model
    if getattr(model.target, "packed_forward", None) is None:
        return None
    t, spec = settings.trainer, task_spec(settings.task)
    varying = getattr(model.target, "member_settings", ())
    fixed = json.dumps({k: v for k, v in model.kwargs.items() if k not in varying}, sort_keys=True, default=repr)
    return (
        f"{model.target.__module__}.{model.target.__qualname__}",
        fixed,
        FAMILIES.get(settings.task.name, settings.task.name),
        spec.seq_len,
        spec.input_size,
        t.batch_size,
        t.max_steps,
        t.eval_every,
        t.device,
        t.dtype,
        f"{settings.optimizer.target.__module__}.{settings.optimizer.target.__qualname__}",
        t.lr_schedule,
    )


def group_packs(cfgs: Sequence[Mapping[str, Any]], pack_size: int) -> list[list[int]]:
    """Indices of the runs, grouped into packs of compatible runs of at most pack_size, in sweep order."""
    groups: dict[Any, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        key = pack_key(cfg)
        groups.setdefault(key if key is not None else ("alone", i), []).append(i)
    size = max(1, pack_size)
    return [members[k : k + size] for members in groups.values() for k in range(0, len(members), size)]
