"""CSV logs with a header row, read through the same field mapping as JSON lines.

Each row becomes a JSON object: a field that is a JSON number (no leading zeros) becomes that
number, exactly; an empty field is null and a quoted empty field (``""``) the empty string, as
PostgreSQL's ``COPY ... CSV`` reads them; anything else is a string. Quoted fields may hold
commas and newlines; a record's line number is the line it starts on. A quote that the file ends
inside is a bad record, not the rest of the file taken in as one value.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, cast

from ..errors import InputError, counted
from . import Format
from .base import BATCH_ROWS, BadRecord, Mapping, Report, Source, not_utf8
from .jsonl import RecordMapper

if TYPE_CHECKING:
    import pyarrow as pa

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _value(text: str) -> str:
    if text == "":
        return "null"
    if _NUMBER.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _scan(record: str, delim: str) -> tuple[set[int], bool]:
    """Of one record's text: which fields are a quoted empty string (``""``), and whether a quoted
    field runs to the end without its closing quote."""
    empty: set[int] = set()
    i, n, field = 0, len(record), 0
    while True:
        if i < n and record[i] == '"':
            j = i + 1
            while j < n and not (record[j] == '"' and record[j + 1 : j + 2] != '"'):
                j += 2 if record[j] == '"' else 1
            if j >= n:
                return empty, True
            if j == i + 1:
                empty.add(field)
            i = j + 1
        while i < n and record[i] != delim and record[i] not in "\r\n":
            i += 1
        if i < n and record[i] == delim:
            i, field = i + 1, field + 1
            continue
        return empty, False


_LIMIT_USERS: list[int] = []  # the field limit the process had before the readers now reading set theirs


@contextlib.contextmanager
def field_size_limit(limit: int) -> Iterator[None]:
    """The csv module's field limit (a setting of the whole process) while reading; the one before
    once the last reader is done (readers run interleaved, as generators)."""
    before = csv.field_size_limit(limit)
    _LIMIT_USERS.append(before)
    try:
        yield
    finally:
        first = _LIMIT_USERS[0]
        _LIMIT_USERS.pop()
        if not _LIMIT_USERS:
            csv.field_size_limit(first)


def physical_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """A CSV file's lines as its reader takes them (ending at \\n, \\r\\n or a bare \\r), each
    with its exact bytes."""
    # latin-1 maps each byte to one character: the lines split as text, and give back their bytes
    text = io.TextIOWrapper(cast(Any, stream), encoding="latin-1", newline="")
    try:
        for piece in text:
            yield piece.encode("latin-1")
    finally:
        # the stream stays the caller's to close (it may be closed already, the lines left unread)
        with contextlib.suppress(ValueError):
            text.detach()


def _raw(lines: list[str]) -> bytes:
    """A record's bytes as they were in the file (without its final line break)."""
    return "".join(lines).rstrip("\r\n").encode("utf-8", "surrogateescape")


def _first_bad_byte(raw: bytes) -> int:
    """Where (0-based) a record's bytes stop being UTF-8."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start
    return 0  # not reached: the record held an undecodable byte


# What separates fields: a comma, else (a header without one) the most frequent of the others,
# as spreadsheets in many locales write semicolons, and tab-separated files are common.
DELIMITERS = (",", ";", "\t", "|")


_QUOTED = re.compile(r'"(?:[^"]|"")*("|$)')  # a quoted name, to its closing quote (or the line's end)


def delimiter(header: str) -> str:
    """The field delimiter of a CSV file, read from its header line: outside its quoted names
    (``id;"Amount, EUR";name`` is separated by semicolons)."""
    header = _QUOTED.sub("", header)
    if "," in header:
        return ","
    best = max(DELIMITERS[1:], key=header.count)
    return best if best in header else ","


def header_names(file: str, header: list[str]) -> list[str]:
    """A CSV header's column names, stripped; one in invalid UTF-8, or a name given twice, is
    refused (a record cannot hold two values under one name)."""
    names = [h.strip() for h in header]
    for column, name in enumerate(names, 1):
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(file, 1, f"invalid UTF-8 in the name of column {column}",
                             "the file must be UTF-8: convert it, e.g. with iconv") from None  # fmt: skip
    repeated = sorted({h for h in names if names.count(h) > 1})
    if repeated:
        raise InputError(
            file, 1, f"the header names column {repeated[0]!r} more than once",
            "give every column its own name: a record cannot hold two values under one name",
        )  # fmt: skip
    return names


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read a CSV log (plain, .gz or .zst) through the field mapping."""
    import pyarrow as pa

    # A record's own faults (its field count, its encoding) are found as it is split, its mapping's
    # (a missing key) when its batch is mapped: both wait, to be reported in line order.
    pending: list[BadRecord] = []
    mapper = RecordMapper(source, mapping, pending.append, "csv")
    with field_size_limit(mapping.max_line_bytes), source.open() as raw:
        text = (line.decode("utf-8", "surrogateescape") for line in physical_lines(io.BufferedReader(raw, 1 << 20)))  # type: ignore[type-var]
        consumed: list[str] = []  # the physical lines of the record being read, for quarantine
        first = next(text, "")

        def record_lines() -> Iterator[str]:
            for line in itertools.chain([first] if first else [], text):
                consumed.append(line)
                yield line

        delim = delimiter(first)
        source_lines = record_lines()
        reader = csv.reader(source_lines, delimiter=delim)
        skipped = 0  # lines taken past the reader (the rest of a field over the limit)
        try:
            header = next(reader)
        except StopIteration:
            return
        stripped = header_names(source.name, header)
        names = [json.dumps(h, ensure_ascii=False) + ":" for h in stripped]
        numbers: list[int] = []
        lines: list[str] = []
        raws: list[bytes] = []  # each record as it was in the file, for a bad record's report

        def flush() -> Iterator[pa.RecordBatch]:
            """Map the records read so far, then report the bad ones among them in line order."""
            nonlocal numbers, lines, raws
            batch = mapper.map(pa.array(numbers, pa.int64()), pa.array(lines, pa.string()), raws) if lines else None
            for bad in sorted(pending, key=lambda b: b.line or 0):
                report(bad)
            pending.clear()
            numbers, lines, raws = [], [], []
            if batch is not None:
                yield batch

        start = reader.line_num + 1
        while True:
            consumed.clear()
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                if _scan("".join(consumed), delim)[1]:
                    # the reader gave up inside a quoted field (one over the limit): the record runs
                    # on to the line that closes it; the records after it are read as records
                    for line in source_lines:
                        skipped += 1
                        if line.count('"') % 2:
                            break
                pending.append(BadRecord(source.name, start, f"CSV error: {e}", _raw(consumed)))
                start = reader.line_num + skipped + 1
                continue
            line_no, start = start, reader.line_num + skipped + 1
            if not row or row == [""] and not "".join(consumed).strip():
                continue  # a blank line (a quoted "" on its own is a record: the empty string)
            if len(row) != len(header):
                pending.append(
                    BadRecord(source.name, line_no, f"expected {counted(len(header), 'field')}, found {len(row)}", _raw(consumed))
                )
                continue
            try:
                "".join(row).encode("utf-8")
            except UnicodeEncodeError:
                # where in the record's bytes, as a JSON line's is told: the joined fields lack the
                # delimiters and quotes, and count characters, not bytes
                record = _raw(consumed)
                pending.append(BadRecord(source.name, line_no, not_utf8(f"at byte {_first_bad_byte(record)}"), record))
                continue
            quoted: set[int] = set()
            # a record over several lines, a quoted empty field, or a last line without its line
            # break (the file may end inside a quote) is scanned for quotes
            last = consumed[-1]
            if len(consumed) > 1 or ("" in row and '""' in consumed[0]) or ('"' in last and last[-1:] not in "\r\n"):
                quoted, open_quote = _scan("".join(consumed), delim)
                if open_quote:
                    pending.append(BadRecord(source.name, line_no,
                                             "a quoted field has no closing quote (the file ends inside it)",
                                             _raw(consumed)))  # fmt: skip
                    continue
            lines.append("{" + ",".join(n + ('""' if i in quoted else _value(v))
                                         for i, (n, v) in enumerate(zip(names, row, strict=True))) + "}")  # fmt: skip
            numbers.append(line_no)
            raws.append(_raw(consumed))
            if len(lines) + len(pending) >= BATCH_ROWS:
                yield from flush()
        yield from flush()


def sniff(head: bytes) -> int:
    """A first line of names separated by a delimiter: text (no control bytes, as a binary file
    has), not JSON. Text in another encoding is taken, to be told so with its line."""
    first = head.split(b"\n", 1)[0].strip()
    if not first or first[:1] in (b"{", b"[") or any(b < 32 and b not in (9, 13) for b in first):
        return 0
    return 8 if any(d.encode() in first for d in DELIMITERS) else 0


FORMAT = Format("csv", "CSV with a header row, read through the field mapping", sniff, read)
