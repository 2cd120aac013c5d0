"""Replay (issue 3): every rule of the kv reducer on small hand-made logs, targets, filters, typed
output, exact numbers, digests, snapshots, Python reducers and rewritten ranges.

Stores are built directly from lists of events (``write_events``), in the canonical schema, so a
test says exactly which offsets, transactions, positions and before-images its log holds. Tests
marked ``xfail(strict=True)`` document a bug found in replay: each reason says input, expected, got.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logtool
from logtool import replay, snapshot
from logtool.demo import BANK, PEOPLE, SHOP
from logtool.errors import NotFoundError, ReducerError, UsageError
from logtool.formats.base import Batcher, Mapping, dumps_exact, loads_exact, parse_ts
from logtool.ingest import ingest
from logtool.replay import ReplayResult, export_state, state_digest
from logtool.segments import SegmentWriter
from logtool.store import Store

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_logs"
BANK_REDUCERS = SAMPLES / "bank_reducers.py"
T0 = parse_ts("2026-03-01T12:00:00Z")

# the sample logs are read as the demo reads them
SHOP_MAPPING, BANK_MAPPING, PEOPLE_MAPPING = SHOP, BANK, PEOPLE


# --------------------------------------------------------------------------- building logs


def _json_text(value: Any) -> str | None:
    """A payload as JSON text: a str is taken as JSON text already (for exact numbers and odd
    spacing), anything else is serialized compactly, as the readers store it."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _stamp(value: Any, offset: int) -> int:
    if value is None:
        return T0 + offset * 1_000_000  # one event a second unless the test says otherwise
    if isinstance(value, int):
        return value
    return parse_ts(value)


def write_events(path: Path, events: Iterable[dict[str, Any]], *, segment_rows: int = 1_000_000) -> Path:
    """Append events to a store (created if absent) in one commit, as ingest does; returns the path.

    An event is a dict: ``op`` (required), ``entity`` (default ``t``), ``key`` and ``prev_key``
    (any value, stored as text; ``None`` for keyless), ``data``, ``before``, ``meta`` (Python
    values, or a str of JSON text), ``type``, ``ts`` (ISO text or epoch microseconds; default
    T0 + offset seconds), ``txn`` (a transaction id, or a dict with ``id``, ``position``, ``ts``,
    ``aborted``), ``position`` (the change's own source position) and ``offset`` (the source's,
    as ``--offset-field`` gives it; given to one event, given to all).
    """
    store = Store.create(path)
    with store.writer("ingest"):
        first = store.state().next_offset
        batcher = Batcher()
        sourced = False
        for i, ev in enumerate(events):
            sourced |= "offset" in ev
            txn = ev.get("txn")
            if txn is not None and not isinstance(txn, dict):
                txn = {"id": str(txn)}
            if txn is not None and isinstance(txn.get("ts"), str):
                txn = {**txn, "ts": parse_ts(txn["ts"])}
            key, prev = ev.get("key"), ev.get("prev_key")
            batcher.add(
                ts=_stamp(ev.get("ts"), first + i),
                entity=ev.get("entity", "t"),
                key=None if key is None else str(key),
                prev_key=None if prev is None else str(prev),
                op=ev["op"],
                type=ev.get("type"),
                data=_json_text(ev.get("data")),
                before=_json_text(ev.get("before")),
                meta=_json_text(ev.get("meta")),
                txn=txn,
                source={"format": "test", "file": "test.jsonl", "line": first + i + 1, "position": ev.get("position")},
                offset=ev.get("offset"),
            )
        writer = SegmentWriter(store, first, segment_rows=segment_rows, source_offsets=sourced)
        try:
            if len(batcher):
                writer.write(batcher.flush())
            entries = writer.close()
        except BaseException:
            writer.abort()
            raise
        store.commit("ingest", {"file": "test.jsonl"}, add=entries, gaps=writer.gaps,
                     info={"next_offset": writer.next_offset})  # fmt: skip
    return Path(path)


def decode(text: str) -> Any:
    """State text as Python values, decimals exact."""
    return json.loads(text, parse_float=Decimal)


def rows(result: ReplayResult, entity: str = "t") -> dict[str, Any]:
    """The keyed rows of one entity: key -> state."""
    return {r["key"]: decode(r["state"]) for r in result.state.to_pylist() if r["entity"] == entity and r["key"]}


def multiset(values: Iterable[Any]) -> list[Any]:
    """Values in a stable order, to compare multisets."""
    return sorted(values, key=lambda v: json.dumps(v, sort_keys=True, default=str))


def keyless(result: ReplayResult, entity: str = "t") -> list[Any]:
    """The keyless rows of one entity (a multiset), in a stable order."""
    return multiset(decode(r["state"]) for r in result.state.to_pylist() if r["entity"] == entity and r["key"] is None)


def texts(result: ReplayResult) -> dict[tuple[str, str | None], str]:
    """(entity, key) -> canonical state text (keyed rows only)."""
    return {(r["entity"], r["key"]): r["state"] for r in result.state.to_pylist() if r["key"] is not None}


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def write_module(path: Path, source: str) -> Path:
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- row rules


def test_insert_sets_the_row_and_a_second_insert_replaces_it(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"id": 1, "a": 1, "b": "x"}},
        {"key": 2, "op": "insert", "data": {"id": 2, "a": 2}},
        {"key": 1, "op": "insert", "data": {"id": 1, "c": True}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"id": 1, "c": True}, "2": {"id": 2, "a": 2}}


@pytest.mark.parametrize("op", ["upsert", "read"])
def test_upsert_and_read_replace_the_row(store: Path, op: str) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1, "b": 2}},
        {"key": 1, "op": op, "data": {"a": 5}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"a": 5}}


def test_update_merges_columns_the_source_did_not_send_keep_their_value(store: Path) -> None:
    # PostgreSQL sends no unchanged TOASTed column in an update: it is absent, and keeps its value.
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"id": 1, "status": "new", "doc": "x" * 3000}},
        {"key": 1, "op": "update", "data": {"id": 1, "status": "paid"}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"id": 1, "status": "paid", "doc": "x" * 3000}}


def test_patch_sets_only_what_it_carries_and_null_is_a_value(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1, "b": 2, "c": {"d": 3}}},
        {"key": 1, "op": "patch", "data": {"b": None}},
        {"key": 1, "op": "patch", "data": {"e": [1, 2]}},
    ])  # fmt: skip
    state = rows(replay(store))["1"]
    assert state == {"a": 1, "b": None, "c": {"d": 3}, "e": [1, 2]}
    assert "b" in state  # NULL sets the column; RFC 7386 would have removed it


def test_columns_with_names_no_path_syntax_likes_are_merged(store: Path) -> None:
    """The empty name (pandas' index column), slashes, tildes, dots and quotes are names like any."""
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"": 1, "a/b": 2, "m~n": 3, "p.q": 4, 'q"t': 5}},
        {"key": 1, "op": "patch", "data": {"a/b": 6, "m~n": 7}},
        {"key": 1, "op": "update", "data": {"": 8, "p.q": 9}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"": 8, "a/b": 6, "m~n": 7, "p.q": 9, 'q"t': 5}}


def test_patch_of_a_key_without_state_starts_from_an_empty_row(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "patch", "data": {"a": 1}}, {"key": 1, "op": "patch", "data": {"b": 2}}])
    result = replay(store)
    assert rows(result) == {"1": {"a": 1, "b": 2}}
    # the log began after the row was written (a change stream opened on a live collection): said
    assert result.warnings == [
        "1 row was built from partial updates with no full image before it (e.g. t key 1): "
        "the log begins after it was written, and its other columns are unknown"
    ]


def test_rows_with_a_full_image_or_a_snapshot_row_before_their_patches_are_not_partial(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1}},
        {"key": 2, "op": "update", "data": {"a": 2}},  # a whole after-image, merged: complete
        {"key": 3, "op": "delete", "data": None},
        {"key": 3, "op": "patch", "data": {"b": 3}},  # deleted, then patched: from nothing, as the log says
    ])  # fmt: skip
    snapshot(store)
    write_events(store, [{"key": 1, "op": "patch", "data": {"b": 1}}])
    assert replay(store).warnings == []
    assert replay(store, use_snapshots=False).warnings == []


def test_a_full_update_replaces_the_row_and_later_patches_merge_on_it(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1, "b": 2}},
        {"key": 1, "op": "patch", "data": {"b": 3}},
        {"key": 1, "op": "update", "data": {"a": 4, "b": 5}},
        {"key": 1, "op": "patch", "data": {"a": None}},
    ])  # fmt: skip
    assert texts(replay(store)) == {("t", "1"): '{"a":null,"b":5}'}


def test_columns_keep_the_order_they_first_appeared_in(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1, "b": 2}},
        {"key": 1, "op": "update", "data": {"b": 3, "a": 4}},  # same columns, another order
        {"key": 2, "op": "insert", "data": {"a": 1, "b": 2}},
        {"key": 2, "op": "patch", "data": {"z": 0, "c": 9}},  # adds columns
        {"key": 2, "op": "update", "data": {"a": 5, "b": 6}},  # the base's columns, not the added ones
        {"key": 2, "op": "patch", "data": {"c": 8}},
    ])  # fmt: skip
    assert texts(replay(store)) == {("t", "1"): '{"a":4,"b":3}', ("t", "2"): '{"a":5,"b":6,"z":0,"c":8}'}


def test_an_entity_too_wide_for_one_merge_is_folded_exactly(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = [
        {"key": 1, "op": "insert", "data": {"a": 1, "b": 2, "c": 3}},
        {"key": 1, "op": "patch", "data": {"d": 4, "b": None}},
        {"key": 2, "op": "insert", "data": {"a": 1}},
        {"key": 2, "op": "update", "data": {"a": 2}},
    ]
    write_events(store, events)
    merged = replay(store, use_snapshots=False)
    monkeypatch.setattr(sys.modules["logtool.replay"], "MERGE_MAX_COLUMNS", 2)
    folded = replay(store, use_snapshots=False)
    assert texts(folded) == texts(merged) == {("t", "1"): '{"a":1,"b":null,"c":3,"d":4}', ("t", "2"): '{"a":2}'}
    assert folded.digest == merged.digest


def test_a_payload_repeating_a_member_is_folded_exactly(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1}},
        {"key": 1, "op": "patch", "data": '{"a":2,"a":3}'},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"a": 3}}


def test_delete_and_tombstone_remove_the_row(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1}},
        {"key": 2, "op": "insert", "data": {"a": 2}},
        {"key": 3, "op": "insert", "data": {"a": 3}},
        {"key": 1, "op": "delete", "data": None, "before": {"a": 1}},
        {"key": 2, "op": "update", "data": None},  # a tombstone: null data
        {"key": 3, "op": "delete", "data": {"a": 3}},  # a delete that carries the old row still deletes
    ])  # fmt: skip
    result = replay(store)
    assert rows(result) == {}
    assert result.state.num_rows == 0


def test_a_deleted_row_does_not_come_back_through_a_later_update(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1, "b": 2}},
        {"key": 1, "op": "delete", "data": None},
        {"key": 1, "op": "update", "data": {"a": 9}},
        {"key": 2, "op": "insert", "data": {"x": 1}},
        {"key": 2, "op": "delete", "data": None},
        {"key": 2, "op": "insert", "data": {"x": 2}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"a": 9}, "2": {"x": 2}}


def test_truncate_empties_its_entity_and_only_it(store: Path) -> None:
    write_events(store, [
        {"entity": "orders", "key": 1, "op": "insert", "data": {"n": 1}},
        {"entity": "orders", "key": 2, "op": "insert", "data": {"n": 2}},
        {"entity": "orders", "key": None, "op": "insert", "data": {"n": "keyless"}},
        {"entity": "customers", "key": 1, "op": "insert", "data": {"c": 1}},
        {"entity": "orders", "key": 2, "op": "patch", "data": {"m": 1}},
        {"entity": "orders", "key": None, "op": "truncate", "data": None},
        {"entity": "orders", "key": 3, "op": "insert", "data": {"n": 3}},
        {"entity": "orders", "key": 2, "op": "patch", "data": {"after": True}},
    ])  # fmt: skip
    result = replay(store)
    assert rows(result, "orders") == {"3": {"n": 3}, "2": {"after": True}}
    assert keyless(result, "orders") == []
    assert rows(result, "customers") == {"1": {"c": 1}}
    before = replay(store, at_offset=4)
    assert rows(before, "orders") == {"1": {"n": 1}, "2": {"n": 2, "m": 1}}
    assert keyless(before, "orders") == [{"n": "keyless"}]


def test_domain_events_are_not_rows_under_the_kv_reducer(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1}},
        {"key": 1, "op": "event", "type": "Touched", "data": {"b": 2}},
        {"key": 2, "op": "event", "type": "Touched", "data": {"b": "12345678901234567890"}},
    ])  # fmt: skip
    result = replay(store)
    assert rows(result) == {"1": {"a": 1}}
    assert any("pass --reducer MODULE" in w for w in result.warnings)  # not silently an empty state
    assert replay(store, at_offset=0).warnings == []


# --------------------------------------------------------------------------- key changes


def test_key_change_moves_the_row_carrying_values_it_did_not_send(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"id": 1, "name": "Ada", "doc": "big"}},
        {"key": 2, "op": "insert", "data": {"id": 2, "name": "Bo"}},
        {"key": 10, "prev_key": 1, "op": "update", "data": {"id": 10, "name": "Ada L"}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"10": {"id": 10, "name": "Ada L", "doc": "big"}, "2": {"id": 2, "name": "Bo"}}
    assert rows(replay(store, at_offset=1)) == {
        "1": {"id": 1, "name": "Ada", "doc": "big"},
        "2": {"id": 2, "name": "Bo"},
    }


def test_the_old_key_of_a_moved_row_can_be_used_again(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": "first"}},
        {"key": 5, "prev_key": 1, "op": "update", "data": {"w": 1}},
        {"key": 1, "op": "insert", "data": {"v": "second"}},
        {"key": 5, "op": "patch", "data": {"w": 2}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"v": "second"}, "5": {"v": "first", "w": 2}}


def test_key_change_that_deletes_moves_nothing(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}},
        {"key": 2, "prev_key": 1, "op": "delete", "data": None},
    ])  # fmt: skip
    assert rows(replay(store)) == {}


def test_two_rows_swap_keys_inside_one_transaction(store: Path) -> None:
    # UPDATE t SET id = 3 - id: the database moves row 1 onto key 2 while row 2 still holds it.
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"id": 1, "name": "one", "doc": "d1"}},
        {"key": 2, "op": "insert", "data": {"id": 2, "name": "two", "doc": "d2"}},
        {"key": 2, "prev_key": 1, "op": "update", "data": {"id": 2, "name": "one"}, "txn": "T9"},
        {"key": 1, "prev_key": 2, "op": "update", "data": {"id": 1, "name": "two"}, "txn": "T9"},
        {"key": 1, "op": "patch", "data": {"later": True}},
    ])  # fmt: skip
    assert rows(replay(store)) == {
        "1": {"id": 1, "name": "two", "doc": "d2", "later": True},
        "2": {"id": 2, "name": "one", "doc": "d1"},
    }


def test_an_offset_inside_a_transaction_leaves_the_whole_transaction_out(store: Path) -> None:
    # half of the swap would show row 2 only: a state the database never had
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": "A"}},
        {"key": 2, "op": "insert", "data": {"v": "B"}},
        {"key": 2, "prev_key": 1, "op": "update", "data": {}, "txn": "T9"},
        {"key": 1, "prev_key": 2, "op": "update", "data": {}, "txn": "T9"},
    ])  # fmt: skip
    res = replay(store, at_offset=2)
    assert rows(res) == {"1": {"v": "A"}, "2": {"v": "B"}} and res.offset == 1
    assert any("inside a transaction that goes on after it (from offset 2)" in w for w in res.warnings)
    assert res.digest == replay(store, at_offset=1).digest
    assert rows(replay(store, at_offset=3)) == {"1": {"v": "B"}, "2": {"v": "A"}}
    assert replay(store, at_offset=3).warnings == []


def test_a_time_inside_a_transaction_leaves_the_whole_transaction_out(store: Path) -> None:
    """Maxwell or Debezium stamp each statement with its own time: a transfer whose debit is
    stamped before T and whose credit after it is not half in the state at T."""
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"bal": 100}, "ts": "2026-03-01T12:00:00Z", "txn": "T1"},
        {"key": 2, "op": "insert", "data": {"bal": 0}, "ts": "2026-03-01T12:00:00Z", "txn": "T1"},
        {"key": 1, "op": "update", "data": {"bal": 50}, "ts": "2026-03-01T12:00:10Z", "txn": "T2"},
        {"key": 2, "op": "update", "data": {"bal": 50}, "ts": "2026-03-01T12:00:11Z", "txn": "T2"},
    ])  # fmt: skip
    res = replay(store, at_time="2026-03-01T12:00:10Z")
    assert rows(res) == {"1": {"bal": 100}, "2": {"bal": 0}} and res.offset == 1
    assert res.warnings and "time 2026-03-01T12:00:10Z is inside a transaction" in res.warnings[0]
    assert rows(replay(store, at_time="2026-03-01T12:00:11Z")) == {"1": {"bal": 50}, "2": {"bal": 50}}
    blamed = logtool.blame(store, "1", at_time="2026-03-01T12:00:10Z")
    assert blamed.column("offset").to_pylist() == [0]
    assert b"inside a transaction" in (blamed.schema.metadata or {})[b"logtool.note"]
    write_events(store, [{"key": 3, "op": "insert", "data": {"bal": 7}, "ts": "2026-03-01T12:00:20Z", "txn": "T3"},
                         {"key": 1, "op": "update", "data": {"bal": 0}, "ts": "2026-03-01T12:00:21Z", "txn": "T3"}])  # fmt: skip
    with pytest.raises(NotFoundError) as missing:  # the key is only in the transaction cut: the hint says why
        logtool.blame(store, "3", at_time="2026-03-01T12:00:20Z")
    assert "inside a transaction" in (missing.value.hint or "")


def test_an_offset_leaves_out_every_transaction_it_cuts_interleaved_ones_too(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": "A"}},
        {"key": 2, "op": "insert", "data": {"v": "B"}},
        {"key": 2, "prev_key": 1, "op": "update", "data": {}, "txn": "T9"},
        {"key": 3, "op": "insert", "data": {"v": "C"}},  # no transaction, inside T9's span
        {"key": 1, "prev_key": 2, "op": "update", "data": {}, "txn": "T9"},
        {"key": 4, "op": "insert", "data": {"v": "D"}, "txn": "TA"},
        {"key": 5, "op": "insert", "data": {"v": "E"}, "txn": "TB"},
        {"key": 4, "op": "patch", "data": {"w": 1}, "txn": "TA"},
        {"key": 5, "op": "patch", "data": {"w": 2}, "txn": "TB"},
    ])  # fmt: skip
    at3 = replay(store, at_offset=3)
    assert rows(at3) == {"1": {"v": "A"}, "2": {"v": "B"}, "3": {"v": "C"}} and at3.offset == 3
    at6 = replay(store, at_offset=6)  # TA and TB both go on after 6
    assert rows(at6) == {"1": {"v": "B"}, "2": {"v": "A"}, "3": {"v": "C"}}
    assert "inside transactions that go on after it (from offset 5)" in at6.warnings[0]
    assert rows(replay(store, at_offset=7)) == {**rows(at6), "4": {"v": "D", "w": 1}}
    # a snapshot asked for there is taken where no transaction is cut, and serves the replays
    taken = snapshot(store, at_offset=6)
    assert taken["offset"] == 4 and replay(store, at_offset=7).digest == replay(store, at_offset=7, use_snapshots=False).digest


def test_three_rows_rotate_keys_inside_one_transaction(store: Path) -> None:
    write_events(store, [
        {"key": k, "op": "insert", "data": {"orig": k}} for k in (1, 2, 3)
    ] + [
        {"key": 2, "prev_key": 1, "op": "update", "data": {}, "txn": "R"},
        {"key": 3, "prev_key": 2, "op": "update", "data": {}, "txn": "R"},
        {"key": 1, "prev_key": 3, "op": "update", "data": {}, "txn": "R"},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"orig": 3}, "2": {"orig": 1}, "3": {"orig": 2}}


def test_keys_swapped_through_a_spare_key_without_a_transaction(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"orig": 1}},
        {"key": 2, "op": "insert", "data": {"orig": 2}},
        {"key": 0, "prev_key": 1, "op": "update", "data": {}},
        {"key": 1, "prev_key": 2, "op": "update", "data": {}},
        {"key": 2, "prev_key": 0, "op": "update", "data": {}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"orig": 2}, "2": {"orig": 1}}


def test_test_decoding_swap_with_unchanged_toast_values(tmp_path: Path) -> None:
    # UPDATE t SET id = 3 - id under a deferred primary key: two key changes in one transaction,
    # each with its TOASTed doc unchanged (so the reader leaves it out of the row).
    log = tmp_path / "swap.txt"
    log.write_text(
        "BEGIN 900\n"
        "table public.t: INSERT: id[integer]:1 name[text]:'one' doc[text]:'doc of one'\n"
        "table public.t: INSERT: id[integer]:2 name[text]:'two' doc[text]:'doc of two'\n"
        "COMMIT 900 (at 2026-03-05 12:00:00.000000+00)\n"
        "BEGIN 901\n"
        "table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 name[text]:'one' doc[text]:unchanged-toast-datum\n"
        "table public.t: UPDATE: old-key: id[integer]:2 new-tuple: id[integer]:1 name[text]:'two' doc[text]:unchanged-toast-datum\n"
        "COMMIT 901 (at 2026-03-05 12:00:01.000000+00)\n"
    )
    store = tmp_path / "store"
    ingest(store, [str(log)], format="test_decoding", mapping=Mapping(key_fields=("public.t:id",)))
    assert rows(replay(store), "public.t") == {
        "1": {"id": 1, "name": "two", "doc": "doc of two"},
        "2": {"id": 2, "name": "one", "doc": "doc of one"},
    }


def test_people_sample_key_change(tmp_path: Path) -> None:
    store = tmp_path / "people"
    ingest(store, [str(SAMPLES / "people_pii.jsonl")], mapping=PEOPLE_MAPPING)
    result = replay(store)
    users = rows(result, "public.users")
    assert len(users) == 23 and len(rows(result, "public.signups")) == 18
    assert "33" not in users
    assert users["10033"] == {
        "id": 10033, "name": "Mira Kovac", "email": "mira.kovac@example.org", "phone": "+44 20 7946 0958",
        "ip": "203.0.113.80", "city": "Leeds",
    }  # fmt: skip
    assert rows(replay(store, entity="public.users", key="10033"), "public.users")["10033"]["city"] == "Leeds"


# --------------------------------------------------------------------------- keyless entities


def test_keyless_entity_is_a_multiset_and_changes_exactly_one_matching_row(store: Path) -> None:
    row = {"sku": "A", "qty": 1}
    write_events(store, [
        {"key": None, "op": "insert", "data": row},
        {"key": None, "op": "insert", "data": row},
        {"key": None, "op": "insert", "data": row},
        {"key": None, "op": "insert", "data": {"sku": "B", "qty": 2}},
        {"key": None, "op": "update", "before": row, "data": {"sku": "A", "qty": 5}},
        {"key": None, "op": "delete", "before": row, "data": None},
        {"key": None, "op": "patch", "before": {"sku": "B", "qty": 2}, "data": {"qty": 3}},
    ])  # fmt: skip
    assert keyless(replay(store)) == multiset([{"sku": "A", "qty": 1}, {"sku": "A", "qty": 5}, {"sku": "B", "qty": 3}])
    assert keyless(replay(store, at_offset=3)) == multiset([row, row, row, {"sku": "B", "qty": 2}])


def test_keyless_entity_replays_when_named(store: Path) -> None:
    # DuckDB 2.0.1 answered EXISTS over a LEFT JOIN with an empty table wrongly: --entity lost the rows
    write_events(store, [
        {"key": None, "op": "insert", "data": {"a": 1}},
        {"key": None, "op": "insert", "data": {"a": 1}},
        {"key": None, "op": "insert", "data": {"a": 2}},
        {"entity": "u", "key": "k", "op": "insert", "data": {"b": 1}},
    ])  # fmt: skip
    assert keyless(replay(store, entity="t")) == multiset([{"a": 1}, {"a": 1}, {"a": 2}])
    assert keyless(replay(store)) == keyless(replay(store, entity="t"))


def test_keyless_before_image_matches_numbers_by_value(store: Path) -> None:
    write_events(store, [
        {"key": None, "op": "insert", "data": '{"price":1.10,"n":1}'},
        {"key": None, "op": "delete", "before": '{"n":1,"price":1.1}', "data": None},
    ])  # fmt: skip
    assert keyless(replay(store)) == []


def test_keyless_change_matching_no_row_is_reported(store: Path) -> None:
    write_events(store, [
        {"key": None, "op": "insert", "data": {"a": 1}},
        {"key": None, "op": "delete", "before": {"a": 2}, "data": None},
    ])  # fmt: skip
    result = replay(store)
    assert keyless(result) == [{"a": 1}]
    assert any("before-image" in w for w in result.warnings)


def test_keyless_before_image_leaving_out_a_column_matches_only_a_null_there(store: Path) -> None:
    """test_decoding and wal2json format-version 1 leave the old row's NULL columns out of a
    REPLICA IDENTITY FULL before-image: a column it leaves out matches a NULL (or absent) one, and
    a change still changes exactly one matching row, duplicates included."""
    y, y2 = {"who": "y", "n": None, "note": None}, {"who": "y", "n": 2, "note": None}
    write_events(store, [
        {"key": None, "op": "insert", "data": y},
        {"key": None, "op": "insert", "data": y},
        {"key": None, "op": "insert", "data": y2},
        {"key": None, "op": "insert", "data": {"who": "x", "n": 1}},
        {"key": None, "op": "update", "before": {"who": "y"}, "data": {"who": "y", "n": 3, "note": None}},
        {"key": None, "op": "delete", "before": {"who": "y", "n": 2}, "data": None},
        {"key": None, "op": "delete", "before": {"who": "x", "n": 1, "note": None}, "data": None},
    ])  # fmt: skip
    result = replay(store)
    assert keyless(result) == multiset([y, {"who": "y", "n": 3, "note": None}])
    assert result.warnings == []


def test_keyless_before_image_naming_a_key_is_warned_of_with_the_key_field(store: Path) -> None:
    """A before-image that names only some columns of a row holding values in the others is no
    row of a keyless table: were those columns a key nobody named, the warning says how to name it."""
    write_events(store, [
        {"key": None, "op": "insert", "data": {"id": 1, "v": "a"}},
        {"key": None, "op": "delete", "before": {"id": 1}, "data": None},
    ])  # fmt: skip
    result = replay(store)
    assert keyless(result) == [{"id": 1, "v": "a"}]
    assert result.warnings == [
        "offset 1: no row of t matches its before-image (a row holds the id it names, and values in columns it "
        "leaves out: if id is t's key, ingest with --key-field t:id)"
    ]


# --------------------------------------------------------------------------- path patches


def test_path_patch_sets_and_unsets_dotted_paths(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": {"b": 1, "x": 0}, "c": 2, "tags": ["p", "q"], "k": 7}},
        {"key": 1, "op": "patch", "data": {"$set": {"a.b": 5, "n.m.o": True, "tags.1": "Q"}, "$unset": ["c", "a.x"]}},
        {"key": 1, "op": "patch", "data": {"k": None}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"a": {"b": 5}, "tags": ["p", "Q"], "k": None, "n": {"m": {"o": True}}}}


def test_path_patch_truncates_arrays(store: Path) -> None:
    # MongoDB's truncatedArrays: the array is cut to the new size, then $set applies.
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"tags": ["a", "b", "c", "d"]}},
        {"key": 1, "op": "patch", "data": {"$truncate": {"tags": 2}, "$set": {"tags.1": "B"}}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"tags": ["a", "B"]}}


def test_path_patch_is_recognised_whatever_its_spacing(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": {"b": 1}}},
        {"key": 1, "op": "patch", "data": '{ "$set": {"a.b": 2}}'},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"a": {"b": 2}}}


def test_a_path_patch_that_cannot_apply_has_a_defined_result(store: Path) -> None:
    """A field inside an array (MongoDB refuses such an update) sets nothing; an operator
    document of the wrong shape is a row of columns; a path patch on a row that is no object
    starts from an empty one. None of them stops the replay."""
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"tags": ["a", "b"]}},
        {"key": 1, "op": "patch", "data": {"$set": {"tags.x": 1, "n": 2}}},
        {"key": 2, "op": "insert", "data": {"a": 1}},
        {"key": 2, "op": "patch", "data": {"$set": "x"}},
        {"key": 3, "op": "insert", "data": "\"plain text row\""},  # (a str is JSON text)
        {"key": 3, "op": "patch", "data": {"$set": {"a.b": 1}}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"tags": ["a", "b"], "n": 2}, "2": {"a": 1, "$set": "x"}, "3": {"a": {"b": 1}}}


# --------------------------------------------------------------------------- transactions, positions


def _two_transactions(store: Path, *, commit_order: bool) -> None:
    """Transaction A changes key 1 at 0/100 and key 2 at 0/300 and commits at 0/400; transaction
    B changes key 3 at 0/200 and commits at 0/250. Events carry txn.position = the commit LSN."""
    a1 = {"key": 1, "op": "insert", "data": {"by": "A"}, "txn": {"id": "A", "position": "0/400"}, "position": "0/100"}
    a2 = {"key": 2, "op": "insert", "data": {"by": "A"}, "txn": {"id": "A", "position": "0/400"}, "position": "0/300"}
    b1 = {"key": 3, "op": "insert", "data": {"by": "B"}, "txn": {"id": "B", "position": "0/250"}, "position": "0/200"}
    write_events(store, [b1, a1, a2] if commit_order else [a1, b1, a2])


@pytest.mark.parametrize("commit_order", [True, False], ids=["commit-order", "change-order"])
def test_position_inside_an_open_transaction_includes_exactly_the_committed_ones(
    store: Path, commit_order: bool
) -> None:
    _two_transactions(store, commit_order=commit_order)
    assert rows(replay(store, at_position="0/300")) == {"3": {"by": "B"}}  # A is open at 0/300
    assert rows(replay(store, at_position="0/250")) == {"3": {"by": "B"}}  # B's commit itself is included
    assert rows(replay(store, at_position="0/100")) == {}  # A's first change is not a commit
    assert rows(replay(store, at_position="0/400")) == {"1": {"by": "A"}, "2": {"by": "A"}, "3": {"by": "B"}}


def test_positions_order_as_numbers_not_as_text(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}, "txn": {"id": "1", "position": "0/9F00000"}},
        {"key": 1, "op": "update", "data": {"v": 2}, "txn": {"id": "2", "position": "0/10000000"}},
    ])  # fmt: skip
    assert rows(replay(store, at_position="0/9F00000")) == {"1": {"v": 1}}
    assert rows(replay(store, at_position="0/A000000")) == {"1": {"v": 1}}
    assert rows(replay(store, at_position="0/10000000")) == {"1": {"v": 2}}
    assert rows(replay(store, at_position="1/0")) == {"1": {"v": 2}}


def test_sql_server_lsns_order_as_hex(store: Path) -> None:
    """Debezium's SQL Server positions: fixed-width hex groups, where 000000a1 comes after 00000099."""
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}, "txn": {"id": "1", "position": "00000099:ffffffff:ffff"}},
        {"key": 1, "op": "update", "data": {"v": 2}, "txn": {"id": "2", "position": "000000a1:00000000:0001"}},
    ])  # fmt: skip
    assert rows(replay(store, at_position="0000009a:00000000:0000")) == {"1": {"v": 1}}
    assert rows(replay(store, at_position="000000A1:00000000:0001")) == {"1": {"v": 2}}


def test_position_of_events_without_a_transaction_is_their_own(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}, "position": "0/16B3748"},
        {"key": 1, "op": "update", "data": {"v": 2}, "position": "0/16B3800"},
    ])  # fmt: skip
    assert rows(replay(store, at_position="0/16B37FF")) == {"1": {"v": 1}}


def test_a_transaction_without_a_commit_position_is_in_only_whole(store: Path) -> None:
    """Debezium's PostgreSQL events name their txId but not its commit; Maxwell's its xid."""
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}, "position": "0/100", "txn": {"id": "5", "position": None}},
        {"key": 2, "op": "insert", "data": {"v": 2}, "position": "0/200", "txn": {"id": "5", "position": None}},
        {"key": 3, "op": "insert", "data": {"v": 3}, "position": "0/300", "txn": {"id": "6", "position": None}},
    ])  # fmt: skip
    assert rows(replay(store, at_position="0/180")) == {}
    assert rows(replay(store, at_position="0/200")) == {"1": {"v": 1}, "2": {"v": 2}}
    assert rows(replay(store, at_position="0/2FF")) == {"1": {"v": 1}, "2": {"v": 2}}
    assert len(rows(replay(store, at_position="0/300"))) == 3


@pytest.mark.parametrize("position", ["0/ZZ", "16B37FF", "", "master.000001:4"])
def test_a_position_of_another_kind_than_the_stores_is_refused(store: Path, position: str) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": {"v": 1}, "position": "0/16B3748"}])
    with pytest.raises(UsageError, match="not a position of the kind this store holds"):
        replay(store, at_position=position)


def test_position_on_a_store_without_positions_is_a_usage_error(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": {}}])
    with pytest.raises(UsageError, match="no source positions"):
        replay(store, at_position="0/1")


def test_an_aborted_transaction_is_not_applied(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}, "txn": {"id": "1", "position": "0/10"}},
        {"key": 1, "op": "update", "data": {"v": 2}, "txn": {"id": "2", "position": "0/20", "aborted": True}},
    ])  # fmt: skip
    assert rows(replay(store)) == {"1": {"v": 1}}


def test_more_than_one_target_is_a_usage_error(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": {}}])
    with pytest.raises(UsageError, match="at most one"):
        replay(store, at_offset=0, at_time="2026-03-01T12:00:00Z")


# --------------------------------------------------------------------------- offsets and times


def test_at_offset_is_inclusive(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": {"v": i}} for i in range(5)])
    result = replay(store, at_offset=2)
    assert rows(result) == {"1": {"v": 2}} and result.offset == 2 and result.events == 3
    head = replay(store, at_offset=99)
    assert rows(head) == {"1": {"v": 4}} and head.offset == 4
    with pytest.raises(UsageError):
        replay(store, at_offset=-1)


def test_at_time_includes_every_event_stamped_at_that_instant(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}, "ts": "2026-03-01T14:00:00Z"},
        {"key": 1, "op": "patch", "data": {"v": 2}, "ts": "2026-03-01T14:03:00Z"},
        {"key": 2, "op": "insert", "data": {"w": 1}, "ts": "2026-03-01T14:03:00Z"},
        {"key": 1, "op": "patch", "data": {"v": 3}, "ts": "2026-03-01T14:03:00.000001Z"},
    ])  # fmt: skip
    result = replay(store, at_time="2026-03-01T14:03:00Z")
    assert rows(result) == {"1": {"v": 2}, "2": {"w": 1}} and result.offset == 2
    # the same instant written with another offset, and as a datetime
    assert replay(store, at_time="2026-03-01T16:03:00+02:00").digest == result.digest
    assert replay(store, at_time=dt.datetime(2026, 3, 1, 14, 3, tzinfo=dt.UTC)).digest == result.digest
    assert rows(replay(store, at_time="2026-03-01T14:02:59.999999Z")) == {"1": {"v": 1}}


def test_at_time_stops_at_the_first_event_stamped_later(store: Path) -> None:
    # Out-of-order stamps: the state is the longest prefix whose events are all at or before T, so
    # offset 2 (stamped 14:01) is not in the state at 14:01 because offset 1 (14:05) precedes it.
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": 1}, "ts": "2026-03-01T14:00:00Z"},
        {"key": 1, "op": "patch", "data": {"v": 2}, "ts": "2026-03-01T14:05:00Z"},
        {"key": 1, "op": "patch", "data": {"v": 3}, "ts": "2026-03-01T14:01:00Z"},
    ])  # fmt: skip
    result = replay(store, at_time="2026-03-01T14:01:00Z")
    assert rows(result) == {"1": {"v": 1}} and result.offset == 0
    assert rows(replay(store, at_time="2026-03-01T14:05:00Z")) == {"1": {"v": 3}}


def test_at_time_before_the_first_event_is_the_empty_state(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": {}, "ts": "2026-03-01T14:00:00Z"}])
    result = replay(store, at_time="2020-01-01T00:00:00Z")
    assert result.state.num_rows == 0 and result.offset is None and result.events == 0
    assert result.digest == hashlib.sha256(b"").hexdigest()


def test_at_time_that_is_not_a_time_is_a_usage_error(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": {}}])
    with pytest.raises(UsageError, match="cannot read"):
        replay(store, at_time="tea time")


def test_empty_store_replays_to_the_empty_state(store: Path) -> None:
    Store.create(store)
    result = replay(store)
    assert result.state.num_rows == 0 and result.offset is None
    assert result.digest == hashlib.sha256(b"").hexdigest()


# --------------------------------------------------------------------------- filters


def test_entity_filter(store: Path) -> None:
    write_events(store, [
        {"entity": "a", "key": 1, "op": "insert", "data": {"x": 1}},
        {"entity": "b", "key": 1, "op": "insert", "data": {"y": 1}},
    ])  # fmt: skip
    result = replay(store, entity="b")
    assert [(r["entity"], r["key"]) for r in result.state.to_pylist()] == [("b", "1")]
    # a name the store never saw is said to be one, not answered with an empty state
    with pytest.raises(NotFoundError, match="entity 'c' has no events in this store") as e:
        replay(store, entity="c")
    assert e.value.hint == "its entities: 'a', 'b'"


def test_key_filter_follows_the_row_through_its_earlier_keys(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"id": 1, "doc": "kept"}},
        {"key": 7, "op": "insert", "data": {"id": 7}},
        {"key": 5, "prev_key": 1, "op": "update", "data": {"id": 5}},
    ])  # fmt: skip
    result = replay(store, key="5")
    assert rows(result)["5"] == {"id": 5, "doc": "kept"}


def test_key_filter_returns_only_that_key(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"v": "first"}},
        {"key": 5, "prev_key": 1, "op": "update", "data": {"w": 1}},
        {"key": 1, "op": "insert", "data": {"v": "second"}},
    ])  # fmt: skip
    assert rows(replay(store, key="5")) == {"5": {"v": "first", "w": 1}}


def test_key_filter_keeps_the_truncate_of_its_entity(store: Path) -> None:
    write_events(store, [
        {"entity": "o", "key": 1, "op": "insert", "data": {"total": 1}},
        {"entity": "o", "key": None, "op": "truncate"},
    ])  # fmt: skip
    assert rows(replay(store), "o") == {}
    with pytest.raises(NotFoundError):
        replay(store, entity="o", key="1")


def test_key_family_stays_inside_its_entity(store: Path) -> None:
    write_events(store, [
        {"entity": "c", "key": 1, "op": "insert", "data": {"name": "a"}},
        {"entity": "o", "key": 1, "op": "insert", "data": {"total": 1}},
        {"entity": "c", "key": 4, "prev_key": 1, "op": "update", "data": {"name": "a4"}},
    ])  # fmt: skip
    result = replay(store, key="4")
    assert [(r["entity"], r["key"]) for r in result.state.to_pylist()] == [("c", "4")]


def test_unknown_key_is_not_found(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": {}}, {"key": 2, "op": "delete", "data": None}])
    with pytest.raises(NotFoundError):
        replay(store, key="nope")
    with pytest.raises(NotFoundError):
        replay(store, key="2")  # deleted: no state
    with pytest.raises(NotFoundError):
        replay(store, key="1", entity="other")  # the key exists, in another entity


# --------------------------------------------------------------------------- typed output


def test_column_added_midway_is_null_before_it_exists(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"id": 1, "name": "a"}},
        {"key": 2, "op": "insert", "data": {"id": 2, "name": "b", "email": "b@example.com"}},
        {"key": 1, "op": "patch", "data": {"name": "a2"}},
    ])  # fmt: skip
    result = replay(store)
    table = result.tables()["t"]
    assert table.schema.names == ["key", "id", "name", "email"]
    assert table.schema.field("id").type == pa.int64()
    assert table.to_pylist() == [
        {"key": "1", "id": 1, "name": "a2", "email": None},
        {"key": "2", "id": 2, "name": "b", "email": "b@example.com"},
    ]
    (written,) = export_state(result, tmp_path / "pq", "parquet")
    assert written.name == "t.parquet"
    assert pq.read_table(written).to_pylist() == table.to_pylist()
    (csv_file,) = export_state(result, tmp_path / "csv", "csv")
    assert csv_file.read_text().splitlines() == ["key,id,name,email", "1,1,a2,", "2,2,b,b@example.com"]


BIG = "12345678901234567890123456789012345678"  # 38 digits: PostgreSQL numeric(38,0) at its limit
NUMERIC_38 = "1234567890123456789012345678.0123456789"  # numeric(38,10)
INT64_MAX_PLUS_2 = str(2**63 + 1)
DOUBLE_PLUS_1 = str(2**53 + 1)


def _numbers_store(store: Path) -> Path:
    return write_events(store, [
        {"key": 1, "op": "insert", "data": f'{{"big":{BIG},"n38":{NUMERIC_38},"i":{INT64_MAX_PLUS_2},"d":1.10,"j":{DOUBLE_PLUS_1}}}'},
        {"key": 2, "op": "insert", "data": '{"big":1,"n38":0.5,"i":-9223372036854775809,"d":20.00,"j":-1}'},
    ])  # fmt: skip


def test_exact_numbers_in_the_state(store: Path) -> None:
    result = replay(_numbers_store(store))
    one = texts(result)[("t", "1")]
    for literal in (BIG, NUMERIC_38, INT64_MAX_PLUS_2, DOUBLE_PLUS_1):
        assert literal in one
    state = rows(result)
    assert state["1"]["d"] == Decimal("1.10") and state["2"]["d"] == Decimal("20")
    assert state["2"]["i"] == -(2**63) - 1


def test_exact_numbers_in_typed_parquet_and_csv(store: Path, tmp_path: Path) -> None:
    result = replay(_numbers_store(store))
    (parquet,) = export_state(result, tmp_path / "pq", "parquet")
    table = pq.read_table(parquet)
    assert pa.types.is_decimal(table.schema.field("big").type)
    assert pa.types.is_decimal(table.schema.field("i").type)
    assert pa.types.is_decimal(table.schema.field("d").type)
    assert table.schema.field("j").type == pa.int64()
    got = {r["key"]: r for r in table.to_pylist()}
    assert got["1"]["big"] == Decimal(BIG)
    assert got["1"]["n38"] == Decimal(NUMERIC_38)
    assert got["1"]["i"] == Decimal(INT64_MAX_PLUS_2) and got["2"]["i"] == Decimal(-(2**63) - 1)
    assert got["1"]["d"] == Decimal("1.10") and got["2"]["d"] == Decimal("20")
    assert got["1"]["j"] == 2**53 + 1
    (csv_file,) = export_state(result, tmp_path / "csv", "csv")
    lines = csv_file.read_text().splitlines()
    assert lines[0] == "key,big,n38,i,d,j"
    cells = dict(zip(lines[0].split(","), lines[1].split(","), strict=True))
    assert Decimal(cells["big"]) == Decimal(BIG) and Decimal(cells["n38"]) == Decimal(NUMERIC_38)
    assert cells["i"] == INT64_MAX_PLUS_2 and cells["j"] == DOUBLE_PLUS_1 and Decimal(cells["d"]) == Decimal("1.1")


def test_a_decimal_of_39_to_76_digits_is_a_decimal256_column(store: Path, tmp_path: Path) -> None:
    # PostgreSQL's numeric(40,10), say: a number column still, not JSON text
    wide = "123456789012345678901234567890.1234567890"
    write_events(store, [
        {"key": 1, "op": "insert", "data": '{"b":' + wide + "}"},
        {"key": 2, "op": "insert", "data": '{"b":1.5}'},
    ])  # fmt: skip
    (parquet,) = export_state(replay(store), tmp_path / "pq", "parquet")
    table = pq.read_table(parquet)
    assert table.schema.field("b").type == pa.decimal256(40, 10)
    assert table.column("b").to_pylist() == [Decimal(wide), Decimal("1.5")]
    ints = tmp_path / "ints"
    write_events(ints, [{"key": 1, "op": "insert", "data": '{"b":' + "1" * 40 + "}"}, {"key": 2, "op": "insert", "data": '{"b":5}'}])
    (parquet,) = export_state(replay(ints), tmp_path / "ints_pq", "parquet")
    assert pq.read_table(parquet).schema.field("b").type == pa.decimal256(76, 0)
    # and the store meets a dump of it exactly, whatever DuckDB reads
    dump = tmp_path / "dump.csv"
    dump.write_text(f"key,b\n1,{wide}\n2,1.50\n")
    assert logtool.diff(store, dump, key_columns=["key"]).same
    dump.write_text(f"key,b\n1,{wide[:-1]}1\n2,1.50\n")
    assert not logtool.diff(store, dump, key_columns=["key"]).same


def test_exact_numbers_survive_patches_and_key_changes(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": f'{{"big":{BIG},"a":1}}'},
        {"key": 1, "op": "patch", "data": '{"a":2}'},
        {"key": 2, "op": "insert", "data": '{"a":1}'},
        {"key": 2, "op": "patch", "data": f'{{"i":{INT64_MAX_PLUS_2}}}'},
        {"key": 3, "op": "insert", "data": '{"a":1}'},
        {"key": 4, "prev_key": 3, "op": "update", "data": f'{{"n":{NUMERIC_38}}}'},
    ])  # fmt: skip
    state = rows(replay(store))
    assert state == {
        "1": {"big": Decimal(BIG), "a": 2},
        "2": {"a": 1, "i": 2**63 + 1},
        "4": {"a": 1, "n": Decimal(NUMERIC_38)},
    }


def test_exponent_numbers_stay_exact(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": '{"n":9007199254740993e0}'}])
    assert rows(replay(store))["1"]["n"] == 9007199254740993


def test_numbers_past_float64s_range_stay_exact(store: Path, tmp_path: Path) -> None:
    # float64 would make 1e-400 a zero and 1e400 an infinity: in the state, whole rows and
    # patches alike, and in the typed output, where the column is JSON text
    write_events(store, [
        {"key": 1, "op": "insert", "data": '{"v":1e-400,"w":1.5}'},
        {"key": 2, "op": "insert", "data": '{"v":1,"w":1.5}'},
        {"key": 2, "op": "patch", "data": '{"v":-2.5E+400}'},
    ])  # fmt: skip
    result = replay(store)
    assert [r["state"] for r in result.state.to_pylist()] == ['{"v":1e-400,"w":1.5}', '{"v":-2.5E+400,"w":1.5}']
    (csv_file,) = export_state(result, tmp_path / "csv", "csv")
    assert csv_file.read_text().splitlines()[1:] == ["1,1e-400,1.5", "2,-2.5E+400,1.5"]


def test_fractions_below_a_millionth_stay_decimals(store: Path, tmp_path: Path) -> None:
    """A numeric(16,8) column (satoshis): DuckDB writes 0.00000001 as 1e-8, which would make the
    column a float. Whole rows and patches alike keep the decimal; a snapshot gives the same digest."""
    write_events(store, [
        {"key": 1, "op": "insert", "data": '{"amt":0.00000001,"n":1}'},
        {"key": 2, "op": "insert", "data": '{"amt":0.10000000,"n":1}'},
        {"key": 3, "op": "insert", "data": '{"amt":1,"n":1}'},
        {"key": 3, "op": "patch", "data": '{"amt":-0.00000120}'},
    ])  # fmt: skip
    result = replay(store)
    assert [r["state"] for r in result.state.to_pylist()] == [
        '{"amt":0.00000001,"n":1}', '{"amt":0.1,"n":1}', '{"amt":-0.0000012,"n":1}'
    ]  # fmt: skip
    (parquet,) = export_state(result, tmp_path / "pq", "parquet")
    table = pq.read_table(parquet)
    assert table.schema.field("amt").type == pa.decimal128(9, 8)
    assert table.column("amt").to_pylist() == [Decimal("0.00000001"), Decimal("0.1"), Decimal("-0.0000012")]
    (csv_file,) = export_state(result, tmp_path / "csv", "csv")
    assert csv_file.read_text().splitlines()[1:] == ["1,0.00000001,1", "2,0.10000000,1", "3,-0.00000120,1"]
    logtool.snapshot(store)
    again = replay(store)
    assert again.snapshot is not None and again.digest == result.digest
    # a zero is no fraction below a millionth, however many zeros it is written with
    zeros = tmp_path / "zeros"
    write_events(zeros, [{"key": 1, "op": "insert", "data": '{"x":0.0000000}'}])
    assert [r["state"] for r in replay(zeros).state.to_pylist()] == ['{"x":0.0}']


def test_nan_and_infinity_carried_as_strings_become_float64(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"x": 1.5, "label": "NaN"}},
        {"key": 2, "op": "insert", "data": {"x": "NaN", "label": "x"}},
        {"key": 3, "op": "insert", "data": {"x": "Infinity", "label": "y"}},
        {"key": 4, "op": "insert", "data": {"x": "-Infinity", "label": "z"}},
        {"key": 5, "op": "insert", "data": {"x": None, "label": None}},
    ])  # fmt: skip
    result = replay(store)
    assert rows(result)["2"] == {"x": "NaN", "label": "x"}  # the state keeps what the source sent
    (parquet,) = export_state(result, tmp_path / "pq", "parquet")
    table = pq.read_table(parquet)
    assert table.schema.field("x").type == pa.float64()
    assert table.schema.field("label").type == pa.string()  # a string column that holds "NaN" stays text
    x = table.column("x").to_pylist()
    assert x[0] == 1.5 and x[1] != x[1] and x[2] == float("inf") and x[3] == float("-inf") and x[4] is None
    assert table.column("label").to_pylist()[0] == "NaN"
    (csv_file,) = export_state(result, tmp_path / "csv", "csv")
    cells = [line.split(",")[1] for line in csv_file.read_text().splitlines()[1:]]
    assert float(cells[1]) != float(cells[1])
    assert float(cells[2]) == float("inf") and float(cells[3]) == float("-inf") and cells[4] == ""


def test_long_numbers_beside_nan_stay_exact(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": f'{{"v":{BIG}}}'},
        {"key": 2, "op": "insert", "data": {"v": "NaN"}},
    ])  # fmt: skip
    table = replay(store).tables()["t"]
    values = table.column("v").to_pylist()
    assert Decimal(values[0]) == Decimal(BIG)  # float64 would round it: kept as exact text
    assert json.loads(values[1]) == "NaN"


def test_json_documents_and_mixed_columns_stay_json(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"doc": {"a": [1, 2]}, "mixed": 1, "flag": True}},
        {"key": 2, "op": "insert", "data": {"doc": [1, "x"], "mixed": "one", "flag": False}},
    ])  # fmt: skip
    result = replay(store)
    table = result.tables()["t"]
    assert table.schema.field("flag").type == pa.bool_()
    for name in ("doc", "mixed"):
        f = table.schema.field(name)
        assert f.type == pa.string() and f.metadata == {b"logtool.json": b"1"}
    assert [json.loads(v) for v in table.column("doc").to_pylist()] == [{"a": [1, 2]}, [1, "x"]]
    assert [json.loads(v) for v in table.column("mixed").to_pylist()] == [1, "one"]
    (csv_file,) = export_state(result, tmp_path / "csv", "csv")
    assert csv_file.read_text().splitlines()[1] == '1,"{""a"":[1,2]}",1,true'


def test_csv_export_writes_null_empty_and_the_empty_string_quoted(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"s": None, "t": "", "u": "a,b", "v": ' lead', "w": 'say "hi"'}},
        {"key": 2, "op": "insert", "data": {"s": "x", "t": "y", "u": "line\nbreak", "v": "plain", "w": None}},
    ])  # fmt: skip
    (csv_file,) = export_state(replay(store), tmp_path / "csv", "csv")
    assert csv_file.read_text() == ('key,s,t,u,v,w\n1,,"","a,b"," lead","say ""hi"""\n2,x,y,"line\nbreak",plain,\n')


def test_export_writes_one_file_per_entity(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"entity": "public.customers", "key": 1, "op": "insert", "data": {"a": 1}},
        {"entity": "public.orders", "key": 1, "op": "insert", "data": {"b": 1}},
        {"entity": "odd/name here", "key": 1, "op": "insert", "data": {"c": 1}},
    ])  # fmt: skip
    out = tmp_path / "out"
    written = export_state(replay(store), out, "parquet")
    odd = f"odd_name_here-{hashlib.sha256(b'odd/name here').hexdigest()[:8]}.parquet"  # a plain form, and whose
    assert sorted(p.name for p in written) == [odd, "public.customers.parquet", "public.orders.parquet"]
    # no temp files left; the list of what was written, for the next export into the directory
    assert sorted(p.name for p in out.iterdir()) == sorted([".logtool-export.json", *(p.name for p in written)])
    with pytest.raises(UsageError):
        export_state(replay(store), tmp_path / "x", "jsonl")


def test_export_never_writes_two_entities_to_one_file(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"entity": "a/b", "key": 1, "op": "insert", "data": {"x": 1}},
        {"entity": "a_b", "key": 1, "op": "insert", "data": {"y": 1}},
    ])  # fmt: skip
    written = export_state(replay(store), tmp_path / "out", "parquet")
    assert len(set(written)) == 2
    # a_b keeps its own name whatever else the store holds; a/b gets a plain form and a hash
    assert "a_b.parquet" in {p.name for p in written}
    alone = export_state(replay(store, entity="a_b"), tmp_path / "alone", "parquet")
    assert [p.name for p in alone] == ["a_b.parquet"]


def test_export_names_long_dotted_and_case_folded_entities_apart(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"entity": "x" * 300, "key": 1, "op": "insert", "data": {"v": 1}},
        {"entity": "..", "key": 1, "op": "insert", "data": {"v": 2}},
        {"entity": "Foo", "key": 1, "op": "insert", "data": {"v": 3}},
        {"entity": "foo", "key": 1, "op": "insert", "data": {"v": 4}},
        {"entity": "", "key": 1, "op": "insert", "data": {"v": 5}},  # not `.csv`, a hidden file
    ])  # fmt: skip
    written = export_state(replay(store), tmp_path / "out", "csv")
    names = [p.name for p in written]
    assert len({n.lower() for n in names}) == 5 and all(len(n) < 120 and not n.startswith(".") for n in names)


def test_a_state_that_is_no_object_takes_a_column_no_object_has(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": '5'},
        {"key": 2, "op": "insert", "data": {"value": 5}},
    ])  # fmt: skip
    (csv_file,) = export_state(replay(store), tmp_path / "out", "csv")
    assert csv_file.read_text().splitlines() == ["key,_value,value", "1,5,", "2,,5"]  # (columns as first seen)


def test_export_into_a_directory_removes_only_its_own_earlier_files(store: Path, tmp_path: Path) -> None:
    """An entity with no rows left gets no file: its file from an earlier export must not stay."""
    write_events(store, [
        {"entity": "a", "key": 1, "op": "insert", "data": {"v": 1}},
        {"entity": "b", "key": 1, "op": "insert", "data": {"v": 2}},
    ])  # fmt: skip
    out = tmp_path / "out"
    export_state(replay(store), out, "csv")
    (out / "notes.txt").write_text("mine")
    write_events(store, [{"entity": "b", "key": 1, "op": "delete"}])
    export_state(replay(store), out, "csv")
    assert sorted(p.name for p in out.iterdir()) == [".logtool-export.json", "a.csv", "notes.txt"]
    with pytest.raises(UsageError, match="cannot create the directory"):
        export_state(replay(store), out / "a.csv" / "sub", "csv")


def test_export_names_a_file_apart_from_one_that_differs_only_in_case(store: Path, tmp_path: Path) -> None:
    """--entity Users, then --entity users, into one directory: on a file system that folds case,
    users.csv would overwrite Users.csv."""
    write_events(store, [{"entity": "Users", "key": 1, "op": "insert", "data": {"v": 1}},
                         {"entity": "users", "key": 1, "op": "insert", "data": {"v": 2}}])  # fmt: skip
    out = tmp_path / "one"
    export_state(replay(store, entity="Users"), out, "csv", entity="Users")
    export_state(replay(store, entity="users"), out, "csv", entity="users")
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names[0] == "Users.csv" and names[1].startswith("users-") and len(names) == 2


def test_an_exports_file_names_stay_put_when_an_earlier_files_entity_is_gone(store: Path, tmp_path: Path) -> None:
    write_events(store, [{"entity": "Foo", "key": 1, "op": "insert", "data": {"v": 1}},
                         {"entity": "Foo", "key": 1, "op": "delete"},
                         {"entity": "foo", "key": 2, "op": "insert", "data": {"v": 2}}])  # fmt: skip
    out = tmp_path / "out"
    export_state(replay(store, at_offset=0), out, "csv")
    for _ in range(2):  # Foo.csv is gone with its rows; foo keeps its plain name, export after export
        export_state(replay(store), out, "csv")
        assert sorted(p.name for p in out.iterdir()) == [".logtool-export.json", "foo.csv"]


def test_export_into_the_store_itself_is_refused(store: Path) -> None:
    write_events(store, [{"entity": "a", "key": 1, "op": "insert", "data": {"v": 1}}])
    (store.parent / "link").symlink_to(store / "quarantine")
    for inside in (store / "segments", store / "exports" / "today", store.parent / "link"):
        with pytest.raises(UsageError, match="is inside the store"):
            export_state(replay(store), inside, "parquet")
    assert not (store / "exports").exists() and not list((store / "segments").glob("a.*"))


def test_export_leaves_the_other_formats_files_and_the_entities_not_asked_for(store: Path, tmp_path: Path) -> None:
    write_events(store, [
        {"entity": "a", "key": 1, "op": "insert", "data": {"v": 1}},
        {"entity": "b", "key": 1, "op": "insert", "data": {"v": 2}},
    ])  # fmt: skip
    out = tmp_path / "state"
    export_state(replay(store), out, "parquet")
    export_state(replay(store), out, "csv")  # the README's two examples, one after the other
    assert sorted(p.name for p in out.iterdir()) == [".logtool-export.json", "a.csv", "a.parquet", "b.csv", "b.parquet"]
    export_state(replay(store, entity="a"), out, "csv", entity="a")
    assert (out / "b.csv").exists()
    write_events(store, [{"entity": "b", "key": 1, "op": "delete"}])
    export_state(replay(store), out, "parquet")  # b is gone: its Parquet file goes, its CSV file stays
    assert sorted(p.name for p in out.iterdir()) == [".logtool-export.json", "a.csv", "a.parquet", "b.csv"]
    export_state(replay(store), out, "csv")
    assert sorted(p.name for p in out.iterdir()) == [".logtool-export.json", "a.csv", "a.parquet"]
    # the entity a replay of it alone finds without rows: its own file goes, and only it
    write_events(store, [{"entity": "a", "key": 1, "op": "delete"}, {"entity": "c", "key": 1, "op": "insert", "data": {}}])
    (out / "c.csv").write_text("an earlier export's\n")
    export_state(replay(store, entity="a"), out, "csv", entity="a")
    assert sorted(p.name for p in out.iterdir()) == [".logtool-export.json", "a.parquet", "c.csv"]


# --------------------------------------------------------------------------- canonical state, digest


def test_digest_is_recomputable_from_the_rows(store: Path) -> None:
    write_events(store, [
        {"entity": "a", "key": 2, "op": "insert", "data": {"v": "é"}},
        {"entity": "a", "key": 10, "op": "insert", "data": {"v": 1}},
        {"entity": "b", "key": None, "op": "insert", "data": {"v": 3}},
    ])  # fmt: skip
    result = replay(store)
    h = hashlib.sha256()
    for r in result.state.to_pylist():
        key = "\x00" if r["key"] is None else r["key"]
        h.update(f"{r['entity']}\x1f{key}\x1f{r['state']}\x1f\x1e".encode())
    assert result.digest == h.hexdigest() == state_digest(result.state)
    order = [(r["entity"], r["key"]) for r in result.state.to_pylist()]
    assert order == [("a", "10"), ("a", "2"), ("b", None)]  # by entity, then key as text


def test_digest_does_not_depend_on_how_the_log_was_cut_into_segments_and_commits(tmp_path: Path) -> None:
    events = [
        {"key": i % 3, "op": ("insert", "patch", "update", "delete")[i % 4], "data": {"i": i, f"c{i % 2}": i}}
        for i in range(20)
    ]
    one = write_events(tmp_path / "one", events)
    many = tmp_path / "many"
    for start in range(0, 20, 7):
        write_events(many, events[start : start + 7], segment_rows=3)
    assert replay(one).digest == replay(many).digest
    assert replay(one, at_offset=11).digest == replay(many, at_offset=11).digest


def test_replaying_twice_gives_the_same_state_and_digest(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"a": 1}},
        {"key": 2, "prev_key": 1, "op": "update", "data": {"b": 2}},
        {"key": None, "op": "insert", "data": {"c": 3}},
        {"key": 3, "op": "patch", "data": {"$set": {"x.y": 1}}},
    ])  # fmt: skip
    first, second = replay(store), replay(store)
    assert first.digest == second.digest
    assert first.state.equals(second.state)


def test_canonical_state_does_not_depend_on_the_payload_spelling(tmp_path: Path) -> None:
    spaced = write_events(
        tmp_path / "spaced", [{"key": 1, "op": "insert", "data": '{"a": 12345678901234567890, "s": "\\u00e9"}'}]
    )
    compact = write_events(
        tmp_path / "compact", [{"key": 1, "op": "insert", "data": '{"a":12345678901234567890,"s":"é"}'}]
    )
    assert replay(spaced).state.to_pylist() == replay(compact).state.to_pylist()


def test_canonical_state_of_short_numbers_is_their_shortest_form(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": '{"a": 1.10, "b": 20.00, "s": "\\u00e9"}'}])
    assert texts(replay(store)) == {("t", "1"): '{"a":1.1,"b":20.0,"s":"é"}'}


def test_update_with_a_scalar_payload_leaves_no_null_state(store: Path) -> None:
    write_events(store, [{"key": 1, "op": "insert", "data": 5}, {"key": 1, "op": "update", "data": 6}])
    result = replay(store)
    assert None not in result.state.column("state").to_pylist()
    assert result.digest != hashlib.sha256(b"").hexdigest()


# --------------------------------------------------------------------------- snapshots


def _mixed_log() -> list[dict[str, Any]]:
    return [
        {"entity": "c", "key": 1, "op": "insert", "data": {"name": "a", "n": 1}},
        {"entity": "c", "key": 2, "op": "insert", "data": {"name": "b", "n": 2}},
        {"entity": "o", "key": 1, "op": "insert", "data": {"total": 1.5}},
        {"entity": "c", "key": 1, "op": "patch", "data": {"n": 10}},
        {"entity": "c", "key": None, "op": "insert", "data": {"free": 1}},
        {"entity": "c", "key": 3, "op": "insert", "data": f'{{"big":{BIG}}}'},
        {"entity": "c", "key": 2, "op": "delete", "data": None},
        {"entity": "c", "key": 4, "prev_key": 1, "op": "update", "data": {"name": "a4"}},
        {"entity": "o", "key": 2, "op": "insert", "data": {"total": 2}},
        {"entity": "c", "key": 3, "op": "patch", "data": {"m": 1}},
        {"entity": "o", "key": None, "op": "truncate"},
        {"entity": "o", "key": 3, "op": "insert", "data": {"total": 3}},
        {"entity": "c", "key": 5, "op": "patch", "data": {"$set": {"a.b": 1}}},
        {"entity": "c", "key": 4, "op": "patch", "data": {"n": None}},
    ]


def test_a_row_with_a_long_number_has_one_form_however_it_was_reached(store: Path) -> None:
    """Its long number keeps its exact text; its other numbers take the form any row's take, so
    the state (and digest) from a snapshot where the row had no long number yet is the same."""
    write_events(store, [
        {"key": 1, "op": "insert", "data": '{"a":2.5E3,"b":1,"c":1.50,"d":[1e-5]}'},
        {"key": 1, "op": "patch", "data": '{"b":12345678901234567890}'},
    ])  # fmt: skip
    fresh = replay(store, use_snapshots=False)
    assert fresh.state.column("state").to_pylist() == ['{"a":2500.0,"b":12345678901234567890,"c":1.5,"d":[0.00001]}']
    snapshot(store, at_offset=0)
    used = replay(store)
    assert used.snapshot == 0 and used.digest == fresh.digest and used.state.equals(fresh.state)


@pytest.mark.parametrize("snap_at", [0, 3, 6, 9, 12])
def test_replay_from_a_snapshot_equals_replay_from_zero(store: Path, snap_at: int) -> None:
    write_events(store, _mixed_log())
    entry = snapshot(store, at_offset=snap_at)
    assert entry["offset"] == snap_at and entry["reducer"] == "kv/1"
    assert entry["digest"] == replay(store, at_offset=snap_at, use_snapshots=False).digest
    for target in (snap_at, 13, None):
        fresh = replay(store, at_offset=target, use_snapshots=False)
        used = replay(store, at_offset=target)
        assert used.snapshot == snap_at and fresh.snapshot is None
        assert used.events == (13 if target is None else target) - snap_at < fresh.events
        assert used.digest == fresh.digest and used.state.equals(fresh.state)
    for ent in ("c", "o"):
        assert replay(store, entity=ent).digest == replay(store, entity=ent, use_snapshots=False).digest
    by_key = replay(store, entity="c", key="3")
    assert by_key.digest == replay(store, entity="c", key="3", use_snapshots=False).digest


def test_a_snapshot_after_the_target_is_not_used_and_the_nearest_below_is(store: Path) -> None:
    write_events(store, _mixed_log())
    for at in (2, 5, 11):
        snapshot(store, at_offset=at)
    assert replay(store, at_offset=4).snapshot == 2
    assert replay(store, at_offset=10).snapshot == 5
    assert replay(store).snapshot == 11
    assert replay(store, at_offset=1).snapshot is None


def test_a_snapshot_is_used_for_time_and_position_targets_only_below_the_prefix(store: Path) -> None:
    _two_transactions(store, commit_order=False)  # A at offsets 0 and 2, B at offset 1
    snapshot(store, at_offset=2)  # (offset 1 is inside A)
    partial = replay(store, at_position="0/300")  # offsets 0 and 2 excluded, so no prefix reaches 2
    assert partial.snapshot is None and rows(partial) == {"3": {"by": "B"}}
    full = replay(store, at_position="0/400")
    assert full.snapshot == 2 and full.digest == replay(store, use_snapshots=False).digest


def test_a_snapshot_of_another_reducer_below_the_one_used_is_not_warned_of(tmp_path: Path) -> None:
    """A replay that started from its own snapshot warned that another reducer's, at the same
    offset or below it, was ignored: after a head drop (which stores the kv reducer's snapshot
    beside the reducers' one) every replay said "snapshot at offset 39 ... ignored" while it
    started from the snapshot at offset 39."""
    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    reducer = shutil.copy(BANK_REDUCERS, tmp_path / "bank_reducers.py")
    snapshot(store, at_offset=39, reducer=str(reducer))
    snapshot(store, at_offset=39)  # the kv reducer's, at the same offset
    snapshot(store, at_offset=20)  # and below it
    used = replay(store, reducer=str(reducer))
    assert used.snapshot == 39 and not any("another reducer" in w for w in used.warnings), used.warnings
    kv = replay(store)
    assert kv.snapshot == 39 and not any("another reducer" in w for w in kv.warnings), kv.warnings
    snapshot(store, at_offset=60, reducer=str(reducer))  # nearer the head than any kv snapshot: said
    fingerprint = next(s["reducer"] for s in Store.open(store).state().of_kind("snapshot") if s["offset"] == 60)
    kv = replay(store)
    assert kv.snapshot == 39 and [w for w in kv.warnings if "another reducer" in w] == [
        f"snapshot at offset 60 was taken with another reducer ({fingerprint}); ignored"
    ]


def test_a_snapshot_taken_with_another_reducer_is_ignored_with_a_warning(tmp_path: Path) -> None:
    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    reducer = shutil.copy(BANK_REDUCERS, tmp_path / "bank_reducers.py")
    snapshot(store, at_offset=40, reducer=str(reducer))
    used = replay(store, reducer=str(reducer))
    assert used.snapshot == 40 and used.events == 44 and not used.warnings
    # The module changes: its fingerprint changes, and the old snapshot must not be trusted.
    Path(reducer).write_text(Path(reducer).read_text() + "\n# balances reviewed\n")
    changed = replay(store, reducer=str(reducer))
    assert changed.snapshot is None and changed.events == 85
    assert changed.digest == used.digest
    assert any("snapshot at offset 40" in w and "another reducer" in w for w in changed.warnings)
    kv = replay(store)  # the kv reducer ignores it too
    assert kv.snapshot is None and any("another reducer" in w for w in kv.warnings)


def test_a_snapshot_inside_a_key_swapping_transaction(store: Path) -> None:
    write_events(store, [
        {"key": 1, "op": "insert", "data": {"n": "one"}},
        {"key": 2, "op": "insert", "data": {"n": "two"}},
        {"key": 2, "prev_key": 1, "op": "update", "data": {}, "txn": "T"},
        {"key": 1, "prev_key": 2, "op": "update", "data": {}, "txn": "T"},
    ])  # fmt: skip
    snapshot(store, at_offset=2)
    assert rows(replay(store)) == {"1": {"n": "two"}, "2": {"n": "one"}}


def test_a_snapshot_below_where_the_log_starts_says_so(store: Path) -> None:
    """A log whose offsets start at 1000 (--offset-field) holds nothing below it: a snapshot there
    says where the log starts, and blames a purge or compaction only where one removed events at or
    below the target. Its first transaction is its first, whatever its first offset: a snapshot or
    a head drop inside it is refused as in a log starting at 0."""
    from logtool.purge import purge

    write_events(store, [
        {"offset": 1000, "key": 1, "op": "insert", "data": {"n": 1}, "txn": "T1"},
        {"offset": 1001, "key": 2, "op": "insert", "data": {"n": 2}, "txn": "T1"},
        {"offset": 1005, "key": 3, "op": "insert", "data": {"n": 3}, "txn": "T2"},
        {"offset": 1006, "key": 1, "op": "update", "data": {"n": 4}, "txn": "T2"},
    ])  # fmt: skip
    with pytest.raises(UsageError, match=r"^no event at or below offset 5: the log starts at offset 1000,") as e:
        snapshot(store, at_offset=5)
    assert e.value.hint == "snapshot at offset 1000 or later, or at the head"
    assert replay(store, at_offset=5).warnings == []  # before any event: nothing is unknown there
    with pytest.raises(UsageError, match=r"^offset 1000 is inside the log's first transaction"):
        snapshot(store, at_offset=1000)
    with pytest.raises(UsageError, match=r"cut falls inside the log's first transaction"):
        purge(store, before_offset=1001, dry_run=True)
    assert snapshot(store, at_offset=1004)["offset"] == 1001
    purge(store, key="2")  # offset 1001: T1 keeps 1000
    purge(store, key="1")  # 1000 and 1006
    with pytest.raises(UsageError, match=r"^no event at or below offset 1000 is left in the store \(a compaction or purge"):
        snapshot(store, at_offset=1000)
    with pytest.raises(UsageError, match=r"^no event at or below offset 999: the log starts at offset 1000,") as e:
        snapshot(store, at_offset=999)
    assert e.value.hint == "snapshot at offset 1005 or later, or at the head"


def test_snapshot_of_an_empty_store_is_a_usage_error(store: Path) -> None:
    Store.create(store)
    with pytest.raises(UsageError):
        snapshot(store)


def test_a_snapshot_without_the_reducers_of_a_domain_event_log_says_what_it_left_out(cli: Any, tmp_path: Path) -> None:
    """A kv snapshot of an event-sourced log leaves its domain events out, as a kv replay does: it says so."""
    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    entry = snapshot(store)
    assert any("this log holds domain events" in w and "--reducer MODULE" in w for w in entry["warnings"])
    assert "warnings" not in Store.open(store).state().of_kind("snapshot")[0]  # (not part of the commit)
    r = cli("snapshot", store, "--at-offset", "10")
    assert r.code == 0 and "warning: this log holds domain events" in r.err
    quiet = cli("snapshot", store, "--at-offset", "20", "--reducer", SAMPLES / "bank_reducers.py")
    assert quiet.code == 0 and "domain events" not in quiet.err


def test_an_offset_past_the_end_of_the_log(store: Path) -> None:
    """A replay there is the head, with a warning; a snapshot there is refused (no duplicate of the head's)."""
    write_events(store, [{"op": "insert", "key": "1", "data": {"v": 1}}, {"op": "insert", "key": "2", "data": {"v": 2}}])
    past = replay(store, at_offset=1_000_000)
    assert (past.offset, past.digest) == (1, replay(store).digest)
    assert past.warnings == ["offset 1000000 is past the end of the log (its last offset is 1): this is the state at the head"]
    assert replay(store, at_offset=1).warnings == []
    with pytest.raises(UsageError, match="--at-offset 2 is past the end of the log"):
        snapshot(store, at_offset=2)
    assert Store.open(store).state().of_kind("snapshot") == []


# --------------------------------------------------------------------------- Python reducers


@pytest.fixture(scope="module")
def bank_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("bank") / "store"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    return store


BANK_HEAD = {
    "acc-1001": {"owner": "Ada Lindqvist", "currency": "EUR", "balance": "2128.33", "status": "open"},
    "acc-1002": {"owner": "Bruno Fabbri", "currency": "EUR", "balance": "2494.59", "status": "open"},
    "acc-1003": {"owner": "Tomas Berg", "currency": "EUR", "balance": "-300.00", "status": "frozen"},
    "acc-1004": {"owner": "Saga Nystrom", "currency": "SEK", "balance": "0.00", "status": "closed"},
    "acc-1005": {"owner": "Leila Haddad", "currency": "EUR", "balance": "3142.94", "status": "open"},
    "acc-1006": {"owner": "Leila Haddad", "currency": "EUR", "balance": "1627.94", "status": "open"},
}


def test_bank_reducers_give_the_documented_balances(bank_store: Path) -> None:
    result = replay(bank_store, reducer=str(BANK_REDUCERS))
    assert rows(result, "account") == BANK_HEAD
    assert result.reducer.startswith("py/") and result.events == 85


def test_bank_overdraft_at_an_offset(bank_store: Path) -> None:
    before = rows(replay(bank_store, reducer=str(BANK_REDUCERS), at_offset=65), "account")
    after = rows(replay(bank_store, reducer=str(BANK_REDUCERS), at_offset=66), "account")
    assert before["acc-1003"]["balance"] == "40.00" and after["acc-1003"]["balance"] == "-300.00"
    assert after["acc-1003"]["status"] == "open"
    assert (
        rows(replay(bank_store, reducer=str(BANK_REDUCERS), at_offset=68), "account")["acc-1003"]["status"] == "frozen"
    )


def test_bank_upcaster_turns_a_version_1_deposit_into_euros(bank_store: Path) -> None:
    # index 6 is {"v": 1, "amount_cents": 1000} on acc-1001: ten euros.
    at5 = rows(replay(bank_store, reducer=str(BANK_REDUCERS), at_offset=5, key="acc-1001"), "account")
    at6 = rows(replay(bank_store, reducer=str(BANK_REDUCERS), at_offset=6, key="acc-1001"), "account")
    assert Decimal(at6["acc-1001"]["balance"]) - Decimal(at5["acc-1001"]["balance"]) == Decimal("10.00")


def test_a_composite_key_is_found_however_its_json_is_spaced(store: Path) -> None:
    write_events(store, [{"key": '{"order_id":1,"line":2}', "op": "insert", "data": {"qty": 3}}])
    assert rows(replay(store, key='{"order_id": 1, "line": 2}')) == {'{"order_id":1,"line":2}': {"qty": 3}}


def test_a_composite_key_is_found_whatever_the_order_of_its_members(store: Path) -> None:
    write_events(store, [
        {"key": '{"order_id":1,"line":2}', "op": "insert", "data": {"qty": 3}},
        {"key": '{"order_id":2,"line":1}', "op": "insert", "data": {"qty": 4}},
    ])  # fmt: skip
    assert rows(replay(store, key='{"line": 2, "order_id": 1}')) == {'{"order_id":1,"line":2}': {"qty": 3}}
    assert rows(replay(store, entity="t", key='{"line":1,"order_id":2}')) == {'{"order_id":2,"line":1}': {"qty": 4}}
    with pytest.raises(NotFoundError):  # the members of no stored key
        replay(store, key='{"line": 2}')


def test_a_damaged_snapshot_is_named_not_an_internal_error(store: Path) -> None:
    from logtool.errors import StoreError

    write_events(store, [{"key": k, "op": "insert", "data": {"v": k}} for k in range(5)])
    entry = snapshot(store, at_offset=2)
    path = store / entry["path"]
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(StoreError, match="a snapshot the commit log names cannot be read") as info:
        replay(store)
    assert "--no-snapshots" in (info.value.hint or "")
    assert replay(store, use_snapshots=False).state.num_rows == 5
    path.unlink()
    with pytest.raises(StoreError, match="a snapshot the commit log names is missing"):
        replay(store)


def test_python_reducer_from_a_snapshot_equals_from_zero(bank_store: Path, tmp_path: Path) -> None:
    store = tmp_path / "bank"
    shutil.copytree(bank_store, store)
    snapshot(store, at_offset=50, reducer=str(BANK_REDUCERS))
    fresh = replay(store, reducer=str(BANK_REDUCERS), use_snapshots=False)
    used = replay(store, reducer=str(BANK_REDUCERS))
    assert used.snapshot == 50 and used.events == 34
    assert used.digest == fresh.digest


def test_a_reducer_state_of_any_python_shape_replays_alike_from_a_snapshot(store: Path, tmp_path: Path) -> None:
    """Integer dict keys, tuples, sets, bytes, NaN: a snapshot gives the reducer back the very values."""
    module = write_module(
        tmp_path / "shapes.py",
        """
        import math
        from decimal import Decimal

        def step(state, event):
            state = state or {"by_n": {}, "seen": (), "tags": frozenset(), "raw": b"", "low": math.inf,
                              "pairs": {(0, "x"): 0}, "total": Decimal("0.10")}
            n = event["offset"]
            return {"by_n": {**state["by_n"], n % 3: state["by_n"].get(n % 3, 0) + 1},
                    "seen": state["seen"] + (n,), "tags": state["tags"] | {f"t{n % 2}"},
                    "raw": state["raw"] + bytes([n]), "low": min(state["low"], float("nan") if n == 4 else n),
                    "pairs": {**state["pairs"], (n, "x"): n}, "total": state["total"] + Decimal("0.10")}
        REDUCERS = {"Step": step}
    """,
    )
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}} for _ in range(8)])
    fresh = replay(store, reducer=str(module), use_snapshots=False)
    snapshot(store, at_offset=3, reducer=str(module))
    used = replay(store, reducer=str(module))
    assert used.snapshot == 3 and used.digest == fresh.digest
    assert json.loads(fresh.state.to_pylist()[0]["state"])["seen"] == list(range(8))


def test_an_upcaster_that_keeps_the_version_is_an_error(store: Path, tmp_path: Path) -> None:
    module = write_module(
        tmp_path / "looping.py",
        """
        def up(event):
            return {**event, "data": {**event["data"], "amount": 1}}  # forgot to raise "version"
        UPCASTERS = {("Paid", 1): up}
        REDUCERS = {"Paid": lambda state, event: {"n": 1}}
    """,
    )
    write_events(store, [{"key": "a", "op": "event", "type": "Paid", "data": {"version": 1}}])
    with pytest.raises(ReducerError, match="the upcaster of 'Paid' version 1 returned the same version at offset 0"):
        replay(store, reducer=str(module))


def test_upcasters_that_come_round_are_an_error_and_a_long_chain_runs_to_its_end(store: Path, tmp_path: Path) -> None:
    cycle = write_module(
        tmp_path / "cycle.py",
        """
        UPCASTERS = {("Paid", 1): lambda e: {**e, "data": {"version": 2}},
                     ("Paid", 2): lambda e: {**e, "data": {"version": 1}}}
        REDUCERS = {"Paid": lambda state, event: {"n": 1}}
    """,
    )
    write_events(store, [{"key": "a", "op": "event", "type": "Paid", "data": {"version": 1}}])
    with pytest.raises(ReducerError, match="the upcasters turn 'Paid' version 1 back into itself at offset 0"):
        replay(store, reducer=str(cycle))
    chain = write_module(
        tmp_path / "chain.py",
        """
        UPCASTERS = {("Paid", v): (lambda e: {**e, "data": {"version": e["data"]["version"] + 1}}) for v in range(1, 300)}
        REDUCERS = {"Paid": lambda state, event: {"version": event["data"]["version"]}}
    """,
    )
    assert json.loads(replay(store, reducer=str(chain)).state.to_pylist()[0]["state"]) == {"version": 300}


def test_a_reducers_small_decimals_stay_decimals(store: Path, tmp_path: Path) -> None:
    module = write_module(
        tmp_path / "amounts.py",
        """
        from decimal import Decimal

        def paid(state, event):
            return {"bal": Decimal(event["data"]["amt"])}
        REDUCERS = {"Paid": paid}
    """,
    )
    write_events(store, [{"key": "a", "op": "event", "type": "Paid", "data": {"amt": "0.00000001"}},
                         {"key": "b", "op": "event", "type": "Paid", "data": {"amt": "0.50"}}])  # fmt: skip
    result = replay(store, reducer=str(module))
    assert [r["state"] for r in result.state.to_pylist()] == ['{"bal":0.00000001}', '{"bal":0.5}']
    (parquet,) = export_state(result, tmp_path / "pq", "parquet")
    assert pq.read_table(parquet).schema.field("bal").type == pa.decimal128(9, 8)


def test_a_reducer_may_keep_the_events_time_in_its_state(store: Path, tmp_path: Path) -> None:
    """The commonest reducer of all stores event["ts"]: it is a datetime in UTC that a state and a
    snapshot keep as it is."""
    module = write_module(
        tmp_path / "opened.py",
        """
        import datetime as dt

        def opened(state, event):
            assert event["ts"].tzinfo is dt.timezone.utc
            return {"status": "open", "opened_at": event["ts"], "text": str(event["ts"])}
        REDUCERS = {"Opened": opened}
    """,
    )
    write_events(store, [{"key": "a1", "op": "event", "type": "Opened", "data": {}, "ts": "2026-01-01T00:00:00Z"},
                         {"key": "a2", "op": "event", "type": "Opened", "data": {}, "ts": "2026-01-01T00:00:01Z"}])  # fmt: skip
    fresh = replay(store, reducer=str(module), use_snapshots=False)
    assert json.loads(fresh.state.column("state")[0].as_py()) == {
        "status": "open", "opened_at": "2026-01-01T00:00:00+00:00", "text": "2026-01-01 00:00:00+00:00"
    }  # fmt: skip
    snapshot(store, at_offset=0, reducer=str(module))
    again = replay(store, reducer=str(module))
    assert again.snapshot == 0 and again.digest == fresh.digest


@pytest.mark.parametrize("value", ["collections.Counter(a=1)", "collections.OrderedDict(a=1)", "bytearray(b'x')",
                                   "collections.namedtuple('P', 'x')(1)"])
def test_a_subclass_in_a_reducers_state_is_refused_not_changed(store: Path, tmp_path: Path, value: str) -> None:
    # a snapshot would give it back as its base type: a replay from it would differ from zero
    module = write_module(tmp_path / "sub.py", f'import collections\nREDUCERS = {{"Step": lambda state, event: {{"v": {value}}}}}\n')
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    with pytest.raises(ReducerError, match="cannot be stored: a .* has no JSON form"):
        replay(store, reducer=str(module))


@pytest.mark.parametrize("key", ["Cur.EUR", "Level.HIGH", "(Cur.EUR, 1)"])
def test_a_subclass_as_a_dict_key_in_a_reducers_state_is_refused(store: Path, tmp_path: Path, key: str) -> None:
    """A dict key is held to the same exact types as a value: a str Enum's member would go in as
    its value and come back as that str, so a replay from a snapshot would differ from zero."""
    module = write_module(tmp_path / "keys.py", f"""
        from enum import Enum, IntEnum
        class Cur(str, Enum):
            EUR = "EUR"
        class Level(IntEnum):
            HIGH = 1
        REDUCERS = {{"Step": lambda state, event: {{{key}: 1}}}}
    """)
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    with pytest.raises(ReducerError, match=r"key a of t cannot be stored: a (Cur|Level) has no JSON form \(in a dict key\)"):
        replay(store, reducer=str(module))
    with pytest.raises(ReducerError, match="in a dict key"):
        snapshot(store, at_offset=0, reducer=str(module))


def test_a_set_in_a_dict_key_is_written_in_canonical_order_whatever_the_hash_seed(store: Path, tmp_path: Path) -> None:
    """A dict key holding a frozenset, however deep, is written with its members in the order a set
    value takes (Python's own text of it follows string hashing, which changes from one process to
    the next): the state and its digest are the same in every process, and a snapshot gives the
    reducer back the very keys."""
    module = write_module(tmp_path / "tags.py", """
        def step(state, event):
            state = state or {}
            for key in state:  # from a snapshot too: the very keys, not their text
                assert type(key) in (frozenset, tuple) and key in (WORDS, (1, frozenset({WORDS, "z"}))), key
            n = event["offset"]
            return {WORDS: state.get(WORDS, 0) + n, (1, frozenset({WORDS, "z"})): {"a", "b", "c", str(n)}}
        WORDS = frozenset({"alpha", "beta", "gamma", "delta", "epsilon"})
        REDUCERS = {"Step": step}
    """)
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}} for _ in range(4)])
    code = (
        "import sys, logtool\n"
        "r = logtool.replay(sys.argv[1], reducer=sys.argv[2], use_snapshots=False)\n"
        "print(r.digest, r.state.column('state')[0].as_py())\n"
    )
    runs = {subprocess.run([sys.executable, "-c", code, str(store), str(module)], capture_output=True, text=True,
                           check=True, timeout=120, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("0", "1", "2", "3", "4")}  # fmt: skip
    fresh = replay(store, reducer=str(module), use_snapshots=False)
    state = json.loads(fresh.state.column("state")[0].as_py())
    assert runs == {f"{fresh.digest} {fresh.state.column('state')[0].as_py()}\n"}
    assert state == {"frozenset({'alpha', 'beta', 'delta', 'epsilon', 'gamma'})": 6,
                     "(1, frozenset({'z', frozenset({'alpha', 'beta', 'delta', 'epsilon', 'gamma'})}))": ["3", "a", "b", "c"]}  # fmt: skip
    snapshot(store, at_offset=1, reducer=str(module))
    used = replay(store, reducer=str(module))
    assert used.snapshot == 1 and used.digest == fresh.digest


@pytest.mark.parametrize(("keys", "message"), [
    ('{1: "int", "1": "str"}', "its dict keys 1 and '1' would both be written \"1\""),
    ('{"(1, 2)": "str", (1, 2): "tuple"}', "its dict keys '(1, 2)' and (1, 2) would both be written \"(1, 2)\""),
    ('{"n": [{True: 1, "True": 2}]}', "its dict keys True and 'True' would both be written \"True\""),
    ('{None: 1, "None": 2}', "its dict keys None and 'None' would both be written \"None\""),
])  # fmt: skip
def test_dict_keys_written_as_one_text_are_refused_not_merged(store: Path, tmp_path: Path, keys: str, message: str) -> None:
    """Two keys of one dict that the state row would write as the same text (1 and "1") are an
    error naming the key, in replay, snapshot and history: never one of them silently left out."""
    module = write_module(tmp_path / "keys.py", f"REDUCERS = {{'Step': lambda state, event: {keys}}}\n")
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    for run in (lambda: replay(store, reducer=str(module)), lambda: snapshot(store, at_offset=0, reducer=str(module)),
                lambda: logtool.history(store, "a", reducer=str(module))):  # fmt: skip
        with pytest.raises(ReducerError, match="key a of t cannot be stored: " + re.escape(message)) as caught:
            run()
        assert "keep such keys apart" in (caught.value.hint or "")


def test_a_helper_beside_the_reducer_counts_in_its_fingerprint(store: Path, tmp_path: Path) -> None:
    from logtool.replay import load_reducer

    (tmp_path / "rates.py").write_text("FACTOR = 1\n")
    module = write_module(tmp_path / "counting.py", """
        from rates import FACTOR
        REDUCERS = {"Step": lambda state, event: {"n": (state or {}).get("n", 0) + FACTOR}}
    """)
    first = load_reducer(str(module)).fingerprint
    assert load_reducer(str(module)).fingerprint == first  # the same, however often it is loaded
    (tmp_path / "rates.py").write_text("FACTOR = 10\n")
    assert load_reducer(str(module)).fingerprint != first
    # two reducers with helpers of one name each get their own
    for name, n in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "rules.py").write_text(f"N = {n}\n")
        write_module(tmp_path / name / "red.py", 'from rules import N\nREDUCERS = {"Step": lambda state, event: {"n": N}}\n')
    ones = load_reducer(str(tmp_path / "one" / "red.py")).reducers["Step"](None, {})
    twos = load_reducer(str(tmp_path / "two" / "red.py")).reducers["Step"](None, {})
    assert (ones, twos) == ({"n": 1}, {"n": 2})
    # a helper imported again inside a reducer, as it runs, is still there
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "rates.py").write_text("N = 3\n")
    write_module(tmp_path / "three" / "red.py", """
        import rates
        def step(state, event):
            import rates as again
            return {"n": again.N}
        REDUCERS = {"Step": step}
    """)
    assert load_reducer(str(tmp_path / "three" / "red.py")).reducers["Step"](None, {}) == {"n": 3}
    # in a package: relative imports from its modules' own packages, absolute ones by its name
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .sub import REDUCERS\n")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.rules import REDUCERS\n")
    (package / "sub" / "rules.py").write_text('REDUCERS = {"Step": lambda state, event: {"n": 1}}\n')
    before = load_reducer(str(package)).fingerprint
    (package / "sub" / "rules.py").write_text('REDUCERS = {"Step": lambda state, event: {"n": 2}}\n')
    assert load_reducer(str(package)).fingerprint != before


def test_a_reducer_module_installed_on_its_own_leaves_the_libraries_beside_it_alone(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reducer installed as a single module sits among other installed libraries: they are not
    its helpers, so they are neither in its fingerprint nor run again from their source."""
    replay_module = sys.modules["logtool.replay"]  # (the package names its function replay)

    libs = tmp_path / "site-packages"
    libs.mkdir()
    (libs / "someinstalledlib.py").write_text("LOADS = []\nLOADS.append(1)\nRATE = 2\n")
    write_module(libs / "shopreducers.py", """
        import someinstalledlib
        def dep(state, event):
            return {"bal": (state or {}).get("bal", 0) + event["data"]["amt"] * someinstalledlib.RATE,
                    "loads": len(someinstalledlib.LOADS)}
        REDUCERS = {"Dep": dep}
    """)
    monkeypatch.setattr(replay_module, "_library_roots", lambda: frozenset({libs.resolve()}))
    monkeypatch.syspath_prepend(str(libs))
    monkeypatch.delitem(sys.modules, "someinstalledlib", raising=False)
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    first = replay(store, reducer="shopreducers")
    assert rows(first) == {"a": {"bal": 30, "loads": 1}}
    assert rows(replay(store, reducer="shopreducers")) == {"a": {"bal": 30, "loads": 1}}  # imported once, as any library
    (libs / "someinstalledlib.py").write_text("LOADS = []\nLOADS.append(1)\nRATE = 3\n")
    assert replay_module.load_reducer("shopreducers").fingerprint == first.reducer  # not the reducer's own code


def test_a_reducer_in_a_directory_too_big_to_look_through_is_refused(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reducer's fingerprint hashes the Python files of the directory it is imported from: one
    put in a directory holding a great many files (a home directory) is refused, with a hint,
    rather than walked for minutes."""
    replay_module = sys.modules["logtool.replay"]
    monkeypatch.setattr(replay_module, "_WALK_LIMIT", 50)
    for i in range(60):
        (tmp_path / f"notes{i}.txt").write_text("")  # (not Python: no cost)
    module = write_module(tmp_path / "steps.py", 'REDUCERS = {"Step": lambda state, event: {"n": 1}}\n')
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    assert rows(replay(store, reducer=str(module))) == {"a": {"n": 1}}
    for i in range(60):
        (tmp_path / f"script{i}.py").write_text("")
    with pytest.raises(UsageError, match="holds more than 50 Python files and folders") as e:
        replay(store, reducer=str(module))
    assert str(e.value).startswith(f"reducer {module.resolve()}: ")
    assert e.value.hint == "put the reducer and its helpers in a directory of their own"


def test_the_reducer_code_that_runs_is_the_code_its_fingerprint_hashes(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each load reads the reducer and its helpers as they are on disk and runs those very bytes:
    a helper edited in a long-lived process is not the copy an earlier load (or the process
    itself) imported, nor a stale .pyc of an edit in the same second, so a snapshot taken after
    the edit holds what a replay from zero gives. Named by its import name, the same."""
    import importlib.util

    from logtool.replay import load_reducer

    (tmp_path / "fee.py").write_text("RATE = 1\n")
    module = write_module(tmp_path / "red.py", """
        import fee
        def dep(state, event):
            return {"bal": (state or {}).get("bal", 0) + event["data"]["amt"] * fee.RATE * 1}
        REDUCERS = {"Dep": dep}
    """)
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    first = load_reducer(str(module)).fingerprint
    assert rows(replay(store, reducer=str(module))) == {"a": {"bal": 15}}
    # the process holds a copy of its own, as a notebook that imported the helper would
    spec = importlib.util.spec_from_file_location("fee", tmp_path / "fee.py")
    assert spec is not None and spec.loader is not None
    own = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(own)
    monkeypatch.setitem(sys.modules, "fee", own)
    (tmp_path / "fee.py").write_text("RATE = 2\n")  # (the same size, within the same second)
    snapshot(store, reducer=str(module))
    from_snapshot = replay(store, reducer=str(module))
    assert from_snapshot.snapshot == 1 and from_snapshot.reducer != first
    assert rows(from_snapshot) == rows(replay(store, reducer=str(module), use_snapshots=False)) == {"a": {"bal": 30}}
    assert sys.modules["fee"] is own and own.RATE == 1  # the process's own copy is left as it was
    module.write_text(module.read_text().replace("RATE * 1", "RATE * 3"))
    monkeypatch.chdir(tmp_path)
    for name in ("red", str(module)):
        tripled = replay(store, reducer=name)
        assert tripled.snapshot is None and rows(tripled) == {"a": {"bal": 90}}
    assert "red" not in sys.modules  # a load leaves no module of its own behind


DEP = 'REDUCERS = {"Dep": lambda state, event: {"bal": (state or {}).get("bal", 0) + RATE * event["data"]["amt"]}}\n'


def own_modules(*tops: str) -> list[str]:
    return [m for m in sys.modules if m.split(".")[0] in tops or m.startswith("logtool_reducer_")]


def test_every_python_file_a_reducer_can_import_from_its_root_counts_and_runs_as_hashed(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reducer imported by name counts in its fingerprint, and runs from the bytes hashed, every
    Python file of the directory it is imported from: a package beside its own that it imports
    by name, and the modules its package imports by ``importlib.import_module`` (plugins), so
    an edit to either leaves no snapshot trusted; none of them is left in ``sys.modules``."""
    proj = tmp_path / "proj"
    for package in ("reducers", "shared", "handlers"):
        (proj / package).mkdir(parents=True)
    (proj / "reducers" / "__init__.py").write_text("")
    (proj / "shared" / "__init__.py").write_text("")
    (proj / "shared" / "money.py").write_text("RATE = 1\n")
    (proj / "reducers" / "bank.py").write_text("from shared.money import RATE\n" + DEP)
    write_module(proj / "handlers" / "__init__.py", """
        import importlib, pkgutil
        REDUCERS = {}
        for found in pkgutil.iter_modules(__path__):
            REDUCERS.update(importlib.import_module(f".{found.name}", __name__).REDUCERS)
    """)
    (proj / "handlers" / "dep.py").write_text("RATE = 1\n" + DEP)
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    monkeypatch.chdir(proj)
    for name, edited in (("reducers.bank", proj / "shared" / "money.py"), ("handlers", proj / "handlers" / "dep.py")):
        snapshot(store, reducer=name)
        assert rows(replay(store, reducer=name)) == {"a": {"bal": 15}}
        edited.write_text(edited.read_text().replace("RATE = 1", "RATE = 100"))
        again = replay(store, reducer=name)
        assert again.snapshot is None and rows(again) == {"a": {"bal": 1500}}
        snapshot(store, reducer=name)
        assert rows(replay(store, reducer=name)) == rows(replay(store, reducer=name, use_snapshots=False))
    assert own_modules("reducers", "shared", "handlers") == []


def test_a_reducer_reached_through_symlinks_counts_what_they_link_to(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper that is a symlink to a file elsewhere counts (and runs) as the file it links to,
    under its link's name; a package reached through a symlinked directory is imported as plain
    Python imports it, and its files count alike."""
    (tmp_path / "common").mkdir()
    (tmp_path / "red").mkdir()
    (tmp_path / "common" / "util.py").write_text("RATE = 1\n")
    (tmp_path / "red" / "util.py").symlink_to("../common/util.py")
    module = write_module(tmp_path / "red" / "red.py", "from util import RATE\n" + DEP)
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    snapshot(store, reducer=str(module))
    (tmp_path / "common" / "util.py").write_text("RATE = 100\n")
    again = replay(store, reducer=str(module))
    assert again.snapshot is None and rows(again) == {"a": {"bal": 1500}}
    # a package whose directory is a symlink, named by its import name from beside the link
    (tmp_path / "libs" / "acct_v2").mkdir(parents=True)
    (tmp_path / "libs" / "acct_v2" / "__init__.py").write_text("")
    (tmp_path / "libs" / "acct_v2" / "red.py").write_text("RATE = 2\n" + DEP)
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "acct").symlink_to("../libs/acct_v2")
    monkeypatch.chdir(tmp_path / "app")
    first = replay(store, reducer="acct.red")
    assert rows(first) == {"a": {"bal": 30}}
    (tmp_path / "libs" / "acct_v2" / "red.py").write_text("RATE = 3\n" + DEP)
    again = replay(store, reducer="acct.red")
    assert again.reducer != first.reducer and rows(again) == {"a": {"bal": 45}}
    assert own_modules("acct", "util") == []


@pytest.mark.parametrize("directory", ["acct", "acct-v2"])
def test_a_package_named_by_its_init_file_runs_its_modules_as_hashed(
    store: Path, tmp_path: Path, directory: str
) -> None:
    """A package named by its ``__init__.py`` is that package: the modules it imports relatively
    are its own, counted and run from the bytes hashed (where its directory is no import name,
    under the name it is loaded by), and none is left in ``sys.modules``."""
    package = tmp_path / "ip" / directory
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from .rules import REDUCERS\n")
    (package / "rules.py").write_text("RATE = 1\n" + DEP)
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    init = str(package / "__init__.py")
    assert rows(replay(store, reducer=init)) == {"a": {"bal": 15}}
    (package / "rules.py").write_text("RATE = 100\n" + DEP)
    snapshot(store, reducer=init)
    from_snapshot = replay(store, reducer=init)
    assert from_snapshot.snapshot == 1 and rows(from_snapshot) == {"a": {"bal": 1500}}
    assert own_modules("acct", "rules") == []


def test_namespace_packages_of_two_checkouts_each_run_their_own(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reducer in a namespace package (no ``__init__.py``) leaves no package behind: the same
    name in another checkout is that checkout's reducer, with its own fingerprint."""
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    fingerprints = set()
    for rate in (1, 2):
        (tmp_path / f"co{rate}" / "evs").mkdir(parents=True)
        (tmp_path / f"co{rate}" / "evs" / "red.py").write_text(f"RATE = {rate}\n" + DEP)
        monkeypatch.chdir(tmp_path / f"co{rate}")
        result = replay(store, reducer="evs.red", use_snapshots=False)
        assert rows(result) == {"a": {"bal": 15 * rate}}
        fingerprints.add(result.reducer)
    assert len(fingerprints) == 2 and own_modules("evs") == []


def test_a_reducer_reads_the_data_files_of_its_package_as_any_module(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its modules load as Python's own loader loads a file, so ``importlib.resources`` and
    ``pkgutil.get_data`` read the files beside them."""
    (tmp_path / "fxrates").mkdir()
    (tmp_path / "fxrates" / "__init__.py").write_text("")
    (tmp_path / "fxrates" / "rates.json").write_text('{"rate": 3}')
    (tmp_path / "fxrates" / "red.py").write_text(textwrap.dedent("""
        import importlib.resources, json, pkgutil
        RATE = json.loads(importlib.resources.files("fxrates").joinpath("rates.json").read_text())["rate"]
        RATE *= json.loads(pkgutil.get_data(__package__, "rates.json"))["rate"]
    """) + DEP)
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    monkeypatch.chdir(tmp_path)
    assert rows(replay(store, reducer="fxrates.red")) == {"a": {"bal": 135}}


def test_libraries_beside_a_reducer_are_imported_as_libraries(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory pip installed into (``--target``: it holds *.dist-info) is one of libraries, not
    the reducer's code: a reducer module there takes the libraries beside it as imported, once,
    and they are not in its fingerprint. So is a package holding a compiled extension module,
    wherever it is (its compiled part cannot be loaded again)."""
    from importlib.machinery import EXTENSION_SUFFIXES

    from logtool.replay import load_reducer

    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": n}} for n in (10, 5)])
    vendored = tmp_path / "vendored"
    (vendored / "speedlib").mkdir(parents=True)
    (vendored / "speedlib-1.0.dist-info").mkdir()
    (vendored / "speedlib" / "__init__.py").write_text("RATE = 2\n")
    (vendored / "vendred.py").write_text("from speedlib import RATE\n" + DEP)
    proj = tmp_path / "proj"
    (proj / "fastlib").mkdir(parents=True)
    (proj / "fastlib" / "__init__.py").write_text("RATE = 3\n")
    (proj / "fastlib" / f"_speed{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    module = write_module(proj / "red.py", "from fastlib import RATE\n" + DEP)
    monkeypatch.syspath_prepend(str(vendored))
    monkeypatch.syspath_prepend(str(proj))
    try:
        for name, lib, rate in (("vendred", "speedlib", 2), (str(module), "fastlib", 3)):
            first = replay(store, reducer=name)
            loaded = sys.modules[lib]
            assert rows(first) == {"a": {"bal": 15 * rate}}
            assert rows(replay(store, reducer=name)) == {"a": {"bal": 15 * rate}} and sys.modules[lib] is loaded
            init = (vendored if lib == "speedlib" else proj) / lib / "__init__.py"
            init.write_text("RATE = 10\n")
            assert load_reducer(name).fingerprint == first.reducer
    finally:
        sys.modules.pop("speedlib", None)
        sys.modules.pop("fastlib", None)


def test_a_helper_imported_inside_a_reducer_is_found_as_it_runs(store: Path, tmp_path: Path) -> None:
    """The reducer's directory is searched while its reducers run, not only while it loads: a
    helper imported inside a reducer function is found (by replay and by the audit commands)
    and counts in the fingerprint."""
    from logtool.replay import load_reducer

    (tmp_path / "moneyutil.py").write_text("from decimal import Decimal\ndef parse(x): return Decimal(x)\n")
    module = write_module(tmp_path / "red.py", """
        def dep(state, event):
            from moneyutil import parse
            return {"bal": (state or {}).get("bal", 0) + parse(event["data"]["amt"])}
        REDUCERS = {"Dep": dep}
    """)
    write_events(store, [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": "10.50"}}])
    assert rows(replay(store, reducer=str(module))) == {"a": {"bal": Decimal("10.50")}}
    (change,) = logtool.history(store, "a", reducer=str(module)).column("changes").to_pylist()
    assert decode(change) == {"bal": {"after": Decimal("10.50")}}
    before = load_reducer(str(module)).fingerprint
    (tmp_path / "moneyutil.py").write_text("from decimal import Decimal\ndef parse(x): return 2 * Decimal(x)\n")
    assert load_reducer(str(module)).fingerprint != before
    assert rows(replay(store, reducer=str(module))) == {"a": {"bal": Decimal("21.00")}}


def test_a_package_in_the_working_directory_is_a_reducer_by_its_name(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "myreducers"
    package.mkdir()
    (package / "__init__.py").write_text("from .steps import REDUCERS\n")
    (package / "steps.py").write_text('REDUCERS = {"Step": lambda state, event: {"n": (state or {}).get("n", 0) + 1}}\n')
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}} for _ in range(3)])
    monkeypatch.chdir(tmp_path)
    assert rows(replay(store, reducer="myreducers")) == {"a": {"n": 3}}
    monkeypatch.chdir(store)  # named by its directory's path, from elsewhere
    assert rows(replay(store, reducer=str(package))) == {"a": {"n": 3}}
    assert rows(replay(store, reducer=str(package) + "/")) == {"a": {"n": 3}}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="is a directory, not a module"):
        replay(store, reducer="plain")


def test_a_change_among_domain_events_is_named_as_such_under_a_reducer(store: Path, tmp_path: Path) -> None:
    module = write_module(tmp_path / "steps.py", 'REDUCERS = {"Step": lambda state, event: {"n": 1}}\n')
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}, {"key": "b", "op": "upsert", "data": {"v": 1}}])
    with pytest.raises(ReducerError, match=r"the event at offset 1 \(key b\) is a change \(upsert\), not a domain event"):
        replay(store, reducer=str(module))


def test_a_domain_event_without_a_type_is_named_as_such_under_a_reducer(store: Path, tmp_path: Path) -> None:
    """A record that had no type in the --type-field field is a domain event without one: the
    error says so and how to find its record, not that it is a change."""
    module = write_module(tmp_path / "steps.py", 'REDUCERS = {"Step": lambda state, event: {"n": 1}}\n')
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}, {"key": "a", "op": "event", "data": {"v": 1}}])
    with pytest.raises(ReducerError, match=r"the event at offset 1 \(key a\) is a domain event without a type") as e:
        replay(store, reducer=str(module))
    assert "SELECT source, data FROM events WHERE" in str(e.value.hint)


def test_a_reducer_module_whose_top_level_exits_is_a_usage_error(store: Path, tmp_path: Path) -> None:
    module = write_module(tmp_path / "quits.py", "import sys\nsys.exit(0)\n")
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    with pytest.raises(UsageError, match="failed to load: SystemExit"):
        replay(store, reducer=str(module))


def test_a_datetime_in_a_named_zone_is_refused_in_a_reducers_state(store: Path, tmp_path: Path) -> None:
    # JSON keeps its offset, not its zone: a replay from a snapshot would differ from zero
    module = write_module(tmp_path / "zoned.py", """
        import datetime as dt, zoneinfo
        REDUCERS = {"Step": lambda state, event: {"at": dt.datetime(2026, 3, 1, tzinfo=zoneinfo.ZoneInfo("Europe/Lisbon"))}}
    """)
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    with pytest.raises(ReducerError, match="a datetime in zone Europe/Lisbon keeps only its offset"):
        replay(store, reducer=str(module))


def test_a_reducer_calling_sys_exit_is_a_reducer_error(store: Path, tmp_path: Path) -> None:
    module = write_module(tmp_path / "quits.py", 'import sys\nREDUCERS = {"Step": lambda state, event: sys.exit("bad event")}\n')
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    with pytest.raises(ReducerError, match="reducer failed at offset 0 .*SystemExit: bad event"):
        replay(store, reducer=str(module))


def test_an_upcaster_that_raises_is_named_as_the_upcaster_not_the_reducer(store: Path, tmp_path: Path) -> None:
    module = write_module(tmp_path / "ups.py", """
        def upcast(event):
            raise KeyError("amount_cents")
        REDUCERS = {"Step": lambda state, event: event["data"]}
        UPCASTERS = {("Step", 1): upcast}
    """)
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {"version": 1}}])
    with pytest.raises(ReducerError, match="the upcaster of 'Step' version 1 failed at offset 0 .*KeyError") as failed:
        replay(store, reducer=str(module))
    assert failed.value.hint == "fix the upcaster or the event"


def test_a_reducer_state_json_cannot_hold_is_a_reducer_error(store: Path, tmp_path: Path) -> None:
    module = write_module(tmp_path / "odd.py", 'REDUCERS = {"Step": lambda state, event: {"f": object()}}\n')
    write_events(store, [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    with pytest.raises(ReducerError, match="the state the reducers left for key a of t cannot be stored"):
        replay(store, reducer=str(module))


def test_reducer_by_importable_name(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path / "counting_reducers_for_test.py",
        """
        def seen(state, event):
            return {"n": (state or {"n": 0})["n"] + 1, "last": event["offset"]}
        REDUCERS = {"Seen": seen}
    """,
    )
    write_events(store, [{"key": "a", "op": "event", "type": "Seen", "data": {}} for _ in range(3)])
    monkeypatch.chdir(tmp_path)  # importable from the working directory, as the hint says
    assert rows(replay(store, reducer="counting_reducers_for_test")) == {"a": {"n": 3, "last": 2}}
    monkeypatch.chdir(store.parent.parent)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = replay(store, reducer="counting_reducers_for_test")
    assert rows(result) == {"a": {"n": 3, "last": 2}}


def test_reducer_that_raises_stops_with_the_offset(store: Path, tmp_path: Path) -> None:
    module = write_module(
        tmp_path / "fragile.py",
        """
        def step(state, event):
            if event["data"].get("bad"):
                raise ValueError("cannot apply a bad event")
            return {"n": (state or {"n": 0})["n"] + 1}
        REDUCERS = {"Step": step}
    """,
    )
    write_events(store, [
        {"key": "a", "op": "event", "type": "Step", "data": {}},
        {"key": "b", "op": "event", "type": "Step", "data": {}},
        {"key": "a", "op": "event", "type": "Step", "data": {"bad": True}},
    ])  # fmt: skip
    with pytest.raises(ReducerError) as info:
        replay(store, reducer=str(module))
    assert "offset 2" in info.value.message and "ValueError" in info.value.message
    assert "cannot apply a bad event" in info.value.message
    assert rows(replay(store, reducer=str(module), at_offset=1)) == {"a": {"n": 1}, "b": {"n": 1}}


def test_bank_reducer_on_an_account_never_opened_names_the_offset(store: Path) -> None:
    write_events(store, [{"entity": "account", "key": "acc-9", "op": "event", "type": "MoneyDeposited",
                          "data": {"v": 2, "amount": "1.00", "currency": "EUR"}}])  # fmt: skip
    with pytest.raises(ReducerError, match="offset 0"):
        replay(store, reducer=str(BANK_REDUCERS))


def test_reducer_without_a_function_for_a_type(store: Path) -> None:
    write_events(store, [{"key": "a", "op": "event", "type": "Unknown", "data": {}}])
    with pytest.raises(ReducerError, match="no reducer for event type 'Unknown'"):
        replay(store, reducer=str(BANK_REDUCERS))


def test_reducer_returning_none_removes_the_state(store: Path, tmp_path: Path) -> None:
    module = write_module(
        tmp_path / "lifecycle.py",
        """
        REDUCERS = {"Open": lambda state, event: {"open": True}, "Close": lambda state, event: None}
    """,
    )
    write_events(store, [
        {"key": "a", "op": "event", "type": "Open", "data": {}},
        {"key": "b", "op": "event", "type": "Open", "data": {}},
        {"key": "a", "op": "event", "type": "Close", "data": {}},
    ])  # fmt: skip
    assert rows(replay(store, reducer=str(module))) == {"b": {"open": True}}


def test_reducer_upcasters_chain_until_none_applies(store: Path, tmp_path: Path) -> None:
    module = write_module(
        tmp_path / "versions.py",
        """
        VERSION_FIELD = "v"
        UPCASTERS = {
            ("Set", 1): lambda e: {**e, "data": {"v": 2, "value": e["data"]["old"]}},
            ("Set", 2): lambda e: {**e, "data": {"v": 3, "val": e["data"]["value"]}},
        }
        REDUCERS = {"Set": lambda state, event: {"val": event["data"]["val"], "v": event["data"]["v"]}}
    """,
    )
    write_events(store, [{"key": "a", "op": "event", "type": "Set", "data": {"v": 1, "old": "x"}}])
    assert rows(replay(store, reducer=str(module))) == {"a": {"val": "x", "v": 3}}


def test_reducer_modules_that_cannot_be_used(store: Path, tmp_path: Path) -> None:
    write_events(store, [{"key": "a", "op": "event", "type": "X", "data": {}}])
    with pytest.raises(UsageError, match="no such file"):
        replay(store, reducer=str(tmp_path / "missing.py"))
    with pytest.raises(UsageError, match="REDUCERS"):
        replay(store, reducer=str(write_module(tmp_path / "empty.py", "X = 1\n")))
    with pytest.raises(UsageError, match="failed to load"):
        replay(store, reducer=str(write_module(tmp_path / "broken.py", "raise RuntimeError('boom')\n")))


def test_python_reducer_with_float_state_replays_from_a_snapshot(store: Path, tmp_path: Path) -> None:
    module = write_module(
        tmp_path / "floats.py",
        """
        REDUCERS = {"Add": lambda state, event: {"total": (state or {}).get("total", 0.0) + 0.5}}
    """,
    )
    write_events(store, [{"key": "a", "op": "event", "type": "Add", "data": {}} for _ in range(3)])
    fresh = replay(store, reducer=str(module))
    snapshot(store, at_offset=1, reducer=str(module))
    assert replay(store, reducer=str(module)).digest == fresh.digest


# --------------------------------------------------------------------------- rewritten ranges


def _rewrite_commit(store: Path, operation: str, gaps: list[list[int]], params: dict[str, Any] | None = None) -> None:
    # Faked: a commit of the kind compact/purge write, naming the offsets it removed (the segments
    # are left as they are, which is enough for the warning, which reads only the commit log).
    s = Store.open(store)
    with s.writer(operation):
        s.commit(operation, params or {"test": True}, gaps=gaps)


def test_a_target_inside_a_purged_range_is_answered_with_a_warning(store: Path) -> None:
    write_events(store, [{"key": i, "op": "insert", "data": {"i": i}} for i in range(10)])
    _rewrite_commit(store, "purge", [[3, 4]])
    assert replay(store, at_offset=2).warnings == []
    for target in (3, 7, None):
        (warning,) = replay(store, at_offset=target).warnings
        assert "purge" in warning and "offset 4" in warning and "cannot be known" in warning


def test_an_entity_purge_an_older_logtool_recorded_is_not_warned_of(store: Path) -> None:
    """Its commit has no rows_whole flag: a purge by --entity alone took its entities whole."""
    write_events(store, [{"key": i, "op": "insert", "data": {"i": i}} for i in range(10)])
    _rewrite_commit(store, "purge", [[3, 4]], {"by": ["entity"], "entity": "t"})
    assert replay(store).warnings == []
    _rewrite_commit(store, "purge", [[5, 5]], {"by": ["key"], "identities": 1})
    assert any("cannot be known" in w for w in replay(store).warnings)


def test_a_target_before_the_compaction_point_is_answered_with_a_warning(store: Path) -> None:
    write_events(store, [{"key": i % 2, "op": "insert", "data": {"i": i}} for i in range(10)])
    _rewrite_commit(store, "compact", [[0, 5]])
    assert replay(store, at_offset=5).warnings == [] and replay(store).warnings == []
    (warning,) = replay(store, at_offset=3).warnings
    assert "compact" in warning and "cannot be known" in warning


# --------------------------------------------------------------------------- the shop sample


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("shop") / "store"
    ingest(store, [str(SAMPLES / "shop_cdc.jsonl")], mapping=SHOP_MAPPING)
    return store


CUSTOMER_42 = {
    "id": 42, "name": "Mateo Rojas", "email": "mateo.rojas@example.com", "tier": "gold",
    "balance": Decimal("1181.77"), "address": {"city": "Malmo", "zip": "211 22"},
    "tags": ["returns-risk", "vip"], "external_id": 5125315,
}  # fmt: skip


def test_shop_head_state(shop: Path) -> None:
    result = replay(shop)
    customers, orders = rows(result, "public.customers"), rows(result, "public.orders")
    expected_ids = [*range(1, 13), *range(14, 19), *range(20, 27), 28, 29, 30, 42, 57, 77]
    assert sorted(map(int, customers)) == expected_ids
    assert sorted(orders) == ["1050", "1051", "1052", "1053"]
    assert customers["42"] == CUSTOMER_42
    assert customers["12"]["address"] is None and "name" in customers["12"]
    assert customers["23"]["name"] == "Hana Sato" and customers["23"]["balance"] == 0
    assert customers["77"]["balance"] == Decimal("123456789012345678901234567.891")
    assert customers["7"]["external_id"] == 9007199254740993


def test_shop_state_text_is_canonical(shop: Path) -> None:
    for state in replay(shop).state.column("state").to_pylist():
        assert dumps_exact(loads_exact(state)) == state


def test_shop_bad_deploy_window(shop: Path) -> None:
    at_1403 = replay(shop, at_time="2026-03-01T14:03:00Z", entity="public.customers", key="42")
    assert rows(at_1403, "public.customers") == {"42": CUSTOMER_42}
    assert rows(replay(shop, at_offset=81), "public.customers")["42"]["balance"] == Decimal("-300.00")
    assert rows(replay(shop, at_offset=106), "public.customers")["42"]["balance"] == Decimal("-300.00")
    assert rows(replay(shop, at_offset=107), "public.customers")["42"] == CUSTOMER_42


def test_shop_truncate(shop: Path) -> None:
    assert len(rows(replay(shop, at_offset=168), "public.orders")) == 48
    assert rows(replay(shop, at_offset=169), "public.orders") == {}


# --------------------------------------------------------------------------- the public API


def test_library_verbs_survive_importing_their_modules(tmp_path: Path) -> None:
    # `from logtool.replay import X` binds the package attribute `replay` to the submodule unless
    # the package binds its verbs itself: logtool.replay(path) must stay the function.
    code = (
        "import logtool\n"
        "from logtool.replay import KvFold\n"
        "from logtool.ingest import FileResult\n"
        "assert callable(logtool.replay), type(logtool.replay)\n"
        "assert callable(logtool.ingest), type(logtool.ingest)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
