"""Two consoles: ``out`` for data (stdout) and ``err`` for everything a person reads (stderr)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
quiet = False  # set by the root -q option
debug = False  # set by the root --debug option: tracebacks on errors


def status(message: str, style: str | None = None) -> None:
    """A line for people on stderr, unless -q. It is plain text, printed as it is: file names,
    keys and values in it are never read as markup or emoji codes."""
    if not quiet:
        err.print(message, style=style, markup=False, emoji=False, highlight=False)


def say(message: str, style: str | None = None) -> None:
    """A line for people on stderr that ``-q`` does not silence (a verdict, what a prompt is
    about), plain text like ``status``."""
    err.print(message, style=style, markup=False, emoji=False, highlight=False)


def warn(message: str) -> None:
    """A warning on stderr (shown even under -q), plain text like ``status``."""
    from rich.text import Text

    err.print(Text.assemble(("warning:", "yellow"), " ", message), emoji=False, highlight=False)


@contextlib.contextmanager
def progress(
    description: str, total: int | None = None, unit: str = "bytes"
) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on stderr; yields ``update(done, total)``, counted in ``unit`` (``bytes``, or
    a word such as ``events`` or ``steps``, or ``""`` for a bare count). Silent under -q or off a terminal."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )  # fmt: skip

    count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
    columns = [TextColumn("{task.description}"), BarColumn(), count]
    if unit not in ("bytes", ""):
        columns.append(TextColumn(unit))
    bar = Progress(
        *columns, TimeElapsedColumn(), TimeRemainingColumn(),
        console=err, redirect_stdout=False, redirect_stderr=False, transient=True,
        disable=quiet or not err.is_terminal,
    )  # fmt: skip
    with bar:
        task = bar.add_task(description, total=total)

        def update(done: int, new_total: int | None = None) -> None:
            bar.update(task, completed=done, total=new_total if new_total is not None else total)

        yield update


def fail(message: str, hint: str | None = None) -> None:
    """One red line on stderr, then the hint; a traceback (never locals) only under --debug."""
    from rich.markup import escape

    if debug:
        err.print_exception(show_locals=False)
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    if hint:
        err.print(f"[dim]hint:[/dim] {escape(hint)}", highlight=False)
