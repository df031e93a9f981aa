"""Every search space by name, in one table: how to build it, which
benchmark table holds its ground truth, and its reduced networks.

The configs read it for their vocabulary, default ground truth and the
``cpu``/``small`` network sizes; the studies' setup builds spaces with it.
A new space is a module of its own, a class implementing ``api.Space``
and one ``SpaceEntry`` here.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

from ntkjax.spaces import api, nb101, nds

__all__ = ["SpaceEntry", "SPACES", "NAMES", "get", "build"]

# The image datasets' names in the NB201 tables (the other spaces have CIFAR-10 only).
_NB201_TRUTH_DATASET = {"digits16": "cifar10-valid", "cifar10": "cifar10-valid", "cifar100": "cifar100",
                        "ImageNet16-120": "ImageNet16-120"}


class SpaceEntry(NamedTuple):
  """A space's registry entry.

  ``build(num_classes, truth, **options)`` returns the ``api.Space``;
  ``options`` are the space fields of a config (each builder reads its
  own and ignores the rest). ``truth(dataset)`` gives the default ground
  truth for images of ``dataset`` (a ``data.load`` name): the data-home
  benchmark table (``data_home.TABLES``), its dataset, split and epochs,
  and the format of the space's benchmark files (for a ``path`` instead).
  ``reduced`` maps a config size (``cpu``, ``small``) to the option values
  of the reduced network CPU runs use; ``network(**options)`` says in words
  which network the options build, and whether it is reduced.
  ``needs_truth``: archs are drawn from a benchmark's universe, so the space
  cannot be built without one; ``stand_in()`` is then a one-arch ground
  truth (no accuracy) for planning a run before its benchmark file is
  there. ``flops``: the space counts forward FLOPs
  (the ``flops`` proxy).
  """
  name: str
  description: str
  build: Callable[..., api.Space]
  truth: Callable[[str], Mapping[str, Any]]
  reduced: Mapping[str, Mapping[str, int]]
  network: Callable[..., str]
  needs_truth: bool = False
  flops: bool = False
  stand_in: Callable[[], Any] | None = None


def _nb201(num_classes, truth, *, C, N, variant, init, select, **_):
  return api.NB201Space(num_classes, C=C, N=N, variant=variant, init_scheme=init,
                        official_index=dict(truth.index) if truth is not None else None, select=select)


def _nb101(num_classes, truth, *, stem_channels, num_stacks, modules_per_stack, init, masked, **_):
  return api.NB101Space(truth.universe, num_classes, stem_channels=stem_channels, num_stacks=num_stacks,
                        modules_per_stack=modules_per_stack, init_scheme=init, masked=masked)


def _nds(space):
  def build(num_classes, truth, *, width, depth, init, op_affine, masked=False, **_):
    return api.NDSSpace(space, num_classes, archs=truth.universe if truth is not None else None, width=width,
                        depth=depth, init_scheme=init, op_affine=op_affine,
                        record_index=dict(truth.index) if truth is not None else None, masked=masked)
  return build


def _nb101_stand_in():
  """NB101's largest kind of cell (five 3x3 convolutions in a chain, each
  at the module's full width) as a one-spec universe: a plan without the
  benchmark file sizes its memory on it."""
  from ntkjax import ground_truth
  n = 7
  matrix = np.eye(n, k=1, dtype=int)
  spec = nb101.Spec.create(matrix, ["input"] + ["conv3x3-bn-relu"] * 5 + ["output"])
  return ground_truth.GroundTruth({spec.hash: math.nan}, {}, "cifar10", "valid", 108,
                                  "a stand-in spec (five 3x3 convolutions in a chain): no benchmark table",
                                  "nb101", {spec.hash: spec})


def _nb201_network(*, C, N, variant, **_):
  size = "the benchmark's size" if (C, N) == (16, 5) else "reduced: the benchmark's is C=16, N=5"
  return f"NB201 {variant} network, C={C}, N={N} ({size})"


def _nb101_network(*, stem_channels, num_stacks, modules_per_stack, **_):
  official = (stem_channels, num_stacks, modules_per_stack) == (128, 3, 3)
  size = "the benchmark's size" if official else "reduced: the benchmark's is 128, 3 x 3"
  return f"NB101 network, {stem_channels} stem channels, {num_stacks} stacks of {modules_per_stack} modules ({size})"


def _nds_network(space):
  def network(*, width, depth, **_):
    size = f"width {width}, depth {depth}" if width and depth else "each cell's own width and depth"
    return f"NDS {space} network, {size}"
  return network


def _fixed(table, dataset, split, epochs, **reader):
  return lambda _: {"table": table, "dataset": dataset, "split": split, "epochs": epochs, **reader}


_NDS_REDUCED = {"cpu": {"width": 8, "depth": 5}, "small": {"width": 8, "depth": 5}}

SPACES: dict[str, SpaceEntry] = {e.name: e for e in (
    SpaceEntry("nb201", "NAS-Bench-201 (ops as data: one compilation for all 15,625 archs)", _nb201,
               lambda dataset: {"table": "nb201", "dataset": _NB201_TRUTH_DATASET[dataset], "split": "test",
                                "epochs": 200, "format": "nb201"},
               {"cpu": {"C": 8, "N": 1}, "small": {"C": 4, "N": 1}}, _nb201_network, flops=True),
    SpaceEntry("nb101", "NAS-Bench-101 over a benchmark's specs (108-epoch accuracy)", _nb101,
               _fixed("nb101", "cifar10", "valid", 108, format="nb101_json"),
               {"cpu": {"stem_channels": 16, "modules_per_stack": 1},
                "small": {"stem_channels": 8, "modules_per_stack": 1}}, _nb101_network, needs_truth=True,
               flops=True, stand_in=_nb101_stand_in),
    # DARTS's default ground truth is NB301's surrogate, a stand-in for NDS-DARTS (table nds_darts).
    SpaceEntry("nds_darts", "NDS DARTS cells (default truth: the NAS-Bench-301 surrogate)", _nds("darts"),
               _fixed("nb301_darts", "cifar10", "valid", 100, format="nb301_naslib"), _NDS_REDUCED,
               _nds_network("DARTS")),
    *(SpaceEntry(f"nds_{s}", f"NDS {s} cells", _nds(s),
                 _fixed(f"nds_{s}", "cifar10", "test", 0, format="nds_json", nds_space=s), _NDS_REDUCED,
                 _nds_network(s))
      for s in nds.SPACES if s != "darts"),
)}
NAMES: tuple[str, ...] = tuple(SPACES)


def get(name: str) -> SpaceEntry:
  """The entry of space ``name``; ValueError listing the known ones."""
  if name not in SPACES:
    raise ValueError(f"unknown space {name!r}; known: {', '.join(NAMES)}")
  return SPACES[name]


def build(name: str, num_classes: int, truth=None, **options) -> api.Space:
  """Space ``name`` for ``num_classes`` classes over ``truth`` (a
  ``ground_truth.GroundTruth`` or None) with the config's space options."""
  entry = get(name)
  if truth is not None and truth.space != name:
    raise ValueError(f"space {name!r} cannot be scored against {truth.source}, a ground truth of {truth.space}")
  if entry.needs_truth and truth is None:
    raise ValueError(f"space {name!r} draws its archs from a benchmark's: give it a ground truth "
                     f"(ground_truth.table or ground_truth.path)")
  return entry.build(num_classes, truth, **options)
