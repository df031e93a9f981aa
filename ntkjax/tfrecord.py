"""TFRecord files and protobuf messages, read without TensorFlow.

A TFRecord is a sequence of ``uint64 length | uint32 masked CRC32C(length) |
data | uint32 masked CRC32C(data)`` (little endian). ``read_records`` checks
the length CRC always (cheap, and it catches misframing) and the data CRC
with ``verify_data=True`` (pure Python, so slow on gigabytes).
``decode_message`` splits protobuf wire format into fields.
"""

from __future__ import annotations

import pathlib
import struct
from typing import Iterator

__all__ = ["crc32c", "masked_crc", "read_records", "decode_message"]


def _crc_table():
  table = []
  for i in range(256):
    c = i
    for _ in range(8):
      c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    table.append(c)
  return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli), as TFRecord uses."""
  c = 0xFFFFFFFF
  for b in data:
    c = _TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
  return c ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
  c = crc32c(data)
  return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_records(path, *, verify_data: bool = False) -> Iterator[bytes]:
  """Yields the payload of every record; a truncated or corrupt file raises
  ``ValueError`` naming the file and the byte offset."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"{path} does not exist")
  with open(path, "rb") as f:
    offset = 0
    while True:
      header = f.read(12)
      if not header:
        return
      if len(header) < 12:
        raise ValueError(f"{path}: truncated record header at byte {offset}")
      length, length_crc = struct.unpack("<QI", header)
      if masked_crc(header[:8]) != length_crc:
        raise ValueError(f"{path}: corrupt record length at byte {offset} (not a TFRecord file?)")
      data = f.read(length)
      footer = f.read(4)
      if len(data) < length or len(footer) < 4:
        raise ValueError(f"{path}: truncated record at byte {offset} ({length} bytes announced)")
      if verify_data and masked_crc(data) != struct.unpack("<I", footer)[0]:
        raise ValueError(f"{path}: data CRC mismatch in the record at byte {offset}")
      offset += 16 + length
      yield data


def _varint(buf: bytes, i: int) -> tuple[int, int]:
  result = shift = 0
  while True:
    if i >= len(buf):
      raise ValueError("truncated varint")
    b = buf[i]
    result |= (b & 0x7F) << shift
    i += 1
    if not b & 0x80:
      return result, i
    shift += 7


def decode_message(buf: bytes) -> dict[int, list]:
  """Protobuf wire format -> ``{field number: [values]}``: ints for varints,
  ``bytes`` for length-delimited fields, raw 8/4 bytes for fixed64/fixed32
  (decode doubles with ``struct.unpack('<d', v)``)."""
  fields: dict[int, list] = {}
  i = 0
  while i < len(buf):
    key, i = _varint(buf, i)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, i = _varint(buf, i)
    elif wire == 1:
      value, i = buf[i:i + 8], i + 8
    elif wire == 2:
      n, i = _varint(buf, i)
      value, i = buf[i:i + n], i + n
    elif wire == 5:
      value, i = buf[i:i + 4], i + 4
    else:
      raise ValueError(f"unsupported protobuf wire type {wire} (field {number})")
    if i > len(buf):
      raise ValueError(f"truncated protobuf field {number}")
    fields.setdefault(number, []).append(value)
  return fields
