"""Progress of long per-architecture loops: counts, rates and time left.

The engine's loops call ``tick`` once per item and print nothing; what is
reported goes to the ``report`` callable the caller gives (the studies pass
``absl.logging.info``).

XLA compiles a network's functions on their first call, which can cost more
than many steady calls (BENCHMARKS.md, "Compile against run"). Items that paid a compilation
(``compiled=True``) are therefore timed apart from steady ones, and the time
left is estimated from the kind of item still to come: steady items where
one compilation serves every arch (NB201, masked NB101), compiling items
where each graph compiles its own (per-graph NB101, NDS).
"""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["Progress", "format_seconds"]


def format_seconds(s: float) -> str:
  if s < 100:
    return f"{s:.1f}s"
  if s < 6000:
    return f"{s / 60:.1f}min"
  return f"{s / 3600:.1f}h"


class Progress:
  """``Progress(report, every=1, compiles_each=False)``; ``start(total)``,
  then ``tick(label, seconds, compiled=...)`` per item."""

  def __init__(self, report: Callable[[str], None], *, every: int = 1, compiles_each: bool = False):
    self.report = report
    self.every = max(1, every)
    self.compiles_each = compiles_each
    self.total = self.done = self.already = 0
    self.steady: list[float] = []
    self.compiling: list[float] = []
    self.started = time.perf_counter()

  def start(self, total: int, *, already: int = 0) -> None:
    self.total, self.already, self.done = total, already, already
    self.started = time.perf_counter()
    self.report(f"{total} items, {already} already done, {total - already} to go")

  def eta(self) -> float | None:
    """Seconds left, or None until an item of the kind still to come was timed."""
    left = self.total - self.done
    if left == 0:
      return 0.0
    pool = self.compiling if self.compiles_each else self.steady
    return left * sum(pool) / len(pool) if pool else None

  def tick(self, label: str, seconds: float, *, compiled: bool, note: str = "") -> None:
    self.done += 1
    (self.compiling if compiled else self.steady).append(seconds)
    n = self.done - self.already
    if n % self.every and self.done != self.total:
      return
    parts = [f"[{self.done}/{self.total}] {label}", note, f"{seconds:.2f}s"]
    if self.steady:
      parts.append(f"steady {sum(self.steady) / len(self.steady):.2f}s/item")
    if self.compiling:
      parts.append(f"with compilation {sum(self.compiling) / len(self.compiling):.2f}s/item "
                   f"({len(self.compiling)} compiled)")
    eta = self.eta()
    parts.append("ETA " + (format_seconds(eta) if eta is not None else "after the first steady item"))
    self.report("  ".join(p for p in parts if p))
