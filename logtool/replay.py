"""Replay: the state of the log at any offset, moment or source position.

The ``kv`` reducer (the default, for CDC) is DuckDB SQL over the segments: per key, the latest
full image (insert, read, upsert) at or before the target, with the partial updates after it
merged on top; a delete or a null payload removes the key; a truncate empties its entity.
Keys whose history needs more than that — a key change (the row moves, carrying what the event did
not send), a path patch (MongoDB's ``$set``/``$unset``), a keyless table (a multiset of rows), a
number DuckDB would read through float64 — are folded in Python, event by event, exactly.

A state row is ``(entity, key, state)``, ``state`` being the row as JSON text. Its canonical form
is DuckDB's JSON rendering (compact, numbers in shortest form) except for rows holding a number
of 16 or more significant digits, which keep the exact text. The state digest is SHA-256 over
the rows sorted by entity, key and state, each written ``entity 0x1F key 0x1F state 0x1F 0x1E``
(a null key written as 0x00): anyone can recompute it from the output.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import math
import os
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import CodeType, ModuleType
from typing import TYPE_CHECKING, Any

from .engine import json_path, sql_string
from .errors import NotFoundError, ReducerError, UsageError, counted
from .formats.base import (
    RawJSON,
    RawNumber,
    dumps_exact,
    given_key,
    json_string,
    loads_exact,
    parse_ts,
    position_kind,
    position_order,
)
from .formats.mongodb import apply_update, is_update_patch
from .schema import DOMAIN_EVENT, OPEN_ENDED_TRANSACTION_FORMATS, TOMBSTONE_AFTER_ITS_DELETE
from .store import State, Store, file_sha256, names_damage, reads_latest, segment_damage

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

KV_FINGERPRINT = "kv/1"
# A number of 16+ significant digits: DuckDB's JSON functions would read it through float64.
from .typed import LONG_NUMBER  # noqa: E402

RESETS = ("insert", "read", "upsert", "delete")
IS_RESET = f"({{e}}op IN {RESETS} OR {{e}}data IS NULL)"  # SQL: the event sets or removes the whole row
MERGE_PARTITION_DOCS = 1_000_000  # documents per merge pass: bounds the memory a replay needs
MERGE_MAX_COLUMNS = 500  # distinct columns one SQL merge pass takes; a wider entity is folded in Python
MERGES = ("update", "patch")
Progress = Callable[[int, int | None], None]


# --------------------------------------------------------------------------- results


@dataclass
class ReplayResult:
    """The state at a target: rows, digest, and what was known about how it was reached."""

    state: pa.Table  # entity, key, state (JSON text), sorted
    digest: str
    offset: int | None  # the last offset the state includes (None: no event)
    events: int  # events applied (after the snapshot, if one was used)
    snapshot: int | None = None  # offset of the snapshot replay started from
    reducer: str = KV_FINGERPRINT
    warnings: list[str] = field(default_factory=list)
    typed_states: pa.Table | None = None  # Python reducers: states in the encoding snapshots keep

    def tables(self) -> dict[str, pa.Table]:
        """One typed table per entity: the key, then the row's columns (types inferred)."""
        from .typed import typed_tables

        return typed_tables(self.state)

    def summary(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "rows": self.state.num_rows,
            "digest": self.digest,
            "events_applied": self.events,
            "snapshot": self.snapshot,
            "reducer": self.reducer,
        }


# --------------------------------------------------------------------------- target


@dataclass
class _Target:
    condition: str  # SQL predicate over events: which events the state includes
    description: str
    prefix_end: int | None  # all events <= this offset satisfy the condition (snapshots usable)
    last: int | None  # the largest offset that satisfies the condition
    upto: int | None = None  # the offset asked for (--at-offset), else ``last``
    by: str = "head"  # head, offset, time or position
    time_us: int | None = None  # --at-time, in microseconds
    note: str | None = None  # how the target was read, where the user should know


def _resolve_target(
    con: duckdb.DuckDBPyConnection,
    at_offset: int | None,
    at_time: str | dt.datetime | None,
    at_position: str | None,
) -> _Target:
    note = None
    given = [x is not None for x in (at_offset, at_time, at_position)]
    if sum(given) > 1:
        raise UsageError("give at most one of --at-offset, --at-time, --at-position")
    if at_offset is not None:
        if at_offset < 0:
            raise UsageError(f"--at-offset must be 0 or more, not {at_offset}")
        cond, what = f'"offset" <= {int(at_offset)}', f"offset {at_offset}"
        cond, note, start = _whole_transactions(con, cond, at_offset, f"offset {at_offset}")
        if start is not None:
            at_offset = start - 1  # the prefix every later event keeps (where a snapshot may serve)
    elif at_time is not None:
        try:
            micros = parse_ts(at_time.isoformat() if isinstance(at_time, dt.datetime) else at_time)
        except ValueError:
            raise UsageError(f"--at-time: cannot read {at_time!r} as a time", "write e.g. 2026-03-01T14:03:00Z") from None
        # The longest prefix of the log whose events are all stamped at or before T.
        first_after = con.execute(f'SELECT min("offset") FROM events WHERE epoch_us(ts) > {micros}').fetchall()[0][0]
        cond = "TRUE" if first_after is None else f'"offset" < {first_after}'
        what = f"time {at_time}"
        if first_after is not None:  # a transaction whose events are stamped on both sides of T
            cond, note, _start = _whole_transactions(con, cond, first_after - 1, f"time {at_time}")
    elif at_position is not None:
        order = sql_string(_position_order_like_the_store(con, at_position))
        # A change is in the state when its transaction committed at or before the position. A
        # transaction whose commit position the source did not give (Debezium's PostgreSQL txId,
        # Maxwell's xid) commits after its last change: it is in where all its changes are.
        # (The condition reads only the events view: other connections evaluate it too.)
        whole = (
            "SELECT txn.id FROM events WHERE txn.id IS NOT NULL AND txn.position_order IS NULL "
            f"GROUP BY txn.id HAVING bool_and(source.position_order <= {order})"
        )
        cond = (
            f"CASE WHEN txn.position_order IS NOT NULL THEN txn.position_order <= {order} "
            f"WHEN txn.id IS NOT NULL THEN txn.id IN ({whole}) "
            f"ELSE source.position_order <= {order} END"
        )
        what = f"position {at_position}"
    else:
        cond, what = "TRUE", "head"
    last, first_excluded = con.execute(
        f'SELECT max("offset") FILTER (WHERE {cond}), min("offset") FILTER (WHERE NOT ({cond})) FROM events'
    ).fetchall()[0]
    prefix_end = (first_excluded - 1) if first_excluded is not None else last
    by = next(name for name, v in (("offset", at_offset), ("time", at_time), ("position", at_position), ("head", 0))
              if v is not None)  # fmt: skip
    time_us = micros if at_time is not None else None
    return _Target(cond, what, prefix_end, last, at_offset if at_offset is not None else last, by, time_us, note)


def _whole_transactions(
    con: duckdb.DuckDBPyConnection, cond: str, last: int, target: str
) -> tuple[str, str | None, int | None]:
    """``cond`` (the events up to offset ``last``) without the transactions that go on after
    ``last``: they commit after it, so none of their events is in. Returns the condition, a note
    saying so (None where no transaction is cut) and the first offset of those transactions."""
    cut, start = _spanning_transactions(con, last)
    if start is None:
        return cond, None, None
    one = len(cut) == 1
    listing = "[" + ", ".join(sql_string(t) for t in cut) + "]"
    note = (f"{target} is inside {'a transaction that goes' if one else 'transactions that go'} on after it "
            f"(from offset {start}): the state leaves {'it' if one else 'them'} out whole, "
            f"as before {'it' if one else 'they'} committed")  # fmt: skip
    return f"{cond} AND NOT coalesce(list_contains({listing}, txn.id), FALSE)", note, start


def _within_the_store(target: _Target, next_offset: int, con: duckdb.DuckDBPyConnection) -> _Target:
    """A target read against the store's offsets, not only the events still in it: events a purge
    or compaction removed leave offsets without events, and a snapshot may hold their state.

    The head and an offset are prefixes of the store's offsets whatever events are left. A time
    or position that no remaining event satisfies lies before them: no snapshot is known to be
    within it, and where events were removed before the first remaining one its state is unknown."""
    head = next_offset - 1 if next_offset > 0 else None
    if target.by == "head":
        target.prefix_end = target.last = target.upto = head
    elif target.by == "offset":
        target.prefix_end = None if head is None or target.upto is None else min(target.upto, head)
    elif target.last is None:
        target.prefix_end = None
        first = con.execute('SELECT min("offset") FROM events').fetchall()[0][0]
        target.upto = (first if first is not None else next_offset) - 1
    return target


def _position_order_like_the_store(con: duckdb.DuckDBPyConnection, position: str) -> str:
    """The sort key of a position given by a user, computed as the store's positions of its kind
    were: an LSN's two hex halves, or zero-padded numbers (Kafka's ``0/5`` reads like an LSN but is
    not one). A position of no kind the store holds is refused rather than compared."""
    positions = "coalesce(txn.position, source.position)"
    orders = "coalesce(txn.position_order, source.position_order)"
    sample = con.execute(f"SELECT {positions}, {orders} FROM events WHERE {orders} IS NOT NULL LIMIT 1").fetchall()
    if not sample:
        raise UsageError("this store's events carry no source positions", "use --at-offset or --at-time")
    # what the text can be: an LSN (if it reads as one), and a position of its digits' shape --
    # but not Kafka's partition/offset where it has hex digits (0/16B3748 is an LSN's)
    readings = {position_kind(position, lsn): position_order(position, lsn) for lsn in (True, False)}
    if not position.strip().replace("/", "").isdecimal():
        readings.pop("0/0", None)

    def kind(stored: str, order: str) -> str:  # an LSN only where it was stored as one
        return position_kind(stored, lsn=order == position_order(stored))

    kinds = {kind(*sample[0])}
    if not readings.keys() & kinds:  # a store may hold several kinds (several formats ingested)
        query = f"SELECT DISTINCT {positions}, {orders} FROM events WHERE {orders} IS NOT NULL"
        kinds = {kind(p, o) for p, o in con.execute(query).fetchall()}
    found = next((k for k in readings if k in kinds), None)
    if found is None:
        raise UsageError(
            f"--at-position: {position!r} is not a position of the kind this store holds", f"write one like {sample[0][0]!r}"
        )
    if found == position_kind("0/0", lsn=False):
        _one_kafka_partition(con)
    return readings[found] or ""


def _one_kafka_partition(con: duckdb.DuckDBPyConnection) -> None:
    """Refuse a Kafka position where the store's Kafka records come from several topic-partitions:
    ``partition/offset`` orders the records of one partition, and none against another's, so a
    position there is no point in the whole log (partition 0 would all sort before partition 1,
    and a transaction spread over partitions be cut)."""
    found = con.execute(
        "SELECT DISTINCT coalesce(json_extract_string(meta, '$.kafka.topic'), '?') AS topic, "
        "split_part(source.position, '/', 1) AS part FROM events "
        "WHERE source.format = 'kcat' AND source.position IS NOT NULL ORDER BY topic, part LIMIT 3"
    ).fetchall()
    if len(found) > 1:
        some = ", ".join(f"{topic} partition {part}" for topic, part in found[:2]) + (", ..." if len(found) > 2 else "")
        raise UsageError(
            f"--at-position: this store's Kafka records come from several topic-partitions ({some}), and a "
            "partition/offset orders the records of one partition only: no such position is a point of the whole log",
            "use --at-time or --at-offset (a Debezium event's own position, its LSN or binlog position, is in its "
            "meta.source)",
        )


# --------------------------------------------------------------------------- entry point


@reads_latest
def replay(
    path: str | Path,
    *,
    at_offset: int | None = None,
    at_time: str | dt.datetime | None = None,
    at_position: str | None = None,
    entity: str | None = None,
    key: str | None = None,
    reducer: str | ReducerModule | None = None,
    use_snapshots: bool = True,
    progress: Progress | None = None,
) -> ReplayResult:
    """The state of a store at a target (default: the head), optionally of one entity or key.

    ``reducer`` names a Python module (file path or importable name) for an event-sourced log, or
    is one :func:`load_reducer` loaded; without it the ``kv`` reducer applies. Replay starts from
    the nearest valid snapshot at or below the target.
    """
    import pyarrow as pa

    from . import engine

    store = Store.open(path)
    st = store.state()
    key = None if key is None else given_key(key)
    con = engine.connect()
    store.events_view(con, files=store.segment_files(st))
    target = _within_the_store(_resolve_target(con, at_offset, at_time, at_position), st.next_offset, con)
    module = reducer if isinstance(reducer, ReducerModule) else load_reducer(reducer) if reducer else None
    fingerprint = module.fingerprint if module else KV_FINGERPRINT
    warnings: list[str] = [target.note] if target.note else []
    if lost := store.lost_head():  # (the log as it stands: the state before that commit, which may hold more)
        warnings.append(f"{lost}: this replay reads the log as it stands")
    if target.by == "offset" and target.upto is not None and target.upto >= st.next_offset:
        warnings.append(
            f"offset {target.upto} is past the end of the log (its last offset is {st.next_offset - 1}): "
            "this is the state at the head"
        )
    snap = _pick_snapshot(st, target, fingerprint, warnings) if use_snapshots else None
    warnings += _rewritten_warnings(store, target, snap["offset"] if snap else None)
    base_offset = snap["offset"] if snap else -1
    if snap:
        snap_file = store.path / snap["path"]
        if snap_file.exists() and snap.get("bytes") is not None and snap_file.stat().st_size != snap["bytes"]:
            raise segment_damage(str(snap_file), f"{counted(snap_file.stat().st_size, 'byte')} where its commit recorded {snap['bytes']}")
        con.execute(f"CREATE TEMP VIEW snap AS SELECT * FROM read_parquet({sql_string(str(snap_file))})")
    else:
        con.execute("CREATE TEMP VIEW snap AS SELECT NULL::VARCHAR AS entity, NULL::VARCHAR AS key, NULL::VARCHAR AS state WHERE FALSE")
    filters = [f"({target.condition})", f'"offset" > {base_offset}']
    snap_filters = ["TRUE"]
    if entity is not None:
        named = f"entity = {sql_string(entity)}"
        if not con.execute(f"SELECT 1 FROM events WHERE {named} UNION ALL SELECT 1 FROM snap WHERE {named} LIMIT 1").fetchall():
            known = [e for (e,) in con.execute("SELECT DISTINCT entity FROM events ORDER BY 1 LIMIT 21").fetchall()]
            raise NotFoundError(
                f"entity {entity!r} has no events in this store",
                f"its entities: {', '.join(map(repr, known[:20]))}{', ...' if len(known) > 20 else ''}",
            )
        filters.append(named)
        snap_filters.append(named)
    if key is not None:
        key = key_as_stored(con, key, entity)
        # the whole prefix, not only the events after the snapshot: the row may sit in the snapshot
        pairs = _key_family(con, key, " AND ".join(f for f in filters if not f.startswith('"offset" >')))
        # a row whose events a head-dropping purge removed lives on in the snapshot taken there
        pairs |= {(e, key) for (e,) in con.execute(
            f"SELECT DISTINCT entity FROM snap WHERE {' AND '.join(snap_filters)} AND key = {sql_string(key)}"
        ).fetchall()}  # fmt: skip
        listing = "[" + ", ".join(f"{{'e': {sql_string(e)}, 'k': {sql_string(k)}}}" for e, k in sorted(pairs)) + "]"
        # the row's earlier keys, the events that moved it away, and its entity's truncates
        filters.append(
            f"(list_contains({listing}, {{'e': entity, 'k': key}}) OR list_contains({listing}, {{'e': entity, 'k': prev_key}})"
            f" OR (op = 'truncate' AND list_contains({listing}.list_transform(lambda p: p.e), entity)))"
        )
        snap_filters.append(f"list_contains({listing}, {{'e': entity, 'k': key}})")
    con.execute(f"CREATE TEMP VIEW ev AS SELECT * FROM events WHERE {' AND '.join(filters)}")
    con.execute(f"CREATE TEMP VIEW base AS SELECT * FROM snap WHERE {' AND '.join(snap_filters)}")
    applied = con.execute("SELECT count(*) FROM ev").fetchall()[0][0]
    typed_states = None
    if module:
        state, typed_states = _replay_python(con, module, progress)
    else:
        if con.execute(f"SELECT 1 FROM ev WHERE {DOMAIN_EVENT} LIMIT 1").fetchall():
            warnings.append(
                "this log holds domain events (an event-sourced log): the kv reducer leaves them out of the state; "
                "pass --reducer MODULE to apply them"
            )
        state = _replay_kv(con, progress, warnings)
    if key is not None:
        import pyarrow.compute as pc

        state = state.filter(pc.equal(state.column("key"), pa.scalar(key, pa.string())))
    if key is not None and state.num_rows == 0:
        keyless = None if pairs else keyless_reason(con, entity)
        if keyless:
            raise NotFoundError(f"key {key!r} has no state at {target.description}: {keyless[0]}", keyless[1])
        raise NotFoundError(f"key {key!r} has no state at {target.description}",
                            warnings[-1] if warnings else "check the key, or see `logtool history`")  # fmt: skip
    last = target.last
    if snap and (last is None or snap["offset"] > last):  # the head was dropped: the snapshot holds it
        last = snap["offset"]
    return ReplayResult(
        state=state,
        digest=state_digest(state),
        offset=last,
        events=applied,
        snapshot=snap["offset"] if snap else None,
        reducer=fingerprint,
        warnings=warnings,
        typed_states=typed_states,
    )


def key_as_stored(con: duckdb.DuckDBPyConnection, key: str, entity: str | None) -> str:
    """A composite key with its members in the order the store writes them.

    The store writes a composite key's members in the order its key fields were named
    (``{"order_id":1,"line":2}``); a user who writes ``{"line":2,"order_id":1}`` means the same
    row, and would otherwise be told it has no state. A key the log holds as written, or whose
    members no stored key has in another order, is kept as it is.
    """
    if not key.startswith("{"):
        return key
    try:
        value = loads_exact(key)
    except ValueError:
        return key
    if not isinstance(value, dict):
        return key
    where = "TRUE" if entity is None else f"entity = {sql_string(entity)}"
    if con.execute(f"SELECT 1 FROM events WHERE {where} AND key = {sql_string(key)} LIMIT 1").fetchall():
        return key
    orders = {tuple(names) for (names,) in con.execute(
        f"SELECT DISTINCT json_keys(key) FROM events WHERE {where} AND key LIKE '{{%' AND json_valid(key)"
    ).fetchall()}  # fmt: skip
    found = [names for names in orders if len(names) == len(value) and set(names) == set(value)]
    if len(found) != 1:
        return key
    return dumps_exact({name: value[name] for name in found[0]})


def _key_family(con: duckdb.DuckDBPyConnection, key: str, condition: str) -> set[tuple[str, str]]:
    """(entity, key) of a key and of every earlier key its row was moved from, entity by entity."""
    family = {(e,) + (key,) for (e,) in con.execute(
        f"SELECT DISTINCT entity FROM events WHERE {condition} AND (key = {sql_string(key)} OR prev_key = {sql_string(key)})"
    ).fetchall()}
    moves = con.execute(
        f"SELECT DISTINCT entity, prev_key, key FROM events WHERE {condition} AND prev_key IS NOT NULL AND prev_key <> key"
    ).fetchall()
    grew = True
    while grew:
        grew = False
        for ent, old, new in moves:
            if (ent, new) in family and (ent, old) not in family:
                family.add((ent, old))
                grew = True
    return family


def _rewritten_warnings(store: Store, target: _Target, snapshot_offset: int | None) -> list[str]:
    """Say where compaction or purge removed events the target would include."""
    out = []
    for c in store.commits():
        info = c.get("info") or {}
        if c["operation"] == "compact" and (info.get("receipt") or {}).get("snapshots_rewritten"):
            # it kept a head drop's snapshot without the rows its compacted range changed: from that
            # snapshot, only a target at or after its compaction point is exact
            point = info.get("protected_from_offset")
            if (snapshot_offset is not None and point is not None and snapshot_offset < point - 1
                    and target.upto is not None and target.upto < point - 1):  # fmt: skip
                out.append(
                    f"replay starts from the snapshot at offset {snapshot_offset}, below the point of compact (commit "
                    f"{c['version']}), which kept the snapshot a head drop left without the rows changed before offset "
                    f"{point}: the state at {target.description} cannot be known exactly"
                )
                continue
        if c["operation"] not in ("compact", "purge") or not c.get("gaps"):
            continue
        first_removed = min(a for a, _b in c["gaps"])
        removed_upto = max(b for _a, b in c["gaps"])
        if target.upto is None or first_removed > target.upto:
            continue
        if c["operation"] == "compact":
            # a compacted log replays exactly at and after its compaction point (the last offset
            # it could clean), whatever it removed below
            point = c.get("info", {}).get("protected_from_offset")
            latest = c.get("info", {}).get("latest_removed_time")
            # A time target's prefix ends at the first event stamped after it: where compaction
            # removed such an event (stamps out of order), the prefix now runs past it.
            past = latest not in (None, "never") and target.time_us is not None and parse_ts(latest) > target.time_us
            if target.upto >= (removed_upto if point is None else point - 1) and not past:
                continue
        cut = c.get("params", {}).get("before_offset")
        params = c.get("params", {})
        if c["operation"] == "purge" and cut is None and params.get("rows_whole", params.get("by") == ["entity"]):
            # rows purged whole (whole entities, or keys whose rows moved on to no other key): the
            # log is as if they had never been written, and so is every state replayed from it
            continue
        if cut is not None and snapshot_offset is not None and snapshot_offset >= min(cut, removed_upto + 1) - 1:
            continue  # a dropped head: the snapshot stored at the cut holds the state it built
        out.append(
            f"events up to offset {removed_upto} were removed by {c['operation']} (commit {c['version']}): "
            f"the state at {target.description} cannot be known exactly"
        )
    return out


def _pick_snapshot(st: State, target: _Target, fingerprint: str, warnings: list[str]) -> dict[str, Any] | None:
    if target.prefix_end is None:
        return None
    best = None
    others = []
    for s in st.of_kind("snapshot"):
        if s["offset"] > target.prefix_end:
            continue
        if s.get("reducer") != fingerprint:
            others.append(s)
            continue
        if best is None or s["offset"] > best["offset"]:
            best = s
    # said only of one the replay would have started from: one at or below the snapshot it starts
    # from was of no use to it, whoever took it (a head drop stores the kv reducer's beside yours)
    for s in others:
        if best is None or s["offset"] > best["offset"]:
            warnings.append(f"snapshot at offset {s['offset']} was taken with another reducer ({s.get('reducer')}); ignored")
    return best


# --------------------------------------------------------------------------- kv, vectorized


def _replay_kv(con: duckdb.DuckDBPyConnection, progress: Progress | None, warnings: list[str]) -> pa.Table:
    import pyarrow as pa

    # Entities truncated in the window: their earlier events and snapshot rows do not count.
    con.execute(
        "CREATE TEMP TABLE trunc AS SELECT entity, max(\"offset\") AS t FROM ev "
        "WHERE op = 'truncate' AND NOT coalesce(txn.aborted, FALSE) GROUP BY entity"
    )
    # The truncates (a few entities at most) go into the view as constants: a join with the table
    # would cost a hash join over every event, and DuckDB 2.0.1 answers EXISTS over a LEFT JOIN with
    # an empty table wrongly (false where rows exist).
    truncated = con.execute("SELECT entity, t FROM trunc ORDER BY entity").fetchall()
    after_truncate = (
        "e.\"offset\" > CASE e.entity " + " ".join(f"WHEN {sql_string(ent)} THEN {t}" for ent, t in truncated) + " ELSE -1 END"
        if truncated else "TRUE"
    )  # fmt: skip
    con.execute(
        f"""CREATE TEMP VIEW live AS
            SELECT e.* FROM ev e
            WHERE e.op NOT IN ('truncate', 'event') AND NOT coalesce(e.txn.aborted, FALSE) AND {after_truncate}"""
    )
    con.execute(
        """CREATE TEMP VIEW base_live AS
           SELECT b.* FROM base b WHERE b.entity NOT IN (SELECT entity FROM trunc)"""
    )
    # Rows that need the exact, ordered Python fold.
    moved = con.execute(
        "SELECT DISTINCT entity, prev_key, key FROM live WHERE prev_key IS NOT NULL AND prev_key <> key"
    ).fetchall()
    families = _families(moved)
    con.execute("CREATE TEMP TABLE slow_keys (entity VARCHAR, key VARCHAR)")
    if families:
        con.executemany("INSERT INTO slow_keys VALUES (?, ?)", [(e, k) for (e, k) in families])
    if progress:
        progress(1, 4)
    con.execute(
        f"""CREATE TEMP TABLE agg AS
            SELECT entity, key,
                   max("offset") FILTER (WHERE is_reset) AS r,
                   arg_max_null(CASE WHEN op = 'delete' THEN NULL ELSE data END, "offset") FILTER (WHERE is_reset) AS rdata,
                   max("offset") AS last, bool_or(op = 'patch') AS patched
            FROM (SELECT "offset", entity, key, op, data,
                         {IS_RESET.format(e="")} AS is_reset
                  FROM live WHERE key IS NOT NULL
                  AND (entity, key) NOT IN (SELECT (entity, key) FROM slow_keys))
            GROUP BY entity, key"""
    )
    if progress:
        progress(2, 4)
    # Keys whose latest event is a partial update start from a base: their last full image, the
    # snapshot's row, or nothing. A document the SQL merge cannot take sends its key to the fold.
    con.execute(
        f"""CREATE TEMP TABLE bases AS
            SELECT entity, key, r, d, cols, {_unmergeable("d", "cols")} OR len(cols) <> len(list_distinct(cols)) AS slow,
                   unknown
            FROM (SELECT a.entity, a.key, a.r, d, {_members("d")} AS cols, unknown
                  FROM (SELECT a.*, coalesce(a.rdata, CASE WHEN a.r IS NULL THEN b.state END, '{{}}') AS d,
                               a.patched AND a.r IS NULL AND b.state IS NULL AS unknown
                        FROM agg a LEFT JOIN base_live b ON b.entity = a.entity AND b.key = a.key
                        WHERE a.last IS DISTINCT FROM a.r) a)"""
    )
    # Rows patched with no full image (nor snapshot row) before: the log began after they were
    # written (a change stream opened on a live collection), and their other columns are unknown.
    unknown = con.execute(
        "SELECT count(*), arg_min(entity, [entity, key]), arg_min(key, [entity, key]) FROM bases WHERE unknown"
    ).fetchall()[0]
    if unknown[0]:
        warnings.append(
            f"{counted(unknown[0], 'row')} {'was' if unknown[0] == 1 else 'were'} built from partial updates with no "
            f"full image before {'it' if unknown[0] == 1 else 'them'} (e.g. {unknown[1]} key {unknown[2]}): the log "
            f"begins after {'it was' if unknown[0] == 1 else 'they were'} written, and "
            f"{'its' if unknown[0] == 1 else 'their'} other columns are unknown"
        )
    # An update carrying exactly the base's columns, in the base's order, replaces the whole row
    # when no update before it added a column: the merge can start there. (No event after a key's
    # last reset is a reset: saying so drops the resets before the join, not after it.)
    con.execute(
        f"""CREATE TEMP TABLE updates AS
            SELECT entity, key, o, d, cols, {_unmergeable("d", "cols")} AS slow, cols = base_cols AS whole,
                   CASE WHEN cols = base_cols THEN FALSE ELSE NOT list_has_all(base_cols, cols) END AS widens
            FROM (SELECT e.entity, e.key, e."offset" AS o, e.data AS d, b.cols AS base_cols,
                         {_members("e.data")} AS cols
                  FROM bases b JOIN live e ON e.entity = b.entity AND e.key = b.key AND e."offset" > coalesce(b.r, -1)
                  WHERE NOT {IS_RESET.format(e="e.")})"""
    )
    con.execute(
        """INSERT INTO slow_keys SELECT entity, key FROM bases WHERE slow
           UNION SELECT entity, key FROM updates WHERE slow"""
    )
    con.execute(
        """CREATE TEMP TABLE starts AS
           SELECT entity, key, max(o) AS last, count(*) AS n,
                  CASE WHEN max(o) FILTER (WHERE whole) < coalesce(min(o) FILTER (WHERE widens), 9223372036854775807)
                       THEN max(o) FILTER (WHERE whole) ELSE -1 END AS start
           FROM updates WHERE (entity, key) NOT IN (SELECT (entity, key) FROM slow_keys)
           GROUP BY entity, key"""
    )
    # A table, not a view: the check below and every merge pass read it, and each read of a view
    # would join its parts again.
    con.execute(
        """CREATE TEMP TABLE docs AS
           SELECT b.entity, b.key, -1::BIGINT AS o, b.d, b.cols FROM bases b JOIN starts s USING (entity, key)
           WHERE s.start = -1
           UNION ALL
           SELECT u.entity, u.key, u.o, u.d, u.cols FROM updates u JOIN starts s USING (entity, key)
           WHERE u.o >= s.start AND s.start < s.last"""
    )
    # A merged row's columns in the order they first appeared: the base's, then those updates added.
    con.execute(
        """CREATE TEMP TABLE orders AS
           SELECT entity, key, CASE WHEN added IS NULL THEN cols
                                    ELSE list_filter(cols || added, lambda c, i: list_position(cols || added, c) = i) END AS names
           FROM (SELECT b.entity, b.key, b.cols, w.added
                 FROM bases b JOIN starts s USING (entity, key)
                 LEFT JOIN (SELECT entity, key, flatten(list(cols ORDER BY o)) AS added FROM updates
                            WHERE widens GROUP BY entity, key) w USING (entity, key)
                 WHERE s.start < s.last)"""
    )
    # A number DuckDB would read through float64, or a member repeated, in a document the merge
    # reads: the key is folded.
    con.execute(
        f"""INSERT INTO slow_keys SELECT DISTINCT entity, key FROM docs
            WHERE regexp_matches(d, '{LONG_NUMBER}') OR len(cols) <> len(list_distinct(cols));
            DELETE FROM orders WHERE (entity, key) IN (SELECT (entity, key) FROM slow_keys)"""
    )
    if progress:
        progress(3, 4)
    # Per entity, its merged keys' columns, and how many documents they have at most (to size passes).
    entities = con.execute(
        """SELECT entity, sum(n)::BIGINT, list_sort(list_distinct(flatten(list(names))))
           FROM (SELECT o.entity, o.names, sum(s.n + 1) AS n FROM orders o JOIN starts s USING (entity, key)
                 GROUP BY o.entity, o.names)
           GROUP BY entity ORDER BY entity"""
    ).fetchall()
    # An entity with more distinct columns than one aggregation should carry is left to the fold.
    for ent, _docs, names in entities:
        if len(names) > MERGE_MAX_COLUMNS:
            con.execute(f"INSERT INTO slow_keys SELECT entity, key FROM orders WHERE entity = {sql_string(ent)}")
    narrow = [e for e in entities if len(e[2]) <= MERGE_MAX_COLUMNS]
    merged_parts = [_merge(con, group, names, docs) for group, names, docs in _merge_groups(narrow)]
    rest = con.sql(
        """
        WITH whole AS (
            SELECT entity, key, rdata AS state FROM agg WHERE last = r AND rdata IS NOT NULL
            UNION ALL
            SELECT u.entity, u.key, u.d FROM updates u JOIN starts s USING (entity, key)
            WHERE s.start = s.last AND u.o = s.last
        ), untouched AS (
            SELECT b.entity, b.key, b.state, TRUE AS canonical FROM base_live b
            WHERE b.key IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM agg a WHERE a.entity = b.entity AND a.key = b.key)
              AND (b.entity, b.key) NOT IN (SELECT (entity, key) FROM slow_keys)
        )
        SELECT *, FALSE AS canonical FROM whole UNION ALL SELECT * FROM untouched
        """
    ).to_arrow_table()
    fast = pa.concat_tables([rest, *(m.cast(rest.schema) for m in merged_parts)])
    slow = _fold_slow(con, warnings)
    if progress:
        progress(4, 4)
    if slow.num_rows:
        slow = slow.append_column("canonical", pa.array([False] * slow.num_rows))
        fast = pa.concat_tables([fast, slow.cast(fast.schema)])
    return canonical_state(con, fast)


def _merge(con: duckdb.DuckDBPyConnection, entities: list[str], names: list[str], docs: int) -> pa.Table:
    """The merged rows of the keys in ``orders`` of some entities, from their documents in ``docs``.

    Column by column: each column takes its value from the latest document that carries it (a
    JSON null is a value); one parse of each document extracts every column. Keys are merged in
    partitions sized to their documents, so memory stays bounded on any log.
    """
    import pyarrow as pa

    which = "(" + ", ".join(sql_string(e) for e in entities) + ")"
    if not names:
        return con.sql(
            f"SELECT entity, key, '{{}}' AS state, FALSE AS canonical FROM orders WHERE entity IN {which}"
        ).to_arrow_table()
    columns = "[" + ", ".join(sql_string(n) for n in names) + "]"
    paths = "[" + ", ".join(json_path(n) for n in names) + "]"
    latest = ", ".join(f"arg_max(vs[{i}], o) FILTER (WHERE vs[{i}] IS NOT NULL)" for i in range(1, len(names) + 1))
    parts = max(1, -(-docs // MERGE_PARTITION_DOCS))
    tables = []
    for part in range(parts):
        # MATERIALIZED: each document is parsed once, not once for each use of its values
        tables.append(con.sql(
            f"""WITH x AS MATERIALIZED (
                    SELECT entity, key, o, json_extract(d, {paths}) AS vs FROM docs
                    WHERE entity IN {which} AND hash(entity, key) % {parts} = {part}
                ), v AS (SELECT entity, key, [{latest}] AS vals FROM x GROUP BY entity, key)
                SELECT o.entity, o.key,
                       coalesce(to_json(map_from_entries(list_transform(o.names,
                           lambda c: {{'key': c, 'value': v.vals[list_position({columns}, c)]}})))::VARCHAR, '{{}}') AS state,
                       TRUE AS canonical  -- rendered by DuckDB from parsed values: canonical already
                FROM v JOIN orders o ON o.entity = v.entity AND o.key = v.key"""
        ).to_arrow_table())
    return pa.concat_tables(tables)


def _merge_groups(entities: list[tuple[str, int, list[str]]]) -> Iterator[tuple[list[str], list[str], int]]:
    """Entities (name, documents, columns) packed into merge groups of at most MERGE_MAX_COLUMNS
    columns in all: entities sharing columns share a pass."""
    group: list[str] = []
    names: dict[str, None] = {}
    docs = 0
    for entity, count, cols in sorted(entities, key=lambda e: e[2]):
        wider = names | dict.fromkeys(cols)
        if group and len(wider) > MERGE_MAX_COLUMNS:
            yield group, list(names), docs
            group, names, docs, wider = [], {}, 0, dict.fromkeys(cols)
        group.append(entity)
        names = wider
        docs += count
    if group:
        yield group, list(names), docs


def _is_object(doc: str) -> str:
    return f"regexp_matches({doc}, '^\\s*\\{{')"


def _members(doc: str) -> str:
    """SQL: the member names of a JSON object document, in order (NULL if it is not an object)."""
    return f"CASE WHEN {_is_object(doc)} THEN json_keys({doc}) END"


def _unmergeable(doc: str, cols: str) -> str:
    """SQL: the JSON document is not an object or is a path patch."""
    return f"(NOT {_is_object(doc)} OR coalesce(starts_with({cols}[1], '$'), FALSE))"


def _families(moves: list[tuple[str, str, str]]) -> set[tuple[str, str]]:
    """Every (entity, key) connected to a key change."""
    out: set[tuple[str, str]] = set()
    for ent, old, new in moves:
        out.add((ent, old))
        out.add((ent, new))
    return out


def _fold_slow(con: duckdb.DuckDBPyConnection, warnings: list[str]) -> pa.Table:
    """The exact Python fold for keys needing it, and for keyless entities."""
    import pyarrow as pa

    keyed = con.execute(
        """SELECT entity, key, state FROM base_live
           WHERE (entity, key) IN (SELECT (entity, key) FROM slow_keys)"""
    ).fetchall()
    keyless_base = con.execute("SELECT entity, state FROM base_live WHERE key IS NULL").fetchall()
    if not keyed and not keyless_base and not con.execute(
        "SELECT 1 FROM slow_keys UNION ALL (SELECT 1 FROM live WHERE key IS NULL LIMIT 1) LIMIT 1"
    ).fetchall():
        return pa.table({"entity": [], "key": [], "state": []}, schema=_state_schema())  # nothing to fold
    events = con.sql(
        """SELECT "offset", entity, key, prev_key, op, data, before, txn.id AS txid FROM live
           WHERE (key IS NULL) OR (entity, key) IN (SELECT (entity, key) FROM slow_keys)
              OR (entity, prev_key) IN (SELECT (entity, key) FROM slow_keys)
           ORDER BY "offset" """
    ).to_arrow_reader(65536)
    fold = KvFold()
    for ent, k, s in keyed:
        fold.rows[(ent, k)] = loads_exact(s)
    for ent, s in keyless_base:
        fold.multisets.setdefault(ent, []).append(loads_exact(s))
    for batch in events:
        for ev in batch.to_pylist():
            fold.apply(ev)
    warnings += fold.warnings
    entities: list[str] = []
    keys: list[str | None] = []
    states: list[str] = []
    for (ent, k), row in fold.rows.items():
        entities.append(ent)
        keys.append(k)
        states.append(dumps_exact(row))
    for ent, rows in fold.multisets.items():
        for row in rows:
            entities.append(ent)
            keys.append(None)
            states.append(dumps_exact(row))
    return pa.table({"entity": entities, "key": keys, "state": states}, schema=_state_schema())


def _state_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema([("entity", pa.string()), ("key", pa.string()), ("state", pa.string())])


def canonical_state(con: duckdb.DuckDBPyConnection, table: pa.Table) -> pa.Table:
    """States in canonical form (see the module doc), sorted by entity, key, state. Rows flagged
    ``canonical`` (a snapshot's, already in that form) are taken as they are."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if "canonical" not in table.column_names:
        table = table.append_column("canonical", pa.array([False] * table.num_rows))
    table = table.set_column(table.schema.get_field_index("canonical"), "canonical",
                             pc.fill_null(table.column("canonical").cast(pa.bool_()), False))  # fmt: skip
    long_rows = pc.and_(pc.match_substring_regex(table.column("state"), LONG_NUMBER), pc.invert(table.column("canonical")))
    if pc.any(long_rows).as_py():
        # DuckDB would read their long numbers through float64: those rows (only they) go through
        # DuckDB's rendering with each long number as a placeholder string, then get the exact
        # text back; every other value takes the form it takes in any row, however it was reached.
        token = secrets.token_hex(8)
        numbers: dict[str, str] = {}

        def hide(value: Any) -> Any:
            if isinstance(value, RawNumber | int) and not isinstance(value, bool) and re.search(LONG_NUMBER, str(value)):
                numbers[f"{token}:{len(numbers)}"] = str(value)
                return f"{token}:{len(numbers) - 1}"
            if isinstance(value, dict):
                return {k: hide(v) for k, v in value.items()}
            if isinstance(value, list):
                return [hide(v) for v in value]
            return value

        longs = table.filter(long_rows)
        texts = [dumps_exact(hide(loads_exact(t))) for t in longs.column("state").to_pylist()]
        hidden = pa.table({"i": pa.array(range(len(texts)), pa.int64()), "s": texts})  # noqa: F841 - read by the query
        rendered = con.sql("SELECT json(s)::VARCHAR AS s FROM hidden ORDER BY i").fetchall()
        placeholder = re.compile(f'"({token}:[0-9]+)"')
        exact = [placeholder.sub(lambda m: numbers[m.group(1)], r) for (r,) in rendered]
        longs = longs.set_column(longs.schema.get_field_index("state"), "state", pa.array(exact, pa.string()))
        longs = longs.set_column(longs.schema.get_field_index("canonical"), "canonical", pa.array([True] * longs.num_rows))
        table = pa.concat_tables([table.filter(pc.invert(long_rows)), longs.cast(table.schema)])
    rows = table  # noqa: F841 - read by the query
    return con.sql(
        """SELECT entity, key, CASE WHEN canonical THEN state ELSE json(state)::VARCHAR END AS state
           FROM rows WHERE state IS NOT NULL ORDER BY entity, key NULLS LAST, state"""
    ).to_arrow_table().cast(_state_schema())


def state_digest(table: pa.Table) -> str:
    """SHA-256 over the sorted state rows (see the module doc)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    h = hashlib.sha256()
    for batch in table.to_batches(65536):
        keys = pc.fill_null(batch.column("key"), "\x00")
        end = pa.array(["\x1e"] * batch.num_rows, pa.string())
        joined = pc.binary_join_element_wise(batch.column("entity"), keys, batch.column("state"), end, "\x1f")
        joined = joined.cast(pa.large_string())
        if len(joined):  # the rows' bytes are contiguous in the data buffer, between two int64 offsets
            offsets = memoryview(joined.buffers()[1])
            first, last = (int.from_bytes(offsets[8 * i : 8 * i + 8], "little") for i in (joined.offset, joined.offset + len(joined)))
            h.update(memoryview(joined.buffers()[2])[first:last])
    return h.hexdigest()


def keyless_reason(con: duckdb.DuckDBPyConnection, entity: str | None) -> tuple[str, str] | None:
    """Why no event holds a key, where it may be why: the entity named (or, none named, the
    entities) whose rows all went in without a key. Replay keeps such rows as a multiset, which no
    key finds. The reason, as the tail of a not-found message, and the hint to key them."""
    from .formats import keyless_hint

    named = "" if entity is None else f"AND entity = {sql_string(entity)}"
    found = con.execute(
        f"""SELECT entity, any_value(source.format) FROM events
            WHERE op IN ('insert', 'read', 'upsert', 'update', 'patch', 'delete') {named}
            GROUP BY entity HAVING count(key) = 0 ORDER BY entity LIMIT 4"""
    ).fetchall()
    if not found:
        return None
    names = ", ".join(e for e, _f in found[:3]) + (", ..." if len(found) > 3 else "")
    (first, fmt) = found[0]
    what = "its rows" if entity is not None else f"the rows of {names}"
    return f"{what} went in without a key (replay keeps them as a multiset, which no key finds)", keyless_hint(first, fmt)


# --------------------------------------------------------------------------- kv, exact fold


def _canon(value: Any) -> Any:
    """A hashable form of a JSON value in which equal values are equal (1.10 == 1.1)."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, RawNumber | int):
        return ("n", Decimal(str(value)))
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, dict):
        return ("o", tuple(sorted((k, _canon(v)) for k, v in value.items())))
    if isinstance(value, list):
        return ("a", tuple(_canon(v) for v in value))
    return ("?", repr(value))


def merge_row(base: Any, data: Any) -> Any:
    """A partial update applied to a row: the columns it carries are set (NULL is a value), the
    others keep their value; a path patch sets and removes dotted paths."""
    path_patch = is_update_patch(data)
    if not isinstance(data, dict) or not (isinstance(base, dict | None) or path_patch):
        return _copy(data)  # not a row of columns: the payload is the value
    if not path_patch:
        # values are replaced whole, never changed in place: the row's values can be shared
        return {**(base or {}), **data}
    row = _copy(base) if isinstance(base, dict) else {}  # changed in place: on a copy of its own
    apply_update(row, data)
    return row


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


class KvFold:
    """The kv reducer, event by event, exact: keyed rows, key changes, keyless multisets.

    Key changes inside one transaction are applied as the database did: a row moved onto a key
    that another row still holds displaces that row until it moves too (two rows swapping keys).
    """

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Any] = {}
        self.multisets: dict[str, list[Any]] = {}
        self._displaced: dict[tuple[str, str], Any] = {}
        self._txid: Any = object()
        self.warnings: list[str] = []

    def apply(self, ev: dict[str, Any]) -> None:
        if ev.get("txid") is None or ev["txid"] != self._txid:
            self._displaced.clear()
            self._txid = ev.get("txid")
        op = ev["op"]
        ent = ev["entity"]
        if op == "truncate":
            self.rows = {k: v for k, v in self.rows.items() if k[0] != ent}
            self.multisets.pop(ent, None)
            return
        data = loads_exact(ev["data"]) if ev["data"] is not None else None
        if ev["key"] is None:
            self._apply_keyless(ev, op, data)
            return
        key = (ent, ev["key"])
        prev = ev.get("prev_key")
        if prev is not None and prev != ev["key"]:
            old = (ent, prev)
            base = self._displaced.pop(old) if old in self._displaced else self.rows.pop(old, None)
            if key in self.rows:
                self._displaced[key] = self.rows.pop(key)
        else:
            base = self.rows.get(key)
        if op == "delete" or data is None:
            self.rows.pop(key, None)
        elif op in MERGES:
            self.rows[key] = merge_row(base, data)
        else:
            self.rows[key] = data

    def _apply_keyless(self, ev: dict[str, Any], op: str, data: Any) -> None:
        rows = self.multisets.setdefault(ev["entity"], [])
        before = loads_exact(ev["before"]) if ev.get("before") else None
        match = None
        if before is not None:
            want = _row_image(before)
            match = next((i for i, r in enumerate(rows) if _row_image(r) == want), None)
            if match is None and op in ("update", "patch", "delete"):
                self.warnings.append(_unmatched(ev, before, rows))
        if op == "delete" or data is None:
            if match is not None:
                rows.pop(match)
        elif op in MERGES and match is not None:
            rows[match] = merge_row(rows[match], data)
        elif op in MERGES and before is not None:
            rows.append(merge_row(before, data))
        else:
            rows.append(data)


def _row_image(row: Any) -> Any:
    """A keyless row as its before-images are matched: a column left out is NULL (test_decoding
    and wal2json format-version 1 leave the old row's NULLs out of it), numbers by value."""
    if isinstance(row, dict):
        return _canon({k: v for k, v in row.items() if v is not None})
    return _canon(row)


def _unmatched(ev: dict[str, Any], before: Any, rows: list[Any]) -> str:
    """The warning for a keyless change whose before-image matches no row; where a row matches the
    columns it names but holds values in others, the columns it names may be a key nobody named."""
    ent = ev["entity"]
    warning = f"offset {ev['offset']}: no row of {ent} matches its before-image"
    if isinstance(before, dict) and before:
        named = {k: _canon(v) for k, v in before.items()}
        if any(isinstance(r, dict) and all(k in r and _canon(r[k]) == v for k, v in named.items()) for r in rows):
            cols, fields = ", ".join(before), " ".join(f"--key-field {ent}:{k}" for k in before)
            warning += (f" (a row holds the {cols} it names, and values in columns it leaves out: if "
                        f"{cols} {'is' if len(before) == 1 else 'are'} {ent}'s key, ingest with {fields})")  # fmt: skip
    return warning


# --------------------------------------------------------------------------- Python reducers


@dataclass
class ReducerModule:
    """A user's reducer module: REDUCERS by event type, optional UPCASTERS by (type, version).
    Its reducers and upcasters run with its own imports (see :class:`_ReducerImports`)."""

    name: str
    reducers: dict[str, Callable[[Any, dict[str, Any]], Any]]
    upcasters: dict[tuple[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]
    version_field: str
    fingerprint: str
    imports: _ReducerImports = field(repr=False)


def reducer_location(spec: str) -> tuple[str, str | None]:
    """Where a reducer module is, from any working directory: its file's (or package directory's)
    absolute path; or, for an import name, the name and the directory it is imported from (its
    package stays its package); the name itself, and None, where it is not found."""
    if Path(spec).exists():
        return str(Path(spec).resolve()), None
    try:
        _, root = _import_file(spec, Path.cwd())
    except ImportError:
        return spec, None
    return spec, str(root)


def reducer_label(spec: str, where: str | None) -> str:
    """A reducer as :func:`reducer_location` gives it, for a message."""
    return f"{spec} (imported from {where})" if where else spec


def load_reducer(spec: str, search: str | None = None) -> ReducerModule:
    """Load a reducer module from a file path or an importable name (found from ``search``,
    default the working directory, before ``sys.path``).

    Its code is read once: the fingerprint is the hash of its source and of the Python files it
    can import from where it is imported from (see :func:`_own_sources`), and the code that runs
    is compiled from those very bytes, however often the module is loaded (and edited) in one
    process."""
    path = Path(spec)
    try:
        if path.is_dir() and not (path / "__init__.py").exists():
            raise UsageError(f"reducer module {spec}: is a directory, not a module", "name its .py file")
        if path.name == "__init__.py" and path.is_file() and path.resolve().parent.name.isidentifier():
            path = path.resolve().parent  # (a package named by its __init__.py is that package)
        if not path.is_dir() and (spec.endswith(".py") or path.is_file()):
            if not path.exists():
                raise UsageError(f"reducer module {spec}: no such file")
            file = path.resolve()  # (`python FILE` searches the directory the file really is in)
            name, root = f"logtool_reducer_{hashlib.sha256(str(file).encode()).hexdigest()[:12]}", file.parent
        else:
            # importable from here: the working directory is searched too, as `python -m` would; a
            # package named by its directory (./mypkg) is imported by its name from beside it
            name, where = (path.resolve().name, path.resolve().parent) if path.is_dir() else (spec, Path(search or os.getcwd()))
            file, root = _import_file(name, where)
        imports = _ReducerImports(name, file, root)
        module = imports.load()
    except UsageError:
        raise
    except (Exception, SystemExit) as e:  # (a top level that calls sys.exit ends the load, not logtool)
        hint = (
            "name a .py file, or a module importable from here (its directory on PYTHONPATH)"
            if isinstance(e, ImportError) else "fix the module: loading it ran its top level"
        )  # fmt: skip
        raise UsageError(f"reducer module {spec} failed to load: {type(e).__name__}: {e}", hint) from None
    reducers = getattr(module, "REDUCERS", None)
    if not isinstance(reducers, dict) or not reducers:
        raise UsageError(f"reducer module {spec} has no REDUCERS dict", "map event types to functions (state, event) -> state")
    return ReducerModule(
        name=spec,
        reducers={t: imports.running(fn) for t, fn in reducers.items()},
        upcasters={k: imports.running(fn) for k, fn in dict(getattr(module, "UPCASTERS", {}) or {}).items()},
        version_field=str(getattr(module, "VERSION_FIELD", "version")),
        fingerprint=imports.fingerprint,
        imports=imports,
    )


def _import_file(name: str, where: Path) -> tuple[Path, Path]:
    """An import name's source file and the directory it is imported from (``where`` first, then
    ``sys.path``, as `python -m` run there would), both as import finds them: through symlinks,
    not resolved. Imports nothing."""
    parts = name.split(".")
    if not all(p.isidentifier() for p in parts):
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    top, where = parts[0], Path(os.path.abspath(where))
    root = where if (where / top / "__init__.py").is_file() or (where / f"{top}.py").is_file() else _found_root(top, where)
    base = root.joinpath(*parts)
    file = next((f for f in (base / "__init__.py", base.parent / f"{base.name}.py") if f.is_file()), None)
    if file is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return file, root


def _found_root(top: str, where: Path) -> Path:
    """The directory a top-level module or package that is not in ``where`` as a file is imported
    from: a namespace package there, one on ``sys.path``, or one an installed finder maps. Asks
    the finders, not ``sys.modules``: a module of that name the process holds (an earlier
    checkout's) is not where the name is found now."""
    sys.path.insert(0, str(where))
    found = None
    try:
        for finder in sys.meta_path:
            try:
                found = finder.find_spec(top, None) if hasattr(finder, "find_spec") else None
            except (ImportError, ValueError):
                found = None
            if found is not None:
                break
    finally:
        sys.path.remove(str(where))
    if found is None:
        raise ModuleNotFoundError(f"No module named {top!r}", name=top)
    if found.origin and Path(found.origin).is_file():
        origin = Path(os.path.abspath(found.origin))
        return origin.parent.parent if found.submodule_search_locations is not None else origin.parent
    if found.submodule_search_locations:
        return Path(os.path.abspath(list(found.submodule_search_locations)[0])).parent
    raise ImportError(f"module {top!r} has no Python source file", name=top)


class _HashedSource(importlib.machinery.SourceFileLoader):
    """A module of a reducer's own code, run from the bytes its fingerprint hashed (never from a
    .pyc, nor from its file as it is by now); a file loader otherwise, so ``get_data``,
    ``pkgutil.get_data`` and ``importlib.resources`` read the files beside it as for any module."""

    def __init__(self, fullname: str, path: str, source: bytes) -> None:
        super().__init__(fullname, path)
        self.source = source

    def get_data(self, path: str) -> bytes:
        return self.source if path == self.path else super().get_data(path)

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.source, self.path)


class _ReducerImports(importlib.abc.MetaPathFinder):
    """A reducer's own code (see :func:`_own_sources`), each file read once and compiled from the
    bytes its fingerprint hashes — never from a cached .pyc nor from a copy an earlier load, or
    the process, left in ``sys.modules``. While that code runs (its top level as it loads, then
    each reducer and upcaster) the directory it is imported from is searched first, as ``python
    FILE`` (or ``python -m``) would search it, and a module import finds there is served from
    those bytes; afterwards every name is given back as it was, so another reducer's modules of
    the same names stay that reducer's own and no module of its own is left behind."""

    def __init__(self, name: str, file: Path, root: Path) -> None:
        self.name, self.file, self.root = name, file, root
        self.sources = _own_sources(file, root, name)
        source = self.sources[file]
        for other, text in self.sources.items():
            if other != file:
                source += b"\0" + other.relative_to(root).as_posix().encode() + b"\0" + text
        self.fingerprint = "py/" + hashlib.sha256(source).hexdigest()
        self._real = {Path(os.path.realpath(f)) for f in self.sources}
        # the names import may find this code by: each file's, its packages' (a namespace
        # package too), and a package loaded from its __init__.py file's modules by its name
        self.names = {name}
        for f in self.sources:
            parts = list(f.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            prefixes = [parts[:i] for i in range(1, len(parts) + 1)]
            self.names |= {".".join(p) for p in prefixes}
            if file.name == "__init__.py":
                self.names |= {".".join([name, *p]) for p in prefixes}
        self.modules: dict[str, ModuleType] = {}
        self._served: set[str] = set()
        self._saved: dict[str, ModuleType] = {}
        self._depth = 0
        self._on_path = False

    def load(self) -> ModuleType:
        with self:
            return importlib.import_module(self.name)

    def running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` (the module's reducer or upcaster), run with the module's imports."""

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return run

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == self.name:
            origin = str(self.file)
        elif fullname in self.names:
            found = importlib.machinery.PathFinder.find_spec(fullname, path)
            if found is None:
                return None
            if found.origin is None and found.submodule_search_locations is not None:
                if not any(Path(p).is_relative_to(self.root) for p in found.submodule_search_locations):
                    return None
                # a namespace package of its own: its portions as found now, not as sys.path
                # changes later (another checkout's, once this one's directory is off it)
                found.submodule_search_locations = list(found.submodule_search_locations)
                self._served.add(fullname)
                return found
            if found.origin is None or Path(found.origin) not in self.sources:
                return None  # (not its own: a library, a compiled module, a file new since it loaded)
            origin = found.origin
        else:
            return None
        self._served.add(fullname)
        loader = _HashedSource(fullname, origin, self.sources[Path(origin)])
        return importlib.util.spec_from_file_location(fullname, origin, loader=loader)

    def _its_own(self, module: ModuleType) -> bool:
        """Whether a module the process holds is one of this code's files (or packages), which
        import would otherwise take as it was when the process imported it."""
        try:
            if getattr(module, "__file__", None):
                return Path(os.path.realpath(module.__file__ or "")) in self._real
            real_root = Path(os.path.realpath(self.root))
            return any(Path(os.path.realpath(p)).is_relative_to(real_root) for p in getattr(module, "__path__", ()))
        except Exception:  # (a module may make its attributes anything)
            return False

    def __enter__(self) -> _ReducerImports:
        self._depth += 1
        if self._depth == 1:
            held = [n for n in self.names if (m := sys.modules.get(n)) is not None and (n in self.modules or self._its_own(m))]
            self._saved = {n: sys.modules.pop(n) for n in held}
            sys.modules.update(self.modules)
            sys.meta_path.insert(0, self)
            self._on_path = not sys.path or sys.path[0] != str(self.root)
            if self._on_path:
                sys.path.insert(0, str(self.root))
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            sys.meta_path.remove(self)
            if self._on_path:
                sys.path.remove(str(self.root))
            for n in self._served | set(self.modules):
                if (m := sys.modules.pop(n, None)) is not None:
                    self.modules[n] = m
            sys.modules.update(self._saved)


def _own_sources(file: Path, root: Path, name: str) -> dict[Path, bytes]:
    """What decides what a reducer does: its source, then every Python file it can import from
    ``root`` (the directory it is imported from), in path order — its own package and those
    beside it, so that a helper it imports by any means (from a sibling package, by
    ``importlib.import_module`` as a plugin, inside a reducer function) counts. Where ``root``
    holds installed libraries (see :func:`_holds_libraries`) they are not its code: only its
    own top-level package is. A package holding a compiled extension module is a library too
    (its compiled part cannot be loaded again): it is imported as libraries are."""
    sources = {file: file.read_bytes()}
    budget = [_WALK_LIMIT]
    try:
        if not _holds_libraries(root):
            found = _project_files(root, budget)
        elif file.parent != root:  # (in a package)
            files, compiled = _python_files(root / file.relative_to(root).parts[0], set(), budget)
            found = [] if compiled else files
        else:
            found = []
    except _TooMany:
        raise UsageError(
            f"reducer {file}: the directory it is imported from, {root}, holds more than {_WALK_LIMIT} Python files "
            "and folders to look through for what it can import (its fingerprint hashes them all)",
            "put the reducer and its helpers in a directory of their own",
        ) from None
    for f in found:
        if f not in sources:
            try:
                sources[f] = f.read_bytes()
            except OSError:
                continue
    return sources


_WALK_LIMIT = 20_000  # Python files and folders looked through for a reducer's: a home directory is no project


class _TooMany(Exception):
    """The walk of a reducer's directory went past ``_WALK_LIMIT`` entries."""


def _spend(budget: list[int], n: int) -> None:
    budget[0] -= n
    if budget[0] < 0:
        raise _TooMany


def _project_files(root: Path, budget: list[int]) -> list[Path]:
    """The importable Python files under ``root`` but those of packages holding a compiled
    extension module (see :func:`_python_files`)."""
    found: list[Path] = []
    entries, _compiled = _importable(root, budget)
    for path, folder in entries:
        files, compiled = _python_files(path, {os.path.realpath(root)}, budget) if folder else ([path], False)
        found += [] if compiled else files
    return found


def _python_files(directory: Path, above: set[str], budget: list[int]) -> tuple[list[Path], bool]:
    """The importable Python files in ``directory`` and in its importable subdirectories (through
    symlinks: a file linked from elsewhere is found under its link's name, as import finds it),
    and whether they hold a compiled extension module. A directory holding installed libraries
    is left out; ``above`` (the real paths of the directories walked down from) stops a
    symlink loop."""
    real = os.path.realpath(directory)
    if real in above or _holds_libraries(directory):
        return [], False
    found: list[Path] = []
    entries, compiled = _importable(directory, budget)
    for path, folder in entries:
        files, sub_compiled = _python_files(path, above | {real}, budget) if folder else ([path], False)
        found += files
        compiled |= sub_compiled
    return found, compiled


def _importable(directory: Path, budget: list[int]) -> tuple[list[tuple[Path, bool]], bool]:
    """In ``directory`` (not below it), in name order: its importable Python files and the
    subdirectories an import can go into (``True``: a folder), and whether it holds a compiled
    extension module."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return [], False
    _spend(budget, 1 + sum(e.name.endswith(".py") for e in entries))  # (other files cost no reading)
    found: list[tuple[Path, bool]] = []
    compiled = False
    for entry in entries:
        try:
            if entry.name.endswith(_EXTENSION_SUFFIXES):
                compiled = True
            elif entry.name.endswith(".py") and entry.name[:-3].isidentifier() and entry.is_file():
                found.append((Path(entry.path), False))
            elif entry.name.isidentifier() and entry.name != "__pycache__" and entry.is_dir():
                found.append((Path(entry.path), True))
        except OSError:
            continue
    return found, compiled


_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def _holds_libraries(directory: Path) -> bool:
    """Whether installed libraries are imported from ``directory``: the standard library's,
    site-packages, a virtual environment, or a directory pip installed into (``pip install
    --target``, which holds their *.dist-info)."""
    if Path(os.path.realpath(directory)) in _library_roots():
        return True
    try:
        return any(n.endswith(".dist-info") or n == "pyvenv.cfg" for n in os.listdir(directory))
    except OSError:
        return False


@functools.cache
def _library_roots() -> frozenset[Path]:
    """The directories installed libraries and the standard library are imported from."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    found = [paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")]
    found += [*getattr(site, "getsitepackages", list)(), site.getusersitepackages()]
    return frozenset(Path(p).resolve() for p in found if p)


def _decode(text: str | None) -> Any:
    return None if text is None else json.loads(text, parse_float=Decimal)


def _encode(value: Any) -> str:
    """A reducer's state as the JSON of its state row: decimals exact, times ISO-8601, tuples and
    sets as lists (a set in canonical order), bytes as base64, a float's NaN and infinities as the
    strings the CDC readers write, a dict key as its text (:func:`_key_text`). Raises TypeError
    for what JSON cannot hold, _SameKeyText for two keys of one dict written as one text."""
    return dumps_exact(_plain(value))


def state_json(state: Any, entity: str, key: str | None) -> str:
    """The JSON of the state row of a reducer's state (:func:`_encode`); a ReducerError naming the
    key where it has none."""
    try:
        return _encode(state)
    except (TypeError, ValueError) as err:
        raise _unstorable(err, entity, key) from None


def _unstorable(err: Exception, entity: str, key: str | None) -> ReducerError:
    return ReducerError(
        f"the state the reducers left for key {key} of {entity} cannot be stored: {err}",
        "the state row writes a dict key as its text (1 and '1' both as \"1\"): keep such keys apart, in dicts "
        "of their own or as one type" if isinstance(err, _SameKeyText) else
        "reducers return plain values: dict, list, tuple, set, str, int, float, bool, None, Decimal, date, time, "
        "datetime, bytes (a Counter or another subclass: make it a dict, or a list...)",
    )  # fmt: skip


class _SameKeyText(ValueError):
    """Two keys of one dict of a reducer's state would be written as the same text."""


def _plain(v: Any) -> Any:
    """A reducer's state value as the JSON value its state row shows (see :func:`_encode`)."""
    if v is None or isinstance(v, str | bool | int):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, Decimal):
        if not v.is_finite():
            return str(v)
        # plain notation (0.00000001, as a numeric column prints it; str() gives 1E-8) where
        # it stays short, else the exponent
        plain_ok = v.as_tuple().exponent >= -76 and v.adjusted() < 76  # type: ignore[operator]
        return RawJSON(format(v, "f") if plain_ok else str(v))
    if isinstance(v, dict):
        out: dict[str, Any] = {}
        first: dict[str, Any] = {}  # the key each text was written for
        for k, x in v.items():
            text = _key_text(k)
            if text in first:
                raise _SameKeyText(
                    f"its dict keys {_key_repr(first[text])} and {_key_repr(k)} would both be written {json_string(text)}"
                )
            first[text] = k
            out[text] = _plain(x)
        return out
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, set | frozenset):
        return [_plain(x) for x in _in_canonical_order(v)]
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(v).decode()
    raise TypeError(f"a {type(v).__name__} has no JSON form")


def _in_canonical_order(members: Iterable[Any]) -> list[Any]:
    """A set's members in an order that does not depend on the process (string hashing changes
    from one to the next): by their JSON text, then by their text as a key, for members whose JSON
    is one (2020-01-01 and "2020-01-01"). The order of a set in a state row, as a value or in a key."""
    return sorted(members, key=lambda x: (dumps_exact(_plain(x)), _key_repr(x)))


def _key_text(key: Any) -> str:
    """A dict key of a reducer's state as its state row writes it: a string as itself, anything
    else as Python's ``str`` of it (1, True, None, (1, 'a'), 2026-01-01), a frozenset's members
    in canonical order, however deep in the key it is."""
    return key if isinstance(key, str) else _key_repr(key) if isinstance(key, tuple | frozenset) else str(key)


def _key_repr(key: Any) -> str:
    """Python's ``repr`` of a dict key, with the members of its frozensets in canonical order."""
    if isinstance(key, tuple):
        inner = ", ".join(map(_key_repr, key))
        return f"({inner},)" if len(key) == 1 else f"({inner})"
    if isinstance(key, frozenset):
        return f"frozenset({{{', '.join(map(_key_repr, _in_canonical_order(key)))}}})" if key else "frozenset()"
    return repr(key)


def _typed_dumps(value: Any) -> str:
    """A reducer's state as JSON that gives back the very Python values on reading (a snapshot's
    state must replay as the state itself would): decimals, times, bytes, tuples, sets, and dicts
    whose keys are not all strings are tagged; floats keep NaN and infinities."""

    def tag(v: Any) -> Any:
        # exact types: a subclass (Counter, defaultdict, a namedtuple, an IntEnum, a bytearray)
        # would come back as its base, and a replay from the snapshot would differ
        kind = type(v)
        if v is None or kind in (str, bool, int, float):
            return v
        if kind is Decimal:
            return {"$decimal": str(v)}
        if kind is dt.datetime:
            if v.tzinfo is not None and not isinstance(v.tzinfo, dt.timezone):
                raise TypeError(f"a datetime in zone {v.tzinfo} keeps only its offset in JSON (use a fixed offset or UTC)")
            return {"$datetime": v.isoformat()}
        if kind is dt.date:
            return {"$date": v.isoformat()}
        if kind is dt.time:
            return {"$time": v.isoformat()}
        if kind is bytes:
            return {"$bytes": base64.b64encode(v).decode()}
        if kind is list:
            return [tag(x) for x in v]
        if kind is tuple:
            return {"$tuple": [tag(x) for x in v]}
        if kind in (set, frozenset):
            return {"$" + kind.__name__: sorted((tag(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))}
        if kind is dict:
            # keys by exact type too: a str Enum's member would go into a snapshot as its value
            # and come back a plain str ("EUR", where the state from zero shows "Cur.EUR")
            if all(type(k) is str for k in v) and not (len(v) == 1 and next(iter(v)).startswith("$")):
                return {k: tag(x) for k, x in v.items()}
            return {"$dict": [[key(k), tag(x)] for k, x in v.items()]}
        raise TypeError(f"a {type(v).__name__} has no JSON form")

    def key(k: Any) -> Any:
        try:
            return tag(k)
        except TypeError as e:
            raise TypeError(f"{e} (in a dict key)") from None

    return json.dumps(tag(value), ensure_ascii=False, allow_nan=True)


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "$decimal": Decimal, "$datetime": dt.datetime.fromisoformat, "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat, "$bytes": base64.b64decode, "$tuple": tuple, "$set": set,
    "$frozenset": frozenset, "$dict": lambda pairs: {_hashable(k): v for k, v in pairs},
}  # fmt: skip


def _hashable(key: Any) -> Any:
    """A tagged dict key as read back: lists (tuples of tuples, read as lists inside) as tuples."""
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _typed_loads(text: str) -> Any:
    def untag(d: dict[str, Any]) -> Any:
        if len(d) == 1:
            ((k, v),) = d.items()
            if k in _UNTAG:
                return _UNTAG[k](v)
        return d

    return json.loads(text, object_hook=untag)


def reducer_state_column(columns: Iterable[str]) -> str:
    """The column of a reducer's snapshot its states are read from: ``typed``, which gives back the
    very Python values the reducers left, where the snapshot has it, else ``state`` (its JSON)."""
    return "typed" if "typed" in columns else "state"


def reducer_state(text: str, column: str) -> Any:
    """A reducer's state as a snapshot keeps it in ``column`` (see :func:`reducer_state_column`)."""
    return _typed_loads(text) if column == "typed" else _decode(text)


def _replay_python(
    con: duckdb.DuckDBPyConnection, module: ReducerModule, progress: Progress | None
) -> tuple[pa.Table, pa.Table]:
    """Run the user's reducers in offset order, key by key: the canonical state, and the states
    in the typed encoding a snapshot keeps (so a replay from it sees the same Python values)."""
    import pyarrow as pa

    states: dict[tuple[str, str | None], Any] = {}
    column = reducer_state_column(con.sql("SELECT * FROM base LIMIT 0").columns)
    for ent, k, s in con.execute(f"SELECT entity, key, {column} FROM base").fetchall():
        states[(ent, k)] = reducer_state(s, column)
    total = con.execute("SELECT count(*) FROM ev").fetchall()[0][0]
    done = 0
    reader = con.sql(
        'SELECT "offset", ts, entity, key, type, data, meta, op FROM ev ORDER BY entity, key, "offset"'
    ).to_arrow_reader(65536)
    for batch in reader:
        with module.imports:  # (entered once a batch, not at each reducer call)
            for ev in batch.to_pylist():
                _apply_reducer(module, states, ev)
        done += batch.num_rows
        if progress:
            progress(done, total)
    live = [(e, k, s) for (e, k), s in states.items() if s is not None]
    texts, typed_texts = [], []
    for e, k, s in live:
        texts.append(state_json(s, e, k))
        try:
            typed_texts.append(_typed_dumps(s))
        except (TypeError, ValueError) as err:
            raise _unstorable(err, e, k) from None
    table = pa.table({"entity": [r[0] for r in live], "key": [r[1] for r in live], "state": texts}, schema=_state_schema())
    typed_table = pa.table({"entity": [r[0] for r in live], "key": [r[1] for r in live], "typed": typed_texts})
    from . import engine

    return canonical_state(engine.connect(), table), typed_table


def _apply_reducer(module: ReducerModule, states: dict[tuple[str, str | None], Any], ev: dict[str, Any]) -> None:
    ts = ev["ts"]
    event = {
        "offset": ev["offset"],
        # in UTC as datetime.timezone.utc (not zoneinfo's UTC): a state may keep it, and a
        # snapshot of that state gives it back as it was
        "ts": ts.astimezone(dt.UTC) if ts is not None and ts.tzinfo is not None else ts,
        "entity": ev["entity"],
        "key": ev["key"],
        "type": ev["type"],
        "data": _decode(ev["data"]),
        "meta": _decode(ev["meta"]) or {},
    }
    where = f"offset {ev['offset']} (key {ev['key']}, type {ev['type']})"
    failing = "reducer"  # what runs: an exception names it
    try:
        seen: set[str] = set()  # (type, version) the event has been, as text: one again is a cycle
        while True:
            version = (event["data"] or {}).get(module.version_field) if isinstance(event["data"], dict) else None
            up = module.upcasters.get((event["type"], version))
            if up is None:
                break
            before = (event["type"], version)
            seen.add(repr(before))
            failing = f"the upcaster of {before[0]!r} version {before[1]!r}"
            event = up(event)
            failing = "reducer"
            after = (event["type"], (event["data"] or {}).get(module.version_field) if isinstance(event["data"], dict) else None)
            if after == before:
                raise ReducerError(
                    f"the upcaster of {before[0]!r} version {before[1]!r} returned the same version at {where}",
                    f"an upcaster must set {module.version_field!r} to a newer version",
                )
            if repr(after) in seen:
                raise ReducerError(
                    f"the upcasters turn {after[0]!r} version {after[1]!r} back into itself at {where}",
                    "each upcaster must lead to a newer version: a chain of them may not come round",
                )
        fn = module.reducers.get(event["type"])
        if fn is None and event["type"] is None and ev.get("op") == "event":
            raise ReducerError(
                f"the event at offset {ev['offset']} (key {ev['key']}) is a domain event without a type: its record had "
                "none in the --type-field field",
                f"see its record: logtool sql STORE 'SELECT source, data FROM events WHERE \"offset\" = {ev['offset']}'",
            )
        if fn is None and event["type"] is None:
            raise ReducerError(
                f"the event at offset {ev['offset']} (key {ev['key']}) is a change ({ev.get('op')}), not a domain event: "
                "it has no type for a reducer",
                "reducers apply to domain events (ingested with --type-field); replay changes without --reducer",
            )
        if fn is None:
            raise ReducerError(
                f"no reducer for event type {event['type']!r} at {where}",
                f"add it to REDUCERS in {module.name}",
            )
        slot = (ev["entity"], ev["key"])
        states[slot] = fn(states.get(slot), event)
    except ReducerError:
        raise
    except (Exception, SystemExit) as e:  # a reducer calling sys.exit() ends the replay, not logtool
        part = "reducer" if failing == "reducer" else "upcaster"
        raise ReducerError(f"{failing} failed at {where}: {type(e).__name__}: {e}", f"fix the {part} or the event") from None


# --------------------------------------------------------------------------- typed output


# --------------------------------------------------------------------------- snapshots


@names_damage
def snapshot(
    path: str | Path,
    *,
    at_offset: int | None = None,
    reducer: str | ReducerModule | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Store the state at an offset (default: the head) as a snapshot, in one commit; returns its commit
    entry (with ``already`` where one of the same reducer was there: none is taken again), and the
    ``warnings`` of the replay that built it. ``reducer`` is as :func:`replay` takes it."""
    store = Store.open(path)
    # The lock is taken before the replay: a purge committed meanwhile would come back in it.
    with store.writer("snapshot"):
        entry = store_snapshot(store, at_offset=at_offset, reducer=reducer, progress=progress)
        if not entry.get("already"):
            store.sweep()  # what a writer killed after its commit left behind
    return entry


def rewritten_snapshot(
    store: Store, snap: dict[str, Any], rows: pa.Table, new_files: list[Path] | None = None
) -> dict[str, Any]:
    """A snapshot's rows (some taken out, or redacted) written to a new file, sorted as replay
    sorts them: its commit entry (same offset and reducer, new digest). The caller commits it;
    ``new_files`` gets the file before it is written (for the caller's cleanup)."""
    import duckdb

    con = duckdb.connect()
    con.register("_snapshot_rows", rows)
    rows = con.sql("SELECT * FROM _snapshot_rows ORDER BY entity, key NULLS LAST, state").to_arrow_table()
    file = _write_snapshot_file(store, snap["offset"], rows, new_files)
    return {**snap, "path": file["path"], "rows": rows.num_rows, "digest": state_digest(rows),
            "sha256": file["sha256"], "bytes": file["bytes"]}  # fmt: skip


def _write_snapshot_file(
    store: Store, offset: int, table: pa.Table, new_files: list[Path] | None = None
) -> dict[str, Any]:
    """Write a snapshot's rows to a new file of the store: its ``path``, ``sha256`` and ``bytes``,
    as its commit entry names them. ``new_files`` gets the file before it is written."""
    import pyarrow.parquet as pq

    from .segments import write_parquet_options

    target = store.new_file("snapshot", f"{offset:020d}")
    if new_files is not None:
        new_files.append(target)
    pq.write_table(table, target, **write_parquet_options())
    return {"path": store.rel(target), "sha256": file_sha256(target), "bytes": target.stat().st_size}


def store_snapshot(
    store: Store,
    *,
    at_offset: int | None = None,
    reducer: str | ReducerModule | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """:func:`snapshot` for a writer that holds the store's lock already (a head drop stores its
    snapshot under its own lock, so that no other writer can remove it before the drop)."""
    next_offset = store.state().next_offset
    if at_offset is not None and at_offset >= next_offset:
        raise UsageError(
            f"--at-offset {at_offset} is past the end of the log (its last offset is {next_offset - 1})",
            "leave --at-offset out to snapshot the head",
        )
    at_offset = transaction_boundary(store, at_offset)
    # one there already (automatic snapshots while the head transaction stays open): kept; the
    # reducer is loaded once, so the snapshot is of the code whose fingerprint it is checked by
    module = reducer if isinstance(reducer, ReducerModule) else load_reducer(reducer) if reducer else None
    fingerprint = module.fingerprint if module else KV_FINGERPRINT
    at = next_offset - 1 if at_offset is None else at_offset
    for existing in store.state().of_kind("snapshot"):
        if existing["offset"] == at and existing.get("reducer") == fingerprint:
            return {**existing, "already": True}  # (said so: no new snapshot was taken)
    result = replay(store.path, at_offset=at_offset, reducer=module, progress=progress)
    if result.offset is None and at_offset is not None:
        removed = store.first_removed()
        if removed is not None and removed <= at_offset:
            raise UsageError(
                f"no event at or below offset {at_offset} is left in the store (a compaction or purge removed them): "
                "there is no state there to snapshot", "snapshot at a later offset, or at the head",
            )  # fmt: skip
        segments = store.state().segments
        raise UsageError(
            f"no event at or below offset {at_offset}: the log starts at offset {log_start(store)}, "
            "so there is no state there to snapshot",
            f"snapshot at offset {segments[0]['min_offset']} or later, or at the head" if segments else None,
        )
    if result.offset is None:
        raise UsageError("the store has no events to snapshot")
    table = result.state
    if result.typed_states is not None:
        from . import engine

        con = engine.connect()
        typed = result.typed_states  # noqa: F841 - read by the query
        state = result.state  # noqa: F841 - read by the query
        table = con.sql(
            "SELECT s.entity, s.key, s.state, t.typed FROM state s JOIN typed t "
            "ON t.entity = s.entity AND t.key IS NOT DISTINCT FROM s.key ORDER BY ALL"
        ).to_arrow_table()
    file = _write_snapshot_file(store, result.offset, table)
    entry = {
        "kind": "snapshot",
        "path": file["path"],
        "offset": result.offset,
        "rows": result.state.num_rows,
        "digest": result.digest,
        "reducer": result.reducer,
        "sha256": file["sha256"],
        "bytes": file["bytes"],
    }
    store.commit("snapshot", {"at_offset": result.offset, "reducer": module.name if module else "kv"}, add=[entry])
    return {**entry, "warnings": result.warnings}  # (what the replay said of the state it stored)


def log_start(store: Store) -> int | None:
    """The first offset the log was written at (None: no event ever was). A log ingested with
    ``--offset-field`` starts where its source's offsets did; a purge or compaction that removed
    its first events leaves it where it was."""
    segments = store.state().segments
    removed = store.first_removed()
    firsts = ([segments[0]["min_offset"]] if segments else []) + ([removed] if removed is not None else [])
    return min(firsts, default=None)


def transaction_boundary(store: Store, at_offset: int | None) -> int | None:
    """The offset to snapshot at: ``at_offset`` (None: the head), or the end of the last
    transaction that is complete there (a snapshot inside a transaction would miss a row displaced
    by a key swap). The log's last transaction counts as open where its source marks no
    transaction's end: a Debezium or Maxwell dump may end inside one, the next file holding the rest."""
    from . import engine

    con = engine.connect()
    store.events_view(con)
    open_start = _open_transaction_start(con)
    start = log_start(store)
    if open_start is not None and (at_offset is None or at_offset >= open_start):
        if open_start == start:
            raise UsageError(
                "the log is one transaction that may still be open (its source does not mark its end)",
                "ingest the rest of it first",
            )
        at_offset = open_start - 1
    if at_offset is None:
        return None
    if at_offset >= store.state().next_offset - 1:
        return at_offset  # the head: no event after it, of its transaction or any other
    first = _spanning_transaction_start(con, at_offset)
    if first is None:
        return at_offset
    if first == start:
        raise UsageError(f"offset {at_offset} is inside the log's first transaction", "snapshot at a later offset")
    return int(first) - 1


def _spanning_transactions(con: duckdb.DuckDBPyConnection, at_offset: int) -> tuple[list[str], int | None]:
    """The transactions (not aborted) with events both at or before ``at_offset`` and after it,
    interleaved ones included, and the first offset of any of them (None: none is cut there). A
    tombstone following its delete is in the delete's transaction but makes it end no later."""
    rows = con.execute(
        f"""SELECT txn.id, min("offset") FROM events WHERE txn.id IS NOT NULL AND NOT coalesce(txn.aborted, FALSE)
            GROUP BY txn.id HAVING min("offset") <= {int(at_offset)}
            AND max("offset") FILTER (WHERE NOT {TOMBSTONE_AFTER_ITS_DELETE}) > {int(at_offset)}"""
    ).fetchall()
    return [str(r[0]) for r in rows], min((int(r[1]) for r in rows), default=None)


def _spanning_transaction_start(con: duckdb.DuckDBPyConnection, at_offset: int) -> int | None:
    """The offset below which no transaction is cut by ``at_offset``: the first offset of the
    transactions it cuts, moved down again while that cuts another; None where none is cut."""
    start = None
    while True:
        _ids, first = _spanning_transactions(con, at_offset if start is None else start - 1)
        if first is None or (start is not None and first >= start):
            return start
        start = first
        if start == 0:
            return 0


def whole_transactions_below(store: Store, end: int) -> int:
    """``end`` moved down to the first event of a transaction it would cut, so that the events
    below it are whole transactions (0 where it falls inside the log's first one). Compaction's
    head and a head drop's cut start there."""
    if end <= 0:
        return end
    try:
        boundary = transaction_boundary(store, min(end, store.state().next_offset) - 1)
    except UsageError:  # inside the log's first transaction
        return 0
    return end if boundary is None else min(end, boundary + 1)


def _open_transaction_start(con: duckdb.DuckDBPyConnection) -> int | None:
    """The first offset of the log's last transaction, where it may still be open (see
    ``transaction_boundary``); None where the log ends with a whole transaction or none."""
    open_ended = ", ".join(sql_string(f) for f in OPEN_ENDED_TRANSACTION_FORMATS)
    first = con.execute(
        f"""WITH last AS (SELECT txn.id AS id FROM events WHERE "offset" = (SELECT max("offset") FROM events)
                          AND txn.id IS NOT NULL AND source.format IN ({open_ended})
                          -- Maxwell marks the last row of a transaction "commit": true
                          AND NOT (source.format = 'maxwell' AND coalesce(json_extract_string(meta, '$.commit') = 'true', false)))
            SELECT min(e."offset") FROM events e, last WHERE e.txn.id = last.id"""
    ).fetchall()[0][0]
    return None if first is None else int(first)


def iter_state_rows(table: pa.Table) -> Iterator[dict[str, Any]]:
    """{"entity", "key", "state"} per live row, the state as a JSON value (for JSON lines)."""
    for row in table.to_pylist():
        yield {"entity": row["entity"], "key": row["key"], "state": RawJSON(row["state"])}


EXPORT_MANIFEST = ".logtool-export.json"  # the files the last export wrote into a directory


def check_export_dir(directory: str | Path) -> Path:
    """The directory an export writes into, refused (UsageError) where it is a file or lies inside
    a store; a caller checks it before the replay, so a long replay is not thrown away at the end."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file, not a directory", "-o names a directory: one file per entity goes there")
    where = out.resolve()  # (links followed, `..` taken away)
    inside = next((p for p in (where, *where.parents) if (p / "_log").is_dir()), None)
    if inside is not None:
        raise UsageError(f"{out}: is inside the store {inside}",
                         "export to a directory outside it: a store holds only what its commits name")  # fmt: skip
    return out


def export_state(
    result: ReplayResult,
    directory: str | Path,
    fmt: str,
    *,
    whole: bool = True,
    entity: str | None = None,
    removed: list[Path] | None = None,
) -> list[Path]:
    """Write one ``<entity>.parquet`` or ``<entity>.csv`` per entity, typed; returns the files.

    A file name is the entity's name where it is a plain one (letters, digits, ``.``, ``_``, ``-``),
    else the name made plain plus a hash of the entity, so no two entities share a file whatever
    else the store holds (names that differ only in case get the hash too). The directory keeps a list of the files exports wrote: the next export
    of the ``whole`` state in the same format removes those of its files it does not write again (an
    entity with no rows left), and nothing else; ``removed``, where given, gets those it removed."""
    import pyarrow.parquet as pq

    from .formats.writers import write_csv

    if fmt not in ("parquet", "csv"):
        raise UsageError(f"cannot export state as {fmt!r}", "use parquet or csv")
    out = check_export_dir(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{out}: cannot create the directory ({e.strerror})", "name a directory to write into") from None
    manifest = out / EXPORT_MANIFEST
    try:
        before = set(json.loads(manifest.read_text(encoding="utf-8")).get("files", []))
    except (OSError, ValueError, AttributeError):
        before = set()
    written: list[Path] = []
    tables = result.tables()
    folded = [_file_name(e).lower() for e in tables]  # Foo and foo are one file where case is folded
    # (a covered file of an earlier export of this format is written again or removed: it stays
    # in no one's way; one this export does not cover, an earlier export's Foo.csv say, does)
    covered = None if entity is None else {f"{_file_name(entity)}.{fmt}", f"{_file_name(entity, hashed=True)}.{fmt}"}

    def replaced(n: str) -> bool:
        return whole and n in before and n.endswith(f".{fmt}") and (covered is None or n in covered)

    present = {p.name.lower(): p.name for p in out.iterdir() if not replaced(p.name)}
    files = {}
    for ent in tables:
        name = f"{_file_name(ent)}.{fmt}"
        if folded.count(_file_name(ent).lower()) > 1 or present.get(name.lower(), name) != name:
            name = f"{_file_name(ent, hashed=True)}.{fmt}"
        files[ent] = name
    # gone: this format's files of entities with no rows left, where the whole state was written
    # (another format's files, and the entities a replay of one entity or key did not ask for,
    # stay); removed first, as on a file system that folds case Foo.csv is foo.csv
    stale = {n for n in before - set(files.values()) if replaced(n) and "/" not in n and "\\" not in n
             and not n.startswith(".")}  # fmt: skip
    for name in sorted(stale):
        if (out / name).exists() and removed is not None:
            removed.append(out / name)
        (out / name).unlink(missing_ok=True)
    for ent, table in tables.items():
        target = out / files[ent]
        tmp = target.with_name(target.name + ".tmp")
        if fmt == "parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            json_cols = [f.name for f in table.schema if (f.metadata or {}).get(b"logtool.json") == b"1"]
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                write_csv([table], f, json_cols)
        tmp.replace(target)
        written.append(target)
    names = {p.name for p in written}
    kept = sorted(n for n in (before - stale) | names if (out / n).exists())
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text(json.dumps({"files": kept, "offset": result.offset, "digest": result.digest}) + "\n", encoding="utf-8")
    tmp.replace(manifest)
    return written


def _file_name(entity: str, hashed: bool = False) -> str:
    """A file name (without extension) for an entity: its own name if plain, else (or if
    ``hashed``) a plain form with a hash of the name, so that it cannot be another entity's."""
    plain = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in entity)
    if not hashed and entity and plain == entity and not entity.startswith(".") and len(entity) <= 100:
        return entity
    return f"{plain.lstrip('.')[:100] or '_'}-{hashlib.sha256(entity.encode()).hexdigest()[:8]}"
