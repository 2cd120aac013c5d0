"""What every command shares: the store argument, the --format option, and rendering results."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import console
from ..schema import OUTPUT_JSON_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

    from ..formats.base import Mapping


_verdict = 0  # what diff or verify found, set before their output is written (see `verdict`)


def verdict(code: int) -> None:
    """Record what a command found (diff, verify: 1 different) before its output is written: a
    reader that stops early (`| head`) must not turn the verdict into success."""
    global _verdict
    _verdict = code


def boundary(fn: Callable[..., None]) -> Callable[..., None]:
    """The one place errors become exit codes: a LogtoolError is one line, a hint and its code;
    anything unexpected is trouble (2), never diff's and verify's "different" (1)."""
    from ..errors import EXIT_TROUBLE, LogtoolError, interrupted

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        verdict(0)
        try:
            fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except LogtoolError as e:
            console.fail(e.message, e.hint)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            _stopped()
        except BrokenPipeError:  # the reader stopped early: what was found still sets the exit code
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            raise typer.Exit(_verdict) from None
        except Exception as e:
            if interrupted(e):
                _stopped()
            from ..errors import engine_trouble
            from ..store import damaged_store

            # DuckDB's memory limit, the disk, or a writer that met damage
            if (damage := engine_trouble(e) or damaged_store(e)) is not None:
                console.fail(damage.message, damage.hint)
                raise typer.Exit(EXIT_TROUBLE) from None
            detail = str(e).strip().splitlines()[0] if str(e).strip() else ""
            console.fail(
                f"internal error: {type(e).__name__}: {detail}", "rerun with --debug for a traceback, and report it"
            )
            raise typer.Exit(EXIT_TROUBLE) from None

    return wrapper


def _stopped() -> None:
    """Ctrl-C (130) or SIGTERM (143): said, and the exit status of the signal."""
    from .. import errors

    console.fail("terminated" if errors.terminated else "interrupted")
    raise typer.Exit(143 if errors.terminated else 130) from None


# The field mapping, shared by every command that reads raw logs (ingest; compact, purge and
# redact in raw-file mode), and the input format of the raw-file modes.
KeyFieldOpt = Annotated[
    list[str] | None,
    typer.Option("--key-field", help="Key field; repeat for a composite key; `ENTITY:FIELD` for one entity."),
]
EntityFieldOpt = Annotated[str | None, typer.Option("--entity-field", help="Field naming the entity (table, stream).")]
EntityNameOpt = Annotated[
    str | None, typer.Option("--entity", help="Entity name for every record (default: the file name).")
]
OpFieldOpt = Annotated[
    str | None, typer.Option("--op-field", help="Field holding the op (insert, update, patch, delete, c/u/d...).")
]
TypeFieldOpt = Annotated[str | None, typer.Option("--type-field", help="Field holding a domain event's type.")]
TsFieldOpt = Annotated[
    str | None, typer.Option("--ts-field", help="Field holding the event time (ISO-8601 or epoch number).")
]
TsUnitOpt = Annotated[str | None, typer.Option("--ts-unit", help="Unit of epoch numbers: s, ms, us or ns (default s).")]
DataFieldOpt = Annotated[
    str | None,
    typer.Option(
        "--data-field", help="Field holding the payload (default: the record minus mapped fields; null = tombstone)."
    ),
]
MetaFieldOpt = Annotated[
    list[str] | None, typer.Option("--meta-field", help="Field kept as metadata (actor, causation id...); repeatable.")
]
PrevKeyFieldOpt = Annotated[
    str | None, typer.Option("--prev-key-field", help="Field holding the key before this event, where it changed.")
]
InputFormatOpt = Annotated[
    str | None, typer.Option("--input-format", help="Raw-file mode: jsonl or csv (default: detected).")
]


def build_mapping(
    key_field: list[str] | None = None,
    entity_field: str | None = None,
    op_field: str | None = None,
    type_field: str | None = None,
    ts_field: str | None = None,
    ts_unit: str | None = None,
    data_field: str | None = None,
    meta_field: list[str] | None = None,
    prev_key_field: str | None = None,
    **more: Any,
) -> Mapping:
    """The field mapping the options describe (``more``: other Mapping fields, e.g. entity)."""
    from ..errors import UsageError
    from ..formats.base import TS_UNITS, Mapping

    if ts_unit is not None and ts_unit not in TS_UNITS:
        raise UsageError(f"--ts-unit must be one of {', '.join(TS_UNITS)}, not {ts_unit!r}")
    return Mapping(
        key_fields=tuple(key_field or ()), entity_field=entity_field, op_field=op_field, type_field=type_field,
        ts_field=ts_field, ts_unit=ts_unit, data_field=data_field, meta_fields=tuple(meta_field or ()),
        prev_key_field=prev_key_field, **more,
    )  # fmt: skip


class OutputFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


StoreArg = Annotated[str, typer.Argument(help="The store directory.", metavar="STORE")]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option("--format", "-f", help="Output format; default: table on a terminal, jsonl when piped."),
]


def resolve(fmt: OutputFormat | None) -> OutputFormat:
    """The output format: as asked, else a table for a terminal and JSON lines for a pipe."""
    if fmt is not None:
        return fmt
    return OutputFormat.table if console.out.is_terminal else OutputFormat.jsonl


def render(
    batches: pa.Table | Iterable[pa.RecordBatch | pa.Table],
    fmt: OutputFormat | None,
    *,
    title: str | None = None,
    json_columns: Iterable[str] = OUTPUT_JSON_COLUMNS,
) -> int:
    """Write rows to stdout in the chosen format, batch by batch; returns the row count."""
    import pyarrow as pa

    from ..formats.base import dumps_exact
    from ..formats.writers import rows, write_csv, write_jsonl

    fmt = resolve(fmt)
    parts = [batches] if isinstance(batches, pa.Table | pa.RecordBatch) else batches
    json_cols = list(json_columns)
    if fmt is OutputFormat.jsonl:
        return write_jsonl(parts, sys.stdout, json_cols)
    if fmt is OutputFormat.csv:
        return write_csv(parts, sys.stdout, json_cols)
    if fmt is OutputFormat.json:
        n = 0
        for part in parts:  # each part written once its text is whole: a failure leaves no half output
            texts = [dumps_exact(row) for row in rows(part, json_cols)]
            sys.stdout.write("".join(("," if n + i else "[") + "\n  " + text for i, text in enumerate(texts)))
            n += len(texts)
        sys.stdout.write("\n]\n" if n else "[]\n")
        return n
    from rich.table import Table

    table: Table | None = None
    n = 0
    for part in parts:
        if table is None:
            table = Table(title=title, show_lines=False, title_justify="left")
            for name in part.schema.names:
                table.add_column(name, overflow="fold")
        for row in rows(part, json_cols):
            table.add_row(*(_cell(v) for v in row.values()))
            n += 1
    if table is not None:
        console.out.print(table)
    return n


def _cell(value: Any) -> str:
    from rich.markup import escape

    if value is None:
        return "[dim]NULL[/dim]"
    if isinstance(value, dict | list):
        return escape(json.dumps(value, ensure_ascii=False))
    return escape(str(value))


def render_object(obj: dict[str, Any], fmt: OutputFormat | None) -> None:
    """One result object: JSON for programs, a header and one row for CSV (nested values as
    JSON), key/value lines for people."""
    from ..formats.base import dumps_exact
    from ..formats.writers import csv_field, plain

    fmt = resolve(fmt)
    if fmt is OutputFormat.csv:
        sys.stdout.write(",".join(csv_field(k) for k in obj) + "\n")
        sys.stdout.write(",".join(csv_field(plain(v)) for v in obj.values()) + "\n")
    elif fmt is OutputFormat.table:
        from rich.table import Table

        table = Table(show_header=False, box=None)
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for k, v in obj.items():
            table.add_row(k, _cell(plain(v)))
        console.out.print(table)
    else:
        sys.stdout.write(dumps_exact(plain(obj)) + "\n")


def interactive() -> bool:
    """Is a person at the keyboard (stdin a terminal)?"""
    return sys.stdin.isatty()


def confirm(question: str, yes: bool, look: str) -> None:
    """Ask before a destructive change: a prompt on a terminal (no: "Aborted!", exit 1, nothing
    changed); elsewhere refuse without --yes. ``look`` is the command to rerun with --dry-run."""
    from ..errors import UsageError

    if yes:
        return
    if not interactive():
        raise UsageError(
            "refusing to change the store without confirmation: stdin is not a terminal, so nobody can confirm",
            f"look first with `{look} --dry-run`, then pass --yes",
        )
    typer.confirm(question, default=False, abort=True, err=True)


def refuse_raw_only(target: str, options: dict[str, Any], hint: str, file_or_store: bool = False) -> None:
    """A store given where options for raw files were too: refused, never silently ignored (a
    purge with -o must not rewrite the store in place when a cleaned copy was asked for). A
    target that is not there is named as what it may be: a file (raw options given), or, where
    the command takes either, a file or a store."""
    from ..errors import UsageError

    given = [name for name, value in options.items() if value]
    if not Path(target).exists() and (given or file_or_store):
        what = "file" if given else "file or store"
        raise UsageError(f"{target}: no such {what}", "check the path: a raw log is named by its file, a store by its directory")
    if given:
        raise UsageError(f"{target} is a store: {', '.join(given)} {'is' if len(given) == 1 else 'are'} for raw files", hint)
