"""Config for experiments/reproduce.py: the paper's NB201 results in one command.

    ntkjax-reproduce --config full --workdir /tmp/reproduce     # the paper's scale, for a GPU
    ntkjax-reproduce --config small --workdir /tmp/reproduce    # end to end on a CPU

Runs, each in its own subdirectory of the workdir, with the paper code's
network and conventions (``paper_code``, always) on NB201:

* ``rank_correlation``: Figure 3 and the NB201 row of Table 1 (both BN modes);
* ``deciles``: Figures A2-A4;
* ``init_schemes``: Figure 4;
* ``post_training``: Figure 6 (LGA_t);
* ``search``: Table 2's random search and REA.

Each study's sub-config is that experiment's own config of the same variant
(``--config.rank_correlation.data.batch_size=64`` overrides one field;
``--config.studies="('rank_correlation',)"`` runs a subset). One device
budget serves every study: ``--config.ntk.memory_budget_gib=14.4`` (what
'auto' leaves of a 16 GB card) applies to each study whose own
``ntk.memory_budget_gib`` is unset. Variants
(``configs/common.py``): ``full`` (the paper's: 1,000 archs and 256 images,
20 draws x 100 archs per decile, 50,000 training images, t in 1, 3, 5, 10,
searches of 3,600 s; GPU scale, never run end to end), ``cpu`` (the studies'
2-core CPU runs of docs/results.md; not run as one), ``small`` (every study
at its smallest, on NB201 at C=4, N=1: the reproduction's test scale).
CIFAR-10 only: the paper's values beside them are CIFAR-10's (the single
studies take ``cifar100`` / ``imagenet16``). Runtimes: BENCHMARKS.md, "Experiment runtimes".
"""

import ml_collections
from ml_collections import config_dict

from ntkjax.configs import common, deciles, init_schemes, post_training, rank_correlation, search

# The studies in the paper's order; each runs in <workdir>/<name>.
STUDIES = ("rank_correlation", "deciles", "init_schemes", "post_training", "search")
_CONFIGS = {"rank_correlation": rank_correlation, "deciles": deciles, "init_schemes": init_schemes,
            "post_training": post_training, "search": search}


def get_config(arg=None):
  v = common.parse(arg, spaces=("nb201",))
  if v.dataset != "cifar10":
    raise ValueError(f"the reproduction compares with the paper's CIFAR-10 numbers, not {v.dataset!r}; run the "
                     "single studies (ntkjax-rank-correlation ...) on other datasets")
  variant = f"{v.size},{v.dataset},nb201,paper_code"
  c = ml_collections.ConfigDict()
  c.studies = STUDIES
  # Compile every study's functions and print the projected time before the first study runs.
  c.plan_first = True
  # The device's budget for every study's kernels and SGD steps, unless a study sets its own.
  c.ntk = ml_collections.ConfigDict({"memory_budget_gib": config_dict.placeholder(float)})
  for name, module in _CONFIGS.items():
    c[name] = module.get_config(variant)
  c.search.methods = ("rs", "rea")  # Table 2's rows that the paper's metric guides
  for name in STUDIES:
    if "proxies" in c[name]:
      c[name].proxies = ()  # the zero-cost proxies are not the paper's: ntkjax-proxy-agreement
    if v.size == "small":
      common.reduce_network(c[name], "small")
  if v.size == "small":
    c.deciles.per_decile, c.deciles.num_seeds = 2, 2
    c.init_schemes.space.num_archs = 10
    c.post_training.space.num_archs = 8
    c.post_training.epochs = (1,)
  return c
