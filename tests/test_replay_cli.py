"""`logtool replay` and `logtool snapshot` on the command line: streams, formats, exit codes, files,
and golden outputs of the sample logs.

Golden files live in tests/golden/; regenerate them with ``LOGTOOL_REGEN_GOLDEN=1 pytest
tests/test_replay_cli.py`` and read the diff before committing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from test_replay import BANK_MAPPING, BANK_REDUCERS, PEOPLE_MAPPING, SAMPLES, SHOP_MAPPING, write_events, write_module

from logtool import replay
from logtool.ingest import ingest
from logtool.store import Store

GOLDEN = Path(__file__).resolve().parent / "golden"
REGEN = os.environ.get("LOGTOOL_REGEN_GOLDEN") == "1"
DIGEST = re.compile(r"digest ([0-9a-f]{64})")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("shop") / "store"
    ingest(store, [str(SAMPLES / "shop_cdc.jsonl")], mapping=SHOP_MAPPING)
    return store


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("bank") / "store"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    return store


@pytest.fixture(scope="module")
def people(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("people") / "store"
    ingest(store, [str(SAMPLES / "people_pii.jsonl")], mapping=PEOPLE_MAPPING)
    return store


def parse(text: str) -> Any:
    return json.loads(text, parse_float=Decimal)


def digest_of(err: str) -> str:
    found = DIGEST.findall(err)
    assert len(found) == 1, err
    return found[0]


def golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME, or write it under LOGTOOL_REGEN_GOLDEN=1."""
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with LOGTOOL_REGEN_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- streams and formats


def test_stdout_holds_only_data_and_the_digest_is_on_stderr(cli: Any, shop: Path) -> None:
    run = cli("replay", shop, "--format", "jsonl")
    assert run.code == 0
    lines = run.lines()
    assert len(lines) == 34
    for line in lines:
        row = parse(line)
        assert list(row) == ["entity", "key", "state"] and isinstance(row["state"], dict)
    assert "digest" not in run.out
    assert digest_of(run.err) == replay(shop).digest
    assert "state at offset 173: 34 rows" in run.err


def test_into_a_pipe_the_default_is_json_lines(cli: Any, shop: Path) -> None:
    assert (
        cli("replay", shop, "--entity", "public.orders").out
        == cli("replay", shop, "--entity", "public.orders", "--format", "jsonl").out
    )


def test_json_format_is_one_document_with_the_summary(cli: Any, shop: Path) -> None:
    run = cli("replay", shop, "--format", "json", "--at-offset", "100", "--entity", "public.orders")
    assert run.code == 0
    doc = parse(run.out)
    expected = replay(shop, at_offset=100, entity="public.orders")
    assert doc["offset"] == 100 and doc["rows"] == expected.state.num_rows == len(doc["state"])
    assert doc["digest"] == expected.digest == digest_of(run.err)
    assert doc["events_applied"] == expected.events and doc["reducer"] == "kv/1" and doc["snapshot"] is None
    assert doc["warnings"] == []
    assert {r["entity"] for r in doc["state"]} == {"public.orders"}


def test_csv_format_has_a_header_and_the_state_as_json(cli: Any, shop: Path) -> None:
    run = cli("replay", shop, "--format", "csv", "--entity", "public.customers", "--key", "12")
    assert run.code == 0
    records = list(csv.reader(io.StringIO(run.out)))
    assert records[0] == ["entity", "key", "state"]
    assert len(records) == 2 and records[1][:2] == ["public.customers", "12"]
    assert parse(records[1][2])["address"] is None


def test_table_format_is_for_people(cli: Any, shop: Path) -> None:
    run = cli("replay", shop, "--format", "table", "--entity", "public.orders")
    assert run.code == 0
    assert "state at offset 173" in run.out and "1053" in run.out and "entity" in run.out
    assert "digest" not in run.out and DIGEST.search(run.err)


def test_quiet_keeps_the_data_and_drops_the_status(cli: Any, shop: Path) -> None:
    run = cli("-q", "replay", shop, "--entity", "public.orders")
    assert run.code == 0 and len(run.lines()) == 4 and run.err == ""


def test_parquet_without_an_output_directory_is_a_usage_error(cli: Any, shop: Path) -> None:
    run = cli("replay", shop, "--format", "parquet")
    assert run.code == 2 and run.out == ""
    assert run.errors() == ["error: --format parquet writes files"]
    assert "-o DIR" in run.err


def test_output_directory_gets_one_file_per_entity(cli: Any, shop: Path, tmp_path: Path) -> None:
    run = cli("replay", shop, "-o", tmp_path / "pq")  # parquet unless told otherwise
    assert run.code == 0 and run.out == ""
    assert sorted(p.name for p in (tmp_path / "pq").glob("*.parquet")) == ["public.customers.parquet", "public.orders.parquet"]
    assert run.err.count("wrote ") == 2 and DIGEST.search(run.err)
    customers = pq.read_table(tmp_path / "pq" / "public.customers.parquet")
    assert customers.num_rows == 30 and customers.schema.names[:3] == ["key", "id", "name"]
    by_key = {r["key"]: r for r in customers.to_pylist()}
    assert by_key["77"]["balance"] == Decimal("123456789012345678901234567.891")
    assert by_key["7"]["external_id"] == 9007199254740993
    run = cli("replay", shop, "--format", "csv", "-o", tmp_path / "csv", "--entity", "public.orders")
    assert run.code == 0 and run.out == ""
    assert [p.name for p in (tmp_path / "csv").glob("*.csv")] == ["public.orders.csv"]
    assert (tmp_path / "csv" / "public.orders.csv").read_text().startswith("key,id,customer_id,status,total,items\n")


def test_unknown_key_exits_1(cli: Any, shop: Path) -> None:
    run = cli("replay", shop, "--key", "no-such-key")
    assert run.code == 1 and run.out == ""
    assert run.errors() == ["error: key 'no-such-key' has no state at head"]


def test_bad_arguments_exit_2(cli: Any, shop: Path, tmp_path: Path) -> None:
    for args in (
        ["--at-offset", "1", "--at-time", "2026-03-01T14:00:00Z"],
        ["--at-time", "after lunch"],
        ["--at-position", "0/1"],  # the shop log carries no source positions
        ["--reducer", str(tmp_path / "nope.py")],
    ):
        run = cli("replay", shop, *args)
        assert run.code == 2 and run.out == "", args
        assert len(run.errors()) == 1, (args, run.err)
    run = cli("replay", tmp_path / "missing")
    assert run.code == 2 and "no such store" in run.err


# --------------------------------------------------------------------------- targets, reducers, snapshots


def test_targets_on_the_command_line(cli: Any, shop: Path, tmp_path: Path) -> None:
    run = cli("replay", shop, "--at-time", "2026-03-01T14:03:00Z", "--entity", "public.customers", "--key", "42")
    assert run.code == 0
    (row,) = map(parse, run.lines())
    assert row["state"]["balance"] == Decimal("1181.77")
    run = cli("replay", shop, "--at-offset", "81", "--entity", "public.customers", "--key", "42")
    assert parse(run.out)["state"]["balance"] == Decimal("-300.00")
    assert "state at offset 81" in run.err
    store = write_events(tmp_path / "lsn", [
        {"key": 1, "op": "insert", "data": {"v": 1}, "txn": {"id": "1", "position": "0/9F00000"}},
        {"key": 1, "op": "update", "data": {"v": 2}, "txn": {"id": "2", "position": "0/10000000"}},
    ])  # fmt: skip
    run = cli("replay", store, "--at-position", "0/A000000")
    assert [parse(line)["state"] for line in run.lines()] == [{"v": 1}]


def test_reducer_on_the_command_line(cli: Any, bank: Path) -> None:
    run = cli("replay", bank, "--reducer", BANK_REDUCERS, "--format", "jsonl")
    assert run.code == 0
    balances = {r["key"]: r["state"]["balance"] for r in map(parse, run.lines())}
    assert balances == {
        "acc-1001": "2128.33", "acc-1002": "2494.59", "acc-1003": "-300.00",
        "acc-1004": "0.00", "acc-1005": "3142.94", "acc-1006": "1627.94",
    }  # fmt: skip


def test_a_reducer_that_raises_exits_2_naming_the_offset(cli: Any, tmp_path: Path) -> None:
    module = write_module(
        tmp_path / "strict.py",
        """
        def step(state, event):
            raise KeyError("balance")
        REDUCERS = {"Step": step}
    """,
    )
    store = write_events(tmp_path / "s", [{"key": "a", "op": "event", "type": "Step", "data": {}}])
    run = cli("replay", store, "--reducer", module)
    assert run.code == 2 and run.out == ""
    (error,) = run.errors()
    assert "offset 0" in error and "KeyError" in error


def test_snapshot_command_and_replay_from_it(cli: Any, shop: Path, tmp_path: Path) -> None:
    store = tmp_path / "shop"
    shutil.copytree(shop, store)
    fresh = cli("replay", store, "--format", "jsonl")
    run = cli("snapshot", store, "--at-offset", "150")
    assert run.code == 0 and run.out == ""
    assert "snapshot at offset 150" in run.err
    used = cli("replay", store, "--format", "jsonl")
    assert "from the snapshot at offset 150" in used.err
    assert used.out == fresh.out and digest_of(used.err) == digest_of(fresh.err)
    bypass = cli("replay", store, "--no-snapshots")
    assert "snapshot" not in bypass.err and digest_of(bypass.err) == digest_of(fresh.err)
    earlier = cli("replay", store, "--at-offset", "149")
    assert "snapshot" not in earlier.err


def test_a_snapshot_asked_for_again_says_none_was_taken(cli: Any, tmp_path: Path) -> None:
    store = write_events(tmp_path / "s", [{"key": 1, "op": "insert", "data": {}}, {"key": 2, "op": "insert", "data": {}}])
    first = cli("snapshot", store, "--at-offset", "1")
    assert first.code == 0 and "already" not in first.err
    again = cli("snapshot", store, "--at-offset", "1")
    assert again.code == 0 and "snapshot at offset 1: already there, none taken;" in again.err
    assert len(Store.open(store).state().of_kind("snapshot")) == 1


def test_snapshot_every_is_a_store_setting(cli: Any, tmp_path: Path) -> None:
    store = write_events(tmp_path / "s", [{"key": 1, "op": "insert", "data": {}}])
    run = cli("snapshot", store, "--every", "1000")
    assert run.code == 0 and "every 1000 events" in run.err
    assert Store.open(store).state().config["snapshot_every"] == 1000
    assert Store.open(store).state().of_kind("snapshot") == []


def test_snapshot_every_takes_snapshots_after_ingests(cli: Any, tmp_path: Path) -> None:
    store = write_events(tmp_path / "s", [{"key": 1, "op": "insert", "data": {}}])
    assert cli("snapshot", store, "--every", "5").code == 0
    log = tmp_path / "more.jsonl"
    log.write_text("".join(json.dumps({"id": i, "op": "insert", "data": {"i": i}}) + "\n" for i in range(12)))
    assert cli("ingest", store, log, "--key-field", "id", "--op-field", "op", "--data-field", "data").code == 0
    assert Store.open(store).state().of_kind("snapshot") != []


def test_snapshot_every_with_a_reducer_takes_the_reducers_snapshots(cli: Any, tmp_path: Path) -> None:
    lines = (SAMPLES / "bank_events.jsonl").read_text().splitlines(keepends=True)
    first, rest = tmp_path / "b1.jsonl", tmp_path / "b2.jsonl"
    first.write_text("".join(lines[:40]))
    rest.write_text("".join(lines[40:]))
    store = tmp_path / "bank"
    ingest(store, [str(first)], mapping=BANK_MAPPING)
    run = cli("snapshot", store, "--every", "10", "--reducer", BANK_REDUCERS)
    assert run.code == 0 and f"with reducer {BANK_REDUCERS.resolve()}" in run.err
    ingest(store, [str(rest)], mapping=BANK_MAPPING)
    (taken,) = Store.open(store).state().of_kind("snapshot")
    assert taken["offset"] == len(lines) - 1 and taken["reducer"] != "kv/1"
    used = replay(store, reducer=str(BANK_REDUCERS))
    assert used.snapshot == len(lines) - 1 and used.digest == replay(store, reducer=str(BANK_REDUCERS), use_snapshots=False).digest
    broken = cli("snapshot", store, "--every", "10", "--reducer", tmp_path / "nope.py")
    assert broken.code == 2 and Store.open(store).state().config["snapshot_reducer"] == str(BANK_REDUCERS.resolve())


def test_an_automatic_snapshot_whose_reducer_is_gone_is_a_warning(cli: Any, tmp_path: Path) -> None:
    reducer = Path(shutil.copy(BANK_REDUCERS, tmp_path / "bank_rules.py"))
    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    assert cli("snapshot", store, "--every", "1", "--reducer", reducer).code == 0
    reducer.unlink()
    more = tmp_path / "more.jsonl"
    more.write_text('{"ts": "2026-03-02T00:00:00Z", "stream": "account", "account_id": "acc-1001", '
                    '"type": "AccountClosed", "version": 1, "body": {}}\n')  # fmt: skip
    args = ["--key-field", "account_id", "--entity-field", "stream", "--type-field", "type", "--ts-field", "ts",
            "--data-field", "body"]  # fmt: skip
    run = cli("ingest", store, more, *args)
    assert run.code == 0 and "1 ingested" in run.err
    assert "warning: no automatic snapshot" in run.err and str(reducer) in run.err and run.out == ""
    assert Store.open(store).state().of_kind("snapshot") == []
    # not a word where none is due
    shutil.copy(BANK_REDUCERS, reducer)
    calm = tmp_path / "calm"
    ingest(calm, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    assert cli("snapshot", calm, "--every", "1000", "--reducer", reducer).code == 0
    reducer.unlink()
    quiet = cli("ingest", calm, more, *args)
    assert quiet.code == 0 and "1 ingested" in quiet.err and "warning" not in quiet.err


def test_snapshot_every_with_a_reducer_named_as_a_module_keeps_where_it_is_imported_from(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a later ingest run from elsewhere still finds it; a replay naming it either way uses the snapshot
    shutil.copy(BANK_REDUCERS, tmp_path / "bank_rules.py")
    store = tmp_path / "bank"
    ingest(store, [str(SAMPLES / "bank_events.jsonl")], mapping=BANK_MAPPING)
    monkeypatch.chdir(tmp_path)
    run = cli("snapshot", store, "--every", "10", "--reducer", "bank_rules")
    assert run.code == 0 and f"with reducer bank_rules (imported from {tmp_path.resolve()})" in run.err
    monkeypatch.chdir(SAMPLES)
    more = tmp_path / "more.jsonl"
    more.write_text('{"ts": "2026-03-02T00:00:00Z", "stream": "account", "account_id": "acc-1001", "type": "AccountClosed", '
                    '"version": 1, "body": {}}\n' * 1)  # fmt: skip
    ingest(store, [str(more)], mapping=BANK_MAPPING)
    assert Store.open(store).state().of_kind("snapshot") != []
    monkeypatch.chdir(tmp_path)
    assert replay(store, reducer="bank_rules").snapshot is not None


def test_snapshot_every_with_a_reducer_in_a_package_imports_it_as_replay_does(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reducer named as a module of a package keeps its package for the automatic snapshots:
    one with relative imports is accepted, one importing its package by name too, and a later
    ingest run from elsewhere imports it by its name from the directory it was found from, and
    takes the snapshots that replay then uses."""
    more = tmp_path / "more.jsonl"
    more.write_text('{"id": "a", "type": "Dep", "body": {"amt": "1"}}\n' * 2)
    for package, imports in (("bankpkg", "from .money import add"), ("bank2", "from bank2.money import add")):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        (tmp_path / package / "money.py").write_text("from decimal import Decimal\ndef add(a, b): return Decimal(a) + Decimal(b)\n")
        write_module(tmp_path / package / "reducers.py", f"""
            {imports}
            def dep(state, event):
                return {{"bal": add((state or {{}}).get("bal", 0), event["data"]["amt"])}}
            REDUCERS = {{"Dep": dep}}
        """)
        store = write_events(tmp_path / f"{package}.store", [{"key": "a", "op": "event", "type": "Dep", "data": {"amt": "10"}}])
        monkeypatch.chdir(tmp_path)
        run = cli("snapshot", store, "--every", "2", "--reducer", f"{package}.reducers")
        assert run.code == 0 and f"with reducer {package}.reducers (imported from {tmp_path.resolve()})" in run.err
        monkeypatch.chdir(SAMPLES)
        added = cli("ingest", store, more, "--key-field", "id", "--entity", "t", "--type-field", "type", "--data-field", "body")
        assert added.code == 0 and "warning" not in added.err
        (taken,) = Store.open(store).state().of_kind("snapshot")
        assert taken["offset"] == 2
        monkeypatch.chdir(tmp_path)
        used = replay(store, reducer=f"{package}.reducers")
        assert used.snapshot == 2 and json.loads(used.state.column("state")[0].as_py()) == {"bal": 12}


def test_a_stale_snapshot_is_a_warning_on_stderr(cli: Any, bank: Path, tmp_path: Path) -> None:
    store = tmp_path / "bank"
    shutil.copytree(bank, store)
    reducer = Path(shutil.copy(BANK_REDUCERS, tmp_path / "bank_reducers.py"))
    assert cli("snapshot", store, "--at-offset", "40", "--reducer", reducer).code == 0
    reducer.write_text(reducer.read_text() + "\n# changed\n")
    run = cli("-q", "replay", store, "--reducer", reducer)
    assert run.code == 0 and len(run.lines()) == 6
    assert "warning:" in run.err and "snapshot at offset 40" in run.err  # warnings stay under -q


def test_help_has_examples(cli: Any) -> None:
    for command in ("replay", "snapshot"):
        run = cli(command, "--help")
        assert run.code == 0 and "Examples" in run.out and f"logtool {command}" in run.out


def test_the_installed_entry_point(shop: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "logtool.cli", *args], capture_output=True, text=True, timeout=120)

    done = run("replay", str(shop), "--entity", "public.orders")
    assert done.returncode == 0
    assert [parse(line)["key"] for line in done.stdout.splitlines()] == ["1050", "1051", "1052", "1053"]
    assert DIGEST.search(done.stderr)
    missing = run("replay", str(shop), "--key", "no-such-key")
    assert missing.returncode == 1 and missing.stdout == "" and "error:" in missing.stderr


# --------------------------------------------------------------------------- golden outputs


def test_golden_shop_head(cli: Any, shop: Path) -> None:
    golden("replay_shop_head.jsonl", cli("replay", shop, "--format", "jsonl").out)


def test_golden_shop_orders_at_the_bad_deploy(cli: Any, shop: Path) -> None:
    run = cli("replay", shop, "--format", "jsonl", "--entity", "public.orders", "--at-time", "2026-03-01T14:03:00Z")
    golden("replay_shop_orders_1403.jsonl", run.out)


def test_golden_shop_customers_csv(cli: Any, shop: Path, tmp_path: Path) -> None:
    run = cli("replay", shop, "--format", "csv", "-o", tmp_path, "--entity", "public.customers")
    assert run.code == 0
    golden("replay_shop_customers.csv", (tmp_path / "public.customers.csv").read_text(encoding="utf-8"))


def test_golden_bank_head(cli: Any, bank: Path) -> None:
    golden("replay_bank_head.jsonl", cli("replay", bank, "--reducer", BANK_REDUCERS, "--format", "jsonl").out)


def test_golden_people_head(cli: Any, people: Path) -> None:
    golden("replay_people_head.jsonl", cli("replay", people, "--format", "jsonl").out)


def test_an_export_says_which_earlier_file_it_removed(cli: Any, tmp_path: Path) -> None:
    """An export of the whole state removes the earlier export's file of an entity with no rows
    left: it did so without a word, and a file an incident's report pointed at was gone."""
    store = tmp_path / "store"
    ingest(store, [str(SAMPLES / "shop_cdc.jsonl")], mapping=SHOP_MAPPING)
    out = tmp_path / "state"
    assert cli("replay", store, "--format", "csv", "-o", out).code == 0
    assert cli("purge", store, "--entity", "public.orders", "--yes").code == 0
    run = cli("replay", store, "--format", "csv", "-o", out)
    assert run.code == 0 and run.out == "", run.err
    assert f"removed {out / 'public.orders.csv'} (an earlier export's file of an entity with no rows left)" in run.err
    assert f"wrote {out / 'public.customers.csv'}" in run.err
    assert sorted(p.name for p in out.iterdir()) == [".logtool-export.json", "public.customers.csv"]
    again = cli("replay", store, "--format", "csv", "-o", out)  # nothing left to remove: nothing said
    assert again.code == 0 and "removed" not in again.err


@pytest.mark.parametrize("where", ["a file", "the store"])
def test_an_export_directory_that_cannot_be_is_refused_before_the_replay(cli: Any, shop: Path, tmp_path: Path, where: str) -> None:
    # refused before replaying, not after: on a large log the replay would be thrown away
    (tmp_path / "a file").write_text("x")
    out = tmp_path / "a file" if where == "a file" else shop / "out"
    run = cli("replay", shop, "--format", "csv", "-o", out)
    assert run.code == 2 and run.out == ""
    assert ("is a file, not a directory" if where == "a file" else "is inside the store") in run.err
    assert "state at" not in run.err and "digest" not in run.err
    assert not (shop / "out").exists()
