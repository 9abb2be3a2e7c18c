"""The gap ledger (antisym.results.gap): its rule, and the ledger built from real tiny runs beside the tables."""

from __future__ import annotations

import json

import pytest

from antisym.results import write_tables
from antisym.results.curves import plot_gap_curves
from antisym.results.gap import changes, ledger_rows, load_spec, render_gap, verdict
from antisym.results.rows import collect_runs, select
from tests.test_results import TINY, tiny_run


def curves(*seeds: dict[int, float]) -> dict[int, dict[int, float]]:
    return dict(enumerate(seeds))


BASE = curves({1000: 0.28, 2000: 0.325}, {1000: 0.27, 2000: 0.31})  # the setup: 31.75 at 2k, +4.25 over 1k-2k


@pytest.mark.parametrize(
    ("cand", "expected"),
    [
        # The rule, written out: 3 points over 2 seeds helps; a trailer by 3 hurts unless it rose faster over
        # its last 1,000 iterations; anything closer, or a lead on one seed, needs seed 1 first.
        (curves({1000: 0.30, 2000: 0.352}), ("leads: needs seed 1", 3.45)),
        (curves({1000: 0.30, 2000: 0.352}, {1000: 0.30, 2000: 0.35}), ("helps", 3.35)),
        (curves({1000: 0.30, 2000: 0.345}, {1000: 0.30, 2000: 0.345}), ("within noise", 2.75)),
        (curves({1000: 0.30, 2000: 0.33}), ("within noise so far: needs seed 1", 1.25)),
        (curves({1000: 0.30, 2000: 0.29}), ("within noise so far: needs seed 1", -2.75)),
        (curves({1000: 0.26, 2000: 0.27}), ("hurts", -4.75)),  # rose 1 point, the setup 4.25
        (curves({1000: 0.20, 2000: 0.27}), ("trails, rising faster: continue to 5,000", -4.75)),  # rose 7
        # continued to 5,000 while the setup stopped at 2,000: read at 2,000 until the setup's runs get there too
        (
            curves({1000: 0.20, 2000: 0.27, 5000: 0.40}),
            ("trails at 2,000, rose faster; at 5,000 now: waits for the setup's runs there", -4.75),
        ),
        # short of the decision step: where it stands at the latest step both have, and no verdict
        (curves({1000: 0.30}), (f"not at {2000:,} yet: +2.5 at 1,000", None)),
        (curves({500: 0.30}), (f"not at {2000:,} yet", None)),
    ],
)
def test_verdict_follows_the_ledger_rule(cand, expected):
    text, delta = verdict(cand, BASE, 2000, lead=3.0, seeds=2)
    assert text == expected[0]
    assert delta == pytest.approx(expected[1]) if expected[1] is not None else delta is None
    if text.startswith("trails"):  # a point of the paper's own grid is read without the continue clause
        assert verdict(cand, BASE, 2000, lead=3.0, seeds=2, patient=False)[0] == "hurts"


def test_a_candidate_is_what_a_record_changes_from_the_setup_and_a_longer_run_is_the_budget():
    setup = {"optimizer.lr": 0.1, "model.eps": 0.01, "trainer.max_steps": 10000, "trainer.seed": 0}
    screen = {**setup, "trainer.max_steps": 2000, "trainer.eval_every": 500, "trainer.seed": 1}
    assert changes(screen, setup, 10000) == ()  # a short run of the setup, another seed: one of the setup's runs
    assert changes({**screen, "model.gate_bias": 1.0}, setup, 10000) == (("model.gate_bias", 1.0),)
    assert changes({**setup, "trainer.max_steps": 20000}, setup, 10000) == (("trainer.max_steps", 20000),)
    assert changes({k: v for k, v in setup.items() if k != "model.eps"}, setup, 10000) == (("model.eps", None),)


def test_gap_ledger_from_real_tiny_runs_beside_the_tables(tiny_data, tmp_path):
    """Tiny noise-padded runs: the setup at two seeds, a gate-bias candidate and a screen point; the ledger files each
    under its row, reads them at matched steps, and the tables link it; a run longer than the paper's length is never
    a row's configuration."""
    root, _ = tiny_data
    logs = tmp_path / "logs"
    tiny = ("dataset.seq_len=33", "trainer.max_steps=4", "trainer.eval_every=2", "model.hidden_size=4")
    for seed in (0, 1):
        tiny_run(root, logs / f"setup{seed}", "table2/gated_noisy_cifar10", *tiny, f"trainer.seed={seed}")
    tiny_run(root, logs / "bias", "table2/gated_noisy_cifar10", *tiny, "model.gate_bias=1.0")
    tiny_run(root, logs / "lr", "table2/gated_noisy_cifar10", *tiny, "optimizer.lr=0.2")
    tiny_run(root, logs / "below", "table2/gated_noisy_cifar10", *tiny, "optimizer.lr=0.05")
    setup = [*TINY, *tiny, "trainer.seed=0"]  # the seed is no setting of a setup; 0 stands for any
    spec = {**load_spec(), "rows": [{"preset": "table2/gated_noisy_cifar10", "setup": setup, "decide_at": 4}]}
    runs = collect_runs([logs])
    (row,) = ledger_rows(runs, spec)
    # A point of the paper's grid is a screen; a value below it is a candidate like any open choice.
    assert sorted(row.base.curves) == [0, 1]
    assert [c.label for c in row.open_choices] == ["model.gate_bias=1.0", "optimizer.lr=0.05"]
    assert [c.label for c in row.screens] == ["optimizer.lr=0.2"] and not row.budget
    bias = row.open_choices[0]
    expected = 100 * (bias.curves[0][4] - (row.base.curves[0][4] + row.base.curves[1][4]) / 2)
    text = render_gap([row], {}, spec, len(runs), tmp_path, "test")
    line = next(x for x in text.splitlines() if x.startswith("| model.gate_bias=1.0 |"))
    assert f"| {expected:+.1f} at 4 |" in line and "| 0 |" in line  # read at step 4 on seed 0
    assert "model.gate_bias: biases 0" in line
    below = next(x for x in text.splitlines() if x.startswith("| optimizer.lr=0.05 |"))
    assert "grid {0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1} (**below the grid**)" in below
    # What is left: the two candidates' verdicts, read by the rule, counted; no paper-length number for the row.
    read = [verdict(c.curves, row.base.curves, 4, lead=3.0, seeds=2)[0] for c in row.open_choices]
    (left,) = [x for x in text.splitlines() if x.startswith("**What is left.**")]
    assert left.startswith("**What is left.** Of 2 open choices tried alone, none helps at the decision step (")
    for cand, text_read in zip(row.open_choices, read, strict=True):
        assert (f"{cand.label} ({text_read})" in left) == (text_read not in ("hurts", "within noise"))
    assert "no paper-length number yet" in left  # no table rows given: no gap to say stands
    # Beside the tables: gap.md written, and the table links the row's entry.
    write_tables([logs], tmp_path / "out", tables=(2,))
    assert "## AntisymmetricRNN w/ gating, noise padded (Table 2)" in (tmp_path / "out" / "gap.md").read_text()
    assert "(gap.md#gated-noisy_cifar10)" in (tmp_path / "out" / "table2.md").read_text()
    assert "Curves: `gap_curves.png`" in (tmp_path / "out" / "gap.md").read_text()
    # The curves: the row's open choices (never its screen point) against the setup's seeds, whose mean and range at
    # each step are read here from the records' metrics.jsonl.
    paths = plot_gap_curves([row], tmp_path / "fig")
    assert [p.name for p in paths] == ["gap_curves.png", "gap_curves.pdf", "gap_curves.json"]
    (panel,) = json.loads(paths[2].read_text())["panels"]
    assert panel["title"] == "AntisymmetricRNN w/ gating, noise padded: open choices" and panel["decide_at"] == 4
    assert [c["label"] for c in panel["candidates"]] == ["model.gate_bias=1.0 (seed 0)", "optimizer.lr=0.05 (seed 0)"]
    val = [{r["step"]: r["acc"] for r in map(json.loads, (logs / f"setup{seed}" / "metrics.jsonl").open())
            if r["split"] == "val"} for seed in (0, 1)]  # fmt: skip
    assert panel["setup"]["label"] == "the setup (seeds 0, 1)" and panel["setup"]["steps"] == [2, 4]
    assert panel["setup"]["mean"] == pytest.approx([(val[0][s] + val[1][s]) / 2 for s in (2, 4)])
    assert panel["setup"]["low"] == pytest.approx([min(val[0][s], val[1][s]) for s in (2, 4)])
    # A configuration longer than the row's length is compared, never chosen (the budget check).
    group = [r for r in runs if r.path.name == "bias"]
    cands, chosen = select(group, {"max_steps": 2})
    assert chosen is None and cands[0].off_task({"max_steps": 2}) == {"max_steps": 4}
    assert select(group, {"max_steps": 4})[1] is not None  # at the row's length it is a row's configuration


def test_a_branch_is_a_candidate_of_its_row_read_against_the_setup_after_its_step(tiny_data, tmp_path):
    """A branch (trainer.init_from) of the setup's seed 0 with the lr decayed from step 2 on: one candidate of the
    row (its schedule, a list-valued setting, in the label), equal to the setup up to step 2, read at 6 and on
    average over its validations after 2, paired with the setup's seed 0."""
    root, _ = tiny_data
    logs = tmp_path / "logs"
    tiny = ("dataset.seq_len=33", "trainer.eval_every=2", "model.hidden_size=4")
    for seed in (0, 1):
        tiny_run(root, logs / f"setup{seed}", "table2/gated_noisy_cifar10", *tiny, "trainer.max_steps=6",
                 f"trainer.seed={seed}")  # fmt: skip
    tiny_run(root, tmp_path / "source", "table2/gated_noisy_cifar10", *tiny, "trainer.max_steps=2")
    decay = ("trainer.lr_schedule=step", "trainer.lr_decay_steps=[2]", f"trainer.init_from={tmp_path / 'source'}")
    tiny_run(root, logs / "decay", "table2/gated_noisy_cifar10", *tiny, "trainer.max_steps=6", *decay)
    setup = [*TINY, *tiny, "trainer.max_steps=4", "trainer.seed=0"]
    spec = {**load_spec(), "rows": [{"preset": "table2/gated_noisy_cifar10", "setup": setup, "decide_at": 4}]}
    (row,) = ledger_rows(collect_runs([logs]), spec)
    (cand,) = row.open_choices
    assert cand.label == "trainer.lr_decay_steps=[2] trainer.lr_schedule=step"
    assert cand.curves[0][2] == row.base.curves[0][2]  # one computation up to the branch's step
    cands, chosen = select(collect_runs([logs]), {"max_steps": 6})
    assert len(cands) == 2 and chosen is not None and chosen.runs[0].path.name.startswith("setup")  # never the branch
    line = next(x for x in render_gap([row], {}, spec, 3, tmp_path, "test").splitlines() if x.startswith("| trainer."))
    val = [{r["step"]: r["acc"] for r in map(json.loads, (logs / name / "metrics.jsonl").open()) if r["split"] == "val"}
           for name in ("decay", "setup0")]  # fmt: skip
    mean = 100 * ((val[0][4] - val[1][4]) + (val[0][6] - val[1][6])) / 2
    assert "trainer.lr_schedule: silent (Appendix C names none)" in line
    read = f"{100 * (val[0][6] - val[1][6]):+.1f} at 6; {mean:+.2f} on average over its 2 validations 4-6"
    train = [{r["step"]: r["acc"] for r in map(json.loads, (logs / name / "metrics.jsonl").open())
              if r["split"] == "train" and r["step"] > 2} for name in ("decay", "setup0")]  # fmt: skip
    assert sorted(train[0]) == sorted(train[1]) == [3, 4, 5, 6]  # log_every=1
    fit = [f"{100 * sum(t.values()) / 4:.1f}%" for t in train]
    assert f"{read} (a branch at 2); training batches {fit[0]} against {fit[1]} (the same 4 logged steps) |" in line
