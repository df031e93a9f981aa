"""Config for experiments/post_training.py (paper Section 4.3, Figure 6).

Each sampled arch (NB201 by default) is trained from its initialisation
(shared by NB201's archs, as in the paper's code) with the paper's SGD;
after t in ``epochs`` epochs the four metrics are taken in both BN modes on
the held-out minibatch, and Kendall τ is reported per t (t = 0 is at init).
LGA_t is ``lga_eval@t``.

    python -m experiments.post_training --config configs/post_training.py \
        --workdir /tmp/post_training

Variants (``configs/common.py``):

* (default) ``cpu``: 50 archs of a reduced NB201 (C=8, N=1), 2,560 training
  images, batch 256, t in (1, 3), 16 held-out images.
* ``full``: 1,000 archs, full NB201, all 50k CIFAR-10 training images,
  batch 1024, t in (1, 3, 5, 10). GPU scale: 10 epochs per arch.
* ``small``: 20 archs, C=4, N=1, 256 training images, t in (1, 3).
* ``nb101`` / ``nds_darts`` / ``nds_<space>``: the same study over the data
  home's NB101 specs, NB301's 725 DARTS cells, or the NDS data;
  ``cpu``/``small`` train the space's reduced network
  (``spaces.registry``). ``cpu,nb101`` with ``--config.epochs='(1,)'`` gives
  Table 1's at-init columns and LGA_1 (docs/results/table1.md).

Runtimes: BENCHMARKS.md, "Experiment runtimes".
"""

from ntkjax.configs import common


def get_config(arg=None):
  v = common.parse(arg)
  c = common.training(v)
  c.space.num_archs = {"full": 1000, "cpu": 50, "small": 20}[v.size]
  c.data.batch_size = 16 if v.size != "full" else c.data.batch_size
  return c
