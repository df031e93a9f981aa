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


def interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
  """Wall times of each of ``fns`` (name -> a call that blocks until done),
  one call of each per round, in turn, for ``rounds`` rounds after one
  warm-up call each: the implementations share whatever the machine does
  meanwhile, so their ratio holds where their absolute times drift."""
  for fn in fns.values():
    fn()
  times = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      t = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - t)
  return times


def ratio(times: dict[str, list[float]], slower: str, faster: str) -> dict:
  """The per-round ratio ``slower / faster`` of ``interleaved`` times: its
  median and range over the rounds (above 1: ``faster`` is faster)."""
  r = [a / b for a, b in zip(times[slower], times[faster])]
  return {"median": statistics.median(r), "min": min(r), "max": max(r), "rounds": len(r)}


def emit(res: dict, out: str = "") -> None:
  text = json.dumps(res, indent=1)
  print(text)
  if out:
    pathlib.Path(out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(out).write_text(text + "\n")
