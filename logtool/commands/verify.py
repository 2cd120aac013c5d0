"""`logtool verify`: recompute every digest and the commit chain."""

from __future__ import annotations

import typer

from .. import console
from ..errors import EXIT_DIFFERENT, counted
from ._common import FormatOpt, OutputFormat, StoreArg, boundary, render, resolve, verdict


def command(store: StoreArg, format: FormatOpt = None) -> None:
    """Check STORE's integrity: exit 0 clean, 1 a problem found, 2 trouble.

    Recomputes each event's salted digest, each segment's digest and file checksum, and the
    commit chain, and explains every offset gap by a commit. Problems are printed (data on
    stdout), the first one first.

    Example:

        logtool verify shop.store && echo clean
    """
    import pyarrow as pa

    import logtool

    with console.progress("verify", unit="events") as update:
        report = logtool.verify(store, progress=update)
    problems = pa.Table.from_pylist(
        [{"where": p.where, "offset": p.offset, "problem": p.what} for p in report.problems],
        schema=pa.schema([("where", pa.string()), ("offset", pa.int64()), ("problem", pa.string())]),
    )
    if report.problems:
        verdict(EXIT_DIFFERENT)
        render(problems, format)
        first = report.problems[0]
        console.say(f"verify: {counted(len(report.problems), 'problem')}; first: {first.where}: {first.what}", style="red")
        raise typer.Exit(EXIT_DIFFERENT)
    if resolve(format) is not OutputFormat.table:
        render(problems, format)  # none: `[]` in JSON, the header in CSV
    if report.writer_at_work:
        console.warn(f"{counted(len(report.leftovers), 'file')} not named by any commit: a writer is at work "
                     f"({report.writer_at_work}), and {'it' if len(report.leftovers) == 1 else 'they'} may be its own; verify again when it is done")  # fmt: skip
    for path in [] if report.writer_at_work else report.leftovers:
        console.warn(f"{path}: not named by any commit (left by an interrupted command; safe to delete)")
    console.status(
        f"ok: {counted(report.commits, 'commit')}, {counted(report.segments, 'segment')}, {counted(report.events, 'event')} verified"
    )


def register(app: typer.Typer) -> None:
    app.command("verify")(boundary(command))
