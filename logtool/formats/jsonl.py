"""Generic JSON lines with a field mapping (``--key-field``, ``--ts-field``, ...).

The mapping runs as one DuckDB query per chunk of lines, so ingest is vectorized. DuckDB
re-reads JSON numbers through float64 where they are decimals, so a line whose numbers could
change that way (exponents, trailing zeros, long decimals) has its payload columns rebuilt by the
exact Python path instead: every value survives byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..engine import sql_string
from . import Format
from .base import (
    TS_UNITS,
    BadRecord,
    Mapping,
    Report,
    Source,
    dumps_exact,
    iter_line_chunks,
    object_members,
    op_aliases,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# A number DuckDB might print differently: an exponent, a fraction ending in 0, a long decimal,
# negative zero. Matches inside strings too; that only costs speed.
_UNSAFE_NUMBER = r"[0-9][eE][-+0-9]|\.[0-9]*0([^0-9]|$)|[0-9]{8}\.|\.[0-9]{8}|-0([^.0-9]|$)"


def _path(name: str) -> str:
    return sql_string('$."' + name.replace('"', '\\"') + '"')


def _scalar(expr: str) -> str:
    """JSON value -> text: strings bare, everything else as its JSON text."""
    return f"(CASE WHEN json_type({expr}) = 'VARCHAR' THEN {expr} ->> '$' ELSE {expr}::VARCHAR END)"


def _absent(expr: str) -> str:
    return f"({expr} IS NULL OR json_type({expr}) = 'NULL')"


def mapping_sql(mapping: Mapping, format_name: str, file: str, entity_default: str) -> str:
    """The query that maps a ``chunk(line_no, line)`` table of JSON object lines to events.

    Every row comes out with a ``reason`` (null when the record is good) and ``unsafe`` (the
    payload must be rebuilt exactly).
    """
    fields: list[str] = []

    def f(name: str) -> str:
        if name not in fields:
            fields.append(name)
        return f"f[{fields.index(name) + 1}]"

    checks: list[tuple[str, str]] = []  # (condition that makes the record bad, reason SQL)

    if mapping.prev_key_field:
        pk = f(mapping.prev_key_field)
        prev_key = f"(CASE WHEN {_absent(pk)} THEN NULL ELSE {_scalar(pk)} END)"
    else:
        prev_key = "NULL::VARCHAR"

    if mapping.entity_field:
        ent = f(mapping.entity_field)
        checks.append((_absent(ent), sql_string(f"missing entity field {mapping.entity_field!r}")))
        entity = _scalar(ent)
    else:
        entity = sql_string(mapping.entity or entity_default)

    if mapping.ts_field:
        t = f(mapping.ts_field)
        unit = mapping.ts_unit or "s"
        scale = "0.001" if unit == "ns" else str(TS_UNITS[unit])
        numeric = f"(json_type({t}) IN ('UBIGINT', 'BIGINT', 'DOUBLE') OR regexp_full_match({t} ->> '$', '-?[0-9]+(\\.[0-9]+)?'))"
        ts = (
            f"(CASE WHEN {numeric} THEN make_timestamp(TRY_CAST(TRY_CAST({t} ->> '$' AS DECIMAL(38, 9)) * {scale} AS BIGINT))::TIMESTAMPTZ "
            f"ELSE TRY_CAST({t} ->> '$' AS TIMESTAMPTZ) END)"
        )
        checks.append((_absent(t), sql_string(f"missing timestamp field {mapping.ts_field!r}")))
        checks.append((f"{ts} IS NULL", f"'unparseable timestamp ' || {t}::VARCHAR"))
    else:
        ts = "NULL::TIMESTAMPTZ"

    if mapping.data_field:
        d = f(mapping.data_field)
        data = f"(CASE WHEN {_absent(d)} THEN NULL ELSE {d}::VARCHAR END)"
    else:
        drop = mapping.mapped_fields()
        patch = "{" + ",".join('"' + n.replace('"', '\\"') + '":null' for n in drop) + "}"
        data = f"json_merge_patch(line, {sql_string(patch)})::VARCHAR" if drop else "json(line)::VARCHAR"

    if mapping.type_field:
        typ = f"(CASE WHEN {_absent(f(mapping.type_field))} THEN NULL ELSE {_scalar(f(mapping.type_field))} END)"
    else:
        typ = "NULL::VARCHAR"

    if mapping.op_field:
        o = f(mapping.op_field)
        whens = " ".join(f"WHEN {sql_string(a)} THEN {sql_string(c)}" for a, c in op_aliases().items())
        op = f"(CASE lower({o} ->> '$') {whens} END)"
        checks.append(
            (f"{op} IS NULL", f"'unknown op ' || coalesce({o}::VARCHAR, 'null (missing op field {mapping.op_field})')")
        )
    else:
        default = "'event'" if mapping.type_field else "'upsert'"
        op = f"(CASE WHEN {data} IS NULL THEN 'delete' ELSE {default} END)"

    key_fields = mapping.key_fields
    if any(":" in k for k in key_fields):
        # per-entity keys need the entity first; generic lines take one key list for all
        key_fields = tuple(k.split(":", 1)[1] for k in key_fields)
    if key_fields:
        for k in key_fields:
            checks.append(
                (f"{op} IS DISTINCT FROM 'truncate' AND {_absent(f(k))}", sql_string(f"missing key field {k!r}"))
            )
        if len(key_fields) == 1:
            key = _scalar(f(key_fields[0]))
        else:
            key = "json_object(" + ", ".join(f"{sql_string(k)}, {f(k)}" for k in key_fields) + ")::VARCHAR"
    else:
        key = "NULL::VARCHAR"

    if mapping.meta_fields:
        members = ", ".join(f"{sql_string(m)}, {f(m)}" for m in mapping.meta_fields)
        meta = f"nullif(json_merge_patch('{{}}', json_object({members}))::VARCHAR, '{{}}')"
    else:
        meta = "NULL::VARCHAR"

    if mapping.offset_field:
        off = f"TRY_CAST({f(mapping.offset_field)}::VARCHAR AS BIGINT)"
        checks.append((f"{off} IS NULL", sql_string(f"missing or non-integer offset field {mapping.offset_field!r}")))
        position = f"{off}::VARCHAR"
    else:
        off = "NULL::BIGINT"
        position = "NULL::VARCHAR"

    reasons = " ".join(f"WHEN {cond} THEN {reason}" for cond, reason in checks)
    paths = "[" + ", ".join(_path(n) for n in fields) + "]" if fields else "['$.__none__']"
    return f"""
WITH lines AS (
    SELECT line_no, rtrim(line, chr(13) || chr(10)) AS line FROM chunk
), parsed AS (
    SELECT line_no, line, json_valid(line) AS valid FROM lines WHERE trim(line) <> ''
), typed AS (
    SELECT *, CASE WHEN valid THEN json_type(line) END AS jtype FROM parsed
), j AS (
    SELECT *, CASE WHEN jtype = 'OBJECT' THEN json_extract(line, {paths}) END AS f FROM typed
)
SELECT
    line_no,
    CASE WHEN NOT valid THEN 'broken JSON'
         WHEN jtype <> 'OBJECT' THEN 'not a JSON object (found ' || lower(jtype) || ')'
         {reasons} END AS reason,
    regexp_matches(line, {sql_string(_UNSAFE_NUMBER)}) AS unsafe,
    line,
    CASE WHEN jtype = 'OBJECT' THEN {off} END AS "offset",
    CASE WHEN jtype = 'OBJECT' THEN {ts} END AS ts,
    CASE WHEN jtype = 'OBJECT' THEN {entity} END AS entity,
    CASE WHEN jtype = 'OBJECT' THEN {key} END AS key,
    CASE WHEN jtype = 'OBJECT' THEN {prev_key} END AS prev_key,
    CASE WHEN jtype = 'OBJECT' THEN {op} END AS op,
    CASE WHEN jtype = 'OBJECT' THEN {typ} END AS type,
    CASE WHEN jtype = 'OBJECT' THEN {data} END AS data,
    NULL::VARCHAR AS before,
    CASE WHEN jtype = 'OBJECT' THEN {meta} END AS meta,
    NULL::STRUCT(id VARCHAR, position VARCHAR, position_order VARCHAR, ts TIMESTAMPTZ, aborted BOOLEAN) AS txn,
    {{'format': {sql_string(format_name)}, 'file': {sql_string(file)}, 'line': line_no::BIGINT,
      'position': CASE WHEN jtype = 'OBJECT' THEN {position} END,
      'position_order': CASE WHEN jtype = 'OBJECT' THEN lpad({position}, 20, '0') END}} AS source
FROM j
"""


def _exact_payload(line: str, mapping: Mapping) -> tuple[str | None, str | None]:
    """data and meta of one record, cut from the line itself: every value byte for byte."""
    members = object_members(line)

    def raw(start: int, end: int) -> str | None:
        text = line[start:end]
        return None if text == "null" else text

    values = {name: (vs, ve) for name, _ns, vs, ve in members}
    if mapping.data_field:
        data = raw(*values[mapping.data_field]) if mapping.data_field in values else None
    else:
        drop = set(mapping.mapped_fields())
        data = "{" + ",".join(f"{dumps_exact(name)}:{line[vs:ve]}" for name, _ns, vs, ve in members if name not in drop) + "}"
    meta = [
        f"{dumps_exact(m)}:{line[values[m][0]:values[m][1]]}"
        for m in mapping.meta_fields
        if m in values and raw(*values[m]) is not None
    ]
    return data, ("{" + ",".join(meta) + "}") if meta else None


class RecordMapper:
    """Maps tables of JSON object lines to canonical batches; shared by the JSON-like readers."""

    def __init__(self, source: Source, mapping: Mapping, report: Report, format_name: str) -> None:
        from .. import engine
        from ..schema import input_schema

        self.source, self.mapping, self.report = source, mapping, report
        self.schema = input_schema()
        self.con: duckdb.DuckDBPyConnection = engine.connect()
        self.sql = mapping_sql(mapping, format_name, source.name, mapping.default_entity(source))

    def map(self, line_no: pa.Array, lines: pa.Array) -> pa.RecordBatch | None:
        """Map one chunk; bad records go to ``report``; returns None when nothing is left."""
        import pyarrow as pa
        import pyarrow.compute as pc

        chunk = pa.table({"line_no": line_no, "line": lines})  # noqa: F841 - read by the query
        self.con.register("chunk", chunk)
        out = self.con.sql(self.sql).to_arrow_table()
        self.con.unregister("chunk")
        reason = out.column("reason")
        if reason.null_count < len(reason):
            bad = out.filter(pc.is_valid(reason))
            for n, why, raw in zip(
                bad.column("line_no").to_pylist(),
                bad.column("reason").to_pylist(),
                bad.column("line").to_pylist(),
                strict=True,
            ):
                self.report(BadRecord(self.source.name, n, why, raw.encode()))
            out = out.filter(pc.is_null(reason))
        if out.num_rows == 0:
            return None
        unsafe = out.column("unsafe")
        if pc.any(unsafe).as_py():
            out = self._rebuild_exact(out)
        return out.select(self.schema.names).cast(self.schema).combine_chunks().to_batches()[0]

    def _rebuild_exact(self, out: pa.Table) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = pc.indices_nonzero(out.column("unsafe")).to_pylist()
        lines = out.column("line").take(pa.array(rows)).to_pylist()
        line_nos = out.column("line_no").take(pa.array(rows)).to_pylist()
        data = out.column("data").to_pylist()
        meta = out.column("meta").to_pylist()
        keep = [True] * out.num_rows
        for i, line, n in zip(rows, lines, line_nos, strict=True):
            try:
                data[i], meta[i] = _exact_payload(line, self.mapping)
            except ValueError as e:
                self.report(BadRecord(self.source.name, n, f"invalid JSON: {e}", line.encode()))
                keep[i] = False
        out = out.set_column(out.schema.get_field_index("data"), "data", pa.array(data, pa.string()))
        out = out.set_column(out.schema.get_field_index("meta"), "meta", pa.array(meta, pa.string()))
        return out if all(keep) else out.filter(pa.array(keep))


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read JSON lines (plain, .gz or .zst) through the field mapping."""
    import numpy as np
    import pyarrow as pa

    mapper = RecordMapper(source, mapping, report, "jsonl")
    with source.open() as stream:
        for first, lines in iter_line_chunks(stream, source, report, mapping.max_line_bytes):
            numbers = pa.array(np.arange(first, first + len(lines), dtype=np.int64))
            batch = mapper.map(numbers, lines)
            if batch is not None:
                yield batch


def sniff(head: bytes) -> int:
    """Any file whose first non-blank line looks like a JSON object: the fallback for JSON."""
    for line in head.splitlines():
        text = line.strip()
        if text:
            return 10 if text.startswith(b"{") else 0
    return 0


FORMAT = Format("jsonl", "JSON lines, one record per line, read through the field mapping", sniff, read)
