"""PostgreSQL logical decoding through wal2json, format-version 2: one JSON object per line.

Capture it with ``pg_recvlogical --start -f FILE -o format-version=2 -o include-lsn=1
-o include-xids=1 -o include-timestamp=1 -o include-pk=1``. Actions: ``B`` begin, ``I`` ``U`` ``D``
changes, ``T`` truncate (one record per table), ``M`` logical message, ``C`` commit.

Events:

- ``entity`` is ``schema.table``; ``data`` the new row, ``before`` the old image the plugin gives
  (``identity``: the old key columns, or the whole old row under REPLICA IDENTITY FULL).
- ``key`` holds the primary key columns named by ``pk`` (include-pk), else by ``--key-field
  public.t:id``. A table without a key (``"pk":[]``) has a null key; its updates and deletes carry
  the full old row in ``before`` so a replay can treat it as a multiset. A change of a keyed table
  whose key the output does not name (an ``identity`` narrower than the row: version 2 writes a
  FULL old row whole, its NULLs too) is a bad record, and so is every later change of that table
  (with ``--on-error fail``, the default, the first stops the read with a hint), because guessing
  would key its rows wrongly.
- An update that moves a row to another key has ``prev_key`` (the old key) and ``key`` (the new).
- ``txn`` is the transaction: its xid, where its commit record ends (``C``'s ``nextlsn``; its
  ``lsn``, where the record begins, where it has none) and its commit time. A replay to a position
  takes the transactions whose commit is at or before it, so every change waits for its commit
  record before it is emitted: **one transaction is held in memory**.
  ``source.position`` is the change's own LSN. A transaction whose commit record is missing at the
  end of the input (a capture cut short) is reported change by change, never half-ingested.
- Logical messages are ``op: event``, ``type: message``, entity ``pg_logical_message``, data
  ``{prefix, content}``, meta ``{transactional}``; a non-transactional one has no ``txn``. A
  content that is not UTF-8 (a ``bytea`` message, written byte for byte) is ``content_base64``.
- Numbers stay exact (never through float64); every other value is the JSON string the plugin
  wrote (jsonb and arrays as their text, timestamptz as PostgreSQL printed it), but for a
  ``bytea``, which wal2json writes without the ``\\x`` of PostgreSQL's hex output: it is put back.

What the plugin loses (wal2json 2.5), so no reader can give it back:

- **NaN, Infinity and -Infinity** (numeric, real, double precision) are written as ``null``.
- An update **omits unchanged TOASTed columns** (large values stored out of line); they are left
  out of ``data`` too, so a replay keeps the old value.
- DDL is not decoded: a column added with a default shows that default only in rows written later.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import counted
from . import Format
from .base import (
    BadRecord,
    Batcher,
    Mapping,
    Report,
    Source,
    check_mapping_for,
    dumps_exact,
    iter_lines,
    key_text,
    loads_exact,
    not_utf8,
    parse_ts,
    qualified_name,
    raw_bytes,
    undecoded,
)

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "wal2json"
# how the name of a transaction whose capture gives no xid begins: ``unnamed-<size>-<read>-<line>``,
# unique to the read (two captures' transactions are never one); diff compares only its size, which
# for events in one order tells the same transaction bounds from others
UNNAMED = "unnamed-"
MESSAGE_ENTITY = "pg_logical_message"
KEY_OPTIONS = {"--key-field"}


# --------------------------------------------------------------------------- shared by the PostgreSQL readers


@dataclass
class Change:
    """One decoded change of a PostgreSQL logical decoding stream, before it becomes an event."""

    op: str  # insert | update | delete | truncate | event (a logical message)
    entity: str
    line: int
    raw: str  # the change as written, for reports
    new: dict[str, Any] | None = None  # new row; unchanged TOASTed columns are absent
    old: dict[str, Any] | None = None  # old key columns, or the whole old row
    pk: tuple[str, ...] | None = None  # key columns, where the plugin names them
    position: str | None = None  # the change's own LSN
    ts: int | None = None  # the record's own time (used outside a transaction)
    message: dict[str, Any] | None = None  # {prefix, content} of a logical message
    transactional: bool = True
    xid: str | None = None  # the change's own transaction id, where the plugin writes one on it
    partial: bool = False  # the plugin marked values it left out (test_decoding's unchanged-toast-datum)


@dataclass
class Commit:
    """A transaction's commit record: its xid, commit position (LSN) and time (epoch µs)."""

    xid: str | None
    position: str | None
    ts: int | None


class _Unkeyable(ValueError):
    """A change whose key cannot be read: reported, the read goes on."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


# pg_recvlogical confirms a prepared transaction at its PREPARE: a capture stopped between the two
# holds its changes, and the next one only its COMMIT PREPARED
_PREPARED_ACROSS = (
    "where one capture holds the PREPARE and the next the COMMIT PREPARED, ingest them as one input, into a new "
    "store or instead of the two files (e.g. cat first.out next.out | logtool ingest NEW_STORE -)"
)


class Decoder:
    """Turns a PostgreSQL change stream into canonical events.

    Changes between ``begin`` and ``commit`` wait for the commit (which gives every one of them
    its transaction's commit position and time); changes outside a transaction and
    non-transactional messages are emitted at once. ``drain`` yields the batches that are full;
    ``finish`` reports a transaction left open and yields the rest.
    """

    def __init__(
        self, format_name: str, source: Source, mapping: Mapping, report: Report, key_hint: str,
        old_omits_nulls: bool = False, keyed_updates_name_no_old: bool = False,
    ) -> None:  # fmt: skip
        self.format_name = format_name
        self.source = source
        self.mapping = mapping
        self.report = report
        self.key_hint = key_hint  # how this plugin's output can be made to name keys
        # the plugin leaves the old row's NULL columns out of its old image (test_decoding, wal2json
        # format-version 1), so under REPLICA IDENTITY FULL an old image narrower than the row is
        # no sign of a key
        self.old_omits_nulls = old_omits_nulls
        # a keyed table's update names no old row unless its key changed (test_decoding): that, not
        # a narrower old row, is what shows a key; elsewhere (wal2json format-version 1, whose every
        # update of a keyed table names the key) a narrower old row shows one until the table has
        # shown an old row as wide as the row, which only REPLICA IDENTITY FULL writes
        self.keyed_updates_name_no_old = keyed_updates_name_no_old
        self._whole_old: set[str] = set()  # tables an old row as wide as the row showed keyless
        self._pk_seen = False  # the capture names primary keys (include-pk): a hint to capture so is moot
        self._batcher = Batcher()
        self._ready: list[pa.RecordBatch] = []
        self._pending: list[Change] | None = None  # None: not inside a transaction
        self._begin: tuple[str | None, int] = (None, 0)
        self._columns: dict[str, frozenset[str]] = {}  # last row shape seen per keyless entity
        # names the transactions whose capture gives no xid, apart from every other read's
        self._read = secrets.token_hex(4)
        self._unfollowable: dict[str, tuple[str, str]] = {}  # entity -> (why, hint): its key is not named
        # two-phase commit: gid -> (its BEGIN's xid and line, its changes, its PREPARE's line)
        self._prepared: dict[str, tuple[tuple[str | None, int], list[Change], int]] = {}
        # entity read without a key -> the column sets its old rows named (up to two), narrower ones
        # where the plugin leaves NULLs out: one narrower set every time may be a key nobody named
        self._old_shapes: dict[str, set[tuple[str, ...]]] = {}
        # keyed tables' updates that name no old row (test_decoding: the key did not change, unless the
        # table has no replica identity, which its deletes without an old row show)
        self._updates_without_old: dict[str, int] = {}
        self._no_identity: dict[str, int] = {}  # entity -> line of its first delete without an old row

    def begin(self, xid: str | None, line: int) -> None:
        """A transaction begins (a transaction still open was cut short)."""
        if self._pending is not None:
            self._cut_off(f"a new transaction begins at line {line} before its commit record")
        self._pending = []
        self._begin = (xid, line)

    def add(self, change: Change) -> None:
        """A change, buffered until its transaction commits (or emitted now, outside one)."""
        if self._pending is None or not change.transactional:
            # no bracket (wal2json without include-transaction): the xid on the change still
            # groups a transaction's changes, which the plugin writes together in commit order
            txn = None
            if change.xid and change.transactional:  # the change's own time is its transaction's commit time
                txn = {"id": change.xid, "position": None, "ts": change.ts, "aborted": None}
            self._emit(change, txn)
        else:
            self._pending.append(change)

    def commit(self, commit: Commit, line: int, aborted: bool = False) -> None:
        """The open transaction commits (or, ``aborted``, rolls back): its changes become events
        carrying ``commit`` (an aborted transaction's are marked so, and replay leaves them out)."""
        if self._pending is None:
            return  # the input began inside this transaction: its changes went out unbracketed
        begin_xid, _ = self._begin
        if begin_xid is not None and commit.xid is not None and begin_xid != commit.xid:
            self._cut_off(f"line {line} commits transaction {commit.xid}, not {begin_xid}")
            return
        # a commit record without an xid still bounds a transaction: it gets a name of its own,
        # holding the number of its events (its changes that are read: the bad ones are reported)
        xid = commit.xid or begin_xid or next((c.xid for c in self._pending if c.xid), None)
        pending, self._pending = self._pending, None
        read = [(change, fields) for change in pending if (fields := self._fields(change)) is not None]
        name = f"{UNNAMED}{len(read)}-{self._read}-{self._begin[1]}"
        txn = {"id": xid or name, "position": commit.position, "ts": commit.ts, "aborted": aborted or None}
        for change, fields in read:
            self._add(change, fields, txn)

    def prepare(self, gid: str, xid: str | None, line: int) -> None:
        """The open transaction is prepared (two-phase commit, ``PREPARE TRANSACTION gid``): its
        changes wait, apart, for the ``COMMIT PREPARED`` or ``ROLLBACK PREPARED`` of its gid, which
        other transactions may come before."""
        if self._pending is None:
            return  # the input began inside this transaction: its changes went out unbracketed
        begin_xid, _ = self._begin
        if begin_xid is not None and xid is not None and begin_xid != xid:
            self._cut_off(f"line {line} prepares transaction {xid}, not {begin_xid}")
            return
        if gid in self._prepared:  # a gid is free again once its transaction ends: that one never did
            self._cut_off_prepared(gid, f"its gid is prepared again at line {line} without a COMMIT PREPARED")
        self._prepared[gid] = (self._begin, self._pending, line)
        self._pending = None

    def finish_prepared(self, gid: str, commit: Commit, line: int, aborted: bool) -> None:
        """``COMMIT PREPARED gid`` (or, ``aborted``, ``ROLLBACK PREPARED gid``): the prepared
        transaction commits here, in commit order, at ``commit``'s time."""
        if self._pending is not None:
            self._cut_off(f"line {line} ends a prepared transaction before its commit record")
        held = self._prepared.pop(gid, None)
        if held is None:  # prepared before the input began (or with no change to write)
            if not aborted:
                self.source.notes.append(
                    f"{self.source.name}:{line}: COMMIT PREPARED {gid!r} commits a transaction prepared before this "
                    f"file began: whatever it changed is not in this file; {_PREPARED_ACROSS}"
                )
            return
        self._begin, self._pending, _ = held
        self.commit(commit, line, aborted)

    def drain(self) -> Iterator[pa.RecordBatch]:
        """The batches filled so far."""
        ready, self._ready = self._ready, []
        yield from ready

    def finish(self) -> Iterator[pa.RecordBatch]:
        """End of input: report a transaction left open, then yield every remaining event; note a
        table read without a key whose old rows all named the same few columns."""
        if self._pending is not None:
            self._cut_off("the input ends before its commit record (was the capture cut short?)")
        for gid in list(self._prepared):
            self._cut_off_prepared(gid, f"its COMMIT PREPARED or ROLLBACK PREPARED is not in this file; {_PREPARED_ACROSS}")
        for entity, shapes in self._old_shapes.items():
            if len(shapes) != 1 or entity in self._unfollowable:
                continue
            named = next(iter(shapes))
            if not named or not set(named) < self._columns.get(entity, frozenset()):  # (a key has a column)
                continue
            cols, fields = ", ".join(named), " ".join(f"--key-field {entity}:{c}" for c in named)
            self.source.notes.append(
                f"{self.source.name}: {entity} is read without a key, though the old row of each of its updates and "
                f"deletes names only {cols}, as a key would (REPLICA IDENTITY FULL leaves out the old row's NULLs "
                f"alike): if {cols} {'is' if len(named) == 1 else 'are'} its key, ingest the file into a new store "
                f"with {fields}"
            )
        if self.keyed_updates_name_no_old:
            for entity, line in self._no_identity.items():
                if n := self._updates_without_old.get(entity):
                    self.source.notes.append(
                        f"{self.source.name}: {entity} has no replica identity (REPLICA IDENTITY NOTHING, or no primary "
                        f"key): its delete at line {line} names no old row, and so does every update of it, even one "
                        f"that changed the key; its {counted(n, 'update')} {'was' if n == 1 else 'were'} read as keeping their key, so a key change "
                        "among them is not followed (the row stays under its old key beside the new one): give the "
                        "table a replica identity (ALTER TABLE ... REPLICA IDENTITY DEFAULT or FULL) before capturing"
                    )
        yield from self.drain()
        if len(self._batcher):
            yield self._batcher.flush()

    def _cut_off(self, why: str) -> None:
        xid, line = self._begin
        name = f"transaction {xid}" if xid is not None else "the transaction"
        for change in self._pending or []:
            self.report(
                BadRecord(
                    self.source.name, change.line, f"{name} (begun at line {line}) is not committed: {why}",
                    raw_bytes(change.raw),
                )
            )  # fmt: skip
        self._pending = None

    def _cut_off_prepared(self, gid: str, why: str) -> None:
        current = self._begin, self._pending
        self._begin, self._pending, line = self._prepared.pop(gid)
        self._cut_off(f"prepared as {gid!r} at line {line}, {why}")
        self._begin, self._pending = current

    def _emit(self, change: Change, txn: dict[str, Any] | None) -> None:
        if (fields := self._fields(change)) is not None:
            self._add(change, fields, txn)

    def _fields(self, change: Change) -> tuple[str | None, str | None, str | None, str | None] | None:
        """A change's key, prev_key, data and before; None where it is a bad record (reported)."""
        try:
            return self._event_fields(change)
        except _Unkeyable as e:
            self.report(BadRecord(self.source.name, change.line, str(e), raw_bytes(change.raw), e.hint))
            return None

    def _add(
        self, change: Change, fields: tuple[str | None, str | None, str | None, str | None], txn: dict[str, Any] | None
    ) -> None:
        key, prev_key, data, before = fields
        self._batcher.add(
            ts=txn["ts"] if txn is not None and txn["ts"] is not None else change.ts,
            entity=change.entity,
            key=key,
            prev_key=prev_key,
            op="patch" if change.partial else change.op,  # it sets what it sent and keeps the rest
            type="message" if change.op == "event" else None,
            data=data,
            before=before,
            meta=dumps_exact({"transactional": change.transactional}) if change.op == "event" else None,
            txn=txn,
            source={
                "format": self.format_name,
                "file": self.source.name,
                "line": change.line,
                "position": change.position,
            },
        )
        if self._batcher.full():
            self._ready.append(self._batcher.flush())

    def _event_fields(self, ch: Change) -> tuple[str | None, str | None, str | None, str | None]:
        """key, prev_key, data and before of a change."""
        if ch.op == "event":
            return None, None, dumps_exact(ch.message), None
        if ch.op == "truncate":
            return None, None, None, None
        if ch.op == "delete" and ch.old is None:
            self._no_identity.setdefault(ch.entity, ch.line)
            raise _Unkeyable(f"DELETE on {ch.entity} without its old row (is its REPLICA IDENTITY NOTHING?)")
        if ch.op != "delete" and ch.new is None:
            raise _Unkeyable(f"{ch.op.upper()} on {ch.entity} without its new row")
        data = dumps_exact(ch.new) if ch.op != "delete" else None
        before = dumps_exact(ch.old) if ch.old is not None else None
        names = self._key_names(ch)
        if not names:
            return None, None, data, before
        if ch.op == "update" and ch.old is None:
            self._updates_without_old[ch.entity] = self._updates_without_old.get(ch.entity, 0) + 1
        new_key = self._key(ch, names, ch.new, ch.old) if ch.op != "delete" else None
        old_key = self._key(ch, names, ch.old, ch.new) if ch.old is not None else new_key
        if ch.op == "delete":
            return old_key, None, data, before
        return new_key, (old_key if old_key != new_key else None), data, before

    def _key(
        self, ch: Change, names: tuple[str, ...], image: dict[str, Any] | None, other: dict[str, Any] | None
    ) -> str:
        # a key column left out of one image (an unchanged TOASTed value) is the same in the other
        values = []
        for name in names:
            if image is not None and name in image:
                values.append(image[name])
            elif other is not None and name in other:
                values.append(other[name])
            elif ch.pk and image is not None and image is ch.old:  # the old row holds another unique index
                fields = " ".join(f"--key-field {ch.entity}:{n}" for n in image)
                raise _Unkeyable(
                    f"primary key column {name!r} is not in the old row of the {ch.op.upper()} of {ch.entity}, "
                    f"which holds {', '.join(image)}: its REPLICA IDENTITY is another unique index",
                    f"key the table by that index: pass {fields} (one per key column), or ALTER TABLE ... REPLICA "
                    "IDENTITY DEFAULT (or FULL) before capturing",
                )
            else:
                raise _Unkeyable(f"key column {name!r} is not in the {ch.op.upper()} of {ch.entity}")
        return key_text(values, names)

    def _key_names(self, ch: Change) -> tuple[str, ...]:
        if ch.pk is not None:  # include-pk (an empty pk: no primary key, a FULL or USING INDEX identity)
            self._pk_seen = True
        # a key named for this very table wins over the primary key the capture names: a table whose
        # REPLICA IDENTITY USING INDEX is another unique index has only that index in its old rows
        scoped = self.mapping.scoped_keys_for(ch.entity)
        if scoped:
            return scoped
        if ch.pk:
            return ch.pk
        names = self.mapping.keys_for(ch.entity)
        if names:  # (also for a table the capture names no primary key for: a replica identity index)
            return names
        # (format-version 1 names a primary key only, never a REPLICA IDENTITY USING INDEX key: a
        # table it names none for may still have one)
        self._check_keyless(ch)
        return ()

    def _check_keyless(self, ch: Change) -> None:
        """A bad record where a table nobody named a key for has one: keyless events would replay
        it wrongly. From then on every change of the table is one (its earlier rows, read before
        this showed, stay in without a key: the reason says so).

        A table with a replica identity key shows it in an update without an old image (test_decoding
        writes one only where the key changed), or in an old image holding fewer columns than the
        row. Under REPLICA IDENTITY FULL every update has an old image, the whole old row, but for a
        plugin that leaves its NULLs out of it: there a narrower old image shows a key only until an
        old image as wide as the row was seen, or not at all where updates show keys otherwise.
        """
        if ch.entity in self._unfollowable:
            why, hint = self._unfollowable[ch.entity]
            raise _Unkeyable(why, hint)
        new_cols = frozenset(ch.new) if ch.new is not None else None
        old_cols = frozenset(ch.old) if ch.old is not None else None
        row_cols = new_cols if ch.op == "update" else self._columns.get(ch.entity)
        narrower = old_cols is not None and row_cols is not None and old_cols < row_cols
        if old_cols is not None and (old_cols == row_cols or not old_cols):  # (a key has a column)
            self._whole_old.add(ch.entity)
        ambiguous = self.old_omits_nulls and (self.keyed_updates_name_no_old or ch.entity in self._whole_old)
        keyed = (ch.op == "update" and old_cols is None) or (narrower and not ambiguous)
        if ch.old is not None and row_cols is not None:  # what the table's old rows name, for finish's note
            shapes = self._old_shapes.setdefault(ch.entity, set())
            if len(shapes) < 2:
                shapes.add(tuple(ch.old) if narrower else tuple(sorted(row_cols)))
        if keyed:
            key_hint = "" if self._pk_seen else self.key_hint  # a capture naming primary keys names them already
            named = list(ch.old) if ch.old is not None else []
            fields = " ".join(f"--key-field {ch.entity}:{n}" for n in named) or f"--key-field {ch.entity}:COLUMN"
            if named and self.old_omits_nulls:  # a key, or a FULL old row whose NULLs were left out
                what = ("names fewer columns in an old row than its rows hold: a key the {} output does not name, "
                        "or a REPLICA IDENTITY FULL row's NULL columns, which the plugin leaves out of old rows")
                hint = (f"if {', '.join(named)} {'is' if len(named) == 1 else 'are'} its key, pass {fields} (one per "
                        f"key column){key_hint}; if the table has no key, capture with "
                        "format-version 2, whose old rows keep their NULLs")  # fmt: skip
            elif named:
                what, hint = "has a key that the {} output does not name", f"pass {fields} (one per key column){key_hint}"
            else:  # nothing of the old row: a key left unnamed, or no replica identity at all
                what = "has an update that names no old row: a key the {} output does not name, or no replica identity"
                hint = (f"if the table has a primary key or a replica identity index, pass {fields} (one per key "
                        f"column){key_hint}; if it has neither, ALTER TABLE ... REPLICA IDENTITY FULL so its updates and "
                        "deletes can be followed")  # fmt: skip
            why = (f"{ch.entity} " + what.format(self.format_name)
                   + f" (line {ch.line}): its changes from here on in this file are set aside, its rows before are in "
                   "without a key")  # fmt: skip
            self._unfollowable[ch.entity] = (why, hint)
            raise _Unkeyable(why, hint)
        if new_cols is not None:
            self._columns[ch.entity] = new_cols


def xid_text(value: Any) -> str | None:
    """A transaction id as text (None stays None)."""
    return None if value is None else str(value)


def ts_or_none(value: Any) -> int | None:
    """A timestamp the plugin wrote, as epoch µs, or None where it wrote none."""
    return None if value in (None, "") else parse_ts(value)


def message_change(
    record: dict[str, Any], line: int, raw: str, position: str | None, ts: int | None, xid: str | None = None
) -> Change:
    """A logical message (``pg_logical_emit_message``) as wal2json writes it, in either version."""
    prefix, content = record.get("prefix"), record.get("content")
    if not isinstance(prefix, str) or not isinstance(content, str):
        raise ValueError("a message needs a string prefix and content")
    return Change(
        "event", MESSAGE_ENTITY, line, raw, position=position, ts=ts,
        message=message_body(prefix, content), transactional=bool(record.get("transactional", True)), xid=xid,
    )  # fmt: skip


def message_body(prefix: str, content: str) -> dict[str, Any]:
    """A logical message's data: ``{prefix, content}``; a content that is not UTF-8 (a bytea
    message, whose bytes the plugins write as they are) is ``content_base64``, its bytes kept.
    Text from ``lossless_line``; a prefix that is not UTF-8 is a ValueError."""
    if (at := undecoded(prefix)) is not None:
        raise ValueError(not_utf8(f"in the message's prefix, at byte {at}"))
    if undecoded(content) is None:
        return {"prefix": prefix, "content": content}
    return {"prefix": prefix, "content_base64": base64.b64encode(raw_bytes(content)).decode("ascii")}


def entity_of(record: dict[str, Any]) -> str:
    """``schema.table`` of a wal2json change."""
    schema, table = record.get("schema"), record.get("table")
    if not isinstance(schema, str) or not isinstance(table, str):
        raise ValueError("a change needs a string schema and table")
    return qualified_name(schema, table)


# --------------------------------------------------------------------------- format-version 2

_OPS = {"I": "insert", "U": "update", "D": "delete"}


def _columns(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in value):
        raise ValueError(f"{what} must be a list of {{name, type, value}} objects")
    return {c["name"]: column_value(c.get("type"), c.get("value")) for c in value}


def column_value(type_name: Any, value: Any) -> Any:
    """A column's value as PostgreSQL writes it: wal2json writes a ``bytea`` without the ``\\x`` of
    its hex output (``00ff`` for ``\\x00ff``), which is put back, so the value is the database's own
    text (test_decoding's and COPY's). Where the output names no type (include-types=0) it cannot
    be, and the value stays as written."""
    if type_name == "bytea" and isinstance(value, str):
        return "\\x" + value
    return value


def _record(dec: Decoder, rec: dict[str, Any], line: int, raw: str) -> None:
    action = rec.get("action")
    xid = xid_text(rec.get("xid"))
    lsn = rec.get("lsn")
    ts = ts_or_none(rec.get("timestamp"))
    if action == "B":
        dec.begin(xid, line)
    elif action == "C":
        # where the commit record ends (nextlsn, as version 1 gives it): a position taken just after
        # the commit (pg_current_wal_lsn(), a subscriber's flush position) is there, and it is where
        # the next record begins, which may be the next transaction's commit record
        dec.commit(Commit(xid, rec.get("nextlsn") or lsn, ts), line)
    elif action in _OPS:
        pk = rec.get("pk")
        if pk is not None and not (isinstance(pk, list) and all(isinstance(c, dict) and "name" in c for c in pk)):
            raise ValueError("pk must be a list of {name, type} objects")
        dec.add(
            Change(
                _OPS[action], entity_of(rec), line, raw,
                new=_columns(rec.get("columns"), "columns") if action != "D" else None,
                old=_columns(rec["identity"], "identity") if rec.get("identity") is not None else None,
                pk=tuple(str(c["name"]) for c in pk) if pk is not None else None,
                position=lsn, ts=ts, xid=xid,
            )
        )  # fmt: skip
    elif action == "T":
        dec.add(Change("truncate", entity_of(rec), line, raw, position=lsn, ts=ts, xid=xid))
    elif action == "M":
        dec.add(message_change(rec, line, raw, lsn, ts, xid))
    else:
        raise ValueError(f"unknown action {action!r} (expected B, I, U, D, T, M or C)")


def read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    """Read wal2json format-version 2 output into canonical events (see the module docstring)."""
    check_mapping_for(NAME, mapping, KEY_OPTIONS)
    dec = Decoder(NAME, source, mapping, report, ", or capture with -o include-pk=1")
    with source.open() as stream:
        for line, text in iter_lines(stream, source, report, mapping.max_line_bytes, lossless=True):
            try:
                rec = loads_exact(text)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                if (at := undecoded(text)) is not None and rec.get("action") != "M":  # a message's content may be bytes
                    raise ValueError(not_utf8(f"at byte {at}"))
                _record(dec, rec, line, text)
            except ValueError as e:
                report(BadRecord(source.name, line, f"not a wal2json format-version 2 record: {e}", raw_bytes(text)))
            yield from dec.drain()
    yield from dec.finish()


_ACTIONS = {"B", "C", "I", "U", "D", "T", "M"}
_CUT_RECORD = re.compile(rb'\{"action":"[BCIUDTM]",')


def sniff(head: bytes) -> int:
    """Lines of JSON objects whose ``action`` is one of wal2json's."""
    lines = [ln for ln in head.split(b"\n")[:20] if ln.strip()]
    seen = 0
    for i, raw in enumerate(lines):
        try:
            # a message's content may be bytes that are not UTF-8 (a bytea message)
            rec = loads_exact(raw.decode("utf-8", "replace"))
        except ValueError:
            # only the last line may fail: where the head cut it short
            if i == len(lines) - 1 and _CUT_RECORD.match(raw):
                seen += 1
                break
            return 0
        if not isinstance(rec, dict) or not isinstance(rec.get("action"), str) or rec["action"] not in _ACTIONS:
            return 0
        if rec["action"] in _OPS and not {"schema", "table"} <= rec.keys():
            return 0
        seen += 1
    return 95 if seen else 0


FORMAT = Format(
    name=NAME,
    description="PostgreSQL wal2json format-version 2 (one JSON object per change; pg_recvlogical output)",
    sniff=sniff,
    read=read,
)
