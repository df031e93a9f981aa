"""PNG figures of correlation tables (matplotlib, Agg backend).

matplotlib is optional (the ``plot`` extra): without it the functions log a
warning and return ``None``, and the CSV/text results are still written.
"""

from __future__ import annotations

import pathlib
from typing import Mapping, Sequence

import numpy as np
from absl import logging

__all__ = ["correlation_bars", "decile_boxes", "init_scheme_bars", "tau_over_epochs", "kernel_evolution",
           "trajectories"]


def _pyplot():
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
  except ImportError:
    logging.warning("matplotlib is not installed (pip install 'ntkjax[plot]'); skipping figures")
    return None


def _save(fig, plt, path):
  path = pathlib.Path(path)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def _grid(plt, n: int):
  """A figure with one small panel per item (4 per row); spare panels hidden."""
  cols = min(4, n)
  rows = -(-n // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.6 * rows), squeeze=False)
  for ax in list(axes.flat)[n:]:
    ax.axis("off")
  return fig, list(axes.flat)[:n]


def _tau_bar_axes(ax, x, metrics, title):
  ax.axhline(0, color="k", lw=0.6)
  ax.set_xticks(x, metrics, rotation=45, ha="right")
  ax.set_ylabel("Kendall τ")
  ax.set_title(title, fontsize=10)


def correlation_bars(table: Sequence[Mapping], path, *, title: str = "") -> pathlib.Path | None:
  """Bars of Kendall τ per metric (Figure 3 style): all archs and without
  degenerate ones side by side."""
  plt = _pyplot()
  if plt is None:
    return None
  metrics = list(dict.fromkeys(r["metric"] for r in table))
  subsets = ("all", "non_degenerate")
  fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(metrics)), 3.6))
  x = np.arange(len(metrics))
  for j, subset in enumerate(subsets):
    tau = {r["metric"]: r["tau"] for r in table if r["subset"] == subset}
    ax.bar(x + (j - 0.5) * 0.38, [tau.get(m, np.nan) for m in metrics], 0.38,
           label="all archs" if subset == "all" else "without degenerate")
  _tau_bar_axes(ax, x, metrics, title)
  ax.legend(fontsize=8)
  return _save(fig, plt, path)


def decile_boxes(table: Sequence[Mapping], path, metrics: Sequence[str], *,
                 title: str = "") -> pathlib.Path | None:
  """One panel per metric: box plots of τ over draws for deciles 1..10 and Total."""
  plt = _pyplot()
  if plt is None:
    return None
  labels = [str(k) for k in range(1, 11)] + ["Total"]
  fig, panels = _grid(plt, len(metrics))
  for ax, m in zip(panels, metrics):
    data = [[r["tau"] for r in table if r["metric"] == m and r["decile"] == l and r["subset"] == "all"]
            for l in labels]
    ax.boxplot([d if d else [np.nan] for d in data], tick_labels=labels)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(m, fontsize=9)
    ax.tick_params(labelsize=7)
  fig.suptitle(title, fontsize=10)
  return _save(fig, plt, path)


def init_scheme_bars(table: Sequence[Mapping], path, schemes: Sequence[str], metrics: Sequence[str],
                     *, title: str = "") -> pathlib.Path | None:
  """Grouped bars (Figure 4 style): τ per metric, one bar per init scheme."""
  plt = _pyplot()
  if plt is None:
    return None
  fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(metrics)), 3.6))
  x = np.arange(len(metrics))
  width = 0.8 / len(schemes)
  for j, s in enumerate(schemes):
    tau = {r["metric"]: r["tau"] for r in table if r["init"] == s and r["subset"] == "all"}
    ax.bar(x + (j - (len(schemes) - 1) / 2) * width, [tau.get(m, np.nan) for m in metrics], width, label=s)
  _tau_bar_axes(ax, x, metrics, title)
  ax.legend(fontsize=7, ncol=min(len(schemes), 5))
  return _save(fig, plt, path)


def tau_over_epochs(table: Sequence[Mapping], path, metrics: Sequence[str], *,
                    title: str = "") -> pathlib.Path | None:
  """Figure 6 style: Kendall τ against training epochs t, one line per metric."""
  plt = _pyplot()
  if plt is None:
    return None
  fig, ax = plt.subplots(figsize=(6, 3.6))
  for m in metrics:
    pts = sorted((r["t"], r["tau"]) for r in table if r["metric"] == m and r["subset"] == "all")
    ax.plot(*zip(*pts), marker="o", label=m)
  ax.axhline(0, color="k", lw=0.6)
  ax.set_xlabel("training epochs t")
  ax.set_ylabel("Kendall τ")
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7, ncol=2)
  return _save(fig, plt, path)


def kernel_evolution(series: Mapping[str, np.ndarray], epochs: Sequence[int], path, *,
                     title: str = "") -> pathlib.Path | None:
  """Figure 5 style: one panel per quantity, one line per architecture."""
  plt = _pyplot()
  if plt is None:
    return None
  fig, axes = plt.subplots(1, len(series), figsize=(3.6 * len(series), 3.2), squeeze=False)
  for ax, (name, values) in zip(axes[0], series.items()):
    for row in values:
      ax.plot(epochs, row, marker=".", lw=1)
    ax.set_xlabel("epoch")
    ax.set_title(name.replace("_", " "), fontsize=9)
  fig.suptitle(title, fontsize=10)
  return _save(fig, plt, path)


def trajectories(series: Mapping[str, Mapping[str, np.ndarray]], epochs: Sequence[int],
                 metrics: Sequence[str], path, *, title: str = "") -> pathlib.Path | None:
  """Figure 2 style: per metric, the median and interquartile band of each
  accuracy group over epochs."""
  plt = _pyplot()
  if plt is None:
    return None
  fig, panels = _grid(plt, len(metrics))
  for ax, m in zip(panels, metrics):
    for group, by_metric in series.items():
      v = by_metric[m]
      lo, med, hi = np.nanpercentile(v, [25, 50, 75], axis=0)
      ax.plot(epochs, med, label=group)
      ax.fill_between(epochs, lo, hi, alpha=0.2)
    ax.set_title(m, fontsize=9)
    ax.tick_params(labelsize=7)
  panels[0].legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  return _save(fig, plt, path)
