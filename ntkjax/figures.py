"""PNG figures of the studies' results (matplotlib, Agg backend).

Each function draws one figure from typed rows (``ranking.CorrelationRow``,
alone or tagged with a decile, init scheme or epoch), writes it to ``path``
and returns the path. Every figure has a title with its n, axis labels and a
legend; Kendall τ bars carry ±1 jackknife standard error, epoch axes have
integer ticks.
"""

from __future__ import annotations

import pathlib
from typing import Mapping, Sequence

import numpy as np

from ntkjax import stats
from ntkjax.ranking import CorrelationRow

__all__ = ["correlation_bars", "decile_boxes", "init_scheme_bars", "tau_over_epochs", "kernel_evolution",
           "trajectories", "metric_scatter", "kernel_heatmaps"]


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _save(fig, plt, path) -> pathlib.Path:
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


def _integer_epochs(ax, epochs: Sequence[int]) -> None:
  ax.set_xticks(list(epochs))
  ax.set_xlabel("training epochs t")


def _tau_bars(ax, groups: Sequence[tuple[str, Mapping[str, CorrelationRow]]], metrics: Sequence[str],
              title: str) -> None:
  """Grouped τ bars with ±se error bars: one bar per (group, metric)."""
  x = np.arange(len(metrics))
  width = 0.8 / max(1, len(groups))
  for j, (label, rows) in enumerate(groups):
    tau = [rows[m].tau if m in rows else np.nan for m in metrics]
    se = [rows[m].tau_se if m in rows else np.nan for m in metrics]
    ax.bar(x + (j - (len(groups) - 1) / 2) * width, tau, width, yerr=se, capsize=2, label=label,
           error_kw={"lw": 0.8})
  ax.axhline(0, color="k", lw=0.6)
  ax.set_xticks(x, metrics, rotation=45, ha="right")
  ax.set_ylabel("Kendall τ (±1 s.e.)")
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7, ncol=min(len(groups), 5))


def correlation_bars(table: Sequence[CorrelationRow], path, *, title: str = "") -> pathlib.Path:
  """Bars of Kendall τ per metric (Figure 3 style): all archs and without
  degenerate ones side by side."""
  plt = _pyplot()
  metrics = list(dict.fromkeys(r.metric for r in table))
  subsets = dict.fromkeys(r.subset for r in table)  # 'non_degenerate' only where an arch is degenerate
  groups = [("all archs" if subset == "all" else "without degenerate",
             {r.metric: r for r in table if r.subset == subset}) for subset in subsets]
  fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(metrics)), 3.6))
  _tau_bars(ax, groups, metrics, title)
  return _save(fig, plt, path)


def init_scheme_bars(table: Sequence[tuple[str, CorrelationRow]], path, schemes: Sequence[str],
                     metrics: Sequence[str], *, title: str = "") -> pathlib.Path:
  """Grouped bars (Figure 4 style): τ per metric, one bar per init scheme
  (all archs)."""
  plt = _pyplot()
  groups = [(s, {r.metric: r for scheme, r in table if scheme == s and r.subset == "all"}) for s in schemes]
  fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(metrics)), 3.6))
  _tau_bars(ax, groups, metrics, title)
  return _save(fig, plt, path)


def decile_boxes(table: Sequence[tuple[str, CorrelationRow]], path, metrics: Sequence[str], *,
                 title: str = "") -> pathlib.Path:
  """One panel per metric: box plots of τ over draws for deciles 1..10 and
  Total (all archs)."""
  plt = _pyplot()
  labels = [str(k) for k in range(1, 11)] + ["Total"]
  fig, panels = _grid(plt, len(metrics))
  for ax, m in zip(panels, metrics):
    data = [[r.tau for d, r in table if r.metric == m and d == label and r.subset == "all"] for label in labels]
    ax.boxplot([d if d else [np.nan] for d in data], tick_labels=labels)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_title(m, fontsize=9)
    ax.set_xlabel("accuracy decile (1 = worst)", fontsize=7)
    ax.set_ylabel("Kendall τ", fontsize=7)
    ax.tick_params(labelsize=7)
  fig.suptitle(title, fontsize=10)
  return _save(fig, plt, path)


def tau_over_epochs(table: Sequence[tuple[int, CorrelationRow]], path, metrics: Sequence[str], *,
                    title: str = "") -> pathlib.Path:
  """Figure 6 style: Kendall τ (±1 s.e.) against training epochs t, one line
  per metric (all archs)."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 3.6))
  epochs = sorted({t for t, _ in table})
  for m in metrics:
    pts = sorted((t, r.tau, r.tau_se) for t, r in table if r.metric == m and r.subset == "all")
    if pts:
      ts, tau, se = zip(*pts)
      ax.errorbar(ts, tau, yerr=se, marker="o", capsize=2, label=m)
  ax.axhline(0, color="k", lw=0.6)
  _integer_epochs(ax, epochs)
  ax.set_ylabel("Kendall τ (±1 s.e.)")
  ax.set_title(title, fontsize=10)
  ax.legend(fontsize=7, ncol=2)
  return _save(fig, plt, path)


def kernel_evolution(series: Mapping[str, np.ndarray], epochs: Sequence[int], path, *,
                     labels: Sequence[str] | None = None, title: str = "") -> pathlib.Path:
  """Figure 5 style: one panel per quantity (``series[name]`` is
  [archs, epochs]), one line per architecture, labelled by ``labels``."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, len(series), figsize=(3.8 * len(series), 3.4), squeeze=False)
  for ax, (name, values) in zip(axes[0], series.items()):
    for k, row in enumerate(values):
      ax.plot(epochs, row, marker=".", lw=1, label=labels[k] if labels is not None else f"arch {k}")
    _integer_epochs(ax, epochs)
    ax.set_ylabel(name.replace("_", " "), fontsize=8)
    ax.set_title(name.replace("_", " "), fontsize=9)
  axes[0][0].legend(fontsize=6)
  fig.suptitle(title, fontsize=10)
  return _save(fig, plt, path)


def trajectories(series: Mapping[str, Mapping[str, np.ndarray]], epochs: Sequence[int],
                 metrics: Sequence[str], path, *, title: str = "") -> pathlib.Path:
  """Figure 2 style: per metric, the median and interquartile band of each
  accuracy group over epochs."""
  plt = _pyplot()
  fig, panels = _grid(plt, len(metrics))
  for ax, m in zip(panels, metrics):
    for group, by_metric in series.items():
      v = by_metric[m]
      lo, med, hi = np.nanpercentile(v, [25, 50, 75], axis=0)
      ax.plot(epochs, med, label=f"{group} (n={len(v)})")
      ax.fill_between(epochs, lo, hi, alpha=0.2)
    ax.set_title(m, fontsize=9)
    ax.set_xticks(list(epochs))
    ax.set_xlabel("epoch", fontsize=7)
    ax.tick_params(labelsize=7)
  panels[0].legend(fontsize=7)
  fig.suptitle(title, fontsize=10)
  return _save(fig, plt, path)


def metric_scatter(scores: Mapping[str, np.ndarray], target: np.ndarray, path, *, target_label: str,
                   title: str = "") -> pathlib.Path:
  """One panel per score column: the score of each arch against ``target``
  (accuracy or parameter count), Kendall τ ± s.e. in the panel's title
  (NaN scores ranked last, non-finite ones left out of the plot)."""
  plt = _pyplot()
  fig, panels = _grid(plt, len(scores))
  target = np.asarray(target, np.float64)
  for ax, (name, s) in zip(panels, scores.items()):
    s = np.asarray(s, np.float64)
    tau = stats.kendall_tau(s, target, nan_policy="last")
    finite = np.isfinite(s)
    ax.scatter(s[finite], target[finite], s=10)
    ax.set_title(f"{name}: τ = {tau.value:.2f} ± {tau.se:.2f}", fontsize=9)
    ax.set_xlabel(name, fontsize=7)
    ax.set_ylabel(target_label, fontsize=7)
    ax.tick_params(labelsize=7)
  fig.suptitle(title, fontsize=10)
  return _save(fig, plt, path)


def kernel_heatmaps(kernels: Mapping[str, np.ndarray], labels: np.ndarray, path, *, title: str = "") -> pathlib.Path:
  """One panel per kernel ([N, N], e.g. per BN mode), samples sorted by
  label so class blocks show."""
  plt = _pyplot()
  order = np.argsort(np.asarray(labels), kind="stable")
  fig, axes = plt.subplots(1, len(kernels), figsize=(3.6 * len(kernels), 3.4), squeeze=False)
  for ax, (name, k) in zip(axes[0], kernels.items()):
    image = ax.imshow(np.asarray(k)[np.ix_(order, order)], cmap="viridis")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title(f"Θ, {name} BN (sorted by label)", fontsize=9)
    ax.set_xlabel("sample", fontsize=7)
    ax.set_ylabel("sample", fontsize=7)
  fig.suptitle(title, fontsize=8)
  return _save(fig, plt, path)
