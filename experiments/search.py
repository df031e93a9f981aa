"""Random search and regularized evolution guided by LGA_t and baselines (paper Section 5, Table 2).

    python -m experiments.search --config configs/search.py:small --workdir /tmp/search
    ntkjax-search --config small --workdir /tmp/search      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import search

from . import launch


def main():
  launch.main(search.run, "search.py")


if __name__ == "__main__":
  main()
