"""The key index: which segments can hold a key, from the commit entries and the bloom filters."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtool.formats.base import Mapping
from logtool.ingest import ingest
from logtool.keyindex import SegmentIndex, describe, xxh64
from logtool.store import Store


def test_xxh64_reference_values() -> None:
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"a") == 0xD24EC4F1A98C6E5B
    assert xxh64(b"abc") == 0x44BC2CF5AD770999


def _store(tmp_path: Path, keys: list[str], segment_rows: int = 50) -> Store:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"id": k, "op": "upsert", "v": i}) + "\n" for i, k in enumerate(keys)))
    ingest(tmp_path / "store", [str(log)], mapping=Mapping(key_fields=["id"], entity="t", op_field="op"),
           segment_rows=segment_rows)  # fmt: skip
    return Store.open(tmp_path / "store")


def _segments_holding(store: Store, key: str) -> list[str]:
    files = store.segment_files()
    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    sql = f"SELECT DISTINCT filename FROM read_parquet([{listing}], filename = true) WHERE key = ?"
    return sorted(f for (f,) in duckdb.connect().execute(sql, [key]).fetchall())


# Keys of every length class the hash treats apart (under 4, 4-7, 8-31, 32 and more bytes) and
# beyond ASCII.
KEYS = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=70)


@settings(max_examples=25, deadline=None)
@given(st.lists(KEYS, min_size=1, max_size=150, unique=True))
def test_every_key_is_found_in_the_segments_that_hold_it(tmp_path_factory: pytest.TempPathFactory,
                                                        keys: list[str]) -> None:  # fmt: skip
    store = _store(tmp_path_factory.mktemp("k"), keys)
    index = SegmentIndex(store.path, store.state().segments)
    for key in keys:
        held = _segments_holding(store, key)
        assert held and set(held) <= set(index.holding(key)), key


def test_absent_keys_skip_segments(tmp_path: Path) -> None:
    keys = [f"customer-{i}" for i in range(2000)]
    store = _store(tmp_path, keys, segment_rows=500)
    index = SegmentIndex(store.path, store.state().segments)
    assert len(index.files) == 4
    assert index.holding("customer-1234") == _segments_holding(store, "customer-1234")
    probed = [len(index.holding(f"absent-{i}")) for i in range(500)]
    # 4 segments, each answering "maybe" for about 1% of absent keys
    assert sum(probed) < 0.05 * 4 * 500
    assert index.key_changes() == [] and index.keyless() == []


def test_entries_describe_row_groups_without_key_values(tmp_path: Path) -> None:
    store = _store(tmp_path, ["alice@example.com", "bob@example.com"])
    (entry,) = store.state().segments
    assert entry["row_groups"] == describe(store.path / entry["path"])
    assert entry["row_groups"][0]["key_bloom"] is not None
    assert "alice" not in json.dumps(entry)


def test_entries_without_row_groups_are_described_from_the_footers(tmp_path: Path) -> None:
    keys = [str(i) for i in range(120)]
    store = _store(tmp_path, keys)
    entries = [{k: v for k, v in e.items() if k != "row_groups"} for e in store.state().segments]
    old, new = SegmentIndex(store.path, entries), SegmentIndex(store.path, store.state().segments)
    assert old.groups == new.groups
    assert old.holding("77") == new.holding("77") == _segments_holding(store, "77")
