"""verify: a clean store is green; every kind of tampering is found, named, and exits 1."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logtool
from logtool.formats.base import Mapping
from logtool.store import Store, canonical_json, commit_hash

Cli = Callable[..., Any]  # the `cli` fixture of conftest.py
Run = Any  # what `cli` returns: code, out, err, lines(), errors()
WriteLines = Callable[[Path, Iterable[str | bytes]], Path]  # the `write_lines` fixture

# three ingests of three events, two events a segment: segments start at offsets 0,2,3,5,6,8


@pytest.fixture
def store(write_lines: WriteLines, tmp_path: Path) -> Path:
    path = tmp_path / "store"
    for i in range(3):
        f = write_lines(tmp_path / f"f{i}.jsonl", [json.dumps({"id": i * 10 + j, "v": "x" * j}) for j in range(3)])
        logtool.ingest(str(path), [str(f)], mapping=Mapping(key_fields=("id",)), segment_rows=2)
    return path


def _segments(store: Path) -> list[dict[str, Any]]:
    return Store.open(store).state().segments


def _problems(r: Run) -> list[dict[str, Any]]:
    return [json.loads(line) for line in r.lines()]


def _flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


def _footer_start(path: Path) -> int:
    data = path.read_bytes()
    (length,) = struct.unpack("<i", data[-8:-4])
    return len(data) - 8 - length


def _assert_found(r: Run, where: str, offset: int | None) -> list[dict[str, Any]]:
    assert r.code == 1, r.out + r.err
    problems = _problems(r)
    assert problems, r.err
    assert problems[0]["where"] == where
    assert problems[0]["offset"] == offset
    assert f"first: {where}: {problems[0]['problem']}" in r.err
    assert "Traceback" not in r.err
    return problems


def test_counts_of_one_are_said_in_the_singular(cli: Cli, write_lines: WriteLines, tmp_path: Path) -> None:
    f = write_lines(tmp_path / "one.jsonl", ['{"id":1}'])
    logtool.ingest(str(tmp_path / "one"), [str(f)], mapping=Mapping(key_fields=("id",)))
    r = cli("verify", tmp_path / "one")
    assert r.code == 0 and "ok: 1 commit, 1 segment, 1 event verified" in r.err
    history = cli("history", tmp_path / "one", "1")
    assert history.code == 0 and "1 event\n" in history.err and "1 events" not in history.err


def test_clean_store_verifies(cli: Cli, store: Path) -> None:
    r = cli("verify", store)
    assert r.code == 0, r.out + r.err
    assert r.out == ""
    assert "ok: 3 commits, 6 segments, 9 events verified" in r.err
    report = logtool.verify(str(store))
    assert report.ok and (report.commits, report.segments, report.events) == (3, 6, 9)
    assert report.leftovers == []


@pytest.mark.parametrize("eighths", range(8))
def test_flipped_byte_in_a_segment(cli: Cli, store: Path, eighths: int) -> None:
    seg = _segments(store)[3]  # offsets 5..5
    path = store / seg["path"]
    # spread over everything before the footer (the leading magic, pages, page index, bloom filter)
    _flip(path, _footer_start(path) * eighths // 8)
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), seg["path"], 5)
    assert problems[0]["problem"] == "file content changed since its commit"


@pytest.mark.parametrize(
    "command",
    [["replay", "--no-snapshots"], ["history", "1"], ["stats"], ["compact", "--dry-run"], ["compact", "--yes"],
     ["snapshot"], ["purge", "--key", "1", "--entity", "f0", "--dry-run"], ["purge", "--key", "1", "--entity", "f0", "--yes"],
     ["redact", "--field", "v", "--key", "1", "--entity", "f0", "--yes"]],
)  # fmt: skip
def test_a_segment_whose_pages_cannot_be_decoded_is_named_as_damage(cli: Cli, store: Path, command: list[str]) -> None:
    # a page header broken: DuckDB's error names no file, so the message points to verify
    seg = _segments(store)[0]
    _flip(store / seg["path"], 4)
    r = cli(command[0], store, *command[1:])
    assert r.code == 2 and "internal error" not in r.err
    assert r.errors()[0].startswith(f"error: {store}: reading the store failed (")
    assert r.errors()[0].endswith("): a segment or snapshot may be damaged")
    assert f"hint: `logtool verify {store}` finds which" in r.err
    _assert_found(cli("verify", store, "--format", "jsonl"), seg["path"], 0)


@pytest.mark.parametrize("command", [["replay", "--no-snapshots"], ["history", "1"], ["compact", "--dry-run"], ["snapshot"],
                                     ["sql", "SELECT * FROM events"], ["purge", "--key", "1", "--dry-run"]])  # fmt: skip
def test_a_column_name_that_is_not_utf8_in_a_segment_footer_is_damage(cli: Cli, store: Path, command: list[str]) -> None:
    """A flipped byte in a name the footer holds: the readers meet text that is not UTF-8, which
    the store never writes. It is named as damage, not an internal error."""
    seg = _segments(store)[0]
    path = store / seg["path"]
    data = bytearray(path.read_bytes())
    at = data.index(b"prev_key", _footer_start(path))
    data[at] = 0x8F  # a continuation byte with nothing before it
    path.write_bytes(bytes(data))
    r = cli(command[0], store, *command[1:])
    assert r.code == 2 and "internal error" not in r.err, r.err
    assert r.errors()[0] == f"error: {store}: reading the store failed (text in it is not UTF-8): a segment or snapshot may be damaged"
    assert cli("verify", store).code == 1


def test_what_reads_as_parquet_damage() -> None:
    """DuckDB's Parquet reader's own words for bytes it cannot decode, as the errors it raises;
    a user's query failing on a value that quotes such a word is not damage."""
    import duckdb

    from logtool.errors import undecodable_parquet

    for text in ("Payload value bigger than allowed. Corrupted file?", "invalid TType", "don't know what type: \x0f",
                 "Out of buffer", "Decode bit width too large", "Variable-length int over 10 bytes.",
                 "TProtocolException: Invalid data", "Parquet file is likely corrupted, dictionary offset out of range"):  # fmt: skip
        assert undecodable_parquet(duckdb.Error(text)), text
        assert undecodable_parquet(duckdb.InvalidInputException(f"Invalid Input Error: {text}")), text
    for text in ("Parquet metadata is corrupt. Column has invalid number of values (5)",
                 "Corrupt Parquet file: a value in list column", "DELTA_BYTE_ARRAY - total length is too large - corrupt file?"):  # fmt: skip
        assert undecodable_parquet(duckdb.InvalidInputException(f"Invalid Input Error: {text}")), text
    for text in ("Footer length error in file 'x.parquet'", "Couldn't deserialize thrift: No more data to read.",
                 "ZSTD decompression failed"):  # fmt: skip
        assert undecodable_parquet(OSError(text) if "file" not in text else duckdb.Error(text)), text
    assert not undecodable_parquet(duckdb.ConversionException("Conversion Error: Could not convert string 'corrupt' to INT32"))
    # a user's function failing on a value that reads like damage: the value is quoted, not said
    assert not undecodable_parquet(duckdb.InvalidInputException(
        'Invalid Input Error: Could not parse string "corrupt upload" according to format specifier "%Y"'))  # fmt: skip
    assert not undecodable_parquet(duckdb.BinderException("Binder Error: column invalid TType not found"))
    assert not undecodable_parquet(ValueError("Corrupted file?"))


@pytest.mark.parametrize("pos", [-1, -5])
def test_flipped_byte_in_a_segment_footer(cli: Cli, store: Path, pos: int) -> None:
    seg = _segments(store)[3]
    _flip(store / seg["path"], pos)
    _assert_found(cli("verify", store, "--format", "jsonl"), seg["path"], 5)


def _rewrite_commits(store: Path, change: Any) -> None:
    """Apply change(commit) to each commit, then re-hash the chain as a forger would."""
    prev = None
    for p in Store.open(store).commit_paths():
        body = json.loads(p.read_text())
        change(body)
        body["prev"] = prev
        body["hash"] = commit_hash(body)
        prev = body["hash"]
        p.write_text(canonical_json(body) + "\n")


def _forge_last_receipt(store: Path, change: Any) -> None:
    """Edit the receipt of the last commit, and give it the hash its new content has."""
    p = sorted((store / "_log").glob("*.json"))[-1]
    body = json.loads(p.read_text())
    change(body)
    body["hash"] = commit_hash(body)
    p.write_text(canonical_json(body) + "\n")


def test_receipts_of_purges_and_redactions_are_checked(cli: Cli, store: Path) -> None:
    # a purge of one key of one segment, a redaction of another, a purge of a whole segment, and a
    # compaction after them that rewrites what the first receipt vouched for: all accounted for
    logtool.purge(str(store), key="1", entity="f0")
    logtool.redact(str(store), ["v"], key="12", entity="f1")
    logtool.purge(str(store), key="20", entity="f2")
    assert cli("verify", store).code == 0
    logtool.purge(str(store), key="21", entity="f2")
    logtool.compact(str(store), tombstone_retention="0s")
    assert cli("verify", store).code == 0, cli("verify", store).err


@pytest.mark.parametrize("operation", ["purge", "redact"])
def test_a_receipt_that_understates_what_was_done_is_found(cli: Cli, store: Path, operation: str) -> None:
    if operation == "purge":
        logtool.purge(str(store), entity="f1")  # three events, two segments
    else:
        logtool.redact(str(store), ["v"], entity="f1")

    def understate(body: dict[str, Any]) -> None:
        receipt = body["info"]["receipt"]
        item = next(i for i in receipt["segments"] if len(i["digests"]) > 1)
        item["digests"], item["offsets"] = item["digests"][:1], [[item["offsets"][0][0]] * 2]

    _forge_last_receipt(store, understate)
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000003.json", 3)
    assert "receipt does not account for" in problems[0]["problem"]


def test_a_receipt_that_vouches_for_changed_survivors_is_found(cli: Cli, store: Path) -> None:
    # the receipt stays whole, but the survivors it vouches for are not the events there were
    logtool.purge(str(store), key="11", entity="f1")

    def other_old_digest(body: dict[str, Any]) -> None:
        item = body["info"]["receipt"]["segments"][0]
        item["old"]["digest"] = "0" * 64

    _forge_last_receipt(store, other_old_digest)
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000003.json", 3)
    assert "the surviving events with the receipted ones do not hash to its digest" in problems[0]["problem"]


def test_changed_event_with_forged_checksums(cli: Cli, store: Path) -> None:
    """Even with the file checksum and the commit chain recomputed, a changed event is found by its digest."""
    seg = _segments(store)[2]  # offsets 3..4
    path = store / seg["path"]
    table = pq.read_table(path)
    data = table.column("data").to_pylist()
    assert table.column("offset").to_pylist() == [3, 4]
    data[1] = '{"v":"forged"}'
    table = table.set_column(table.schema.get_field_index("data"), "data", pa.array(data, pa.string()))
    pq.write_table(table, path, compression="zstd")
    sha = logtool.store.file_sha256(path)

    def fix(body: dict[str, Any]) -> None:
        for entry in body["add"]:
            if entry["path"] == seg["path"]:
                entry["sha256"], entry["bytes"] = sha, path.stat().st_size

    _rewrite_commits(store, fix)
    r = cli("verify", store, "--format", "jsonl")
    problems = _assert_found(r, seg["path"], 4)
    assert problems == [{"where": seg["path"], "offset": 4, "problem": "event digest does not match its content"}]


@pytest.mark.parametrize(
    ("column", "change", "problem"),
    [
        ("digest", "null", "1 event has no digest"),
        ("offset", "null", "1 event has no offset"),
        ("offset", "text", "not a segment as written: its offset column is string"),
        ("digest", "text", "not a segment as written: its digest column is string"),
    ],
)
@pytest.mark.parametrize("purged_first", [False, True])
def test_a_segment_with_a_null_or_retyped_offset_or_digest_is_a_finding(
    cli: Cli, store: Path, column: str, change: str, problem: str, purged_first: bool
) -> None:
    """Not an internal error: verify names the segment, and the event where it can."""
    if purged_first:  # the segment of offsets 3..4 rewritten by a purge, which its receipt vouches for
        logtool.purge(str(store), key="11", entity="f1")
    seg = next(s for s in _segments(store) if s["min_offset"] == 3)
    path = store / seg["path"]
    table = pq.read_table(path)
    i = table.schema.get_field_index(column)
    values = table.column(column).to_pylist()
    last = table.column("offset")[-1].as_py()
    if change == "null":
        values[-1] = None
        typ = table.schema.field(i).type
    else:
        values, typ = [str(v) for v in values], pa.string()
    pq.write_table(table.set_column(i, pa.field(column, typ), pa.array(values, typ)), path)
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), seg["path"], 3)
    assert problems[0]["problem"] == "file content changed since its commit"
    at = {"digest": last, "offset": None}[column] if change == "null" else 3
    assert {"where": seg["path"], "offset": at, "problem": problem} in problems


def test_key_index_that_does_not_match_its_file(cli: Cli, store: Path) -> None:
    """The commit's description of a segment's row groups (what key lookups trust) is checked."""
    seg = _segments(store)[2]

    def fix(body: dict[str, Any]) -> None:
        for entry in body["add"]:
            if entry["path"] == seg["path"]:
                entry["row_groups"][0]["key_bloom"] = None

    _rewrite_commits(store, fix)
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), seg["path"], 3)
    assert problems[0]["problem"] == "key index in the commit does not match the file"


def test_edited_commit_count(cli: Cli, store: Path) -> None:
    p = store / "_log" / "00000001.json"
    body = json.loads(p.read_text())
    body["add"][0]["rows"] += 1  # still valid JSON, still canonical
    p.write_text(canonical_json(body) + "\n")
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000001.json", None)
    assert "does not match its hash" in problems[0]["problem"]


@pytest.mark.parametrize("command", [["info"], ["log"], ["replay"], ["sql", "SELECT count(*) FROM events"]])
def test_reads_refuse_an_edited_commit_in_one_line(cli: Cli, store: Path, command: list[str]) -> None:
    p = store / "_log" / "00000001.json"
    body = json.loads(p.read_text())
    body["add"][0]["rows"] = "many"  # valid JSON, no longer what was committed
    p.write_text(canonical_json(body) + "\n")
    r = cli(command[0], store, *command[1:])
    assert r.code == 2 and r.out == ""
    assert r.errors() == [f"error: {p}: commit file was changed after it was written (its hash does not match)"]
    assert f"hint: run `logtool verify {store}`" in r.err


def test_edited_commit_bytes_only(cli: Cli, store: Path) -> None:
    p = store / "_log" / "00000002.json"
    p.write_text(json.dumps(json.loads(p.read_text()), indent=1))  # same content, other bytes
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000002.json", None)
    assert problems[0]["problem"] == "commit file bytes were changed"


@pytest.mark.parametrize("field", ["sha256", "digest", "rows", "path"])
def test_edited_commit_field_name(cli: Cli, store: Path, field: str) -> None:
    p = store / "_log" / "00000001.json"
    text = p.read_text()
    assert f'"{field}":' in text
    p.write_text(text.replace(f'"{field}":', f'"{field}_":', 1))  # still valid JSON
    _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000001.json", None)


def _as_unprivileged() -> list[str]:
    """The prefix running a command without the right to bypass file permissions (root has it)."""
    import os
    import shutil

    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("root bypasses file permissions, and setpriv is not here to drop that right")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize(
    ("denied", "mode", "command"),
    [
        ("_log/00000001.json", 0o000, ["info"]),
        ("_log/00000001.json", 0o000, ["verify"]),
        ("segments", 0o000, ["sql", "SELECT count(*) FROM events"]),
        ("segments", 0o000, ["verify"]),
        ("segments", 0o000, ["replay"]),
    ],
)
def test_a_denied_permission_is_trouble_not_damage(store: Path, denied: str, mode: int, command: list[str]) -> None:
    """An unreadable commit file was "damaged" (verify: a problem found, exit 1), and a segments
    folder that may not be looked into made its segments "missing": the permission is named, exit 2."""
    import subprocess
    import sys

    target = store / denied
    target.chmod(mode)
    try:
        run = subprocess.run([*_as_unprivileged(), sys.executable, "-m", "logtool", command[0], str(store), *command[1:]],
                             capture_output=True, text=True)  # fmt: skip
    finally:
        target.chmod(0o755 if target.is_dir() else 0o644)
    assert (run.returncode, run.stdout) == (2, ""), run.stderr
    first = run.stderr.splitlines()[0]
    assert first.startswith(f"error: {store}/{denied}") and first.endswith(": Permission denied"), first
    assert "damaged" not in run.stderr and "missing" not in run.stderr


def test_damaged_commit_json(cli: Cli, store: Path) -> None:
    p = store / "_log" / "00000001.json"
    p.write_text(p.read_text()[:-10])
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000001.json", None)
    assert problems[0]["problem"].startswith("not valid JSON")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("array", "not a commit: its JSON is not an object"),
        ("number", "not a commit: its JSON is not an object"),
        ("directory", "commit file cannot be read"),
        ("dangling link", "commit file cannot be read"),
    ],
)
def test_a_commit_that_is_no_commit_is_reported_not_an_internal_error(
    cli: Cli, store: Path, damage: str, problem: str
) -> None:
    p = store / "_log" / "00000001.json"
    p.unlink()
    if damage == "array":
        p.write_text("[1,2]\n")
    elif damage == "number":
        p.write_text("5\n")
    elif damage == "directory":
        p.mkdir()
    else:
        p.symlink_to(store / "nowhere")
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000001.json", None)
    assert problems[0]["problem"].startswith(problem)


def test_a_segment_that_became_a_directory(cli: Cli, store: Path) -> None:
    seg = _segments(store)[0]
    (store / seg["path"]).unlink()
    (store / seg["path"]).mkdir()
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), seg["path"], 0)
    assert problems[0]["problem"] == "file named by a commit is not a file"


def test_deleted_segment(cli: Cli, store: Path) -> None:
    seg = _segments(store)[3]
    (store / seg["path"]).unlink()
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), seg["path"], 5)
    assert problems[0]["problem"] == "file named by a commit is missing"
    assert any("5..5 are missing" in p["problem"] for p in problems)


def test_commit_removed_from_the_middle(cli: Cli, store: Path, write_lines: WriteLines, tmp_path: Path) -> None:
    (store / "_log" / "00000001.json").unlink()
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000002.json", None)
    assert problems[0]["problem"] == "commit 00000001.json missing: the log goes on at 00000002.json"
    assert any("chain broken" in p["problem"] for p in problems)
    # the events of the removed commit are gone, and nothing explains the hole
    assert any(p["offset"] == 3 and "3..5 are missing" in p["problem"] for p in problems)
    # reads refuse the log rather than answer from two thirds of it; a writer refuses before it
    # sweeps the files only the lost commit names (restoring that one file then repairs the store)
    files = sorted(p.name for p in (store / "segments").iterdir())
    more = write_lines(tmp_path / "more.jsonl", ['{"id":99}'])
    for command in (["sql", "SELECT count(*) FROM events"], ["replay"], ["ingest", more, "--key-field", "id"],
                    ["compact", "--yes"], ["snapshot"]):  # fmt: skip
        r = cli(command[0], store, *command[1:])
        assert r.code == 2 and r.out == ""
        assert r.errors() == [
            f"error: {store / '_log' / '00000002.json'}: commit 00000001.json missing: the log goes on at 00000002.json"
        ]
        assert "hint: restore the commit log from a backup" in r.err
    assert sorted(p.name for p in (store / "segments").iterdir()) == files


def test_newest_commit_removed(cli: Cli, store: Path, write_lines: WriteLines, tmp_path: Path) -> None:
    """A lost newest commit file is told from a log that never had it (the head mark names it):
    verify finds it and calls no file safe to delete; no writer sweeps the files only it names,
    and the hint says how to go on without it. Reads go on from the log as it stands."""
    newest = sorted((store / "_log").glob("0*.json"))[-1]
    newest.unlink()
    r = cli("verify", store, "--format", "jsonl")
    assert r.code == 1
    problems = [json.loads(line) for line in r.out.splitlines()]
    assert problems[0]["where"] == "_log/HEAD"
    assert problems[0]["problem"].startswith(f"commit {newest.name} missing: the log's head mark (HEAD) names commit")
    assert "safe to delete" not in r.err
    files = sorted(p.name for p in (store / "segments").iterdir())
    more = write_lines(tmp_path / "more.jsonl", ['{"id":99}'])
    for command in (["ingest", more, "--key-field", "id"], ["compact", "--yes"], ["compact", "--dry-run"], ["snapshot"]):
        r = cli(command[0], store, *command[1:])
        assert r.code == 2 and r.out == ""
        assert r.errors() == [f"error: {store / '_log'}: commit {newest.name} missing: the log's head mark (HEAD) "
                              f"names commit {int(newest.stem)}, the newest commit file is {int(newest.stem) - 1}"]  # fmt: skip
        assert f"remove {store / '_log' / 'HEAD'} to go on from the log as it stands" in r.err
    assert sorted(p.name for p in (store / "segments").iterdir()) == files
    assert cli("sql", store, "SELECT count(*) AS n FROM events").code == 0  # (a read: the log as it stands)
    r = cli("replay", store, "--format", "jsonl")
    assert r.code == 0 and f"warning: commit {newest.name} missing" in r.err and "reads the log as it stands" in r.err
    # the user accepts the log as it stands (a copy taken while a writer was at work): writers go on
    (store / "_log" / "HEAD").unlink()
    assert cli("verify", store).code == 0
    assert cli("ingest", store, more, "--key-field", "id").code == 0


def test_a_segment_only_the_lost_newest_commit_replaced_is_gone_and_replay_names_the_lost_commit(
    cli: Cli, store: Path
) -> None:
    """The lost commit's writer deleted the segment it replaced: the log as it stands names that
    segment. Replay leads with the cause, as verify does, and keeps its remedy."""
    assert cli("purge", store, "--key", "1", "--yes").code == 0
    newest = sorted((store / "_log").glob("0*.json"))[-1]
    newest.unlink()
    r = cli("replay", store, "--format", "jsonl")
    assert r.code == 2 and r.out == ""
    assert r.errors()[0].startswith(f"error: {store / '_log'}: commit {newest.name} missing: the log's head mark (HEAD)")
    assert "segments/" in r.errors()[0] and "is missing" in r.errors()[0]
    assert "hint: restore that commit file from a backup; if it is lost for good" in r.err
    assert f"remove {store / '_log' / 'HEAD'} to go on from the log as it stands" in r.err
    verify = cli("verify", store, "--format", "jsonl")
    assert verify.code == 1 and json.loads(verify.out.splitlines()[0])["where"] == "_log/HEAD"


@pytest.mark.parametrize("mark", ['{"version":1e400}', "garbage", '{"version":-1}', '"7"'])
def test_a_damaged_head_mark_is_named(cli: Cli, store: Path, mark: str) -> None:
    """The head mark is written whole and renamed into place: one that does not name a commit
    number is damage, which verify reports and writers refuse (never an internal error)."""
    (store / "_log" / "HEAD").write_text(mark)
    r = cli("verify", store, "--format", "jsonl")
    assert r.code == 1 and "the head mark HEAD is damaged" in r.out
    r = cli("compact", store, "--yes")
    assert r.code == 2 and "the head mark HEAD is damaged" in r.err and "internal" not in r.err
    assert f"hint: remove {store / '_log' / 'HEAD'}: the next change writes it anew" in r.err
    assert cli("sql", store, "SELECT 1 AS n").code == 0


def test_commits_swapped(cli: Cli, store: Path) -> None:
    a, b = store / "_log" / "00000001.json", store / "_log" / "00000002.json"
    ta, tb = a.read_bytes(), b.read_bytes()
    a.write_bytes(tb)
    b.write_bytes(ta)
    problems = _assert_found(cli("verify", store, "--format", "jsonl"), "_log/00000001.json", None)
    assert problems[0]["problem"] == "commit file holds commit 2, not 1"
    r = cli("replay", store)
    assert r.code == 2 and r.errors() == [f"error: {a}: commit file holds commit 2, not 1"]


def test_table_and_json_output(cli: Cli, store: Path) -> None:
    (store / _segments(store)[0]["path"]).unlink()
    r = cli("verify", store, "--format", "json")
    assert r.code == 1
    problems = json.loads(r.out)
    assert problems[0]["where"] == _segments(store)[0]["path"] and problems[0]["offset"] == 0


def test_a_clean_store_is_an_empty_list_in_json_and_a_header_in_csv(cli: Cli, store: Path) -> None:
    assert json.loads(cli("verify", store, "--format", "json").out) == []
    assert cli("verify", store, "--format", "csv").out == "where,offset,problem\n"
    assert cli("verify", store, "--format", "jsonl").out == ""


def test_a_purge_committed_while_verify_runs_is_no_problem(
    cli: Cli, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verify takes no lock: a purge that commits (and removes the segments it replaced) after
    verify has read the commit log makes verify look again, on the new state."""
    import logtool.integrity as integrity

    real = integrity.file_sha256
    purged: list[bool] = []

    def purge_first(path: Path) -> str:
        if not purged:
            purged.append(True)
            logtool.purge(str(store), key="0")
        return real(path)

    monkeypatch.setattr(integrity, "file_sha256", purge_first)
    report = logtool.verify(str(store))
    assert purged and report.ok, report.problems
    assert report.commits == 4


def test_ctrl_c_while_verify_reads_a_segment_is_an_interruption(
    cli: Cli, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB answers Ctrl-C mid-query with RuntimeError('Query interrupted'): the user stopped
    verify, which found nothing wrong."""
    import logtool.integrity as integrity

    def interrupted(*_args: Any) -> str:
        raise RuntimeError("Query interrupted")

    monkeypatch.setattr(integrity, "sql_string", interrupted)
    r = cli("verify", store)
    assert (r.code, r.out) == (130, "") and "error: interrupted" in r.err and "problem" not in r.err


def test_leftovers_reported_but_green(cli: Cli, store: Path) -> None:
    (store / "segments" / "00000000000000000099-deadbeef.parquet").write_bytes(b"partial")
    (store / "_log" / ".00000003.abcd.tmp").write_text("{")
    r = cli("verify", store)
    assert r.code == 0, r.out + r.err
    assert r.out == ""
    assert "segments/00000000000000000099-deadbeef.parquet: not named by any commit" in r.err
    assert "_log/.00000003.abcd.tmp: not named by any commit" in r.err
    assert sorted(logtool.verify(str(store)).leftovers) == [
        "_log/.00000003.abcd.tmp", "segments/00000000000000000099-deadbeef.parquet",
    ]  # fmt: skip


def test_files_a_working_writer_has_not_committed_yet_are_not_called_leftovers(cli: Cli, store: Path) -> None:
    with Store.open(store).writer("ingest"):  # a writer at work, its segment not yet committed
        (store / "segments" / "00000000000000000009-inflight.parquet").write_bytes(b"being written")
        r = cli("verify", store)
    assert r.code == 0 and "safe to delete" not in r.err
    assert "1 file not named by any commit: a writer is at work (pid" in r.err


def test_quarantine_file_changed(write_lines: WriteLines, cli: Cli, tmp_path: Path) -> None:
    f = write_lines(tmp_path / "q.jsonl", ['{"id":1}', "{", '{"id":3}'])
    store = tmp_path / "s"
    logtool.ingest(str(store), [str(f)], mapping=Mapping(key_fields=("id",)), on_error="quarantine")
    (q,) = (store / "quarantine").iterdir()
    q.write_text(q.read_text().replace("broken", "fixed"))
    _assert_found(cli("verify", store, "--format", "jsonl"), f"quarantine/{q.name}", None)


@pytest.mark.parametrize("case", ["missing", "a file", "not a store"])
def test_verify_trouble_is_exit_2(cli: Cli, tmp_path: Path, case: str) -> None:
    path = tmp_path / "x"
    if case == "a file":
        path.write_text("x")
    elif case == "not a store":
        path.mkdir()
    r = cli("verify", path)
    assert r.code == 2
    assert r.out == ""
    assert len(r.errors()) == 1 and str(path) in r.errors()[0]
    assert "Traceback" not in r.err


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.tuples(st.integers(0, 40), st.integers(-1, 12)).map(lambda t: [t[0], t[0] + t[1]]), max_size=8),
    lo=st.integers(0, 50),
    width=st.integers(0, 12),
)
def test_gap_lookup_agrees_with_the_offsets_declared(gaps: list[list[int]], lo: int, width: int) -> None:
    """A gap is explained exactly when every offset in it lies in some declared range (ranges may
    overlap, touch, nest, or be empty), however many ranges there are."""
    from logtool.integrity import _Explained

    declared = {o for a, b in gaps for o in range(a, b + 1)}
    hi = lo + width
    assert _Explained(gaps)(lo, hi) == all(o in declared for o in range(lo, hi + 1))
