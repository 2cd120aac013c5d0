"""The CloudEvents reader: batch (pretty-printed or one array a line) and structured mode."""

from __future__ import annotations

import json

import pytest

from logtool.errors import UsageError
from logtool.formats import detect
from logtool.formats.base import Mapping, Source
from logtool.formats.cloudevents import FORMAT

BIG64 = "9223372036854775809"  # 2**63 + 1
FRAC38 = "1234567890123456789012345678.0123456789"


def summary(row: dict) -> tuple:
    return (row["source"]["line"], row["op"], row["entity"], row["key"], row["type"], row["ts"],
            row["source"]["position"])  # fmt: skip


def test_batch_sample(read_events, cdc_samples) -> None:
    rows, bad = read_events(FORMAT, cdc_samples / "cloudevents.json")
    assert bad == []
    seq = "0000000000000000000"
    assert [summary(r) for r in rows] == [
        (2, "event", "/shop/orders", "order-1042", "com.acme.order.created", 1709640000123456, seq + "1"),
        (19, "event", "/shop/orders", "order-1042", "com.acme.order.line_added", 1709640001000000, seq + "2"),
        (34, "event", "/shop/orders", "order-1042", "com.acme.order.paid", 1709640005000000, seq + "3"),
        (49, "event", "/shop/orders", "order-1042", "com.acme.order.note_added", 1709640120000000, seq + "4"),
        (60, "event", "/shop/payments", "pay-88", "com.acme.payment.receipt", 1709640150500000, None),
        (70, "event", "/shop/orders", "order-1042", "com.acme.order.shipped", 1709653500000000, seq + "5"),
        (84, "event", "/shop/inventory", None, "com.acme.inventory.restocked", 1709654400000000, None),
        (95, "event", "/shop/orders", "order-1043", "com.acme.order.cancelled", 1709655000000000, None),
        (105, "event", "/shop/customers", "cust-9", "com.acme.customer.registered", 1709655600000000, None),
        (118, "event", "/shop/orders", "order-1044", "com.acme.order.created", None, None),
    ]
    created = rows[0]
    assert created["data"] == f'{{"orderId":1042,"customer":"cust-7","total":{FRAC38},"lines":2}}'
    assert json.loads(created["meta"]) == {
        "specversion": "1.0", "id": "b2b6c0f4-7f52-4b1e-9a54-0c2f0d1e0001", "source": "/shop/orders",
        "datacontenttype": "application/json", "sequence": "00000000000000000001",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }  # fmt: skip
    assert created["txn"] is None and created["before"] is None and created["prev_key"] is None
    # a string data stays a JSON string, even when it holds JSON
    assert rows[3]["data"] == json.dumps('{"not": "parsed", "leave at door": true}')
    # data_base64 stays its base64 text, and meta says it is that
    assert rows[4]["data"] == '"JVBERi0xLjcgcmVjZWlwdA=="'
    assert json.loads(rows[4]["meta"])["data_base64"] is True
    assert rows[7]["data"] is None
    assert json.loads(rows[8]["meta"])["dataschema"] == "https://schemas.acme.com/customer/v2"


def test_exact_numbers(read_events, cdc_samples) -> None:
    rows, _ = read_events(FORMAT, cdc_samples / "cloudevents.json")
    assert rows[2]["data"] == f'{{"paymentId":"pay-88","amount":42.5,"ledgerSeq":{BIG64}}}'


def event(n: int, **attributes: object) -> dict:
    return {"specversion": "1.0", "id": f"e{n}", "source": "/bank/accounts", "type": "com.acme.deposited",
            "subject": "acc-1", "time": f"2024-03-05T10:00:0{n % 10}Z", "data": {"amount": n}} | attributes  # fmt: skip


def test_structured_mode_and_batches_on_a_line(read_events, write_file) -> None:
    both = event(5, data_base64="AAAA")
    records = [
        event(1),
        '{"specversion":"1.0","id":"e2",',
        {k: v for k, v in event(3).items() if k != "id"},
        event(4, time="tomorrow"),
        both,
        event(6, data=None, data_base64="###"),
        [event(7), {"id": "e8"}, event(9, subject=None)],
        event(10, source=5),
        event(11, type=""),
        "42",
    ]
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    del both  # the same record, written once above
    rows, bad = read_events(FORMAT, write_file("events.jsonl", text))
    assert [(r["source"]["line"], r["key"], r["data"], r["ts"]) for r in rows] == [
        (1, "acc-1", '{"amount":1}', 1709632801000000),
        (7, "acc-1", '{"amount":7}', 1709632807000000),
        (7, None, '{"amount":9}', 1709632809000000),
    ]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "invalid JSON: Expecting property name enclosed in double quotes at column 32"),
        (3, "not a CloudEvent: no id"),
        (4, "time: unparseable timestamp 'tomorrow'"),
        (5, "an event has data or data_base64, not both"),
        (6, "data_base64 is not base64"),
        (7, "batch element 1: not a CloudEvent: no specversion, source, type"),
        (8, "source is a number, not a non-empty string"),
        (9, "type is a string, not a non-empty string"),
        (10, "a CloudEvent is a JSON object, not a number"),
    ]
    assert bad[5].raw == b'{"id":"e8"}'


def test_pretty_printed_batch_with_a_broken_event(read_events, write_file) -> None:
    good = [event(1), event(2, data={"note": 'braces } and ] in a "string" \\'}), event(3)]
    text = json.dumps(good, indent=2)
    # break the second event's time without unbalancing any bracket or quote
    text = text.replace('"time": "2024-03-05T10:00:02Z"', '"time": 2024-03-05')
    text += "\ntrailing words\n" + json.dumps([event(4)], indent=1) + "\n"
    rows, bad = read_events(FORMAT, write_file("batch.json", text))
    assert [(r["source"]["line"], r["data"]) for r in rows] == [
        (2, '{"amount":1}'),
        (24, '{"amount":3}'),
        (38, '{"amount":4}'),
    ]
    assert [(b.line, b.reason) for b in bad] == [
        (13, "invalid JSON: Expecting ',' delimiter at line 19 column 17"),
        (36, "text outside any JSON value"),
    ]
    assert bad[0].raw.startswith(b'{\n    "specversion": "1.0",\n    "id": "e2"')
    assert bad[1].raw == b"trailing words"


def test_pretty_printed_objects_and_an_unclosed_end(read_events, write_file) -> None:
    text = json.dumps(event(1), indent=2) + "\n" + json.dumps(event(2), indent=2)[:-30] + "\n"
    rows, bad = read_events(FORMAT, write_file("objects.json", text))
    assert [(r["source"]["line"], r["key"]) for r in rows] == [(1, "acc-1")]
    assert [(b.line, b.reason) for b in bad] == [(12, "JSON value not closed at the end of the file")]


def test_mapping_options(read_events, cdc_samples) -> None:
    with pytest.raises(UsageError, match="--key-field does not apply to cloudevents"):
        read_events(FORMAT, cdc_samples / "cloudevents.json", Mapping(key_fields=("subject",)))


def test_sniff(cdc_samples, generic_lines) -> None:
    sample = (cdc_samples / "cloudevents.json").read_bytes()
    assert FORMAT.sniff(sample) == 90
    assert detect(Source(str(cdc_samples / "cloudevents.json"))).name == "cloudevents"
    assert FORMAT.sniff(b"".join(json.dumps(event(n)).encode() + b"\n" for n in range(3))) == 90
    assert FORMAT.sniff(json.dumps([event(1), event(2)]).encode()) == 90
    assert FORMAT.sniff(generic_lines) == 0
    assert FORMAT.sniff(b'[\n  {"id": 1, "name": "not an event"}\n]\n') == 0
    for other in ("debezium_pg.jsonl", "debezium_keyed.jsonl", "maxwell.jsonl", "kcat.jsonl", "mongodb.jsonl"):
        assert FORMAT.sniff((cdc_samples / other).read_bytes()) == 0, other
