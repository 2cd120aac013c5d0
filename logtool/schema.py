"""The canonical event schema: every format is read into it, everything downstream sees only it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: The operations an event can carry.
OPS = ("insert", "update", "upsert", "patch", "delete", "truncate", "read", "event")
#: Ops that write a full row image.
ROW_OPS = ("insert", "update", "upsert", "read")
#: The readers of change-data-capture streams. An ``event`` they read is a notice of the source (a
#: logical decoding message, a DDL statement), not a domain event for a reducer.
CDC_FORMATS = ("debezium", "kcat", "maxwell", "mongodb", "test_decoding", "wal2json", "wal2json-v1")
#: The readers of sources whose dumps may end inside a transaction, its rest in the next file:
#: Debezium and MongoDB mark no transaction's end in the change stream; Maxwell marks it
#: (``"commit": true`` on its last row), so its last transaction is open only without that mark.
#: (wal2json and test_decoding are read in whole transactions; one cut short is reported.)
OPEN_ENDED_TRANSACTION_FORMATS = ("debezium", "kcat", "maxwell", "mongodb")
#: SQL over events: a Kafka tombstone that a Debezium keyed dump gave right after its delete, in
#: the delete's transaction (so that a prefix takes both or neither). It is no change of its own:
#: the transaction ends with its last change, not later for it. (The reader gives every change
#: event a ``meta``, and a tombstone none.)
TOMBSTONE_AFTER_ITS_DELETE = "(source.format = 'debezium' AND op = 'delete' AND meta IS NULL)"
#: SQL over events: a domain event, which only an event-sourced log's reducers can apply.
DOMAIN_EVENT = "op = 'event' AND source.format NOT IN (" + ", ".join(f"'{f}'" for f in CDC_FORMATS) + ")"


def _ts() -> pa.DataType:
    import pyarrow as pa

    return pa.timestamp("us", tz="UTC")


def txn_type() -> pa.DataType:
    """Transaction a change belongs to: its id, and its commit's source position and time."""
    import pyarrow as pa

    return pa.struct(
        [
            ("id", pa.string()),
            ("position", pa.string()),  # commit position as the source writes it
            ("position_order", pa.string()),  # the same, as a string that sorts in source order
            ("ts", _ts()),  # commit time
            ("aborted", pa.bool_()),
        ]
    )


def source_type() -> pa.DataType:
    """Where an event came from: format, file, line (or byte offset) and source position."""
    import pyarrow as pa

    return pa.struct(
        [
            ("format", pa.string()),
            ("file", pa.string()),
            ("line", pa.int64()),
            ("position", pa.string()),  # LSN, binlog file:pos, kafka partition/offset, as written
            ("position_order", pa.string()),  # sortable form of position
        ]
    )


def input_schema() -> pa.Schema:
    """What a format reader yields: the event schema without the integrity columns.

    ``offset`` is null unless the reader takes offsets from the source (``--offset-field``).
    """
    import pyarrow as pa

    return pa.schema(
        [
            ("offset", pa.int64()),
            ("ts", _ts()),
            ("entity", pa.string()),
            ("key", pa.string()),
            ("prev_key", pa.string()),  # the key before this event, where the event changed it
            ("op", pa.string()),
            ("type", pa.string()),
            ("data", pa.string()),  # JSON text
            ("before", pa.string()),  # JSON text
            ("meta", pa.string()),  # JSON text
            ("txn", txn_type()),
            ("source", source_type()),
        ]
    )


def event_schema() -> pa.Schema:
    """The schema of a stored segment: the input schema plus salt and digest."""
    import pyarrow as pa

    schema = input_schema()
    return schema.append(pa.field("salt", pa.binary())).append(pa.field("digest", pa.binary()))


#: Columns holding JSON text.
JSON_COLUMNS = ("data", "before", "meta")
#: Result columns that output writes as JSON: the events' JSON columns, and what replays and diffs
#: name so.
OUTPUT_JSON_COLUMNS = (*JSON_COLUMNS, "state", "value", "left", "right")
