"""Targeted measurements on one store, in-process (no process start in the figures).

    python bench/targeted.py --store bench/data/store-10m --key public.customers/418178

- history of one key against a scan that cannot use the segments' statistics (the key column of
  every segment, the other columns only where it matches), against reading every column of every
  event, and against the hand-written ``WHERE key = ?`` over only the segments that hold the key;
- diff of the store against a copy of itself (decided from digests) against a content hash of
  every event column of both stores;
- purge of one key (dry run: the plan, the segments to rewrite found) against rewriting the whole log.

Each figure is the median of ``--runs`` runs; the store is only read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
from run import lit, lit_list  # bench/run.py, beside this script

from logtool.audit import history
from logtool.diff import diff
from logtool.store import Store


def median_time(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sql_runner(files: list[str], sql: str) -> Callable[[], object]:
    def run() -> object:
        con = duckdb.connect()
        return con.execute(sql.replace("SEGMENTS", f"read_parquet({lit_list(files)})")).fetchall()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--key", required=True, help="ENTITY/KEY of a cold key, e.g. public.customers/418178")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    entity, key = args.key.rsplit("/", 1)
    store = Store.open(args.store)
    files = [str(f) for f in store.segment_files(store.state())]
    holding = [f for (f,) in duckdb.connect().execute(
        f"SELECT DISTINCT filename FROM read_parquet({lit_list(files)}, filename = true) WHERE key = {lit(key)}"
    ).fetchall()]  # fmt: skip
    print(f"store {args.store}: {len(files)} segments, key {args.key} in {len(holding)}; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.1f}; medians of {args.runs} runs")  # fmt: skip

    rows = [("history of one key, in-process", median_time(lambda: history(store.path, key, entity=entity), args.runs))]
    rows.append(("  WHERE key || '' = ? (no statistics used)",
                 median_time(sql_runner(files, f"SELECT * FROM SEGMENTS WHERE key || '' = {lit(key)}"), args.runs)))
    rows.append(("  every column of every event read",
                 median_time(sql_runner(files, "SELECT count(*), sum(hash(COLUMNS(*))) FROM SEGMENTS"), args.runs)))
    rows.append(("  WHERE key = ? over the segments holding it",
                 median_time(sql_runner(holding, f"SELECT * FROM SEGMENTS WHERE key = {lit(key)}"), args.runs)))

    with tempfile.TemporaryDirectory(dir=Path(args.store).parent) as tmp:
        copy = Path(tmp) / "copy"
        shutil.copytree(store.path, copy)
        rows.append(("diff of the store against a copy, in-process",
                     median_time(lambda: diff(store.path, copy), args.runs)))
        copy_files = [str(f) for f in Store.open(copy).segment_files(Store.open(copy).state())]
        rows.append(("  content hash of every event column of both",
                     median_time(sql_runner(files + copy_files, "SELECT sum(hash(COLUMNS(*))) FROM SEGMENTS"), args.runs)))

    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:8.3f} s")


if __name__ == "__main__":
    main()
