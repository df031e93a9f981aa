"""Memory budgets: the chunk search, the budget argument, and a forced small
budget on the CPU (the chosen kernel fits it and equals the unchunked one)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntkjax import memory, ntk, xla_options
from tests.helpers import TinyBNNet, gated_setup

pytestmark = pytest.mark.optimized  # compiled HLO, memory or speed: as users compile


def test_chunk_candidates_run_from_the_default_down_to_one():
  assert memory.chunk_candidates(32) == [None, 16, 8, 4, 2, 1]
  assert memory.chunk_candidates(5) == [None, 4, 2, 1]
  assert memory.chunk_candidates(1) == [None]


def _table(sizes):
  calls = []

  def needs(name, chunk):
    calls.append((name, chunk))
    return sizes[name][chunk]
  return needs, calls


def test_choose_takes_the_largest_chunk_that_fits_and_falls_back_in_order():
  chunks = [None, 16, 8, 4, 2, 1]
  sizes = {"structured": dict(zip(chunks, [100, 99, 99, 98, 98, 97])),  # barely shrinks
           "jacobian_contraction": dict(zip(chunks, [120, 60, 30, 15, 8, 4]))}
  needs, calls = _table(sizes)
  plan = memory.choose([("structured", chunks), ("jacobian_contraction", chunks)], needs, 20)
  assert (plan.implementation, plan.chunk_size, plan.needs_bytes) == ("jacobian_contraction", 4, 15)
  # structured: its default and its smallest, then given up; JC: default, smallest, binary search
  assert calls[:2] == [("structured", None), ("structured", 1)] and len(calls) <= 7
  assert plan.tried == tuple((n, c, sizes[n][c]) for n, c in calls)
  needs, calls = _table(sizes)
  assert memory.choose([("structured", chunks)], needs, 100).chunk_size is None and len(calls) == 1
  for budget, want in ((4, 1), (8, 2), (59, 8), (60, 16)):
    assert memory.choose([("jacobian_contraction", chunks)], _table(sizes)[0], budget).chunk_size == want


def test_choose_names_the_least_it_needed_and_the_budget():
  sizes = {"structured": {None: 3 * 2**30, 1: 2 * 2**30}}
  with pytest.raises(memory.MemoryBudgetError, match=r"the NTK needs at least 2.00 GiB \(structured, "
                     r"chunk_size=1\), more than the memory budget of 512.0 MiB"):
    memory.choose([("structured", [None, 1])], _table(sizes)[0], 2**29)


def test_resolve_budget_reads_every_form_and_names_a_bad_one():
  assert memory.resolve_budget(None) is None
  assert memory.resolve_budget(memory.DEFAULT, "cpu") is None
  assert memory.resolve_budget(3e6) == 3_000_000
  host = memory.resolve_budget("auto")  # CPU: a share of physical memory, less headroom
  assert 0 < host < memory.HOST_SHARE * 2**50 and host == memory.device_budget()
  for bad in ("lots", -1, 0, True):
    with pytest.raises(ValueError, match=f"memory_budget must be .* got {bad!r}"):
      memory.resolve_budget(bad)
  with pytest.raises(ValueError, match="got 'lots'"):
    ntk.empirical_ntk_fn(TinyBNNet(), memory_budget="lots")


def _executable_bytes(fn, *args):
  return memory.compiled_bytes(jax.jit(fn, compiler_options=xla_options.compiler_options()).lower(*args).compile())


@pytest.mark.slow
def test_a_forced_budget_picks_a_chunking_that_fits_and_gives_the_same_kernel():
  net, v, _ = gated_setup()
  x = jax.random.normal(jax.random.key(1), (16, 8, 8, 3))
  gate = jnp.float32(0.5)
  free = ntk.empirical_ntk_fn(net, bn="train", memory_budget=None)
  reference = jax.jit(free)(v, x, gate)
  unconstrained = _executable_bytes(free, v, x, gate)
  budget = unconstrained // 3
  fn = ntk.empirical_ntk_fn(net, bn="train", memory_budget=budget)
  kernel = jax.jit(fn)(v, x, gate)
  (plan,) = fn.plans.values()
  assert plan.needs_bytes <= budget < unconstrained
  chosen = ntk.empirical_ntk_fn(net, bn="train", implementation=plan.implementation, chunk_size=plan.chunk_size,
                                memory_budget=None)
  assert _executable_bytes(chosen, v, x, gate) == plan.needs_bytes <= budget
  np.testing.assert_allclose(kernel, reference, rtol=2e-5, atol=1e-5 * float(jnp.abs(reference).max()))
  again = jax.jit(fn)(v, x * 2, gate)  # same shapes: the cached plan, no new search
  assert len(fn.plans) == 1 and again.shape == (16, 16)
  assert ntk.plan_memory(net, v, x, gate, bn="train", memory_budget=budget) == plan
  with pytest.raises(memory.MemoryBudgetError, match=r"coupled NTK of 16 samples needs at least .* more than "
                     r"the memory budget of 0.0 MiB"):
    jax.jit(ntk.empirical_ntk_fn(net, bn="train", memory_budget=1000))(v, x, gate)
  structured = {c: _executable_bytes(ntk.empirical_ntk_fn(net, bn="train", implementation="structured",
                                                            chunk_size=c, memory_budget=None), v, x, gate)
                for c in (None, 2, 10**6)}
  # chunks are mapped, so memory follows the rows in flight: 8 by default, 2 given, every row at once
  assert structured[2] < structured[None] < structured[10**6]
  with pytest.raises(ValueError, match="plan_memory needs a budget"):
    ntk.plan_memory(net, v, x, gate, memory_budget=None)
