"""At-initialisation rank-correlation studies (paper Sections 3.2-3.4).

``run_rank_correlation`` works in every space of ``ntkjax.spaces.api``
(``config.space.name``); the decile and initialisation studies are NB201's.

Each ``run_*`` maps a config (``configs/rank_correlation.py``,
``configs/deciles.py``, ``configs/init_schemes.py``) onto the scoring loop of
``ntkjax.score``: one CSV row per architecture, written as it goes, so a
rerun resumes. Correlations are then computed from the CSVs and written as
CSV, text and PNG figures in the workdir.

Degenerate architectures (no input->output path: a zero NTK) get the metrics'
defined values that rank them last; every table reports τ with them and
without them (``subset`` = ``all`` / ``non_degenerate``).
"""

from __future__ import annotations

import csv
import pathlib
from typing import Iterable, Mapping, Sequence

import jax
import numpy as np
from absl import logging

from ntkjax import benchmarks, figures, score, stats
from ntkjax.spaces import nb201

__all__ = ["BASELINES", "TABLE_FIELDS", "random_scores", "correlations", "params_baseline",
           "sample_archs", "require_truth", "rows_for", "format_table", "write_table", "run_rank_correlation",
           "run_deciles", "run_init_schemes"]

BASELINES = ("params", "random")
TABLE_FIELDS = ["metric", "subset", "n", "n_degenerate", "tau", "tau_p", "rho", "rho_p"]


def random_scores(key: jax.Array, archs: Sequence[str], index=nb201.ops_to_index) -> np.ndarray:
  """A reproducible uniform score per architecture (the chance baseline),
  keyed by the arch's ``index`` (NB201: lexicographic position) so it does
  not depend on order."""
  idx = np.array([index(a) for a in archs], np.int32)
  draw = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(key, i)))
  return np.asarray(draw(idx), np.float64)


def correlations(rows: Sequence[Mapping[str, str]], columns: Iterable[str],
                 truth: benchmarks.GroundTruth, *, random_key: jax.Array | None = None,
                 index=nb201.ops_to_index) -> list[dict]:
  """Kendall τ and Spearman ρ of each score column with ``truth``.

  ``rows`` are results-CSV rows (``arch``, ``degenerate``, ``params`` and the
  score columns). ``random_key`` adds the ``random`` baseline. NaN scores are
  ranked last. Rows whose arch is not in ``truth`` are an error.
  """
  rows = list(rows)
  missing = [r["arch"] for r in rows if r["arch"] not in truth]
  if missing:
    raise KeyError(f"{len(missing)} scored archs are not in {truth.source}, e.g. {missing[0]}")
  acc = truth.lookup(r["arch"] for r in rows)
  degenerate = np.array([int(r["degenerate"]) for r in rows], bool)
  scores = {c: np.array([float(r[c]) for r in rows]) for c in columns}
  if random_key is not None:
    scores["random"] = random_scores(random_key, [r["arch"] for r in rows], index)
  out = []
  for subset, keep in (("all", np.ones_like(degenerate)), ("non_degenerate", ~degenerate)):
    for name, s in scores.items():
      if keep.sum() < 3:
        continue
      tau = stats.kendall_tau(s[keep], acc[keep], nan_policy="last")
      rho = stats.spearman_rho(s[keep], acc[keep], nan_policy="last")
      out.append({"metric": name, "subset": subset, "n": int(keep.sum()),
                  "n_degenerate": int(degenerate[keep].sum()), "tau": tau.value,
                  "tau_p": tau.pvalue, "rho": rho.value, "rho_p": rho.pvalue})
  return out


def write_table(path, table: Sequence[Mapping], fields: Sequence[str]) -> None:
  with open(path, "w", newline="") as f:
    w = csv.DictWriter(f, fields, extrasaction="ignore")
    w.writeheader()
    for r in table:
      w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})


def format_table(table: Sequence[Mapping], key: str = "metric") -> str:
  lines = [f"{key:<14}{'subset':<16}{'n':>6}{'degen':>7}{'tau':>9}{'rho':>9}"]
  for r in table:
    lines.append(f"{str(r[key]):<14}{r['subset']:<16}{r['n']:>6}{r['n_degenerate']:>7}"
                 f"{r['tau']:>9.3f}{r['rho']:>9.3f}")
  return "\n".join(lines)


def params_baseline(truth: benchmarks.GroundTruth, num_classes: int = 10, *,
                    reachable_only: bool = False, space=None) -> stats.Correlation:
  """Kendall τ of the parameter count with ``truth`` over every arch in it.

  NB201 (``space`` None or NB201; the benchmark's network): optionally only
  archs without unreachable ops (``nb201.has_unreachable_ops``). Other
  spaces count with ``space.num_params``.
  """
  if space is not None and space.name != "nb201":
    archs = sorted(truth.accuracy)
    params = np.array([space.num_params(a) for a in archs], np.float64)
    return stats.kendall_tau(params, truth.lookup(archs))
  archs = sorted(a for a in truth.accuracy if not (reachable_only and nb201.has_unreachable_ops(a)))
  params = np.array([nb201.num_params(a, num_classes) for a in archs], np.float64)
  return stats.kendall_tau(params, truth.lookup(archs))


def sample_archs(config, job, truth, workdir) -> list[str]:
  """``config.space.num_archs`` archs, seeded random or the first official
  indices, recorded in ``workdir/archs.txt``."""
  n = config.space.num_archs
  if config.space.sampling == "random":
    archs = job.space.sample(job.k_arch, n)
  elif config.space.sampling == "index_order":  # the paper code's first-n archs
    if not truth.index:
      raise ValueError(f"sampling='index_order' needs official indices; {truth.source} has none "
                       "(set ground_truth.index_column)")
    archs = sorted(truth.index, key=truth.index.get)[:n]
  else:
    raise ValueError(f"unknown space.sampling {config.space.sampling!r}; use 'random' or 'index_order'")
  (pathlib.Path(workdir) / "archs.txt").write_text("\n".join(archs) + "\n")
  return archs


def require_truth(job: score.Job) -> benchmarks.GroundTruth:
  """The ground truth ``score.prepare`` read for ``job``; an error without one."""
  if job.truth is None:
    raise ValueError("this experiment needs ground_truth.path (a CSV or a NATS-tss archive)")
  return job.truth


def _score(config, job, archs, path, net=None):
  return score.score_architectures(
      path, archs, net=net, space=None if net is not None else job.space, images=job.images, labels=job.labels, key=job.k_init,
      init_per_arch=config.space.init_per_arch, seed=config.seed, bn_modes=tuple(config.bn_modes),
      compat=config.metrics.compat, **score.ntk_options(config))


def rows_for(table, archs):
  by_arch = {r["arch"]: r for r in table.rows}
  return [by_arch[a] for a in archs]


def run_rank_correlation(config, workdir) -> list[dict]:
  """Section 3.2 / Table 1: τ and ρ of every metric x BN mode, plus the
  baselines, in the space ``config.space.name``."""
  workdir = pathlib.Path(workdir)
  job = score.prepare(config, workdir)
  truth = require_truth(job)
  archs = sample_archs(config, job, truth, workdir)
  table = _score(config, job, archs, workdir / "results.csv")
  rows = rows_for(table, archs)
  columns = score.metric_columns(config.bn_modes) + ["params"]
  result = correlations(rows, columns, truth, random_key=jax.random.fold_in(job.k_arch, 1),
                        index=job.space.index)
  write_table(workdir / "correlations.csv", result, TABLE_FIELDS)
  name = job.space.name
  everything = params_baseline(truth, job.net.num_classes if job.net is not None else 10, space=job.space)
  text = (f"{name} {job.dataset}: {len(archs)} archs, {len(job.labels)} images, truth {truth.source} "
          f"{truth.dataset}/{truth.split}\n" + format_table(result) +
          f"\nparams over all {everything.n} archs of the ground truth: tau {everything.value:.3f}")
  if name == "nb201":
    reachable = params_baseline(truth, job.net.num_classes, reachable_only=True)
    text += f"; over the {reachable.n} without unreachable ops: tau {reachable.value:.3f}"
  (workdir / "summary.txt").write_text(text + "\n")
  print(text)
  figures.correlation_bars(result, workdir / "rank_correlation.png",
                           title=f"{name} {truth.dataset}: Kendall τ at init (n={len(archs)})")
  return result


def run_deciles(config, workdir) -> list[dict]:
  """Section 3.3: τ within each accuracy decile, over ``num_seeds`` draws of
  ``per_decile`` archs per decile, and over each draw's whole sample ("Total").

  The draws differ in architectures; the initialisation and the minibatch
  are those of ``config.seed``. Each distinct arch is scored once.
  """
  workdir = pathlib.Path(workdir)
  job = score.prepare(config, workdir)
  truth = require_truth(job)
  draws = [benchmarks.sample_per_decile(jax.random.fold_in(job.k_arch, s), truth, config.per_decile)
           for s in range(config.num_seeds)]
  union = sorted({a for d in draws for group in d for a in group})
  logging.info("%d draws x 10 deciles x %d archs: %d distinct archs", len(draws), config.per_decile, len(union))
  table = _score(config, job, union, workdir / "results.csv")
  columns = score.metric_columns(config.bn_modes) + ["params"]
  result = []
  for s, draw in enumerate(draws):
    for k, group in enumerate(draw + [[a for g in draw for a in g]]):
      label = str(k + 1) if k < 10 else "Total"
      for r in correlations(rows_for(table, group), columns, truth):
        result.append({"seed": s, "decile": label, **r})
  write_table(workdir / "deciles.csv", result, ["seed", "decile"] + TABLE_FIELDS)
  summary = _decile_summary(result)
  (workdir / "summary.txt").write_text(summary + "\n")
  print(summary)
  figures.decile_boxes(result, workdir / "deciles.png", columns,
                       title=f"NB201 {truth.dataset}: τ per accuracy decile "
                             f"({config.num_seeds} draws x {config.per_decile} archs)")
  return result


def _decile_summary(result) -> str:
  metrics = sorted({r["metric"] for r in result})
  labels = [str(k) for k in range(1, 11)] + ["Total"]
  lines = ["median tau over draws (all archs)", f"{'metric':<12}" + "".join(f"{l:>7}" for l in labels)]
  for m in metrics:
    med = [np.median([r["tau"] for r in result if r["metric"] == m and r["decile"] == l
                      and r["subset"] == "all"] or [np.nan]) for l in labels]
    lines.append(f"{m:<12}" + "".join(f"{v:>7.3f}" for v in med))
  return "\n".join(lines)


def run_init_schemes(config, workdir) -> list[dict]:
  """Section 3.4: the same archs and minibatch under each init scheme."""
  workdir = pathlib.Path(workdir)
  job = score.prepare(config, workdir)
  truth = require_truth(job)
  archs = sample_archs(config, job, truth, workdir)
  columns = score.metric_columns(config.bn_modes)
  result = []
  for scheme in config.schemes:
    net = job.net.clone(init_scheme=scheme)
    table = _score(config, job, archs, workdir / f"results_{scheme}.csv", net=net)
    for r in correlations(rows_for(table, archs), columns, truth):
      result.append({"init": scheme, **r})
  write_table(workdir / "init_schemes.csv", result, ["init"] + TABLE_FIELDS)
  lines = [f"{'metric':<12}{'subset':<16}" + "".join(f"{s:>15}" for s in config.schemes)]
  for subset in ("all", "non_degenerate"):
    for m in columns:
      taus = {r["init"]: r["tau"] for r in result if r["metric"] == m and r["subset"] == subset}
      lines.append(f"{m:<12}{subset:<16}" + "".join(f"{taus.get(s, np.nan):>15.3f}" for s in config.schemes))
  text = f"Kendall tau by init scheme, {len(archs)} archs\n" + "\n".join(lines)
  (workdir / "summary.txt").write_text(text + "\n")
  print(text)
  figures.init_scheme_bars(result, workdir / "init_schemes.png", list(config.schemes), columns,
                           title=f"NB201 {truth.dataset}: τ by initialisation (n={len(archs)})")
  return result
