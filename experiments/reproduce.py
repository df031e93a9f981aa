"""The paper's NB201 results in one command: Figure 3 and Table 1's NB201
row, the deciles (Figures A2-A4), the init schemes (Figure 4), LGA_t
(Figure 6) and Table 2's random search and REA.

    ntkjax-reproduce --config full --workdir /tmp/reproduce      # the paper's scale, for a GPU
    ntkjax-reproduce --config small --workdir /tmp/reproduce     # end to end on a CPU
    ntkjax-reproduce --config full --workdir W --plan            # the plan alone

A fresh run first prints its plan (every study's functions compiled at the
config's shapes, the projected time; also written to plan.txt), then runs
each study of ``config.studies`` in ``<workdir>/<study>`` and writes that
study's summary, tables and figures there as it finishes. A rerun of the
same command resumes: finished studies reload their rows, the interrupted
one resumes from its last row. At the end it prints and writes
``summary.txt`` and ``paper_vs_ntkjax.csv``: every number the run produced
beside the paper's value (``ntkjax.studies.reproduction``).
"""

from __future__ import annotations

import pathlib

import ml_collections
from absl import logging

from ntkjax import data_home
from ntkjax.studies import deciles, init_schemes, plan, post_training, rank_correlation, reproduction, search, setup

from . import launch

RUNS = {"rank_correlation": rank_correlation.run, "deciles": deciles.run, "init_schemes": init_schemes.run,
        "post_training": post_training.run, "search": search.run}


def _studies(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  unknown = [s for s in config.studies if s not in RUNS]
  if unknown or not config.studies:
    raise ValueError(f"studies = {tuple(config.studies)!r}: give one or more of {', '.join(RUNS)}")
  for s in config.studies:
    setup.check_config(study_config(config, s))
  return tuple(config.studies)


def study_config(config: ml_collections.ConfigDict, study: str) -> ml_collections.ConfigDict:
  """``config[study]``, with the reproduction's ``ntk.memory_budget_gib``
  (one device for every study) where the study sets no budget of its own."""
  budget = config.ntk.memory_budget_gib if "ntk" in config else None
  own = config[study]
  if budget is None or own.ntk.memory_budget_gib is not None:
    return own
  own = own.copy_and_resolve_references()
  own.ntk.memory_budget_gib = budget
  return own


def plan_reproduction(config: ml_collections.ConfigDict) -> reproduction.ReproductionPlan:
  """Every study's plan; functions at the same shapes are compiled once."""
  cache = {}
  plans = []
  for s in _studies(config):
    try:
      plans.append(plan.plan(study_config(config, s), s, cache=cache))
    except plan.DoesNotFit as e:  # keep the studies planned before it
      raise plan.DoesNotFit(str(e), reproduction.ReproductionPlan([*plans, e.measured])) from None
  return reproduction.ReproductionPlan(plans)


def setting(config: ml_collections.ConfigDict) -> str:
  first = config[config.studies[0]]
  return (f"{setup.network_label(first.space)}, {first.data.name}, {first.data.batch_size} images per kernel, "
          f"{first.metrics.compat} conventions")


def run(config: ml_collections.ConfigDict, workdir) -> reproduction.ReproductionResult:
  workdir = pathlib.Path(workdir)
  studies = _studies(config)
  missing = [i for i in setup.inputs(config) if i.path is None]
  if missing:  # a run, unlike its plan, needs the data: refused before anything is written
    raise data_home.MissingData(missing[0].error)
  plan_file = workdir / "plan.txt"
  if config.plan_first and not plan_file.exists():
    text = plan_reproduction(config).summary()
    print(text, flush=True)
    workdir.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(text + "\n")
  results = {}
  for i, study in enumerate(studies):
    logging.info("study %d of %d: %s", i + 1, len(studies), study)
    results[study] = RUNS[study](study_config(config, study), workdir / study)
    launch.write_outputs(results[study], workdir / study)
    print(f"[{i + 1}/{len(studies)}] {study}: written in {workdir / study}", flush=True)
  return reproduction.ReproductionResult.gather(setting(config), results)


def main():
  launch.main(run, "reproduce.py", plan_fn=plan_reproduction)


if __name__ == "__main__":
  main()
