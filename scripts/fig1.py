#!/usr/bin/env python
"""Figure 1: trajectories of 2-D vanilla RNNs (a-d) and feedback/Euler RNNs with the ODE's vector field (e-h).

.venv/bin/python scripts/fig1.py [--out results/local/figures] [--steps 50] [--eps 0.1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from antisym.analysis.portraits import fig1_panels, plot_fig1  # noqa: E402
from antisym.analysis.style import save_figure  # noqa: E402
from antisym.provenance import provenance  # noqa: E402


def main(argv: list[str] | None = None) -> list[Path]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="results/local/figures", help="output folder (PNG, PDF, provenance JSON)")
    ap.add_argument("--name", default="fig1", help="file stem")
    ap.add_argument("--steps", type=int, default=50, help="time steps T (paper: 50)")
    ap.add_argument("--eps", type=float, default=0.1, help="Euler step size of the feedback row (paper: 0.1)")
    ap.add_argument("--gaussian-seed", type=int, default=0, help="seed of the Gaussian W in panel (a)")
    ap.add_argument("--reflection-seed", type=int, default=1, help="seed of the orthogonal W in panel (c)")
    ap.add_argument("--rotation-seed", type=int, default=0, help="seed of the orthogonal W in panel (d)")
    args = ap.parse_args(argv)
    started = time.time()
    panels = fig1_panels(args.gaussian_seed, args.reflection_seed, args.rotation_seed)
    fig = plot_fig1(panels, steps=args.steps, eps=args.eps)
    meta = provenance("scripts/fig1.py", vars(args), started)
    meta["matrices"] = {p.letter: p.w.tolist() for p in panels}
    meta["rng"] = "numpy RandomState(seed).randn(2, 2); orthogonal = Haar QR (columns sign-fixed by diag R)"
    return save_figure(fig, args.out, args.name, meta)


if __name__ == "__main__":
    for path in main():
        print(path)
