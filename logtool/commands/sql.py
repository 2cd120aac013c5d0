"""`logtool sql`: one read-only SELECT over the events view."""

from __future__ import annotations

from typing import Annotated

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
    from logtool.query import json_text_columns

    table = logtool.sql(store, query)
    render(table, format, json_columns=json_text_columns(table))


def register(app: typer.Typer) -> None:
    app.command("sql")(boundary(command))
