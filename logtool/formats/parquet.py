"""Parquet input: a logtool export (the event schema) is taken as it is; any other table is read
row by row through the field mapping, each row as a JSON object (its row number as its line)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from ..engine import sql_ident, sql_string
from ..errors import InputError, undecodable_parquet
from ..typed import SPECIAL_FLOATS
from . import Format
from .base import BATCH_ROWS, Mapping, Report, Source, dumps_exact, json_string, type_holds
from .jsonl import RecordMapper

T = TypeVar("T")

if TYPE_CHECKING:
    import pyarrow as pa


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read a Parquet file: event-schema files as events, other tables through the mapping."""
    return _reading(source, _read(source, mapping, report))


def holds_events(source: Source) -> bool:
    """Is the file a table of events (logtool's event schema: an export of a store), read as
    they are, each with its own entity, rather than through the field mapping?"""
    from ..schema import input_schema

    return set(input_schema().names) - {"offset"} <= _column_names(source)


def _column_names(source: Source) -> set[str]:
    import pyarrow.parquet as pq

    try:
        return set(pq.read_schema(source.spec).names)
    except Exception as e:
        raise InputError(source.name, None, f"not a readable Parquet file ({e})") from None


def _read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    from .. import engine
    from ..schema import input_schema

    if source.spec == "-":
        raise InputError(source.name, None, "Parquet cannot be read from stdin", "write it to a file first")
    with source.open() as f:  # hashed for duplicate detection; Parquet itself is read by path
        while f.read(1 << 20):
            pass
    names = _column_names(source)
    schema = input_schema()
    if holds_events(source):
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
    file = pq.ParquetFile(source.spec)
    fields = list(file.schema_arrow)
    twice = sorted({f.name for f in fields if [g.name for g in fields].count(f.name) > 1})
    if twice:
        raise InputError(source.name, None, f"the table names column {twice[0]!r} twice", "give each column a name of its own")
    # Each column is read under a name of its own: its name in the file (empty, `t`, one that
    # differs from another only in case) is only the member name it gets.
    if any(_is_wide(f.type) or _in_python(f.type) for f in fields):
        con.register("_parquet_rows", decimals_as_text(source.spec, positional=True))
        table, refs = "_parquet_rows", [f"c{i}" for i in range(len(fields))]
    else:  # DuckDB's names for the columns, made unique (it compares names without case)
        table = f"read_parquet({sql_string(source.spec)})"
        refs = [sql_ident(n) for (n, *_rest) in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]
    members = ", ".join(f"{sql_string(f.name)}, {_as_json_value(f, ref)}" for f, ref in zip(fields, refs, strict=True))
    line = f"json_object({members})::VARCHAR"
    if table == "_parquet_rows":
        line = f"regexp_replace({line}, {sql_string(_DECIMAL_UNMARK)}, '\\1', 'g')"
    reader = con.sql(
        f"SELECT (row_number() OVER ())::BIGINT AS line_no, {line} AS line FROM {table}"
    ).to_arrow_reader(BATCH_ROWS)
    for chunk in reader:
        batch = mapper.map(chunk.column("line_no"), chunk.column("line"))
        if batch is not None:
            yield batch


def _reading(source: Source, batches: Iterable[T]) -> Iterator[T]:
    """The batches, where a damaged file's error (pyarrow's, or DuckDB's reading Parquet) is said
    of the input file."""
    import duckdb
    import pyarrow as pa

    it = iter(batches)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except (duckdb.Error, pa.ArrowException, OSError) as e:
            if isinstance(e, duckdb.Error) and "parquet" not in str(e).lower() and not undecodable_parquet(e):
                raise
            raise InputError(
                source.name, None, f"cannot be read as Parquet ({str(e).strip().splitlines()[0]})",
                "check that the file is whole: a copy cut short, or damaged, reads so",
            ) from None  # fmt: skip
        yield batch


# A decimal's text, marked as a string until the row's JSON text is written, then a JSON number
# again: as a number, DuckDB would read it through float64 where it takes JSON text in.
_DECIMAL_MARK = "\x02decimal:"
_DECIMAL_UNMARK = r'"\\u0002decimal:(-?[0-9][-+.0-9eE]*)"'


def _is_wide(typ: pa.DataType) -> bool:
    """A decimal wider than DuckDB's 38 digits (DuckDB reads it as a double)."""
    import pyarrow as pa

    return bool(pa.types.is_decimal(typ) and typ.precision > 38)


def _in_python(typ: pa.DataType) -> bool:
    """A nested type DuckDB's JSON rendering would get wrong: holding a decimal wider than 38
    digits, a map holding a float or a decimal, or a struct holding a float or a decimal under a
    member name that is empty or another's but for case (DuckDB cannot name it)."""
    import pyarrow as pa

    def odd_struct(t: pa.DataType) -> bool:
        if not pa.types.is_struct(t):
            return False
        names = [t.field(i).name.lower() for i in range(t.num_fields)]
        return ("" in names or len(set(names)) < len(names)) and type_holds(t, _needs_sql)

    def odd_map(t: pa.DataType) -> bool:
        return pa.types.is_map(t) and (type_holds(t.key_type, _needs_sql) or type_holds(t.item_type, _needs_sql))

    return not _is_wide(typ) and (type_holds(typ, _is_wide) or type_holds(typ, odd_struct) or type_holds(typ, odd_map))


def _as_json_text(column: pa.Array, typ: pa.DataType) -> pa.Array:
    """A nested column DuckDB would render wrongly, each value as JSON text written here, as
    DuckDB writes what it can (NaN and infinities as strings). Its decimals are marked: the text
    goes back into DuckDB as JSON, which would read a bare decimal through float64."""
    import datetime as dt
    import math

    import pyarrow as pa

    def value(v: Any, t: pa.DataType) -> Any:
        if v is None:
            return None
        if pa.types.is_decimal(t):
            return _DECIMAL_MARK + format(v, "f")
        if pa.types.is_floating(t):
            return v if math.isfinite(v) else "NaN" if math.isnan(v) else "Infinity" if v > 0 else "-Infinity"
        if pa.types.is_struct(t):
            return {t.field(i).name: value(v.get(t.field(i).name), t.field(i).type) for i in range(t.num_fields)}
        if pa.types.is_map(t):
            return {format(k, "f") if isinstance(k, Decimal) else str(k): value(x, t.item_type) for k, x in v}
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return [value(x, t.value_type) for x in v]
        if isinstance(v, bytes):  # as DuckDB writes a blob: printable ASCII, else \xHH
            return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in v)
        if isinstance(v, dt.datetime):
            if v.tzinfo is not None:
                return v.astimezone(dt.UTC).isoformat(sep=" ").replace("+00:00", "+00")
            return v.isoformat(sep=" ")
        if isinstance(v, dt.date | dt.time):
            return v.isoformat()
        return v if isinstance(v, bool | int | str) else str(v)

    return pa.array([None if v is None else dumps_exact(value(v, typ)) for v in column.to_pylist()], pa.string())


def decimals_as_text(path: str, positional: bool = False) -> pa.RecordBatchReader:
    """The file's rows with every decimal wider than 38 digits (which DuckDB would read as a
    double) as its exact text; ``positional``: its columns named c0, c1, ... ."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    schema = pa.schema([
        pa.field(f"c{i}" if positional else f.name, pa.string() if _is_wide(f.type) or _in_python(f.type) else f.type)
        for i, f in enumerate(file.schema_arrow)
    ])  # fmt: skip

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
                [text(c) if _is_wide(f.type) else _as_json_text(c, f.type) if _in_python(f.type) else c
                 for c, f in zip(batch.columns, file.schema_arrow, strict=True)],
                schema=schema,
            )

    return pa.RecordBatchReader.from_batches(schema, batches())


def _as_json_value(field: pa.Field, name: str) -> str:
    """SQL: column ``name`` as it goes into the row's JSON object. A float's NaN and infinities,
    which JSON has no numbers for, become the strings "NaN", "Infinity" and "-Infinity" (in lists
    and structs too), as every other reader writes them (the typed export reads them back as
    floats); a decimal is written as its exact text. A decimal wider than DuckDB's 38 digits
    arrives as text, marked to become a number again."""
    if _is_wide(field.type):
        return f"{sql_string(_DECIMAL_MARK)} || {name}"
    if _in_python(field.type):
        return f"{name}::JSON"
    return _json_exact(field.type, name, 0)


def _needs_sql(typ: pa.DataType) -> bool:
    """A float or a decimal, which DuckDB's JSON rendering writes wrongly as they are."""
    import pyarrow as pa

    return bool(pa.types.is_floating(typ) or pa.types.is_decimal(typ))


def _json_exact(typ: pa.DataType, expr: str, depth: int) -> str:
    """SQL: ``expr`` of type ``typ`` with every float and decimal in it (however nested) as its
    JSON value: NaN and infinities as strings, a decimal's digits as the file holds them."""
    import pyarrow as pa

    if not type_holds(typ, _needs_sql):
        return expr
    if pa.types.is_decimal(typ):
        # DuckDB writes a decimal of up to 15 digits through float64 (1.50000000 as 1.5, 0.00000001
        # as 1e-8) and a wider one as its digits: widened to 38 with its scale kept, every one is
        # written as its digits.
        return f"CAST({expr} AS DECIMAL(38, {typ.scale}))"
    if pa.types.is_floating(typ):
        # Decided on the rendered text (DuckDB renders them as SPECIAL_FLOATS spells them), not by
        # isnan() or isinf(): DuckDB answers those from the file's min/max statistics, which
        # pyarrow writes without NaN, so with two different finite values there isnan() is false
        # on every row and the NaN went out bare.
        text = f"to_json({expr})"
        cases = " ".join(f"WHEN {sql_string(s)} THEN {sql_string(json_string(s))}::JSON" for s in SPECIAL_FLOATS)
        return f"CASE {text}::VARCHAR {cases} ELSE {text} END"
    if pa.types.is_struct(typ):
        parts = ", ".join(
            f"{sql_ident(typ.field(i).name)} := {_json_exact(typ.field(i).type, f'struct_extract({expr}, {sql_string(typ.field(i).name)})', depth + 1)}"
            for i in range(typ.num_fields)
        )
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE struct_pack({parts}) END"
    element = f"x{depth}"
    return f"list_transform({expr}, lambda {element}: {_json_exact(typ.value_type, element, depth + 1)})"


def sniff(head: bytes) -> int:
    return 100 if head[:4] == b"PAR1" else 0


FORMAT = Format(
    "parquet", "Parquet: logtool event files as they are, other tables through the field mapping", sniff, read
)
