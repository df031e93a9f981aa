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


