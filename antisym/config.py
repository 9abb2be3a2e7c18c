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
import inspect
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from antisym.errors import ConfigError

# Keys that may differ between a run's saved config and the config that resumes (or skips) it: they change how a
# run is computed, logged or stored, never what it computes. trainer.max_steps may be *raised* (train longer) unless
# the learning-rate schedule depends on it (cosine); see `settings_differences`.
FREE_KEYS = (
    "trainer.device",
    "trainer.resume",
    "trainer.skip_completed",
    "trainer.progress",
    "trainer.log_every",
    "trainer.eval_batch_size",
    "trainer.jacobian_every",
    "trainer.jacobian_batch",
    "trainer.time_limit_s",
    "trainer.threads",
    "model.impl",
    "data.root",  # where the files are; which files they are is the data fingerprint's to say
    "data.download",
    "logger",
    "paths",
    "tags",
    "seeds",
    "preset",
    "hydra",
    "pack",
)
LENGTH_KEYS = ("trainer.max_steps", "dataset.max_steps")
# Keys added to the configs after runs were recorded, with the value those runs had: a saved config without such a
# key matches that value only. Any other key the saved config lacks is a difference: a config missing a key is
# damaged or from other code, and nothing can be said to match it.
ADDED_KEYS: dict[str, Any] = {}
TOP_LEVEL = ("model", "dataset", "optimizer", "trainer", "data", "logger", "paths", "tags", "seeds", "preset", "quick")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
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


def experiment_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened settings that define what a run trains (everything but the FREE_KEYS)."""
    return {k: v for k, v in flatten(cfg).items() if not _is_free(k)}


def settings_differences(saved: Mapping[str, Any], new: Mapping[str, Any], *, allow_longer: bool = True) -> list[str]:
    """'key: saved -> new' for each experiment setting that differs between two resolved configs.

    A key only the saved config has is retired and not compared; a key only the new one has is a difference, unless
    it is in ADDED_KEYS with the value runs before it had. With `allow_longer`, a larger max_steps is not a
    difference unless the schedule is cosine (whose shape depends on max_steps).
    """
    a, b = experiment_settings(saved), experiment_settings(new)
    cosine = "cosine" in (a.get("trainer.lr_schedule"), b.get("trainer.lr_schedule"))
    diffs = [
        f"{key}: missing from the saved config -> {b[key]!r}"
        for key in sorted(b.keys() - a.keys())
        if not (key in ADDED_KEYS and b[key] == ADDED_KEYS[key])
    ]
    for key in sorted(a.keys() & b.keys()):
        if a[key] == b[key]:
            continue
        longer = key in LENGTH_KEYS and _number(a[key]) and _number(b[key]) and b[key] > a[key]
        if longer and allow_longer and not cosine:
            continue
        diffs.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return diffs


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ----------------------------------------------------------------------------------------------- type checking


def _type_name(kind: Any) -> str:
    origin = typing.get_origin(kind)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(kind))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(kind))
    if origin in (list, tuple, Sequence):
        (inner, *_) = typing.get_args(kind) or (Any,)
        return f"a list of {_type_name(inner)}"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _conforms(value: Any, kind: Any) -> tuple[bool, Any]:
    """(whether value has type kind, the value converted: int -> float, list -> tuple)."""
    if kind is Any:
        return True, value
    origin = typing.get_origin(kind)
    if origin is Literal:
        return value in typing.get_args(kind), value
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(kind):
            ok, converted = _conforms(value, option)
            if ok:
                return True, converted
        return False, value
    if origin in (list, tuple, Sequence):
        if not isinstance(value, list | tuple):
            return False, value
        (inner, *_) = typing.get_args(kind) or (Any,)
        items = [_conforms(v, inner) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if kind is type(None):
        return value is None, value
    if kind is bool:
        return isinstance(value, bool), value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return True, float(value)
        return False, value
    if kind is str:
        return isinstance(value, str), value
    return isinstance(value, kind), value


def check_value(key: str, value: Any, kind: Any) -> Any:
    """value converted to kind, or a ConfigError that names the key, the value and the expected type."""
    ok, converted = _conforms(value, kind)
    if not ok:
        extra = " (NaN and infinities are not accepted)" if kind is float and isinstance(value, float) else ""
        raise ConfigError(f"{key}={value!r} is not valid: it must be {_type_name(kind)}{extra}. Set {key}=<value>.")
    return converted


def check_mapping(section: str, values: Mapping[str, Any], fields: Mapping[str, tuple[Any, Any]]) -> dict[str, Any]:
    """Check every key of `values` against `fields` {key: (type, default or REQUIRED)}; refuse unknown keys."""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{section} has no key(s) {', '.join(unknown)}; it takes {', '.join(sorted(fields))}. "
            "Check the spelling, or remove them."
        )
    out = {}
    for key, (kind, default) in fields.items():
        if key in values:
            out[key] = check_value(f"{section}.{key}", values[key], kind)
        elif default is REQUIRED:
            raise ConfigError(f"{section}.{key} is missing; add {section}.{key}=<{_type_name(kind)}> to the config.")
        else:
            out[key] = default
    return out


REQUIRED = inspect.Parameter.empty
MAX_SEED = 2**63 - 2  # torch generators take 64-bit seeds; the noise generator is seeded with seed + 1


def check_name(key: str, value: Any) -> str:
    """A label that becomes part of a path (model.name names the run directory): letters, digits and _ . + -, so
    that no value can put a run outside its log folder."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ConfigError(
            f"{key}={value!r} cannot name a run directory: use letters, digits and _ . + - only (it is part of "
            f"the path under paths.log_dir), e.g. {key}=mycell."
        )
    return value


def check_top_level(cfg: Mapping[str, Any]) -> None:
    """Refuse keys the suite does not read (`+seed=3` would train seed 0 and record seed 3), naming the nearest."""
    unknown = sorted(set(cfg) - set(TOP_LEVEL))
    sections = {"logger": ("wandb",), "paths": ("log_dir",)}
    unknown += [f"{s}.{k}" for s, known in sections.items() for k in sorted(cfg.get(s) or {}) if k not in known]
    if not unknown:
        return
    known = [k for k in (*TOP_LEVEL, *flatten(cfg)) if k.split(".")[0] in TOP_LEVEL and k not in unknown]
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


class Section:
    """A frozen dataclass section of the config whose fields are type-checked from their annotations."""

    @classmethod
    def from_mapping(cls, section: str, values: Mapping[str, Any]):
        hints = typing.get_type_hints(cls)
        fields = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            default = f.default if f.default is not dataclasses.MISSING else REQUIRED
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            fields[f.name] = (hints[f.name], default)
        return cls(**check_mapping(section, values, fields))


def signature_fields(target: Any, skip: Sequence[str]) -> dict[str, tuple[Any, Any]]:
    """{keyword: (type, default)} of a class's constructor, types from annotations or, failing that, the default."""
    params = inspect.signature(target).parameters
    try:
        hints = typing.get_type_hints(target.__init__)
    except Exception:  # builtins and C extensions: fall back to the defaults' types
        hints = {}
    fields = {}
    for name, p in params.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kind = hints.get(name)
        if kind is None:
            default = p.default
            kind = Any if default is REQUIRED or default is None else _kind_of_default(default)
        fields[name] = (kind, p.default)
    return fields


def _kind_of_default(default: Any) -> Any:
    if isinstance(default, bool):
        return bool
    if isinstance(default, int | float):
        return float  # numbers of torch's optimizers (lr, momentum, weight_decay, ...)
    if isinstance(default, str):
        return str
    if isinstance(default, tuple | list):
        return Sequence[float]
    return Any


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
    eval_limit: int = 0

    def __post_init__(self) -> None:
        for key in ("max_steps", "batch_size", "eval_every", "eval_batch_size", "log_every", "jacobian_batch"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"trainer.{key} must be a positive integer, got {getattr(self, key)}.")
        for key in ("grad_clip", "jacobian_every", "time_limit_s", "seed", "threads", "eval_limit"):
            if getattr(self, key) < 0:
                raise ConfigError(f"trainer.{key} must be >= 0 (0 turns it off), got {getattr(self, key)}.")
        if self.seed > MAX_SEED:
            raise ConfigError(f"trainer.seed={self.seed} is out of range: seeds go from 0 to {MAX_SEED} (2**63 - 2).")
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


def import_class(path: str) -> type:
    """The class at a dotted path (Hydra's get_class without Hydra: the GPU machine may not have it)."""
    import importlib

    module, _, name = path.rpartition(".")
    target = getattr(importlib.import_module(module), name)
    if not isinstance(target, type):
        raise TypeError(f"{path} is not a class")
    return target


@dataclasses.dataclass(frozen=True)
class ClassConfig:
    """A section naming a class by `_target_`, with its keyword arguments checked against the constructor."""

    target: type
    kwargs: dict[str, Any]

    @classmethod
    def from_mapping(
        cls,
        section: str,
        values: Mapping[str, Any],
        skip: Sequence[str] = (),
        extra: Sequence[str] = (),
        needs: Sequence[str] = (),
        interface: str = "",
    ) -> ClassConfig:
        """`needs`: constructor arguments the class must take (checked first, explained by `interface`); `skip`:
        arguments the suite passes itself; `extra`: config keys that are not arguments (such as a label)."""
        path = values.get("_target_")
        try:
            target = import_class(str(path))
        except Exception:
            raise ConfigError(
                f"{section}._target_={path!r} is not an importable class. Give its full dotted path "
                "(package.module.Class) and make sure the package is installed or on PYTHONPATH."
            ) from None
        params = inspect.signature(target).parameters
        missing = [a for a in needs if a not in params]
        if missing:
            raise ConfigError(
                f"{section}._target_={path} cannot be built by this suite: its constructor lacks "
                f"{', '.join(missing)}. {interface}"
            )
        given = {k: v for k, v in values.items() if k not in ("_target_", *extra)}
        return cls(target, check_mapping(section, given, signature_fields(target, skip)))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, checked. Built once from the Hydra config by `from_cfg`."""

    model: ClassConfig
    model_name: str
    task: Any  # the task's own Config dataclass (antisym.data.tasks)
    optimizer: ClassConfig
    trainer: TrainerConfig
    data: DataConfig
    wandb: WandbConfig | None
    tags: tuple[str, ...]

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> RunConfig:
        from antisym.data.tasks import task_config
        from antisym.models import model_config

        cfg = as_container(cfg)
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
