"""NAS-Bench-101 as one masked network: the spec is data, so every spec of a
shape shares one compilation.

``nb101.Network`` builds a network per graph, and each new graph compiles
(``benchmarks/compile_vs_run.py``). ``MaskedNetwork`` instead holds a cell of
7 vertices with all three ops at every interior vertex, every vertex padded
to the module's output width. ``encode(spec, ...)`` turns a spec into arrays
(``Arch``) that select it:

* the pruned spec is padded to 7 vertices, its output vertex last;
* every interior op runs on the padded width and the one-hot ``ops`` keep
  the chosen one;
* channel masks hold each vertex to its ``nb101.vertex_channels`` width,
  which is also the official truncation on vertex-to-vertex edges;
* ``concat`` gathers the vertices that feed the output into the official
  concatenation order.

Masked channels and unchosen ops are exact zeros, so they get zero gradient:
the NTK equals the per-graph network's when ``embed`` copies its variables in
(``tests/spaces/test_nb101_masked.py``). ``MaskedNetwork.init`` draws each
vertex's kernel at the scale of its real fan-in (``initializers.
kernel_init_with_fans``), so a fresh init has the per-graph network's
distribution. The price is compute: all three ops at full width on every
vertex (BENCHMARKS.md, "Compile against run").
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from ntkjax import initializers, layers, taps
from ntkjax.spaces import nb101

__all__ = ["Arch", "encode", "MaskedNetwork", "embed"]

V = nb101.MAX_VERTICES
INTERIOR = V - 2


class Arch(NamedTuple):
  """A spec as arrays (a pytree). ``matrix`` [7, 7] and ``ops`` [5, 3] are
  float 0/1; per stack, ``channels`` [5] (0 for an unused vertex) and
  ``concat`` [c_out] (indices into the 5 vertices' padded outputs, laid side
  by side)."""
  matrix: jax.Array
  ops: jax.Array
  channels: tuple
  concat: tuple


def _place(n: int) -> list[int]:
  """Padded position of each of a pruned spec's ``n`` vertices."""
  return list(range(n - 1)) + [V - 1]


def encode(spec: nb101.Spec, *, stem_channels: int = 128, num_stacks: int = 3) -> Arch:
  """The arrays that select ``spec`` in a ``MaskedNetwork`` of that size."""
  n, place = spec.num_vertices, _place(spec.num_vertices)
  matrix = np.zeros((V, V), np.float32)
  matrix[np.ix_(place, place)] = spec.matrix
  ops = np.zeros((INTERIOR, len(nb101.OPS)), np.float32)
  for v in range(1, n - 1):
    ops[v - 1, nb101.OPS.index(spec.ops[v])] = 1
  channels, concat = [], []
  c = stem_channels
  for stack in range(num_stacks):
    c = c * 2 if stack else c
    ch = nb101.vertex_channels(c, c, spec.matrix)  # interior widths depend on c_out only
    padded = np.zeros(INTERIOR, np.int32)
    padded[:n - 2] = ch[1:-1]
    idx = [(v - 1) * c + k for v in range(1, n - 1) if spec.matrix[v, -1] for k in range(ch[v])]
    channels.append(jnp.asarray(padded))
    concat.append(jnp.asarray(np.asarray(idx + [0] * (c - len(idx)), np.int32)))
  return Arch(jnp.asarray(matrix), jnp.asarray(ops), tuple(channels), tuple(concat))


class _Conv(nn.Module):
  """A bias-free conv whose ``kernel`` is drawn at the scale of the real
  fans (traced) and zero outside the active block ``[:c_in_real, :c_out_real]``."""
  c_in: int
  c_out: int
  kernel_size: int
  init_scheme: str

  @nn.compact
  def __call__(self, x, c_in_real, c_out_real):
    k = self.kernel_size
    # A padding vertex has no real channels, so an empty block: its scale must stay finite, or the
    # masked zeros become 0 * inf = NaN.
    draw = initializers.kernel_init_with_fans(self.init_scheme, k * k * jnp.maximum(c_in_real, 1),
                                              k * k * jnp.maximum(c_out_real, 1))
    active = ((jnp.arange(self.c_in) < c_in_real)[:, None] & (jnp.arange(self.c_out) < c_out_real)[None])

    def init(key, shape, dtype=jnp.float32):
      return draw(key, shape, dtype) * active.astype(dtype)
    kernel = self.param("kernel", init, (k, k, self.c_in, self.c_out))
    y = layers.conv2d(x, kernel, None, 1, k // 2)
    return taps.tap(self, "out", y, taps.conv_tap(x, kernel.shape, 1, k // 2, 1, 1, ("kernel",), None))


class _ConvBNReLU(nn.Module):
  """``nb101.ConvBNReLU`` at padded width; channels from ``c_out_real`` on
  are zeroed after the ReLU."""
  c_in: int
  c_out: int
  kernel_size: int
  init_scheme: str

  @nn.compact
  def __call__(self, x, train, c_in_real, c_out_real):
    y = _Conv(self.c_in, self.c_out, self.kernel_size, self.init_scheme, name="conv")(x, c_in_real, c_out_real)
    y = layers.BatchNorm(self.c_out, momentum=nb101.BN_MOMENTUM, eps=nb101.BN_EPS, name="bn")(y, train)
    return jax.nn.relu(y) * (jnp.arange(self.c_out) < c_out_real).astype(y.dtype)


class _Module(nn.Module):
  c_in: int
  c_out: int
  init_scheme: str

  @nn.compact
  def __call__(self, x, matrix, ops, channels, concat, train):
    c, s = self.c_out, self.init_scheme
    vertices = []
    for v in range(1, V - 1):
      ch = channels[v - 1]
      mask = (jnp.arange(c) < ch).astype(x.dtype)
      y = matrix[0, v] * _ConvBNReLU(self.c_in, c, 1, s, name=f"proj_{v}")(x, train, self.c_in, ch)
      for u in range(1, v):
        y = y + matrix[u, v] * vertices[u - 1]
      y = y * mask  # truncation to this vertex's width
      out = ops[v - 1, 2] * nb101._max_pool_3x3(y)
      out = out + ops[v - 1, 0] * _ConvBNReLU(c, c, 3, s, name=f"vertex_{v}_conv3x3")(y, train, ch, ch)
      out = out + ops[v - 1, 1] * _ConvBNReLU(c, c, 1, s, name=f"vertex_{v}_conv1x1")(y, train, ch, ch)
      vertices.append(out)  # already zero from ch on: the convs mask, and max-pooling zeros gives zero
    fed = (matrix[1:V - 1, V - 1].sum() > 0).astype(x.dtype)
    out = fed * jnp.take(jnp.concatenate(vertices, axis=-1), concat, axis=-1)
    return out + matrix[0, V - 1] * _ConvBNReLU(self.c_in, c, 1, s, name="proj_out")(x, train, self.c_in, c)


class MaskedNetwork(nb101.Sizes):
  """Every NB101 spec in one network; ``net.apply(v, x, encode(spec),
  train=...)``. Keyword fields as ``nb101.Network``'s; ``x`` is NHWC.
  It sows no proxy probes: its padded channels and unselected ops would
  enter nwot's codes and zen's statistics (use the per-graph network)."""
  probes = False  # read by nb101.skeleton; a class constant, not a module field

  @nn.compact
  def __call__(self, x, arch: Arch, train: bool = False):
    if arch.matrix.shape != (V, V) or len(arch.channels) != self.num_stacks:
      raise ValueError(f"arch encodes a {arch.matrix.shape} matrix and {len(arch.channels)} stacks; this "
                       f"network needs ({V}, {V}) and {self.num_stacks}: use encode(spec, num_stacks=...)")

    def module(stack, name, c_in, c):
      if arch.concat[stack].shape != (c,):
        raise ValueError(f"arch was encoded for {arch.concat[stack].shape[0]} channels in stack {stack}, "
                         f"this network has {c}: use encode(spec, stem_channels={self.stem_channels})")
      cell = _Module(c_in, c, self.init_scheme, name=name)
      return lambda y: cell(y, arch.matrix, arch.ops, arch.channels[stack], arch.concat[stack], train)
    return nb101.skeleton(self, x, train, module)


def embed(spec: nb101.Spec, variables: dict, masked_variables: dict) -> dict:
  """``masked_variables`` with ``spec``'s per-graph ``nb101.Network``
  variables copied into their blocks; other entries are zeroed (running
  variances set to one), so the masked network then computes the per-graph
  network's function, and its NTK."""
  place = _place(spec.num_vertices)
  out = {}
  for col, tree in masked_variables.items():
    flat = traverse_util.flatten_dict(tree)
    src = traverse_util.flatten_dict(variables.get(col, {}))
    new = {k: (jnp.ones_like(a) if k[-1] == "var" else jnp.zeros_like(a)) for k, a in flat.items()}
    for k, a in src.items():
      target = list(k)
      if k[0].startswith("stack"):
        name = k[1]
        if name.startswith("vertex_"):
          v = int(name.split("_")[1])
          kind = "conv3x3" if spec.ops[v] == nb101.OPS[0] else "conv1x1"
          target[1] = f"vertex_{place[v]}_{kind}"
        elif name.startswith("proj_") and name != "proj_out":
          target[1] = f"proj_{place[int(name.split('_')[1])]}"
      target = tuple(target)
      if target not in new:
        raise ValueError(f"{'/'.join(k)} of the per-graph network has no place in the masked one")
      new[target] = new[target].at[tuple(slice(0, d) for d in a.shape)].set(a)
    out[col] = traverse_util.unflatten_dict(new)
  return out
