"""Dynamics and Jacobian analysis behind the paper's figures.

- `dynamics`: 2-D vanilla and feedback (Euler) RNN maps and the ODE vector field (Figures 1 and 3), numpy only.
- the exact end-to-end Jacobian dh_T/dh_0 and Figure 2's eigenvalue-modulus statistic live in `antisym.models.jacobian`
  (the trainer logs the statistic as a metric, so the model layer holds it); re-exported here for the figures.
- `portraits`, `spectra`, `style`: the plots (matplotlib, imported only by the figure scripts).
"""

from antisym.analysis.dynamics import simulate, vector_field
from antisym.models.jacobian import eigen_moduli, end_to_end_jacobian, jacobian_eigen_stats

__all__ = ["eigen_moduli", "end_to_end_jacobian", "jacobian_eigen_stats", "simulate", "vector_field"]
