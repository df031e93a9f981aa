"""Config for experiments/kernel_evolution.py (paper Section 4.1, Figure 5).

Kernel correlation and relative kernel difference (the paper's
‖Θt−Θ0‖/‖Θ0‖ and the official code's element-wise form) between the NTK at
init and after each epoch, for ``space.num_archs`` random archs; as the
official code, the full [C, C] logit kernel of one held-out image, eval BN.

    python -m experiments.kernel_evolution --config configs/kernel_evolution.py \
        --workdir /tmp/kernel_evolution

Variants (``configs/common.py``): (default) ``cpu`` 5 archs of the reduced
network on 2,560 images for 3 epochs; ``full`` 5 archs, 10 epochs on all of
CIFAR-10 (GPU); ``small`` 3 archs, C=4, 256 images, 3 epochs. Runtimes:
BENCHMARKS.md, "Experiment runtimes". A space token (``nb101``, ``nds_darts``, ``nds_enas``,
...) samples that space instead.
"""

from ntkjax.configs import common


def get_config(arg=None):
  v = common.parse(arg)
  c = common.training(v)
  c.space.num_archs = 3 if v.size == "small" else 5
  c.data.batch_size = 16 if v.size != "full" else c.data.batch_size
  c.ntk.param_filter = "paper_code"  # the official code's 'weight' parameters
  c.bn_modes = ("eval",)
  return c
