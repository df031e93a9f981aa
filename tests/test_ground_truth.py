"""NB201 ground-truth readers: real sample files checked against independent
CSV exports, and fixtures written here for the error paths."""

import bz2
import collections
import csv
import json
import pickle

import jax
import numpy as np
import pytest

from ntkjax import ground_truth, pickles
from ntkjax.spaces import nb101, nb201

NATS_SAMPLE = "nasbench201/nats_tss_simple_sample"
V1X = "nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv"


@pytest.mark.parametrize("dataset,column", [
    ("cifar10", "CIFAR10TestAccuracy200Epochs"),
    ("cifar100", "CIFAR100TestAccuracy200Epochs"),
    ("ImageNet16-120", "ImageNetTestAccuracy200Epochs")])
def test_nats_simple_matches_the_nats_csv_export(dataset, column, shared_data):
  export = shared_data("nasbench201/nats_tss/nb201_nats_tss_test_acc_200ep_avg_all3.csv")
  gt = ground_truth.read_nats_simple(shared_data(NATS_SAMPLE), dataset=dataset, split="test")
  rows = list(csv.DictReader(open(export)))
  assert sorted(gt.index.values()) == [0, 11, 284]
  for arch, i in gt.index.items():
    assert rows[i]["ArchitectureString"] == arch
    assert gt[arch] == pytest.approx(float(rows[i][column]), abs=1e-6)


def test_nats_simple_cifar10_valid_both_splits(shared_data):
  sample = shared_data(NATS_SAMPLE)
  export = shared_data("nasbench201/nats_tss/nb201_nats_tss_cifar10valid_avg_full_metrics.csv")
  rows = list(csv.DictReader(open(export)))
  for split, column in (("test", "test-accuracy"), ("valid", "valid-accuracy")):
    gt = ground_truth.read_nats_simple(sample, dataset="cifar10-valid", split=split, indices=[11, 284])
    for arch, i in gt.index.items():
      assert gt[arch] == pytest.approx(float(rows[i][column]), abs=1e-6)
  assert gt.arch_of(11) == rows[11]["arch_str"]


def test_v1x_csv_reader(shared_data):
  gt = ground_truth.read_csv(shared_data(V1X), arch_column="cellstr", accuracy_column="test_top1",
                           index_column="arch", dataset="cifar10")
  assert len(gt) == 15625
  best = max(gt.accuracy, key=gt.accuracy.get)
  assert gt.index[best] == 6111 and gt[best] == pytest.approx(94.3733, abs=1e-3)
  assert set(gt.accuracy) == set(nb201.all_archs())


def _write_nats(directory, records, archs=None):
  directory.mkdir(parents=True, exist_ok=True)
  archs = archs or nb201.all_archs()
  with bz2.open(directory / "meta.pickle.pbz2", "wb") as f:
    pickle.dump({"meta_archs": archs, "total_archs": len(archs), "arch2infos": None,
                 "evaluated_indexes": None}, f)
  for i, accs in records.items():
    results = collections.OrderedDict()
    for seed, acc in enumerate(accs):
      results[("cifar10-valid", 777 + seed)] = {
          "epochs": 200, "seed": 777 + seed, "params": np.float64(0.5),
          "eval_acc1es": {"x-valid@199": np.float64(acc - 1), "ori-test@199": np.float64(acc),
                          "ori-test@100": np.float64(0.0)}}
    rec = collections.OrderedDict(
        [("200", {"arch_index": i, "arch_str": archs[i], "all_results": results})])
    with bz2.open(directory / f"{i:06d}.pickle.pbz2", "wb") as f:
      pickle.dump(rec, f)
  return archs


def test_nats_fixture_seed_mean_and_errors(tmp_path):
  d = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
  archs = _write_nats(d, {3: [80.0, 82.0, 84.0], 7: [50.0, 60.0]})
  gt = ground_truth.read_nats_simple(d)
  assert gt[archs[3]] == pytest.approx(82.0) and gt[archs[7]] == pytest.approx(55.0)
  assert ground_truth.read_nats_simple(d, split="valid")[archs[3]] == pytest.approx(81.0)
  with pytest.raises(KeyError, match="not in the ground truth"):
    gt[archs[4]]
  with pytest.raises(ValueError, match="nor_conv_5x5"):
    gt["|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|"]
  with pytest.raises(FileNotFoundError, match="000009.pickle.pbz2"):
    ground_truth.read_nats_simple(d, indices=[3, 9])
  with pytest.raises(ValueError, match="cifar100 results"):
    ground_truth.read_nats_simple(d, dataset="cifar100")
  with pytest.raises(ValueError, match="cifar10 has no split 'valid'"):
    ground_truth.read_nats_simple(d, dataset="cifar10", split="valid")
  with pytest.raises(ValueError, match="hp=12 entry"):
    ground_truth.read_nats_simple(d, epochs=12)
  raw = (d / "000007.pickle.pbz2").read_bytes()
  (d / "000007.pickle.pbz2").write_bytes(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match="000007.pickle.pbz2.*truncated"):
    ground_truth.read_nats_simple(d)
  with pytest.raises(FileNotFoundError, match="meta.pickle.pbz2"):
    ground_truth.read_nats_simple(tmp_path)


def test_nats_mismatched_arch_and_unsafe_pickle(tmp_path):
  d = tmp_path / "nats"
  archs = _write_nats(d, {5: [70.0]})
  swapped = list(archs)
  swapped[5] = archs[6]
  with bz2.open(d / "meta.pickle.pbz2", "wb") as f:
    pickle.dump({"meta_archs": swapped}, f)
  with pytest.raises(ValueError, match="000005.pickle.pbz2: holds arch 5"):
    ground_truth.read_nats_simple(d)

  class Evil:
    def __reduce__(self):
      return (print, ("side effect",))
  with bz2.open(d / "meta.pickle.pbz2", "wb") as f:
    pickle.dump({"meta_archs": Evil()}, f)
  with pytest.raises(pickles.UnsafePickleError, match="builtins.print"):
    ground_truth.read_nats_simple(d)


def test_csv_errors_name_file_line_and_column(tmp_path):
  p = tmp_path / "gt.csv"
  a = nb201.all_archs()
  p.write_text(f"idx,arch,acc\n0,{a[0]},0.5\n1,|bogus~0|+|x|,0.7\n")
  with pytest.raises(ValueError, match=r"gt.csv:3: .*bogus"):
    ground_truth.read_csv(p, arch_column="arch", accuracy_column="acc")
  p.write_text(f"idx,arch,acc\n0,{a[0]},0.5\n1,{a[1]},n/a\n")
  with pytest.raises(ValueError, match=r"gt.csv:3: .*n/a"):
    ground_truth.read_csv(p, arch_column="arch", accuracy_column="acc")
  with pytest.raises(ValueError, match=r"no column\(s\) \['top1'\]"):
    ground_truth.read_csv(p, arch_column="arch", accuracy_column="top1")
  with pytest.raises(FileNotFoundError, match="missing.csv"):
    ground_truth.read_csv(tmp_path / "missing.csv", arch_column="arch", accuracy_column="acc")
  with pytest.raises(ValueError, match="unknown dataset 'cifar-10'"):
    ground_truth.read_csv(p, arch_column="arch", accuracy_column="acc", dataset="cifar-10")
  p.write_text(f"idx,arch,acc\n0,{a[0]},0.5\n1,{a[1]},0.25\n")
  gt = ground_truth.read_csv(p, arch_column="arch", accuracy_column="acc", index_column="idx")
  assert gt[a[1]] == 25.0 and gt.arch_of(1) == a[1]  # fractions become percent


def test_deciles_partition_by_accuracy():
  archs = nb201.all_archs()[:1003]
  acc = dict(zip(archs, np.random.default_rng(0).permutation(1003).astype(float)))
  gt = ground_truth.GroundTruth(acc, {}, "cifar10-valid", "test", 200, "synthetic")
  ds = ground_truth.deciles(gt)
  assert sum(map(len, ds)) == 1003 and all(100 <= len(d) <= 101 for d in ds)
  for lo, hi in zip(ds, ds[1:]):
    assert max(acc[a] for a in lo) < min(acc[a] for a in hi)
  picks = ground_truth.sample_per_decile(jax.random.key(0), gt, 20)
  assert [len(p) for p in picks] == [20] * 10
  for p, d in zip(picks, ds):
    assert set(p) <= set(d)
  assert picks == ground_truth.sample_per_decile(jax.random.key(0), gt, 20)
  with pytest.raises(ValueError, match="fewer than 200"):
    ground_truth.sample_per_decile(jax.random.key(0), gt, 200)


# ----------------------------------------------------------------------------- NDS / NB301

def _nds_record(genotype, width=16, depth=8, err=(60.0, 10.0)):
  return {"net": {"genotype": genotype.to_json(), "width": width, "depth": depth, "aux": False},
          "test_ep_top1": list(err)}


def test_nds_json_list_and_top_mid(tmp_path):
  from ntkjax.spaces import nds
  a, b = nds.sample(jax.random.key(0), "enas", 2)
  recs = [_nds_record(a.genotype, a.width, a.depth, (50.0, 7.5)), _nds_record(b.genotype, b.width, b.depth)]
  (tmp_path / "list.json").write_text(json.dumps(recs))
  (tmp_path / "topmid.json").write_text(json.dumps({"top": recs[:1], "mid": recs[1:]}))
  for name in ("list.json", "topmid.json"):
    truth = ground_truth.read_nds_json(tmp_path / name, "enas")
    archs = truth.universe
    assert truth[nds.encode(a)] == 92.5 and truth[nds.encode(b)] == 90.0
    assert archs[nds.encode(a)] == a and truth.index[nds.encode(b)] == 1 and truth.space == "nds_enas"


@pytest.mark.parametrize("content, message", [
    ("[{", "not valid JSON"),
    ('{"top": []}', "must hold 'top' and 'mid'"),
    ('[{"net": {"width": 16, "depth": 8}, "test_ep_top1": [10]}]', "record 0 is not a valid enas"),
])
def test_nds_json_errors_name_the_file_and_record(tmp_path, content, message):
  f = tmp_path / "bad.json"
  f.write_text(content)
  with pytest.raises(ValueError, match=message):
    ground_truth.read_nds_json(f, "enas")


def test_nds_json_rejects_ops_outside_the_space(tmp_path):
  from ntkjax.spaces import nds
  f = tmp_path / "darts.json"
  f.write_text(json.dumps([_nds_record(nds.DARTS_V2)]))
  assert len(ground_truth.read_nds_json(f, "darts")) == 1
  with pytest.raises(ValueError, match="record 0 is not a valid enas"):
    ground_truth.read_nds_json(f, "enas")
  with pytest.raises(FileNotFoundError):
    ground_truth.read_nds_json(tmp_path / "missing.json", "darts")


def test_nb301_naslib_cells(shared_data):
  truth = ground_truth.read_nb301_naslib(shared_data("nasbench301_darts_space/naslib_zc_nasbench301_725.json"))
  archs = truth.universe
  assert len(truth) == len(archs) == 725 and truth.space == "nds_darts"
  acc = np.array(list(truth.accuracy.values()))
  assert 91.2 < acc.min() < acc.max() < 94.5
  assert all(a.width == 32 and a.depth == 8 for a in archs.values())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_accuracies_are_refused_with_file_and_line(tmp_path, value):
  a = nb201.all_archs()
  p = tmp_path / "gt.csv"
  p.write_text(f"arch,acc\n{a[0]},0.5\n{a[1]},{value}\n")
  with pytest.raises(ValueError, match=rf"gt.csv: line 3: accuracy .*{value}.* not a finite number"):
    ground_truth.read_csv(p, arch_column="arch", accuracy_column="acc")


def test_a_repeated_arch_is_refused_naming_both_lines(tmp_path):
  a = nb201.all_archs()
  p = tmp_path / "gt.csv"
  p.write_text(f"arch,acc\n{a[0]},0.5\n{a[1]},0.6\n{a[0]},0.7\n")
  with pytest.raises(ValueError, match=r"gt.csv: line 4: .* listed twice \(first at line 2\)"):
    ground_truth.read_csv(p, arch_column="arch", accuracy_column="acc")


@pytest.mark.parametrize("fmt,name", [("nb201", "gt.csv"), ("nb101_json", "gt.json"), ("nds_json", "gt.json")])
def test_a_binary_file_is_named_not_a_unicode_traceback(tmp_path, fmt, name):
  p = tmp_path / name
  p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 20)
  extra = {"nds_space": "darts"} if fmt == "nds_json" else {}
  with pytest.raises(ValueError, match=name) as err:
    ground_truth.read(p, format=fmt, **extra)
  assert not isinstance(err.value, UnicodeDecodeError)


def _nb101_columns(n=2):
  adjacency = [[[0, 1, 1], [0, 0, 1], [0, 0, 0]]] * n
  operations = [[-1, 0, -2]] * n
  return {"adjacency": adjacency, "operations": operations, "key": [f"h{i}" for i in range(n)],
          "108_final_validation_accuracy": [0.9 + 0.01 * i for i in range(n)]}


def test_nb101_json_layout_errors_name_the_field_and_record(tmp_path):
  p = tmp_path / "nb101.json"
  p.write_text(json.dumps(_nb101_columns()))
  assert ground_truth.read_nb101_json(p)["h1"] == pytest.approx(91.0)
  cols = _nb101_columns()
  del cols["key"]
  p.write_text(json.dumps(cols))
  with pytest.raises(ValueError, match=r"nb101.json has no column 'key'"):
    ground_truth.read_nb101_json(p)
  cols = _nb101_columns()
  cols["operations"] = cols["operations"][:1]  # was silently truncated by zip
  p.write_text(json.dumps(cols))
  with pytest.raises(ValueError, match=r"nb101.json: columns have different lengths .*'operations': 1"):
    ground_truth.read_nb101_json(p)
  record = {"module_adjacency": [[0, 1], [0, 0]], "module_operations": ["input", "output"],
            "runs_108": [{"final_validation_accuracy": 0.9}, {"final_test_accuracy": 0.8}]}
  p.write_text(json.dumps({"abc": record}))
  with pytest.raises(ValueError, match=r"nb101.json: record abc runs_108\[1\].*final_validation_accuracy"):
    ground_truth.read_nb101_json(p)
  del record["module_operations"]
  p.write_text(json.dumps({"abc": record}))
  with pytest.raises(ValueError, match=r"nb101.json: record abc.*module_operations"):
    ground_truth.read_nb101_json(p)


def test_naslib_nb101_files_of_another_layout_are_named_by_both_readers(tmp_path):
  from ntkjax import published_proxies
  p = tmp_path / "zc.json"
  p.write_text(json.dumps({"nasbench201": {}}))
  for read in (ground_truth.read_nb101_naslib, published_proxies.read_naslib_nb101):
    with pytest.raises(ValueError, match=r"zc.json: expected NASLib's .* layout of NB101 records"):
      read(p)


def test_nb101_naslib_records_keep_the_benchmarks_networks(shared_data):
  from ntkjax import published_proxies
  path = shared_data("nasbench101/naslib_zc_nasbench101_500.json")
  truth = ground_truth.read(path, format="nb101_naslib")
  published = published_proxies.read_naslib_nb101(path)
  assert truth.space == "nb101" and set(truth.accuracy) == set(published.scores) and len(truth.accuracy) == 63
  for h, spec in truth.universe.items():
    assert spec.hash == h and published.scores[h]["params"] == pytest.approx(nb101.num_params(spec) / 1e6, abs=1e-6)
    assert 0 < truth.accuracy[h] == published.accuracy[h] < 100
  assert "synflow" in published.proxies and "val_accuracy" not in published.proxies
