"""Config for experiments/compare.py: two at-init runs over the same archs,
compared score by score (the τ between their scores and each one's τ with
the ground truth), e.g. a reduced network against the benchmark's.

    ntkjax-compare --config.a=docs/results/table1_nb101_cpu_200 \
        --config.b=docs/results/table1_nb101 --workdir /tmp/compare

``a`` and ``b`` are run folders (``config.json`` and ``results.csv``) of
``rank_correlation``, ``score`` or ``proxy_agreement`` over the same space
and ground truth. Seconds. The config takes no variant.
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  if arg:
    raise ValueError(f"compare takes no config variant, got {arg!r}; set --config.a and --config.b")
  c = ml_collections.ConfigDict()
  c.a = config_dict.placeholder(str)
  c.b = config_dict.placeholder(str)
  return c
