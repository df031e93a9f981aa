"""NTK metrics of sampled NAS-Bench-201 architectures (the main job).

    python -m experiments.score --config configs/score.py --workdir /tmp/score

Writes workdir/results.csv (one row per architecture, appended as it goes;
a rerun resumes), workdir/summary.txt and workdir/config.json.
"""

from absl import app, flags
from ml_collections import config_flags

from ntkjax import score

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  score.run(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
