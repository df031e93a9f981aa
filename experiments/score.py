"""NTK metrics of sampled NAS-Bench-201 architectures (the main job).

    python -m experiments.score --config configs/score.py --workdir /tmp/score

Writes to the workdir: workdir/results.csv (one row per architecture, appended as it goes;
a rerun resumes), workdir/summary.txt and workdir/config.json.
"""

from experiments import launch
from ntkjax import score

if __name__ == "__main__":
  launch.main(score.run)
