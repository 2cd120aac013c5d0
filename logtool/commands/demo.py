"""`logtool demo`: the main job, end to end, on the bundled sample logs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import console
from ._common import boundary


def command(
    keep: Annotated[
        str | None, typer.Option("--keep", help="Keep the stores in this directory instead of a temporary one.")
    ] = None,
    samples: Annotated[
        str | None, typer.Option("--samples", help="Directory of the sample logs (default: the bundled sample_logs/).")
    ] = None,
) -> None:
    """Run logtool's main job on the bundled sample logs and show each step's result.

    Ingests, replays to a point in time, audits, diffs replicas, compacts, purges personal data
    and verifies, in a temporary directory (kept with --keep).

    Example:

        logtool demo
    """
    import tempfile
    from pathlib import Path

    from logtool.demo import steps
    from logtool.errors import UsageError

    if keep is not None and Path(keep).exists() and (not Path(keep).is_dir() or any(Path(keep).iterdir())):
        raise UsageError(f"--keep {keep}: not an empty directory", "give a new or empty directory for the demo's stores")
    with tempfile.TemporaryDirectory(prefix="logtool-demo-") as tmp:
        workdir = keep or tmp
        for i, step in enumerate(steps(workdir, samples), 1):
            _show(i, step.title, step.command, step.result)
        console.out.print("\n[bold green]demo complete[/bold green]" + (f": stores kept in {workdir}" if keep else ""))


def _show(i: int, title: str, command: str, result: Any) -> None:
    import pyarrow as pa
    from rich.markup import escape
    from rich.panel import Panel
    from rich.pretty import Pretty
    from rich.table import Table

    console.out.print()
    console.out.rule(f"[bold]{i}. {escape(title)}[/bold]", align="left")
    console.out.print(f"[dim]$ {escape(command)}[/dim]", soft_wrap=True)
    if isinstance(result, pa.Table):
        table = Table(show_lines=False)
        for name in result.schema.names:
            table.add_column(name, overflow="fold")
        for row in result.to_pylist()[:20]:
            table.add_row(*(escape(_text(v)) if v is not None else "[dim]NULL[/dim]" for v in row.values()))
        console.out.print(table)
    elif isinstance(result, dict):
        table = Table(show_header=False, box=None, padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for k, v in result.items():
            table.add_row(escape(str(k)), escape(_text(v)))
        console.out.print(Panel(table, expand=False))
    else:
        console.out.print(Panel(Pretty(result), expand=False))


def _text(value: Any) -> str:
    """A value as the commands print it: text as it is, anything else as JSON (times in UTC, as Z)."""
    from logtool.formats.base import dumps_exact
    from logtool.formats.writers import plain

    value = plain(value)
    return value if isinstance(value, str) else dumps_exact(value)


def register(app: typer.Typer) -> None:
    app.command("demo")(boundary(command))
