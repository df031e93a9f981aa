"""The field's zero-cost proxies, as NAS-Bench-Suite-Zero computes them.

``proxies_fn(net, names)`` builds one jittable function that computes the
chosen proxies of a network from its variables, a minibatch and its labels,
sharing passes where proxies allow it: one loss forward and backward serves
snip, grad_norm, plain, fisher and nwot; grasp adds one Hessian-vector
product, jacov and epe_nas one input Jacobian, synflow and zen their own
passes. ``arch_proxies`` are the ones that need no network pass (params,
flops) and come from the space.

Conventions follow NASLib (``naslib/predictors/pruners/measures``, the code
behind NAS-Bench-Suite-Zero, Krishnakumar et al., NeurIPS 2022 D&B):

* The network is in train mode (BatchNorm on batch statistics); the loss is
  the mean cross-entropy of the minibatch.
* "Weights" are the kernels of conv and dense layers (PyTorch ``Conv2d`` and
  ``Linear`` ``weight``), found through the layers' taps (``ntkjax.taps``);
  an arch-as-data network's unselected ops do not count, ops on paths that
  miss the output do (they exist in the benchmark's network).
* Sums run over every weight entry and every layer; fisher, a per-channel
  score, counts each channel once per weight of it (NASLib broadcasts it).
* synflow is returned as its logarithm, as NAS-Bench-Suite-Zero publishes
  it (the sum passes float32's range on large nets).
* nwot reads every ReLU's input codes and zen the features before the
  global pool, which the NB201, NB101 and NDS networks sow
  (``taps.probe_relu``, ``taps.probe_features``); the masked NB101 network
  sows none, so those two name it in an error there.

A proxy that is NaN or infinite (a degenerate arch: zero Jacobians make a
correlation undefined) is returned as computed; scoring flags its row as
``nonfinite`` as it does for the NTK metrics.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from ntkjax import layers
from ntkjax.taps import PERTURBATIONS, PROBES, TAPS, Tap

__all__ = ["Proxy", "PROXIES", "NETWORK_PROXIES", "ARCH_PROXIES", "NAMES", "check_names", "proxies_fn",
           "arch_proxies"]

_STATS = "batch_stats"
_EPS = 1e-5  # NASLib's k in jacov and epe_nas
_BN_EPS = 1e-5  # layers.BatchNorm's
# synflow's log α = log β candidates: sums up to e^88 unscaled, and up to e^148 scaled, however the
# forward and backward share the growth (NB201 nets reach e^115).
_SYNFLOW_LOG_SCALES = (0.0, 30.0, 60.0)
_SYNFLOW_FLOOR = 1e-30  # below it a scaled sum has lost its small terms


class Proxy(NamedTuple):
  """A zero-cost proxy: ``fn(passes) -> scalar`` for a network proxy (a
  ``_Passes``, which runs each pass the first time a proxy reads it), or
  ``fn(space, arch) -> float`` for an arch proxy (``network=False``)."""
  fn: Callable
  network: bool
  reference: str


class _LossPass(NamedTuple):
  weights: list    # _Weight per conv/dense kernel, from the taps
  grads: dict      # d loss / d params
  cotangents: dict  # d loss / d each layer's output (flattened perturbation paths)
  probes: dict     # the sown ReLU codes and features


class _Passes:
  """The passes proxies share, traced on first use inside one jit."""

  def __init__(self, net, variables, x, labels, args, key):
    self.net, self.x, self.labels, self.args, self.key = net, x, labels, args, key
    self.params = variables["params"]
    self.base = {c: v for c, v in variables.items() if c not in (TAPS, PERTURBATIONS, PROBES)}
    self.mutable = [_STATS] if _STATS in self.base else []

  def _apply(self, params, x, *, train=True, perturbations=None, variables=None, mutable=()):
    v = {**(self.base if variables is None else variables), "params": params}
    if perturbations is not None:
      v[PERTURBATIONS] = perturbations
    return self.net.apply(v, x, *self.args, train=train, mutable=list(mutable) + (self.mutable if train else []))

  def _loss(self, logits):
    return optax.softmax_cross_entropy_with_integer_labels(logits, self.labels).mean()

  @functools.cached_property
  def loss_pass(self) -> _LossPass:
    """The mean cross-entropy's forward and backward, once."""
    shapes = jax.eval_shape(lambda: self._apply(self.params, self.x, mutable=[TAPS, PERTURBATIONS]))[1]
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes.get(PERTURBATIONS, {}))

    def loss(params, perturbations):
      logits, state = self._apply(params, self.x, perturbations=perturbations, mutable=[TAPS, PROBES])
      return self._loss(logits), (state[TAPS], state.get(PROBES, {}))

    (_, (taps, probes)), (grads, cotangents) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        self.params, zeros)
    return _LossPass(_weights(taps), grads, traverse_util.flatten_dict(cotangents), probes)

  @property
  def weights(self):
    return self.loss_pass.weights

  def grad(self, path):
    return _at(self.loss_pass.grads, path)

  @functools.cached_property
  def hessian_grad(self):
    """H g for the weights, g the loss gradient of the weights (GraSP)."""
    paths = [w.path for w in self.weights]
    flat = traverse_util.flatten_dict(self.params)

    def weight_grads(ws):
      params = traverse_util.unflatten_dict({**flat, **dict(zip(paths, ws))})
      return jax.grad(lambda p: self._loss(self._apply(p, self.x)[0]))(params)

    ws = [flat[p] for p in paths]
    g = [jax.lax.stop_gradient(self.grad(p)) for p in paths]
    hg = jax.jvp(weight_grads, (ws,), (g,))[1]
    return [_at(hg, p) for p in paths]

  @functools.cached_property
  def input_jacobian(self):
    """d Σ logits / d x per sample, [n, H*W*C] (batch statistics couple the rows)."""
    j = jax.grad(lambda x: self._apply(self.params, x)[0].sum())(self.x)
    return j.reshape(j.shape[0], -1)


class _Weight(NamedTuple):
  path: tuple  # the kernel's parameter path
  key: tuple   # the tap's path (module path + tap name)
  tap: Tap

  @property
  def module(self) -> tuple:
    return self.key[:-1]

  @property
  def perturbation(self) -> tuple:
    """The perturbation whose cotangent is the layer's output cotangent."""
    return self.module + ((self.tap.perturbation or self.key[-1]),)


def _weights(taps) -> list[_Weight]:
  out = []
  for key, recs in traverse_util.flatten_dict(taps).items():
    rec = recs[0]
    if rec.kind in ("conv", "dense") and rec.weight is not None:
      out.append(_Weight(tuple(key[:-1]) + tuple(rec.weight), tuple(key), rec))
  return out


def _at(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def _active(w: _Weight, value):
  return value if w.tap.active is None else jnp.where(w.tap.active, value, 0.0)


def _weight_sum(passes: _Passes, per_layer: Callable) -> jax.Array:
  return sum(_active(w, per_layer(w, _at(passes.params, w.path))) for w in passes.weights)


def _snip(p: _Passes):
  return _weight_sum(p, lambda w, W: jnp.abs(W * p.grad(w.path)).sum())


def _grad_norm(p: _Passes):
  return _weight_sum(p, lambda w, W: jnp.linalg.norm(p.grad(w.path).ravel()))


def _plain(p: _Passes):
  return _weight_sum(p, lambda w, W: (W * p.grad(w.path)).sum())


def _l2_norm(p: _Passes):
  return _weight_sum(p, lambda w, W: jnp.linalg.norm(W.ravel()))


def _grasp(p: _Passes):
  hg = dict(zip([w.path for w in p.weights], p.hessian_grad))
  return _weight_sum(p, lambda w, W: -(W * hg[w.path]).sum())


def _fisher(p: _Passes):
  """Σ over conv/dense layers and output channels of ½ mean_n (Σ_hw a δ)²,
  ``a`` the layer's output and ``δ`` the loss gradient there, each channel
  counted once per weight it owns (its fan-in): NASLib broadcasts the
  channel's value over the channel's weights before it sums."""
  cotangents = p.loss_pass.cotangents
  total = 0.0
  for w in p.weights:
    rec = w.tap
    bias = None if rec.bias is None else _at(p.params, w.module + tuple(rec.bias))
    kernel = _at(p.params, w.path)
    if rec.kind == "conv":
      a = layers.conv2d(rec.inputs, kernel, bias, rec.stride, rec.padding, rec.dilation, rec.groups)
    else:
      a = rec.inputs @ kernel + (0.0 if bias is None else bias)
    g = (a * cotangents[w.perturbation]).reshape(a.shape[0], -1, a.shape[-1]).sum(axis=1)
    fan_in = math.prod(kernel.shape[:-1])  # HWIO / (in, out) kernels
    total = total + _active(w, fan_in * 0.5 * (g ** 2).mean(axis=0).sum())
  return total


def _correlation(j):
  j = j - j.mean(axis=1, keepdims=True)
  norms = jnp.sqrt((j * j).sum(axis=1))
  return (j @ j.T) / (norms[:, None] * norms[None, :])


def _jacov(p: _Passes):
  """-Σ (log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation
  matrix of per-sample input Jacobians (Mellor et al. v1; NASLib's jacov)."""
  v = jnp.linalg.eigvalsh(_correlation(p.input_jacobian))
  return -jnp.sum(jnp.log(v + _EPS) + 1.0 / (v + _EPS))


def _epe_nas(p: _Passes, num_classes: int):
  """EPE-NAS (Lopes et al., 2021): per class, Σ log(|corr| + k) over the
  class's Jacobian correlation matrix; summed in absolute value (≤ 100
  classes) or as mean pairwise differences over the classes present."""
  corr = jnp.log(jnp.abs(_correlation(p.input_jacobian)) + _EPS)
  onehot = jax.nn.one_hot(p.labels, num_classes, dtype=corr.dtype)  # [n, C]
  per_class = jnp.einsum("ic,ij,jc->c", onehot, corr, onehot)
  count = onehot.sum(axis=0)
  present = count > 0
  if num_classes <= 100:
    return jnp.where(present, jnp.abs(per_class), 0.0).sum()
  s = per_class / jnp.maximum(count, 1)
  pairs = jnp.abs(s[:, None] - s[None, :]) * (present[:, None] & present[None, :])
  return pairs.sum() / present.sum()


def _nwot(p: _Passes):
  """log|det K|, K the summed Hamming kernels of every ReLU's binary codes
  (Mellor et al., ICML 2021, second version; NASLib's nwot)."""
  probes = traverse_util.flatten_dict(p.loss_pass.probes)
  ks = [k for name, sown in probes.items() if name[-1].startswith("relu_") for k in sown]
  if not ks:
    raise ValueError(f"{type(p.net).__name__} probes no ReLU codes (ntkjax.taps.probe_relu); nwot needs them")
  return jnp.linalg.slogdet(sum(ks))[1]


def _synflow(p: _Passes):
  """log Σ |θ ⊙ ∂R/∂θ| over the weights, R the summed output of the network
  with |θ|, BatchNorm off (identity) and one all-ones input (Tanaka et al.,
  2020; NASLib's synflow, ``bn=False``). Returned as its logarithm, as
  NAS-Bench-Suite-Zero publishes it: the sum passes float32's range on
  large nets (NASLib runs it in float64). Beside the unscaled pass, passes
  on an input and biases scaled by α and a cotangent β (the |θ| network is
  positive and linear in them, so the sum scales by αβ exactly) keep it in
  range; the first candidate in range is taken, less log αβ."""
  flat = traverse_util.flatten_dict(p.params)
  bn_modules = {k[:-1] for k in flat if k[-1] == "scale"}
  # BN as the identity: scale 1, shift 0, and (eval mode) mean 0, var 1 - eps.
  flat = {k: jnp.abs(v if k[:-1] not in bn_modules else jnp.ones_like(v) if k[-1] == "scale" else jnp.zeros_like(v))
          for k, v in flat.items()}
  variables = dict(p.base)
  if _STATS in variables:
    stats = traverse_util.flatten_dict(variables[_STATS])
    variables[_STATS] = traverse_util.unflatten_dict(
        {k: (jnp.zeros_like(v) if k[-1] == "mean" else jnp.full_like(v, 1.0 - _BN_EPS)) for k, v in stats.items()})
  ones = jnp.ones((1,) + p.x.shape[1:], p.x.dtype)
  p.weights  # noqa: B018 -- the loss pass runs here, outside the vmap below

  def log_sum(log_scale):  # α = β = exp(-log_scale)
    scale = jnp.exp(-log_scale)
    params = traverse_util.unflatten_dict({k: v * scale if k[-1] == "bias" else v for k, v in flat.items()})
    grads = jax.grad(lambda q: scale * p._apply(q, ones * scale, train=False, variables=variables)[0].sum())(params)
    total = _weight_sum(p, lambda w, W: jnp.abs(W * _at(grads, w.path)).sum())
    ok = jnp.isfinite(total) & (total > _SYNFLOW_FLOOR)
    return ok, jnp.log(total) + 2 * log_scale

  # Every candidate in one vmapped pass: one trace and one compiled network
  # instead of three (the passes have one image each, so running all costs
  # little beside the proxies' minibatch passes).
  oks, values = jax.vmap(log_sum)(jnp.asarray(_SYNFLOW_LOG_SCALES, p.x.dtype))
  out = values[0]  # none in range: the unscaled value (inf, -inf or NaN) flags the row
  for i in reversed(range(len(_SYNFLOW_LOG_SCALES))):  # the first candidate in range
    out = jnp.where(oks[i], values[i], out)
  return out


def _zen(p: _Passes, mixup_gamma: float = 1e-2):
  """Zen-NAS (Lin et al., ICCV 2021) as NASLib runs it: Gaussian weights,
  Gaussian inputs, log mean_n Σ |f(x) - f(x + γ x')| of the features before
  the global pool plus Σ_BN log sqrt(mean running var) after both forwards."""
  k_w, k_x, k_m = jax.random.split(p.key, 3)
  flat = traverse_util.flatten_dict(p.params)
  keys = dict(zip(flat, jax.random.split(k_w, len(flat))))
  flat = {k: (jax.random.normal(keys[k], v.shape, v.dtype) if k[-1] == "kernel" else
              jnp.ones_like(v) if k[-1] == "scale" else jnp.zeros_like(v)) for k, v in flat.items()}
  params = traverse_util.unflatten_dict(flat)
  x = jax.random.normal(k_x, p.x.shape, p.x.dtype)
  mixed = x + mixup_gamma * jax.random.normal(k_m, p.x.shape, p.x.dtype)

  def features(inputs, variables):
    _, state = p._apply(params, inputs, variables=variables, mutable=[PROBES])
    if "features" not in state.get(PROBES, {}):
      raise ValueError(f"{type(p.net).__name__} probes no features (ntkjax.taps.probe_features); zen needs them")
    return state[PROBES]["features"][0], {**variables, **{k: v for k, v in state.items() if k == _STATS}}

  f1, after1 = features(x, p.base)
  f2, after2 = features(mixed, after1)
  score = jnp.log(jnp.abs(f1 - f2).reshape(x.shape[0], -1).sum(axis=1).mean())
  if _STATS in after2:
    for path, var in traverse_util.flatten_dict(after2[_STATS]).items():
      if path[-1] == "var":
        score = score + jnp.log(jnp.sqrt(var.mean()))
  return score


NETWORK_PROXIES: dict[str, Proxy] = {
    "synflow": Proxy(_synflow, True, "Tanaka et al., NeurIPS 2020"),
    "snip": Proxy(_snip, True, "Lee et al., ICLR 2019"),
    "grasp": Proxy(_grasp, True, "Wang et al., ICLR 2020"),
    "fisher": Proxy(_fisher, True, "Turner et al., ICLR 2020"),
    "grad_norm": Proxy(_grad_norm, True, "Abdelfattah et al., ICLR 2021"),
    "jacov": Proxy(_jacov, True, "Mellor et al., 2020 (v1)"),
    "nwot": Proxy(_nwot, True, "Mellor et al., ICML 2021"),
    "epe_nas": Proxy(None, True, "Lopes et al., 2021"),  # needs the class count: proxies_fn binds it
    "zen": Proxy(_zen, True, "Lin et al., ICCV 2021"),
    "l2_norm": Proxy(_l2_norm, True, "Abdelfattah et al., ICLR 2021"),
    "plain": Proxy(_plain, True, "Abdelfattah et al., ICLR 2021"),
}
ARCH_PROXIES: dict[str, Proxy] = {
    "params": Proxy(lambda space, arch: space.num_params(arch) / 1e6, False, "trainable parameters, millions"),
    "flops": Proxy(lambda space, arch: _flops(space, arch) / 1e6, False, "forward FLOPs of one image, millions"),
}


def _flops(space, arch: str) -> int:
  if not hasattr(space, "flops"):
    raise ValueError(f"flops are counted for NB201 and NB101, not for space {space.name!r}")
  return space.flops(arch)


PROXIES: dict[str, Proxy] = {**ARCH_PROXIES, **NETWORK_PROXIES}
NAMES = tuple(PROXIES)


def check_names(names: Sequence[str]) -> tuple[str, ...]:
  """``names`` as a tuple, or ValueError naming an unknown proxy."""
  bad = [n for n in names if n not in PROXIES]
  if bad:
    raise ValueError(f"unknown proxy {bad[0]!r}; known: {', '.join(NAMES)}")
  return tuple(names)


def proxies_fn(net, names: Sequence[str] = tuple(NETWORK_PROXIES), *, num_classes: int | None = None,
               scan_cells: bool = True) -> Callable:
  """``f(variables, x, labels, key, *args) -> {name: scalar}`` for the
  network proxies among ``names`` (arch proxies are skipped: see
  ``arch_proxies``). ``key`` seeds zen's Gaussian weights and inputs;
  ``args`` are the network's extra inputs (NB201: the op array). Not jitted:
  callers jit it, alone or with the NTK kernels (``scoring.score_fn``).

  ``scan_cells``: a network with that option (NB201) runs its cells as one
  scan here: the same values to float32 rounding, in half the compilation
  and faster calls; the NTK kernels, which ran slower so, keep the network
  as given (BENCHMARKS.md, "Cells as one scan")."""
  names = [n for n in check_names(names) if PROXIES[n].network]
  num_classes = num_classes if num_classes is not None else getattr(net, "num_classes", None)
  if scan_cells and getattr(net, "scan_cells", None) is False:
    net = net.clone(scan_cells=True)

  def f(variables, x, labels, key, *args):
    passes = _Passes(net, variables, x, labels, args, key)
    out = {}
    for name in names:
      if name == "epe_nas":
        if num_classes is None:
          raise ValueError("epe_nas needs the class count: pass num_classes")
        out[name] = _epe_nas(passes, num_classes)
      else:
        out[name] = NETWORK_PROXIES[name].fn(passes)
    return out
  return f


def arch_proxies(space, arch: str, names: Sequence[str]) -> dict[str, float]:
  """The proxies among ``names`` that need no network pass, for ``arch``."""
  return {n: PROXIES[n].fn(space, arch) for n in check_names(names) if not PROXIES[n].network}

