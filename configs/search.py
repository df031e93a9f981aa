"""Config for experiments/search.py (paper Section 5, Table 2).

Random search (RS) and regularized evolution (REA), each with every scorer
in ``scorers``, over ``num_seeds`` search seeds. The table gives the chosen
arch's ground-truth accuracy (mean ± std over seeds), the search cost in
device-seconds, and the speed-up against training every searched arch for
``baseline_epochs`` (200) epochs on the same device. Scorers: ``oracle``
(the ground truth: the best any search can do with these samples),
``params``, a zero-cost proxy at init (``nwot``: RS + NASWOT, Table 2's
row), and ``<metric>_<bn>@<t>``: ``lga_eval@3`` is LGA_3 (3 epochs of the
paper's SGD, then LGA in eval BN); ``@0`` is a metric at init. Method
``knas`` (KNAS, k in ``knas.ks``) runs with ``mean_train@0``.

    python -m experiments.search --config configs/search.py --workdir /tmp/search

Variants (``configs/common.py``):

* (default) ``cpu``: RS over 20 archs and REA for 40 evaluations of the
  reduced network (C=8, N=1) on 2,560 images, LGA_1, at-init metrics, params
  and the oracle, 3 seeds (each arch is trained once per scorer; the
  searches share the measurements, see ``search.ScoreMemo``).
* ``full``: RS over 100 archs and REA (population 10) until ``budget_s`` =
  3,600 device-seconds, scorers LGA_3, LGA_5, at-init LGA, NCN, F-Norm,
  params and the oracle, 5 seeds, full NB201 and all 50k training images:
  GPU scale (the paper: 3.6K GPU-s per RS + LGA_3 search).
* ``nb101`` / ``nds_darts`` (or another ``nds_<space>``, against the NDS
  data): the search runs over the ground truth's specs or cells (NB101's
  with 108-epoch validation accuracy; NB301's 725 with surrogate accuracy),
  mutating within them; ``cpu``/``small`` train the space's reduced network. Each arch compiles its own network,
  and that time is part of its charged cost.
* ``small``: RS over 6 archs and REA for 8 evaluations, C=4, 256 images,
  LGA_1, params and the oracle, 2 seeds.

Runtimes: BENCHMARKS.md, "Experiment runtimes".
"""

import ml_collections
from ml_collections import config_dict

from ntkjax.configs import common

# Table 2 reports 200-epoch test accuracy of nets trained on the full training
# set; the NATS-tss seed means give its optima 94.37 / 73.51 / 47.31.
_DATASET = {"digits": "cifar10", "cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}


def get_config(arg=None):
  v = common.parse(arg)
  c = common.training(v)
  if v.space == "nb201":
    c.ground_truth.update(dataset=_DATASET[v.dataset], release="nats")
  c.methods = ("rs", "rea", "knas")
  c.scorers = ("lga_eval@3", "lga_eval@5", "lga_eval@0", "ncn_eval@0", "fnorm_train@0", "mean_train@0", "nwot",
               "params", "oracle")
  # KNAS: the top k of rs.num_archs archs by Mean at init (mean_train@0), then the best of
  # them by benchmark accuracy, each query charged as training the arch for baseline_epochs.
  c.knas = ml_collections.ConfigDict({"ks": (2, 5)})
  c.num_seeds = 5
  c.budget_s = config_dict.placeholder(float)  # device-seconds per search (None: no limit; REA then needs max_evals)
  c.budget_s = 3600.0
  c.baseline_epochs = 200  # speed-up against training every searched arch this long
  c.unit_cost_archs = 5    # archs timed for the speed-up's epoch and metric costs
  c.rs = ml_collections.ConfigDict({"num_archs": 100})
  c.rea = ml_collections.ConfigDict()
  c.rea.population_size = 10
  c.rea.sample_size = config_dict.placeholder(int)  # None: the best of the population (the paper)
  c.rea.max_evals = config_dict.placeholder(int)
  if v.size in ("cpu", "small"):
    c.data.batch_size = 16
    c.budget_s = None
  if v.size == "cpu":
    c.scorers = ("lga_eval@1", "lga_eval@0", "ncn_eval@0", "fnorm_train@0", "mean_train@0", "nwot", "params",
                 "oracle")
    c.num_seeds = 3
    c.rs.num_archs, c.rea.max_evals = 20, 40
  elif v.size == "small":
    c.scorers = ("lga_eval@1", "params", "oracle")
    c.methods = ("rs", "rea")
    c.num_seeds = 2
    c.rs.num_archs, c.rea.population_size, c.rea.max_evals = 6, 4, 8
  return c
