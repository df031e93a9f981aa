"""ntkjax's zero-cost proxies against NAS-Bench-Suite-Zero's published
scores of the same nets (NB201, or the NB101 graphs NASLib scored with the
benchmark's network): per proxy, Kendall τ between the two scores, and each
one's τ against the same accuracy column (NASLib's validation accuracy of
the published nets)."""

from __future__ import annotations

import csv
import pathlib
import time
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from ntkjax import proxies, published_proxies, scoring, stats
from ntkjax.results import ResultsCSV
from ntkjax.spaces import api
from ntkjax.studies import setup

__all__ = ["AgreementRow", "AgreementResult", "agreement", "between", "read_rows", "run"]


class AgreementRow(NamedTuple):
  proxy: str
  n: int
  tau_published: float      # τ(ntkjax, published) over the same nets
  tau_accuracy: float       # τ(ntkjax, accuracy)
  tau_accuracy_se: float
  published_tau_accuracy: float  # τ(published, accuracy) on the same nets


def agreement(rows: Sequence[dict], names: Sequence[str], published: published_proxies.Published
              ) -> list[AgreementRow]:
  """One ``AgreementRow`` per proxy over the rows whose both scores are finite."""
  out = []
  for name in names:
    trio = [(float(r[name]), published.scores[r["arch"]][name], published.accuracy[r["arch"]]) for r in rows]
    trio = np.array([t for t in trio if np.isfinite(t[0]) and np.isfinite(t[1])], np.float64).reshape(-1, 3)
    if len(trio) < 3:
      out.append(AgreementRow(name, len(trio), np.nan, np.nan, np.nan, np.nan))
      continue
    ours, theirs, acc = trio.T
    tau = stats.kendall_tau(ours, acc)
    out.append(AgreementRow(name, len(trio), stats.kendall_tau(ours, theirs).value, tau.value, tau.se,
                            stats.kendall_tau(theirs, acc).value))
  return out


def read_rows(workdir) -> list[dict]:
  """The result rows of a run of this study, in the order they were written."""
  with open(pathlib.Path(workdir) / "results.csv", newline="") as f:
    return list(csv.DictReader(f))


def between(rows_a: Sequence[dict], rows_b: Sequence[dict], names: Sequence[str]) -> dict[str, stats.Correlation]:
  """Per proxy, Kendall τ between two runs' scores of the nets both scored
  (finite in both): e.g. the same nets under another ``space.init_seed`` or
  ``data.seed``, the most that agreement with scores from an unpublished
  init and minibatch can reach."""
  b = {r["arch"]: r for r in rows_b}
  common = [(r, b[r["arch"]]) for r in rows_a if r["arch"] in b]
  if not common:
    raise ValueError("the two runs share no net")
  out = {}
  for name in names:
    pairs = np.array([(float(x[name]), float(y[name])) for x, y in common], np.float64)
    out[name] = stats.kendall_tau(pairs[:, 0], pairs[:, 1], nan_policy="omit")
  return out


class AgreementResult(NamedTuple):
  num_archs: int
  num_images: int
  network: str
  rows: list[AgreementRow]

  def summary(self) -> str:
    lines = [f"Zero-cost proxies of {self.num_archs} nets ({self.network}, {self.num_images} CIFAR-10 "
             "training images) against NAS-Bench-Suite-Zero's published scores of the same nets:",
             f"{'proxy':<10}{'n':>6}{'tau(ours,published)':>21}{'tau(ours,acc)':>15}{'±se':>7}"
             f"{'tau(published,acc)':>20}"]
    for r in self.rows:
      lines.append(f"{r.proxy:<10}{r.n:>6}{r.tau_published:>21.3f}{r.tau_accuracy:>15.3f}{r.tau_accuracy_se:>7.3f}"
                   f"{r.published_tau_accuracy:>20.3f}")
    return "\n".join(lines)

  def tables(self):
    return {"agreement.csv": ([r._asdict() for r in self.rows], AgreementRow._fields)}

  def figures(self):
    return {}


def _sample(published: published_proxies.Published, key: jax.Array, n: int) -> list[str]:
  archs = sorted(published.scores)
  if n > len(archs):
    raise ValueError(f"space.num_archs={n}, but the published table has {len(archs)} nets")
  return [archs[i] for i in np.asarray(jax.random.choice(key, len(archs), (n,), replace=False))]


def run(config: ml_collections.ConfigDict, workdir) -> AgreementResult:
  """Runs the study described by ``configs/proxy_agreement.py`` in ``workdir``."""
  names = proxies.check_names(config.proxies)
  published = published_proxies.load(config.reference.proxies, config.reference.get("accuracy"))
  unpublished = [n for n in names if n not in published.proxies]
  if unpublished:
    raise ValueError(f"proxy {unpublished[0]!r} has no published score; published: {', '.join(published.proxies)}")
  with setup.prepare(config, workdir) as job:
    archs = _sample(published, job.k_arch, config.space.num_archs)
    (job.workdir / "archs.txt").write_text("\n".join(archs) + "\n")
    table = ResultsCSV(job.workdir / "results.csv", ["arch", "position", "seed", *names, "seconds"])
    todo = [(i, a) for i, a in enumerate(archs) if a not in table.done]
    progress = setup.progress(job.space)
    on_network = [n for n in names if proxies.PROXIES[n].network]  # arch proxies alone need no network
    shown = (on_network or names)[0]  # the progress line's proxy
    if todo:
      progress.start(len(archs), already=len(archs) - len(todo))
      x, y = jnp.asarray(job.images), jnp.asarray(job.labels)
      fn = lambda net: scoring.proxies_jit(net, on_network, num_classes=job.num_classes)
      pool = api.Instantiator(job.space, job.k_init, x[:1], {"proxies": fn}, init_per_arch=True,
                              clear_caches=config.space.clear_caches)
      k_zen = scoring.proxy_key(job.k_init)  # as scoring keys zen
      for i, arch in todo:
        t0 = time.perf_counter()
        values, fresh = {}, False
        if on_network:
          inst = pool.get(arch, i)
          values = jax.device_get(inst.fns["proxies"](inst.variables, x, y, jax.random.fold_in(k_zen, i),
                                                      *inst.args))
          pool.release(inst)
          fresh = inst.fresh
        values.update(proxies.arch_proxies(job.space, arch, names))
        seconds = time.perf_counter() - t0
        table.append({"arch": arch, "position": i, "seed": config.seed, "seconds": f"{seconds:.3f}",
                      **{n: repr(float(values[n])) for n in names}})
        progress.tick(arch, seconds, compiled=fresh, note=f"{shown}={float(values[shown]):.4g}")
    rows = [table.by_key()[a] for a in archs]
    network = setup.network_label(config.space)
    return AgreementResult(len(archs), len(job.labels), network, agreement(rows, names, published))
