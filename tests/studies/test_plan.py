"""--plan: the study's jitted functions compiled at the config's shapes,
their memory against a budget, and the projected wall time; nothing written."""

import subprocess
import sys

import pytest

from ntkjax.configs import post_training as post_config
from ntkjax.configs import rank_correlation as rc_config
from ntkjax.studies import plan
from tests.test_experiments import ROOT, TINY


@pytest.mark.slow
def test_plan_compiles_the_kernels_and_projects_the_run(tiny):
  c = tiny(rc_config.get_config("small"))
  c.space.num_archs = 7
  p = plan.plan(c, "rank_correlation")
  init, kernels = p.functions
  assert (init.name, init.calls, init.compiles) == ("init", 1, 1)  # NB201's archs share one initialisation
  assert kernels.name == "kernels (train, eval BN)" and kernels.calls == 7 and kernels.compiles == 1
  assert kernels.fits and kernels.memory_bytes > 0 and kernels.gflop > 0 and kernels.timed
  assert 0 < kernels.lower_s < kernels.compile_s and 0 < init.lower_s < init.compile_s
  assert not p.budgeted and "no memory budget" in p.budget_line()  # the CPU default
  assert kernels.chunking == "train: chunk_size=None; eval: chunk_size=None"  # the config's, stated once
  assert p.projected_s == pytest.approx(7 * kernels.call_s + kernels.compile_s + init.call_s + init.compile_s)
  assert "projected wall time" in p.summary() and "C=4, N=1" in p.summary()


@pytest.mark.slow
def test_plan_of_a_training_study_adds_the_sgd_step_and_its_count(tiny, monkeypatch):
  from ntkjax import train
  c = tiny(post_config.get_config("small"))
  c.space.num_archs = 2
  fitted = []
  monkeypatch.setattr(train, "fit_micro_batch", lambda step_for, args, n, budget: fitted.append((n, budget)) or 16)
  p = plan.plan(c, "post_training")
  step = p.functions[-1]
  assert step.name == "SGD step (batch 32)" and fitted == [(32, "accelerators")]
  assert step.chunking.startswith("micro-batches of 16")
  assert plan.study_calls(c, "post_training") == (2 * (1 + len(c.epochs)), 2 * max(c.epochs) * 3)  # 96 images
  assert step.calls == 2 * max(c.epochs) * 3


@pytest.mark.slow
def test_plan_refuses_a_config_that_cannot_fit_naming_function_need_and_budget(tiny):
  c = tiny(rc_config.get_config("small"))
  c.ntk.memory_budget_gib = 1e-6
  c.ntk.implementation = "structured"  # 'auto' would compile two more implementations before refusing
  with pytest.raises(ValueError, match=r"rank_correlation: kernels \(train, eval BN\): the coupled NTK of 8 "
                     r"samples needs at least .* more than the memory budget of 0.0 MiB") as refused:
    plan.plan(c, "rank_correlation")
  measured = refused.value.measured  # what was measured before the refusal
  assert measured.refused and [f.name for f in measured.functions] == ["init"]
  assert "init" in measured.summary() and "projected wall time" not in measured.summary()


@pytest.mark.slow
def test_a_plan_refused_after_measuring_keeps_every_function_and_the_flag_prints_them(tmp_path):
  # The proxies' function is measured, then found over the budget: the table
  # is printed before the error, and nothing is written.
  args = ["--config", "configs/rank_correlation.py:small", *TINY, "--config.data.name=digits16",
          "--config.ground_truth.table=", "--config.bn_modes=()", "--config.proxies=('snip',)",
          "--config.ntk.memory_budget_gib=1e-6", "--plan", f"--workdir={tmp_path / 'w'}"]
  out = subprocess.run([sys.executable, "-m", "experiments.rank_correlation", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "error: rank_correlation: proxies needs" in out.stderr and "more than the budget" in out.stderr
  table = out.stdout
  assert "plan of rank_correlation on cpu" in table and "\nproxies " in table and "\ninit " in table
  assert "NO" in table and "no projection: the config does not fit" in table
  assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_plan_flag_prints_the_plan_and_writes_nothing(tmp_path):
  args = ["--config", "configs/rank_correlation.py:small", *TINY, "--config.data.name=digits16",
          "--config.ground_truth.table=", "--plan", f"--workdir={tmp_path / 'w'}"]
  out = subprocess.run([sys.executable, "-m", "experiments.rank_correlation", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "plan of rank_correlation on cpu" in out.stdout and "projected wall time" in out.stdout
  assert not (tmp_path / "w").exists()


def test_search_calls_count_each_kernel_scorers_evaluations_and_training():
  from ntkjax.configs import search as search_config
  c = search_config.get_config("small")  # 2 seeds, rs over 6, rea to 8; lga_eval@1, params, oracle
  steps_per_epoch = -(-c.train.num_images // c.train.batch_size)
  assert plan.study_calls(c, "search") == (2 * (6 + 8), 2 * (6 + 8) * 1 * steps_per_epoch)
  c.scorers = ("lga_eval@3", "ncn_eval@0", "nwot")
  assert plan.study_calls(c, "search") == (2 * 14 * 2, 2 * 14 * 3 * steps_per_epoch)
  from ntkjax.configs import deciles as deciles_config
  d = deciles_config.get_config("small")
  assert plan.study_calls(d, "deciles") == (10 * d.per_decile * d.num_seeds, 0)


def test_a_function_over_the_budget_is_measured_but_not_called():
  import math

  import jax
  import jax.numpy as jnp
  x, square = jnp.ones((64, 64)), jax.jit(lambda a: a @ a)
  over = plan._measure("f", square, (x,), 0, "-", 3, 1, 60.0, 1.0)
  assert not over.fits and over.memory_bytes > 0 and not over.timed  # projected from its FLOPs instead
  assert over.call_s == pytest.approx(over.gflop / 1.0)
  assert math.isnan(plan._measure("f", square, (x,), 0, "-", 3, 1, 60.0, None).call_s)
  within = plan._measure("f", square, (x,), 1 << 30, "-", 3, 1, 60.0, 1.0)
  assert within.fits and within.timed and within.call_s > 0


@pytest.mark.slow
def test_a_plan_needs_no_data_and_ends_with_the_files_the_run_reads(tiny, tmp_path):
  # The suite's data home is empty (tests/conftest.py): neither CIFAR-10 nor NB101's table is there, so
  # the plan takes the images' shape from the dataset and NB101's universe from a stand-in spec.
  from ntkjax import data_home
  from ntkjax.studies import rank_correlation
  c = tiny(rc_config.get_config("small,nb101"))
  c.data.name, c.space.num_archs = "cifar10", 3  # tiny's digits come with scikit-learn
  p = plan.plan(c, "rank_correlation")
  assert [(i.what, i.path) for i in p.inputs] == [("cifar10 images", None), ("nb101 table (cifar10 valid)", None)]
  kernels = p.functions[-1]
  assert kernels.name == "kernels (train, eval BN)" and kernels.calls == 3 and kernels.memory_bytes > 0
  lines = p.summary().splitlines()
  assert lines[-3:-2] == ["the run reads (ntkjax-data lists the data home):"]
  assert lines[-2].startswith("  MISSING  cifar10 images: ") and lines[-1].startswith("  MISSING  nb101 table")
  assert sum("projected wall time" in line for line in lines) == 1
  with pytest.raises(data_home.MissingData, match="CIFAR-10 images not found"):  # the run still refuses
    rank_correlation.run(c, tmp_path / "run")
  assert not (tmp_path / "run" / "config.json").exists()
