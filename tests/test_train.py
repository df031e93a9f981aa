"""Training: optimizer and step parity with PyTorch, loss goes down on real
images, determinism, resume from checkpoints, one compilation for all archs."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import data, train
from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
ARCH2 = "|skip_connect~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_3x3~2|"


def _digits(n):
  ds = data.load("digits16")
  return ds._replace(images=ds.images[:n], labels=ds.labels[:n])


@pytest.mark.slow
def test_sgd_matches_torch_sgd_with_coupled_weight_decay():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(0)
  w0 = rng.normal(size=(5,)).astype(np.float64)
  grads = [rng.normal(size=(5,)) for _ in range(4)]
  wt = torch.tensor(w0.copy(), requires_grad=True)
  opt = torch.optim.SGD([wt], lr=0.025, momentum=0.9, weight_decay=3e-4)
  tx = train.sgd()
  w = jnp.asarray(w0)
  state = tx.init(w)
  for g in grads:
    wt.grad = torch.tensor(g)
    opt.step()
    upd, state = tx.update(jnp.asarray(g), state, w)
    w = w + upd
  np.testing.assert_allclose(np.asarray(w), wt.detach().numpy(), rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match="'step'"):
    train.sgd(schedule="step")


@pytest.mark.slow
def test_two_steps_match_the_official_network_with_torch_sgd():
  torch = pytest.importorskip("torch")
  pytest.importorskip("xautodl")
  from tests import torch_nb201
  C, N = 4, 1
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (2, 8, 8, 8, 3), dtype=np.uint8)  # 2 batches of 8
  labels = rng.integers(0, 10, (2, 8))
  mean, std = data.NORMALIZATION["cifar"]
  torch.manual_seed(0)
  ref = torch_nb201.official_network(ARCH, C, N, 10, "benchmark")
  net = nb201.Network(C=C, N=N)
  ops = jnp.asarray(nb201.decode(ARCH))
  v = torch_nb201.copy_into(ref, jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 8, 8, 3)), ops), ARCH, N)
  opt = torch.optim.SGD(ref.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
  tx = train.sgd()
  step = jax.jit(train.make_step(net, tx, mean=mean, std=std, padding=0, augment=False))
  state = train.init_state(v, tx)
  ref.train()
  for b in range(2):
    x = np.array(data.normalize(images[b], mean, std))
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(ref(torch.from_numpy(x.transpose(0, 3, 1, 2)))[1],
                                             torch.from_numpy(labels[b]))
    loss.backward()
    opt.step()
    state, (loss_sum, _) = step(state, images[b], jnp.asarray(labels[b]), jax.random.key(b), ops)
    assert float(loss_sum) / 8 == pytest.approx(loss.item(), rel=1e-5)
  probe = rng.normal(size=(4, 8, 8, 3)).astype(np.float32)
  ref.eval()  # eval mode: also checks the running statistics
  want = ref(torch.from_numpy(probe.transpose(0, 3, 1, 2)))[1].detach().numpy()
  got = net.apply(state.variables, probe, ops, train=False)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # whole epochs, run three times (the step itself: the torch and micro-batch tests)
def test_training_reduces_loss_and_is_deterministic():
  ds = _digits(256)
  net = nb201.Network(C=4, N=1)
  ops = nb201.decode(ARCH)
  v = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.asarray(ops))
  tx = train.sgd(learning_rate=0.1)
  epoch_fn = train.make_epoch(net, tx, batch_size=64, mean=ds.mean, std=ds.std, padding=2)
  _, hist = train.train(net, v, ops, ds, 4, jax.random.key(1), tx=tx, epoch_fn=epoch_fn)
  assert hist[-1].loss < hist[0].loss - 0.2
  assert hist[-1].accuracy > hist[0].accuracy + 10
  _, again = train.train(net, v, ops, ds, 4, jax.random.key(1), tx=tx, epoch_fn=epoch_fn)
  assert again == hist
  _, other = train.train(net, v, ops, ds, 1, jax.random.key(2), tx=tx, epoch_fn=epoch_fn)
  assert other[0] != hist[0]


@pytest.mark.slow  # a training run, stopped and resumed, as the studies' resume tests
def test_interrupted_training_resumes_to_the_same_result(tmp_path):
  ds = _digits(128)
  net = nb201.Network(C=4, N=1)
  ops = nb201.decode(ARCH)
  v = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.asarray(ops))
  tx = train.sgd()
  epoch_fn = train.make_epoch(net, tx, batch_size=32, mean=ds.mean, std=ds.std, padding=2)
  full, full_hist = train.train(net, v, ops, ds, 3, jax.random.key(5), epoch_fn=epoch_fn)
  seen = []
  train.train(net, v, ops, ds, 2, jax.random.key(5), epoch_fn=epoch_fn, checkpoint_dir=tmp_path,
              keep_epochs=(1,), on_epoch=lambda t, _: seen.append(t))
  assert seen == [1, 2] and sorted(p.name for p in tmp_path.glob("*.msgpack")) == [
      "epoch_1.msgpack", "epoch_2.msgpack"]
  resumed, hist = train.train(net, v, ops, ds, 3, jax.random.key(5), epoch_fn=epoch_fn,
                              checkpoint_dir=tmp_path, on_epoch=lambda t, _: seen.append(t))
  assert seen == [1, 2, 3]  # epochs 1-2 came from the checkpoint
  assert hist == full_hist
  for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(full)):
    np.testing.assert_array_equal(a, b)
  assert not (tmp_path / "epoch_2.msgpack").exists()  # not kept: only the latest and keep_epochs


@pytest.mark.slow
def test_scan_and_loop_epochs_agree_train_the_remainder_batch_and_share_one_compilation():
  ds = _digits(100)  # 3 batches of 32 and one of 4, as PyTorch's drop_last=False
  net = nb201.Network(C=4, N=1)
  tx = train.sgd()
  v = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros(6, jnp.int32))
  images, labels = jnp.asarray(ds.images), jnp.asarray(ds.labels)
  out = {}
  for mode in ("scan", "loop"):
    epoch_fn = train.make_epoch(net, tx, batch_size=32, mean=ds.mean, std=ds.std, padding=2, mode=mode)
    for arch in (ARCH, ARCH2):
      out[mode, arch] = epoch_fn(train.init_state(v, tx), images, labels, jax.random.key(9),
                                 jnp.asarray(nb201.decode(arch)))
      state, (loss_sum, correct) = out[mode, arch]
      assert int(state.step) == 4 and 0 <= int(correct) <= 100 and float(loss_sum) > 0
    assert epoch_fn.cache_size() == 1
  for arch in (ARCH, ARCH2):
    (s1, (l1, c1)), (s2, (l2, c2)) = out["scan", arch], out["loop", arch]
    assert int(c1) == int(c2) and float(l1) == pytest.approx(float(l2), rel=1e-5)
    for a, b in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="'fast'"):
    train.make_epoch(net, tx, batch_size=32, mean=ds.mean, std=ds.std, padding=2, mode="fast")


def test_micro_batch_parts_are_the_fewest_equal_ones_within_the_size():
  assert [train._parts(1024, m) for m in (None, 1024, 2048, 512, 300, 1)] == [1, 1, 1, 2, 4, 1024]
  assert train._parts(10, 4) == 5 and train._parts(7, 3) == 7


class _ConvBN(nn.Module):
  """Conv, train-mode BatchNorm, pooling, classifier: compiles in a second."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Conv(4, (3, 3))(x)))
    return nn.Dense(10)(x.mean((1, 2)))


def _micro_setup(n=8):
  net, ds = _ConvBN(), _digits(n)
  v = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  return net, (), ds, v


def test_micro_batched_step_is_one_update_from_the_micro_batches_mean_gradient():
  net, ops, ds, v = _micro_setup()
  tx = train.sgd()
  state = train.init_state(v, tx)
  images, labels = jnp.asarray(ds.images), jnp.asarray(ds.labels)
  kwargs = dict(mean=ds.mean, std=ds.std, padding=0, augment=False)
  whole = jax.jit(train.make_step(net, tx, **kwargs))(state, images, labels, jax.random.key(1), *ops)
  same = jax.jit(train.make_step(net, tx, micro_batch_size=8, **kwargs))(state, images, labels, jax.random.key(1),
                                                                           *ops)
  for a, b in zip(jax.tree.leaves(same[0].params), jax.tree.leaves(whole[0].params)):
    np.testing.assert_array_equal(a, b)
  got, (loss_sum, correct) = jax.jit(train.make_step(net, tx, micro_batch_size=4, **kwargs))(
      state, images, labels, jax.random.key(1), *ops)

  # reference: the two halves' losses averaged in one differentiated function, no scan
  x = data.normalize(images, ds.mean, ds.std)

  def half(params, i):
    logits, upd = net.apply({"params": params, "batch_stats": v["batch_stats"]}, x[4 * i:4 * i + 4], *ops,
                            train=True, mutable=["batch_stats"])
    return train.cross_entropy(logits, labels[4 * i:4 * i + 4]), (upd["batch_stats"], logits)

  def mean_loss(params):
    (l0, (s0, g0)), (l1, (s1, g1)) = half(params, 0), half(params, 1)
    return (l0 + l1) / 2, (jax.tree.map(lambda a, b: (a + b) / 2, s0, s1), jnp.concatenate([g0, g1]))
  (loss, (stats, logits)), grads = jax.value_and_grad(mean_loss, has_aux=True)(v["params"])
  updates, _ = tx.update(grads, state.opt_state, v["params"])
  want = jax.tree.map(jnp.add, v["params"], updates)
  for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(got.batch_stats), jax.tree.leaves(stats)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert float(loss_sum) == pytest.approx(8 * float(loss), rel=1e-5)
  assert int(correct) == int(jnp.sum(jnp.argmax(logits, -1) == labels))
  # BN statistics per micro-batch: not the whole batch's step
  assert not all(np.allclose(a, b, rtol=1e-6, atol=1e-7)
                 for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(whole[0].params)))


@pytest.mark.slow
def test_epoch_splits_the_batch_only_when_it_does_not_fit_the_budget():
  from ntkjax import memory
  net, ops, ds, v = _micro_setup(32)
  tx = train.sgd()
  state = train.init_state(v, tx)
  images, labels = jnp.asarray(ds.images), jnp.asarray(ds.labels)
  kwargs = dict(batch_size=32, mean=ds.mean, std=ds.std, padding=2)

  def need(m):
    step = train.make_step(net, tx, mean=ds.mean, std=ds.std, padding=2, micro_batch_size=m)
    return memory.compiled_bytes(jax.jit(step).lower(state, images, labels, jax.random.key(0), *ops).compile())
  whole, quarter = need(None), need(8)
  assert quarter < whole
  roomy = train.make_epoch(net, tx, memory_budget=2 * whole, **kwargs)
  roomy(state, images, labels, jax.random.key(0), *ops)
  assert roomy.micro_batch_size is None
  tight = train.make_epoch(net, tx, memory_budget=(quarter + whole) // 2, **kwargs)
  with pytest.warns(UserWarning, match="micro-batches of at most .* BatchNorm"):
    new, (loss_sum, _) = tight(state, images, labels, jax.random.key(0), *ops)
  assert tight.micro_batch_size is not None and need(tight.micro_batch_size) <= (quarter + whole) // 2
  assert np.isfinite(float(loss_sum)) and int(new.step) == 1
  with pytest.raises(memory.MemoryBudgetError, match="the SGD step of batch 32"):
    train.make_epoch(net, tx, memory_budget=1000, **kwargs)(state, images, labels, jax.random.key(0), *ops)
  # the CPU's default budget is none: the whole batch, nothing compiled ahead
  assert not hasattr(train.make_epoch(net, tx, memory_budget=memory.DEFAULT, **kwargs), "micro_batch_size")
