"""NNI 3.0's PyTorch NDS networks (``nni.nas.hub.pytorch.nasnet``, built after
pycls/unnas) frozen to one genotype, and a weight copier into
``ntkjax.spaces.nds.Network``. Imported only by tests that skip without nni."""

import flax
import numpy as np
from nni.nas.hub.pytorch import nasnet

from ntkjax.spaces import nds

_SPACES = {"nasnet": nasnet.NASNet, "enas": nasnet.ENAS, "amoeba": nasnet.AmoebaNet, "pnas": nasnet.PNAS,
           "darts": nasnet.DARTS}


def official_network(arch: nds.Arch, space: str):
  """The NNI model space at the arch's width and depth, frozen to its genotype."""
  model_space = _SPACES[space](width=arch.width, num_cells=arch.depth, dataset="cifar")
  sample = {}
  for cell, pairs in (("normal", arch.genotype.normal), ("reduce", arch.genotype.reduce)):
    for k, (op, i) in enumerate(pairs):
      sample[f"{cell}/op_{k // 2 + 2}_{k % 2}"] = op
      sample[f"{cell}/input_{k // 2 + 2}_{k % 2}"] = [i]
  return model_space.freeze(sample)


# Index inside each PyTorch nn.Sequential -> ntkjax submodule path.
_SEQ = {
    "relu_conv_bn": {"1": ("conv0",), "2": ("bn",)},
    "factorised": {"1": ("conv0",), "2": ("conv1",), "3": ("bn",)},
    "dil": {"1": ("conv0",), "2": ("conv1",), "3": ("bn",)},
    "sep": {"1": ("block0", "conv0"), "2": ("block0", "conv1"), "3": ("block0", "bn"),
            "5": ("block1", "conv0"), "6": ("block1", "conv1"), "7": ("block1", "bn")},
}


def _op_path(op: str, rest: list[str]) -> tuple[str, ...]:
  if op == "skip_connect":  # FactorizedReduce at stride 2: conv_1 / conv_2 / bn
    return ("reduce", rest[0])
  if op in ("conv_1x1", "conv_3x3"):
    kind = "relu_conv_bn"
  elif op.startswith("conv_"):
    kind = "factorised"
  elif op.startswith("dil_conv"):
    kind = "dil"
  else:
    kind = "sep"
  sub = _SEQ[kind][rest[0]]
  return sub if kind == "sep" else ("conv",) + sub


def _target(name: str, arch: nds.Arch, stage_starts) -> tuple[str, ...]:
  parts = name.split(".")
  if parts[0] == "stem":
    return ("stem_conv",) if parts[1] == "0" else ("stem_bn",)
  if parts[0] == "classifier":
    return ("classifier",)
  cell = stage_starts[int(parts[1])] + int(parts[2])
  prefix = (f"cell{cell}",)
  if parts[3] == "preprocessor":
    pre, rest = parts[4], parts[5:-1]
    if rest[0] in ("conv_1", "conv_2", "bn"):
      return prefix + (pre, rest[0])
    return prefix + (pre,) + _SEQ["relu_conv_bn"][rest[0]]
  assert parts[3] == "ops", name
  node, k = int(parts[4]), int(parts[5])
  reduction = cell in (arch.depth // 3, 2 * arch.depth // 3)
  op = (arch.genotype.reduce if reduction else arch.genotype.normal)[2 * node + k][0]
  return prefix + (f"node{node}_op{k}",) + _op_path(op, parts[6:-1])


def copy_into(variables, model, arch: nds.Arch):
  """``variables`` of ``nds.Network(arch)`` with every tensor of ``model``."""
  n = arch.depth
  stage_starts = [i * n // 3 for i in range(3)]
  params = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables["params"]))
  stats = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables.get("batch_stats", {})))
  copied = set()
  for name, t in model.state_dict().items():
    leaf = name.rsplit(".", 1)[1]
    if leaf == "num_batches_tracked":
      continue
    path = _target(name, arch, stage_starts)
    a = np.array(t.detach().cpu().numpy(), copy=True)
    if path[-1].startswith("conv") or path[-1] in ("stem_conv",):
      key, a = path + ("kernel",), a.transpose(2, 3, 1, 0)
    elif path[-1] == "classifier":
      key = path + (("kernel",) if leaf == "weight" else ("bias",))
      a = a.T if leaf == "weight" else a
    else:  # BatchNorm
      key = path + ({"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}[leaf],)
    target = params if key in params else stats
    if key not in target or target[key].shape != a.shape:
      raise KeyError(f"{name} {a.shape} -> {key}: no such ntkjax variable of that shape")
    target[key] = a
    copied.add(key)
  missing = (set(params) | set(stats)) - copied
  if missing:
    raise KeyError(f"ntkjax variables without a PyTorch tensor: {sorted(missing)[:5]}")
  return {"params": flax.traverse_util.unflatten_dict(params),
          "batch_stats": flax.traverse_util.unflatten_dict(stats)}
