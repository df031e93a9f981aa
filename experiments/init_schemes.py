"""Kendall tau under each initialisation scheme (paper Section 3.4, Figure 4).

    python -m experiments.init_schemes --config configs/init_schemes.py:small --workdir /tmp/init_schemes
    ntkjax-init-schemes --config small --workdir /tmp/init_schemes      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import init_schemes

from . import launch


def main():
  launch.main(init_schemes.run, "init_schemes.py")


if __name__ == "__main__":
  main()
