"""`logtool info` and `logtool formats`: what a store holds, what logtool reads."""

from __future__ import annotations

import typer

from ._common import FormatOpt, StoreArg, boundary, render, render_object


def command(store: StoreArg, format: FormatOpt = None) -> None:
    """Segments, offset range, time range, entities, sizes and the last commits of STORE.

    Example:

        logtool info shop.store
    """
    import logtool

    render_object(logtool.info(store), format)


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
