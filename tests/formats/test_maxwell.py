"""The Maxwell reader: rows, bootstrap, DDL, keys and key changes, bad records."""

from __future__ import annotations

import json

import pytest

from logtool.errors import UsageError
from logtool.formats import detect
from logtool.formats.base import Mapping, Source
from logtool.formats.maxwell import FORMAT

BIG38 = "12345678901234567890123456789012345678"
BIG64 = "9223372036854775809"  # 2**63 + 1
FRAC38 = "1234567890123456789012345678.0123456789"


def summary(row: dict) -> tuple:
    txn = row["txn"]["id"] if row["txn"] else None
    return (row["source"]["line"], row["op"], row["type"], row["entity"], row["key"], row["prev_key"], row["ts"],
            row["source"]["position"], txn)  # fmt: skip


def test_sample(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "maxwell.jsonl")
    assert bad == []
    items = '{"order_id":3,"sku":"SKU-9"}'
    assert [summary(r) for r in rows] == [
        (1, "event", "bootstrap-start", "shop.orders", None, None, 1709650000000000, None, None),
        (2, "read", None, "shop.orders", "1", None, 1709650000000000, None, None),
        (3, "read", None, "shop.orders", "2", None, 1709650000000000, None, None),
        (4, "event", "bootstrap-complete", "shop.orders", None, None, 1709650001000000, None, None),
        (5, "insert", None, "shop.orders", "3", None, 1709650040000000, "mysql-bin.000012:4521", "8812"),
        (6, "insert", None, "shop.order_items", items, None, 1709650040000000, "mysql-bin.000012:4897", "8812"),
        (7, "update", None, "shop.orders", "3", None, 1709650040000000, "mysql-bin.000012:5210", "8812"),
        (8, "update", None, "shop.orders", "2", None, 1709650095000000, "mysql-bin.000012:6102", "8840"),
        (9, "update", None, "shop.order_items", '{"order_id":3,"sku":"SKU-10"}', items, 1709650120000000,
         "mysql-bin.000012:6644", "8851"),
        # DDL times are in milliseconds
        (10, "event", "table-alter", "shop.orders", None, None, 1709650150512000, "mysql-bin.000012:7001", None),
        (11, "delete", None, "shop.orders", "1", None, 1709650180000000, "mysql-bin.000012:7420", "8870"),
        (12, "event", "table-create", "shop.coupons", None, None, 1709650200003000, "mysql-bin.000012:7800", None),
        # no primary_key (Maxwell's default): the key its table-create stated
        (13, "insert", None, "shop.coupons", "SPRING24", None, 1709650210000000, "mysql-bin.000012:8120", "8901"),
        (14, "truncate", "table-drop", "shop.coupons", None, None, 1709650260077000, "mysql-bin.000012:8400", None),
        (15, "event", "database-create", "archive", None, None, 1709650300000000, "mysql-bin.000012:8650", None),
    ]  # fmt: skip
    by_line = {r["source"]["line"]: r for r in rows}
    assert by_line[1]["data"] == "{}"
    assert by_line[7]["data"] == f'{{"id":3,"customer_id":7,"status":"paid","amount":42.5,"seq":{BIG38},"note":null}}'
    assert by_line[7]["before"] == f'{{"id":3,"customer_id":7,"status":"new","amount":42.5,"seq":{BIG38},"note":null}}'
    assert json.loads(by_line[7]["meta"]) == {"commit": True, "server_id": 1, "thread_id": 211, "primary_key": [3],
                                              "primary_key_columns": ["id"]}  # fmt: skip
    assert by_line[7]["txn"] == {"id": "8812", "position": None, "position_order": None,
                                 "ts": 1709650040000000, "aborted": None}  # fmt: skip
    # with output_nulls=false a column set to null is missing from data but named in old
    assert by_line[8]["data"] == '{"id":2,"customer_id":9,"status":"paid","amount":19.99,"seq":2,"note":null}'
    assert json.loads(by_line[8]["before"])["note"] == "gift"
    assert by_line[9]["before"] == '{"order_id":3,"sku":"SKU-9","qty":2}'
    assert json.loads(by_line[10]["data"])["sql"] == "ALTER TABLE orders ADD COLUMN channel varchar(16) NULL"
    delete = by_line[11]
    assert delete["data"] is None
    assert delete["before"] == (
        f'{{"id":1,"customer_id":7,"status":"shipped","amount":{FRAC38},"seq":{BIG64},"note":null,"channel":null}}'
    )
    assert json.loads(delete["meta"])["query"] == "DELETE FROM orders WHERE id = 1"
    assert by_line[14]["data"] is None and json.loads(by_line[14]["meta"]) == {"sql": "DROP TABLE coupons"}
    assert by_line[5]["source"] == {"format": "maxwell", "file": str(cdc_samples / "maxwell.jsonl"), "line": 5,
                                    "position": "mysql-bin.000012:4521",
                                    "position_order": "mysql-bin.00000000000000000012:00000000000000004521"}  # fmt: skip


def test_exact_numbers(read_events, cdc_samples) -> None:
    rows, _ = read_events(FORMAT, cdc_samples / "maxwell.jsonl")
    assert rows[1]["data"] == (
        f'{{"id":1,"customer_id":7,"status":"shipped","amount":{FRAC38},"seq":{BIG64},"note":null}}'
    )
    assert f'"seq":{BIG38}' in rows[4]["data"]


def test_key_field_for_tables_without_primary_key_output(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "maxwell.jsonl", Mapping(key_fields=("coupons:code",)))
    assert bad == []
    assert [r["key"] for r in rows if r["entity"] == "shop.coupons" and r["op"] == "insert"] == ["SPRING24"]
    # primary_key_columns, where Maxwell writes them, win over --key-field
    assert rows[4]["key"] == "3"


def record(**members: object) -> dict:
    return {"database": "shop", "table": "orders", "type": "insert", "ts": 1709650040, "xid": 9001} | members


def test_bad_records_are_reported_and_reading_goes_on(read_events, write_file) -> None:
    no_type = record(data={"id": 3})
    del no_type["type"]
    no_database = record(data={"id": 5})
    del no_database["database"]
    no_table = record(data={"id": 6})
    del no_table["table"]
    no_ts = record(data={"id": 11})
    del no_ts["ts"]
    records = [
        record(data={"id": 1}, primary_key=[1], primary_key_columns=["id"]),
        '{"database":"shop","table":"orders","type":"insert","ts":1709650040,"data":{"id":2',
        no_type,
        record(type="heartbeat", data={"id": 4}),
        no_database,
        no_table,
        record(ts="soon", data={"id": 7}),
        record(),
        record(data={"order_id": 3, "line": 3, "sku": "A"}, primary_key=[3, "A"]),
        record(type="update", data={"id": 1, "status": "paid"}, old={"status": "new"}, primary_key=[1],
               primary_key_columns=["id"]),
        no_ts,
        record(type="update", data={"id": 12}, old=["status"]),
    ]  # fmt: skip
    path = write_file("bad.jsonl", "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    rows, bad = read_events(FORMAT, path)
    assert [(r["source"]["line"], r["op"], r["key"]) for r in rows] == [(1, "insert", "1"), (10, "update", "1")]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "invalid JSON: Expecting ',' delimiter at column 83"),
        (3, "Maxwell record without a 'type'"),
        (4, "unknown Maxwell type 'heartbeat'"),
        (5, "Maxwell record without a 'database'"),
        (6, "Maxwell insert record without a 'table'"),
        (7, "ts: unparseable timestamp 'soon'"),
        (8, "Maxwell insert record without a 'data' row"),
        (9, "primary_key has several values and no primary_key_columns, and the row does not tell which columns"
            " hold them: pass --key-field, or enable Maxwell's output_primary_key_columns"),
        (11, "Maxwell record without a 'ts'"),
        (12, "'old' is a list, not the previous values of a row"),
    ]
    assert json.loads(bad[2].raw)["type"] == "heartbeat"


def test_key_field_missing_from_the_row_is_reported(read_events, write_file) -> None:
    path = write_file("nokey.jsonl", json.dumps(record(data={"sku": "A"})) + "\n")
    rows, bad = read_events(FORMAT, path, Mapping(key_fields=("id",)))
    assert rows == []
    assert [(b.line, b.reason) for b in bad] == [(1, "key column 'id' is not in the row")]


def test_mapping_options(read_events, cdc_samples) -> None:
    with pytest.raises(UsageError, match="--ts-field does not apply to maxwell"):
        read_events(FORMAT, cdc_samples / "maxwell.jsonl", Mapping(ts_field="ts"))


def test_sniff(cdc_samples, generic_lines) -> None:
    assert FORMAT.sniff((cdc_samples / "maxwell.jsonl").read_bytes()) == 90
    assert detect(Source(str(cdc_samples / "maxwell.jsonl"))).name == "maxwell"
    assert FORMAT.sniff(generic_lines) == 0
    for other in ("debezium_pg.jsonl", "debezium_keyed.jsonl", "kcat.jsonl", "cloudevents.json", "mongodb.jsonl"):
        assert FORMAT.sniff((cdc_samples / other).read_bytes()) == 0, other


def test_negative_zero_is_kept_as_written(read_events, write_file) -> None:
    line = '{"database":"shop","table":"orders","type":"insert","ts":1709650040,"xid":1,"data":{"id":-0,"d":-0}}\n'
    rows, bad = read_events(FORMAT, write_file("z.jsonl", line))
    assert bad == []
    assert rows[0]["data"] == '{"id":-0,"d":-0}'


def test_a_transaction_that_ends_with_commit_true_is_closed(write_file, tmp_path) -> None:
    """Maxwell marks a transaction's last row "commit": true: a snapshot or a head drop at the head
    takes it whole; without the mark it may go on in the next file, and they stop before it."""
    import json as _json

    import logtool

    rows = [
        {"database": "shop", "table": "orders", "type": "insert", "ts": 1709650040, "xid": 8812, "xoffset": 0,
         "primary_key": [3], "primary_key_columns": ["id"], "data": {"id": 3, "status": "new"}},
        {"database": "shop", "table": "orders", "type": "update", "ts": 1709650040, "xid": 8812, "commit": True,
         "primary_key": [3], "primary_key_columns": ["id"], "data": {"id": 3, "status": "paid"}, "old": {"status": "new"}},
        {"database": "shop", "table": "orders", "type": "insert", "ts": 1709650041, "xid": 8813, "xoffset": 0,
         "primary_key": [4], "primary_key_columns": ["id"], "data": {"id": 4, "status": "new"}},
    ]  # fmt: skip
    closed = tmp_path / "closed"
    logtool.ingest(closed, [str(write_file("c.jsonl", "".join(_json.dumps(r) + "\n" for r in rows[:2])))])
    assert logtool.snapshot(closed)["offset"] == 1
    assert logtool.purge(closed, before_offset=2).offsets == [[0, 1]]
    still_open = tmp_path / "open"
    logtool.ingest(still_open, [str(write_file("o.jsonl", "".join(_json.dumps(r) + "\n" for r in rows)))])
    assert logtool.snapshot(still_open)["offset"] == 1  # xid 8813 has no commit row yet


def test_a_primary_key_change_without_primary_key_columns(read_events, write_file, tmp_path) -> None:
    """With output_primary_keys alone, Maxwell fills primary_key from the new row and 'old' holds
    the previous key under its column: the key columns are the row's columns that hold the
    primary_key values, one each, and the update moves the row from its old key."""
    import logtool

    path = write_file("pk.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(xid=100, position="mysql-bin.000003:1500", primary_key=[2], data={"id": 2, "note": "x"}),
        record(type="update", xid=101, position="mysql-bin.000003:1800", primary_key=[10],
               data={"id": 10, "note": "x"}, old={"id": 2}),
        record(type="update", xid=102, primary_key=[10], data={"id": 10, "note": "y"}, old={"note": "x"}),
        record(table="items", xid=103, primary_key=[3, "A"], data={"order_id": 3, "sku": "A", "qty": 1}),
        record(table="items", type="update", xid=104, primary_key=[3, "B"],
               data={"order_id": 3, "sku": "B", "qty": 1}, old={"sku": "A"}),
    ]))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["source"]["line"], r["op"], r["key"], r["prev_key"]) for r in rows] == [
        (1, "insert", "2", None),
        (2, "update", "10", "2"),
        (3, "update", "10", None),
        (4, "insert", '{"order_id":3,"sku":"A"}', None),
        (5, "update", '{"order_id":3,"sku":"B"}', '{"order_id":3,"sku":"A"}'),
    ]
    store = tmp_path / "s"
    logtool.ingest(store, [str(path)])
    state = logtool.replay(store).state.to_pylist()
    assert [(r["entity"], r["key"], r["state"]) for r in state] == [
        ("shop.items", '{"order_id":3,"sku":"B"}', '{"order_id":3,"sku":"B","qty":1}'),
        ("shop.orders", "10", '{"id":10,"note":"y"}'),
    ]


def test_key_columns_the_row_does_not_tell_apart(read_events, write_file) -> None:
    """Where more than one column holds a primary_key value, the columns an earlier record of the
    table told are taken; else the key kept its value where one of them did (a flag now equal to
    the id), moved where all of them changed from one value, and the record is reported where they
    changed from several (it moved, from a key that cannot be told)."""
    path = write_file("twins.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(primary_key=[2], data={"id": 2, "parent": 2}),
        record(type="update", primary_key=[10], data={"id": 10, "parent": 10}, old={"id": 2, "parent": 2}),
        record(type="update", primary_key=[10], data={"id": 10, "parent": 10, "note": "n"}, old={"note": None}),
        record(type="update", primary_key=[7], data={"id": 7, "parent": 7}, old={"id": 10, "parent": 3}),
        record(type="delete", primary_key=[10], data={"id": 10, "parent": 10, "note": "n"}),
        # a value of another type is not the key's: true and "1" are not 1
        record(type="update", primary_key=[1], data={"id": 1, "flag": True, "code": "1"}, old={"id": 5, "flag": False}),
        # learned from the table's insert: `id` (only it held 1 there), though `active` now holds 1 too
        record(table="flags", primary_key=[1], data={"id": 1, "active": 0}),
        record(table="flags", type="update", primary_key=[1], data={"id": 1, "active": 1}, old={"active": 0}),
        # no earlier record of the table: `active` changed, `id` kept its value, the key with it
        record(table="fresh", type="update", primary_key=[1], data={"id": 1, "active": 1}, old={"active": 0}),
    ]))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert [(r["source"]["line"], r["op"], r["key"], r["prev_key"]) for r in rows] == [
        (1, "insert", "2", None),
        (2, "update", "10", "2"),
        (3, "update", "10", None),
        (5, "delete", "10", None),
        (6, "update", "1", "5"),
        (7, "insert", "1", None),
        (8, "update", "1", None),
        (9, "update", "1", None),
    ]
    assert [(b.line, b.reason) for b in bad] == [
        (4, "the row does not tell which of its columns (id, parent) hold primary_key [7], and 'old' changes id:"
            " cannot tell the row's old key; pass --key-field, or enable Maxwell's output_primary_key_columns"),
    ]


def test_learned_key_columns_move_a_row_and_guesses_are_not_learned(read_events, write_file) -> None:
    # the insert told `id`; an update then changes `id` 5 -> 1 while `active` (1) equals the new
    # key: the row moves. A guess (every candidate changed from one value) teaches nothing, and a
    # table's DDL forgets what it taught.
    path = write_file("learned.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(table="t", primary_key=[5], data={"id": 5, "active": 1}),
        record(table="t", type="update", primary_key=[1], data={"id": 1, "active": 1}, old={"id": 5}),
        record(table="g", primary_key=[2], data={"flag": 0, "id": 2}),
        record(table="g", primary_key=[9], data={"flag": 2, "id": 9}),
        record(table="g", primary_key=[5], data={"flag": 5, "id": 5}),
        record(table="g", type="update", primary_key=[7], data={"flag": 7, "id": 7}, old={"flag": 5, "id": 5}),
        record(table="g", type="update", primary_key=[9], data={"flag": 9, "id": 9}, old={"flag": 2}),
    ]))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["entity"], r["key"], r["prev_key"]) for r in rows] == [
        ("shop.t", "5", None), ("shop.t", "1", "5"),
        ("shop.g", "2", None), ("shop.g", "9", None), ("shop.g", "5", None),
        ("shop.g", "7", "5"),
        ("shop.g", "9", None),  # `id` (told by the inserts) kept 9: `flag`, which changed, is no key
    ]


def test_a_tables_ddl_tells_its_key_columns(read_events, write_file) -> None:
    # a table-create or -alter states its primary key: the columns are known from there
    ddl = {"type": "table-alter", "database": "shop", "table": "t", "ts": 1709640000500, "sql": "ALTER TABLE t ...",
           "def": {"database": "shop", "table": "t", "columns": [{"type": "int", "name": "id"}], "primary-key": ["id"]}}
    path = write_file("ddl.jsonl", "".join(json.dumps(r) + "\n" for r in [
        ddl,
        record(table="t", type="update", primary_key=[1], data={"id": 1, "n": 1}, old={"id": 5, "n": 0}),
    ]))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["key"], r["prev_key"]) for r in rows if r["op"] == "update"] == [("1", "5")]


def test_maxwells_default_output_is_keyed_by_the_tables_ddl(read_events, write_file) -> None:
    """Maxwell writes no primary_key by default: a table-create (or -alter) in the input that
    states the primary key keys the rows after it, an update of the key moving the row; --key-field
    wins over it; a DDL stating no primary key, or a table-drop, leaves the table keyless."""
    def ddl(kind: str, table: str, key: list[str] | None) -> dict:
        return {"type": kind, "database": "shop", "table": table, "ts": 1709640000500, "sql": "...",
                **({} if key is None else {"def": {"database": "shop", "table": table, "primary-key": key}})}  # fmt: skip

    path = write_file("ddl.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(table="u", data={"id": 1, "n": 0}),  # before its DDL: nothing told
        ddl("table-create", "u", ["id"]),
        record(table="u", data={"id": 2, "n": 0}),
        record(table="u", type="update", data={"id": 3, "n": 0}, old={"id": 2}),
        ddl("table-create", "v", ["a", "b"]),
        record(table="v", type="delete", data={"a": 1, "b": "x", "n": 0}),
        ddl("table-create", "w", []),
        record(table="w", data={"id": 1}),
        ddl("table-drop", "u", None),
        record(table="u", data={"id": 4, "n": 0}),
    ]))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["entity"], r["key"], r["prev_key"]) for r in rows if r["op"] != "event"] == [
        ("shop.u", None, None), ("shop.u", "2", None), ("shop.u", "3", "2"), ("shop.v", '{"a":1,"b":"x"}', None),
        ("shop.w", None, None), ("shop.u", None, None), ("shop.u", None, None),
    ]  # fmt: skip
    rows, _ = read_events(FORMAT, path, Mapping(key_fields=("u:n",)))
    assert [r["key"] for r in rows if r["entity"] == "shop.u" and r["op"] == "insert"] == ["0", "0", "0"]


def test_a_table_read_without_a_key_is_warned_of_once(write_file, tmp_path) -> None:
    """Where a table's rows go in without a key (Maxwell's default output, no DDL stating its key),
    ingest warns once per table, saying how to key it; not for a table whose DDL states no key."""
    import logtool

    path = write_file("x.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(table="u", data={"id": 1}),
        record(table="u", type="update", data={"id": 1, "n": 2}, old={"n": 1}),
        record(table="p", primary_key=[1], primary_key_columns=["id"], data={"id": 1}),
        {"type": "table-create", "database": "shop", "table": "w", "ts": 1709640000500, "def": {"primary-key": []}},
        record(table="w", data={"id": 1}),
    ]))  # fmt: skip
    result = logtool.ingest(tmp_path / "s", [str(path)])
    assert result.warnings == [
        f"{path}: shop.u went in without a key (its records carry no primary_key, which Maxwell leaves out by "
        "default, and no DDL record before them in the input states its primary key): replay keeps its rows as a "
        "multiset, which no key finds; if it has a key, ingest the input into a new store with --key-field "
        "shop.u:COLUMN (its key column), or run Maxwell with output_primary_keys and output_primary_key_columns"
    ]


def _ddl(kind: str, table: str, key: list[str] | None, **definition: object) -> dict:
    return {"type": kind, "database": "shop", "table": table, "ts": 1709640000500, "sql": "...",
            **({} if key is None else {"def": {"database": "shop", "table": table, "primary-key": key} | definition})}  # fmt: skip


def _state(store: object) -> list[tuple]:
    import logtool

    return sorted((r["entity"], r["key"], r["state"]) for r in logtool.replay(str(store)).state.to_pylist())


def test_a_table_keyed_only_after_its_first_rows_stays_keyless(write_file, tmp_path) -> None:
    """A table's rows stay in one key space: where its first rows in the input went in without a
    key (capture started mid-stream) and a later table-alter states the key, the rows after it go
    in without a key too, so that their updates and deletes find the earlier rows; the warning
    says why."""
    import logtool

    path = write_file("late.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(table="u", data={"id": 1, "name": "ann"}),
        record(table="u", data={"id": 2, "name": "bob"}),
        _ddl("table-alter", "u", ["id"]),
        record(table="u", type="update", data={"id": 1, "name": "anne"}, old={"name": "ann"}),
        record(table="u", type="delete", data={"id": 2, "name": "bob"}),
        record(table="v", data={"id": 1}),  # a record that carries its key, after the first went in without
        record(table="v", type="update", primary_key=[1], primary_key_columns=["id"], data={"id": 1, "n": 2},
               old={"n": None}),
    ]))  # fmt: skip
    result = logtool.ingest(tmp_path / "s", [str(path)])
    assert _state(tmp_path / "s") == [("shop.u", None, '{"id":1,"name":"anne"}'), ("shop.v", None, '{"id":1,"n":2}')]
    late = ("went in without a key (its first rows in the input came before anything in it told its primary key, and "
            "the rows after them go in as they did, for their updates and deletes to find the rows they change)")  # fmt: skip
    assert [w.split(": ", 1)[1].split(": replay")[0] for w in result.warnings] == [f"shop.u {late}", f"shop.v {late}"]


def test_a_primary_key_changed_by_an_alter_keys_the_rows_after_it_and_is_warned_of(
    read_events, write_file, tmp_path
) -> None:
    """A keyed table follows its primary key as the DDL or primary_key_columns state it at each
    row: after an ALTER that widens, narrows or moves the key, two rows the new key tells apart
    never share a key (keeping the old one, the second insert overwrote the first, and the delete
    of one removed the other); the rows keyed before it are not found under the new key, which a
    warning says, naming the table and the line of the first row keyed anew; a row need not hold
    the old key's columns (dropped), and a dropped primary key is warned of as well."""
    import logtool

    rows_ = [
        _ddl("table-create", "t", ["id"]),
        record(table="t", data={"id": 1, "region": "eu", "v": 1}),
        _ddl("table-alter", "t", ["id", "region"]),  # ... DROP PRIMARY KEY, ADD PRIMARY KEY (id, region)
        record(table="t", data={"id": 1, "region": "us", "v": 2}),
        record(table="t", data={"id": 2, "region": "us", "v": 3}),
        record(table="t", type="delete", data={"id": 1, "region": "us", "v": 2}),
        _ddl("table-alter", "t", ["v"]),  # ... DROP COLUMN region, ADD PRIMARY KEY (v)
        record(table="t", type="update", data={"id": 2, "v": 4}, old={"v": 3}),
        _ddl("table-alter", "t", []),  # ... DROP PRIMARY KEY
        record(table="t", data={"id": 5, "v": 5}),
    ]
    keys = [None, "1", None, '{"id":1,"region":"us"}', '{"id":2,"region":"us"}', '{"id":1,"region":"us"}', None,
            "4", None, None]  # fmt: skip
    moved = [None] * 7 + ["3", None, None]
    path = write_file("pk.jsonl", "".join(json.dumps(r) + "\n" for r in rows_))
    rows, bad = read_events(FORMAT, path)
    assert bad == [] and [(r["key"], r["prev_key"]) for r in rows] == list(zip(keys, moved, strict=True))

    # output_primary_keys with output_primary_key_columns, and no DDL: primary_key_columns names the key
    def told(r: dict) -> dict:
        columns = ["id"] if r["data"]["v"] == 1 else ["v"] if r["type"] == "update" else ["id", "region"]
        return r | {"primary_key_columns": columns, "primary_key": [r["data"][c] for c in columns]}

    rows, bad = read_events(FORMAT, write_file("pkc.jsonl", "".join(json.dumps(told(r)) + "\n" for r in rows_[:8]
                                                                   if "data" in r)))  # fmt: skip
    assert bad == [] and [(r["key"], r["prev_key"]) for r in rows] == [(k, m) for k, m in zip(keys, moved, strict=True)
                                                                       if k is not None][:5]  # fmt: skip

    result = logtool.ingest(tmp_path / "s", [str(path)])
    assert [w.split(": replay")[0] for w in result.warnings] == [
        f"{path}:4: shop.t's primary key changed from (id) to (id, region): its rows keyed by (id) before it are not "
        "found by the updates and deletes after it, and replay keeps them as they were; to key all its rows by one "
        "key, ingest the input into a new store with --key-field shop.t:COLUMN for each column of a key all its "
        "rows hold",
        f"{path}:8: shop.t's primary key changed from (id, region) to (v): its rows keyed by (id, region) before it "
        "are not found by the updates and deletes after it, and replay keeps them as they were; to key all its rows "
        "by one key, ingest the input into a new store with --key-field shop.t:COLUMN for each column of a key all "
        "its rows hold",
        f"{path}:10: shop.t's primary key changed from (v) to (none): its rows keyed by (v) before it are not found "
        "by the updates and deletes after it, and replay keeps them as they were; to key all its rows by one key, "
        "ingest the input into a new store with --key-field shop.t:COLUMN for each column of a key all its rows hold",
    ]
    state = {(r["key"], r["state"]) for r in logtool.replay(str(tmp_path / "s")).state.to_pylist()}
    assert state == {("1", '{"id":1,"region":"eu","v":1}'), ('{"id":2,"region":"us"}', '{"id":2,"region":"us","v":3}'),
                     ("4", '{"id":2,"v":4}'), (None, '{"id":5,"v":5}')}  # fmt: skip


def test_a_renamed_primary_key_column_keeps_the_key(read_events, write_file, tmp_path) -> None:
    """A key column renamed by an ALTER (CHANGE id uid, the old column gone from the rows after
    it, the new one new to them) keeps the key: its values, under the names the table's rows went
    in by, so the updates and deletes after it find the rows before it, whether the DDL or
    primary_key_columns tell the key; nothing is warned of."""
    import logtool

    rows_ = [
        _ddl("table-create", "t", ["id"]),
        record(table="t", data={"id": 1, "v": 1}),
        _ddl("table-alter", "t", ["uid"]),  # ALTER TABLE t CHANGE id uid int
        record(table="t", type="update", data={"uid": 1, "v": 2}, old={"v": 1}),
        record(table="t", data={"uid": 2, "v": 3}),
        _ddl("table-create", "lines", ["order_id", "line"]),
        record(table="lines", data={"order_id": 1, "line": 1, "sku": "A"}),
        _ddl("table-alter", "lines", ["oid", "line"]),  # ... RENAME COLUMN order_id TO oid
        record(table="lines", type="update", data={"oid": 1, "line": 2, "sku": "A"}, old={"line": 1}),
        record(table="lines", type="delete", data={"oid": 1, "line": 2, "sku": "A"}),
    ]
    keys = [None, "1", None, "1", "2", None, '{"order_id":1,"line":1}', None, '{"order_id":1,"line":2}',
            '{"order_id":1,"line":2}']  # fmt: skip
    moved = [None] * 8 + ['{"order_id":1,"line":1}', None]
    path = write_file("rename.jsonl", "".join(json.dumps(r) + "\n" for r in rows_))
    rows, bad = read_events(FORMAT, path)
    assert bad == [] and [(r["key"], r["prev_key"]) for r in rows] == list(zip(keys, moved, strict=True))

    def told(r: dict) -> dict:
        columns = [c for c in ("id", "uid", "order_id", "oid", "line") if c in r["data"]]
        return r | {"primary_key_columns": columns, "primary_key": [r["data"][c] for c in columns]}

    rows, bad = read_events(FORMAT, write_file("pkc.jsonl", "".join(json.dumps(told(r)) + "\n" for r in rows_
                                                                   if "data" in r)))  # fmt: skip
    assert bad == [] and [r["key"] for r in rows] == [k for k in keys if k is not None]

    result = logtool.ingest(tmp_path / "s", [str(path)])
    assert result.warnings == []
    assert [(e, k) for e, k, _ in _state(tmp_path / "s")] == [("shop.t", "1"), ("shop.t", "2")]


def test_a_table_whose_rows_in_the_store_went_in_keyless_stays_keyless(write_file, tmp_path) -> None:
    """Across ingests too: where the store holds rows of a table that went in without a key, a
    later input's DDL stating its key does not key its rows (their updates and deletes would miss
    the rows already there), and the warning says so; after a table-drop or table-create in the
    input, the table starts afresh."""
    import logtool

    first = write_file("first.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(table="u", data={"id": 1, "name": "ann"}),
        record(table="u", data={"id": 2, "name": "bob"}),
        record(table="w", data={"id": 1}),
    ]))  # fmt: skip
    second = write_file("second.jsonl", "".join(json.dumps(r) + "\n" for r in [
        _ddl("table-alter", "u", ["id"]),
        record(table="u", type="update", data={"id": 1, "name": "anne"}, old={"name": "ann"}),
        record(table="u", type="delete", data={"id": 2, "name": "bob"}),
        _ddl("table-drop", "w", None),
        _ddl("table-create", "w", ["id"]),
        record(table="w", data={"id": 3}),
    ]))  # fmt: skip
    logtool.ingest(tmp_path / "s", [str(first)])
    result = logtool.ingest(tmp_path / "s", [str(second)])
    assert _state(tmp_path / "s") == [("shop.u", None, '{"id":1,"name":"anne"}'), ("shop.w", "3", '{"id":3}')]
    assert [w.split(": ", 1)[1].split(": replay")[0] for w in result.warnings] == [
        "shop.u went in without a key (as its rows the store holds did, for the updates and deletes of the input to "
        "find the rows they change)"
    ]


def test_a_rename_states_the_key_of_the_new_table(read_events, write_file) -> None:
    """Maxwell writes a rename (ALTER TABLE ... RENAME, RENAME TABLE, across databases too) with
    database and table naming the old table and def the new one: the primary key it states keys
    the new table's rows."""
    rename = _ddl("table-alter", "orders", ["id"]) | {"sql": "ALTER TABLE orders RENAME TO orders2"}
    rename["def"] |= {"table": "orders2"}
    moved = _ddl("table-alter", "orders2", ["id"]) | {"sql": "RENAME TABLE shop.orders2 TO archive.orders"}
    moved["def"] |= {"database": "archive", "table": "orders"}
    path = write_file("rename.jsonl", "".join(json.dumps(r) + "\n" for r in [
        _ddl("table-create", "orders", ["id"]),
        record(table="orders", data={"id": 1}),
        rename,
        record(table="orders2", data={"id": 2}),
        moved,
        record(database="archive", table="orders", type="update", data={"id": 4}, old={"id": 2}),
    ]))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["entity"], r["key"], r["prev_key"]) for r in rows if r["op"] != "event"] == [
        ("shop.orders", "1", None), ("shop.orders2", "2", None), ("archive.orders", "4", "2"),
    ]


def test_rows_keyless_beside_keyed_rows_in_the_store_are_said_to_be(write_file, tmp_path) -> None:
    """Where a table's rows go in without a key while the store holds rows of it that went in
    keyed (Maxwell's stream cut into files, the DDL only in the first), the warning says so and
    names --key-field for such an input, instead of blaming only the input's missing DDL; a table
    the store holds no keyed rows of is warned of as before."""
    import logtool

    first = write_file("first.jsonl", "".join(json.dumps(r) + "\n" for r in [
        _ddl("table-create", "u", ["id"]),
        record(table="u", data={"id": 1, "name": "ann"}),
    ]))  # fmt: skip
    second = write_file("second.jsonl", "".join(json.dumps(r) + "\n" for r in [
        record(table="u", type="update", data={"id": 1, "name": "anne"}, old={"name": "ann"}),
        record(table="w", data={"id": 1}),
    ]))  # fmt: skip
    logtool.ingest(tmp_path / "s", [str(first)])
    result = logtool.ingest(tmp_path / "s", [str(second)])
    assert result.warnings == [
        f"{second}: shop.u went in without a key (its records carry no primary_key, which Maxwell leaves out by "
        "default, and no DDL record before them in the input states its primary key, while the store holds rows of "
        "it that went in keyed, as a DDL record of an earlier input stated it): its updates and deletes here do not "
        "find those rows, and replay keeps this input's rows as a multiset; ingest an input that lacks its DDL with "
        "--key-field shop.u:COLUMN (its key column, as the store's rows of it are keyed): this one, into a new store, "
        "after the inputs before it",
        f"{second}: shop.w went in without a key (its records carry no primary_key, which Maxwell leaves out by "
        "default, and no DDL record before them in the input states its primary key): replay keeps its rows as a "
        "multiset, which no key finds; if it has a key, ingest the input into a new store with --key-field "
        "shop.w:COLUMN (its key column), or run Maxwell with output_primary_keys and output_primary_key_columns",
    ]
