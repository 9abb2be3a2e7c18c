"""Which runs, in what state: the one model of a run that `make reproduce-table` (antisym.results.reproduce), the
packed launcher (hydra_plugins) and the campaign (campaign/) share.

    RunState     what a run directory holds: missing, completed, diverged, failed, interrupted, running, stale
                 (trained under other settings than wanted) or waiting (its settings are not chosen yet)
    run_state    classify one directory from its summary.json and, given the wanted settings, its config.yaml
    compose      the config `train.py experiment=<preset> <overrides>` runs, resolved, without starting Hydra
    pack_key     what a run must share with the other members of its pack
    group_packs  runs grouped into packs of compatible runs, in order

Members of a pack share everything that fixes the shape and the rhythm of the computation: the model class and every
model setting but those its class lists in `member_settings` (eps, gamma, sigma_w, ...), the task's family and shapes
(`antisym.data.task_family`: pixel and permuted MNIST share one), batch size, max_steps, eval_every, device, dtype,
optimizer class and lr schedule. They may differ in seed, the model's `member_settings`, learning rate and the
optimizer's other settings, gradient clipping, and permutation and noise seeds. A model class without `packed_forward`
(the LSTM: cuDNN cannot batch different weights; user cells unless they add it) trains in packs of one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from antisym.config import RunConfig, settings_differences
from antisym.data import task_family, task_spec
from antisym.training.rundir import FINISHED, RunDir, Status

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
# what a driver trains (failed: where it retries)
TODO = (Status.MISSING, Status.INTERRUPTED, Status.STALE, Status.FAILED, Status.INCOMPLETE)
T = TypeVar("T")


@dataclass(frozen=True)
class RunState:
    status: str  # a Status: missing | waiting | stale | incomplete | the summary's effective status
    steps: int = 0
    detail: str = ""  # why, where the status alone does not say it (the settings that differ, the error)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def todo(self, retry_failed: bool = False) -> bool:
        """Whether a driver trains it now: never a finished, waiting or running one; a failed one if asked."""
        return self.status in TODO and (retry_failed or self.status != Status.FAILED)


def run_state(run_dir: Path, wanted: Mapping[str, Any] | None = None, rerun_diverged: bool = False) -> RunState:
    """The state of one run directory. With `wanted` (the resolved settings a driver would train it under), a run
    trained under other settings is `stale` whatever its status: resuming it would mix settings, skipping it would
    report the wrong ones (a longer max_steps is not a difference for an unfinished run)."""
    record = RunDir(run_dir)
    summary = record.summary()
    steps = int((summary or {}).get("steps") or 0)
    if record.lock_holder() is not None:  # another lane or launcher trains it now, its summary written or not yet
        return RunState(Status.RUNNING, steps, "its lock is held by a live process")
    if summary is None:  # started (settings or a checkpoint written) but killed before its summary: interrupted
        status = Status.INTERRUPTED if record.holds_run() else Status.MISSING
    else:
        status = record.status(summary)
    cfg = record.config() if wanted is not None and run_dir.is_dir() else None
    grows = growing(run_dir, status, steps, int(wanted["trainer"]["max_steps"])) if wanted is not None else None
    diffs = (
        settings_differences(cfg, wanted, allow_longer=status != Status.COMPLETED or grows is not None) if cfg else []
    )
    if diffs:
        return RunState(Status.STALE, steps, "; ".join(diffs))
    if grows is not None:
        return grows
    if status == Status.DIVERGED and rerun_diverged:
        return RunState(Status.FAILED, steps, "diverged; rerun asked for (--rerun-diverged)")
    if status == Status.FAILED:
        return RunState(status, steps, str((summary or {}).get("error", status))[:160])
    if status in FINISHED or status == Status.MISSING:
        return RunState(status, steps)
    has_ckpt = record.last_checkpoint.is_file()
    return RunState(status, steps, "resumes from checkpoints/last.pt" if has_ckpt else "no checkpoint: starts again")


def growing(run_dir: Path, status: str, steps: int, max_steps: int) -> RunState | None:
    """A completed run that kept its last checkpoint, asked for more steps: the same run goes on (a constant lr
    changes nothing already trained; the trainer refuses where the schedule depends on max_steps)."""
    if status != Status.COMPLETED or steps >= max_steps or not RunDir(run_dir).last_checkpoint.is_file():
        return None
    return RunState(
        Status.INCOMPLETE, steps, f"completed at {steps:,}; trains on to {max_steps:,} from checkpoints/last.pt"
    )


def compose(preset: str, overrides: Sequence[str], config_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The job config that `train.py experiment=<preset> <overrides>` would run (resolved, without Hydra's run)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    job_overrides = [o for o in overrides if not o.lstrip("+~").startswith("hydra")]
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[f"experiment={preset}", *job_overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def has_key(cfg: Mapping[str, Any], dotted: str) -> bool:
    """Whether a composed config has `dotted` (a key of an override: +/~ prefixes ignored)."""
    node: Any = cfg
    for part in dotted.lstrip("+~").split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def compose_where_present(
    preset: str, overrides: Sequence[str], where_present: Sequence[str] = (), extra: Sequence[str] = ()
) -> tuple[dict[str, Any], list[str]]:
    """compose(preset, overrides + extra), with the `where_present` overrides added (before `extra`) where the composed
    config has their key (model.impl: the LSTM has none); the config and the overrides that composed it. One
    composition where every key is there (Hydra refuses an override of a missing key), else two."""
    from hydra.errors import HydraException

    if where_present:
        every = [*overrides, *where_present, *extra]
        try:
            return compose(preset, every), every
        except HydraException:  # a key this preset's config lacks, or a bad override (then refused below)
            pass
    cfg = compose(preset, [*overrides, *extra])
    present = [o for o in where_present if has_key(cfg, o.split("=", 1)[0])]
    if not present:
        return cfg, [*overrides, *extra]
    chosen = [*overrides, *present, *extra]
    return compose(preset, chosen), chosen


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
        task_family(settings.task),
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


def first_pack(items: Iterable[T], key: Callable[[T], Hashable | None], pack_size: int) -> list[T]:
    """The first item and the items after it with its key, at most pack_size; an item whose key is None packs alone.
    Reads `items` only as far as it needs (a driver composes its runs one by one)."""
    pack: list[T] = []
    first: Hashable | None = None
    for item in items:
        k = key(item)
        if not pack:
            pack, first = [item], k
            if k is None:
                break
        elif k is not None and k == first:
            pack.append(item)
        if len(pack) >= max(1, pack_size):
            break
    return pack


def group_packs(cfgs: Sequence[Mapping[str, Any]], pack_size: int) -> list[list[int]]:
    """Indices of the runs, grouped into packs of compatible runs of at most pack_size (first_pack, again and again),
    the packs of one key together, in the order the sweep first names each key."""
    keys = [pack_key(cfg) for cfg in cfgs]
    first_seen = {}
    for i, k in enumerate(keys):
        first_seen.setdefault(k if k is not None else ("alone", i), i)
    left, packs = list(range(len(cfgs))), []
    while left:
        pack = first_pack(left, keys.__getitem__, pack_size)
        packs.append(pack)
        left = [i for i in left if i not in pack]
    return sorted(packs, key=lambda p: first_seen[keys[p[0]] if keys[p[0]] is not None else ("alone", p[0])])
