"""The kcat -J reader: plain JSON payloads, Debezium payloads, tombstones, headers, bad records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logtool.errors import UsageError
from logtool.formats import detect
from logtool.formats.base import Mapping, Source
from logtool.formats.kcat import FORMAT

BIG64 = "9223372036854775809"  # 2**63 + 1
FRAC38 = "1234567890123456789012345678.0123456789"


def summary(row: dict) -> tuple:
    txn = row["txn"]["id"] if row["txn"] else None
    return (row["source"]["line"], row["op"], row["entity"], row["key"], row["ts"], row["source"]["position"], txn)


def test_sample(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "kcat.jsonl")
    assert bad == []
    assert [summary(r) for r in rows] == [
        (1, "upsert", "shop.orders.v1", "ord-1042", 1709660000000000, "0/41", None),
        (2, "upsert", "shop.orders.v1", "ord-1043", 1709660000850000, "1/17", None),
        (3, "upsert", "shop.orders.v1", "ord-1042", 1709660002100000, "0/42", None),
        (4, "delete", "shop.orders.v1", "ord-1043", 1709660004000000, "1/18", None),
        (5, "upsert", "shop.metrics", None, 1709660004100000, "0/9000", None),
        # Debezium payloads: the database's time and entity, the Kafka position
        (6, "patch", "public.customers", "1001", 1709660004900000, "2/310", "801"),
        (7, "delete", "public.customers", "1003", 1709660005950000, "2/311", "802"),
        # the tombstone of a Debezium topic lands in the Debezium entity, keyed as Debezium keys,
        # at its delete's (the database's) time, not the later Kafka time (1709660006001)
        (8, "delete", "public.customers", "1003", 1709660005950000, "2/312", None),
        (9, "upsert", "shop.orders.v1", "ord-1044", 1709660007000000, "0/43", None),
        (10, "upsert", "shop.orders.v1", "ord-1045", None, "0/44", None),  # no timestamp (-1)
    ]
    first = rows[0]
    assert first["data"] == f'{{"order_id":1042,"status":"new","amount":{FRAC38}}}'
    assert json.loads(first["meta"]) == {"kafka": {"topic": "shop.orders.v1", "partition": 0, "offset": 41,
                                                   "tstype": "create", "ts": 1709660000000, "broker": 1,
                                                   "headers": [["trace-id", "7f3a9c"], ["retry", "0"]]}}  # fmt: skip
    assert first["source"] == {"format": "kcat", "file": str(cdc_samples / "kcat.jsonl"), "line": 1,
                               "position": "0/41", "position_order": position_order("0/41", lsn=False)}  # fmt: skip
    # a header name may repeat: every pair is kept, in order
    assert json.loads(rows[1]["meta"])["kafka"]["headers"] == [["trace-id", "7f3aa0"], ["hop", "gw-1"],
                                                               ["hop", "svc-orders"]]  # fmt: skip
    assert rows[3]["data"] is None and rows[3]["before"] is None
    debezium = rows[5]
    # the unchanged TOASTed column is left out, as the Debezium reader does
    assert debezium["data"] == '{"id":1001,"name":"Sally Thomas","email":"sally@acme.com","tier":"platinum"}'
    meta = json.loads(debezium["meta"])
    assert meta["source"]["lsn"] == 25001000 and meta["kafka"]["offset"] == 310
    assert meta["kafka"]["headers"] == [["__debezium.context.connectorName", "pgserver1"]]
    assert rows[6]["before"] == '{"id":1003,"name":null,"email":null,"tier":null,"notes":null}'
    assert rows[7]["data"] is None and rows[7]["txn"] is None


def position_order(text: str, lsn: bool = True) -> str:
    from logtool.formats.base import position_order as order

    result = order(text, lsn=lsn)
    assert result is not None
    return result


def test_exact_numbers(read_events, cdc_samples) -> None:
    rows, _ = read_events(FORMAT, cdc_samples / "kcat.jsonl")
    assert rows[1]["data"] == f'{{"order_id":1043,"status":"new","amount":12.5,"ledger":{BIG64}}}'
    assert f'"amount":{FRAC38}' in rows[0]["data"]


def test_key_field_for_records_without_a_key(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "kcat.jsonl", Mapping(key_fields=("shop.metrics:host",)))
    assert bad == []
    assert rows[4]["key"] == "web-3"
    assert rows[0]["key"] == "ord-1042"  # the Kafka key, where there is one


def kafka(n: int, **members: object) -> dict:
    return {"topic": "shop.orders.v1", "partition": 0, "offset": n, "tstype": "create",
            "ts": 1709660000000 + n, "broker": 1, "key": f"ord-{n}",
            "payload": json.dumps({"order_id": n})} | members  # fmt: skip


def test_bad_records_are_reported_and_reading_goes_on(read_events, write_file) -> None:
    no_topic = kafka(3)
    del no_topic["topic"]
    no_payload = kafka(9)
    del no_payload["payload"]
    debezium = {
        "before": None,
        "after": {"id": 1},
        "op": "z",
        "source": {"connector": "mysql", "ts_ms": 1, "db": "d", "table": "t"},
    }
    records = [
        kafka(1),
        kafka(2, payload=None, payload_error="Avro deserialization failed: unknown magic byte"),
        no_topic,
        kafka(4, offset="4"),
        kafka(5, payload='{"order_id": 5,'),
        kafka(6, headers=["trace-id"]),
        kafka(7, payload=json.dumps(debezium)),
        kafka(8, ts="later"),
        no_payload,
        '{"topic":"shop.orders.v1","partition":0,',
        kafka(11, payload=None),
        kafka(12, key_error="Deserialization failed"),
    ]
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    rows, bad = read_events(FORMAT, write_file("bad.jsonl", text))
    assert [(r["source"]["line"], r["op"], r["key"], r["data"]) for r in rows] == [
        (1, "upsert", "ord-1", '{"order_id":1}'),
        (11, "delete", "ord-11", None),
    ]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "kcat could not deserialize the record: payload_error: Avro deserialization failed: unknown magic byte"),
        (3, "kcat record without a 'topic'"),
        (4, "kcat record without an integer 'offset'"),
        (5, "payload is not JSON: Expecting property name enclosed in double quotes at column 16"),
        (6, "headers is not a flat list of names and values"),
        (7, "unknown Debezium op 'z' (expected one of c, r, u, d, t, m)"),
        (8, "ts: unparseable timestamp 'later'"),
        (9, "kcat record without a 'payload' (null for a tombstone)"),
        (10, "invalid JSON: Expecting property name enclosed in double quotes at column 41"),
        (12, "kcat could not deserialize the record: key_error: Deserialization failed"),
    ]
    assert json.loads(bad[0].raw)["offset"] == 2


def test_debezium_payload_given_as_json_and_keyed_with_schema(read_events, write_file) -> None:
    key = {"schema": {"type": "struct", "name": "pg.public.customers.Key",
                      "fields": [{"type": "int32", "field": "id"}]}, "payload": {"id": 7}}  # fmt: skip
    change = {"before": None, "after": {"id": 7, "name": "Ann"}, "op": "c", "ts_ms": 1709660000900,
              "source": {"connector": "postgresql", "ts_ms": 1709660000800, "schema": "public",
                         "table": "customers", "lsn": 100}}  # fmt: skip
    records = [
        {"topic": "pg.public.customers", "partition": 0, "offset": 1, "ts": 1709660001000, "key": json.dumps(key),
         "payload": change},
        # a tombstone on a topic not seen before: its key schema names the table
        {"topic": "pg.public.accounts", "partition": 0, "offset": 5, "ts": 1709660002000,
         "key": json.dumps(key | {"schema": key["schema"] | {"name": "pg.public.accounts.Key"}}), "payload": None},
    ]  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("dbz.jsonl", "".join(json.dumps(r) + "\n" for r in records)))
    assert bad == []
    assert [(r["op"], r["entity"], r["key"], r["ts"], r["source"]["position"]) for r in rows] == [
        ("insert", "public.customers", "7", 1709660000800000, "0/1"),
        ("delete", "public.accounts", "7", 1709660002000000, "0/5"),
    ]


def test_debezium_payload_with_schema_decodes_temporal_types(read_events, write_file) -> None:
    """A schema-wrapped Debezium payload is decoded as the Debezium reader decodes it: its dates
    and timestamps become ISO text."""
    fields = [{"type": "int32", "field": "id"},
              {"type": "int32", "optional": True, "name": "io.debezium.time.Date", "field": "born"},
              {"type": "int64", "optional": True, "name": "io.debezium.time.MicroTimestamp", "field": "seen"}]
    schema = {"type": "struct", "fields": [{"type": "struct", "fields": fields, "field": "before"},
                                           {"type": "struct", "fields": fields, "field": "after"}]}
    change = {"before": None, "after": {"id": 7, "born": 19787, "seen": 1709640000123456}, "op": "c",
              "ts_ms": 1709660000900, "source": {"connector": "postgresql", "ts_ms": 1709660000800,
                                                 "schema": "public", "table": "customers", "lsn": 100}}
    record = {"topic": "pg.public.customers", "partition": 0, "offset": 1, "ts": 1709660001000, "key": "7",
              "payload": json.dumps({"schema": schema, "payload": change})}  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("dbz.jsonl", json.dumps(record) + "\n"))
    assert bad == []
    assert [(r["entity"], r["key"], r["data"]) for r in rows] == [
        ("public.customers", "7", '{"id":7,"born":"2024-03-05","seen":"2024-03-05T12:00:00.123456"}')
    ]


def test_a_tombstone_key_without_its_schema_is_read_as_the_topics_changes_read_theirs(read_events, write_file) -> None:
    # a date key column: the tombstone (a compacted topic's only record of the delete) must name
    # the row as its insert did, or the row stays
    fields = [{"type": "int32", "name": "io.debezium.time.Date", "field": "d"}, {"type": "string", "field": "v"}]
    schema = {"type": "struct", "fields": [{"type": "struct", "fields": fields, "field": "before"},
                                           {"type": "struct", "fields": fields, "field": "after"}]}  # fmt: skip
    change = {"before": None, "after": {"d": 19787, "v": "a"}, "op": "c",
              "source": {"connector": "postgresql", "schema": "public", "table": "t", "ts_ms": 1000, "lsn": 1}}  # fmt: skip
    records = [
        {"topic": "srv.public.t", "partition": 0, "offset": 0, "ts": 1700000000000, "key": json.dumps({"d": 19787}),
         "payload": json.dumps({"schema": schema, "payload": change})},
        {"topic": "srv.public.t", "partition": 0, "offset": 9, "ts": 1700000000009, "key": json.dumps({"d": 19787}),
         "payload": None},
    ]  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("k.jsonl", "".join(json.dumps(r) + "\n" for r in records)))
    assert bad == []
    assert [(r["entity"], r["key"], r["op"]) for r in rows] == [
        ("public.t", "2024-03-05", "insert"), ("public.t", "2024-03-05", "delete"),
    ]  # fmt: skip


def test_maxwell_payloads_are_read_as_maxwell_reads_them(read_events, write_file) -> None:
    """A payload that is a Maxwell record (as JSON text, or as JSON) is read as the Maxwell reader
    reads it: entity, op, key (a key change moves the row), ts and txn from the record; the
    position is Kafka's, and Maxwell's binlog position is kept in meta."""
    maxwell = [
        {"database": "shop", "table": "t", "type": "insert", "ts": 1709640001, "xid": 100, "commit": True,
         "position": "mysql-bin.000003:1500", "primary_key": [2], "data": {"id": 2, "note": "x"}},
        {"database": "shop", "table": "t", "type": "update", "ts": 1709640002, "xid": 101, "commit": True,
         "position": "mysql-bin.000003:1800", "primary_key": [10], "data": {"id": 10, "note": "x"}, "old": {"id": 2}},
        {"database": "shop", "table": "t", "type": "table-alter", "ts": 1709640003000,
         "position": "mysql-bin.000003:2000", "sql": "ALTER TABLE t ADD COLUMN n int"},
    ]
    records = [
        {"topic": "maxwell", "partition": 0, "offset": 5 + i, "ts": 1709660001000,
         "key": json.dumps({"database": "shop", "table": "t"}), "payload": json.dumps(m) if i else m}
        for i, m in enumerate(maxwell)
    ]  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("mx.jsonl", "".join(json.dumps(r) + "\n" for r in records)))
    assert bad == []
    assert [(r["op"], r["type"], r["entity"], r["key"], r["prev_key"], r["ts"], r["source"]["position"],
             r["txn"]["id"] if r["txn"] else None) for r in rows] == [
        ("insert", None, "shop.t", "2", None, 1709640001000000, "0/5", "100"),
        ("update", None, "shop.t", "10", "2", 1709640002000000, "0/6", "101"),
        ("event", "table-alter", "shop.t", None, None, 1709640003000000, "0/7", None),
    ]  # fmt: skip
    assert rows[1]["data"] == '{"id":10,"note":"x"}' and rows[1]["before"] == '{"id":2,"note":"x"}'
    meta = json.loads(rows[1]["meta"])
    assert meta["position"] == "mysql-bin.000003:1800" and meta["commit"] is True
    assert meta["kafka"]["offset"] == 6 and "payload" not in meta["kafka"]


def test_mapping_options(read_events, cdc_samples) -> None:
    with pytest.raises(UsageError, match="--entity-field does not apply to kcat"):
        read_events(FORMAT, cdc_samples / "kcat.jsonl", Mapping(entity_field="topic"))


def test_sniff(cdc_samples, generic_lines) -> None:
    assert FORMAT.sniff((cdc_samples / "kcat.jsonl").read_bytes()) == 90
    assert detect(Source(str(cdc_samples / "kcat.jsonl"))).name == "kcat"
    assert FORMAT.sniff(generic_lines) == 0
    for other in ("debezium_pg.jsonl", "debezium_keyed.jsonl", "maxwell.jsonl", "cloudevents.json", "mongodb.jsonl"):
        assert FORMAT.sniff((cdc_samples / other).read_bytes()) == 0, other


def test_replay_at_a_kafka_position(write_file, tmp_path) -> None:
    """``0/5`` is partition 0, offset 5 here, not an LSN: it orders as Kafka's numbers do, and a
    position of another kind is refused rather than compared."""
    import logtool

    def record(offset: int, payload: str | None) -> str:
        return json.dumps({"topic": "users", "partition": 0, "offset": offset, "tstype": "create",
                           "ts": 1704103200000 + offset, "key": "k1", "payload": payload})  # fmt: skip

    path = write_file("dump.jsonl", "\n".join([record(5, '{"a":1}'), record(12, '{"a":2}'), record(40, None)]) + "\n")
    store = tmp_path / "s"
    logtool.ingest(store, [str(path)])
    state = {at: logtool.replay(store, at_position=at).state.column("state").to_pylist() for at in ("0/5", "0/9", "0/12", "0/40")}
    assert state == {"0/5": ['{"a":1}'], "0/9": ['{"a":1}'], "0/12": ['{"a":2}'], "0/40": []}
    with pytest.raises(UsageError, match="not a position of the kind this store holds"):
        logtool.replay(store, at_position="mysql-bin.000003:4")
    for lsn in ("0/16B3748", "0/1A"):  # an LSN typed at a dump of a PostgreSQL connector's topic
        with pytest.raises(UsageError, match="not a position of the kind this store holds"):
            logtool.replay(store, at_position=lsn)


def test_an_lsn_is_read_as_one_in_a_store_of_kafka_and_postgresql_positions(tmp_path) -> None:
    """Whichever file came first, a store holding a kcat dump and a wal2json capture reads
    0/193DE90 as the LSN it is."""
    import logtool

    samples = Path(__file__).resolve().parents[2] / "sample_logs"
    kcat, wal = samples / "cdc" / "kcat.jsonl", samples / "postgres" / "wal2json.jsonl"
    states = []
    for name, files in (("kafka_first", [kcat, wal]), ("lsn_first", [wal, kcat])):
        logtool.ingest(tmp_path / name, [str(f) for f in files])
        states.append(logtool.replay(tmp_path / name, at_position="0/193DE90").state.num_rows)
    assert states[0] == states[1] > 0


def test_a_tombstone_of_the_mongodb_connector_names_the_document(read_events, write_file) -> None:
    oid = "596e275826f08b2730779e1f"
    src = {"connector": "mongodb", "name": "f", "ts_ms": 1709631000000, "db": "inventory",
           "collection": "customers", "ord": 1}  # fmt: skip
    key = json.dumps({"id": json.dumps({"$oid": oid})})

    def record(offset: int, payload: object) -> str:
        return json.dumps({"topic": "f.inventory.customers", "partition": 0, "offset": offset, "ts": 1709631000000,
                           "key": key, "payload": None if payload is None else json.dumps(payload)})  # fmt: skip

    path = write_file("mongo.jsonl", "\n".join([
        record(0, {"after": json.dumps({"_id": {"$oid": oid}, "v": 1}), "source": src, "op": "c"}),
        record(1, {"after": None, "source": src, "op": "d"}),
        record(2, None),
    ]) + "\n")  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["entity"], r["key"], r["op"]) for r in rows] == [("inventory.customers", oid, "insert"),
                                                              ("inventory.customers", oid, "delete"),
                                                              ("inventory.customers", oid, "delete")]  # fmt: skip


def test_a_mongodb_tombstone_placed_by_its_key_schemas_name_names_the_document(read_events, write_file) -> None:
    """A tombstone of a topic no record of the file showed, placed at once by its key schema's
    name (made sure by another collection's change), is keyed by the document's id when the name
    is the MongoDB connector's, as its events are."""
    oid = "655300000000000000000011"

    def record(collection: str, offset: int, ident: str, payload: object) -> str:
        schema = {"type": "struct", "fields": [{"type": "string", "field": "id"}], "name": f"mongo1.shop.{collection}.Key"}
        key = {"schema": schema, "payload": {"id": json.dumps({"$oid": ident})}}
        return json.dumps({"topic": f"mongo1.shop.{collection}", "partition": 0, "offset": offset, "ts": 1700000100000,
                           "key": json.dumps(key), "payload": None if payload is None else json.dumps(payload)})  # fmt: skip

    src = {"connector": "mongodb", "name": "mongo1", "ts_ms": 1700000100000, "db": "shop", "collection": "orders", "ord": 1}
    other = "6553" + "0" * 20
    insert = {"before": None, "after": json.dumps({"_id": {"$oid": other}}), "source": src, "op": "c"}
    path = write_file("mongo.jsonl", record("orders", 0, other, insert) + "\n" + record("customers", 5, oid, None) + "\n")
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["entity"], r["key"], r["op"]) for r in rows] == [
        ("shop.orders", other, "insert"), ("shop.customers", oid, "delete"),
    ]


def test_a_debezium_tombstone_takes_the_time_of_its_delete(read_events, write_file) -> None:
    """The Kafka time comes after the database's commit time: a tombstone stamped with it would end
    an --at-time prefix before the create that moved the row."""
    src = {"connector": "mysql", "ts_ms": 1709631000000, "db": "inventory", "table": "customers", "file": "b.1",
           "pos": 4}  # fmt: skip
    key = json.dumps({"id": 1})

    def record(offset: int, payload: object, ts: int) -> str:
        return json.dumps({"topic": "dbz.inventory.customers", "partition": 0, "offset": offset, "ts": ts,
                           "key": key, "payload": payload})  # fmt: skip

    path = write_file("moved.jsonl", "\n".join([
        record(0, {"before": {"id": 1}, "after": None, "source": src, "op": "d"}, 1709631000100),
        record(1, None, 1709631000200),
    ]) + "\n")  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["op"], r["ts"]) for r in rows] == [("delete", 1709631000000000), ("delete", 1709631000000000)]


def test_a_single_partition_dump_keeps_kafka_offsets(write_file, tmp_path) -> None:
    import logtool

    records = [{"topic": "t", "partition": 0, "offset": n, "ts": 1709660000000 + n, "key": f"k{n}",
                "payload": json.dumps({"v": n})} for n in (41, 42, 45)]  # fmt: skip
    path = write_file("p0.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    logtool.ingest(tmp_path / "s", [str(path)], mapping=Mapping(offset_field="offset"))
    assert logtool.sql(str(tmp_path / "s"), 'SELECT "offset" FROM events ORDER BY 1').column(0).to_pylist() == [41, 42, 45]
    from logtool.formats.base import Source
    from logtool.formats.debezium import FORMAT as DEBEZIUM

    with pytest.raises(UsageError, match="--offset-field does not apply to debezium"):
        list(DEBEZIUM.read(Source(str(path)), Mapping(offset_field="offset"), lambda _b: None))


def test_a_debezium_key_change_moves_the_row_with_what_it_did_not_send(write_file, tmp_path) -> None:
    """Debezium writes a primary key change as a delete of the old key (header __debezium.newkey),
    its tombstone, and a create of the new key (__debezium.oldkey): the row moves, keeping the
    TOASTed value the create did not send and its history, in whichever order the dump has the
    partitions."""
    import logtool

    src = {"connector": "postgresql", "db": "shop", "schema": "public", "table": "c", "ts_ms": 2000, "txId": 3, "lsn": 300}
    row = {"id": 1, "name": "a", "doc": "big"}

    def rec(n: int, key: int, payload: dict | None, headers: list[str]) -> str:
        return json.dumps({"topic": "pg.public.c", "partition": n % 2, "offset": n, "tstype": "create", "ts": 1709660000000 + n,
                           "broker": 1, "headers": headers, "key": json.dumps({"id": key}),
                           "payload": None if payload is None else json.dumps(payload)})  # fmt: skip

    insert = rec(0, 1, {"before": None, "after": row, "source": {**src, "ts_ms": 1000, "txId": 1}, "op": "c"}, [])
    delete = rec(1, 1, {"before": row, "after": None, "source": src, "op": "d"}, ["__debezium.newkey", '{"id":2}'])
    tombstone = rec(2, 1, None, [])
    create = rec(3, 2, {"before": None, "after": {**row, "id": 2, "doc": "__debezium_unavailable_value"}, "source": src,
                        "op": "c"}, ["__debezium.oldkey", '{"id":1}'])  # fmt: skip
    store = tmp_path / "in-order"
    logtool.ingest(store, [str(write_file("in-order.jsonl", "\n".join([insert, delete, tombstone, create]) + "\n"))])
    result = logtool.replay(str(store))
    assert [(r["key"], json.loads(r["state"])) for r in result.state.to_pylist()] == [
        ("2", {"id": 2, "name": "a", "doc": "big"})]  # fmt: skip
    assert not [w for w in result.warnings if "partial updates" in w]
    history = logtool.history(str(store), "2")
    rows = sorted({(e["offset"], e["key"], e["prev_key"]) for e in history.to_pylist()})
    assert rows == [(0, "1", None), (1, "2", "1")]
    # the create before its delete (another partition first): nothing is moved, as without the
    # headers; the row at the new key lacks what the create did not send, and replay says so
    store = tmp_path / "create-first"
    logtool.ingest(store, [str(write_file("create-first.jsonl", "\n".join([insert, create, delete, tombstone]) + "\n"))])
    result = logtool.replay(str(store))
    assert [(r["key"], json.loads(r["state"])) for r in result.state.to_pylist()] == [("2", {"id": 2, "name": "a"})]
    assert [w for w in result.warnings if "partial updates" in w]
    # the create in another partition, after a new row took the old key: the delete goes out
    # before that row, and the create starts its row afresh (without the value it did not send)
    reuse = rec(4, 1, {"before": None, "after": {"id": 1, "name": "b", "doc": "bdoc"}, "source": {**src, "txId": 4}, "op": "c"}, [])
    # a bad record between the delete and its create is passed over: the create is still the move
    bad = json.dumps({"topic": "other", "partition": 0, "offset": 9, "ts": "garbage", "headers": [], "key": "k",
                      "payload": '{"v": 1}'})  # fmt: skip
    store = tmp_path / "bad-between"
    logtool.ingest(store, [str(write_file("bad.jsonl", "\n".join([insert, delete, bad, tombstone, create]) + "\n"))],
                   on_error="quarantine")  # fmt: skip
    assert [r["key"] for r in logtool.replay(str(store)).state.to_pylist()] == ["2"]
    for name, order in (("reused", [insert, delete, tombstone, reuse, create]), ("no-create", [insert, delete, tombstone])):
        store = tmp_path / name
        logtool.ingest(store, [str(write_file(f"{name}.jsonl", "\n".join(order) + "\n"))])
        state = {r["key"]: json.loads(r["state"]) for r in logtool.replay(str(store)).state.to_pylist()}
        assert state == ({"1": {"id": 1, "name": "b", "doc": "bdoc"}, "2": {"id": 2, "name": "a"}} if name == "reused" else {})


def test_kafka_offsets_are_the_events_offsets_only_with_offset_field(read_events, write_file) -> None:
    """A Debezium payload's Kafka offset is its position, not its store offset, unless
    --offset-field offset says so (a single partition's dump)."""
    src = {"connector": "postgresql", "db": "d", "schema": "public", "table": "c", "ts_ms": 1000, "txId": 1, "lsn": 1}
    payload = {"before": None, "after": {"id": 1}, "source": src, "op": "c"}
    path = write_file("one.jsonl", json.dumps({"topic": "pg.public.c", "partition": 0, "offset": 5, "ts": 1,
                                               "headers": [], "key": '{"id":1}', "payload": json.dumps(payload)}) + "\n")  # fmt: skip
    rows, _ = read_events(FORMAT, path, Mapping())
    assert [r["offset"] for r in rows] == [None]
    rows, _ = read_events(FORMAT, path, Mapping(offset_field="offset"))
    assert [r["offset"] for r in rows] == [5]


def test_debezium_heartbeats_transaction_metadata_and_schema_changes_are_passed_over(read_events, write_file) -> None:
    """A heartbeat, a transaction's BEGIN or END and a schema change change no row, on a topic that
    carried Debezium's change events or that its name or Kafka key shows to be Debezium's, also
    before the first change of the file; they go in nowhere (their Kafka time would end an
    --at-time prefix early). The same JSON on an application's own topic is a payload as any."""
    src = {"connector": "postgresql", "name": "pg", "ts_ms": 1709640000000, "db": "shop", "schema": "public",
           "table": "t", "txId": 771, "lsn": 1000}  # fmt: skip
    change = {"before": None, "after": {"id": 1, "v": "a"}, "source": src, "op": "c", "ts_ms": 1709640000350}
    end = {"status": "END", "id": "771:1000", "event_count": 1, "ts_ms": 1709640000000,
           "data_collections": [{"data_collection": "public.t", "event_count": 1}]}  # fmt: skip
    ddl = {"source": {"connector": "mysql", "name": "my", "ts_ms": 1709640000000, "db": "inv"}, "databaseName": "inv",
           "ddl": "ALTER TABLE t ADD COLUMN n int", "tableChanges": []}  # fmt: skip
    sides = [
        ("my", None, ddl),  # before any change event
        ("pg.transaction", None, {**end, "status": "BEGIN", "event_count": None, "data_collections": None}),
        ("__debezium-heartbeat.pg", {"serverName": "pg"}, {"ts_ms": 1709640005000}),
        ("beats", {"serverName": "pg"}, {"ts_ms": 1709640005000}),  # a heartbeat topic of another name
        ("txns", {"id": "771:1000"}, end),
        ("pg.public.t", {"id": 1}, change),
        ("pg.public.t", None, end),  # (transaction metadata routed to the table's topic)
        ("pg.transaction", {"id": "771:1000"}, {"schema": {"type": "struct"}, "payload": end}),
    ]
    apps = [("jobs", {"id": 5}, {"id": 7, "status": "END"}), ("ticks", "k", {"ts_ms": 1709640005000})]
    lines = [json.dumps({"topic": topic, "partition": 0, "offset": n, "ts": 1709640009000 + n,
                         "key": None if key is None else json.dumps(key), "payload": json.dumps(payload)})
             for n, (topic, key, payload) in enumerate(sides + apps)]  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("k.jsonl", "\n".join(lines) + "\n"))
    assert bad == []
    assert [(r["entity"], r["op"], r["ts"]) for r in rows] == [
        ("public.t", "insert", 1709640000000000),
        ("jobs", "upsert", 1709640009008000),
        ("ticks", "upsert", 1709640009009000),
    ]


def test_a_tombstone_before_its_topics_first_debezium_change_deletes_the_debezium_row(read_events, write_file, tmp_path, monkeypatch) -> None:
    """In a compacted topic's dump a tombstone may come before the topic's first surviving change:
    it is held until a record of its topic shows what the topic carries, and goes in just before
    that record, in the Debezium entity, keyed as Debezium keys are. Where the file shows nothing
    else of the topic, the store decides: a topic whose Debezium changes an earlier ingest read
    places it in their entity; any other topic's tombstone is its own. Past the limit of held
    tombstones the rest go in as the topic's own, and a note says so."""
    import logtool
    from logtool.formats import kcat

    src = {"connector": "postgresql", "name": "pg", "ts_ms": 1709640070000, "db": "shop", "schema": "public",
           "table": "t", "txId": 702, "lsn": 3000}  # fmt: skip

    def rec(topic: str, offset: int, key: int, payload: dict | None) -> str:
        return json.dumps({"topic": topic, "partition": 0, "offset": offset, "ts": 1709640060100 + offset,
                           "key": f"{{\"id\":{key}}}", "payload": None if payload is None else json.dumps(payload)})  # fmt: skip

    create = {"before": None, "after": {"id": 1, "v": "a"}, "source": src, "op": "c"}
    lines = [rec("pg.public.t", 3, 2, None), rec("app", 0, 7, None), rec("app", 1, 8, {"v": 1}),
             rec("pg.public.t", 4, 1, create), rec("gone", 0, 9, None)]  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("k.jsonl", "\n".join(lines) + "\n"))
    assert bad == []
    assert [(r["entity"], r["key"], r["op"], r["source"]["position"]) for r in rows] == [
        ("app", '{"id":7}', "delete", "0/0"), ("app", '{"id":8}', "upsert", "0/1"),
        ("public.t", "2", "delete", "0/3"), ("public.t", "1", "insert", "0/4"), ("gone", '{"id":9}', "delete", "0/0"),
    ]  # fmt: skip
    # the topic's changes in one file, its tombstone alone in the next
    insert = {**create, "after": {"id": 2, "v": "b"}}
    store = tmp_path / "s"
    logtool.ingest(store, [str(write_file("k1.jsonl", rec("pg.public.t", 0, 2, insert) + "\n")),
                           str(write_file("k2.jsonl", rec("pg.public.t", 3, 2, None) + "\n"))])  # fmt: skip
    assert logtool.replay(store).state.num_rows == 0
    # past the limit: in as the topic's own, and said
    monkeypatch.setattr(kcat, "_HELD", 1)
    path = write_file("many.jsonl", "\n".join([rec("pg.public.t", 1, 5, None), rec("pg.public.t", 2, 6, None),
                                               rec("pg.public.t", 3, 7, None), rec("pg.public.t", 4, 1, create)]) + "\n")  # fmt: skip
    source = Source(str(path))
    rows = [r for batch in FORMAT.read(source, Mapping(), lambda _b: None) for r in batch.to_pylist()]
    assert [(r["entity"], r["op"]) for r in rows] == [("pg.public.t", "delete")] * 3 + [("public.t", "insert")]
    # every one of them is counted: those let in at the limit, and the one after, which no longer waited
    assert len(source.notes) == 1 and "3 tombstones of topic pg.public.t" in source.notes[0]


def test_a_tombstone_before_its_topics_first_change_takes_the_table_its_key_schema_turns_out_to_name(read_events, write_file) -> None:
    """A key schema's name alone says no table (SQL Server's ``server1.testDB.dbo.customers.Key`` is
    ``testDB.dbo.customers``): a tombstone before its topic's first change, whose name no change
    read so far made sure, waits for that change, which shows what the name stands for. One whose
    name a change of another table made sure (its name made alike) goes in at its place."""
    src = {"version": "2.5.4.Final", "connector": "sqlserver", "name": "server1", "ts_ms": 1559729468470,
           "db": "testDB", "schema": "dbo", "table": "customers", "change_lsn": "00000027:00000758:0003",
           "commit_lsn": "00000027:00000758:0005", "event_serial_no": 1}  # fmt: skip

    def rec(table: str, offset: int, key: int, payload: dict | None) -> str:
        schema = {"type": "struct", "fields": [{"type": "int32", "field": "id"}], "name": f"server1.testDB.dbo.{table}.Key"}
        return json.dumps({"topic": f"server1.testDB.dbo.{table}", "partition": 0, "offset": offset, "ts": 1559729470000 + offset,
                           "key": json.dumps({"schema": schema, "payload": {"id": key}}),
                           "payload": None if payload is None else json.dumps(payload)})  # fmt: skip

    create = {"before": None, "after": {"id": 1001}, "source": src, "op": "c", "ts_ms": 1559729471739}
    app = json.dumps({"topic": "app", "partition": 0, "offset": 0, "ts": 1559729480000, "key": "k", "payload": {"v": 1}})
    lines = [rec("customers", 3, 1002, None), rec("customers", 4, 1001, create), rec("orders", 7, 5, None), app]
    rows, bad = read_events(FORMAT, write_file("k.jsonl", "\n".join(lines) + "\n"))
    assert bad == []
    assert [(r["entity"], r["key"], r["op"], r["source"]["position"]) for r in rows] == [
        ("testDB.dbo.customers", "1002", "delete", "0/3"), ("testDB.dbo.customers", "1001", "insert", "0/4"),
        ("testDB.dbo.orders", "5", "delete", "0/7"), ("app", "k", "upsert", "0/0"),
    ]  # fmt: skip


def test_a_kafka_position_is_refused_where_the_store_holds_several_topic_partitions(write_file, tmp_path) -> None:
    """partition/offset orders the records of one partition only: where the store's Kafka records
    come from several topic-partitions, no such position is a point of the whole log (partition 0
    would sort wholly before partition 1, a transaction over both be cut), and --at-position is
    refused with the targets that are; one partition, over several files too, is replayed by it."""
    import logtool

    def record(topic: str, partition: int, offset: int) -> str:
        return json.dumps({"topic": topic, "partition": partition, "offset": offset, "ts": 1704103200000 + offset,
                           "key": f"k{partition}", "payload": json.dumps({"v": offset})})  # fmt: skip

    one = tmp_path / "one"
    logtool.ingest(one, [str(write_file("a.jsonl", record("t", 3, 5) + "\n")), str(write_file("b.jsonl", record("t", 3, 9) + "\n"))])
    assert logtool.replay(one, at_position="3/7").state.column("state").to_pylist() == ['{"v":5}']
    for name, records in (("partitions", [record("t", 0, 5), record("t", 1, 0)]), ("topics", [record("t", 0, 5), record("u", 0, 0)])):
        store = tmp_path / name
        logtool.ingest(store, [str(write_file(f"{name}.jsonl", "\n".join(records) + "\n"))])
        with pytest.raises(UsageError, match="several topic-partitions") as refused:
            logtool.replay(store, at_position="0/5")
        assert "--at-time or --at-offset" in (refused.value.hint or "")
        assert logtool.replay(store, at_offset=0).state.num_rows == 1


def test_maxwell_payloads_are_keyed_by_maxwells_kafka_key(read_events, write_file, tmp_path) -> None:
    """Maxwell's default output carries no primary_key: its Kafka key names the key columns
    (``pk.<column>``, lowercased; or the array key format), which key the rows; a table without a
    primary key (a random ``_uuid``) goes in without one, unwarned; rows of a table no key tells
    go in without one, and ingest warns of it as the Maxwell reader does."""
    import logtool

    def kafka(i: int, key: object, payload: dict) -> dict:
        return {"topic": "maxwell", "partition": 0, "offset": i, "ts": 1709660001000,
                "key": key if key is None else json.dumps(key), "payload": json.dumps(payload)}  # fmt: skip

    def row(table: str, kind: str, data: dict, **more: object) -> dict:
        return {"database": "shop", "table": table, "type": kind, "ts": 1709640001, "data": data, **more}

    path = write_file("mx.jsonl", "".join(json.dumps(r) + "\n" for r in [
        kafka(0, {"database": "shop", "table": "t", "pk.id": 1}, row("t", "insert", {"ID": 1, "n": 0})),
        kafka(1, {"database": "shop", "table": "t", "pk.id": 2}, row("t", "update", {"ID": 2, "n": 0}, old={"ID": 1})),
        kafka(2, ["shop", "l", [{"order_id": 1}, {"line": 2}]], row("l", "delete", {"order_id": 1, "line": 2})),
        kafka(3, {"database": "shop", "table": "nk", "_uuid": "0f1e"}, row("nk", "insert", {"a": 1})),
        kafka(4, None, row("u", "insert", {"id": 1})),
    ]))  # fmt: skip
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    assert [(r["entity"], r["key"], r["prev_key"]) for r in rows] == [
        ("shop.t", "1", None), ("shop.t", "2", "1"), ("shop.l", '{"order_id":1,"line":2}', None),
        ("shop.nk", None, None), ("shop.u", None, None),
    ]  # fmt: skip
    warnings = logtool.ingest(tmp_path / "s", [str(path)]).warnings
    assert [w.split(": ", 2)[1] for w in warnings] == [
        "shop.u went in without a key (its records carry no primary_key, which Maxwell leaves out by default, and no "
        "DDL record before them in the input states its primary key)"
    ]
