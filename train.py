"""Train one configuration: python train.py model=gated dataset=pmnist optimizer=adagrad [key=value ...]

Multirun: python train.py -m model.eps=0.01,0.1,1 model.gamma=0.001,0.01,0.1,1
"""

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from antisym.training import run


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    summary = run(cfg, HydraConfig.get().runtime.output_dir)
    return summary.get("best_val_acc")  # the objective for Hydra sweepers


if __name__ == "__main__":
    main()
