"""Config for experiments/rank_correlation.py (paper Section 3.2, Figure 3, Table 1).

Kendall τ / Spearman ρ of F-Norm, Mean, NCN and LGA in train and eval BN at
initialisation against benchmark accuracy, with parameter count and a random
score as baselines, in NB201 (default), NB101 or an NDS space.

    python -m experiments.rank_correlation --config configs/rank_correlation.py \
        --workdir /tmp/rank_correlation

Variants (``--config configs/rank_correlation.py:ARGS``, comma-separated,
see ``configs/common.py``):

* (default) ``cpu``: 200 archs, 16 images (docs/results/rc_cpu ran it with
  the masked network, ``--config.space.select=mask``; the default
  ``select='switch'`` runs only each edge's selected op). ``paper_code``'s
  cell BN couples samples in eval mode too.
* ``cpu,paper_code`` with ``--config.data.batch_size=64``: the 64-image
  rerun of docs/results/figure3.md.
* ``cpu`` with ``--config.data.batch_size=64 --config.bn_modes='()'``: the
  zero-cost proxies alone (no kernel) on the 200 archs and 64 images of the
  run above, the benchmark network as NASLib.
* ``full``: 1,000 archs, 256 CIFAR-10 images (512 for ImageNet16-120), full
  NB201 (C=16, N=5). GPU scale, not yet run end to end (kernel times:
  BENCHMARKS.md, "NTK kernel speed, GPU"; ``--plan`` projects the run).
* ``small``: 20 archs, 16 images.
* ``paper_code``: the paper code's network, parameter filter and degenerate
  values; ``cifar100`` / ``imagenet16``: other datasets (``ntkjax-data``
  says where their images go).
* ``nb101``: specs of the data home's NB101 table against their 108-epoch
  validation accuracy, the official network (128 stem channels, 3 stacks of
  3 modules) at ``full``. Each spec compiles before its NTKs
  (BENCHMARKS.md, "Compile against run"). ``cpu,nb101`` with
  ``--config.space.stem_channels=128 --config.space.modules_per_stack=3``
  is the official network (docs/results/table1_nb101).
* ``nds_darts``: the 725 NAS-Bench-301 DARTS cells (width 32, depth 8)
  against NB301's surrogate accuracy: a stand-in for NDS-DARTS, labelled as
  such. Each cell compiles its kernels unless ``--config.space.masked=True``,
  the cells as data (``nds_switch``; no network proxies), which compile once
  and pay from the eighth cell (BENCHMARKS.md, "Compile against run").
  ``nds_enas`` / ``nds_nasnet`` /
  ``nds_amoeba`` / ``nds_pnas``: against the NDS data (``nds/ENAS.json``,
  ... in the data home).
* With ``cpu`` / ``small`` NB101 and NDS use the space's reduced network
  (``spaces.registry``: NB101 16 / 8 stem channels, one module per stack;
  NDS width 8, depth 5), the same specs and cells against the same ground
  truth.

Runtimes: BENCHMARKS.md, "Experiment runtimes".
"""

from ntkjax.configs import common


def get_config(arg=None):
  v = common.parse(arg)
  c = common.at_init(v)
  # Zero-cost proxies beside the NTK metrics (ntkjax.proxies); small (the tests) skips their compilation.
  c.proxies = () if v.size == "small" else common.space_proxies(v.space)
  if v.size == "cpu":
    c.space.num_archs, c.data.batch_size = 200, 16
  elif v.size == "small":
    c.space.num_archs, c.data.batch_size = 20, 16
  if v.space != "nb201":  # NB201's cpu study scores the full network
    common.reduce_network(c, v.size)
  return c
