"""Transactions a PostgreSQL capture sends again: an ingest leaves out those the store holds.

pg_recvlogical starts where its slot's confirmed position is, and it confirms what it wrote only
every few seconds (``-F``), so a capture restarted after a crash, a kill or a lost connection
begins with transactions the previous file already holds (and ``pg_logical_slot_peek_changes``
followed by ``pg_logical_slot_get_changes`` gives them twice by design). Replaying both copies
would apply them twice: a keyless table's inserts twice over, a delete of a row since inserted
again. A transaction is the same one where its xid, its commit position and its commit time are
(an xid alone is not enough: another server's, or one after wraparound, may be the same number;
a capture giving neither position nor time is not checked); of it, only the changes of a table
and kind (insert, update, ...) the store holds are left out, so that captures of the same server
split by table (wal2json's ``add-tables``) or by kind (``actions``) all go in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

    from .store import Store

#: the formats whose transactions are a PostgreSQL server's (an xid and a commit position or time)
FORMATS = ("wal2json", "wal2json-v1", "test_decoding")
_UNNAMED = "unnamed-"  # (a transaction the capture gives no xid is named apart from every other read's)


@dataclass
class Resent:
    """The store's transactions of a format, and what an ingest left out of them."""

    # xid -> (commit position, commit time µs) -> the (entity, op) of its changes the store holds
    held: dict[str, dict[tuple[str | None, int | None], set[tuple[str, str]]]]
    events: int = 0
    transactions: set[tuple[str, str | None, int | None]] = field(default_factory=set)
    first_line: int | None = None

    def note(self, name: str) -> str | None:
        """The ingest's warning, or None where nothing was left out."""
        if not self.events:
            return None
        return (
            f"{name}: {self.events} event(s) of {len(self.transactions)} transaction(s) the store already holds (the "
            f"same xid, commit position and commit time; the first at line {self.first_line}) were left out: the "
            "capture overlaps an earlier one (pg_recvlogical sends again what its slot had not confirmed); "
            "pass --allow-duplicates to ingest them again"
        )


def held_transactions(store: Store, format_name: str) -> Resent | None:
    """The transactions of ``format_name`` the store holds (None where it holds none, or the format
    is not a PostgreSQL one)."""
    if format_name not in FORMATS or not store.state().segments:
        return None
    from .query import events_connection

    rows = events_connection(store).execute(
        """SELECT DISTINCT txn.id, txn.position, epoch_us(txn.ts), entity, op FROM events
           WHERE source.format = ? AND txn.id IS NOT NULL AND NOT starts_with(txn.id, ?)
             AND (txn.position IS NOT NULL OR txn.ts IS NOT NULL)""",
        [format_name, _UNNAMED],
    ).fetchall()
    if not rows:
        return None
    held: dict[str, dict[tuple[str | None, int | None], set[tuple[str, str]]]] = {}
    for xid, position, ts, entity, op in rows:
        held.setdefault(xid, {}).setdefault((position, ts), set()).add((entity, op))
    return Resent(held)


def drop_resent(batch: pa.RecordBatch, resent: Resent) -> pa.RecordBatch:
    """The batch without the events of transactions the store holds (counted in ``resent``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    txn = batch.column("txn")
    ids = pc.struct_field(txn, "id")
    maybe = pc.fill_null(pc.is_in(ids, value_set=pa.array(list(resent.held), pa.string())), False)
    if not pc.any(maybe).as_py():  # (the usual case: new xids)
        return batch
    positions = pc.struct_field(txn, "position").to_pylist()
    times = pc.struct_field(txn, "ts").cast(pa.int64()).to_pylist()
    lines = pc.struct_field(batch.column("source"), "line").to_pylist()
    entities, ops = batch.column("entity").to_pylist(), batch.column("op").to_pylist()
    keep = []
    for i, (xid, candidate) in enumerate(zip(ids.to_pylist(), maybe.to_pylist(), strict=True)):
        again = candidate and (entities[i], ops[i]) in resent.held[xid].get((positions[i], times[i]), ())
        keep.append(not again)
        if again:
            resent.events += 1
            resent.transactions.add((xid, positions[i], times[i]))
            if resent.first_line is None:
                resent.first_line = lines[i]
    return batch.filter(pa.array(keep))
