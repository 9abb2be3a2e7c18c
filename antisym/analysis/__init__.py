"""Dynamics and Jacobian analysis behind the paper's figures.

- `dynamics`: 2-D vanilla and feedback (Euler) RNN maps and the ODE vector field (Figures 1 and 3), numpy only.
- `jacobian`: exact end-to-end Jacobian dh_T/dh_0 of any `build_model` model, batched over examples, and the
  eigenvalue-modulus statistic of Figure 2 (`jacobian_eigen_stats`, also a training-time metric).
- `portraits`, `spectra`, `style`: the plots (matplotlib, imported only by the figure scripts).
"""

from antisym.analysis.dynamics import simulate, vector_field
from antisym.analysis.jacobian import eigen_moduli, end_to_end_jacobian, jacobian_eigen_stats

__all__ = ["eigen_moduli", "end_to_end_jacobian", "jacobian_eigen_stats", "simulate", "vector_field"]
