"""Config for experiments/sweep.py: NTK metrics of every NB201 architecture.

The four metrics in both BN modes for all 15,625 archs (or a list), a batch
of archs per device per call over this host's devices, and over processes
in a ``jax.distributed`` job (BUILD.md, "Multi-host sweep"). Each process
writes its own resumable shard; process 0 merges them into
``results.csv`` (benchmark index when a ground truth is given, degenerate
and non-finite flags, seed; the config is pinned in ``config.json``).

    python -m experiments.sweep --config configs/sweep.py:small --workdir /tmp/sweep

Variants (``configs/common.py`` vocabulary):

* ``small``: 16 archs evenly spaced through the space, a reduced NB201
  (C=4, N=1) on 16 embedded digits images.
* (default) ``cpu``: 256 archs evenly spaced, C=8, N=1, 32 digits images.
* ``full``: all 15,625 archs of the full NB201 (C=16, N=5) on 256 CIFAR-10
  images, 8 archs per device per call: GPU scale, not yet run (an estimate
  from XLA's flop count is in BENCHMARKS.md, "Sweep throughput").
* ``paper_code``: the paper code's network, parameter filter and
  degenerate values.

Override e.g. ``--config.sweep.archs=/path/archs.txt`` (one arch string
per line) or ``--config.sweep.num_archs=1000`` (evenly spaced). Runtimes:
BENCHMARKS.md, "Experiment runtimes".
"""

from ml_collections import config_dict

from ntkjax.configs import common


def get_config(arg=None):
  full = "full" in (arg or "").split(",")
  v = common.parse(arg, spaces=("nb201",), dataset="cifar10" if full else "digits")
  c = common.at_init(v)
  # Zero-cost proxies beside the NTK metrics (ntkjax.proxies); small (the tests) skips their compilation.
  c.proxies = () if v.size == "small" else common.space_proxies(v.space)
  if v.dataset == "digits":
    c.ground_truth.table = None
  c.sweep = config_dict.ConfigDict()
  c.sweep.archs = "all"
  c.sweep.num_archs = config_dict.placeholder(int)
  c.sweep.archs_per_device = 1
  c.sweep.merge_timeout_s = 3600.0   # process 0 waits this long for the other shards
  common.reduce_network(c, v.size)
  if v.size == "small":
    c.sweep.num_archs, c.data.batch_size = 16, 16
  elif v.size == "cpu":
    c.sweep.num_archs, c.data.batch_size = 256, 32
  else:
    c.sweep.archs_per_device = 8
  return c
