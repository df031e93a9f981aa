"""The ``>>>`` examples in the engine's docstrings run as written, so they
cannot rot. Examples that build a network compile it (slow)."""

import doctest
import importlib
import pkgutil

import pytest

import ntkjax


def _examples():
  finder = doctest.DocTestFinder(exclude_empty=True)
  for info in pkgutil.walk_packages(ntkjax.__path__, "ntkjax."):
    module = importlib.import_module(info.name)
    for test in finder.find(module):
      if test.examples and test.name.startswith(info.name):  # not re-exported from another module
        slow = any("Network(" in e.source for e in test.examples)
        yield pytest.param(test, id=test.name, marks=[pytest.mark.slow] if slow else [])


EXAMPLES = list(_examples())


def test_the_engine_has_examples():
  assert {p.id for p in EXAMPLES} >= {"ntkjax.ntk.empirical_ntk_fn", "ntkjax.spaces.nb201.decode"}


@pytest.mark.parametrize("example", EXAMPLES)
def test_docstring_example_runs_as_written(example):
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  runner.run(example)
  assert runner.failures == 0 and runner.tries == len(example.examples), f"{example.name}: see the report above"
