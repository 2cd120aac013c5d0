"""CloudEvents 1.0 in the JSON event format: structured mode (one event object a line) and batch
mode (a JSON array of events: one a line, or a whole file, pretty-printed or not).

- ``op`` is ``event``; ``type`` is the CloudEvents ``type``.
- ``entity`` is ``source``, the context the event happened in (``/shop/orders``), and ``key`` is
  ``subject``, the thing in that context it is about (``order-1042``): together they name one
  aggregate, whose events keep one entity whatever their types. No subject: a null key.
- ``ts`` is ``time``; an event without one gets the ingest time.
- ``data`` is ``data`` as JSON (a string stays a JSON string: it is not parsed again);
  ``data_base64`` is kept as its base64 text, a JSON string, with ``meta.data_base64`` true.
- ``meta`` holds every other attribute: ``id``, ``source``, ``specversion``, ``datacontenttype``,
  ``dataschema`` and the extensions.
- ``source.position`` is the ``sequence`` extension where the producer sets one.
- Line numbers of a pretty-printed batch are those of each event's first line.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import counted
from . import Format
from .base import (
    BadRecord,
    Event,
    Mapping,
    Report,
    Source,
    check_mapping_for,
    dumps_exact,
    iter_lines,
    json_or_none,
    key_text,
    kind_of,
    parse_ts,
    read_records,
    sniff_lines,
)

if TYPE_CHECKING:
    import pyarrow as pa

NAME = "cloudevents"

_REQUIRED = ("specversion", "id", "source", "type")
_NOT_META = ("type", "subject", "time", "data", "data_base64")
# The first line of pretty-printed JSON: an array or object opened and left open.
_OPENING = re.compile(r"\[?\s*\{?")
_STRUCTURE = re.compile(r'[\\"{}\[\],]')


def _event(value: Any, where: dict[str, Any]) -> Event:
    if not isinstance(value, dict):
        raise ValueError(f"a CloudEvent is a JSON object, not {kind_of(value)}")
    missing = [a for a in _REQUIRED if value.get(a) is None]
    if missing:
        raise ValueError(f"not a CloudEvent: no {', '.join(missing)}")
    for attribute in _REQUIRED:
        if not isinstance(value[attribute], str) or not value[attribute]:
            raise ValueError(f"{attribute} is {kind_of(value[attribute])}, not a non-empty string")
    if value.get("data") is not None and value.get("data_base64") is not None:
        raise ValueError("an event has data or data_base64, not both")
    ts = None
    if value.get("time") is not None:
        try:
            ts = parse_ts(value["time"])
        except ValueError as e:
            raise ValueError(f"time: {e}") from None
    meta = {k: v for k, v in value.items() if k not in _NOT_META}
    data = json_or_none(value.get("data"))
    if value.get("data_base64") is not None:
        encoded = value["data_base64"]
        try:
            base64.b64decode(encoded, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise ValueError("data_base64 is not base64") from None
        data, meta["data_base64"] = dumps_exact(encoded), True
    subject, sequence = value.get("subject"), value.get("sequence")
    return {
        "ts": ts,
        "entity": value["source"],
        "key": None if subject is None else key_text([subject], ("subject",)),
        "op": "event",
        "type": value["type"],
        "data": data,
        "meta": dumps_exact(meta),
        "source": {**where, "position": None if sequence is None else str(sequence)},
    }


def _values(lines: Iterable[tuple[int, str]], source: Source, report: Report, limit: int) -> Iterator[tuple[int, str]]:
    """Split pretty-printed JSON into (first line, text) values, a top-level array into its
    elements, by following brackets outside strings. A value is parsed later, on its own, so a
    broken one costs only itself (unless it leaves a bracket or quote open)."""
    depth, in_string, array = 0, False, False
    parts: list[str] = []
    first: int | None = None  # line of the current value's first character
    opened = 0  # line of the current top-level value's opening bracket
    size, dropped = 0, False

    def take(piece: str, line: int) -> None:
        nonlocal first, size, dropped
        if first is None and piece.strip():
            first = line
        size += len(piece)
        if size > limit and not dropped:
            report(BadRecord(source.name, first or line, f"value longer than the limit of {counted(limit, 'byte')}", b""))
            dropped = True
        if not dropped:
            parts.append(piece)

    def stray(text: str, line: int) -> None:
        if text.strip(" \t\r\n,"):
            report(BadRecord(source.name, line, "text outside any JSON value", text.strip().encode()))

    for line, text in lines:
        text += "\n"
        begin, skip = 0, -1
        for m in _STRUCTURE.finditer(text):
            at, char = m.start(), m.group()
            complete = False
            if at == skip:
                continue
            if in_string:
                if char == "\\":
                    skip = at + 1
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char in "{[":
                if depth == 0:
                    stray(text[begin:at], line)
                    array, opened = char == "[", line
                    begin = at + 1 if array else at
                depth += 1
            elif char in "}]" and depth == 0:
                stray(text[begin : at + 1], line)
                begin = at + 1
            elif char in "}]":
                depth -= 1
                if depth == 0:
                    take(text[begin : at if array else at + 1], line)
                    begin, complete = at + 1, True
            elif char == "," and depth == 1 and array:
                take(text[begin:at], line)
                begin, complete = at + 1, True
            if complete:
                if first is not None and not dropped:
                    yield first, "".join(parts).strip()
                parts, first, size, dropped = [], None, 0, False
        if depth > 0:
            take(text[begin:], line)
        else:
            stray(text[begin:], line)
    if depth > 0:
        raw = "".join(parts).encode()[:4096]
        report(BadRecord(source.name, first or opened, "JSON value not closed at the end of the file", raw))


def _read(source: Source, mapping: Mapping, report: Report) -> Iterator[pa.RecordBatch]:
    check_mapping_for(NAME, mapping, set())

    def decode(value: Any, where: dict[str, Any]) -> list[Event]:
        if not isinstance(value, list):
            return [_event(value, where)]
        events = []
        for i, item in enumerate(value):
            try:
                events.append(_event(item, where))
            except ValueError as e:
                report(BadRecord(source.name, where["line"], f"batch element {i}: {e}", dumps_exact(item).encode()))
        return events

    with source.open() as stream:
        lines: Iterator[tuple[int, str]] = iter_lines(stream, source, report, mapping.max_line_bytes)
        head = next(lines, None)
        records: Iterable[tuple[int, str]] = []
        if head is not None:
            lines = itertools.chain([head], lines)
            pretty = _OPENING.fullmatch(head[1].strip())
            records = _values(lines, source, report, mapping.max_line_bytes) if pretty else lines
        yield from read_records(records, source, report, NAME, decode)


def _classify(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_classify(v) for v in value)
    return isinstance(value, dict) and all(isinstance(value.get(a), str) for a in _REQUIRED)


def _sniff(head: bytes) -> int:
    text = head.decode("utf-8", "replace")
    opening = next((t.strip() for t in text.splitlines() if t.strip()), "")
    if _OPENING.fullmatch(opening):
        window = text[:16384]
        found = all(re.search(rf'"{a}"\s*:\s*"', window) for a in _REQUIRED)
        return 90 if found else 0
    return 90 if sniff_lines(head, _classify) else 0


FORMAT = Format(
    name=NAME,
    description="CloudEvents 1.0, JSON event format: structured (one event a line) or batch (JSON arrays)",
    sniff=_sniff,
    read=_read,
)
