"""Integrity: salted per-event digests, segment digests, the commit chain, and `verify`.

Event digest = SHA-256 of the UTF-8 text ``hex(salt)`` followed by, for every column of the
input schema in order (struct members in order), ``|`` and either ``len:text`` (len in characters;
integers in decimal, timestamps as epoch microseconds, booleans as true/false) or ``-`` for NULL.
A segment's digest is SHA-256 of its event digests (32 bytes each) concatenated in offset order.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .engine import sql_string
from .errors import counted, disk_trouble, interrupted
from .keyindex import describe
from .store import HEAD_MARK, State, Store, canonical_json, chain_break, commit_hash, file_sha256, file_status

if TYPE_CHECKING:
    import pyarrow as pa


def _leaf_columns() -> list[tuple[str, Any]]:
    import pyarrow as pa

    from .schema import input_schema

    leaves: list[tuple[str, Any]] = []
    for f in input_schema():
        if pa.types.is_struct(f.type):
            leaves += [(f'"{f.name}"."{c.name}"', c.type) for c in f.type]
        else:
            leaves.append((f'"{f.name}"', f.type))
    return leaves


def digest_sql(null_columns: Collection[str] = (), full_columns: Collection[str] = ()) -> str:
    """The SQL expression (over a table with the event columns) that gives each event's digest.

    Leaf columns are named ``name`` or ``struct.member``. ``null_columns`` are known to be NULL
    in every row of the table the expression runs on, ``full_columns`` in none: the expression
    skips the checks it does not need (the digest is the same).
    """
    import pyarrow as pa

    # One flat concat() per event: concat skips NULL arguments, so a NULL value leaves its
    # length out and gets '-' in place of ':'. Nested or chained concatenation would build every
    # intermediate string.
    parts: list[str] = []
    literal = ""
    for col, typ in _leaf_columns():
        name = col.replace('"', "")
        if name in null_columns:
            literal += "|-"
            continue
        text = f"epoch_us({col})::VARCHAR" if pa.types.is_timestamp(typ) else f"{col}::VARCHAR"
        parts += [sql_string(literal + "|"), f"length({text})"]
        parts += ["':'" if name in full_columns else f"if({col} IS NULL, '-', ':')", text]
        literal = ""
    if literal:
        parts.append(sql_string(literal))
    # (the salt's hex as concat's first argument, not `hex(salt) || concat(...)`: the same text,
    # built once instead of copied again)
    return "unhex(sha256(concat(hex(salt), " + ", ".join(parts) + ")))"


def digests_hash(digests: pa.Array | pa.ChunkedArray, h: Any | None = None) -> Any:
    """Feed event digests (a binary column) into a SHA-256, in order; returns the hash object."""
    import pyarrow as pa

    h = h or hashlib.sha256()
    chunks = digests.chunks if isinstance(digests, pa.ChunkedArray) else [digests]
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if chunk.null_count:
            raise ValueError("an event has no digest")
        chunk = chunk.cast(pa.binary())
        offsets = chunk.buffers()[1]
        import numpy as np

        o = np.frombuffer(offsets, dtype=np.int32)[chunk.offset : chunk.offset + len(chunk) + 1]
        h.update(memoryview(chunk.buffers()[2])[o[0] : o[-1]])
    return h


@dataclass
class Problem:
    """One integrity problem: where, and what."""

    where: str
    what: str
    offset: int | None = None


@dataclass
class VerifyReport:
    """What verify checked and found."""

    commits: int = 0
    segments: int = 0
    events: int = 0
    problems: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    writer_at_work: str | None = None  # who holds the writer lock: the leftovers may be its files

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(path: str, progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Recompute every digest and the commit chain; explain every offset gap by a commit.

    Stops at nothing: lists every problem found, the first one first. Verify takes no lock: where
    it found problems and a commit landed meanwhile (a purge or compaction replaces segments), it
    runs again on the new state, as every read does.
    """
    from .store import READ_ATTEMPTS

    store = Store.open(path)
    for attempt in range(1, READ_ATTEMPTS + 1):
        commits = len(store.commit_paths())
        report = _verify_once(store, progress)
        if report.ok or attempt == READ_ATTEMPTS or len(store.commit_paths()) == commits:
            return report
    raise AssertionError("unreachable")


def _verify_once(store: Store, progress: Callable[[int, int], None] | None) -> VerifyReport:
    from . import engine
    from .store import fold

    report = VerifyReport()
    commits = []
    prev = None
    untrusted = False  # a commit whose content fails its hash: nothing folded from the log is sure
    commit_paths = store.commit_paths()
    for i, p in enumerate(commit_paths):
        try:
            raw = p.read_bytes()
        except OSError as e:  # a directory, a dangling link (a denied permission is trouble, not a finding)
            if (trouble := disk_trouble(e)) is not None:
                raise trouble from None
            report.problems.append(Problem(f"_log/{p.name}", f"commit file cannot be read ({e.strerror or e})"))
            return report
        try:
            body = json.loads(raw)
        except ValueError as e:
            report.problems.append(Problem(f"_log/{p.name}", f"not valid JSON ({e})"))
            return report
        if not isinstance(body, dict):
            report.problems.append(Problem(f"_log/{p.name}", "not a commit: its JSON is not an object"))
            return report
        broken = chain_break(int(commit_paths[i - 1].stem) + 1 if i else 0, p.name, body, prev)
        if broken and "prev" not in broken:  # (a broken prev is said below, once)
            report.problems.append(Problem(f"_log/{p.name}", broken))
        if body.get("hash") != commit_hash(body):
            report.problems.append(Problem(f"_log/{p.name}", "commit content does not match its hash (edited?)"))
            untrusted = True
        elif raw != (canonical_json(body) + "\n").encode():
            report.problems.append(Problem(f"_log/{p.name}", "commit file bytes were changed"))
        if body.get("prev") != prev:
            report.problems.append(
                Problem(f"_log/{p.name}", "commit chain broken: prev does not name the commit before")
            )
        prev = body.get("hash")
        commits.append(body)
    report.commits = len(commits)
    lost = store.lost_head(int(commit_paths[-1].stem) if commit_paths else -1)
    if lost:  # the files only that commit names look like leftovers: they are not safe to delete
        report.problems.append(Problem(f"_log/{HEAD_MARK}", lost + " (files no commit names may be its: writers "
                                       "refuse the store until the commit file is restored, or the mark removed)"))
    if untrusted:
        return report  # the commit log cannot be trusted: nothing folded from it would be either
    state = fold(commits)

    # every file a commit names: present and byte-identical
    index_mismatches: list[dict[str, Any]] = []  # key index of the commit entry unlike the file's footer
    for entry in sorted(state.files.values(), key=lambda e: e["path"]):
        f = store.path / entry["path"]
        status = file_status(f)  # (a folder denying the look is trouble, not a missing file)
        try:
            digest = file_sha256(f) if status and stat.S_ISREG(status.st_mode) else None
        except FileNotFoundError:  # removed since (by a purge or compaction that committed meanwhile)
            digest = None
        if digest is None:
            what = "is not a file" if status else "is missing"
            report.problems.append(Problem(entry["path"], f"file named by a commit {what}", entry.get("min_offset")))
        elif digest != entry["sha256"]:
            report.problems.append(
                Problem(entry["path"], "file content changed since its commit", entry.get("min_offset"))
            )
        elif "row_groups" in entry and describe(f) != entry["row_groups"]:
            index_mismatches.append(entry)

    # every event digest, every segment digest (and those of the segments a receipt vouches for)
    segments = state.segments
    vouched = _vouched_segments(commits, state)
    loaded: dict[str, pa.Table] = {}  # (offset, digest) of the segments a receipt vouches for
    report.segments = len(segments)
    con = engine.connect()

    expected_digest = digest_sql()
    total = sum(s["rows"] for s in segments)
    done = 0
    last_offset = -1
    explained = _Explained(state.gaps)
    for seg in segments:
        f = store.path / seg["path"]
        if file_status(f) is None:
            continue
        try:
            wrong = _wrong_columns(f)
            if wrong:
                report.problems.append(Problem(seg["path"], f"not a segment as written: {wrong}", seg["min_offset"]))
                continue
            seg_events = con.sql(
                f"""SELECT "offset", digest, {expected_digest} AS recomputed
                    FROM read_parquet({sql_string(str(f))}) ORDER BY "offset" """
            ).to_arrow_table()
        except Exception as e:  # a damaged Parquet file: any reader error (but Ctrl-C) is the finding
            if interrupted(e):
                raise KeyboardInterrupt from e
            report.problems.append(
                Problem(seg["path"], f"cannot be read ({str(e).splitlines()[0]})", seg["min_offset"])
            )
            continue
        bad = con.execute('SELECT min("offset") FROM seg_events WHERE digest IS DISTINCT FROM recomputed').fetchall()[0]
        if bad and bad[0] is not None:
            report.problems.append(Problem(seg["path"], "event digest does not match its content", bad[0]))
        digests = seg_events.column("digest")
        if digests.null_count:
            (at,) = con.execute('SELECT min("offset") FROM seg_events WHERE digest IS NULL').fetchall()[0]
            report.problems.append(Problem(seg["path"], f"{counted(digests.null_count, 'event')} {'has' if digests.null_count == 1 else 'have'} no digest", at))
        if digests.null_count or digests_hash(digests).hexdigest() != seg["digest"]:
            report.problems.append(Problem(seg["path"], "segment digest does not match its events", seg["min_offset"]))
        offsets = seg_events.column("offset")
        if offsets.null_count:  # (ordered last) the offset checks below are of the others
            report.problems.append(Problem(seg["path"], f"{counted(offsets.null_count, 'event')} {'has' if offsets.null_count == 1 else 'have'} no offset"))
            offsets = offsets.drop_null()
        if seg["path"] in vouched:
            loaded[seg["path"]] = seg_events.select(["offset", "digest"])
        if seg_events.num_rows != seg["rows"]:
            report.problems.append(
                Problem(
                    seg["path"], f"holds {counted(seg_events.num_rows, 'event')}, commit says {seg['rows']}", seg["min_offset"]
                )
            )
        if len(offsets):
            first, last = offsets[0].as_py(), offsets[-1].as_py()
            if (first, last) != (seg["min_offset"], seg["max_offset"]):
                report.problems.append(Problem(seg["path"], "offset range differs from its commit", first))
            if first <= last_offset:
                report.problems.append(Problem(seg["path"], "offsets overlap the previous segment", first))
            gaps = con.sql(
                'SELECT prev + 1, "offset" - 1 FROM (SELECT "offset", lag("offset") OVER (ORDER BY "offset") AS prev '
                'FROM seg_events) WHERE "offset" <= prev OR "offset" > prev + 1'
            ).fetchall()
            holes = [(last_offset + 1, first - 1)] if first > last_offset + 1 else []
            for lo, hi in gaps + holes:
                if hi < lo:
                    report.problems.append(Problem(seg["path"], "offsets are not strictly increasing", lo))
                elif not explained(lo, hi):
                    report.problems.append(
                        Problem(seg["path"], f"offsets {lo}..{hi} are missing and no commit explains it", lo)
                    )
            last_offset = last
        done += seg["rows"]
        if progress:
            progress(done, total)
        report.events += seg_events.num_rows
    if state.next_offset > last_offset + 1 and not explained(last_offset + 1, state.next_offset - 1):
        report.problems.append(
            Problem(
                "segments",
                f"offsets {last_offset + 1}..{state.next_offset - 1} are missing and no commit explains it",
                last_offset + 1,
            )
        )
    for i, c in enumerate(commits):
        for what, offset in _receipt_problems(c, loaded):
            report.problems.append(Problem(f"_log/{commit_paths[i].name}", what, offset))
    # A key index unlike its file makes key lookups miss events. Where the file's events are
    # wrong too, that is the finding; the index is reported for a file otherwise intact.
    found = {p.where for p in report.problems}
    for entry in index_mismatches:
        if entry["path"] not in found:
            report.problems.append(
                Problem(entry["path"], "key index in the commit does not match the file", entry.get("min_offset"))
            )
    report.leftovers = [] if lost else [store.rel(p) for p in store.leftovers(state)]
    report.writer_at_work = store.writer_at_work() if report.leftovers else None
    return report


def _wrong_columns(path: Any) -> str | None:
    """What makes a file's offset or digest column unlike a segment's (integers, and bytes): the
    other checks compare them as such. None where both are as written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def binary(t: pa.DataType) -> bool:
        return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t))

    schema = pq.read_schema(path)
    wrong = []
    for name, fits in (("offset", pa.types.is_integer), ("digest", binary)):
        i = schema.get_field_index(name)
        if i < 0:
            wrong.append(f"it has no {name} column")
        elif not fits(schema.field(i).type):
            wrong.append(f"its {name} column is {schema.field(i).type}")
    return ", ".join(wrong) or None


def _receipts(commit: dict[str, Any]) -> list[dict[str, Any]]:
    """The segments a purge's or redaction's receipt accounts for (none for other commits)."""
    if commit.get("operation") not in ("purge", "redact"):
        return []
    return list(((commit.get("info") or {}).get("receipt") or {}).get("segments") or [])


def _vouched_segments(commits: list[dict[str, Any]], state: State) -> set[str]:
    """The live segments that a receipt says a purge or redaction wrote."""
    return {item["new"]["path"] for c in commits for item in _receipts(c)
            if item.get("new") and item["new"].get("path") in state.files}  # fmt: skip


def _receipt_problems(commit: dict[str, Any], loaded: dict[str, pa.Table]) -> list[tuple[str, int | None]]:
    """Where a receipt does not account for what its commit did: each old segment's digest must be
    the hash of its surviving events' digests and the receipt's removed (or, for a redaction,
    replaced) digests, in offset order; the commit's gaps must be the receipt's offsets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out: list[tuple[str, int | None]] = []
    receipt = (commit.get("info") or {}).get("receipt") or {}
    if commit.get("operation") == "purge" and receipt.get("offsets") is not None and receipt["offsets"] != commit.get("gaps"):
        out.append(("purge receipt's offsets are not the offsets its commit removed", None))
    for item in _receipts(commit):
        old, new, hexes = item.get("old") or {}, item.get("new"), item.get("digests")
        if hexes is None:  # a whole segment dropped unread (the head of the log): its rows are the account
            continue
        listed = [o for a, b in item.get("offsets") or [] for o in range(a, b + 1)]
        where = old.get("min_offset")
        if len(listed) != len(hexes):
            out.append((f"receipt lists {counted(len(listed), 'offset')} and {counted(len(hexes), 'digest')} for {old.get('path')}", where))
            continue
        theirs = pa.table({"offset": pa.array(listed, pa.int64()),
                           "digest": pa.array([bytes.fromhex(h) for h in hexes], pa.binary())})  # fmt: skip
        purge = commit["operation"] == "purge"
        rows = (new or {}).get("rows", 0)
        if old.get("rows") != (rows + len(listed) if purge else rows):
            out.append((f"receipt does not account for the events of {old.get('path')}: {old.get('rows')} before, "
                        f"{rows} after, {len(listed)} {'removed' if purge else 'redacted'}", where))  # fmt: skip
            continue
        if new is not None and new.get("path") not in loaded:
            continue  # rewritten again since: the next receipt vouches for it
        kept = loaded[new["path"]].cast(theirs.schema) if new is not None else theirs.slice(0, 0)
        if purge:  # the survivors and the removed, in offset order
            merged = pa.concat_tables([kept, theirs]).sort_by("offset").column("digest")
        else:  # the survivors, the redacted ones as they were
            at = pc.index_in(kept.column("offset"), value_set=theirs.column("offset"))
            merged = pc.if_else(pc.is_valid(at), pc.take(theirs.column("digest"), at), kept.column("digest"))
        if merged.null_count or digests_hash(merged).hexdigest() != old.get("digest"):
            out.append((f"receipt does not account for what changed in {old.get('path')}: the surviving events with "
                        "the receipted ones do not hash to its digest", where))  # fmt: skip
    return out


class _Explained:
    """The offsets commits declared removed or skipped, merged once into disjoint ranges, so each
    gap a segment shows is looked up by bisection (a compacted log has one gap per removed run:
    tens of thousands of them)."""

    def __init__(self, gaps: list[list[int]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for a, b in sorted(gaps):
            if self.ends and a <= self.ends[-1] + 1:
                self.ends[-1] = max(self.ends[-1], b)
            else:
                self.starts.append(a)
                self.ends.append(b)

    def __call__(self, lo: int, hi: int) -> bool:
        """Is every offset in lo..hi inside a declared range?"""
        i = bisect.bisect_right(self.starts, lo) - 1
        return i >= 0 and self.ends[i] >= hi
