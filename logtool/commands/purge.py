"""`logtool purge` and `logtool redact`: administrative deletion, in a store or a raw log file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import console
from ..errors import counted
from ._common import (
    DataFieldOpt,
    EntityFieldOpt,
    FormatOpt,
    InputFormatOpt,
    KeyFieldOpt,
    MetaFieldOpt,
    OpFieldOpt,
    PrevKeyFieldOpt,
    TsFieldOpt,
    TsUnitOpt,
    TypeFieldOpt,
    boundary,
    build_mapping,
    confirm,
    refuse_raw_only,
    render_object,
)

if TYPE_CHECKING:
    from ..purge import FileResult, PurgeResult

TargetArg = Annotated[
    str,
    typer.Argument(
        help="The store directory, or a JSON-lines/CSV log file to copy without the data.", metavar="TARGET"
    ),
]
KeyOpt = Annotated[
    str | None, typer.Option("--key", help="The key; earlier keys of the same row (key changes) are included.")
]
EntityOpt = Annotated[str | None, typer.Option("--entity", help="Only this entity (table, stream).")]
WhereOpt = Annotated[
    str | None,
    typer.Option("--where", help="One boolean SQL expression over the `events` view (as in `logtool sql`)."),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Why, for the receipt (do not name the person).")]
RecordOpt = Annotated[
    bool,
    typer.Option(
        "--record-predicate", help="Write the --where text into the receipt (default: only its salted digest)."
    ),
]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Show what would change; change nothing.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed when stdin is not a terminal).")]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output", "-o",
        help="Raw-file mode: where to write the cleaned log (default `-`: stdout; a .gz or .zst name is compressed so).",
    ),
]


def purge_command(
    target: TargetArg,
    key: KeyOpt = None,
    entity: EntityOpt = None,
    where: WhereOpt = None,
    before_offset: Annotated[
        int | None, typer.Option("--before-offset", help="Drop every event below this offset (a snapshot is kept).")
    ] = None,
    before_time: Annotated[
        str | None,
        typer.Option("--before-time", help="Drop the head of the log up to the first event at or after this time."),
    ] = None,
    reason: ReasonOpt = None,
    record_predicate: RecordOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    format: FormatOpt = None,
    output: OutputOpt = None,
    input_format: InputFormatOpt = None,
    key_field: KeyFieldOpt = None,
    entity_field: EntityFieldOpt = None,
    op_field: OpFieldOpt = None,
    type_field: TypeFieldOpt = None,
    ts_field: TsFieldOpt = None,
    ts_unit: TsUnitOpt = None,
    data_field: DataFieldOpt = None,
    meta_field: MetaFieldOpt = None,
    prev_key_field: PrevKeyFieldOpt = None,
) -> None:
    """Remove events as if they had never been written, and leave a receipt in the commit log.

    Select by --key (with the row's earlier keys), --entity, --where (ANDed), or drop the head
    of the log with --before-offset / --before-time. Only segments holding matching events are
    rewritten, in one commit; snapshots and quarantined records that may hold the data go too.
    Without --yes a terminal is asked first; anything else is refused.

    Given a JSON-lines or CSV file instead of a store, writes a copy without the matching records
    (every other line byte for byte), reading it through the ingest field options.

    Example:

        logtool purge people.store --key 10033 --entity public.users --reason "erasure request #118" --dry-run

        logtool purge events.jsonl --where "data->>'email' = 'ann@example.org'" --key-field id -o clean.jsonl
    """
    from ..errors import UsageError
    from ..purge import purge, purge_file

    _not_stdin(target)
    if Path(target).is_file():
        if before_offset is not None or before_time is not None:
            raise UsageError("--before-offset/--before-time apply to a store, not a raw file")
        mapping = build_mapping(key_field, entity_field, op_field, type_field, ts_field, ts_unit, data_field, meta_field,
                           prev_key_field)  # fmt: skip
        sink: Any = _Discard() if dry_run else (output or "-")
        with console.progress("purge") as update:
            res = purge_file(target, sink, key=key, entity=entity, where=where, mapping=mapping, format=input_format,
                             progress=update)  # fmt: skip
        _file_report(res, dry_run, entity, key, mapping.key_fields)
        return

    _refuse_raw_options(target, output, input_format, key_field, entity_field, op_field, type_field, ts_field, ts_unit,
                        data_field, meta_field, prev_key_field)  # fmt: skip

    def call(dry: bool, progress: Callable[[int, int | None], None] | None = None) -> PurgeResult:
        return purge(
            target, key=key, entity=entity, where=where, before_offset=before_offset, before_time=before_time,
            reason=reason, record_predicate=record_predicate, dry_run=dry, progress=progress,
            on_proof=_say_proof("purge"),
        )  # fmt: skip

    _store_run(target, "purge", call, yes=yes, dry_run=dry_run, format=format)


def _refuse_raw_options(target: str, output: str | None, input_format: str | None, *fields: Any) -> None:
    names = ("--key-field", "--entity-field", "--op-field", "--type-field", "--ts-field", "--ts-unit", "--data-field",
             "--meta-field", "--prev-key-field")  # fmt: skip
    refuse_raw_only(target, {"-o": output, "--input-format": input_format, **dict(zip(names, fields, strict=True))},
                    "a store is changed in place (its events were mapped when they were ingested); "
                    "for a cleaned copy of a raw log, name the log file", file_or_store=True)  # fmt: skip


def redact_command(
    target: TargetArg,
    field: Annotated[
        list[str],
        typer.Option(
            "--field", help="Field to blank in data, before and meta (`address.zip` for a nested one); repeatable."
        ),
    ],
    key: KeyOpt = None,
    entity: EntityOpt = None,
    where: WhereOpt = None,
    reason: ReasonOpt = None,
    record_predicate: RecordOpt = False,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    format: FormatOpt = None,
    output: OutputOpt = None,
    input_format: InputFormatOpt = None,
    key_field: KeyFieldOpt = None,
    entity_field: EntityFieldOpt = None,
    op_field: OpFieldOpt = None,
    type_field: TypeFieldOpt = None,
    ts_field: TsFieldOpt = None,
    ts_unit: TsUnitOpt = None,
    data_field: DataFieldOpt = None,
    meta_field: MetaFieldOpt = None,
    prev_key_field: PrevKeyFieldOpt = None,
) -> None:
    """Replace named fields of the selected events with "[REDACTED]" and keep the events.

    Select by --key (with the row's earlier keys), --entity, --where (ANDed). Only events that
    hold a named field change (a new salt and digest); segments without them are not touched.
    Snapshots that may hold the values go; quarantined records are redacted or removed.
    Without --yes a terminal is asked first; anything else is refused.

    Given a JSON-lines or CSV file instead of a store, writes a redacted copy (every other line
    byte for byte), reading it through the ingest field options.

    Example:

        logtool redact people.store --field note --where "data->>'note' LIKE '%Mira Kovac%'" --yes

        logtool redact customers.csv --field email --key 42 --key-field id -o customers.clean.csv
    """
    from ..purge import redact, redact_file

    _not_stdin(target)
    if Path(target).is_file():
        mapping = build_mapping(key_field, entity_field, op_field, type_field, ts_field, ts_unit, data_field, meta_field,
                           prev_key_field)  # fmt: skip
        sink: Any = _Discard() if dry_run else (output or "-")
        with console.progress("redact") as update:
            res = redact_file(
                target, sink, field, key=key, entity=entity, where=where, mapping=mapping, format=input_format,
                progress=update,
            )  # fmt: skip
        _file_report(res, dry_run, entity, key, mapping.key_fields)
        return

    _refuse_raw_options(target, output, input_format, key_field, entity_field, op_field, type_field, ts_field, ts_unit,
                        data_field, meta_field, prev_key_field)  # fmt: skip

    def call(dry: bool, progress: Callable[[int, int | None], None] | None = None) -> PurgeResult:
        return redact(
            target, field, key=key, entity=entity, where=where, reason=reason,
            record_predicate=record_predicate, dry_run=dry, progress=progress, on_proof=_say_proof("redact"),
        )  # fmt: skip

    _store_run(target, "redact", call, yes=yes, dry_run=dry_run, format=format)


def _say_proof(verb: str) -> Callable[[str], None]:
    """What says the proof of a receipt, just before the commit that writes the receipt: no failure
    after it (a closed stdout, Ctrl-C, a full disk) can lose it."""

    def say(proof: str) -> None:
        console.say(
            f"proof: {proof} (keep it with the request, apart from the store, which does not keep it: with it, "
            f"and only with it, this {verb}'s receipt shows which key or selection it was)"
        )

    return say


def _store_run(
    target: str,
    verb: str,
    call: Callable[..., PurgeResult],
    *,
    yes: bool,
    dry_run: bool,
    format: FormatOpt,
) -> None:
    """Run a purge or redaction as the user asked: a dry run, or a change after a look (unless --yes)."""

    if dry_run:
        plan = call(True)
        _warn(plan)
        render_object(plan.summary(), format)
        for line in _describe(plan):
            console.status(line)
        if not plan.changed:
            console.warn(_nothing(plan))
        return
    if not yes:
        plan = call(True)  # checks the selection first, and shows what is at stake
        if not plan.changed and not plan.leftovers_removed:
            _warn(plan)
            console.warn(_nothing(plan) + ": the store is unchanged")
            return
        _warn(plan)
        for line in _describe(plan):
            console.say(line)
        confirm(f"{verb} now?", False, f"logtool {verb} {target} ...")
    with console.progress(verb, unit="events") as update:
        result = call(False, update)
    if yes:  # (the preview showed them otherwise)
        _warn(result)
    render_object(result.summary(), format)
    if result.commit is None:
        console.warn(
            _nothing(result) + ": the store is unchanged"
            + (" (files no commit named were deleted)" if result.leftovers_removed else "")
        )
    else:
        console.status(
            f"{verb}: {counted(result.events, 'event')} in commit {result.commit}; "
            f"the receipt is in `logtool log {target}`; check with `logtool verify {target}`"
        )



def _nothing(result: PurgeResult) -> str:
    """Why nothing changes: no event selected, or (redact) none of those selected holds a field."""
    if result.operation == "redact" and result.matched:
        return f"nothing to redact: {counted(result.matched, 'event')} selected, none holds a named field with a value"
    return "nothing matched"


def _warn(plan: PurgeResult) -> None:
    for note in plan.notes:
        console.warn(note)


def _describe(plan: PurgeResult) -> list[str]:
    from ..purge import format_ranges

    done = "removed" if plan.operation == "purge" else "redacted"
    lines = [f"{counted(plan.events, 'event')} would be {done}" + (f" ({counted(plan.keys, 'key')})" if plan.keys is not None else "")]
    if plan.offsets:
        lines.append(f"  offsets: {format_ranges(plan.offsets)}")
    for title, items in (
        ("segments rewritten", plan.segments_rewritten),
        ("segments removed", plan.segments_removed),
        ("snapshots removed", plan.snapshots_removed),
        ("snapshots rewritten (their events are gone)", plan.snapshots_rewritten),
        ("quarantine files rewritten", plan.quarantine_files),
        ("files no commit names, deleted with it", plan.leftovers_removed),
    ):
        if items:
            lines.append(f"  {title}: {', '.join(items)}")
    if plan.quarantine_records:
        lines.append(f"  quarantined records {done}: {plan.quarantine_records}")
    if plan.snapshot_at is not None:  # a head drop: the state at its cut is kept first, in its own commit
        lines.append(
            f"  snapshot at offset {plan.snapshot_at}: already there, kept ({plan.snapshot_taken})" if plan.snapshot_taken
            else f"  snapshot stored first at offset {plan.snapshot_at} (the state there, for replay after the cut)"
        )
    return lines


class _Discard:
    """A sink that keeps nothing (raw-file dry run)."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        return None


def _file_report(res: FileResult, dry_run: bool, entity: str | None = None, key: str | None = None,
                 key_fields: tuple[str, ...] = ()) -> None:  # fmt: skip
    if entity is not None and res.entities and entity not in res.entities:  # a name mistyped, or the file's own
        known = sorted(res.entities)
        console.warn(f"no record of {res.file} is of entity {entity!r}; its entities: "
                     f"{', '.join(map(repr, known[:10]))}{', ...' if len(known) > 10 else ''}")  # fmt: skip
    done = res.removed if res.operation == "purge" else res.redacted
    verb = "removed" if res.operation == "purge" else "redacted"
    where = "" if dry_run else f" -> {res.output}"
    console.status(
        f"{res.file} ({res.format}){where}: {counted(res.records, 'record')}, {done} {'would be ' if dry_run else ''}{verb}"
    )
    if res.unreadable:
        console.warn(
            f"{counted(res.unreadable, 'record')} could not be read and {'was' if res.unreadable == 1 else 'were'} "
            f"judged on {'its' if res.unreadable == 1 else 'their'} raw text (first: {res.first_unreadable})"
        )
    if res.unreadable_kept:
        console.warn(
            f"{counted(res.unreadable_kept, 'unreadable record')} "
            f"{'mentions' if res.unreadable_kept == 1 else 'mention'} the key and "
            f"{'was' if res.unreadable_kept == 1 else 'were'} kept as {'it is' if res.unreadable_kept == 1 else 'they are'} "
            f"(first: {res.file}:{res.first_unreadable_kept})"
        )
    if res.records and not done and not res.unreadable_kept:
        # an erasure that changes nothing must not pass unnoticed (a mapping or a key given wrong):
        # said even under -q; the exit status stays 0, as a file need not hold the person
        copy = "" if dry_run or res.output == "-" else f" ({res.output} is a copy of it)"
        if res.matched:
            console.warn(f"nothing to redact in {res.file}{copy}: {counted(res.matched, 'record')} selected, none holds a named "
                         "field with a value (a nested field is named by its path: "
                         "`address.zip`)")  # fmt: skip
        else:
            composite = ""
            if key is not None and len(key_fields) > 1 and not key.lstrip().startswith("{"):
                members = ", ".join(f'"{k}": ...' for k in key_fields)
                composite = f" (a composite key is given as a JSON object of its fields: --key '{{{members}}}')"
            console.warn(f"nothing matched: no record of {res.file} is selected{copy}; check the selection "
                         f"and the field mapping{composite}")  # fmt: skip


def _not_stdin(target: str) -> None:
    from ..errors import UsageError

    if target == "-":
        raise UsageError(
            "purge and redact read a store or a raw log file, not standard input",
            "save the log to a file first, then `logtool purge FILE ... -o OUT`",
        )


def register(app: typer.Typer) -> None:
    app.command("purge")(boundary(purge_command))
    app.command("redact")(boundary(redact_command))
