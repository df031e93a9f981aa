"""Benchmark ground truth: architecture key -> trained accuracy.

A ``GroundTruth`` is one column of a benchmark: accuracies (seed means, in
percent) of architectures for a (dataset, split, epochs) from one release,
looked up by the architecture's key (NB201 arch strings, NB101 graph hashes,
``nds.encode`` strings), with the official index where the source has it and,
for NB101 and NDS, the ``universe``: the spec or ``nds.Arch`` behind each key.
Every reader returns one; ``read(path, format=...)`` picks the reader.

Readers refuse what they cannot trust and name the file and line or record:
NaN or infinite accuracies, an architecture listed twice, a file that is not
text, a record without a field, columns of different lengths.

Releases (they differ on about 2,450 of the 15,625 architectures, by up to
3-5 points; Kendall τ between them is about 0.99):

* ``v1x``: the original ``NAS-Bench-201-v1_0/v1_1 .pth`` files. The paper
  used ``NAS-Bench-201-v1_0-e61699.pth`` with ``hp='200'``; CSV exports of it
  are read by ``read_csv``.
* ``nats``: NATS-Bench topology search space (``NATS-tss-v1_0-3ffb9``). Its
  "simple" archive (one ``NNNNNN.pickle.pbz2`` per architecture plus
  ``meta.pickle.pbz2``) is read by ``read_nats_simple`` without torch.

Datasets and splits, as the NB201/NATS APIs define them:

* ``cifar10-valid``: trained on 25k CIFAR-10 training images. ``valid`` is
  the other 25k (``x-valid``); ``test`` is the official 10k test set
  (``ori-test``). The paper reports this ``test`` number.
* ``cifar10``: trained on all 50k; only ``test`` (``ori-test``) exists.
* ``cifar100`` / ``ImageNet16-120``: the official test set is split in two
  halves, ``valid`` (``x-valid``) and ``test`` (``x-test``).
"""

from __future__ import annotations

import ast
import base64
import csv
import io
import json
import math
import pathlib
import re
import struct
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import jax
import numpy as np

from ntkjax import pickles, tfrecord
from ntkjax.spaces import nb101, nb201, nds

__all__ = ["DATASETS", "FORMATS", "GroundTruth", "NotInGroundTruth", "read", "load", "read_csv", "read_nats_simple",
           "deciles", "sample_per_decile", "read_nb101_tfrecord", "read_nb101_json", "read_nb101_naslib",
           "naslib_nb101_records", "read_nds_json", "read_nb301_naslib"]

DATASETS = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
FORMATS = ("nb201", "nb101_json", "nb101_tfrecord", "nb101_naslib", "nds_json", "nb301_naslib")

# (dataset, split) -> NATS eval names, first present wins.
_NATS_EVAL = {
    ("cifar10-valid", "valid"): ("x-valid",),
    ("cifar10-valid", "test"): ("ori-test",),
    ("cifar10", "test"): ("ori-test",),
    ("cifar100", "valid"): ("x-valid",),
    ("cifar100", "test"): ("x-test", "ori-test"),
    ("ImageNet16-120", "valid"): ("x-valid",),
    ("ImageNet16-120", "test"): ("x-test", "ori-test"),
}


class NotInGroundTruth(KeyError):
  """An architecture that a ground truth does not hold (a user error: the
  wrong table for the archs, or an arch string of another space)."""

  def __str__(self) -> str:  # KeyError quotes its message
    return str(self.args[0]) if self.args else ""


class GroundTruth(NamedTuple):
  """Accuracies (percent) of one benchmark column, keyed by architecture."""
  accuracy: Mapping[str, float]     # arch key -> seed-mean accuracy
  index: Mapping[str, int]          # arch key -> official index (may be empty)
  dataset: str
  split: str
  epochs: int
  source: str                       # file or directory read, and release
  space: str = "nb201"              # keys: NB201 arch strings, NB101 graph hashes, or nds.encode strings
  universe: Mapping[str, Any] | None = None  # NB101: key -> nb101.Spec; NDS: key -> nds.Arch

  def __len__(self):
    return len(self.accuracy)

  def __contains__(self, arch):
    return arch in self.accuracy

  def __getitem__(self, arch: str) -> float:
    try:
      return self.accuracy[arch]
    except KeyError:
      if self.space == "nb201":
        nb201.validate(arch)  # a malformed string gets the codec's error
      raise NotInGroundTruth(f"{arch} is not in the ground truth {self.source} "
                     f"({self.dataset}/{self.split}, {len(self)} archs)") from None

  def lookup(self, archs: Iterable[str]) -> np.ndarray:
    return np.array([self[a] for a in archs], np.float64)

  def arch_of(self, index: int) -> str:
    for a, i in self.index.items():
      if i == index:
        return a
    raise NotInGroundTruth(f"no architecture with official index {index} in {self.source}")


class _Collector:
  """Accuracies as a reader finds them: refuses non-finite values and
  repeated keys, naming where each came from."""

  def __init__(self, path):
    self.path = path
    self.accuracy: dict[str, float] = {}
    self.index: dict[str, int] = {}
    self.universe: dict[str, Any] = {}
    self._where: dict[str, str] = {}

  def add(self, key: str, accuracy, where: str, *, index: int | None = None, member=None) -> None:
    value = float(accuracy)
    if not math.isfinite(value):
      raise ValueError(f"{self.path}: {where}: accuracy {accuracy!r} of {key} is not a finite number")
    if key in self.accuracy:
      raise ValueError(f"{self.path}: {where}: {key} is listed twice (first at {self._where[key]})")
    self.accuracy[key], self._where[key] = value, where
    if index is not None:
      self.index[key] = index
    if member is not None:
      self.universe[key] = member

  def result(self, dataset, split, epochs, source, space="nb201", *,
             fractions: bool | None = None) -> GroundTruth:
    """``fractions``: accuracies are in [0, 1] (True), in percent (False),
    or fractions if none exceeds 1 (None)."""
    if not self.accuracy:
      raise ValueError(f"{self.path} has no records")
    acc = self.accuracy
    if fractions or (fractions is None and max(acc.values()) <= 1.0):
      acc = {a: 100.0 * v for a, v in acc.items()}
    return GroundTruth(acc, self.index, dataset, split, epochs, source, space,
                       self.universe if space != "nb201" else None)


def _check_dataset_split(dataset, split):
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
  if (dataset, split) not in _NATS_EVAL:
    splits = [s for d, s in _NATS_EVAL if d == dataset]
    raise ValueError(f"{dataset} has no split {split!r}; it has {splits}")


def _existing(path, what: str = "ground-truth file") -> pathlib.Path:
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{what} {path} does not exist")
  return path


def _text(path: pathlib.Path) -> str:
  try:
    return path.read_text(encoding="utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"{path} is not a UTF-8 text file ({e.reason} at byte {e.start}); "
                     "is it the right file?") from None


def read_csv(path, *, arch_column: str, accuracy_column: str, index_column: str | None = None,
             dataset: str = "cifar10-valid", split: str = "test", epochs: int = 200,
             release: str = "v1x") -> GroundTruth:
  """A ground-truth column from a CSV table, columns named by the caller.

  E.g. the shared v1x table: ``arch_column='cellstr'``,
  ``accuracy_column='valid_test_top1'``, ``index_column='arch'`` is
  cifar10-valid test accuracy, the paper's ground truth. Accuracies in
  [0, 1] are rescaled to percent. Every arch string is validated.
  """
  _check_dataset_split(dataset, split)
  path = _existing(path)
  if not path.is_file():
    raise ValueError(f"ground-truth table {path} is not a file")
  reader = csv.DictReader(io.StringIO(_text(path), newline=""))
  columns = [c for c in (arch_column, accuracy_column, index_column) if c]
  missing = [c for c in columns if c not in (reader.fieldnames or [])]
  if missing:
    raise ValueError(f"{path} has no column(s) {missing}; columns: {reader.fieldnames}")
  found = _Collector(path)
  for line, r in enumerate(reader, start=2):
    arch = r[arch_column]
    try:
      nb201.validate(arch)
      acc = float(r[accuracy_column])
      index = int(r[index_column]) if index_column else None
    except (ValueError, TypeError) as e:
      raise ValueError(f"{path}:{line}: {e}") from e
    found.add(arch, acc, f"line {line}", index=index)
  return found.result(dataset, split, epochs, f"{path} ({release})")


_NATS_FILE = re.compile(r"^(\d{6})\.pickle\.pbz2$")


def _nats_mean(record, path, dataset, split, epochs):
  results = record.get("all_results")
  if not isinstance(results, Mapping):
    raise ValueError(f"{path}: no 'all_results' for hp={epochs}")
  seeds = [v for (d, _), v in results.items() if d == dataset]
  if not seeds:
    raise ValueError(f"{path}: no {dataset} results for hp={epochs}")
  values = []
  for res in seeds:
    accs = res["eval_acc1es"]
    name = next((n for n in _NATS_EVAL[(dataset, split)] if f"{n}@{res['epochs'] - 1}" in accs), None)
    if name is None:
      raise ValueError(f"{path}: {dataset} seed {res.get('seed')} lacks {_NATS_EVAL[(dataset, split)]} "
                       f"at epoch {res['epochs'] - 1}")
    values.append(float(accs[f"{name}@{res['epochs'] - 1}"]))
  return float(np.mean(values))


def read_nats_simple(directory, *, dataset: str = "cifar10-valid", split: str = "test",
                     epochs: int = 200, indices: Sequence[int] | None = None) -> GroundTruth:
  """Ground truth from a NATS-Bench tss "simple" archive directory.

  Reads ``meta.pickle.pbz2`` (all 15,625 arch strings) and the per-arch
  files present (or exactly ``indices``; a missing one is an error), and
  averages the final-epoch accuracy over seeds, as
  ``api.get_more_info(i, dataset, hp=epochs, is_random=False)`` does.
  ``epochs`` is the training schedule, 12 or 200.
  """
  _check_dataset_split(dataset, split)
  if epochs not in (12, 200):
    raise ValueError(f"NATS tss has hp=12 and hp=200 schedules, not {epochs}")
  directory = pathlib.Path(directory)
  meta_path = directory / "meta.pickle.pbz2"
  if not meta_path.is_file():
    raise FileNotFoundError(f"{meta_path} does not exist; is {directory} a NATS-tss simple archive?")
  meta = pickles.load(meta_path)
  archs = meta.get("meta_archs") if isinstance(meta, dict) else None
  if not archs or len(archs) != 15625:
    raise ValueError(f"{meta_path}: expected 'meta_archs' with 15,625 arch strings")
  if indices is None:
    indices = sorted(int(m.group(1)) for p in directory.iterdir() if (m := _NATS_FILE.match(p.name)))
  found = _Collector(directory)
  for i in indices:
    path = directory / f"{i:06d}.pickle.pbz2"
    record = pickles.load(path)
    hp = record.get(str(epochs)) if isinstance(record, Mapping) else None
    if hp is None:
      raise ValueError(f"{path}: no hp={epochs} entry")
    if hp.get("arch_str") != archs[i] or hp.get("arch_index") != i:
      raise ValueError(f"{path}: holds arch {hp.get('arch_index')} {hp.get('arch_str')}, "
                       f"meta says {i} {archs[i]}")
    found.add(archs[i], _nats_mean(hp, path, dataset, split, epochs), path.name, index=i)
  return found.result(dataset, split, epochs, f"{directory} (nats)")


def deciles(truth: GroundTruth, archs: Sequence[str] | None = None) -> list[list[str]]:
  """``archs`` (default: all in ``truth``) split into 10 accuracy deciles,
  lowest first; ties broken by arch string so the split is deterministic."""
  archs = sorted(truth.accuracy) if archs is None else list(archs)
  if len(archs) < 10:
    raise ValueError(f"{len(archs)} archs cannot be split into 10 deciles")
  order = sorted(archs, key=lambda a: (truth[a], a))
  bounds = np.linspace(0, len(order), 11).round().astype(int)
  return [order[bounds[k]:bounds[k + 1]] for k in range(10)]


def sample_per_decile(key: jax.Array, truth: GroundTruth, n: int,
                      archs: Sequence[str] | None = None) -> list[list[str]]:
  """``n`` architectures drawn without replacement from each decile."""
  out = []
  for k, members in enumerate(deciles(truth, archs)):
    if n > len(members):
      raise ValueError(f"decile {k} has {len(members)} archs, fewer than {n}")
    pick = np.asarray(jax.random.choice(jax.random.fold_in(key, k), len(members), (n,), replace=False))
    out.append([members[i] for i in sorted(pick)])
  return out


def load(path, *, dataset: str = "cifar10-valid", split: str = "test", epochs: int = 200,
         arch_column: str = "arch", accuracy_column: str = "accuracy",
         index_column: str | None = None, release: str = "v1x") -> GroundTruth:
  """NB201: ``read_nats_simple`` for a directory holding ``meta.pickle.pbz2``,
  ``read_csv`` (with the column names given) for a file."""
  path = _existing(path)
  if path.is_dir():
    return read_nats_simple(path, dataset=dataset, split=split, epochs=epochs)
  return read_csv(path, arch_column=arch_column, accuracy_column=accuracy_column,
                  index_column=index_column or None, dataset=dataset, split=split, epochs=epochs,
                  release=release)


def read(path, *, format: str = "nb201", dataset: str = "cifar10-valid", split: str = "test",
         epochs: int = 200, arch_column: str = "arch", accuracy_column: str = "accuracy",
         index_column: str | None = None, release: str = "v1x", nds_space: str | None = None) -> GroundTruth:
  """Any benchmark's ground truth by ``format``: ``nb201`` (``load``: a CSV
  or a NATS-tss simple archive), ``nb101_json``, ``nb101_tfrecord``,
  ``nb101_naslib``, ``nds_json`` (needs ``nds_space``) or ``nb301_naslib``. Arguments a
  format does not use are ignored."""
  if format == "nb201":
    return load(path, dataset=dataset, split=split, epochs=epochs, arch_column=arch_column,
                accuracy_column=accuracy_column, index_column=index_column, release=release)
  if format == "nb101_json":
    return read_nb101_json(path, split=split, epochs=epochs)
  if format == "nb101_tfrecord":
    return read_nb101_tfrecord(path, split=split, epochs=epochs)
  if format == "nb101_naslib":
    return read_nb101_naslib(path)
  if format == "nds_json":
    if not nds_space:
      raise ValueError("format 'nds_json' needs nds_space (darts, enas, nasnet, amoeba or pnas)")
    return read_nds_json(path, nds_space)
  if format == "nb301_naslib":
    return read_nb301_naslib(path)
  raise ValueError(f"unknown ground-truth format {format!r}; known: {', '.join(FORMATS)}")


# ----------------------------------------------------------------------------- NAS-Bench-101

_NB101_FIELD = {"valid": 4, "test": 5}  # EvaluationData: validation_accuracy = 4, test_accuracy = 5


def _nb101_split(split: str) -> str:
  if split not in _NB101_FIELD:
    raise ValueError(f"NB101 splits are 'valid' and 'test', not {split!r}")
  return "validation" if split == "valid" else split


def read_nb101_tfrecord(path, *, split: str = "test", epochs: int = 108, check_hash: bool = False,
                        verify_data: bool = False) -> GroundTruth:
  """NB101 ground truth from ``nasbench_only108.tfrecord`` (or the full file).

  Each record is JSON ``[hash, epochs, adjacency bits, ops, base64 ModelMetrics]``
  for one training run; the accuracy is the final evaluation's, averaged over
  the runs (3 per spec) and given in percent. Keys are graph hashes and the
  universe holds their ``nb101.Spec``. ``check_hash`` recomputes every hash
  from its spec (the slow part of reading the whole file).
  """
  _nb101_split(split)
  path = _existing(path)
  runs: dict[str, list[float]] = {}
  specs: dict[str, nb101.Spec] = {}
  for n, record in enumerate(tfrecord.read_records(path, verify_data=verify_data)):
    try:
      key, ep, adjacency, ops, raw = json.loads(record.decode("utf-8"))
      if ep != epochs:
        continue
      evals = tfrecord.decode_message(base64.b64decode(raw)).get(1, [])
      final = tfrecord.decode_message(evals[-1])
      acc = struct.unpack("<d", final[_NB101_FIELD[split]][0])[0]
    except (ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError) as e:
      raise ValueError(f"{path}: record {n} is not an NB101 record: {type(e).__name__}: {e}") from e
    if not math.isfinite(acc):
      raise ValueError(f"{path}: record {n}: accuracy {acc!r} of {key} is not a finite number")
    runs.setdefault(key, []).append(100.0 * acc)
    if key not in specs:
      dim = int(round(len(adjacency) ** 0.5))
      matrix = np.array([int(c) for c in adjacency]).reshape(dim, dim)
      spec = nb101.Spec.create(matrix, ops.split(","))
      if check_hash and spec.hash != key:
        raise ValueError(f"{path}: record {n} has hash {key} but its spec hashes to {spec.hash}")
      specs[key] = spec
  if not runs:
    raise ValueError(f"{path} has no records for {epochs} epochs")
  acc = {k: float(np.mean(v)) for k, v in runs.items()}
  return GroundTruth(acc, {}, "cifar10", split, epochs, f"{path} (nb101)", "nb101", specs)


def _json(path):
  path = _existing(path)
  try:
    return path, json.loads(_text(path))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON: {e}") from e


def _field(path, where: str, record: Mapping, name: str):
  if not isinstance(record, Mapping) or name not in record:
    have = sorted(record) if isinstance(record, Mapping) else type(record).__name__
    raise ValueError(f"{path}: {where} has no field {name!r} (has {have})")
  return record[name]


def read_nb101_json(path, *, split: str = "valid", epochs: int = 108) -> GroundTruth:
  """NB101 ground truth from the JSON exports in ``../shared/data/nasbench101``:
  column lists (``adjacency``, ``operations``, ``key``,
  ``<epochs>_final_validation_accuracy``; op labels -1/0/1/2/-2, -3 padding) or
  ``{hash: {module_adjacency, module_operations, runs_<epochs>: [...]}}``.
  Keys are graph hashes, the universe their specs; accuracies in percent.
  """
  name = _nb101_split(split)
  path, d = _json(path)
  found = _Collector(path)
  if isinstance(d, dict) and "adjacency" in d:
    column = f"{epochs}_final_{name}_accuracy"
    cols = ["adjacency", "operations", "key", column]
    missing = [c for c in cols if c not in d]
    if missing:
      raise ValueError(f"{path} has no column {missing[0]!r}; columns: {sorted(d)}")
    lists = [d[c] for c in cols]
    lengths = {c: len(v) for c, v in zip(cols, lists)}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"{path}: columns have different lengths {lengths}")
    for i, (a, o, key, y) in enumerate(zip(*lists)):
      a, o = np.array(a), np.array(o)
      keep = o != -3
      try:
        spec = nb101.Spec.create(a[np.ix_(keep, keep)], o[keep].tolist())
      except (ValueError, IndexError) as e:
        raise ValueError(f"{path}: record {i} ({key}): {e}") from e
      found.add(key, y, f"record {i}", member=spec)
  elif isinstance(d, dict):
    field = f"final_{name}_accuracy"
    for key, e in d.items():
      where = f"record {key}"
      spec = nb101.Spec.create(_field(path, where, e, "module_adjacency"), _field(path, where, e, "module_operations"))
      runs = _field(path, where, e, f"runs_{epochs}")
      found.add(key, np.mean([_field(path, f"{where} runs_{epochs}[{i}]", r, field) for i, r in enumerate(runs)]),
                where, member=spec)
  else:
    raise ValueError(f"{path}: unrecognised NB101 JSON layout")
  return found.result("cifar10", split, epochs, f"{path} (nb101)", "nb101", fractions=True)


def naslib_nb101_records(path) -> tuple[pathlib.Path, dict[str, tuple[nb101.Spec, Mapping]]]:
  """NASLib's ``zc_nasbench101.json`` records whose scored network is the
  benchmark's (``nb101.naslib_benchmark_records``), keyed by graph hash; a
  file of another layout is an error naming it."""
  path, d = _json(path)
  try:
    return path, nb101.naslib_benchmark_records(d["nasbench101"]["cifar10"])
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(f"{path}: expected NASLib's {{'nasbench101': {{'cifar10': {{tuple: record}}}}}} "
                     f"layout of NB101 records: {e!r}") from e


def read_nb101_naslib(path) -> GroundTruth:
  """The NB101 specs of NASLib's ``zc_nasbench101.json`` whose scored
  network is the benchmark's (``naslib_nb101_records``), with NASLib's
  validation accuracy (one 108-epoch repeat). Keys are graph hashes, the
  universe their specs."""
  path, kept = naslib_nb101_records(path)
  found = _Collector(path)
  for h, (spec, rec) in kept.items():
    found.add(h, rec["val_accuracy"], f"record of graph {h}", member=spec)
  return found.result("cifar10", "valid", 108, f"{path} (NASLib NB101)", "nb101", fractions=False)


# ----------------------------------------------------------------------------- NDS and the DARTS space


def read_nds_json(path, space: str) -> GroundTruth:
  """NDS ground truth (Radosavovic et al. 2019, e.g. ``DARTS.json``): a list
  of records, or a dict whose ``top`` and ``mid`` lists are concatenated.
  A record's ``net`` holds ``genotype``, ``width`` and ``depth``; its
  accuracy is ``100 - test_ep_top1[-1]`` (the final-epoch top-1 error).

  Keys are ``nds.encode`` strings, the universe their ``nds.Arch``;
  ``index`` maps each key to its record position. Errors name the record.
  """
  nds.validate_space(space)
  path, d = _json(path)
  if isinstance(d, dict):
    if not {"top", "mid"} <= set(d):
      raise ValueError(f"{path}: an NDS dict must hold 'top' and 'mid' lists, found {sorted(d)}")
    d = d["top"] + d["mid"]
  if not isinstance(d, list):
    raise ValueError(f"{path}: expected a list of NDS records")
  found = _Collector(path)
  for i, rec in enumerate(d):
    try:
      net = rec["net"]
      arch = nds.Arch(nds.validate(nds.Genotype.from_json(net["genotype"]), space), int(net["width"]),
                      int(net["depth"]))
      y = 100.0 - float(rec["test_ep_top1"][-1])
    except (KeyError, TypeError, ValueError, IndexError) as e:
      raise ValueError(f"{path}: record {i} is not a valid {space} NDS record: {e!r}") from e
    found.add(nds.encode(arch), y, f"record {i}", index=i, member=arch)
  return found.result("cifar10", "test", 0, f"{path} (nds {space})", f"nds_{space}", fractions=False)


def read_nb301_naslib(path, *, width: int = 32, depth: int = 8) -> GroundTruth:
  """The DARTS-space cells of NASLib's ``zc_nasbench301.json`` with their
  NAS-Bench-301 *surrogate* validation accuracies (a stand-in for NDS-DARTS
  ground truth, not trained networks). Keys are ``nds.encode`` strings of
  the cells at NB301's width 32 and depth 8; ``index`` holds NASLib's
  ``idx``; the universe holds each ``nds.Arch``."""
  path, d = _json(path)
  if not isinstance(d, dict) or "cifar10" not in d:
    raise ValueError(f"{path}: expected NASLib's {{'cifar10': {{compact arch: record}}}} layout")
  found = _Collector(path)
  for compact, rec in d["cifar10"].items():
    try:
      arch = nds.from_naslib_compact(ast.literal_eval(compact), width=width, depth=depth)
      y, i = float(rec["val_accuracy"]), int(rec["idx"])
    except (KeyError, TypeError, ValueError, IndexError, SyntaxError) as e:
      raise ValueError(f"{path}: record {compact!r} is not a NASLib NB301 record: {e!r}") from e
    found.add(nds.encode(arch), y, f"record {compact}", index=i, member=arch)
  return found.result("cifar10", "valid", 100, f"{path} (NB301 surrogate)", "nds_darts", fractions=False)
