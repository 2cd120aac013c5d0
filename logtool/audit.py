"""Audit: what each event did to a key, who sent it, why a field holds its value, and log statistics.

``history``, ``blame`` and ``why`` fold the key's own events exactly as replay does (the ``kv``
reducer's ``KvFold``, or a user's Python reducer), so patches, values a source did not send, key
changes and a delete followed by a re-create give the same rows replay gives; each event's change
is the difference between the row before and after it, field by field.

They read only the segments that can hold the key: the ``key`` statistics of every row group are
read once from the Parquet footers, and the key's events are read from the segments whose key
range covers the key (DuckDB skips the row groups inside them whose statistics or bloom filter
exclude it). Key changes are followed through
``prev_key`` (backwards: a key shows the history of the keys it had before; an old key also shows
the event that moved it away); ``prev_key`` and truncates are found through row-group statistics.

Names looked up in an event's ``meta``, first present wins, then in its Kafka headers (kcat's
``meta.kafka.headers``, ``[name, value]`` pairs; the last header of a name, as Kafka's
``lastHeader`` reads it; each name also with the ``ce_`` prefix of CloudEvents' Kafka binding),
again first present wins:

- actor: ``actor``, ``user``, ``user_id``, ``userId``, ``username``, ``principal``, ``authid``
  (CloudEvents' authcontext extension);
- event id: ``event_id``, ``eventId``, ``eventid``, ``message_id``, ``messageId``, ``id`` (a
  CloudEvent's own ``id``);
- causation id: ``causation_id``, ``causationId``, ``causationid``; correlation id:
  ``correlation_id``, ``correlationId``, ``correlationid`` (CloudEvents' correlation extension:
  extension names are lower case);
- transaction: the event's ``txn.id``, else ``txid``, ``transaction_id``.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from .engine import json_path, sql_string
from .errors import NotFoundError, UsageError
from .formats.base import RawJSON, RawNumber, dumps_exact, given_key, loads_exact, parse_ts
from .formats.mongodb import unwrap_number
from .keyindex import SegmentIndex
from .replay import _canon, key_as_stored, keyless_reason
from .store import Store, reads_latest

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from .replay import ReducerModule

ACTOR_FIELDS = ("actor", "user", "user_id", "userId", "username", "principal", "authid")
EVENT_ID_FIELDS = ("event_id", "eventId", "eventid", "message_id", "messageId", "id")
CAUSATION_FIELDS = ("causation_id", "causationId", "causationid")
CORRELATION_FIELDS = ("correlation_id", "correlationId", "correlationid")
TXID_FIELDS = ("txid", "transaction_id")
BUCKETS = ("minute", "hour", "day")
# Longest causation chain followed: a guard against ids that loop.
MAX_CHAIN = 1000
# Most buckets a timeline is filled with empty ones for; a longer one lists only non-empty buckets.
MAX_FILLED_BUCKETS = 10_000

# Computed here rather than in Python: the time as epoch microseconds (made a datetime several
# times faster than pyarrow converts a timestamp), the transaction id and the source position (a
# transaction position, else the source's, an empty one falling through only from txn, else
# file:line, else the file).
_COLUMNS = (
    '"offset", epoch_us(ts) AS ts_us, entity, key, prev_key, op, type, data, meta, '
    "struct_extract(txn, 'id') AS txn_id, "
    "coalesce(CASE WHEN struct_extract(txn, 'position') <> '' THEN struct_extract(txn, 'position') "
    "ELSE struct_extract(source, 'position') END, "
    "struct_extract(source, 'file') || ':' || struct_extract(source, 'line'), struct_extract(source, 'file')) AS position, "
    "coalesce(struct_extract(txn, 'aborted'), FALSE) AS aborted"
)
_ABSENT = object()
# The zone pyarrow gives a UTC timestamp, so events carry the same datetimes as a table's rows.
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))

Slot = tuple[str, str]


# --------------------------------------------------------------------------- reading one key


def _open(store: str | Path | Store) -> Store:
    return store if isinstance(store, Store) else Store.open(store)


def _connect(store: Store) -> duckdb.DuckDBPyConnection:
    from .query import events_connection

    return events_connection(store, files=store.segment_files())


def _first(meta: dict[str, Any], names: Iterable[str]) -> Any:
    """The first of these meta members present, else the first of these Kafka headers present."""
    for name in names:
        value = meta.get(name)
        if value is not None:
            return value
    kafka = meta.get("kafka")
    pairs = kafka.get("headers") if isinstance(kafka, dict) else None
    if not pairs or not isinstance(pairs, list):
        return None
    # A name may repeat: its last header counts, as Kafka's Headers.lastHeader reads it.
    headers = {p[0]: p[1] for p in pairs if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)}
    for name in names:
        # ce_: a CloudEvent's attribute in Kafka's binary content mode (ce_id, ce_correlationid)
        value = headers.get(name)
        if value is None:
            value = headers.get("ce_" + name)
        if value is not None:
            return value
    return None


def _text(value: Any) -> str | None:
    """An id as text: strings bare, numbers and other JSON values as JSON."""
    if value is None:
        return None
    if type(value) is int:  # most ids: an integer's JSON is its decimal text
        return str(value)
    return value if isinstance(value, str) and not isinstance(value, RawNumber) else dumps_exact(value)


@dataclass
class _Event:
    """One stored event, with what the audit reads from its meta."""

    offset: int
    micros: int | None  # ts as epoch microseconds (None: a row of a snapshot, whose events are gone)
    ts: dt.datetime | None
    entity: str
    key: str | None
    prev_key: str | None
    op: str
    type: str | None
    data: str | None
    meta_text: str | None
    txid: str | None
    position: str | None
    meta: dict[str, Any] = field(default_factory=dict)
    txn_id: str | None = None  # the stored transaction (txn.id) alone, which the kv fold goes by
    aborted: bool = False  # of a rolled-back transaction (txn.aborted): the kv fold leaves it out, as replay does
    state: Any = None  # of a row of a reducer's snapshot: its state, as replay reads it back (data: its JSON)

    @classmethod
    def from_values(
        cls, offset: int, micros: int, entity: str, key: str | None, prev_key: str | None, op: str,
        type: str | None, data: str | None, meta_text: str | None, txn_id: str | None, position: str | None,
        aborted: bool,
    ) -> _Event:  # fmt: skip
        """An event from the columns of _COLUMNS, in their order."""
        meta = loads_exact(meta_text) if meta_text else {}
        if not isinstance(meta, dict):
            meta = {"value": meta}
        txid = txn_id or _text(_first(meta, TXID_FIELDS))
        ts = _EPOCH + dt.timedelta(microseconds=micros)
        return cls(
            offset, micros, ts, entity, key, prev_key, op, type, data, meta_text, txid, position, meta, txn_id, aborted
        )

    @property
    def actor(self) -> str | None:
        return _text(_first(self.meta, ACTOR_FIELDS))

    @property
    def event_id(self) -> str | None:
        return _text(_first(self.meta, EVENT_ID_FIELDS))

    @property
    def causation_id(self) -> str | None:
        return _text(_first(self.meta, CAUSATION_FIELDS))

    @property
    def correlation_id(self) -> str | None:
        return _text(_first(self.meta, CORRELATION_FIELDS))

    @property
    def moved(self) -> bool:
        return self.prev_key is not None and self.prev_key != self.key

    def row(self) -> dict[str, Any]:
        """The event as an output row (data as JSON text)."""
        return {
            "offset": self.offset, "ts": self.ts, "entity": self.entity, "key": self.key, "op": self.op,
            "type": self.type, "actor": self.actor, "event_id": self.event_id,
            "causation_id": self.causation_id, "correlation_id": self.correlation_id, "txid": self.txid,
            "position": self.position, "data": self.data,
        }  # fmt: skip


def _fetch(con: duckdb.DuckDBPyConnection, sql: str) -> list[_Event]:
    table = con.sql(sql).to_arrow_table()
    # Column by column: far fewer Python objects than a dict per row.
    return list(map(_Event.from_values, *(column.to_pylist() for column in table.columns)))


def _scan(con: duckdb.DuckDBPyConnection, condition: str, order: str = '"offset"') -> list[_Event]:
    """The events matching a condition no statistic can prune (a search of ``meta``): the
    offsets first, reading only the columns the condition needs, then those events whole."""
    sql = f'SELECT "offset" FROM events WHERE {condition} ORDER BY {order}'
    offsets = [o for (o,) in con.execute(sql).fetchall()]
    if not offsets:
        return []
    found = {
        ev.offset: ev
        for ev in _fetch(con, f'SELECT {_COLUMNS} FROM events WHERE "offset" IN ({", ".join(map(str, offsets))})')
    }
    return [found[o] for o in offsets]


def _key_events(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    key: str,
    entity: str | None,
    condition: str = "TRUE",
    reducer: ReducerModule | None = None,
) -> list[_Event]:
    """Every event of the key and of the keys it had before, in offset order, after a head drop
    led by the key's rows in the snapshot of this reducer (None: kv) stored at the cut.

    With the kv reducer also the events that moved the key away (``prev_key`` = key) and the
    truncates of its entities. ``condition`` (SQL over events) bounds them, e.g. to a target.
    """
    kv = reducer is None
    segments = SegmentIndex(store.path, store.state().segments)
    found: dict[int, _Event] = {}
    truncates: list[_Event] = []
    family: set[tuple[str | None, str]] = {(entity, key)}
    pending = [key]
    seen_keys: set[str] = set()

    def select(files: list[str], where: str) -> list[str]:
        if not files:
            return []
        listing = "[" + ", ".join(sql_string(f) for f in files) + "]"
        return [f"SELECT {_COLUMNS} FROM read_parquet({listing}) WHERE {where} AND ({condition})"]

    first_round = True
    while pending:
        parts = []
        for k in pending:
            seen_keys.add(k)
            # Only `key = ?` alone lets DuckDB use the bloom filter; the entity is checked below.
            parts += select(segments.holding(k), f"key = {sql_string(k)}")
            if kv:
                parts += select(segments.key_changes(), f"prev_key = {sql_string(k)}")
        if kv and first_round:
            parts += select(segments.keyless(), "key IS NULL AND op = 'truncate'")
            first_round = False
        if not parts:
            break
        pending = []
        for ev in _fetch(con, " UNION ALL ".join(parts)):
            if ev.op == "truncate" and ev.key is None:
                truncates.append(ev)
                continue
            mine = _in(family, ev.entity, ev.key) or (ev.moved and _in(family, ev.entity, ev.prev_key))
            if not mine or ev.offset in found:
                continue
            found[ev.offset] = ev
            # (a rolled-back key change moved nothing: its earlier key's row is another one)
            if ev.moved and not ev.aborted and _in(family, ev.entity, ev.key) and not _in(family, ev.entity, ev.prev_key):
                assert ev.prev_key is not None
                family.add((ev.entity, ev.prev_key))
                if ev.prev_key not in seen_keys:
                    pending.append(ev.prev_key)
    entities = {ev.entity for ev in found.values()}
    found.update({ev.offset: ev for ev in truncates if ev.entity in entities})
    base = _dropped_head_rows(store, con, family, condition, reducer)
    return base + [found[o] for o in sorted(found) if not base or o > base[0].offset]


def _dropped_head_rows(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    family: set[tuple[str | None, str]],
    condition: str,
    reducer: ReducerModule | None,
) -> list[_Event]:
    """After a head drop, the family's rows in this reducer's snapshot stored at the cut (None: the
    kv reducer's), as ``read`` events at its offset (their own events are gone): the fold starts
    from them, as replay does; a reducer's rows carry its state as replay reads it back.

    Raises UsageError where the cut holds no snapshot of this reducer but another reducer's
    snapshot there holds one of the rows: its state with this reducer cannot be known.
    """
    import pyarrow.parquet as pq

    from .replay import KV_FINGERPRINT, _encode, reducer_state, reducer_state_column

    gone_from = store.first_removed()
    first_kept = con.execute('SELECT min("offset") FROM events').fetchall()[0][0]
    cuts = [s for s in store.state().of_kind("snapshot") if gone_from is not None and gone_from <= s["offset"]
            and (first_kept is None or s["offset"] < first_kept)]  # fmt: skip
    if not cuts:
        return []
    if condition != "TRUE" and first_kept is not None and not con.execute(
        f'SELECT bool_and({condition}) FROM events WHERE "offset" = {first_kept}'
    ).fetchall()[0][0]:
        return []  # the target lies before the cut: what was there is not known
    keys = sorted({k for _e, k in family})

    def rows(snap: dict[str, Any], column: str) -> list[tuple[str, str, str]]:
        path = store.path / snap["path"]
        table = pq.read_table(path, columns=["entity", "key", column], filters=[("key", "in", keys)])
        found = zip(*(table.column(c).to_pylist() for c in ("entity", "key", column)), strict=True)
        return [(e, k, s) for e, k, s in found if _in(family, e, k)]

    fingerprint = reducer.fingerprint if reducer else KV_FINGERPRINT
    mine = [s for s in cuts if s.get("reducer") == fingerprint]
    if not mine:
        for other in sorted(cuts, key=lambda s: s["offset"], reverse=True):
            held = rows(other, "state")
            if held:
                with_which = f"the reducer {reducer.name}" if reducer else "the kv reducer"
                raise UsageError(
                    f"the events of key {held[0][1]!r} of {held[0][0]} up to offset {other['offset']} were dropped, "
                    f"and the snapshot stored there holds its state as another reducer made it ({other.get('reducer')}): "
                    f"its state with {with_which} cannot be known",
                    "audit with the reducer that snapshot was taken with (a module, or a helper it imports, changed "
                    "since is another reducer)" if reducer else "audit with --reducer MODULE, the reducer that snapshot "
                    "was taken with",
                )  # fmt: skip
        return []
    cut = max(mine, key=lambda s: s["offset"])
    where = f"snapshot at offset {cut['offset']}"
    column = "state" if reducer is None else reducer_state_column(pq.read_schema(store.path / cut["path"]).names)
    found = []
    for e, k, text in rows(cut, column):
        state = None if reducer is None else reducer_state(text, column)
        data = text if reducer is None else _encode(state)  # its JSON, as the fold shows a reducer's states
        found.append(_Event(cut["offset"], None, None, e, k, None, "read", None, data, None, None, where, state=state))
    return found


def _in(family: set[tuple[str | None, str]], entity: str, key: str | None) -> bool:
    return key is not None and ((entity, key) in family or (None, key) in family)


# --------------------------------------------------------------------------- folding


@dataclass
class _Step:
    """What one event did to one row: the row (entity, key) it acted on, before and after."""

    event: _Event
    source: Slot  # the row before the event (differs from target for a key change)
    target: Slot
    before: Any  # the row as a JSON value, or None where there was none
    after: Any
    row: int = 0  # which row it is: kept through key changes, a new one after a delete or truncate
    # A key change that took the row at ``source`` away (not one moving a row another key change
    # had displaced from ``source`` inside the transaction: the row that displaced it stays there).
    vacates: bool = False


def _as_object(row: Any) -> dict[str, Any] | None:
    if row is None:
        return None
    return row if isinstance(row, dict) else {"value": row}


def _fold(events: list[_Event], module: ReducerModule | None) -> list[_Step]:
    """Apply the events in order, as replay does, recording each row before and after."""
    from .replay import KvFold, _apply_reducer, state_json

    steps: list[_Step] = []
    # A rolled-back transaction's events change nothing, as replay leaves them out (only CDC
    # sources mark one, so a reducer's domain events never are).
    events = [ev for ev in events if not ev.aborted]
    if module is not None:
        states: dict[tuple[str, str | None], Any] = {}
        plain: dict[Slot, Any] = {}
        for ev in events:
            assert ev.key is not None
            slot = (ev.entity, ev.key)
            if ev.micros is None:  # a row of the snapshot at a head drop's cut: the fold starts from it
                states[slot] = ev.state
            else:
                _apply_reducer(module, states, {
                    "offset": ev.offset, "ts": ev.ts, "entity": ev.entity, "key": ev.key, "type": ev.type,
                    "data": ev.data, "meta": ev.meta_text,
                })  # fmt: skip
            # A reducer may change its state in place: keep a JSON copy of each state.
            after = None if states.get(slot) is None else loads_exact(state_json(states[slot], *slot))
            steps.append(_Step(ev, slot, slot, plain.get(slot), after))
            plain[slot] = after
        return steps
    fold = KvFold()
    # Each row's identity, beside the fold's rows (and the rows a key change set aside inside a
    # transaction, as KvFold does): blame follows a row, not a key, through swaps.
    rows: dict[Slot, int] = {}
    aside: dict[Slot, int] = {}
    txid: Any = object()
    count = itertools.count(1)
    for ev in events:
        record = {
            "offset": ev.offset, "entity": ev.entity, "key": ev.key, "prev_key": ev.prev_key, "op": ev.op,
            "data": ev.data, "before": None, "txid": ev.txn_id,
        }  # fmt: skip
        if ev.txn_id is None or ev.txn_id != txid:
            aside.clear()
            txid = ev.txn_id
        if ev.op == "truncate":
            live = [(slot, row) for slot, row in fold.rows.items() if slot[0] == ev.entity]
            fold.apply(record)
            steps += [_Step(ev, slot, slot, row, None, rows.pop(slot, 0)) for slot, row in live]
            continue
        assert ev.key is not None
        target: Slot = (ev.entity, ev.key)
        source: Slot = (ev.entity, ev.prev_key) if ev.moved else target  # type: ignore[assignment]
        # KvFold moves a row displaced by a key change inside a transaction aside until it moves
        # (outside one, or in the next, the displaced row is gone: it was overwritten).
        same_txn = ev.txn_id is not None and ev.txn_id == fold._txid
        displaced = fold._displaced if same_txn else {}
        before = displaced.get(source, fold.rows.get(source)) if ev.moved else fold.rows.get(source)
        vacates = ev.moved and source not in aside
        if ev.moved:
            row = aside.pop(source) if source in aside else rows.pop(source, None)
            if target in rows:
                aside[target] = rows.pop(target)
        else:
            row = rows.get(target)
        fold.apply(record)
        after = fold.rows.get(target)
        row = row if row is not None and before is not None else next(count)
        if after is None:
            rows.pop(target, None)
        else:
            rows[target] = row
        steps.append(_Step(ev, source, target, before, after, row, vacates))
    return steps


def _lookup(row: Any, name: str) -> Any:
    """A field's value (a dotted name reaches into objects and arrays), or _ABSENT."""
    row = _as_object(row)
    if row is None:
        return _ABSENT
    if name in row:
        return row[name]
    node: Any = row
    for part in name.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _ABSENT
    return node


def _same(a: Any, b: Any) -> bool:
    if a is b:  # a value a patch did not touch is the very same object before and after
        return True
    if a is _ABSENT or b is _ABSENT:
        return False
    # Equal scalars of one type are the same value, and most fields compare so. (Not objects or
    # arrays: Python's == takes a nested true for 1, and the text "1.5" for the number 1.5.)
    if type(a) is type(b) and type(a) is not dict and type(a) is not list and a == b:
        return True
    return _equal(a, b)


def _equal(a: Any, b: Any) -> bool:
    """``_canon(a) == _canon(b)``, without building the canonical forms where the types decide:
    strings, integers, booleans and null equal only themselves, objects and arrays member by
    member (a changed field's value is most often one of these)."""
    kind = type(a)
    if kind is type(b):
        if kind is str or kind is int or kind is bool or a is None:
            return bool(a == b)
        if kind is dict:
            return a.keys() == b.keys() and all(_equal(v, b[k]) for k, v in a.items())
        if kind is list:
            return len(a) == len(b) and all(map(_equal, a, b))
    return bool(_canon(a) == _canon(b))


def _changes(before: Any, after: Any) -> str:
    """Field by field, as JSON text: {"field": {"before": v, "after": w}}; a side is missing
    where the field was (dumps_exact's text of that object, written piece by piece)."""
    text = dumps_exact
    b, a = _as_object(before) or {}, _as_object(after) or {}
    out = []
    for name in [*b, *(n for n in a if n not in b)]:
        old, new = b.get(name, _ABSENT), a.get(name, _ABSENT)
        if _same(old, new):
            continue
        if old is _ABSENT:
            change = '{"after":' + text(new) + "}"
        elif new is _ABSENT:
            change = '{"before":' + text(old) + "}"
        else:
            change = '{"before":' + text(old) + ',"after":' + text(new) + "}"
        out.append(text(name) + ":" + change)
    return "{" + ",".join(out) + "}"


def _changed(step: _Step, name: str) -> bool:
    return not _same(_lookup(step.before, name), _lookup(step.after, name))


def _last_at(steps: list[_Step], slot: Slot) -> _Step | None:
    """The last step that put a row at ``slot``, or took its row away."""
    return next((s for s in reversed(steps) if s.target == slot or (s.vacates and s.source == slot)), None)


def _lineage(steps: list[_Step], slot: Slot) -> list[_Step]:
    """The steps that made the row now at ``slot``, newest first, back through key changes
    (empty: the row at ``slot`` moved away, or is gone)."""
    last = _last_at(steps, slot)
    if last is None or last.target != slot or last.after is None:
        return []
    return [s for s in reversed(steps) if s.row == last.row]


def _load_reducer(reducer: str | None) -> ReducerModule | None:
    if reducer is None:
        return None
    from .replay import load_reducer

    return load_reducer(reducer)


def _entity_of(events: list[_Event], key: str) -> str:
    """The one entity holding the key (blame and why answer for one row); the events hold it."""
    entities = sorted({ev.entity for ev in events if ev.key == key})
    if len(entities) > 1:
        raise UsageError(f"key {key!r} is in {len(entities)} entities: {', '.join(entities)}", "pick one with --entity")
    return entities[0]


def _gone(steps: list[_Step], slot: Slot, where: str) -> NotFoundError:
    """Why a key has no row: deleted, moved to another key, truncated, or never written."""
    last = _last_at(steps, slot)
    what = f"key {slot[1]!r} has no state at {where}"
    if last is None:
        return NotFoundError(what, "see `logtool history`")
    ev = last.event
    if ev.op == "truncate":
        reason = f"{slot[0]} was truncated at offset {ev.offset}"
    elif last.source == slot and last.target != slot:
        reason = f"it became key {ev.key!r} at offset {ev.offset}"
    else:
        reason = f"deleted at offset {ev.offset}"
    return NotFoundError(f"{what}: {reason}", _see_history(slot[1], slot[0]))


def _see_history(key: str, entity: str | None, field: str | None = None) -> str:
    """The hint to look at the key's history, as a command to paste: the key quoted for a shell
    (a composite key is a JSON object), with its entity where known (a key may be in several)."""
    import shlex

    words = [shlex.quote(key), *(["--entity", shlex.quote(entity)] if entity else []), *(["--field", shlex.quote(field)] if field else [])]
    return f"see `logtool history STORE {' '.join(words)}`"


def _unknown_entity(con: duckdb.DuckDBPyConnection, entity: str) -> NotFoundError:
    """The error for an entity no event of the store is of, naming the store's entities."""
    known = [e for (e,) in con.execute("SELECT DISTINCT entity FROM events ORDER BY 1 LIMIT 21").fetchall()]
    return NotFoundError(f"entity {entity!r} has no events in this store",
                         f"its entities: {', '.join(map(repr, known[:20]))}{', ...' if len(known) > 20 else ''}")  # fmt: skip


# --------------------------------------------------------------------------- history


def _since_until(value: str | dt.datetime | None, option: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_ts(value.isoformat() if isinstance(value, dt.datetime) else value)
    except ValueError:
        raise UsageError(f"{option}: cannot read {value!r} as a time", "write e.g. 2026-03-01T14:03:00Z") from None


def _history_steps(
    store: Store, key: str, entity: str | None, reducer: str | None, condition: str = "TRUE"
) -> tuple[duckdb.DuckDBPyConnection, list[_Event], list[_Step]]:
    module = _load_reducer(reducer)
    con = _connect(store)
    key = given_key(key)
    events = _key_events(store, con, key, entity, condition, module)
    if not any(ev.key == key for ev in events) and condition == "TRUE":
        if entity is not None and not con.execute(
            f"SELECT 1 FROM events WHERE entity = {sql_string(entity)} LIMIT 1"
        ).fetchall():  # a name mistyped (`customers` for `public.customers`), not a key never written
            raise _unknown_entity(con, entity)
        where = f" in {entity}" if entity else ""
        reordered = _member_order_hint(con, key, entity)  # (names the key meant: before keyless tables)
        keyless = None if reordered else keyless_reason(con, entity)
        if keyless:
            raise NotFoundError(f"key {key!r} not found{where}: {keyless[0]}", keyless[1])
        raise NotFoundError(f"key {key!r} not found{where}", reordered)
    return con, events, _fold(events, module)


def _member_order_hint(con: duckdb.DuckDBPyConnection, key: str, entity: str | None) -> str | None:
    """Where a composite key was given with its members in another order than the store's (the
    key fields' order, which a user cannot see), the key as the store writes it."""
    stored = key_as_stored(con, key, entity)
    return None if stored == key else f"a composite key's members go in the key fields' order: {stored}"


def _steps_of_rows_at(steps: list[_Step], key: str, entity: str | None) -> list[_Step]:
    """The steps of the rows that were ever at the key: at their earlier keys before they came,
    and at the key until an event moved them away (that event included). A row inserted later at
    a key one of them left is another row, and its steps are not the key's history."""
    slots = {s.target for s in steps if s.target[1] == key and (entity is None or s.target[0] == entity)}
    rows = {s.row for s in steps if s.target in slots}
    here: set[Any] = set()
    gone: set[Any] = set()
    kept = []
    for s in steps:
        if s.row not in rows:
            continue
        if s.target in slots:
            here.add(s.row)
            gone.discard(s.row)
            kept.append(s)
        elif s.row in here and s.source in slots:  # the event that moved it away
            here.discard(s.row)
            gone.add(s.row)
            kept.append(s)
        elif s.row not in here and s.row not in gone:  # at an earlier key, before it came
            kept.append(s)
    return kept


@reads_latest
def history(
    store: str | Path | Store,
    key: str,
    *,
    entity: str | None = None,
    field: str | None = None,
    since: str | dt.datetime | None = None,
    until: str | dt.datetime | None = None,
    reducer: str | None = None,
) -> pa.Table:
    """Every event that touched a key, in offset order, each with its field-level change.

    One row per event and row it changed: ``offset, ts, entity, key, prev_key, op, type, actor,
    position, changes``. ``changes`` is JSON text ``{"field": {"before": v, "after": w}}`` of
    the fields whose value changed (``before`` missing: the field was added; ``after`` missing:
    removed, as a delete removes every field). ``position`` is the source position (LSN,
    partition/offset) or ``file:line``. The history of the keys this key had before
    (``prev_key``) comes first. ``field`` keeps the events that changed it (a dotted name reaches
    into objects); ``since``/``until`` (ISO-8601, inclusive) bound the events shown, not the fold.
    ``reducer`` names a Python reducer module for an event-sourced log. The events of rolled-back
    transactions (``txn.aborted``) changed nothing, as replay leaves them out: they are not rows,
    and the schema's metadata ``logtool.note`` names their offsets.
    Raises NotFoundError for a key no event holds.
    """
    lo, hi = _since_until(since, "--since"), _since_until(until, "--until")
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"--since {since} is after --until {until}", "swap them")
    _con, events_read, steps = _history_steps(_open(store), key, entity, reducer)
    rolled_back = [ev.offset for ev in events_read if ev.aborted and (entity is None or ev.entity == entity)
                   and (lo is None or (ev.micros or 0) >= lo) and (hi is None or (ev.micros or 0) <= hi)]  # fmt: skip
    steps = _steps_of_rows_at(steps, given_key(key), entity)
    if entity is not None:
        steps = [s for s in steps if s.target[0] == entity]
    if field is not None:
        if not any(_lookup(r, field) is not _ABSENT for s in steps for r in (s.before, s.after)):
            names = sorted({n for s in steps for r in (s.before, s.after) for n in (_as_object(r) or {})})
            raise NotFoundError(
                f"key {key!r} never had a field {field!r}; its fields: {', '.join(map(repr, names)) or 'none'}",
                "a dotted name reaches into objects, e.g. address.city",
            )
        steps = [s for s in steps if _changed(s, field)]
    if lo is not None:
        steps = [s for s in steps if s.event.micros is not None and s.event.micros >= lo]
    if hi is not None:
        steps = [s for s in steps if s.event.micros is not None and s.event.micros <= hi]
    events = [s.event for s in steps]
    # Column by column, the time as epoch microseconds: no datetime per row on the way to Arrow.
    table = _column_table({
        "offset": [ev.offset for ev in events], "ts": [ev.micros for ev in events],
        "entity": [ev.entity for ev in events], "key": [s.target[1] for s in steps],
        "prev_key": [s.source[1] if s.source != s.target else None for s in steps],
        "op": [ev.op for ev in events], "type": [ev.type for ev in events], "actor": [ev.actor for ev in events],
        "position": [ev.position for ev in events], "changes": [_changes(s.before, s.after) for s in steps],
    })  # fmt: skip
    if not rolled_back:
        return table
    from .purge import format_ranges

    which = format_ranges([[o, o] for o in rolled_back])
    one = len(rolled_back) == 1
    note = (
        (f"the event at offset {which} is of a rolled-back transaction" if one
         else f"the events at offsets {which} are of rolled-back transactions")
        + f" (txn.aborted), which replay leaves out: not listed, as {'it' if one else 'they'} changed nothing"
    )  # fmt: skip
    return table.replace_schema_metadata({"logtool.note": note})


HISTORY_FIELDS = ("offset", "ts", "entity", "key", "prev_key", "op", "type", "actor", "position", "changes")
CHANGE_FIELDS = (
    "offset",
    "ts",
    "entity",
    "key",
    "prev_key",
    "op",
    "type",
    "actor",
    "position",
    "field",
    "before",
    "after",
)


def history_by_field(table: pa.Table) -> pa.Table:
    """A history with one row per changed field (``field, before, after`` as JSON text, null where
    the field was absent); an event that changed nothing keeps one row with a null field."""
    rows = []
    for row in table.to_pylist():
        changes = loads_exact(row.pop("changes"))
        for name, change in changes.items() or [(None, {})]:
            rows.append({
                **row, "field": name,
                "before": dumps_exact(change["before"]) if "before" in change else None,
                "after": dumps_exact(change["after"]) if "after" in change else None,
            })  # fmt: skip
    return _table(rows, CHANGE_FIELDS)


def _schema(names: Iterable[str]) -> pa.Schema:
    import pyarrow as pa

    types = {"offset": pa.int64(), "ts": pa.timestamp("us", tz="UTC"), "depth": pa.int64()}
    return pa.schema([(n, types.get(n, pa.string())) for n in names])


def _table(rows: list[dict[str, Any]], names: Iterable[str]) -> pa.Table:
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=_schema(names))


def _column_table(columns: dict[str, list[Any]]) -> pa.Table:
    """A table from lists of values by column (``ts`` as datetimes or epoch microseconds)."""
    import pyarrow as pa

    return pa.Table.from_pydict(columns, schema=_schema(columns))


# --------------------------------------------------------------------------- blame


BLAME_FIELDS = ("entity", "key", "field", "value", "offset", "ts", "op", "type", "actor", "position")


@reads_latest
def blame(
    store: str | Path | Store,
    key: str,
    *,
    entity: str | None = None,
    at_offset: int | None = None,
    at_time: str | dt.datetime | None = None,
    at_position: str | None = None,
    reducer: str | None = None,
) -> pa.Table:
    """The key's state at a target (default: the head), each field with the event that last
    changed it: ``entity, key, field, value, offset, ts, op, type, actor, position``.

    The targets are replay's; a field an update re-sent unchanged keeps its earlier event.
    Raises NotFoundError when the key has no state at the target. Where the target cuts a
    transaction (left out whole, as replay does), the schema's metadata ``logtool.note`` says so.
    """
    from .replay import _resolve_target

    st = _open(store)
    key = given_key(key)  # a composite key spaced or compact, as the store holds it
    where, condition, note = "the head", "TRUE", None
    if (at_offset, at_time, at_position) != (None, None, None):
        target = _resolve_target(_connect(st), at_offset, at_time, at_position)
        where, condition, note = target.description, target.condition, target.note
        if at_offset is not None and at_offset >= (next_offset := st.state().next_offset):
            # as replay warns: an offset the log has not reached answers for the head, and says so
            past = f"offset {at_offset} is past the end of the log (its last offset is {next_offset - 1})"
            where, note = "the head", f"{past}: this is the state at the head"
    _con, events, steps = _history_steps(st, key, entity, reducer, condition)
    if not any(ev.key == key for ev in events):
        hint = _see_history(key, entity)
        raise NotFoundError(f"key {key!r} has no state at {where}", f"{hint} (note: {note})" if note else hint)
    slot = (_entity_of(events, key), key)
    lineage = _lineage(steps, slot)
    state = _as_object(lineage[0].after) if lineage else None
    if state is None:
        gone = _gone(steps, slot, where)
        raise NotFoundError(gone.message, f"{gone.hint} (note: {note})") if note else gone
    rows = []
    for name, value in state.items():
        step = next(s for s in lineage if _changed(s, name))
        ev = step.event
        rows.append({
            "entity": slot[0], "key": key, "field": name, "value": dumps_exact(value), "offset": ev.offset,
            "ts": ev.ts, "op": ev.op, "type": ev.type, "actor": ev.actor, "position": ev.position,
        })  # fmt: skip
    table = _table(rows, BLAME_FIELDS)
    return table.replace_schema_metadata({"logtool.note": note}) if note else table


# --------------------------------------------------------------------------- why


EVENT_FIELDS = (
    "offset", "ts", "entity", "key", "op", "type", "actor", "event_id", "causation_id", "correlation_id", "txid",
    "position", "data",
)  # fmt: skip
WHY_FIELDS = ("relation", "depth", *EVENT_FIELDS)


@dataclass
class WhyResult:
    """Why a field holds a value: the event that set it and the events behind it.

    ``chain`` runs from the event's cause to the root cause (causation ids); ``correlated`` are
    the other events sharing its correlation id, any entity; ``transaction`` (only when the event
    carries neither id) the other events of its transaction. ``note`` says which of these the
    log could give.
    """

    entity: str
    key: str
    field: str
    value: Any  # a JSON value
    event: dict[str, Any]
    chain: list[dict[str, Any]]
    correlated: list[dict[str, Any]]
    transaction: list[dict[str, Any]]
    note: str | None = None

    def table(self) -> pa.Table:
        """The events as rows: ``relation`` is ``answer``, ``cause`` (``depth`` 1 = the direct
        cause), ``correlated`` or ``transaction``."""
        rows = [{"relation": "answer", "depth": 0, **self.event}]
        rows += [{"relation": "cause", "depth": i, **ev} for i, ev in enumerate(self.chain, 1)]
        rows += [{"relation": "correlated", "depth": None, **ev} for ev in self.correlated]
        rows += [{"relation": "transaction", "depth": None, **ev} for ev in self.transaction]
        return _table(rows, WHY_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready object (``data`` as JSON values)."""
        from .formats.writers import plain

        def event(ev: dict[str, Any]) -> dict[str, Any]:
            return {k: RawJSON(v) if k == "data" and v is not None else plain(v) for k, v in ev.items()}

        return {
            "entity": self.entity, "key": self.key, "field": self.field, "value": self.value,
            "event": event(self.event), "chain": [event(e) for e in self.chain],
            "correlated": [event(e) for e in self.correlated], "transaction": [event(e) for e in self.transaction],
            "note": self.note,
        }  # fmt: skip


def parse_value(text: str) -> Any:
    """A --value as a JSON value (``-300``, ``"gold"``, ``null``); text that is not JSON is a string."""
    try:
        return loads_exact(text)
    except ValueError:
        return text


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    value = unwrap_number(value)  # a number as MongoDB's extended JSON writes it
    if isinstance(value, int | RawNumber | str):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def _matches(value: Any, wanted: Any) -> bool:
    """Equal as JSON values; a number also matches a numeric string of the same value
    (event-sourced states often keep money as strings: ``-300`` matches ``"-300.00"``), and a
    number in MongoDB's extended JSON (``{"$numberDecimal": "40.00"}`` matches ``40``)."""
    if value is _ABSENT:
        return False
    if _same(value, wanted):
        return True
    a, b = _number(value), _number(wanted)
    return a is not None and b is not None and a == b


@reads_latest
def why(
    store: str | Path | Store,
    key: str,
    field: str,
    *,
    value: Any = _ABSENT,
    entity: str | None = None,
    reducer: str | None = None,
) -> WhyResult:
    """The event that gave ``field`` of ``key`` its current value (with ``value``, any JSON value,
    ``None`` being JSON null: the latest event that set it to that value, compared as JSON values),
    then the events behind it.

    Its causation id names its cause (the event whose event id it is), and so on to the root; the
    events sharing its correlation id are listed too, across entities. Where the event carries
    neither id, the events of its transaction are given instead, and ``note`` says so.
    Raises NotFoundError when no event gave the field that value.
    """
    st = _open(store)
    key = given_key(key)  # a composite key spaced or compact, as the store holds it
    con, events, steps = _history_steps(st, key, entity, reducer)
    slot = (_entity_of(events, key), key)
    lineage = _lineage(steps, slot)
    if value is _ABSENT:
        current = _as_object(lineage[0].after) if lineage else None
        if current is None:
            raise _gone(steps, slot, "the head")
        value = _lookup(current, field)
        if value is _ABSENT:
            domain = any(s.event.op == "event" for s in lineage) and reducer is None
            raise NotFoundError(
                f"key {key!r} has no field {field!r}; its fields: {', '.join(map(repr, current))}",
                "this is an event-sourced log: pass --reducer MODULE to audit the reduced state"
                if domain
                else "a dotted name reaches into objects, e.g. address.city",
            )
        answer = next(s for s in lineage if _changed(s, field))
    else:
        # the latest event that set it, in the current row's lineage or in the lineage of an earlier
        # row at this key that was deleted or truncated there (not one that moved away: another key's now)
        moved_away = {s.row for s in steps if s.source == slot and s.target != slot}
        rows = {s.row for s in lineage} | ({s.row for s in steps if s.target == slot} - moved_away)
        candidates = [s for s in reversed(steps) if s.row in rows]
        found = next((s for s in candidates if _changed(s, field) and _matches(_lookup(s.after, field), value)), None)
        if found is None:
            known = caveats(st, [e.offset for e in events], field)
            raise NotFoundError(
                f"no event set {field!r} of key {key!r} to {dumps_exact(value)}",
                "; ".join([*known, _see_history(key, slot[0], field)]),
            )
        answer = found
        value = _lookup(answer.after, field)
    ev = answer.event
    chain, correlated, transaction, note = _behind(con, ev)
    return WhyResult(slot[0], key, field, value, ev.row(), chain, correlated, transaction, note)


def caveats(store: str | Path | Store, offsets: Iterable[int], field: str | None = None) -> list[str]:
    """What compaction, a purge by predicate and redaction (of ``field``, if given) did to the
    history these offsets (an audit's events) belong to: what the audit cannot know."""
    from .purge import MARKER, format_ranges

    offs = sorted({int(o) for o in offsets if o is not None})
    if not offs:
        return []
    out = []
    for c in _open(store).commits():
        op, version, gaps = c["operation"], c["version"], c.get("gaps") or []
        info, params = c.get("info") or {}, c.get("params") or {}
        if op == "compact" and gaps:
            point = info.get("protected_from_offset")
            below = [o for o in offs if point is None or o < point]
            if below and min(a for a, _b in gaps) < below[-1]:
                out.append(
                    f"compaction (commit {version}) removed superseded events below offset {point} and kept each "
                    "key's row whole in its latest event: the fields are credited to that event, and the changes "
                    "before it cannot be known"
                )
        elif op == "purge" and gaps and params.get("before_offset") is not None and offs[0] <= max(b for _a, b in gaps):
            # (the key's row is in the snapshot stored at the cut: a key whose events all come after has lost nothing)
            out.append(
                f"the log's head up to offset {max(b for _a, b in gaps)} was dropped (commit {version}): the row "
                "as it stood there is known, not the changes that made it"
            )
        elif op == "purge" and gaps and "where" in (params.get("by") or []) and min(a for a, _b in gaps) < offs[-1]:
            out.append(f"a purge (commit {version}) removed events by a predicate: changes they made cannot be known")
        elif op == "redact":
            ranges = (info.get("receipt") or {}).get("offsets") or []
            hit = [[o, o] for o in offs if any(a <= o <= b for a, b in ranges)]
            redacted = params.get("fields") or []
            if hit and (field is None or any(field == f or field.startswith(f + ".") or f.startswith(field + ".")
                                             for f in redacted)):  # fmt: skip
                fields = ", ".join(redacted)
                out.append(
                    f"{fields} redacted (commit {version}) in events at offsets {format_ranges(hit)}: the values "
                    f"read \"{MARKER}\", so a change among them cannot be seen or credited"
                )
    return out


def _id_sql(names: Iterable[str], wanted: str) -> str:
    """SQL that every event whose id (of these names, as ``_first`` reads them) is ``wanted``
    passes: the first of these meta members present equals it, or a Kafka header's value does.
    Some others pass too (a header of another name): the events it gives are checked in Python."""
    member = "coalesce(" + ", ".join(f"meta->>{json_path(n)}" for n in names) + ")"
    header = f"list_contains(json_extract_string(meta, '$.kafka.headers[*][1]'), {sql_string(wanted)})"
    test = f"({member} = {sql_string(wanted)} OR {header})"
    if '"' in wanted or "\\" in wanted:
        return test
    # The id's text appears in the meta text: a cheap test that spares parsing most metas.
    pattern = "%" + "".join("\\" + c if c in "%_\\" else c for c in wanted) + "%"
    return f"meta LIKE {sql_string(pattern)} ESCAPE '\\' AND {test}"


def _behind(
    con: duckdb.DuckDBPyConnection, ev: _Event
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """The causation chain (to the root), the correlated events, or the transaction's events."""
    cause, corr = ev.causation_id, ev.correlation_id
    if ev.micros is None:  # a row of the snapshot a head drop left: its events are gone
        return [], [], [], f"the value comes from the {ev.position}: the events before it were dropped (purge)"
    if cause is None and corr is None:
        lacking = (
            f"the event at offset {ev.offset} carries no causation or correlation id "
            f"(meta {CAUSATION_FIELDS[0]} / {CORRELATION_FIELDS[0]})"
        )
        if ev.txid is None:
            return [], [], [], lacking + " and no transaction id: nothing links it to other events"
        cond = f"(txn.id = {sql_string(ev.txid)} OR (txn.id IS NULL AND {_id_sql(TXID_FIELDS, ev.txid)}))"
        same = [e for e in _scan(con, cond) if e.offset != ev.offset and e.txid == ev.txid]
        if not same:
            return [], [], [], lacking + f"; its transaction {ev.txid} holds no other event"
        return (
            [],
            [],
            [e.row() for e in same],
            lacking + f"; the other events of its transaction {ev.txid} are shown instead",
        )
    known: dict[str, _Event] = {}
    correlated: list[_Event] = []
    if corr is not None:
        correlated = [e for e in _scan(con, _id_sql(CORRELATION_FIELDS, corr)) if e.correlation_id == corr]
        known.update({e.event_id: e for e in correlated if e.event_id is not None})
    chain: list[_Event] = []
    seen = {ev.offset}
    missing: str | None = None
    current = ev
    while current.causation_id is not None and len(chain) < MAX_CHAIN:
        wanted = current.causation_id
        found = known.get(wanted) or _find_event(con, wanted, current.offset)
        if found is None:
            missing = wanted
            break
        if found.offset in seen:
            break
        seen.add(found.offset)
        chain.append(found)
        current = found
    note: str | None = None
    if missing is not None:
        note = f"the cause {missing!r} is not in the store (purged, or in another log)"
    elif cause is None:
        note = "the event has no causation id: it is the root of its chain"
    rest = [e.row() for e in correlated if e.offset not in seen]
    return [e.row() for e in chain], rest, [], note


def _find_event(con: duckdb.DuckDBPyConnection, event_id: str, before: int) -> _Event | None:
    """The event with this event id, looked for first among the events before ``before`` (a
    cause comes before its effect), then in the whole log."""
    for bound in (f'"offset" < {before}', "TRUE"):
        rows = _scan(con, f"{bound} AND {_id_sql(EVENT_ID_FIELDS, event_id)}", order='"offset" DESC')
        found = next((e for e in rows if e.event_id == event_id), None)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- stats


@dataclass
class Stats:
    """A store's statistics: ``summary`` values and named tables.

    Tables: ``entities`` (events and distinct keys per entity), ``ops`` (per entity and op),
    ``types`` (per entity and event type), ``timeline`` (events per time bucket, empty buckets
    included up to MAX_FILLED_BUCKETS), ``top_keys``, ``sources`` (one row per ingest commit:
    file, format, counts) and ``quarantine`` (records set aside, per input file).
    """

    summary: dict[str, Any]
    tables: dict[str, pa.Table]

    def to_dict(self) -> dict[str, Any]:
        """One JSON-ready object: the summary, then each table as a list of rows."""
        from .formats.writers import plain

        return {**{k: plain(v) for k, v in self.summary.items()},
                **{name: [plain(r) for r in t.to_pylist()] for name, t in self.tables.items()}}  # fmt: skip

    def rows(self) -> pa.Table:
        """Every table's rows in one table, a ``section`` column first (the union of the columns)."""
        import pyarrow as pa

        parts = [
            t.add_column(0, "section", pa.array([name] * t.num_rows, pa.string()))
            for name, t in self.tables.items()
            if t.num_rows
        ]
        if not parts:
            return pa.table({"section": pa.array([], pa.string())})
        return pa.concat_tables(parts, promote_options="default")


@reads_latest
def stats(store: str | Path | Store, *, entity: str | None = None, by: str = "hour", top: int = 10) -> Stats:
    """Counts by entity, op and event type; events per ``by`` (minute, hour or day); the ``top``
    keys by event count; the time and offset range; ingest sources and quarantined records.
    ``entity`` narrows the event counts to one entity."""
    if by not in BUCKETS:
        raise UsageError(f"--by must be one of {', '.join(BUCKETS)}, not {by!r}")
    if top < 0:
        raise UsageError(f"--top must be 0 or more, not {top}")
    st = _open(store)
    state = st.state()
    con = _connect(st)
    where = f"WHERE entity = {sql_string(entity)}" if entity is not None else ""
    con.execute(
        f"""CREATE TEMP TABLE g AS
            SELECT entity, op, type, date_trunc('{by}', ts) AS bucket, count(*) AS events,
                   min(ts) AS t0, max(ts) AS t1, min("offset") AS o0, max("offset") AS o1
            FROM events {where} GROUP BY ALL"""
    )
    con.execute(
        f"""CREATE TEMP TABLE kc AS SELECT entity, key, count(*) AS events FROM events
            {where + " AND" if where else "WHERE"} key IS NOT NULL AND op <> 'truncate' GROUP BY ALL"""
    )

    def table(sql: str) -> pa.Table:
        return con.sql(sql).to_arrow_table()

    events, t0, t1, o0, o1 = con.execute(
        "SELECT sum(events)::BIGINT, min(t0), max(t1), min(o0), max(o1) FROM g"
    ).fetchall()[0]
    if entity is not None and not events:
        raise _unknown_entity(con, entity)
    span = con.execute(f"SELECT date_diff('{by}', min(bucket), max(bucket)) FROM g").fetchall()[0][0]
    timeline_src = (
        f"""SELECT s.bucket, coalesce(sum(g.events), 0)::BIGINT AS events
            FROM (SELECT unnest(generate_series(min(bucket), max(bucket), INTERVAL 1 {by})) AS bucket FROM g) s
            LEFT JOIN g USING (bucket) GROUP BY s.bucket ORDER BY s.bucket"""
        if span is not None and span < MAX_FILLED_BUCKETS
        else "SELECT bucket, sum(events)::BIGINT AS events FROM g GROUP BY bucket ORDER BY bucket"
    )
    tables = {
        "entities": table(
            """SELECT entity, sum(events)::BIGINT AS events,
                      (SELECT count(*) FROM kc WHERE kc.entity = g.entity) AS keys,
                      min(t0) AS first_ts, max(t1) AS last_ts
               FROM g GROUP BY entity ORDER BY entity"""
        ),
        "ops": table(
            "SELECT entity, op, sum(events)::BIGINT AS events FROM g GROUP BY ALL ORDER BY entity, events DESC, op"
        ),
        "types": table(
            "SELECT entity, type, sum(events)::BIGINT AS events FROM g WHERE type IS NOT NULL GROUP BY ALL ORDER BY entity, events DESC, type"
        ),
        "timeline": table(timeline_src),
        "top_keys": table(f"SELECT entity, key, events FROM kc ORDER BY events DESC, entity, key LIMIT {int(top)}"),
        "sources": _sources(st),
        "quarantine": _quarantine(state.of_kind("quarantine")),
    }
    summary = {
        "store": str(st.path),
        "entity": entity,
        "events": events or 0,
        "entity_count": tables["entities"].num_rows,
        "keys": con.execute("SELECT count(*) FROM kc").fetchall()[0][0],
        "first_offset": o0,
        "last_offset": o1,
        "first_ts": t0,
        "last_ts": t1,
        "by": by,
        "quarantined": sum(e.get("rows", 0) for e in state.of_kind("quarantine")),
    }
    return Stats(summary, tables)


def _sources(store: Store) -> pa.Table:
    rows = []
    for c in store.commits():
        if c["operation"] != "ingest":
            continue
        segs = [e for e in c.get("add", []) if e["kind"] == "segment" and e.get("rows")]
        info, params = c.get("info", {}), c.get("params", {})
        rows.append({
            "commit": str(c["version"]), "time": c["time"], "file": params.get("file"), "format": params.get("format"),
            "ingested": info.get("ingested"), "quarantined": info.get("quarantined"), "skipped": info.get("skipped"),
            "first_offset": segs[0]["min_offset"] if segs else None, "last_offset": segs[-1]["max_offset"] if segs else None,
        })  # fmt: skip
    import pyarrow as pa

    ints = ("ingested", "quarantined", "skipped", "first_offset", "last_offset")
    schema = pa.schema([(n, pa.int64() if n in ints else pa.string()) for n in (
        "commit", "time", "file", "format", *ints)])  # fmt: skip
    return pa.Table.from_pylist(rows, schema=schema)


def _quarantine(entries: list[dict[str, Any]]) -> pa.Table:
    import pyarrow as pa

    rows = [{"file": e.get("file"), "records": e.get("rows", 0), "path": e["path"]} for e in entries]
    schema = pa.schema([("file", pa.string()), ("records", pa.int64()), ("path", pa.string())])
    return pa.Table.from_pylist(rows, schema=schema)
