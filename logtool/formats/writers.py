"""Writers for the formats a user exports to: JSON lines and CSV (Parquet is pyarrow's own).

JSON columns (text that already is JSON) are written as JSON values, verbatim, so exact
numbers stay exact. CSV follows PostgreSQL's ``COPY ... CSV``: NULL is an empty unquoted field,
the empty string is ``""``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import os
import re
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ..errors import LogtoolError, UsageError
from .base import RawJSON, dumps_exact, json_string, type_holds

if TYPE_CHECKING:
    import pyarrow as pa


def plain(value: Any) -> Any:
    """A Python value from Arrow made JSON-serializable (times as ISO-8601, bytes as hex)."""
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):  # as written in a numeric column: 0.00000001, never 1E-8
        return RawJSON(format(value, "f"))
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        # JSON has no NaN/Infinity: written as the strings every reader writes them as
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, bytes):
        return value.hex()
    if type(value).__name__ == "MonthDayNano":  # an interval (e.g. max(ts) - min(ts) in sql)
        return _interval(value.months, value.days, value.nanoseconds)
    if isinstance(value, dt.timedelta):
        return _interval(0, value.days, (value.seconds * 1_000_000 + value.microseconds) * 1000)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def _interval(months: int, days: int, nanoseconds: int) -> str:
    """An interval as DuckDB writes one: ``1 year 2 months 3 days 04:05:06.5``."""
    direction = -1 if months < 0 else 1
    years, months = (direction * n for n in divmod(abs(months), 12))
    parts = [f"{n} {unit}{'' if abs(n) == 1 else 's'}" for n, unit in ((years, "year"), (months, "month"), (days, "day")) if n]
    if nanoseconds or not parts:
        sign = "-" if nanoseconds < 0 else ""
        micros = abs(nanoseconds) // 1000
        seconds, fraction = divmod(micros, 1_000_000)
        clock = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        parts.append(clock + (f".{fraction:06d}".rstrip("0") if fraction else ""))
    return " ".join(parts)


def _json_columns(schema: pa.Schema, json_columns: Iterable[str]) -> set[str]:
    import pyarrow as pa

    wanted = set(json_columns)
    textual = (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)
    found = {f.name for f in schema if f.name in wanted and any(t(f.type) for t in textual)}
    found |= {f.name for f in schema if (f.metadata or {}).get(b"logtool.json") == b"1"}
    return found


def _is_temporal(typ: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_timestamp(typ) or pa.types.is_date(typ) or pa.types.is_time(typ))


def _holds_temporal(typ: pa.DataType) -> bool:
    return type_holds(typ, _is_temporal)


def python_values(column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """``column.to_pylist()``, where a date, time or timestamp (however nested) that Python's
    datetime cannot hold exactly comes as its text: DuckDB's infinity and -infinity, a year
    outside 1 to 9999 (ISO 8601's expanded year: -0043 is 44 BC), 24:00:00, nanoseconds. Such a
    value stopped the output midway (an overflow), or was printed wrong (24:00:00 as 00:00:00)."""
    import pyarrow as pa

    if not _holds_temporal(column.type):
        return cast("list[Any]", column.to_pylist())
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return cast("list[Any]", _printable(array).to_pylist())


def _printable(array: pa.Array) -> pa.Array:
    """The array with each date, time or timestamp part holding a value Python cannot hold as
    text (all of that part's values: those Python holds as ``plain`` writes them)."""
    import pyarrow as pa

    typ = array.type
    if not _holds_temporal(typ):
        return array
    if _is_temporal(typ):
        return _temporal_texts(array)
    nulls = array.is_null() if array.null_count else None
    if pa.types.is_struct(typ):
        children = [_printable(child) for child in array.flatten()]
        return pa.StructArray.from_arrays(children, names=[typ.field(i).name for i in range(typ.num_fields)], mask=nulls)
    if pa.types.is_fixed_size_list(typ):
        return _printable(array.cast(pa.list_(typ.value_type)))
    if pa.types.is_map(typ):
        return pa.MapArray.from_arrays(array.offsets, _printable(array.keys), _printable(array.items), mask=nulls)
    of = pa.LargeListArray if pa.types.is_large_list(typ) else pa.ListArray
    return of.from_arrays(array.offsets, _printable(array.values), mask=nulls)


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_DAY = 86_400
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, in days since 1970-01-01
_INFINITY = {2**63 - 1: "infinity", -(2**63 - 1): "-infinity"}  # as DuckDB gives them to Arrow
_DATE_INFINITY = {2**31 - 1: "infinity", -(2**31 - 1): "-infinity"}


def _temporal_texts(array: pa.Array) -> pa.Array:
    """A date, time or timestamp array as it is where Python holds each value, else every value
    as text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = array.type
    if pa.types.is_date32(typ):
        ticks, per_second, per_day = array.view(pa.int32()).cast(pa.int64()), 0, 1
    else:
        unit = typ.unit if not pa.types.is_date64(typ) else "ms"
        ticks, per_second = array.view(pa.int64() if typ.bit_width == 64 else pa.int32()).cast(pa.int64()), _PER_SECOND[unit]
        per_day = per_second * _DAY
    if pa.types.is_time(typ):
        lo, hi = 0, per_day - 1
    else:  # a day's margin: a zone's offset must not carry a value past Python's years
        lo, hi = (_FIRST_DAY + 1) * per_day, _LAST_DAY * per_day - 1
        lo, hi = max(lo, -(2**63) + 2), min(hi, 2**63 - 2)  # (nanoseconds: the infinities are the ends)
    held = pc.and_(pc.greater_equal(ticks, lo), pc.less_equal(ticks, hi))
    if per_second == 1_000_000_000:  # Python holds microseconds
        whole = pc.multiply(pc.divide(ticks, 1000), 1000)  # (integer division)
        held = pc.and_(held, pc.equal(ticks, whole))
    if pc.all(held).as_py() is not False:
        return array
    inside = array.filter(pc.fill_null(held, True)).to_pylist()  # (nulls too)
    values = iter(inside)
    texts: list[str | None] = []
    for tick, ok in zip(ticks.to_pylist(), held.to_pylist(), strict=True):
        if tick is None:
            texts.append(None)
            next(values)
        elif ok:
            texts.append(plain(next(values)))
        else:
            texts.append(_temporal_text(tick, typ, per_second))
    return pa.array(texts, pa.string())


def _temporal_text(tick: int, typ: pa.DataType, per_second: int) -> str:
    """One value Python cannot hold, written in ISO 8601 as ``plain`` writes the others (an
    infinity as DuckDB writes it)."""
    import pyarrow as pa

    if pa.types.is_date32(typ):
        return _DATE_INFINITY.get(tick) or _iso_date(tick)
    if tick in _INFINITY and not pa.types.is_time(typ):
        return _INFINITY[tick]
    days, within = divmod(tick, per_second * _DAY)
    seconds, fraction = divmod(within, per_second)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if fraction:
        nanos = fraction * (1_000_000_000 // per_second)
        clock += f".{nanos // 1000:06d}" if nanos % 1000 == 0 else f".{nanos:09d}"
    if pa.types.is_time(typ):
        return f"{days * 24 + int(clock[:2]):02d}{clock[2:]}"  # 24:00:00 (DuckDB's end of day)
    if pa.types.is_date64(typ):
        return _iso_date(days)
    return f"{_iso_date(days)}T{clock}{'Z' if typ.tz else ''}"


def _iso_date(days: int) -> str:
    """A day since 1970-01-01 as an ISO 8601 date of the proleptic Gregorian calendar, any year
    (H. Hinnant's civil_from_days)."""
    z = days + 719_468
    era, doe = divmod(z, 146_097)
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day, month = doy - (153 * mp + 2) // 5 + 1, mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    return f"{'-' if year < 0 else ''}{abs(year):04d}-{month:02d}-{day:02d}"


def rows(batch: pa.RecordBatch | pa.Table, json_columns: Iterable[str] = ()) -> Iterable[dict[str, Any]]:
    """Rows as dicts ready for dumps_exact: JSON columns as RawJSON, other values made plain."""
    raw = _json_columns(batch.schema, json_columns)
    names = batch.schema.names
    columns = [python_values(batch.column(n)) for n in names]
    for values in zip(*columns, strict=True):
        yield {n: (RawJSON(v) if n in raw and v is not None else plain(v)) for n, v in zip(names, values, strict=True)}


def _json_texts(column: pa.Array | pa.ChunkedArray, raw: bool) -> list[str]:
    """Each value of a column as JSON text, as ``dumps_exact`` of the row would write it; the
    common types without the per-value dispatch."""
    import pyarrow as pa

    values = python_values(column)
    kind = column.type
    if raw:
        return ["null" if v is None else v for v in values]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return ["null" if v is None else json_string(v) for v in values]
    if pa.types.is_integer(kind):
        return ["null" if v is None else str(v) for v in values]
    if pa.types.is_boolean(kind):
        return ["null" if v is None else ("true" if v else "false") for v in values]
    return [dumps_exact(plain(v)) for v in values]


def write_jsonl(batches: Iterable[pa.RecordBatch | pa.Table], out: IO[str], json_columns: Iterable[str] = ()) -> int:
    """One JSON object per row; returns the number of rows written. Column by column: each
    value's text is made once, then the lines are joined."""
    n = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        raw = _json_columns(batch.schema, json_columns)
        columns = [
            [label + text for text in _json_texts(batch.column(name), name in raw)]
            for name, label in ((name, json_string(name) + ":") for name in batch.schema.names)
        ]
        if not columns:
            out.write("{}\n" * batch.num_rows)
        else:
            out.write("".join("{" + ",".join(parts) + "}\n" for parts in zip(*columns, strict=True)))
        n += batch.num_rows
    return n


def csv_field(value: Any) -> str:
    """One CSV field, PostgreSQL-style: None -> empty, '' -> \"\", quoted when needed."""
    if value is None:
        return ""
    if isinstance(value, RawJSON):
        text = str(value)
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = dumps_exact(value)
    else:
        text = str(value)
    if text == "" or any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def write_csv(
    batches: Iterable[pa.RecordBatch | pa.Table], out: IO[str], json_columns: Iterable[str] = (), header: bool = True
) -> int:
    """CSV with a header row; returns the number of rows written. Each batch is written once
    its text is whole: a value that cannot be written leaves no half output (not the header)."""
    n = 0
    wrote_header = not header
    for batch in batches:
        lines = [",".join(csv_field(v) for v in row.values()) + "\n" for row in rows(batch, json_columns)]
        if not wrote_header:
            out.write(",".join(csv_field(c) for c in batch.schema.names) + "\n")
            wrote_header = True
        out.write("".join(lines))
        n += len(lines)
    return n


class output_file:  # noqa: N801 - used as a context manager, like open()
    """A binary sink: stdout, a given stream, a pipe or device as it is, or a file written under
    a temporary name and renamed into place when complete (an interrupted or failed run, a full
    disk among its causes, leaves no half-written output and no temporary file: the output it
    would have replaced stays as it was). A file named ``.gz`` or ``.zst`` is written compressed
    so (gzip, zstd), as its name says."""

    def __init__(self, out: str | os.PathLike[str] | IO[bytes]) -> None:
        self.out = out
        self.tmp: Path | None = None
        self.target = Path()  # the file the temporary one replaces (a link's, where the output is a link)
        self.stream: IO[bytes] = sys.stdout.buffer
        self.file: IO[bytes] | None = None  # the file under the stream (the compressor's), which we opened
        self.special = False  # a pipe or a device, opened as it is

    def __enter__(self) -> IO[bytes]:
        if not isinstance(self.out, str | os.PathLike):
            self.stream = self.out
        elif str(self.out) != "-":
            target = Path(self.out)
            if target.is_symlink() and target.resolve().is_file() and not _system_stream(target):
                # a link to a file: the file is replaced as any other (the link stays); written
                # through the link, a run stopped midway left it cut short in place of a good one
                target = target.resolve()
            if not target.parent.is_dir():
                raise UsageError(f"{target}: its directory {target.parent} does not exist", "create it, or write elsewhere")
            if target.is_dir():
                raise UsageError(f"{target}: is a directory", "name a file to write, e.g. -o clean.jsonl")
            if _system_stream(target) or target.is_symlink() or (target.exists() and not target.is_file()):
                # a pipe, a device (/dev/null, /dev/stdout), a process substitution, or a link to
                # one or to nothing yet: written to as it is, never replaced by a file (appended to:
                # /dev/stdout that a shell sent to a file with >> is that file, which "wb" emptied)
                self.file = open(target, "ab")  # noqa: SIM115
                self.special = True
            else:
                self.target = target
                self.tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
                self.file = open(self.tmp, "wb")  # noqa: SIM115
                if target.exists():  # the file it replaces keeps its permissions (a private log stays private)
                    os.chmod(self.file.fileno(), target.stat().st_mode & 0o7777)
            self.stream = _compressing(self.file, target.name)
        return self.stream

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.file is None:
            self.stream.flush()
            return
        if exc_type is None:
            try:
                if self.stream is not self.file:
                    self.stream.close()  # the compressor: writes its last frame into the file
                if self.tmp is not None:
                    self.file.flush()
                    os.fsync(self.file.fileno())  # on disk before it takes the output's name
                self.file.close()
                if self.tmp is not None:
                    os.replace(self.tmp, self.target)
                return
            except BaseException as e:
                self._discard()
                self._say_full(e)
                raise
        self._discard()
        if rest and isinstance(rest[0], BaseException):
            self._say_full(rest[0])

    def _say_full(self, error: BaseException) -> None:
        """A write of the output that a full disk (or a quota) refused, said of the output, with
        what is left of it: the system's error names no file."""
        import errno

        if self.tmp is not None and isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT) \
                and not error.filename:  # fmt: skip
            left = f"{self.out} is as it was" if self.target.exists() else f"no {self.out} was made"
            raise LogtoolError(
                f"{self.out}: {error.strerror or 'No space left on device'} (its disk is full)",
                f"free space there or write elsewhere, then run it again: {left}, and nothing of this run is left",
            ) from None

    def _discard(self) -> None:
        """Close what was opened after a failure, whatever else fails (a full disk fails every
        flush: the data is dropped), and delete the temporary file: the failure is the one said."""
        assert self.file is not None
        for stream in (self.stream, self.file):
            with contextlib.suppress(Exception):
                stream.close()
        if self.tmp is not None:
            self.tmp.unlink(missing_ok=True)


_STREAM_NAMES = re.compile(r"/dev/(stdout|stderr|fd/\d+)|/proc/(self|thread-self|\d+)/fd/\d+")


def _system_stream(path: Path) -> bool:
    """Is ``path``, or a link on the way from it, one of the system's names of an open stream
    (/dev/stdout, /dev/fd/N, /proc/self/fd/N)? Such a path is written to as it is, whatever file
    it leads to (one a shell redirected stdout to, perhaps to append): never replaced. (A file in
    /dev/shm is a file like any other.)"""
    for _ in range(40):  # (the system's own bound on a chain of links)
        if _STREAM_NAMES.fullmatch(os.path.normpath(path.absolute())):
            return True
        if not path.is_symlink():
            return False
        path = path.parent / os.readlink(path)
    return True


def _compressing(file: IO[bytes], name: str) -> IO[bytes]:
    """``file``, or a gzip or zstd stream into it where ``name`` ends in ``.gz`` or ``.zst``."""
    if name.endswith(".gz"):
        import gzip

        return cast(IO[bytes], gzip.GzipFile(filename="", mode="wb", fileobj=file, mtime=0))
    if name.endswith(".zst"):
        import zstandard

        return cast(IO[bytes], zstandard.ZstdCompressor().stream_writer(file, closefd=False))
    return file
