"""The official PyTorch NB201 network (xautodl) and a weight copier into
``ntkjax.spaces.nb201.Network``. Imported only by tests that skip without
torch/xautodl."""

import numpy as np
import torch
from xautodl.models.cell_infers.cells import InferCell
from xautodl.models.cell_infers.tiny_network import TinyNetwork
from xautodl.models.cell_searchs.genotypes import Structure

from ntkjax.spaces import nb201


def official_network(arch: str, C: int, N: int, num_classes: int, variant: str):
  """xautodl TinyNetwork; for ``paper_code`` its cells are rebuilt with
  affine=False/track_running_stats=False, which is the nasbench2 cell
  (ReLU-Conv(bias)-BN(no affine, batch stats always))."""
  genotype = Structure.str2structure(arch)
  net = TinyNetwork(C, N, genotype, num_classes)
  if variant == "paper_code":
    for i, cell in enumerate(net.cells):
      if isinstance(cell, InferCell):
        net.cells[i] = InferCell(genotype, cell.in_dim, cell.out_dim, 1, False, False)
  return net


def _t(x):
  # A copy: JAX on CPU may alias a numpy buffer, and torch updates weights in place.
  return np.array(x.detach().cpu().numpy(), copy=True)


def _conv(sd, prefix):
  out = {"kernel": _t(sd[prefix + ".weight"]).transpose(2, 3, 1, 0)}
  if prefix + ".bias" in sd:
    out["bias"] = _t(sd[prefix + ".bias"])
  return out


def _bn(sd, prefix, params, stats):
  if prefix + ".weight" in sd:
    params["scale"] = _t(sd[prefix + ".weight"])
    params["bias"] = _t(sd[prefix + ".bias"])
  if prefix + ".running_mean" in sd:
    stats["mean"] = _t(sd[prefix + ".running_mean"])
    stats["var"] = _t(sd[prefix + ".running_var"])


def _relu_conv_bn(sd, prefix):
  params, stats = {"conv": _conv(sd, prefix + ".op.1")}, {}
  bn_params = {}
  _bn(sd, prefix + ".op.2", bn_params, stats)
  if bn_params:
    params["bn"] = bn_params
  return params, ({"bn": stats} if stats else {})


def copy_into(torch_net, variables, arch: str, N: int):
  """Returns ``variables`` with every weight the torch net has replaced."""
  import flax
  sd = torch_net.state_dict()
  ops = nb201.decode(arch)
  params = flax.core.unfreeze(variables["params"])
  stats = flax.core.unfreeze(variables.get("batch_stats", {}))

  def put(tree, path, value):
    for k in path[:-1]:
      tree = tree[k]
    tree[path[-1]].update(value) if isinstance(value, dict) else tree.__setitem__(path[-1], value)

  put(params, ["stem_conv"], _conv(sd, "stem.0"))
  _bn(sd, "stem.1", params["stem_bn"], stats["stem_bn"])
  layer_names = []
  for stage in range(3):
    if stage:
      layer_names.append(f"reduction_{stage}")
    layer_names += [f"cell_{stage}_{i}" for i in range(N)]
  for idx, name in enumerate(layer_names):
    pre = f"cells.{idx}"
    if name.startswith("reduction"):
      for part in ("conv_a", "conv_b"):
        p, s = _relu_conv_bn(sd, f"{pre}.{part}")
        put(params, [name, part], p)
        if s:
          put(stats, [name, part], s)
      put(params, [name, "downsample"], _conv(sd, f"{pre}.downsample.1"))
      continue
    for e, op in enumerate(ops):
      op_name = nb201.OPS[op]
      if op_name not in ("nor_conv_1x1", "nor_conv_3x3"):
        continue
      sub = "conv_1x1" if op_name == "nor_conv_1x1" else "conv_3x3"
      p, s = _relu_conv_bn(sd, f"{pre}.layers.{e}")
      put(params, [name, f"edge_{e}", sub], p)
      if s:
        put(stats, [name, f"edge_{e}", sub], s)
  _bn(sd, "lastact.0", params["last_bn"], stats["last_bn"])
  params["classifier"] = {"kernel": _t(sd["classifier.weight"]).T,
                          "bias": _t(sd["classifier.bias"])}
  out = {"params": params}
  if stats:
    out["batch_stats"] = stats
  return out


def randomize_bn(torch_net, seed: int = 0):
  """Non-trivial BN affine params and running stats, so eval mode is tested."""
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in torch_net.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        if m.affine:
          m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
          m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
        if m.track_running_stats:
          m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
          m.running_var.copy_(1 + 0.3 * torch.rand(m.running_var.shape, generator=g))
