"""Kendall tau within NB201 accuracy deciles (paper Section 3.3).

    python -m experiments.deciles --config configs/deciles.py:small --workdir /tmp/deciles

Writes to the workdir: config.json, minibatch.csv, results*.csv (one row per architecture, appended
as it goes; a rerun resumes), the result table as CSV and summary.txt, and a
PNG figure.
"""

from experiments import launch
from ntkjax import correlation

if __name__ == "__main__":
  launch.main(correlation.run_deciles)
