"""Typed checks of config sections: a value against its declared type, a mapping against fields, a class's keywords
against its constructor's signature. Each error is one `ConfigError` paragraph naming the key and what to set.

The sections themselves (the trainer's, the data's, the run's) are in antisym.config; the task and model configs
(antisym.data.tasks, antisym.models) use these checks too, so this module imports none of them.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from antisym.errors import ConfigError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


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


def check_name(key: str, value: Any) -> str:
    """A label that becomes part of a path (model.name names the run directory): letters, digits and _ . + -, so
    that no value can put a run outside its log folder."""
    if not isinstance(value, str) or not SAFE_NAME.fullmatch(value):
        raise ConfigError(
            f"{key}={value!r} cannot name a run directory: use letters, digits and _ . + - only (it is part of "
            f"the path under paths.log_dir), e.g. {key}=mycell."
        )
    return value


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


def import_class(path: str) -> type:
    """The class at a dotted path, by importlib: checking a config needs no Hydra (the library runs without it)."""
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
