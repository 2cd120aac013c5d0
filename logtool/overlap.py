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

from .errors import counted

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from .store import Store

#: the formats whose transactions are a PostgreSQL server's (an xid and a commit position or time)
FORMATS = ("wal2json", "wal2json-v1", "test_decoding")
_UNNAMED = "unnamed-"  # (a transaction the capture gives no xid is named apart from every other read's)


@dataclass
class Resent:
    """The store's transactions of a format (a table of an engine connection, never whole in
    Python: a store may hold millions), and what an ingest left out of them."""

    con: duckdb.DuckDBPyConnection  # with ``held(xid, position, ts, entity, op)``
    events: int = 0
    transactions: set[tuple[str, str | None, int | None]] = field(default_factory=set)
    first_line: int | None = None

    def note(self, name: str) -> str | None:
        """The ingest's warning, or None where nothing was left out."""
        if not self.events:
            return None
        return (
            f"{name}: {counted(self.events, 'event')} of {counted(len(self.transactions), 'transaction')} the store "
            f"already holds (the same xid, commit position and commit time; the first at line {self.first_line}) "
            f"{'was' if self.events == 1 else 'were'} left out: the "
            "capture overlaps an earlier one (pg_recvlogical sends again what its slot had not confirmed); "
            "pass --allow-duplicates to ingest them again"
        )


def held_transactions(store: Store, format_name: str) -> Resent | None:
    """The transactions of ``format_name`` the store holds (None where it holds none, or the format
    is not a PostgreSQL one)."""
    if format_name not in FORMATS or not store.state().segments:
        return None
    from . import engine
    from .engine import sql_string

    con = engine.connect()
    store.events_view(con)
    con.execute(
        f"""CREATE TEMP TABLE held AS
            SELECT DISTINCT txn.id AS xid, txn.position AS position, epoch_us(txn.ts) AS ts, entity, op FROM events
            WHERE source.format = {sql_string(format_name)} AND txn.id IS NOT NULL
              AND NOT starts_with(txn.id, {sql_string(_UNNAMED)}) AND (txn.position IS NOT NULL OR txn.ts IS NOT NULL)"""
    )
    if not con.execute("SELECT 1 FROM held LIMIT 1").fetchall():
        return None
    return Resent(con)


def drop_resent(batch: pa.RecordBatch, resent: Resent) -> pa.RecordBatch:
    """The batch without the events of transactions the store holds (counted in ``resent``)."""
    import pyarrow as pa

    incoming = pa.table({  # noqa: F841 - read by the query
        "i": pa.array(range(batch.num_rows), pa.int64()),
        "xid": batch.column("txn").field("id"),
        "position": batch.column("txn").field("position"),
        "ts": batch.column("txn").field("ts"),
        "entity": batch.column("entity"),
        "op": batch.column("op"),
        "line": batch.column("source").field("line"),
    })  # fmt: skip
    resent.con.register("incoming", incoming)
    again = resent.con.execute(
        """SELECT i, xid, position, epoch_us(ts), line FROM incoming b
           WHERE EXISTS (SELECT 1 FROM held h WHERE h.xid = b.xid AND h.entity = b.entity AND h.op = b.op
                         AND h.position IS NOT DISTINCT FROM b.position AND h.ts IS NOT DISTINCT FROM epoch_us(b.ts))
           ORDER BY i"""
    ).fetchall()
    resent.con.unregister("incoming")
    if not again:  # (the usual case: new transactions)
        return batch
    resent.events += len(again)
    resent.transactions.update((xid, position, ts) for _, xid, position, ts, _ in again)
    if resent.first_line is None:
        resent.first_line = again[0][4]
    keep = [True] * batch.num_rows
    for i, *_ in again:
        keep[i] = False
    return batch.filter(pa.array(keep))
