"""The GPU check's report: markdown sections plus raw numbers, rewritten to disk after every section so that a run
cut off by its time budget still leaves what it measured."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from antisym.provenance import provenance


def log(msg: str) -> None:
    print(msg, flush=True)


def header(meta: Mapping[str, Any], title: str) -> list[str]:
    """The first lines of a benchmark report: what ran, where, when, from which commit."""
    commit = (meta.get("git_commit") or "unknown") + (" (uncommitted changes)" if meta.get("git_dirty") else "")
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    return [
        f"# {title}",
        "",
        f"- device: {meta['device']}",
        f"- date (UTC): {meta['date_utc']}",
        f"- git commit: {commit}",
        f"- torch {meta['versions']['torch']}, triton {triton_version}, python {meta['versions']['python']}",
        f"- command: `{' '.join(meta['argv'])}`",
        f"- wall time of the run: {meta['wall_time_s']:.0f} s",
        f"- load average (1/5/15 min) at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())} "
        f"on {os.cpu_count()} CPUs (other processes share this machine)",
        "",
    ]


def write_lines(lines: list[str], out: str | Path) -> Path:
    """A report's lines written to `out` (its folder made), announced on stdout."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    return out


def run_meta(script: str, settings: Mapping[str, Any], started: float, device: Any, commit: str | None) -> dict:
    """provenance() of a run, with the commit given on the command line where the checkout has no .git."""
    meta = provenance(script, dict(settings), started, device=str(device))
    if commit:
        meta["git_commit"], meta["git_dirty"] = commit, None
    return meta


class Report:
    """Sections of markdown plus raw numbers: <out>/bench.md and <out>/gpu_check.json, rewritten by every `add`."""

    def __init__(
        self,
        out: Path,
        *,
        title: str,
        script: str,
        settings: Mapping[str, Any],
        started: float,
        device: Any,
        budget_s: float = float("inf"),
        commit: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.out, self.title, self.script, self.settings = Path(out), title, script, dict(settings)
        self.started, self.device, self.budget_s, self.commit, self.clock = started, device, budget_s, commit, clock
        self.sections: list[tuple[str, list[str]]] = []
        self.raw: dict[str, Any] = {}
        self.out.mkdir(parents=True, exist_ok=True)

    def add(self, title: str, lines: list[str], key: str, raw: Any) -> None:
        self.sections.append((title, lines))
        self.raw[key] = raw
        self.write()

    def write(self) -> None:
        meta = run_meta(self.script, self.settings, self.started, self.device, self.commit)
        lines = header(meta, self.title)
        for sec_title, sec_lines in self.sections:
            lines += [f"## {sec_title}", "", *sec_lines, ""]
        (self.out / "bench.md").write_text("\n".join(lines))
        (self.out / "gpu_check.json").write_text(json.dumps({"meta": meta, **self.raw}, indent=1, default=str))

    def time_left(self) -> float:
        return self.budget_s - (self.clock() - self.started)
