"""Config for experiments/init_schemes.py (paper Section 3.4, Figure 4).

The same architectures and minibatch, initialised with each scheme in
``schemes`` (Xavier, Kaiming, Gaussian N(0, 1), PyTorch's default and Flax's
default); Kendall τ of every metric per scheme.

    python -m experiments.init_schemes --config configs/init_schemes.py --workdir /tmp/init

Variants as in ``configs/common.py`` (NB201 only):

* (default) ``cpu``: 100 archs, 16 images, eval BN only.
* ``full``: 1,000 archs, 256 images, both BN modes, 5 schemes: 5 times the
  ``rank_correlation`` ``full`` run; GPU scale, not yet run.
* ``small``: 20 archs, 16 images, eval BN only.

Runtimes: BENCHMARKS.md, "Experiment runtimes".
"""

from ntkjax.configs import common


def get_config(arg=None):
  v = common.parse(arg, spaces=("nb201",))
  c = common.at_init(v)
  c.schemes = ("xavier", "kaiming", "gaussian", "torch_default", "flax_default")
  if v.size in ("cpu", "small"):
    c.space.num_archs = 100 if v.size == "cpu" else 20
    c.data.batch_size, c.bn_modes = 16, ("eval",)
  return c
