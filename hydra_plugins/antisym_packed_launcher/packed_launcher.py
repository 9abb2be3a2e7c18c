"""hydra/launcher=packed: the sweep's compatible runs trained together, each still an ordinary run directory.

    python train.py -m model.eps=0.01,0.1 model.gamma=0.001,0.01 hydra/launcher=packed hydra.launcher.pack_size=4

Jobs are composed as the basic launcher composes them, grouped by antisym.training.runs (the grouping is logged
before anything trains) and each pack is trained by antisym.training.trainer.run_pack: in this process
(backend=local), or as one submitit job per pack (backend=submitit_slurm: one SLURM job, one GPU, R runs;
backend=submitit_local: local processes, the same path without a cluster). Every member writes exactly the files a
solo run writes, plus a `pack` record (id, member index, size) in its summary.
"""

import logging
import sys
import time
from dataclasses import dataclass, field
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
    # Runs per pack, or auto: the measured best for the device the runs train on (AUTO_PACK_SIZE, resolve_pack_size).
    pack_size: Any = "auto"
    backend: str = "local"  # local | submitit_local | submitit_slurm (one submitit job per pack)
    # submitit.AutoExecutor parameters for the submitit backends, e.g. timeout_min, gpus_per_node, cpus_per_task,
    # mem_gb, slurm_partition, slurm_account, slurm_constraint, slurm_setup (conf/hydra/launcher/packed_slurm.yaml).
    submitit: dict[str, Any] = field(default_factory=dict)
    submitit_folder: str = "${hydra.sweep.dir}/.submitit/%j"


BACKENDS = {"local": None, "submitit_local": "local", "submitit_slurm": "slurm"}
# pack_size=auto. CPU: 1, packing does not pay on this project's 2-core CPU (results/bench_packed_cpu.md: packs of 2-32
# at 0.67-1.31x the run-iterations/s of a solo run, within the noise of identical rows). GPU: 16, from the H100 rows of
# results/bench.md (section 5b): fused packs of 16 at 8.1x and of 32 at 8.9x one solo run's run-iterations/s; 16 takes
# 10% less than 32 for half the memory (an eager coRNN pack of 32 at pMNIST keeps ~25 GB of activations).
AUTO_PACK_SIZE = {"cpu": 1, "gpu": 16}
ConfigStore.instance().store(group="hydra/launcher", name="packed", node=PackedLauncherConf, provider="antisym")


class PackedLauncher(Launcher):
    def __init__(
        self,
        pack_size: int | str = "auto",
        backend: str = "local",
        submitit: dict[str, Any] | None = None,
        submitit_folder: str = ".submitit/%j",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"hydra.launcher.backend={backend!r}; choose one of {', '.join(BACKENDS)}.")
        if pack_size != "auto" and not (isinstance(pack_size, int) and pack_size >= 1):
            raise ValueError(f"hydra.launcher.pack_size={pack_size!r}; give a positive integer or auto.")
        self.pack_size = pack_size
        self.backend = backend
        self.submitit = dict(submitit or {})
        self.submitit_folder = submitit_folder
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Any, initial_job_idx: int) -> list[JobReturn]:
        from antisym.errors import UserError
        from antisym.training.runs import group_packs
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
        size, why = resolve_pack_size(self.pack_size, [job.cfg for job in jobs], self.backend, self.submitit)
        packs = group_packs([job.cfg for job in jobs], size)
        log.info(f"Packed launcher: {len(jobs)} runs in {len(packs)} packs (pack_size {size}{why})")
        for k, pack in enumerate(packs):
            log.info(f"\tpack {k}: " + "; ".join(" ".join(filter_overrides(jobs[i].overrides)) for i in pack))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        packed_jobs = [([jobs[i] for i in pack], f"{stamp}-{k}") for k, pack in enumerate(packs)]
        if self.backend == "local":
            outcomes = []
            for (members, pack_id), pack in zip(packed_jobs, packs, strict=True):
                # The pack's log goes where its first member's would (<run dir>/<job name>.log).
                members[0].run_dir.mkdir(parents=True, exist_ok=True)
                HydraConfig.instance().set_config(configs[pack[0]][0])
                configure_log(configs[pack[0]][0].hydra.job_logging, self.config.hydra.verbose)
                outcomes.append(run_pack(members, pack_id=pack_id))
        else:
            outcomes = self._submit(packed_jobs)
        returns: list[JobReturn | None] = [None] * len(jobs)
        for pack, results in zip(packs, outcomes, strict=True):
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
                if isinstance(result, UserError):  # refused: its paragraph here, the sweep then exits 2
                    print(f"error in job {i} ({jobs[i].run_dir}): {result}", file=sys.stderr)
                    result = SystemExit(2)
                ret.return_value = result if failed else result.get("best_val_acc")
                returns[i] = ret
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return returns  # type: ignore[return-value]

    def _submit(self, packed_jobs: list[tuple[list[Any], str]]) -> list[list[Any]]:
        """One submitit job per pack (a SLURM job array on a cluster); waits for them, as Hydra's launchers do."""
        import submitit

        from antisym.training.trainer import run_pack

        executor = submitit.AutoExecutor(folder=self.submitit_folder, cluster=BACKENDS[self.backend])
        executor.update_parameters(**{k: v for k, v in self.submitit.items() if v is not None})
        with executor.batch():
            submitted = [executor.submit(run_pack, members, pack_id) for members, pack_id in packed_jobs]
        log.info(f"Submitted {len(submitted)} packs: " + ", ".join(str(job.job_id) for job in submitted))
        return [job.result() for job in submitted]


def resolve_pack_size(
    pack_size: int | str, cfgs: list[dict[str, Any]], backend: str, submitit: dict[str, Any]
) -> tuple[int, str]:
    """(runs per pack, what decided it for the log). auto: the GPU size where every run trains on a GPU (trainer.device
    cuda, or auto where one is there: this machine for backend=local, a job asking for GPUs for submitit), else 1."""
    if pack_size != "auto":
        return int(pack_size), ""
    if backend == "submitit_slurm":
        gpu_here = bool(submitit.get("gpus_per_node") or submitit.get("slurm_gpus_per_node") or submitit.get("gpus"))
    else:
        import torch

        gpu_here = torch.cuda.is_available()
    devices = {str(cfg.get("trainer", {}).get("device", "auto")) for cfg in cfgs}
    gpu = bool(devices) and all(d.startswith("cuda") or (d == "auto" and gpu_here) for d in devices)
    where = "gpu" if gpu else "cpu"
    return AUTO_PACK_SIZE[where], f": auto, runs on the {where.upper()}"
