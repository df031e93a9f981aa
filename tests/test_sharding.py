"""One kernel's rows and several archs' training split over devices: the
same numbers as the single-device path (Jacobian rows by sample block in
the main process; 4 forced host devices in a subprocess)."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import ntk, parallel, train
from ntkjax.kernel_sharding import rows_mesh, sharded_ntk_fn
from tests.helpers import Gated, gated_setup, toy_data

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("bn,implementation,reduction", [
    ("eval", "structured", "sum_logits"), ("train", "structured", "full"),
    pytest.param("eval", "jacobian_contraction", "full", marks=pytest.mark.slow),
    pytest.param("train", "jacobian_contraction", "sum_logits", marks=pytest.mark.slow)])
def test_jacobian_blocks_of_a_sample_range_are_those_rows_of_the_kernel(bn, implementation, reduction):
  net, v, x = gated_setup()
  kw = dict(bn=bn, implementation=implementation, reduction=reduction)
  blocks_fn = ntk.jacobian_blocks_fn(net, **kw)
  theta = jax.jit(ntk.empirical_ntk_fn(net, **kw))(v, x, 0.5)
  rows = jax.jit(lambda v_, x_, first: blocks_fn(v_, x_, 0.5, samples=(first, 2)))
  whole = blocks_fn(v, x, 0.5)
  np.testing.assert_allclose(ntk.contract_blocks(whole, whole, reduction), theta, rtol=1e-5, atol=1e-5)
  for first in (0, 2, 4):  # a traced first sample, as each device passes it
    mine = rows(v, x, first)
    assert mine[0].shape[0] == 2
    np.testing.assert_allclose(ntk.contract_blocks(mine, whole, reduction), theta[first:first + 2],
                               rtol=1e-5, atol=1e-5 * float(jnp.abs(theta).max()))


def test_one_device_rows_mesh_gives_the_kernel_and_rejects_bad_options():
  net, v, x = gated_setup()
  mesh = rows_mesh(jax.devices()[:1])
  for bn in ("eval", "train"):
    want = jax.jit(ntk.empirical_ntk_fn(net, bn=bn, reduction="trace", normalize_trace=True))(v, x, 0.5)
    got = sharded_ntk_fn(net, mesh=mesh, bn=bn, reduction="trace", normalize_trace=True)(v, x, 0.5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match="never forms J"):
    sharded_ntk_fn(net, mesh=mesh, implementation="ntk_vector_products")


@pytest.mark.parametrize("mode", ["loop", pytest.param("scan", marks=pytest.mark.slow)])
def test_training_archs_at_once_equals_training_each(mode, tmp_path):
  net, ds = Gated(), toy_data(16)  # two full batches: the remainder step is the 4-device test's (20 images)
  gates = jnp.array([0.0, 0.5, 1.0, -1.0])
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(5), i))(jnp.arange(4))
  inits = jax.jit(jax.vmap(lambda k, g: net.init(k, jnp.zeros((1, 6, 6, 3)), g)))(keys, gates)
  mesh = parallel.arch_mesh(jax.devices()[:1])
  kw = dict(batch_size=8, padding=2)
  epoch = train.make_epoch(net, train.sgd(), mean=ds.mean, std=ds.std, mode=mode, mesh=mesh, **kw)
  got, histories = train.train_archs(net, inits, (gates,), ds, 2, keys, mesh=mesh, epoch_fn=epoch, **kw)
  single = train.make_epoch(net, train.sgd(), mean=ds.mean, std=ds.std, mode=mode, **kw)
  for a in range(4):
    want, history = train.train(net, jax.tree.map(lambda leaf: leaf[a], inits), (gates[a],), ds, 2, keys[a],
                                epoch_fn=single, **kw)
    for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
      np.testing.assert_allclose(g[a], w, rtol=1e-4, atol=1e-5)
    assert [h.accuracy for h in histories[a]] == [h.accuracy for h in history]
    np.testing.assert_allclose([h.loss for h in histories[a]], [h.loss for h in history], rtol=1e-5)
  # resumed from the epoch-1 checkpoint of all four archs: the same result
  train.train_archs(net, inits, (gates,), ds, 1, keys, mesh=mesh, epoch_fn=epoch, checkpoint_dir=tmp_path, **kw)
  resumed, again = train.train_archs(net, inits, (gates,), ds, 2, keys, mesh=mesh, epoch_fn=epoch,
                                     checkpoint_dir=tmp_path, **kw)
  assert again == histories
  for r, g in zip(jax.tree.leaves(resumed), jax.tree.leaves(got)):
    np.testing.assert_array_equal(r, g)
  with pytest.raises(ValueError, match="3 archs do not split evenly over 2 devices"):
    two = parallel.arch_mesh(jax.devices()[:1] * 2) if len(jax.devices()) < 2 else parallel.arch_mesh(jax.devices()[:2])
    train.train_archs(net, jax.tree.map(lambda leaf: leaf[:3], inits), (gates[:3],), ds, 1, keys[:3], mesh=two, **kw)


_DEVICES_SCRIPT = textwrap.dedent("""
    import sys, jax, jax.numpy as jnp, numpy as np
    from ntkjax import ntk, parallel, train
    from ntkjax.kernel_sharding import rows_mesh, sharded_ntk_fn
    from tests.helpers import gated_setup, toy_data
    assert len(jax.devices()) == 4, jax.devices()
    # The Gated net (arch as data through its gate): the split does not depend on the network, and the
    # NB201 space's sharded path is tests/test_parallel.py's; a small net keeps 6 compilations short.
    net, v, x = gated_setup(8)
    gates = jnp.array([0.0, 0.5, 1.0, -1.0])
    with jax.enable_x64(True):  # rows split over 4 devices: the single-device kernel to float64 precision
      v64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), v)
      x64 = jnp.asarray(np.asarray(x), jnp.float64)
      for bn, impl, red in (("eval", "structured", "sum_logits"), ("train", "structured", "full"),
                            ("train", "jacobian_contraction", "sum_logits")):
        kw = dict(bn=bn, implementation=impl, reduction=red)
        want = jax.jit(ntk.empirical_ntk_fn(net, **kw))(v64, x64, gates[1])
        got = sharded_ntk_fn(net, mesh=rows_mesh(), **kw)(v64, x64, gates[1])
        assert got.sharding.spec == jax.sharding.PartitionSpec("rows"), got.sharding
        assert {s.data.shape[0] for s in got.addressable_shards} == {2}
        err = float(jnp.abs(got - want).max() / jnp.abs(want).max())
        assert err < 1e-12, (bn, impl, red, err)
    # four archs trained at once, one per device (loop mode: the CPU's); 20 images in batches of 8 end
    # with a remainder step
    ds = toy_data(20)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(5), i))(jnp.arange(4))
    inits = jax.jit(jax.vmap(lambda k, g: net.init(k, x[:1], g)))(keys, gates)
    got, hist = train.train_archs(net, inits, (gates,), ds, 1, keys, mesh=parallel.arch_mesh(), batch_size=8)
    single = train.make_epoch(net, train.sgd(), batch_size=8, mean=ds.mean, std=ds.std, padding=2)
    for a in range(4):
      want, h = train.train(net, jax.tree.map(lambda l: l[a], inits), (gates[a],), ds, 1, keys[a], batch_size=8,
                            epoch_fn=single)
      for w, g in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(g[a], w, rtol=1e-4, atol=1e-4)
      np.testing.assert_allclose([e.loss for e in hist[a]], [e.loss for e in h], rtol=1e-4)
    print("ok")
""")


@pytest.mark.slow
def test_four_host_devices_split_kernel_rows_and_train_archs_exactly():
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": str(ROOT)}
  proc = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                        timeout=1200)
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_memory_budget_sizes_each_devices_chunks_and_keeps_the_kernel():
  from ntkjax import memory
  net, v, x = gated_setup()
  mesh = rows_mesh(jax.devices()[:1])
  want = sharded_ntk_fn(net, mesh=mesh, bn="train", memory_budget=None)(v, x, 0.5)
  free = sharded_ntk_fn(net, mesh=mesh, bn="train", memory_budget=2**40)
  np.testing.assert_allclose(free(v, x, 0.5), want, rtol=1e-6)
  (unconstrained,) = free.plans.values()
  assert unconstrained.chunk_size is None and len(unconstrained.tried) == 1
  tight = sharded_ntk_fn(net, mesh=mesh, bn="train", memory_budget=unconstrained.needs_bytes - 1)
  got = tight(v, x, 0.5)
  (plan,) = tight.plans.values()  # the coupled rows mapped in chunks: less memory, the same kernel
  assert plan.needs_bytes <= plan.budget_bytes < unconstrained.needs_bytes and plan.chunk_size is not None
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  with pytest.raises(memory.MemoryBudgetError, match="each device's rows of the NTK of 6 samples needs at least"):
    sharded_ntk_fn(net, mesh=mesh, bn="train", memory_budget=16)(v, x, 0.5)
