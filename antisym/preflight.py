"""Check a train.py command before Hydra starts it: every job composed and its settings checked.

Hydra composes a run's config inside `hydra.main` and reports its own errors with a traceback (exit 1); a bad value
in a sweep would only be found when its job's turn came, after the jobs before it had trained. Here the command is
composed as Hydra will compose it (the same search path, the basic sweeper's grid, `hydra.sweeper.params`) and each
job goes through `check_settings`: a mistyped key, an unknown group option or a bad value is one paragraph and exit 2
before anything is written or trained.

Only Hydra's public API is used (the Compose API's initialisation, the `ConfigLoader` interface, the override
parser), so a Hydra release that moves its internals leaves the check as it is. Two things Hydra does internally are
spelled out here instead, each a few lines: the basic sweeper's cartesian product and `hydra.job.override_dirname`.
`--config-dir D` is checked as `hydra.searchpath=[file://D]`: the same configs, unless D shadows a file of conf/.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import itertools
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra import initialize_config_dir
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.object_type import ObjectType
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from antisym.config import RETIRED_KEYS
from antisym.data.files import check_present
from antisym.data.tasks import task_files
from antisym.errors import ConfigError, RunDirError, UserError

if TYPE_CHECKING:  # torch and the models load once a command composes (_check_job)
    from antisym.training.member import Checked

LOCAL_LAUNCHERS = ("BasicLauncher", "PackedLauncher")  # jobs run on this machine: its data and devices count
_ABSENT = object()  # OmegaConf.select's answer for a key that is not there (None is a value)


@dataclass
class Command:
    """What train.py was asked to do, as Hydra parses its command line."""

    multirun: bool
    jobs: int  # how many jobs it starts (1 for a single run)
    log_dir: Path | None = None  # paths.log_dir as composed, absolute: a refused run removes what it created there
    checked: Checked | None = None  # a single run's model, built by the check: the run trains it (one build a run)


def _one_paragraph(err: BaseException) -> str:
    text = str(err).split("Config search path:")[0]  # Hydra's list of providers says nothing a user can act on
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def nearest_keys(cfg: DictConfig, key: str) -> str:
    """`key` is not in cfg: the closest keys at its level (or the closest sections, where its parent is missing)."""
    parent, _, leaf = key.rpartition(".")
    node: Any = OmegaConf.select(cfg, parent) if parent else cfg
    if not isinstance(node, DictConfig):
        return nearest_keys(cfg, parent) if parent else ""
    names = [str(k) for k in node if parent or k != "hydra"]
    close = difflib.get_close_matches(leaf, names, n=3, cutoff=0.5)
    full = [f"{parent}.{n}" if parent else n for n in close]
    where = f"the keys of {parent}" if parent else "the sections"
    return (f"Did you mean {' or '.join(full)}? " if full else "") + f"({where}: {', '.join(names)})."


def _without(overrides: list[str], key: str) -> list[str]:
    """The overrides but those of `key` (a group or a dotted key, whatever its +/~ prefix)."""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]


def _group_options(loader: ConfigLoader, group: str, config_name: str, overrides: list[str]) -> list[str]:
    """A group's options as a user types them, those in its subfolders too (experiment: table1/asym_pmnist, ...)."""
    names = loader.get_group_options(group, ObjectType.CONFIG, config_name, overrides)
    for sub in loader.get_group_options(group, ObjectType.GROUP, config_name, overrides):
        names += [f"{sub}/{name}" for name in _group_options(loader, f"{group}/{sub}", config_name, overrides)]
    return names


def _missing_option(loader: ConfigLoader, config_name: str, overrides: list[str], path: str, listed: bool) -> str:
    """`group=name` naming no option of its group: the closest options, and all of them where Hydra `listed` none
    (it lists none for a group whose options lie in subfolders, as the presets do)."""
    for override in overrides:
        key, _, name = override.partition("=")
        group = key.lstrip("+~").split("@")[0]
        if f"{group}/{name}" != path:
            continue
        options = _group_options(loader, group, config_name, [o for o in overrides if o != override])
        close = difflib.get_close_matches(name, options, n=3, cutoff=0.5)
        hint = f"Did you mean {' or '.join(f'{key}={c}' for c in close)}? " if close else ""
        return hint + ("" if listed else f"(the options of {group}: {_by_folder(options)}) ")
    return ""


def _by_folder(options: list[str]) -> str:
    """table1: asym_mnist asym_pmnist ...; table2: ... (each folder named once: the 18 presets in a few lines)."""
    folders: dict[str, list[str]] = {}
    for option in options:
        folder, _, name = option.rpartition("/")
        folders.setdefault(folder, []).append(name)
    return "; ".join(f"{folder}: {' '.join(names)}" if folder else " ".join(names) for folder, names in folders.items())


def _has_key(loader: ConfigLoader, config_name: str, overrides: list[str], key: str) -> bool:
    """Whether the config composed with `overrides` has `key` (an option may take keys from its own defaults)."""
    try:
        cfg = loader.load_configuration(config_name, overrides, RunMode.RUN, validate_sweep_overrides=False)
    except (HydraException, OmegaConfBaseException):
        return False
    return OmegaConf.select(cfg, key, default=_ABSENT) is not _ABSENT


def _options_with(loader: ConfigLoader, config_name: str, overrides: list[str], cfg: DictConfig, key: str) -> str:
    """`key` is not in the chosen option of its group (optimizer.momentum with adagrad): the options that have it, as
    "fix the spelling" would send the user after a typo that is not there. "" where no option has it."""
    choices = cfg.hydra.runtime.choices
    parts = key.split(".")
    group = next((g for g in ("/".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)) if g in choices), None)
    if group is None:
        return ""
    rest = _without(overrides, group)
    options = [o for o in _group_options(loader, group, config_name, rest) if o != choices[group]]
    having = [f"{group}={o}" for o in options if _has_key(loader, config_name, [*rest, f"{group}={o}"], key)]
    if not having:
        return ""
    leaf = key[len(group) + 1 :]
    verb = "has" if len(having) == 1 else "have"
    return (
        f"`{key}` is not a setting of {group}={choices[group]}; {', '.join(having)} {verb} {leaf}: choose "
        f"{'it' if len(having) == 1 else 'one'} on the command line, or drop `{key}`."
    )


def _composition_error(loader: ConfigLoader, config_name: str, overrides: list[str], err: BaseException) -> UserError:
    """Hydra's composition errors as one paragraph; a key that is not there gets the options of its group that have
    it, else the nearest keys, not Hydra's advice to add it with `+` (a run refuses keys that its classes do not take);
    an option that is not there gets the nearest options."""
    text = str(err)
    twice = re.search(r"Multiple values for (\S+)\. To override a value use 'override \S+: (\S+)'", text)
    if twice and f"+{twice.group(1)}={twice.group(2)}" in overrides:
        group, option = twice.groups()
        return ConfigError(
            f"`+{group}={option}`: {group} is a group of the defaults list (conf/config.yaml), chosen like model or "
            f"dataset: give {group}={option}, without the +. Nothing was started."
        )
    missing = re.search(r"Could not override '([^']+)'", text)
    if missing and "To append to your config use +" in text:
        key = missing.group(1)
        rest = _without(overrides, key)
        try:
            cfg = loader.load_configuration(config_name, rest, RunMode.RUN, validate_sweep_overrides=False)
            elsewhere = _options_with(loader, config_name, rest, cfg, key)
            hint = nearest_keys(cfg, key)
        except (HydraException, OmegaConfBaseException):
            elsewhere = hint = ""
        if elsewhere:
            return ConfigError(f"{elsewhere} (checked before any job started; nothing was written)")
        return ConfigError(f"`{key}` is not a setting of this config. {hint} Fix the spelling of the override.")
    option = re.search(r"Could not find '([^']+)'", text)
    hint = (
        _missing_option(loader, config_name, overrides, option.group(1), "Available options" in text) if option else ""
    )
    return ConfigError(f"{_one_paragraph(err)} {hint}(checked before any job started; nothing was written)")


@dataclass
class Jobs:
    """A command's jobs: each composition (its config-group choices and fixed values) x every combination of the
    swept values, applied to the composed config (composing once per job would take minutes for the paper grid)."""

    compositions: list[list[str]]
    swept: dict[str, list[Any]]  # plain value keys swept over (model.eps=0.01,0.1): key -> values
    sweep: bool = True  # a multirun: each job has a hydra.sweep.subdir (a run's is "")

    def __len__(self) -> int:
        return len(self.compositions) * math.prod(len(v) for v in self.swept.values())

    def each(self, loader: ConfigLoader, cfg: DictConfig) -> Iterator[tuple[list[str], dict[str, Any], str]]:
        """(what sets the job apart: its swept overrides; its resolved config without the hydra section; its
        hydra.sweep.subdir), by job."""
        parse = OverridesParser.create(config_loader=loader).parse_overrides
        # each swept value with its override, parsed once: a job's override_dirname lists its overrides
        choices = [[(k, v, parse([f"{k}={v}"])[0]) for v in values] for k, values in self.swept.items()]
        num = 0
        for composition in self.compositions:
            fixed = parse(composition)
            apart = [o for o in composition if not all(o in c for c in self.compositions)]
            first = [f"{k}={v[0]}" for k, v in self.swept.items()]
            job_cfg = loader.load_sweep_config(cfg, [*composition, *first])
            with open_dict(job_cfg):
                job_cfg.hydra.job.num = job_cfg.hydra.job.id = 0
            HydraConfig.instance().set_config(job_cfg)  # interpolations that read the Hydra config resolve as in a job
            task = OmegaConf.masked_copy(job_cfg, [k for k in job_cfg if k != "hydra"])
            for picked in itertools.product(*choices):
                job = copy.deepcopy(task)
                for key, value, _ in picked:
                    OmegaConf.update(job, key, value, merge=False)
                    OmegaConf.update(job_cfg, key, value, merge=False)  # the subdir may name it
                subdir = _subdir(job_cfg, [*fixed, *(o for *_, o in picked)], num) if self.sweep else ""
                yield [*apart, *(f"{k}={v}" for k, v, _ in picked)], OmegaConf.to_container(job, resolve=True), subdir
                num += 1


def _subdir(job_cfg: DictConfig, overrides: list[Override], num: int) -> str:
    """hydra.sweep.subdir of job `num`, as the launchers resolve it: with the job's number, id and override_dirname
    (the numbers of the jobs are the launchers', whatever their order here)."""
    dirname = job_cfg.hydra.job.config.override_dirname
    with read_write(job_cfg.hydra), open_dict(job_cfg.hydra):  # read-only since HydraConfig took it
        job_cfg.hydra.job.num = job_cfg.hydra.job.id = num
        job_cfg.hydra.job.override_dirname = _override_dirname(
            overrides, list(dirname.exclude_keys), str(dirname.item_sep), str(dirname.kv_sep)
        )
    return str(OmegaConf.select(job_cfg, "hydra.sweep.subdir"))


def _override_dirname(overrides: list[Override], exclude_keys: list[str], item_sep: str, kv_sep: str) -> str:
    """hydra.job.override_dirname as Hydra spells it: the overrides as typed, less the excluded keys, sorted, joined."""
    lines = sorted(str(o.input_line) for o in overrides if o.key_or_group not in exclude_keys)
    return item_sep.join(lines).replace("=", kv_sep)


def _grid(overrides: list[Override]) -> list[list[str]]:
    """The basic sweeper's jobs: one per combination of the sweeps' values, each override in its place."""
    values = [
        [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
        if o.is_sweep_override()
        else [f"{o.get_key_element()}={o.get_value_element_as_str()}"]
        for o in overrides
    ]
    return [list(job) for job in itertools.product(*values)]


def _jobs(loader: ConfigLoader, cfg: DictConfig, multirun: bool) -> Jobs:
    """The jobs the command starts, as the basic sweeper expands them (one job for a run)."""
    task = [str(o) for o in cfg.hydra.overrides.task]
    if not multirun:
        return Jobs([task], {}, sweep=False)
    if not str(cfg.hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return Jobs([], {})  # another sweeper picks its jobs as it goes: each job is checked when it starts
    params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(params + task)
    # BasicSweeper.split_arguments: the last override of a key replaces the earlier ones in their place, so a value on
    # the command line replaces the sweeper's params for its key (model.eps=0.01 over sweep=paper_grid's).
    last = list({o.get_key_element(): o for o in parsed}.values())
    sweeps = [
        o for o in last
        if o.is_sweep_override() and o.is_discrete_sweep() and o.type == OverrideType.CHANGE and o.package is None
        and not _is_group(loader, o.key_or_group)
    ]  # fmt: skip
    other = next((o for o in last if o.is_sweep_override() and not o.is_discrete_sweep()), None)
    if other is not None:
        raise ConfigError(
            f"`{other.input_line}`: the basic sweeper takes lists of values (a,b,c, choice(...) or range(...)); "
            "interval(...) is for a sampling sweeper (Optuna's, Nevergrad's). List the values. Nothing was started."
        )
    swept = {o.key_or_group: list(o.sweep_iterator()) for o in sweeps}
    return Jobs(_grid([o for o in last if o not in sweeps]), swept)


def _is_group(loader: ConfigLoader, key: str) -> bool:
    """Whether `key` names a config group (model, experiment/table1), whose values choose files, not values."""
    parent, _, leaf = key.rpartition("/")
    return leaf in loader.list_groups(parent)


def _check_retired(overrides: Sequence[str]) -> None:
    """Refuse a key of older code (config.RETIRED_KEYS), naming the one that holds its setting now: `+seeds=3` would
    compose and train trainer.seed 0 as if asked for seed 3; `dataset.max_steps=5` would fail unexplained."""
    for override in overrides:
        key, _, value = override.partition("=")
        successor = RETIRED_KEYS.get(key.lstrip("+~"))
        if successor:
            raise ConfigError(
                f"`{key.lstrip('+~')}` is not a setting any more: {successor} holds it (give {successor}={value}; "
                "-m for several values). Checked before any job started; nothing was written."
            )


def _shared_run_dir(cfg: DictConfig, jobs: int, subdir: str, first: list[str], later: list[str]) -> ConfigError:
    """Two jobs of a sweep in one run directory: the later would move the earlier's run to superseded/ (or resume
    it), and the sweep would count both as trained."""
    pattern = OmegaConf.to_container(cfg.hydra.sweep)["subdir"]  # as given, unresolved
    apart = ", ".join(o.split("=", 1)[0].lstrip("+~") for o in later if o not in first)
    return ConfigError(
        f"Two jobs of this sweep of {jobs} would train in one run directory: hydra.sweep.subdir={pattern} gives "
        f"{subdir!r} to the job {' '.join(first)} and to the job {' '.join(later)}, and the later would supersede "
        f"the earlier's run. Put what sets the jobs apart ({apart}) in the subdir, or use ${{hydra.job.num}} (the "
        "default) or ${hydra.job.override_dirname}. Nothing was started."
    )


def _check_job(task_cfg: dict[str, Any], local: bool) -> Checked:
    from antisym.training.member import Checked, check_settings, model_key  # torch loads once the command composes

    settings, _, model = check_settings(task_cfg, device=local)
    if local and not settings.data.download:
        check_present(settings.data.root, task_files(settings.task))
    return Checked(model_key(settings), model)


def _check_writable(cfg: Any, multirun: bool) -> None:
    """Where the command writes (hydra.run.dir, or a sweep's hydra.sweep.dir) must take files: on a read-only
    folder Hydra's own log setup stops with a traceback before any run could refuse it. The nearest folder that
    exists is asked (the rest would be created in it)."""
    try:
        target = Path(str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)).resolve()
    except (HydraException, OmegaConfBaseException):  # a folder named by what only a job knows: its run checks it
        return
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(
            f"{existing} is read-only (or not writable by this user), so nothing can be written under {target}. "
            "Point the run elsewhere (hydra.run.dir=..., a sweep's hydra.sweep.dir=..., or paths.log_dir=...), or "
            "make the folder writable. Nothing was started."
        )


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as `hydra.main` parses it: its flags (those that only show something included) and the
    overrides."""
    parser = argparse.ArgumentParser(add_help=False, prog="train.py")
    for flag in ("--help -h", "--hydra-help", "--version", "--resolve", "--run -r", "--multirun -m",
                 "--shell-completion -sc"):  # fmt: skip
        parser.add_argument(*flag.split(), action="store_true")
    for flag in ("--cfg -c", "--package -p", "--config-path -cp", "--config-name -cn", "--config-dir -cd",
                 "--experimental-rerun"):  # fmt: skip
        parser.add_argument(*flag.split())
    parser.add_argument("--info", "-i", nargs="?", const="all")
    parser.add_argument("overrides", nargs="*")
    return parser.parse_args(list(argv))


def _config_loader(calling_file: str, config_path: str) -> AbstractContextManager[None]:
    """Hydra initialised on the config folder `hydra.main(config_path=...)` reads (relative to `calling_file`)."""
    folder = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(calling_file)), config_path))
    GlobalHydra.instance().clear()
    return initialize_config_dir(config_dir=folder, job_name=Path(calling_file).stem, version_base="1.3")


def _with_config_dir(overrides: list[str], config_dir: str | None) -> list[str]:
    """`--config-dir D` as the search path entry it adds: Hydra puts it after the app's own configs (conf/ wins where
    both have a file) and before the entries of the command's hydra.searchpath."""
    if config_dir is None:
        return overrides
    if not os.path.isdir(config_dir):
        raise ConfigError(f"--config-dir {config_dir}: no such folder; give the folder of your configs.")
    given = [o for o in overrides if o.split("=", 1)[0] == "hydra.searchpath"]
    entries = [e.strip() for o in given for e in o.split("=", 1)[1].strip("[]").split(",") if e.strip()]
    entries.insert(0, f"file://{os.path.abspath(config_dir)}")
    return [*(o for o in overrides if o not in given), f"hydra.searchpath=[{','.join(entries)}]"]


def check_command(argv: Sequence[str], calling_file: str, config_path: str, config_name: str) -> Command | None:
    """Compose every job of `train.py argv` and check it; raises UserError (one paragraph) for the first bad job.
    None where Hydra only shows something (--help, --version, --cfg, --info, shell completion): there is nothing to
    check."""
    args = _arguments(argv)
    if (args.help or args.hydra_help or args.version or args.cfg or args.info or args.shell_completion
            or args.experimental_rerun):  # fmt: skip
        return None
    _check_retired(args.overrides)
    config_name = args.config_name or config_name
    overrides = _with_config_dir(args.overrides, args.config_dir)
    mode = RunMode.MULTIRUN if args.multirun else RunMode.RUN
    with _config_loader(calling_file, args.config_path or config_path):
        loader = GlobalHydra.instance().config_loader()
        try:
            return _check_jobs(loader, config_name, overrides, mode)
        finally:
            HydraConfig.instance().cfg = None  # type: ignore[assignment]


def _check_jobs(loader: ConfigLoader, config_name: str, overrides: list[str], mode: RunMode) -> Command:
    """check_command's work once Hydra is initialised: compose the command, then each job, and check them."""
    multirun = mode == RunMode.MULTIRUN
    try:
        cfg = loader.load_configuration(config_name, overrides, mode)
        jobs = _jobs(loader, cfg, multirun)
    except (HydraException, OmegaConfBaseException) as err:
        raise _composition_error(loader, config_name, overrides, err) from None
    launcher = str(cfg.hydra.launcher.get("_target_", "")).rsplit(".", 1)[-1]
    local = launcher in LOCAL_LAUNCHERS
    current: list[str] = overrides
    first_in: dict[str, list[str]] = {}  # each job's run directory (a sweep's subdir): the first job in it
    shared: tuple[str, list[str], list[str]] | None = None
    checked = None
    try:
        for job_overrides, task_cfg, subdir in jobs.each(loader, cfg):
            current = job_overrides
            checked = _check_job(task_cfg, local)
            if jobs.sweep and first_in.setdefault(subdir, job_overrides) is not job_overrides:
                shared = (subdir, first_in[subdir], job_overrides)
                break
    except (HydraException, OmegaConfBaseException) as err:
        raise _composition_error(loader, config_name, current, err) from None
    except UserError as err:
        if not multirun:
            raise
        where = f"A job of this sweep of {len(jobs)} ({' '.join(current)})"
        raise type(err)(f"{where}: {err} Nothing was started.") from None
    if shared is not None:
        raise _shared_run_dir(cfg, len(jobs), *shared)
    _check_writable(cfg, multirun)
    log_dir = Path(str(cfg.paths.log_dir)).resolve() if "paths" in cfg else None
    return Command(multirun=multirun, jobs=max(len(jobs), 1), log_dir=log_dir, checked=None if multirun else checked)
