"""hydra/launcher=packed: the sweep's compatible runs trained together, each still an ordinary run directory.

    python train.py -m model.eps=0.01,0.1 model.gamma=0.001,0.01 hydra/launcher=packed hydra.launcher.pack_size=4

Jobs are composed as the basic launcher composes them, grouped by antisym.training.packing (the grouping is logged
before anything trains) and each pack is trained in this process by antisym.training.trainer.run_pack. Every member
writes exactly the files a solo run writes, plus a `pack` record (id, member index, size) in its summary.
"""

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger(__name__)


@dataclass
class PackedLauncherConf:
    _target_: str = "hydra_plugins.antisym_packed_launcher.packed_launcher.PackedLauncher"
    # Runs per pack. 1 by default: on a CPU a pack of R costs R solo runs or more (results/bench_packed_cpu.md), so
    # packing pays only on a GPU, where one run fills a sliver of the device; set it there (e.g. 16).
    pack_size: int = 1


ConfigStore.instance().store(group="hydra/launcher", name="packed", node=PackedLauncherConf, provider="antisym")


class PackedLauncher(Launcher):
    def __init__(self, pack_size: int = 1) -> None:
        super().__init__()
        self.pack_size = int(pack_size)
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        from antisym.training.packing import group_packs
        from antisym.training.trainer import Job, run_pack

        setup_globals()
        assert self.config is not None and self.hydra_context is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs, configs = [], []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            HydraConfig.instance().set_config(sweep_config)  # interpolations below read this job's Hydra config
            run_dir = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
            with read_write(sweep_config.hydra.runtime):
                sweep_config.hydra.runtime.output_dir = str(run_dir)
            task_cfg = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
            jobs.append(Job(OmegaConf.to_container(task_cfg, resolve=True), run_dir, list(overrides)))
            configs.append((sweep_config, task_cfg))
        packs = group_packs([job.cfg for job in jobs], self.pack_size)
        log.info(f"Packed launcher: {len(jobs)} runs in {len(packs)} packs (pack_size {self.pack_size})")
        for k, pack in enumerate(packs):
            log.info(f"\tpack {k}: " + "; ".join(" ".join(filter_overrides(jobs[i].overrides)) for i in pack))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        returns: list[JobReturn | None] = [None] * len(jobs)
        for k, pack in enumerate(packs):
            # The pack's log goes where its first member's would (<run dir>/<job name>.log).
            jobs[pack[0]].run_dir.mkdir(parents=True, exist_ok=True)
            HydraConfig.instance().set_config(configs[pack[0]][0])
            configure_log(configs[pack[0]][0].hydra.job_logging, self.config.hydra.verbose)
            results = run_pack([jobs[i] for i in pack], pack_id=f"{stamp}-{k}")
            for i, result in zip(pack, results, strict=True):
                failed = isinstance(result, BaseException)
                ret = JobReturn(
                    overrides=jobs[i].overrides,
                    cfg=configs[i][1],
                    hydra_cfg=configs[i][0],
                    working_dir=str(Path.cwd()),
                    task_name=str(configs[i][0].hydra.job.name),
                    status=JobStatus.FAILED if failed else JobStatus.COMPLETED,
                )
                ret.return_value = result if failed else result.get("best_val_acc")
                returns[i] = ret
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns  # type: ignore[return-value]
