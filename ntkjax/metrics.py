"""NTK metrics of Mok et al. (CVPR 2022): pure, jittable functions of Θ.

All take a kernel ``[N, N]`` (``sum_logits`` or ``trace`` reduction).

| metric | formula |
| --- | --- |
| ``frobenius_norm`` | ‖Θ‖_F |
| ``mean`` | μ(Θ) = Σ_ij Θ_ij / N² |
| ``negative_condition_number`` | −λmax(Θ)/λmin(Θ) |
| ``label_gradient_alignment`` | ⟨Θ−μ(Θ), L−μ(L)⟩ / (‖Θ−μ(Θ)‖_F ‖L−μ(L)‖_F), L_ij = +1 if y_i = y_j else −1 |
| ``kernel_correlation`` | Pearson correlation of the entries of Θ₀ and Θ_t |
| ``relative_kernel_difference`` | ‖Θ_t−Θ₀‖_F / ‖Θ₀‖_F |

Degenerate kernels. Networks whose output ignores the input (341 NB201
architectures) give Θ = 0 (or a constant matrix when biases are counted).
ntkjax's defaults (``compat='ntkjax'``) give them values that rank them last
and are never NaN: F-Norm and Mean are 0 (their minimum; Θ is PSD so μ ≥ 0),
NCN is −inf for a singular Θ (λmin ≤ 0), LGA is −1 when Θ is constant. With
``compat='paper_code'`` the official code's choices are reproduced: NaN LGA
becomes 1e-4, the condition number is max/min over the *nonzero* eigenvalues
(so a round-off negative eigenvalue can be the minimum), and an all-zero
spectrum gives a condition number of 1e-4, i.e. NCN = −1e-4, which ranks a
dead network near the top.

Overflowed kernels. A kernel with inf/NaN entries (float32 overflow, e.g.
a deep network under N(0, 1) initialisation) has no spectrum: NCN is NaN and
LGA is NaN (in both modes), never an exception. ``ntkjax.stats`` ranks NaN
scores last by default (``nan_policy='last'``), and the experiments report
them, so they never silently enter a correlation.

Eigenvalues are computed in float64 on the host (``jax.pure_callback``), so
the functions stay jittable without enabling x64 globally.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "COMPATS", "frobenius_norm", "mean", "negative_condition_number",
    "label_gradient_alignment", "label_matrix", "kernel_correlation",
    "relative_kernel_difference", "eigvalsh64",
]

COMPATS = ("ntkjax", "paper_code")
PAPER_CODE_FALLBACK = 1e-4


def _check_compat(compat: str) -> None:
  if compat not in COMPATS:
    raise ValueError(f"unknown compat {compat!r}; known: {', '.join(COMPATS)}")


def _check_square(kernel) -> None:
  if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1]:
    raise ValueError(f"expected a square kernel [N, N], got shape {kernel.shape}")


def _max_abs_scale(x: jax.Array) -> jax.Array:
  """max|x| where finite and positive, else 1: dividing by it keeps squares
  of float32 kernels with entries near 1e19 and beyond from overflowing."""
  m = jnp.max(jnp.abs(x))
  return jnp.where(jnp.isfinite(m) & (m > 0), m, jnp.ones_like(m))


def _norm(x: jax.Array) -> jax.Array:
  scale = _max_abs_scale(x)
  return scale * jnp.linalg.norm((x / scale).ravel())


def frobenius_norm(kernel: jax.Array) -> jax.Array:
  """‖Θ‖_F (computed scaled, so it is finite whenever Θ is)."""
  _check_square(kernel)
  return _norm(kernel)


def mean(kernel: jax.Array) -> jax.Array:
  """μ(Θ), the mean of all entries."""
  _check_square(kernel)
  return jnp.mean(kernel)


def eigvalsh64(kernel: jax.Array) -> jax.Array:
  """Ascending eigenvalues of the symmetrised kernel, computed in float64.

  Returned in the kernel's dtype (float64 only where x64 is enabled).
  """
  _check_square(kernel)
  out = jax.ShapeDtypeStruct(kernel.shape[:1], kernel.dtype)
  return jax.pure_callback(lambda k: _eigvalsh_host(k).astype(kernel.dtype), out, kernel)


def _eigvalsh_host(k) -> np.ndarray:
  k = np.asarray(k, np.float64)
  if not np.isfinite(k).all():  # overflowed kernel: no spectrum (LAPACK would fail)
    return np.full(k.shape[:1], np.nan)
  return np.linalg.eigvalsh(0.5 * (k + k.T))


def _ncn_host(k, compat):
  ev = _eigvalsh_host(k)
  if np.isnan(ev).any():
    return np.nan
  if compat == "paper_code":
    nonzero = ev[ev != 0]
    return -(nonzero.max() / nonzero.min()) if nonzero.size else -PAPER_CODE_FALLBACK
  lo, hi = ev[0], ev[-1]
  return -np.inf if lo <= 0 or hi <= 0 else -(hi / lo)


def negative_condition_number(kernel: jax.Array, *, compat: str = "ntkjax") -> jax.Array:
  """NCN = −λmax/λmin ≤ −1; −inf when Θ is singular (see module doc)."""
  _check_square(kernel)
  _check_compat(compat)
  out = jax.ShapeDtypeStruct((), kernel.dtype)
  return jax.pure_callback(lambda k: np.asarray(_ncn_host(k, compat), kernel.dtype), out, kernel)


def label_matrix(labels: jax.Array, dtype=jnp.float32) -> jax.Array:
  """L_ij = +1 if y_i == y_j else −1 (diagonal +1)."""
  labels = jnp.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be a vector of class ids, got shape {labels.shape}")
  return jnp.where(labels[:, None] == labels[None, :], 1.0, -1.0).astype(dtype)


def label_gradient_alignment(kernel: jax.Array, labels: jax.Array, *,
                             compat: str = "ntkjax") -> jax.Array:
  """LGA (eq. 12): alignment of the centred kernel and centred label matrix.

  In [−1, 1] and invariant to scaling Θ. A constant Θ (up to round-off:
  ‖Θ−μ‖_F ≤ 64·eps·‖Θ‖_F) gives −1 (ntkjax) or
  1e-4 (paper_code). If every label is equal, L is constant and LGA is 0
  (ntkjax) or 1e-4 (paper_code).
  """
  _check_square(kernel)
  _check_compat(compat)
  if labels.shape != kernel.shape[:1]:
    raise ValueError(f"labels shape {labels.shape} does not match kernel {kernel.shape}")
  lab = label_matrix(labels, kernel.dtype)
  kernel = kernel / _max_abs_scale(kernel)  # LGA is scale invariant; avoids overflow
  k_c = kernel - jnp.mean(kernel)
  l_c = lab - jnp.mean(lab)
  k_norm, l_norm = jnp.linalg.norm(k_c), jnp.linalg.norm(l_c)
  inner = jnp.sum(k_c * l_c)
  if compat == "paper_code":
    raw = inner / (k_norm * l_norm)
    return jnp.where(jnp.isnan(raw), PAPER_CODE_FALLBACK, raw)
  # "Constant" up to round-off, relative to the kernel's own scale, so the
  # value does not depend on how the kernel is scaled.
  tol = 64 * jnp.finfo(kernel.dtype).eps * jnp.linalg.norm(kernel)
  constant = k_norm <= tol
  safe = inner / jnp.where(constant | (l_norm == 0), 1.0, k_norm * l_norm)
  return jnp.where(l_norm == 0, 0.0, jnp.where(constant, -1.0, jnp.clip(safe, -1.0, 1.0)))


def kernel_correlation(k0: jax.Array, kt: jax.Array) -> jax.Array:
  """Pearson correlation over the entries of two kernels (any equal shape).

  0 when either kernel is constant.
  """
  if k0.shape != kt.shape:
    raise ValueError(f"kernel shapes differ: {k0.shape} vs {kt.shape}")
  a = (k0 - jnp.mean(k0)).ravel()
  b = (kt - jnp.mean(kt)).ravel()
  na, nb = _norm(a), _norm(b)
  ok = (na > 0) & (nb > 0)
  return jnp.where(ok, jnp.sum((a / jnp.where(ok, na, 1.0)) * (b / jnp.where(ok, nb, 1.0))), 0.0)


def relative_kernel_difference(k0: jax.Array, kt: jax.Array, *,
                               elementwise: bool = False, eps: float = 1e-4) -> jax.Array:
  """‖Θ_t−Θ₀‖_F / ‖Θ₀‖_F (paper), or with ``elementwise=True`` the official
  code's ‖ |Θ₀−Θ_t| / (|Θ₀| + eps) ‖_F.

  With Θ₀ = 0 the paper form is +inf (0 if Θ_t = 0 too).
  """
  if k0.shape != kt.shape:
    raise ValueError(f"kernel shapes differ: {k0.shape} vs {kt.shape}")
  diff = kt - k0
  if elementwise:
    return _norm(jnp.abs(diff) / (jnp.abs(k0) + eps))
  num, den = _norm(diff), _norm(k0)
  return jnp.where(den > 0, num / jnp.where(den > 0, den, 1.0), jnp.where(num > 0, jnp.inf, 0.0))
