"""Datasets as normalised NHWC float32 arrays, and minibatch selection.

``load_digits16`` is the embedded default: scikit-learn's bundled 8x8 digits
(1,797 real handwritten images, no download), upsampled to 16x16 and
replicated to 3 channels so that it has the shape of ImageNet16-120 inputs.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

__all__ = ["Dataset", "load_digits16", "select_minibatch", "DATASETS", "load"]


class Dataset(NamedTuple):
  images: np.ndarray  # [N, H, W, 3] float32, normalised
  labels: np.ndarray  # [N] int32
  num_classes: int
  name: str


def load_digits16() -> Dataset:
  """scikit-learn digits, 16x16x3, normalised to zero mean and unit std."""
  from sklearn.datasets import load_digits
  raw = load_digits()
  img = raw.images.astype(np.float32) / 16.0
  img = np.repeat(np.repeat(img, 2, axis=1), 2, axis=2)  # nearest 8 -> 16
  img = np.repeat(img[..., None], 3, axis=-1)
  img = (img - img.mean()) / img.std()
  return Dataset(img.astype(np.float32), raw.target.astype(np.int32), 10, "digits16")


DATASETS = {"digits16": load_digits16}


def load(name: str) -> Dataset:
  """A dataset by name (see ``DATASETS``)."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
  return DATASETS[name]()


def select_minibatch(key: jax.Array, data: Dataset, n: int, *, first: bool = False):
  """``n`` images and labels chosen without replacement from ``key``.

  ``first=True`` takes the first ``n`` in file order instead, as the paper's
  code does with its test loader.
  """
  total = data.images.shape[0]
  if not 0 < n <= total:
    raise ValueError(f"minibatch size {n} must be in [1, {total}] for {data.name}")
  idx = np.arange(n) if first else np.sort(np.asarray(jax.random.choice(key, total, (n,), replace=False)))
  return data.images[idx], data.labels[idx], idx
