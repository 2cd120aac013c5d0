"""Compact: Kafka's log-cleaner semantics, for stores and for raw log files.

- Per key, only the record with the highest offset survives; offsets are never rewritten, order
  is kept, gaps are legal, the next offset does not move back. Latest wins by offset, not by time.
- Where a key's latest record is partial (an update or patch that omits columns), the survivor
  carries the key's full row as of its offset, folded from its history (op ``upsert``).
- A tombstone (a delete or a null payload) removes every earlier record of its key; it is kept
  while ``now < ts + retention`` and removed after. A truncate does the same for its entity. A key
  a row moved away from keeps no record unless the state at the compaction point has a row there
  (two rows may swap keys in one transaction); a survivor that moved its row carries the full row
  and no key change.
- The protected head — records at or after ``--until-offset``, and the first record younger than
  ``--min-lag`` and everything after it — is never compacted and supersedes nothing. It starts at
  a transaction's first event, never inside one.
- Keyless records outside the protected head are dropped (Kafka refuses them on compacted topics),
  and so are records of aborted transactions.

A compacted store replays to the same state as the original at its head and at every offset at
or after the compaction point.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import UsageError
from .schema import DOMAIN_EVENT
from .store import Store, iso_utc, names_damage

if TYPE_CHECKING:
    import duckdb

REASONS = ("superseded", "tombstone expired", "keyless", "aborted")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_US = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": 86_400_000_000}


def parse_duration(text: str | int | None) -> int:
    """A duration such as ``1d``, ``1h30m``, ``250ms`` (or plain seconds) in microseconds."""
    if text is None:
        return 0
    if isinstance(text, str) and not text.strip():
        raise UsageError("an empty duration", "write e.g. 1d, 12h, 30m, 45s, 500ms (0 for none)")
    if isinstance(text, int):
        return text * 1_000_000
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip().replace(" ", ""):
        if text.strip().isdigit():
            return int(text) * 1_000_000
        raise UsageError(f"cannot read {text!r} as a duration", "write e.g. 1d, 12h, 30m, 45s, 500ms")
    from decimal import Decimal

    return int(sum(Decimal(n) * _UNIT_US[u] for n, u in parts))


def _instant(us: int) -> str:
    """An instant in microseconds since the epoch as ISO-8601 text; past year 9999 (a retention of
    ages), ``never``."""
    try:
        return iso_utc(dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us))
    except OverflowError:
        return "never"


def _now_us(now: str | dt.datetime | None) -> int:
    from .formats.base import parse_ts

    if now is None:
        return int(dt.datetime.now(dt.UTC).timestamp() * 1_000_000)
    try:
        return parse_ts(now.isoformat() if isinstance(now, dt.datetime) else now)
    except ValueError:
        raise UsageError(f"--now: cannot read {now!r} as an instant", "write e.g. 2026-03-02T00:00:00Z") from None


@dataclass
class CompactResult:
    """What a compaction removed (or would remove) and why."""

    dry_run: bool
    cleanable_before: int | None  # offsets below this were considered (the protected head starts here)
    removed: dict[str, int] = field(default_factory=dict)  # reason -> count
    folded: int = 0  # survivors rewritten with their full row
    tombstones_kept: int = 0
    earliest_tombstone_expiry: str | None = None
    tombstones: list[dict[str, Any]] = field(default_factory=list)  # kept ones with their expiry (first 100)
    events_before: int = 0
    events_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0  # estimated on a dry run
    segments_rewritten: int = 0
    commit: int | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)  # removed events (offset, key, reason)
    keyless_entities: dict[str, int] = field(default_factory=dict)  # entities with no key at all -> events dropped
    latest_removed_time: str | None = None  # the latest stamp of a removed event (for --at-time after it)
    leftovers_removed: list[str] = field(default_factory=list)  # files no commit names, deleted with the commit
    # keyless rows of the snapshot a head drop left, which go with it as keyless records do: entity -> rows
    keyless_snapshot_rows: dict[str, int] = field(default_factory=dict)
    # the snapshot a head drop left, rewritten without what the compacted range changes: {path, replaced_by}
    # (replaced_by None on a dry run)
    snapshots_rewritten: list[dict[str, str | None]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "protected_from_offset": self.cleanable_before,
            "events_before": self.events_before,
            "events_after": self.events_after,
            **{f"removed_{r.replace(' ', '_')}": self.removed.get(r, 0) for r in REASONS},
            "folded_survivors": self.folded,
            "tombstones_kept": self.tombstones_kept,
            "earliest_tombstone_expiry": self.earliest_tombstone_expiry,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "bytes_saved": self.bytes_before - self.bytes_after,
            "segments_rewritten": self.segments_rewritten,
            "latest_removed_time": self.latest_removed_time,
            "leftovers_removed": self.leftovers_removed,
            "snapshots_rewritten": self.snapshots_rewritten,
            "keyless_snapshot_rows": self.keyless_snapshot_rows,
            "commit": self.commit,
        }


# A survivor rewritten with its key's full row at the compaction point (op upsert, no key change):
# a partial record, or one that moved its row from another key.
_FOLDED = "key IS NOT NULL AND (op IN ('update', 'patch') OR moves) AND NOT (op = 'delete' OR no_data)"


def _decisions_sql(horizon: int, now_us: int, retention_us: int) -> str:
    """Per compactable event (offset below the horizon): why it goes (NULL: it stays), and
    whether it survives as a partial record that must carry the full row."""
    alive = "NOT coalesce(txn.aborted, FALSE)"
    expired = f"epoch_us(ts) + {retention_us} <= {now_us}"
    # Each part reads the events itself: a shared CTE would be materialized, payloads and all.
    # A key's latest record is matched by its offset, which is unique in the log: the join hashes
    # one integer per event rather than each event's entity and key.
    below = f'"offset" < {horizon}'
    return f"""
    WITH latest AS (
        SELECT max("offset") AS l FROM events
        WHERE {below} AND key IS NOT NULL AND op <> 'truncate' AND {alive} GROUP BY entity, key
    ),
    trunc AS (SELECT entity, max("offset") AS t FROM events WHERE {below} AND op = 'truncate' AND {alive} GROUP BY entity)
    SELECT c."offset", c.op, epoch_us(c.ts) AS ts_us, c.data IS NULL AS no_data,
        coalesce(c.prev_key <> c.key, FALSE) AS moves,
        CASE
            WHEN NOT {alive.replace('txn', 'c.txn')} THEN 'aborted'
            WHEN c.op = 'truncate' THEN
                CASE WHEN c."offset" < trunc.t THEN 'superseded' WHEN {expired} THEN 'tombstone expired' END
            WHEN c.key IS NULL THEN 'keyless'
            -- (an event without an entity is of no key, as it was when keys were joined on entity and key)
            WHEN c."offset" < coalesce(trunc.t, -1) OR (latest.l IS NULL AND c.entity IS NOT NULL) THEN 'superseded'
            WHEN (c.op = 'delete' OR c.data IS NULL) AND {expired} THEN 'tombstone expired'
        END AS reason,
        -- a survivor's key (only survivors': the table stays small on a large log)
        CASE WHEN reason IS NULL THEN c.entity END AS entity, CASE WHEN reason IS NULL THEN c.key END AS key
    FROM (SELECT "offset", ts, entity, key, prev_key, op, data, txn FROM events WHERE {below}) c
           LEFT JOIN latest ON latest.l = c."offset"
           LEFT JOIN trunc ON trunc.entity = c.entity
    """


@names_damage
def compact(
    path: str | Path,
    *,
    tombstone_retention: str | int | None = "1d",
    min_lag: str | int | None = None,
    until_offset: int | None = None,
    now: str | dt.datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> CompactResult:
    """Compact a store with Kafka's semantics (see the module doc), in one commit. A dry run
    takes no lock: where a commit lands meanwhile and removes a segment it reads, it looks
    again on the new state, as every read does."""
    from .store import reads_latest

    run = reads_latest(_compact) if dry_run else _compact
    return run(path, tombstone_retention=tombstone_retention, min_lag=min_lag, until_offset=until_offset, now=now,
               dry_run=dry_run, progress=progress)  # fmt: skip


def _compact(
    path: str | Path,
    *,
    tombstone_retention: str | int | None,
    min_lag: str | int | None,
    until_offset: int | None,
    now: str | dt.datetime | None,
    dry_run: bool,
    progress: Callable[[int, int | None], None] | None,
) -> CompactResult:
    import pyarrow.compute as pc

    from . import engine
    from .engine import sql_string
    from .purge import offset_ranges
    from .replay import replay, whole_transactions_below
    from .segments import reseal, write_segment

    if until_offset is not None and until_offset < 0:
        raise UsageError(f"--until-offset must be 0 or more, not {until_offset}")
    store = Store.open(path)
    store.check_head()  # (a dry run says what the run would: it refuses such a store)
    retention_us = parse_duration(tombstone_retention)
    lag_us = parse_duration(min_lag)
    now_us = _now_us(now)
    # a dry run changes nothing, so it takes no lock: it runs beside a writer, and on a read-only store
    with contextlib.nullcontext(store) if dry_run else store.writer("compact"):
        st = store.state()
        con = engine.connect()
        store.events_view(con, files=store.segment_files(st))
        if con.execute(f"SELECT count(*) FROM events WHERE {DOMAIN_EVENT}").fetchall()[0][0]:
            raise UsageError(
                "this log holds domain events (an event-sourced log): compacting it would lose history its reducers need",
                f"take a snapshot with its reducers instead: `logtool snapshot {path} --reducer MODULE`",
            )
        horizon = st.next_offset if until_offset is None else min(until_offset, st.next_offset)
        if lag_us:
            young = con.execute(f'SELECT min("offset") FROM events WHERE epoch_us(ts) > {now_us - lag_us}').fetchall()[0][0]
            if young is not None:
                horizon = min(horizon, young)
        horizon = whole_transactions_below(store, horizon)  # a transaction goes whole or not at all
        result = CompactResult(dry_run=dry_run, cleanable_before=horizon)
        result.events_before = sum(s["rows"] for s in st.segments)
        result.bytes_before = sum(s["bytes"] for s in st.segments)
        con.execute(f"CREATE TEMP TABLE decisions AS {_decisions_sql(horizon, now_us, retention_us)}")
        # A key a row moved away from holds no row unless one came back: which, only the fold knows
        # (two rows can swap keys in one transaction). Its latest record goes where the state at the
        # compaction point has no row for it.
        state_at_point = None
        if con.execute(f'SELECT 1 FROM decisions WHERE moves AND "offset" < {horizon} LIMIT 1').fetchall():
            state_at_point = replay(store.path, at_offset=horizon - 1, use_snapshots=True).state
            con.register("_state_at_point", state_at_point)
            con.execute(
                f"""UPDATE decisions SET reason = 'superseded', entity = NULL, key = NULL
                    WHERE reason IS NULL AND key IS NOT NULL AND NOT (op = 'delete' OR no_data)
                      AND (entity, key) IN (SELECT (entity, prev_key) FROM events
                                            WHERE "offset" < {horizon} AND prev_key IS NOT NULL AND prev_key <> key)
                      AND (entity, key) NOT IN (SELECT (entity, key) FROM _state_at_point WHERE key IS NOT NULL)"""
            )
        if progress:
            progress(1, 3)
        for reason, n in con.execute("SELECT reason, count(*) FROM decisions WHERE reason IS NOT NULL GROUP BY 1").fetchall():
            result.removed[reason] = n
        latest = con.execute("SELECT max(ts_us) FROM decisions WHERE reason IS NOT NULL").fetchall()[0][0]
        result.latest_removed_time = None if latest is None else _instant(latest)
        if result.removed.get("keyless"):
            # an entity none of whose events has a key loses every row: worth saying before it goes
            result.keyless_entities = dict(con.execute(
                f"""SELECT entity, count(*) FILTER (WHERE op <> 'truncate') FROM events WHERE "offset" < {horizon}
                    GROUP BY entity HAVING count(key) = 0 AND count(*) FILTER (WHERE op <> 'truncate') > 0
                    ORDER BY entity"""
            ).fetchall())  # fmt: skip
        con.execute(
            """CREATE TEMP TABLE kept_tombstones AS SELECT "offset", entity, key, op, ts_us FROM decisions
                WHERE reason IS NULL AND (op IN ('delete', 'truncate') OR no_data)"""
        )
        kept = con.execute("SELECT count(*), min(ts_us) FROM kept_tombstones").fetchall()[0]
        result.tombstones = [
            {"offset": o, "entity": e, "key": k, "op": op,
             "expires": _instant(t + retention_us)}
            for o, e, k, op, t in con.execute('SELECT * FROM kept_tombstones ORDER BY "offset" LIMIT 100').fetchall()
        ]  # fmt: skip
        result.tombstones_kept = kept[0]
        if kept[1] is not None:
            result.earliest_tombstone_expiry = _instant(kept[1] + retention_us)
        fold_rows = con.execute(f"SELECT count(*) FROM decisions WHERE reason IS NULL AND {_FOLDED}").fetchall()[0][0]
        result.folded = fold_rows
        result.examples = [
            {"offset": o, "entity": e, "key": k, "op": op, "reason": r}
            for o, e, k, op, r in con.execute(
                """SELECT d."offset", e.entity, e.key, d.op, d.reason
                   FROM (SELECT "offset", op, reason FROM decisions WHERE reason IS NOT NULL ORDER BY "offset" LIMIT 20) d
                   JOIN events e USING ("offset") ORDER BY d."offset" """
            ).fetchall()
        ]
        removed_total = sum(result.removed.values())
        result.events_after = result.events_before - removed_total
        # The segments holding an event that goes or is folded: only they are rewritten.
        import pyarrow as pa

        ranges = pa.table({  # noqa: F841 - read by the query
            "path": [x["path"] for x in st.segments],
            "lo": [x["min_offset"] for x in st.segments],
            "hi": [x["max_offset"] for x in st.segments],
        })
        # A segment is untouched when every event of it below the horizon stays as it is; survivors
        # are few, so they are the side matched against the segments' ranges.
        untouched = dict(con.execute(
            f"""SELECT r.path, count(*) FROM ranges r JOIN decisions d ON d."offset" BETWEEN r.lo AND r.hi
               WHERE d.reason IS NULL AND NOT ({_FOLDED}) GROUP BY r.path"""
        ).fetchall())  # fmt: skip

        def below_horizon(seg: dict[str, Any]) -> int:
            if seg["max_offset"] < horizon:
                return int(seg["rows"])
            if seg["min_offset"] >= horizon:
                return 0
            return int(con.execute(
                f'SELECT count(*) FROM decisions WHERE "offset" BETWEEN {seg["min_offset"]} AND {seg["max_offset"]}'
            ).fetchall()[0][0])

        segs = [x for x in st.segments if below_horizon(x) > untouched.get(x["path"], 0)]
        result.segments_rewritten = len(segs)
        if segs and store.writer_at_work() is None:  # a commit sweeps the store of files no commit
            result.leftovers_removed = [store.rel(p) for p in store.leftovers(st)]  # names: said
        if segs:  # the snapshot a head drop left, which the compaction rewrites: its keyless rows go
            unrebuildable = store.unrebuildable_snapshots()
            head_snapshots = [s for s in st.of_kind("snapshot") if s["offset"] < horizon - 1 and s["path"] in unrebuildable]
            if dry_run:
                result.snapshots_rewritten = [{"path": s["path"], "replaced_by": None} for s in head_snapshots]
            for snap in head_snapshots:
                for entity, n in con.execute(  # (those a truncate after it took out are gone already)
                    f"""SELECT entity, count(*) FROM {_snapshot_rows(store, snap)}
                        WHERE key IS NULL AND NOT {_changed_after(snap, horizon, "e.op = 'truncate'")}
                        GROUP BY entity ORDER BY entity"""
                ).fetchall():
                    result.keyless_snapshot_rows[entity] = result.keyless_snapshot_rows.get(entity, 0) + n
        if dry_run or not segs:
            share = result.events_after / result.events_before if result.events_before else 1.0
            result.bytes_after = int(result.bytes_before * share) if segs else result.bytes_before
            return result
        # What the rewrite needs from the decisions; they are dropped before the replay below, so
        # the two never hold memory at once.
        con.execute('CREATE TEMP TABLE kept AS SELECT "offset" FROM decisions WHERE reason IS NULL ORDER BY "offset"')
        con.execute(
            f"""CREATE TEMP TABLE partial_survivors AS SELECT "offset", entity, key FROM decisions
                WHERE reason IS NULL AND {_FOLDED}"""
        )
        gaps = offset_ranges(  # the removed offsets, as ranges
            con.sql('SELECT "offset" FROM decisions WHERE reason IS NOT NULL ORDER BY "offset"').to_arrow_table()
            .column("offset").to_numpy()
        )  # fmt: skip
        con.execute("DROP TABLE decisions; DROP TABLE kept_tombstones")
        # The full rows of survivors that are partial: their state at the compaction point.
        folded_state = (  # noqa: F841 - read by the query
            state_at_point if state_at_point is not None
            else replay(store.path, at_offset=horizon - 1, use_snapshots=True).state if fold_rows
            else pa.table({"entity": pa.array([], pa.string()), "key": pa.array([], pa.string()),
                           "state": pa.array([], pa.string())})
        )  # fmt: skip
        con.execute(
            """CREATE TEMP TABLE fold_by_offset AS
               SELECT p."offset", f.state AS data FROM partial_survivors p
               JOIN folded_state f ON f.entity = p.entity AND f.key = p.key"""
        )
        del folded_state, state_at_point
        if "_state_at_point" in {n for (n,) in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}:
            con.unregister("_state_at_point")
        if progress:
            progress(2, 3)
        adds, removes = [], []
        for seg in segs:
            file = store.path / seg["path"]
            table = con.sql(
                f"""SELECT s.* REPLACE (
                        CASE WHEN f."offset" IS NOT NULL THEN f.data ELSE s.data END AS data,
                        CASE WHEN f."offset" IS NOT NULL THEN 'upsert' ELSE s.op END AS op,
                        -- a full row moves nothing: the key it came from holds what survives of it
                        CASE WHEN f."offset" IS NOT NULL THEN NULL ELSE s.prev_key END AS prev_key),
                        f."offset" IS NOT NULL AS _folded
                    FROM read_parquet({sql_string(str(file))}) s
                    LEFT JOIN fold_by_offset f ON f."offset" = s."offset"
                    WHERE s."offset" >= {horizon} OR s."offset" IN (
                        SELECT "offset" FROM kept WHERE "offset" BETWEEN {seg["min_offset"]} AND {seg["max_offset"]})
                    ORDER BY s."offset" """
            ).to_arrow_table()
            mask = table.column("_folded")
            table = reseal(table.drop_columns(["_folded"]), pc.fill_null(mask, False), con)
            entry = write_segment(store, table)
            removes.append(seg)
            if entry:
                adds.append(entry)
        # Below the compaction point a snapshot no longer matches the log; at or after it, one holds
        # the keyless rows the compaction drops, which a replay of the log no longer has (a head
        # drop's snapshot there is the only start a replay has: it stays).
        stale_snapshots = [
            s for s in st.of_kind("snapshot")
            if s["offset"] < horizon - 1 or (result.removed.get("keyless") and s["path"] not in unrebuildable)
        ]  # fmt: skip
        # A snapshot a head drop left holds rows no event holds any more: it stays, without the
        # rows that events up to the compaction point touch (their survivors, or their expiry,
        # say what is left of them), so that replay starts from it and applies the survivors.
        kept_snapshots = [(s, _untouched_rows(store, con, s, horizon)) for s in head_snapshots]
        for old, entry in kept_snapshots:
            result.snapshots_rewritten.append({"path": old["path"], "replaced_by": entry["path"]})
        result.bytes_after = result.bytes_before - sum(s["bytes"] for s in segs) + sum(e["bytes"] for e in adds)
        params = {
            "tombstone_retention_us": retention_us,
            "min_lag_us": lag_us,
            "until_offset": until_offset,
            "now": _instant(now_us),
        }
        info = {k: v for k, v in result.summary().items() if k not in ("dry_run", "commit", "snapshots_rewritten")}
        if result.snapshots_rewritten:  # as a purge's receipt says it: the snapshot a head drop left lives on there
            info["receipt"] = {"snapshots_rewritten": result.snapshots_rewritten}
        commit = store.commit(
            "compact", params, add=adds + [entry for _old, entry in kept_snapshots], remove=removes + stale_snapshots,
            gaps=gaps, info=info,
        )
        result.commit = commit["version"]
        store.sweep()  # the files it replaced, and what a writer killed after its commit left
        if progress:
            progress(3, 3)
    return result


def _untouched_rows(store: Store, con: duckdb.DuckDBPyConnection, snap: dict[str, Any], horizon: int) -> dict[str, Any]:
    """The snapshot a head drop left, rewritten without the rows an event after it and before
    ``horizon`` changes, moves away or truncates (events of aborted transactions change nothing),
    and without its keyless rows, which a compacted log holds none of: its commit entry."""
    from .replay import rewritten_snapshot

    touched = "e.op = 'truncate' OR e.key = s.key OR (e.prev_key IS NOT NULL AND e.prev_key = s.key)"
    rows = con.sql(
        f"SELECT s.* FROM {_snapshot_rows(store, snap)} WHERE s.key IS NOT NULL AND NOT {_changed_after(snap, horizon, touched)}"
    ).to_arrow_table()
    return rewritten_snapshot(store, snap, rows)


def _snapshot_rows(store: Store, snap: dict[str, Any]) -> str:
    """SQL: a snapshot's rows, as ``s``."""
    from .engine import sql_string

    return f"read_parquet({sql_string(str(store.path / snap['path']))}) s"


def _changed_after(snap: dict[str, Any], horizon: int, how: str) -> str:
    """SQL, of a snapshot row ``s``: an event of its entity after the snapshot and before ``horizon``,
    not of an aborted transaction, changes it ``how`` (a condition on the event ``e``)."""
    return f"""EXISTS (SELECT 1 FROM events e WHERE e."offset" > {snap["offset"]} AND e."offset" < {horizon}
                       AND NOT coalesce(e.txn.aborted, FALSE) AND e.entity = s.entity AND ({how}))"""


# --------------------------------------------------------------------------- raw files


def compact_file(
    path: str,
    out: IO[bytes] | None,
    *,
    format: str | None = None,
    mapping: Any = None,
    tombstone_retention: str | int | None = "1d",
    min_lag: str | int | None = None,
    until_offset: int | None = None,
    now: str | dt.datetime | None = None,
    dry_run: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict[str, Any]:
    """Compact a raw JSON-lines or CSV log, streaming, keeping surviving lines byte for byte.

    Records are numbered from 0 in file order, as ingest would number them: ``until_offset``
    and ``min_lag`` protect the head as in a store. A raw line cannot be rewritten, so where a
    key's latest record is partial its survivors are its latest full image and the partial records
    after it (nothing of the row is lost); the records of keys a row moved between are all kept. A
    record that cannot be read is kept as it is. With ``dry_run`` (or ``out`` None) nothing is
    written. Returns what was kept and removed, by reason. ``progress(bytes_read, total)`` is
    called as the file is read (a second time when the output is written).
    """
    from . import engine
    from .errors import InputError
    from .formats import detect, get_format
    from .formats.base import BOM, BadRecord, Mapping, Source, check_fields_seen

    if until_offset is not None and until_offset < 0:
        raise UsageError(f"--until-offset must be 0 or more, not {until_offset}")
    mapping = mapping or Mapping()
    if str(path) == "-":
        raise UsageError("a raw log is read twice: name a file, not stdin", "save the stream to a file first")
    src = Source(path)
    fmt = get_format(format) if format else detect(src, empty_ok=True)
    if fmt.name not in ("jsonl", "csv"):
        raise UsageError(f"raw-file compaction reads JSON lines or CSV, not {fmt.name}", "ingest it into a store and compact that")
    bad: list[BadRecord] = []
    retention_us = parse_duration(tombstone_retention)
    lag_us = parse_duration(min_lag)
    now_us = _now_us(now)
    con = engine.connect()
    con.execute(
        "CREATE TEMP TABLE ev (line BIGINT, ts_us BIGINT, entity VARCHAR, key VARCHAR, prev_key VARCHAR, op VARCHAR, "
        "tomb BOOLEAN, cols VARCHAR[])"
    )
    for batch in fmt.read(src, mapping, bad.append):
        if progress:
            progress(src.bytes_read, src.size)
        b = batch  # noqa: F841 - read by the query
        con.execute(
            # a record without a time is stamped now, as ingest stamps it: a tombstone is kept
            # for the retention (and goes at once with a retention of 0)
            f"""INSERT INTO ev SELECT source.line, coalesce(epoch_us(ts), {now_us}), entity, key, prev_key, op,
                       (op = 'delete' OR data IS NULL),
                       CASE WHEN starts_with(data, '{{') THEN json_keys(data) END FROM b"""
        )
    total = con.execute("SELECT count(*) FROM ev").fetchall()[0][0]
    if con.execute("SELECT count(*) FROM ev WHERE op = 'event'").fetchall()[0][0]:
        raise UsageError(
            "this log holds domain events (an event-sourced log): compacting it would lose history its reducers need",
            f"ingest it and take a snapshot with its reducers instead: `logtool ingest STORE {path} ...; "
            "logtool snapshot STORE --reducer MODULE`",
        )
    if bad and not total:
        first = bad[0]
        raise InputError(first.file, first.line, f"{first.reason} (and every other record: none could be read)",
                         "check the field mapping (--key-field, --ts-field, ...) against the file")  # fmt: skip
    check_fields_seen(src, mapping, total)
    horizon = total if until_offset is None else min(until_offset, total)
    con.execute('CREATE TEMP TABLE recs AS SELECT *, row_number() OVER (ORDER BY line) - 1 AS "offset" FROM ev')
    if lag_us:
        young = con.execute(f'SELECT min("offset") FROM recs WHERE ts_us > {now_us - lag_us}').fetchall()[0][0]
        horizon = horizon if young is None else min(horizon, young)
    expired = f"e.ts_us + {retention_us} <= {now_us}"
    con.execute(
        f"""CREATE TEMP TABLE decided AS
            WITH below AS (SELECT * FROM recs WHERE "offset" < {horizon}),
            resets AS (
                SELECT entity, key, max(line) FILTER (WHERE op IN ('insert', 'read', 'upsert', 'delete') OR tomb) AS r,
                       max(line) AS l
                FROM below WHERE key IS NOT NULL AND op <> 'truncate' GROUP BY entity, key),
            -- an update carrying exactly the full image's columns, in its order, is a full image too
            -- (as replay reads it) while no update before it added a column
            base AS (SELECT k.entity, k.key, k.r, d.cols AS base_cols
                     FROM resets k JOIN below d ON d.entity = k.entity AND d.key = k.key AND d.line = k.r
                     WHERE d.cols IS NOT NULL AND NOT d.tomb),
            whole AS (
                SELECT u.entity, u.key,
                       max(u.line) FILTER (WHERE u.op = 'update' AND u.cols = b.base_cols) AS f,
                       min(u.line) FILTER (WHERE u.cols IS NULL OR NOT list_has_all(b.base_cols, u.cols)) AS w
                FROM below u JOIN base b ON u.entity = b.entity AND u.key = b.key AND u.line > b.r
                GROUP BY u.entity, u.key),
            last_reset AS (
                SELECT k.entity, k.key, k.l,
                       CASE WHEN w.f IS NOT NULL AND w.f < coalesce(w.w, 9223372036854775807) THEN w.f ELSE k.r END AS r
                FROM resets k LEFT JOIN whole w ON w.entity = k.entity AND w.key = k.key),
            trunc AS (SELECT entity, max(line) AS t FROM below WHERE op = 'truncate' GROUP BY entity),
            moved AS (SELECT entity, key FROM below WHERE prev_key <> key
                      UNION SELECT entity, prev_key FROM below WHERE prev_key <> key)
            SELECT e.line, e."offset", e.entity, e.key, e.op, e.ts_us, e.tomb OR e.op = 'truncate' AS tomb, CASE
                WHEN e."offset" >= {horizon} THEN NULL
                WHEN e.op = 'truncate' THEN
                    CASE WHEN e.line < t.t THEN 'superseded' WHEN {expired} THEN 'tombstone expired' END
                WHEN e.key IS NULL THEN 'keyless'
                WHEN e.line < coalesce(t.t, -1) THEN 'superseded'
                WHEN (e.entity, e.key) IN (SELECT (entity, key) FROM moved) THEN NULL
                WHEN e.tomb THEN CASE WHEN e.line < k.l THEN 'superseded' WHEN {expired} THEN 'tombstone expired' END
                WHEN e.line < coalesce(k.r, -1) THEN 'superseded'
            END AS reason
            FROM recs e
            LEFT JOIN last_reset k ON k.entity = e.entity AND k.key = e.key
            LEFT JOIN trunc t ON t.entity = e.entity"""
    )
    removed = dict(con.execute(
        "SELECT reason, count(*) FROM decided WHERE reason IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall())  # fmt: skip
    kept_tombstones = f'FROM decided WHERE reason IS NULL AND tomb AND "offset" < {horizon}'
    tombstones_kept, earliest = con.execute(f"SELECT count(*), min(ts_us) {kept_tombstones}").fetchall()[0]
    bytes_before = src.bytes_read
    kept_share = (total - sum(removed.values())) / total if total else 1.0
    result: dict[str, Any] = {
        "dry_run": dry_run or out is None,
        "protected_from_offset": horizon,
        "records_in": total,
        "records_kept": total - sum(removed.values()),
        "records_removed": sum(removed.values()),
        **{f"removed_{r.replace(' ', '_')}": removed.get(r, 0) for r in REASONS if r != "aborted"},
        "kept_for_key_changes": con.execute(
            f"""SELECT count(*) FROM decided d WHERE d."offset" < {horizon} AND d.reason IS NULL AND d.key IS NOT NULL
                AND (d.entity, d.key) IN (SELECT (entity, key) FROM recs WHERE "offset" < {horizon} AND prev_key <> key
                                          UNION SELECT (entity, prev_key) FROM recs WHERE "offset" < {horizon} AND prev_key <> key)"""
        ).fetchall()[0][0],
        "tombstones_kept": tombstones_kept,
        "earliest_tombstone_expiry": None if earliest is None else _instant(earliest + retention_us),
        "tombstones": [
            {"line": line, "offset": o, "entity": e, "key": k, "op": op, "expires": _instant(t + retention_us)}
            for line, o, e, k, op, t in con.execute(
                f'SELECT line, "offset", entity, key, op, ts_us {kept_tombstones} ORDER BY line LIMIT 100'
            ).fetchall()
        ],
        "bytes_before": bytes_before,
        "bytes_after": int(bytes_before * kept_share),  # estimated on a dry run; counted when written
        "unreadable_kept": len(bad),
        "first_unreadable": f"{bad[0].file}:{bad[0].line}: {bad[0].reason}" if bad else None,
        "keyless_entities": dict(con.execute(
            f"""SELECT entity, count(*) FROM recs WHERE "offset" < {horizon} AND op <> 'truncate'
                GROUP BY entity HAVING count(key) = 0 ORDER BY entity"""
        ).fetchall()),
        "examples": [
            {"line": line, "offset": o, "entity": e, "key": k, "op": op, "reason": r}
            for line, o, e, k, op, r in con.execute(
                'SELECT line, "offset", entity, key, op, reason FROM decided WHERE reason IS NOT NULL ORDER BY line LIMIT 20'
            ).fetchall()
        ],
    }  # fmt: skip
    result["bytes_saved"] = result["bytes_before"] - result["bytes_after"]
    if result["dry_run"]:
        return result
    assert out is not None
    removed_lines = {r[0] for r in con.execute("SELECT line FROM decided WHERE reason IS NOT NULL").fetchall()}
    # A record's lines run up to the next record (a CSV value may hold newlines); a JSON line is one.
    starts = sorted([r[0] for r in con.execute("SELECT line FROM ev").fetchall()] + [b.line for b in bad if b.line])
    drop: set[int] = set()
    import bisect

    for line in removed_lines:
        i = bisect.bisect_right(starts, line)
        drop.update(range(line, starts[i]) if i < len(starts) else [line])
    drop_tail = fmt.name == "csv" and starts and starts[-1] in removed_lines
    first_pass = src.bytes_read
    written = 0
    if src.bom:
        out.write(BOM)  # the file's byte order mark, as it was: the file is kept byte for byte
        written += len(BOM)
    with src.open() as stream:
        for n, raw in enumerate(stream_lines(stream, csv=fmt.name == "csv"), 1):
            if progress and n % 65536 == 0:
                progress(src.bytes_read - first_pass, src.size)
            if n in drop or (drop_tail and n >= starts[-1]):
                continue
            out.write(raw)
            written += len(raw)
    result["bytes_after"] = written
    result["bytes_saved"] = result["bytes_before"] - written
    return result


def stream_lines(stream: IO[bytes], csv: bool = False) -> Iterator[bytes]:
    """Physical lines of a byte stream, with their line endings, in bounded memory: split at \\n,
    or for CSV as its reader splits them (at \\n, \\r\\n or a bare \\r)."""
    import io

    buffered = io.BufferedReader(stream, 1 << 20)  # type: ignore[type-var]
    if csv:
        from .formats.csv import physical_lines

        yield from physical_lines(buffered)
        return
    while True:
        line = buffered.readline()
        if not line:
            return
        yield line
