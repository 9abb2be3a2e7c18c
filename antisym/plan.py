"""A plan (conf/campaign/<name>.yaml): the one way a set of runs is declared, expanded into its ordered runs.

`make reproduce-table` trains the plan `tables` (every row of Tables 1-2 x its seeds) through Hydra's launchers, the
campaign trains the plan `paper` in lanes on lent machines; any other plan runs either way. A plan is blocks in order
of value per device-minute; a block lists entries, each a preset (a string) or a mapping {preset, overrides, grid}.
Every entry x grid point x seed is one run in <records>/<block>/<run>/, composed as
`train.py experiment=<preset> <plan overrides> <entry overrides> <grid point> trainer.seed=<k>`. Within a block the
seeds are the outer loop, so every row gets its first seed before any row gets its second. The plan's
`where_present` overrides apply to the runs whose config has the key (model.impl: the LSTM and the baselines have none).

An entry {preset, overrides, select: <earlier block>} takes its grid point from that block: the point of the same
preset with the highest mean best validation accuracy over its completed runs, once every run of that preset there is
finished (a focus screen first, then the seeds at its best point). Until then its runs are `waiting`; `resolve` fills
the point in from the records. The choice is made once the screen is finished and so does not move; should the screen
change after its seeds started (a point added), the trainer refuses to resume a seed under the new point rather than
switch silently.

A plan's `quick` section ({overrides, seeds}) is the same runs at a laptop's size (`load_plan(..., quick=True)`,
`make reproduce-table QUICK=1`): its overrides after the plan's, its seeds instead of the plan's.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from antisym.errors import ConfigError
from antisym.training.branch import branch_start
from antisym.training.rundir import FINISHED, RunDir, Status
from antisym.training.runs import CONF_DIR, RunState, compose, compose_where_present, growing, run_state

PLAN_DIR = CONF_DIR / "campaign"
# An unfinished screen point whose best validation accuracy so far trails a finished point's by this much cannot win
# in what is left of a screen (the gated Table 1 points at 3,982 of 5,000 trail the leaders by 25-75 points)
OUT_OF_RUNNING = 0.25
# solo: one run at a time; packed: consecutive runs of a block that can share a pack (antisym.training.runs) are
# trained as one, at most the plan's pack_size together.
LAUNCHERS = ("solo", "packed")


@dataclass(frozen=True)
class PlannedRun:
    block: str
    name: str
    preset: str
    overrides: tuple[str, ...]  # what composes it, trainer.seed last
    where_present: tuple[str, ...] = ()  # overrides applied only where the composed config has the key
    point: tuple[str, ...] = ()  # the grid point's overrides (part of `overrides`)
    select: str | None = None  # the block whose best point of this preset the run takes
    chosen: str | None = None  # the run of `select` whose point it took (None: not resolved yet)
    select_preset: str | None = None  # the preset of `select` whose point it takes (default: its own)

    @property
    def waiting(self) -> bool:
        return self.select is not None and self.chosen is None

    @property
    def rel_dir(self) -> str:
        return f"{self.block}/{self.name}"

    @property
    def seed(self) -> int:
        return int(self.overrides[-1].removeprefix("trainer.seed="))

    @property
    def entry_key(self) -> tuple[str, tuple[str, ...]]:
        """The run without its seed: runs of one key share every setting but the seed (e.g. max_steps)."""
        return self.preset, self.overrides[:-1]


@dataclass(frozen=True)
class Plan:
    name: str
    launcher: str
    blocks: tuple[str, ...]
    runs: tuple[PlannedRun, ...]
    pack_size: int = 1
    concurrent: int = 1  # packs trained side by side (threads, a CUDA stream each): small packs leave SMs idle
    # device kind -> what it trains, in order: (block, its seeds or None for all, its runs by name or None for all);
    # a block may come back for the rest
    lanes: Mapping[str, tuple[tuple[str, tuple[int, ...] | None, tuple[str, ...] | None], ...]] = field(
        default_factory=dict
    )
    # blocks whose finished records keep checkpoints/last.pt, so that a later plan can train them longer (the same run)
    keep_last: frozenset[str] = frozenset()

    def block_runs(self, block: str) -> list[PlannedRun]:
        return [r for r in self.runs if r.block == block]

    def lane_runs(self, lane: str | None) -> list[PlannedRun]:
        """The runs a lane trains, in its block order (every run in plan order where lane is None)."""
        if lane is None:
            return list(self.runs)
        return [r for _, runs in self.lane_items(lane) for r in runs]

    def lane_items(self, lane: str) -> list[tuple[str, list[PlannedRun]]]:
        """A lane's list item by item: a label ("table1 seeds 0", "table1_screen: 8 runs") and the runs it adds; a
        run an earlier item listed keeps its first place (a block listed again trains the rest)."""
        if lane not in self.lanes:
            raise ConfigError(f"plan {self.name} has no lane {lane!r}; its lanes: {', '.join(self.lanes) or 'none'}.")
        seen: set[PlannedRun] = set()
        items = []
        for block, seeds, names in self.lanes[lane]:
            runs = [r for r in self.block_runs(block) if r not in seen and (seeds is None or r.seed in seeds)
                    and (names is None or r.name in names)]  # fmt: skip
            seen.update(runs)
            label = block + (f" seeds {', '.join(map(str, seeds))}" if seeds else "")
            items.append((label + (f": {len(names)} runs" if names else ""), runs))
        return items


def plan_path(plan: str | Path) -> Path:
    """A plan file, or the name of one in conf/campaign/."""
    path = Path(plan)
    if path.suffix in (".yaml", ".yml"):
        return path
    return PLAN_DIR / f"{plan}.yaml"


def _value_tag(key: str, value: Any) -> str:
    return f"{key.rsplit('.', 1)[-1]}{value}"


def row_name(preset: str, point: Sequence[str] = ()) -> str:
    """A run's name without its seed: the preset's last part, then each grid value tagged by its key's last part
    (table1/asym_pmnist at model.eps=0.01: asym_pmnist_eps0.01); train.py's `plan_row` resolver for a multirun."""
    return "_".join([preset.rsplit("/", 1)[-1], *(_value_tag(*o.split("=", 1)) for o in point)])


@dataclass(frozen=True)
class _Entry:
    """One grid point of a block entry, before seeds."""

    name: str
    preset: str
    base: tuple[str, ...]  # plan + entry overrides
    point: tuple[str, ...]
    select: str | None
    select_preset: str | None


def _entry_runs(block: str, entry: Any, shared: Sequence[str], earlier: Sequence[str]) -> list[_Entry]:
    """The grid points of one block entry (one, with no grid)."""
    if isinstance(entry, str):
        entry = {"preset": entry}
    if not isinstance(entry, Mapping) or "preset" not in entry:
        raise ConfigError(f"block {block}: an entry must be a preset or a mapping with `preset`, not {entry!r}")
    unknown = set(entry) - {"preset", "overrides", "grid", "select", "select_preset"}
    if unknown:
        raise ConfigError(
            f"block {block}: unknown entry keys {sorted(unknown)} (preset, overrides, grid, select, select_preset)"
        )
    preset = str(entry["preset"])
    grid = dict(entry.get("grid") or {})
    select = entry.get("select")
    if select is not None and (grid or select not in earlier):
        raise ConfigError(
            f"block {block}: `select: {select}` names the earlier block whose best point of {preset} the entry "
            f"takes, so it needs no grid of its own and a block listed before {block} (earlier: {list(earlier)})."
        )
    select_preset = entry.get("select_preset")
    if select_preset is not None and select is None:
        raise ConfigError(f"block {block}: `select_preset` names the preset of a `select` block; add `select`.")
    overrides = list(entry.get("overrides") or [])
    nested = [o for o in overrides if not isinstance(o, str)]
    if nested:
        raise ConfigError(
            f"block {block}: the overrides of {preset} must be strings key=value, got {nested!r} (a YAML alias inside "
            "a list nests its list there, it does not splice it: write the items out)."
        )
    base = (*shared, *overrides)
    out = []
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values, strict=True))
        point_overrides = tuple(f"{k}={v}" for k, v in point.items())
        name = row_name(preset, point_overrides)
        out.append(_Entry(name, preset, base, point_overrides, select, select_preset and str(select_preset)))
    return out


def expand(spec: Mapping[str, Any], name: str) -> Plan:
    """The ordered runs of a plan mapping (what load_plan reads)."""
    launcher = spec.get("launcher", "solo")
    if launcher not in LAUNCHERS:
        raise ConfigError(f"plan {name}: launcher {launcher!r} is not one of {', '.join(LAUNCHERS)}.")
    pack_size = spec.get("pack_size", 1)
    if not isinstance(pack_size, int) or isinstance(pack_size, bool) or pack_size < 1:
        raise ConfigError(f"plan {name}: pack_size must be a positive integer, got {pack_size!r}.")
    concurrent = spec.get("concurrent_packs", 1)
    if not isinstance(concurrent, int) or isinstance(concurrent, bool) or concurrent < 1:
        raise ConfigError(f"plan {name}: concurrent_packs must be a positive integer, got {concurrent!r}.")
    shared = [str(o) for o in spec.get("overrides") or []]
    where_present = tuple(str(o) for o in spec.get("where_present") or [])
    runs: list[PlannedRun] = []
    blocks: list[str] = []
    keep_last: set[str] = set()
    for block in spec.get("blocks") or []:
        bname = str(block["name"])
        if bname in blocks:
            raise ConfigError(f"plan {name}: block {bname} is listed twice")
        blocks.append(bname)
        seeds = [int(s) for s in block.get("seeds", spec.get("seeds", [0]))]
        if block.get("keep_last"):
            keep_last.add(bname)
        entries = [e for raw in block["runs"] for e in _entry_runs(bname, raw, shared, blocks[:-1])]
        for seed in seeds:
            for e in entries:
                overrides = (*e.base, *e.point, f"trainer.seed={seed}")
                runs.append(
                    PlannedRun(bname, f"{e.name}_seed{seed}", e.preset, overrides, where_present, e.point, e.select,
                               select_preset=e.select_preset)
                )  # fmt: skip
    dirs = [r.rel_dir for r in runs]
    if len(set(dirs)) != len(dirs):
        raise ConfigError(f"plan {name}: two runs share a directory: {sorted({d for d in dirs if dirs.count(d) > 1})}")
    lanes = {
        str(k): tuple(_lane_entry(name, str(k), e, blocks, runs) for e in v)
        for k, v in (spec.get("lanes") or {}).items()
    }
    packed = pack_size if launcher == "packed" else 1
    return Plan(name, launcher, tuple(blocks), tuple(runs), packed, concurrent, lanes, frozenset(keep_last))


def _lane_entry(
    plan: str, lane: str, entry: Any, blocks: Sequence[str], runs: Sequence[PlannedRun]
) -> tuple[str, tuple[int, ...] | None, tuple[str, ...] | None]:
    """One item of a lane's list: a block name (all its runs), or {block, seeds, runs} (those seeds' runs only, and
    only the runs of those names: e.g. the points of a screen that can still win)."""
    if isinstance(entry, Mapping):
        block, seeds, names = entry.get("block"), entry.get("seeds"), entry.get("runs")
    else:
        block, seeds, names = entry, None, None
    if block not in blocks:
        raise ConfigError(f"plan {plan}: lane {lane} names blocks [{block!r}] the plan lacks (blocks: {list(blocks)}).")
    if seeds is not None and not (isinstance(seeds, list) and seeds and all(type(k) is int for k in seeds)):
        raise ConfigError(f"plan {plan}: lane {lane}'s {block} takes seeds as a list of integers, got {seeds!r}.")
    if names is not None:
        known = {r.name for r in runs if r.block == block}
        unknown = [n for n in names if n not in known] if isinstance(names, list) else [names]
        if unknown or not names:
            raise ConfigError(
                f"plan {plan}: lane {lane}'s {block} names runs {unknown or names!r} the block lacks; its runs are "
                f"named like {sorted(known)[:2]} (<preset's name>_<grid point>_seed<k>)."
            )
    return str(block), None if seeds is None else tuple(seeds), None if names is None else tuple(names)


def load_plan(plan: str | Path, seeds: Sequence[int] | None = None, quick: bool = False) -> Plan:
    """A plan by name or file; `seeds` replaces every block's seeds, `quick` applies the plan's `quick` section."""
    from omegaconf import OmegaConf

    path = plan_path(plan)
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PLAN_DIR.glob("*.yaml")))
        raise ConfigError(f"no campaign plan {path}; plans in {PLAN_DIR}: {known}")
    spec = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if quick:
        small = spec.get("quick")
        if not isinstance(small, Mapping):
            raise ConfigError(
                f"plan {path.stem} has no `quick` section ({{overrides: [debug=quick], seeds: [0, 1]}}), so it has no "
                "laptop-sized version: add one, or run it without QUICK."
            )
        spec["overrides"] = [*(spec.get("overrides") or []), *small.get("overrides", [])]
        seeds = seeds if seeds is not None else small.get("seeds")
    if seeds is not None:
        spec["blocks"] = [{**block, "seeds": list(seeds)} for block in spec.get("blocks") or []]
    return expand(spec, path.stem)


def planned_state(records: Path, run: PlannedRun) -> RunState:
    """The state of a planned run's record; `waiting` while its point is still to be chosen and the record is not
    finished: a seed started under an earlier choice (points added to its screen since) resumes only once the screen
    has chosen again, and then only if the choice is the same (the trainer refuses a resume under other settings)."""
    state = run_state(records / run.rel_dir)
    longer = [int(o.split("=", 1)[1]) for o in run.overrides if o.startswith("trainer.max_steps=")]
    grows = growing(records / run.rel_dir, state.status, state.steps, longer[-1]) if longer else None
    if grows is not None:  # a plan that raised the length of a run that kept its last checkpoint (keep_last)
        return grows
    if state.status == Status.MISSING and (start := branch_start(run.overrides)):
        return RunState(Status.MISSING, start, f"a branch: starts at step {start:,}, its source's checkpoint")
    if run.waiting and not state.finished and state.status != Status.RUNNING:
        detail = f"{state.steps:,} steps recorded; " if state.status != Status.MISSING else ""
        return RunState(Status.WAITING, state.steps, f"{detail}waits for {run.select} to choose its point")
    return state


def choose_point(plan: Plan, records: Path, block: str, preset: str) -> PlannedRun | None:
    """The run of `block` whose grid point of `preset` has the highest mean best validation accuracy over its
    completed runs (the first such in plan order on a tie); None while none completed, or while a run is unfinished
    that could still win: one with no validation yet, or whose best so far is within OUT_OF_RUNNING of the leader.
    Test accuracy never enters the choice."""
    runs = [r for r in plan.block_runs(block) if r.preset == preset]
    summaries = [RunDir(records / r.rel_dir).summary() or {} for r in runs]
    if not runs:
        return None
    scores: dict[tuple[str, ...], list[float]] = {}
    first: dict[tuple[str, ...], PlannedRun] = {}
    for run, summary in zip(runs, summaries, strict=True):
        first.setdefault(run.point, run)
        if summary.get("status") == Status.COMPLETED and summary.get("best_val_acc") is not None:
            scores.setdefault(run.point, []).append(float(summary["best_val_acc"]))
    if not scores:
        return None
    best = max(scores, key=lambda p: sum(scores[p]) / len(scores[p]))
    leader = sum(scores[best]) / len(scores[best])
    for summary in summaries:
        so_far = summary.get("best_val_acc")
        if summary.get("status") not in FINISHED and (so_far is None or so_far + OUT_OF_RUNNING >= leader):
            return None
    return first[best]


def resolve(plan: Plan, records: Path) -> Plan:
    """The plan with every selecting run whose screen has finished given its chosen point (see the module doc)."""
    if not any(r.waiting for r in plan.runs):
        return plan
    chosen: dict[tuple[str, str], PlannedRun | None] = {}
    runs = []
    for run in plan.runs:
        if run.waiting:
            key = (run.select, run.select_preset or run.preset)
            if key not in chosen:
                chosen[key] = choose_point(plan, records, *key)
            pick = chosen[key]
            if pick is not None:
                seed = run.overrides[-1]
                run = replace(run, overrides=(*run.overrides[:-1], *pick.point, seed), point=pick.point,
                              chosen=pick.rel_dir)  # fmt: skip
        runs.append(run)
    return replace(plan, runs=tuple(runs))


def compose_run(run: PlannedRun, extra: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """The run's resolved config and the overrides that composed it (its `where_present` ones where they apply)."""
    return compose_where_present(run.preset, run.overrides, run.where_present, extra)


def _may_set_length(override: str) -> bool:
    """Whether an override can change trainer.max_steps: a config group's choice (debug=smoke) or a max_steps key."""
    key = override.split("=", 1)[0].lstrip("+~")
    return "." not in key or key.endswith("max_steps")


def planned_steps(plan: Plan) -> dict[str, int]:
    """trainer.max_steps of every run (rel_dir -> steps), composing once per preset and the overrides that can set
    the length (a grid's lr, eps and seed cannot: the paper plan composes 24 times, not 123)."""
    by_length: dict[tuple, int] = {}
    out = {}
    for run in plan.runs:
        key = (run.preset, tuple(o for o in run.entry_key[1] if _may_set_length(o)))
        if key not in by_length:
            by_length[key] = int(compose(run.preset, list(key[1]))["trainer"]["max_steps"])
        out[run.rel_dir] = by_length[key]
    return out
