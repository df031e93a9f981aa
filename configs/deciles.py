"""Config for experiments/deciles.py (paper Section 3.3, Figures A2-A4).

Kendall τ within each NB201 accuracy decile: ``num_seeds`` draws of
``per_decile`` archs from every decile, plus τ over each whole draw ("Total").

    python -m experiments.deciles --config configs/deciles.py --workdir /tmp/deciles

Variants as in ``configs/common.py`` (NB201 only):

* (default) ``cpu``: 10 per decile x 5 draws (about 450 distinct archs), 16
  images, eval BN only.
* ``full``: 100 archs per decile x 20 draws, 256 images, both BN modes.
  Each distinct arch is scored once; 20 x 1,000 draws cover about 11,000
  distinct archs: GPU scale, not yet run (kernel times: BENCHMARKS.md, "NTK
  kernel speed, GPU").
* ``small``: 4 per decile x 3 draws, 16 images, eval BN.

Runtimes: BENCHMARKS.md, "Experiment runtimes".
"""

from ntkjax.configs import common


def get_config(arg=None):
  v = common.parse(arg, spaces=("nb201",))
  c = common.at_init(v)
  # Zero-cost proxies beside the NTK metrics (ntkjax.proxies); small (the tests) skips their compilation.
  c.proxies = () if v.size == "small" else common.space_proxies(v.space)
  c.per_decile = 100
  c.num_seeds = 20
  del c.space["num_archs"]  # the deciles decide which archs are scored
  if v.size in ("cpu", "small"):
    c.data.batch_size, c.bn_modes = 16, ("eval",)
    c.per_decile, c.num_seeds = (10, 5) if v.size == "cpu" else (4, 3)
  return c
