"""A new task added end to end, touching only its own files: its class (tests/tiny_task.py), its config (written here
into a folder on Hydra's search path) and this test. Nothing in the suite names it: train.py checks, trains and packs
it, the results list it."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from antisym.data import task_config, task_family, task_files, task_spec
from antisym.data.files import check_present
from antisym.errors import ConfigError
from antisym.models import count_parameters
from antisym.preflight import check_command
from antisym.results.__main__ import main as results_main
from antisym.training.rundir import load_run_model
from tests.conftest import REPO

TARGET = "tests.tiny_task.MarkerTask"
TASK = {"_target_": TARGET, "name": "marker", "val_size": 32}
TINY = [
    "model=asym",
    "debug=smoke",
    "trainer.device=cpu",
    "trainer.threads=1",
    "trainer.progress=false",
    "model.hidden_size=8",
    "trainer.batch_size=32",
    "trainer.max_steps=40",
    "trainer.eval_every=20",
    "data.download=false",  # the presence check runs, on the task's files: none
]


@pytest.fixture
def searchpath(tmp_path: Path) -> str:
    """conf/dataset/marker.yaml in a folder of its own, and the override that puts the folder on the search path."""
    folder = tmp_path / "conf" / "dataset"
    folder.mkdir(parents=True)
    (folder / "marker.yaml").write_text("".join(f"{k}: {v}\n" for k, v in TASK.items()))
    return f"hydra.searchpath=[file://{tmp_path / 'conf'}]"


def test_a_new_task_trains_in_a_pack_and_is_listed_in_the_results(tmp_path, searchpath):
    sweep, tables = tmp_path / "sweep", tmp_path / "tables"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), "-m", "dataset=marker", searchpath, *TINY,
         f"data.root={tmp_path / 'no_data'}", "trainer.seed=0,1", "hydra/launcher=packed", "hydra.launcher.pack_size=2",
         f"hydra.sweep.dir={sweep}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 runs in 1 packs" in proc.stdout + proc.stderr  # one family, one spec: one pack
    for seed in (0, 1):
        run_dir = sweep / str(seed)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["steps"] == 40
        assert summary["dataset"] == "marker" and summary["data_files"] == {}
        assert summary["test_acc"] >= 0.9  # the marker's sign is learnt within the first 20 steps
        # The spec reached the model: 2 features a step in, 2 classes out, and the model reloads from its run.
        model, _ = load_run_model(run_dir, allow=[TARGET])  # a class from outside the suite: named to be built
        assert count_parameters(model) == summary["params"]
        assert tuple(model(torch.zeros(3, 12, 2)).shape) == (3, 2)

    assert results_main(["--runs", str(sweep), "--out", str(tables)]) == 0
    runs = list(csv.DictReader((tables / "runs.csv").open()))
    assert sorted((r["dataset"], r["seed"], r["status"], r["table"]) for r in runs) == [
        (TARGET, "0", "completed", ""),
        (TARGET, "1", "completed", ""),
    ]
    assert all(float(r["test_acc"]) == json.loads((tables / r["run_dir"] / "summary.json").read_text())["test_acc"]
               for r in runs)  # fmt: skip
    rows = [line for line in (tables / "table1.md").read_text().lower().splitlines() if line.startswith("|")]
    assert rows and not any("marker" in line for line in rows)  # no paper row: in no table (the command line aside)


def test_what_the_task_declares_reaches_the_rest_of_the_suite(tmp_path):
    assert task_spec(TASK) == task_spec(task_config(TASK)) and task_spec(TASK).input_size == 2
    assert task_family(TASK) == "marker" and task_files(TASK) == ()
    check_present(tmp_path / "no_data", task_files(TASK))  # nothing to read, nothing missing
    with pytest.raises(ConfigError, match="dataset has no key.*seq_length"):
        task_config({**TASK, "seq_length": 5})  # its Config checks its keys


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"_target_": "tests.no_such_module.Task"}, r"cannot be imported \(ModuleNotFoundError.*PYTHONPATH"),
        ({"_target_": "torch.nn.Linear"}, "is not a subclass of antisym.data.tasks.Task"),
        ({"_target_": "antisym.data.tasks.Task"}, "does not define files, load, spec, sequences"),
        ({"name": "mnist"}, "dataset.name=mnist is the name of one of the paper's tasks"),
        ({"name": "../up"}, "cannot name a run directory"),
    ],
)
def test_a_task_that_cannot_be_used_is_one_paragraph_before_anything_starts(tmp_path, searchpath, change, message):
    with pytest.raises(ConfigError, match=message):
        task_config({**TASK, **change})
    overrides = [f"dataset.{k}={v}" for k, v in change.items()]
    argv = ["dataset=marker", searchpath, *TINY, f"hydra.run.dir={tmp_path / 'run'}", *overrides]
    with pytest.raises(ConfigError, match=message):
        check_command(argv, str(REPO / "train.py"), config_path="conf", config_name="config")
    assert not (tmp_path / "run").exists()
