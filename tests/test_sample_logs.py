"""The bundled sample logs are what sample_logs/README.md says they are.

Standard library only: these facts must hold whatever the readers do, so other tests can rely on them.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import json
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"

SHOP_FIELDS = ["ts", "table", "op", "id", "data", "actor", "txid"]
BANK_FIELDS = ["ts", "stream", "account_id", "type", "version", "body", "actor", "event_id", "causation_id",
               "correlation_id"]  # fmt: skip
PEOPLE_FIELDS = ["ts", "table", "op", "id", "data", "actor"]
REPLICA_FIELDS = ["ts", "table", "op", "id", "data"]


def parse(text: str) -> Any:
    # Decimals must survive exactly, as the readers must keep them.
    return json.loads(text, parse_float=Decimal)


def load(name: str) -> list[dict[str, Any]]:
    return [parse(line) for line in (SAMPLES / name).read_text(encoding="utf-8").splitlines()]


def ts(text: str) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(text)
    assert stamp.tzinfo is not None, text
    return stamp


def kv_head(records: list[dict[str, Any]], until: str | None = None) -> dict[str, dict[Any, Any]]:
    """The kv reducer of DESIGN.md, as a plain loop: the oracle for the documented head states."""
    state: dict[str, dict[Any, Any]] = {}
    for r in records:
        if until is not None and ts(r["ts"]) > ts(until):
            break
        rows = state.setdefault(r["table"], {})
        if r["op"] == "truncate":
            rows.clear()
        elif r["op"] == "delete" or r["data"] is None:
            rows.pop(r["id"], None)
        elif r["op"] == "patch":
            rows[r["id"]] = {**rows[r["id"]], **r["data"]}
        else:
            rows.pop(r.get("prev_id"), None)
            rows[r["id"]] = dict(r["data"])
    return state


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("shop_cdc.jsonl", SHOP_FIELDS),
        ("bank_events.jsonl", BANK_FIELDS),
        ("people_pii.jsonl", PEOPLE_FIELDS),
        ("replica_a.jsonl", REPLICA_FIELDS),
        ("replica_b.jsonl", REPLICA_FIELDS),
    ],
)
def test_every_line_is_an_object_with_the_documented_fields(name: str, fields: list[str]) -> None:
    raw = (SAMPLES / name).read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    records = load(name)
    for i, r in enumerate(records):
        assert isinstance(r, dict), (name, i)
        assert [k for k in r if k != "prev_id"] == fields, (name, i)
        assert isinstance(r["data" if "data" in r else "body"], dict | None), (name, i)
    stamps = [ts(r["ts"]) for r in records]
    assert stamps == sorted(stamps)


def test_shop_cdc() -> None:
    records = load("shop_cdc.jsonl")
    assert len(records) == 174
    assert {r["op"] for r in records} == {"insert", "update", "patch", "delete", "truncate"}
    assert all(1 <= len(r["data"]) <= 2 for r in records if r["op"] == "patch")
    assert all(r["data"] is None for r in records if r["op"] in ("delete", "truncate"))

    deploy = [i for i, r in enumerate(records) if r["actor"] == "deploy-bot"]
    assert deploy == [79, 81]
    bad = records[81]
    assert (bad["ts"], bad["table"], bad["id"], bad["data"]) == (
        "2026-03-01T14:03:07.250Z",
        "public.customers",
        42,
        {"balance": Decimal("-300.00")},
    )
    start, end = ts("2026-03-01T14:03:00Z"), ts("2026-03-01T14:03:30Z")
    window = [i for i, r in enumerate(records) if start <= ts(r["ts"]) <= end]
    assert window == list(range(78, 85))

    before = kv_head(records, until="2026-03-01T14:03:00Z")["public.customers"][42]
    during = kv_head(records[:82])["public.customers"][42]
    head = kv_head(records)
    assert str(before["balance"]) == "1181.77" and str(during["balance"]) == "-300.00"
    assert head["public.customers"][42] == before

    assert [(i, r["op"]) for i, r in enumerate(records) if r["table"] == "public.customers" and r["id"] == 23] == [
        (22, "insert"),
        (77, "patch"),
        (90, "delete"),
        (140, "insert"),
    ]
    assert records[115]["data"] == {"address": None}
    assert "address" in head["public.customers"][12] and head["public.customers"][12]["address"] is None

    text = (SAMPLES / "shop_cdc.jsonl").read_text(encoding="utf-8")
    assert '"balance": 123456789012345678901234567.891' in text and '"balance": 1250.40' in text
    assert records[32]["data"]["balance"] == Decimal("123456789012345678901234567.891")
    assert records[6]["data"]["external_id"] == 9007199254740993 == 2**53 + 1

    equal = [(i - 1, i) for i in range(1, len(records)) if records[i]["ts"] == records[i - 1]["ts"]]
    assert equal == [(38, 39), (50, 51), (56, 57), (61, 62), (65, 66), (75, 76)]
    assert all(records[a]["txid"] == records[b]["txid"] for a, b in equal)

    assert records[169]["op"] == "truncate" and records[169]["id"] is None
    assert len(kv_head(records[:169])["public.orders"]) == 48
    assert sorted(head["public.orders"]) == [1050, 1051, 1052, 1053]
    assert sorted(head["public.customers"]) == [*range(1, 13), *range(14, 19), *range(20, 27), 28, 29, 30, 42, 57, 77]


def load_reducers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bank_reducers", SAMPLES / "bank_reducers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bank_event(i: int, r: dict[str, Any]) -> dict[str, Any]:
    meta = {k: r[k] for k in ("actor", "event_id", "causation_id", "correlation_id")}
    return {"offset": i, "ts": r["ts"], "key": r["account_id"], "type": r["type"], "data": r["body"], "meta": meta}


def test_bank_events_replay_with_their_reducers() -> None:
    reducers = load_reducers()
    records = load("bank_events.jsonl")
    assert len(records) == 85
    assert [r["event_id"] for r in records] == [f"evt-{i:04d}" for i in range(1, 86)]
    assert all(r["version"] == r["body"][reducers.VERSION_FIELD] for r in records)
    assert [i for i, r in enumerate(records) if r["version"] == 1] == [6, 7, 8, 9, 10]
    assert records[6]["body"] == {"v": 1, "amount_cents": 1000}
    upcast = reducers.UPCASTERS[("MoneyDeposited", 1)](bank_event(6, records[6]))
    assert upcast["data"] == {"v": 2, "amount": "10.00", "currency": "EUR"}

    seen: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(records):
        if r["causation_id"] is not None:
            assert r["causation_id"] in seen, i
        seen[r["event_id"]] = r
        if r["type"] == "TransferReceived":
            sent = seen[r["causation_id"]]
            assert sent["type"] == "TransferSent" and sent["account_id"] == r["body"]["from_account"]
            assert sent["correlation_id"] == r["correlation_id"]
            assert sent["body"]["transfer_id"] == r["body"]["transfer_id"]

    chain = [(r["event_id"], r["account_id"], r["type"], r["causation_id"]) for r in records[65:69]]
    assert chain == [
        ("evt-0066", "acc-1005", "MoneyDeposited", None),
        ("evt-0067", "acc-1003", "TransferSent", "evt-0066"),
        ("evt-0068", "acc-1006", "TransferReceived", "evt-0067"),
        ("evt-0069", "acc-1003", "AccountFrozen", "evt-0067"),
    ]
    assert {r["correlation_id"] for r in records[65:69]} == {"corr-0051"}

    state: dict[str, Any] = {}
    for i, r in enumerate(records):
        event = bank_event(i, r)
        while (event["type"], event["data"][reducers.VERSION_FIELD]) in reducers.UPCASTERS:
            event = reducers.UPCASTERS[(event["type"], event["data"][reducers.VERSION_FIELD])](event)
        state[event["key"]] = reducers.REDUCERS[event["type"]](state.get(event["key"]), event)
    assert {k: (v["balance"], v["status"]) for k, v in state.items()} == {
        "acc-1001": ("2128.33", "open"),
        "acc-1002": ("2494.59", "open"),
        "acc-1003": ("-300.00", "frozen"),
        "acc-1004": ("0.00", "closed"),
        "acc-1005": ("3142.94", "open"),
        "acc-1006": ("1627.94", "open"),
    }


def test_people_pii() -> None:
    records = load("people_pii.jsonl")
    assert len(records) == 76
    mira = "mira.kovac@example.org"
    assert [i for i, r in enumerate(records) if "prev_id" in r] == [63]
    assert (records[63]["op"], records[63]["id"], records[63]["prev_id"]) == ("update", 10033, 33)
    emails = [r["data"]["email"] for r in records if r["data"] and "email" in r["data"]]
    assert max(emails) == mira and len(set(emails)) == 25
    assert [i for i, r in enumerate(records) if mira in json.dumps(r)] == [17, 22, 54, 58, 63]
    assert [i for i, r in enumerate(records) if "Mira Kovac" in json.dumps(r)] == [17, 22, 54, 56, 58, 63]
    assert records[56]["id"] == 41 and records[56]["data"] == {"note": "called Mira Kovac back"}
    keyed = [
        i for i, r in enumerate(records)
        if (r["table"], r["id"]) in {("public.users", 33), ("public.users", 10033), ("public.signups", 508),
                                     ("public.signups", 519)}
    ]  # fmt: skip
    assert keyed == [17, 22, 51, 54, 58, 63, 66, 73]
    head = kv_head(records)
    assert len(head["public.users"]) == 23 and len(head["public.signups"]) == 18
    assert 33 not in head["public.users"] and head["public.users"][10033]["city"] == "Leeds"


def test_replicas_diverge_at_73() -> None:
    a_lines = (SAMPLES / "replica_a.jsonl").read_text(encoding="utf-8").splitlines()
    b_lines = (SAMPLES / "replica_b.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(a_lines) == len(b_lines) == 120
    assert a_lines[:73] == b_lines[:73]
    a, b = [parse(x) for x in a_lines], [parse(x) for x in b_lines]
    assert a[73] != b[73]
    assert {k: v for k, v in a[73].items() if k != "data"} == {k: v for k, v in b[73].items() if k != "data"}
    assert (a[73]["id"], a[73]["data"], b[73]["data"]) == (2, {"qty": 38}, {"qty": 47})
    assert all(b[i] == a[i] for i in range(74, 108))
    assert all(b[i] == a[i + 1] for i in range(108, 114))
    assert b[114]["id"] == 99 and b[114] not in a
    assert all(b[i] == a[i] for i in range(115, 120))
    assert a[108] not in b and a[108]["id"] == 32
    head_a, head_b = kv_head(a)["public.stock"], kv_head(b)["public.stock"]
    assert set(head_b) - set(head_a) == {99} and not set(head_a) - set(head_b)
    assert {k for k in head_a if head_a[k] != head_b[k]} == {2, 32}


def test_orders_csv() -> None:
    with open(SAMPLES / "orders.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["ts", "table", "op", "id", "customer_id", "status", "total"]
    records = rows[1:]
    assert len(records) == 30 and all(len(r) == 7 for r in records)
    assert [r[2] for r in records].count("delete") == 2
    assert records[11][5] == "shipped, partially"
    assert records[19][5] == "on hold\nwaiting for stock"
    assert len((SAMPLES / "orders.csv").read_text(encoding="utf-8").splitlines()) == 32
    for r in records:
        ts(r[0])


def bad_reason(raw: bytes) -> str | None:
    """Why a line of broken.jsonl is bad, 'blank', or None for a good record."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "utf-8"
    if not text.strip():
        return "blank"
    try:
        record = parse(text)
    except json.JSONDecodeError:
        return "json"
    if not isinstance(record, dict):
        return "not an object"
    if "id" not in record:
        return "missing key"
    try:
        ts(record["ts"])
    except ValueError:
        return "timestamp"
    return None


def test_broken_lines_are_bad_where_documented() -> None:
    lines = (SAMPLES / "broken.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    reasons = {n: bad_reason(raw) for n, raw in enumerate(lines[:-1], start=1)}
    assert reasons == {
        1: None, 2: None, 3: "json", 4: None, 5: "blank", 6: "utf-8", 7: None, 8: "not an object", 9: None,
        10: "missing key", 11: "blank", 12: "timestamp", 13: None, 14: None, 15: None,
    }  # fmt: skip
