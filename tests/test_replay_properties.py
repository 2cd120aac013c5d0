"""Hypothesis properties of replay on random kv logs over a few entities and keys.

The reference is ``KvFold``, the exact event-by-event fold, applied here to the events in offset
order and put in canonical form: the vectorized DuckDB reducer must give the same rows and digest
at any target. Replay from a snapshot must equal replay from zero, and replaying twice must give
the same digest.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_replay import T0, write_events

from logtool import replay, snapshot
from logtool.engine import connect
from logtool.formats.base import RawNumber, dumps_exact
from logtool.replay import KvFold, canonical_state, state_digest

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ENTITIES = ("e1", "e2")
KEYS = ("1", "2", "3")
COLUMNS = ("a", "b", "c")
KEYLESS_ROWS = ({"r": 1}, {"r": 2}, {"r": 1, "s": "x"})
LONG_NUMBERS = ("12345678901234567890123456789012345678", "9223372036854775809", "0.10000000000000000001")

small_values = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.sampled_from(["", "x", "é", "NaN"]),
    st.booleans(),
    st.builds(lambda n: {"n": n}, st.integers(0, 2)),
    st.sampled_from(["1.10", "2.5", "-0.75"]).map(RawNumber),
)
long_values = st.sampled_from(LONG_NUMBERS).map(RawNumber)


def rows_of(values: st.SearchStrategy[Any], min_size: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(COLUMNS), values, min_size=min_size, max_size=3)


# --------------------------------------------------------------------------- random logs


@st.composite
def kv_events(draw: st.DrawFn, *, exact_fold_cases: bool) -> dict[str, Any] | list[dict[str, Any]]:
    """One event, or a short run of events (a key swap in one transaction).

    Without ``exact_fold_cases`` every key stays on DuckDB's vectorized path; with them, key changes,
    swaps, path patches, long numbers and a keyless entity send keys to the exact fold too.
    """
    values = st.one_of(small_values, long_values) if exact_fold_cases else small_values
    entity = draw(st.sampled_from(ENTITIES))
    key = draw(st.sampled_from(KEYS))
    kinds = ["full", "update", "patch", "delete", "tombstone", "truncate"]
    if exact_fold_cases:
        kinds += ["move", "swap", "path", "keyless_insert", "keyless_change"]
    kind = draw(st.sampled_from(kinds))
    if kind == "full":
        op = draw(st.sampled_from(["insert", "upsert", "read"]))
        return {"entity": entity, "key": key, "op": op, "data": draw(rows_of(values, 1))}
    if kind in ("update", "patch"):
        return {"entity": entity, "key": key, "op": kind, "data": draw(rows_of(values))}
    if kind == "delete":
        return {"entity": entity, "key": key, "op": "delete", "data": None}
    if kind == "tombstone":
        return {"entity": entity, "key": key, "op": draw(st.sampled_from(["update", "upsert"])), "data": None}
    if kind == "truncate":
        return {"entity": draw(st.sampled_from([*ENTITIES, "e3"])), "key": None, "op": "truncate", "data": None}
    if kind == "move":
        new = draw(st.sampled_from(KEYS))
        return {"entity": entity, "key": new, "prev_key": key, "op": "update", "data": draw(rows_of(values))}
    if kind == "swap":
        other = draw(st.sampled_from([k for k in KEYS if k != key]))
        txn = "swap"  # (numbered apart in kv_logs)
        return [
            {
                "entity": entity,
                "key": other,
                "prev_key": key,
                "op": "update",
                "data": draw(rows_of(values)),
                "txn": txn,
            },
            {
                "entity": entity,
                "key": key,
                "prev_key": other,
                "op": "update",
                "data": draw(rows_of(values)),
                "txn": txn,
            },
        ]
    if kind == "path":
        sets = draw(st.dictionaries(st.sampled_from(["a", "a.b", "b.c.d", "c"]), values, max_size=2))
        unsets = draw(st.lists(st.sampled_from(["a", "a.b", "b", "c.x"]), max_size=2))
        data: dict[str, Any] = {}
        if sets or not unsets:
            data["$set"] = sets or {"a": 1}
        if unsets:
            data["$unset"] = unsets
        return {"entity": entity, "key": key, "op": "patch", "data": data}
    row = draw(st.sampled_from(KEYLESS_ROWS))
    if kind == "keyless_insert":
        return {"entity": "e3", "key": None, "op": "insert", "data": row}
    op = draw(st.sampled_from(["update", "patch", "delete"]))
    data = None if op == "delete" else draw(rows_of(small_values, 1))
    return {"entity": "e3", "key": None, "op": op, "before": row, "data": data}


@st.composite
def kv_logs(draw: st.DrawFn, *, exact_fold_cases: bool) -> list[dict[str, Any]]:
    """A log of 1..25 events, stamped mostly in order (ties, and a few steps back)."""
    out: list[dict[str, Any]] = []
    for n, item in enumerate(draw(st.lists(kv_events(exact_fold_cases=exact_fold_cases), min_size=1, max_size=20))):
        if isinstance(item, list):  # a swap: one transaction, whose id no other transaction of the log has
            for ev in item:
                ev["txn"] = f"swap-{n}"
        out += item if isinstance(item, list) else [item]
    ts = T0
    for ev in out:
        ts += draw(st.sampled_from([0, 0, 1, 1, 2, -1])) * 1_000_000
        ev["ts"] = ts
        if isinstance(ev.get("data"), dict | list):
            ev["data"] = dumps_exact(ev["data"])  # exact numbers kept as written
        if isinstance(ev.get("before"), dict):
            ev["before"] = dumps_exact(ev["before"])
    return out


# --------------------------------------------------------------------------- the reference


def reference(events: list[dict[str, Any]]) -> pa.Table:
    """The state after ``events``, by the exact fold, in canonical form."""
    fold = KvFold()
    for offset, ev in enumerate(events):
        fold.apply({
            "offset": offset, "entity": ev["entity"], "key": ev["key"], "prev_key": ev.get("prev_key"),
            "op": ev["op"], "data": ev.get("data"), "before": ev.get("before"), "txid": ev.get("txn"),
        })  # fmt: skip
    entities, keys, states = [], [], []
    for (ent, key), row in fold.rows.items():
        entities.append(ent)
        keys.append(key)
        states.append(dumps_exact(row))
    for ent, multiset in fold.multisets.items():
        for row in multiset:
            entities.append(ent)
            keys.append(None)
            states.append(dumps_exact(row))
    table = pa.table({"entity": entities, "key": keys, "state": states},
                     schema=pa.schema([("entity", pa.string()), ("key", pa.string()), ("state", pa.string())]))  # fmt: skip
    return canonical_state(connect(), table)


def assert_same_state(got: pa.Table, want: pa.Table) -> None:
    assert got.to_pylist() == want.to_pylist()
    assert state_digest(got) == state_digest(want)


def time_prefix(events: list[dict[str, Any]], micros: int) -> int:
    """How many events the longest prefix stamped at or before ``micros`` holds."""
    n = 0
    while n < len(events) and events[n]["ts"] <= micros:
        n += 1
    return n


def upto(events: list[dict[str, Any]], at: int) -> list[dict[str, Any]]:
    """The events a replay to offset ``at`` applies: those up to it, but for the transactions that
    go on after it (they commit after it)."""
    cut = {e.get("txn") for e in events[at + 1 :]} & {e.get("txn") for e in events[: at + 1]} - {None}
    return [e for e in events[: at + 1] if e.get("txn") not in cut]


def transaction_boundaries(events: list[dict[str, Any]]) -> list[int]:
    """Offsets after which no transaction is open (a snapshot inside one is tested on its own)."""
    return [
        i for i in range(len(events))
        if i + 1 == len(events) or events[i].get("txn") is None or events[i + 1].get("txn") != events[i].get("txn")
    ]  # fmt: skip


# --------------------------------------------------------------------------- properties


@SETTINGS
@given(events=kv_logs(exact_fold_cases=False), data=st.data())
def test_vectorized_replay_agrees_with_the_exact_fold(events: list[dict[str, Any]], data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = write_events(Path(tmp) / "s", events)
        head = replay(store, use_snapshots=False)
        assert_same_state(head.state, reference(events))
        assert head.offset == len(events) - 1 and head.events == len(events)
        at = data.draw(st.integers(0, len(events) - 1), label="at_offset")
        assert_same_state(replay(store, at_offset=at).state, reference(upto(events, at)))
        micros = data.draw(st.sampled_from([ev["ts"] for ev in events]), label="at_time")
        n = time_prefix(events, micros)
        by_time = replay(store, at_time=dt.datetime.fromtimestamp(micros / 1e6, dt.UTC))
        assert by_time.offset == (n - 1 if n else None)
        assert_same_state(by_time.state, reference(events[:n]))


@SETTINGS
@given(events=kv_logs(exact_fold_cases=True), data=st.data())
def test_replay_from_any_snapshot_equals_replay_from_zero_and_the_exact_fold(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    """Snapshots at transaction boundaries (one inside a transaction: see test_replay.py)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = write_events(Path(tmp) / "s", events)
        snap_at = data.draw(st.sampled_from(transaction_boundaries(events)), label="snapshot at")
        target = data.draw(st.integers(snap_at, len(events) - 1), label="target")
        fresh = replay(store, at_offset=target, use_snapshots=False)
        # Key changes, swaps, path patches, long numbers and keyless rows: the exact fold's cases.
        assert_same_state(fresh.state, reference(upto(events, target)))
        entry = snapshot(store, at_offset=snap_at)
        assert entry["digest"] == state_digest(reference(events[: snap_at + 1]))
        used = replay(store, at_offset=target)
        assert used.snapshot == snap_at and used.events == len(upto(events, target)) - (snap_at + 1)
        assert used.digest == fresh.digest
        assert used.state.equals(fresh.state)
        again = replay(store, at_offset=target)
        assert again.digest == used.digest
