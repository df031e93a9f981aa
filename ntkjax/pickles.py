"""A restricted unpickler for the data files NAS users have on disk.

CIFAR, ImageNet16 and NATS-Bench files are pickles. ``pickle.load`` on them
would run whatever code a file names; ``load`` resolves only the handful of
classes those files use (numpy arrays, scalars and dtypes, OrderedDict,
``codecs.encode``) and
rejects anything else with an error naming the file and the class.
"""

from __future__ import annotations

import bz2
import codecs
import collections
import pathlib
import pickle

import numpy as np

__all__ = ["UnsafePickleError", "load"]

# numpy >= 2 renamed numpy.core to numpy._core; files written by either name it.
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray", "numpy.core.numeric",
                  "numpy._core.numeric")
_NUMPY_NAMES = {"_reconstruct": "multiarray", "scalar": "multiarray", "_frombuffer": "numeric"}


def _numpy_private(name):
  import importlib
  sub = _NUMPY_NAMES[name]
  try:
    mod = importlib.import_module(f"numpy._core.{sub}")
  except ImportError:  # numpy < 2
    mod = importlib.import_module(f"numpy.core.{sub}")
  return getattr(mod, name)


def _resolve(module, name):
  if (module, name) == ("collections", "OrderedDict"):
    return collections.OrderedDict
  if (module, name) == ("_codecs", "encode"):  # how protocol 2 writes bytes from Python 3
    return codecs.encode
  if name == "dtype" and module in _NUMPY_MODULES + ("numpy",):
    return np.dtype
  if name == "ndarray" and module in _NUMPY_MODULES + ("numpy",):
    return np.ndarray
  if name in _NUMPY_NAMES and module in _NUMPY_MODULES and module.endswith(_NUMPY_NAMES[name]):
    return _numpy_private(name)
  return None


class UnsafePickleError(pickle.UnpicklingError):
  """The file references a class outside the allowed set."""


class _Restricted(pickle.Unpickler):

  def __init__(self, f, path, **kwargs):
    super().__init__(f, **kwargs)
    self._path = path

  def find_class(self, module, name):
    obj = _resolve(module, name)
    if obj is None:
      raise UnsafePickleError(f"{self._path}: refusing to unpickle {module}.{name}; "
                              "only numpy arrays/scalars and OrderedDict are allowed")
    return obj


def load(path, *, encoding: str = "ASCII"):
  """Unpickles ``path`` (``.pbz2``/``.bz2`` are bz2-decompressed first).

  ``encoding`` is passed to the unpickler: ``'bytes'`` for the CIFAR batches,
  ``'latin1'`` for ImageNet16 (as their authors' loaders do).
  Raises:
    FileNotFoundError: ``path`` does not exist.
    ValueError: the file is truncated or not a pickle; the message names it.
    UnsafePickleError: the file asks for a class that is not allowed.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist")
  opener = bz2.open if path.suffix in (".pbz2", ".bz2") else open
  try:
    with opener(path, "rb") as f:
      return _Restricted(f, path, encoding=encoding).load()
  except UnsafePickleError:
    raise
  except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError) as e:
    raise ValueError(f"{path} is truncated or not a valid pickle: {type(e).__name__}: {e}") from e
