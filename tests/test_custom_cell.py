"""Bring your own cell: examples/mycell trains through train.py from its own folder, with no edit of the package."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_train import TINY, cli

EXAMPLE = REPO / "examples" / "mycell"
SEARCHPATH = f"hydra.searchpath=[file://{EXAMPLE / 'conf'}]"


def train_mycell(cwd: Path, *overrides: str, multirun: bool = False):
    return cli(*["-m"] * multirun, "model=mycell", "dataset=pmnist", SEARCHPATH, *TINY, *overrides, cwd=cwd)


def test_example_cell_trains_from_its_config_folder(tiny_data, on_path, monkeypatch):
    root, _ = tiny_data
    proc = train_mycell(on_path, f"data.root={root}", "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((on_path / "run" / "summary.json").read_text())
    monkeypatch.syspath_prepend(str(EXAMPLE))
    cell = importlib.import_module("mycell").ElmanRNN(input_size=1, hidden_size=8, num_classes=10)
    assert summary["status"] == "completed" and summary["model"] == "mycell"
    assert summary["params"] == sum(p.numel() for p in cell.parameters()) == 1 * 8 + 8 + 8 * 8 + 8 * 10 + 10


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("model._target_=nostate.NoState", ["nostate.NoState", "final_state"]),
        ("model._target_=torch.nn.Linear", ["hidden_size"]),  # its constructor takes no hidden_size
        ("+model.depth=2", ["depth", "nonlinearity", "init_std"]),  # the refusal lists the keys the class takes
    ],
)
def test_cell_without_the_interface_is_one_paragraph(on_path, override, names):
    proc = train_mycell(on_path, f"data.root={on_path / 'nothing'}", "hydra.run.dir=run", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    error = proc.stderr.strip()
    assert error.startswith("error: ") and "\n" not in error, error
    for name in names:
        assert name in error, (name, error)


def test_example_cell_packs_and_each_member_equals_its_solo_run(tiny_data, on_path):
    """The example opts into packing (vmap_forward, member_settings): a sweep over init_std is one pack
    whose members train what their solo runs train (float64)."""
    from tests.test_packed import EXACT, assert_same_run

    root, _ = tiny_data
    sweep = [f"data.root={root}", *EXACT, "model.init_std=0.5,1.5", "hydra.sweep.subdir=${model.init_std}"]
    packed = train_mycell(
        on_path, *sweep, "hydra.sweep.dir=packed", "hydra/launcher=packed", "hydra.launcher.pack_size=2", multirun=True
    )
    assert packed.returncode == 0, packed.stderr[-2000:]
    assert "2 runs in 1 packs (pack_size 2)" in packed.stdout + packed.stderr
    solo = train_mycell(on_path, *sweep, "hydra.sweep.dir=solo", multirun=True)
    assert solo.returncode == 0, solo.stderr[-2000:]
    for name in ("0.5", "1.5"):
        assert_same_run(on_path / "solo" / name, on_path / "packed" / name)
