"""`diff`: logs (first divergent offset; missing, extra and changed events), states and table dumps
(keys only on one side, changed fields), exact value rules, and the CLI's outputs and exit codes."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logtool
from logtool.formats.base import Mapping, RawNumber, dumps_exact

# The `cli` fixture (tests/conftest.py): runs `logtool ARGS...`, returns code, out, err.
Cli = Any


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


diff = logtool.diff
D = sys.modules["logtool.diff"]  # the module, for its value helpers

SAMPLES = Path(__file__).resolve().parent.parent / "sample_logs"
MAPPING = Mapping(key_fields=("id",), entity_field="table", op_field="op", ts_field="ts", data_field="data")
JSON = {"logtool.json": "1"}


def table(columns: dict[str, tuple[pa.DataType, list[Any]]], json_columns: tuple[str, ...] = ()) -> pa.Table:
    """A small Arrow table; JSON columns carry the metadata replay gives them."""
    fields = [pa.field(n, t, metadata=JSON if n in json_columns else None) for n, (t, _) in columns.items()]
    return pa.Table.from_arrays([pa.array(v, t) for t, v in columns.values()], schema=pa.schema(fields))


def as_json(value: Any) -> Any:
    """A result's value as JSON reads it back (JSON payloads are inlined as RawJSON text)."""
    from logtool.formats.writers import plain

    return json.loads(dumps_exact(plain(value)))


def counts(result: Any) -> tuple[bool, int, int, int]:
    return result.same, result.only_left, result.only_right, result.changed


# --------------------------------------------------------------------------- value rules


def test_null_empty_and_the_text_null_are_three_values(tmp_path: Path) -> None:
    ids = pa.int64(), [1, 2, 3]
    left = table({"id": ids, "v": (pa.string(), [None, "", "<null>"])})
    right = table({"id": ids, "v": (pa.string(), ["", "<null>", None])})
    result = diff(left, right, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 3)
    assert [e["fields"] for e in result.examples] == [
        [{"field": "v", "left": None, "right": ""}],
        [{"field": "v", "left": "", "right": "<null>"}],
        [{"field": "v", "left": "<null>", "right": None}],
    ]
    # PostgreSQL's CSV: an unquoted empty field is NULL, a quoted "" the empty string
    csv = write_lines(tmp_path / "v.csv", ["id,v", "1,", '2,""', "3,<null>"])
    assert diff(csv, left, key_columns=["id"]).same
    permuted = write_lines(tmp_path / "w.csv", ["id,v", '1,""', "2,<null>", "3,"])
    assert counts(diff(csv, permuted, key_columns=["id"])) == (False, 0, 0, 3)


def test_bytes_meet_a_csv_field_as_postgresql_writes_bytea(tmp_path: Path) -> None:
    """COPY ... CSV writes a bytea as `\\x` and lowercase hex: a Parquet binary column of the same
    table equals it, keyed, as a key and as a multiset; other bytes, or another text, differ."""
    blobs = table({"id": (pa.int64(), [1, 2, 3, 4]), "b": (pa.binary(), [b"\xde\xad\xbe\xef", b"", None, b"A"])})
    csv = write_lines(tmp_path / "b.csv", ["id,b", "1,\\xdeadbeef", "2,\\x", "3,", "4,\\x41"])
    for left, right in ((blobs, csv), (csv, blobs)):
        assert diff(left, right, key_columns=["id"]).same
        assert diff(left, right, key_columns=["b"]).same
        assert diff(left, right).same
    other = write_lines(tmp_path / "o.csv", ["id,b", "1,\\xdeadbeee", '2,""', "3,", "4,A"])
    result = diff(blobs, other, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 3)
    assert [e["key"]["id"] for e in result.examples] == [1, 2, 4]
    assert counts(diff(blobs, other)) == (False, 3, 3, 0)


def test_composite_keys_never_collide_through_a_separator(tmp_path: Path) -> None:
    left = table({"a": (pa.string(), ["a|b", "x"]), "b": (pa.string(), ["c", "y"]), "v": (pa.int64(), [1, 2])})
    right = table({"a": (pa.string(), ["a", "x"]), "b": (pa.string(), ["b|c", "y"]), "v": (pa.int64(), [1, 3])})
    result = diff(left, right, key_columns=["a", "b"])
    assert counts(result) == (False, 1, 1, 1)
    assert sorted((e["change"], json.dumps(e["key"])) for e in result.examples) == [
        ("changed", '{"a": "x", "b": "y"}'),
        ("only_left", '{"a": "a|b", "b": "c"}'),
        ("only_right", '{"a": "a", "b": "b|c"}'),
    ]


def test_a_null_key_matches_a_null_key() -> None:
    left = table({"id": (pa.int64(), [None, 1]), "v": (pa.string(), ["n", "one"])})
    right = table({"id": (pa.int64(), [1, None]), "v": (pa.string(), ["one", "n"])})
    assert diff(left, right, key_columns=["id"]).same


def test_floats_are_exact_unless_a_tolerance_is_given() -> None:
    ids = pa.int64(), [1, 2]
    left = table({"id": ids, "x": (pa.float64(), [0.1 + 0.2, float("nan")])})
    right = table({"id": ids, "x": (pa.float64(), [0.3, float("nan")])})
    assert counts(diff(left, right, key_columns=["id"])) == (False, 0, 0, 1)  # NaN equals NaN
    assert diff(left, right, key_columns=["id"], float_tolerance="1e-9").same
    assert not diff(left, right, key_columns=["id"], float_tolerance=0).same


def test_an_integer_or_decimal_against_a_float_is_equal_only_to_its_own_double() -> None:
    """Not through float64: 2**60 + 7 has no double of its own, so no float equals it."""
    from decimal import Decimal

    ids = pa.int64(), [1, 2, 3, 4]
    ints = table({"id": ids, "v": (pa.int64(), [2**60 + 7, 2**60, 3, None])})
    floats = table({"id": ids, "v": (pa.float64(), [float(2**60), float(2**60), 3.0, None])})
    result = diff(ints, floats, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 1) and result.examples[0]["key"] == {"id": 1}
    assert diff(ints, floats, key_columns=["id"], float_tolerance="16").same  # a tolerance allows it
    # ...measured exactly: 2**60 + 7 is 7 from the float 2**60, more than 0.5 (or 0), not more than 7
    for tolerance, same in (("0", False), ("0.5", False), ("6.99", False), ("7", True)):
        assert diff(ints, floats, key_columns=["id"], float_tolerance=tolerance).same is same, tolerance
    decimals = table({"id": (pa.int64(), [1, 2]),
                      "v": (pa.decimal128(20, 1), [Decimal("12345678901234567.5"), Decimal("0.1")])})  # fmt: skip
    doubles = table({"id": (pa.int64(), [1, 2]), "v": (pa.float64(), [12345678901234567.5, 0.1])})
    assert counts(diff(decimals, doubles, key_columns=["id"])) == (False, 0, 0, 1)
    # keyless: rows as multisets, the same rule
    assert counts(diff(table({"v": (pa.int64(), [2**60 + 7, 3])}), table({"v": (pa.float64(), [float(2**60), 3.0])}))) == (
        False, 1, 1, 0)  # fmt: skip


def test_numbers_at_the_end_of_their_type_against_floats_differ_without_trouble() -> None:
    """2**63 - 1 has the double 2**63, which no int64 is: a difference, not a failed cast."""
    from decimal import Decimal

    ints = table({"id": (pa.int64(), [1]), "v": (pa.int64(), [2**63 - 1])})
    floats = table({"id": (pa.int64(), [1]), "v": (pa.float64(), [float(2**63)])})
    assert counts(diff(ints, floats, key_columns=["id"])) == (False, 0, 0, 1)
    assert counts(diff(table({"v": (pa.int64(), [2**63 - 1])}), table({"v": (pa.float64(), [float(2**63)])}))) == (
        False, 1, 1, 0)  # fmt: skip
    nines = table({"id": (pa.int64(), [1]), "v": (pa.decimal128(38, 0), [Decimal("9" * 38)])})
    assert counts(diff(nines, table({"id": (pa.int64(), [1]), "v": (pa.float64(), [1e38])}), key_columns=["id"])) == (
        False, 0, 0, 1)  # fmt: skip


def test_the_largest_real_and_numbers_past_the_double_range_against_float32(tmp_path: Path) -> None:
    """The largest real written as PostgreSQL writes it equals it (its shorter texts round past the
    float32 range: no trouble); a number past the double's range is not an infinity, which only
    an infinity as written is."""
    real = pa.float32()
    pq.write_table(pa.table({"id": [1, 2, 3], "r": pa.array([3.4028234663852886e38, float("inf"), float("-inf")], real)}),
                   tmp_path / "r.parquet")  # fmt: skip
    (tmp_path / "same.csv").write_text("id,r\n1,3.4028235e+38\n2,Infinity\n3,-Infinity\n")
    (tmp_path / "past.csv").write_text("id,r\n1,3.4028235e38\n2,1e400\n3,-1e400\n")
    assert diff(tmp_path / "r.parquet", tmp_path / "same.csv", key_columns=["id"]).same
    assert counts(diff(tmp_path / "r.parquet", tmp_path / "past.csv", key_columns=["id"])) == (False, 0, 0, 2)


def test_a_number_against_a_float32_column_is_its_float32(tmp_path: Path) -> None:
    """A REAL (float32) dump against a store's JSON numbers, a decimal or a CSV field: the number is
    read as a float32 (1.1 is the real 1.1, whose double is 1.100000023841858), as against a
    DOUBLE it is read as a double; a number that is not its float32 still differs, and two typed
    floats of two widths are compared exactly."""
    lines = ['{"id":1,"r":1.1}', '{"id":3,"r":"NaN"}', '{"id":4,"r":0.3}']  # "NaN": a float64 column in the replay
    write_lines(tmp_path / "in.jsonl", lines)
    write_lines(tmp_path / "more.jsonl", ['{"id":1,"r":1.1}', '{"id":2,"r":16777217}'])
    store, more = tmp_path / "s", tmp_path / "more"
    logtool.ingest(store, [str(tmp_path / "in.jsonl")], mapping=Mapping(key_fields=("id",), entity="m"))
    logtool.ingest(more, [str(tmp_path / "more.jsonl")], mapping=Mapping(key_fields=("id",), entity="m"))
    real = pa.float32()
    pq.write_table(pa.table({"id": [1, 3, 4], "r": pa.array([1.1, float("nan"), 0.3], real)}), tmp_path / "same.parquet")
    assert diff(store, tmp_path / "same.parquet").same
    assert diff(store, tmp_path / "same.parquet", key_columns=["id"]).same
    pq.write_table(pa.table({"id": [1, 2], "r": pa.array([1.1, 2.0**24], real)}), tmp_path / "m.parquet")
    result = diff(more, tmp_path / "m.parquet")  # 2**24 + 1 has no float32 of its own: a difference
    assert counts(result) == (False, 0, 0, 1) and result.examples[0]["key"] == {"id": "2"}
    ids = pa.int64(), [1, 2]
    reals = table({"id": ids, "v": (real, [1.1, 1.25])})
    decimals = table({"id": ids, "v": (pa.decimal128(3, 2), [Decimal("1.1"), Decimal("1.25")])})
    assert diff(decimals, reals, key_columns=["id"]).same
    assert diff(table({"v": (pa.decimal128(3, 1), [Decimal("1.1")])}), table({"v": (real, [1.1])})).same  # keyless
    close = table({"id": ids, "v": (pa.decimal128(9, 8), [Decimal("1.10000001"), Decimal("1.25")])})
    assert counts(diff(close, reals, key_columns=["id"])) == (False, 0, 0, 1)  # more digits than its float32 has
    assert counts(diff(table({"id": ids, "v": (pa.float64(), [1.1, 1.25])}), reals, key_columns=["id"])) == (
        False, 0, 0, 1)  # fmt: skip
    # a tolerance measures the number itself: 1.1 is 0.1000000477 from the real 1.2 (1.2000000477)
    one = table({"id": (pa.int64(), [1]), "v": (pa.decimal128(2, 1), [Decimal("1.1")])})
    further = table({"id": (pa.int64(), [1]), "v": (real, [1.2])})
    assert not diff(one, further, key_columns=["id"], float_tolerance="0.10000003").same  # not float32 to float32
    assert diff(one, further, key_columns=["id"], float_tolerance="0.10000005").same
    # a CSV field: any text that rounds to the same float32
    write_lines(tmp_path / "m.csv", ["id,r", "1,1.1", "3,NaN", "4,0.30000001192092896"])
    assert diff(tmp_path / "m.csv", tmp_path / "same.parquet", key_columns=["id"]).same
    assert diff(tmp_path / "m.csv", tmp_path / "same.parquet").same
    write_lines(tmp_path / "off.csv", ["id,r", "1,1.1000001", "3,NaN", "4,0.3"])
    assert counts(diff(tmp_path / "off.csv", tmp_path / "same.parquet", key_columns=["id"])) == (False, 0, 0, 1)
    # a JSON number too (a JSON string is no number)
    json = table({"id": (pa.int64(), [1, 2]), "v": (pa.string(), ["1.100000023841858", '"1.25"'])}, json_columns=("v",))
    result = diff(json, reals, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 1) and result.examples[0]["key"] == {"id": 2}
    # rounded once from the text: past a double's halfway point between two float32s, the upper one
    assert D._round32("1.0000000596046447753906250001") == 1.0000001192092896
    assert D._round32("1.000000059604644775390625") == 1.0  # a tie: the even one
    # a number rounding to a float32 is not that float32 unless it is the float32 as written
    assert not D.values_equal("float32", "t", "f", "1.0000000596046447753906250001", "1.0000001192092896")
    assert not D.values_equal("float32", "t", "f", "1e39", "inf")


def test_a_number_is_a_float32_only_as_written(tmp_path: Path) -> None:
    """Against a float32 column a number is equal only where it is that float32 as written: its
    shortest digits (as PostgreSQL writes a real), its double's shortest digits, or its exact
    value; a store's double, the nearest to its JSON text, likewise. 16777217 is not the real
    16777216, nor 1e-50 the real 0, whatever the side (a store, a CSV field, an integer column)."""
    write_lines(tmp_path / "e.jsonl", ['{"id":1,"x":16777217}', '{"id":2,"x":1e-50}'])  # the store's column: DOUBLE
    logtool.ingest(tmp_path / "s", [str(tmp_path / "e.jsonl")], mapping=Mapping(key_fields=("id",), entity="t"))
    real = pa.float32()
    pq.write_table(pa.table({"id": [1, 2], "x": pa.array([16777216.0, 0.0], real)}), tmp_path / "real.parquet")
    assert counts(diff(tmp_path / "s", tmp_path / "real.parquet", key_columns=["id"])) == (False, 0, 0, 2)
    assert not diff(tmp_path / "s", tmp_path / "real.parquet").same  # as multisets
    write_lines(tmp_path / "e.csv", ["id,x", "1,16777217", "2,1e-50"])
    assert counts(diff(tmp_path / "e.csv", tmp_path / "real.parquet", key_columns=["id"])) == (False, 0, 0, 2)
    assert not diff(tmp_path / "e.csv", tmp_path / "real.parquet").same
    # the float32's shortest digits, its double's and its exact value are it; DuckDB's own text of
    # the real 343126.125 is that exact value, its shortest digits are 343126.12; 2**30's are 1.0737418e+09
    reals = [16777216.0, 343126.125, 2.0**30, 1.1, 2.0**-96, 0.0]
    written = ["16777216", "343126.12", "1.0737418e+09", "1.1", "1.2621775e-29", "0"]
    doubles = ["16777216.0", "343126.125", "1073741824", "1.100000023841858", "1.262177448353619e-29", "-0.0"]
    ids = list(range(len(reals)))
    pq.write_table(pa.table({"id": ids, "x": pa.array(reals, real)}), tmp_path / "r.parquet")
    for name, texts in (("w", written), ("d", doubles)):
        write_lines(tmp_path / f"{name}.jsonl", [f'{{"id":{i},"x":{t}}}' for i, t in zip(ids, texts, strict=True)])
        logtool.ingest(tmp_path / name, [str(tmp_path / f"{name}.jsonl")], mapping=Mapping(key_fields=("id",), entity="t"))
        write_lines(tmp_path / f"{name}.csv", ["id,x", *(f"{i},{t}" for i, t in zip(ids, texts, strict=True))])
        for left in (tmp_path / name, tmp_path / f"{name}.csv"):
            assert diff(left, tmp_path / "r.parquet", key_columns=["id"]).same, (name, left)
            assert diff(left, tmp_path / "r.parquet").same, (name, left)
    near = ["16777215.9", "343126.13", "1073741800.5", "1.10000002", "1.26217745e-29", "1e-46"]  # each rounds to its real
    write_lines(tmp_path / "n.jsonl", [f'{{"id":{i},"x":{t}}}' for i, t in zip(ids, near, strict=True)])
    logtool.ingest(tmp_path / "n", [str(tmp_path / "n.jsonl")], mapping=Mapping(key_fields=("id",), entity="t"))
    write_lines(tmp_path / "n.csv", ["id,x", *(f"{i},{t}" for i, t in zip(ids, near, strict=True))])
    for left in (tmp_path / "n", tmp_path / "n.csv"):
        assert counts(diff(left, tmp_path / "r.parquet", key_columns=["id"])) == (False, 0, 0, len(near)), left
    # integers and decimals: exact, or the float32's digits (1073741800 is the real 2**30 as PostgreSQL writes it)
    r3 = table({"id": (pa.int64(), [1, 2, 3]), "v": (real, [2.0**30, 16777216.0, 343126.125])})
    ints = table({"id": (pa.int64(), [1, 2, 3]), "v": (pa.int64(), [1073741800, 16777217, 343126])})
    result = diff(ints, r3, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 2) and {e["key"]["id"] for e in result.examples} == {2, 3}
    exact = table({"id": (pa.int64(), [1, 2, 3]), "v": (pa.int64(), [2**30, 16777216, 343126])})
    assert counts(diff(exact, r3, key_columns=["id"])) == (False, 0, 0, 1)
    decimals = table({"id": (pa.int64(), [1, 2, 3]), "v": (pa.decimal128(12, 2), [Decimal(2**30), Decimal(16777216), Decimal("343126.13")])})
    result = diff(decimals, r3, key_columns=["id"])  # 343126.13 reads back as the real 343126.125, but is not it
    assert counts(result) == (False, 0, 0, 1) and result.examples[0]["key"] == {"id": 3}


def test_nanosecond_timestamps_are_compared_and_keyed_to_the_nanosecond() -> None:
    ns = pa.timestamp("ns")
    assert counts(diff(table({"id": (pa.int64(), [1]), "t": (ns, [1])}), table({"id": (pa.int64(), [1]), "t": (ns, [2])}),
                       key_columns=["id"])) == (False, 0, 0, 1)  # fmt: skip
    shown = diff(table({"id": (pa.int64(), [1]), "t": (ns, [0])}), table({"id": (pa.int64(), [1]), "t": (ns, [999])}),
                 key_columns=["id"]).examples[0]["fields"][0]  # fmt: skip
    assert (shown["left"], shown["right"]) == ("1970-01-01T00:00:00.000000000", "1970-01-01T00:00:00.000000999")
    keyed = table({"id": (ns, [1, 2]), "v": (pa.int64(), [1, 2])})
    assert diff(keyed, keyed, key_columns=["id"]).same  # two keys, not one key twice
    # a microsecond column holds instants no nanosecond column can (years past 2262): no trouble
    late = table({"id": (pa.int64(), [1]), "t": (pa.timestamp("us"), [253402214400000000])})  # 9999-12-31
    assert counts(diff(late, table({"id": (pa.int64(), [1]), "t": (ns, [1700000000000000000])}), key_columns=["id"])) == (
        False, 0, 0, 1)  # fmt: skip
    micro = table({"id": (pa.int64(), [1]), "t": (pa.timestamp("us", tz="UTC"), [5])})
    assert diff(micro, table({"id": (pa.int64(), [1]), "t": (pa.timestamp("ns", tz="UTC"), [5000])}), key_columns=["id"]).same


def test_a_csv_time_meets_nanoseconds_to_the_nanosecond(tmp_path: Path) -> None:
    # against a nanosecond column, and against another CSV field that carries nanoseconds
    ns = tmp_path / "ns.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "t": pa.array([1772366400123456789, 1772366400000000001, 1772366400000000000],
                                                            pa.timestamp("ns", tz="UTC"))}), ns)  # fmt: skip
    micro = tmp_path / "us.csv"
    micro.write_text("id,t\n1,2026-03-01 12:00:00.123456+00\n2,2026-03-01 12:00:00+00\n3,2026-03-01 13:00:00+01\n")
    result = diff(ns, micro, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 2) and {e["key"]["id"] for e in result.examples} == {1, 2}
    exact = tmp_path / "exact.csv"
    exact.write_text("id,t\n1,2026-03-01T12:00:00.123456789Z\n2,2026-03-01 12:00:00.0000000010+00\n3,2026-03-01 12:00:00Z\n")
    assert diff(ns, exact, key_columns=["id"]).same
    assert counts(diff(exact, micro, key_columns=["id"])) == (False, 0, 0, 2)


def test_a_null_is_no_number_whatever_the_tolerance() -> None:
    ids = pa.int64(), [1, 2, 3]
    left = table({"id": ids, "x": (pa.float64(), [None, 1.0, None])})
    right = table({"id": ids, "x": (pa.float64(), [1.0, None, None])})
    result = diff(left, right, key_columns=["id"], float_tolerance="10")
    assert counts(result) == (False, 0, 0, 2)
    assert [e["fields"] for e in result.examples] == [
        [{"field": "x", "left": None, "right": 1.0}],
        [{"field": "x", "left": 1.0, "right": None}],
    ]


def test_decimals_are_compared_exactly() -> None:
    big = Decimal("123456789012345678901234567.891")
    left = table({"id": (pa.int64(), [1, 2]), "d": (pa.decimal128(38, 3), [big, Decimal("1.100")])})
    right = table(
        {
            "id": (pa.int64(), [1, 2]),
            "d": (pa.decimal128(38, 3), [Decimal("123456789012345678901234567.892"), Decimal("1.1")]),
        }
    )
    result = diff(left, right, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 1)  # float64 could not tell these two apart
    assert json.dumps(result.examples[0]["fields"], default=str) == json.dumps(
        [{"field": "d", "left": "123456789012345678901234567.891", "right": "123456789012345678901234567.892"}]
    )
    scales = table({"id": (pa.int64(), [1, 2]), "d": (pa.decimal128(38, 4), [big, Decimal("1.1")])})
    assert diff(left, scales, key_columns=["id"]).same  # 1.100 and 1.1 are one number


def test_csv_decimals_equal_as_numbers(tmp_path: Path) -> None:
    a = write_lines(tmp_path / "a.csv", ["id,p", "1,1.10", "2,123456789012345678901234567.8910", "3,007"])
    b = write_lines(tmp_path / "b.csv", ["id,p", "1,1.1", "2,123456789012345678901234567.891", "3,7"])
    assert diff(a, b, key_columns=["id"]).same
    c = write_lines(tmp_path / "c.csv", ["id,p", "1,1.1", "2,123456789012345678901234567.892", "3,7"])
    assert counts(diff(a, c, key_columns=["id"])) == (False, 0, 0, 1)
    typed = table({"id": (pa.int64(), [1, 2, 3]), "p": (pa.decimal128(38, 3), [Decimal("1.1"), Decimal("123456789012345678901234567.891"), Decimal(7)])})  # fmt: skip
    assert diff(a, typed, key_columns=["id"]).same
    assert D.values_equal("loose", "t", "t", "1.10", "1.1")
    assert D.values_equal("number", "t", "n", "1e3", "1000")
    assert not D.values_equal("loose", "t", "t", "1.10", "1.1x")
    assert not D.values_equal("text", "t", "t", "1.10", "1.1")  # a typed text column is text


def test_timestamps_are_compared_as_instants(tmp_path: Path) -> None:
    utc = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
    left = table({"id": (pa.int64(), [1]), "t": (pa.timestamp("us", tz="UTC"), [utc])})
    berlin = table({"id": (pa.int64(), [1]), "t": (pa.timestamp("us", tz="Europe/Berlin"), [utc])})
    assert diff(left, berlin, key_columns=["id"]).same
    csv = write_lines(tmp_path / "t.csv", ["id,t", "1,2026-03-01T14:00:00+02:00"])
    assert diff(csv, left, key_columns=["id"]).same
    other = write_lines(tmp_path / "u.csv", ["id,t", "1,2026-03-01 12:00:00Z"])
    assert diff(csv, other, key_columns=["id"]).same
    later = write_lines(tmp_path / "v.csv", ["id,t", "1,2026-03-01T12:00:00.000001Z"])
    assert counts(diff(csv, later, key_columns=["id"])) == (False, 0, 0, 1)
    assert counts(diff(later, left, key_columns=["id"])) == (False, 0, 0, 1)


def test_an_offset_to_the_second_is_an_instant_too(tmp_path: Path) -> None:
    """PostgreSQL writes a zone's local mean time before its standard time as an offset to the
    second (Paris before 1911, +00:09:21): a CSV field or a store's string so written is an instant."""
    utc = write_lines(tmp_path / "utc.csv", ["id,ts", "1,1850-01-01 00:00:00+00", "2,2024-03-05 12:00:00+00"])
    paris = write_lines(tmp_path / "paris.csv", ["id,ts", "1,1850-01-01 00:09:21+00:09:21", "2,2024-03-05 13:00:00+01"])
    assert diff(utc, paris, key_columns=["id"]).same
    basic = write_lines(tmp_path / "basic.csv", ["id,ts", "1,1850-01-01T00:19:32+001932", "2,2024-03-05T12:00:00Z"])
    assert diff(utc, basic, key_columns=["id"]).same
    off = write_lines(tmp_path / "off.csv", ["id,ts", "1,1850-01-01 00:09:22+00:09:21", "2,2024-03-05 13:00:00+01"])
    assert counts(diff(utc, off, key_columns=["id"])) == (False, 0, 0, 1)
    store = _store(tmp_path, "s", [
        {"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 1, "data": {"id": 1, "ts": "1850-01-01T00:00:00Z"}},
        {"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 2, "data": {"id": 2, "ts": "2024-03-05T12:00:00Z"}},
    ])  # fmt: skip
    assert diff(store, paris, key_columns=["id"]).same
    assert D.values_equal("instant", "t", "t", "1850-01-01T00:00:00Z", "1850-01-01 00:09:21+00:09:21")


def test_json_is_compared_as_values() -> None:
    ids = pa.int64(), [1, 2, 3, 4]
    left = ['{"a":1,"b":{"x":[1,2],"y":null}}', '{"n":1.10}', '{"s":"1"}', "[1,2]"]
    right = ['{"b":{"y":null,"x":[1,2]},"a":1}', '{"n":1.1}', '{"s":1}', "[2,1]"]
    result = diff(
        table({"id": ids, "j": (pa.string(), left)}, ("j",)),
        table({"id": ids, "j": (pa.string(), right)}, ("j",)),
        key_columns=["id"],
    )
    assert counts(result) == (False, 0, 0, 2)
    assert [e["key"]["id"] for e in result.examples] == [3, 4]
    # without the JSON mark the column is text, compared as written
    plain = diff(table({"id": ids, "j": (pa.string(), left)}), table({"id": ids, "j": (pa.string(), right)}), key_columns=["id"])  # fmt: skip
    assert plain.changed == 4


def test_json_numbers_keep_every_digit() -> None:
    assert not D.values_equal("json", "j", "j", '{"a":9007199254740993}', '{"a":9007199254740992}')
    assert not D.values_equal("json", "j", "j", '{"a":0.10000000000000001}', '{"a":0.1}')
    assert D.values_equal("json", "j", "j", '{"a":1E+2}', '{"a":100}')
    assert D.values_equal("json", "j", "j", '{"a":1.0000001}', '{"a":1}', Decimal("1e-6"))
    assert not D.values_equal("json", "j", "j", '{"a":1}', '{"a":2}', Decimal("5"))  # integers stay exact


def test_keyless_tables_are_multisets() -> None:
    rows = pa.string(), ["x", "x", "y"]
    left = table({"v": rows, "w": (pa.int64(), [1, 1, 2])})
    right = table({"v": (pa.string(), ["y", "x", "y"]), "w": (pa.int64(), [2, 1, 2])})
    result = diff(left, right)
    assert counts(result) == (False, 1, 1, 0)
    assert [(e["change"], e["count"], e["row"]) for e in result.examples] == [
        ("only_left", 1, {"v": "x", "w": 1}),
        ("only_right", 1, {"v": "y", "w": 2}),
    ]
    assert diff(left, table({"v": (pa.string(), ["y", "x", "x"]), "w": (pa.int64(), [2, 1, 1])})).same
    twice = table({"v": (pa.string(), ["x"] * 5), "w": (pa.int64(), [1] * 5)})
    assert [(e["change"], e["count"]) for e in diff(left, twice).examples] == [("only_left", 1), ("only_right", 3)]


def test_keyless_json_rows_match_whatever_their_key_order() -> None:
    left = table({"j": (pa.string(), ['{"a":1,"b":2}', '{"a":1,"b":2}'])}, ("j",))
    right = table({"j": (pa.string(), ['{"b":2,"a":1}', '{"a":1.0,"b":2}'])}, ("j",))
    assert diff(left, right).same
    right3 = table({"j": (pa.string(), ['{"b":2,"a":1}'] * 3)}, ("j",))
    assert counts(diff(left, right3)) == (False, 0, 1, 0)


def test_columns_on_one_side_only_make_tables_different() -> None:
    left = table({"id": (pa.int64(), [1]), "a": (pa.string(), ["x"]), "b": (pa.string(), ["y"])})
    right = table({"id": (pa.int64(), [1]), "a": (pa.string(), ["x"])})
    result = diff(left, right, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 0)
    assert result.to_dict()["columns_only_left"] == ["b"]


def test_columns_whose_names_differ_only_in_case_are_two_columns(tmp_path: Path) -> None:
    """`Name` and `name` are matched by their exact names, in any order, in CSV, Parquet, Arrow
    and a store's rows; a changed field is named as it is (DuckDB's names ignore case)."""
    (tmp_path / "a.csv").write_text("id,Name,name\n1,A,a\n")
    (tmp_path / "b.csv").write_text("id,name,Name\n1,a,A\n")
    (tmp_path / "c.csv").write_text("id,Name,name\n1,A,CHANGED\n")
    pq.write_table(pa.table({"id": ["1"], "name": ["a"], "Name": ["A"]}), tmp_path / "b.parquet")
    arrow = pa.table({"name": ["a"], "id": ["1"], "Name": ["A"]})
    (tmp_path / "s.jsonl").write_text('{"id":1,"Name":"A","name":"a"}\n')
    store = tmp_path / "s"
    logtool.ingest(store, [str(tmp_path / "s.jsonl")], mapping=Mapping(key_fields=("id",), entity="t"))
    a = tmp_path / "a.csv"
    for other in (tmp_path / "b.csv", tmp_path / "b.parquet", arrow, store):
        for keys in (["id"], []):
            result = diff(a, other, key_columns=keys)
            assert result.same and not result.info["columns_only_left"] and not result.info["columns_only_right"]
        changed = diff(other, tmp_path / "c.csv", key_columns=["id"])
        assert counts(changed) == (False, 0, 0, 1)
        assert changed.examples[0]["fields"] == [{"field": "name", "left": "a", "right": "CHANGED"}]
    assert diff(store, tmp_path / "b.parquet").same  # the store's key columns, from its mapping
    result = diff(a, tmp_path / "c.csv", key_columns=["id", "Name"])
    assert result.examples[0]["key"] == {"id": "1", "Name": "A"}
    (tmp_path / "d.csv").write_text("id,NAME\n1,A\n")
    assert diff(a, tmp_path / "d.csv", key_columns=["id"]).info["columns_only_left"] == ["Name", "name"]


def test_a_key_that_is_not_unique_is_refused() -> None:
    left = table({"id": (pa.int64(), [1, 1]), "v": (pa.string(), ["a", "a"])})
    right = table({"id": (pa.int64(), [1, 2]), "v": (pa.string(), ["a", "a"])})
    with pytest.raises(logtool.LogtoolError, match="occurs 2 times"):
        diff(left, right, key_columns=["id"])


# gather 1: the differing rows are joined again into a table; the default: gathered in one pass
@pytest.mark.parametrize("gather", [1, D._TableCompare.GATHER])
@pytest.mark.parametrize(
    ("left_ids", "right_ids", "message"),
    [
        ([1, 2], [1, 1, 2], r"<table>: key \(id=1\) occurs 2 times"),  # on the right, where the left has it
        ([1, 3, 3], [1, 2], r"key \(id=3\) occurs 2 times"),  # on one side only
        ([2, 2, 2], [1], r"key \(id=2\) occurs 3 times"),  # nothing in common
        ([None, None], [None], r"key \(id=None\) occurs 2 times"),  # a null key repeated
        ([5, 5], [5, 5], r"key \(id=5\) occurs 2 times"),  # equal rows, repeated on both sides
    ],
)
def test_a_repeated_key_is_refused_wherever_it_is(
    left_ids: list[int | None], right_ids: list[int | None], message: str, gather: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(D._TableCompare, "GATHER", gather)
    left = table({"id": (pa.int64(), left_ids), "v": (pa.string(), ["a"] * len(left_ids))})
    right = table({"id": (pa.int64(), right_ids), "v": (pa.string(), ["a"] * len(right_ids))})
    with pytest.raises(logtool.LogtoolError, match=message):
        diff(left, right, key_columns=["id"])


_ROWS = st.lists(st.tuples(st.sampled_from([None, 1, 2, 3]), st.sampled_from([None, "", "a"])), max_size=6)


@settings(max_examples=60, deadline=None)
@given(_ROWS, _ROWS, st.sampled_from([1, D._TableCompare.GATHER]))
def test_keyed_counts_and_refusals_match_a_plain_reading(
    lrows: list[tuple[int | None, str | None]], rrows: list[tuple[int | None, str | None]], gather: int
) -> None:
    """Refused exactly when a key repeats on a side; otherwise the keys and values compared one by one."""
    D._TableCompare.GATHER, saved = gather, D._TableCompare.GATHER
    try:
        left = table({"id": (pa.int64(), [k for k, _ in lrows]), "v": (pa.string(), [v for _, v in lrows])})
        right = table({"id": (pa.int64(), [k for k, _ in rrows]), "v": (pa.string(), [v for _, v in rrows])})
        lkeys, rkeys = [k for k, _ in lrows], [k for k, _ in rrows]
        if len(set(lkeys)) < len(lkeys) or len(set(rkeys)) < len(rkeys):
            with pytest.raises(logtool.LogtoolError, match="occurs [0-9]+ times"):
                diff(left, right, key_columns=["id"])
            return
        lmap, rmap = dict(lrows), dict(rrows)
        only_left, only_right = len(lmap.keys() - rmap.keys()), len(rmap.keys() - lmap.keys())
        changed = sum(1 for k in lmap.keys() & rmap.keys() if lmap[k] != rmap[k])
        result = diff(left, right, key_columns=["id"])
        assert (result.only_left, result.only_right, result.changed) == (only_left, only_right, changed)
    finally:
        D._TableCompare.GATHER = saved


def test_a_repeated_composite_key_is_refused() -> None:
    left = table({"a": (pa.string(), ["x", "x", None]), "b": (pa.int64(), [1, 2, 2]), "v": (pa.int64(), [1, 2, 3])})
    right = table({"a": (pa.string(), ["x", None, None]), "b": (pa.int64(), [1, 2, 2]), "v": (pa.int64(), [1, 3, 4])})
    assert counts(diff(left, left, key_columns=["a", "b"])) == (True, 0, 0, 0)
    with pytest.raises(logtool.LogtoolError, match=r"key \(a=None, b=2\) occurs 2 times"):
        diff(left, right, key_columns=["a", "b"])


def test_many_differing_rows_give_what_few_give(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Differing rows past what one pass gathers in memory are joined again into a table: the
    same counts, examples and listing, for every type a column can have."""
    utc = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    ids = pa.int64(), [1, 2, 3, 4, 5]
    left = table(
        {
            "id": ids,
            "s": (pa.string(), ["a", None, "", "<null>", "e"]),
            "d": (pa.decimal128(20, 3), [Decimal("1.100"), None, Decimal("2"), Decimal("3"), Decimal("4")]),
            "f": (pa.float64(), [0.1, float("nan"), None, 1.5, 2.0]),
            "t": (pa.timestamp("us", tz="UTC"), [utc, None, utc, utc, utc]),
            "l": (pa.list_(pa.string()), [["x"], [], None, ["y", "z"], ["w"]]),
            "st": (
                pa.struct([("p", pa.int64()), ("q", pa.string())]),
                [{"p": 1, "q": "a"}, None, {"p": None, "q": None}, {"p": 2, "q": "b"}, {"p": 3, "q": "c"}],
            ),
            "m": (pa.map_(pa.string(), pa.int64()), [[("k", 1)], None, [], [("a", 1), ("b", 2)], [("c", 3)]]),
            "j": (pa.string(), ['{"a":1,"b":2}', None, "[1,2]", '{"x":null}', "1.50"]),
            "b": (pa.bool_(), [True, None, False, True, False]),
        },
        ("j",),
    )
    right = table(
        {
            "id": (pa.int64(), [1, 2, 3, 4, 6]),
            "s": (pa.string(), ["a", "", None, "<null>", "f"]),
            "d": (pa.decimal128(20, 2), [Decimal("1.1"), Decimal("0"), Decimal("2"), Decimal("3.01"), None]),
            "f": (pa.float64(), [0.1, float("nan"), 0.0, 1.5000001, 2.0]),
            "t": (pa.timestamp("us", tz="Europe/Berlin"), [utc, None, utc, utc + dt.timedelta(microseconds=1), utc]),
            "l": (pa.list_(pa.string()), [["x"], None, None, ["z", "y"], []]),
            "st": (
                pa.struct([("p", pa.int64()), ("q", pa.string())]),
                [{"p": 1, "q": "a"}, None, {"p": None, "q": ""}, {"p": 2, "q": "b"}, None],
            ),
            "m": (pa.map_(pa.string(), pa.int64()), [[("k", 1)], None, [], [("b", 2), ("a", 1)], None]),
            "j": (pa.string(), ['{"b":2,"a":1}', None, "[2,1]", '{"x":null}', None]),
            "b": (pa.bool_(), [True, None, False, False, None]),
        },
        ("j",),
    )
    csv = write_lines(
        tmp_path / "r.csv", ["id,s,d,j", '1,a,1.10,"{""b"":2,""a"":1}"', '2,"",0,', '3,,2,"[2,1]"', "6,f,,"]
    )
    parquet = tmp_path / "l.parquet"
    pq.write_table(left, parquet)
    cases = [(left, right, ["id"]), (parquet, csv, ["id"]), (left, right, ["id", "s"])]
    gathered = [diff(a, b, key_columns=k, limit=100) for a, b, k in cases]
    assert counts(gathered[0]) == (False, 1, 1, 3)
    monkeypatch.setattr(D._TableCompare, "GATHER", 1)
    joined = [diff(a, b, key_columns=k, limit=100) for a, b, k in cases]
    for g, j in zip(gathered, joined, strict=True):
        assert counts(g) == counts(j)
        assert as_json(g.to_dict()) == as_json(j.to_dict())
        assert [as_json(x) for x in g.differences()] == [as_json(x) for x in j.differences()]


# --------------------------------------------------------------------------- logs


def _events(n: int = 40) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        key = i % 7
        op = "insert" if i < 7 else "patch"
        out.append({"ts": f"2026-03-01T10:00:{i:02d}.000Z", "table": "public.stock", "op": op, "id": key,
                    "data": {"id": key, "qty": i} if op == "insert" else {"qty": i}})  # fmt: skip
    return out


def _store(tmp_path: Path, name: str, events: list[dict[str, Any]], segment_rows: int = 8) -> Path:
    f = write_lines(tmp_path / f"{name}.jsonl", [dumps_exact(e) for e in events])
    logtool.ingest(tmp_path / name, [str(f)], mapping=MAPPING, segment_rows=segment_rows)
    return tmp_path / name


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A log, an equal one ingested separately, and one that diverges at offset 17."""
    tmp = tmp_path_factory.mktemp("logs")
    a = _events()
    b = [dict(e) for e in a]
    b[17] = {**b[17], "data": {"qty": 999}}  # changed
    extra = {"ts": "2026-03-01T10:00:30.500Z", "table": "public.stock", "op": "insert", "id": 50,
             "data": {"id": 50, "qty": 1}}  # fmt: skip
    b = b[:25] + b[26:31] + [extra] + b[31:]  # A's index 25 missing, an extra event after A's 30
    reordered = [{**e, "data": dict(reversed(list(e["data"].items())))} for e in a]
    reordered[3]["data"]["qty"] = RawNumber("3.0")
    return {"a": _store(tmp, "a", a), "a2": _store(tmp, "a2", reordered, 5), "b": _store(tmp, "b", b)}


def test_logs_diverge_at_the_first_different_event(logs: dict[str, Path]) -> None:
    result = diff(logs["a"], logs["b"])
    assert counts(result) == (False, 1, 1, 1)
    assert result.first_divergent_offset == 17
    info = as_json(result.to_dict())
    assert (info["left_event"]["data"], info["right_event"]["data"]) == ({"qty": 17}, {"qty": 999})
    assert [(e["change"], (e.get("event") or e["left"])["offset"]) for e in result.examples] == [
        ("changed", 17), ("only_left", 25), ("only_right", 30),
    ]  # fmt: skip
    assert as_json(result.examples[0]["fields"]) == [{"field": "data", "left": {"qty": 17}, "right": {"qty": 999}}]
    assert (
        len(list(result.differences())) == 3 + result.state.only_left + result.state.only_right + result.state.changed
    )


def test_equal_logs_ingested_apart_are_the_same(logs: dict[str, Path]) -> None:
    # other salts, other segment sizes, JSON keys in another order and 3.0 for 3: the same events
    result = diff(logs["a"], logs["a2"])
    assert counts(result) == (True, 0, 0, 0)
    assert result.first_divergent_offset is None
    assert result.to_dict()["segments"]["shared"] == 0


def test_a_copied_store_is_decided_from_segment_digests(logs: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(logs["a"], copy)
    result = diff(logs["a"], copy)
    assert result.same
    assert result.to_dict()["segments"] == {"left": 5, "right": 5, "shared": 5, "read_left": 0, "read_right": 0}
    logtool.purge(copy, where='"offset" = 25', reason="test")
    result = diff(logs["a"], copy)
    assert counts(result) == (False, 1, 0, 0)
    assert result.first_divergent_offset == 25
    assert result.to_dict()["segments"] == {"left": 5, "right": 5, "shared": 4, "read_left": 1, "read_right": 1}


def test_an_appended_log_diverges_where_the_shorter_ends(logs: dict[str, Path], tmp_path: Path) -> None:
    longer = tmp_path / "longer"
    shutil.copytree(logs["a"], longer)
    more = [{**e, "ts": e["ts"].replace("10:00", "10:01")} for e in _events(3)]
    logtool.ingest(longer, [str(write_lines(tmp_path / "more.jsonl", [json.dumps(e) for e in more]))], mapping=MAPPING)
    result = diff(logs["a"], longer)
    assert counts(result) == (False, 0, 3, 0)
    assert (result.first_divergent_offset, result.to_dict()["left_event"]) == (40, None)
    assert result.to_dict()["segments"]["read_left"] == 0


def test_states_at_an_offset(logs: dict[str, Path]) -> None:
    assert diff(logs["a"], logs["b"], at_offset=16).same
    result = diff(logs["a"], logs["b"], at_offset=17)
    assert counts(result) == (False, 0, 0, 1)
    assert result.examples == [{"scope": "state", "change": "changed", "key": {"entity": "public.stock", "key": "3"},
                                "fields": [{"field": "qty", "left": 17, "right": 999}]}]  # fmt: skip


def test_states_of_replicas_captured_apart_at_a_source_position_or_a_time(tmp_path: Path) -> None:
    """Two captures of one Kafka topic whose offsets differ (one store holds other events first)
    are compared at a source position, or at a time: each store is replayed to its own prefix."""

    def record(offset: int, key: str, value: int) -> str:
        return json.dumps({"topic": "t", "partition": 0, "offset": offset, "tstype": "create",
                           "ts": 1709660000000 + 1000 * offset, "broker": 1, "headers": [], "key": key,
                           "payload": json.dumps({"v": value})})  # fmt: skip

    a, b = tmp_path / "a", tmp_path / "b"
    logtool.ingest(a, [str(write_lines(tmp_path / "a.jsonl", [record(1, "k1", 10), record(2, "k2", 20),
                                                              record(3, "k1", 11)]))])  # fmt: skip
    other = json.dumps({"id": 1, "v": 5, "ts": "2024-03-05T17:00:00Z"})
    logtool.ingest(b, [str(write_lines(tmp_path / "other.jsonl", [other]))],
                   mapping=Mapping(entity="other", key_fields=("id",), ts_field="ts"))  # fmt: skip
    logtool.ingest(b, [str(write_lines(tmp_path / "b.jsonl", [record(1, "k1", 10), record(2, "k2", 20),
                                                              record(3, "k1", 99)]))])  # fmt: skip
    assert diff(a, b, at_position="0/2", entity="t").same
    assert not diff(a, b, at_offset=2, entity="t").same  # by offset, B is a step behind
    result = diff(a, b, at_position="0/3", entity="t")
    assert counts(result) == (False, 0, 0, 1)
    assert result.to_dict()["at_position"] == "0/3"
    assert result.examples[0]["fields"] == [{"field": "v", "left": 11, "right": 99}]
    assert diff(a, b, at_time="2024-03-05T17:33:22Z", entity="t").same  # the second record's time
    assert counts(diff(a, b, at_time="2024-03-05T17:33:23Z", entity="t")) == (False, 0, 0, 1)
    from logtool.errors import UsageError

    with pytest.raises(UsageError, match="at most one of"):
        diff(a, b, at_position="0/2", at_offset=1)
    with pytest.raises(UsageError, match="--by aligns logs"):
        diff(a, b, at_time="2024-03-05T17:33:22Z", by="position")


def test_states_of_two_cdc_formats_meet_where_their_strings_write_one_instant(tmp_path: Path) -> None:
    """wal2json writes a timestamptz `2024-03-05 11:00:00.123+00`, Debezium `2024-03-05T11:00:00.123Z`:
    two JSON strings that both write a date and a time of day are equal where they are one instant
    (no offset: UTC, as against a CSV dump), in nested values too, and only then."""
    wal2json = {"at": "2024-03-05 11:00:00.123+00", "local": "2024-03-05 12:00:00.5", "nested": {"l": ["2024-03-05 12:00:00+01"]},
                "day": "2024-03-05", "code": "01", "later": "2024-03-05 11:00:00+00"}  # fmt: skip
    debezium = {"at": "2024-03-05T11:00:00.123Z", "local": "2024-03-05T12:00:00.500", "nested": {"l": ["2024-03-05T11:00:00Z"]},
                "day": "2024-03-05T00:00:00Z", "code": "1", "later": "2024-03-05T11:00:00.000001Z"}  # fmt: skip
    stores = [_store(tmp_path, name, [{"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 1,
                                       "data": {"id": 1, **row}}])
              for name, row in (("w", wal2json), ("d", debezium))]  # fmt: skip
    result = diff(*stores, at_offset=0)
    assert counts(result) == (False, 0, 0, 1)
    assert [f["field"] for f in result.examples[0]["fields"]] == ["day", "code", "later"]
    # one rule for equality and for grouping (keyless rows), as against a CSV field
    same = [("2024-03-05 11:00:00.123+00", "2024-03-05T12:00:00.123+01:00"), ("2024-03-05 12:00", "2024-03-05T12:00:00Z")]
    for a, b in same:
        assert D.values_equal("json", "j", "j", json.dumps([a]), json.dumps([b]))
        assert D.canonical("json", "j", json.dumps({"x": a})) == D.canonical("json", "j", json.dumps({"x": b}))
        assert D.values_equal("instant", "t", "t", a, b)
    assert not D.values_equal("json", "j", "j", '"2024-03-05"', '"2024-03-05 00:00:00+00"')
    assert not D.values_equal("json", "j", "j", '"12:00:00"', '"12:00:00+00"')  # a time of day is no instant


def _positioned(path: Path, rows: list[tuple[str, int, int]]) -> Path:
    """An event-schema Parquet file: (entity, key, source position) per event."""
    from logtool.schema import input_schema

    events = [
        {"ts": dt.datetime(2026, 3, 1, 10, 0, pos, tzinfo=dt.UTC), "entity": entity, "key": str(key), "op": "upsert",
         "data": json.dumps({"id": key, "pos": pos}),
         "source": {"format": "test", "file": path.name, "line": i + 1, "position": str(pos),
                    "position_order": f"{pos:020d}"}}
        for i, (entity, key, pos) in enumerate(rows)
    ]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(events, schema=input_schema()), path)
    return path


def test_logs_captured_apart_align_by_source_position(tmp_path: Path) -> None:
    stock = [("stock", i % 4, 10 + i) for i in range(12)]
    changed = stock[:6] + [("stock", 9, 16)] + stock[7:]
    a, b = tmp_path / "a", tmp_path / "b"
    logtool.ingest(a, [str(_positioned(tmp_path / "other.parquet", [("other", 1, 1), ("other", 2, 2)]))])
    logtool.ingest(a, [str(_positioned(tmp_path / "a.parquet", stock))])
    logtool.ingest(b, [str(_positioned(tmp_path / "b.parquet", changed))])
    by_position = diff(a, b, entity="stock", by="position")
    assert by_position.first_divergent_offset == 8  # A's offset; B holds the position at offset 6
    assert by_position.to_dict()["first_divergent_position"] == "16"  # as the source wrote it
    assert by_position.to_dict()["right_event"]["offset"] == 6
    assert counts(by_position) == (False, 1, 1, 0)
    assert diff(a, b, entity="stock").first_divergent_offset == 0  # by offset, everything moved


def test_debezium_dumps_with_deletes_align_by_position(tmp_path: Path) -> None:
    """A Debezium tombstone is at its delete's source position: two identical keyed dumps holding a
    delete are the same by position (the tombstone had no position, and every such dump was refused)."""

    def change(op: str, lsn: int, before: dict | None, after: dict | None) -> dict:
        return {"before": before, "after": after, "op": op, "ts_ms": 1709640000050 + lsn,
                "source": {"connector": "postgresql", "name": "pg", "ts_ms": 1709640000000 + lsn, "db": "shop",
                           "schema": "public", "table": "t", "txId": 700 + lsn, "lsn": lsn}}  # fmt: skip

    records = [{"key": {"id": 1}, "value": change("c", 1000, None, {"id": 1, "v": "a"})},
               {"key": {"id": 1}, "value": change("d", 2000, {"id": 1, "v": None}, None)},
               {"key": {"id": 1}, "value": None}]  # fmt: skip
    dump = write_lines(tmp_path / "dump.jsonl", [json.dumps(r) for r in records])
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for store in (a, b):
        logtool.ingest(store, [str(dump)])
    assert diff(a, b, by="position").same
    logtool.ingest(c, [str(write_lines(tmp_path / "c.jsonl", [json.dumps(r) for r in records[:1]]))])
    result = diff(a, c, by="position")
    assert counts(result) == (False, 2, 0, 0)  # the delete and its tombstone, at one position
    assert result.to_dict()["first_divergent_position"] == "0/7D0"


def test_kcat_captures_of_several_topics_align_by_topic_partition_and_offset(tmp_path: Path) -> None:
    """A Kafka position (partition/offset) is one topic's: two consumers that interleave the topics
    each their own way hold the same log; the divergence is named by the position as kcat wrote it."""

    def record(topic: str, offset: int, value: int) -> str:
        return json.dumps({"topic": topic, "partition": 0, "offset": offset, "tstype": "create",
                           "ts": 1709660000000 + 1000 * offset + len(topic), "broker": 1, "headers": [], "key": "k1",
                           "payload": json.dumps({"v": value})})  # fmt: skip

    a1, b1, a2, b2 = record("t.a", 1, 1), record("t.b", 1, 10), record("t.a", 2, 2), record("t.b", 2, 20)
    one, two, three = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    logtool.ingest(one, [str(write_lines(tmp_path / "one.jsonl", [a1, b1, a2, b2]))])
    logtool.ingest(two, [str(write_lines(tmp_path / "two.jsonl", [b1, b2, a1, a2]))])
    logtool.ingest(three, [str(write_lines(tmp_path / "three.jsonl", [b1, record("t.b", 2, 21), a1, a2]))])
    assert diff(one, two, by="position").same
    result = diff(one, three, by="position")
    assert counts(result) == (False, 0, 0, 1)
    assert (result.first_divergent_offset, result.to_dict()["first_divergent_position"]) == (3, "0/2")
    assert as_json(result.to_dict()["right_event"])["meta"]["kafka"]["topic"] == "t.b"


# --------------------------------------------------------------------------- sample replicas


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if not (SAMPLES / "replica_a.jsonl").exists() or not (SAMPLES / "replica_b.jsonl").exists():
        pytest.skip("sample_logs/replica_a.jsonl and replica_b.jsonl are not there")
    tmp = tmp_path_factory.mktemp("replicas")
    for name in ("a", "b"):
        logtool.ingest(tmp / name, [str(SAMPLES / f"replica_{name}.jsonl")], mapping=MAPPING, segment_rows=32)
    return tmp / "a", tmp / "b"


def test_a_state_inside_a_purged_range_is_compared_with_a_note(replicas: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    purged = tmp_path / "purged"
    shutil.copytree(replicas[0], purged)
    logtool.purge(purged, before_offset=50)
    result = diff(replicas[0], purged, at_offset=10)
    assert any(n.startswith(f"{purged}: events up to offset 49 were removed by purge") and "cannot be known exactly" in n
               for n in result.notes)  # fmt: skip
    assert not any("cannot be known" in n for n in diff(replicas[0], purged, at_offset=60).notes)


def test_sample_replicas_diverge_at_their_known_offset(replicas: tuple[Path, Path]) -> None:
    result = diff(*replicas)
    # sample_logs/README.md: identical up to index 73; 1 changed, 1 missing, 1 extra
    assert counts(result) == (False, 1, 1, 1)
    assert result.first_divergent_offset == 73
    assert [e["change"] for e in result.examples] == ["changed", "only_left", "only_right"]
    assert (result.examples[1]["event"]["offset"], result.examples[2]["event"]["offset"]) == (108, 114)
    # head states: key 99 only in B; keys 2 and 32 differ in qty
    state = result.state
    assert counts(state) == (False, 0, 1, 2)
    assert [(e["key"]["key"], e.get("fields")) for e in state.examples] == [
        ("2", [{"field": "qty", "left": 38, "right": 47}]),
        ("32", [{"field": "qty", "left": 66, "right": 59}]),
        ("99", None),
    ]


def test_a_replayed_state_against_table_dumps(replicas: tuple[Path, Path], tmp_path: Path) -> None:
    from logtool.formats.writers import write_csv

    a, b = replicas
    dump = logtool.replay(str(a)).tables()["public.stock"].drop_columns(["key"])
    pq.write_table(dump, tmp_path / "stock.parquet")
    with open(tmp_path / "stock.csv", "w", encoding="utf-8") as f:
        write_csv([dump], f)
    for path in ("stock.parquet", "stock.csv"):
        same = diff(a, tmp_path / path)  # one entity, and its key from the store's mapping
        assert counts(same) == (True, 0, 0, 0), path
        other = diff(b, tmp_path / path, entity="public.stock", key_columns=["id"])
        assert counts(other) == (False, 1, 0, 2), path
    assert diff(tmp_path / "stock.parquet", tmp_path / "stock.csv", key_columns=["id"]).same
    early = diff(a, tmp_path / "stock.parquet", at_offset=10)
    then = set(logtool.replay(str(a), at_offset=10).state.column("key").to_pylist())
    head = {str(i) for i in dump.column("id").to_pylist()}
    assert (early.only_left, early.only_right) == (len(then - head), len(head - then))


def test_a_store_whose_rows_lack_their_key_against_a_dump(tmp_path: Path) -> None:
    """Without --data-field the key field leaves the row: it comes back from the store's key."""
    (tmp_path / "in.jsonl").write_text('{"id":1,"v":"x"}\n{"id":2,"v":"x"}\n')
    store = tmp_path / "s"
    logtool.ingest(store, [str(tmp_path / "in.jsonl")], mapping=Mapping(key_fields=("id",), entity="t"))
    (tmp_path / "other.csv").write_text("id,v\n1,x\n3,x\n")
    result = diff(store, tmp_path / "other.csv")
    assert counts(result) == (False, 1, 1, 0) and result.info["key_columns"] == ["id"]
    pq.write_table(pa.table({"id": [1, 2], "v": ["x", "x"]}), tmp_path / "same.parquet")
    assert counts(diff(store, tmp_path / "same.parquet", key_columns=["id"])) == (True, 0, 0, 0)
    (tmp_path / "two.jsonl").write_text('{"a":1,"b":"x","v":1}\n')
    pair = tmp_path / "pair"
    logtool.ingest(pair, [str(tmp_path / "two.jsonl")], mapping=Mapping(key_fields=("a", "b"), entity="t"))
    pq.write_table(pa.table({"a": [1], "b": ["x"], "v": [1]}), tmp_path / "pair.parquet")
    assert counts(diff(pair, tmp_path / "pair.parquet")) == (True, 0, 0, 0)
    pq.write_table(pa.table({"a": [1], "b": ["y"], "v": [1]}), tmp_path / "moved.parquet")
    assert counts(diff(pair, tmp_path / "moved.parquet")) == (False, 1, 1, 0)


def test_a_keyless_entity_of_a_store_against_its_dump(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text('{"a":1}\n{"a":1}\n{"a":2}\n')
    store = tmp_path / "s"
    logtool.ingest(store, [str(tmp_path / "in.jsonl")], mapping=Mapping(entity="t"))
    pq.write_table(logtool.replay(str(store)).tables()["t"], tmp_path / "t.parquet")
    assert counts(diff(store, tmp_path / "t.parquet", entity="t")) == (True, 0, 0, 0)
    pq.write_table(pa.table({"key": pa.array([None, None], pa.string()), "a": [1, 2]}), tmp_path / "less.parquet")
    assert counts(diff(store, tmp_path / "less.parquet", entity="t")) == (False, 1, 0, 0)


def test_parquet_decimals_wider_than_38_digits_compare_exactly(tmp_path: Path) -> None:
    from decimal import Decimal

    def dump(name: str, value: str, kind: pa.DataType) -> Path:
        pq.write_table(pa.table({"id": [1], "d": pa.array([Decimal(value)], kind)}), tmp_path / name)
        return tmp_path / name

    a = dump("a.parquet", "1" * 50, pa.decimal256(60, 0))
    assert counts(diff(a, dump("b.parquet", "1" * 49 + "2", pa.decimal256(60, 0)), key_columns=["id"])) == (False, 0, 0, 1)
    assert counts(diff(a, dump("c.parquet", "1" * 50 + ".0", pa.decimal256(62, 1)), key_columns=["id"])) == (True, 0, 0, 0)
    small = dump("s.parquet", "0." + "1" * 39, pa.decimal256(40, 39))
    assert not diff(small, dump("t.parquet", "0." + "1" * 38 + "2", pa.decimal256(40, 39)), key_columns=["id"]).same
    (tmp_path / "a.csv").write_text("id,d\n1," + "1" * 50 + "\n")
    assert diff(a, tmp_path / "a.csv", key_columns=["id"]).same


def test_a_store_ingested_from_a_parquet_dump_of_narrow_decimals_is_that_dump(tmp_path: Path) -> None:
    """A DECIMAL(12,8) column ingested and replayed is its decimals again: the store against its
    dump is the same, and one hundred-millionth apart is a difference."""

    def dump(name: str, first: str) -> Path:
        values = [Decimal(first), Decimal("1.50000000")]
        pq.write_table(pa.table({"id": [1, 2], "amount": pa.array(values, pa.decimal128(12, 8))}), tmp_path / name)
        return tmp_path / name

    wallet = dump("wallet.parquet", "0.00000001")
    logtool.ingest(tmp_path / "s", [str(wallet)], mapping=Mapping(key_fields=("id",)))
    assert diff(tmp_path / "s", wallet, entity="wallet", at_offset=1).same
    assert counts(diff(tmp_path / "s", dump("other.parquet", "0.00000002"), entity="wallet", at_offset=1)) == (
        False, 0, 0, 1,
    )  # fmt: skip


def test_a_typed_text_column_is_text_against_a_number(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": [1, 2, 3], "v": [1, 10, 7]}), tmp_path / "n.parquet")
    pq.write_table(pa.table({"id": ["1", "2", "3"], "v": ["1", "1e1", "007"]}), tmp_path / "t.parquet")
    pq.write_table(pa.table({"id": ["1", "2", "3"], "v": ["1", "10", "7"]}), tmp_path / "same.parquet")
    assert counts(diff(tmp_path / "n.parquet", tmp_path / "t.parquet", key_columns=["id"])) == (False, 0, 0, 2)
    assert counts(diff(tmp_path / "n.parquet", tmp_path / "same.parquet", key_columns=["id"])) == (True, 0, 0, 0)
    (tmp_path / "c.csv").write_text("id,v\n1,1\n2,1e1\n3,007\n")  # CSV has no types: read as numbers
    assert counts(diff(tmp_path / "n.parquet", tmp_path / "c.csv", key_columns=["id"])) == (True, 0, 0, 0)


def test_csv_dumps_with_other_delimiters_and_a_repeated_column(tmp_path: Path) -> None:
    from logtool.errors import InputError

    (tmp_path / "semi.csv").write_text("id;v\n1;2\n")
    (tmp_path / "tabs.tsv").write_text("id\tv\n1\t3\n")
    (tmp_path / "comma.csv").write_text("id,v\n1,2\n")
    assert diff(tmp_path / "semi.csv", tmp_path / "comma.csv", key_columns=["id"]).same
    assert counts(diff(tmp_path / "tabs.tsv", tmp_path / "comma.csv", key_columns=["id"])) == (False, 0, 0, 1)
    (tmp_path / "dup.csv").write_text("id,v,v\n1,2,3\n")
    with pytest.raises(InputError, match="the header names column 'v' more than once"):
        diff(tmp_path / "dup.csv", tmp_path / "comma.csv", key_columns=["id"])


def test_a_tsv_dump_is_read_in_postgresqls_copy_text_format(tmp_path: Path) -> None:
    r"""`COPY t TO 'f.tsv' WITH (HEADER)` (text format): `\N` is NULL, an empty field the empty
    string, backslash escapes are decoded; the same table as COPY's CSV is the same."""
    (tmp_path / "t.jsonl").write_text('{"id":1,"name":null}\n{"id":2,"name":null}\n')
    store = tmp_path / "s"
    logtool.ingest(store, [str(tmp_path / "t.jsonl")], mapping=Mapping(key_fields=("id",), entity="t"))
    (tmp_path / "t.tsv").write_text("id\tname\n1\t\n2\t\\N\n")
    result = diff(store, tmp_path / "t.tsv")
    assert counts(result) == (False, 0, 0, 1)
    assert result.examples[0]["key"] == {"id": "1"} and result.examples[0]["fields"][0]["right"] == ""
    # as PostgreSQL 15 wrote one table both ways (the octal, hex and `\.` escapes as it reads them)
    text = tmp_path / "pg.tsv"
    text.write_bytes(b"id\tname\ttags\tat\n1\t\t{}\t{\"2024-03-05 12:00:00+00\"}\n2\t\\N\t\\N\t\\N\n"
                     b"3\ta\\tb\\nc\\\\d\\r\t{\"x y\",NULL,\"q\\\\\"t\"}\t\\N\n4\t\\\\N\t{\"\\\\\\\\N\"}\t\\N\n"
                     b"5\tcaf\xc3\xa9\t\\N\t\\N\n6\t\x01ctl\t\\N\t\\N\n7\t\\101\\x42\\303\\251\\.\t\\N\t\\N\n")
    csv = tmp_path / "pg.csv"
    csv.write_bytes(b'id,name,tags,at\n1,"",{},"{""2024-03-05 12:00:00+00""}"\n2,,,\n'
                    b'3,"a\tb\nc\\d\r","{""x y"",NULL,""q\\""t""}",\n4,\\N,"{""\\\\N""}",\n'
                    b"5,caf\xc3\xa9,,\n6,\x01ctl,,\n7,AB\xc3\xa9.,,\n")
    assert diff(text, csv, key_columns=["id"]).same
    for keys in (["id"], []):
        assert diff(text, text, key_columns=keys).same
    # a one-column table's empty string is an empty line
    (tmp_path / "one.tsv").write_text("v\na\n\n\\N\n")
    (tmp_path / "one.csv").write_text('v\na\n""\n\n')
    assert diff(tmp_path / "one.tsv", tmp_path / "one.csv").same
    import gzip

    (tmp_path / "one.tsv.gz").write_bytes(gzip.compress((tmp_path / "one.tsv").read_bytes()))
    assert diff(tmp_path / "one.tsv.gz", tmp_path / "one.csv").same


def test_a_tsv_dump_is_split_on_tabs_even_where_a_name_holds_a_comma(tmp_path: Path) -> None:
    """COPY's text format writes a column name holding a comma bare: the fields are still tabs'."""
    (tmp_path / "c.tsv").write_text("id\tname,full\n1\tx\n")
    (tmp_path / "c.csv").write_text('id,"name,full"\n1,x\n')
    assert diff(tmp_path / "c.tsv", tmp_path / "c.csv", key_columns=["id"]).same


def test_a_tab_separated_dump_with_csv_quoting_is_read_as_csv(tmp_path: Path) -> None:
    """COPY's CSV with a tab delimiter: named .csv, or a .tsv whose header quotes a name, is CSV
    (`""` the empty string, an empty field NULL); a .tsv otherwise is COPY's text format."""
    from logtool.errors import InputError

    (tmp_path / "text.tsv").write_text("id\tv\n1\t\n2\t\\N\n")
    (tmp_path / "tabs.csv").write_text('id\tv\n1\t""\n2\t\n')
    (tmp_path / "quoted.tsv").write_text('"id"\t"v"\n1\t""\n2\t\n')
    assert diff(tmp_path / "text.tsv", tmp_path / "tabs.csv", key_columns=["id"]).same
    assert diff(tmp_path / "text.tsv", tmp_path / "quoted.tsv", key_columns=["id"]).same
    (tmp_path / "csv.tsv").write_text('id\tv\n1\t""\n2\t"a\tb"\n')
    with pytest.raises(InputError, match="expected 2 fields, found 3") as raised:
        diff(tmp_path / "csv.tsv", tmp_path / "tabs.csv", key_columns=["id"])
    assert "named .csv, is read as CSV" in str(raised.value.hint)


def test_csv_keys_join_on_their_text_values_compare_as_numbers(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("id,v\n007,1.10\n")
    (tmp_path / "b.csv").write_text("id,v\n7,1.1\n")
    (tmp_path / "c.csv").write_text("id,v\n007,1.1\n")
    assert counts(diff(tmp_path / "a.csv", tmp_path / "b.csv", key_columns=["id"])) == (False, 1, 1, 0)
    assert counts(diff(tmp_path / "a.csv", tmp_path / "c.csv", key_columns=["id"])) == (True, 0, 0, 0)


def test_a_dump_without_the_stores_key_column_says_the_key_was_dropped(replicas: tuple[Path, Path], tmp_path: Path) -> None:
    """A dump whose key column is named otherwise (`stock_id` for the store's `id`) cannot be
    joined on the store's key: the rows are compared as multisets, and a note says so."""
    a, _ = replicas
    dump = logtool.replay(str(a)).tables()["public.stock"].drop_columns(["key"])
    pq.write_table(dump.rename_columns(["stock_id" if c == "id" else c for c in dump.column_names]),
                   tmp_path / "renamed.parquet")  # fmt: skip
    result = diff(a, tmp_path / "renamed.parquet")
    assert not result.same and result.to_dict()["key_columns"] == []
    assert (result.to_dict()["columns_only_left"], result.to_dict()["columns_only_right"]) == (["id"], ["stock_id"])
    assert [n for n in result.notes if "mapping" in n] == [
        "key columns from the store's mapping (id) are not on both sides (missing: id): "
        "rows compared as multisets; name the key with --key-column"
    ]
    assert not any("mapping" in n for n in diff(a, tmp_path / "renamed.parquet", key_columns=["sku"]).notes)


def test_time_keys_of_text_without_a_type_join_on_their_instant(tmp_path: Path) -> None:
    """A time series keyed by (device, ts): a store's string, a key field taken from the store's
    key, and a CSV field join where both write one instant, however the zone is spelled; other
    texts join on their text alone ('01' is not '1', a date is not its midnight)."""
    rows = [{"device": "d1", "ts": "2024-03-05T11:00:00Z", "v": 1}, {"device": "d1", "ts": "2024-03-05T11:00:00.5Z", "v": 2}]
    events = write_lines(tmp_path / "m.jsonl", [json.dumps({**r, "data": r}) for r in rows])
    kept, derived = tmp_path / "kept", tmp_path / "derived"
    logtool.ingest(kept, [str(events)], mapping=Mapping(key_fields=("device", "ts"), data_field="data", entity="m"))
    bare = write_lines(tmp_path / "bare.jsonl", [json.dumps(r) for r in rows])
    logtool.ingest(derived, [str(bare)], mapping=Mapping(key_fields=("device", "ts"), entity="m"))
    paris = write_lines(tmp_path / "paris.csv", ["device,ts,v", "d1,2024-03-05 12:00:00+01,1", "d1,2024-03-05 12:00:00.500+01,2"])
    utc = write_lines(tmp_path / "utc.csv", ["device,ts,v", "d1,2024-03-05 11:00:00+00,1", "d1,2024-03-05 11:00:00.5+00,2"])
    for store in (kept, derived):
        for dump in (paris, utc):
            assert diff(store, dump).same  # the store's mapping names the key
            assert diff(store, dump, key_columns=["device", "ts"]).same
    assert diff(paris, utc, key_columns=["device", "ts"]).same
    later = write_lines(tmp_path / "later.csv", ["device,ts,v", "d1,2024-03-05 12:00:00+01,1", "d1,2024-03-05 12:00:00.501+01,2"])
    assert counts(diff(kept, later)) == (False, 1, 1, 0)
    (tmp_path / "a.csv").write_text("k,v\n01,x\n2024-03-05,x\n2024-03-05 12:00,x\n")
    (tmp_path / "b.csv").write_text("k,v\n1,x\n2024-03-05 00:00:00+00,x\n2024-03-05T12:00:00Z,x\n")
    result = diff(tmp_path / "a.csv", tmp_path / "b.csv", key_columns=["k"])
    assert counts(result) == (False, 2, 2, 0)
    assert sorted(d["key"]["k"] for d in result.examples) == ["01", "1", "2024-03-05", "2024-03-05 00:00:00+00"]
    # two spellings of one instant on one side are one key, repeated (named as written)
    (tmp_path / "c.csv").write_text("k,v\n2024-03-05 12:00:00+01,x\n2024-03-05T11:00:00Z,y\n")
    with pytest.raises(logtool.LogtoolError, match=r"key \(k='2024-03-05 12:00:00\+01'\) occurs 2 times"):
        diff(tmp_path / "c.csv", tmp_path / "b.csv", key_columns=["k"])


def test_the_sql_form_of_an_instant_is_the_python_one() -> None:
    """Keys are joined in SQL (`_lt_instant`), values confirmed in Python (`_text`): one rule,
    wherever DuckDB's own reading of a time text differs from it."""
    import itertools

    times = ["12:34", "12:34:56", "12:34:56.5", "12:34:56.1234567891", "24:00", "24:00:00.0", "24:30", "23:59:60"]
    zones = ["", "Z", "z", "+01", " -01", "+0130", "+01:30", "+00:09:21", "+000921", " Z", "\t+01", "  +01", "+23:59",
             "+23:60", "+24", "+2400", "+01:60", "+23:59:60", "+99"]  # fmt: skip
    days = ["2024-03-05", "2024-02-30", "0000-01-01", "0001-01-01", "9999-12-31"]
    texts = [d + sep + t + z for d, sep, t, z in itertools.product(days, ["T", " ", "t"], times, zones)]
    texts += [" 2024-03-05 12:00+01\n", "2024-03-05", "1", "2024-03-05 12:00 UTC", "x2024-03-05 12:00", None]
    con = D._connect(None)
    con.execute("CREATE TABLE t (x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[x] for x in texts])
    got = dict(con.execute("SELECT x, _lt_instant(x) FROM t").fetchall())
    for x in texts:
        norm = D._text(x) if x is not None else ("z",)
        assert got[x] == (norm[1] * 1000 + norm[2] if norm[0] == "t" else None), x


def test_an_entity_one_store_lacks_is_a_difference_and_one_neither_has_an_error(tmp_path: Path) -> None:
    from logtool.errors import UsageError

    (tmp_path / "a.jsonl").write_text('{"t":"u","id":1}\n{"t":"v","id":1}\n')
    (tmp_path / "b.jsonl").write_text('{"t":"v","id":1}\n')
    a, b = tmp_path / "a", tmp_path / "b"
    for store, log in ((a, "a.jsonl"), (b, "b.jsonl")):
        logtool.ingest(store, [str(tmp_path / log)], mapping=Mapping(key_fields=("id",), entity_field="t"))
    for at in (None, 1):
        result = diff(a, b, entity="u", at_offset=at)
        assert not result.same and (result.state or result).only_left == 1
    with pytest.raises(UsageError, match="neither store has events of it"):
        diff(a, b, entity="w")


def test_a_store_without_the_entity_is_an_empty_side_against_a_dump(tmp_path: Path) -> None:
    """A table purged whole meets the database's dump: every row differs, said as such (exit 1),
    with a note naming the store's entities in case the name was mistyped."""
    (tmp_path / "x.jsonl").write_text('{"id":1,"data":{"v":1}}\n')
    (tmp_path / "t.csv").write_text("id,v\n1,1\n2,2\n")
    store = tmp_path / "X"
    logtool.ingest(store, [str(tmp_path / "x.jsonl")], mapping=Mapping(key_fields=("id",), data_field="data", entity="x"))
    for entity in ("t", "x"):
        if entity == "x":
            logtool.purge(store, entity="x")  # the whole table erased
        result = diff(store, tmp_path / "t.csv", entity=entity, key_columns=["id"])
        assert not result.same and (result.only_left, result.only_right) == (0, 2)
        assert any(f"holds no events of entity {entity!r}: compared as an empty side" in n for n in result.notes)


def test_cli_csv_tells_a_json_null_from_a_missing_field(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id":1,"a":1}\n')
    (tmp_path / "b.jsonl").write_text('{"id":1,"a":1,"b":null}\n')
    for name in ("a", "b"):
        logtool.ingest(tmp_path / name, [str(tmp_path / f"{name}.jsonl")], mapping=Mapping(key_fields=("id",), entity="t"))
    r = cli("diff", tmp_path / "a", tmp_path / "b", "--at-offset", "0", "--format", "csv")
    assert r.code == 1 and r.out.splitlines()[1].endswith(",b,,null")


def test_a_store_equals_its_own_typed_export_when_the_key_field_is_not_in_the_rows(tmp_path: Path) -> None:
    """--data-field data without the id in it: the export's key column is `key`, as the store's."""
    from logtool.replay import export_state

    log = tmp_path / "ex.jsonl"
    log.write_text('{"table":"t","op":"insert","id":1,"data":{"a":1}}\n{"table":"t","op":"insert","id":2,"data":{"a":2.5}}\n')
    store = tmp_path / "s"
    logtool.ingest(store, [str(log)], mapping=Mapping(key_fields=("id",), entity_field="table", op_field="op",
                                                      data_field="data"))  # fmt: skip
    (exported,) = export_state(logtool.replay(str(store)), tmp_path / "out", "parquet")
    result = diff(store, exported, entity="t")
    assert result.same and result.info["key_columns"] == ["key"] and not result.info["columns_only_left"]
    assert diff(store, exported, entity="t", key_columns=("key",)).same


def test_cli_csv_of_keyless_tables(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n1\n")
    (tmp_path / "b.csv").write_text("a\n1\n")
    r = cli("diff", tmp_path / "a.csv", tmp_path / "b.csv", "--format", "csv")
    assert r.code == 1 and r.out.splitlines() == ["scope,change,where,field,left,right", 'table,only_left,,,"{""a"":""1""}",']
    # a row's surplus count goes in `where`: the values stay JSON
    (tmp_path / "c.csv").write_text("a\n1\n1\n1\n")
    r = cli("diff", tmp_path / "c.csv", tmp_path / "b.csv", "--format", "csv")
    assert r.out.splitlines()[1:] == ['table,only_left,2 rows,,"{""a"":""1""}",']
    same = cli("diff", tmp_path / "b.csv", tmp_path / "b.csv", "--format", "csv")
    assert same.code == 0 and same.out.splitlines() == ["scope,change,where,field,left,right"]


def test_cli_csv_of_keyless_rows_of_a_state_keeps_their_entity_and_count(cli: Cli, tmp_path: Path) -> None:
    """A keyless row of a state is named by its entity, then how many times it is surplus."""
    for name, n in (("a", 3), ("b", 1)):
        (tmp_path / f"{name}.jsonl").write_text('{"op":"insert","x":"a"}\n' * n)
        logtool.ingest(tmp_path / name, [str(tmp_path / f"{name}.jsonl")], mapping=Mapping(entity="nk", op_field="op"))
    r = cli("diff", tmp_path / "a", tmp_path / "b", "--at-offset", "2", "--format", "csv")
    assert r.code == 1 and r.out.splitlines()[1:] == ['state,only_left,"""nk"", 2 rows",,"{""x"":""a""}",']
    (tmp_path / "c.jsonl").write_text('{"op":"insert","x":"a"}\n' * 2)
    logtool.ingest(tmp_path / "c", [str(tmp_path / "c.jsonl")], mapping=Mapping(entity="nk", op_field="op"))
    r = cli("diff", tmp_path / "c", tmp_path / "b", "--at-offset", "2", "--format", "csv")
    assert r.out.splitlines()[1:] == ['state,only_left,"""nk""",,"{""x"":""a""}",']


def test_a_stores_time_strings_against_a_postgresql_csv_dump_are_instants(tmp_path: Path) -> None:
    # JSON has no instant type: the store's string meets COPY's text as the same instant
    store = _store(tmp_path, "s", [
        {"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 1, "data": {"id": 1, "at": "2026-03-01T12:00:00Z"}},
        {"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 2, "data": {"id": 2, "at": "2026-03-01T12:00:00Z"}},
    ])  # fmt: skip
    dump = tmp_path / "t.csv"
    dump.write_text("id,at\n1,2026-03-01 13:00:00+01\n2,2026-03-01 12:00:01+00\n")
    result = logtool.diff(store, dump, key_columns=["id"])
    assert counts(result) == (False, 0, 0, 1) and result.examples[0]["key"] == {"id": 2}
    # ...and only instants: a string's text still has to match (a lost leading zero is a difference)
    texts = _store(tmp_path, "texts", [
        {"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 1,
         "data": {"id": 1, "code": "010", "s": "1.0", "d": "2026-03-01"}},
    ])  # fmt: skip
    dump.write_text("id,code,s,d\n1,10,1,2026-03-01 00:00:00+00\n")
    changed = logtool.diff(texts, dump, key_columns=["id"]).examples[0]["fields"]
    assert [f["field"] for f in changed] == ["code", "s", "d"]


def test_postgresql_arrays_in_a_csv_dump_meet_json_arrays(tmp_path: Path) -> None:
    # COPY ... CSV writes text[] and int[] as {vip,"x y"} and {1,2}: the same values as JSON's arrays
    store = _store(tmp_path, "s", [
        {"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 1,
         "data": {"id": 1, "tags": ["vip", "x y", None], "nums": [1, 2], "grid": [[1, 2], [3, 4]], "flags": [True]}},
    ])  # fmt: skip
    dump = tmp_path / "t.csv"
    dump.write_text('id,tags,nums,grid,flags\n1,"{vip,""x y"",NULL}","{1,2}","{{1,2},{3,4}}",{t}\n')
    assert logtool.diff(store, dump, key_columns=["id"]).same
    empty = _store(tmp_path, "empty", [{"ts": "2026-03-01T12:00:00Z", "table": "t", "op": "insert", "id": 1,
                                         "data": {"id": 1, "tags": [], "doc": {}}}])  # fmt: skip
    (tmp_path / "e.csv").write_text("id,tags,doc\n1,{},{}\n")
    assert logtool.diff(empty, tmp_path / "e.csv", key_columns=["id"]).same  # `{}`: an empty array, or object
    dump.write_text('id,tags,nums,grid,flags\n1,"{vip,""x z"",NULL}","{1,3}","{{1,2},{3,4}}",{f}\n')
    result = logtool.diff(store, dump, key_columns=["id"])
    assert [f["field"] for f in result.examples[0]["fields"]] == ["tags", "nums", "flags"]


def test_lists_of_timestamps_and_of_decimals_are_compared_element_by_element(tmp_path: Path) -> None:
    """A Parquet list is a list whatever its elements: a list of timestamps is its instants (a
    store's date-time strings and PostgreSQL's array text meet it as the same instants), a list of
    decimals its numbers (PostgreSQL's `{1.50,2.00}` in CSV meets it as it meets a list of doubles)."""
    noon = dt.datetime(2024, 3, 5, 12, 0, tzinfo=dt.UTC)

    def dump(name: str, column: str, values: list[Any], kind: pa.DataType) -> Path:
        pq.write_table(pa.table({"id": [1], column: pa.array([values], pa.list_(kind))}), tmp_path / name)
        return tmp_path / name

    seen = dump("seen.parquet", "seen", [noon], pa.timestamp("us", tz="UTC"))
    copy = dump("copy.parquet", "seen", [noon], pa.timestamp("us", tz="UTC"))
    for keys in (["id"], []):
        assert counts(diff(seen, copy, key_columns=keys)) == (True, 0, 0, 0)
    later = dump("later.parquet", "seen", [noon + dt.timedelta(microseconds=1)], pa.timestamp("us", tz="UTC"))
    assert counts(diff(seen, later, key_columns=["id"])) == (False, 0, 0, 1)
    naive = dump("naive.parquet", "seen", [noon.replace(tzinfo=None)], pa.timestamp("us"))
    assert diff(seen, naive, key_columns=["id"]).same  # as a TIMESTAMP column against a TIMESTAMPTZ one
    store = _store(tmp_path, "s", [{"ts": "2024-03-05T12:00:00Z", "table": "t", "op": "insert", "id": 1,
                                    "data": {"id": 1, "seen": ["2024-03-05T12:00:00"]}}])  # fmt: skip
    assert diff(store, seen, key_columns=["id"]).same
    assert counts(diff(store, later, key_columns=["id"])) == (False, 0, 0, 1)
    (tmp_path / "seen.csv").write_text('id,seen\n1,"{""2024-03-05 13:00:00+01""}"\n')
    for keys in (["id"], []):
        assert diff(tmp_path / "seen.csv", seen, key_columns=keys).same
    amounts = dump("dec.parquet", "amounts", [Decimal("1.50"), Decimal("2.00")], pa.decimal128(10, 2))
    doubles = dump("dbl.parquet", "amounts", [1.5, 2.0], pa.float64())
    (tmp_path / "a.csv").write_text('id,amounts\n1,"{1.50,2.00}"\n')
    for other in (tmp_path / "a.csv", doubles, dump("dec2.parquet", "amounts", [Decimal("1.5"), Decimal("2")],
                                                     pa.decimal128(12, 1))):  # fmt: skip
        assert diff(amounts, other, key_columns=["id"]).same
    (tmp_path / "b.csv").write_text('id,amounts\n1,"{1.50,2.01}"\n')
    assert counts(diff(amounts, tmp_path / "b.csv", key_columns=["id"])) == (False, 0, 0, 1)


def test_a_csv_dump_with_a_row_of_another_width_or_no_header_is_named_with_its_line(cli: Cli, tmp_path: Path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("id,v\n1,a\n2,b\n")
    wide = tmp_path / "wide.csv"
    wide.write_text("id,v\n1,a,extra\n2,b\n")
    r = cli("diff", wide, good, "--key-column", "id")
    assert r.code == 2 and r.errors() == [f"error: {wide}:2: expected 2 fields, found 3"]
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    r = cli("diff", empty, good, "--key-column", "id")
    assert r.code == 2 and r.errors() == [f"error: {empty}:1: the file is empty: no header names its columns"]


def test_a_csv_dump_not_in_utf8_is_named_as_such_with_its_line(cli: Cli, tmp_path: Path) -> None:
    """A Latin-1 dump is not a row of another width: the file and line are named, not UTF-8."""
    good = tmp_path / "good.csv"
    good.write_text("id,v\n1,a\n2,b\n")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,v\n1,a\n2,café\n".encode("latin-1"))
    r = cli("diff", latin, good, "--key-column", "id")
    assert r.code == 2 and r.errors() == [f"error: {latin}:3: not UTF-8: the line holds a byte sequence UTF-8 does not have"]
    assert "iconv" in r.err
    header = tmp_path / "header.csv"
    header.write_bytes("id,café\n1,a\n".encode("latin-1"))
    r = cli("diff", header, good, "--key-column", "id")
    assert r.code == 2 and r.errors() == [f"error: {header}:1: invalid UTF-8 in the name of column 2"]


def test_logs_that_differ_only_in_order_list_the_divergence(cli: Cli, tmp_path: Path) -> None:
    events = _events()[:10]
    a = _store(tmp_path, "a", events)
    b = _store(tmp_path, "b", events[:3] + [events[4], events[3]] + events[5:])
    result = logtool.diff(a, b)
    assert (result.same, result.first_divergent_offset, counts(result)[1:]) == (False, 3, (0, 0, 0))
    (only,) = list(result.differences())
    assert only["change"] == "reordered" and only["offset"] == 3
    assert only["left"]["offset"] == only["right"]["offset"] == 3 and only["left"]["key"] != only["right"]["key"]
    r = cli("diff", a, b, "--format", "jsonl")
    assert r.code == 1 and [json.loads(line)["change"] for line in r.out.splitlines()] == ["reordered"]
    r = cli("diff", a, b, "--format", "csv")
    assert r.out.splitlines()[1].startswith("log,reordered,offset 3,,")


# --------------------------------------------------------------------------- CLI


def test_cli_exit_codes(cli: Cli, replicas: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = replicas
    assert cli("diff", a, a, "--format", "json").code == 0
    r = cli("diff", a, b, "--format", "json")
    assert r.code == 1
    assert "first divergent offset 73" in r.err
    missing = cli("diff", a, tmp_path / "nope")
    assert (missing.code, missing.out) == (2, "")
    assert missing.errors() == [f"error: {tmp_path / 'nope'}: no such store or file"]
    assert cli("diff", a, b, "--bogus").code == 2  # typer's own usage errors
    assert cli("diff", a).code == 2
    assert cli("diff", a, b, "--by", "position").code == 2  # no source positions in these logs
    assert cli("diff", a, b, "--float-tolerance", "lots").code == 2
    both = cli("diff", a, b, "--at-offset", "3", "--at-time", "2026-03-01T00:00:00Z")
    assert (both.code, both.errors()) == (2, ["error: give at most one of --at-offset, --at-time, --at-position"])
    huge = cli("diff", a, b, "--limit", "99999999999999999999", "--format", "json")  # past any index: all
    assert huge.code == 1 and "internal" not in huge.err


def test_cli_verdict_names_columns_on_one_side_only(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_text("id,a,b\n1,x,1\n")
    (tmp_path / "r.csv").write_text("id,a\n1,x\n")
    r = cli("diff", tmp_path / "l.csv", tmp_path / "r.csv", "--key-column", "id", "--format", "jsonl")
    assert r.code == 1 and r.out == ""
    assert "different: 0 only left, 0 only right, 0 changed; columns only left: b" in r.err


def test_cli_a_crash_is_trouble_not_different(
    cli: Cli, replicas: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(*args: Any, **kwargs: Any) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(logtool, "diff", crash)
    r = cli("diff", *replicas)
    assert r.code == 2
    assert r.errors() == ["error: internal error: ZeroDivisionError: boom"]


def test_cli_golden_json_for_two_dumps(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_lines(tmp_path / "left.csv", [
        "region,id,name,balance,seen",
        "eu,1,Ada,1.10,2026-03-01T14:00:00+02:00",
        'eu,2,"",0.5,',
        "us,1,Bo,7,2026-03-01T12:00:00Z",
    ])  # fmt: skip
    right = table({
        "region": (pa.string(), ["eu", "eu", "us"]),
        "id": (pa.int64(), [1, 2, 2]),
        "name": (pa.string(), ["Ada", None, "Cy"]),
        "balance": (pa.decimal128(5, 2), [Decimal("1.10"), Decimal("0.50"), Decimal("1.00")]),
        "seen": (pa.timestamp("us", tz="UTC"), [dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC), None, None]),
    })  # fmt: skip
    pq.write_table(right, tmp_path / "right.parquet")
    r = cli("diff", "left.csv", "right.parquet", "--key-column", "region", "-k", "id", "--format", "json")
    assert r.code == 1
    assert json.loads(r.out) == {
        "same": False, "mode": "table", "left": "left.csv", "right": "right.parquet",
        "first_divergent_offset": None, "only_left": 1, "only_right": 1, "changed": 1,
        "key_columns": ["region", "id"], "columns_only_left": [], "columns_only_right": [],
        "examples": [
            {"scope": "table", "change": "changed", "key": {"region": "eu", "id": "2"},
             "fields": [{"field": "name", "left": "", "right": None}]},
            {"scope": "table", "change": "only_left", "key": {"region": "us", "id": "1"},
             "row": {"region": "us", "id": "1", "name": "Bo", "balance": "7", "seen": "2026-03-01T12:00:00Z"}},
            {"scope": "table", "change": "only_right", "key": {"region": "us", "id": 2},
             "row": {"region": "us", "id": 2, "name": "Cy", "balance": 1.00, "seen": None}},
        ],
    }  # fmt: skip
    assert r.out.count("\n") == 1  # one object
    lines = cli("diff", "left.csv", "right.parquet", "-k", "region", "-k", "id", "--format", "jsonl").lines()
    assert [json.loads(line)["change"] for line in lines] == ["changed", "only_left", "only_right"]
    assert cli("diff", "left.csv", "left.csv", "-k", "region", "-k", "id", "-f", "json").code == 0


def test_cli_golden_json_for_two_logs(cli: Cli, logs: dict[str, Path]) -> None:
    r = cli("diff", logs["a"], logs["b"], "--limit", "1", "--format", "json")
    assert r.code == 1
    out = json.loads(r.out)
    for side in ("left_event", "right_event"):
        assert out[side].pop("source")["line"] == 18
    assert out["examples"][0]["left"].pop("source")["file"].endswith("a.jsonl")
    assert out["examples"][0]["right"].pop("source")["file"].endswith("b.jsonl")
    event = {"offset": 17, "ts": "2026-03-01T10:00:17Z", "entity": "public.stock", "key": "3", "op": "patch"}
    assert {k: v for k, v in out.items() if k != "state"} == {
        "same": False, "mode": "log", "left": str(logs["a"]), "right": str(logs["b"]),
        "first_divergent_offset": 17, "only_left": 1, "only_right": 1, "changed": 1, "by": "offset",
        "segments": {"left": 5, "right": 5, "shared": 0, "read_left": 5, "read_right": 5},
        "left_event": {**event, "data": {"qty": 17}}, "right_event": {**event, "data": {"qty": 999}},
        "examples": [{"scope": "log", "change": "changed", "left": {**event, "data": {"qty": 17}},
                      "right": {**event, "data": {"qty": 999}},
                      "fields": [{"field": "data", "left": {"qty": 17}, "right": {"qty": 999}}]}],
    }  # fmt: skip
    # at the head the changed and the missing patch were overwritten by later ones; key 50 stays extra
    assert {k: out["state"][k] for k in ("same", "mode", "only_left", "only_right", "changed")} == {
        "same": False, "mode": "state", "only_left": 0, "only_right": 1, "changed": 0,
    }  # fmt: skip


def test_cli_table_and_csv_outputs(cli: Cli, logs: dict[str, Path]) -> None:
    r = cli("diff", logs["a"], logs["b"], "--format", "table")
    assert r.code == 1
    assert "first_divergent_offset" in r.out and "offset 17" in r.out
    rows = cli("diff", logs["a"], logs["b"], "--format", "csv").lines()
    assert rows[0] == "scope,change,where,field,left,right"
    assert rows[1] == 'log,changed,offset 17,data,"{""qty"":17}","{""qty"":999}"'
