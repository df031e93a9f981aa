"""What produced a result: the code's commit, the library versions and the
device, so a shipped run or benchmark can be reproduced.

``environment()`` is recorded by ``results.pin_config`` (every start of a
run, in ``config.json``), printed at the end of each study's
``summary.txt`` and stored with every benchmark result.
"""

from __future__ import annotations

import datetime
import functools
import importlib.metadata
import pathlib
import platform
import subprocess

import jax

__all__ = ["commit", "versions", "environment", "describe"]

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "torch")


@functools.cache
def commit() -> str:
  """The git commit of the ntkjax checkout (``+dirty`` with uncommitted
  changes to tracked files), or ``'unknown'`` outside a git checkout."""
  root = pathlib.Path(__file__).resolve().parents[1]
  try:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True, timeout=10)
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  if head.returncode:
    return "unknown"
  return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def versions() -> dict[str, str]:
  """Installed versions of ntkjax's libraries (torch: 'absent' if not installed)."""
  out = {}
  for name in _PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "absent"
  return out


def environment() -> dict:
  """Date, commit, versions, Python, platform and the default device."""
  return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
          "commit": commit(), **versions(), "python": platform.python_version(),
          "platform": platform.platform(), "device": str(jax.devices()[0])}


def describe(env: dict | None = None) -> str:
  """One line of ``environment()`` for a summary."""
  e = environment() if env is None else env
  commit = e["commit"][:12] + ("+dirty" if e["commit"].endswith("+dirty") else "")
  return (f"ntkjax {commit}, jax {e['jax']}, flax {e['flax']}, torch {e['torch']}, "
          f"Python {e['python']}, {e['device']}, {e['date']}")
