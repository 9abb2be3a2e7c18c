#!/usr/bin/env python
"""Figure 2: eigenvalues of the end-to-end Jacobian dh_T/dh_0 on noise-padded CIFAR-10, against T.

With --sweep DIR it uses every trained run under DIR (folders with config.yaml and checkpoints/best.pt), each
at its own dataset.seq_len. Without it, it builds the models at initialisation (untrained), one AntisymmetricRNN per
gamma in {0.001, 0.01, 0.1, 1, 5, 10} plus an LSTM, at T in {100, 200, 400, 800}. The plot says which it shows.

    .venv/bin/python scripts/fig2.py --data-root ../shared/data            # at initialisation (2 CPU cores: 4-8 min)
    .venv/bin/python scripts/fig2.py --sweep logs/paper/fig2               # from trained checkpoints (make fig2-sweep)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from antisym.analysis.spectra import (  # noqa: E402
    PAPER_GAMMAS,
    PAPER_LENGTHS,
    init_points,
    plot_fig2,
    points_table,
    sweep_points,
)
from antisym.analysis.style import save_figure  # noqa: E402
from antisym.errors import UserError  # noqa: E402
from antisym.provenance import provenance  # noqa: E402
from antisym.training.rundir import RunDir  # noqa: E402


def run_records(runs: list[str]) -> dict[str, dict]:
    """Each run's summary.json (commit, device, dates, wall time, accuracy) and its Hydra overrides, which with the
    commit's conf/ give its whole config: the figure's record of what it was drawn from."""
    records = {}
    for run in runs:
        run_dir = RunDir(run)
        records[run] = {"summary": run_dir.summary() or {}, "overrides": run_dir.overrides()}
    return records


def training_note(records: dict[str, dict]) -> str:
    """How long the runs trained and how well, from their summaries (the paper trains 10,000 iterations)."""
    summaries = [r["summary"] for r in records.values()]
    steps = sorted({s.get("steps") for s in summaries if s.get("steps") is not None})
    accs = [s["test_acc"] for s in summaries if s.get("test_acc") is not None]
    trained = f"trained {', '.join(map(str, steps))} iterations (paper: 10,000)" if steps else "training length unknown"
    return trained + (f"; test accuracy {100 * min(accs):.1f}-{100 * max(accs):.1f}%" if accs else "") + "."


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/local/figures", help="output folder (PNG, PDF, provenance JSON)")
    ap.add_argument("--name", default="fig2", help="file stem")
    ap.add_argument("--sweep", default=None, help="folder of trained runs; omit to use models at initialisation")
    ap.add_argument("--allow-target", action="append", default=[], metavar="package.module.Class",
                    help="with --sweep: a class from outside antisym that a run's config may name and that you trust "
                    "to be imported (repeatable; records are data, so no other is built)")  # fmt: skip
    ap.add_argument(
        "--data-root",
        default=os.environ.get("ANTISYM_DATA"),
        help="folder holding cifar-10-batches-py (default: $ANTISYM_DATA); synthetic inputs if absent",
    )
    ap.add_argument("--synthetic", action="store_true", help="ignore CIFAR-10 and use synthetic inputs")
    ap.add_argument("--batch", type=int, default=8, help="examples per (model, T); eigenvalues are pooled over them")
    ap.add_argument("--seed", type=int, default=0, help="seed of the model init and the noise")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--float32", action="store_true", help="compute in float32 (default float64: LSTM |λ| < 1e-38)")
    init = ap.add_argument_group("models at initialisation (ignored with --sweep)")
    init.add_argument("--lengths", type=int, nargs="+", default=list(PAPER_LENGTHS), help="sequence lengths T")
    init.add_argument("--gammas", type=float, nargs="+", default=list(PAPER_GAMMAS), help="diffusion constants")
    init.add_argument("--model", default="asym", choices=["asym", "gated", "ablation"], help="Euler model family")
    init.add_argument("--hidden", type=int, default=256, help="units of the Euler models (paper: 256)")
    init.add_argument("--lstm-hidden", type=int, default=128, help="LSTM units (paper: 128); 0 drops the LSTM")
    init.add_argument(
        "--eps", type=float, default=0.01, help="Euler step size (Figure 2's is not stated; grid 0.01, 0.1, 1)"
    )
    init.add_argument("--init-std", type=float, default=1.0, help="sigma_w of the recurrent init N(0, sigma_w^2/n)")
    args = ap.parse_args(argv)

    started = time.time()
    data_root = None if args.synthetic else args.data_root
    dtype = torch.float32 if args.float32 else torch.float64
    common = {"batch": args.batch, "seed": args.seed, "data_root": data_root, "device": args.device, "dtype": dtype}
    if args.sweep:
        try:
            points, sources = sweep_points(args.sweep, allow=args.allow_target, **common)
        except UserError as err:
            sys.exit(f"error: {err}")
        headline = f"TRAINED checkpoints from {args.sweep} ({sum(len(p.runs) for p in points)} runs)"
        records = run_records([run for p in points for run in p.runs])
        setting = f"{args.batch} test examples per run; {str(dtype).replace('torch.', '')}; h_0 = 0. " + training_note(
            records
        )
    else:
        records = None
        points, sources = init_points(
            args.gammas, args.lengths, model=args.model, hidden=args.hidden, lstm_hidden=args.lstm_hidden or None,
            eps=args.eps, init_std=args.init_std, **common,
        )  # fmt: skip
        headline = "UNTRAINED models at initialisation (the paper shows models trained on the task)"
        lstm = f", LSTM n = {args.lstm_hidden}" if args.lstm_hidden else ""
        setting = (
            f"{args.model}: n = {args.hidden}, ε = {args.eps:g}, σ_w = {args.init_std:g}{lstm}; init per Appendix C, "
            f"seed {args.seed}; {args.batch} examples per T; {str(dtype).replace('torch.', '')}; h_0 = 0 "
            "(LSTM: c_0 = 0 held fixed)."
        )
    notes = ["Inputs: " + "; ".join(sources), "Settings: " + setting]
    fig = plot_fig2(points, headline=headline, notes=notes)
    meta = provenance("scripts/fig2.py", vars(args), started, device=args.device)
    meta["inputs"] = sources
    meta["statistic"] = "mean and population std of |eigenvalues| of dh_T/dh_0, pooled over examples (and runs)"
    meta["points"] = points_table(points)
    if records is not None:
        meta["runs"] = records
    return save_figure(fig, args.out, args.name, meta)


if __name__ == "__main__":
    for path in main():
        print(path)
