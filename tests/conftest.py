"""Shared fixtures."""

import csv

import numpy as np
import pytest

from ntkjax.spaces import nb201


@pytest.fixture(scope="session")
def truth_csv(tmp_path_factory):
  """Every NB201 arch with a synthetic accuracy and a shuffled official index."""
  path = tmp_path_factory.mktemp("gt") / "truth.csv"
  rng = np.random.default_rng(0)
  acc = rng.uniform(10, 94, 15625)
  index = rng.permutation(15625)
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["idx", "arch", "acc"])
    w.writerows(zip(index, nb201.all_archs(), acc))
  return path




@pytest.fixture(scope="session")
def nds_truth_json(tmp_path_factory):
  """Twelve ENAS cells (width 16, depth 8) in the NDS JSON format with
  synthetic final test errors: an NDS ground truth for per-graph studies."""
  import json

  import jax

  from ntkjax.spaces import nds
  path = tmp_path_factory.mktemp("nds") / "ENAS.json"
  archs = nds.sample(jax.random.key(11), "enas", 12, width=16, depth=8)
  errs = np.random.default_rng(1).uniform(5, 40, len(archs))
  path.write_text(json.dumps([{"net": {"genotype": a.genotype.to_json(), "width": a.width, "depth": a.depth},
                               "test_ep_top1": [60.0, float(e)]} for a, e in zip(archs, errs)]))
  return path
