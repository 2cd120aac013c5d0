"""Benchmark logtool's operations against the raw DuckDB query that does the same work.

    python bench/run.py [--events 1m|10m] [--only ingest,replay-head,...] [--runs 3] [--record bench/RESULTS.md]

Every measured thing runs in a fresh child process, timed from spawn to exit (so process start
and imports count on both sides) with its own peak RSS read from ``wait4``. Each side runs
``--runs`` times, interleaved; the table gives the median. See bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from generate import generate, parse_count  # noqa: E402
from states import COLUMNS as STATE_COLUMNS  # noqa: E402
from states import generate_states  # noqa: E402

DATA = BENCH / "data"
#: This runner's scratch space: outputs, stderr, DuckDB spill files. Per process, because others
#: may run the benchmarks on the same machine at the same time.
SCRATCH = DATA / "run" / str(os.getpid())
CHILD = BENCH / "_child.py"
LAUNCH = BENCH / "_launch.py"
#: The console script of the interpreter running this file, so the CLI's start-up is measured.
LOGTOOL = Path(sys.executable).parent / "logtool"
MAPPING = ["--key-field", "id", "--entity-field", "table", "--op-field", "op", "--ts-field", "ts",
           "--data-field", "data", "--meta-field", "actor", "--meta-field", "txid"]  # fmt: skip
JSON_COLUMNS = (
    "{'ts': 'VARCHAR', 'table': 'VARCHAR', 'op': 'VARCHAR', 'id': 'BIGINT', 'data': 'JSON', "
    "'actor': 'VARCHAR', 'txid': 'BIGINT'}"
)
PARQUET = "(FORMAT parquet, COMPRESSION zstd)"
#: Rows per segment of the stand-in store, as logtool's ingest writes by default.
STANDIN_SEGMENT_ROWS = 1_000_000


def lit(value: object) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def lit_list(values: list[str]) -> str:
    return "[" + ", ".join(lit(v) for v in values) + "]"


# --------------------------------------------------------------------------- context


@dataclass
class Key:
    """One key of the store, with how many events touch it and the segments that hold them."""

    entity: str
    key: str
    events: int
    segments: list[str]


@dataclass
class StoreFacts:
    """What the read benchmarks need to know about the store, found once, untimed."""

    segments: list[str]  # in offset order
    events: int
    min_offset: int
    max_offset: int
    mid_offset: int
    events_to_mid: int
    hot: Key
    cold: Key


@dataclass
class Ctx:
    """The inputs of one benchmark session; the store and the states are made when first needed."""

    label: str  # "1m"
    events: int
    memory_limit: str
    threads: int | None
    rebuild_store: bool
    store_arg: Path | None
    notes: list[str] = field(default_factory=list)
    _store: Path | None = None
    _store_kind: str = ""
    _facts: StoreFacts | None = None
    _states: Path | None = None

    @property
    def log(self) -> Path:
        path = DATA / f"cdc-{self.label}.jsonl"
        if not path.exists():
            print(f"generating {path} ({self.events:,} events, seed 42) ...", file=sys.stderr)
            generate(self.events, path, seed=42)
        return path

    @property
    def spill(self) -> Path:
        path = SCRATCH / "spill"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self) -> dict[str, str]:
        """The environment of a logtool child: the same engine limits as the anchors get."""
        env = dict(os.environ, LOGTOOL_MEMORY_LIMIT=self.memory_limit, LOGTOOL_TEMP_DIR=str(self.spill))
        if self.threads:
            env["LOGTOOL_THREADS"] = str(self.threads)
        return env

    def sql_job(self, statements: list[str]) -> dict[str, Any]:
        return {"mode": "sql", "statements": statements, "memory_limit": self.memory_limit,
                "threads": self.threads, "temp_dir": str(self.spill)}  # fmt: skip

    @property
    def store(self) -> Path:
        if self._store is None:
            self._store, self._store_kind = self._ensure_store()
        return self._store

    @property
    def store_kind(self) -> str:
        _ = self.store
        return self._store_kind

    @property
    def facts(self) -> StoreFacts:
        if self._facts is None:
            self._facts = store_facts(self.store)
        return self._facts

    @property
    def states(self) -> Path:
        if self._states is None:
            out = DATA / f"states-{self.label}"
            if not (out / "right.parquet").exists():
                print(f"generating two {self.events:,}-row states in {out} ...", file=sys.stderr)
                generate_states(self.events, 100, out)
            self._states = out
        return self._states

    @property
    def cached_store(self) -> Path:
        return DATA / f"store-{self.label}"

    def keep_store(self, store: Path) -> None:
        """Keep a store that a measured `logtool ingest` made, if the read benchmarks need one."""
        if self.store_arg is None and (self.rebuild_store or not self.cached_store.exists()):
            shutil.rmtree(self.cached_store, ignore_errors=True)
            try:
                store.rename(self.cached_store)
            except OSError:  # another runner kept its store there meanwhile
                return
            self.rebuild_store = False

    def _ensure_store(self) -> tuple[Path, str]:
        if self.store_arg is not None:
            return self.store_arg, "given"
        store = self.cached_store
        if store.exists() and not self.rebuild_store and any((store / "segments").glob("*.parquet")):
            return store, "logtool ingest"
        ok, why = probe("ingest")
        if ok:
            shutil.rmtree(store, ignore_errors=True)
            print(f"building {store} with `logtool ingest` (untimed) ...", file=sys.stderr)
            m = measure(
                [str(LOGTOOL), "ingest", str(store), str(self.log), *MAPPING], self.env(), SCRATCH / "ingest.err"
            )
            if m.code == 0:
                return store, "logtool ingest"
            why = f"`logtool ingest` failed: {m.error}"
        standin = DATA / f"standin-{self.label}"
        if self.rebuild_store or not any((standin / "segments").glob("*.parquet")):
            print(f"building stand-in store {standin} with DuckDB (untimed) ...", file=sys.stderr)
            build_standin(self.log, standin, self.events)
        note = f"{why}: the read benchmarks ran on a stand-in store written by DuckDB ({standin.name})"
        print("note: " + note, file=sys.stderr)
        self.notes.append(note)
        return standin, "DuckDB stand-in"


def build_standin(log: Path, store: Path, events: int) -> None:
    """A store-shaped directory written by DuckDB: segments of the event schema, named by base
    offset, so the read anchors can be tried before ``logtool ingest`` exists."""
    import duckdb

    shutil.rmtree(store, ignore_errors=True)
    (store / "segments").mkdir(parents=True)
    con = duckdb.connect(config={"preserve_insertion_order": True})
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""
        CREATE TABLE ev AS
        SELECT rowid AS "offset", ts::TIMESTAMPTZ AS ts, "table" AS entity, id::VARCHAR AS key,
          NULL::VARCHAR AS prev_key, op, NULL::VARCHAR AS type, data::VARCHAR AS data, NULL::VARCHAR AS before,
          json_object('actor', actor, 'txid', txid)::VARCHAR AS meta,
          {{'id': txid::VARCHAR, 'position': NULL::VARCHAR, 'position_order': NULL::VARCHAR,
            'ts': NULL::TIMESTAMPTZ, 'aborted': NULL::BOOLEAN}} AS txn,
          {{'format': 'jsonl', 'file': {lit(log.name)}, 'line': rowid + 1, 'position': NULL::VARCHAR,
            'position_order': NULL::VARCHAR}} AS source,
          unhex(md5(rowid::VARCHAR)) AS salt,
          unhex(sha256(coalesce(data::VARCHAR, '') || rowid)) AS digest
        FROM read_json({lit(log)}, format='newline_delimited', columns={JSON_COLUMNS})""")
    for base in range(0, events, STANDIN_SEGMENT_ROWS):
        path = store / "segments" / f"{base:020d}-standin.parquet"
        where = f'"offset" >= {base} AND "offset" < {base + STANDIN_SEGMENT_ROWS}'
        con.execute(f'COPY (SELECT * FROM ev WHERE {where} ORDER BY "offset") TO {lit(path)} {PARQUET}')


def store_facts(store: Path) -> StoreFacts:
    """Segments in offset order, offsets, and a hot and a cold key with the segments holding them."""
    import duckdb

    files = sorted(str(p) for p in (store / "segments").glob("*.parquet"))
    if not files:
        raise SystemExit(f"{store} has no segments")
    con = duckdb.connect()
    scan = f"read_parquet({lit_list(files)}, filename = true)"
    per_file = con.execute(
        f'SELECT filename, min("offset"), max("offset"), count(*) FROM {scan} GROUP BY ALL'
    ).fetchall()
    per_file.sort(key=lambda r: r[1])
    segments = [r[0] for r in per_file]
    lo, hi, n = per_file[0][1], max(r[2] for r in per_file), sum(r[3] for r in per_file)
    mid = (lo + hi) // 2
    (to_mid,) = con.execute(f'SELECT count(*) FROM {scan} WHERE "offset" <= {mid}').fetchone() or (0,)
    con.execute(f"""CREATE TABLE k AS SELECT entity, key, count(*) AS n, list(DISTINCT filename) AS files
                    FROM {scan} WHERE key IS NOT NULL GROUP BY ALL""")

    def key(order: str) -> Key:
        row = con.execute(f"SELECT entity, key, n, files FROM k {order} LIMIT 1").fetchone()
        assert row is not None
        return Key(row[0], row[1], row[2], [f for f in segments if f in set(row[3])])

    hot = key("ORDER BY n DESC, entity, key")
    # The cold key, a GDPR erasure's typical target: a customer with a handful of events, in as
    # few segments as any key.
    cold = key("ORDER BY len(files), entity <> 'public.customers', abs(n - 5), entity, key")
    return StoreFacts(segments, n, lo, hi, mid, to_mid, hot, cold)


# --------------------------------------------------------------------------- measuring


@dataclass
class Measurement:
    seconds: float
    rss_mb: float
    code: int
    error: str = ""


def measure(
    argv: list[str], env: dict[str, str] | None, err_path: Path, stdout_path: Path | None = None
) -> Measurement:
    """Run ``argv`` to its end in a fresh process: wall seconds, its own peak RSS, exit code.

    The command is started by bench/_launch.py, which times it and reads its rusage; see there
    why the runner does not spawn it itself."""
    err_path.parent.mkdir(parents=True, exist_ok=True)
    report = err_path.with_name(err_path.name + ".measure.json")
    launcher = [sys.executable, str(LAUNCH), str(report), str(stdout_path or "-"), str(err_path), "--"]
    subprocess.run([*launcher, *argv], env=env, stdin=subprocess.DEVNULL, check=True)
    r = json.loads(report.read_text())
    error = ""
    if r["code"] != 0:
        lines = [ln for ln in err_path.read_text(errors="replace").splitlines() if ln.strip()]
        error = lines[-1].strip() if lines else f"exit code {r['code']}"
    return Measurement(r["seconds"], r["maxrss_kb"] / 1024, r["code"], error)


_probes: dict[str, tuple[bool, str]] = {}


def probe(command: str) -> tuple[bool, str]:
    """Whether ``logtool COMMAND`` exists, and if not, why (one line)."""
    if command not in _probes:
        if not LOGTOOL.exists():
            _probes[command] = (False, f"no logtool console script at {LOGTOOL}")
        else:
            p = subprocess.run([str(LOGTOOL), command, "--help"], capture_output=True, text=True,
                               stdin=subprocess.DEVNULL)  # fmt: skip
            text = p.stdout + p.stderr
            if p.returncode == 0:
                _probes[command] = (True, "")
            elif "No such command" in text:
                _probes[command] = (False, f"`logtool {command}`: No such command")
            else:
                last = [ln for ln in text.splitlines() if ln.strip()]
                _probes[command] = (
                    False,
                    f"`logtool {command} --help` fails: {last[-1].strip() if last else p.returncode}",
                )
    return _probes[command]


# --------------------------------------------------------------------------- the registry

Builder = Callable[[Ctx, Path], dict[str, Any]]


@dataclass(frozen=True)
class Side:
    """One row of an operation: the logtool command, its anchor, or another baseline.

    ``build(ctx, run_dir)`` returns the job: ``{"mode": "logtool", "args": [...], "stdout": file?}``
    for the CLI, or a job for bench/_child.py (``sql``, ``replay-loop``). It runs untimed."""

    label: str
    how: str
    build: Builder
    ok_codes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Operation:
    """A benchmark: the logtool command, the anchor SQL doing the same work, and more baselines."""

    name: str
    command: str  # the logtool sub-command, probed before the run
    logtool: Callable[[Ctx, Path], list[str]]  # the arguments after `logtool`
    anchor_label: str
    anchor: Callable[[Ctx, Path], list[str]]  # the anchor's SQL statements
    work: Callable[[Ctx], int]  # events processed, for events/s
    extras: tuple[Side, ...] = ()
    ok_codes: tuple[int, ...] = (0,)
    stdout: bool = False  # the logtool command writes its result to stdout (sent to a file)
    makes_store: bool = False  # a logtool run leaves run/store: kept as the read benchmarks' store

    def sides(self) -> list[Side]:
        def anchor(ctx: Ctx, run: Path) -> dict[str, Any]:
            return ctx.sql_job(self.anchor(ctx, run))

        def logtool(ctx: Ctx, run: Path) -> dict[str, Any]:
            return {"mode": "logtool", "args": self.logtool(ctx, run), "stdout": self.stdout}

        return [
            Side(f"anchor: {self.anchor_label}", "DuckDB SQL", anchor),
            *self.extras,
            Side(f"logtool {self.command}", "CLI", logtool, self.ok_codes),
        ]


def _sql_side(label: str, statements: Callable[[Ctx, Path], list[str]]) -> Side:
    return Side(label, "DuckDB SQL", lambda ctx, run: ctx.sql_job(statements(ctx, run)))


def _read_json(ctx: Ctx) -> str:
    return f"read_json({lit(ctx.log)}, format='newline_delimited', columns={JSON_COLUMNS})"


def _segments(ctx: Ctx, files: list[str] | None = None) -> str:
    return f"read_parquet({lit_list(files if files is not None else ctx.facts.segments)})"


def _copy_store(ctx: Ctx, run: Path) -> Path:
    """A private copy of the store for a command that rewrites it (copied untimed)."""
    dest = run / "store"
    shutil.copytree(ctx.store, dest)
    return dest


# ingest ---------------------------------------------------------------------------


def _ingest_anchor(ctx: Ctx, run: Path) -> list[str]:
    return [
        f"CREATE TABLE staging AS SELECT * FROM {_read_json(ctx)}",
        f'COPY (SELECT rowid AS "offset", * FROM staging) TO {lit(run / "out.parquet")} {PARQUET}',
    ]


def _ingest_plain(ctx: Ctx, run: Path) -> list[str]:
    return [f"COPY (SELECT * FROM {_read_json(ctx)}) TO {lit(run / 'out.parquet')} {PARQUET}"]


# replay ---------------------------------------------------------------------------


def _at(mid: bool) -> Callable[[Ctx], int | None]:
    return lambda ctx: ctx.facts.mid_offset if mid else None


def _replay_anchor(mid: bool) -> Callable[[Ctx, Path], list[str]]:
    def build(ctx: Ctx, run: Path) -> list[str]:
        at = _at(mid)(ctx)
        where = f'WHERE "offset" <= {at}' if at is not None else ""
        return [
            f"""
            COPY (
              SELECT entity, key, data FROM (
                SELECT entity, key, arg_max(data, "offset") AS data, arg_max(op, "offset") AS op
                FROM {_segments(ctx)} {where} GROUP BY ALL)
              WHERE op <> 'delete'
            ) TO {lit(run / "state.parquet")} {PARQUET}"""
        ]

    return build


def _replay_fold(mid: bool) -> Callable[[Ctx, Path], list[str]]:
    """The kv reducer in SQL: the latest full image per key, then the patches after it merged in."""

    def build(ctx: Ctx, run: Path) -> list[str]:
        at = _at(mid)(ctx)
        where = f'WHERE "offset" <= {at}' if at is not None else ""
        return [
            f"""
            COPY (
              WITH ev AS (SELECT entity, key, "offset", op, data FROM {_segments(ctx)} {where}),
              base AS (
                SELECT entity, key,
                  arg_max(op, "offset") FILTER (WHERE op <> 'patch') AS base_op,
                  max("offset") FILTER (WHERE op <> 'patch') AS base_offset,
                  arg_max(data, "offset") FILTER (WHERE op <> 'patch') AS base_data
                FROM ev GROUP BY entity, key),
              patches AS (
                SELECT ev.entity, ev.key, list(ev.data::JSON ORDER BY ev."offset") AS patches
                FROM ev JOIN base USING (entity, key)
                WHERE ev.op = 'patch' AND ev."offset" > coalesce(base.base_offset, -1)
                GROUP BY ev.entity, ev.key)
              SELECT b.entity, b.key,
                CASE WHEN p.patches IS NULL THEN b.base_data
                     ELSE list_reduce(p.patches, lambda a, x: json_merge_patch(a, x), b.base_data::JSON)::VARCHAR
                END AS data
              FROM base b LEFT JOIN patches p USING (entity, key)
              WHERE b.base_op IS NOT NULL AND b.base_op NOT IN ('delete', 'truncate')
            ) TO {lit(run / "state.parquet")} {PARQUET}"""
        ]

    return build


def _replay_loop(mid: bool) -> Builder:
    def build(ctx: Ctx, run: Path) -> dict[str, Any]:
        return {"mode": "replay-loop", "segments": ctx.facts.segments, "at_offset": _at(mid)(ctx),
                "out": str(run / "state.parquet")}  # fmt: skip

    return build


def _replay_logtool(mid: bool) -> Callable[[Ctx, Path], list[str]]:
    def build(ctx: Ctx, run: Path) -> list[str]:
        at = _at(mid)(ctx)
        return ["replay", str(ctx.store), *(["--at-offset", str(at)] if at is not None else []),
                "--format", "parquet", "-o", str(run / "state")]  # fmt: skip

    return build


def _replay(mid: bool) -> Operation:
    return Operation(
        name="replay-mid" if mid else "replay-head",
        command="replay",
        logtool=_replay_logtool(mid),
        anchor_label="latest row per key (arg_max), no patch folding",
        anchor=_replay_anchor(mid),
        work=lambda ctx: ctx.facts.events_to_mid if mid else ctx.facts.events,
        extras=(
            _sql_side("anchor + patches folded (kv rules in SQL)", _replay_fold(mid)),
            Side("python dict loop (kv rules)", "Python, pyarrow iter_batches", _replay_loop(mid)),
        ),
    )


# history --------------------------------------------------------------------------


def _pick(hot: bool) -> Callable[[Ctx], Key]:
    return lambda ctx: ctx.facts.hot if hot else ctx.facts.cold


def _history_sql(hot: bool, pruned: bool) -> Callable[[Ctx, Path], list[str]]:
    def build(ctx: Ctx, run: Path) -> list[str]:
        k = _pick(hot)(ctx)
        files = k.segments if pruned else None
        return [
            f"""
            COPY (
              SELECT "offset", ts, entity, key, op, data, before, meta FROM {_segments(ctx, files)}
              WHERE entity = {lit(k.entity)} AND key = {lit(k.key)} ORDER BY "offset"
            ) TO {lit(run / "history.jsonl")} (FORMAT json)"""
        ]

    return build


def _history(hot: bool) -> Operation:
    def logtool(ctx: Ctx, run: Path) -> list[str]:
        k = _pick(hot)(ctx)
        return ["history", str(ctx.store), k.key, "--entity", k.entity, "--format", "jsonl"]

    return Operation(
        name="history-hot" if hot else "history",
        command="history",
        logtool=logtool,
        anchor_label="WHERE key = ? over all segments",
        anchor=_history_sql(hot, pruned=False),
        work=lambda ctx: ctx.facts.events,
        extras=(_sql_side("WHERE key = ? over only the segments holding it", _history_sql(hot, pruned=True)),),
        stdout=True,
    )


# diff -----------------------------------------------------------------------------


def diff_anchor_sql(states: Path, out: Path) -> str:
    """The diff anchor: states/left.parquet FULL OUTER JOIN states/right.parquet on ``id``, every
    column compared with IS DISTINCT FROM, the differing rows written to ``out``."""
    left, right = states / "left.parquet", states / "right.parquet"
    changed = " OR ".join(f"l.{c} IS DISTINCT FROM r.{c}" for c in STATE_COLUMNS)
    return f"""
        COPY (
          SELECT coalesce(l.id, r.id) AS id,
            CASE WHEN r.id IS NULL THEN 'left-only' WHEN l.id IS NULL THEN 'right-only' ELSE 'changed' END AS change
          FROM read_parquet({lit(left)}) l FULL OUTER JOIN read_parquet({lit(right)}) r ON l.id = r.id
          WHERE l.id IS NULL OR r.id IS NULL OR {changed}
        ) TO {lit(out)} {PARQUET}"""


def _diff_anchor(ctx: Ctx, run: Path) -> list[str]:
    return [diff_anchor_sql(ctx.states, run / "diff.parquet")]


def _diff_logtool(ctx: Ctx, run: Path) -> list[str]:
    return ["diff", str(ctx.states / "left.parquet"), str(ctx.states / "right.parquet"), "--key", "id",
            "--format", "jsonl"]  # fmt: skip


def _reladiff(algorithm: str, reladiff: Path) -> Side:
    """reladiff (a separate install: ``pip install reladiff`` in its own venv) comparing the same
    two Parquet files, through views in a DuckDB database file made untimed in the run dir."""

    def build(ctx: Ctx, run: Path) -> dict[str, Any]:
        import duckdb

        db = run / "views.duckdb"
        con = duckdb.connect(str(db))
        for name in ("left", "right"):
            source = lit(ctx.states / f"{name}.parquet")
            con.execute(f"CREATE VIEW {name}_state AS SELECT * FROM read_parquet({source})")
        con.close()
        return {"mode": "command", "argv": [str(reladiff), f"duckdb://{db}", "left_state", "right_state",
                                            "-k", "id", "-c", "%", "-a", algorithm]}  # fmt: skip

    return Side(f"reladiff {algorithm} (views over the same Parquet files)", "reladiff CLI", build)


# compact and purge -----------------------------------------------------------------


def _compact_anchor(ctx: Ctx, run: Path) -> list[str]:
    return [
        f"""
        COPY (
          SELECT * FROM {_segments(ctx)}
          QUALIFY row_number() OVER (PARTITION BY entity, key ORDER BY "offset" DESC) = 1
          ORDER BY "offset"
        ) TO {lit(run / "compacted.parquet")} {PARQUET}"""
    ]


def _compact_logtool(ctx: Ctx, run: Path) -> list[str]:
    return ["compact", str(_copy_store(ctx, run)), "--yes"]


def _purge_anchor(ctx: Ctx, run: Path) -> list[str]:
    k = ctx.facts.cold
    return [
        f"""
        COPY (
          SELECT * FROM {_segments(ctx)} WHERE NOT (entity = {lit(k.entity)} AND key IS NOT DISTINCT FROM {lit(k.key)})
        ) TO {lit(run / "log.parquet")} {PARQUET}"""
    ]


def _purge_logtool(ctx: Ctx, run: Path) -> list[str]:
    k = ctx.facts.cold
    return ["purge", str(_copy_store(ctx, run)), "--entity", k.entity, "--key", k.key, "--yes"]


OPERATIONS: list[Operation] = [
    Operation(
        name="ingest",
        command="ingest",
        logtool=lambda ctx, run: ["ingest", str(run / "store"), str(ctx.log), *MAPPING],
        anchor_label='read_json -> staging table -> COPY rowid AS "offset" to Parquet',
        anchor=_ingest_anchor,
        work=lambda ctx: ctx.events,
        extras=(_sql_side("plain COPY read_json -> Parquet, no offsets", _ingest_plain),),
        makes_store=True,
    ),
    _replay(mid=False),
    _replay(mid=True),
    _history(hot=False),
    _history(hot=True),
    Operation(
        name="diff",
        command="diff",
        logtool=_diff_logtool,
        anchor_label="FULL OUTER JOIN on key, IS DISTINCT FROM",
        anchor=_diff_anchor,
        work=lambda ctx: 2 * ctx.events,
        ok_codes=(0, 1),  # diff(1): 1 means "different", which these two states are
        stdout=True,
    ),
    Operation(
        name="compact",
        command="compact",
        logtool=_compact_logtool,
        anchor_label="latest record per key to Parquet",
        anchor=_compact_anchor,
        work=lambda ctx: ctx.facts.events,
    ),
    Operation(
        name="purge",
        command="purge",
        logtool=_purge_logtool,
        anchor_label="rewrite the whole log without the key",
        anchor=_purge_anchor,
        work=lambda ctx: ctx.facts.events,
    ),
]


# --------------------------------------------------------------------------- running


@dataclass
class Row:
    op: str
    label: str
    how: str
    work: int
    runs: list[Measurement] = field(default_factory=list)
    skipped: str = ""
    primary: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.runs) and not self.skipped

    @property
    def median(self) -> float:
        return statistics.median(m.seconds for m in self.runs)

    @property
    def rss(self) -> float:
        return max(m.rss_mb for m in self.runs)


def run_side(ctx: Ctx, side: Side, run: Path) -> Measurement:
    """Build the side's job (untimed), then time it in a fresh process."""
    job = side.build(ctx, run)
    if job["mode"] == "logtool":
        out = run / "stdout" if job.get("stdout") else None
        return measure([str(LOGTOOL), *job["args"]], ctx.env(), run / "stderr", out)
    if job["mode"] == "command":
        return measure(job["argv"], None, run / "stderr", run / "stdout")
    job_path = run / "job.json"
    job_path.write_text(json.dumps(job))
    return measure([sys.executable, str(CHILD), job["mode"], str(job_path)], None, run / "stderr")


def run_operation(ctx: Ctx, op: Operation, runs: int, anchors_anyway: bool) -> list[Row]:
    """Run every side of ``op`` ``runs`` times, interleaved; a side that fails stops being run."""
    ok, why = probe(op.command)
    if not ok and not anchors_anyway:
        note = f"{op.name}: skipped ({why})"
        print("note: " + note, file=sys.stderr)
        ctx.notes.append(note)
        return []
    work = op.work(ctx)
    sides = op.sides()
    rows = [Row(op.name, s.label, s.how, work, primary=(i == 0)) for i, s in enumerate(sides)]
    if not ok:
        rows[-1].skipped = why
        ctx.notes.append(f"{op.name}: logtool side skipped ({why}); anchors measured")
    for r in range(runs):
        for side, row in zip(sides, rows, strict=True):
            if row.skipped:
                continue
            run = SCRATCH / f"{op.name}-{r}"
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir(parents=True)
            try:
                m = run_side(ctx, side, run)
                if op.makes_store and side is sides[-1] and m.code == 0:
                    ctx.keep_store(run / "store")
            finally:
                shutil.rmtree(run, ignore_errors=True)
            print(f"  {op.name:<12} {side.label[:60]:<60} run {r + 1}: {m.seconds:8.2f} s  {m.rss_mb:7.0f} MB"
                  + (f"  FAILED ({m.code}): {m.error}" if m.code not in side.ok_codes else ""),
                  file=sys.stderr)  # fmt: skip
            if m.code not in side.ok_codes:
                row.skipped = f"failed (exit {m.code}): {m.error}"
                ctx.notes.append(f"{op.name}: {side.label} {row.skipped}")
                continue
            row.runs.append(m)
    return rows


def fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.0f}k"


def table(rows: list[Row]) -> str:
    """The results as a markdown table; ratios are to the operation's primary anchor."""
    out = ["| operation | what | how | runs | median s | events/s | × anchor | peak RSS MB |",
           "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    anchors = {r.op: r for r in rows if r.primary and r.ok}
    for r in rows:
        if not r.ok:
            status = "failed" if r.skipped.startswith("failed") else "skipped"
            out.append(f"| {r.op} | {r.label} | {r.how} | {status} | – | – | – | – |")
            continue
        a = anchors.get(r.op)
        ratio = f"{r.median / a.median:.2f}" if a else "–"
        out.append(f"| {r.op} | {r.label} | {r.how} | {len(r.runs)} | {r.median:.2f} | {fmt_rate(r.work / r.median)} "
                   f"| {ratio} | {r.rss:.0f} |")  # fmt: skip
    return "\n".join(out)


def claims(rows: list[Row]) -> list[str]:
    """Checks of the stated targets that need two rows: the Python-loop replay against logtool's."""
    lines = []
    by = {(r.op, r.label): r for r in rows if r.ok}
    for op in ("replay-head", "replay-mid"):
        loop, lt = by.get((op, "python dict loop (kv rules)")), by.get((op, "logtool replay"))
        if loop and lt:
            lines.append(f"{op}: python dict loop / logtool = {loop.median / lt.median:.1f}x (target: at least 20x)")
    return lines


def _load(load: tuple[float, ...]) -> str:
    return "/".join(f"{x:.1f}" for x in load)


def machine_facts(ctx: Ctx, load_before: tuple[float, ...]) -> list[str]:
    """Date, CPU, cores, RAM, versions, settings and what a child process costs to start."""
    import duckdb
    import pyarrow

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal"))  # fmt: skip
        ram = f"{mem_kb / 1024**2:.1f} GiB"
    except OSError:
        ram = "?"
    rev = subprocess.run(["git", "-C", str(BENCH), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    startup = [measure([sys.executable, "-c", "import duckdb"], None, SCRATCH / "startup.err").seconds
               for _ in range(3)]  # fmt: skip
    facts = [
        f"date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; logtool commit {rev.stdout.strip() or '?'}",
        f"machine: {cpu}, {os.cpu_count()} cores, {ram} RAM; {platform.system()} {platform.release()}",
        f"load average (1/5/15 min) before: {_load(load_before)}, after: {_load(os.getloadavg())} "
        "(where above the core count, other work shared the machine and the figures are noisier)",
        f"python {platform.python_version()}, duckdb {duckdb.__version__}, pyarrow {pyarrow.__version__}",
        f"log: {ctx.log.name} ({ctx.events:,} events, {ctx.log.stat().st_size / 1e6:,.0f} MB); "
        f"engine: memory limit {ctx.memory_limit}, threads {ctx.threads or 'all'} (both sides)",
        f"a child process (python + import duckdb) takes {statistics.median(startup):.2f} s to start: "
        "it is in every figure, logtool's and the anchors'; logtool's modules are byte-compiled first, as an install leaves them",
    ]
    if ctx._store is not None:
        f = ctx.facts
        facts.append(f"store: {ctx.store_kind}, {len(f.segments)} segments, offsets {f.min_offset}..{f.max_offset}, "
                     f"replay-mid at offset {f.mid_offset}; history/purge key {f.cold.entity}/{f.cold.key} "
                     f"({f.cold.events} events, {len(f.cold.segments)} segment), history-hot key "
                     f"{f.hot.entity}/{f.hot.key} ({f.hot.events} events, {len(f.hot.segments)} segments)")  # fmt: skip
    return facts


def compile_logtool() -> None:
    """Byte-compile logtool's modules, as installing a package does. An editable install run with
    PYTHONDONTWRITEBYTECODE=1 has no .pyc files, and every CLI start would compile its modules
    again (about 0.05 s), a cost no installed logtool pays."""
    import compileall

    import logtool

    compileall.compile_dir(str(Path(logtool.__file__).parent), quiet=1)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", default="1m", help="log size: 1m or 10m (data/cdc-SIZE.jsonl, generated if missing)")
    p.add_argument("--only", default="", help="comma-separated operations: " + ",".join(o.name for o in OPERATIONS))
    p.add_argument("--runs", type=int, default=3, help="runs of each side (median reported); at least 3")
    p.add_argument("--record", type=Path, help="append the table and machine facts to this markdown file")
    p.add_argument("--memory-limit", default=os.environ.get("LOGTOOL_MEMORY_LIMIT", "2GB"),
                   help="DuckDB memory limit for both sides (logtool's default: 2GB)")  # fmt: skip
    p.add_argument("--threads", type=int, help="DuckDB threads for both sides (default: all cores)")
    p.add_argument("--store", type=Path, help="read benchmarks use this store instead of data/store-SIZE")
    p.add_argument("--rebuild-store", action="store_true", help="re-ingest data/store-SIZE before the read benchmarks")
    p.add_argument("--reladiff", type=Path, help="a reladiff executable: the diff benchmark also times it "
                   "(joindiff and hashdiff) on the same two states")  # fmt: skip
    p.add_argument("--anchors-anyway", action="store_true",
                   help="measure the anchors of an operation whose logtool command does not exist yet")  # fmt: skip
    a = p.parse_args(argv)
    if a.runs < 3:
        p.error("--runs must be at least 3")
    label = a.events.strip().lower()
    ctx = Ctx(label, parse_count(label), a.memory_limit, a.threads, a.rebuild_store, a.store)
    wanted = [s.strip() for s in a.only.split(",") if s.strip()]
    unknown = set(wanted) - {o.name for o in OPERATIONS}
    if unknown:
        p.error(f"unknown operation(s): {', '.join(sorted(unknown))}")
    ops = [o for o in OPERATIONS if not wanted or o.name in wanted]
    if a.reladiff and not (a.reladiff.is_file() and os.access(a.reladiff, os.X_OK)):
        p.error(f"--reladiff {a.reladiff}: not an executable file (install reladiff in a venv of its own, see README)")
    if a.reladiff:
        extra = tuple(_reladiff(algorithm, a.reladiff.absolute()) for algorithm in ("joindiff", "hashdiff"))
        ops = [dataclasses.replace(o, extras=o.extras + extra) if o.name == "diff" else o for o in ops]

    compile_logtool()
    load_before = os.getloadavg()
    rows: list[Row] = []
    for op in ops:
        print(f"== {op.name}", file=sys.stderr)
        rows += run_operation(ctx, op, a.runs, a.anchors_anyway)
    facts = machine_facts(ctx, load_before)
    shutil.rmtree(SCRATCH, ignore_errors=True)
    notes = claims(rows) + ctx.notes
    report = "\n".join([*(f"- {f}" for f in facts), "", table(rows), "", *(f"- {n}" for n in notes)])
    print(report)
    if a.record:
        with open(a.record, "a") as f:
            f.write(f"\n## {ctx.events:,} events ({label}), {dt.datetime.now(dt.UTC):%Y-%m-%d}\n\n{report}\n")
        print(f"appended to {a.record}", file=sys.stderr)


if __name__ == "__main__":
    main()
