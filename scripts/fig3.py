#!/usr/bin/env python
"""Figure 3 (Appendix D): vanilla 2-D RNNs with standard Gaussian random weights, seeds 1-16, in a 4 x 4 grid.

.venv/bin/python scripts/fig3.py [--out results/local/figures] [--steps 50] [--seeds 1 2 ... 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from antisym.analysis.dynamics import gaussian_matrix  # noqa: E402
from antisym.analysis.portraits import plot_fig3  # noqa: E402
from antisym.analysis.style import save_figure  # noqa: E402
from antisym.provenance import provenance  # noqa: E402


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/local/figures", help="output folder (PNG, PDF, provenance JSON)")
    ap.add_argument("--name", default="fig3", help="file stem")
    ap.add_argument("--steps", type=int, default=50, help="time steps T (the paper does not say; Figure 1 uses 50)")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(1, 17)), help="one panel per seed")
    args = ap.parse_args(argv)
    started = time.time()
    fig = plot_fig3(args.seeds, steps=args.steps)
    meta = provenance("scripts/fig3.py", vars(args), started)
    meta["matrices"] = {str(s): gaussian_matrix(s).tolist() for s in args.seeds}
    meta["rng"] = "numpy RandomState(seed).randn(2, 2)"
    return save_figure(fig, args.out, args.name, meta)


if __name__ == "__main__":
    for path in main():
        print(path)
