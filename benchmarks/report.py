"""What every benchmark records: the machine and versions, and the result
as JSON on stdout and optionally in a file (``benchmarks/results/``)."""

import json
import os
import pathlib
import platform
import statistics
import time

from ntkjax import provenance


def environment() -> dict:
  """``provenance.environment()`` (date, commit, library versions, device)
  plus the host's processor and core count."""
  return {**provenance.environment(), "machine": platform.processor() or platform.machine(),
          "cpus": os.cpu_count()}


def median_seconds(fn, repeats: int) -> float:
  """The median wall time of ``repeats`` calls of ``fn`` (which must block
  until its work is done)."""
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def emit(res: dict, out: str = "") -> None:
  text = json.dumps(res, indent=1)
  print(text)
  if out:
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(out).write_text(text + "\n")
