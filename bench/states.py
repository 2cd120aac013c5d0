"""Generate two states of one table, as Parquet, that differ in a known number of rows (for diff).

    python bench/states.py --rows 1000000 --differ 100 --out-dir bench/data/states-1m [--seed 42]

``left.parquet`` and ``right.parquet`` hold ``rows`` rows each, keyed by ``id``. Of the ``differ``
rows that differ, 60% are changed in one column (balance, email or city), 20% exist only on the
left and 20% only on the right. ``expected.json`` lists them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: The state's columns besides the key ``id``, in order.
COLUMNS = ("name", "email", "balance", "tags", "city", "zip", "updated_at")

_ROW_SQL = """
  id,
  'Name ' || id AS name,
  'user' || id || '@example.com' AS email,
  ((hash(id, {seed}) % 2500000)::BIGINT / 100.0)::DECIMAL(12, 2) AS balance,
  (['vip', 'new', 'b2b', 'eu'])[1:(hash(id, {seed}) % 3)::BIGINT] AS tags,
  (['Lisbon', 'Berlin', 'Paris', 'Oslo'])[(hash(id, {seed} + 1) % 4)::BIGINT + 1] AS city,
  lpad((hash(id, {seed} + 2) % 100000)::VARCHAR, 5, '0') AS zip,
  TIMESTAMPTZ '2024-03-01 00:00:00+00' + to_microseconds((hash(id, {seed} + 3) % 86400000000)::BIGINT) AS updated_at
"""


def generate_states(rows: int, differ: int, out_dir: Path, seed: int = 42) -> dict[str, list[int]]:
    """Write left/right Parquet states and ``expected.json``; returns the differing ids by kind."""
    import duckdb
    import numpy as np

    rng = np.random.default_rng(seed)
    n_only = differ // 5
    n_changed = differ - 2 * n_only
    picked = rng.choice(rows, size=n_changed + n_only, replace=False) + 1
    expected = {
        "changed": sorted(int(i) for i in picked[:n_changed]),
        "left_only": sorted(int(i) for i in picked[n_changed:]),
        "right_only": list(range(rows + 1, rows + 1 + n_only)),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE base AS SELECT {_ROW_SQL.format(seed=seed)} FROM range(1, {rows + n_only + 1}) t(id)")
    changed = ",".join(map(str, expected["changed"])) or "NULL"
    left_only = ",".join(map(str, expected["left_only"])) or "NULL"
    opts = "(FORMAT parquet, COMPRESSION zstd)"
    con.execute(f"COPY (SELECT * FROM base WHERE id <= {rows} ORDER BY id) TO '{out_dir / 'left.parquet'}' {opts}")
    # A changed row differs in one column, picked by its id.
    con.execute(f"""
        COPY (
          SELECT id, name,
            CASE WHEN id IN ({changed}) AND id % 3 = 1 THEN 'changed' || email ELSE email END AS email,
            CASE WHEN id IN ({changed}) AND id % 3 = 0 THEN balance + 1 ELSE balance END AS balance,
            tags,
            CASE WHEN id IN ({changed}) AND id % 3 = 2 THEN 'Changed ' || city ELSE city END AS city,
            zip, updated_at
          FROM base WHERE id NOT IN ({left_only}) ORDER BY id
        ) TO '{out_dir / "right.parquet"}' {opts}""")
    (out_dir / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    return expected


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    from generate import parse_count

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=parse_count, required=True)
    p.add_argument("--differ", type=int, default=100)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--seed", type=int, default=42)
    a = p.parse_args(argv)
    generate_states(a.rows, a.differ, a.out_dir, a.seed)


if __name__ == "__main__":
    main()
