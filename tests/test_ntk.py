import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from jax.flatten_util import ravel_pytree

from ntkjax import ntk
from ntkjax.spaces import nb201
from tests.helpers import ARCHS, explicit_ntk, nb201_setup, tiny_net


def _explicit_ntk64(net, v, x, ops, bn, reduction, param_filter=None):
  """Reference: the full Jacobian of the batched network in float64."""
  with jax.enable_x64(True):
    v64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), v)
    x64 = jnp.asarray(x, jnp.float64)
    flat = traverse_util.flatten_dict(v64["params"])
    keep = {k: a for k, a in flat.items() if param_filter is None or param_filter(k)}
    theta, unravel = ravel_pytree(keep)

    def f(t):
      params = traverse_util.unflatten_dict({**flat, **unravel(t)})
      return net.apply({**v64, "params": params}, x64, ops, train=bn == "train",
                       mutable=["batch_stats"])[0]
    jac = np.asarray(jax.jit(jax.jacrev(f))(theta))  # [N, C, P]; jitted: eagerly it compiles op by op
  if reduction == "sum_logits":
    g = jac.sum(1)
    return g @ g.T
  if reduction == "trace":
    return np.einsum("icp,jcp->ij", jac, jac)
  return np.einsum("iap,jbp->ijab", jac, jac)


@pytest.mark.parametrize("impl", ["jacobian_contraction", "ntk_vector_products"])
@pytest.mark.parametrize("bn", ["eval", "train"])
@pytest.mark.parametrize("reduction", ntk.REDUCTIONS)
def test_matches_explicit_float64_jacobian(impl, bn, reduction):
  net, v, x = tiny_net()
  want = explicit_ntk(net, v, x, bn, reduction)
  with jax.enable_x64(True):
    v64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), v)
    fn = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, reduction=reduction, implementation=impl))
    got64 = np.asarray(fn(v64, jnp.asarray(x, jnp.float64)))
  np.testing.assert_allclose(got64, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
  for chunk in (None, 2):
    fn32 = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, reduction=reduction, implementation=impl, chunk_size=chunk))
    got32 = np.asarray(fn32(v, x))
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.slow
@pytest.mark.parametrize("variant", nb201.VARIANTS)
@pytest.mark.parametrize("bn", ["eval", "train"])
def test_nb201_matches_explicit_float64_jacobian(variant, bn):
  net, v, x, ops = nb201_setup(variant)
  want = _explicit_ntk64(net, v, x, ops, bn, "sum_logits")
  got = jax.jit(ntk.empirical_ntk_fn(net, bn=bn))(v, x, ops)
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


@pytest.mark.parametrize("bn", ["eval", "train"])
def test_normalize_trace_divides_by_num_classes(bn):
  net, v, x = tiny_net()  # three classes
  raw = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, reduction="trace"))(v, x)
  norm = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, reduction="trace", normalize_trace=True))(v, x)
  np.testing.assert_allclose(norm * 3, raw, rtol=1e-6)
  full = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, reduction="full"))(v, x)
  np.testing.assert_allclose(jnp.trace(full, axis1=2, axis2=3), raw, rtol=1e-5)


def test_coupling_is_read_from_the_network():
  """Train BN couples samples; a forced per-sample vmap would be wrong."""
  net, v, x = tiny_net()
  exact = jax.jit(ntk.empirical_ntk_fn(net, bn="train"))(v, x)
  wrong = jax.jit(ntk.empirical_ntk_fn(net, bn="train", vmap_axes=0))(v, x)
  assert np.abs(np.asarray(exact - wrong)).max() > 1e-3 * np.abs(np.asarray(exact)).max()
  np.testing.assert_allclose(exact, explicit_ntk(net, v, x, "train", "sum_logits"), rtol=1e-4)


@pytest.mark.slow
def test_paper_code_cells_couple_samples_in_eval_mode():
  """paper_code cells use batch stats even in eval mode: coupled there too."""
  pnet, pv, x, ops = nb201_setup("paper_code")
  exact = jax.jit(ntk.empirical_ntk_fn(pnet, bn="eval"))(pv, x, ops)
  wrong = jax.jit(ntk.empirical_ntk_fn(pnet, bn="eval", vmap_axes=0))(pv, x, ops)
  assert np.abs(np.asarray(exact - wrong)).max() > 1e-3 * np.abs(np.asarray(exact)).max()
  want = _explicit_ntk64(pnet, pv, x, ops, "eval", "sum_logits")
  np.testing.assert_allclose(exact, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
  assert pnet.couples_samples(False) and not nb201.Network(C=4, N=1).couples_samples(False)


@pytest.mark.slow
def test_paper_code_param_filter_selects_weights_without_classifier():
  net, v, x, ops = nb201_setup()
  got = jax.jit(ntk.empirical_ntk_fn(net, param_filter="paper_code"))(v, x, ops)
  want = _explicit_ntk64(net, v, x, ops, "eval", "sum_logits", ntk.paper_code_filter)
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
  chosen, frozen = ntk.split_params(v["params"], ntk.paper_code_filter)
  assert all(k[-1] in ("kernel", "scale") and k[0] != "classifier" for k in chosen)
  assert ("classifier", "kernel") in frozen and ("stem_bn", "bias") in frozen
  with pytest.raises(ValueError, match="'weights'"):
    ntk.empirical_ntk_fn(net, param_filter="weights")


@pytest.mark.slow  # 27 s; the structured tests' random-arch checks cover masked edges in the fast set too
def test_inactive_ops_get_exactly_zero_gradient_and_do_not_change_the_ntk():
  net, v, x, ops = nb201_setup()
  grads = jax.jit(jax.grad(lambda p: net.apply({**v, "params": p}, x, jnp.asarray(ops)).sum()))(v["params"])
  live = 0
  for path, g in traverse_util.flatten_dict(grads).items():
    if path[0].startswith("cell_"):
      edge = int(path[1].split("_")[1])
      if nb201.OPS[ops[edge]] != "nor_" + path[2]:
        assert not np.any(g), path
      else:  # active ops may still have dead ReLUs in a tiny eval-mode net
        live += bool(np.any(g))
  assert live >= 6
  active_only = lambda path: not path[0].startswith("cell_") or nb201.OPS[ops[int(path[1][5:])]] == "nor_" + path[2]
  full = jax.jit(ntk.empirical_ntk_fn(net))(v, x, jnp.asarray(ops))
  restricted = jax.jit(ntk.empirical_ntk_fn(net, param_filter=active_only))(v, x, jnp.asarray(ops))
  np.testing.assert_array_equal(full, restricted)


@pytest.mark.slow
@pytest.mark.parametrize("bn", ["eval", "train"])
def test_ntk_equals_official_network_built_for_the_arch(bn):
  """TE-NAS/paper-code style per-sample loop on the official torch net."""
  torch = pytest.importorskip("torch")
  pytest.importorskip("xautodl")
  from tests import torch_nb201
  C, N = 4, 1
  net = nb201.Network(C=C, N=N)
  x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype(np.float32)
  for i, arch in enumerate(ARCHS):
    torch.manual_seed(i)
    ref = torch_nb201.official_network(arch, C, N, 10, "benchmark")
    torch_nb201.randomize_bn(ref, seed=i)
    ops = nb201.decode(arch)
    v = torch_nb201.copy_into(ref, jax.jit(net.init)(jax.random.key(0), x, ops), arch, N)
    ref.train(bn == "train")
    weights = [p for name, p in ref.named_parameters() if "weight" in name and "classifier" not in name]
    logits = ref(torch.from_numpy(x.transpose(0, 3, 1, 2)))[1]
    rows = []
    for s in range(x.shape[0]):
      grads = torch.autograd.grad(logits[s].sum(), weights, retain_graph=True, allow_unused=True)
      rows.append(torch.cat([g.reshape(-1) for g in grads if g is not None]).double().numpy())
    g = np.stack(rows)
    want = g @ g.T
    got = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, param_filter="paper_code"))(v, x, jnp.asarray(ops))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.slow  # 85-100 s of compilation on 2 cores
def test_one_compilation_serves_all_architectures():
  net, v, x, _ = nb201_setup()
  traces = []

  def counted(variables, xs, ops):
    traces.append(1)
    return ntk.empirical_ntk_fn(net, bn="train")(variables, xs, ops)
  fn = jax.jit(counted)
  archs = nb201.sample(jax.random.key(0), 10)
  kernels = [np.asarray(fn(v, x, jnp.asarray(a))) for a in archs]
  assert len(traces) == 1
  assert len({k.tobytes() for k in kernels}) == 10  # really different archs


def test_plain_function_defaults_to_exact_coupled_jacobian():
  w = jax.random.normal(jax.random.key(0), (5, 3))

  def f(variables, xs, *, train):
    h = xs @ variables["params"]["w"]
    h = h - h.mean(0) if train else h  # train mode couples samples
    return jnp.tanh(h)
  xs = jax.random.normal(jax.random.key(1), (6, 5))
  got = ntk.empirical_ntk_fn(f, bn="train", reduction="full")({"params": {"w": w}}, xs)
  jac = jax.jacrev(lambda w: f({"params": {"w": w}}, xs, train=True))(w).reshape(6, 3, -1)
  np.testing.assert_allclose(got, np.einsum("iap,jbp->ijab", jac, jac), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs, needle", [
    ({"bn": "batch"}, "'batch'"), ({"reduction": "diag"}, "'diag'"),
    ({"implementation": "fast"}, "'fast'"), ({"chunk_size": 0}, "0"),
    ({"vmap_axes": 1}, "1"),
])
def test_bad_options_are_named(kwargs, needle):
  net, *_ = nb201_setup()
  with pytest.raises(ValueError, match=needle):
    ntk.empirical_ntk_fn(net, **kwargs)
