"""Learning curves beside the tables, drawn from the runs' own metrics.jsonl."""

from __future__ import annotations

import json
import statistics

from antisym.results import write_tables
from antisym.results.curves import legend_label, seeds_label
from antisym.training.rundir import read_metrics
from tests.test_results import tiny_run


def test_tables_carry_learning_curves_from_the_runs_metrics(tiny_data, tmp_path):
    root, _ = tiny_data
    logs = tmp_path / "logs"
    for seed in (0, 1):
        tiny_run(root, logs / f"seed{seed}", "table1/asym_mnist", f"trainer.seed={seed}", "trainer.eval_every=1")
    write_tables([logs], tmp_path / "out", (1,))
    out = tmp_path / "out"
    assert (out / "table1_curves.png").stat().st_size > 0 and (out / "table1_curves.pdf").is_file()
    assert "`table1_curves.png`" in (out / "table1.md").read_text()
    (curve,) = json.loads((out / "table1_curves.json").read_text())["curves"]
    vals = [[r for r in read_metrics(logs / f"seed{s}" / "metrics.jsonl") if r["split"] == "val"] for s in (0, 1)]
    assert curve["steps"] == [r["step"] for r in vals[0]] == [1, 2] and curve["runs"] == 2
    for i in range(2):
        accs = [v[i]["acc"] for v in vals]
        assert curve["mean"][i] == statistics.fmean(accs) and (curve["low"][i], curve["high"][i]) == (
            min(accs),
            max(accs),
        )
    assert (curve["reference_acc"], curve["reference_iterations"]) == (98.0, 50_000)  # the paper's, at its length
    assert seeds_label(curve) == "seeds 0, 1 to 2"


def test_an_unfinished_row_draws_its_leading_configuration_marked_unfinished(tiny_data, tmp_path):
    """No configuration chosen yet (a screen midway): the curve is the furthest configuration with the best
    validation so far, and says it is unfinished."""
    root, _ = tiny_data
    logs = tmp_path / "logs"
    best = {}
    for lr in ("0.01", "0.5", "2.0"):
        run_dir = logs / f"lr{lr}"
        tiny_run(root, run_dir, "table1/gated_mnist", f"optimizer.lr={lr}", "trainer.eval_every=1")
        stopped = tiny_run(root, run_dir, "table1/gated_mnist", f"optimizer.lr={lr}", "trainer.eval_every=1",
                           "trainer.max_steps=4", "trainer.resume=true", "trainer.time_limit_s=1e-9")  # fmt: skip
        assert (stopped["status"], stopped["steps"]) == ("interrupted", 2)
        best[lr] = stopped["best_val_acc"]
    rows = write_tables([logs], tmp_path / "out", (1,))[1]
    (curve,) = json.loads((tmp_path / "out" / "table1_curves.json").read_text())["curves"]
    row = next(r for r in rows if (r.model, r.dataset) == ("gated", "mnist"))
    drawn = next(c for c in row.candidates if c.label == curve["config"])
    assert row.chosen is None and curve["finished"] is False and len(set(best.values())) > 1, best
    assert best[drawn.runs[0].path.name.removeprefix("lr")] == max(best.values())
    method, config = legend_label(curve).split("\n")
    assert method.endswith(", unfinished)") and f"lr={drawn.runs[0].path.name.removeprefix('lr')}" in config


def test_a_curve_whose_seeds_stop_at_different_steps_says_how_many_it_averages_where():
    """An unfinished seed's curve ends early: the legend names each seed and how far it reaches."""
    curve = {"seeds_reach": {"0": 4000, "1": 3000, "2": 1000, "3": 3000}}
    assert seeds_label(curve) == "seed 0 to 4,000; seeds 1, 3 to 3,000; seed 2 to 1,000"
    assert seeds_label({"seeds_reach": {"0": 5}}) == "seed 0 to 5"


def test_no_curves_without_validation_rows(tmp_path):
    write_tables([tmp_path / "nothing"], tmp_path / "out", (1,))
    assert not (tmp_path / "out" / "table1_curves.png").exists()
