"""The README's Python blocks run as written, each on its own, in a fresh
interpreter (they say they take about a minute on a 2-core CPU)."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readme_has_its_python_blocks():
  assert len(BLOCKS) >= 4
  for block in BLOCKS:
    assert re.match(r"(import |from )", block), "a block starts with its own imports"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_runs_as_written(index, tmp_path, shared_data):
  block = BLOCKS[index]
  if "data_home." in block:  # the data home is then the shared data
    shared_data("cifar10/cifar10-jpeg-test.zip", "nasbench201/v1x/nb201_v1x_naswot_cifar10_params_jacov.csv")
  out = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip(), "every block prints what it computed"
