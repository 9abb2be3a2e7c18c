"""Numerical checks of antisym.analysis (dynamics of Figures 1/3, Jacobians of Figure 2) and smoke runs of the
figure scripts. Reference values come from hand-written formulas and finite differences, not from the code under
test."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from antisym.analysis.dynamics import INITIAL_STATES, W_DIFF, W_MINUS, W_PLUS, W_ZERO, simulate, vector_field
from antisym.models import build_model
from antisym.models.jacobian import end_to_end_jacobian, jacobian_eigen_stats

REPO = Path(__file__).resolve().parents[1]
EULER_MODELS = ("asym", "gated", "ablation")


def _model(name: str, n: int = 6, m: int = 4, *, eps: float = 0.3, gamma: float = 0.05, std: float = 2.0, seed=0):
    torch.manual_seed(seed)
    cfg = {"name": name, "hidden_size": n, "init_std": std, **({"eps": eps, "gamma": gamma} if name != "lstm" else {})}
    model = build_model(cfg, m, 3).double()
    with torch.no_grad():  # non-zero biases so that no term of the hand formulas vanishes by accident
        for p_name, p in model.named_parameters():
            if "bias" in p_name:
                p.normal_(0.0, 0.3)
    return model


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"_antisym_script_{name}", REPO / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------- antisymmetry (Eq. 9)
def test_eigenvalues_of_w_minus_wt_are_purely_imaginary():
    rng = np.random.default_rng(0)
    for n in (2, 7, 64):
        w = rng.normal(size=(n, n)) * 3
        lam = np.linalg.eigvals(w - w.T)
        assert np.abs(lam.real).max() < 1e-10 * max(1.0, np.abs(lam).max())
        assert np.abs(lam.imag).max() > 0.1  # not trivially zero
        # Eq. 9 / Appendix B: diag(tanh') (W - W^T) has purely imaginary eigenvalues too (tanh' in (0, 1]).
        d = 1.0 - np.tanh(rng.normal(size=n) * 2) ** 2
        lam_j = np.linalg.eigvals(np.diag(d) @ (w - w.T))
        assert np.abs(lam_j.real).max() < 1e-9 * max(1.0, np.abs(lam_j).max())


@pytest.mark.parametrize("gamma", [0.0, 0.25])
def test_model_recurrent_matrix_spectrum_has_real_part_minus_gamma(gamma):
    cell = _model("asym", n=9, gamma=gamma, std=4.0).cell
    a = cell.recurrent_matrix().detach().numpy()
    np.testing.assert_allclose(a + a.T, -2 * gamma * np.eye(9), atol=1e-12)
    lam = np.linalg.eigvals(a)
    np.testing.assert_allclose(lam.real, -gamma, atol=1e-9)


# ------------------------------------------------------------------------------------------ 2-D dynamics (Figure 1)
def _hand_loop(w, h, steps, eps=None):
    out = [np.array(h, dtype=float)]
    for _ in range(steps):
        h = out[-1]
        pre = np.array([w[0][0] * h[0] + w[0][1] * h[1], w[1][0] * h[0] + w[1][1] * h[1]])
        out.append(np.tanh(pre) if eps is None else h + eps * np.tanh(pre))
    return np.array(out)


def test_simulate_matches_hand_written_maps():
    w = np.array([[0.3, -1.7], [1.1, 0.4]])
    traj_v = simulate(w, steps=20)
    traj_f = simulate(w, steps=20, feedback=True, eps=0.1)
    assert traj_v.shape == (21, 3, 2)
    for k, h0 in enumerate(INITIAL_STATES):
        np.testing.assert_allclose(traj_v[:, k], _hand_loop(w, h0, 20), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(traj_f[:, k], _hand_loop(w, h0, 20, eps=0.1), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("k", range(3))
def test_w0_euler_trajectory_spirals_outward(k):
    """Paper: with eps = 0.1 the Euler trajectory of W0 (eigenvalues +-2i) is an outward spiral."""
    r = np.linalg.norm(_hand_loop(W_ZERO, INITIAL_STATES[k], 50, eps=0.1), axis=1)
    np.testing.assert_allclose(np.linalg.norm(simulate(W_ZERO, steps=50, feedback=True)[:, k], axis=1), r)
    assert r[-1] > 1.25 * r[0]  # measured: x1.58, x1.44, x1.32
    traj = _hand_loop(W_ZERO, INITIAL_STATES[k], 50, eps=0.1)
    swept = np.unwrap(np.arctan2(traj[:, 1], traj[:, 0]))
    assert swept[-1] - swept[0] > np.pi  # it turns around the origin (counter-clockwise): a spiral, not a ray


@pytest.mark.parametrize("k", range(3))
def test_w_diff_euler_trajectory_keeps_its_radius(k):
    """Paper: with diffusion gamma = 0.15 the Euler trajectory stays at a roughly constant radius."""
    traj = simulate(W_DIFF, steps=50, feedback=True, eps=0.1)[:, k]
    np.testing.assert_allclose(traj, _hand_loop(W_DIFF, INITIAL_STATES[k], 50, eps=0.1), rtol=1e-12)
    ratio = np.linalg.norm(traj, axis=1) / np.linalg.norm(traj[0])
    assert np.all(np.abs(ratio - 1.0) < 0.10)  # at every step; measured range 0.909-1.071 (green start is closest)


def test_w_plus_diverges_and_w_minus_collapses():
    r0 = np.linalg.norm(INITIAL_STATES, axis=1)
    assert np.all(np.linalg.norm(simulate(W_PLUS, steps=50, feedback=True)[-1], axis=1) > 5 * r0)
    assert np.all(np.linalg.norm(simulate(W_MINUS, steps=50, feedback=True)[-1], axis=1) < 1e-3 * r0)


def test_vector_field_is_tanh_of_w_h():
    w = np.array([[0.5, -2.0], [1.5, 0.1]])
    xx, yy, uu, vv = vector_field(w, lim=1.0, num=5)
    assert xx.shape == (5, 5)
    i, j = 1, 3
    x, y = xx[i, j], yy[i, j]
    assert (x, y) == (0.5, -0.5)  # grid is linspace(-1, 1, 5) along each axis, x varying along columns
    np.testing.assert_allclose([uu[i, j], vv[i, j]], np.tanh([0.5 * x - 2.0 * y, 1.5 * x + 0.1 * y]), rtol=1e-12)


# ------------------------------------------------------------------------------------- Jacobians (Eq. 9, Figure 2)
def _hand_matrix(cell) -> torch.Tensor:
    """A = W - W^T - gamma I rebuilt from the stored upper-triangular entries, without `recurrent_matrix()`."""
    n = cell.hidden_size
    w = torch.zeros(n, n, dtype=torch.float64)
    k = 0
    for i in range(n):
        for j in range(i + 1, n):
            w[i, j] = cell.w_upper[k]
            k += 1
    return w - w.T - cell.gamma * torch.eye(n, dtype=torch.float64)


def _hand_one_step(cell, x_t, h) -> torch.Tensor:
    """Eq. 12: I + eps diag(tanh'(a)) A.
    Eq. 13 (gate z): I + eps [diag(z (1 - z) tanh(a_h)) + diag(z tanh'(a_h))] A; input rows [candidate | gate]."""
    n = cell.hidden_size
    a = _hand_matrix(cell)
    u = cell.input_proj.weight @ x_t + cell.input_proj.bias
    c = torch.tanh(a @ h + u[:n])
    if not cell.gated:
        return torch.eye(n, dtype=torch.float64) + cell.eps * torch.diag(1 - c**2) @ a
    z = torch.sigmoid(a @ h + u[n:])
    return torch.eye(n, dtype=torch.float64) + cell.eps * (torch.diag(z * (1 - z) * c) + torch.diag(z * (1 - c**2))) @ a


@pytest.mark.parametrize("name", ["asym", "gated"])
def test_one_step_jacobian_is_identity_plus_eps_diag_tanh_prime_a(name):
    model = _model(name, n=6, m=4, eps=0.3, gamma=0.05)
    x = torch.randn(3, 1, 4, dtype=torch.float64)
    h0 = torch.randn(3, 6, dtype=torch.float64)
    jac = end_to_end_jacobian(model, x, h0)
    with torch.no_grad():
        for i in range(3):
            torch.testing.assert_close(jac[i], _hand_one_step(model.cell, x[i, 0], h0[i]), rtol=1e-10, atol=1e-12)


def _finite_difference_jacobian(model, x, h0, delta=1e-6):
    b, n = h0.shape
    out = torch.zeros(b, n, n, dtype=torch.float64)
    with torch.no_grad():
        for j in range(n):
            e = torch.zeros_like(h0)
            e[:, j] = delta
            out[:, :, j] = (model.final_state(x, h0 + e) - model.final_state(x, h0 - e)) / (2 * delta)
    return out


@pytest.mark.parametrize("name", [*EULER_MODELS, "lstm"])
def test_end_to_end_jacobian_matches_finite_differences(name):
    model = _model(name, n=6, m=4, eps=0.3, gamma=0.05, std=2.0)
    x = torch.randn(3, 9, 4, dtype=torch.float64)
    h0 = 0.5 * torch.randn(3, 6, dtype=torch.float64)
    jac = end_to_end_jacobian(model, x, h0)
    fd = _finite_difference_jacobian(model, x, h0)
    assert jac.shape == (3, 6, 6)
    assert fd.abs().max() > 1e-3  # a non-trivial Jacobian
    torch.testing.assert_close(jac, fd, rtol=1e-6, atol=1e-8)
    # Examples do not mix: example 1 alone gives the same Jacobian as inside the batch.
    torch.testing.assert_close(end_to_end_jacobian(model, x[1:2], h0[1:2])[0], jac[1], rtol=1e-10, atol=1e-12)


def test_jacobian_is_safe_mid_training():
    """Works under no_grad, leaves parameter .grad untouched, and casts a float32 model to float64."""
    torch.manual_seed(1)
    model = build_model({"name": "asym", "hidden_size": 8, "eps": 0.1, "gamma": 0.01, "init_std": 1.0}, 4, 3)
    x = torch.randn(2, 6, 4)
    with torch.no_grad():
        stats = jacobian_eigen_stats(model, x)
    assert set(stats) == {"jac_eig_mean", "jac_eig_std"}
    assert all(p.grad is None for p in model.parameters())
    assert next(model.parameters()).dtype == torch.float32
    assert all(isinstance(v, float) and math.isfinite(v) for v in stats.values())


def _independent_moduli(model, x) -> np.ndarray:
    """|eigenvalues| of dh_T/dh_0 at h_0 = 0 by torch.autograd.functional.jacobian, one example at a time, numpy eig."""
    moduli = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1]

        def h_t(h, xi=xi):
            return model.final_state(xi, h[None])[0]

        jac = torch.autograd.functional.jacobian(h_t, torch.zeros(model.hidden_size, dtype=torch.float64))
        moduli.append(np.abs(np.linalg.eigvals(jac.numpy())))
    return np.concatenate(moduli)


@pytest.mark.parametrize("name", ["gated", "lstm"])
def test_jacobian_eigen_stats_match_independent_computation(name):
    model = _model(name, n=7, m=4, eps=0.5, gamma=0.2, std=1.5, seed=3)
    x = torch.randn(4, 12, 4, dtype=torch.float64)
    stats = jacobian_eigen_stats(model, x)
    moduli = _independent_moduli(model, x)
    assert stats["jac_eig_mean"] == pytest.approx(moduli.mean(), rel=1e-8)
    assert stats["jac_eig_std"] == pytest.approx(moduli.std(), rel=1e-6)


def test_diffusion_shrinks_jacobian_eigenvalues():
    """Eq. 12: larger gamma means more contraction, so |lambda| of dh_T/dh_0 falls with gamma (same weights)."""
    x = torch.randn(4, 30, 4, dtype=torch.float64)
    means = []
    for gamma in (0.0, 1.0, 5.0):
        model = _model("asym", n=8, m=4, eps=0.1, gamma=gamma, std=1.0, seed=5)
        means.append(jacobian_eigen_stats(model, x)["jac_eig_mean"])
    assert means[0] > means[1] > means[2]
    assert means[2] < 1e-3


# ------------------------------------------------------------------------------------------------- figure scripts
def _check_outputs(paths, out, name):
    assert {p.name for p in paths} == {f"{name}.png", f"{name}.pdf", f"{name}.json"}
    assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    meta = json.loads((out / f"{name}.json").read_text())
    for key in ("git_commit", "date_utc", "device", "settings", "wall_time_s"):
        assert key in meta
    return meta


def test_fig1_script_tiny(tmp_path):
    paths = _script("fig1").main(["--out", str(tmp_path), "--steps", "5"])
    meta = _check_outputs(paths, tmp_path, "fig1")
    assert meta["settings"]["steps"] == 5
    assert meta["matrices"]["g"] == W_ZERO.tolist()
    assert len(meta["matrices"]) == 8


def test_fig3_script_tiny(tmp_path):
    paths = _script("fig3").main(["--out", str(tmp_path), "--steps", "4", "--seeds", "1", "2", "3"])
    meta = _check_outputs(paths, tmp_path, "fig3")
    assert sorted(meta["matrices"]) == ["1", "2", "3"]


def test_fig2_script_tiny_at_init(tmp_path):
    argv = ["--out", str(tmp_path), "--synthetic", "--lengths", "8", "12", "--gammas", "0.01", "5",
            "--hidden", "6", "--lstm-hidden", "4", "--batch", "2"]  # fmt: skip
    meta = _check_outputs(_script("fig2").main(argv), tmp_path, "fig2")
    assert any("SYNTHETIC" in s for s in meta["inputs"])
    pts = meta["points"]
    assert len(pts) == 2 * 3 and {p["seq_len"] for p in pts} == {8, 12}
    assert all(p["count"] == 2 * (4 if p["series"] == "LSTM" else 6) for p in pts)


def _fake_run(run: Path, model_cfg: dict, seq_len: int, seed: int, named: str | None = None) -> torch.nn.Module:
    """A run folder saved per the trainer's contract (Hydra's config, a best checkpoint of moved weights); `named`:
    the class its config names in place of the one built (built here without importing it)."""
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    named_cfg = {**model_cfg, "_target_": named} if named else model_cfg
    cfg = {"model": named_cfg, "dataset": {"name": "noisy_cifar10", "seq_len": seq_len, "noise": "independent"}}
    OmegaConf.save(OmegaConf.create(cfg), run / ".hydra" / "config.yaml")
    torch.manual_seed(seed)
    model = build_model(model_cfg, 96, 10)
    with torch.no_grad():  # move the weights away from any fresh initialisation
        for p in model.parameters():
            p.mul_(1.7).add_(0.05)
    torch.save({"model": model.state_dict(), "step": 7}, run / "checkpoints" / "best.pt")
    return model


def test_fig2_script_from_checkpoints(tmp_path):
    """A fake sweep of two runs saved per the trainer's contract; the figure must use the saved weights."""
    sweep = tmp_path / "sweep"
    saved = {}
    for k, (name, n, seq_len) in enumerate([("asym", 5, 34), ("lstm", 4, 36)]):
        euler = {"eps": 0.2, "gamma": 0.1} if name != "lstm" else {}
        model_cfg = {"name": name, "hidden_size": n, "init_std": 1.0, **euler}
        saved[seq_len] = _fake_run(sweep / str(k), model_cfg, seq_len, 100 + k).double()
    out = tmp_path / "fig"
    argv = ["--sweep", str(sweep), "--synthetic", "--batch", "2", "--out", str(out)]
    meta = _check_outputs(_script("fig2").main(argv), out, "fig2")
    pts = {p["seq_len"]: p for p in meta["points"]}
    assert set(pts) == {34, 36} and pts[36]["series"] == "LSTM"
    assert set(meta["runs"]) == {str(sweep / "0"), str(sweep / "1")}  # what it was drawn from, on record
    from antisym.analysis.spectra import noisy_cifar_inputs

    for seq_len, model in saved.items():
        x, _ = noisy_cifar_inputs(seq_len, 2, None, seed=0)
        moduli = _independent_moduli(model, x.double())
        assert pts[seq_len]["mean"] == pytest.approx(moduli.mean(), rel=1e-8)
        assert pts[seq_len]["std"] == pytest.approx(moduli.std(), rel=1e-6)


def test_fig2_builds_a_class_a_run_names_from_elsewhere_only_where_allowed(tmp_path, shipped_class):
    """A record is data: a run whose config names a module shipped beside it is refused, and nothing of it runs,
    unless the user names the class (--allow-target)."""
    target, marker = shipped_class
    sweep, out = tmp_path / "sweep", tmp_path / "fig"
    _fake_run(sweep / "0", {"name": "asym", "hidden_size": 4, "eps": 0.2, "gamma": 0.1}, 34, 0, named=target)
    argv = ["--sweep", str(sweep), "--synthetic", "--batch", "2", "--out", str(out)]
    with pytest.raises(SystemExit, match=rf"model._target_={target}.*--allow-target {target}"):
        _script("fig2").main(argv)
    assert not marker.exists() and not out.exists()
    meta = _check_outputs(_script("fig2").main([*argv, "--allow-target", target]), out, "fig2")
    assert marker.exists() and [p["seq_len"] for p in meta["points"]] == [34]


def test_fig2_inputs_are_the_training_task(tiny_data):
    """Figure 2 reads noise-padded CIFAR-10 through the training loader: test image rows, then N(0, 1) noise."""
    from antisym.analysis.spectra import noisy_cifar_inputs

    root, arrays = tiny_data
    x, source = noisy_cifar_inputs(40, 2, root)
    assert x.shape == (2, 40, 96) and "build_task" in source
    img = arrays["cifar_test"][:2].astype(np.float32) / 255  # (2, 32, 32, 3)
    # step t, feature 32*c + col = channel c, row t, column col (the config's default row_order=channels)
    for t, c, col in [(0, 0, 0), (5, 1, 17), (31, 2, 31)]:
        assert x[1, t, 32 * c + col].item() == pytest.approx(img[1, t, col, c])
    noise = x[:, 32:]
    assert abs(noise.mean().item()) < 0.2 and 0.8 < noise.std().item() < 1.2
