"""`logtool info` and `logtool formats`: what a store holds, what logtool reads."""

from __future__ import annotations

import typer

from ._common import FormatOpt, OutputFormat, StoreArg, boundary, render, render_object, resolve
from .log import render_commits


def command(store: StoreArg, format: FormatOpt = None) -> None:
    """Segments, offset range, time range, entities, sizes and the last commits of STORE.

    Example:

        logtool info shop.store
    """
    import logtool

    info = logtool.info(store)
    if resolve(format) is not OutputFormat.table:
        render_object(info, format)
        return
    # for people, on a terminal of 80 columns: the entities as a list, the last commits as `logtool log` shows them
    commits = info.pop("last_commits")
    info["entities"] = ", ".join(f"{name}: {n}" for name, n in info["entities"].items())
    render_object(info, format)
    render_commits(commits, title="last commits")


def formats(format: FormatOpt = None) -> None:
    """The input formats `ingest --format` takes (detected from content when not given).

    Example:

        logtool formats
    """
    import pyarrow as pa

    from ..formats import all_formats

    found = all_formats()
    render(pa.table({"format": list(found), "description": [f.description for f in found.values()]}), format)


def register(app: typer.Typer) -> None:
    app.command("info")(boundary(command))
    app.command("formats")(boundary(formats))
