"""The gap ledger: where our rows fall short of the paper's numbers, each choice the paper leaves open tried alone.

Per paper row (conf/campaign/gap.yaml), the *setup* is the preset with the overrides the rows train under now. Every
record of the row (its model class and task) is compared with it: the settings the record changes from the setup,
the seed, the length and the validation cadence aside, are its *candidate*; the records that change nothing are the
setup's own runs, one trajectory per seed (a screen point and the row's seed-0 run of the same settings are one).
A candidate is read at matched steps against the setup's seeds, at the row's decision step (2,000 iterations on the
noise-padded task), and given a verdict by the rule of the ledger (lead 3 points, 2 seeds):

- leads by `lead` or more with `seeds` seeds: helps (the presets may take it, conf/experiment/README.md);
- trails by `lead` or more: hurts, unless its validation rose faster than the setup's over its last 1,000
  iterations before the decision step: then it continues to 5,000 first (a short screen favours fast starters);
- otherwise, with fewer than `seeds` seeds: needs another seed; with them: within noise;
- short of the decision step: no verdict, only where it stands at the latest step both have.

A branch (trainer.init_from: a setting that acts late, started from the setup's own checkpoint at step k) is read
the same way, and its Δ also on average over its validations after k, each against the setup's run of its seed,
beside the two runs' training-batch accuracy over the same steps (whether the change let an underfitting row fit).

A record trained longer than the paper's iterations is the budget check: its curve, never a row's number. Records of
points of the paper's own grid (lr, eps, gamma: the choices with a `grid` in the spec) are the screens, listed apart;
a value off that grid (below its lowest lr, say) is a candidate like any open choice. Each row ends with what is left:
the verdicts counted, and whether the gap still stands. Written beside the tables (`write_tables`), from the same
records.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from antisym.config import experiment_settings
from antisym.results.paper import COLUMNS, ITERATIONS, METHODS, PAPER, PAPER_TASK, TABLE_OF_DATASET
from antisym.results.render import as_written, hashable, shown
from antisym.results.rows import row_dataset, row_model
from antisym.training.runs import compose

SPEC = Path(__file__).resolve().parents[2] / "conf" / "campaign" / "gap.yaml"
# What a record may differ from the setup in and still be one of the setup's runs (or a candidate's, seed aside).
CADENCE = {"trainer.seed", "trainer.max_steps", "trainer.eval_every"}
SLOPE_SPAN = 1000  # iterations over which "still rising faster" is read


Curve = dict[int, float]  # step -> validation accuracy (a fraction)


@dataclass
class Change:
    """The records of one row that change the same settings from the setup (a candidate; the setup's own runs are
    the empty change), and their validation curves by seed."""

    change: tuple[tuple[str, Any], ...]
    runs: list[Any] = field(default_factory=list)  # rows.Run

    @functools.cached_property
    def curves(self) -> dict[int, Curve]:
        """One curve per seed; two records of one seed (a screen point and a paper-length run) are merged, the
        further-trained one first. Read once (every candidate of a row is set against the setup's curves), after
        ledger_rows has filed every run."""
        out: dict[int, Curve] = {}
        for run in sorted(self.runs, key=lambda r: -r.steps):
            curve = out.setdefault(run.seed, {})
            for step, acc in run.curve().items():
                curve.setdefault(step, acc)
        return {seed: curve for seed, curve in sorted(out.items()) if curve}

    @property
    def max_steps(self) -> int:
        return max(r.max_steps for r in self.runs)

    def furthest(self, seed: int) -> Any | None:
        """The further-trained record of a seed (rows.Run), the one whose curve a merged seed follows past the
        other's end; None where the change has no run of that seed."""
        return max((r for r in self.runs if r.seed == seed), key=lambda r: r.steps, default=None)

    @property
    def label(self) -> str:
        return " ".join(f"{k}={as_written(v)}" for k, v in self.change)


def at_step(curves: Mapping[int, Curve], step: int) -> list[float]:
    """The seeds' validation accuracies at `step` (those that reached it)."""
    return [c[step] for c in curves.values() if step in c]


def rise(curves: Mapping[int, Curve], step: int) -> float | None:
    """Mean rise of validation accuracy over the SLOPE_SPAN iterations before `step`, over seeds with both points."""
    rises = [c[step] - c[step - SLOPE_SPAN] for c in curves.values() if step in c and step - SLOPE_SPAN in c]
    return statistics.fmean(rises) if rises else None


def verdict(
    cand: Mapping[int, Curve], base: Mapping[int, Curve], at: int, lead: float, seeds: int, patient: bool = True
) -> tuple[str, float | None]:
    """The ledger's rule at step `at` (module doc): (verdict, delta in points or None). `patient`: a trailing
    candidate that rose faster continues (the paper's own grid points, screens, are read without it)."""
    mine, theirs = at_step(cand, at), at_step(base, at)
    if not mine:
        shared = [k for k in sorted({k for c in cand.values() for k in c}, reverse=True) if at_step(base, k)]
        if not shared:
            return f"not at {at:,} yet", None
        so_far = 100 * (statistics.fmean(at_step(cand, shared[0])) - statistics.fmean(at_step(base, shared[0])))
        return f"not at {at:,} yet: {so_far:+.1f} at {shared[0]:,}", None  # where it stands, no verdict
    if not theirs:
        return f"the setup has no validation at {at:,}", None
    delta = 100 * (statistics.fmean(mine) - statistics.fmean(theirs))
    if delta <= -lead:
        faster = rise(cand, at), rise(base, at)
        if patient and None not in faster and faster[0] > faster[1]:
            target = max(5000, 2 * at)
            if at_step(cand, target):  # continued already: read there once the setup's runs get there too
                return f"trails at {at:,}, rose faster; at {target:,} now: waits for the setup's runs there", delta
            return f"trails, rising faster: continue to {target:,}", delta
        return "hurts", delta
    if len(mine) < seeds:
        what = "leads" if delta >= lead else "within noise so far"
        return f"{what}: needs seed {len(mine)}", delta
    return ("helps" if delta >= lead else "within noise"), delta


def changes(settings: Mapping[str, Any], setup: Mapping[str, Any], iterations: int) -> tuple[tuple[str, Any], ...]:
    """The settings a record changes from the setup; its length only where longer than the paper's."""
    out = {k: settings.get(k) for k in settings.keys() | setup.keys() if k not in CADENCE}
    out = {k: hashable(v) for k, v in out.items() if v != setup.get(k)}
    steps = int(settings.get("trainer.max_steps", 0))
    if steps > iterations:
        out["trainer.max_steps"] = steps
    return tuple(sorted(out.items()))


def in_grid(value: Any, grid: Sequence[float]) -> bool:
    """Whether a setting's value is one of the paper's grid values for it (None, a setting removed, is not)."""
    return value is not None and any(abs(float(value) - g) < 1e-12 for g in grid)


def on_grid(change: tuple[tuple[str, Any], ...], grids: Mapping[str, Sequence[float]]) -> bool:
    """Whether every setting the change makes is a value of the paper's own grid for it."""
    return bool(change) and all(key in grids and in_grid(value, grids[key]) for key, value in change)


@dataclass
class LedgerRow:
    preset: str
    model: str
    dataset: str
    decide_at: int
    setup_label: str
    base: Change
    candidates: list[Change]
    grids: Mapping[str, Sequence[float]] = field(default_factory=dict)  # the paper's grid per setting that has one

    @property
    def anchor(self) -> str:
        return f"{self.model}-{self.dataset}"

    @property
    def budget(self) -> list[Change]:
        return [c for c in self.candidates if dict(c.change).keys() == {"trainer.max_steps"}]

    @property
    def screens(self) -> list[Change]:
        return [c for c in self.candidates if on_grid(c.change, self.grids)]

    @property
    def open_choices(self) -> list[Change]:
        return [c for c in self.candidates if c not in self.budget and c not in self.screens]


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def ledger_rows(runs: Sequence[Any], spec: Mapping[str, Any]) -> list[LedgerRow]:
    """Each spec row's setup, its own runs and its candidates, from the records (rows.Run)."""

    rows = []
    grids = {key: choice["grid"] for key, choice in spec["choices"].items() if "grid" in choice}
    for entry in spec["rows"]:
        cfg = compose(entry["preset"], list(entry.get("setup") or []))
        model, dataset = row_model(cfg["model"]), row_dataset(cfg["dataset"])
        setup = experiment_settings(cfg)
        groups: dict[tuple, Change] = {}
        for run in runs:
            if run.model == model and run.dataset == dataset and not run.quick:
                change = changes(experiment_settings(run.cfg), setup, ITERATIONS[dataset])
                groups.setdefault(change, Change(change)).runs.append(run)
        base = groups.pop((), Change(()))
        setup_label = ", ".join(entry.get("setup") or []) or "the preset as it is"
        rows.append(LedgerRow(entry["preset"], model, dataset, int(entry["decide_at"]), setup_label, base,
                              sorted(groups.values(), key=lambda c: c.label), grids))  # fmt: skip
    return rows


def _pct(values: Sequence[float]) -> str:
    if not values:
        return "—"
    mean = f"{100 * statistics.fmean(values):.1f}"
    return f"{mean} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else mean


def decision_step(row: LedgerRow, cand: Change) -> int:
    """Where a candidate is read: the furthest step at or past the row's decision step (within the paper's length)
    at which both it and the setup have a validation, so that a candidate continued past it is read where it got
    to; the row's decision step while there is none."""
    mine = {s for c in cand.curves.values() for s in c}
    theirs = {s for c in row.base.curves.values() for s in c}
    common = [s for s in mine & theirs if row.decide_at <= s <= ITERATIONS[row.dataset]]
    return max(common, default=row.decide_at)


def branch_point(cand: Change) -> int | None:
    """The step a branch candidate's runs started from their source's checkpoint (trainer.init_from), None for a
    candidate trained from step 0: before it, the branch's curve is its source's own."""
    return min((r.branched_at for r in cand.runs if r.branched_at is not None), default=None)


def paired_after(cand: Change, base: Change, k: int) -> tuple[float, list[int]] | None:
    """A branch read the way it was designed: the mean difference in points from the setup's run of the same seed at
    every validation step after the branch point k (one step's difference is mostly evaluation noise), and those
    steps; None where no seed has both past k."""
    diffs: dict[int, list[float]] = {}
    for seed, curve in cand.curves.items():
        theirs = base.curves.get(seed, {})
        for step in (s for s in curve if s > k and s in theirs):
            diffs.setdefault(step, []).append(curve[step] - theirs[step])
    if not diffs:
        return None
    return 100 * statistics.fmean(d for ds in diffs.values() for d in ds), sorted(diffs)


def fit_after(cand: Change, base: Change, k: int) -> tuple[float, float, int] | None:
    """How well a branch fits its training batches after k beside the setup's run of its seed: the mean accuracy (%)
    of the batches both logged at the same steps past k, the branch's and the setup's, and how many (validation says
    whether it generalises; this, whether the change let it fit: what an underfitting row is read on)."""
    pairs = []
    for seed in cand.curves:
        mine, theirs = cand.furthest(seed), base.furthest(seed)
        if mine is not None and theirs is not None:
            other = theirs.curve("train")
            pairs += [(acc, other[s]) for s, acc in mine.curve("train").items() if s > k and s in other]
    if not pairs:
        return None
    return 100 * statistics.fmean(p[0] for p in pairs), 100 * statistics.fmean(p[1] for p in pairs), len(pairs)


def _runs_cell(cand: Change, base_dir: Path) -> str:
    return "<br>".join(f"[{run.path.name}]({shown(run.path, base_dir)}) ({run.steps:,} of "
                       f"{run.max_steps:,})" for run in cand.runs)  # fmt: skip


def _off_grid(value: Any, grid: Sequence[float]) -> str:
    """Where a value lies against the paper's grid: '' on it, else below, above or between its points."""
    if value is None or in_grid(value, grid):
        return ""
    where = "below" if float(value) < min(grid) else "above" if float(value) > max(grid) else "between the points of"
    return f" (**{where} the grid**)"


def _paper_says(cand: Change, choices: Mapping[str, Any], dataset: str) -> str:
    said = []
    for key, value in cand.change:
        off = PAPER_TASK.get(dataset, {}).get(key.removeprefix("dataset."))
        choice = choices.get(key) or {}
        text = choice.get("paper", "—") + (_off_grid(value, choice["grid"]) if "grid" in choice else "")
        said.append(f"{key}: {text}" + (f" (**off the paper's task: compared, never adopted**; it says {off})"
                                        if off is not None and off != value else ""))  # fmt: skip
    return "; ".join(said)


def candidate_line(row: LedgerRow, cand: Change, spec: Mapping[str, Any], base_dir: Path, paper: bool = True) -> str:
    """One candidate's row of the ledger (a point of the paper's own grid: without the paper's column, and read
    without the continue-if-rising-faster clause)."""
    at = decision_step(row, cand)
    steps = sorted({s for s in (row.decide_at - SLOPE_SPAN, row.decide_at, at) if s > 0})
    text, delta = verdict(cand.curves, row.base.curves, at, float(spec["lead"]), int(spec["seeds"]), patient=paper)
    mine = " / ".join(_pct(at_step(cand.curves, s)) for s in steps)
    theirs = " / ".join(_pct(at_step(row.base.curves, s)) for s in steps)
    seeds = ", ".join(str(s) for s, c in cand.curves.items() if at in c) or "none"
    said = f"{_paper_says(cand, spec['choices'], row.dataset)} | " if paper else ""
    shift = "—" if delta is None else f"{delta:+.1f} at {at:,}"
    k = branch_point(cand)
    if delta is not None and k is not None and (paired := paired_after(cand, row.base, k)):
        mean, after = paired
        span = f"{len(after)} validation{'s' * (len(after) > 1)} {after[0]:,}-{after[-1]:,}"
        shift += f"; {mean:+.2f} on average over its {span} (a branch at {k:,})"
        if fit := fit_after(cand, row.base, k):
            shift += f"; training batches {fit[0]:.1f}% against {fit[1]:.1f}% (the same {fit[2]:,} logged steps)"
    return (
        f"| {cand.label} | {said}{_runs_cell(cand, base_dir)} | "
        f"{' / '.join(f'{s:,}' for s in steps)} | {mine} | {theirs} | {seeds} | {shift} | {text} |"
    )


def budget_line(row: LedgerRow, cand: Change, base_dir: Path) -> str:
    paper = ITERATIONS[row.dataset]
    if not cand.curves:
        return f"- Budget: {_runs_cell(cand, base_dir)}: no validation yet."
    seed, curve = next(iter(cand.curves.items()))
    every, last = max(paper // 5, 1), max(curve)
    points = ", ".join(f"{s:,}: {100 * curve[s]:.1f}" for s in sorted(curve) if s % every == 0 or s == last)
    climb = f"; {100 * (curve[last] - curve[last - 2000]):+.1f} over its last 2,000" if last - 2000 in curve else ""
    setup = row.base.curves.get(seed, {})
    same = [s for s in curve if s in setup]
    if not same:
        agree = ""
    elif all(abs(curve[s] - setup[s]) < 1e-9 for s in same):
        agree = f"; equal to the setup's seed {seed} at {len(same)} of {len(same)} common steps"
    else:
        marked = ", ".join(f"{s:,}: {100 * setup[s]:.1f}" for s in same if s % every == 0)
        agree = f"; the setup's seed {seed} at the same steps: {marked}"
    return f"- Budget: {_runs_cell(cand, base_dir)}, seed {seed}, validation at {points}{climb}{agree}."


def left_line(row: LedgerRow, gap: float | None, lead: float, seeds: int) -> str:
    """What is left of a row's gap: its open choices' verdicts counted, and whether any explains the gap."""
    read = {cand.label: verdict(cand.curves, row.base.curves, decision_step(row, cand), lead, seeds)[0]
            for cand in row.open_choices}  # fmt: skip
    helps = [label for label, text in read.items() if text == "helps"]
    settled = {"within noise": "within noise", "hurts": "hurt"}
    counts = [f"{sum(t == text for t in read.values())} {word}" for text, word in settled.items()
              if text in read.values()]  # fmt: skip
    pending = [f"{label} ({text})" for label, text in read.items() if text not in settled and text != "helps"]
    so_far = " so far" if pending else ""
    stands = f"the gap of {gap:+.1f} points stands{so_far}" if gap is not None else "no paper-length number yet"
    if helps:
        verdict_text = f"{', '.join(helps)} helps: by the rule the presets take it (conf/experiment/README.md)"
    else:
        verdict_text = f"none helps at the decision step ({', '.join(counts) or 'none decided'}): {stands}"
    waiting = f"; not decided yet: {'; '.join(pending)}" if pending else ""
    tried = f"{len(read)} open choice{'s' * (len(read) > 1)}"
    return f"**What is left.** Of {tried} tried alone, {verdict_text}{waiting}."


def render_gap(rows: Sequence[LedgerRow], table_rows: Mapping[tuple[str, str], Any], spec: Mapping[str, Any],
               n_runs: int, base_dir: Path, source: str) -> str:  # fmt: skip
    """gap.md: the choices, then per row its setup, candidates with verdicts, budget, screens and the gap left."""
    lead, seeds = float(spec["lead"]), int(spec["seeds"])
    out = [
        "# Gap ledger: the choices the paper leaves open, tried one at a time",
        "",
        f"Rebuilt by `{source}` from {n_runs} run directories on {time.strftime('%Y-%m-%d %H:%M:%S %z')}, with",
        "the tables; the rows and their setups: `conf/campaign/gap.yaml`; how it reads the records:",
        "`antisym/results/gap.py`. Each candidate changes the settings in its first column from the row's setup (the",
        "preset and the overrides the rows train under now) and is read against the setup's own runs at matched",
        "steps (validation accuracy %, mean ± std over seeds), at the row's decision step or, continued past it, where",
        f"it got to. Rule: a lead of {lead:g} points or more over {seeds} seeds *helps* (the presets may take it); a",
        f"deficit of {lead:g} or more *hurts*, unless the candidate rose faster than the setup over its last",
        f"{SLOPE_SPAN:,} iterations (then it continues to 5,000 first); anything else needs a seed more, and with",
        f"{seeds} seeds is *within noise*. Candidates combine only once each has led alone. A budget run (longer than",
        "the paper) shows its curve; the rows' numbers stay their paper-length runs'. A branch (a run started from",
        "the setup's checkpoint at step k) is also read on average over its validations after k, paired by seed,",
        "with both runs' training-batch accuracy over the same steps.",
        "",
        "## The choices",
        "",
        "| setting | the paper | the presets' value is | verdicts so far |",
        "|---|---|---|---|",
    ]
    verdicts: dict[str, list[str]] = {}
    for row in rows:
        for cand in row.open_choices:
            text = verdict(cand.curves, row.base.curves, decision_step(row, cand), lead, seeds)[0]
            for key, _ in cand.change:
                verdicts.setdefault(key, []).append(f"{cand.label} on [{METHODS[row.model]}, "
                                                    f"{COLUMNS[row.dataset]}](#{row.anchor}): {text}")  # fmt: skip
        if row.screens:
            for key in sorted({k for c in row.screens for k, _ in c.change}):
                verdicts.setdefault(key, []).append(f"screen on [{METHODS[row.model]}, {COLUMNS[row.dataset]}]"
                                                    f"(#{row.anchor})")  # fmt: skip
        if row.budget:
            verdicts.setdefault("trainer.max_steps", []).append(f"budget run on [{METHODS[row.model]}, "
                                                                f"{COLUMNS[row.dataset]}](#{row.anchor})")  # fmt: skip
    for key, choice in spec["choices"].items():
        tried = "<br>".join(verdicts.get(key, [])) or "not tried"
        out.append(f"| `{key}` | {choice['paper']} | {choice['whose']} | {tried} |")
    for row in rows:
        ours = table_rows.get((row.model, row.dataset))
        paper = PAPER[TABLE_OF_DATASET[row.dataset]][row.model].acc[row.dataset]
        title = f"{METHODS[row.model]}, {COLUMNS[row.dataset]} (Table {TABLE_OF_DATASET[row.dataset]})"
        out += ["", f'<a id="{row.anchor}"></a>', "", f"## {title}", ""]
        delta = ours.delta if ours is not None else None
        if delta is not None:
            n = len(ours.chosen.results)
            gap = f"ours {100 * ours.test_mean:.1f} ({n} seed{'s' * (n > 1)}) against the paper's {paper}: " \
                  f"{delta:+.1f} points"  # fmt: skip
        else:
            gap = f"no paper-length result yet; the paper's {paper}"
        base_seeds = ", ".join(f"{s} (validated to {max(c):,})" for s, c in row.base.curves.items()) or "none"
        out += [
            f"Setup: `{row.preset}` with {row.setup_label}; its runs: seeds {base_seeds}. Decision step "
            f"{row.decide_at:,}. The gap: {gap}.",
            "",
        ]
        if row.open_choices:
            out += [
                "| candidate | the paper | runs | steps | val | setup's val | seeds there | Δ | verdict |",
                "|---|---|---|---|---|---|---|---|---|",
                *(candidate_line(row, c, spec, base_dir) for c in row.open_choices),
            ]
        else:
            out.append("No candidate trained yet.")
        out += [budget_line(row, c, base_dir) for c in row.budget]
        if row.open_choices:
            out += ["", left_line(row, delta, lead, seeds)]
        if row.screens:
            out += ["", f"Points of the paper's grid (screens), read the same way ({len(row.screens)}):", "",
                    "| point | runs | steps | val | setup's val | seeds there | Δ | verdict |",
                    "|---|---|---|---|---|---|---|---|"]  # fmt: skip
            out += [candidate_line(row, c, spec, base_dir, paper=False) for c in row.screens]
    out.append("")
    return "\n".join(out)
