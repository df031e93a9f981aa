"""Results on disk: the append-only CSV, the pinned config, the workdir lock."""

import csv
import multiprocessing
import os

import jax
import pytest

from ntkjax import provenance, results


def test_results_csv_appends_resumes_and_refuses_other_columns(tmp_path):
  path = tmp_path / "r.csv"
  t = results.ResultsCSV(path, ["arch", "a"])
  t.append({"arch": "x", "a": 1})
  again = results.ResultsCSV(path, ["arch", "a"])
  assert again.done == {"x"} and again.by_key()["x"]["a"] == "1"
  with pytest.raises(ValueError, match=f"{path} has columns"):
    results.ResultsCSV(path, ["arch", "b"])
  with pytest.raises(ValueError, match=f"{path}: row is missing columns"):
    again.append({"arch": "y"})


def test_duplicate_rows_are_refused_and_dropped_on_load(tmp_path):
  path = tmp_path / "r.csv"
  t = results.ResultsCSV(path, ["arch", "a"])
  t.append({"arch": "x", "a": 1})
  with pytest.raises(ValueError, match=f"{path} already holds a row for arch='x'"):
    t.append({"arch": "x", "a": 2})
  # Two runs that interleaved on one file (before the lock existed) left duplicates.
  with open(path, "a") as f:
    f.write("y,3\nx,9\ny,4\n")
  t = results.ResultsCSV(path, ["arch", "a"])
  assert [(r["arch"], r["a"]) for r in t.rows] == [("x", "1"), ("y", "3")]
  assert len(list(csv.DictReader(open(path)))) == 2  # rewritten without them


def test_pin_config_refuses_a_different_config_only_once_results_exist(tmp_path):
  results.pin_config(tmp_path, {"seed": 0, "data": {"root": "typo"}})
  (tmp_path / "minibatch.csv").write_text("index,label\n1,2\n")
  results.pin_config(tmp_path, {"seed": 0, "data": {"root": "fixed"}})  # nothing computed yet: reusable
  results.ResultsCSV(tmp_path / "results.csv", ["arch"])  # a header alone is no result
  results.pin_config(tmp_path, {"seed": 1})
  results.ResultsCSV(tmp_path / "results.csv", ["arch"]).append({"arch": "a"})
  assert results.holds_results(tmp_path)
  with pytest.raises(ValueError, match="different config .*'seed'"):
    results.pin_config(tmp_path, {"seed": 2})
  results.pin_config(tmp_path, {"seed": 1})  # the same config resumes
  # A field added since at its None default still resumes; set to a value it is a different config.
  results.pin_config(tmp_path, {"seed": 1, "data": {"seed": None}})
  with pytest.raises(ValueError, match=r"sections \['data'\] differ"):
    results.pin_config(tmp_path, {"seed": 1, "data": {"seed": 3}})


def test_pin_config_records_the_environment_of_every_start(tmp_path):
  env = provenance.environment()
  assert {"commit", "jax", "jaxlib", "flax", "torch", "device", "date"} <= set(env)
  assert env["jax"] == jax.__version__ and env["commit"] != ""
  results.pin_config(tmp_path, {"seed": 1}, env)
  results.pin_config(tmp_path, {"seed": 1}, dict(env, date="later"))
  config, runs = results.read_config(tmp_path)
  assert config == {"seed": 1} and [r["date"] for r in runs] == [env["date"], "later"]
  dirty = "+dirty" if env["commit"].endswith("+dirty") else ""
  assert provenance.describe(env).startswith(f"ntkjax {env['commit'][:12]}{dirty}, jax {jax.__version__}")


def _hold(workdir, ready, release):
  with results.WorkdirLock(workdir):
    ready.set()
    release.wait(30)


def test_workdir_lock_names_the_holder_and_is_released(tmp_path):
  ctx = multiprocessing.get_context("spawn")
  ready, release = ctx.Event(), ctx.Event()
  holder = ctx.Process(target=_hold, args=(tmp_path, ready, release))
  holder.start()
  try:
    assert ready.wait(30)
    with pytest.raises(results.WorkdirInUse, match=f"in use by another run \\(pid {holder.pid}"):
      results.WorkdirLock(tmp_path).acquire()
  finally:
    release.set()
    holder.join(30)
  with results.WorkdirLock(tmp_path):  # free again once the holder ended
    assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
  assert not (tmp_path / ".lock").exists()  # removed on release


def test_a_lock_file_left_by_a_killed_run_is_taken_over(tmp_path):
  (tmp_path / ".lock").write_text("12345\n")  # its process died: the kernel dropped the flock
  with results.WorkdirLock(tmp_path):
    assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
  assert not (tmp_path / ".lock").exists()


def test_saved_rows_counts_results_but_not_set_up_files(tmp_path):
  (tmp_path / "results.csv").write_text("arch,x\na,1\nb,2\n")
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "results.csv").write_text("arch\nc\n")
  (tmp_path / "minibatch.csv").write_text("index,label\n1,2\n3,4\n")
  assert results.saved_rows(tmp_path) == 3


def test_write_csv_formats_floats_and_blanks_none(tmp_path):
  path = results.write_csv(tmp_path / "t.csv", [{"a": 0.123456789, "b": None, "c": "s"}], ["a", "b", "c"])
  assert path.read_text().splitlines() == ["a,b,c", "0.123457,,s"]


def test_write_parquet_types_columns_keeps_nulls_and_metadata(tmp_path):
  pq = pytest.importorskip("pyarrow.parquet")
  rows = [{"arch": "a", "benchmark_index": "3", "lga_eval": "0.25", "nonfinite": "0"},
          {"arch": "b", "benchmark_index": "", "lga_eval": "nan", "nonfinite": "1"}]
  fields = ["arch", "benchmark_index", "lga_eval", "nonfinite"]
  path = results.write_parquet(tmp_path / "t.parquet", rows, fields, {"config": '{"seed": 7}'})
  table = pq.read_table(path)
  assert [str(table.schema.field(f).type) for f in fields] == ["string", "int64", "double", "int64"]
  assert table.column("benchmark_index").to_pylist() == [3, None]
  assert table.column("lga_eval").to_pylist()[0] == 0.25 and table.column("nonfinite").to_pylist() == [0, 1]
  assert table.schema.metadata[b"config"] == b'{"seed": 7}'
  assert not (tmp_path / "t.parquet.tmp").exists()
