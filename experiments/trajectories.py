"""Metric trajectories of high/mid/low-accuracy archs (paper Figure 2).

    python -m experiments.trajectories --config configs/trajectories.py:small --workdir /tmp/trajectories

Writes to the workdir: config.json, minibatch.csv, results*.csv (one row per architecture, appended
as it goes; a rerun resumes), the result table as CSV and summary.txt, and a
PNG figure.
"""

from experiments import launch
from ntkjax import post_training

if __name__ == "__main__":
  launch.main(post_training.run_trajectories)
