"""Generate a seeded CDC-like log as JSON lines, streaming in bounded memory.

    python bench/generate.py --events 1000000 --out bench/data/cdc-1m.jsonl [--seed 42]

Each line is one change event:

    {"ts": "2024-03-01T00:00:00.001234Z", "table": "public.customers", "op": "update", "id": 17,
     "data": {"name": ..., "email": ..., "balance": 1234.56, "tags": [...],
              "address": {"city": ..., "zip": ...}, "updated_at": ...},
     "actor": "svc-api", "txid": 1000004}

Keys are Zipf-like skewed (old keys are hot, a long tail of cold ones); about one event in ten
creates a new key, so 1M events touch ~100k keys and 10M events ~1M. A key's first event is an
insert; after that it gets full-image updates, patches (``op: "patch"``, data holds 1-2 columns)
and deletes (``data: null``); an event on a deleted key re-inserts it. Events of one transaction
share its timestamp, and a few transactions share their predecessor's, so timestamps are
non-decreasing with runs of equal values.

The ingest mapping for it:
    --key-field id --entity-field table --op-field op --ts-field ts --data-field data
    --meta-field actor --meta-field txid

Numpy draws the per-event facts chunk by chunk; DuckDB renders each chunk to JSON text.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa

#: Events per chunk: bounds memory; fixed so the output depends only on the seed and the count.
CHUNK = 1 << 20
NEW_KEY_RATE = 0.1
#: A touched key's rank is floor(n * u**SKEW): rank r gets a share ~ r**(1/SKEW - 1), so the
#: oldest keys are hot (the hottest ~2% of events at 100k keys) and most keys are cold.
SKEW = 3.0
#: Op drawn for an event on a live key; an event on a dead (new or deleted) key is an insert.
OPS = ("insert", "update", "patch", "delete")
LIVE_OP_P = {"update": 0.42, "patch": 0.50, "delete": 0.08}
TXN_START_P = 0.75  # a new transaction starts at an event with this chance: mean size 1.33
TXN_SAME_TS_P = 0.03  # a new transaction keeps the previous one's timestamp
TXN_GAP_US = 3000.0  # mean gap between transaction timestamps
T0_US = 1709251200 * 1_000_000  # 2024-03-01T00:00:00Z
TXID0 = 1_000_000

TABLE_SLOTS = ["public.customers"] * 2 + ["public.orders"] * 3 + ["public.payments"] * 2 + ["public.events"] * 3
ACTORS = ["svc-api", "svc-api", "svc-api", "svc-billing", "svc-billing", "svc-sync", "admin:alice", "admin:bob",
          "job:nightly", "user:web"]  # fmt: skip
FIRST = ["Ana", "Bruno", "Chloe", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lea",
         "Mateo", "Nadia", "Omar", "Pia", "Quentin", "Rosa", "Sven", "Tara"]  # fmt: skip
LAST = ["Almeida", "Berg", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Horvat", "Ito", "Jansen", "Kowalski",
        "Larsen", "Moreau", "Novak", "Okafor", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka"]  # fmt: skip
DOMAINS = ["example.com", "mail.test", "corp.example", "inbox.test"]
CITIES = ["Lisbon", "Berlin", "Paris", "Oslo", "Tokyo", "Lagos", "Lima", "Austin", "Seoul", "Cairo", "Porto",
          "Zagreb", "Kyoto", "Quito", "Dakar", "Perth"]  # fmt: skip
TAGSETS = ['[]', '["vip"]', '["new"]', '["b2b"]', '["eu"]', '["vip","eu"]', '["new","beta"]', '["b2b","us"]',
           '["churn-risk"]', '["vip","b2b","eu"]', '["beta"]', '["us"]']  # fmt: skip


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


# Renders one chunk; ``c`` is the registered Arrow chunk. Lists are 1-based in DuckDB.
_RENDER_SQL = f"""
WITH e AS (
  SELECT *,
    strftime(make_timestamp(ts_us), '%Y-%m-%dT%H:%M:%S.%fZ') AS tss,
    strftime(make_timestamp(ts_us), '%Y-%m-%dT%H:%M:%SZ') AS updated_at,
    {_sql_list(FIRST)}[key % {len(FIRST)} + 1] AS first,
    {_sql_list(LAST)}[(key // {len(FIRST)}) % {len(LAST)} + 1] AS last,
    (balance_cents / 100.0)::DECIMAL(12, 2) AS balance,
    {_sql_list(TAGSETS)}[tagset + 1]::JSON AS tags,
    json_object('city', {_sql_list(CITIES)}[city + 1], 'zip', lpad(zip::VARCHAR, 5, '0')) AS address
  FROM c
), r AS (
  SELECT *,
    lower(first[1]) || '.' || lower(last) || (key + 1) || '@' || {_sql_list(DOMAINS)}[domain + 1] AS email
  FROM e
)
SELECT json_object(
  'ts', tss,
  'table', {_sql_list(TABLE_SLOTS)}[table_slot + 1],
  'op', {_sql_list(list(OPS))}[op + 1],
  'id', key + 1,
  'data', CASE
    WHEN op = {OPS.index("delete")} THEN NULL::JSON
    WHEN op = {OPS.index("patch")} THEN CASE patch_kind
      WHEN 0 THEN json_object('balance', balance)
      WHEN 1 THEN json_object('email', email)
      WHEN 2 THEN json_object('tags', tags)
      WHEN 3 THEN json_object('address', address)
      ELSE json_object('balance', balance, 'updated_at', updated_at) END
    ELSE json_object('name', first || ' ' || last, 'email', email, 'balance', balance, 'tags', tags,
                     'address', address, 'updated_at', updated_at) END,
  'actor', {_sql_list(ACTORS)}[actor + 1],
  'txid', txid
)::VARCHAR || chr(10) AS line
FROM r
"""


class Generator:
    """The event stream's state across chunks: which keys exist and are live, the clock, the txid."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_keys = 0
        self.live = np.zeros(1 << 16, dtype=bool)
        self.ts_us = T0_US
        self.txid = TXID0

    def _ensure(self, n: int) -> None:
        if n > len(self.live):
            grown = np.zeros(max(n, 2 * len(self.live)), dtype=bool)
            grown[: len(self.live)] = self.live
            self.live = grown

    def chunk(self, n: int) -> pa.Table:
        """The next ``n`` events as columns of small integers that the render SQL turns into text."""
        rng = self.rng
        new = rng.random(n) < NEW_KEY_RATE
        if self.n_keys == 0:
            new[0] = True
        existing = self.n_keys + np.cumsum(new) - new  # keys that exist before each event
        rank = np.floor(existing * rng.random(n) ** SKEW).astype(np.int64)
        key = np.where(new, existing, rank)
        self.n_keys += int(new.sum())
        self._ensure(self.n_keys)

        op = self._ops(key, rng.choice(np.array([1, 2, 3], dtype=np.int8), size=n, p=list(LIVE_OP_P.values())))

        starts = rng.random(n) < TXN_START_P
        starts[0] = True
        txn = np.cumsum(starts) - 1  # this chunk's transactions, 0..
        n_txn = int(txn[-1]) + 1
        gaps = np.rint(rng.exponential(TXN_GAP_US, n_txn)).astype(np.int64) + 1
        gaps[rng.random(n_txn) < TXN_SAME_TS_P] = 0
        txn_ts = self.ts_us + np.cumsum(gaps)
        self.ts_us = int(txn_ts[-1])
        txid = self.txid + txn
        self.txid += n_txn

        slot = ((key.astype(np.uint64) * np.uint64(2654435761)) >> np.uint64(11)) % np.uint64(len(TABLE_SLOTS))
        return pa.table(
            {
                "key": key,
                "op": op,
                "ts_us": txn_ts[txn],
                "txid": txid,
                "table_slot": slot.astype(np.int8),
                "actor": rng.integers(0, len(ACTORS), n, dtype=np.int8),
                "balance_cents": rng.integers(-50_000, 2_500_000, n),
                "tagset": rng.integers(0, len(TAGSETS), n, dtype=np.int8),
                "city": rng.integers(0, len(CITIES), n, dtype=np.int8),
                "zip": rng.integers(0, 100_000, n, dtype=np.int32),
                "domain": rng.integers(0, len(DOMAINS), n, dtype=np.int8),
                "patch_kind": rng.integers(0, 5, n, dtype=np.int8),
            }
        )

    def _ops(self, key: np.ndarray, drawn: np.ndarray) -> np.ndarray:
        """Each event's op, given the op drawn for it were its key live, and update which keys live.

        An event on a dead key is an insert; an event on a live key takes its drawn op, and a
        drawn delete kills the key. So within one key's events, ``dead[i] = !dead[i-1] & del[i-1]``:
        past a run of L drawn deletes, dead is L's parity (xor the key's state at the run's start
        when the run starts the key's first event in this chunk)."""
        n = len(key)
        order = np.argsort(key, kind="stable")
        k = key[order]
        is_del = drawn[order] == OPS.index("delete")
        first = np.ones(n, dtype=bool)
        first[1:] = k[1:] != k[:-1]
        # A run of drawn deletes ending just before i starts at the last index j <= i that is the
        # key's first event or follows a non-delete.
        resets = first.copy()
        resets[1:] |= ~is_del[:-1]
        run_start = np.maximum.accumulate(np.where(resets, np.arange(n), 0))
        odd = ((np.arange(n) - run_start) & 1).astype(bool)
        dead = odd ^ (first[run_start] & ~self.live[k[run_start]])
        op_sorted = np.where(dead, OPS.index("insert"), drawn[order]).astype(np.int8)

        last = np.ones(n, dtype=bool)
        last[:-1] = k[1:] != k[:-1]
        self.live[k[last]] = dead[last] | ~is_del[last]

        op = np.empty(n, dtype=np.int8)
        op[order] = op_sorted
        return op


def _write_lines(out: IO[bytes], lines: pa.ChunkedArray) -> int:
    """Write a column of newline-terminated strings as one run of bytes per chunk."""
    written = 0
    for arr in lines.chunks:
        if not pa.types.is_large_string(arr.type):
            arr = arr.cast(pa.large_string())
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
        data = arr.buffers()[2]
        start, end = int(offsets[0]), int(offsets[-1])
        out.write(memoryview(data)[start:end])
        written += end - start
    return written


def generate(events: int, out: Path, seed: int = 42, progress: bool = True) -> int:
    """Write ``events`` events to ``out`` (via a temp file renamed at the end); returns bytes written."""
    import duckdb

    gen = Generator(seed)
    con = duckdb.connect(config={"preserve_insertion_order": True})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    written = 0
    t0 = time.perf_counter()
    with open(tmp, "wb") as f:
        done = 0
        while done < events:
            n = min(CHUNK, events - done)
            con.register("c", gen.chunk(n))
            written += _write_lines(f, con.sql(_RENDER_SQL).to_arrow_table().column("line"))
            con.unregister("c")
            done += n
            if progress:
                rate = done / (time.perf_counter() - t0)
                print(f"\r{done:>12,} events  {written / 1e6:>9,.0f} MB  {rate:>10,.0f} events/s",
                      end="", file=sys.stderr, flush=True)  # fmt: skip
    os.replace(tmp, out)
    if progress:
        print(f"\nwrote {out} ({events:,} events, {gen.n_keys:,} keys, {written / events:.0f} bytes/line, "
              f"{time.perf_counter() - t0:.1f} s)", file=sys.stderr)  # fmt: skip
    return written


def parse_count(text: str) -> int:
    """``1000000``, ``1m``, ``10M`` or ``500k`` as an int."""
    t = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1]) * mult) if mult > 1 else int(t)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=parse_count, required=True, help="number of events (1000000, 1m, 10m)")
    p.add_argument("--out", type=Path, required=True, help="output JSON lines file")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    generate(a.events, a.out, a.seed, progress=not a.quiet)


if __name__ == "__main__":
    main()
