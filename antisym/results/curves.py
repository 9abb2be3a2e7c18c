"""Learning curves beside each table: what a reader looks at first to see whether a row converged or was cut short.

Per row, validation accuracy against iteration for the row's reported configuration (or, while no run of it has a
result, the configuration whose runs went furthest): the mean over seeds with a band from the lowest to the highest
seed, and the paper's final number (a successor's: its authors' reported one) as a dashed level, with a star at its
iteration count where the runs shown reach that far (the x-axis fits the runs; the legend says which seeds reach
where, and the configuration they trained under).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from antisym.provenance import provenance
from antisym.results.paper import COLUMNS, DATASETS, METHODS, reference_iterations


def band(curves: Iterable[Mapping[int, float]], until: float = math.inf) -> dict[str, list]:
    """Seeds' validation curves (step -> accuracy) as one: at each step some seed reached (up to `until`), the mean,
    the lowest and the highest over the seeds there, and how many they are."""
    by_step: dict[int, list[float]] = defaultdict(list)
    for curve in curves:
        for step, acc in curve.items():
            if step <= until:
                by_step[step].append(acc)
    steps = sorted(by_step)
    return {
        "steps": steps,
        "mean": [statistics.fmean(by_step[s]) for s in steps],
        "low": [min(by_step[s]) for s in steps],
        "high": [max(by_step[s]) for s in steps],
        "seeds_per_step": [len(by_step[s]) for s in steps],
    }


def draw_band(ax: Any, curve: Mapping[str, Any], color: str, label: str, **line: Any) -> None:
    """A band's mean as a line with markers and its lowest-to-highest range shaded, in percent."""
    pct = [[100 * v for v in curve[k]] for k in ("mean", "low", "high")]
    ax.plot(curve["steps"], pct[0], color=color, lw=1.4, marker="o", ms=3, label=label, **line)
    ax.fill_between(curve["steps"], pct[1], pct[2], color=color, alpha=0.2, lw=0)


def row_curve(row: Any) -> dict[str, Any] | None:
    """The curve of one rows.RowResult: its chosen configuration, else, unfinished, the one furthest along on the
    row's task (of those, the best validation so far: a screen's 16 points stand at one step); None when none of its
    runs has a validation row yet."""

    def progress(c: Any) -> tuple[int, float]:
        return max((r.steps, float(r.get("best_val_acc") or 0.0)) for r in c.runs)

    cand = row.chosen or max(row.on_task_candidates, key=progress, default=None)
    per_run = [(run.seed, curve) for run in (cand.runs if cand else []) if (curve := run.curve())]
    if not per_run:
        return None
    reach: dict[int, int] = {}
    for seed, curve in per_run:
        reach[seed] = max(reach.get(seed, 0), max(curve))
    return {
        "method": row.method,
        "model": row.model,
        "dataset": row.dataset,
        "config": cand.label,
        "finished": cand is row.chosen,
        "runs": len(per_run),
        **band(curve for _, curve in per_run),
        "seeds_reach": {str(seed): step for seed, step in sorted(reach.items())},  # each seed's last validation
        "reference_acc": row.paper_acc,
        "successor": row.baseline,
        "reference_iterations": reference_iterations(row.model, row.dataset),
    }


def seeds_label(curve: Mapping[str, Any]) -> str:
    """Which seeds the curve's mean holds and how far each reaches: "seeds 0, 1 to 10,000" or, with a seed still
    training, "seed 0 to 10,000; seed 1 to 1,000"."""
    by_end: dict[int, list[str]] = defaultdict(list)
    for seed, end in curve["seeds_reach"].items():
        by_end[int(end)].append(str(seed))
    parts = [
        f"seed{'s' * (len(seeds) > 1)} {', '.join(seeds)} to {end:,}"
        for end, seeds in sorted(by_end.items(), reverse=True)
    ]
    return "; ".join(parts)


def legend_label(curve: Mapping[str, Any]) -> str:
    """The method, its seeds' reach, whether it is unfinished, and on a second line the configuration drawn (while a
    row is unfinished, the one furthest along may be a superseded setup)."""
    state = "" if curve["finished"] else ", unfinished"
    return f"{curve['method']} ({seeds_label(curve)}{state})\n{curve['config']}"


def plot_learning_curves(rows: Sequence[Any], table: int, out_dir: Path) -> list[Path] | None:
    """table<N>_curves.{png,pdf,json} in out_dir, one panel per column of the table; None when nothing to draw."""
    from antisym.analysis.style import figure_style, plt, save_figure

    started = time.time()
    curves = [c for c in (row_curve(row) for row in rows) if c is not None]
    if not curves:
        return None
    columns = DATASETS[table]
    right = max(max(c["steps"]) for c in curves) * 1.04  # the runs shown; a reference further out is a dashed level
    with figure_style():
        fig, axes = plt.subplots(1, len(columns), figsize=(5.4 * len(columns), 3.8), squeeze=False)
        for ax, dataset in zip(axes[0], columns, strict=True):
            drawn = [c for c in curves if c["dataset"] == dataset]
            for i, c in enumerate(drawn):
                color = f"C{i}"
                draw_band(ax, c, color, legend_label(c))
                if c["reference_acc"] is not None:
                    ax.axhline(c["reference_acc"], color=color, lw=1.0, ls="--", alpha=0.8)
                    if c["reference_iterations"] and c["reference_iterations"] <= right:
                        ax.plot([c["reference_iterations"]], [c["reference_acc"]], marker="*", ms=11, color=color)
            whose = "the paper's" + (", a successor's its authors'" if any(c["successor"] for c in drawn) else "")
            ax.set_title(f"{COLUMNS[dataset]} (dashed: {whose} reported test accuracy)")
            ax.set_xlabel("iteration")
            ax.set_ylabel("validation accuracy (%)")
            ax.set_xlim(0, right)
            if drawn:
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)  # below: off the curves
            else:
                ax.set_ylim(0, 100)
                ax.text(0.5, 0.5, "no runs yet", transform=ax.transAxes, ha="center", color="#777777")
        meta = provenance("antisym.results", {"table": table}, started) | {"curves": curves}
        return save_figure(fig, out_dir, f"table{table}_curves", meta)


def _seeds(curves: Mapping[int, Mapping[int, float]]) -> str:
    return f"seed{'s' * (len(curves) > 1)} {', '.join(map(str, curves))}"


def gap_panels(ledger: Sequence[Any]) -> list[dict[str, Any]]:
    """What gap_curves draws, per gap.LedgerRow: its open choices against the setup's runs, cut where the candidates
    stop (the setup's seed 0 may be a paper-length run), and its budget run against the same runs as far as it got."""
    panels = []
    for row in ledger:
        name = f"{METHODS[row.model]}, {COLUMNS[row.dataset]}"
        for what, changes in (("open choices", row.open_choices), ("budget", row.budget)):
            cands = [c for c in changes if c.curves]
            if not cands:
                continue
            until = max(step for c in cands for curve in c.curves.values() for step in curve)
            panels.append({
                "title": f"{name}: {what}",
                "decide_at": row.decide_at,
                "setup": {"label": f"the setup ({_seeds(row.base.curves)})", **band(row.base.curves.values(), until)},
                "candidates": [{"label": f"{c.label} ({_seeds(c.curves)})", **band(c.curves.values())} for c in cands],
            })  # fmt: skip
    return panels


def plot_gap_curves(ledger: Sequence[Any], out_dir: Path) -> list[Path] | None:
    """gap_curves.{png,pdf,json} in out_dir: a panel per ledger row's open choices (and one per budget run), each
    candidate's validation curve beside the setup's at matched steps, the decision step marked; None when no
    candidate has a validation yet."""
    from antisym.analysis.style import figure_style, plt, save_figure

    started = time.time()
    panels = gap_panels(ledger)
    if not panels:
        return None
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    with figure_style():
        fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.6 * rows), squeeze=False)
        for ax, panel in zip(axes.flat, panels, strict=False):
            draw_band(ax, panel["setup"], "black", panel["setup"]["label"], ls="--")
            for i, cand in enumerate(panel["candidates"]):
                draw_band(ax, cand, f"C{i % 10}", cand["label"], ls=("-", "-.")[i // 10 % 2])  # 10 colours, then -.
            ax.axvline(panel["decide_at"], color="#777777", lw=0.9, ls=":")
            ax.set_title(f"{panel['title']} (dotted: the decision step)")
            ax.set_xlabel("iteration")
            ax.set_ylabel("validation accuracy (%)")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False, fontsize=7)
        for ax in list(axes.flat)[len(panels) :]:
            ax.set_visible(False)
        fig.tight_layout()
        meta = provenance("antisym.results", {"figure": "gap_curves"}, started) | {"panels": panels}
        return save_figure(fig, out_dir, "gap_curves", meta)
