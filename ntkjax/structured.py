"""The structured empirical NTK: per-layer Jacobians from one forward and
the layers' output cotangents, never the whole Jacobian by autodiff.

In the spirit of neural-tangents' structured derivatives (Novak et al.,
ICML 2022): a layer's parameters act on the layer's input in a known way
(``taps.Tap``), so the Jacobian of an output row with respect to them is a
contraction of that input with the row's cotangent at the layer's output:

* conv ``y = conv(x, W) + b``: ∂row/∂W = Σ_pixels patches(x)ᵀ δ (im2col
  from padding and strided slices), ∂row/∂b = Σ_pixels δ;
* dense ``y = x W + b``: x ⊗ δ and δ;
* affine BatchNorm ``y = x̂ s + b``: Σ_pixels x̂ δ and Σ_pixels δ.

One batched forward records every tapped layer's input and adds a zero
perturbation to its output (``taps.TAPS``, ``taps.PERTURBATIONS``). The
VJP with respect to the perturbations then gives every layer's output
cotangent δ:

* samples independent (eval BN): one backward per output column (one for
  ``sum_logits``) gives every sample's own cotangent at once, and the
  per-sample Jacobian of a layer is one einsum (a conv's: one GEMM per
  sample under ``lax.map`` on XLA:CPU, where the batched forms ran
  slower; one batched GEMM on other platforms);
* samples coupled (train BN, or the paper code's cell BN): each output row
  needs its own batched backward, vmapped over a chunk of rows (8 by
  default, or ``chunk_size``), the chunks one after another under
  ``lax.map``, so that scratch grows with the rows in flight, not with the
  batch (unrolled chunks were interleaved by XLA's scheduler, every row's
  cotangents live at once: docs/design.md); the row's Jacobian sums the
  contraction over the batch, one GEMM per layer against the layer's im2col
  built once for all rows.

Θ = Σ_l G_l G_lᵀ over the returned blocks G_l (``ntk.contract_blocks``).
A tap whose ``active`` flag is False (an op the arch does not select) is
skipped with ``lax.cond``; with NB201's ``select='switch'`` the forward and
every row's backward run only the selected ops too. Parameters that no tap
covers are an error naming them; the other implementations handle any
network.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
from flax import traverse_util
from jax import lax

from ntkjax.taps import PERTURBATIONS, TAPS, Tap, conv_output_size

__all__ = ["structured_jacobian", "Coverage", "coverage", "covered_params", "default_chunk"]

_MUTABLE_STATS = "batch_stats"
_ROWS_IN_FLIGHT = 8
# Platforms (``jax.lax.platform_dependent`` names) whose per-sample conv
# grads run one sample at a time under ``lax.map``; the others use im2col
# and one batched GEMM (a loop of small GEMMs would starve a GPU).
MAPPED_CONV_PLATFORMS = ("cpu",)


def _patches(rec: Tap, x: jax.Array | None = None) -> jax.Array:
  """im2col of a conv tap's input (or of ``x``, images shaped like it):
  [n, Ho, Wo, kh*kw, C_in]."""
  x = rec.inputs if x is None else x
  (kh, kw), (sh, sw), (ph, pw), d = rec.kernel_size, rec.stride, rec.padding, rec.dilation
  if (kh, kw) == (1, 1) and (sh, sw) == (1, 1) and (ph, pw) == (0, 0):
    return x[:, :, :, None, :]
  xp = jnp.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
  ho, wo = conv_output_size(x.shape[1], kh, sh, ph, d), conv_output_size(x.shape[2], kw, sw, pw, d)
  cols = [xp[:, i * d: i * d + sh * (ho - 1) + 1: sh, j * d: j * d + sw * (wo - 1) + 1: sw, :]
          for i in range(kh) for j in range(kw)]
  return jnp.stack(cols, axis=3)


def _per_sample_conv_grads(rec: Tap, delta: jax.Array) -> jax.Array:
  """Per-sample weight gradients of a conv (groups == 1), one sample at a
  time under ``lax.map``: that sample's im2col [Ho*Wo, kh*kw*C_in] against
  its cotangents [Ho*Wo, k*C_out] in one 2-D GEMM, which XLA:CPU runs at
  matmul speed, where a convolution grouped over the samples and a batched
  GEMM ran slower (BENCHMARKS.md, "Tried and rejected").
  Returns [n, k, kh*kw*C_in*C_out] from ``delta`` [k, n, Ho, Wo, C_out]."""
  k, c_out = delta.shape[0], delta.shape[-1]

  def one(args):
    xi, di = args  # [H, W, C_in], [k, Ho, Wo, C_out]
    p = _patches(rec, xi[None])[0]
    p = p.reshape(-1, p.shape[-2] * p.shape[-1])
    d = jnp.moveaxis(di, 0, -2).reshape(p.shape[0], k * c_out)
    return jnp.swapaxes((p.T @ d).reshape(-1, k, c_out), 0, 1).reshape(k, -1)

  return jax.lax.map(one, (rec.inputs, jnp.swapaxes(delta, 0, 1)))


def _conv_im2col_grads(rec: Tap, patches: jax.Array, delta: jax.Array, lead: str, res: str) -> jax.Array:
  """Conv weight Jacobians as one einsum of the im2col ``patches`` with the
  cotangents (per sample: a GEMM batched over samples)."""
  g = rec.groups
  p = patches.reshape(patches.shape[:4] + (g, patches.shape[-1] // g))
  dl = delta.reshape(delta.shape[:-1] + (g, delta.shape[-1] // g))
  return jnp.einsum(f"nhwtgc,{lead}hwgo->{res}tgco", p, dl)


def _rows_operand(rec: Tap) -> jax.Array:
  """A coupled tap's input laid out for one GEMM over every row: conv
  [kh*kw*C_in, n*Ho*Wo] (groups == 1) or the grouped patches, dense
  [n, D_in], affine [n, H, W, C]. Built once per tap, shared by all rows."""
  if rec.kind == "conv":
    p = _patches(rec)
    if rec.groups == 1:
      return jnp.transpose(p, (3, 4, 0, 1, 2)).reshape(p.shape[3] * p.shape[4], -1)
    return p
  return rec.inputs


def _jacobians(rec: Tap, operand: jax.Array, delta: jax.Array, *, per_sample: bool, want_weight: bool,
               want_bias: bool) -> list[jax.Array]:
  """The layer's Jacobian blocks for every row: [rows..., P] arrays.

  ``delta`` is the output cotangent, [k, n, ...] (``per_sample``: row (i, c)
  is sample i's own cotangent for output c) or [r, n, ...] (each row's
  cotangent over the whole batch; ``operand`` from ``_rows_operand``).
  Returns [n, k, P] or [r, P] blocks.
  """
  out = []
  lead = "kn" if per_sample else "rn"
  res = "nk" if per_sample else "r"
  spatial = tuple(range(2, delta.ndim - 1))
  if want_weight:
    if rec.kind == "conv" and not per_sample and rec.groups == 1:
      # One GEMM [kh*kw*C_in, n*H*W] x [n*H*W, rows*C_out]: XLA:CPU runs it at
      # close to matmul speed, where the einsum's batched form is half as fast.
      r, c_out = delta.shape[0], delta.shape[-1]
      rows = jnp.moveaxis(delta, 0, -2).reshape(-1, r * c_out)
      j = (operand @ rows).reshape(-1, r, c_out).transpose(1, 0, 2)
    elif rec.kind == "conv" and per_sample and rec.groups == 1:
      # Chosen when the target platform is known (lowering): per-sample GEMMs
      # under lax.map on XLA:CPU, the batched im2col GEMM elsewhere.
      j = jax.lax.platform_dependent(
          **{platform: lambda: _per_sample_conv_grads(rec, delta) for platform in MAPPED_CONV_PLATFORMS},
          default=lambda: _conv_im2col_grads(rec, _patches(rec), delta, lead, res).reshape(
              delta.shape[1], delta.shape[0], -1))
    elif rec.kind == "conv":
      j = _conv_im2col_grads(rec, _patches(rec) if per_sample else operand, delta, lead, res)
    elif rec.kind == "dense":
      j = jnp.einsum(f"ni,{lead}o->{res}io", rec.inputs, delta)
    elif rec.kind == "affine":
      j = jnp.einsum(f"nhwc,{lead}hwc->{res}c", rec.inputs, delta)
    else:
      raise ValueError(f"unknown tap kind {rec.kind!r}")
    out.append(j)
  if want_bias:
    b = delta.sum(axis=spatial) if spatial else delta  # [k|r, n, C]
    out.append(jnp.swapaxes(b, 0, 1) if per_sample else b.sum(axis=1))
  return [a.reshape(a.shape[:2] + (-1,)) if per_sample else a.reshape(a.shape[0], -1) for a in out]


def _if_active(rec: Tap, fn: Callable[[], list]) -> list:
  """``fn()`` for a selected layer; for an unselected op of an arch-as-data
  network (``rec.active`` False) zeros, without running ``fn`` (a batched
  ``active``, e.g. archs under vmap, runs both)."""
  if rec.active is None:
    return fn()
  zeros = lambda: jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn))
  return jax.lax.cond(rec.active, fn, zeros)


def _flat_taps(taps) -> dict[tuple, Tap]:
  out = {}
  for key, recs in traverse_util.flatten_dict(taps).items():
    if len(recs) != 1:
      raise ValueError(f"layer {'/'.join(key[:-1])} was applied {len(recs)} times in one call; the structured "
                       "NTK needs each tapped layer used once (use implementation='jacobian_contraction')")
    out[key] = recs[0]
  return out


def covered_params(taps: dict[tuple, Tap]) -> dict[tuple, tuple[tuple, str]]:
  """Param path -> (tap key, 'weight' | 'bias') for every tapped parameter."""
  out = {}
  for key, rec in taps.items():
    for role in ("weight", "bias"):
      rel = getattr(rec, role)
      if rel is not None:
        out[tuple(key[:-1]) + tuple(rel)] = (key, role)
  return out


def _used(module, variables, x, args, train, stats, paths) -> list[tuple]:
  """The parameters among ``paths`` that the forward pass reads."""
  flat = traverse_util.flatten_dict(variables["params"])
  rest = {k: v for k, v in flat.items() if k not in set(paths)}

  def forward(selected):
    params = traverse_util.unflatten_dict({**rest, **dict(zip(paths, selected))})
    return module.apply({**variables, "params": params}, x, *args, train=train, mutable=stats)

  jaxpr = jax.make_jaxpr(forward)([flat[k] for k in paths]).jaxpr
  read = {id(v) for eqn in jaxpr.eqns for v in eqn.invars} | {id(v) for v in jaxpr.outvars}
  return [k for k, var in zip(paths, jaxpr.invars) if id(var) in read]


def _shapes(module, base, x, args, train, stats):
  return jax.eval_shape(lambda: module.apply(base, x, *args, train=train,
                                             mutable=[TAPS, PERTURBATIONS] + stats))[1]


def _base(variables):
  return {c: v for c, v in variables.items() if c not in (TAPS, PERTURBATIONS)}


def _stats(train, base):
  return [_MUTABLE_STATS] if train and _MUTABLE_STATS in base else []


class Coverage(NamedTuple):
  """Which tap covers which parameter, traced once per kernel (shapes only)."""
  perturbation_shapes: dict
  taps: dict           # tap key -> Tap (shapes)
  covered: dict        # param path -> (tap key, 'weight' | 'bias')


def coverage(module, variables: dict, x: jax.Array, args: Sequence, *, train: bool,
             chosen: dict[tuple, jax.Array]) -> Coverage:
  """The taps of ``module`` and the parameters they cover, evaluated at
  trace time (shapes only); raises ValueError naming the first parameter of
  ``chosen`` that no tap covers and the forward pass reads."""
  base = _base(variables)
  stats = _stats(train, base)
  shapes = _shapes(module, base, x, args, train, stats)
  if PERTURBATIONS not in shapes:
    raise ValueError(f"{type(module).__name__} has no tapped layers (ntkjax.taps); the structured NTK "
                     "cannot see its parameters")
  taps = _flat_taps(shapes[TAPS])
  covered = covered_params(taps)
  missing = [k for k in chosen if tuple(k) not in covered]
  if missing:  # a parameter the forward never reads (an op a static arch leaves out) has a zero Jacobian
    missing = _used(module, base, x, args, train, stats, missing)
  if missing:
    raise ValueError(f"the structured NTK sees no tap for {len(missing)} parameter(s), e.g. {'/'.join(missing[0])}; "
                     "use implementation='jacobian_contraction' (or 'auto')")
  return Coverage(shapes[PERTURBATIONS], taps, covered)


def default_chunk(rows: int) -> int:
  """Coupled rows per batched backward when ``chunk_size`` is None: 8, as
  fast as larger chunks in steady state and a quarter of their scratch
  (BENCHMARKS.md, "Memory")."""
  return min(rows, _ROWS_IN_FLIGHT)


def structured_jacobian(module, variables: dict, x: jax.Array, args: Sequence, *, train: bool,
                        chosen: dict[tuple, jax.Array], reduce: Callable[[jax.Array], jax.Array], independent: bool,
                        chunk_size: int | None, first=0, count: int | None = None,
                        cover: Coverage | None = None) -> list[jax.Array]:
  """J of ``module`` (a Flax module built of tapping layers) over the
  parameters ``chosen`` (flat by path), as one [n, k, P_l] block per tapped
  weight or bias, for ``ntk.empirical_ntk_fn`` and
  ``ntk.jacobian_blocks_fn``. Coupled samples: only the rows of samples
  ``first..first+count-1`` (default all), each a VJP of the whole batch.
  ``cover``: ``coverage(...)`` of the same call, where the caller has it."""
  base = _base(variables)
  stats = _stats(train, base)
  if cover is None:
    cover = coverage(module, variables, x, args, train=train, chosen=chosen)
  perturbation_shapes, covered = cover.perturbation_shapes, cover.covered
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), perturbation_shapes)
  wanted = {covered[tuple(k)] for k in chosen if tuple(k) in covered}

  def forward(perturbations):
    out, state = module.apply({**base, PERTURBATIONS: perturbations}, x, *args, train=train,
                              mutable=[TAPS] + stats)
    return reduce(out), state[TAPS]

  logits, vjp_fn, taps = jax.vjp(forward, zeros, has_aux=True)
  taps = _flat_taps(taps)
  n, k = logits.shape

  used = {key: ((key, "weight") in wanted, (key, "bias") in wanted) for key in taps}
  used = {key: wb for key, wb in used.items() if any(wb)}
  operands = {key: None if independent else _if_active(taps[key], lambda key=key: _rows_operand(taps[key]))
              for key in used}

  def blocks(cotangents):
    """Jacobian blocks of every wanted parameter for a stack of cotangents."""
    deltas = traverse_util.flatten_dict(jax.vmap(lambda c: vjp_fn(c)[0])(cotangents))
    deltas = {key: deltas[key if taps[key].perturbation is None else key[:-1] + (taps[key].perturbation,)]
              for key in used}
    out = []
    for key, (want_w, want_b) in used.items():
      out += _if_active(taps[key], lambda key=key, want_w=want_w, want_b=want_b: _jacobians(
          taps[key], operands[key], deltas[key], per_sample=independent, want_weight=want_w, want_bias=want_b))
    return out

  if independent:  # output column c of every sample at once: [k, n, k] cotangents, [n, k, P_l] blocks
    step = k if chunk_size is None else min(chunk_size, k)
    parts = []
    for lo in range(0, k, step):
      cols = jnp.arange(lo, min(lo + step, k))
      parts.append(blocks(jnp.broadcast_to(jax.nn.one_hot(cols, k, dtype=logits.dtype)[:, None, :],
                                           (len(cols), n, k))))
    return [jnp.concatenate(p, axis=1) for p in zip(*parts)]
  rows = (n if count is None else count) * k
  cotangents = lambda idx: jax.nn.one_hot(idx, n * k, dtype=logits.dtype).reshape(-1, n, k)
  chunk = default_chunk(rows) if chunk_size is None else min(chunk_size, rows)
  if chunk == rows:
    return [b.reshape(-1, k, b.shape[-1]) for b in blocks(cotangents(first * k + jnp.arange(rows)))]
  # Chunks run one after another: unrolled, XLA:CPU's scheduler interleaves
  # them and every row's cotangents are live together (docs/design.md).
  n_chunks = -(-rows // chunk)
  idx = first * k + jnp.arange(n_chunks * chunk).reshape(n_chunks, chunk)  # rows past n*k: zeros
  mapped = lax.map(lambda i: blocks(cotangents(i)), idx)
  return [a.reshape((-1, a.shape[-1]))[:rows].reshape(-1, k, a.shape[-1]) for a in mapped]
