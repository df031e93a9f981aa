"""benchmarks.ntk_profile: FLOP counts read from compiled HLO, and the op
breakdown of a real traced XLA:CPU call."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks import ntk_profile

pytestmark = pytest.mark.optimized  # compiled HLO, memory or speed: as users compile


def _conv_and_dot(x, w, m):
  y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jnp.tanh(y.reshape(-1, y.shape[-1])) @ m


def _compiled(options):
  x = jnp.ones((4, 8, 8, 3))
  w = jnp.ones((3, 3, 3, 8))
  m = jnp.ones((8, 16))
  return jax.jit(_conv_and_dot, compiler_options=options).lower(x, w, m).compile(), (x, w, m)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the trace option is XLA:CPU's")
def test_flops_of_the_compiled_conv_and_dot_match_hand_counts():
  compiled, _ = _compiled({})
  text = compiled.as_text()
  index = ntk_profile.instructions(text)
  bodies = ntk_profile._bodies(text)
  cores = {ntk_profile._core(name, index, bodies) for name in index} - {None}
  counted = sorted(ntk_profile.flops(c, index) for c in cores)
  conv = 2 * (4 * 8 * 8 * 8) * (3 * 3 * 3)  # outputs x (kh kw C_in) multiply-adds
  dot = 2 * (4 * 8 * 8 * 16) * 8
  assert counted == sorted([conv, dot])


def test_breakdown_groups_ops_and_rates_them_from_a_synthetic_module():
  hlo = """HloModule m

%fused (param_0: f32[64,32], param_1: f32[32,16]) -> f32[64,16] {
  %param_0 = f32[64,32]{1,0} parameter(0)
  %param_1 = f32[32,16]{1,0} parameter(1)
  ROOT %dot.3 = f32[64,16]{1,0} dot(%param_0, %param_1), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}

ENTRY %main (a: f32[64,32], b: f32[32,16]) -> f32[64,16] {
  %a = f32[64,32]{1,0} parameter(0)
  %b = f32[32,16]{1,0} parameter(1)
  %ynn_fusion.1 = f32[64,16]{1,0} fusion(%a, %b), kind=kCustom, calls=%fused, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %ynn_fusion.2 = f32[64,16]{1,0} fusion(%a, %b), kind=kCustom, calls=%fused, backend_config={"fusion_config":{"kind":"__ynn_fusion"}}
  %copy_fusion = f32[64,16]{0,1} copy(%ynn_fusion.2)
  ROOT %while.7 = f32[64,16]{1,0} while(%copy_fusion), condition=%cond, body=%body
}
"""
  # ynn_fusion.2 ran 3 times (as in a loop body); the while op spans its body's ops and is left out.
  durations = {"ynn_fusion.1": (1e-3, 1), "ynn_fusion.2": (3e-3, 3), "copy_fusion": (5e-3, 1), "while.7": (9e-3, 1),
               "ThunkExecutor::Execute": (2e-2, 1)}  # a runtime event, not an op
  rows = ntk_profile.breakdown(durations, hlo)
  assert [(r["op"], r["instructions"], r["executions"]) for r in rows] == [("copy_fusion", 1, 1), ("dot (ynn)", 2, 4)]
  dot = rows[1]
  assert dot["shape"] == "[64, 16]"
  assert dot["seconds"] == pytest.approx(4e-3)
  assert dot["share"] == pytest.approx(4 / 9)
  assert dot["gflop_per_s"] == pytest.approx(4 * 2 * 64 * 16 * 32 / 4e-3 / 1e9)
  assert rows[0]["gflop_per_s"] is None


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the trace option is XLA:CPU's")
def test_a_traced_call_attributes_time_to_the_conv_and_the_dot():
  compiled, args = _compiled(ntk_profile._TRACE_OPTION)
  jax.block_until_ready(compiled(*args))
  events, wall = ntk_profile.traced_call(compiled, *args)
  text = compiled.as_text()
  durations = ntk_profile.op_durations(events)
  rows = ntk_profile.breakdown(durations, text)
  ops = {r["op"].split(" ")[0] for r in rows}
  assert {"convolution", "dot"} <= ops
  assert all(r["seconds"] > 0 for r in rows)
  assert all(r["gflop_per_s"] > 0 for r in rows if r["op"].startswith(("convolution", "dot")))
  assert wall > 0
  assert sum(r["share"] for r in rows) == pytest.approx(1.0)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the trace option is XLA:CPU's")
def test_an_op_in_a_loop_body_counts_every_iteration_and_the_loop_is_no_row():
  xs, m = jnp.ones((5, 64, 64)), jnp.ones((64, 64))
  compiled = jax.jit(lambda xs, m: jax.lax.map(lambda a: jnp.tanh(a @ m), xs),
                     compiler_options=ntk_profile._TRACE_OPTION).lower(xs, m).compile()
  text = compiled.as_text()
  assert " while(" in text  # else this test no longer covers a loop
  jax.block_until_ready(compiled(xs, m))
  events, _ = ntk_profile.traced_call(compiled, xs, m)
  rows = ntk_profile.breakdown(ntk_profile.op_durations(events), text)
  dots = [r for r in rows if r["op"].startswith("dot")]
  assert [(r["instructions"], r["executions"]) for r in dots] == [(1, 5)]
  assert not any(r["op"].startswith("while") for r in rows)
