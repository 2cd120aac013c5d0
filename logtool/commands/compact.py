"""`logtool compact`: Kafka-semantics compaction of a store or a raw log file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import console
from ..errors import counted
from ._common import (
    DataFieldOpt,
    EntityFieldOpt,
    EntityNameOpt,
    FormatOpt,
    InputFormatOpt,
    KeyFieldOpt,
    MetaFieldOpt,
    OpFieldOpt,
    OutputFormat,
    PrevKeyFieldOpt,
    TsFieldOpt,
    TsUnitOpt,
    TypeFieldOpt,
    boundary,
    build_mapping,
    confirm,
    refuse_raw_only,
    render,
    render_object,
    resolve,
)


def command(
    target: Annotated[
        str, typer.Argument(help="A store directory, or a JSON-lines/CSV log file.", metavar="STORE|FILE")
    ],
    tombstone_retention: Annotated[
        str, typer.Option("--tombstone-retention", help="Keep tombstones this long after their time (ms, s, m, h, d).")
    ] = "1d",
    min_lag: Annotated[
        str | None, typer.Option("--min-lag", help="Never compact records younger than this, nor anything after them.")
    ] = None,
    until_offset: Annotated[
        int | None, typer.Option("--until-offset", help="Never compact records at or after this offset.")
    ] = None,
    now: Annotated[
        str | None,
        typer.Option("--now", help="The instant retention is measured against (ISO-8601; default: the clock)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed and why; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Raw-file mode: where to write the compacted log (`-` for stdout; a .gz or .zst name is compressed so)."),
    ] = None,
    input_format: InputFormatOpt = None,
    key_field: KeyFieldOpt = None,
    entity_field: EntityFieldOpt = None,
    entity: EntityNameOpt = None,
    op_field: OpFieldOpt = None,
    type_field: TypeFieldOpt = None,
    ts_field: TsFieldOpt = None,
    ts_unit: TsUnitOpt = None,
    data_field: DataFieldOpt = None,
    meta_field: MetaFieldOpt = None,
    prev_key_field: PrevKeyFieldOpt = None,
    format: FormatOpt = None,
) -> None:
    """Keep the latest record per key (Kafka's log cleaner); tombstones expire after a retention.

    A store is rewritten in one commit (only the segments that change); offsets never move. A raw
    JSON-lines or CSV file is compacted into -o, streaming, surviving lines byte for byte; its
    records are numbered from 0 (for --until-offset), and a record that cannot be read is kept.

    Examples:

        logtool compact shop.store --tombstone-retention 1d --min-lag 1h --dry-run

        logtool compact shop.store --now 2026-03-02T00:00:00Z --yes

        logtool compact events.jsonl -o compacted.jsonl --key-field id --op-field op --ts-field ts --data-field data

        logtool compact events.jsonl --dry-run --key-field id --op-field op --ts-field ts --min-lag 1h
    """
    import logtool

    if Path(target).is_file() or target == "-" or (output and not Path(target).is_dir()):
        mapping = build_mapping(key_field, entity_field, op_field, type_field=type_field, ts_field=ts_field,
                                ts_unit=ts_unit, data_field=data_field, meta_field=meta_field,
                                prev_key_field=prev_key_field, entity=entity)  # fmt: skip
        options = {"mapping": mapping, "tombstone_retention": tombstone_retention, "min_lag": min_lag,
                   "until_offset": until_offset, "now": now}  # fmt: skip
        _compact_raw_file(target, output, input_format, format, dry_run, options)
        return
    raw_only = {"-o": output, "--input-format": input_format, "--key-field": key_field, "--entity-field": entity_field, "--entity": entity,
                "--op-field": op_field, "--type-field": type_field, "--ts-field": ts_field, "--ts-unit": ts_unit, "--data-field": data_field,
                "--meta-field": meta_field, "--prev-key-field": prev_key_field}  # fmt: skip
    refuse_raw_only(target, raw_only, "a store is compacted in place; its events were mapped when they were ingested")
    if not dry_run and not yes:
        preview = logtool.compact(target, tombstone_retention=tombstone_retention, min_lag=min_lag,
                                  until_offset=until_offset, now=now, dry_run=True)  # fmt: skip
        removed = sum(preview.removed.values())
        if removed == 0 and preview.folded == 0:
            console.status("nothing to compact")
            return
        _warn_keyless(preview)
        confirm(f"compact {target}: remove {removed} of {counted(preview.events_before, 'event')}?", yes, f"logtool compact {target}")
    with console.progress("compact", unit="steps") as update:
        result = logtool.compact(target, tombstone_retention=tombstone_retention, min_lag=min_lag,
                                 until_offset=until_offset, now=now, dry_run=dry_run, progress=update)  # fmt: skip
    if dry_run or yes:
        _warn_keyless(result)
    if resolve(format) is OutputFormat.table:
        render_object(result.summary(), format)
        if dry_run and result.examples:
            import pyarrow as pa

            console.status("first events that would be removed:")
            render(pa.Table.from_pylist(result.examples), format)
        if dry_run and result.tombstones:
            import pyarrow as pa

            console.status("tombstones kept, with their expiry:")
            render(pa.Table.from_pylist(result.tombstones), format)
    elif resolve(format) is OutputFormat.json:
        # one document: the summary, the first removed events, the tombstones kept
        extra = {"removed_examples": result.examples, "tombstones": result.tombstones} if dry_run else {}
        render_object({**result.summary(), **extra}, format)
    else:
        # a stream: the summary (with the tombstones kept), then one line per removed event
        render_object({**result.summary(), **({"tombstones": result.tombstones} if dry_run else {})}, format)
        if dry_run and result.examples:
            import pyarrow as pa

            render(pa.Table.from_pylist(result.examples), format)
    saved = result.bytes_before - result.bytes_after
    verb = "would remove" if dry_run else "removed"
    console.status(
        f"{verb} {counted(sum(result.removed.values()), 'event')} ({', '.join(f'{k}: {v}' for k, v in result.removed.items()) or 'none'}); "
        f"{counted(result.tombstones_kept, 'tombstone')} kept; {counted(saved, 'byte')} {'would be ' if dry_run else ''}saved"
    )
    if result.leftovers_removed:
        console.status(f"files no commit names {'would be ' if dry_run else ''}deleted: {', '.join(result.leftovers_removed)}")


def _compact_raw_file(target: str, output: str | None, input_format: str | None, format: OutputFormat | None,
                      dry_run: bool, options: dict[str, Any]) -> None:  # fmt: skip
    import logtool
    from logtool.errors import UsageError

    if not output and not dry_run:
        raise UsageError("compacting a raw file needs -o OUTPUT", "or --dry-run to see what would go, or ingest it into a store first")
    if dry_run:
        with console.progress("compact") as update:
            result = logtool.compact_file(target, None, format=input_format, dry_run=True, progress=update, **options)
    else:
        from logtool.formats.writers import output_file

        assert output is not None
        if output != "-" and Path(output).resolve() == Path(target).resolve():
            raise UsageError("the output would overwrite the input", "write to another file, then move it")
        with output_file(output) as out, console.progress("compact") as update:
            result = logtool.compact_file(target, out, format=input_format, progress=update, **options)
    if result["unreadable_kept"]:
        console.warn(
            f"{counted(result['unreadable_kept'], 'record')} could not be read and "
            f"{'is kept as it is' if result['unreadable_kept'] == 1 else 'are kept as they are'} "
            f"(first: {result['first_unreadable']})"
        )
    for entity, n in result["keyless_entities"].items():
        went = "would be dropped" if dry_run else "are dropped"
        whole = f"all {n} of its records {went}" if n != 1 else f"its one record {went.replace('are ', 'is ')}"
        console.warn(f"entity {entity!r} has no key: {whole}; if they matter, pass --key-field")
    examples = result.pop("examples")
    tombstones = result.pop("tombstones")
    if dry_run:
        if resolve(format) is OutputFormat.json:
            render_object({**result, "removed_examples": examples, "tombstones": tombstones}, format)
        elif resolve(format) is OutputFormat.table:
            import pyarrow as pa

            render_object(result, format)
            for title, rows in (("first records that would be removed:", examples),
                                ("tombstones kept, with their expiry:", tombstones)):  # fmt: skip
                if rows:
                    console.status(title)
                    render(pa.Table.from_pylist(rows), format)
        else:
            import pyarrow as pa

            render_object({**result, "tombstones": tombstones}, format)
            if examples:
                render(pa.Table.from_pylist(examples), format)
    verb = "would remove" if dry_run else "removed"
    reasons = ", ".join(f"{k[len('removed_'):].replace('_', ' ')}: {v}" for k, v in result.items()
                        if k.startswith("removed_") and v)  # fmt: skip
    unread = result["unreadable_kept"]  # kept as they are, and in neither count of the records read
    console.status(
        f"{target}: {result['records_kept'] + unread} of {counted(result['records_in'] + unread, 'record')} kept"
        f"{f' ({unread} of them could not be read)' if unread else ''}; "
        f"{verb} {result['records_removed']} ({reasons or 'none'}); {counted(result['tombstones_kept'], 'tombstone')} kept; "
        f"{counted(result['bytes_saved'], 'byte')} {'would be ' if dry_run else ''}saved"
    )


def register(app: typer.Typer) -> None:
    app.command("compact")(boundary(command))


def _warn_keyless(result: Any) -> None:  # a logtool.compact.CompactResult
    """An entity without any key loses all its rows to compaction (Kafka drops keyless records):
    said on stderr, in case its key was simply not mapped."""
    went = "would be dropped" if result.dry_run else "are dropped"
    for entity, n in result.keyless_entities.items():
        console.warn(
            f"entity {entity!r} has no key: "
            f"{f'all {n} of its events {went}' if n != 1 else 'its one event ' + went.replace('are ', 'is ')}, "
            "as compaction keeps no keyless record; "
            "if its rows matter, ingest it with --key-field where it has a key, and do not compact a log of a "
            "table that has none"
        )
    for entity, n in result.keyless_snapshot_rows.items():
        console.warn(
            f"entity {entity!r}: the {counted(n, 'keyless row')} the snapshot of a head drop holds {went if n != 1 else went.replace('are ', 'is ')}, as compaction "
            "keeps no keyless record"
        )
