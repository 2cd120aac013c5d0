"""`logtool replay` and `logtool snapshot`: the state at any offset, time or source position."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .. import console
from ..errors import counted
from ._common import OutputFormat, StoreArg, boundary, render, resolve


class StateFormat(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


AtOffset = Annotated[int | None, typer.Option("--at-offset", help="State after this offset (inclusive).")]
AtTime = Annotated[str | None, typer.Option("--at-time", help="State at this instant (ISO-8601), by event time.")]
AtPosition = Annotated[
    str | None, typer.Option("--at-position", help="State at a source position, e.g. an LSN `0/1B4F678`.")
]
Reducer = Annotated[
    str | None, typer.Option("--reducer", help="Python reducer module (file or import name) for event-sourced logs.")
]


def command(
    store: StoreArg,
    at_offset: AtOffset = None,
    at_time: AtTime = None,
    at_position: AtPosition = None,
    entity: Annotated[str | None, typer.Option("--entity", help="Only this entity.")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Only this key (and the keys it had before).")] = None,
    reducer: Reducer = None,
    format: Annotated[
        StateFormat | None, typer.Option("--format", "-f", help="table, json, jsonl, csv, or parquet (needs -o).")
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="Directory for one file per entity (csv, parquet).")
    ] = None,
    no_snapshots: Annotated[
        bool, typer.Option("--no-snapshots", help="Replay from offset 0 even if a snapshot helps.")
    ] = False,
) -> None:
    """The state of STORE at the head, or at an offset, a time or a source position.

    The state digest is printed on stderr: it depends only on the log prefix and the reducer.

    Examples:

        logtool replay shop.store --at-time 2026-03-01T14:03:00Z --entity public.customers --key 42

        logtool replay shop.store --format parquet -o state/

        logtool replay bank.store --reducer sample_logs/bank_reducers.py --format jsonl
    """
    import logtool
    from logtool.errors import UsageError

    fmt = format.value if format else None
    if fmt == "parquet" and not output:
        raise UsageError("--format parquet writes files", "add -o DIR (one <entity>.parquet per entity)")
    if output and fmt not in (None, "parquet", "csv"):
        raise UsageError(f"-o writes files: --format {fmt} cannot go there", "use --format parquet or csv with -o")
    if output:
        from logtool.replay import check_export_dir

        check_export_dir(output)  # before the replay, which may be long
    with console.progress("replay", unit="") as update:
        result = logtool.replay(  # type: ignore[operator]  # the function, not the module of that name
            store, at_offset=at_offset, at_time=at_time, at_position=at_position, entity=entity, key=key,
            reducer=reducer, use_snapshots=not no_snapshots, progress=update,
        )  # fmt: skip
    for w in result.warnings:
        console.warn(w)
    target = ("time " + at_time if at_time is not None else "position " + at_position if at_position is not None
              else f"offset {at_offset}" if at_offset is not None else "the head")  # fmt: skip
    where = f"offset {result.offset}" if result.offset is not None else f"{target}, before any event"
    snap = f", from the snapshot at offset {result.snapshot}" if result.snapshot is not None else ""
    console.status(f"state at {where}: {result.state.num_rows} row{'' if result.state.num_rows == 1 else 's'}{snap}; digest {result.digest}")
    if output:
        from logtool.replay import export_state

        removed: list[Path] = []
        written = export_state(result, output, fmt or "parquet", whole=key is None, entity=entity, removed=removed)
        for path in removed:
            console.status(f"removed {path} (an earlier export's file of an entity with no rows left)")
        for path in written:
            console.status(f"wrote {path}")
        if not written:
            console.status("the state holds no rows: no file written")
        return
    out_fmt = resolve(OutputFormat(fmt) if fmt else None)
    if out_fmt is OutputFormat.json:
        import sys

        from logtool.formats.base import dumps_exact
        from logtool.replay import iter_state_rows

        doc = {**result.summary(), "warnings": result.warnings, "state": list(iter_state_rows(result.state))}
        sys.stdout.write(dumps_exact(doc) + "\n")
        return
    render(result.state, out_fmt, title=f"state at {where}")


def snapshot(
    store: StoreArg,
    at_offset: AtOffset = None,
    reducer: Reducer = None,
    every: Annotated[
        int | None,
        typer.Option(
            "--every", help="Also take a snapshot automatically after ingests, every N events (0: off).", min=0
        ),
    ] = None,
) -> None:
    """Store the state at an offset (default: the head) so later replays start from it.

    Examples:

        logtool snapshot shop.store --at-offset 120

        logtool snapshot shop.store --every 1000000
    """
    import logtool

    if every is not None:
        from logtool.replay import load_reducer, reducer_label, reducer_location

        # the reducer the automatic snapshots are taken with, where an ingest run from elsewhere finds it
        spec, where = reducer_location(reducer) if reducer else (None, None)
        if spec:
            load_reducer(spec, search=where)  # refused now, not at every later ingest
        logtool.configure_store(store, snapshot_every=every, snapshot_reducer=spec, snapshot_reducer_from=where)
        with_reducer = f" with reducer {reducer_label(spec, where)}" if spec else ""
        console.status(f"automatic snapshots: {'every ' + str(every) + ' events' + with_reducer if every else 'off'}")
        if at_offset is None:
            return
    with console.progress("snapshot", unit="") as update:
        entry = logtool.snapshot(store, at_offset=at_offset, reducer=reducer, progress=update)
    for w in entry.get("warnings", []):
        console.warn(w)
    already = "already there, none taken; " if entry.get("already") else ""
    console.status(f"snapshot at offset {entry['offset']}: {already}{counted(entry['rows'], 'row')}, digest {entry['digest']}")


def register(app: typer.Typer) -> None:
    app.command("replay")(boundary(command))
    app.command("snapshot")(boundary(snapshot))
