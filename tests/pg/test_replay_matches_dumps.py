"""End to end: ingest each plugin's capture, replay it to every checkpoint, and compare the tables
with what PostgreSQL itself held then (``harness.Checkpoint``: the WAL position just after a commit,
and every table dumped as text).

Values are compared by their PostgreSQL type: integers and numerics as exact decimals (never through
a float), real and double precision as the double their text denotes, booleans, timestamptz as an
instant, everything else (text, jsonb, arrays) as the exact text. Tables without a key are compared
as multisets.

What a plugin loses, so the replay cannot have it, and the test expects instead:

- wal2json (both versions) writes NaN, Infinity and -Infinity as null: those cells replay as NULL.
- wal2json format-version 1 writes no TRUNCATE: truncated tables replay with the rows they had.
- test_decoding writes no LSN, so its log cannot be replayed to a position: each checkpoint is
  checked on a store fed the capture up to that checkpoint's last COMMIT, replayed to its head.

A numeric column that also holds NaN is typed as exact JSON text (float64 would round it); its
values are read back from that text.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import logtool
from logtool.formats.base import Mapping, parse_ts

from . import harness


class NumericReadAsFloat(AssertionError):
    """A numeric column replayed as float64, which cannot hold an exact decimal."""


KEYED = Mapping(key_fields=harness.KEY_FIELDS)
CASES = [
    pytest.param("wal2json", "wal2json", Mapping(), id="wal2json"),
    pytest.param("wal2json-v1", "wal2json_v1", KEYED, id="wal2json_v1"),
    pytest.param("wal2json-v1", "wal2json_v1_pretty", Mapping(), id="wal2json_v1_pretty"),
    pytest.param("test_decoding", "test_decoding", KEYED, id="test_decoding"),
]
SPECIAL = ("NaN", "Infinity", "-Infinity")
#: lost by wal2json-v1 (no TRUNCATE): these tables keep the rows of this checkpoint
LOST_TRUNCATE = {"tables": ("public.scratch", "public.scratch2"), "kept_from": "updated"}


@pytest.fixture(params=["sample", pytest.param("live", marks=pytest.mark.postgres)])
def capture(request: pytest.FixtureRequest) -> harness.PgCapture:
    if request.param == "live":
        cap: harness.PgCapture = request.getfixturevalue("pg_capture")
        return cap
    files = {attr: harness.SAMPLES / name for name, attr in harness.SAMPLE_FILES.items()}
    checkpoints = harness.load_checkpoints(harness.SAMPLES / "checkpoints.json")
    return harness.PgCapture(checkpoints=checkpoints, final_lsn=checkpoints[-1].lsn, **files)


def canon(pgtype: str, value: Any) -> Any:
    """A value, from a dump (text) or a replayed table (typed), in a form both compare equal in."""
    if value is None:
        return None
    if pgtype in ("smallint", "integer", "bigint") or pgtype.startswith("numeric"):
        number = Decimal(repr(value) if isinstance(value, float) else str(value))
        if not number.is_finite():
            return str(number)
        text = format(number, "f")  # exact: no context rounding (normalize() would round to 28 digits)
        text = text.rstrip("0").rstrip(".") if "." in text else text
        return "0" if text in ("-0", "") else text
    if pgtype in ("real", "double precision"):
        return repr(float(str(value)))
    if pgtype == "boolean":
        return value if isinstance(value, bool) else {"true": True, "false": False}[value]
    if pgtype == "timestamp with time zone":
        if isinstance(value, dt.datetime):
            return parse_ts(value.isoformat())
        return parse_ts(value)
    return str(value)


def expected_table(fmt: str, cp: harness.Checkpoint, checkpoints: list[harness.Checkpoint], entity: str) -> Any:
    dump = cp.tables[entity]
    if fmt == "wal2json-v1" and entity in LOST_TRUNCATE["tables"]:
        names = [c.name for c in checkpoints]
        if names.index(cp.name) > names.index(str(LOST_TRUNCATE["kept_from"])):
            dump = next(c for c in checkpoints if c.name == LOST_TRUNCATE["kept_from"]).tables[entity]
    rows = []
    for row in dump.rows:
        cells = []
        for pgtype, text in zip(dump.types, row, strict=True):
            lost = fmt != "test_decoding" and text in SPECIAL and pgtype in ("real", "double precision")
            lost = lost or (fmt != "test_decoding" and text in SPECIAL and pgtype.startswith("numeric"))
            cells.append(None if lost else canon(pgtype, text))
        rows.append(tuple(cells))
    return sorted(rows, key=repr)


def replayed_table(tables: dict[str, Any], entity: str, dump: harness.TableDump) -> Any:
    if entity not in tables:
        return []
    table = tables[entity]
    for name, pgtype in zip(dump.columns, dump.types, strict=True):
        if (
            pgtype.startswith("numeric")
            and name in table.column_names
            and table.schema.field(name).type == pa.float64()
        ):
            raise NumericReadAsFloat(f"{entity}.{name} (numeric) replayed as float64")
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    for field in table.schema:
        # a column of mixed types (numbers beside "NaN") is exact JSON text: read its values back
        if (field.metadata or {}).get(b"logtool.json") == b"1":
            columns[field.name] = [
                None if v is None else json.loads(v, parse_float=Decimal) for v in columns[field.name]
            ]
    rows = []
    for i in range(table.num_rows):
        rows.append(
            tuple(
                canon(pgtype, columns[name][i] if name in columns else None)
                for name, pgtype in zip(dump.columns, dump.types, strict=True)
            )
        )
    return sorted(rows, key=repr)


def tables_of(result: Any) -> dict[str, Any]:
    return result.tables() if callable(result.tables) else result.tables


def cut_after_commit(path: Path, xid: str, out: Path) -> Path:
    """The capture up to and including ``COMMIT xid``."""
    lines = path.read_text(encoding="utf-8").split("\n")
    end = next(i for i, line in enumerate(lines) if line == f"COMMIT {xid}" or line.startswith(f"COMMIT {xid} "))
    out.write_text("\n".join(lines[: end + 1]) + "\n", encoding="utf-8")
    return out


@pytest.mark.parametrize(("fmt", "attr", "mapping"), CASES)
def test_replay_at_each_checkpoint_equals_the_dump(
    capture: harness.PgCapture, fmt: str, attr: str, mapping: Mapping, tmp_path: Path
) -> None:
    path = getattr(capture, attr)
    replays = []
    if fmt == "test_decoding":
        for cp in capture.checkpoints:
            store = tmp_path / f"store-{cp.name}"
            prefix = cut_after_commit(path, cp.last_xid, tmp_path / f"{cp.name}.txt")
            logtool.ingest(store, [str(prefix)], format=fmt, mapping=mapping)
            replays.append((cp, tables_of(logtool.replay(store))))
    else:
        store = tmp_path / "store"
        logtool.ingest(store, [str(path)], format=fmt, mapping=mapping)
        for cp in capture.checkpoints:
            replays.append((cp, tables_of(logtool.replay(store, at_position=cp.lsn))))
    for cp, tables in replays:
        for entity, dump in cp.tables.items():
            want = expected_table(fmt, cp, capture.checkpoints, entity)
            got = replayed_table(tables, entity, dump)
            assert got == want, f"{entity} at checkpoint {cp.name!r} ({cp.lsn})"


def test_the_losses_are_real(capture: harness.PgCapture) -> None:
    """The values the test excuses exist in the dumps: the plugins really meet them."""
    measures = capture.checkpoints[0].tables["public.measures"]
    assert {v for row in measures.rows for v in row} >= set(SPECIAL)
    truncated = next(c for c in capture.checkpoints if c.name == "truncated")
    kept = next(c for c in capture.checkpoints if c.name == LOST_TRUNCATE["kept_from"])
    for entity in LOST_TRUNCATE["tables"]:
        assert truncated.tables[entity].rows == [] and kept.tables[entity].rows != []


def write_copy_csv(dump: harness.TableDump, path: Path) -> Path:
    """A table dump as ``COPY ... TO ... (FORMAT csv, HEADER)`` writes it: NULL an empty unquoted
    field, the empty string (and any value holding a comma, a quote or a line break) quoted."""

    def field(value: str | None) -> str:
        if value is None:
            return ""
        if value == "" or any(c in value for c in ',"\n\r'):
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [",".join(field(c) for c in dump.columns)] + [",".join(field(v) for v in row) for row in dump.rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("fmt", "attr", "mapping"), CASES)
def test_diff_of_each_replayed_table_against_its_dump_finds_only_the_losses(
    capture: harness.PgCapture, fmt: str, attr: str, mapping: Mapping, tmp_path: Path
) -> None:
    """`logtool diff STORE dump.csv` of every table at every checkpoint, against the dump as
    PostgreSQL's COPY CSV writes it: the same, but for the values the plugin loses (wal2json's
    NaN and infinities, which it writes as null), which diff finds exactly."""
    path = getattr(capture, attr)
    names = [c.name for c in capture.checkpoints]
    for cp in capture.checkpoints:
        if fmt == "test_decoding":  # no LSN: a store of the capture up to the checkpoint, at its head
            store = tmp_path / f"store-{cp.name}"
            logtool.ingest(store, [str(cut_after_commit(path, cp.last_xid, tmp_path / f"{cp.name}.txt"))],
                           format=fmt, mapping=mapping)  # fmt: skip
            at: dict[str, Any] = {}
        else:
            store = tmp_path / "store"
            if not store.exists():
                logtool.ingest(store, [str(path)], format=fmt, mapping=mapping)
            at = {"at_position": cp.lsn}
        for entity, dump in cp.tables.items():
            if fmt == "wal2json-v1" and entity in LOST_TRUNCATE["tables"] and names.index(cp.name) > names.index(
                str(LOST_TRUNCATE["kept_from"])
            ):  # (v1 writes no TRUNCATE: the table keeps the rows it had then)
                dump = next(c for c in capture.checkpoints if c.name == LOST_TRUNCATE["kept_from"]).tables[entity]
            csv = write_copy_csv(dump, tmp_path / f"{cp.name}-{entity}.csv")
            keys = [k.strip('"') for k in harness.KEYS.get(entity.split(".", 1)[1], [])]
            result = logtool.diff(store, csv, entity=entity, key_columns=keys, **at)
            where = f"{entity} at checkpoint {cp.name!r} ({fmt})"
            lost = [
                (f["field"], f["right"]) for d in result.examples for f in d.get("fields", [])
            ] if not result.same else []  # fmt: skip
            if fmt != "test_decoding" and entity == "public.measures":
                assert (result.only_left, result.only_right) == (0, 0), where
                assert lost and all(right in SPECIAL for _field, right in lost), (where, result.examples)
                assert all(f["left"] is None for d in result.examples for f in d["fields"]), where
            else:
                assert result.same, (where, result.examples)
