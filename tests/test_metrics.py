import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ntkjax import metrics

FAST = settings(max_examples=40, deadline=None)


def _psd(draw_matrix):
  g = np.asarray(draw_matrix, np.float64)
  k = (g @ g.T).astype(np.float32)
  # XLA:CPU flushes float32 subnormals to zero; the numpy references must see
  # the kernel the device sees (hypothesis found g = [[1.2e-20], [1.2e-20]]).
  k[np.abs(k) < np.finfo(np.float32).tiny] = 0
  return k


grams = hnp.arrays(np.float64, st.tuples(st.integers(2, 7), st.integers(1, 9)),
                   elements=st.floats(-3, 3, allow_nan=False))


@FAST
@given(grams, st.integers(0, 2**31 - 1), st.floats(1e-3, 1e3))
def test_lga_bounded_and_scale_invariant(g, seed, scale):
  k = _psd(g)
  labels = np.random.default_rng(seed).integers(0, 3, size=k.shape[0])
  a = float(metrics.label_gradient_alignment(jnp.asarray(k), jnp.asarray(labels)))
  b = float(metrics.label_gradient_alignment(jnp.asarray(k * np.float32(scale)), jnp.asarray(labels)))
  assert -1.0 <= a <= 1.0 and not np.isnan(a)
  assert abs(a - b) < 1e-4


@FAST
@given(grams)
def test_ncn_at_most_minus_one_and_fnorm_bounds_lambda_max(g):
  k = _psd(g)
  ncn = float(metrics.negative_condition_number(jnp.asarray(k)))
  assert ncn <= -1.0 + 1e-6
  lam_max = np.linalg.eigvalsh(k.astype(np.float64))[-1]
  assert float(metrics.frobenius_norm(jnp.asarray(k))) >= lam_max * (1 - 1e-5)


def test_formulas_against_numpy():
  rng = np.random.default_rng(0)
  g = rng.normal(size=(6, 10))
  k = g @ g.T
  y = np.array([0, 1, 0, 2, 1, 0])
  lab = np.where(y[:, None] == y[None, :], 1.0, -1.0)
  kc, lc = k - k.mean(), lab - lab.mean()
  ev = np.linalg.eigvalsh(k)
  kj = jnp.asarray(k, jnp.float32)
  np.testing.assert_allclose(metrics.frobenius_norm(kj), np.sqrt((k**2).sum()), rtol=1e-5)
  np.testing.assert_allclose(metrics.mean(kj), k.mean(), rtol=1e-5)
  np.testing.assert_allclose(metrics.negative_condition_number(kj), -ev[-1] / ev[0], rtol=1e-4)
  np.testing.assert_allclose(metrics.label_gradient_alignment(kj, jnp.asarray(y)),
                             (kc * lc).sum() / np.linalg.norm(kc) / np.linalg.norm(lc), rtol=1e-5)


def test_metrics_are_jittable():
  k = jnp.eye(4) + 0.1
  y = jnp.array([0, 1, 0, 1])
  f = jax.jit(lambda k, y: (metrics.frobenius_norm(k), metrics.mean(k),
                            metrics.negative_condition_number(k),
                            metrics.label_gradient_alignment(k, y)))
  out = f(k, y)
  assert all(np.isfinite(float(o)) for o in out)


def test_degenerate_kernels_have_defined_values():
  zero = jnp.zeros((5, 5))
  const = jnp.full((5, 5), 3.0)
  y = jnp.array([0, 1, 0, 1, 2])
  assert float(metrics.frobenius_norm(zero)) == 0.0 and float(metrics.mean(zero)) == 0.0
  assert float(metrics.negative_condition_number(zero)) == -np.inf
  assert float(metrics.negative_condition_number(const)) == -np.inf  # rank one
  assert float(metrics.label_gradient_alignment(zero, y)) == -1.0
  assert float(metrics.label_gradient_alignment(const, y)) == -1.0
  assert float(metrics.label_gradient_alignment(jnp.eye(5), jnp.zeros(5, int))) == 0.0
  # The official code's choices.
  assert float(metrics.negative_condition_number(zero, compat="paper_code")) == pytest.approx(-1e-4)
  assert float(metrics.label_gradient_alignment(zero, y, compat="paper_code")) == pytest.approx(1e-4)
  # paper_code: min over nonzero eigenvalues of a singular PSD matrix.
  k = jnp.diag(jnp.array([4.0, 2.0, 0.0]))
  assert float(metrics.negative_condition_number(k, compat="paper_code")) == pytest.approx(-2.0)


def test_kernel_correlation_and_relative_difference():
  rng = np.random.default_rng(1)
  k0 = rng.normal(size=(4, 4)).astype(np.float32)
  kt = k0 * 2 + 1
  assert float(metrics.kernel_correlation(jnp.asarray(k0), jnp.asarray(kt))) == pytest.approx(1.0, abs=1e-6)
  np.testing.assert_allclose(metrics.kernel_correlation(jnp.asarray(k0), jnp.asarray(-k0)), -1.0, atol=1e-6)
  want = np.linalg.norm(kt - k0) / np.linalg.norm(k0)
  np.testing.assert_allclose(metrics.relative_kernel_difference(jnp.asarray(k0), jnp.asarray(kt)), want, rtol=1e-5)
  want_el = np.linalg.norm(np.abs(k0 - kt) / (np.abs(k0) + 1e-4))
  np.testing.assert_allclose(metrics.relative_kernel_difference(jnp.asarray(k0), jnp.asarray(kt), elementwise=True),
                             want_el, rtol=1e-5)
  z = jnp.zeros((3, 3))
  assert float(metrics.kernel_correlation(z, jnp.ones((3, 3)))) == 0.0
  assert float(metrics.relative_kernel_difference(z, jnp.ones((3, 3)))) == np.inf
  assert float(metrics.relative_kernel_difference(z, z)) == 0.0


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match=r"\(3, 4\)"):
    metrics.frobenius_norm(jnp.zeros((3, 4)))
  with pytest.raises(ValueError, match="'torch'"):
    metrics.negative_condition_number(jnp.eye(3), compat="torch")
  with pytest.raises(ValueError, match="labels shape"):
    metrics.label_gradient_alignment(jnp.eye(3), jnp.zeros(4, int))


@pytest.mark.parametrize("compat", ["ntkjax", "paper_code"])
def test_overflowed_kernel_gives_nan_not_an_exception(compat):
  k = jnp.eye(4).at[0, 1].set(jnp.inf).at[1, 0].set(jnp.inf)
  assert np.isnan(float(jax.jit(lambda k: metrics.negative_condition_number(k, compat=compat))(k)))
  assert np.isnan(np.asarray(metrics.eigvalsh64(k))).all()
  lga = metrics.label_gradient_alignment(k, jnp.array([0, 0, 1, 1]), compat=compat)
  assert np.isnan(float(lga)) or compat == "paper_code"  # paper_code maps NaN LGA to 1e-4
  assert float(metrics.frobenius_norm(k)) == np.inf


def test_huge_but_finite_kernels_do_not_overflow():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(8, 8)).astype(np.float32)
  k = a @ a.T
  labels = jnp.array([0, 0, 1, 1, 2, 2, 3, 3])
  big = jnp.asarray(k) * 1e20  # squares overflow float32
  assert float(metrics.frobenius_norm(big)) == pytest.approx(1e20 * float(metrics.frobenius_norm(k)), rel=1e-5)
  assert float(metrics.label_gradient_alignment(big, labels)) == pytest.approx(
      float(metrics.label_gradient_alignment(jnp.asarray(k), labels)), abs=1e-5)
  assert float(metrics.negative_condition_number(big)) == pytest.approx(
      float(metrics.negative_condition_number(jnp.asarray(k))), rel=1e-3)


def test_kernel_comparisons_survive_huge_kernels():
  rng = np.random.default_rng(1)
  k0 = jnp.asarray(rng.normal(size=(6, 6)), jnp.float32)
  kt = k0 + 0.1 * jnp.asarray(rng.normal(size=(6, 6)), jnp.float32)
  for f in (metrics.kernel_correlation, metrics.relative_kernel_difference):
    assert float(f(1e20 * k0, 1e20 * kt)) == pytest.approx(float(f(k0, kt)), rel=1e-4)
