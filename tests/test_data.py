"""Dataset readers on tiny fixtures written here in each real on-disk format."""

import io
import os
import pickle
import zipfile

import jax
import numpy as np
import pytest
from PIL import Image

from ntkjax import data, pickles

RNG = np.random.default_rng(0)


def _pixels(n, size):
  return RNG.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _flat(images):  # [N,H,W,3] -> channel-major rows, as the official pickles store them
  return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _write_cifar10(root, per_batch=3):
  d = root / "cifar-10-batches-py"
  d.mkdir(parents=True)
  truth = {}
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    x = _pixels(per_batch, 32)
    y = RNG.integers(0, 10, per_batch).tolist()
    with open(d / name, "wb") as f:  # protocol 2 and bytes keys, as the Python 2 originals
      pickle.dump({b"batch_label": b"x", b"data": _flat(x), b"labels": y, b"filenames": [b"a"] * per_batch},
                  f, protocol=2)
    truth[name] = (x, np.array(y))
  return d, truth


def test_cifar10_pickles(tmp_path):
  d, truth = _write_cifar10(tmp_path)
  train = data.load("cifar10", tmp_path, "train", cache_dir=None)
  np.testing.assert_array_equal(train.images, np.concatenate([truth[f"data_batch_{i}"][0] for i in range(1, 6)]))
  np.testing.assert_array_equal(train.labels, np.concatenate([truth[f"data_batch_{i}"][1] for i in range(1, 6)]))
  test = data.load("cifar10", d, "test", cache_dir=None)  # the pickle dir itself works too
  np.testing.assert_array_equal(test.images, truth["test_batch"][0])
  assert test.mean == data.NORMALIZATION["cifar"][0] and test.num_classes == 10


def test_cifar100_fine_labels(tmp_path):
  d = tmp_path / "cifar-100-python"
  d.mkdir()
  x = _pixels(4, 32)
  with open(d / "test", "wb") as f:
    pickle.dump({b"data": _flat(x), b"fine_labels": [99, 0, 5, 42], b"coarse_labels": [1, 2, 3, 4]}, f)
  (d / "train").write_bytes(b"")
  ds = data.load("cifar100", tmp_path, "test", cache_dir=None)
  np.testing.assert_array_equal(ds.labels, [99, 0, 5, 42])
  np.testing.assert_array_equal(ds.images, x)


def test_imagenet16_keeps_120_classes_shifted(tmp_path):
  root = tmp_path / "ImageNet16"
  root.mkdir()
  labels_all = []
  for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
    x = _pixels(4, 16)
    y = [1, 120, 121, 1000] if name != "val_data" else [7, 500, 120, 2]
    with open(root / name, "wb") as f:
      pickle.dump({"data": _flat(x), "labels": y, "mean": np.zeros(768)}, f)
    labels_all.append((x, y))
  val = data.load("ImageNet16-120", root, "val", cache_dir=None)
  np.testing.assert_array_equal(val.labels, [6, 119, 1])
  np.testing.assert_array_equal(val.images, labels_all[-1][0][[0, 2, 3]])
  train = data.load("ImageNet16-120", root, "train", cache_dir=None)
  assert train.images.shape == (20, 16, 16, 3) and set(train.labels) == {0, 119}
  assert train.mean == data.NORMALIZATION["imagenet16"][0]


def _png(img):
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, format="PNG")
  return buf.getvalue()


def _image_tree(n_per_class=2, classes=("cat", "airplane", "dog"), size=32):
  """{relative name: (pixels, class)} for split 'test'."""
  out = {}
  for c in classes:
    for i in range(n_per_class):
      out[f"test/{c}/{i:04d}.png"] = (_pixels(1, size)[0], c)
  return out


def test_image_folder_and_zip_agree(tmp_path):
  tree = _image_tree(classes=[f"c{i}" for i in range(10)])
  folder = tmp_path / "folder"
  for name, (img, _) in tree.items():
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(_png(img))
  zpath = tmp_path / "cifar10-jpeg-test.zip"
  with zipfile.ZipFile(zpath, "w") as z:
    for name, (img, _) in tree.items():
      z.writestr(name, _png(img))
  a = data.load("cifar10", folder, "test", cache_dir=None)
  b = data.load("cifar10", tmp_path, "test", cache_dir=None)  # finds the *-test.zip
  np.testing.assert_array_equal(a.images, b.images)
  np.testing.assert_array_equal(a.labels, b.labels)
  names = sorted(tree)
  np.testing.assert_array_equal(a.images, np.stack([tree[n][0] for n in names]))
  np.testing.assert_array_equal(a.labels, [int(tree[n][1][1:]) for n in names])


def test_image_folder_classes_are_sorted(tmp_path):
  tree = _image_tree()
  for name, (img, _) in tree.items():
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(_png(img))
  images, labels, classes = data.read_image_folder(tmp_path, "test", size=32)
  assert classes == ["airplane", "cat", "dog"]
  np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2])


def test_decoded_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
  tree = _image_tree(n_per_class=1, classes=[f"k{i}" for i in range(10)])
  zpath = tmp_path / "src" / "test.zip"
  zpath.parent.mkdir()
  with zipfile.ZipFile(zpath, "w") as z:
    for name, (img, _) in tree.items():
      z.writestr(name, _png(img))
  calls = []
  real = data.read_image_folder
  monkeypatch.setattr(data, "read_image_folder", lambda *a, **k: calls.append(1) or real(*a, **k))
  cache = tmp_path / "cache"
  first = data.load("cifar10", zpath, "test", cache_dir=cache)
  second = data.load("cifar10", zpath, "test", cache_dir=cache)
  assert len(calls) == 1 and len(list(cache.glob("*.npz"))) == 1
  np.testing.assert_array_equal(first.images, second.images)
  os.utime(zpath, ns=(1, 1))  # the source changed: decode again
  data.load("cifar10", zpath, "test", cache_dir=cache)
  assert len(calls) == 2


# ----------------------------------------------------------------------------- bad input

def test_truncated_pickle_names_the_file(tmp_path):
  d, _ = _write_cifar10(tmp_path)
  raw = (d / "data_batch_3").read_bytes()
  (d / "data_batch_3").write_bytes(raw[: len(raw) // 2])
  with pytest.raises(ValueError, match="data_batch_3.*truncated"):
    data.load("cifar10", tmp_path, "train", cache_dir=None)


def test_missing_batch_names_the_file(tmp_path):
  d, _ = _write_cifar10(tmp_path)
  (d / "data_batch_5").unlink()
  with pytest.raises(FileNotFoundError, match="data_batch_5"):
    data.load("cifar10", tmp_path, "train", cache_dir=None)


def test_pickle_with_code_is_refused(tmp_path):
  class Evil:
    def __reduce__(self):
      return (os.system, ("echo pwned",))
  p = tmp_path / "val_data"
  p.write_bytes(pickle.dumps({"data": Evil()}))
  with pytest.raises(pickles.UnsafePickleError, match="val_data.*system"):
    pickles.load(p)


def test_wrong_pickle_image_size(tmp_path):
  d = tmp_path / "cifar-10-batches-py"
  d.mkdir()
  with open(d / "test_batch", "wb") as f:
    pickle.dump({b"data": _flat(_pixels(2, 16)), b"labels": [0, 1]}, f)
  with pytest.raises(ValueError, match="test_batch.*32x32"):
    data.load("cifar10", tmp_path, "test", cache_dir=None)


def test_wrong_image_size_names_the_file(tmp_path):
  tree = _image_tree(classes=[f"c{i}" for i in range(10)])
  tree["test/c3/0001.png"] = (_pixels(1, 28)[0], "c3")
  zpath = tmp_path / "x-test.zip"
  with zipfile.ZipFile(zpath, "w") as z:
    for name, (img, _) in tree.items():
      z.writestr(name, _png(img))
  with pytest.raises(ValueError, match="c3/0001.png.*28x28.*32x32"):
    data.load("cifar10", zpath, "test", cache_dir=None)


def test_corrupt_image_names_the_file(tmp_path):
  tree = _image_tree(classes=[f"c{i}" for i in range(10)])
  for name, (img, _) in tree.items():
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_bytes(_png(img))
  (tmp_path / "test/c5/0000.png").write_bytes(b"\x89PNG not really")
  with pytest.raises(ValueError, match="c5/0000.png.*cannot decode"):
    data.load("cifar10", tmp_path, "test", cache_dir=None)


def test_wrong_layout_and_bad_zip(tmp_path):
  flat = tmp_path / "flat" / "test"
  flat.mkdir(parents=True)
  (flat / "0000.png").write_bytes(_png(_pixels(1, 32)[0]))
  with pytest.raises(ValueError, match="0000.png.*test/<class>/<image>"):
    data.read_image_folder(tmp_path / "flat", "test")
  with pytest.raises(ValueError, match="no images under a 'train' folder"):
    data.read_image_folder(tmp_path / "flat", "train")
  bad = tmp_path / "bad-test.zip"
  bad.write_bytes(b"PK\x03\x04 broken")
  with pytest.raises(ValueError, match="bad-test.zip.*not a valid zip"):
    data.load("cifar10", bad, "test", cache_dir=None)
  with pytest.raises(ValueError, match="holds no cifar10 data"):
    data.load("cifar10", tmp_path / "flat" / "test", "test", cache_dir=None)
  with pytest.raises(ValueError, match="3 class folders, cifar10 has 10"):
    tree = _image_tree()
    for name, (img, _) in tree.items():
      (tmp_path / "three" / name).parent.mkdir(parents=True, exist_ok=True)
      (tmp_path / "three" / name).write_bytes(_png(img))
    data.load("cifar10", tmp_path / "three", "test", cache_dir=None)
  with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
    data.load("svhn", tmp_path)
  with pytest.raises(ValueError, match="unknown split 'dev'"):
    data.load("cifar10", tmp_path, "dev")


# ----------------------------------------------------------------------------- transforms

def test_normalize_matches_torchvision_formula():
  x = _pixels(2, 4)
  mean, std = data.NORMALIZATION["cifar"]
  want = (x.astype(np.float64) / 255 - np.array(mean)) / np.array(std)
  np.testing.assert_allclose(np.asarray(data.normalize(x, mean, std)), want, rtol=1e-6, atol=1e-6)


def test_random_crop_flip_is_a_crop_of_the_padded_image():
  x = _pixels(16, 8)
  out = np.asarray(jax.jit(data.random_crop_flip, static_argnums=2)(jax.random.key(3), x, 2))
  padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
  flips = 0
  for img, o in zip(padded, out):
    cands = {(i, j, f) for i in range(5) for j in range(5) for f in (0, 1)
             if np.array_equal(o, (img[i:i + 8, j:j + 8][:, ::-1] if f else img[i:i + 8, j:j + 8]))}
    assert cands, "output is not a (flipped) crop of the padded input"
    flips += min(f for *_, f in cands) == 1
  assert 0 < flips < 16  # both branches happen
  again = np.asarray(data.random_crop_flip(jax.random.key(3), x, 2))
  np.testing.assert_array_equal(out, again)


def test_minibatch_is_deterministic_and_normalised():
  ds = data.load("digits16")
  a = data.select_minibatch(jax.random.key(1), ds, 32)
  b = data.select_minibatch(jax.random.key(1), ds, 32)
  np.testing.assert_array_equal(a[2], b[2])
  assert a[0].dtype == np.float32 and abs(float(np.mean(data.normalize(ds.images, ds.mean, ds.std)))) < 1e-4
  first = data.select_minibatch(jax.random.key(1), ds, 8, first=True)
  np.testing.assert_array_equal(first[2], np.arange(8))


# ----------------------------------------------------------------------------- the shared JPEG copy

def test_shared_cifar10_jpeg_test_split(tmp_path, shared_data):
  ref = np.load(shared_data("images/cifar10_test_jpegcopy_100perclass_uint8.npz"))
  ds = data.load("cifar10", shared_data("cifar10/cifar10-jpeg-test.zip").parent, "test", cache_dir=tmp_path)
  assert ds.images.shape == (10000, 32, 32, 3) and ds.images.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(ds.labels), [1000] * 10)
  # the reference holds test/<class>/0000..0099.jpg of each class, decoded independently
  first100 = np.concatenate([np.flatnonzero(ds.labels == c)[:100] for c in range(10)])
  np.testing.assert_array_equal(ds.images[first100], ref["x"])
  np.testing.assert_array_equal(ds.labels[first100], ref["y"])
