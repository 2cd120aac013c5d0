"""Each reader (JSON lines plain/.gz/.zst, CSV, Parquet, stdin) and format auto-detection."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import example, given, settings
from hypothesis import strategies as st

import logtool
from logtool.formats import all_formats, detect
from logtool.formats.base import Mapping, Source, dumps_exact, loads_exact

Cli = Callable[..., Any]  # the `cli` fixture of conftest.py
WriteLines = Callable[[Path, Iterable[str | bytes]], Path]  # the `write_lines` fixture

Query = Callable[[Path, str], list[dict[str, Any]]]

RECORDS = [
    '{"id":1,"op":"c","name":"Zoë","n":12345678901234567890123}',
    '{"id":2,"op":"u","name":"日本","n":1.10}',
    '{"id":3,"op":"d"}',
]

EVENT_COLUMNS = "entity, key, op, type, data, meta, ts, source.line AS line"


def _events(query: Query, store: Path) -> list[dict[str, Any]]:
    return query(
        store,
        f'SELECT "offset", {EVENT_COLUMNS}, source.format AS format, source.file AS file FROM events ORDER BY "offset"',
    )


# --------------------------------------------------------------------------- JSON lines


@pytest.mark.parametrize("compression", ["plain", "gz", "zst"])
def test_jsonl_plain_gz_zst(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path, compression: str
) -> None:
    text = ("\n".join(RECORDS) + "\n").encode()
    name = {"plain": "shop.jsonl", "gz": "shop.jsonl.gz", "zst": "shop.jsonl.zst"}[compression]
    payload = {
        "plain": lambda b: b,
        "gz": gzip.compress,
        "zst": lambda b: zstandard.ZstdCompressor().compress(b),
    }[compression](text)
    (tmp_path / name).write_bytes(payload)
    store = new_store("s")
    r = cli("ingest", store, tmp_path / name, "--key-field", "id", "--op-field", "op")
    assert r.code == 0, r.err
    rows = _events(query, store)
    assert [(e["offset"], e["key"], e["op"], e["line"]) for e in rows] == [
        (0, "1", "insert", 1), (1, "2", "update", 2), (2, "3", "delete", 3),
    ]  # fmt: skip
    assert {e["format"] for e in rows} == {"jsonl"}
    assert {e["file"] for e in rows} == {str(tmp_path / name)}
    assert {e["entity"] for e in rows} == {"shop"}  # default entity: the file name's stem
    assert rows[0]["data"] == '{"name":"Zoë","n":12345678901234567890123}'
    assert rows[1]["data"] == '{"name":"日本","n":1.10}'


def test_jsonl_multi_frame_zst(cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path) -> None:
    # zstd streams written in several frames (as `zstd` does for big inputs) are read to the end
    c = zstandard.ZstdCompressor()
    blob = b"".join(c.compress((line + "\n").encode()) for line in RECORDS)
    (tmp_path / "multi.jsonl.zst").write_bytes(blob)
    store = new_store("s")
    assert cli("ingest", store, tmp_path / "multi.jsonl.zst", "--key-field", "id").code == 0
    assert [e["key"] for e in _events(query, store)] == ["1", "2", "3"]


def test_jsonl_blank_lines_crlf_and_no_final_newline(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    f = tmp_path / "t.jsonl"
    f.write_bytes(b'{"id":1,"v":"a"}\r\n\r\n   \n{"id":2,"v":"b"}\r\n{"id":3,"v":"c"}')
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 0, r.err
    rows = _events(query, store)
    # blank lines are not records, but they still count for the line numbers of what follows
    assert [(e["key"], e["line"], e["data"]) for e in rows] == [
        ("1", 1, '{"v":"a"}'), ("2", 4, '{"v":"b"}'), ("3", 5, '{"v":"c"}'),
    ]  # fmt: skip


# --------------------------------------------------------------------------- CSV


def test_csv_quoted_commas_newlines_quotes(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    f = tmp_path / "people.csv"
    f.write_bytes(
        b"id,name,note,amount,code\n"
        b'1,"Doe, Jane","line one\nline two",1.10,007\n'
        b'2,"say ""hi""",,123456789012345678901234567890,42\n'
        b"3,plain,x,-0.5,\n"
    )
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 0, r.err
    rows = _events(query, store)
    assert [(e["key"], e["line"]) for e in rows] == [("1", 2), ("2", 4), ("3", 5)]  # a record's first line
    assert rows[0]["data"] == '{"name":"Doe, Jane","note":"line one\\nline two","amount":1.10,"code":"007"}'
    # an empty field is null; a JSON number stays that number, exactly
    assert rows[1]["data"] == '{"name":"say \\"hi\\"","note":null,"amount":123456789012345678901234567890,"code":42}'
    assert rows[2]["data"] == '{"name":"plain","note":"x","amount":-0.5,"code":null}'
    assert {e["format"] for e in rows} == {"csv"}
    assert {e["entity"] for e in rows} == {"people"}


def test_csv_quoted_empty_field_is_the_empty_string(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """PostgreSQL's COPY ... CSV convention, which replay's CSV output writes: NULL unquoted, '' quoted."""
    f = tmp_path / "t.csv"
    f.write_bytes(b'id,v,w\n1,"",\n2,,""\n3,"a""b",""""\n4,"x\ny",""\n5,"",""\n')
    store = new_store("s")
    assert cli("ingest", store, f, "--key-field", "id").code == 0
    assert [e["data"] for e in _events(query, store)] == [
        '{"v":"","w":null}', '{"v":null,"w":""}', '{"v":"a\\"b","w":"\\""}', '{"v":"x\\ny","w":""}', '{"v":"","w":""}',
    ]  # fmt: skip


def test_single_column_csv_quoted_empty_row_is_a_record(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    # a blank line is no record; `""` on its own is one whose one field is the empty string
    f = tmp_path / "skus.csv"
    f.write_bytes(b'sku\nA1\n""\n\nB2\n')
    store = new_store("s")
    r = cli("ingest", store, f, "--format", "csv", "--entity", "skus")
    assert r.code == 0 and "3 ingested" in r.err
    assert [(e["line"], e["data"]) for e in _events(query, store)] == [
        (2, '{"sku":"A1"}'), (3, '{"sku":""}'), (5, '{"sku":"B2"}'),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (b'id,v\n0,fine\n1,"unterminated\n2,b\n', ["0"]),  # the quote runs over the lines after it
        (b'id,v\n1,a\n2,"unterminated', ["1"]),  # a truncated export: on the line it started on
    ],
)
def test_csv_quote_the_file_ends_inside_is_a_bad_record(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path, text: bytes, kept: list[str]
) -> None:
    f = tmp_path / "t.csv"
    f.write_bytes(text)
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id", "--on-error", "quarantine")
    assert r.code == 0, r.err
    assert [e["key"] for e in _events(query, store)] == kept
    assert f"{f}:3: a quoted field has no closing quote (the file ends inside it)" in r.err
    failed = cli("ingest", new_store("t"), f, "--key-field", "id")
    assert failed.code == 2 and f"{f}:3: a quoted field has no closing quote" in failed.err


def test_csv_last_line_without_its_line_break_is_read(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    ok = tmp_path / "ok.csv"
    ok.write_bytes(b'id,v\n1,a\n2,"closed"')
    store = new_store("t")
    assert cli("ingest", store, ok, "--key-field", "id").code == 0
    assert [json.loads(e["data"]) for e in _events(query, store)] == [{"v": "a"}, {"v": "closed"}]


def test_a_lone_surrogate_escape_is_read_as_the_replacement_character(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """A lone surrogate escape (half an emoji, as JavaScript's JSON.stringify writes a string cut
    inside one) is valid JSON that no UTF-8 text can hold: it is read as U+FFFD, as a UTF-8
    encoder writes it, a warning names the first, and everything else of the record is as it was
    (a whole pair is its character, an escaped backslash before "ud83d" is text)."""
    f = tmp_path / "js.jsonl"
    f.write_text(
        '{"id":9,"msg":"ab\\ud83d"}\n'
        '{"id":10,"msg":"ok \\ud83d\\ude00 \\\\ud83d \\udc00","n":1.50}\n'
        '{"id":11,"msg":"\\ud83d","x":[1,]}\n'
    )
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id", "--on-error", "quarantine")
    assert r.code == 0, r.err
    assert f"warning: {f}:1: a lone surrogate escape (such as \\ud83d: half a character" in r.err
    assert [(e["key"], e["data"]) for e in _events(query, store)] == [
        ("9", '{"msg":"ab\ufffd"}'), ("10", '{"msg":"ok \U0001f600 \\\\ud83d \ufffd","n":1.50}'),
    ]  # fmt: skip
    # a record broken otherwise is still bad, for what it is, and quarantined as it was written
    (q,) = [json.loads(x) for x in next((store / "quarantine").iterdir()).read_text().splitlines()]
    assert (q["line"], q["reason"], q["raw"]) == (3, "broken JSON: a trailing comma", '{"id":11,"msg":"\\ud83d","x":[1,]}')
    # the JSON formats a reader decodes in Python read it alike
    dbz = tmp_path / "dbz.jsonl"
    dbz.write_text(json.dumps({"schema": None, "payload": {"op": "c", "after": {"id": 1, "m": "ab\ud83d"},
                                           "source": {"schema": "public", "table": "t", "ts_ms": 1}}}) + "\n")  # fmt: skip
    r = cli("ingest", store, dbz)
    assert r.code == 0, r.err
    assert f"warning: {dbz}:1: a lone surrogate escape" in r.err
    assert query(store, "SELECT data FROM events WHERE entity = 'public.t'") == [{"data": '{"id":1,"m":"ab\ufffd"}'}]


def test_a_lone_surrogate_a_reader_decoded_inside_a_value_is_read_alike() -> None:
    """A surrogate that reaches a batch (a document held as JSON text, its escape escaped) is
    read as U+FFFD too, and said, rather than failing the read."""
    from logtool.formats.base import Batcher

    source = Source("-")
    batcher = Batcher(source=source)
    batcher.add(ts=0, entity="c", key="k\ud83d", op="upsert", data='{"m":"ab\ud83d"}', source={"file": "x", "line": 1})
    batch = batcher.flush()
    assert batch.column("key").to_pylist() == ["k\ufffd"] and batch.column("data").to_pylist() == ['{"m":"ab\ufffd"}']
    assert len(source.notes) == 1 and "a lone surrogate escape" in source.notes[0]


def test_csv_bad_records_are_reported_in_line_order(cli: Cli, new_store: Callable[[str], Path], tmp_path: Path) -> None:
    """--on-error fail names the first bad record, and quarantine keeps them in line order,
    whether a record is bad as it is split (its field count, its encoding) or as it is mapped
    (a missing key): the first is not passed over for a later one found sooner."""
    f = tmp_path / "o.csv"
    f.write_bytes(b"id,name\n,no key here\n2,Bob,extra\n3,\xff\n4,x\n")
    r = cli("ingest", new_store("s"), f, "--key-field", "id")
    assert r.code == 2 and r.errors() == [f"error: {f}:2: missing key field 'id'"]
    store = new_store("q")
    r = cli("ingest", store, f, "--key-field", "id", "--on-error", "quarantine")
    assert r.code == 0, r.err
    quarantined = [json.loads(x) for q in sorted((store / "quarantine").iterdir()) for x in q.read_text().splitlines()]
    assert [(q["line"], q["reason"][:24]) for q in quarantined] == [
        (2, "missing key field 'id'"), (3, "expected 2 fields, found"), (4, "invalid UTF-8 at byte 2 "),
    ]  # fmt: skip


def test_csv_invalid_utf8_is_placed_by_byte_in_the_record(cli: Cli, new_store: Callable[[str], Path], tmp_path: Path) -> None:
    """A Latin-1 byte in a CSV record is placed as a JSON line's is, by its byte in the record as
    the file holds it: the delimiters and quotes before it count, and so does every byte of a
    multi-byte character (not the fields' characters joined, which placed it at "character 1")."""
    f = tmp_path / "latin.csv"
    f.write_bytes(b"id,name,city\n1,ann,x\n2,\"J\xc3\xbcrg\",Z\xfcrich\n")  # the \xfc is at byte 11
    r = cli("ingest", new_store("s"), f, "--key-field", "id")
    assert r.code == 2
    assert r.errors()[0] == f"error: {f}:3: invalid UTF-8 at byte 11 (a file in another encoding can be converted with iconv)"


@pytest.mark.parametrize(
    ("header", "row", "sep"),
    [('id;"Amount, EUR";name', '1;"3,50";ann', ";"), ('id\t"a,b"\tname', '1\t"3,50"\tann', "\t"),
     ('id,"a;b;c",name', '1,"3;50",ann', ",")],
)  # fmt: skip
def test_csv_delimiter_is_read_outside_quoted_names(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path, header: str, row: str, sep: str
) -> None:
    """A quoted column name may hold another delimiter: the header's delimiter is the one
    outside its quotes (a comma in "Amount, EUR" does not make a semicolon file comma-separated)."""
    f = tmp_path / "h.csv"
    f.write_text(header + "\n" + row + "\n")
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 0, r.err
    names = [n.strip('"') for n in header.split(sep)]
    values = [v.strip('"') for v in row.split(sep)]
    assert [(e["key"], json.loads(e["data"])) for e in _events(query, store)] == [
        ("1", {names[1]: values[1], names[2]: values[2]})
    ]


@pytest.mark.parametrize(("name", "sep"), [("semi.csv", ";"), ("tabs.tsv", "\t"), ("pipes.csv", "|")])
def test_csv_with_another_delimiter(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path, name: str, sep: str
) -> None:
    """Spreadsheets in many locales separate fields with semicolons; tab-separated files are
    common: a header without a comma says which delimiter the file uses."""
    f = tmp_path / name
    f.write_text(sep.join(["id", "name", "note"]) + "\n" + sep.join(["1", "Ana", f'"a{sep}b, c"']) + "\n")
    assert detect(Source(str(f))).name == "csv"
    store = new_store("s")
    assert cli("ingest", store, f, "--key-field", "id").code == 0
    assert [(e["key"], json.loads(e["data"])) for e in _events(query, store)] == [("1", {"name": "Ana", "note": f"a{sep}b, c"})]
    out = tmp_path / "redacted.csv"
    assert cli("redact", f, "--field", "name", "--key", "1", "--key-field", "id", "-o", out).code == 0
    assert out.read_text().splitlines()[1] == sep.join(["1", "[REDACTED]", f'"a{sep}b, c"'])


def test_csv_crlf_and_mapping(cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_bytes(
        b"table,id,op,ts,who\r\norders,1,c,2024-01-01T10:00:00+02:00,al\r\norders,1,d,2024-01-01T11:00:00+02:00,bo\r\n"
    )
    store = new_store("s")
    r = cli(
        "ingest", store, f, "--entity-field", "table", "--key-field", "id", "--op-field", "op",
        "--ts-field", "ts", "--meta-field", "who",
    )  # fmt: skip
    assert r.code == 0, r.err
    rows = _events(query, store)
    assert [(e["entity"], e["key"], e["op"], e["meta"], e["data"]) for e in rows] == [
        ("orders", "1", "insert", '{"who":"al"}', "{}"),
        ("orders", "1", "delete", '{"who":"bo"}', "{}"),
    ]
    assert rows[0]["ts"] == dt.datetime(2024, 1, 1, 8, tzinfo=dt.UTC)


def test_csv_columns_without_a_name_or_with_odd_ones(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """pandas writes its index column with an empty name: it is a column like any other, through
    replay and the typed export."""
    f = tmp_path / "p.csv"
    f.write_bytes(b',id,a/b,m~n,x.y\n0,1,p,q,r\n1,2,s,t,u\n')
    store = new_store("s")
    assert cli("ingest", store, f, "--key-field", "id").code == 0
    assert _events(query, store)[0]["data"] == '{"":0,"a/b":"p","m~n":"q","x.y":"r"}'
    out = tmp_path / "state"
    assert cli("replay", store, "--format", "parquet", "-o", out).code == 0
    assert pq.read_table(out / "p.parquet").to_pylist() == [
        {"key": "1", "": 0, "a/b": "p", "m~n": "q", "x.y": "r"}, {"key": "2", "": 1, "a/b": "s", "m~n": "t", "x.y": "u"},
    ]  # fmt: skip


def test_csv_header_with_invalid_utf8_is_refused_with_its_line(
    cli: Cli, new_store: Callable[[str], Path], tmp_path: Path
) -> None:
    f = tmp_path / "latin1.csv"
    f.write_bytes(b"id,caf\xe9\n1,2\n")
    r = cli("ingest", new_store("s"), f, "--key-field", "id")
    assert r.code == 2 and r.errors() == [f"error: {f}:1: invalid UTF-8 in the name of column 2"]


def test_a_compression_ingest_does_not_read_is_named(cli: Cli, new_store: Callable[[str], Path], tmp_path: Path) -> None:
    import bz2
    import lzma

    for name, packed, kind in (("a.jsonl.bz2", bz2.compress(b'{"id":1}\n'), "bzip2"),
                               ("a.jsonl.xz", lzma.compress(b'{"id":1}\n'), "xz")):  # fmt: skip
        f = tmp_path / name
        f.write_bytes(packed)
        r = cli("ingest", new_store("s"), f, "--key-field", "id")
        assert r.code == 2 and r.errors() == [f"error: {f}: compressed with {kind}: logtool reads plain, gzip and zstd files"]


@pytest.mark.parametrize("damage", ["gzip cut short", "gzip garbage", "zstd cut short", "zstd cut at a line end", "zstd garbage"])
def test_damaged_compressed_input_is_an_input_error(
    cli: Cli, new_store: Callable[[str], Path], tmp_path: Path, damage: str
) -> None:
    data = b"".join(b'{"id":%d}\n' % i for i in range(5000))
    packed = {
        "gzip cut short": gzip.compress(data)[:4000],
        "gzip garbage": b"\x1f\x8b" + b"garbage" * 50,
        "zstd cut short": zstandard.compress(data)[:1000],
        # a whole first frame, then a second one cut short: read to its last whole line, it still says so
        "zstd cut at a line end": zstandard.compress(data) + zstandard.compress(data)[:-9],
        "zstd garbage": b"\x28\xb5\x2f\xfd" + b"garbage" * 50,
    }[damage]
    f = tmp_path / ("a.jsonl.zst" if "zstd" in damage else "a.jsonl.gz")
    f.write_bytes(packed)
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id", "--on-error", "skip")
    assert r.code == 2 and r.errors()[0].startswith(f"error: {f}: the compressed data is damaged or cut short (")
    assert ("zstdcat" if "zstd" in damage else "zcat") in r.err
    assert not store.exists()  # nothing of it committed (and the store the ingest made goes)


def test_the_damage_hint_names_the_entity_the_file_name_gives(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """Following the hint of a damaged file ingests the records before the damage under the
    entity the file's name gives them, not `<stdin>`'s: the hint passes --entity where no option
    names one (and quotes what the shell would split)."""
    data = b"".join(b'{"id":%d,"v":"some payload text"}\n' % i for i in range(3000))
    f = tmp_path / "my orders.jsonl.gz"
    f.write_bytes(gzip.compress(data)[:4000])
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 2
    assert f"`zcat '{f}' | logtool ingest STORE - --entity 'my orders' ...`" in " ".join(r.err.split())
    for options in (("--entity", "x"), ("--entity-field", "t"), ("--format", "debezium")):
        r = cli("ingest", store, f, "--key-field", "id", *options)
        assert r.code == 2 and f"`zcat '{f}' | logtool ingest STORE - ...`" in " ".join(r.err.split())
    # read from stdin there is no file to name: the hint says to pipe the same stream, and to name the entity
    r = cli("ingest", store, "-", "--key-field", "id", input=f.read_bytes())
    assert r.code == 2 and ("by piping the same stream through `zcat` into `logtool ingest STORE - --entity NAME ...`"
                            in " ".join(r.err.split()))  # fmt: skip


def test_a_binary_file_is_not_taken_for_csv(cli: Cli, new_store: Callable[[str], Path], tmp_path: Path) -> None:
    f = tmp_path / "image.bin"
    f.write_bytes(b"\x00\x01id,\x02\x1bname;\xff\n" * 20)  # delimiters, and control bytes among them
    r = cli("ingest", new_store("s"), f, "--key-field", "id")
    assert r.code == 2 and r.errors() == [f"error: {f}:1: could not recognize the format"]


def test_a_json_array_of_records_gets_a_hint(cli: Cli, new_store: Callable[[str], Path], tmp_path: Path) -> None:
    f = tmp_path / "records.json"
    f.write_text('[{"id": 1, "v": "a"},\n {"id": 2, "v": "b"}]\n')
    r = cli("ingest", new_store("s"), f, "--key-field", "id")
    assert r.code == 2 and "a JSON array, not JSON lines" in r.err and "jq -c '.[]'" in r.err


def test_csv_header_naming_a_column_twice_is_refused(cli: Cli, new_store: Callable[[str], Path], tmp_path: Path) -> None:
    f = tmp_path / "d.csv"
    f.write_bytes(b"id,name,name\n1,a,b\n")
    r = cli("ingest", new_store("s"), f, "--key-field", "id", "--on-error", "skip")
    assert r.code == 2 and r.errors() == [f"error: {f}:1: the header names column 'name' more than once"]


# --------------------------------------------------------------------------- byte order mark

BOM = b"\xef\xbb\xbf"


@pytest.mark.parametrize("how", ["plain", "gz", "zst", "stdin"])
def test_jsonl_with_a_byte_order_mark(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path, how: str
) -> None:
    """Windows tools start UTF-8 text with a byte order mark: it is no part of the first record."""
    import gzip

    import zstandard

    content = BOM + b'{"id":1,"v":"\xc3\xa9"}\n{"id":2,"v":2}\n'
    packed = {"plain": content, "gz": gzip.compress(content), "zst": zstandard.compress(content)}
    f = tmp_path / {"plain": "a.jsonl", "gz": "a.jsonl.gz", "zst": "a.jsonl.zst", "stdin": "unused"}[how]
    store = new_store("s")
    if how == "stdin":
        r = cli("ingest", store, "-", "--key-field", "id", input=content)
    else:
        f.write_bytes(packed[how])
        r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 0, r.err
    assert "(jsonl)" in r.err
    rows = _events(query, store)
    assert [(e["key"], e["line"], e["data"]) for e in rows] == [("1", 1, '{"v":"é"}'), ("2", 2, '{"v":2}')]
    # the content hash is of the bytes as they are, mark included: the same file is a duplicate
    if how == "plain":
        again = cli("ingest", store, f, "--key-field", "id")
        assert again.code == 0 and "already" in again.err
        assert len(_events(query, store)) == 2


def test_csv_with_a_byte_order_mark(cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_bytes(BOM + b"id,name\r\n1,Ana\r\n2,Bo\r\n")
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 0, r.err
    assert [(e["key"], e["data"]) for e in _events(query, store)] == [("1", '{"name":"Ana"}'), ("2", '{"name":"Bo"}')]


def test_a_file_holding_only_a_byte_order_mark_is_empty(
    cli: Cli, new_store: Callable[[str], Path], tmp_path: Path
) -> None:
    f = tmp_path / "a.jsonl"
    f.write_bytes(BOM)
    r = cli("ingest", new_store("s"), f, "--key-field", "id")
    assert r.code == 2 and "empty" in r.err


# --------------------------------------------------------------------------- Parquet


def test_parquet_generic_table(cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path) -> None:
    f = tmp_path / "accounts.parquet"
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "op": ["c", "d"],
            "at": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)],
                           pa.timestamp("us", tz="UTC")),
            "amount": pa.array([Decimal("1.100"), Decimal("123456789012345678901234567.890")], pa.decimal128(30, 3)),
            "big": pa.array([2**62 + 1, -(2**62)], pa.int64()),
            "name": ["zoë", None],
            "tags": [[1, 2], []],
        }
    )  # fmt: skip
    pq.write_table(table, f)
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id", "--op-field", "op", "--ts-field", "at")
    assert r.code == 0, r.err
    rows = _events(query, store)
    assert [(e["key"], e["op"], e["line"], e["format"], e["entity"]) for e in rows] == [
        ("1", "insert", 1, "parquet", "accounts"), ("2", "delete", 2, "parquet", "accounts"),
    ]  # fmt: skip
    assert [e["ts"] for e in rows] == [dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 2, tzinfo=dt.UTC)]
    assert rows[0]["data"] == '{"amount":1.100,"big":4611686018427387905,"name":"zoë","tags":[1,2]}'
    assert (
        rows[1]["data"] == '{"amount":123456789012345678901234567.890,"big":-4611686018427387904,"name":null,"tags":[]}'
    )


def _source_store(write_lines: WriteLines, cli: Cli, store: Path, tmp_path: Path) -> None:
    f = write_lines(
        tmp_path / "src.jsonl",
        [
            '{"stream":"acct","id":7,"type":"Opened","at":"2024-01-01T00:00:00Z","body":{"amount":1.10},"actor":"al"}',
            '{"stream":"acct","id":7,"type":"Closed","at":"2024-01-02T00:00:00+01:00","body":null,"actor":"bo"}',
            '{"stream":"acct","id":8,"type":"Opened","at":1704067200,"body":{"n":12345678901234567890123},"actor":"cy"}',
        ],
    )
    r = cli(
        "ingest", store, f, "--entity-field", "stream", "--key-field", "id", "--type-field", "type",
        "--ts-field", "at", "--data-field", "body", "--meta-field", "actor",
    )  # fmt: skip
    assert r.code == 0, r.err


def test_parquet_float_nan_and_infinities_are_values(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """JSON has no number for them: they are written as the other readers write them, and the typed
    export gives the floats back."""
    f = tmp_path / "m.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3, 4], "x": [float("nan"), float("inf"), float("-inf"), 0.5],
                             "n": pa.array([1.5, None, 2.0, 3.25], pa.float32())}), f)  # fmt: skip
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 0, r.err
    assert [e["data"] for e in _events(query, store)] == [
        '{"x":"NaN","n":1.5}', '{"x":"Infinity","n":null}', '{"x":"-Infinity","n":2.0}', '{"x":0.5,"n":3.25}',
    ]  # fmt: skip
    out = tmp_path / "state"
    assert cli("replay", store, "--format", "parquet", "-o", out).code == 0
    x = pq.read_table(out / "m.parquet").column("x").to_pylist()
    assert x[0] != x[0] and x[1:] == [float("inf"), float("-inf"), 0.5]


def test_parquet_decimals_wider_than_38_digits_are_exact(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """DuckDB reads them through float64: two different 50-digit values became one float."""
    from decimal import Decimal

    f = tmp_path / "w.parquet"
    pq.write_table(pa.table({
        "id": [1, 2, 3],
        "d": pa.array([Decimal("1" * 50), Decimal("-" + "1" * 49 + "2"), None], pa.decimal256(60, 0)),
        "f": pa.array([Decimal("0." + "1" * 39), Decimal("1.5"), Decimal(0)], pa.decimal256(40, 39)),
    }), f)  # fmt: skip
    store = new_store("s")
    assert cli("ingest", store, f, "--key-field", "id").code == 0
    assert [e["data"] for e in _events(query, store)] == [
        '{"d":' + "1" * 50 + ',"f":0.' + "1" * 39 + "}",
        '{"d":-' + "1" * 49 + '2,"f":1.5' + "0" * 38 + "}",
        '{"d":null,"f":0.' + "0" * 39 + "}",
    ]


def test_parquet_narrow_decimals_replay_as_jsonl_gives_them(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """A DECIMAL(12,8) column came in through float64 (0.00000001 as 1e-8) and was replayed as a
    double; it is now the decimal text JSON lines gives, replayed as the same decimal128."""
    f = tmp_path / "wallet.parquet"
    pq.write_table(pa.table({"id": [1, 2], "amount": pa.array([Decimal("0.00000001"), Decimal("1.50000000")],
                                                                pa.decimal128(12, 8))}), f)  # fmt: skip
    lines = tmp_path / "wallet.jsonl"
    lines.write_text('{"id":1,"amount":0.00000001}\n{"id":2,"amount":1.50000000}\n')
    types = []
    for name, path in (("p", f), ("j", lines)):
        store = new_store(name)
        assert cli("ingest", store, path, "--key-field", "id").code == 0
        assert [e["data"] for e in _events(query, store)] == ['{"amount":0.00000001}', '{"amount":1.50000000}']
        assert cli("replay", store, "--format", "parquet", "-o", tmp_path / f"out{name}").code == 0
        types.append(pq.read_table(tmp_path / f"out{name}" / "wallet.parquet").schema.field("amount").type)
    assert types == [pa.decimal128(9, 8)] * 2


def test_parquet_nested_floats_and_wide_decimals(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """A NaN in a list or struct is the string "NaN" there too; a wide decimal in a list or struct
    stays exact (DuckDB would read it through float64)."""
    f = tmp_path / "n.parquet"
    pq.write_table(pa.table({
        "id": [1, 2],
        "l": pa.array([[float("nan"), 1.5], [float("-inf")]], pa.list_(pa.float64())),
        "s": pa.array([{"x": float("inf"), "y": "a"}, None], pa.struct([("x", pa.float64()), ("y", pa.string())])),
        "w": pa.array([[Decimal("1" * 44 + ".50")], []], pa.list_(pa.decimal256(46, 2))),
    }), f)  # fmt: skip
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id")
    assert r.code == 0 and "0 quarantined" in r.err, r.err
    assert [e["data"] for e in _events(query, store)] == [
        '{"l":["NaN",1.5],"s":{"x":"Infinity","y":"a"},"w":[' + "1" * 44 + ".50]}",
        '{"l":["-Infinity"],"s":null,"w":[]}',
    ]


def test_parquet_values_duckdb_cannot_write_are_written_alike(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """A struct holding a float under an empty or case-twin member name, a map of floats, a
    struct holding a wide decimal: written as DuckDB writes the rest (blobs, instants, maps)."""
    f = tmp_path / "odd.parquet"
    at = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    blob_ts_map = [("b", pa.binary()), ("t", pa.timestamp("us", tz="UTC")), ("mm", pa.map_(pa.string(), pa.int64()))]
    pq.write_table(pa.table({
        "id": [1],
        "s": pa.array([{"": 1.5, "x": 2}], pa.struct([("", pa.float64()), ("x", pa.int64())])),
        "c": pa.array([{"A": 1.0, "a": float("nan")}], pa.struct([("A", pa.float64()), ("a", pa.float64())])),
        "m": pa.array([[("k", float("nan")), ("j", 1.5)]], pa.map_(pa.string(), pa.float64())),
        "w": pa.array([{"d": Decimal("1" * 40 + ".5"), "b": b"\xff\x01A", "t": at, "mm": [("k", 1)]}],
                      pa.struct([("d", pa.decimal256(41, 1)), *blob_ts_map])),
        "plain": pa.array([{"b": b"\xff\x01A", "t": at, "mm": [("k", 1)]}], pa.struct(blob_ts_map)),
    }), f)  # fmt: skip
    store = new_store("s")
    assert cli("ingest", store, f, "--key-field", "id").code == 0
    data = json.loads(_events(query, store)[0]["data"], parse_float=Decimal)
    assert data["s"] == {"": Decimal("1.5"), "x": 2} and data["c"] == {"A": Decimal("1.0"), "a": "NaN"}
    assert data["m"] == {"k": "NaN", "j": Decimal("1.5")} and data["w"]["d"] == Decimal("1" * 40 + ".5")
    assert {k: v for k, v in data["w"].items() if k != "d"} == data["plain"]


def test_parquet_column_names_are_only_member_names(
    cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    """Columns are read by position: one named `t`, one named as another but for case, an empty
    name, all keep their values; a name given twice is refused, as CSV refuses it."""
    f = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": [1, 2], "t": ["x", None], "name": ["lo", "lo2"], "Name": ["UP", "UP2"],
                             "": [True, False]}), f)  # fmt: skip
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "Name")
    assert r.code == 0 and "2 ingested" in r.err, r.err
    assert [(e["key"], e["data"]) for e in _events(query, store)] == [
        ("UP", '{"id":1,"t":"x","name":"lo","":true}'),
        ("UP2", '{"id":2,"t":null,"name":"lo2","":false}'),
    ]
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array(["x"]), pa.array(["y"])], names=["id", "a", "a"]), twice)
    r = cli("ingest", new_store("t"), twice, "--key-field", "id")
    assert r.code == 2 and r.errors() == [f"error: {twice}: the table names column 'a' twice"]


def test_parquet_event_schema_segment_reingest(
    write_lines: WriteLines, cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    a = new_store("a")
    _source_store(write_lines, cli, a, tmp_path)
    segment = next((a / "segments").glob("*.parquet"))
    copy = tmp_path / "export.parquet"
    copy.write_bytes(segment.read_bytes())
    b = new_store("b")
    r = cli("ingest", b, copy)
    assert r.code == 0, r.err
    cols = f'"offset", {EVENT_COLUMNS}, source'
    original = query(a, f'SELECT {cols} FROM events ORDER BY "offset"')
    again = query(b, f'SELECT {cols} FROM events ORDER BY "offset"')
    assert again == original  # taken as it is: entity, key, op, type, payloads, times and source
    assert cli("verify", b).code == 0


def test_parquet_event_schema_export_keeps_offsets_with_offset_field(
    write_lines: WriteLines, cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    a = new_store("a")
    _source_store(write_lines, cli, a, tmp_path)
    export = tmp_path / "export.parquet"
    table = logtool.sql(str(a), 'SELECT * FROM events WHERE "offset" > 0 ORDER BY "offset"')
    pq.write_table(table, export)
    b = new_store("b")
    r = cli("ingest", b, export, "--offset-field", "offset")
    assert r.code == 0, r.err
    rows = query(b, f'SELECT "offset", {EVENT_COLUMNS} FROM events ORDER BY "offset"')
    expected = query(a, f'SELECT "offset", {EVENT_COLUMNS} FROM events WHERE "offset" > 0 ORDER BY "offset"')
    assert rows == expected
    assert [e["offset"] for e in rows] == [1, 2]
    assert cli("verify", b).code == 0  # the gap below offset 1 is explained by the commit


def test_parquet_from_stdin_is_refused(cli: Cli, new_store: Callable[[str], Path], tmp_path: Path) -> None:
    f = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1]}), f)
    r = cli("ingest", new_store("s"), "-", "--key-field", "id", input=f.read_bytes())
    assert r.code == 2
    assert len(r.errors()) == 1 and "stdin" in r.errors()[0]
    assert "Traceback" not in r.err


# --------------------------------------------------------------------------- stdin


def test_stdin_jsonl(cli: Cli, new_store: Callable[[str], Path], query: Query) -> None:
    store = new_store("s")
    text = "\n".join(RECORDS) + "\n"
    r = cli("ingest", store, "-", "--key-field", "id", "--op-field", "op", "--entity", "shop", input=text)
    assert r.code == 0, r.err
    rows = _events(query, store)
    assert [(e["key"], e["op"], e["entity"], e["file"], e["line"]) for e in rows] == [
        ("1", "insert", "shop", "<stdin>", 1), ("2", "update", "shop", "<stdin>", 2),
        ("3", "delete", "shop", "<stdin>", 3),
    ]  # fmt: skip


def test_stdin_gzip_csv_detected(cli: Cli, new_store: Callable[[str], Path], query: Query) -> None:
    store = new_store("s")
    r = cli("ingest", store, "-", "--key-field", "id", input=gzip.compress(b"id,v\n1,a\n2,b\n"))
    assert r.code == 0, r.err
    rows = _events(query, store)
    assert [(e["key"], e["format"], e["data"]) for e in rows] == [("1", "csv", '{"v":"a"}'), ("2", "csv", '{"v":"b"}')]


def test_stdin_larger_than_the_sniffed_head(cli: Cli, new_store: Callable[[str], Path], query: Query) -> None:
    # the bytes taken for sniffing are replayed: nothing is lost at the seam
    lines = [json.dumps({"id": i, "pad": "x" * 50}) for i in range(3000)]
    store = new_store("s")
    r = cli("ingest", store, "-", "--key-field", "id", "--entity", "e", input="\n".join(lines) + "\n")
    assert r.code == 0, r.err
    rows = query(
        store, "SELECT count(*) AS n, count(DISTINCT key) AS k, min(key::INT) AS lo, max(key::INT) AS hi FROM events"
    )
    assert rows == [{"n": 3000, "k": 3000, "lo": 0, "hi": 2999}]


# --------------------------------------------------------------------------- detection


def test_formats_listed(cli: Cli) -> None:
    r = cli("formats", "--format", "jsonl")
    assert r.code == 0
    names = {json.loads(line)["format"] for line in r.lines()}
    assert {"jsonl", "csv", "parquet"} <= names


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"id":1}\n', "jsonl"),
        (b'\n\n  {"id":1}\n', "jsonl"),
        (b"id,name\n1,a\n", "csv"),
        (gzip.compress(b"id,name\n1,a\n"), "csv"),
        (zstandard.ZstdCompressor().compress(b'{"id":1}\n'), "jsonl"),
        # members of a CDC format's names that hold no string are no such record (and no crash)
        (b'{"action":[]}\n', "jsonl"),
        (b'{"op":["c"],"source":{}}\n', "jsonl"),
    ],
)
def test_detect_by_content_not_name(tmp_path: Path, content: bytes, expected: str) -> None:
    f = tmp_path / "misleading.parquet"  # the name says nothing: content decides
    f.write_bytes(content)
    assert detect(Source(str(f))).name == expected


def test_detect_parquet_by_magic(tmp_path: Path) -> None:
    f = tmp_path / "data.jsonl"
    pq.write_table(pa.table({"id": [1]}), f)
    assert detect(Source(str(f))).name == "parquet"


def test_detect_a_first_record_longer_than_the_head(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Debezium event holding one large value: cut off at 64 KiB, it said nothing, and the file
    was taken for plain JSON lines."""
    import io
    import types

    src = {"connector": "postgresql", "ts_ms": 1709631000000, "schema": "public", "table": "docs", "txId": 8, "lsn": 240}
    line = json.dumps({"before": None, "after": {"id": 1, "body": "x" * 200_000}, "source": src, "op": "c", "ts_ms": 1})
    f = tmp_path / "big.jsonl"
    f.write_text(line + "\n" + line + "\n")
    assert detect(Source(str(f))).name == "debezium"
    stdin = io.BytesIO((line + "\n").encode())
    monkeypatch.setattr("sys.stdin", types.SimpleNamespace(buffer=stdin))
    piped = Source("-")
    assert detect(piped).name == "debezium"
    with piped.open() as stream:
        assert stream.read() == (line + "\n").encode()  # nothing read for detection is lost


def test_format_option_overrides_detection(
    write_lines: WriteLines, cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    # one column, no comma: nothing recognizes it until --format says what it is
    f = write_lines(tmp_path / "ids.txt", ["id", "1", "2"])
    r = cli("ingest", new_store("s"), f, "--key-field", "id")
    assert r.code == 2
    assert "could not recognize the format" in r.err and "--format" in r.err
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id", "--format", "csv")
    assert r.code == 0, r.err
    assert [(e["key"], e["format"]) for e in _events(query, store)] == [("1", "csv"), ("2", "csv")]


def test_format_option_is_obeyed_against_content(
    write_lines: WriteLines, cli: Cli, new_store: Callable[[str], Path], query: Query, tmp_path: Path
) -> None:
    f = write_lines(tmp_path / "t.csv", ["id,name", "1,a"])  # CSV by content
    store = new_store("s")
    r = cli("ingest", store, f, "--key-field", "id", "--format", "jsonl")
    assert r.code == 2
    assert r.errors() == [f"error: {f}:1: broken JSON: expecting value at byte 0"]
    r = cli("ingest", store, f, "--format", "nosuch")
    assert r.code == 2 and "unknown format 'nosuch'" in r.err and "csv" in r.err


def test_every_format_module_is_discovered() -> None:
    formats = all_formats()
    for name in ("jsonl", "csv", "parquet"):
        assert formats[name].name == name
        assert formats[name].description


def test_library_reader_reports_and_goes_on(write_lines: WriteLines, tmp_path: Path) -> None:
    """The reader contract: bad records are reported, good ones still come out."""
    f = write_lines(tmp_path / "t.jsonl", ['{"id":1}', "{oops", '{"id":3}'])
    bad: list[Any] = []
    fmt = all_formats()["jsonl"]
    batches = list(fmt.read(Source(str(f)), Mapping(key_fields=("id",)), bad.append))
    keys = [k for b in batches for k in b.column("key").to_pylist()]
    assert keys == ["1", "3"]
    assert [(b.file, b.line, b.reason) for b in bad] == [(str(f), 2, "broken JSON: expecting property name enclosed in double quotes at byte 1")]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(['a', 'é', '"', "\\", "u", "0", "b", "\n", "\t", "\x01", "\x1f", "\x7f"]),
               max_size=12))  # fmt: skip
@example("a\x01\\u00ab")
def test_strings_are_written_as_duckdb_writes_them(text: str) -> None:
    """Escapes as DuckDB's to_json writes them, and the text read back unchanged (a control
    character beside a literal backslash-u sequence included)."""
    written = dumps_exact(text)
    assert written == duckdb.sql("SELECT to_json(?::VARCHAR)", params=[text]).fetchall()[0][0]
    assert loads_exact(written) == text


def test_json_lines_writer_writes_what_dumps_exact_writes_row_by_row() -> None:
    import io

    from logtool.formats.writers import rows, write_jsonl

    table = pa.table({
        "i": pa.array([1, None, -(2**63)], pa.int64()),
        "s": pa.array(["a\"b", None, "\x01\\u00ab é"]),
        "j": pa.array(['{"x":1.10}', None, "[1,2]"]),
        "b": pa.array([True, None, False]),
        "f": pa.array([1.5, float("nan"), None]),
        "t": pa.array([dt.datetime(2026, 3, 1, tzinfo=dt.UTC), None, None], pa.timestamp("us", tz="UTC")),
        "d": pa.array([Decimal("1.10"), None, Decimal("-0.000000000000000000001")], pa.decimal128(38, 21)),
        "l": pa.array([[1, 2], None, []], pa.list_(pa.int64())),
        "n\"ame": pa.array(["x", "y", "z"]),
    })  # fmt: skip
    out = io.StringIO()
    assert write_jsonl([table], out, json_columns=["j"]) == 3
    expected = "".join(dumps_exact(row) + "\n" for row in rows(table, ["j"]))
    assert out.getvalue() == expected
    assert json.loads(out.getvalue().splitlines()[0])["j"] == {"x": 1.1}
