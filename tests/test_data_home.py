"""The data home: datasets and tables found by name, one clear error when
missing, and what ``ntkjax-data`` reports from it."""

import csv

import pytest

from ntkjax import data_home, ground_truth
from ntkjax.configs import rank_correlation as rc_config
from ntkjax.configs import search as search_config
from ntkjax.experiments import data as data_main
from ntkjax.spaces import nb201
from ntkjax.studies import setup


@pytest.fixture
def home(tmp_path, monkeypatch):
  """An empty data home of its own (NTKJAX_DATA), the only one searched."""
  monkeypatch.setenv(data_home.ENV, str(tmp_path))
  return tmp_path


def _nb201_csv(path, column="valid_test_top1"):
  path.parent.mkdir(parents=True, exist_ok=True)
  archs = nb201.all_archs()
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["arch", "cellstr", column])
    w.writerows((i, a, 50 + i % 40) for i, a in enumerate(archs))


def test_ntkjax_data_is_the_only_home_when_set(home):
  assert data_home.homes() == [home]


def test_a_missing_entry_names_the_data_the_layout_and_the_source(home):
  with pytest.raises(data_home.MissingData) as e:
    data_home.images("cifar100")
  msg = str(e.value)
  assert "CIFAR-100 images" in msg and str(home / "cifar100") in msg
  assert "cifar-100-python.tar.gz" in msg and data_home.ENV in msg
  with pytest.raises(data_home.MissingData, match=r"NAS-Bench-201 accuracies \(cifar10-valid test, 200 epochs\)"
                     r".*NATS-tss-v1_0-3ffb9-simple.*NAS-Bench-201-v1_0-e61699.pth"):
    data_home.truth("nb201", dataset="cifar10-valid", split="test", epochs=200)
  with pytest.raises(data_home.MissingData, match="nasbench_only108.tfrecord"):
    data_home.truth("nb101", dataset="cifar10", split="valid", epochs=108)
  with pytest.raises(ValueError, match="unknown benchmark table 'nb999'; known: nb201"):
    data_home.truth("nb999", dataset="cifar10", split="test", epochs=200)
  with pytest.raises(ValueError, match="has no cifar100/valid accuracy after 12 epochs"):
    data_home.truth("nb101", dataset="cifar100", split="valid", epochs=12)


def test_tables_are_found_with_their_columns_and_the_release_preferred(home):
  _nb201_csv(home / "nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv")
  path, reader = data_home.truth("nb201", dataset="cifar10-valid", split="test", epochs=200, release="v1x")
  assert path.name == "nb201_v1x_naswot_cifar10_params_jacov.csv"
  assert reader["accuracy_column"] == "valid_test_top1" and reader["arch_column"] == "cellstr"
  truth = ground_truth.read(path, **reader)
  assert len(truth) == 15625 and truth.index[nb201.all_archs()[7]] == 7
  # NATS preferred for cifar10/test, but only v1x is there: v1x's plain-CIFAR-10 column
  path, reader = data_home.truth("nb201", dataset="cifar10", split="test", epochs=200, release="nats")
  assert reader["accuracy_column"] == "test_top1" and reader["release"] == "v1x"
  nats = home / "nasbench201/nats_tss/nb201_nats_tss_test_acc_200ep_avg_all3.csv"
  _nb201_csv(nats, "CIFAR10TestAccuracy200Epochs")
  path, reader = data_home.truth("nb201", dataset="cifar10", split="test", epochs=200, release="nats")
  assert path == nats and reader["release"] == "nats"


def test_configs_read_their_data_from_the_home(home):
  c = rc_config.get_config("cifar100")
  assert c.data.root is None and c.ground_truth.table == "nb201" and c.ground_truth.path is None
  (home / "cifar100" / "cifar-100-python").mkdir(parents=True)
  (home / "cifar100" / "cifar-100-python" / "test").write_bytes(b"x")
  assert setup.data_root(c.data) == str(home / "cifar100")
  missing = {i.what: i for i in setup.inputs(c)}
  assert missing["cifar100 images"].path == home / "cifar100"
  assert missing["nb201 table (cifar100 test)"].path is None
  assert "nasbench201_cifar100.csv" in missing["nb201 table (cifar100 test)"].error
  with pytest.raises(data_home.MissingData, match="NAS-Bench-201 accuracies"):
    setup.truth_from_config(search_config.get_config("cifar10").ground_truth)


def test_ntkjax_data_reports_each_entry_and_variant(home):
  _nb201_csv(home / "nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv")
  text = data_main.overview()
  assert f"Data homes, searched in order: {home}" in text
  assert "present  nb201" in text and "MISSING  cifar10 " in text
  # compare reads finished runs: one line for it, never a grid without a row
  assert "  compare: no dataset or benchmark table of its own" in text
  grids = text.split("\n\n  ")[1:]
  assert grids and all(len(g.splitlines()) >= 3 for g in grids if not g.startswith("compare:"))
  assert data_main.report_variant("score", "") == (True, "")  # digits: nothing to find
  ready, why = data_main.report_variant("rank_correlation", "cifar10")
  assert not ready and "CIFAR-10 images not found" in why
  with pytest.raises(ValueError, match="unknown experiment 'scores'"):
    data_main.report_variant("scores", "")


def test_the_checkout_s_shared_data_is_a_home_without_ntkjax_data(monkeypatch, shared_data):
  root = shared_data("cifar10").parent
  if root.resolve() != data_home._CHECKOUT_SHARED.resolve():
    pytest.skip(f"the shared data read here ({root}) is not the checkout's ../shared/data")
  monkeypatch.delenv(data_home.ENV, raising=False)
  assert root.resolve() in [h.resolve() for h in data_home.homes()]
  assert data_main.report_variant("rank_correlation", "cifar10") == (True, "")


def test_a_users_csv_is_labelled_with_its_file_column_and_the_runs_dataset(tmp_path):
  path = tmp_path / "my_accuracies.csv"
  archs = nb201.all_archs()[:3]
  with open(path, "w", newline="") as f:
    csv.writer(f).writerows([["arch", "top1"], *[[a, 50 + i] for i, a in enumerate(archs)]])
  gt = rc_config.get_config("small").ground_truth  # its defaults name NB201's cifar10-valid release
  gt.update(path=str(path), format="nb201", arch_column="arch", accuracy_column="top1")
  truth = setup.truth_from_config(gt, "digits16")
  assert (truth.dataset, truth.split, truth.source) == ("digits16", "top1", "my_accuracies.csv (column 'top1')")
  assert len(truth) == 3 and truth[archs[2]] == 52
  assert "cifar10-valid" not in f"{truth.dataset} {truth.split} {truth.source}"
