"""Run records in and out of a lease: the changed ones archived into a few files, extracted and checked on collect.

A record is a run directory's settings, metrics, summary and checkpoints (last.pt only while the run is unfinished),
or a parity result (parity/<key>.json); nothing bulky, no lock, no superseded/ files. The device returns at most 8
files, so a lease archives its records into at most `max_archives` tar.gz files, each with a MANIFEST.json of every
member's sha256. `collect` extracts them into a staging folder, checks every record and every checksum, and only then
replaces the records it holds, each under its run lock, keeping what it replaces in superseded/: a damaged archive or
record, a run being trained here, or a record of other settings changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from antisym.config import settings_differences
from antisym.errors import UserError
from antisym.training.checkpoint import load_checkpoint, load_permutation
from antisym.training.rundir import (
    BEST_CHECKPOINT,
    CONFIG_FILE,
    FINISHED,
    LAST_CHECKPOINT,
    METRICS_FILE,
    OVERRIDES_FILE,
    PERMUTATION_FILE,
    SUMMARY_FILE,
    SUPERSEDED,
    RunDir,
    Status,
)
from antisym.training.runs import RunState, run_state
from campaign.limits import FILE_BACK_BYTES

RUN_RECORD_FILES = (CONFIG_FILE, OVERRIDES_FILE, METRICS_FILE, SUMMARY_FILE, PERMUTATION_FILE, BEST_CHECKPOINT)
MANIFEST = "MANIFEST.json"
ARCHIVE_LIMIT = FILE_BACK_BYTES
UNKNOWN_COMMITS = (None, "", "unknown")


class RecordError(UserError):
    """An archive or a record in it is damaged or incomplete; nothing was changed."""


@dataclass(frozen=True)
class Move:
    unit: str  # block/run, or parity/<key>.json
    before: RunState
    after: RunState


def unit_files(records: Path, unit: str) -> list[str]:
    """The files of one record (paths relative to records) that travel."""
    path = records / unit
    if path.is_file():
        return [unit]
    names = list(RUN_RECORD_FILES)
    if not run_state(path).finished:
        names.append(LAST_CHECKPOINT)
    return [f"{unit}/{name}" for name in names if (path / name).is_file()]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def archive_records(records: Path, units: Sequence[str], out: Path, max_archives: int) -> list[Path]:
    """records-<k>.tar.gz in out holding the units, balanced by size over at most max_archives files."""
    sized = sorted(
        ((unit, unit_files(records, unit)) for unit in units),
        key=lambda u: -sum((records / f).stat().st_size for f in u[1]),
    )
    bins: list[list[tuple[str, list[str]]]] = [[] for _ in range(min(max_archives, len(sized)))]
    for unit in sized:  # largest first into the lightest archive
        min(bins, key=lambda b: sum((records / f).stat().st_size for _, files in b for f in files)).append(unit)
    out.mkdir(parents=True, exist_ok=True)
    archives = []
    for k, members in enumerate(bins, 1):
        files = [f for _, fs in members for f in fs]
        manifest = {"units": [u for u, _ in members], "files": {f: _sha256(records / f) for f in files}}
        path = out / f"records-{k}.tar.gz"
        tmp = path.with_name(path.name + ".tmp")
        with tarfile.open(tmp, "w:gz") as tar:
            blob = tmp.with_name(MANIFEST)
            blob.write_text(json.dumps(manifest, indent=1))
            tar.add(blob, MANIFEST)
            blob.unlink()
            for f in files:
                tar.add(records / f, f)
        size = tmp.stat().st_size
        if size > ARCHIVE_LIMIT:
            tmp.unlink()
            raise RecordError(f"{path.name} would be {size >> 20} MiB, over the 16 MiB the device returns per file")
        tmp.replace(path)
        archives.append(path)
    return archives


def foreign_members(members: Iterable[tarfile.TarInfo], units: Sequence[str]) -> list[str]:
    """The members that are not a file of a record (a unit's RUN_RECORD_FILES or last.pt, or a file unit itself):
    a record is data, and anything else in an archive (a module its config could name) is never unpacked."""
    allowed = {f"{u}/{name}" for u in units for name in (*RUN_RECORD_FILES, LAST_CHECKPOINT)} | set(units)
    return [m.name for m in members if m.name not in allowed or not m.isfile()]


def _extract(archive: Path, staging: Path) -> list[str]:
    """Extract one archive into staging after reading it whole; its units, or RecordError."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = json.load(tar.extractfile(MANIFEST))
            members = [m for m in tar.getmembers() if m.name != MANIFEST]
            if sorted(m.name for m in members) != sorted(manifest["files"]):
                raise RecordError(f"{archive}: its members differ from its manifest; nothing was changed.")
            foreign = foreign_members(members, [str(u) for u in manifest["units"]])
            if foreign:
                raise RecordError(
                    f"{archive} holds {', '.join(foreign[:3])}{' ...' * (len(foreign) > 3)}, which "
                    f"{'is' if len(foreign) == 1 else 'are'} not a file of a run record ({', '.join(RUN_RECORD_FILES)}"
                    f", {LAST_CHECKPOINT}); nothing was changed. A record is data: code or other files that come with "
                    "one are never unpacked, since a config could name them. Archives come from `campaign run` only: "
                    "fetch this one again or run the lease again."
                )
            tar.extractall(staging, members=members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise RecordError(
            f"{archive} is damaged ({type(err).__name__}: {err}); nothing was changed. Fetch it again from the "
            "device's $OUT, or run the lease again."
        ) from None
    for name, digest in manifest["files"].items():
        if _sha256(staging / name) != digest:
            raise RecordError(f"{archive}: {name} does not match its checksum; nothing was changed.")
    return list(manifest["units"])


def check_record(path: Path) -> list[str]:
    """What is wrong with one unpacked record (empty when nothing is)."""
    if path.suffix == ".json":
        try:
            json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            return [f"{path.name}: {err}"]
        return []
    problems, run_dir = [], RunDir(path)
    if not run_dir.config_file.is_file():
        problems.append(f"no {CONFIG_FILE}")
    try:
        summary = run_dir.summary()
        if summary is None:
            problems.append(f"no {SUMMARY_FILE}")
        elif summary.get("git_commit") in UNKNOWN_COMMITS:
            problems.append(f"{SUMMARY_FILE} names no git commit")
        run_dir.metrics()
        for ckpt in sorted(run_dir.checkpoints.glob("*.pt")):
            load_checkpoint(ckpt, "The record is damaged.")
        if run_dir.permutation_file.is_file():
            load_permutation(run_dir.permutation_file, "The record is damaged.")
    except UserError as err:
        problems.append(str(err))
    return problems


def check_unit_name(unit: Any, archive: Path) -> str:
    """A unit name as a lease writes it (<block>/<run>, or parity/<key>.json), or RecordError: a name that would
    reach outside the records folder (absolute, `..`, a link's target) is never used as a path."""
    parts = PurePosixPath(unit).parts if isinstance(unit, str) else ()
    if len(parts) != 2 or any(p in ("", ".", "..") or "\\" in p for p in parts) or str(PurePosixPath(*parts)) != unit:
        raise RecordError(
            f"{archive}: its manifest names a record {unit!r}, which is not <block>/<run> inside the records folder; "
            "nothing was changed. Archives come from `campaign run` only: fetch this one again or run the lease again."
        )
    return unit


def older_than(before: RunState, after: RunState) -> bool:
    """Would the new record take the run back: fewer steps, or from finished to unfinished?"""
    return after.steps < before.steps or (before.status in FINISHED and after.status not in FINISHED)


def replacement_problems(units: Sequence[str], records: Path, new: Path) -> list[str]:
    """Why a record here may not be replaced by the archive's: a live process trains it (its run lock is held: the
    two would mix into one run), or the archive's was trained under other settings (another seed under this unit's
    name: a different experiment, never a newer copy of this one)."""
    problems = []
    for unit in units:
        here = records / unit
        if (holder := RunDir(here).lock_holder()) is not None:
            problems.append(f"{unit} is being trained here (pid {holder.get('pid', '?')} holds its run lock)")
            continue
        try:
            mine, theirs = RunDir(here).config(), RunDir(new / unit).config()
        except Exception:  # a config here that does not parse: it is kept in superseded/ like any other
            continue
        if mine is not None and theirs is not None and (diffs := settings_differences(mine, theirs)):
            problems.append(f"{unit} was trained under other settings than the archive's ({'; '.join(diffs)})")
    return problems


def replace_record(dest: Path, new: Path) -> None:
    """Put an unpacked record in place of the one at dest, under its run lock; what it replaces is kept in
    superseded/<time>/ (a file record: its folder's superseded/<time>/), never deleted or mixed with the new one."""
    if new.is_file():
        if dest.exists():
            kept = dest.parent / SUPERSEDED / time.strftime("%Y%m%d-%H%M%S")
            kept.mkdir(parents=True, exist_ok=True)
            dest.rename(kept / dest.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        new.rename(dest)
        return
    run_dir = RunDir(dest)
    with run_dir.lock():
        run_dir.move_aside("replaced by a collected archive's record")
        for item in new.iterdir():
            item.rename(dest / item.name)


def collect(archives: Iterable[Path], records: Path, allow_older: bool = False) -> list[Move]:
    """Unpack and check every archive, then replace the records they hold; returns what moved. A record that would
    take a run back (fewer steps, or finished -> unfinished: an older archive) is refused unless allow_older; one
    trained here now, or under other settings than the archive's, always (`replacement_problems`)."""
    records.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".collect-", dir=records))
    try:
        units: list[str] = []
        for archive in archives:
            for unit in _extract(Path(archive), staging / "new"):
                check_unit_name(unit, Path(archive))
                if unit in units:
                    raise RecordError(f"{unit} is in two of the archives; nothing was changed.")
                units.append(unit)
        problems = {u: p for u in units if (p := check_record(staging / "new" / u))}
        if problems:
            lines = "; ".join(f"{u}: {', '.join(p)}" for u, p in problems.items())
            raise RecordError(f"records failed their checks ({lines}); nothing was changed.")
        refused = replacement_problems(units, records, staging / "new")
        if refused:
            raise RecordError(
                f"the archives would replace records they may not: {'; '.join(refused)}. Nothing was changed. A "
                "run being trained here is collected once it stops; a record of other settings belongs in another "
                "run directory (the plan names one per setting), so check which lease or plan wrote the archive."
            )
        states = {u: _unit_state(records / u, Status.MISSING) for u in units}
        older = []
        for unit in units:
            before, after = states[unit], _unit_state(staging / "new" / unit, "record")
            if older_than(before, after):
                older.append(f"{unit} ({before.status}, {before.steps:,} steps here; {after.status}, "
                             f"{after.steps:,} in the archive)")  # fmt: skip
        if older and not allow_older:
            raise RecordError(
                f"the archives would take runs back: {'; '.join(older)}. They are older than the records here (an "
                "earlier lease's, or a copy that did not start from these records); nothing was changed. Pass "
                "--allow-older to replace them all the same."
            )
        moves = []
        for unit in units:
            replace_record(records / unit, staging / "new" / unit)
            moves.append(Move(unit, states[unit], _unit_state(records / unit, "record")))
        return moves
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unit_state(path: Path, absent: str) -> RunState:
    """A run record's state; a file record (parity) or an absent one is `absent` with no steps."""
    return run_state(path) if path.is_dir() else RunState(absent)
