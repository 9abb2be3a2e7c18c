"""2-D dynamics of Figure 1 and Figure 3 (paper Sec. 3 and Appendix D), in numpy.

Two discrete maps without input or bias, with rows of `h` as states (so W h is `h @ W.T`):

- vanilla RNN:   h_t = tanh(W h_{t-1})
- feedback RNN:  h_t = h_{t-1} + eps * tanh(W h_{t-1})   (forward Euler on the ODE h' = tanh(W h))

and the ODE's vector field tanh(W h) on a grid, drawn as a quiver behind the feedback trajectories.
"""

from __future__ import annotations

import numpy as np

#: The paper's three initial states (blue, red, green stars in Figures 1 and 3).
INITIAL_STATES = np.array([[0.0, 0.5], [-0.5, -0.5], [0.5, -0.75]])
INITIAL_COLORS = ("#1f5fbf", "#d62728", "#2ca02c")

#: Figure 1 row 2 matrices (paper Sec. 3.3): eigenvalues 2,2 / -2,-2 / +-2i / -0.15 +- 2i.
W_PLUS = np.array([[2.0, -2.0], [0.0, 2.0]])
W_MINUS = np.array([[-2.0, 2.0], [0.0, -2.0]])
W_ZERO = np.array([[0.0, -2.0], [2.0, 0.0]])
W_DIFF = np.array([[-0.15, -2.0], [2.0, -0.15]])


def simulate(
    w: np.ndarray,
    h0: np.ndarray = INITIAL_STATES,
    steps: int = 50,
    *,
    feedback: bool = False,
    eps: float = 0.1,
) -> np.ndarray:
    """Trajectories (steps + 1, k, d) of the vanilla map (feedback=False) or the Euler/feedback map from k states h0."""
    w = np.asarray(w, dtype=float)
    h = np.array(h0, dtype=float, ndmin=2)
    out = np.empty((steps + 1, *h.shape))
    out[0] = h
    for t in range(1, steps + 1):
        f = np.tanh(h @ w.T)
        h = h + eps * f if feedback else f
        out[t] = h
    return out


def vector_field(w: np.ndarray, lim: float = 1.0, num: int = 15) -> tuple[np.ndarray, ...]:
    """Grid X, Y (num x num over [-lim, lim]^2) and the ODE's velocity U, V = tanh(W h) at every grid point."""
    g = np.linspace(-lim, lim, num)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    vel = np.tanh(pts @ np.asarray(w, dtype=float).T)
    return xx, yy, vel[:, 0].reshape(xx.shape), vel[:, 1].reshape(xx.shape)


def gaussian_matrix(seed: int, dim: int = 2) -> np.ndarray:
    """I.i.d. standard Gaussian entries from numpy's legacy RandomState(seed) (the paper's RNG is not stated)."""
    return np.random.RandomState(seed).randn(dim, dim)


def orthogonal_matrix(seed: int, dim: int = 2) -> np.ndarray:
    """Haar-random orthogonal matrix: QR of a RandomState(seed) Gaussian, columns sign-fixed by diag(R) (Mezzadri).

    With this generator seed 0 gives a rotation (det +1) and seed 1 a reflection (det -1); the paper's generator is
    not stated and its text has the opposite order, so Figure 1 picks seeds by the type the text describes.
    """
    q, r = np.linalg.qr(gaussian_matrix(seed, dim))
    return q * np.sign(np.diag(r))


def radii(traj: np.ndarray) -> np.ndarray:
    """Euclidean norm of every state of a trajectory array (..., d) -> (...)."""
    return np.linalg.norm(traj, axis=-1)


__all__ = [
    "INITIAL_COLORS",
    "INITIAL_STATES",
    "W_DIFF",
    "W_MINUS",
    "W_PLUS",
    "W_ZERO",
    "gaussian_matrix",
    "orthogonal_matrix",
    "radii",
    "simulate",
    "vector_field",
]
