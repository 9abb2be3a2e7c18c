"""Branch runs (`trainer.init_from`): a new run that starts from another run's checkpoint.

Two runs are one computation up to a checkpoint's step k when their settings differ only where the new ones first
act at or after k: a learning-rate schedule that decays from k on, a longer run. A branch is then simply the run of
its own settings whose first k steps were trained under the source's name: its directory receives the source's
checkpoint, best checkpoint, permutation and metrics, and the trainer resumes it from k (rows after k dropped, as any
resume drops them); its record names the source, commit and step. A choice that acts late (a decay the paper does
not name) is read in the iterations after k against the source's own continuation, without training both from 0.

A source pinned as `<commit>:<run dir>` is read from git, so every committed checkpoint of a run is a branch point,
also after the run has moved on or finished (a finished record keeps no last.pt).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from antisym.config import TrainerConfig, settings_differences
from antisym.errors import CheckpointError, ConfigError
from antisym.provenance import committed_file, resolve_commit
from antisym.training.checkpoint import load_checkpoint, load_data
from antisym.training.optim import lr_factor
from antisym.training.rundir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    METRICS_FILE,
    PERMUTATION_FILE,
    SUMMARY_FILE,
    atomic_write_bytes,
    parse_settings,
)

# The settings a branch may change: their effect is the learning rate at each step, compared below up to k.
LATE_KEYS = ("trainer.lr_schedule", "trainer.lr_decay_steps", "trainer.lr_decay_factor", "trainer.max_steps")
PIN = (
    " A finished record keeps no last.pt: name a commit that holds one, <commit>:<run dir> (its history: "
    "git log -- <run dir>/checkpoints/last.pt)."
)
COPIED = (BEST_CHECKPOINT, METRICS_FILE, PERMUTATION_FILE)  # beside the checkpoint, where the source has them


@dataclass(frozen=True)
class Source:
    """Where a branch's files come from: a run directory on disk, or one as a commit holds it."""

    spec: str  # trainer.init_from as given
    run_dir: str  # on disk: absolute; under a commit: from the repository's root
    checkpoint: str  # from the run directory: checkpoints/last.pt unless a .pt file was named
    commit: str | None = None  # the full hash

    @classmethod
    def parse(cls, spec: str, absolute: Callable[[str], str]) -> Source:
        """`<commit>:<run dir or .pt file>` where the part before the colon names a commit here, else a path
        (`absolute` makes it so, as Hydra's to_absolute_path)."""
        rev, sep, rest = spec.partition(":")
        commit = resolve_commit(rev) if sep and rest else None
        if sep and rest and commit is None and re.fullmatch(r"[0-9a-f]{7,40}", rev):
            raise CheckpointError(
                f"trainer.init_from={spec}: {rev} names no commit of this checkout's history (a shallow clone, or a "
                "commit of another clone). Fetch it (git fetch --unshallow, or from the clone that made it), or "
                "name the source's run directory on disk."
            )
        path = Path(rest) if commit else Path(absolute(spec))
        if path.suffix == ".pt":
            return cls(spec, str(path.parent.parent), str(Path(path.parent.name) / path.name), commit)
        return cls(spec, str(path), LAST_CHECKPOINT, commit)

    def read(self, name: str) -> bytes | None:
        """A file of the source's run directory, or None where it has none."""
        if self.commit is not None:
            return committed_file(self.commit, f"{Path(self.run_dir).as_posix()}/{name}")
        path = Path(self.run_dir) / name
        return path.read_bytes() if path.is_file() else None

    def where(self, name: str) -> str:
        return f"{self.commit[:12]}:{self.run_dir}/{name}" if self.commit else str(Path(self.run_dir) / name)


@dataclass
class Branch:
    """A branch's start, read and checked before anything is written: the source's checkpoint (`state`), its
    summary (the data files and segments the branch inherits), the files its directory receives, and its record."""

    source: Source
    state: dict[str, Any]
    summary: dict[str, Any]
    files: dict[str, bytes]

    @property
    def step(self) -> int:
        return int(self.state.get("step", 0))

    @property
    def record(self) -> dict[str, Any]:
        """What the branch's first segment says of its start."""
        s = self.source
        return {"init_from": s.spec, "commit": s.commit, "run_dir": s.run_dir, "checkpoint": s.checkpoint,
                "step": self.step}  # fmt: skip

    def write(self, run_dir: Path, written: list[Path]) -> None:
        """The source's files into the branch's directory, each whole or not at all, each path added to `written`
        before it is written (what a refusal removes)."""
        for name, data in self.files.items():
            path = run_dir / name
            written.append(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)


def open_branch(spec: str, cfg: dict[str, Any], trainer: TrainerConfig, absolute: Callable[[str], str]) -> Branch:
    """The branch `trainer.init_from=spec` starts, refused unless its settings (`cfg`, `trainer` checked) agree with
    the source's up to the checkpoint's step."""
    source = Source.parse(spec, absolute)
    refuse = f"Branch from another checkpoint of the source, or start the run afresh without trainer.init_from={spec}."
    raw = source.read(source.checkpoint)
    if raw is None:
        pin = "" if source.commit else PIN
        raise CheckpointError(f"trainer.init_from={spec}: there is no checkpoint at "
                              f"{source.where(source.checkpoint)}.{pin}")  # fmt: skip
    state = load_checkpoint(source.where(source.checkpoint), refuse, raw)
    saved = source.read(CONFIG_FILE)
    if saved is None:
        raise CheckpointError(
            f"trainer.init_from={spec}: {source.where(CONFIG_FILE)} is missing, so the settings that trained the "
            f"checkpoint are unknown and nothing can be said to agree with them. {refuse}"
        )
    source_cfg = parse_settings(saved.decode(errors="replace"), source.where(CONFIG_FILE))
    step = int(state.get("step", 0))
    check_agreement(source_cfg, cfg, trainer, step, spec)
    files = {LAST_CHECKPOINT: raw, **{n: d for n in COPIED if (d := source.read(n)) is not None}}
    best = state.get("best", {}).get("step", -1)
    if best >= 0:
        held = load_data(source.where(BEST_CHECKPOINT), refuse, files[BEST_CHECKPOINT]).get("step") if (
            BEST_CHECKPOINT in files) else None  # fmt: skip
        if held != best:
            raise CheckpointError(
                f"trainer.init_from={spec}: the checkpoint at step {step:,} has its best validation at step {best:,}, "
                f"but {source.where(BEST_CHECKPOINT)} holds step {held} (the source trained on after it, or the file "
                "is lost), so the branch's best-checkpoint test could not be taken. Pin the source at a commit whose "
                "files were written together, <commit>:<run dir>."
            )
    try:
        summary = json.loads(source.read(SUMMARY_FILE) or b"{}")
    except json.JSONDecodeError:
        raise CheckpointError(f"trainer.init_from={spec}: {source.where(SUMMARY_FILE)} is damaged (not JSON), so "
                              f"the data files the source trained on are unknown. {refuse}") from None  # fmt: skip
    return Branch(source, state, summary, files)


def branch_start(overrides: list[str] | tuple[str, ...]) -> int | None:
    """The step a run given these overrides starts at when it branches (`trainer.init_from`: its source checkpoint's
    step), None for a run from step 0 or a source that cannot be read here (a plan counts a branch that has not
    trained yet as done up to that step: its first k iterations are the source's)."""
    specs = [o.split("=", 1)[1].strip("'\"") for o in overrides if o.lstrip("+").startswith("trainer.init_from=")]
    if not specs or specs[-1] in ("", "null"):
        return None
    try:
        source = Source.parse(specs[-1], os.path.abspath)
        raw = source.read(source.checkpoint)
        return None if raw is None else int(load_checkpoint(source.where(source.checkpoint), "", raw).get("step", 0))
    except (CheckpointError, ConfigError, OSError):
        return None


def check_agreement(source_cfg: dict[str, Any], cfg: dict[str, Any], t: TrainerConfig, step: int, spec: str) -> None:
    """Refuse a branch whose settings differ from its source's before `step`: any setting but the schedule's (and a
    longer run), or a schedule whose learning rate differs at some step below `step`."""
    early = settings_differences(source_cfg, cfg, allow_longer=False, ignore=LATE_KEYS)
    if early:
        raise ConfigError(
            f"trainer.init_from={spec}: this run's settings differ from those that trained the checkpoint in "
            f"{'; '.join(early)}. A branch may change only what acts from the checkpoint's step ({step:,}) on: the "
            f"learning-rate schedule and the run's length ({', '.join(LATE_KEYS)}). Set those as the "
            "source has them, or start the run afresh without trainer.init_from."
        )
    saved = source_cfg.get("trainer", {})
    names = [k.partition(".")[2] for k in LATE_KEYS]
    theirs = dataclasses.replace(t, **{n: saved.get(n, getattr(t, n)) for n in names})
    first = next((s for s in range(step) if lr_factor(t, s) != lr_factor(theirs, s)), None)
    if first is not None:
        raise ConfigError(
            f"trainer.init_from={spec}: this run's learning rate differs from the source's at step {first:,} "
            f"(x{lr_factor(t, first):g} against x{lr_factor(theirs, first):g}), before the checkpoint's step "
            f"({step:,}): the branch would not be the run its settings name. Let the schedule act from step {step:,} "
            "on (e.g. trainer.lr_decay_steps at or after it), or branch from an earlier checkpoint."
        )
