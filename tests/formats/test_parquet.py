"""The Parquet reader on generic tables: NaN and infinities wherever a float is, exact decimals in
every nested type (the reader's CLI behaviour is tested with the other readers in test_readers)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logtool.formats.base import Mapping, object_members
from logtool.formats.parquet import FORMAT

BY_ID = Mapping(key_fields=("id",))
SPECIALS = {"nan": float("nan"), "inf": float("inf"), "ninf": float("-inf")}
SPELLED = {"nan": '"NaN"', "inf": '"Infinity"', "ninf": '"-Infinity"'}

# How each shape holds one float, and how that value is written (its JSON text in place of {}).
SHAPES: dict[str, tuple[Any, Any, str]] = {
    "top": (lambda t: t, lambda v: v, "{}"),
    "list": (pa.list_, lambda v: [v], "[{}]"),
    "struct": (lambda t: pa.struct([("v", t)]), lambda v: {"v": v}, '{{"v":{}}}'),
    "map": (lambda t: pa.map_(pa.string(), t), lambda v: [("k", v)], '{{"k":{}}}'),
}


def _data(read_events: Any, path: Path) -> list[str]:
    rows, bad = read_events(FORMAT, path, BY_ID)
    assert bad == []
    return [r["data"] for r in rows]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("float_type", [pa.float32(), pa.float64()], ids=["float32", "float64"])
@pytest.mark.parametrize("statistics", [True, False], ids=["statistics", "no-statistics"])
def test_nan_and_infinities_are_strings_whatever_the_statistics_say(
    read_events: Any, tmp_path: Path, shape: str, float_type: pa.DataType, statistics: bool
) -> None:
    """pyarrow leaves NaN out of a column's min and max; DuckDB took two different finite values
    there to mean no row is NaN, and wrote the NaN as a bare NaN (not JSON): the row was refused."""
    wrap_type, wrap, text = SHAPES[shape]
    f = tmp_path / "specials.parquet"
    pq.write_table(pa.table({
        "id": [1, 2, 3],
        **{name: pa.array([wrap(0.5), wrap(1.5), wrap(v)], wrap_type(float_type)) for name, v in SPECIALS.items()},
    }), f, write_statistics=statistics)  # fmt: skip
    plain = ",".join(f'"{name}":{text.format(0.5)}' for name in SPECIALS)
    special = ",".join(f'"{name}":{text.format(SPELLED[name])}' for name in SPECIALS)
    assert _data(read_events, f) == ["{" + plain + "}", "{" + plain.replace("0.5", "1.5") + "}", "{" + special + "}"]


def test_map_of_decimals_is_exact(read_events: Any, tmp_path: Path) -> None:
    """A map of decimals was written through float64 (123456789012345678.91 became
    123456789012345680.0, 1.10 became 1.1); now as exactly as a list of the same decimals."""
    big, small = Decimal("123456789012345678.91"), Decimal("1.10")
    f = tmp_path / "mapdec.parquet"
    pq.write_table(pa.table({
        "id": [1, 2],
        "by_ccy": pa.array([[("eur", big), ("usd", small)], [("x", None)]], pa.map_(pa.string(), pa.decimal128(20, 2))),
        "as_list": pa.array([[big, small], [None]], pa.list_(pa.decimal128(20, 2))),
        "nested": pa.array([[[("a", Decimal("0.000"))]], None], pa.list_(pa.map_(pa.string(), pa.decimal128(38, 3)))),
    }), f)  # fmt: skip
    assert _data(read_events, f) == [
        '{"by_ccy":{"eur":123456789012345678.91,"usd":1.10},"as_list":[123456789012345678.91,1.10],'
        '"nested":[{"a":0.000}]}',
        '{"by_ccy":{"x":null},"as_list":[null],"nested":null}',
    ]


@pytest.mark.parametrize(("precision", "scale"), [(1, 1), (9, 2), (12, 8), (15, 0), (16, 8), (38, 38)])
def test_decimals_of_every_precision_keep_their_text(
    read_events: Any, tmp_path: Path, precision: int, scale: int
) -> None:
    """DuckDB writes a decimal of up to 15 digits through float64 (1.50000000 became 1.5,
    0.00000001 became 1e-8): every decimal is now its digits with the column's scale, as JSON lines
    gives them, top-level and in lists, structs and maps alike."""
    values = [Decimal(1).scaleb(-scale), Decimal(-5).scaleb(-scale) if scale else Decimal(-5), None]
    f = tmp_path / "dec.parquet"
    typ = pa.decimal128(precision, scale)
    pq.write_table(pa.table({
        "id": [1, 2, 3], **{name: pa.array([wrap(v) for v in values], wrap_type(typ)) for name, (wrap_type, wrap, _) in SHAPES.items()},
    }), f)  # fmt: skip
    texts = [format(v, "f") if v is not None else "null" for v in values]
    assert texts[0] == ("0." + "0" * (scale - 1) + "1" if scale else "1")
    assert _data(read_events, f) == [
        "{" + ",".join(f'"{name}":{text.format(t)}' for name, (_, _, text) in SHAPES.items()) + "}" for t in texts
    ]


def test_structs_duckdb_cannot_name_keep_exact_decimals_and_floats(read_events: Any, tmp_path: Path) -> None:
    """A struct holding a float under an empty member name or case-twin names is written in Python:
    its decimals are exact there too, and its floats are written as DuckDB writes a float column."""
    big = Decimal("123456789012345678.91")
    floats = [0.1, 1e20, 1e-7, 2.0, 123456789012345678.0]
    f = tmp_path / "structs.parquet"
    pq.write_table(pa.table({
        "id": [1],
        "empty": pa.array([{"": 0.1, "d": big}], pa.struct([("", pa.float64()), ("d", pa.decimal128(20, 2))])),
        "twins": pa.array([{"A": Decimal("1.10"), "a": floats}],
                          pa.struct([("A", pa.decimal128(5, 2)), ("a", pa.list_(pa.float64()))])),
        "twins32": pa.array([{"A": 0.1, "a": floats}], pa.struct([("A", pa.float32()), ("a", pa.list_(pa.float32()))])),
        "f64": pa.array([floats], pa.list_(pa.float64())),
        "f32": pa.array([floats], pa.list_(pa.float32())),
    }), f)  # fmt: skip
    [data] = _data(read_events, f)
    assert data.startswith('{"empty":{"":0.1,"d":123456789012345678.91},"twins":{"A":1.10,"a":[')
    written = {name: data[start:end] for name, _at, start, end in object_members(data)}
    assert written["twins"] == '{"A":1.10,"a":' + written["f64"] + "}"  # floats as DuckDB writes a float64 list
    assert written["twins32"] == '{"A":0.10000000149011612,"a":' + written["f32"] + "}"  # and a float32 list


def test_a_damaged_file_is_said_of_the_file(tmp_path: Path) -> None:
    """A page whose bytes were changed: the input file is named, not the store."""
    from logtool.errors import InputError
    from logtool.ingest import ingest

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": list(range(300)), "name": ["x" * 20 + str(i % 7) for i in range(300)]}), path,
                   compression="none")  # fmt: skip
    raw = bytearray(path.read_bytes())
    start = raw.find(b"xxxxxxxxxxxxxxxxxxxx")  # inside the first data page of `name`
    raw[start - 8 : start - 2] = b"\xff" * 6  # its header's sizes
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError) as caught:
        ingest(tmp_path / "s", [str(path)], mapping=Mapping(key_fields=("id",)))
    assert caught.value.reason.startswith("cannot be read as Parquet (") and caught.value.file == str(path)
