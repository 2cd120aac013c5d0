"""Purge and redact: what goes, what stays byte for byte, the receipt, and that nothing is left."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logtool.errors import UsageError
from logtool.formats.base import Mapping
from logtool.ingest import ingest
from logtool.integrity import verify
from logtool.purge import purge, purge_file, receipt_matches, redact, redact_file
from logtool.store import Store

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
MAPPING = Mapping(
    key_fields=("id",), entity_field="table", op_field="op", ts_field="ts", data_field="data",
    meta_fields=("actor",), prev_key_field="prev_id",
)  # fmt: skip

PERSON = {
    "name": "Zed Quist",
    "email": "zz.quist@example.org",  # the largest email
    "phone": "+44 20 7946 0999",
    "old_key": "a-007",  # the smallest key of its segment
    "key": "a-008",  # the smallest key of its segment
}


def _ev(i: int, table: str, op: str, key: str, data: Any, **extra: Any) -> str:
    record = {"ts": f"2026-03-01T10:{i:02d}:00.000Z", "table": table, "op": op, "id": key, **extra,
              "data": data, "actor": "app"}  # fmt: skip
    # numbers written "#1.10#" become the JSON number 1.10, trailing zero kept
    return re.sub(r'"#([0-9.]+)#"', r"\1", json.dumps(record))


# offsets 0..15, four segments of 4: the person (a-007, renamed a-008) is in segments 1 and 2 only
EVENTS = [
    _ev(0, "users", "insert", "b-100", {"id": "b-100", "name": "Bob Ray", "email": "bob@example.com", "score": "#1.50#"}),
    _ev(1, "users", "insert", "c-200", {"id": "c-200", "name": "Cy Lee", "email": "cy@example.com", "score": 2.0}),
    _ev(2, "orders", "insert", "o-1", {"id": "o-1", "customer": "c-200", "total": "#10.50#"}),
    _ev(3, "users", "insert", "b-101", {"id": "b-101", "name": "Di Moe", "email": "di@example.com"}),
    _ev(4, "users", "insert", "a-007", {"id": "a-007", "name": "Zed Quist", "email": "zz.quist@example.org",
                                         "phone": "+44 20 7946 0999", "score": "#1.10#", "address": {"zip": "LS1 4AP"}}),
    _ev(5, "orders", "insert", "o-2", {"id": "o-2", "customer": "a-007", "total": "#99.90#", "note": "for Zed Quist"}),
    _ev(6, "users", "patch", "c-200", {"city": "Oslo"}),
    _ev(7, "users", "patch", "a-007", {"phone": "+44 20 7946 0999"}),
    _ev(8, "users", "update", "a-008", {"id": "a-008", "name": "Zed Quist", "email": "zz.quist@example.org",
                                         "phone": "+44 20 7946 0999", "score": "#1.10#"}, prev_id="a-007"),
    _ev(9, "orders", "patch", "o-1", {"status": "paid"}),
    _ev(10, "users", "patch", "b-100", {"city": "Rome"}),
    _ev(11, "users", "patch", "a-008", {"city": "Leeds"}),
    _ev(12, "orders", "insert", "o-3", {"id": "o-3", "customer": "b-101", "total": "#12.00#"}),
    _ev(13, "users", "patch", "b-101", {"city": "Bergen"}),
    _ev(14, "users", "delete", "c-200", None),
    _ev(15, "orders", "patch", "o-3", {"total": "#12.30#"}),
]  # fmt: skip
PERSON_OFFSETS = [4, 7, 8, 11]
BROKEN = [
    '{"ts": "2026-03-01T11:00:00Z", "table": "users", "op": "bogus", "id": "a-008", "data": {"email": "zz.quist@example.org"}}',
    '{"id": "a-008", "note": broken json',
    "not json at all, about nobody",
]


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "app.jsonl"
    path.write_text("\n".join(EVENTS + BROKEN) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path: Path, log_file: Path) -> Path:
    path = tmp_path / "store"
    ingest(path, [str(log_file)], mapping=MAPPING, segment_rows=4, on_error="quarantine")
    return path


def files(store: Path) -> dict[str, bytes]:
    return {p.relative_to(store).as_posix(): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}


def segment_at(store: Path, offset: int) -> str:
    state = Store.open(store).state()
    return next(s["path"] for s in state.segments if s["min_offset"] <= offset <= s["max_offset"])


def rows(store: Path, sql: str) -> list[dict[str, Any]]:
    import logtool

    return list(logtool.sql(str(store), sql).to_pylist())


def assert_verified(store: Path, leftovers: bool = False) -> None:
    report = verify(str(store))
    assert report.ok, report.problems
    assert bool(report.leftovers) == leftovers, report.leftovers


# --------------------------------------------------------------------------- residue scanner


def _zstd_frames(data: bytes) -> Iterator[bytes]:
    import zstandard

    start = data.find(b"\x28\xb5\x2f\xfd")
    while start >= 0:
        try:
            yield zstandard.ZstdDecompressor().decompressobj().decompress(data[start:])
        except zstandard.ZstdError:
            pass
        start = data.find(b"\x28\xb5\x2f\xfd", start + 1)


def _parquet_texts(path: Path) -> Iterator[str]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for column in pf.read().columns:  # every value; dictionary pages are decoded with them
        yield json.dumps(column.to_pylist(), default=lambda v: v.hex() if isinstance(v, bytes) else str(v))
    meta = pf.metadata
    for rg in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            chunk = meta.row_group(rg).column(c)
            stats = chunk.statistics
            if stats is not None and stats.has_min_max:
                yield f"{stats.min!r} {stats.max!r}"
    yield repr(meta.metadata)


def residue(store: Path, value: str) -> list[str]:
    """Every place in the store's files where the value can be read: raw bytes (footers, page
    indexes), every zstd frame decompressed (data and dictionary pages), every decoded Parquet
    value and every column chunk's min/max statistics."""
    needle = value.encode()
    found = []
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if needle in data:
            found.append(f"{path.name}: bytes")
        if any(needle in frame for frame in _zstd_frames(data)):
            found.append(f"{path.name}: compressed page")
        if path.suffix == ".parquet" and any(value in t for t in _parquet_texts(path)):
            found.append(f"{path.name}: decoded")
    return found


def key_statistics(path: Path) -> list[tuple[Any, Any]]:
    """min/max of the `key` column chunk of every row group (footer statistics)."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    key = meta.schema.names.index("key")
    return [(meta.row_group(i).column(key).statistics.min, meta.row_group(i).column(key).statistics.max)
            for i in range(meta.num_row_groups)]  # fmt: skip


def indexed(path: Path) -> bool:
    """Written with the segment options: a page index on every column, a bloom filter on `key`."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    key = meta.schema.names.index("key")
    chunks = [meta.row_group(i).column(c) for i in range(meta.num_row_groups) for c in range(meta.num_columns)]
    blooms = [meta.row_group(i).column(key).bloom_filter_offset for i in range(meta.num_row_groups)]
    return all(c.has_column_index for c in chunks) and all(b is not None for b in blooms)


def bloom_excludes(store: Path, value: str) -> bool:
    """Does every segment's bloom filter on `key` say the value is not there?"""
    import duckdb

    con = duckdb.connect()
    for seg in Store.open(store).state().segments:
        probe = con.execute(
            "SELECT bloom_filter_excludes FROM parquet_bloom_probe($1, 'key', $2)", [str(store / seg["path"]), value]
        ).fetchall()
        if not all(r[0] for r in probe):
            return False
    return True


# --------------------------------------------------------------------------- purge


def test_purge_by_key_takes_earlier_identities_and_rewrites_only_their_segments(store: Path) -> None:
    before = files(store)
    untouched = [segment_at(store, 0), segment_at(store, 12)]
    survivors = rows(store, 'SELECT "offset", digest FROM events ORDER BY "offset"')

    res = purge(store, key=PERSON["key"], reason="erasure request")

    assert res.events == 4 and res.keys == 2
    assert res.offsets == [[4, 4], [7, 8], [11, 11]]
    assert sorted(res.segments_rewritten) == sorted([p for p in before if p.startswith("segments/")
                                                     and p not in untouched])  # fmt: skip
    after = files(store)
    for path in untouched:
        assert after[path] == before[path]
    assert rows(store, "SELECT count(*) AS n FROM events WHERE key IN ('a-007', 'a-008') OR prev_key = 'a-007'") == [
        {"n": 0}
    ]
    kept = rows(store, 'SELECT "offset", digest FROM events ORDER BY "offset"')
    assert kept == [r for r in survivors if r["offset"] not in PERSON_OFFSETS]  # salts and digests copied
    commit = Store.open(store).commits()[-1]
    assert commit["operation"] == "purge" and commit["gaps"] == [[4, 4], [7, 8], [11, 11]]
    assert_verified(store)


def test_purge_by_old_key_alone_does_not_follow_the_row_forward(store: Path) -> None:
    res = purge(store, key=PERSON["old_key"], dry_run=True)
    # a-007's own events, and the event that moved it to a-008 (it names a-007 as prev_key)
    assert res.offsets == [[4, 4], [7, 8]]


_SWAP = [  # Mira moves 33 -> 10033; then Nora moves 50 -> 33 and gets a patch there
    {"id": 50, "op": "insert", "data": {"id": 50, "who": "Nora"}},
    {"id": 33, "op": "insert", "data": {"id": 33, "who": "Mira"}},
    {"id": 10033, "prev": 33, "op": "update", "data": {"id": 10033, "who": "Mira"}},
    {"id": 33, "prev": 50, "op": "update", "data": {"id": 33, "who": "Nora"}},
    {"id": 33, "op": "patch", "data": {"city": "Oslo"}},
]
_SWAP_MAPPING = Mapping(key_fields=("id",), op_field="op", data_field="data", prev_key_field="prev", entity="t")


def test_an_earlier_key_is_followed_back_only_from_where_it_was_the_rows(tmp_path: Path) -> None:
    from logtool.replay import replay

    # 33 was Mira's up to offset 2: the row that moved into 33 later (Nora's, from 50) is another
    src = tmp_path / "swap.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _SWAP))
    ingest(tmp_path / "s", [str(src)], mapping=_SWAP_MAPPING)
    res = purge(tmp_path / "s", key="10033")
    assert res.offsets == [[1, 2]]
    assert replay(tmp_path / "s").state.to_pylist() == [
        {"entity": "t", "key": "33", "state": '{"id":33,"who":"Nora","city":"Oslo"}'}
    ]
    # raw-file mode reads an event's position among the file's events as its offset
    out = tmp_path / "clean.jsonl"
    assert purge_file(src, out, key="10033", mapping=_SWAP_MAPPING).removed == 2
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [50, 33, 33]


def test_an_entity_the_store_does_not_hold_is_named_in_a_note(store: Path) -> None:
    res = purge(store, key=PERSON["key"], entity="user", dry_run=True)
    assert res.events == 0 and res.notes == ["no event of the store is of entity 'user'; its entities: 'orders', 'users'"]


def test_an_earlier_key_is_followed_back_only_over_the_rows_own_time_there(tmp_path: Path) -> None:
    # row A at 33 moves to 10033; row B is inserted at 33 and moves to 20033: purging 20033 is B's
    from logtool.replay import replay

    lines = [
        {"id": "33", "op": "insert", "data": {"v": "A1"}},
        {"id": "10033", "prev": "33", "op": "update", "data": {"v": "A2"}},
        {"id": "33", "op": "insert", "data": {"v": "B1"}},
        {"id": "20033", "prev": "33", "op": "update", "data": {"v": "B2"}},
    ]
    src = tmp_path / "g.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in lines))
    ingest(tmp_path / "s", [str(src)], mapping=_SWAP_MAPPING)
    assert purge(tmp_path / "s", key="20033").offsets == [[2, 3]]
    assert [r["key"] for r in replay(tmp_path / "s").state.to_pylist()] == ["10033"]
    out = tmp_path / "clean.jsonl"
    assert purge_file(src, out, key="20033", mapping=_SWAP_MAPPING).removed == 2
    assert [json.loads(line)["data"]["v"] for line in out.read_text().splitlines()] == ["A1", "A2"]


def test_a_row_that_moves_back_to_a_key_it_held_is_followed_over_each_time_there(tmp_path: Path) -> None:
    lines = [
        {"id": "B", "op": "insert", "data": {"name": "alice", "ssn": "111"}},
        {"id": "C", "prev": "B", "op": "update", "data": {"name": "alice2"}},
        {"id": "B", "prev": "C", "op": "update", "data": {"name": "alice3"}},
        {"id": "C", "prev": "B", "op": "update", "data": {"name": "alice4"}},
        {"id": "Z", "op": "insert", "data": {"name": "other"}},
        {"op": "truncate"},  # ends every row of t: the row inserted at B after it is another
        {"id": "B", "op": "insert", "data": {"name": "bob"}},
        {"id": "D", "prev": "B", "op": "update", "data": {"name": "bob2"}},
    ]
    src = tmp_path / "e.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in lines))
    ingest(tmp_path / "s", [str(src)], mapping=_SWAP_MAPPING)
    assert purge(tmp_path / "s", key="C", dry_run=True).offsets == [[0, 3]]
    assert purge(tmp_path / "s", key="D", dry_run=True).offsets == [[6, 7]]
    out = tmp_path / "clean.jsonl"
    assert purge_file(src, out, key="C", mapping=_SWAP_MAPPING).removed == 4
    assert purge_file(src, out, key="D", mapping=_SWAP_MAPPING).removed == 2


def test_purge_entity_and_where_are_anded(store: Path) -> None:
    res = purge(store, entity="orders", where="op = 'patch'")
    assert res.offsets == [[9, 9], [15, 15]]
    assert_verified(store)


def test_a_segment_whose_events_all_go_is_removed_without_replacement(store: Path) -> None:
    seg = segment_at(store, 12)
    res = purge(store, where='"offset" BETWEEN 12 AND 15')
    assert res.segments_removed == [seg] and res.segments_added == []
    assert not (store / seg).exists()
    assert Store.open(store).state().next_offset == 16
    assert_verified(store)


def test_a_second_identical_purge_changes_nothing(store: Path) -> None:
    purge(store, key=PERSON["key"])
    before = files(store)
    res = purge(store, key=PERSON["key"])
    assert res.events == 0 and res.commit is None
    assert files(store) == before


def test_dry_run_lists_what_would_go_and_changes_nothing(store: Path) -> None:
    from logtool.replay import snapshot

    snapshot(str(store), at_offset=13)
    before = files(store)
    res = purge(store, key=PERSON["key"], dry_run=True)
    assert files(store) == before
    assert res.dry_run and res.commit is None and res.receipt is None
    assert res.events == 4 and res.keys == 2 and res.offsets == [[4, 4], [7, 8], [11, 11]]
    assert len(res.segments_rewritten) == 2 and len(res.snapshots_removed) == 1
    assert res.quarantine_records == 2
    red = redact(store, ["email"], key=PERSON["key"], dry_run=True)
    assert files(store) == before and red.offsets == [[4, 4], [8, 8]]


# --------------------------------------------------------------------------- receipt


def test_receipt_proves_that_nothing_else_changed(store: Path) -> None:
    res = purge(store, key=PERSON["key"], reason="erasure request")
    receipt = res.receipt
    assert receipt is not None
    assert receipt["reason"] == "erasure request" and receipt["counts"]["events"] == 4
    assert receipt["offsets"] == [[4, 4], [7, 8], [11, 11]]
    assert Store.open(store).commits()[-1]["info"]["receipt"] == receipt
    for seg in receipt["segments"]:
        new = seg["new"]
        kept = rows(store, f"SELECT \"offset\", digest FROM read_parquet('{store / new['path']}') ORDER BY 1")
        removed = [o for a, b in seg["offsets"] for o in range(a, b + 1)]
        merged = sorted([(r["offset"], r["digest"]) for r in kept]
                        + [(o, bytes.fromhex(d)) for o, d in zip(removed, seg["digests"], strict=True)])  # fmt: skip
        assert hashlib.sha256(b"".join(d for _o, d in merged)).hexdigest() == seg["old"]["digest"]
        assert new["digest"] == hashlib.sha256(b"".join(r["digest"] for r in kept)).hexdigest()
    # the digest's salt is not in the store: the proof the purge gave opens it, and nothing else
    assert "salt" not in receipt["predicate"] and res.proof is not None
    assert receipt_matches(receipt, key=PERSON["key"], proof=res.proof)
    assert not receipt_matches(receipt, key="b-100", proof=res.proof)
    assert not receipt_matches(receipt, key=PERSON["key"])
    assert res.proof not in "".join(p.read_text() for p in (store / "_log").glob("*.json"))


def test_the_proof_is_said_before_the_change_and_a_given_one_is_used(cli: Any, store: Path) -> None:
    # the CLI draws the proof and says it before the commit: no failure after that can lose it
    r = cli("-q", "purge", store, "--key", PERSON["key"], "--yes", "--format", "json")
    assert r.code == 0
    said = [ln for ln in r.err.splitlines() if ln.startswith("proof: ")]
    assert len(said) == 1
    proof = said[0].split()[1]
    assert json.loads(r.out)["proof"] == proof
    receipt = Store.open(store).commits()[-1]["info"]["receipt"]
    assert receipt_matches(receipt, key=PERSON["key"], proof=proof)
    given = "00" * 16
    res = redact(store, ["email"], where="op = 'insert'", proof=given)
    assert res.proof == given and res.receipt is not None and receipt_matches(res.receipt, where="op = 'insert'", proof=given)
    with pytest.raises(UsageError, match="write 32 lower-case hex digits"):
        purge(store, key="x", proof="not hex")
    # a head drop or a recorded --where needs none, nor a change that commits nothing
    r = cli("purge", store, "--where", "op = 'delete'", "--record-predicate", "--yes", "--format", "json")
    assert "proof:" not in r.err and json.loads(r.out)["proof"] is None
    r = cli("purge", store, "--key", "no-such-key", "--yes", "--format", "json")
    assert r.code == 0 and "proof:" not in r.err and json.loads(r.out)["proof"] is None
    r = cli("purge", store, "--where", "key = = 1", "--yes")
    assert r.code == 2 and "proof:" not in r.err
    with pytest.raises(UsageError, match="write 32 lower-case hex digits"):
        purge(store, before_offset=1, proof="not hex")
    with pytest.raises(UsageError, match="write 32 lower-case hex digits"):
        receipt_matches(receipt, key=PERSON["key"], proof="nothex")


def test_receipt_and_commit_log_hold_no_personal_data(store: Path) -> None:
    where = f"data->>'email' = '{PERSON['email']}'"
    res = purge(store, where=where)
    assert res.events == 2 and res.receipt is not None and "where" not in res.receipt["predicate"]
    assert receipt_matches(res.receipt, where=where, proof=res.proof)
    purge(store, key=PERSON["key"])
    redact(store, ["customer", "note"], where="data->>'customer' = 'a-007'")
    log = "".join(p.read_text() for p in (store / "_log").glob("*.json"))
    for value in (PERSON["key"], PERSON["old_key"], PERSON["email"], PERSON["name"], PERSON["phone"], where):
        assert value not in log
    for c in Store.open(store).commits()[1:]:
        assert set(c["params"]) <= {"by", "entity", "identities", "fields", "rows_whole"}  # (a flag: no data)
    recorded = purge(store, where="op = 'delete'", record_predicate=True)
    assert recorded.receipt is not None and recorded.receipt["predicate"]["where"] == "op = 'delete'"
    assert receipt_matches(recorded.receipt, where="op = 'delete'")


# --------------------------------------------------------------------------- no residue


def test_no_residue_anywhere_in_the_store(store: Path) -> None:
    from logtool.replay import snapshot

    snapshot(str(store), at_offset=2)
    snapshot(str(store), at_offset=13)
    values = [PERSON["key"], PERSON["old_key"], PERSON["email"], PERSON["phone"], PERSON["name"]]
    for value in values:  # the scanner finds each value before: it can see them
        assert residue(store, value), value
    assert not bloom_excludes(store, PERSON["key"])
    assert key_statistics(store / segment_at(store, 4))[0][0] == PERSON["old_key"]  # the column's min
    assert key_statistics(store / segment_at(store, 8))[0][0] == PERSON["key"]

    purge(store, key=PERSON["key"], reason="erasure")
    redact(store, ["customer", "note"], where="data->>'customer' IN ('a-007', 'a-008')")

    for value in values:
        assert residue(store, value) == [], value
    assert bloom_excludes(store, PERSON["key"]) and bloom_excludes(store, PERSON["old_key"])
    state = Store.open(store).state()
    assert all(indexed(store / s["path"]) for s in state.segments)
    assert key_statistics(store / segment_at(store, 5)) == [("c-200", "o-2")]
    assert residue(store, "bob@example.com")  # the others are still there
    state = Store.open(store).state()
    assert [s["offset"] for s in state.of_kind("snapshot")] == [2]
    quarantined = (store / state.of_kind("quarantine")[0]["path"]).read_text()
    assert "not json at all, about nobody" in quarantined and state.of_kind("quarantine")[0]["rows"] == 1
    assert not list(store.rglob("*.tmp")) and not (store / "_lock").exists()
    assert_verified(store)


def test_no_residue_of_a_person_in_the_pii_sample(tmp_path: Path) -> None:
    path = tmp_path / "people"
    mapping = Mapping(key_fields=("id",), entity_field="table", op_field="op", ts_field="ts", data_field="data",
                      meta_fields=("actor",), prev_key_field="prev_id")  # fmt: skip
    ingest(path, [str(SAMPLES / "people_pii.jsonl")], mapping=mapping, segment_rows=16)
    values = ["mira.kovac@example.org", "+44 20 7946 0958", "Mira Kovac", "203.0.113.77"]
    assert all(residue(path, v) for v in values)
    gone = purge(path, key="10033", entity="public.users").events
    gone += purge(path, key="508", entity="public.signups").events
    gone += purge(path, key="519", entity="public.signups").events
    assert gone == 8
    assert redact(path, ["note"], where="data->>'note' LIKE '%Mira Kovac%'").events == 1
    for value in values:
        assert residue(path, value) == [], value
    assert_verified(path)


# --------------------------------------------------------------------------- redact


def test_redact_blanks_fields_keeps_events_and_exact_numbers(store: Path) -> None:
    untouched = {p: b for p, b in files(store).items() if p in (segment_at(store, 0), segment_at(store, 12))}
    old = {r["offset"]: r for r in rows(store, 'SELECT "offset", digest, data FROM events')}

    res = redact(store, ["email", "phone", "address.zip"], key=PERSON["key"])

    assert res.operation == "redact" and res.matched == 4 and res.events == 3  # 11 holds none of them
    assert res.offsets == [[4, 4], [7, 8]]
    new = {r["offset"]: r for r in rows(store, 'SELECT "offset", digest, data FROM events')}
    assert sorted(new) == sorted(old)
    assert new[4]["data"] == ('{"id":"a-007","name":"Zed Quist","email":"[REDACTED]","phone":"[REDACTED]",'
                              '"score":1.10,"address":{"zip":"[REDACTED]"}}')  # fmt: skip
    assert new[7]["data"] == '{"phone":"[REDACTED]"}'
    for off in new:
        assert (new[off]["digest"] != old[off]["digest"]) == (off in (4, 7, 8))
    after = files(store)
    assert all(after[p] == b for p, b in untouched.items())
    assert Store.open(store).commits()[-1]["gaps"] == []
    assert_verified(store)


def test_redact_reaches_meta_and_before(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps({"id": 1, "op": "insert", "data": {"v": 1}, "actor": "ann@example.org"}) + "\n")
    dest = tmp_path / "s"
    ingest(dest, [str(path)], mapping=Mapping(key_fields=("id",), op_field="op", data_field="data",
                                              meta_fields=("actor",)))  # fmt: skip
    assert redact(dest, ["actor"], key="1").events == 1
    assert rows(dest, "SELECT meta FROM events") == [{"meta": '{"actor":"[REDACTED]"}'}]
    assert residue(dest, "ann@example.org") == []


def test_redact_of_a_dotted_name_blanks_both_members_it_can_name(tmp_path: Path) -> None:
    """A document with a member "contact.email" and a nested contact.email: both go, in a store
    and in a raw file, and a null one beside does not hide the other."""
    path = tmp_path / "log.jsonl"
    path.write_text(
        json.dumps({"id": 1, "data": {"contact.email": "a@x.org", "contact": {"email": "nested-secret@x.org"}}}) + "\n"
        + json.dumps({"id": 2, "data": {"contact.email": None, "contact": {"email": "other-secret@x.org"}}}) + "\n"
    )  # fmt: skip
    mapping = Mapping(key_fields=("id",), data_field="data")
    ingest(tmp_path / "s", [str(path)], mapping=mapping)
    assert redact(tmp_path / "s", ["contact.email"], where="TRUE").events == 2
    for secret in ("a@x.org", "nested-secret@x.org", "other-secret@x.org"):
        assert residue(tmp_path / "s", secret) == []
    out = tmp_path / "clean.jsonl"
    redact_file(path, out, ["contact.email"], where="TRUE", mapping=mapping)
    assert [json.loads(line)["data"] for line in out.read_text().splitlines()] == [
        {"contact.email": "[REDACTED]", "contact": {"email": "[REDACTED]"}},
        {"contact.email": None, "contact": {"email": "[REDACTED]"}},
    ]


# --------------------------------------------------------------------------- snapshots and head


def test_snapshots_at_or_after_the_first_match_are_removed(store: Path) -> None:
    from logtool.replay import snapshot

    early = snapshot(str(store), at_offset=2)
    late = snapshot(str(store), at_offset=13)
    res = purge(store, key=PERSON["key"])
    assert res.snapshots_removed == [late["path"]]
    assert not (store / late["path"]).exists() and (store / early["path"]).exists()
    assert_verified(store)


def test_a_purged_row_takes_its_old_key_only_until_it_moved_away(tmp_path: Path) -> None:
    """Another person's row inserted later at the old key is not the purged row's."""
    log = tmp_path / "moves.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in [
        {"ts": "2026-01-01T00:00:01Z", "table": "users", "op": "insert", "id": 33, "data": {"id": 33, "name": "Mira"}},
        {"ts": "2026-01-01T00:00:02Z", "table": "users", "op": "update", "id": 10033, "prev_id": 33,
         "data": {"id": 10033, "name": "Mira"}},
        {"ts": "2026-01-01T00:00:03Z", "table": "users", "op": "insert", "id": 33, "data": {"id": 33, "name": "Bob"}},
        {"ts": "2026-01-01T00:00:04Z", "table": "users", "op": "patch", "id": 33, "data": {"city": "Oslo"}},
    ]))  # fmt: skip
    store = tmp_path / "s"
    ingest(store, [str(log)], mapping=MAPPING)
    res = purge(store, key="10033")
    assert res.offsets == [[0, 1]]
    from logtool.replay import replay

    assert [(r["key"], json.loads(r["state"])["name"]) for r in replay(str(store)).state.to_pylist()] == [("33", "Bob")]
    assert residue(store, "Mira") == []
    assert_verified(store)


def test_head_drop_keeps_a_snapshot_and_the_head_state(store: Path) -> None:
    from logtool.replay import replay

    head = replay(str(store)).digest
    res = purge(store, before_offset=6)
    assert res.offsets == [[0, 5]] and res.snapshot_taken is not None
    state = Store.open(store).state()
    assert [s["offset"] for s in state.of_kind("snapshot")] == [5]
    assert state.segments[0]["min_offset"] == 6
    assert replay(str(store)).digest == head
    assert_verified(store)
    res = purge(store, before_time="2026-03-01T10:09:00Z")
    assert res.offsets == [[6, 8]]
    assert [s["offset"] for s in Store.open(store).state().of_kind("snapshot")] == [8]
    assert replay(str(store)).digest == head
    assert_verified(store)


def test_a_head_drops_dry_run_names_the_snapshot_the_run_stores_at_the_cut(cli: Any, store: Path) -> None:
    before = files(store)
    plan = purge(store, before_offset=6, dry_run=True)
    assert (plan.snapshot_at, plan.snapshot_taken) == (5, None)
    run = cli("purge", store, "--before-offset", "6", "--dry-run")
    assert run.code == 0 and "snapshot stored first at offset 5" in run.err
    assert json.loads(run.out)["snapshot_at"] == 5
    assert files(store) == before
    # one there already is kept, and the dry run names it
    from logtool.replay import snapshot

    taken = snapshot(store, at_offset=5)
    plan = purge(store, before_offset=6, dry_run=True)
    assert (plan.snapshot_at, plan.snapshot_taken) == (5, taken["path"])
    assert f"snapshot at offset 5: already there, kept ({taken['path']})" in cli("purge", store, "--before-offset", "6", "--dry-run").err
    res = purge(store, before_offset=6)
    assert (res.snapshot_at, res.snapshot_taken) == (5, taken["path"])


def test_a_key_whose_events_were_dropped_replays_from_the_snapshot(store: Path) -> None:
    from logtool.replay import replay

    before = replay(str(store), entity="orders", key="o-2").state.to_pylist()
    purge(store, before_offset=6)  # o-2's only event (offset 5) goes; the snapshot at 5 holds its row
    after = replay(str(store), entity="orders", key="o-2")
    assert after.state.to_pylist() == before and after.snapshot == 5
    assert replay(str(store), key="o-2").state.to_pylist() == before


def test_after_a_head_drop_a_purge_or_redact_rewrites_its_snapshot(store: Path) -> None:
    """The head drop's snapshot alone holds the rows whose events went: removing it for one key
    would take every other row with it."""
    from logtool.replay import replay

    def head() -> dict[tuple[str, str], Any]:
        return {(r["entity"], r["key"]): json.loads(r["state"]) for r in replay(str(store)).state.to_pylist()}

    before = head()
    purge(store, before_offset=6)
    res = purge(store, key="o-2", entity="orders")  # its only event went with the head
    assert res.events == 0 and res.snapshots_removed == [] and len(res.snapshots_rewritten) == 1
    assert head() == {k: v for k, v in before.items() if k != ("orders", "o-2")}
    assert residue(store, "for Zed Quist") == []
    assert res.receipt is not None and res.receipt["snapshots_rewritten"][0]["rows_after"] == len(before) - 1
    assert_verified(store)
    redact(store, ["total"], key="o-1", entity="orders")
    row = head()[("orders", "o-1")]
    assert row["total"] == "[REDACTED]" and row["status"] == "paid"
    assert head().keys() == {k for k in before if k != ("orders", "o-2")}
    assert_verified(store)


@pytest.mark.parametrize("earlier", ["key purge", "head drop"])
@pytest.mark.parametrize("operation", ["purge", "redact"])
def test_a_snapshot_the_log_can_rebuild_goes_whatever_was_purged_before(
    tmp_path: Path, earlier: str, operation: str
) -> None:
    """Only a snapshot whose events are gone (the lowest a head drop left) is rewritten; any other
    that may hold the data is removed and rebuilt, after an earlier purge of other rows too: read
    by its rows, it kept the values a purged or redacted patch alone gave them."""
    from logtool.replay import replay, snapshot

    log = tmp_path / "in.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in [
        {"table": "u", "op": "insert", "id": 1, "data": {"id": 1, "email": "a@x.org", "city": "Aberdeen"}},
        {"table": "u", "op": "insert", "id": 2, "data": {"id": 2, "email": "b@x.org", "city": "Bath"}},
        {"table": "u", "op": "patch", "id": 1, "data": {"email": "secret@x.org", "city": "Zagreb"}},
        {"table": "u", "op": "patch", "id": 1, "data": {"email": "y@x.org"}},
    ]))  # fmt: skip
    store = tmp_path / "s"
    ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), entity_field="table", op_field="op", data_field="data"))
    if earlier == "key purge":
        purge(store, key="2", entity="u")
    else:
        purge(store, before_offset=2)  # its snapshot at 1 holds both rows; the one at the head is rebuilt
    late = snapshot(str(store))
    where = "data->>'email' = 'secret@x.org'"
    res = purge(store, where=where) if operation == "purge" else redact(store, ["city"], where=where)
    assert res.snapshots_removed == [late["path"]] and res.snapshots_rewritten == []
    (row,) = replay(str(store), entity="u", key="1").state.to_pylist()
    assert json.loads(row["state"])["city"] == ("Aberdeen" if operation == "purge" else "[REDACTED]")
    assert residue(store, "Zagreb") == []
    assert_verified(store)


def test_a_key_purge_with_its_entity_takes_a_row_that_came_back_to_the_key(tmp_path: Path) -> None:
    """A -> B -> A, then an update at A: --key A --entity u leaves nothing of the row, as --key A
    alone does, in a store and in a raw file."""
    path = tmp_path / "ev.jsonl"
    path.write_text(
        '{"entity":"u","id":"A","v":1}\n{"entity":"u","id":"X","v":9}\n{"entity":"u","id":"B","prev":"A","v":2}\n'
        '{"entity":"u","id":"A","prev":"B","v":3}\n{"entity":"u","id":"A","v":4}\n'
    )
    mapping = Mapping(key_fields=("id",), entity_field="entity", prev_key_field="prev")
    for entity in ("u", None):
        store = tmp_path / f"s-{entity}"
        ingest(store, [str(path)], mapping=mapping)
        assert purge(store, key="A", entity=entity).events == 4
        assert rows(store, 'SELECT key FROM events') == [{"key": "X"}]
    out = tmp_path / "clean.jsonl"
    purge_file(path, out, key="A", entity="u", mapping=mapping)
    assert out.read_text() == '{"entity":"u","id":"X","v":9}\n'


def test_replays_after_a_purge_of_whole_rows_carry_no_warning(tmp_path: Path) -> None:
    """An entity, or a key whose row never moved on, goes whole: the state after it is exactly as
    if it had never been written. A key whose row moved on to a key the purge does not follow
    leaves the rest of the row, and --where may take part of a history: those are warned of."""
    from logtool.replay import replay

    (tmp_path / "log.jsonl").write_text(
        "".join(json.dumps({"t": "a" if i % 2 else "b", "id": i % 3, "v": i}) + "\n" for i in range(9))
        + '{"t":"a","id":7,"pk":1,"v":99}\n{"t":"a","id":7,"v":100}\n'
    )
    mapping = Mapping(key_fields=("id",), entity_field="t", prev_key_field="pk")
    cases = (("entity", {"entity": "b"}, False), ("key", {"key": "2", "entity": "a"}, False),
             ("moved", {"key": "1", "entity": "a"}, True), ("where", {"where": "data->>'v' = '4'"}, True))  # fmt: skip
    for name, kwargs, warned in cases:
        store = tmp_path / name
        ingest(store, [str(tmp_path / "log.jsonl")], mapping=mapping)
        purge(store, **kwargs)
        warnings = replay(str(store)).warnings
        assert any("cannot be known exactly" in w for w in warnings) if warned else warnings == [], name


def test_a_key_reused_after_the_purged_row_left_it_is_another_row(tmp_path: Path) -> None:
    """The purged row's identity is followed through its key changes in offset order: an insert at
    a key after the row moved away from it (or after its entity was truncated) is another row, and
    leaves the purge whole, with no warning after it; the row's own later events at a key the
    purge does not follow are warned of. The dry run selects what the run removes."""
    from logtool.replay import replay

    def ev(key: str, n: int, prev: str | None = None, op: str = "update") -> str:
        return json.dumps({"id": key, "op": op, "data": {"n": n}, **({"prev": prev} if prev else {})}) + "\n"

    life = ev("a", 1, op="insert") + ev("b", 2, "a") + ev("a", 3, op="insert") + ev("c", 4, "b")  # a -> b -> c
    cases = {
        # offsets 0, 1, 3 and 5 go: b's and a's new rows stay, and are exactly the state
        "reused": (life + ev("b", 5, op="insert") + ev("c", 6), True, [[0, 1], [3, 3], [5, 5]]),
        "reused, then moved on": (life + ev("b", 5, op="insert") + ev("x", 6, "b"), True, [[0, 1], [3, 3]]),
        "moved on from the key": (life + ev("d", 5, "c") + ev("d", 6), False, [[0, 1], [3, 4]]),
        "moved on, truncated, reused": (
            life + ev("d", 5, "c") + '{"op":"truncate"}\n' + ev("d", 7, op="insert"), True, [[0, 1], [3, 4]]
        ),
    }
    mapping = Mapping(key_fields=("id",), entity="e", op_field="op", data_field="data", prev_key_field="prev")
    for name, (text, whole, offsets) in cases.items():
        (tmp_path / "log.jsonl").write_text(text)
        store = tmp_path / name.replace(",", "").replace(" ", "-")
        ingest(store, [str(tmp_path / "log.jsonl")], mapping=mapping)
        assert purge(store, key="c", entity="e", dry_run=True).offsets == offsets, name
        assert purge(store, key="c", entity="e").offsets == offsets, name
        assert Store.open(store).commits()[-1]["params"]["rows_whole"] is whole, name
        warnings = replay(str(store)).warnings
        assert any("cannot be known exactly" in w for w in warnings) if not whole else warnings == [], name


def test_a_target_before_a_head_drop_is_not_answered_from_its_snapshot(store: Path) -> None:
    from logtool.replay import replay

    purge(store, before_offset=6)  # the snapshot at 5 holds the state there
    early = replay(str(store), at_offset=3)
    assert early.snapshot is None and early.state.num_rows == 0
    assert any("cannot be known exactly" in w for w in early.warnings)
    timed = replay(str(store), at_time="2026-03-01T10:02:00Z")  # stamped before the first event kept
    assert timed.snapshot is None and any("cannot be known exactly" in w for w in timed.warnings)
    assert replay(str(store), at_offset=5).snapshot == 5


def test_a_head_drop_of_the_whole_log_keeps_its_state(store: Path) -> None:
    from logtool.replay import replay

    head = replay(str(store))
    purge(store, before_offset=Store.open(store).state().next_offset)
    after = replay(str(store))
    assert (after.digest, after.offset, after.warnings) == (head.digest, head.offset, [])
    assert replay(str(store), at_offset=head.offset).digest == head.digest


def test_a_replay_exactly_at_the_cut_is_the_snapshot_state_at_that_offset(store: Path) -> None:
    from logtool.replay import replay

    at_cut = replay(str(store), at_offset=5).digest
    purge(store, before_offset=6)
    after = replay(str(store), at_offset=5)
    assert (after.offset, after.snapshot, after.digest, after.warnings) == (5, 5, at_cut, [])


def test_a_head_drop_past_the_end_of_the_log_is_refused(store: Path) -> None:
    from logtool.errors import UsageError

    before = files(store)
    end = Store.open(store).state().next_offset
    with pytest.raises(UsageError, match=f"past the end of the log \\(its next offset is {end}\\)"):
        purge(store, before_offset=end + 1)
    assert files(store) == before


def test_the_audit_after_a_head_drop_starts_from_its_snapshot(store: Path) -> None:
    """history, blame and why fold from the cut's snapshot, as replay does: the fields set by
    dropped events are there, credited to the snapshot."""
    import logtool

    purge(store, before_offset=6)  # c-200 was inserted at 1; patched at 6 (kept)
    blamed = {r["field"]: r for r in logtool.blame(store, "c-200", entity="users", at_offset=6).to_pylist()}
    assert {f: r["offset"] for f, r in blamed.items()} == {"id": 5, "name": 5, "email": 5, "score": 5, "city": 6}
    assert blamed["name"]["position"] == "snapshot at offset 5" and blamed["name"]["ts"] is None
    history = logtool.history(store, "c-200", entity="users").to_pylist()
    assert [(h["offset"], h["op"]) for h in history] == [(5, "read"), (6, "patch"), (14, "delete")]
    answer = logtool.why(store, "b-101", "name", entity="users")
    assert answer.event["offset"] == 5 and "dropped" in (answer.note or "")


def test_a_snapshot_built_from_dropped_events_goes_with_the_person(store: Path) -> None:
    purge(store, before_offset=6)  # the snapshot at 5 holds a-007's row; its events are gone
    res = purge(store, key=PERSON["key"])
    assert len(res.snapshots_rewritten) == 1  # without the person: the other rows it alone holds stay
    assert residue(store, PERSON["email"]) == []


def test_a_head_drop_of_domain_events_needs_their_reducers_snapshot_at_the_cut(tmp_path: Path) -> None:
    """The head drop stores a kv snapshot, which holds nothing of domain events: it is refused
    (a dry run too) until a snapshot taken with the reducers is there, and then replays exactly."""
    from logtool.demo import BANK
    from logtool.replay import replay

    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK)
    reducers = str(SAMPLES / "bank_reducers.py")
    head = replay(str(store), reducer=reducers).digest
    _refused_until_the_reducers_snapshot_is_at_the_cut(store, reducers, 40, "domain events", head, dropped=40)


def test_a_second_head_drop_keeps_the_reducers_snapshot_the_first_one_left(tmp_path: Path) -> None:
    """After a head drop, the reducers' snapshot at its cut alone holds their state: a later drop
    past it is refused (a dry run too) until a snapshot with those reducers is at the new cut."""
    from logtool.demo import BANK
    from logtool.replay import replay, snapshot

    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK)
    reducers = str(SAMPLES / "bank_reducers.py")
    head = replay(str(store), reducer=reducers).digest
    snapshot(str(store), at_offset=39, reducer=reducers)
    purge(store, before_offset=40)
    _refused_until_the_reducers_snapshot_is_at_the_cut(store, reducers, 50, "only copy of that reducer's state", head, dropped=10)


def _refused_until_the_reducers_snapshot_is_at_the_cut(
    store: Path, reducers: str, cut: int, why: str, head: str, dropped: int
) -> None:
    """A head drop at ``cut`` is refused (a dry run too, changing nothing) with the snapshot command
    as the hint; once that snapshot is taken the drop goes and replay with the reducers is the head."""
    from logtool.replay import replay, snapshot

    before = files(store)
    for dry_run in (True, False):
        with pytest.raises(UsageError, match=why) as refused:
            purge(store, before_offset=cut, dry_run=dry_run)
        assert f"--at-offset {cut - 1} --reducer" in (refused.value.hint or "")
    assert files(store) == before
    snapshot(str(store), at_offset=cut - 1, reducer=reducers)
    assert purge(store, before_offset=cut).events == dropped
    after = replay(str(store), reducer=reducers)
    assert (after.digest, after.snapshot) == (head, cut - 1)
    assert_verified(store)


def test_a_head_drop_over_changes_and_domain_events_says_how_far_it_can_go(tmp_path: Path) -> None:
    """A reducer cannot replay a change, so in a log of both no reducers' snapshot can be taken past
    a change: the refusal names the furthest cut that keeps the reducers' state."""
    reducers = tmp_path / "red.py"
    reducers.write_text(
        'def opened(s, e): return {"owner": e["data"]["owner"], "n": 0}\n'
        'def bumped(s, e): return {**s, "n": s["n"] + 1}\n'
        'REDUCERS = {"Opened": opened, "Bumped": bumped}\n'
    )
    domain, changes = tmp_path / "dom.jsonl", tmp_path / "kv.jsonl"
    domain.write_text("".join(json.dumps({"stream": "acct", "id": k, "type": t, "body": b}) + "\n" for k, t, b in (
        ("a", "Opened", {"owner": "Ann"}), ("b", "Opened", {"owner": "Bob"}), ("a", "Bumped", {}))))  # fmt: skip
    changes.write_text("".join(json.dumps({"table": "t", "id": i, "v": i}) + "\n" for i in (1, 2, 3)))
    store = tmp_path / "s"
    ingest(store, [str(domain)], mapping=Mapping(key_fields=("id",), entity_field="stream", type_field="type",
                                                  data_field="body"))  # fmt: skip
    ingest(store, [str(changes)], mapping=Mapping(key_fields=("id",), entity_field="table"))
    with pytest.raises(UsageError, match="domain events") as refused:
        purge(store, before_offset=5, dry_run=True)
    hint = refused.value.hint or ""
    assert "offset 3 is a change" in hint and "--at-offset 2 --reducer" in hint and "--before-offset 3" in hint
    from logtool.replay import snapshot

    snapshot(str(store), at_offset=2, reducer=str(reducers))
    purge(store, before_offset=3)
    with pytest.raises(UsageError, match="only copy of that reducer's state") as refused:
        purge(store, before_offset=5)
    assert "no further than the reducers' snapshot at offset 2" in (refused.value.hint or "")


def test_a_key_purged_after_a_head_drop_leaves_the_reducers_snapshot_without_it(tmp_path: Path) -> None:
    """After a head drop, the reducers' snapshot at the cut holds what no event holds any more: a
    later purge of a key rewrites it without that key's state, as it does a kv snapshot, instead
    of removing it with every other account's balance."""
    from logtool.demo import BANK
    from logtool.replay import replay, snapshot

    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK)
    reducers = str(SAMPLES / "bank_reducers.py")
    snapshot(str(store), at_offset=39, reducer=reducers)
    purge(store, before_offset=40)
    head = {(r["entity"], r["key"]): r["state"] for r in replay(str(store), reducer=reducers).state.to_pylist()}
    gone = sorted(head)[0]
    result = purge(store, key=gone[1], entity=gone[0])
    assert len(result.snapshots_rewritten) == 1
    after = replay(str(store), reducer=reducers)
    assert {(r["entity"], r["key"]): r["state"] for r in after.state.to_pylist()} == {
        k: v for k, v in head.items() if k != gone}  # fmt: skip
    assert_verified(store)


def _bank_after_a_head_drop(tmp_path: Path) -> tuple[Path, str]:
    from logtool.demo import BANK
    from logtool.replay import snapshot

    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK)
    reducers = str(SAMPLES / "bank_reducers.py")
    snapshot(str(store), at_offset=39, reducer=reducers)
    purge(store, before_offset=40)
    return store, reducers


def test_a_redact_keeps_the_reducers_snapshot_a_head_drop_left(tmp_path: Path) -> None:
    """A reducer's state cannot be redacted, and after a head drop its snapshot alone holds every
    account's: a redact whose keys' states hold the field is refused (a dry run too), with purge as
    the hint; one whose keys' states hold none of the fields leaves that snapshot as it is."""
    from logtool.replay import replay

    store, reducers = _bank_after_a_head_drop(tmp_path)
    head = replay(str(store), reducer=reducers).digest
    before = files(store)
    for dry_run in (True, False):
        with pytest.raises(UsageError, match="a reducer's state cannot be redacted") as refused:
            redact(store, ["currency"], key="acc-1001", dry_run=dry_run)
        assert "purge the key instead" in (refused.value.hint or "")
    assert files(store) == before
    (kept,) = [s["path"] for s in Store.open(store).state().of_kind("snapshot") if s["reducer"] != "kv/1"]
    result = redact(store, ["to_account"], key="acc-1001")
    assert result.events and kept not in result.snapshots_removed + result.snapshots_rewritten
    after = replay(str(store), reducer=reducers)
    assert (after.digest, after.snapshot) == (head, 39)
    assert_verified(store)


def test_a_where_purge_leaves_the_reducers_snapshot_a_head_drop_left_alone(tmp_path: Path) -> None:
    """A --where matching rows of the reducers' snapshot a head drop left would take those keys'
    states and keep their later events: refused (a dry run too), with --key as the hint. A --where
    that fails on a snapshot row (a cast of a value only the snapshot holds) is the user's error."""
    store, _reducers = _bank_after_a_head_drop(tmp_path)
    before = files(store)
    for dry_run in (True, False):
        with pytest.raises(UsageError, match="later events would be left without it") as refused:
            purge(store, where="data->>'owner' = 'Ada Lindqvist'", dry_run=dry_run)
        assert "purge by --key" in (refused.value.hint or "")
    with pytest.raises(UsageError, match="selecting the rows of the snapshot at offset 39 .* failed: Conversion"):
        purge(store, where="CAST(data->>'owner' AS INTEGER) = 1", dry_run=True)
    assert files(store) == before


def test_head_drop_needs_snapshots(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logtool.errors import LogtoolError

    monkeypatch.setitem(sys.modules, "logtool.replay", None)
    before = files(store)
    with pytest.raises(LogtoolError, match="needs snapshots"):
        purge(store, before_offset=6)
    assert files(store) == before


def test_an_interrupt_after_the_commit_keeps_what_the_commit_names(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C can land after the commit is published: its new files stay, the store verifies."""
    published = Store.commit

    def commit_then_interrupt(self: Store, *args: Any, **kwargs: Any) -> dict[str, Any]:
        published(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "commit", commit_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        purge(store, key=PERSON["key"])
    monkeypatch.undo()
    assert [c["operation"] for c in Store.open(store).commits()][-1] == "purge"
    assert verify(str(store)).problems == []
    from logtool import snapshot

    snapshot(store)  # the next writer deletes the replaced files the interrupt left
    assert_verified(store)
    assert residue(store, PERSON["email"]) == []


def test_a_head_drop_never_splits_a_transaction(tmp_path: Path) -> None:
    """Its snapshot holds whole transactions: a cut inside one moves down to its start, else the
    events of the transaction before the cut would be lost."""
    from logtool.query import sql
    from logtool.replay import replay

    store = tmp_path / "w"
    ingest(store, [str(Path(__file__).resolve().parent.parent / "sample_logs" / "postgres" / "wal2json.jsonl")])
    head = replay(str(store)).digest
    txns = sql(store, 'SELECT "offset", txn.id AS t FROM events ORDER BY 1').to_pylist()
    # an offset whose transaction goes on after it, and that transaction's first offset
    inside = next(a["offset"] for a, b in zip(txns, txns[1:], strict=False) if a["t"] is not None and a["t"] == b["t"]
                  and any(x["t"] != a["t"] for x in txns[: a["offset"]]))  # fmt: skip
    start = min(x["offset"] for x in txns if x["t"] == txns[inside]["t"])
    res = purge(store, before_offset=inside + 1)
    assert res.offsets == [[0, start - 1]]
    assert replay(str(store)).digest == head
    assert_verified(store)


def test_snapshot_takes_the_lock_before_it_replays(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A purge committed between a snapshot's replay and its commit would come back in it."""
    replay_module = sys.modules["logtool.replay"]

    real = replay_module.replay
    seen = []

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append((store / "_lock").exists())
        return real(*args, **kwargs)

    monkeypatch.setattr(replay_module, "replay", watched)
    replay_module.snapshot(store)
    assert seen == [True]


def test_no_writer_gets_in_between_a_head_drops_snapshot_and_the_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A purge committed there could remove the snapshot, and the head would go without the state
    it holds: the drop holds the lock from before its snapshot to its commit."""
    from logtool.errors import LockedError
    from logtool.replay import replay

    log = tmp_path / "in.jsonl"
    log.write_text("".join(json.dumps({"id": i, "v": i}) + "\n" for i in range(1, 6)))
    store = tmp_path / "s"
    ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), entity="u"))
    replay_module = sys.modules["logtool.replay"]
    real = replay_module.store_snapshot
    refused = []

    def with_another_writer(*args: Any, **kwargs: Any) -> Any:
        entry = real(*args, **kwargs)
        with pytest.raises(LockedError) as e:  # another writer's erasure, right after the snapshot
            purge(store, key="2", entity="u")
        refused.append(e.value)
        return entry

    monkeypatch.setattr(replay_module, "store_snapshot", with_another_writer)
    res = purge(store, before_offset=3)
    assert refused and res.events == 3
    assert [s["path"] for s in Store.open(store).state().of_kind("snapshot")] == [res.snapshot_taken]
    monkeypatch.undo()
    purge(store, key="2", entity="u")  # once the drop is done: out of its snapshot too
    assert [r["key"] for r in replay(str(store)).state.to_pylist()] == ["1", "3", "4", "5"]
    assert_verified(store)


@pytest.mark.parametrize("writer", ["compact", "snapshot"])
def test_compact_and_snapshot_delete_what_a_killed_writer_left(store: Path, writer: str) -> None:
    from logtool import compact, snapshot

    stray = store / "segments" / "00000000000000000000-deadbeef.parquet"
    stray.write_bytes((store / segment_at(store, 0)).read_bytes())
    compact(store, now="2030-01-01T00:00:00Z") if writer == "compact" else snapshot(store)
    assert not stray.exists()
    assert_verified(store)


def test_purge_and_redact_refuse_standard_input(cli: Any) -> None:
    for command in (["purge", "-", "--key", "1"], ["redact", "-", "--field", "email", "--key", "1"]):
        run = cli(*command, "--key-field", "id", input='{"id":1,"email":"a@b"}\n')
        assert run.code == 2 and run.out == ""
        assert run.errors() == ["error: purge and redact read a store or a raw log file, not standard input"]


# --------------------------------------------------------------------------- quarantine


def test_quarantined_records_that_match_go(store: Path) -> None:
    res = purge(store, key=PERSON["key"])
    assert res.quarantine_records == 2
    entry = Store.open(store).state().of_kind("quarantine")[0]
    assert [json.loads(line)["raw"] for line in (store / entry["path"]).read_text().splitlines()] == [BROKEN[2]]


def test_quarantine_where_is_evaluated_on_records_that_parse(store: Path) -> None:
    res = purge(store, where=f"data->>'email' = '{PERSON['email']}'", dry_run=True)
    assert res.offsets == [[4, 4], [8, 8]] and res.quarantine_records == 1  # not the broken JSON line


def test_redact_rewrites_quarantined_records_that_parse(store: Path) -> None:
    res = redact(store, ["email"], key=PERSON["key"])
    assert res.quarantine_records == 2
    entry = Store.open(store).state().of_kind("quarantine")[0]
    raws = [json.loads(line)["raw"] for line in (store / entry["path"]).read_text().splitlines()]
    assert raws == [raws[0], BROKEN[2]] and json.loads(raws[0])["data"] == {"email": "[REDACTED]"}


# --------------------------------------------------------------------------- --where


@pytest.mark.parametrize(
    "where",
    [
        "1=1); DROP VIEW events; SELECT (1",
        "true; COPY (SELECT 1) TO '/tmp/x.csv'",
        "1=1) UNION ALL SELECT 1 FROM events WHERE (1=1",
        "1=1) GROUP BY key HAVING (1=1",
        "1=1) LIMIT (0",
        "key IN (SELECT column0 FROM read_csv('/etc/passwd'))",
        "EXISTS (SELECT * FROM read_text('/etc/hostname'))",
        "key IN (SELECT key FROM read_parquet('segments/*.parquet'))",
        "ATTACH 'x.db'",
        "nosuch_column = 1",
        "",
        "true --",
    ],
)
def test_where_is_one_expression_or_refused(store: Path, where: str) -> None:
    from logtool.errors import UsageError

    before = files(store)
    if where == "true --":  # a trailing comment cannot swallow the closing parenthesis
        assert purge(store, where=where, dry_run=True).events == 16
        return
    with pytest.raises(UsageError):
        purge(store, where=where)
    assert files(store) == before


@pytest.mark.parametrize("where", ["true --\n) OR (true", "op = 'x') OR (true", "op = 'x') AND (true) OR (true"])
def test_where_cannot_close_a_parenthesis_to_escape_the_other_selectors(store: Path, where: str) -> None:
    # set beside --key, `x) OR (y` would make "key AND (x) OR (y)": every event
    from logtool.errors import UsageError

    before = files(store)
    with pytest.raises(UsageError, match="closes a parenthesis it does not open"):
        purge(store, key=PERSON["key"], where=where)
    assert files(store) == before


def test_where_parentheses_in_strings_names_and_comments_are_text(store: Path) -> None:
    res = purge(store, key=PERSON["key"], where="coalesce(data->>'city', ')') <> '(' -- )", dry_run=True)
    assert res.events == purge(store, key=PERSON["key"], dry_run=True).events > 0


def test_a_where_that_fails_on_a_value_is_the_users_error_whatever_the_value_says(tmp_path: Path) -> None:
    # a value that reads like damage ("corrupt upload") quoted in DuckDB's error is still a value
    src = tmp_path / "f.jsonl"
    src.write_text('{"id":1,"size":"12"}\n{"id":2,"size":"corrupt upload TProtocolException"}\n')
    store = tmp_path / "s"
    ingest(store, [str(src)], mapping=Mapping(key_fields=("id",)))
    with pytest.raises(UsageError, match="^selecting the events failed: Conversion Error"):
        purge(store, where="(data->>'size')::INT > 10", dry_run=True)
    for where in ("strptime(data->>'size', '%Y') > TIMESTAMP '2000-01-01'", "json_extract(data->>'size', '$.a') IS NOT NULL"):
        with pytest.raises(UsageError, match="^selecting the events failed: Invalid Input Error"):
            purge(store, where=where, dry_run=True)
        with pytest.raises(UsageError, match="^selecting the events failed: Invalid Input Error"):
            redact(store, ["size"], where=where, dry_run=True)


def test_where_may_use_subqueries_over_events(store: Path) -> None:
    res = purge(store, where="key IN (SELECT key FROM events WHERE op = 'delete')", dry_run=True)
    assert res.offsets == [[1, 1], [6, 6], [14, 14]]


# --------------------------------------------------------------------------- CLI


def test_cli_refuses_without_yes_when_stdin_is_not_a_terminal(cli: Any, store: Path) -> None:
    before = files(store)
    run = cli("purge", store, "--key", PERSON["key"])
    assert run.code == 2 and "--yes" in run.err and run.out == ""
    assert files(store) == before


def test_a_dry_run_beside_a_working_writer_calls_none_of_its_files_leftovers(store: Path) -> None:
    stray = store / "segments" / "00000000000000000099-inflight.parquet"
    with Store.open(store).writer("ingest"):
        stray.write_bytes(b"being written")
        assert purge(store, key=PERSON["key"], dry_run=True).leftovers_removed == []
    assert purge(store, key=PERSON["key"], dry_run=True).leftovers_removed == [store_rel(stray, store)]


def test_a_run_reports_each_file_once_under_what_it_is(store: Path) -> None:
    # the segments a commit replaces are rewritten (or removed), not leftovers: a leftover is a
    # file no commit named before the run (an interrupted operation's)
    stray = store / "segments" / "00000000000000000099-crashed.parquet"
    stray.write_bytes(b"left by a crash")
    res = purge(store, key=PERSON["key"])
    assert res.segments_rewritten and res.leftovers_removed == [store_rel(stray, store)] and not stray.exists()
    assert not set(res.segments_rewritten + res.segments_removed) & set(res.leftovers_removed)
    red = redact(store, ["email"], key="b-100")
    assert red.segments_rewritten and red.leftovers_removed == []


def store_rel(path: Path, store: Path) -> str:
    return path.relative_to(store).as_posix()


def test_cli_says_why_nothing_changed(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "log.jsonl").write_text('{"id":1,"data":{"a":1}}\n{"id":1,"data":{"a":2}}\n')
    store = tmp_path / "s"
    ingest(store, [str(tmp_path / "log.jsonl")], mapping=Mapping(key_fields=("id",), data_field="data"))
    none = cli("purge", store, "--key", "7", "--yes")
    assert none.code == 0 and "nothing matched: the store is unchanged" in none.err
    fieldless = cli("redact", store, "--field", "zip", "--key", "1", "--yes")
    assert fieldless.code == 0
    assert "nothing to redact: 2 events selected, none holds a named field with a value" in fieldless.err


def test_cli_store_mode_refuses_the_raw_file_options(cli: Any, store: Path, tmp_path: Path) -> None:
    """A cleaned copy asked of a store (-o) must not rewrite the store in place instead."""
    before = files(store)
    copy = cli("purge", store, "--key", PERSON["key"], "--yes", "-o", tmp_path / "clean")
    assert copy.code == 2 and f"error: {store} is a store: -o is for raw files" in copy.err
    mapped = cli("redact", store, "--field", "email", "--key", PERSON["key"], "--key-field", "id",
                 "--input-format", "csv", "--yes")  # fmt: skip
    assert mapped.code == 2 and "--input-format, --key-field are for raw files" in mapped.err
    assert files(store) == before and not (tmp_path / "clean").exists()
    typo = cli("purge", tmp_path / "typo.jsonl", "--key", "1", "-o", tmp_path / "clean.jsonl")
    assert typo.code == 2 and typo.errors() == [f"error: {tmp_path / 'typo.jsonl'}: no such file"]
    either = cli("redact", tmp_path / "typo.jsonl", "--field", "v", "--where", "TRUE")
    assert either.code == 2 and either.errors() == [f"error: {tmp_path / 'typo.jsonl'}: no such file or store"]


def test_cli_without_yes_checks_the_selection_first_and_shows_what_is_at_stake(cli: Any, store: Path) -> None:
    before = files(store)
    nothing = cli("purge", store)
    assert nothing.code == 2 and nothing.errors() == ["error: say what to purge"]
    refused = cli("purge", store, "--key", PERSON["key"])
    assert refused.code == 2 and "4 events would be removed" in refused.err and "--yes" in refused.err
    assert files(store) == before


def test_cli_prompts_on_a_terminal(cli: Any, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from logtool.commands import _common

    monkeypatch.setattr(_common, "interactive", lambda: True)
    before = files(store)
    run = cli("purge", store, "--key", PERSON["key"], input="n\n")
    assert run.code == 1 and "4 events would be removed" in run.err
    assert files(store) == before
    run = cli("purge", store, "--key", PERSON["key"], "--format", "json", input="y\n")
    assert run.code == 0, run.err
    assert json.loads(run.lines()[-1])["events"] == 4  # (the runner echoes the typed answer to stdout)
    assert_verified(store)


def test_cli_yes_dry_run_and_log(cli: Any, store: Path) -> None:
    before = files(store)
    run = cli("redact", store, "--field", "email", "--key", PERSON["key"], "--dry-run", "--format", "json")
    assert run.code == 0 and json.loads(run.out)["offsets"] == [[4, 4], [8, 8]]  # as in the receipt
    assert files(store) == before
    run = cli("purge", store, "--key", PERSON["key"], "--reason", "ticket 118", "--yes", "--format", "json")
    assert run.code == 0, run.err
    assert json.loads(run.out)["commit"] == 1
    log = cli("log", store, "--format", "jsonl")
    receipt = json.loads(log.lines()[-1])["receipt"]
    assert receipt["reason"] == "ticket 118" and receipt["offsets"] == [[4, 4], [7, 8], [11, 11]]
    assert cli("verify", store).code == 0


def test_cli_where_injection_is_a_usage_error(cli: Any, store: Path) -> None:
    run = cli("purge", store, "--where", "1=1); DROP VIEW events; SELECT (1", "--yes")
    assert run.code == 2 and run.errors() == ["error: --where must be one statement, found 3"]


# --------------------------------------------------------------------------- raw files


def test_raw_jsonl_purge_keeps_other_lines_byte_for_byte(tmp_path: Path, log_file: Path) -> None:
    out = tmp_path / "clean.jsonl"
    res = purge_file(log_file, out, key=PERSON["key"], mapping=MAPPING)
    lines = log_file.read_bytes().splitlines(keepends=True)
    gone = [*PERSON_OFFSETS, 16, 17]  # and the two unreadable lines that name the key
    assert out.read_bytes() == b"".join(line for i, line in enumerate(lines) if i not in gone)
    assert res.removed == 6 and res.records == 19 and res.unreadable == 3


def test_raw_file_names_the_first_record_it_could_not_read(cli: Any, tmp_path: Path, log_file: Path) -> None:
    """The warnings counted the unreadable records, and those a redaction kept as they are, but
    named none (compact's names the first): after an erasure, which line to look at matters."""
    args = ["--key-field", "id", "--entity-field", "table", "--op-field", "op", "--ts-field", "ts", "--data-field", "data"]
    for command in (["purge", log_file, "--key", "b-100"], ["redact", log_file, "--field", "email", "--key", "b-100"]):
        run = cli(*command, *args, "-o", tmp_path / "out.jsonl")
        assert run.code == 0, run.err
        assert (f"warning: 3 records could not be read and were judged on their raw text (first: {log_file}:17: "
                'unknown op "bogus")') in run.err  # fmt: skip
    assert purge_file(log_file, tmp_path / "out.jsonl", key="b-100", mapping=MAPPING).first_unreadable == (
        f'{log_file}:17: unknown op "bogus"'
    )
    # a redaction keeps a record that names the key but does not parse as it is: which one is said
    run = cli("redact", log_file, "--field", "email", "--key", "a-008", *args, "-o", tmp_path / "out.jsonl")
    assert run.code == 0, run.err
    assert f"warning: 1 unreadable record mentions the key and was kept as it is (first: {log_file}:18)" in run.err


def test_raw_jsonl_redact_and_where(tmp_path: Path, log_file: Path) -> None:
    out = tmp_path / "red.jsonl"
    res = redact_file(log_file, out, ["customer", "note"], where="data->>'customer' = 'a-007'", mapping=MAPPING)
    assert res.redacted == 1
    lines = log_file.read_text().splitlines(keepends=True)
    new = out.read_text().splitlines(keepends=True)
    assert [i for i, (a, b) in enumerate(zip(lines, new, strict=True)) if a != b] == [5]
    assert json.loads(new[5])["data"] == {"id": "o-2", "customer": "[REDACTED]", "total": 99.9, "note": "[REDACTED]"}
    assert '"total":99.90' in new[5]  # exact, not through a float


def test_raw_csv(tmp_path: Path) -> None:
    src = tmp_path / "people.csv"
    src.write_bytes(
        b"id,name,email,note\r\n"
        b'1,Ann,ann@example.org,"hello, world"\r\n'
        b'2,Zed Quist,zz.quist@example.org,"two\nlines"\r\n'
        b"3,Cy,cy@example.org,\r\n"
    )
    mapping = Mapping(key_fields=("id",))
    out = tmp_path / "clean.csv"
    res = purge_file(src, out, where="data->>'email' = 'zz.quist@example.org'", mapping=mapping)
    assert res.removed == 1
    assert out.read_bytes() == b'id,name,email,note\r\n1,Ann,ann@example.org,"hello, world"\r\n3,Cy,cy@example.org,\r\n'
    with pytest.raises(UsageError, match="--field id: it is the key of the events"):
        redact_file(src, out, ["email", "id"], key="2", mapping=mapping)  # the key would still hold it
    res = redact_file(src, out, ["email"], key="2", mapping=mapping)
    assert res.redacted == 1
    assert out.read_bytes() == (b'id,name,email,note\r\n1,Ann,ann@example.org,"hello, world"\r\n'
                                b'2,Zed Quist,[REDACTED],"two\nlines"\r\n3,Cy,cy@example.org,\r\n')  # fmt: skip


@pytest.mark.parametrize("field", ["email", "id"])
def test_a_field_that_is_the_key_cannot_be_redacted(tmp_path: Path, field: str) -> None:
    # the default mapping takes the key field out of the data; a CDC row keeps it there too
    src = tmp_path / "p.jsonl"
    src.write_text('{"email": "k@x.org", "id": 7, "name": "K"}\n{"email": "j@x.org", "id": 8, "name": "J"}\n')
    store = tmp_path / "s"
    key_field = "email" if field == "email" else "id"
    data = None if field == "email" else "row"
    if data:
        src.write_text('{"id": 7, "row": {"id": 7, "name": "K"}}\n{"id": 8, "row": {"id": 8, "name": "J"}}\n')
    ingest(store, [str(src)], mapping=Mapping(key_fields=(key_field,), data_field=data, entity="people"))
    before = files(store)
    with pytest.raises(UsageError, match=f"--field {field}: it is the key of the events"):
        redact(store, [field], key="k@x.org" if field == "email" else "7")
    assert files(store) == before


def test_raw_csv_records_split_as_ingest_splits_them(tmp_path: Path) -> None:
    # a bare CR ends a line for the CSV reader; a quoted field over the limit runs to its closing quote
    src = tmp_path / "p.csv"
    src.write_bytes(b'id,v\r1,"a\rb"\r2,x\r3,y\r')
    out = tmp_path / "clean.csv"
    assert purge_file(src, out, key="2", mapping=Mapping(key_fields=("id",))).removed == 1
    assert out.read_bytes() == b'id,v\r1,"a\rb"\r3,y\r'
    assert redact_file(src, out, ["v"], key="3", mapping=Mapping(key_fields=("id",))).redacted == 1
    assert out.read_bytes() == b'id,v\r1,"a\rb"\r2,x\r3,[REDACTED]\r'  # each record keeps its own line end
    long = tmp_path / "long.csv"
    long.write_bytes(b'id,v\n1,a\n2,"' + b"y\n" * 20 + b'"\n3,c\n')
    res = purge_file(long, out, key="3", mapping=Mapping(key_fields=("id",), max_line_bytes=10))
    assert res.removed == 1 and out.read_bytes() == b'id,v\n1,a\n2,"' + b"y\n" * 20 + b'"\n'


def test_raw_csv_quoted_empty_row_is_a_record_as_ingest_reads_it(tmp_path: Path) -> None:
    src = tmp_path / "skus.csv"
    src.write_bytes(b'sku\nA1\n""\n\nB2\n')
    out = tmp_path / "clean.csv"
    assert purge_file(src, out, key="", mapping=Mapping(key_fields=("sku",)), format="csv").removed == 1
    assert out.read_bytes() == b"sku\nA1\n\nB2\n"


def test_redact_refuses_only_a_field_that_is_the_key(tmp_path: Path) -> None:
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in [
        {"t": "users", "email": "k@x.org", "age": 30},
        {"t": "orders", "id": 30, "email": "k@x.org", "age": 30},  # age equals the key here only
        {"t": "orders", "id": 31, "email": "j@x.org", "age": 40},
    ]))  # fmt: skip
    store = tmp_path / "s"
    ingest(store, [str(src)], mapping=Mapping(key_fields=("users:email", "orders:id"), entity_field="t"))
    assert redact(store, ["email"], entity="orders", dry_run=True).events == 2  # a key in users only
    assert redact(store, ["age"], entity="orders", dry_run=True).events == 2  # not the key, though once equal
    with pytest.raises(UsageError, match="--field email: it is the key"):
        redact(store, ["email"], entity="users")
    # a CDC source's composite key: its members are in the key's text
    wal = tmp_path / "w.jsonl"
    wal.write_text(json.dumps({"action": "I", "xid": 1, "timestamp": "2026-01-01 00:00:00+00", "lsn": "0/10",
                               "schema": "public", "table": "u", "pk": [{"name": "id", "type": "integer"},
                                                                        {"name": "email", "type": "text"}],
                               "columns": [{"name": "id", "type": "integer", "value": 1},
                                           {"name": "email", "type": "text", "value": "ann@x.org"}]}) + "\n")  # fmt: skip
    ingest(tmp_path / "w", [str(wal)])
    with pytest.raises(UsageError, match="--field email: it is the key"):
        redact(tmp_path / "w", ["email"], entity="public.u")


def test_cli_raw_mode(cli: Any, tmp_path: Path, log_file: Path) -> None:
    out = tmp_path / "clean.jsonl"
    run = cli("purge", log_file, "--key", PERSON["key"], "--key-field", "id", "--entity-field", "table",
              "--op-field", "op", "--ts-field", "ts", "--data-field", "data", "--prev-key-field", "prev_id",
              "-o", out)  # fmt: skip
    assert run.code == 0, run.err
    assert PERSON["email"].encode() not in out.read_bytes()
    run = cli("purge", log_file, "--key", "b-100", "--key-field", "id", "--entity-field", "table")
    assert run.code == 0 and len(run.out.splitlines()) == len(EVENTS) + len(BROKEN) - 2
    assert cli("purge", log_file, "--key", "x", "-o", log_file).code == 2
    # an entity no record is of: said, with the file's entities
    mistyped = cli("purge", log_file, "--key", "b-100", "--entity", "user", "--key-field", "id", "--entity-field", "table",
                   "-o", tmp_path / "none2.jsonl")  # fmt: skip
    assert mistyped.code == 0 and "no record of" in mistyped.err and "is of entity 'user'; its entities: 'orders', 'users'" in mistyped.err
    # an erasure that could match nothing is refused, not done with nothing removed
    keyless = cli("purge", log_file, "--key", PERSON["key"], "-o", tmp_path / "none.jsonl")
    assert keyless.code == 2 and "--key needs --key-field in raw-file mode" in keyless.err
    missing = cli("redact", log_file, "--field", "email", "--key", "b-100", "--key-field", "id",
                  "-o", tmp_path / "no" / "such" / "dir.jsonl")  # fmt: skip
    assert missing.code == 2 and "does not exist" in missing.err and "internal" not in missing.err


def test_raw_mode_refuses_a_data_or_type_field_no_record_has(cli: Any, tmp_path: Path) -> None:
    """purge and redact of a raw file refuse a data field no record has, as ingest does, before
    writing anything: every event would be a tombstone, so no --where on its data could match
    (and "0 removed" would pass for an erasure); a type field no domain event has, likewise."""
    src = tmp_path / "p.jsonl"
    src.write_text('{"id":1,"row":{"email":"ann@example.org"}}\n')
    out = tmp_path / "clean.jsonl"
    where = "data->>'email' = 'ann@example.org'"
    for run in (
        cli("purge", src, "--where", where, "--key-field", "id", "--data-field", "data", "-o", out),
        cli("purge", src, "--where", where, "--key-field", "id", "--data-field", "data"),  # to stdout: nothing written
        cli("redact", src, "--field", "email", "--key", "1", "--key-field", "id", "--data-field", "data", "-o", out),
    ):
        assert run.code == 2 and run.out == "" and not out.exists()
        assert run.errors() == [f"error: {src}: no record has the data field 'data': every event would be a tombstone"]
    assert cli("purge", src, "--where", where, "--key-field", "id", "--data-field", "row", "-o", out).code == 0
    assert out.read_text() == ""
    # a file of domain events: its type field is checked
    bank = tmp_path / "bank.jsonl"
    bank.write_text('{"acct":"a1","event_type":"Opened"}\n')
    run = cli("purge", bank, "--key", "a1", "--key-field", "acct", "--type-field", "type")
    assert run.code == 2 and run.out == "" and "no record has a type in the field 'type'" in run.err
    run = cli("purge", bank, "--key", "a1", "--key-field", "acct", "--type-field", "event_type")
    assert run.code == 0 and run.out == ""


def test_raw_mode_takes_a_composite_key_spaced_or_compact_as_a_store_does(tmp_path: Path) -> None:
    """`--key '{"a": 1, "b": "x"}'` (as JSON is usually written) selected nothing in a raw file,
    while a store took it: the key is read into its compact form in both."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"a": 1, "b": "x", "data": {"email": "p@x.org"}}\n{"a": 1, "b": "y", "data": {"email": "q@x.org"}}\n')
    mapping = Mapping(key_fields=("a", "b"), data_field="data")
    out = tmp_path / "out.jsonl"
    for key in ('{"a": 1, "b": "x"}', '{"a":1,"b":"x"}', ' { "a" : 1 , "b" : "x" } '):
        assert purge_file(pairs, out, key=key, mapping=mapping).removed == 1
        assert out.read_text() == '{"a": 1, "b": "y", "data": {"email": "q@x.org"}}\n'
        assert redact_file(pairs, out, ["email"], key=key, mapping=mapping).redacted == 1
    store = tmp_path / "s"
    ingest(store, [str(pairs)], mapping=mapping)
    assert purge(store, key='{"a": 1, "b": "x"}', dry_run=True).events == 1


def test_raw_mode_entity_names_records_without_one_as_ingest_names_them(cli: Any, tmp_path: Path) -> None:
    """A log without an entity field ingested with --entity public.users: the same --entity on the
    raw file selected nothing (its records were of the file's name, `users`), so the ingest's
    command line, reused, erased nothing. It names them, as ingest does, and selects them."""
    src = tmp_path / "users.jsonl"
    src.write_text('{"id": 42, "data": {"email": "p@x.org"}}\n{"id": 7, "data": {"email": "q@x.org"}}\n')
    mapping = Mapping(key_fields=("id",), data_field="data")
    store = tmp_path / "s"
    ingest(store, [str(src)], mapping=replace(mapping, entity="public.users"))
    assert purge(store, key="42", entity="public.users").events == 1
    out = tmp_path / "clean.jsonl"
    run = cli("purge", src, "--key", "42", "--entity", "public.users", "--key-field", "id", "--data-field", "data", "-o", out)
    assert run.code == 0 and "warning" not in run.err, run.err
    assert out.read_text() == '{"id": 7, "data": {"email": "q@x.org"}}\n'
    assert [r["offset"] for r in rows(store, 'SELECT "offset" FROM events')] == [1]
    assert redact_file(src, out, ["email"], key="42", entity="public.users", mapping=mapping).redacted == 1
    # an entity field, where there is one, still decides: the file's records are of none other
    with_field = replace(mapping, entity_field="table")
    src.write_text('{"table": "t", "id": 42, "data": {"email": "p@x.org"}}\n')
    assert purge_file(src, out, key="42", entity="public.users", mapping=with_field).removed == 0


def test_an_erasure_that_changes_nothing_is_warned_of_even_under_quiet(cli: Any, tmp_path: Path, log_file: Path) -> None:
    """A purge or redact that selects nothing (a key given wrong, a composite key given as text),
    or whose selected records hold none of the fields, must not pass for an erasure: a warning,
    shown under -q, says so and that the output is a copy; the exit status stays 0 (a file need
    not hold the person)."""
    args = ["--key-field", "id", "--entity-field", "table", "--op-field", "op", "--ts-field", "ts", "--data-field", "data"]
    out = tmp_path / "clean.jsonl"
    none = cli("-q", "purge", log_file, "--key", "no-such-key", *args, "-o", out)
    assert none.code == 0 and out.read_bytes() == log_file.read_bytes()
    assert none.err.splitlines()[-1] == (
        f"warning: nothing matched: no record of {log_file} is selected ({out} is a copy of it); "
        "check the selection and the field mapping"
    )
    dry = cli("purge", log_file, "--key", "no-such-key", *args, "--dry-run")
    assert dry.code == 0 and "warning: nothing matched: no record of" in dry.err and "is a copy" not in dry.err
    fieldless = cli("-q", "redact", log_file, "--field", "zip", "--key", "b-100", *args, "-o", out)
    assert fieldless.code == 0 and out.read_bytes() == log_file.read_bytes()
    assert f"warning: nothing to redact in {log_file} ({out} is a copy of it): 2 records selected, none holds a " \
        "named field with a value" in fieldless.err  # fmt: skip
    done = cli("-q", "purge", log_file, "--key", "b-100", *args, "-o", out)
    assert done.code == 0 and "nothing" not in done.err
    # a composite key given other than as its JSON object: the warning says how to give it
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"a": 1, "b": "x", "data": {"v": 1}}\n{"a": 1, "b": "y", "data": {"v": 2}}\n')
    composite = ["--key-field", "a", "--key-field", "b", "--data-field", "data", "-o", out]
    text = cli("purge", pairs, "--key", "1,x", *composite)
    assert text.code == 0 and out.read_text() == pairs.read_text()
    assert """a composite key is given as a JSON object of its fields: --key '{"a": ..., "b": ...}'""" in text.err
    right = cli("purge", pairs, "--key", '{"a": 1, "b": "x"}', *composite)
    assert right.code == 0 and out.read_text() == '{"a": 1, "b": "y", "data": {"v": 2}}\n' and "warning" not in right.err


def test_store_mode_says_nothing_matched_even_under_quiet(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "log.jsonl").write_text('{"id":1,"data":{"a":1}}\n')
    store = tmp_path / "s"
    ingest(store, [str(tmp_path / "log.jsonl")], mapping=Mapping(key_fields=("id",), data_field="data"))
    for run in (cli("-q", "purge", store, "--key", "7", "--yes"), cli("-q", "purge", store, "--key", "7", "--dry-run")):
        assert run.code == 0 and "warning: nothing matched" in run.err


def test_raw_mode_refuses_a_file_none_of_whose_records_can_be_read(cli: Any, tmp_path: Path, log_file: Path) -> None:
    """A mapping none of whose records can be read (a key field the file does not have) is refused
    before anything is written, as compact refuses it: judging every record on its raw text would
    pass for an erasure done through the mapping."""
    out = tmp_path / "clean.jsonl"
    for command in (["purge", log_file, "--key", "b-100"], ["redact", log_file, "--field", "email", "--key", "b-100"]):
        for where in (["-o", out], []):
            run = cli(*command, "--key-field", "user_id", "--data-field", "data", *where)
            assert run.code == 2 and run.out == "" and not out.exists(), run.err
            assert run.errors() == [f"error: {log_file}:1: missing key field 'user_id' (and every other record: none "
                                    "could be read)"]  # fmt: skip
    # one record read is enough: the others are judged on their raw text, as before
    assert purge_file(log_file, out, key="b-100", mapping=MAPPING).unreadable == 3


# --------------------------------------------------------------------------- crash safety

_CHILD = """
import importlib, sys, time
from logtool.store import Store

p = importlib.import_module("logtool.purge")  # the module (logtool.purge is the function)

def stop(*args, **kwargs):
    print("READY", flush=True)
    time.sleep(120)

if sys.argv[2] == "before-commit":
    Store.commit = stop
else:
    p.sweep = stop
p.purge(sys.argv[1], key="a-008")
"""


@pytest.mark.parametrize("phase", ["before-commit", "after-commit"])
def test_a_killed_purge_leaves_the_old_or_the_new_store_and_a_rerun_completes(store: Path, phase: str) -> None:
    commits = len(Store.open(store).commits())
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(store), phase], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "LOGTOOL_THREADS": "1"})  # fmt: skip
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    state = Store.open(store).state()
    assert len(Store.open(store).commits()) == commits + (phase == "after-commit")
    assert_verified(store, leftovers=True)  # new files not yet named, or old ones not yet deleted
    if phase == "before-commit":
        assert rows(store, "SELECT count(*) AS n FROM events") == [{"n": 16}]
    else:
        assert state.version == commits and rows(store, "SELECT count(*) AS n FROM events") == [{"n": 12}]

    res = purge(store, key=PERSON["key"])  # the stale lock of the killed process is taken over
    assert res.events == (4 if phase == "before-commit" else 0) and res.leftovers_removed
    assert_verified(store)
    assert residue(store, PERSON["email"]) == []


# --------------------------------------------------------------------------- invariant


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(st.sampled_from(["k0", "k1", "k2", "k3"]), min_size=1, max_size=12),
    segment_rows=st.integers(1, 5),
    victim=st.sampled_from(["k0", "k1", "k9"]),
)
def test_purge_leaves_every_other_event_untouched(
    tmp_path_factory: pytest.TempPathFactory, keys: list[str], segment_rows: int, victim: str
) -> None:
    base = tmp_path_factory.mktemp("prop")
    src = base / "log.jsonl"
    src.write_text("".join(json.dumps({"id": k, "op": "upsert", "data": {"v": i, "k": k}}) + "\n"
                           for i, k in enumerate(keys)))  # fmt: skip
    path = base / "s"
    ingest(path, [str(src)], mapping=Mapping(key_fields=("id",), op_field="op", data_field="data"),
           segment_rows=segment_rows)  # fmt: skip
    before = rows(path, 'SELECT "offset", key, data, digest FROM events ORDER BY "offset"')
    seg_bytes = {s["path"]: (path / s["path"]).read_bytes() for s in Store.open(path).state().segments}

    res = purge(path, key=victim)

    assert rows(path, 'SELECT "offset", key, data, digest FROM events ORDER BY "offset"') == [
        r for r in before if r["key"] != victim
    ]
    assert res.events == keys.count(victim)
    for seg in Store.open(path).state().segments:  # a segment without the key is the same file
        if seg["path"] in seg_bytes:
            assert (path / seg["path"]).read_bytes() == seg_bytes[seg["path"]]
    assert_verified(path)


def test_redact_refuses_a_dotted_field_that_is_the_key(tmp_path: Path) -> None:
    path = tmp_path / "k.jsonl"
    path.write_text('{"a.b":"k1","t":"u","data":{"a.b":"k1","x":1}}\n')
    ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("a.b",), entity_field="t", data_field="data"))
    with pytest.raises(UsageError, match="it is the key of the events"):
        redact(tmp_path / "s", ["a.b"], entity="u")


def test_redact_reaches_into_path_patches(tmp_path: Path) -> None:
    """MongoDB's updates are stored as {"$set": {path: value}}: a redacted field is found there
    too, at its path, above it (inside the value) or below it (the whole value)."""
    from logtool.replay import replay

    log = tmp_path / "people.jsonl"
    # (no value is digits alone: the hex digests in the commit files could hold it by chance)
    log.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": 1, "op": "insert", "data": {"email": "a@x", "address": {"city": "Oslo", "zip": "ZIP-0150"}}},
        {"id": 1, "op": "patch", "data": {"$set": {"email": "new@x", "address.zip": "ZIP-0999"}}},
        {"id": 1, "op": "patch", "data": {"$set": {"address": {"city": "Bergen", "zip": "ZIP-5003"}}}},
        {"id": 2, "op": "patch", "data": {"$set": {"email": "other@x"}}},
    ]))  # fmt: skip
    store = tmp_path / "s"
    ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), op_field="op", data_field="data", entity="people"))
    res = redact(store, ["email", "address.zip"], key="1")
    assert res.events == 3
    rows = {r["key"]: json.loads(r["state"]) for r in replay(str(store)).state.to_pylist()}
    assert rows["1"] == {"email": "[REDACTED]", "address": {"city": "Bergen", "zip": "[REDACTED]"}}
    assert rows["2"] == {"email": "other@x"}
    assert residue(store, "new@x") == [] and residue(store, "ZIP-0999") == [] and residue(store, "ZIP-5003") == []
    assert_verified(store)


def _quarantining_store(tmp_path: Path, lines: list[str]) -> Path:
    """A store of these JSON lines, its bad records quarantined."""
    log = tmp_path / "in.jsonl"
    log.write_text("".join(line + "\n" for line in lines))
    ingest(tmp_path / "s", [str(log)], mapping=MAPPING, on_error="quarantine")
    return tmp_path / "s"


def test_a_key_token_in_a_quarantined_record_is_a_whole_token(tmp_path: Path) -> None:
    # `4` is not in `2.5.4.Final`, nor `42` in `42.5` or `+4420`: those records are someone else's
    store = _quarantining_store(tmp_path, [
        '{"ts": "2026-03-01T00:00:00Z", "table": "users", "op": "insert", "id": 1, "data": {"v": 1}}',
        '{"ts": "bad", "table": "users", "op": "insert", "id": 77, "data": {"version": "2.5.4.Final", "n": 42.5, "p": "+4420"}}',
        '{"ts": "bad", "table": "users", "op": "insert", "id": 4, "data": {"n": 1}}',
        '{"ts": "bad", "table": "users", "op": "insert", "id": [42], "data": {}}',
    ])  # fmt: skip
    assert purge(store, key="4", dry_run=True).quarantine_records == 1
    assert purge(store, key="42", dry_run=True).quarantine_records == 1  # the record whose key could not be read
    assert purge(store, key="Final", dry_run=True).quarantine_records == 0


def test_a_rewritten_quarantine_file_is_still_read_as_its_ingest_read_it(tmp_path: Path) -> None:
    """After a purge rewrote a quarantine file, a later --where purge still matches its records."""
    store = _quarantining_store(tmp_path, [
        '{"ts": "2026-03-01T00:00:00Z", "table": "users", "op": "insert", "id": 1, "data": {"email": "bob@example.org"}}',
        '{"ts": "not-a-time", "table": "users", "op": "update", "id": 1, "data": {"email": "bob@example.org"}}',
        '{"ts": "2026-03-01T00:00:00Z", "table": "users", "op": "frobnicate", "id": 2, "data": {"email": "ann@example.org"}}',
    ])  # fmt: skip
    assert purge(store, key="1").quarantine_records == 1
    res = purge(store, where="data->>'email' = 'ann@example.org'")
    assert res.quarantine_records == 1
    assert residue(store, "ann@example.org") == []
    assert_verified(store)


def test_redact_in_a_path_patch_follows_disambiguated_paths(tmp_path: Path) -> None:
    """{"$set": {"a.b": 5}} with disambiguatedPaths {"a.b": ["a.b"]} sets the field named a.b:
    redacting the field a leaves it alone."""
    from logtool.replay import replay

    log = tmp_path / "m.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": 1, "op": "insert", "data": {"a.b": 1, "a": {"b": 2}}},
        {"id": 1, "op": "patch", "data": {"$set": {"a.b": 5}, "$paths": {"a.b": ["a.b"]}}},
    ]))  # fmt: skip
    store = tmp_path / "s"
    ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), op_field="op", data_field="data", entity="p"))
    redact(store, ["a"], key="1")
    (row,) = replay(str(store)).state.to_pylist()
    assert json.loads(row["state"]) == {"a.b": 5, "a": "[REDACTED]"}


def test_a_lone_surrogate_escape_in_a_quarantined_or_unreadable_record_is_judged_not_fatal(tmp_path: Path) -> None:
    """A record holding half an emoji (a \\ud83d escape, as JavaScript writes a truncated one) is
    judged as any other, its lone surrogate read as U+FFFD; one redacted keeps the escape as written.
    (Ingest reads such a record, as U+FFFD: these are bad for their time.)"""
    lines = [
        '{"ts": "2026-03-01T00:00:00Z", "table": "users", "op": "insert", "id": 1, "data": {"email": "p1@x.org"}}',
        '{"ts": "2026-03-01T00:00:00Z", "table": "users", "op": "insert", "id": 2, "data": {"email": "p2@x.org"}}',
        '{"ts": "soon", "table": "users", "op": "insert", "id": 3, "data": {"bio": "pizza \\ud83d"}}',
        '{"ts": "soon", "table": "users", "op": "insert", "id": 2, "data": {"email": "p2@x.org", '
        '"bio": "half \\uD83D, \\udcff"}}',
    ]  # fmt: skip
    store = _quarantining_store(tmp_path, lines)
    assert Store.open(store).state().of_kind("quarantine")[0]["rows"] == 2
    assert purge(store, key="2", dry_run=True).quarantine_records == 1
    assert purge(store, where="data->>'bio' LIKE 'pizza %'", dry_run=True).quarantine_records == 1
    redact(store, ["email"], key="2")
    (entry,) = Store.open(store).state().of_kind("quarantine")
    raws = [json.loads(line)["raw"] for line in (store / entry["path"]).read_text("utf-8").splitlines()]
    assert raws[1] == '{"ts":"soon","table":"users","op":"insert","id":2,"data":{"email":"[REDACTED]",' \
        '"bio":"half \\ud83d, \\udcff"}}'  # fmt: skip
    assert purge(store, key="2").quarantine_records == 1
    assert residue(store, "p2@x.org") == []
    assert_verified(store)
    # raw-file mode: the unreadable lines are judged the same way, and a redacted one keeps its escapes
    out = tmp_path / "clean.jsonl"
    result = purge_file(tmp_path / "in.jsonl", out, key="2", mapping=MAPPING)
    assert (result.removed, out.read_text().splitlines()) == (2, [lines[0], lines[2]])
    redact_file(tmp_path / "in.jsonl", out, ["email"], key="2", mapping=MAPPING)
    assert out.read_text().splitlines()[3].endswith('{"email":"[REDACTED]","bio":"half \\ud83d, \\udcff"}}')


@pytest.mark.parametrize("where", ["key = = 1", "no_such_column = 1"])
def test_raw_file_where_that_fails_names_the_columns_not_a_store_command(cli: Any, tmp_path: Path, where: str) -> None:
    """A raw file has no store to run `logtool info` on: the hint lists the events view's columns."""
    src = tmp_path / "log.jsonl"
    src.write_text('{"id":1,"op":"insert","data":{"a":1}}\n')
    r = cli("purge", src, "--where", where, "--key-field", "id", "-o", tmp_path / "out.jsonl")
    assert r.code == 2 and not (tmp_path / "out.jsonl").exists()
    columns = 'columns: offset (write it "offset"), ts, entity, key, prev_key, op, type, data, before, meta (JSON), txn'
    assert columns in r.err.splitlines()[-1] and r.err.splitlines()[-1].startswith("hint: "), r.err
    assert "logtool info" not in r.err
