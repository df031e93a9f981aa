"""Zero-cost proxy speed: all network proxies in one jitted function against
one at a time, and against PyTorch one at a time, on the same network and
minibatch.

The NB201 benchmark network (C=16, N=5, 10 classes) of the arch
|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|,
train-mode BatchNorm, a minibatch of ``--batch`` CIFAR-shaped images. The
11 network proxies (params and flops need no pass) are timed three ways:

* ``ntkjax_all``: ``ntkjax.proxies.proxies_fn`` over all of them, one jitted
  call that shares the forward and backward passes;
* ``ntkjax_each``: one jitted function per proxy, the calls' times summed;
* ``torch_each``: ``tests/torch_proxies.py`` (NASLib's one-proxy-at-a-time
  code path) on the official xautodl network, the proxies' times summed.

Times are medians of ``--repeats`` calls after a warm-up; compile times are
reported apart. ``--as_data`` passes the arch as data (the op array under
jit, one ``lax.switch`` per edge), as the studies do, instead of building
the arch's ops alone; ``--names`` times some of the proxies. Run:

    python -m benchmarks.proxy_speed --batch 64 --out benchmarks/results/proxy_speed_cpu.json
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from ntkjax import proxies
from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NAMES = tuple(proxies.NETWORK_PROXIES)


def _jitted(net, names, as_data: bool):
  f = proxies.proxies_fn(net, names)
  if as_data:
    ops = jnp.asarray(nb201.decode(ARCH))
    g = jax.jit(f)
    return lambda v, x, y, k: g(v, x, y, k, ops)
  return jax.jit(lambda v, x, y, k: f(v, x, y, k, ARCH))


def ntkjax_times(variables, x, labels, repeats, names=NAMES, as_data=False):
  """{"all": (compile_s, run_s), name: (compile_s, run_s), ...}."""
  net = nb201.Network(C=16, N=5, select="switch")
  key = jax.random.key(0)
  out = {}
  for label, chosen in [("all", names)] + ([(n, (n,)) for n in names] if len(names) > 1 else []):
    f = _jitted(net, chosen, as_data)
    t = time.perf_counter()
    jax.block_until_ready(f(variables, x, labels, key))
    first = time.perf_counter() - t
    run = report.median_seconds(lambda: jax.block_until_ready(f(variables, x, labels, key)), repeats)
    out[label] = (first - run, run)
  return out


def torch_times(ref, x, labels, repeats, names=NAMES):
  import torch

  from tests import torch_proxies
  xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))
  yt = torch.from_numpy(np.asarray(labels).astype(np.int64))
  out = {}
  for name in names:
    fn = torch_proxies.PROXIES[name]
    fn(ref, xt, yt)  # warm-up
    out[name] = report.median_seconds(lambda: fn(ref, xt, yt), repeats)
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--skip_torch", action="store_true")
  p.add_argument("--as_data", action="store_true", help="the arch as data, as the studies pass it")
  p.add_argument("--names", default=",".join(NAMES), help="comma-separated network proxies")
  p.add_argument("--out", default="")
  args = p.parse_args()
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((args.batch, 32, 32, 3), dtype=np.float32))
  labels = jnp.asarray(rng.integers(0, 10, args.batch).astype(np.int32))
  net = nb201.Network(C=16, N=5)
  ops = nb201.decode(ARCH)
  variables = jax.jit(net.init)(jax.random.key(0), x[:1], ops)
  ref = None
  if not args.skip_torch:
    import torch

    from tests import torch_nb201
    torch.manual_seed(0)
    ref = torch_nb201.official_network(ARCH, 16, 5, 10, "benchmark")
    variables = jax.tree.map(jnp.asarray, torch_nb201.copy_into(ref, jax.device_get(variables), ARCH, 5))
  names = proxies.check_names(tuple(n for n in args.names.split(",") if n))
  res = {**report.environment(), "arch": ARCH, "params": nb201.num_params(ARCH, C=16, N=5), "batch": args.batch,
         "repeats": args.repeats, "proxies": list(names), "as_data": args.as_data}
  ours = ntkjax_times(variables, x, labels, args.repeats, names, args.as_data)
  res["ntkjax_all_s"], res["ntkjax_all_compile_s"] = ours["all"][1], ours["all"][0]
  if len(names) > 1:
    res["ntkjax_each_s"] = {n: ours[n][1] for n in names}
    res["ntkjax_each_total_s"] = sum(res["ntkjax_each_s"].values())
    res["ntkjax_each_compile_total_s"] = sum(ours[n][0] for n in names)
    res["speedup_all_vs_each"] = res["ntkjax_each_total_s"] / res["ntkjax_all_s"]
  if ref is not None:
    import torch
    res["torch"], res["torch_threads"] = torch.__version__, torch.get_num_threads()
    res["torch_each_s"] = torch_times(ref, x, labels, args.repeats, names)
    res["torch_each_total_s"] = sum(res["torch_each_s"].values())
    res["speedup_all_vs_torch_each"] = res["torch_each_total_s"] / res["ntkjax_all_s"]
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
