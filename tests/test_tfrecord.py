"""TFRecord framing, protobuf decoding and the NB101 record reader, on files
this test writes with its own encoder."""

import base64
import json
import struct

import numpy as np
import pytest

from ntkjax import ground_truth, tfrecord
from ntkjax.spaces import nb101


def _varint(n):
  out = bytearray()
  while True:
    b = n & 0x7F
    n >>= 7
    out.append(b | (0x80 if n else 0))
    if not n:
      return bytes(out)


def _field(number, wire, payload):
  key = _varint(number << 3 | wire)
  if wire == 2:
    return key + _varint(len(payload)) + payload
  return key + payload


def _double(number, x):
  return _field(number, 1, struct.pack("<d", x))


def _evaluation(epoch, valid, test):
  return (_double(1, epoch) + _double(2, 10.0 * epoch) + _double(3, 1.0) + _double(4, valid)
          + _double(5, test) + _field(6, 2, b"/ckpt/model.ckpt-1"))


def _metrics(valid, test, params):
  evals = [_evaluation(0, 0.1, 0.1), _evaluation(54, valid - 0.05, test - 0.05), _evaluation(108, valid, test)]
  return b"".join(_field(1, 2, e) for e in evals) + _field(2, 0, _varint(params)) + _double(3, 1234.5)


def _frame(data):
  length = struct.pack("<Q", len(data))
  return (length + struct.pack("<I", tfrecord.masked_crc(length)) + data
          + struct.pack("<I", tfrecord.masked_crc(data)))


SPEC_A = ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
          ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])
SPEC_B = ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"])


def _write_nb101(path, hash_override=None):
  records, want = [], {}
  for (matrix, ops), runs in ((SPEC_A, [(0.90, 0.89), (0.92, 0.91), (0.94, 0.90)]),
                              (SPEC_B, [(0.80, 0.79), (0.82, 0.81), (0.84, 0.80)])):
    spec = nb101.Spec.create(matrix, ops)
    key = hash_override or spec.hash
    bits = "".join(str(b) for b in np.asarray(matrix).ravel())
    for valid, test in runs:
      raw = base64.b64encode(_metrics(valid, test, nb101.num_params(spec))).decode()
      records.append(json.dumps([key, 108, bits, ",".join(ops), raw]).encode())
    metrics = base64.b64encode(_metrics(0.5, 0.5, 1)).decode()
    records.append(json.dumps([key, 36, bits, ",".join(ops), metrics]).encode())
    want[key] = (100 * np.mean([v for v, _ in runs]), 100 * np.mean([t for _, t in runs]), spec)
  path.write_bytes(b"".join(_frame(r) for r in records))
  return want


def test_crc32c_check_value():
  assert tfrecord.crc32c(b"123456789") == 0xE3069283
  assert tfrecord.crc32c(b"") == 0


def test_decode_message_fields():
  msg = _field(1, 0, _varint(300)) + _double(2, 2.5) + _field(3, 2, b"abc") + _field(1, 0, _varint(1))
  fields = tfrecord.decode_message(msg)
  assert fields[1] == [300, 1] and struct.unpack("<d", fields[2][0])[0] == 2.5 and fields[3] == [b"abc"]
  with pytest.raises(ValueError, match="truncated"):
    tfrecord.decode_message(msg[:-1])


def test_nb101_tfrecord_reader(tmp_path):
  path = tmp_path / "nasbench_only108.tfrecord"
  want = _write_nb101(path)
  for split, k in (("valid", 0), ("test", 1)):
    gt = ground_truth.read_nb101_tfrecord(path, split=split, check_hash=True, verify_data=True)
    specs = gt.universe
    assert set(gt.accuracy) == set(want) and gt.space == "nb101"
    for key, w in want.items():
      assert gt[key] == pytest.approx(w[k])
      assert specs[key].hash == key and np.array_equal(specs[key].matrix, w[2].matrix)
  with pytest.raises(ValueError, match="no records for 12 epochs"):
    ground_truth.read_nb101_tfrecord(path, epochs=12)


def test_nb101_tfrecord_errors_name_file_and_offset(tmp_path):
  path = tmp_path / "nb.tfrecord"
  _write_nb101(path)
  raw = path.read_bytes()
  (tmp_path / "cut.tfrecord").write_bytes(raw[:-7])
  with pytest.raises(ValueError, match=r"cut.tfrecord: truncated record at byte \d+"):
    ground_truth.read_nb101_tfrecord(tmp_path / "cut.tfrecord")
  flipped = bytearray(raw)
  flipped[40] ^= 0xFF  # inside the first payload
  (tmp_path / "flip.tfrecord").write_bytes(bytes(flipped))
  with pytest.raises(ValueError, match="flip.tfrecord: data CRC mismatch in the record at byte 0"):
    ground_truth.read_nb101_tfrecord(tmp_path / "flip.tfrecord", verify_data=True)
  (tmp_path / "text.tfrecord").write_bytes(b"this is not a tfrecord file at all")
  with pytest.raises(ValueError, match="corrupt record length at byte 0"):
    ground_truth.read_nb101_tfrecord(tmp_path / "text.tfrecord")
  _write_nb101(tmp_path / "bad_hash.tfrecord", hash_override="0" * 32)
  with pytest.raises(ValueError, match="has hash 0{32} but its spec hashes to"):
    ground_truth.read_nb101_tfrecord(tmp_path / "bad_hash.tfrecord", check_hash=True)
  (tmp_path / "junk.tfrecord").write_bytes(_frame(b'{"not": "a list"}'))
  with pytest.raises(ValueError, match="record 0 is not an NB101 record"):
    ground_truth.read_nb101_tfrecord(tmp_path / "junk.tfrecord")
  with pytest.raises(FileNotFoundError, match="missing.tfrecord"):
    ground_truth.read_nb101_tfrecord(tmp_path / "missing.tfrecord")


def test_nb101_json_readers_on_shared_exports(shared_data):
  vis = shared_data("nasbench101/nb101_nasbench_vis_1k.json")
  gt = ground_truth.read_nb101_json(vis)
  specs = gt.universe
  assert len(gt) == 1000 and max(gt.accuracy.values()) == pytest.approx(94.67, abs=0.01)
  assert all(specs[k].hash == k for k in list(specs)[:50])
  fx = ground_truth.read_nb101_json(shared_data("nasbench101/nb101_naslib_test_fixture_30.json"), split="test")
  assert len(fx) == 30 and all(86.5 < v < 93.1 for v in fx.accuracy.values())
  with pytest.raises(ValueError, match="no column '108_final_test_accuracy'"):
    ground_truth.read_nb101_json(vis, split="test")
