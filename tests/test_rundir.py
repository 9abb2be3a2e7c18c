"""The run directory contract: resume refuses changed settings, one writer per run, damaged files named, every bad
value a clear error, Ctrl-C recorded as interrupted. Damaged files and concurrent writers are built for real."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from antisym.config import settings_differences
from antisym.data import DataError, build_task
from antisym.errors import CheckpointError, ConfigError, UserError
from antisym.provenance import code_version, git_state
from antisym.results import write_tables
from antisym.results.verify import main as verify_main
from antisym.training import load_run_model, run
from antisym.training.rundir import RunLock, effective_status, read_metrics, segments_before
from antisym.training.runs import RunState, run_state
from tests.conftest import REPO, make_tiny_data
from tests.test_train import TINY, cli, compose_cfg, read_rows


def strip_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


# ------------------------------------------------------------------------------------------ 1: changed settings


def test_resume_refuses_changed_experiment_settings(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root, "dataset=pmnist", "trainer.max_steps=3"), tmp_path)
    config_before = (tmp_path / "config.yaml").read_text()
    # The dataset forgotten on resume: MNIST instead of pMNIST.
    with pytest.raises(UserError, match=r"dataset.name: 'pmnist' -> 'mnist'") as err:
        run(compose_cfg(root, "trainer.resume=true", "trainer.max_steps=6"), tmp_path)
    assert "hydra.run.dir" in str(err.value)
    with pytest.raises(UserError, match=r"optimizer.lr: 0.1 -> 0.05"):
        run(compose_cfg(root, "dataset=pmnist", "trainer.resume=true", "optimizer.lr=0.05"), tmp_path)
    assert (tmp_path / "config.yaml").read_text() == config_before
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"
    # Keys that cannot change the result may differ, and max_steps may be raised to train longer.
    free = ["trainer.progress=true", "trainer.log_every=1", "trainer.device=cpu", "trainer.eval_batch_size=7"]
    summary = run(compose_cfg(root, "dataset=pmnist", "trainer.resume=true", "trainer.max_steps=6", *free), tmp_path)
    assert summary["status"] == "completed" and summary["steps"] == 6


def test_settings_differences_rules():
    base = {"model": {"eps": 0.1, "impl": "eager"}, "trainer": {"max_steps": 10, "lr_schedule": "constant"}}
    longer = {"model": {"eps": 0.1, "impl": "fused"}, "trainer": {"max_steps": 20, "lr_schedule": "constant"}}
    assert settings_differences(base, longer) == []  # impl and a longer run are free
    assert settings_differences(base, longer, allow_longer=False) == ["trainer.max_steps: 10 -> 20"]
    cosine = {k: {**v, "lr_schedule": "cosine"} if k == "trainer" else v for k, v in base.items()}
    cosine_longer = {**cosine, "trainer": {"max_steps": 20, "lr_schedule": "cosine"}}
    assert settings_differences(cosine, cosine_longer) == ["trainer.max_steps: 10 -> 20"]  # the schedule's shape


def test_a_record_of_older_code_with_a_retired_key_resumes_and_is_one_configuration(tiny_data, tmp_path):
    """Older records carry dataset.max_steps (the paper length trainer.max_steps read by interpolation) and name a
    paper task by dataset.name alone: read as the current configs have it, such a record is not stale, resumes, and
    is one configuration with a new run."""
    import yaml
    from omegaconf import OmegaConf

    from antisym.config import RunConfig
    from antisym.results.rows import run_knobs

    root, _ = tiny_data
    run(compose_cfg(root, "dataset=pmnist", "trainer.max_steps=3"), tmp_path / "old")
    saved = yaml.safe_load((tmp_path / "old" / "config.yaml").read_text())
    assert saved["dataset"].pop("_target_") == "antisym.data.tasks.PermutedMNIST"
    saved["dataset"]["max_steps"] = 50000  # as the older code wrote it
    (tmp_path / "old" / "config.yaml").write_text(yaml.safe_dump(saved))
    wanted = OmegaConf.to_container(compose_cfg(root, "dataset=pmnist", "trainer.max_steps=3"), resolve=True)
    assert "max_steps" not in wanted["dataset"] and RunConfig.from_cfg(saved).trainer.max_steps == 3
    assert run_state(tmp_path / "old", wanted).status == "completed"
    assert run_knobs(saved) == run_knobs(wanted) and settings_differences(saved, wanted) == []
    assert load_run_model(tmp_path / "old")[1].dataset._target_ == "antisym.data.tasks.PermutedMNIST"
    longer = compose_cfg(root, "dataset=pmnist", "trainer.max_steps=5", "trainer.resume=true")
    assert run(longer, tmp_path / "old")["steps"] == 5


def test_run_dir_names_the_files_a_run_writes_and_reads_them_back(tiny_data, tmp_path):
    """RunDir, the one object readers use: each file it names is one the trainer wrote (a pMNIST run writes them
    all), and what it reads back is what is on disk; a run of older code with Hydra's .hydra/ copies only is read
    from there."""
    import yaml

    from antisym.training.rundir import RunDir

    root, _ = tiny_data
    run(compose_cfg(root, "dataset=pmnist", "trainer.max_steps=2"), tmp_path / "r", overrides=["dataset=pmnist"])
    d = RunDir(tmp_path / "r")
    named = [d.config_file, d.overrides_file, d.summary_file, d.metrics_file, d.permutation_file, d.best_checkpoint]
    assert all(p.is_file() for p in named) and d.checkpoints.is_dir() and d.is_run() and d.has_config()
    assert {p.name for p in d.path.iterdir()} - {"run.lock"} == {p.relative_to(d.path).parts[0] for p in named}
    assert d.summary() == json.loads(d.summary_file.read_text()) and d.status(d.summary()) == "completed"
    assert d.metrics() == read_rows(d.path) and d.overrides() == ["dataset=pmnist"]
    assert d.config()["dataset"]["name"] == "pmnist" and d.model()[0].hidden_size > 0
    old = tmp_path / "old" / ".hydra"
    old.mkdir(parents=True)
    (old / "config.yaml").write_text(d.config_file.read_text())
    (old / "overrides.yaml").write_text(yaml.safe_dump(["model.eps=0.1"]))
    assert RunDir(old.parent).has_config() and RunDir(old.parent).overrides() == ["model.eps=0.1"]
    assert RunDir(tmp_path / "none").overrides() is None and RunDir(tmp_path / "none").metrics() == []


def test_resume_below_the_checkpoint_step_is_refused(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=6"), tmp_path)
    with pytest.raises(UserError, match="trainer.max_steps: 6 -> 3"):
        run(compose_cfg(root, "trainer.max_steps=3", "trainer.resume=true"), tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 6


# ------------------------------------------------------------------------------------------ 2: one writer


def test_second_writer_stops_at_once(tiny_data, tmp_path):
    root, _ = tiny_data
    with RunLock(tmp_path):  # this process writes the run; the CLI below is a second process
        proc = cli(*TINY, f"data.root={root}", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and "being written by another process" in proc.stderr
    assert f"pid {os.getpid()}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "metrics.jsonl").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tiny_data, tmp_path):
    root, _ = tiny_data
    (tmp_path / "run.lock").write_text(json.dumps({"pid": 999999, "host": "gone", "since": "yesterday"}))
    summary = run(compose_cfg(root), tmp_path)
    assert summary["status"] == "completed" and not (tmp_path / "run.lock").exists()


def test_killed_run_reads_as_interrupted(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    summary["status"] = "running"  # what a SIGKILL leaves: the summary written at the start
    assert effective_status(tmp_path, summary) == "interrupted"
    with RunLock(tmp_path):
        assert effective_status(tmp_path, summary) == "running"


# ------------------------------------------------------------------------------------------ 3: fresh starts


def test_fresh_start_keeps_old_files_aside_and_times_survive_resume(tiny_data, tmp_path):
    root, _ = tiny_data
    first = run(compose_cfg(root, "trainer.max_steps=3"), tmp_path)
    second = run(compose_cfg(root, "trainer.max_steps=3"), tmp_path)  # again, no resume: a fresh start
    assert strip_time(read_rows(tmp_path)) == strip_time(read_rows(next((tmp_path / "superseded").iterdir())))
    assert [r["step"] for r in read_rows(tmp_path) if r["split"] == "train"] == [1, 2]  # not appended twice
    assert second["started_at"] >= first["started_at"]
    resumed = run(compose_cfg(root, "trainer.max_steps=6", "trainer.resume=true"), tmp_path)
    assert resumed["started_at"] == second["started_at"]  # the run's start, not the resume's
    assert resumed["wall_time_s"] >= second["wall_time_s"] and resumed["segments"][1]["from_step"] == 3


def test_a_copy_without_git_names_its_commit_by_environment(monkeypatch):
    """A device's copy of the tree, or a tarball on a cluster, has no .git: ANTISYM_COMMIT names the commit (and
    -dirty whether the copy differs from it); git, where there is one, wins."""
    monkeypatch.setenv("ANTISYM_COMMIT", "abc123-dirty")
    assert git_state()[0] not in (None, "abc123")  # this checkout's own
    monkeypatch.setattr("antisym.provenance._git", lambda *args: None)
    assert code_version() == {"git_commit": "abc123", "git_dirty": True, "git_commit_source": "ANTISYM_COMMIT"}
    monkeypatch.setenv("ANTISYM_COMMIT", "abc123")
    assert git_state() == ("abc123", False)
    monkeypatch.delenv("ANTISYM_COMMIT")
    assert code_version() == {"git_commit": None, "git_dirty": None}


def test_a_model_in_a_file_git_does_not_track_makes_the_run_dirty_and_is_named(tiny_data, tmp_path):
    """The commit does not hold a model class in an untracked file of the repository: the run is recorded as dirty,
    naming the file (a file git ignores, or one of another folder, is no part of the commit's tree either way)."""
    root, _ = tiny_data
    name = f"_untracked_cell_{os.getpid()}"
    module = REPO / "tests" / f"{name}.py"
    module.write_text("from antisym.models import AntisymmetricRNN\n\n\nclass Cell(AntisymmetricRNN):\n    pass\n")
    try:
        summary = run(compose_cfg(root, "trainer.max_steps=1", f"model._target_=tests.{name}.Cell"), tmp_path)
    finally:
        module.unlink()
    assert summary["git_dirty"] is True and summary["git_untracked"] == [f"tests/{name}.py"]
    assert summary["segments"][0]["git_untracked"] == [f"tests/{name}.py"]


def test_each_segment_records_the_commit_device_and_torch_that_trained_it(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3", "trainer.threads=1"), tmp_path)
    # Threads and subnormal flushing change how a run computes, not what: a resume may change them, its record says so.
    resume = ["trainer.resume=true", "trainer.threads=2", "trainer.flush_denormal=false"]
    done = run(compose_cfg(root, "trainer.max_steps=6", *resume), tmp_path)
    commit, dirty = git_state()
    first, second = done["segments"]
    assert (first["from_step"], second["from_step"]) == (0, 3) and first["at"] == done["started_at"]
    assert first["device"].endswith(", 1 torch threads") and second["device"].endswith(", 2 torch threads")
    assert (first["flush_denormal"], second["flush_denormal"]) == (True, False)
    assert done["device"] == second["device"]  # the top-level line: the last segment's, which evaluated the test
    for seg in (first, second):
        assert (seg["git_commit"], seg["git_dirty"]) == (commit or "unknown", dirty)
        assert seg["torch"] == str(torch.__version__)
    # The tables' runs.csv says what trained each part, and the provenance counts the run under both devices.
    write_tables([tmp_path], tmp_path / "tables")
    (row,) = csv.DictReader((tmp_path / "tables" / "runs.csv").open())
    assert row["segments"] == f"from 0: {(commit or 'unknown')[:10]} on {first['device']}; " + (
        f"from 3: {(commit or 'unknown')[:10]} on {second['device']}"
    )


def test_a_checkpoint_from_before_segments_resumes_with_its_last_source_known(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path)
    # Rewrite the record as the trainer wrote it before segments: `resumed` steps only, in last.pt and summary.json.
    state = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    state.pop("segments")
    torch.save({**state, "resumed": []}, tmp_path / "checkpoints" / "last.pt")
    summary = json.loads((tmp_path / "summary.json").read_text())
    old = {**{k: v for k, v in summary.items() if k != "segments"}, "resumed": [], "device": "cpu: elsewhere"}
    (tmp_path / "summary.json").write_text(json.dumps(old))
    done = run(compose_cfg(root, "trainer.max_steps=5", "trainer.resume=true"), tmp_path)
    assert done["status"] == "completed" and done["steps"] == 5
    first, second = done["segments"]
    assert (first["from_step"], first["at"], first["device"], first["torch"]) == (
        0,
        old["started_at"],
        "cpu: elsewhere",
        None,
    )
    assert first["git_commit"] == old["git_commit"] and second["from_step"] == 3 and second["torch"]


def test_segments_before_a_resume_fill_in_what_the_checkpoint_lacks():
    seg = {"from_step": 0, "at": "t0", "git_commit": "unknown", "git_dirty": None, "device": "cuda:0: H", "torch": "2"}
    stamped = {**seg, "git_commit": "abc", "git_commit_source": "--commit"}  # a lease named it after training
    assert segments_before({"segments": [seg]}, {"segments": [stamped]}) == [stamped]
    # The summary of an aborted later attempt (no checkpoint of its own) adds nothing the checkpoint did not train.
    aborted = {"from_step": 0, "at": "t1", "git_commit": "def"}
    assert segments_before({"segments": [seg]}, {"segments": [aborted]}) == [seg]
    # A checkpoint from before segments: its start and resumes, sources unknown but the last, which wrote the summary.
    legacy = {"started_at": "t0", "resumed": [{"at_step": 5, "at": "t1"}]}
    previous = {"resumed": [{"at_step": 5, "at": "t1"}], "git_commit": "abc", "git_dirty": False, "device": "cpu: X"}
    unknown = dict.fromkeys(("git_commit", "git_dirty", "device", "torch", "flush_denormal"))
    assert segments_before(legacy, previous) == [
        {"from_step": 0, "at": "t0", **unknown},
        {"from_step": 5, "at": "t1", **unknown, "git_commit": "abc", "git_dirty": False, "device": "cpu: X"},
    ]
    # The summary was written by a later attempt than the checkpoint's last segment: it names nothing of it.
    later = {**previous, "resumed": [*previous["resumed"], {"at_step": 5, "at": "t2"}]}
    assert segments_before(legacy, later)[-1] == {"from_step": 5, "at": "t1", **unknown}


def test_resume_without_a_checkpoint_starts_afresh(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=2"), tmp_path)
    (tmp_path / "checkpoints" / "last.pt").unlink()  # killed before its first checkpoint
    run(compose_cfg(root, "trainer.max_steps=2", "trainer.resume=true"), tmp_path)
    steps = [r["step"] for r in read_rows(tmp_path) if r["split"] == "train"]
    assert steps == [1, 2] and len(list((tmp_path / "superseded").iterdir())) == 1


# ------------------------------------------------------------------------------------------ 4, 5: data


def test_val_size_zero_is_refused(tiny_data, tmp_path):
    root, _ = tiny_data
    with pytest.raises(ConfigError, match="dataset.val_size must be > 0"):
        run(compose_cfg(root, "dataset.val_size=0"), tmp_path)


def test_short_data_files_are_refused_unless_a_subset_is_asked_for(tmp_path):
    root = tmp_path / "data"
    make_tiny_data(root)
    raw = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    header = struct.unpack(">IIII", raw.read_bytes()[:16])
    assert header[1] == 48  # consistent header and data, but far fewer than 60,000 images
    with pytest.raises(DataError, match=r"holds 48 examples; the official file has 60,000.*data.allow_subset=true"):
        build_task({"name": "mnist", "val_size": 8}, root, "train", download=False)
    with pytest.raises(DataError, match=r"data_batch_1 holds 12 examples; the official file has 10,000"):
        build_task({"name": "cifar10", "val_size": 8}, root, "train", download=False)
    assert len(build_task({"name": "mnist", "val_size": 8}, root, "train", download=False, allow_subset=True)) == 40


def test_failed_download_leaves_no_empty_folders(tmp_path):
    root = tmp_path / "mistyped" / "root"
    with pytest.raises(DataError, match="downloading them failed.*t10k-labels-idx1-ubyte"):
        build_task({"name": "mnist"}, root, "test", download=True)
    assert not root.exists() and not root.parent.exists()


# ------------------------------------------------------------------------------------------ 6: sweeps


def test_sweep_rerun_under_other_settings_leaves_completed_runs_as_they_are(tiny_data, tmp_path):
    root, _ = tiny_data
    sweep = [
        "-m",
        *TINY,
        f"data.root={root}",
        "trainer.seed=0",
        f"hydra.sweep.dir={tmp_path}",
        "hydra.sweep.subdir=seed${trainer.seed}",
        "trainer.skip_completed=true",
    ]
    assert cli(*sweep).returncode == 0
    run_dir = tmp_path / "seed0"
    before = {p: (run_dir / p).read_text() for p in ("config.yaml", "summary.json", "overrides.yaml")}
    again = cli(*sweep)
    assert again.returncode == 0 and "already completed" in again.stdout + again.stderr
    other = cli(*sweep, "trainer.batch_size=4")
    assert other.returncode != 0 and "trainer.batch_size: 8 -> 4" in other.stdout + other.stderr
    assert {p: (run_dir / p).read_text() for p in before} == before
    assert not (run_dir / ".hydra").exists()


# ------------------------------------------------------------------------------------------ 7: damaged files


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage"])
def test_damaged_checkpoint_is_named(tiny_data, tmp_path, damage):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path / "run")
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    data = path.read_bytes()
    garbage = random.Random(0).randbytes(300)
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "garbage": garbage}[damage])
    with pytest.raises(CheckpointError, match=r"last.pt cannot be read .*truncated or damaged.*trainer.resume=false"):
        run(compose_cfg(root, "trainer.max_steps=6", "trainer.resume=true"), tmp_path / "run")
    proc = cli(*TINY, f"data.root={root}", "trainer.resume=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "last.pt cannot be read" in proc.stderr and "Traceback" not in proc.stderr


class _RunsCode:
    """A pickle payload: unpickling it calls Path.touch on the marker (what a crafted checkpoint could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_unrun(tiny_data, tmp_path):
    """Records travel (git, archives, leases): resume, load_run_model and collect read tensors and plain containers
    only; a pickle that would call anything is refused with the usual paragraph, and nothing of it runs."""
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path / "run")
    marker = tmp_path / "pwned"
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "extra": _RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match=r"last.pt holds more than tensors and plain containers"):
        run(compose_cfg(root, "trainer.max_steps=6", "trainer.resume=true"), tmp_path / "run")
    proc = cli(*TINY, f"data.root={root}", "trainer.resume=true", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "holds more than tensors" in proc.stderr and "Traceback" not in proc.stderr
    torch.save({"model": _RunsCode(marker), "step": 3}, tmp_path / "run" / "checkpoints" / "best.pt")
    with pytest.raises(CheckpointError, match="best.pt holds more than tensors"):
        load_run_model(tmp_path / "run")
    assert not marker.exists()


def test_torn_last_metrics_line_is_dropped_and_a_torn_middle_line_named(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3", "trainer.eval_every=3"), tmp_path)
    full = run(compose_cfg(root, "trainer.max_steps=6", "trainer.eval_every=3"), tmp_path / "full")
    metrics = tmp_path / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 4, "split": "tra')  # the kill came mid-write
    resumed = run(compose_cfg(root, "trainer.max_steps=6", "trainer.eval_every=3", "trainer.resume=true"), tmp_path)
    assert resumed["test_acc"] == full["test_acc"]
    assert strip_time(read_rows(tmp_path)) == strip_time(read_rows(tmp_path / "full"))
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], "{torn", *lines[1:]]) + "\n")
    with pytest.raises(CheckpointError, match=r"metrics.jsonl line 2 is damaged"):
        read_metrics(metrics)


def test_a_metrics_line_that_is_no_row_is_skipped_by_readers_and_refused_by_a_resume(tiny_data, tmp_path, caplog):
    """`42` (JSON, not a row) and a validation row without its step: every reader skips them, naming file and line;
    a resume, which rewrites the file from its rows, refuses before it writes anything (the completed record
    stays completed, its numbers kept)."""
    root, _ = tiny_data
    done = run(compose_cfg(root, "trainer.max_steps=3", "trainer.eval_every=3"), tmp_path)
    metrics = tmp_path / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], "42", '{"split": "val", "acc": 0.5}', *lines[1:]]) + "\n")
    with caplog.at_level("WARNING", logger="antisym"):
        rows = read_metrics(metrics)
    assert [r["step"] for r in rows] == [json.loads(line)["step"] for line in lines]
    assert f"{metrics}: skipped line 2, 3: not a metrics row" in caplog.text
    assert verify_main([str(tmp_path), "--no-eval"]) == 0  # a reader: the record still agrees with itself
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(CheckpointError, match=r"metrics.jsonl line 2, 3 is not a metrics row .* nothing was written"):
        run(compose_cfg(root, "trainer.max_steps=6", "trainer.eval_every=3", "trainer.resume=true"), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert json.loads((tmp_path / "summary.json").read_text())["test_acc"] == done["test_acc"]


# ------------------------------------------------------------------------------------------ 8: bad values


BAD_VALUES = [
    ("optimizer.lr=abc", "optimizer.lr='abc'"),
    ("optimizer.lr=nan", "optimizer.lr=nan"),
    ("optimizer.lr=-1", "optimizer.lr must be a positive number"),
    ("model.eps=abc", "model.eps='abc'"),
    ("model.eps=nan", "model.eps=nan"),
    ("model.eps=inf", "model.eps=inf"),
    ("model.gamma=abc", "model.gamma='abc'"),
    ("model.gamma=nan", "model.gamma=nan"),
    ("model.init_std=abc", "model.init_std='abc'"),
    ("model.hidden_size=true", "model.hidden_size=True"),
    ("trainer.grad_clip=abc", "trainer.grad_clip='abc'"),
    ("trainer.seed=abc", "trainer.seed='abc'"),
    ("trainer.device=tpu", "trainer.device='tpu'"),
    ("dataset.val_size=abc", "dataset.val_size='abc'"),
    ("optimizer=sgd optimizer.momentum=abc", "optimizer.momentum='abc'"),
    ("+trainer.max_step=5", "trainer has no key.*max_step"),
]


@pytest.mark.parametrize(("override", "message"), BAD_VALUES)
def test_bad_values_stop_before_any_data_is_read(tmp_path, override, message):
    # No data at this root: an error about the value proves it came before any file was opened.
    with pytest.raises(ConfigError, match=message):
        run(compose_cfg(tmp_path / "no-data", *override.split()), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # a command that only refuses writes nothing


def test_wandb_modes_are_checked_before_data(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(ConfigError, match=r"logger.wandb.mode='foo'"):
        run(compose_cfg(tmp_path / "no-data", "logger=wandb", "logger.wandb.mode=foo"), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"mode=online needs a W&B API key"):
        run(compose_cfg(tmp_path / "no-data", "logger=wandb", "logger.wandb.mode=online"), tmp_path / "b")


def test_cli_bad_value_is_one_paragraph(tmp_path):
    proc = cli(*TINY, f"data.root={tmp_path}", "optimizer.lr=abc", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and "optimizer.lr='abc' is not valid" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout and len(proc.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------ 9: Ctrl-C


def train_in_child(
    root: Path, *args: str, watch: Path | None = None, rows: int = 0, multirun: bool = False
) -> subprocess.Popen:
    """`train.py` on the tiny data in a child process, returned once `watch` has logged `rows` metric rows. One
    thread in every child: float sums happen in the same order, so runs compared with each other are bit-equal."""
    flags = ["-m"] if multirun else []
    cmd = [sys.executable, str(REPO / "train.py"), *flags, *TINY, f"data.root={root}", "trainer.log_every=1", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while watch is not None and time.time() < deadline and len(read_rows_safe(watch)) < rows:
        time.sleep(0.05)
    return proc


def test_ctrl_c_records_interrupted_and_resume_equals_an_uninterrupted_run(tiny_data, tmp_path):
    root, _ = tiny_data
    common = ["trainer.max_steps=200", "trainer.eval_every=50"]
    run_dir = tmp_path / "split"
    proc = train_in_child(root, *common, f"hydra.run.dir={run_dir}", watch=run_dir, rows=3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert (
        "Traceback" not in err and f"resume with: {sys.executable} {REPO / 'train.py'} " in err
    )  # runnable as printed
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["stop_reason"] == "SIGINT" and 0 < summary["steps"] < 200
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["step"] == summary["steps"]
    resumed, full = (
        train_in_child(root, *common, "trainer.resume=true", f"hydra.run.dir={run_dir}"),
        train_in_child(root, *common, f"hydra.run.dir={tmp_path / 'full'}"),
    )
    for proc in (resumed, full):
        _, err = proc.communicate(timeout=300)  # read its pipes to the end: a full pipe would stall the child
        assert proc.returncode == 0, err[-2000:]
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)["model"]
    b = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert strip_time(read_rows(run_dir)) == strip_time(read_rows(tmp_path / "full"))


def test_ctrl_c_in_a_sweep_ends_without_a_traceback(tiny_data, tmp_path):
    root, _ = tiny_data
    sweep = tmp_path / "sweep"
    args = ["trainer.max_steps=100000", "trainer.seed=0,1", f"hydra.sweep.dir={sweep}"]
    proc = train_in_child(root, *args, watch=sweep / "0", rows=3, multirun=True)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert "resume the whole sweep" in err and not (sweep / "1").exists()  # the sweep stopped at job 0
    assert json.loads((sweep / "0" / "summary.json").read_text())["status"] == "interrupted"


def test_a_second_ctrl_c_records_the_last_checkpoints_step(tiny_data, tmp_path):
    """Ctrl-C twice stops at once, mid-step: the record says interrupted at the step of last.pt (what a resume
    continues from), exit 130 and the resume line, no traceback."""
    root, _ = tiny_data
    run_dir = tmp_path / "run"
    args = ["trainer.max_steps=100000", "trainer.eval_every=25", f"hydra.run.dir={run_dir}"]
    proc = train_in_child(root, *args, watch=run_dir, rows=40)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.005)  # two signals sent at once may arrive as one
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert summary["status"] == "interrupted" and summary["steps"] == saved >= 25
    assert f"at step {saved} of" in err and "trainer.resume=true" in err


def test_a_killed_run_reads_back_at_its_last_checkpoints_step(tiny_data, tmp_path):
    """SIGKILL (a lease's or a session's end) leaves the summary written while it trained: it names the step of
    last.pt, so status tables and the campaign show how far the run got, not 0."""
    root, _ = tiny_data
    run_dir = tmp_path / "run"
    args = ["trainer.max_steps=100000", "trainer.eval_every=25", f"hydra.run.dir={run_dir}"]
    proc = train_in_child(root, *args, watch=run_dir, rows=60)
    proc.kill()
    proc.communicate(timeout=60)
    summary = json.loads((run_dir / "summary.json").read_text())
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert summary["status"] == "running" and summary["steps"] == saved >= 50
    assert run_state(run_dir) == RunState("interrupted", saved, "resumes from checkpoints/last.pt")


def test_a_second_ctrl_c_mid_step_records_the_last_checkpoint_not_the_step_reached(tiny_data, tmp_path, monkeypatch):
    """The second Ctrl-C raised inside step 40 (in-process, so it lands mid-step every time): the steps since the
    checkpoint at 25 are lost, and the record says 25, the step a resume continues from."""
    import antisym.training.pack as pack

    root, _ = tiny_data
    calls = []

    def ctrl_c_twice_at_step_40(t, step):
        calls.append(step)
        if step == 40:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return 1.0

    monkeypatch.setattr(pack, "lr_factor", ctrl_c_twice_at_step_40)
    with pytest.raises(KeyboardInterrupt):
        run(compose_cfg(root, "trainer.max_steps=100", "trainer.eval_every=25"), tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 25 and max(calls) == 40
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["step"] == 25


def test_an_unwritable_run_directory_is_one_paragraph_and_leaves_no_partial_files(tiny_data, tmp_path, monkeypatch):
    """A read-only folder before training, a full disk at a checkpoint: RunDirError (exit 2 at the CLI) naming the
    folder and what to do; the checkpoints on disk stay whole and no .tmp file is left."""
    root, _ = tiny_data

    def read_only(self):
        raise PermissionError(13, "Permission denied", str(self.path))

    with monkeypatch.context() as patch:
        patch.setattr("antisym.training.rundir.RunLock.__enter__", read_only)
        with pytest.raises(UserError, match=r"cannot be written \(Permission denied .*before training started"):
            run(compose_cfg(root), tmp_path / "ro")
    import antisym.training.checkpoint as checkpoint

    real_write = checkpoint.atomic_write_bytes
    calls = []

    def disk_full_on_third_write(path, data):
        calls.append(path)
        if len(calls) > 2:  # best.pt and last.pt of the first validation are written, then the disk is full
            raise OSError(28, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", disk_full_on_third_write)
    with pytest.raises(UserError, match=r"cannot be written \(No space left on device .*at step 6"):
        run(compose_cfg(root), tmp_path / "full")
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]
    assert not list((tmp_path / "full").rglob("*.tmp"))
    monkeypatch.undo()
    assert torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=True)["step"] == 3


def test_two_writers_of_one_file_each_replace_it_whole(tmp_path):
    """Two lanes that stop together rebuild the same tables: each write is whole and neither renames the other's
    temporary file away (a shared temporary name failed the second lane with FileNotFoundError)."""
    from threading import Barrier, Thread

    from antisym.training.rundir import atomic_write_bytes

    path, errors, start = tmp_path / "runs.csv", [], Barrier(2)
    contents = {k: str(k).encode() * 200_000 for k in range(2)}

    def write(k: int) -> None:
        start.wait()
        try:
            for _ in range(100):
                atomic_write_bytes(path, contents[k])
        except OSError as err:
            errors.append(err)

    threads = [Thread(target=write, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and path.read_bytes() in contents.values() and not list(tmp_path.glob("*.tmp"))


def read_rows_safe(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()[:-1]] if path.is_file() else []


def test_time_limit_stops_cleanly_and_resumes(tiny_data, tmp_path):
    root, _ = tiny_data
    common = ["trainer.max_steps=60", "trainer.eval_every=20"]
    summary = run(compose_cfg(root, *common, "trainer.time_limit_s=0.05"), tmp_path)
    assert summary["status"] == "interrupted" and summary["stop_reason"] == "time_limit"
    step = summary["steps"]
    assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["step"] == step < 60
    done = run(compose_cfg(root, *common, "trainer.resume=true"), tmp_path)  # time_limit_s may differ on resume
    assert done["status"] == "completed" and done["steps"] == 60


def test_a_clock_set_back_changes_neither_the_time_limit_nor_the_wall_time(tiny_data, tmp_path, monkeypatch):
    """The budget and the wall time are measured on time.monotonic: the wall clock going back an hour at every
    reading (NTP, a suspended laptop, a VM restored) leaves both as they are."""
    root, _ = tiny_data
    real = time.time
    readings = iter(range(10**9))
    monkeypatch.setattr(time, "time", lambda: real() - 3600.0 * next(readings))
    summary = run(compose_cfg(root, "trainer.max_steps=200", "trainer.eval_every=100", "trainer.time_limit_s=0.05"),
                  tmp_path)  # fmt: skip
    assert summary["status"] == "interrupted" and summary["stop_reason"] == "time_limit" and summary["steps"] < 200
    assert summary["wall_time_s"] >= 0.05 and all(r["time_s"] >= 0 for r in read_rows(tmp_path) if "time_s" in r)


# ------------------------------------------------------------------------------------------ 10: W&B


def test_wandb_resume_continues_the_same_run(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    root, _ = tiny_data
    run(compose_cfg(root, "logger=wandb", "trainer.max_steps=3"), tmp_path)
    run(compose_cfg(root, "logger=wandb", "trainer.max_steps=6", "trainer.resume=true"), tmp_path)
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    # W&B names each folder offline-run-<time>-<id>, with "-1" added when two start in one second.
    ids = {re.match(r"offline-run-\d{8}_\d{6}-(\w+)", p.name).group(1) for p in runs}
    assert len(runs) == 2 and len(ids) == 1, [p.name for p in runs]


# ------------------------------------------------------------------------------------------ 11 and the rest


def test_diverged_cli_run_exits_3(tiny_data, tmp_path):
    root, _ = tiny_data
    proc = cli(*TINY, f"data.root={root}", "model.eps=1e36", "model=ablation", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 3 and "diverged: non-finite" in proc.stderr
    # What it ran with and what to try, down to the presets made for this model.
    assert "(Adagrad lr 0.1, no clipping)" in proc.stderr and "Lower optimizer.lr" in proc.stderr
    assert "experiment=table2/ablation_cifar10, experiment=table2/ablation_noisy_cifar10." in proc.stderr


def test_summary_records_a_dirty_tree(tiny_data, tmp_path):
    root, _ = tiny_data
    summary = run(compose_cfg(root), tmp_path)
    assert isinstance(summary["git_dirty"], bool) and len(summary["git_commit"]) == 40


# ------------------------------------------------------------------------------------------ checkpoints across devices


def test_sampler_checkpoint_is_small_and_continues_the_same_order():
    from antisym.training.sampling import BatchSampler

    full = BatchSampler(55000, 128, seed=3)
    expected = [full.next() for _ in range(1000)]  # crosses two epoch boundaries (429 batches an epoch)
    cut = BatchSampler(55000, 128, seed=3)
    for _ in range(600):
        cut.next()
    state = cut.state_dict()
    assert sum(v.numel() * v.element_size() for v in state.values() if isinstance(v, torch.Tensor)) < 10_000
    resumed = BatchSampler(55000, 128, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(resumed.next(), idx) for idx in expected[600:])
    # a checkpoint written before the compact state (it held the order itself) continues the same way
    old = BatchSampler(55000, 128, seed=3)
    for _ in range(600):
        old.next()
    legacy = {"generator": old.generator.get_state(), "order": old.order.clone(), "pos": old.pos}
    resumed = BatchSampler(55000, 128, seed=99)
    resumed.load_state_dict(legacy)
    assert all(torch.equal(resumed.next(), idx) for idx in expected[600:])


def test_noise_state_from_another_kind_of_device_starts_a_new_stream():
    from antisym.training.checkpoint import restore_noise

    gen = torch.Generator().manual_seed(5)
    saved = gen.get_state()
    first = torch.rand(4, generator=gen)
    restore_noise(gen, saved, step=10)  # same kind: exactly where it was
    assert torch.equal(torch.rand(4, generator=gen), first)
    cuda_state = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: seed and offset, 16 bytes
    restore_noise(gen, cuda_state, step=10)
    assert gen.initial_seed() == 15
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=torch.Generator().manual_seed(15)))


# ------------------------------------------------------------------------------------------ settings checks that
# compare everything, and values refused before data


def test_a_damaged_config_is_neither_resumed_nor_skipped(tiny_data, tmp_path):
    """An emptied config.yaml (what a full disk left before it was written atomically) or one missing a key compares
    nothing: it is damaged, not matching, whether the run resumes under a new lr or is skipped under a new eps."""
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path / "a")
    (tmp_path / "a" / "config.yaml").write_text("")
    with pytest.raises(CheckpointError, match=r"config.yaml is damaged: it has no model, dataset, optimizer"):
        run(compose_cfg(root, "trainer.max_steps=6", "trainer.resume=true", "optimizer.lr=0.5"), tmp_path / "a")
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path / "b")
    lines = (tmp_path / "b" / "config.yaml").read_text().splitlines()
    (tmp_path / "b" / "config.yaml").write_text("\n".join(x for x in lines if not x.strip().startswith("eps:")))
    with pytest.raises(UserError, match=r"model.eps: missing from the saved config -> 0.5"):
        run(compose_cfg(root, "trainer.max_steps=3", "trainer.skip_completed=true", "model.eps=0.5"), tmp_path / "b")
    # data.allow_subset is what was trained on: it may not change on resume (data.root may: the files decide).
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path / "c")
    with pytest.raises(UserError, match=r"data.allow_subset: True -> False"):
        run(compose_cfg(root, "trainer.max_steps=6", "trainer.resume=true", "data.allow_subset=false"), tmp_path / "c")


def test_settings_are_written_whole_or_not_at_all(tiny_data, tmp_path, monkeypatch):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path)
    before = (tmp_path / "config.yaml").read_text()
    real_replace = os.replace

    def disk_full(src, dst):
        if str(dst).endswith("config.yaml"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run(compose_cfg(root, "trainer.max_steps=6", "trainer.resume=true"), tmp_path)
    assert (tmp_path / "config.yaml").read_text() == before and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("+seed=3", r"key\(s\) this suite does not read: seed \(did you mean trainer.seed\?\)"),
        ("+foo=1", r"does not read: foo\."),
        ("+logger.foo=1", r"does not read: logger.foo\."),
        ("model.name=../../outside", r"model.name='../../outside' cannot name a run directory"),
        ("trainer.seed=9223372036854775807", r"trainer.seed=9223372036854775807 is out of range"),
        ("trainer.batch_size=100000", r"trainer.batch_size=100000 is larger than the training set \(40 examples"),
    ],
)
def test_unknown_and_absurd_values_are_refused(tiny_data, tmp_path, override, message):
    root, _ = tiny_data
    with pytest.raises(ConfigError, match=message):
        run(compose_cfg(root, override), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


def test_run_name_outside_the_log_folder_is_refused_before_hydra_makes_it(tmp_path):
    proc = cli("model.name=../../outside", f"paths.log_dir={tmp_path / 'logs'}", "data.root=/nonexistent")
    assert proc.returncode != 0 and "cannot name a run directory" in proc.stdout + proc.stderr
    assert not (tmp_path / "logs").exists() and not (tmp_path.parent / "outside").exists()


def test_a_run_records_its_data_files_and_never_continues_on_other_ones(tiny_data, tmp_path):
    """summary.json names every file read with its MD5 and whether it is the official release's; a resume from a
    byte-identical copy elsewhere goes on (data.root may change), one from altered files of the official sizes
    (labels shuffled) is refused, naming the file."""
    import shutil

    import numpy as np

    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=3"), tmp_path / "run")
    files = json.loads((tmp_path / "run" / "summary.json").read_text())["data_files"]
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    assert sorted(files) == sorted(f"MNIST/raw/{n}" for n in names)
    assert not any(f["official"] for f in files.values())  # tiny test data
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    summary = run(compose_cfg(copy, "trainer.max_steps=6", "trainer.resume=true"), tmp_path / "run")
    assert summary["status"] == "completed" and summary["data_files"] == files
    labels = copy / "MNIST" / "raw" / "train-labels-idx1-ubyte"
    raw = bytearray(labels.read_bytes())
    raw[8:] = np.random.default_rng(0).permutation(np.frombuffer(bytes(raw[8:]), np.uint8)).tobytes()
    labels.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"trained on other data files .*train-labels-idx1-ubyte \(MD5 "):
        run(compose_cfg(copy, "trainer.max_steps=9", "trainer.resume=true"), tmp_path / "run")


@pytest.mark.parametrize("phase", ["data loading", "final evaluation", "final evaluation, twice"])
def test_a_signal_in_any_phase_keeps_the_contract(tiny_data, tmp_path, monkeypatch, phase):
    """SIGINT while the data loads stops at the first step boundary (interrupted, a checkpoint at step 0); one in
    the final evaluation lets the finished run complete; a second one there records interrupted at the last
    checkpoint, which a resume completes. Never a `running` summary, never steps 0 for a run that trained."""
    import antisym.training.member as member

    root, _ = tiny_data
    real_fingerprint, real_evaluate = member.fingerprint, member.evaluate
    times = 2 if phase.endswith("twice") else 1

    def fingerprint_then_signal(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return real_fingerprint(*args)

    sent = []

    def evaluate_then_signal(model, task, *args):
        if task.split == "test" and not sent:  # the first of the two test evaluations
            for _ in range(times):
                sent.append(signal.SIGINT)
                os.kill(os.getpid(), signal.SIGINT)
        return real_evaluate(model, task, *args)

    if phase == "data loading":
        monkeypatch.setattr(member, "fingerprint", fingerprint_then_signal)
    else:
        monkeypatch.setattr(member, "evaluate", evaluate_then_signal)
    cfg = compose_cfg(root, "trainer.max_steps=6", "trainer.eval_every=3")
    if times == 2:
        with pytest.raises(KeyboardInterrupt):
            run(cfg, tmp_path)
    else:
        run(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    expected = {"data loading": ("interrupted", 0), "final evaluation": ("completed", 6)}.get(phase, ("interrupted", 6))
    assert (summary["status"], summary["steps"]) == expected
    if summary["status"] == "interrupted":
        monkeypatch.undo()
        assert torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)["step"] == summary["steps"]
        resumed = run(compose_cfg(root, "trainer.max_steps=6", "trainer.eval_every=3", "trainer.resume=true"), tmp_path)
        assert resumed["status"] == "completed" and resumed["test_acc"] is not None
