"""Training end to end through Hydra's compose API and the CLI, on tiny data in the real formats."""

from __future__ import annotations

import json
import logging
import math
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from antisym.data import DataError
from antisym.training import load_run_model, run
from tests.conftest import REPO

TINY = [
    "model.hidden_size=8",
    "trainer.max_steps=6",
    "trainer.batch_size=8",
    "trainer.eval_every=3",
    "trainer.eval_batch_size=16",
    "trainer.log_every=2",
    "trainer.progress=false",
    "dataset.val_size=8",
    "data.download=false",
    "data.allow_subset=true",
]


def compose_cfg(root: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[*TINY, f"data.root={root}", *overrides])


def read_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "overrides",
    [
        ["model=asym", "dataset=mnist"],
        ["model=gated", "dataset=pmnist", "optimizer=sgd"],
        ["model=lstm", "dataset=cifar10", "optimizer=adam"],
        ["model=ablation", "dataset=noisy_cifar10", "dataset.seq_len=40", "optimizer=rmsprop"],
    ],
)
def test_compose_and_train(tiny_data, tmp_path, overrides):
    root, _ = tiny_data
    cfg = compose_cfg(root, *overrides)
    summary = run(cfg, tmp_path)
    assert summary["status"] == "completed" and summary["steps"] == 6
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "status",
        "steps",
        "best_val_acc",
        "test_acc",
        "final_test_acc",
        "params",
        "wall_time_s",
        "device",
        "git_commit",
    ):
        assert key in on_disk, key
    assert 0.0 <= on_disk["test_acc"] <= 1.0 and on_disk["device"].startswith("cpu")
    rows = read_rows(tmp_path)
    assert [r["step"] for r in rows if r["split"] == "val"] == [3, 6]
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert (tmp_path / "checkpoints" / "best.pt").is_file() and (tmp_path / "config.yaml").is_file()
    model, loaded = load_run_model(tmp_path)
    assert loaded.model.name == cfg.model.name and sum(p.numel() for p in model.parameters()) == summary["params"]
    if cfg.dataset.name == "pmnist":
        perm = torch.load(tmp_path / "permutation.pt")
        assert sorted(perm.tolist()) == list(range(784))


def test_resume_equals_uninterrupted_run(tiny_data, tmp_path):
    root, _ = tiny_data
    common = ["dataset=noisy_cifar10", "dataset.seq_len=36", "model=gated", "trainer.eval_every=4"]
    full = run(compose_cfg(root, *common, "trainer.max_steps=8"), tmp_path / "full")
    run(compose_cfg(root, *common, "trainer.max_steps=4"), tmp_path / "split")
    resumed = run(compose_cfg(root, *common, "trainer.max_steps=8", "trainer.resume=true"), tmp_path / "split")
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "split" / "checkpoints" / "last.pt", weights_only=False)["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert resumed["test_acc"] == full["test_acc"] and resumed["best_val_acc"] == full["best_val_acc"]
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in read_rows(tmp_path / "full")]
    assert strip == [{k: v for k, v in r.items() if k != "time_s"} for r in read_rows(tmp_path / "split")]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.eps=0", "model.eps"),
        ("model.gamma=-1", "model.gamma"),
        ("model.hidden_size=0", "hidden_size"),
        ("+optimizer.betas=[0.9,0.99]", "betas"),
        ("trainer.lr_schedule=linear", "lr_schedule"),
    ],
)
def test_bad_values_stop_before_training(tiny_data, tmp_path, override, message):
    root, _ = tiny_data
    with pytest.raises(ValueError, match=message):
        run(compose_cfg(root, override), tmp_path)
    assert not any(tmp_path.iterdir())  # a command that only refuses writes nothing


def test_corrupt_data_stops_before_training(tiny_data, tmp_path):
    root, _ = tiny_data
    bad = tmp_path / "data" / "MNIST" / "raw"
    bad.mkdir(parents=True)
    for f in (root / "MNIST" / "raw").iterdir():
        (bad / f.name).write_bytes(f.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or corrupt"):
        run(compose_cfg(tmp_path / "data"), tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(("scale", "reason"), [(1e30, "non-finite gradient norm"), (math.inf, "non-finite loss")])
def test_divergence_is_recorded_and_earlier_checkpoints_kept(tiny_data, tmp_path, scale, reason):
    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=2", "trainer.eval_every=2"), tmp_path)
    # Weights that blew up: a readout of 1e30 keeps the loss finite but overflows the gradient norm; an infinite one
    # makes the logits non-finite. Either way step 3 must not be applied.
    path = tmp_path / "checkpoints" / "last.pt"
    before = torch.load(path, weights_only=False)
    before["model"]["readout.weight"].fill_(scale)
    torch.save(before, path)
    summary = run(compose_cfg(root, "trainer.resume=true", "trainer.max_steps=6", "trainer.eval_every=2"), tmp_path)
    assert summary["status"] == "diverged" and summary["diverged_at_step"] == 3 and summary["steps"] == 2
    assert summary["diverged_reason"] == reason
    after = torch.load(path, weights_only=False)
    assert after["step"] == 2 and all(torch.equal(before["model"][k], after["model"][k]) for k in before["model"])
    assert (tmp_path / "checkpoints" / "best.pt").is_file()
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_a_divergence_at_step_1_is_reported_at_step_1_everywhere(tiny_data, tmp_path, caplog):
    """summary.json's `steps` counts completed steps (a resume continues from it): 0 for a run that diverged at its
    first step. The final log line says both, as the divergence warning says step 1."""
    root, _ = tiny_data
    with caplog.at_level(logging.INFO, logger="antisym"):
        summary = run(compose_cfg(root, "model.eps=1e38"), tmp_path)  # h overflows at the first step
    assert (summary["status"], summary["diverged_at_step"], summary["steps"]) == ("diverged", 1, 0)
    assert "at step 1: stopping" in caplog.text and "diverged at step 1 (0 steps completed)" in caplog.text
    assert "after 0 steps" not in caplog.text


def test_the_test_split_is_evaluated_once_when_the_best_checkpoint_is_the_final_model(tiny_data, tmp_path, caplog):
    """The only validation is at the last step: its checkpoint is the final model, so one test evaluation gives both
    numbers (on pixel MNIST, most of a five-step look's time); the final line reads as words and numbers."""
    root, _ = tiny_data
    with caplog.at_level(logging.INFO, logger="antisym"):
        summary = run(compose_cfg(root, "trainer.eval_every=6"), tmp_path)
    assert summary["best_step"] == 6 and summary["test_acc"] == summary["final_test_acc"] is not None
    assert [m for m in caplog.messages if "test examples" in m] == [
        f"{tmp_path}: final model, test on 16 test examples"
    ]
    assert caplog.messages[-1] == (
        f"{tmp_path}: completed after 6 steps: best val acc {summary['best_val_acc']:.4f} at step 6, test acc "
        f"{summary['test_acc']:.4f} at that checkpoint"
    )


def test_a_divergence_at_step_1_evaluates_nothing_and_says_so(tiny_data, tmp_path, caplog):
    """Diverged at its first step, a run holds no checkpoint and no trained model: nothing is evaluated, and no
    line reads `None`."""
    root, _ = tiny_data
    with caplog.at_level(logging.INFO, logger="antisym"):
        summary = run(compose_cfg(root, "model.eps=1e38"), tmp_path)
    assert (summary["test_acc"], summary["final_test_acc"], summary["best_step"]) == (None, None, None)
    assert not [m for m in caplog.messages if "test examples" in m]
    assert caplog.messages[-1] == f"{tmp_path}: diverged at step 1 (0 steps completed): no checkpoint to evaluate"
    assert "None" not in caplog.text


def test_the_progress_bar_closes_on_the_last_evaluations_best(tiny_data, tmp_path, capsys):
    """The only evaluation is at the last step: the bar's final postfix shows its accuracy, not "-"."""
    root, _ = tiny_data
    summary = run(compose_cfg(root, "trainer.progress=true", "trainer.eval_every=6"), tmp_path)
    renders = [r for r in re.split(r"[\r\n]", capsys.readouterr().err) if "best_val=" in r]
    assert f"best_val={summary['best_val_acc']:.3f}" in renders[-1]


def test_jacobian_metric_is_logged(tiny_data, tmp_path):
    root, _ = tiny_data
    run(compose_cfg(root, "dataset=noisy_cifar10", "dataset.seq_len=34", "trainer.jacobian_every=3"), tmp_path)
    rows = [r for r in read_rows(tmp_path) if r["split"] == "jacobian"]
    assert [r["step"] for r in rows] == [3, 6]
    # A fresh AntisymmetricRNN with small gamma is near-isometric over 34 steps: eigenvalue moduli close to 1.
    assert all(0.9 < r["jac_eig_mean"] < 1.1 and 0 <= r["jac_eig_std"] < 0.1 for r in rows)


def test_wandb_logger_runs_offline(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    root, _ = tiny_data
    run(compose_cfg(root, "logger=wandb"), tmp_path)
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_cli_run(tiny_data, tmp_path):
    root, _ = tiny_data
    proc = cli(
        *TINY, f"data.root={root}", "model=gated", "dataset=pmnist", "optimizer=adagrad", f"hydra.run.dir={tmp_path}",
        "trainer.threads=1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed"
    # trainer.threads is set before the first op, logged and written in the summary's device line.
    assert summary["device"].endswith(", 1 torch threads") and "torch threads: 1 (trainer.threads=1)" in proc.stdout
    # The run records the settings that trained it, itself; Hydra keeps no .hydra/ copy that a rerun could overwrite.
    assert (tmp_path / "config.yaml").is_file() and not (tmp_path / ".hydra").exists()
    assert "dataset=pmnist" in (tmp_path / "overrides.yaml").read_text()


@pytest.mark.parametrize(
    ("override", "message"),
    [("model.eps=-1", "model.eps (Euler step size) must be > 0"), ("model.name=asym", "Data files not found under")],
)
def test_cli_error_is_one_clear_paragraph(tmp_path, override, message):
    proc = cli(*TINY, f"data.root={tmp_path / 'nothing'}", override, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not (tmp_path / "run").exists()  # a command that only refuses writes nothing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["trainer.max_step=20"], "`trainer.max_step` is not a setting of this config. Did you mean trainer.max_steps"),
        (["-m", "trainer.seed=0,1", "traner.max_steps=20"], "Did you mean trainer?"),
        (["model=foo"], "Could not find 'model/foo' Available options in 'model': ablation asym"),
        (["-m", "model.eps=0.5,-1", "model.gamma=0.01,0.1"], "A job of this sweep of 4 (model.eps=-1 model.gamma=0.01"),
    ],
)
def test_hydra_level_and_sweep_errors_are_one_paragraph_before_anything_starts(tiny_data, tmp_path, args, message):
    root, _ = tiny_data
    proc = cli(*args, *TINY, f"data.root={root}", f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # no job started, nothing written


def test_a_sweep_job_refused_as_it_starts_leaves_the_others_and_exits_2(tiny_data, tmp_path):
    root, _ = tiny_data  # 40 training examples: a batch of 64 is refused once the data is read
    proc = cli("-m", *TINY, f"data.root={root}", "trainer.batch_size=8,64", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"error in job 1 ({tmp_path / '1'}): trainer.batch_size=64 is larger than the training set" in proc.stderr
    assert "sweep: 2 jobs: 1 completed, 1 refused" in proc.stderr
    assert json.loads((tmp_path / "0" / "summary.json").read_text())["status"] == "completed"
    assert not (tmp_path / "1").exists()


def test_the_readmes_python_api_snippet_runs_as_written(tiny_data, tmp_path):
    """The README's Python API block, executed as printed (val_size and allow_subset made to fit the tiny data)."""
    import re

    root, _ = tiny_data
    run(compose_cfg(root, "trainer.max_steps=2"), tmp_path / "run")
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    code = code.replace('"val_size": 5000', '"val_size": 8').replace(
        'root, "train")', 'root, "train", allow_subset=True)'
    )
    scope = {"root": str(root), "run_dir": tmp_path / "run"}
    exec(compile(code, "README.md", "exec"), scope)
    assert tuple(scope["logits"].shape) == (1, 10) and tuple(scope["h"].shape) == (1, 128)
    assert isinstance(scope["trained"], torch.nn.Module) and scope["cfg"].model.name == "asym"


def test_make_help_lists_every_target():
    """Every target of the Makefile, mk/*.mk and campaign/mk/*.mk has a `## ` description, so `make help` shows it."""
    import re

    files = [REPO / "Makefile", *sorted((REPO / "mk").glob("*.mk")), *sorted((REPO / "campaign" / "mk").glob("*.mk"))]
    targets = {m.group(1) for f in files for m in re.finditer(r"^([a-z0-9][a-z0-9_-]*):(?!=)", f.read_text(), re.M)}
    shown = subprocess.run(["make", "-s", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert targets and all(f"make {t} " in shown for t in targets), sorted(
        t for t in targets if f"make {t} " not in shown
    )


def test_an_interrupted_sweep_prints_how_to_resume_it_whole(tiny_data, tmp_path):
    root, _ = tiny_data
    sweep = tmp_path / "sweep"
    proc = cli("-m", *TINY, f"data.root={root}", "trainer.max_steps=100000", "trainer.time_limit_s=0.5",
               "trainer.seed=0,1", f"hydra.sweep.dir={sweep}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    line = next(x for x in proc.stderr.splitlines() if x.startswith("resume the whole sweep"))
    assert f"{sys.executable} {REPO / 'train.py'} -m " in line and "trainer.seed=0,1" in line
    assert line.endswith(f"trainer.resume=true trainer.skip_completed=true hydra.sweep.dir={sweep}")


def test_the_readmes_links_resolve_and_the_data_hint_works_from_any_folder(tmp_path):
    readme = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", readme)
    assert "docs/run-directory.md" in links and all((REPO / link).is_file() for link in links), links
    for page in (REPO / "docs").glob("*.md"):
        assert all((page.parent / link).is_file() for link in re.findall(r"\]\(([^)#:]+)\)", page.read_text())), page
    proc = cli(*TINY, "data.root=elsewhere", cwd=tmp_path)  # a relative root, from another folder than the repo's
    assert proc.returncode == 2 and f"Data files not found under {tmp_path / 'elsewhere'}:" in proc.stderr


def test_a_run_refused_once_its_data_is_read_leaves_no_folder(tiny_data, tmp_path):
    root, _ = tiny_data  # 40 training examples: a batch of 64 is refused once the data is read
    proc = cli(*TINY, f"data.root={root}", "trainer.batch_size=64", f"paths.log_dir={tmp_path / 'logs'}")
    assert proc.returncode == 2 and "is larger than the training set" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "logs").exists()  # neither its run directory nor the folders above it, paths.log_dir
    (tmp_path / "logs").mkdir()  # included, where this command made it; a folder that was there stays
    proc = cli(*TINY, f"data.root={root}", "trainer.batch_size=64", f"paths.log_dir={tmp_path / 'logs'}")
    assert proc.returncode == 2 and list((tmp_path / "logs").iterdir()) == []


def test_a_refused_resume_writes_nothing_to_the_runs_log(tiny_data, tmp_path):
    root, _ = tiny_data
    assert cli(*TINY, f"data.root={root}", f"hydra.run.dir={tmp_path}").returncode == 0
    logged = (tmp_path / "train.log").read_bytes()
    proc = cli(*TINY, f"data.root={root}", f"hydra.run.dir={tmp_path}", "trainer.resume=true", "model.hidden_size=9")
    assert proc.returncode == 2 and "under other settings (model.hidden_size: 8 -> 9)" in proc.stderr
    assert (tmp_path / "train.log").read_bytes() == logged


def test_a_superseded_run_takes_its_log_along(tiny_data, tmp_path):
    """A fresh start in a run's directory moves the earlier run's files aside, its train.log among them: the new
    log holds only the new run's lines."""
    root, _ = tiny_data
    assert cli(*TINY, f"data.root={root}", f"hydra.run.dir={tmp_path}", "trainer.max_steps=3").returncode == 0
    first = (tmp_path / "train.log").read_text()
    assert cli(*TINY, f"data.root={root}", f"hydra.run.dir={tmp_path}").returncode == 0
    (moved,) = (tmp_path / "superseded").iterdir()
    assert (moved / "train.log").read_text() == first and "3 of 3 iterations to train" in first
    log = (tmp_path / "train.log").read_text()
    assert "6 of 6 iterations to train" in log and "3 of 3 iterations" not in log


@pytest.fixture
def small_disk(tmp_path):
    """A real 300 kB filesystem (tmpfs; needs root), to fill."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield disk
    subprocess.run(["umount", str(disk)], check=False)


@pytest.mark.parametrize("free_kb", [4, 40])
def test_a_full_disk_is_one_paragraph_and_leaves_no_half_written_file(tiny_data, small_disk, free_kb):
    """Full at the start (4 kB free): exit 2, nothing left, no 'Logging error'. Full mid-run (40 kB: the settings
    fit, the checkpoints do not): exit 2, and every file there is whole (the permutation loads)."""
    root, _ = tiny_data
    (small_disk / "fill").write_bytes(b"\0" * ((300 - free_kb) * 1024))
    run_dir = small_disk / "run"
    proc = cli(*TINY, "dataset=pmnist", f"data.root={root}", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2 and f"{run_dir} cannot be written (No space left on device" in proc.stderr
    assert "Traceback" not in proc.stderr and "Logging error" not in proc.stderr
    if free_kb == 4:
        assert not run_dir.exists()
        return
    assert not list(run_dir.rglob("*.tmp")) and not (run_dir / "run.lock").exists()
    assert sorted(torch.load(run_dir / "permutation.pt").tolist()) == list(range(784))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] in ("failed", "running")  # 'running' with its lock free reads as interrupted


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_starting_stops_at_once_and_writes_nothing(tiny_data, tmp_path, sig):
    """Ctrl-C or SIGTERM while the imports and the composition take their seconds: exit 130 and nothing written,
    even where the shell that started it ignores SIGINT (a background job)."""
    root, _ = tiny_data
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *TINY, f"data.root={root}", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=REPO, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    time.sleep(0.5)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted before any run started: nothing was written" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "run").exists()


def test_a_read_only_run_directory_is_one_paragraph_before_anything_starts(tiny_data, small_disk):
    """A run or sweep folder on a read-only filesystem: exit 2 naming it, no traceback (Hydra's log setup would
    raise one first)."""
    root, _ = tiny_data
    (small_disk / "run").mkdir()
    if subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True).returncode:
        pytest.skip("cannot remount the tmpfs read-only here")
    single = [*TINY, f"data.root={root}", f"hydra.run.dir={small_disk / 'run'}"]
    sweep = ["-m", *TINY, f"data.root={root}", "model.eps=0.01,0.1", f"hydra.sweep.dir={small_disk / 's'}"]
    for args in (single, sweep):
        proc = cli(*args)
        assert proc.returncode == 2 and "is read-only (or not writable by this user)" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "Nothing was started." in proc.stderr


def test_test_every_eval_tests_at_each_validation_and_the_tables_show_the_best_beside_the_chosen(tiny_data, tmp_path):
    """trainer.test_every_eval reads the model only: it may be turned on at a resume (the run stays the same run),
    its passes agree with the end-of-run test of the same weights, and the table's sensitivity section reports the
    best of them beside the best-validation checkpoint's test, never instead of it."""
    from antisym.results.aggregate import write_tables

    root, _ = tiny_data
    run_dir = tmp_path / "runs" / "probe"
    common = ["dataset=pmnist", "trainer.eval_every=2"]
    run(compose_cfg(root, *common, "trainer.max_steps=4"), run_dir)
    summary = run(
        compose_cfg(root, *common, "trainer.max_steps=8", "trainer.resume=true", "trainer.test_every_eval=true"),
        run_dir,
    )
    rows = read_rows(run_dir)
    probes = {r["step"]: r["acc"] for r in rows if r["split"] == "test_probe"}
    assert sorted(probes) == [6, 8]  # the passes start where the key was turned on
    assert [r["step"] for r in rows if r["split"] == "val"] == [2, 4, 6, 8]
    assert probes[8] == summary["final_test_acc"]  # the final model, tested by _finish on its own
    if summary["best_step"] in probes:
        assert probes[summary["best_step"]] == summary["test_acc"]  # best.pt reloaded from disk and tested again
    seen = {**probes, summary["best_step"]: summary["test_acc"]}
    best = max(seen.values())

    write_tables([tmp_path / "runs"], tmp_path / "tables", tables=(1,))
    section = (tmp_path / "tables" / "table1.md").read_text().split("## Sensitivity")[1]
    line = next(row for row in section.splitlines() if row.startswith("| AntisymmetricRNN | pMNIST |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2:5] == [f"{100 * summary['test_acc']:.1f}", f"{100 * best:.1f}",
                          f"{100 * (best - summary['test_acc']):+.1f}"]  # fmt: skip
    assert cells[6] == "1 of 1"
