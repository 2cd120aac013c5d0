"""The typer root app: global options, the command registry, and the one error boundary."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import console
from .errors import EXIT_TROUBLE

app = typer.Typer(
    name="logtool",
    help="Ingest, replay, audit, diff, compact and purge event logs.\n\nRun `logtool demo` for a tour.",
    rich_markup_mode="markdown",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or status lines on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors (without local values).")] = False,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. `2GB` (default 2GB).")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="DuckDB threads (default: all cores).")] = None,
    temp_dir: Annotated[
        str | None, typer.Option("--temp-dir", help="Where DuckDB spills when memory is short.")
    ] = None,
) -> None:
    """Global options, before the command: `logtool -q --memory-limit 1GB ingest ...`."""
    from . import engine

    console.quiet = quiet
    console.debug = debug
    engine.configure(memory_limit=memory_limit, threads=threads, temp_dir=temp_dir)


def _register_commands() -> None:
    """Every module in commands/ with a ``register(app)`` adds its sub-commands."""
    import importlib
    import pkgutil

    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(app)


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """The console script. Each command's errors are mapped by `commands._common.boundary`."""
    try:
        app(args=argv, prog_name="logtool", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_TROUBLE)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
