"""Re-checking run records (`python -m antisym.results.verify`) on real tiny runs: a record as the trainer wrote it
is verified (its checkpoint gives the counts the trainer recorded), and each kind of edit or loss is caught."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from antisym.data import build_task
from antisym.results import verify as verify_module
from antisym.results.verify import main
from antisym.training.rundir import load_run_model
from tests.conftest import REPO, make_tiny_data
from tests.test_results import tiny_run


def verify(tmp_path: Path, *args: str) -> tuple[int, str]:
    out = tmp_path / "report.md"
    code = main([*args, "--out", str(out)])
    return code, out.read_text()


def line_of(report: str, run_dir: Path) -> str:
    return next(line for line in report.splitlines() if f"/{run_dir.name}` |" in line)


def edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_record_as_trained_is_verified_and_edits_are_caught(tiny_data, tmp_path):
    root, _ = tiny_data
    runs = tmp_path / "runs"
    summary = tiny_run(root, runs / "asym", "table1/asym_mnist")
    n_test, n_val = summary["test_size"], summary["val_size"]
    code, report = verify(tmp_path, str(runs), "--data-root", str(root))
    assert code == 0, report
    # The counts the trainer recorded at the end of training come back from the best checkpoint, exactly.
    test_correct, val_correct = round(summary["test_acc"] * n_test), round(summary["best_val_acc"] * n_val)
    line = line_of(report, runs / "asym")
    assert f"{val_correct:,} → {val_correct:,} of {n_val:,}" in line
    assert f"{test_correct:,} → {test_correct:,} of {n_test:,}" in line
    assert line.endswith("| verified |")

    # An edited summary disagrees with its own metrics.jsonl.
    path = runs / "asym" / "summary.json"
    original = path.read_text()
    edit_json(path, test_acc=(test_correct + 1) / n_test)
    code, report = verify(tmp_path, str(runs), "--no-eval")
    assert code == 1 and "DIFFERS" in line_of(report, runs / "asym")
    assert "metrics.jsonl's test row" in report

    # Summary and metrics edited together: only the checkpoint can tell, and does.
    metrics = runs / "asym" / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    rows[-1]["acc"] = (test_correct + 1) / n_test
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, report = verify(tmp_path, str(runs), "--no-eval")
    assert code == 0, "the record agrees with itself"
    assert "not re-evaluated: --no-eval" in report
    code, report = verify(tmp_path, str(runs), "--data-root", str(root))
    assert code == 1
    assert f"test: the record says {test_correct + 1:,} of {n_test:,} correct, its best checkpoint gives " in report
    # ... unless the tolerance allows one example.
    assert verify(tmp_path, str(runs), "--data-root", str(root), "--tolerance", "1")[0] == 0

    # A best checkpoint of another step than the best validation row.
    path.write_text(original)
    rows[-1]["acc"] = summary["test_acc"]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    best = runs / "asym" / "checkpoints" / "best.pt"
    torch.save({**torch.load(best), "step": 1}, best)
    code, report = verify(tmp_path, str(runs), "--data-root", str(root))
    assert code == 1 and "checkpoints/best.pt holds step 1" in report


def test_data_elsewhere_or_other_is_said_not_counted_as_agreement(tiny_data, tmp_path):
    root, _ = tiny_data
    runs = tmp_path / "runs"
    tiny_run(root, runs / "asym", "table1/asym_mnist")
    code, report = verify(tmp_path, str(runs), "--data-root", str(tmp_path / "nowhere"))
    assert code == 0 and "not re-evaluated: data not found" in report
    assert line_of(report, runs / "asym").endswith("| record agrees; not re-evaluated (notes say why) |")
    other = tmp_path / "other"
    make_tiny_data(other, seed=1)
    code, report = verify(tmp_path, str(runs), "--data-root", str(other))
    assert code == 1 and f"its summary records other data files than those under {other} (MD5 of MNIST/raw/" in report


def test_pmnist_permutation_and_interrupted_records(tiny_data, tmp_path):
    root, _ = tiny_data
    runs = tmp_path / "runs"
    tiny_run(root, runs / "pmnist", "table1/asym_pmnist")
    torch.save(torch.arange(784), runs / "pmnist" / "permutation.pt")
    code, report = verify(tmp_path, str(runs), "--data-root", str(root))
    assert "permutation.pt is not the permutation its dataset.permutation_seed gives now" in report
    # An unfinished run: its summary's step is the one last.pt resumes from, or (killed between writing the two) one
    # checkpoint behind it; never ahead.
    tiny_run(root, runs / "cut", "table1/asym_mnist")
    assert (runs / "cut" / "checkpoints" / "last.pt").is_file()
    edit_json(runs / "cut" / "summary.json", status="interrupted", steps=0)
    code, report = verify(tmp_path, str(runs / "cut"), "--no-eval")
    assert code == 0 and "summary says 0 steps, checkpoints/last.pt 2 (stopped between writing them)" in report
    assert line_of(report, runs / "cut").endswith("| files agree; unfinished, so nothing to re-evaluate yet |")
    edit_json(runs / "cut" / "summary.json", steps=3)
    code, report = verify(tmp_path, str(runs / "cut"), "--no-eval")
    assert code == 1 and "summary says 3 steps; checkpoints/last.pt holds step 2" in report


def test_a_model_whose_predictions_rounding_decides_is_judged_within_its_float_sensitivity(tiny_data, tmp_path):
    """A large eps * |W| over 784 steps amplifies rounding: float32 and float64 disagree on some predictions, so a
    count that moved by no more than that is consistent (another device rounds otherwise), and one that moved by
    more is not."""
    root, _ = tiny_data
    runs = tmp_path / "runs"
    chaotic = ["model.hidden_size=16", "model.eps=1.0", "model.init_std=16.0"]
    summary = tiny_run(root, runs / "chaos", "table1/asym_mnist", *chaotic)
    model, cfg = load_run_model(runs / "chaos")
    x, _ = build_task(OmegaConf.to_container(cfg.dataset), str(root), "test", False, True).batch(torch.arange(16))
    torch.set_num_threads(1)  # as verify evaluates (--threads 1), whatever count the training above set
    with torch.no_grad():
        changed = int((model(x).argmax(-1) != model.double()(x.double()).argmax(-1)).sum())
    assert changed >= 1, "the tiny model is meant to be chaotic"
    n = summary["test_size"]
    correct = round(summary["test_acc"] * n)
    sign = 1 if correct + changed + 1 <= n else -1
    for moved, code_wanted in ((changed, 0), (changed + 1, 1)):
        acc = (correct + sign * moved) / n
        edit_json(runs / "chaos" / "summary.json", test_acc=acc)
        metrics = runs / "chaos" / "metrics.jsonl"
        rows = [json.loads(line) for line in metrics.read_text().splitlines()]
        rows[-1]["acc"] = acc
        metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
        code, report = verify(tmp_path, str(runs), "--data-root", str(root))
        assert code == code_wanted, report
        if code == 0:
            assert f"within its float sensitivity ({changed:,} predictions change in float64)" in report
        else:
            assert "DIFFERS" in line_of(report, runs / "chaos")
            assert f"(tolerance 0; float64 changes {changed:,} predictions)" in report


def test_reuse_carries_counts_over_only_for_unchanged_records(tiny_data, tmp_path):
    """--reuse takes an earlier report's counts for a run whose files hash the same, and evaluates again a run whose
    record changed; the record checks run either way."""
    root, _ = tiny_data
    runs = tmp_path / "runs"
    summary = tiny_run(root, runs / "asym", "table1/asym_mnist")
    code, report = verify(tmp_path, str(runs), "--data-root", str(root))
    assert code == 0 and "carried over" not in report
    sidecar = tmp_path / "report.json"
    entry = json.loads(sidecar.read_text())["runs"]["runs/asym"]
    n_val = summary["val_size"]
    assert entry["counts"]["val"][:3] == [round(summary["best_val_acc"] * n_val)] * 2 + [n_val]

    # The sidecar's count, altered, comes back as it is: carried over, not evaluated again.
    data = json.loads(sidecar.read_text())
    data["runs"]["runs/asym"]["counts"]["val"][1] -= 1
    sidecar.write_text(json.dumps(data))
    code, report = verify(tmp_path, str(runs), "--data-root", str(root), "--reuse")
    assert "re-evaluation carried over from the report of" in report
    assert line_of(report, runs / "asym").endswith("| verified within 1 example |")  # evaluated again: exact
    assert json.loads(sidecar.read_text())["runs"]["runs/asym"]["date"] == entry["date"]  # the evaluating report's

    # A changed record (its best checkpoint rewritten) is evaluated again, and agrees.
    best = runs / "asym" / "checkpoints" / "best.pt"
    torch.save({**torch.load(best), "note": "rewritten"}, best)
    code, report = verify(tmp_path, str(runs), "--data-root", str(root), "--reuse")
    assert code == 0 and "carried over" not in report and line_of(report, runs / "asym").endswith("| verified |")
    # --reuse needs the report it reads from.
    assert main([str(runs), "--reuse"]) == 2


def test_a_class_a_record_names_from_elsewhere_is_built_only_where_allowed(tiny_data, tmp_path, shipped_class):
    """A record is data: a config naming a module shipped beside it (an archive's evil.py) is not imported, and the
    run is reported as not re-evaluated with why, until the user names the class (--allow-target)."""
    root, _ = tiny_data
    runs = tmp_path / "runs"
    tiny_run(root, runs / "asym", "table1/asym_mnist")
    target, marker = shipped_class
    config = runs / "asym" / "config.yaml"
    cfg = OmegaConf.load(config)
    cfg.model._target_ = target
    OmegaConf.save(cfg, config)
    code, report = verify(tmp_path, str(runs), "--data-root", str(root))
    assert not marker.exists(), "the record's module was imported"
    assert code == 0 and line_of(report, runs / "asym").endswith("| record agrees; not re-evaluated (notes say why) |")
    assert f"not re-evaluated: {config} names classes from outside the antisym package (model._target_={target})" in (
        report.replace("\n", " ")
    )
    assert f"--allow-target {target}" in report
    code, report = verify(tmp_path, str(runs), "--data-root", str(root), "--allow-target", target)
    assert code == 0 and marker.exists() and line_of(report, runs / "asym").endswith("| verified |")


def test_a_permutation_file_is_one_tensor_or_the_record_differs(tiny_data, tmp_path):
    root, _ = tiny_data
    runs = tmp_path / "runs"
    tiny_run(root, runs / "pmnist", "table1/asym_pmnist")
    saved = runs / "pmnist" / "permutation.pt"
    torch.save({"permutation": torch.load(saved)}, saved)
    code, report = verify(tmp_path, str(runs), "--data-root", str(root))
    assert code == 1 and "DIFFERS" in line_of(report, runs / "pmnist")
    assert "permutation.pt holds a dict, not the 1-D integer tensor of pixel positions the trainer writes" in report


def test_a_hand_edited_record_differs_whatever_it_keeps_consistent(tiny_data, tmp_path):
    """Edits that keep summary and metrics in step (max_steps raised in config and summary, a test count raised
    beside a zeroed data MD5, params, the device) are caught from the record's other files: the metrics' end, the
    data at hand, the model its config builds, the device its checkpoint was saved on."""
    root, _ = tiny_data
    runs = tmp_path / "runs"
    summary = tiny_run(root, runs / "asym", "table1/asym_mnist")
    files = {name: (runs / "asym" / name).read_text() for name in ("config.yaml", "summary.json", "metrics.jsonl")}

    def differs(why: str, *args: str) -> None:
        code, report = verify(tmp_path, str(runs), *(args or ("--data-root", str(root))))
        assert code == 1 and "DIFFERS" in line_of(report, runs / "asym") and why in report, report
        for name, text in files.items():
            (runs / "asym" / name).write_text(text)

    def raise_test_count() -> None:
        acc = (round(summary["test_acc"] * summary["test_size"]) + 1) / summary["test_size"]
        edit_json(runs / "asym" / "summary.json", test_acc=acc)
        rows = [json.loads(line) for line in files["metrics.jsonl"].splitlines()]
        rows[-1]["acc"] = acc
        (runs / "asym" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    (runs / "asym" / "config.yaml").write_text(files["config.yaml"].replace("max_steps: 2\n", "max_steps: 50000\n"))
    edit_json(runs / "asym" / "summary.json", steps=50000, max_steps=50000)
    differs("summary says 50000 steps; metrics.jsonl's rows end at step 2", "--no-eval")

    raise_test_count()
    data_files = {k: {**v, "md5": "0" * 32} for k, v in summary["data_files"].items()}
    edit_json(runs / "asym" / "summary.json", data_files=data_files)
    differs(f"its summary records other data files than those under {root} (MD5 of MNIST/raw/")
    official = {k: {**v, "official": True} for k, v in data_files.items()}
    edit_json(runs / "asym" / "summary.json", data_files=official)
    differs(f"summary says MNIST/raw/train-images-idx3-ubyte was the official file, but records MD5 {'0' * 32}",
            "--no-eval")  # fmt: skip

    edit_json(runs / "asym" / "summary.json", params=summary["params"] + 1)
    differs(f"summary says {summary['params'] + 1:,} parameters; its config builds", "--no-eval")

    raise_test_count()  # within the 2 examples another kind of device may differ by, were it trained on one
    gpu = "cuda: NVIDIA H100 80GB HBM3"
    segments = [{**s, "device": gpu} for s in summary["segments"]]
    edit_json(runs / "asym" / "summary.json", device=gpu, segments=segments)
    differs(f"summary says step 2 was trained on {gpu}, but checkpoints/best.pt holds tensors saved on cpu")


def test_reuse_falls_back_on_the_committed_report_and_says_what_it_will_evaluate(
    tiny_data, tmp_path, monkeypatch, capsys
):
    """A fresh clone has no results/local/ report: --reuse then takes the committed report's counts (its keys are
    relative to its own folder), and the line before the first run says how many runs will be evaluated again."""
    root, _ = tiny_data
    runs = tmp_path / "runs"
    tiny_run(root, runs / "asym", "table1/asym_mnist")
    committed = tmp_path / "committed" / "report.md"
    assert main([str(runs), "--data-root", str(root), "--out", str(committed)]) == 0
    assert "1 of 1 finished runs to evaluate again" in capsys.readouterr().err
    monkeypatch.setattr(verify_module, "COMMITTED_COUNTS", committed.with_suffix(".json"))
    local = tmp_path / "local" / "quick" / "report.md"  # no .json here yet
    assert main([str(runs), "--data-root", str(root), "--out", str(local), "--reuse"]) == 0
    assert "0 of 1 finished runs to evaluate again (1 carried over from earlier reports)" in capsys.readouterr().err
    assert "re-evaluation carried over from the report of" in local.read_text()
    assert "../../runs/asym" in json.loads(local.with_suffix(".json").read_text())["runs"]


def test_ctrl_c_writes_a_partial_report_and_exits_130(tiny_data, tmp_path):
    """Ctrl-C during a long check: no traceback, a report of the runs checked so far, and its .json keeps the
    counts of those not reached, so --reuse goes on from there."""
    root, _ = tiny_data
    runs = tmp_path / "runs"
    tiny_run(root, runs / "r00", "table1/asym_mnist")
    for i in range(1, 40):
        shutil.copytree(runs / "r00", runs / f"r{i:02}")
    out = tmp_path / "report.md"
    proc = subprocess.Popen(
        [sys.executable, "-m", "antisym.results.verify", str(runs), "--data-root", str(root), "--out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as from a terminal, whatever this
    )  # fmt: skip                                # process does with SIGINT (ignored, the child would ignore Ctrl-C)
    while "r00: verified" not in (line := proc.stderr.readline()):  # the plan, warnings, then the first run checked
        assert line, "verify ended before its first run was checked"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Run again with --reuse to go on from here." in stderr
    report = out.read_text()
    assert "**Interrupted (Ctrl-C) after " in report and "of 40 run directories" in report
    assert "`runs/r00` | completed" in report and "`runs/r39`" not in report
    assert "runs/r00" in json.loads(out.with_suffix(".json").read_text())["runs"]
