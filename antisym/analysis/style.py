"""One figure style for the project, and saving a figure with a record of how it was made (antisym.provenance).

Every figure goes to `<out_dir>/<name>.png` and `.pdf`, with a sidecar `<name>.json` holding the provenance (git
commit, date, device, settings, wall time, library versions) and a one-line footer with the same essentials.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # figures are files; never open a window (scripts run headless and under pytest)

import matplotlib.pyplot as plt  # noqa: E402

from antisym.training.rundir import atomic_write_bytes, atomic_write_text  # noqa: E402

#: ggplot-like: grey panel, white grid, no spines (the paper's Figure 1 look), with readable sizes.
RC = {
    "axes.facecolor": "#EBEBEB",
    "axes.edgecolor": "white",
    "axes.grid": True,
    "axes.axisbelow": True,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.spines.left": False,
    "axes.spines.bottom": False,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "grid.color": "white",
    "grid.linewidth": 0.9,
    "xtick.color": "#444444",
    "ytick.color": "#444444",
    "xtick.labelsize": 8.5,
    "ytick.labelsize": 8.5,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "figure.facecolor": "white",
    "savefig.dpi": 150,
    "font.size": 10,
}


@contextmanager
def figure_style() -> Iterator[None]:
    with plt.rc_context(RC):
        yield


def footer_text(meta: Mapping[str, Any]) -> str:
    commit = (meta.get("git_commit") or "unknown")[:10] + ("+dirty" if meta.get("git_dirty") else "")
    return (
        f"{meta['script']} | commit {commit} | {meta['date_utc']} | {meta['device']} | wall {meta['wall_time_s']:.0f} s"
    )


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str, meta: Mapping[str, Any]) -> list[Path]:
    """Write <name>.png, <name>.pdf and <name>.json (provenance + any extra data in `meta`); returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Below everything already drawn; bbox_inches="tight" grows the canvas to include it.
    y_bottom = fig.get_tightbbox(fig.canvas.get_renderer()).y0 / fig.get_figheight()
    fig.text(0.995, y_bottom - 0.004, footer_text(meta), ha="right", va="top", fontsize=6.5, color="#777777")
    paths = [out / f"{name}.png", out / f"{name}.pdf", out / f"{name}.json"]
    for path in paths[:2]:  # whole or not at all, as the tables beside them (two lanes may rebuild them at once)
        image = io.BytesIO()
        fig.savefig(image, format=path.suffix[1:], bbox_inches="tight")
        atomic_write_bytes(path, image.getvalue())
    atomic_write_text(paths[2], json.dumps(meta, indent=2, default=str) + "\n")
    plt.close(fig)
    return paths


__all__ = ["RC", "figure_style", "footer_text", "save_figure"]
