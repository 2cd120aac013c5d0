"""Events per second of a Python-reducer replay (an event-sourced log), and of a replay from a
snapshot at 90% of a kv log to 95% against one from zero.

    python bench/reducer.py [--copies 2000] [--runs 3] [--record bench/RESULTS.md]

The event-sourced log is `sample_logs/bank_events.jsonl` repeated with every account and event
id renamed per copy (85 events a copy), replayed through `sample_logs/bank_reducers.py`. The
snapshot measurement uses the 1M kv store the main runner builds (`bench/data/store-1m`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
LOGTOOL = str(Path(sys.executable).with_name("logtool"))
BANK = ["--key-field", "account_id", "--entity-field", "stream", "--type-field", "type", "--ts-field", "ts",
        "--data-field", "body", "--meta-field", "actor", "--meta-field", "event_id",
        "--meta-field", "causation_id", "--meta-field", "correlation_id"]  # fmt: skip


def bank_log(copies: int, out: Path) -> int:
    lines = (ROOT / "sample_logs" / "bank_events.jsonl").read_text().splitlines()
    n = 0
    with open(out, "w") as f:
        for c in range(copies):
            for line in lines:
                rec = json.loads(line)
                for k in ("account_id", "event_id", "causation_id", "correlation_id"):
                    if rec.get(k):
                        rec[k] = f"{rec[k]}-{c}"
                body = rec.get("body") or {}
                for k in ("to_account", "from_account"):
                    if isinstance(body, dict) and body.get(k):
                        body[k] = f"{body[k]}-{c}"
                f.write(json.dumps(rec) + "\n")
                n += 1
    return n


def timed(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([LOGTOOL, "-q", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=2000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--record")
    a = p.parse_args()
    work = DATA / "reducer"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log = work / "bank.jsonl"
    events = bank_log(a.copies, log)
    store = work / "bank.store"
    subprocess.run([LOGTOOL, "-q", "ingest", str(store), str(log), *BANK], check=True)
    reducer = str(ROOT / "sample_logs" / "bank_reducers.py")
    py = statistics.median(timed(["replay", str(store), "--reducer", reducer, "--format", "jsonl"]) for _ in range(a.runs))
    rows = [f"| Python-reducer replay (bank reducers), {events} events | {py:.2f} | {events / py:,.0f} |"]

    kv = DATA / "store-1m"
    if kv.exists():
        snap = work / "kv.store"
        shutil.copytree(kv, snap)
        head = json.loads(subprocess.run([LOGTOOL, "info", str(snap), "--format", "json"], capture_output=True,
                                         check=True, text=True).stdout)  # fmt: skip
        n = head["next_offset"]
        at90, at95 = int(n * 0.9), int(n * 0.95)
        zero = statistics.median(
            timed(["replay", str(snap), "--at-offset", str(at95), "--no-snapshots", "--format", "jsonl"]) for _ in range(a.runs)
        )
        subprocess.run([LOGTOOL, "-q", "snapshot", str(snap), "--at-offset", str(at90)], check=True)
        from_snap = statistics.median(
            timed(["replay", str(snap), "--at-offset", str(at95), "--format", "jsonl"]) for _ in range(a.runs)
        )
        rows.append(f"| kv replay to 95% from zero ({n} events) | {zero:.2f} | {at95 / zero:,.0f} |")
        rows.append(f"| kv replay to 95% from a snapshot at 90% | {from_snap:.2f} | — ({from_snap / zero:.0%} of from zero) |")
    table = "\n".join(["| what | median s | events/s |", "| --- | ---: | ---: |", *rows])
    print(table)
    if a.record:
        with open(a.record, "a") as f:
            f.write(f"\n## Reducer and snapshot replay ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n\n"
                    f"CLI in fresh processes, {a.runs} runs, medians; output as JSON lines to /dev/null.\n\n{table}\n")  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
