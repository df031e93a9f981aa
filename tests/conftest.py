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


@pytest.fixture
def tiny(truth_csv):
  """Shrinks any experiment config to test size in place: C=4 / one cell
  per stage, 8 digits images, a small training set, and (for NB201) the
  synthetic ground truth of ``truth_csv``."""
  def shrink(c):
    c.space.C, c.space.N = 4, 1
    c.space.stem_channels, c.space.num_stacks, c.space.modules_per_stack = 8, 2, 1
    c.space.width, c.space.depth = 4, 3
    c.data.name, c.data.root, c.data.batch_size = "digits16", None, 8
    if c.space.name == "nb201":
      c.ground_truth.update(path=str(truth_csv), format="nb201", arch_column="arch", accuracy_column="acc",
                            index_column="idx", release="v1x")
    if "train" in c:
      c.train.num_images, c.train.batch_size = 96, 32
      c.epochs = (1, 2)
    return c
  return shrink


def pytest_configure(config):
  """One persistent XLA compilation cache per test session (and for the
  experiment subprocesses it starts): many tests compile the same tiny
  networks, and a cached executable loads in a fraction of a compile.
  Each pytest-xdist worker gets its own folder under it: JAX writes cache
  entries without a lock, so two workers must not read each other's
  half-written files."""
  import os
  import tempfile

  import jax
  cache = os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="ntkjax-xla-cache-"))
  worker = os.environ.get("PYTEST_XDIST_WORKER")
  if worker and os.path.basename(cache) != worker:
    cache = os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(cache, worker)
    os.makedirs(cache, exist_ok=True)
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
