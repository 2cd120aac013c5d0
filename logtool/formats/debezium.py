"""Debezium change events, one JSON record a line.

Takes Debezium's envelope with or without the JSON converter's ``schema``/``payload`` wrapper, and
keyed dumps: a line per Kafka record, ``{"key": ..., "value": ...}`` (key and value as JSON or as
JSON text), where a null value is a tombstone.

How a change event becomes an event:

- ``op``: ``c`` insert, ``r`` read (snapshot), ``u`` update, ``d`` delete, ``t`` truncate (key and
  data null), ``m`` (a logical decoding message) an ``event`` of type ``message`` whose entity is
  the message prefix and whose data is the message. A column holding Debezium's placeholder for a
  value it did not receive (an unchanged TOASTed column) is left out of the image, so it keeps its
  old value on replay, and the event becomes an ``update``.
- ``ts``: the database's time, ``source.ts_us``/``ts_ns``/``ts_ms`` (the most precise given); the
  connector's top-level time only where the source block has none, or gives 0 (Debezium 1.x's
  MySQL snapshot rows: no binlog event gave them a time).
- ``entity``: ``source.schema``.``source.table`` (``source.db`` where there is no schema: MySQL).
- ``key``: the record key in keyed dumps, else the ``--key-field`` columns of the after (or before)
  image, else null. An update whose before image has another key sets ``prev_key``.
- ``txn``: ``transaction.id``, else ``source.txId`` (PostgreSQL, Oracle), ``source.gtid`` (MySQL)
  or ``source.lsid`` with ``source.txnNumber`` (MongoDB);
  its position is the commit position where the source writes one (SQL Server ``commit_lsn``,
  Oracle ``commit_scn``), its time the event's ``ts``.
- ``source.position``: PostgreSQL ``lsn`` written as PostgreSQL writes an LSN (``0/16B3748``; Debezium
  gives it as a number), MySQL ``file:pos``, SQL Server ``change_lsn`` (``commit_lsn`` for a snapshot
  row, which has no change LSN), Oracle ``scn``. A tombstone following its delete is at the
  delete's position, in its transaction.
- ``meta``: the envelope without its images: ``source``, ``transaction``, the connector's ``ts_ms``;
  in a keyed dump, ``key_schema``, the name of the record key's schema (a later dump's tombstones
  are placed by it: see below).
- With a schema, ``Decimal`` and ``VariableScaleDecimal`` columns (base64 bytes in the JSON) become
  exact numbers; without one they stay the text Debezium wrote. Likewise dates, times and
  timestamps without a zone (``io.debezium.time.Date``, ``Time``, ``MicroTime``, ``NanoTime``,
  ``Timestamp``, ``MicroTimestamp``, ``NanoTimestamp``, and Kafka Connect's ``Date``, ``Time``,
  ``Timestamp``), epoch numbers in the JSON, become ISO text to their full precision
  (``2024-03-05``, ``12:34:56.789012``, ``2024-03-05T12:00:00.123456``); without a schema nothing
  says what a number is, and it stays a number. Zoned types are ISO text already.
- A tombstone takes its entity (and time) from the delete of the same key shortly before it, as
  Debezium writes the two together, or else from its key schema's name
  (``server.inventory.customers.Key``) where the file's change events make that name sure (see
  ``KeyNames``: a name alone does not say which of its parts are the table's). In a dump of a
  compacted topic, whose deletes compaction dropped with the rows' earlier records, one may come
  before the first change of its key schema's name: it waits for that change, and goes in just
  before it (see ``HeldTombstones``); where the file shows no such change, the store's earlier
  ingests may show what the name stands for (``Source.store_key_names``). Placed by its name, it is
  at the time and source position of the change it goes in just before (see ``_Placed``). One that nothing places
  is passed over: it changes no row the dump or the store holds. A bare ``null`` line (a tombstone in a dump of values alone, as a console consumer prints it) names
  no key and says nothing its delete did not: it is read and skipped.

The MongoDB connector's events hold documents as extended JSON text, kept as they are (as the
change-stream reader keeps them): ``c``/``r`` insert or read ``after``; ``u`` is a patch built from
``updateDescription`` (or the older capture mode's ``patch``, the oplog's update: ``$set`` and
``$unset``, or MongoDB 5's ``$v: 2`` diff; an upsert where that is a whole document), and ``after``, the document looked up later, is used only where nothing says what
changed; the key is the document's ``_id`` (the record key's ``id``, else a document's ``_id``, else
the oplog ``filter``), an ObjectId as its hex string; the position is the oplog time's
``seconds:ord``.

This module also holds the record loop and sniffing helper the other self-describing JSON formats share.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import counted
from . import Format
from .base import (
    BOM,
    HEAD_BYTES,
    Batcher,
    Event,
    Mapping,
    RawNumber,
    Report,
    Source,
    check_mapping_for,
    dumps_exact,
    json_or_none,
    key_text,
    kind_of,
    loads_exact,
    name_parts,
    parse_ts,
    qualified_name,
    read_json_lines,
    row_key,
    sniff_lines,
)
from .mongodb import INTEGER_TYPES, document_id, unwrap_number, update_change, update_patch

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "debezium"

# --------------------------------------------------------------------------- Debezium

_OPS = {"c": "insert", "r": "read", "u": "update", "d": "delete", "t": "truncate", "m": "event"}
_NOT_META = ("before", "after", "op", "message", "patch", "filter", "updateDescription")
PLACEHOLDER = "__debezium_unavailable_value"
_PLACEHOLDER_BYTES = base64.b64encode(PLACEHOLDER.encode()).decode()
_DECIMAL = "org.apache.kafka.connect.data.Decimal"
_VARIABLE_DECIMAL = "io.debezium.data.VariableScaleDecimal"
# Temporal types Debezium's JSON gives as epoch numbers: what they are, and in how many digits of
# a second (the timestamps are without a time zone; the zoned types are ISO text already)
_TEMPORAL = {
    "io.debezium.time.Date": ("date", 0),
    "org.apache.kafka.connect.data.Date": ("date", 0),
    "io.debezium.time.Time": ("time", 3),
    "org.apache.kafka.connect.data.Time": ("time", 3),
    "io.debezium.time.MicroTime": ("time", 6),
    "io.debezium.time.NanoTime": ("time", 9),
    "io.debezium.time.Timestamp": ("timestamp", 3),
    "org.apache.kafka.connect.data.Timestamp": ("timestamp", 3),
    "io.debezium.time.MicroTimestamp": ("timestamp", 6),
    "io.debezium.time.NanoTimestamp": ("timestamp", 9),
}
_EPOCH_DAY = dt.date(1970, 1, 1)
_RECENT_DELETES = 4096
_HELD = 10_000  # tombstones held at most until a change shows what their key schema's name stands for


class _NoKey:
    """The record came without a key (not a keyed dump), as opposed to a null key."""


NO_KEY: Any = _NoKey()


def unwrap(value: Any) -> tuple[Any, dict[str, Any] | None]:
    """A converter record without its ``schema``/``payload`` wrapper, and the schema if it had one."""
    if isinstance(value, dict) and len(value) == 2 and "schema" in value and "payload" in value:
        schema = value["schema"]
        return value["payload"], schema if isinstance(schema, dict) else None
    return value, None


def is_envelope(value: Any) -> bool:
    """Whether a JSON value is a Debezium change event (wrapped or not): an ``op`` and a
    ``source`` block, the op a Debezium op or the block naming its connector (then a bad op is
    reported as such rather than taken for another format's record)."""
    envelope, _ = unwrap(value)
    if not isinstance(envelope, dict) or "op" not in envelope or not isinstance(envelope.get("source"), dict):
        return False
    return isinstance(envelope["op"], str) and envelope["op"] in _OPS or "connector" in envelope["source"]


def key_schema_name(record_key: Any) -> str | None:
    """The name of a Debezium record key's schema (``server.inventory.customers.Key``), or None."""
    if isinstance(record_key, dict) and isinstance(record_key.get("schema"), dict):
        name = record_key["schema"].get("name")
        if isinstance(name, str) and name.endswith(".Key") and len(name) > len(".Key"):
            return name
    return None


class KeyNames:
    """The tables a file's key schemas stand for, as its change events showed them.

    Debezium names a key schema after its topic, by default ``<topic prefix>.<table>.Key``, where
    the table is named as its connector names it (PostgreSQL and Oracle ``schema.table``, MySQL
    ``db.table``, SQL Server 2.x ``db.schema.table`` but 1.x ``schema.table`` alone), a prefix may
    hold dots and a topic may be routed anywhere: a name alone says no table surely. A change event
    of a keyed dump gives both its key schema's name and its table, so a name a change carried
    stands for that table (for none where changes of two tables carried it, as a router merging
    tables makes them), and the way it was made (its prefix, how many parts follow, and the leading
    parts of the table's name it left out) makes the names of the prefix's other tables alike.
    Each name stands for its table with the connector it came from (the MongoDB connector's keys
    name documents as its events' keys do: see ``tombstone_key``); a prefix is one connector's.
    """

    def __init__(self) -> None:
        # name -> entity, and whether from the MongoDB connector (None: changes of two carried it)
        self._tables: dict[str, tuple[str, bool] | None] = {}
        # prefix, parts after it, parts left out, and whether from the MongoDB connector
        self._forms: set[tuple[str, int, tuple[str, ...], bool]] = set()

    def learn(self, name: str | None, entity: str, mongodb: bool) -> None:
        """Learn from a change event of ``entity`` whose record key's schema is named ``name``."""
        if name is None:
            return
        if self._tables.setdefault(name, (entity, mongodb)) != (entity, mongodb):
            self._tables[name] = None
        parts = name_parts(entity)
        if any("." in p for p in parts):
            return  # (a part holding a dot cannot be told from two parts in a name)
        stem = name[: -len(".Key")]
        for kept in range(len(parts), 1, -1):  # the most of the table's name the schema's name ends with
            tail = ".".join(parts[-kept:])
            if stem.endswith("." + tail):
                self._forms.add((stem[: -len(tail)], kept, tuple(parts[:-kept]), mongodb))
                return

    def table(self, record_key: Any) -> tuple[str, bool] | None:
        """The entity a record key's schema stands for, and whether it is the MongoDB connector's,
        or None where that is not sure."""
        name = key_schema_name(record_key)
        if name is None:
            return None
        if name in self._tables:
            return self._tables[name]
        stem = name[: -len(".Key")]
        found = set()
        for prefix, kept, left_out, mongodb in self._forms:
            rest = stem[len(prefix):].split(".") if stem.startswith(prefix) else []
            if len(rest) == kept and all(rest):
                found.add((qualified_name(*left_out, *rest), mongodb))
        return found.pop() if len(found) == 1 else None


def tombstone_key(key: Any, row_fields: dict[str, dict[str, Any]], mongodb: bool) -> str | None:
    """The key of a tombstone placed in a Debezium table, written as that table's change events
    write theirs: a key without its schema read with the row's columns (``row_fields``), and the
    MongoDB connector's key (``{"id": "<_id as extended JSON>"}``) as the document's id."""
    text, _ = record_key(key, row_fields)
    return (mongodb_record_id(key) or text) if mongodb else text


Held = TypeVar("Held")


class HeldTombstones(Generic[Held]):
    """Tombstones waiting for a record that shows where they go, by what they wait to see (the
    kcat reader: their topic; the Debezium reader: a change of their key schema's name). In a dump
    of a compacted topic a tombstone whose delete compaction dropped may come before the first
    surviving change of its table. At most ``limit`` wait in all: past that, ``hold`` names the
    group that has waited longest, to be placed as things stand."""

    def __init__(self, limit: int) -> None:
        self._groups: dict[str, list[Held]] = {}
        self._count = 0
        self._limit = limit

    def hold(self, group: str, tombstone: Held) -> str | None:
        """Hold a tombstone; the group to give up, where more than the limit wait."""
        self._groups.setdefault(group, []).append(tombstone)
        self._count += 1
        return next(iter(self._groups)) if self._count > self._limit else None

    def take(self, group: str) -> list[Held]:
        """The tombstones of a group, in the order they came, held no longer."""
        taken = self._groups.pop(group, [])
        self._count -= len(taken)
        return taken

    def groups(self) -> list[str]:
        """The groups holding tombstones, the longest waiting first."""
        return list(self._groups)


def record_key(record_key: Any, row_fields: dict[str, dict[str, Any]] | None = None) -> tuple[str | None, tuple[str, ...]]:
    """A Kafka record key as the event key, and its column names: a JSON object (possibly
    wrapped with its schema) gives ``key_text`` of its columns; text is the key as it is. A key
    written without its schema is read with ``row_fields``, the value's schema of the row's
    columns (the key's columns are the row's), so that it is written as the row's images are."""
    if record_key is NO_KEY or record_key is None:
        return None, ()
    if isinstance(record_key, str) and not isinstance(record_key, RawNumber):
        return record_key, ()
    fields, schema = unwrap(record_key)
    if isinstance(fields, dict):
        if not fields:
            return None, ()
        columns = _fields(schema) or row_fields or {}
        row = {name: _decode_value(name, v, columns.get(name)) for name, v in fields.items()}
        names = tuple(row)
        return key_text(list(row.values()), names), names
    if fields is None:
        return None, ()
    return key_text([fields], ("key",)), ()


def decode_change(
    value: Any,
    key: Any,
    where: dict[str, Any],
    mapping: Mapping,
    extra_meta: dict[str, Any] | None = None,
) -> Event:
    """One Debezium change event (with or without its schema wrapper) as an event.

    ``key`` is the Kafka record's key (its JSON, or its text), or ``NO_KEY``; ``where`` is the
    event's ``source`` column, whose position is filled from the event when still None;
    ``extra_meta`` is merged into ``meta``. Raises ValueError for what is not a usable change.
    """
    envelope, schema = unwrap(value)
    if not isinstance(envelope, dict):
        raise ValueError(f"a Debezium event is a JSON object, not {kind_of(envelope)}")
    code = envelope.get("op")
    if code is None:
        raise ValueError("not a Debezium change event: no 'op' (a schema change or heartbeat record?)")
    if not isinstance(code, str) or code not in _OPS:
        raise ValueError(f"unknown Debezium op {code!r} (expected one of {', '.join(_OPS)})")
    src = envelope.get("source")
    if not isinstance(src, dict):
        raise ValueError("Debezium event without a 'source' block")
    ts = _time(src, envelope)
    meta = {k: v for k, v in envelope.items() if k not in _NOT_META}
    meta.update(extra_meta or {})
    event: Event = {
        "ts": ts,
        "op": _OPS[code],
        "key": None,
        "data": None,
        "meta": dumps_exact(meta),
        "txn": _txn(envelope, src, ts),
        "source": {**where, "position": where["position"] or _position(src)},
    }
    if code == "m":
        message = envelope.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("prefix"), str):
            raise ValueError("logical decoding message without a 'message' block naming its prefix")
        return {**event, "entity": message["prefix"], "type": "message", "data": dumps_exact(message)}
    entity = _entity(src)
    if code == "t":
        return {**event, "entity": entity}
    if _from_mongodb(src):
        return {**event, "entity": entity, **_mongodb_change(envelope, code, key)}
    images = _image_fields(schema)
    before, _ = _image(envelope, "before", images.get("before", {}))
    after, partial = _image(envelope, "after", images.get("after", {}))
    if code != "d" and after is None:
        raise ValueError(f"op {code!r} without an 'after' image")
    key_value, prev_key = _keys(key, before, after, mapping, entity, row_fields(value))
    if key_value is None and before is None and code in "ud":
        raise ValueError(
            f"op {code!r} of a row with no key and no before image: cannot tell which row changed"
            " (pass --key-field, or set REPLICA IDENTITY FULL on the table)"
        )
    return {
        **event,
        "entity": entity,
        "op": "patch" if partial else event["op"],  # it sets what it sent and keeps the rest
        "key": key_value,
        "prev_key": prev_key,
        "data": None if code == "d" else dumps_exact(after),
        "before": json_or_none(before),
    }


def row_fields(value: Any) -> dict[str, dict[str, Any]]:
    """The row's columns as a change event's schema describes them (none without a schema): a
    record key written without its own schema is read by them."""
    images = _image_fields(unwrap(value)[1])
    return images.get("after") or images.get("before") or {}


def from_mongodb(value: Any) -> bool:
    """Whether a Debezium change event (wrapped or not) comes from the MongoDB connector."""
    envelope, _ = unwrap(value)
    return isinstance(envelope, dict) and isinstance(envelope.get("source"), dict) and _from_mongodb(envelope["source"])


def _from_mongodb(src: dict[str, Any]) -> bool:
    return src.get("connector") == "mongodb"


def _mongodb_change(envelope: dict[str, Any], code: str, key: Any) -> dict[str, Any]:
    """What a change event of Debezium's MongoDB connector says: its documents are extended JSON
    text; an update carries what changed (``updateDescription``; ``patch``, the oplog's entry, in
    the older capture mode) or, only in the full-document modes, the document as it was looked up
    later (used where nothing says what changed)."""
    after = _document(envelope, "after")
    before = _document(envelope, "before")
    ident = _mongodb_id(key, after, before, envelope)
    changed: dict[str, Any] = {"op": _OPS[code], "key": ident, "before": json_or_none(before)}
    if code in "cr":
        if after is None:
            raise ValueError(f"op {code!r} without an 'after' document")
        return {**changed, "data": dumps_exact(after)}
    if code == "d":
        return changed
    description, patch = envelope.get("updateDescription"), _document(envelope, "patch")
    if description is not None:
        if not isinstance(description, dict):
            raise ValueError(f"updateDescription is {kind_of(description)}, not an object")
        updated = description.get("updatedFields")
        truncated = description.get("truncatedArrays") or []
        if not isinstance(truncated, list) or not all(isinstance(t, dict) for t in truncated):
            raise ValueError("updateDescription.truncatedArrays is not a list of {field, size}")
        return {**changed, **update_change(before, update_patch({
            "updatedFields": _embedded(updated, "updatedFields") if isinstance(updated, str) else updated,
            "removedFields": description.get("removedFields"),
            "truncatedArrays": [{"field": t.get("field"), "newSize": t.get("size")} for t in truncated],
            "disambiguatedPaths": description.get("disambiguatedPaths"),
        }))}  # fmt: skip
    if patch is not None:
        if "$v" not in patch and not any(k.startswith("$") for k in patch):  # a whole new document
            return {**changed, "op": "upsert", "data": dumps_exact(patch)}
        return {**changed, **update_change(before, update_patch(_oplog_update(patch)))}
    if after is not None:
        return {**changed, "op": "upsert", "data": dumps_exact(after)}
    raise ValueError("MongoDB update without an updateDescription, a patch or an 'after' document")


_UNSUPPORTED_PATCH = "(capture with capture.mode change_streams, whose updateDescription says what changed)"


def _oplog_update(patch: dict[str, Any]) -> dict[str, Any]:
    """An update as the oplog wrote it (the older capture mode's ``patch``), as an update
    description: ``$v`` 1 (or none) sets and unsets paths (``$set``, ``$unset``); ``$v`` 2
    (MongoDB 5 and later) is a diff of the document (see ``_object_diff``)."""
    version = unwrap_number(patch.get("$v"), INTEGER_TYPES)  # (extended JSON: {"$numberInt": "2"})
    version = None if version is None else str(version)
    if version == "2":
        if set(patch) != {"$v", "diff"}:
            raise ValueError(f"unsupported oplog patch: $v 2 with {', '.join(sorted(set(patch) - {'$v'}))} "
                             f"{_UNSUPPORTED_PATCH}")  # fmt: skip
        description = _Description()
        _object_diff(patch["diff"], [], description)
        return description.as_update()
    unknown = sorted(set(patch) - {"$v", "$set", "$unset"})
    if version not in (None, "1") or unknown:
        what = f"$v {version}" if version not in (None, "1") else ", ".join(unknown)
        raise ValueError(f"unsupported oplog patch: {what} {_UNSUPPORTED_PATCH}")
    unset = patch.get("$unset") or {}
    return {"updatedFields": patch.get("$set") or {}, "removedFields": list(unset) if isinstance(unset, dict) else unset}


class _Description:
    """The paths an oplog diff sets, removes and truncates, as an update description names them:
    dotted, with their parts given apart where a field name holds a dot."""

    def __init__(self) -> None:
        self.updated: dict[str, Any] = {}
        self.removed: list[str] = []
        self.truncated: list[dict[str, Any]] = []
        self._parts: dict[str, list[str | int]] = {}

    def path(self, parts: list[str | int]) -> str:
        text = ".".join(str(p) for p in parts)
        if self._parts.setdefault(text, parts) != parts:
            raise ValueError(f"unsupported oplog patch: two paths are written {text!r} {_UNSUPPORTED_PATCH}")
        return text

    def as_update(self) -> dict[str, Any]:
        dotted = {text: parts for text, parts in self._parts.items() if any("." in str(p) for p in parts)}
        return {"updatedFields": self.updated, "removedFields": self.removed, "truncatedArrays": self.truncated,
                "disambiguatedPaths": dotted}  # fmt: skip


def _object_diff(diff: Any, at: list[str | int], out: _Description) -> None:
    """A document's diff in the oplog's ``$v`` 2 format: ``d`` the fields it deletes, ``u`` those it
    updates, ``i`` those it inserts (their new values), ``s<field>`` a sub-diff of a field holding a
    document or (``a: true``) an array. A section of another kind (``b``, a binary diff) is not
    read: the update is refused rather than applied in part."""
    if not isinstance(diff, dict):
        raise ValueError(f"unsupported oplog patch: a diff is {kind_of(diff)}, not an object {_UNSUPPORTED_PATCH}")
    for section, value in diff.items():
        if section in ("d", "u", "i") and isinstance(value, dict):
            for field, new in value.items():
                if section == "d":
                    out.removed.append(out.path([*at, field]))
                else:
                    out.updated[out.path([*at, field])] = new
        elif section.startswith("s") and len(section) > 1:
            _sub_diff(value, [*at, section[1:]], out)
        else:
            raise ValueError(f"unsupported oplog patch: diff section {section!r} {_UNSUPPORTED_PATCH}")


def _array_diff(diff: dict[str, Any], at: list[str | int], out: _Description) -> None:
    """An array's diff: ``a: true``, ``l`` its new length where it shrank, ``u<index>`` an element's
    new value and ``s<index>`` a sub-diff of an element."""
    for section, value in diff.items():
        if section == "a":
            continue
        if section == "l":  # (update_patch checks it is a size)
            out.truncated.append({"field": out.path(at), "newSize": value})
        elif section[:1] in ("u", "s") and section[1:].isdigit():
            index: list[str | int] = [*at, int(section[1:])]
            if section[0] == "u":
                out.updated[out.path(index)] = value
            else:
                _sub_diff(value, index, out)
        else:
            raise ValueError(f"unsupported oplog patch: array diff section {section!r} {_UNSUPPORTED_PATCH}")


def _sub_diff(diff: Any, at: list[str | int], out: _Description) -> None:
    if isinstance(diff, dict) and diff.get("a") is True:
        _array_diff(diff, at, out)
    else:
        _object_diff(diff, at, out)


def _document(envelope: dict[str, Any], name: str) -> dict[str, Any] | None:
    """A MongoDB document of the envelope: extended JSON text (or already an object)."""
    value = envelope.get(name)
    if value is None:
        return None
    document = _embedded(value, name) if isinstance(value, str) and not isinstance(value, RawNumber) else value
    if not isinstance(document, dict):
        raise ValueError(f"'{name}' is {kind_of(document)}, not a document")
    return document


def _mongodb_id(key: Any, after: dict[str, Any] | None, before: dict[str, Any] | None,
                envelope: dict[str, Any]) -> str:  # fmt: skip
    """The document's key: from the record key (``{"id": <_id as extended JSON text>}``), else
    the ``_id`` of a document the event carries, else the oplog filter's."""
    from_key = mongodb_record_id(key)
    if from_key is not None:
        return from_key
    for document in (after, before, _document(envelope, "filter")):
        if document is not None and "_id" in document:
            return document_id(document["_id"])
    raise ValueError("MongoDB change without a document id: no record key, and no _id in a document it carries")


def mongodb_record_id(key: Any) -> str | None:
    """The document key a record key of the MongoDB connector gives (``{"id": "<_id as extended
    JSON>"}``), or None where the key is not of that shape."""
    fields, _ = unwrap(key) if key is not NO_KEY else (None, None)
    if not isinstance(fields, dict) or list(fields) != ["id"] or not isinstance(fields["id"], str):
        return None
    text = str(fields["id"])
    try:
        return document_id(loads_exact(text))
    except ValueError:
        return text


def _keys(
    key: Any,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    mapping: Mapping,
    entity: str,
    row_fields: dict[str, dict[str, Any]],
) -> tuple[str | None, str | None]:
    """The event's key and, where its before image holds another, the key it had: both written
    alike, whichever of the record key and the value carries a schema."""
    text, names = record_key(key, row_fields)
    if text is None:
        names = mapping.keys_for(entity)
        if not names:
            return None, None
        text = row_key(after, names, "after image") if after is not None else None
        if text is None and before is not None:
            text = row_key(before, names, "before image")
    if not names or before is None or after is None or any(n not in before for n in names):
        return text, None
    # a key read with its own schema, from a value without one: its columns in the before image
    # are read with that schema too
    own = {} if row_fields or key is NO_KEY or key is None else _fields(unwrap(key)[1])
    old = row_key({n: _decode_value(n, before[n], own.get(n)) for n in names} if own else before, names)
    return text, old if old != text else None


def _time(src: dict[str, Any], envelope: dict[str, Any]) -> int | None:
    """The database's time, else the connector's. A source time of 0 is none: Debezium 1.x's MySQL
    snapshot rows carry ``source.ts_ms`` 0, having read no binlog event to take a time from."""
    for block, prefix in ((src, "source."), (envelope, "")):
        for name, unit in (("ts_us", "us"), ("ts_ns", "ns"), ("ts_ms", "ms")):
            if block.get(name) is not None and not (block is src and _is_zero(block[name])):
                try:
                    return parse_ts(block[name], unit)
                except ValueError as e:
                    raise ValueError(f"{prefix}{name}: {e}") from None
    return None


def _is_zero(value: Any) -> bool:
    return not isinstance(value, bool) and value in (0, "0")


def _txn(envelope: dict[str, Any], src: dict[str, Any], ts: int | None) -> dict[str, Any] | None:
    block = envelope.get("transaction")
    tid = block.get("id") if isinstance(block, dict) else None
    for name in ("txId", "gtid"):
        if tid is None:
            tid = src.get(name)
    if tid is None and src.get("txnNumber") is not None:  # MongoDB: a session's transaction number
        tid = f"{_text(src['lsid']) + ':' if src.get('lsid') is not None else ''}{_text(src['txnNumber'])}"
    commit = src.get("commit_lsn") if src.get("commit_lsn") is not None else src.get("commit_scn")
    if tid is None:
        if commit is None:
            return None
        tid = commit  # SQL Server names a transaction by its commit LSN alone
    return {"id": _text(tid), "position": None if commit is None else _text(commit), "ts": ts, "aborted": None}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else dumps_exact(value)


def _position(src: dict[str, Any]) -> str | None:
    lsn = src.get("lsn")
    if lsn is not None:
        if isinstance(lsn, int) and not isinstance(lsn, bool) and lsn >= 0:
            return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
        if isinstance(lsn, str):
            return lsn
        raise ValueError(f"source.lsn {lsn!r} is not an LSN")
    if src.get("file") is not None and src.get("pos") is not None:
        return f"{_text(src['file'])}:{_text(src['pos'])}"
    for name in ("change_lsn", "scn", "commit_lsn"):  # (a SQL Server snapshot row has the commit's alone)
        if src.get(name) is not None:
            return _text(src[name])
    if _from_mongodb(src) and src.get("ord") is not None and src.get("ts_ms") is not None:
        # the oplog time's seconds and increment, as the change-stream reader writes clusterTime
        return f"{_text(src['ts_ms'])[:-3] or '0'}:{_text(src['ord'])}"
    return None


def _entity(src: dict[str, Any]) -> str:
    """``schema.table`` (PostgreSQL), ``db.table`` (MySQL, MongoDB), ``db.schema.table`` (SQL
    Server, whose one connector may capture several databases)."""
    table = src.get("table") or src.get("collection")
    space = src.get("schema") or src.get("db")
    if not isinstance(table, str):
        raise ValueError("the source block names no table")
    if not src.get("table") and isinstance(space, str):
        return f"{space}.{table}"  # a MongoDB namespace: a database name holds no dot
    if src.get("connector") == "sqlserver" and isinstance(src.get("db"), str) and isinstance(src.get("schema"), str):
        return qualified_name(src["db"], src["schema"], table)
    return qualified_name(space, table) if isinstance(space, str) else table


def _image(
    envelope: dict[str, Any], name: str, columns: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any] | None, bool]:
    """A row image without the values Debezium did not have, and whether it left any out."""
    row = envelope.get(name)
    if row is None:
        return None, False
    if not isinstance(row, dict):
        raise ValueError(f"'{name}' is {kind_of(row)}, not a row")
    out: dict[str, Any] = {}
    for column, value in row.items():
        if not _unavailable(value):
            out[column] = _decode_value(column, value, columns.get(column))
    return out, len(out) < len(row)


# The shapes Debezium gives the placeholder of an unchanged TOASTed value, by column type: the
# string (its base64 bytes for a bytea), hstore as a map or as JSON text, a text[] of placeholders,
# a uuid[] holding the placeholder's UUID, an int[]/bigint[] of the placeholder's bytes.
_PLACEHOLDER_UUID = "b68a35a7-17ad-35b3-af2a-ae46edb4545a"
_PLACEHOLDER_TEXTS = (PLACEHOLDER, _PLACEHOLDER_BYTES, json.dumps({PLACEHOLDER: PLACEHOLDER}),
                      json.dumps({PLACEHOLDER: PLACEHOLDER}, separators=(",", ":")))  # fmt: skip
_PLACEHOLDER_INTS = list(PLACEHOLDER.encode())


def _unavailable(value: Any) -> bool:
    """Whether a column's value is Debezium's placeholder for a value it did not send."""
    if isinstance(value, str):
        return value in _PLACEHOLDER_TEXTS
    if isinstance(value, dict):
        return value == {PLACEHOLDER: PLACEHOLDER}
    if not isinstance(value, list) or not value:
        return False
    return all(v == PLACEHOLDER for v in value) or value == [_PLACEHOLDER_UUID] or value == _PLACEHOLDER_INTS


def _fields(schema: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The field schemas of a struct schema, by field name."""
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, list):
        return {}
    return {f["field"]: f for f in fields if isinstance(f, dict) and isinstance(f.get("field"), str)}


def _image_fields(schema: dict[str, Any] | None) -> dict[str, dict[str, dict[str, Any]]]:
    return {name: _fields(field) for name, field in _fields(schema).items() if name in ("before", "after")}


def _decode_value(column: str, value: Any, field: dict[str, Any] | None) -> Any:
    """A column's value as its field schema says to read it: Kafka Connect decimals (base64 of the
    unscaled integer) made numbers, dates, times and timestamps (epoch numbers) made ISO text."""
    if field is None or value is None:
        return value
    name = field.get("name")
    if name == _DECIMAL:
        params = field.get("parameters")
        return _decimal(column, value, params.get("scale") if isinstance(params, dict) else None)
    if name == _VARIABLE_DECIMAL and isinstance(value, dict):
        return _decimal(column, value.get("value"), value.get("scale"))
    if name in _TEMPORAL and isinstance(value, int) and not isinstance(value, bool):
        return _temporal(value, *_TEMPORAL[name])
    kind = field.get("type")
    if kind == "array" and isinstance(value, list) and isinstance(field.get("items"), dict):
        return [_decode_value(column, v, field["items"]) for v in value]  # a numeric[] or date[] column
    if kind == "struct" and isinstance(value, dict):
        members = _fields(field)
        return {k: _decode_value(column, v, members.get(k)) for k, v in value.items()}
    if kind == "map" and isinstance(field.get("values"), dict):
        if isinstance(value, dict):
            return {k: _decode_value(column, v, field["values"]) for k, v in value.items()}
        if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
            # keys that are not strings: the JSON converter writes [key, value] pairs
            keys = field.get("keys") if isinstance(field.get("keys"), dict) else None
            return [[_decode_value(column, k, keys), _decode_value(column, v, field["values"])] for k, v in value]
    return value


def _temporal(value: int, kind: str, digits: int) -> str | int:
    """An epoch number of a temporal type as the database writes the value: ``2024-03-05``,
    ``12:34:56.789012``, ``2024-03-05T12:00:00.123456``. The fraction of a second is exact, to the
    last digit that is not zero. A time may lie outside a day (PostgreSQL's ``24:00:00``, a MySQL
    TIME below zero or past 24 hours); a date beyond the years 1 to 9999 (PostgreSQL's infinity)
    cannot be written as ISO text and stays the number it is."""
    if kind == "date":
        try:
            return (_EPOCH_DAY + dt.timedelta(days=value)).isoformat()
        except OverflowError:
            return value
    if kind == "time":
        seconds, fraction = divmod(abs(value), 10**digits)
        minutes, second = divmod(seconds, 60)
        hour, minute = divmod(minutes, 60)
        sign = "-" if value < 0 else ""
        return f"{sign}{hour:02d}:{minute:02d}:{second:02d}{_fraction(fraction, digits)}"
    seconds, fraction = divmod(value, 10**digits)  # floored: a fraction counts up from the second before
    days, second = divmod(seconds, 86400)
    try:
        day = _EPOCH_DAY + dt.timedelta(days=days)
    except OverflowError:
        return value
    hour, rest = divmod(second, 3600)
    return f"{day.isoformat()}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}{_fraction(fraction, digits)}"


def _fraction(fraction: int, digits: int) -> str:
    """A fraction of a second given in ``digits`` digits, as ``.123``; nothing for none."""
    text = f"{fraction:0{digits}d}".rstrip("0") if digits else ""
    return f".{text}" if text else ""


def _decimal(column: str, encoded: Any, scale: Any) -> int | RawNumber:
    """A Kafka Connect Decimal: base64 of the unscaled integer, or (the JSON converter's
    ``decimal.format=NUMERIC``) already a number, kept exactly as written."""
    if isinstance(encoded, RawNumber) or (isinstance(encoded, int) and not isinstance(encoded, bool)):
        return encoded
    try:
        unscaled = int.from_bytes(base64.b64decode(encoded, validate=True), "big", signed=True)
        places = int(scale)
    except (binascii.Error, TypeError, ValueError):
        raise ValueError(f"column {column!r}: {encoded!r} with scale {scale!r} is not a Decimal") from None
    if places <= 0:
        return unscaled * int(10**-places)
    digits = str(abs(unscaled)).rjust(places + 1, "0")
    return RawNumber(f"{'-' if unscaled < 0 else ''}{digits[:-places]}.{digits[-places:]}")


# --------------------------------------------------------------------------- reader


def _embedded(value: Any, member: str) -> Any:
    """A keyed dump's key or value, which some tools write as JSON text rather than JSON."""
    if not isinstance(value, str) or isinstance(value, RawNumber):
        return value
    try:
        return loads_exact(value)
    except (ValueError, RecursionError):
        if member == "key":
            return value  # a key that is plain text (a string converter) is the key as it is
        raise ValueError(f"'{member}' is a string that is not JSON") from None


def _is_keyed(record: dict[str, Any]) -> bool:
    return "value" in record and "op" not in record and "payload" not in record


class _RecentDeletes:
    """The latest deletes by key (and the name of the key's schema, so that the deletes of one key
    in two topics stay apart): Debezium writes a tombstone right after the delete of its key, and a
    tombstone says nothing else of its table, time or place in the source surely."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str | None, str], Event] = {}

    def remember(self, name: str | None, delete: Event) -> None:
        self._seen.pop((name, delete["key"]), None)
        # (what a tombstone takes of it: not its before image, which may be large)
        self._seen[name, delete["key"]] = {"entity": delete["entity"], "ts": delete["ts"], "txn": delete["txn"],
                                           "position": delete["source"]["position"]}  # fmt: skip
        if len(self._seen) > _RECENT_DELETES:
            del self._seen[next(iter(self._seen))]

    def take(self, name: str | None, key: str) -> Event | None:
        return self._seen.pop((name, key), None)


def _after_its_delete(
    key: Any, where: dict[str, Any], deletes: _RecentDeletes, fields: dict[str, dict[str, Any]]
) -> Event | None:
    """The delete a keyed tombstone following the delete of its key stands for, or None for one
    that follows none (in a dump of a compacted topic, every tombstone: compaction dropped its
    delete and the row's earlier records with it). ``fields``: the row's columns as the change
    before it described them, to read a key written without its schema as that change's key was read.

    A tombstone following its delete is at the delete's place: its table, time, source position
    and transaction (so that a replay to a time or position takes both or neither, and no
    transaction ends later for it)."""
    text, _ = record_key(key, fields)
    if text is None:
        raise ValueError("tombstone (null value) without a key")
    name = key_schema_name(key)
    delete = deletes.take(name, text)
    mongodb = mongodb_record_id(key)  # the MongoDB connector's key: the delete's key is the document's
    if delete is None and mongodb is not None and (delete := deletes.take(name, mongodb)) is not None:
        text = mongodb
    if delete is None:
        return None
    return {"ts": delete["ts"], "entity": delete["entity"], "key": text, "op": "delete", "data": None,
            "txn": delete["txn"], "source": {**where, "position": delete["position"]}}  # fmt: skip


def _by_name(key: Any, where: dict[str, Any], table: tuple[str, bool], fields: dict[str, dict[str, Any]]) -> Event:
    """A tombstone that follows no delete of its key, in the table its key schema's name stands
    for; its time and source position are its neighbour's (see ``_Placed``)."""
    entity, mongodb = table
    return {"ts": None, "entity": entity, "key": tombstone_key(key, fields, mongodb), "op": "delete",
            "data": None, "source": where}  # fmt: skip


class _Placed:
    """Tombstones placed by their key schema's name, waiting for the change they go in just before.

    Such a tombstone's delete is unknown (compaction dropped it): nothing gives its time or source
    position but where it stands in the log. It takes those of the change it goes in just before
    (a held one is let in just before the first change of its name), as the delete came before
    that change; where no change follows (the file's end, or more than ``_HELD`` wait), those of
    the file's last change before it. Never the ingest's time (an ``--at-time`` before the ingest
    would end its prefix at it) nor no position (``--at-position`` would never apply it). It joins
    no transaction: it is no part of its neighbour's."""

    def __init__(self) -> None:
        self.waiting: list[Event] = []
        self.last: tuple[Any, Any] = (None, None)  # the time and position of the file's last change

    def add(self, tombstones: list[Event]) -> list[Event]:
        """Tombstones placed; those to let in now, where more than the limit wait."""
        self.waiting.extend(tombstones)
        return self.let_in() if len(self.waiting) > _HELD else []

    def let_in(self, change: Event | None = None) -> list[Event]:
        """The waiting tombstones, at the time and position of ``change`` (the change read next,
        which they go in just before), or of the last change read."""
        if change is not None:
            self.last = (change.get("ts"), change["source"].get("position"))
        ts, position = self.last
        out = [{**t, "ts": ts, "source": {**t["source"], "position": position}} for t in self.waiting]
        self.waiting = []
        return out


def _read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    check_mapping_for(NAME, mapping, {"--key-field"})
    deletes = _RecentDeletes()
    names = KeyNames()
    stored: list[KeyNames] = []  # what the store's earlier ingests show of key schemas' names, once asked
    held: HeldTombstones[tuple[Any, dict[str, Any]]] = HeldTombstones(_HELD)  # by key schema name: (key, where)
    fields: dict[str, dict[str, Any]] = {}  # the row's columns, as the last change described them
    orphans = [0]  # tombstones passed over: naming no table, following no delete of their key
    placed = _Placed()  # tombstones placed by their key schema's name, waiting for the next change

    def in_the_store(key: Any) -> tuple[str, bool] | None:
        if not stored:
            stored.append(KeyNames())
            for name, entity, mongodb in source.store_key_names() if source.store_key_names else ():
                stored[0].learn(name, entity, mongodb)
        return stored[0].table(key)

    def place(group: str, row: dict[str, dict[str, Any]], ask: bool) -> list[Event]:
        """The held tombstones of a key schema's name, placed where the file's changes (or, with
        ``ask``, the store's) show what it stands for; the others are passed over."""
        out = []
        for key, where in held.take(group):
            table = names.table(key) or (in_the_store(key) if ask else None)
            if table is None:
                orphans[0] += 1
            else:
                out.append(_by_name(key, where, table, row))
        return out

    def decode(record: Any, where: dict[str, Any]) -> list[Event]:
        nonlocal fields
        if record is None:
            return []  # a tombstone in a dump of values alone: its key is not there, its delete was
        if not isinstance(record, dict):
            raise ValueError(f"a Debezium record is a JSON object, not {kind_of(record)}")
        if _not_a_change(record) or _is_keyed(record) and _not_a_change(_embedded(record["value"], "value")):
            return []  # read, not a change: nothing to ingest (as a wal2json BEGIN or COMMIT)
        early: list[Event] = []
        if _is_keyed(record):
            key = _embedded(record.get("key"), "key")
            value = _embedded(record["value"], "value")
            name = key_schema_name(key)
            if unwrap(value)[0] is None:
                tombstone = _after_its_delete(key, where, deletes, fields)
                table = names.table(key) if tombstone is None else None
                if table is not None:
                    return placed.add([_by_name(key, where, table, fields)])
                if tombstone is None and name is not None:  # what it stands for, a change of the name may tell
                    given_up = held.hold(name, (key, where))
                    return [] if given_up is None else placed.add(place(given_up, {}, ask=True))
                if tombstone is None:
                    orphans[0] += 1
                    return []
                return [*placed.let_in(), tombstone]  # (after those placed before it, at the change before them)
            event = decode_change(value, key, where, mapping, {"key_schema": name} if name else None)
            fields = row_fields(value)
            if event["op"] not in ("event", "truncate"):
                names.learn(name, event["entity"], from_mongodb(value))
            if name is not None:  # (read whole first: a bad record lets no held tombstone in)
                early = place(name, fields, ask=False)
        else:
            key, event = NO_KEY, decode_change(record, NO_KEY, where, mapping)
        if event["op"] == "delete" and event["key"] is not None:
            deletes.remember(key_schema_name(key), event)
        placed.waiting.extend(early)  # (held ones go in just before the change of their name too)
        return [*placed.let_in(event), event]

    yield from read_json_lines(source, mapping, report, NAME, decode)
    rest = Batcher()
    placed.waiting.extend(e for group in held.groups() for e in place(group, {}, ask=True))
    for event in placed.let_in():
        rest.add(**event)
    if len(rest):
        yield rest.flush()
    if orphans[0]:
        source.notes.append(
            f"{source.name}: {counted(orphans[0], 'tombstone')} naming no table that the file's changes or the "
            f"store's show and following no delete of their key {'was' if orphans[0] == 1 else 'were'} passed over (a compacted topic's dump holds such); "
            "if the file is no Debezium dump, ingest it with --format jsonl"
        )


def _not_a_change(value: Any) -> bool:
    """A record Debezium writes beside its change events: a heartbeat, a schema change, or a
    transaction's BEGIN or END (transaction metadata); a dump of several topics holds them."""
    inner, _ = unwrap(value)
    return isinstance(inner, dict) and (
        ("ddl" in inner or "tableChanges" in inner) and isinstance(inner.get("source"), dict)
        or list(inner) == ["ts_ms"]
        or inner.get("status") in ("BEGIN", "END") and "id" in inner and "op" not in inner
    )


def _classify(value: Any) -> bool | None:
    if value is None:
        return None  # a tombstone in a dump of values alone: any Kafka topic may hold one
    if _not_a_change(value):
        return None  # Debezium's, but no change event: the lines after it decide
    if is_envelope(value):
        return True
    if isinstance(value, dict) and _is_keyed(value):
        try:
            inner = _embedded(value["value"], "value")
        except ValueError:
            return False
        return None if unwrap(inner)[0] is None else is_envelope(inner)
    return False


def _sniff(head: bytes) -> int:
    if sniff_lines(head, _classify):
        return 90
    # A dump of a compacted topic may begin with more tombstones than detection reads: a head
    # full of nothing else is such a dump, before JSON lines of no format (10). A shorter file of
    # them alone may as well be any key/value export: it is left to those (and the reader says
    # what it passed over where one is read as Debezium).
    full = len(head) >= HEAD_BYTES - len(BOM)  # (the head of a file with a BOM is read without it)
    return 20 if full and _all_keyed_tombstones(head) else 0


def _all_keyed_tombstones(head: bytes) -> bool:
    """Every whole line of the head is exactly a keyed tombstone, ``{"key": ..., "value": null}``."""
    lines = [line for line in head.split(b"\n")[:-1] if line.strip()]  # (what follows the last newline may be cut short)
    for line in lines:
        try:
            value = loads_exact(line.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return False
        if not (isinstance(value, dict) and set(value) == {"key", "value"} and value["value"] is None):
            return False
    return bool(lines)


FORMAT = Format(
    name=NAME,
    description="Debezium change events (JSON lines, with or without schema; keyed dumps with tombstones)",
    sniff=_sniff,
    read=_read,
)
