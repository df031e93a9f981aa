"""Config for experiments/score.py: NTK metrics of sampled archs of any space.

Launch (default: the embedded digits dataset, no download):

    python -m experiments.score --config configs/score.py --workdir /tmp/score

Variants via ``--config configs/score.py:ARG`` (comma-separated, the
vocabulary of ``configs/common.py``):

* (none) = ``cpu``: 20 archs of a reduced NB201 (C=8, N=1) on 32 digits
  images at 16x16, both BN modes, every zero-cost proxy; most of its time
  is compilation (``--config.proxies='()'`` leaves the proxies out).
* ``small``: 5 archs, 16 images, no proxies; used by the tests.
* ``full``: the real NB201 network (C=16, N=5), 100 archs, 64 images (the
  coupled train-BN kernel dominates; BENCHMARKS.md, "NTK kernel speed,
  CPU").
* ``cifar10`` (``cifar100``, ``imagenet16``): those images instead of digits,
  from the data home (``ntkjax-data``), with the NB201 v1x table as ground
  truth, so the summary gives Kendall τ.
* ``paper_code``: the paper code's network variant, parameter filter and
  degenerate values.
* ``nb101``: specs of the data home's NB101 table (108-epoch validation
  accuracy), the official network (128 stem channels, 3x3 modules);
  ``small`` shrinks it to 16 channels and one module per stack. Each spec
  compiles unless ``--config.space.masked=True`` (one masked network for
  all specs: one compilation, a slower NTK; BENCHMARKS.md, "Compile against
  run"; it sows no ReLU codes, so drop nwot and zen from ``proxies``).
* ``nds_darts``: DARTS cells from the 725 NAS-Bench-301 cells (surrogate
  accuracy; width 32, depth 8; ``small`` builds them at width 8, depth 5).
  Each cell compiles unless ``--config.space.masked=True`` (the cells as
  data, ``nds_switch``: one compilation per width and depth, DARTS and PNAS;
  no network proxies).
* ``nds_enas``, ``nds_nasnet``, ``nds_amoeba``, ``nds_pnas``: cells sampled
  from the whole space at ``space.width``/``space.depth`` (16/8; ``small``:
  8/5), without ground truth; ``--config.ground_truth.table=nds_enas`` (...)
  scores against the NDS data in the data home.

Override any field on the command line, e.g. ``--config.space.num_archs=50``.
Runtimes: BENCHMARKS.md, "Experiment runtimes".
"""

from ntkjax.configs import common


def get_config(arg=None):
  v = common.parse(arg, dataset="digits")
  c = common.at_init(v)
  # Zero-cost proxies beside the NTK metrics (ntkjax.proxies); small (the tests) skips their compilation.
  c.proxies = () if v.size == "small" else common.space_proxies(v.space)
  c.space.num_archs = 20
  c.space.C, c.space.N = 8, 1
  c.data.batch_size = 32
  if v.dataset == "digits" and v.space == "nb201":  # the embedded default: no ground truth
    c.ground_truth.table = None
  if v.space.startswith("nds_") and v.space != "nds_darts":  # no NDS data by default: the whole space
    c.ground_truth.table = None
    c.space.width, c.space.depth = 16, 8
  if v.size == "small":
    c.space.num_archs = 5
    c.data.batch_size = 16
    c.space.stem_channels, c.space.modules_per_stack = 16, 1
    c.space.width, c.space.depth = 8, 5
  elif v.size == "full":
    c.space.num_archs = 100
    c.space.C, c.space.N = 16, 5
    c.data.batch_size = 64
  return c
