"""Config for experiments/deciles.py (paper Section 3.3, Figures A2-A4).

Kendall τ within each NB201 accuracy decile: ``num_seeds`` draws of
``per_decile`` archs from every decile, plus τ over each whole draw ("Total").

    python -m experiments.deciles --config configs/deciles.py --workdir /tmp/deciles

Variants as in ``configs/common.py``:

* (default) ``full``: 100 archs per decile x 20 draws, 256 images, both BN
  modes. Each distinct arch is scored once; 20 x 1,000 draws cover about
  11,000 distinct archs: a few hours on an H100.
* ``cpu``: 10 per decile x 5 draws (about 450 distinct archs), 16 images,
  eval BN only: about 10 minutes on a 2-core CPU.
* ``small``: 4 per decile x 3 draws, 16 images, eval BN: about 3 minutes.
"""

from configs import common


def get_config(arg=None):
  c = common.nb201_study(arg)
  size, _, _ = common.parse(arg)
  c.per_decile = 100
  c.num_seeds = 20
  c.space.num_archs = 0  # unused: the deciles decide which archs are scored
  if size == "cpu":
    c.per_decile, c.num_seeds, c.bn_modes = 10, 5, ("eval",)
  elif size == "small":
    c.per_decile, c.num_seeds, c.bn_modes = 4, 3, ("eval",)
  return c
