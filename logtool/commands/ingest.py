"""`logtool ingest`: append log files to a store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import console
from ._common import (
    DataFieldOpt,
    EntityFieldOpt,
    EntityNameOpt,
    KeyFieldOpt,
    MetaFieldOpt,
    OpFieldOpt,
    PrevKeyFieldOpt,
    StoreArg,
    TsFieldOpt,
    TsUnitOpt,
    TypeFieldOpt,
    boundary,
    build_mapping,
)


def command(
    store: StoreArg,
    files: Annotated[
        list[str], typer.Argument(help="Log files, globs, .gz/.zst, or `-` for stdin.", metavar="FILE...")
    ],
    format: Annotated[
        str | None,
        typer.Option("--format", help="Input format (default: detected from content; see `logtool formats`)."),
    ] = None,
    key_field: KeyFieldOpt = None,
    entity_field: EntityFieldOpt = None,
    entity: EntityNameOpt = None,
    op_field: OpFieldOpt = None,
    type_field: TypeFieldOpt = None,
    ts_field: TsFieldOpt = None,
    ts_unit: TsUnitOpt = None,
    data_field: DataFieldOpt = None,
    meta_field: MetaFieldOpt = None,
    offset_field: Annotated[
        str | None, typer.Option("--offset-field", help="Take offsets from this field (e.g. a Kafka partition dump).")
    ] = None,
    prev_key_field: PrevKeyFieldOpt = None,
    on_error: Annotated[str, typer.Option("--on-error", help="On a bad record: fail, quarantine or skip.")] = "fail",
    allow_duplicates: Annotated[
        bool, typer.Option("--allow-duplicates", help="Ingest a file even if the store already holds its content.")
    ] = False,
    segment_rows: Annotated[
        int, typer.Option("--segment-rows", help="Events per segment file (default 262144).", min=1)
    ] = 262_144,
    max_line_bytes: Annotated[int, typer.Option("--max-line-bytes", help="Longest line accepted, in bytes, without its line break (CSV: longest field).", min=1)] = 64 << 20,
) -> None:
    """Append log files to STORE (created if absent), one atomic commit per file.

    Example:

        logtool ingest shop.store sample_logs/shop_cdc.jsonl --key-field id --entity-field table --op-field op --ts-field ts --data-field data --meta-field actor

        zcat dump.jsonl.gz | logtool ingest shop.store - --format debezium
    """
    import logtool

    mapping = build_mapping(
        key_field, entity_field, op_field, type_field, ts_field, ts_unit, data_field, meta_field, prev_key_field,
        entity=entity, offset_field=offset_field, max_line_bytes=max_line_bytes,
    )  # fmt: skip
    with console.progress("ingest") as update:
        result = logtool.ingest(
            store, files, format=format, mapping=mapping, on_error=on_error,
            allow_duplicates=allow_duplicates, segment_rows=segment_rows,
            progress=lambda _f, done, total: update(done, total), on_file=_said,
        )  # fmt: skip
    for note in result.warnings:
        console.warn(note)
    console.status(
        f"total: {result.ingested} ingested, {result.quarantined} quarantined, {result.skipped} skipped"
    )


def _said(f: Any) -> None:  # an ingest.FileResult
    """A file's outcome, said as soon as it is done (a later file's failure leaves it standing)."""
    if f.duplicate:
        if f.earlier_mapping:
            console.warn(
                f"{f.file}: already in the store (commit {f.commit}), ingested with {f.earlier_mapping}; not ingested "
                "again: to ingest it with this mapping, ingest into a new store (--allow-duplicates would keep both)"
            )
        else:
            console.warn(f"{f.file}: already in the store (commit {f.commit}); not ingested again (--allow-duplicates to force)")
        return
    where = f"offsets {f.first_offset}..{f.last_offset}" if f.first_offset is not None else "no events"
    console.status(
        f"{f.file} ({f.format}): {f.ingested} ingested, {f.quarantined} quarantined, "
        f"{f.skipped} skipped; {where}; commit {f.commit}"
    )
    for bad in f.errors:
        console.status(f"  {bad.file}:{bad.line}: {bad.reason}")
    more = f.quarantined + f.skipped - len(f.errors)
    if more > 0:
        console.status(f"  ... and {more} more" + (" (the store's quarantine/ holds every one)" if f.quarantined else ""))


def register(app: typer.Typer) -> None:
    app.command("ingest")(boundary(command))
