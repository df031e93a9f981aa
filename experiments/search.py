"""Architecture search with RS and REA guided by LGA_t and baselines (paper Section 5).

    python -m experiments.search --config configs/search.py:small --workdir /tmp/search

Writes to the workdir: config.json, minibatch.csv, histories/*.csv (every
evaluation as it happens; a rerun replays them and resumes), runs.csv (one row
per finished search), search_table.csv and summary.txt.
"""

from experiments import launch
from ntkjax import search

if __name__ == "__main__":
  launch.main(search.run_search)
