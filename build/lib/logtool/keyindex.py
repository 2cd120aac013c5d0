"""Which segments can hold a key, decided before any segment is scanned.

Each segment's commit entry describes its row groups (``row_groups``): the null counts of ``key``
and ``prev_key``, and where the Parquet bloom filter of ``key`` lies in the file. No key value is
written there: the commit log is kept for ever, and a purged key must leave no trace in it.
A lookup reads, of each filter, the one 32-byte block the key's hash selects, so the query that
follows reads only the segments that can hold the key. A segment whose entry predates
``row_groups`` is described from its footer instead.

The bloom filters are Parquet's split-block filters (xxHash64 of the value's bytes, 32-byte
blocks of eight 32-bit words); probing one needs only the hash and eight bit tests.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_MASK = (1 << 64) - 1
_P1, _P2, _P3 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_P4, _P5 = 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5
# The salts of Parquet's split-block bloom filter, one per word of a block.
_SALT = (0x47B6137B, 0x44974D91, 0x8824AD5B, 0xA2B7289D, 0x705495C7, 0x2DF1424B, 0x9EFC4947, 0x5C6BFB31)


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * _P2) & _MASK, 31) * _P1) & _MASK


def xxh64(data: bytes, seed: int = 0) -> int:
    """xxHash64 of ``data`` (the hash Parquet bloom filters use, with seed 0)."""
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + _P1 + _P2) & _MASK, (seed + _P2) & _MASK, seed & _MASK, (seed - _P1) & _MASK]
        while i + 32 <= n:
            for j in range(4):
                v[j] = _round(v[j], int.from_bytes(data[i + 8 * j : i + 8 * j + 8], "little"))
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & _MASK
        for lane in v:
            h = ((h ^ _round(0, lane)) * _P1 + _P4) & _MASK
    else:
        h = (seed + _P5) & _MASK
    h = (h + n) & _MASK
    while i + 8 <= n:
        h ^= _round(0, int.from_bytes(data[i : i + 8], "little"))
        h = (_rotl(h, 27) * _P1 + _P4) & _MASK
        i += 8
    if i + 4 <= n:
        h ^= (int.from_bytes(data[i : i + 4], "little") * _P1) & _MASK
        h = (_rotl(h, 23) * _P2 + _P3) & _MASK
        i += 4
    while i < n:
        h ^= (data[i] * _P5) & _MASK
        h = (_rotl(h, 11) * _P1) & _MASK
        i += 1
    h = ((h ^ (h >> 33)) * _P2) & _MASK
    h = ((h ^ (h >> 29)) * _P3) & _MASK
    return h ^ (h >> 32)


def _bitset_size(header: bytes) -> int | None:
    """The size of a bloom filter's bit set, from the start of its Thrift header: the first field
    is ``numBytes`` (compact field header 0x15, field 1 of type i32, then a zigzag varint). None
    where the header is not that (the filter is then not used)."""
    if len(header) < 2 or header[0] != 0x15:
        return None
    value, shift = 0, 0
    for byte in header[1:6]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            size = (value >> 1) ^ -(value & 1)
            return size if size > 0 and size % 32 == 0 else None
        shift += 7
    return None


def _may_contain(fd: int, offset: int, length: int, h: int) -> bool:
    """Probe the split-block bloom filter serialized at ``offset`` (``length`` bytes, header
    included) for the hash ``h``: only the one 32-byte block the hash selects is read."""
    size = _bitset_size(os.pread(fd, min(16, length), offset))
    if size is None or size > length:
        return True
    start = offset + length - size + (((h >> 32) * (size // 32)) >> 32) * 32
    block = os.pread(fd, 32, start)
    if len(block) < 32:
        return True
    low = h & 0xFFFFFFFF
    for i, salt in enumerate(_SALT):
        word = int.from_bytes(block[4 * i : 4 * i + 4], "little")
        if not (word >> (((low * salt) & 0xFFFFFFFF) >> 27)) & 1:
            return False
    return True


def describe(path: str | Path) -> list[dict[str, Any]]:
    """The ``row_groups`` of a segment's commit entry, read from its footer."""
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    groups = []
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        out: dict[str, Any] = {"rows": group.num_rows}
        for name in ("key", "prev_key"):
            stats = group.column(index[name]).statistics
            out[f"{name}_nulls"] = stats.null_count if stats is not None and stats.has_null_count else None
        key = group.column(index["key"])
        offset, length = key.bloom_filter_offset, key.bloom_filter_length
        out["key_bloom"] = [offset, length] if offset and offset > 0 and length and length > 0 else None
        groups.append(out)
    return groups


def _has_values(group: dict[str, Any], column: str) -> bool:
    """Whether ``column`` can hold a value (not only nulls) in the row group."""
    nulls = group[f"{column}_nulls"]
    return nulls is None or nulls < group["rows"]


class SegmentIndex:
    """The live segments and their row groups, for finding the ones a key can be in."""

    def __init__(self, root: Path, entries: Iterable[dict[str, Any]]) -> None:
        self.files: list[str] = []
        self.groups: list[list[dict[str, Any]]] = []
        for entry in entries:
            path = str(root / entry["path"])
            self.files.append(path)
            groups = entry.get("row_groups")
            self.groups.append(groups if groups is not None else describe(path))

    def _where(self, test: Any) -> list[str]:
        return [f for f, groups in zip(self.files, self.groups, strict=True) if any(map(test, groups))]

    def holding(self, key: str) -> list[str]:
        """Segments that can hold an event of ``key``: its bloom filter allows it."""
        h = xxh64(key.encode("utf-8"))
        out = []
        for path, groups in zip(self.files, self.groups, strict=True):
            candidates = [g for g in groups if _has_values(g, "key")]
            if not candidates:
                continue
            if any(g["key_bloom"] is None for g in candidates):
                out.append(path)
                continue
            with open(path, "rb") as f:
                fd = f.fileno()
                if any(_may_contain(fd, g["key_bloom"][0], g["key_bloom"][1], h) for g in candidates):
                    out.append(path)
        return out

    def key_changes(self) -> list[str]:
        """Segments that can hold a key change (an event with a ``prev_key``); DuckDB's own
        statistics prune their row groups for one ``prev_key``."""
        return self._where(lambda g: _has_values(g, "prev_key"))

    def keyless(self) -> list[str]:
        """Segments that can hold an event without a key (a truncate)."""
        return self._where(lambda g: g["key_nulls"] is None or g["key_nulls"] > 0)
