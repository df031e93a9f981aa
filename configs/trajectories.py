"""Config for experiments/trajectories.py (paper Figure 2).

Metric values after every epoch 0..max(epochs) for ``per_group`` archs from
each of the top, middle (5th-6th) and bottom accuracy deciles of the ground
truth (degenerate archs excluded).

    python -m experiments.trajectories --config configs/trajectories.py \
        --workdir /tmp/trajectories

Variants (``configs/common.py``): (default) ``cpu`` 10 per group on the
reduced network; ``full`` 200 per group, 10 epochs (GPU); ``small`` 3 per
group. Runtimes: BENCHMARKS.md, "Experiment runtimes". A space token (``nb101``, ``nds_darts``, ...)
takes the groups from that space's ground truth.
"""

from ntkjax.configs import common


def get_config(arg=None):
  v = common.parse(arg)
  c = common.training(v)
  c.per_group = {"full": 200, "cpu": 10, "small": 3}[v.size]
  c.data.batch_size = 16 if v.size != "full" else c.data.batch_size
  return c
