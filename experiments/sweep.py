"""NTK metrics of every NB201 architecture, sharded over devices and processes.

    python -m experiments.sweep --config configs/sweep.py:small --workdir /tmp/sweep
    ntkjax-sweep --config small --workdir /tmp/sweep

Multi-host (one process per host, or per GPU): start every process with the
same config and workdir and ``--distributed``; ``jax.distributed.initialize``
finds the coordinator on SLURM and TPU pods, or give it explicitly with
``--coordinator_address``, ``--num_processes`` and ``--process_id``
(BUILD.md, "Multi-host sweep").
"""

import jax
from absl import flags

from ntkjax.studies import sweep

from . import launch

_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize before the run.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (else auto-detected).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job (else auto-detected).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (else auto-detected).")


def run(config, workdir):
  if _DISTRIBUTED.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value, num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  return sweep.run(config, workdir)


def main():
  launch.main(run, "sweep.py")


if __name__ == "__main__":
  main()
