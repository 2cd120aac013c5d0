"""Benchmark ingest of real CDC formats (Debezium, wal2json v2) against DuckDB's read_json of the same file.

    python bench/formats.py [--events 1m] [--runs 3] [--only debezium,wal2json] [--record bench/RESULTS.md]

The first N events of the generated log (bench/data/cdc-1m.jsonl) are converted, seeded, into what
a PostgreSQL source would have sent for the same writes: Debezium change events and wal2json
format-version 2 records (bench/data/debezium-SIZE.jsonl, wal2json-SIZE.jsonl). The converted
files are checked once by ingesting them (untimed); then ``logtool ingest FILE --format F`` and the
anchor ``COPY (SELECT * FROM read_json(FILE)) TO x.parquet`` are measured in fresh processes with
bench/run.py's machinery. See bench/README.md, "Format ingest".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import run as runner  # noqa: E402
from generate import generate, parse_count  # noqa: E402

from logtool.formats.base import dumps_exact, parse_ts  # noqa: E402

DATA = runner.DATA
FORMATS = ("debezium", "wal2json")
#: Bump when the converted output changes, so files converted by an older version are redone.
CONVERTER_VERSION = 1

# --------------------------------------------------------------------------- the source database

DB = "shop"
#: The generated log's columns as PostgreSQL columns (wal2json names the types).
COLUMN_TYPES = {
    "id": "integer",
    "name": "text",
    "email": "text",
    "balance": "numeric(12,2)",
    "tags": "text[]",
    "address": "jsonb",
    "updated_at": "timestamp with time zone",
}
KEY = "id"
#: The first change's LSN: 0/FF000000, so the stream crosses into 1/... after ~16 MB of WAL, where
#: comparing LSNs as text goes wrong.
LSN0 = (1 << 32) - (1 << 24)
#: WAL bytes a change takes (drawn per change, 8-byte aligned), and a commit record.
CHANGE_WAL = (120, 480)
COMMIT_WAL = 48
#: Debezium's connector sees a commit this many ms after it happened (drawn per transaction).
CONNECTOR_LAG_MS = (2, 250)


def _lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def _pg_timestamptz(micros: int) -> str:
    """Epoch µs as PostgreSQL prints a timestamptz in UTC: trailing zeros of the fraction dropped."""
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    fraction = f"{t.microsecond:06d}".rstrip("0")
    return f"{t:%Y-%m-%d %H:%M:%S}" + (f".{fraction}" if fraction else "") + "+00"


def _jsonb_text(value: Any) -> str:
    """A JSON value as PostgreSQL prints a jsonb: keys shortest first, then bytewise; ', ' and ': '."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return "{" + ", ".join(f"{dumps_exact(k)}: {_jsonb_text(value[k])}" for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_jsonb_text(v) for v in value) + "]"
    return dumps_exact(value)


_ARRAY_SPECIAL = set('{},"\\ \t\n\r')


def _pg_array_text(values: list[Any]) -> str:
    """A text[] as PostgreSQL prints it: ``{a,"b c",NULL}``."""

    def element(v: Any) -> str:
        if v is None:
            return "NULL"
        s = str(v)
        if s == "" or s.upper() == "NULL" or _ARRAY_SPECIAL & set(s):
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return s

    return "{" + ",".join(element(v) for v in values) + "}"


def _pg_value(name: str, value: Any) -> Any:
    """A row value as wal2json writes it: numbers bare, everything else as PostgreSQL's text."""
    if value is None:
        return None
    kind = COLUMN_TYPES.get(name)
    if kind == "text[]" and isinstance(value, list):
        return _pg_array_text(value)
    if kind == "jsonb":
        return _jsonb_text(value)
    if kind == "timestamp with time zone" and isinstance(value, str):
        return _pg_timestamptz(parse_ts(value))
    return value


def _debezium_value(name: str, value: Any) -> Any:
    """A row value as Debezium's JSON converter writes it without schemas (decimal.handling.mode
    double, time.precision.mode adaptive): text[] as a JSON array, jsonb as its text
    (``io.debezium.data.Json``), timestamptz as ISO-8601 text (``ZonedTimestamp``)."""
    if value is None:
        return None
    if COLUMN_TYPES.get(name) == "jsonb":
        return _jsonb_text(value)
    return value


# --------------------------------------------------------------------------- converting


@dataclass
class Change:
    """One write of the generated log, with the full row the database holds after it."""

    table: str  # schema.table
    op: str  # insert | update | delete (a patch is an update of the whole row)
    key: Any
    row: dict[str, Any] | None  # the row after the change (None for a delete)
    lsn: int


@dataclass
class Txn:
    txid: int
    ts_us: int
    changes: list[Change]
    commit_lsn: int
    last_commit_lsn: int  # the commit before this transaction's, in Debezium's ``sequence``
    connector_lag_ms: int


@dataclass
class Conversion:
    """What a conversion wrote, and what an ingest of each output must hold."""

    events: int = 0
    transactions: int = 0
    ops: Counter[str] = field(default_factory=Counter)
    keys: int = 0
    lines: dict[str, int] = field(default_factory=dict)


def transactions(log: Path, events: int, seed: int) -> Iterator[Txn]:
    """The first ``events`` events of the generated log as committed transactions of full rows.

    The database's row per key is kept as it goes, so a patch (1-2 columns in the log) becomes the
    full after-image a PostgreSQL source sends. LSNs and the connector's lag are drawn from
    ``seed``."""
    rng = random.Random(seed)
    rows: dict[tuple[str, Any], dict[str, Any]] = {}
    lsn = LSN0
    pending: list[Change] = []
    txid: int | None = None
    ts_us = 0

    last_commit = LSN0

    def close() -> Txn:
        nonlocal lsn, last_commit
        lsn += COMMIT_WAL
        txn = Txn(txid or 0, ts_us, pending, lsn, last_commit, rng.randint(*CONNECTOR_LAG_MS))
        last_commit = lsn
        return txn

    with open(log, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= events:
                break
            ev = json.loads(line)
            if ev["txid"] != txid:
                if txid is not None:
                    if ev["txid"] < txid:
                        raise SystemExit(f"{log}:{n + 1}: transaction {ev['txid']} is not contiguous")
                    yield close()
                pending, txid, ts_us = [], ev["txid"], parse_ts(ev["ts"])
            where = (ev["table"], ev["id"])
            op, data = ev["op"], ev["data"]
            if op == "delete":
                rows.pop(where, None)
                row = None
            else:
                # a new dict each time: the transaction's earlier changes keep their own images
                base = rows.get(where, {KEY: ev["id"]}) if op == "patch" else {KEY: ev["id"]}
                row = rows[where] = {**base, **data}
                op = "update" if op == "patch" else op
            lsn += rng.randint(*CHANGE_WAL) & ~7
            pending.append(Change(ev["table"], op, ev["id"], row, lsn))
        if txid is not None:
            yield close()


def debezium_lines(txn: Txn) -> Iterator[dict[str, Any]]:
    """A transaction as Debezium PostgreSQL change events (schemas disabled, REPLICA IDENTITY
    DEFAULT: no before-image on an update, the key columns on a delete)."""
    ts_ms = txn.ts_us // 1000
    for ch in txn.changes:
        schema, table = ch.table.split(".", 1)
        after = None if ch.row is None else {k: _debezium_value(k, v) for k, v in ch.row.items()}
        yield {
            "before": {KEY: ch.key} if ch.op == "delete" else None,
            "after": after,
            "source": {
                "version": "2.5.4.Final", "connector": "postgresql", "name": DB, "ts_ms": ts_ms,
                "snapshot": "false", "db": DB, "sequence": json.dumps([str(txn.last_commit_lsn), str(ch.lsn)]),
                "schema": schema, "table": table, "txId": txn.txid, "lsn": ch.lsn, "xmin": None,
            },
            "op": {"insert": "c", "update": "u", "delete": "d"}[ch.op],
            "ts_ms": ts_ms + txn.connector_lag_ms,
            "transaction": None,
        }  # fmt: skip


def _columns(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": k, "type": COLUMN_TYPES.get(k, "text"), "value": _pg_value(k, v)} for k, v in row.items()]


_PK = [{"name": KEY, "type": COLUMN_TYPES[KEY]}]


def wal2json_lines(txn: Txn) -> Iterator[dict[str, Any]]:
    """A transaction as wal2json format-version 2 records (include-lsn, include-xids,
    include-timestamp, include-pk): B, a record per change, C."""
    when = _pg_timestamptz(txn.ts_us)
    commit = {"xid": txn.txid, "timestamp": when, "lsn": _lsn_text(txn.commit_lsn),
              "nextlsn": _lsn_text(txn.commit_lsn + COMMIT_WAL)}  # fmt: skip
    yield {"action": "B", **commit}
    for ch in txn.changes:
        schema, table = ch.table.split(".", 1)
        rec: dict[str, Any] = {"action": {"insert": "I", "update": "U", "delete": "D"}[ch.op], "xid": txn.txid,
                               "timestamp": when, "lsn": _lsn_text(ch.lsn), "schema": schema, "table": table}  # fmt: skip
        if ch.row is not None:
            rec["columns"] = _columns(ch.row)
        if ch.op != "insert":
            rec["identity"] = _columns({KEY: ch.key})
        rec["pk"] = _PK
        yield rec
    yield {"action": "C", **commit}


WRITERS: dict[str, Callable[[Txn], Iterator[dict[str, Any]]]] = {
    "debezium": debezium_lines,
    "wal2json": wal2json_lines,
}


def _dumps(record: dict[str, Any]) -> str:
    # The standard library's C encoder, not dumps_exact, which is several times slower: the log's
    # numbers are integers and DECIMAL(12,2) values, which float64 gives back as the same text
    # (a json.loads/json.dumps round trip of the log is byte for byte).
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def convert(log: Path, events: int, seed: int, outputs: dict[str, Path]) -> Conversion:
    """Write the first ``events`` events of ``log`` in each format of ``outputs`` (via temp files)."""
    done = Conversion()
    keys: set[tuple[str, Any]] = set()
    tmps = {name: path.with_name(path.name + ".tmp") for name, path in outputs.items()}
    files = {name: open(tmp, "w", encoding="utf-8") for name, tmp in tmps.items()}
    try:
        for txn in transactions(log, events, seed):
            done.transactions += 1
            for ch in txn.changes:
                done.events += 1
                done.ops[ch.op] += 1
                keys.add((ch.table, ch.key))
            for name, f in files.items():
                lines = [_dumps(rec) for rec in WRITERS[name](txn)]
                done.lines[name] = done.lines.get(name, 0) + len(lines)
                f.write("\n".join(lines) + "\n")
    finally:
        for f in files.values():
            f.close()
    if done.events < events:
        raise SystemExit(f"{log} holds only {done.events:,} events, not {events:,}")
    for name, path in outputs.items():
        os.replace(tmps[name], path)
    done.keys = len(keys)
    return done


# --------------------------------------------------------------------------- the converted files


@dataclass
class Inputs:
    """The converted files of one size, and what they must ingest to."""

    log: Path
    events: int
    seed: int
    files: dict[str, Path]
    expected: Conversion

    def describe(self) -> str:
        sizes = ", ".join(
            f"{p.name} ({self.expected.lines[n]:,} lines, {p.stat().st_size / 1e6:,.0f} MB)"
            for n, p in self.files.items()
        )
        return (f"input: the first {self.events:,} events of {self.log.name} ({self.expected.transactions:,} "
                f"transactions, {self.expected.keys:,} keys) converted with seed {self.seed} to {sizes}")  # fmt: skip


def _stamp(log: Path, events: int, seed: int) -> dict[str, Any]:
    st = log.stat()
    return {"version": CONVERTER_VERSION, "log": str(log), "log_bytes": st.st_size, "log_mtime_ns": st.st_mtime_ns,
            "events": events, "seed": seed}  # fmt: skip


def prepare(label: str, events: int, seed: int, log: Path, reconvert: bool) -> tuple[Inputs, bool]:
    """The converted files, made unless files from the same log, size and seed exist; and whether
    they were made now."""
    if not log.exists():
        if log.parent != DATA or log.name != "cdc-1m.jsonl":
            raise SystemExit(f"{log} does not exist")
        print(f"generating {log} (1,000,000 events, seed 42) ...", file=sys.stderr)
        generate(1_000_000, log, seed=42)
    files = {name: DATA / f"{name}-{label}.jsonl" for name in FORMATS}
    stamp_path = DATA / f"formats-{label}.json"
    want = _stamp(log, events, seed)
    if not reconvert and stamp_path.exists() and all(p.exists() for p in files.values()):
        saved = json.loads(stamp_path.read_text())
        if saved["stamp"] == want:
            c = saved["conversion"]
            expected = Conversion(c["events"], c["transactions"], Counter(c["ops"]), c["keys"], c["lines"])
            return Inputs(log, events, seed, files, expected), False
    print(f"converting the first {events:,} events of {log.name} to {', '.join(p.name for p in files.values())} ...",
          file=sys.stderr)  # fmt: skip
    expected = convert(log, events, seed, files)
    stamp_path.write_text(json.dumps({"stamp": want, "conversion": {
        "events": expected.events, "transactions": expected.transactions, "ops": dict(expected.ops),
        "keys": expected.keys, "lines": expected.lines}}, indent=1))  # fmt: skip
    return Inputs(log, events, seed, files, expected), True


def ingest_args(name: str, store: Path, file: Path) -> list[str]:
    """``logtool ingest`` of a converted file: Debezium needs the key column named, wal2json's
    records name it (include-pk)."""
    keys = ["--key-field", KEY] if name == "debezium" else []
    return ["ingest", str(store), str(file), "--format", name, *keys]


def check(ctx: runner.Ctx, inputs: Inputs, name: str) -> None:
    """Ingest a converted file (untimed) and check the store holds what the conversion wrote: the
    ingest stops at the first bad record (``--on-error fail``), and every event, op, key and
    transaction must be there."""
    import duckdb

    work = runner.SCRATCH / f"check-{name}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        m = runner.measure([str(runner.LOGTOOL), *ingest_args(name, work / "store", inputs.files[name])],
                           ctx.env(), work / "stderr")  # fmt: skip
        if m.code != 0:
            raise SystemExit(f"{inputs.files[name].name} does not ingest cleanly: {m.error}")
        segments = runner.lit(str(work / "store" / "segments" / "*.parquet"))
        con = duckdb.connect()
        ops = dict(con.execute(f"SELECT op, count(*) FROM read_parquet({segments}) GROUP BY op").fetchall())
        ((keys, txns, no_key, no_position),) = con.execute(
            f"""SELECT count(DISTINCT (entity, key)), count(DISTINCT txn.id), count(*) FILTER (key IS NULL),
                       count(*) FILTER (source.position IS NULL)
                FROM read_parquet({segments})"""
        ).fetchall()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    e = inputs.expected
    got = (ops, keys, txns, no_key, no_position)
    want = (dict(e.ops), e.keys, e.transactions, 0, 0)
    if got != want:
        raise SystemExit(f"{inputs.files[name].name}: the store holds (ops, keys, transactions, events without "
                         f"a key, events without a position) {got}, expected {want}")  # fmt: skip
    print(f"checked {inputs.files[name].name}: {sum(ops.values()):,} events {dict(sorted(ops.items()))}, "
          f"{keys:,} keys, {txns:,} transactions", file=sys.stderr)  # fmt: skip


# --------------------------------------------------------------------------- measuring


@dataclass
class FormatCtx(runner.Ctx):
    """run.py's context whose log is the generated log the inputs were converted from."""

    source_log: Path = DATA / "cdc-1m.jsonl"

    @property
    def log(self) -> Path:
        return self.source_log


def operation(name: str, inputs: Inputs) -> runner.Operation:
    """``logtool ingest --format NAME`` of the converted file, against read_json of it to Parquet."""
    file = inputs.files[name]

    def anchor(ctx: runner.Ctx, run: Path) -> list[str]:
        out = runner.lit(run / "out.parquet")
        return [f"COPY (SELECT * FROM read_json({runner.lit(file)}, format='newline_delimited')) TO {out} "
                f"{runner.PARQUET}"]  # fmt: skip

    return runner.Operation(
        name=name,
        command="ingest",
        logtool=lambda ctx, run: ingest_args(name, run / "store", file),
        anchor_label="COPY read_json (auto-detected columns) -> Parquet",
        anchor=anchor,
        work=lambda ctx: inputs.events,
    )


def table(rows: list[runner.Row]) -> str:
    """One line per format: logtool's median against the anchor's, events/s of the change events."""
    out = ["| format | events | logtool s | events/s | anchor s | anchor events/s | × anchor | peak RSS MB (logtool / anchor) |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for name in dict.fromkeys(r.op for r in rows):
        anchor = next((r for r in rows if r.op == name and r.primary), None)
        lt = next((r for r in rows if r.op == name and not r.primary), None)
        if anchor is None or lt is None:
            continue

        def cell(r: runner.Row, text: Callable[[runner.Row], str]) -> str:
            return text(r) if r.ok else ("failed" if r.skipped.startswith("failed") else "skipped")

        ratio = f"{lt.median / anchor.median:.2f}" if lt.ok and anchor.ok else "–"
        rss = f"{cell(lt, lambda r: f'{r.rss:.0f}')} / {cell(anchor, lambda r: f'{r.rss:.0f}')}"
        out.append(
            f"| {name} | {lt.work:,} | {cell(lt, lambda r: f'{r.median:.2f}')} "
            f"| {cell(lt, lambda r: runner.fmt_rate(r.work / r.median))} | {cell(anchor, lambda r: f'{r.median:.2f}')} "
            f"| {cell(anchor, lambda r: runner.fmt_rate(r.work / r.median))} | {ratio} | {rss} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", default="1m", help="events converted from the start of the log (1m, 20k, ...)")
    p.add_argument("--log", type=Path, default=DATA / "cdc-1m.jsonl", help="the generated log to convert")
    p.add_argument("--seed", type=int, default=42, help="seed of the drawn LSN steps and connector lags")
    p.add_argument("--only", default=",".join(FORMATS), help="comma-separated formats: " + ",".join(FORMATS))
    p.add_argument("--runs", type=int, default=3, help="runs of each side (median reported); 3 or more to --record")
    p.add_argument("--record", type=Path, help="append the table and machine facts to this markdown file")
    p.add_argument("--memory-limit", default=os.environ.get("LOGTOOL_MEMORY_LIMIT", "2GB"),
                   help="DuckDB memory limit for both sides (logtool's default: 2GB)")  # fmt: skip
    p.add_argument("--threads", type=int, help="DuckDB threads for both sides (default: all cores)")
    p.add_argument("--reconvert", action="store_true", help="convert again even if converted files exist")
    p.add_argument("--check", action="store_true", help="check files converted earlier by ingesting them too")
    a = p.parse_args(argv)
    if a.runs < 1 or (a.record and a.runs < 3):
        p.error("--runs must be at least 1, and at least 3 with --record")
    wanted = [s.strip() for s in a.only.split(",") if s.strip()]
    if not wanted or set(wanted) - set(FORMATS):
        p.error(f"--only takes {', '.join(FORMATS)}")
    label = a.events.strip().lower()
    events = parse_count(label)

    load_before = os.getloadavg()
    inputs, fresh = prepare(label, events, a.seed, a.log.resolve(), a.reconvert)
    ctx = FormatCtx(label, events, a.memory_limit, a.threads, False, None, source_log=inputs.log)
    if fresh or a.check:
        for name in wanted:
            check(ctx, inputs, name)
    rows: list[runner.Row] = []
    for name in wanted:
        print(f"== {name}", file=sys.stderr)
        rows += runner.run_operation(ctx, operation(name, inputs), a.runs, anchors_anyway=False)
    facts = [inputs.describe() + "; " + f.split("; ", 1)[1] if f.startswith("log: ") else f
             for f in runner.machine_facts(ctx, load_before)]  # fmt: skip
    shutil.rmtree(runner.SCRATCH, ignore_errors=True)
    notes = [
        "events/s counts change events (wal2json's B and C records are read but not counted); the anchor "
        "reads the same file with columns auto-detected (nested STRUCTs and JSON) and writes it to Parquet "
        "as is, without offsets, keys or transactions",
        f"runs per side: {a.runs} (medians); × anchor is logtool's median / the anchor's",
        *ctx.notes,
    ]
    report = "\n".join([*(f"- {f}" for f in facts), "", table(rows), "", *(f"- {n}" for n in notes)])
    print(report)
    if a.record:
        with open(a.record, "a") as f:
            f.write(
                f"\n## Format ingest: {events:,} events ({label}), {dt.datetime.now(dt.UTC):%Y-%m-%d}\n\n{report}\n"
            )
        print(f"appended to {a.record}", file=sys.stderr)


if __name__ == "__main__":
    main()
