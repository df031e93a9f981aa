"""Config for experiments/rank_correlation.py (paper Section 3.2, Figure 3, Table 1).

Kendall τ / Spearman ρ of F-Norm, Mean, NCN and LGA in train and eval BN at
initialisation against benchmark accuracy, with parameter count and a random
score as baselines, in NB201 (default), NB101 or an NDS space.

    python -m experiments.rank_correlation --config configs/rank_correlation.py \
        --workdir /tmp/rank_correlation

Variants (``--config configs/rank_correlation.py:ARGS``, comma-separated,
see ``configs/common.py``):

* (default) ``cpu``: 200 archs, 16 images: measured on a 2-core CPU with
  the masked network (``--config.space.select=mask``), a median 8.7 s per
  arch with the benchmark network (36 min in all), about 15 s with
  ``paper_code``, whose cell BN couples samples in eval mode too (~60 min).
  The default ``select='switch'`` runs only each edge's op: 2.2 s against
  5.5 s per arch (benchmark network, a 4-arch development run).
* ``cpu,paper_code`` with ``--config.data.batch_size=64``: the 64-image
  rerun of docs/results.md: 2.6 h on a 2-core CPU (a median 42 s per arch
  for both coupled kernels, one 279 s compilation).
* ``full``: 1,000 archs, 256 CIFAR-10 images (512 for ImageNet16-120), full
  NB201 (C=16, N=5). GPU scale: about 1,000 x (eval 0.14 s + train 1.3 s)
  ~ 25 min on an H100 at the measured rates; days on a 2-core CPU.
* ``small``: 20 archs, 16 images: about 3-5 minutes on a 2-core CPU.
* ``paper_code``: the paper code's network, parameter filter and degenerate
  values; ``cifar100`` / ``imagenet16``: other datasets (set
  ``--config.data.root``; no images for them ship here).
* ``nb101``: specs drawn from the 1,000 NB101 benchmark specs in
  ``../shared`` against their 108-epoch validation accuracy, the official
  network (128 stem channels, 3 stacks of 3 modules) at ``full``. Each spec
  compiles (about 10 s per BN mode on a 2-core CPU) before its NTKs.
* ``nds_darts``: the 725 NAS-Bench-301 DARTS cells (width 32, depth 8)
  against NB301's surrogate accuracy: a stand-in for NDS-DARTS, labelled as
  such. ``nds_enas`` / ``nds_nasnet`` / ``nds_amoeba`` / ``nds_pnas``: set
  ``--config.ground_truth.path`` to the NDS JSON file (e.g. ``ENAS.json``).
* With ``cpu`` / ``small`` NB101 and NDS use the reduced networks of
  ``common.PROXY`` (NB101: 16 / 8 stem channels, one module per stack; NDS:
  width 8, depth 5), the same specs and cells against the same ground truth.
"""

from configs import common


def get_config(arg=None):
  v = common.parse(arg)
  c = common.at_init(v)
  if v.size == "cpu":
    c.space.num_archs, c.data.batch_size = 200, 16
  elif v.size == "small":
    c.space.num_archs, c.data.batch_size = 20, 16
  if v.space != "nb201":  # NB201's cpu study scores the full network
    common.reduce_network(c, v.size)
  return c
