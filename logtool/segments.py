"""Writing segments: offsets, salts and digests assigned to incoming batches, Parquet out.

A segment is one Parquet file holding a contiguous run of offsets: zstd, row-group statistics
on every column, a page index, and a bloom filter on ``key`` so a reader looking for one key
skips segments and row groups that cannot hold it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .integrity import digest_sql, digests_hash
from .keyindex import describe
from .store import Store, file_sha256

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

DEFAULT_SEGMENT_ROWS = 262_144  # 2 row groups: purge and history touch little, scans stay fast
ROW_GROUP_ROWS = 128 * 1024


# Columns whose values repeat: a dictionary makes them small. The others (offsets, times, payloads,
# salts, digests) are nearly all distinct: trying a dictionary first only costs time.
_DICTIONARY_COLUMNS = (
    "entity", "key", "prev_key", "op", "type", "before", "meta", "txn.id", "txn.position",
    "txn.position_order", "txn.ts", "txn.aborted", "source.format", "source.file", "source.position",
    "source.position_order",
)  # fmt: skip


def write_parquet_options(schema: pa.Schema | None = None) -> dict[str, Any]:
    """Options every segment and snapshot is written with; given the schema, dictionary encoding
    is tried only on the event columns whose values repeat."""
    options: dict[str, Any] = {
        "compression": "zstd",
        "compression_level": 3,
        "write_statistics": True,
        "write_page_index": True,
        "bloom_filter_options": {"key": {"ndv": 200_000, "fpp": 0.01}},
    }
    if schema is not None:
        import pyarrow as pa

        leaves = {f.name for f in schema}
        leaves |= {f"{f.name}.{c.name}" for f in schema if pa.types.is_struct(f.type) for c in f.type}
        options["use_dictionary"] = [c for c in _DICTIONARY_COLUMNS if c in leaves]
        # salts and digests are random bytes of one length: without the length before each value
        # (which plain encoding writes) zstd sees nothing to compress and gives up at once
        options["column_encoding"] = {c: "DELTA_LENGTH_BYTE_ARRAY" for c in ("salt", "digest") if c in leaves}
    return options


class SegmentWriter:
    """Takes batches in the input schema, assigns offsets (unless the source gave them), salts
    and digests, and writes segments of at most ``segment_rows`` events. ``close()`` returns
    the commit entries; ``abort()`` deletes what was written."""

    def __init__(
        self,
        store: Store,
        first_offset: int,
        *,
        segment_rows: int = DEFAULT_SEGMENT_ROWS,
        source_offsets: bool = False,
        on_rows: Callable[[int], None] | None = None,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> None:
        """``con``: a connection for the digests (one writer after another may share it: opening
        one costs about 10 ms, which an ingest of many small files pays per file)."""
        from . import engine
        from .schema import event_schema

        self.store = store
        self.next_offset = first_offset
        self.segment_rows = segment_rows
        self.source_offsets = source_offsets
        self.on_rows = on_rows
        self.schema = event_schema()
        self.con = con or engine.connect()
        self.ingest_time = dt.datetime.now(dt.UTC)
        self.stamped = 0  # events the source gave no time, stamped with ingest_time
        self.first_stamped: int | None = None  # the source line of the first of them
        self.entries: list[dict[str, Any]] = []
        self.gaps: list[list[int]] = []
        self._writer: pq.ParquetWriter | None = None
        self._path: Path | None = None
        self._rows = 0
        self._hash: Any = None
        self._min: int | None = None
        self._max: int | None = None
        self._ts: list[Any] = []
        self._pending: list[pa.Table] = []  # rows waiting for a whole row group
        self._pending_rows = 0
        self._digest_sqls: dict[tuple[frozenset[str], frozenset[str]], str] = {}
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._stopping = False

    def write(self, batch: pa.RecordBatch) -> None:
        """Append a batch (input schema) to the log."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        n = batch.num_rows
        if n == 0:
            return
        if self.source_offsets:
            offsets = batch.column("offset")
            self._check_source_offsets(batch, offsets)
            last = offsets[-1].as_py()
            first = offsets[0].as_py()
            if first > self.next_offset:
                self.gaps.append([self.next_offset, first - 1])
            inner = pc.subtract(offsets.slice(1), offsets.slice(0, n - 1)) if n > 1 else None
            if inner is not None and pc.max(inner).as_py() > 1:
                arr = offsets.to_numpy()
                for i in np.flatnonzero(np.diff(arr) > 1):
                    self.gaps.append([int(arr[i]) + 1, int(arr[i + 1]) - 1])
            self.next_offset = last + 1
        else:
            offsets = pa.array(np.arange(self.next_offset, self.next_offset + n, dtype=np.int64))
            self.next_offset += n
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["offset"] = offsets
        ts = columns["ts"]
        if ts.null_count:
            if self.first_stamped is None:
                first = pc.index(pc.is_null(ts), True).as_py()
                self.first_stamped = batch.column("source").field("line")[first].as_py()
            self.stamped += ts.null_count
            columns["ts"] = pc.fill_null(ts, pa.scalar(self.ingest_time, ts.type))
        columns["salt"] = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(16), n, [None, pa.py_buffer(os.urandom(16 * n))]
        ).cast(pa.binary())
        columns["digest"] = pa.nulls(n, pa.binary())
        table = pa.Table.from_pydict(columns, schema=self.schema)
        # digested here, not in the writer thread: that thread then only writes, so what is left to
        # do after the last batch (while nothing else runs) is short
        self._hand_over(table.set_column(self.schema.get_field_index("digest"), "digest", self._digests(table)))
        if self.on_rows:
            self.on_rows(n)

    def _digests(self, table: pa.Table) -> pa.ChunkedArray:
        """The event digests of a table (event schema, digest still null)."""
        import pyarrow as pa

        incoming = pa.Table.from_batches(  # noqa: F841 - read by the query, batch by batch on every core
            table.to_batches(max_chunksize=32768)
        )
        digest = self.con.sql(f"SELECT {self._digest_sql(table)} AS digest FROM incoming").to_arrow_table().column(0)
        return digest.cast(pa.binary())

    def _hand_over(self, table: pa.Table) -> None:
        """Queue a table for the writer thread, which writes it while the caller reads the next
        batch; the queue holds one table, so memory stays bounded."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="logtool-segment-writer", daemon=True)
            self._thread.start()
        self._raise_failure()
        self._queue.put(table)

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._failure is not None or self._stopping:
                continue  # drained, so a producer blocked on the queue goes on
            try:
                self._write_table(table)
            except BaseException as e:  # handed to the caller's thread by _raise_failure
                self._failure = e

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _join(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _write_table(self, table: pa.Table) -> None:
        """Write a digested table (event schema) into segments."""
        n = table.num_rows
        start = 0
        while start < n:
            if self._writer is None:
                self._open(table.column("offset")[start].as_py())
            take = min(n - start, self.segment_rows - self._rows)
            self._append(table.slice(start, take))
            start += take
            if self._rows >= self.segment_rows:
                self._finish()

    def _digest_sql(self, table: pa.Table) -> str:
        """The digest expression for this table: columns NULL in every row cost nothing."""
        counts = {name: column.null_count for name, column in _leaves(table)}
        nulls = frozenset(name for name, count in counts.items() if count == table.num_rows)
        full = frozenset(name for name, count in counts.items() if count == 0)
        if (nulls, full) not in self._digest_sqls:
            self._digest_sqls[nulls, full] = digest_sql(nulls, full)
        return self._digest_sqls[nulls, full]

    def _check_source_offsets(self, batch: pa.RecordBatch, offsets: pa.Array) -> None:
        import numpy as np

        arr = offsets.to_numpy(zero_copy_only=False)
        prev = np.concatenate([[self.next_offset - 1], arr[:-1]])
        bad = np.flatnonzero(arr <= prev)
        if len(bad):
            i = int(bad[0])
            src = batch.column("source")[i].as_py()
            raise InputError(
                src["file"],
                src["line"],
                f"offset {arr[i]} is not above the previous offset {prev[i]} (source offsets must strictly increase, "
                "and start above the store's last offset)",
                "ingest a single partition in order, or drop --offset-field to let the store assign offsets",
            )

    def _open(self, base_offset: int) -> None:
        import pyarrow.parquet as pq

        self._path = self.store.new_file("segment", f"{base_offset:020d}")
        self._writer = pq.ParquetWriter(_partial(self._path), self.schema, **write_parquet_options(self.schema))
        self._rows = 0
        self._hash = hashlib.sha256()
        self._min = base_offset
        self._ts = []

    def _append(self, table: pa.Table) -> None:
        import pyarrow.compute as pc

        assert self._writer is not None
        # Row groups of ROW_GROUP_ROWS whatever the size of the incoming tables (each write is a
        # row group of its own): rows wait until a whole one is there, or the segment ends.
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(whole_groups_only=True)
        digests_hash(table.column("digest"), self._hash)
        self._rows += table.num_rows
        self._max = table.column("offset")[-1].as_py()
        mm = pc.min_max(table.column("ts"))
        self._ts += [mm["min"].as_py(), mm["max"].as_py()]

    def _flush(self, whole_groups_only: bool = False) -> None:
        import pyarrow as pa

        assert self._writer is not None
        if not self._pending:
            return
        rows = pa.concat_tables(self._pending)
        cut = rows.num_rows - rows.num_rows % ROW_GROUP_ROWS if whole_groups_only else rows.num_rows
        if cut:
            self._writer.write_table(rows.slice(0, cut), row_group_size=ROW_GROUP_ROWS)
        self._pending = [rows.slice(cut)] if cut < rows.num_rows else []
        self._pending_rows = rows.num_rows - cut

    def _finish(self) -> None:
        if self._writer is None:
            return
        self._flush()
        self._writer.close()
        assert self._path is not None and self._min is not None and self._max is not None
        os.replace(_partial(self._path), self._path)
        stamps = [t for t in self._ts if t is not None]
        self.entries.append(
            segment_entry(
                self.store, self._path, self._min, self._max, self._rows, self._hash.hexdigest(),
                min(stamps) if stamps else None, max(stamps) if stamps else None,
            )
        )  # fmt: skip
        self._writer = None
        self._path = None

    def close(self) -> list[dict[str, Any]]:
        """Finish the open segment; the commit entries of everything written."""
        self._join()
        self._raise_failure()
        self._finish()
        return self.entries

    def abort(self) -> None:
        """Delete every file written (nothing was committed)."""
        self._stopping = True
        self._join()
        self._pending, self._pending_rows = [], 0
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        paths = [self.store.path / e["path"] for e in self.entries]
        if self._path is not None:
            paths += [self._path, _partial(self._path)]
        for p in paths:
            p.unlink(missing_ok=True)
        self.entries = []


def _partial(path: Path) -> Path:
    """Where a segment is written until it is whole: a reader of segments/*.parquet never meets
    half a file (a killed writer's partial file is a leftover the next writer deletes)."""
    return path.with_name(path.name + ".partial")


def _leaves(table: pa.Table) -> Iterator[tuple[str, pa.ChunkedArray]]:
    """Every leaf column of a table, as ``name`` or ``struct.member``, a member NULL where its
    struct is."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for field in table.schema:
        column = table.column(field.name)
        if pa.types.is_struct(field.type):
            for child in field.type:
                yield f"{field.name}.{child.name}", pc.struct_field(column, child.name)
        else:
            yield field.name, column


def segment_entry(
    store: Store, path: Path, min_offset: int, max_offset: int, rows: int, digest: str, min_ts: Any, max_ts: Any
) -> dict[str, Any]:
    """The commit entry of a written segment file."""
    return {
        "kind": "segment",
        "path": store.rel(path),
        "min_offset": min_offset,
        "max_offset": max_offset,
        "rows": rows,
        "digest": digest,
        "sha256": file_sha256(path),
        "bytes": path.stat().st_size,
        "min_ts": min_ts.isoformat() if min_ts is not None else None,
        "max_ts": max_ts.isoformat() if max_ts is not None else None,
        "row_groups": describe(path),
    }


def reseal(table: pa.Table, rows: pa.Array | pa.ChunkedArray, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """New salts and digests for the rows where ``rows`` is true (their content changed);
    every other row keeps its salt and digest, so verify can prove it untouched. ``con``: a
    connection to compute them on (default: a new one)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from . import engine
    from .schema import event_schema

    if table.num_rows == 0:
        return table
    rows = pc.fill_null(rows, False)
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    n = pc.sum(rows.cast(pa.int64())).as_py() or 0
    if n == 0:
        return table
    # Only the changed rows are digested (the others keep theirs), and their new values are put
    # in place of the old, in order.
    fresh = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(os.urandom(16 * n))]).cast(
        pa.binary()
    )
    changed = table.filter(rows).set_column(table.schema.get_field_index("salt"), "salt", fresh)  # noqa: F841
    con = con or engine.connect()
    recomputed = con.sql(f"SELECT {digest_sql()} AS digest FROM changed").to_arrow_table().column("digest")
    salt = pc.replace_with_mask(table.column("salt").combine_chunks(), rows, fresh)
    digest = pc.replace_with_mask(table.column("digest").combine_chunks().cast(pa.binary()), rows,
                                  recomputed.combine_chunks().cast(pa.binary()))  # fmt: skip
    table = table.set_column(table.schema.get_field_index("salt"), "salt", salt)
    return table.set_column(table.schema.get_field_index("digest"), "digest", digest).cast(event_schema())


def write_segment(store: Store, table: pa.Table) -> dict[str, Any] | None:
    """Write events (event schema, offset order, salts and digests set) as one new segment file;
    returns its commit entry, or None for no rows."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if table.num_rows == 0:
        return None
    first, last = table.column("offset")[0].as_py(), table.column("offset")[-1].as_py()
    path = store.new_file("segment", f"{first:020d}")
    pq.write_table(table, _partial(path), row_group_size=ROW_GROUP_ROWS, **write_parquet_options(table.schema))
    os.replace(_partial(path), path)
    mm = pc.min_max(table.column("ts"))
    return segment_entry(
        store, path, first, last, table.num_rows, digests_hash(table.column("digest")).hexdigest(),
        mm["min"].as_py(), mm["max"].as_py(),
    )  # fmt: skip
