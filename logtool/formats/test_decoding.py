"""PostgreSQL logical decoding through the test_decoding plugin: its text output.

Capture it with ``pg_recvlogical --start -f FILE -P test_decoding -o include-xids=1
-o include-timestamp=1``. Records:

```
BEGIN 1234
table public.t: INSERT: id[integer]:1 name[text]:'it''s'
table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 doc[text]:unchanged-toast-datum
table public.t: DELETE: id[integer]:2
table public.a, public.b: TRUNCATE: (no-flags)
message: transactional: 1 prefix: p, sz: 3 content:abc
COMMIT 1234 (at 2026-03-05 12:00:00.123456+00)
```

Two-phase transactions (``pg_recvlogical --enable-two-phase``) are written when they are
prepared: ``BEGIN``, the changes, then ``PREPARE TRANSACTION 'gid', txid 1235 (at ...)``; other
transactions may follow before ``COMMIT PREPARED 'gid', txid 1235 (at ...)`` or ``ROLLBACK PREPARED
'gid' ...`` ends it. Its changes wait for that record and become events there, in commit order,
with its time; a rolled back transaction's events are marked ``txn.aborted``, which replay and
compaction leave out. One still prepared at the end of the input is reported as a transaction
cut short is.

A quoted value, and a message's content, can hold newlines, so one record can span several
lines: a record ends where its quotes close (a message: after ``sz`` bytes of content).
Identifiers are unquoted (``public."My Table"`` is the entity ``public.My Table``).

Values: unquoted numbers (the integer types, numeric, real, double precision) become exact JSON
numbers, ``true``/``false`` booleans, ``null`` NULL; NaN and the infinities stay strings, so,
unlike wal2json, nothing is lost; everything else is the text PostgreSQL printed, as a JSON string
(jsonb, arrays, timestamptz as printed). ``unchanged-toast-datum`` (a TOASTed value an update did
not change) is left out of ``data``, so a replay keeps the old value, and the update is a ``patch``.

Keys: the output does not say which columns form a table's key. Name them with ``--key-field
public.t:id`` (several for a composite key). A table with none named is read as a table without a
key (null key, the old row in ``before``), which is right under REPLICA IDENTITY FULL; if the
output shows that the table has a key after all (an UPDATE without ``old-key``, which FULL never
writes) the read stops and says which option to pass. An old key narrower than the row shows
nothing: under FULL, ``old-key:`` and a DELETE's old row leave out the old row's NULL columns
(replay matches a column left out with a NULL only), as a key change of a keyed table looks; where
every old row of such a table named the same columns, a note says how to name them as its key.

Events are otherwise as for wal2json (see ``logtool.formats.wal2json``): a transaction is held
until its COMMIT, whose xid and time every change carries. **test_decoding writes no LSN** and
pg_recvlogical adds none, so ``txn.position`` and ``source.position`` are null: replay such a log
by offset or time, not by position.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import counted
from . import Format
from .base import (
    BadRecord,
    Mapping,
    RawNumber,
    Report,
    Source,
    check_mapping_for,
    iter_each_line,
    not_utf8,
    qualified_name,
    raw_bytes,
    undecoded,
)
from .wal2json import KEY_OPTIONS, MESSAGE_ENTITY, Change, Commit, Decoder, message_body, ts_or_none

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "test_decoding"

_BRACKET = re.compile(r"(BEGIN|COMMIT)(?: (\d+))?(?: \(at (.+)\))?")
# two-phase commit (pg_recvlogical --enable-two-phase): the gid as quote_literal writes it
_TWO_PHASE = re.compile(
    r"(PREPARE TRANSACTION|COMMIT PREPARED|ROLLBACK PREPARED) (E?)'((?:[^']|'')*)'(?:, txid (\d+))?(?: \(at (.+)\))?"
)
_TWO_PHASE_WORDS = ("PREPARE TRANSACTION ", "COMMIT PREPARED ", "ROLLBACK PREPARED ")
_MESSAGE = re.compile(r"message: transactional: ([01]) prefix: (.*?), sz: (\d+) content:")
_QUOTES = re.compile(r"['\"]")
_BARE_IDENT = re.compile(r'[^".,:\[\]\s]+')
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_TOAST = object()  # an unchanged TOASTed value: not in the output


def _open_quote(text: str, quote: str | None) -> str | None:
    """The quote still open at the end of text, given the one open at its start.

    Values are in single quotes (a quote inside doubled), identifiers in double quotes.
    """
    i, n = 0, len(text)
    while i < n:
        if quote is None:
            m = _QUOTES.search(text, i)
            if m is None:
                return None
            quote, i = m.group(), m.end()
            continue
        j = text.find(quote, i)
        if j < 0:
            return quote
        if text.startswith(quote, j + 1):
            i = j + 2
        else:
            quote, i = None, j + 1
    return quote


def _records(source: Source, report: Report, limit: int) -> Iterator[tuple[int, str]]:
    """(first line, text) of every record, a record spanning lines where a value holds newlines."""
    parts: list[str] = []
    first = 0
    quote: str | None = None
    content_left = 0  # bytes of message content still to come
    size = 0
    with source.open() as stream:  # (lossless: a message's content may be bytes that are not UTF-8)
        for number, line in iter_each_line(stream, source, report, limit, lossless=True):
            if not parts:
                if not line.strip():
                    continue
                first, size, quote, content_left = number, 0, None, 0
                if line.startswith("message: "):
                    m = _MESSAGE.match(line)
                    content_left = int(m.group(3)) if m else 0
                    line_content = line[m.end() :] if m else ""
                    content_left -= len(raw_bytes(line_content)) - line_content.endswith("\n")
                elif line.startswith(("table ", *_TWO_PHASE_WORDS)):  # a gid, as a value, may hold newlines
                    quote = _open_quote(line, None)
            elif line == "":
                # a line iter_line_chunks could not read (and reported): the record is broken
                report(BadRecord(source.name, first, "record spans a line that could not be read",
                                 raw_bytes("".join(parts))))  # fmt: skip
                parts = []
                continue
            elif content_left > 0:
                # the newline that ended the line before belongs to the content
                content_left -= 1 + len(raw_bytes(line)) - line.endswith("\n")
            else:
                quote = _open_quote(line, quote)
            parts.append(line)
            size += len(line)
            if quote is None and content_left <= 0:
                yield first, "".join(parts).removesuffix("\n").removesuffix("\r")
                parts = []
            elif size > limit:
                report(BadRecord(source.name, first, f"record longer than the limit of {counted(limit, 'byte')}",
                                 raw_bytes("".join(parts)[:4096])))  # fmt: skip
                parts = []
    if parts:
        what = "a message's content" if content_left > 0 else "a quoted value"
        report(BadRecord(source.name, first, f"the input ends inside {what} (cut short?)", raw_bytes("".join(parts))))


def _ident(text: str, i: int) -> tuple[str, int]:
    """An identifier at i, quoted or not, unquoted."""
    if text.startswith('"', i):
        return _quoted(text, i, "identifier")
    m = _BARE_IDENT.match(text, i)
    if m is None:
        raise ValueError(f"expected a name at char {i}")
    return m.group(), m.end()


def _quoted(text: str, i: int, what: str) -> tuple[str, int]:
    """The quoted text at i (an identifier in double quotes, a value in single quotes; the quote
    doubled inside it), unquoted, and the index just past its closing quote."""
    quote = text[i]
    parts = []
    j = i + 1
    while True:
        k = text.find(quote, j)
        if k < 0:
            raise ValueError(f"unterminated quoted {what} at char {i}")
        parts.append(text[j:k])
        if not text.startswith(quote * 2, k):
            return "".join(parts), k + 1
        parts.append(quote)
        j = k + 2


def _qualified(text: str, i: int) -> tuple[str, int]:
    schema, i = _ident(text, i)
    if not text.startswith(".", i):
        raise ValueError(f"expected schema.table at char {i}")
    table, i = _ident(text, i + 1)
    return qualified_name(schema, table), i


def _value(text: str, i: int) -> tuple[Any, int]:
    if text.startswith("'", i):
        return _quoted(text, i, "value")
    k = text.find(" ", i)
    k = len(text) if k < 0 else k
    token = text[i:k]
    if token == "null":
        return None, k
    if token == "unchanged-toast-datum":
        return _TOAST, k
    if token in ("true", "false"):
        return token == "true", k
    if _JSON_NUMBER.fullmatch(token):
        return RawNumber(token), k
    if token.startswith("B'") and token.endswith("'"):  # bit strings
        return token[2:-1], k
    return token, k  # NaN, Infinity, -Infinity


def _tuple(text: str, i: int, stop: str | None = None, omitted: list[str] | None = None) -> tuple[dict[str, Any], int]:
    """Columns ``name[type]:value`` separated by spaces, up to the end or to ``stop``; the names of
    unchanged TOASTed ones (left out of the row) go to ``omitted``."""
    row: dict[str, Any] = {}
    while i < len(text) and not (stop and text.startswith(stop, i)):
        name, i = _ident(text, i)
        if not text.startswith("[", i):
            raise ValueError(f"expected [type] after column {name!r} at char {i}")
        j = text.find("]:", i)
        if j < 0:
            raise ValueError(f"expected ]: after the type of column {name!r}")
        value, i = _value(text, j + 2)
        if value is not _TOAST:
            row[name] = value
        elif omitted is not None:
            omitted.append(name)
        if i < len(text):
            if text[i] != " ":
                raise ValueError(f"expected a space after column {name!r} at char {i}")
            i += 1
    return row, i


def _table_record(text: str, line: int) -> list[Change]:
    entities = []
    i = len("table ")
    while True:
        entity, i = _qualified(text, i)
        entities.append(entity)
        if not text.startswith(", ", i):
            break
        i += 2
    m = re.compile(r": (INSERT|UPDATE|DELETE|TRUNCATE):( |$)").match(text, i)  # a FULL row all NULL: nothing after
    if m is None:
        raise ValueError(f"expected ': INSERT|UPDATE|DELETE|TRUNCATE: ' at char {i}")
    action, i = m.group(1), m.end()
    if action == "TRUNCATE":
        return [Change("truncate", e, line, text) for e in entities]
    if len(entities) != 1:
        raise ValueError(f"{action} names {len(entities)} tables")
    entity = entities[0]
    if text.startswith(("(no-tuple-data)", "(no-tuple data)"), i):  # as PostgreSQL writes it, or spaced
        return [Change(action.lower(), entity, line, text)]
    old = None
    if action == "UPDATE" and text.startswith("old-key: ", i):
        old, i = _tuple(text, i + len("old-key: "), stop="new-tuple: ")
        if not text.startswith("new-tuple: ", i):
            raise ValueError("old-key without new-tuple")
        i += len("new-tuple: ")
    omitted: list[str] = []
    row, i = _tuple(text, i, omitted=omitted)
    if action == "DELETE":
        return [Change("delete", entity, line, text, old=row)]
    return [Change(action.lower(), entity, line, text, new=row, old=old, partial=bool(omitted))]


def _record(dec: Decoder, text: str, line: int) -> None:
    bracket = _BRACKET.fullmatch(text)
    if bracket:
        word, xid, at = bracket.groups()
        if word == "BEGIN":
            dec.begin(xid, line)
        else:
            dec.commit(Commit(xid, None, ts_or_none(at)), line)
    elif two_phase := _TWO_PHASE.fullmatch(text):
        word, escaped, quoted, xid, at = two_phase.groups()
        gid = quoted.replace("''", "'")
        gid = gid.replace("\\\\", "\\") if escaped else gid  # E'...' doubles each backslash
        if word == "PREPARE TRANSACTION":
            dec.prepare(gid, xid, line)
        else:
            dec.finish_prepared(gid, Commit(xid, None, ts_or_none(at)), line, aborted=word == "ROLLBACK PREPARED")
    elif text.startswith("table "):
        for change in _table_record(text, line):
            dec.add(change)
    elif text.startswith("message: "):
        m = _MESSAGE.match(text)
        if m is None:
            raise ValueError("expected 'message: transactional: 0|1 prefix: P, sz: N content:'")
        content = text[m.end() :]
        if len(raw_bytes(content)) != int(m.group(3)):
            raise ValueError(f"the content is {counted(len(raw_bytes(content)), 'byte')}, sz says {m.group(3)}")
        dec.add(
            Change(
                "event", MESSAGE_ENTITY, line, text,
                message=message_body(m.group(2), content), transactional=m.group(1) == "1",
            )
        )  # fmt: skip
    else:
        raise ValueError(
            "expected BEGIN, COMMIT, PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED, 'table ...' or 'message: ...'"
        )


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read test_decoding text output into canonical events (see the module docstring)."""
    check_mapping_for(NAME, mapping, KEY_OPTIONS)
    dec = Decoder(NAME, source, mapping, report, "", old_omits_nulls=True, keyed_updates_name_no_old=True)
    for line, text in _records(source, report, mapping.max_line_bytes):
        if not text.startswith("message: ") and (at := undecoded(text)) is not None:
            report(BadRecord(source.name, line, not_utf8(f"at byte {at}"), raw_bytes(text)))
            continue
        try:
            _record(dec, text, line)
        except ValueError as e:
            report(BadRecord(source.name, line, f"not a test_decoding record: {e}", raw_bytes(text)))
        yield from dec.drain()
    yield from dec.finish()


_FIRST = re.compile(
    rb"(BEGIN|COMMIT)( \d+)?( \(at [^)\n]+\))?\r?\n|table \S.*: (INSERT|UPDATE|DELETE|TRUNCATE): "
    rb"|message: transactional: [01] prefix: |(PREPARE TRANSACTION|COMMIT PREPARED|ROLLBACK PREPARED) E?'"
)


def sniff(head: bytes) -> int:
    """The first line is a test_decoding record."""
    return 90 if _FIRST.match(head.lstrip(b"\r\n")) else 0


FORMAT = Format(
    name=NAME,
    description="PostgreSQL test_decoding plugin text output (pg_recvlogical -P test_decoding)",
    sniff=sniff,
    read=read,
)
