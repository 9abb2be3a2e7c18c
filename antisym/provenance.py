"""What produced a result: git commit, device, date, versions. Used by runs, figures and benchmarks alike.

Imports only torch and the standard library, so the GPU machine (torch and triton, nothing else) can run the
benchmark scripts that record it.
"""

from __future__ import annotations

import functools
import importlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def _git_bytes(*args: str, timeout: float = 10) -> bytes | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, timeout=timeout, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def _git(*args: str) -> str | None:
    out = _git_bytes(*args)
    return None if out is None else out.decode(errors="replace").strip()


# Names the commit where the code runs from a copy without .git (a lent device's copy of the tree, a tarball or
# container on a cluster): `<sha>` or `<sha>-dirty` (the copy has uncommitted changes), as `git_commit()` writes it.
COMMIT_ENV = "ANTISYM_COMMIT"


def code_version(modules: Sequence[str] = ()) -> dict[str, Any]:
    """`git_commit` and `git_dirty` of the code running: from git, else as ANTISYM_COMMIT names them (then with
    `git_commit_source`); None for both where neither says. results/ is left out of the comparison: it holds outputs,
    which a script regenerating them changes as it goes. Untracked files count only where they are among the files
    of `modules` (the classes a run was told to import): the commit does not hold that code, so the run is dirty and
    `git_untracked` names them."""
    commit = _git("rev-parse", "HEAD")
    if commit is not None:
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
        version = {"git_commit": commit, "git_dirty": bool(dirty) if dirty is not None else None}
        untracked = untracked_files(modules)
        if untracked:
            version.update(git_dirty=True, git_untracked=untracked)
        return version
    named = os.environ.get(COMMIT_ENV, "").strip()
    if named:
        sha = named.removesuffix("-dirty")
        return {"git_commit": sha, "git_dirty": sha != named, "git_commit_source": COMMIT_ENV}
    return {"git_commit": None, "git_dirty": None}


def untracked_files(modules: Sequence[str]) -> list[str]:
    """The files of the imported `modules` that lie in this repository and that git neither tracks nor ignores, as
    paths from its root."""
    files = [getattr(sys.modules.get(name), "__file__", None) for name in modules]
    inside = [str(path) for f in files if f and (path := Path(f).resolve()).is_relative_to(REPO_ROOT)]
    listed = _git("ls-files", "--others", "--exclude-standard", "--", *inside) if inside else None
    return sorted(listed.splitlines()) if listed else []


def git_state() -> tuple[str | None, bool | None]:
    """(commit, whether tracked code differs from it), as `code_version`; (None, None) where nothing says."""
    version = code_version()
    return version["git_commit"], version["git_dirty"]


@functools.cache  # a commit is in the history or not for the life of the process; records share a few commits
def commit_known(commit: str) -> bool | None:
    """Whether this checkout's history holds `commit` (None outside a git checkout): a record naming a commit that
    no clone has cannot be traced to its code."""
    if _git("rev-parse", "--git-dir") is None:
        return None
    return _git("cat-file", "-e", f"{commit}^{{commit}}") is not None


def resolve_commit(rev: str) -> str | None:
    """The full hash of the commit `rev` names in this checkout's history, or None (not a commit here, no git)."""
    return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")


def committed_file(commit: str, path: str) -> bytes | None:
    """A file's bytes as `commit` holds it (`path` from the repository's root), or None where it holds none."""
    return _git_bytes("show", f"{commit}:{path}", timeout=60)


def git_commit() -> str:
    """The commit, with -dirty when tracked files have uncommitted changes, or 'unknown'."""
    commit, dirty = git_state()
    return (commit or "unknown") + ("-dirty" if dirty else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: str = "cpu") -> str:
    """Human-readable compute device: the GPU name for cuda, else the CPU model and torch's thread count."""
    import torch

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu: {cpu_name()}, {torch.get_num_threads()} torch threads"


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("torch", "triton", "numpy", "matplotlib"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
        found[name] = getattr(module, "__version__", "?")
    return found


def provenance(script: str, settings: Mapping[str, Any], started: float, device: str = "cpu") -> dict[str, Any]:
    """What made a result: script, argv, commit (and whether the tree was dirty), date, device, settings, wall time."""
    commit, dirty = git_state()
    return {
        "script": script,
        "argv": sys.argv,
        "git_commit": commit,
        "git_dirty": dirty,
        "date_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_description(device),
        "host": platform.node(),
        "wall_time_s": round(time.time() - started, 2),
        "settings": dict(settings),
        "versions": _versions(),
    }
