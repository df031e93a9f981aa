"""Kendall tau within accuracy deciles (paper Section 3.3, Figures A2-A4).

    python -m experiments.deciles --config configs/deciles.py:small --workdir /tmp/deciles
    ntkjax-deciles --config small --workdir /tmp/deciles      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import deciles

from . import launch


def main():
  launch.main(deciles.run, "deciles.py")


if __name__ == "__main__":
  main()
