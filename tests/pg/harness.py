"""A throwaway PostgreSQL 15 cluster, a varied workload, and captures of its logical decoding output.

``run_capture(out_dir)`` creates a cluster in a temp dir, creates the replication slots, runs the
workload (recording checkpoints: the WAL position just after a commit and an exact text dump of every
table), captures every slot with ``pg_recvlogical`` up to the final position, stops the cluster and
returns a :class:`PgCapture` naming the files. Nothing outside the temp dirs is touched.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_BIN = Path(os.environ.get("LOGTOOL_PG_BIN", "/usr/lib/postgresql/15/bin"))
DBNAME = "logtool"
TIMEOUT = 60

#: slot name -> (plugin, pg_recvlogical options)
SLOTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "wal2json": (
        "wal2json",
        ("format-version=2", "include-lsn=1", "include-xids=1", "include-timestamp=1", "include-pk=1"),
    ),
    "wal2json_v1": ("wal2json", ("format-version=1", "include-lsn=1", "include-xids=1", "include-timestamp=1")),
    "wal2json_v1_pretty": (
        "wal2json",
        (
            "format-version=1",
            "include-lsn=1",
            "include-xids=1",
            "include-timestamp=1",
            "include-pk=1",
            "pretty-print=1",
        ),
    ),
    "test_decoding": ("test_decoding", ("include-xids=1", "include-timestamp=1")),
}

TABLES = ("customers", "measures", "lines", "tally", "scratch", "scratch2")

#: Each table's primary key (tally has none: REPLICA IDENTITY FULL); its dump is sorted by it.
KEYS = {
    "customers": ("id",),
    "measures": ("id",),
    "lines": ("order_id", "line"),
    "scratch": ("id",),
    "scratch2": ("id",),
}
#: The keys as ``--key-field`` entries, for the outputs that do not name them.
KEY_FIELDS = tuple(f"public.{table}:{col}" for table, cols in KEYS.items() for col in cols)

SCHEMA_SQL = """
CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, email text, balance numeric(40,10), doc text);
-- EXTERNAL: no compression, so a 12 kB doc is surely stored out of line (TOASTed)
ALTER TABLE customers ALTER COLUMN doc SET STORAGE EXTERNAL;
CREATE TABLE measures (id bigint PRIMARY KEY, big numeric, r real, d double precision, j jsonb, tags text[],
                       at timestamptz, ok boolean);
CREATE TABLE lines (order_id integer, line smallint, qty integer, PRIMARY KEY (order_id, line));
CREATE TABLE tally (who text, n integer);
ALTER TABLE tally REPLICA IDENTITY FULL;
CREATE TABLE scratch (id integer PRIMARY KEY, v text);
CREATE TABLE scratch2 (id integer PRIMARY KEY);
"""

BIG_NUMERIC = "123456789012345678901234567890.123456789"
TINY_NUMERIC = "-0.000000000000000000000000000001"
BALANCE = "98765432109876543210987654321.0123456789"


def big_doc(seed: str) -> str:
    """12 kB of text that does not compress: stored out of line."""
    import hashlib

    return "".join(hashlib.sha256(f"{seed}{i}".encode()).hexdigest() for i in range(192))


@dataclass
class TableDump:
    """Every row of one table at a checkpoint, each value as PostgreSQL's text output (None for NULL)."""

    columns: list[str]
    types: list[str]  # format_type() of each column: "integer", "numeric(40,10)", "text[]", ...
    rows: list[tuple[str | None, ...]]


@dataclass
class Checkpoint:
    """The WAL position just after a commit, and what every table held then."""

    name: str
    lsn: str
    last_xid: str
    tables: dict[str, TableDump]  # entity (schema.table) -> dump; tables not yet created are absent


@dataclass
class PgCapture:
    """The captured plugin outputs and the checkpoints of one workload run."""

    wal2json: Path  # format-version 2
    wal2json_v1: Path
    wal2json_v1_pretty: Path
    test_decoding: Path
    checkpoints: list[Checkpoint]
    final_lsn: str
    facts: dict[str, Any] = field(default_factory=dict)  # xids and values the tests check against


class PgUnavailable(RuntimeError):
    """PostgreSQL 15, wal2json or psycopg is not installed here."""


def missing() -> str | None:
    """Why the harness cannot run here, or None if it can."""
    for exe in ("initdb", "pg_ctl", "postgres", "pg_recvlogical"):
        if not (PG_BIN / exe).exists():
            return f"{PG_BIN / exe} not found (apt-get install postgresql postgresql-15-wal2json)"
    lib = (
        subprocess.run([PG_BIN / "pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip()
        if (PG_BIN / "pg_config").exists()
        else "/usr/lib/postgresql/15/lib"
    )
    if not (Path(lib) / "wal2json.so").exists():
        return f"wal2json.so not in {lib} (apt-get install postgresql-15-wal2json)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]')"
    return None


def _server_user() -> str | None:
    """The user to run the server as: root cannot run postgres, so use the packaged 'postgres' user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as e:
        raise PgUnavailable("running as root and there is no 'postgres' user to run the server as") from e
    return "postgres"


def _as_server(cmd: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def cluster() -> Iterator[str]:
    """Start a throwaway cluster; yields a libpq connection string for the workload database."""
    why = missing()
    if why:
        raise PgUnavailable(why)
    user = _server_user()
    home = Path(tempfile.mkdtemp(prefix="logtool-pg-"))
    data = home / "data"
    if user:
        shutil.chown(home, user)
    port = _free_port()
    started = False
    try:
        subprocess.run(
            _as_server([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                        "--no-sync", "--encoding=UTF8", "--locale=C"], user),
            check=True, capture_output=True, timeout=TIMEOUT,
        )  # fmt: skip
        settings = {
            "wal_level": "logical",
            "max_replication_slots": "8",
            "max_wal_senders": "8",
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{home}'",
            "fsync": "off",
            "full_page_writes": "off",
            "shared_buffers": "16MB",
            "timezone": "'UTC'",
            "autovacuum": "off",
        }
        with open(data / "postgresql.conf", "a") as f:
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())
        subprocess.run(
            _as_server([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"), "-w", "start"], user),
            check=True,
            capture_output=True,
            timeout=TIMEOUT,
        )
        started = True
        admin = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DBNAME}")
        yield f"host=127.0.0.1 port={port} user=postgres dbname={DBNAME}"
    finally:
        if started:
            subprocess.run(
                _as_server([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], user),
                capture_output=True,
                timeout=TIMEOUT,
            )
        shutil.rmtree(home, ignore_errors=True)


def _dump(conn: Any) -> dict[str, TableDump]:
    """Every workload table's rows, each value cast to text by the server (exact, NULL as None)."""
    tables: dict[str, TableDump] = {}
    for table in TABLES:
        cols, types = [], []
        for name, typ in conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (f"public.{table}",),
        ):
            cols.append(name)
            types.append(typ)
        if not cols:
            continue
        quoted = [f'"{c}"' for c in cols]
        order = ", ".join(KEYS.get(table, quoted))
        select = ", ".join(f"{q}::text" for q in quoted)
        rows = [tuple(r) for r in conn.execute(f"SELECT {select} FROM {table} ORDER BY {order}")]
        tables[f"public.{table}"] = TableDump(cols, types, rows)
    return tables


def _lsn_after_commit(conn: Any) -> str:
    # pg_current_wal_lsn() is the write position: at or after the end of the last commit record
    # (synchronous_commit is on), and before the next commit record.
    return str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])


def _xid(conn: Any) -> str:
    # only inside a transaction: in autocommit txid_current() would burn an xid of its own
    return str(conn.execute("SELECT txid_current()").fetchone()[0])


def workload(dsn: str) -> tuple[list[Checkpoint], dict[str, Any]]:
    """Run the workload; returns the checkpoints and facts the tests check (xids, values)."""
    import psycopg

    facts: dict[str, Any] = {}
    checkpoints: list[Checkpoint] = []
    with (
        psycopg.connect(dsn, autocommit=True) as a,
        psycopg.connect(dsn, autocommit=True) as b,
        psycopg.connect(dsn, autocommit=True) as observer,  # sees only what is committed
    ):

        def checkpoint(name: str, last_xid: str) -> None:
            checkpoints.append(Checkpoint(name, _lsn_after_commit(observer), last_xid, _dump(observer)))

        with a.transaction():
            a.execute(
                "INSERT INTO customers VALUES (1, 'Ann O''Brien', 'ann@x', %s, 'short doc'), "
                "(2, 'Bob', NULL, 0, %s), (3, E'Multi\\nLine\\n\\nName', 'c@x', -1.5, NULL)",
                (BALANCE, big_doc("first")),
            )
            facts["first_xid"] = _xid(a)
        with a.transaction():
            a.execute(
                "INSERT INTO measures VALUES "
                '(1, %s, 1.5, 0.1, \'{"a": [1, 2.50, {"b": null}], "big": 12345678901234567890123}\', '
                "'{x,\"y z\",NULL}', '2026-03-05 12:34:56.789012+00', true), "
                "(2, 'NaN', 'NaN', 'Infinity', 'null', '{}', NULL, false), "
                "(3, %s, 3.4028235e+38, '-Infinity', '\"text\"', '{{1,2},{3,4}}', '2001-02-03 04:05:06+07', NULL)",
                (BIG_NUMERIC, TINY_NUMERIC),
            )
        a.execute("INSERT INTO lines VALUES (1, 1, 5), (1, 2, 7), (2, 1, 1)")
        a.execute("INSERT INTO tally VALUES ('a', 1), ('a', 1), ('c', 3), ('c', 3), ('b', 2)")
        with a.transaction():
            a.execute("INSERT INTO scratch VALUES (1, 'x'), (2, 'y')")
            a.execute("INSERT INTO scratch2 VALUES (1)")
            xid = _xid(a)
        checkpoint("inserted", xid)

        a.execute("UPDATE customers SET balance = balance + 1.5 WHERE id = 1")
        with a.transaction():
            a.execute("UPDATE customers SET email = 'bob@x' WHERE id = 2")  # doc stays TOASTed, unchanged
            facts["toast_untouched_xid"] = _xid(a)
        with a.transaction():
            a.execute("UPDATE customers SET doc = %s WHERE id = 2", (big_doc("second"),))
            facts["toast_updated_xid"] = _xid(a)
        with a.transaction():
            a.execute("UPDATE customers SET id = 10 WHERE id = 1")
            a.execute("UPDATE lines SET line = 3 WHERE order_id = 1 AND line = 2")
            facts["key_change_xid"] = _xid(a)
        # one of two identical rows: a table without a key is a multiset
        a.execute("UPDATE tally SET n = 5 WHERE ctid = (SELECT min(ctid) FROM tally WHERE who = 'a')")
        a.execute("DELETE FROM tally WHERE ctid = (SELECT max(ctid) FROM tally WHERE who = 'c')")
        with a.transaction():
            a.execute("DELETE FROM customers WHERE id = 3")
            a.execute("DELETE FROM lines WHERE order_id = 2")
        with a.transaction():
            a.execute("INSERT INTO scratch VALUES (3, 'z')")
            a.execute("UPDATE scratch SET v = 'x2' WHERE id = 1")
            a.execute("SELECT pg_logical_emit_message(true, 'app', E'hello ''world''\\nnext')")
            facts["message_xid"] = _xid(a)
        # non-transactional, right after a multi-change transaction (wal2json 2.5's v1 writes it badly)
        a.execute("SELECT pg_logical_emit_message(false, 'audit', 'ping')")
        a.execute("BEGIN")
        a.execute("INSERT INTO customers VALUES (99, 'never', NULL, 0, NULL)")
        a.execute("UPDATE measures SET r = 99 WHERE id = 1")
        facts["rolled_back_xid"] = _xid(a)
        a.execute("ROLLBACK")
        with a.transaction():
            a.execute("INSERT INTO scratch VALUES (4, 'kept')")
            a.execute("SAVEPOINT s")
            a.execute("INSERT INTO scratch VALUES (5, 'rolled back to savepoint')")
            a.execute("ROLLBACK TO SAVEPOINT s")
            xid = _xid(a)
        checkpoint("updated", xid)

        a.execute('ALTER TABLE measures ADD COLUMN "Added Note" text')
        with a.transaction():
            a.execute("UPDATE measures SET \"Added Note\" = 'hi', r = 2.25 WHERE id = 1")
            a.execute("INSERT INTO measures (id, big, \"Added Note\") VALUES (4, 1e-20, 'new row')")
            facts["added_column_xid"] = _xid(a)
        with a.transaction():
            a.execute("TRUNCATE scratch, scratch2")
            xid = _xid(a)
        checkpoint("truncated", xid)

        # interleaved: a starts first, b commits first
        a.execute("BEGIN")
        a.execute("INSERT INTO customers VALUES (20, 'first started', NULL, 20, NULL)")
        facts["started_first_xid"] = _xid(a)
        b.execute("BEGIN")
        b.execute("INSERT INTO customers VALUES (21, 'second started', NULL, 21, NULL)")
        b.execute("UPDATE customers SET name = 'Bob B' WHERE id = 2")
        facts["committed_first_xid"] = _xid(b)
        b.execute("COMMIT")
        checkpoint("interleaved", facts["committed_first_xid"])
        a.execute("UPDATE customers SET balance = 20.5 WHERE id = 20")
        a.execute("COMMIT")
        checkpoint("final", facts["started_first_xid"])
    return checkpoints, facts


def _capture(dsn: str, out_dir: Path, endpos: str) -> dict[str, Path]:
    procs: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
    for slot, (_plugin, options) in SLOTS.items():
        path = out_dir / f"{slot}.out"
        cmd = [str(PG_BIN / "pg_recvlogical"), "-d", dsn, "--slot", slot, "--start", "--no-loop",
               "--endpos", endpos, "-f", str(path), "-s", "1", "-F", "0"]  # fmt: skip
        for opt in options:
            cmd += ["-o", opt]
        procs[slot] = (subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE), path)
    deadline = time.monotonic() + TIMEOUT
    for slot, (proc, _path) in procs.items():
        try:
            _out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RuntimeError(f"pg_recvlogical for slot {slot} did not reach {endpos}") from None
        if proc.returncode != 0:
            raise RuntimeError(f"pg_recvlogical for slot {slot} failed: {err.decode(errors='replace')}")
    return {slot: path for slot, (_proc, path) in procs.items()}


def save_checkpoints(checkpoints: list[Checkpoint], path: Path) -> None:
    """Write checkpoints as JSON (read back by load_checkpoints)."""
    with open(path, "w") as f:
        json.dump(
            [
                {"name": c.name, "lsn": c.lsn, "last_xid": c.last_xid,
                 "tables": {t: {"columns": d.columns, "types": d.types, "rows": d.rows} for t, d in c.tables.items()}}
                for c in checkpoints
            ],
            f, indent=1,
        )  # fmt: skip


def load_checkpoints(path: Path) -> list[Checkpoint]:
    """Checkpoints saved by save_checkpoints."""
    with open(path) as f:
        return [
            Checkpoint(
                c["name"], c["lsn"], c["last_xid"],
                {t: TableDump(d["columns"], d["types"], [tuple(r) for r in d["rows"]]) for t, d in c["tables"].items()},
            )
            for c in json.load(f)
        ]  # fmt: skip


def run_capture(out_dir: Path) -> PgCapture:
    """Start a cluster, run the workload, capture every slot into out_dir, and stop the cluster.

    Also writes ``checkpoints.json`` (positions and dumps) into out_dir. Raises PgUnavailable if
    PostgreSQL 15, wal2json or psycopg is missing.
    """
    import psycopg

    out_dir.mkdir(parents=True, exist_ok=True)
    with cluster() as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)
            for slot, (plugin, _options) in SLOTS.items():
                conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (slot, plugin))
        checkpoints, facts = workload(dsn)
        final_lsn = checkpoints[-1].lsn
        paths = _capture(dsn, out_dir, final_lsn)
    capture = PgCapture(
        wal2json=paths["wal2json"],
        wal2json_v1=paths["wal2json_v1"],
        wal2json_v1_pretty=paths["wal2json_v1_pretty"],
        test_decoding=paths["test_decoding"],
        checkpoints=checkpoints,
        final_lsn=final_lsn,
        facts=facts,
    )
    save_checkpoints(checkpoints, out_dir / "checkpoints.json")
    return capture


#: Where the trimmed samples of a capture are kept.
SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs" / "postgres"
#: sample file name -> PgCapture attribute
SAMPLE_FILES = {
    "wal2json.jsonl": "wal2json",
    "wal2json_v1.json": "wal2json_v1",
    "wal2json_v1_pretty.json": "wal2json_v1_pretty",
    "test_decoding.txt": "test_decoding",
}
_DOC_RUN = re.compile(r"([0-9a-f]{32})[0-9a-f]{200,}")


def write_samples(capture: PgCapture, out_dir: Path) -> None:
    """The captures and checkpoints as small samples: every 12 kB doc cut to its first 32 characters
    (the same cut in captures and dumps, so they still agree)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, attr in SAMPLE_FILES.items():
        text = getattr(capture, attr).read_text(encoding="utf-8")
        (out_dir / name).write_text(_DOC_RUN.sub(r"\1", text), encoding="utf-8")
    trimmed = [
        Checkpoint(c.name, c.lsn, c.last_xid, {
            t: TableDump(d.columns, d.types, [tuple(_DOC_RUN.sub(r"\1", v) if v else v for v in r) for r in d.rows])
            for t, d in c.tables.items()
        })
        for c in capture.checkpoints
    ]  # fmt: skip
    save_checkpoints(trimmed, out_dir / "checkpoints.json")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Capture the workload's logical decoding output.")
    parser.add_argument("out_dir", type=Path, help="where the captures and checkpoints.json go")
    parser.add_argument("--samples", type=Path, help="also write trimmed samples here (sample_logs/postgres)")
    args = parser.parse_args()
    result = run_capture(args.out_dir)
    if args.samples:
        write_samples(result, args.samples)
    print(args.out_dir)
