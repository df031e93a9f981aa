"""How the NTK moves during training (paper Section 4.1, Figure 5).

    python -m experiments.kernel_evolution --config configs/kernel_evolution.py:small --workdir /tmp/kernel_evolution
    ntkjax-kernel-evolution --config small --workdir /tmp/kernel_evolution      # the same, from any directory

The config's docstring gives the variants and their runtimes; the run
writes per-architecture rows to the workdir as it goes (a rerun resumes),
then summary.txt, its tables and figures, and lists the files it wrote.
"""

from ntkjax.studies import kernel_evolution

from . import launch


def main():
  launch.main(kernel_evolution.run, "kernel_evolution.py")


if __name__ == "__main__":
  main()
