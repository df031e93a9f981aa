"""The tap protocol: how a layer tells the structured NTK what its
parameters act on.

Every parameterised layer (``ntkjax.layers``) reports, through ``tap``,
the input its parameters multiply, as a ``Tap`` sown into the ``TAPS``
collection, and adds a zero perturbation (``PERTURBATIONS``) to its output,
so one backward pass with respect to the perturbations gives every layer's
output cotangent (``ntkjax.structured``). Both collections are absent in
ordinary calls, where ``tap`` returns the output untouched.

Layers that run inside ``lax.switch`` cannot touch Flax variables, so a
module that switches between layers (NB201's arch-as-data edge) taps them
through ``SwitchTaps``: perturbations read before the switch, each branch
returns its taps' inputs, and the taps are sown after it.
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

__all__ = ["TAPS", "PERTURBATIONS", "PROBES", "Tap", "Tapper", "tap", "conv_tap", "conv_output_size", "pair",
           "prefixed", "SwitchTaps", "probe_relu", "probe_features"]

TAPS = "ntk_taps"
PERTURBATIONS = "ntk_perturbations"
# What zero-cost proxies read besides parameters and gradients (ntkjax.proxies):
# each ReLU's Hamming kernel of activation codes and the features before the
# global pool. Absent in ordinary calls.
PROBES = "proxy_probes"


class Tap(struct.PyTreeNode):
  """What a parameterised layer's parameters act on, for the structured NTK.

  ``kind``: ``'conv'`` (``y = conv(inputs, weight) + bias``), ``'dense'``
  (``y = inputs @ weight + bias``) or ``'affine'`` (``y = inputs * weight +
  bias`` per channel, BatchNorm's scale and shift on its normalised input).
  ``weight`` and ``bias`` are the parameters' paths relative to the module
  that taps (None where absent). ``active`` is None, or a traced boolean
  that is False where the layer is one of an arch-as-data network's
  unselected ops: its output cotangent is then zero and the structured NTK
  skips the layer at run time. ``perturbation`` names the perturbation
  (in the tapping module) whose cotangent is the layer's output cotangent,
  where it is not the tap's own name: alternative ops that can never both
  be selected share one.
  """
  inputs: jax.Array
  kind: str = struct.field(pytree_node=False)
  weight: tuple | None = struct.field(pytree_node=False)
  bias: tuple | None = struct.field(pytree_node=False)
  kernel_size: tuple = struct.field(pytree_node=False, default=(1, 1))
  stride: tuple = struct.field(pytree_node=False, default=(1, 1))
  padding: tuple = struct.field(pytree_node=False, default=(0, 0))
  dilation: int = struct.field(pytree_node=False, default=1)
  groups: int = struct.field(pytree_node=False, default=1)
  active: jax.Array | None = None
  perturbation: str | None = struct.field(pytree_node=False, default=None)


# tapper(name, layer output, Tap) -> the output the network goes on with.
Tapper = Callable[[str, jax.Array, Tap], jax.Array]


def tap(module: nn.Module, name: str, y: jax.Array, record: Tap) -> jax.Array:
  """Sows ``record`` under ``name`` and perturbs ``y`` when the structured
  NTK asks (its collections are present); otherwise returns ``y``."""
  if module.is_initializing():
    return y
  if module.is_mutable_collection(TAPS):
    module.sow(TAPS, name, record)
  return module.perturb(name, y, collection=PERTURBATIONS)


def pair(v) -> tuple[int, int]:
  """An int or an (H, W) pair as an (H, W) pair."""
  return (v, v) if isinstance(v, int) else tuple(v)


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
  """One spatial side of a conv's output (symmetric ``padding`` per side)."""
  return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_tap(x, kernel_shape, stride, padding, dilation, groups, weight, bias) -> Tap:
  """The tap of a conv with an HWIO kernel of ``kernel_shape`` on input ``x``."""
  return Tap(x, "conv", weight, bias, tuple(kernel_shape[:2]), pair(stride), pair(padding), dilation, groups)


def prefixed(record: Tap, prefix: str) -> Tap:
  """``record`` with its parameter paths under the submodule ``prefix``
  (a parent tapping a child's pure layer function)."""
  return record.replace(weight=(prefix,) + record.weight,
                        bias=None if record.bias is None else (prefix,) + record.bias)


class SwitchTaps:
  """Taps for layers run inside the branches of a ``lax.switch``.

  Built before the switch (it reads one zero perturbation per layer name,
  shaped like ``like``); ``tapper(prefix, inputs)`` is the tapper a
  branch passes to its layers, which records each layer's input into the
  branch's dict ``inputs``; ``outputs(inputs)`` is what the branch returns
  (every layer name, zeros where the branch has no such layer), and
  ``sow(inputs, active)`` sows the taps after the switch, ``active(prefix)``
  saying whether the branch of ``prefix`` was taken. Layers of different
  branches with the same name (never both selected) share one perturbation
  and one input.

  ``enabled`` is False outside a structured-NTK call (the collections are
  absent): branches then run untapped (``tapper`` returns None).
  """

  def __init__(self, module: nn.Module, layer_names: Sequence[str], like: jax.Array):
    self.module, self.layer_names, self.like = module, tuple(layer_names), like
    self.enabled = not module.is_initializing() and module.is_mutable_collection(TAPS)
    self.perturbations = ({k: module.perturb(k, jnp.zeros_like(like), collection=PERTURBATIONS)
                           for k in self.layer_names} if self.enabled else {})
    self.records: dict[str, tuple[str, Tap]] = {}  # tap key -> (prefix, static fields), filled by tracing

  def tapper(self, prefix: str, inputs: dict) -> Tapper | None:
    if not self.enabled:
      return None

    def tapper(name, out, rec):
      self.records[f"{prefix}_{name}"] = prefix, prefixed(rec, prefix).replace(inputs=None, perturbation=name)
      inputs[name] = rec.inputs
      return out + self.perturbations[name]
    return tapper

  def outputs(self, inputs: Mapping[str, jax.Array]) -> dict:
    return {k: inputs.get(k, jnp.zeros_like(self.like)) for k in (self.layer_names if self.enabled else ())}

  def sow(self, inputs: Mapping[str, jax.Array], active: Callable[[str], jax.Array]) -> None:
    for key, (prefix, rec) in self.records.items():
      self.module.sow(TAPS, key, rec.replace(inputs=inputs[rec.perturbation], active=active(prefix)))


def _probing(module: nn.Module) -> bool:
  return not module.is_initializing() and module.is_mutable_collection(PROBES)


def probe_relu(module: nn.Module, name: str, x: jax.Array, active: jax.Array | None = None) -> None:
  """Sows, when asked, the Hamming kernel ``c cᵀ + (1-c)(1-c)ᵀ`` [n, n] of
  the binary codes ``c = x > 0`` of a ReLU's input (NASWOT); ``active``
  (0/1) weights it for an arch-as-data network's unselected ops."""
  if not _probing(module):
    return
  c = (x > 0).reshape(x.shape[0], -1).astype(jnp.float32)
  k = c @ c.T + (1 - c) @ (1 - c).T
  module.sow(PROBES, f"relu_{name}", k if active is None else k * active)


def probe_features(module: nn.Module, x: jax.Array) -> None:
  """Sows, when asked, the feature map before the global pool (Zen-NAS)."""
  if _probing(module):
    module.sow(PROBES, "features", x)
