"""Writes neural-tangents 0.6.5 goldens for ntkjax's NTK engine.

Run in the pinned legacy environment (BUILD.md, "Goldens"):

    python tests/golden/make_nt_golden.py --out tests/golden/nt_0.6.5.npz

The models below are plain JAX, written to run unchanged under JAX 0.4.23
and current JAX, so ``tests/test_golden.py`` imports them from this file.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np


def _conv(x, w, b):
  y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + b


def cnn_apply(params, x):
  """Conv-tanh-conv-relu-pool-dense: 4 classes."""
  h = jnp.tanh(_conv(x, params["c1_w"], params["c1_b"]))
  h = jax.nn.relu(_conv(h, params["c2_w"], params["c2_b"]))
  return h.mean(axis=(1, 2)) @ params["d_w"] + params["d_b"]


def mlp_apply(params, x):
  """Two-layer erf MLP: 3 outputs."""
  h = jax.scipy.special.erf(x.reshape(x.shape[0], -1) @ params["w1"] + params["b1"])
  return h @ params["w2"] + params["b2"]


def make_inputs(seed=0):
  """Params and inputs for both models (float32)."""
  k = jax.random.split(jax.random.PRNGKey(seed), 10)
  n = lambda key, shape, s: np.asarray(s * jax.random.normal(key, shape), np.float32)
  cnn = {"c1_w": n(k[0], (3, 3, 2, 4), 0.5), "c1_b": n(k[1], (4,), 0.1),
         "c2_w": n(k[2], (3, 3, 4, 5), 0.4), "c2_b": n(k[3], (5,), 0.1),
         "d_w": n(k[4], (5, 4), 0.5), "d_b": n(k[5], (4,), 0.1)}
  mlp = {"w1": n(k[6], (12, 8), 0.4), "b1": n(k[7], (8,), 0.1),
         "w2": n(k[8], (8, 3), 0.5), "b2": n(k[9], (3,), 0.1)}
  x_cnn = n(jax.random.PRNGKey(seed + 1), (5, 6, 6, 2), 1.0)
  x_mlp = n(jax.random.PRNGKey(seed + 2), (6, 12), 1.0)
  return {"cnn": (cnn_apply, cnn, x_cnn), "mlp": (mlp_apply, mlp, x_mlp)}


TRACE_AXES = {"trace": (-1,), "full": ()}
IMPLEMENTATIONS = (1, 2, 3)  # JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS, STRUCTURED_DERIVATIVES


def main():
  import neural_tangents as nt
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", required=True)
  args = parser.parse_args()
  out = {"versions": np.asarray([f"jax={jax.__version__}", f"neural_tangents={nt.__version__}"])}
  for name, (apply_fn, params, x) in make_inputs().items():
    out[f"{name}/x"] = x
    for key, value in params.items():
      out[f"{name}/params/{key}"] = value
    for trace_name, trace_axes in TRACE_AXES.items():
      for impl in IMPLEMENTATIONS:
        fn = nt.empirical_ntk_fn(apply_fn, trace_axes=trace_axes, vmap_axes=0,
                                 implementation=nt.NtkImplementation(impl))
        jparams = {k: jnp.asarray(v) for k, v in params.items()}  # NT needs jax arrays
        out[f"{name}/ntk/{trace_name}/impl{impl}"] = np.asarray(fn(jnp.asarray(x), None, jparams))
  np.savez(args.out, **out)
  print("wrote", args.out, sorted(k for k in out if "/ntk/" in k))


if __name__ == "__main__":
  main()
