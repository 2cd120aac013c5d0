"""Read-only views of a store: `sql` over its events, `info` about it, and `log` of its commits."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import sql_ident
from .errors import UsageError, engine_trouble
from .schema import OUTPUT_JSON_COLUMNS
from .store import Store, iso_utc, reads_latest

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def events_connection(store: Store, files: list[str] | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the ``events`` view, sandboxed: it can read the store's segments
    and nothing else on the file system."""
    from . import engine

    con = engine.connect()
    store.events_view(con, files=files)
    con.execute(f"SET allowed_directories = [{engine.sql_string(str(store.path.resolve() / 'segments') + '/')}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


# The events view's columns, for hints: the same in a store and in a raw file's purge or redact.
COLUMNS_HINT = (
    'columns: offset (write it "offset"), ts, entity, key, prev_key, op, type, data, before, meta (JSON), '
    "txn, source, digest"
)


def check_select(text: str, what: str = "query") -> None:
    """Refuse anything but one SELECT statement (before anything runs)."""
    import duckdb

    from . import engine

    try:
        statements = engine.connect().extract_statements(text)
    except duckdb.Error as e:
        raise UsageError(f"{what} does not parse: {_first_line(e)}", _offset_hint(text, e)) from None
    if not statements:
        raise UsageError(f"{what} is empty", "give one SELECT over the `events` view")
    if len(statements) != 1:
        raise UsageError(f"{what} must be one statement, found {len(statements)}", "remove the extra statements")
    kind = str(statements[0].type).rsplit(".", 1)[-1]
    if kind != "SELECT":
        raise UsageError(
            f"{what} must be a read-only SELECT, not {kind}", "the store changes only through logtool's own commands"
        )


@reads_latest
def sql(path: str | Path, query: str) -> pa.Table:
    """Run one read-only SELECT over the ``events`` view of a store."""
    import duckdb

    store = Store.open(path)
    check_select(query)
    con = events_connection(store)
    try:
        table = _as_written(con.sql(query)).to_arrow_table()
    except duckdb.Error as e:
        if (trouble := engine_trouble(e)) is not None:  # the limit or the disk, not the query, is at fault
            raise trouble from None
        if (outside := _outside(e)) is not None:
            raise UsageError(f"query failed: it may read only the `events` view, not {outside}",
                             f"select from `events`; {COLUMNS_HINT}") from None  # fmt: skip
        raise UsageError(f"query failed: {_first_line(e)}", _offset_hint(query, e)) from None
    names = table.schema.names
    if len(set(names)) == len(names):
        return table
    # a name the query gives twice: the second is name_2 (a row written as an object needs each once)
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        while seen[name] > 1 and f"{name}_{seen[name]}" in names:
            seen[name] += 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return table.rename_columns(unique)


# DuckDB types Arrow has no form for, which DuckDB hands over wrongly: a time's offset dropped
# (09:00:00+02 as 09:00:00), the largest UHUGEINT as -1, a BIT or a BIGNUM as its bytes.
_NO_ARROW_FORM = re.compile(r'"(?:[^"]|"")*"|\b(?:TIME WITH TIME ZONE|UHUGEINT|BIT|BIGNUM|VARINT)\b')


def _as_written(result: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """The result, with each value of a type Arrow has no form for (however nested) as DuckDB
    writes it: ``09:00:00+02``, ``101``."""
    types = [str(t) for t in result.types]
    texts = [_NO_ARROW_FORM.sub(lambda m: m[0] if m[0][0] == '"' else "VARCHAR", t) for t in types]  # (names kept)
    if texts == types:
        return result
    return result.project(", ".join(
        f"CAST(#{i} AS {text}) AS {sql_ident(name)}" if text != typ else f"#{i} AS {sql_ident(name)}"
        for i, (name, typ, text) in enumerate(zip(result.columns, types, texts, strict=True), start=1)
    ))  # fmt: skip


def json_text_columns(table: pa.Table) -> list[str]:
    """The columns of a query's result to write as JSON rather than as strings: text columns named
    like the events view's JSON ones (``schema.OUTPUT_JSON_COLUMNS``) whose every value is a JSON object
    or array. A name alone decides nothing: `SELECT entity AS data` holds plain text, and a text
    shaped to close the object and add a member must stay one string."""
    import pyarrow as pa

    from . import engine

    names = [f.name for f in table.schema if f.name in OUTPUT_JSON_COLUMNS and pa.types.is_string(f.type)]
    if not names or table.num_rows == 0:
        return names
    con = engine.connect()
    con.register("_result", table.select(names))  # names are unique: sql() makes them so
    checks = ", ".join(  # (a CASE: DuckDB evaluates both sides of an AND)
        f"bool_and(CASE WHEN {c} IS NULL THEN TRUE WHEN json_valid({c}) THEN json_type({c}) IN ('OBJECT', 'ARRAY') "
        "ELSE FALSE END)"
        for c in map(sql_ident, names)
    )
    verdicts = con.execute(f"SELECT {checks} FROM _result").fetchall()[0]
    return [n for n, ok in zip(names, verdicts, strict=True) if ok]


def _outside(e: Exception) -> str | None:
    """What a query reached for outside the events view, which the sandbox refused (a file, or an
    extension DuckDB would install to read another database), or None. (DuckDB's message for an
    extension breaks its first line mid-sentence.)"""
    text = str(e)
    if "disabled by configuration" not in text:
        return None
    if extension := re.search(r"required extension '([^':\n]+)", text):
        return f"what the {extension[1]} extension reads"
    if file := re.search(r'Cannot access (?:file|directory) "([^"]*)"', text):
        return f"the file {file[1]}"
    return "files"


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def _offset_hint(query: str, e: Exception) -> str | None:
    if re.search(r'(?<!")\boffset\b(?!")', query, re.IGNORECASE) and (  # an offset not written "offset"
        "syntax error" in str(e).lower() or "offset" in str(e).lower()
    ):
        return 'OFFSET is a reserved word in SQL: write the column as "offset" (in double quotes)'
    return f"the view is `events`; {COLUMNS_HINT}"


@reads_latest
def info(path: str | Path) -> dict[str, Any]:
    """Segments, offset and time ranges, entities with counts, sizes and the last commits."""
    store = Store.open(path)
    state = store.state()
    segments = state.segments
    result: dict[str, Any] = {
        "store": str(store.path),
        "commits": state.version + 1,
        "segments": len(segments),
        "events": sum(s["rows"] for s in segments),
        "first_offset": segments[0]["min_offset"] if segments else None,
        "last_offset": segments[-1]["max_offset"] if segments else None,
        "next_offset": state.next_offset,
        "first_ts": _instant(min, [s.get("min_ts") for s in segments]),
        "last_ts": _instant(max, [s.get("max_ts") for s in segments]),
        "bytes": sum(e.get("bytes", 0) for e in state.files.values()),
        "snapshots": len(state.of_kind("snapshot")),
        "quarantined": sum(e.get("rows", 0) for e in state.of_kind("quarantine")),
        "entities": {},
    }
    if segments:
        con = events_connection(store)
        rows = con.execute("SELECT entity, count(*) FROM events GROUP BY 1 ORDER BY 1").fetchall()
        result["entities"] = dict(rows)
    result["last_commits"] = [_commit_line(c) for c in store.commits()[-5:]]
    return result


def log(path: str | Path) -> list[dict[str, Any]]:
    """The store's commit history, oldest first: what was done, when, by whom."""
    return [_commit_line(c) for c in Store.open(path).commits()]


def _commit_line(c: dict[str, Any]) -> dict[str, Any]:
    added = [e for e in c.get("add", []) if e["kind"] == "segment"]
    removed = [e for e in c.get("remove", []) if e["kind"] == "segment"]
    params = c.get("params", {})
    summary = {k: v for k, v in c.get("info", {}).items() if not isinstance(v, list | dict)}
    return {
        "version": c["version"],
        "time": c["time"],
        "actor": c["actor"],
        "operation": c["operation"],
        "summary": ", ".join(f"{k}={v}" for k, v in summary.items()),
        "params": params,
        "segments_added": len(added),
        "segments_removed": len(removed),
        "events_added": sum(e["rows"] for e in added),
        "events_removed": sum(e["rows"] for e in removed),
        "receipt": c.get("info", {}).get("receipt"),
    }


def _instant(pick: Callable[[list[dt.datetime]], dt.datetime], texts: list[str | None]) -> str | None:
    """The earliest or latest of the instants segment entries record, as logtool writes instants."""
    moments = [dt.datetime.fromisoformat(t) for t in texts if t]
    return iso_utc(pick(moments)) if moments else None
