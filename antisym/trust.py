"""Which classes a run record may make this process import.

A record's config.yaml names its classes by `_target_`, and importing a module runs its code. Records travel
(archives from a lease, copies, clones), and a record can name a module it ships itself
(`results/runs/<block>/<run>/evil.py` is importable from the checkout), so a reader that builds whatever a record
names would run code that came with the data. Readers (verify, the figures) build only the suite's own classes and
torch's optimizers, and any other class only where the user names it (`--allow-target package.module.Class`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from antisym.errors import UserError

TRUSTED_PREFIXES = ("antisym.", "torch.optim.")  # installed code, never a record's


class UntrustedTargetError(UserError):
    """A record names a class from outside the suite that the user did not allow."""


def record_targets(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{dotted key: class path} of every `_target_` in a config, however deep."""
    found: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if key == "_target_":
            found[name] = str(value)
        elif isinstance(value, Mapping):
            found.update(record_targets(value, name + "."))
    return found


def untrusted_targets(cfg: Mapping[str, Any], allow: Iterable[str] = ()) -> dict[str, str]:
    """The `_target_`s of a config that are neither the suite's nor torch's optimizers nor in `allow`."""
    allowed = set(allow)
    return {
        key: target
        for key, target in record_targets(cfg).items()
        if target not in allowed and not target.startswith(TRUSTED_PREFIXES)
    }


def check_targets(cfg: Mapping[str, Any], allow: Iterable[str], where: str | Path) -> None:
    """UntrustedTargetError unless every class the config names may be imported here."""
    foreign = untrusted_targets(cfg, allow)
    if foreign:
        named = ", ".join(f"{k}={v}" for k, v in foreign.items())
        flags = " ".join(f"--allow-target {v}" for v in dict.fromkeys(foreign.values()))
        raise UntrustedTargetError(
            f"{where} names classes from outside the antisym package ({named}). A record is data: importing a class "
            "it names runs that module's code, which may have come with the record, so it was not built. If you "
            f"trust that code, name each class: {flags} on the command line (allow=[...] in Python)."
        )
