"""CSV against Parquet for the sweep's table: write and load times of a
table shaped like ``results.csv`` of a whole-space NB201 sweep (15,625 rows,
the sweep's columns, random values), loaded into numeric columns.

    python -m benchmarks.table_load --rows 15625 --out benchmarks/results/table_load_cpu.json

Parquet needs pyarrow (not a dependency of ntkjax; its row is skipped
without it).
"""

import argparse
import csv
import tempfile

import numpy as np

from benchmarks import report
from ntkjax import results, scoring


def _table(rows: int) -> tuple[list[dict], list[str]]:
  rng = np.random.default_rng(0)
  metrics = scoring.metric_columns(scoring.BN_MODES)
  columns = scoring.result_columns(scoring.BN_MODES)
  table = []
  for i in range(rows):
    row = {"arch": f"|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~{i}|",
           "position": i, "benchmark_index": i, "seed": 0, "params": int(rng.integers(70_000, 1_600_000)),
           "degenerate": int(rng.random() < 0.02), "nonfinite": 0, "seconds": float(rng.random())}
    row.update({m: float(rng.lognormal()) for m in metrics})
    table.append(row)
  return table, columns


def _load_csv(path, columns):
  with open(path, newline="") as f:
    rows = list(csv.DictReader(f))
  return {c: [r[c] for r in rows] if c == "arch" else np.array([float(r[c] or "nan") for r in rows])
          for c in columns}


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--rows", type=int, default=15625)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--out", default="")
  args = p.parse_args()
  table, columns = _table(args.rows)
  res = {**report.environment(), "rows": args.rows, "columns": len(columns)}
  timed = report.median_seconds
  with tempfile.TemporaryDirectory() as d:
    res["csv_write_s"] = timed(lambda: results.write_csv(f"{d}/t.csv", table, columns), args.repeats)
    res["csv_load_s"] = timed(lambda: _load_csv(f"{d}/t.csv", columns), args.repeats)
    try:
      import pyarrow as pa
      import pyarrow.parquet as pq
    except ImportError:
      res["parquet"] = "pyarrow not installed"
    else:
      res["pyarrow"] = pa.__version__
      res["parquet_write_s"] = timed(lambda: pq.write_table(pa.Table.from_pylist(table), f"{d}/t.parquet"),
                                     args.repeats)

      def load_parquet():
        t = pq.read_table(f"{d}/t.parquet")
        return {c: t.column(c).to_numpy() for c in columns}
      res["parquet_load_s"] = timed(load_parquet, args.repeats)
  report.emit(res, args.out)


if __name__ == "__main__":
  main()
