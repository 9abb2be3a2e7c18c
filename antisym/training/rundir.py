"""Run directories: what one holds, who may write it, and reading its files back.

The contract (docs/run-directory.md): a run directory holds the settings that trained it
(`config.yaml`, `overrides.yaml`), its metrics, checkpoints and `summary.json`, and nothing that describes another
run. One process writes it at a time, holding `run.lock`; a fresh start in a directory that already holds files moves
them to `superseded/<time>/` rather than mixing or deleting them. Before a run writes, the functions here decide what
its directory does (skip a completed run, refuse changed settings, resume a checkpoint or start afresh), so the
trainer only trains.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from antisym.errors import CheckpointError, RunDirError, UserError

CONFIG_FILE = "config.yaml"  # the resolved settings that trained this run
OVERRIDES_FILE = "overrides.yaml"  # the command-line overrides that composed them
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
TEST_PROBE = "test_probe"  # metrics.jsonl split of a test pass at a validation (trainer.test_every_eval)
PERMUTATION_FILE = "permutation.pt"  # pMNIST: the pixel order this run trained on
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINT_DIR}/last.pt"  # everything to continue exactly (removed once a record is finished)
BEST_CHECKPOINT = f"{CHECKPOINT_DIR}/best.pt"  # the weights at the best validation accuracy


class Status(StrEnum):
    """A run's state. summary.json records the first five: `running` until the run ends completed, diverged, failed
    or interrupted (a `running` record whose lock no process holds reads as interrupted). The drivers derive the
    others for a planned run (runs.run_state): no record yet, a record of other settings, a completed run whose
    plan raised its max_steps, a run whose settings come from runs not finished."""

    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    MISSING = "missing"
    STALE = "stale"
    INCOMPLETE = "incomplete"
    WAITING = "waiting"


FINISHED = (Status.COMPLETED, Status.DIVERGED)  # a result either way: never trained again unless asked
LOCK_FILE = "run.lock"
SUPERSEDED = "superseded"
RUN_FILES = (CONFIG_FILE, OVERRIDES_FILE, SUMMARY_FILE, METRICS_FILE, CHECKPOINT_DIR, PERMUTATION_FILE, "wandb")

log = logging.getLogger("antisym")


class RunLockedError(UserError):
    """Another live process writes this run directory."""


class SettingsChangedError(UserError):
    """The run directory holds a run trained under other settings than the ones given."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file whole or not at all: a temporary file renamed into place; on any failure (a full disk, a
    read-only folder) the temporary file is removed and the old file stays as it was. The temporary name is this
    process's and thread's own, so two writers of one file (two lanes rebuilding the tables as they stop together)
    never rename each other's."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(obj: dict, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_summary(run_dir: str | Path) -> dict | None:
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{path} is damaged ({err}). It is rewritten at the end of each run: delete it and resume the run "
            "(trainer.resume=true) to write it again."
        ) from None


def is_row(row: Any) -> bool:
    """A metrics row as the trainer writes it: a JSON object with an integer step, a split, and a numeric (or null)
    accuracy where it has one."""
    acc = row.get("acc") if isinstance(row, dict) else None
    return (
        isinstance(row, dict)
        and isinstance(row.get("step"), int)
        and not isinstance(row.get("step"), bool)
        and isinstance(row.get("split"), str)
        and (acc is None or (isinstance(acc, int | float) and not isinstance(acc, bool)))
    )


def read_metrics(path: Path, strict: bool = False) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl. A torn last line (what a kill mid-write leaves) is dropped with a warning; a line
    elsewhere that is not JSON is an error naming the file and the line (the file was damaged). A JSON line that is
    not a row (`42`, a row without its step: a hand edit) is skipped with a warning naming file and line, so it
    damages no reader; with `strict` (a resume, which rewrites the file from its rows) it is an error too, raised
    before anything is written."""
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows, skipped = [], []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                log.warning("%s: dropped a torn last line (the run was stopped while writing it).", path)
                continue
            raise CheckpointError(
                f"{path} line {i + 1} is damaged (not JSON) and is not the last line, so it is not a torn write. "
                "Repair or delete that line, then run again."
            ) from None
        if is_row(row):
            rows.append(row)
        else:
            skipped.append(str(i + 1))
    if skipped and strict:
        raise CheckpointError(
            f"{path} line {', '.join(skipped)} is not a metrics row (a JSON object with an integer step and a "
            "split, as the trainer writes). A resume rewrites the file from its rows and would drop it, so nothing "
            "was written: repair or delete that line, then resume again."
        )
    if skipped:
        log.warning("%s: skipped line %s: not a metrics row (a JSON object with an integer step and a split).",
                    path, ", ".join(skipped))  # fmt: skip
    return rows


SEGMENT_SOURCE = ("git_commit", "git_dirty", "device", "torch", "flush_denormal")  # what trained each segment
STAMPED = (*SEGMENT_SOURCE, "git_commit_source")  # what a summary's copy of a segment may add to the checkpoint's


def recorded_segments(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The segments (start, resumes) that trained a run, as its summary records them; a summary from before segments
    were recorded is one segment with its own commit and device (those of the last code and machine that ran it)."""
    fallback = {"from_step": 0, **{k: summary.get(k) for k in ("git_commit", "git_dirty", "device")}}
    return summary.get("segments") or [fallback]


def segments_before(state: dict[str, Any], previous: dict | None) -> list[dict[str, Any]]:
    """The segments (a start and each resume) that trained a checkpoint about to be resumed, each naming the commit,
    device and torch that trained it, so a run that moved between machines or code says so in its record.

    The checkpoint's own list is the truth about which segments it holds; where an entry there lacks its commit (the
    records of leases that stamped it into the summary after training, on a device copy without .git, before the
    trainer read ANTISYM_COMMIT), the summary's copy of the same segment fills it in. A checkpoint from before
    segments were recorded lists only its start and resume steps: their sources read `None` (not recorded), but the
    last, which wrote the summary, takes the summary's.
    """
    if "segments" in state:
        segments = [dict(s) for s in state["segments"]]
        recorded = {(s.get("from_step"), s.get("at")): s for s in (previous or {}).get("segments", [])}
        for seg in segments:
            known = recorded.get((seg.get("from_step"), seg.get("at")), {})
            seg.update({k: known[k] for k in STAMPED if seg.get(k) in (None, "unknown") and k in known})
        return segments
    resumes = state.get("resumed", [])
    segments = [{"from_step": 0, "at": state.get("started_at")}]
    segments += [{"from_step": r.get("at_step"), "at": r.get("at")} for r in resumes]
    for seg in segments:
        seg.update(dict.fromkeys(SEGMENT_SOURCE))
    if previous is not None and previous.get("resumed", []) == resumes:  # the summary was written by the last one
        segments[-1].update({k: previous.get(k) for k in SEGMENT_SOURCE})
    return segments


def recorded(run_dir: Path, name: str) -> Path | None:
    """A run's config.yaml or overrides.yaml: its own, else Hydra's .hydra/ copy (older runs kept only that); None
    where neither is."""
    return next((p for p in (run_dir / name, run_dir / ".hydra" / name) if p.is_file()), None)


def load_run_config(run_dir: str | Path):
    """The resolved settings that trained a run (OmegaConf), as the current configs have them (`as_current`: a
    record of older code read without its retired keys). Older runs kept only Hydra's .hydra/config.yaml."""
    from omegaconf import DictConfig, OmegaConf

    from antisym.config import as_current

    run_dir = Path(run_dir)
    path = recorded(run_dir, CONFIG_FILE)
    if path is not None:
        cfg = OmegaConf.load(path)
        return OmegaConf.create(as_current(OmegaConf.to_container(cfg))) if isinstance(cfg, DictConfig) else cfg
    raise FileNotFoundError(f"{run_dir} holds no {CONFIG_FILE}; is it a run directory?")


def load_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's config (`load_run_config`) as a dict, resolved where it can be; None when there is none."""
    from omegaconf import OmegaConf

    try:
        cfg = load_run_config(run_dir)
    except FileNotFoundError:
        return None
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime: the raw values still name the row
        return OmegaConf.to_container(cfg, resolve=False)


def load_run_model(run_dir: str | Path, which: str = "best", map_location: str = "cpu", allow: Iterable[str] = ()):
    """Rebuild a trained model from its run directory (`which` = best or last checkpoint). A class from outside the
    suite is built only where `allow` names it (antisym.trust: a record is data, never code)."""
    from omegaconf import OmegaConf

    from antisym.data import task_spec
    from antisym.models import build_model
    from antisym.training.checkpoint import load_checkpoint
    from antisym.trust import check_targets

    cfg = load_run_config(run_dir)
    check_targets(OmegaConf.to_container(cfg, resolve=False), allow, Path(run_dir) / CONFIG_FILE)
    spec = task_spec(OmegaConf.to_container(cfg.dataset, resolve=True))
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), spec.input_size, spec.num_classes)
    path = Path(run_dir) / CHECKPOINT_DIR / f"{which}.pt"
    state = load_checkpoint(path, "Retrain the run, or use the other checkpoint (best/last).")
    model.load_state_dict(state["model"])
    return model.to(map_location), cfg


def holds_run(run_dir: Path) -> bool:
    return any((run_dir / name).exists() for name in RUN_FILES)


def move_aside(run_dir: Path, reason: str) -> Path | None:
    """Move the files of an earlier run into superseded/<time>/ (never delete evidence); returns where."""
    present = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not present:
        return None
    dest = run_dir / SUPERSEDED / time.strftime("%Y%m%d-%H%M%S")
    while dest.exists():
        dest = dest.with_name(dest.name + "_")
    dest.mkdir(parents=True)
    for name in present:
        shutil.move(str(run_dir / name), dest / name)
    for log_file in run_dir.glob("*.log"):  # Hydra's job log: copied and emptied, not moved, as this run's
        shutil.copy2(log_file, dest / log_file.name)  # handler holds it open and goes on appending to it
        os.truncate(log_file, 0)
    (dest / "REASON").write_text(reason + "\n")
    log.warning("%s: earlier files moved to %s (%s)", run_dir, dest, reason)
    return dest


@dataclass
class Snapshot:
    """A run directory's own files as they were before this call wrote any, so that a run refused before its first
    step (bad data, a changed data file, a batch larger than the data) leaves the directory as it found it."""

    run_dir: Path
    files: dict[str, bytes | None]
    existed: bool  # whether the directory was there before this call (its lock makes it)
    moved_to: Path | None = None  # where move_aside put an earlier run's files
    written: list[Path] = field(default_factory=list)  # other files written before the first step (a branch's)

    WRITTEN = (CONFIG_FILE, OVERRIDES_FILE, SUMMARY_FILE, METRICS_FILE, PERMUTATION_FILE)  # before the first step

    @classmethod
    def take(cls, run_dir: Path) -> Snapshot:
        files = {n: (run_dir / n).read_bytes() if (run_dir / n).is_file() else None for n in cls.WRITTEN}
        return cls(run_dir, files, existed=any(p.name != LOCK_FILE for p in run_dir.iterdir()))

    def restore(self) -> None:
        for path in self.written:
            path.unlink(missing_ok=True)
        remove_if_empty(self.run_dir / CHECKPOINT_DIR)
        for name, data in self.files.items():
            path = self.run_dir / name
            if data is None or self.moved_to is not None:
                path.unlink(missing_ok=True)
            else:
                atomic_write_bytes(path, data)
        if self.moved_to is not None:
            (self.moved_to / "REASON").unlink(missing_ok=True)
            for item in self.moved_to.iterdir():
                shutil.move(str(item), self.run_dir / item.name)
            self.moved_to.rmdir()
            remove_if_empty(self.moved_to.parent)


def saved_settings(run_dir: Path) -> dict[str, Any] | None:
    """The settings a run directory was trained under; None where it holds none; CheckpointError where its
    config.yaml is damaged (unparseable, emptied, a section missing): nothing could be said to match it."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    return parse_settings(path.read_text(errors="replace"), str(path))


def parse_settings(text: str, path: str) -> dict[str, Any]:
    """A config.yaml's settings (`text`, read from `path`: a file, or a committed one), or CheckpointError where it
    is damaged, as `saved_settings` says."""
    from omegaconf import OmegaConf

    try:
        saved = OmegaConf.to_container(OmegaConf.create(text), resolve=False)
    except Exception as err:  # YAML errors of every kind
        saved, why = None, f"it does not parse ({type(err).__name__})"
    if saved is not None:
        sections = ("model", "dataset", "optimizer", "trainer", "data")
        missing = [s for s in sections if not isinstance(saved, dict) or not isinstance(saved.get(s), dict)]
        why = f"it has no {', '.join(missing)} section" if missing else ""
    if why:
        raise CheckpointError(
            f"{path} is damaged: {why}. The settings that trained this run are unknown, so it can be neither resumed "
            "nor skipped as completed. Restore the file from a copy of the run, or start the run again with "
            "trainer.resume=false (the old files are kept in superseded/)."
        )
    return saved


def settings_changed(run_dir: Path, diffs: list[str], what: str) -> SettingsChangedError:
    """The refusal of a run `what` (completed, checkpointed at ...) under other settings: its results would be
    reported under settings that did not produce them."""
    return SettingsChangedError(
        f"{run_dir} holds a run {what} under other settings ({'; '.join(diffs)}). Its results would be reported "
        "under settings that did not produce them, so it is left as it is. Give the same settings to continue it, "
        "or write the new run to another directory (hydra.run.dir=..., or another hydra.sweep.dir for a sweep)."
    )


def skips_completed(
    run_dir: Path, cfg: dict[str, Any], previous: dict | None, skip_completed: bool, resume: bool | str
) -> bool:
    """Whether trainer.skip_completed skips this directory: it holds a completed run of the same settings. A
    completed run of other settings is refused rather than trained over; one whose max_steps is raised goes on only
    with trainer.resume (training it longer)."""
    from antisym.config import settings_differences

    completed = previous is not None and previous.get("status") == Status.COMPLETED
    if not (skip_completed and completed) or (saved := saved_settings(run_dir)) is None:
        return False
    if not settings_differences(saved, cfg, allow_longer=False):
        log.info("%s already completed (trainer.skip_completed=true): skipped", run_dir)
        return True
    diffs = settings_differences(saved, cfg)
    if diffs or resume is False:
        raise settings_changed(
            run_dir, diffs or ["trainer.max_steps raised; add trainer.resume=true"], Status.COMPLETED
        )
    return False


def resume_source(run_dir: Path, cfg: dict[str, Any], resume: bool | str) -> Path | None:
    """The checkpoint trainer.resume continues (false: none; true: this run dir's, if it has one yet; a path: an
    earlier run dir or checkpoint file), refused unless the run that wrote it was trained under these settings."""
    from hydra.utils import to_absolute_path

    from antisym.config import settings_differences

    if resume is False:
        return None
    path = run_dir if resume is True else Path(to_absolute_path(str(resume)))
    if path.is_dir():
        path = path / LAST_CHECKPOINT
    if not path.is_file():
        if resume is True:
            log.info("no checkpoint yet in %s: starting from step 0.", path.parent)
            return None
        raise CheckpointError(f"trainer.resume={resume} but there is no checkpoint at {path}.")
    source_cfg = saved_settings(path.parent.parent)
    if source_cfg is None:
        raise CheckpointError(
            f"{path.parent.parent} holds no {CONFIG_FILE} beside the checkpoint to resume ({path}): the settings "
            "that trained it are unknown, so it cannot be continued under these. Resume a run directory with its "
            "config.yaml, or start afresh with trainer.resume=false."
        )
    diffs = settings_differences(source_cfg, cfg)
    if diffs:
        raise settings_changed(run_dir, diffs, f"checkpointed at {path}")
    return path


def take_over(run_dir: Path, source: Path | None) -> Snapshot:
    """Make the directory this run's before it writes: its files as they were (put back if the run is refused
    before its first step), and an earlier run's files moved aside unless this run continues that run's checkpoint."""
    before = Snapshot.take(run_dir)
    if source is None or source.parent.parent != run_dir:
        before.moved_to = move_aside(run_dir, "a fresh start (no checkpoint resumed) in a directory that held a run")
    return before


def record_settings(run_dir: Path, cfg: dict[str, Any], overrides: list[str] | None) -> None:
    """config.yaml and overrides.yaml, each written whole or not at all (a full disk leaves the old file): the
    settings a resume or a skip is later checked against."""
    from omegaconf import OmegaConf

    atomic_write_text(run_dir / CONFIG_FILE, OmegaConf.to_yaml(OmegaConf.create(cfg)))
    if overrides is not None:
        atomic_write_text(run_dir / OVERRIDES_FILE, OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


def unwritable(run_dir: Path, err: OSError, when: str) -> RunDirError:
    """The one paragraph for a run directory that cannot be written (read-only, full disk): files are written whole,
    so the fix is the folder, then a resume."""
    return RunDirError(
        f"{run_dir} cannot be written ({err.strerror or err} : {err.filename or run_dir}) {when}. Files are "
        "written whole or not at all, so what is there is consistent. Make the folder writable or free space, then "
        "run the same command with trainer.resume=true."
    )


def remove_if_empty(folder: Path, but: tuple[str, ...] = ()) -> None:
    """Remove a folder that holds nothing but the files named in `but` (a run directory a refused run was given,
    with the log Hydra opened in it); keep any other."""
    with contextlib.suppress(OSError):
        if {p.name for p in folder.iterdir()} <= set(but):
            for name in but:
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()


def lock_holder(run_dir: Path) -> dict | None:
    """Who holds the run's lock, if a live process does (the file a dead one left behind does not count)."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return None
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            try:
                return json.loads(Path(path).read_text() or "{}")
            except json.JSONDecodeError:
                return {}
        fcntl.flock(f, fcntl.LOCK_UN)
    return None


def effective_status(run_dir: Path, summary: dict | None) -> str:
    """The summary's status, except that 'running' without a live writer means the process was killed."""
    status = (summary or {}).get("status", Status.INCOMPLETE)
    if status == Status.RUNNING and lock_holder(run_dir) is None:
        return Status.INTERRUPTED
    return status


@dataclass(frozen=True)
class RunDir:
    """One run's directory: every file it holds, by what the file is, and reading them back. Readers outside the
    training loop (the tables, verify, the figures, the campaign) go through it, never through file names."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def overrides_file(self) -> Path:
        return self.path / OVERRIDES_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def permutation_file(self) -> Path:
        return self.path / PERMUTATION_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def last_checkpoint(self) -> Path:
        return self.path / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST_CHECKPOINT

    def is_run(self) -> bool:
        """Whether the folder is a run's (a summary or a config; Hydra's .hydra/ for runs of older code)."""
        return self.summary_file.is_file() or self.config_file.is_file() or (self.path / ".hydra").is_dir()

    def has_config(self) -> bool:
        return recorded(self.path, CONFIG_FILE) is not None

    def summary(self) -> dict | None:
        return read_summary(self.path)

    def config(self) -> dict[str, Any] | None:
        return load_config(self.path)

    def overrides(self) -> list[str] | None:
        """The command-line overrides that composed the run (older runs: Hydra's .hydra/ copy); None where neither
        is."""
        from omegaconf import OmegaConf

        path = recorded(self.path, OVERRIDES_FILE)
        return None if path is None else [str(o) for o in OmegaConf.to_container(OmegaConf.load(path))]

    def metrics(self, strict: bool = False) -> list[dict[str, Any]]:
        """metrics.jsonl's rows ([] where the run has written none)."""
        return read_metrics(self.metrics_file, strict) if self.metrics_file.is_file() else []

    def status(self, summary: dict | None) -> str:
        """`effective_status` of the summary the caller read (None: the run has none)."""
        return effective_status(self.path, summary)

    def model(self, which: str = "best", map_location: str = "cpu", allow: Iterable[str] = ()):
        return load_run_model(self.path, which, map_location, allow)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """summary.json, whole or not at all."""
        write_json(summary, self.summary_file)

    def record_settings(self, cfg: dict[str, Any], overrides: list[str] | None) -> None:
        record_settings(self.path, cfg, overrides)

    def lock(self) -> RunLock:
        """The writer's lock: hold it (`with run_dir.lock():`) before changing any file here."""
        return RunLock(self.path)

    def holds_run(self) -> bool:
        return holds_run(self.path)

    def lock_holder(self) -> dict | None:
        return lock_holder(self.path)

    def move_aside(self, reason: str) -> Path | None:
        return move_aside(self.path, reason)


class RunLock:
    """An exclusive lock on a run directory: `run.lock`, flock'ed for the writer's lifetime.

    The kernel drops a flock when its process dies, so a lock file left by a killed run is recognised as stale and
    taken over. The file records pid, host and start time for the message a second writer gets.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.file = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            f = open(self.path, "a+")  # noqa: SIM115 - held for the run's lifetime
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                f.close()
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                holder = lock_holder(self.path.parent) or {}
                raise RunLockedError(
                    f"{self.path.parent} is being written by another process (pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')}, since {holder.get('since', '?')}). Two writers would mix their "
                    "metrics and checkpoints: wait for it to finish, stop it, or write this run elsewhere "
                    "(hydra.run.dir=...)."
                ) from None
            # The holder before us may have removed the file after we opened it: lock the file that is there now.
            if self.path.exists() and os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino:
                break
            f.close()
        f.seek(0)
        stale = f.read().strip()
        if stale:
            log.warning("%s: taking over a stale lock left by a process that is gone (%s)", self.path, stale)
        since = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        try:
            f.seek(0)
            f.truncate()
            f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": since}) + "\n")
            f.flush()
        except OSError:  # a full disk: no lock file left behind (closing drops the flock)
            self.path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # the unwritten buffer fails again on close
                f.close()
            raise
        self.file = f
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()
            self.file = None
