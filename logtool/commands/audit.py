"""`logtool history`, `blame`, `why` and `stats`: who changed a key, what, why, and what the log holds."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import console
from ..errors import counted
from ._common import FormatOpt, OutputFormat, StoreArg, boundary, render, render_object, resolve
from .replay import AtOffset, AtPosition, AtTime, Reducer

if TYPE_CHECKING:
    from ..audit import Stats, WhyResult

KeyArg = Annotated[
    str, typer.Argument(help="The key, as stored: a single value as text, a composite key as its JSON.", metavar="KEY")
]
EntityOpt = Annotated[str | None, typer.Option("--entity", help="The entity (table, stream) the key belongs to.")]
JSON_COLUMNS = ("changes", "before", "after", "value", "data")


class Bucket(StrEnum):
    minute = "minute"
    hour = "hour"
    day = "day"


def history(
    store: StoreArg,
    key: KeyArg,
    entity: EntityOpt = None,
    field: Annotated[
        str | None,
        typer.Option("--field", help="Only the events that changed this field (`address.city` reaches inside)."),
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only events at or after this time (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only events at or before this time (ISO-8601).")] = None,
    reducer: Reducer = None,
    format: FormatOpt = None,
) -> None:
    """Every event that touched KEY, in order, with what it changed: `field: before -> after`.

    Each event shows its offset, time, op (and event type), actor and source position. A key that
    changed identity shows the history of its earlier keys too. As a table or CSV, one row per
    changed field; as JSON, one object per event with its `changes`.

    Examples:

        logtool history shop.store 42 --entity public.customers

        logtool history shop.store 42 --field balance --since 2026-03-01T14:00:00Z --format json
    """
    import logtool
    from logtool.audit import history_by_field

    table = logtool.history(store, key, entity=entity, field=field, since=since, until=until, reducer=reducer)
    fmt = resolve(format)
    console.status(counted(table.num_rows, "event"))
    if note := (table.schema.metadata or {}).get(b"logtool.note"):
        console.status(f"note: {note.decode()}")
    _caveats(store, table.column("offset").to_pylist(), field)
    if fmt in (OutputFormat.table, OutputFormat.csv):
        table = history_by_field(table)
    if fmt is OutputFormat.table:
        title = f"history of {_one(table, 'entity')} {key}".replace("None ", "")
        table = _for_people(table, empty=("prev_key", "type"), constant=("entity", "key"))
        render(table, fmt, title=title, json_columns=JSON_COLUMNS)
        return
    render(table, fmt, json_columns=JSON_COLUMNS)


def _caveats(store: str, offsets: list[int], field: str | None = None) -> None:
    """Say on stderr what compaction, purge or redaction left the audit unable to know."""
    from logtool.audit import caveats

    for note in caveats(store, offsets, field):
        console.status(f"note: {note}")


def _one(table: Any, name: str) -> str | None:
    """The column's value when every row has the same one."""
    values = set(table.column(name).to_pylist())
    return str(values.pop()) if len(values) == 1 else None


def _for_people(
    table: Any, *, empty: tuple[str, ...] = (), constant: tuple[str, ...] = (), drop: tuple[str, ...] = ()
) -> Any:
    """A table narrowed for a terminal: without the columns of ``empty`` that hold only nulls, of
    ``constant`` that hold one value (the title names it), and of ``drop``."""
    gone = [n for n in empty if table.column(n).null_count == table.num_rows]
    gone += [n for n in constant if table.num_rows and _one(table, n) is not None]
    return table.drop_columns([*gone, *drop])


def blame(
    store: StoreArg,
    key: KeyArg,
    entity: EntityOpt = None,
    at_offset: AtOffset = None,
    at_time: AtTime = None,
    at_position: AtPosition = None,
    reducer: Reducer = None,
    format: FormatOpt = None,
) -> None:
    """Each field of KEY's state (at the head, or at an offset, a time or a source position) with
    the event that last changed it: offset, time, actor, op.

    Examples:

        logtool blame shop.store 42

        logtool blame shop.store 42 --at-time 2026-03-01T14:03:10Z --format csv
    """
    import logtool

    table = logtool.blame(
        store, key, entity=entity, at_offset=at_offset, at_time=at_time, at_position=at_position, reducer=reducer
    )
    if note := (table.schema.metadata or {}).get(b"logtool.note"):
        console.warn(note.decode())
    _caveats(store, table.column("offset").to_pylist())
    fmt = resolve(format)
    if fmt is OutputFormat.table:
        title = f"blame of {_one(table, 'entity')} {key}"
        table = _for_people(table, empty=("type",), constant=("entity", "key"))
        render(table, fmt, title=title, json_columns=JSON_COLUMNS)
        return
    render(table, fmt, json_columns=JSON_COLUMNS)


def why(
    store: StoreArg,
    key: KeyArg,
    field: Annotated[str, typer.Argument(help="The field (`address.city` reaches inside).", metavar="FIELD")],
    value: Annotated[
        str | None,
        typer.Option("--value", help="The latest event that set FIELD to this JSON value (`-300` matches `-300.00`)."),
    ] = None,
    entity: EntityOpt = None,
    reducer: Reducer = None,
    format: FormatOpt = None,
) -> None:
    """The event that gave FIELD of KEY its current value (or, with --value, the latest event
    that set it to that value), and the events behind it: its causation chain to the root and the
    events sharing its correlation id, across entities; where the log has no such ids, the events
    of the same transaction.

    Examples:

        logtool why shop.store 42 balance --value -300

        logtool why bank.store acc-1003 balance --reducer sample_logs/bank_reducers.py
    """
    import logtool
    from logtool.audit import parse_value

    kwargs: dict[str, Any] = {} if value is None else {"value": parse_value(value)}
    result = logtool.why(store, key, field, entity=entity, reducer=reducer, **kwargs)
    if result.note:
        console.status(f"note: {result.note}")
    _caveats(store, [result.event["offset"]], field)
    fmt = resolve(format)
    if fmt is OutputFormat.json:
        render_object(result.to_dict(), fmt)
        return
    if fmt is OutputFormat.table:
        _why_header(result)
        table = _for_people(
            result.table(), empty=("type", "event_id", "causation_id", "correlation_id", "txid"), drop=("position",)
        )
        # an event a block of lines, not a row of a dozen columns: readable on a terminal of 80
        console.out.print("the event and the events behind it")
        for row in table.to_pylist():
            relation, depth = row.pop("relation"), row.pop("depth")
            console.out.print(f"\n{relation}" + ("" if depth is None else f" (depth {depth})"))
            render_object(row, fmt)
        return
    render(result.table(), fmt, json_columns=JSON_COLUMNS)


def _why_header(result: WhyResult) -> None:
    from logtool.formats.base import dumps_exact

    ev = result.event
    render_object(
        {
            "key": f"{result.entity} {result.key}", "field": result.field, "value": dumps_exact(result.value),
            "set by": f"offset {ev['offset']} ({ev['op']}{' ' + ev['type'] if ev['type'] else ''}) at {ev['ts']:%Y-%m-%dT%H:%M:%S.%fZ}",
            "actor": ev["actor"], "position": ev["position"],
            "caused by": f"{counted(len(result.chain), 'event')} to the root",
            "correlation id": ev["correlation_id"], "correlated": f"{counted(len(result.correlated), 'other event')}",
        },
        OutputFormat.table,
    )  # fmt: skip


def stats(
    store: StoreArg,
    entity: EntityOpt = None,
    by: Annotated[Bucket, typer.Option("--by", help="Time bucket of the timeline.")] = Bucket.hour,
    top: Annotated[int, typer.Option("--top", help="How many of the busiest keys to list.", min=0)] = 10,
    format: FormatOpt = None,
) -> None:
    """Counts by entity, op and event type; events over time (a histogram on a terminal); the
    busiest keys; time range; ingest sources; quarantined records.

    As JSON, one object; as JSON lines or CSV, every table's rows with a `section` column.

    Examples:

        logtool stats shop.store --by minute

        logtool stats shop.store --entity public.orders --format json
    """
    import logtool

    result = logtool.stats(store, entity=entity, by=by.value, top=top)
    fmt = resolve(format)
    if fmt is OutputFormat.json:
        render_object(result.to_dict(), fmt)
    elif fmt is OutputFormat.table:
        _stats_tables(result)
    else:
        render(result.rows(), fmt)


def _stats_tables(result: Stats) -> None:
    render_object({k: v for k, v in result.summary.items() if v is not None}, OutputFormat.table)
    for name, table in result.tables.items():
        if name == "timeline":
            _histogram(table, result.summary["by"])
        elif table.num_rows:
            render(table, OutputFormat.table, title=name.replace("_", " "))


def _histogram(table: Any, by: str) -> None:
    """Events per bucket as horizontal bars scaled to the widest."""
    from rich.table import Table

    counts = table.column("events").to_pylist()
    if not counts:
        return
    labels = {"minute": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}[by]
    width = max(10, console.out.width - 32)
    top = max(counts) or 1
    out = Table(title=f"events per {by}", title_justify="left", box=None, show_header=False)
    out.add_column(style="dim")
    out.add_column(justify="right")
    out.add_column(style="cyan")
    for bucket, n in zip(table.column("bucket").to_pylist(), counts, strict=True):
        cells = n * width / top
        bar = "█" * int(cells) + ("▌" if cells - int(cells) >= 0.5 else "")
        out.add_row(f"{bucket:{labels}}", str(n), bar)
    console.out.print(out)


def register(app: typer.Typer) -> None:
    app.command("history")(boundary(history))
    app.command("blame")(boundary(blame))
    app.command("why")(boundary(why))
    app.command("stats")(boundary(stats))
