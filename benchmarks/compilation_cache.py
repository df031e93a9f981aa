"""What JAX's persistent compilation cache saves a per-graph study.

NB101 compiles a network per graph, so a run of n specs compiles n times.
This times one study command (``rank_correlation``, NB101, the kernels
only) as separate processes:

* ``resume`` without and with the cache: a run stopped with SIGINT after
  half the specs, then resumed; the time of the resumption. The two parts
  together are the run without a cache (``none_s``), and with an empty
  cache that the run fills (``cold_s``);
* ``rerun_warm``: the same specs and shapes in a new workdir with another
  init seed, the cache the run above filled (every executable is loaded,
  none compiled).

    python -m benchmarks.compilation_cache --archs 50 --out benchmarks/results/compilation_cache_cpu.json
"""

import argparse
import csv
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

from benchmarks import report

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _rows(workdir: pathlib.Path) -> int:
  path = workdir / "results.csv"
  if not path.exists():
    return 0
  with open(path, newline="") as f:
    return max(0, sum(1 for _ in csv.reader(f)) - 1)


def _command(args, workdir, cache, extra=()):
  cmd = [sys.executable, "-m", "experiments.rank_correlation", "--config", args.config,
         f"--config.space.num_archs={args.archs}", "--config.proxies=()", f"--workdir={workdir}", *extra]
  return cmd + ([f"--compilation_cache={cache}"] if cache else [])


def _timed(cmd, stop_after: int | None = None, workdir: pathlib.Path | None = None) -> float:
  """Seconds until ``cmd`` exits, or until it holds ``stop_after`` rows and
  then exits after SIGINT."""
  env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}  # only --compilation_cache
  t = time.perf_counter()
  # SIGINT's default action back: a shell's background job would pass its ignored SIGINT on
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  if stop_after is not None:
    while proc.poll() is None and _rows(workdir) < stop_after:
      time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
  _, err = proc.communicate()
  if proc.returncode not in (0, 130):
    raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
  return time.perf_counter() - t


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--archs", type=int, default=50)
  p.add_argument("--config", default="cpu,nb101", help="rank_correlation variant")
  p.add_argument("--out", default="")
  args = p.parse_args()
  half = args.archs // 2
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    res = {}
    for name, c in (("resume_nocache", None), ("resume_cache", tmp / "cache")):
      workdir = tmp / name
      res[f"{name}_first_s"] = _timed(_command(args, workdir, c), stop_after=half, workdir=workdir)
      res[f"{name}_stopped_at"] = _rows(workdir)
      res[f"{name}_s"] = _timed(_command(args, workdir, c))
    res["none_s"] = res["resume_nocache_first_s"] + res["resume_nocache_s"]
    res["cold_s"] = res["resume_cache_first_s"] + res["resume_cache_s"]
    res["rerun_warm_s"] = _timed(_command(args, tmp / "warm", tmp / "cache", ["--config.space.init_seed=1"]))
    res["cache_mb"] = sum(f.stat().st_size for f in (tmp / "cache").rglob("*") if f.is_file()) / 2**20
  report.emit({**report.environment(), **vars(args), **res}, args.out)


if __name__ == "__main__":
  main()
