"""CLI contracts: stdout carries data only, exit codes, `sql` refuses all but one SELECT, every
command documented with an example, and the installed `logtool` entry point run for real."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from logtool.cli import app

Cli = Callable[..., Any]  # the `cli` fixture of conftest.py
WriteLines = Callable[[Path, Iterable[str | bytes]], Path]  # the `write_lines` fixture


@pytest.fixture
def store(write_lines: WriteLines, cli: Cli, tmp_path: Path) -> Path:
    f = write_lines(
        tmp_path / "shop.jsonl",
        [
            '{"id":1,"op":"c","n":12345678901234567890123,"p":1.10}',
            '{"id":2,"op":"u","n":2,"p":0.5}',
            '{"id":1,"op":"d"}',
        ],
    )
    path = tmp_path / "store"
    r = cli("ingest", path, f, "--key-field", "id", "--op-field", "op")
    assert r.code == 0, r.err
    return path


# --------------------------------------------------------------------------- streams


def test_ingest_writes_nothing_to_stdout(write_lines: WriteLines, cli: Cli, tmp_path: Path) -> None:
    f = write_lines(tmp_path / "a.jsonl", ['{"id":1}', "{", '{"id":3}'])
    r = cli("ingest", tmp_path / "s", f, "--key-field", "id", "--on-error", "quarantine")
    assert r.code == 0
    assert r.out == ""
    assert f"{f} (jsonl): 2 ingested, 1 quarantined, 0 skipped; offsets 0..1; commit 0" in r.err
    assert "total: 2 ingested, 1 quarantined, 0 skipped" in r.err


def test_messages_print_names_and_values_as_they_are(write_lines: WriteLines, cli: Cli, tmp_path: Path) -> None:
    """Brackets and colons in a file name, a reason or a value are text, not markup or emoji codes."""
    f = write_lines(tmp_path / "odd[bold]:smile:.jsonl", ['{"id":1,"op":"[/x]"}', '{"id":2,"op":"[b]x[/b]"}', '{"id":3,"op":"insert"}'])
    r = cli("ingest", tmp_path / "s", f, "--key-field", "id", "--op-field", "op", "--on-error", "skip")
    assert r.code == 0, r.err
    assert f"{f} (jsonl): 1 ingested, 0 quarantined, 2 skipped" in r.err
    assert f"{f}:1: unknown op \"[/x]\"" in r.err and f"{f}:2: unknown op \"[b]x[/b]\"" in r.err
    r = cli("purge", tmp_path / "s", "--entity", "[/x]", "--key", "3", "--dry-run")  # a warning naming it
    assert r.code == 0 and "warning:" in r.err and "'[/x]'" in r.err


def test_ctrl_c_inside_a_query_is_an_interruption_not_an_internal_error(
    cli: Cli, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import logtool

    def stopped(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("Query interrupted")  # what DuckDB raises for SIGINT mid-query

    monkeypatch.setattr(logtool, "sql", stopped)
    r = cli("sql", store, "SELECT 1")
    assert (r.code, r.out) == (130, "") and r.err == "error: interrupted\n"


def test_files_committed_before_a_failing_one_are_said(write_lines: WriteLines, cli: Cli, tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.jsonl", ['{"id":1}'])
    b = write_lines(tmp_path / "b.jsonl", ['{"id":2}'])
    c = write_lines(tmp_path / "c.jsonl", ['{"id":3}', "{broken"])
    r = cli("ingest", tmp_path / "s", a, b, c, "--key-field", "id")
    assert r.code == 2
    assert f"{a} (jsonl): 1 ingested, 0 quarantined, 0 skipped; offsets 0..0; commit 0" in r.err
    assert f"{b} (jsonl): 1 ingested, 0 quarantined, 0 skipped; offsets 1..1; commit 1" in r.err
    assert r.err.index("commit 1") < r.err.index(f"error: {c}:2: broken JSON")


def test_quiet_silences_status_but_not_warnings(write_lines: WriteLines, cli: Cli, tmp_path: Path) -> None:
    f = write_lines(tmp_path / "a.jsonl", ['{"id":1}'])
    r = cli("-q", "ingest", tmp_path / "s", f, "--key-field", "id")
    assert (r.code, r.out, r.err) == (0, "", "")
    r = cli("-q", "ingest", tmp_path / "s", f, "--key-field", "id")
    assert r.out == "" and "already in the store" in r.err  # a refusal is said even under -q
    r = cli("-q", "verify", tmp_path / "s")
    assert (r.code, r.out, r.err) == (0, "", "")


def test_a_file_refused_as_a_duplicate_names_the_mapping_it_went_in_with(
    write_lines: WriteLines, cli: Cli, tmp_path: Path
) -> None:
    """The same bytes again with a corrected mapping are still the same content: the refusal says
    which mapping they went in with and how to ingest them with the new one."""
    f = write_lines(tmp_path / "a.jsonl", ['{"id":1,"t":"2024-01-01T00:00:00Z"}'])
    assert cli("ingest", tmp_path / "s", f).code == 0
    r = cli("ingest", tmp_path / "s", f, "--key-field", "id", "--ts-field", "t")
    assert r.code == 0 and "ingested with no field mapping" in r.err and "ingest into a new store" in r.err
    assert cli("ingest", tmp_path / "k", f, "--key-field", "id").code == 0
    r = cli("ingest", tmp_path / "k", f, "--key-field", "id", "--ts-field", "t")
    assert "ingested with --key-field id;" in r.err
    r = cli("ingest", tmp_path / "k", f, "--key-field", "id")
    assert "ingested with" not in r.err and "(--allow-duplicates to force)" in r.err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["replay", "s", "-q"], ["-q", "replay", "s"]),
        (["ingest", "s", "f", "--threads", "1", "--key-field", "id"], ["--threads", "1", "ingest", "s", "f", "--key-field", "id"]),
        (["--memory-limit", "1GB", "replay", "s", "--memory-limit=2GB"], ["--memory-limit", "1GB", "--memory-limit=2GB", "replay", "s"]),
        (["sql", "s", "SELECT 1", "--", "-q"], ["sql", "s", "SELECT 1", "--", "-q"]),
    ],
)  # fmt: skip
def test_global_options_may_follow_the_command(args: list[str], expected: list[str]) -> None:
    from logtool.cli import global_options_first

    assert global_options_first(args) == expected


def test_quiet_after_the_command_from_the_console_script(write_lines: WriteLines, tmp_path: Path) -> None:
    f = write_lines(tmp_path / "a.jsonl", ['{"id":1}'])
    run = subprocess.run([sys.executable, "-m", "logtool.cli", "ingest", str(tmp_path / "s"), str(f), "--key-field",
                          "id", "-q"], capture_output=True, text=True)  # fmt: skip
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


def test_sql_jsonl_prints_only_json_lines(cli: Cli, store: Path) -> None:
    r = cli("sql", store, 'SELECT "offset", key, op, data FROM events ORDER BY "offset"', "--format", "jsonl")
    assert r.code == 0, r.err
    assert r.err == ""
    assert r.out.endswith("\n")
    assert r.out.splitlines() == [
        '{"offset":0,"key":"1","op":"insert","data":{"n":12345678901234567890123,"p":1.10}}',
        '{"offset":1,"key":"2","op":"update","data":{"n":2,"p":0.5}}',
        '{"offset":2,"key":"1","op":"delete","data":{}}',
    ]


def test_sql_writes_a_column_as_json_only_when_it_holds_json(cli: Cli, store: Path) -> None:
    """The name alone decided: `entity AS data` printed a bare word, and a text shaped to close
    the object added a member to it."""
    query = ("SELECT entity AS data, data->>'v' AS value, '1, \"injected\": true' AS meta, data FROM events "
             'ORDER BY "offset" LIMIT 1')  # fmt: skip
    for fmt in ("jsonl", "json"):
        r = cli("sql", store, query, "--format", fmt)
        assert r.code == 0, r.err
        row = json.loads(r.out)[0] if fmt == "json" else json.loads(r.out)
        assert set(row) == {"data", "value", "meta", "data_2"} and row["meta"] == '1, "injected": true'
        assert isinstance(row["data"], str) and isinstance(row["data_2"], str)
    plain = json.loads(cli("sql", store, "SELECT data FROM events LIMIT 1", "--format", "jsonl").out)
    assert isinstance(plain["data"], dict)


def test_sql_default_format_off_a_terminal_is_jsonl(cli: Cli, store: Path) -> None:
    r = cli("sql", store, "SELECT count(*) AS n FROM events")
    assert (r.code, r.out) == (0, '{"n":3}\n')


def test_sql_csv_and_json(cli: Cli, store: Path) -> None:
    r = cli("sql", store, 'SELECT key, data FROM events ORDER BY "offset"', "--format", "csv")
    assert r.code == 0
    rows = list(csv.reader(io.StringIO(r.out)))
    assert rows == [["key", "data"], ["1", '{"n":12345678901234567890123,"p":1.10}'], ["2", '{"n":2,"p":0.5}'],
                    ["1", "{}"]]  # fmt: skip
    r = cli("sql", store, 'SELECT key FROM events ORDER BY "offset"', "--format", "json")
    assert r.code == 0
    assert json.loads(r.out) == [{"key": "1"}, {"key": "2"}, {"key": "1"}]


def test_sql_intervals_and_special_floats_are_written_readably(cli: Cli, store: Path) -> None:
    """`max(ts) - min(ts)` is an interval: written as DuckDB writes one; NaN and the infinities
    as the strings every reader writes them as."""
    query = ("SELECT interval '14 months 3 days 1 hour 2 minutes 3.5 seconds' AS i, interval '-1 day' AS d, "
             "interval '0 seconds' AS z, 'nan'::DOUBLE AS n, '-inf'::DOUBLE AS m FROM events LIMIT 1")  # fmt: skip
    r = cli("sql", store, query, "--format", "jsonl")
    assert r.code == 0, r.err
    assert json.loads(r.out) == {"i": "1 year 2 months 3 days 01:02:03.5", "d": "-1 day", "z": "00:00:00",
                                 "n": "NaN", "m": "-Infinity"}  # fmt: skip
    rows = list(csv.reader(io.StringIO(cli("sql", store, query, "--format", "csv").out)))
    assert rows[1] == ["1 year 2 months 3 days 01:02:03.5", "-1 day", "00:00:00", "NaN", "-Infinity"]


def test_sql_dates_and_times_python_cannot_hold_are_written(cli: Cli, store: Path) -> None:
    """An infinity, a year past 9999 or a nanosecond stopped the output midway (an overflow, after
    the CSV header), 24:00:00 came out as 00:00:00 and a TIMETZ lost its offset; each is now
    written, in every format, nested too: infinities as DuckDB writes them, the rest in ISO 8601
    as the other values."""
    query = ("SELECT 'infinity'::TIMESTAMP AS t, '-infinity'::DATE AS d, '10000-01-01 12:00:00.5'::TIMESTAMP AS far, "
             "'0044-03-15 (BC)'::DATE AS bc, '2025-01-01 00:00:00.123456789'::TIMESTAMP_NS AS ns, "
             "'2025-01-01 00:00:00'::TIMESTAMP_NS AS whole, '24:00:00'::TIME AS eod, '09:00:00+02'::TIMETZ AS tz, "
             "'infinity'::TIMESTAMPTZ AS tzi, {'at': 'infinity'::TIMESTAMP_MS, 'times': ['24:00:00'::TIME, NULL]} AS s, "
             "'2026-03-01 14:03:00'::TIMESTAMPTZ AS usual, '101'::BIT AS bits FROM events LIMIT 1")  # fmt: skip
    expected = {
        "t": "infinity", "d": "-infinity", "far": "10000-01-01T12:00:00.500000", "bc": "-0043-03-15",
        "ns": "2025-01-01T00:00:00.123456789", "whole": "2025-01-01T00:00:00", "eod": "24:00:00", "tz": "09:00:00+02",
        "tzi": "infinity", "s": {"at": "infinity", "times": ["24:00:00", None]}, "usual": "2026-03-01T14:03:00Z",
        "bits": "101",
    }  # fmt: skip
    for fmt in ("jsonl", "json", "csv", "table"):
        r = cli("sql", store, query, "--format", fmt)
        assert (r.code, r.err) == (0, ""), (fmt, r.err)
        if fmt == "jsonl":
            assert json.loads(r.out) == expected
        elif fmt == "json":
            assert json.loads(r.out) == [expected]
        elif fmt == "csv":
            header, row = csv.reader(io.StringIO(r.out))
            assert dict(zip(header, row, strict=True)) == {
                k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else v for k, v in expected.items()
            }
        else:  # (a table folds its cells on a narrow terminal: that it is written is what counts)
            assert r.out.count("\n") > 3


def test_sql_output_that_fails_leaves_nothing_on_stdout(cli: Cli, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value that cannot be written left the CSV header (or the JSON array's opening) on stdout."""
    from logtool.formats import writers

    def broken(value: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(writers, "plain", broken)
    for fmt in ("csv", "json"):
        r = cli("sql", store, "SELECT 'x'::BLOB AS b FROM events", "--format", fmt)
        assert (r.code, r.out) == (2, ""), fmt


def test_sql_empty_result(cli: Cli, store: Path) -> None:
    for fmt, expected in (("jsonl", ""), ("json", "[]\n")):
        r = cli("sql", store, "SELECT key FROM events WHERE false", "--format", fmt)
        assert (r.code, r.out) == (0, expected)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM events", "query must be a read-only SELECT, not DELETE"),
        ("COPY (SELECT 1) TO 'out.csv'", "query must be a read-only SELECT, not COPY"),
        ("SELECT 1; SELECT 2", "query must be one statement, found 2"),
        ("SELECT 1; DROP VIEW events", "query must be one statement, found 2"),
        ("INSERT INTO events SELECT * FROM events", "query must be a read-only SELECT, not INSERT"),
        ("CREATE TABLE t AS SELECT 1", "query must be a read-only SELECT, not CREATE"),
        ("ATTACH 'other.duckdb'", "query must be a read-only SELECT, not ATTACH"),
        ("PRAGMA version", "query must be a read-only SELECT, not PRAGMA"),
    ],
)
def test_sql_refuses_anything_but_one_select(cli: Cli, store: Path, tmp_path: Path, query: str, message: str) -> None:
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    r = cli("sql", store, query)
    assert r.code == 2
    assert r.out == ""
    assert r.errors() == [f"error: {message}"]
    assert "hint:" in r.err
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before
    assert not (tmp_path / "out.csv").exists() and not Path("out.csv").exists()


def test_sql_cannot_read_outside_the_store(write_lines: WriteLines, cli: Cli, store: Path, tmp_path: Path) -> None:
    """The error says the query may read only the events view (of sqlite_scan, DuckDB's first line
    was cut mid-sentence, the reason dropped)."""
    secret = write_lines(tmp_path / "secret.csv", ["a,b", "1,2"])
    for query, what in ((f"SELECT * FROM read_csv('{secret}')", f"the file {secret}"),
                        (f"SELECT * FROM sqlite_scan('{tmp_path / 'x.db'}', 't')", "what the sqlite_scanner extension reads")):  # fmt: skip
        r = cli("sql", store, query)
        assert (r.code, r.out) == (2, "")
        [error] = r.errors()  # (an extension installed beforehand is refused for its file instead)
        assert error == f"error: query failed: it may read only the `events` view, not {what}" or (
            "sqlite" in query and error.startswith("error: query failed: it may read only the `events` view, not ")
        ), r.err


@pytest.mark.parametrize("query", ["", "  ", ";"])
def test_sql_an_empty_query_is_said_to_be_empty(cli: Cli, store: Path, query: str) -> None:
    """It was "found 0 statements", with the hint to remove the extra ones."""
    r = cli("sql", store, query)
    assert (r.code, r.out, r.errors()) == (2, "", ["error: query is empty"])
    assert "hint: give one SELECT over the `events` view" in r.err


@pytest.mark.parametrize(
    "query",
    ["SELECT offset FROM events", "SELECT key FROM events ORDER BY offset", "SELECT max(offset) FROM events"],
)
def test_sql_bare_offset_gets_a_hint(cli: Cli, store: Path, query: str) -> None:
    r = cli("sql", store, query)
    assert r.code == 2
    assert r.out == ""
    assert len(r.errors()) == 1
    assert 'hint: OFFSET is a reserved word in SQL: write the column as "offset" (in double quotes)' in r.err


def test_sql_a_quoted_offset_gets_no_offset_hint(cli: Cli, store: Path) -> None:
    """The column written "offset" beside another mistake: the hint is not about offset."""
    r = cli("sql", store, 'SELECT "offset", position FROM events')
    assert r.code == 2 and "OFFSET is a reserved word" not in r.err


def test_sql_other_errors_point_to_the_view(cli: Cli, store: Path) -> None:
    r = cli("sql", store, "SELECT nosuch FROM events")
    assert r.code == 2
    assert len(r.errors()) == 1 and r.errors()[0].startswith("error: query failed:")
    assert "events" in r.err.split("hint:", 1)[1]


@pytest.mark.parametrize("command", ["info", "log", "sql", "verify"])
def test_read_commands_on_a_missing_store(cli: Cli, tmp_path: Path, command: str) -> None:
    args = [command, tmp_path / "nope"] + (["SELECT 1"] if command == "sql" else [])
    r = cli(*args)
    assert r.code == 2
    assert r.out == ""
    assert r.errors() == [f"error: {tmp_path / 'nope'}: no such store"]


def test_read_commands_do_not_create_a_store(cli: Cli, tmp_path: Path) -> None:
    cli("info", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_usage_errors_exit_2(cli: Cli, store: Path) -> None:
    assert cli("nosuch").code == 2
    assert cli("ingest").code == 2  # STORE and FILE missing
    assert cli("sql", store, "SELECT 1", "--format", "xml").code == 2
    assert cli("ingest", store, "x.jsonl", "--segment-rows", "0").code == 2


# --------------------------------------------------------------------------- help


def test_root_help(cli: Cli) -> None:
    for flag in ("--help", "-h"):
        r = cli(flag)
        assert r.code == 0
        for name in ("ingest", "info", "log", "verify", "sql"):
            assert name in r.out


def _commands() -> list[str]:
    return sorted(get_command(app).commands)  # type: ignore[attr-defined]


def test_issue_commands_exist() -> None:
    assert {"ingest", "info", "log", "verify", "sql"} <= set(_commands())


@pytest.mark.parametrize("name", _commands())
def test_every_command_has_help_with_an_example(cli: Cli, name: str) -> None:
    command = get_command(app).commands[name]  # type: ignore[attr-defined]
    assert command.help and command.help.strip(), f"{name} has no help text"
    r = cli(name, "--help")
    assert r.code == 0
    assert "Example" in r.out
    assert f"logtool {name}" in r.out  # the example runs this very command
    assert r.err == ""


# --------------------------------------------------------------------------- the installed entry point


def _logtool() -> str:
    beside = Path(sys.executable).parent / "logtool"
    found = str(beside) if beside.exists() else shutil.which("logtool")
    assert found, "the logtool console script is not installed"
    return found


def _run(*args: str | Path, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    return subprocess.run([_logtool(), *map(str, args)], input=input, capture_output=True, timeout=120, env=env)


def test_entry_point_help() -> None:
    p = _run("--help")
    assert p.returncode == 0
    assert b"ingest" in p.stdout and b"verify" in p.stdout
    assert p.stderr == b""


def test_entry_point_exit_codes_and_streams(tmp_path: Path) -> None:
    store = tmp_path / "store"
    # trouble: one error line, a hint, no traceback, nothing on stdout
    p = _run("ingest", store, tmp_path / "missing.jsonl", "--key-field", "id")
    assert p.returncode == 2
    assert p.stdout == b""
    err = p.stderr.decode()
    assert [x for x in err.splitlines() if x.startswith("error:")] == [
        f"error: {tmp_path / 'missing.jsonl'}: no such file"
    ]
    assert "Traceback" not in err
    # ingest from stdin: summary on stderr only
    p = _run("ingest", store, "-", "--key-field", "id", "--entity", "e", input=b'{"id":1,"v":1.10}\n{"id":2}\n')
    assert p.returncode == 0, p.stderr
    assert p.stdout == b""
    assert b"total: 2 ingested, 0 quarantined, 0 skipped" in p.stderr
    # piped output defaults to JSON lines, exact
    p = _run("sql", store, 'SELECT key, data FROM events ORDER BY "offset"')
    assert p.returncode == 0
    assert p.stdout == b'{"key":"1","data":{"v":1.10}}\n{"key":"2","data":{}}\n'
    # a refused statement
    p = _run("sql", store, "DELETE FROM events")
    assert p.returncode == 2 and p.stdout == b"" and b"not DELETE" in p.stderr
    # verify: clean 0, tampered 1
    p = _run("verify", store)
    assert p.returncode == 0 and p.stdout == b""
    (segment,) = (store / "segments").iterdir()
    segment.unlink()
    p = _run("verify", store, "--format", "jsonl")
    assert p.returncode == 1
    assert json.loads(p.stdout.splitlines()[0])["where"] == f"segments/{segment.name}"
    assert b"Traceback" not in p.stderr


def test_entry_point_locked_store(write_lines: WriteLines, tmp_path: Path) -> None:
    from logtool.store import Store

    f = write_lines(tmp_path / "a.jsonl", ['{"id":1}'])
    store = Store.create(tmp_path / "store")
    with store.writer("x"):
        p = _run("ingest", tmp_path / "store", f, "--key-field", "id")
    assert p.returncode == 2
    assert f"store is locked by pid {os.getpid()}".encode() in p.stderr
    assert b"Traceback" not in p.stderr


def test_library_does_not_import_the_cli_stack() -> None:
    code = (
        "import sys, logtool, tempfile, os\n"
        "d = tempfile.mkdtemp(); p = os.path.join(d, 'a.jsonl'); open(p, 'w').write('{\"id\":1}\\n')\n"
        "logtool.ingest(os.path.join(d, 's'), [p], mapping=logtool.Mapping(key_fields=('id',)))\n"
        "assert logtool.verify(os.path.join(d, 's')).ok\n"
        "print(sorted(m for m in ('typer', 'rich', 'click') if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def _modules_after(args: list[str], modules: tuple[str, ...]) -> list[str]:
    """Which of these modules the CLI imported to run ``args``, in a fresh interpreter."""
    code = (
        "import sys\n"
        "from logtool.cli import main\n"
        f"main({args!r})\n"
        f"print(sorted(m for m in {modules!r} if m in sys.modules), file=sys.stderr)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return list(json.loads(p.stderr.strip().splitlines()[-1].replace("'", '"')))


def test_help_does_not_import_the_engines() -> None:
    assert _modules_after(["--help"], ("duckdb", "pyarrow")) == []


def test_help_does_not_import_pydantic() -> None:
    """typer 0.29 and later parse options through pydantic, whose import slows every command."""
    assert _modules_after(["sql", "--help"], ("pydantic",)) == []


def test_version_is_printed_on_stdout() -> None:
    import logtool

    p = subprocess.run([sys.executable, "-m", "logtool", "--version"], capture_output=True, text=True, timeout=120)
    assert (p.returncode, p.stdout, p.stderr) == (0, f"logtool {logtool.__version__}\n", "")


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "logtool", "info", str(tmp_path / "absent")],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "absent" in p.stderr and "Traceback" not in p.stderr


def test_ingest_api_survives_importing_its_module(write_lines: WriteLines, tmp_path: Path) -> None:
    """`logtool.ingest` stays the function even when the submodule of that name was imported first."""
    f = write_lines(tmp_path / "a.jsonl", ['{"id":1}'])
    code = (
        "import sys\n"
        "from logtool.ingest import IngestResult\n"
        "from logtool.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    p = subprocess.run([sys.executable, "-c", code, "ingest", str(tmp_path / "s"), str(f), "--key-field", "id"],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr


# --------------------------------------------------------------------------- contracts at the edges


def test_no_command_prints_the_help_on_stderr_and_exits_2() -> None:
    p = _run()
    assert p.returncode == 2 and p.stdout == b""
    assert b"ingest" in p.stderr and b"verify" in p.stderr


def test_a_reader_that_stops_early_does_not_turn_a_difference_into_same(tmp_path: Path) -> None:
    """`logtool diff A B | head -c1`: the pipe closes under diff, whose exit code still says 1."""
    for name, qty in (("a", 1), ("b", 2)):
        log = tmp_path / f"{name}.jsonl"
        log.write_text("".join(json.dumps({"id": i, "qty": qty, "pad": "x" * 200}) + "\n" for i in range(3000)))
        assert _run("ingest", tmp_path / name, log, "--key-field", "id", "--entity", "t").returncode == 0
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    p = subprocess.Popen([_logtool(), "diff", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "jsonl"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.read(1) == b"{"
    p.stdout.close()  # far more than a pipe holds is still to come
    err = p.stderr.read()
    assert p.wait(timeout=120) == 1, err
    assert b"Traceback" not in err and b"Exception ignored" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--memory-limit", "lots"], "error: --memory-limit lots: Memory must have a number"),
        (["--memory-limit", "0GB"], "error: --memory-limit 0GB: the limit must be more than 0"),
        (["--memory-limit", "-1GB"], "error: --memory-limit -1GB: the limit must be more than 0"),
        (["--threads", "0"], "Invalid value for '--threads'"),
        (["--threads", "-3"], "Invalid value for '--threads'"),
    ],
)
def test_bad_engine_settings_are_usage_errors(cli: Cli, store: Path, args: list[str], message: str) -> None:
    run = cli(*args, "replay", store)
    assert run.code == 2 and run.out == ""
    assert message in run.err and "internal error" not in run.err


def test_log_as_a_table_is_a_line_per_commit(cli: Cli, store: Path) -> None:
    assert cli("purge", store, "--key", "2", "--yes").code == 0
    run = cli("log", store, "--format", "table")
    assert run.code == 0
    header = next(line for line in run.out.splitlines() if "version" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")] == ["version", "time", "actor", "operation", "summary"]
    assert "--format json" in run.err
    full = json.loads(cli("log", store, "--format", "json").out)
    assert full[1]["receipt"]["offsets"] == [[1, 1]]


def test_replay_refuses_a_format_that_cannot_be_written_to_a_directory_before_replaying(
    cli: Cli, store: Path, tmp_path: Path
) -> None:
    run = cli("replay", store, "--format", "json", "-o", tmp_path / "out")
    assert run.code == 2 and run.errors() == ["error: -o writes files: --format json cannot go there"]
    assert "state at" not in run.err and not (tmp_path / "out").exists()


def test_demo_keep_refuses_a_directory_that_is_not_empty(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "shop.store").mkdir()
    run = cli("demo", "--keep", tmp_path / "kept")
    assert run.code == 2 and run.errors() == [f"error: --keep {tmp_path / 'kept'}: not an empty directory"]


@pytest.mark.parametrize(
    "command",
    [
        ["sql", "{store}", "SELECT length(string_agg(repeat('x', 1000), '')) AS n FROM range(100000)"],
        ["purge", "{store}", "--where", "length((SELECT string_agg(repeat(data::varchar, 1000000), '') FROM events)) > 0",
         "--dry-run"],
        ["diff", "{a}", "{b}", "--key-column", "id"],
    ],
)
def test_running_out_of_memory_is_said_so_by_every_command(
    cli: Cli, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """sql, a purge's selection and diff reported DuckDB's memory limit as their own failure, with
    a hint about the events view's columns or the sides being readable: it is the limit to raise."""
    from logtool import engine

    monkeypatch.setattr(engine.settings, "memory_limit", engine.settings.memory_limit)  # restored after
    for side, letter in (("a", "x"), ("b", "y")):
        (tmp_path / f"{side}.csv").write_text("id,v\n" + "".join(f"{i},{letter * 100_000}\n" for i in range(100)))
    args = [a.format(store=store, a=tmp_path / "a.csv", b=tmp_path / "b.csv") for a in command]
    r = cli("--memory-limit", "10MB", *args)
    assert (r.code, r.out) == (2, "")
    assert r.errors() == ["error: out of memory: the work needed more than the engine's limit (10MB)"], r.err
    assert "hint: raise it with `logtool --memory-limit 8GB ...`" in r.err
