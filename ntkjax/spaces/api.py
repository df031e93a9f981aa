"""One interface over the search spaces, for code that scores, trains or
searches without knowing which space it is in.

Architectures are strings everywhere (CSV rows, ground-truth keys, search
histories): NB201 arch strings, NB101 graph hashes, ``nds.encode`` strings.
A space object turns one into a ``Candidate``: the Flax network, the extra
arguments its ``apply`` takes, and a cache key; candidates with equal keys
share one compiled function. NB201 passes the ops as data, so all its archs
share one network, one initialisation and one compilation
(``shares_variables``); NB101 and NDS build a network per graph.
"""

from __future__ import annotations

import hashlib
from typing import Hashable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ntkjax.spaces import host_rng, nb101, nb201, nds

__all__ = ["Candidate", "NB201Space", "NB101Space", "NDSSpace"]


class Candidate(NamedTuple):
  net: nn.Module
  args: tuple          # extra positional arguments of net.apply after the images
  cache_key: Hashable  # equal keys: same network structure, one compilation


def _pick(key: jax.Array, universe: list[str], n: int) -> list[str]:
  if n > len(universe):
    raise ValueError(f"asked for {n} architectures from a universe of {len(universe)}")
  idx = np.asarray(jax.random.choice(key, len(universe), (n,), replace=False))
  return [universe[i] for i in idx]


class NB201Space:
  name = "nb201"
  shares_variables = True

  def __init__(self, num_classes: int = 10, *, C: int = 16, N: int = 5, variant: str = "benchmark",
               init_scheme: str = "torch_default"):
    self.net = nb201.Network(num_classes=num_classes, C=C, N=N, variant=variant, init_scheme=init_scheme)

  @classmethod
  def from_network(cls, net: nb201.Network) -> "NB201Space":
    space = cls.__new__(cls)
    space.net = net
    return space

  def validate(self, arch: str) -> str:
    return nb201.validate(arch)

  def sample(self, key: jax.Array, n: int) -> list[str]:
    return [nb201.encode(o) for o in nb201.sample(key, n)]

  def mutate(self, key: jax.Array, arch: str) -> str:
    return nb201.encode(nb201.mutate(key, nb201.decode(arch)))

  def num_params(self, arch: str) -> int:
    return self.net.param_count(arch)

  def is_degenerate(self, arch: str) -> bool:
    return nb201.is_degenerate(arch)

  def index(self, arch: str) -> int:
    return nb201.ops_to_index(arch)

  def candidate(self, arch: str) -> Candidate:
    return Candidate(self.net, (jnp.asarray(nb201.decode(arch)),), "nb201")


class NB101Space:
  """NB101 over a universe of specs keyed by graph hash (the benchmark's:
  ``benchmarks.read_nb101_json`` / ``read_nb101_tfrecord`` return it)."""
  name = "nb101"
  shares_variables = False

  def __init__(self, specs: Mapping[str, nb101.Spec], num_classes: int = 10, *, stem_channels: int = 128,
               num_stacks: int = 3, modules_per_stack: int = 3, init_scheme: str = "torch_default"):
    self.specs = dict(specs)
    self.universe = sorted(self.specs)
    self._position = {h: i for i, h in enumerate(self.universe)}
    self.kw = dict(num_classes=num_classes, stem_channels=stem_channels, num_stacks=num_stacks,
                   modules_per_stack=modules_per_stack, init_scheme=init_scheme)

  def validate(self, arch: str) -> str:
    if arch not in self.specs:
      raise ValueError(f"{arch!r} is not a graph hash of this NB101 universe ({len(self.specs)} specs)")
    return arch

  def sample(self, key: jax.Array, n: int) -> list[str]:
    return _pick(key, self.universe, n)

  def mutate(self, key: jax.Array, arch: str, tries: int = 200) -> str:
    """A spec of the universe one edge flip or one op change away."""
    spec = self.specs[self.validate(arch)]
    rng = host_rng(key)
    for _ in range(tries):
      m, ops = spec.matrix.copy(), list(spec.ops)
      if rng.integers(2) and len(ops) > 2:
        v = int(rng.integers(1, len(ops) - 1))
        ops[v] = str(rng.choice([o for o in nb101.OPS if o != ops[v]]))
      else:
        i, j = sorted(rng.choice(len(ops), 2, replace=False))
        m[i, j] = 1 - m[i, j]
      try:
        h = nb101.Spec.create(m, ops).hash
      except ValueError:
        continue
      if h in self.specs and h != arch:
        return h
    raise ValueError(f"no neighbour of {arch} within the universe after {tries} tries")

  def num_params(self, arch: str) -> int:
    kw = {k: v for k, v in self.kw.items() if k != "init_scheme"}
    return nb101.num_params(self.specs[self.validate(arch)], **kw)

  def is_degenerate(self, arch: str) -> bool:
    return False  # a valid, pruned spec always connects input to output

  def index(self, arch: str) -> int:
    return self._position[self.validate(arch)]

  def candidate(self, arch: str) -> Candidate:
    spec = self.specs[self.validate(arch)]
    return Candidate(nb101.Network(spec, **self.kw), (), ("nb101", arch, tuple(self.kw.items())))


class NDSSpace:
  """One NDS cell space; over a universe of archs (e.g. a ground truth's)
  when given, otherwise over the whole space (``nds.sample``)."""
  shares_variables = False

  def __init__(self, space: str, num_classes: int = 10, *, archs: Mapping[str, nds.Arch] | None = None,
               width: int | None = None, depth: int | None = None, init_scheme: str = "torch_default",
               op_affine: bool = True):
    self.space = nds.validate_space(space)
    self.name = f"nds_{space}"
    self.universe = sorted(archs) if archs else None
    self._position = {a: i for i, a in enumerate(self.universe or ())}
    self.width, self.depth = width, depth
    self.kw = dict(num_classes=num_classes, init_scheme=init_scheme, op_affine=op_affine)

  def validate(self, arch: str) -> str:
    nds.decode(arch, self.space)
    return arch

  def sample(self, key: jax.Array, n: int) -> list[str]:
    if self.universe is not None:
      return _pick(key, self.universe, n)
    return [nds.encode(a) for a in nds.sample(key, self.space, n, width=self.width, depth=self.depth)]

  def mutate(self, key: jax.Array, arch: str) -> str:
    return nds.encode(nds.mutate(key, nds.decode(arch, self.space), self.space))

  def num_params(self, arch: str) -> int:
    return nds.num_params(nds.decode(arch, self.space), self.kw["num_classes"], op_affine=self.kw["op_affine"])

  def is_degenerate(self, arch: str) -> bool:
    return False  # no NDS op set has 'none': every node carries its inputs

  def index(self, arch: str) -> int:
    if arch in self._position:
      return self._position[arch]
    return int.from_bytes(hashlib.md5(arch.encode()).digest()[:4], "little") >> 1  # stable across runs

  def candidate(self, arch: str) -> Candidate:
    return Candidate(nds.Network(nds.decode(arch, self.space), **self.kw), (),
                     ("nds", arch, tuple(self.kw.items())))
