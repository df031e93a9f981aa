"""NAS-Bench-Suite-Zero's network proxies in PyTorch, one at a time, on the
official NB201 network (xautodl ``TinyNetwork``), as NASLib's
``predictors/pruners/measures`` computes them: train-mode BatchNorm, mean
cross-entropy, the weights of every ``Conv2d`` and ``Linear``, each proxy
with its own passes. The reference that ``ntkjax.proxies`` is checked
against, and the PyTorch side of ``benchmarks/proxy_speed.py``. Written
here from the proxies' definitions; imported only where torch is present."""

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_K = 1e-5  # NASLib's k in jacov and epe_nas


def _layers(net):
  return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _logits(net, x):
  return net(x)[1]


def _weight_grads(net, x, labels):
  net.train()
  net.zero_grad()
  layers = _layers(net)
  grads = torch.autograd.grad(F.cross_entropy(_logits(net, x), labels), [m.weight for m in layers])
  return layers, grads


def snip(net, x, labels):
  layers, grads = _weight_grads(net, x, labels)
  return sum((m.weight * g).abs().sum() for m, g in zip(layers, grads)).item()


def grad_norm(net, x, labels):
  _, grads = _weight_grads(net, x, labels)
  return sum(g.norm() for g in grads).item()


def plain(net, x, labels):
  layers, grads = _weight_grads(net, x, labels)
  return sum((m.weight * g).sum() for m, g in zip(layers, grads)).item()


def l2_norm(net, x, labels):
  return sum(m.weight.norm() for m in _layers(net)).item()


def grasp(net, x, labels):
  """-θ ⊙ H g: g the loss gradient of the weights, held constant, H the
  Hessian of the loss in the weights."""
  layers, g = _weight_grads(net, x, labels)
  weights = [m.weight for m in layers]
  grad_f = torch.autograd.grad(F.cross_entropy(_logits(net, x), labels), weights, create_graph=True)
  z = sum((gw.detach() * gf).sum() for gw, gf in zip(g, grad_f))
  hg = torch.autograd.grad(z, weights)
  return sum(-(w * h).sum() for w, h in zip(weights, hg)).item()


def fisher(net, x, labels):
  """Σ_layers Σ_channels ½ mean_n (Σ_hw a δ)², ``a`` each conv/linear output
  and δ the loss gradient there, each channel's value counted once per
  weight of the channel (NASLib broadcasts it to the weight's shape)."""
  net.train()
  outputs = []

  def keep(module, inputs, out):
    out.retain_grad()
    outputs.append((out, module.weight[0].numel()))
  hooks = [m.register_forward_hook(keep) for m in _layers(net)]
  try:
    F.cross_entropy(_logits(net, x), labels).backward()
  finally:
    for h in hooks:
      h.remove()
  total = 0.0
  for a, fan_in in outputs:
    g = (a * a.grad).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * a.grad
    total = total + fan_in * 0.5 * g.pow(2).mean(0).sum()
  net.zero_grad()
  return total.item()


def _input_jacobian(net, x):
  net.train()
  x = x.clone().requires_grad_(True)
  (j,) = torch.autograd.grad(_logits(net, x).sum(), x)
  return j.reshape(j.shape[0], -1).detach().numpy().astype(np.float64)


def jacov(net, x, labels):
  v = np.linalg.eigvalsh(np.corrcoef(_input_jacobian(net, x)))
  return float(-np.sum(np.log(v + _K) + 1.0 / (v + _K)))


def epe_nas(net, x, labels, num_classes=10):
  j, labels = _input_jacobian(net, x), labels.numpy()
  scores = []
  for c in np.unique(labels):
    corr = np.atleast_2d(np.corrcoef(j[labels == c]))
    s = np.sum(np.log(np.abs(corr) + _K))
    scores.append(s / len(corr) if num_classes > 100 else s)
  if num_classes <= 100:
    return float(np.sum(np.abs(scores)))
  s = np.asarray(scores)
  return float(np.abs(s[:, None] - s[None, :]).sum() / len(s))


def nwot(net, x, labels):
  """log|det K|, K summing c cᵀ + (1 - c)(1 - c)ᵀ over the binary codes c of
  every ReLU's input."""
  net.train()
  n = x.shape[0]
  K = torch.zeros(n, n, dtype=torch.float64)

  def count(module, inputs, out):
    c = (inputs[0].detach().reshape(n, -1) > 0).double()
    K.add_(c @ c.T + (1 - c) @ (1 - c).T)
  hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.ReLU)]
  try:
    with torch.no_grad():
      _logits(net, x)
  finally:
    for h in hooks:
      h.remove()
  return torch.linalg.slogdet(K)[1].item()


def _without_bn(net):
  out = copy.deepcopy(net)
  for name, module in list(out.named_modules()):
    for child_name, child in list(module.named_children()):
      if isinstance(child, nn.BatchNorm2d):
        setattr(module, child_name, nn.Identity())
  return out


def synflow(net, x, labels):
  """log Σ |θ ⊙ ∂R/∂θ|, R the summed output of the network with |θ|,
  BatchNorm removed and one all-ones input, in float64 as NASLib."""
  lin = _without_bn(net).double()
  with torch.no_grad():
    for p in lin.parameters():
      p.abs_()
  layers = _layers(lin)
  weights = [m.weight for m in layers]
  grads = torch.autograd.grad(_logits(lin, torch.ones_like(x[:1], dtype=torch.float64)).sum(), weights)
  return math.log(sum((w * g).abs().sum() for w, g in zip(weights, grads)).item())


def zen(net, x, labels, mixup_gamma=1e-2, seed=0):
  """Zen-NAS with Gaussian weights and inputs: log mean_n Σ|f(x) - f(x + γ x')|
  of the features before the global pool, plus Σ_BN log √mean(running var)."""
  g = torch.Generator().manual_seed(seed)
  z = copy.deepcopy(net)
  with torch.no_grad():
    for m in z.modules():
      if isinstance(m, (nn.Conv2d, nn.Linear)):
        m.weight.copy_(torch.randn(m.weight.shape, generator=g))
        if m.bias is not None:
          m.bias.zero_()
      elif isinstance(m, nn.BatchNorm2d) and m.affine:
        m.weight.fill_(1.0)
        m.bias.zero_()
  z.train()
  features = []
  hook = z.lastact.register_forward_hook(lambda m, i, out: features.append(out))
  inputs = torch.randn(x.shape, generator=g)
  mixed = inputs + mixup_gamma * torch.randn(x.shape, generator=g)
  try:
    with torch.no_grad():
      z(inputs)
      z(mixed)
  finally:
    hook.remove()
  score = torch.log((features[0] - features[1]).abs().sum(dim=(1, 2, 3)).mean())
  for m in z.modules():
    if isinstance(m, nn.BatchNorm2d) and m.running_var is not None:
      score = score + torch.log(torch.sqrt(m.running_var.mean()))
  return score.item()


PROXIES = {"synflow": synflow, "snip": snip, "grasp": grasp, "fisher": fisher, "grad_norm": grad_norm,
           "jacov": jacov, "nwot": nwot, "epe_nas": epe_nas, "zen": zen, "l2_norm": l2_norm, "plain": plain}
