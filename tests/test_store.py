"""The store: opening and creating, atomic numbered commits in a hash chain, the writer lock,
segment files, and the read-only views (info, log)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import logtool
from logtool.errors import LockedError, StoreError
from logtool.formats.base import Mapping
from logtool.schema import event_schema
from logtool.store import Store, canonical_json, commit_hash, file_sha256

Cli = Callable[..., Any]  # the `cli` fixture of conftest.py
WriteLines = Callable[[Path, Iterable[str | bytes]], Path]  # the `write_lines` fixture


def _ingest(store: Path, f: Path, **kw: Any) -> Any:
    return logtool.ingest(str(store), [str(f)], mapping=Mapping(key_fields=("id",), ts_field="ts"), **kw)


@pytest.fixture
def events_file(write_lines: WriteLines, tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "orders.jsonl",
        [json.dumps({"id": i, "ts": f"2024-01-0{1 + i % 3}T00:00:00Z", "v": i}) for i in range(7)],
    )


# --------------------------------------------------------------------------- open / create


def test_open_and_create_refuse_what_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such store"):
        Store.open(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a store directory"):
        Store.open(tmp_path / "file")
    with pytest.raises(StoreError, match="is a file, not a store directory"):
        Store.create(tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not a logtool store"):
        Store.open(tmp_path / "other")
    with pytest.raises(StoreError, match="exists and is not a logtool store"):
        Store.create(tmp_path / "other")
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["notes.txt"]  # left untouched


def test_create_makes_the_layout(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "new", tmp_path / "empty"):
        Store.create(path)
        assert sorted(p.name for p in path.iterdir()) == ["_log", "quarantine", "segments", "snapshots"]
        state = Store.open(path).state()
        assert (state.version, state.next_offset, state.files, state.head_hash) == (-1, 0, {}, None)


def test_a_store_that_cannot_be_made_there_is_one_line(cli: Cli, tmp_path: Path, events_file: Path) -> None:
    """A store under a regular file, or in a folder where no directory can be made, was an
    internal error (NotADirectoryError, FileNotFoundError)."""
    (tmp_path / "plainfile").write_text("x")
    for where, why in ((tmp_path / "plainfile" / "store", "Not a directory"), (Path("/proc/store"), "No such file or directory")):
        r = cli("ingest", where, events_file, "--key-field", "id")
        assert (r.code, r.out) == (2, "")
        assert r.errors() == [f"error: {where}: cannot create the store here ({why})"], r.err
        assert "hint: name a directory path where one can be made" in r.err


def test_a_failed_first_ingest_leaves_no_store(cli: Cli, write_lines: WriteLines, tmp_path: Path, events_file: Path) -> None:
    """An ingest failing on its input (a damaged .gz, a gzipped Parquet, a bad record) left an
    empty store behind; the store goes with it, and an empty directory given is left empty. A
    store that holds a commit stays."""
    import gzip

    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b'{"id":1}\n')[:15])
    bad = write_lines(tmp_path / "bad.jsonl", ['{"id":1}', "{nope"])
    parquet = tmp_path / "t.parquet.gz"
    pq.write_table(pa.table({"id": [1]}), tmp_path / "t.parquet")
    parquet.write_bytes(gzip.compress((tmp_path / "t.parquet").read_bytes()))
    for i, given in enumerate((cut, bad, parquet)):
        r = cli("ingest", tmp_path / f"s{i}", given, "--key-field", "id")
        assert r.code == 2 and not (tmp_path / f"s{i}").exists(), r.err
    (tmp_path / "empty").mkdir()
    assert cli("ingest", tmp_path / "empty", cut, "--key-field", "id").code == 2
    assert list((tmp_path / "empty").iterdir()) == []
    assert cli("ingest", tmp_path / "kept", events_file, bad, "--key-field", "id").code == 2  # the first file went in
    assert Store.open(tmp_path / "kept").state().version == 0


# --------------------------------------------------------------------------- commits


def test_commit_needs_the_lock(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s")
    with pytest.raises(StoreError, match="without the writer lock"):
        store.commit("test", {})
    assert store.commit_paths() == []


def test_commits_are_numbered_canonical_and_chained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGTOOL_ACTOR", "tester@lab")
    store = Store.create(tmp_path / "s")
    with store.writer("test"):
        a = store.commit("one", {"x": 1}, info={"next_offset": 5})
        b = store.commit("two", {"y": [1, 2]}, gaps=[[0, 4]])
    assert [p.name for p in store.commit_paths()] == ["00000000.json", "00000001.json"]
    assert [sorted(p.name for p in (tmp_path / "s" / "_log").iterdir())] == [["00000000.json", "00000001.json", "HEAD"]]
    assert json.loads((tmp_path / "s" / "_log" / "HEAD").read_text()) == {"version": 1}  # the newest commit
    for p, body in zip(store.commit_paths(), (a, b), strict=True):
        assert p.read_bytes() == (canonical_json(body) + "\n").encode()
        assert body["hash"] == commit_hash(body)
        assert body["actor"] == "tester@lab"
    assert (a["version"], a["prev"], a["operation"], a["params"]) == (0, None, "one", {"x": 1})
    assert (b["version"], b["prev"], b["operation"], b["gaps"]) == (1, a["hash"], "two", [[0, 4]])
    state = store.state()
    assert (state.version, state.head_hash, state.next_offset, state.gaps) == (1, b["hash"], 5, [[0, 4]])
    assert store.commits() == [a, b]


def test_commit_never_overwrites(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s")
    with store.writer("test"):
        one = store.commit("one", {})
        # another writer published number 1 behind our back
        theirs: dict[str, Any] = {"theirs": True, "version": 1, "prev": one["hash"]}
        theirs["hash"] = commit_hash(theirs)
        (store.log_dir / "00000001.json").write_text(canonical_json(theirs) + "\n")
        store.state = lambda: logtool.store.fold(store.commits()[:1])  # type: ignore[method-assign]
        with pytest.raises(StoreError, match="already exists"):
            store.commit("two", {})
    assert (store.log_dir / "00000001.json").read_text() == canonical_json(theirs) + "\n"
    assert list(store.log_dir.glob(".*.tmp")) == []


def test_damaged_commit_is_a_store_error(tmp_path: Path, events_file: Path) -> None:
    _ingest(tmp_path / "s", events_file)
    (tmp_path / "s" / "_log" / "00000000.json").write_text("{")
    with pytest.raises(StoreError, match="commit file is damaged"):
        Store.open(tmp_path / "s").state()


def test_ingest_commit_records_what_it_did(tmp_path: Path, events_file: Path) -> None:
    store_path = tmp_path / "s"
    result = _ingest(store_path, events_file, segment_rows=3)
    (commit,) = Store.open(store_path).commits()
    assert commit["operation"] == "ingest"
    assert commit["params"]["file"] == str(events_file)
    assert commit["params"]["format"] == "jsonl"
    assert commit["params"]["sha256"] == file_sha256(events_file)
    assert commit["params"]["mapping"] == {"key_fields": ["id"], "ts_field": "ts"}
    assert commit["info"] == {"ingested": 7, "quarantined": 0, "skipped": 0, "next_offset": 7}
    assert [(e["min_offset"], e["max_offset"], e["rows"]) for e in commit["add"]] == [(0, 2, 3), (3, 5, 3), (6, 6, 1)]
    assert result.files[0].commit == 0 and (result.files[0].first_offset, result.files[0].last_offset) == (0, 6)


# --------------------------------------------------------------------------- segments


def test_segment_files(tmp_path: Path, events_file: Path) -> None:
    store_path = tmp_path / "s"
    _ingest(store_path, events_file, segment_rows=3)
    store = Store.open(store_path)
    segments = store.state().segments
    assert len(segments) == 3
    for seg in segments:
        path = store_path / seg["path"]
        assert path.name.startswith(f"{seg['min_offset']:020d}-")  # named by base offset
        assert seg["sha256"] == file_sha256(path) and seg["bytes"] == path.stat().st_size
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == seg["rows"] <= 3
        assert pq.read_schema(path).remove_metadata() == event_schema()
        names = [meta.row_group(0).column(i).path_in_schema for i in range(meta.num_columns)]
        for col in ("offset", "ts", "entity", "key"):
            chunk = meta.row_group(0).column(names.index(col))
            assert chunk.compression == "ZSTD"
            assert chunk.statistics is not None and chunk.statistics.has_min_max, col
        table = pq.read_table(path)
        assert table.column("offset").to_pylist() == list(range(seg["min_offset"], seg["max_offset"] + 1))
        assert all(len(s) == 16 for s in table.column("salt").to_pylist())
        assert all(len(d) == 32 for d in table.column("digest").to_pylist())
    salts = [s for seg in segments for s in pq.read_table(store_path / seg["path"]).column("salt").to_pylist()]
    assert len(set(salts)) == len(salts)  # a salt per event
    assert [(s["min_ts"], s["max_ts"]) for s in segments] == [
        ("2024-01-01T00:00:00+00:00", "2024-01-03T00:00:00+00:00"),
        ("2024-01-01T00:00:00+00:00", "2024-01-03T00:00:00+00:00"),
        ("2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00"),
    ]


def test_events_view_hides_the_salt(tmp_path: Path, events_file: Path) -> None:
    _ingest(tmp_path / "s", events_file)
    names = logtool.sql(str(tmp_path / "s"), "SELECT * FROM events LIMIT 0").schema.names
    assert "salt" not in names
    assert names == [n for n in event_schema().names if n != "salt"]


def test_empty_store_has_an_empty_events_view(tmp_path: Path) -> None:
    Store.create(tmp_path / "s")
    assert logtool.sql(str(tmp_path / "s"), "SELECT count(*) AS n FROM events").to_pylist() == [{"n": 0}]


def test_leftovers_are_files_no_commit_names(tmp_path: Path, events_file: Path) -> None:
    _ingest(tmp_path / "s", events_file)
    store = Store.open(tmp_path / "s")
    assert store.leftovers() == []
    stray = tmp_path / "s" / "segments" / "00000000000000000007-0000.parquet"
    stray.write_bytes(b"x")
    tmp = tmp_path / "s" / "_log" / ".00000001.ab.tmp"
    tmp.write_text("{")
    assert store.leftovers() == sorted([stray, tmp])


# --------------------------------------------------------------------------- lock


def test_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s")
    with store.writer("compact"):
        with pytest.raises(LockedError) as e:
            with Store(tmp_path / "s").writer("ingest"):
                pass
        assert f"locked by pid {os.getpid()} on {socket.gethostname()} (compact since" in e.value.message
        assert e.value.hint and "_lock" in e.value.hint
    assert not (tmp_path / "s" / "_lock").exists()
    with store.writer("again"):  # released: free again
        pass


def test_a_store_that_cannot_be_written_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.create(tmp_path / "s")
    real = Path.write_text

    def read_only(self: Path, *args: object, **kwargs: object) -> int:
        if self.parent == store.path:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "write_text", read_only)
    with pytest.raises(StoreError) as e, store.writer("purge"):
        pass
    assert e.value.message == f"{store.path}: cannot change the store (Permission denied)"
    assert e.value.hint and "writable" in e.value.hint


def test_lock_released_on_error(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s")
    with pytest.raises(RuntimeError), store.writer("x"):
        raise RuntimeError("boom")
    assert not (tmp_path / "s" / "_lock").exists()


def test_ingest_while_lock_held_in_process(cli: Cli, tmp_path: Path, events_file: Path) -> None:
    store = Store.create(tmp_path / "s")
    with store.writer("x"):
        r = cli("ingest", tmp_path / "s", events_file, "--key-field", "id")
        assert r.code == 2
        assert r.out == ""
        (error,) = r.errors()
        assert f"store is locked by pid {os.getpid()} on {socket.gethostname()} (x since" in error
        assert "hint:" in r.err and "Traceback" not in r.err
        # readers need no lock
        assert cli("verify", tmp_path / "s").code == 0
        assert cli("sql", tmp_path / "s", "SELECT count(*) AS n FROM events", "-f", "jsonl").out == '{"n":0}\n'
    assert store.state().version == -1
    assert list((tmp_path / "s" / "segments").iterdir()) == []


_HOLDER = """
import sys, time
from logtool.store import Store
with Store(sys.argv[1]).writer("compact"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_ingest_while_another_process_holds_the_lock(cli: Cli, tmp_path: Path, events_file: Path) -> None:
    Store.create(tmp_path / "s")
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "s")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        r = cli("ingest", tmp_path / "s", events_file, "--key-field", "id")
        assert r.code == 2
        assert f"store is locked by pid {child.pid} on {socket.gethostname()} (compact since" in r.err
    finally:
        child.kill()
        child.wait(timeout=30)
        if child.stdout:
            child.stdout.close()
    # its holder is dead now: the lock is stale and the next writer takes it over
    r = cli("ingest", tmp_path / "s", events_file, "--key-field", "id")
    assert r.code == 0, r.err
    assert not (tmp_path / "s" / "_lock").exists()


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(timeout=30)
    return p.pid


def test_stale_lock_from_dead_pid_taken_over(cli: Cli, tmp_path: Path, events_file: Path) -> None:
    Store.create(tmp_path / "s")
    lock = tmp_path / "s" / "_lock"
    holder = {"pid": _dead_pid(), "host": socket.gethostname(), "operation": "ingest", "since": "2024-01-01T00:00:00Z"}
    lock.write_text(json.dumps(holder))
    r = cli("ingest", tmp_path / "s", events_file, "--key-field", "id")
    assert r.code == 0, r.err
    assert "7 ingested" in r.err
    assert not lock.exists()


def test_a_stale_lock_another_writer_took_over_first_is_left_to_it(tmp_path: Path) -> None:
    """A writer that comes second to a stale lock finds the first's fresh one: it leaves it."""
    import logtool.store as store_module

    Store.create(tmp_path / "s")
    lock = tmp_path / "s" / "_lock"
    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "operation": "y", "since": "t"}))
    assert store_module._take_over(lock) is False
    assert json.loads(lock.read_text())["operation"] == "y"
    lock.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "operation": "x", "since": "t"}))
    assert store_module._take_over(lock) is True and not lock.exists()


def _hold_the_lock(path: str, start: Any, out: Any) -> None:
    import time

    store = Store.open(path)
    start.wait()
    try:
        with store.writer("race"):
            began = time.monotonic()
            time.sleep(0.02)
            out.put((began, time.monotonic()))
    except LockedError:
        out.put(None)


def test_writers_racing_for_a_stale_lock_never_hold_it_together(tmp_path: Path) -> None:
    """Six writers find one stale lock at once, round after round: whoever gets in, no two hold
    the store at the same time."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "s"
    Store.create(path)
    for _ in range(15):
        (path / "_lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "operation": "x"}))
        start, out = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_hold_the_lock, args=(str(path), start, out)) for _ in range(6)]
        for p in procs:
            p.start()
        start.set()
        for p in procs:
            p.join(30)
        held = sorted(x for x in (out.get(timeout=5) for _ in procs) if x is not None)
        assert held, "nobody got the lock"
        assert all(a[1] <= b[0] for a, b in zip(held, held[1:], strict=False)), held


def test_a_commit_refuses_when_another_writer_committed_meanwhile(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "s")
    with store.writer("first"):
        other = Store.open(tmp_path / "s")  # as if a second writer had got the lock too
        other._lock_held, other._locked_version = True, store.state().version
        other.commit("second", {})
        with pytest.raises(StoreError, match="another writer committed while this one held the lock"):
            store.commit("first", {})
    assert [c["operation"] for c in Store.open(tmp_path / "s").commits()] == ["second"]


@pytest.mark.parametrize("content", ["other host", "garbage"])
def test_lock_not_taken_over_when_its_holder_is_unknown(
    cli: Cli, tmp_path: Path, events_file: Path, content: str
) -> None:
    Store.create(tmp_path / "s")
    lock = tmp_path / "s" / "_lock"
    if content == "other host":
        holder = {
            "pid": _dead_pid(),
            "host": "elsewhere.example",
            "operation": "purge",
            "since": "2024-01-01T00:00:00Z",
        }
        lock.write_text(json.dumps(holder))
        expected = f"locked by pid {holder['pid']} on elsewhere.example (purge since 2024-01-01T00:00:00Z)"
    else:
        lock.write_text("not json")
        expected = "locked by another process"
    r = cli("ingest", tmp_path / "s", events_file, "--key-field", "id")
    assert r.code == 2
    assert expected in r.err
    assert lock.exists()


# --------------------------------------------------------------------------- info and log


def test_info(write_lines: WriteLines, cli: Cli, tmp_path: Path, events_file: Path) -> None:
    other = write_lines(tmp_path / "customers.jsonl", ['{"id":"c1"}', "{", '{"id":"c2"}'])
    _ingest(tmp_path / "s", events_file, segment_rows=4)
    logtool.ingest(str(tmp_path / "s"), [str(other)], mapping=Mapping(key_fields=("id",)), on_error="quarantine")
    r = cli("info", tmp_path / "s", "--format", "json")
    assert r.code == 0, r.err
    info = json.loads(r.out)
    assert {k: info[k] for k in ("commits", "segments", "events", "first_offset", "last_offset", "next_offset",
                                 "quarantined", "snapshots", "entities")} == {
        "commits": 2, "segments": 3, "events": 9, "first_offset": 0, "last_offset": 8, "next_offset": 9,
        "quarantined": 1, "snapshots": 0, "entities": {"customers": 2, "orders": 7},
    }  # fmt: skip
    assert info["first_ts"].startswith("2024-01-01") and info["first_ts"].endswith("Z") and info["bytes"] > 0
    assert [c["version"] for c in info["last_commits"]] == [0, 1]
    # as CSV: a header and one row, nested values as JSON
    import csv
    import io

    (row,) = csv.DictReader(io.StringIO(cli("info", tmp_path / "s", "--format", "csv").out))
    assert row["events"] == "9" and json.loads(row["entities"]) == {"customers": 2, "orders": 7}


def test_info_as_a_table_fits_a_terminal_of_80_columns(
    cli: Cli, tmp_path: Path, events_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from logtool import console

    _ingest(tmp_path / "s", events_file, segment_rows=4)
    monkeypatch.setattr(console.out, "_width", 80)
    r = cli("info", tmp_path / "s", "--format", "table")
    assert r.code == 0, r.err
    assert max(len(line) for line in r.out.splitlines()) <= 80
    # the last commits as `logtool log` shows them, a row a commit, not a JSON blob
    assert "last commits" in r.out and '{"version"' not in r.out and "params" not in r.out
    assert any(line.split("│")[1:5] and "ingest" in line for line in r.out.splitlines())
    assert any(line.startswith(" entities ") and "orders: 7" in line for line in r.out.splitlines())


def test_log(cli: Cli, tmp_path: Path, events_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGTOOL_ACTOR", "alice@example")
    _ingest(tmp_path / "s", events_file, segment_rows=4)
    r = cli("log", tmp_path / "s", "--format", "jsonl")
    assert r.code == 0, r.err
    (row,) = [json.loads(line) for line in r.lines()]
    assert (row["version"], row["operation"], row["actor"]) == (0, "ingest", "alice@example")
    assert (row["segments_added"], row["events_added"]) == (2, 7)
    assert row["params"]["file"] == str(events_file)


def _busy_log(tmp_path: Path) -> Path:
    """A store of 400 events on 40 keys, in segments of 50: a compaction rewrites every segment."""
    log = tmp_path / "busy.jsonl"
    log.write_text("".join(
        json.dumps({"id": i % 40, "op": "upsert" if i < 40 else "patch", "ts": f"2026-03-01T00:00:{i % 60:02d}Z",
                    "v": i}) + "\n"
        for i in range(400)
    ))  # fmt: skip
    store = tmp_path / "busy.store"
    logtool.ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), entity="t", op_field="op", ts_field="ts"),
                   segment_rows=50)  # fmt: skip
    return store


def test_a_read_outlives_a_compaction_committed_meanwhile(tmp_path: Path) -> None:
    """Readers take no lock: segments a compaction removes under a running replay are read again
    from the new state, and the answer is the head state either way."""
    store = _busy_log(tmp_path)
    before = logtool.replay(store)
    compacted: list[Any] = []

    def compact_now(done: int, total: int | None) -> None:
        if not compacted:  # once, while the replay has its list of segments and has read none
            compacted.append(logtool.compact(store, tombstone_retention="0s"))

    old_segments = Store.open(store).segment_files()
    after = logtool.replay(store, progress=compact_now)
    assert compacted[0].segments_rewritten > 0 and not any(Path(f).exists() for f in old_segments)
    assert after.digest == before.digest and after.state == before.state
    assert logtool.history(store, "7", entity="t").num_rows == 1  # the compacted history: one survivor


def test_a_read_that_fails_otherwise_is_not_retried(tmp_path: Path) -> None:
    from logtool.store import reads_latest

    calls: list[int] = []
    (tmp_path / "_log").mkdir()  # (a store's segments/ is beside its _log/)

    @reads_latest
    def broken() -> None:
        calls.append(1)
        raise OSError(2, "No such file", str(tmp_path / "elsewhere.parquet"))

    @reads_latest
    def lost() -> None:
        calls.append(2)
        raise OSError(2, "No such file", str(tmp_path / "segments" / "gone.parquet"))

    with pytest.raises(OSError):
        broken()
    with pytest.raises(StoreError, match="gone.parquet: a segment the commit log names is missing"):
        lost()
    assert calls == [1, 2, 2, 2]  # only a lost segment is tried again, up to three times in all


def test_a_file_in_a_folder_named_segments_outside_a_store_is_no_segment(tmp_path: Path) -> None:
    # a table dump kept in exports/segments/ (no _log/ beside it) that cannot be read: the dump's
    # trouble, not the store's damage; the same file in a store's segments/ is damage
    import duckdb

    from logtool.store import damaged_store

    for folder in (tmp_path / "exports" / "segments", tmp_path / "store" / "segments"):
        folder.mkdir(parents=True)
        (folder / "bad.parquet").write_bytes(b"PAR1 not parquet")
    (tmp_path / "store" / "_log").mkdir()
    for root, named in (("exports", False), ("store", True)):
        path = tmp_path / root / "segments" / "bad.parquet"
        error = duckdb.Error(f"don't know what type: \nLINE 1: SELECT * FROM read_parquet('{path}')")
        assert (damaged_store(error) is not None) is named, root


@pytest.mark.parametrize("damage", ["removed", "truncated"])
def test_a_damaged_store_is_named_as_such_by_every_command(tmp_path: Path, cli: Any, damage: str) -> None:
    """A segment the commit log names that is gone, or cannot be read: one line naming it, and
    where to look next; never an internal error, and never "same" from digests alone."""
    store = _busy_log(tmp_path)
    segment = Store.open(store).segment_files()[0]
    intact = tmp_path / "intact"
    shutil.copytree(store, intact)  # the same commits and segments: a diff would trust the digests
    if damage == "removed":
        Path(segment).unlink()
    else:
        Path(segment).write_bytes(Path(segment).read_bytes()[:100])
    (tmp_path / "other").mkdir()
    other = _busy_log(tmp_path / "other")
    for args in (["replay", store], ["history", store, "7"], ["info", store], ["sql", store, "SELECT count(*) FROM events"],
                 ["compact", store, "--dry-run"], ["purge", store, "--key", "7", "--yes"], ["diff", store, other],
                 ["diff", intact, store]):
        r = cli(*args)
        assert r.code == 2, args
        (error,) = r.errors()
        assert error.startswith(f"error: {segment}: a segment the commit log names ") and "internal" not in error, args
        assert f"logtool verify {store}" in r.err
    assert cli("verify", store).code == 1


def test_an_ingest_of_many_files_reads_each_commit_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One commit a file: folding the whole log again for each file would make an ingest of
    thousands of rotated files quadratic."""
    for i in range(30):
        (tmp_path / f"part-{i:03d}.jsonl").write_text(json.dumps({"id": i, "v": i}) + "\n")
    reads: list[str] = []
    read_text = Path.read_text

    def counting(self: Path, *args: Any, **kwargs: Any) -> str:
        if self.parent.name == "_log" and self.name != "HEAD":  # (the head mark is no commit)
            reads.append(self.name)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counting)
    result = logtool.ingest(tmp_path / "s", [str(tmp_path / "part-*.jsonl")], mapping=Mapping(key_fields=("id",)))
    assert result.ingested == 30
    assert sorted(reads) == [f"{i:08d}.json" for i in range(30)]  # each once


def test_spill_files_a_killed_process_left_are_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What DuckDB spills holds event data: each process spills in its own directory, and those of
    processes that are gone are deleted by the next one."""
    import subprocess
    import sys

    from logtool import engine

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / f"pid-{int(dead.stdout)}"
    left.mkdir()
    (left / "duckdb_temp_storage-0.tmp").write_text("ann@example.org")
    monkeypatch.setattr(engine.settings, "temp_dir", str(tmp_path))
    monkeypatch.setattr(engine, "_swept", set())
    con = engine.connect()
    assert not left.exists()
    assert con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0] == str(tmp_path / f"pid-{os.getpid()}")


def test_a_segment_appears_under_its_name_only_once_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Written as NAME.parquet.partial, then renamed: a reader of segments/*.parquet (DuckDB on the
    store's files as they are) never meets half a file."""
    import logtool.segments as segments

    moves: list[tuple[str, str]] = []
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        assert Path(src).exists() and not Path(dst).exists()
        moves.append((Path(src).name, Path(dst).name))
        real(src, dst)

    monkeypatch.setattr(segments.os, "replace", replace)
    log = tmp_path / "a.jsonl"
    log.write_text("".join(f'{{"id":{i}}}\n' for i in range(10)))
    logtool.ingest(str(tmp_path / "s"), [str(log)], mapping=Mapping(key_fields=("id",)), segment_rows=4)
    named = sorted(p.name for p in (tmp_path / "s" / "segments").iterdir())
    assert len(named) == 3 and all(n.endswith(".parquet") for n in named)
    assert sorted(dst for _, dst in moves) == named and all(src == dst + ".partial" for src, dst in moves)
