"""The Debezium reader: envelopes with and without schema, keyed dumps, tombstones, bad records."""

from __future__ import annotations

import base64
import json

import pytest

from logtool.errors import UsageError
from logtool.formats import detect
from logtool.formats.base import Mapping, Source
from logtool.formats.debezium import FORMAT

PG_KEYS = Mapping(key_fields=("id", "orders:order_id", "accounts:account_no"))
BIG38 = "12345678901234567890123456789012345678"
BIG64 = "9223372036854775809"  # 2**63 + 1
FRAC38 = "1234567890123456789012345678.0123456789"


def summary(row: dict) -> tuple:
    txn = row["txn"]["id"] if row["txn"] else None
    return (row["source"]["line"], row["op"], row["entity"], row["key"], row["prev_key"], row["ts"],
            row["source"]["position"], txn)  # fmt: skip


def test_postgres_sample(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "debezium_pg.jsonl", PG_KEYS)
    assert bad == []
    assert [summary(r) for r in rows] == [
        (1, "read", "public.customers", "1001", None, 1709631000000000, "0/16E9058", "767"),
        (2, "read", "public.customers", "1002", None, 1709631000005000, "0/16E9058", "767"),
        (3, "read", "public.accounts", "ACC-0001", None, 1709631000009000, "0/16E9058", "767"),
        (4, "insert", "public.customers", "1003", None, 1709631061000000, "0/16F0A30", "771:24054320"),
        (5, "insert", "public.orders", "5001", None, 1709631061000000, "0/16F0AD0", "771:24054320"),
        (6, "patch", "public.customers", "1003", None, 1709631125000000, "0/16F2448", "772:24061000"),
        (7, "update", "public.orders", "5001", None, 1709631187000000, "0/16F47E0", "773:24070112"),
        (8, "update", "public.accounts", "ACC-1001", "ACC-0001", 1709631250000000, "0/16F4EA0", "774:24071840"),
        (9, "delete", "public.customers", "1002", None, 1709631312000000, "0/16F6E80", "775:24080000"),
        (10, "event", "audit", None, None, 1709631340000000, "0/16F72D8", None),
        (11, "update", "public.orders", "5001", None, 1709631400000000, "0/16F9590", "776"),
        (12, "delete", "public.accounts", "ACC-1001", None, 1709631460000000, "0/16FA918", "777"),
        (13, "truncate", "public.orders", None, None, 1709631520000000, "0/16FBCA0", "778"),
        (14, "insert", "public.customers", "1004", None, 1709631580000000, "0/16FE3B0", "779"),
    ]
    by_line = {r["source"]["line"]: r for r in rows}
    first = by_line[1]
    assert first["data"] == (
        '{"id":1001,"name":"Sally Thomas","email":"sally.thomas@acme.com","tier":"gold","notes":"prefers email"}'
    )
    assert first["before"] is None and first["type"] is None
    assert first["source"] == {"format": "debezium", "file": str(cdc_samples / "debezium_pg.jsonl"), "line": 1,
                               "position": "0/16E9058", "position_order": "00000000016E9058"}  # fmt: skip
    meta = json.loads(by_line[4]["meta"])
    assert meta["ts_ms"] == 1709631061137  # the connector's time stays in meta, not in ts
    assert meta["transaction"] == {"id": "771:24054320", "total_order": 1, "data_collection_order": 1}
    assert meta["source"]["snapshot"] == "false" and "after" not in meta
    assert by_line[4]["txn"] == {"id": "771:24054320", "position": None, "position_order": None,
                                 "ts": 1709631061000000, "aborted": None}  # fmt: skip
    # the unchanged TOASTed column is left out, so it keeps its old value on replay
    assert by_line[6]["data"] == '{"id":1003,"name":"Edward Walker","email":"edward.walker@walker.com","tier":"bronze"}'
    # a key change on a table keyed by --key-field: the before image has the old key
    assert json.loads(by_line[8]["before"])["account_no"] == "ACC-0001"
    assert by_line[9]["data"] is None
    assert by_line[9]["before"] == '{"id":1002,"name":null,"email":null,"tier":null,"notes":null}'
    message = by_line[10]
    assert message["type"] == "message"
    assert json.loads(message["data"])["prefix"] == "audit"
    assert by_line[13]["data"] is None and by_line[13]["before"] is None
    # source positions sort as the LSNs do
    orders = [r["source"]["position_order"] for r in rows]
    assert orders == sorted(orders)


def test_exact_numbers(read_events, cdc_samples) -> None:
    rows, _ = read_events(FORMAT, cdc_samples / "debezium_pg.jsonl", PG_KEYS)
    assert rows[2]["data"] == (
        f'{{"account_no":"ACC-0001","owner_id":1001,"balance":{BIG38},"ledger_seq":{BIG64},"rate":{FRAC38}}}'
    )
    assert f'"balance":{BIG38},"ledger_seq":{BIG64},"rate":{FRAC38}' in rows[7]["before"]


def test_keyed_dump(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "debezium_keyed.jsonl")
    assert bad == []
    gtid = "3e11fa47-71ca-11e1-9e33-c80aa9429562:"
    assert [summary(r) for r in rows] == [
        (1, "read", "inventory.customers", "1001", None, 1709640000000000, "mysql-bin.000003:154", None),
        (2, "read", "inventory.customers", "1002", None, 1709640000000000, "mysql-bin.000003:154", None),
        (3, "insert", "inventory.customers", "1003", None, 1709640030000000, "mysql-bin.000003:1028", gtid + "23"),
        (4, "update", "inventory.customers", "1003", None, 1709640045000000, "mysql-bin.000003:1342", gtid + "24"),
        (5, "delete", "inventory.customers", "1002", None, 1709640060000000, "mysql-bin.000003:1690", gtid + "25"),
        (6, "delete", "inventory.customers", "1002", None, 1709640060000000, "mysql-bin.000003:1690", gtid + "25"),
        (7, "insert", "inventory.products", "101", None, 1709640070000000, "mysql-bin.000003:2001", gtid + "26"),
        (8, "update", "inventory.products", "101", None, 1709640080000000, "mysql-bin.000003:2300", gtid + "27"),
        (9, "delete", "inventory.products", "101", None, 1709640090000000, "mysql-bin.000003:2600", gtid + "28"),
        (10, "delete", "inventory.products", "101", None, 1709640090000000, "mysql-bin.000003:2600", gtid + "28"),
        (11, "insert", "inventory.customers", "1004", None, 1709640095000000, "mysql-bin.000003:2950", gtid + "29"),
    ]
    # snapshot as a boolean (older connectors) and as a string (newer ones)
    assert json.loads(rows[0]["meta"])["source"]["snapshot"] is True
    assert json.loads(rows[1]["meta"])["source"]["snapshot"] == "last"
    # tombstones: a delete with null data, at its delete's place (time, position, transaction)
    assert all(rows[i][c] is None for i in (5, 9) for c in ("data", "before", "meta"))
    assert rows[5]["txn"] == rows[4]["txn"] and rows[9]["txn"] == rows[8]["txn"]
    # with the schema, Kafka Connect decimals (base64 bytes) become exact numbers
    assert rows[6]["data"] == (f'{{"id":101,"name":"scooter","price":3.14,"units_sold":{BIG38},"sku_hash":{BIG64}}}')
    assert json.loads(rows[7]["data"], parse_float=str)["price"] == "-0.05"
    assert rows[7]["before"] == f'{{"id":101,"name":"scooter","price":3.14,"units_sold":{BIG38},"sku_hash":{BIG64}}}'


def envelope(op: str, before: dict | None, after: dict | None, **source: object) -> dict:
    src = {"version": "2.5.4.Final", "connector": "postgresql", "name": "pg", "ts_ms": 1709631000000,
           "snapshot": "false", "db": "shop", "schema": "public", "table": "customers", "txId": 900,
           "lsn": 33554432} | source  # fmt: skip
    return {"before": before, "after": after, "source": src, "op": op, "ts_ms": 1709631000500}


def lines(*records: object) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def test_bad_records_are_reported_and_reading_goes_on(read_events, write_file) -> None:
    schema_change = {"source": envelope("c", None, {})["source"], "databaseName": "shop",
                     "ddl": "ALTER TABLE customers ADD COLUMN vip boolean", "tableChanges": []}  # fmt: skip
    no_source = envelope("c", None, {"id": 5})
    del no_source["source"]
    path = write_file(
        "bad.jsonl",
        lines(
            envelope("c", None, {"id": 1, "name": "Ann"}),
            '{"before":null,"after":{"id":2},"op":"c","source":',
            [1, 2],
            schema_change,
            envelope("x", None, {"id": 3}),
            no_source,
            envelope("u", {"id": 6}, None),
            envelope("c", None, {"id": 7}, ts_ms="yesterday"),
            envelope("c", None, {"name": "no id"}),
            envelope("u", None, {"id": 1, "name": "Anne"}),
            envelope("c", None, {"id": 9}, lsn=-5),
        ),
    )
    rows, bad = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert [(r["source"]["line"], r["op"], r["key"]) for r in rows] == [(1, "insert", "1"), (10, "update", "1")]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "invalid JSON: Expecting value at column 51"),
        (3, "a Debezium record is a JSON object, not a list"),
        (5, "unknown Debezium op 'x' (expected one of c, r, u, d, t, m)"),
        (6, "Debezium event without a 'source' block"),
        (7, "op 'u' without an 'after' image"),
        (8, "source.ts_ms: unparseable timestamp 'yesterday'"),
        (9, "key column 'id' is not in the after image"),
        (11, "source.lsn -5 is not an LSN"),
    ]
    assert all(b.file == str(path) for b in bad)
    assert bad[0].raw == b'{"before":null,"after":{"id":2},"op":"c","source":'
    assert json.loads(bad[2].raw)["op"] == "x"


def test_a_keyless_change_without_before_image_is_reported(read_events, write_file) -> None:
    path = write_file(
        "keyless.jsonl",
        lines(
            envelope("c", None, {"id": 1, "name": "Ann"}),
            envelope("u", None, {"id": 1, "name": "Anne"}),
            envelope("d", None, None),
            envelope("u", {"id": 1, "name": "Anne"}, {"id": 1, "name": "Annie"}),
        ),
    )
    rows, bad = read_events(FORMAT, path)
    assert [(r["source"]["line"], r["op"], r["key"]) for r in rows] == [(1, "insert", None), (4, "update", None)]
    assert rows[1]["before"] == '{"id":1,"name":"Anne"}'
    assert [b.line for b in bad] == [2, 3]
    assert bad[0].reason.startswith("op 'u' of a row with no key and no before image")


def test_tombstones(read_events, write_file) -> None:
    key_schema = {"type": "struct", "fields": [{"type": "int32", "optional": False, "field": "id"}],
                  "optional": False, "name": "pg.public.customers.Key"}  # fmt: skip
    path = write_file(
        "tombstones.jsonl",
        lines(
            {"key": {"schema": key_schema, "payload": {"id": 4}}, "value": None},
            {"key": {"schema": key_schema, "payload": {"id": 3}}, "value": envelope("c", None, {"id": 3})},
            {"key": {"schema": key_schema, "payload": {"id": 4}}, "value": None},
            {"key": {"id": 5}, "value": None},
            {"key": json.dumps({"id": 6}), "value": json.dumps(envelope("d", {"id": 6}, None))},
            {"key": json.dumps({"id": 6}), "value": None},
            {"value": None},
        ),
    )
    rows, bad = read_events(FORMAT, path)
    assert [(r["source"]["line"], r["op"], r["entity"], r["key"], r["ts"]) for r in rows] == [
        (1, "delete", "public.customers", "4", 1709631000000000),  # it waits for line 2, which shows its table
        (2, "insert", "public.customers", "3", 1709631000000000),
        (3, "delete", "public.customers", "4", 1709631000000000),  # its key schema is line 2's; at line 5's time
        (5, "delete", "public.customers", "6", 1709631000000000),
        (6, "delete", "public.customers", "6", 1709631000000000),
    ]
    # line 4 names no table and follows no delete of its key: it is passed over (see the next tests)
    assert [(b.line, b.reason) for b in bad] == [(7, "tombstone (null value) without a key")]


def sqlserver(op: str, before: dict | None, after: dict | None, db: str = "testDB", table: str = "customers") -> dict:
    source = {"version": "2.5.4.Final", "connector": "sqlserver", "name": "server1", "ts_ms": 1559729468470,
              "snapshot": "false", "db": db, "schema": "dbo", "table": table, "change_lsn": "00000027:00000758:0003",
              "commit_lsn": "00000027:00000758:0005", "event_serial_no": 1}  # fmt: skip
    return {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1559729471739}


def schema_key(name: str, key: int) -> dict:
    return {"schema": {"type": "struct", "fields": [{"type": "int32", "field": "id"}], "name": name},
            "payload": {"id": key}}  # fmt: skip


@pytest.mark.parametrize(
    ("prefix", "made", "other"),
    [
        ("server1.testDB.dbo", "server1.testDB.dbo.orders.Key", "testDB.dbo.orders"),  # SQL Server 2.x
        ("server1.dbo", "server1.dbo.orders.Key", "testDB.dbo.orders"),  # 1.x: no database in the name
        ("my.server.testDB.dbo", "my.server.testDB.dbo.orders.Key", "testDB.dbo.orders"),  # a prefix with a dot
        ("all_shards", "all_shards.orders.Key", None),  # a router's topic: it says no more of another table
    ],
)
def test_a_tombstone_takes_its_table_only_from_what_the_file_shows(
    read_events, write_file, prefix: str, made: str, other: str | None
) -> None:
    """A key schema's name is its topic's (`<prefix>.<table>.Key`), the table named as the
    connector names it, the prefix free to hold dots, a topic free to be routed anywhere: a name
    alone says no table. The delete of the key just before a tombstone gives its table and time;
    else its key schema's name does where a change event of the file carried it (one before it
    waits for that change), or the name of another table's key schema made alike; else it is
    passed over, no table made up."""
    name = f"{prefix}.customers.Key"
    path = write_file("sqlserver.jsonl", lines(
        {"key": schema_key(name, 7), "value": None},  # nothing shows what the name stands for yet: it waits
        {"key": schema_key(name, 1001), "value": sqlserver("c", None, {"id": 1001})},
        {"key": schema_key(name, 1002), "value": sqlserver("c", None, {"id": 1002})},
        {"key": schema_key(name, 1001), "value": sqlserver("d", {"id": 1001}, None)},
        {"key": schema_key(name, 1001), "value": None},  # its delete's
        {"key": schema_key(name, 1002), "value": None},  # a compacted topic's: its delete went
        {"key": schema_key(made, 5), "value": None},  # another table's, its name made alike (or not)
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["source"]["line"], r["op"], r["entity"], r["key"], r["ts"]) for r in rows] == [
        (1, "delete", "testDB.dbo.customers", "7", 1559729468470000),  # just before the change that shows its table
        (2, "insert", "testDB.dbo.customers", "1001", 1559729468470000),
        (3, "insert", "testDB.dbo.customers", "1002", 1559729468470000),
        (4, "delete", "testDB.dbo.customers", "1001", 1559729468470000),
        (5, "delete", "testDB.dbo.customers", "1001", 1559729468470000),
        (6, "delete", "testDB.dbo.customers", "1002", 1559729468470000),  # at the file's last change's time
    ] + ([(7, "delete", other, "5", 1559729468470000)] if other else [])


def test_a_tombstone_before_the_first_change_of_its_key_schemas_name_waits_for_it(
    read_events, write_file, tmp_path, monkeypatch
) -> None:
    """In a compacted topic's dump a tombstone whose delete compaction dropped may come before the
    first change of its table: it waits for the first change of its key schema's name, and goes in
    just before it, in the table that change shows. Where the file shows none, the store's earlier
    ingests of keyed dumps may (they keep each change's key schema's name in meta); a tombstone
    nothing places is passed over. At most a limit wait: past it, the longest waiting name's are
    placed by what the store shows."""
    import logtool
    from logtool.formats import debezium
    from logtool.query import sql

    def row(key: int, lsn: int, name: str = "dbserver1.public.customers.Key") -> dict:
        return {"key": schema_key(name, key), "value": envelope("c", None, {"id": key}, txId=lsn, lsn=lsn)}

    def tomb(key: int, name: str = "dbserver1.public.customers.Key") -> dict:
        return {"key": schema_key(name, key), "value": None}

    day1 = write_file("day1.jsonl", lines(row(1, 1001), row(2, 1002), row(3, 1003)))
    day2 = write_file("day2.jsonl", lines(tomb(1), tomb(2), row(4, 2000), tomb(3)))
    rows, bad = read_events(FORMAT, day2)
    assert bad == []
    assert [(r["source"]["line"], r["op"], r["entity"], r["key"]) for r in rows] == [
        (1, "delete", "public.customers", "1"), (2, "delete", "public.customers", "2"),
        (3, "insert", "public.customers", "4"), (4, "delete", "public.customers", "3"),
    ]  # fmt: skip
    assert json.loads(rows[2]["meta"])["key_schema"] == "dbserver1.public.customers.Key"
    store = tmp_path / "s"
    logtool.ingest(store, [str(day1), str(day2)])
    assert logtool.replay(store).state.column("key").to_pylist() == ["4"]
    # tombstones alone: the store's earlier changes show what their names stand for (another
    # table's name made alike too); a name it does not show is passed over and said
    day3 = write_file("day3.jsonl", lines(tomb(4), tomb(9, "dbserver1.public.orders.Key"), tomb(5, "elsewhere.Key")))
    result = logtool.ingest(store, [str(day3)], format="debezium")
    assert logtool.replay(store).state.num_rows == 0
    assert sql(store, "SELECT entity, key FROM events WHERE source.file LIKE '%day3.jsonl'").to_pylist() == [
        {"entity": "public.customers", "key": "4"}, {"entity": "public.orders", "key": "9"},
    ]  # fmt: skip
    assert len(result.warnings) == 2 and "1 tombstone naming no table" in result.warnings[0]
    assert "2 events have no time in the source" in result.warnings[1]  # (no change in the file to take one from)
    # past the limit, the longest waiting name's go in by what the store shows
    monkeypatch.setattr(debezium, "_HELD", 1)
    source = Source(str(write_file("day4.jsonl", lines(tomb(1), tomb(7, "other.t.Key"), row(5, 3000)))))
    source.store_key_names = lambda: [("dbserver1.public.customers.Key", "public.customers", False)]
    rows = [r for batch in FORMAT.read(source, Mapping(), lambda _b: None) for r in batch.to_pylist()]
    assert [(r["source"]["line"], r["entity"], r["key"]) for r in rows] == [
        (1, "public.customers", "1"), (3, "public.customers", "5"),
    ]  # fmt: skip
    assert len(source.notes) == 1 and "1 tombstone naming" in source.notes[0]


def test_a_tombstone_placed_by_its_key_schemas_name_is_at_the_change_it_goes_in_before(
    read_events, write_file, tmp_path
) -> None:
    """A tombstone placed by its key schema's name (its delete unknown) takes the time and source
    position of the change it goes in just before (a held one, of the first change of its name),
    or, with no change after it, of the file's last change before it: never the ingest's time (an
    --at-time before the ingest would end its prefix there) nor no position (--at-position would
    never apply it). It joins no transaction: it is no part of that change's."""
    import logtool

    def row(table: str, key: int, txid: int, lsn: int, ms: int) -> dict:
        return {"key": schema_key(f"dbserver1.public.{table}.Key", key),
                "value": envelope("c", None, {"id": key}, table=table, txId=txid, lsn=lsn, ts_ms=ms)}  # fmt: skip

    def tomb(table: str, key: int) -> dict:
        return {"key": schema_key(f"dbserver1.public.{table}.Key", key), "value": None}

    day1 = write_file("day1.jsonl", lines(row("customers", 1, 500, 1000, 1709631001000),
                                          row("orders", 1, 501, 1100, 1709631002000)))  # fmt: skip
    day2 = write_file("day2.jsonl", lines(
        row("customers", 2, 600, 2000, 1709631010000),
        tomb("orders", 1),  # held until the first change of its name, in transaction 600
        row("orders", 2, 600, 2100, 1709631011000),
        tomb("customers", 1),  # its name known: before the next change
        row("customers", 3, 700, 3000, 1709631020000),
        tomb("customers", 2),  # no change after it: at the last one's
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, day2)
    assert bad == []
    assert [(r["source"]["line"], r["op"], r["key"], r["ts"], r["source"]["position"], r["txn"] and r["txn"]["id"])
            for r in rows] == [
        (1, "insert", "2", 1709631010000000, "0/7D0", "600"),
        (2, "delete", "1", 1709631011000000, "0/834", None),
        (3, "insert", "2", 1709631011000000, "0/834", "600"),
        (4, "delete", "1", 1709631020000000, "0/BB8", None),
        (5, "insert", "3", 1709631020000000, "0/BB8", "700"),
        (6, "delete", "2", 1709631020000000, "0/BB8", None),
    ]  # fmt: skip
    store = tmp_path / "s"
    result = logtool.ingest(store, [str(day1), str(day2)])
    assert result.warnings == []  # none stamped with the ingest's time

    def state(**at: object) -> list[tuple[str, str]]:
        table = logtool.replay(store, **at).state  # type: ignore[arg-type]
        return sorted(zip(table.column("entity").to_pylist(), table.column("key").to_pylist(), strict=True))

    head = [("public.customers", "3"), ("public.orders", "2")]
    assert state() == state(at_time="2024-12-31T00:00:00Z") == state(at_position="0/FFFF") == head
    assert state(at_position="0/833") == [("public.customers", "1"), ("public.orders", "1")]
    assert state(at_position="0/834") == [("public.customers", "1"), ("public.customers", "2"), ("public.orders", "2")]
    assert state(at_time="2024-03-05T09:30:10Z") == [("public.customers", "1"), ("public.orders", "1")]
    # at the held tombstone's offset (3), transaction 600 goes on after it: it is left out, the tombstone in
    assert state(at_offset=3) == [("public.customers", "1")]
    assert state(at_offset=4) == [("public.customers", "1"), ("public.customers", "2"), ("public.orders", "2")]
    # two stores of the same dumps, ingested apart, hold the same log
    other = tmp_path / "t"
    logtool.ingest(other, [str(day1), str(day2)])
    assert logtool.diff(store, other, by="position").same and logtool.diff(store, other).same


def test_a_tombstone_follows_the_delete_of_its_own_topic(read_events, write_file) -> None:
    """Deletes of one key in two tables, their tombstones after both (a dump of two topics): each
    tombstone is its own table's, its key schema telling the two deletes apart; and a name that
    changes of two tables carried (a router merging them) names neither."""
    merged = "server1.all.Key"
    path = write_file("two.jsonl", lines(
        {"key": schema_key("server1.testDB.dbo.customers.Key", 1), "value": sqlserver("d", {"id": 1}, None)},
        {"key": schema_key("server1.testDB.dbo.orders.Key", 1), "value": sqlserver("d", {"id": 1}, None, table="orders")},
        {"key": schema_key("server1.testDB.dbo.customers.Key", 1), "value": None},
        {"key": schema_key("server1.testDB.dbo.orders.Key", 1), "value": None},
        {"key": schema_key(merged, 2), "value": sqlserver("c", None, {"id": 2})},
        {"key": schema_key(merged, 3), "value": sqlserver("c", None, {"id": 3}, db="otherDB")},
        {"key": schema_key(merged, 4), "value": None},
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["source"]["line"], r["entity"], r["key"]) for r in rows] == [
        (1, "testDB.dbo.customers", "1"), (2, "testDB.dbo.orders", "1"),
        (3, "testDB.dbo.customers", "1"), (4, "testDB.dbo.orders", "1"),
        (5, "testDB.dbo.customers", "2"), (6, "otherDB.dbo.customers", "3"),
    ]


def test_a_mongodb_tombstone_placed_by_its_key_schemas_name_names_the_document(read_events, write_file) -> None:
    """A tombstone of the MongoDB connector placed by its key schema's name (made sure by a change
    of another collection of its prefix) is keyed by the document's id, as the connector's events
    are, not by the extended JSON its key holds."""
    oid = "655300000000000000000011"

    def key(collection: str, ident: str) -> dict:
        return {"schema": {"type": "struct", "fields": [{"type": "string", "field": "id"}],
                           "name": f"mongo1.shop.{collection}.Key"}, "payload": {"id": json.dumps({"$oid": ident})}}  # fmt: skip

    src = {"connector": "mongodb", "name": "mongo1", "ts_ms": 1700000100000, "db": "shop", "collection": "orders", "ord": 1}
    insert = {"before": None, "after": json.dumps({"_id": {"$oid": "6553" + "0" * 20}}), "source": src, "op": "c"}
    rows, bad = read_events(FORMAT, write_file("mongo.jsonl", lines(
        {"key": key("orders", "6553" + "0" * 20), "value": insert},
        {"key": key("customers", oid), "value": None},
    )))  # fmt: skip
    assert bad == []
    assert [(r["entity"], r["key"], r["op"]) for r in rows] == [
        ("shop.orders", "6553" + "0" * 20, "insert"), ("shop.customers", oid, "delete"),
    ]


MYSQL_SOURCE = {"version": "2.5.0.Final", "connector": "mysql", "name": "d", "ts_ms": 1709640000000,
                "snapshot": "false", "db": "inv", "table": "c", "server_id": 1, "gtid": None,
                "file": "mysql-bin.000001", "pos": 10, "row": 0}  # fmt: skip


def test_a_source_time_of_zero_is_no_time(read_events, write_file) -> None:
    """Debezium 1.x's MySQL snapshot rows carry `source.ts_ms` 0 (no binlog event gave them a
    time): such a row takes the connector's time, not 1970."""
    snapshot = {**MYSQL_SOURCE, "version": "1.4.1.Final", "ts_ms": 0, "snapshot": "true", "server_id": 0}
    rows, bad = read_events(FORMAT, write_file("snap.jsonl", lines(
        {"before": None, "after": {"id": 1}, "source": snapshot, "op": "r", "ts_ms": 1612758600095},
        {"before": None, "after": {"id": 2}, "source": {**snapshot, "ts_ms": "0"}, "op": "r", "ts_ms": 1612758600096},
        {"before": None, "after": {"id": 3}, "source": snapshot, "op": "r"},
        {"before": None, "after": {"id": 4}, "source": MYSQL_SOURCE, "op": "c", "ts_ms": 1709640000100},
    )), Mapping(key_fields=("id",)))  # fmt: skip
    assert bad == []
    assert [(r["key"], r["ts"]) for r in rows] == [
        ("1", 1612758600095000), ("2", 1612758600096000), ("3", None), ("4", 1709640000000000),
    ]


def test_a_compacted_topic_dump_that_starts_with_tombstones(read_events, write_file, generic_lines, tmp_path) -> None:
    """Compaction keeps a deleted key's tombstone and drops its delete (and the row's earlier
    records): such a tombstone names no table and changes no row the dump holds. It is passed
    over, however many come first, and the dump is still recognized and read whole."""
    change = {"before": None, "after": {"id": 1, "a": 1}, "source": MYSQL_SOURCE, "op": "c", "ts_ms": 1709640000100}
    tombstones = [{"key": {"id": 100 + i}, "value": None} for i in range(1, 13)]
    path = write_file("compacted.jsonl", lines(*tombstones, {"key": {"id": 1}, "value": change}))
    assert FORMAT.sniff(path.read_bytes()) == 90
    assert detect(Source(str(path))).name == "debezium"
    # the tombstones decide nothing either way: what comes after them does
    assert FORMAT.sniff(lines(*tombstones).encode() + generic_lines) == 0
    assert FORMAT.sniff(lines(*tombstones).encode()) == 0  # a short file of them alone: any key/value export
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["source"]["line"], r["op"], r["entity"], r["key"], r["data"]) for r in rows] == [
        (13, "insert", "inv.c", "1", '{"id":1,"a":1}')
    ]
    # more tombstones than detection reads: a head full of nothing else is such a dump
    many = [{"key": {"id": i}, "value": None} for i in range(3000)]
    longer = write_file("longer.jsonl", lines(*many, {"key": {"id": 1}, "value": change}))
    assert detect(Source(str(longer))).name == "debezium"
    # (and a head with anything else in it is not)
    other = write_file("other.jsonl", lines(*many[:10], {"key": 1, "value": 2}, *many))
    assert detect(Source(str(other))).name == "jsonl"
    # with a byte order mark, the same; records with other members (a cache export's ttl) are not
    # tombstones of a dump, nor is a short file of null values (any key/value export)
    bom = write_file("bom.jsonl", "\ufeff" + lines(*many, {"key": {"id": 1}, "value": change}))
    assert detect(Source(str(bom))).name == "debezium"
    # what was passed over is said
    import logtool

    result = logtool.ingest(tmp_path / "s", [str(path)])
    assert result.warnings == [
        f"{path}: 12 tombstones naming no table that the file's changes or the store's show and following no "
        "delete of their key were passed over (a compacted topic's dump holds such); if the file is no Debezium "
        "dump, ingest it with --format jsonl"
    ]
    cache = write_file("cache.jsonl", lines(*({"ttl": 60} | t for t in many)))
    assert detect(Source(str(cache))).name == "jsonl"
    flags = write_file("flags.jsonl", lines({"key": "flag_a", "value": None}, {"key": "flag_b", "value": None}))
    assert detect(Source(str(flags))).name == "jsonl"


def test_schema_wrapper_without_key_and_variable_scale_decimals(read_events, write_file) -> None:
    def encoded(unscaled: int) -> str:
        return base64.b64encode(unscaled.to_bytes(8, "big", signed=True)).decode()

    fields = [{"type": "int32", "optional": False, "field": "id"},
              {"type": "struct", "optional": True, "name": "io.debezium.data.VariableScaleDecimal",
               "fields": [], "field": "amount"},
              {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
               "parameters": {"scale": "-2"}, "field": "rounded"}]  # fmt: skip
    schema = {"type": "struct", "name": "pg.public.customers.Envelope",
              "fields": [{"type": "struct", "fields": fields, "field": "before"},
                         {"type": "struct", "fields": fields, "field": "after"}]}  # fmt: skip
    row = {"id": 1, "amount": {"scale": 3, "value": encoded(-1234)}, "rounded": encoded(7)}
    bad_row = {"id": 2, "amount": {"scale": 3, "value": "%%%"}, "rounded": None}
    path = write_file(
        "wrapped.jsonl",
        lines(
            {"schema": schema, "payload": envelope("c", None, row)},
            {"schema": schema, "payload": envelope("c", None, bad_row)},
        ),
    )
    rows, bad = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert [(r["key"], r["data"]) for r in rows] == [("1", '{"id":1,"amount":-1.234,"rounded":700}')]
    assert [(b.line, b.reason) for b in bad] == [(2, "column 'amount': '%%%' with scale 3 is not a Decimal")]


def temporal_schema() -> dict:
    """An envelope schema whose columns are of Debezium's (and Kafka Connect's) temporal types."""
    types = {"d": ("int32", "io.debezium.time.Date"), "t": ("int32", "io.debezium.time.Time"),
             "mt": ("int64", "io.debezium.time.MicroTime"), "nt": ("int64", "io.debezium.time.NanoTime"),
             "ts": ("int64", "io.debezium.time.Timestamp"), "mts": ("int64", "io.debezium.time.MicroTimestamp"),
             "nts": ("int64", "io.debezium.time.NanoTimestamp"), "zts": ("string", "io.debezium.time.ZonedTimestamp"),
             "cd": ("int32", "org.apache.kafka.connect.data.Date"),
             "cts": ("int64", "org.apache.kafka.connect.data.Timestamp")}  # fmt: skip
    fields = [{"type": "int32", "optional": False, "field": "id"}]
    fields += [{"type": t, "optional": True, "name": name, "version": 1, "field": f} for f, (t, name) in types.items()]
    return {"type": "struct", "name": "pg.public.events.Envelope",
            "fields": [{"type": "struct", "fields": fields, "field": "before"},
                       {"type": "struct", "fields": fields, "field": "after"}]}  # fmt: skip


def test_temporal_types_become_the_text_the_database_shows(read_events, write_file) -> None:
    """With a schema, dates, times and timestamps without a zone (epoch numbers in Debezium's JSON)
    become ISO text to their full precision; zoned ones are text already. Without a schema nothing
    says what a number is: it stays as it is."""
    after = {"id": 1, "d": 19787, "t": 45296789, "mt": 45296789012, "nt": 45296789012345, "ts": 1709640000123,
             "mts": 1709640000123456, "nts": 1709640000123456789, "zts": "2024-03-05T12:00:00.5Z", "cd": 19787,
             "cts": 1709640000000}  # fmt: skip
    # before the epoch; the end of a day (PostgreSQL's 24:00:00); a MySQL TIME below zero; a
    # timestamp beyond the years a date can be written in (PostgreSQL's infinity) stays a number
    before = {"id": 1, "d": -1, "t": 0, "mt": 86400000000, "nt": -3600000000000, "ts": 1709640000000,
              "mts": -1, "nts": None, "zts": None, "cd": 0, "cts": 9223372036854775807}  # fmt: skip
    path = write_file(
        "temporal.jsonl",
        lines({"schema": temporal_schema(), "payload": envelope("u", before, after)}, envelope("u", before, after)),
    )
    rows, bad = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert bad == []
    assert json.loads(rows[0]["data"]) == {
        "id": 1, "d": "2024-03-05", "t": "12:34:56.789", "mt": "12:34:56.789012", "nt": "12:34:56.789012345",
        "ts": "2024-03-05T12:00:00.123", "mts": "2024-03-05T12:00:00.123456", "nts": "2024-03-05T12:00:00.123456789",
        "zts": "2024-03-05T12:00:00.5Z", "cd": "2024-03-05", "cts": "2024-03-05T12:00:00",
    }  # fmt: skip
    assert json.loads(rows[0]["before"]) == {
        "id": 1, "d": "1969-12-31", "t": "00:00:00", "mt": "24:00:00", "nt": "-01:00:00",
        "ts": "2024-03-05T12:00:00", "mts": "1969-12-31T23:59:59.999999", "nts": None, "zts": None,
        "cd": "1970-01-01", "cts": 9223372036854775807,
    }  # fmt: skip
    assert json.loads(rows[1]["data"]) == after and json.loads(rows[1]["before"]) == before


def test_arrays_structs_and_maps_are_read_by_their_items_schema(read_events, write_file) -> None:
    """A numeric[] or date[] column (an array schema whose items are Decimal or Date), a struct
    and a map of decimals: each element is decoded as its own schema says; a NULL element stays null."""
    dec = {"type": "bytes", "optional": True, "name": "org.apache.kafka.connect.data.Decimal",
           "parameters": {"scale": "2"}}  # fmt: skip
    date = {"type": "int32", "optional": True, "name": "io.debezium.time.Date"}
    fields = [
        {"type": "int32", "optional": False, "field": "id"},
        {"type": "array", "optional": True, "items": dec, "field": "prices"},
        {"type": "array", "optional": True, "items": date, "field": "days"},
        {"type": "struct", "optional": True, "fields": [{**dec, "field": "amount"}, {**date, "field": "on"}],
         "field": "entry"},
        {"type": "map", "optional": True, "keys": {"type": "string"}, "values": dec, "field": "by_code"},
        {"type": "map", "optional": True, "keys": {"type": "int32"}, "values": dec, "field": "by_id"},
    ]  # fmt: skip
    schema = {"type": "struct", "fields": [{"type": "struct", "fields": fields, "field": "before"},
                                           {"type": "struct", "fields": fields, "field": "after"}]}  # fmt: skip
    after = {"id": 1, "prices": ["AQU=", None, "/zg="], "days": [19787, None], "entry": {"amount": "AQU=", "on": 0},
             "by_code": {"a": "AQU="}, "by_id": [[1, "AQU="]]}  # fmt: skip
    path = write_file("arrays.jsonl", lines({"schema": schema, "payload": envelope("c", None, after)}))
    rows, bad = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert bad == []
    assert json.loads(rows[0]["data"], parse_float=str) == {
        "id": 1, "prices": ["2.61", None, "-2.00"], "days": ["2024-03-05", None],
        "entry": {"amount": "2.61", "on": "1970-01-01"}, "by_code": {"a": "2.61"}, "by_id": [[1, "2.61"]],
    }  # fmt: skip


@pytest.mark.parametrize("schemas", ["value", "key", "both", "neither"])
def test_a_temporal_key_and_the_key_it_had_are_written_alike(read_events, write_file, schemas: str) -> None:
    """A key column of a temporal type: the record key and the before image's key read alike,
    whichever of the two carries a schema (a Kafka key converter without schemas is common), so an
    update that keeps the key moves nothing, and one that changes it moves the row."""
    key_schema = {"type": "struct", "name": "pg.public.customers.Key",
                  "fields": [{"type": "int32", "name": "io.debezium.time.Date", "field": "d"}]}  # fmt: skip

    def record(day: int, before: dict | None, after: dict) -> dict:
        key = {"schema": key_schema, "payload": {"d": day}} if schemas in ("key", "both") else {"d": day}
        change = envelope("u" if before else "c", before, after)
        value = {"schema": temporal_schema(), "payload": change} if schemas in ("value", "both") else change
        return {"key": key, "value": value}

    path = write_file("k.jsonl", lines(
        record(19787, None, {"id": 1, "d": 19787}),
        record(19787, {"id": 1, "d": 19787}, {"id": 2, "d": 19787}),  # the key stays
        record(19788, {"id": 2, "d": 19787}, {"id": 2, "d": 19788}),  # the key changes
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    day = (lambda n: str(n)) if schemas == "neither" else (lambda n: "1970-01-01" if n == 0 else f"2024-03-0{n - 19782}")
    assert [(r["key"], r["prev_key"]) for r in rows] == [(day(19787), None), (day(19787), None), (day(19788), day(19787))]


def test_placeholder_in_an_insert_makes_it_a_patch(read_events, write_file) -> None:
    placeholder = "__debezium_unavailable_value"
    after = {
        "id": 1,
        "bio": placeholder,
        "tags": [placeholder],
        "photo": base64.b64encode(placeholder.encode()).decode(),
    }
    rows, bad = read_events(
        FORMAT, write_file("toast.jsonl", lines(envelope("r", None, after))), Mapping(key_fields=("id",))
    )
    assert bad == []
    assert (rows[0]["op"], rows[0]["data"]) == ("patch", '{"id":1}')


def test_placeholders_of_every_column_type_keep_the_value(read_events, write_file) -> None:
    """hstore in map mode (the default) and as JSON, uuid[] (the placeholder's UUID), int[] (its bytes)."""
    placeholder = "__debezium_unavailable_value"
    after = {
        "id": 1,
        "attrs": {placeholder: placeholder},
        "attrs_json": json.dumps({placeholder: placeholder}),
        "ids": ["b68a35a7-17ad-35b3-af2a-ae46edb4545a"],
        "counts": list(placeholder.encode()),
        "kept": {"a": placeholder},  # a map with a real key holding the text: a value
    }
    rows, bad = read_events(
        FORMAT, write_file("toast.jsonl", lines(envelope("u", None, after))), Mapping(key_fields=("id",))
    )
    assert bad == []
    assert rows[0]["data"] == '{"id":1,"kept":{"a":"__debezium_unavailable_value"}}'


def test_sql_server_transaction_is_its_commit_lsn(read_events, write_file, tmp_path) -> None:
    """Without transaction metadata a SQL Server change names its transaction by commit_lsn alone:
    --at-position must not take half of it."""
    import logtool

    def change(n: int, serial: str) -> dict:
        src = {"connector": "sqlserver", "ts_ms": 1709631000000, "db": "shop", "schema": "dbo", "table": "t",
               "change_lsn": f"00000027:00000758:000{serial}", "commit_lsn": "00000027:00000758:0005"}  # fmt: skip
        return {"before": None, "after": {"id": n}, "source": src, "op": "c", "ts_ms": 1709631000100}

    path = write_file("mssql.jsonl", lines(change(1, "3"), change(2, "4")))
    rows, _ = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert {json.loads(r["txn"])["position"] if isinstance(r["txn"], str) else r["txn"]["position"] for r in rows} == {
        "00000027:00000758:0005"
    }
    logtool.ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("id",)))
    assert logtool.replay(str(tmp_path / "s"), at_position="00000027:00000758:0003").state.num_rows == 0
    assert logtool.replay(str(tmp_path / "s"), at_position="00000027:00000758:0005").state.num_rows == 2


def test_a_tombstone_is_at_its_deletes_position_and_in_its_transaction(read_events, write_file, tmp_path) -> None:
    """A tombstone takes its delete's source position and transaction, as it takes its time: a
    replay to a position takes both or neither, and a transaction ends where it did. A SQL Server
    snapshot row, which has no change_lsn, is at its commit_lsn."""
    import logtool

    def pg(op: str, key: int, lsn: int, before: dict | None, after: dict | None) -> dict:
        return {"key": {"id": key}, "value": envelope(op, before, after, txId=701, lsn=lsn)}

    path = write_file("txn.jsonl", lines(
        pg("c", 1, 100, None, {"id": 1}),
        {"key": {"id": 2}, "value": envelope("c", None, {"id": 2}, txId=700, lsn=50)},
        pg("d", 2, 200, {"id": 2}, None),  # one transaction: the delete, its tombstone, then an insert
        {"key": {"id": 2}, "value": None},
        pg("c", 3, 300, None, {"id": 3}),
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["source"]["line"], r["op"], r["key"], r["source"]["position"], r["txn"]["id"]) for r in rows] == [
        (1, "insert", "1", "0/64", "701"), (2, "insert", "2", "0/32", "700"), (3, "delete", "2", "0/C8", "701"),
        (4, "delete", "2", "0/C8", "701"), (5, "insert", "3", "0/12C", "701"),
    ]  # fmt: skip
    logtool.ingest(tmp_path / "s", [str(path)])

    def keys(position: str) -> list[str]:
        return sorted(logtool.replay(str(tmp_path / "s"), at_position=position).state.column("key").to_pylist())

    assert keys("0/C8") == ["2"]  # transaction 701 has not committed: its tombstone is not in either
    assert keys("0/12C") == ["1", "3"]
    snapshot = {"connector": "sqlserver", "ts_ms": 1709631000000, "db": "shop", "schema": "dbo", "table": "t",
                "snapshot": "true", "change_lsn": None, "commit_lsn": "00000027:00000758:0005"}  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("mssql.jsonl", lines(
        {"before": None, "after": {"id": 1}, "source": snapshot, "op": "r", "ts_ms": 1709631000100},
    )), Mapping(key_fields=("id",)))  # fmt: skip
    assert bad == [] and rows[0]["source"]["position"] == "00000027:00000758:0005"


def test_a_tombstone_makes_its_deletes_transaction_end_no_later(write_file, tmp_path) -> None:
    """A tombstone after the last change of its delete's transaction is in that transaction, but
    the transaction ends at its last change: a state at that change's offset holds it whole, and
    compaction's head is not moved below it; a later change of the transaction still cuts it."""
    import logtool
    from logtool.replay import whole_transactions_below
    from logtool.store import Store

    def pg(op: str, key: int, txid: int, lsn: int, before: dict | None, after: dict | None) -> dict:
        return {"key": {"id": key}, "value": envelope(op, before, after, txId=txid, lsn=lsn)}

    path = write_file("txn.jsonl", lines(
        pg("c", 1, 500, 1000, None, {"id": 1, "n": "a"}), pg("c", 2, 501, 1100, None, {"id": 2, "n": "b"}),
        pg("u", 1, 600, 2000, {"id": 1, "n": "a"}, {"id": 1, "n": "A"}), pg("d", 2, 600, 2100, {"id": 2, "n": "b"}, None),
        {"key": {"id": 2}, "value": None},  # offset 4, in transaction 600
        pg("c", 3, 700, 3000, None, {"id": 3}), pg("d", 3, 700, 3100, {"id": 3}, None),
        {"key": {"id": 3}, "value": None},  # offset 7, in transaction 700, which goes on after it
        pg("c", 4, 700, 3200, None, {"id": 4}),
    ))  # fmt: skip
    store = tmp_path / "s"
    logtool.ingest(store, [str(path)])
    at_delete = logtool.replay(store, at_offset=3)
    assert at_delete.state.to_pylist() == [{"entity": "public.customers", "key": "1", "state": '{"id":1,"n":"A"}'}]
    assert at_delete.warnings == []
    assert whole_transactions_below(Store(store), 4) == 4
    # a change of the transaction after the tombstone: the transaction goes on after it
    assert logtool.replay(store, at_offset=7).state.column("key").to_pylist() == ["1"]
    assert whole_transactions_below(Store(store), 8) == 5


def test_decimals_the_json_converter_wrote_as_numbers(read_events, write_file) -> None:
    schema = {"type": "struct", "fields": [
        {"field": "after", "type": "struct", "fields": [
            {"field": "id", "type": "int32"},
            {"field": "big", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "0"}},
            {"field": "amt", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}},
        ]},
    ]}  # fmt: skip
    text = json.dumps({"schema": schema, "payload": envelope("c", None, {"id": 1, "big": 0, "amt": 0})})
    text = text.replace('"big": 0', '"big": 12345678901234567890123456').replace('"amt": 0', '"amt": 12.30')
    rows, bad = read_events(FORMAT, write_file("numeric.jsonl", text + "\n"), Mapping(key_fields=("id",)))
    assert bad == [] and rows[0]["data"] == '{"id":1,"big":12345678901234567890123456,"amt":12.30}'


def test_mapping_options(read_events, cdc_samples) -> None:
    with pytest.raises(UsageError, match="--op-field does not apply to debezium"):
        read_events(FORMAT, cdc_samples / "debezium_pg.jsonl", Mapping(op_field="op"))
    rows, bad = read_events(FORMAT, cdc_samples / "debezium_pg.jsonl", Mapping(key_fields=("id",)))
    # orders and accounts have no "id" column: the reader says so rather than guessing a key
    assert [(b.line, b.reason) for b in bad] == [
        (n, "key column 'id' is not in the after image") for n in (3, 5, 7, 8, 11)
    ] + [(12, "key column 'id' is not in the before image")]
    assert [r["source"]["line"] for r in rows] == [1, 2, 4, 6, 9, 10, 13, 14]


def test_a_dump_of_values_alone_with_bare_null_tombstones(read_events, write_file) -> None:
    """A console consumer printing values writes a tombstone as a bare `null`: it names no key and
    follows its delete, so it is skipped, and it does not stop the format from being recognized."""
    path = write_file(
        "values.jsonl",
        lines(envelope("c", None, {"id": 6}), envelope("d", {"id": 6}, None), None, envelope("c", None, {"id": 7})),
    )
    assert detect(Source(str(path))).name == "debezium"
    rows, bad = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert [(r["source"]["line"], r["op"], r["key"]) for r in rows] == [(1, "insert", "6"), (2, "delete", "6"),
                                                                       (4, "insert", "7")]  # fmt: skip
    assert bad == []


def test_sniff_is_not_thrown_by_a_schema_change_or_a_heartbeat_first(write_file) -> None:
    schema_change = {"source": envelope("c", None, {})["source"], "databaseName": "shop",
                     "ddl": "ALTER TABLE customers ADD COLUMN vip boolean", "tableChanges": []}  # fmt: skip
    path = write_file("mixed.jsonl", lines(schema_change, {"ts_ms": 1709631000000}, envelope("c", None, {"id": 1})))
    assert detect(Source(str(path))).name == "debezium"


def test_heartbeats_schema_changes_and_transaction_markers_are_passed_over(read_events, write_file) -> None:
    """Records Debezium writes beside its change events (a dump of several topics holds them) are
    read, not ingested, and cost no other record: the file is detected and read whole."""
    schema_change = {"source": envelope("c", None, {})["source"], "databaseName": "shop",
                     "ddl": "ALTER TABLE customers ADD COLUMN vip boolean", "tableChanges": []}  # fmt: skip
    begin = {"status": "BEGIN", "id": "571:53195829", "ts_ms": 1709631000000, "event_count": None, "data_collections": None}
    end = {"status": "END", "id": "571:53195829", "ts_ms": 1709631000000, "event_count": 1,
           "data_collections": [{"data_collection": "public.customers", "event_count": 1}]}  # fmt: skip
    path = write_file("all.jsonl", lines(begin, envelope("c", None, {"id": 1}), end, {"ts_ms": 1709631000001},
                                         schema_change, envelope("u", None, {"id": 1, "name": "Anne"})))  # fmt: skip
    assert detect(Source(str(path))).name == "debezium"
    rows, bad = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert bad == [] and [(r["source"]["line"], r["op"]) for r in rows] == [(2, "insert"), (6, "update")]


def test_sniff_keeps_a_line_whole_whatever_its_strings_hold(write_file) -> None:
    """U+2028, U+0085 and U+001C may stand in a JSON string as they are; a line ends at \\n only."""
    record = envelope("c", None, {"id": 1, "note": "a\u2028b\u0085c\x1cd"})
    path = write_file("ls.jsonl", (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    assert detect(Source(str(path))).name == "debezium"


def test_sniff(cdc_samples, generic_lines) -> None:
    for name in ("debezium_pg.jsonl", "debezium_keyed.jsonl"):
        assert FORMAT.sniff((cdc_samples / name).read_bytes()) == 90
        assert detect(Source(str(cdc_samples / name))).name == "debezium"
    assert FORMAT.sniff(generic_lines) == 0
    for other in ("maxwell.jsonl", "kcat.jsonl", "cloudevents.json", "mongodb.jsonl"):
        assert FORMAT.sniff((cdc_samples / other).read_bytes()) == 0, other
    # a dump that starts with a tombstone is still recognized by the records after it
    keyed = (cdc_samples / "debezium_keyed.jsonl").read_bytes().splitlines(keepends=True)
    assert FORMAT.sniff(keyed[5] + keyed[6]) == 90
    assert FORMAT.sniff(keyed[5]) == 0


# --------------------------------------------------------------------------- the MongoDB connector


OID = "596e275826f08b2730779e1f"


def mongo(op: str, ord_: int, **fields: object) -> dict:
    """A value of Debezium's MongoDB connector: documents as extended JSON text."""
    src = {"version": "2.5.4.Final", "connector": "mongodb", "name": "fulfillment", "ts_ms": 1709631000000 + ord_ * 1000,
           "snapshot": "false", "db": "inventory", "rs": "rs0", "collection": "customers", "ord": ord_}  # fmt: skip
    value = {"after": None, "before": None, "updateDescription": None, "source": src, "op": op, "ts_ms": 1}
    return value | {k: json.dumps(v) if k in ("after", "before", "patch", "filter") else v for k, v in fields.items()}


def test_mongodb_connector_keyed_dump(read_events, write_file) -> None:
    """Documents are extended JSON text; an update applies what changed (updateDescription, or the
    oplog's patch), never the document looked up later; the key is the document's _id, as the
    MongoDB change-stream reader gives it; a tombstone follows its delete."""
    key = {"id": json.dumps({"$oid": OID})}
    doc = {"_id": {"$oid": OID}, "name": "Anne", "tags": ["a", "b", "c"], "n": {"$numberLong": "5"}}
    described = {"updatedFields": json.dumps({"name": "Anne Marie", "tags.0": "z"}), "removedFields": ["n"],
                 "truncatedArrays": [{"field": "tags", "size": 2}]}  # fmt: skip
    path = write_file("mongo.jsonl", lines(
        {"key": key, "value": mongo("c", 1, after=doc)},
        {"key": key, "value": mongo("u", 2, updateDescription=described, after=doc | {"name": "later"})},
        {"key": key, "value": mongo("u", 3, patch={"$v": 1, "$set": {"city": "Oslo"}, "$unset": {"tags": True}})},
        {"key": json.dumps({"id": "1004"}), "value": mongo("u", 4, patch={"_id": 1004, "name": "whole"})},
        {"key": key, "value": mongo("d", 5)},
        {"key": key, "value": None},
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["entity"], r["key"], r["op"], r["source"]["position"]) for r in rows] == [
        ("inventory.customers", OID, "insert", "1709631001:1"),
        ("inventory.customers", OID, "patch", "1709631002:2"),
        ("inventory.customers", OID, "patch", "1709631003:3"),
        ("inventory.customers", "1004", "upsert", "1709631004:4"),
        ("inventory.customers", OID, "delete", "1709631005:5"),
        ("inventory.customers", OID, "delete", "1709631005:5"),  # the tombstone, at its delete's place
    ]
    assert json.loads(rows[0]["data"]) == doc
    assert json.loads(rows[1]["data"]) == {"$set": {"name": "Anne Marie", "tags.0": "z"}, "$unset": ["n"],
                                           "$truncate": {"tags": 2}}  # fmt: skip
    assert json.loads(rows[2]["data"]) == {"$set": {"city": "Oslo"}, "$unset": ["tags"]}
    assert json.loads(rows[3]["data"]) == {"_id": 1004, "name": "whole"}


def test_mongodb_connector_replays_like_the_change_stream_reader(write_file, tmp_path) -> None:
    import logtool

    key = {"id": json.dumps({"$oid": OID})}
    doc = {"_id": {"$oid": OID}, "name": "Anne", "tags": ["a", "b", "c"], "n": 5}
    described = {"updatedFields": json.dumps({"tags.0": "z"}), "removedFields": ["n"],
                 "truncatedArrays": [{"field": "tags", "size": 2}]}  # fmt: skip
    path = write_file("mongo.jsonl", lines(
        {"key": key, "value": mongo("c", 1, after=doc)},
        {"key": key, "value": mongo("u", 2, updateDescription=described)},
    ))  # fmt: skip
    logtool.ingest(tmp_path / "s", [str(path)])
    state = logtool.replay(tmp_path / "s").state.to_pylist()
    assert [(r["key"], json.loads(r["state"])) for r in state] == [(OID, {"_id": {"$oid": OID}, "name": "Anne",
                                                                          "tags": ["z", "b"]})]  # fmt: skip


def test_mongodb_connector_update_with_its_pre_image_is_the_whole_document_it_left(read_events, write_file, tmp_path) -> None:
    """In the connector's pre-image capture modes an update carries the document before it: the
    update applied to it is the whole document, so a document the log saw no insert of is whole."""
    import logtool

    key = {"id": json.dumps({"$oid": OID})}
    pre = {"_id": {"$oid": OID}, "name": "Anne", "tags": ["a", "b", "c"], "n": 5}
    described = {"updatedFields": json.dumps({"tags.0": "z"}), "removedFields": ["n"],
                 "truncatedArrays": [{"field": "tags", "size": 2}]}  # fmt: skip
    path = write_file("mongo.jsonl", lines(
        {"key": key, "value": mongo("u", 1, before=pre, updateDescription=described)},
        {"key": key, "value": mongo("u", 2, before={"_id": {"$oid": OID}, "name": "Anne", "tags": ["z", "b"]},
                                    patch={"$v": 2, "diff": {"u": {"name": "Ann"}}})},
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    whole = {"_id": {"$oid": OID}, "name": "Anne", "tags": ["z", "b"]}
    assert [(r["op"], json.loads(r["data"]), json.loads(r["before"])) for r in rows] == [
        ("upsert", whole, pre), ("upsert", {**whole, "name": "Ann"}, whole)]  # fmt: skip
    logtool.ingest(tmp_path / "s", [str(path)])
    result = logtool.replay(tmp_path / "s")
    assert result.warnings == []
    assert json.loads(result.state.to_pylist()[0]["state"]) == {**whole, "name": "Ann"}


def test_mongodb_connector_oplog_diffs_of_mongodb_5_are_applied(read_events, write_file, tmp_path) -> None:
    """The older capture mode's patch from MongoDB 5 on is the oplog's `$v: 2` diff: `u` updates,
    `i` inserts and `d` deletes fields, `s<field>` diffs a document or (`a: true`) an array within,
    whose `l` is its new length and `u<index>`/`s<index>` its elements. It is applied as such, never
    taken for a whole document; what the reader cannot apply exactly is refused, named."""
    import logtool

    key = {"id": json.dumps({"$oid": OID})}
    doc = {"_id": {"$oid": OID}, "name": "Anne", "n": 5, "address": {"city": "Oslo", "zip": "0150", "a.b": 1},
           "tags": ["a", "b", "c"], "items": [{"sku": 1, "qty": 1}, {"sku": 2, "qty": 1}]}  # fmt: skip
    diff = {"d": {"n": False}, "u": {"name": "Anne Marie"}, "i": {"vip": True},
            "saddress": {"u": {"city": "Bergen", "a.b": 2}, "d": {"zip": False}},
            "stags": {"a": True, "l": 2, "u0": "z"},
            "sitems": {"a": True, "s1": {"u": {"qty": 3}}, "u2": {"sku": 3, "qty": 1}}}  # fmt: skip
    path = write_file("mongo.jsonl", lines(
        {"key": key, "value": mongo("c", 1, after=doc)},
        {"key": key, "value": mongo("u", 2, patch={"$v": 2, "diff": diff})},
        {"key": key, "value": mongo("u", 3, patch={"$v": 2, "diff": {"sname": {"b": {"o": 0}}}})},
        {"key": key, "value": mongo("u", 4, patch={"$v": 3, "diff": {}})},
        {"key": key, "value": mongo("u", 5, patch={"$v": 1, "$inc": {"n": 1}})},
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert [(r["op"], json.loads(r["data"])) for r in rows[1:]] == [("patch", {
        "$set": {"name": "Anne Marie", "vip": True, "address.city": "Bergen", "address.a.b": 2, "tags.0": "z",
                 "items.1.qty": 3, "items.2": {"sku": 3, "qty": 1}},
        "$unset": ["n", "address.zip"], "$truncate": {"tags": 2}, "$paths": {"address.a.b": ["address", "a.b"]},
    })]  # fmt: skip
    hint = "(capture with capture.mode change_streams, whose updateDescription says what changed)"
    assert [(b.line, b.reason) for b in bad] == [
        (3, f"unsupported oplog patch: diff section 'b' {hint}"),
        (4, f"unsupported oplog patch: $v 3 {hint}"),
        (5, f"unsupported oplog patch: $inc {hint}"),
    ]
    logtool.ingest(tmp_path / "s", [str(path)], on_error="skip")
    state = json.loads(logtool.replay(tmp_path / "s").state.to_pylist()[0]["state"])
    assert state == {"_id": {"$oid": OID}, "name": "Anne Marie", "address": {"city": "Bergen", "a.b": 2},
                     "tags": ["z", "b"], "items": [{"sku": 1, "qty": 1}, {"sku": 2, "qty": 3}, {"sku": 3, "qty": 1}],
                     "vip": True}  # fmt: skip


def test_mongodb_connector_transactions_are_named_by_session_and_number(read_events, write_file) -> None:
    # without transaction metadata, a multi-document transaction is its session's lsid and txnNumber
    key = {"id": json.dumps({"$oid": OID})}
    first, second, alone = (mongo("c", n, after={"_id": {"$oid": OID}, "n": n}) for n in (1, 2, 3))
    for value, number in ((first, 7), (second, 7)):
        value["source"] |= {"lsid": '{"id": {"$binary": "AAA=", "$type": "04"}}', "txnNumber": number}
    rows, bad = read_events(FORMAT, write_file("tx.jsonl", lines(*({"key": key, "value": v} for v in (first, second, alone)))))
    assert bad == []
    assert [r["txn"]["id"] if r["txn"] else None for r in rows] == [
        '{"id": {"$binary": "AAA=", "$type": "04"}}:7', '{"id": {"$binary": "AAA=", "$type": "04"}}:7', None,
    ]


def test_mongodb_connector_values_alone(read_events, write_file) -> None:
    """Without record keys an insert still has its _id; an update of the newer capture modes
    carries none, and says so."""
    path = write_file("values.jsonl", lines(
        mongo("c", 1, after={"_id": 7, "v": 1}),
        mongo("u", 2, updateDescription={"updatedFields": json.dumps({"v": 2}), "removedFields": None}),
        mongo("u", 3, patch={"$set": {"v": 3}}, filter={"_id": 7}),  # the older capture mode names it
    ))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert [(r["key"], r["op"], r["data"]) for r in rows] == [("7", "insert", '{"_id":7,"v":1}'),
                                                              ("7", "patch", '{"$set":{"v":3}}')]  # fmt: skip
    assert [(b.line, b.reason) for b in bad] == [
        (2, "MongoDB change without a document id: no record key, and no _id in a document it carries")
    ]


def test_sql_server_tables_of_two_databases_are_two_entities(read_events, write_file) -> None:
    """One SQL Server connector may capture several databases: the entity is db.schema.table."""
    def change(db: str) -> dict:
        src = {"connector": "sqlserver", "ts_ms": 1709631000000, "db": db, "schema": "dbo", "table": "customers",
               "change_lsn": "00000025:00000d98:0002", "commit_lsn": "00000025:00000d98:0003"}  # fmt: skip
        return {"before": None, "after": {"id": 1, "name": f"from {db}"}, "source": src, "op": "c", "ts_ms": 1709631000100}

    rows, bad = read_events(FORMAT, write_file("two.jsonl", lines(change("db1"), change("db2"))), Mapping(key_fields=("id",)))
    assert bad == [] and [(r["entity"], r["key"]) for r in rows] == [("db1.dbo.customers", "1"), ("db2.dbo.customers", "1")]


def test_a_transaction_split_across_two_files_is_never_cut_by_a_snapshot_or_compaction(write_file, tmp_path) -> None:
    """A Debezium dump may end inside a transaction (rows 1 and 2 swap keys in txId 11; the swap's
    second half is in the next file): the log's last transaction counts as open, so neither a
    snapshot nor compaction at the head lands inside it."""
    import logtool

    def change(op: str, before: dict | None, after: dict, tx: int, lsn: int) -> dict:
        src = {"connector": "postgresql", "ts_ms": 1000 * tx, "db": "shop", "schema": "public", "table": "t",
               "txId": tx, "lsn": lsn}  # fmt: skip
        return {"before": before, "after": after, "source": src, "op": op, "ts_ms": 1000 * tx}

    gone = "__debezium_unavailable_value"
    first = write_file("p1.jsonl", lines(
        change("c", None, {"id": 1, "v": "one", "doc": "D1"}, 10, 100),
        change("c", None, {"id": 2, "v": "two", "doc": "D2"}, 10, 110),
        change("u", {"id": 1}, {"id": 2, "v": "one", "doc": gone}, 11, 200),
    ))  # fmt: skip
    rest = write_file("p2.jsonl", lines(change("u", {"id": 2}, {"id": 1, "v": "two", "doc": gone}, 11, 210)))
    right = {"1": {"id": 1, "v": "two", "doc": "D2"}, "2": {"id": 2, "v": "one", "doc": "D1"}}
    mapping = Mapping(key_fields=("id",))

    def head(store) -> dict:
        return {r["key"]: json.loads(r["state"]) for r in logtool.replay(str(store)).state.to_pylist()}

    snap, comp = tmp_path / "snap", tmp_path / "comp"
    logtool.ingest(snap, [str(first)], mapping=mapping)
    assert logtool.snapshot(snap)["offset"] == 1  # before txId 11, which may go on in the next file
    logtool.ingest(snap, [str(rest)], mapping=mapping)
    assert head(snap) == right and logtool.replay(str(snap)).snapshot == 1
    logtool.ingest(comp, [str(first)], mapping=mapping)
    assert logtool.compact(comp, now="2030-01-01T00:00:00Z").cleanable_before == 2
    logtool.ingest(comp, [str(rest)], mapping=mapping)
    assert head(comp) == right


def test_automatic_snapshots_wait_while_the_log_is_one_open_transaction(write_file, tmp_path) -> None:
    import logtool
    from logtool.store import Store

    src = {"connector": "postgresql", "ts_ms": 1000, "db": "shop", "schema": "public", "table": "t", "txId": 7, "lsn": 1}
    path = write_file("one.jsonl", lines({"before": None, "after": {"id": 1}, "source": src, "op": "c", "ts_ms": 1000}))
    store = tmp_path / "s"
    logtool.ingest(store, [str(path)], mapping=Mapping(key_fields=("id",)))
    logtool.configure_store(store, snapshot_every=1)
    path2 = write_file("two.jsonl", lines({"before": None, "after": {"id": 2}, "source": src, "op": "c", "ts_ms": 1000}))
    logtool.ingest(store, [str(path2)], mapping=Mapping(key_fields=("id",)))  # no error: the snapshot waits
    assert Store.open(store).state().of_kind("snapshot") == []


def test_key_field_names_a_table_whose_name_holds_a_dot_quoted_or_not(read_events, write_file) -> None:
    """The entity is public."a.b"; --key-field takes it as written, unquoted, or by its last part."""
    src = {"connector": "postgresql", "ts_ms": 1000, "db": "shop", "schema": "public", "table": "a.b", "lsn": 1}
    path = write_file("dot.jsonl", lines({"before": None, "after": {"id": 1, "v": 1}, "source": src, "op": "c", "ts_ms": 1}))
    for given in ('public."a.b":id', "public.a.b:id", '"a.b":id', "a.b:id"):
        rows, bad = read_events(FORMAT, path, Mapping(key_fields=(given,)))
        assert bad == [] and [(r["entity"], r["key"]) for r in rows] == [('public."a.b"', "1")], given


def test_automatic_snapshots_are_not_taken_twice_at_one_offset(write_file, tmp_path) -> None:
    """While the head transaction stays open, each ingest would snapshot the same offset again."""
    import logtool
    from logtool.store import Store

    def change(n: int, tx: int) -> dict:
        src = {"connector": "postgresql", "ts_ms": 1000, "db": "shop", "schema": "public", "table": "t", "txId": tx, "lsn": n}
        return {"before": None, "after": {"id": n}, "source": src, "op": "c", "ts_ms": 1000}

    store = tmp_path / "s"
    logtool.ingest(store, [str(write_file("a.jsonl", lines(change(1, 1), change(2, 2))))], mapping=Mapping(key_fields=("id",)))
    logtool.configure_store(store, snapshot_every=1)
    for n in (3, 4, 5):  # the open transaction 2 goes on
        logtool.ingest(store, [str(write_file(f"{n}.jsonl", lines(change(n, 2))))], mapping=Mapping(key_fields=("id",)))
    assert [s["offset"] for s in Store.open(store).state().of_kind("snapshot")] == [0]
    res = logtool.purge(store, before_offset=Store.open(store).state().next_offset)
    assert res.offsets == [[0, 0]] and res.notes and "moved down from offset 5 to 1" in res.notes[0]


def test_a_row_first_seen_with_unavailable_values_is_warned_of(write_file, tmp_path) -> None:
    """An update (or a create, as after a key change Debezium writes as a delete and a create)
    that leaves a TOASTed column out is a patch: a row whose first change in the log is one has
    columns nobody sent, and replay says so instead of showing a row that looks whole."""
    import logtool

    src = {"connector": "postgresql", "ts_ms": 1000, "db": "shop", "schema": "public", "table": "t", "txId": 5, "lsn": 100}
    gone = "__debezium_unavailable_value"
    path = write_file("u.jsonl", lines(
        {"before": None, "after": {"id": 7, "name": "Bo", "notes": gone}, "source": src, "op": "u", "ts_ms": 1000},
        {"before": None, "after": {"id": 8, "name": "Al", "notes": "n"}, "source": src, "op": "c", "ts_ms": 1000},
        {"before": None, "after": {"id": 8, "name": "Al", "notes": gone}, "source": src, "op": "u", "ts_ms": 1000},
    ))  # fmt: skip
    store = tmp_path / "s"
    logtool.ingest(store, [str(path)], mapping=Mapping(key_fields=("id",)))
    result = logtool.replay(str(store))
    assert {r["key"]: json.loads(r["state"]) for r in result.state.to_pylist()} == {
        "7": {"id": 7, "name": "Bo"}, "8": {"id": 8, "name": "Al", "notes": "n"}}  # fmt: skip
    assert [w for w in result.warnings if "built from partial updates" in w] == [
        "1 row was built from partial updates with no full image before it (e.g. public.t key 7): the log "
        "begins after it was written, and its other columns are unknown"
    ]
