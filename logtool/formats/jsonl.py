"""Generic JSON lines with a field mapping (``--key-field``, ``--ts-field``, ...).

The mapping runs as one DuckDB query per chunk of lines, so ingest is vectorized. DuckDB
re-reads JSON numbers through float64 where they are decimals, so in a line whose numbers could
change that way (exponents, trailing zeros, long decimals, -0) the query first turns every number
into a marked string, and takes the marks off again in the payload text: every value survives
byte for byte. The rare line that already holds the mark has its payload cut by Python instead.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

from ..engine import json_path, sql_string
from . import Format
from .base import (
    TS_MAX_MICROS,
    TS_MIN_MICROS,
    TS_UNIT_WORDS,
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
    parse_ts,
    replace_lone_surrogates,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

# A number DuckDB might print differently: an exponent, a fraction ending in 0, a long decimal,
# negative zero. Matches inside strings too; that only costs speed.
_UNSAFE_NUMBER = r"[0-9][eE][-+0-9]|\.[0-9]*0([^0-9]|$)|\.0{5}|[0-9]{8}\.|\.[0-9]{8}|-0([^.0-9]|$)"
# Turns every number outside strings into the string "\u0001<number as written>", so DuckDB carries
# it through unchanged; the mark is taken off again in the payload text (_UNMARK). A string is
# matched whole (escapes included), so no match starts inside one; a string match gets an empty
# mark after it (the rewrite cannot depend on which group matched), taken out again right away.
_STRINGS = r'"(?:[^"\\]|\\.)*"'  # a JSON string, escapes included
_MARK = f"({_STRINGS})|(-?[0-9][-+.0-9eE]*)"
_MARK_AS = '\\1"\\\\u0001\\2"'
_EMPTY_MARK = '"\\u0001"'
_UNMARK = r'"\\u0001([^"]*)"'
# A UTC offset no zone has: 24 hours or more, or 60 minutes or more, after a time of day.
_BAD_OFFSET = r"[0-9]([.,][0-9]+)?[+-]((2[4-9]|[3-9][0-9])(:?[0-9]{2})?|[0-9]{2}:?[6-9][0-9])$"
# The time most logs write, in UTC: no offset (_BAD_OFFSET ends in a digit), no zone name (no two
# letters in a row). One anchored match of it is cheaper than looking for both.
_PLAIN_UTC = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z"
# A line that already holds the marker (escaped, or raw) cannot be marked: Python rebuilds it.
_HOLDS_MARK = "(contains(line, chr(1)) OR contains(line, '\\u0001'))"

PARALLEL_ROWS = 32768
# What DuckDB's JSON reader accepts but JSON does not: a trailing comma, NaN and infinities. Looked
# for outside strings only (strings are blanked first), on the few lines that might hold them. A
# line that begins with its own rendering has no trailing comma (the rendering drops it), and a
# NaN or an infinity keeps its spelling there: a plain search of the lowered line finds the
# candidates far faster than a regular expression would.
_MAYBE_LENIENT = r",\s*[\]}]|[nN][aA][nN]|[iI][nN][fF]"
_MAYBE_LENIENT_SQL = (
    "(CASE WHEN starts_with(line, rendered) THEN contains(lower(line), 'nan') OR contains(lower(line), 'inf') "
    f"ELSE regexp_matches(line, {sql_string(_MAYBE_LENIENT)}) END)"
)
_LENIENT_COMMA = r",\s*[\]}]"
_LENIENT_NUMBER = r"(?i)nan|inf"
# A line that matches neither (the most) needs no rendering: nothing in it can differ from it.
_SUSPECT = f"{_UNSAFE_NUMBER}|{_MAYBE_LENIENT}"


PARSE_TS = "logtool_parse_ts"  # parse_ts as a SQL function of RecordMapper's connection


def _named_zone(text: str) -> str:
    """SQL: the time text names a zone after its time (two letters or more; UTC and GMT, which
    mean one thing everywhere, aside)."""
    return f"(regexp_matches({text}, '[0-9] ?[A-Za-z]{{2}}') AND NOT regexp_matches({text}, '[0-9] ?(UTC|GMT|utc|gmt)$'))"
ENTITY_NAMES = "logtool_entity_names"  # the names an `ENTITY:FIELD` key may give an entity (Mapping.keys_for)


def _entity_is(entity: str, name: str) -> str:
    """SQL: an `ENTITY:FIELD` key's entity name matches this entity (as Mapping.keys_for decides);
    a name with a quoted part is read in Python, any other here."""
    return (f"(CASE WHEN contains({entity}, '\"') THEN list_contains({ENTITY_NAMES}({entity}), {sql_string(name)}) "
            f"ELSE {entity} = {sql_string(name)} OR regexp_extract({entity}, '[^.]*$') = {sql_string(name)} END)")  # fmt: skip


def _scalar(expr: str) -> str:
    """JSON value -> text: strings bare, everything else as its JSON text."""
    return f"(CASE WHEN starts_with({expr}, '\"') THEN {expr} ->> '$' ELSE {expr}::VARCHAR END)"


def _absent(expr: str) -> str:
    return f"({expr} IS NULL OR {expr}::VARCHAR = 'null')"


def _number(expr: str) -> str:
    """Is this JSON text a number? (It starts with '-' or a digit: between '-' and ':' in ASCII.)"""
    return f"({expr}::VARCHAR >= '-' AND {expr}::VARCHAR < ':')"


def mapping_sql(mapping: Mapping, format_name: str, file: str, entity_default: str) -> str:
    """The query that maps a ``chunk(idx, line_no, line)`` table of JSON object lines to events.

    Every row comes out with its ``idx``, a ``reason`` (null when the record is good, '' for a
    blank line) and ``rebuild`` (the payload must be rebuilt exactly in Python). Payload columns
    (key, prev_key, data, meta) keep every number as written: where a line holds a number DuckDB
    would re-print, they are taken from the line with its numbers marked as strings.
    """
    fields: list[str] = []
    payload: list[str] = []  # fields whose JSON text goes into a payload column

    def f(name: str, into_payload: bool = False) -> str:
        if name not in fields:
            fields.append(name)
        if into_payload and name not in payload:
            payload.append(name)
        return f"f{fields.index(name) + 1}"

    def p(name: str, marked: bool) -> str:
        """A payload field's JSON text, from the marked line or not."""
        f(name, True)
        return f"m{payload.index(name) + 1}" if marked else f(name)

    checks: list[tuple[str, str]] = []  # (condition that makes the record bad, reason SQL)
    extra: list[str] = []  # columns the fields step computes from the fields, each once

    def exact(build: Callable[[bool], str], unmark: str) -> str:
        """A payload expression built from the plain fields, or from the marked ones (unmarked by
        the ``unmark`` SQL template) where the line was marked."""
        return f"(CASE WHEN marked IS NULL THEN {build(False)} ELSE {unmark.format(build(True))} END)"

    unmark_json = f"regexp_replace({{}}, {sql_string(_UNMARK)}, '\\1', 'g')"
    # key text: a number is the marked string itself; an object or list is JSON text
    unmark_key = f"replace({unmark_json}, chr(1), '')"

    if mapping.prev_key_field:
        name = mapping.prev_key_field
        prev_key = exact(
            lambda m: f"(CASE WHEN {_absent(p(name, m))} THEN NULL ELSE {_scalar(p(name, m))} END)", unmark_key
        )
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

        text = "ts_text"  # the field's text, taken once (in the fields step)
        extra.append(f"{t} ->> '$' AS ts_text")

        def epoch(number: str) -> str:
            # past the years 1-9999 the micros are held just outside them: the range check names it
            micros = f"TRY(TRY_CAST(trunc(TRY_CAST({number} AS DECIMAL(38, 9)) * {scale}) AS BIGINT))"
            beyond = (f"CASE WHEN TRY_CAST({number} AS DOUBLE) > 0 THEN {TS_MAX_MICROS + 1} "
                      f"WHEN TRY_CAST({number} AS DOUBLE) < 0 THEN {TS_MIN_MICROS - 1} END")  # fmt: skip
            held = f"least(greatest(coalesce({micros}, {beyond}), {TS_MIN_MICROS - 1}), {TS_MAX_MICROS + 1})"
            return f"make_timestamp({held})::TIMESTAMPTZ"

        # a string of digits is an epoch number too; no such string casts to a timestamp, so the
        # pattern is only tried where the cast failed. What DuckDB cannot read (ISO-8601's basic
        # form, a decimal comma) is read by parse_ts, the one definition of an event time.
        # DuckDB takes a UTC offset of 24 hours or more, or of 60 minutes, and moves the instant by
        # it; and it reads zone abbreviations its own way (BST as Bangladesh's): such texts go to
        # parse_ts, which refuses the first and reads zone names as every other reader does
        ts_expr = (
            f"(CASE WHEN {_number(t)} THEN {epoch(f'{t}::VARCHAR')} ELSE coalesce("
            f"CASE WHEN regexp_full_match({text}, {sql_string(_PLAIN_UTC)}) "
            f"OR (NOT regexp_matches({text}, {sql_string(_BAD_OFFSET)}) AND NOT {_named_zone(text)}) "
            f"THEN TRY_CAST({text} AS TIMESTAMPTZ) END, "
            f"CASE WHEN regexp_full_match({text}, '-?[0-9]+(\\.[0-9]+)?') THEN {epoch(text)} END, "
            f"make_timestamp({PARSE_TS}({text}))::TIMESTAMPTZ) END)"
        )
        checks.append((_absent(t), sql_string(f"missing timestamp field {mapping.ts_field!r}")))
        checks.append(("v_ts IS NULL", f"'unparseable timestamp ' || {t}::VARCHAR"))
        read_as = sql_string(f" read as {TS_UNIT_WORDS[unit]} since the epoch")
        checks.append(
            (f"NOT isfinite(v_ts) OR epoch_us(v_ts) NOT BETWEEN {TS_MIN_MICROS} AND {TS_MAX_MICROS}",
             f"'timestamp ' || {t}::VARCHAR || (CASE WHEN {_number(t)} THEN {read_as} ELSE '' END) "
             "|| ' is out of range (years 1 to 9999)'")
        )  # fmt: skip
    else:
        ts_expr = "NULL::TIMESTAMPTZ"

    if mapping.data_field:
        name = mapping.data_field
        data_expr = exact(lambda m: f"nullif({p(name, m)}::VARCHAR, 'null')", unmark_json)
        data_present = f"NOT {_absent(f(name))}"
    else:
        def without(drop: list[str], m: bool) -> str:
            source = "marked" if m else "line"
            if not drop:
                return f"json({source})::VARCHAR"
            patch = "{" + ",".join('"' + n.replace('"', '\\"') + '":null' for n in drop) + "}"
            return f"json_merge_patch({source}, {sql_string(patch)})::VARCHAR"

        # the key fields that leave the data are the record's entity's (`ENTITY:FIELD` keys)
        scopes = list(dict.fromkeys(k.split(":", 1)[0] for k in mapping.key_fields if ":" in k))

        def data_of(m: bool) -> str:
            branches = " ".join(
                f"WHEN {_entity_is(entity_expr, e)} "
                f"THEN {without(mapping.mapped_fields(e), m)}"
                for e in scopes
            )
            plain_drop = without(mapping.mapped_fields(), m)
            return f"(CASE {branches} ELSE {plain_drop} END)" if scopes else plain_drop

        data_expr = exact(data_of, unmark_json)
        data_present = "TRUE"

    if mapping.type_field:
        typ = f"(CASE WHEN {_absent(f(mapping.type_field))} THEN NULL ELSE {_scalar(f(mapping.type_field))} END)"
    else:
        typ = "NULL::VARCHAR"

    if mapping.op_field:
        o = f(mapping.op_field)
        whens = " ".join(f"WHEN {sql_string(a)} THEN {sql_string(c)}" for a, c in op_aliases().items())
        op_text = f"lower({o} ->> '$')"
        op_expr = f"(CASE op_text {whens} END)"  # op_text is computed once: CASE x WHEN repeats x
        checks.append(
            ("v_op IS NULL", f"'unknown op ' || coalesce({o}::VARCHAR, 'null (missing op field {mapping.op_field})')")
        )
    else:
        op_text = "NULL"
        default = "'event'" if mapping.type_field else "'upsert'"
        op_expr = f"(CASE WHEN {data_present} THEN {default} ELSE 'delete' END)"
    op = "v_op"

    plain = tuple(k for k in mapping.key_fields if ":" not in k)
    scoped: dict[str, list[str]] = {}
    for spec in mapping.key_fields:
        if ":" in spec:
            ent_name, field_name = spec.split(":", 1)
            scoped.setdefault(ent_name, []).append(field_name)

    def key_of(names: tuple[str, ...] | list[str], m: bool) -> str:
        if len(names) == 1:
            return f"(CASE WHEN {_absent(p(names[0], m))} THEN NULL ELSE {_scalar(p(names[0], m))} END)"
        members = [f"{sql_string(dumps_exact(k) + ':')}, coalesce({p(k, m)}::VARCHAR, 'null')" for k in names]
        return "concat('{', " + ", ',', ".join(members) + ", '}')"

    # `ENTITY:FIELD` keys apply to the entity named in full or by its last part (as Mapping.keys_for)
    matches = {
        e: _entity_is(entity, e) for e in scoped
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

    def key_expr(m: bool) -> str:
        branches = " ".join(f"WHEN {matches[e]} THEN {key_of(names, m)}" for e, names in scoped.items())
        fallback = key_of(plain, m) if plain else "NULL::VARCHAR"
        return f"(CASE WHEN {op} = 'truncate' THEN NULL {branches} ELSE {fallback} END)"  # a truncate has no key

    # a single key is text, a number in it marked as a string; a composite one is JSON text
    key = exact(key_expr, unmark_key) if mapping.key_fields else "NULL::VARCHAR"

    if mapping.meta_fields:

        def meta_of(m: bool) -> str:
            members = [
                f"CASE WHEN NOT {_absent(p(name, m))} THEN {sql_string(dumps_exact(name) + ':')} || {p(name, m)}::VARCHAR END"
                for name in mapping.meta_fields
            ]
            return f"nullif(concat('{{', concat_ws(',', {', '.join(members)}), '}}'), '{{}}')"

        meta = exact(meta_of, unmark_json)
    else:
        meta = "NULL::VARCHAR"

    if mapping.offset_field:
        # an integer (a number, or a string of digits; 10.0 as a Parquet DECIMAL(p,0) or double
        # column renders it): a cast would round 4.4 to 4
        text = f"({f(mapping.offset_field)} ->> '$')"
        off = f"CASE WHEN regexp_full_match({text}, '-?[0-9]+(\\.0+)?') THEN TRY_CAST(split_part({text}, '.', 1) AS BIGINT) END"
        checks.append((f"{off} IS NULL", sql_string(f"missing or non-integer offset field {mapping.offset_field!r}")))
        position = f"{off}::VARCHAR"
    else:
        off = "NULL::BIGINT"
        position = "NULL::VARCHAR"

    reasons = " ".join(f"WHEN {cond} THEN {reason}" for cond, reason in checks)
    paths = "[" + ", ".join(json_path(n) for n in fields) + "]" if fields else "['$.__none__']"
    fm = f"json_extract(marked, [{', '.join(json_path(n) for n in payload)}])" if payload else "NULL::JSON[]"
    columns = "".join(f", f[{i + 1}] AS f{i + 1}" for i in range(len(fields)))
    columns += "".join(f", fm[{i + 1}] AS m{i + 1}" for i in range(len(payload)))
    extras = "".join(f", {e}" for e in extra)
    return f"""
WITH suspects AS (
    SELECT idx, line_no, line, regexp_matches(line, {sql_string(_SUSPECT)}) AS suspect FROM chunk
), parsed AS (
    -- DuckDB's own rendering of a suspect line: NULL where it is not JSON; where it is the line
    -- itself (but for trailing blanks), every number is written as DuckDB would print it. Any other
    -- line is only checked to be JSON: it holds nothing the rendering is there to find.
    SELECT *, CASE WHEN suspect THEN TRY(json(line))::VARCHAR END AS rendered,
              CASE WHEN suspect THEN rendered IS NOT NULL ELSE json_valid(line) END AS valid
    FROM suspects
), checked AS (
    SELECT * REPLACE (CASE WHEN lenient IS NULL THEN rendered END AS rendered, valid AND lenient IS NULL AS valid) FROM (
        SELECT *, CASE WHEN suspect AND rendered IS NOT NULL AND {_MAYBE_LENIENT_SQL} THEN
                  CASE WHEN regexp_matches(regexp_replace(line, {sql_string(_STRINGS)}, '""', 'g'), {sql_string(_LENIENT_COMMA)})
                       THEN 'broken JSON: a trailing comma'
                       WHEN regexp_matches(regexp_replace(line, {sql_string(_STRINGS)}, '""', 'g'), {sql_string(_LENIENT_NUMBER)})
                       THEN 'broken JSON: NaN and Infinity are not JSON numbers' END END AS lenient
        FROM parsed)
), typed AS (
    SELECT *, CASE WHEN NOT valid THEN NULL WHEN starts_with(line, '{{') THEN 'OBJECT'
                   ELSE json_type(line) END AS jtype
    FROM checked
), j AS (
    SELECT idx, line_no, line, lenient, jtype, jtype = 'OBJECT' AS obj,
        CASE WHEN jtype = 'OBJECT' THEN json_extract(line, {paths}) END AS f,
        CASE WHEN jtype = 'OBJECT' AND suspect AND NOT starts_with(line, rendered)
                  AND regexp_matches(line, {sql_string(_UNSAFE_NUMBER)})
             THEN CASE WHEN {_HOLDS_MARK} THEN 'python' ELSE 'mark' END END AS exactness
    FROM typed
), marked AS (
    SELECT *, CASE WHEN exactness = 'mark' THEN
        replace(regexp_replace(line, {sql_string(_MARK)}, {sql_string(_MARK_AS)}, 'g'), {sql_string(_EMPTY_MARK)}, '')
        END AS marked
    FROM j
), fields AS (
    SELECT *{extras} FROM (
        SELECT * EXCLUDE (f, fm){columns} FROM (SELECT *, CASE WHEN marked IS NOT NULL THEN {fm} END AS fm FROM marked))
), step1 AS (
    SELECT *,
        CASE WHEN obj THEN {entity_expr} END AS v_entity,
        CASE WHEN obj THEN {ts_expr} END AS v_ts,
        CASE WHEN obj THEN {data_expr} END AS v_data,
        CASE WHEN obj THEN {op_text} END AS op_text
    FROM fields
), step2 AS (
    SELECT *, CASE WHEN obj THEN {op_expr} END AS v_op FROM step1
)
SELECT
    idx,
    CASE WHEN lenient IS NOT NULL THEN lenient
         WHEN jtype IS NULL THEN (CASE WHEN trim(rtrim(line, chr(13) || chr(10))) = '' THEN '' ELSE 'broken JSON' END)
         WHEN NOT obj THEN 'not a JSON object (found ' || (CASE jtype WHEN 'ARRAY' THEN 'a list'
              WHEN 'VARCHAR' THEN 'a string' WHEN 'BOOLEAN' THEN 'a boolean' WHEN 'NULL' THEN 'null'
              ELSE 'a number' END) || ')'  -- in the words kind_of uses
         {reasons} END AS reason,
    exactness = 'python' AS rebuild,
    {f"CASE WHEN obj THEN {f(mapping.data_field)} IS NOT NULL END" if mapping.data_field else "NULL::BOOLEAN"} AS has_data_field,
    {"".join(f"CASE WHEN obj THEN {f(m)} IS NOT NULL END AS has_meta_{i}, " for i, m in enumerate(mapping.meta_fields))}
    CASE WHEN obj THEN {off} END AS "offset",
    v_ts AS ts,
    v_entity AS entity,
    CASE WHEN obj THEN {key} END AS key,
    CASE WHEN obj THEN {prev_key} END AS prev_key,
    v_op AS op,
    CASE WHEN obj THEN {typ} END AS type,
    v_data AS data,
    NULL::VARCHAR AS before,
    CASE WHEN obj THEN {meta} END AS meta,
    NULL::STRUCT(id VARCHAR, position VARCHAR, position_order VARCHAR, ts TIMESTAMPTZ, aborted BOOLEAN) AS txn,
    {{'format': {sql_string(format_name)}, 'file': {sql_string(file)}, 'line': line_no::BIGINT,
      'position': CASE WHEN obj THEN {position} END,
      'position_order': CASE WHEN obj THEN lpad({position}, 20, '0') END}} AS source
FROM step2
"""


_STRING = re.compile(r'"[^"\\]*"')
_SPACE = re.compile(r"\s")


def _compact(raw: str) -> str:
    """A JSON value's text as DuckDB renders it (compact, unescaped), its numbers as written."""
    if "\\" not in raw and not _SPACE.search(_STRING.sub("", raw)):
        return raw  # already compact, nothing escaped: cut as it is
    return dumps_exact(loads_exact(raw))


def _scalar_text(text: str) -> str:
    """A compact JSON value as a key: a string bare, anything else as its JSON text."""
    return str(loads_exact(text)) if text.startswith('"') else text


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
        drop = set(mapping.mapped_fields(entity))
        data = "{" + ",".join(f"{dumps_exact(n)}:{v}" for n, v in values.items() if n not in drop) + "}"
    meta = [f"{dumps_exact(m)}:{value(m)}" for m in mapping.meta_fields if value(m) is not None]
    key = None
    if names and all(value(n) is not None for n in names):
        if len(names) == 1:
            key = _scalar_text(text_of(names[0]))
        else:
            key = "{" + ",".join(f"{dumps_exact(n)}:{text_of(n)}" for n in names) + "}"
    return key, data, ("{" + ",".join(meta) + "}") if meta else None


def _exact_scalar(line: str, name: str) -> str | None:
    """One member of the record as a key (see ``_scalar_text``), cut from the line; None if it
    is absent or null."""
    spans = [(vs, ve) for n, _ns, vs, ve in object_members(line, {name}) if n == name]
    text = _compact(line[slice(*spans[0])]) if spans else "null"
    return None if text == "null" else _scalar_text(text)


class RecordMapper:
    """Maps tables of JSON object lines to canonical batches; shared by the JSON-like readers."""

    def __init__(self, source: Source, mapping: Mapping, report: Report, format_name: str) -> None:
        from .. import engine
        from ..schema import input_schema

        self.source, self.mapping, self.report = source, mapping, report
        source.mapped = True
        self.schema = input_schema()
        self.con: duckdb.DuckDBPyConnection = engine.connect()
        self.sql = mapping_sql(mapping, format_name, source.name, mapping.default_entity(source))
        unit = mapping.ts_unit

        def micros(text: str | None) -> int | None:
            try:
                return None if text is None else parse_ts(text, unit)
            except (ValueError, OverflowError):
                return None

        from duckdb.func import FunctionNullHandling

        self.con.create_function(PARSE_TS, micros, ["VARCHAR"], "BIGINT", null_handling=FunctionNullHandling.SPECIAL)

        from .base import entity_names

        self.con.create_function(ENTITY_NAMES, entity_names, ["VARCHAR"], "VARCHAR[]")

    def map(self, line_no: pa.Array, lines: pa.Array, raw: list[bytes] | None = None) -> pa.RecordBatch | None:
        """Map one chunk; bad records go to ``report`` (with ``raw[i]`` as the record's bytes
        where the lines were built from another text, else the line); returns None when nothing
        is left."""
        mapped = self.map_table(line_no, lines, raw)
        return None if mapped is None else mapped.combine_chunks().to_batches()[0]

    def map_table(self, line_no: pa.Array, lines: pa.Array, raw: list[bytes] | None = None) -> pa.Table | None:
        """Map one chunk into a table of several batches (not copied into one); bad records go
        to ``report``; returns None when nothing is left."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        out = self._query(pa.array(np.arange(len(lines), dtype=np.int64)), line_no, lines)
        broken = pc.indices_nonzero(pc.equal(out.column("reason"), "broken JSON")).to_pylist()
        if broken:
            out = self._read_lone_surrogates(out, broken, line_no, lines)
        reason = out.column("reason")
        if reason.null_count < len(reason):
            bad = out.filter(pc.is_valid(reason))
            for i, why in zip(bad.column("idx").to_pylist(), bad.column("reason").to_pylist(), strict=True):
                if why:  # '' is a blank line: nothing to report
                    record = raw[i] if raw is not None else lines[i].as_py().rstrip("\r\n").encode()
                    if why == "broken JSON":
                        why = broken_json(lines[i].as_py())
                    self.report(BadRecord(self.source.name, line_no[i].as_py(), why, record))
            out = out.filter(pc.is_null(reason))
        if out.num_rows == 0:
            return None
        if self.mapping.data_field and not self.source.data_field_seen:
            self.source.data_field_seen = bool(pc.any(out.column("has_data_field")).as_py())
        for i, name in enumerate(self.mapping.meta_fields):
            if name not in self.source.meta_fields_seen and pc.any(out.column(f"has_meta_{i}")).as_py():
                self.source.meta_fields_seen.add(name)
        if self.mapping.type_field and not self.source.type_field_seen:
            self.source.type_field_seen = out.column("type").null_count < out.num_rows
            self.source.domain_events_seen = self.source.domain_events_seen or bool(
                pc.any(pc.equal(out.column("op"), "event")).as_py()
            )
        if pc.any(out.column("rebuild")).as_py():
            out = self._rebuild_exact(out, line_no, lines)
        return out.select(self.schema.names).cast(self.schema)

    def _query(self, idx: pa.Array, line_no: pa.Array, lines: pa.Array) -> pa.Table:
        """The mapping query over lines (``idx`` their places in the chunk)."""
        import pyarrow as pa

        # several record batches, so DuckDB maps them on every core (it keeps their order)
        chunk = pa.Table.from_batches(  # noqa: F841 - read by the query
            pa.table({"idx": idx, "line_no": line_no, "line": lines}).to_batches(max_chunksize=PARALLEL_ROWS)
        )
        self.con.register("chunk", chunk)
        out = self.con.sql(self.sql).to_arrow_table()
        self.con.unregister("chunk")
        return out

    def _read_lone_surrogates(self, out: pa.Table, broken: list[int], line_no: pa.Array, lines: pa.Array) -> pa.Table:
        """Lines DuckDB could not parse that hold a lone surrogate escape (which it refuses; JSON
        and Python take it) mapped again with each written U+FFFD (``replace_lone_surrogates``)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        at = pc.take(out.column("idx"), pa.array(broken)).to_pylist()
        texts = pc.take(lines, pa.array(at)).to_pylist()
        fixed = {i: r for i, t in zip(at, texts, strict=True) if (r := replace_lone_surrogates(t)) is not t}
        if not fixed:
            return out
        self.source.note_lone_surrogate(min(line_no[i].as_py() for i in fixed))
        again = self._query(pa.array(list(fixed), pa.int64()), pc.take(line_no, pa.array(list(fixed))),
                            pa.array(list(fixed.values()), pa.string()))  # fmt: skip
        kept = out.filter(pc.invert(pc.is_in(out.column("idx"), pa.array(list(fixed), pa.int64()))))
        both = pa.concat_tables([kept, again.cast(kept.schema)])
        return both.take(pc.sort_indices(both.column("idx")))

    def _rebuild_exact(self, out: pa.Table, line_no: pa.Array, lines: pa.Array) -> pa.Table:
        """Payload columns cut from the line in Python, where the line could not be marked."""
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = pc.indices_nonzero(out.column("rebuild")).to_pylist()
        taken = out.take(pa.array(rows))
        columns = {name: out.column(name).to_pylist() for name in ("key", "prev_key", "data", "meta")}
        keys, prev_keys, data, meta = columns.values()
        keep = [True] * out.num_rows
        for i, at, ent, op in zip(
            rows, taken.column("idx").to_pylist(), taken.column("entity").to_pylist(), taken.column("op").to_pylist(),
            strict=True,
        ):  # fmt: skip
            text = lines[at].as_py().rstrip("\r\n")
            line = replace_lone_surrogates(text)
            try:
                key, data[i], meta[i] = exact_fields(line, self.mapping, ent)
                if prev_keys[i] is not None:  # (so a line without one is not read to its end)
                    prev_keys[i] = _exact_scalar(line, self.mapping.prev_key_field or "")
            except ValueError as e:
                self.report(BadRecord(self.source.name, line_no[at].as_py(), f"cannot be read exactly: {e}", text.encode()))
                keep[i] = False
                continue
            if op != "truncate":  # a truncate has no key
                keys[i] = key
        for name, values in columns.items():
            out = out.set_column(out.schema.get_field_index(name), name, pa.array(values, pa.string()))
        return out if all(keep) else out.filter(pa.array(keep))


def broken_json(line: str) -> str:
    """Why a line is not JSON, and where (its byte, as invalid UTF-8 is placed): DuckDB only says
    that it is not. A NUL byte is named as such (a file padded with zeros after a crash, or not
    text); a line that ends inside its record is said to be cut short."""
    import json

    text = line.rstrip("\r\n")
    nul = text.find("\x00")
    if nul >= 0:
        return f"broken JSON: a NUL byte at byte {_byte_at(text, nul)} (a file padded with zeros after a crash, or not text)"
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()):
            return f"broken JSON: the record is cut short at byte {_byte_at(text, e.pos)}"
        what = e.msg.removesuffix(" at")  # "Invalid control character at"
        return f"broken JSON: {what[:1].lower()}{what[1:]} at byte {_byte_at(text, e.pos)}"
    return "broken JSON"  # what Python reads and DuckDB does not (a nesting too deep for it)


def _byte_at(text: str, pos: int) -> int:
    return len(text[:pos].encode("utf-8", "surrogatepass"))


class _ReadAhead:
    """Splits a stream into line chunks in a thread of its own, one chunk ahead of the caller, so
    reading, hashing and splitting overlap the mapping of the chunk before. Each chunk comes with
    the bad records found while splitting it (the last item may carry only those)."""

    _END = object()

    def __init__(self, stream: IO[bytes], source: Source, max_line_bytes: int) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(stream, source, max_line_bytes), name="logtool-line-reader", daemon=True
        )

    def __enter__(self) -> _ReadAhead:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        # the stream closes after this: the thread must be done with it
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)  # frees a reader waiting on the full queue
            except queue.Empty:
                pass
        self._thread.join()

    def __iter__(self) -> Iterator[tuple[int, pa.Array | None, list[BadRecord]]]:
        while (item := self._queue.get()) is not self._END:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _run(self, stream: IO[bytes], source: Source, max_line_bytes: int) -> None:
        found: list[BadRecord] = []
        try:
            for first, lines in iter_line_chunks(stream, source, found.append, max_line_bytes):
                bad = found.copy()  # the chunk's own: found goes on collecting for the next one
                found.clear()
                if not self._put((first, lines, bad)):
                    return
            if found:
                self._put((0, None, found))
            self._put(self._END)
        except BaseException as e:  # raised again in the caller's thread
            self._put(e)

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read JSON lines (plain, .gz or .zst) through the field mapping."""
    import numpy as np
    import pyarrow as pa

    pending: list[BadRecord] = []  # a chunk's bad records, reported in line order
    mapper = RecordMapper(source, mapping, pending.append, "jsonl")
    with source.open() as stream, _ReadAhead(stream, source, mapping.max_line_bytes) as chunks:
        for first, lines, split_bad in chunks:
            pending += split_bad
            batch = None
            if lines is not None:
                batch = mapper.map(pa.array(np.arange(first, first + len(lines), dtype=np.int64)), lines)
            for bad in sorted(pending, key=lambda b: b.line or 0):
                report(bad)
            pending.clear()
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
