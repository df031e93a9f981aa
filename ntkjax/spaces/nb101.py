"""NAS-Bench-101: cell specs, their pruning and graph hash, and the network.

A spec is an upper-triangular adjacency matrix over at most 7 vertices with
at most 9 edges, and one op per vertex: ``input``, then interior ops from
``OPS``, then ``output``. ``Spec.create`` validates it (errors name the
problem) and prunes vertices that are not on an input->output path, as
NB101's ``ModelSpec`` does; ``Spec.hash`` is the benchmark's graph hash
(iterated MD5 over in/out degrees and op labels), so specs join with the
benchmark's records.

``Network`` follows the official model builder: stem conv3x3-BN-ReLU with
128 channels; 3 stacks of 3 modules with a 2x2 max-pool and channel doubling
between stacks; inside a module, the output channels are split among the
vertices that feed the output (``vertex_channels``), input edges get a 1x1
conv-BN-ReLU projection, vertex-to-vertex edges are truncated to the
destination's channels, and the output concatenates its inputs (plus the
projected input when it is connected); global average pool and a dense
layer. Convolutions have no bias; BN uses TensorFlow's decay 0.997
(PyTorch momentum 0.003) and eps 1e-5.

The spec is a module attribute because shapes differ between specs: each
graph structure compiles once (``spaces.api.Instantiator`` caches its
jitted functions); ``nb101_masked`` runs every spec in one network.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Callable, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ntkjax import layers, taps

__all__ = ["OPS", "INPUT", "OUTPUT", "MAX_VERTICES", "MAX_EDGES", "Spec", "vertex_channels",
           "num_params", "flops", "from_naslib", "naslib_benchmark_records", "Sizes", "Network", "skeleton"]

INPUT, OUTPUT = "input", "output"
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES, MAX_EDGES = 7, 9
BN_MOMENTUM, BN_EPS = 1 - 0.997, 1e-5


def _graph_hash(matrix: np.ndarray, labels: Sequence[int]) -> str:
  n = len(matrix)
  out_deg, in_deg = matrix.sum(1).tolist(), matrix.sum(0).tolist()
  hashes = [hashlib.md5(str(h).encode()).hexdigest() for h in zip(out_deg, in_deg, labels)]
  for _ in range(n):
    hashes = [hashlib.md5((
        "".join(sorted(hashes[w] for w in range(n) if matrix[w, v])) + "|" +
        "".join(sorted(hashes[w] for w in range(n) if matrix[v, w])) + "|" + hashes[v]
    ).encode()).hexdigest() for v in range(n)]
  return hashlib.md5(str(sorted(hashes)).encode()).hexdigest()


class Spec(NamedTuple):
  """A pruned, valid NB101 cell: ``matrix`` [V, V] int, ``ops`` (V names)."""
  matrix: np.ndarray
  ops: tuple

  @classmethod
  def create(cls, matrix, ops: Sequence) -> "Spec":
    """Validates and prunes. ``ops`` may be names or the integer labels of
    the benchmark's exports (-1 input, 0/1/2 the ``OPS``, -2 output)."""
    m = np.asarray(matrix)
    ops = [_op_name(o) for o in ops]
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
      raise ValueError(f"adjacency must be square, got shape {m.shape}")
    if not np.isin(m, (0, 1)).all():
      raise ValueError(f"adjacency entries must be 0 or 1, got {sorted(set(m.ravel().tolist()))}")
    m = m.astype(np.int64)
    n = len(m)
    if len(ops) != n:
      raise ValueError(f"{len(ops)} ops for {n} vertices")
    if not 2 <= n <= MAX_VERTICES:
      raise ValueError(f"{n} vertices; NB101 allows 2..{MAX_VERTICES}")
    if np.tril(m).any():
      i, j = map(int, np.argwhere(np.tril(m))[0])
      raise ValueError(f"adjacency is not upper triangular: edge {i}->{j}")
    if m.sum() > MAX_EDGES:
      raise ValueError(f"{int(m.sum())} edges; NB101 allows at most {MAX_EDGES}")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
      raise ValueError(f"first op must be {INPUT!r} and last {OUTPUT!r}, got {ops[0]!r}, {ops[-1]!r}")
    bad = [o for o in ops[1:-1] if o not in OPS]
    if bad:
      raise ValueError(f"unknown op {bad[0]!r}; interior ops are {OPS}")
    return cls._prune(m, ops)

  @classmethod
  def _prune(cls, m, ops):
    n = len(m)
    fwd, bwd = {0}, {n - 1}
    for v in range(1, n):
      if any(m[u, v] for u in fwd):
        fwd.add(v)
    for v in range(n - 2, -1, -1):
      if any(m[v, w] for w in bwd):
        bwd.add(v)
    if n - 1 not in fwd:
      raise ValueError("the output is not reachable from the input")
    keep = sorted(fwd & bwd)
    return cls(m[np.ix_(keep, keep)], tuple(ops[i] for i in keep))

  @property
  def num_vertices(self) -> int:
    return len(self.ops)

  @property
  def hash(self) -> str:
    labels = [-1] + [OPS.index(o) for o in self.ops[1:-1]] + [-2]
    return _graph_hash(self.matrix, labels)


def _op_name(o):
  if isinstance(o, str):
    return o
  labels = {-1: INPUT, -2: OUTPUT, 0: OPS[0], 1: OPS[1], 2: OPS[2]}
  if int(o) not in labels:
    raise ValueError(f"unknown op label {o!r}; labels are {labels}")
  return labels[int(o)]


def vertex_channels(input_channels: int, output_channels: int, matrix: np.ndarray) -> list[int]:
  """Channels of every vertex: the output's channels are split among the
  vertices feeding it (the first ``output % fan_in`` get one extra), and
  other vertices take the max over their successors."""
  n = len(matrix)
  ch = [0] * n
  ch[0], ch[-1] = input_channels, output_channels
  if n == 2:
    return ch
  fan_in = int(matrix[1:, -1].sum())
  base, extra = divmod(output_channels, fan_in)
  for v in range(1, n - 1):
    if matrix[v, -1]:
      ch[v] = base + (1 if extra > 0 else 0)
      extra -= 1
  for v in range(n - 3, 0, -1):
    if not matrix[v, -1]:
      ch[v] = max([ch[v]] + [ch[d] for d in range(v + 1, n - 1) if matrix[v, d]])
  return ch


class _Layer(NamedTuple):
  kind: str  # "conv" (a ConvBNReLU) or "pool" (a max pool)
  k: int     # kernel side
  c_in: int
  c_out: int
  hw: int    # output positions


def _layers(spec: Spec, stem_channels: int, num_stacks: int, modules_per_stack: int, resolution: int):
  """The network's ConvBNReLUs and max pools, in order, with their sizes."""
  m, n = spec.matrix, spec.num_vertices
  hw = resolution * resolution
  yield _Layer("conv", 3, 3, stem_channels, hw)
  c_in = c = stem_channels
  for stack in range(num_stacks):
    if stack:  # 2x2 max pool, then twice the channels
      hw //= 4
      yield _Layer("pool", 2, c, c, hw)
      c *= 2
    for _ in range(modules_per_stack):
      ch = vertex_channels(c_in, c, m)
      for v in range(1, n - 1):
        if m[0, v]:  # 1x1 projection of the module input
          yield _Layer("conv", 1, c_in, ch[v], hw)
        if spec.ops[v] == "maxpool3x3":
          yield _Layer("pool", 3, ch[v], ch[v], hw)
        else:
          yield _Layer("conv", 3 if spec.ops[v] == OPS[0] else 1, ch[v], ch[v], hw)
      if m[0, -1]:
        yield _Layer("conv", 1, c_in, c, hw)
      c_in = c


def num_params(spec: Spec, num_classes: int = 10, *, stem_channels: int = 128, num_stacks: int = 3,
               modules_per_stack: int = 3) -> int:
  """Trainable parameters, counted as the benchmark's ``trainable_parameters``."""
  convs = [c for c in _layers(spec, stem_channels, num_stacks, modules_per_stack, 32) if c.kind == "conv"]
  weights = sum(c.k * c.k * c.c_in * c.c_out + 2 * c.c_out for c in convs)  # conv kernel, BN scale and shift
  return weights + stem_channels * 2 ** (num_stacks - 1) * num_classes + num_classes


def flops(spec: Spec, num_classes: int = 10, *, stem_channels: int = 128, num_stacks: int = 3,
          modules_per_stack: int = 3, resolution: int = 32) -> int:
  """Forward FLOPs of one image, counted as NAS-Bench-Suite-Zero counts them
  (the rules of ``nb201.flops``): a conv its multiply-accumulates, each
  BatchNorm + ReLU 3 per element, a max pool k² per output element, the
  classifier in x out. Equals NASLib's published count for every record
  whose network is the benchmark's (tests/test_proxies.py)."""
  total = 0
  for layer in _layers(spec, stem_channels, num_stacks, modules_per_stack, resolution):
    per_output = layer.k * layer.k * layer.c_in + 3 if layer.kind == "conv" else layer.k * layer.k
    total += per_output * layer.c_out * layer.hw
  return total + stem_channels * 2 ** (num_stacks - 1) * num_classes


_NASLIB_OPS = (INPUT, OUTPUT) + OPS  # NASLib's op codes 0..4


def from_naslib(key: str) -> Spec:
  """A NASLib NB101 tuple (the 49 entries of the unpruned 7x7 adjacency,
  row-major, then 7 op codes: 0 input, 1 output, 2 conv3x3, 3 conv1x1,
  4 maxpool) -> the pruned spec. NASLib keeps vertices off the
  input-output paths, so its matrices may exceed ``MAX_EDGES`` before
  pruning."""
  try:
    codes = [int(v) for v in key.strip().strip("()").split(",")]
  except ValueError:
    raise ValueError(f"not a NASLib NB101 tuple: {key!r}") from None
  n = MAX_VERTICES
  if len(codes) != n * n + n or any(not 0 <= c < len(_NASLIB_OPS) for c in codes[n * n:]):
    raise ValueError(f"not a NASLib NB101 tuple: {key!r} ({n * n} adjacency entries, then {n} op codes in 0..4)")
  m = np.array(codes[:n * n]).reshape(n, n)
  if not np.isin(m, (0, 1)).all() or np.tril(m).any():
    raise ValueError(f"not a NASLib NB101 tuple: {key!r} (the adjacency must be 0/1, upper triangular)")
  pruned = Spec._prune(m, [_NASLIB_OPS[c] for c in codes[n * n:]])
  return Spec.create(pruned.matrix, pruned.ops)


def naslib_benchmark_records(records: Mapping[str, Mapping]) -> dict[str, tuple[Spec, Mapping]]:
  """NASLib's NB101 records (tuple -> record with ``params`` in millions)
  whose network is the benchmark's: NASLib builds the unpruned graph, so a
  record whose ``params`` differ from its pruned spec's scored another
  network. Keyed by graph hash, the first record of each graph."""
  out = {}
  for key, rec in records.items():
    spec = from_naslib(key)
    if spec.hash not in out and abs(num_params(spec) / 1e6 - float(rec["params"])) < 5e-7:
      out[spec.hash] = (spec, rec)
  return out


class ConvBNReLU(nn.Module):
  c_in: int
  c_out: int
  kernel_size: int
  init_scheme: str
  probe: bool = True  # sow the ReLU's codes for nwot (taps.probe_relu)

  @nn.compact
  def __call__(self, x, train):
    y = layers.Conv(self.c_in, self.c_out, self.kernel_size, 1, self.kernel_size // 2,
                    init_scheme=self.init_scheme, name="conv")(x)
    y = layers.BatchNorm(self.c_out, momentum=BN_MOMENTUM, eps=BN_EPS, name="bn")(y, train)
    if self.probe:
      taps.probe_relu(self, "out", y)
    return jax.nn.relu(y)


def _max_pool_3x3(x):
  return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME")


class Module(nn.Module):
  spec: Spec
  c_in: int
  c_out: int
  init_scheme: str

  @nn.compact
  def __call__(self, x, train):
    m, ops, n = self.spec.matrix, self.spec.ops, self.spec.num_vertices
    ch = vertex_channels(self.c_in, self.c_out, m)
    tensors = [x]
    concat = []
    for v in range(1, n - 1):
      inputs = [tensors[s][..., :ch[v]] for s in range(1, v) if m[s, v]]
      if m[0, v]:
        inputs.append(ConvBNReLU(self.c_in, ch[v], 1, self.init_scheme, name=f"proj_{v}")(x, train))
      y = sum(inputs[1:], inputs[0])
      if ops[v] == "maxpool3x3":
        y = _max_pool_3x3(y)
      else:
        k = 3 if ops[v] == OPS[0] else 1
        y = ConvBNReLU(ch[v], ch[v], k, self.init_scheme, name=f"vertex_{v}")(y, train)
      tensors.append(y)
      if m[v, -1]:
        concat.append(y)
    out = jnp.concatenate(concat, axis=-1) if concat else None
    if m[0, -1]:
      proj = ConvBNReLU(self.c_in, self.c_out, 1, self.init_scheme, name="proj_out")(x, train)
      out = proj if out is None else out + proj
    return out


class Sizes(nn.Module, kw_only=True):
  """The size fields (keyword-only) of ``Network`` and
  ``nb101_masked.MaskedNetwork``, and their BN coupling."""
  num_classes: int = 10
  stem_channels: int = 128
  num_stacks: int = 3
  modules_per_stack: int = 3
  init_scheme: str = "torch_default"

  def couples_samples(self, train: bool) -> bool:
    return train


class Network(Sizes):
  """The NB101 network for one ``spec``; call ``net.apply(v, x, train=...)``.

  ``Network(spec, num_classes=..., ...)``; ``x`` is NHWC [batch, H, W, 3].
  """
  spec: Spec

  @nn.compact
  def __call__(self, x, train: bool = False):
    return skeleton(self, x, train, lambda stack, name, c_in, c: functools.partial(
        Module(self.spec, c_in, c, self.init_scheme, name=name), train=train))


def skeleton(net, x, train: bool, module: Callable) -> jax.Array:
  """The official network around the cells, called from ``net``'s compact
  ``__call__``: stem, stacks of modules (``module(stack, name, c_in, c_out)``
  returns ``y -> y``) with 2x2 max-pools and channel doubling between
  stacks, global pool, classifier. ``net`` is a ``Sizes``; one whose
  ``probes`` is False sows no proxy probes (nwot's ReLU codes, zen's
  features)."""
  layers.check_images(x)
  c = net.stem_channels
  probes = getattr(net, "probes", True)
  y = ConvBNReLU(3, c, 3, net.init_scheme, probes, name="stem")(x, train)
  c_in = c
  for stack in range(net.num_stacks):
    if stack:
      y = jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME")
      c *= 2
    for i in range(net.modules_per_stack):
      y = module(stack, f"stack{stack}_module{i}", c_in, c)(y)
      c_in = c
  if probes:
    taps.probe_features(net, y)
  y = jnp.mean(y, axis=(1, 2))
  return layers.Dense(c, net.num_classes, init_scheme=net.init_scheme, name="classifier")(y)
