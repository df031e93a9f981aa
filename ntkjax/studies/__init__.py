"""The paper's studies on top of the engine, one module per section.

Each study module has ``run(config, workdir)``, which takes an
``ml_collections`` config (``configs/<study>.py``), writes its per-arch rows
to the workdir as it goes (resumable) and returns a typed result; the absl
mains in ``experiments/`` print and write it. Studies import ``setup`` and
engine modules, never each other.
"""
