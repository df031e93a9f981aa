"""The variant vocabulary and base configs every experiment shares.

``parse(arg)`` reads a comma-separated variant string such as
``"small,paper_code"`` or ``"cifar100,nb101"``. One vocabulary serves every
experiment:

* size: ``small`` (a CPU smoke run), ``cpu`` (the default: the measured
  2-core CPU runs of docs/results.md) or ``full`` (the paper's scale, for a
  GPU); their runtimes: BENCHMARKS.md, "Experiment runtimes".
* dataset: ``cifar10`` (the studies' default), ``cifar100``, ``imagenet16``,
  or ``digits`` (scikit-learn's bundled digits at 16x16: no download; the
  score job's default).
* space: a name in ``ntkjax.spaces.registry`` (``nb201`` default; ``nb101``,
  ``nds_darts``, ``nds_enas``, ``nds_nasnet``, ``nds_amoeba``,
  ``nds_pnas``): the registry gives each one's default ground truth and
  reduced networks. ``deciles``, ``init_schemes`` and ``sweep`` are NB201
  studies.
* ``paper_code``: the paper code's network variant, ``weight``-only
  parameter filter and degenerate-value conventions; without it ntkjax's
  defaults.

``at_init(variant)`` holds the fields of every experiment (seed, bn_modes,
space, data, ntk, metrics, ground_truth); ``training(variant)`` adds the
paper's SGD and the epochs at which metrics are taken. Optional values are
``config_dict.placeholder``s (None until set), never 0 sentinels.

Configs name data, never paths: ``data.root`` (None) and
``ground_truth.table`` are found in the data home (``ntkjax.data_home``:
``$NTKJAX_DATA``, ``~/.cache/ntkjax``, ``../shared/data``; ``ntkjax-data``
lists what is there). Set ``data.root`` or ``ground_truth.path`` to read
other files.
"""

from typing import NamedTuple

import ml_collections
from ml_collections import config_dict

from ntkjax import proxies, spaces

SIZES = ("small", "cpu", "full")
DATASETS = ("digits", "cifar10", "cifar100", "imagenet16")
SPACES = spaces.NAMES
FLAGS = ("paper_code",)
# Every zero-cost proxy (ntkjax.proxies), for configs that compute them.
PROXIES = proxies.NAMES


def space_proxies(space: str) -> tuple[str, ...]:
  """Every proxy ``space`` computes: flops only where it counts them."""
  return tuple(p for p in PROXIES if p != "flops" or spaces.get(space).flops)

# dataset variant -> (data.load name, NTK minibatch: 256 images, 512 for ImageNet16-120 as the paper)
_DATA = {"digits": ("digits16", 256), "cifar10": ("cifar10", 256), "cifar100": ("cifar100", 256),
         "imagenet16": ("ImageNet16-120", 512)}


class Variant(NamedTuple):
  size: str
  dataset: str
  space: str
  paper_code: bool


def parse(arg=None, *, spaces=SPACES, dataset: str = "cifar10") -> Variant:
  """The variant named by ``arg``; ``spaces`` are the spaces the experiment
  runs on, ``dataset`` its default dataset. Unknown or repeated-kind tokens
  are errors naming the token."""
  tokens = [t for t in (arg or "").split(",") if t]
  known = SIZES + DATASETS + SPACES + FLAGS
  for t in tokens:
    if t not in known:
      raise ValueError(f"unknown config variant {t!r}; known: {', '.join(known)}")
  picked = {}
  for kind, vocab in (("size", SIZES), ("dataset", DATASETS), ("space", SPACES)):
    chosen = [t for t in tokens if t in vocab]
    if len(chosen) > 1:
      raise ValueError(f"config variant {arg!r} names {len(chosen)} {kind}s ({', '.join(chosen)}); give one")
    picked[kind] = chosen[0] if chosen else None
  space = picked["space"] or "nb201"
  if space not in spaces:
    raise ValueError(f"this experiment runs on {', '.join(spaces)}, not {space!r}")
  return Variant(picked["size"] or "cpu", picked["dataset"] or dataset, space, "paper_code" in tokens)


def at_init(v: Variant) -> ml_collections.ConfigDict:
  """Every experiment's fields, set for the variant ``v`` at the studies'
  ``full`` scale (each config shrinks them for ``cpu`` / ``small``)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.bn_modes = ("train", "eval")

  c.space = ml_collections.ConfigDict()
  c.space.name = v.space
  c.space.num_archs = 1000
  c.space.sampling = "random"        # or "index_order": the first n official indices
  c.space.C = 16                     # NB201: stem width and cells per stage
  c.space.N = 5
  c.space.variant = "paper_code" if v.paper_code else "benchmark"
  # NB201: run only each edge's selected op (lax.switch); "mask" evaluates every
  # op (the docs/results.md runs at 16 images used it; values agree to float32 rounding).
  c.space.select = "switch"
  c.space.stem_channels = 128        # NB101
  c.space.num_stacks = 3
  c.space.modules_per_stack = 3
  # NB101: one masked network, one compilation for all specs; NDS (DARTS, PNAS):
  # the cell as data, one compilation per width and depth (nds_switch).
  c.space.masked = False
  c.space.width = config_dict.placeholder(int)  # NDS: fixed width/depth (None: the benchmark's or NDS's range)
  c.space.depth = config_dict.placeholder(int)
  c.space.op_affine = True           # NDS: affine BN inside the cell ops (pycls)
  c.space.init = "torch_default"     # xavier | kaiming | gaussian | flax_default
  c.space.init_per_arch = False      # the paper code reseeds: one init for all archs
  # The weights (and training order) that seed=init_seed draws, for the same archs and minibatch; None: seed.
  c.space.init_seed = config_dict.placeholder(int)
  c.space.clear_caches = True        # per-graph spaces: drop each arch's executables (bounded host memory)

  name, batch = _DATA[v.dataset]
  c.data = ml_collections.ConfigDict()
  c.data.name = name
  c.data.root = config_dict.placeholder(str)  # None: the data home's folder for data.name
  c.data.split = "test"
  c.data.batch_size = batch
  # The paper takes the first test batch of the pickled (class-shuffled) files;
  # image folders are sorted by class, so a seeded draw is the default here.
  c.data.first_batch = False
  c.data.seed = config_dict.placeholder(int)  # the minibatch that seed=data.seed draws; None: seed

  c.ntk = ml_collections.ConfigDict()
  c.ntk.reduction = "sum_logits"
  c.ntk.param_filter = "paper_code" if v.paper_code else "all"
  c.ntk.implementation = "auto"
  c.ntk.chunk_size = config_dict.placeholder(int)
  # Device memory a kernel or an SGD step may hold, in GiB (kernel chunks and training micro-batches
  # sized to it); None: the device's limit on GPU/TPU, no limit on the CPU (ntkjax.memory).
  c.ntk.memory_budget_gib = config_dict.placeholder(float)

  c.metrics = ml_collections.ConfigDict()
  c.metrics.compat = "paper_code" if v.paper_code else "ntkjax"

  c.ground_truth = ml_collections.ConfigDict()
  # The data home's benchmark table (ntkjax.data_home.TABLES) at dataset/split/epochs;
  # None: no ground truth. ``path`` reads a file instead, with format and the columns below.
  c.ground_truth.table = config_dict.placeholder(str)
  c.ground_truth.path = config_dict.placeholder(str)
  c.ground_truth.format = "nb201"    # nb201 | nb101_json | nb101_tfrecord | nds_json | nb301_naslib
  c.ground_truth.dataset = "cifar10-valid"
  c.ground_truth.split = "test"
  c.ground_truth.epochs = 200
  c.ground_truth.arch_column = "arch"
  c.ground_truth.accuracy_column = "accuracy"
  c.ground_truth.index_column = config_dict.placeholder(str)
  c.ground_truth.release = "v1x"     # NB201: the release a table prefers (the paper's), or that a file is
  c.ground_truth.nds_space = config_dict.placeholder(str)  # for nds_json
  c.ground_truth.update(spaces.get(v.space).truth(name))
  return c


def reduce_network(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
  """The space's reduced network for ``size`` (``spaces.registry``; none for
  ``full``): NB201 C and N, NB101 stem channels and modules per stack, NDS
  width and depth (NDS benchmark cells are then built at that size)."""
  c.space.update(spaces.get(c.space.name).reduced.get(size, {}))
  return c


def training(v: Variant) -> ml_collections.ConfigDict:
  """``at_init`` plus the paper's training setting (constant-lr momentum
  SGD, batch 1024) and the epochs t at which metrics are taken; ``cpu`` and
  ``small`` shrink the network, the training set and t."""
  c = at_init(v)
  c.train = ml_collections.ConfigDict()
  c.train.split = "train"
  c.train.num_images = config_dict.placeholder(int)  # None: the whole training split
  c.train.batch_size = 1024
  c.train.learning_rate = 0.025
  c.train.momentum = 0.9
  c.train.weight_decay = 3e-4
  c.epochs = (1, 3, 5, 10)
  # XLA:CPU trains the full networks at minutes per step: shrink the network
  # and the training set; results at this scale are labelled as such.
  reduce_network(c, v.size)
  if v.size == "cpu":
    c.train.num_images, c.train.batch_size = 2560, 256
    c.epochs = (1, 3)
  elif v.size == "small":
    c.train.num_images, c.train.batch_size = 256, 128
    c.epochs = (1, 3)
  return c
