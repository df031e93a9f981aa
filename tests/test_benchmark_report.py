"""The benchmarks' comparison protocol: implementations timed in turn, one
call each per round, and ratios taken per round."""

import pytest

from benchmarks import report


def test_interleaved_calls_each_once_per_round_in_turn_after_a_warm_up():
  order = []
  times = report.interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=3)
  assert order == ["a", "b"] + ["a", "b"] * 3  # the warm-up, then the rounds
  assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}
  assert all(t >= 0 for v in times.values() for t in v)


def test_ratio_is_the_median_and_range_of_the_per_round_ratios():
  times = {"slow": [4.0, 9.0, 6.0], "fast": [2.0, 3.0, 1.0]}
  assert report.ratio(times, "slow", "fast") == {"median": 3.0, "min": 2.0, "max": 6.0, "rounds": 3}
  with pytest.raises(KeyError):
    report.ratio(times, "slow", "missing")
