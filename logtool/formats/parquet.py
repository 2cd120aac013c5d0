"""Parquet input: a logtool export (the event schema) is taken as it is; any other table is read
row by row through the field mapping, each row as a JSON object (its row number as its line)."""

from __future__ import annotations

from collections.abc import Iterator
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
    values = ", ".join(_as_json_value(f) for f in pq.read_schema(source.spec))
    reader = con.sql(
        f"SELECT (row_number() OVER ())::BIGINT AS line_no, to_json(t)::VARCHAR AS line "
        f"FROM (SELECT {values} FROM read_parquet({sql_string(source.spec)})) t"
    ).to_arrow_reader(BATCH_ROWS)
    for chunk in reader:
        batch = mapper.map(chunk.column("line_no"), chunk.column("line"))
        if batch is not None:
            yield batch


def _as_json_value(field: pa.Field) -> str:
    """A column as it goes into the row's JSON object. A float column's NaN and infinities, which
    JSON has no numbers for, become the strings "NaN", "Infinity" and "-Infinity", as every other
    reader writes them (the typed export reads them back as floats)."""
    import pyarrow as pa

    name = sql_ident(field.name)
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
