"""`logtool ingest`: append log files to a store."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import console
from ._common import StoreArg, boundary


def command(
    store: StoreArg,
    files: Annotated[
        list[str], typer.Argument(help="Log files, globs, .gz/.zst, or `-` for stdin.", metavar="FILE...")
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", help="Input format (default: detected from content; see `logtool formats`)."),
    ] = None,
    key_field: Annotated[
        list[str] | None,
        typer.Option("--key-field", help="Key field; repeat for a composite key; `ENTITY:FIELD` for one entity."),
    ] = None,
    entity_field: Annotated[
        str | None, typer.Option("--entity-field", help="Field naming the entity (table, stream).")
    ] = None,
    entity: Annotated[
        str | None, typer.Option("--entity", help="Entity name for every record (default: the file name).")
    ] = None,
    op_field: Annotated[
        str | None, typer.Option("--op-field", help="Field holding the op (insert, update, patch, delete, c/u/d...).")
    ] = None,
    type_field: Annotated[
        str | None, typer.Option("--type-field", help="Field holding a domain event's type (event-sourced logs).")
    ] = None,
    ts_field: Annotated[
        str | None, typer.Option("--ts-field", help="Field holding the event time (ISO-8601 or epoch number).")
    ] = None,
    ts_unit: Annotated[
        str | None, typer.Option("--ts-unit", help="Unit of epoch numbers: s, ms, us or ns (default s).")
    ] = None,
    data_field: Annotated[
        str | None,
        typer.Option(
            "--data-field",
            help="Field holding the payload (default: the record minus mapped fields; null = tombstone).",
        ),
    ] = None,
    meta_field: Annotated[
        list[str] | None,
        typer.Option("--meta-field", help="Field kept as metadata (actor, causation id...); repeatable."),
    ] = None,
    offset_field: Annotated[
        str | None, typer.Option("--offset-field", help="Take offsets from this field (e.g. a Kafka partition dump).")
    ] = None,
    prev_key_field: Annotated[str | None, typer.Option("--prev-key-field", help="Field holding the key before this event, where the event changed the key.")] = None,
    on_error: Annotated[str, typer.Option("--on-error", help="On a bad record: fail, quarantine or skip.")] = "fail",
    allow_duplicates: Annotated[
        bool, typer.Option("--allow-duplicates", help="Ingest a file even if the store already holds its content.")
    ] = False,
    segment_rows: Annotated[int, typer.Option("--segment-rows", help="Events per segment file (default 262144).", min=1)] = 262_144,
    max_line_bytes: Annotated[int, typer.Option("--max-line-bytes", help="Longest line accepted.", min=1)] = 64 << 20,
) -> None:
    """Append log files to STORE (created if absent), one atomic commit per file.

    Example:

        logtool ingest shop.store sample_logs/shop_cdc.jsonl --key-field id --entity-field table --op-field op --ts-field ts --data-field data --meta-field actor

        zcat dump.jsonl.gz | logtool ingest shop.store - --format debezium
    """
    import logtool
    from logtool.formats.base import TS_UNITS, Mapping

    from ..errors import UsageError

    if ts_unit is not None and ts_unit not in TS_UNITS:
        raise UsageError(f"--ts-unit must be one of {', '.join(TS_UNITS)}, not {ts_unit!r}")
    mapping = Mapping(
        key_fields=tuple(key_field or ()), entity_field=entity_field, entity=entity, op_field=op_field,
        type_field=type_field, ts_field=ts_field, ts_unit=ts_unit, data_field=data_field,
        meta_fields=tuple(meta_field or ()), offset_field=offset_field, prev_key_field=prev_key_field, max_line_bytes=max_line_bytes,
    )  # fmt: skip
    with console.progress("ingest") as update:
        result = logtool.ingest(
            store, files, format=format, mapping=mapping, on_error=on_error,
            allow_duplicates=allow_duplicates, segment_rows=segment_rows,
            progress=lambda _f, done, total: update(done, total),
        )  # fmt: skip
    for f in result.files:
        if f.duplicate:
            console.warn(
                f"{f.file}: already in the store (commit {f.commit}); not ingested again (--allow-duplicates to force)"
            )
            continue
        where = f"offsets {f.first_offset}..{f.last_offset}" if f.first_offset is not None else "no events"
        console.status(
            f"{f.file} [dim]({f.format})[/dim]: {f.ingested} ingested, {f.quarantined} quarantined, "
            f"{f.skipped} skipped; {where}; commit {f.commit}"
        )
        for bad in f.errors:
            console.status(f"  [yellow]{bad.file}:{bad.line}[/yellow]: {bad.reason}")
    console.status(
        f"[bold]total[/bold]: {result.ingested} ingested, {result.quarantined} quarantined, {result.skipped} skipped"
    )


def register(app: typer.Typer) -> None:
    app.command("ingest")(boundary(command))
