"""The campaign on the CPU: the paper plan's shape, a lease cut off by its budget and resumed by the next one, the
records collected into a repository's folder with the tables rebuilt, and what collect and parity refuse."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from antisym.config import settings_differences
from antisym.errors import ConfigError
from antisym.plan import choose_point, compose_run, expand, load_plan, plan_path, planned_state, planned_steps, resolve
from antisym.training.rundir import RunLock
from antisym.training.runs import compose, pack_key, run_state
from campaign import kernel_gate
from campaign import lease as lease_mod
from campaign.__main__ import main
from campaign.device import device_command
from campaign.gpu_check.parity import ParityResult
from campaign.lease import Lease, run_lease
from campaign.limits import FILES_BACK, MAX_COMMAND
from campaign.records import RecordError, archive_records, collect

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "model.hidden_size=8",
    "trainer.batch_size=8",
    "trainer.eval_batch_size=16",
    "trainer.log_every=2",
    "trainer.progress=false",
    "dataset.val_size=8",
    "data.allow_subset=true",
]
LONG_STEPS = 200  # about 50 ms a step here: a few seconds of budget stop it in the middle
TINY_PLAN = {
    "launcher": "solo",
    "seeds": [0],
    "overrides": TINY,
    "where_present": ["model.impl=auto"],
    "blocks": [
        {
            "name": "tiny",
            "runs": [
                {
                    "preset": "table1/asym_mnist",
                    "overrides": [f"trainer.max_steps={LONG_STEPS}", "trainer.eval_every=20"],
                },
                {"preset": "table2/asym_noisy_cifar10", "overrides": ["trainer.max_steps=2", "dataset.seq_len=40"]},
                {"preset": "table1/lstm_mnist", "overrides": ["trainer.max_steps=4", "trainer.eval_every=2"]},
            ],
        }
    ],
}
COMMIT = "cafe0123"


def test_paper_plan_order_and_presets():
    plan = load_plan("paper")
    assert (plan.launcher, plan.pack_size, plan.concurrent) == ("packed", 32, 2)
    assert plan.blocks == (
        "table1_screen", "table1", "table2_noisy_screen", "table2_noisy", "table2_noisy_gamma", "table2_noisy_layout",
        "table2_noisy_shared", "gap_table1_late", "gap_budget", "gap_noisy", "gap_noisy_seed1", "gap_noisy_below",
        "gap_table1", "gap_table1_seed1", "gap_table1_below", "gap_table1_init", "gap_table1_below_init_seed1",
        "table2_pixel", "table1_lstm", "fig2", "baselines", "table1_preset",
    )  # fmt: skip
    counts = {b: len(plan.block_runs(b)) for b in plan.blocks}
    assert counts == {
        "table1_screen": 64,
        "table1": 12,
        "table2_noisy_screen": 6,
        "table2_noisy": 12,
        "table2_noisy_gamma": 2,
        "table2_noisy_layout": 2,
        "table2_noisy_shared": 1,
        "gap_table1_late": 2,
        "gap_budget": 1,
        "gap_noisy": 9,
        "gap_noisy_seed1": 7,
        "gap_noisy_below": 2,
        "gap_table1": 6,
        "gap_table1_seed1": 5,
        "gap_table1_below": 2,
        "gap_table1_init": 8,
        "gap_table1_below_init_seed1": 12,
        "table2_pixel": 12,
        "table1_lstm": 6,
        "fig2": 28,
        "baselines": 12,
        "table1_preset": 6,
    }
    # Seeds are the outer loop: every Table 1 row gets seed 0 before any gets seed 1.
    assert [r.name for r in plan.block_runs("table1")[:5]] == [
        "asym_mnist_seed0", "gated_mnist_seed0", "asym_pmnist_seed0", "gated_pmnist_seed0", "asym_mnist_seed1",
    ]  # fmt: skip
    # The screen's 16 points of a cell's MNIST and pMNIST rows are one pack of 32; Table 1 waits for its choice.
    screen = [compose_run(r, [])[0] for r in plan.block_runs("table1_screen")]
    assert sorted(Counter(pack_key(c) for c in screen).values()) == [32, 32]
    assert {c["trainer"]["max_steps"] for c in screen} == {5000}
    assert all(r.waiting and r.select == "table1_screen" for r in plan.block_runs("table1"))
    fig2 = plan.block_runs("fig2")
    assert {r.overrides[-1] for r in fig2} == {"trainer.seed=0"}
    # Table 1 packs as two packs of 6 (3 seeds x MNIST and pMNIST of one cell), every member at fp32 precision.
    composed = [compose_run(r, [])[0] for r in plan.block_runs("table1")]
    assert sorted(Counter(pack_key(c) for c in composed).values()) == [6, 6]
    assert {c["model"]["precision"] for c in composed} == {"ieee"}
    preset = [compose_run(r, [])[0] for r in plan.block_runs("table1_preset")]  # the presets' pack of 6
    assert len({pack_key(c) for c in preset}) == 1 and {c["optimizer"]["lr"] for c in preset} == {0.1}
    assert "dataset.seq_len=800" in fig2[-1].overrides and fig2[-1].preset == "table2/lstm_noisy_cifar10"
    for run in plan.runs:
        assert (REPO / "conf" / "experiment" / f"{run.preset}.yaml").is_file(), run.preset
        assert "model.impl=auto" in run.where_present
    assert plan_path("paper") == REPO / "conf" / "campaign" / "paper.yaml"


def _changed(cfg: dict, base: dict) -> dict[str, tuple]:
    """The experiment settings (seed and length aside) in which `cfg` differs from `base`: key -> (base, cfg)."""
    from antisym.config import experiment_settings

    a, b = experiment_settings(base), experiment_settings(cfg)
    keys = (a.keys() | b.keys()) - {"trainer.seed", "trainer.max_steps", "trainer.eval_every"}
    return {k: (a.get(k), b.get(k)) for k in sorted(keys) if a.get(k) != b.get(k)}


def test_gap_candidates_change_one_open_choice_each_against_the_rows_own_runs():
    """Each gap-ledger candidate differs from the run it is compared with (the row's screen point, the gated row's
    seed 0, Table 1's screen point) in the one choice it tests, at matched length; the budget check is the row's
    seed 0 with a longer max_steps only."""
    plan = load_plan("paper")
    noisy_base = compose("table2/asym_noisy_cifar10", ["trainer.max_steps=2000", "trainer.eval_every=500"])
    gated_base = compose("table2/gated_noisy_cifar10", [])
    changed = {}
    for run in plan.block_runs("gap_noisy"):
        cfg = compose_run(run, [])[0]
        base = gated_base if run.preset == "table2/gated_noisy_cifar10" else noisy_base
        assert cfg["trainer"]["max_steps"] == 2000
        changed[run.name] = _changed(cfg, base)
    assert changed == {
        "gated_noisy_cifar10_gate_bias1.0_seed0": {"model.gate_bias": (None, 1.0)},
        "asym_noisy_cifar10_init_std0.0625_seed0": {"model.init_std": (1.0, 0.0625)},
        "asym_noisy_cifar10_initial_accumulator_value0.1_lr0.1_seed0": {
            "optimizer.initial_accumulator_value": (None, 0.1)},
        "asym_noisy_cifar10_initial_accumulator_value0.1_lr0.5_seed0": {
            "optimizer.initial_accumulator_value": (None, 0.1), "optimizer.lr": (0.1, 0.5)},
        "asym_noisy_cifar10_normalizeTrue_seed0": {"dataset.normalize": (False, True)},
        "asym_noisy_cifar10_init_std0.0_seed0": {"model.init_std": (1.0, 0.0)},
        "asym_noisy_cifar10_init_std4.0_seed0": {"model.init_std": (1.0, 4.0)},
        "asym_noisy_cifar10_optimizersgd_seed0": {
            "optimizer._target_": ("torch.optim.Adagrad", "torch.optim.SGD"), "optimizer.momentum": (None, 0.9),
            "optimizer.nesterov": (None, False)},
        "asym_noisy_cifar10_init_readingstd_seed0": {"model.init_reading": (None, "std")},
    }  # fmt: skip
    (budget,) = plan.block_runs("gap_budget")
    cfg = compose_run(budget, [])[0]
    assert cfg["trainer"]["max_steps"] == 20000 and _changed(cfg, compose("table2/asym_noisy_cifar10", [])) == {}
    screen = {"table1/asym_pmnist": (0.01, 0.01, 0.5), "table1/asym_mnist": (0.01, 0.1, 0.5)}  # the screen's choices
    for run in plan.block_runs("gap_table1"):
        eps, gamma, lr = screen[run.preset]
        base = compose(run.preset, ["trainer.max_steps=5000", f"model.eps={eps}", f"model.gamma={gamma}",
                                    f"optimizer.lr={lr}"])  # fmt: skip
        cfg = compose_run(run, [])[0]
        diff = _changed(cfg, base)
        diff.pop("optimizer.lr", None)  # the accumulator is also tried at lr 1.0
        # pMNIST's lr 1.0 and MNIST's lr 0.5 trailed at 5,000 but rose faster: each continues to 10,000 (the rule)
        continued = run.name in ("asym_pmnist_initial_accumulator_value0.1_lr1.0_seed0",
                                 "asym_mnist_initial_accumulator_value0.1_lr0.5_seed0")  # fmt: skip
        assert cfg["trainer"]["max_steps"] == (10000 if continued else 5000)
        assert diff in ({"dataset.normalize": (False, True)}, {"optimizer.initial_accumulator_value": (None, 0.1)})
    assert "gap_table1" in plan.keep_last  # so that a continued run trains on from its own last.pt
    # Below the grid's edge (eps 0.005) and the init the screen held fixed (sigma_w; the gated rows' gate bias).
    setups = {**screen, "table1/gated_mnist": (0.01, 0.01, 0.2), "table1/gated_pmnist": (0.01, 0.1, 0.2)}
    changed = {}
    for run in plan.block_runs("gap_table1_below") + plan.block_runs("gap_table1_init"):
        eps, gamma, lr = setups[run.preset]
        base = compose(run.preset, ["trainer.max_steps=5000", f"model.eps={eps}", f"model.gamma={gamma}",
                                    f"optimizer.lr={lr}"])  # fmt: skip
        cfg = compose_run(run, [])[0]
        assert cfg["trainer"]["max_steps"] == 5000
        changed[run.name] = _changed(cfg, base)
    assert changed == {
        **{f"{row}_eps0.005_lr0.5_seed0": {"model.eps": (0.01, 0.005)} for row in ("asym_mnist", "asym_pmnist")},
        **{f"{row}_init_std{s}_lr0.5_seed0": {"model.init_std": (1.0, s)}
           for row in ("asym_mnist", "asym_pmnist") for s in (2.0, 4.0, 0.0)},
        **{f"gated_{task}_gate_bias1.0_lr0.2_seed0": {"model.gate_bias": (None, 1.0)} for task in ("mnist", "pmnist")},
    }  # fmt: skip
    assert {"gap_table1_below", "gap_table1_init", "gap_table1_below_init_seed1"} <= plan.keep_last
    # Seed 1 of those within 3 points on seed 0: the same candidates, at seed 1; and the gated setups' own seed 1,
    # composed as the setup's seed 0 in the screen (its only seed), so that the ledger reads it as the setup's.
    seed0 = {
        run.name.removesuffix("_seed0")
        for run in plan.block_runs("gap_table1_below") + plan.block_runs("gap_table1_init")
    }
    setups1 = {}
    for run in plan.block_runs("gap_table1_below_init_seed1"):
        cfg = compose_run(run, [])[0]
        assert cfg["trainer"]["seed"] == 1
        if run.name.removesuffix("_seed1") not in seed0:
            setups1[run.name] = cfg
    screen = {r.name: r for r in plan.block_runs("table1_screen")}
    assert set(setups1) == {"gated_mnist_seed1", "gated_pmnist_seed1"}
    for name, point in (("gated_mnist", "eps0.01_gamma0.01_lr0.2"), ("gated_pmnist", "eps0.01_gamma0.1_lr0.2")):
        mine, screened = setups1[f"{name}_seed1"], compose_run(screen[f"{name}_{point}_seed0"], [])[0]
        assert _changed(mine, screened) == {} and mine["trainer"]["max_steps"] == screened["trainer"]["max_steps"]


def test_paper_plan_lanes_split_the_blocks_by_device():
    """The CPU lane trains the noise-padded column first (its screen: lr at the preset's eps, then eps 0.1 and 1 at
    lr 0.1; then seed 0 of the four rows, the gamma and layout checks), the gap ledger's candidates, Table 1's seed 0,
    then seeds 1 and 2 of both tables, then the rest of shared noise and of Table 1's screen; the GPU lane takes the
    other blocks, none of the CPU's Table 2 ones."""
    plan = load_plan("paper")
    cpu = plan.lane_runs("cpu")
    assert [r.rel_dir for r in cpu[:14]] == [
        *(f"table2_noisy_screen/asym_noisy_cifar10_lr{lr}_seed0" for lr in (0.1, 0.2, 0.5, 1.0)),
        *(f"table2_noisy_screen/asym_noisy_cifar10_eps{eps}_lr0.1_seed0" for eps in (0.1, 1.0)),
        *(f"table2_noisy/{row}_noisy_cifar10_seed0" for row in ("asym", "gated", "ablation", "lstm")),
        *(f"table2_noisy_gamma/asym_noisy_cifar10_gamma{gamma}_seed0" for gamma in (0.001, 0.1)),
        "table2_noisy_layout/gated_noisy_cifar10_row_orderrgb_seed0",
        "table2_noisy_layout/gated_noisy_cifar10_noiseshared_seed0",
    ]
    # The gap ledger's candidates come before the rest of the shared-noise run and before seeds 1 and 2.
    assert [r.block for r in cpu[14:43]] == (
        ["gap_noisy"] * 9 + ["gap_noisy_seed1"] * 7 + ["gap_noisy_below"] * 2 + ["gap_table1"] * 3
        + ["gap_table1_seed1"] * 3 + ["gap_table1"] * 3 + ["gap_table1_seed1"] * 2)  # fmt: skip
    assert {r.preset for r in cpu[32:38]} == {"table1/asym_pmnist"} and {r.preset for r in cpu[38:43]} == {
        "table1/asym_mnist"}  # fmt: skip
    assert [r.point for r in cpu[30:32]] == [("optimizer.lr=0.05",), ("model.eps=0.005",)]  # below the paper's grid
    assert [r.name for r in cpu[23:30]] == [  # seed 1 where seed 0 came within 3 points (lr 0.05: below the grid)
        "gated_noisy_cifar10_gate_bias1.0_seed1", "asym_noisy_cifar10_init_std0.0625_seed1",
        "asym_noisy_cifar10_init_std0.0_seed1", "asym_noisy_cifar10_init_std4.0_seed1",
        "asym_noisy_cifar10_normalizeTrue_seed1", "asym_noisy_cifar10_init_readingstd_seed1",
        "asym_noisy_cifar10_lr0.05_seed1"]  # fmt: skip
    # Table 1's candidates within 3 points on seed 0 get seed 1, beside the setup's own seed 1 at the same length.
    seed1 = {r.name: compose_run(r, [])[0] for r in cpu[35:38]}
    assert [(n, c["optimizer"]["lr"], c["trainer"]["max_steps"]) for n, c in seed1.items()] == [
        ("asym_pmnist_seed1", 0.5, 5000), ("asym_pmnist_normalizeTrue_lr0.5_seed1", 0.5, 5000),
        ("asym_pmnist_initial_accumulator_value0.1_lr0.5_seed1", 0.5, 5000)]  # fmt: skip
    mnist1 = {r.name: compose_run(r, [])[0] for r in cpu[41:43]}  # MNIST's accumulator trailed by 3+: it continues
    assert [(n, c["optimizer"]["lr"], c["model"]["gamma"]) for n, c in mnist1.items()] == [
        ("asym_mnist_seed1", 0.5, 0.1), ("asym_mnist_normalizeTrue_lr0.5_seed1", 0.5, 0.1)]  # fmt: skip
    # Then the gated Table 1 screen's points that can still win (eps 0.01, lr 0.1 and 0.2), Table 1's candidates
    # below the grid and on the init, the budget run (it needs 20,000 iterations; a candidate answers its question in
    # 2,000) and Table 1's seed 0.
    finish = cpu[43:51]
    assert [r.block for r in cpu[51:61]] == ["gap_table1_below"] * 2 + ["gap_table1_init"] * 8
    # Seed 1 of the candidates within the setup's seed spread first; the others' after Table 1's seed 0.
    assert [r.name for r in cpu[61:64]] == [f"asym_mnist_init_std{s}_lr0.5_seed1" for s in (2.0, 0.0, 4.0)]
    # The late-acting choice as a branch of the MNIST row's own run (tests/test_branch.py), then the budget run.
    late = [f"gap_table1_late/asym_mnist_lr_decay_factor{factor}_seed0" for factor in (0.1, 2.0)]
    assert [r.rel_dir for r in cpu[64:66]] == late
    assert cpu[66].rel_dir == "gap_budget/asym_noisy_cifar10_seed0"
    assert {r.block for r in cpu[71:80]} == {"gap_table1_below_init_seed1"}
    assert {r.block for r in finish} == {"table1_screen"} and {r.preset for r in finish} == {
        "table1/gated_mnist", "table1/gated_pmnist"}  # fmt: skip
    assert {p for r in finish for p in r.point} >= {"model.eps=0.01", "optimizer.lr=0.1", "optimizer.lr=0.2"}
    assert {p for r in finish for p in r.point}.isdisjoint({"model.eps=0.1", "optimizer.lr=0.5", "optimizer.lr=1.0"})
    assert [(r.block, r.seed) for r in cpu[67:71]] == [("table1", 0)] * 4
    # The rows' runs test at every validation too (a free key: records from before it still resume); no screen does.
    probed = {r.block for r in plan.runs if "trainer.test_every_eval=true" in r.overrides}
    assert probed == {"table1", "table2_noisy", "table2_pixel", "table1_lstm", "gap_table1_late"}  # a row's branch
    # Then seeds 1 and 2 of both tables' rows, alternating (the noise-padded column's four rows, Table 1's four),
    # the rest of the shared-noise run and of the screen, each run listed once (a finished one is passed over).
    assert [(r.block, r.seed) for r in cpu[80:96]] == [
        (block, seed) for seed in (1, 2) for block in ("table2_noisy", "table1") for _ in range(4)]  # fmt: skip
    assert [r.block for r in cpu[96:]] == ["table2_noisy_shared"] + ["table1_screen"] * (64 - 8)
    # The layout check: one choice changed at a time, at the point the gated row's seed 0 trains (the same run to 2k).
    layout = [compose_run(r, [])[0] for r in plan.block_runs("table2_noisy_layout")]
    assert [(c["dataset"]["row_order"], c["dataset"]["noise"]) for c in layout] == [
        ("rgb", "independent"), ("channels", "shared"),
    ]  # fmt: skip
    assert {
        (c["model"]["eps"], c["model"]["gamma"], c["optimizer"]["lr"], c["trainer"]["max_steps"]) for c in layout
    } == {(0.01, 0.01, 0.1, 2000)}
    (shared,) = [compose_run(r, [])[0] for r in plan.block_runs("table2_noisy_shared")]
    assert (shared["dataset"]["noise"], shared["dataset"]["row_order"], shared["trainer"]["max_steps"]) == (
        "shared", "channels", 10000,
    )  # fmt: skip
    gamma = [compose_run(r, [])[0] for r in plan.block_runs("table2_noisy_gamma")]
    points = [(c["model"]["gamma"], c["model"]["eps"], c["optimizer"]["lr"], c["trainer"]["max_steps"]) for c in gamma]
    assert points == [(0.001, 0.01, 0.1, 2000), (0.1, 0.01, 0.1, 2000)]
    screen = [compose_run(r, [])[0] for r in plan.block_runs("table2_noisy_screen")]
    assert {(c["trainer"]["max_steps"], c["model"]["gamma"]) for c in screen} == {(2000, 0.01)}
    assert [(c["model"]["eps"], c["optimizer"]["lr"]) for c in screen] == [
        (0.01, 0.1), (0.01, 0.2), (0.01, 0.5), (0.01, 1.0), (0.1, 0.1), (1.0, 0.1),
    ]  # fmt: skip
    # The three Euler rows wait for the AntisymmetricRNN screen's lr; the LSTM trains at its own preset.
    rows = plan.block_runs("table2_noisy")[:4]
    assert [(r.select, r.select_preset) for r in rows[:3]] == [("table2_noisy_screen", None)] + [
        ("table2_noisy_screen", "table2/asym_noisy_cifar10")
    ] * 2
    assert not rows[3].waiting
    gpu = {r.block for r in plan.lane_runs("gpu")}
    assert gpu.isdisjoint({"table2_noisy_screen", "table2_noisy"}) and "table2_pixel" in gpu
    with pytest.raises(ConfigError, match="has no lane 'tpu'"):
        plan.lane_runs("tpu")
    with pytest.raises(ConfigError, match="lane cpu names blocks \\['nope'\\]"):
        expand({**TINY_PLAN, "lanes": {"cpu": ["nope"]}}, "x")
    with pytest.raises(ConfigError, match="takes seeds as a list of integers, got '0'"):
        expand({**TINY_PLAN, "lanes": {"cpu": [{"block": "tiny", "seeds": "0"}]}}, "x")


def test_planned_steps_are_each_runs_composed_length():
    """planned_steps composes once per preset and length-setting overrides: the lengths equal composing each run."""
    plan = load_plan("paper")
    seedless = {r.entry_key: compose_run(r, [])[0]["trainer"]["max_steps"] for r in plan.runs if r.seed == 0}
    direct = {r.rel_dir: seedless[r.entry_key] for r in plan.runs}
    assert planned_steps(plan) == direct and set(direct.values()) >= {2000, 5000, 10000, 50000}


def test_plan_refuses_other_launchers_and_shared_dirs():
    with pytest.raises(ConfigError, match="launcher 'joblib' is not one of solo, packed"):
        expand({**TINY_PLAN, "launcher": "joblib"}, "x")
    with pytest.raises(ConfigError, match="pack_size must be a positive integer"):
        expand({**TINY_PLAN, "launcher": "packed", "pack_size": 0}, "x")
    twice = {"blocks": [{"name": "b", "runs": ["table1/asym_mnist", "table1/asym_mnist"]}]}
    with pytest.raises(ConfigError, match="share a directory"):
        expand(twice, "x")
    # A YAML alias inside a flow list nests the aliased list instead of splicing it: refused, not composed as text.
    spliced = OmegaConf.to_container(OmegaConf.create(
        "blocks:\n  - name: b\n    runs:\n      - {preset: table1/asym_mnist, overrides: &k [trainer.max_steps=2]}\n"
        "      - {preset: table1/asym_pmnist, overrides: [*k, optimizer.lr=0.5]}\n"))  # fmt: skip
    with pytest.raises(ConfigError, match="overrides of table1/asym_pmnist must be strings key=value"):
        expand(spliced, "x")


SCREEN_PLAN = {
    "seeds": [0, 1],
    "overrides": [*TINY, "trainer.max_steps=2", "trainer.eval_every=2"],
    "blocks": [
        {"name": "screen", "seeds": [0], "runs": [
            {"preset": "table1/asym_mnist", "grid": {"optimizer.lr": [0.1, 0.3], "model.gamma": [0.01, 0.1]}},
            {"preset": "table1/asym_pmnist", "grid": {"optimizer.lr": [0.1, 0.3]}},
        ]},
        {"name": "seeds", "runs": [{"preset": "table1/asym_mnist", "select": "screen"},
                                   {"preset": "table1/asym_pmnist", "overrides": ["trainer.max_steps=3"],
                                    "select": "screen"}]},
    ],
}  # fmt: skip


def screen_record(records: Path, run: str, status: str, val: float | None) -> None:
    (records / run).mkdir(parents=True)
    (records / run / "summary.json").write_text(json.dumps({"status": status, "steps": 2, "best_val_acc": val}))


def test_select_takes_the_screens_best_point_once_it_is_finished(tmp_path, capsys):
    plan, records = expand(SCREEN_PLAN, "screen"), tmp_path / "records"
    mnist = [r for r in plan.block_runs("screen") if r.preset == "table1/asym_mnist"]
    assert [r.point for r in mnist][:2] == [
        ("optimizer.lr=0.1", "model.gamma=0.01"),
        ("optimizer.lr=0.1", "model.gamma=0.1"),
    ]
    for run, val in zip(mnist, [0.5, 0.7, 0.9, 0.6], strict=True):
        screen_record(records, run.rel_dir, "completed" if val != 0.9 else "interrupted", val)
    # One point unfinished: every seed of that row waits, and a lease has nothing of it to train.
    waiting = [r for r in resolve(plan, records).block_runs("seeds") if r.preset == "table1/asym_mnist"]
    assert [planned_state(records, r).status for r in waiting] == ["waiting", "waiting"]
    assert not any(planned_state(records, r).todo(retry_failed=True) for r in waiting)
    # A seed started under an earlier choice (a point added to the screen since) waits too, its steps kept.
    screen_record(records, waiting[0].rel_dir, "interrupted", None)
    assert vars(planned_state(records, waiting[0])) == {
        "status": "waiting", "steps": 2, "detail": "2 steps recorded; waits for screen to choose its point",
    }  # fmt: skip
    # Finished (a diverged point counts as finished and is never chosen): the best validation accuracy wins.
    shutil.rmtree(records / mnist[2].rel_dir)
    screen_record(records, mnist[2].rel_dir, "diverged", 0.95)
    seeds = [r for r in resolve(plan, records).block_runs("seeds") if r.preset == "table1/asym_mnist"]
    assert {r.chosen for r in seeds} == {mnist[1].rel_dir}
    assert seeds[1].overrides[-3:] == ("optimizer.lr=0.1", "model.gamma=0.1", "trainer.seed=1")
    assert compose_run(seeds[0])[0]["model"]["gamma"] == 0.1 and planned_state(records, seeds[1]).status == "missing"
    assert planned_state(records, seeds[0]).status == "interrupted"  # chosen: it resumes (if trained at that point)
    # The pMNIST row still waits for its own points (none recorded).
    next_cmd = ["next", "--plan", _write_plan(tmp_path, SCREEN_PLAN), "--records", str(records)]
    assert main(next_cmd) == 0
    out = capsys.readouterr().out
    assert "waiting for a screen to finish: screen (table1/asym_pmnist)" in out and "in training now" not in out
    with RunLock(records / seeds[0].rel_dir):  # a lane trains the chosen row's seed 0: named apart, not to do
        assert main(next_cmd) == 0
    out = capsys.readouterr().out
    assert f"in training now: {seeds[0].rel_dir} (2 steps recorded)" in out and f"  {seeds[0].rel_dir} " not in out
    status_cmd = ["status", "--plan", next_cmd[2], "--records", str(records)]
    assert main(status_cmd) == 0 and "Training now" not in capsys.readouterr().out  # no run trains: no table
    rows = [{"step": 1, "split": "val", "acc": 0.75}, {"step": 2, "split": "train", "loss": 0.1},
            {"step": 2, "split": "val", "acc": 0.625}]  # fmt: skip
    (records / seeds[0].rel_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (records / seeds[0].rel_dir / "summary.json").write_text(json.dumps({"status": "interrupted", "steps": 1}))
    with RunLock(records / seeds[0].rel_dir):  # its summary says 1 step (its last checkpoint); its metrics say 2
        assert main(status_cmd) == 0
    assert f"| {seeds[0].rel_dir} | 2 / 2 | 62.5 at 2 | 75.0 at 1 |" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="needs no grid of its own and a block listed before"):
        expand({"blocks": [{"name": "b", "runs": [{"preset": "table1/asym_mnist", "select": "later"}]},
                           {"name": "later", "runs": ["table1/asym_mnist"]}]}, "x")  # fmt: skip


def test_a_screen_chooses_once_no_unfinished_point_can_win_and_a_lane_can_take_some_of_its_runs(tmp_path):
    """An unfinished point trailing the finished leader by OUT_OF_RUNNING or more cannot win what is left: the screen
    chooses without it; one closer, or one with no validation yet, still holds the choice. A lane may list some runs
    of a block by name (and refuses a name the block lacks)."""
    plan, records = expand(SCREEN_PLAN, "screen"), tmp_path / "records"
    mnist = [r for r in plan.block_runs("screen") if r.preset == "table1/asym_mnist"]
    for run, (status, val) in zip(mnist, [("completed", 0.5), ("completed", 0.9), ("interrupted", 0.66),
                                          ("interrupted", 0.3)], strict=True):  # fmt: skip
        screen_record(records, run.rel_dir, status, val)
    assert choose_point(plan, records, "screen", "table1/asym_mnist") is None  # 0.66 + 0.25 >= 0.9: could win
    shutil.rmtree(records / mnist[2].rel_dir)
    screen_record(records, mnist[2].rel_dir, "interrupted", 0.64)
    assert choose_point(plan, records, "screen", "table1/asym_mnist") is mnist[1]
    shutil.rmtree(records / mnist[3].rel_dir)
    screen_record(records, mnist[3].rel_dir, "interrupted", None)  # started, nothing validated yet: it may win
    assert choose_point(plan, records, "screen", "table1/asym_mnist") is None
    names = [mnist[0].name, mnist[3].name]
    spec = {**SCREEN_PLAN, "lanes": {"cpu": [{"block": "screen", "runs": names}, "seeds"]}}
    lane = expand(spec, "screen").lane_runs("cpu")
    assert [r.name for r in lane[:2]] == names and {r.block for r in lane[2:]} == {"seeds"}
    with pytest.raises(ConfigError, match="names runs \\['nope_seed0'\\] the block lacks"):
        expand({**spec, "lanes": {"cpu": [{"block": "screen", "runs": ["nope_seed0"]}]}}, "screen")


def test_a_lease_trains_the_screen_then_the_seeds_at_its_choice(tiny_data, tmp_path):
    root, _ = tiny_data
    plan = expand({**SCREEN_PLAN, "launcher": "packed", "pack_size": 8}, "screen")
    records = tmp_path / "records"
    code, report = run_lease(Lease(plan, records, root, tmp_path / "out", budget_s=600, margin_s=0, min_run_s=1,
                                   commit=COMMIT))  # fmt: skip
    assert code == 0 and report["stopped"] == "plan done"
    trained = [r["run"] for r in report["runs"]]
    assert trained[:6] == [r.rel_dir for r in plan.block_runs("screen")] and len(trained) == 10
    for row in ("asym_mnist", "asym_pmnist"):
        points = [r for r in plan.block_runs("screen") if r.preset == f"table1/{row}"]
        vals = [json.loads((records / r.rel_dir / "summary.json").read_text())["best_val_acc"] for r in points]
        best = points[vals.index(max(vals))]
        for seed in (0, 1):
            entry = next(r for r in report["runs"] if r["run"] == f"seeds/{row}_seed{seed}")
            assert entry["chosen"] == best.rel_dir and entry["after"]["status"] == "completed"
            cfg = (records / "seeds" / f"{row}_seed{seed}" / "overrides.yaml").read_text()
            assert all(o in cfg for o in best.point)
    steps = json.loads((records / "seeds" / "asym_pmnist_seed1" / "summary.json").read_text())["steps"]
    assert steps == 3  # the entry's own overrides stay under the chosen point


def mnist_only(root: Path, tmp: Path) -> Path:
    """A data root with MNIST and no CIFAR-10, as a lease that carried only the MNIST part."""
    only = tmp / "mnist_only"
    only.mkdir()
    (only / "MNIST").symlink_to(root / "MNIST")
    return only


def summary(records: Path, run: str) -> dict:
    return json.loads((records / "tiny" / run / "summary.json").read_text())


def test_lease_cut_by_budget_resumed_and_collected(tiny_data, tmp_path, monkeypatch, capsys):
    root, _ = tiny_data
    monkeypatch.setattr("antisym.provenance._git", lambda *args: None)  # the device's copy has no .git
    plan = expand(TINY_PLAN, "tiny")
    data = mnist_only(root, tmp_path)
    repo_records, tables = tmp_path / "repo_runs", tmp_path / "tables"

    # Lease 1 (the device's copy of the records): the budget stops the long run in the middle.
    device1 = tmp_path / "device1"
    out1 = tmp_path / "out1"
    # A clock frozen at 0 gives every run the whole 3 s budget, whatever the setup took on this (shared) machine.
    lease = Lease(plan, device1, data, out1, budget_s=3, commit=COMMIT, margin_s=0, min_run_s=1, clock=lambda: 0.0)
    code, report = run_lease(lease)
    assert code == 0 and report["stopped"] == "budget spent"
    assert report["parity"]["status"] == "not applicable"  # CPU: model.impl=auto falls back to eager
    first = summary(device1, "asym_mnist_seed0")
    assert first["status"] == "interrupted" and first["stop_reason"] == "time_limit"
    assert 0 < first["steps"] < LONG_STEPS
    # The trainer took the lease's commit (ANTISYM_COMMIT) into the summary and the checkpoint as the run started.
    assert (first["git_commit"], first["git_dirty"], first["git_commit_source"]) == (COMMIT, False, "ANTISYM_COMMIT")
    last = torch.load(device1 / "tiny" / "asym_mnist_seed0" / "checkpoints" / "last.pt", weights_only=False)
    assert [s["git_commit"] for s in last["segments"]] == [COMMIT]
    assert "ANTISYM_COMMIT" not in os.environ  # set for the lease only
    assert "model.impl=auto" in (device1 / "tiny" / "asym_mnist_seed0" / "overrides.yaml").read_text()
    archives1 = sorted(out1.glob("records-*.tar.gz"))
    assert 1 <= len(archives1) <= 8 - 3 and (out1 / "progress.md").is_file()
    moved = json.loads((out1 / "progress.json").read_text())["runs"]
    assert [(r["run"], r["after"]["steps"]) for r in moved] == [("tiny/asym_mnist_seed0", first["steps"])]

    assert main(["collect", *map(str, archives1), "--records", str(repo_records), "--tables", str(tables)]) == 0
    assert (repo_records / "tiny" / "asym_mnist_seed0" / "checkpoints" / "last.pt").is_file()  # unfinished
    assert "interrupted" in (tables / "runs.csv").read_text()

    # Lease 2 on a fresh copy of the collected records: resumes the run, passes over the run without data.
    device2 = tmp_path / "device2"
    shutil.copytree(repo_records, device2)
    out2 = tmp_path / "out2"
    code, report = run_lease(Lease(plan, device2, data, out2, budget_s=300, commit=COMMIT, margin_s=0, min_run_s=1))
    assert code == 0 and report["stopped"] == "plan done"
    outcomes = {r["run"]: r["outcome"] for r in report["runs"]}
    assert outcomes == {
        "tiny/asym_mnist_seed0": "trained",
        "tiny/asym_noisy_cifar10_seed0": "no data",
        "tiny/lstm_mnist_seed0": "trained",
    }
    done = summary(device2, "asym_mnist_seed0")
    assert done["status"] == "completed" and done["steps"] == LONG_STEPS
    # Both segments name the lease's commit.
    assert [(s["from_step"], s["git_commit"]) for s in done["segments"]] == [(0, COMMIT), (first["steps"], COMMIT)]
    assert not (device2 / "tiny" / "asym_noisy_cifar10_seed0").exists()

    capsys.readouterr()
    archives2 = sorted(out2.glob("records-*.tar.gz"))
    leases = tmp_path / "leases"
    (out2 / "campaign.log").write_text("the lease's log, as the device command tees it\n")
    args = ["--records", str(repo_records), "--tables", str(tables), "--plan", _write_plan(tmp_path)]
    assert main(["collect", *map(str, archives2), *args, "--leases", str(leases)]) == 0
    printed = capsys.readouterr().out
    assert f"interrupted -> completed, steps {first['steps']:,} -> {LONG_STEPS}" in printed
    done = LONG_STEPS - first["steps"] + 4  # the long run's rest and the LSTM's 4 steps
    assert f"(+{done:,} iterations, 0 -> 2 of 3 completed)" in printed.split("commit message: Lease: tiny ")[1]
    assert sorted(p.suffix for p in leases.iterdir()) == [".log", ".md"]
    assert (leases / next(leases.glob("*.md")).name).read_text() == (out2 / "progress.md").read_text()
    record = repo_records / "tiny" / "asym_mnist_seed0"
    assert not (record / "checkpoints" / "last.pt").exists() and (record / "checkpoints" / "best.pt").is_file()
    assert not (record / "run.lock").exists()
    rows = {r["preset"]: r for r in csv.DictReader((tables / "runs.csv").open())}
    assert rows["table1/asym_mnist"]["status"] == "completed" and rows["table1/lstm_mnist"]["status"] == "completed"
    assert main(["status", "--plan", _write_plan(tmp_path), "--records", str(repo_records)]) == 0
    assert "| tiny | 2 / 3 |" in capsys.readouterr().out


def test_packed_lease_trains_a_blocks_compatible_runs_as_one_pack(tiny_data, tmp_path):
    root, _ = tiny_data
    spec = {
        "launcher": "packed",
        "pack_size": 4,
        "seeds": [0, 1],
        "overrides": [*TINY_PLAN["overrides"], "trainer.max_steps=4"],
        "blocks": [{"name": "tiny", "runs": ["table1/asym_mnist", "table1/asym_pmnist", "table1/lstm_mnist"]}],
    }
    plan = expand(spec, "tiny")
    code, report = run_lease(Lease(plan, tmp_path / "records", root, tmp_path / "out", budget_s=300, margin_s=0,
                                   min_run_s=1, commit=COMMIT))  # fmt: skip
    assert code == 0 and {r["outcome"] for r in report["runs"]} == {"trained"}
    packs = {run: summary(tmp_path / "records", run).get("pack") for run in ("asym_mnist_seed0", "asym_pmnist_seed1")}
    assert (
        packs["asym_mnist_seed0"]["size"] == 4 and packs["asym_mnist_seed0"]["id"] == packs["asym_pmnist_seed1"]["id"]
    )
    assert summary(tmp_path / "records", "lstm_mnist_seed0").get("pack") is None  # the LSTM trains alone


def losses(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["split"], r.get("loss"), r.get("acc")) for r in rows]


def test_concurrent_packs_train_exactly_what_one_at_a_time_does(tiny_data, tmp_path):
    """Packs side by side (threads; a CUDA stream each on a GPU) share torch's global generator and the data: each
    run must still get its own initial weights and batches, so every record equals the one-at-a-time lease's."""
    root, _ = tiny_data
    spec = {
        "launcher": "packed",
        "pack_size": 2,
        "seeds": [0, 1],
        "overrides": [*TINY_PLAN["overrides"], "trainer.max_steps=6", "trainer.eval_every=3", "trainer.log_every=1"],
        "blocks": [{"name": "tiny", "runs": ["table1/asym_mnist", "table1/gated_pmnist", "table1/lstm_mnist"]}],
    }
    reports = {}
    for concurrent in (1, 3):
        plan = expand({**spec, "concurrent_packs": concurrent}, "tiny")
        assert plan.concurrent == concurrent
        reports[concurrent] = run_lease(Lease(plan, tmp_path / f"c{concurrent}", root, tmp_path / f"out{concurrent}",
                                              budget_s=600, margin_s=0, min_run_s=1, commit=COMMIT))  # fmt: skip
    assert [code for code, _ in reports.values()] == [0, 0]
    runs = sorted(r.rel_dir for r in plan.runs)
    assert sorted(r["run"] for r in reports[3][1]["runs"]) == runs and len(runs) == 6
    for run in runs:
        one, side = tmp_path / "c1" / run, tmp_path / "c3" / run
        assert losses(one) == losses(side) and len(losses(one)) > 6, run
        a, b = (torch.load(d / "checkpoints" / "best.pt")["model"] for d in (one, side))
        assert all(torch.equal(a[k], b[k]) for k in a), run
    seed0 = [torch.load(tmp_path / "c3" / f"tiny/asym_mnist_seed{k}/checkpoints/best.pt")["model"] for k in (0, 1)]
    assert not torch.equal(*(m["cell.V.weight"] if "cell.V.weight" in m else next(iter(m.values())) for m in seed0))
    with pytest.raises(ConfigError, match="concurrent_packs must be a positive integer"):
        expand({**spec, "concurrent_packs": 0}, "x")


def _write_plan(tmp_path: Path, spec: dict = TINY_PLAN) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return str(path)


def fake_record(records: Path, run: str, commit: str | None) -> None:
    run_dir = records / run
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text("model: {name: asym}\ndataset: {name: mnist}\n")
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "split": "train", "loss": 2.3}\n')
    (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "steps": 1, "git_commit": commit}))
    torch.save({"model": {}, "step": 1}, run_dir / "checkpoints" / "best.pt")


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_collect_refuses_damaged_archives_and_records(tmp_path, capsys):
    device, records = tmp_path / "device", tmp_path / "records"
    fake_record(device, "b/good_seed0", COMMIT)
    fake_record(records, "b/good_seed0", "older")
    before = listing(records)
    (archive,) = archive_records(device, ["b/good_seed0"], tmp_path / "out", max_archives=5)
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert main(["collect", str(archive), str(damaged), "--records", str(records)]) == 2
    assert "is damaged" in capsys.readouterr().err and listing(records) == before

    fake_record(device, "b/nocommit_seed0", None)
    (bad,) = archive_records(device, ["b/nocommit_seed0"], tmp_path / "out_bad", max_archives=5)
    with pytest.raises(RecordError, match="names no git commit"):
        collect([archive, bad], records)
    assert listing(records) == before
    moves = collect([archive], records)
    assert [(m.unit, m.after.status) for m in moves] == [("b/good_seed0", "completed")]
    assert json.loads((records / "b" / "good_seed0" / "summary.json").read_text())["git_commit"] == COMMIT


def crafted_archive(path: Path, unit: str, source: Path) -> Path:
    """An archive whose manifest and member names are `unit` (checksums correct), holding source's files."""
    import hashlib
    import tarfile

    files = {f"{unit}/{p.relative_to(source)}": p for p in sorted(source.rglob("*")) if p.is_file()}
    manifest = {"units": [unit], "files": {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in files.items()}}
    blob = path.with_suffix(".json")
    blob.write_text(json.dumps(manifest))
    with tarfile.open(path, "w:gz") as tar:
        tar.add(blob, "MANIFEST.json")
        for name, p in files.items():
            tar.add(p, name)
    return path


@pytest.mark.parametrize("unit", ["../../victim", "/abs/run", "b/../../victim", "b", "b/run/extra", "b/./run"])
def test_collect_keeps_every_unit_inside_the_records_folder(tmp_path, unit):
    device, records = tmp_path / "device", tmp_path / "deep" / "er" / "records"
    fake_record(device, "b/run", COMMIT)
    victim = tmp_path / "deep" / "victim"
    victim.mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    archive = crafted_archive(tmp_path / "crafted.tar.gz", unit, device / "b" / "run")
    with pytest.raises(RecordError):
        collect([archive], records)
    assert (victim / "keep.txt").read_text() == "mine" and not list(records.rglob("summary.json"))


def test_collect_unpacks_record_files_only(tmp_path, capsys):
    """A record is data: an archive that ships anything else (a module its config could name, a folder) or a
    permutation.pt that is not one tensor changes nothing."""
    device, records = tmp_path / "device", tmp_path / "records"
    fake_record(device, "b/run", COMMIT)
    fake_record(records, "b/run", "older")
    before = listing(records)
    (device / "b/run/evil.py").write_text("import os\n")
    archive = crafted_archive(tmp_path / "evil.tar.gz", "b/run", device / "b/run")
    assert main(["collect", str(archive), "--records", str(records), "--tables", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "holds b/run/evil.py, which is not a file of a run record (config.yaml," in err
    assert listing(records) == before
    (device / "b/run/evil.py").unlink()
    torch.save({"permutation": torch.arange(4)}, device / "b/run/permutation.pt")
    (bad,) = archive_records(device, ["b/run"], tmp_path / "out", max_archives=1)
    with pytest.raises(RecordError, match="permutation.pt holds a dict, not the 1-D integer tensor"):
        collect([bad], records)
    assert listing(records) == before


def test_collect_never_mixes_runs_nor_deletes_a_record(tmp_path, capsys):
    """A run trained here now (its lock held) and a record of other settings (seed 1 under the seed-0 unit) are
    refused, changing nothing; a record that is replaced is kept in superseded/."""
    device, records = tmp_path / "device", tmp_path / "records"
    fake_record(device, "b/run_seed0", COMMIT)
    fake_record(records, "b/run_seed0", "older")
    (archive,) = archive_records(device, ["b/run_seed0"], tmp_path / "out", max_archives=1)
    with RunLock(records / "b/run_seed0"):
        before = listing(records)
        with pytest.raises(RecordError, match=r"b/run_seed0 is being trained here \(pid \d+ holds its run lock\)"):
            collect([archive], records)
        assert listing(records) == before

    config = device / "b/run_seed0/config.yaml"
    config.write_text(config.read_text() + "trainer: {seed: 1}\n")
    (records / "b/run_seed0/config.yaml").write_text(config.read_text().replace("seed: 1", "seed: 0"))
    (seed1,) = archive_records(device, ["b/run_seed0"], tmp_path / "out_seed1", max_archives=1)
    before = listing(records)
    assert main(["collect", str(seed1), "--records", str(records), "--tables", str(tmp_path / "t")]) == 2
    assert "b/run_seed0 was trained under other settings than the archive's (trainer.seed: 0 -> 1)" in (
        capsys.readouterr().err
    )
    assert listing(records) == before

    config.write_text(config.read_text().replace("seed: 1", "seed: 0"))
    (same,) = archive_records(device, ["b/run_seed0"], tmp_path / "out_same", max_archives=1)
    collect([same], records)
    (kept,) = (records / "b/run_seed0/superseded").iterdir()
    assert json.loads((kept / "summary.json").read_text())["git_commit"] == "older"
    assert json.loads((records / "b/run_seed0/summary.json").read_text())["git_commit"] == COMMIT
    assert not (records / "b/run_seed0/run.lock").exists()


def test_collect_never_takes_a_run_back_unless_asked(tmp_path, capsys):
    """An older archive (fewer steps, or unfinished where the record here is finished) is refused, naming both."""
    old, new, records = tmp_path / "old", tmp_path / "new", tmp_path / "records"
    fake_record(old, "b/run_seed0", COMMIT)
    (old / "b/run_seed0/summary.json").write_text(json.dumps({"status": "interrupted", "steps": 10,
                                                              "git_commit": COMMIT}))  # fmt: skip
    fake_record(new, "b/run_seed0", COMMIT)
    (new / "b/run_seed0/summary.json").write_text(
        json.dumps({"status": "completed", "steps": 40, "git_commit": COMMIT})
    )
    (older,) = archive_records(old, ["b/run_seed0"], tmp_path / "out_old", max_archives=1)
    (newer,) = archive_records(new, ["b/run_seed0"], tmp_path / "out_new", max_archives=1)
    collect([newer], records)
    before = listing(records)
    assert main(["collect", str(older), "--records", str(records), "--tables", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "b/run_seed0 (completed, 40 steps here; interrupted, 10 in the archive)" in err and "--allow-older" in err
    assert listing(records) == before
    moves = collect([older], records, allow_older=True)
    assert [(m.before.steps, m.after.steps) for m in moves] == [(40, 10)]


def test_parity_failure_stops_the_lease_and_a_pass_is_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_gate, "not_applicable", lambda device: None)  # as on a GPU
    failing = [{"cell": "asym", "T": 6, "m": 1, "n": 16, "impl": "fused", "precision": "ieee", "error": "boom"}]
    monkeypatch.setattr(kernel_gate, "check_parity", lambda *a, **k: ParityResult([{**failing[0], "passed": False}]))
    plan = expand(TINY_PLAN, "tiny")
    records, out = tmp_path / "records", tmp_path / "out"
    fake_record(records, "tiny/asym_mnist_seed0", COMMIT)
    before = listing(records)
    code, report = run_lease(Lease(plan, records, tmp_path, out, budget_s=300, margin_s=0, min_run_s=1))
    assert code == 3 and report["runs"] == [] and not list(out.glob("records-*"))
    assert listing(records) == before
    assert "boom" in (out / "progress.md").read_text()

    passing = {**failing[0], "grad_rel_err": {"w": 0.0}, "loss_err": 0.0, "h_err": 0.0, "plan": {}}
    monkeypatch.setattr(kernel_gate, "check_parity", lambda *a, **k: ParityResult([{**passing, "passed": True}]))
    assert kernel_gate.ensure_parity(records, torch.device("cpu"))["status"] == "passed"
    twice = "checked twice for one kernel version"
    monkeypatch.setattr(kernel_gate, "check_parity", lambda *a, **k: pytest.fail(twice))
    assert kernel_gate.ensure_parity(records, torch.device("cpu"))["status"] == "cached"
    assert (records / "parity" / f"{kernel_gate.kernel_key()}.json").is_file()


def test_device_command_fits():
    command = device_command("paper", 480, COMMIT, [".devdata/p0"])
    assert len(command) <= MAX_COMMAND
    assert "receive --part .devdata/p0" in command and "assemble" in command
    assert f"--budget-s 480 --data-root /tmp/antisym-data/root --out $OUT --commit {COMMIT}" in command
    assert "campaign run --plan paper --lane gpu " in command  # the CPU lane's blocks stay the CPU's
    assert FILES_BACK == 8 and lease_mod.FILES_BACK is FILES_BACK


def test_device_command_with_the_gpu_check_first():
    command = device_command("paper", 570, COMMIT, [".devdata/p0"], check_s=250)
    assert len(command) <= MAX_COMMAND
    check, lease = command.index("campaign.gpu_check"), command.index("campaign run")
    assert check < lease and "--budget-s 250" in command[check:lease] and "timeout 340" in command[:check]
    assert "--budget-s $((570 - SECONDS)) --gpu-check /tmp/gpu_check/gpu_check.json" in command[lease:]
    assert "tar czf $OUT/gpu_check.tar.gz" in command[check:lease]  # one file back for the check's report


def packed_check(tmp_path: Path, rows: dict[tuple[str, int], float]) -> Path:
    """A gpu_check.json whose section 5b holds pMNIST rows {(variant, R): ms per pack iteration}."""
    from dataclasses import asdict

    from antisym.benchmark.timing import PackedRow

    packed = [
        asdict(PackedRow("pmnist", "asym", v, 128, 784, 1, 128, 9674, ms, ms, None, [ms], R=R, packed=" packed" in v))
        for (v, R), ms in rows.items()
    ]
    path = tmp_path / "gpu_check.json"
    path.write_text(json.dumps({"meta": {}, "packed": packed}))
    return path


def test_lease_takes_its_launcher_from_the_gpu_checks_packed_rows(tmp_path):
    plan = load_plan("paper")
    solo_x_r = {("fused[ieee] solo x R", 1): 10.0, ("fused[ieee] solo x R", 8): 80.0}
    fused_wins = packed_check(tmp_path, {**solo_x_r, ("fused[ieee] packed", 8): 20.0, ("eager packed", 8): 200.0})
    chosen, why = lease_mod.launcher_from_check(plan, fused_wins)
    assert (chosen.launcher, chosen.pack_size) == ("packed", 8) and "fused[ieee] packed" in why
    # an eager pack is not what model.impl=auto would train: the campaign stays with solo fused runs
    eager_wins = packed_check(tmp_path, {**solo_x_r, ("fused[ieee] packed", 8): 120.0, ("eager packed", 8): 40.0})
    assert lease_mod.launcher_from_check(plan, eager_wins)[0].pack_size == 1
    chosen, why = lease_mod.launcher_from_check(plan, tmp_path / "absent.json")
    assert chosen == plan and "as planned" in why


LANE_PLAN = {
    "launcher": "packed",
    "pack_size": 8,
    "seeds": [0],
    "overrides": [*TINY, "trainer.max_steps=2", "trainer.eval_every=2"],
    "lanes": {"cpu": ["seeds", "screen"]},  # the lane's order, not the plan's; "other" is left to the GPU
    "blocks": [
        {"name": "other", "runs": ["table1/lstm_mnist"]},
        {"name": "screen", "runs": [{"preset": "table1/asym_mnist", "grid": {"optimizer.lr": [0.1, 0.3]}}]},
        {"name": "seeds", "runs": [
            {"preset": "table1/asym_mnist", "select": "screen"},
            {"preset": "table1/gated_mnist", "select": "screen", "select_preset": "table1/asym_mnist"},
        ]},
    ],
}  # fmt: skip


def test_cpu_lane_trains_its_blocks_in_place_and_prints_the_commit_message(tiny_data, tmp_path, capsys):
    """make cpu-campaign's command: the lane's blocks only, in the lane's order (a selecting block waits for its
    screen, then takes the screen preset's point, the gated row too), one run at a time, records written in place
    with no archive, a finished run's last.pt dropped as a collected record's is, the tables rebuilt, and the runs
    trained at the lane's thread count, as their summaries say."""
    root, _ = tiny_data
    records, tables, out = tmp_path / "runs", tmp_path / "tables", tmp_path / "out"
    args = ["--plan", _write_plan(tmp_path, LANE_PLAN), "--records", str(records), "--data-root", str(root)]
    threads = torch.get_num_threads()
    try:
        code = main(["lane", *args, "--budget-s", "600", "--margin-s", "0", "--threads", "1", "--tables",
                     str(tables), "--out", str(out)])  # fmt: skip
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "progress.json").read_text())
    assert [r["run"] for r in report["runs"]] == [
        "screen/asym_mnist_lr0.1_seed0", "screen/asym_mnist_lr0.3_seed0", "seeds/asym_mnist_seed0",
        "seeds/gated_mnist_seed0",
    ]  # fmt: skip
    assert {r["pack_size"] for r in report["runs"]} == {1} and report["archives"] == []
    assert not list(out.glob("*.tar.gz")) and not (records / "other").exists()
    vals = [json.loads((records / f"screen/asym_mnist_lr{lr}_seed0/summary.json").read_text())["best_val_acc"]
            for lr in (0.1, 0.3)]  # fmt: skip
    best_lr = (0.1, 0.3)[vals.index(max(vals))]
    for run in ("seeds/asym_mnist_seed0", "seeds/gated_mnist_seed0"):
        assert f"optimizer.lr={best_lr}" in (records / run / "overrides.yaml").read_text()
        summary = json.loads((records / run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["device"].endswith(", 1 torch threads")
        assert not (records / run / "checkpoints" / "last.pt").exists()
        assert (records / run / "checkpoints" / "best.pt").is_file()
    assert "asym_mnist" in (tables / "runs.csv").read_text() and (tables / "table1.md").is_file()
    assert "commit message: Campaign lane cpu: screen 0.0% -> 100.0% (+4 iterations, 0 -> 2 of 2 completed)" in printed
    assert main(["lane", *args, "--budget-s", "60", "--lane", "gpu"]) == 2  # no such lane: one paragraph, exit 2


def test_a_kept_run_trains_on_when_its_plan_raises_its_length(tiny_data, tmp_path):
    """A keep_last block's finished record keeps last.pt through the lane's end; a plan that raises its max_steps then
    trains the same run on (resumed, one record, its first steps untouched), where a block without keep_last has
    dropped it and the record stays finished."""
    root, _ = tiny_data
    records = tmp_path / "runs"

    def lane(steps: int) -> None:
        blocks = [{"name": name, "seeds": [0], **extra, "runs": [{"preset": "table1/asym_mnist",
                   "overrides": [f"trainer.max_steps={steps}"]}]}
                  for name, extra in (("kept", {"keep_last": True}), ("dropped", {}))]  # fmt: skip
        spec = {"launcher": "solo", "overrides": [*TINY, "trainer.eval_every=2"], "lanes": {"cpu": ["kept", "dropped"]},
                "blocks": blocks}  # fmt: skip
        args = ["--plan", _write_plan(tmp_path, spec), "--records", str(records), "--data-root", str(root)]
        assert main(["lane", *args, "--budget-s", "600", "--margin-s", "0", "--threads", "1", "--tables",
                     str(tmp_path / "tables"), "--out", str(tmp_path / "out")]) == 0  # fmt: skip

    lane(2)
    kept, dropped = records / "kept" / "asym_mnist_seed0", records / "dropped" / "asym_mnist_seed0"
    assert (kept / "checkpoints" / "last.pt").is_file() and not (dropped / "checkpoints" / "last.pt").exists()
    first = [row for row in losses(kept) if row[1] == "train"]
    plan = load_plan(tmp_path / "tiny.yaml")
    assert planned_state(records, plan.block_runs("kept")[0]).status == "completed"
    lane(4)
    grown, other = (json.loads((run / "summary.json").read_text()) for run in (kept, dropped))
    assert (grown["status"], grown["steps"], other["steps"]) == ("completed", 4, 2)
    assert [row for row in losses(kept) if row[1] == "train"][: len(first)] == first
    assert [segment["from_step"] for segment in grown["segments"]] == [0, 2]


def test_a_second_lane_passes_over_the_run_another_lane_trains(tiny_data, tmp_path):
    """Two lanes on one machine (make cpu-campaign CPU_LANE=2): a run whose lock a live process holds is "running",
    its summary written or not yet, and the lane trains the next one instead of failing on the lock."""
    root, _ = tiny_data
    records = tmp_path / "runs"
    held = records / "screen" / "asym_mnist_lr0.1_seed0"
    args = ["--plan", _write_plan(tmp_path, {**LANE_PLAN, "lanes": {"cpu": ["screen"]}}), "--records", str(records),
            "--data-root", str(root), "--budget-s", "600", "--margin-s", "0", "--threads", "1", "--tables",
            str(tmp_path / "tables"), "--out", str(tmp_path / "out")]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        with RunLock(held):  # the other lane, between taking the lock and writing its summary
            assert run_state(held).status == "running"
            assert main(["lane", *args]) == 0
        assert run_state(held).status == "missing"  # the lock let go: the next lane trains it
    finally:
        torch.set_num_threads(threads)
    report = json.loads((tmp_path / "out" / "progress.json").read_text())
    assert [r["run"] for r in report["runs"]] == ["screen/asym_mnist_lr0.3_seed0"]
    assert not (held / "summary.json").exists() and not (held / "metrics.jsonl").exists()


def test_a_run_another_lane_takes_after_this_lane_looked_is_passed_over(tiny_data, tmp_path, monkeypatch):
    """Two lanes started together look at the same interrupted run and both go for it: the one that loses the lock
    passes it over and trains the next run, never reading the earlier segment's time-limit stop as its own."""
    root, _ = tiny_data
    plan = expand(TINY_PLAN, "tiny")
    records, data = tmp_path / "records", mnist_only(root, tmp_path)
    lease = Lease(plan, records, data, tmp_path / "out1", budget_s=3, margin_s=0, min_run_s=1, clock=lambda: 0.0)
    assert run_lease(lease)[1]["stopped"] == "budget spent"
    held = records / "tiny" / "asym_mnist_seed0"
    assert summary(records, "asym_mnist_seed0")["stop_reason"] == "time_limit"
    real_compose = lease_mod.compose_for_lease
    with contextlib.ExitStack() as other_lane:

        def compose_then_lose_the_race(lease: Lease, run, time_limit_s: int):
            if run.rel_dir == "tiny/asym_mnist_seed0":
                other_lane.enter_context(RunLock(held))  # the other lane takes it now
            return real_compose(lease, run, time_limit_s)

        monkeypatch.setattr(lease_mod, "compose_for_lease", compose_then_lose_the_race)
        code, report = run_lease(Lease(plan, records, data, tmp_path / "out2", budget_s=300, margin_s=0, min_run_s=1))
    assert code == 0 and report["stopped"] == "plan done"
    outcomes = {r["run"]: (r["outcome"], r.get("recorded")) for r in report["runs"]}
    assert outcomes == {
        "tiny/asym_mnist_seed0": ("running", False),
        "tiny/asym_noisy_cifar10_seed0": ("no data", None),
        "tiny/lstm_mnist_seed0": ("trained", True),
    }
    assert summary(records, "asym_mnist_seed0")["stop_reason"] == "time_limit"  # the other lane's to write


def test_make_cpu_campaign_runs_the_lane_in_the_background(tiny_data, tmp_path):
    """The Make target as a session starts it: detached, with its log and pid file; it ends by itself within its
    budget with the records in place, the tables rebuilt and the commit message at the end of its log."""
    import sys
    import time

    root, _ = tiny_data
    spec = {**LANE_PLAN, "lanes": {"cpu": ["screen"]}}
    log, pid = tmp_path / "lane.log", tmp_path / "lane.pid"
    make = ["make", "-s", "-o", "venv", "cpu-campaign", f"PY={sys.executable}", f"ANTISYM_DATA={root}",
            f"CAMPAIGN_PLAN={_write_plan(tmp_path, spec)}", f"CAMPAIGN_RECORDS={tmp_path / 'runs'}",
            f"CAMPAIGN_TABLES={tmp_path / 'tables'}", f"CPU_LOG={log}", f"CPU_PID={pid}",
            f"CPU_REPORT={tmp_path / 'report'}", "CPU_BUDGET_S=300"]  # fmt: skip
    proc = subprocess.run(make, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "CPU lane started (pid" in proc.stdout and pid.is_file()
    deadline = time.time() + 240
    while time.time() < deadline and "commit message:" not in (log.read_text() if log.is_file() else ""):
        time.sleep(1)
    text = log.read_text()
    assert "campaign lane cpu: 1 torch threads, budget 300 s" in text
    assert "commit message: Campaign lane cpu: screen 0.0% -> 100.0%" in text, text[-3000:]
    assert (tmp_path / "tables" / "runs.csv").is_file() and (tmp_path / "report" / "progress.md").is_file()
    # It trained from a checkout of HEAD beside its pid file: a lane started elsewhere (a session's) is untouched.
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    assert (tmp_path / "lane.tree" / "train.py").is_file() and f"commit {head.strip()}" in proc.stdout
    subprocess.run(["git", "worktree", "remove", "--force", str(tmp_path / "lane.tree")], cwd=REPO, check=True)


def test_every_committed_record_still_matches_its_plan():
    """A record in results/runs/ resumes (or is skipped) only under the settings that trained it: a key added to the
    configs since, or a preset value changed, would have every lease refuse it. Composed as a lease composes it."""
    records = REPO / "results" / "runs"
    plan = resolve(load_plan("paper"), records)
    checked = []
    for run in plan.runs:
        saved = records / run.rel_dir / "config.yaml"
        if saved.is_file():
            diffs = settings_differences(OmegaConf.to_container(OmegaConf.load(saved)), compose_run(run, [])[0])
            assert not diffs, f"{run.rel_dir}: {diffs}"
            checked.append(run.rel_dir)
    assert checked or not records.is_dir()


def test_committed_tables_rebuild_from_committed_records(tmp_path):
    """results/campaign/ is what the tables code makes of results/runs/ at the same commit: a change to how records
    are read, classified or aggregated that moved a committed number would show here (run paths and the date aside)."""
    from antisym.results.aggregate import write_tables

    archive = subprocess.run(
        ["git", "archive", "HEAD", "results/runs", "results/campaign"], cwd=REPO, capture_output=True, check=False
    )
    if archive.returncode != 0:
        pytest.skip(f"no git history here ({archive.stderr.decode().strip()[:80]})")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(tmp_path, filter="data")
    committed, rebuilt = tmp_path / "results" / "campaign", tmp_path / "results" / "rebuilt"  # same relative paths
    write_tables([tmp_path / "results" / "runs"], rebuilt)
    for name in ("rows.csv", "runs.csv"):
        old, new = (list(csv.DictReader((folder / name).open())) for folder in (committed, rebuilt))
        assert [{k: v for k, v in r.items() if k != "run_dir"} for r in new] == [
            {k: v for k, v in r.items() if k != "run_dir"} for r in old
        ], name
    old, new = ([x for x in (f / "gap.md").read_text().splitlines() if not x.startswith("Rebuilt by")]
                for f in (committed, rebuilt))  # fmt: skip
    assert new == old, "gap.md"


def test_status_rate_is_measured_on_this_machine_and_lent_to_blocks_of_the_same_task(tmp_path):
    """The rate of a block is its runs' logged iterations over their wall time on this machine, resumes excluded;
    a block that has not trained here borrows the rate of one of its presets trained here in another block, else of
    a block sharing one of its tasks; another machine's runs count not, nor the steps a run trained elsewhere before
    it was resumed here. Time left takes each preset at its own rate."""
    from campaign.progress import rate_lines, rates_here

    plan, records = expand(SCREEN_PLAN, "screen"), tmp_path / "records"
    screen = plan.block_runs("screen")
    mnist_rows = [(1, 0.0), (11, 5.0), (21, 10.0), (11, 12.0), (21, 17.0)]  # 10 iterations per 5 s, a resume at 11
    pmnist_rows = [(1, 0.0), (11, 1.0), (11, 50.0), (21, 70.0), (31, 90.0)]  # 10 per s on a GPU, then 0.5 per s here
    here = "cpu: here-cpu, 1 torch threads"
    moved = [{"from_step": 0, "device": "cuda: H100"}, {"from_step": 11, "device": here}]
    for run, summary, rows in (
        (screen[0], {"device": here}, mnist_rows),
        (screen[1], {"device": "cuda: H100"}, [*mnist_rows, (11, 99.0)]),
        (screen[4], {"device": here, "segments": moved}, pmnist_rows),
    ):
        assert run.preset == ("table1/asym_pmnist" if run is screen[4] else "table1/asym_mnist")
        (records / run.rel_dir).mkdir(parents=True)
        (records / run.rel_dir / "summary.json").write_text(json.dumps({"status": "interrupted", **summary}))
        metrics = [{"step": s, "split": "train", "time_s": t} for s, t in rows]
        (records / run.rel_dir / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    rates = rates_here(plan, records, "cpu: here-cpu")
    assert rates["presets"] == {"table1/asym_mnist": 2.0, "table1/asym_pmnist": 0.5}
    assert rates["screen"] == (50 / 55, "screen")  # 30 iterations in 15 s and 20 in 40 s
    assert rates["seeds"] == (2.0, "table1/asym_mnist")  # its first preset, trained here in the screen
    # A block none of whose presets trained here borrows a block sharing any of its tasks (not only its first run's).
    mixed = {
        **SCREEN_PLAN,
        "blocks": [
            *SCREEN_PLAN["blocks"],
            {"name": "mixed", "runs": ["table2/lstm_noisy_cifar10", "table1/gated_pmnist"]},
            {"name": "cifar", "runs": ["table2/asym_cifar10"]},
        ],
    }
    rates = rates_here(expand(mixed, "screen"), records, "cpu: here-cpu")
    assert rates["mixed"] == (50 / 55, "screen") and "cifar" not in rates
    left = {"table1/asym_mnist": 3600, "table1/asym_pmnist": 900}  # 1,800 s + 1,800 s
    row = {"block": "screen", "steps_planned": 7200, "steps_done": 2700, "runs": 6, "completed": 5}
    assert "| screen | 0.91 | screen | 1.0 h |" in rate_lines([{**row, "left_by_preset": left}], rates, "cpu: here-cpu")
    # Two lanes halve it where two runs are left to share; one run left trains on one lane however many there are.
    row = {**row, "left_by_preset": left, "completed": 4}
    assert "| screen | 0.91 | screen | 0.5 h |" in rate_lines([row], rates, "cpu: here-cpu", 2)
    assert "| screen | 0.91 | screen | 1.0 h |" in rate_lines([{**row, "completed": 5}], rates, "cpu: here-cpu", 2)
    # A preset not timed here is counted at the block's rate, and the table says so.
    lines = rate_lines([{**row, "left_by_preset": {**left, "table2/lstm_noisy_cifar10": 910}}], rates, "cpu: x", 2)
    assert "| screen | 0.91 | screen | 0.6 h * |" in lines  # (3,600 s + 910 / (50 / 55) s) / 2 lanes
    assert lines[-1].startswith("\\* includes presets not yet timed")
    assert "lstm_noisy_cifar10 (910 iterations)" in lines[-1]
    # A block with no rate here says why, once.
    lines = rate_lines([row, {**row, "block": "elsewhere"}], rates, "cpu: x")
    assert "| elsewhere | — | no run trained here | — |" in lines and lines[-1].startswith("Rates are per machine")
    assert not any("*" in line for line in rate_lines([{**row, "left_by_preset": left}], rates, "cpu: x", 2))


def test_status_schedules_the_lane_in_order_with_the_runs_training_now_first(tmp_path):
    """`campaign status` says when each item of the lane finishes: each lane takes the next run in the lane's order as
    it frees, the runs training now hold their lanes first, runs waiting for their screen count where they stand; a
    preset not timed here takes its block's rate (marked), and with no rate at all nothing after it has a time."""
    from campaign.progress import lane_schedule, schedule_lines

    spec = {**SCREEN_PLAN, "lanes": {"cpu": [
        {"block": "screen", "runs": ["asym_mnist_lr0.1_gamma0.01_seed0", "asym_mnist_lr0.1_gamma0.1_seed0"]},
        "seeds", "screen"]}}  # fmt: skip
    plan, records = expand(spec, "screen"), tmp_path / "records"
    first, second = (records / "screen" / n for n in spec["lanes"]["cpu"][0]["runs"])
    for run, summary in ((first, {"status": "completed", "steps": 2, "best_val_acc": 0.5}),
                         (second, {"status": "interrupted", "steps": 1})):  # fmt: skip
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(summary))
    hour = 2 / 3600  # it/s at which a 2-iteration run takes an hour
    rates = {"presets": {"table1/asym_mnist": hour}, "screen": (hour, "screen"), "seeds": (hour, "screen")}
    planned = planned_steps(plan)
    assert planned["seeds/asym_pmnist_seed0"] == 3 and planned["screen/asym_pmnist_lr0.3_seed0"] == 2
    with RunLock(records / "screen/asym_pmnist_lr0.3_seed0"):  # another lane trains the lane's last run now
        items = lane_schedule(plan, records, planned, rates, "cpu", 2)
    # Lanes free at [0, 0]; the running run (1 h) -> [1, 0]; the interrupted one (0.5 h) -> [1, 0.5]; the seeds,
    # waiting, in order mnist 0 (1 h) -> [1, 1.5], pmnist 0 (3 iterations at its block's rate: 1.5 h) -> [2.5, 1.5],
    # mnist 1 -> [2.5, 2.5], pmnist 1 -> [4, 2.5]; the screen's other three runs, 1 h each -> [4, 3.5] -> [4, 4.5]
    # -> [5, 4.5].
    done = [(i["item"], i["runs"], i["steps"], round(i["lane_h"], 6), i["guessed"], round(i["done_h"], 6))
            for i in items]  # fmt: skip
    assert done == [
        ("screen: 2 runs", 1, 1, 0.5, False, 0.5),
        ("seeds", 4, 10, 5.0, True, 4.0),
        ("screen", 4, 8, 4.0, True, 5.0),
    ]  # fmt: skip
    lines = schedule_lines(items, "cpu", 2)
    assert lines[0].startswith("Lane `cpu` in its order, with 2 lanes") and "0 of its 3 items done" in lines[0]
    assert "| seeds | 4 | 10 | 5.0 * | 4.0 h |" in lines
    # One lane: the times add up. No rate for a run: no time from it on, the items before keep theirs.
    assert [round(i["done_h"], 6) for i in lane_schedule(plan, records, planned, rates, "cpu", 1)] == [0.5, 5.5, 9.5]
    del rates["seeds"]
    assert [i["done_h"] for i in lane_schedule(plan, records, planned, rates, "cpu", 2)][1:] == [None, None]
    assert "| seeds | 4 | 10 | 2.0 * | — |" in schedule_lines(lane_schedule(plan, records, planned, rates, "cpu", 2),
                                                           "cpu", 2)  # fmt: skip
