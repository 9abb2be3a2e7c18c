"""Hydra's launcher plugins on a real two-job sweep (joblib, submitit_local), and the SLURM config composing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_results import TINY, quick_driver_args

pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def train(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    # The launchers' worker processes import antisym from this checkout whether or not it is pip-installed.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def two_job_sweep(root: Path, sweep_dir: Path, *launcher: str) -> subprocess.CompletedProcess:
    return train(
        "-m",
        "experiment=table1/asym_mnist",
        *TINY,
        f"data.root={root}",
        "trainer.seed=0,1",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweep.subdir=seed${trainer.seed}",
        *launcher,
    )


def assert_two_completed_runs(sweep_dir: Path) -> list[dict]:
    summaries = [json.loads((sweep_dir / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert [s["status"] for s in summaries] == ["completed", "completed"]
    assert [s["steps"] for s in summaries] == [2, 2] and summaries[0]["tags"] == ["table1", "asym_mnist"]
    return summaries


def test_submitit_local_launcher_runs_two_jobs(tiny_data, tmp_path):
    root, _ = tiny_data
    proc = two_job_sweep(
        root,
        tmp_path,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.cpus_per_task=1",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_two_completed_runs(tmp_path)
    # submitit ran them as its own jobs: one pickled job and its logs per run.
    logs = list((tmp_path / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2, sorted(p.name for p in (tmp_path / ".submitit").rglob("*"))


def test_joblib_launcher_two_job_sweep_through_the_driver(tiny_data, tmp_path):
    root, _ = tiny_data
    flags = ("--launcher", "joblib", "--jobs", "2")
    cmd = [sys.executable, "-m", "antisym.results.reproduce", *quick_driver_args(root, tmp_path, *flags)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "hydra/launcher=joblib hydra.launcher.n_jobs=2" in proc.stdout  # the command the driver ran
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr  # Hydra's joblib launcher ran the two jobs
    runs = tmp_path / "logs" / "quick" / "reproduce" / "table1"
    assert [json.loads((runs / f"asym_mnist_seed{s}" / "summary.json").read_text())["status"] for s in (0, 1)] == [
        "completed",
        "completed",
    ]
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "nothing to run" in again.stdout


def test_slurm_launcher_config_composes():
    proc = train(
        "experiment=table1/asym_pmnist",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=240",
        "--cfg",
        "hydra",
        "-p",
        "hydra.launcher",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for line in (
        "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
        "partition: gpu",
        "timeout_min: 240",
        "gpus_per_node: 1",
        "cpus_per_task: 4",
        "submitit_folder: ${hydra.sweep.dir}/.submitit/%j",
    ):
        assert line in out, out
    info = train("experiment=table1/asym_pmnist", "hydra/launcher=slurm", "--info", "defaults")
    assert info.returncode == 0 and "hydra/launcher/submitit_slurm" in info.stdout
    assert "experiment/table1/asym_pmnist" in info.stdout
