"""Shared fields of the NB201 at-initialisation study configs.

``nb201_study(arg)`` parses a comma-separated variant string such as
``"small,paper_code"``; the study configs add their own fields on top.

Tokens:

* size: ``full`` (default; GPU scale), ``cpu`` (the measured 2-core CPU run)
  or ``small`` (a CPU smoke run of a few minutes).
* dataset: ``cifar10`` (default), ``cifar100``, ``imagenet16``.
* conventions: ``paper_code`` uses the paper code's network variant,
  ``weight``-only parameter filter and degenerate-value conventions;
  without it ntkjax's defaults are used.
* space (every experiment but ``deciles`` and ``init_schemes``): ``nb201`` (default),
  ``nb101`` (the 1,000 benchmark specs in ``../shared``, 108-epoch
  validation accuracy) or ``nds_darts`` (the 725 NAS-Bench-301 DARTS cells,
  surrogate accuracy, width 32, depth 8); ``nds_enas``, ``nds_nasnet``,
  ``nds_amoeba``, ``nds_pnas`` need an NDS JSON file as ground truth
  (``ground_truth.path``, ``format='nds_json'``, ``nds_space``).
  ``cpu``/``small`` runs that train use ``PROXY`` networks in every space.

Data paths default to the layout of ``../shared/data`` next to the checkout
(CIFAR-10 JPEG zips and the v1x NB201 tables); point ``data.root`` and
``ground_truth.path`` elsewhere for your own copies.
"""

import pathlib

import ml_collections

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"

_TRUTH = {  # dataset -> ground-truth table (v1x release, as the paper) and its columns
    "cifar10": dict(path=SHARED / "nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv",
                    dataset="cifar10-valid", arch_column="cellstr",
                    accuracy_column="valid_test_top1", index_column="arch"),
    "cifar100": dict(path=SHARED / "nasbench201/v1x/nasgraph/nasbench201_cifar100.csv",
                     dataset="cifar100", arch_column="arch str", accuracy_column="test accuracy",
                     index_column="file id"),
    "imagenet16": dict(path=SHARED / "nasbench201/v1x/nasgraph/nasbench201_ImageNet16-120.csv",
                       dataset="ImageNet16-120", arch_column="arch str",
                       accuracy_column="test accuracy", index_column="file id"),
}
_DATA = {"cifar10": ("cifar10", SHARED / "cifar10", 256),
         "cifar100": ("cifar100", "", 256),
         "imagenet16": ("ImageNet16-120", "", 512)}
SIZES = ("full", "cpu", "small")
SPACES = ("nb201", "nb101", "nds_darts", "nds_enas", "nds_nasnet", "nds_amoeba", "nds_pnas")
# Space -> ground truth available in ../shared (a stand-in for NDS-DARTS: NB301's surrogate).
SPACE_TRUTH = {
    "nb101": dict(path=SHARED / "nasbench101" / "nb101_nasbench_vis_1k.json", format="nb101_json",
                  dataset="cifar10", split="valid", epochs=108),
    "nds_darts": dict(path=SHARED / "nasbench301_darts_space" / "naslib_zc_nasbench301_725.json",
                      format="nb301_naslib", dataset="cifar10", split="valid", epochs=100),
}


def space_of(arg) -> str:
  return next((t for t in (arg or "").split(",") if t in SPACES), "nb201")


def parse(arg):
  tokens = [t for t in (arg or "").split(",") if t]
  known = set(SIZES) | set(_DATA) | {"paper_code"} | set(SPACES)
  bad = [t for t in tokens if t not in known]
  if bad:
    raise ValueError(f"unknown config variant {bad[0]!r}; known: {', '.join(sorted(known))}")
  size = next((t for t in tokens if t in SIZES), "full")
  dataset = next((t for t in tokens if t in _DATA), "cifar10")
  return size, dataset, "paper_code" in tokens


def nb201_study(arg=None, spaces=("nb201",)) -> ml_collections.ConfigDict:
  """The study fields; ``spaces`` lists the space tokens the experiment takes."""
  size, dataset, paper_code = parse(arg)
  if space_of(arg) not in spaces:
    raise ValueError(f"this experiment runs on {', '.join(spaces)}, not {space_of(arg)!r}")
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.bn_modes = ("train", "eval")

  c.space = ml_collections.ConfigDict()
  c.space.name = space_of(arg)
  c.space.num_archs = 1000
  c.space.sampling = "random"        # or "index_order": the first n official indices
  c.space.C = 16                     # NB201
  c.space.N = 5
  c.space.stem_channels = 128        # NB101
  c.space.num_stacks = 3
  c.space.modules_per_stack = 3
  c.space.masked = False             # NB101: one masked network, one compilation for all specs
  c.space.width = 0                  # NDS when sampling the whole space (0: NDS's ranges)
  c.space.depth = 0
  c.space.op_affine = True
  c.space.variant = "paper_code" if paper_code else "benchmark"
  c.space.init = "torch_default"
  c.space.init_per_arch = False      # the paper code reseeds: one init for all archs

  name, root, batch = _DATA[dataset]
  c.data = ml_collections.ConfigDict()
  c.data.name = name
  c.data.root = str(root)
  c.data.split = "test"
  c.data.batch_size = batch
  # The paper takes the first test batch of the pickled (class-shuffled) files;
  # image folders are sorted by class, so a seeded draw is the default here.
  c.data.first_batch = False

  c.ntk = ml_collections.ConfigDict()
  c.ntk.reduction = "sum_logits"
  c.ntk.param_filter = "paper_code" if paper_code else "all"
  c.ntk.implementation = "auto"
  c.ntk.chunk_size = 0

  c.metrics = ml_collections.ConfigDict()
  c.metrics.compat = "paper_code" if paper_code else "ntkjax"

  c.ground_truth = ml_collections.ConfigDict()
  c.ground_truth.update({k: str(v) for k, v in _TRUTH[dataset].items()})
  c.ground_truth.split = "test"
  c.ground_truth.epochs = 200
  c.ground_truth.format = "nb201"
  c.ground_truth.nds_space = ""
  if c.space.name in SPACE_TRUTH:
    c.ground_truth.update({k: str(v) if k == "path" else v for k, v in SPACE_TRUTH[c.space.name].items()})
  elif c.space.name != "nb201":
    c.ground_truth.update(path="", format="nds_json", nds_space=c.space.name[4:])

  if size == "cpu":
    c.space.num_archs = 200
    c.data.batch_size = 16
  elif size == "small":
    c.space.num_archs = 20
    c.data.batch_size = 16
  return c


# Reduced networks for CPU runs, per space; results at this scale are labelled as such.
PROXY = {"cpu": dict(C=8, N=1, stem_channels=16, modules_per_stack=1, width=8, depth=5),
         "small": dict(C=4, N=1, stem_channels=8, modules_per_stack=1, width=8, depth=5)}


def reduce_network(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
  """The ``PROXY`` network of ``size`` (none for ``full``): NB201 C and N,
  NB101 stem channels and modules per stack, NDS width and depth (NDS
  benchmark cells are then built at that size)."""
  c.space.update(PROXY.get(size, {}))
  return c


def add_training(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
  """The paper's training setting (constant-lr momentum SGD, batch 1024) and
  the epochs t at which metrics are taken; ``cpu``/``small`` shrink it."""
  c.train = ml_collections.ConfigDict()
  c.train.split = "train"
  c.train.num_images = 0             # 0: the whole training split
  c.train.batch_size = 1024
  c.train.learning_rate = 0.025
  c.train.momentum = 0.9
  c.train.weight_decay = 3e-4
  c.epochs = (1, 3, 5, 10)
  # XLA:CPU trains the full networks at minutes per step: shrink the network
  # and the training set; results at this scale are labelled as such.
  reduce_network(c, size)
  if size == "cpu":
    c.train.num_images, c.train.batch_size = 2560, 256
    c.epochs = (1, 3)
  elif size == "small":
    c.train.num_images, c.train.batch_size = 256, 128
    c.epochs = (1, 3)
  return c
