"""Progress reports: steady time apart from compilation, and the time left."""

import pytest

from ntkjax.progress import Progress, format_seconds


def test_eta_counts_steady_items_when_one_compilation_serves_all():
  lines = []
  p = Progress(lines.append)
  p.start(10, already=2)
  assert p.eta() is None
  p.tick("a", 60.0, compiled=True)     # the first call compiles: not a rate
  assert p.eta() is None and "ETA after the first steady item" in lines[-1]
  p.tick("b", 2.0, compiled=False)
  p.tick("c", 4.0, compiled=False)
  assert p.eta() == pytest.approx(5 * 3.0)
  assert "[5/10] c" in lines[-1] and "steady 3.00s/item" in lines[-1] and "with compilation 60.00s" in lines[-1]


def test_eta_counts_compiling_items_when_each_graph_compiles():
  p = Progress(lambda s: None, compiles_each=True)
  p.start(4)
  p.tick("a", 10.0, compiled=True)
  p.tick("b", 20.0, compiled=True)
  assert p.eta() == pytest.approx(2 * 15.0)


def test_format_seconds():
  assert (format_seconds(12.34), format_seconds(600), format_seconds(7200)) == ("12.3s", "10.0min", "2.0h")
