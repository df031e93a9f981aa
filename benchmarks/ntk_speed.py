"""Empirical-NTK speed: ntkjax against torch.func and the TE-NAS-style loop.

All methods compute the same kernel: NB201 arch
|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|
(1,288,506 params), sum_logits, all parameters, N images of H x H, side by
side in one process. Run:

    python -m benchmarks.ntk_speed --n 64 --out benchmarks/results/ntk_speed_cpu.json

Needs torch and xautodl (``pip install torch==2.13.0 && pip install --no-deps
xautodl``) for the PyTorch baselines; ``--skip_torch`` runs ntkjax alone.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from ntkjax import ntk
from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _time(fn, repeats):
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def torch_baselines(x_nhwc, bn_modes, repeats):
  import torch
  from tests.torch_nb201 import official_network
  from torch.func import functional_call, grad, vmap
  torch.manual_seed(0)
  device = "cuda" if torch.cuda.is_available() else "cpu"  # the same device kind as JAX's, on a GPU machine
  net = official_network(ARCH, 16, 5, 10, "benchmark").to(device)
  x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).to(device)
  params = [p for p in net.parameters()]
  out = {"torch_device": device}

  def timed(fn):  # CUDA runs asynchronously: time to completion
    return _time(lambda: (fn(), torch.cuda.synchronize() if device == "cuda" else None), repeats)

  def tenas_loop():
    logits = net(x)[1]
    rows = []
    for i in range(x.shape[0]):
      g = torch.autograd.grad(logits[i].sum(), params, retain_graph=True)
      rows.append(torch.cat([a.reshape(-1) for a in g]))
    g = torch.stack(rows)
    return g @ g.T

  for bn in bn_modes:
    net.train(bn == "train")
    tenas_loop()
    out[f"tenas_loop_{bn}"] = timed(tenas_loop)

  net.eval()
  pdict = {k: v.detach() for k, v in net.named_parameters()}
  bufs = {k: v for k, v in net.named_buffers()}

  def f(p, xi):
    return functional_call(net, {**p, **bufs}, (xi[None],))[1].sum()

  def torch_func():
    jac = vmap(grad(f), in_dims=(None, 0))(pdict, x)
    g = torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], 1)
    return g @ g.T
  torch_func()
  out["torch_func_eval"] = timed(torch_func)
  return out


def ntkjax_times(x, bn_modes, repeats, num_archs):
  net = nb201.Network()
  ops = jnp.asarray(nb201.decode(ARCH))
  variables = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  out = {}
  for bn in bn_modes:
    traces = []

    def counted(v, xs, o, _bn=bn):
      traces.append(1)
      return ntk.empirical_ntk_fn(net, bn=_bn)(v, xs, o)
    fn = jax.jit(counted)
    t = time.perf_counter()
    fn(variables, x, ops).block_until_ready()
    out[f"ntkjax_{bn}_first_call"] = time.perf_counter() - t
    out[f"ntkjax_{bn}"] = _time(lambda: fn(variables, x, ops).block_until_ready(), repeats)
    if bn == "eval" and num_archs:
      archs = nb201.sample(jax.random.key(1), num_archs)
      t = time.perf_counter()
      for a in archs:
        fn(variables, x, jnp.asarray(a)).block_until_ready()
      out["ntkjax_eval_per_arch_over_distinct_archs"] = (time.perf_counter() - t) / num_archs
      out["ntkjax_eval_compilations_for_distinct_archs"] = len(traces)
      out["distinct_archs"] = num_archs
  static = jax.jit(lambda v, xs: ntk.empirical_ntk_fn(net, bn="eval")(v, xs, ARCH))
  static(variables, x).block_until_ready()
  out["ntkjax_eval_static_arch"] = _time(lambda: static(variables, x).block_until_ready(), repeats)
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=64)
  p.add_argument("--hw", type=int, default=32)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--num_archs", type=int, default=10)
  p.add_argument("--bn", default="eval,train")
  p.add_argument("--skip_torch", action="store_true")
  p.add_argument("--out", default="")
  args = p.parse_args()
  bn_modes = args.bn.split(",")
  x = np.asarray(jax.random.normal(jax.random.key(2), (args.n, args.hw, args.hw, 3)), np.float32)
  res = {**report.environment(),
         "n": args.n, "hw": args.hw, "params": nb201.num_params(ARCH)}
  res.update(ntkjax_times(jnp.asarray(x), bn_modes, args.repeats, args.num_archs))
  if not args.skip_torch:
    import torch
    res["torch"] = torch.__version__
    res.update(torch_baselines(x, bn_modes, args.repeats))
    for bn in bn_modes:
      res[f"speedup_vs_tenas_loop_{bn}"] = res[f"tenas_loop_{bn}"] / res[f"ntkjax_{bn}"]
    if "ntkjax_eval" in res:
      res["speedup_vs_torch_func_eval"] = res["torch_func_eval"] / res["ntkjax_eval"]
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
