"""MongoDB change stream events (extended JSON, as ``mongosh``/``mongoexport``/drivers write
them), one JSON object a line.

- ``insert``: an ``insert`` of ``fullDocument``; ``replace``: an ``upsert`` of ``fullDocument``;
  ``delete``: a ``delete``.
- ``update``: a ``patch`` built from ``updateDescription``:
  ``{"$set": {updatedFields, dotted paths as given}, "$unset": [removedFields],
  "$truncate": {field: newSize}}`` (from ``truncatedArrays``: the array is cut to that size before
  ``$set`` applies), each member only when not empty; ``"$paths"`` keeps ``disambiguatedPaths``
  (the parts of a path whose field names hold dots; an array index, plain or ``$numberInt``, as
  the integer), which replay follows (``apply_update``). ``fullDocument``, when the stream asked
  for it, is the document as it was later, not what this change did, and is not used. Where the
  event carries the pre-image (``fullDocumentBeforeChange``, the whole document just before this
  change), the update is an ``upsert`` of the pre-image with that patch applied: the exact
  document the change left.
- ``drop``: a ``truncate`` of the collection; ``rename``: a ``truncate`` of the collection under
  its old name (the documents now live under ``to``, which the stream does not replay). Their
  ``type`` is the operation type.
- ``invalidate`` (the stream ended there, after a drop or rename) is skipped: it names no
  collection and changes nothing the drop or rename did not.
- Other operation types (``dropDatabase``, ``create``, ``createIndexes``, ``modify``...) are
  ``event``s of that type whose data is ``operationDescription``: they change no document.
- ``entity``: ``ns.db``.``ns.coll`` (``ns.db`` alone when the event names no collection).
- ``key``: ``documentKey._id``: an ObjectId as its hex string, a canonical ``$numberInt`` or
  ``$numberLong`` as the integer (as relaxed mode writes it), anything else through ``key_text``.
- ``ts``: ``wallTime`` (milliseconds), else the seconds of ``clusterTime``.
- ``source.position`` and ``txn.position``: ``clusterTime`` as ``seconds:increment``.
- ``txn``: ``lsid.id:txnNumber`` for events of a multi-document transaction.
- ``before``: ``fullDocumentBeforeChange`` where the collection records pre-images.
- ``meta``: the event without its documents and namespace (``_id`` is the resume token).
Documents stay the extended JSON they are (``{"$oid": ...}``, ``{"$date": ...}``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import Format
from .base import (
    Event,
    Mapping,
    RawJSON,
    Report,
    Source,
    check_mapping_for,
    dumps_exact,
    json_or_none,
    key_text,
    kind_of,
    loads_exact,
    parse_ts,
    read_json_lines,
    sniff_lines,
)

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "mongodb"

_DOCUMENT_OPS = {"insert": "insert", "replace": "upsert", "update": "patch", "delete": "delete"}
_NOT_META = ("fullDocument", "fullDocumentBeforeChange", "updateDescription", "operationDescription", "ns")
# the types of numbers in extended JSON (``{"$numberLong": "3"}``), and those of integers
NUMBER_TYPES = ("$numberInt", "$numberLong", "$numberDouble", "$numberDecimal")
INTEGER_TYPES = ("$numberInt", "$numberLong")


def _decode(record: Any, where: dict[str, Any]) -> Event:
    if not isinstance(record, dict):
        raise ValueError(f"a change event is a JSON object, not {kind_of(record)}")
    kind = record.get("operationType")
    if not isinstance(kind, str):
        raise ValueError("change event without an 'operationType'")
    cluster = _cluster_time(record.get("clusterTime"))
    position = None if cluster is None else f"{cluster[0]}:{cluster[1]}"
    ts = _date(record["wallTime"], "wallTime") if record.get("wallTime") is not None else None
    if ts is None and cluster is not None:
        ts = cluster[0] * 1_000_000
    event: Event = {
        "ts": ts,
        "entity": _namespace(record.get("ns"), kind in _DOCUMENT_OPS or kind in ("drop", "rename")),
        "key": None,
        "data": None,
        "meta": dumps_exact({k: v for k, v in record.items() if k not in _NOT_META}),
        "txn": _txn(record, position, ts),
        "source": {**where, "position": position},
    }
    if kind in ("drop", "rename"):
        return {**event, "op": "truncate", "type": kind}
    if kind not in _DOCUMENT_OPS:
        return {**event, "op": "event", "type": kind, "data": json_or_none(record.get("operationDescription"))}
    key = _document_key(record.get("documentKey"), kind)
    before = record.get("fullDocumentBeforeChange")
    if before is not None and not isinstance(before, dict):
        raise ValueError(f"fullDocumentBeforeChange is {kind_of(before)}, not a document")
    event = {**event, "op": _DOCUMENT_OPS[kind], "key": key, "before": json_or_none(before)}
    if kind == "delete":
        return event
    if kind == "update":
        return {**event, **update_change(before, update_patch(record.get("updateDescription")))}
    document = record.get("fullDocument")
    if not isinstance(document, dict):
        raise ValueError(f"{kind} without a fullDocument")
    return {**event, "data": dumps_exact(document)}


def _namespace(ns: Any, needs_collection: bool) -> str:
    if not isinstance(ns, dict) or not isinstance(ns.get("db"), str):
        raise ValueError("change event without 'ns.db'")
    coll = ns.get("coll")
    if isinstance(coll, str):
        return f"{ns['db']}.{coll}"
    if needs_collection:
        raise ValueError("change event without 'ns.coll'")
    return str(ns["db"])


def _document_key(document_key: Any, kind: str) -> str:
    if not isinstance(document_key, dict) or "_id" not in document_key:
        raise ValueError(f"{kind} without a documentKey._id")
    return document_id(document_key["_id"])


def document_id(ident: Any) -> str:
    """A document's ``_id`` as its key: an ObjectId as its hex string, anything else through
    ``key_text`` (shared with Debezium's MongoDB connector, so both give a document one key)."""
    if isinstance(ident, dict) and list(ident) == ["$oid"] and isinstance(ident["$oid"], str):
        return ident["$oid"]
    return key_text([_relaxed(ident)], ("_id",))


def _relaxed(value: Any) -> Any:
    """A value of canonical extended JSON with its numbers as relaxed mode writes them (7 for
    ``{"$numberInt": "7"}``, 7.5 for ``{"$numberDouble": "7.5"}``), in objects and lists too: the
    same document keyed alike, whichever mode wrote its events."""
    if isinstance(value, list):
        return [_relaxed(v) for v in value]
    if not isinstance(value, dict):
        return value
    if (integer := _integer(value)) is not None:
        return integer
    text = unwrap_number(value, ("$numberDouble",))
    if isinstance(text, str) and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text):
        return loads_exact(text)
    return {k: _relaxed(v) for k, v in value.items()}


def unwrap_number(value: Any, types: tuple[str, ...] = NUMBER_TYPES) -> Any:
    """What a number in extended JSON wraps (``"3"`` of ``{"$numberLong": "3"}``): the member of
    an object whose one member is named by one of ``types``; any other value as it is."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, inner),) = value.items()
        if name in types:
            return inner
    return value


def update_patch(description: Any) -> dict[str, Any]:
    """An update description (``updatedFields``, ``removedFields``, ``truncatedArrays`` of
    ``{field, newSize}``) as the patch replay applies: ``$set``, ``$unset``, ``$truncate``."""
    if not isinstance(description, dict):
        raise ValueError("update without an updateDescription")
    updated = _member(description, "updatedFields", {})
    removed = _member(description, "removedFields", [])
    truncated = _member(description, "truncatedArrays", [])
    if not isinstance(updated, dict):
        raise ValueError("updateDescription.updatedFields is not an object")
    if not isinstance(removed, list):
        raise ValueError("updateDescription.removedFields is not a list")
    if not isinstance(truncated, list) or not all(
        isinstance(t, dict) and isinstance(t.get("field"), str) and "newSize" in t for t in truncated
    ):
        raise ValueError("updateDescription.truncatedArrays is not a list of {field, newSize}")
    sizes = {t["field"]: _integer(t["newSize"]) for t in truncated}  # plain, or {"$numberInt": "2"}
    wrong = next((t for t in truncated if sizes[t["field"]] is None or sizes[t["field"]] < 0), None)  # type: ignore[operator]
    if wrong is not None:
        raise ValueError(f"updateDescription.truncatedArrays: newSize {dumps_exact(wrong['newSize'])} of "
                         f"{wrong['field']!r} is not a size (an integer, 0 or more)")  # fmt: skip
    patch: dict[str, Any] = {}
    if updated:
        patch["$set"] = updated
    if removed:
        patch["$unset"] = removed
    if truncated:
        patch["$truncate"] = sizes
    paths = description.get("disambiguatedPaths")  # MongoDB 6.1+: field names holding dots
    if isinstance(paths, dict) and paths:
        parts = {path: [_path_part(c) for c in v] if isinstance(v, list) else None for path, v in paths.items()}
        if not all(v is not None and None not in v for v in parts.values()):
            raise ValueError("updateDescription.disambiguatedPaths is not an object of path-part lists")
        patch["$paths"] = parts
    return patch


def _path_part(part: Any) -> str | int | None:
    """A part of a disambiguated path: a field name, or an array index, which MongoDB writes as an
    integer (``{"$numberInt": "0"}`` in canonical mode, 0 in relaxed mode), 0 or more. A number
    that is no integer (read as its text) is neither."""
    if isinstance(part, str) and not isinstance(part, RawJSON):
        return part
    index = _integer(part)
    return index if index is not None and index >= 0 else None


def is_update_patch(data: Any) -> bool:
    """An update as ``update_patch`` writes it: ``$set`` (an object of paths), ``$unset`` (a list of
    paths), ``$truncate`` and ``$paths`` (objects). Anything else is a row of columns."""
    if not (isinstance(data, dict) and data and set(data) <= {"$set", "$unset", "$truncate", "$paths"}):
        return False
    unset = data.get("$unset", [])
    return (
        all(isinstance(data.get(m, {}), dict) for m in ("$set", "$truncate", "$paths"))
        and isinstance(unset, list) and all(isinstance(p, str) for p in unset)
    )


def _index(node: Any, part: str | int) -> int | None:
    """The list index a path part names in ``node`` (a number, or digits in a dotted path)."""
    if isinstance(node, list) and (isinstance(part, int) or part.isdigit()):
        return int(part)
    return None


def _set_path(row: dict[str, Any], parts: list[str | int], value: Any) -> None:
    node: Any = row
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        idx = _index(node, part)
        if idx is not None:
            while len(node) <= idx:
                node.append(None)
            if not isinstance(node[idx], dict | list):
                node[idx] = [] if isinstance(nxt, int) or nxt.isdigit() else {}
            node = node[idx]
        elif isinstance(node, dict):
            if not isinstance(node.get(str(part)), dict | list):
                node[str(part)] = {}
            node = node[str(part)]
        else:
            return  # a field inside an array: MongoDB refuses such an update, so none is applied
    idx = _index(node, parts[-1])
    if isinstance(node, list) and idx is None:
        return
    if idx is not None:
        while len(node) <= idx:
            node.append(None)
        node[idx] = value
    else:
        node[str(parts[-1])] = value


def _walk(row: dict[str, Any], parts: list[str | int]) -> Any:
    """The node at a path, or None where the path leads nowhere."""
    node: Any = row
    for part in parts:
        idx = _index(node, part)
        if idx is not None and idx < len(node):
            node = node[idx]
        elif isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
        else:
            return None
    return node


def _truncate_path(row: dict[str, Any], parts: list[str | int], size: int) -> None:
    node = _walk(row, parts)
    if isinstance(node, list):
        del node[size:]


def _unset_path(row: dict[str, Any], parts: list[str | int]) -> None:
    node = _walk(row, parts[:-1])
    idx = _index(node, parts[-1])
    if isinstance(node, dict):
        node.pop(str(parts[-1]), None)
    elif idx is not None and idx < len(node):
        node[idx] = None


def update_change(before: dict[str, Any] | None, patch: dict[str, Any]) -> dict[str, Any]:
    """An update's op and data: where it carries the pre-image (``before``, the whole document
    just before it), the document the update left, whole (an ``upsert``); else the patch."""
    if before is None:
        return {"op": "patch", "data": dumps_exact(patch)}
    document = copy.deepcopy(before)
    apply_update(document, patch)
    return {"op": "upsert", "data": dumps_exact(document)}


def apply_update(document: dict[str, Any], patch: dict[str, Any]) -> None:
    """An update as ``update_patch`` writes it applied to a document, in place, as MongoDB applies
    it: the arrays of ``$truncate`` cut to their sizes, then ``$set``, then ``$unset``; a path's
    parts are ``path_parts``."""
    for path, size in (patch.get("$truncate") or {}).items():
        _truncate_path(document, path_parts(patch, path), int(size))
    for path, value in (patch.get("$set") or {}).items():
        _set_path(document, path_parts(patch, path), value)
    for path in patch.get("$unset") or []:
        _unset_path(document, path_parts(patch, path))


def path_parts(patch: dict[str, Any], path: str) -> list[str | int]:
    """The parts of a path of an update as ``update_patch`` writes it: its ``$paths`` entry
    (disambiguatedPaths) where it has one, else its dots."""
    given = patch.get("$paths")
    parts = given.get(path) if isinstance(given, dict) else None
    return list(parts) if isinstance(parts, list) and parts else list(path.split("."))


def _member(block: dict[str, Any], name: str, default: Any) -> Any:
    value = block.get(name)
    return default if value is None else value


def _cluster_time(value: Any) -> tuple[int, int] | None:
    """(seconds, increment) of a BSON timestamp, ``{"$timestamp": {"t": ..., "i": ...}}``."""
    if value is None:
        return None
    inner = value.get("$timestamp", value) if isinstance(value, dict) else {}
    seconds = _integer(inner.get("t")) if isinstance(inner, dict) else None
    increment = _integer(inner.get("i")) if isinstance(inner, dict) else None
    if seconds is None or increment is None:
        raise ValueError(f"clusterTime {dumps_exact(value)} is not a BSON timestamp")
    return seconds, increment


def _integer(value: Any) -> int | None:
    """An integer, plain or as canonical extended JSON (``{"$numberLong": "3"}``)."""
    if isinstance(value, dict):
        text = unwrap_number(value, INTEGER_TYPES)
        return int(text) if isinstance(text, str) and re.fullmatch(r"-?[0-9]+", text) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _date(value: Any, member: str) -> int:
    """Microseconds of an extended JSON date: ISO text, or milliseconds (plain or ``$numberLong``)."""
    inner = value.get("$date") if isinstance(value, dict) else value
    try:
        if isinstance(inner, str):
            return parse_ts(inner)
        millis = _integer(inner)
        if millis is not None:
            return parse_ts(millis, "ms")
    except ValueError as e:
        raise ValueError(f"{member}: {e}") from None
    raise ValueError(f"{member} {dumps_exact(value)} is not a date")


def _txn(record: dict[str, Any], position: str | None, ts: int | None) -> dict[str, Any] | None:
    if record.get("txnNumber") is None:
        return None
    number = _integer(record["txnNumber"])
    if number is None:
        raise ValueError(f"txnNumber {dumps_exact(record['txnNumber'])} is not an integer")
    lsid = record.get("lsid")
    session = _session(lsid.get("id")) if isinstance(lsid, dict) else None
    ident = str(number) if session is None else f"{session}:{number}"
    return {"id": ident, "position": position, "ts": ts, "aborted": None}


def _session(ident: Any) -> str | None:
    """A session id (a UUID, as ``$binary`` or ``$uuid``) as text."""
    if ident is None:
        return None
    if isinstance(ident, dict):
        inner = ident.get("$binary", ident.get("$uuid"))
        if isinstance(inner, dict) and isinstance(inner.get("base64"), str):
            return str(inner["base64"])
        if isinstance(inner, str):
            return inner
    return dumps_exact(ident)


def _read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    check_mapping_for(NAME, mapping, set())

    def decode(record: Any, where: dict[str, Any]) -> list[Event]:
        if isinstance(record, dict) and record.get("operationType") == "invalidate":
            return []  # the stream ended there (after a drop or rename): nothing to apply
        return [_decode(record, where)]

    yield from read_json_lines(source, mapping, report, NAME, decode)


def _classify(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("operationType"), str)
        and any(m in value for m in ("ns", "documentKey", "clusterTime"))
    )


def _sniff(head: bytes) -> int:
    return 90 if sniff_lines(head, _classify) else 0


FORMAT = Format(
    name=NAME,
    description="MongoDB change stream events (extended JSON lines)",
    sniff=_sniff,
    read=_read,
)
