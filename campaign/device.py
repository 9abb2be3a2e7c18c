"""The one command a GPU lease runs, and the carry list it needs, checked against what the device takes.

The device gets a bare copy of the working tree (no .git, no Hydra) plus the git-ignored paths named in `carry`, 64 MiB
in all: the wheels of Hydra and its two dependencies (.whl/campaign, `make gpu-campaign` builds them) and the MNIST
part that campaign/devdata.py split into .devdata/. The command installs the wheels, assembles the data, runs the
lease with the commit written out, and tees its log into $OUT beside the archives and the progress report.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from antisym.errors import UserError
from campaign.limits import CARRY_BYTES, MAX_CARRY, MAX_COMMAND

REPO = Path(__file__).resolve().parents[1]
WHEELS = ".whl/campaign"
DEVDATA = ".devdata"
DEST = "/tmp/antisym-data"
SITE = "/tmp/site"  # where the carried wheels install
CHECK_OUT = "/tmp/gpu_check"
CHECK_ARGS = "--train-steps 150 --sharing 1,4"  # a shorter check, so that the lease keeps most of the call


def path_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def tree_files(repo: Path = REPO) -> list[str]:
    """What travels without being carried: tracked files and untracked ones git does not ignore."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return [n.decode() for n in names if n and (repo / n.decode()).is_file()]


def tree_bytes(repo: Path = REPO) -> int:
    return sum((repo / n).stat().st_size for n in tree_files(repo))


def data_parts(devdata: Path) -> list[str]:
    manifest = devdata / "manifest.json"
    if not manifest.is_file():
        raise UserError(f"no {manifest}: split MNIST first (make devdata DEVDATA_SETS=mnist DEVDATA_SRC=<data folder>)")
    return [f"{DEVDATA}/{part['folder']}" for part in json.loads(manifest.read_text())["parts"]]


def device_command(plan: str, budget_s: float, commit: str, parts: list[str], check_s: float = 0) -> str:
    """The lease's shell command. With check_s, campaign/gpu_check runs first for about check_s seconds (its
    report comes back as gpu_check.tar.gz), the lease takes its launcher from the packed rows, and budget_s is the
    whole call's: the lease gets what the check left."""
    receive = [f"python3 -m campaign.devdata receive --part {p} --dest {DEST}" for p in parts]
    lease = f"--budget-s {budget_s:g}"
    check = []
    if check_s > 0:
        check = [
            f"mkdir -p {CHECK_OUT}",
            f"PYTHONUNBUFFERED=1 timeout {check_s + 90:g} python3 -m campaign.gpu_check --data-root {DEST}/root "
            f"--out {CHECK_OUT} --commit {shlex.quote(commit)} --budget-s {check_s:g} {CHECK_ARGS} 2>&1 "
            f"| tee {CHECK_OUT}/gpu_check.log",
            f"tar czf $OUT/gpu_check.tar.gz -C {Path(CHECK_OUT).parent} {Path(CHECK_OUT).name}",
        ]
        lease = f"--budget-s $(({budget_s:.0f} - SECONDS)) --gpu-check {CHECK_OUT}/gpu_check.json"
    steps = [
        "set -o pipefail",
        f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target {SITE} "
        f"{WHEELS}/*.whl && export PYTHONPATH={SITE} || exit",
        " && ".join([*receive, f"python3 -m campaign.devdata assemble --dest {DEST} --root {DEST}/root"]) + " || exit",
        *check,
        f"PYTHONUNBUFFERED=1 python3 -m campaign run --plan {shlex.quote(plan)} --lane gpu {lease} "
        f"--data-root {DEST}/root --out $OUT --commit {shlex.quote(commit)} 2>&1 | tee $OUT/campaign.log",
    ]
    return "; ".join(steps)


def prepare(
    plan: str, budget_s: float, commit: str, repo: Path = REPO, check_s: float = 0
) -> tuple[str, list[str], int]:
    """(the device command, the carry list, the bytes that travel); UserError where it would not fit."""
    wheels = sorted((repo / WHEELS).glob("*.whl"))
    if not wheels:
        raise UserError(f"no wheels in {repo / WHEELS}: make gpu-campaign builds them")
    carry = [WHEELS, *data_parts(repo / DEVDATA)]
    total = tree_bytes(repo) + sum(path_bytes(repo / c) for c in carry)
    command = device_command(plan, budget_s, commit, carry[1:], check_s)
    if total >= CARRY_BYTES:
        raise UserError(f"the call would carry {total / 2**20:.1f} MiB, over the device's 64 MiB: pack MNIST only")
    if len(carry) > MAX_CARRY or len(command) > MAX_COMMAND:
        raise UserError(f"{len(carry)} carried paths / a {len(command)}-character command: over the device's limits")
    return command, carry, total
