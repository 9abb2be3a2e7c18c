"""make gpu-campaign-rehearse: the device command run here on a scratch copy of what travels, then collected."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest
import yaml

from antisym.errors import UserError
from campaign import devdata
from campaign.rehearse import MARK, rehearse

from .conftest import REPO

PLAN = {
    "launcher": "solo",
    "seeds": [0],
    "overrides": ["model.hidden_size=8", "trainer.batch_size=8", "trainer.eval_batch_size=16", "trainer.log_every=2",
                  "trainer.progress=false", "dataset.val_size=8", "data.allow_subset=true", "trainer.max_steps=4",
                  "trainer.eval_every=2"],
    "lanes": {"gpu": ["tiny"]},
    "blocks": [{"name": "tiny", "runs": ["table1/asym_mnist"]}],
}  # fmt: skip


def probe_wheel(folder: Path) -> None:
    """The smallest wheel pip installs: one module and its dist-info (the real ones are Hydra's, built by make)."""
    folder.mkdir(parents=True)
    info = "rehearsal_probe-0.0.dist-info"
    with zipfile.ZipFile(folder / "rehearsal_probe-0.0-py3-none-any.whl", "w") as whl:
        whl.writestr("rehearsal_probe.py", "CARRIED = True\n")
        whl.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: rehearsal-probe\nVersion: 0.0\n")
        whl.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(f"{info}/RECORD", f"rehearsal_probe.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n")


@pytest.fixture()
def clone(tiny_data, tmp_path) -> Path:
    """This repository's committed tree, without its records (the lease starts one tiny run), with the carried
    paths a lease needs: a wheel in .whl/campaign and tiny MNIST split into .devdata; the plan is an untracked file,
    which travels as the device's copy of the tree takes it."""
    repo = tmp_path / "repo"
    done = subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(REPO), str(repo)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"no git history here ({done.stderr.strip()[:80]})")
    subprocess.run(["git", "sparse-checkout", "set", "--no-cone", "/*", "!/results/runs/"], cwd=repo, check=True)
    subprocess.run(["git", "checkout", "-q"], cwd=repo, check=True)
    probe_wheel(repo / ".whl" / "campaign")
    assert devdata.main(["split", "--src", str(tiny_data[0]), "--out", str(repo / ".devdata"), "--sets", "mnist"]) == 0
    (repo / "tiny_plan.yaml").write_text(yaml.safe_dump(PLAN))
    return repo


def test_the_device_command_runs_here_and_its_archives_collect(clone, tmp_path, capfd):
    """The command prepare() builds for the device, run unchanged but for its two /tmp folders: the wheel installs
    where the command's PYTHONPATH points, the data part assembles, the lease trains the plan's run from the copied
    tree and archives it, and collect puts the record into the scratch copy's records; the repository is not written."""
    scratch = tmp_path / "scratch"
    before = sorted(p.name for p in clone.iterdir())
    done = rehearse("tiny_plan.yaml", 150, scratch, "cafe0123", repo=clone)
    output = capfd.readouterr()
    assert done.code == 0, (done.progress, done.collected, output.out[-2000:], output.err[-2000:])
    assert (scratch / "site" / "rehearsal_probe.py").is_file()
    assert f"DATA READY {scratch / 'data' / 'root'}" in output.out
    assert "/tmp/site" not in done.command and "/tmp/antisym-data" not in done.command
    assert "--lane gpu" in done.command and "--commit cafe0123" in done.command
    assert len(done.archives) == 1 and "tiny" in done.progress
    record = scratch / "tree" / "results" / "runs" / "tiny" / "asym_mnist_seed0"
    summary = json.loads((record / "summary.json").read_text())
    assert (summary["status"], summary["steps"], summary["git_commit"]) == ("completed", 4, "cafe0123")
    assert "commit message: Lease:" in done.collected
    assert sorted(p.name for p in clone.iterdir()) == before and not (clone / "results" / "runs").exists()
    assert (scratch / MARK).is_file()  # a folder a rehearsal wrote: the next one may empty it


def test_a_folder_it_did_not_write_is_never_emptied(clone, tmp_path):
    keep = tmp_path / "yours"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="no rehearsal wrote"):
        rehearse("tiny_plan.yaml", 150, keep, "cafe0123", repo=clone)
    assert (keep / "notes.txt").read_text() == "mine"
