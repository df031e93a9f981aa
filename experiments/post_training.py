"""Kendall tau of the metrics after t epochs of training, LGA_t (paper Section 4.3).

    python -m experiments.post_training --config configs/post_training.py:small --workdir /tmp/post_training

Writes to the workdir: config.json, minibatch.csv, results*.csv (one row per architecture, appended
as it goes; a rerun resumes), the result table as CSV and summary.txt, and a
PNG figure.
"""

from experiments import launch
from ntkjax import post_training

if __name__ == "__main__":
  launch.main(post_training.run_post_training)
