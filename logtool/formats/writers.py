"""Writers for the formats a user exports to: JSON lines and CSV (Parquet is pyarrow's own).

JSON columns (text that already is JSON) are written as JSON values, verbatim, so exact
numbers stay exact. CSV follows PostgreSQL's ``COPY ... CSV``: NULL is an empty unquoted field,
the empty string is ``""``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import os
import secrets
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ..errors import UsageError
from .base import RawJSON, dumps_exact, json_string

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


def rows(batch: pa.RecordBatch | pa.Table, json_columns: Iterable[str] = ()) -> Iterable[dict[str, Any]]:
    """Rows as dicts ready for dumps_exact: JSON columns as RawJSON, other values made plain."""
    raw = _json_columns(batch.schema, json_columns)
    names = batch.schema.names
    columns = [batch.column(n).to_pylist() for n in names]
    for values in zip(*columns, strict=True):
        yield {n: (RawJSON(v) if n in raw and v is not None else plain(v)) for n, v in zip(names, values, strict=True)}


def _json_texts(column: pa.Array | pa.ChunkedArray, raw: bool) -> list[str]:
    """Each value of a column as JSON text, as ``dumps_exact`` of the row would write it; the
    common types without the per-value dispatch."""
    import pyarrow as pa

    values = column.to_pylist()
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
    """CSV with a header row; returns the number of rows written."""
    n = 0
    wrote_header = not header
    for batch in batches:
        if not wrote_header:
            out.write(",".join(csv_field(c) for c in batch.schema.names) + "\n")
            wrote_header = True
        for row in rows(batch, json_columns):
            out.write(",".join(csv_field(v) for v in row.values()) + "\n")
            n += 1
    return n


class output_file:  # noqa: N801 - used as a context manager, like open()
    """A binary sink: stdout, a given stream, a pipe or device as it is, or a file written under
    a temporary name and renamed into place when complete (an interrupted run leaves no
    half-written output)."""

    def __init__(self, out: str | os.PathLike[str] | IO[bytes]) -> None:
        self.out = out
        self.tmp: Path | None = None
        self.stream: IO[bytes] = sys.stdout.buffer
        self.special = False  # a pipe or a device, opened as it is

    def __enter__(self) -> IO[bytes]:
        if not isinstance(self.out, str | os.PathLike):
            self.stream = self.out
        elif str(self.out) != "-":
            target = Path(self.out)
            if not target.parent.is_dir():
                raise UsageError(f"{target}: its directory {target.parent} does not exist", "create it, or write elsewhere")
            if target.is_dir():
                raise UsageError(f"{target}: is a directory", "name a file to write, e.g. -o clean.jsonl")
            if target.is_symlink() or (target.exists() and not target.is_file()):
                # a pipe, a device (/dev/null, /dev/stdout), a process substitution or a link:
                # written to as it is, never replaced by a file
                self.stream = open(target, "wb")  # noqa: SIM115
                self.special = True
                return self.stream
            self.tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            self.stream = open(self.tmp, "wb")  # noqa: SIM115
        return self.stream

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if self.special:
            self.stream.close()
            return
        if self.tmp is None:
            self.stream.flush()
            return
        self.stream.close()
        if exc_type is None:
            os.replace(self.tmp, Path(cast(str, self.out)))
        else:
            self.tmp.unlink(missing_ok=True)
