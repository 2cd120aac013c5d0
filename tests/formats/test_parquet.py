"""The Parquet reader on generic tables: NaN and infinities wherever a float is (the reader's CLI
behaviour is tested with the other readers in test_readers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from logtool.formats.base import Mapping
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

