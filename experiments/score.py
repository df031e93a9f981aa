"""NTK metrics of sampled architectures of any space (the main job).

    python -m experiments.score --config configs/score.py:small --workdir /tmp/score
    ntkjax-score --config small --workdir /tmp/score      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import score

from . import launch


def main():
  launch.main(score.run, "score.py")


if __name__ == "__main__":
  main()
