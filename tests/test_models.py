"""Cells against a direct, independent implementation of Eq. 12 / Eq. 13 (numpy, column-vector convention)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from antisym.errors import ConfigError
from antisym.models import AblationRNN, AntisymmetricRNN, GatedAntisymmetricRNN, build_model, count_parameters

pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def reference_final_state(name, params, xs, eps, gamma):
    """Eq. 12/13 step by step on one sequence, h_0 = 0, with full matrices built by hand."""
    n = params["b_h"].shape[0]
    w = params["W"] if name == "ablation" else params["W"] - params["W"].T
    a = w - gamma * np.eye(n)
    h = np.zeros(n)
    for x in xs:
        cand = np.tanh(a @ h + params["V_h"] @ x + params["b_h"])
        if name == "asym":
            h = h + eps * cand
        else:
            z = sigmoid(a @ h + params["V_z"] @ x + params["b_z"])
            h = h + eps * z * cand
    return h


def random_params(name, n, m, rng):
    w = rng.normal(size=(n, n))
    params = {
        "W": w if name == "ablation" else np.triu(w, k=1),
        "V_h": rng.normal(size=(n, m)),
        "b_h": rng.normal(size=n),
        "V_z": rng.normal(size=(n, m)),
        "b_z": rng.normal(size=n),
    }
    return params


def load_into(model, name, params):
    """Write hand-made parameters into the model's own parameterisation."""
    cell = model.cell
    n = cell.hidden_size
    with torch.no_grad():
        if name == "ablation":
            cell.weight_hh.copy_(torch.from_numpy(params["W"]))
        else:
            rows, cols = np.triu_indices(n, k=1)
            cell.w_upper.copy_(torch.from_numpy(params["W"][rows, cols]))
        v, b = params["V_h"], params["b_h"]
        if name != "asym":
            v, b = np.concatenate([v, params["V_z"]]), np.concatenate([b, params["b_z"]])
        cell.input_proj.weight.copy_(torch.from_numpy(v))
        cell.input_proj.bias.copy_(torch.from_numpy(b))


@pytest.mark.parametrize("name", ["asym", "gated", "ablation"])
@pytest.mark.parametrize(("eps", "gamma"), [(0.1, 0.01), (1.0, 0.0), (0.01, 1.0)])
def test_cell_matches_direct_equations(name, eps, gamma):
    n, m, T, B = 6, 3, 9, 4
    rng = np.random.default_rng(1)
    model = build_model({"name": name, "hidden_size": n, "eps": eps, "gamma": gamma, "init_std": 1.0}, m, 10)
    params = random_params(name, n, m, rng)
    load_into(model, name, params)
    xs = rng.normal(size=(B, T, m))
    got = model.final_state(torch.from_numpy(xs)).detach().numpy()
    want = np.stack([reference_final_state(name, params, xs[i], eps, gamma) for i in range(B)])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # One step through the RNNCell-like interface, from a non-zero state.
    h0 = rng.normal(size=(B, n))
    step = model.cell(torch.from_numpy(xs[:, 0]), torch.from_numpy(h0)).detach().numpy()
    a = params["W"] - gamma * np.eye(n) if name == "ablation" else params["W"] - params["W"].T - gamma * np.eye(n)
    pre = h0 @ a.T
    cand = np.tanh(pre + xs[:, 0] @ params["V_h"].T + params["b_h"])
    gate = 1.0 if name == "asym" else sigmoid(pre + xs[:, 0] @ params["V_z"].T + params["b_z"])
    np.testing.assert_allclose(step, h0 + eps * gate * cand, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["asym", "gated"])
def test_recurrent_matrix_is_antisymmetric_minus_gamma(name):
    gamma = 0.37
    model = build_model({"name": name, "hidden_size": 7, "eps": 0.1, "gamma": gamma, "init_std": 2.0}, 1, 10)
    a = model.cell.recurrent_matrix().detach()
    np.testing.assert_allclose((a + a.T).numpy(), -2 * gamma * np.eye(7), atol=1e-12)
    assert torch.count_nonzero(a - torch.diag(torch.diagonal(a))) > 0
    eig = torch.linalg.eigvals(a + gamma * torch.eye(7))
    np.testing.assert_allclose(eig.real.numpy(), 0.0, atol=1e-10)


@pytest.mark.parametrize(
    ("name", "n", "m", "expected"),
    [
        ("asym", 128, 1, 9674),
        ("gated", 128, 1, 9930),
        ("lstm", 128, 1, 68362),
        ("asym", 256, 3, 36234),
        ("gated", 256, 3, 37258),
        ("ablation", 196, 3, 41954),
    ],
)
def test_parameter_counts_match_paper(name, n, m, expected):
    euler = {"eps": 0.1, "gamma": 0.01} if name != "lstm" else {}
    model = build_model({"name": name, "hidden_size": n, "init_std": 1.0, **euler}, m, 10)
    assert count_parameters(model) == expected


def test_initialisation_follows_appendix_c():
    torch.manual_seed(0)
    n, m, sigma = 256, 3, 4.0
    model = build_model({"name": "gated", "hidden_size": n, "eps": 0.1, "gamma": 0.01, "init_std": sigma}, m, 10)
    cell = model.cell
    assert abs(cell.w_upper.std().item() - sigma / n**0.5) < 0.02 * sigma / n**0.5
    assert abs(cell.input_proj.weight.std().item() - 1 / m**0.5) < 0.15 / m**0.5
    assert torch.all(cell.input_proj.bias == 0)
    lstm = build_model({"name": "lstm", "hidden_size": 8, "init_std": 1.0}, 1, 10).lstm
    bias = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    assert torch.equal(bias[8:16], torch.ones(8)) and torch.count_nonzero(bias[:8]) == 0
    assert torch.count_nonzero(bias[16:]) == 0


def test_forward_shapes_and_readout():
    for name in ("asym", "gated", "ablation", "lstm"):
        euler = {"eps": 0.1, "gamma": 0.01} if name != "lstm" else {}
        model = build_model({"name": name, "hidden_size": 5, "init_std": 1.0, **euler}, 2, 7)
        x = torch.randn(3, 4, 2)
        assert model(x).shape == (3, 7)
        torch.testing.assert_close(model(x), model.readout(model.final_state(x)))


def test_sequence_loop_unbinds_rather_than_indexes():
    """Indexing u[:, t] gives one SelectBackward per step, each scattering a full (B, T, n) zero gradient: O(T^2)
    backward. The loop must take its steps from a single unbind."""
    model = build_model({"name": "asym", "hidden_size": 4, "eps": 0.1, "gamma": 0.01, "init_std": 1.0}, 1, 10)
    out = model(torch.randn(2, 30, 1)).sum()
    kinds, seen, stack = [], set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        kinds.append(type(fn).__name__)
        stack.extend(f for f, _ in fn.next_functions)
    assert kinds.count("UnbindBackward0") == 1
    assert not [k for k in kinds if k.startswith(("SelectBackward", "SliceBackward"))]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"eps": 0.0}, "eps"),
        ({"gamma": -0.1}, "gamma"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"name": "gru"}, "gru"),
        ({"hidden_size": True}, "hidden_size=True"),
        ({"eps": "abc"}, "model.eps='abc'"),
        ({"eps": float("nan")}, "NaN"),
        ({"eps": float("inf")}, "model.eps=inf"),
        ({"gamma": float("nan")}, "model.gamma=nan"),
        ({"init_std": "abc"}, "model.init_std"),
        ({"impl": "cuda"}, "model.impl"),
        ({"epsilon": 0.1}, "no key.*epsilon"),
    ],
)
def test_invalid_model_values_are_rejected(override, message):
    cfg = {"name": "asym", "hidden_size": 4, "eps": 0.1, "gamma": 0.01, "init_std": 1.0, **override}
    with pytest.raises(ValueError, match=message):
        build_model(cfg, 1, 10)


@pytest.mark.parametrize("cls", [AntisymmetricRNN, GatedAntisymmetricRNN, AblationRNN])
def test_init_reading_takes_appendix_cs_second_argument_as_a_variance_or_a_standard_deviation(cls):
    """Appendix C: V ~ N(0, 1/m), W ~ N(0, sigma_w^2/n). Read as variances (the default) the draws have standard
    deviations 1/sqrt(m) and sigma_w/sqrt(n); read as standard deviations (three public re-implementations), 1/m and
    sigma_w/n. Measured on the drawn weights (tens of thousands of entries: within 3%)."""
    m, n, sigma = 96, 256, 2.0
    torch.manual_seed(0)
    for reading, expected in (("variance", (m**-0.5, sigma * n**-0.5)), ("std", (1 / m, sigma / n))):
        model = cls(m, n, 10, eps=0.01, gamma=0.01, init_std=sigma, init_reading=reading)
        v = model.cell.input_proj.weight.detach()
        w = model.cell.hidden_weight.detach()
        assert float(v.std()) == pytest.approx(expected[0], rel=0.03), reading
        assert float(w.std()) == pytest.approx(expected[1], rel=0.03), reading
        assert not model.cell.input_proj.bias.any()


def test_gate_bias_opens_the_gated_cells_gate_and_is_refused_where_there_is_none():
    """b_z at init is the second half of the projection's bias ([b_h | b_z]); sigmoid(1) ~ 0.73 opens the gate."""
    for cls in (GatedAntisymmetricRNN, AblationRNN):
        model = cls(3, 8, 10, eps=0.01, gamma=0.01, gate_bias=1.0)
        bias = model.cell.input_proj.bias.detach()
        assert torch.equal(bias, torch.cat([torch.zeros(8), torch.ones(8)]))
    with pytest.raises(ConfigError, match="has no gate"):
        AntisymmetricRNN(3, 8, 10, eps=0.01, gamma=0.01, gate_bias=1.0)
