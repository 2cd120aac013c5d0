"""Typed tables from state rows: per entity, the key then the row's columns, types inferred.

One rule decides each column's type from what its values are (``decide``): integers int64 (or
decimal(38,0) beyond it), decimals decimal128 with the largest scale seen, numbers written with an
exponent — or beside ``NaN``/``Infinity`` strings — float64, strings string, booleans bool,
objects, arrays and mixed columns JSON text (field metadata ``logtool.json``). A column absent
from a row is null there. An entity is typed in DuckDB, vectorized; one holding a number of 16 or
more significant digits (which DuckDB's JSON functions read through float64) is typed in Python,
exactly. Both read the same canonical state text, and the same rule decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .engine import sql_string
from .formats.base import RawNumber, dumps_exact, loads_exact

if TYPE_CHECKING:
    import pyarrow as pa

SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
LONG_NUMBER = r"[0-9]{16}|[0-9.]{17}"


@dataclass
class FieldStats:
    """What a column's values are: their kinds (bool, string, special, int, number, json)."""

    kinds: set[str] = field(default_factory=set)
    exponent: bool = False  # a number written with an exponent
    out_of_range: bool = False  # an integer beyond int64
    long: bool = False  # a number of 16+ significant digits
    int_digits: int = 1
    scale: int = 0


def decide(s: FieldStats) -> tuple[str, int, int]:
    """The column's type: (kind, precision, scale), kind one of bool, string, float64, int64,
    decimal, json."""
    present = s.kinds
    if not present or present <= {"string", "special"}:
        return ("string", 0, 0)
    if present == {"bool"}:
        return ("bool", 0, 0)
    if present <= {"int", "number", "special"}:
        if "special" in present or s.exponent:
            return ("json", 0, 0) if s.long else ("float64", 0, 0)  # float64 would round a long number
        if present == {"int"} and not s.out_of_range:
            return ("int64", 0, 0)
        precision = max(s.int_digits, 1) + s.scale
        return ("decimal", precision, s.scale) if precision <= 38 else ("json", 0, 0)
    return ("json", 0, 0)


def arrow_field(name: str, kind: tuple[str, int, int]) -> pa.Field:
    import pyarrow as pa

    types = {"bool": pa.bool_(), "string": pa.string(), "float64": pa.float64(), "int64": pa.int64()}
    if kind[0] == "decimal":
        return pa.field(name, pa.decimal128(kind[1], kind[2]))
    if kind[0] == "json":
        return pa.field(name, pa.string(), metadata={"logtool.json": "1"})
    return pa.field(name, types[kind[0]])


def typed_tables(state: pa.Table) -> dict[str, pa.Table]:
    """Per entity (state rows ``entity, key, state``), the rows as a typed table."""
    import pyarrow.compute as pc

    from . import engine

    con = engine.connect()
    out: dict[str, pa.Table] = {}
    for ent in pc.unique(state.column("entity")).to_pylist():
        part = state.filter(pc.equal(state.column("entity"), ent))
        objects = pc.all(pc.starts_with(part.column("state"), "{")).as_py()
        if objects and not pc.any(pc.match_substring_regex(part.column("state"), LONG_NUMBER)).as_py():
            out[ent] = _typed_in_duckdb(con, part)
        else:
            out[ent] = _typed_in_python(part)
    return out


# --------------------------------------------------------------------------- DuckDB


def json_path(name: str) -> str:
    """A SQL string literal: the JSON path of a top-level member, quoted whatever its name."""
    return sql_string('$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"')


def _typed_in_duckdb(con: Any, part: pa.Table) -> pa.Table:
    import pyarrow as pa

    rows = part  # noqa: F841 - read by the queries
    # Columns in the order they first appear: rows share few shapes, so the order is read from
    # the shapes, in the order of their first row.
    names: dict[str, None] = {}
    for (cols,) in con.execute(
        """SELECT cols FROM (SELECT row_number() OVER () AS rn, json_keys(state) AS cols FROM rows)
           GROUP BY cols ORDER BY min(rn)"""
    ).fetchall():
        names.update(dict.fromkeys(cols))
    if not names:
        return pa.table({"key": part.column("key")})
    # One parse of each row extracts every column; the values are then measured column by column.
    extract = f"SELECT key, json_extract(state, [{', '.join(json_path(n) for n in names)}]) AS vs FROM rows"
    specials = "(" + ", ".join(sql_string(s) for s in SPECIAL_FLOATS) + ")"
    found = con.execute(
        f"""WITH m AS (SELECT unnest(range(1, {len(names) + 1})) AS i, unnest(vs) AS j FROM ({extract})),
                 d AS (SELECT i, json_type(j) AS t, j::VARCHAR AS v, j ->> '$' AS a FROM m WHERE j IS NOT NULL)
            SELECT i, list(DISTINCT t), bool_or(t = 'VARCHAR' AND a IN {specials}),
                   bool_or(t = 'VARCHAR' AND a NOT IN {specials}),
                   bool_or(t = 'DOUBLE' AND contains(lower(v), 'e')),
                   bool_or(t = 'UBIGINT' AND TRY_CAST(v AS BIGINT) IS NULL),
                   max(CASE WHEN t IN ('DOUBLE', 'UBIGINT', 'BIGINT') THEN length(split_part(ltrim(v, '-'), '.', 1)) END),
                   max(CASE WHEN t = 'DOUBLE' AND contains(v, '.') THEN length(split_part(v, '.', 2)) ELSE 0 END)
            FROM d GROUP BY i"""
    ).fetchall()
    measured = {i: rest for i, *rest in found}
    fields = [pa.field("key", pa.string())]
    columns = ["key"]
    for i, k in enumerate(names):
        types, special, plain, exponent, out_of_range, int_digits, scale = measured[i + 1]
        s = FieldStats(exponent=bool(exponent), out_of_range=bool(out_of_range), int_digits=int_digits or 1,
                       scale=scale or 0)  # fmt: skip
        for t in types or []:
            if t == "BOOLEAN":
                s.kinds.add("bool")
            elif t in ("UBIGINT", "BIGINT"):
                s.kinds.add("int")
            elif t == "DOUBLE":
                s.kinds.add("number")
            elif t in ("OBJECT", "ARRAY"):
                s.kinds.add("json")
        if special:
            s.kinds.add("special")
        if plain:
            s.kinds.add("string")
        kind = decide(s)
        fields.append(arrow_field(k, kind))
        columns.append(f"{_value_sql(f'vs[{i + 1}]', kind)} AS c{len(columns)}")
    # MATERIALIZED: each row is parsed once, not once for each column
    table = con.sql(f"WITH v AS MATERIALIZED ({extract}) SELECT {', '.join(columns)} FROM v").to_arrow_table()
    return pa.Table.from_arrays([table.column(i) for i in range(table.num_columns)], schema=pa.schema(fields))


def _value_sql(value: str, kind: tuple[str, int, int]) -> str:
    """SQL: a column's typed value from its JSON value (NULL where the row lacks the column)."""
    text = f"({value} ->> '$')"
    if kind[0] == "bool":
        return f"TRY_CAST({text} AS BOOLEAN)"
    if kind[0] == "string":
        return text
    if kind[0] == "int64":
        return f"TRY_CAST({text} AS BIGINT)"
    if kind[0] == "decimal":
        return f"CAST({text} AS DECIMAL({kind[1]}, {kind[2]}))"
    if kind[0] == "float64":
        return f"CAST({text} AS DOUBLE)"  # DuckDB reads 'NaN', 'Infinity' and '-Infinity' as such
    return f"CASE WHEN coalesce(json_type({value}), 'NULL') = 'NULL' THEN NULL ELSE {value}::VARCHAR END"


# --------------------------------------------------------------------------- Python


def _typed_in_python(part: pa.Table) -> pa.Table:
    import pyarrow as pa

    rows = [loads_exact(s) for s in part.column("state").to_pylist()]
    columns: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            row = {"value": row}
        for name, value in row.items():
            columns.setdefault(name, [None] * len(rows))[i] = value
    fields = [pa.field("key", pa.string())]
    arrays = [part.column("key").combine_chunks()]
    for name, values in columns.items():
        kind = decide(_python_stats(values))
        fields.append(arrow_field(name, kind))
        arrays.append(_python_array(kind, values, fields[-1].type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _is_number(v: Any) -> bool:
    return isinstance(v, RawNumber) or (isinstance(v, int) and not isinstance(v, bool))


def _is_special(v: Any) -> bool:
    return isinstance(v, str) and not isinstance(v, RawNumber) and v in SPECIAL_FLOATS


def _significant_digits(text: str) -> int:
    return len(text.lower().split("e")[0].lstrip("-+").replace(".", "").lstrip("0"))


def _python_stats(values: list[Any]) -> FieldStats:
    s = FieldStats()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            s.kinds.add("bool")
        elif _is_number(v):
            text = str(v)
            s.kinds.add("int" if isinstance(v, int) else "number")
            s.exponent |= "e" in text.lower()
            s.long |= _significant_digits(text) > 15
            if isinstance(v, int):
                s.out_of_range |= not -(2**63) <= v < 2**63
            if "e" not in text.lower():
                whole, _, frac = text.lstrip("-").partition(".")
                s.int_digits = max(s.int_digits, len(whole))
                s.scale = max(s.scale, len(frac))
        elif _is_special(v):
            s.kinds.add("special")
        elif isinstance(v, str):
            s.kinds.add("string")
        else:
            s.kinds.add("json")
    return s


def _python_array(kind: tuple[str, int, int], values: list[Any], typ: pa.DataType) -> pa.Array:
    import pyarrow as pa

    if kind[0] in ("bool", "string", "int64"):
        return pa.array(values, typ)
    if kind[0] == "float64":
        return pa.array([None if v is None else SPECIAL_FLOATS.get(v) if _is_special(v) else float(str(v)) for v in values], typ)
    if kind[0] == "decimal":
        return pa.array([None if v is None else Decimal(str(v)) for v in values], typ)
    return pa.array([None if v is None else dumps_exact(v) for v in values], typ)
