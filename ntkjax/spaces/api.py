"""One interface over the search spaces, for code that scores, trains or
searches without knowing which space it is in.

``Space`` is the protocol (as optax's ``GradientTransformation`` is for
optimisers); ``NB201Space``, ``NB101Space`` (per graph or masked) and
``NDSSpace`` implement it. Architectures are strings everywhere (CSV rows,
ground-truth keys, search histories): NB201 arch strings, NB101 graph
hashes, ``nds.encode`` strings. A space turns one into a ``Candidate``: the
Flax network, the extra arguments its ``apply`` takes, and a cache key;
candidates with equal keys share one compiled function. ``Instantiator``
gives archs their variables and jitted functions, built once per cache key.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Hashable, Mapping, NamedTuple, Protocol, runtime_checkable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ntkjax.spaces import nb101, nb101_masked, nb201, nds, nds_switch

__all__ = ["Space", "Candidate", "Instance", "Instantiator", "NB201Space", "NB101Space", "NDSSpace"]


class Candidate(NamedTuple):
  net: nn.Module
  args: tuple          # extra positional arguments of net.apply after the images
  cache_key: Hashable  # equal keys: same network structure, one compilation


@runtime_checkable
class Space(Protocol):
  """A search space as the engine's loops, studies and searches see it.

  Attributes:
    name: ``'nb201'``, ``'nb101'`` or ``'nds_<space>'``.
    shares_variables: every arch applies one set of variables (NB201: the
      ops are data), so one initialisation can serve all archs.
    shares_compilation: every arch runs one compiled function (NB201,
      masked NB101); otherwise each graph compiles its own.

  Contract of ``candidate(arch).net``: a Flax module called as
  ``net.apply(variables, x, *args, train=bool)`` on NHWC images, returning
  logits [N, C], with a ``couples_samples(train) -> bool`` method (whether
  BatchNorm's batch statistics make samples interact, which the NTK engine
  reads). Its final dense layer's parameters live under a module path
  containing ``"classifier"``: ``ntk``'s ``param_filter='paper_code'``
  (PyTorch ``weight`` parameters without the classifier) relies on that
  name. Its parameterised layers are ``ntkjax.layers`` layers (or tap like
  them), so ``implementation='structured'`` sees every parameter.
  """
  name: str
  shares_variables: bool
  shares_compilation: bool

  def validate(self, arch: str) -> str:
    """``arch`` unchanged if it is an architecture of this space, else ValueError."""

  def sample(self, key: jax.Array, n: int) -> list[str]:
    """``n`` distinct archs, uniform over the space (or its universe)."""

  def mutate(self, key: jax.Array, arch: str) -> str:
    """A neighbour of ``arch`` (REA's mutation)."""

  def num_params(self, arch: str) -> int:
    """Trainable parameters, counted as the benchmark counts them."""

  def is_degenerate(self, arch: str) -> bool:
    """Whether the network's output ignores its input (no input->output path)."""

  def index(self, arch: str) -> int:
    """A stable integer per arch (keys ``fold_in``; not the benchmark's index)."""

  def benchmark_index(self, arch: str) -> int | None:
    """The benchmark's own index of ``arch``, where the space has one."""

  def candidate(self, arch: str) -> Candidate:
    """The network, its extra inputs and its compilation cache key."""

  def batched(self) -> "Space":
    """This space as code that vmaps over archs should use it (itself,
    unless its network picks ops with a conditional)."""


class Instance(NamedTuple):
  arch: str
  candidate: Candidate
  variables: dict
  fns: dict            # name -> the factory's function for this candidate's network
  fresh: bool = False  # the functions were just built: the first call compiles

  @property
  def args(self) -> tuple:
    return self.candidate.args


class Instantiator:
  """Networks, initial variables and jitted functions per architecture.

  ``factories`` maps a name to ``factory(net) -> function`` (a score
  function, an epoch function, ...); each is built once per candidate cache
  key, so NB201's archs share one of each. ``get(arch, index)`` initialises
  with ``fold_in(key, index)``, except that archs of a space that shares
  variables share one initialisation unless ``init_per_arch`` (the paper's
  code reseeds before every arch). ``release(instance)`` drops a per-graph
  network's functions; with ``clear_caches=True`` it also clears JAX's
  compilation caches, which bounds host memory over thousands of per-graph
  archs in a long run but also drops every other compiled function of the
  process (so it is off by default: a notebook keeps its own).
  """

  def __init__(self, space: Space, key: jax.Array, sample_input, factories: Mapping[str, Callable], *,
               init_per_arch: bool = False, clear_caches: bool = False):
    self.space, self.key, self.x1 = space, key, sample_input
    self.factories = dict(factories)
    self.init_per_arch = init_per_arch
    self.clear_caches = clear_caches
    self._built: dict = {}  # cache_key -> {"init": jitted init, name: function}
    self._shared = None

  def functions(self, cand: Candidate) -> tuple[dict, bool]:
    """The candidate's functions, and whether they were built just now."""
    if cand.cache_key in self._built:
      return self._built[cand.cache_key], False
    fns = {name: make(cand.net) for name, make in self.factories.items()}
    fns["init"] = jax.jit(cand.net.init)
    self._built[cand.cache_key] = fns
    return fns, True

  def get(self, arch: str, index: int) -> Instance:
    cand = self.space.candidate(arch)
    fns, fresh = self.functions(cand)
    if self.space.shares_variables and not self.init_per_arch:
      if self._shared is None:
        self._shared = fns["init"](self.key, self.x1, *cand.args)
      variables = self._shared
    else:
      variables = fns["init"](jax.random.fold_in(self.key, index), self.x1, *cand.args)
    return Instance(arch, cand, variables, fns, fresh)

  def release(self, instance: Instance) -> None:
    if not self.space.shares_compilation:
      self._built.pop(instance.candidate.cache_key, None)
      if self.clear_caches:
        jax.clear_caches()


def _pick(key: jax.Array, universe: list[str], n: int) -> list[str]:
  if n > len(universe):
    raise ValueError(f"asked for {n} architectures from a universe of {len(universe)}")
  idx = np.asarray(jax.random.choice(key, len(universe), (n,), replace=False))
  return [universe[i] for i in idx]


def _nearest(key: jax.Array, features: np.ndarray, i: int) -> int:
  """A row of ``features`` [U, F] at the smallest nonzero Hamming distance
  from row ``i``, drawn uniformly among the ties."""
  d = (features != features[i]).sum(1).astype(np.float64)
  d[d == 0] = np.inf  # the parent itself (and any duplicate)
  ties = np.flatnonzero(d == d.min())
  if not np.isfinite(d.min()):
    raise ValueError("the universe has no architecture other than the parent")
  return int(ties[int(jax.random.randint(key, (), 0, len(ties)))])


class NB201Space:
  """NB201 with the ops as data: one network, one initialisation, one
  compilation for all 15,625 archs. ``official_index`` (a ground truth's
  ``index``) gives ``benchmark_index``; ``index`` is the lexicographic
  position (``nb201.ops_to_index``), known without any file.

  ``select`` is ``nb201.Network``'s: ``'mask'`` (the default) evaluates every
  op of every edge and vmaps over archs; ``'switch'`` runs only the selected
  op (``lax.switch``), for scoring or training one arch at a time (far
  cheaper for batch-coupled kernels; BENCHMARKS.md, "NTK kernel speed, CPU"). Both
  take the same variables. Code that vmaps over archs takes ``batched()``."""
  name = "nb201"
  shares_variables = True
  shares_compilation = True

  def __init__(self, num_classes: int = 10, *, C: int = 16, N: int = 5, variant: str = "benchmark",
               init_scheme: str = "torch_default", official_index: Mapping[str, int] | None = None,
               select: str = "mask"):
    if select not in nb201.SELECTS:
      raise ValueError(f"unknown select {select!r}; known: {nb201.SELECTS}")
    self.net = nb201.Network(num_classes=num_classes, C=C, N=N, variant=variant, init_scheme=init_scheme,
                             select=select)
    self.official_index = dict(official_index or {})

  @classmethod
  def from_network(cls, net: nb201.Network, official_index: Mapping[str, int] | None = None) -> "NB201Space":
    space = cls.__new__(cls)
    space.net = net
    space.official_index = dict(official_index or {})
    return space

  def batched(self) -> "NB201Space":
    """This space with the masked network: a switch vmapped over archs runs
    every branch anyway, and the mask is the form XLA fuses for that."""
    if self.net.select == "mask":
      return self
    return NB201Space.from_network(self.net.clone(select="mask"), self.official_index)

  def validate(self, arch: str) -> str:
    nb201.validate(arch)
    return arch

  def sample(self, key: jax.Array, n: int) -> list[str]:
    return [nb201.encode(o) for o in nb201.sample(key, n)]

  def mutate(self, key: jax.Array, arch: str) -> str:
    return nb201.encode(nb201.mutate(key, nb201.decode(arch)))

  def num_params(self, arch: str) -> int:
    return self.net.param_count(arch)

  def flops(self, arch: str) -> int:
    """Forward FLOPs of one image (``nb201.flops``; ImageNet16-120's 120
    classes at 16x16, the CIFARs at 32x32)."""
    n = self.net
    return nb201.flops(arch, n.num_classes, C=n.C, N=n.N, resolution=16 if n.num_classes == 120 else 32)

  def is_degenerate(self, arch: str) -> bool:
    return nb201.is_degenerate(arch)

  def index(self, arch: str) -> int:
    return nb201.ops_to_index(arch)

  def benchmark_index(self, arch: str) -> int | None:
    return self.official_index.get(arch)

  def candidate(self, arch: str) -> Candidate:
    return Candidate(self.net, (jnp.asarray(nb201.decode(arch)),), "nb201")


class NB101Space:
  """NB101 over a universe of specs keyed by graph hash (the benchmark's:
  a ground truth's ``universe``, from ``ground_truth.read_nb101_json`` or
  ``read_nb101_tfrecord``).

  ``masked=True`` builds every spec from one ``nb101_masked.MaskedNetwork``
  (one compilation for all specs, each initialised on its own at its real
  fan-ins) instead of a network per graph."""
  name = "nb101"
  shares_variables = False

  def __init__(self, specs: Mapping[str, nb101.Spec], num_classes: int = 10, *, stem_channels: int = 128,
               num_stacks: int = 3, modules_per_stack: int = 3, init_scheme: str = "torch_default",
               masked: bool = False):
    self.masked = masked
    if masked:
      self.net = nb101_masked.MaskedNetwork(num_classes=num_classes, stem_channels=stem_channels,
                                            num_stacks=num_stacks, modules_per_stack=modules_per_stack,
                                            init_scheme=init_scheme)
    self.specs = dict(specs)
    self.universe = sorted(self.specs)
    self._position = {h: i for i, h in enumerate(self.universe)}
    self.kw = dict(num_classes=num_classes, stem_channels=stem_channels, num_stacks=num_stacks,
                   modules_per_stack=modules_per_stack, init_scheme=init_scheme)
    self._feats = None

  @property
  def shares_compilation(self) -> bool:
    return self.masked

  def validate(self, arch: str) -> str:
    if arch not in self.specs:
      raise ValueError(f"{arch!r} is not a graph hash of this NB101 universe ({len(self.specs)} specs)")
    return arch

  def sample(self, key: jax.Array, n: int) -> list[str]:
    return _pick(key, self.universe, n)

  def mutate(self, key: jax.Array, arch: str) -> str:
    """A nearest neighbour within the universe: a spec at the fewest
    differing edges and vertex ops (cells padded to 7 vertices, output
    last), drawn uniformly among ties. A benchmark's sample (e.g. 1,000 of
    423k specs) rarely holds a spec one random edit away, so the edit is
    taken to the closest spec that has ground truth; in the full space that
    is a single edit."""
    i = self.index(arch)
    return self.universe[_nearest(key, self._features(), i)]

  def _features(self) -> np.ndarray:
    if self._feats is None:
      n = nb101.MAX_VERTICES
      rows = np.triu_indices(n, 1)
      feats = np.zeros((len(self.universe), len(rows[0]) + n), np.int8)
      codes = {o: k + 1 for k, o in enumerate(nb101.OPS)}
      for u, h in enumerate(self.universe):
        spec = self.specs[h]
        v = len(spec.ops)
        place = list(range(v - 1)) + [n - 1]  # the output vertex always last
        m = np.zeros((n, n), np.int8)
        m[np.ix_(place, place)] = spec.matrix
        ops = np.zeros(n, np.int8)
        ops[place[1:-1]] = [codes[o] for o in spec.ops[1:-1]]
        feats[u] = np.concatenate([m[rows], ops])
      self._feats = feats
    return self._feats

  def _sizes(self) -> dict:
    return {k: v for k, v in self.kw.items() if k != "init_scheme"}

  def num_params(self, arch: str) -> int:
    return nb101.num_params(self.specs[self.validate(arch)], **self._sizes())

  def flops(self, arch: str) -> int:
    """Forward FLOPs of one 32x32 image (``nb101.flops``)."""
    return nb101.flops(self.specs[self.validate(arch)], **self._sizes())

  def is_degenerate(self, arch: str) -> bool:
    return False  # a valid, pruned spec always connects input to output

  def index(self, arch: str) -> int:
    return self._position[self.validate(arch)]

  def benchmark_index(self, arch: str) -> int | None:
    return None  # NB101 is keyed by graph hash; it has no index

  def candidate(self, arch: str) -> Candidate:
    spec = self.specs[self.validate(arch)]
    if self.masked:
      return Candidate(self.net, (nb101_masked.encode(spec, stem_channels=self.net.stem_channels,
                                                      num_stacks=self.net.num_stacks),), "nb101_masked")
    return Candidate(nb101.Network(spec, **self.kw), (), ("nb101", arch, tuple(self.kw.items())))

  def batched(self) -> "NB101Space":
    return self


class NDSSpace:
  """One NDS cell space; over a universe of archs (e.g. a ground truth's)
  when given, otherwise over the whole space (``nds.sample``).

  ``width`` / ``depth``, when set, fix the network's size: sampled archs get
  them, and a universe's archs (which carry the benchmark's size in their
  strings, the ground truth's keys) are built and counted at that size, a
  reduced proxy of the benchmark's network.

  ``masked=True`` builds every arch of one width and depth from one
  ``nds_switch.SwitchNetwork`` (the cell as data: one compilation for all
  genotypes, each initialised on its own; DARTS and PNAS) instead of a
  network per genotype.
  """
  shares_variables = False

  def __init__(self, space: str, num_classes: int = 10, *, archs: Mapping[str, nds.Arch] | None = None,
               width: int | None = None, depth: int | None = None, init_scheme: str = "torch_default",
               op_affine: bool = True, record_index: Mapping[str, int] | None = None, masked: bool = False):
    self.space = nds.validate_space(space)
    if masked and self.space not in nds_switch.SPACES:
      raise ValueError(f"masked=True: NDS space {space!r} concatenates its loose ends, which differ between "
                       f"genotypes; the cells-as-data network takes {', '.join(nds_switch.SPACES)}")
    self.masked = masked
    self.record_index = dict(record_index or {})
    self.name = f"nds_{space}"
    self.universe = sorted(archs) if archs else None
    self._position = {a: i for i, a in enumerate(self.universe or ())}
    self.width, self.depth = width, depth
    self.kw = dict(num_classes=num_classes, init_scheme=init_scheme, op_affine=op_affine)
    self._feats = None

  def validate(self, arch: str) -> str:
    nds.decode(arch, self.space)
    return arch

  def sample(self, key: jax.Array, n: int) -> list[str]:
    if self.universe is not None:
      return _pick(key, self.universe, n)
    return [nds.encode(a) for a in nds.sample(key, self.space, n, width=self.width, depth=self.depth)]

  def mutate(self, key: jax.Array, arch: str) -> str:
    """``nds.mutate`` in the whole space; within a universe a nearest
    neighbour in it: the archs with the fewest differing (op, input) pairs
    and concat entries, drawn uniformly among ties."""
    if self.universe is None:
      return nds.encode(nds.mutate(key, nds.decode(arch, self.space), self.space))
    return self.universe[_nearest(key, self._features(), self.index(arch))]

  def _features(self) -> np.ndarray:
    if self._feats is None:
      def row(a: str):
        x = nds.decode(a, self.space)
        g = x.genotype
        cells = [f"{op}~{i}" for op, i in g.normal + g.reduce]
        return cells + [f"n{g.normal_concat}", f"r{g.reduce_concat}", f"w{x.width}d{x.depth}"]
      names = [row(a) for a in self.universe]
      width = max(map(len, names))
      vocab: dict = {}
      self._feats = np.array([[vocab.setdefault(t, len(vocab)) for t in r] + [-1] * (width - len(r))
                              for r in names], np.int32)
    return self._feats

  def _built(self, arch: str) -> nds.Arch:
    a = nds.decode(arch, self.space)
    return a._replace(width=self.width or a.width, depth=self.depth or a.depth)

  def num_params(self, arch: str) -> int:
    return nds.num_params(self._built(arch), self.kw["num_classes"], op_affine=self.kw["op_affine"])

  def is_degenerate(self, arch: str) -> bool:
    return False  # no NDS op set has 'none': every node carries its inputs

  def index(self, arch: str) -> int:
    if arch in self._position:
      return self._position[arch]
    return int.from_bytes(hashlib.md5(arch.encode()).digest()[:4], "little") >> 1  # stable across runs

  def benchmark_index(self, arch: str) -> int | None:
    return self.record_index.get(arch)

  @property
  def shares_compilation(self) -> bool:
    return self.masked  # one compilation per width and depth

  def candidate(self, arch: str) -> Candidate:
    a = self._built(arch)
    if self.masked:
      net = nds_switch.SwitchNetwork(self.space, a.width, a.depth, **self.kw)
      return Candidate(net, (jnp.asarray(nds_switch.encode(a, self.space)),),
                       ("nds_switch", self.space, a.width, a.depth, tuple(self.kw.items())))
    return Candidate(nds.Network(a, **self.kw), (), ("nds", arch, self.width, self.depth, tuple(self.kw.items())))

  def batched(self) -> "NDSSpace":
    return self
