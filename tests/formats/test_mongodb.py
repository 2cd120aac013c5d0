"""The MongoDB change stream reader: documents, patches from updateDescription, DDL, bad records."""

from __future__ import annotations

import json

import pytest

from logtool.errors import UsageError
from logtool.formats import detect
from logtool.formats.base import Mapping, Source
from logtool.formats.mongodb import FORMAT

BIG38 = "12345678901234567890123456789012345678"
BIG64 = "9223372036854775809"  # 2**63 + 1
FRAC38 = "1234567890123456789012345678.0123456789"
OID = "65e70f70a1b2c3d4e5f6000"


def summary(row: dict) -> tuple:
    txn = row["txn"]["id"] if row["txn"] else None
    return (row["source"]["line"], row["op"], row["type"], row["entity"], row["key"], row["ts"],
            row["source"]["position"], txn)  # fmt: skip


def test_sample(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "mongodb.jsonl")
    assert bad == []
    txn = "q6m+8KpnRMKWvDnN3Ed5SQ==:7"
    assert [summary(r) for r in rows] == [
        (1, "insert", None, "shop.orders", OID + "1", 1709670000011000, "1709670000:1", None),
        (2, "patch", None, "shop.orders", OID + "1", 1709670030250000, "1709670030:4", None),
        (3, "patch", None, "shop.orders", OID + "1", 1709670045005000, "1709670045:1", None),
        (4, "insert", None, "shop.orders", OID + "2", 1709670060900000, "1709670060:2", txn),
        (5, "patch", None, "shop.customers", "cust-9", 1709670060900000, "1709670060:2", txn),
        (6, "upsert", None, "shop.customers", "cust-7", 1709670090040000, "1709670090:1", None),
        (7, "delete", None, "shop.orders", OID + "2", 1709670120777000, "1709670120:3", None),
        (8, "insert", None, "shop.counters", "42", 1709670150000000, "1709670150:1", None),
        (9, "event", "createIndexes", "shop.orders", None, 1709670160001000, "1709670160:1", None),
        (10, "truncate", "drop", "shop.counters", None, 1709670200002000, "1709670200:1", None),
        (11, "truncate", "rename", "shop.customers", None, 1709670210003000, "1709670210:1", None),
        (12, "insert", None, "shop.orders", OID + "3", 1709670240300000, "1709670240:1", None),
    ]
    by_line = {r["source"]["line"]: r for r in rows}
    # extended JSON stays as it is
    assert by_line[1]["data"] == (
        f'{{"_id":{{"$oid":"{OID}1"}},"customer":"cust-7","status":"new","items":[{{"sku":"SKU-9","qty":2}}],'
        '"total":{"$numberDecimal":"42.50"},"placedAt":{"$date":"2024-03-05T20:20:00.000Z"},'
        f'"views":{{"$numberLong":"9223372036854775807"}},"ledger":{BIG64},"ratio":{FRAC38},"big":{BIG38},'
        '"coupon":"SPRING24"}'
    )
    # an update is what updateDescription says, dotted paths as given
    assert by_line[2]["data"] == (
        '{"$set":{"status":"paid","items.0.qty":3,"paidAt":{"$date":"2024-03-05T20:20:30.250Z"}},"$unset":["coupon"]}'
    )
    # ... never fullDocument, which may show later changes
    assert by_line[3]["data"] == '{"$set":{"items":[{"sku":"SKU-9","qty":3}]},"$truncate":{"tags":1}}'
    assert "shipped" not in by_line[3]["data"] and "shipped" not in by_line[3]["meta"]
    assert by_line[5]["data"] == '{"$set":{"orders":{"$numberInt":"4"}}}'
    assert by_line[4]["txn"] == {"id": txn, "position": "1709670060:2", "position_order": "00000000001709670060:"
                                 "00000000000000000002", "ts": 1709670060900000, "aborted": None}  # fmt: skip
    assert by_line[6]["data"] == '{"_id":"cust-7","name":"Sally Thomas","email":"sally@acme.com","tier":"gold"}'
    delete = by_line[7]
    assert delete["data"] is None
    assert delete["before"] == (
        f'{{"_id":{{"$oid":"{OID}2"}},"customer":"cust-9","status":"new","total":{{"$numberDecimal":"19.99"}}}}'
    )
    meta = json.loads(delete["meta"])
    assert meta["operationType"] == "delete" and meta["documentKey"] == {"_id": {"$oid": OID + "2"}}
    assert meta["_id"]["_data"].startswith("8265E70F07")  # the resume token
    assert "fullDocumentBeforeChange" not in meta and "ns" not in meta
    assert json.loads(by_line[9]["data"]) == {"indexes": [{"v": 2, "key": {"customer": 1}, "name": "customer_1"}]}
    assert by_line[10]["data"] is None and by_line[10]["key"] is None
    assert json.loads(by_line[11]["meta"])["to"] == {"db": "shop", "coll": "customers_2023"}
    assert by_line[1]["source"] == {"format": "mongodb", "file": str(cdc_samples / "mongodb.jsonl"), "line": 1,
                                    "position": "1709670000:1",
                                    "position_order": "00000000001709670000:00000000000000000001"}  # fmt: skip


def test_exact_numbers(read_events, cdc_samples) -> None:
    rows, _ = read_events(FORMAT, cdc_samples / "mongodb.jsonl")
    assert f'"ledger":{BIG64},"ratio":{FRAC38},"big":{BIG38}' in rows[0]["data"]


def change(n: int, kind: str = "insert", **members: object) -> dict:
    doc = {"_id": {"$oid": f"{OID}{n}"}, "n": n}
    return {"_id": {"_data": f"82{n:04d}"}, "operationType": kind,
            "clusterTime": {"$timestamp": {"t": 1709670000 + n, "i": 1}},
            "ns": {"db": "shop", "coll": "orders"}, "documentKey": {"_id": doc["_id"]}, "fullDocument": doc} | members  # fmt: skip


def test_bad_records_are_reported_and_reading_goes_on(read_events, write_file) -> None:
    no_kind = change(3)
    del no_kind["operationType"]
    no_document = change(5)
    del no_document["fullDocument"]
    no_key = change(7, "delete")
    del no_key["documentKey"]
    no_ns = change(11)
    del no_ns["ns"]
    records = [
        change(1),
        '{"operationType":"insert","ns":{"db":"shop"',
        no_kind,
        {"_id": {"_data": "82"}, "operationType": "invalidate", "clusterTime": {"$timestamp": {"t": 1, "i": 1}}},
        no_document,
        change(6, "update"),
        no_key,
        change(8, clusterTime="yesterday"),
        change(9, wallTime={"$date": "nope"}),
        change(10, txnNumber="x", lsid={"id": {"$uuid": "0b5e7a4c-9d0e-4b41-a1ad-2d4f0b7c8d9e"}}),
        no_ns,
        change(12, "update", updateDescription={"updatedFields": [], "removedFields": []}),
        change(13, "delete", wallTime={"$date": {"$numberLong": "1709670013250"}}),
    ]
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    rows, bad = read_events(FORMAT, write_file("bad.jsonl", text))
    assert [(r["source"]["line"], r["op"], r["key"], r["ts"]) for r in rows] == [
        (1, "insert", OID + "1", 1709670001000000),
        (13, "delete", OID + "13", 1709670013250000),
    ]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "invalid JSON: Expecting ',' delimiter at column 44"),
        (3, "change event without an 'operationType'"),
        (5, "insert without a fullDocument"),
        (6, "update without an updateDescription"),
        (7, "delete without a documentKey._id"),
        (8, 'clusterTime "yesterday" is not a BSON timestamp'),
        (9, "wallTime: unparseable timestamp 'nope'"),
        (10, 'txnNumber "x" is not an integer'),
        (11, "change event without 'ns.db'"),
        (12, "updateDescription.updatedFields is not an object"),
    ]
    # invalidate ends a stream after a drop or rename: skipped, not a bad record (a complete
    # capture of a dropped collection ingests with the default --on-error fail)
    assert 4 not in {r["source"]["line"] for r in rows} | {b.line for b in bad}


def test_truncated_arrays_sizes_are_read_or_refused(read_events, write_file) -> None:
    sizes = [{"$numberInt": "2"}, 1, None, "z", 2.5, -1]
    records = [change(i + 1, "update", updateDescription={"updatedFields": {}, "removedFields": [],
                                                           "truncatedArrays": [{"field": "a", "newSize": n}]})
               for i, n in enumerate(sizes)]  # fmt: skip
    rows, bad = read_events(FORMAT, write_file("t.jsonl", "".join(json.dumps(r) + "\n" for r in records)))
    assert [json.loads(r["data"])["$truncate"] for r in rows] == [{"a": 2}, {"a": 1}]
    assert [b.line for b in bad] == [3, 4, 5, 6]
    assert "newSize null of 'a' is not a size" in bad[0].reason


def test_keys_that_are_not_object_ids(read_events, write_file) -> None:
    # canonical extended JSON's integers key a document as relaxed mode's plain numbers do
    ids = [{"$numberLong": "7"}, {"$numberInt": "-8"}, 9, {"region": "eu", "n": 1}, "plain", 3.5, {"$numberInt": "x"}]
    text = "".join(json.dumps(change(i + 1, documentKey={"_id": ident})) + "\n" for i, ident in enumerate(ids))
    rows, bad = read_events(FORMAT, write_file("keys.jsonl", text))
    assert bad == []
    assert [r["key"] for r in rows] == ["7", "-8", "9", '{"region":"eu","n":1}', "plain", "3.5", '{"$numberInt":"x"}']


def test_mapping_options(read_events, cdc_samples) -> None:
    with pytest.raises(UsageError, match="--key-field does not apply to mongodb"):
        read_events(FORMAT, cdc_samples / "mongodb.jsonl", Mapping(key_fields=("_id",)))


def test_sniff(cdc_samples, generic_lines) -> None:
    assert FORMAT.sniff((cdc_samples / "mongodb.jsonl").read_bytes()) == 90
    assert detect(Source(str(cdc_samples / "mongodb.jsonl"))).name == "mongodb"
    assert FORMAT.sniff(generic_lines) == 0
    for other in ("debezium_pg.jsonl", "debezium_keyed.jsonl", "maxwell.jsonl", "kcat.jsonl", "cloudevents.json"):
        assert FORMAT.sniff((cdc_samples / other).read_bytes()) == 0, other


def test_disambiguated_paths_set_a_field_whose_name_holds_a_dot(write_file, tmp_path) -> None:
    """MongoDB 6.1+ names the parts of an ambiguous path: {"a.b": ["a.b"]} is the top-level
    field "a.b", not b inside a; {"m.0": ["m", "0"]} is the field "0" of the object m."""
    import logtool

    doc = {"_id": 1, "a.b": 1, "a": {"b": 5}, "m": {"0": "zero"}, "arr": [1, 2]}
    records = [
        change(1, fullDocument=doc, documentKey={"_id": 1}),
        change(2, "update", documentKey={"_id": 1}, updateDescription={
            "updatedFields": {"a.b": 2, "m.0": "ZERO", "arr.1": 20}, "removedFields": [], "truncatedArrays": [],
            "disambiguatedPaths": {"a.b": ["a.b"], "m.0": ["m", "0"]}}),
        change(3, "update", documentKey={"_id": 1}, updateDescription={
            "updatedFields": {"a.b": 3}, "removedFields": [], "truncatedArrays": []}),  # no parts: b inside a
    ]  # fmt: skip
    path = write_file("paths.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    logtool.ingest(tmp_path / "s", [str(path)])
    (row,) = logtool.replay(str(tmp_path / "s")).state.to_pylist()
    assert json.loads(row["state"]) == {"_id": 1, "a.b": 2, "a": {"b": 3}, "m": {"0": "ZERO"}, "arr": [1, 20]}


def test_disambiguated_path_indexes_read_alike_in_canonical_and_relaxed_mode(read_events, write_file, tmp_path) -> None:
    """MongoDB writes an array index of a disambiguated path as an integer: canonical extended
    JSON's {"$numberInt": "0"} (or $numberLong) is the index 0, as relaxed mode's 0 is; a part that
    is neither a field name nor an index (an integer, 0 or more) is refused."""
    import logtool

    def log(*parts: object) -> str:
        records = [
            change(1, fullDocument={"_id": 1, "a": [{"1": "x"}]}, documentKey={"_id": 1}),
            change(2, "update", documentKey={"_id": 1}, updateDescription={
                "updatedFields": {"a.0.1": "y"}, "removedFields": [], "truncatedArrays": [],
                "disambiguatedPaths": {"a.0.1": ["a", *parts, "1"]}}),
        ]  # fmt: skip
        return "".join(json.dumps(r) + "\n" for r in records)

    forms = [[0], [{"$numberInt": "0"}], [{"$numberLong": "0"}]]
    for i, parts in enumerate(forms):
        path = write_file(f"p{i}.jsonl", log(*parts))
        rows, bad = read_events(FORMAT, path)
        assert bad == []
        assert json.loads(rows[1]["data"])["$paths"] == {"a.0.1": ["a", 0, "1"]}
        logtool.ingest(tmp_path / f"s{i}", [str(path)])
        (row,) = logtool.replay(str(tmp_path / f"s{i}")).state.to_pylist()
        assert json.loads(row["state"]) == {"_id": 1, "a": [{"1": "y"}]}
    for i, parts in enumerate([[{"$numberInt": "x"}], [0.5], [-1], [None], [{"$numberDouble": "0"}]]):
        rows, bad = read_events(FORMAT, write_file(f"bad{i}.jsonl", log(*parts)))
        assert [b.line for b in bad] == [2]
        assert "disambiguatedPaths is not an object of path-part lists" in bad[0].reason


def test_an_update_carrying_its_pre_image_is_the_document_it_left(read_events, write_file, tmp_path) -> None:
    """An update with fullDocumentBeforeChange (a pre-image) is an upsert of the pre-image with the
    update applied, as replay applies a patch (truncated arrays, set and removed paths, paths whose
    names hold dots); the pre-image is its before-image, and replay warns of no partial row. An
    update whose pre-image was not available (null) stays a patch."""
    import logtool

    pre = {"_id": 7, "name": "Ann", "email": "old@x.com", "tags": ["a", "b", "c"], "a.b": 1, "gone": True}
    description = {"updatedFields": {"email": "new@x.com", "tags.1": "B", "a.b": 2}, "removedFields": ["gone"],
                   "truncatedArrays": [{"field": "tags", "newSize": 2}], "disambiguatedPaths": {"a.b": ["a.b"]}}  # fmt: skip
    records = [
        change(1, "update", documentKey={"_id": 7}, fullDocument=None, updateDescription=description,
               fullDocumentBeforeChange=pre),
        change(2, "update", documentKey={"_id": 8}, fullDocument=None, updateDescription=description,
               fullDocumentBeforeChange=None),
    ]  # fmt: skip
    path = write_file("pre.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    rows, bad = read_events(FORMAT, path)
    assert bad == []
    post = {"_id": 7, "name": "Ann", "email": "new@x.com", "tags": ["a", "B"], "a.b": 2}
    assert (rows[0]["op"], json.loads(rows[0]["data"]), json.loads(rows[0]["before"])) == ("upsert", post, pre)
    assert (rows[1]["op"], rows[1]["before"]) == ("patch", None)
    # the same update replayed onto the pre-image as a patch gives the same document
    patched = [change(1, documentKey={"_id": 7}, fullDocument=pre), change(2, "update", documentKey={"_id": 7},
               fullDocument=None, updateDescription=description)]  # fmt: skip
    other = write_file("patched.jsonl", "".join(json.dumps(r) + "\n" for r in patched))
    logtool.ingest(tmp_path / "p", [str(other)])
    assert [json.loads(r["state"]) for r in logtool.replay(str(tmp_path / "p")).state.to_pylist()] == [post]
    logtool.ingest(tmp_path / "s", [str(path)])
    result = logtool.replay(str(tmp_path / "s"), key="7")
    assert [json.loads(r["state"]) for r in result.state.to_pylist()] == [post]
    assert result.warnings == []
