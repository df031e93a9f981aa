"""The space registry: one entry per space, read by the configs and the
studies' setup alike."""

import pytest

from ntkjax import data_home, spaces
from ntkjax.configs import common
from ntkjax.ground_truth import GroundTruth
from ntkjax.spaces import api


def test_unknown_spaces_are_refused_by_name():
  with pytest.raises(ValueError, match="unknown space 'nb999'; known: nb201, nb101, nds_darts"):
    spaces.get("nb999")


def test_every_entry_names_a_table_and_real_config_fields():
  assert common.SPACES == spaces.NAMES
  fields = set(common.at_init(common.parse()).space)
  for name in spaces.NAMES:
    entry = spaces.get(name)
    assert entry.truth("cifar10")["table"] in data_home.TABLES
    for size in ("cpu", "small"):
      assert set(entry.reduced[size]) <= fields, (name, size)
    config = common.at_init(common.parse(f"small,{name}"))
    common.reduce_network(config, "small")
    assert all(config.space[k] == v for k, v in entry.reduced["small"].items())


def test_build_checks_the_ground_truth_and_passes_the_options():
  options = dict(common.at_init(common.parse("nb201")).space)
  options.pop("name")
  space = spaces.build("nb201", 10, None, **dict(options, C=4, N=1))
  assert isinstance(space, api.NB201Space) and space.net.C == 4 and space.net.select == "switch"
  truth = GroundTruth({}, {}, "cifar10", "valid", 108, "somewhere", "nb101", {})
  with pytest.raises(ValueError, match="space 'nb201' cannot be scored against somewhere, a ground truth of nb101"):
    spaces.build("nb201", 10, truth, **options)
  with pytest.raises(ValueError, match="space 'nb101' draws its archs from a benchmark's"):
    spaces.build("nb101", 10, None, **options)
  nds = spaces.build("nds_enas", 10, None, **dict(options, width=8, depth=5))
  assert isinstance(nds, api.NDSSpace) and nds.name == "nds_enas" and (nds.width, nds.depth) == (8, 5)
