"""`logtool log`: the store's commit history."""

from __future__ import annotations

from typing import Any

import typer

from .. import console
from ._common import FormatOpt, OutputFormat, StoreArg, boundary, render, resolve


def command(store: StoreArg, format: FormatOpt = None) -> None:
    """What was done to STORE, when and by whom: one row per commit, oldest first.

    Example:

        logtool log shop.store --format json
    """
    import pyarrow as pa

    import logtool

    from ..formats.base import dumps_exact

    rows = logtool.log(store)
    if resolve(format) is OutputFormat.table:
        render_commits(rows)
        return
    for r in rows:
        r["params"] = dumps_exact(r["params"])
        r["receipt"] = None if r["receipt"] is None else dumps_exact(r["receipt"])
    render(pa.Table.from_pylist(rows), format, json_columns=("params", "receipt"))


def render_commits(rows: list[dict[str, Any]], title: str | None = None) -> None:
    """Commits for people: a line a commit; the parameters and receipts in full are for --format json."""
    import pyarrow as pa

    keep = ("version", "time", "actor", "operation", "summary")
    render(pa.Table.from_pylist([{k: r[k] for k in keep} for r in rows]), OutputFormat.table, title=title)
    if any(r["receipt"] for r in rows):
        console.status("parameters and receipts in full: --format json", style="dim")


def register(app: typer.Typer) -> None:
    app.command("log")(boundary(command))
