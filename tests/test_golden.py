"""ntkjax agrees with neural-tangents 0.6.5 (goldens from the legacy env)."""

import pathlib

import jax
import numpy as np
import pytest

from ntkjax import ntk
from tests.golden import make_nt_golden

GOLDEN = pathlib.Path(__file__).parent / "golden" / "nt_0.6.5.npz"


@pytest.fixture(scope="module")
def golden():
  return dict(np.load(GOLDEN))


@pytest.mark.parametrize("model", ["cnn", "mlp"])
@pytest.mark.parametrize("trace_name", ["trace", "full"])
@pytest.mark.parametrize("implementation", ["jacobian_contraction", "ntk_vector_products"])
def test_matches_neural_tangents(golden, model, trace_name, implementation):
  apply_fn = {"cnn": make_nt_golden.cnn_apply, "mlp": make_nt_golden.mlp_apply}[model]
  x = golden[f"{model}/x"]
  prefix = f"{model}/params/"
  params = {k[len(prefix):]: v for k, v in golden.items() if k.startswith(prefix)}
  # Inputs come from the file: JAX's PRNG streams changed since 0.4.23.
  assert x.shape == make_nt_golden.make_inputs()[model][2].shape
  fn = jax.jit(ntk.empirical_ntk_fn(
      lambda v, xs, *, train: apply_fn(v["params"], xs),
      reduction=trace_name, normalize_trace=True, vmap_axes=0, implementation=implementation))
  got = np.asarray(fn({"params": params}, x))
  for impl in make_nt_golden.IMPLEMENTATIONS:
    want = golden[f"{model}/ntk/{trace_name}/impl{impl}"]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
