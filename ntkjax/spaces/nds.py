"""NDS cell spaces (Radosavovic et al. 2019): DARTS, ENAS, NASNet, Amoeba, PNAS.

All five are "DARTS-style" networks, as built by pycls for the NDS study:

* stem: conv3x3 (3 -> 3C, no bias) + BN;
* ``depth`` cells; the cells at depth//3 and 2*depth//3 are reduction cells
  (stride 2, channels doubled);
* each cell preprocesses its two inputs (the outputs of the two previous
  cells) to C channels: FactorizedReduce for the older one when the previous
  cell reduced, else ReLU-conv1x1-BN;
* node i (of ``num_nodes``) sums two ``(op, input)`` pairs, where input 0/1
  are the preprocessed cell inputs and input j >= 2 is node j - 2; ops that
  read a cell input in a reduction cell have stride 2;
* the cell output concatenates the nodes in the genotype's concat list:
  every node (DARTS, PNAS) or the "loose ends" no node reads (NASNet, ENAS,
  Amoeba);
* global average pool and a dense layer. No auxiliary head and no
  drop-path: they only act in training (``num_params(auxiliary=True)``
  counts the head for comparison with published figures). ``op_affine``
  (default True, as pycls) sets whether BN inside the cell ops is affine.

Ops follow pycls/DARTS: sep-convs are two stacked ReLU-depthwise-pointwise-BN
blocks, dil-convs one dilated block, 1x7/7x1 and 1x3/3x1 are factorised
convs, pools exclude padding (avg) or never pick it (max), ``skip_connect``
at stride 2 is a FactorizedReduce, ``none`` is zero. BN is PyTorch's
(momentum 0.1, eps 1e-5, affine).

An architecture is an ``Arch``: the genotype plus the network's width C and
depth (NDS samples both), written as a string by ``encode`` (``decode`` parses
and validates it). The genotype decides the graph, so the network is built
per genotype (``spaces.api.Instantiator`` caches its jitted functions).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ntkjax import layers, taps

__all__ = ["SPACES", "WIDTHS", "DEPTHS", "Space", "Genotype", "Arch", "DARTS_V2", "validate", "loose_ends", "encode",
           "decode", "sample", "mutate", "num_params", "Network", "from_naslib_compact"]


def _host_rng(key: jax.Array) -> np.random.Generator:
  """A NumPy generator seeded by a JAX key, for the host-side choices of the
  sampler and mutation (variable-length picks that need no device)."""
  return np.random.default_rng(np.asarray(jax.random.key_data(key)).astype(np.uint32))


class Space(NamedTuple):
  ops: tuple[str, ...]
  num_nodes: int
  concat: str              # 'all' intermediate nodes or 'loose_ends'
  distinct_inputs: bool    # the two inputs of a node differ (DARTS keeps its top-2 distinct edges)


_NASNET = ("skip_connect", "conv_3x1_1x3", "conv_7x1_1x7", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3",
           "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5",
           "sep_conv_7x7")
SPACES = {
    "nasnet": Space(_NASNET, 5, "loose_ends", False),
    "enas": Space(("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"), 5,
                  "loose_ends", False),
    "amoeba": Space(("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3",
                     "max_pool_3x3", "dil_sep_conv_3x3", "conv_7x1_1x7"), 5, "loose_ends", False),
    "pnas": Space(("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7", "skip_connect",
                   "avg_pool_3x3", "max_pool_3x3", "dil_conv_3x3"), 5, "all", False),
    "darts": Space(("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                    "dil_conv_3x3", "dil_conv_5x5"), 4, "all", True),
}
ALL_OPS = frozenset(op for s in SPACES.values() for op in s.ops) | {"none", "dil_conv_5x5"}

Pairs = tuple[tuple[str, int], ...]


class Genotype(NamedTuple):
  """DARTS genotype: per cell type, 2 ``(op, input)`` pairs per node."""
  normal: Pairs
  normal_concat: tuple[int, ...]
  reduce: Pairs
  reduce_concat: tuple[int, ...]

  @classmethod
  def from_json(cls, d) -> "Genotype":
    """From a dict (NDS JSON ``net.genotype``) or a 4-sequence of lists."""
    if isinstance(d, dict):
      d = [d["normal"], d["normal_concat"], d["reduce"], d["reduce_concat"]]
    n, nc, r, rc = d
    return cls(tuple((str(o), int(i)) for o, i in n), tuple(int(i) for i in nc),
               tuple((str(o), int(i)) for o, i in r), tuple(int(i) for i in rc))

  def to_json(self) -> dict:
    return {"normal": [list(p) for p in self.normal], "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce], "reduce_concat": list(self.reduce_concat)}


# DARTS (second order), Liu et al. 2019: the genotype behind the published 3.3M-parameter network.
DARTS_V2 = Genotype(
    (("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
     ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)), (2, 3, 4, 5),
    (("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
     ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)), (2, 3, 4, 5))


class Arch(NamedTuple):
  genotype: Genotype
  width: int = 16
  depth: int = 8


def loose_ends(pairs: Pairs) -> tuple[int, ...]:
  """The nodes (as state indices >= 2) that no node reads."""
  used = {i for _, i in pairs}
  return tuple(j for j in range(2, 2 + len(pairs) // 2) if j not in used)


def _validate_cell(pairs: Pairs, concat, kind: str, space: Space | None, ops) -> None:
  if len(pairs) % 2 or not pairs:
    raise ValueError(f"{kind} cell has {len(pairs)} (op, input) pairs; expected 2 per node")
  nodes = len(pairs) // 2
  if space is not None and nodes != space.num_nodes:
    raise ValueError(f"{kind} cell has {nodes} nodes; this space has {space.num_nodes}")
  for k, (op, i) in enumerate(pairs):
    if op not in ops:
      raise ValueError(f"{kind} cell pair {k}: unknown op {op!r}; expected one of {sorted(ops)}")
    if not 0 <= i < 2 + k // 2:
      raise ValueError(f"{kind} cell pair {k} ({op!r}, {i}): input {i} is not an earlier state "
                       f"(node {k // 2} reads 0..{1 + k // 2})")
  if not concat or any(not 2 <= j < 2 + nodes for j in concat) or len(set(concat)) != len(concat):
    raise ValueError(f"{kind} concat {list(concat)} must list distinct nodes in 2..{1 + nodes}")


def validate(genotype: Genotype, space: str | None = None) -> Genotype:
  """Checks ops, inputs and concat lists (against ``space``'s ops and node
  count when given); returns the genotype. Errors name the bad part."""
  sp = SPACES[validate_space(space)] if space is not None else None
  ops = frozenset(sp.ops) if sp else ALL_OPS
  _validate_cell(genotype.normal, genotype.normal_concat, "normal", sp, ops)
  _validate_cell(genotype.reduce, genotype.reduce_concat, "reduce", sp, ops)
  return genotype


def _cell_str(pairs, concat) -> str:
  return ",".join(f"{o}~{i}" for o, i in pairs) + ";" + ",".join(map(str, concat))


def encode(arch: Arch) -> str:
  """``'w16d8|normal=op~i,...;2,3,4,5|reduce=op~i,...;2,3,4,5'``."""
  g = arch.genotype
  return (f"w{arch.width}d{arch.depth}|normal={_cell_str(g.normal, g.normal_concat)}"
          f"|reduce={_cell_str(g.reduce, g.reduce_concat)}")


def _parse_cell(part: str, kind: str, text: str):
  if not part.startswith(kind + "="):
    raise ValueError(f"{text!r}: expected '{kind}=...', got {part!r}")
  body, sep, concat = part[len(kind) + 1:].partition(";")
  if not sep:
    raise ValueError(f"{text!r}: {kind} cell {part!r} has no ';concat' list")
  try:
    pairs = tuple((o, int(i)) for o, i in (p.rsplit("~", 1) for p in body.split(",")))
    cat = tuple(int(j) for j in concat.split(","))
  except ValueError:
    raise ValueError(f"{text!r}: malformed {kind} cell {part!r}; expected op~input,...;concat") from None
  return pairs, cat


def decode(text: str, space: str | None = None) -> Arch:
  """Parses (and validates) an ``encode`` string."""
  parts = text.split("|")
  if len(parts) != 3 or not parts[0].startswith("w") or "d" not in parts[0]:
    raise ValueError(f"not an NDS architecture string: {text!r}; expected 'w<C>d<depth>|normal=...|reduce=...'")
  try:
    width, depth = (int(v) for v in parts[0][1:].split("d"))
  except ValueError:
    raise ValueError(f"{text!r}: bad width/depth part {parts[0]!r}") from None
  n, nc = _parse_cell(parts[1], "normal", text)
  r, rc = _parse_cell(parts[2], "reduce", text)
  return Arch(validate(Genotype(n, nc, r, rc), space), width, depth)


def _sample_cell(key, sp: Space) -> tuple[Pairs, tuple[int, ...]]:
  rng = _host_rng(key)
  pairs = []
  for node in range(sp.num_nodes):
    inputs = rng.choice(2 + node, size=2, replace=not sp.distinct_inputs)
    pairs += [(sp.ops[rng.integers(len(sp.ops))], int(i)) for i in inputs]
  pairs = tuple(pairs)
  concat = loose_ends(pairs) if sp.concat == "loose_ends" else tuple(range(2, 2 + sp.num_nodes))
  return pairs, concat


# NDS samples the network's width and depth with the cells.
WIDTHS, DEPTHS = (16, 24, 32), (4, 8, 12, 16, 20)


def sample(key: jax.Array, space: str, n: int, *, width: int | None = None,
           depth: int | None = None) -> list[Arch]:
  """``n`` architectures drawn uniformly from ``space``: every node's two
  inputs (distinct in DARTS) and two ops are uniform and independent; width
  and depth are uniform over NDS's ``WIDTHS`` and ``DEPTHS`` unless fixed."""
  sp = SPACES[validate_space(space)]
  out = []
  for k in range(n):
    k_n, k_r, k_w = jax.random.split(jax.random.fold_in(key, k), 3)
    (nm, nc), (rd, rc) = _sample_cell(k_n, sp), _sample_cell(k_r, sp)
    rng = _host_rng(k_w)
    w = width if width is not None else int(rng.choice(WIDTHS))
    d = depth if depth is not None else int(rng.choice(DEPTHS))
    out.append(Arch(Genotype(nm, nc, rd, rc), w, d))
  return out


def validate_space(space: str) -> str:
  if space not in SPACES:
    raise ValueError(f"unknown NDS space {space!r}; known: {', '.join(SPACES)}")
  return space


def mutate(key: jax.Array, arch: Arch, space: str) -> Arch:
  """One change in one cell: a different op, or a different input, on one
  pair (the concat list follows when the space uses loose ends)."""
  sp = SPACES[validate_space(space)]
  rng = _host_rng(key)
  g = arch.genotype
  cell = int(rng.integers(2))
  pairs = list(g.reduce if cell else g.normal)
  k = int(rng.integers(len(pairs)))
  op, i = pairs[k]
  node = k // 2
  other = pairs[k ^ 1][1]
  inputs = [j for j in range(2 + node) if j != i and not (sp.distinct_inputs and j == other)]
  if rng.integers(2) or not inputs:
    pairs[k] = (str(rng.choice([o for o in sp.ops if o != op])), i)
  else:
    pairs[k] = (op, int(rng.choice(inputs)))
  pairs = tuple(pairs)
  concat = loose_ends(pairs) if sp.concat == "loose_ends" else (g.reduce_concat if cell else g.normal_concat)
  g = g._replace(reduce=pairs, reduce_concat=concat) if cell else g._replace(normal=pairs, normal_concat=concat)
  return arch._replace(genotype=g)


# ----------------------------------------------------------------------------- the network


class ReLUConvBN(nn.Module):
  """ReLU, then one or more convs, then BN (pycls ``ReLUConvBN``, ``conv_*``)."""
  c_in: int
  c_out: int
  convs: tuple  # ((kernel (kh, kw), stride (sh, sw), padding (ph, pw), dilation, groups, c_out), ...)
  init_scheme: str
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    taps.probe_relu(self, "in", x)
    y, c = jax.nn.relu(x), self.c_in
    for k, (kernel, stride, padding, dilation, groups, c_out) in enumerate(self.convs):
      y = layers.Conv(c, c_out, kernel, stride, padding, init_scheme=self.init_scheme, dilation=dilation,
                      groups=groups, name=f"conv{k}")(y)
      c = c_out
    return layers.BatchNorm(self.c_out, self.affine, name="bn")(y, train)


class FactorizedReduce(nn.Module):
  """ReLU; two stride-2 1x1 convs, the second shifted by one pixel; concat; BN."""
  c_in: int
  c_out: int
  init_scheme: str
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    taps.probe_relu(self, "in", x)
    x = jax.nn.relu(x)
    half = self.c_out // 2
    a = layers.Conv(self.c_in, half, 1, 2, init_scheme=self.init_scheme, name="conv_1")(x)
    shifted = jnp.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))[:, 1:, 1:]
    b = layers.Conv(self.c_in, half, 1, 2, init_scheme=self.init_scheme, name="conv_2")(shifted)
    return layers.BatchNorm(self.c_out, self.affine, name="bn")(jnp.concatenate([a, b], -1), train)


def _sep(c, k, stride, pad, dil):
  """Two ReLU-depthwise-pointwise-BN blocks (the second at stride 1)."""
  return [((k, k), stride, pad, dil, c, c), (1, 1, 0, 1, 1, c)], [((k, k), 1, pad, dil, c, c), (1, 1, 0, 1, 1, c)]


class Op(nn.Module):
  """One candidate op on ``c`` channels at ``stride``."""
  name_: str
  c: int
  stride: int
  init_scheme: str
  affine: bool = True

  @nn.compact
  def __call__(self, x, train):
    op, c, s, init, aff = self.name_, self.c, self.stride, self.init_scheme, self.affine
    if op == "none":
      return jnp.zeros_like(x[:, ::s, ::s])
    if op == "skip_connect":
      return x if s == 1 else FactorizedReduce(c, c, init, aff, name="reduce")(x, train)
    if op.startswith(("avg_pool", "max_pool")):
      k = int(op[-1])
      pool = layers.avg_pool if op.startswith("avg") else layers.max_pool
      return pool(x, k, s, 0 if k == 2 else k // 2)
    if op in ("conv_1x1", "conv_3x3"):
      k = int(op[-1])
      return ReLUConvBN(c, c, (((k, k), s, k // 2, 1, 1, c),), init, aff, name="conv")(x, train)
    if op in ("conv_3x1_1x3", "conv_7x1_1x7"):
      k = int(op[5])
      convs = (((1, k), (1, s), (0, k // 2), 1, 1, c), ((k, 1), (s, 1), (k // 2, 0), 1, 1, c))
      return ReLUConvBN(c, c, convs, init, aff, name="conv")(x, train)
    if op.startswith("dil_conv_"):
      k = int(op[-1])
      convs = (((k, k), s, k - 1, 2, c, c), (1, 1, 0, 1, 1, c))  # padding 2 (3x3) / 4 (5x5), dilation 2
      return ReLUConvBN(c, c, convs, init, aff, name="conv")(x, train)
    if op.startswith(("sep_conv_", "dil_sep_conv_")):
      k = int(op[-1])
      dil = 2 if op.startswith("dil") else 1
      first, second = _sep(c, k, s, dil * (k // 2), dil)
      y = ReLUConvBN(c, c, tuple(first), init, aff, name="block0")(x, train)
      return ReLUConvBN(c, c, tuple(second), init, aff, name="block1")(y, train)
    raise ValueError(f"unknown NDS op {op!r}")


class Cell(nn.Module):
  pairs: Pairs
  concat: tuple[int, ...]
  c_pp: int
  c_p: int
  c: int
  reduction: bool
  reduction_prev: bool
  init_scheme: str
  op_affine: bool = True

  @nn.compact
  def __call__(self, s0, s1, train):
    states = list(preprocess(s0, s1, self.c_pp, self.c_p, self.c, self.reduction_prev, self.init_scheme, train))
    for node in range(len(self.pairs) // 2):
      out = 0.0
      for k in (2 * node, 2 * node + 1):
        op, i = self.pairs[k]
        stride = 2 if self.reduction and i < 2 else 1
        op_module = Op(op, self.c, stride, self.init_scheme, self.op_affine, name=f"node{node}_op{k % 2}")
        out = out + op_module(states[i], train)
      states.append(out)
    return jnp.concatenate([states[j] for j in self.concat], axis=-1)


def preprocess(s0, s1, c_pp: int, c_p: int, c: int, reduction_prev: bool, init_scheme: str, train: bool):
  """A cell's two inputs brought to ``c`` channels (submodules ``pre0``,
  ``pre1`` of the calling cell): FactorizedReduce for the older one after a
  reduction cell, else ReLU-conv1x1-BN."""
  one = ((1, 1), 1, 0, 1, 1, c)
  if reduction_prev:
    s0 = FactorizedReduce(c_pp, c, init_scheme, name="pre0")(s0, train)
  else:
    s0 = ReLUConvBN(c_pp, c, (one,), init_scheme, name="pre0")(s0, train)
  return s0, ReLUConvBN(c_p, c, (one,), init_scheme, name="pre1")(s1, train)


def stem(x, width: int, init_scheme: str, train: bool):
  """conv3x3 (3 -> 3·width) and BN (submodules of the calling network)."""
  y = layers.Conv(3, 3 * width, 3, 1, 1, init_scheme=init_scheme, name="stem_conv")(x)
  return layers.BatchNorm(3 * width, name="stem_bn")(y, train)


def _layout(genotype: Genotype, width: int, depth: int):
  """Per cell: (reduction, reduction_prev, c_pp, c_p, c); and the final channels."""
  c_pp = c_p = 3 * width
  c, reduction_prev, out = width, False, []
  for i in range(depth):
    reduction = i in (depth // 3, 2 * depth // 3)
    if reduction:
      c *= 2
    out.append((reduction, reduction_prev, c_pp, c_p, c))
    concat = genotype.reduce_concat if reduction else genotype.normal_concat
    c_pp, c_p, reduction_prev = c_p, len(concat) * c, reduction
  return out, c_p


class Network(nn.Module):
  """The NDS/DARTS CIFAR network for one ``arch``; ``net.apply(v, x, train=...)``
  on NHWC [batch, H, W, 3] images."""
  arch: Arch
  num_classes: int = 10
  init_scheme: str = "torch_default"
  op_affine: bool = True

  def couples_samples(self, train: bool) -> bool:
    return train

  @nn.compact
  def __call__(self, x, train: bool = False):
    layers.check_images(x)
    g, w = self.arch.genotype, self.arch.width
    s0 = s1 = stem(x, w, self.init_scheme, train)
    cells, c_out = _layout(g, w, self.arch.depth)
    for i, (reduction, reduction_prev, c_pp, c_p, c) in enumerate(cells):
      pairs, concat = (g.reduce, g.reduce_concat) if reduction else (g.normal, g.normal_concat)
      s0, s1 = s1, Cell(pairs, concat, c_pp, c_p, c, reduction, reduction_prev, self.init_scheme,
                        self.op_affine, name=f"cell{i}")(s0, s1, train)
    taps.probe_features(self, s1)
    y = jnp.mean(s1, axis=(1, 2))
    return layers.Dense(c_out, self.num_classes, init_scheme=self.init_scheme, name="classifier")(y)


def _aux_head_params(c: int, num_classes: int) -> int:
  # DARTS AuxiliaryHeadCIFAR: conv1x1 c->128, BN, conv2x2 128->768, BN, linear.
  return c * 128 + 2 * 128 + 128 * 768 * 4 + 2 * 768 + 768 * num_classes + num_classes


def _op_params(op: str, c: int, stride: int, bn: int) -> int:
  """Parameters of one op; ``bn`` is 2 per BN channel when affine, else 0."""
  if op in ("none", "skip_connect") or "pool" in op:
    return c * c + bn * c if op == "skip_connect" and stride == 2 else 0  # FactorizedReduce
  k = int(op[-1]) if op[-1].isdigit() else 0
  if op in ("conv_1x1", "conv_3x3"):
    return k * k * c * c + bn * c
  if op in ("conv_3x1_1x3", "conv_7x1_1x7"):
    return 2 * int(op[5]) * c * c + bn * c
  block = k * k * c + c * c + bn * c  # depthwise, pointwise, BN
  return block if op.startswith("dil_conv_") else 2 * block


def num_params(arch: Arch, num_classes: int = 10, *, auxiliary: bool = False, op_affine: bool = True) -> int:
  """Trainable parameters of ``Network(arch)``, counted from the layout.

  ``auxiliary=True`` adds DARTS' CIFAR auxiliary head, attached after cell
  2*depth//3, which published DARTS counts exclude. ``op_affine=False``
  drops the BN scale/shift inside the cell ops, as NASLib's NB301 network
  (whose counts ``../shared``'s 725 DARTS cells carry) does.
  """
  g, w = arch.genotype, arch.width
  total = 27 * 3 * w + 2 * 3 * w  # stem conv + BN
  cells, c_out = _layout(g, w, arch.depth)
  bn = 2 if op_affine else 0
  for reduction, reduction_prev, c_pp, c_p, c in cells:
    total += c_pp * c + 2 * c  # pre0: FactorizedReduce (2 half-width 1x1 convs) or a 1x1 conv; BN
    total += c_p * c + 2 * c                                     # pre1
    for op, i in (g.reduce if reduction else g.normal):
      total += _op_params(op, c, 2 if reduction and i < 2 else 1, bn)
  total += c_out * num_classes + num_classes
  if auxiliary:
    reduction, _, _, _, c = cells[2 * arch.depth // 3]
    concat = g.reduce_concat if reduction else g.normal_concat
    total += _aux_head_params(len(concat) * c, num_classes)
  return total


def from_naslib_compact(compact: Sequence, *, width: int = 32, depth: int = 8) -> Arch:
  """A NASLib/NB301 compact DARTS cell pair ``[[(input, op) x8], [x8]]`` (op
  indices into NASLib's 7 DARTS ops, which are ``SPACES['darts'].ops``); NB301
  trains the network at width 32, depth 8."""
  ops = SPACES["darts"].ops
  cells = []
  for cell in compact:
    cells.append(tuple((ops[int(op)], int(i)) for i, op in cell))
  g = Genotype(cells[0], (2, 3, 4, 5), cells[1], (2, 3, 4, 5))
  return Arch(validate(g, "darts"), width, depth)

