"""The device call rehearsed on this machine before a lease spends device time on it.

`make gpu-campaign` prints one command for a bare GPU machine that gets a copy of the working tree plus the carried
wheels and data part. Here that same command (campaign.device.prepare builds both) runs in a scratch copy of exactly
what would travel, with `python3` this interpreter, its own two folders (/tmp/site, the data's destination) moved under
the scratch folder, one torch thread and no GPU; the archives it leaves in $OUT are then collected into the scratch
copy's records, as `make gpu-campaign-collect` would. It checks the wheels install, the data part assembles, the lease
starts from the committed records, trains, checkpoints and archives, and the archives collect; it cannot check the GPU
(the lease trains eager on the CPU and says parity is not applicable) nor the device's package versions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from antisym.errors import UserError
from campaign.device import DEST, REPO, SITE, prepare, tree_files

MARK = ".antisym-rehearsal"  # what makes a folder one this module may empty


@dataclass
class Rehearsal:
    """What one rehearsal ran and left: its exit code, the command as run, and the lease's archives and report."""

    code: int
    command: str
    archives: list[Path]
    progress: str
    collected: str


def rehearse(plan: str, budget_s: float, scratch: Path, commit: str, repo: Path = REPO) -> Rehearsal:
    """Run the device command for `plan` with `budget_s` in `scratch` (emptied first), then collect its archives
    into the scratch copy's records (results/runs there); the tree it starts from is `repo`'s, never written to."""
    if scratch.is_dir() and any(scratch.iterdir()) and not (scratch / MARK).is_file():
        raise UserError(f"{scratch} holds files that no rehearsal wrote, and a rehearsal empties its folder first: "
                        "name a new or empty folder with --scratch")  # fmt: skip
    command, carry, _ = prepare(plan, budget_s, commit, repo)
    shutil.rmtree(scratch, ignore_errors=True)
    tree, out, bin_dir = scratch / "tree", scratch / "out", scratch / "bin"
    for name in [*tree_files(repo), *(str(p.relative_to(repo)) for c in carry for p in (repo / c).rglob("*"))]:
        if (repo / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, tree / name)
    out.mkdir(parents=True)
    bin_dir.mkdir()
    (scratch / MARK).touch()
    shim = bin_dir / "python3"  # a script, not a link: a linked venv interpreter would not find its venv
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(0o755)
    command = command.replace(SITE, str(scratch / "site")).replace(DEST, str(scratch / "data"))
    env = {**os.environ, "OUT": str(out), "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    env.pop("PYTHONPATH", None)  # the command sets its own, as on the device
    code = subprocess.run(["bash", "-c", command], cwd=tree, env=env, check=False).returncode
    archives = sorted(out.glob("records-*.tar.gz"))
    progress = (out / "progress.md").read_text() if (out / "progress.md").is_file() else ""
    collected = ""
    if code == 0 and archives:
        collect = [sys.executable, "-m", "campaign", "collect", *map(str, archives), "--plan", plan,
                   "--tables", str(scratch / "tables"), "--leases", str(scratch / "leases")]  # fmt: skip
        done = subprocess.run(collect, cwd=tree, env=env, capture_output=True, text=True, check=False)
        code, collected = done.returncode, done.stdout + done.stderr
    return Rehearsal(code, command, archives, progress, collected)
