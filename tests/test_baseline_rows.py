"""Successor cells (coRNN, Lipschitz RNN) in the tables: rows after the paper's, beside their authors' reported
numbers, measured against their own presets' iterations."""

from __future__ import annotations

import csv
import re

from omegaconf import OmegaConf

from antisym.results import write_tables
from antisym.results.paper import BASELINES, CORNN_SOURCE
from tests.test_results import tiny_run


def test_successor_runs_are_rows_beside_the_paper(tiny_data, tmp_path):
    root, _ = tiny_data
    logs = tmp_path / "logs"
    for seed in (0, 1):
        tiny_run(root, logs / "cornn_pmnist" / f"seed{seed}", "baselines/cornn_pmnist", f"trainer.seed={seed}")
    # Configured for its preset's 45,400 iterations (fewer than the paper's 50,000): not "short".
    lipschitz = logs / "lipschitz_pmnist" / "seed0"
    tiny_run(root, lipschitz, "baselines/lipschitz_pmnist")
    cfg = OmegaConf.load(lipschitz / "config.yaml")
    cfg.trainer.max_steps = 45_400
    OmegaConf.save(cfg, lipschitz / "config.yaml")
    stopped = tiny_run(
        root,
        logs / "cornn_noisy" / "seed0",
        "baselines/cornn_noisy_cifar10",
        "dataset.seq_len=33",
        "trainer.time_limit_s=1e-9",
    )
    assert stopped["status"] == "interrupted"
    tiny_run(root, logs / "lipschitz_noisy" / "seed0", "baselines/lipschitz_noisy_cifar10", "dataset.seq_len=33")

    out = tmp_path / "results"
    rows = write_tables([logs], out)
    cornn = next(r for r in rows[1] if (r.model, r.dataset) == ("cornn", "pmnist"))
    assert len(cornn.chosen.results) == 2 and cornn.short and cornn.iterations == 57_000
    assert not next(r for r in rows[1] if (r.model, r.dataset) == ("lipschitz", "pmnist")).short

    md1 = (out / "table1.md").read_text()
    paper_part, successors = md1.split("## Beside the paper: successors")
    assert "coRNN" not in paper_part.split("## Per row")[0]  # after the paper's rows, in their own section
    mean, std = 100 * cornn.test_mean, 100 * cornn.chosen.std("test_acc")
    line = f"| coRNN (Rusch & Mishra, 2021) | not run | 99.4 | — | {mean:.1f} ± {std:.1f} | 97.3 | — (short) |"
    assert line in successors
    assert "| Lipschitz RNN (Erichson et al., 2021) | not run | 99.4 | — |" in successors
    assert f"- coRNN (Rusch & Mishra, 2021), reported: {CORNN_SOURCE}." in successors
    assert "each labelled by its source below" in successors and "(reported)" in successors
    assert "UNCONFIRMED" not in md1
    assert "| 2 / 57,000 (preset) **short** |" in md1 and "| 2 / 45,400 (preset) |" in md1

    md2 = (out / "table2.md").read_text()
    successors2 = md2.split("## Beside the paper: successors")[1]
    assert re.search(
        r"\| coRNN \(Rusch & Mishra, 2021\) \| not run \| — \| — \| screen: 0 of 2 iterations \| 59\.0 \|", md2
    )
    assert "| Lipschitz RNN (Erichson et al., 2021) |" in successors2 and "| 64.2 |" in successors2
    assert "| coRNN, noise padded | 0 | interrupted |" in md2

    runs = list(csv.DictReader((out / "runs.csv").open()))
    iterations = {r["preset"]: r["paper_iterations"] for r in runs}
    assert iterations == {
        "baselines/cornn_pmnist": "57000",
        "baselines/lipschitz_pmnist": "45400",
        "baselines/cornn_noisy_cifar10": "56400",
        "baselines/lipschitz_noisy_cifar10": "37500",
    }
    assert {r["selected"] for r in runs if r["model"] == "cornn" and r["dataset"] == "pmnist"} == {"1"}
    table_rows = list(csv.DictReader((out / "rows.csv").open()))
    assert len(table_rows) == 6 + 8 + 2 * 2 + 2 * 2  # the paper's rows, then both cells on both tables' columns
    by_row = {(r["model"], r["dataset"]): r for r in table_rows}
    row = by_row[("cornn", "pmnist")]
    assert row["reference"] == f"reported by the authors: {CORNN_SOURCE}" and float(row["paper_acc"]) == 0.973
    assert row["preset"] == "baselines/cornn_pmnist" and row["n_seeds"] == "2" and row["paper_iterations"] == "57000"
    assert by_row[("cornn", "mnist")]["preset"] == "" and by_row[("cornn", "cifar10")]["paper_acc"] == ""
    assert by_row[("asym", "mnist")]["reference"] == "the paper"


def test_every_reported_number_names_its_source():
    """As ../shared/paper.md section 9 names them: the authors' README, or a later paper quoting the number."""
    for table in BASELINES.values():
        for ref in table.values():
            assert ref.acc and ("README" in ref.note or "Gu et al. 2021" in ref.note), ref.method
            assert "UNCONFIRMED" not in ref.note
