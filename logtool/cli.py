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


def _version(value: bool) -> None:
    if value:
        from . import __version__

        print(f"logtool {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or status lines on stderr.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show a traceback on errors (without local values).")] = False,
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. `2GB` (default 2GB).")
    ] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="DuckDB threads (default: all cores).")] = None,
    temp_dir: Annotated[
        str | None, typer.Option("--temp-dir", help="Where DuckDB spills when memory is short.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", help="Print logtool's version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Global options, before or after the command: `logtool -q --memory-limit 1GB ingest ...`."""
    from . import engine

    console.quiet = quiet
    console.debug = debug
    from .errors import LogtoolError

    try:
        engine.configure(memory_limit=memory_limit, threads=threads, temp_dir=temp_dir)
    except LogtoolError as e:
        console.fail(e.message, e.hint)
        raise typer.Exit(e.exit_code) from None


def _register_commands() -> None:
    """Every module in commands/ with a ``register(app)`` adds its sub-commands."""
    import importlib
    import pkgutil

    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{commands.__name__}.{info.name}").register(app)


_register_commands()


# The root's options: a flag, or an option that takes a value
_GLOBAL_FLAGS = {"-q", "--quiet", "--debug", "--version"}
_GLOBAL_VALUED = {"--memory-limit", "--threads", "--temp-dir"}


def global_options_first(args: list[str]) -> list[str]:
    """The arguments with the root's options moved before the command, so they may also follow
    it (`logtool replay STORE -q`), as people write them; everything after `--` stays."""
    moved: list[str] = []
    kept: list[str] = []
    command_seen = False
    command_at = len(args)  # where the command is in ``kept``: what moves goes just before it
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            kept += args[i:]
            break
        name = arg.split("=", 1)[0]
        if command_seen and (arg in _GLOBAL_FLAGS or name in _GLOBAL_VALUED):
            takes_value = arg in _GLOBAL_VALUED and i + 1 < len(args)
            moved += args[i : i + 2] if takes_value else [arg]
            i += 2 if takes_value else 1
            continue
        if not command_seen and not arg.startswith("-") and not (kept and kept[-1] in _GLOBAL_VALUED):
            command_seen, command_at = True, len(kept)
        kept.append(arg)
        i += 1
    return kept[:command_at] + moved + kept[command_at:]


def main(argv: list[str] | None = None) -> int:
    """The console script. Each command's errors are mapped by `commands._common.boundary`."""
    import contextlib
    import signal

    from .errors import on_sigterm

    # a `kill` unwinds the command as Ctrl-C does: a temporary output or uncommitted files are deleted
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        args = global_options_first(sys.argv[1:] if argv is None else argv)
        # no command: the help is a message for a person (stderr), and the exit says usage error
        with contextlib.redirect_stdout(sys.stderr) if not args else contextlib.nullcontext():
            app(args=args, prog_name="logtool", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_TROUBLE)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
