"""Audit (issue 5): history, blame, why and stats on the sample logs and on a small hand-made log.

Golden files under ``tests/golden/audit_*`` hold the exact output; regenerate them with
``LOGTOOL_REGEN_GOLDEN=1 pytest tests/test_audit.py`` and read the diff before committing.
Sample logs are ingested from the repository root by relative path, so positions read
``sample_logs/shop_cdc.jsonl:82`` wherever the repository lives.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logtool

# Resolve the verbs before `from logtool.ingest import ...` binds a submodule over its verb (the
# known bug test_replay.py::test_library_verbs_survive_importing_their_modules documents).
from logtool import console, replay
from logtool.demo import BANK, PEOPLE, SHOP
from logtool.errors import NotFoundError, UsageError
from logtool.formats.base import Mapping, RawNumber, loads_exact
from logtool.ingest import ingest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = os.environ.get("LOGTOOL_REGEN_GOLDEN") == "1"
BANK_REDUCERS = "sample_logs/bank_reducers.py"

WIDGETS = Mapping(
    key_fields=("id",), entity_field="table", op_field="op", ts_field="ts", data_field="data",
    meta_fields=("actor", "user", "txid"), prev_key_field="prev_id",
)  # fmt: skip

# One key through every rule: a patch, an update re-sending unchanged values, a patch that changes
# nothing (7 and 7.0 are one value), a key change (1 -> 100, carrying what the update did not
# send), a delete, a re-create from nothing, a null set as a value, a truncate (no key), and an
# insert after it. Key 2 lives in two entities. The actor of offset 3 is in meta `user`.
WIDGET_LINES = [
    '{"ts": "2026-01-01T10:00:00Z", "table": "widgets", "op": "insert", "id": 1, "data": {"id": 1, "name": "bolt", "qty": 5, "tags": ["a"]}, "actor": "alice", "txid": 1}',
    '{"ts": "2026-01-01T10:00:01Z", "table": "widgets", "op": "insert", "id": 2, "data": {"id": 2, "name": "nut", "qty": 9}, "actor": "alice", "txid": 2}',
    '{"ts": "2026-01-01T10:00:02Z", "table": "widgets", "op": "patch", "id": 1, "data": {"qty": 7}, "actor": "bob", "txid": 3}',
    '{"ts": "2026-01-01T10:00:03Z", "table": "widgets", "op": "update", "id": 1, "data": {"id": 1, "name": "bolt", "qty": 7, "tags": ["a", "b"]}, "user": "carol", "txid": 4}',
    '{"ts": "2026-01-01T10:00:04Z", "table": "widgets", "op": "patch", "id": 1, "data": {"qty": 7.0}, "actor": "bob", "txid": 5}',
    '{"ts": "2026-01-01T10:00:05Z", "table": "widgets", "op": "update", "id": 100, "prev_id": 1, "data": {"id": 100, "name": "bolt"}, "actor": "merger", "txid": 6}',
    '{"ts": "2026-01-01T10:00:06Z", "table": "widgets", "op": "delete", "id": 100, "data": null, "actor": "alice", "txid": 7}',
    '{"ts": "2026-01-01T10:00:07Z", "table": "widgets", "op": "insert", "id": 100, "data": {"id": 100, "name": "washer", "qty": 1}, "actor": "dave", "txid": 8}',
    '{"ts": "2026-01-01T10:00:08Z", "table": "widgets", "op": "patch", "id": 100, "data": {"qty": null}, "actor": "dave", "txid": 8}',
    '{"ts": "2026-01-01T10:00:09Z", "table": "gadgets", "op": "insert", "id": 2, "data": {"id": 2}, "actor": "erin", "txid": 9}',
    '{"ts": "2026-01-01T10:00:10Z", "table": "widgets", "op": "truncate", "actor": "dba", "txid": 10}',
    '{"ts": "2026-01-01T10:00:11Z", "table": "widgets", "op": "insert", "id": 100, "data": {"id": 100, "name": "gear"}, "actor": "dave", "txid": 11}',
]  # fmt: skip


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The sample stores and the widgets store, ingested once for the module, each file named by a
    path relative to where it lies (positions in the output do not depend on the machine)."""
    base = tmp_path_factory.mktemp("audit")
    (base / "widgets.jsonl").write_text("\n".join(WIDGET_LINES) + "\n", encoding="utf-8")
    out = {}
    for name, cwd, file, mapping in (
        ("shop", ROOT, "sample_logs/shop_cdc.jsonl", SHOP),
        ("bank", ROOT, "sample_logs/bank_events.jsonl", BANK),
        ("people", ROOT, "sample_logs/people_pii.jsonl", PEOPLE),
        ("widgets", base, "widgets.jsonl", WIDGETS),
    ):
        out[name] = base / name
        with contextlib.chdir(cwd):
            ingest(out[name], [file], mapping=mapping)
    return out


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root (the reducer module is named by a relative path), and give the
    terminal tables a fixed width."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(console.out, "width", 160)


def golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME, or write it under LOGTOOL_REGEN_GOLDEN=1."""
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing: run with LOGTOOL_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


def out_json(run: Any) -> Any:
    assert run.code == 0, run.err
    return loads_exact(run.out)


def without_trailing_spaces(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"


def changes(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(row["changes"])


# --------------------------------------------------------------------------- history


def test_history_of_customer_42_shows_the_deploy_bot_patch(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("history", stores["shop"], "42", "--entity", "public.customers", "--format", "json")
    golden("audit_history_shop_42.json", run.out)
    events = out_json(run)
    assert [e["offset"] for e in events] == [30, 76, 81, 107]
    bad = events[2]
    assert (bad["actor"], bad["ts"], bad["position"]) == (
        "deploy-bot",
        "2026-03-01T14:03:07.250000Z",
        "sample_logs/shop_cdc.jsonl:82",
    )
    assert bad["changes"] == {"balance": {"before": loads_exact("1181.77"), "after": loads_exact("-300.00")}}
    assert run.err.strip() == "4 events"


def test_history_as_a_terminal_table(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("history", stores["shop"], "42", "--format", "table")
    assert run.code == 0
    golden("audit_history_shop_42.txt", without_trailing_spaces(run.out))
    assert "history of public.customers 42" in run.out
    assert "deploy-bot" in run.out and "-300.00" in run.out


def test_history_as_csv_is_one_row_per_changed_field(cli: Any, stores: dict[str, Path]) -> None:
    run = cli("history", stores["shop"], "42", "--field", "balance", "--format", "csv")
    assert run.code == 0
    lines = run.out.splitlines()
    assert lines[0] == "offset,ts,entity,key,prev_key,op,type,actor,position,field,before,after"
    # --field keeps the events that changed it, each with all its changes (the insert sets 8).
    assert [line.split(",")[0] for line in lines[1:]] == ["30"] * 8 + ["76", "81", "107"]
    assert lines[10].endswith(",deploy-bot,sample_logs/shop_cdc.jsonl:82,balance,1181.77,-300.00")


def test_history_of_a_deleted_and_recreated_customer(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("history", stores["shop"], "23", "--format", "json")
    golden("audit_history_shop_23.json", run.out)
    events = out_json(run)
    assert [(e["offset"], e["op"]) for e in events] == [(22, "insert"), (77, "patch"), (90, "delete"), (140, "insert")]
    delete, again = events[2]["changes"], events[3]["changes"]
    assert all("after" not in c for c in delete.values()) and len(delete) == 8
    assert all("before" not in c for c in again.values()) and again["name"] == {"after": "Hana Sato"}


def test_history_follows_a_key_change_backwards(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("history", stores["people"], "10033", "--format", "json")
    golden("audit_history_people_10033.json", run.out)
    events = out_json(run)
    assert [(e["offset"], e["key"], e["prev_key"]) for e in events] == [
        (22, "33", None), (51, "33", None), (54, "33", None), (63, "10033", "33"), (66, "10033", None),
    ]  # fmt: skip
    assert events[3]["changes"] == {"id": {"before": 33, "after": 10033}}


def test_history_of_an_old_key_ends_with_the_key_change(stores: dict[str, Path]) -> None:
    table = logtool.history(stores["people"], "33")
    assert table.column("offset").to_pylist() == [22, 51, 54, 63]
    assert table.column("key").to_pylist()[-1] == "10033"


def test_history_of_a_key_through_every_rule(cli: Any, stores: dict[str, Path]) -> None:
    run = cli("history", stores["widgets"], "100", "--entity", "widgets", "--format", "json")
    golden("audit_history_widgets_100.json", run.out)
    by_offset = {e["offset"]: e for e in out_json(run)}
    assert list(by_offset) == [0, 2, 3, 4, 5, 6, 7, 8, 10, 11]
    assert by_offset[2]["changes"] == {"qty": {"before": 5, "after": 7}}  # a patch keeps the rest
    assert by_offset[3]["changes"] == {"tags": {"before": ["a"], "after": ["a", "b"]}}  # unchanged name, qty
    assert by_offset[3]["actor"] == "carol"  # from meta `user`
    assert by_offset[4]["changes"] == {}  # 7.0 is 7
    assert by_offset[5]["changes"] == {"id": {"before": 1, "after": 100}}  # qty, tags carried
    assert (by_offset[5]["key"], by_offset[5]["prev_key"]) == ("100", "1")
    assert set(by_offset[6]["changes"]) == {"id", "name", "qty", "tags"}  # the delete removes all
    assert by_offset[7]["changes"] == {"id": {"after": 100}, "name": {"after": "washer"}, "qty": {"after": 1}}
    assert by_offset[8]["changes"] == {"qty": {"before": 1, "after": None}}  # null is a value
    assert (by_offset[10]["op"], by_offset[10]["key"]) == ("truncate", "100")
    assert by_offset[10]["changes"] == {"id": {"before": 100}, "name": {"before": "washer"}, "qty": {"before": None}}


def test_history_filters_by_field_and_time(stores: dict[str, Path]) -> None:
    qty = logtool.history(stores["widgets"], "100", field="qty")
    assert qty.column("offset").to_pylist() == [0, 2, 6, 7, 8, 10]
    window = logtool.history(stores["widgets"], "100", since="2026-01-01T10:00:03Z", until="2026-01-01T10:00:06Z")
    assert window.column("offset").to_pylist() == [3, 4, 5, 6]
    # A filtered history still folds from the start: the change shown is the change made.
    assert changes(window.to_pylist()[0]) == {"tags": {"before": ["a"], "after": ["a", "b"]}}
    with pytest.raises(UsageError):
        logtool.history(stores["widgets"], "100", since="yesterday-ish")
    with pytest.raises(UsageError, match="--since .* is after --until"):
        logtool.history(stores["widgets"], "100", since="2026-01-01T10:00:06Z", until="2026-01-01T10:00:03Z")


def test_history_of_a_moved_row_leaves_out_another_row_inserted_later_at_its_old_key(tmp_path: Path) -> None:
    """33 moves to 10033; a new row is inserted at 33 later: it is another row, not 10033's past."""
    log = tmp_path / "kc.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in [
        {"ts": "2026-01-01T00:00:01Z", "op": "insert", "id": 33, "data": {"id": 33, "a": 1, "b": "x"}},
        {"ts": "2026-01-01T00:00:02Z", "op": "patch", "id": 33, "data": {"b": "y"}},
        {"ts": "2026-01-01T00:00:03Z", "op": "update", "id": 10033, "prev_id": 33, "data": {"id": 10033}},
        {"ts": "2026-01-01T00:00:04Z", "op": "insert", "id": 33, "data": {"id": 33, "a": 5}},
        {"ts": "2026-01-01T00:00:05Z", "op": "patch", "id": 10033, "data": {"a": 2}},
        {"ts": "2026-01-01T00:00:06Z", "op": "patch", "id": 33, "data": {"a": 6}},
    ]))  # fmt: skip
    store = tmp_path / "s"
    ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), entity="t", op_field="op", ts_field="ts",
                                              data_field="data", prev_key_field="prev_id"))  # fmt: skip
    assert logtool.history(store, "10033").column("offset").to_pylist() == [0, 1, 2, 4]
    assert logtool.history(store, "10033", field="a").column("offset").to_pylist() == [0, 4]
    # the key 33 held two rows: the one that moved away (until its move) and the new one
    assert logtool.history(store, "33").column("offset").to_pylist() == [0, 1, 2, 3, 5]


def test_a_move_onto_a_held_key_outside_a_transaction_overwrites_it_as_replay_does(tmp_path: Path) -> None:
    """A at 1, B at 2; 1 moves to 2 (B is overwritten: no transaction), then 2 moves to 1. The
    row at 1 is A's, all through: no event changed its name."""
    log = tmp_path / "sw.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in [
        {"op": "insert", "id": 1, "data": {"id": 1, "n": "A"}},
        {"op": "insert", "id": 2, "data": {"id": 2, "n": "B"}},
        {"op": "update", "id": 2, "prev_id": 1, "data": {"id": 2}},
        {"op": "update", "id": 1, "prev_id": 2, "data": {"id": 1}},
    ]))  # fmt: skip
    store = tmp_path / "s"
    ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), entity="t", op_field="op", data_field="data",
                                              prev_key_field="prev_id"))  # fmt: skip
    assert [json.loads(r["state"]) for r in replay(str(store)).state.to_pylist()] == [{"id": 1, "n": "A"}]
    blamed = {r["field"]: r["offset"] for r in logtool.blame(store, "1").to_pylist()}
    assert blamed == {"id": 3, "n": 0}
    last = logtool.history(store, "1").to_pylist()[-1]
    assert last["offset"] == 3 and json.loads(last["changes"]) == {"id": {"before": 2, "after": 1}}


def test_history_of_a_field_the_key_never_had_names_its_fields(stores: dict[str, Path]) -> None:
    """A misspelled field is not "nobody changed it"."""
    with pytest.raises(NotFoundError, match="key '100' never had a field 'qtty'; its fields: .*'qty'"):
        logtool.history(stores["widgets"], "100", field="qtty")


def test_history_of_a_key_in_two_entities_shows_both(stores: dict[str, Path]) -> None:
    table = logtool.history(stores["widgets"], "2")
    assert sorted(set(table.column("entity").to_pylist())) == ["gadgets", "widgets"]


def test_event_sourced_history_with_a_reducer(stores: dict[str, Path], at_root: None) -> None:
    table = logtool.history(stores["bank"], "acc-1003", reducer=BANK_REDUCERS)
    rows = table.to_pylist()
    assert [r["type"] for r in rows][-2:] == ["TransferSent", "AccountFrozen"]
    assert changes(rows[-2]) == {"balance": {"before": "40.00", "after": "-300.00"}}
    assert rows[-2]["actor"] == "sweep-bot"


# --------------------------------------------------------------------------- blame


def test_blame_of_customer_42(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("blame", stores["shop"], "42", "--format", "json")
    golden("audit_blame_shop_42.json", run.out)
    fields = {r["field"]: r for r in out_json(run)}
    assert (fields["balance"]["offset"], fields["balance"]["actor"]) == (107, "support:j.okafor")
    assert fields["name"]["offset"] == 30


def test_blame_at_a_time_inside_the_bad_deploy(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("blame", stores["shop"], "42", "--at-time", "2026-03-01T14:03:10Z", "--format", "json")
    golden("audit_blame_shop_42_at_time.json", run.out)
    fields = {r["field"]: r for r in out_json(run)}
    assert fields["balance"]["value"] == loads_exact("-300.00")
    assert (fields["balance"]["offset"], fields["balance"]["actor"]) == (81, "deploy-bot")


def test_blame_at_an_offset_past_the_end_answers_for_the_head_and_warns(cli: Any, stores: dict[str, Path]) -> None:
    run = cli("blame", stores["shop"], "42", "--at-offset", "99999", "--format", "json")
    assert run.code == 0
    assert out_json(run) == out_json(cli("blame", stores["shop"], "42", "--format", "json"))
    assert "offset 99999 is past the end of the log (its last offset is 173): this is the state at the head" in run.err
    assert "past the end" not in cli("blame", stores["shop"], "42", "--at-offset", "173", "--format", "json").err


def test_blame_and_why_take_a_composite_key_spaced_as_history_does(cli: Any, tmp_path: Path) -> None:
    store = tmp_path / "pg"
    ingest(store, [str(ROOT / "sample_logs/postgres/wal2json.jsonl")])
    spaced, compact = '{"order_id": 1, "line": 3}', '{"order_id":1,"line":3}'
    for command in (("blame",), ("why", "line"), ("history",)):
        runs = [cli(command[0], store, k, *command[1:], "--entity", "public.lines", "--format", "json") for k in (spaced, compact)]
        assert [r.code for r in runs] == [0, 0], runs[0].err
        assert runs[0].out == runs[1].out
    why = logtool.why(store, spaced, "line", entity="public.lines")
    assert (why.key, why.event["offset"]) == (compact, 21)


def test_the_history_hint_is_a_command_to_paste(cli: Any, stores: dict[str, Path], tmp_path: Path) -> None:
    # a composite key quoted for the shell, with its entity (a key may be in several) and the field
    store = tmp_path / "pg"
    ingest(store, [str(ROOT / "sample_logs/postgres/wal2json.jsonl")])
    moved = cli("blame", store, '{"order_id": 1, "line": 2}', "--entity", "public.lines")
    assert moved.code == 1
    assert "hint: see `logtool history STORE '{\"order_id\":1,\"line\":2}' --entity public.lines`" in moved.err
    deleted = cli("blame", stores["shop"], "13")
    assert "hint: see `logtool history STORE 13 --entity public.customers`" in deleted.err
    no_value = cli("why", stores["shop"], "42", "balance", "--value", "5")
    assert "see `logtool history STORE 42 --entity public.customers --field balance`" in no_value.err


def test_a_composite_key_given_with_its_members_in_another_order_is_shown_in_the_stores(cli: Any, tmp_path: Path) -> None:
    # public.lines is keyed by (order_id, line), and public.tally has no key: the order names the
    # key the user meant, ahead of the keyless table a lookup without --entity would blame
    store = tmp_path / "pg"
    ingest(store, [str(ROOT / "sample_logs/postgres/wal2json.jsonl")])
    for extra in ((), ("--entity", "public.lines")):
        for command in (("history",), ("blame",), ("why",)):
            args = (*command, store, '{"line": 3, "order_id": 1}', *(["qty"] if command == ("why",) else []), *extra)
            run = cli(*args)
            assert (run.code, run.out) == (1, "")
            assert "hint: a composite key's members go in the key fields' order: " + '{"order_id":1,"line":3}' in run.err
            assert "without a key" not in run.err
    found = cli("blame", store, '{"order_id": 1, "line": 3}', "--entity", "public.lines", "--format", "json")
    assert {r["field"]: r["value"] for r in out_json(found)} == {"order_id": 1, "line": 3, "qty": 7}
    plain = cli("history", store, '{"order_id":1,"line":9}', "--entity", "public.lines")
    assert (plain.code, plain.errors()) == (1, ["error: key '{\"order_id\":1,\"line\":9}' not found in public.lines"])
    assert "hint" not in plain.err  # no stored key has these members in another order


def test_blame_keeps_unchanged_fields_with_the_event_that_set_them(stores: dict[str, Path]) -> None:
    at5 = {r["field"]: r for r in logtool.blame(stores["widgets"], "100", at_offset=5).to_pylist()}
    assert {f: r["offset"] for f, r in at5.items()} == {"id": 5, "name": 0, "qty": 2, "tags": 3}
    assert at5["qty"]["actor"] == "bob"
    head = {r["field"]: r["offset"] for r in logtool.blame(stores["widgets"], "100").to_pylist()}
    assert head == {"id": 11, "name": 11}


def test_blame_says_why_a_key_has_no_state(stores: dict[str, Path]) -> None:
    with pytest.raises(NotFoundError, match="deleted at offset 90"):
        logtool.blame(stores["shop"], "23", at_offset=100)
    with pytest.raises(NotFoundError, match="became key '10033' at offset 63"):
        logtool.blame(stores["people"], "33")
    with pytest.raises(NotFoundError, match="truncated at offset 10"):
        logtool.blame(stores["widgets"], "100", at_offset=10)
    with pytest.raises(NotFoundError, match="no state at offset 3"):
        logtool.blame(stores["widgets"], "100", at_offset=3)


def test_blame_agrees_with_replay(stores: dict[str, Path]) -> None:
    state = replay(stores["shop"], entity="public.customers").state.to_pylist()
    assert len(state) == 30
    for row in state:
        blamed = logtool.blame(stores["shop"], row["key"], entity="public.customers").to_pylist()
        # As values: replay writes numbers in shortest form (818.5), the audit as sent (818.50).
        as_value = functools.partial(json.loads, parse_float=Decimal)
        assert {r["field"]: as_value(r["value"]) for r in blamed} == as_value(row["state"]), row["key"]


def test_blame_at_a_position_of_transactions_named_without_their_commit(tmp_path: Path) -> None:
    """Debezium PostgreSQL events name their txId, not its commit: blame takes replay's targets,
    evaluated on its own connection."""
    src = {"connector": "postgresql", "ts_ms": 1709631000000, "schema": "public", "table": "t", "txId": 5}
    lines = [{"before": None, "after": {"id": 1, "v": v}, "source": {**src, "lsn": lsn}, "op": op, "ts_ms": 1}
             for v, lsn, op in (("a", 256, "c"), ("b", 512, "u"))]  # fmt: skip
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    ingest(tmp_path / "s", [str(tmp_path / "d.jsonl")], mapping=Mapping(key_fields=("id",)))
    with pytest.raises(NotFoundError):
        logtool.blame(tmp_path / "s", "1", at_position="0/180")  # the transaction is open there
    rows = logtool.blame(tmp_path / "s", "1", at_position="0/200").to_pylist()
    assert {r["field"]: (r["value"], r["offset"]) for r in rows} == {"id": ("1", 0), "v": ('"b"', 1)}


def change(xid: int, lsn: int, kind: str, new: int, name: str, old: int | None = None) -> list[dict[str, Any]]:
    """A wal2json v2 change of table t (id, name); ``old`` is the key an update moved the row from."""
    body = {"action": kind, "schema": "public", "table": "t", "lsn": f"0/{lsn}",
            "columns": [{"name": "id", "type": "integer", "value": new}, {"name": "name", "type": "text", "value": name}],
            "pk": [{"name": "id", "type": "integer"}]}  # fmt: skip
    if old is not None:
        body["identity"] = [{"name": "id", "type": "integer", "value": old}]
    return [body]


def txn(xid: int, lsn: int, *changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A wal2json v2 transaction holding these changes."""
    stamp = f"2026-01-01 00:00:0{xid}+00"
    return ([{"action": "B", "xid": xid, "timestamp": stamp, "lsn": f"0/{lsn}", "nextlsn": f"0/{lsn + 9}"}]
            + [c | {"xid": xid, "timestamp": stamp} for part in changes for c in part]
            + [{"action": "C", "xid": xid, "timestamp": stamp, "lsn": f"0/{lsn + 8}", "nextlsn": f"0/{lsn + 9}"}])  # fmt: skip


def test_blame_and_why_follow_rows_that_swapped_keys_in_one_transaction(tmp_path: Path) -> None:
    """wal2json: 1 and 2 swap keys in one transaction, then 2 moves to 3. Blame follows the row."""
    records = (txn(1, 10, change(1, 11, "I", 1, "A")) + txn(2, 20, change(2, 21, "I", 2, "B"))
               + txn(3, 30, change(3, 31, "U", 2, "A", old=1), change(3, 32, "U", 1, "B", old=2))
               + txn(4, 40, change(4, 41, "U", 3, "A", old=2)))  # fmt: skip
    (tmp_path / "w.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    ingest(tmp_path / "s", [str(tmp_path / "w.jsonl")])
    state = {r["key"]: json.loads(r["state"]) for r in replay(tmp_path / "s").state.to_pylist()}
    assert state == {"1": {"id": 1, "name": "B"}, "3": {"id": 3, "name": "A"}}
    one = {r["field"]: r["offset"] for r in logtool.blame(tmp_path / "s", "1").to_pylist()}
    three = {r["field"]: r["offset"] for r in logtool.blame(tmp_path / "s", "3").to_pylist()}
    assert (one, three) == ({"id": 3, "name": 1}, {"id": 4, "name": 0})
    assert logtool.why(tmp_path / "s", "3", "name").event["offset"] == 0


def test_blame_and_why_find_both_rows_of_a_swap_and_a_rotation_in_one_transaction(tmp_path: Path) -> None:
    """wal2json: 1 and 2 swap keys in one transaction (the second change moves the row the first
    displaced, not the row now at 2); then 1 -> 2 -> 3 -> 1 rotate in one. Each key has the row
    replay gives it, at the head and at every offset after the transaction."""
    swap = (txn(1, 10, change(1, 11, "I", 1, "a"), change(1, 12, "I", 2, "b"))
            + txn(2, 20, change(2, 21, "U", 2, "a", old=1), change(2, 22, "U", 1, "b", old=2)))  # fmt: skip
    rotate = (txn(1, 10, change(1, 11, "I", 1, "a"), change(1, 12, "I", 2, "b"), change(1, 13, "I", 3, "c"))
              + txn(2, 20, change(2, 21, "U", 2, "a", old=1), change(2, 22, "U", 3, "b", old=2),
                    change(2, 23, "U", 1, "c", old=3)))  # fmt: skip
    for name, records, expected in (
        ("swap", swap, {"1": ("b", 1, 3), "2": ("a", 0, 2)}),
        ("rotate", rotate, {"1": ("c", 2, 5), "2": ("a", 0, 3), "3": ("b", 1, 4)}),
    ):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        store = tmp_path / name
        ingest(store, [str(tmp_path / f"{name}.jsonl")])
        state = {r["key"]: json.loads(r["state"])["name"] for r in replay(store).state.to_pylist()}
        assert state == {k: v for k, (v, _n, _i) in expected.items()}, name
        last = max(i for _v, _n, i in expected.values())
        for key, (value, named, moved) in expected.items():
            for at in (None, last):
                rows = logtool.blame(store, key, at_offset=at).to_pylist()
                blamed = {r["field"]: (r["value"], r["offset"]) for r in rows}
                assert blamed == {"id": (key, moved), "name": (json.dumps(value), named)}, (name, key, at)
            answer = logtool.why(store, key, "name")
            assert (answer.value, answer.event["offset"]) == (value, named), (name, key)


def test_the_audit_leaves_rolled_back_transactions_out_as_replay_does(cli: Any, tmp_path: Path) -> None:
    """test_decoding: a prepared transaction that updates key 1, moves it to 2 and inserts 3 is
    rolled back. Blame and why answer as replay does, the move is not followed, and history lists
    none of its events, naming their offsets in its note."""
    (tmp_path / "td.txt").write_text(
        "BEGIN 700\ntable public.t: INSERT: id[integer]:1 v[text]:'a'\nCOMMIT 700 (at 2026-01-01 00:00:00+00)\n"
        "BEGIN 701\ntable public.t: UPDATE: id[integer]:1 v[text]:'rolled-back'\n"
        "table public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 v[text]:'moved'\n"
        "table public.t: INSERT: id[integer]:3 v[text]:'never'\n"
        "PREPARE TRANSACTION 'g', txid 701 (at 2026-01-01 00:00:01+00)\n"
        "ROLLBACK PREPARED 'g', txid 701 (at 2026-01-01 00:00:02+00)\n"
        "BEGIN 702\ntable public.t: UPDATE: id[integer]:1 v[text]:'b'\nCOMMIT 702 (at 2026-01-01 00:00:03+00)\n"
    )
    store = tmp_path / "s"
    ingest(store, [str(tmp_path / "td.txt")], mapping=Mapping(key_fields=("public.t:id",)))
    assert [(r["key"], json.loads(r["state"])) for r in replay(store).state.to_pylist()] == [("1", {"id": 1, "v": "b"})]
    assert {r["field"]: (r["value"], r["offset"]) for r in logtool.blame(store, "1").to_pylist()} == {
        "id": ("1", 0), "v": ('"b"', 4)}  # fmt: skip
    assert {r["field"]: r["offset"] for r in logtool.blame(store, "1", at_offset=3).to_pylist()} == {"id": 0, "v": 0}
    assert logtool.why(store, "1", "v", value="a").event["offset"] == 0
    with pytest.raises(NotFoundError):
        logtool.why(store, "1", "v", value="rolled-back")
    for key in ("2", "3"):
        with pytest.raises(NotFoundError, match="has no state"):
            logtool.blame(store, key)
    history = logtool.history(store, "1")
    assert history.column("offset").to_pylist() == [0, 4]
    assert b"offsets 1, 2 are of rolled-back transactions" in (history.schema.metadata or {})[b"logtool.note"]
    run = cli("history", store, "3", "--format", "jsonl")
    assert (run.code, run.out) == (0, "")
    assert "note: the event at offset 3 is of a rolled-back transaction (txn.aborted)" in run.err


def test_blame_of_a_key_in_two_entities_asks_for_one(cli: Any, stores: dict[str, Path]) -> None:
    run = cli("blame", stores["widgets"], "2")
    assert run.code == 2
    assert run.errors() == ["error: key '2' is in 2 entities: gadgets, widgets"]
    assert "--entity" in run.err
    assert cli("blame", stores["widgets"], "2", "--entity", "gadgets", "-f", "jsonl").code == 0


# --------------------------------------------------------------------------- why


def test_why_customer_42_balance_is_minus_300(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("why", stores["shop"], "42", "balance", "--value", "-300", "--format", "json")
    golden("audit_why_shop_42_balance.json", run.out)
    result = out_json(run)
    assert result["event"]["offset"] == 81 and result["event"]["actor"] == "deploy-bot"
    assert result["value"] == loads_exact("-300.00")
    # The shop log has no causation or correlation ids: it says so and falls back to the txid.
    assert "no causation or correlation id" in result["note"] and "771565" in result["note"]
    assert result["chain"] == [] and result["correlated"] == []
    assert "note:" in run.err


def test_why_without_ids_shows_the_other_events_of_the_transaction(
    cli: Any, stores: dict[str, Path], at_root: None
) -> None:
    # order 1034 was emptied by the truncate at offset 169, so ask for the value it had
    run = cli("why", stores["shop"], "1034", "customer_id", "--value", "42", "--format", "json")
    golden("audit_why_shop_1034_customer_id.json", run.out)
    result = out_json(run)
    assert result["event"]["offset"] == 75
    assert [(e["offset"], e["entity"], e["key"]) for e in result["transaction"]] == [(76, "public.customers", "42")]


def test_why_follows_the_causation_chain_across_accounts(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("why", stores["bank"], "acc-1003", "balance", "--reducer", BANK_REDUCERS, "--format", "json")
    golden("audit_why_bank_acc-1003_balance.json", run.out)
    result = out_json(run)
    assert result["value"] == "-300.00"
    assert (result["event"]["event_id"], result["event"]["actor"]) == ("evt-0067", "sweep-bot")
    assert [(e["event_id"], e["key"]) for e in result["chain"]] == [("evt-0066", "acc-1005")]
    assert [(e["event_id"], e["key"]) for e in result["correlated"]] == [
        ("evt-0068", "acc-1006"),
        ("evt-0069", "acc-1003"),
    ]
    assert result["note"] is None


def test_why_reads_the_ids_of_cloudevents_extensions(tmp_path: Path) -> None:
    """CloudEvents: extension names are lower case, so the correlation extension's causationid
    and correlationid are read, and authcontext's authid as the actor; a cause is named by its id."""
    def ce(i: int, subject: str, **extensions: str) -> str:
        return json.dumps({"specversion": "1.0", "id": f"e{i}", "source": "/bank", "type": "com.acme.moved",
                           "subject": subject, "time": f"2024-03-05T12:00:0{i}Z", **extensions,
                           "data": {"balance": str(i)}})  # fmt: skip

    (tmp_path / "ce.jsonl").write_text("\n".join([
        ce(1, "acc-1", correlationid="c-9", authid="teller-7"),
        ce(2, "acc-2", causationid="e1", correlationid="c-9", authid="sweep-bot"),
        ce(3, "acc-3", causationid="e2", correlationid="c-9"),
        ce(4, "acc-4", correlationid="c-other"),
    ]) + "\n")  # fmt: skip
    ingest(tmp_path / "s", [str(tmp_path / "ce.jsonl")])
    result = logtool.why(tmp_path / "s", "acc-2", "balance")
    event = result.event
    assert (event["offset"], event["event_id"], event["causation_id"], event["correlation_id"], event["actor"]) == (
        1, "e2", "e1", "c-9", "sweep-bot")  # fmt: skip
    assert [(e["offset"], e["key"], e["actor"]) for e in result.chain] == [(0, "acc-1", "teller-7")]
    assert [e["offset"] for e in result.correlated] == [2]
    assert result.note is None


def test_why_reads_the_ids_of_kafka_headers(tmp_path: Path) -> None:
    """kcat: ids and the actor producers put in Kafka headers are read (the last header of a
    name, as Kafka reads it), also as CloudEvents' binary content mode writes them (ce_ prefix)."""
    def record(offset: int, key: str, *headers: str) -> str:
        return json.dumps({"topic": "bank", "partition": 0, "offset": offset, "tstype": "create",
                           "ts": 1709660000000 + offset, "broker": 1, "headers": list(headers), "key": key,
                           "payload": json.dumps({"balance": str(offset)})})  # fmt: skip

    (tmp_path / "k.jsonl").write_text("\n".join([
        record(10, "acc-1", "message_id", "m1", "correlation_id", "c-1", "actor", "teller-7"),
        record(11, "acc-2", "message_id", "m2", "causation_id", "m1", "correlation_id", "stale",
               "correlation_id", "c-1", "actor", "sweep-bot"),
        record(12, "acc-3", "ce_id", "m3", "ce_causationid", "m2", "ce_correlationid", "c-1"),
        record(13, "acc-4", "other", "m2", "correlation_id", "c-2"),
    ]) + "\n")  # fmt: skip
    ingest(tmp_path / "s", [str(tmp_path / "k.jsonl")])
    result = logtool.why(tmp_path / "s", "acc-3", "balance")
    event = result.event
    assert (event["event_id"], event["causation_id"], event["correlation_id"]) == ("m3", "m2", "c-1")
    # the header holding m2 at offset 3 is no event id: the cause is offset 1, then its own cause
    assert [(e["offset"], e["key"], e["actor"]) for e in result.chain] == [(1, "acc-2", "sweep-bot"),
                                                                         (0, "acc-1", "teller-7")]  # fmt: skip
    assert result.correlated == [] and result.note is None
    assert logtool.why(tmp_path / "s", "acc-2", "balance").event["correlation_id"] == "c-1"
    assert logtool.history(tmp_path / "s", "acc-2").column("actor").to_pylist() == ["sweep-bot"]


def test_why_as_a_terminal_table(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("why", stores["bank"], "acc-1003", "balance", "--reducer", BANK_REDUCERS, "--format", "table")
    assert run.code == 0
    golden("audit_why_bank_acc-1003_balance.txt", without_trailing_spaces(run.out))


def test_why_as_a_table_fits_a_terminal_of_80_columns(
    cli: Any, stores: dict[str, Path], at_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console.out, "_width", 80)
    run = cli("why", stores["bank"], "acc-1003", "balance", "--reducer", BANK_REDUCERS, "--format", "table")
    assert run.code == 0
    lines = run.out.splitlines()
    assert max(len(line) for line in lines) <= 80
    # each event a block: its relation, then a line a field (none of them cut into a column of a few letters)
    assert "answer (depth 0)" in lines and "cause (depth 1)" in lines and "correlated" in lines
    assert any(re.fullmatch(r" correlation_id +corr-0051 *", line) for line in lines)
    # the data stay data
    answer = json.loads(cli("why", stores["bank"], "acc-1003", "balance", "--reducer", BANK_REDUCERS,
                            "--format", "jsonl").out.splitlines()[0])  # fmt: skip
    assert answer["relation"] == "answer" and len(answer) > 12


def test_why_value_compares_as_json_values(stores: dict[str, Path], at_root: None) -> None:
    # A number matches a numeric string of the same value (the bank keeps money as strings).
    assert logtool.why(stores["bank"], "acc-1003", "balance", value=-300, reducer=BANK_REDUCERS).event["offset"] == 66
    assert logtool.why(stores["widgets"], "100", "qty", value=7).event["offset"] == 2
    assert logtool.why(stores["shop"], "42", "address.city").event["offset"] == 30
    with pytest.raises(NotFoundError, match="no event set 'balance'"):
        logtool.why(stores["shop"], "42", "balance", value=12)


def test_why_value_matches_a_number_in_mongodbs_extended_json(tmp_path: Path) -> None:
    """A MongoDB decimal (canonical extended JSON) is a number: --value 40 finds 40.00."""
    def change(n: int, price: str) -> str:
        return json.dumps({"_id": {"_data": f"0{n}"}, "operationType": "update" if n else "insert",
                           "clusterTime": {"$timestamp": {"t": 1709670000 + n, "i": 1}},
                           "ns": {"db": "shop", "coll": "items"}, "documentKey": {"_id": 1},
                           **({"updateDescription": {"updatedFields": {"price": {"$numberDecimal": price}},
                                                     "removedFields": []}} if n else
                              {"fullDocument": {"_id": 1, "price": {"$numberDecimal": price}}})})  # fmt: skip

    log = tmp_path / "items.jsonl"
    log.write_text("\n".join(change(n, p) for n, p in enumerate(["40.00", "41.50", "39.99"])) + "\n")
    logtool.ingest(tmp_path / "s", [str(log)])
    assert logtool.why(tmp_path / "s", "1", "price", value=40).event["offset"] == 0
    assert logtool.why(tmp_path / "s", "1", "price", value="41.5").event["offset"] == 1


def test_why_an_event_sourced_log_without_a_reducer_hints_at_one(cli: Any, stores: dict[str, Path]) -> None:
    run = cli("why", stores["bank"], "acc-1003", "balance")
    assert run.code == 1
    assert run.errors() == ["error: key 'acc-1003' has no field 'balance'; its fields: 'v', 'reason'"]
    assert "--reducer" in run.err


def test_why_rows_for_programs(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("why", stores["bank"], "acc-1003", "balance", "--reducer", BANK_REDUCERS, "--format", "csv")
    assert run.code == 0
    rows = run.out.splitlines()
    assert rows[0].startswith("relation,depth,offset,ts,entity,key,op,type,actor,event_id,causation_id,correlation_id")
    assert [r.split(",")[0] for r in rows[1:]] == ["answer", "cause", "correlated", "correlated"]


# --------------------------------------------------------------------------- stats


def _stable(stats: dict[str, Any]) -> dict[str, Any]:
    """The stats without what differs from run to run: the store's path, the commit times."""
    return {**stats, "store": "STORE", "sources": [{**s, "time": "TIME"} for s in stats["sources"]]}


def test_audit_after_compaction_and_redaction_says_what_it_cannot_know(cli: Any, stores: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "shop"
    shutil.copytree(stores["shop"], store)
    logtool.compact(store, until_offset=100)
    logtool.redact(store, ["email"], key="42", entity="public.customers")
    compacted = "compaction (commit 1) removed superseded events below offset 100"
    redacted = 'email redacted (commit 2) in events at offsets 81: the values read "[REDACTED]"'
    for command in (["blame", store, "42"], ["history", store, "42"], ["why", store, "42", "email"]):
        run = cli(*command, "--entity", "public.customers", "--format", "json")
        assert run.code == 0 and compacted in run.err and redacted in run.err, command
    # a field no redaction touched is not said to be redacted; one set after the compaction point
    # is known as it was
    run = cli("why", store, "42", "name", "--entity", "public.customers")
    assert compacted in run.err and "redacted" not in run.err
    run = cli("why", store, "42", "balance", "--entity", "public.customers")
    assert run.code == 0 and "compaction" not in run.err and "offset 107" in run.err
    missing = cli("why", store, "42", "balance", "--value", "1250.40", "--entity", "public.customers")
    assert missing.code == 1 and compacted in missing.err
    assert logtool.audit.caveats(stores["shop"], [81]) == []


def test_why_after_a_head_drop_says_the_changes_before_it_are_gone(cli: Any, stores: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "shop"
    shutil.copytree(stores["shop"], store)
    logtool.purge(store, before_offset=90)
    run = cli("why", store, "42", "balance", "--value", "1250.40", "--entity", "public.customers")
    assert run.code == 1 and "the log's head up to offset 89 was dropped (commit 2)" in run.err
    assert logtool.audit.caveats(store, [120, 130]) == []  # a key whose events all come after the cut lost nothing


# A reducer keeping money as Decimal: its snapshot must give the fold the very values back.
LEDGER_REDUCERS = """\
from decimal import Decimal
Z = {"owner": None, "balance": Decimal("0.00")}
def opened(s, e): return {"owner": e["data"]["owner"], "balance": Decimal("0.00")}
def dep(s, e): s = s or Z; return {**s, "balance": s["balance"] + Decimal(e["data"]["amount"])}
def wd(s, e):  s = s or Z; return {**s, "balance": s["balance"] - Decimal(e["data"]["amount"])}
REDUCERS = {"Opened": opened, "Deposited": dep, "Withdrawn": wd}
"""


def _ledger_after_a_head_drop(tmp_path: Path) -> tuple[Path, str]:
    """One account opened, paid in twice and drawn on; the reducers' snapshot at offset 1, then
    the head before offset 2 dropped (the opening and the first deposit are gone)."""
    from logtool.replay import snapshot

    lines = [("Opened", {"owner": "Ann"}), ("Deposited", {"amount": "100.00"}), ("Deposited", {"amount": "50.00"}),
             ("Withdrawn", {"amount": "30.00"})]  # fmt: skip
    log = tmp_path / "ledger.jsonl"
    log.write_text("".join(json.dumps({"ts": f"2026-01-01T00:00:0{i}Z", "id": "acc-1", "type": t, "body": b}) + "\n"
                           for i, (t, b) in enumerate(lines)))  # fmt: skip
    reducers = tmp_path / "ledger_reducers.py"
    reducers.write_text(LEDGER_REDUCERS)
    store = tmp_path / "ledger"
    mapping = Mapping(key_fields=("id",), entity="account", type_field="type", ts_field="ts", data_field="body")
    with contextlib.chdir(tmp_path):
        ingest(store, [log.name], mapping=mapping)
    snapshot(str(store), at_offset=1, reducer=str(reducers))
    logtool.purge(store, before_offset=2)
    return store, str(reducers)


def test_audit_with_a_reducer_after_a_head_drop_starts_from_its_snapshot(cli: Any, tmp_path: Path) -> None:
    """After a head drop, history, blame and why with a reducer fold from that reducer's snapshot at
    the cut, read back as replay reads it (typed: 100.00 stays a Decimal), as the kv audit does:
    blame credits the fields the dropped events set to the snapshot, and says so on stderr."""
    store, reducers = _ledger_after_a_head_drop(tmp_path)
    n = loads_exact  # a number as the audit writes it: 120.00, not 120.0
    assert json.loads(replay(store, reducer=reducers).state.to_pylist()[0]["state"]) == {"owner": "Ann", "balance": 120}
    dropped = "the log's head up to offset 1 was dropped (commit 3)"
    run = cli("blame", store, "acc-1", "--reducer", reducers, "--format", "json")
    assert run.code == 0 and dropped in run.err
    blamed = {r["field"]: (r["value"], r["offset"], r["position"]) for r in out_json(run)}
    assert blamed == {"owner": ("Ann", 1, "snapshot at offset 1"), "balance": (n("120.00"), 3, "ledger.jsonl:4")}
    run = cli("history", store, "acc-1", "--reducer", reducers, "--format", "jsonl")
    assert run.code == 0 and dropped in run.err
    rows = [loads_exact(line) for line in run.lines()]
    assert [(r["offset"], r["op"], r["position"]) for r in rows] == [
        (1, "read", "snapshot at offset 1"), (2, "event", "ledger.jsonl:3"), (3, "event", "ledger.jsonl:4")]  # fmt: skip
    assert rows[0]["ts"] is None
    assert [r["changes"]["balance"] for r in rows] == [
        {"after": n("100.00")}, {"before": n("100.00"), "after": n("150.00")},
        {"before": n("150.00"), "after": n("120.00")},
    ]  # fmt: skip
    assert rows[0]["changes"]["owner"] == {"after": "Ann"}
    run = cli("why", store, "acc-1", "owner", "--reducer", reducers, "--format", "json")
    assert run.code == 0 and dropped in run.err
    answer = out_json(run)
    assert (answer["event"]["offset"], answer["event"]["data"]) == (1, {"owner": "Ann", "balance": n("100.00")})
    assert "the events before it were dropped" in answer["note"]
    assert logtool.why(store, "acc-1", "balance", reducer=reducers).value == n("120.00")
    # an offset before the cut: what was there is not known
    with pytest.raises(NotFoundError, match="no state at offset 0"):
        logtool.blame(store, "acc-1", at_offset=0, reducer=reducers)


def test_why_of_the_readme_bank_after_its_head_drop_answers_as_replay(tmp_path: Path) -> None:
    """The README's recipe: the reducers' snapshot at 39, the head before 40 dropped; why still
    finds the TransferSent at offset 66 behind acc-1003's balance, which replay gives."""
    from logtool.replay import snapshot

    store = tmp_path / "bank"
    with contextlib.chdir(ROOT):
        ingest(store, ["sample_logs/bank_events.jsonl"], mapping=BANK)
    reducers = str(ROOT / BANK_REDUCERS)
    snapshot(str(store), at_offset=39, reducer=reducers)
    logtool.purge(store, before_offset=40)
    state = replay(store, key="acc-1003", reducer=reducers).state.to_pylist()[0]["state"]
    answer = logtool.why(store, "acc-1003", "balance", reducer=reducers)
    assert (answer.value, answer.event["offset"], json.loads(state)["balance"]) == ("-300.00", 66, "-300.00")
    blamed = {r["field"]: r["offset"] for r in logtool.blame(store, "acc-1003", reducer=reducers).to_pylist()}
    assert blamed == {"owner": 39, "currency": 39, "balance": 66, "status": 68}


def test_audit_after_a_head_drop_never_starts_from_another_reducers_snapshot(cli: Any, tmp_path: Path) -> None:
    """The snapshot at the cut is of one reducer: a reducer changed since cannot know the state it
    held (an error saying so, not a fold from nothing), and the kv audit does not read the
    reducer's snapshot as rows of its own (the kv one at the cut holds no domain events' rows)."""
    store, reducers = _ledger_after_a_head_drop(tmp_path)
    Path(reducers).write_text(LEDGER_REDUCERS + "# changed\n")
    for command in ("history", "blame"):
        run = cli(command, store, "acc-1", "--reducer", reducers)
        assert run.code == 2 and run.out == "", command
        assert run.errors() == [
            "error: the events of key 'acc-1' of account up to offset 1 were dropped, and the snapshot stored there "
            f"holds its state as another reducer made it ({_fingerprint_at(store, 1)}): its state with the reducer "
            f"{reducers} cannot be known"
        ]
    with pytest.raises(UsageError, match="cannot be known"):
        logtool.why(store, "acc-1", "balance", reducer=reducers)
    history = logtool.history(store, "acc-1").to_pylist()
    assert [(h["offset"], h["op"]) for h in history] == [(2, "event"), (3, "event")]


def _fingerprint_at(store: Path, offset: int) -> str:
    """The fingerprint of the reducer (not kv) whose snapshot is at this offset."""
    from logtool.store import Store

    return next(s["reducer"] for s in Store.open(store).state().of_kind("snapshot")
                if s["offset"] == offset and s["reducer"] != "kv/1")  # fmt: skip


def test_stats_of_the_shop(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("stats", stores["shop"], "--by", "minute", "--format", "json")
    result = _stable(out_json(run))
    golden("audit_stats_shop.json", json.dumps(result, indent=2, default=str) + "\n")
    assert (result["events"], result["first_offset"], result["last_offset"]) == (174, 0, 173)
    assert (result["first_ts"], result["last_ts"]) == ("2026-03-01T14:00:00.464000Z", "2026-03-01T14:09:55.640000Z")
    ops = {(r["entity"], r["op"]): r["events"] for r in result["ops"]}
    assert ops[("public.customers", "patch")] == 25 and ops[("public.orders", "truncate")] == 1
    assert sum(r["events"] for r in result["timeline"]) == 174 and len(result["timeline"]) == 10
    assert result["sources"][0]["file"] == "sample_logs/shop_cdc.jsonl"


def test_stats_histogram_on_a_terminal(cli: Any, stores: dict[str, Path], at_root: None) -> None:
    run = cli("stats", stores["shop"], "--by", "minute", "--format", "table")
    assert run.code == 0
    text = without_trailing_spaces(run.out.replace(str(stores["shop"]), "STORE"))
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z(?=\s*│ sample_logs)", "TIME" + " " * 23, text)
    golden("audit_stats_shop.txt", text)
    assert "events per minute" in run.out and "█" in run.out


def test_stats_counts_quarantine_and_narrows_to_an_entity(stores: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "broken"
    with contextlib.chdir(ROOT):
        ingest(store, ["sample_logs/broken.jsonl"], mapping=SHOP, on_error="quarantine")
    result = logtool.stats(store)
    assert (result.summary["events"], result.summary["quarantined"]) == (8, 5)
    assert result.tables["quarantine"].to_pylist()[0]["records"] == 5
    orders = logtool.stats(stores["shop"], entity="public.orders", by="day", top=3)
    assert orders.summary["events"] == 100
    assert orders.tables["timeline"].column("events").to_pylist() == [100]
    assert orders.tables["top_keys"].num_rows == 3
    with pytest.raises(NotFoundError, match="entity 'public.order' has no events in this store"):
        logtool.stats(stores["shop"], entity="public.order")  # a typo: an empty report would look like no events


def test_an_entity_no_event_is_of_is_named_as_such_not_as_a_key_not_found(cli: Any, stores: dict[str, Path]) -> None:
    """`history STORE 42 --entity customers` (for public.customers) said "key '42' not found in
    customers": the customer does exist, the entity was mistyped. stats and replay name the
    store's entities; history, blame and why do too."""
    for command in (["history", "42"], ["blame", "42"], ["why", "42", "balance"]):
        run = cli(*command[:1], stores["shop"], *command[1:], "--entity", "customers")
        assert (run.code, run.out) == (1, ""), run.err
        assert run.errors() == ["error: entity 'customers' has no events in this store"], run.err
        assert "hint: its entities: 'public.customers', 'public.orders'" in run.err
    run = cli("history", stores["shop"], "4242", "--entity", "public.customers")  # a key never written: as before
    assert run.errors() == ["error: key '4242' not found in public.customers"] and run.code == 1


def test_stats_rows_for_programs(cli: Any, stores: dict[str, Path]) -> None:
    run = cli("stats", stores["shop"], "--format", "jsonl")
    assert run.code == 0
    sections = [json.loads(line)["section"] for line in run.lines()]
    assert sorted(set(sections)) == ["entities", "ops", "sources", "timeline", "top_keys"]


# --------------------------------------------------------------------------- errors and the API


@pytest.mark.parametrize("command", [["history"], ["blame"], ["why", "balance"]])
def test_an_unknown_key_is_one_line_and_exit_1(cli: Any, stores: dict[str, Path], command: list[str]) -> None:
    args = [command[0], stores["shop"], "4242", *command[1:]]
    run = cli(*args)
    assert run.code == 1
    assert run.out == ""
    assert run.err.splitlines() == ["error: key '4242' not found"]


def test_a_missing_store_is_trouble(cli: Any, tmp_path: Path) -> None:
    run = cli("history", tmp_path / "nowhere", "42")
    assert run.code == 2 and run.errors() == [f"error: {tmp_path / 'nowhere'}: no such store"]


def test_the_library_mirrors_the_commands() -> None:
    for name in ("history", "blame", "why", "stats"):
        assert name in logtool.__all__
        assert getattr(logtool, name).__module__ == "logtool.audit"


# Field comparison and change text: the fast paths agree with the canonical forms and dumps_exact.
# The modules, not the verbs the package binds over some of their names.
audit = importlib.import_module("logtool.audit")
canon = importlib.import_module("logtool.replay")._canon

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["1", "1.10", "a", "é\u0001"]),
    st.sampled_from(["1", "1.0", "1.10", "1.1", "-0", "2e0"]).map(RawNumber),
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x", "y", "z"]), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(_VALUES, _VALUES)
def test_field_values_compare_as_their_canonical_forms(a: Any, b: Any) -> None:
    assert audit._equal(a, b) == (canon(a) == canon(b))
    assert audit._equal(a, a)
    assert audit._same(a, b) == (canon(a) == canon(b))


def test_a_nested_boolean_replacing_a_number_is_a_change() -> None:
    assert not audit._same({"x": 1}, {"x": True})
    assert not audit._same([RawNumber("1.5")], ["1.5"])
    assert audit._same({"x": RawNumber("1.10")}, {"x": RawNumber("1.1")})


def test_a_string_and_a_number_written_alike_keep_their_own_texts() -> None:
    before = {"a": "1", "b": ["1"], "c": {"x": RawNumber("1")}}
    after = {"a": RawNumber("1"), "b": [RawNumber("1")], "c": {"x": "1"}}
    assert audit._changes(before, after) == (
        '{"a":{"before":"1","after":1},"b":{"before":["1"],"after":[1]},"c":{"before":{"x":1},"after":{"x":"1"}}}'
    )
    before = {"n": RawNumber("1.10"), "o": {"p": [RawNumber("2"), "s"]}, "t": True}
    after = {"n": RawNumber("1.1"), "o": {"p": [2, "s"]}, "t": 1}
    assert audit._changes(before, after) == '{"t":{"before":true,"after":1}}'


@pytest.mark.parametrize("command", [["history"], ["blame"], ["replay", "--key"]])
def test_a_key_of_a_keyless_entity_is_said_to_be_keyless(
    cli: Any, new_store: Any, tmp_path: Path, write_lines: Any, command: list[str]
) -> None:
    """A key no event holds, where the entity's rows all went in without a key (Maxwell's default
    output): the error says so in one line, and the hint how to key them."""
    path = write_lines(tmp_path / "x.jsonl", [json.dumps(r) for r in [
        {"database": "shop", "table": "u", "type": "insert", "ts": 1709650040, "xid": 1, "data": {"id": 1, "n": "a"}},
        {"database": "shop", "table": "u", "type": "update", "ts": 1709650041, "xid": 2, "data": {"id": 1, "n": "b"},
         "old": {"n": "a"}},
    ]])  # fmt: skip
    store = new_store()
    assert cli("-q", "ingest", store, path).code == 0
    hint = ("hint: if it has a key, ingest the input into a new store with --key-field shop.u:COLUMN (its key "
            "column), or run Maxwell with output_primary_keys and output_primary_key_columns")  # fmt: skip
    missing = "has no state at head" if command[0] == "replay" else "not found"
    for entity, rows in (["--entity", "shop.u"], "its rows"), ([], "the rows of shop.u"):
        run = cli(command[0], store, *command[1:], "1", *entity)
        assert run.code == 1 and run.out == ""
        where = " in shop.u" if entity and command[0] != "replay" else ""
        assert " ".join(run.err.split()) == (
            f"error: key '1' {missing}{where}: {rows} went in without a key (replay keeps them as a multiset, "
            f"which no key finds) {hint}"
        )
