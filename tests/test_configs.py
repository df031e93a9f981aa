"""The experiment configs: one variant vocabulary, placeholders, every field
the studies read."""

import importlib

import pytest

from ntkjax.configs import common
from ntkjax.studies import setup

STUDIES = ("score", "rank_correlation", "deciles", "init_schemes", "post_training", "kernel_evolution",
           "trajectories", "search", "sweep")
NB201_ONLY = ("deciles", "init_schemes", "sweep")


@pytest.mark.parametrize("name", STUDIES)
def test_every_variant_of_the_vocabulary_parses(name):
  mod = importlib.import_module(f"ntkjax.configs.{name}")
  spaces = ("nb201",) if name in NB201_ONLY else common.SPACES
  for size in (None,) + common.SIZES:
    for dataset in (None,) + common.DATASETS:
      for space in (None,) + spaces:
        arg = ",".join(t for t in (size, dataset, space) if t)
        c = mod.get_config(arg)
        assert tuple(c.bn_modes) and set(c.bn_modes) <= {"train", "eval"}
        assert c.space.name == (space or "nb201")
        assert c.ntk.chunk_size is None  # a placeholder, not a 0 sentinel
        setup.check_config(c)  # every shipped variant is in range
  pc = mod.get_config("paper_code")
  assert (pc.space.variant, pc.ntk.param_filter, pc.metrics.compat) == ("paper_code",) * 3
  with pytest.raises(ValueError, match="unknown config variant 'huge'"):
    mod.get_config("huge")
  with pytest.raises(ValueError, match="names 2 sizes"):
    mod.get_config("small,cpu")


def test_score_variants_work_as_the_readme_says():
  from ntkjax.configs import score
  default = score.get_config()
  assert default.data.name == "digits16" and default.ground_truth.table is None
  cpu = score.get_config("cpu")
  assert cpu.to_dict() == default.to_dict()  # cpu is the default size
  c10 = score.get_config("cifar10")
  assert c10.data.name == "cifar10" and c10.data.root is None  # found in the data home
  assert (c10.ground_truth.table, c10.ground_truth.path, c10.ground_truth.dataset) == ("nb201", None, "cifar10-valid")
  assert score.get_config("full").space.C == 16 and score.get_config("small").space.num_archs == 5
  nb101 = score.get_config("small,nb101")
  assert nb101.ground_truth.table == "nb101" and nb101.space.stem_channels == 16


def test_study_defaults_finish_on_a_cpu_and_full_is_explicit():
  from ntkjax.configs import post_training, rank_correlation
  assert rank_correlation.get_config().to_dict() == rank_correlation.get_config("cpu").to_dict()
  assert rank_correlation.get_config("full").space.num_archs == 1000
  assert post_training.get_config().train.num_images == 2560
  assert post_training.get_config("full").train.num_images is None  # the whole training split
  assert rank_correlation.get_config("imagenet16,full").data.batch_size == 512


def test_nb201_only_studies_refuse_other_spaces():
  from ntkjax.configs import deciles, sweep
  with pytest.raises(ValueError, match="runs on nb201, not 'nds_darts'"):
    deciles.get_config("small,nds_darts")
  with pytest.raises(ValueError, match="runs on nb201, not 'nb101'"):
    sweep.get_config("nb101")


def test_sweep_sizes_and_arch_lists(tmp_path):
  from ntkjax.configs import sweep as sweep_config
  from ntkjax.spaces import nb201
  from ntkjax.studies import sweep
  full = sweep_config.get_config("full")
  assert (full.sweep.num_archs, full.data.name, full.space.C, full.space.N) == (None, "cifar10", 16, 5)
  assert len(sweep.sweep_archs(full)) == 15625
  small = sweep_config.get_config("small")
  assert small.data.name == "digits16" and small.ground_truth.table is None
  picked = sweep.sweep_archs(small)
  assert picked == nb201.all_archs()[::976][:16] and len(set(picked)) == 16
  listed = tmp_path / "archs.txt"
  a = nb201.all_archs()
  listed.write_text(f"{a[5]}\n\n{a[2]}\n")
  small.sweep.archs, small.sweep.num_archs = str(listed), None
  assert sweep.sweep_archs(small) == [a[5], a[2]]
  listed.write_text(f"{a[5]}\n|bogus~0|\n")
  with pytest.raises(ValueError, match=r"archs.txt:2: .*bogus"):
    sweep.sweep_archs(small)
  listed.write_text(f"{a[5]}\n{a[5]}\n")
  with pytest.raises(ValueError, match="lists an arch twice"):
    sweep.sweep_archs(small)
  small.sweep.archs = str(tmp_path / "none.txt")
  with pytest.raises(FileNotFoundError, match="none.txt"):
    sweep.sweep_archs(small)


def test_documented_variants_keep_their_fields():
  """The values behind docs/results.md's commands."""
  from ntkjax.configs import deciles, init_schemes, kernel_evolution, post_training, rank_correlation, search
  rc = rank_correlation.get_config("cpu,paper_code")
  assert (rc.space.num_archs, rc.data.batch_size, rc.space.C, rc.space.N) == (200, 16, 16, 5)
  assert rc.space.select == "switch"  # one arch at a time: only the selected ops run
  assert rank_correlation.get_config("cpu,nb101").space.stem_channels == 16
  d = deciles.get_config("cpu")
  assert (d.per_decile, d.num_seeds, tuple(d.bn_modes), d.data.batch_size) == (10, 5, ("eval",), 16)
  i = init_schemes.get_config("cpu")
  assert (i.space.num_archs, tuple(i.bn_modes)) == (100, ("eval",))
  pt = post_training.get_config("cpu")
  assert (pt.space.num_archs, pt.space.C, pt.train.batch_size, pt.epochs) == (50, 8, 256, (1, 3))
  ke = kernel_evolution.get_config("cpu")
  assert (ke.space.num_archs, ke.ntk.param_filter, tuple(ke.bn_modes)) == (5, "paper_code", ("eval",))
  s = search.get_config("cpu")
  assert (s.rs.num_archs, s.rea.max_evals, s.num_seeds, s.budget_s) == (20, 40, 3, None)
  assert (s.ground_truth.table, s.ground_truth.dataset, s.ground_truth.release) == ("nb201", "cifar10", "nats")
