"""`logtool sql`: one read-only SELECT over the events view."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._common import FormatOpt, StoreArg, boundary, render


def command(
    store: StoreArg,
    query: Annotated[str, typer.Argument(help="One SELECT over the `events` view.", metavar="QUERY")],
    format: FormatOpt = None,
) -> None:
    """Run one read-only SELECT over the `events` view of STORE (DuckDB SQL).

    Columns: offset, ts, entity, key, prev_key, op, type, data, before, meta (JSON), txn,
    source, digest. `offset` is a reserved word: write it `"offset"`.

    Example:

        logtool sql shop.store "SELECT entity, op, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC"
    """
    import logtool

    table = logtool.sql(store, query)
    render(table, format, json_columns=_json_text_columns(table))


# The events view's columns that hold JSON text, and what replays and diffs name so
_JSON_NAMES = ("data", "before", "meta", "state", "value", "left", "right")


def _json_text_columns(table: Any) -> list[str]:
    """The columns written as JSON rather than as strings: text columns named like the events
    view's JSON ones whose every value is a JSON object or array. A name alone decides nothing:
    `SELECT entity AS data` holds plain text, and a text shaped to close the object and add a
    member must stay one string."""
    import pyarrow as pa

    from logtool import engine

    at = [i for i, f in enumerate(table.schema) if f.name in _JSON_NAMES and pa.types.is_string(f.type)]
    if not at or table.num_rows == 0:
        return [table.schema.names[i] for i in at]
    con = engine.connect()
    con.register("_result", pa.table([table.column(i) for i in at], names=[f"c{i}" for i in at]))
    checks = ", ".join(  # (a CASE: DuckDB evaluates both sides of an AND)
        f"bool_and(CASE WHEN c{i} IS NULL THEN TRUE WHEN json_valid(c{i}) THEN json_type(c{i}) IN ('OBJECT', 'ARRAY') "
        "ELSE FALSE END)"
        for i in at
    )
    verdicts = con.execute(f"SELECT {checks} FROM _result").fetchall()[0]
    # a name given twice is JSON only if both columns are
    return [n for n in {table.schema.names[i] for i in at}
            if all(ok for i, ok in zip(at, verdicts, strict=True) if table.schema.names[i] == n)]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("sql")(boundary(command))
