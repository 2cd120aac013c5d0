"""PostgreSQL logical decoding through wal2json, format-version 1: one JSON object per transaction.

Capture it with ``pg_recvlogical --start -f FILE -o format-version=1 -o include-lsn=1
-o include-xids=1 -o include-timestamp=1`` (``-o include-pk=1`` names the key columns;
``pretty-print=1`` spreads a transaction over many lines, and ``write-in-chunks=1`` puts each change
on a line of its own; both read the same). A transaction is
``{"xid", "nextlsn", "timestamp", "change": [{"kind": "insert"|"update"|"delete"|"message",
"schema", "table", "columnnames", "columntypes", "columnvalues", "oldkeys": {"keynames",
"keytypes", "keyvalues"}, "pk": {"pknames", "pktypes"}}]}``.

Events are as for format-version 2 (see ``logtool.formats.wal2json``: keys, key changes, keyless
tables, messages, exact numbers), with these differences:

- ``txn.position`` is ``nextlsn``, the end of the commit record, as in version 2: the only LSN
  version 1 writes. Changes have no LSN of their own (``source.position`` is null) and
  ``source.line`` is the line where the change's object begins.
- Without ``include-pk`` the key columns come from ``--key-field public.t:id``; with it, a table
  the capture names no key for has none. ``oldkeys`` under REPLICA IDENTITY FULL is the old row
  but its NULL columns, which a keyed table's key looks like: where no key is named anywhere in the
  capture, a table whose oldkeys are narrower than the row stops the read (with the options to
  pass) unless an old row of it as wide as the row came first.

What the plugin loses (wal2json 2.5), besides what version 2 loses (NaN and infinities as null,
unchanged TOASTed columns left out of updates):

- **TRUNCATE is never written**: the transaction appears with an empty ``change`` list, so a
  replay keeps the rows a TRUNCATE removed.
- After a transaction of several changes, a message can be written as invalid JSON,
  ``{"change":[,{...}]}`` (fixed in wal2json 2.6). That leading comma is read past; any other
  broken transaction is reported with its first line, and the ones around it are read.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import counted
from . import Format
from .base import (
    BadRecord,
    Mapping,
    Report,
    Source,
    check_mapping_for,
    iter_lines,
    not_utf8,
    raw_bytes,
    raw_decode_exact,
    undecoded,
)
from .wal2json import (
    KEY_OPTIONS,
    Change,
    Commit,
    Decoder,
    column_value,
    entity_of,
    message_change,
    ts_or_none,
    xid_text,
)

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "wal2json-v1"

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_CHANGE_LINE = re.compile(r'\{\s*"kind"\s*:')  # a change that write-in-chunks put on a line of its own


class _Malformed(ValueError):
    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.pos = pos


def _skip(text: str, i: int) -> int:
    m = _WS.match(text, i)
    return m.end() if m else i


def _expect(text: str, i: int, char: str) -> None:
    if not text.startswith(char, i):
        found = repr(text[i]) if i < len(text) else "the end"
        raise _Malformed(f"expected {char!r}, found {found}", i)


def _value(text: str, i: int) -> tuple[Any, int]:
    # the decoder of loads_exact (numbers stay exact), for a value at an index
    try:
        value, end = raw_decode_exact(text, i)
    except ValueError as e:
        raise _Malformed(getattr(e, "msg", str(e)), getattr(e, "pos", i)) from None
    return value, end


def parse_transaction(text: str) -> tuple[dict[str, Any], list[tuple[int, int, Any]]]:
    """A transaction object: its other members, and its changes as (start, end, value).

    The change list is walked element by element so that every change's place in the text is
    known, and so that the leading comma wal2json 2.5 can write (``"change":[,{...}]``) is
    read past. Raises ``_Malformed`` (a ValueError with ``pos``) for anything else.
    """
    header: dict[str, Any] = {}
    changes: list[tuple[int, int, Any]] = []
    i = _skip(text, 0)
    _expect(text, i, "{")
    i = _skip(text, i + 1)
    if not text.startswith("}", i):
        while True:
            key, i = _value(text, i)
            if not isinstance(key, str):
                raise _Malformed("expected a member name", i)
            i = _skip(text, i)
            _expect(text, i, ":")
            i = _skip(text, i + 1)
            if key == "change":
                i = _change_list(text, i, changes)
            else:
                header[key], i = _value(text, i)
            i = _skip(text, i)
            if not text.startswith(",", i):
                break
            i = _skip(text, i + 1)
    _expect(text, i, "}")
    i = _skip(text, i + 1)
    if i != len(text):
        raise _Malformed("text after the end of the transaction object", i)
    if "change" not in header and not changes and '"change"' not in text:
        # a change on its own (as wal2json's write-in-chunks output splits a transaction), or
        # another object: never an empty transaction, which would lose what it holds
        raise ValueError("it has no 'change' list")
    return header, changes


def _change_list(text: str, i: int, out: list[tuple[int, int, Any]]) -> int:
    _expect(text, i, "[")
    i = _skip(text, i + 1)
    if text.startswith(",", i):  # wal2json 2.5's stray comma before a message's change
        i = _skip(text, i + 1)
    if text.startswith("]", i):
        return i + 1
    while True:
        value, end = _value(text, i)
        out.append((i, end, value))
        i = _skip(text, end)
        if not text.startswith(",", i):
            _expect(text, i, "]")
            return i + 1
        i = _skip(text, i + 1)


def _depth(text: str) -> int:
    bare = _STRING.sub("", text)
    return bare.count("{") + bare.count("[") - bare.count("}") - bare.count("]")


def _objects(
    lines: Iterator[tuple[int, str]], source: Source, report: Report, limit: int
) -> Iterator[tuple[list[int], list[int], str]]:
    """Whole JSON values from lines: (line numbers, their start offsets, text joined by newlines).

    A value ends where its brackets balance (brackets inside strings do not count), however its
    lines are laid out: one line, pretty-printed, or write-in-chunks (the transaction's members on
    one line, then each change on its own line, ``{...}`` then ``,{...}``, then ``]}``). A line
    that starts with ``{`` in its first column and is not a change (``{"kind": ...``) begins a
    new transaction, so one that never closes costs only itself.
    """
    numbers: list[int] = []
    starts: list[int] = []
    parts: list[str] = []
    depth = size = 0
    for number, text in lines:
        if parts and text.startswith("{") and not _CHANGE_LINE.match(text):
            report(BadRecord(source.name, numbers[0], "JSON object does not close before the next one begins",
                             raw_bytes("\n".join(parts))))  # fmt: skip
            numbers, starts, parts, depth, size = [], [], [], 0, 0
        if not parts and not text.lstrip().startswith("{"):
            report(BadRecord(source.name, number, "expected a JSON object (a transaction)", raw_bytes(text)))
            continue
        numbers.append(number)
        starts.append(size)
        parts.append(text)
        size += len(text) + 1
        depth += _depth(text)
        if depth <= 0:
            yield numbers, starts, "\n".join(parts)
            numbers, starts, parts, depth, size = [], [], [], 0, 0
        elif size > limit:
            report(BadRecord(source.name, numbers[0], f"JSON object longer than the limit of {counted(limit, 'byte')}",
                             raw_bytes("\n".join(parts)[:4096])))  # fmt: skip
            numbers, starts, parts, depth, size = [], [], [], 0, 0
    if parts:
        report(BadRecord(source.name, numbers[0], "the input ends inside a JSON object (cut short?)",
                         raw_bytes("\n".join(parts))))  # fmt: skip


_KINDS = {"insert": "insert", "update": "update", "delete": "delete"}


def _pairs(names: Any, values: Any, types: Any, what: str) -> dict[str, Any]:
    if not isinstance(names, list) or not isinstance(values, list) or len(names) != len(values):
        raise ValueError(f"{what}: names and values must be lists of the same length")
    if not isinstance(types, list) or len(types) != len(values):
        types = [None] * len(values)  # (include-types=0 writes none)
    return {str(n): column_value(t, v) for n, t, v in zip(names, types, values, strict=True)}


def _change(value: Any, line: int, raw: str) -> Change:
    if not isinstance(value, dict):
        raise ValueError("a change must be a JSON object")
    kind = value.get("kind")
    if kind == "message":
        return message_change(value, line, raw, None, None)
    if kind not in _KINDS:
        raise ValueError(f"unknown kind {kind!r} (expected insert, update, delete or message)")
    pk = value.get("pk")
    if pk is not None and not (isinstance(pk, dict) and isinstance(pk.get("pknames"), list)):
        raise ValueError("pk must be {pknames, pktypes}")
    old = value.get("oldkeys")
    if old is not None and not isinstance(old, dict):
        raise ValueError("oldkeys must be {keynames, keytypes, keyvalues}")
    return Change(
        _KINDS[kind], entity_of(value), line, raw,
        new=_pairs(value.get("columnnames"), value.get("columnvalues"), value.get("columntypes"), "columns") if kind != "delete" else None,
        old=_pairs(old.get("keynames"), old.get("keyvalues"), old.get("keytypes"), "oldkeys") if old is not None else None,
        pk=tuple(str(n) for n in pk["pknames"]) if pk is not None else None,
    )  # fmt: skip


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read wal2json format-version 1 output into canonical events (see the module docstring)."""
    check_mapping_for(NAME, mapping, KEY_OPTIONS)
    dec = Decoder(NAME, source, mapping, report, ", or capture with -o include-pk=1", old_omits_nulls=True)
    with source.open() as stream:
        lines = iter_lines(stream, source, report, mapping.max_line_bytes, lossless=True)
        for numbers, starts, text in _objects(lines, source, report, mapping.max_line_bytes):

            def line_at(pos: int, numbers: list[int] = numbers, starts: list[int] = starts) -> int:
                return numbers[bisect.bisect_right(starts, pos) - 1]

            try:
                header, changes = parse_transaction(text)
                if any(isinstance(v, str) and undecoded(v) is not None for v in header.values()):
                    raise ValueError(not_utf8("in the transaction's members"))
                xid = xid_text(header.get("xid"))
                commit = Commit(xid, header.get("nextlsn"), ts_or_none(header.get("timestamp")))
            except _Malformed as e:
                at = line_at(e.pos)
                column = e.pos - starts[numbers.index(at)] + 1
                report(BadRecord(source.name, numbers[0], f"invalid JSON at line {at} column {column}: {e}",
                                 raw_bytes(text)))  # fmt: skip
                continue
            except ValueError as e:
                report(BadRecord(source.name, numbers[0], f"not a wal2json transaction: {e}", raw_bytes(text)))
                continue
            dec.begin(xid, numbers[0])
            for start, end, value in changes:
                line = line_at(start)
                try:
                    byte = undecoded(text[start:end])
                    if byte is not None and not (isinstance(value, dict) and value.get("kind") == "message"):
                        raise ValueError(not_utf8(f"at byte {byte} of the change"))  # a message's content may be bytes
                    dec.add(_change(value, line, text[start:end]))
                except ValueError as e:
                    report(BadRecord(source.name, line, f"not a wal2json change: {e}", raw_bytes(text[start:end])))
            dec.commit(commit, numbers[-1])
            yield from dec.drain()
    yield from dec.finish()


_HEAD = re.compile(rb'\A\s*\{\s*"(xid|nextlsn|timestamp|change)"\s*:')
_CHANGE = re.compile(rb'"change"\s*:\s*\[\s*,?\s*(\{\s*"kind"\s*:|\])')


def sniff(head: bytes) -> int:
    """A JSON object that opens with a transaction's members and holds a ``change`` list."""
    if _HEAD.match(head) and _CHANGE.search(head):
        return 95
    return 0


FORMAT = Format(
    name=NAME,
    description="PostgreSQL wal2json format-version 1 (one JSON object per transaction, compact or pretty-printed)",
    sniff=sniff,
    read=read,
)
