"""Ingest: read log files through a format reader and append them to a store, one commit a file."""

from __future__ import annotations

import base64
import glob
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import engine
from .errors import InputError, UsageError, counted
from .formats import detect, get_format
from .formats.base import BadRecord, Mapping, Source, check_fields_seen
from .formats.parquet import holds_events
from .overlap import drop_resent, held_transactions
from .segments import DEFAULT_SEGMENT_ROWS, SegmentWriter
from .store import Store, file_sha256

if TYPE_CHECKING:
    import duckdb

ON_ERROR = ("fail", "quarantine", "skip")
MAPPED_FORMATS = ("jsonl", "csv", "parquet")  # read through the field mapping (--data-field and the rest)


@dataclass
class FileResult:
    """What ingest did with one input."""

    file: str
    format: str
    ingested: int = 0
    quarantined: int = 0
    skipped: int = 0
    duplicate: bool = False
    first_offset: int | None = None
    last_offset: int | None = None
    commit: int | None = None
    errors: list[BadRecord] = field(default_factory=list)  # the first few, for the summary
    #: a duplicate's mapping when it went in, where it differs from this ingest's (as options)
    earlier_mapping: str | None = None


@dataclass
class IngestResult:
    """What ingest did, per file."""

    store: str
    files: list[FileResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ingested(self) -> int:
        return sum(f.ingested for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def skipped(self) -> int:
        return sum(f.skipped for f in self.files)


def expand_inputs(specs: list[str]) -> list[str]:
    """Expand globs (sorted); '-' is stdin; a pattern that matches nothing is an error. A name
    that is a file is that file, whatever glob characters it holds (``x[1].jsonl``)."""
    out: list[str] = []
    for spec in specs:
        if spec == "-" or not glob.has_magic(spec) or os.path.exists(spec):
            out.append(spec)
            continue
        matches = sorted(glob.glob(spec))
        if not matches:
            raise InputError(spec, None, "no file matches this pattern", "check the pattern")
        out += matches
    return out


def ingest(
    store_path: str | Path,
    files: list[str],
    *,
    format: str | None = None,
    mapping: Mapping | None = None,
    on_error: str = "fail",
    allow_duplicates: bool = False,
    segment_rows: int = DEFAULT_SEGMENT_ROWS,
    progress: Callable[[str, int, int | None], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestResult:
    """Append log files to a store (created if absent): one atomic commit per file.

    ``on_error``: ``fail`` stops at the first bad record with ``FILE:LINE: what`` and commits
    nothing of that file; ``quarantine`` keeps bad records verbatim in the store's quarantine;
    ``skip`` counts them. A file whose content the store already holds is refused unless
    ``allow_duplicates``. ``progress(file, bytes_read, total_bytes)`` is called as input is read, ``on_file(result)``
    as each file is done (committed or refused), so that what is in the store is known even when a
    later file fails.
    """
    if on_error not in ON_ERROR:
        raise UsageError(f"--on-error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    mapping = mapping or Mapping()
    inputs = expand_inputs(files)
    if not inputs:
        raise UsageError("no input files given", "name one or more files, or '-' for stdin")
    sources = [Source(spec) for spec in inputs]  # fails early on a missing file or a directory
    store = Store.create(store_path)
    result = IngestResult(str(store.path))
    con = engine.connect()  # the digests' connection, one for every file
    # where keys are given per entity, the entities whose events went in without a key: to say
    # so where a key given fits no entity
    keyless: set[str] | None = set() if any(":" in k for k in mapping.key_fields) else None
    with store.writer("ingest"):
        store.sweep()  # what an ingest killed before its commit left (a rerun is the cleanup)
        for source in sources:
            result.files.append(
                _ingest_one(store, source, format, mapping, on_error, allow_duplicates, segment_rows, progress, con,
                            keyless)  # fmt: skip
            )
            result.warnings += source.notes
            if on_file:
                on_file(result.files[-1])
    if keyless:
        result.warnings += _unfitting_keys(mapping, keyless, store)
    note = _auto_snapshot(store)
    if note:
        result.warnings.append(note)
    return result


def _unfitting_keys(mapping: Mapping, keyless_entities: set[str], store: Store) -> list[str]:
    """Where events went in without a key while an ``ENTITY:FIELD`` key fits no entity of the
    store (a typo, or a field name with a colon): both said."""
    from .formats.base import entity_names
    from .query import sql

    keyless = sorted(keyless_entities)
    entities = keyless_entities | set(sql(store.path, "SELECT DISTINCT entity FROM events").column("entity").to_pylist())
    names = {n for e in entities for n in entity_names(e)}
    unfitting = [spec for spec in mapping.key_fields if ":" in spec and spec.split(":", 1)[0] not in names]
    if not unfitting:
        return []
    return [
        *(f"--key-field {spec}: no entity {spec.split(':', 1)[0]!r} is in the store, so this key fits no event"
          for spec in unfitting),
        f"no --key-field fits {', '.join(map(repr, keyless))}: its events have no key (replay keeps them as a "
        "multiset of rows); name the entity in full or by its last part, e.g. --key-field "
        f"{keyless[0].rsplit('.', 1)[-1]}:{unfitting[0].split(':', 1)[1]}",
    ]  # fmt: skip


def _auto_snapshot(store: Store) -> str | None:
    """Take the snapshot the store's ``snapshot_every`` setting asks for, when one is due; says
    why one that is due was not taken (the ingest itself stands: a later ingest tries again)."""
    state = store.state()
    every = int(state.config.get("snapshot_every") or 0)
    if not every or not state.segments:
        return None
    from .errors import LogtoolError
    from .replay import KV_FINGERPRINT, load_reducer, reducer_label, snapshot

    # (an import name is imported from the directory it was found from when it was set)
    reducer, where = state.config.get("snapshot_reducer"), state.config.get("snapshot_reducer_from")
    try:
        module = load_reducer(reducer, search=where) if reducer else None
    except LogtoolError as e:
        # due or not, by the last snapshot any reducer took (its own fingerprint cannot be had)
        last = max((s["offset"] for s in state.of_kind("snapshot") if s.get("reducer") != KV_FINGERPRINT), default=-1)
        if state.next_offset - 1 - last < every:
            return None
        return (f"no automatic snapshot: its reducer {reducer_label(str(reducer), where)} cannot be loaded ({e.message}); "
                "set it again with `logtool snapshot STORE --every N --reducer MODULE`")  # fmt: skip
    fingerprint = module.fingerprint if module else KV_FINGERPRINT
    last = max((s["offset"] for s in state.of_kind("snapshot") if s.get("reducer") == fingerprint), default=-1)
    if state.next_offset - 1 - last < every:
        return None
    try:
        snapshot(store.path, reducer=module)
    except LogtoolError as e:  # an open transaction, another writer, a reducer that fails
        return f"no automatic snapshot this time: {e.message} (a later ingest tries again)"
    return None


#: formats whose records carry a time, where an event without one (a Debezium tombstone placed
#: from the store) is the exception: a file of such events alone is warned of too
def _mapping_params(mapping: Mapping) -> dict[str, Any]:
    """The field mapping as an ingest commit records it: the options given."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in mapping.__dict__.items() if v and k != "max_line_bytes"}


def _other_mapping(store: Store, version: int, mapping: Mapping) -> str | None:
    """The mapping the commit ``version`` ingested its file with, as options, where it is not
    ``mapping`` (the same bytes again, with the mapping corrected, are still refused)."""
    commit = next((c for c in store.commits() if c.get("version") == version), None)
    if commit is None:
        return None
    earlier = commit.get("params", {}).get("mapping", {})
    if earlier == _mapping_params(mapping):
        return None
    return " ".join(f"--{k.removesuffix('s').replace('_', '-')} {v}" for k, vs in earlier.items()
                    for v in (vs if isinstance(vs, list) else [vs])) or "no field mapping"  # fmt: skip


_TIMED_FORMATS = ("debezium", "kcat", "maxwell", "mongodb")


def _ingest_one(
    store: Store,
    source: Source,
    format_name: str | None,
    mapping: Mapping,
    on_error: str,
    allow_duplicates: bool,
    segment_rows: int,
    progress: Callable[[str, int, int | None], None] | None,
    con: duckdb.DuckDBPyConnection,
    keyless: set[str] | None = None,
) -> FileResult:
    import pyarrow as pa
    import pyarrow.compute as pc

    if source.size == 0:
        raise InputError(source.name, None, "file is empty", "nothing to ingest")
    if mapping.entity is None and not mapping.entity_field and source.spec != "-":
        # for the hint of damaged compressed content, which detection may already meet
        source.named_entity = mapping.default_entity(source)
    fmt = get_format(format_name) if format_name else detect(source)
    state = store.state()
    res = FileResult(source.name, fmt.name)
    # the entity the events take from the file name (or --entity), where no field names it
    named = (mapping.default_entity(source) if fmt.name in MAPPED_FORMATS and not mapping.entity_field
             and not (fmt.name == "parquet" and source.spec != "-" and holds_events(source)) else None)  # fmt: skip
    if named is None:
        source.named_entity = None  # the format's records name their entity
    elif source.spec == "-" and mapping.entity is None:
        source.notes.append(
            f"{source.name}: its records are of entity {named!r}, as stdin has no file name to give them one: "
            "pass --entity NAME (the name of the file they came from), or --entity-field"
        )
    # A file of a size the store has taken before is hashed first: a copy it already holds is
    # refused without being read through the mapping.
    if not allow_duplicates and source.spec != "-" and source.size in state.ingested_sizes:
        done = state.ingested_in(source.whole_digest(), named)
        if done is not None:
            res.duplicate, res.commit = True, done
            res.earlier_mapping = _other_mapping(store, done, mapping)
            return res
    bad: list[BadRecord] = []

    def report(record: BadRecord) -> None:
        if on_error == "fail":
            raise InputError(
                record.file,
                record.line,
                record.reason,
                record.hint or "fix the record, or pass --on-error quarantine (keep it aside) or --on-error skip",
            )
        bad.append(record)

    def on_rows(n: int) -> None:
        if progress:
            progress(source.name, source.bytes_read, source.size)

    if state.next_offset > 2**63 - 1 and not mapping.offset_field:
        raise UsageError(
            f"{store.path}: its offsets are used up (its last is {state.next_offset - 1}, the largest there is)",
            "ingest into a new store",
        )
    writer = SegmentWriter(
        store,
        state.next_offset,
        segment_rows=segment_rows,
        source_offsets=mapping.offset_field is not None,
        on_rows=on_rows,
        con=con,
    )
    source.store_topics = partial(_debezium_topics, store)
    source.store_keys = partial(_keyed_entities, store)
    source.store_key_names = partial(_debezium_key_names, store)
    resent = None if allow_duplicates else held_transactions(store, fmt.name)
    try:
        for batch in fmt.read(source, mapping, report):
            if resent is not None and not (batch := drop_resent(batch, resent)).num_rows:
                continue
            writer.write(batch)
            res.ingested += batch.num_rows
            if keyless is not None:  # (a truncate has no key, nor a CDC format's DDL or message event)
                not_rows = ["truncate"] if fmt.name in MAPPED_FORMATS else ["truncate", "event"]
                none = pc.and_(pc.is_null(batch.column("key")), pc.invert(pc.is_in(batch.column("op"), pa.array(not_rows))))
                keyless.update(pc.unique(batch.column("entity").filter(none)).to_pylist())
        check_fields_seen(source, mapping, res.ingested)
        if resent is not None and (note := resent.note(source.name)):
            source.notes.append(note)
        entries = writer.close()
        # (a JSON-lines file without --ts-field, or a PostgreSQL capture without timestamps, stamps
        # them all: no news; these formats' records carry a time, and one without is the exception)
        if 0 < writer.stamped and (writer.stamped < res.ingested or fmt.name in _TIMED_FORMATS):
            source.notes.append(
                f"{source.name}: {counted(writer.stamped, 'event')} {'has' if writer.stamped == 1 else 'have'} no time in "
                f"the source (the first at line {writer.first_stamped}) and {'carries' if writer.stamped == 1 else 'carry'} "
                "the time of this ingest: a replay --at-time before it ends its "
                "prefix at the first of them"
            )
    except BaseException:
        writer.abort()
        raise
    sha = source.content_digest
    done = state.ingested_in(sha, named)
    if done is not None and not allow_duplicates:
        writer.abort()
        res.duplicate = True
        res.ingested = 0
        res.commit = done
        res.earlier_mapping = _other_mapping(store, done, mapping)
        return res
    quarantine = []
    if bad and on_error == "quarantine":
        quarantine.append(_write_quarantine(store, source, bad))
        res.quarantined = len(bad)
    elif bad:
        res.skipped = len(bad)
    res.errors = bad[:5]
    if entries:
        res.first_offset = entries[0]["min_offset"]
        res.last_offset = entries[-1]["max_offset"]
    params: dict[str, Any] = {
        "file": source.name,
        "format": fmt.name,
        "sha256": sha,
        "default_entity": named,
        "bytes": source.bytes_read,
        "file_bytes": source.size,
        "mapping": _mapping_params(mapping),
        "on_error": on_error,
    }
    info = {
        "ingested": res.ingested, "quarantined": res.quarantined, "skipped": res.skipped,
        "next_offset": writer.next_offset,
    }  # fmt: skip
    commit = store.commit("ingest", params, add=entries + quarantine, gaps=writer.gaps, info=info)
    res.commit = commit["version"]
    return res


def _debezium_topics(store: Store, topics: list[str]) -> dict[str, tuple[str, bool]]:
    """Of these Kafka topics, those whose Debezium changes earlier ingests of kcat dumps read: the
    entity of the changes, and whether they came from the MongoDB connector. (A kcat reader asks
    it of the tombstones of a topic its file holds no other record of.)"""
    from .query import events_connection

    rows = events_connection(store).execute(
        """SELECT json_extract_string(meta, '$.kafka.topic') AS topic, min(entity),
                  bool_or(json_extract_string(meta, '$.source.connector') = 'mongodb')
           FROM events
           WHERE source.format = 'kcat' AND data IS NOT NULL AND op <> 'event'
             AND json_type(meta, '$.source') = 'OBJECT' AND topic IN (SELECT unnest(?::VARCHAR[]))
           GROUP BY topic""",
        [topics],
    ).fetchall()
    return {topic: (entity, bool(mongodb)) for topic, entity, mongodb in rows}


def _keyed_entities(store: Store) -> tuple[set[str], set[str]]:
    """The entities whose rows in the store (since their last truncate) went in without a key,
    some or all, and those of which some went in keyed. (A reader that could key an entity's rows
    asks it: they go in keyless as well where the store's did, in one multiset with those, for
    their updates and deletes to find them; where rows go in keyless beside keyed ones, it says
    so.)"""
    from .query import events_connection

    if not store.state().segments:
        return set(), set()
    rows = events_connection(store).execute(
        """WITH cut AS (SELECT entity, max("offset") AS at FROM events WHERE op = 'truncate' GROUP BY entity)
           SELECT e.entity, bool_or(e.key IS NULL), bool_or(e.key IS NOT NULL)
           FROM events e LEFT JOIN cut USING (entity)
           WHERE e.op IN ('insert', 'read', 'upsert', 'update', 'patch', 'delete') AND e."offset" > coalesce(cut.at, -1)
           GROUP BY e.entity"""
    ).fetchall()
    return {entity for entity, keyless, _ in rows if keyless}, {entity for entity, _, keyed in rows if keyed}


def _debezium_key_names(store: Store) -> list[tuple[str, str, bool]]:
    """The names of the record key schemas of the Debezium changes earlier ingests of keyed dumps
    read, each with its changes' entity and whether they came from the MongoDB connector. (A
    Debezium reader asks it of the tombstones whose key schema's name its file shows no change of.)"""
    from .query import events_connection

    rows = events_connection(store).execute(
        """SELECT json_extract_string(meta, '$.key_schema') AS name, entity,
                  bool_or(json_extract_string(meta, '$.source.connector') = 'mongodb')
           FROM events
           WHERE source.format = 'debezium' AND op NOT IN ('event', 'truncate') AND name IS NOT NULL
           GROUP BY name, entity ORDER BY name, entity"""
    ).fetchall()
    return [(name, entity, bool(mongodb)) for name, entity, mongodb in rows]


def _write_quarantine(store: Store, source: Source, bad: list[BadRecord]) -> dict[str, Any]:
    """Bad records, verbatim (base64 when not UTF-8), with file, line and reason: one JSON line each."""
    path = store.new_file("quarantine", Path(source.name).name, ".jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for r in bad:
            entry: dict[str, Any] = {"file": r.file, "line": r.line, "reason": r.reason}
            try:
                entry["raw"] = r.raw.decode("utf-8")
            except UnicodeDecodeError:
                entry["raw_base64"] = base64.b64encode(r.raw).decode()
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return {"kind": "quarantine", "path": store.rel(path), "rows": len(bad), "sha256": file_sha256(path),
            "bytes": path.stat().st_size, "file": source.name}  # fmt: skip
