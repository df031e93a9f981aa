"""Config for experiments/post_training.py (paper Section 4.3, Figure 6).

Each sampled NB201 arch is trained from the shared initialisation with the
paper's SGD; after t in ``epochs`` epochs the four metrics are taken in both
BN modes on the held-out minibatch, and Kendall τ is reported per t (t = 0 is
at init). LGA_t is ``lga_eval@t``.

    python -m experiments.post_training --config configs/post_training.py \
        --workdir /tmp/post_training

Variants (``configs/common.py``):

* (default) ``full``: 1,000 archs, full NB201, all 50k CIFAR-10 training
  images, batch 1024, t in (1, 3, 5, 10). GPU scale: 10 epochs per arch.
* ``cpu``: 50 archs of a reduced NB201 (C=8, N=1), 2,560 training images,
  batch 256, t in (1, 3), 16 held-out images: about 1 s per step, ~40 s
  per arch, ~35 min on a 2-core CPU.
* ``small``: 20 archs, C=4, N=1, 256 training images, t in (1, 3): minutes.
"""

from configs import common


def get_config(arg=None):
  size, _, _ = common.parse(arg)
  c = common.add_training(common.nb201_study(arg), size)
  if size == "cpu":
    c.space.num_archs = 50
  return c
