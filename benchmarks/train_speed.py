"""Training speed: ntkjax's jitted epoch against PyTorch on the same machine.

NB201 arch |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|
(1,288,506 params), SGD (lr 0.025, momentum 0.9, wd 3e-4), cross-entropy,
CIFAR-shaped random data. Both sides run ``--steps`` steps of batch
``--batch``; the epoch time is the per-step time x ceil(50,000 / batch),
which is exact on a GPU with ``--steps 49`` and an extrapolation on a CPU,
where one full epoch takes tens of minutes. Run:

    python -m benchmarks.train_speed --steps 2 --batch 1024 --out benchmarks/results/train_speed_cpu.json
    python -m benchmarks.train_speed --C 8 --N 1 --batch 256 --steps 2 --modes loop,scan   # epoch modes

ntkjax's steps run as one jitted ``lax.scan`` (crop/flip augmentation
included); PyTorch's are the official xautodl network in a Python loop
(no augmentation, which only favours PyTorch). ``--skip_torch`` runs ntkjax
alone.
"""

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import report
from ntkjax import data, train
from ntkjax.spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def ntkjax_steps(images, labels, batch, mode="auto", C=16, N=5):
  net = nb201.Network(C=C, N=N)
  ops = jnp.asarray(nb201.decode(ARCH))
  variables = jax.jit(net.init)(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), ops)
  tx = train.sgd()
  mean, std = data.NORMALIZATION["cifar"]
  epoch = train.make_epoch(net, tx, batch_size=batch, mean=mean, std=std, padding=4, mode=mode)
  state = train.init_state(variables, tx)
  x, y = jnp.asarray(images), jnp.asarray(labels)
  t = time.perf_counter()
  jax.block_until_ready(epoch(state, x, y, jax.random.key(0), ops))  # compiles
  first_s = time.perf_counter() - t
  t = time.perf_counter()
  jax.block_until_ready(epoch(state, x, y, jax.random.key(1), ops))
  run_s = time.perf_counter() - t
  return first_s - run_s, run_s


def torch_steps(images, labels, batch, C=16, N=5):
  import torch

  from tests.torch_nb201 import official_network
  torch.manual_seed(0)
  device = "cuda" if torch.cuda.is_available() else "cpu"
  net = official_network(ARCH, C, N, 10, "benchmark").train().to(device)
  opt = torch.optim.SGD(net.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
  mean, std = data.NORMALIZATION["cifar"]
  x = torch.from_numpy(np.asarray(data.normalize(images, mean, std)).transpose(0, 3, 1, 2).copy()).to(device)
  y = torch.from_numpy(labels.astype(np.int64)).to(device)

  def step(i):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(x[i:i + batch])[1], y[i:i + batch])
    loss.backward()
    opt.step()
  step(0)  # warm-up, as ntkjax's compile is excluded (cuDNN picks its kernels here on a GPU)
  if device == "cuda":
    torch.cuda.synchronize()
  t = time.perf_counter()
  for i in range(0, len(y), batch):
    step(i)
  if device == "cuda":
    torch.cuda.synchronize()
  return time.perf_counter() - t


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--steps", type=int, default=2)
  p.add_argument("--batch", type=int, default=1024)
  p.add_argument("--skip_torch", action="store_true")
  p.add_argument("--modes", default="auto", help="comma-separated epoch modes: auto, scan, loop")
  p.add_argument("--C", type=int, default=16)
  p.add_argument("--N", type=int, default=5)
  p.add_argument("--out", default="")
  args = p.parse_args()
  rng = np.random.default_rng(0)
  n = args.steps * args.batch
  images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, n).astype(np.int32)
  steps_per_epoch = math.ceil(50000 / args.batch)
  res = {**report.environment(),
         "params": nb201.num_params(ARCH, C=args.C, N=args.N), "C": args.C, "N": args.N,
         "batch": args.batch, "steps_timed": args.steps, "steps_per_epoch": steps_per_epoch}
  for mode in args.modes.split(","):
    compile_s, run_s = ntkjax_steps(images, labels, args.batch, mode, args.C, args.N)
    res[f"ntkjax_{mode}_compile_s"] = compile_s
    res[f"ntkjax_{mode}_step_s"] = run_s / args.steps
  mode = args.modes.split(",")[0]
  res["ntkjax_step_s"] = res[f"ntkjax_{mode}_step_s"]
  res["ntkjax_epoch_s"] = res["ntkjax_step_s"] * steps_per_epoch
  if not args.skip_torch:
    import torch
    res["torch"] = torch.__version__
    res["torch_threads"] = torch.get_num_threads()
    res["torch_step_s"] = torch_steps(images, labels, args.batch, args.C, args.N) / args.steps
    res["torch_epoch_s"] = res["torch_step_s"] * steps_per_epoch
    res["speedup_vs_torch"] = res["torch_step_s"] / res["ntkjax_step_s"]
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
