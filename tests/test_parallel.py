"""Scoring across devices and processes: shares, shards, merging, and the
same numbers as the single-device path on 4 forced host devices and with
two jax.distributed processes."""

import csv
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ntkjax import parallel, scoring

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLUMNS = scoring.result_columns(scoring.BN_MODES)


def test_process_shares_are_disjoint_cover_everything_and_are_deterministic():
  items = list(range(23))
  shares = [parallel.process_share(items, i, 3) for i in range(3)]
  assert sorted(sum(shares, [])) == items
  assert shares[1] == [1, 4, 7, 10, 13, 16, 19, 22]
  assert parallel.process_share(items, 1, 3) == shares[1]
  with pytest.raises(ValueError, match="process index 3 is outside 0..2"):
    parallel.process_share(items, 3, 3)
  assert parallel.shard_path("/w", 1, 3) == pathlib.Path("/w/results.p1-of-3.csv")


def _row(arch, position):
  return {**{c: "0" for c in COLUMNS}, "arch": arch, "position": str(position)}


def _write(path, rows, columns=COLUMNS):
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, columns)
    w.writeheader()
    w.writerows(rows)


def test_merge_orders_rows_and_names_what_is_missing(tmp_path):
  archs = [f"a{i}" for i in range(5)]
  _write(tmp_path / "s0.csv", [_row(archs[i], i) for i in (0, 2, 4)])
  _write(tmp_path / "s1.csv", [_row(archs[i], i) for i in (3,)])
  with pytest.raises(ValueError, match=r"1 of 5 archs are in no shard \(e.g. a1\)"):
    parallel.merge_shards([tmp_path / "s0.csv", tmp_path / "s1.csv"], tmp_path / "out.csv", archs, COLUMNS)
  with open(tmp_path / "s1.csv", "a", newline="") as f:
    csv.DictWriter(f, COLUMNS).writerow(_row("a1", 1))
    f.write("a9,1")  # a row cut short by a kill: ignored
  rows = parallel.merge_shards([tmp_path / "s0.csv", tmp_path / "s1.csv"], tmp_path / "out.csv", archs, COLUMNS)
  assert [r["arch"] for r in rows] == archs
  with open(tmp_path / "out.csv") as f:
    assert [r["arch"] for r in csv.DictReader(f)] == archs
  _write(tmp_path / "bad.csv", [], ["arch", "x"])
  with pytest.raises(ValueError, match=r"bad.csv has columns \['arch', 'x'\]"):
    parallel.merge_shards([tmp_path / "bad.csv"], tmp_path / "out.csv", archs, COLUMNS)
  with pytest.raises(FileNotFoundError, match="nope.csv"):
    parallel.merge_shards([tmp_path / "nope.csv"], tmp_path / "out.csv", archs, COLUMNS)


_DEVICES_SCRIPT = textwrap.dedent("""
    import sys, jax, jax.numpy as jnp, numpy as np
    from ntkjax import parallel, scoring
    from ntkjax.spaces import api, nb201
    assert len(jax.devices()) == 4, jax.devices()
    # one arch at a time through lax.switch; the sharded runs vmap its batched() (masked) form
    space = api.NB201Space(C=4, N=1, num_classes=3, select="switch")
    archs = space.sample(jax.random.key(0), 8)
    x = jax.random.normal(jax.random.key(1), (6, 8, 8, 3))
    y = jnp.array([0, 1, 2, 0, 1, 2])
    # train BN only: its kernel couples the samples, the harder case to shard (eval BN: the sweep test below)
    common = dict(space=space, images=x, labels=y, key=jax.random.key(2), implementation="structured",
                  bn_modes=("train",))
    out = sys.argv[1]
    ref = scoring.score_architectures(out + "/single.csv", archs, **common)
    # 4 devices x 2 archs per call (one device is the sweep's path: the distributed test below; each
    # further mesh costs a ~45 s compilation)
    got = parallel.score_sharded(out + "/mesh4.csv", archs, list(range(8)), mesh=parallel.arch_mesh(),
                                 archs_per_device=2, **common)
    for r, g in zip(ref, got):
      assert (r.arch, r.position, r.degenerate, r.nonfinite) == (g.arch, g.position, g.degenerate, g.nonfinite)
      for c, v in r.values.items():
        assert np.isclose(v, g.values[c], rtol=1e-4, atol=1e-6), (r.arch, c, v, g.values[c])
    # per-arch initialisation: a batch of inits, one per arch, sharded with the archs
    ref = scoring.score_architectures(out + "/single_init.csv", archs[:4], init_per_arch=True, **common)
    got = parallel.score_sharded(out + "/mesh_init.csv", archs[:4], list(range(4)), init_per_arch=True,
                                 mesh=parallel.arch_mesh(), **common)
    for r, g in zip(ref, got):
      for c, v in r.values.items():
        assert np.isclose(v, g.values[c], rtol=1e-4, atol=1e-6), ("init", r.arch, c, v, g.values[c])
    print("ok")
""")


@pytest.mark.slow
def test_four_host_devices_give_the_single_device_numbers(tmp_path):
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "PYTHONPATH": str(ROOT)}
  proc = subprocess.run([sys.executable, "-c", _DEVICES_SCRIPT, str(tmp_path)], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=1200)
  assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _sweep(workdir, *extra, env_extra=None):
  # one BN mode: the merge does not depend on which kernels the rows hold
  cmd = [sys.executable, "-m", "experiments.sweep", "--config", "small", f"--workdir={workdir}",
         "--config.sweep.num_archs=6", "--config.data.batch_size=8", "--config.bn_modes=('eval',)", *extra]
  env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
  return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _table(path):
  with open(path) as f:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


@pytest.mark.slow
def test_two_distributed_processes_merge_to_the_single_process_table(tmp_path):
  single = _sweep(tmp_path / "single")
  assert single.wait(timeout=1200) == 0, single.stderr.read()[-3000:]
  port = _free_port()
  procs = [_sweep(tmp_path / "multi", "--distributed", f"--coordinator_address=127.0.0.1:{port}",
                  "--num_processes=2", f"--process_id={i}") for i in range(2)]
  for p in procs:
    assert p.wait(timeout=1200) == 0, p.stderr.read()[-3000:]
  assert (tmp_path / "multi" / "process-1-of-2" / "results.csv").exists()
  # each process writes its own summary, so they never race on one file
  for i in range(2):
    assert f"process {i} of 2" in (tmp_path / "multi" / f"process-{i}-of-2" / "summary.txt").read_text()
  assert not (tmp_path / "multi" / "summary.txt").exists()
  shard1 = _table(tmp_path / "multi" / "process-1-of-2" / "results.csv")
  assert [r["position"] for r in shard1] == ["1", "3", "5"]
  want, got = _table(tmp_path / "single" / "results.csv"), _table(tmp_path / "multi" / "results.csv")
  typed = pq.read_table(tmp_path / "multi" / "results.parquet")
  assert typed.column("arch").to_pylist() == [r["arch"] for r in got]
  assert typed.schema.field("lga_eval").type == pa.float64() and typed.schema.field("position").type == pa.int64()
  assert json.loads(typed.schema.metadata[b"config"])["sweep"]["num_archs"] == 6
  assert [r["arch"] for r in got] == [r["arch"] for r in want] and len(got) == 6
  for w, g in zip(want, got):
    for k in w:
      if k in ("arch", "position", "benchmark_index", "seed", "params", "degenerate", "nonfinite"):
        assert w[k] == g[k]
      else:
        assert float(w[k]) == pytest.approx(float(g[k]), rel=1e-4, abs=1e-6), (w["arch"], k)


def test_process_0_names_the_shards_it_waits_for(tmp_path):
  from ntkjax.studies import sweep
  archs = [f"a{i}" for i in range(5)]  # process 0 scores 3 of them, process 1 two
  shards = [sweep.process_workdir(tmp_path, i, 2) / "results.csv" for i in range(2)]
  assert sweep._pending(shards, archs, 2) == [(0, 0, 3), (1, 0, 2)]  # nothing written yet
  shards[0].parent.mkdir(parents=True)
  _write(shards[0], [_row(archs[i], i) for i in (0, 2, 4)])
  shards[1].parent.mkdir(parents=True)
  _write(shards[1], [_row(archs[1], 1)])
  assert sweep._pending(shards, archs, 2) == [(1, 1, 2)]
