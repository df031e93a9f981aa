"""Image datasets in the formats NAS users have on disk.

A ``Dataset`` holds raw uint8 pixels [N, H, W, 3] plus the per-channel mean
and std it is normalised with; ``normalize`` (jittable) turns pixels into
network inputs, after augmentation, as torchvision's
``RandomCrop -> RandomHorizontalFlip -> ToTensor -> Normalize`` does.

Readers (``load(name, root, split)`` picks one from what ``root`` holds):

* CIFAR-10 / CIFAR-100: the official python pickles (``cifar-10-batches-py``,
  ``cifar-100-python``; CIFAR-100 uses the fine labels).
* ImageNet16-120: the downsampled-ImageNet pickles ``train_data_batch_1..10``
  and ``val_data`` (16x16); only labels 1..120 are kept, shifted to 0..119,
  as NAS-Bench-201's loader does.
* Image folders ``split/class/*.{jpg,jpeg,png}``, as a directory or inside a
  zip archive (e.g. ``../shared/data/cifar10/cifar10-jpeg-test.zip``);
  classes are the sorted folder names.
* ``digits16``: scikit-learn's bundled 8x8 digits upsampled to 16x16x3, the
  embedded default that needs no download.

Decoding 60k JPEGs takes about a minute, so decoded arrays are cached as
``.npz`` under ``cache_dir`` (default ``$NTKJAX_CACHE`` or
``~/.cache/ntkjax/decoded``), keyed by the source files' paths, sizes and
mtimes. Where a dataset's files are found by name is ``ntkjax.data_home``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import zipfile
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ntkjax import pickles

__all__ = [
    "Dataset", "NORMALIZATION", "DATASETS", "load", "load_digits16", "read_cifar_pickles",
    "read_imagenet16_pickles", "read_image_folder", "normalize", "select_minibatch",
    "random_crop_flip", "default_cache_dir", "describe",
]

# Per-channel (mean, std) in [0, 1] pixel units, as the paper's code uses them.
NORMALIZATION = {
    "cifar": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "imagenet16": (tuple(v / 255 for v in (122.68, 116.66, 104.01)),
                   tuple(v / 255 for v in (63.22, 61.26, 65.09))),
}


class Dataset(NamedTuple):
  images: np.ndarray   # [N, H, W, 3] uint8 pixels
  labels: np.ndarray   # [N] int32 in [0, num_classes)
  num_classes: int
  name: str
  mean: tuple          # per channel, [0, 1] pixel units
  std: tuple

  @property
  def image_size(self) -> int:
    return self.images.shape[1]


def normalize(images, mean, std) -> jax.Array:
  """uint8 (or [0, 255] float) pixels -> ``(x / 255 - mean) / std``, float32."""
  x = jnp.asarray(images, jnp.float32) / 255.0
  return (x - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def _check_images(images: np.ndarray, size: int | None, source) -> np.ndarray:
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"{source}: expected images of shape [N, H, W, 3], got {images.shape}")
  if size is not None and images.shape[1:3] != (size, size):
    raise ValueError(f"{source}: expected {size}x{size} images, got "
                     f"{images.shape[1]}x{images.shape[2]}")
  return images


# ----------------------------------------------------------------------------- pickles

def _pickle_batch(path, encoding, data_key, label_key, size):
  d = pickles.load(path, encoding=encoding)
  if not isinstance(d, dict):
    raise ValueError(f"{path}: expected a dict, got {type(d).__name__}")
  keys = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
  for k in (data_key, label_key):
    if k not in keys:
      raise ValueError(f"{path}: no {k!r} entry (has {sorted(keys)})")
  flat = np.asarray(keys[data_key], np.uint8)
  labels = np.asarray(keys[label_key], np.int64)
  if flat.ndim != 2 or flat.shape[1] != 3 * size * size or flat.shape[0] != labels.shape[0]:
    raise ValueError(f"{path}: {data_key} has shape {flat.shape} with {labels.shape[0]} labels; "
                     f"expected [n, {3 * size * size}] for {size}x{size} RGB")
  # Rows are channel-major (R plane, G plane, B plane).
  images = flat.reshape(-1, 3, size, size).transpose(0, 2, 3, 1)
  return images, labels


def read_cifar_pickles(root, split: str, *, num_classes: int = 10):
  """CIFAR-10/100 from the official python pickle directory ``root``.

  Returns ``(images uint8 [N,32,32,3], labels int32)``; ``split`` is
  ``'train'`` or ``'test'``.
  """
  root = pathlib.Path(root)
  if num_classes == 10:
    files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    label_key = "labels"
  elif num_classes == 100:
    files, label_key = [split], "fine_labels"
  else:
    raise ValueError(f"CIFAR has 10 or 100 classes, not {num_classes}")
  _check_split(split, ("train", "test"))
  parts = [_pickle_batch(root / f, "bytes", "data", label_key, 32) for f in files]
  images = np.concatenate([p[0] for p in parts])
  labels = np.concatenate([p[1] for p in parts])
  _check_labels(labels, num_classes, root)
  return images, labels.astype(np.int32)


def read_imagenet16_pickles(root, split: str, *, num_classes: int = 120):
  """ImageNet16-``num_classes`` from the downsampled-ImageNet pickles.

  Keeps labels 1..num_classes (of 1..1000) and shifts them to 0-based.
  """
  root = pathlib.Path(root)
  _check_split(split, ("train", "test"))
  files = [f"train_data_batch_{i}" for i in range(1, 11)] if split == "train" else ["val_data"]
  images, labels = [], []
  for f in files:
    x, y = _pickle_batch(root / f, "latin1", "data", "labels", 16)
    keep = (y >= 1) & (y <= num_classes)
    images.append(x[keep])
    labels.append(y[keep] - 1)
  return np.concatenate(images), np.concatenate(labels).astype(np.int32)


# ----------------------------------------------------------------------------- image folders

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _decode(raw: bytes, source, size):
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(io.BytesIO(raw)) as im:
      arr = np.asarray(im.convert("RGB"))
  except (UnidentifiedImageError, OSError, SyntaxError) as e:
    raise ValueError(f"{source}: cannot decode image ({e})") from e
  if size is not None and arr.shape[:2] != (size, size):
    raise ValueError(f"{source}: image is {arr.shape[1]}x{arr.shape[0]}, expected {size}x{size}")
  return arr


def _folder_members(names: Sequence[str], split: str, source):
  """(class, member) pairs for ``[prefix/]split/class/file.ext`` names."""
  out = []
  for n in names:
    parts = n.replace("\\", "/").strip("/").split("/")
    if not parts[-1].lower().endswith(_IMAGE_SUFFIXES) or split not in parts[:-1]:
      continue
    i = parts.index(split)
    if len(parts) - i != 3:
      raise ValueError(f"{source}: {n!r} is not laid out as {split}/<class>/<image>")
    out.append((parts[i + 1], n))
  if not out:
    raise ValueError(f"{source}: no images under a {split!r} folder "
                     f"(expected {split}/<class>/*.jpg|png)")
  return sorted(out)


def read_image_folder(path, split: str, *, size: int | None = None):
  """Images of ``split/class/*.jpg|png`` in a directory or a zip archive.

  Returns ``(images, labels, classes)``; labels index the sorted class names.
  A file that does not decode, or whose size is not ``size``, raises a
  ``ValueError`` naming it.
  """
  path = pathlib.Path(path)
  if path.is_file():
    try:
      archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
      raise ValueError(f"{path} is not a valid zip archive: {e}") from e
    with archive:
      members = _folder_members(archive.namelist(), split, path)
      def read(n):
        try:
          return archive.read(n)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
          raise ValueError(f"{path}:{n}: cannot read member ({e})") from e
      images = [_decode(read(n), f"{path}:{n}", size) for _, n in members]
  elif path.is_dir():
    members = _folder_members([str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()],
                              split, path)
    images = [_decode((path / n).read_bytes(), path / n, size) for _, n in members]
  else:
    raise FileNotFoundError(f"{path} does not exist")
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    raise ValueError(f"{path}: images differ in size {sorted(shapes)}; pass size= to find the odd one")
  classes = sorted({c for c, _ in members})
  labels = np.array([classes.index(c) for c, _ in members], np.int32)
  return np.stack(images), labels, classes


# ----------------------------------------------------------------------------- cache and registry

def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("NTKJAX_CACHE", pathlib.Path.home() / ".cache" / "ntkjax" / "decoded"))


def _fingerprint(sources: Sequence[pathlib.Path]) -> str:
  h = hashlib.sha256()
  for s in sources:
    files = sorted(p for p in s.rglob("*") if p.is_file()) if s.is_dir() else [s]
    for p in files:
      st = p.stat()
      h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
  return h.hexdigest()[:16]


def _cached(tag: str, sources, cache_dir, reader):
  if cache_dir is None:
    return reader()
  cache = pathlib.Path(cache_dir) / f"{tag}-{_fingerprint(sources)}.npz"
  if cache.exists():
    try:
      with np.load(cache) as z:
        return z["images"], z["labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
      cache.unlink(missing_ok=True)  # a cache cut short by a crash: rebuild it
  images, labels = reader()
  cache.parent.mkdir(parents=True, exist_ok=True)
  tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp.npz")  # processes filling one cache at once
  np.savez(tmp, images=images, labels=labels)
  os.replace(tmp, cache)
  return images, labels


def _check_split(split, allowed):
  if split not in allowed:
    raise ValueError(f"unknown split {split!r}; expected one of {allowed}")


def _check_labels(labels, num_classes, source):
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"{source}: labels span [{labels.min()}, {labels.max()}], "
                     f"expected [0, {num_classes})")


def load_digits16(root=None, split: str = "train", cache_dir=None) -> Dataset:
  """scikit-learn digits (1,797 images, no download), 16x16x3 uint8.

  There is a single split; the images are normalised with their own
  mean and std.
  """
  del root, split, cache_dir
  from sklearn.datasets import load_digits
  raw = load_digits()
  img = np.round(raw.images * (255.0 / 16.0)).astype(np.uint8)
  img = np.repeat(np.repeat(img, 2, axis=1), 2, axis=2)  # nearest 8 -> 16
  img = np.repeat(img[..., None], 3, axis=-1)
  m, s = float(img.mean()) / 255, float(img.std()) / 255
  return Dataset(img, raw.target.astype(np.int32), 10, "digits16", (m,) * 3, (s,) * 3)


_PICKLE_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_SPECS = {  # name -> (num_classes, image size, normalisation)
    "cifar10": (10, 32, "cifar"),
    "cifar100": (100, 32, "cifar"),
    "ImageNet16-120": (120, 16, "imagenet16"),
}


def _find_image_source(root: pathlib.Path, split: str):
  if root.is_file() and root.suffix == ".zip":
    return root
  if (root / split).is_dir():
    return root
  zips = sorted(p for p in root.glob("*.zip")
                if p.stem == split or p.stem.endswith(f"-{split}") or p.stem.endswith(f"_{split}"))
  return zips[0] if zips else None


def _load_named(name: str, root, split: str, cache_dir) -> Dataset:
  num_classes, size, norm = _SPECS[name]
  if root is None:
    raise ValueError(f"dataset {name!r} needs a root directory (got root=None)")
  root = pathlib.Path(root)
  if not root.exists():
    raise FileNotFoundError(f"{name} root {root} does not exist")
  split = "test" if split in ("val", "valid") and name == "ImageNet16-120" else split
  _check_split(split, ("train", "test"))
  if name in _PICKLE_DIRS and (root / _PICKLE_DIRS[name]).is_dir():
    root = root / _PICKLE_DIRS[name]
  pickled = (root / ("test_batch" if name == "cifar10" else "val_data" if name == "ImageNet16-120"
                     else "test")).is_file() if root.is_dir() else False
  if pickled:
    reader = (lambda: read_imagenet16_pickles(root, split, num_classes=num_classes)) \
        if name == "ImageNet16-120" else (lambda: read_cifar_pickles(root, split, num_classes=num_classes))
    source = root
  else:
    source = _find_image_source(root, split)
    if source is None:
      raise ValueError(
          f"{root} holds no {name} data for split {split!r}: expected the official pickles, "
          f"a {split}/<class>/ folder, or a zip named like '*-{split}.zip'")
    def reader():
      images, labels, classes = read_image_folder(source, split, size=size)
      if len(classes) != num_classes:
        raise ValueError(f"{source}: {len(classes)} class folders, {name} has {num_classes}")
      return images, labels
  images, labels = _cached(f"{name}-{split}", [source], cache_dir, reader)
  _check_images(images, size, source)
  _check_labels(labels, num_classes, source)
  mean, std = NORMALIZATION[norm]
  return Dataset(images, labels.astype(np.int32), num_classes, name, mean, std)


DATASETS = ("digits16",) + tuple(_SPECS)


def describe(name: str) -> tuple[int, int]:
  """``(num_classes, image size)`` of dataset ``name``, without reading it."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
  return (10, 16) if name == "digits16" else _SPECS[name][:2]


def load(name: str, root=None, split: str = "test", *, cache_dir="default") -> Dataset:
  """A dataset by name: ``digits16``, ``cifar10``, ``cifar100`` or ``ImageNet16-120``.

  ``root`` is the folder (or zip) holding the files in any of the formats in
  the module docstring. ``cache_dir=None`` disables the decoded-array cache.
  """
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
  if name == "digits16":
    return load_digits16()
  return _load_named(name, root, split, default_cache_dir() if cache_dir == "default" else cache_dir)


def select_minibatch(key: jax.Array, data: Dataset, n: int, *, first: bool = False):
  """``n`` normalised images and their labels, and the indices chosen.

  Chosen without replacement from ``key`` (sorted indices), or with
  ``first=True`` the first ``n`` in file order, as the paper's code takes the
  first batch of its (unshuffled) test loader.
  """
  total = data.images.shape[0]
  if not 0 < n <= total:
    raise ValueError(f"minibatch size {n} must be in [1, {total}] for {data.name}")
  idx = np.arange(n) if first else np.sort(np.asarray(jax.random.choice(key, total, (n,), replace=False)))
  return np.asarray(normalize(data.images[idx], data.mean, data.std)), data.labels[idx], idx


def random_crop_flip(key: jax.Array, images: jax.Array, padding: int) -> jax.Array:
  """Per-image random crop after zero padding, then a random horizontal flip.

  ``images`` [N, H, W, C] (raw pixels, so padding is black as in
  torchvision). ``padding`` is 4 at 32x32 and 2 at 16x16 in NB201. Jittable.
  """
  n, h, w, _ = images.shape
  k_crop, k_flip = jax.random.split(key)
  offsets = jax.random.randint(k_crop, (n, 2), 0, 2 * padding + 1)
  flips = jax.random.bernoulli(k_flip, 0.5, (n,))
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

  def one(img, off, flip):
    crop = jax.lax.dynamic_slice(img, (off[0], off[1], 0), (h, w, img.shape[-1]))
    return jnp.where(flip, crop[:, ::-1], crop)
  return jax.vmap(one)(padded, offsets, flips)
