"""Typed output: the vectorized DuckDB path and the exact Python path give the same tables."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from logtool import engine
from logtool.formats.base import dumps_exact, loads_exact
from logtool.typed import _typed_in_duckdb, _typed_in_python, typed_tables

_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False).map(lambda d: loads_exact(str(d))),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "", "x", "é ü", "a\"b"]),
)
_value = st.one_of(_scalar, st.lists(_scalar, max_size=3), st.dictionaries(st.sampled_from("pq"), _scalar, max_size=2))
# member names any path syntax must take: spaces, quotes, the empty name, slashes, tildes, dots, backslashes
_row = st.dictionaries(st.sampled_from(["a", "b", "c", "d e", 'q"t', "", "x/y", "m~n", "p.q", "b\\s", "key", "_key"]), _value, max_size=4)


def _state(rows: list[dict[str, Any]]) -> pa.Table:
    con = engine.connect()
    texts = [dumps_exact(r) for r in rows]
    canonical = [con.execute("SELECT json(?)::VARCHAR", [t]).fetchall()[0][0] for t in texts]
    return pa.table({"entity": ["t"] * len(rows), "key": [str(i) for i in range(len(rows))], "state": canonical})


@settings(max_examples=60, deadline=None)
@given(st.lists(_row, min_size=1, max_size=6))
def test_duckdb_and_python_paths_agree(rows: list[dict[str, Any]]) -> None:
    part = _state(rows)
    fast = _typed_in_duckdb(engine.connect(), part)["t"]
    exact = _typed_in_python(part)
    assert fast.schema == exact.schema
    assert fast.to_pylist() == exact.to_pylist() or _same_with_nans(fast, exact)


@settings(max_examples=30, deadline=None)
@given(st.lists(_row, min_size=1, max_size=4), st.lists(_row, min_size=1, max_size=4))
def test_entities_typed_together_are_typed_as_alone(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> None:
    a, b = _state(first), _state(second)
    both = pa.concat_tables([a, b.set_column(0, "entity", pa.array(["u"] * b.num_rows))])
    together = _typed_in_duckdb(engine.connect(), both)
    for name, alone in (("t", _typed_in_duckdb(engine.connect(), a)["t"]), ("u", _typed_in_duckdb(engine.connect(), b)["t"])):
        assert together[name].schema == alone.schema
        assert together[name].to_pylist() == alone.to_pylist() or _same_with_nans(together[name], alone)


def _same_with_nans(a: pa.Table, b: pa.Table) -> bool:
    def norm(v: Any) -> Any:
        return "nan" if isinstance(v, float) and v != v else v

    return [{k: norm(v) for k, v in r.items()} for r in a.to_pylist()] == [
        {k: norm(v) for k, v in r.items()} for r in b.to_pylist()
    ]


def test_long_numbers_are_typed_exactly() -> None:
    state = pa.table({"entity": ["t", "t"], "key": ["1", "2"], "state": ['{"n":123456789012345678901234567.891}', '{"n":1.5}']})
    (table,) = typed_tables(state).values()
    assert str(table.schema.field("n").type) == "decimal128(30, 3)"
    assert str(table.column("n")[0].as_py()) == "123456789012345678901234567.891"


def test_a_row_column_named_key_keeps_the_store_key_apart() -> None:
    state = pa.table({"entity": ["t", "t"], "key": ["1", "2"], "state": ['{"key":"inner","v":1}', '{"_key":"x","v":2}']})
    (table,) = typed_tables(state).values()
    assert table.column_names == ["__key", "key", "v", "_key"]
    assert table.to_pylist()[0] == {"__key": "1", "key": "inner", "v": 1, "_key": None}
    (python,) = [_typed_in_python(state)]
    assert python.column_names == table.column_names


def test_integers_beyond_int64_are_decimal_38_0_whatever_their_digits() -> None:
    state = pa.table({"entity": ["t", "t"], "key": ["1", "2"], "state": ['{"n":12345678901234567890}', '{"n":1}']})
    (table,) = typed_tables(state).values()
    assert str(table.schema.field("n").type) == "decimal128(38, 0)"
    assert str(_typed_in_python(state).schema.field("n").type) == "decimal128(38, 0)"


def test_states_that_are_not_objects_go_in_a_value_column() -> None:
    # a reducer's counts; an entity whose rows are objects, a number and a list
    counts = pa.table({"entity": ["c", "c"], "key": ["u1", "u2"], "state": ["1", "2"]})
    (table,) = typed_tables(counts).values()
    assert table.to_pylist() == [{"key": "u1", "value": 1}, {"key": "u2", "value": 2}]
    mixed = pa.table({"entity": ["e"] * 3, "key": ["1", "2", "3"], "state": ['{"name":"zzz"}', "5", "[1,2]"]})
    (table,) = typed_tables(mixed).values()
    assert table.column_names == ["key", "name", "value"]
    assert table.to_pylist() == [
        {"key": "1", "name": "zzz", "value": None},
        {"key": "2", "name": None, "value": "5"},
        {"key": "3", "name": None, "value": "[1,2]"},
    ]
    for state in (counts, mixed):
        assert _typed_in_python(state).to_pylist() == typed_tables(state)[state.column("entity")[0].as_py()].to_pylist()
