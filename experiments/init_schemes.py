"""Kendall tau under each initialisation scheme (paper Section 3.4).

    python -m experiments.init_schemes --config configs/init_schemes.py:small --workdir /tmp/init_schemes

Writes to the workdir: config.json, minibatch.csv, results*.csv (one row per architecture, appended
as it goes; a rerun resumes), the result table as CSV and summary.txt, and a
PNG figure.
"""

from experiments import launch
from ntkjax import correlation

if __name__ == "__main__":
  launch.main(correlation.run_init_schemes)
