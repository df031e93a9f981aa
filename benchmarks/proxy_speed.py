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

Each function is compiled (and called once) first; then every round times
one call of each, in turn (``report.interleaved``), for ``--repeats``
rounds, and the ratios are the median and range of the per-round ratios.
Compile times are reported apart. ``--as_data`` passes the arch as data (the op array under
jit, one ``lax.switch`` per edge), as the studies do, instead of building
the arch's ops alone; ``--names`` times some of the proxies. Run:

    python -m benchmarks.proxy_speed --batch 64 --repeats 5 --out benchmarks/results/proxy_speed_cpu.json
"""

import argparse
import statistics
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


def ntkjax_fns(variables, x, labels, names=NAMES, as_data=False):
  """{"all": (compile_s, call), name: (compile_s, call), ...}: each jitted
  function compiled (its first call) and a call that blocks until done."""
  net = nb201.Network(C=16, N=5, select="switch")
  key = jax.random.key(0)
  out = {}
  for label, chosen in [("all", names)] + ([(n, (n,)) for n in names] if len(names) > 1 else []):
    f = _jitted(net, chosen, as_data)
    t = time.perf_counter()
    jax.block_until_ready(f(variables, x, labels, key))
    first = time.perf_counter() - t
    out[label] = (first, lambda f=f: jax.block_until_ready(f(variables, x, labels, key)))
  return out


def torch_fns(ref, x, labels, names=NAMES):
  """name -> a call of ``tests/torch_proxies.py``'s proxy on ``ref``."""
  import torch

  from tests import torch_proxies
  xt = torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))
  yt = torch.from_numpy(np.asarray(labels).astype(np.int64))
  return {name: (lambda fn=torch_proxies.PROXIES[name]: fn(ref, xt, yt)) for name in names}


def _each(calls: dict):
  """One call running every proxy's own function in turn (their summed time)."""
  def run():
    for call in calls.values():
      call()
  return run


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
         "rounds": args.repeats, "proxies": list(names), "as_data": args.as_data}
  ours = ntkjax_fns(variables, x, labels, names, args.as_data)
  fns = {"ntkjax_all": ours["all"][1]}
  res["ntkjax_all_compile_s"] = ours["all"][0]
  if len(names) > 1:
    fns["ntkjax_each"] = _each({n: ours[n][1] for n in names})
    res["ntkjax_each_compile_total_s"] = sum(ours[n][0] for n in names)
  if ref is not None:
    import torch
    res["torch"], res["torch_threads"] = torch.__version__, torch.get_num_threads()
    fns["torch_each"] = _each(torch_fns(ref, x, labels, names))
  # The whole comparison, interleaved, once per round: the ratios are per round.
  times = report.interleaved(fns, args.repeats)
  res["seconds"] = times
  res.update({f"{k}_s": statistics.median(v) for k, v in times.items()})
  if "ntkjax_each" in times:
    res["speedup_all_vs_each"] = report.ratio(times, "ntkjax_each", "ntkjax_all")
  if "torch_each" in times:
    res["speedup_all_vs_torch_each"] = report.ratio(times, "torch_each", "ntkjax_all")
  if len(names) > 1:  # per proxy, interleaved the same way
    per = report.interleaved({**{f"ntkjax_{n}": ours[n][1] for n in names},
                              **({f"torch_{n}": c for n, c in torch_fns(ref, x, labels, names).items()}
                                 if ref is not None else {})}, args.repeats)
    res["per_proxy_s"] = {k: statistics.median(v) for k, v in per.items()}
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
