"""Metric trajectories of high, middle and low accuracy archs (paper Figure 2).

    python -m experiments.trajectories --config configs/trajectories.py:small --workdir /tmp/trajectories
    ntkjax-trajectories --config small --workdir /tmp/trajectories      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import trajectories

from . import launch


def main():
  launch.main(trajectories.run, "trajectories.py")


if __name__ == "__main__":
  main()
