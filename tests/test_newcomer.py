"""What a newcomer meets: their own cell in the tables, a sweep as a grid, mistakes refused before anything runs."""

from __future__ import annotations

import subprocess
import sys

from antisym.results import write_tables
from antisym.results.reproduce import main as reproduce_main
from tests.conftest import REPO
from tests.test_custom_cell import train_mycell
from tests.test_results import tiny_run

EVIL = """
import pathlib
pathlib.Path(__file__).with_name("imported").write_text("a record's _target_ ran code")
"""


def test_your_cell_lands_in_other_cells_without_a_delta_and_without_being_imported(tiny_data, on_path, tmp_path):
    """examples/mycell trained on pMNIST is a row of Table 1's "Other cells" (chosen like the paper's rows, its short
    run marked short, no Δ against the paper); the tables read it without importing it, and a record naming a module
    shipped beside it is data: the module never runs."""
    root, _ = tiny_data
    proc = train_mycell(on_path, f"data.root={root}", "hydra.run.dir=runs/mine")
    assert proc.returncode == 0, proc.stderr[-2000:]
    (on_path / "evil.py").write_text(EVIL)  # beside a copied record, on the path, as a shipped archive would be
    copy = on_path / "runs" / "evil"
    copy.mkdir()
    for name in ("summary.json", "metrics.jsonl"):
        (copy / name).write_text((on_path / "runs" / "mine" / name).read_text())
    cfg = (on_path / "runs" / "mine" / "config.yaml").read_text()
    (copy / "config.yaml").write_text(cfg.replace("_target_: mycell.ElmanRNN", "_target_: evil.Cell"))
    sys.path.insert(0, str(on_path))
    try:
        write_tables([on_path / "runs"], tmp_path / "out", tables=(1,))
    finally:
        sys.path.remove(str(on_path))
    assert not (on_path / "imported").exists()
    md = (tmp_path / "out" / "table1.md").read_text()
    others = md.split("## Other cells")[1].split("\n## ")[0]
    line = next(x for x in others.splitlines() if x.startswith("| `mycell.ElmanRNN` | pMNIST |"))
    assert "**short**" in line and "(1 seed)" in line and "| `evil.Cell` | pMNIST |" in others
    beside = md.split("## Beside the paper")[1].split("\n## ")[0]
    assert "mycell" not in beside


def test_a_short_run_of_a_paper_row_gets_no_delta(tiny_data, tmp_path):
    root, _ = tiny_data
    tiny_run(root, tmp_path / "logs" / "debug", "table1/asym_pmnist")
    rows = write_tables([tmp_path / "logs"], tmp_path / "out", tables=(1,))[1]
    asym = next(r for r in rows if (r.model, r.dataset) == ("asym", "pmnist"))
    assert asym.chosen is not None and asym.short and asym.delta is None
    line = next(x for x in (tmp_path / "out" / "table1.md").read_text().splitlines() if x.startswith("| Antisymm"))
    assert "| 95.8 | — (short) |" in line


def test_a_sweep_reads_as_a_grid_with_diverged_points_marked(tiny_data, tmp_path):
    """The key with the most values gives the columns (eps: 3), the others the rows; a diverged point is marked."""
    root, _ = tiny_data
    for eps in ("0.01", "0.1", "1e38"):  # 1e38 overflows h at the first step: diverged
        for gamma in ("0.01", "1.0"):
            tiny_run(root, tmp_path / "logs" / f"{eps}_{gamma}", "table1/asym_mnist", f"model.eps={eps}",
                     f"model.gamma={gamma}")  # fmt: skip
    rows = write_tables([tmp_path / "logs"], tmp_path / "out", tables=(1,))[1]
    asym = next(r for r in rows if (r.model, r.dataset) == ("asym", "mnist"))
    val = {(c.runs[0].cfg["model"]["gamma"], c.runs[0].cfg["model"]["eps"]): c.mean("best_val_acc")
           for c in asym.candidates}  # fmt: skip
    grid = (tmp_path / "out" / "table1.md").read_text().split("## Sweeps")[1].split("\n## ")[0].splitlines()
    head = next(i for i, x in enumerate(grid) if x.startswith("| gamma \\ eps |"))
    assert grid[head] == "| gamma \\ eps | 0.01 | 0.1 | 1e+38 |"
    for line, gamma in zip(grid[head + 2 : head + 4], (0.01, 1.0), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == str(gamma) and cells[1].startswith(f"{100 * val[(gamma, 0.01)]:.1f} (1)")
        assert cells[2].startswith(f"{100 * val[(gamma, 0.1)]:.1f} (1)") and "✗" not in cells[1] + cells[2]
        assert cells[3].endswith("✗")


def test_rows_that_name_nothing_are_refused_and_write_nothing(tmp_path, capsys):
    results = tmp_path / "results"
    args = ["--quick", "--dry-run", "--logs", str(tmp_path / "logs"), "--results", str(results)]
    assert reproduce_main([*args, "--rows", "asym_mnst"]) == 2
    assert "did you mean asym_mnist?" in capsys.readouterr().err
    assert reproduce_main([*args, "--rows", "asym_mnist", "--table", "2"]) == 2
    assert "asym_mnist belongs to table1, not to table2" in capsys.readouterr().err
    assert not results.exists() and not (tmp_path / "logs").exists()


def test_make_train_refuses_overrides_that_reached_make_unquoted():
    proc = subprocess.run(["make", "train", "ARGS=debug=smoke", "model=gated", "model.eps=0.1"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode != 0 and "reached make, not train.py" in proc.stderr
    assert 'make train ARGS="debug=smoke model.eps=0.1 model=gated"' in proc.stderr


def test_a_run_evaluated_on_part_of_the_splits_is_compared_never_chosen(tiny_data, tmp_path):
    """trainer.eval_limit validates and tests on a few examples: its accuracies mean something else, so the row's
    number never comes from it, whatever its validation accuracy; it is listed with why."""
    from antisym.results.rows import on_other_data

    root, _ = tiny_data
    full = tiny_run(root, tmp_path / "logs" / "full", "table1/asym_mnist", "trainer.seed=0")
    tiny_run(root, tmp_path / "logs" / "limited", "table1/asym_mnist", "trainer.seed=0", "trainer.eval_limit=2")
    rows = write_tables([tmp_path / "logs"], tmp_path / "out", tables=(1,))[1]
    asym = next(r for r in rows if (r.model, r.dataset) == ("asym", "mnist"))
    assert len(asym.candidates) == 2 and asym.chosen is not None
    assert [r.path.name for r in asym.chosen.runs] == ["full"] and asym.test_mean == full["test_acc"]
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "| never: eval_limit=2: evaluated on that many examples, not the whole splits |" in md
    assert all(on_other_data(r) for r in asym.runs)  # the tiny data sets are subsets of the official releases


def test_help_lists_the_groups_a_run_chooses_from_and_nothing_else():
    """train.py --help: every group of a run with its options; not the campaign's plans, the part each sweep
    includes (sweep/_resumable), nor the groups the dataset or debug preset chooses, which are no options of a run."""
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--help"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    groups = proc.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "model: ablation, asym, cornn, gated, lipschitz, lstm" in groups
    assert "sweep: paper_grid, paper_grid_lstm" in groups
    assert "campaign" not in groups and "_resumable" not in groups
    assert "debug: quick, smoke" in groups and "paper_length" not in groups and "debug_dataset" not in groups


def test_a_run_on_other_data_is_never_a_row_beside_one_on_the_official_release(tiny_data, real_data_root, tmp_path):
    """A row with a run on the official MNIST and one on a tiny subset: the subset run is compared, never chosen,
    whatever its accuracy; alone, it would still be the row's (nothing better to report, and labelled short)."""
    root, _ = tiny_data
    fast = ("trainer.eval_batch_size=2000", "dataset.val_size=1000")
    tiny_run(real_data_root, tmp_path / "logs" / "official", "table1/asym_mnist", *fast, "data.allow_subset=false")
    tiny_run(root, tmp_path / "logs" / "subset", "table1/asym_mnist", "optimizer.lr=0.3")
    rows = write_tables([tmp_path / "logs"], tmp_path / "out", tables=(1,))[1]
    asym = next(r for r in rows if (r.model, r.dataset) == ("asym", "mnist"))
    assert [r.path.name for r in asym.chosen.runs] == ["official"]
    md = (tmp_path / "out" / "table1.md").read_text()
    assert "never: other data than the official release's (a subset, or altered examples), beside runs on it" in md
