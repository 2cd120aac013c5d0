"""Purge and redact: administrative deletion that leaves a receipt and nothing else behind.

``purge`` removes whole events (by key, entity, a SQL predicate over the ``events`` view, or the
head of the log before an offset or a time); ``redact`` replaces named fields of ``data``,
``before`` and ``meta`` with ``"[REDACTED]"`` and keeps the events. Both rewrite only the segments
that hold matching events, in one commit that removes the old segment entries, adds the new ones,
declares the removed offsets as gaps, drops the snapshots that may hold the data and rewrites the
quarantine files that mention it; then every file no commit names is deleted. Surviving events are
copied with their salt and digest, so ``verify`` proves they did not change; redacted events get a
new salt and digest.

The commit's ``info["receipt"]`` says what was done without holding the data: the predicate as a
salted digest (a key is never written; a ``--where`` text only with ``record_predicate``), the
offsets, the removed (or replaced) events' digests, the segments replaced with old and new digests.

Raw JSON-lines and CSV files can be purged or redacted without a store: ``purge_file`` and
``redact_file`` stream them, evaluate the same predicate over the events the field mapping gives,
and write the surviving records byte for byte.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import itertools
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from .engine import json_path, sql_string
from .errors import InputError, LogtoolError, UsageError, engine_trouble, interrupted, undecodable_parquet
from .formats.base import (
    BOM,
    SURROGATE,
    BadRecord,
    Mapping,
    Source,
    check_fields_seen,
    dumps_exact,
    fields_seen,
    file_entity,
    given_key,
    key_text,
    loads_exact,
    normalize_op,
    parse_ts,
    undecoded,
    without_surrogates,
)
from .formats.csv import delimiter
from .formats.mongodb import path_parts
from .formats.writers import output_file
from .store import (
    State,
    Store,
    actor,
    damaged_store,
    file_sha256,
    fsync_path,
    names_damage,
    now_iso,
    read_text_not_utf8,
)

if TYPE_CHECKING:
    import duckdb
    import numpy as np
    import pyarrow as pa

MARKER = "[REDACTED]"
RAW_FORMATS = ("jsonl", "csv")
Progress = Callable[[int, int | None], None]
Pair = tuple[str | None, str]  # (entity or None for any entity, key)
Span = tuple[int | None, int | None]  # (after, up to and including) offsets; None: unbounded


# --------------------------------------------------------------------------- results


@dataclass
class PurgeResult:
    """What a purge or redact did to a store (or, with ``dry_run``, would do)."""

    store: str
    operation: str  # purge | redact
    dry_run: bool
    events: int = 0  # events removed (purge) or changed (redact)
    matched: int = 0  # events the predicate selected (redact: some may hold none of the fields)
    keys: int | None = None  # distinct (entity, key) among them; None for a head drop
    offsets: list[list[int]] = field(default_factory=list)  # compact [first, last] ranges
    segments_rewritten: list[str] = field(default_factory=list)
    segments_removed: list[str] = field(default_factory=list)  # every event went: no replacement
    segments_added: list[str] = field(default_factory=list)
    snapshots_removed: list[str] = field(default_factory=list)
    # snapshots holding state whose events are gone (a head drop's): rewritten without the data
    snapshots_rewritten: list[str] = field(default_factory=list)
    snapshot_taken: str | None = None  # head drop: the snapshot stored first (on a dry run: one there already)
    snapshot_at: int | None = None  # head drop: the offset of that snapshot (on a dry run: where it would be)
    quarantine_records: int = 0  # quarantined records removed (purge) or redacted (redact)
    quarantine_files: list[str] = field(default_factory=list)
    leftovers_removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what a person should know (a cut moved down)
    commit: int | None = None
    # the salt of the receipt's key (or --where) digest, kept nowhere in the store: with it, and
    # only with it, the receipt shows which key was purged (`receipt_matches`)
    proof: str | None = None
    receipt: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        """Would (or did) anything in the store change?"""
        return bool(self.events or self.quarantine_records or self.snapshots_removed or self.snapshots_rewritten)

    def summary(self) -> dict[str, Any]:
        """The result without the receipt, for printing."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "receipt"}


@dataclass
class FileResult:
    """What a purge or redact of a raw log file did."""

    file: str
    output: str
    format: str
    operation: str
    records: int = 0  # records read (good and unreadable)
    matched: int = 0  # records the selection matched (redact: some may hold none of the fields)
    removed: int = 0
    redacted: int = 0
    unreadable: int = 0  # records the reader could not map (judged on their raw text)
    unreadable_kept: int = 0  # unreadable records that mention the key but could not be redacted
    first_unreadable: str | None = None  # FILE:LINE: why, of the first record the reader could not map
    first_unreadable_kept: int | None = None  # the line of the first of those kept as they are
    entities: set[str] = field(default_factory=set)  # the entities its records were read as

    def summary(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "entities"}


def format_ranges(ranges: list[list[int]]) -> str:
    """``[[1, 3], [7, 7]]`` as ``1-3, 7``."""
    return ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in ranges)


# --------------------------------------------------------------------------- the predicate


def check_where(where: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
    """Refuse a ``--where`` that is not one boolean expression over the ``events`` view.

    A second statement, DDL, COPY, ATTACH, a set operation or clause smuggled after a closing
    parenthesis, or a table function (``read_csv``, ``read_text``, ...) is refused before anything
    runs. With ``con`` (a sandboxed connection holding the ``events`` view) the expression is also
    bound, without reading any row, so unknown columns and type errors are found early.
    """
    import duckdb

    from . import engine
    from .query import COLUMNS_HINT, check_select

    if not where.strip():
        raise UsageError("--where is empty", "give a boolean SQL expression over events, e.g. \"key = '42'\"")
    wrapped = _wrap(where)
    check_select(wrapped, "--where")
    probe = engine.connect()
    ast = json.loads(probe.execute("SELECT json_serialize_sql($1)", [wrapped]).fetchall()[0][0])
    reference = json.loads(probe.execute("SELECT json_serialize_sql($1)", [_wrap("TRUE")]).fetchall()[0][0])
    if ast.get("error") or len(ast.get("statements", [])) != 1:
        raise UsageError("--where does not parse as one expression", "give a boolean SQL expression over events")
    node = ast["statements"][0]["node"]
    ref = reference["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE" or _shape(node) != _shape(ref):
        raise UsageError(
            "--where must be one boolean expression over events",
            "no closing parenthesis followed by UNION, GROUP BY, LIMIT or another clause",
        )
    _self_contained(where)
    bad = _table_functions(node.get("where_clause"))
    if bad:
        raise UsageError(
            f"--where may not call table functions ({', '.join(sorted(bad))})",
            "the predicate reads the events view only; subqueries over `events` are fine",
        )
    if con is not None:
        try:
            con.execute(f"SELECT 1 FROM events WHERE {_paren(where)} LIMIT 0").fetchall()
        except duckdb.Error as e:
            raise UsageError(f"--where does not apply to events: {_first_line(e)}", COLUMNS_HINT) from None


def _self_contained(where: str) -> None:
    """Refuse a ``--where`` that closes a parenthesis it did not open: set beside the other
    selectors, ``x) OR (y`` would turn their AND into an OR."""
    import duckdb

    tokens = duckdb.tokenize(where)
    ends = [start for start, _ in tokens[1:]] + [len(where)]
    depth = 0
    for (start, kind), end in zip(tokens, ends, strict=True):
        if kind != duckdb.token_type.operator:
            continue  # a parenthesis inside a string, a quoted name or a comment is not one
        for c in where[start:end]:
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth < 0:
                raise UsageError(
                    "--where closes a parenthesis it does not open",
                    "give one boolean expression; it is ANDed with --key and --entity as a whole",
                )


def _paren(where: str) -> str:
    # newlines so a trailing `--` comment cannot swallow the closing parenthesis
    return f"(\n{where}\n)"


def _wrap(where: str) -> str:
    return f"SELECT count(*) FROM events WHERE {_paren(where)}"


def _shape(node: Any) -> Any:
    """The parse tree without the WHERE clause and source locations (which differ by text)."""
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items() if k != "where_clause" and not k.startswith("query_location")}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return node


def _table_functions(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            found.add(str(fn.get("function_name", "?")))
        for v in node.values():
            found |= _table_functions(v)
    elif isinstance(node, list):
        for v in node:
            found |= _table_functions(v)
    return found


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


@dataclass
class Selection:
    """Which events: a key (with its row's earlier identities), an entity, a predicate; ANDed."""

    key: str | None = None
    entity: str | None = None
    where: str | None = None
    identities: set[Pair] = field(default_factory=set)  # resolved from key
    # an earlier identity is the row's only from the end of the row before it there up to the event
    # that moved it away: an earlier or a later row at that key is another row (offset bounds)
    spans: dict[Pair, list[Span]] = field(default_factory=dict)

    @property
    def keys(self) -> set[str]:
        return {k for _e, k in self.identities}

    def condition(self, key_alt: str | None = None) -> str:
        """SQL over the event columns; ``key_alt`` names a boolean column that also satisfies the key."""
        parts = []
        if self.key is not None:
            by_entity: dict[str | None, list[str]] = {}
            for ent, k in sorted(self.identities, key=lambda p: (p[0] or "", p[1])):
                by_entity.setdefault(ent, []).append(k)
            alts = []
            for ent, keys in by_entity.items():
                open_keys = [k for k in keys if (ent, k) not in self.spans]
                listing = ", ".join(sql_string(k) for k in open_keys)
                matches = [f"(key IN ({listing}) OR prev_key IN ({listing}))"] if open_keys else []
                matches += [f"((key = {sql_string(k)} OR prev_key = {sql_string(k)}){_span_condition(span)})"
                            for k in keys if (ent, k) in self.spans for span in self.spans[ent, k]]  # fmt: skip
                match = "(" + " OR ".join(matches) + ")"
                alts.append(match if ent is None else f"(entity = {sql_string(ent)} AND {match})")
            if key_alt:
                alts.append(key_alt)
            parts.append("(" + " OR ".join(alts) + ")")
        if self.entity is not None:
            parts.append(f"entity = {sql_string(self.entity)}")
        if self.where is not None:
            parts.append(_paren(self.where))
        return " AND ".join(parts) if parts else "TRUE"


Stint = tuple[Pair, Span]  # a row's time at one key: (entity, key) and its offsets there


def resolve_identities(
    key: str, entity: str | None, moves: Callable[[Stint], list[Stint]]
) -> tuple[set[Pair], dict[Pair, list[Span]]]:
    """A key and every key its row had before, transitively (a key change keeps the row), with the
    spans of offsets over which each was the row's: after the row before it there ended (moved
    away, was deleted or truncated), up to the row's own move away from it. A row that moves back
    to a key it held has a span there for each time.

    ``moves(stint)`` gives, for each event within the stint that moved the row to its key, the
    stint the row had at its previous key. At an earlier key, a row that was there before, or
    moved into it later, is another row; the key asked for is matched whole, every event at it.
    """
    start: Stint = ((entity, key), (None, None))
    seen = {start}
    frontier = [start]
    while frontier:
        frontier = [earlier for stint in frontier for earlier in moves(stint) if earlier not in seen]
        seen |= set(frontier)
    spans: dict[Pair, list[Span]] = {}
    for pair, span in sorted(seen - {start}, key=lambda s: (s[0][0] or "", s[0][1], s[1][1] or 0)):
        if pair != start[0]:  # the key asked for is matched whole, whenever the row held it
            spans.setdefault(pair, []).append(span)
    return {pair for pair, _ in seen}, spans


def _span_condition(span: Span) -> str:
    since, until = span
    return (f' AND "offset" > {since}' if since is not None else "") + (f' AND "offset" <= {until}' if until is not None else "")


def _ends_row_at(key: str) -> str:
    """SQL over an event of the row's entity: does it end the row at ``key`` (an SQL expression)?
    It moves the row away, deletes it (or carries no data), or truncates the entity."""
    return f"((prev_key = {key} AND key IS DISTINCT FROM {key}) OR (key = {key} AND (op = 'delete' OR data IS NULL)) OR op = 'truncate')"


def _rows_whole(con: duckdb.DuckDBPyConnection, cond: str) -> bool:
    """Does a purge by ``cond`` (no ``--where``) take its rows whole, none moved on to a key it
    does not follow? A purged event that moved a row to a key puts the row there up to the event
    that ends it there (from that very event, for a move that deletes it); a kept event at that
    key, or moving it away, within that stint is the rest of the row. A later event at the key is
    another row's, and so is an earlier one."""
    kept = f"NOT coalesce({cond}, FALSE)"
    return not con.execute(
        f"""WITH arrived AS (
              SELECT entity AS stint_entity, key AS stint_key, "offset" AS stint_from FROM events
              WHERE {cond} AND prev_key IS NOT NULL AND prev_key <> key
                -- only where an event is kept at all (an entity's purge keeps none of its events)
                AND (entity, key) IN (SELECT (entity, key) FROM events WHERE {kept}
                                      UNION ALL SELECT (entity, prev_key) FROM events WHERE {kept})),
            stints AS (
              SELECT *, (SELECT min("offset") FROM events WHERE entity = stint_entity AND "offset" >= stint_from
                         AND {_ends_row_at("stint_key")}) AS stint_to
              FROM arrived)
            SELECT 1 FROM stints JOIN events ON entity = stint_entity AND (key = stint_key OR prev_key = stint_key)
                AND "offset" > stint_from AND (stint_to IS NULL OR "offset" <= stint_to)
            WHERE {kept} LIMIT 1"""
    ).fetchall()


def _store_moves(con: duckdb.DuckDBPyConnection) -> Callable[[Stint], list[Stint]]:
    def moves(stint: Stint) -> list[Stint]:
        (ent, k), span = stint
        where = f"key = {sql_string(k)}" + _span_condition(span) + (f" AND entity = {sql_string(ent)}" if ent is not None else "")
        out: list[Stint] = []
        for e, pk, at in con.execute(
            f"""SELECT entity, prev_key, "offset" FROM events
                WHERE prev_key IS NOT NULL AND prev_key <> key AND {where} ORDER BY "offset" """
        ).fetchall():
            # the row before it at the earlier key ended there before: moved away, deleted, truncated
            (since,) = con.execute(
                f"""SELECT max("offset") FROM events WHERE entity = $1 AND "offset" < {int(at)} AND {_ends_row_at("$2")}""",
                [e, pk],
            ).fetchall()[0]
            out.append(((e, pk), (since, at)))
        return out

    return moves


def _select(con: duckdb.DuckDBPyConnection, key: str | None, entity: str | None, where: str | None) -> Selection:
    if key is not None and not key:
        raise UsageError("--key is empty")
    if entity is not None and not entity:
        raise UsageError("--entity is empty")
    if where is not None:
        check_where(where, con)
    sel = Selection(None if key is None else given_key(key), entity, where)
    if sel.key is not None:
        sel.identities, sel.spans = resolve_identities(sel.key, entity, _store_moves(con))
    return sel


# --------------------------------------------------------------------------- redaction


def redact_doc(doc: Any, specs: Iterable[str], allow: Callable[[str], bool] | None = None) -> bool:
    """Replace the named members of a JSON object (top-level names, or dotted paths into nested
    objects) with the marker, in place; ``allow`` filters the top-level names. A member that is
    absent or null is left as it is (null holds nothing). Returns whether anything changed."""
    if not isinstance(doc, dict):
        return False
    changed = False
    for spec in specs:
        changed |= _redact_path(doc, spec, allow)
        if isinstance(doc.get("$set"), dict) and set(doc) <= {"$set", "$unset", "$truncate", "$paths"}:
            changed |= _redact_patch(doc, spec, allow)
    return changed


def _redact_patch(patch: dict[str, Any], spec: str, allow: Callable[[str], bool] | None) -> bool:
    """A path patch's values (MongoDB's ``$set``: dotted path -> value) that hold the field: a path
    at or inside it is redacted whole; a path above it, inside its value. A path's parts are its
    ``disambiguatedPaths`` entry where it has one (a field name holding a dot), else its dots."""
    changed = False
    wanted = spec.split(".")
    paths = patch["$set"]
    for path, value in paths.items():
        parts = [str(p) for p in path_parts(patch, path)]
        if allow is not None and not allow(parts[0]):
            continue
        if path == spec or parts[: len(wanted)] == wanted:
            if value is not None and value != MARKER:
                paths[path] = MARKER
                changed = True
        elif wanted[: len(parts)] == parts and isinstance(value, dict):
            changed |= _redact_path(value, ".".join(wanted[len(parts) :]), None)
    return changed


def _redact_path(doc: dict[str, Any], spec: str, allow: Callable[[str], bool] | None) -> bool:
    """Blank every member ``spec`` names: the member of that very name, and each dotted path it
    reads as (``a.b`` is the member "a.b" and b inside a, both where a document has both)."""
    changed = False
    if spec in doc and (allow is None or allow(spec)) and doc[spec] is not None and doc[spec] != MARKER:
        doc[spec] = MARKER
        changed = True
    start = 0
    while (dot := spec.find(".", start)) > 0:
        head, rest = spec[:dot], spec[dot + 1 :]
        if head in doc and isinstance(doc[head], dict) and (allow is None or allow(head)):
            changed |= _redact_path(doc[head], rest, None)
        start = dot + 1
    return changed


def _redact_text(text: str | None, specs: tuple[str, ...]) -> str | None:
    """The JSON text with the fields redacted, or None if it does not change. Numbers stay exact."""
    if text is None:
        return None
    try:
        doc = loads_exact(text)
    except ValueError:
        return None
    return dumps_exact(doc) if redact_doc(doc, specs) else None


def _check_fields(fields_: Iterable[str]) -> tuple[str, ...]:
    out = tuple(dict.fromkeys(f for f in fields_))
    if not out:
        raise UsageError("name at least one field to redact", "e.g. --field email --field phone")
    if any(not f.strip() or f.startswith(".") or f.endswith(".") for f in out):
        raise UsageError(f"bad field name in {', '.join(repr(f) for f in out)}", "a top-level name or a dotted path")
    return out


# --------------------------------------------------------------------------- store: plan


@dataclass
class _SegPlan:
    entry: dict[str, Any]
    offsets: np.ndarray | None  # matched offsets in this segment (None: the whole segment, unread)
    digests: list[bytes] | None  # their digests (purge) or previous digests (redact), offset order
    count: int

    @property
    def whole(self) -> bool:
        return bool(self.count == self.entry["rows"])


def _segment_index(state: State, offsets: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    mins = np.array([s["min_offset"] for s in state.segments], dtype=np.int64)
    return np.searchsorted(mins, offsets, side="right") - 1


def _group(state: State, matched: pa.Table) -> list[_SegPlan]:
    import numpy as np

    if matched.num_rows == 0:
        return []
    offsets = matched.column("offset").to_numpy()
    digests = matched.column("digest").to_pylist()
    idx = _segment_index(state, offsets)
    plans = []
    for i in np.unique(idx):
        where = np.flatnonzero(idx == i)
        plans.append(_SegPlan(state.segments[int(i)], offsets[where], [digests[j] for j in where], len(where)))
    return plans


def offset_ranges(offsets: np.ndarray) -> list[list[int]]:
    """Ascending offsets as ranges [first, last] of consecutive ones."""
    import numpy as np

    if len(offsets) == 0:
        return []
    breaks = np.flatnonzero(np.diff(offsets) != 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [len(offsets) - 1]])
    return [[int(offsets[a]), int(offsets[b])] for a, b in zip(starts, ends, strict=True)]


def _merge(ranges: list[list[int]]) -> list[list[int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def _plan_ranges(plans: list[_SegPlan]) -> list[list[int]]:
    parts: list[list[int]] = []
    for p in plans:
        if p.offsets is None:
            parts.append([p.entry["min_offset"], p.entry["max_offset"]])
        else:
            parts += offset_ranges(p.offsets)
    return _merge(parts)


# --------------------------------------------------------------------------- store: entry points


@names_damage
def purge(
    store: str | os.PathLike[str] | Store,
    *,
    key: str | None = None,
    entity: str | None = None,
    where: str | None = None,
    before_offset: int | None = None,
    before_time: str | None = None,
    reason: str | None = None,
    record_predicate: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    proof: str | None = None,
    on_proof: Callable[[str], None] | None = None,
) -> PurgeResult:
    """Remove events from a store, as if they had never been written, leaving a receipt.

    Select by ``key`` (with every key the row had before: a key change keeps the row),
    ``entity``, ``where`` (one boolean SQL expression over the ``events`` view); given together
    they are ANDed. Or drop the head of the log: ``before_offset`` N removes every event below N,
    ``before_time`` T every event below the first one stamped at or after T; a snapshot is stored
    there first so replay after it still works.

    Only segments holding matching events are rewritten, in one commit; snapshots that may hold
    the data and matching quarantined records go too, and every file no commit names is deleted.
    ``dry_run`` changes nothing and says what would go. ``proof`` (32 hex digits; default: drawn
    at random, in the result) salts the receipt's digest of the key or ``where``, and is kept
    nowhere in the store; ``on_proof(proof)`` is called just before the commit that writes such a
    receipt, so that no failure after it can lose the proof.
    """
    _check_proof(proof)
    st = store if isinstance(store, Store) else Store.open(store)
    head = before_offset is not None or before_time is not None
    if head:
        if key is not None or entity is not None or where is not None:
            raise UsageError(
                "--before-offset/--before-time drop the head of the log: give no --key, --entity or --where"
            )
        if before_offset is not None and before_time is not None:
            raise UsageError("give one of --before-offset and --before-time")
        return _purge_head(st, before_offset, before_time, reason, dry_run, progress)
    if key is None and entity is None and where is None:
        raise UsageError("say what to purge", "give --key, --entity, --where, --before-offset or --before-time")
    return _run(st, "purge", key, entity, where, (), reason, record_predicate, dry_run, progress, proof, on_proof)


@names_damage
def redact(
    store: str | os.PathLike[str] | Store,
    fields: Iterable[str],
    *,
    key: str | None = None,
    entity: str | None = None,
    where: str | None = None,
    reason: str | None = None,
    record_predicate: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    proof: str | None = None,
    on_proof: Callable[[str], None] | None = None,
) -> PurgeResult:
    """Replace named fields of the selected events' ``data``, ``before`` and ``meta`` with
    ``"[REDACTED]"`` and keep the events, leaving a receipt.

    ``fields`` are top-level member names or dotted paths into nested objects. Selection is as for
    :func:`purge` (``key``, ``entity``, ``where``, ANDed). Only events that hold one of the fields
    change; they get a new salt and digest, every other event keeps its own.
    """
    specs = _check_fields(fields)
    st = store if isinstance(store, Store) else Store.open(store)
    if key is None and entity is None and where is None:
        raise UsageError("say which events to redact", "give --key, --entity or --where")
    return _run(st, "redact", key, entity, where, specs, reason, record_predicate, dry_run, progress, proof, on_proof)


def _check_proof(proof: str | None) -> None:
    if proof is not None and not (isinstance(proof, str) and re.fullmatch("[0-9a-f]{32}", proof)):
        raise UsageError(f"proof {proof!r}: write 32 lower-case hex digits (16 random bytes)")


def receipt_matches(
    receipt: dict[str, Any], *, key: str | None = None, where: str | None = None, proof: str | None = None
) -> bool:
    """Does a receipt's salted predicate digest match this key (or this ``--where`` text)? The
    ``proof`` is the salt the purge printed (receipts written before it was kept apart hold theirs)."""
    _check_proof(proof)
    pred = receipt.get("predicate", {})
    salt = bytes.fromhex(proof if proof is not None else pred.get("salt", ""))
    if key is not None and pred.get("key_sha256") != hashlib.sha256(salt + given_key(key).encode()).hexdigest():
        return False
    if where is not None:
        if "where" in pred:
            return bool(pred["where"] == where)
        return bool(pred.get("where_sha256") == hashlib.sha256(salt + where.encode()).hexdigest())
    return key is not None


def _run(
    store: Store,
    operation: str,
    key: str | None,
    entity: str | None,
    where: str | None,
    specs: tuple[str, ...],
    reason: str | None,
    record_predicate: bool,
    dry_run: bool,
    progress: Progress | None,
    proof: str | None = None,
    on_proof: Callable[[str], None] | None = None,
) -> PurgeResult:
    from .query import events_connection

    _check_proof(proof)
    if where is not None:
        check_where(where)  # refused before even the lock is taken
    lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext() if dry_run else store.writer(operation)
    with lock:
        state = store.state()
        con = events_connection(store, files=store.segment_files(state))
        sel = _select(con, key, entity, where)
        if operation == "redact":
            _refuse_redacting_the_key(con, sel, specs, _ingested_mappings(store))
        result = PurgeResult(str(store.path), operation, dry_run)
        if entity is not None and not con.execute(
            f"SELECT 1 FROM events WHERE entity = {sql_string(entity)} LIMIT 1"
        ).fetchall():  # a name mistyped, say `users` for `public.users`
            known = [e for (e,) in con.execute("SELECT DISTINCT entity FROM events ORDER BY 1 LIMIT 11").fetchall()]
            result.notes.append(f"no event of the store is of entity {entity!r}; its entities: "
                                f"{', '.join(map(repr, known[:10]))}{', ...' if len(known) > 10 else ''}")  # fmt: skip
        plans, redactions = _plan_selection(con, state, sel, specs, result)
        first = min((int(p.offsets[0]) for p in plans if p.offsets is not None), default=None)
        # A snapshot built from events that are gone cannot be rebuilt: it is rewritten without the
        # data rather than removed, or the rows it alone holds would go with it. Any other is
        # removed (rewriting it by its rows would keep values only the purged events gave them).
        only = store.unrebuildable_snapshots()
        snapshots = _snapshots_holding(store, state, sel, first, only)
        reducers = [s for s in snapshots if s["path"] in only and "typed" in _snapshot_columns(store, s)]
        if operation == "purge" and where is not None:
            _refuse_orphaning_reducer_state(store, reducers)
        elif operation == "redact":
            # a reducer's states cannot be redacted: one whose matching rows hold none of the fields
            # is left as it is, and one holding them is refused
            _refuse_redacting_reducer_state(store, sel, specs, reducers)
            snapshots = [s for s in snapshots if s not in reducers]
        # (a key purge rewrites a reducer's snapshot without the key's rows: its events go whole)
        kept_snapshots = [s for s in snapshots if s["path"] in only]
        snapshots = [s for s in snapshots if s not in kept_snapshots]
        result.snapshots_rewritten = [s["path"] for s in kept_snapshots]
        quarantine = _plan_quarantine(store, state, sel, specs)
        salt = bytes.fromhex(proof) if proof is not None else secrets.token_bytes(16)
        predicate = _predicate(sel, specs, record_predicate, salt)
        params = {k: v for k, v in predicate.items() if k not in ("key_sha256", "where_sha256", "where")}
        params["by"] = [n for n, v in (("key", key), ("entity", entity), ("where", where)) if v is not None]
        if operation == "purge" and where is None:
            # rows gone whole (none moved on to a key the purge does not follow): a replay after it
            # is exactly the state as if they had never been written, and says nothing of it
            params["rows_whole"] = _rows_whole(con, sel.condition())
        rewrite = functools.partial(_rewrite_snapshot, store, sel, specs if operation == "redact" else None)
        return _execute(
            store, state, operation, plans, redactions, snapshots, quarantine, predicate, params, reason, result,
            dry_run, progress, [(s, rewrite) for s in kept_snapshots], salt, on_proof,
        )  # fmt: skip


def _ingested_mappings(store: Store) -> list[Mapping]:
    """The field mappings of the store's ingests (their key fields)."""
    return [Mapping(key_fields=tuple(c.get("params", {}).get("mapping", {}).get("key_fields") or ()))
            for c in store.commits() if c["operation"] == "ingest"]  # fmt: skip


def _selection_failed(error: duckdb.Error) -> BaseException:
    """What to raise where selecting the events failed: the user's selection failing on a value
    (a --where), or, as it is, damage of the store (which ``purge`` and ``redact`` name) or Ctrl-C,
    or the engine's memory limit or a disk failing the work (whose hint is not about the columns)."""
    if damaged_store(error) is not None or undecodable_parquet(error) or read_text_not_utf8(error) or interrupted(error):
        return error
    if (trouble := engine_trouble(error)) is not None:  # the limit or the disk, not the selection, is at fault
        return trouble
    from .query import COLUMNS_HINT

    return UsageError(f"selecting the events failed: {_first_line(error)}", COLUMNS_HINT)


def _refuse_redacting_the_key(
    con: duckdb.DuckDBPyConnection | None, sel: Selection, specs: tuple[str, ...], mappings: list[Mapping]
) -> None:
    """A field that is the selected events' key (or a member of it) cannot be redacted: the key
    would still hold it. A key field of their entity says so; where the source named its key
    (CDC), a member whose value is the key in every event of the entity does."""
    import duckdb

    try:
        entities = (
            [e for (e,) in con.execute(f"SELECT DISTINCT entity FROM events WHERE {sel.condition()}").fetchall()]
            if con is not None
            else [sel.entity or ""]
        )
    except duckdb.Error as e:
        raise _selection_failed(e) from None
    for spec in specs:
        # a dotted spec names the member of that very name too (see redact_doc)
        names = dict.fromkeys([spec, spec.split(".", 1)[0]])
        is_key = any(name in m.keys_for(e or "") for name in names for m in mappings for e in entities)
        if not is_key and con is not None and entities:
            member = json_path(spec)
            in_key = f"CASE WHEN starts_with(key, '{{') THEN json_extract_string(key, {member}) ELSE key END"
            which = ", ".join(sql_string(e) for e in entities if e is not None)
            (is_key,) = con.execute(
                f"""SELECT coalesce(bool_and({in_key} = data->>{member}), FALSE) FROM events
                    WHERE entity IN ({which or "NULL"}) AND data->>{member} IS NOT NULL AND key IS NOT NULL"""
            ).fetchall()[0]
        if is_key:
            raise UsageError(
                f"--field {spec}: it is the key of the events, and a key cannot be redacted (it would still hold the value)",
                "purge the key instead (`logtool purge STORE|FILE --key ...`): its events go whole",
            )


def _snapshot_columns(store: Store, snap: dict[str, Any]) -> list[str]:
    import pyarrow.parquet as pq

    try:
        return list(pq.read_schema(store.path / snap["path"]).names)
    except (OSError, ValueError):
        return ["typed"]  # unreadable: removed, as before


def _refuse_orphaning_reducer_state(store: Store, reducers: list[dict[str, Any]]) -> None:
    """A --where purge matching rows of a reducer's snapshot that alone holds their state (after a
    head drop) would take those rows' states and leave the events after it that the predicate does
    not match, which the reducers then apply to no state: refused. A key's events go whole."""
    if reducers:
        at = reducers[0]["offset"]
        raise UsageError(
            f"--where matches rows of the snapshot at offset {at} taken with a reducer, which alone holds their state "
            "(a head drop removed its events): purged by a predicate, those keys' later events would be left without it",
            f"purge by --key (logtool purge {store.path} --key K): a key's events go whole, and that snapshot is "
            "rewritten without its state",
        )


def _refuse_redacting_reducer_state(
    store: Store, sel: Selection, specs: tuple[str, ...], reducers: list[dict[str, Any]]
) -> None:
    """Reducers' snapshots that alone hold their state are left as they are by a redaction whose
    selected rows in them hold none of the fields; one holding them is refused: a reducer's state
    cannot be redacted (a replay from it must see the reducer's own values), and removing the
    snapshot would lose every key's state."""
    import pyarrow.parquet as pq

    con = _sandbox()
    for snap in reducers:
        rows = pq.read_table(store.path / snap["path"])
        hit = rows.filter(_rows_matching(con, sel, snap, rows))
        if any(_redact_text(text, specs) is not None for name in ("state", "typed") for text in hit.column(name).to_pylist()):
            raise UsageError(
                f"the snapshot at offset {snap['offset']} taken with a reducer holds {', '.join(specs)} in the state of "
                "the selected keys, and alone holds the reducers' state (a head drop removed its events): a reducer's "
                "state cannot be redacted, and removing the snapshot would lose every key's state",
                f"purge the key instead (logtool purge {store.path} --key K): its events go whole, and that snapshot is "
                "rewritten without its state",
            )


def _rewrite_snapshot(
    store: Store, sel: Selection, specs: tuple[str, ...] | None, snap: dict[str, Any], new_files: list[Path]
) -> dict[str, Any]:
    """A snapshot without the selected rows (purge; a reducer's too, its typed states with them),
    or a kv snapshot with their fields redacted (``specs``): a new file and its commit entry (same
    offset, new digest)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .replay import rewritten_snapshot

    rows = pq.read_table(store.path / snap["path"])
    con = _sandbox()
    hit = _rows_matching(con, sel, snap, rows)
    if specs is None:
        rows = rows.filter(pc.invert(hit))
    else:  # only the matching rows are redacted in Python
        states = rows.column("state").to_pylist()
        for i in pc.indices_nonzero(hit).to_pylist():
            states[i] = _redact_text(states[i], specs) or states[i]
        rows = rows.set_column(rows.schema.get_field_index("state"), "state", pa.array(states, pa.string()))
    return rewritten_snapshot(store, snap, rows, new_files)


def _plan_selection(
    con: duckdb.DuckDBPyConnection,
    state: State,
    sel: Selection,
    specs: tuple[str, ...],
    result: PurgeResult,
) -> tuple[list[_SegPlan], dict[int, tuple[str | None, str | None, str | None]]]:
    import duckdb
    import numpy as np
    import pyarrow as pa

    extra = ", data, before, meta" if specs else ""
    try:
        matched = con.sql(
            f'SELECT "offset", digest, hash(entity, key) AS identity{extra} FROM events '
            f'WHERE {sel.condition()} ORDER BY "offset"'
        ).to_arrow_table()
    except duckdb.Error as e:
        raise _selection_failed(e) from None
    result.matched = matched.num_rows
    result.keys = len(np.unique(matched.column("identity").to_numpy())) if matched.num_rows else 0
    redactions: dict[int, tuple[str | None, str | None, str | None]] = {}
    if specs and matched.num_rows:
        cols = [matched.column(c).to_pylist() for c in ("offset", "data", "before", "meta")]
        keep = []
        for i, (off, *texts) in enumerate(zip(*cols, strict=True)):
            new = [_redact_text(t, specs) for t in texts]
            if any(n is not None for n in new):
                redactions[off] = cast(
                    tuple[str | None, str | None, str | None],
                    tuple(n if n is not None else t for n, t in zip(new, texts, strict=True)),
                )
                keep.append(i)
        matched = matched.take(pa.array(keep, pa.int64()))
    plans = _group(state, matched)
    result.events = sum(p.count for p in plans)
    result.offsets = _plan_ranges(plans)
    return plans, redactions


def _rows_matching(
    con: duckdb.DuckDBPyConnection, sel: Selection, snap: dict[str, Any], rows: pa.Table
) -> pa.ChunkedArray:
    """Which rows of a snapshot (``entity``, ``key``, ``state``) the selection matches, each read
    as an event (``op`` read at the snapshot's offset, ``data`` the row), in their order. A
    selection failing on a row (a --where's cast of a value only a snapshot holds) is the user's."""
    import duckdb
    import pyarrow as pa

    from .schema import input_schema

    n = rows.num_rows
    columns = {name: pa.nulls(n, f.type) for name, f in zip(input_schema().names, input_schema(), strict=True)}
    columns.update(
        offset=pa.array([snap["offset"]] * n, pa.int64()), entity=rows.column("entity"), key=rows.column("key"),
        op=pa.array(["read"] * n, pa.string()), data=rows.column("state"),
    )  # fmt: skip
    _events_of(con, pa.table(columns, schema=input_schema()))
    try:
        # rows in their order (DuckDB keeps insertion order without ORDER BY)
        return con.sql(f"SELECT coalesce({sel.condition()}, FALSE) AS hit FROM events").to_arrow_table().column("hit")
    except duckdb.Error as e:
        if interrupted(e):
            raise
        raise UsageError(
            f"selecting the rows of the snapshot at offset {snap['offset']} (read as events: op 'read', data the "
            f"row) failed: {_first_line(e)}",
            "after a head drop its rows are the only copy of their state, and --where is tested on them too: "
            "make it hold for them (e.g. TRY_CAST), or purge by --key",
        ) from None


def _snapshots_holding(
    store: Store, state: State, sel: Selection, first: int | None, only: set[str]
) -> list[dict[str, Any]]:
    """Snapshots that may hold the selected data: every one at or after the first matched event
    (its state was built from it), and any earlier one with a row the predicate matches when the
    row is read as an event (``op`` read, ``data`` the row) — its state can come from events that
    are gone already (an earlier head drop or compaction). Unreadable snapshots count as holding
    it, and so does one on whose rows the predicate fails, unless it is one of ``only`` (whose
    state the log cannot rebuild: see ``Store.unrebuildable_snapshots``), where that failure is
    the user's error."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = []
    con: duckdb.DuckDBPyConnection | None = None
    for snap in state.of_kind("snapshot"):
        at = snap.get("offset")
        if at is None or (first is not None and at >= first):
            out.append(snap)
            continue
        try:
            rows = pq.read_table(store.path / snap["path"], columns=["entity", "key", "state"])
        except (OSError, KeyError, pa.ArrowException):
            out.append(snap)
            continue
        if con is None:
            con = _sandbox()
        try:
            held = pc.any(_rows_matching(con, sel, snap, rows)).as_py()
        except UsageError:
            if snap["path"] in only:
                raise
            held = 1  # removed: replay rebuilds it
        if held:
            out.append(snap)
    return out


def _purge_head(
    store: Store,
    before_offset: int | None,
    before_time: str | None,
    reason: str | None,
    dry_run: bool,
    progress: Progress | None,
) -> PurgeResult:
    import pyarrow.parquet as pq

    flag = "--before-offset" if before_offset is not None else "--before-time"
    snapshot = _snapshot_function(flag)
    # Everything under the one lock: a purge committed between the drop's snapshot and the drop
    # could remove that snapshot, and the head would go without the state it holds.
    lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext() if dry_run else store.writer("purge")
    with lock:
        state = store.state()
        cut = _cut_offset(store, state, before_offset, before_time)
        result = PurgeResult(str(store.path), "purge", dry_run)
        if not any(s["min_offset"] < cut for s in state.segments):
            return result
        from .replay import whole_transactions_below

        # the snapshot stored at the cut holds whole transactions: the events of one it cut would be lost
        whole = whole_transactions_below(store, cut)
        if whole == 0:
            raise UsageError(
                f"{flag}: the cut falls inside the log's first transaction, which a head drop cannot split",
                "drop the head after that transaction's end",
            )
        if whole < cut:
            result.notes.append(
                f"the cut moved down from offset {cut} to {whole}: offsets {whole}..{cut - 1} belong to a transaction "
                "that goes on at or after the cut (or may go on in the next file), and a head drop keeps transactions whole"
            )
        cut = whole
        _refuse_losing_reducer_state(store, state, cut, flag)
        keep_from = cut - 1
        if not dry_run:
            # It commits on its own, first. It holds the state after every event below the cut, so
            # replay from there on needs none of them.
            taken = snapshot(store, at_offset=cut - 1)
            result.snapshot_taken, keep_from = taken["path"], taken["offset"]
            state = store.state()
        else:  # the dry run says so too: the state at the cut is stored, or kept where it is already
            from .replay import KV_FINGERPRINT

            result.snapshot_taken = next((s["path"] for s in state.of_kind("snapshot")
                                          if s.get("offset") == keep_from and s.get("reducer") == KV_FINGERPRINT), None)  # fmt: skip
        result.snapshot_at = keep_from
        plans = []
        for seg in state.segments:
            if seg["max_offset"] < cut:
                plans.append(_SegPlan(seg, None, None, seg["rows"]))
            elif seg["min_offset"] < cut:
                part = pq.read_table(
                    store.path / seg["path"], columns=["offset", "digest"], filters=[("offset", "<", cut)]
                )
                plans += _group(state, part.sort_by("offset"))
        result.events = result.matched = sum(p.count for p in plans)
        result.offsets = _plan_ranges(plans)
        snapshots = [s for s in state.of_kind("snapshot") if s.get("offset", -1) < keep_from]
        predicate: dict[str, Any] = {"before_offset": cut}
        if before_time is not None:
            predicate["before_time"] = before_time
        params = {**predicate, "by": ["before_time" if before_time is not None else "before_offset"]}
        return _execute(
            store, state, "purge", plans, {}, snapshots, [], predicate, params, reason, result, dry_run, progress
        )


def _refuse_losing_reducer_state(store: Store, state: State, cut: int, flag: str) -> None:
    """The snapshot a head drop stores is the kv reducer's, which holds nothing of domain events,
    and the drop removes every snapshot below the cut. Refused where the reducers' state would go
    with them: the head holds domain events, or a reducer's snapshot an earlier head drop left (its
    events gone, it alone holds that state) lies below the cut — unless a snapshot taken with that
    reducer (with any reducer, for domain events alone) is there at the cut already."""
    from .query import events_connection
    from .replay import KV_FINGERPRINT
    from .schema import DOMAIN_EVENT

    con = events_connection(store, files=store.segment_files(state))
    domain, last = con.execute(
        f'SELECT max("offset") FILTER (WHERE {DOMAIN_EVENT}), max("offset") FROM events WHERE "offset" < {int(cut)}'
    ).fetchall()[0]
    reduced = [s for s in state.of_kind("snapshot") if s.get("reducer", KV_FINGERPRINT) != KV_FINGERPRINT]
    at_cut = {s.get("reducer") for s in reduced if last <= s["offset"] < cut}
    only = store.unrebuildable_snapshots()
    lost = [s for s in reduced if s["path"] in only and s["offset"] < last and s.get("reducer") not in at_cut]
    if lost:
        what = (
            f"the snapshot at offset {lost[0]['offset']} taken with a reducer holds the only copy of that reducer's "
            "state (an earlier head drop removed its events), and this drop would remove it"
        )
    elif domain is not None and not at_cut:
        what = (
            f"the events below offset {cut} include domain events (an event-sourced log), and the snapshot a head "
            "drop stores holds only the kv reducer's state"
        )
    else:
        return
    # A reducer's snapshot replays the events after the one it starts from, and a change (an event
    # that is not a domain event) stops a reducer: where one comes first, no snapshot can be taken
    # at the cut, only before it.
    base = max((s["offset"] for s in (lost or reduced) if s["offset"] < cut), default=-1)
    change, furthest = con.execute(
        f"""WITH tail AS (SELECT "offset", {DOMAIN_EVENT} AS domain FROM events WHERE "offset" > {base} AND "offset" < {int(cut)}),
                 first_change AS (SELECT min("offset") AS o FROM tail WHERE NOT domain)
            SELECT (SELECT o FROM first_change),
                   (SELECT max("offset") FROM tail WHERE "offset" < coalesce((SELECT o FROM first_change), {int(cut)}))"""
    ).fetchall()[0]

    def command(at: int) -> str:
        return f"logtool snapshot {store.path} --at-offset {at} --reducer MODULE"

    if change is None:
        hint = f"store your reducers' state there first: `{command(cut - 1)}`, then drop the head"
    else:
        mixed = (
            f"the event at offset {change} is a change, not a domain event, and a reducer cannot replay it: no "
            "snapshot of your reducers can be taken at the cut"
        )
        if furthest is not None:
            hint = (
                f"{mixed}: take one at offset {furthest}, before that change (`{command(furthest)}`), and drop the "
                f"head no further than --before-offset {furthest + 1}"
            )
        elif base >= 0:
            hint = (
                f"{mixed}: drop the head no further than the reducers' snapshot at offset {base} "
                f"(--before-offset {base + 1})"
            )
        else:
            (first,) = con.execute(f'SELECT min("offset") FROM events WHERE {DOMAIN_EVENT}').fetchall()[0]
            hint = f"{mixed}: drop the head no further than the first domain event (--before-offset {first})"
        hint += ", or purge by --key or --entity instead"
    raise UsageError(f"{flag}: {what}: a replay with your reducers after it would start from nothing", hint)


def _snapshot_function(flag: str) -> Callable[..., dict[str, Any]]:
    try:
        from .replay import store_snapshot
    except ImportError:
        raise LogtoolError(
            f"{flag} needs snapshots, not available yet", "purge by --key, --entity or --where"
        ) from None
    return store_snapshot


def _cut_offset(store: Store, state: State, before_offset: int | None, before_time: str | None) -> int:
    """The first offset the head drop keeps."""
    from .query import events_connection

    if before_offset is not None:
        if before_offset < 0:
            raise UsageError(f"--before-offset must be 0 or more, not {before_offset}")
        if before_offset > state.next_offset:
            raise UsageError(
                f"--before-offset {before_offset} is past the end of the log (its next offset is {state.next_offset})",
                f"to drop every event, give --before-offset {state.next_offset}",
            )
        return before_offset
    assert before_time is not None
    try:
        micros = parse_ts(before_time)
    except ValueError:
        raise UsageError(
            f"--before-time: cannot read {before_time!r} as a time", "write e.g. 2026-03-01T14:03:00Z"
        ) from None
    con = events_connection(store, files=store.segment_files(state))
    first = con.execute(f'SELECT min("offset") FROM events WHERE epoch_us(ts) >= {micros}').fetchall()[0][0]
    return int(first) if first is not None else state.next_offset


def _predicate(sel: Selection, specs: tuple[str, ...], record_predicate: bool, salt: bytes) -> dict[str, Any]:
    """The selection in a form that holds no personal data: a key (or a --where text) as its
    SHA-256 with ``salt``, which the store does not keep (the proof, given to the operator): without
    it, a guessable key (an id, an email of a customer list) cannot be found by trying each."""
    out: dict[str, Any] = {}
    if sel.key is not None:
        out["key_sha256"] = hashlib.sha256(salt + sel.key.encode()).hexdigest()
        out["identities"] = len(sel.identities)
    if sel.entity is not None:
        out["entity"] = sel.entity
    if sel.where is not None:
        if record_predicate:
            out["where"] = sel.where
        else:
            out["where_sha256"] = hashlib.sha256(salt + sel.where.encode()).hexdigest()
    if specs:
        out["fields"] = list(specs)
    return out


# --------------------------------------------------------------------------- store: execute


def _execute(
    store: Store,
    state: State,
    operation: str,
    plans: list[_SegPlan],
    redactions: dict[int, tuple[str | None, str | None, str | None]],
    snapshots: list[dict[str, Any]],
    quarantine: list[_QuarantinePlan],
    predicate: dict[str, Any],
    params: dict[str, Any],
    reason: str | None,
    result: PurgeResult,
    dry_run: bool,
    progress: Progress | None,
    rewrites: Iterable[tuple[dict[str, Any], Callable[[dict[str, Any], list[Path]], dict[str, Any]]]] = (),
    proof: bytes | None = None,
    on_proof: Callable[[str], None] | None = None,
) -> PurgeResult:
    result.segments_rewritten = [p.entry["path"] for p in plans if not (operation == "purge" and p.whole)]
    result.segments_removed = [p.entry["path"] for p in plans if operation == "purge" and p.whole]
    result.snapshots_removed = [s["path"] for s in snapshots]
    result.quarantine_files = [q.entry["path"] for q in quarantine]
    result.quarantine_records = sum(q.changed for q in quarantine)
    # (a running writer's files are not leftovers; a dry run beside it does not call them so)
    leftovers = [store.rel(p) for p in store.leftovers(state)] if store.writer_at_work() is None else []
    if dry_run:
        result.leftovers_removed = leftovers
        return result
    replaced: set[str] = set()  # the files the commit replaces: reported as what they are, not as leftovers
    if result.changed:
        new_files: list[Path] = []
        try:
            seg_receipts, added = _rewrite_segments(store, operation, plans, redactions, new_files, progress)
            q_receipts, q_added = _rewrite_quarantine(store, quarantine, new_files)
            rewritten = [(old, rewrite(old, new_files)) for old, rewrite in rewrites]
            for f in new_files:
                fsync_path(f)
            removed = [p.entry for p in plans] + snapshots + [q.entry for q in quarantine] + [old for old, _ in rewritten]
            replaced = {e["path"] for e in removed}
            receipt = {
                "operation": operation,
                "time": now_iso(),
                "actor": actor(),
                "reason": reason,
                "predicate": predicate,
                "counts": {
                    "events": result.events,
                    "matched": result.matched,
                    "keys": result.keys,
                    "segments_rewritten": len(result.segments_rewritten),
                    "segments_removed": len(result.segments_removed),
                    "snapshots_removed": len(snapshots),
                    "quarantine_records": result.quarantine_records,
                },
                "offsets": result.offsets,
                "segments": seg_receipts,
                "snapshots_removed": [{"path": s["path"], "offset": s.get("offset")} for s in snapshots],
                "snapshots_rewritten": [
                    {"path": old["path"], "offset": old.get("offset"), "replaced_by": new["path"],
                     "rows_before": old.get("rows"), "rows_after": new["rows"], "sha256_after": new["sha256"]}
                    for old, new in rewritten
                ],  # fmt: skip
                "quarantine": q_receipts,
            }
            if result.snapshot_taken:
                receipt["snapshot_taken"] = result.snapshot_taken
            info = {f"events_{'removed' if operation == 'purge' else 'redacted'}": result.events, "receipt": receipt}
            needs_proof = proof is not None and ("key_sha256" in predicate or "where_sha256" in predicate)
            if on_proof is not None and proof is not None and needs_proof:
                on_proof(proof.hex())
            commit = store.commit(
                operation, params, add=added + q_added + [new for _, new in rewritten], remove=removed,
                gaps=result.offsets if operation == "purge" else [], info=info,
            )  # fmt: skip
        except BaseException:
            # (an interrupt can come after the commit was published: what it names must stay)
            named = set(store.state().files)
            for f in new_files:
                if store.rel(f) not in named:
                    f.unlink(missing_ok=True)
            raise
        result.commit = commit["version"]
        result.receipt = receipt
        if proof is not None and needs_proof:
            result.proof = proof.hex()
        result.segments_added = [e["path"] for e in added]
    result.leftovers_removed = [p for p in sweep(store) if p not in replaced]
    return result


def sweep(store: Store) -> list[str]:
    """The replaced files and crash leftovers, deleted once the commit is published."""
    return store.sweep()


def _rewrite_segments(
    store: Store,
    operation: str,
    plans: list[_SegPlan],
    redactions: dict[int, tuple[str | None, str | None, str | None]],
    new_files: list[Path],
    progress: Progress | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from . import engine

    con = engine.connect()
    receipts: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    total = sum(p.entry["rows"] for p in plans)
    done = 0
    for plan in plans:
        old = plan.entry
        new = None
        if not (operation == "purge" and plan.whole):
            new = _rewrite_one(store, con, plan, redactions if operation == "redact" else None, new_files)
            if new is not None:
                added.append(new)
        item: dict[str, Any] = {
            "old": {k: old.get(k) for k in ("path", "digest", "sha256", "rows", "min_offset", "max_offset")},
            "new": None if new is None else {k: new[k] for k in ("path", "digest", "sha256", "rows", "min_offset", "max_offset")},
            "offsets": _plan_ranges([plan]),
        }  # fmt: skip
        if plan.digests is not None:
            item["digests"] = [d.hex() for d in plan.digests]
        receipts.append(item)
        done += old["rows"]
        if progress:
            progress(done, total)
    return receipts, added


def _rewrite_one(
    store: Store,
    con: duckdb.DuckDBPyConnection,
    plan: _SegPlan,
    redactions: dict[int, tuple[str | None, str | None, str | None]] | None,
    new_files: list[Path],
) -> dict[str, Any] | None:
    """Write a fresh segment from the old one's surviving (or redacted) rows; its entry, or None
    when nothing survives. Written from scratch, so its statistics, page index, dictionaries and
    bloom filter describe the survivors only."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from .integrity import digests_hash
    from .schema import event_schema
    from .segments import ROW_GROUP_ROWS, segment_entry, write_parquet_options

    schema = event_schema()
    assert plan.offsets is not None
    targets = pa.array(plan.offsets, pa.int64())
    source = pq.ParquetFile(store.path / plan.entry["path"])
    writer: pq.ParquetWriter | None = None
    path: Path | None = None
    h = hashlib.sha256()
    rows = 0
    lo = hi = None
    stamps: list[Any] = []
    try:
        for i in range(source.num_row_groups):
            table = source.read_row_group(i).cast(schema).combine_chunks()
            mask = pc.is_in(table.column("offset").combine_chunks(), value_set=targets)
            if redactions is None:
                table = table.filter(pc.invert(mask))
            elif pc.any(mask).as_py():
                table = _apply_redactions(con, table, mask, redactions)
            if table.num_rows == 0:
                continue
            if writer is None:
                lo = table.column("offset")[0].as_py()
                path = store.new_file("segment", f"{lo:020d}")
                new_files.append(path)
                writer = pq.ParquetWriter(path, schema, **write_parquet_options())
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            digests_hash(table.column("digest"), h)
            rows += table.num_rows
            hi = table.column("offset")[-1].as_py()
            mm = pc.min_max(table.column("ts"))
            stamps += [mm["min"].as_py(), mm["max"].as_py()]
    finally:
        if writer is not None:
            writer.close()
    if path is None:
        return None
    assert lo is not None and hi is not None
    stamps = [t for t in stamps if t is not None]
    return segment_entry(
        store, path, lo, hi, rows, h.hexdigest(), min(stamps) if stamps else None, max(stamps) if stamps else None
    )


def _apply_redactions(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    mask: pa.Array,
    redactions: dict[int, tuple[str | None, str | None, str | None]],
) -> pa.Table:
    """Replace data/before/meta of the masked rows, give them a new salt, recompute their digest."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .integrity import digest_sql

    offsets = table.column("offset").filter(mask).to_pylist()
    for j, name in enumerate(("data", "before", "meta")):
        values = pa.array([redactions[o][j] for o in offsets], pa.string())
        col = pc.replace_with_mask(table.column(name).combine_chunks(), mask, values)
        table = table.set_column(table.schema.get_field_index(name), name, col)
    # A new salt: the old salt's event digest is in the receipt, and must not vouch for new content.
    salts = pa.array([secrets.token_bytes(16) for _ in offsets], pa.binary())
    table = table.set_column(
        table.schema.get_field_index("salt"),
        "salt",
        pc.replace_with_mask(table.column("salt").combine_chunks(), mask, salts),
    )
    changed = table.filter(mask)  # noqa: F841 - read by the query
    digests = con.sql(f'SELECT {digest_sql()} AS d FROM changed ORDER BY "offset"').to_arrow_table().column("d")
    col = pc.replace_with_mask(
        table.column("digest").combine_chunks(), mask, digests.combine_chunks().cast(pa.binary())
    )
    return table.set_column(table.schema.get_field_index("digest"), "digest", col)


# --------------------------------------------------------------------------- store: quarantine


@dataclass
class _QuarantinePlan:
    entry: dict[str, Any]
    lines: list[bytes | None]  # each line's new bytes, None where the line goes
    changed: int


def _plan_quarantine(store: Store, state: State, sel: Selection, specs: tuple[str, ...]) -> list[_QuarantinePlan]:
    """Quarantined records that match go (purge) or are redacted where they parse (redact)."""
    entries = state.of_kind("quarantine")
    if not entries:
        return []
    origins = _quarantine_origins(store, {e["path"] for e in entries})
    plans = []
    for entry in entries:
        fmt, mapping = origins.get(entry["path"], ("", Mapping()))
        raw_lines = (store.path / entry["path"]).read_bytes().splitlines(keepends=True)
        items: list[tuple[int, str]] = []
        for i, line in enumerate(raw_lines):
            try:
                rec = json.loads(line)
                text = rec["raw"] if "raw" in rec else _b64(rec.get("raw_base64", ""))
            except (ValueError, KeyError, TypeError):
                text = line.decode("utf-8", "replace")
            items.append((i, text))
        judge = _RawJudge(sel, mapping, fmt, entry.get("file") or entry["path"])
        hits = judge.matches(items)
        if not hits:
            continue
        new: list[bytes | None] = list(raw_lines)
        for i in hits:
            new[i] = _redact_quarantine_line(raw_lines[i], specs, mapping, fmt) if specs else None
        changed = sum(new[i] != raw_lines[i] for i in hits)
        if changed:
            plans.append(_QuarantinePlan(entry, new, changed))
    return plans


def _b64(text: str) -> str:
    import base64

    return base64.b64decode(text).decode("utf-8", "replace")


def _redact_quarantine_line(line: bytes, specs: tuple[str, ...], mapping: Mapping, fmt: str) -> bytes | None:
    """The quarantine line with its raw record redacted; None (the line goes) if it cannot be."""
    try:
        rec = json.loads(line)
        record = loads_exact(rec["raw"]) if fmt == "jsonl" else None
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(record, dict):
        return None
    if not redact_record(record, specs, mapping):
        return line
    rec["raw"] = _escape_surrogates(dumps_exact(record))
    return (json.dumps(rec, ensure_ascii=False) + "\n").encode()


def _quarantine_origins(store: Store, paths: set[str]) -> dict[str, tuple[str, Mapping]]:
    """Format and field mapping of the ingest that quarantined each file (through the purges and
    redactions that rewrote it since: their receipts name the file each new one replaced)."""
    names = {f.name for f in fields(Mapping)}
    ingested: dict[str, tuple[str, Mapping]] = {}
    replaced: dict[str, str] = {}  # a rewritten quarantine file -> the file it replaced
    for c in store.commits():
        for q in ((c.get("info") or {}).get("receipt") or {}).get("quarantine") or []:
            if q.get("new"):
                replaced[q["new"]] = q["old"]
        if c.get("operation") != "ingest":
            continue
        for e in c.get("add", []):
            given = c.get("params", {}).get("mapping", {})
            kwargs: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in given.items() if k in names}
            try:
                ingested[e["path"]] = (str(c.get("params", {}).get("format", "")), Mapping(**kwargs))
            except TypeError:
                ingested[e["path"]] = ("", Mapping())
    out: dict[str, tuple[str, Mapping]] = {}
    for path in paths:
        origin, seen = path, set()
        while origin not in ingested and origin in replaced and origin not in seen:
            seen.add(origin)
            origin = replaced[origin]
        out[path] = ingested.get(origin, ("", Mapping()))
    return out


def _rewrite_quarantine(
    store: Store, plans: list[_QuarantinePlan], new_files: list[Path]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    receipts: list[dict[str, Any]] = []
    added: list[dict[str, Any]] = []
    for q in plans:
        kept = [line for line in q.lines if line is not None]
        new = None
        if kept:
            stem = Path(q.entry["path"]).name.rsplit("-", 1)[0]
            path = store.new_file("quarantine", stem, ".jsonl")
            new_files.append(path)
            path.write_bytes(b"".join(kept))
            new = {**q.entry, "path": store.rel(path), "rows": len(kept), "sha256": file_sha256(path),
                   "bytes": path.stat().st_size}  # fmt: skip
            added.append(new)
        receipts.append({"old": q.entry["path"], "new": new["path"] if new else None, "records": q.changed})
    return receipts, added


# --------------------------------------------------------------------------- raw records


def _sandbox() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read registered tables and nothing on the file system."""
    from . import engine

    con = engine.connect()
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _events_of(con: duckdb.DuckDBPyConnection, rows: pa.Table | pa.RecordBatch) -> None:
    """Point the sandbox's ``events`` view at rows in the input schema (plus extra columns)."""
    import pyarrow as pa

    con.register("_rows", pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows)
    con.execute("CREATE OR REPLACE VIEW events AS SELECT *, NULL::BLOB AS digest FROM _rows")


def _scalar(record: dict[str, Any], name: str | None) -> str | None:
    value = record.get(name) if name else None
    return None if value is None else key_text([value], [name or ""])


def lenient_event(
    text: str, mapping: Mapping, default_entity: str, fmt: str, file: str, line: int
) -> dict[str, Any] | None:
    """An event from a raw JSON record that the reader refused, as far as it can be read: fields
    that are missing or unreadable are null. None if the text is not a JSON object."""
    from .formats.jsonl import exact_fields

    try:
        record = loads_exact(text)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    entity = _scalar(record, mapping.entity_field) or default_entity
    names = mapping.keys_for(entity)
    values = [record.get(n) for n in names]
    key = key_text(values, names) if names and all(v is not None for v in values) else None
    try:
        op: str | None = normalize_op(record.get(mapping.op_field)) if mapping.op_field else None
    except ValueError:
        op = None
    try:
        ts = parse_ts(record.get(mapping.ts_field), mapping.ts_unit) if mapping.ts_field else None
    except ValueError:
        ts = None
    try:
        _key, data, meta = exact_fields(text, mapping, entity)
    except (ValueError, AttributeError):
        data, meta = None, None
    event = {
        "offset": None, "ts": ts, "entity": entity, "key": key, "prev_key": _scalar(record, mapping.prev_key_field),
        "op": op, "type": _scalar(record, mapping.type_field), "data": data, "before": None, "meta": meta,
        "txn": None, "source": {"format": fmt, "file": file, "line": line, "position": None, "position_order": None},
    }  # fmt: skip
    # as it is judged: a lone surrogate (a JSON escape such as \\ud83d, half an emoji, that the JSON
    # parser gives back as it is) read as U+FFFD, as an undecodable byte is; Arrow and DuckDB take none
    result: dict[str, Any] = without_surrogates(event)
    return result


_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")  # a surrogate that is no undecodable byte


def _escape_surrogates(json_text: str, undecodable: bool = False) -> str:
    """JSON text with each lone surrogate written as its escape (``\\ud83d``), as the source had
    it, so that the text encodes as UTF-8; with ``undecodable`` (the line held undecodable bytes,
    read with surrogateescape), those of the bytes are left for the encoder to write back."""
    found = _LONE_SURROGATE if undecodable else SURROGATE
    return found.sub(lambda m: f"\\u{ord(m.group()):04x}", json_text)


class _RawJudge:
    """Decides which raw records (quarantined, or unreadable lines of a raw file) a selection
    matches, best effort: a record that parses as a JSON object is mapped leniently and the
    predicate evaluated on it as on events; with a key, the key appearing in the raw text as a
    token also counts. A record that does not parse matches only on such a key token, and never
    under a --where (which cannot be evaluated on it)."""

    def __init__(self, sel: Selection, mapping: Mapping, fmt: str, file: str) -> None:
        self.sel, self.mapping, self.fmt, self.file = sel, mapping, fmt, file
        self.default_entity = mapping.entity or file_entity(file)
        keys = sorted(sel.keys, key=len, reverse=True)
        # a token: not part of a longer word, number, dotted name or address (`4` is not in `2.5.4.Final`)
        edge = r"[\w.+\-@]"
        self.tokens = re.compile("|".join(rf"(?<!{edge}){re.escape(k)}(?!{edge})" for k in keys)) if keys else None
        self.con: duckdb.DuckDBPyConnection | None = None

    def matches(self, items: list[tuple[int, str]]) -> set[int]:
        import duckdb
        import pyarrow as pa

        from .schema import input_schema

        out: set[int] = set()
        rows: list[dict[str, Any]] = []
        flags: list[bool] = []
        for ident, text in items:
            hit = bool(self.tokens and self.tokens.search(text))
            ev = lenient_event(text, self.mapping, self.default_entity, self.fmt, self.file, ident)
            if ev is None or self.fmt != "jsonl":
                if hit and self.sel.where is None:
                    out.add(ident)
                continue
            rows.append(ev)
            flags.append(hit)
        if rows:
            table = pa.Table.from_pylist(rows, schema=input_schema()).append_column("_key_token", pa.array(flags))
            if self.con is None:
                self.con = _sandbox()
            _events_of(self.con, table)
            try:
                found = self.con.execute(
                    f"SELECT source.line FROM events WHERE {self.sel.condition(key_alt='_key_token')}"
                ).fetchall()
            except duckdb.Error:  # a predicate that fails on a half-read record: it does not match
                found = []
            out |= {int(r[0]) for r in found}
        return out


def _structural(mapping: Mapping) -> set[str]:
    """The fields redaction never touches: those that give a record its key (any entity's),
    entity, op or time."""
    scoped = {k.split(":", 1)[1] for k in mapping.key_fields if ":" in k}
    return (set(mapping.mapped_fields()) | scoped) - set(mapping.meta_fields)


def redact_record(record: dict[str, Any], specs: tuple[str, ...], mapping: Mapping) -> bool:
    """Redact a raw JSON record where the mapping puts the fields: in its payload and meta fields,
    never in the fields that give its key, entity, op or time."""
    structural = _structural(mapping)
    if mapping.data_field:
        changed = redact_doc(record.get(mapping.data_field), specs)
        return redact_doc(record, specs, lambda name: name in mapping.meta_fields) or changed
    return redact_doc(record, specs, lambda name: name not in structural)


@dataclass
class _Rec:
    start: int  # the line the record starts on (1-based)
    raw: bytes
    row: list[str] | None = None  # CSV fields
    delimiter: str = ","  # CSV: what separates them


def _json_records(stream: IO[bytes]) -> Iterator[_Rec]:
    for i, raw in enumerate(stream, 1):
        yield _Rec(i, raw)


def _csv_records(stream: IO[bytes], max_field: int) -> Iterator[_Rec]:
    """CSV records with their exact bytes, numbered and bounded as the CSV reader of ingest
    numbers and bounds them: a line ends at \\n, \\r\\n or a bare \\r, and a quoted field over the
    limit runs on to the line that closes it."""
    from .formats.csv import _scan, field_size_limit, physical_lines

    taken: list[bytes] = []

    def lines() -> Iterator[str]:
        for raw in physical_lines(stream):
            taken.append(raw)
            yield raw.decode("utf-8", "surrogateescape")

    with field_size_limit(max_field):
        read = lines()
        first = next(read, None)
        if first is None:
            return
        sep = delimiter(first)
        source = itertools.chain([first], read)
        reader = csv.reader(source, delimiter=sep)
        skipped = 0
        while True:
            start = reader.line_num + skipped + 1
            try:
                row: list[str] | None = next(reader)
            except StopIteration:
                break
            except csv.Error:
                row = None
                if _scan(b"".join(taken).decode("utf-8", "surrogateescape"), sep)[1]:
                    for line in source:
                        skipped += 1
                        if line.count('"') % 2:
                            break
            yield _Rec(start, b"".join(taken), row, sep)
            taken.clear()
        if taken:
            yield _Rec(reader.line_num + skipped + 1, b"".join(taken), None, sep)


# --------------------------------------------------------------------------- raw files


def purge_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | IO[bytes],
    *,
    key: str | None = None,
    entity: str | None = None,
    where: str | None = None,
    mapping: Mapping | None = None,
    format: str | None = None,
    progress: Progress | None = None,
) -> FileResult:
    """Copy a JSON-lines or CSV log to ``out`` without the records the selection matches.

    The predicate is evaluated over the events the field ``mapping`` gives (as ``ingest`` would
    read them); every other record is written byte for byte. Records the reader cannot map are
    judged on their raw text, best effort (see :class:`_RawJudge`). Streams: memory does not grow
    with the file.
    """
    return _raw(path, out, (), key, entity, where, mapping, format, progress)


def redact_file(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | IO[bytes],
    fields: Iterable[str],
    *,
    key: str | None = None,
    entity: str | None = None,
    where: str | None = None,
    mapping: Mapping | None = None,
    format: str | None = None,
    progress: Progress | None = None,
) -> FileResult:
    """Copy a JSON-lines or CSV log to ``out`` with the named fields of the matching records
    replaced by ``"[REDACTED]"`` (in the payload and meta fields the mapping gives, never in the
    key, entity, op or time fields). Every other record is written byte for byte."""
    return _raw(path, out, _check_fields(fields), key, entity, where, mapping, format, progress)


def _raw(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | IO[bytes],
    specs: tuple[str, ...],
    key: str | None,
    entity: str | None,
    where: str | None,
    mapping: Mapping | None,
    format_name: str | None,
    progress: Progress | None = None,
) -> FileResult:
    from .formats import detect, get_format

    mapping = mapping or Mapping()
    if key is None and entity is None and where is None:
        raise UsageError("say which records", "give --key, --entity or --where")
    key = None if key is None else given_key(key)  # a composite key spaced or compact, as in a store
    if entity is not None and mapping.entity_field is None and mapping.entity is None:
        # records without an entity of their own are of the one --entity names, as ingest's --entity
        # names them (not of the file's name, which the store's events, ingested so, do not carry)
        mapping = replace(mapping, entity=entity)
    if str(path) == "-":
        raise UsageError("a raw log is read twice: name a file, not stdin", "save the stream to a file first")
    source = Source(str(path))
    fmt = get_format(format_name) if format_name else detect(source, empty_ok=True)
    if fmt.name not in RAW_FORMATS:
        raise UsageError(
            f"{source.name}: raw-file mode reads {' and '.join(RAW_FORMATS)}, not {fmt.name}",
            "ingest it into a store and purge there, or pass --input-format",
        )
    if isinstance(out, str | os.PathLike) and str(out) != "-" and Path(out).resolve() == Path(path).resolve():
        raise UsageError("the output would overwrite the input", "write to another file, then move it")
    con = _sandbox()
    _events_of(con, _empty_input())
    sel = Selection(key, entity, where)
    if where is not None:
        check_where(where, con)
    if key is not None and not mapping.key_fields:
        raise UsageError(
            "--key needs --key-field in raw-file mode: without it no record has a key, and nothing would match",
            "name the key's field, e.g. --key-field id",
        )
    if key is not None:
        # the row's earlier keys, found as in a store, over the file's events at their positions
        moves = _store_moves(_file_events(str(path), fmt, mapping)) if mapping.prev_key_field else lambda _stint: []
        sel.identities, sel.spans = resolve_identities(key, entity, moves)
    if specs:
        _refuse_redacting_the_key(None, sel, specs, [mapping])
    _check_mapped_fields(str(path), fmt, mapping)
    result = FileResult(source.name, "-" if not isinstance(out, str | os.PathLike) else str(out), fmt.name,
                        "redact" if specs else "purge")  # fmt: skip
    with output_file(out) as sink:
        _filter_records(source, fmt, mapping, sel, specs, con, sink, result, progress)
    return result


def _check_mapped_fields(path: str, fmt: Any, mapping: Mapping) -> None:
    """The mapping checked against the file before anything is written: some record can be read
    through it (a file none of whose records can be read is refused, as compact refuses it: the
    mapping is likely wrong, and judging every record on its raw text would pass for an erasure),
    and its data and type fields as ingest checks them. The file is read until a record is read
    that holds the field (its first batch, as a rule), or to its end."""
    probe = Source(path)
    bad: list[BadRecord] = []
    events = 0
    batches = fmt.read(probe, mapping, lambda r: bad.append(r) if not bad else None)
    try:
        for batch in batches:
            events += batch.num_rows
            if events and fields_seen(probe, mapping):
                return
    finally:
        batches.close()
    if bad and not events:
        first = bad[0]
        raise InputError(first.file, first.line, f"{first.reason} (and every other record: none could be read)",
                         "check the field mapping (--key-field, --ts-field, ...) against the file")  # fmt: skip
    check_fields_seen(probe, mapping, events)


def _empty_input() -> pa.Table:
    from .schema import input_schema

    return input_schema().empty_table()


def _file_events(path: str, fmt: Any, mapping: Mapping) -> duckdb.DuckDBPyConnection:
    """A connection whose table ``events`` holds what the key-change rules read of a raw file's
    events (their position among them as ``offset``, and whether their data is null)."""
    from . import engine

    con = engine.connect()
    con.execute('CREATE TABLE events ("offset" BIGINT, entity VARCHAR, key VARCHAR, prev_key VARCHAR, op VARCHAR, data VARCHAR)')
    for batch in _positioned(fmt.read(Source(path), mapping, lambda _r: None)):
        con.register("_batch", batch)
        con.execute("""INSERT INTO events SELECT "offset", entity, key, prev_key, op,
                       CASE WHEN data IS NOT NULL THEN '' END FROM _batch""")
        con.unregister("_batch")
    return con


def _positioned(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A raw file's event batches, each event's position among the file's events, from 0, as its
    offset (raw-file mode has no other)."""
    import numpy as np
    import pyarrow as pa

    first = 0
    for batch in batches:
        positions = pa.array(np.arange(first, first + batch.num_rows, dtype=np.int64))
        yield batch.set_column(batch.schema.get_field_index("offset"), "offset", positions)
        first += batch.num_rows


def _filter_records(
    source: Source,
    fmt: Any,
    mapping: Mapping,
    sel: Selection,
    specs: tuple[str, ...],
    con: duckdb.DuckDBPyConnection,
    sink: IO[bytes],
    result: FileResult,
    progress: Progress | None = None,
) -> None:
    """Read events and raw records side by side: decide on each record once the reader has gone
    past it, then write it (or not, or redacted). ``progress(bytes_read, total)`` as it reads."""
    bad: dict[int, bytes] = {}
    matched: set[int] = set()

    def report(record: BadRecord) -> None:
        if record.line is not None:
            bad[record.line] = record.raw
            if result.first_unreadable is None:
                result.first_unreadable = f"{record.file}:{record.line}: {record.reason}"

    judge = _RawJudge(sel, mapping, fmt.name, source.name)
    cond = sel.condition()
    second = Source(source.spec)
    with second.open() as raw_stream:
        buffered = io.BufferedReader(cast(Any, raw_stream), 1 << 20)
        buffered.peek(1)  # the first read, which takes off a byte order mark: it goes out as it came
        if second.bom:
            sink.write(BOM)
        records = _csv_records(buffered, mapping.max_line_bytes) if fmt.name == "csv" else _json_records(buffered)
        header: list[str] | None = None
        if fmt.name == "csv":
            first = next(records, None)
            if first is None:
                return
            header = [h.strip() for h in first.row or []]
            sink.write(first.raw)
        pending: list[_Rec] = []

        def drain(frontier: float) -> None:
            nonlocal pending
            window: list[_Rec] = pending
            pending = []
            for rec in records:
                if rec.start > frontier:
                    pending = [rec]
                    break
                window.append(rec)
            unreadable = [r for r in window if r.start in bad]
            hits = (
                judge.matches([(r.start, r.raw.decode("utf-8", "replace")) for r in unreadable])
                if unreadable
                else set()
            )
            result.unreadable += len(unreadable)
            for rec in window:
                if _is_record(rec):
                    result.records += 1
                if rec.start in matched or rec.start in hits:
                    _act(rec, header, specs, mapping, sink, result, rec.start in bad)
                else:
                    sink.write(rec.raw)
                matched.discard(rec.start)
                bad.pop(rec.start, None)

        for batch in _positioned(fmt.read(source, mapping, report)):
            if progress:
                progress(source.bytes_read, source.size)
            _events_of(con, batch)
            if sel.entity is not None and len(result.entities) < 100:
                result.entities.update(e for (e,) in con.execute("SELECT DISTINCT entity FROM events").fetchall() if e)
            lines = con.execute(f"SELECT source.line FROM events WHERE {cond}").fetchall()
            matched.update(int(r[0]) for r in lines)
            last = batch.column("source").field("line")[-1].as_py()
            drain(max([last, *bad]))
        drain(float("inf"))


def _is_record(rec: _Rec) -> bool:
    """A CSV record, as ingest reads one: not a blank line (a quoted "" alone is a record)."""
    return bool(rec.raw.strip()) and rec.row != []


def _act(
    rec: _Rec,
    header: list[str] | None,
    specs: tuple[str, ...],
    mapping: Mapping,
    sink: IO[bytes],
    result: FileResult,
    unreadable: bool,
) -> None:
    result.matched += 1
    if not specs:
        result.removed += 1
        return
    new = _redact_csv(rec, header, specs, mapping) if header is not None else _redact_json_line(rec.raw, specs, mapping)
    if new is None:
        if unreadable:
            result.unreadable_kept += 1
            if result.first_unreadable_kept is None:
                result.first_unreadable_kept = rec.start
        sink.write(rec.raw)
        return
    result.redacted += 1
    sink.write(new)


def _redact_json_line(raw: bytes, specs: tuple[str, ...], mapping: Mapping) -> bytes | None:
    text = raw.decode("utf-8", "surrogateescape")
    body = text.rstrip("\r\n")
    try:
        record = loads_exact(body)
    except ValueError:
        return None
    if not isinstance(record, dict) or not redact_record(record, specs, mapping):
        return None
    out = _escape_surrogates(dumps_exact(record), undecodable=undecoded(body) is not None)
    return (out + text[len(body) :]).encode("utf-8", "surrogateescape")


def _redact_csv(rec: _Rec, header: list[str], specs: tuple[str, ...], mapping: Mapping) -> bytes | None:
    if rec.row is None or len(rec.row) != len(header):
        return None
    structural = _structural(mapping)
    row = list(rec.row)
    changed = False
    for i, name in enumerate(header):
        allowed = name in mapping.meta_fields if mapping.data_field else name not in structural
        if name in specs and allowed and row[i] not in ("", MARKER):
            row[i] = MARKER
            changed = True
    if not changed:
        return None
    ending = next((e for e in ("\r\n", "\n", "\r") if rec.raw.endswith(e.encode())), "")
    buf = io.StringIO()
    csv.writer(buf, delimiter=rec.delimiter, lineterminator=ending).writerow(row)
    return buf.getvalue().encode("utf-8", "surrogateescape")
