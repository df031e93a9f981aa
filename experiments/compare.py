"""Two at-init runs over the same archs, compared score by score.

    python -m experiments.compare --config configs/compare.py --config.a=RUN_A --config.b=RUN_B --workdir /tmp/cmp
    ntkjax-compare --config.a=RUN_A --config.b=RUN_B --workdir /tmp/cmp      # the same, from any directory

Prints, and writes as summary.txt and comparison.csv, per score the Kendall
τ between the two runs' scores and each run's τ with the ground truth, with
the config fields in which the runs differ.
"""

from ntkjax.studies import compare

from . import launch


def main():
  launch.main(compare.run, "compare.py")


if __name__ == "__main__":
  main()
