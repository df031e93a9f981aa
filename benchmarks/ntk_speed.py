"""Empirical-NTK speed: ntkjax against torch.func and the TE-NAS-style loop.

Every method computes the same kernel on the same weights (the official
xautodl network's, copied into ntkjax): NB201 arch
|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|,
sum_logits, N images of H x H, side by side in one process. Two
conventions:

* ``benchmark``: the NB201 benchmark network, all parameters; eval BN is
  per-sample (independent), train BN couples the samples;
* ``paper_code``: the paper code's network (cell BN always on batch
  statistics, so both BN modes are coupled), ``weight`` parameters without
  the classifier.

ntkjax runs each implementation on the static network (the arch a Python
string: one compilation per arch) and on the arch-as-data network (the op
array traced: one compilation for every arch). BENCHMARKS.md, "NTK kernel
speed, CPU" and "NTK kernel speed, GPU", give the commands behind their rows,
e.g.

    python -m benchmarks.ntk_speed --n 64 --repeats 3 --variants benchmark --bn eval --networks static \
        --out benchmarks/results/ntk_speed_cpu_eval_rerun_2026_12_04.json

``--end_to_end K`` adds K distinct random archs under paper_code
conventions, both BN modes, end to end (ntkjax's arch-as-data network,
``select='switch'`` unless ``--end_to_end_network arch_as_data``, its one
compilation included, against the loop on each official network, arch by
arch); ``--skip_side_by_side`` runs only that.
``--networks`` takes ``static``, ``arch_as_data`` (the masked network) and
``switch``.

Each ntkjax kernel records its steady time, ``_compile`` (``lower().compile()``),
``_first_call`` (compile and first run) and ``_temp_gib`` (XLA's scratch
memory for one call).

Needs torch and xautodl (``pip install torch==2.13.0 && pip install --no-deps
xautodl``) for the PyTorch baselines and the shared weights.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from ntkjax import ntk, xla_options
from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
PARAM_FILTER = {"benchmark": "all", "paper_code": "paper_code"}


class Torch:
  """The official network of one arch and the two PyTorch kernels."""

  def __init__(self, arch, variant, seed=0):
    import torch

    from tests.torch_nb201 import official_network
    self.torch = torch
    torch.manual_seed(seed)
    self.device = "cuda" if torch.cuda.is_available() else "cpu"  # JAX's device kind, on a GPU machine
    self.net = official_network(arch, 16, 5, 10, variant).to(self.device)
    self.variant, self.arch = variant, arch

  def timed(self, fn, repeats):
    return report.median_seconds(self.timed_call(fn), repeats)

  def timed_call(self, fn):
    """``fn`` as a call that returns once its work is done (CUDA runs asynchronously)."""
    cuda = self.device == "cuda"
    return lambda: (fn(), self.torch.cuda.synchronize() if cuda else None)

  def variables(self, x_nhwc):
    from tests.torch_nb201 import copy_into
    net = nb201.Network(variant=self.variant)
    ops = jnp.asarray(nb201.decode(self.arch))  # every candidate op's params: static and arch-as-data calls
    shell = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.asarray(x_nhwc[:1]), ops))
    shell = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shell)
    return jax.tree.map(jnp.asarray, copy_into(self.net.cpu(), shell, self.arch, 5)), self.net.to(self.device)

  def images(self, x_nhwc):
    """NHWC NumPy images as an NCHW tensor on the torch device."""
    return self.torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).to(self.device)

  def loop(self, x_nhwc, bn):
    """TE-NAS / the paper code: one backward of the batch per sample."""
    torch = self.torch
    x = self.images(x_nhwc)
    if self.variant == "paper_code":
      params = [p for k, p in self.net.named_parameters() if "weight" in k and "classifier" not in k]
    else:
      params = list(self.net.parameters())
    self.net.train(bn == "train")

    def run():
      logits = self.net(x)[1]
      rows = []
      for i in range(x.shape[0]):
        g = torch.autograd.grad(logits[i].sum(), params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([a.reshape(-1) for a in g if a is not None]))
      g = torch.stack(rows)
      return g @ g.T
    return run

  def func(self, x_nhwc):
    """torch.func ``vmap(grad)`` (per-sample; eval BN of the benchmark network)."""
    from torch.func import functional_call, grad, vmap
    torch = self.torch
    x = self.images(x_nhwc)
    self.net.eval()
    pdict = {k: v.detach() for k, v in self.net.named_parameters()}
    bufs = dict(self.net.named_buffers())

    def f(p, xi):
      return functional_call(self.net, {**p, **bufs}, (xi[None],))[1].sum()

    def run():
      jac = vmap(grad(f), in_dims=(None, 0))(pdict, x)
      g = torch.cat([j.reshape(x.shape[0], -1) for j in jac.values()], 1)
      return g @ g.T
    return run

  def batched_backward(self, x_nhwc):
    """One backward of the whole batch (eval BN): the floor of any eval kernel."""
    x = self.images(x_nhwc)
    self.net.eval()
    params = list(self.net.parameters())
    return lambda: self.torch.autograd.grad(self.net(x)[1].sum(), params)


def jax_batched_grad(variables, x, jit=xla_options.jit):
  """``jax.grad`` of the batch's summed logits (eval BN, static ARCH): the
  floor of any eval kernel on the same network."""
  net = nb201.Network(variant="benchmark")
  fn = jit(jax.grad(lambda p, x: net.apply({**variables, "params": p}, x, ARCH, train=False).sum()))
  fn(variables["params"], x)
  return lambda: jax.block_until_ready(fn(variables["params"], x))


def temp_gib(compiled) -> float | None:
  """XLA's scratch memory for one call of a compiled function, in GiB."""
  analysis = compiled.memory_analysis()
  return None if analysis is None else analysis.temp_size_in_bytes / 2**30


NETWORKS = ("static", "arch_as_data", "switch")


def _engine_plus(**extra):
  """``jax.jit`` with the engine's XLA:CPU options and ``extra`` (CPU only)."""
  return lambda fn: jax.jit(fn, compiler_options={**xla_options.CPU_OPTIONS, **extra})


# How ntkjax's functions are jitted, and the suffix their result names
# carry: the engine's compiler options (``xla_options``), XLA's defaults, or
# the engine's options plus one XLA:CPU scheduling or codegen option (tried
# for the coupled kernel; none is adopted, BENCHMARKS.md, "Tried and rejected").
JITS = {
    "engine": ("", xla_options.jit),
    "xla_default": ("_xla_default", jax.jit),
    "no_concurrency_scheduler": ("_no_concurrency_scheduler",
                                 _engine_plus(xla_cpu_enable_concurrency_optimized_scheduler=False)),
    "memory_scheduler": ("_memory_scheduler",
                         _engine_plus(xla_cpu_scheduler_type="CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED")),
    "vector_width_512": ("_vector_width_512", _engine_plus(xla_cpu_prefer_vector_width=512)),
}


def ntkjax_kernel(variant, bn, impl, network, chunk_size=None, jit=xla_options.jit):
  """A jitted ``(variables, x, ops) -> Θ``. ``network``: ``'static'`` bakes
  ARCH in; ``'arch_as_data'`` traces the ops with ``select='mask'``,
  ``'switch'`` with ``select='switch'``."""
  if network not in NETWORKS:
    raise ValueError(f"unknown network {network!r}; known: {NETWORKS}")
  net = nb201.Network(variant=variant, select="switch" if network == "switch" else "mask")
  fn = ntk.empirical_ntk_fn(net, bn=bn, param_filter=PARAM_FILTER[variant], implementation=impl,
                            chunk_size=chunk_size)
  if network == "static":
    return jit(lambda v, x, ops: fn(v, x, ARCH))
  return jit(fn)


def side_by_side(x, variants, bn_modes, impls, networks, repeats, skip_torch, chunk_size, jits=("engine",)):
  """Per (variant, BN mode): every ntkjax kernel compiled and the PyTorch
  methods warmed up, then all of them timed interleaved, one call each per
  round (``report.interleaved``), for ``repeats`` rounds. A kernel's time is
  its median; a ratio (``_speedup_vs_*``) is the median of the per-round
  ratios, with their range in ``_range``."""
  out = {}
  ops = jnp.asarray(nb201.decode(ARCH))
  xj = jnp.asarray(x)
  for variant in variants:
    if skip_torch:
      net = nb201.Network(variant=variant)
      variables = jax.jit(net.init)(jax.random.key(0), xj[:1], ops)
    else:
      ref = Torch(ARCH, variant)
      variables, _ = ref.variables(x)
    for bn in bn_modes:
      calls, kernels = {}, {}
      for impl in impls:
        for network in networks:
          for jit_name in jits:
            suffix, jit = JITS[jit_name]
            name = f"ntkjax_{impl}_{network}{suffix}_{variant}_{bn}"
            t = time.perf_counter()
            fn = ntkjax_kernel(variant, bn, impl, network, chunk_size, jit).lower(variables, xj, ops).compile()
            out[name + "_compile"] = time.perf_counter() - t
            out[name + "_temp_gib"] = temp_gib(fn)
            kernels[name] = np.asarray(fn(variables, xj, ops))
            out[name + "_first_call"] = time.perf_counter() - t
            calls[name] = lambda fn=fn: fn(variables, xj, ops).block_until_ready()
      if not skip_torch:
        loop = ref.loop(x, bn)
        want = loop().double().cpu().numpy()
        calls[f"tenas_loop_{variant}_{bn}"] = ref.timed_call(loop)
        for name, k in kernels.items():
          out[name + "_rel_err_vs_loop"] = float(np.abs(k - want).max() / np.abs(want).max())
        if variant == "benchmark" and bn == "eval":
          calls["torch_func_benchmark_eval"] = ref.timed_call(ref.func(x))
          # The floor: one batched gradient, the work of a kernel's backward alone.
          for jit_name in jits:
            suffix, jit = JITS[jit_name]
            calls[f"jax_batched_grad{suffix}_benchmark_eval"] = jax_batched_grad(variables, xj, jit)
          calls["torch_batched_backward_benchmark_eval"] = ref.timed_call(ref.batched_backward(x))
      times = report.interleaved(calls, repeats)
      for name, ts in times.items():
        out[name] = statistics.median(ts)
        print(f"{name}: {out[name]:.3f} s (median of {len(ts)} interleaved rounds)", flush=True)
      for name in kernels:
        _speedup(out, times, name, f"tenas_loop_{variant}_{bn}", "tenas_loop")
        if name.endswith("_benchmark_eval"):
          _speedup(out, times, name, "torch_func_benchmark_eval", "torch_func")
        if "_switch" in name:  # the arch as data, switch against mask
          _speedup(out, times, name, name.replace("_switch", "_arch_as_data"), "mask")
  return out


def _speedup(out, times, name, base, key):
  """``out[name_speedup_vs_key]``: the median (and range) of ``base``'s
  time over ``name``'s, round by round, where ``base`` was timed."""
  if base in times:
    r = report.ratio(times, base, name)
    out[f"{name}_speedup_vs_{key}"], out[f"{name}_speedup_vs_{key}_range"] = r["median"], [r["min"], r["max"]]


def end_to_end(x, num_archs, chunk_size, skip_torch, network):
  """K distinct archs, paper_code conventions, both BN modes: ntkjax's
  arch-as-data network (``network``: ``'switch'`` or ``'arch_as_data'``,
  the mask; one compilation, counted) against the loop, interleaved arch by
  arch so that both see the same machine load. Prints one line per arch."""
  archs = [nb201.encode(a) for a in nb201.sample(jax.random.key(11), num_archs)]
  xj = jnp.asarray(x)
  if network == "static":
    raise ValueError("the end-to-end run compiles once: network must be 'switch' or 'arch_as_data'")
  fns = {bn: ntkjax_kernel("paper_code", bn, "auto", network, chunk_size) for bn in ("train", "eval")}
  init = jax.jit(nb201.Network(variant="paper_code").init)
  per_arch = {"ntkjax": [], "tenas_loop": []}
  for i, arch in enumerate(archs):
    t = time.perf_counter()
    ops = jnp.asarray(nb201.decode(arch))
    v = init(jax.random.key(0), xj[:1], ops)
    for fn in fns.values():
      fn(v, xj, ops).block_until_ready()
    per_arch["ntkjax"].append(time.perf_counter() - t)
    if not skip_torch:
      t = time.perf_counter()
      ref = Torch(arch, "paper_code", seed=i)
      for bn in ("train", "eval"):
        ref.loop(x, bn)()
      per_arch["tenas_loop"].append(time.perf_counter() - t)
    print(f"end_to_end {i + 1}/{num_archs} {arch}: ntkjax {per_arch['ntkjax'][-1]:.1f} s"
          + (f", loop {per_arch['tenas_loop'][-1]:.1f} s" if not skip_torch else ""), flush=True)
  out = {"end_to_end_archs": archs, "end_to_end_network": network,
         "end_to_end_ntkjax_per_arch": [round(s, 2) for s in per_arch["ntkjax"]],
         "end_to_end_ntkjax": sum(per_arch["ntkjax"])}
  print(f"end_to_end_ntkjax ({num_archs} archs): {out['end_to_end_ntkjax']:.1f} s", flush=True)
  if not skip_torch:
    out["end_to_end_tenas_loop_per_arch"] = [round(s, 2) for s in per_arch["tenas_loop"]]
    out["end_to_end_tenas_loop"] = sum(per_arch["tenas_loop"])
    out["end_to_end_speedup_vs_tenas_loop"] = out["end_to_end_tenas_loop"] / out["end_to_end_ntkjax"]
    print(f"end_to_end_tenas_loop: {out['end_to_end_tenas_loop']:.1f} s", flush=True)
  return out


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=64)
  p.add_argument("--hw", type=int, default=32)
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--variants", default="benchmark,paper_code")
  p.add_argument("--bn", default="eval,train")
  p.add_argument("--impls", default="structured", help="comma list of ntk implementations")
  p.add_argument("--networks", default="static,arch_as_data,switch")
  p.add_argument("--chunk_size", type=int, default=None)
  p.add_argument("--end_to_end", type=int, default=0, help="distinct archs for the end-to-end comparison")
  p.add_argument("--end_to_end_network", default="switch", choices=("switch", "arch_as_data"))
  p.add_argument("--skip_torch", action="store_true")
  p.add_argument("--skip_side_by_side", action="store_true", help="only the end-to-end run")
  p.add_argument("--jits", default="engine", help=f"comma list of {', '.join(JITS)} (all but the first two: "
                 "the engine's XLA:CPU options plus one, CPU only)")
  p.add_argument("--full_float32", action="store_true",
                 help="float32 convs and matmuls at full precision in both libraries (no TF32 on a GPU)")
  p.add_argument("--out", default="")
  args = p.parse_args()
  unknown = [j for j in args.jits.split(",") if j not in JITS]
  if unknown:
    p.error(f"unknown --jits {unknown[0]!r}; known: {', '.join(JITS)}")
  if args.full_float32:
    jax.config.update("jax_default_matmul_precision", "highest")
  x = np.asarray(jax.random.normal(jax.random.key(2), (args.n, args.hw, args.hw, 3)), np.float32)
  res = {**report.environment(), "n": args.n, "full_float32": args.full_float32, "hw": args.hw, "arch": ARCH,
         "engine_compiler_options": xla_options.compiler_options(),
         "params": {v: nb201.num_params(ARCH, variant=v) for v in args.variants.split(",")}}
  if not args.skip_torch:
    import torch
    if args.full_float32:
      torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    res["torch"] = torch.__version__
    res["torch_threads"] = torch.get_num_threads()
  if not args.skip_side_by_side:
    res.update(side_by_side(x, args.variants.split(","), args.bn.split(","), args.impls.split(","),
                            args.networks.split(","), args.repeats, args.skip_torch, args.chunk_size,
                            args.jits.split(",")))
  if args.end_to_end:
    res.update(end_to_end(x, args.end_to_end, args.chunk_size, args.skip_torch, args.end_to_end_network))
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
