"""Config for experiments/score.py: NTK metrics of sampled archs of any space.

Launch (default: the embedded digits dataset, no download):

    python -m experiments.score --config configs/score.py --workdir /tmp/score

Variants via ``--config configs/score.py:ARG`` (comma-separated: a size and
optionally a space):

* (none)   20 archs of a reduced NB201 (C=8, N=1) on 32 digits images at 16x16,
           both BN modes: about 2 minutes on a 2-core CPU (~1 min compile).
* ``small``  5 archs, 16 images: under a minute; used by the tests.
* ``full``   the real NB201 network (C=16, N=5), 100 archs, 64 images: about
           20 s per architecture on a 2-core CPU (train-BN dominates); a few
           seconds in total on an H100.
* ``nb101``  NB101 specs drawn from the 1,000 benchmark specs in
           ``../shared`` (108-epoch validation accuracy), the official network
           (128 stem channels, 3x3 modules); ``small`` shrinks it to 16
           channels and one module per stack. Each spec compiles (~10 s CPU)
           unless ``--config.space.masked=True`` (one masked network for all
           specs: one compilation, a slower NTK; with ``small`` 0.65 s per
           spec after the first against 10.7 s; BENCHMARKS.md).
* ``nds_darts``  DARTS cells from the 725 NAS-Bench-301 cells in ``../shared``
           (surrogate accuracy; width 32, depth 8; ``small`` builds them at
           width 8, depth 5).
* ``nds_enas``, ``nds_nasnet``, ``nds_amoeba``, ``nds_pnas`` (and ``nds_darts``
           with ``ground_truth.path=''``): cells sampled from the whole space at
           ``space.width``/``space.depth`` (16/8; ``small``: 8/5). No NDS
           ground truth exists here; point ``ground_truth.path`` at an NDS JSON
           file (``ground_truth.format='nds_json'``, ``ground_truth.nds_space``)
           to get τ.

Override any field on the command line, e.g. ``--config.space.num_archs=50``.
``ground_truth.path`` names a CSV (arch column + accuracy column) or a
NATS-tss simple archive to report Kendall τ against, e.g. the NB201 v1x
table with ``arch_column='cellstr'``, ``accuracy_column='valid_test_top1'``.
"""

import ml_collections

from configs import common

SPACES = common.SPACES


def get_config(arg=None):
  c = ml_collections.ConfigDict()
  c.seed = 0

  tokens = [t for t in (arg or "").split(",") if t]
  bad = [t for t in tokens if t not in ("small", "full") + SPACES]
  if bad:
    raise ValueError(f"unknown config variant {bad[0]!r}; known: small, full, {', '.join(SPACES)}")
  size = next((t for t in tokens if t in ("small", "full")), "")
  space = next((t for t in tokens if t in SPACES), "nb201")

  c.space = ml_collections.ConfigDict()
  c.space.name = space               # nb201 | nb101 | nds_<darts|enas|nasnet|amoeba|pnas>
  c.space.num_archs = 20
  c.space.C = 8                      # NB201 channels and cells per stage
  c.space.N = 1
  c.space.variant = "benchmark"      # NB201: or "paper_code"
  c.space.init = "torch_default"     # xavier | kaiming | gaussian | flax_default
  c.space.init_per_arch = False      # paper code: same init for every arch (NB201)
  c.space.stem_channels = 128        # NB101
  c.space.num_stacks = 3
  c.space.modules_per_stack = 3
  c.space.masked = False             # NB101: one masked network compiled once for all specs
  c.space.width = 16                 # NDS, when sampling the whole space (0: NDS's range)
  c.space.depth = 8
  c.space.op_affine = True           # NDS: affine BN inside the cell ops (pycls)

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
  c.ground_truth.format = "nb201"    # nb201 | nb101_json | nb101_tfrecord | nds_json | nb301_naslib
  c.ground_truth.nds_space = ""      # for nds_json: darts | enas | nasnet | amoeba | pnas
  c.ground_truth.dataset = "cifar10-valid"
  c.ground_truth.split = "test"
  c.ground_truth.epochs = 200
  c.ground_truth.arch_column = "arch"
  c.ground_truth.accuracy_column = "accuracy"
  c.ground_truth.index_column = ""

  if size == "small":
    c.space.num_archs = 5
    c.data.batch_size = 16
    c.space.stem_channels, c.space.modules_per_stack = 16, 1
    c.space.width, c.space.depth = 8, 5
  elif size == "full":
    c.space.num_archs = 100
    c.space.C, c.space.N = 16, 5
    c.data.batch_size = 64
  if space in common.SPACE_TRUTH:
    if size != "small":  # the benchmark's cells at their own size
      c.space.width, c.space.depth = 0, 0
    c.ground_truth.update({k: str(v) if k == "path" else v for k, v in common.SPACE_TRUTH[space].items()})
  return c
