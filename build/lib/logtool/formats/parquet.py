"""Parquet input: a logtool export (the event schema) is taken as it is; any other table is read
row by row through the field mapping, each row as a JSON object (its row number as its line)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from ..engine import sql_ident, sql_string
from ..errors import InputError
from . import Format
from .base import BATCH_ROWS, Mapping, Report, Source
from .jsonl import RecordMapper

if TYPE_CHECKING:
    import pyarrow as pa


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read a Parquet file: event-schema files as events, other tables through the mapping."""
    import pyarrow.parquet as pq

    from .. import engine
    from ..schema import input_schema

    if source.spec == "-":
        raise InputError(source.name, None, "Parquet cannot be read from stdin", "write it to a file first")
    with source.open() as f:  # hashed for duplicate detection; Parquet itself is read by path
        while f.read(1 << 20):
            pass
    try:
        names = set(pq.read_schema(source.spec).names)
    except Exception as e:
        raise InputError(source.name, None, f"not a readable Parquet file ({e})") from None
    schema = input_schema()
    if set(schema.names) - {"offset"} <= names:
        import pyarrow as pa

        keep_offsets = mapping.offset_field == "offset" and "offset" in names
        for batch in pq.ParquetFile(source.spec).iter_batches(
            BATCH_ROWS, columns=[n for n in schema.names if n in names]
        ):
            columns = [
                batch.column(n) if n != "offset" or keep_offsets else pa.nulls(batch.num_rows, pa.int64())
                for n in schema.names
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)
        return
    con = engine.connect()
    mapper = RecordMapper(source, mapping, report, "parquet")
    fields = list(pq.read_schema(source.spec))
    values = ", ".join(_as_json_value(f) for f in fields)
    table = f"read_parquet({sql_string(source.spec)})"
    line = "to_json(t)::VARCHAR"
    if any(_wide_decimal(f) for f in fields):
        # DuckDB reads a decimal wider than 38 digits as a double: pyarrow gives its exact text,
        # which goes into the row's JSON as a number (the mapper keeps long numbers exact)
        con.register("_wide_parquet", decimals_as_text(source.spec))
        table = "_wide_parquet"
        line = f"regexp_replace(to_json(t)::VARCHAR, {sql_string(_WIDE_UNMARK)}, '\\1', 'g')"
    reader = con.sql(
        f"SELECT (row_number() OVER ())::BIGINT AS line_no, {line} AS line FROM (SELECT {values} FROM {table}) t"
    ).to_arrow_reader(BATCH_ROWS)
    for chunk in reader:
        batch = mapper.map(chunk.column("line_no"), chunk.column("line"))
        if batch is not None:
            yield batch


_WIDE_MARK = "\x02decimal:"  # a wide decimal's text, marked, until it becomes a JSON number
_WIDE_UNMARK = r'"\\u0002decimal:(-?[0-9][-+.0-9eE]*)"'


def _wide_decimal(field: pa.Field) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_decimal(field.type) and field.type.precision > 38)


def decimals_as_text(path: str) -> pa.RecordBatchReader:
    """The file's rows with every decimal wider than 38 digits as its exact text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    schema = pa.schema([pa.field(f.name, pa.string()) if _wide_decimal(f) else f for f in file.schema_arrow])

    def text(column: pa.Array) -> pa.Array:
        import pyarrow.compute as pc

        out = column.cast(pa.string())
        if not pc.any(pc.match_substring(out, "E")).as_py():
            return out
        # pyarrow writes some values with an exponent (0E-39): every digit written out instead
        return pa.array([None if v is None else format(Decimal(v), "f") for v in out.to_pylist()], pa.string())

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in file.iter_batches(BATCH_ROWS):
            yield pa.RecordBatch.from_arrays(
                [text(c) if _wide_decimal(f) else c for c, f in zip(batch.columns, batch.schema, strict=True)],
                schema=schema,
            )

    return pa.RecordBatchReader.from_batches(schema, batches())


def _as_json_value(field: pa.Field) -> str:
    """A column as it goes into the row's JSON object. A float column's NaN and infinities, which
    JSON has no numbers for, become the strings "NaN", "Infinity" and "-Infinity", as every other
    reader writes them (the typed export reads them back as floats). A decimal wider than DuckDB's
    38 digits arrives as text, marked to become a number again."""
    import pyarrow as pa

    name = sql_ident(field.name)
    if _wide_decimal(field):
        return f"{sql_string(_WIDE_MARK)} || {name} AS {name}"
    if not pa.types.is_floating(field.type):
        return name
    return (
        f"CASE WHEN isnan({name}) THEN '\"NaN\"'::JSON WHEN isinf({name}) AND {name} > 0 THEN '\"Infinity\"'::JSON "
        f"WHEN isinf({name}) THEN '\"-Infinity\"'::JSON ELSE to_json({name}) END AS {name}"
    )


def sniff(head: bytes) -> int:
    return 100 if head[:4] == b"PAR1" else 0


FORMAT = Format(
    "parquet", "Parquet: logtool event files as they are, other tables through the field mapping", sniff, read
)
