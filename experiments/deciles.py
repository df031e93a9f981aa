"""Entry point for ntkjax.correlation.run_deciles; see configs/deciles.py.

    python -m experiments.deciles --config configs/deciles.py:small --workdir /tmp/deciles

Writes to workdir: config.json, minibatch.csv, results*.csv (one row per
architecture, appended as it goes; a rerun resumes), the correlation table
as CSV and summary.txt, and a PNG figure.
"""

from absl import app, flags
from ml_collections import config_flags

from ntkjax import correlation

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  correlation.run_deciles(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
