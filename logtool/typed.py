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

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .engine import json_path, sql_string
from .formats.base import RawNumber, dumps_exact, loads_exact

if TYPE_CHECKING:
    import pyarrow as pa

SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}
# A number DuckDB's JSON functions would read through float64 and change: 16 or more digits, or
# an exponent of three digits or more (1e-400 would become 0), after a digit and before no letter
# or digit (so that hardly any word in a string, a UUID's say, is taken for one); or a fraction
# below 1e-6 written without an exponent, which DuckDB would write with one (0.00000001 as 1e-8,
# so that a decimal column would read as a float)
LONG_NUMBER = r"[0-9]{16}|[0-9.]{17}|[0-9.][eE][-+]?[0-9]{3,}([^0-9a-zA-Z_]|$)|(^|[^0-9.])0\.0{6}0*[1-9]"


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
        if present == {"int"}:  # int64, else decimal(38,0) whatever the digits (a stable schema), decimal(76,0) past it
            if not s.out_of_range:
                return ("int64", 0, 0)
            return ("decimal", 38, 0) if s.int_digits <= 38 else ("decimal", 76, 0) if s.int_digits <= 76 else ("json", 0, 0)
        precision = max(s.int_digits, 1) + s.scale
        # decimal128 to 38 digits, decimal256 to 76 (PostgreSQL's numeric(40,10) is a number too)
        return ("decimal", precision, s.scale) if precision <= 76 else ("json", 0, 0)
    return ("json", 0, 0)


def arrow_field(name: str, kind: tuple[str, int, int]) -> pa.Field:
    import pyarrow as pa

    types = {"bool": pa.bool_(), "string": pa.string(), "float64": pa.float64(), "int64": pa.int64()}
    if kind[0] == "decimal":
        return pa.field(name, pa.decimal128(kind[1], kind[2]) if kind[1] <= 38 else pa.decimal256(kind[1], kind[2]))
    if kind[0] == "json":
        return pa.field(name, pa.string(), metadata={"logtool.json": "1"})
    return pa.field(name, types[kind[0]])


KEY = "key"


def key_column(columns: Iterable[str]) -> str:
    """The name of a typed table's first column, the store's key: ``key``, or ``_key`` (``__key``,
    ...) where the row has a column of that name."""
    taken = set(columns)
    name = KEY
    while name in taken:
        name = "_" + name
    return name


def typed_tables(state: pa.Table) -> dict[str, pa.Table]:
    """Per entity (state rows ``entity, key, state``), the rows as a typed table."""
    import pyarrow.compute as pc

    from . import engine

    con = engine.connect()
    names, plain = _shapes(con, state)
    in_duckdb = {e: cols for e, cols in names.items() if plain[e]}
    out = _typed_in_duckdb(con, state, in_duckdb) if in_duckdb else {}
    for ent in names:
        if not plain[ent]:
            out[ent] = _typed_in_python(state.filter(pc.equal(state.column("entity"), ent)))
    return {ent: out[ent] for ent in pc.unique(state.column("entity")).to_pylist()}


def _shapes(con: Any, rows: pa.Table) -> tuple[dict[str, list[str]], dict[str, bool]]:
    """Per entity of ``rows``, its columns in the order they first appear, and whether DuckDB can
    type it (every state an object, none holding a long number); one pass over the states.

    Rows share few shapes, so the order is read from the shapes, in the order of their first row."""
    names: dict[str, dict[str, None]] = {}
    plain: dict[str, bool] = {}
    for ent, cols, objects, longs in con.execute(
        f"""SELECT entity, cols, bool_and(object), bool_or(long)
            FROM (SELECT row_number() OVER () AS rn, *
                  FROM (SELECT entity, json_keys(state) AS cols, starts_with(state, '{{') AS object,
                               regexp_matches(state, '{LONG_NUMBER}') AS long FROM rows))
            GROUP BY entity, cols ORDER BY min(rn)"""
    ).fetchall():
        names.setdefault(ent, {}).update(dict.fromkeys(cols or []))
        plain[ent] = plain.get(ent, True) and bool(objects) and not longs
    return {ent: list(cols) for ent, cols in names.items()}, plain


# --------------------------------------------------------------------------- DuckDB


def _typed_in_duckdb(con: Any, rows: pa.Table, names: dict[str, list[str]] | None = None) -> dict[str, pa.Table]:
    """The entities of ``rows`` (those of ``names``, with their columns, where given; else all)
    typed in DuckDB; entities with the same columns (as CDC tables of one shape often have) are
    measured and extracted in one pass.

    Each pass reads every column of a state in one parse of it: ``json_type`` gives the types,
    ``json_extract_string`` the text (a string unquoted, anything else as JSON text); only a
    string in a column kept as JSON is read again, quoted."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if names is None:
        names = _shapes(con, rows)[0]
    by_columns: dict[tuple[str, ...], list[str]] = {}
    for ent, names_of in names.items():
        by_columns.setdefault(tuple(names_of), []).append(ent)
    out: dict[str, pa.Table] = {}
    specials = "(" + ", ".join(sql_string(s) for s in SPECIAL_FLOATS) + ")"
    for cols, ents in by_columns.items():
        which = "(" + ", ".join(sql_string(e) for e in ents) + ")"
        if not cols:
            for ent in ents:
                out[ent] = pa.table({KEY: rows.filter(pc.equal(rows.column("entity"), ent)).column("key")})
            continue
        paths = "[" + ", ".join(json_path(n) for n in cols) + "]"
        # Column by column, side by side (one row of measures per entity): each value's type is
        # read once, and each value's text taken only where its type is measured by it.
        per_value = ", ".join(
            f"""ts[{i}] AS t{i}, CASE WHEN ts[{i}] IN ('DOUBLE', 'UBIGINT', 'BIGINT') THEN ss[{i}] END AS v{i},
                CASE WHEN ts[{i}] = 'VARCHAR' THEN ss[{i}] END AS a{i}"""
            for i in range(1, len(cols) + 1)
        )
        measures = ", ".join(
            f"""list(DISTINCT t{i}) FILTER (WHERE t{i} IS NOT NULL), bool_or(t{i} = 'VARCHAR' AND a{i} IN {specials}),
                bool_or(t{i} = 'VARCHAR' AND a{i} NOT IN {specials}), bool_or(t{i} = 'DOUBLE' AND contains(lower(v{i}), 'e')),
                bool_or(t{i} = 'UBIGINT' AND TRY_CAST(v{i} AS BIGINT) IS NULL),
                max(length(split_part(ltrim(v{i}, '-'), '.', 1))),
                max(CASE WHEN t{i} = 'DOUBLE' AND contains(v{i}, '.') THEN length(split_part(v{i}, '.', 2)) ELSE 0 END)"""
            for i in range(1, len(cols) + 1)
        )
        found = con.execute(
            f"""SELECT entity, {measures}
                FROM (SELECT entity, {per_value}
                      FROM (SELECT entity, json_type(state, {paths}) AS ts, json_extract_string(state, {paths}) AS ss
                            FROM rows WHERE entity IN {which}))
                GROUP BY entity"""
        ).fetchall()
        width = 7  # measures per column
        measured = {
            (ent, i + 1): list(rest[i * width : (i + 1) * width])
            for ent, *rest in found
            for i in range(len(cols))
            if rest[i * width]  # (no value: the column is absent from every row of the entity)
        }
        # Entities whose columns also came out the same types share the extraction.
        by_kinds: dict[tuple[tuple[str, int, int], ...], list[str]] = {}
        for ent in ents:
            kinds = tuple(_decide_column(measured.get((ent, i + 1))) for i in range(len(cols)))
            by_kinds.setdefault(kinds, []).append(ent)
        for kinds, same in by_kinds.items():
            fields = [pa.field(key_column(cols), pa.string())] + [arrow_field(n, k) for n, k in zip(cols, kinds, strict=True)]
            values = ", ".join(
                f"{_value_sql(f'ss[{i + 1}]', f'ts[{i + 1}]', f'json_extract(state, {json_path(cols[i])})', k)} AS c{i + 1}"
                for i, k in enumerate(kinds)
            )
            types = f"json_type(state, {paths})" if any(k[0] == "json" for k in kinds) else "NULL"
            listed = "(" + ", ".join(sql_string(e) for e in same) + ")"
            table = con.sql(
                f"""SELECT entity, key, {values}
                    FROM (SELECT entity, key, state, {types} AS ts, json_extract_string(state, {paths}) AS ss
                          FROM rows WHERE entity IN {listed})"""
            ).to_arrow_table()
            for ent in same:
                part = table.filter(pc.equal(table.column("entity"), ent)).drop_columns(["entity"])
                out[ent] = pa.Table.from_arrays(part.columns, schema=pa.schema(fields))
    return out


def _decide_column(measures: list[Any] | None) -> tuple[str, int, int]:
    """A column's type from what DuckDB measured of its values (None: it holds no value)."""
    types, special, plain, exponent, out_of_range, int_digits, scale = measures or ([], False, False, False, False, None, 0)
    s = FieldStats(exponent=bool(exponent), out_of_range=bool(out_of_range), int_digits=int_digits or 1, scale=scale or 0)
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
    return decide(s)


def _value_sql(text: str, type_: str, value: str, kind: tuple[str, int, int]) -> str:
    """SQL: a column's typed value from ``text``, its value's ``json_extract_string`` (NULL where the
    row lacks the column or holds a JSON null); a column kept as JSON takes a string's JSON text
    (``type_`` its ``json_type``) from ``value``, which is read only there."""
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
    # json_extract_string gives an object, an array, a number or a boolean as its JSON text, the
    # same text json_extract gives; a string comes unquoted, so it is read again as JSON
    return f"CASE WHEN {text} IS NULL THEN NULL WHEN {type_} = 'VARCHAR' THEN {value}::VARCHAR ELSE {text} END"


# --------------------------------------------------------------------------- Python


def _typed_in_python(part: pa.Table) -> pa.Table:
    import pyarrow as pa

    rows = [loads_exact(s) for s in part.column("state").to_pylist()]
    # a state that is not an object goes in a column of its own: `value`, or `_value` (...) where
    # an object state has a `value`
    taken = {name for row in rows if isinstance(row, dict) for name in row}
    value_column = "value"
    while value_column in taken:
        value_column = "_" + value_column
    columns: dict[str, list[Any]] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            row = {value_column: row}
        for name, value in row.items():
            columns.setdefault(name, [None] * len(rows))[i] = value
    fields = [pa.field(key_column(columns), pa.string())]
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


def _beyond_float64(text: str) -> bool:
    """A number float64 would turn into 0 or an infinity (its exponent past about 308)."""
    from decimal import Decimal, InvalidOperation

    try:
        number = Decimal(text)
    except InvalidOperation:
        return False
    return number != 0 and not Decimal("1e-307") <= abs(number) <= Decimal("1e308")


def _python_stats(values: list[Any]) -> FieldStats:
    s = FieldStats()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            s.kinds.add("bool")
        elif _is_number(v):
            text = str(v)
            integer = isinstance(v, int) or text == "-0"  # -0 is read as an integer, as DuckDB reads it
            s.kinds.add("int" if integer else "number")
            s.exponent |= "e" in text.lower()
            s.long |= _significant_digits(text) > 15 or _beyond_float64(text)
            if integer:
                s.out_of_range |= not -(2**63) <= int(text) < 2**63
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

    if kind[0] in ("bool", "string"):
        return pa.array(values, typ)
    if kind[0] == "int64":
        return pa.array([None if v is None else int(v) for v in values], typ)  # -0 is a RawNumber
    if kind[0] == "float64":
        return pa.array([None if v is None else SPECIAL_FLOATS.get(v) if _is_special(v) else float(str(v)) for v in values], typ)
    if kind[0] == "decimal":
        return pa.array([None if v is None else Decimal(str(v)) for v in values], typ)
    return pa.array([None if v is None else dumps_exact(v) for v in values], typ)
