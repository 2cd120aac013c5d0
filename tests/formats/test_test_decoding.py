"""test_decoding reader on the real sample in sample_logs/postgres/ and on small hand-written cases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from logtool.errors import InputError
from logtool.formats import get_format
from logtool.formats.base import BadRecord, Mapping, Source

SAMPLE = Path(__file__).resolve().parents[2] / "sample_logs" / "postgres" / "test_decoding.txt"
KEYS = Mapping(
    key_fields=(
        "public.customers:id", "public.measures:id", "public.lines:order_id", "public.lines:line",
        "public.scratch:id", "public.scratch2:id",
    )
)  # fmt: skip


def read(path: Path, mapping: Mapping = KEYS) -> tuple[list[dict[str, Any]], list[BadRecord]]:
    bad: list[BadRecord] = []
    batches = list(get_format("test_decoding").read(Source(str(path)), mapping, bad.append))
    return pa.Table.from_batches(batches).to_pylist() if batches else [], bad


def text_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "decoded.txt"
    path.write_text(text, encoding="utf-8")
    return path


def sample_lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").split("\n")


def line_of(needle: str, nth: int = 0) -> int:
    return [i for i, line in enumerate(sample_lines(), 1) if needle in line][nth]


def test_values_spanning_lines_keep_their_newlines_and_numbering() -> None:
    events, bad = read(SAMPLE)
    assert bad == []
    multi = next(e for e in events if e["key"] == "3" and e["entity"] == "public.customers")
    assert json.loads(multi["data"])["name"] == "Multi\nLine\n\nName"  # a blank line inside the value
    assert multi["source"]["line"] == line_of("id[integer]:3 name[text]:'Multi")
    after = next(e for e in events if e["entity"] == "public.measures")
    assert after["source"]["line"] == line_of("id[bigint]:1 big")
    message = next(e for e in events if e["op"] == "event")
    assert json.loads(message["data"]) == {"prefix": "app", "content": "hello 'world'\nnext"}


def test_values_are_typed_by_how_postgres_prints_them() -> None:
    events, _ = read(SAMPLE)
    rows = {e["key"]: e["data"] for e in events if e["entity"] == "public.measures" and e["op"] == "insert"}
    assert rows["1"] == (
        '{"id":1,"big":123456789012345678901234567890.123456789,"r":1.5,"d":0.1,'
        '"j":"{\\"a\\": [1, 2.50, {\\"b\\": null}], \\"big\\": 12345678901234567890123}",'
        '"tags":"{x,\\"y z\\",NULL}","at":"2026-03-05 12:34:56.789012+00","ok":true}'
    )
    assert json.loads(rows["2"]) == {
        "id": 2, "big": "NaN", "r": "NaN", "d": "Infinity", "j": "null", "tags": "{}", "at": None, "ok": False,
    }  # fmt: skip
    ann = next(e for e in events if e["key"] == "1" and e["entity"] == "public.customers")
    assert json.loads(ann["data"])["name"] == "Ann O'Brien"


def test_quoted_identifiers_are_unquoted(tmp_path: Path) -> None:
    path = text_file(
        tmp_path,
        "BEGIN 7\n"
        'table public."My Table": INSERT: "Col ""x"""[text]:\'a b\' id[integer]:1 "it\'s"[bit]:B\'101\'\n'
        'table "Odd.Schema"."t:1": DELETE: id[integer]:2\n'
        "COMMIT 7\n",
    )
    events, bad = read(path, Mapping(key_fields=("id",)))
    assert bad == []
    assert [(e["entity"], e["key"], e["data"]) for e in events] == [
        ("public.My Table", "1", '{"Col \\"x\\"":"a b","id":1,"it\'s":"101"}'),
        ('"Odd.Schema".t:1', "2", None),  # quoted where its dot would make another table's name
    ]
    assert events[0]["txn"] == {"id": "7", "position": None, "position_order": None, "ts": None, "aborted": None}


def test_damaged_records_are_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    events, _ = read(SAMPLE)
    lines = sample_lines()
    garbage = line_of("table public.lines: INSERT: order_id[integer]:1 line[smallint]:2")
    no_colon = line_of("table public.lines: INSERT: order_id[integer]:2")
    bad_size = line_of("message: transactional: 0")
    lines[garbage - 1] = "SAVEPOINT 'x'"
    lines[no_colon - 1] = "table public.lines INSERT: order_id[integer]:2 line[smallint]:1 qty[integer]:1"
    lines[bad_size - 1] = "message: transactional: 0 prefix: audit, sz: 3 content:ping"
    path = text_file(tmp_path, "\n".join(lines))
    got, bad = read(path)
    assert [(b.file, b.line) for b in bad] == [(str(path), garbage), (str(path), no_colon), (str(path), bad_size)]
    assert bad[0].reason == (
        "not a test_decoding record: expected BEGIN, COMMIT, PREPARE TRANSACTION, COMMIT PREPARED, ROLLBACK PREPARED, "
        "'table ...' or 'message: ...'"
    )
    assert bad[0].raw == b"SAVEPOINT 'x'"
    assert "expected ': INSERT|UPDATE|DELETE|TRUNCATE: '" in bad[1].reason
    assert bad[2].reason == "not a test_decoding record: the content is 4 bytes, sz says 3"
    assert len(got) == len(events) - 3


def test_input_ending_inside_a_quoted_value_is_reported(tmp_path: Path) -> None:
    lines = sample_lines()
    start = line_of("name[text]:'Multi")
    path = text_file(tmp_path, "\n".join(lines[:start]))  # cut inside the multi-line name
    got, bad = read(path)
    assert [(b.line, b.reason) for b in bad] == [
        (start, "the input ends inside a quoted value (cut short?)"),
        (start - 2, "transaction 726 (begun at line 1) is not committed: the input ends before its commit record "
                    "(was the capture cut short?)"),
        (start - 1, "transaction 726 (begun at line 1) is not committed: the input ends before its commit record "
                    "(was the capture cut short?)"),
    ]  # fmt: skip
    assert got == []


def test_keyed_table_without_key_fields_stops_with_a_hint(tmp_path: Path) -> None:
    from logtool import ingest

    with pytest.raises(InputError) as err:  # --on-error fail, the default
        ingest(tmp_path / "s", [str(SAMPLE)], format="test_decoding")
    assert err.value.line == line_of("table public.customers: UPDATE:")
    assert err.value.message.endswith(
        "public.customers has an update that names no old row: a key the test_decoding output does not name, "
        f"or no replica identity (line {err.value.line}): its changes from here on in this file are set aside, its "
        "rows before are in without a key"
    )
    assert "--key-field public.customers:COLUMN" in (err.value.hint or "")
    assert "REPLICA IDENTITY FULL" in (err.value.hint or "")  # a table with no key at all


def test_an_update_naming_no_old_row_is_one_bad_record_the_rest_is_kept(tmp_path: Path) -> None:
    """A table without a key under REPLICA IDENTITY DEFAULT: PostgreSQL writes its updates with no
    old row. With --on-error quarantine the other tables' changes are ingested."""
    from logtool import ingest, replay

    path = text_file(
        tmp_path,
        "BEGIN 740\ntable public.orders: INSERT: id[integer]:1 status[text]:'new'\nCOMMIT 740\n"
        "BEGIN 741\ntable public.audit_log: UPDATE: msg[text]:'b'\nCOMMIT 741\n",
    )
    result = ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("public.orders:id",)), on_error="quarantine")
    assert (result.ingested, result.quarantined) == (1, 1)
    (bad,) = result.files[0].errors
    assert bad.line == 5 and "public.audit_log has an update that names no old row" in bad.reason
    assert [(r["entity"], r["key"]) for r in replay(tmp_path / "s").state.to_pylist()] == [("public.orders", "1")]


# a table under REPLICA IDENTITY FULL whose rows hold NULLs, as PostgreSQL 15 wrote it: every
# update has an old-key, and it and a delete's old row leave out the old row's NULL columns
FULL_WITH_NULLS = """BEGIN 763
table public.tally: INSERT: who[text]:'x' n[integer]:1 note[text]:null
table public.tally: INSERT: who[text]:'y' n[integer]:null note[text]:null
table public.tally: INSERT: who[text]:'z' n[integer]:3 note[text]:'n'
table public.tally: INSERT: who[text]:'z' n[integer]:3 note[text]:null
COMMIT 763 (at 2026-11-27 21:36:39.755654+00)
BEGIN 767
table public.tally: UPDATE: old-key: who[text]:'y' new-tuple: who[text]:'y' n[integer]:2 note[text]:null
COMMIT 767 (at 2026-11-27 21:36:39.798886+00)
BEGIN 768
table public.tally: UPDATE: old-key: who[text]:'x' n[integer]:1 new-tuple: who[text]:'x' n[integer]:1 note[text]:'m'
COMMIT 768 (at 2026-11-27 21:36:39.799052+00)
BEGIN 769
table public.tally: DELETE: who[text]:'z' n[integer]:3
COMMIT 769 (at 2026-11-27 21:36:39.799136+00)
BEGIN 770
table public.tally: INSERT: who[text]:'w' n[integer]:9 note[text]:null
COMMIT 770 (at 2026-11-27 21:36:39.799297+00)
"""


def test_full_identity_old_images_leave_out_nulls_and_the_table_stays_keyless(tmp_path: Path) -> None:
    """An old image narrower than the row is no sign of a key under REPLICA IDENTITY FULL, where it
    leaves out the old row's NULLs: the table is read without a key and replays as PostgreSQL held it."""
    from logtool import ingest, replay

    path = text_file(tmp_path, FULL_WITH_NULLS)
    got, bad = read(path, Mapping())
    assert bad == [] and {e["key"] for e in got} == {None}
    assert [json.loads(e["before"]) for e in got if e["op"] != "insert"] == [
        {"who": "y"}, {"who": "x", "n": 1}, {"who": "z", "n": 3}
    ]  # fmt: skip
    assert ingest(tmp_path / "s", [str(path)]).warnings == []  # its old rows name different columns: no key
    result = replay(tmp_path / "s")
    states = [json.loads(r["state"]) for r in result.state.to_pylist()]
    assert [tuple(s.values()) for s in sorted(states, key=lambda s: s["who"])] == [
        ("w", 9, None), ("x", 1, "m"), ("y", 2, None), ("z", 3, "n")
    ]  # fmt: skip
    assert result.warnings == []


def test_an_old_key_narrower_than_the_row_is_read_as_a_full_old_row(tmp_path: Path) -> None:
    """A key change of a keyed table and an update of a REPLICA IDENTITY FULL row holding NULLs
    look alike in test_decoding's output: without --key-field the table is read without a key, and
    where every old row named the same columns the ingest says how to name them as its key."""
    from logtool import ingest

    path = text_file(
        tmp_path,
        "BEGIN 9\ntable public.t: UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 v[text]:'x'\nCOMMIT 9\n"
        "BEGIN 10\ntable public.t: DELETE: id[integer]:2\nCOMMIT 10\n",
    )
    got, bad = read(path, Mapping())
    assert bad == [] and [(e["key"], e["before"]) for e in got] == [(None, '{"id":1}'), (None, '{"id":2}')]
    assert ingest(tmp_path / "s", [str(path)]).warnings == [
        f"{path}: public.t is read without a key, though the old row of each of its updates and deletes names only "
        "id, as a key would (REPLICA IDENTITY FULL leaves out the old row's NULLs alike): if id is its key, ingest the "
        "file into a new store with --key-field public.t:id"
    ]
    got, bad = read(path, Mapping(key_fields=("public.t:id",)))
    assert bad == [] and [(e["key"], e["prev_key"]) for e in got] == [("2", "1"), ("2", None)]


def test_delete_without_its_old_row_is_reported(tmp_path: Path) -> None:
    for written in ("(no-tuple-data)", "(no-tuple data)"):
        path = text_file(tmp_path, f"BEGIN 9\ntable public.t: DELETE: {written}\nCOMMIT 9\n")
        got, bad = read(path, Mapping(key_fields=("id",)))
        assert got == [] and [(b.line, b.reason) for b in bad] == [
            (2, "DELETE on public.t without its old row (is its REPLICA IDENTITY NOTHING?)")
        ]


# PostgreSQL 15, a table under REPLICA IDENTITY NOTHING: no update names an old key, not even the
# one that moved row 3 to 10, and a delete names no old row
NO_IDENTITY = """BEGIN 747
table public.nothing_t: INSERT: id[integer]:1 v[text]:'one'
table public.nothing_t: INSERT: id[integer]:3 v[text]:'three'
COMMIT 747
BEGIN 748
table public.nothing_t: UPDATE: id[integer]:10 v[text]:'three'
COMMIT 748
BEGIN 749
table public.nothing_t: UPDATE: id[integer]:1 v[text]:'uno'
COMMIT 749
BEGIN 750
table public.nothing_t: DELETE: (no-tuple-data)
COMMIT 750
"""


def test_a_table_without_replica_identity_is_said_to_hide_its_key_changes(tmp_path: Path) -> None:
    """Under REPLICA IDENTITY NOTHING test_decoding names no old key even where an update changed
    the key, so such an update reads as a second row (3 stays beside 10): nothing in the update
    tells, but the table's delete without an old row does, and the ingest says what that means
    (it said only that the delete was set aside)."""
    from logtool import ingest, replay

    path = text_file(tmp_path, NO_IDENTITY)
    result = ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("id",)), on_error="skip")
    notes = [w for w in result.warnings if "no replica identity" in w]
    assert len(notes) == 1, result.warnings
    assert "public.nothing_t" in notes[0] and "delete at line 12" in notes[0] and "2 updates were read" in notes[0]
    assert "a key change among them is not followed" in notes[0]
    # what it warns of: the replay cannot know that 10 was 3
    assert sorted(r["key"] for r in replay(tmp_path / "s").state.to_pylist()) == ["1", "10", "3"]
    # a table whose deletes name their old rows has its key changes in its updates: no such note
    keyed = text_file(tmp_path, NO_IDENTITY.replace("(no-tuple-data)", "id[integer]:1"))
    assert not [w for w in ingest(tmp_path / "k", [str(keyed)], mapping=Mapping(key_fields=("id",))).warnings
                if "no replica identity" in w]  # fmt: skip


def test_without_xids_and_times_a_transaction_gets_a_name_of_its_own(tmp_path: Path) -> None:
    path = text_file(
        tmp_path,
        "BEGIN\ntable public.t: INSERT: id[integer]:1\nCOMMIT\nmessage: transactional: 0 prefix: p, sz: 0 content:\n",
    )
    got, bad = read(path, Mapping(key_fields=("id",)))
    assert bad == []
    assert [(e["op"], e["ts"]) for e in got] == [("insert", None), ("event", None)]
    txn = got[0]["txn"]
    assert txn["id"].startswith("unnamed-1-") and txn["id"].endswith("-1") and (txn["position"], txn["ts"]) == (None, None)
    assert read(path, Mapping(key_fields=("id",)))[0][0]["txn"]["id"] != txn["id"]  # each read names its own
    assert got[1]["txn"] is None  # a message outside a transaction
    assert json.loads(got[1]["data"]) == {"prefix": "p", "content": ""}


def test_sniffing() -> None:
    sniff = get_format("test_decoding").sniff
    assert sniff(SAMPLE.read_bytes()[:65536]) > 10
    assert sniff(b"table public.t: INSERT: id[integer]:1\n") > 10
    assert sniff(b"COMMIT 12 (at 2026-01-01 00:00:00+00)\n") > 10
    assert sniff(b"message: transactional: 0 prefix: p, sz: 1 content:x\n") > 10
    assert sniff(b"COMMIT PREPARED 'g1', txid 764 (at 2026-01-01 00:00:00+00)\nBEGIN 765\n") > 10
    assert sniff(b"BEGIN TRANSACTION;\nINSERT INTO t VALUES (1);\n") == 0
    assert sniff(b"PREPARE TRANSACTION g1;\n") == 0  # SQL, not the plugin's output


def test_once_a_table_shows_an_unnamed_key_every_later_change_of_it_is_set_aside(tmp_path: Path) -> None:
    path = text_file(
        tmp_path,
        "BEGIN 1\ntable public.k: INSERT: id[integer]:1 v[text]:'a'\nCOMMIT 1\n"
        "BEGIN 2\ntable public.k: UPDATE: id[integer]:1 v[text]:'b'\nCOMMIT 2\n"
        "BEGIN 3\ntable public.k: INSERT: id[integer]:2 v[text]:'c'\ntable public.o: INSERT: id[integer]:9\nCOMMIT 3\n",
    )
    got, bad = read(path, Mapping(key_fields=("public.o:id",)))
    assert [b.line for b in bad] == [5, 8] and all("set aside" in b.reason for b in bad)
    assert [(e["entity"], e["key"]) for e in got] == [("public.k", None), ("public.o", "9")]


def test_a_transaction_without_its_xid_is_still_one(tmp_path: Path) -> None:
    """test_decoding with include-xids=0 writes bare BEGIN and COMMIT: a replay between a
    transaction's changes leaves it out whole."""
    from logtool import ingest, replay

    path = text_file(
        tmp_path,
        "BEGIN\ntable public.acct: INSERT: id[integer]:1 bal[integer]:100\nCOMMIT\n"
        "BEGIN\ntable public.acct: UPDATE: id[integer]:1 bal[integer]:0\n"
        "table public.acct: INSERT: id[integer]:2 bal[integer]:100\nCOMMIT\n",
    )
    ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("public.acct:id",)))
    cut = replay(tmp_path / "s", at_offset=1)
    assert cut.warnings and "inside a transaction" in cut.warnings[0]
    assert [(r["key"], json.loads(r["state"])["bal"]) for r in cut.state.to_pylist()] == [("1", 100)]


def test_diff_tells_transaction_bounds_apart_without_xids(tmp_path: Path) -> None:
    """The same two inserts, committed together in one capture and apart in the other: the logs
    differ (a replay at offset 0 differs), though each read names its transactions its own way."""
    from logtool import diff, ingest

    together = "BEGIN\ntable public.t: INSERT: id[integer]:2\ntable public.t: INSERT: id[integer]:3\nCOMMIT (at 2026-03-01 10:00:01+00)\n"
    apart = ("BEGIN\ntable public.t: INSERT: id[integer]:2\nCOMMIT (at 2026-03-01 10:00:01+00)\n"
             "BEGIN\ntable public.t: INSERT: id[integer]:3\nCOMMIT (at 2026-03-01 10:00:01+00)\n")  # fmt: skip
    for name, text in (("a", together), ("b", apart), ("c", together)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "cap.txt").write_text(text)
        ingest(tmp_path / f"{name}.store", [str(tmp_path / name / "cap.txt")], mapping=Mapping(key_fields=("id",)))
    assert not diff(tmp_path / "a.store", tmp_path / "b.store").same
    assert diff(tmp_path / "a.store", tmp_path / "c.store").same


def test_diff_tells_transaction_bounds_apart_across_files(tmp_path: Path) -> None:
    """A capture split into two files is the same log as the capture in one file; two
    transactions in two files are not one transaction holding both events."""
    from logtool import diff, ingest

    commit = "COMMIT (at 2026-03-01 10:00:01+00)\n"
    one = f"BEGIN\ntable public.t: INSERT: id[integer]:2\n{commit}"
    two = f"BEGIN\ntable public.t: INSERT: id[integer]:3\n{commit}"
    both = f"BEGIN\ntable public.t: INSERT: id[integer]:2\ntable public.t: INSERT: id[integer]:3\n{commit}"
    layouts = {"split": {"cap.1.txt": one, "cap.2.txt": two}, "whole": {"cap.txt": one + two}, "joined": {"cap.txt": both}}
    for name, files in layouts.items():
        (tmp_path / name).mkdir()
        for file, text in files.items():
            (tmp_path / name / file).write_text(text)
        ingest(tmp_path / f"{name}.store", [str(tmp_path / name / f) for f in sorted(files)],
               mapping=Mapping(key_fields=("id",)))  # fmt: skip
    assert diff(tmp_path / "split.store", tmp_path / "whole.store").same
    assert not diff(tmp_path / "split.store", tmp_path / "joined.store").same


def test_a_transactions_size_counts_its_events_not_its_bad_records(tmp_path: Path) -> None:
    """Two transactions each holding a change set aside (a DELETE without its old row) against one
    holding both events: the logs differ, and the difference names the transaction."""
    from logtool import diff, ingest

    commit = "COMMIT (at 2026-03-01 10:00:01+00)\n"
    bad = "table public.t: DELETE: (no-tuple-data)\n"
    texts = {
        "a": f"BEGIN\ntable public.t: INSERT: id[integer]:1\n{bad}{commit}BEGIN\ntable public.t: INSERT: id[integer]:2\n{bad}{commit}",
        "b": f"BEGIN\ntable public.t: INSERT: id[integer]:1\ntable public.t: INSERT: id[integer]:2\n{commit}",
    }
    for name, text in texts.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "cap.txt").write_text(text)
        ingest(tmp_path / f"{name}.store", [str(tmp_path / name / "cap.txt")], mapping=Mapping(key_fields=("id",)),
               on_error="quarantine")  # fmt: skip
    result = diff(tmp_path / "a.store", tmp_path / "b.store")
    assert not result.same and result.changed == 2
    assert all([f["field"] for f in ex["fields"]] == ["txn"] for ex in result.examples if ex["change"] == "changed")
    assert {ex["left"]["txn"]["id"] for ex in result.examples if ex["change"] == "changed"} == {"unnamed-1"}


TWO_PHASE = """\
BEGIN 762
table public.k: INSERT: id[integer]:1 v[text]:'a'
table public.k: INSERT: id[integer]:2 v[text]:'b'
COMMIT 762 (at 2026-11-27 21:36:39.754838+00)
BEGIN 764
table public.k: INSERT: id[integer]:3 v[text]:'prepared-committed'
table public.k: UPDATE: id[integer]:1 v[text]:'a2'
PREPARE TRANSACTION 'g1', txid 764 (at 2026-11-27 21:36:39.772374+00)
BEGIN 765
table public.k: INSERT: id[integer]:4 v[text]:'prepared-rolledback'
table public.k: DELETE: id[integer]:2
PREPARE TRANSACTION 'g2', txid 765 (at 2026-11-27 21:36:39.772755+00)
BEGIN 766
table public.k: INSERT: id[integer]:5 v[text]:'plain'
COMMIT 766 (at 2026-11-27 21:36:39.777085+00)
COMMIT PREPARED 'g1', txid 764 (at 2026-11-27 21:36:39.783572+00)
ROLLBACK PREPARED 'g2', txid 765 (at 2026-11-27 21:36:39.789099+00)
"""


def test_a_prepared_transaction_commits_at_its_commit_prepared_and_a_rolled_back_one_is_aborted(
    tmp_path: Path,
) -> None:
    """Two-phase output (--enable-two-phase): a prepared transaction's changes become events at its
    COMMIT PREPARED, in commit order and with that record's time; a ROLLBACK PREPARED one's are
    kept, marked aborted, and replay leaves them out."""
    from logtool import ingest, replay

    path = text_file(tmp_path, TWO_PHASE)
    got, bad = read(path, Mapping(key_fields=("public.k:id",)))
    assert bad == []
    assert [(e["key"], e["op"], e["txn"]["id"], e["txn"]["aborted"], e["source"]["line"]) for e in got] == [
        ("1", "insert", "762", None, 2), ("2", "insert", "762", None, 3), ("5", "insert", "766", None, 14),
        ("3", "insert", "764", None, 6), ("1", "update", "764", None, 7),
        ("4", "insert", "765", True, 10), ("2", "delete", "765", True, 11),
    ]  # fmt: skip
    assert got[3]["txn"]["ts"] == got[3]["ts"] and str(got[3]["ts"]) == "2026-11-27 21:36:39.783572+00:00"
    assert str(got[5]["ts"]) == "2026-11-27 21:36:39.789099+00:00"  # the rollback's time
    ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("public.k:id",)))
    state = replay(tmp_path / "s").state.to_pylist()
    assert [(r["key"], json.loads(r["state"])["v"]) for r in state] == [
        ("1", "a2"), ("2", "b"), ("3", "prepared-committed"), ("5", "plain")
    ]


def test_two_phase_records_without_xids_or_times_and_with_quoted_gids(tmp_path: Path) -> None:
    """With include-xids=0 and no timestamps the gid alone pairs a PREPARE with its end; a gid is
    written as quote_literal writes it (quotes doubled, E'...' with backslashes doubled, newlines as
    they are)."""
    gids = {"g1": "'it''s'", "g2": "E'a\\\\b'", "g3": "'two\nlines'"}
    text = "".join(
        f"BEGIN\ntable public.k: INSERT: id[integer]:{i}\nPREPARE TRANSACTION {gid}\n" for i, gid in enumerate(gids.values())
    )
    text += f"COMMIT PREPARED {gids['g3']}\nROLLBACK PREPARED {gids['g2']}\nCOMMIT PREPARED {gids['g1']}\n"
    got, bad = read(text_file(tmp_path, text), Mapping(key_fields=("id",)))
    assert bad == []
    assert [(e["key"], e["txn"]["aborted"]) for e in got] == [("2", None), ("1", True), ("0", None)]
    assert all(e["txn"]["id"].startswith("unnamed-1-") for e in got) and len({e["txn"]["id"] for e in got}) == 3


def test_a_transaction_still_prepared_at_the_end_is_reported_as_cut_short(tmp_path: Path) -> None:
    """A PREPARE with no COMMIT PREPARED or ROLLBACK PREPARED in the input is an open transaction:
    its changes are reported, never half-ingested; the transactions around it are read; and a
    COMMIT PREPARED whose PREPARE is not in the input has nothing to commit."""
    text = TWO_PHASE.replace("COMMIT PREPARED 'g1', txid 764 (at 2026-11-27 21:36:39.783572+00)\n", "")
    text = "COMMIT PREPARED 'g0', txid 700 (at 2026-11-27 21:36:39.7+00)\n" + text
    got, bad = read(text_file(tmp_path, text), Mapping(key_fields=("public.k:id",)))
    assert [e["key"] for e in got] == ["1", "2", "5", "4", "2"]
    why = ("transaction 764 (begun at line 6) is not committed: prepared as 'g1' at line 9, "
           "its COMMIT PREPARED or ROLLBACK PREPARED is not in this file; where one capture holds the PREPARE and "
           "the next the COMMIT PREPARED, ingest them as one input, into a new store or instead of the two files "
           "(e.g. cat first.out next.out | logtool ingest NEW_STORE -)")  # fmt: skip
    assert [(b.line, b.reason) for b in bad] == [(7, why), (8, why)]


def test_a_binary_message_keeps_its_bytes_and_a_row_that_is_not_utf8_is_one_bad_record(tmp_path: Path) -> None:
    """pg_logical_emit_message(..., bytea) writes its bytes as they are, a newline among them too:
    the message keeps them as content_base64 and the records after it are read."""
    path = tmp_path / "bin.txt"
    path.write_bytes(
        b"BEGIN 9\ntable public.t: INSERT: id[integer]:1\n"
        b"message: transactional: 1 prefix: bin, sz: 3 content:\xff\n\xfe\n"
        b"table public.t: INSERT: id[integer]:2 v[text]:'\xff'\ntable public.t: INSERT: id[integer]:3\nCOMMIT 9\n"
    )
    got, bad = read(path, Mapping(key_fields=("id",)))
    assert [(e["key"], json.loads(e["data"])) for e in got] == [
        ("1", {"id": 1}), (None, {"prefix": "bin", "content_base64": "/wr+"}), ("3", {"id": 3})
    ]  # fmt: skip
    assert [(b.line, b.raw) for b in bad] == [(5, b"table public.t: INSERT: id[integer]:2 v[text]:'\xff'")]
    assert bad[0].reason.startswith("invalid UTF-8 at byte 47")


def test_an_update_leaving_a_toasted_value_out_is_a_patch(tmp_path: Path) -> None:
    """``unchanged-toast-datum``: the update sets what it sent and keeps the rest, as a patch does,
    so a row whose first change in the log is one is warned of by replay (its other values are unknown)."""
    from logtool import ingest, replay

    path = text_file(tmp_path, (
        "BEGIN 700\n"
        "table public.t: UPDATE: id[integer]:1 doc[text]:unchanged-toast-datum n[integer]:2\n"
        "table public.t: UPDATE: id[integer]:2 doc[text]:'d' n[integer]:3\n"
        "COMMIT 700\n"
    ))  # fmt: skip
    events, bad = read(path, Mapping(key_fields=("public.t:id",)))
    assert bad == [] and [(e["key"], e["op"], e["data"]) for e in events] == [
        ("1", "patch", '{"id":1,"n":2}'), ("2", "update", '{"id":2,"doc":"d","n":3}')]  # fmt: skip
    ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("public.t:id",)))
    warnings = replay(tmp_path / "s").warnings
    assert any(w.startswith("1 row was built from partial updates") and "public.t key 1" in w for w in warnings)


def test_a_commit_prepared_whose_prepare_came_before_the_file_is_noted(tmp_path: Path) -> None:
    """pg_recvlogical confirms a prepared transaction at its PREPARE: the next capture holds only
    its COMMIT PREPARED. Nothing of it is in the file, and the ingest says so instead of nothing."""
    from logtool import ingest

    path = text_file(tmp_path, "COMMIT PREPARED 'g', txid 753 (at 2026-01-01 00:00:00+00)\n"
                               "ROLLBACK PREPARED 'h', txid 754 (at 2026-01-01 00:00:01+00)\n")  # fmt: skip
    result = ingest(tmp_path / "s", [str(path)], mapping=KEYS)
    notes = [w for w in result.warnings if "PREPARED" in w]
    assert len(notes) == 1 and f"{path}:1: COMMIT PREPARED 'g' commits a transaction prepared before this file" in notes[0]


def test_a_full_row_all_null_is_read(tmp_path: Path) -> None:
    """REPLICA IDENTITY FULL leaves an old row's NULL columns out: a row all NULL has none left."""
    path = text_file(tmp_path, (
        "BEGIN 700\n"
        "table public.f: INSERT: a[integer]:null b[text]:null\n"
        "table public.f: UPDATE: old-key: new-tuple: a[integer]:1 b[text]:null\n"
        "table public.f: DELETE:\n"
        "COMMIT 700\n"
    ))  # fmt: skip
    got, bad = read(path, Mapping())
    assert bad == [] and [(e["op"], e["before"]) for e in got] == [("insert", None), ("update", "{}"), ("delete", "{}")]
    from logtool import ingest

    assert not [w for w in ingest(tmp_path / "s", [str(path)]).warnings if "without a key" in w]
