"""Rank correlation of the NTK metrics at initialisation (paper Section 3.2, Figure 3, Table 1).

    python -m experiments.rank_correlation --config configs/rank_correlation.py:small --workdir /tmp/rank_correlation
    ntkjax-rank-correlation --config small --workdir /tmp/rank_correlation      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import rank_correlation

from . import launch


def main():
  launch.main(rank_correlation.run, "rank_correlation.py")


if __name__ == "__main__":
  main()
