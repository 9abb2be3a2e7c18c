"""The paper's Tables 1 and 2 (Chang et al., ICLR 2019) as data: the rows this suite trains and the numbers beside them.

Values are the paper's, to the digit (Tables 1 and 2 of Chang et al., ICLR 2019, camera-ready version). A row is a
(model, dataset) pair; the table it belongs to follows from the dataset. Successor cells trained as baselines
(`BASELINES`) are rows beside the paper's, with their authors' reported numbers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

METHODS = {
    "asym": "AntisymmetricRNN",
    "gated": "AntisymmetricRNN w/ gating",
    "lstm": "LSTM",
    "ablation": "Ablation model",
    "cornn": "coRNN",
    "lipschitz": "Lipschitz RNN",
}
COLUMNS = {
    "mnist": "MNIST",
    "pmnist": "pMNIST",
    "cifar10": "pixel-by-pixel",
    "noisy_cifar10": "noise padded",
}
TABLE_OF_DATASET = {"mnist": 1, "pmnist": 1, "cifar10": 2, "noisy_cifar10": 2}
DATASETS = {1: ("mnist", "pmnist"), 2: ("cifar10", "noisy_cifar10")}
MODELS = {1: ("lstm", "asym", "gated"), 2: ("lstm", "ablation", "asym", "gated")}
ITERATIONS = {"mnist": 50_000, "pmnist": 50_000, "cifar10": 50_000, "noisy_cifar10": 10_000}
# Data settings the paper states for a task: a run of a paper row trained otherwise is compared, never chosen.
PAPER_TASK = {"noisy_cifar10": {"noise": "independent"}}  # Sec. 5: "independent standard Gaussian noise"
CAPTIONS = {
    1: "Evaluation accuracy on pixel-by-pixel MNIST and permuted MNIST.",
    2: "Evaluation accuracy on pixel-by-pixel CIFAR-10 and noise padded CIFAR-10.",
}


@dataclass(frozen=True)
class PaperRow:
    """One method of a paper table: test accuracy (%) per dataset, units and the "# params" column as printed."""

    method: str
    acc: dict[str, float]
    units: int
    params: str
    note: str = ""


PAPER: dict[int, dict[str, PaperRow]] = {
    1: {
        "lstm": PaperRow(
            "LSTM",
            {"mnist": 97.3, "pmnist": 92.6},
            128,
            "68k",
            "quoted by the paper from Arjovsky et al. (2016), not trained by the authors",
        ),
        "asym": PaperRow("AntisymmetricRNN", {"mnist": 98.0, "pmnist": 95.8}, 128, "10k"),
        "gated": PaperRow("AntisymmetricRNN w/ gating", {"mnist": 98.8, "pmnist": 93.1}, 128, "10k"),
    },
    2: {
        "lstm": PaperRow("LSTM", {"cifar10": 59.7, "noisy_cifar10": 11.6}, 128, "69k"),
        "ablation": PaperRow("Ablation model", {"cifar10": 54.6, "noisy_cifar10": 46.2}, 196, "42k"),
        "asym": PaperRow("AntisymmetricRNN", {"cifar10": 58.7, "noisy_cifar10": 48.3}, 256, "36k"),
        "gated": PaperRow("AntisymmetricRNN w/ gating", {"cifar10": 62.2, "noisy_cifar10": 54.7}, 256, "37k"),
    },
}

# Rows of Table 1 that are other papers' models: shown with the paper's numbers only.
OTHER_ROWS = {
    1: [
        PaperRow("FC uRNN (Wisdom et al., 2016)", {"mnist": 92.8, "pmnist": 92.1}, 116, "16k"),
        PaperRow("FC uRNN (Wisdom et al., 2016)", {"mnist": 96.9, "pmnist": 94.1}, 512, "270k"),
        PaperRow("Soft orthogonal (Vorontsov et al., 2017)", {"mnist": 94.1, "pmnist": 91.4}, 128, "18k"),
        PaperRow("KRU (Jose et al., 2017)", {"mnist": 96.4, "pmnist": 94.5}, 512, "11k"),
    ],
    2: [],
}


# Successor cells trained beside the paper (conf/experiment/baselines/), by table. acc: the test accuracy (%) reported
# for them, each labelled by its source as ../shared/paper.md section 9 names it (the papers' own tables could not be
# read here). units and params: those of the authors' code that our presets copy (conf/experiment/baselines/*.yaml).
# A column without a preset (e.g. coRNN on MNIST) fills from plain runs: python train.py model=cornn dataset=mnist ...
CORNN_SOURCE = (
    "the authors' README (tk-rusch/coRNN, since Dec 2020; its first version, Oct 2020, said psMNIST 97.34 and noise "
    "padded 58.2; LSSL, Gu et al. 2021, Table 1, quotes 99.3 / 96.6)"
)
LIPSCHITZ_SOURCE = (
    "LSSL (Gu et al. 2021, Table 1) and S4's appendix, quoting the paper (secondary; the official README lists none)"
)
LIPSCHITZ_CIFAR_SOURCE = (
    "pixel-by-pixel: LSSL (Gu et al. 2021, Table 1) and S4's appendix (secondary); noise padded: aggregators only "
    "(secondary; the official code has no CIFAR command); units and params of the noise padded preset are our guess"
)
BASELINES: dict[int, dict[str, PaperRow]] = {
    1: {
        "cornn": PaperRow("coRNN (Rusch & Mishra, 2021)", {"mnist": 99.4, "pmnist": 97.3}, 256, "134k", CORNN_SOURCE),
        "lipschitz": PaperRow(
            "Lipschitz RNN (Erichson et al., 2021)", {"mnist": 99.4, "pmnist": 96.3}, 128, "34k", LIPSCHITZ_SOURCE
        ),
    },
    2: {
        "cornn": PaperRow("coRNN (Rusch & Mishra, 2021)", {"noisy_cifar10": 59.0}, 128, "46k", CORNN_SOURCE),
        "lipschitz": PaperRow(
            "Lipschitz RNN (Erichson et al., 2021)",
            {"cifar10": 64.2, "noisy_cifar10": 59.0},
            256,
            "158k",
            LIPSCHITZ_CIFAR_SOURCE,
        ),
    },
}


def preset_name(model: str, dataset: str) -> str:
    """The preset of a row: conf/experiment/table<N>/<model>_<dataset>.yaml (baselines/<model>_<dataset>.yaml)."""
    if model in BASELINES[TABLE_OF_DATASET[dataset]]:
        return f"baselines/{model}_{dataset}"
    return f"table{TABLE_OF_DATASET[dataset]}/{model}_{dataset}"


def table_rows(table: int) -> list[tuple[str, str]]:
    """(model, dataset) of every row of a table that this suite trains, in the paper's order."""
    return [(m, d) for m in MODELS[table] for d in DATASETS[table]]


def baseline_rows(table: int) -> list[tuple[str, str]]:
    """(model, dataset) of every successor-cell row of a table, shown after the paper's rows."""
    return [(m, d) for m in BASELINES[table] for d in DATASETS[table]]


PRESETS = Path(__file__).resolve().parents[2] / "conf" / "experiment"


def preset_file(model: str, dataset: str) -> Path | None:
    path = PRESETS / f"{preset_name(model, dataset)}.yaml"
    return path if path.is_file() else None


@functools.cache
def reference_iterations(model: str, dataset: str) -> int | None:
    """The iterations a run is measured against: the paper's, or for a successor cell its own preset's max_steps
    (None without a preset); a successor is never "short" against the paper's schedule, which it does not follow."""
    if model not in BASELINES.get(TABLE_OF_DATASET.get(dataset, 0), {}):
        return ITERATIONS.get(dataset)
    path = preset_file(model, dataset)
    return int(OmegaConf.load(path).trainer.max_steps) if path else None
