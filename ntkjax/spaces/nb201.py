"""NAS-Bench-201 search space: genotype codec, sampling, parameter counts and
a Flax network that takes the architecture as data.

Genotypes are official arch strings ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
``decode`` maps one to an int32 array of 6 op indices in string order, i.e. the
edges 0->1, 0->2, 1->2, 0->3, 1->3, 2->3, with op indices from ``OPS``.

``Network`` holds the variables of *every* op on every edge and takes the op
array as an input, so one XLA compilation serves all 15,625 architectures.
Each edge evaluates its candidate ops and sums them weighted by one-hot(op)
(``select='mask'``, the default; vmaps over archs) or runs only the selected
op with ``lax.switch`` (``select='switch'``: for one arch at a time, e.g. the
batch-coupled structured NTK, whose N backward passes then run only the
selected ops; BENCHMARKS.md, "NTK kernel speed, CPU"). Either way
unselected ops receive exactly zero gradient,
so the network computes the same function and the same NTK as a network
built for that architecture alone (tests/spaces/test_nb201.py,
tests/test_ntk.py). Passing a concrete arch (string, tuple or NumPy array)
instead of a traced array builds that architecture alone.

Two variants (``variant=``):

* ``'benchmark'``: the NB201 training network (xautodl ``TinyNetwork``). Cell
  ops are ReLU-Conv-BN with affine BN and bias-free convs; BN tracks running
  statistics.
* ``'paper_code'``: the network of Mok et al.'s official code (Samsung's
  ``nasbench2`` model). Cell convs have a bias and cell BN has neither affine
  parameters nor running statistics, so cell BN normalises with batch
  statistics even in eval mode. Stem, reduction blocks and the final BN are as
  in ``'benchmark'``.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental import checkify

from ntkjax import cell_scan, layers, taps

__all__ = [
    "OPS", "NUM_EDGES", "EDGES", "VARIANTS", "decode", "encode", "validate",
    "all_archs", "sample", "index_to_ops", "ops_to_index", "mutate", "num_params", "flops", "is_degenerate",
    "has_unreachable_ops", "check_ops", "Network",
]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NUM_EDGES = 6
# (source node, target node) of each position in the arch string.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
VARIANTS = ("benchmark", "paper_code")
SELECTS = ("mask", "switch")
NUM_ARCHS = len(OPS) ** NUM_EDGES

_OP_INDEX = {name: i for i, name in enumerate(OPS)}


def decode(arch: str) -> np.ndarray:
  """Arch string -> int32 op indices of shape (6,).

  >>> decode('|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|')
  array([3, 0, 1, 4, 2, 0], dtype=int32)
  """
  if not isinstance(arch, str):
    raise ValueError(f"arch must be a string, got {arch!r}")
  nodes = arch.split("+")
  if len(nodes) != 3:
    raise ValueError(f"arch {arch!r} has {len(nodes)} nodes separated by '+', expected 3")
  ops = []
  for target, node in enumerate(nodes, start=1):
    if len(node) < 2 or not (node.startswith("|") and node.endswith("|")):
      raise ValueError(f"node {node!r} of arch {arch!r} must look like '|op~i|...|'")
    parts = node[1:-1].split("|")
    if len(parts) != target:
      raise ValueError(f"node {node!r} of arch {arch!r} has {len(parts)} inputs, expected {target}")
    for source, part in enumerate(parts):
      name, sep, src = part.partition("~")
      if not sep or src != str(source):
        raise ValueError(f"edge {part!r} of arch {arch!r}: expected '<op>~{source}'")
      if name not in _OP_INDEX:
        raise ValueError(f"unknown op {name!r} in arch {arch!r}; known: {', '.join(OPS)}")
      ops.append(_OP_INDEX[name])
  return np.asarray(ops, np.int32)


def encode(ops: Sequence[int]) -> str:
  """Op indices of shape (6,) -> arch string (inverse of ``decode``)."""
  ops = validate(ops)
  names = [OPS[i] for i in ops]
  return "+".join(
      "|" + "|".join(f"{names[e]}~{EDGES[e][0]}" for e in range(NUM_EDGES) if EDGES[e][1] == t) + "|"
      for t in (1, 2, 3))


def validate(ops) -> np.ndarray:
  """Checks an op-index array (or arch string) and returns it as int32 (6,)."""
  if isinstance(ops, str):
    return decode(ops)
  arr = np.asarray(ops)
  if arr.shape != (NUM_EDGES,) or not np.issubdtype(arr.dtype, np.integer):
    raise ValueError(f"ops must be an integer array of shape (6,), got {ops!r}")
  bad = arr[(arr < 0) | (arr >= len(OPS))]
  if bad.size:
    raise ValueError(f"op index {int(bad[0])} out of range [0, {len(OPS)}) in {arr.tolist()}")
  return arr.astype(np.int32)


def all_archs() -> list[str]:
  """All 15,625 arch strings in lexicographic op-index order.

  This is not the official NB201 index order (that order is shuffled); the
  benchmark readers map strings to official indices.
  """
  return [encode(ops) for ops in itertools.product(range(len(OPS)), repeat=NUM_EDGES)]


def sample(key: jax.Array, n: int, *, replace: bool = False) -> np.ndarray:
  """``n`` architectures as an int32 array [n, 6], uniform over the space.

  Without replacement by default, so the n architectures are distinct.
  """
  if not replace and n > NUM_ARCHS:
    raise ValueError(f"cannot sample {n} distinct archs from {NUM_ARCHS}")
  flat = jax.random.choice(key, NUM_ARCHS, (n,), replace=replace)
  return index_to_ops(np.asarray(flat))


def index_to_ops(flat) -> np.ndarray:
  """Lexicographic index (as in ``all_archs``) -> op arrays [..., 6]."""
  flat = np.asarray(flat, np.int64)
  digits = [(flat // len(OPS) ** (NUM_EDGES - 1 - e)) % len(OPS) for e in range(NUM_EDGES)]
  return np.stack(digits, axis=-1).astype(np.int32)


def ops_to_index(ops) -> int:
  """Lexicographic index of an architecture (string or ops): the inverse of
  ``index_to_ops`` and its position in ``all_archs``."""
  return int(sum(int(o) * len(OPS) ** (NUM_EDGES - 1 - e) for e, o in enumerate(validate(ops))))


def mutate(key: jax.Array, ops) -> np.ndarray:
  """Changes the op on one uniformly chosen edge to a different op (REA)."""
  ops = validate(ops).copy()
  k_edge, k_op = jax.random.split(key)
  edge = int(jax.random.randint(k_edge, (), 0, NUM_EDGES))
  shift = int(jax.random.randint(k_op, (), 1, len(OPS)))
  ops[edge] = (ops[edge] + shift) % len(OPS)
  return ops


def is_degenerate(ops) -> bool:
  """True if no input->output path has only non-``none`` ops.

  Such a cell outputs zeros, so the network's output ignores its input and
  the NTK is degenerate (341 of the 15,625 architectures).
  """
  ops = validate(ops)
  reach = {0}
  for e, (src, dst) in enumerate(EDGES):  # EDGES is topologically ordered
    if src in reach and ops[e] != _OP_INDEX["none"]:
      reach.add(dst)
  return 3 not in reach


def has_unreachable_ops(ops) -> bool:
  """True if some non-``none`` op lies on no input->output path.

  Such ops have parameters (so they count in ``num_params``) but cannot
  affect the output. 6,180 architectures have them; the other 9,445 are the
  subset that NAS-Bench-Suite-Zero-based studies (e.g. GRAF) report on.
  """
  ops = validate(ops)
  live = [o != _OP_INDEX["none"] for o in ops]
  from_input, to_output = {0}, {3}
  for e, (src, dst) in enumerate(EDGES):
    if live[e] and src in from_input:
      from_input.add(dst)
  for e, (src, dst) in reversed(list(enumerate(EDGES))):
    if live[e] and dst in to_output:
      to_output.add(src)
  return any(on and not (src in from_input and dst in to_output) for on, (src, dst) in zip(live, EDGES))


def check_ops(ops: jax.Array, traced: bool = False) -> None:
  """Checks an op array that the network takes as data: its shape and
  dtype always, a concrete array's values here (ValueError naming it), and
  with ``traced`` a traced one's (inside ``jit``) by a
  ``checkify.debug_check``, which raises only where the caller wraps the
  function in ``checkify.checkify`` (``Network(check_ops=True)``)::

      net = nb201.Network(C=16, N=5, check_ops=True)
      err, kernel = checkify.checkify(jax.jit(ntk.empirical_ntk_fn(net)))(variables, x, ops)
      err.throw()  # raises, naming the op array, if an index is out of range

  Without it, ``lax.switch`` clamps an out-of-range index and the mask
  zeroes the edge, so a bad traced array gives a kernel and no error. The
  traced check is opt-in: it doubled the compile time of the structured
  kernels."""
  if ops.shape != (NUM_EDGES,) or not jnp.issubdtype(ops.dtype, jnp.integer):
    raise ValueError(f"ops must be an integer array of shape (6,), got {ops.dtype}{list(ops.shape)}")
  if not isinstance(ops, jax.core.Tracer):
    validate(np.asarray(ops))
  elif traced:
    checkify.debug_check(jnp.all((ops >= 0) & (ops < len(OPS))),
                         "NB201 op index out of range [0, 5) in op array {ops}", ops=ops)


def _op_params(op: int, c: int, variant: str) -> int:
  bn_or_bias = 2 * c if variant == "benchmark" else c  # affine BN vs conv bias
  if OPS[op] == "nor_conv_3x3":
    return 9 * c * c + bn_or_bias
  if OPS[op] == "nor_conv_1x1":
    return c * c + bn_or_bias
  return 0


def num_params(arch, num_classes: int = 10, *, C: int = 16, N: int = 5,
               variant: str = "benchmark") -> int:
  """Trainable parameter count, counted as NB201 does.

  Fixed parts (stem, reduction blocks, final BN, classifier) plus the
  parameters of every selected op, including ops on paths that do not reach
  the output (they still exist in the official network).

  >>> num_params('|none~0|+|none~0|none~1|+|none~0|none~1|none~2|')
  73306
  """
  ops = validate(arch)
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
  total = 27 * C + 2 * C  # stem conv + BN
  c = C
  for stage in range(3):
    if stage:  # ResNet reduction block c/2 -> c
      cin = c // 2
      total += 9 * cin * c + 2 * c + 9 * c * c + 2 * c + cin * c
    total += N * sum(_op_params(int(op), c, variant) for op in ops)
    c *= 2
  c //= 2
  total += 2 * c + c * num_classes + num_classes
  return total


def flops(arch, num_classes: int = 10, *, C: int = 16, N: int = 5, resolution: int = 32) -> int:
  """Forward FLOPs of one image, counted as NAS-Bench-Suite-Zero counts
  them (NASLib's model statistics, torchstat's rules): a conv its
  multiply-accumulates, BatchNorm 2 and ReLU 1 per element, a pool k² per
  output element, the classifier in × out. Every op's count equals NASLib's;
  the fixed part (stem, reductions, head) is 0.07% below its published
  value (docs/results/proxies.md).

  >>> flops('|none~0|+|none~0|none~1|+|none~0|none~1|none~2|')
  7938688
  """
  ops = validate(arch)
  hw = resolution * resolution
  total = 27 * C * hw + 2 * C * hw  # stem conv + BN
  c = C
  for stage in range(3):
    if stage:  # ResNet reduction block c/2 -> c, at a quarter of the positions
      cin, hw_in, hw = c // 2, hw, hw // 4
      total += cin * hw_in + 9 * cin * c * hw + 2 * c * hw  # conv_a: ReLU, conv, BN
      total += c * hw + 9 * c * c * hw + 2 * c * hw          # conv_b
      total += 4 * cin * hw + cin * c * hw                   # shortcut: 2x2 pool, 1x1 conv
    for op in ops:
      name = OPS[int(op)]
      if name in ("nor_conv_1x1", "nor_conv_3x3"):
        k2 = 1 if name == "nor_conv_1x1" else 9
        total += N * (c * hw + k2 * c * c * hw + 2 * c * hw)
      elif name == "avg_pool_3x3":
        total += N * 9 * c * hw
    c *= 2
  c //= 2
  return total + 3 * c * hw + c * num_classes  # last BN + ReLU, classifier


class Edge(nn.Module):
  """One cell edge holding all five candidate ops; ``op`` picks one.

  ``select`` says how a traced ``op`` picks: ``'mask'`` evaluates all ops and
  sums them weighted by one-hot(op); ``'switch'`` uses ``lax.switch`` and
  evaluates one (its taps are sown outside the switch, with the two conv ops
  sharing one perturbation per tapped layer). A concrete ``op`` (Python int)
  builds only that op. Under ``vmap`` over archs a switch computes every
  branch, so batched archs want ``'mask'``.
  """
  channels: int
  variant: str
  init_scheme: str
  select: str = "mask"

  def setup(self):
    paper = self.variant == "paper_code"
    kw = dict(conv_bias=paper, affine=not paper, track_running_stats=not paper, init_scheme=self.init_scheme)
    c = self.channels
    self.conv_1x1 = layers.ReLUConvBN(c, c, 1, 1, 0, **kw)
    self.conv_3x3 = layers.ReLUConvBN(c, c, 3, 1, 1, **kw)

  def __call__(self, x, op, train: bool):
    arr1, arr3 = self.conv_1x1.arrays(), self.conv_3x3.arrays()
    use_batch = train or self.variant == "paper_code"
    # Every branch returns both ops' running (mean, var) (Nones when not
    # tracked), unchanged unless it is that op: one output structure.
    keep1 = (arr1[1].mean, arr1[1].var)
    keep3 = (arr3[1].mean, arr3[1].var)
    static = isinstance(op, (int, np.integer))
    switched = not static and self.select == "switch"
    chooses = lambda prefix: op == OPS.index(f"nor_{prefix}")
    # Inside lax.switch no variable can be touched: the two conv ops, never
    # both selected, share one perturbation and one input per tapped layer
    # (half the switch's tap outputs; at N=16 it timed the same as one each).
    layer_names = ("conv_out",) if self.variant == "paper_code" else ("conv_out", "bn_out")
    switch_taps = taps.SwitchTaps(self, layer_names, x) if switched else None
    # Both conv ops start with a ReLU of x: its codes count once if either is selected.
    if static:
      if OPS[int(op)] in ("nor_conv_1x1", "nor_conv_3x3"):
        taps.probe_relu(self, "in", x)
    else:
      taps.probe_relu(self, "in", x, (chooses("conv_1x1") | chooses("conv_3x3")).astype(x.dtype))

    def tapper(prefix, inputs):
      if switched:
        return switch_taps.tapper(prefix, inputs)
      active = None if static else chooses(prefix)
      return lambda name, out, rec: taps.tap(self, f"{prefix}_{name}",
                                             out, taps.prefixed(rec, prefix).replace(active=active))

    def branch(fn):
      def run():
        inputs = {}
        y, new1, new3 = fn(inputs)
        return y, new1, new3, switch_taps.outputs(inputs) if switched else {}
      return run

    def conv(arr, pad, keep, prefix, inputs):
      y, s = layers.relu_conv_bn(x, arr, 1, pad, use_batch, tapper=tapper(prefix, inputs))
      return y, (keep if s is None else s)

    def conv1(inputs):
      y, s = conv(arr1, 0, keep1, "conv_1x1", inputs)
      return y, s, keep3

    def conv3(inputs):
      y, s = conv(arr3, 1, keep3, "conv_3x3", inputs)
      return y, keep1, s

    branches = tuple(branch(fn) for fn in (
        lambda _: (jnp.zeros_like(x), keep1, keep3),
        lambda _: (x, keep1, keep3),
        conv1,
        conv3,
        lambda _: (layers.avg_pool_3x3(x), keep1, keep3),
    ))
    if static:  # a static architecture
      y, new1, new3, _ = branches[int(op)]()
    elif switched:
      y, new1, new3, inputs = lax.switch(op, branches)
      switch_taps.sow(inputs, chooses)
    else:
      y, new1, new3 = self._masked(x, op, branches)
    if train:
      self.conv_1x1.bn.update(new1)
      self.conv_3x3.bn.update(new3)
    return y

  @staticmethod
  def _masked(x, op, branches):
    """Σ_k onehot(op)_k · op_k(x) over all ops.

    The unselected terms are exact zeros, so the value and gradient are
    those of the selected op (up to XLA's fusion-dependent rounding), and
    unselected ops get an exactly zero cotangent. The skip
    op is a 1x1 conv with kernel onehot_skip · I (exact at HIGHEST
    precision): as a plain product, skip paths chain elementwise through all
    cells and XLA:CPU fuses a stage's whole backward into giant fusions that
    recompute shared terms (much slower gradients; docs/design.md).
    """
    outs = [b()[:3] for b in branches]
    w = jax.nn.one_hot(op, len(OPS), dtype=x.dtype)
    eye = jnp.eye(x.shape[-1], dtype=x.dtype)[None, None]
    skip = lax.conv_general_dilated(
        x, w[1] * eye, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=lax.Precision.HIGHEST)
    y = skip + w[2] * outs[2][0] + w[3] * outs[3][0] + w[4] * outs[4][0]
    pick = lambda k, i: jax.tree_util.tree_map(
        lambda new, old: jnp.where(op == k, new, old), outs[k][i], outs[0][i])
    return y, pick(OPS.index("nor_conv_1x1"), 1), pick(OPS.index("nor_conv_3x3"), 2)


class Cell(nn.Module):
  """NB201 cell: 4 nodes, node j = sum of its incoming edges."""
  channels: int
  variant: str
  init_scheme: str
  select: str = "mask"

  @nn.compact
  def __call__(self, x, ops, train: bool):
    nodes = [x]
    for target in (1, 2, 3):
      total = None
      for e, (src, dst) in enumerate(EDGES):
        if dst == target:
          edge = Edge(self.channels, self.variant, self.init_scheme, self.select, name=f"edge_{e}")
          y = edge(nodes[src], ops[e], train)
          total = y if total is None else total + y
      nodes.append(total)
    return nodes[-1]


class ResNetBlock(nn.Module):
  """NB201 reduction block: two ReLU-Conv-BN (the first with stride 2) plus an
  AvgPool2x2 -> Conv1x1 shortcut."""
  c_in: int
  c_out: int
  init_scheme: str

  @nn.compact
  def __call__(self, x, train: bool):
    y = layers.ReLUConvBN(self.c_in, self.c_out, 3, 2, 1, init_scheme=self.init_scheme, name="conv_a")(x, train)
    y = layers.ReLUConvBN(self.c_out, self.c_out, 3, 1, 1, init_scheme=self.init_scheme, name="conv_b")(y, train)
    shortcut = layers.Conv(self.c_in, self.c_out, 1, init_scheme=self.init_scheme, name="downsample")
    return y + shortcut(layers.avg_pool_2x2(x))


class Network(nn.Module):
  """The NB201 network with the architecture as an input.

  Attributes:
    num_classes: 10 (CIFAR-10), 100 (CIFAR-100) or 120 (ImageNet16-120).
    C: stem width; stages have C, 2C, 4C channels.
    N: cells per stage.
    variant: ``'benchmark'`` or ``'paper_code'`` (module docstring).
    init_scheme: weight init scheme, a name in ``ntkjax.initializers.SCHEMES``.
    check_ops: check traced op arrays too (``check_ops``), for callers that
      wrap their jitted functions in ``checkify.checkify``.
    scan_cells: run each stage's N cells as one ``lax.scan`` (``ntkjax.cell_scan``)
      outside initialisation: the same variable tree and values, the cell traced
      and compiled once per stage; the proxies use it (``proxies.proxies_fn``),
      the NTK kernels ran faster without it (BENCHMARKS.md, "Cells as one scan").

  Call as ``logits = net.apply(variables, x, ops, train=False)`` with
  ``x: [batch, H, W, 3]`` (NHWC, normalised) and ``ops: int [6]`` from
  ``decode`` (``check_ops``: out-of-range indices are an error; inside
  ``jit`` with ``check_ops=True`` under ``checkify.checkify``). In train
  mode pass ``mutable=['batch_stats']`` to get updated running statistics;
  without it they are computed and dropped.

  >>> net = Network(C=4, N=1)
  >>> ops = decode('|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|')
  >>> variables = net.init(jax.random.key(0), jnp.zeros((2, 8, 8, 3)), ops)
  >>> net.apply(variables, jnp.ones((2, 8, 8, 3)), ops).shape
  (2, 10)
  """
  num_classes: int = 10
  C: int = 16
  N: int = 5
  variant: str = "benchmark"
  init_scheme: str = "torch_default"
  select: str = "mask"
  check_ops: bool = False
  scan_cells: bool = False

  def param_count(self, arch) -> int:
    """``num_params`` of ``arch`` in this network's configuration."""
    return num_params(arch, self.num_classes, C=self.C, N=self.N, variant=self.variant)

  def couples_samples(self, train: bool) -> bool:
    """Whether one sample's output depends on the others' (BN batch stats).

    The NTK engine reads this to decide whether per-sample vmap is exact.
    """
    return train or self.variant == "paper_code"

  @nn.compact
  def __call__(self, x, ops, train: bool = False):
    if self.variant not in VARIANTS:
      raise ValueError(f"unknown variant {self.variant!r}; known: {VARIANTS}")
    if self.select not in SELECTS:
      raise ValueError(f"unknown select {self.select!r}; known: {SELECTS}")
    layers.check_images(x)
    if isinstance(ops, (str, tuple, list, np.ndarray)):
      # Concrete ops build a static network (one compilation per arch).
      ops = tuple(int(o) for o in validate(ops))
    else:
      check_ops(ops, traced=self.check_ops)
    c = self.C
    y = layers.Conv(3, c, 3, 1, 1, init_scheme=self.init_scheme, name="stem_conv")(x)
    y = layers.BatchNorm(c, name="stem_bn")(y, train)
    for stage in range(3):
      if stage:
        y = ResNetBlock(c, 2 * c, self.init_scheme, name=f"reduction_{stage}")(y, train)
        c *= 2
      names = [f"cell_{stage}_{i}" for i in range(self.N)]
      if self.scan_cells and self.N > 1 and not self.is_initializing():
        y = cell_scan.apply(self, Cell(c, self.variant, self.init_scheme, self.select, parent=None), names, y, ops,
                            train)
        continue
      for name in names:
        y = Cell(c, self.variant, self.init_scheme, self.select, name=name)(y, ops, train)
    y = layers.BatchNorm(c, name="last_bn")(y, train)
    taps.probe_relu(self, "last", y)
    y = jax.nn.relu(y)
    taps.probe_features(self, y)
    y = jnp.mean(y, axis=(1, 2))
    return layers.Dense(c, self.num_classes, init_scheme=self.init_scheme, name="classifier")(y)
