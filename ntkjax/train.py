"""Training search-space networks with optax, as the paper's official code does.

* ``sgd``: PyTorch-style SGD (momentum 0.9, coupled weight decay 3e-4 added
  to the gradient before momentum, lr 0.025 constant or cosine).
* ``make_epoch``: a whole epoch on device: a shuffled permutation, the full
  batches as one jitted ``lax.scan`` (GPU/TPU) or as asynchronously
  dispatched jitted steps (CPU, where XLA runs convolutions inside loops
  slowly), and one step for the remainder (PyTorch's ``drop_last=False``),
  crop/flip augmentation and normalisation inside. No host round-trip per
  step. The network's extra inputs (NB201's op array) are arguments, so
  NB201's archs share one compilation; NB101 and NDS build one per graph.
* ``train``: epochs with per-epoch loss/accuracy, a checkpoint after every
  epoch (resumed on rerun) and a callback so that metrics at t = 1, 3, 5, 10
  come from one training run.
* ``train_archs``: the same for several archs at once (NB201, masked NB101:
  the arch is data), vmapped and split over the devices of a mesh.

Checkpoints are flax msgpack files written atomically (tmp + rename): one
small file per epoch kept, with no background threads, which is all a
per-architecture run needs (orbax is the choice for sharded models).
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import warnings
from typing import Any, Callable, NamedTuple, Sequence

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import PartitionSpec

from ntkjax import data as data_lib
from ntkjax import memory, xla_options

__all__ = ["TrainState", "EpochStats", "sgd", "cross_entropy", "init_state", "make_step", "fit_micro_batch",
           "make_epoch", "train", "train_archs", "default_padding"]


class TrainState(flax.struct.PyTreeNode):
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self):
    return {"params": self.params, "batch_stats": self.batch_stats}


class EpochStats(NamedTuple):
  loss: float      # mean training loss over the epoch's samples
  accuracy: float  # training accuracy (%) on the augmented batches


def sgd(learning_rate: float = 0.025, momentum: float = 0.9, weight_decay: float = 3e-4, *,
        schedule: str = "constant", total_steps: int = 0) -> optax.GradientTransformation:
  """``torch.optim.SGD(lr, momentum, weight_decay)``: the decay is added to the
  gradient (coupled L2) before the momentum trace, as PyTorch does.

  ``schedule='cosine'`` decays the rate to 0 over ``total_steps``.
  """
  if schedule == "constant":
    lr = learning_rate
  elif schedule == "cosine":
    if total_steps <= 0:
      raise ValueError(f"schedule='cosine' needs total_steps > 0, got {total_steps}")
    lr = optax.cosine_decay_schedule(learning_rate, total_steps)
  else:
    raise ValueError(f"unknown schedule {schedule!r}; use 'constant' or 'cosine'")
  return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(lr, momentum=momentum or None))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy with integer labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def init_state(variables, tx: optax.GradientTransformation) -> TrainState:
  params = variables["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params))


def default_padding(image_size: int) -> int:
  """NB201's crop padding: 4 at 32x32, 2 at 16x16."""
  return 4 if image_size >= 32 else 2


def _parts(n: int, micro_batch_size: int | None) -> int:
  """The fewest equal micro-batches of a batch of ``n``, each at most ``micro_batch_size``."""
  if micro_batch_size is None or micro_batch_size >= n:
    return 1
  return next(d for d in range(-(-n // micro_batch_size), n + 1) if n % d == 0)


def make_step(net, tx: optax.GradientTransformation, *, mean: Sequence[float], std: Sequence[float],
              padding: int, augment: bool = True, micro_batch_size: int | None = None) -> Callable:
  """``step(state, images, labels, key, *args) -> (state, (loss_sum, correct))``:
  augment (random crop + flip), normalise, one SGD step in train-mode BN
  (running statistics updated with PyTorch's momentum). ``args`` are the
  network's extra inputs after the images (NB201: the op array). Not jitted.

  ``micro_batch_size`` splits a larger batch into the fewest equal
  micro-batches of at most that many images (a ``lax.scan``, so memory
  holds one micro-batch's activations) and takes one SGD step with their
  mean gradient. That is not the whole batch's step: BatchNorm normalises
  each micro-batch with its own statistics, and the running statistics get
  the micro-batches' mean statistics (the batch mean exactly, the variance
  without the spread between micro-batches). Augmentation is the same."""
  mean, std = tuple(mean), tuple(std)

  def grads(params, batch_stats, x, labels, args):
    def loss_fn(params):
      logits, updates = net.apply({"params": params, "batch_stats": batch_stats}, x, *args,
                                  train=True, mutable=["batch_stats"])
      return cross_entropy(logits, labels), (logits, updates["batch_stats"])
    (loss, (logits, new_stats)), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return g, loss, jnp.sum(jnp.argmax(logits, -1) == labels), new_stats

  def step(state: TrainState, images, labels, key, *args):
    if augment:
      images = data_lib.random_crop_flip(key, images, padding)
    x = data_lib.normalize(images, mean, std)
    n = labels.shape[0]
    parts = _parts(n, micro_batch_size)
    if parts == 1:
      g, loss, correct, batch_stats = grads(state.params, state.batch_stats, x, labels, args)
    else:
      def body(total, part):
        out = grads(state.params, state.batch_stats, *part, args)
        return jax.tree.map(jnp.add, total, out), None
      split = (x.reshape((parts, n // parts) + x.shape[1:]), labels.reshape(parts, n // parts))
      zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(
          lambda: grads(state.params, state.batch_stats, split[0][0], split[1][0], args)))
      total, _ = jax.lax.scan(body, zero, split)
      g, loss, batch_stats = jax.tree.map(lambda t: t / parts, (total[0], total[1], total[3]))
      correct = total[2]
    updates, opt_state = tx.update(g, state.opt_state, state.params)
    new = TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                     batch_stats=batch_stats, opt_state=opt_state)
    return new, (loss * n, correct)
  return step


def fit_micro_batch(step_for: Callable[[int | None], Callable], args: tuple, batch_size: int,
                    memory_budget) -> int | None:
  """The largest micro-batch (None: the whole batch) whose jitted
  ``step_for(micro_batch_size)`` compiled at ``args`` fits ``memory_budget``
  (``ntkjax.memory.resolve_budget``; None, or the CPU's default, keeps the
  whole batch without compiling). Warns when it splits the batch, saying
  what that changes. ``memory.MemoryBudgetError`` if one image does not fit."""
  budget = memory.resolve_budget(memory_budget)
  if budget is None:
    return None
  plan = memory.choose([("sgd", memory.chunk_candidates(batch_size))],
                       lambda _, m: memory.compiled_bytes(jax.jit(step_for(m)).lower(*args).compile()), budget,
                       describe=f"the SGD step of batch {batch_size}")
  if plan.chunk_size is not None:
    warnings.warn(
        f"the SGD step of batch {batch_size} needs {memory.size(plan.tried[0][2])}, more than the memory budget "
        f"of {memory.size(budget)}: each step runs as {_parts(batch_size, plan.chunk_size)} micro-batches of at "
        f"most {plan.chunk_size} images with one update from their mean gradient. BatchNorm then normalises each "
        "micro-batch with its own statistics, so the step differs from the whole batch's.", stacklevel=2)
  return plan.chunk_size


def _over_archs(fn: Callable, mesh, per_arch: Sequence[bool]) -> Callable:
  """``fn`` vmapped over a leading arch axis of the arguments marked in
  ``per_arch`` and of any trailing ones (the network's inputs), the others
  shared, and the archs split over ``mesh``'s first axis with
  ``shard_map``. Not jitted."""
  by_arch, whole = PartitionSpec(mesh.axis_names[0]), PartitionSpec()

  def lifted(*a):
    marks = tuple(per_arch) + (True,) * (len(a) - len(per_arch))
    local = jax.vmap(fn, in_axes=tuple(0 if m else None for m in marks))
    specs = tuple(by_arch if m else whole for m in marks)
    return jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=by_arch, check_vma=False)(*a)
  return lifted


def make_epoch(net, tx: optax.GradientTransformation, *, batch_size: int, mean: Sequence[float],
               std: Sequence[float], padding: int, augment: bool = True, mode: str = "auto",
               mesh=None, micro_batch_size: int | None = None, memory_budget=None) -> Callable:
  """``epoch(state, images, labels, key, *args) -> (state, (loss_sum, correct))``.

  ``images`` are uint8 pixels [n, H, W, 3] already on device; the batch order
  is ``jax.random.permutation`` of ``key`` and step i augments with
  ``fold_in(key', i)``. ``mode``:

  * ``'scan'``: the whole epoch is one jitted ``lax.scan`` (plus the
    remainder step). Best on GPU/TPU.
  * ``'loop'``: a Python loop dispatching one jitted step per batch, with no
    host sync until the caller reads the result. The CPU default: it
    compiles one step rather than the epoch, and on XLA:CPU the two modes
    run steps at about the same speed (BENCHMARKS.md, "Training steps").
  * ``'auto'``: ``loop`` on CPU, ``scan`` elsewhere.

  Both modes give the same result. ``epoch.cache_size()`` counts the
  compilations of the per-batch computation.

  With a ``mesh`` (e.g. ``parallel.arch_mesh()``) the epoch trains A archs
  at once: ``state``, ``key`` and ``args`` carry a leading arch axis (A a
  multiple of the mesh size; ``train_archs`` builds them), the images and
  labels are shared, the archs are split over the devices, and each arch's
  result equals a single-arch epoch with its own key.

  ``micro_batch_size`` splits each batch as ``make_step`` says. With a
  ``memory_budget`` (``ntkjax.memory.resolve_budget``: e.g. 'auto', or
  ``memory.DEFAULT``, which is 'auto' on GPU/TPU only) and no
  ``micro_batch_size``, the first call compiles the step at its shapes and
  splits the batch only where the whole batch does not fit
  (``fit_micro_batch``, with a warning); not with a ``mesh``.
  """
  if mode == "auto":
    mode = "loop" if jax.default_backend() == "cpu" else "scan"
  if mode not in ("scan", "loop"):
    raise ValueError(f"unknown epoch mode {mode!r}; use 'auto', 'scan' or 'loop'")

  def step_for(m):
    return make_step(net, tx, mean=mean, std=std, padding=padding, augment=augment, micro_batch_size=m)
  if micro_batch_size is not None or mesh is not None or memory.resolve_budget(memory_budget) is None:
    return _build_epoch(step_for(micro_batch_size), batch_size, mode, mesh)
  built = {}

  def fitted(state, images, labels, key, *args):
    if not built:
      n = min(batch_size, images.shape[0])
      m = fit_micro_batch(step_for, (state, images[:n], labels[:n], key, *args), n, memory_budget)
      built["epoch"] = _build_epoch(step_for(m), batch_size, mode, mesh)
      fitted.micro_batch_size = m
    return built["epoch"](state, images, labels, key, *args)
  fitted.cache_size = lambda: built["epoch"].cache_size() if built else 0
  return fitted


def _build_epoch(step: Callable, batch_size: int, mode: str, mesh) -> Callable:
  """``make_epoch``'s epoch from one SGD step."""
  lift = (lambda fn, per_arch: fn) if mesh is None else functools.partial(_over_archs, mesh=mesh)  # noqa: E731

  def batch(state, images, labels, perm, i, k_aug, *args):
    idx = jax.lax.dynamic_slice_in_dim(perm, i * batch_size, batch_size)
    return step(state, images[idx], labels[idx], jax.random.fold_in(k_aug, i), *args)

  def remainder(state, images, labels, perm, k_aug, *args):
    full = images.shape[0] // batch_size
    idx = perm[full * batch_size:]
    return step(state, images[idx], labels[idx], jax.random.fold_in(k_aug, full), *args)

  def shuffle(key, n):
    k_perm, k_aug = jax.random.split(key)
    return jax.random.permutation(k_perm, n), k_aug

  def accumulate(batch_fn, carry, i, images, labels, perm, k_aug, *args):
    state, loss_sum, correct = carry
    state, (loss, c) = batch_fn(state, images, labels, perm, i, k_aug, *args)
    return state, loss_sum + loss, correct + c

  def scanned(carry, full, *args):
    body = lambda c, i: (accumulate(batch, c, i, *args), None)  # noqa: E731
    return jax.lax.scan(body, carry, jnp.arange(full))[0] if full else carry

  batch_jit = xla_options.jit(lift(batch, per_arch=(True, False, False, True, False, True)))

  def looped(carry, full, *args):
    for i in range(full):  # dispatched asynchronously: no host sync per step
      carry = accumulate(batch_jit, carry, jnp.int32(i), *args)
    return carry

  if mode == "scan":  # everything below runs inside one jitted (and, with a mesh, lifted) epoch
    shuffled, full_batches, last_batch = shuffle, scanned, remainder
  else:
    shuffled = jax.jit(lambda key, n: lift(lambda k: shuffle(k, n), per_arch=(True,))(key), static_argnums=1)
    full_batches = looped
    last_batch = xla_options.jit(lift(remainder, per_arch=(True, False, False, True, True)))

  def epoch(state, images, labels, key, *args):
    full, rest = divmod(images.shape[0], batch_size)
    perm, k_aug = shuffled(key, images.shape[0])
    carry = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))  # broadcast to [A] over archs
    state, loss_sum, correct = full_batches(carry, full, images, labels, perm, k_aug, *args)
    if rest:
      state, (loss, c) = last_batch(state, images, labels, perm, k_aug, *args)
      loss_sum, correct = loss_sum + loss, correct + c
    return state, (loss_sum, correct)

  if mode == "scan":
    whole = xla_options.jit(lift(epoch, per_arch=(True, False, False, True)))
    whole.cache_size = whole._cache_size
    return whole
  epoch.cache_size = batch_jit._cache_size
  return epoch


def _to_json(entry):
  return [s._asdict() for s in entry] if isinstance(entry, list) else entry._asdict()


def _from_json(obj):
  return [EpochStats(**s) for s in obj] if isinstance(obj, list) else EpochStats(**obj)


def _save(path: pathlib.Path, state: TrainState, history: list):
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_bytes(flax.serialization.to_bytes(state))
  os.replace(tmp, path)
  meta = path.with_suffix(".json")
  tmp = meta.with_name(meta.name + ".tmp")
  tmp.write_text(json.dumps([_to_json(h) for h in history]))
  os.replace(tmp, meta)


def _latest(checkpoint_dir: pathlib.Path, epochs: int):
  done = sorted(int(p.stem.split("_")[1]) for p in checkpoint_dir.glob("epoch_*.msgpack")
                if p.with_suffix(".json").exists())
  done = [e for e in done if e <= epochs]
  return done[-1] if done else 0


def _as_args(args) -> tuple:
  args = (args,) if hasattr(args, "shape") else tuple(args)
  return jax.tree.map(jnp.asarray, args)  # args may be pytrees (nb101_masked.Arch)


def _epoch_stats(loss_sum, correct, n: int) -> EpochStats:
  return EpochStats(float(loss_sum) / n, 100.0 * float(correct) / n)


def _epochs(state: TrainState, epoch_fn: Callable, dataset: data_lib.Dataset, args: tuple, epochs: int,
            epoch_key: Callable[[int], jax.Array], stats: Callable, checkpoint_dir, keep_epochs: Sequence[int],
            on_epoch: Callable | None):
  """The epoch loop of ``train`` and ``train_archs``: resume from the last
  checkpoint, run the rest, record ``stats(loss_sum, correct, n)`` per epoch."""
  history: list = []
  start = 0
  ckpt = pathlib.Path(checkpoint_dir) if checkpoint_dir else None
  if ckpt:
    ckpt.mkdir(parents=True, exist_ok=True)
    start = _latest(ckpt, epochs)
    if start:
      path = ckpt / f"epoch_{start}.msgpack"
      state = flax.serialization.from_bytes(state, path.read_bytes())
      history = [_from_json(h) for h in json.loads(path.with_suffix(".json").read_text())]
  images, labels = jnp.asarray(dataset.images), jnp.asarray(dataset.labels)
  n = images.shape[0]
  for e in range(start, epochs):
    state, (loss_sum, correct) = epoch_fn(state, images, labels, epoch_key(e), *args)
    loss_sum, correct = jax.device_get((loss_sum, correct))  # one host sync per epoch
    history.append(stats(loss_sum, correct, n))
    if on_epoch:  # before the checkpoint: a crash in between retrains the epoch, never skips it
      on_epoch(e + 1, state.variables)
    if ckpt:
      _save(ckpt / f"epoch_{e + 1}.msgpack", state, history)
      for old in ckpt.glob("epoch_*.msgpack"):
        t = int(old.stem.split("_")[1])
        if t < e + 1 and t not in keep_epochs:
          old.unlink()
          old.with_suffix(".json").unlink(missing_ok=True)
  return state.variables, history


def train(net, variables, args, dataset: data_lib.Dataset, epochs: int, key: jax.Array, *,
          batch_size: int = 1024, tx: optax.GradientTransformation | None = None,
          padding: int | None = None, checkpoint_dir=None, keep_epochs: Sequence[int] = (),
          on_epoch: Callable[[int, dict], None] | None = None, epoch_fn: Callable | None = None):
  """Trains ``variables`` of ``net`` for ``epochs``.

  Args:
    args: the network's extra inputs after the images, as a tuple: ``(ops,)``
      for NB201 (an array alone is taken as that one input), ``(arch,)``
      for ``nb101_masked`` (a pytree), ``()`` for networks built per graph
      (NB101, NDS).
    dataset: training images (uint8) and labels; normalised with its mean/std.
    key: shuffling and augmentation; epoch ``e`` uses ``fold_in(key, e)``, so a
      resumed run continues exactly as an uninterrupted one would.
    tx: default ``sgd()`` (the paper's constant-lr SGD).
    checkpoint_dir: if set, the state after each epoch is written there and a
      rerun resumes from the last complete epoch. Only the latest epoch and
      those in ``keep_epochs`` are kept.
    on_epoch: ``on_epoch(t, variables)`` after epoch t (1-based), e.g. to take
      metrics at t = 1, 3, 5, 10. Not called again for epochs restored from a
      checkpoint.
    epoch_fn: a ``make_epoch`` result to reuse across architectures (it is
      built here otherwise).
  Returns:
    ``(variables, history)``, history a list of ``EpochStats`` per epoch.
  """
  tx = tx or sgd()
  padding = default_padding(dataset.image_size) if padding is None else padding
  epoch_fn = epoch_fn or make_epoch(net, tx, batch_size=batch_size, mean=dataset.mean,
                                    std=dataset.std, padding=padding)
  return _epochs(init_state(variables, tx), epoch_fn, dataset, _as_args(args), epochs,
                 lambda e: jax.random.fold_in(key, e), _epoch_stats, checkpoint_dir, keep_epochs, on_epoch)


def train_archs(net, variables, args, dataset: data_lib.Dataset, epochs: int, keys: jax.Array, *, mesh,
                batch_size: int = 1024, tx: optax.GradientTransformation | None = None,
                padding: int | None = None, checkpoint_dir=None, keep_epochs: Sequence[int] = (),
                on_epoch: Callable[[int, dict], None] | None = None, epoch_fn: Callable | None = None):
  """Trains A archs of a network that takes the arch as data (NB201, masked
  NB101) at once, split over the devices of ``mesh``
  (``parallel.arch_mesh()``): arch a's result equals
  ``train(net, variables[a], args[a], dataset, epochs, keys[a], ...)``.

  ``variables``, ``args`` and ``keys`` carry a leading arch axis (A a
  multiple of ``mesh.size``; e.g. ``jax.vmap(net.init)`` over per-arch
  keys, or one init broadcast). ``checkpoint_dir`` holds one checkpoint of
  all A archs per epoch; ``on_epoch(t, variables)`` gets the stacked
  variables. Returns ``(variables, histories)``: stacked variables and one
  list of ``EpochStats`` per arch.
  """
  num, devices = keys.shape[0], mesh.shape[mesh.axis_names[0]]
  if num % devices:
    raise ValueError(f"{num} archs do not split evenly over {devices} devices")
  tx = tx or sgd()
  padding = default_padding(dataset.image_size) if padding is None else padding
  epoch_fn = epoch_fn or make_epoch(net, tx, batch_size=batch_size, mean=dataset.mean, std=dataset.std,
                                    padding=padding, mesh=mesh)
  state = jax.vmap(lambda v: init_state(v, tx))(variables)

  def stats(loss_sum, correct, n):
    return [_epoch_stats(loss, c, n) for loss, c in zip(loss_sum, correct)]

  variables, history = _epochs(state, epoch_fn, dataset, _as_args(args), epochs,
                               lambda e: jax.vmap(jax.random.fold_in, (0, None))(keys, e), stats, checkpoint_dir,
                               keep_epochs, on_epoch)
  return variables, [list(h) for h in zip(*history)] if history else [[] for _ in range(num)]
