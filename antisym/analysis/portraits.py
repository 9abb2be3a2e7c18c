"""Figures 1 and 3: 2-D trajectories of vanilla and feedback (Euler) RNNs, and the ODE's vector field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from antisym.analysis.dynamics import (
    INITIAL_COLORS,
    INITIAL_STATES,
    W_DIFF,
    W_MINUS,
    W_PLUS,
    W_ZERO,
    gaussian_matrix,
    orthogonal_matrix,
    radii,
    simulate,
    vector_field,
)
from antisym.analysis.style import figure_style

LIM = 1.0


@dataclass(frozen=True)
class Panel:
    letter: str
    title: str
    w: np.ndarray
    feedback: bool


def _fmt_matrix(w: np.ndarray) -> str:
    def num(v: float) -> str:
        return f"{v:.2f}".rstrip("0").rstrip(".").replace("-", "\u2212")

    return "[[" + ", ".join(num(v) for v in w[0]) + "], [" + ", ".join(num(v) for v in w[1]) + "]]"


def _fmt_eigs(w: np.ndarray) -> str:
    lam = np.linalg.eigvals(w)
    parts = []
    for v in lam:
        if abs(v.imag) < 1e-9:
            parts.append(f"{v.real:.2f}")
        else:
            parts.append(f"{v.real:.2f}{'+' if v.imag >= 0 else '−'}{abs(v.imag):.2f}i")
    return "λ = " + ", ".join(parts).replace("-", "−")


def fig1_panels(gaussian_seed: int = 0, reflection_seed: int = 1, rotation_seed: int = 0) -> list[Panel]:
    """The 8 panels of Figure 1 (paper §4.1). Seeds pick matrices of the type each panel's text describes."""
    gauss = gaussian_matrix(gaussian_seed)
    refl, rot = orthogonal_matrix(reflection_seed), orthogonal_matrix(rotation_seed)
    if np.linalg.det(refl) > 0 or np.linalg.det(rot) < 0:
        raise ValueError(
            f"orthogonal seeds give det {np.linalg.det(refl):+.0f} (want -1, reflection) and "
            f"{np.linalg.det(rot):+.0f} (want +1, rotation); choose other seeds"
        )
    return [
        Panel("a", f"random Gaussian W (seed {gaussian_seed})\n{_fmt_eigs(gauss)}", gauss, False),
        Panel("b", "identity W = I\nλ = 1, 1", np.eye(2), False),
        Panel("c", f"random orthogonal W (seed {reflection_seed})\nreflection, det W = −1", refl, False),
        Panel("d", f"random orthogonal W (seed {rotation_seed})\nrotation, det W = +1", rot, False),
        Panel("e", f"W₊ = {_fmt_matrix(W_PLUS)}\n{_fmt_eigs(W_PLUS)}", W_PLUS, True),
        Panel("f", f"W₋ = {_fmt_matrix(W_MINUS)}\n{_fmt_eigs(W_MINUS)}", W_MINUS, True),
        Panel("g", f"W₀ = {_fmt_matrix(W_ZERO)} (antisymmetric)\n{_fmt_eigs(W_ZERO)}", W_ZERO, True),
        Panel("h", f"W_diff = W₀ − 0.15 I (diffusion)\n{_fmt_eigs(W_DIFF)}", W_DIFF, True),
    ]


def draw_trajectories(ax: plt.Axes, traj: np.ndarray, *, star_size: float = 170, dot_size: float = 14) -> None:
    """Dots for steps 1..T, more opaque later; a faint line for the path; stars at the initial states."""
    steps = traj.shape[0] - 1
    alphas = np.linspace(0.12, 1.0, steps)
    for k, color in enumerate(INITIAL_COLORS[: traj.shape[1]]):
        path = traj[:, k]
        ax.plot(path[:, 0], path[:, 1], color=color, lw=0.6, alpha=0.35, zorder=2)
        rgba = np.tile(plt.matplotlib.colors.to_rgba(color), (steps, 1))
        rgba[:, 3] = alphas
        ax.scatter(path[1:, 0], path[1:, 1], s=dot_size, c=rgba, edgecolors="none", zorder=3)
        ax.scatter(*path[0], marker="*", s=star_size, c=color, edgecolors="black", linewidths=0.6, zorder=4)


def _setup_axes(ax: plt.Axes, title: str, *, xlabel: bool, ylabel: bool) -> None:
    ax.set_xlim(-LIM * 1.05, LIM * 1.05)
    ax.set_ylim(-LIM * 1.05, LIM * 1.05)
    ax.set_aspect("equal")
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.set_title(title, fontsize=8.5, loc="left")
    if xlabel:
        ax.set_xlabel("$h_1$")
    if ylabel:
        ax.set_ylabel("$h_2$")


def _legend_handles(steps: int) -> list[Line2D]:
    labels = [f"start ({x:g}, {y:g})" for x, y in INITIAL_STATES]
    handles = [
        Line2D([], [], marker="*", ls="none", ms=11, mfc=c, mec="black", mew=0.6, label=lab)
        for c, lab in zip(INITIAL_COLORS, labels, strict=True)
    ]
    handles.append(
        Line2D([], [], marker="o", ls="none", ms=4, mfc="#555555", mec="none", alpha=0.25, label="early step")
    )
    handles.append(
        Line2D([], [], marker="o", ls="none", ms=4, mfc="#555555", mec="none", label=f"late step (t ≤ {steps})")
    )
    return handles


def plot_fig1(panels: Sequence[Panel], steps: int = 50, eps: float = 0.1, quiver_num: int = 15) -> plt.Figure:
    """Figure 1 layout: row 1 vanilla RNNs (a-d), row 2 feedback RNNs with the ODE's field (e-h)."""
    with figure_style():
        fig, axes = plt.subplots(2, 4, figsize=(15, 8.4))
        for i, (ax, p) in enumerate(zip(axes.ravel(), panels, strict=True)):
            traj = simulate(p.w, steps=steps, feedback=p.feedback, eps=eps)
            if p.feedback:
                xx, yy, uu, vv = vector_field(p.w, LIM, quiver_num)
                ax.quiver(xx, yy, uu, vv, color="#8c8c8c", angles="xy", width=0.004, zorder=1, alpha=0.9)
                ratio = radii(traj[-1]) / radii(traj[0])
                ax.text(
                    0.02, 0.02, r"$|h_T|\,/\,|h_0|$ = " + ", ".join(f"{r:.2f}" for r in ratio),
                    transform=ax.transAxes, fontsize=7.5, color="#333333", zorder=5,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8},
                )  # fmt: skip
            draw_trajectories(ax, traj)
            _setup_axes(ax, f"({p.letter}) {p.title}", xlabel=i >= 4, ylabel=i % 4 == 0)
        fig.text(0.5, 0.985, f"Vanilla RNN:  $h_t = \\tanh(W h_{{t-1}})$,  T = {steps} steps", ha="center", fontsize=11)
        fig.text(
            0.5, 0.505,
            f"RNN with feedback (forward Euler):  $h_t = h_{{t-1}} + \\varepsilon \\tanh(W h_{{t-1}})$,  "
            f"ε = {eps:g},  T = {steps} steps;  grey arrows: vector field of the ODE $h' = \\tanh(W h)$",
            ha="center", fontsize=11,
        )  # fmt: skip
        fig.legend(handles=_legend_handles(steps), loc="lower center", ncol=5, bbox_to_anchor=(0.5, 0.0))
        fig.subplots_adjust(left=0.05, right=0.99, top=0.93, bottom=0.09, wspace=0.22, hspace=0.42)
    return fig


def plot_fig3(seeds: Sequence[int] = tuple(range(1, 17)), steps: int = 50) -> plt.Figure:
    """Figure 3 (Appendix D): vanilla RNNs with standard Gaussian 2x2 weights, one panel per seed (4 x 4 grid)."""
    seeds = list(seeds)
    ncol = 4
    nrow = -(-len(seeds) // ncol)
    with figure_style():
        fig, axes = plt.subplots(nrow, ncol, figsize=(12.5, 3.25 * nrow + 0.9), squeeze=False)
        for i, ax in enumerate(axes.ravel()):
            if i >= len(seeds):
                ax.set_visible(False)
                continue
            w = gaussian_matrix(seeds[i])
            draw_trajectories(ax, simulate(w, steps=steps), star_size=110, dot_size=9)
            _setup_axes(ax, f"seed {seeds[i]}:  {_fmt_eigs(w)}", xlabel=i // ncol == nrow - 1, ylabel=i % ncol == 0)
        fig.suptitle(
            f"Vanilla RNN $h_t = \\tanh(W h_{{t-1}})$ with W ~ N(0, 1) i.i.d. (numpy RandomState(seed).randn(2, 2)), "
            f"T = {steps} steps",
            fontsize=11, y=0.995,
        )  # fmt: skip
        fig.legend(handles=_legend_handles(steps), loc="lower center", ncol=5, bbox_to_anchor=(0.5, 0.0))
        fig.subplots_adjust(left=0.06, right=0.99, top=0.95, bottom=0.07, wspace=0.18, hspace=0.32)
    return fig


__all__ = ["Panel", "draw_trajectories", "fig1_panels", "plot_fig1", "plot_fig3"]
