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
  autodiff through the weight gradients (BENCHMARKS.md, "NTK kernel
  speed, GPU" and "NTK kernel speed, CPU").
  Memory ~ N·K·P, as Jacobian contraction.
* ``'auto'``: NTK-vector products if J would exceed ``max_jacobian_bytes``,
  else structured if taps cover every chosen parameter, else Jacobian
  contraction.

``jacobian_blocks_fn`` returns the rows of J that the kernel contracts, by
sample block (``samples=(first, count)``), so that one kernel's rows can be
split over devices (``ntkjax.kernel_sharding``).

``chunk_size`` bounds how many samples (independent) or output rows
(coupled) or columns (NTK-vector products) are in flight at once: the chunks
run one after another under ``lax.map``, each vectorised with ``vmap`` (the
structured kernel's independent output columns are unrolled). Without it the
structured kernel's coupled rows go in mapped chunks of 8, so that its
scratch grows with those rows, not with the batch (docs/design.md), and the
other implementations vectorise everything at once. Give ``chunk_size``, or
a ``memory_budget`` that picks it, only when memory requires it, since a
loop body limits XLA's fusions.

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

from ntkjax import memory, structured, xla_options

__all__ = [
    "REDUCTIONS", "IMPLEMENTATIONS", "PARAM_FILTERS", "empirical_ntk_fn", "jacobian_blocks_fn",
    "contract_blocks", "paper_code_filter", "resolve_param_filter", "split_params", "plan_memory",
]

Reduction = Literal["sum_logits", "trace", "full"]
Implementation = Literal["auto", "jacobian_contraction", "ntk_vector_products", "structured"]
BNMode = Literal["eval", "train"]
REDUCTIONS: tuple[str, ...] = get_args(Reduction)
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


def contract_blocks(blocks_a, blocks_b, reduction: str):
  """Σ_l A_l B_lᵀ over Jacobian blocks [n, K, P_l] (``jacobian_blocks_fn``):
  [n_a, n_b] for ``sum_logits``/``trace``, [n_a, n_b, K, K] for ``full``."""
  total = None
  # Each term is one 2-D matrix product: XLA:CPU ran the einsum with two
  # contracting dims ("ikp,jkp->ij") slower (BENCHMARKS.md, "Tried and rejected").
  for a, b in zip(jax.tree_util.tree_leaves(blocks_a), jax.tree_util.tree_leaves(blocks_b)):
    (n_a, k), n_b = a.shape[:2], b.shape[0]
    if reduction == "full":
      term = (a.reshape(n_a * k, -1) @ b.reshape(n_b * k, -1).T).reshape(n_a, k, n_b, k).transpose(0, 2, 1, 3)
    else:  # sum_logits has K == 1; trace sums the diagonal over K: Σ_k Σ_p = one contraction over (k, p)
      term = a.reshape(n_a, -1) @ b.reshape(n_b, -1).T
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
  first: Any = 0        # coupled: J's rows are those of samples first..first+count-1
  count: int | None = None
  cover: Any = None     # structured: the taps' coverage, where the resolver traced it


def _one_hot_rows(p: _Problem):
  """Row indices (those of samples ``first..first+count-1``, default all
  n*k) and ``r -> e_r`` as an [n, k] cotangent, built per row inside the
  mapped function so memory stays bounded by chunk_size."""
  size = p.n * p.k
  count = p.n if p.count is None else p.count
  return p.first * p.k + jnp.arange(count * p.k), lambda r: jax.nn.one_hot(r, size, dtype=p.x.dtype).reshape(p.n, p.k)


def _jacobian_blocks(p: _Problem) -> list[jax.Array]:
  """J by autodiff (per sample when independent, by batched VJPs over the
  output basis when coupled), as blocks [n, k, P_l] per parameter."""
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
    rows = _chunked_vmap(lambda r: vjp_fn(one_hot(r))[0], rows_idx, p.chunk_size)  # [count*K, ...]
    jac = jax.tree_util.tree_map(lambda a: a.reshape((-1, p.k) + a.shape[1:]), rows)
  return [a.reshape(a.shape[:2] + (-1,)) for a in jax.tree_util.tree_leaves(jac)]


def _ntk_vector_products(p: _Problem) -> jax.Array:
  """Θ column by column, J (Jᵀ e), without storing J."""
  rows_idx, one_hot = _one_hot_rows(p)  # never a sample block: empirical_ntk_fn passes none
  # One forward pass: the VJP is the transpose of the linearised map.
  _, jvp_fn = jax.linearize(lambda t: p.logits(t, p.x), p.theta)
  vjp_fn = jax.linear_transpose(jvp_fn, p.theta)
  cols = _chunked_vmap(lambda r: jvp_fn(vjp_fn(one_hot(r))[0]), rows_idx, p.chunk_size)  # [N*K, N, K]
  cols = cols.reshape(p.n, p.k, p.n, p.k)  # (j, b, i, a)
  return jnp.transpose(cols, (2, 0, 3, 1)) if p.reduction == "full" else jnp.einsum("jkik->ij", cols)


def _structured_blocks(p: _Problem) -> list[jax.Array]:
  """Per-layer Jacobians from tapped layer inputs and output cotangents
  (``ntkjax.structured``)."""
  if not isinstance(p.module, nn.Module):
    raise ValueError("implementation='structured' needs a Flax module built of ntkjax.layers, "
                     f"not {p.module!r}")
  return structured.structured_jacobian(p.module, p.variables, p.x, p.args, train=p.train, chosen=p.theta,
                                        reduce=p.reduce, independent=p.independent, chunk_size=p.chunk_size,
                                        first=p.first, count=p.count, cover=p.cover)


def _contracted(blocks_fn: Callable[[_Problem], list[jax.Array]]) -> Callable[[_Problem], jax.Array]:
  """The kernel of an implementation that forms J's blocks."""
  def kernel(p: _Problem) -> jax.Array:
    blocks = blocks_fn(p)
    return contract_blocks(blocks, blocks, p.reduction)
  return kernel


class _Implementation(NamedTuple):
  kernel: Callable[[_Problem], jax.Array]
  blocks: Callable[[_Problem], list[jax.Array]] | None  # J's rows as blocks; None: it never forms J


# Every implementation; 'auto' is resolved per call by ``_resolve``.
_IMPLEMENTATIONS: dict[str, _Implementation] = {
    "jacobian_contraction": _Implementation(_contracted(_jacobian_blocks), _jacobian_blocks),
    "structured": _Implementation(_contracted(_structured_blocks), _structured_blocks),
    "ntk_vector_products": _Implementation(_ntk_vector_products, None),
}
IMPLEMENTATIONS: tuple[str, ...] = ("auto", *_IMPLEMENTATIONS)


class _Options(NamedTuple):
  """An NTK function's options, validated once when it is built."""
  apply: Callable
  module: Any
  train: bool
  independent: bool
  select: PathFilter | None
  reduction: str
  implementation: str
  chunk_size: int | None
  max_jacobian_bytes: int


def _options(apply_fn, bn, reduction, param_filter, implementation, chunk_size, vmap_axes,
             max_jacobian_bytes) -> _Options:
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
  module = apply_fn if isinstance(apply_fn, nn.Module) else None
  return _Options(f, module, train, independent, resolve_param_filter(param_filter), reduction, implementation,
                  chunk_size, max_jacobian_bytes)


def _problem(o: _Options, variables, x, args, samples=None) -> tuple[_Problem, str]:
  """The problem for one call and the implementation that will solve it.
  ``samples=(first, count)`` keeps J's rows of those samples only."""
  chosen, frozen = split_params(variables["params"], o.select)
  first, count = (0, None) if samples is None else samples
  if o.independent and samples is not None:  # independent rows need only their own samples
    x = lax.dynamic_slice_in_dim(x, first, count)
    first, count = 0, None

  def reduce(out):
    if out.ndim != 2:
      raise ValueError(f"apply_fn must return logits [N, C], got shape {out.shape}")
    return out.sum(axis=1, keepdims=True) if o.reduction == "sum_logits" else out

  def logits(theta, xs):
    params = traverse_util.unflatten_dict({**frozen, **theta})
    return reduce(o.apply({**variables, "params": params}, xs, *args, train=o.train))

  n = x.shape[0]
  k = 1 if o.reduction == "sum_logits" else jax.eval_shape(lambda: logits(chosen, x)).shape[1]
  p = _Problem(logits, chosen, x, n, k, o.independent, o.chunk_size, o.reduction, o.module, variables, args,
               o.train, reduce, first, count)
  return _resolve(o, p) if o.implementation == "auto" else (p, o.implementation)


def _resolve(o: _Options, p: _Problem) -> tuple[_Problem, str]:
  """``'auto'``: NTK-vector products if J would exceed
  ``max_jacobian_bytes``, else structured where taps cover every chosen
  parameter (the coverage it traces goes with the problem, so it is traced
  once), else Jacobian contraction."""
  n_params = sum(math.prod(v.shape) for v in p.theta.values())
  if p.n * p.k * n_params * jnp.dtype(p.x.dtype).itemsize > o.max_jacobian_bytes:
    return p, "ntk_vector_products"
  if o.module is not None:
    try:
      cover = structured.coverage(o.module, p.variables, p.x, p.args, train=o.train, chosen=p.theta)
    except ValueError:
      pass
    else:
      return p._replace(cover=cover), "structured"
  return p, "jacobian_contraction"


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
    memory_budget: int | str | None = memory.DEFAULT,
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
    memory_budget: with ``chunk_size`` None, the device bytes the kernel may
      hold (``ntkjax.memory``): None (no limit), ``'auto'`` (the device's
      limit less headroom; half the host memory on the CPU), a number of
      bytes, or the default ``'accelerators'`` ('auto' on GPU/TPU, None on
      the CPU). At the first call per input shapes the kernel is compiled
      with candidate chunkings (``plan_memory``) and the largest that fits
      is used; ``'auto'`` implementation falls back from structured to
      Jacobian contraction to NTK-vector products when none of a
      structured chunking fits. ``ntk_fn.plans`` maps input shapes to the
      ``memory.ChunkPlan`` chosen. MemoryBudgetError when nothing fits.

  Returns:
    A pure, jittable function. ``x`` is the minibatch [N, ...]; ``*args``
    are passed to ``apply_fn`` after ``x`` (e.g. the NB201 op array).
    ``xla_options.jit`` jits it with the compiler options the engine uses
    (``ntkjax.xla_options``).

  >>> from ntkjax.spaces import nb201
  >>> net = nb201.Network(C=4, N=1)
  >>> ops = nb201.decode('|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|')
  >>> x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
  >>> variables = jax.jit(net.init)(jax.random.key(0), x, ops)
  >>> ntk_fn = jax.jit(empirical_ntk_fn(net, bn='train'))
  >>> ntk_fn(variables, x, ops).shape
  (4, 4)
  """
  o = _options(apply_fn, bn, reduction, param_filter, implementation, chunk_size, vmap_axes, max_jacobian_bytes)
  memory.resolve_budget(memory_budget, "cpu")  # a bad value fails here, not at the first call
  plans: dict = {}

  def ntk_fn(variables, x, *args):
    budget = memory.resolve_budget(memory_budget) if o.chunk_size is None else None
    oo = o
    if budget is not None:
      key = _shape_key(variables, x, args)
      if key not in plans:
        plans[key] = _plan(o, variables, x, args, budget)
      oo = o._replace(implementation=plans[key].implementation, chunk_size=plans[key].chunk_size)
    p, impl = _problem(oo, variables, x, args)
    kernel = _IMPLEMENTATIONS[impl].kernel(p)
    return kernel / p.k if reduction == "trace" and normalize_trace else kernel

  ntk_fn.plans = plans
  return ntk_fn


def _kernel(o: _Options, variables, x, args) -> jax.Array:
  p, impl = _problem(o, variables, x, args)
  return _IMPLEMENTATIONS[impl].kernel(p)


def _abstract(tree):
  return jax.tree.map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), tree)


def _shape_key(variables, x, args):
  leaves, treedef = jax.tree.flatten(_abstract((variables, x, args)))
  return treedef, tuple((a.shape, str(a.dtype)) for a in leaves), jax.default_backend()


# The order in which 'auto' falls back under a memory budget: by steady speed.
_FALLBACK = ("structured", "jacobian_contraction", "ntk_vector_products")


def _plan(o: _Options, variables, x, args, budget: int) -> memory.ChunkPlan:
  """The implementation and chunk size of ``o`` that fit ``budget`` at
  these shapes (``memory.choose``), each candidate compiled once."""
  p, impl = _problem(o, variables, x, args)
  names = [impl] if o.implementation != "auto" else [impl] + list(_FALLBACK[_FALLBACK.index(impl) + 1:])
  abstract = _abstract((variables, x, args))

  def chunks(name):
    if name == "structured" and p.independent:
      return memory.chunk_candidates(p.k)  # output columns
    return memory.chunk_candidates(p.n if p.independent and name == "jacobian_contraction" else p.n * p.k)

  def needs(name, chunk):
    oo = o._replace(implementation=name, chunk_size=chunk)
    fn = jax.jit(lambda v, xx, a: _kernel(oo, v, xx, a), compiler_options=xla_options.compiler_options())
    return memory.compiled_bytes(fn.lower(*abstract).compile())

  return memory.choose([(n, chunks(n)) for n in names], needs, budget,
                       describe=f"the {'coupled' if not p.independent else 'per-sample'} NTK of {p.n} samples")


def plan_memory(apply_fn, variables, x, *args, memory_budget: int | str = "auto", bn: BNMode = "eval",
                reduction: Reduction = "sum_logits", param_filter: PathFilter | str | None = None,
                implementation: Implementation = "auto", vmap_axes: Literal[0, None, "auto"] = "auto",
                max_jacobian_bytes: int = _DEFAULT_MAX_JACOBIAN_BYTES) -> memory.ChunkPlan:
  """The chunking ``empirical_ntk_fn`` (same options) would use under
  ``memory_budget`` at these inputs, with every candidate it compiled and
  measured; MemoryBudgetError if none fits."""
  budget = memory.resolve_budget(memory_budget)
  if budget is None:
    raise ValueError(f"plan_memory needs a budget, got memory_budget={memory_budget!r} on "
                     f"{jax.default_backend()}")
  o = _options(apply_fn, bn, reduction, param_filter, implementation, None, vmap_axes, max_jacobian_bytes)
  return _plan(o, variables, x, args, budget)


def shape_key(variables, x, args):
  """What a kernel's chunking depends on: the inputs' shapes, dtypes and the backend."""
  return _shape_key(variables, x, args)


def abstract(tree):
  """``tree`` as ``jax.ShapeDtypeStruct`` leaves, for lowering without data."""
  return _abstract(tree)


def problem_rows(apply_fn, options: dict, variables, x, args) -> tuple[int, bool, str]:
  """(rows of J = samples x outputs, whether samples are independent, the
  implementation 'auto' resolves to) for ``jacobian_blocks_fn(apply_fn, **options)``."""
  o = _options(apply_fn, options.get("bn", "eval"), options.get("reduction", "sum_logits"),
               options.get("param_filter"), options.get("implementation", "auto"), None,
               options.get("vmap_axes", "auto"), math.inf)
  p, impl = _problem(o, variables, x, args)
  return p.n * p.k, p.independent, impl


def jacobian_blocks_fn(
    apply_fn,
    *,
    bn: BNMode = "eval",
    reduction: Reduction = "sum_logits",
    param_filter: PathFilter | str | None = None,
    implementation: Implementation = "auto",
    chunk_size: int | None = None,
    vmap_axes: Literal[0, None, "auto"] = "auto",
) -> Callable[..., list[jax.Array]]:
  """Returns ``blocks_fn(variables, x, *args, samples=None) -> [J_l]``, the
  rows of J that ``empirical_ntk_fn`` (same options) contracts, as one
  [n, K, P_l] block per parameter (structured: per tapped weight or bias),
  so that ``Θ = contract_blocks(blocks, blocks, reduction)``.

  ``samples=(first, count)`` (``first`` may be traced, ``count`` is static)
  keeps the rows of samples ``first..first+count-1``: with independent
  samples only those are run; with coupled ones (train BN) every row is still
  a VJP of the whole batch ``x``. This is what splits one large kernel's rows
  over devices (``ntkjax.kernel_sharding``). ``'auto'`` picks structured
  where taps cover the parameters, else Jacobian contraction.
  """
  o = _options(apply_fn, bn, reduction, param_filter, implementation, chunk_size, vmap_axes, math.inf)
  if implementation != "auto" and _IMPLEMENTATIONS[implementation].blocks is None:
    forming = ", ".join(repr(k) for k, v in _IMPLEMENTATIONS.items() if v.blocks is not None)
    raise ValueError(f"implementation={implementation!r} never forms J; use 'auto', {forming}")

  def blocks_fn(variables, x, *args, samples=None):
    p, impl = _problem(o, variables, x, args, samples)
    return _IMPLEMENTATIONS[impl].blocks(p)

  return blocks_fn
