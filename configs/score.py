"""Config for experiments/score.py: NTK metrics of sampled NB201 archs.

Launch (default: the embedded digits dataset, no download):

    python -m experiments.score --config configs/score.py --workdir /tmp/score

Variants via ``--config configs/score.py:ARG``:

* (none)   20 archs of a reduced NB201 (C=8, N=1) on 32 digits images at 16x16,
           both BN modes: about 2 minutes on a 2-core CPU (~1 min compile).
* ``small``  5 archs, 16 images: under a minute; used by the tests.
* ``full``   the real NB201 network (C=16, N=5), 100 archs, 64 images: about
           20 s per architecture on a 2-core CPU (train-BN dominates); a few
           seconds in total on an H100.

Override any field on the command line, e.g. ``--config.space.num_archs=50``.
``ground_truth.path`` names a CSV (arch column + accuracy column) or a
NATS-tss simple archive to report Kendall τ against, e.g. the NB201 v1x
table with ``arch_column='cellstr'``, ``accuracy_column='valid_test_top1'``.
"""

import ml_collections


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.space = ml_collections.ConfigDict()
  c.space.name = "nb201"
  c.space.num_archs = 20
  c.space.C = 8
  c.space.N = 1
  c.space.variant = "benchmark"      # or "paper_code"
  c.space.init = "torch_default"     # xavier | kaiming | gaussian | flax_default
  c.space.init_per_arch = False      # paper code: same init for every arch

  c.data = ml_collections.ConfigDict()
  c.data.name = "digits16"          # cifar10 | cifar100 | ImageNet16-120
  c.data.root = ""                   # folder/zip with the files (see ntkjax/data.py)
  c.data.split = "test"
  c.data.batch_size = 32
  c.data.first_batch = False         # True: first images in file order

  c.ntk = ml_collections.ConfigDict()
  c.ntk.reduction = "sum_logits"
  c.ntk.param_filter = "all"         # or "paper_code"
  c.ntk.implementation = "auto"
  c.ntk.chunk_size = 0               # 0: no chunking

  c.metrics = ml_collections.ConfigDict()
  c.metrics.compat = "ntkjax"        # or "paper_code"

  c.ground_truth = ml_collections.ConfigDict()
  c.ground_truth.path = ""           # CSV file or NATS-tss simple archive directory
  c.ground_truth.dataset = "cifar10-valid"
  c.ground_truth.split = "test"
  c.ground_truth.epochs = 200
  c.ground_truth.arch_column = "arch"
  c.ground_truth.accuracy_column = "accuracy"
  c.ground_truth.index_column = ""

  if arg == "small":
    c.space.num_archs = 5
    c.data.batch_size = 16
  elif arg == "full":
    c.space.num_archs = 100
    c.space.C, c.space.N = 16, 5
    c.data.batch_size = 64
  elif arg not in (None, ""):
    raise ValueError(f"unknown config variant {arg!r}; known: small, full")
  return c
