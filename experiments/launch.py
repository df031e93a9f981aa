"""The absl entry point every experiment shares: ``--config`` (an
ml_collections config file, locked so unknown keys are errors) and
``--workdir``, then one library call ``fn(config, workdir)``."""

from typing import Callable

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results (resumed if it exists).")
flags.mark_flags_as_required(["config", "workdir"])


def main(fn: Callable) -> None:
  def _main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    fn(_CONFIG.value, _WORKDIR.value)
  app.run(_main)
