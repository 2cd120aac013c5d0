"""Generic JSON lines with a field mapping (``--key-field``, ``--ts-field``, ...).

The mapping runs as one DuckDB query per chunk of lines, so ingest is vectorized. DuckDB
re-reads JSON numbers through float64 where they are decimals, so a line whose numbers could
change that way (exponents, trailing zeros, long decimals) has its payload columns rebuilt by the
exact Python path instead: every value survives byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
    loads_exact,
    object_members,
    op_aliases,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# A number DuckDB might print differently: an exponent, a fraction ending in 0, a long decimal,
# negative zero. Matches inside strings too; that only costs speed.
_UNSAFE_NUMBER = r"[0-9][eE][-+0-9]|\.[0-9]*0([^0-9]|$)|\.0{5}|[0-9]{8}\.|\.[0-9]{8}|-0([^.0-9]|$)"


PARALLEL_ROWS = 32768


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
        entity_expr = _scalar(ent)
    else:
        entity_expr = sql_string(mapping.entity or entity_default)
    entity = "v_entity"  # computed once, in its own step of the query

    if mapping.ts_field:
        t = f(mapping.ts_field)
        unit = mapping.ts_unit or "s"
        scale = "0.001" if unit == "ns" else str(TS_UNITS[unit])
        numeric = f"(json_type({t}) IN ('UBIGINT', 'BIGINT', 'DOUBLE') OR regexp_full_match({t} ->> '$', '-?[0-9]+(\\.[0-9]+)?'))"
        ts_expr = (
            f"(CASE WHEN {numeric} THEN make_timestamp(TRY_CAST(trunc(TRY_CAST({t} ->> '$' AS DECIMAL(38, 9)) * {scale}) AS BIGINT))::TIMESTAMPTZ "
            f"ELSE TRY_CAST({t} ->> '$' AS TIMESTAMPTZ) END)"
        )
        checks.append((_absent(t), sql_string(f"missing timestamp field {mapping.ts_field!r}")))
        checks.append(("v_ts IS NULL", f"'unparseable timestamp ' || {t}::VARCHAR"))
    else:
        ts_expr = "NULL::TIMESTAMPTZ"

    if mapping.data_field:
        d = f(mapping.data_field)
        data_expr = f"(CASE WHEN {_absent(d)} THEN NULL ELSE {d}::VARCHAR END)"
    else:
        drop = mapping.mapped_fields()
        patch = "{" + ",".join('"' + n.replace('"', '\\"') + '":null' for n in drop) + "}"
        data_expr = f"json_merge_patch(line, {sql_string(patch)})::VARCHAR" if drop else "json(line)::VARCHAR"

    if mapping.type_field:
        typ = f"(CASE WHEN {_absent(f(mapping.type_field))} THEN NULL ELSE {_scalar(f(mapping.type_field))} END)"
    else:
        typ = "NULL::VARCHAR"

    if mapping.op_field:
        o = f(mapping.op_field)
        whens = " ".join(f"WHEN {sql_string(a)} THEN {sql_string(c)}" for a, c in op_aliases().items())
        op_expr = f"(CASE lower({o} ->> '$') {whens} END)"
        checks.append(
            ("v_op IS NULL", f"'unknown op ' || coalesce({o}::VARCHAR, 'null (missing op field {mapping.op_field})')")
        )
    else:
        default = "'event'" if mapping.type_field else "'upsert'"
        op_expr = f"(CASE WHEN {data_expr} IS NULL THEN 'delete' ELSE {default} END)"
    op = "v_op"

    plain = tuple(k for k in mapping.key_fields if ":" not in k)
    scoped: dict[str, list[str]] = {}
    for spec in mapping.key_fields:
        if ":" in spec:
            ent_name, field_name = spec.split(":", 1)
            scoped.setdefault(ent_name, []).append(field_name)

    def key_of(names: tuple[str, ...] | list[str]) -> str:
        if len(names) == 1:
            return f"(CASE WHEN {_absent(f(names[0]))} THEN NULL ELSE {_scalar(f(names[0]))} END)"
        return "json_object(" + ", ".join(f"{sql_string(k)}, {f(k)}" for k in names) + ")::VARCHAR"

    # `ENTITY:FIELD` keys apply to the entity named in full or by its last part (as Mapping.keys_for)
    matches = {
        e: f"({entity} = {sql_string(e)} OR regexp_extract({entity}, '[^.]*$') = {sql_string(e)})" for e in scoped
    }
    not_truncate = f"{op} IS DISTINCT FROM 'truncate'"
    for ent_name, names in scoped.items():
        for k in names:
            checks.append(
                (f"{matches[ent_name]} AND {not_truncate} AND {_absent(f(k))}",
                 sql_string(f"missing key field {k!r} (the key of {ent_name})"))
            )  # fmt: skip
    other = " AND ".join(f"NOT {m}" for m in matches.values()) or "TRUE"
    for k in plain:
        checks.append((f"{other} AND {not_truncate} AND {_absent(f(k))}", sql_string(f"missing key field {k!r}")))
    branches = " ".join(f"WHEN {matches[e]} THEN {key_of(names)}" for e, names in scoped.items())
    fallback = key_of(plain) if plain else "NULL::VARCHAR"
    key = f"(CASE WHEN {op} = 'truncate' THEN NULL {branches} ELSE {fallback} END)"  # a truncate has no key

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
), step1 AS (
    SELECT *,
        CASE WHEN jtype = 'OBJECT' THEN {entity_expr} END AS v_entity,
        CASE WHEN jtype = 'OBJECT' THEN {ts_expr} END AS v_ts,
        CASE WHEN jtype = 'OBJECT' THEN {data_expr} END AS v_data
    FROM j
), step2 AS (
    SELECT *, CASE WHEN jtype = 'OBJECT' THEN {op_expr} END AS v_op FROM step1
)
SELECT
    line_no,
    CASE WHEN NOT valid THEN 'broken JSON'
         WHEN jtype <> 'OBJECT' THEN 'not a JSON object (found ' || lower(jtype) || ')'
         {reasons} END AS reason,
    regexp_matches(line, {sql_string(_UNSAFE_NUMBER)}) AS unsafe,
    line,
    CASE WHEN jtype = 'OBJECT' THEN {off} END AS "offset",
    v_ts AS ts,
    v_entity AS entity,
    CASE WHEN jtype = 'OBJECT' THEN {key} END AS key,
    CASE WHEN jtype = 'OBJECT' THEN {prev_key} END AS prev_key,
    v_op AS op,
    CASE WHEN jtype = 'OBJECT' THEN {typ} END AS type,
    v_data AS data,
    NULL::VARCHAR AS before,
    CASE WHEN jtype = 'OBJECT' THEN {meta} END AS meta,
    NULL::STRUCT(id VARCHAR, position VARCHAR, position_order VARCHAR, ts TIMESTAMPTZ, aborted BOOLEAN) AS txn,
    {{'format': {sql_string(format_name)}, 'file': {sql_string(file)}, 'line': line_no::BIGINT,
      'position': CASE WHEN jtype = 'OBJECT' THEN {position} END,
      'position_order': CASE WHEN jtype = 'OBJECT' THEN lpad({position}, 20, '0') END}} AS source
FROM step2
"""


_STRING = re.compile(r'"[^"\\]*"')
_SPACE = re.compile(r"\s")


def _compact(raw: str) -> str:
    """A JSON value's text as DuckDB renders it (compact, unescaped), its numbers as written."""
    if "\\" not in raw and not _SPACE.search(_STRING.sub("", raw)):
        return raw  # already compact, nothing escaped: cut as it is
    return dumps_exact(loads_exact(raw))


def exact_fields(
    line: str, mapping: Mapping, entity: str | None, with_key: bool = True
) -> tuple[str | None, str | None, str | None]:
    """key (None unless ``with_key``), data and meta of one record, cut from the line: every
    number as written."""
    names = mapping.keys_for(entity or "") if with_key else ()
    wanted = {mapping.data_field, *mapping.meta_fields, *names} if mapping.data_field else None
    spans = {name: (vs, ve) for name, _ns, vs, ve in object_members(line, wanted)}
    cut: dict[str, str] = {}

    def text_of(name: str) -> str:
        if name not in cut:  # only the members asked for are compacted
            cut[name] = _compact(line[slice(*spans[name])])
        return cut[name]

    def value(name: str) -> str | None:
        if name not in spans:
            return None
        text = text_of(name)
        return None if text == "null" else text

    values = {name: text_of(name) for name in spans} if not mapping.data_field else cut

    if mapping.data_field:
        data = value(mapping.data_field)
    else:
        drop = set(mapping.mapped_fields())
        data = "{" + ",".join(f"{dumps_exact(n)}:{v}" for n, v in values.items() if n not in drop) + "}"
    meta = [f"{dumps_exact(m)}:{value(m)}" for m in mapping.meta_fields if value(m) is not None]
    key = None
    if names and all(value(n) is not None for n in names):
        if len(names) == 1:
            text = text_of(names[0])
            key = loads_exact(text) if text.startswith('"') else text
        else:
            key = "{" + ",".join(f"{dumps_exact(n)}:{text_of(n)}" for n in names) + "}"
    return key, data, ("{" + ",".join(meta) + "}") if meta else None


class RecordMapper:
    """Maps tables of JSON object lines to canonical batches; shared by the JSON-like readers."""

    def __init__(self, source: Source, mapping: Mapping, report: Report, format_name: str) -> None:
        from .. import engine
        from ..schema import input_schema

        self.source, self.mapping, self.report = source, mapping, report
        self.schema = input_schema()
        self.con: duckdb.DuckDBPyConnection = engine.connect()
        self.sql = mapping_sql(mapping, format_name, source.name, mapping.default_entity(source))
        self._reprinted_key = re.compile(r"\{|-?[0-9]+(\.[0-9]*)?[eE.]")

    def map(self, line_no: pa.Array, lines: pa.Array) -> pa.RecordBatch | None:
        """Map one chunk; bad records go to ``report``; returns None when nothing is left."""
        import pyarrow as pa
        import pyarrow.compute as pc

        # several record batches, so DuckDB maps them on every core (it keeps their order)
        chunk = pa.Table.from_batches(  # noqa: F841 - read by the query
            pa.table({"line_no": line_no, "line": lines}).to_batches(max_chunksize=PARALLEL_ROWS)
        )
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
        taken = out.take(pa.array(rows))
        keys = out.column("key").to_pylist()
        data = out.column("data").to_pylist()
        meta = out.column("meta").to_pylist()
        keep = [True] * out.num_rows
        for i, line, n, ent, op in zip(
            rows, taken.column("line").to_pylist(), taken.column("line_no").to_pylist(),
            taken.column("entity").to_pylist(), taken.column("op").to_pylist(), strict=True,
        ):  # fmt: skip
            # the key is cut again only where DuckDB may have re-printed a number in it: a
            # composite key, or a number that is not an integer (strings and integers are exact)
            with_key = keys[i] is not None and self._reprinted_key.match(keys[i]) is not None
            try:
                key, data[i], meta[i] = exact_fields(line, self.mapping, ent, with_key)
            except ValueError as e:
                self.report(BadRecord(self.source.name, n, f"invalid JSON: {e}", line.encode()))
                keep[i] = False
                continue
            if with_key and op != "truncate":
                keys[i] = key
        for name, values in (("key", keys), ("data", data), ("meta", meta)):
            out = out.set_column(out.schema.get_field_index(name), name, pa.array(values, pa.string()))
        return out if all(keep) else out.filter(pa.array(keep))


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read JSON lines (plain, .gz or .zst) through the field mapping."""
    import numpy as np
    import pyarrow as pa

    pending: list[BadRecord] = []  # a chunk's bad records, reported in line order
    mapper = RecordMapper(source, mapping, pending.append, "jsonl")
    with source.open() as stream:
        for first, lines in iter_line_chunks(stream, source, pending.append, mapping.max_line_bytes):
            numbers = pa.array(np.arange(first, first + len(lines), dtype=np.int64))
            batch = mapper.map(numbers, lines)
            for bad in sorted(pending, key=lambda b: b.line or 0):
                report(bad)
            pending.clear()
            if batch is not None:
                yield batch
    for bad in pending:
        report(bad)


def sniff(head: bytes) -> int:
    """Any file whose first non-blank line looks like a JSON object: the fallback for JSON."""
    for line in head.splitlines():
        text = line.strip()
        if text:
            return 10 if text.startswith(b"{") else 0
    return 0


FORMAT = Format("jsonl", "JSON lines, one record per line, read through the field mapping", sniff, read)
