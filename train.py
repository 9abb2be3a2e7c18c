"""Train one configuration: python train.py model=gated dataset=pmnist optimizer=adagrad [key=value ...]

Multirun: python train.py -m model.eps=0.01,0.1,1 model.gamma=0.001,0.01,0.1,1
"""

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from antisym.errors import UserError
from antisym.training import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    try:
        summary = run(cfg, hydra_cfg.runtime.output_dir)
    except UserError as err:
        if hydra_cfg.mode == RunMode.MULTIRUN:
            raise  # Hydra records this job as failed and runs the others
        print(f"error: {err}", file=sys.stderr)  # one paragraph, no traceback: the message says what to change
        sys.exit(2)
    return summary.get("best_val_acc")  # the objective for Hydra sweepers


if __name__ == "__main__":
    main()
