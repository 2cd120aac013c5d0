"""Targeted measurements on one store, in-process (no process start in the figures).

    python bench/targeted.py --store bench/data/store-10m --key public.customers/418178

- history of one key against a scan that cannot use the segments' statistics (the key column of
  every segment, the other columns only where it matches), against reading every column of every
  event, and against the hand-written ``WHERE key = ?`` over only the segments that hold the key;
- diff of the store against a copy of itself (decided from digests) against a content hash of
  every event column of both stores;
- purge of one key (dry run: the plan, the segments to rewrite found) against rewriting the whole log;
- with ``--states DIR`` (``bench/states.py``'s two states), ``logtool.diff`` of them against the
  anchor of ``run.py``'s diff benchmark (FULL OUTER JOIN, differing rows to Parquet), alternating.

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
from run import diff_anchor_sql, lit, lit_list  # bench/run.py, beside this script

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
    parser.add_argument("--states", type=Path, help="a directory with left.parquet and right.parquet keyed by id")
    args = parser.parse_args()
    if args.states and not all((args.states / f"{side}.parquet").is_file() for side in ("left", "right")):
        parser.error(f"--states {args.states}: needs left.parquet and right.parquet (make them with bench/states.py)")
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

    if args.states:
        rows += diff_states(args.states, args.runs)

    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"{name:<{width}}  {seconds:8.3f} s")


def diff_states(states: Path, runs: int) -> list[tuple[str, float]]:
    """logtool.diff of two states against the FULL OUTER JOIN anchor, runs alternating."""
    left, right = states / "left.parquet", states / "right.parquet"
    with tempfile.TemporaryDirectory() as tmp:
        anchor = diff_anchor_sql(states, Path(tmp) / "diff.parquet")
        sides = {"anchor": lambda: duckdb.connect().execute(anchor), "logtool": lambda: diff(left, right, key_columns=["id"])}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(runs + 1):  # the first round warms the caches and is not counted
            for name, fn in sides.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    logtool, anchor_s = statistics.median(times["logtool"][1:]), statistics.median(times["anchor"][1:])
    return [(f"diff of two states ({states.name}), in-process", logtool),
            (f"  anchor: FULL OUTER JOIN, differing rows to Parquet ({logtool / anchor_s:.2f}x)", anchor_s)]  # fmt: skip


if __name__ == "__main__":
    main()
