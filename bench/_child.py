"""What the benchmark runner measures in a fresh process: raw DuckDB SQL, or the Python-loop replay.

    python bench/_child.py sql JOB.json
    python bench/_child.py replay-loop JOB.json

JOB.json holds the work: for ``sql`` the statements and the engine settings, for ``replay-loop``
the segment files (in offset order), the target offset (or null for the head) and the output file.
The runner times the whole process and reads its peak RSS, so the setup here is part of the figure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def run_sql(job: dict[str, Any]) -> None:
    """Run the job's statements in order on one in-memory DuckDB connection."""
    import duckdb

    config: dict[str, Any] = {"preserve_insertion_order": True}
    if job.get("memory_limit"):
        config["memory_limit"] = job["memory_limit"]
    if job.get("threads"):
        config["threads"] = job["threads"]
    if job.get("temp_dir"):
        config["temp_directory"] = job["temp_dir"]
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    for statement in job["statements"]:
        con.execute(statement)


def replay_loop(job: dict[str, Any]) -> None:
    """Replay with the ``kv`` rules as a plain Python dict loop over the segments' batches.

    insert/update/upsert/read set the key's state to ``data``; patch sets the columns it carries;
    delete (or a null ``data``) removes the key; truncate empties the entity. The state is written
    to Parquet as (entity, key, data JSON)."""
    import gc

    import pyarrow as pa
    import pyarrow.parquet as pq

    # The loop makes millions of dicts and no cycles: without this, the cyclic collector's
    # passes over the growing state dominate at 10M events, and the baseline would be a straw man.
    gc.disable()
    at = job.get("at_offset")
    state: dict[tuple[str, str | None], dict[str, Any]] = {}
    loads = json.loads
    done = False
    for path in job["segments"]:
        for batch in pq.ParquetFile(path).iter_batches(columns=["offset", "entity", "key", "op", "data"]):
            cols = [batch.column(i).to_pylist() for i in range(5)]
            for offset, entity, key, op, data in zip(*cols, strict=True):
                if at is not None and offset > at:
                    done = True
                    break
                k = (entity, key)
                if op == "truncate":
                    for gone in [s for s in state if s[0] == entity]:
                        del state[gone]
                elif op == "delete" or data is None:
                    state.pop(k, None)
                elif op == "patch":
                    row = state.get(k)
                    if row is None:
                        state[k] = loads(data)
                    else:
                        row.update(loads(data))
                else:
                    state[k] = loads(data)
            if done:
                break
        if done:
            break
    dumps = json.dumps
    table = pa.table(
        {
            "entity": [k[0] for k in state],
            "key": [k[1] for k in state],
            "data": [dumps(v, separators=(",", ":")) for v in state.values()],
        }
    )
    pq.write_table(table, job["out"], compression="zstd")


def main() -> None:
    """Entry point: ``_child.py MODE JOB.json``."""
    mode, job_path = sys.argv[1], sys.argv[2]
    job = json.loads(Path(job_path).read_text())
    {"sql": run_sql, "replay-loop": replay_loop}[mode](job)


if __name__ == "__main__":
    main()
