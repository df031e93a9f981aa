"""Time evolution of the NTK during training (paper Section 4.1).

    python -m experiments.kernel_evolution --config configs/kernel_evolution.py:small --workdir /tmp/kernel_evolution

Writes to the workdir: config.json, minibatch.csv, results*.csv (one row per architecture, appended
as it goes; a rerun resumes), the result table as CSV and summary.txt, and a
PNG figure.
"""

from experiments import launch
from ntkjax import post_training

if __name__ == "__main__":
  launch.main(post_training.run_kernel_evolution)
