"""The run's settings, typed and checked in one place before any data is read.

`RunConfig.from_cfg(cfg)` turns the Hydra config into frozen dataclasses: every key of every section is checked
against its declared type (a bool is not an int, "abc" is not a float, NaN and inf are not numbers a run can use) and
its range, unknown keys are refused, and each error is one `ConfigError` paragraph naming the key and what to set.
Sections whose keys depend on a class (the model's constructor, the optimizer's, the task's) are checked against
that class's signature, so a new key cannot skip the checks.

The same module defines which settings make an experiment (`experiment_settings`): resume, skip_completed, the
reproduction pipeline and the tables all compare runs through `settings_differences`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from antisym.checks import ClassConfig, Section, check_name, check_value
from antisym.data.tasks import TASKS, TaskConfig, task_config
from antisym.errors import ConfigError
from antisym.models import model_config

# Keys that may differ between a run's saved config and the config that resumes (or skips) it: they change how a
# run is computed, logged or stored, never what it computes. trainer.max_steps may be *raised* (train longer) unless
# the learning-rate schedule depends on it (cosine); see `settings_differences`.
FREE_KEYS = (
    "trainer.device",
    "trainer.resume",
    "trainer.init_from",  # a branch is the run its settings name (antisym/training/branch.py checks that)
    "trainer.skip_completed",
    "trainer.progress",
    "trainer.log_every",
    "trainer.eval_batch_size",
    "trainer.jacobian_every",
    "trainer.test_every_eval",  # a test pass beside each validation reads the model, never trains or chooses
    "trainer.jacobian_batch",
    "trainer.time_limit_s",
    "trainer.threads",
    "trainer.flush_denormal",  # only values below float32's smallest normal (1.2e-38) read as 0
    "model.impl",
    "data.root",  # where the files are; which files they are is the data fingerprint's to say
    "data.download",
    "logger",
    "paths",
    "tags",
    "preset",
    "hydra",
    "pack",
)
LENGTH_KEY = "trainer.max_steps"
# Keys older records carry that the configs no longer have, with the key that holds the setting now: `as_current`
# reads a saved config without them, and an override of one is refused naming its successor. dataset.max_steps was
# the paper length trainer.max_steps read by interpolation; `seeds` the presets' seeds for make reproduce-table, now
# its plan's (conf/campaign/tables.yaml): a run trains trainer.seed.
RETIRED_KEYS = {"dataset.max_steps": LENGTH_KEY, "seeds": "trainer.seed"}
# Keys added to the configs after runs were recorded, with the value those runs had: at that value a key is the same
# setting as its absence (one configuration in the tables, no difference on resume). Any other key the saved config
# lacks is a difference: a config missing a key is damaged or from other code, and nothing can be said to match it.
ADDED_KEYS: dict[str, Any] = {
    "trainer.eval_limit": 0,  # 0: whole splits, as every evaluation before the key
    "model.gate_bias": 0.0,  # the gated cells' gate bias at init: 0, as the paper's "biases 0"
    "model.init_reading": "variance",  # N(0, s) of Appendix C read as a variance, as every run before the key
    "optimizer.initial_accumulator_value": 0.0,  # Adagrad's starting sum of squared gradients: torch's 0
}
TOP_LEVEL = ("model", "dataset", "optimizer", "trainer", "data", "logger", "paths", "tags", "preset", "quick")
DEVICES = ("auto", "cpu", "cuda")


def _is_free(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in FREE_KEYS)


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a.b": value} for every leaf of a nested mapping (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = list(value) if isinstance(value, list | tuple) else value
    return out


def as_current(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A config as the current configs would compose it, where a record of older code differs: the RETIRED_KEYS left
    out, and a paper task named by `dataset.name` alone given the `_target_` its config names now."""
    out = {section: dict(value) if isinstance(value, Mapping) else value for section, value in cfg.items()}
    for key in RETIRED_KEYS:
        section, _, name = key.partition(".")
        if not name:
            out.pop(section, None)
        elif isinstance(out.get(section), dict):
            out[section].pop(name, None)
    dataset = out.get("dataset")
    if isinstance(dataset, dict) and dataset.get("_target_") is None and dataset.get("name") in TASKS:
        cls = TASKS[dataset["name"]]
        out["dataset"] = {"_target_": f"{cls.__module__}.{cls.__qualname__}", **dataset}
    return out


def experiment_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened settings that define what a run trains, read `as_current` (everything but the FREE_KEYS; an
    ADDED_KEYS key at the value runs had before it existed is left out, as those runs lack it)."""
    return {
        k: v
        for k, v in flatten(as_current(cfg)).items()
        if not _is_free(k) and not (k in ADDED_KEYS and v == ADDED_KEYS[k])
    }


def settings_differences(
    saved: Mapping[str, Any], new: Mapping[str, Any], *, allow_longer: bool = True, ignore: Sequence[str] = ()
) -> list[str]:
    """'key: saved -> new' for each experiment setting that differs between two resolved configs (but `ignore`'s).

    A key only the saved config has is retired and not compared; a key only the new one has is a difference (an
    ADDED_KEYS key at its old value is not a key here at all, `experiment_settings`). With `allow_longer`, a larger
    max_steps is not a difference unless the schedule is cosine (whose shape depends on max_steps).
    """
    a, b = ({k: v for k, v in experiment_settings(c).items() if k not in ignore} for c in (saved, new))
    cosine = "cosine" in (a.get("trainer.lr_schedule"), b.get("trainer.lr_schedule"))
    diffs = [f"{key}: missing from the saved config -> {b[key]!r}" for key in sorted(b.keys() - a.keys())]
    for key in sorted(a.keys() & b.keys()):
        if a[key] == b[key]:
            continue
        longer = key == LENGTH_KEY and _number(a[key]) and _number(b[key]) and b[key] > a[key]
        if longer and allow_longer and not cosine:
            continue
        diffs.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return diffs


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ----------------------------------------------------------------------------------------------- type checking


MAX_SEED = 2**63 - 2  # torch generators take 64-bit seeds; the noise generator is seeded with seed + 1


def check_top_level(cfg: Mapping[str, Any]) -> None:
    """Refuse keys the suite does not read (`+seed=3` would train seed 0 and record seed 3), naming the nearest."""
    unknown = sorted(set(cfg) - set(TOP_LEVEL))
    sections = {"logger": ("wandb",), "paths": ("log_dir",)}
    unknown += [f"{s}.{k}" for s, known in sections.items() for k in sorted(cfg.get(s) or {}) if k not in known]
    if not unknown:
        return
    names = (*TOP_LEVEL, *flatten(cfg))
    known = [k for k in names if k.split(".")[0] in TOP_LEVEL and k not in unknown]
    hints = []
    for key in unknown:
        tail = key.rsplit(".", 1)[-1]
        near = [k for k in known if difflib.get_close_matches(tail, [k.rsplit(".", 1)[-1]], cutoff=0.75)]
        hints.append(f"{key} (did you mean {' or '.join(near[:3])}?)" if near else key)
    raise ConfigError(
        f"The config has key(s) this suite does not read: {', '.join(hints)}. A `+key=value` adds a key that nothing "
        "uses, so the run would not do what the command says; set an existing key instead (python train.py --cfg "
        "job lists them all)."
    )


# ----------------------------------------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True)
class TrainerConfig(Section):
    max_steps: int
    batch_size: int
    eval_every: int
    eval_batch_size: int
    log_every: int
    seed: int
    device: str = "auto"
    resume: bool | str = False
    init_from: str | None = None
    skip_completed: bool = False
    grad_clip: float = 0.0
    lr_schedule: Literal["constant", "cosine", "step"] = "constant"
    lr_decay_steps: Sequence[int] = ()
    lr_decay_factor: float = 0.1
    jacobian_every: int = 0
    jacobian_batch: int = 8
    progress: bool = True
    time_limit_s: float = 0.0
    dtype: Literal["float32", "float64"] = "float32"
    threads: int = 0
    flush_denormal: bool = True
    eval_limit: int = 0
    test_every_eval: bool = False

    def __post_init__(self) -> None:
        for key in ("max_steps", "batch_size", "eval_every", "eval_batch_size", "log_every", "jacobian_batch"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"trainer.{key} must be a positive integer, got {getattr(self, key)}.")
        for key in ("grad_clip", "jacobian_every", "time_limit_s", "seed", "threads", "eval_limit"):
            if getattr(self, key) < 0:
                raise ConfigError(f"trainer.{key} must be >= 0 (0 turns it off), got {getattr(self, key)}.")
        if self.seed > MAX_SEED:
            raise ConfigError(f"trainer.seed={self.seed} is out of range: seeds go from 0 to {MAX_SEED} (2**63 - 2).")
        if self.init_from is not None and not self.init_from.strip():
            raise ConfigError("trainer.init_from is empty; name a run dir, a .pt checkpoint or <commit>:<run dir>, "
                              "or leave it null.")  # fmt: skip
        if self.lr_decay_factor <= 0:
            raise ConfigError(f"trainer.lr_decay_factor must be > 0, got {self.lr_decay_factor}.")
        base = self.device.split(":")[0]
        if base not in DEVICES or (":" in self.device and (base != "cuda" or not self.device[5:].isdigit())):
            raise ConfigError(
                f"trainer.device={self.device!r} is not a device this suite runs on; use auto, cpu, cuda or cuda:<N>."
            )


@dataclasses.dataclass(frozen=True)
class DataConfig(Section):
    root: str
    download: bool = True
    # Accept data files with fewer examples than the official sets (a deliberate subset, or tiny test data).
    allow_subset: bool = False

    def __post_init__(self) -> None:
        if not self.root.strip():
            raise ConfigError(
                "data.root is empty: the environment variable ANTISYM_DATA is set but empty (a `$(realpath ...)` of a "
                "folder that does not exist leaves it so), or data.root= was given nothing. Export ANTISYM_DATA as the "
                "absolute path of the folder that holds MNIST/ and cifar-10-batches-py/, unset it to use ./data, or "
                "give data.root=<folder>."
            )


@dataclasses.dataclass(frozen=True)
class WandbConfig(Section):
    project: str = "antisym"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    group: str | None = None
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.mode == "online" and not _wandb_key_available():
            raise ConfigError(
                "logger.wandb.mode=online needs a W&B API key, and none is set (no WANDB_API_KEY, no `wandb login` "
                "entry in ~/.netrc). Log in with `wandb login`, export WANDB_API_KEY, or keep mode=offline and "
                "upload later with `wandb sync <run dir>/wandb/offline-run-*`."
            )


def _wandb_key_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="replace")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, checked. Built once from the Hydra config by `from_cfg`."""

    model: ClassConfig
    model_name: str
    task: TaskConfig  # the task's own Config, a TaskConfig subclass (antisym.data.tasks)
    optimizer: ClassConfig
    trainer: TrainerConfig
    data: DataConfig
    wandb: WandbConfig | None
    tags: tuple[str, ...]

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> RunConfig:
        cfg = as_current(as_container(cfg))
        for section in ("model", "dataset", "optimizer", "trainer", "data"):
            if not isinstance(cfg.get(section), Mapping):
                raise ConfigError(f"The config has no `{section}` section; run through train.py or add one.")
        check_top_level(cfg)
        if "name" in cfg["model"]:
            check_name("model.name", cfg["model"]["name"])
        trainer = TrainerConfig.from_mapping("trainer", cfg["trainer"])
        optimizer = ClassConfig.from_mapping("optimizer", cfg["optimizer"], skip=("params",))
        lr = optimizer.kwargs.get("lr")
        if not isinstance(lr, float) or lr <= 0:
            raise ConfigError(f"optimizer.lr must be a positive number, got {lr!r}.")
        logger = cfg.get("logger") or {}
        wandb = logger.get("wandb")
        tags = check_value("tags", cfg.get("tags", []) or [], Sequence[str])
        return cls(
            model=model_config(cfg["model"]),
            model_name=str(cfg["model"].get("name", "")),
            task=task_config(cfg["dataset"]),
            optimizer=optimizer,
            trainer=trainer,
            data=DataConfig.from_mapping("data", cfg["data"]),
            wandb=WandbConfig.from_mapping("logger.wandb", wandb) if wandb else None,
            tags=tuple(tags),
        )


def as_container(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved plain dict of an OmegaConf config (or a plain mapping as it is)."""
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # the GPU machine may have no omegaconf: plain dicts only there
        return dict(cfg)
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)
