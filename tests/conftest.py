"""Shared fixtures, the shared-data fixture and the session's compiler
settings (compilation cache, optimisation level)."""

import csv
import os
import pathlib
import tempfile

# The suite compiles far more than it computes: XLA without its LLVM
# optimisations compiles tiny networks several times faster (NB201's init
# 23 -> 5 s). Set before JAX is imported, so that it is the default of this
# process, its xdist workers and its subprocesses; tests marked `optimized`
# (compiled HLO, speed) compile as users do.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ntkjax.spaces import nb201  # noqa: E402


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
    c.space.clear_caches = False  # a handful of per-graph archs: keep their executables (and the worker's)
    if c.space.name == "nb201":
      c.ground_truth.update(path=str(truth_csv), format="nb201", arch_column="arch", accuracy_column="acc",
                            index_column="idx", release="v1x")
    if "train" in c:
      c.train.num_images, c.train.batch_size = 96, 32
      c.epochs = (1, 2)
    return c
  return shrink


# ----------------------------------------------------------------------------- the shared data

# ../shared/data beside the checkout; this variable names another folder, or
# hides it ("none"), as in a user's fresh clone.
SHARED_ENV = "NTKJAX_TEST_SHARED_DATA"
_CHECKOUT_SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_root() -> pathlib.Path | None:
  """The shared data folder the tests may read, or None where hidden."""
  value = os.environ.get(SHARED_ENV)
  if value is None:
    return _CHECKOUT_SHARED
  return None if value.lower() in ("", "none") else pathlib.Path(value)


@pytest.fixture
def shared_data(monkeypatch):
  """``shared_data(rel, ...)`` is the path of ``rel`` under the shared data
  (``SHARED_ENV``), skipping the test when any named file is absent; the
  test's data home (``NTKJAX_DATA``, inherited by its subprocesses) is
  then the shared folder. Every test that reads the shared data, directly or
  through the data home, takes this fixture: without it the data home is an
  empty folder (``pytest_configure``)."""
  root = shared_root()

  def get(*relpaths: str) -> pathlib.Path:
    for rel in relpaths:
      if root is None:
        pytest.skip(f"shared data hidden ({SHARED_ENV}={os.environ[SHARED_ENV]!r}): {rel} not readable")
      if not (root / rel).exists():
        pytest.skip(f"{root / rel} absent")
    monkeypatch.setenv("NTKJAX_DATA", str(root))
    return root / relpaths[0]
  return get


# ----------------------------------------------------------------------------- the session


@pytest.fixture(autouse=True)
def _optimization(request):
  """XLA's full optimisation for tests marked ``optimized``, the suite's
  setting for the others."""
  if request.node.get_closest_marker("optimized") is None:
    yield
    return
  before = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", False)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", before)


def pytest_configure(config):
  """The test session's environment, set before any worker or subprocess
  starts:

  * one persistent XLA compilation cache shared by the xdist workers and
    the experiment subprocesses, so that a network compiled by one is
    loaded by the others. JAX's LRU cache takes a file lock for every read
    and write once it has a size limit, so workers never see a half-written
    entry. It keeps compilations of 0.2 s and more: each write scans the
    whole cache under the lock, and keeping every op-by-op compilation too
    (8,000 files) made the workers queue on that lock (BENCHMARKS.md, "Tried
    and rejected"). ``JAX_COMPILATION_CACHE_DIR`` keeps it between sessions.
  * an empty data home (``NTKJAX_DATA``): a test reads the shared data only
    through the ``shared_data`` fixture, so the suite behaves alike with and
    without ``../shared``.
  """
  if "PYTEST_XDIST_WORKER" not in os.environ:  # the controller: its workers and subprocesses inherit these
    os.environ["NTKJAX_DATA"] = tempfile.mkdtemp(prefix="ntkjax-empty-data-home-")
  os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="ntkjax-xla-cache-"))
  os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(8 * 2**30))
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
  jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
  jax.config.update("jax_compilation_cache_max_size", int(os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"]))
  jax.config.update("jax_persistent_cache_min_compile_time_secs",
                    float(os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))


# ----------------------------------------------------------------------------- test order

_DURATIONS = "ntkjax/durations"  # nodeid -> seconds of the last run, in pytest's cache


@pytest.hookimpl(trylast=True)  # after -m and -k have deselected
def pytest_collection_modifyitems(config, items):
  """Longest tests first (the last run's durations; without them the slow
  ones), dealt round the xdist workers: work stealing hands each worker a
  contiguous block of the collection, so block k holds every n-th test of
  the sorted list, each worker starts on its share of the long ones, and a
  worker that runs dry steals short ones from another's end."""
  cache = getattr(config, "cache", None)
  known = cache.get(_DURATIONS, {}) if cache is not None else {}

  def expected(item):
    return known.get(item.nodeid, 60.0 if item.get_closest_marker("slow") else 1.0)
  ranked = sorted(items, key=expected, reverse=True)
  n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
  items[:] = [item for k in range(n) for item in ranked[k::n]]


def pytest_runtest_logreport(report):
  if report.when == "call" and report.passed:
    _measured[report.nodeid] = round(report.duration, 2)


_measured: dict[str, float] = {}


def pytest_sessionfinish(session):
  cache = getattr(session.config, "cache", None)
  if cache is not None and _measured and "PYTEST_XDIST_WORKER" not in os.environ:
    cache.set(_DURATIONS, {**cache.get(_DURATIONS, {}), **_measured})
