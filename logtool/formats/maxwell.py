"""Maxwell's daemon (MySQL binlog to JSON), one JSON record a line.

- ``type``: ``insert``, ``update``, ``delete`` as they are; ``bootstrap-insert`` is a ``read``
  (a snapshot row). ``table-drop`` truncates its table (``type`` says ``table-drop``, ``meta``
  keeps the statement). The other DDL records (``table-create``, ``table-alter``,
  ``database-*``) and ``bootstrap-start``/``bootstrap-complete`` are ``event``s of that type whose
  data is the record without its routing members: they change no row.
- ``entity``: ``database.table`` (``database`` for database DDL).
- ``ts``: ``ts``, in seconds for rows and in milliseconds for DDL, as Maxwell writes them.
- ``key``: ``primary_key_columns`` with ``primary_key`` (or the row's values of those columns);
  without them the ``--key-field`` columns of the row; else ``primary_key`` (output_primary_keys
  alone), whose columns are the row's columns holding its values, where exactly one holds each;
  else (Maxwell's default output) the columns Maxwell's Kafka key names (in a Kafka dump: see
  ``_kafka_key_columns``), else those of the primary key the table's last DDL record in
  the input stated (``def.primary-key`` of a ``table-create`` or ``table-alter``; a rename's
  ``def`` names the new table, whose key it states); else null, and
  the input's notes name each table whose rows went in so, unless its DDL stated no primary key.
  An update whose ``old`` changes a key column sets ``prev_key`` (``primary_key`` holds the new
  key). Where the row does not tell the key columns apart, the columns an earlier record of the
  table told are taken; else a lone ``primary_key`` value is the key as it is, unchanged where
  one of the columns that could hold it kept its value, moved where all of them changed from one
  value, and a bad record where they changed from several. Without ``--key-field``, a table
  whose first row in the input went in without a key (or whose rows in the store did) stays
  without one; a keyed table follows its primary key, a renamed key column keeping the key, and
  a key of other values warned of (see ``Tables``).
- ``data``: the row (Maxwell writes whole rows). An update's ``old`` holds the previous values
  of the columns that changed, so ``before`` is the row with ``old`` laid over it, and a column
  named in ``old`` but missing from ``data`` (``output_nulls=false``) was set to null. A delete's
  row is its ``before``; its data is null.
- ``txn``: ``xid``, with ``ts`` as its time; ``source.position``: ``position`` (``binlog-file:pos``);
  in a Kafka dump (the kcat reader), the Kafka position, ``position`` then kept in ``meta``.
- ``meta``: every other member (``commit``, ``xoffset``, ``server_id``, ``thread_id``, ``gtid``,
  ``query``, ``primary_key``...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import counted
from . import Format, keyless_hint
from .base import (
    Event,
    Mapping,
    Report,
    Source,
    check_mapping_for,
    dumps_exact,
    json_or_none,
    key_text,
    kind_of,
    loads_exact,
    parse_ts,
    qualified_name,
    read_json_lines,
    row_key,
    sniff_lines,
)

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "maxwell"

_ROW = {"insert": "insert", "update": "update", "delete": "delete", "bootstrap-insert": "read"}
_DDL = {"database-create", "database-alter", "database-drop", "table-create", "table-alter", "table-drop"}
_MARKERS = {"bootstrap-start", "bootstrap-complete"}
_ROUTING = ("database", "table", "type", "ts", "xid", "position")
_COLUMNS = (*_ROUTING, "data", "old")
_DDL_CONTENT = ("sql", "def", "old")


def decode_record(
    record: Any,
    where: dict[str, Any],
    mapping: Mapping,
    extra_meta: dict[str, Any] | None = None,
    tables: Tables | None = None,
    kafka_key: Any = None,
) -> Event:
    """One Maxwell record as an event.

    ``where`` is the event's ``source`` column: where its position is still None, the record's
    ``position`` fills it, else (a record read from a Kafka dump, at its Kafka position) the
    record's position is kept in ``meta``. ``extra_meta`` is merged into ``meta``. ``tables`` is
    what the records before it in the input told of their tables (see ``Tables``); ``kafka_key``
    the record's Kafka key, which tells its table's key columns where Maxwell wrote it. Raises
    ValueError for what is not a usable Maxwell record.
    """
    if not isinstance(record, dict):
        raise ValueError(f"a Maxwell record is a JSON object, not {kind_of(record)}")
    kind = record.get("type")
    if not isinstance(kind, str):
        raise ValueError("Maxwell record without a 'type'")
    if kind not in _ROW and kind not in _DDL and kind not in _MARKERS:
        raise ValueError(f"unknown Maxwell type {kind!r}")
    database, table = record.get("database"), record.get("table")
    if not isinstance(database, str):
        raise ValueError("Maxwell record without a 'database'")
    if not kind.startswith("database-") and not isinstance(table, str):
        raise ValueError(f"Maxwell {kind} record without a 'table'")
    entity = qualified_name(database, table) if isinstance(table, str) else database
    if tables is not None and kind in _DDL and isinstance(table, str):
        tables.ddl(kind, entity, record)
    if record.get("ts") is None:
        raise ValueError("Maxwell record without a 'ts'")
    try:
        ts = parse_ts(record["ts"], "ms" if kind in _DDL else "s")
    except ValueError as e:
        raise ValueError(f"ts: {e}") from None
    xid, position = record.get("xid"), record.get("position")
    extra = extra_meta or {}
    if where["position"] is not None and position is not None:
        extra = {"position": position, **extra}
    elif position is not None:
        where = {**where, "position": str(position)}
    event: Event = {
        "ts": ts,
        "entity": entity,
        "key": None,
        "data": None,
        "txn": None if xid is None else {"id": str(xid), "position": None, "ts": ts, "aborted": None},
        "source": where,
    }
    if kind not in _ROW:
        content = {k: record[k] for k in _DDL_CONTENT if k in record} if kind in _DDL else record.get("data")
        meta = {k: v for k, v in record.items() if k not in (*_ROUTING, *_DDL_CONTENT, "data")} | extra
        if kind == "table-drop":
            return {**event, "op": "truncate", "type": kind, "meta": dumps_exact({**meta, **(content or {})})}
        return {**event, "op": "event", "type": kind, "data": json_or_none(content), "meta": json_or_none(meta or None)}
    row, old = record.get("data"), record.get("old") or {}
    if not isinstance(row, dict):
        raise ValueError(f"Maxwell {kind} record without a 'data' row")
    if not isinstance(old, dict):
        raise ValueError(f"'old' is {kind_of(old)}, not the previous values of a row")
    before = {**row, **old} if kind == "update" else row if kind == "delete" else None
    told = _kafka_key_columns(kafka_key, database, table, row) if tables is not None and table else None
    if tables is not None and told is not None:
        tables.columns[entity] = told
    changed = old if kind == "update" else {}
    key, prev_key, names = _keys(record, row, changed, mapping, entity, tables)
    if tables is not None and not mapping.keys_for(entity):
        key, prev_key = tables.keep(entity, key, prev_key, names, row, changed, where.get("line"))
    if kind == "update":
        row = {**row, **{column: None for column in old if column not in row}}
    meta = {k: v for k, v in record.items() if k not in _COLUMNS} | extra
    return {
        **event,
        "op": _ROW[kind],
        "key": key,
        "prev_key": prev_key,
        "data": None if kind == "delete" else dumps_exact(row),
        "before": json_or_none(before),
        "meta": json_or_none(meta or None),
    }


def _keys(
    record: dict[str, Any],
    row: dict[str, Any],
    old: dict[str, Any],
    mapping: Mapping,
    entity: str,
    tables: Tables | None = None,
) -> tuple[str | None, str | None, tuple[str, ...] | None]:
    """The row's key, its key before an update that changed it (``old`` is an update's previous
    values; empty for other records), and the columns the key is of (None where a lone
    ``primary_key`` value is the key and no record told its column). ``tables`` keeps each
    table's key columns where a record told them, for the records that do not."""
    columns, values = record.get("primary_key_columns"), record.get("primary_key")
    if columns is not None and not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
        raise ValueError("primary_key_columns is not a list of column names")
    if values is not None and not isinstance(values, list):
        raise ValueError(f"primary_key is {kind_of(values)}, not a list of values")
    known = tables.columns.get(entity, ()) if tables is not None else ()
    # without primary_key (Maxwell's default) nor --key-field, the key its table's DDL stated
    names = tuple(columns) if columns else mapping.keys_for(entity) or (() if values else known)
    if names and values is not None and columns:
        if len(values) != len(names):
            raise ValueError(f"primary_key has {counted(len(values), 'value')} for {len(names)} primary_key_columns")
        key = key_text(values, names)
    elif names:
        key = row_key(row, names)
    elif values:
        names = _told_columns(values, row)
        if names and tables is not None:
            tables.columns[entity] = names
        names = names or _key_columns(values, row, old, known)
        if names:
            key = key_text(values, names)
        elif len(values) == 1:
            return key_text(values, ("key",)), None, None
        else:
            raise ValueError(
                "primary_key has several values and no primary_key_columns, and the row does not tell which"
                " columns hold them: pass --key-field, or enable Maxwell's output_primary_key_columns"
            )
    else:
        return None, None, ()
    return key, _moved_from(key, names, row, old), names


def _moved_from(key: str, names: tuple[str, ...], row: dict[str, Any], old: dict[str, Any]) -> str | None:
    """The key a row had before an update whose ``old`` changed a column of its key; else None."""
    before = {**row, **old}
    if not any(n in old for n in names) or any(n not in before for n in names):
        return None
    previous = row_key(before, names)
    return previous if previous != key else None


def _kafka_key_columns(key: Any, database: str, table: str, row: dict[str, Any]) -> tuple[str, ...] | None:
    """The key columns Maxwell's Kafka key for the row names, as the row's columns: the key is
    ``{"database": ..., "table": ..., "pk.id": 1}`` (``kafka_key_format=hash``, the default) or
    ``["db", "table", [{"id": 1}]]`` (``array``), its column names lowercased; () where it names
    none (the table has no primary key: a random ``_uuid`` stands in); None where it is no such key
    of the row's table, or a name fits none of the row's columns."""
    if isinstance(key, str) and key.startswith("["):
        try:
            key = loads_exact(key)
        except (ValueError, RecursionError):
            return None
    if isinstance(key, dict) and key.get("database") == database and key.get("table") == table:
        names = [name[3:] for name in key if name.startswith("pk.")]
        if not names and "_uuid" not in key:
            return None
    elif (
        isinstance(key, list) and len(key) == 3 and key[:2] == [database, table] and isinstance(key[2], list)
        and all(isinstance(pk, dict) and len(pk) == 1 for pk in key[2])
    ):  # fmt: skip
        names = [next(iter(pk)) for pk in key[2]]
    else:
        return None
    columns = []
    for name in names:
        fits = [c for c in row if c == name] or [c for c in row if c.lower() == name]
        if len(fits) != 1:
            return None
        columns.append(fits[0])
    return tuple(columns)


def _holders(values: list[Any], row: dict[str, Any]) -> list[list[str]]:
    """For each ``primary_key`` value, the row's columns holding it: of one type as well as equal
    (1 is not true, nor "1")."""
    return [[c for c, v in row.items() if type(v) is type(value) and v == value] for value in values]


def _told_columns(values: list[Any], row: dict[str, Any]) -> tuple[str, ...]:
    """The columns holding the ``primary_key`` values where exactly one column holds each (the
    row tells its key columns); else none."""
    names = tuple(h[0] for h in _holders(values, row) if len(h) == 1)
    return names if len(names) == len(values) and len(set(names)) == len(names) else ()


def _key_columns(
    values: list[Any], row: dict[str, Any], old: dict[str, Any], known: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """For a row that does not tell its key columns (``_told_columns``), the columns an earlier
    record of the table told (``known``) where they still hold the values; else none. Without
    ``primary_key_columns`` this is the only way to read an update that changed the key: Maxwell
    fills ``primary_key`` from the new row, and the old key is in ``old`` under its column. Where
    several columns could be the key and one of them kept its value, the key is taken to have kept
    it (a flag or a count that now equals the id is likelier than an update of the key); where all
    of them changed, the key changed, from the value they all had; where they had several, the
    record is refused. What is taken here is not learned: only a row that tells its columns is."""
    holders = _holders(values, row)
    if known and len(known) == len(values) and all(c in h for c, h in zip(known, holders, strict=True)):
        return known
    candidates = list(dict.fromkeys(column for h in holders for column in h))
    changed = [column for column in candidates if column in old]
    if len(changed) < len(candidates):
        return ()  # a column that could hold the key kept its value: a key is seldom what an update changes
    if len(values) == 1 and len({dumps_exact(old[c]) for c in candidates}) == 1:
        return (candidates[0],)  # whichever it is, the key changed, from the one value all of them had
    if changed:
        raise ValueError(
            f"the row does not tell which of its columns ({', '.join(candidates)}) hold primary_key"
            f" {dumps_exact(values)}, and 'old' changes {changed[0]}: cannot tell the row's old key;"
            " pass --key-field, or enable Maxwell's output_primary_key_columns"
        )
    return ()


class Tables:
    """What the records of one input told of their tables: their key columns, for the rows that
    do not carry their key (Maxwell's default output), and how their rows went in.

    A table whose first rows in the input went in without a key stays without one to the end of
    the input: rows that went in without a key (before anything in the input told the key, or,
    in the store, by an earlier ingest) are a multiset, which no key finds, so keying the later
    rows would put them out of reach of the earlier rows' updates and deletes. A keyed table
    follows its primary key as each row's record or its table's last DDL record states it: a
    renamed key column keeps the key (its values, under the names the rows went in by); a key of
    other values (widened, narrowed, another column) starts another key space, which the rows
    keyed before it are not in, and is warned of: keeping the old key would give rows the new key
    tells apart one key. A table-create or a rename's new name starts afresh (the table is new: no
    row of it was read before), as does a table-drop, which empties the table.
    """

    def __init__(self, source: Source | None = None) -> None:
        # each table's key columns, as its last DDL record stated them (() for none) or a record told them
        self.columns: dict[str, tuple[str, ...]] = {}
        # how each table's rows go in: keyed by its key columns, their values under these names
        # (the columns' names when the key space started: a rename keeps them); () without a key;
        # None by lone primary_key values whose column no record told
        self._keyed: dict[str, tuple[str, ...] | None] = {}
        self._now: dict[str, tuple[str, ...]] = {}  # the key columns by their names now, as _keyed orders them
        self._seen: dict[str, frozenset[str]] = {}  # the columns of each table's last row
        self._afresh: set[str] = set()  # created, renamed to or dropped in the input
        self._source = source
        self._store: tuple[set[str], set[str]] | None = None  # the store's entities with keyless rows, keyed rows
        self.keyless: dict[str, str] = {}  # the tables whose rows went in without a key though they may have one: why
        self.rekeyed: list[tuple[str, tuple[str, ...], tuple[str, ...], int | None]] = []  # (table, from, to, line)

    def ddl(self, kind: str, entity: str, record: dict[str, Any]) -> None:
        """Learn what a table's DDL record tells: its primary key (``def.primary-key``), and under
        which name (a rename's ``def`` names the new table, ``database`` and ``table`` the old)."""
        definition = record.get("def")
        definition = definition if isinstance(definition, dict) else {}
        told, target = definition.get("primary-key"), entity
        if kind == "table-alter" and isinstance(definition.get("table"), str):
            database = definition.get("database")
            target = qualified_name(database if isinstance(database, str) else record["database"], definition["table"])
        if target != entity:  # renamed: the old name holds no table now
            self.columns.pop(entity, None)
        if kind != "table-alter" or target != entity:
            self._keyed.pop(target, None)
            self._afresh.add(target)
        if isinstance(told, list) and all(isinstance(c, str) for c in told):
            self.columns[target] = tuple(told)  # () where the table has no primary key
        else:
            self.columns.pop(target, None)

    def keep(
        self,
        entity: str,
        key: str | None,
        prev_key: str | None,
        names: tuple[str, ...] | None,
        row: dict[str, Any],
        old: dict[str, Any],
        line: int | None = None,
    ) -> tuple[str | None, str | None]:
        """A row's key and previous key (``_keys``, of the columns ``names``) as its table's rows
        go in. ``line`` is the record's, for the warning of a key change."""
        seen, self._seen[entity] = self._seen.get(entity, frozenset()), frozenset(row)
        if entity not in self._keyed:  # the table's first row in the input
            stored = key is not None and entity not in self._afresh and entity in self._in_store()[0]
            self._keyed[entity] = () if key is None or stored else names
            self._now[entity] = names or ()
            if stored:
                self.keyless[entity] = "store"
        labels, now = self._keyed[entity], self._now[entity]
        if key is None and labels != ():  # the primary key was dropped: the rows after it go in without one
            if labels:
                self.rekeyed.append((entity, now, (), line))
            self._keyed[entity] = labels = ()
        if labels == ():
            return self._keyless(entity, key)
        if not names:  # (a lone primary_key value, its column untold, is its own text)
            return key, prev_key
        if labels is None or (names != now and not _renamed(now, names, row, seen)):
            if labels is not None:
                self.rekeyed.append((entity, now, names, line))
            self._keyed[entity] = self._now[entity] = labels = names
        self._now[entity] = names
        if labels == names:
            return key, prev_key
        # a renamed key column: its values, under the name the table's rows went in by
        kept = key_text([row[n] for n in names], labels)
        before = {**row, **old}
        moved = key_text([before[n] for n in names], labels) if any(n in old for n in names) else None
        return kept, moved if moved != kept else None

    def _keyless(self, entity: str, key: str | None) -> tuple[None, None]:
        if self.keyless.get(entity) != "store":
            if key is not None or self.columns.get(entity):
                self.keyless[entity] = "late"
            elif self.columns.get(entity) != ():  # (a table whose DDL states no primary key has no key to miss)
                self.keyless.setdefault(entity, "none")
        return None, None

    def _in_store(self) -> tuple[set[str], set[str]]:
        """The entities whose rows in the store (since their last truncate) went in without a key,
        some or all, and those of which some went in keyed: asked of the store once."""
        if self._store is None:
            ask = self._source.store_keys if self._source is not None else None
            self._store = ask() if ask is not None else (set(), set())
        return self._store

    def notes(self, source: Source) -> None:
        """Say, once per table, which tables' rows went in without a key, why, and how to key them;
        and where a table's primary key changed to one of other values."""
        for entity, before, after, line in self.rekeyed:
            at = f"{source.name}:{line}" if line is not None else source.name
            source.notes.append(
                f"{at}: {entity}'s primary key changed from ({', '.join(before)}) to ({', '.join(after) or 'none'}): "
                f"its rows keyed by ({', '.join(before)}) before it are not found by the updates and deletes after it, "
                "and replay keeps them as they were; to key all its rows by one key, ingest the input into a new "
                f"store with --key-field {entity}:COLUMN for each column of a key all its rows hold"
            )
        for entity, why in self.keyless.items():
            if why == "none" and entity not in self._afresh and entity in self._in_store()[1]:
                source.notes.append(
                    f"{source.name}: {entity} went in without a key (its records carry no primary_key, which Maxwell "
                    "leaves out by default, and no DDL record before them in the input states its primary key, while "
                    "the store holds rows of it that went in keyed, as a DDL record of an earlier input stated it): "
                    "its updates and deletes here do not find those rows, and replay keeps this input's rows as a "
                    f"multiset; ingest an input that lacks its DDL with --key-field {entity}:COLUMN (its key column, "
                    "as the store's rows of it are keyed): this one, into a new store, after the inputs before it"
                )
                continue
            source.notes.append(
                f"{source.name}: {entity} went in without a key ({_WHY[why]}): replay keeps its rows as a multiset, "
                f"which no key finds; {keyless_hint(entity, NAME)}"
            )


def _renamed(now: tuple[str, ...], names: tuple[str, ...], row: dict[str, Any], seen: frozenset[str]) -> bool:
    """Whether a table's key columns ``now`` became ``names`` by renames: as many, each either
    the same or gone from the row, in place of one its last row did not have (a key of the same
    values, under new names)."""
    return len(names) == len(now) and all(
        n == c or (c not in row and n not in seen and n not in now) for c, n in zip(now, names, strict=True)
    )


_WHY = {
    "none": "its records carry no primary_key, which Maxwell leaves out by default, and no DDL record before them "
    "in the input states its primary key",
    "late": "its first rows in the input came before anything in it told its primary key, and the rows after them "
    "go in as they did, for their updates and deletes to find the rows they change",
    "store": "as its rows the store holds did, for the updates and deletes of the input to find the rows they change",
}


def _read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    check_mapping_for(NAME, mapping, {"--key-field"})
    tables = Tables(source)

    def decode(record: Any, where: dict[str, Any]) -> list[Event]:
        return [decode_record(record, where, mapping, tables=tables)]

    yield from read_json_lines(source, mapping, report, NAME, decode)
    tables.notes(source)


def is_record(value: Any) -> bool:
    """Whether a JSON value is a Maxwell record: a row change (with its ``data`` row), a DDL record
    or a bootstrap marker, naming its database and giving its ``ts``."""
    if not isinstance(value, dict) or not isinstance(value.get("database"), str) or "ts" not in value:
        return False
    kind = value.get("type")
    if kind in _ROW:
        return isinstance(value.get("data"), dict) and isinstance(value.get("table"), str)
    return kind in _DDL or kind in _MARKERS


def _sniff(head: bytes) -> int:
    return 90 if sniff_lines(head, is_record) else 0


FORMAT = Format(
    name=NAME,
    description="Maxwell's daemon MySQL change records (JSON lines)",
    sniff=_sniff,
    read=_read,
    keyless_hint="run Maxwell with output_primary_keys and output_primary_key_columns",
)
