"""The shared absl launcher: user errors are one line, bugs keep their
traceback."""

import pytest

from experiments import launch
from ntkjax import ground_truth


def _raising(error):
  def run(config, workdir):
    raise error
  return run


def test_a_user_error_is_one_line_and_exit_status_2(capsys, tmp_path):
  for error in (ValueError("bad value"), FileNotFoundError("no such file"),
                ground_truth.NotInGroundTruth("|x| is not in the ground truth t.csv")):
    with pytest.raises(SystemExit) as e:
      launch.execute(_raising(error), None, tmp_path)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"error: {error}") and "'" not in err[0].split("error: ")[1][:1]


def test_a_bug_keeps_its_traceback(tmp_path):
  with pytest.raises(KeyError, match="internal"):
    launch.execute(_raising(KeyError("internal")), None, tmp_path)
  assert launch.execute(lambda c, w: (c, w), 1, tmp_path) == (1, tmp_path)
