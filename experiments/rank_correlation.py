"""Kendall tau of the NTK metrics at init on NB201 (paper Section 3.2).

    python -m experiments.rank_correlation --config configs/rank_correlation.py:small --workdir /tmp/rank_correlation

Writes to the workdir: config.json, minibatch.csv, results*.csv (one row per architecture, appended
as it goes; a rerun resumes), the result table as CSV and summary.txt, and a
PNG figure.
"""

from experiments import launch
from ntkjax import correlation

if __name__ == "__main__":
  launch.main(correlation.run_rank_correlation)
