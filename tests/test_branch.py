"""Branch runs (trainer.init_from): a run started from another run's checkpoint is the run its own settings name."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from antisym.config import RunConfig
from antisym.data import DataError
from antisym.errors import CheckpointError, ConfigError
from antisym.plan import compose_run, load_plan, planned_state
from antisym.provenance import resolve_commit
from antisym.training import run
from antisym.training.branch import branch_start, open_branch
from tests.conftest import make_tiny_data
from tests.test_train import compose_cfg, read_rows

COMMON = ["trainer.eval_every=2", "trainer.max_steps=8"]
DECAY = ["trainer.lr_schedule=step", "trainer.lr_decay_steps=[4]"]  # x0.1 from the source's last step on


@pytest.fixture(scope="module")
def source(tiny_data, tmp_path_factory) -> Path:
    """A finished 4-step run at a constant learning rate (its last.pt at step 4)."""
    root, _ = tiny_data
    path = tmp_path_factory.mktemp("branch") / "source"
    run(compose_cfg(root, "trainer.eval_every=2", "trainer.max_steps=4"), path)
    return path


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def test_branch_equals_the_run_trained_from_step_0(tiny_data, source, tmp_path):
    root, _ = tiny_data
    full = run(compose_cfg(root, *COMMON, *DECAY), tmp_path / "full")
    branch = run(compose_cfg(root, *COMMON, *DECAY, f"trainer.init_from={source}"), tmp_path / "branch")
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "branch" / "checkpoints" / "last.pt", weights_only=True)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert (branch["best_val_acc"], branch["test_acc"]) == (full["best_val_acc"], full["test_acc"])
    rows = read_rows(tmp_path / "branch")
    assert without_time(rows) == without_time(read_rows(tmp_path / "full"))
    base = compose_cfg(root).optimizer.lr
    assert [(r["step"], r["lr"]) for r in rows if r["split"] == "train" and r["step"] > 4] == [
        (6, pytest.approx(0.1 * base)), (8, pytest.approx(0.1 * base))]  # fmt: skip
    first, second = branch["segments"]
    assert first["from_step"] == 0 and "branched_from" not in first
    assert second["from_step"] == 4 and second["branched_from"]["run_dir"] == str(source)
    assert second["branched_from"]["step"] == 4 and second["branched_from"]["commit"] is None
    # Resumed later, the branch continues its own checkpoint (init_from names where it started, not where it goes).
    longer = run(compose_cfg(root, *DECAY, "trainer.eval_every=2", "trainer.max_steps=10", "trainer.resume=true",
                             f"trainer.init_from={source}"), tmp_path / "branch")  # fmt: skip
    assert [s["from_step"] for s in longer["segments"]] == [0, 4, 8] and longer["steps"] == 10
    assert longer["segments"][1]["branched_from"]["step"] == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=0.2"], "optimizer.lr"),
        (["trainer.batch_size=4"], "trainer.batch_size"),
        (["trainer.lr_schedule=step", "trainer.lr_decay_steps=[2]"], "at step 2 "),
        (["trainer.lr_schedule=cosine"], "at step 1 "),
    ],
)
def test_a_setting_that_acts_before_the_checkpoint_is_refused(tiny_data, source, tmp_path, overrides, message):
    root, _ = tiny_data
    with pytest.raises(ConfigError, match=message):
        run(compose_cfg(root, *COMMON, *overrides, f"trainer.init_from={source}"), tmp_path / "branch")
    assert not (tmp_path / "branch").exists() or not any((tmp_path / "branch").iterdir())


def test_a_best_checkpoint_the_source_trained_past_is_refused(tiny_data, source, tmp_path):
    root, _ = tiny_data
    moved = tmp_path / "moved"
    shutil.copytree(source, moved)
    best = moved / "checkpoints" / "best.pt"
    torch.save({**torch.load(best, weights_only=True), "step": 99}, best)
    with pytest.raises(CheckpointError, match="holds step 99"):
        run(compose_cfg(root, *COMMON, *DECAY, f"trainer.init_from={moved}"), tmp_path / "branch")
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        run(compose_cfg(root, *COMMON, *DECAY, f"trainer.init_from={tmp_path / 'nothing'}"), tmp_path / "branch")
    with pytest.raises(CheckpointError, match="names no commit of this checkout"):
        run(compose_cfg(root, *COMMON, *DECAY, "trainer.init_from=0000000:results/runs/x"), tmp_path / "branch")


def test_a_branch_refused_on_other_data_leaves_its_directory_as_found(tiny_data, source, tmp_path):
    """The source trained on other files than data.root holds: refused once the data is read, after the branch's
    files were written over an earlier run's (moved aside): that run is put back as it was."""
    other = tmp_path / "other_data"
    make_tiny_data(other, seed=1)
    earlier = tmp_path / "branch"
    shutil.copytree(source, earlier)
    before = {p.relative_to(earlier): p.read_bytes() for p in earlier.rglob("*") if p.is_file()}
    with pytest.raises(DataError, match="other data files"):
        run(compose_cfg(other, *COMMON, *DECAY, f"trainer.init_from={source}"), earlier)
    assert {p.relative_to(earlier): p.read_bytes() for p in earlier.rglob("*") if p.is_file()} == before


def test_resume_and_init_from_together_are_refused(tiny_data, source, tmp_path):
    root, _ = tiny_data
    with pytest.raises(ConfigError, match="both name a run to continue"):
        run(compose_cfg(root, *COMMON, *DECAY, f"trainer.resume={source}", f"trainer.init_from={source}"),
            tmp_path / "branch")  # fmt: skip


def test_the_plans_branch_agrees_with_its_committed_source():
    """The campaign's branch of Table 1's MNIST row reads its source from git history: the checkpoint the lanes
    committed at 34,846, the best checkpoint of that commit, and settings that agree up to there."""
    plan = load_plan("paper")
    planned = plan.block_runs("gap_table1_late")[0]  # the branches differ only in their factor, applied from 35,000
    cfg, _ = compose_run(planned, [])
    spec = cfg["trainer"]["init_from"]
    if resolve_commit(spec.partition(":")[0]) is None:
        pytest.skip("the source's commit is not in this checkout's history (a shallow clone)")
    t = RunConfig.from_cfg(cfg).trainer
    branch = open_branch(spec, cfg, t, str)
    assert branch.step == 34846 and branch.record["commit"] == spec.partition(":")[0]
    assert json.loads(branch.files["metrics.jsonl"].decode().splitlines()[-1])["step"] >= 34000
    assert branch.summary["data_files"]  # what the branch must train on, as its source did
    cfg["trainer"]["lr_decay_steps"] = [30000]
    with pytest.raises(ConfigError, match="at step 30,000"):
        open_branch(spec, cfg, RunConfig.from_cfg(cfg).trainer, str)


def test_a_branch_not_yet_trained_counts_its_sources_steps(source, tmp_path):
    """Before it trains, a branch's first k iterations are done (they are its source's): the campaign's progress and
    time left count it from k, not 0; a run from step 0, or a source with no checkpoint, counts from 0."""
    assert branch_start([f"trainer.init_from={source}", "trainer.max_steps=8"]) == 4
    best = source / "checkpoints" / "best.pt"  # a named checkpoint: its own step (the best validation's, before 4)
    assert branch_start([f"trainer.init_from='{best}'"]) == torch.load(best, weights_only=False)["step"] < 4
    assert branch_start(["trainer.max_steps=8"]) is None and branch_start(["trainer.init_from=null"]) is None
    assert branch_start([f"trainer.init_from={tmp_path}"]) is None
    planned = load_plan("paper").block_runs("gap_table1_late")[-1]
    (spec,) = [o.split("=", 1)[1].strip("'") for o in planned.overrides if o.startswith("trainer.init_from=")]
    if resolve_commit(spec.partition(":")[0]) is None:
        pytest.skip("the source's commit is not in this checkout's history (a shallow clone)")
    state = planned_state(tmp_path, planned)  # no record of it under these records: not trained yet
    assert (state.status, state.steps) == ("missing", 34846) and "a branch" in state.detail
