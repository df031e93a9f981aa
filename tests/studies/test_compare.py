"""experiments/compare: two run folders paired by arch, score by score."""

import csv
import json

import numpy as np
import pytest

from ntkjax import stats
from ntkjax.configs import compare as compare_config
from ntkjax.experiments import launch
from ntkjax.spaces import nb201
from ntkjax.studies import compare

ARCHS = nb201.all_archs()[:40:2]


def _truth(truth_csv) -> dict[str, float]:
  return {r["arch"]: float(r["acc"]) for r in csv.DictReader(open(truth_csv))}


def _run_folder(path, truth_csv, scores: dict[str, np.ndarray], *, pinned=True, C=16, name="nb201", archs=ARCHS):
  path.mkdir()
  config = {"seed": 0, "space": {"name": name, "C": C, "N": 5, "variant": "benchmark"},
            "data": {"batch_size": 16, "root": str(path)},
            "ground_truth": {"path": str(truth_csv), "format": "nb201", "arch_column": "arch",
                             "accuracy_column": "acc", "index_column": "idx", "dataset": "cifar10-valid",
                             "split": "test", "epochs": 200, "release": "v1x"}}
  (path / "config.json").write_text(json.dumps({"config": config, "runs": []} if pinned else config))
  with open(path / "results.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["arch", "params", *scores, "seconds"])
    for i, a in enumerate(archs):
      w.writerow([a, nb201.num_params(a, C=C), *(s[i] for s in scores.values()), 1.0])
  return path


def test_compare_pairs_archs_and_gives_agreement_and_each_tau(tmp_path, truth_csv):
  acc = np.array([_truth(truth_csv)[a] for a in ARCHS])
  noise = np.random.default_rng(0).normal(0, 20, len(ARCHS))
  a = _run_folder(tmp_path / "a", truth_csv, {"fnorm_train": acc, "lga_eval": noise}, C=8)
  # b: reversed archs order, one arch fewer, fnorm anti-ranked; old-style bare config without space.name
  b_archs = ARCHS[::-1][1:]
  b_acc = np.array([_truth(truth_csv)[x] for x in b_archs])
  b = _run_folder(tmp_path / "b", truth_csv, {"fnorm_train": -b_acc, "lga_eval": b_acc, "ncn_eval": b_acc},
                  pinned=False, archs=b_archs)
  config = json.loads((b / "config.json").read_text())
  del config["space"]["name"]
  (b / "config.json").write_text(json.dumps(config))

  c = compare_config.get_config()
  c.a, c.b = str(a), str(b)
  result = compare.run(c, tmp_path / "w")
  rows = {r.metric: r for r in result.table}
  assert set(rows) == {"fnorm_train", "lga_eval", "params"}  # ncn_eval is in b alone
  assert rows["fnorm_train"].n == len(ARCHS) - 1 and (result.only_a, result.only_b) == (1, 0)
  assert rows["fnorm_train"].agreement == pytest.approx(-1.0)
  assert rows["fnorm_train"].tau_a == pytest.approx(1.0) and rows["fnorm_train"].tau_b == pytest.approx(-1.0)
  kept = np.array([x in b_archs for x in ARCHS])
  assert rows["lga_eval"].tau_a == pytest.approx(stats.kendall_tau(noise[kept], acc[kept]).value)
  assert rows["lga_eval"].agreement == pytest.approx(stats.kendall_tau(noise[kept], acc[kept]).value)
  assert result.differences == [("space.C", 8, 16)]  # data.root is a path, space.name unpinned in b
  assert "C=8, N=5 (reduced" in result.network_a and "the benchmark's size" in result.network_b
  text = result.summary()
  assert "space.C: 8 | 16" in text and "fnorm_train" in text and "19 archs in both runs" in text
  written = {p.name for p in launch.write_outputs(result, tmp_path / "w")}
  assert written == {"summary.txt", "comparison.csv"}
  assert json.loads((tmp_path / "w" / "config.json").read_text())["config"]["a"] == str(a)


def test_compare_refuses_runs_that_cannot_be_paired(tmp_path, truth_csv):
  scores = {"fnorm_train": np.arange(len(ARCHS), dtype=float)}
  a = _run_folder(tmp_path / "a", truth_csv, scores)
  with pytest.raises(ValueError, match="different spaces \\('nb201' in .*'nb101' in"):
    compare.compare(compare.read_run(a), compare.read_run(_run_folder(tmp_path / "b", truth_csv, scores,
                                                                       name="nb101")))
  other = _run_folder(tmp_path / "c", truth_csv, {"fnorm_train": np.arange(3.0)}, archs=nb201.all_archs()[1:6:2])
  with pytest.raises(ValueError, match="share no archs"):
    compare.compare(compare.read_run(a), compare.read_run(other))
  shifted = tmp_path / "truth2.csv"  # the same archs with other accuracies
  rows = list(csv.DictReader(open(truth_csv)))
  with open(shifted, "w", newline="") as f:
    w = csv.DictWriter(f, ["idx", "arch", "acc"])
    w.writeheader()
    w.writerows({**r, "acc": float(r["acc"]) + 1} for r in rows)
  with pytest.raises(ValueError, match="ground truths differ .* on 20 of 20 shared archs"):
    compare.compare(compare.read_run(a), compare.read_run(_run_folder(tmp_path / "d", shifted, scores)))
  (tmp_path / "e").mkdir()
  with pytest.raises(FileNotFoundError, match="e/config.json is missing"):
    compare.read_run(tmp_path / "e")
  c = compare_config.get_config()
  c.a = str(a)
  with pytest.raises(ValueError, match="set --config.b"):
    compare.run(c, tmp_path / "w")
  with pytest.raises(ValueError, match="takes no config variant"):
    compare_config.get_config("small")
