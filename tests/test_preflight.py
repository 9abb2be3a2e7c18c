"""train.py's check before Hydra starts (antisym/preflight.py): the jobs it counts are the jobs Hydra launches, and
its refusals point at the fix."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from antisym.errors import ConfigError
from antisym.preflight import check_command
from tests.conftest import REPO

# the paper's grid narrowed on the command line: eps 3 x gamma 3 x lr 2 = 18 jobs
FOCUS = ["-m", "experiment=table1/asym_pmnist", "sweep=paper_grid", "optimizer=adagrad", "optimizer.lr=0.1,0.2",
         "model.gamma=0.001,0.01,0.1", "model.init_std=1.0"]  # fmt: skip


def test_a_value_on_the_command_line_replaces_the_sweeps_grid_for_its_key(tmp_path):
    # BasicSweeper: model.eps=0.01 and optimizer.lr=0.1 replace the preset's values for them; gamma's 3 remain.
    fixed = check_command([*FOCUS, "model.eps=0.01", "optimizer.lr=0.1"], str(REPO / "train.py"), "conf", "config")
    assert fixed is not None and fixed.jobs == 3
    # A bad value over a swept key is refused before any job starts (with no data, a job that started would be
    # refused for its files instead, after the grid's values had replaced -1).
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, str(REPO / "train.py"), *FOCUS, "model.eps=-1", "trainer.max_steps=2", "data.download=false",
         f"data.root={tmp_path / 'no_data'}", f"hydra.sweep.dir={sweep}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "A job of this sweep of 6 (" in proc.stderr and "model.eps (Euler step size) must be > 0" in proc.stderr
    assert not sweep.exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["experiment=table1/asym_pmnst"], r"Did you mean experiment=table1/asym_pmnist .*table2: ablation_cifar10"),
        (["optimizer.momentum=0.9"], "not a setting of optimizer=adagrad; optimizer=sgd has momentum"),
        (["model=lstm", "model.eps=0.1"], "not a setting of model=lstm; model=ablation, model=asym, .* have eps"),
        (["optimizer.momentm=0.9"], "Fix the spelling"),  # no optimizer has it: a typo
        (["+experiment=table1/asym_pmnist"], r"give experiment=table1/asym_pmnist, without the \+"),  # the old habit
        (["dataset.max_steps=100"], r"trainer.max_steps holds it \(give trainer.max_steps=100;"),  # a retired key
    ],
)
def test_a_bad_override_is_refused_with_the_fix(tmp_path, overrides, message):
    argv = [*overrides, f"hydra.run.dir={tmp_path / 'run'}"]
    with pytest.raises(ConfigError, match=message) as refused:
        check_command(argv, str(REPO / "train.py"), config_path="conf", config_name="config")
    text = str(refused.value)
    assert "\n" not in text and not (tmp_path / "run").exists()
    assert ("Fix the spelling" in text) == (message == "Fix the spelling"), text


@pytest.mark.parametrize(
    ("argv", "seed"),
    [
        (["+seeds=3"], "3"),  # would compose (older records' key, dropped on reading) and train seed 0
        (["experiment=table1/asym_pmnist", "seeds=3"], "3"),  # the presets' key before plans held the seeds
        (["-m", "experiment=table1/asym_pmnist", "seeds=0,1,2"], "0,1,2"),  # a sweep of jobs that all train seed 0
    ],
)
def test_seeds_on_a_runs_command_line_is_refused_with_trainer_seed(tmp_path, argv, seed):
    with pytest.raises(ConfigError, match=rf"trainer.seed holds it \(give trainer.seed={seed}; -m for several"):
        check_command([*argv, f"hydra.run.dir={tmp_path / 'run'}"], str(REPO / "train.py"), "conf", "config")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("subdir", "shared"),
    [
        ("same", "same"),
        ("${model.gamma}", "0.01"),  # names a key the sweep does not set apart
        ("${model.eps}", None),
        ("${hydra.job.override_dirname}", None),
        ("${hydra.job.num}", None),
    ],
)
def test_a_sweep_whose_jobs_would_share_a_run_directory_is_refused(tmp_path, subdir, shared):
    """The later job would move the earlier's run to superseded/, and the sweep would count both as completed."""
    argv = ["-m", "model.eps=0.01,0.1", f"hydra.sweep.dir={tmp_path / 'sweep'}", f"hydra.sweep.subdir={subdir}"]
    if shared is None:
        assert check_command(argv, str(REPO / "train.py"), "conf", "config").jobs == 2
        return
    refusal = rf"hydra.sweep.subdir={re.escape(subdir)} gives '{shared}' to the job model.eps=0.01 and to the job "
    with pytest.raises(ConfigError, match=refusal + r"model.eps=0.1, and the later would supersede"):
        check_command(argv, str(REPO / "train.py"), "conf", "config")
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["model=asym,gated", "model.eps=0.01,0.1", "optimizer.lr=range(0.1,0.3,0.1)"],
        ["experiment=table1/asym_pmnist", "sweep=paper_grid", "optimizer=adagrad", "model.eps=0.01", "trainer.seed=0"],
        ["model.gamma=0.01,0.1", "optimizer.lr=0.1", "hydra.job.config.override_dirname.exclude_keys=[optimizer.lr]"],
    ],
)
def test_the_grid_and_subdirs_are_those_of_hydras_own_sweeper(tmp_path, argv):
    """The check's own few lines against Hydra's internals (the basic sweeper's product, override_dirname): the
    jobs it checks, in order, with the run directories the launcher gives them."""
    from hydra import initialize_config_dir
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from antisym import preflight

    sweep = [*argv, f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=${hydra.job.override_dirname}"]
    command = check_command(["-m", *sweep], str(REPO / "train.py"), "conf", "config")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        cfg = loader.load_configuration("config", sweep, preflight.RunMode.MULTIRUN)
        params = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
        parsed = OverridesParser.create(config_loader=loader).parse_overrides([*params, *sweep])
        last = list({o.get_key_element(): o for o in parsed}.values())
        hydras = BasicSweeper.split_arguments(last, None)[0]
        assert preflight._grid(last) == hydras and command is not None and command.jobs == len(hydras)
        dirname = cfg.hydra.job.config.override_dirname
        for job in hydras:
            overrides = OverridesParser.create(config_loader=loader).parse_overrides(job)
            expected = get_overrides_dirname(overrides, list(dirname.exclude_keys), dirname.item_sep, dirname.kv_sep)
            assert (
                preflight._override_dirname(overrides, list(dirname.exclude_keys), dirname.item_sep, dirname.kv_sep)
                == expected
            )


def test_config_dir_adds_a_folder_of_configs(tmp_path, monkeypatch):
    """-cd examples/mycell/conf: the example's model composes and is checked, a typo in its keys refused."""
    monkeypatch.syspath_prepend(str(REPO / "examples" / "mycell"))
    argv = ["-cd", str(REPO / "examples" / "mycell" / "conf"), "model=mycell", f"hydra.run.dir={tmp_path / 'run'}"]
    command = check_command([*argv, "data.download=true"], str(REPO / "train.py"), "conf", "config")
    assert command is not None and command.jobs == 1
    with pytest.raises(ConfigError, match="model.hidden_sise.* Fix the spelling"):
        check_command([*argv, "model.hidden_sise=8"], str(REPO / "train.py"), "conf", "config")
    with pytest.raises(ConfigError, match="no such folder"):
        check_command(["-cd", str(tmp_path / "nowhere"), "model=asym"], str(REPO / "train.py"), "conf", "config")


def test_config_dir_and_searchpath_are_checked_in_hydras_order(tmp_path):
    """Hydra reads conf/ first, then --config-dir, then the command's hydra.searchpath: where two have a file, the
    check composes the one Hydra trains (here the -cd folder's valid `mine`, not the search path's invalid one, and
    conf/'s asym over a -cd file of that name)."""
    conf = (REPO / "conf" / "model" / "asym.yaml").read_text()
    first, later = tmp_path / "cd", tmp_path / "searchpath"
    for folder, eps in ((first, "0.5"), (later, "-1.0")):
        (folder / "model").mkdir(parents=True)
        (folder / "model" / "mine.yaml").write_text(conf.replace("eps: 0.01", f"eps: {eps}"))
        (folder / "model" / "asym.yaml").write_text(conf.replace("eps: 0.01", "eps: -1.0"))
    assert "eps: 0.01" in conf
    for model in ("mine", "asym"):
        argv = ["-cd", str(first), f"model={model}", f"hydra.searchpath=[file://{later}]", "data.download=true"]
        command = check_command([*argv, f"hydra.run.dir={tmp_path / 'run'}"], str(REPO / "train.py"), "conf", "config")
        assert command is not None and command.checked is not None
        assert "'eps': 0.5" in command.checked.key if model == "mine" else "'eps': 0.01" in command.checked.key
        shown = subprocess.run([sys.executable, str(REPO / "train.py"), *argv, "--cfg", "job"], cwd=REPO,
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert f"eps: {0.5 if model == 'mine' else 0.01}" in shown.stdout, shown.stderr[-2000:]


@pytest.mark.parametrize("flag", [["--help"], ["--version"], ["--cfg", "job"], ["--info"]])
def test_a_command_that_only_shows_something_is_not_checked(flag):
    """Hydra prints and exits for these: nothing trains, so a bad value (here model.eps=-1) is not refused."""
    assert check_command([*flag, "model.eps=-1"], str(REPO / "train.py"), "conf", "config") is None


def test_a_single_runs_model_is_built_once_by_the_check_and_trained_by_the_run(tmp_path):
    """train.py hands the model the check built to the run (Command.checked): one build a run. It is the model the
    run would have built (same initial weights); a run of other settings builds its own; a sweep hands none."""
    import torch

    from antisym.training.member import check_settings
    from antisym.training.runs import compose

    overrides = ["debug=smoke", "model.hidden_size=8", "data.download=true"]
    command = check_command(
        ["experiment=table1/asym_mnist", *overrides, f"hydra.run.dir={tmp_path / 'run'}"],
        str(REPO / "train.py"), "conf", "config",
    )  # fmt: skip
    assert command is not None and command.checked is not None
    cfg = compose("table1/asym_mnist", overrides)
    assert check_settings(cfg, checked=command.checked)[2] is command.checked.model
    fresh = check_settings(cfg)[2]
    assert fresh is not command.checked.model
    pairs = zip(fresh.state_dict().values(), command.checked.model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    other = compose("table1/asym_mnist", [*overrides, "trainer.seed=1"])
    assert check_settings(other, checked=command.checked)[2] is not command.checked.model
    sweep = check_command(
        ["-m", "experiment=table1/asym_mnist", *overrides, "trainer.seed=0,1", f"hydra.sweep.dir={tmp_path / 's'}"],
        str(REPO / "train.py"), "conf", "config",
    )  # fmt: skip
    assert sweep is not None and sweep.jobs == 2 and sweep.checked is None
