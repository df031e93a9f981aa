"""--plan: the study's jitted functions compiled at the config's shapes,
their memory against a budget, and the projected wall time; nothing written."""

import subprocess
import sys

import pytest

from configs import post_training as post_config
from configs import rank_correlation as rc_config
from ntkjax.studies import plan
from tests.test_experiments import ROOT, TINY


@pytest.mark.slow
def test_plan_compiles_the_kernels_and_projects_the_run(tiny):
  c = tiny(rc_config.get_config("small"))
  c.space.num_archs = 7
  p = plan.plan(c, "rank_correlation")
  (kernels,) = p.functions
  assert kernels.name == "kernels (train, eval BN)" and kernels.calls == 7 and kernels.compiles == 1
  assert kernels.fits and kernels.memory_bytes > 0 and kernels.gflop > 0 and kernels.timed
  assert "no budget" in kernels.chunking  # the CPU default
  assert p.projected_s == pytest.approx(7 * kernels.call_s + kernels.compile_s)
  assert "projected wall time" in p.summary() and "C=4, N=1" in p.summary()


@pytest.mark.slow
def test_plan_of_a_training_study_adds_the_sgd_step_and_its_count(tiny):
  c = tiny(post_config.get_config("small"))
  c.space.num_archs = 2
  p = plan.plan(c, "post_training")
  step = p.functions[-1]
  assert step.name == "SGD step (batch 32)"
  assert plan.study_calls(c, "post_training") == (2 * (1 + len(c.epochs)), 2 * max(c.epochs) * 3)  # 96 images
  assert step.calls == 2 * max(c.epochs) * 3


@pytest.mark.slow
def test_plan_refuses_a_config_that_cannot_fit_naming_function_need_and_budget(tiny):
  c = tiny(rc_config.get_config("small"))
  c.ntk.memory_budget_gib = 1e-6
  with pytest.raises(ValueError, match=r"rank_correlation: kernels \(train, eval BN\): the coupled NTK of 8 "
                     r"samples needs at least .* more than the memory budget of 0.0 MiB"):
    plan.plan(c, "rank_correlation")


@pytest.mark.slow
def test_plan_flag_prints_the_plan_and_writes_nothing(tmp_path):
  args = ["--config", "configs/rank_correlation.py:small", *TINY, "--config.data.name=digits16",
          "--config.ground_truth.table=", "--plan", f"--workdir={tmp_path / 'w'}"]
  out = subprocess.run([sys.executable, "-m", "experiments.rank_correlation", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "plan of rank_correlation on cpu" in out.stdout and "projected wall time" in out.stdout
  assert not (tmp_path / "w").exists()
