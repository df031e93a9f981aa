"""The paper's NB201 numbers beside a reproduction's (``ntkjax-reproduce``).

A reproduction runs several studies; ``comparisons(study, tables)`` reads
one study's tables (what its result's ``tables()`` returns, the rows its
CSV files hold) and gives a ``Comparison`` per number it produced, with the
paper's value where the paper prints one (``PAPER``), ``PLOT`` where the
paper only draws it, and None where the paper has no such number.
``ReproductionResult`` gathers them, adds the printed numbers the run did
not produce (another scale's epochs, say), and formats the summary.
Nothing here imports a study: a reproduction's tables are plain rows.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from ntkjax.studies import setup

__all__ = ["PAPER", "PLOT", "Comparison", "ReproductionResult", "comparisons", "SECTIONS"]

PLOT = "plot"

# What Mok et al. (CVPR 2022) print for NB201 CIFAR-10, keyed like the
# comparisons below: (section, quantity) -> value. Table 2: test accuracy of
# the chosen arch (mean over runs) and the search cost in GPU-seconds.
PAPER: dict[tuple[str, str], float] = {
    ("Table 2", "rs + lga_eval@3: accuracy"): 93.64,
    ("Table 2", "rs + lga_eval@3: cost (s)"): 3600.0,
    ("Table 2", "rs + lga_eval@5: accuracy"): 94.03,
    ("Table 2", "rs + lga_eval@5: cost (s)"): 5400.0,
    ("Table 2", "rea + lga_eval@3: accuracy"): 94.30,
    ("Table 2", "rea + lga_eval@3: cost (s)"): 3600.0,
    ("Table 2", "rs + nwot: accuracy"): 92.96,
}

# The study behind each section of the paper, in the paper's order.
SECTIONS = {"rank_correlation": "Figure 3 / Table 1", "deciles": "Figures A2-A4", "init_schemes": "Figure 4",
            "post_training": "Figure 6", "search": "Table 2"}

# The NTK metrics the paper plots (both BN modes), and its init schemes.
_PLOTTED_METRICS = {f"{m}_{bn}" for m in ("fnorm", "mean", "ncn", "lga") for bn in ("train", "eval")}
_PLOTTED_SCHEMES = {"xavier", "kaiming", "gaussian", "torch_default"}


class Comparison(NamedTuple):
  section: str                 # the paper's table or figure
  quantity: str                # what the number is
  paper: float | str | None    # the printed value, PLOT, or None (no such number in the paper)
  ntkjax: float | None         # None: not produced by this run
  spread: float | None         # s.e. of a Kendall tau, or the std over seeds / draws
  n: int | None                # archs (tau) or seeds (search)

  def cells(self) -> tuple[str, str]:
    paper = ("—" if self.paper is None else self.paper if isinstance(self.paper, str) else f"{self.paper:g}")
    if self.ntkjax is None:
      return paper, "not run"
    spread = "" if self.spread is None or math.isnan(self.spread) else f" ± {self.spread:.3g}"
    return paper, f"{self.ntkjax:.4g}{spread}" + (f" (n={self.n})" if self.n else "")


def _float(row: Mapping, key: str) -> float:
  value = row.get(key)
  return float(value) if value not in (None, "") else math.nan


def _all(rows):
  return [r for r in rows if r.get("subset", "all") == "all"]


def _metric_paper(metric: str):
  return PLOT if metric in _PLOTTED_METRICS else None


def _rank_correlation(rows):
  return [Comparison(SECTIONS["rank_correlation"], f"{r['metric']}: Kendall tau", _metric_paper(r["metric"]),
                     _float(r, "tau"), _float(r, "tau_se"), int(r["n"])) for r in _all(rows)]


def _deciles(rows):
  out = []
  by = {}
  for r in _all(rows):
    by.setdefault((r["metric"], r["decile"]), []).append(_float(r, "tau"))
  for (metric, decile), taus in by.items():
    taus = np.asarray(taus)
    where = "each draw's whole sample" if decile == "Total" else f"decile {decile}"
    out.append(Comparison(SECTIONS["deciles"], f"{metric}: median Kendall tau within {where}",
                          _metric_paper(metric), float(np.nanmedian(taus)), float(np.nanstd(taus)), len(taus)))
  return out


def _init_schemes(rows):
  return [Comparison(SECTIONS["init_schemes"], f"{r['metric']}, init {r['init']}: Kendall tau",
                     PLOT if r["init"] in _PLOTTED_SCHEMES and r["metric"] in _PLOTTED_METRICS else None,
                     _float(r, "tau"), _float(r, "tau_se"), int(r["n"])) for r in _all(rows)]


def _post_training(rows):
  return [Comparison(SECTIONS["post_training"], f"{r['metric']}@{r['t']}: Kendall tau",
                     _metric_paper(r["metric"]) if r["metric"] != "params" else None,
                     _float(r, "tau"), _float(r, "tau_se"), int(r["n"])) for r in _all(rows)]


def _search(rows):
  out = []
  for r in rows:
    name = f"{r['method']} + {r['scorer']}"
    for what, value, spread in (("accuracy", _float(r, "accuracy_mean"), _float(r, "accuracy_std")),
                                ("cost (s)", _float(r, "cost_s_mean"), None)):
      quantity = f"{name}: {what}"
      out.append(Comparison(SECTIONS["search"], quantity, PAPER.get((SECTIONS["search"], quantity)), value, spread,
                            int(r["seeds"])))
  return out


_READERS: dict[str, tuple[str, Callable]] = {
    "rank_correlation": ("correlations.csv", _rank_correlation), "deciles": ("deciles.csv", _deciles),
    "init_schemes": ("init_schemes.csv", _init_schemes), "post_training": ("post_training.csv", _post_training),
    "search": ("search_table.csv", _search)}


def comparisons(study: str, tables: Mapping[str, tuple[Sequence[Mapping], Sequence[str]]]) -> list[Comparison]:
  """One ``Comparison`` per number in ``study``'s tables (its result's
  ``tables()``); ValueError for a study a reproduction does not run."""
  if study not in _READERS:
    raise ValueError(f"no paper section for study {study!r}; known: {', '.join(_READERS)}")
  name, read = _READERS[study]
  rows, _ = tables[name]
  return read([{k: ("" if v is None else str(v)) for k, v in r.items()} for r in rows])


FIELDS = ["section", "quantity", "paper", "ntkjax", "spread", "n"]


class ReproductionResult(NamedTuple):
  setting: str                       # the scale and network the reproduction ran
  studies: tuple[str, ...]           # the studies run, in order
  rows: list[Comparison]

  @classmethod
  def gather(cls, setting: str, results: Mapping[str, object]) -> ReproductionResult:
    """From each study's result (anything with ``tables()``), adding the
    paper's printed numbers of the run's sections that it did not produce."""
    rows = [c for study, result in results.items() for c in comparisons(study, result.tables())]
    have = {(c.section, c.quantity) for c in rows}
    sections = {SECTIONS[s] for s in results}
    rows += [Comparison(section, quantity, value, None, None, None) for (section, quantity), value in PAPER.items()
             if section in sections and (section, quantity) not in have]
    return cls(setting, tuple(results), rows)

  def summary(self) -> str:
    printed = sum(isinstance(c.paper, float) for c in self.rows)
    lines = [f"The paper's NB201 results against ntkjax's: {self.setting}",
             f"{len(self.rows)} numbers, {printed} of them printed in the paper ('plot': the paper only draws it; "
             "'—': no such number in the paper)",
             f"{'section':<20}{'quantity':<52}{'paper':>9}  ntkjax"]
    for c in self.rows:
      paper, ours = c.cells()
      lines.append(f"{c.section:<20}{c.quantity:<52}{paper:>9}  {ours}")
    return "\n".join(lines)

  def tables(self):
    return {"paper_vs_ntkjax.csv": ([c._asdict() for c in self.rows], FIELDS)}

  def figures(self):
    return {}


class ReproductionPlan(NamedTuple):
  """Each study's plan (``ntkjax.studies.plan.StudyPlan``) and their sum."""
  plans: list

  @property
  def projected_s(self) -> float:
    return sum(p.projected_s for p in self.plans)

  def summary(self) -> str:
    parts = [p.summary(with_inputs=False) for p in self.plans]
    if not any(p.refused for p in self.plans):
      parts.append(f"projected wall time of the reproduction: {self.projected_s / 3600:.2f} h over "
                   f"{len(self.plans)} studies")
    inputs = {i.what: i for p in self.plans for i in p.inputs}  # each file once
    return "\n\n".join(parts + ["\n".join(setup.input_lines(list(inputs.values())))])

  def tables(self):
    return {}

  def figures(self):
    return {}
