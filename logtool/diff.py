"""Diff: where two replicas differ, and how.

What is compared depends on what LEFT and RIGHT are:

- **Two stores** are two logs: events aligned by offset (or by source position), the **first
  divergent offset** with the two events there, then the events after it that are only on the left
  (missing from the right), only on the right (extra) and changed. Then, when replay is available,
  the two states at the head. A target (``at_offset``, ``at_time`` or ``at_position``) compares
  the two states there instead: a position or a time, for replicas captured separately from one
  source, whose offsets differ.
- **A store and a table dump** (Parquet or CSV): the store's entity, replayed, against the dump.
- **Two dumps**: table against table.

Tables are compared on key columns (keys only on the left, only on the right, and changed, with
each differing field and both values) in one DuckDB FULL OUTER JOIN; without key columns they are
compared as multisets of rows.

Values are compared exactly: NULL, the empty string and the text ``<null>`` are three values;
composite keys are joined column by column (never concatenated); decimals are compared as decimals
(``1.10`` equals ``1.1``, nothing passes through float64); floats are equal only when equal, unless
a tolerance is given (a number equals a float32 only where it is that float32 as written: its
shortest digits, its double's, or its exact value); timestamps are compared as instants; JSON is
compared as values (key order ignored, numbers by value, strings that write one instant equal). A CSV field has no type: it is read as
text and compared as the other side's type (a number, an instant, a boolean, JSON); against
another CSV field it is equal when the texts are equal, or both are numbers of equal value, or
both are dates/times of the same instant, or both are equal JSON objects or arrays.

Two events are the same when their content is: every column but ``offset`` (the alignment),
``source`` (where each replica read it) and the integrity columns (salts are per event and per
store). A log comparison is therefore decided without reading any segment whose digest both stores
share (one is a copy of the other); the rest is compared with an unsalted content hash computed in
DuckDB, and only the first window of offsets whose hashes differ is compared row by row.
"""

from __future__ import annotations

import itertools
import math
import re
import struct
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import sql_ident, sql_string
from .errors import InputError, UsageError, counted, engine_trouble
from .formats.base import RawJSON, RawNumber, dumps_exact, loads_exact, parse_ts
from .formats.wal2json import UNNAMED
from .store import reads_latest

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from .store import Store

#: One difference, as `--format jsonl` prints it.
Difference = dict[str, Any]

#: Offsets per window of the log comparison: the unit that is compared row by row.
WINDOW = 1 << 16
BY = ("offset", "position")


@dataclass(frozen=True)
class _At:
    """Where a store's state is replayed to: one of an offset, a time or a source position."""

    offset: int | None = None
    time: str | None = None
    position: str | None = None

    def replay_args(self) -> dict[str, Any]:
        return {"at_offset": self.offset, "at_time": self.time, "at_position": self.position}

    def info(self) -> dict[str, Any]:
        """The target, as a result's ``info`` says it (``at_offset`` always: null at the head)."""
        out: dict[str, Any] = {"at_offset": self.offset}
        out |= {k: v for k, v in (("at_time", self.time), ("at_position", self.position)) if v is not None}
        return out

    @property
    def given(self) -> bool:
        return self != _HEAD

    @property
    def label(self) -> str:
        return next((f"@{v}" for v in (self.offset, self.time, self.position) if v is not None), "")


_HEAD = _At()


@dataclass
class DiffResult:
    """What differs between LEFT and RIGHT.

    ``mode`` is ``log`` (two stores), ``state`` (two replayed states) or ``table`` (a store's
    entity or a dump against a dump). For a log, ``only_left`` counts the events missing from the
    right, ``only_right`` the extra ones and ``changed`` the events present on both sides with
    other content; for a state or table they count keys (rows, for a keyless table).
    ``examples`` holds the first ``limit`` differences; ``differences()`` yields them all.
    """

    left: str
    right: str
    mode: str
    same: bool = True
    first_divergent_offset: int | None = None
    only_left: int = 0
    only_right: int = 0
    changed: int = 0
    examples: list[Difference] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    state: DiffResult | None = None  # two stores: the states at the head
    notes: list[str] = field(default_factory=list)
    _listing: Callable[[], Iterator[Difference]] | None = field(default=None, repr=False)

    def differences(self) -> Iterator[Difference]:
        """Every difference, in order (a log's events first, then the head state's keys)."""
        if self._listing is not None:
            yield from self._listing()
        if self.state is not None:
            yield from self.state.differences()

    def to_dict(self) -> dict[str, Any]:
        """The result as one JSON-ready object (what `--format json` prints)."""
        out: dict[str, Any] = {
            "same": self.same,
            "mode": self.mode,
            "left": self.left,
            "right": self.right,
            "first_divergent_offset": self.first_divergent_offset,
            "only_left": self.only_left,
            "only_right": self.only_right,
            "changed": self.changed,
            **self.info,
            "examples": self.examples,
        }
        if self.mode == "log":
            out["state"] = self.state.to_dict() if self.state is not None else None
        if self.notes:
            out["notes"] = self.notes
        return out


# --------------------------------------------------------------------------- values
#
# A value is normalized into a small tagged tuple, so that equal values have equal tuples and
# a tuple's repr() is a canonical text: ("z",) null, ("s", text), ("n", "<digits>e<exp>") an exact
# number with trailing zeros stripped, ("f", repr) a float, ("t", epoch µs, ns past them) an
# instant (a JSON string too, where it writes one), ("b", bool), ("l", items), ("o", sorted (key,
# value) pairs).
#
# A side's value reaches Python as text, with a mode saying what the text is: "j" JSON text,
# "n" an integer or decimal, "f" a float, "d" an instant, "b" a boolean, "t" text without a type
# (read as the comparison's domain says: a number, an instant, JSON...).

Norm = tuple[Any, ...]

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
# A date, and a time of day with an offset or without (to the second too: PostgreSQL writes a
# zone's local mean time so, Paris's +00:09:21 before 1911). ASCII only, as DuckDB's expressions read it.
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_CLOCK = r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?([Zz]| ?[+-][0-9]{2}(:[0-9]{2}(:[0-9]{2})?|[0-9]{2}([0-9]{2})?)?)?"
_DATETIME = re.compile(f"{_DATE}({_CLOCK})?")
_BLANKS = " \t\r\n"  # around a date-time
_TIME_OF_DAY = re.compile(r"\d[T ]\d{2}:\d{2}")
_TRUE = frozenset({"t", "true", "1"})
_FALSE = frozenset({"f", "false", "0"})


def _number(text: str) -> Norm | None:
    if not _NUMBER.fullmatch(text):
        return None
    sign, digits, exponent = Decimal(text).as_tuple()
    assert isinstance(exponent, int)
    kept = list(digits)
    while len(kept) > 1 and kept[-1] == 0:
        kept.pop()
        exponent += 1
    if kept == [0]:
        return ("n", "0e0")
    return ("n", f"{'-' if sign else ''}{''.join(map(str, kept))}e{exponent}")


def _float(text: str) -> Norm | None:
    word = text.strip().lower().lstrip("+")
    if word in ("nan", "-nan"):
        return ("f", "nan")
    if word in ("inf", "infinity", "-inf", "-infinity"):
        return ("f", "-inf" if word.startswith("-") else "inf")
    if not _NUMBER.fullmatch(text):
        return None
    value = float(text)
    return ("f", repr(value if value != 0 else 0.0))


def _round32(text: str) -> float:
    """A number's float32 (PostgreSQL's `real`), rounded once from its text (OverflowError past
    the float32 range)."""
    x = float(text)
    f: float = struct.unpack("<f", struct.pack("<f", x))[0]
    # the text reached a double first: where that double lies halfway between two float32s, the
    # text itself says which one is nearer (a tie broken twice would pick the even one wrongly)
    other = 2 * x - f
    if other != f and struct.unpack("<f", struct.pack("<f", other))[0] == other:
        exact, mid = Decimal(text), Decimal(x)
        f = max(f, other) if exact > mid else min(f, other) if exact < mid else f
    return f


def _shortest32(f: float) -> str:
    """A float32's shortest digits, as PostgreSQL writes a real (1.1, 1.0737418e+09): the fewest
    digits (1 to 9) that read back as it, the nearest such (at a power of two, whose float32 below
    is nearer than the one above, the nearest may miss where the next one up reads back). The SQL
    macro ``_lt_f32s`` is the same rule."""
    def reads_back(text: str) -> bool:
        try:
            return _round32(text) == f
        except OverflowError:  # a shorter text of the largest reals can round past the range
            return False

    for n in range(9):
        text = f"{f:.{n}e}"
        if reads_back(text):
            return text
        if abs(math.frexp(f)[0]) == 0.5:
            digits, exponent = text.split("e")
            up = f"{Decimal(digits) + Decimal((0, (1,), -n)).copy_sign(Decimal(digits)):.{n}f}e{exponent}"
            if reads_back(up):
                return up
    return f"{f:.8e}"


def _float32(text: str) -> Norm | None:
    """A number against a float32: the norm of that float32's double where the number is the
    float32 as written (its shortest digits, its double's shortest digits, or its exact value:
    1.1, 1.100000023841858, 0.5), else the number itself, which equals no float32 (16777217 is
    not the float32 16777216, nor 1e-50 the float32 0)."""
    norm = _float(text)
    if norm is None or norm[1] == "nan":
        return norm
    if norm[1] in ("inf", "-inf"):  # an infinity as written; a number past the double's range is not one
        return norm if not _NUMBER.fullmatch(text) else _number(text)
    try:
        f = _round32(text)
    except OverflowError:
        return _number(text)
    value = Decimal(text)
    if value == Decimal(f) or value == Decimal(repr(f)) or value == Decimal(_shortest32(f)):
        return ("f", repr(f if f != 0 else 0.0))
    return _number(text)


def _instant(text: str) -> Norm | None:
    """An instant to the nanosecond: its microseconds, and the digits of a fraction past them."""
    if not _DATETIME.fullmatch(text.strip(_BLANKS)):
        return None
    try:
        micros = parse_ts(text)
    except ValueError:
        return None
    fraction = re.search(r"\.([0-9]+)", text)
    beyond = int((fraction.group(1)[6:9] + "000")[:3]) if fraction and len(fraction.group(1)) > 6 else 0
    return ("t", micros, beyond)


def _text(text: str) -> Norm:
    """Text without a type (a JSON string; a CSV field against one): the instant it writes where it
    is a date with a time of day (neither JSON nor CSV has a type for one), else the text. Two
    spellings of one instant are one value (`2026-03-01T12:00:00Z`, `2026-03-01 13:00:00+01`); a
    date alone is text (`2026-03-01` is not midnight)."""
    return (_instant(text) if _TIME_OF_DAY.search(text) else None) or ("s", text)


def _boolean(text: str) -> Norm | None:
    word = text.strip().lower()
    return ("b", True) if word in _TRUE else ("b", False) if word in _FALSE else None


def _json(value: Any) -> Norm:
    if value is None:
        return ("z",)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, RawNumber):
        return _number(str(value)) or ("s", str(value))
    if isinstance(value, int):
        return _number(str(value)) or ("s", str(value))
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, list):
        return ("l", tuple(_json(v) for v in value))
    if isinstance(value, dict):
        return ("o", tuple(sorted((str(k), _json(v)) for k, v in value.items())))
    return ("s", str(value))


def _parsed_json(text: str) -> Norm | None:
    try:
        return _json(loads_exact(text))
    except ValueError:
        return None


def _pg_array(text: str) -> Norm | None:
    """PostgreSQL's text form of an array (`{vip,"x y",NULL}`, nested `{{1,2},{3,4}}`), as COPY
    writes it, as a list: a quoted element is text, NULL null, any other element untyped text
    ("u": the array's type is not written), equal to a JSON value written alike."""
    s = text.strip()
    if not (s.startswith("{") and s.endswith("}")):
        return None

    def parse(i: int) -> tuple[Norm, int]:
        items: list[Norm] = []
        i += 1
        if s[i] == "}":
            return ("l", ()), i + 1
        while True:
            if s[i] == "{":
                value, i = parse(i)
            elif s[i] == '"':
                j, chars = i + 1, []
                while s[j] != '"':
                    j += s[j] == "\\"
                    chars.append(s[j])
                    j += 1
                value, i = _text("".join(chars)), j + 1
            else:
                j = i
                while s[j] not in ",}":
                    j += 1
                word = s[i:j].strip()
                value, i = (("z",) if word.upper() == "NULL" else ("u", word)), j
            items.append(value)
            if s[i] == ",":
                i += 1
            elif s[i] == "}":
                return ("l", tuple(items)), i + 1
            else:
                raise ValueError(text)

    try:
        value, end = parse(0)
    except (IndexError, ValueError):
        return None
    return value if end == len(s) else None


def _untyped_equal(word: str, other: Norm) -> bool:
    """An array element of no written type against a value: equal where it is written alike."""
    if word == "{}" and other in (("o", ()), ("l", ())):
        return True
    if other[0] in ("u", "s"):
        return bool(word == other[1])
    if other[0] == "t":
        return _text(word) == other
    if other[0] == "n":
        return _number(word) == other
    if other[0] == "b":
        return _boolean(word) == other
    return False


def _with_instants(value: Norm) -> Norm:
    """A value with each string in it that is a date or a date-time read as its instant."""
    if value[0] in ("s", "u"):
        return _instant(value[1]) or value
    if value[0] == "l":
        return ("l", tuple(_with_instants(v) for v in value[1]))
    if value[0] == "o":
        return ("o", tuple((k, _with_instants(v)) for k, v in value[1]))
    return value


def normalize(domain: str, mode: str, text: str | None) -> Norm | None:
    """A value (as text, with its mode) in the canonical form of a comparison domain."""
    if text is None:
        return None
    if domain == "json_time":  # a list of dates or times against another type: JSON has no type for one
        norm = normalize("json", mode, text)
        return None if norm is None else _with_instants(norm)
    if domain == "float32":  # against a float32 column: a number of any mode is read as one
        parsed = _parsed_json(text) if mode == "j" else None
        if parsed is not None and parsed[0] != "n":  # a JSON value that is not a number
            return parsed
        return _float32(text.strip()) or ("s", text)
    typed = {"j": _parsed_json, "n": _number, "f": _float, "d": _instant, "b": _boolean}
    if mode in typed:
        return typed[mode](text) or ("s", text)
    if domain == "json":
        if mode == "t" and text.strip() == "{}":
            return ("u", "{}")  # untyped: an empty object, or PostgreSQL's empty array
        return _parsed_json(text) or _pg_array(text) or _text(text)
    if domain == "number":
        return _number(text) or ("s", text)
    if domain == "float":
        return _float(text) or ("s", text)
    if domain == "time":
        return _instant(text) or ("s", text)
    if domain == "bool":
        return _boolean(text) or ("s", text)
    if domain == "instant":  # a date and a time of day, with a zone or without
        return _text(text)
    if domain == "loose":
        if text[:1] in ("{", "["):
            return _parsed_json(text) or ("s", text)
        return _number(text) or _instant(text) or ("s", text)
    return ("s", text)


def _decimal(value: Norm) -> Decimal | None:
    try:  # a float's own value, exactly (its shortest text is only near it)
        d = Decimal(float(value[1])) if value[0] == "f" else Decimal(value[1])
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _integral(value: Norm) -> bool:
    return value[0] == "n" and int(value[1].rsplit("e", 1)[1]) >= 0


def close(a: Norm | None, b: Norm | None, tolerance: Decimal | None) -> bool:
    """Equal values; with a tolerance, numbers that are not both integers may differ by that much."""
    if a is None or b is None:
        return a is None and b is None
    if a == b:
        return True
    if a[0] == "u" or b[0] == "u":  # an element of a PostgreSQL array's text
        return _untyped_equal(a[1], b) if a[0] == "u" else _untyped_equal(b[1], a)
    if a[0] == b[0] == "l":
        return len(a[1]) == len(b[1]) and all(close(x, y, tolerance) for x, y in zip(a[1], b[1], strict=True))
    if a[0] == b[0] == "o":
        return [k for k, _ in a[1]] == [k for k, _ in b[1]] and all(
            close(x, y, tolerance) for (_, x), (_, y) in zip(a[1], b[1], strict=True)
        )
    if tolerance is None:
        return False
    if a[0] in ("n", "f") and b[0] in ("n", "f"):
        if _integral(a) and _integral(b):
            return False
        x, y = _decimal(a), _decimal(b)
        return x is not None and y is not None and abs(x - y) <= tolerance
    return False


def values_equal(
    domain: str, lmode: str, rmode: str, left: str | None, right: str | None, tolerance: Decimal | None = None
) -> bool:
    """Whether two values (as text, with their modes) are equal in a comparison domain."""
    if left == right and lmode == rmode:
        return True
    return close(normalize(domain, lmode, left), normalize(domain, rmode, right), tolerance)


def canonical(domain: str, mode: str, text: str | None) -> str | None:
    """A text that is equal for two values exactly when they are equal (for grouping)."""
    norm = normalize(domain, mode, text)
    return None if norm is None else repr(norm)


# --------------------------------------------------------------------------- engine


def _shortest32_sql() -> str:
    """SQL (a macro's body, of a FLOAT ``f``): its shortest digits, as ``_shortest32`` finds them
    (DuckDB's own FLOAT text is at times the exact value instead: 343126.125, not 343126.12)."""
    g, cases = "f::DOUBLE", []
    power_of_two = f"({g} <> 0 AND abs({g}) = pow(2, round(log2(abs({g})))))"
    for n in range(9):
        near = f"printf('%.{n}e', {g})"
        unit = f"sign({g}) * pow(10, TRY_CAST(split_part({near}, 'e', 2) AS INTEGER) - {n})"
        up = f"printf('%.{n}e', TRY_CAST({near} AS DOUBLE) + {unit})"
        cases += [f"WHEN TRY_CAST({near} AS FLOAT) = f THEN {near}",
                  f"WHEN {power_of_two} AND TRY_CAST({up} AS FLOAT) = f THEN {up}"]  # fmt: skip
    return f"CASE WHEN f IS NULL OR NOT isfinite(f) THEN f::VARCHAR {' '.join(cases)} ELSE printf('%.8e', {g}) END"


_SHORTEST32_SQL = _shortest32_sql()


def _as_float32_sql(cls: str, sql_type: str) -> str:
    """SQL, true where a number (an integer, a decimal, or a store's double, itself the nearest to
    its JSON text) is its float32 as written: that float32 exactly, its double's shortest digits,
    or its own shortest digits (1.1 is the real 1.1; 16777217 is not the real 16777216, nor 1e-50
    the real 0). NULL where the number has no float32 (past its range)."""
    f = "TRY_CAST({x} AS FLOAT)"
    if cls == "float":  # a double is a float32's shortest digits where it is their double
        return (f"CASE WHEN {{x}} = {f} OR {{x}} = TRY_CAST({f}::VARCHAR AS DOUBLE) THEN true "
                f"ELSE {{x}} = TRY_CAST(_lt_f32s({f}) AS DOUBLE) END")  # fmt: skip
    # a digit text cast to the number's type is rounded to its scale: the double check rules that
    # out (a number of fewer digits reading back as the float32 would be its shortest digits)
    same = f"{{x}}::DOUBLE = {f}::DOUBLE"
    return (f"CASE WHEN {same} AND (TRY_CAST({f} AS {sql_type}) = {{x}} OR TRY_CAST({f}::DOUBLE::VARCHAR AS {sql_type}) = {{x}}) "
            f"THEN true WHEN TRY_CAST({f}::VARCHAR AS DOUBLE) = {{x}}::DOUBLE AND TRY_CAST({f}::VARCHAR AS {sql_type}) = {{x}} "
            f"THEN true ELSE TRY_CAST(_lt_f32s({f}) AS {sql_type}) = {{x}} END")  # fmt: skip


def _instant_sql() -> str:
    """SQL (a macro's body, of a text ``x``): the instant ``_text`` reads in a text, as nanoseconds
    since the epoch, else NULL. The same rule in DuckDB, whose cast reads these texts as Python
    does, or else once a blank before the offset, a lowercase z and an offset to the second
    without its colons are written as it takes them; what Python refuses is left out (a year 0,
    the end of the last day of 9999, an offset of a day or more, which DuckDB adds)."""
    blanks = f"[{_BLANKS}]*"
    ok = f"regexp_full_match(x, {sql_string(blanks + _DATE + _CLOCK + blanks)})"
    bad = sql_string(rf"^{blanks}(0000-|9999-12-31[T ]24)|[0-9][+-](2[4-9]|[3-9][0-9]|23:?[6-9]|23:?59:?[6-9])[0-9:]*{blanks}$")
    fixed = rf"regexp_replace(regexp_replace(trim(x, {sql_string(_BLANKS)}), '([0-9]) ([+-])', '\1\2'), 'z$', 'Z')"
    fixed = rf"regexp_replace({fixed}, '([+-][0-9]{{2}})([0-9]{{2}})([0-9]{{2}})$', '\1:\2:\3')"
    cast = f"coalesce(TRY_CAST(x AS TIMESTAMPTZ), TRY_CAST({fixed} AS TIMESTAMPTZ))"
    beyond = r"coalesce(TRY_CAST(rpad(regexp_extract(x, '\.[0-9]{6}([0-9]{1,3})', 1), 3, '0') AS INTEGER), 0)"
    return f"CASE WHEN {ok} AND NOT regexp_matches(x, {bad}) THEN epoch_us({cast})::HUGEINT * 1000 + {beyond} END"


#: Connections whose Python comparators are not registered yet, with the tolerance they will use.
_PENDING: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, Decimal | None] = weakref.WeakKeyDictionary()


def _connect(tolerance: Decimal | None) -> duckdb.DuckDBPyConnection:
    """A connection with a number-text macro; the exact comparators come with ``_comparators``."""
    from . import engine

    con = engine.connect()
    # A plain decimal text without sign noise, leading or trailing zeros; other text unchanged.
    con.execute(
        r"""CREATE TEMP MACRO _lt_num(x) AS CASE WHEN regexp_full_match(x, '[+-]?[0-9]+(\.[0-9]+)?') THEN
              (CASE WHEN starts_with(x, '-') AND NOT regexp_full_match(x, '-[0.]+') THEN '-' ELSE '' END)
              || coalesce(nullif(ltrim(split_part(ltrim(x, '+-'), '.', 1), '0'), ''), '0')
              || coalesce('.' || nullif(rtrim(split_part(ltrim(x, '+-'), '.', 2), '0'), ''), '')
            ELSE x END"""
    )
    con.execute(f"CREATE TEMP MACRO _lt_f32s(f) AS {_SHORTEST32_SQL}")
    con.execute(f"CREATE TEMP MACRO _lt_instant(x) AS {_instant_sql()}")
    _PENDING[con] = tolerance
    return con


def _comparators(con: duckdb.DuckDBPyConnection) -> None:
    """Register the exact comparators ``_lt_equal`` and ``_lt_canon`` (Python functions) on first use.

    Registering a Python function loads numpy, which costs more than a 1M-row join on a small
    machine, and a comparison whose columns SQL compares exactly never calls them."""
    if con not in _PENDING:
        return
    tolerance = _PENDING.pop(con)
    from duckdb.func import FunctionNullHandling
    from duckdb.sqltypes import BOOLEAN, VARCHAR

    def equal(domain: str, lmode: str, rmode: str, left: str | None, right: str | None) -> bool:
        return values_equal(domain, lmode, rmode, left, right, tolerance)

    nulls = FunctionNullHandling.SPECIAL  # a NULL is a value to compare, not "skip the call"
    con.create_function("_lt_equal", equal, [VARCHAR] * 5, BOOLEAN, null_handling=nulls)
    con.create_function("_lt_canon", canonical, [VARCHAR] * 3, VARCHAR, null_handling=nulls)


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second connection to the same database, for a result read while others run."""
    cur = con.cursor()
    cur.execute("SET TimeZone = 'UTC'")
    return cur


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {view}").fetchall()]


_INTEGER_TYPES = frozenset(
    "TINYINT SMALLINT INTEGER BIGINT HUGEINT UTINYINT USMALLINT UINTEGER UBIGINT UHUGEINT".split()
)


#: A list (of lists...) of dates or timestamps.
_TEMPORAL_LIST = re.compile(r"(DATE|TIMESTAMP[^\[]*)(\[\d*\])+")


def _type_class(sql_type: str) -> str:
    t = sql_type.upper()
    if t == "JSON":
        return "json"
    if t == "VARCHAR" or t.startswith("ENUM"):
        return "text"
    if t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION")):
        return "nested"  # (first: a list's type begins with its element's, `DECIMAL(10,2)[]`)
    if t == "BOOLEAN":
        return "bool"
    if t in _INTEGER_TYPES:
        return "int"
    if t.startswith("DECIMAL"):
        return "decimal"
    if t == "FLOAT":
        return "float32"
    if t == "DOUBLE":
        return "float"
    if t == "DATE" or t.startswith("TIMESTAMP"):
        return "time"
    if t == "BLOB":
        return "blob"
    return "other"


@dataclass
class _Table:
    """One side of a table comparison: a DuckDB view, and how its columns are to be read."""

    label: str
    view: str
    columns: list[tuple[str, str]]
    untyped: bool = False  # CSV: every value is text without a type
    json_columns: frozenset[str] = frozenset()
    row_json: str | None = None  # the column holding each row as a JSON object (a replayed state)
    untyped_columns: frozenset[str] = frozenset()  # text without a type in an otherwise typed table
    json_text_columns: frozenset[str] = frozenset()  # a store's strings: text, or an instant JSON has no type for
    json_numbers: bool = False  # a store's numbers: JSON's, whose floats carry no width
    # a column's name in the view where it is not its own: DuckDB's names are case-insensitive,
    # so the columns of a table holding two names that differ only in case are read by position
    idents: dict[str, str] = field(default_factory=dict)

    def ref(self, alias: str, name: str) -> str:
        """SQL: a column of this table's view, under a table alias."""
        return f"{alias}.{sql_ident(self.idents.get(name, name))}"

    def type_class(self, name: str) -> str:
        if name in self.json_columns or name == self.row_json:
            return "json"
        cls = _type_class(dict(self.columns)[name])
        if cls == "text" and name in self.json_text_columns:
            return "jsontext"
        return "untyped" if (self.untyped or name in self.untyped_columns) and cls == "text" else cls

    def sql_type(self, name: str) -> str:
        return dict(self.columns)[name]

    def shown(self, name: str, expr: str) -> str:
        """SQL: a column's value as the output shows it (a nanosecond instant as text, which a
        Python datetime would cut to the microsecond)."""
        t = self.sql_type(name)
        if t.startswith("TIMESTAMP") and "_NS" in t:
            return f"strftime({expr}, '%Y-%m-%dT%H:%M:%S.%n{'Z' if 'TZ' in t else ''}')"
        if t == "TIME_NS":
            return f"{expr}::VARCHAR"
        return expr


# How a class of values reaches Python for an exact check: (SQL template, mode).
_AS_TEXT = {
    "untyped": ("{x}", "t"),
    "text": ("{x}", "t"),
    "jsontext": ("{x}", "t"),
    "json": ("{x}::VARCHAR", "j"),
    "nested": ("to_json({x})::VARCHAR", "j"),
    "int": ("{x}::VARCHAR", "n"),
    "decimal": ("{x}::VARCHAR", "n"),
    "float": ("{x}::VARCHAR", "f"),
    "float32": ("{x}::DOUBLE::VARCHAR", "f"),  # its own value (its shortest text is a float32's)
    "time": ("{x}::TIMESTAMPTZ::VARCHAR", "d"),
    "bool": ("{x}::VARCHAR", "b"),
    "blob": (r"'\x' || lower(hex({x}))", "t"),  # PostgreSQL's bytea text (hex), as COPY writes it
    "other": ("{x}::VARCHAR", "t"),
}
_NUMERIC = ("int", "decimal")
_FLOATS = frozenset({"float", "float32"})
_TEXTUAL = ("untyped", "text")


@dataclass
class _Column:
    """How one column is compared.

    ``lform``/``rform`` put both sides in one SQL domain where equal forms mean equal values.
    When ``exact``, different forms also mean different values; otherwise a difference is
    confirmed in Python (only for the rows whose forms differ) by ``values_equal``.
    """

    name: str
    lclass: str
    rclass: str
    lform: str
    rform: str
    exact: bool
    domain: str = "text"
    float_tolerance: bool = False
    # SQL, true where a side's number has no exact double (an integer or decimal set against a
    # float): it equals no float, however close its double comes
    linexact: str | None = None
    rinexact: str | None = None
    # SQL, each side's number as a tolerance measures it, where that is not its form (a number
    # compared as its float32 is measured as itself)
    lmeasure: str | None = None
    rmeasure: str | None = None

    def left(self, expr: str) -> str:
        return self.lform.replace("{x}", expr)

    def right(self, expr: str) -> str:
        return self.rform.replace("{x}", expr)

    def differs(self, lexpr: str, rexpr: str, tolerance: Decimal | None) -> str:
        a, b = self.left(lexpr), self.right(rexpr)
        inexact = [f"coalesce({t.replace('{x}', e)}, false)"
                   for t, e in ((self.linexact, lexpr), (self.rinexact, rexpr)) if t is not None]  # fmt: skip
        if self.float_tolerance and tolerance is not None:
            # abs() of a NULL is NULL: a NULL against a number differs, whatever the tolerance. A
            # number without an exact double is a candidate, measured exactly in Python (confirmed)
            ma, mb = ((m or f).replace("{x}", e) for m, f, e in
                      ((self.lmeasure, self.lform, lexpr), (self.rmeasure, self.rform, rexpr)))  # fmt: skip
            near = f"({a} IS NOT DISTINCT FROM {b} OR abs({ma} - {mb}) <= {tolerance})"
            return f"NOT coalesce({near} AND NOT ({' OR '.join(inexact) or 'false'}), false)"
        return " OR ".join([f"NOT ({a} IS NOT DISTINCT FROM {b})", *inexact])

    def confirmed(self, tolerance: Decimal | None) -> bool:
        """Is a difference SQL finds confirmed in Python? Where SQL's comparison is not exact, and
        where a tolerance applies to a number that has no exact double."""
        inexact = self.linexact is not None or self.rinexact is not None
        return not self.exact or (self.float_tolerance and tolerance is not None and inexact)

    def group_form(self, side: str, expr: str) -> str:
        """SQL: the side's form, for grouping rows of a multiset (with whether its number has no
        exact double, where that can make two equal forms different values)."""
        form = (self.left if side == "l" else self.right)(expr)
        if self.linexact is None and self.rinexact is None:
            return form
        check = self.linexact if side == "l" else self.rinexact
        flag = f"coalesce({check.replace('{x}', expr)}, false)" if check else "false"
        return f"struct_pack(v := {form}, inexact := {flag})"

    def check_sql(self, lexpr: str, rexpr: str) -> str:
        """SQL calling the exact comparator on two stored values: true when equal."""
        (lt, lm), (rt, rm) = self._as_text(self.lclass), self._as_text(self.rclass)
        return (
            f"_lt_equal({sql_string(self.domain)}, {sql_string(lm)}, {sql_string(rm)}, "
            f"{lt.replace('{x}', lexpr)}, {rt.replace('{x}', rexpr)})"
        )

    def canon_sql(self, side: str, expr: str) -> str:
        """SQL giving a stored value's canonical text (for grouping rows of a multiset)."""
        template, mode = self._as_text(self.lclass if side == "l" else self.rclass)
        return f"_lt_canon({sql_string(self.domain)}, {sql_string(mode)}, {template.replace('{x}', expr)})"

    def _as_text(self, cls: str) -> tuple[str, str]:
        if self.domain in ("json", "json_time") and cls not in _TEXTUAL + ("json", "nested"):
            return ("to_json({x})::VARCHAR", "j")
        return _AS_TEXT[cls]


#: A key of text without a type on both sides: its instant where it writes one (``_text``), else its text.
_TEXT_KEY = "struct_pack(t := _lt_instant({x}), s := CASE WHEN _lt_instant({x}) IS NULL THEN {x} END)"


def _plan(name: str, left: _Table, right: _Table, key: bool = False) -> _Column:
    """Choose how a column present on both sides is compared (``key``: joined), from its two types."""
    lc, rc = left.type_class(name), right.type_class(name)
    if key and {lc, rc} <= {"jsontext", "untyped"}:
        # an identifier of text without a type (a store's string, a key field taken from the store's
        # key, a CSV field) is its text, or the instant both sides write: a time series keyed by
        # (device, ts) meets a dump whose zone is spelled otherwise; '01' and '1' stay two keys
        return _Column(name, lc, rc, _TEXT_KEY, _TEXT_KEY, True, "instant")
    if {lc, rc} == {"jsontext", "untyped"}:
        # a store's string against a CSV field: the same text, or the same instant (JSON has no
        # type for one), never a number or a date read alike
        return _Column(name, lc, rc, "{x}", "{x}", False, "instant")
    lc, rc = ("text" if c == "jsontext" else c for c in (lc, rc))
    lt, rt = left.sql_type(name), right.sql_type(name)
    pair = {lc, rc}

    def exact(form: str = "{x}", float_tolerance: bool = False) -> _Column:
        return _Column(name, lc, rc, form, form, True, float_tolerance=float_tolerance)

    if (lc == rc and lc in ("int", "decimal", "bool", "text")) or pair <= set(_NUMERIC):
        return exact()
    if lc == rc == "time":
        if "_NS" not in lt + rt:
            return exact("{x}::TIMESTAMPTZ")
        # instants to the nanosecond where a side keeps nanoseconds (the other side's in its own
        # range: years 1677-2262 bound nanoseconds, not microseconds)
        def ns(sql_type: str) -> str:
            return "epoch_ns({x})::HUGEINT" if "_NS" in sql_type else "epoch_us({x}::TIMESTAMPTZ)::HUGEINT * 1000"

        return _Column(name, lc, rc, ns(lt), ns(rt), True)
    if pair & _FLOATS and pair <= {*_FLOATS, *_NUMERIC}:
        # the number's double is compared; where it is not the number itself, they differ. Against
        # a float32 column (PostgreSQL's real) a number, or a store's float (a JSON number, of no
        # width), is its float32 instead: 1.1 is the real 1.1, whose double is 1.100000023841858
        def narrowed(cls: str, table: _Table, other: str) -> bool:
            return other == "float32" and (cls in _NUMERIC or (cls == "float" and table.json_numbers))

        def inexact(cls: str, sql_type: str, narrow: bool) -> str | None:
            if narrow:
                return f"({{x}} IS NOT NULL AND NOT coalesce({_as_float32_sql(cls, sql_type)}, false))"
            # (a double past the type's range does not cast back: no number of that type is it)
            return None if cls in _FLOATS else f"TRY_CAST({{x}}::DOUBLE AS {sql_type}) IS DISTINCT FROM {{x}}"

        ln, rn = narrowed(lc, left, rc), narrowed(rc, right, lc)
        narrow = "TRY_CAST({x} AS FLOAT)::DOUBLE"
        return _Column(name, lc, rc, narrow if ln else "{x}::DOUBLE", narrow if rn else "{x}::DOUBLE", True,
                       float_tolerance=True, linexact=inexact(lc, lt, ln), rinexact=inexact(rc, rt, rn),
                       lmeasure="{x}::DOUBLE" if ln else None, rmeasure="{x}::DOUBLE" if rn else None)  # fmt: skip
    if lc == rc and lc in ("nested", "blob", "other") and lt == rt and not lt.upper().startswith("MAP"):
        return exact()
    if pair == {"json", "float32"}:
        # a JSON number against a float32: read as one (equal texts are the same float32)
        return _Column(name, lc, rc, "_lt_num({x}::VARCHAR)", "_lt_num({x}::VARCHAR)", False, "float32")
    if pair & {"json", "nested"}:
        forms = {c: "{x}" if c in _TEXTUAL else "{x}::VARCHAR" if c == "json" else "to_json({x})::VARCHAR"
                 for c in pair}  # fmt: skip
        # a list of dates or times: its elements are instants, and so are the other side's strings
        # that are dates or date-times (as a text column is against a timestamp column)
        timed = any(_TEMPORAL_LIST.fullmatch(t.upper()) for t in (lt, rt))
        return _Column(name, lc, rc, forms[lc], forms[rc], False, "json_time" if timed else "json")
    if lc == rc == "untyped":
        return _Column(name, lc, rc, "{x}", "{x}", False, "loose")
    if lc in _TEXTUAL and rc in _TEXTUAL:
        return exact()
    if pair & {"text"} and pair & {*_NUMERIC, *_FLOATS, "bool"}:
        # a typed text column is text: against a number, its text must be the number's own
        return _Column(name, lc, rc, "{x}::VARCHAR", "{x}::VARCHAR", True)
    if lc in _TEXTUAL or rc in _TEXTUAL:
        other = rc if lc in _TEXTUAL else lc
        if other in _NUMERIC or other in _FLOATS:
            # (a float32's text is its shortest digits or its exact value: the same text is it as written)
            text_form, typed_form = "_lt_num({x})", "_lt_num({x}::VARCHAR)"
            domain = other if other in _FLOATS else "number"
        elif other == "time" and "_NS" in (rt if lc in _TEXTUAL else lt):
            # the typed side keeps nanoseconds: the text's instant to the nanosecond too (DuckDB
            # cuts it at the microsecond; the digits past it are added), compared exactly
            extra = r"coalesce(TRY_CAST(rpad(regexp_extract({x}, '\.[0-9]{6}([0-9]{1,3})', 1), 3, '0') AS INTEGER), 0)"
            text_form = ("CASE WHEN {x} IS NULL THEN NULL ELSE coalesce((epoch_us(TRY_CAST({x} AS TIMESTAMPTZ))::HUGEINT * 1000 + "
                         + extra + ")::VARCHAR, '~' || {x}) END")  # fmt: skip
            lform, rform = (text_form, "epoch_ns({x})::VARCHAR") if lc in _TEXTUAL else ("epoch_ns({x})::VARCHAR", text_form)
            return _Column(name, lc, rc, lform, rform, True, "time")
        elif other == "time":
            text_form = "CASE WHEN {x} IS NULL THEN NULL ELSE coalesce(epoch_us(TRY_CAST({x} AS TIMESTAMPTZ))::VARCHAR, '~' || {x}) END"  # noqa: E501
            typed_form, domain = "epoch_us({x}::TIMESTAMPTZ)::VARCHAR", "time"
        elif other == "bool":
            text_form, typed_form, domain = "lower({x})", "{x}::VARCHAR", "bool"
        elif other == "blob":
            # bytes against text: the text is PostgreSQL's bytea output (`\x` and lowercase hex), as
            # COPY writes it whatever the dump's format; DuckDB's own text of bytes is no one's dump
            typed = _AS_TEXT["blob"][0]
            lform, rform = ("{x}", typed) if lc in _TEXTUAL else (typed, "{x}")
            return _Column(name, lc, rc, lform, rform, True)
        else:
            text_form, typed_form, domain = "{x}", "{x}::VARCHAR", "loose"
        lform, rform = (text_form, typed_form) if lc in _TEXTUAL else (typed_form, text_form)
        return _Column(name, lc, rc, lform, rform, False, domain)
    return _Column(name, lc, rc, "{x}::VARCHAR", "{x}::VARCHAR", False, "loose")


def _output(value: Any, cls: str) -> Any:
    """A fetched value made ready for JSON output (JSON text inlined as JSON)."""
    from .formats.writers import plain

    if value is None:
        return None
    if cls == "json" and isinstance(value, str):
        try:
            loads_exact(value)
        except ValueError:
            return value
        return RawJSON(value)
    out = plain(value)
    return out if isinstance(out, str | int | float | bool | dict | list) else str(value)


# --------------------------------------------------------------------------- tables


class _TableCompare:
    """One comparison of two tables on key columns (or, without keys, as multisets)."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        left: _Table,
        right: _Table,
        keys: Sequence[str],
        tolerance: Decimal | None,
        prefix: str,
        scope: str = "table",
    ) -> None:
        self.con = con
        self.scope = scope
        self.left = left
        self.right = right
        self.keys = list(keys)
        self.tolerance = tolerance
        self.p = prefix
        lnames = [c for c, _ in left.columns]
        rnames = [c for c, _ in right.columns]
        for side, names in (("left", lnames), ("right", rnames)):
            missing = [k for k in self.keys if k not in names]
            if missing:
                table = left if side == "left" else right
                raise UsageError(
                    f"{table.label}: no key column {', '.join(missing)} (its columns: {', '.join(names)})",
                    "name key columns both sides have with --key-column",
                )
        self.lnames, self.rnames = lnames, rnames
        self.only_left_columns = [c for c in lnames if c not in rnames]
        self.only_right_columns = [c for c in rnames if c not in lnames]
        common = [c for c in lnames if c in rnames]
        if not common:
            raise UsageError(
                f"{left.label} and {right.label} have no column in common", "compare tables of the same entity"
            )
        self.key_plans = [_plan(k, left, right, key=True) for k in self.keys]
        self.value_plans = [_plan(c, left, right) for c in common if c not in self.keys]
        self.only_left = self.only_right = self.changed = 0

    #: Differing rows gathered in memory by the pass that also checks the keys; a comparison
    #: with more runs its join again into a table (which can spill). Each DuckDB thread may hold
    #: this many rows before they are combined, so it stays small.
    GATHER = 4096

    # ------------------------------------------------------------------ running

    def run(self) -> _TableCompare:
        if self.keys:
            self._keyed()
        else:
            if self.tolerance is not None:
                raise UsageError(
                    "--float-tolerance needs key columns: rows without a key are compared as exact multisets",
                    "name the key with --key-column",
                )
            self._multiset()
        return self

    def _check_unique(self, table: _Table, side: str, plans: list[_Column]) -> None:
        forms = [(p.left if side == "l" else p.right)(table.ref("t", p.name)) for p in plans]
        shown = [f"min({table.ref('t', p.name)})" for p in plans]  # as written (two spellings of one instant are one key)
        rows = self.con.execute(
            f"SELECT {', '.join(shown)}, count(*) FROM {table.view} t GROUP BY {', '.join(forms)} "
            "HAVING count(*) > 1 LIMIT 1"
        ).fetchall()
        if rows:
            key = ", ".join(f"{p.name}={v!r}" for p, v in zip(plans, rows[0][:-1], strict=True))
            raise UsageError(
                f"{table.label}: key ({key}) occurs {rows[0][-1]} times: the key columns do not identify a row",
                "name every key column (repeat --key-column), or none to compare whole rows as multisets",
            )

    def _keyed(self) -> None:
        present = sql_ident("__logtool_present__")
        lt, rt = self.left, self.right
        sort = [f"coalesce({p.left(lt.ref('l', p.name))}, {p.right(rt.ref('r', p.name))})" for p in self.key_plans]
        differs = [p.differs(lt.ref("l", p.name), rt.ref("r", p.name), self.tolerance) for p in self.value_plans]
        on = " AND ".join(
            f"{p.left(lt.ref('l', p.name))} IS NOT DISTINCT FROM {p.right(rt.ref('r', p.name))}" for p in self.key_plans
        )
        changed = " OR ".join(f"d{i}" for i in range(len(self.value_plans))) or "false"
        status = (f"CASE WHEN l.{present} IS NULL THEN 'only_right' WHEN r.{present} IS NULL THEN 'only_left' "
                  "ELSE 'changed' END")  # fmt: skip
        fields = [
            ("_s", status),
            *((f"k{i}", e) for i, e in enumerate(sort)),
            *((f"l{i}", lt.shown(c, lt.ref("l", c))) for i, c in enumerate(self.lnames)),
            *((f"r{i}", rt.shown(c, rt.ref("r", c))) for i, c in enumerate(self.rnames)),
            *((f"d{i}", e) for i, e in enumerate(differs)),
        ]
        names = [n for n, _ in fields]
        join = (f"FROM (SELECT *, true AS {present} FROM {self.left.view}) l "
                f"FULL OUTER JOIN (SELECT *, true AS {present} FROM {self.right.view}) r ON {on}")  # fmt: skip
        differing = f"l.{present} IS NULL OR r.{present} IS NULL OR {' OR '.join(differs) or 'false'}"
        # One pass over the join both gathers the differing rows (up to GATHER of them) and proves
        # the keys unique: a key repeated on one side and present on the other yields more rows
        # carrying a side than that side has (``matched_once`` is false); one repeated on one
        # side only is among the gathered rows. The CASE builds a row for the differing rows only.
        row = f"struct_pack({', '.join(f'{n} := {e}' for n, e in fields)})"
        self.con.execute(f"""
            CREATE OR REPLACE TABLE {self.p}_a AS
            SELECT count(l.{present}) = (SELECT count(*) FROM {self.left.view})
                     AND count(r.{present}) = (SELECT count(*) FROM {self.right.view}) AS matched_once,
                   count(*) FILTER (WHERE {differing}) AS n,
                   arg_min(CASE WHEN {differing} THEN {row} END, 0, {self.GATHER}) FILTER (WHERE {differing}) AS rows
            {join}""")
        ((matched_once, n),) = self.con.execute(f"SELECT matched_once, n FROM {self.p}_a").fetchall()
        if n <= self.GATHER:
            self.con.execute(
                f"CREATE OR REPLACE TABLE {self.p}_d AS SELECT {', '.join(f'u.{c}' for c in names)} "
                f"FROM (SELECT unnest(rows) AS u FROM {self.p}_a)"
            )
        else:
            # Too many to gather in memory: the join again, into a table that can spill.
            # The filter repeats the comparisons so that the columns are projected for differing rows only.
            self.con.execute(
                f"CREATE OR REPLACE TABLE {self.p}_d AS SELECT {', '.join(f'{e} AS {n}' for n, e in fields)} {join} "
                f"WHERE {differing}"
            )
        self.con.execute(f"DROP TABLE {self.p}_a")
        keys = ", ".join(f"k{i}" for i in range(len(sort)))
        repeated = self.con.execute(
            f"SELECT 1 FROM {self.p}_d WHERE _s <> 'changed' GROUP BY _s, {keys} HAVING count(*) > 1 LIMIT 1"
        ).fetchall()
        if not matched_once or repeated:
            # Which key, and how often: the same words whichever way it was found.
            self._check_unique(self.left, "l", self.key_plans)
            self._check_unique(self.right, "r", self.key_plans)
        # Forms that differ where the comparison is not exact in SQL are confirmed in Python,
        # for those rows only.
        if any(p.confirmed(self.tolerance) for p in self.value_plans):
            _comparators(self.con)
        for i, p in enumerate(self.value_plans):
            if p.confirmed(self.tolerance):
                li, ri = self.lnames.index(p.name), self.rnames.index(p.name)
                self.con.execute(
                    f"UPDATE {self.p}_d SET d{i} = NOT {p.check_sql(f'l{li}', f'r{ri}')} WHERE _s = 'changed' AND d{i}"
                )
        if any(p.confirmed(self.tolerance) for p in self.value_plans):
            self.con.execute(f"DELETE FROM {self.p}_d WHERE _s = 'changed' AND NOT ({changed})")
        for status, n in self.con.execute(f"SELECT _s, count(*) FROM {self.p}_d GROUP BY 1").fetchall():
            setattr(self, status, n)

    def _multiset(self) -> None:
        plans = self.value_plans
        for side, table in (("l", self.left), ("r", self.right)):
            forms = [p.group_form(side, table.ref("t", p.name)) for p in plans]
            names = self.lnames if side == "l" else self.rnames
            row = ", ".join(f"c{i} := {table.shown(c, table.ref('t', c))}" for i, c in enumerate(names))
            self.con.execute(
                f"CREATE OR REPLACE TABLE {self.p}_g{side} AS SELECT {', '.join(f'{f} AS f{i}' for i, f in enumerate(forms))}, "
                f"count(*) AS n, any_value(struct_pack({row})) AS v FROM {table.view} t GROUP BY ALL"
            )
        on = " AND ".join(f"a.f{i} IS NOT DISTINCT FROM b.f{i}" for i in range(len(plans)))
        fs = ", ".join(f"coalesce(a.f{i}, b.f{i}) AS c{i}" for i in range(len(plans)))
        self.con.execute(f"""
            CREATE OR REPLACE TABLE {self.p}_m AS
            SELECT coalesce(a.n, 0) - coalesce(b.n, 0) AS net, {fs}, a.v AS lrow, b.v AS rrow
            FROM {self.p}_gl a FULL OUTER JOIN {self.p}_gr b ON {on}
            WHERE coalesce(a.n, 0) <> coalesce(b.n, 0)""")
        if any(not p.exact for p in plans):
            # Rows whose forms differ only where SQL is not exact (JSON key order, say) are
            # grouped again by their canonical texts, computed for these rows only.
            _comparators(self.con)
            canon = []
            for i, p in enumerate(plans):
                if p.exact:
                    canon.append(f"c{i}")
                else:
                    li, ri = self.lnames.index(p.name), self.rnames.index(p.name)
                    lval = p.canon_sql("l", f"lrow.c{li}")
                    rval = p.canon_sql("r", f"rrow.c{ri}")
                    canon.append(f"CASE WHEN net > 0 THEN {lval} ELSE {rval} END AS c{i}")
            groups = ", ".join(f"c{i}" for i in range(len(plans)))
            self.con.execute(f"""
                CREATE OR REPLACE TABLE {self.p}_m2 AS
                SELECT sum(net) AS net, any_value(lrow) FILTER (WHERE net > 0) AS lrow,
                       any_value(rrow) FILTER (WHERE net < 0) AS rrow, {groups}
                FROM (SELECT net, lrow, rrow, {", ".join(canon)} FROM {self.p}_m)
                GROUP BY {groups} HAVING sum(net) <> 0""")
            self.con.execute(f"DROP TABLE {self.p}_m")
            self.con.execute(f"ALTER TABLE {self.p}_m2 RENAME TO {self.p}_m")
        rows = self.con.execute(
            f"SELECT coalesce(sum(net) FILTER (WHERE net > 0), 0), coalesce(-sum(net) FILTER (WHERE net < 0), 0) "
            f"FROM {self.p}_m"
        ).fetchall()
        self.only_left, self.only_right = int(rows[0][0]), int(rows[0][1])

    # ------------------------------------------------------------------ listing

    @property
    def same(self) -> bool:
        return not (self.only_left or self.only_right or self.changed or self.only_left_columns
                    or self.only_right_columns)  # fmt: skip

    def listing(self) -> Iterator[Difference]:
        """Every difference, keys in order (rows of a multiset in the order of their values)."""
        yield from (self._keyed_listing() if self.keys else self._multiset_listing())

    def _batches(self, sql: str) -> Iterator[tuple[list[str], list[tuple[Any, ...]]]]:
        cur = _cursor(self.con)
        cur.execute(sql)
        names = [d[0] for d in cur.description]
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                return
            yield names, rows

    def _row(self, table: _Table, names: list[str], values: Sequence[Any]) -> Any:
        if table.row_json:
            return _output(dict(zip(names, values, strict=True))[table.row_json], "json")
        return {n: _output(v, table.type_class(n)) for n, v in zip(names, values, strict=True)}

    def _keyed_listing(self) -> Iterator[Difference]:
        order = ", ".join(f"k{i}" for i in range(len(self.key_plans)))
        nl = len(self.lnames)
        for cols, rows in self._batches(f"SELECT * FROM {self.p}_d ORDER BY {order}, _s"):
            start = cols.index("l0") if nl else cols.index("r0")
            for row in rows:
                status = row[0]
                lvals = row[start : start + nl]
                rvals = row[start + nl : start + nl + len(self.rnames)]
                flags = row[start + nl + len(self.rnames) :]
                on_left = status != "only_right"
                names = self.lnames if on_left else self.rnames
                table = self.left if on_left else self.right
                values = lvals if on_left else rvals
                key = {k: _output(values[names.index(k)], table.type_class(k)) for k in self.keys}
                diff: Difference = {"scope": self.scope, "change": status, "key": key}
                if status == "changed":
                    diff["fields"] = self._changed_fields(lvals, rvals, flags)
                else:
                    diff["row"] = self._row(table, names, values)
                yield diff

    def _changed_fields(self, lvals: Sequence[Any], rvals: Sequence[Any], flags: Sequence[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for p, flag in zip(self.value_plans, flags, strict=True):
            if not flag:
                continue
            lv = lvals[self.lnames.index(p.name)]
            rv = rvals[self.rnames.index(p.name)]
            if p.name == self.left.row_json and p.name == self.right.row_json:
                out += json_field_changes(lv, rv, self.tolerance)
            else:
                out.append({"field": p.name, "left": _output(lv, p.lclass), "right": _output(rv, p.rclass)})
        return out

    def _multiset_listing(self) -> Iterator[Difference]:
        order = "".join(f", c{i}" for i in range(len(self.value_plans)))
        for _, rows in self._batches(f"SELECT net, lrow, rrow FROM {self.p}_m ORDER BY net < 0{order}"):
            for net, lrow, rrow in rows:
                on_left = net > 0
                table = self.left if on_left else self.right
                names = self.lnames if on_left else self.rnames
                struct = lrow if on_left else rrow
                values = [struct[f"c{i}"] for i in range(len(names))]
                diff: Difference = {"scope": self.scope, "change": "only_left" if on_left else "only_right"}
                if table.row_json:
                    diff["key"] = {n: v for n, v in zip(names, values, strict=True) if n != table.row_json}
                diff["count"] = abs(int(net))
                diff["row"] = self._row(table, names, values)
                yield diff


def json_field_changes(left: str | None, right: str | None, tolerance: Decimal | None = None) -> list[dict[str, Any]]:
    """The top-level fields in which two JSON objects differ, with both values; a field one side
    lacks has no ``left`` (or ``right``) entry, which is not the same as a ``null`` value."""
    lobj = loads_exact(left) if left is not None else None
    robj = loads_exact(right) if right is not None else None
    if not isinstance(lobj, dict) or not isinstance(robj, dict):
        return [{"field": None, "left": lobj, "right": robj}]
    out: list[dict[str, Any]] = []
    for name in list(lobj) + [k for k in robj if k not in lobj]:
        if name in lobj and name in robj and close(_json(lobj[name]), _json(robj[name]), tolerance):
            continue
        change: dict[str, Any] = {"field": name}
        if name in lobj:
            change["left"] = lobj[name]
        if name in robj:
            change["right"] = robj[name]
        out.append(change)
    return out


# --------------------------------------------------------------------------- logs

#: The columns shown for an event (``source`` says where each replica read it; never compared).
_EVENT_COLUMNS = ("offset", "ts", "entity", "key", "prev_key", "op", "type", "data", "before", "meta", "txn", "source")
_OPTIONAL_EVENT_COLUMNS = ("prev_key", "type", "before", "meta", "txn")
#: Compared exactly, and the JSON payloads compared as values.
_EXACT_EVENT = ("ts", "entity", "key", "prev_key", "op", "type", "txn")
_JSON_EVENT = ("data", "before", "meta")


def _content_hash(canonical_json: bool = False, offset: bool = False) -> str:
    """SQL: a 128-bit hash of an event's compared content (every column but offset, source, salt
    and digest), from DuckDB's hash of the typed values (no text is built, so it runs at scan
    speed); the two halves combine the columns in opposite orders. ``offset`` binds the hash to
    the event's place; ``canonical_json`` hashes the payloads' canonical JSON (for the few events
    whose text differs)."""
    cols = [
        f"_lt_canon('json', 'j', {sql_ident(c)})" if canonical_json and c in _JSON_EVENT else sql_ident(c)
        for c in _EXACT_EVENT + _JSON_EVENT
    ]
    if offset:
        cols.insert(0, sql_ident("offset"))
    return f"((hash({', '.join(cols)})::UHUGEINT << 64) | hash({', '.join(reversed(cols))}))"


def _event(names: Sequence[str], values: Sequence[Any]) -> dict[str, Any] | None:
    """An event as the output shows it (optional columns left out when null)."""
    row = dict(zip(names, values, strict=True))
    if row.get("offset") is None:
        return None
    out: dict[str, Any] = {}
    for c in _EVENT_COLUMNS:
        v = row[c]
        if v is None and c in _OPTIONAL_EVENT_COLUMNS:
            continue
        if c == "source" and isinstance(v, dict):
            v = {k: x for k, x in v.items() if x is not None}
        out[c] = _output(v, "json" if c in _JSON_EVENT else "value")
    return out


def _event_changes(left: dict[str, Any], right: dict[str, Any]) -> list[dict[str, Any]]:
    """The compared columns in which two events (as fetched) differ."""
    out = []
    for c in _EXACT_EVENT + _JSON_EVENT:
        lv, rv = left[c], right[c]
        same = values_equal("json", "j", "j", lv, rv) if c in _JSON_EVENT else lv == rv
        if not same:
            cls = "json" if c in _JSON_EVENT else "value"
            out.append({"field": c, "left": _output(lv, cls), "right": _output(rv, cls)})
    return out


def _segment_sig(segment: dict[str, Any]) -> tuple[Any, ...]:
    return (segment["digest"], segment["min_offset"], segment["max_offset"], segment["rows"])


class _LogCompare:
    """Two stores as logs: the first divergent offset, then missing, extra and changed events."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, left: Store, right: Store, entity: str | None, by: str, limit: int
    ) -> None:
        self.con = con
        self.left = left
        self.right = right
        self.entity = entity
        self.by = by
        self.limit = limit
        self.align = ["offset"] if by == "offset" else ["_stream", "_pos", "_seq"]
        # a transaction name the reader made up (a capture without xids) holds the read's own token,
        # no content: compared by its transaction's size, which (events in one order) tells its bounds
        unnamed = (f"CASE WHEN starts_with(txn.id, {sql_string(UNNAMED)}) THEN struct_update(txn, id := "
                   f"{sql_string(UNNAMED)} || regexp_extract(txn.id, '^{UNNAMED}([0-9]+)', 1)) ELSE txn END AS txn")  # fmt: skip
        self.cols = ", ".join(sql_ident(c) for c in _EVENT_COLUMNS)  # of the _lt_?e views
        self.raw_cols = ", ".join(unnamed if c == "txn" else sql_ident(c) for c in _EVENT_COLUMNS)  # of the events
        self.reordered: Difference | None = None  # where the logs differ only in order

    def run(self) -> DiffResult:
        ls, rs = self.left.state(), self.right.state()
        shared: set[tuple[Any, ...]] = set()
        if self.by == "offset":
            # A segment digest covers its events' salted digests: equal digests at the same offsets
            # are the same events (one store is a copy of the other), so they are not read.
            shared = {_segment_sig(s) for s in ls.segments} & {_segment_sig(s) for s in rs.segments}
        lfiles = [str(self.left.path / s["path"]) for s in ls.segments if _segment_sig(s) not in shared]
        rfiles = [str(self.right.path / s["path"]) for s in rs.segments if _segment_sig(s) not in shared]
        result = DiffResult(str(self.left.path), str(self.right.path), "log")
        result.info["by"] = self.by
        result.info["segments"] = {
            "left": len(ls.segments), "right": len(rs.segments), "shared": len(shared),
            "read_left": len(lfiles), "read_right": len(rfiles),
        }  # fmt: skip
        result.info["left_event"] = result.info["right_event"] = None
        if not lfiles and not rfiles:
            return result
        _comparators(self.con)
        self._views(lfiles, rfiles)
        first = self._first_by_offset() if self.by == "offset" else self._search("true", "true")
        if first is None:
            return result
        *where, lo, ro = first
        result.same = False
        result.first_divergent_offset = lo if lo is not None else ro
        result.info["left_event"] = self._fetch_event("l", lo)
        result.info["right_event"] = self._fetch_event("r", ro)
        if self.by == "position":
            # the position as the source wrote it (what --at-position takes), not its sort form
            event = result.info["left_event"] or result.info["right_event"]
            result.info["first_divergent_position"] = event["source"].get("position") if event else None
            stream, pos, seq = (sql_string(where[0]), sql_string(where[1]), int(where[2]))
            tail = (f"(_stream > {stream} OR (_stream = {stream} AND (_pos > {pos} OR (_pos = {pos} "
                    f"AND _seq >= {seq}))))")  # fmt: skip
        else:
            tail = f'"offset" >= {int(where[0])}'
        self._tail(tail)
        n = self.con.execute(
            "SELECT count(*) FILTER (WHERE lo IS NOT NULL AND ro IS NOT NULL), count(*) FILTER (WHERE ro IS NULL), "
            "count(*) FILTER (WHERE lo IS NULL) FROM _lt_pairs"
        ).fetchall()[0]
        result.changed, result.only_left, result.only_right = (int(x) for x in n)
        if not any(n):  # the same events after the divergence, in another order
            self.reordered = {"scope": "log", "change": "reordered", "offset": result.first_divergent_offset,
                              "left": result.info["left_event"], "right": result.info["right_event"]}  # fmt: skip
        result._listing = self._listing
        result.examples = list(itertools.islice(self._listing(), self.limit))
        return result

    # ------------------------------------------------------------------ steps

    def _views(self, lfiles: list[str], rfiles: list[str]) -> None:
        where = f"WHERE entity = {sql_string(self.entity)}" if self.entity is not None else ""
        align = ""
        if self.by == "position":
            # A Kafka position (partition/offset) is one topic's: a capture of several topics is
            # aligned by topic too (two consumers interleave topics each their own way)
            stream = "coalesce(CASE WHEN source.format = 'kcat' THEN json_extract_string(meta, '$.kafka.topic') END, '')"
            align = (f", {stream} AS _stream, source.position_order AS _pos, row_number() OVER "
                     f'(PARTITION BY {stream}, source.position_order ORDER BY "offset") AS _seq')  # fmt: skip
        for side, store, files in (("l", self.left, lfiles), ("r", self.right, rfiles)):
            store.events_view(self.con, f"_lt_{side}raw", files=files)
            self.con.execute(
                f"CREATE OR REPLACE VIEW _lt_{side}e AS SELECT {self.raw_cols}{align} FROM _lt_{side}raw {where}"
            )
            if self.by == "position":
                missing = self.con.execute(f"SELECT count(*) FROM _lt_{side}e WHERE _pos IS NULL").fetchall()[0][0]
                if missing:
                    raise UsageError(
                        f"{store.path}: {counted(missing, 'event')} {'has' if missing == 1 else 'have'} no source position to align by",
                        "align by offset (leave out --by position)",
                    )

    def _first_by_offset(self) -> tuple[Any, ...] | None:
        """Compare windows of offsets by an order-bound hash of their events; search only the
        windows whose hashes differ, in order, until a real difference is found."""
        placed = _content_hash(offset=True)

        def windows(view: str) -> str:
            return f'SELECT "offset" // {WINDOW} AS w, count(*) AS n, bit_xor({placed}) AS x FROM {view} GROUP BY w'

        differing = self.con.execute(
            f"SELECT coalesce(a.w, b.w) AS w FROM ({windows('_lt_le')}) a FULL OUTER JOIN ({windows('_lt_re')}) b "
            "ON a.w = b.w WHERE a.n IS DISTINCT FROM b.n OR a.x IS DISTINCT FROM b.x ORDER BY w"
        ).fetchall()
        for (w,) in differing:
            where = f'"offset" >= {w * WINDOW} AND "offset" < {(w + 1) * WINDOW}'
            found = self._search(where, where)
            if found is not None:
                return found
        return None

    def _search(self, lwhere: str, rwhere: str) -> tuple[Any, ...] | None:
        """The first aligned pair of events that differ: (alignment values..., left offset, right offset)."""
        on = " AND ".join(f"l.{sql_ident(a)} = r.{sql_ident(a)}" for a in self.align)
        aligned = ", ".join(f"coalesce(l.{sql_ident(a)}, r.{sql_ident(a)}) AS a{i}" for i, a in enumerate(self.align))
        hard = " OR ".join(f"l.{sql_ident(c)} IS DISTINCT FROM r.{sql_ident(c)}" for c in _EXACT_EVENT)
        soft = ", ".join(
            f"l.{c} IS DISTINCT FROM r.{c} AS j{i}, l.{c} AS l_{c}, r.{c} AS r_{c}" for i, c in enumerate(_JSON_EVENT)
        )
        any_soft = " OR ".join(f"j{i}" for i in range(len(_JSON_EVENT)))
        self.con.execute(f"""
            CREATE OR REPLACE TABLE _lt_cand AS SELECT * FROM (
              SELECT {aligned}, l."offset" AS lo, r."offset" AS ro,
                     l."offset" IS NULL OR r."offset" IS NULL OR {hard} AS hard, {soft}
              FROM (SELECT * FROM _lt_le WHERE {lwhere}) l FULL OUTER JOIN (SELECT * FROM _lt_re WHERE {rwhere}) r ON {on}
            ) WHERE hard OR {any_soft}""")
        for i, c in enumerate(_JSON_EVENT):
            self.con.execute(
                f"UPDATE _lt_cand SET j{i} = NOT _lt_equal('json', 'j', 'j', l_{c}, r_{c}) WHERE j{i} AND NOT hard"
            )
        order = ", ".join(f"a{i}" for i in range(len(self.align)))
        rows = self.con.execute(
            f"SELECT {order}, lo, ro FROM _lt_cand WHERE hard OR {any_soft} ORDER BY {order} LIMIT 1"
        ).fetchall()
        return tuple(rows[0]) if rows else None

    def _tail(self, where: str) -> None:
        """From the divergence on: match events by content (as multisets, so a missing or an extra
        event does not shift everything after it); the unmatched ones of one entity, key and time
        on both sides are changed events, the others missing (left only) or extra (right only)."""
        content = _content_hash()
        for side in "lr":
            self.con.execute(
                f'CREATE OR REPLACE TABLE _lt_{side}h AS SELECT "offset", {content} AS _h '
                f"FROM _lt_{side}e WHERE {where}"
            )
        self.con.execute(
            "CREATE OR REPLACE TABLE _lt_net AS SELECT _h, sum(s) AS net FROM "
            "(SELECT _h, 1 AS s FROM _lt_lh UNION ALL SELECT _h, -1 AS s FROM _lt_rh) GROUP BY _h HAVING sum(s) <> 0"
        )
        canon = _content_hash(canonical_json=True)
        for side, sign in (("l", 1), ("r", -1)):
            # The unmatched copies of a content are its last ones on the side that has more.
            self.con.execute(f"""
                CREATE OR REPLACE TABLE _lt_{side}u AS
                SELECT {self.cols}, {canon} AS _c FROM _lt_{side}e WHERE "offset" IN (
                  SELECT "offset" FROM (
                    SELECT h."offset", {sign} * n.net AS k,
                           row_number() OVER (PARTITION BY h._h ORDER BY h."offset" DESC) AS rn
                    FROM _lt_{side}h h JOIN _lt_net n ON h._h = n._h WHERE {sign} * n.net > 0)
                  WHERE rn <= k)""")
            self.con.execute(
                f"CREATE OR REPLACE TABLE _lt_{side}r AS SELECT *, "
                f'row_number() OVER (PARTITION BY _c ORDER BY "offset") AS _rn FROM _lt_{side}u'
            )
        # Events unmatched only because their JSON is written differently match by canonical content.
        for side, other in (("l", "r"), ("r", "l")):
            self.con.execute(
                f"CREATE OR REPLACE TABLE _lt_{side}2 AS SELECT a.* FROM _lt_{side}r a "
                f"ANTI JOIN _lt_{other}r b ON a._c = b._c AND a._rn = b._rn"
            )
        ident = "entity, key, ts"
        ranked = f'SELECT "offset", {ident}, row_number() OVER (PARTITION BY {ident} ORDER BY "offset") AS rn FROM'
        self.con.execute(f"""
            CREATE OR REPLACE TABLE _lt_pairs AS
            SELECT l."offset" AS lo, r."offset" AS ro FROM ({ranked} _lt_l2) l FULL OUTER JOIN ({ranked} _lt_r2) r
              ON l.entity IS NOT DISTINCT FROM r.entity AND l.key IS NOT DISTINCT FROM r.key
              AND l.ts IS NOT DISTINCT FROM r.ts AND l.rn = r.rn""")

    def _fetch_event(self, side: str, offset: int | None) -> dict[str, Any] | None:
        if offset is None:
            return None
        cur = _cursor(self.con)
        cur.execute(f'SELECT {self.raw_cols} FROM _lt_{side}raw WHERE "offset" = {int(offset)}')
        rows = cur.fetchall()
        return _event([d[0] for d in cur.description], rows[0]) if rows else None

    def _listing(self) -> Iterator[Difference]:
        if self.reordered is not None:
            yield self.reordered
        lcols = ", ".join(f"l.{sql_ident(c)} AS {sql_ident('l_' + c)}" for c in _EVENT_COLUMNS)
        rcols = ", ".join(f"r.{sql_ident(c)} AS {sql_ident('r_' + c)}" for c in _EVENT_COLUMNS)
        cur = _cursor(self.con)
        cur.execute(f"""
            SELECT {lcols}, {rcols} FROM _lt_pairs p
            LEFT JOIN _lt_l2 l ON l."offset" = p.lo LEFT JOIN _lt_r2 r ON r."offset" = p.ro
            ORDER BY coalesce(p.lo, p.ro), p.ro NULLS FIRST""")
        n = len(_EVENT_COLUMNS)
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                return
            for row in rows:
                left = dict(zip(_EVENT_COLUMNS, row[:n], strict=True))
                right = dict(zip(_EVENT_COLUMNS, row[n:], strict=True))
                lev, rev = _event(_EVENT_COLUMNS, row[:n]), _event(_EVENT_COLUMNS, row[n:])
                if lev is not None and rev is not None:
                    yield {"scope": "log", "change": "changed", "left": lev, "right": rev,
                           "fields": _event_changes(left, right)}  # fmt: skip
                elif lev is not None:
                    yield {"scope": "log", "change": "only_left", "event": lev}
                else:
                    yield {"scope": "log", "change": "only_right", "event": rev}


# --------------------------------------------------------------------------- states and dumps


def replay_available() -> bool:
    """Whether this logtool can replay a store to a state (states can be compared)."""
    import logtool

    try:
        return hasattr(logtool, "replay")
    except ImportError:
        return False


_replay_warnings: list[str] = []  # a diff's replays' warnings, for its notes (reset by `diff`)


def _replay(store: Store, at: _At, entity: str | None) -> Any:
    import logtool

    if not replay_available():
        raise UsageError(
            "comparing a store's state needs replay, which this logtool does not have",
            "compare two stores as logs (leave out --at-offset, --at-time and --at-position), or two table dumps",
        )
    result = logtool.replay(str(store.path), entity=entity, **at.replay_args())
    _replay_warnings.extend(f"{store.path}: {w}" for w in result.warnings)
    return result


def _json_fields(table: pa.Table) -> frozenset[str]:
    """Columns of an Arrow table that hold JSON text (marked by metadata or by the JSON type)."""
    out = set()
    for f in table.schema:
        if (f.metadata or {}).get(b"logtool.json") == b"1" or getattr(f.type, "extension_name", "") == "arrow.json":
            out.add(f.name)
    return frozenset(out)


def _kind(spec: Any) -> str:
    """What a LEFT or RIGHT is: store, parquet, csv or arrow (a pyarrow Table)."""
    if not isinstance(spec, str | Path):
        import pyarrow as pa

        if isinstance(spec, pa.Table):
            return "arrow"
        raise UsageError(f"cannot compare a {type(spec).__name__}", "give a store, a Parquet or CSV file, or a Table")
    path = Path(spec)
    if path.is_dir():
        from .store import Store

        Store.open(path)  # says what the directory is, if not a store
        return "store"
    if not path.exists():
        raise InputError(str(path), None, "no such store or file", "check the path")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return "parquet"
    if re.search(r"\.(csv|tsv)(\.gz|\.zst)?$", path.name, re.IGNORECASE):
        return "csv"
    raise InputError(
        str(path), None, "is neither a store, a Parquet file nor a .csv/.tsv file", "name a store directory or a table dump"
    )


def _open_table(con: duckdb.DuckDBPyConnection, spec: Any, kind: str, view: str) -> _Table:
    """A dump (Parquet, CSV or an Arrow table) as a view."""
    import duckdb

    if kind == "arrow":
        con.register(f"{view}_arrow", spec)
        return _view(con, "<table>", view, f"{view}_arrow", spec.column_names, json_columns=_json_fields(spec))
    path = sql_string(str(spec))
    wide: list[str] = []
    names: list[str] | None = None
    if kind == "parquet":
        source = f"read_parquet({path})"
        try:
            names = _parquet_names(con, path)
        except duckdb.Error:
            names = None  # not readable: said below
        try:
            wide = [n for (n,) in con.execute(f"SELECT name FROM parquet_schema({path}) WHERE precision > 38").fetchall()]
        except duckdb.Error:
            wide = []  # not readable: said below
        if wide:
            # DuckDB reads a decimal wider than 38 digits through float64: pyarrow gives its exact
            # text, compared as a number without a type (as a CSV field is)
            from .formats.parquet import decimals_as_text

            con.register(f"{view}_wide", decimals_as_text(str(spec)))
            con.execute(f"CREATE OR REPLACE TEMP TABLE {view}_rows AS SELECT * FROM {view}_wide")
            con.unregister(f"{view}_wide")
            source = f"{view}_rows"
    else:
        delim, names, text = _csv_header(spec)
        if text:
            _copy_text_macros(con)
            if names:
                names = [con.execute("SELECT _lt_copy_text(?)", [n]).fetchall()[0][0] for n in names]
        # PostgreSQL's CSV: an unquoted empty field is NULL, a quoted "" is the empty string. The
        # header's names are given (a row of another width is then an error naming its line), as
        # DuckDB takes them: two that differ only in case by position
        given = (", auto_detect = false, strict_mode = true, columns = {"
                 + ", ".join(f"{sql_string(n)}: 'VARCHAR'" for n in _positional(names) or names)
                 + "}") if names else ""  # fmt: skip
        quoting = "quote = '', escape = ''" if text else "allow_quoted_nulls = false, quote = '\"', escape = '\"'"
        source = (f"read_csv({path}, header = true, all_varchar = true, delim = {sql_string(delim)}, "
                  f"{quoting}{given})")  # fmt: skip
        if text:
            source = f"(SELECT _lt_copy_text(COLUMNS(*)) FROM {source})"
    try:
        return _view(con, str(spec), view, source, names, untyped=kind == "csv", untyped_columns=frozenset(wide))
    except duckdb.Error as e:
        raise InputError(str(spec), None, f"cannot be read as {kind}: {_first_line(e)}") from None


def _positional(names: Sequence[str]) -> list[str] | None:
    """Names for a table's columns by position, where two of its names differ only in case (DuckDB
    would rename one: `Name` and `name` become `Name` and `name_1`); None where they do not."""
    if len({n.lower() for n in names}) == len(names):
        return None
    return [f"__logtool_{i}__" for i in range(len(names))]


def _view(
    con: duckdb.DuckDBPyConnection, label: str, view: str, source: str, names: Sequence[str] | None, **kwargs: Any
) -> _Table:
    """A view of a source whose columns have the given names (None: as DuckDB names them), each
    column known by its own name whatever its case."""
    positional = _positional(names) if names else None
    aliases = f" AS _s({', '.join(map(sql_ident, positional))})" if positional else ""
    con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {source}{aliases}")
    columns = _columns(con, view)
    if names and len(names) == len(columns):
        columns = [(n, t) for n, (_, t) in zip(names, columns, strict=True)]
    idents = dict(zip(names, positional, strict=True)) if names and positional else {}
    return _Table(label, view, columns, idents=idents, **kwargs)


def _parquet_names(con: duckdb.DuckDBPyConnection, path: str) -> list[str]:
    """A Parquet file's column names, as written (its schema lists each column, then what it holds)."""
    rows = con.execute(f"SELECT name, num_children FROM parquet_schema({path})").fetchall()
    names, i = [], 1  # (the first element is the schema's root)
    while i < len(rows):
        names.append(str(rows[i][0]))
        i, pending = i + 1, rows[i][1] or 0
        while pending:  # skip what the column holds, at every depth
            pending += (rows[i][1] or 0) - 1
            i += 1
    return names


#: A tab-separated dump's name: read in PostgreSQL's COPY text format.
_TSV = re.compile(r"\.tsv(\.gz|\.zst)?$", re.IGNORECASE)


def _csv_header(spec: Any) -> tuple[str, list[str] | None, bool]:
    """A CSV dump's delimiter, read from its header as ingest reads it (a comma, else semicolons,
    tabs or pipes), its column names where DuckDB can be given them (None: let it find them), and
    whether it is in PostgreSQL's COPY text format: a `.tsv` file, tab-separated, whose header
    quotes no name (a quoted name is CSV's). A header naming a column twice is refused, as ingest
    refuses it: DuckDB would rename one, to a column that is not in the file."""
    import csv
    import io

    from .formats.base import Source
    from .formats.csv import DELIMITERS, delimiter, header_names

    try:
        with Source(str(spec)).open() as raw, io.TextIOWrapper(raw, "utf-8-sig", errors="surrogateescape", newline="") as f:
            first = f.readline()
    except Exception:  # not readable (or a damaged .gz or .zst): said where DuckDB reads it
        return ",", None, False
    if not first.strip():
        raise InputError(str(spec), 1, "the file is empty: no header names its columns", "dump the table with its header")
    delim = delimiter(first)
    fields = first.rstrip("\r\n").split("\t")
    tsv = _TSV.search(str(spec)) is not None
    if tsv and ("\t" in first or not any(d in first for d in DELIMITERS)):
        delim = "\t"  # (one column, or names holding a comma: COPY's text format writes them bare)
    text = tsv and delim == "\t" and not any(f.strip().startswith('"') for f in fields)
    names = header_names(str(spec), fields if text else next(csv.reader([first], delimiter=delim), []))
    return delim, names if all(names) else None, text


#: PostgreSQL's COPY text format, field by field as read with an empty field as NULL (DuckDB drops
#: an empty line, which is a row of a one-column table holding ''): NULL is '' and `\N` NULL; a
#: backslash escape is decoded, as PostgreSQL reads it: `\b \f \n \r \t \v`, one to three octal
#: digits or `x` and one or two hex digits (a byte: bytes make UTF-8 together), else the character
#: itself (`\\`). ``_lt_copy_escape`` is what follows one backslash, as bytes.
_COPY_TEXT_SQL = (
    r"""CREATE OR REPLACE TEMP MACRO _lt_copy_escape(q) AS CASE
        WHEN q = '' THEN encode('\')
        WHEN regexp_matches(q, '^[0-7]') THEN
            unhex(printf('%02x', list_reduce(list_transform(string_split(regexp_extract(q, '^[0-7]{1,3}'), ''),
                                                            lambda d: d::INTEGER), lambda a, b: a * 8 + b) % 256))
            || encode(substr(q, 1 + length(regexp_extract(q, '^[0-7]{1,3}'))))
        WHEN regexp_matches(q, '^x[0-9a-fA-F]') THEN
            unhex(lpad(regexp_extract(q, '^x([0-9a-fA-F]{1,2})', 1), 2, '0'))
            || encode(substr(q, 2 + length(regexp_extract(q, '^x([0-9a-fA-F]{1,2})', 1))))
        ELSE encode(CASE q[1] WHEN 'b' THEN chr(8) WHEN 'f' THEN chr(12) WHEN 'n' THEN chr(10) WHEN 'r' THEN chr(13)
                    WHEN 't' THEN chr(9) WHEN 'v' THEN chr(11) ELSE q[1] END || q[2:])
        END""",
    # the text is cut at each escaped backslash first: what is left holds each escape whole
    r"""CREATE OR REPLACE TEMP MACRO _lt_copy_text(x) AS CASE
        WHEN x IS NULL THEN '' WHEN x = '\N' THEN NULL WHEN NOT contains(x, '\') THEN x
        ELSE decode(list_reduce(list_transform(string_split(x, '\\'), lambda p: list_reduce(
            list_transform(string_split(p, '\'), lambda q, i: CASE WHEN i = 1 THEN encode(q) ELSE _lt_copy_escape(q) END),
            lambda a, b: a || b)), lambda a, b: a || encode('\') || b))
        END""",
)


def _copy_text_macros(con: duckdb.DuckDBPyConnection) -> None:
    for statement in _COPY_TEXT_SQL:
        con.execute(statement)


def _store_keys(store: Store, entity: str) -> tuple[str, ...]:
    """The key fields the store's last ingest named for an entity."""
    from .formats.base import Mapping

    for commit in reversed(store.commits()):
        keys = commit.get("params", {}).get("mapping", {}).get("key_fields")
        if commit.get("operation") == "ingest" and keys:
            return Mapping(key_fields=tuple(keys)).keys_for(entity)
    return ()


def _store_entity(store: Store, entity: str | None) -> tuple[str, str | None]:
    """The entity to compare with a dump, and a note where the store holds none of its events
    (an empty side: a table purged whole, or a name mistyped, which the note shows)."""
    from .query import events_connection

    entities = [
        r[0] for r in events_connection(store).execute("SELECT DISTINCT entity FROM events ORDER BY 1").fetchall()
    ]
    if entity is not None and entity not in entities:
        return entity, (f"{store.path} holds no events of entity {entity!r}: compared as an empty side "
                        f"(its entities: {', '.join(map(repr, entities[:10])) or 'none'})")  # fmt: skip
    if not entities:
        raise UsageError(f"{store.path} holds no events: there is no table to compare", "ingest into it first")
    if entity is None:
        if len(entities) == 1:
            return str(entities[0]), None
        raise UsageError(
            f"{store.path} holds {len(entities)} entities: name the one the dump holds",
            f"add --entity (one of: {', '.join(entities[:10])})",
        )
    return entity, None


def _store_table(
    con: duckdb.DuckDBPyConnection, store: Store, at: _At, entity: str, view: str, other: _Table,
    absent: bool = False,
) -> _Table:
    """A store's entity replayed to a table (typed columns); an entity with no live rows at the
    target (or, ``absent``, no events at all) is an empty table of the other side's columns."""
    import pyarrow as pa

    table = None if absent else _replay(store, at, entity).tables().get(entity)
    label = f"{store.path}:{entity}{at.label}"
    if table is None:
        con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {other.view} LIMIT 0")
        return _Table(label, view, list(other.columns), other.untyped, other.json_columns, idents=dict(other.idents))
    # The key fields an ingest took out of the rows (the default mapping) come back from the
    # store's key: its text carries no type, so it is read as the dump's column type, as CSV is.
    key = table.column_names[0]  # the store's key (`key`, or `_key` where a row has a `key` column)
    theirs = {c for c, _ in other.columns}
    # (a dump with the store's key column and without the key field is the store's own export)
    derived = [k for k in _store_keys(store, entity)
               if k not in table.column_names and not (key in theirs and k not in theirs)]  # fmt: skip
    if derived:
        if len(_store_keys(store, entity)) == 1:
            table = table.append_column(derived[0], table.column(key))
        else:
            keys = table.column(key).to_pylist()
            for name in derived:
                table = table.append_column(name, pa.array([_key_member(k, name) for k in keys], pa.string()))
    if key not in {c for c, _ in other.columns}:
        # replay puts the store's canonical key first; the dump has the key columns themselves
        table = table.drop_columns([key])
    # a decimal wider than 38 digits (DuckDB reads none) is compared as its exact text, as a dump's
    wide = [f.name for f in table.schema if pa.types.is_decimal256(f.type)]
    for name in wide:
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(pa.string()))
    derived += wide
    found = _open_table(con, table, "arrow", view)
    found.label = label
    # Against a CSV dump, whose fields carry no type, the store's strings carry none either: JSON
    # has no type for an instant, say, so `2026-03-01T12:00:00Z` meets `2026-03-01 12:00:00+00`.
    found.untyped_columns = frozenset(derived)
    found.json_numbers = True
    found.json_text_columns = frozenset(table.column_names) - found.untyped_columns if other.untyped else frozenset()
    return found


def _key_member(key: str | None, name: str) -> str | None:
    """One field of a composite key's text (a JSON object), as text: strings bare."""
    if key is None:
        return None
    value = loads_exact(key).get(name)
    return None if value is None else value if isinstance(value, str) else dumps_exact(value)


def _table_result(cmp: _TableCompare, mode: str, limit: int, info: dict[str, Any]) -> DiffResult:
    result = DiffResult(cmp.left.label, cmp.right.label, mode, same=cmp.same)
    result.only_left, result.only_right, result.changed = cmp.only_left, cmp.only_right, cmp.changed
    result.info = {
        **info,
        "key_columns": list(cmp.keys),
        "columns_only_left": cmp.only_left_columns,
        "columns_only_right": cmp.only_right_columns,
    }
    result._listing = cmp.listing
    result.examples = list(itertools.islice(cmp.listing(), limit))
    return result


def _compare_states(
    con: duckdb.DuckDBPyConnection,
    lstate: pa.Table,
    rstate: pa.Table,
    labels: tuple[str, str],
    tolerance: Decimal | None,
    limit: int,
    at: _At,
) -> DiffResult:
    """Two replayed states (entity, key, state JSON): keyed rows on (entity, key); the rows of
    keyless tables (null key) as multisets per entity."""
    tables = {}
    for side, state, label in (("l", lstate, labels[0]), ("r", rstate, labels[1])):
        con.register(f"_lt_{side}state", state)
        for part, where, cols in (
            ("k", "key IS NOT NULL", "entity, key, state"),
            ("n", "key IS NULL", "entity, state"),
        ):
            view = f"_lt_{side}s{part}"
            con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT {cols} FROM _lt_{side}state WHERE {where}")
            tables[side, part] = _Table(label, view, _columns(con, view), row_json="state")
    keyed = _TableCompare(
        con, tables["l", "k"], tables["r", "k"], ("entity", "key"), tolerance, "_lt_sk", "state"
    ).run()
    keyless = _TableCompare(con, tables["l", "n"], tables["r", "n"], (), None, "_lt_sn", "state").run()

    def listing() -> Iterator[Difference]:
        yield from keyed.listing()
        yield from keyless.listing()

    result = DiffResult(labels[0], labels[1], "state", same=keyed.same and keyless.same)
    result.only_left = keyed.only_left + keyless.only_left
    result.only_right = keyed.only_right + keyless.only_right
    result.changed = keyed.changed
    result.info = {**at.info(), "key_columns": ["entity", "key"]}
    result._listing = listing
    result.examples = list(itertools.islice(listing(), limit))
    return result


def _state_diff(
    con: duckdb.DuckDBPyConnection,
    left: Store,
    right: Store,
    at: _At,
    entity: str | None,
    tolerance: Decimal | None,
    limit: int,
) -> DiffResult:
    lstate, rstate = _entity_state(left, at, entity), _entity_state(right, at, entity)
    return _compare_states(con, lstate, rstate, (str(left.path), str(right.path)), tolerance, limit, at)


def _entity_state(store: Store, at: _At, entity: str | None) -> pa.Table:
    """A store's state (of one entity): an entity the store has no events of is an empty state
    there, a difference to show, not an error (both stores lacking it was refused before)."""
    from .errors import NotFoundError

    try:
        return _replay(store, at, entity).state
    except NotFoundError:
        if entity is None:
            raise
        import pyarrow as pa

        return pa.table({"entity": pa.array([], pa.string()), "key": pa.array([], pa.string()),
                         "state": pa.array([], pa.string())})  # fmt: skip


def _check_entity(stores: Sequence[Store], entity: str | None) -> None:
    """An --entity neither store holds is a mistake (a typo), not two equal empty sides."""
    from .query import events_connection

    if entity is None:
        return
    named = f"entity = {sql_string(entity)}"
    for store in stores:
        if events_connection(store).execute(f"SELECT 1 FROM events WHERE {named} LIMIT 1").fetchall():
            return
    entities = sorted({e for store in stores for (e,) in events_connection(store).execute(
        "SELECT DISTINCT entity FROM events").fetchall()})  # fmt: skip
    raise UsageError(
        f"--entity {entity!r}: neither store has events of it",
        f"their entities: {', '.join(map(repr, entities[:20]))}{', ...' if len(entities) > 20 else ''}",
    )


def _tolerance(value: float | str | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    try:
        tolerance = Decimal(str(value))
    except InvalidOperation:
        raise UsageError(f"--float-tolerance must be a number, not {value!r}") from None
    if not tolerance.is_finite() or tolerance < 0:
        raise UsageError(f"--float-tolerance must be a number of at least 0, not {value!r}")
    return tolerance


# --------------------------------------------------------------------------- the verb


@reads_latest
def diff(
    left: str | Path | pa.Table,
    right: str | Path | pa.Table,
    *,
    at_offset: int | None = None,
    at_time: str | None = None,
    at_position: str | None = None,
    entity: str | None = None,
    key_columns: Sequence[str] = (),
    float_tolerance: float | str | Decimal | None = None,
    limit: int = 10,
    by: str = "offset",
) -> DiffResult:
    """Compare two replicas: two stores (as logs, then their states at the head, or their states
    at a target: ``at_offset``, ``at_time`` or ``at_position``, as replay takes them), a store's
    ``entity`` (replayed to the target) against a table dump, or two dumps (Parquet, CSV or
    pyarrow Tables) on ``key_columns`` (none: as multisets of rows).

    ``by="position"`` aligns two logs by source position instead of offset (logs captured
    separately from one source). ``float_tolerance`` lets floating-point values, and numbers
    without a type (in JSON and CSV), differ by that much. ``limit`` caps ``examples``.
    """
    import duckdb

    tolerance = _tolerance(float_tolerance)
    if limit < 0:
        raise UsageError(f"--limit must be at least 0, not {limit}")
    limit = min(limit, sys.maxsize)  # more than any comparison holds: all of them
    if by not in BY:
        raise UsageError(f"--by must be one of {', '.join(BY)}, not {by!r}")
    if at_offset is not None and at_offset < 0:
        raise UsageError(f"--at-offset must be at least 0, not {at_offset}")
    if sum(t is not None for t in (at_offset, at_time, at_position)) > 1:
        raise UsageError("give at most one of --at-offset, --at-time, --at-position")
    at = _At(at_offset, at_time, at_position)
    kinds = (_kind(left), _kind(right))
    con = _connect(tolerance)
    _replay_warnings.clear()
    try:
        if kinds == ("store", "store"):
            from .store import Store

            result = _two_stores(con, Store.open(left), Store.open(right), at, entity, key_columns, tolerance,
                                 limit, by)  # fmt: skip
        else:
            if by != "offset":
                raise UsageError("--by aligns two logs: it needs two stores")
            result = _two_tables(con, (left, right), kinds, at, entity, key_columns, tolerance, limit)
        result.notes += list(dict.fromkeys(_replay_warnings))  # what a replayed state cannot know
        return result
    except duckdb.Error as e:
        from .errors import interrupted
        from .store import damaged_store

        if interrupted(e):  # Ctrl-C, reaching the comparators DuckDB was calling
            raise KeyboardInterrupt from e
        if (damage := damaged_store(e)) is not None:
            raise damage from e
        if (trouble := engine_trouble(e)) is not None:  # the limit or the disk, not the sides, is at fault
            raise trouble from None
        text = str(e)
        if "CSV Error on Line" in text:  # which file, which line, what is wrong
            lines = text.splitlines()
            where = next((ln.split("=", 1)[1].strip() for ln in lines if ln.strip().startswith("file =")), "a CSV dump")
            line = lines[0].rsplit(" ", 1)[-1]
            line_no = int(line) if line.isdigit() else None
            if any(ln.startswith("Invalid unicode") for ln in lines):
                raise InputError(where, line_no, "not UTF-8: the line holds a byte sequence UTF-8 does not have",
                                 "the file must be UTF-8: convert it, e.g. with iconv") from None
            what = next((ln.strip() for ln in lines if ln.startswith("Expected Number of Columns")), lines[0])
            hint = "every row of a dump has the header's fields"
            if _TSV.search(where):
                hint += " (a .tsv is read in PostgreSQL's COPY text format; one with CSV's quoting, named .csv, is read as CSV)"
            raise InputError(where, line_no, what.replace("Expected Number of Columns: ", "expected ").replace(
                             " Found: ", " fields, found "), hint) from None  # fmt: skip
        raise UsageError(f"comparison failed: {_first_line(e)}", "check that both sides are readable") from None


def _two_stores(
    con: duckdb.DuckDBPyConnection,
    left: Store,
    right: Store,
    at: _At,
    entity: str | None,
    key_columns: Sequence[str],
    tolerance: Decimal | None,
    limit: int,
    by: str,
) -> DiffResult:
    for store in (left, right):
        store.check_segments_present()  # equal digests prove equal logs only where the files are there
    _check_entity((left, right), entity)
    if key_columns:
        raise UsageError(
            "--key-column is for table dumps: two stores are compared on their own keys",
            "leave out --key-column, or compare a store with a dump: logtool diff STORE dump.parquet --key-column id",
        )
    if at.given:
        if by != "offset":
            raise UsageError("--by aligns logs; --at-offset, --at-time and --at-position compare states: use one of them")
        return _state_diff(con, left, right, at, entity, tolerance, limit)
    result = _LogCompare(con, left, right, entity, by, limit).run()
    if not result.same:
        if replay_available():
            result.state = _state_diff(con, left, right, _HEAD, entity, tolerance, limit)
        else:
            result.notes.append("the head states were not compared: this logtool has no replay")
    return result


def _two_tables(
    con: duckdb.DuckDBPyConnection,
    specs: tuple[Any, Any],
    kinds: tuple[str, str],
    at: _At,
    entity: str | None,
    key_columns: Sequence[str],
    tolerance: Decimal | None,
    limit: int,
) -> DiffResult:
    keys = tuple(key_columns)
    if "store" not in kinds:
        if at.given or entity is not None:
            raise UsageError("--at-offset, --at-time, --at-position and --entity name a state of a store; two dumps have none")
        lt = _open_table(con, specs[0], kinds[0], "_lt_lt")
        rt = _open_table(con, specs[1], kinds[1], "_lt_rt")
        return _table_result(_TableCompare(con, lt, rt, keys, tolerance, "_lt_t").run(), "table", limit, {})
    from .store import Store

    store_side = 0 if kinds[0] == "store" else 1
    store = Store.open(specs[store_side])
    dump_side = 1 - store_side
    dump = _open_table(con, specs[dump_side], kinds[dump_side], f"_lt_{'lr'[dump_side]}t")
    name, absent = _store_entity(store, entity)
    replayed = _store_table(con, store, at, name, f"_lt_{'lr'[store_side]}t", dump, absent is not None)
    lt, rt = (replayed, dump) if store_side == 0 else (dump, replayed)
    notes = [absent] if absent else []
    if not keys:
        inferred = _store_keys(store, name)
        names = {c for c, _ in lt.columns} & {c for c, _ in rt.columns}
        if inferred and set(inferred) <= names:
            keys = inferred
            notes.append(f"key columns from the store's mapping: {', '.join(keys)}")
        elif inferred and replayed.columns and replayed.columns[0][0] in names:
            keys = (replayed.columns[0][0],)  # the store's own export: its key column
            notes.append(f"key column: {keys[0]} (the store's key, as its export writes it)")
        elif inferred:
            # Falling back to multisets without a word would hide that the key was dropped: a dump
            # whose key column is named otherwise is compared on the other columns only.
            missing = [c for c in inferred if c not in names]
            notes.append(f"key columns from the store's mapping ({', '.join(inferred)}) are not on both sides "
                         f"(missing: {', '.join(missing)}): rows compared as multisets; "
                         "name the key with --key-column")  # fmt: skip
    result = _table_result(_TableCompare(con, lt, rt, keys, tolerance, "_lt_t").run(), "table", limit,
                           {"entity": name, **at.info()})  # fmt: skip
    result.notes += notes
    return result
