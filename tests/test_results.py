"""The reproduction pipeline: presets, sweeps, the table builder on real tiny runs, `make reproduce-table QUICK=1`."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from antisym.errors import ConfigError
from antisym.models import build_model, count_parameters
from antisym.results import write_tables
from antisym.results.aggregate import QuickRunsError
from antisym.results.paper import ITERATIONS, PAPER, TABLE_OF_DATASET, preset_name, table_rows
from antisym.results.rows import collect_runs
from antisym.training import run
from antisym.training.rundir import RunLock
from tests.conftest import REPO

# Tiny runs: 8 hidden units, 2 steps of batch 4, tiny validation split; MNIST stays 784 steps.
TINY = [
    "model.hidden_size=4",
    "trainer.max_steps=2",
    "trainer.batch_size=4",
    "trainer.eval_every=2",
    "trainer.eval_batch_size=64",
    "trainer.log_every=1",
    "trainer.progress=false",
    "dataset.val_size=8",
    "data.download=false",
    "data.allow_subset=true",
]
PRESETS = [preset_name(m, d) for t in (1, 2) for m, d in table_rows(t)]
PAPER_GRID = {
    "optimizer": "sgd,adagrad",
    "optimizer.lr": "0.1,0.2,0.3,0.4,0.5,0.75,1.0",
    "model.eps": "0.01,0.1,1.0",
    "model.gamma": "0.001,0.01,0.1,1.0",
    "model.init_std": "0.0,1.0,2.0,4.0,8.0,16.0",
}


TINY_DATA = [
    "dataset.val_size=8",
    "trainer.eval_batch_size=64",
    "data.download=false",
    "data.allow_subset=true",
]  # for the tiny data sets


def quick_driver_args(root: Path, tmp_path: Path, *flags: str, overrides: Sequence[str] = ()) -> list[str]:
    """Arguments of `python -m antisym.results.reproduce`: QUICK, Table 1's asym_mnist row only, on tiny data."""
    dirs = ["--data", str(root), "--logs", str(tmp_path / "logs"), "--results", str(tmp_path / "results")]
    return ["--quick", "--table", "1", "--rows", "asym_mnist", *flags, *dirs, "--", *TINY_DATA, *overrides]


def compose_cfg(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra)


def k_rounded(n: int) -> str:
    return f"{round(n / 1000)}k"


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_has_the_papers_row(preset):
    cfg = compose_cfg(f"experiment={preset}")
    table = int(preset[5])
    model, dataset = cfg.model.name, cfg.dataset.name
    paper = PAPER[table][model]
    assert preset == preset_name(model, dataset) and cfg.preset.name == preset and TABLE_OF_DATASET[dataset] == table
    assert cfg.model.hidden_size == paper.units and cfg.trainer.batch_size == 128
    assert cfg.trainer.max_steps == ITERATIONS[dataset] and "seeds" not in cfg  # the plan's (tables.yaml)
    # debug=smoke shortens a preset as it does a plain run: it comes after the presets in the defaults list.
    debug = compose_cfg(f"experiment={preset}", "debug=smoke").trainer
    assert (debug.max_steps, debug.eval_limit, debug.batch_size) == (20, 500, 128)
    # Parameters counted from the model the preset builds; Table 2's column is for pixel CIFAR-10 (m=3).
    if dataset != "noisy_cifar10":
        m = {"mnist": 1, "pmnist": 1, "cifar10": 3}[dataset]
        model_ = build_model(OmegaConf.to_container(cfg.model, resolve=True), m, 10)
        assert k_rounded(count_parameters(model_)) == paper.params
    text = (REPO / "conf" / "experiment" / f"{preset}.yaml").read_text()
    reasons = (REPO / "conf" / "experiment" / "README.md").read_text()  # the reasoning, one section per preset
    assert f"conf/experiment/README.md, section {preset}." in text and f"\n### {preset}\n" in reasons


@pytest.mark.parametrize("debug", ["smoke", "quick"])
def test_the_debug_group_shrinks_every_preset_and_nothing_else(debug):
    """debug=<name> sets its keys over any preset (the baselines' own lengths and batch sizes too) and leaves the
    rest of the row as the preset has it; quick's noise-padded rows get their shorter sequence."""
    wanted = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "debug" / f"{debug}.yaml"))
    presets = sorted(str(p.relative_to(REPO / "conf" / "experiment").with_suffix(""))
                     for p in (REPO / "conf" / "experiment").glob("*/*.yaml"))  # fmt: skip
    assert len(presets) > len(PRESETS)
    for preset in presets:
        plain = OmegaConf.to_container(compose_cfg(f"experiment={preset}"), resolve=True)
        shrunk = OmegaConf.to_container(compose_cfg(f"experiment={preset}", f"debug={debug}"), resolve=True)
        for section, values in wanted.items():
            for key, value in values.items() if isinstance(values, dict) else [(None, values)]:
                got = shrunk[section] if key is None else shrunk[section][key]
                assert got == value, (preset, section, key)
                if key is not None:
                    plain[section][key] = value
                else:
                    plain[section] = value
        if debug == "quick" and plain["dataset"]["name"] == "noisy_cifar10":
            assert shrunk["dataset"]["seq_len"] == 64
            plain["dataset"]["seq_len"] = 64
        assert shrunk == plain, preset


def test_preset_values_are_overridable():
    cfg = compose_cfg(
        "experiment=table1/asym_pmnist",
        "model.eps=0.1",
        "optimizer=sgd",
        "optimizer.lr=0.3",
        "model=gated",
        "trainer.seed=4",
        "trainer.max_steps=7",
        "model.hidden_size=16",
    )
    assert (cfg.model.name, cfg.model.eps, cfg.model.hidden_size) == ("gated", 0.1, 16)
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.lr == 0.3
    assert cfg.trainer.seed == 4 and cfg.trainer.max_steps == 7


def test_sweeps_compose():
    cfg = compose_cfg("experiment=table1/asym_pmnist", "sweep=paper_grid", hydra=True)
    assert dict(cfg.hydra.sweeper.params) == PAPER_GRID
    assert cfg.trainer.skip_completed and cfg.trainer.resume
    lstm = compose_cfg("experiment=table2/lstm_cifar10", "sweep=paper_grid_lstm", hydra=True)
    assert set(lstm.hydra.sweeper.params) == {"optimizer", "optimizer.lr", "model.init_std"}
    assert lstm.trainer.resume is True and lstm.trainer.skip_completed is True and lstm.trainer.progress is False


def test_figure_2s_models_are_a_block_of_the_paper_plan_and_one_multirun_each(tmp_path, capsys):
    """Figure 2: T in {100, 200, 400, 800} x gamma in {0.001, 0.01, 0.1, 1, 5, 10} AntisymmetricRNNs and the LSTM at
    each T, each its model's noise-padded Table 2 preset, seed 0, all in one folder; make fig2-sweep trains them
    as two multiruns (the cell's grid and the LSTM's), not 28."""
    from antisym.plan import load_plan
    from antisym.results import reproduce

    runs = load_plan("paper").block_runs("fig2")
    asym = {r.point for r in runs if r.preset == "table2/asym_noisy_cifar10"}
    assert {r.seed for r in runs} == {0} and len(asym) == 24 and len(runs) == 28
    assert {p[0] for p in asym} == {f"dataset.seq_len={t}" for t in (100, 200, 400, 800)}
    assert {p[1] for p in asym} == {f"model.gamma={g}" for g in (0.001, 0.01, 0.1, 1.0, 5.0, 10.0)}
    assert {r.preset for r in runs} == {"table2/asym_noisy_cifar10", "table2/lstm_noisy_cifar10"}
    args = ["--plan", "paper", "--blocks", "fig2", "--dry-run", "--logs", str(tmp_path)]
    assert reproduce.main(args) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("$ ")]
    assert len(commands) == 2 and "model.gamma=0.001,0.01,0.1,1.0,5.0,10.0" in commands[0]
    assert all(f"hydra.sweep.dir={tmp_path / 'paper' / 'fig2'} " in c for c in commands)
    assert reproduce.main([*args[:3], "fig3", *args[4:]]) == 2
    assert "no block of plan paper" in capsys.readouterr().err


@pytest.mark.parametrize("preset", PRESETS)
def test_the_focus_plan_grids_each_row_around_its_own_values(preset):
    """make reproduce-table PLAN=focus: each row's grid is 2-3 knobs that exist in its config, each containing the
    preset's own value, and its runs' names tell every grid point apart."""
    from antisym.plan import load_plan

    runs = [r for r in load_plan("focus").runs if r.preset == preset]
    grid: dict[str, set[str]] = {}
    for point in (r.point for r in runs):
        for override in point:
            key, value = override.split("=", 1)
            grid.setdefault(key, set()).add(value)
    assert 2 <= len(grid) <= 3 and len(runs) == len({r.name for r in runs}) == math.prod(map(len, grid.values()))
    cfg = compose_cfg(f"experiment={preset}")
    for key, values in grid.items():
        own = OmegaConf.select(cfg, key)
        assert own is not None, f"{preset}: the focus plan sweeps {key}, which the config does not have"
        assert float(own) in map(float, values), f"{preset}: {key}={own} not in its grid {sorted(values)}"


def tiny_run(root: Path, run_dir: Path, preset: str, *overrides: str) -> dict:
    return run(compose_cfg(f"experiment={preset}", *TINY, f"data.root={root}", *overrides), run_dir)


def test_tables_from_real_tiny_runs(tiny_data, tmp_path):
    root, _ = tiny_data
    logs = tmp_path / "logs"
    # Two configurations of the same row, two seeds each: the one with the higher mean val accuracy is reported.
    for lr in ("0.1", "0.5"):
        for seed in (0, 1):
            tiny_run(
                root,
                logs / f"asym_mnist_lr{lr}" / f"seed{seed}",
                "table1/asym_mnist",
                f"optimizer.lr={lr}",
                f"trainer.seed={seed}",
            )
    tiny_run(root, logs / "gated_pmnist" / "seed0", "table1/gated_pmnist")
    # A run that diverges at its first step (h overflows) and one that failed (a machine lost midway: the record a
    # crash leaves; a run refused before training writes none).
    diverged = tiny_run(
        root,
        logs / "asym_mnist_nan" / "seed0",
        "table1/asym_mnist",
        "model.eps=1e38",
        "optimizer.lr=0.1",
        "trainer.seed=3",
    )
    assert diverged["status"] == "diverged"
    failed = tiny_run(root, logs / "gated_mnist" / "seed0", "table1/gated_mnist")
    lost = {**failed, "status": "failed", "error": "OSError: node lost"}
    (logs / "gated_mnist" / "seed0" / "summary.json").write_text(json.dumps(lost))
    with pytest.raises(Exception, match="not found"):  # refused: it leaves no run directory to count
        tiny_run(tmp_path / "no-data", logs / "gated_mnist" / "seed9", "table1/gated_mnist")
    assert not (logs / "gated_mnist" / "seed9").exists()
    # An interrupted run: Hydra's .hydra/ and the config are there, the summary is not.
    interrupted = logs / "lstm_pmnist" / "seed0"
    (interrupted / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_cfg("experiment=table1/lstm_pmnist", *TINY), interrupted / ".hydra" / "config.yaml")
    tiny_run(root, logs / "t2" / "seed0", "table2/gated_noisy_cifar10", "dataset.seq_len=33")

    out = tmp_path / "results"
    rows = write_tables([logs], out, tables=(1,))
    files = [
        "gap.md",
        "gap_curves.json",
        "gap_curves.pdf",
        "gap_curves.png",
        "rows.csv",
        "runs.csv",
        "table1.md",
        "table1_curves.json",
        "table1_curves.pdf",
        "table1_curves.png",
    ]
    assert sorted(p.name for p in out.iterdir()) == files  # table 2 not asked for

    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert len(runs) == 9 and {r["status"] for r in runs} == {"completed", "diverged", "failed", "incomplete"}
    asym = [r for r in runs if r["preset"] == "table1/asym_mnist" and r["status"] == "completed"]
    by_lr: dict[str, list[dict]] = {}
    for r in asym:
        by_lr.setdefault(r["config"], []).append(r)
    assert len(by_lr) == 2 and all(len(v) == 2 for v in by_lr.values())
    # The selection is by mean validation accuracy; with the diverged run (no checkpoint, no result) ignored.
    best = max(by_lr, key=lambda c: (statistics.fmean(float(r["best_val_acc"]) for r in by_lr[c]), c))
    assert {r["config"] for r in runs if r["selected"] == "1" and r["preset"] == "table1/asym_mnist"} == {best}
    row = next(r for r in rows[1] if (r.model, r.dataset) == ("asym", "mnist"))
    tests = [float(r["test_acc"]) for r in by_lr[best]]
    assert row.chosen.label == best and row.test_mean == pytest.approx(statistics.fmean(tests))
    assert row.chosen.std("test_acc") == pytest.approx(statistics.stdev(tests))

    md = (out / "table1.md").read_text()
    assert "QUICK" not in md and "**Warning:**" in md and "**short**" in md  # 2 of 50,000 iterations
    mean, std = 100 * statistics.fmean(tests), 100 * statistics.stdev(tests)
    assert f"| {mean:.1f} ± {std:.1f} | 98.0 | — (short) |" in md  # 2 iterations: no difference from the paper
    for status in ("diverged", "failed", "incomplete"):
        assert f"| {status} |" in md
    assert "OSError: node lost" in md and "non-finite loss at step 1" in md
    assert "## Configurations compared" in md and re.search(r"- devices: `cpu: [^`]+` \(\d+ runs?\)", md)
    assert "| LSTM | pMNIST | table1/lstm_pmnist | screen: 0 of 2 iterations |" in md  # unfinished: no accuracy
    assert "not run" in md and "| KRU (Jose et al., 2017) |" in md
    commit = json.loads((logs / "gated_pmnist" / "seed0" / "summary.json").read_text())["git_commit"]
    assert f"`{commit}`" in md
    rows_csv = list(csv.DictReader((out / "rows.csv").open()))
    assert len(rows_csv) == 6 + 8 and {r["table"] for r in rows_csv} == {"1", "2"}
    gated_noisy = next(r for r in rows_csv if r["preset"] == "table2/gated_noisy_cifar10")
    assert gated_noisy["n_seeds"] == "1" and float(gated_noisy["paper_acc"]) == pytest.approx(0.547)


def test_quick_runs_never_go_into_full_tables(tiny_data, tmp_path):
    root, _ = tiny_data
    tiny_run(root, tmp_path / "logs" / "r" / "seed0", "table1/asym_mnist", "debug=quick")
    with pytest.raises(QuickRunsError):
        write_tables([tmp_path / "logs"], tmp_path / "results")
    assert not (tmp_path / "results").exists()
    write_tables([tmp_path / "logs"], tmp_path / "results" / "quick", quick=True)
    assert (tmp_path / "results" / "quick" / "table1.md").read_text().startswith("> **QUICK smoke run**")


def make(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    # -o <venv stamp>: use the interpreter running the tests instead of (re)building the venv.
    return subprocess.run(
        ["make", "-o", ".venv/.installed", f"PY={sys.executable}", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.skipif(not (REPO / "Makefile").is_file(), reason="the main Makefile includes mk/reproduce.mk")
def test_make_reproduce_table_quick_end_to_end_and_idempotent(tiny_data, tmp_path):
    root, _ = tiny_data
    logs, results = tmp_path / "logs", tmp_path / "results"
    common = [
        "reproduce-table",
        "QUICK=1",
        "TABLE=1",
        f"DATA={root}",
        f"LOGS={logs}",
        f"RESULTS={results}",
        f"OVERRIDES={' '.join(TINY_DATA)}",
    ]
    proc = make(*common)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    quick = logs / "quick" / "reproduce"
    dirs = sorted(str(p.parent.relative_to(quick)) for p in quick.glob("table1/*_seed*/summary.json"))
    assert dirs == sorted(f"{preset_name(m, d)}_seed{s}" for m, d in table_rows(1) for s in (0, 1))
    md = (results / "quick" / "table1.md").read_text()
    assert md.startswith("> **QUICK smoke run**") and "# Table 1 (QUICK)" in md
    assert not (results / "table1.md").exists() and not (results / "runs.csv").exists()
    runs = list(csv.DictReader((results / "quick" / "runs.csv").open()))
    assert len(runs) == 12 and {r["status"] for r in runs} == {"completed"} and {r["quick"] for r in runs} == {"1"}
    assert all(r["steps"] == "4" and r["hidden_size"] == "8" for r in runs)

    # Again: nothing to run, no run directory touched.
    stamps = {p: p.stat().st_mtime_ns for p in quick.glob("table1/*_seed*/summary.json")}
    proc = make(*common)
    assert proc.returncode == 0 and "nothing to run" in proc.stdout, proc.stdout[-2000:]
    assert stamps == {p: p.stat().st_mtime_ns for p in stamps}

    # A crash midway: one run failed, one was killed after its step-2 checkpoint (no summary). Only those two run,
    # the killed one resuming at step 2; the table lists everything completed again.
    failed, killed = quick / "table1/gated_mnist_seed1", quick / "table1/lstm_pmnist_seed0"
    summary = json.loads((failed / "summary.json").read_text())
    (failed / "summary.json").write_text(json.dumps({**summary, "status": "failed", "error": "OSError: node lost"}))
    (killed / "summary.json").unlink()
    proc = make(*common)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"table1/gated_mnist_seed1 +failed +-> rerun", proc.stdout)
    assert re.search(r"table1/lstm_pmnist_seed0 +interrupted +-> rerun", proc.stdout)
    assert "resumed from" in (killed / "train.log").read_text()
    rerun = {p for p in stamps if p.stat().st_mtime_ns != stamps[p]}
    assert rerun == {failed / "summary.json", killed / "summary.json"}  # the other ten untouched
    assert json.loads((killed / "summary.json").read_text())["status"] == "completed"
    assert {r["status"] for r in csv.DictReader((results / "quick" / "runs.csv").open())} == {"completed"}


def asym_mnist_job(quick_root: Path, overrides: Sequence[str]):
    """The QUICK tables plan's seed-0 asym_mnist run, as the driver classifies it under `overrides`."""
    from antisym.plan import load_plan
    from antisym.results import reproduce

    spec = load_plan("tables", seeds=[0], quick=True)
    (job,) = reproduce.plan_jobs(spec, ["table1"], quick_root, overrides, False, ["asym_mnist"])
    return job


def test_stale_run_is_moved_aside_and_rerun(tiny_data, tmp_path):
    """A completed run whose hyperparameters differ from what the preset now says is not reported as the preset's."""
    from antisym.results import reproduce

    root, _ = tiny_data
    logs = tmp_path / "logs"
    quick = logs / "quick" / "reproduce"
    overrides = [f"data.root={root}", *TINY_DATA]
    run(compose_cfg("experiment=table1/asym_mnist", "debug=quick", *overrides), quick / "table1" / "asym_mnist_seed0")
    assert asym_mnist_job(quick, overrides).state.status == "completed"
    job = asym_mnist_job(quick, [*overrides, "optimizer.lr=0.2"])
    assert job.state.status == "stale" and "optimizer.lr: 0.1 -> 0.2" in job.state.detail
    args = quick_driver_args(root, tmp_path, "--seeds", "1", overrides=["optimizer.lr=0.2"])
    assert reproduce.main(args) == 0
    moved = list((logs / "quick" / "reproduce.stale").glob("*/table1/asym_mnist_seed0/summary.json"))
    assert len(moved) == 1
    runs = collect_runs([quick])
    assert len(runs) == 1 and runs[0].cfg["optimizer"]["lr"] == 0.2 and runs[0].status == "completed"


def test_interrupted_run_under_changed_settings_is_stale_not_resumed(tiny_data, tmp_path):
    root, _ = tiny_data
    quick = tmp_path / "logs" / "quick" / "reproduce"
    overrides = [f"data.root={root}", *TINY_DATA]
    run_dir = quick / "table1" / "asym_mnist_seed0"
    cfg = compose_cfg("experiment=table1/asym_mnist", "debug=quick", *overrides, "trainer.time_limit_s=1e-9")
    assert run(cfg, run_dir)["status"] == "interrupted"
    job = asym_mnist_job(quick, overrides)
    assert job.state.status == "interrupted" and job.state.todo()
    job = asym_mnist_job(quick, [*overrides, "optimizer.lr=0.2"])
    assert job.state.status == "stale" and "optimizer.lr: 0.1 -> 0.2" in job.state.detail


def test_runs_of_the_layout_before_plans_are_refused_with_the_move(tiny_data, tmp_path, capsys):
    """<root>/<preset>/seed<k> (older code's layout) would be missed and trained again beside itself: the driver
    names the move and trains nothing."""
    from antisym.results import reproduce

    root, _ = tiny_data
    old = tmp_path / "logs" / "quick" / "reproduce" / "table1" / "asym_mnist" / "seed0"
    run(compose_cfg("experiment=table1/asym_mnist", "debug=quick", f"data.root={root}", *TINY_DATA), old)
    assert reproduce.main(quick_driver_args(root, tmp_path, "--seeds", "1")) == 2
    err = capsys.readouterr().err
    assert f"mv {old} {old.parent.parent / 'asym_mnist_seed0'}" in err and "Nothing was trained" in err
    assert not (tmp_path / "results").exists() and not (old.parent.parent / "asym_mnist_seed0").exists()


def test_the_tables_plan_is_every_row_of_the_papers_tables():
    """make reproduce-table's plan and the paper's rows (results/paper.py) name the same presets in the same order."""
    from antisym.plan import load_plan

    spec = load_plan("tables")
    for table in (1, 2):
        runs = spec.block_runs(f"table{table}")
        assert [r.preset for r in runs if r.seed == 0] == [preset_name(m, d) for m, d in table_rows(table)]
        assert sorted({r.seed for r in runs}) == [0, 1, 2]
        assert all(r.rel_dir == f"{r.preset}_seed{r.seed}" for r in runs)  # the driver's hydra.sweep.subdir
    from antisym.results.reproduce import table_blocks

    assert table_blocks(spec, (2,)) == ["table2"] and table_blocks(load_plan("focus"), (1, 2)) == ["table1", "table2"]
    paper = load_plan("paper")
    assert table_blocks(paper, (1,)) == list(paper.blocks)  # its table1 block is one of many: TABLE= picks none
    quick = load_plan("tables", quick=True)
    assert {r.seed for r in quick.runs} == {0, 1} and all("debug=quick" in r.overrides for r in quick.runs)
    with pytest.raises(ConfigError, match="has no `quick` section"):
        load_plan("paper", quick=True)


def test_a_plans_grid_is_one_multirun_into_the_plans_run_directories(tiny_data, tmp_path):
    """make reproduce-table PLAN=focus ROWS=lstm_mnist: the row's 6 grid points train in one Hydra multirun (so a
    parallel or packed launcher takes them together), each into the directory the plan names it by; again: none."""
    from antisym.plan import load_plan
    from antisym.results import reproduce

    root, _ = tiny_data
    args = quick_driver_args(root, tmp_path, "--plan", "focus")
    args[args.index("--rows") + 1] = "lstm_mnist"
    assert reproduce.main(args) == 0
    planned = {r.rel_dir for r in load_plan("focus", quick=True).runs if r.preset == "table1/lstm_mnist"}
    trained = {str(p.parent.relative_to(tmp_path / "logs" / "quick" / "focus")) for p in
               (tmp_path / "logs" / "quick" / "focus").glob("*/*/summary.json")}  # fmt: skip
    assert len(planned) == 6 and trained == planned
    statuses = {json.loads((tmp_path / "logs/quick/focus" / d / "summary.json").read_text())["status"] for d in planned}
    assert statuses == {"completed"}
    spec, root_dir = load_plan("focus", quick=True), tmp_path / "logs/quick/focus"

    def jobs():
        return reproduce.plan_jobs(spec, ["table1"], root_dir, [f"data.root={root}", *TINY_DATA], False, ["lstm_mnist"])

    done = jobs()
    assert [j.state.status for j in done] == ["completed"] * 6 and not reproduce.launch_groups(done)
    (root_dir / sorted(planned)[0] / "summary.json").unlink()  # killed: that point alone again
    (launch,) = reproduce.launch_groups(jobs())
    assert launch.presets == ("table1/lstm_mnist",) and [len(v) for _, v in launch.grid] == [1, 1]


def test_driver_input_errors_are_one_paragraph(tmp_path, capsys):
    from antisym.results import reproduce

    assert reproduce.main(["--table", "1", "--dry-run", "--logs", str(tmp_path), "--", "model.eps=1"]) == 2
    err = capsys.readouterr().err
    assert "do not apply to row table1/lstm_mnist" in err and "ROWS=" in err
    with pytest.raises(SystemExit) as exit_info:
        reproduce.main(["--seeds", "abc", "--dry-run"])
    assert exit_info.value.code == 2 and "SEEDS='abc'" in capsys.readouterr().err


def test_tables_from_no_runs_say_so(tmp_path):
    write_tables([tmp_path / "nothing"], tmp_path / "out", (1,))
    text = (tmp_path / "out" / "table1.md").read_text()
    assert "No run directories found" in text and "every run behind this table completed" not in text


def test_quick_table2_runs_every_row(tiny_data, tmp_path):
    """Table 2 has dataset-specific QUICK overrides (noise-padded length): the rows sharing them share one multirun."""
    from antisym.results import reproduce

    root, _ = tiny_data
    args = quick_driver_args(root, tmp_path, "--seeds", "1")
    args[args.index("--table") + 1], args[args.index("--rows") + 1] = (
        "2",
        ",".join(f"{m}_noisy_cifar10" for m in ("asym", "gated", "lstm")) + ",ablation_cifar10",
    )
    assert reproduce.main(args) == 0
    rows = list(csv.DictReader((tmp_path / "results" / "quick" / "rows.csv").open()))
    done = {r["preset"] for r in rows if r["n_seeds"] == "1"}
    assert done == {f"table2/{m}_noisy_cifar10" for m in ("asym", "gated", "lstm")} | {"table2/ablation_cifar10"}
    cfg = OmegaConf.load(
        tmp_path / "logs" / "quick" / "reproduce" / "table2" / "gated_noisy_cifar10_seed0" / "config.yaml"
    )
    assert cfg.dataset.seq_len == 64 and cfg.model.hidden_size == 8 and cfg.quick
    assert "# Table 2 (QUICK)" in (tmp_path / "results" / "quick" / "table2.md").read_text()


def test_tables_count_right(tiny_data, tmp_path, capsys):
    """Rows by the class a run trained, not its free label; one seed of one configuration counted once however many
    directories hold it; unreadable directories listed with why; a paper-length run in training hides the screen's
    short number ("k of N iterations"), which stays in the comparison."""

    root, _ = tiny_data
    logs = tmp_path / "logs"
    tiny_run(root, logs / "asym" / "seed0", "table1/asym_mnist", "trainer.seed=0")
    tiny_run(root, logs / "asym" / "seed1", "table1/asym_mnist", "trainer.seed=1")
    shutil.copytree(logs / "asym" / "seed1", logs / "copy" / "seed1")  # the same run, twice
    tiny_run(root, logs / "labelled" / "seed0", "table1/asym_pmnist", "model.name=gated")  # an asym run named gated
    for name, damage in (("emptied", "config.yaml"), ("torn", "summary.json"), ("middle", "metrics.jsonl")):
        shutil.copytree(logs / "asym" / "seed0", logs / name)
        path = logs / name / damage
        if damage == "metrics.jsonl":
            lines = path.read_text().splitlines()
            path.write_text("\n".join([lines[0], lines[1][:10], *lines[2:]]) + "\n")
        else:
            path.write_text("" if damage == "config.yaml" else '{"status": "compl')
    rows = write_tables([logs], tmp_path / "out", tables=(1,))
    by_row = {(r.model, r.dataset): r for r in rows[1]}
    asym = by_row[("asym", "mnist")]
    assert len(asym.chosen.results) == 2 and len(asym.chosen.duplicates) == 1  # seeds 0 and 1, not 3 "seeds"
    assert [r.path.parent.name for r in by_row[("asym", "pmnist")].runs] == ["labelled"]
    assert by_row[("gated", "pmnist")].runs == []
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "| 2 (1 duplicate directory counted once) |" in md
    shown = Path("..") / "logs"  # named from the folder the table is in, so committed tables read the same anywhere
    assert f"| `{shown / 'copy' / 'seed1'}` | seed 1 of the same configuration as `{shown / 'asym' / 'seed1'}`" in md
    assert f"| `{shown / 'emptied'}` | config.yaml has no model, dataset, trainer section" in md
    assert f"| `{shown / 'torn'}` |" in md and f"| `{shown / 'middle'}` |" in md
    assert str(tmp_path) not in md
    assert "not counted" in capsys.readouterr().err
    # A paper-length run of the row starts: the screen's 6-step number gives way to the run's progress.
    longer = logs / "paper_length" / "seed0"
    shutil.copytree(logs / "asym" / "seed0", longer)
    cfg = OmegaConf.load(longer / "config.yaml")
    cfg.trainer.max_steps = 50_000
    OmegaConf.save(cfg, longer / "config.yaml")
    summary = json.loads((longer / "summary.json").read_text())
    (longer / "summary.json").write_text(json.dumps({**summary, "status": "interrupted", "steps": 1234}))
    rows = write_tables([logs], tmp_path / "out", tables=(1,))
    asym = next(r for r in rows[1] if (r.model, r.dataset) == ("asym", "mnist"))
    assert asym.chosen is None and len(asym.candidates) == 2
    best = max(float(r.get("best_val_acc")) for r in asym.runs)
    assert (f"| AntisymmetricRNN | *unfinished* (1,234 of 50,000 iterations); best so far: val {100 * best:.1f}"
            in (tmp_path / "out" / "table1.md").read_text())  # fmt: skip
    # A second configuration starts at paper length, behind the first: the row names each one's furthest run.
    other = logs / "new_setup" / "seed0"
    shutil.copytree(longer, other)
    cfg.optimizer.lr = 0.5
    OmegaConf.save(cfg, other / "config.yaml")
    (other / "summary.json").write_text(json.dumps({**summary, "status": "interrupted", "steps": 567}))
    write_tables([logs], tmp_path / "out", tables=(1,))
    assert ("| AntisymmetricRNN | *unfinished* (1,234 of 50,000 iterations; the furthest run of each configuration: "
            "paper_length/seed0 at 1,234, new_setup/seed0 at 567); best so far"
            in (tmp_path / "out" / "table1.md").read_text())  # fmt: skip


def test_a_screens_progress_is_not_shown_as_progress_towards_the_paper_length_row(tiny_data, tmp_path):
    """An unfinished row with only a short screen shows the screen's progress towards its own length, labelled as a
    screen's; once a paper-length run starts, the row shows that run's progress, whatever the screen's steps."""
    root, _ = tiny_data
    logs = tmp_path / "logs"
    screen = logs / "screen" / "seed0"
    tiny_run(root, screen, "table1/gated_mnist")  # 2 steps, then resumed for 4 and stopped at once: 2 of 4
    stopped = tiny_run(root, screen, "table1/gated_mnist", "trainer.max_steps=4", "trainer.resume=true",
                       "trainer.time_limit_s=1e-9")  # fmt: skip
    assert (stopped["status"], stopped["steps"]) == ("interrupted", 2)
    write_tables([logs], tmp_path / "out", tables=(1,))
    line = next(x for x in (tmp_path / "out" / "table1.md").read_text().splitlines() if "| table1/gated_mnist |" in x)
    assert "| *unfinished* (screen: 2 of 4 iterations); best so far: val " in line
    assert "(screen/seed0, at 2 of its 4 iterations) |" in line and "of 50,000" not in line.split("|")[4]
    paper_length = tiny_run(root, logs / "preset" / "seed0", "table1/gated_mnist", "trainer.max_steps=50000",
                            "trainer.time_limit_s=1e-9")  # fmt: skip
    assert (paper_length["status"], paper_length["steps"]) == ("interrupted", 0)
    write_tables([logs], tmp_path / "out", tables=(1,))
    assert (
        "| table1/gated_mnist | *unfinished* (0 of 50,000 iterations); best so far: val "
        in (tmp_path / "out" / "table1.md").read_text()
    )  # the row's progress is the paper-length run's; the best so far is still the screen's


def test_a_run_on_other_data_settings_than_the_papers_task_is_compared_never_chosen(tiny_data, tmp_path):
    """The paper states independent noise for the noise-padded task; coRNN's shared noise is another task. A run
    trained on it is labelled with what it changed from its preset and never reported as the paper's row, even as the
    row's only result; a successor whose own preset uses shared noise is reported as usual."""
    root, _ = tiny_data
    logs = tmp_path / "logs"
    short = ("dataset.seq_len=33",)
    tiny_run(root, logs / "shared" / "seed0", "table2/gated_noisy_cifar10", *short, "dataset.noise=shared")
    stopped = tiny_run(root, logs / "independent" / "seed0", "table2/gated_noisy_cifar10", *short,
                       "trainer.time_limit_s=1e-9")  # fmt: skip
    assert stopped["status"] == "interrupted"
    tiny_run(root, logs / "cornn" / "seed0", "baselines/cornn_noisy_cifar10", *short, "model.hidden_size=8")
    rows = write_tables([logs], tmp_path / "out", tables=(2,))[2]
    gated = next(r for r in rows if (r.model, r.dataset) == ("gated", "noisy_cifar10"))
    shared = next(c for c in gated.candidates if c.results)
    assert gated.chosen is None and "noise=shared seq_len=33" in shared.label
    cornn = next(r for r in rows if (r.model, r.dataset) == ("cornn", "noisy_cifar10"))
    assert cornn.chosen is not None and "noise=" not in cornn.chosen.label  # its preset's own noise
    md = (tmp_path / "out" / "table2.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| AntisymmetricRNN w/ gating | noise padded |"))
    assert "| screen: 0 of 2 iterations |" in line  # the independent run's progress, not the shared run's result
    assert f"| {shared.label} | 1/1 |" in md and "| never: noise=shared, the paper's independent |" in md
    shutil.rmtree(logs / "independent")  # the row's only run is now on another task: no progress of the row's
    write_tables([logs], tmp_path / "out", tables=(2,))
    md = (tmp_path / "out" / "table2.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| AntisymmetricRNN w/ gating | noise padded |"))
    assert "| not run on the paper's task (only on other data settings) |" in line


def test_a_run_training_now_is_listed_as_training_and_a_killed_one_as_killed(tiny_data, tmp_path):
    """A summary saying "running" is a live run while a process holds its lock, a killed one once none does."""
    root, _ = tiny_data
    run_dir = tmp_path / "logs" / "gated_mnist" / "seed0"
    stopped = tiny_run(root, run_dir, "table1/gated_mnist", "trainer.time_limit_s=1e-9")
    live = {k: v for k, v in stopped.items() if k != "stop_reason"} | {"status": "running"}  # a live trainer's
    (run_dir / "summary.json").write_text(json.dumps(live))

    def detail() -> str:
        write_tables([tmp_path / "logs"], tmp_path / "out", tables=(1,))
        md = (tmp_path / "out" / "table1.md").read_text()
        return next(x for x in md.splitlines() if x.startswith("| AntisymmetricRNN w/ gating, MNIST | 0 |"))

    with RunLock(run_dir):
        assert "| running | 0 / 2 | training now (a live process holds its lock)" in detail()
    assert "| interrupted | 0 / 2 | interrupted (killed: no clean stop recorded): resumes" in detail()


def test_tables_from_a_missing_runs_folder_are_an_error_that_writes_nothing(tmp_path, capsys):
    from antisym.results.__main__ import main

    assert main(["--runs", str(tmp_path / "typo"), "--out", str(tmp_path / "out")]) == 2
    assert "no folder" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_tables_and_figures_go_to_an_ignored_folder_unless_asked(tmp_path, monkeypatch):
    from antisym.results.__main__ import main

    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["--runs", "runs"]) == 0
    assert (tmp_path / "results" / "local" / "table1.md").is_file()
    default_outs = ["results/local/table1.md", "results/local/figures/fig1.png", "results/local/quick/table1.md"]
    ignored = subprocess.run(["git", "check-ignore", *default_outs], cwd=REPO, capture_output=True, text=True)
    assert ignored.stdout.split() == default_outs  # every default output is git-ignored
    make = subprocess.run(["make", "-n", "fig1", "reproduce-tables-only"], cwd=REPO, capture_output=True, text=True)
    assert "--out results/local/figures" in make.stdout and "--out results/local" in make.stdout
    make = subprocess.run(["make", "-n", "fig1", "reproduce-tables-only", "UPDATE=1"], cwd=REPO, capture_output=True,
                          text=True)  # fmt: skip
    assert "--out results/figures" in make.stdout and "--runs results/runs --out results/campaign" in make.stdout
