"""Each PostgreSQL reader on real plugin output: the shipped samples, and a live capture of the same
workload (marked ``postgres``). What the workload did is in ``harness.workload``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from logtool.formats import get_format
from logtool.formats.base import BadRecord, Mapping, Source, position_order

from . import harness

KEYED = Mapping(key_fields=harness.KEY_FIELDS)
#: (format, capture attribute, mapping): v1 without include-pk and test_decoding need the keys named
CASES = [
    ("wal2json", "wal2json", Mapping()),
    ("wal2json-v1", "wal2json_v1", KEYED),
    ("wal2json-v1", "wal2json_v1_pretty", Mapping()),
    ("test_decoding", "test_decoding", KEYED),
]
SAMPLE_OF = {attr: harness.SAMPLES / name for name, attr in harness.SAMPLE_FILES.items()}


@pytest.fixture(params=["sample", pytest.param("live", marks=pytest.mark.postgres)])
def captures(request: pytest.FixtureRequest) -> dict[str, Path]:
    """Capture attribute -> file: the shipped samples, or a capture made now."""
    if request.param == "sample":
        return SAMPLE_OF
    cap: harness.PgCapture = request.getfixturevalue("pg_capture")
    return {attr: getattr(cap, attr) for attr in SAMPLE_OF}


def read(fmt: str, path: Path, mapping: Mapping) -> list[dict[str, Any]]:
    """Every event of a file; the real captures hold no bad record."""
    bad: list[BadRecord] = []
    table = pa.Table.from_batches(list(get_format(fmt).read(Source(str(path)), mapping, bad.append)))
    assert bad == []
    return table.to_pylist()


def data(e: dict[str, Any]) -> dict[str, Any]:
    return json.loads(e["data"]) if e["data"] else {}


@pytest.fixture(params=CASES, ids=[c[1] for c in CASES])
def case(request: pytest.FixtureRequest, captures: dict[str, Path]) -> tuple[str, str, list[dict[str, Any]]]:
    fmt, attr, mapping = request.param
    return fmt, attr, read(fmt, captures[attr], mapping)


def test_op_counts_per_table(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    fmt, _, events = case
    expected = {
        ("public.customers", "insert"): 5, ("public.customers", "update"): 6, ("public.customers", "delete"): 1,
        ("public.measures", "insert"): 4, ("public.measures", "update"): 1,
        ("public.lines", "insert"): 3, ("public.lines", "update"): 1, ("public.lines", "delete"): 1,
        ("public.tally", "insert"): 5, ("public.tally", "update"): 1, ("public.tally", "delete"): 1,
        ("public.scratch", "insert"): 4, ("public.scratch", "update"): 1, ("public.scratch", "truncate"): 1,
        ("public.scratch2", "insert"): 1, ("public.scratch2", "truncate"): 1,
        ("pg_logical_message", "event"): 2,
    }  # fmt: skip
    if fmt == "wal2json-v1":  # wal2json 2.5's format-version 1 never writes a TRUNCATE
        del expected["public.scratch", "truncate"], expected["public.scratch2", "truncate"]
    if fmt == "test_decoding":  # it marks the TOASTed values two updates left out: they are patches
        expected["public.customers", "update"] -= 2
        expected["public.customers", "patch"] = 2
    assert Counter((e["entity"], e["op"]) for e in events) == expected


def test_key_changes_carry_prev_key(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    _, _, events = case
    moved = [(e["entity"], e["prev_key"], e["key"]) for e in events if e["prev_key"] is not None]
    assert moved == [
        ("public.customers", "1", "10"),
        ("public.lines", '{"order_id":1,"line":2}', '{"order_id":1,"line":3}'),
    ]
    assert all(e["op"] == "update" for e in events if e["prev_key"] is not None)


def test_unchanged_toast_column_is_left_out(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    _, _, events = case
    bob = [data(e) for e in events if e["entity"] == "public.customers" and e["key"] == "2"]
    inserted, email, doc, renamed = bob
    assert "doc" in inserted and "doc" not in email and "doc" not in renamed
    assert email["email"] == "bob@x" and renamed["name"] == "Bob B"
    assert doc["doc"] != inserted["doc"] and len(doc["doc"]) == len(inserted["doc"])  # the TOASTed value itself


def test_numbers_stay_exact(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    fmt, _, events = case
    first = next(e for e in events if e["entity"] == "public.measures" and e["key"] == "1")
    assert f'"big":{harness.BIG_NUMERIC}' in first["data"]
    assert '"r":1.5,"d":0.1' in first["data"]
    third = next(e for e in events if e["entity"] == "public.measures" and e["key"] == "3")
    assert f'"big":{harness.TINY_NUMERIC}' in third["data"] and '"r":3.4028235e+38' in third["data"]
    ann = next(e for e in events if e["entity"] == "public.customers" and e["key"] == "1")
    assert f'"balance":{harness.BALANCE}' in ann["data"]
    nan = data(next(e for e in events if e["entity"] == "public.measures" and e["key"] == "2"))
    if fmt == "test_decoding":
        assert (nan["big"], nan["r"], nan["d"]) == ("NaN", "NaN", "Infinity")
    else:  # lost by wal2json 2.5, which writes NaN and the infinities as null
        assert (nan["big"], nan["r"], nan["d"]) == (None, None, None)


def test_keyless_table_has_before_images(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    _, _, events = case
    tally = [e for e in events if e["entity"] == "public.tally"]
    assert all(e["key"] is None for e in tally)
    assert [data(e) for e in tally if e["op"] == "insert"].count({"who": "a", "n": 1}) == 2
    (update,) = [e for e in tally if e["op"] == "update"]
    assert (json.loads(update["before"]), data(update)) == ({"who": "a", "n": 1}, {"who": "a", "n": 5})
    (delete,) = [e for e in tally if e["op"] == "delete"]
    assert (json.loads(delete["before"]), delete["data"]) == ({"who": "c", "n": 3}, None)


def test_rolled_back_work_is_absent(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    _, _, events = case
    assert not any(e["key"] == "99" for e in events)
    assert not any(e["entity"] == "public.measures" and data(e).get("r") == 99 for e in events)
    scratch = {e["key"] for e in events if e["entity"] == "public.scratch"}
    assert "4" in scratch and "5" not in scratch  # rolled back to a savepoint


def test_transactions_in_commit_order(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    fmt, _, events = case
    changes = [e for e in events if e["op"] != "event" or e["txn"] is not None]
    assert all(e["txn"] is not None and e["txn"]["id"] for e in changes)
    first_started = next(e for e in events if e["key"] == "20")
    first_committed = next(e for e in events if e["key"] == "21")
    # started later, so a higher xid, but committed first: it comes first
    assert int(first_committed["txn"]["id"]) > int(first_started["txn"]["id"])
    assert events.index(first_committed) < events.index(first_started)
    ids = [e["txn"]["id"] for e in changes]
    assert ids[-4:] == [first_committed["txn"]["id"]] * 2 + [first_started["txn"]["id"]] * 2
    for e in changes:  # a transaction's changes share its commit time
        assert e["ts"] == e["txn"]["ts"] is not None
    if fmt == "test_decoding":
        assert all(e["txn"]["position"] is None for e in changes)  # the text has no LSN
    else:
        orders = [position_order(e["txn"]["position"]) for e in changes]
        assert None not in orders and orders == sorted(orders)


def test_truncate_and_messages(case: tuple[str, str, list[dict[str, Any]]]) -> None:
    fmt, _, events = case
    truncates = [e for e in events if e["op"] == "truncate"]
    if fmt != "wal2json-v1":
        assert [e["entity"] for e in truncates] == ["public.scratch", "public.scratch2"]
        assert truncates[0]["txn"] == truncates[1]["txn"] and truncates[0]["data"] is None
    messages = [e for e in events if e["op"] == "event"]
    assert [(e["type"], data(e)) for e in messages] == [
        ("message", {"prefix": "app", "content": "hello 'world'\nnext"}),
        ("message", {"prefix": "audit", "content": "ping"}),
    ]
    transactional, plain = messages
    assert (
        transactional["txn"]["id"]
        == next(e for e in events if e["key"] == "3" and e["entity"] == "public.scratch")["txn"]["id"]
    )
    assert plain["txn"] is None and json.loads(plain["meta"]) == {"transactional": False}


def test_lines_point_at_the_changes(case: tuple[str, str, list[dict[str, Any]]], captures: dict[str, Path]) -> None:
    fmt, attr, events = case
    lines = captures[attr].read_text(encoding="utf-8").split("\n")
    for e in events:
        text = lines[e["source"]["line"] - 1]
        assert e["source"]["file"] == str(captures[attr])
        if fmt == "wal2json":
            assert json.loads(text)["lsn"] == e["source"]["position"]
        elif fmt == "test_decoding":
            assert text.startswith(("table ", "message: "))
        elif attr == "wal2json_v1_pretty":
            assert text.strip() in ("{", ",{")
        else:
            assert text.startswith("{")


@pytest.mark.postgres
def test_live_capture_facts(pg_capture: harness.PgCapture) -> None:
    """The xids the workload saw, against what each reader gives."""
    facts = pg_capture.facts
    for fmt, attr, mapping in CASES:
        events = read(fmt, getattr(pg_capture, attr), mapping)
        ids = {e["txn"]["id"] for e in events if e["txn"]}
        assert facts["rolled_back_xid"] not in ids
        moved = next(e for e in events if e["prev_key"] == "1")
        assert moved["txn"]["id"] == facts["key_change_xid"]
        untouched = next(e for e in events if e["txn"] and e["txn"]["id"] == facts["toast_untouched_xid"])
        assert "doc" not in data(untouched)
        updated = next(e for e in events if e["txn"] and e["txn"]["id"] == facts["toast_updated_xid"])
        assert len(data(updated)["doc"]) == len(harness.big_doc("x")) > 8192
    assert pg_capture.checkpoints[-1].lsn == pg_capture.final_lsn
