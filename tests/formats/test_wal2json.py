"""wal2json format-version 2 and 1 readers on the real samples in sample_logs/postgres/, whole and
damaged. What the samples hold is in sample_logs/postgres/README.md; the readers' behaviour on the
whole workload is checked in tests/pg/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from logtool.errors import InputError, UsageError
from logtool.formats import all_formats, detect, get_format
from logtool.formats.base import BadRecord, Mapping, Source, dumps_exact, loads_exact, parse_ts

SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs" / "postgres"
V2 = SAMPLES / "wal2json.jsonl"
V1 = SAMPLES / "wal2json_v1.json"
V1_PRETTY = SAMPLES / "wal2json_v1_pretty.json"
TEST_DECODING = SAMPLES / "test_decoding.txt"
KEYS = Mapping(
    key_fields=(
        "public.customers:id", "public.measures:id", "public.lines:order_id", "public.lines:line",
        "public.scratch:id", "public.scratch2:id",
    )
)  # fmt: skip


def read(fmt: str, path: Path, mapping: Mapping | None = None) -> tuple[list[dict[str, Any]], list[BadRecord]]:
    bad: list[BadRecord] = []
    batches = list(get_format(fmt).read(Source(str(path)), mapping or Mapping(), bad.append))
    return pa.Table.from_batches(batches).to_pylist() if batches else [], bad


def damaged(tmp_path: Path, sample: Path, edits: dict[int, str | None]) -> Path:
    """A copy of a sample with lines (1-based) replaced, or removed where the edit is None."""
    lines = sample.read_text(encoding="utf-8").split("\n")
    out = [edits.get(i, line) for i, line in enumerate(lines, 1)]
    path = tmp_path / sample.name
    path.write_text("\n".join(line for line in out if line is not None), encoding="utf-8")
    return path


def line_of(sample: Path, needle: str, nth: int = 0) -> int:
    return [i for i, line in enumerate(sample.read_text(encoding="utf-8").split("\n"), 1) if needle in line][nth]


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize(
    ("sample", "fmt"),
    [(V2, "wal2json"), (V1, "wal2json-v1"), (V1_PRETTY, "wal2json-v1"), (TEST_DECODING, "test_decoding")],
)
def test_sniffing_tells_the_postgres_outputs_apart(sample: Path, fmt: str) -> None:
    assert detect(Source(str(sample))).name == fmt
    head = sample.read_bytes()[:65536]
    scores = {f.name: f.sniff(head) for f in all_formats().values()}
    assert scores[fmt] > 10
    assert [name for name in ("wal2json", "wal2json-v1", "test_decoding") if scores[name] and name != fmt] == []


def test_sniffing_a_head_cut_inside_the_first_record() -> None:
    first = V2.read_bytes().split(b"\n")[0]
    assert get_format("wal2json").sniff(first[:40]) > 10
    pretty = V1_PRETTY.read_bytes()
    assert get_format("wal2json-v1").sniff(pretty[:120]) > 10


@pytest.mark.parametrize(
    "head",
    [
        b'{"id": 1, "op": "insert", "name": "x"}\n{"id": 2, "op": "delete"}\n',
        b'{"action": "login", "user": "ann"}\n',
        b'{"xid": 5, "payload": [1, 2]}\n',
        b"BEGINNING of a text file\n",
        b"table of contents: INSERT here\n",
    ],
)
def test_generic_json_lines_and_text_are_not_postgres(head: bytes) -> None:
    for name in ("wal2json", "wal2json-v1", "test_decoding"):
        assert get_format(name).sniff(head) == 0


def test_generic_json_lines_still_go_to_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "generic.jsonl"
    path.write_text('{"id": 1, "op": "insert", "name": "x"}\n')
    assert detect(Source(str(path))).name not in ("wal2json", "wal2json-v1", "test_decoding")


# --------------------------------------------------------------------------- format-version 2


def test_v2_damaged_lines_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    events, bad = read("wal2json", V2)
    truncated = line_of(V2, '"table":"lines"')  # first of three inserts into lines
    garbage = line_of(V2, '"action":"B"', 3)  # a BEGIN: its transaction still commits
    unknown = line_of(V2, '"action":"D"')  # the delete from tally
    path = damaged(
        tmp_path, V2, {truncated: '{"action":"I","xid":728,"sche', garbage: "garbage", unknown: '{"action":"X"}'}
    )
    got, bad = read("wal2json", path)
    assert [(b.file, b.line) for b in bad] == [(str(path), truncated), (str(path), garbage), (str(path), unknown)]
    assert "not a wal2json format-version 2 record" in bad[0].reason and bad[0].raw.startswith(b'{"action":"I"')
    assert "unknown action 'X'" in bad[2].reason
    assert len(got) == len(events) - 2
    lines = [e for e in got if e["entity"] == "public.lines" and e["op"] == "insert"]
    assert [e["key"] for e in lines] == ['{"order_id":1,"line":2}', '{"order_id":2,"line":1}']
    assert not any(e["entity"] == "public.tally" and e["op"] == "delete" for e in got)


def test_v2_transaction_cut_short_is_reported_not_half_ingested(tmp_path: Path) -> None:
    last_begin = line_of(V2, '"action":"B"', -1)
    lines = V2.read_text(encoding="utf-8").split("\n")
    path = damaged(tmp_path, V2, dict.fromkeys(range(last_begin + 3, len(lines) + 1)))  # keep B, I, U
    got, bad = read("wal2json", path)
    assert [b.line for b in bad] == [last_begin + 1, last_begin + 2]
    assert all("is not committed" in b.reason and "cut short" in b.reason for b in bad)
    assert not any(e["key"] == "20" for e in got) and any(e["key"] == "21" for e in got)


def test_v2_without_pk_takes_key_fields_and_stops_without_them(tmp_path: Path) -> None:
    rows = [loads_exact(line) for line in V2.read_text(encoding="utf-8").splitlines()]
    path = tmp_path / "nopk.jsonl"
    path.write_text("".join(dumps_exact({k: v for k, v in r.items() if k != "pk"}) + "\n" for r in rows))
    with_pk, _ = read("wal2json", V2)
    named, bad = read("wal2json", path, KEYS)
    assert bad == []
    assert [(e["key"], e["prev_key"]) for e in named] == [(e["key"], e["prev_key"]) for e in with_pk]
    first_update = line_of(V2, '"action":"U"')
    _, unnamed = read("wal2json", path)  # each change of the table from there on is a bad record
    assert unnamed[0].line == first_update and "public.customers has a key" in unnamed[0].reason
    assert "--key-field public.customers:id" in (unnamed[0].hint or "") and "include-pk" in (unnamed[0].hint or "")
    from logtool import ingest

    with pytest.raises(InputError) as err:  # --on-error fail (the default) stops there, with that hint
        ingest(tmp_path / "s", [str(path)])
    assert err.value.line == first_update and err.value.hint == unnamed[0].hint


def test_v2_refuses_mapping_options_it_does_not_take() -> None:
    with pytest.raises(UsageError, match="--ts-field"):
        read("wal2json", V2, Mapping(ts_field="timestamp"))


def test_v2_positions_and_times() -> None:
    events, _ = read("wal2json", V2)
    records = [json.loads(line) for line in V2.read_text(encoding="utf-8").splitlines()]
    commits = {r["xid"]: r for r in records if r["action"] == "C"}
    for e in events:
        if e["txn"] is None:
            continue
        commit = commits[int(e["txn"]["id"])]
        assert e["txn"]["position"] == commit["nextlsn"]
        stamp = e["ts"].strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(".")
        assert commit["timestamp"] == stamp + "+00"


def test_v2_transaction_commits_where_its_commit_record_ends(tmp_path: Path) -> None:
    """A position just after a commit (pg_current_wal_lsn(), the commit's nextlsn) is where the next
    record begins, which may be the next transaction's commit record: that transaction (774, whose
    change was written before 775 committed) is not in at it. Without nextlsn, C's lsn is taken."""
    from logtool import ingest, replay

    acct = '"schema":"public","table":"acct","pk":[{"name":"id","type":"integer"}]'

    def change(action: str, xid: int, lsn: str, key: int, bal: int) -> str:
        cols = f'[{{"name":"id","type":"integer","value":{key}}},{{"name":"bal","type":"integer","value":{bal}}}]'
        return f'{{"action":"{action}","xid":{xid},"lsn":"{lsn}",{acct},"columns":{cols}}}'

    lines = [  # as PostgreSQL 15's wal2json 2.5 wrote them (identity left out)
        '{"action":"B","xid":773,"lsn":"0/333C358","nextlsn":"0/333C388"}',
        change("I", 773, "0/333C1F8", 1, 100), change("I", 773, "0/333C2D8", 2, 200),
        '{"action":"C","xid":773,"lsn":"0/333C358","nextlsn":"0/333C388"}',
        '{"action":"B","xid":775,"lsn":"0/333C428","nextlsn":"0/333C458"}',
        change("U", 775, "0/333C3D8", 2, 250),
        '{"action":"C","xid":775,"lsn":"0/333C428","nextlsn":"0/333C458"}',
        '{"action":"B","xid":774,"lsn":"0/333C458","nextlsn":"0/333C488"}',
        change("U", 774, "0/333C388", 1, 0),
        '{"action":"C","xid":774,"lsn":"0/333C458","nextlsn":"0/333C488"}',
    ]  # fmt: skip
    path = tmp_path / "acct.jsonl"
    path.write_text("\n".join(lines) + "\n")
    ingest(tmp_path / "s", [str(path)])

    def bal(position: str) -> dict[str, int]:
        state = replay(tmp_path / "s", at_position=position).state.to_pylist()
        return {r["key"]: json.loads(r["state"])["bal"] for r in state}

    assert bal("0/333C458") == {"1": 100, "2": 250}
    assert bal("0/333C488") == {"1": 0, "2": 250}
    assert bal("0/333C430") == {"1": 100, "2": 200}  # inside 775's commit record: not yet committed
    path.write_text("\n".join(line.replace(',"nextlsn":"0/333C458"', "") for line in lines) + "\n")
    (got,) = {e["txn"]["position"] for e in read("wal2json", path)[0] if e["txn"]["id"] == "775"}
    assert got == "0/333C428"


def test_nan_and_infinity_are_lost_by_the_plugin() -> None:
    """wal2json 2.5 writes NaN, Infinity and -Infinity as null (numeric, real and double precision):
    a reader cannot tell them from NULL. test_decoding's text keeps them."""
    w2j, _ = read("wal2json", V2)
    text, _ = read("test_decoding", TEST_DECODING, KEYS)
    for events, want in ((w2j, [None, None, None, None]), (text, ["NaN", "NaN", "Infinity", "-Infinity"])):
        rows = {e["key"]: json.loads(e["data"]) for e in events if e["entity"] == "public.measures"}
        assert [rows["2"]["big"], rows["2"]["r"], rows["2"]["d"], rows["3"]["d"]] == want


# --------------------------------------------------------------------------- format-version 1


def test_v1_reads_the_stray_comma_wal2json_writes_before_a_message() -> None:
    line = line_of(V1, '{"change":[,')
    events, bad = read("wal2json-v1", V1, KEYS)
    assert bad == []
    (ping,) = [e for e in events if e["source"]["line"] == line]
    assert (ping["op"], json.loads(ping["data"]), ping["txn"]) == (
        "event",
        {"prefix": "audit", "content": "ping"},
        None,
    )


def test_v1_pretty_printed_reads_as_compact() -> None:
    compact, _ = read("wal2json-v1", V1, KEYS)
    pretty, bad = read("wal2json-v1", V1_PRETTY)  # include-pk: no key fields needed
    assert bad == []

    def strip(e: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in e.items() if k != "source"}

    assert [strip(e) for e in pretty] == [strip(e) for e in compact]
    assert len({e["source"]["line"] for e in pretty}) == len(pretty)  # each change has its own line


def _chunked(sample: Path) -> str:
    """The compact sample as wal2json's write-in-chunks=1 writes it: a transaction's members on one
    line, each change on its own line (the ones after the first behind a comma), then ``]}``."""
    from logtool.formats.base import dumps_exact
    from logtool.formats.wal2json_v1 import parse_transaction

    out = []
    for line in sample.read_text(encoding="utf-8").splitlines():
        header, changes = parse_transaction(line)
        out.append("{" + "".join(f"{dumps_exact(k)}:{dumps_exact(v)}," for k, v in header.items()) + '"change":[')
        out += [("," if i else "") + line[start:end] for i, (start, end, _) in enumerate(changes)]
        out.append("]}")
    return "\n".join(out) + "\n"


def test_v1_written_in_chunks_reads_as_compact(tmp_path: Path) -> None:
    """write-in-chunks=1 puts each change on a line of its own, in the first column: a transaction
    ends where its brackets balance, not at the next line that starts with a brace."""
    path = tmp_path / "chunks.json"
    path.write_text(_chunked(V1), encoding="utf-8")
    assert detect(Source(str(path))).name == "wal2json-v1"
    compact, _ = read("wal2json-v1", V1, KEYS)
    chunked, bad = read("wal2json-v1", path, KEYS)
    assert bad == []

    def strip(e: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in e.items() if k != "source"}

    assert [strip(e) for e in chunked] == [strip(e) for e in compact]
    lines = path.read_text(encoding="utf-8").split("\n")
    assert all(lines[e["source"]["line"] - 1].lstrip(",").startswith('{"kind"') for e in chunked)


def test_v1_chunked_transaction_cut_short_costs_only_itself(tmp_path: Path) -> None:
    """A capture restarted inside a chunked transaction (pg_recvlogical resends it whole): the
    part before the restart is reported from its first line, the resent transaction is read."""
    lines = _chunked(V1).split("\n")
    start = next(i for i, line in enumerate(lines) if '"table":"lines"' in line) - 1  # its header line
    end = lines.index("]}", start)
    cut = lines[: end - 1] + lines[start:]  # its last change and its "]}" never written, then resent
    path = tmp_path / "chunks.json"
    path.write_text("\n".join(cut), encoding="utf-8")
    compact, _ = read("wal2json-v1", V1, KEYS)
    got, bad = read("wal2json-v1", path, KEYS)
    assert [(b.line, b.reason) for b in bad] == [(start + 1, "JSON object does not close before the next one begins")]
    assert len(got) == len(compact)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (('"kind":"insert","schema":"public","table":"lines"', '"kind" "insert","schema":"public","table":"lines"'),
         "invalid JSON at line {line} column 96: Expecting ':' delimiter"),
        (('"columnvalues":[1,2,7]', '"columnvalues":[1,2,7'), "JSON object does not close before the next one begins"),
    ],
)  # fmt: skip
def test_v1_broken_transaction_costs_only_itself(tmp_path: Path, edit: tuple[str, str], reason: str) -> None:
    events, _ = read("wal2json-v1", V1, KEYS)
    broken = line_of(V1, '"table":"lines"')
    text = V1.read_text(encoding="utf-8").split("\n")[broken - 1].replace(*edit)
    path = damaged(tmp_path, V1, {broken: text})
    got, bad = read("wal2json-v1", path, KEYS)
    assert [(b.file, b.line, b.reason, b.raw) for b in bad] == [
        (str(path), broken, reason.format(line=broken), text.encode())
    ]
    assert len(got) == len(events) - 3  # the three inserts into lines


def test_v1_pretty_object_that_never_closes_costs_only_itself(tmp_path: Path) -> None:
    lines = V1_PRETTY.read_text(encoding="utf-8").split("\n")
    start = line_of(V1_PRETTY, '"xid": 728') - 1  # the "{" that opens the transaction with the lines
    end = next(i for i in range(start, len(lines) + 1) if lines[i - 1] == "}")
    path = damaged(tmp_path, V1_PRETTY, {end: None})
    events, _ = read("wal2json-v1", V1_PRETTY)
    got, bad = read("wal2json-v1", path)
    assert [(b.line, b.reason) for b in bad] == [(start, "JSON object does not close before the next one begins")]
    assert len(got) == len(events) - 3


def test_v1_input_ending_inside_an_object_is_reported(tmp_path: Path) -> None:
    lines = V1_PRETTY.read_text(encoding="utf-8").split("\n")
    last_open = max(i for i, line in enumerate(lines, 1) if line == "{")
    path = damaged(tmp_path, V1_PRETTY, dict.fromkeys(range(last_open + 10, len(lines) + 1)))
    got, bad = read("wal2json-v1", path)
    assert [(b.line, b.reason) for b in bad] == [(last_open, "the input ends inside a JSON object (cut short?)")]
    assert not any(e["key"] == "20" for e in got)


def test_v1_object_without_a_change_list_is_a_bad_record(tmp_path: Path) -> None:
    """A change standing alone (wal2json's write-in-chunks output) is not an empty transaction."""
    path = tmp_path / "stray.json"
    stray = '{"kind":"insert","schema":"public","table":"t","columnnames":["id"],"columntypes":["integer"],"columnvalues":[2]}'
    path.write_text(
        '{"xid":1,"nextlsn":"0/10","timestamp":"2024-01-01 00:00:00+00","change":[]}\n' + stray + "\n"
        '{"xid":2,"nextlsn":"0/20","timestamp":"2024-01-01 00:00:00+00"}\n'
    )
    _, bad = read("wal2json-v1", path, Mapping(key_fields=("public.t:id",)))
    assert [(b.line, b.reason) for b in bad] == [(n, "not a wal2json transaction: it has no 'change' list") for n in (2, 3)]


def test_v1_without_keys_stops_with_the_option_to_pass(tmp_path: Path) -> None:
    """A keyed table's oldkeys (its key, on every update) look like a REPLICA IDENTITY FULL old
    row holding NULLs (its columns but the NULL ones): with no old row as wide as the row seen
    first, nor a key named anywhere in the capture, the read stops and says what to pass."""
    from logtool import ingest

    with pytest.raises(InputError) as err:
        ingest(tmp_path / "s", [str(V1)], format="wal2json-v1")
    assert err.value.line == line_of(V1, '"kind":"update"')
    assert "--key-field public.customers:id" in (err.value.hint or "")
    assert "include-pk=1" in (err.value.hint or "")


# PostgreSQL 15's wal2json 2.5, format-version 1 with include-pk: tally (REPLICA IDENTITY FULL, no
# key) has no "pk" member, and its oldkeys are the old row's columns but the NULL ones
FULL_WITH_NULLS_V1 = [
    {"xid": 726, "nextlsn": "0/192FA68", "change": [
        {"kind": "insert", "schema": "public", "table": "tally", "columnnames": ["who", "n", "note"],
         "columntypes": ["text", "integer", "text"], "columnvalues": ["x", 1, None]},
        {"kind": "insert", "schema": "public", "table": "tally", "columnnames": ["who", "n", "note"],
         "columntypes": ["text", "integer", "text"], "columnvalues": ["y", None, None]},
        {"kind": "insert", "schema": "public", "table": "k", "columnnames": ["id", "v"],
         "columntypes": ["integer", "text"], "columnvalues": [1, "a"], "pk": {"pknames": ["id"], "pktypes": ["integer"]}},
    ]},
    {"xid": 727, "nextlsn": "0/192FAF0", "change": [
        {"kind": "update", "schema": "public", "table": "tally", "columnnames": ["who", "n", "note"],
         "columntypes": ["text", "integer", "text"], "columnvalues": ["y", 2, None],
         "oldkeys": {"keynames": ["who"], "keytypes": ["text"], "keyvalues": ["y"]}},
    ]},
    {"xid": 728, "nextlsn": "0/192FB80", "change": [
        {"kind": "update", "schema": "public", "table": "tally", "columnnames": ["who", "n", "note"],
         "columntypes": ["text", "integer", "text"], "columnvalues": ["x", 1, "m"],
         "oldkeys": {"keynames": ["who", "n"], "keytypes": ["text", "integer"], "keyvalues": ["x", 1]}},
    ]},
    {"xid": 730, "nextlsn": "0/192FC88", "change": [
        {"kind": "delete", "schema": "public", "table": "tally",
         "oldkeys": {"keynames": ["who", "n"], "keytypes": ["text", "integer"], "keyvalues": ["y", 2]}},
    ]},
]  # fmt: skip


def test_v1_full_identity_old_rows_leave_out_nulls_and_the_table_stays_keyless(tmp_path: Path) -> None:
    """format-version 1 leaves the NULL columns out of a REPLICA IDENTITY FULL old row, which then
    looks like a key (and include-pk names primary keys only, not a USING INDEX key). An old row as
    wide as the row first shows the table keyless: it replays as PostgreSQL held it, and nothing is
    noted. A narrower one first stops the read, saying both what it may be and what to do."""
    from logtool import ingest, replay

    # no key named anywhere, but an old row as wide as the row (z's, which holds no NULL) first
    cols = {"schema": "public", "table": "tally", "columnnames": ["who", "n", "note"], "columntypes": ["text", "integer", "text"]}
    old_z = {"oldkeys": {"keynames": ["who", "n", "note"], "keytypes": ["text", "integer", "text"], "keyvalues": ["z", 3, "n"]}}
    z_whole = [{"kind": "insert", **cols, "columnvalues": ["z", 3, "n"]},
               {"kind": "update", **cols, "columnvalues": ["z", 3, "n"], **old_z},
               {"kind": "delete", "schema": "public", "table": "tally", **old_z}]  # fmt: skip
    whole_first = [FULL_WITH_NULLS_V1[0], {"xid": 729, "change": z_whole}, *FULL_WITH_NULLS_V1[1:]]
    path = tmp_path / "whole-first.json"
    path.write_text("".join(json.dumps(t) + "\n" for t in whole_first))
    got, bad = read("wal2json-v1", path)
    assert bad == [] and {e["key"] for e in got if e["entity"] == "public.tally"} == {None}
    result = ingest(tmp_path / "s", [str(path)])
    assert not [w for w in result.warnings if "without a key" in w]
    tally = replay(tmp_path / "s", entity="public.tally").state.to_pylist()
    assert [json.loads(r["state"]) for r in tally] == [{"who": "x", "n": 1, "note": "m"}]

    path = tmp_path / "narrow-first.json"
    path.write_text("".join(json.dumps(t) + "\n" for t in FULL_WITH_NULLS_V1))
    with pytest.raises(InputError) as err:
        ingest(tmp_path / "s2", [str(path)])
    assert "public.tally names fewer columns in an old row than its rows hold" in str(err.value)
    assert err.value.hint == (  # (the capture names primary keys already: no hint to capture so)
        "if who is its key, pass --key-field public.tally:who (one per key column); "
        "if the table has no key, capture with format-version 2, whose old rows keep their NULLs"
    )

def test_v1_transaction_position_is_nextlsn() -> None:
    events, _ = read("wal2json-v1", V1, KEYS)
    nextlsn = {
        str(t["xid"]): t["nextlsn"] for t in (json.loads(x) for x in V1.read_text().splitlines()[:3])
    }  # first three transactions
    for e in events:
        if e["txn"] and e["txn"]["id"] in nextlsn:
            assert e["txn"]["position"] == nextlsn[e["txn"]["id"]] and e["source"]["position"] is None


def test_logical_messages_do_not_make_a_cdc_log_event_sourced(tmp_path: Path) -> None:
    """pg_logical_emit_message records are notices of the source, not domain events: replay
    gives no reducer warning and compaction is not refused."""
    from logtool import compact, ingest, replay

    store = tmp_path / "s"
    ingest(store, [str(V2)])
    assert any(e["op"] == "event" for e in read("wal2json", V2)[0])
    assert replay(str(store)).warnings == []
    result = compact(store, dry_run=True)
    assert result.removed.get("keyless", 0) >= 1  # the messages: keyless, as Kafka would refuse them


def test_names_with_dots_are_quoted_so_two_tables_never_share_an_entity(tmp_path: Path) -> None:
    """PostgreSQL allows dots in quoted identifiers: "a.b".c and a."b.c" are two tables."""
    path = tmp_path / "dotted.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [
        {"action": "B", "xid": 766},
        {"action": "I", "xid": 766, "schema": "a.b", "table": "c", "columns": [{"name": "id", "type": "integer", "value": 1}],
         "pk": [{"name": "id", "type": "integer"}]},
        {"action": "I", "xid": 766, "schema": "a", "table": "b.c", "columns": [{"name": "id", "type": "integer", "value": 1}],
         "pk": [{"name": "id", "type": "integer"}]},
        {"action": "I", "xid": 766, "schema": "public", "table": 'say "hi"', "columns": [{"name": "id", "type": "integer", "value": 1}],
         "pk": [{"name": "id", "type": "integer"}]},
        {"action": "C", "xid": 766},
    ]))  # fmt: skip
    events, bad = read("wal2json", path)
    assert bad == [] and [e["entity"] for e in events] == ['"a.b".c', 'a."b.c"', 'public."say ""hi"""']


ACCT_V1 = (
    '{"change":[{"kind":"insert","schema":"public","table":"acct","columnnames":["id","bal"],"columntypes":["integer","integer"],"columnvalues":[1,100]},'
    '{"kind":"insert","schema":"public","table":"acct","columnnames":["id","bal"],"columntypes":["integer","integer"],"columnvalues":[2,0]}]}\n'
    '{"change":[{"kind":"update","schema":"public","table":"acct","columnnames":["id","bal"],"columntypes":["integer","integer"],"columnvalues":[1,0],"oldkeys":{"keynames":["id"],"keytypes":["integer"],"keyvalues":[1]}},'
    '{"kind":"update","schema":"public","table":"acct","columnnames":["id","bal"],"columntypes":["integer","integer"],"columnvalues":[2,100],"oldkeys":{"keynames":["id"],"keytypes":["integer"],"keyvalues":[2]}}]}\n'
)  # fmt: skip


def _acct_v2(bracket: bool) -> str:
    def change(xid: int, action: str, key: int, bal: int) -> str:
        return json.dumps({"action": action, "xid": xid, "schema": "public", "table": "acct",
                           "columns": [{"name": "id", "type": "integer", "value": key},
                                       {"name": "bal", "type": "integer", "value": bal}],
                           "pk": [{"name": "id", "type": "integer"}]})  # fmt: skip

    txns = [[change(760, "I", 1, 100), change(760, "I", 2, 0)], [change(761, "U", 1, 0), change(761, "U", 2, 100)]]
    if bracket:  # begin and commit records without their xids (include-xids=0)
        txns = [['{"action":"B"}', *t, '{"action":"C"}'] for t in txns]
        txns = [[line.replace(', "xid": 760', "").replace(', "xid": 761', "") for line in t] for t in txns]
    return "".join(line + "\n" for t in txns for line in t)


@pytest.mark.parametrize(
    ("name", "text", "fmt"),
    [
        ("v1.json", ACCT_V1, "wal2json-v1"),  # wal2json's defaults: format-version 1, no xids
        ("bracketed.jsonl", _acct_v2(bracket=True), "wal2json"),  # B and C records without xids
        ("xids.jsonl", _acct_v2(bracket=False), "wal2json"),  # include-transaction=0: the xid on each change
    ],
)
def test_transactions_are_kept_where_the_capture_bounds_them_without_commit_details(
    tmp_path: Path, name: str, text: str, fmt: str
) -> None:
    """A transfer (1 -> 0, 0 -> 100) in one transaction: a replay between its two changes shows it
    not at all, never half of it."""
    from logtool import ingest, replay

    path = tmp_path / name
    path.write_text(text)
    ingest(tmp_path / "s", [str(path)], format=fmt, mapping=Mapping(key_fields=("public.acct:id",)))
    events, _ = read(fmt, path, Mapping(key_fields=("public.acct:id",)))
    assert all(e["txn"] and e["txn"]["id"] for e in events)
    assert len({e["txn"]["id"] for e in events}) == 2
    cut = replay(tmp_path / "s", at_offset=2)
    assert cut.warnings and "inside a transaction" in cut.warnings[0]
    assert {r["key"]: json.loads(r["state"])["bal"] for r in cut.state.to_pylist()} == {"1": 100, "2": 0}


def test_transactions_without_xids_in_two_captures_are_two_transactions(tmp_path: Path) -> None:
    """Two captures whose transactions are alike (a heartbeat, say), or the same file read twice:
    each read names its transactions apart, so no transaction spans two ingests; diff does not
    compare such made-up names, so the same capture in two stores is the same."""
    from logtool import diff, ingest, replay

    path = tmp_path / "changes.json"
    path.write_text(ACCT_V1.replace('{"change"', '{"timestamp":"2026-03-05 12:00:00+00","change"'))  # no xid
    ids = [{e["txn"]["id"] for e in read("wal2json-v1", path, Mapping(key_fields=("public.acct:id",)))[0]} for _ in range(2)]
    assert len(ids[0]) == len(ids[1]) == 2 and not ids[0] & ids[1]
    mapping = Mapping(key_fields=("public.acct:id",))
    for name in ("a", "b"):
        ingest(tmp_path / name, [str(path)], format="wal2json-v1", mapping=mapping)
    assert diff(tmp_path / "a", tmp_path / "b").same
    ingest(tmp_path / "a", [str(path)], format="wal2json-v1", mapping=mapping, allow_duplicates=True)
    assert replay(tmp_path / "a", at_offset=3).warnings == []  # the first read's transactions, whole


def test_changes_without_a_transaction_bracket_keep_their_own_time(tmp_path: Path) -> None:
    """include-transaction=0: each change carries its xid and its transaction's commit time."""
    path = tmp_path / "flat.jsonl"
    lines = _acct_v2(bracket=False).splitlines()
    stamps = ["2026-03-05 12:00:00.1+00", "2026-03-05 12:00:00.1+00", "2026-03-05 13:00:00+00", "2026-03-05 13:00:00+00"]
    path.write_text("".join(line[:-1] + f', "timestamp": "{t}"}}\n' for line, t in zip(lines, stamps, strict=True)))
    events, bad = read("wal2json", path, Mapping(key_fields=("public.acct:id",)))
    micros = [parse_ts(t) for t in stamps]
    assert bad == [] and [e["ts"].timestamp() * 1_000_000 for e in events] == micros
    assert [e["txn"]["ts"].timestamp() * 1_000_000 for e in events] == micros


# --------------------------------------------------------------------------- bytes that are not UTF-8

_INSERT_V2 = (
    b'{"action":"I","xid":778,"lsn":"0/3764440","schema":"public","table":"a","columns":[{"name":"id","type":"integer",'
    b'"value":1},{"name":"v","type":"text","value":"x"}],"pk":[{"name":"id","type":"integer"}]}\n'
)


def test_v2_binary_message_is_detected_read_and_kept_as_bytes(tmp_path: Path) -> None:
    """pg_logical_emit_message(..., bytea): wal2json writes the bytes as they are, not UTF-8. The
    capture is still wal2json, its rows are read, and the message keeps its bytes as
    content_base64; invalid UTF-8 in a row's value is that line's bad record, bytes kept."""
    path = tmp_path / "w2.jsonl"
    bad_row = _INSERT_V2.replace(b'"value":"x"', b'"value":"\xfe"').replace(b'"value":1}', b'"value":2}')
    path.write_bytes(
        b'{"action":"B","xid":778,"lsn":"0/3764748","nextlsn":"0/3764778"}\n' + _INSERT_V2
        + b'{"action":"M","xid":778,"lsn":"0/3764630","transactional":true,"prefix":"bin","content":"\xff\\"a\xc3\xa9"}\n'
        + bad_row + b'{"action":"C","xid":778,"lsn":"0/3764748","nextlsn":"0/3764778"}\n'
    )  # fmt: skip
    assert detect(Source(str(path))).name == "wal2json"
    got, bad = read("wal2json", path)
    assert [(e["entity"], e["key"], json.loads(e["data"])) for e in got] == [
        ("public.a", "1", {"id": 1, "v": "x"}),
        ("pg_logical_message", None, {"prefix": "bin", "content_base64": "/yJhw6k="}),  # \xff"aé
    ]
    assert [(b.line, b.reason, b.raw) for b in bad] == [
        (4, "not a wal2json format-version 2 record: invalid UTF-8 at byte 159 (a file in another encoding can be "
            "converted with iconv)", bad_row.rstrip(b"\n"))
    ]  # fmt: skip


def test_v1_binary_message_costs_no_row_of_its_transaction(tmp_path: Path) -> None:
    """A bytea message in a format-version 1 transaction: the rows around it are read and the
    message keeps its bytes; invalid UTF-8 in a row's value costs that change alone."""
    insert = (
        '{"kind":"insert","schema":"public","table":"%s","columnnames":["id","v"],"columntypes":["integer","text"],'
        '"columnvalues":[1,"%s"],"pk":{"pknames":["id"],"pktypes":["integer"]}}'
    )
    message = b'{"kind":"message","transactional":true,"prefix":"bin","content":"\xff"}'
    changes = [(insert % ("a", "x")).encode(), message, (insert % ("c", "\udcfe")).encode("utf-8", "surrogateescape"),
               (insert % ("b", "y")).encode()]  # fmt: skip
    path = tmp_path / "binv1.json"
    path.write_bytes(b'{"xid":778,"nextlsn":"0/3764778","change":[' + b",".join(changes) + b"]}\n")
    got, bad = read("wal2json-v1", path)
    assert [(e["entity"], json.loads(e["data"])) for e in got] == [
        ("public.a", {"id": 1, "v": "x"}),
        ("pg_logical_message", {"prefix": "bin", "content_base64": "/w=="}),
        ("public.b", {"id": 1, "v": "y"}),
    ]
    assert [(b.line, b.raw) for b in bad] == [(1, changes[2])]
    assert bad[0].reason.startswith("not a wal2json change: invalid UTF-8 at byte 124 of the change")


# PostgreSQL 15's wal2json 2.5 with include-pk: sku has no primary key ("pk":[]) but REPLICA
# IDENTITY USING INDEX on (code, region), whose columns are its updates' and deletes' identity
USING_INDEX_V2 = [
    {"action": "B", "xid": 732, "lsn": "0/192E560", "nextlsn": "0/192E590"},
    {"action": "I", "xid": 732, "lsn": "0/192E368", "schema": "public", "table": "sku", "pk": [], "columns": [
        {"name": "code", "type": "text", "value": "A"}, {"name": "region", "type": "text", "value": "eu"},
        {"name": "qty", "type": "integer", "value": 1}]},
    {"action": "I", "xid": 732, "lsn": "0/192E4D8", "schema": "public", "table": "sku", "pk": [], "columns": [
        {"name": "code", "type": "text", "value": "B"}, {"name": "region", "type": "text", "value": "eu"},
        {"name": "qty", "type": "integer", "value": 3}]},
    {"action": "C", "xid": 732, "lsn": "0/192E560", "nextlsn": "0/192E590"},
    {"action": "B", "xid": 736, "lsn": "0/192E9D0", "nextlsn": "0/192EA00"},
    {"action": "U", "xid": 736, "lsn": "0/192E898", "schema": "public", "table": "sku", "pk": [], "columns": [
        {"name": "code", "type": "text", "value": "A"}, {"name": "region", "type": "text", "value": "eu"},
        {"name": "qty", "type": "integer", "value": 10}],
     "identity": [{"name": "code", "type": "text", "value": "A"}, {"name": "region", "type": "text", "value": "eu"}]},
    {"action": "U", "xid": 736, "lsn": "0/192E8E8", "schema": "public", "table": "sku", "pk": [], "columns": [
        {"name": "code", "type": "text", "value": "B"}, {"name": "region", "type": "text", "value": "apac"},
        {"name": "qty", "type": "integer", "value": 3}],
     "identity": [{"name": "code", "type": "text", "value": "B"}, {"name": "region", "type": "text", "value": "eu"}]},
    {"action": "C", "xid": 736, "lsn": "0/192E9D0", "nextlsn": "0/192EA00"},
]  # fmt: skip


def test_a_replica_identity_index_is_the_key_where_include_pk_names_none(tmp_path: Path) -> None:
    """include-pk writes "pk":[] for a table without a primary key; its REPLICA IDENTITY USING
    INDEX columns are its key all the same: --key-field names them, and without it the narrower
    identity stops the read with that option (it was read keyless, --key-field ignored)."""
    from logtool import ingest, replay

    path = tmp_path / "sku.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in USING_INDEX_V2))
    with pytest.raises(InputError) as err:
        ingest(tmp_path / "s", [str(path)])
    assert err.value.hint == "pass --key-field public.sku:code --key-field public.sku:region (one per key column)"
    ingest(tmp_path / "k", [str(path)], mapping=Mapping(key_fields=("public.sku:code", "public.sku:region")))
    state = replay(tmp_path / "k").state.to_pylist()
    assert sorted((r["key"], json.loads(r["state"])["qty"]) for r in state) == [
        ('{"code":"A","region":"eu"}', 10), ('{"code":"B","region":"apac"}', 3)]  # fmt: skip


# PostgreSQL 15's wal2json 2.5 with include-pk: idx_t's primary key is id, but its REPLICA IDENTITY
# USING INDEX is the unique index on code, so its old rows (identity) hold code alone
OTHER_INDEX_V2 = [
    '{"action":"B","xid":730,"timestamp":"2026-11-28 02:09:10.327599+00","lsn":"0/1983D68","nextlsn":"0/1983D98"}',
    '{"action":"I","xid":730,"timestamp":"2026-11-28 02:09:10.327599+00","lsn":"0/1983A68","schema":"public","table":"idx_t","columns":[{"name":"id","type":"integer","value":1},{"name":"code","type":"text","value":"A"},{"name":"v","type":"text","value":"x"}],"pk":[{"name":"id","type":"integer"}]}',
    '{"action":"I","xid":730,"timestamp":"2026-11-28 02:09:10.327599+00","lsn":"0/1983BE8","schema":"public","table":"idx_t","columns":[{"name":"id","type":"integer","value":2},{"name":"code","type":"text","value":"B"},{"name":"v","type":"text","value":"y"}],"pk":[{"name":"id","type":"integer"}]}',
    '{"action":"C","xid":730,"timestamp":"2026-11-28 02:09:10.327599+00","lsn":"0/1983D68","nextlsn":"0/1983D98"}',
    '{"action":"B","xid":735,"timestamp":"2026-11-28 02:09:10.434777+00","lsn":"0/1984078","nextlsn":"0/19840A8"}',
    '{"action":"U","xid":735,"timestamp":"2026-11-28 02:09:10.434777+00","lsn":"0/1984028","schema":"public","table":"idx_t","columns":[{"name":"id","type":"integer","value":1},{"name":"code","type":"text","value":"A"},{"name":"v","type":"text","value":"x2"}],"identity":[{"name":"code","type":"text","value":"A"}],"pk":[{"name":"id","type":"integer"}]}',
    '{"action":"C","xid":735,"timestamp":"2026-11-28 02:09:10.434777+00","lsn":"0/1984078","nextlsn":"0/19840A8"}',
    '{"action":"B","xid":736,"timestamp":"2026-11-28 02:09:10.435278+00","lsn":"0/19840E8","nextlsn":"0/1984118"}',
    '{"action":"D","xid":736,"timestamp":"2026-11-28 02:09:10.435278+00","lsn":"0/19840A8","schema":"public","table":"idx_t","identity":[{"name":"code","type":"text","value":"B"}],"pk":[{"name":"id","type":"integer"}]}',
    '{"action":"C","xid":736,"timestamp":"2026-11-28 02:09:10.435278+00","lsn":"0/19840E8","nextlsn":"0/1984118"}',
]


def test_a_replica_identity_index_other_than_the_primary_key_is_keyed_by_key_field(tmp_path: Path) -> None:
    """include-pk names the primary key (id), but a delete's old row holds only the replica identity
    index (code): the read stops with a hint naming that index, and --key-field for the table keys
    it by the index (it was ignored: the primary key the capture names won, and the delete could
    not be read)."""
    from logtool import ingest, replay

    path = tmp_path / "idx.jsonl"
    path.write_text("\n".join(OTHER_INDEX_V2) + "\n")
    with pytest.raises(InputError) as err:
        ingest(tmp_path / "s", [str(path)])
    assert "REPLICA IDENTITY is another unique index" in str(err.value)
    assert err.value.hint is not None and "--key-field public.idx_t:code" in err.value.hint
    ingest(tmp_path / "k", [str(path)], mapping=Mapping(key_fields=("public.idx_t:code",)))
    state = replay(tmp_path / "k").state.to_pylist()
    assert sorted((r["key"], json.loads(r["state"])) for r in state) == [("A", {"id": 1, "code": "A", "v": "x2"})]
    # a --key-field for every table leaves the primary keys the capture names as they are
    ingest(tmp_path / "p", [str(path)], mapping=Mapping(key_fields=("nothing",)), on_error="skip")
    assert sorted(r["key"] for r in replay(tmp_path / "p").state.to_pylist()) == ["1", "2"]


# wal2json 2.5 (PostgreSQL 15) writes a bytea without the \x of its hex output: '\x00ff10' as
# "00ff10", the empty '\x' as "", in both versions; test_decoding writes '\x00ff10'
BYTEA_V2 = [
    '{"action":"B","xid":726,"timestamp":"2026-11-28 02:09:10.21+00","lsn":"0/197A2B0","nextlsn":"0/197A2E0"}',
    '{"action":"I","xid":726,"timestamp":"2026-11-28 02:09:10.21+00","lsn":"0/1979D40","schema":"public",'
    '"table":"blobs","columns":[{"name":"id","type":"integer","value":1},{"name":"b","type":"bytea","value":"00ff10"}],'
    '"pk":[{"name":"id","type":"integer"}]}',
    '{"action":"I","xid":726,"timestamp":"2026-11-28 02:09:10.21+00","lsn":"0/1979E40","schema":"public",'
    '"table":"blobs","columns":[{"name":"id","type":"integer","value":2},{"name":"b","type":"bytea","value":""}],'
    '"pk":[{"name":"id","type":"integer"}]}',
    '{"action":"I","xid":726,"timestamp":"2026-11-28 02:09:10.21+00","lsn":"0/1979F40","schema":"public",'
    '"table":"blobs","columns":[{"name":"id","type":"integer","value":3},{"name":"b","type":"bytea","value":null}],'
    '"pk":[{"name":"id","type":"integer"}]}',
    '{"action":"C","xid":726,"timestamp":"2026-11-28 02:09:10.21+00","lsn":"0/197A2B0","nextlsn":"0/197A2E0"}',
]
BYTEA_V1 = (
    '{"xid":726,"nextlsn":"0/197A2E0","timestamp":"2026-11-28 02:09:10.21+00","change":['
    '{"kind":"insert","schema":"public","table":"blobs","columnnames":["id","b"],"columntypes":["integer","bytea"],'
    '"columnvalues":[1,"00ff10"]},'
    '{"kind":"insert","schema":"public","table":"blobs","columnnames":["id","b"],"columntypes":["integer","bytea"],'
    '"columnvalues":[2,""]},'
    '{"kind":"insert","schema":"public","table":"blobs","columnnames":["id","b"],"columntypes":["integer","bytea"],'
    '"columnvalues":[3,null]},'
    '{"kind":"delete","schema":"public","table":"blobs","oldkeys":{"keynames":["b"],"keytypes":["bytea"],'
    '"keyvalues":["00ff10"]}}]}'
)
BYTEA_TEST_DECODING = """BEGIN 726
table public.blobs: INSERT: id[integer]:1 b[bytea]:'\\x00ff10'
table public.blobs: INSERT: id[integer]:2 b[bytea]:'\\x'
table public.blobs: INSERT: id[integer]:3 b[bytea]:null
COMMIT 726
"""


def test_bytea_reads_as_postgresql_writes_it_in_every_plugin(tmp_path: Path) -> None:
    """wal2json drops the \\x of a bytea's hex text; it is put back (by the type the plugin names),
    so the replayed value is the database's text, as test_decoding and COPY give it, and a bytea key
    is the same value in a delete's old row (it was "00ff10", never equal to a dump's '\\x00ff10')."""
    from logtool import ingest, replay

    want = [(1, "\\x00ff10"), (2, "\\x"), (3, None)]
    cases = [
        ("wal2json", "\n".join(BYTEA_V2) + "\n", Mapping()),
        ("wal2json-v1", BYTEA_V1[: BYTEA_V1.index(',{"kind":"delete"')] + "]}\n", Mapping(key_fields=("public.blobs:id",))),
        ("test_decoding", BYTEA_TEST_DECODING, Mapping(key_fields=("public.blobs:id",))),
    ]
    for fmt, text, mapping in cases:
        path = tmp_path / f"{fmt}.out"
        path.write_text(text)
        ingest(tmp_path / fmt, [str(path)], format=fmt, mapping=mapping)
        table = replay(tmp_path / fmt).tables()["public.blobs"]
        assert sorted(zip(table.column("id").to_pylist(), table.column("b").to_pylist(), strict=True)) == want, fmt
    # keyed by the bytea itself: the delete's old key is the insert's key
    path = tmp_path / "keyed.json"
    path.write_text(BYTEA_V1 + "\n")
    ingest(tmp_path / "keyed", [str(path)], format="wal2json-v1", mapping=Mapping(key_fields=("public.blobs:b",)))
    state = replay(tmp_path / "keyed").state.to_pylist()
    assert sorted(json.loads(r["state"])["id"] for r in state) == [2, 3]
