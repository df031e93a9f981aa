"""Empirical neural tangent kernels of Flax networks, with exact BatchNorm.

The empirical NTK of a network f with parameters θ on a minibatch X is

    Θ(X, X) = J(X) J(X)ᵀ,   J = ∂f(X)/∂θ,

contracted over the parameters. ``empirical_ntk_fn`` builds a pure function
``ntk_fn(variables, x, *args)`` for it, in the style of neural-tangents'
``nt.empirical_ntk_fn`` (which cannot be imported with current JAX; see
BUILD.md). Agreement with neural-tangents 0.6.5 is checked against goldens in
``tests/golden``.

Output reductions (``reduction=``), for logits f(x) ∈ R^C:

* ``'sum_logits'``: rows are ∂(Σ_c f_c(x_i))/∂θ; Θ is [N, N]. This is the
  convention of the paper's official code and of TE-NAS.
* ``'trace'``: Θ_ij = Σ_c ⟨∂f_c(x_i), ∂f_c(x_j)⟩, [N, N]. neural-tangents'
  ``trace_axes=(-1,)`` divides this by C; pass ``normalize_trace=True`` for
  that.
* ``'full'``: Θ_ijab = ⟨∂f_a(x_i), ∂f_b(x_j)⟩, [N, N, C, C], as
  neural-tangents' ``trace_axes=()``.

BatchNorm. In train mode (``bn='train'``) BN normalises with batch statistics,
so every output depends on every sample; the exact Jacobian is that of the
batched function and per-sample ``vmap`` would be wrong. ``vmap_axes``
follows neural-tangents: ``0`` means samples are independent along axis 0
(per-sample gradients are exact), ``None`` means they are not. By default
(``'auto'``) it comes from the network's declared behaviour: a Flax module
(or a function) with a ``couples_samples(train) -> bool`` method is asked;
anything else is treated as coupled, which is always exact.

Implementations (``implementation=``):

* ``'jacobian_contraction'``: materialise J (per-sample when independent, by
  batched VJPs over the output basis when coupled) and contract it.
  Memory ~ N·K·P floats (K = 1 for ``sum_logits``, else C).
* ``'ntk_vector_products'``: never stores J; each column is
  Θ e = J (Jᵀ e), one VJP and one JVP of the batched network. Memory ~ P per
  column in flight; compute ~ N·K batched backward+forward passes.
* ``'structured'``: per-layer Jacobians from each layer's recorded input and
  output cotangent (``ntkjax.structured``), for Flax modules built of
  ``ntkjax.layers`` (every space here). Independent samples cost one batched
  backward per output column; coupled ones one per output row, without
  autodiff through the weight gradients (on the CPU, NB201 coupled kernels
  went from 0.09× to 0.8–1.05× the PyTorch per-sample loop; BENCHMARKS.md).
  Memory ~ N·K·P, as Jacobian contraction.
* ``'auto'``: NTK-vector products if J would exceed ``max_jacobian_bytes``,
  else structured if taps cover every chosen parameter, else Jacobian
  contraction.

``chunk_size`` bounds how many samples (independent) or output rows
(coupled) or columns (NTK-vector products) are in flight at once. For the
structured implementation chunks are unrolled (rows of a coupled kernel,
output columns of an independent one); without ``chunk_size`` coupled rows go
in at most 8 chunks of at least 8. For the others chunks run sequentially
under ``lax.map``, each vectorised with ``vmap``: use it only when memory
requires it, since on XLA:CPU convolutions inside a loop body run ~10x
slower (BENCHMARKS.md).

``param_filter`` restricts θ. Pass a callable ``(path: tuple[str, ...]) ->
bool`` over paths in ``variables['params']`` or a preset name: ``'all'`` or
``'paper_code'`` (parameters PyTorch would name ``weight`` — conv/dense
kernels and BN scales — excluding the classifier, as the official code does).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, NamedTuple, get_args

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import traverse_util
from jax import lax

from ntkjax import structured

__all__ = [
    "REDUCTIONS", "IMPLEMENTATIONS", "PARAM_FILTERS", "empirical_ntk_fn",
    "paper_code_filter", "resolve_param_filter", "split_params",
]

Reduction = Literal["sum_logits", "trace", "full"]
Implementation = Literal["auto", "jacobian_contraction", "ntk_vector_products", "structured"]
BNMode = Literal["eval", "train"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)
IMPLEMENTATIONS: tuple[str, ...] = get_args(Implementation)
_DEFAULT_MAX_JACOBIAN_BYTES = 8 * 2**30

PathFilter = Callable[[tuple[str, ...]], bool]


def paper_code_filter(path: tuple[str, ...]) -> bool:
  """PyTorch ``weight`` parameters (kernels, BN scales), classifier excluded."""
  return path[-1] in ("kernel", "scale") and not any("classifier" in p for p in path)


PARAM_FILTERS: dict[str, PathFilter | None] = {"all": None, "paper_code": paper_code_filter}


def resolve_param_filter(param_filter) -> PathFilter | None:
  if param_filter is None or callable(param_filter):
    return param_filter
  if param_filter not in PARAM_FILTERS:
    raise ValueError(f"unknown param_filter {param_filter!r}; known: {', '.join(PARAM_FILTERS)}")
  return PARAM_FILTERS[param_filter]


def split_params(params, param_filter: PathFilter | None):
  """Splits a params tree into (selected, frozen) flat dicts keyed by path."""
  flat = traverse_util.flatten_dict(params)
  if param_filter is None:
    return flat, {}
  chosen = {k: v for k, v in flat.items() if param_filter(tuple(k))}
  if not chosen:
    raise ValueError("param_filter selected no parameters")
  return chosen, {k: v for k, v in flat.items() if k not in chosen}


def _as_apply(apply_fn) -> tuple[Callable, Callable[[bool], bool] | None]:
  """Normalises to ``f(variables, x, *args, train) -> logits`` plus the
  declared ``couples_samples`` (or None)."""
  declared = getattr(apply_fn, "couples_samples", None)
  if isinstance(apply_fn, nn.Module):
    module = apply_fn

    def f(variables, x, *args, train):
      if train and "batch_stats" in variables:
        # Stats updates are a side output; the NTK only needs the logits.
        return module.apply(variables, x, *args, train=True, mutable=["batch_stats"])[0]
      return module.apply(variables, x, *args, train=train)
    return f, declared
  if not callable(apply_fn):
    raise TypeError(f"apply_fn must be a Flax module or a callable, got {apply_fn!r}")
  return apply_fn, declared


def _chunked_vmap(fn, xs, chunk_size: int | None):
  """``vmap(fn)(xs)`` over the leading axis, ``chunk_size`` rows at a time."""
  n = jax.tree_util.tree_leaves(xs)[0].shape[0]
  if chunk_size is None or chunk_size >= n:
    return jax.vmap(fn)(xs)
  n_chunks = -(-n // chunk_size)
  pad = n_chunks * chunk_size - n

  def to_chunks(a):
    a = jnp.concatenate([a, jnp.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a
    return a.reshape((n_chunks, chunk_size) + a.shape[1:])

  out = lax.map(jax.vmap(fn), jax.tree_util.tree_map(to_chunks, xs))
  return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:])[:n], out)


def _contract(jac_a, jac_b, reduction: str):
  """Σ over parameter leaves of J_a J_bᵀ; leaves are [N, K, ...]."""
  total = None
  for a, b in zip(jax.tree_util.tree_leaves(jac_a), jax.tree_util.tree_leaves(jac_b)):
    a = a.reshape(a.shape[:2] + (-1,))
    b = b.reshape(b.shape[:2] + (-1,))
    if reduction == "full":
      term = jnp.einsum("iap,jbp->ijab", a, b)
    else:  # sum_logits has K == 1; trace sums the diagonal over K
      term = jnp.einsum("ikp,jkp->ij", a, b)
    total = term if total is None else total + term
  return total


class _Problem(NamedTuple):
  """What every implementation needs for one kernel: the (reduced) logits
  as a function of the chosen parameters and the images, and the sizes."""
  logits: Callable      # (theta, xs) -> [n, k]
  theta: dict           # the chosen parameters, flat by path
  x: jax.Array
  n: int                # samples
  k: int                # outputs per sample after the reduction (1 for sum_logits)
  independent: bool     # per-sample gradients are exact
  chunk_size: int | None
  reduction: str
  module: Any           # the Flax module (None for a plain function)
  variables: dict
  args: tuple
  train: bool
  reduce: Callable      # logits [n, C] -> [n, k]


def _one_hot_rows(p: _Problem):
  """Row indices 0..n*k-1 and ``r -> e_r`` as an [n, k] cotangent, built per
  row inside the mapped function so memory stays bounded by chunk_size."""
  size = p.n * p.k
  return jnp.arange(size), lambda r: jax.nn.one_hot(r, size, dtype=p.x.dtype).reshape(p.n, p.k)


def _jacobian_contraction(p: _Problem) -> jax.Array:
  """Materialises J (per sample when independent, by batched VJPs over the
  output basis when coupled) and contracts it."""
  if p.independent:
    def per_sample(xi):
      if p.k == 1:  # a plain gradient, without jacrev's basis vmap
        g = jax.grad(lambda t: p.logits(t, xi[None])[0, 0])(p.theta)
        return jax.tree_util.tree_map(lambda a: a[None], g)
      return jax.jacrev(lambda t: p.logits(t, xi[None])[0])(p.theta)  # leaves [K, ...]
    jac = _chunked_vmap(per_sample, p.x, p.chunk_size)
  else:
    rows_idx, one_hot = _one_hot_rows(p)
    _, vjp_fn = jax.vjp(lambda t: p.logits(t, p.x), p.theta)
    rows = _chunked_vmap(lambda r: vjp_fn(one_hot(r))[0], rows_idx, p.chunk_size)  # [N*K, ...]
    jac = jax.tree_util.tree_map(lambda a: a.reshape((p.n, p.k) + a.shape[1:]), rows)
  return _contract(jac, jac, p.reduction)


def _ntk_vector_products(p: _Problem) -> jax.Array:
  """Θ column by column, J (Jᵀ e), without storing J."""
  rows_idx, one_hot = _one_hot_rows(p)
  # One forward pass: the VJP is the transpose of the linearised map.
  _, jvp_fn = jax.linearize(lambda t: p.logits(t, p.x), p.theta)
  vjp_fn = jax.linear_transpose(jvp_fn, p.theta)
  cols = _chunked_vmap(lambda r: jvp_fn(vjp_fn(one_hot(r))[0]), rows_idx, p.chunk_size)  # [N*K, N, K]
  cols = cols.reshape(p.n, p.k, p.n, p.k)  # (j, b, i, a)
  return jnp.transpose(cols, (2, 0, 3, 1)) if p.reduction == "full" else jnp.einsum("jkik->ij", cols)


def _structured(p: _Problem) -> jax.Array:
  """Per-layer Jacobians from tapped layer inputs and output cotangents
  (``ntkjax.structured``)."""
  if not isinstance(p.module, nn.Module):
    raise ValueError("implementation='structured' needs a Flax module built of ntkjax.layers, "
                     f"not {p.module!r}")
  return structured.structured_ntk(p.module, p.variables, p.x, p.args, train=p.train, chosen=p.theta,
                                   reduce=p.reduce, reduction=p.reduction, independent=p.independent,
                                   chunk_size=p.chunk_size)


_IMPLEMENTATION_FNS: dict[str, Callable[[_Problem], jax.Array]] = {
    "jacobian_contraction": _jacobian_contraction,
    "ntk_vector_products": _ntk_vector_products,
    "structured": _structured,
}


def empirical_ntk_fn(
    apply_fn,
    *,
    bn: BNMode = "eval",
    reduction: Reduction = "sum_logits",
    param_filter: PathFilter | str | None = None,
    implementation: Implementation = "auto",
    chunk_size: int | None = None,
    normalize_trace: bool = False,
    vmap_axes: Literal[0, None, "auto"] = "auto",
    max_jacobian_bytes: int = _DEFAULT_MAX_JACOBIAN_BYTES,
) -> Callable[..., jax.Array]:
  """Returns ``ntk_fn(variables, x, *args) -> Θ`` (module docstring).

  Args:
    apply_fn: a Flax module, or ``f(variables, x, *args, train: bool)``
      returning logits [N, C].
    bn: ``'eval'`` (running statistics) or ``'train'`` (batch statistics).
    reduction: ``'sum_logits'`` ([N, N]), ``'trace'`` ([N, N]) or ``'full'``
      ([N, N, C, C]).
    param_filter: which entries of ``variables['params']`` are θ; the rest
      are held fixed. A callable on the path tuple, ``'all'`` or
      ``'paper_code'``.
    implementation: ``'auto'``, ``'structured'``, ``'jacobian_contraction'``
      or ``'ntk_vector_products'``.
    chunk_size: at most this many samples/rows/columns vectorised at once.
    normalize_trace: divide the ``'trace'`` kernel by C (neural-tangents).
    vmap_axes: ``0`` (samples independent), ``None`` (coupled) or ``'auto'``.
    max_jacobian_bytes: ``'auto'`` switches to NTK-vector products above this.

  Returns:
    A pure, jittable function. ``x`` is the minibatch [N, ...]; ``*args``
    are passed to ``apply_fn`` after ``x`` (e.g. the NB201 op array).

  >>> from ntkjax.spaces import nb201
  >>> net = nb201.Network(C=4, N=1)
  >>> ops = nb201.decode('|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|')
  >>> x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  >>> variables = net.init(jax.random.key(0), x, ops)
  >>> ntk_fn = jax.jit(empirical_ntk_fn(net, bn='train'))
  >>> ntk_fn(variables, x, ops).shape
  (4, 4)
  """
  if bn not in ("eval", "train"):
    raise ValueError(f"bn must be 'eval' or 'train', got {bn!r}")
  if reduction not in REDUCTIONS:
    raise ValueError(f"unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"unknown implementation {implementation!r}; known: {', '.join(IMPLEMENTATIONS)}")
  if chunk_size is not None and chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
  train = bn == "train"
  f, declared = _as_apply(apply_fn)
  if vmap_axes == "auto":
    independent = declared is not None and not declared(train)
  elif vmap_axes in (0, None):
    independent = vmap_axes == 0
  else:
    raise ValueError(f"vmap_axes must be 0, None or 'auto', got {vmap_axes!r}")
  select = resolve_param_filter(param_filter)

  def ntk_fn(variables, x, *args):
    chosen, frozen = split_params(variables["params"], select)

    def reduce(out):
      if out.ndim != 2:
        raise ValueError(f"apply_fn must return logits [N, C], got shape {out.shape}")
      return out.sum(axis=1, keepdims=True) if reduction == "sum_logits" else out

    def logits(theta, xs):
      params = traverse_util.unflatten_dict({**frozen, **theta})
      return reduce(f({**variables, "params": params}, xs, *args, train=train))

    n = x.shape[0]
    k = 1 if reduction == "sum_logits" else jax.eval_shape(lambda: logits(chosen, x)).shape[1]
    impl = implementation
    module = apply_fn if isinstance(apply_fn, nn.Module) else None
    if impl == "auto":
      n_params = sum(math.prod(v.shape) for v in chosen.values())
      jac_bytes = n * k * n_params * jnp.dtype(x.dtype).itemsize
      if jac_bytes > max_jacobian_bytes:
        impl = "ntk_vector_products"
      elif module is not None and structured.supports(module, variables, x, args, train=train, chosen=chosen):
        impl = "structured"
      else:
        impl = "jacobian_contraction"
    kernel = _IMPLEMENTATION_FNS[impl](_Problem(logits, chosen, x, n, k, independent, chunk_size, reduction,
                                                module, variables, args, train, reduce))
    if reduction == "trace" and normalize_trace:
      kernel = kernel / k
    return kernel

  return ntk_fn
