"""The metrics after t epochs of training, LGA_t (paper Section 4.3, Figure 6).

    python -m experiments.post_training --config configs/post_training.py:small --workdir /tmp/post_training
    ntkjax-post-training --config small --workdir /tmp/post_training      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import post_training

from . import launch


def main():
  launch.main(post_training.run, "post_training.py")


if __name__ == "__main__":
  main()
