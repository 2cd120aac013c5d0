"""Kafka records as ``kcat -C -J`` writes them: one JSON object a line with ``topic``,
``partition``, ``offset``, ``tstype``, ``ts``, ``broker``, ``headers``, ``key`` and ``payload``.

- A payload that is a Debezium change event (as JSON text, or as JSON) is read as Debezium reads it
  (entity, op, key, ts, txn from the event; the Kafka key is the record key).
- A payload that is a Maxwell record is read as the Maxwell reader reads it (entity, op, key, ts,
  txn from the record), its binlog ``position`` kept in ``meta``; Maxwell's Kafka key names the
  table's key columns (``"pk.id": 1``), which key the rows where the record carries no
  ``primary_key_columns`` (Maxwell's default output carries no key).
- A payload Debezium writes beside its change events (a heartbeat, a schema change, a transaction's
  BEGIN or END) is read and passed over on a topic of Debezium's (see ``_beside_changes``).
- Any other payload is JSON: an ``upsert`` of that JSON, keyed by the Kafka key as it is (or, for a
  null key, by the ``--key-field`` fields of the payload), in the entity named by the topic, at the
  record's Kafka timestamp.
- A null payload is a tombstone: a ``delete`` of the key with null data (but for a key a Debezium key
  change moved a row from: see ``_key_change``). On a topic that carried
  Debezium events (or whose key schema's name the file's Debezium events make sure of: see
  ``debezium.KeyNames``) it is placed in the Debezium entity and
  keyed as Debezium keys are, at the time of the partition's last Debezium event (its delete). A
  tombstone that comes before any other record of its topic, and whose key schema's name the file
  has not made sure of yet, waits for one (see ``_Unplaced``).
- ``payload_error`` or ``key_error`` (kcat could not deserialize the record) is a bad record, not a
  tombstone.
- ``source.position`` is ``partition/offset``; ``meta.kafka`` holds the record's members other
  than key and payload, the headers as a list of ``[name, value]`` pairs (names repeat).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import counted
from . import Format
from .base import (
    Batcher,
    Event,
    Mapping,
    RawNumber,
    Report,
    Source,
    check_mapping_for,
    dumps_exact,
    json_error,
    kind_of,
    loads_exact,
    parse_ts,
    position_order,
    read_json_lines,
    row_key,
    sniff_lines,
)
from .debezium import (
    HeldTombstones,
    KeyNames,
    _not_a_change,
    decode_change,
    from_mongodb,
    is_envelope,
    key_schema_name,
    record_key,
    row_fields,
    tombstone_key,
    unwrap,
)
from .maxwell import Tables
from .maxwell import decode_record as decode_maxwell
from .maxwell import is_record as is_maxwell

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "kcat"
_HELD = 10_000  # tombstones held at most until their topic shows what it carries (see _Unplaced)


def _decode(
    record: Any,
    where: dict[str, Any],
    mapping: Mapping,
    topics: dict[str, tuple[str, bool, dict[str, Any]]],
    times: dict[Any, Any],
    tables: Tables,
    moves: _KeyMoves,
    key_names: KeyNames,
    unplaced: _Unplaced,
    store_offset: int | None = None,
) -> list[Event]:
    if not isinstance(record, dict):
        raise ValueError(f"a kcat record is a JSON object, not {kind_of(record)}")
    topic, partition, offset = record.get("topic"), record.get("partition"), record.get("offset")
    if not isinstance(topic, str):
        raise ValueError("kcat record without a 'topic'")
    for name, number in (("partition", partition), ("offset", offset)):
        if not isinstance(number, int) or isinstance(number, bool):
            raise ValueError(f"kcat record without an integer '{name}'")
    for name in ("key_error", "payload_error"):
        if record.get(name) is not None:
            raise ValueError(f"kcat could not deserialize the record: {name}: {record[name]}")
    if "payload" not in record:
        raise ValueError("kcat record without a 'payload' (null for a tombstone)")
    # a Kafka position is never an LSN, whatever its digits look like
    where = {
        **where,
        "position": f"{partition}/{offset}",
        "position_order": position_order(f"{partition}/{offset}", lsn=False),
    }
    kafka = {k: _pairs(v) if k == "headers" else v for k, v in record.items() if k not in ("key", "payload")}
    raw_key = record.get("key")
    key = _parsed_key(raw_key)
    payload = record["payload"]
    if payload is None:
        meta: Event = {"meta": dumps_exact({"kafka": kafka}), "source": where}
        if store_offset is not None:  # (--offset-field: its own, wherever it is let in)
            meta["offset"] = store_offset
        tombstone = _Tombstone(topic, partition, key, raw_key, _kafka_time(record), meta)
        if topic not in unplaced.shown and key_names.table(key) is None:  # what does it carry? the records after it tell
            return [*moves.let_out(), *unplaced.hold(tombstone, topics, times)]
        event = unplaced.place(tombstone, topics, times)
        if moves.tombstone(topic, event["key"]):  # of a key a row moved away from: nothing to delete
            return []
        return [*moves.let_out(), event]  # (read whole first: a bad record lets no held delete out)
    value = payload
    if isinstance(payload, str) and not isinstance(payload, RawNumber):
        try:
            value = loads_exact(payload)
        except ValueError as e:
            raise ValueError(f"payload is not JSON: {json_error(e)}") from None
    if _beside_changes(topic, key, value, topics):
        return []  # read, not a change (as the Debezium reader passes it over); a held delete waits on
    if is_envelope(value):
        event = decode_change(value, key, where, mapping, {"kafka": kafka})
        if event["op"] not in ("event", "truncate"):
            topics[topic] = (event["entity"], from_mongodb(value), row_fields(value))
            key_names.learn(key_schema_name(key), event["entity"], from_mongodb(value))
        early = unplaced.release(topic, topics, times)  # (before this event's time is the partition's)
        times[topic, partition] = event.get("ts")
        if store_offset is not None:  # (--offset-field: set here, as a delete held back keeps its own)
            event["offset"] = store_offset
        return [*early, *moves.event(topic, event, kafka.get("headers"), row_fields(value))]
    early = unplaced.release(topic, topics, times)  # a topic of other records: its tombstones are its own
    if is_maxwell(value):
        maxwell = decode_maxwell(value, where, mapping, {"kafka": kafka}, tables, key)
        return [*early, *moves.let_out(), maxwell]
    text = _key_text(raw_key)
    if text is None:
        names = mapping.keys_for(topic)
        if names:
            if not isinstance(value, dict):
                raise ValueError(f"payload is {kind_of(value)}: it has no key field {names[0]!r}")
            text = row_key(value, names, "payload")
    upsert = {
        "ts": _kafka_time(record),
        "entity": topic,
        "key": text,
        "op": "upsert",
        "data": dumps_exact(value),
        "meta": dumps_exact({"kafka": kafka}),
        "source": where,
    }
    return [*early, *moves.let_out(), upsert]


@dataclass
class _Tombstone:
    """A tombstone as read. Its entity, key and time depend on what its topic carries: on a topic
    of Debezium change events (or where the file's changes made its key schema's name sure: see
    ``KeyNames``) it deletes the row of the Debezium entity, keyed as Debezium keys are, at the time of the partition's last Debezium event (its delete: Debezium writes the
    tombstone right after it, and the later Kafka time would end an --at-time prefix early)."""

    topic: str
    partition: Any  # (an int)
    key: Any  # parsed
    raw_key: Any  # as kcat gave it
    kafka_ts: int | None
    rest: Event  # meta, source, and the offset --offset-field gives

    def placed(
        self, topics: dict[str, tuple[str, bool, dict[str, Any]]], times: dict[Any, Any], key_names: KeyNames
    ) -> Event:
        seen, mongodb, fields = topics.get(self.topic, (None, False, {}))
        entity, mongodb = key_names.table(self.key) or (seen, mongodb)
        # a key written without its schema is read as the topic's change events' keys were
        text = tombstone_key(self.key, fields, mongodb) if entity is not None else _key_text(self.raw_key)
        ts = times.get((self.topic, self.partition)) if entity is not None else None
        return {"ts": ts if ts is not None else self.kafka_ts, "entity": entity or self.topic, "key": text,
                "op": "delete", "data": None, **self.rest}  # fmt: skip


class _Unplaced:
    """Tombstones of topics whose kind the file has not shown yet. In a dump of a compacted
    topic, a tombstone whose delete compaction dropped may come before the topic's first
    surviving change: unless the changes read so far made its key schema's name sure (``key_names``),
    it is held until a record of its topic shows what the topic carries (the name learned from that
    record's change too), and goes in just before that record (after other topics' records read meanwhile: Kafka orders
    no topic or partition against another). At most ``_HELD`` are held: past that, the topic held
    longest lets its tombstones in. Those of a topic no record of the file shows (the limit reached,
    or at the end of the file) are placed by what the store holds: on a topic whose Debezium
    changes an earlier ingest read, in their entity; else as the topic's own. Where the topic turns
    out to carry Debezium events after all, a note says how many went in as its own."""

    def __init__(self, source: Source, key_names: KeyNames) -> None:
        self.source = source
        self.key_names = key_names
        self.held: HeldTombstones[_Tombstone] = HeldTombstones(_HELD)  # by topic
        # topic -> tombstones let in as its own, the topic given up (the limit reached, or the file's end)
        self.early: dict[str, int] = {}
        self.shown: set[str] = set()  # topics a record of which (other than a tombstone) was read

    def hold(self, tombstone: _Tombstone, topics: dict[str, Any], times: dict[Any, Any]) -> list[Event]:
        given_up = self.held.hold(tombstone.topic, tombstone)
        return [] if given_up is None else self.settle([given_up], topics, times)

    def settle(self, names: list[str], topics: dict[str, Any], times: dict[Any, Any]) -> list[Event]:
        """Tombstones of topics the file did not show: placed by what the store holds of them."""
        ask = self.source.store_topics
        for name, (entity, mongodb) in (ask(names) if ask and names else {}).items():
            topics.setdefault(name, (entity, mongodb, {}))  # (the rest of the file is placed so too)
        for name in names:
            if name not in topics:  # (its tombstones, now and until its first change, go in as its own)
                self.early.setdefault(name, 0)
        return [e for name in names for e in self.release(name, topics, times)]

    def release(self, topic: str, topics: dict[str, Any], times: dict[Any, Any]) -> list[Event]:
        """A record of ``topic`` showed what it carries (or the file ended): its tombstones go in."""
        self.shown.add(topic)
        return [self.place(t, topics, times) for t in self.held.take(topic)]

    def place(self, tombstone: _Tombstone, topics: dict[str, Any], times: dict[Any, Any]) -> Event:
        """A tombstone placed by what its topic showed so far; counted where it goes in as its
        topic's own, the topic given up before showing what it carries."""
        own = tombstone.topic not in topics and self.key_names.table(tombstone.key) is None
        if own and tombstone.topic in self.early:
            self.early[tombstone.topic] += 1
        return tombstone.placed(topics, times, self.key_names)

    def notes(self, source: Source, topics: dict[str, Any]) -> None:
        for topic, n in self.early.items():
            if n and topic in topics:
                source.notes.append(
                    f"{source.name}: {counted(n, 'tombstone')} of topic {topic} came before its first Debezium change while "
                    f"more than {_HELD} tombstones waited, and went in as deletes in entity {topic}, not {topics[topic][0]}; "
                    "ingest the topic's dump on its own, or as a file that shows a change of the topic earlier"
                )


def _beside_changes(topic: str, key: Any, value: Any, topics: dict[str, Any]) -> bool:
    """Whether a payload is a record Debezium writes beside its change events (a heartbeat, a
    schema change, a transaction's BEGIN or END) on a topic of Debezium's: one that carried its
    change events, or one that its name or the record's Kafka key shows to be Debezium's heartbeat
    topic (``__debezium-heartbeat.<prefix>``, key ``{"serverName": ...}``), transaction topic
    (``<prefix>.transaction``, key ``{"id": ...}`` naming the transaction) or schema-change topic
    (key ``{"databaseName": ...}``, or a value naming the database). On another topic such JSON is
    an application's own, and is read as any payload is."""
    if not _not_a_change(value):
        return False
    if topic in topics:
        return True
    inner, _ = unwrap(value)
    fields, _ = unwrap(key)
    named = list(fields) if isinstance(fields, dict) else []
    if "ddl" in inner or "tableChanges" in inner:
        return named == ["databaseName"] or "databaseName" in inner
    if "status" in inner:
        return topic.endswith(".transaction") or named == ["id"] and fields["id"] == inner["id"]
    return topic.startswith("__debezium-heartbeat") or named == ["serverName"]


class _KeyMoves:
    """Debezium writes a change of a row's key as a delete of the old key (header
    ``__debezium.newkey``), its tombstone, and a create of the new key (``__debezium.oldkey``),
    one after the other. Read as such, the create would start the row afresh: its unchanged
    TOASTed values, and its history, would stay behind with the deleted row. So the delete is held
    back, and where the next record (its tombstone aside) is that create, the create moves the row
    (``prev_key``), carrying what it did not send, and the delete and its tombstone never go in.
    Any other next record (the create sits in another partition the dump gives later, or in
    another file) lets the delete out first, at its place, and the create, when it comes, starts
    its row afresh, as it would have without the headers: in that order nothing can be moved onto
    a row that is not the one that left."""

    def __init__(self) -> None:
        self.held: tuple[str, Event] | None = None  # (topic, the delete of a key change), waiting for its create
        self.quiet: set[tuple[str, str | None]] = set()  # (topic, key) whose tombstone is passed over

    def let_out(self) -> list[Event]:
        """A record other than the held delete's create comes (or the file ends): the delete goes in."""
        out, self.held = [self.held[1]] if self.held else [], None
        return out

    def event(self, topic: str, event: Event, headers: list[list[Any]] | None, fields: dict[str, Any]) -> list[Event]:
        named = {n: v for n, v in headers or () if isinstance(v, str)}
        old = named.get("__debezium.oldkey")
        old_key = record_key(_parsed_key(old), fields)[0] if old is not None else None
        if self.held is not None and self.held[0] == topic and old_key is not None \
                and old_key == self.held[1]["key"] != event["key"] and event["op"] in ("insert", "read", "update", "patch"):  # fmt: skip
            self.held = None
            return [{**event, "prev_key": old_key, "op": "update" if event["op"] in ("insert", "read") else event["op"]}]
        out = self.let_out()  # (its tombstone stays passed over: the delete did its work)
        if event["op"] == "delete" and "__debezium.newkey" in named:
            self.held = (topic, event)
            self.quiet.add((topic, event["key"]))
            return out
        return [*out, event]

    def tombstone(self, topic: str, key: str | None) -> bool:
        """Whether the tombstone of ``key`` is passed over: its delete is held back (or went in already)."""
        if (topic, key) in self.quiet:
            self.quiet.discard((topic, key))
            return True
        return False


def _parsed_key(raw: Any) -> Any:
    """The key as JSON when it is a JSON object (a Debezium key), else as kcat gave it."""
    if isinstance(raw, str) and raw.lstrip().startswith("{"):
        try:
            return loads_exact(raw)
        except (ValueError, RecursionError):
            return raw
    return raw


def _key_text(raw: Any) -> str | None:
    if raw is None or (isinstance(raw, str) and not isinstance(raw, RawNumber)):
        return raw
    return dumps_exact(raw)


def _kafka_time(record: dict[str, Any]) -> int | None:
    ts = record.get("ts")
    # kcat writes -1 where the record has no timestamp
    if ts is None or (isinstance(ts, int) and ts < 0):
        return None
    try:
        return parse_ts(ts, "ms")
    except ValueError as e:
        raise ValueError(f"ts: {e}") from None


def _pairs(headers: Any) -> list[list[Any]] | None:
    if headers is None:
        return None
    if not isinstance(headers, list) or len(headers) % 2:
        raise ValueError("headers is not a flat list of names and values")
    return [[headers[i], headers[i + 1]] for i in range(0, len(headers), 2)]


def _read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    check_mapping_for(NAME, mapping, {"--key-field", "--offset-field"})
    # topics that carried Debezium events -> their entity, whether they came from the MongoDB
    # connector, and their rows' columns as the schema describes them
    topics: dict[str, tuple[str, bool, dict[str, Any]]] = {}
    times: dict[tuple[str, int], int | None] = {}  # (topic, partition) -> its last Debezium event's time
    tables = Tables(source)  # what Maxwell payloads told of their tables
    moves = _KeyMoves()
    key_names = KeyNames()  # what the Debezium events' key schemas stand for
    unplaced = _Unplaced(source, key_names)

    def decode(record: Any, where: dict[str, Any]) -> list[Event]:
        offset = None
        if mapping.offset_field:  # a single partition's dump keeps Kafka's offsets (--offset-field offset)
            offset = record.get(mapping.offset_field) if isinstance(record, dict) else None
            if not isinstance(offset, int) or isinstance(offset, bool):
                raise ValueError(f"missing or non-integer offset field {mapping.offset_field!r}")
        events = _decode(record, where, mapping, topics, times, tables, moves, key_names, unplaced, offset)
        for event in events:  # (a delete held back has its own record's offset already)
            if offset is not None:
                event.setdefault("offset", offset)
        return events

    yield from read_json_lines(source, mapping, report, NAME, decode)
    held = Batcher()
    for event in [*moves.let_out(), *unplaced.settle(unplaced.held.groups(), topics, times)]:
        held.add(**event)
    unplaced.notes(source, topics)
    tables.notes(source)
    if len(held):
        yield held.flush()


def _classify(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("topic"), str)
        and "partition" in value
        and "offset" in value
        and ("payload" in value or "payload_error" in value)
    )


def _sniff(head: bytes) -> int:
    return 90 if sniff_lines(head, _classify) else 0


FORMAT = Format(
    name=NAME,
    description="Kafka records from `kcat -C -J` (JSON payloads; Debezium and Maxwell payloads decoded as such)",
    sniff=_sniff,
    read=_read,
)
