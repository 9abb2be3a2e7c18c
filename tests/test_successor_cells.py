"""coRNN and Lipschitz RNN against direct per-example, per-step implementations of the papers' equations (float64).

The references use column vectors and full matrices rebuilt from the models' raw parameters, one example at a time;
gradients come from autograd through the reference, so a wrong equation shows up in values and in every gradient.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from antisym.errors import ConfigError
from antisym.models import count_parameters, euler_recurrence
from antisym.models.cells import AntisymmetricCell
from antisym.models.cornn import CoRNNClassifier
from antisym.models.lipschitz import LipschitzRNNClassifier

CONF = Path(__file__).resolve().parents[1] / "conf"
B, T, M, N, C = 4, 7, 3, 5, 6  # odd shapes: batch, steps, inputs, units, classes


pytestmark = pytest.mark.usefixtures("float64")  # tests/conftest.py


def leaves(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the model's parameters that the reference differentiates through."""
    return {k: p.detach().clone().requires_grad_(True) for k, p in model.named_parameters()}


def randomize(model: torch.nn.Module, seed: int) -> None:
    """O(1) parameters, so that tanh is nonlinear and every term of the step matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.7)


def cornn_reference(p, x, h0, dt, gamma, eps, scheme):
    """Rusch & Mishra Eq. 3 (imex) or the public code's step (explicit); one Linear over [u, z, y] as that code."""
    n = p["readout.weight"].shape[1]
    finals, logits = [], []
    for b in range(x.shape[0]):
        y, z = h0[b, :n].reshape(n, 1), h0[b, n:].reshape(n, 1)
        for t in range(x.shape[1]):
            u = x[b, t].reshape(-1, 1)
            pre = p["i2h.weight"] @ torch.cat((u, z, y)) + p["i2h.bias"].reshape(n, 1)
            if scheme == "imex":  # z_n = z + dt (tanh - gamma y - eps z_n), solved for z_n
                z = (z + dt * (torch.tanh(pre) - gamma * y)) / (1 + dt * eps)
            else:
                z = z + dt * (torch.tanh(pre) - gamma * y - eps * z)
            y = y + dt * z
        finals.append(torch.cat((y, z)).reshape(-1))
        logits.append((p["readout.weight"] @ y).reshape(-1) + p["readout.bias"])
    return torch.stack(finals), torch.stack(logits)


def lipschitz_reference(p, x, h0, eps, beta, gamma_a, gamma_w, scheme):
    """Erichson et al.: h' = A h + tanh(W h + U x + b); A, W = (1-beta)(M+M^T) + beta(M-M^T) - gamma I."""
    n = p["m_a"].shape[0]
    eye = torch.eye(n)
    a = (1 - beta) * (p["m_a"] + p["m_a"].T) + beta * (p["m_a"] - p["m_a"].T) - gamma_a * eye
    w = (1 - beta) * (p["m_w"] + p["m_w"].T) + beta * (p["m_w"] - p["m_w"].T) - gamma_w * eye
    finals, logits = [], []
    for b in range(x.shape[0]):
        h = h0[b].reshape(n, 1)
        for t in range(x.shape[1]):
            ux = p["input_proj.weight"] @ x[b, t].reshape(-1, 1) + p["input_proj.bias"].reshape(n, 1)

            def f(h, ux=ux):
                return a @ h + torch.tanh(w @ h + ux)

            if scheme == "euler":
                h = h + eps * f(h)
            elif scheme == "rk2":  # explicit midpoint: torchdiffeq's "midpoint", the official RK2 solver
                h = h + eps * f(h + eps / 2 * f(h))
            else:  # Heun
                k1 = f(h)
                h = h + eps / 2 * (k1 + f(h + eps * k1))
        finals.append(h.reshape(-1))
        logits.append((p["readout.weight"] @ h).reshape(-1) + p["readout.bias"])
    return torch.stack(finals), torch.stack(logits)


def check_against_reference(model, reference, h0) -> None:
    """Final state from h0 (and from the default zeros), logits, and d(loss)/d(every parameter)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, T, M, generator=gen)
    target = torch.randn(B, C, generator=gen)
    p = leaves(model)
    ref_state, ref_logits = reference(p, x, h0)
    torch.testing.assert_close(model.final_state(x, h0), ref_state, rtol=1e-10, atol=1e-12)
    zeros_state, ref_logits0 = reference(p, x, torch.zeros(B, model.state_size))
    torch.testing.assert_close(model.final_state(x), zeros_state, rtol=1e-10, atol=1e-12)
    logits = model(x)
    torch.testing.assert_close(logits, ref_logits0, rtol=1e-10, atol=1e-12)
    (logits * target).sum().backward()
    (ref_logits0 * target).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().max() > 0, name
        torch.testing.assert_close(param.grad, p[name].grad, rtol=1e-9, atol=1e-12, msg=name)
    assert not torch.allclose(ref_state, zeros_state)  # h0 really enters


@pytest.mark.parametrize("scheme", ["imex", "explicit"])
def test_cornn_matches_equations(scheme):
    hp = {"dt": 0.3, "gamma": 1.7, "eps": 2.3}
    model = CoRNNClassifier(M, N, C, scheme=scheme, **hp)
    randomize(model, 0)
    assert (model.hidden_size, model.state_size) == (N, 2 * N)
    h0 = torch.randn(B, 2 * N, generator=torch.Generator().manual_seed(2))
    check_against_reference(model, lambda p, x, h: cornn_reference(p, x, h, scheme=scheme, **hp), h0)


def test_cornn_schemes_differ():
    """The two steps are different models whenever eps > 0 (so a test on one cannot pass for the other)."""
    imex = CoRNNClassifier(M, N, C, dt=0.3, gamma=1.7, eps=2.3, scheme="imex")
    explicit = CoRNNClassifier(M, N, C, dt=0.3, gamma=1.7, eps=2.3, scheme="explicit")
    explicit.load_state_dict(imex.state_dict())
    x = torch.randn(B, T, M)
    assert not torch.allclose(imex.final_state(x), explicit.final_state(x), atol=1e-6)


@pytest.mark.parametrize("scheme", ["euler", "rk2", "heun"])
def test_lipschitz_matches_equations(scheme):
    hp = {"eps": 0.4, "beta": 0.65, "gamma_a": 0.3, "gamma_w": 0.2}
    model = LipschitzRNNClassifier(M, N, C, scheme=scheme, **hp)
    randomize(model, 0)
    assert (model.hidden_size, model.state_size) == (N, N)
    h0 = torch.randn(B, N, generator=torch.Generator().manual_seed(2))
    check_against_reference(model, lambda p, x, h: lipschitz_reference(p, x, h, scheme=scheme, **hp), h0)


def test_lipschitz_reduces_to_antisymmetric_rnn():
    """M_A = 0, gamma_A = 0, beta = 1, gamma_W = gamma, Euler: exactly Eq. 12 with W - W^T = M_W - M_W^T."""
    eps, gamma = 0.3, 0.2
    cell = AntisymmetricCell(M, N, eps=eps, gamma=gamma, init_std=2.0)
    model = LipschitzRNNClassifier(M, N, C, eps=eps, beta=1.0, gamma_a=0.0, gamma_w=gamma, scheme="euler")
    with torch.no_grad():
        w_minus_wt = cell.recurrent_matrix() + gamma * torch.eye(N)
        model.m_w.copy_(torch.triu(w_minus_wt, diagonal=1))  # its strictly upper part U gives U - U^T = W - W^T
        model.m_a.zero_()
        model.input_proj.load_state_dict(cell.input_proj.state_dict())
    gen = torch.Generator().manual_seed(3)
    x, h0 = torch.randn(B, 20, M, generator=gen), torch.randn(B, N, generator=gen)
    expected = euler_recurrence(cell, cell.project(x), h0)
    torch.testing.assert_close(model.final_state(x, h0), expected, rtol=1e-12, atol=1e-12)


def test_official_init_and_parameter_counts():
    torch.manual_seed(0)
    cornn = CoRNNClassifier(1, 256, 10)
    assert count_parameters(cornn) == 134_154  # the authors' code at n=256, m=1: one Linear(m + 2n, n) + readout
    k = 1 / (1 + 2 * 256) ** 0.5  # nn.Linear default: U(-k, k), k = 1/sqrt(fan_in)
    assert cornn.i2h.weight.abs().max() <= k and cornn.i2h.weight.abs().max() > 0.9 * k
    lip = LipschitzRNNClassifier(1, 128, 10, init_std=0.1)
    assert count_parameters(lip) == 34_314
    for m in (lip.m_a, lip.m_w):  # N(0, (init_std / n)^2), not /sqrt(n)
        assert abs(m.std().item() - 0.1 / 128) < 0.05 * 0.1 / 128


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (CoRNNClassifier, {"dt": 0.0}, "model.dt"),
        (CoRNNClassifier, {"gamma": -1.0}, "model.gamma"),
        (CoRNNClassifier, {"eps": -0.1}, "model.eps"),
        (CoRNNClassifier, {"scheme": "rk4"}, "model.scheme"),
        (LipschitzRNNClassifier, {"eps": 0.0}, "model.eps"),
        (LipschitzRNNClassifier, {"beta": 1.5}, "model.beta"),
        (LipschitzRNNClassifier, {"beta": -0.1}, "model.beta"),
        (LipschitzRNNClassifier, {"gamma_a": -0.1}, "model.gamma_a"),
        (LipschitzRNNClassifier, {"gamma_w": -0.1}, "model.gamma_w"),
        (LipschitzRNNClassifier, {"init_std": -1.0}, "model.init_std"),
        (LipschitzRNNClassifier, {"scheme": "imex"}, "model.scheme"),
    ],
)
def test_invalid_hyperparameters_are_config_errors(cls, kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        cls(M, N, C, **kwargs)


def compose_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize(
    ("preset", "cls", "m"),
    [
        ("baselines/cornn_pmnist", CoRNNClassifier, 1),
        ("baselines/cornn_noisy_cifar10", CoRNNClassifier, 96),
        ("baselines/lipschitz_pmnist", LipschitzRNNClassifier, 1),
        ("baselines/lipschitz_noisy_cifar10", LipschitzRNNClassifier, 96),
    ],
)
def test_presets_instantiate(preset, cls, m):
    """Every model key but `name` is a constructor argument, and the step schedule falls inside the run."""
    cfg = compose_cfg(f"experiment={preset}")
    assert cfg.preset.name == preset and cfg.preset.table is None
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    del model_cfg["name"]
    model = instantiate(model_cfg, input_size=m, num_classes=10)
    assert isinstance(model, cls) and model.hidden_size == cfg.model.hidden_size
    assert cfg.trainer.lr_schedule == "step" and 0 < cfg.trainer.lr_decay_steps[0] < cfg.trainer.max_steps
    for name in ("cornn", "lipschitz"):  # the model groups alone, with their defaults
        group = OmegaConf.to_container(compose_cfg(f"model={name}").model)
        del group["name"]
        instantiate(group, input_size=1, num_classes=10)
