"""NDS cells as data: one network, one compilation for every genotype of a
space at one width and depth.

``nds.Network`` is built per genotype, so each DARTS cell compiles its own
functions, which at NB301's size costs more than running them (BENCHMARKS.md,
"Compile against run"). ``SwitchNetwork`` holds
every candidate op at every slot of every cell and takes the genotype as an
integer array (``encode``): each slot picks its input state and op with
``flax.linen.switch``, so only the selected op runs, and a slot of a
reduction cell holds each op at stride 2 (reading a cell input) and at
stride 1 (reading a node). Every genotype shares the variable tree and the
compiled functions; the parameters of ops a genotype does not select get
exactly zero gradients, so its NTK (all parameters) equals the per-genotype
network's with the same weights (``from_network_variables`` copies them).

Only spaces whose cells concatenate every node (DARTS, PNAS) have a fixed
cell output; the loose-end spaces (ENAS, NASNet, Amoeba) are refused.

The ops run inside switch branches, where no tap can be sown: the
structured NTK refuses the network (``implementation='auto'`` then forms J
by autodiff) and so do the proxies that probe ReLU codes or features.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ntkjax import layers, taps
from ntkjax.spaces import nds

__all__ = ["SPACES", "encode", "SwitchNetwork", "from_network_variables"]

SPACES = tuple(s for s, sp in nds.SPACES.items() if sp.concat == "all")


def _check_space(space: str) -> nds.Space:
  sp = nds.SPACES[nds.validate_space(space)]
  if sp.concat != "all":
    raise ValueError(f"NDS space {space!r} concatenates its loose ends, which differ between genotypes; "
                     f"the cells-as-data network needs a fixed concat: {', '.join(SPACES)}")
  return sp


def encode(arch: nds.Arch, space: str) -> np.ndarray:
  """int32 [2, 2 * num_nodes, 2]: per cell type (normal, reduce) and slot,
  the index of its op in ``nds.SPACES[space].ops`` and its input state."""
  sp = _check_space(space)
  g = nds.validate(arch.genotype, space)
  return np.array([[(sp.ops.index(op), i) for op, i in pairs] for pairs in (g.normal, g.reduce)], np.int32)


def _variant(op: str, stride: int) -> str:
  return op if stride == 1 else f"{op}_s2"


class _Slot(nn.Module):
  """One (op, input) slot of a node: every op of the space, at each stride
  the slot can need."""
  ops: tuple[str, ...]
  c: int
  strides: tuple[int, ...]  # (2,): reads a cell input of a reduction cell; (2, 1): either; (1,)
  init_scheme: str
  affine: bool

  def setup(self):
    self.op = {_variant(op, s): nds.Op(op, self.c, s, self.init_scheme, self.affine)
               for s in self.strides for op in self.ops}

  def __call__(self, cell_inputs, nodes, op, i, train):
    """``cell_inputs``: the two preprocessed inputs; ``nodes``: the node
    states before this slot's node; ``op``, ``i``: traced indices."""
    k = len(self.ops)
    if self.strides == (1,):
      xs = jnp.stack(list(cell_inputs) + list(nodes))
      x_in, x_node, branch = xs[i], xs[i], op
    else:  # a reduction cell: cell inputs at stride 2, nodes (if any) at stride 1
      x_in = jnp.stack(cell_inputs)[jnp.minimum(i, 1)]
      x_node = jnp.stack(nodes)[jnp.clip(i - 2, 0, len(nodes) - 1)] if nodes else x_in
      branch = op + k * (i >= 2) if nodes else op
    if self.is_initializing():  # create every variant's variables
      for name, module in self.op.items():
        module(x_in if name.endswith("_s2") or self.strides == (1,) else x_node, train)

    def run(name, on_node):
      return lambda mdl, a, b: mdl.op[name](b if on_node else a, train)
    branches = [run(_variant(o, s), s == 1 and self.strides != (1,)) for s in self.strides for o in self.ops]
    return nn.switch(branch, branches, self, x_in, x_node)


class _Cell(nn.Module):
  ops: tuple[str, ...]
  num_nodes: int
  c_pp: int
  c_p: int
  c: int
  reduction: bool
  reduction_prev: bool
  init_scheme: str
  op_affine: bool

  @nn.compact
  def __call__(self, s0, s1, codes, train):
    s0, s1 = nds.preprocess(s0, s1, self.c_pp, self.c_p, self.c, self.reduction_prev, self.init_scheme, train)
    nodes = []
    for node in range(self.num_nodes):
      strides = ((2, 1) if node else (2,)) if self.reduction else (1,)
      out = 0.0
      for k in (2 * node, 2 * node + 1):
        slot = _Slot(self.ops, self.c, strides, self.init_scheme, self.op_affine, name=f"node{node}_op{k % 2}")
        out = out + slot((s0, s1), tuple(nodes), codes[k, 0], codes[k, 1], train)
      nodes.append(out)
    return jnp.concatenate(nodes, axis=-1)


class SwitchNetwork(nn.Module):
  """``nds.Network`` for every genotype of ``space`` at ``width`` and
  ``depth``: ``net.apply(v, x, encode(arch, space), train=...)``."""
  space: str
  width: int
  depth: int
  num_classes: int = 10
  init_scheme: str = "torch_default"
  op_affine: bool = True

  def couples_samples(self, train: bool) -> bool:
    return train

  @nn.compact
  def __call__(self, x, codes, train: bool = False):
    sp = _check_space(self.space)
    for collection, what in ((taps.TAPS, "structured NTK taps"), (taps.PROBES, "proxy probes")):
      if not self.is_initializing() and self.is_mutable_collection(collection):
        raise ValueError(f"nds_switch.SwitchNetwork sows no {what}: its ops run inside switch branches; "
                         "use implementation='jacobian_contraction' (or 'auto'), or the per-genotype nds.Network")
    layers.check_images(x)
    codes = jnp.asarray(codes)
    if codes.shape != (2, 2 * sp.num_nodes, 2):
      raise ValueError(f"codes of shape {codes.shape}; {self.space} takes (2, {2 * sp.num_nodes}, 2) "
                       "(nds_switch.encode)")
    s0 = s1 = nds.stem(x, self.width, self.init_scheme, train)
    full = tuple(range(2, 2 + sp.num_nodes))
    cells, c_out = nds._layout(nds.Genotype((), full, (), full), self.width, self.depth)
    for i, (reduction, reduction_prev, c_pp, c_p, c) in enumerate(cells):
      cell = _Cell(sp.ops, sp.num_nodes, c_pp, c_p, c, reduction, reduction_prev, self.init_scheme,
                   self.op_affine, name=f"cell{i}")
      s0, s1 = s1, cell(s0, s1, codes[int(reduction)], train)
    y = jnp.mean(s1, axis=(1, 2))
    return layers.Dense(c_out, self.num_classes, init_scheme=self.init_scheme, name="classifier")(y)


def from_network_variables(arch: nds.Arch, variables: dict, like: dict) -> dict:
  """``like`` (a ``SwitchNetwork``'s variables) with every variable of
  ``nds.Network(arch)``'s ``variables`` copied to the op variant that
  ``arch`` selects: the two networks then compute the same function of
  ``encode(arch, ...)``."""
  g = arch.genotype
  cells, _ = nds._layout(g, arch.width, arch.depth)

  def place(path: tuple[str, ...]) -> tuple[str, ...]:
    if len(path) < 2 or not path[0].startswith("cell") or not path[1].startswith("node"):
      return path
    reduction = cells[int(path[0][4:])][0]
    node, slot = (int(s) for s in path[1][4:].split("_op"))
    op, i = (g.reduce if reduction else g.normal)[2 * node + slot]
    return (path[0], path[1], f"op_{_variant(op, 2 if reduction and i < 2 else 1)}", *path[2:])

  out = jax.tree_util.tree_map(lambda a: a, like)
  for collection, tree in variables.items():
    for path, value in traverse_util.flatten_dict(tree).items():
      target = out[collection]
      *parents, leaf = place(path)
      for p in parents:
        if p not in target:
          raise ValueError(f"{'/'.join(path)} of {collection!r} has no place in the switch network's variables")
        target = target[p]
      if jnp.shape(target[leaf]) != jnp.shape(value):
        raise ValueError(f"{'/'.join(path)}: shape {jnp.shape(value)} against {jnp.shape(target[leaf])}")
      target[leaf] = value
  return out

