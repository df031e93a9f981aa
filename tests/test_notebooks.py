"""The notebooks run top to bottom (as Colab would after the install cell),
so they cannot rot."""

import os
import pathlib

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quick_start.ipynb", "paper_tour.ipynb"])
def test_notebook_runs_top_to_bottom(name, monkeypatch):
  # the kernel imports this checkout, as Colab would after the install cell
  monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(NOTEBOOKS.parent), os.environ.get("PYTHONPATH")])))
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  book = nbformat.read(NOTEBOOKS / name, as_version=4)
  nbclient.NotebookClient(book, timeout=300,  # per cell kernel_name="python3",
                          resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
  outputs = [o for c in book.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  assert not [o for o in outputs if o.get("output_type") == "error"]
  assert any("image/png" in o.get("data", {}) for o in outputs)  # the figures were drawn
