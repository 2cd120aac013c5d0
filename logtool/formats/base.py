"""What every format reader shares: the field mapping, bad-record reports, input sources,
vectorized line splitting, exact JSON, and building canonical record batches."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import re
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from ..errors import InputError, UsageError, counted
from ..schema import OPS

if TYPE_CHECKING:
    import pyarrow as pa

BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark
_TOO_DEEP = "nested deeper than Python can follow"
DEFAULT_MAX_LINE_BYTES = 64 << 20
CHUNK_BYTES = 32 << 20
BATCH_ROWS = 65536


@dataclass(frozen=True)
class Mapping:
    """How the fields of a generic record map to the event schema (the ingest options)."""

    key_fields: tuple[str, ...] = ()
    entity_field: str | None = None
    entity: str | None = None
    op_field: str | None = None
    type_field: str | None = None
    ts_field: str | None = None
    ts_unit: str | None = None  # s|ms|us|ns, for epoch numbers
    data_field: str | None = None
    meta_fields: tuple[str, ...] = ()
    offset_field: str | None = None
    prev_key_field: str | None = None  # the key before this event, where the event changed it
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES

    def __post_init__(self) -> None:
        """Options that contradict each other, or would be silently ignored, are usage errors."""
        if self.entity is not None and self.entity_field is not None:
            raise UsageError("give --entity NAME or --entity-field FIELD, not both")
        # a meta field given twice is one field (its member would be written twice)
        object.__setattr__(self, "meta_fields", tuple(dict.fromkeys(self.meta_fields)))
        repeated = [k for k in dict.fromkeys(self.key_fields) if self.key_fields.count(k) > 1]
        if repeated:
            raise UsageError(f"--key-field {repeated[0]} is given twice")
        if self.ts_unit is not None and self.ts_field is None:
            raise UsageError("--ts-unit reads the numbers of --ts-field: name the field too")

    def mapped_fields(self, entity: str | None = None) -> list[str]:
        """Fields that are taken out of a record of ``entity`` (the default data is what is left):
        its key fields (``keys_for``; without an entity, the ones for every entity) and the others
        mapped. A key field of another entity stays in the data."""
        keys = self.keys_for(entity) if entity is not None else tuple(k for k in self.key_fields if ":" not in k)
        names = [*keys, self.entity_field, self.op_field, self.type_field, self.ts_field]
        names += [*self.meta_fields, self.offset_field, self.prev_key_field]
        return [n for n in dict.fromkeys(names) if n]

    def keys_for(self, entity: str) -> tuple[str, ...]:
        """Key fields for an entity: ``FIELD`` applies to every entity, ``ENTITY:FIELD`` to one
        (named in full, ``public.customers``, or by its last part, ``customers``)."""
        return self.scoped_keys_for(entity) or tuple(k for k in self.key_fields if ":" not in k)

    def scoped_keys_for(self, entity: str) -> tuple[str, ...]:
        """The key fields given for this entity by name (``ENTITY:FIELD``), not those for every entity."""
        names = entity_names(entity)
        return tuple(k.split(":", 1)[1] for k in self.key_fields if ":" in k and k.split(":", 1)[0] in names)

    def default_entity(self, source: Source) -> str:
        return self.entity or file_entity(source.name)


# what a file name ends with that is no part of the entity it names: its format, its compression,
# a rotation's date (orders.2026-03-01.jsonl; logrotate's orders.jsonl-20260301) or, last of all,
# its number (orders.jsonl.1)
_FORMATS = (".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".psv", ".txt", ".parquet")
_EXTENSIONS = (*_FORMATS, ".gz", ".zst", ".zstd")
_DAY = r"(0[1-9]|[12][0-9]|3[01])([T_\-]?[0-2][0-9](:?[0-5][0-9](:?[0-5][0-9])?)?Z?)?"
# 2026-03, 2026-03-01, 20260301 (with a time after the day): not 200001, which may well be an id
_DATE = re.compile(rf"[.\-_](19|20)[0-9]{{2}}(-(0[1-9]|1[0-2])(-{_DAY})?|(0[1-9]|1[0-2]){_DAY})$")
# a rotation's number, right after an extension (a log's too: app.log.1 is app.log)
_NUMBER = re.compile("(" + "|".join(re.escape(e) for e in (*_EXTENSIONS, ".log")) + r")\.[0-9]{1,3}$", re.IGNORECASE)


def file_entity(name: str) -> str:
    """The entity of a file's records where the mapping names none: the file's name without its
    format and compression extensions and a rotation stamp (public.customers.jsonl.gz is
    public.customers, orders.2026-03-01.jsonl is orders)."""
    stem = Path(name).name
    named = False  # a format extension came off: what is left is the name (audit.log.1 stays)
    while True:
        cut = stem if named else _NUMBER.sub(r"\1", stem)
        if ext := next((e for e in _EXTENSIONS if cut.lower().endswith(e)), ""):
            cut = cut[: -len(ext)]
            named = named or ext in _FORMATS
        cut = _DATE.sub("", cut)
        if cut == stem:
            break
        stem = cut
    return stem.strip(".") or "events"


def entity_names(entity: str) -> list[str]:
    """The names an `ENTITY:FIELD` key may give an entity: in full, by its last part, and a quoted
    part quoted or not (public."a.b", public.a.b, "a.b" or a.b)."""
    parts = name_parts(entity)
    return list(dict.fromkeys([entity, parts[-1], ".".join(parts), qualified_name(parts[-1])]))


@dataclass
class BadRecord:
    """A record that could not be read: where it is, why, and its raw bytes (for quarantine)."""

    file: str
    line: int | None
    reason: str
    raw: bytes = b""
    hint: str | None = None  # what to do about it, where the record's kind has its own advice


Report = Callable[[BadRecord], None]


# --------------------------------------------------------------------------- sources


HEAD_BYTES = 65536  # what format detection reads first


class Source:
    """One input: a path (plain, .gz or .zst) or '-' for stdin. Hashes its bytes as they are read."""

    def __init__(self, spec: str) -> None:
        self.name = "<stdin>" if spec == "-" else spec
        self.spec = spec
        self._sha = hashlib.sha256()
        self.bytes_read = 0
        self.mapped = False  # read through the field mapping: the flags below say what its records held
        self.data_field_seen = False  # a record held the mapping's data field (null or not)
        self.type_field_seen = False  # a record had a type in the mapping's type field
        self.domain_events_seen = False  # (until one had) a record was a domain event (op `event`)
        self.meta_fields_seen: set[str] = set()  # the mapping's meta fields some record held (null or not)
        self.notes: list[str] = []  # what a reader passed over that a person should hear of
        # what the store the input goes into holds, for a reader to ask (None: no store): of some
        # Kafka topics, the entity of the Debezium changes earlier ingests read from each, and
        # whether they came from the MongoDB connector
        self.store_topics: Callable[[list[str]], dict[str, tuple[str, bool]]] | None = None
        # and the entities whose rows (since their last truncate) went in without a key, some or
        # all, and those of which some went in keyed
        self.store_keys: Callable[[], tuple[set[str], set[str]]] | None = None
        # ... and the names of the record key schemas of the Debezium changes earlier ingests of
        # keyed dumps read, each with its changes' entity and whether they came from the MongoDB connector
        self.store_key_names: Callable[[], list[tuple[str, str, bool]]] | None = None
        self.lone_surrogates = False  # a lone surrogate was read as U+FFFD (said once, in notes)
        # the entity its file name gives the records, where the mapping names none: a hint that
        # reads the content from stdin names it, as stdin has no name to give one
        self.named_entity: str | None = None
        self.bom = False  # the content began with a UTF-8 byte order mark (not passed on by open())
        self._stdin_head = b""
        self._stdin_done = False  # stdin ended within the head
        if spec != "-":
            path = Path(spec)
            if not path.exists():
                raise InputError(spec, None, "no such file", "check the path, or quote a glob")
            if path.is_dir():
                raise InputError(spec, None, "is a directory, not a log file", "name the files in it")
            self.size: int | None = path.stat().st_size
        else:
            self.size = None

    def note_lone_surrogate(self, line: int | None) -> None:
        """Say, once, that a lone surrogate (``replace_lone_surrogates``) was read as U+FFFD."""
        if not self.lone_surrogates:
            self.lone_surrogates = True
            where = f"{self.name}:{line}" if line is not None else self.name
            self.notes.append(
                f"{where}: a lone surrogate escape (such as \\ud83d: half a character, as JavaScript writes an "
                "emoji cut in two) is read as U+FFFD, the replacement character, as a UTF-8 encoder writes it; "
                "so is any other in the file"
            )

    @property
    def content_digest(self) -> str:
        """SHA-256 of the (decompressed) bytes read so far."""
        return self._sha.hexdigest()

    def whole_digest(self) -> str:
        """SHA-256 of the whole decompressed content, read through once without being parsed
        (not for stdin, which can be read only once)."""
        with self.open() as f:
            while f.read(1 << 20):
                pass
        digest = self.content_digest
        self._restart()
        return digest

    def _restart(self) -> None:
        """Forget what was read (and hashed): the next open() reads the content from its start."""
        self._sha = hashlib.sha256()
        self.bytes_read = 0

    def open(self) -> IO[bytes]:
        """A binary stream of the decompressed content, hashed as it is read."""
        raw: IO[bytes]
        if self.spec == "-":
            # stdin can be read once: what head() took for sniffing is replayed first
            raw = io.BufferedReader(_Chain(self._stdin_head, sys.stdin.buffer), 1 << 20)
        else:
            raw = open(self.spec, "rb")  # noqa: SIM115
        head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
        stream: IO[bytes]
        cat = None  # the tool that decompresses it to stdout
        if head[:2] == b"\x1f\x8b":
            stream, cat = gzip.GzipFile(fileobj=raw), "zcat"  # type: ignore[assignment]
        elif head == b"\x28\xb5\x2f\xfd":
            stream, cat = _ZstdFrames(raw), "zstdcat"  # type: ignore[assignment]
        else:
            stream = raw
        return cast(IO[bytes], _HashingReader(stream, self, cat))

    def head(self, n: int = HEAD_BYTES) -> bytes:
        """The first n decompressed bytes, for sniffing (stdin keeps them for open())."""
        if self.spec == "-":
            if len(self._stdin_head) < n and not self._stdin_done:
                more = sys.stdin.buffer.read(n - len(self._stdin_head))
                self._stdin_done = len(more) < n - len(self._stdin_head)
                self._stdin_head += more
            raw = self._stdin_head
            if raw[:2] == b"\x1f\x8b":
                raw = zlib.decompressobj(31).decompress(raw, n)
            elif raw[:4] == b"\x28\xb5\x2f\xfd":
                import zstandard

                raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)[:n]
            return raw.removeprefix(BOM)
        with self.open() as f:
            data = f.read(n)
        self._restart()
        return data


def check_fields_seen(source: Source, mapping: Mapping, events: int) -> None:
    """Refuse a file read through the field mapping whose records show a field named wrong: no
    record has the data field at all (every event would be a tombstone), but for domain events
    (``--type-field``), which may carry no body; or, of a file of domain events, no record has a
    type in the type field. ``events``: how many events the file gave (none: nothing to judge by).
    Every reader of a file through the mapping (ingest; compact, purge and redact of a raw file)
    checks this before it writes anything. A meta field no record has is only noted (``notes``):
    a file may lack what others have."""
    if not source.mapped or not events:
        return
    for name in mapping.meta_fields:
        if name not in source.meta_fields_seen:
            source.notes.append(f"{source.name}: no record has the meta field {name!r}: its events' meta lack it "
                                "(check --meta-field if it should be there)")  # fmt: skip
    if mapping.data_field and not mapping.type_field and not source.data_field_seen:
        raise InputError(
            source.name, None,
            f"no record has the data field {mapping.data_field!r}: every event would be a tombstone",
            "check --data-field (it names the field that holds the row; a null there is a tombstone)",
        )  # fmt: skip
    if mapping.type_field and source.domain_events_seen and not source.type_field_seen:
        raise InputError(
            source.name, None,
            f"no record has a type in the field {mapping.type_field!r}: no event would be a domain event",
            "check --type-field (it names the field that holds the event's type, e.g. event_type)",
        )  # fmt: skip


def fields_seen(source: Source, mapping: Mapping) -> bool:
    """Whether what was read so far settles ``check_fields_seen``: a record held the field it
    looks for (a reader may stop there)."""
    if mapping.type_field:
        return source.type_field_seen
    return not mapping.data_field or source.data_field_seen


class _Chain(io.RawIOBase):
    """Bytes already taken from a stream, then the rest of it."""

    def __init__(self, first: bytes, rest: IO[bytes]) -> None:
        self._first = first
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._first:
            n = min(len(buffer), len(self._first))
            buffer[:n] = self._first[:n]
            self._first = self._first[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _ZstdFrames(io.RawIOBase):
    """The content of zstd frames written one after another (as ``cat a.zst b.zst`` leaves
    them). Input that ends inside a frame is an error: a file cut short must not read as whole."""

    _CHUNK = 1 << 16  # compressed bytes taken at a time: what one read can expand to stays bounded

    def __init__(self, raw: IO[bytes]) -> None:
        import zstandard

        self._raw = raw
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._frame: Any = None  # the frame being decompressed (None before the first)
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            data = self._raw.read(self._CHUNK)
            if not data:
                if self._frame is not None and not self._frame.eof:
                    raise EOFError("the zstd data ends inside a frame")
                return 0
            parts = []
            while data:
                if self._frame is None or self._frame.eof:
                    self._frame = self._new()
                parts.append(self._frame.decompress(data))
                data = self._frame.unused_data if self._frame.eof else b""
            self._out = b"".join(parts)
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _HashingReader(io.RawIOBase):
    """The decompressed content, hashed as it is read; a UTF-8 byte order mark at its start
    (as some Windows tools write) is hashed but not passed on: it is no part of the first record."""

    def __init__(self, inner: IO[bytes], source: Source, cat: str | None = None) -> None:
        self._inner = inner
        self._source = source
        self._cat = cat  # for compressed content: the tool that decompresses it, for a hint
        self._at_start = True

    def readable(self) -> bool:
        return True

    def _read(self, n: int) -> bytes:
        try:
            data = self._inner.read(n)
        except Exception as e:
            damaged = type(e).__name__ == "ZstdError" or isinstance(e, (EOFError, gzip.BadGzipFile, zlib.error))
            if self._cat is None or not damaged:
                raise
            # the decompressor's own words name the damage; the bytes before it can still be had
            import shlex

            name, entity = self._source.name, self._source.named_entity
            options = f" --entity {shlex.quote(entity)}" if entity is not None else ""
            how = (f"by piping the same stream through `{self._cat}` into `logtool ingest STORE - --entity NAME ...`"
                   if self._source.spec == "-" else
                   f"with `{self._cat} {shlex.quote(name)} | logtool ingest STORE -{options} ...`")  # fmt: skip
            raise InputError(
                name, None, f"the compressed data is damaged or cut short ({e})",
                f"the records before the damage can be read {how}",
            ) from None  # fmt: skip
        self._source._sha.update(data)
        self._source.bytes_read += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        data = self._read(n)
        if self._at_start and data:
            self._at_start = False
            while len(data) < len(BOM) and BOM.startswith(data) and (more := self._read(n)):
                data += more
            self._source.bom = data.startswith(BOM)
            data = data.removeprefix(BOM)
            if not data:  # nothing but the mark so far: the caller must not take that for the end
                return self.read(n)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._source.spec != "-":
            self._inner.close()
        super().close()


# --------------------------------------------------------------------------- lines


def iter_line_chunks(
    stream: IO[bytes],
    source: Source,
    report: Report,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    undecodable: dict[int, bytes] | None = None,
) -> Iterator[tuple[int, pa.Array]]:
    """Split a byte stream into lines, vectorized: yields (first line number, StringArray).

    Each element keeps its trailing newline; lines are numbered from 1. Invalid UTF-8 and
    oversized lines (over ``max_line_bytes`` without their line break) are reported and replaced
    by an empty string (so numbering stays exact). Given ``undecodable``, a line that is not UTF-8
    is not reported: its bytes are put there under its number before its chunk is yielded, for a
    reader to which some such lines are good (see ``lossless_line``).
    """
    import numpy as np
    import pyarrow as pa

    carry = b""
    line_no = 1
    skipping = False  # inside an oversized line, dropping bytes up to its newline
    while True:
        block = stream.read(CHUNK_BYTES)
        if not block:
            if carry and not skipping:
                if len(carry) > max_line_bytes:
                    report(BadRecord(source.name, line_no, _oversized(len(carry), max_line_bytes), carry[:4096]))
                    carry = b""
                yield line_no, _decode(pa.array([carry], pa.binary()), line_no, source, report, undecodable)
            return
        buf = carry + block if carry else block
        newlines = np.flatnonzero(np.frombuffer(buf, np.uint8) == 10)
        if skipping:
            if len(newlines) == 0:
                carry = b""
                continue
            buf = buf[int(newlines[0]) + 1 :]
            newlines = newlines[1:] - (int(newlines[0]) + 1)
            skipping = False
            yield line_no, pa.array([""], pa.string())  # the oversized line, already reported
            line_no += 1
        if len(newlines) == 0:
            carry = buf
            if len(carry) > max_line_bytes:
                report(BadRecord(source.name, line_no, _oversized(len(carry), max_line_bytes), carry[:4096]))
                carry, skipping = b"", True
            continue
        end = int(newlines[-1]) + 1
        offsets = np.concatenate([[0], newlines + 1]).astype(np.int64)
        # the limit is on a line without its line break (\n or \r\n)
        before = np.frombuffer(buf, np.uint8)[np.maximum(newlines - 1, 0)]
        lengths = np.diff(offsets) - 1 - ((before == 13) & (newlines > offsets[:-1]))
        arr = pa.Array.from_buffers(pa.large_binary(), len(newlines), [None, pa.py_buffer(offsets), pa.py_buffer(buf)])
        if lengths.max() > max_line_bytes:
            import pyarrow.compute as pc

            for i in np.flatnonzero(lengths > max_line_bytes):
                start, stop = int(offsets[i]), int(offsets[i + 1])
                raw = buf[start:stop].rstrip(b"\r\n")
                report(BadRecord(source.name, line_no + int(i), _oversized(int(lengths[i]), max_line_bytes), raw))
            keep = pa.array(lengths <= max_line_bytes)
            arr = pc.if_else(keep, arr, pa.scalar(b"", pa.large_binary()))
        yield line_no, _decode(arr, line_no, source, report, undecodable)
        line_no += len(newlines)
        carry = buf[end:]


def _oversized(n: int, limit: int) -> str:
    return f"line of {counted(n, 'byte')} is longer than the limit of {counted(limit, 'byte')} (ingest takes --max-line-bytes to raise it)"


def not_utf8(where: str) -> str:
    """Why a record is bad when it is not UTF-8 (``where``: "at byte 7"), and what to do."""
    return f"invalid UTF-8 {where} (a file in another encoding can be converted with iconv)"


def _decode(
    arr: pa.Array, first: int, source: Source, report: Report, undecodable: dict[int, bytes] | None = None
) -> pa.Array:
    import pyarrow as pa

    try:
        return arr.cast(pa.large_string()).cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowCapacityError):
        pass
    out: list[str] = []
    for i, raw in enumerate(arr.to_pylist()):
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            if undecodable is not None:
                undecodable[first + i] = raw
            else:
                report(BadRecord(source.name, first + i, not_utf8(f"at byte {e.start}"), raw))
            out.append("")
    return pa.array(out, pa.large_string()).cast(pa.string())


def iter_each_line(
    stream: IO[bytes], source: Source, report: Report, max_line_bytes: int, lossless: bool = False
) -> Iterator[tuple[int, str]]:
    """(line number, text with its newline) for every line.

    With ``lossless``, a line that is not UTF-8 is not reported but yielded as ``lossless_line``
    decodes it: the reader says which of its values may be bytes (``undecoded``)."""
    undecodable: dict[int, bytes] | None = {} if lossless else None
    for first, arr in iter_line_chunks(stream, source, report, max_line_bytes, undecodable):
        for i, text in enumerate(arr.to_pylist()):
            if undecodable and (raw := undecodable.pop(first + i, None)) is not None:
                text = lossless_line(raw)
            yield first + i, text


def iter_lines(
    stream: IO[bytes], source: Source, report: Report, max_line_bytes: int, lossless: bool = False
) -> Iterator[tuple[int, str]]:
    """(line number, text without its newline) for every non-blank line: for per-record readers
    (``lossless`` as for ``iter_each_line``)."""
    for number, text in iter_each_line(stream, source, report, max_line_bytes, lossless):
        text = text.rstrip("\r\n")
        if text.strip():
            yield number, text


def lossless_line(raw: bytes) -> str:
    """Bytes that are not all UTF-8 as text that keeps every byte: each byte that is not UTF-8
    becomes a lone surrogate (U+DC80..U+DCFF), which no UTF-8 text holds. Such text cannot go
    into the store: ``undecoded`` finds it, ``raw_bytes`` gives the bytes back."""
    return raw.decode("utf-8", "surrogateescape")


_UNDECODED = re.compile("[\udc80-\udcff]")


def undecoded(text: str) -> int | None:
    """Where (in bytes) the first byte that is not UTF-8 is in text ``lossless_line`` gave, or
    None where there is none."""
    if text.isascii() or (m := _UNDECODED.search(text)) is None:
        return None
    return len(raw_bytes(text[: m.start()]))


def raw_bytes(text: str) -> bytes:
    """The bytes of a text, also of one ``lossless_line`` gave (for reports: quarantine keeps them)."""
    return text.encode("utf-8", "surrogateescape")


def type_holds(typ: pa.DataType, test: Callable[[pa.DataType], bool]) -> bool:
    """The type, or a list, struct or map type (however nested) holding one, passes the test."""
    import pyarrow as pa

    if test(typ):
        return True
    if pa.types.is_struct(typ):
        return any(type_holds(typ.field(i).type, test) for i in range(typ.num_fields))
    if pa.types.is_map(typ):
        return type_holds(typ.key_type, test) or type_holds(typ.item_type, test)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return type_holds(typ.value_type, test)
    return False


# --------------------------------------------------------------------------- exact JSON


class RawJSON(str):
    """JSON text written out verbatim by dumps_exact (already-serialized values)."""

    __slots__ = ()


class RawNumber(RawJSON):
    """A JSON number kept as its source text, so no value passes through float64."""

    __slots__ = ()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# -0 stays RawNumber: as an int it would be written back as 0
_DECODER = json.JSONDecoder(
    parse_float=RawNumber,
    parse_int=lambda text: RawNumber(text) if text == "-0" else int(text),
    parse_constant=_no_constant,
)


# A JSON string escape: a surrogate pair (two escapes, one character), a lone surrogate (half a
# character), or any other (an escaped backslash too, so that "\\ud83d" is no escape of one).
_ESCAPE = re.compile(r"\\(?:u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|(u[dD][89a-fA-F][0-9a-fA-F]{2})|.)")
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
SURROGATE = re.compile("[\ud800-\udfff]")  # a surrogate, in text (half a UTF-16 pair: no character of UTF-8)


def replace_lone_surrogates(text: str) -> str:
    """JSON text with each lone surrogate escape (``\\ud83d`` without its other half: JavaScript's
    JSON.stringify writes one for a string cut inside an emoji) written ``\\ufffd``, as a UTF-8
    encoder writes such half a character: no UTF-8 text (nor Arrow, nor DuckDB) can hold it. Every
    other byte stays as it is; text without one is returned as it is."""
    if "\\u" not in text or not _MAYBE_SURROGATE.search(text):
        return text
    return _ESCAPE.sub(lambda m: "\\ufffd" if m.group(1) else m.group(0), text)


def loads_exact(text: str) -> Any:
    """Parse JSON keeping every number exact (integers as int, other numbers and -0 as RawNumber).
    Raises ValueError where the text is not JSON, or nests deeper than Python can follow."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None


def raw_decode_exact(text: str, index: int = 0) -> tuple[Any, int]:
    """Parse one JSON value starting at ``index`` (numbers exact); returns it and where it ends.
    Raises ValueError as ``loads_exact`` does."""
    try:
        return _DECODER.raw_decode(text, index)
    except RecursionError:
        raise ValueError(_TOO_DEEP) from None


_WS = re.compile(r"[ \t\n\r]*")


def object_members(text: str, wanted: set[str] | None = None) -> list[tuple[str, int, int, int]]:
    """The top-level members of a JSON object as ``(name, name_start, value_start, value_end)``
    offsets into ``text``, so a member's value can be cut out byte for byte. With ``wanted``,
    stops once those members are found. Raises ValueError if ``text`` is not one JSON object."""
    from json.decoder import scanstring  # type: ignore[attr-defined]

    n = len(text)
    space = " \t\n\r"

    def skip(pos: int) -> int:
        while pos < n and text[pos] in space:
            pos += 1
        return pos

    pos = skip(0)
    if pos >= n or text[pos] != "{":
        raise ValueError("not a JSON object")
    pos = skip(pos + 1)
    members: list[tuple[str, int, int, int]] = []
    missing = set(wanted) if wanted is not None else None
    if pos < n and text[pos] == "}":
        end = pos + 1
    else:
        while True:
            if pos >= n or text[pos] != '"':
                raise ValueError(f"expected a member name at character {pos}")
            name_start = pos
            name, pos = scanstring(text, pos + 1)
            pos = skip(pos)
            if pos >= n or text[pos] != ":":
                raise ValueError(f"expected ':' at character {pos}")
            value_start = skip(pos + 1)
            _value, value_end = raw_decode_exact(text, value_start)
            members.append((name, name_start, value_start, value_end))
            if missing is not None:
                missing.discard(name)
                if not missing:
                    return members
            pos = skip(value_end)
            if pos < n and text[pos] == ",":
                pos = skip(pos + 1)
                continue
            if pos >= n or text[pos] != "}":
                raise ValueError(f"expected ',' or '}}' at character {pos}")
            end = pos + 1
            break
    if text[end:].strip():
        raise ValueError(f"extra data after the object at character {end}")
    return members


def dumps_exact(value: Any) -> str:
    """Serialize what loads_exact gave back, compactly, numbers as written, unicode unescaped."""
    kind = type(value)  # the commonest first, by exact type
    if kind is str:
        return json_string(value)
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, RawJSON):
        return str(value)
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, dict):
        return "{" + ",".join(json_string(str(k)) + ":" + dumps_exact(v) for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(map(dumps_exact, value)) + "]"
    return json.dumps(value, ensure_ascii=False)


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
# Every character a JSON string escapes, as DuckDB escapes it: short forms, else upper-case \u00XX.
_ESCAPES = str.maketrans(
    {chr(i): _SHORT_ESCAPES.get(chr(i), f"\\u{i:04X}") for i in range(32)}
    | {'"': _SHORT_ESCAPES['"'], "\\": _SHORT_ESCAPES["\\"]}
)


def json_string(text: str) -> str:
    """A JSON string as DuckDB writes one: UTF-8 as is, control characters as upper-case \\u00XX."""
    out: str = json.encoder.encode_basestring(text)  # json.dumps(text, ensure_ascii=False), without its set-up
    # It writes \u00xx in lower case; "\u" is in its text only for those (or a literal backslash-u).
    return out if "\\u" not in out else '"' + text.translate(_ESCAPES) + '"'


def json_or_none(value: Any) -> str | None:
    """JSON text of a value, or None for a missing/null value."""
    return None if value is None else dumps_exact(value)


def key_text(values: list[Any], names: tuple[str, ...] | list[str]) -> str:
    """The canonical key: a single value as text (strings bare), several as a JSON object."""
    if len(values) == 1:
        v = values[0]
        return v if isinstance(v, str) and not isinstance(v, RawNumber) else dumps_exact(v)
    return dumps_exact(dict(zip(names, values, strict=True)))


def given_key(text: str) -> str:
    """A key as a user wrote it, in the store's form: a composite key (a JSON object) compacted,
    as ``key_text`` writes it (``{"order_id": 1, "line": 2}`` is ``{"order_id":1,"line":2}``)."""
    if not text.lstrip().startswith("{"):
        return text
    try:
        value = loads_exact(text)
    except ValueError:
        return text
    return dumps_exact(value) if isinstance(value, dict) else text


# --------------------------------------------------------------------------- values


_OP_ALIASES = {
    "c": "insert", "i": "insert", "create": "insert", "created": "insert", "insert": "insert", "add": "insert",
    "u": "update", "update": "update", "updated": "update", "modify": "update",
    "upsert": "upsert", "put": "upsert", "set": "upsert",
    "patch": "patch", "merge": "patch",
    "d": "delete", "delete": "delete", "deleted": "delete", "remove": "delete", "del": "delete",
    "t": "truncate", "truncate": "truncate",
    "r": "read", "read": "read", "snapshot": "read",
    "event": "event",
}  # fmt: skip
assert set(_OP_ALIASES.values()) <= set(OPS)


def op_aliases() -> dict[str, str]:
    """Spellings of an op that generic logs use, lower-cased, mapped to the canonical op."""
    return dict(_OP_ALIASES)


def normalize_op(value: Any) -> str:
    """Map an op as a log spells it to a canonical op, or raise ValueError."""
    if not isinstance(value, str) or value.lower() not in _OP_ALIASES:
        raise ValueError(f"unknown op {value!r} (expected one of {', '.join(OPS)})")
    return _OP_ALIASES[value.lower()]


TS_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 0}
TS_UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The instants an event time may be: years 1 to 9999, as microseconds since the epoch (what
# Python's datetime, and so every reader of the store, can hold).
TS_MIN_MICROS = -62_135_596_800_000_000
TS_MAX_MICROS = 253_402_300_799_999_999


def parse_ts(value: Any, unit: str | None = None) -> int:
    """An event time as microseconds since the epoch (UTC).

    ISO-8601 strings with any offset are instants (no offset means UTC); numbers are epoch
    values in ``unit`` (default seconds). Raises ValueError if it cannot be read.
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"unparseable timestamp {value!r}")
    if isinstance(value, int | float | RawNumber) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        from decimal import Decimal, InvalidOperation

        try:
            number = Decimal(str(value))
        except InvalidOperation as e:
            raise ValueError(f"unparseable timestamp {value!r}") from e
        u = unit or "s"
        micros = int(number / 1000 if u == "ns" else number * TS_UNITS[u])
        if not TS_MIN_MICROS <= micros <= TS_MAX_MICROS:
            raise ValueError(
                f"timestamp {value!r} read as {TS_UNIT_WORDS[u]} since the epoch is out of range (years 1 to 9999)"
            )
        return micros
    if isinstance(value, str):
        text = _DATE_SPACE.sub(r"\1T", value.strip(), count=1)  # "2026-03-01 14:03" as ISO writes it
        text, _, zone = text.partition(" ")  # a zone named after the time: UTC, Europe/Lisbon
        if zone[:1] in ("+", "-"):  # or an offset written apart
            text, zone = text + zone, ""
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        # 24:00 is the end of a day: the next day's 00:00
        text, end_of_day = _END_OF_DAY.subn("T00:00:00", text)
        try:
            stamp = dt.datetime.fromisoformat(text) + dt.timedelta(days=end_of_day)
            if zone:
                if stamp.tzinfo is not None:
                    raise ValueError("an offset and a zone")
                stamp = stamp.replace(tzinfo=dt.UTC if zone.upper() in ("UTC", "GMT") else _zone(zone))
        except (ValueError, OverflowError):
            raise ValueError(f"unparseable timestamp {value!r}") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        delta = stamp - _EPOCH
        return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    raise ValueError(f"unparseable timestamp {value!r}")


def qualified_name(*parts: str) -> str:
    """An entity name from a source's name parts (``schema``, ``table``), joined by dots; a part
    that holds a dot or a double quote is quoted as PostgreSQL quotes it (``"a.b".c``), so two
    tables never share a name."""
    return ".".join('"' + p.replace('"', '""') + '"' if "." in p or '"' in p else p for p in parts)


_NAME_PART = re.compile(r'"((?:[^"]|"")*)"|([^."]*)')


def name_parts(name: str) -> list[str]:
    """The parts of an entity name ``qualified_name`` wrote, unquoted (``public."a.b"``: public, a.b)."""
    parts, i = [], 0
    while True:
        m = _NAME_PART.match(name, i)
        assert m is not None  # (the second branch matches the empty text)
        parts.append(m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2))
        i = m.end()
        if i == len(name):
            return parts
        if name[i] != ".":
            return name.split(".")  # not a name as qualified_name writes them
        i += 1


_DATE_SPACE = re.compile(r"^([+-]?\d{4,}-?\d{2}-?\d{2}) +(?=\d)")
_END_OF_DAY = re.compile(r"T24:00(:00(\.0+)?)?(?=$|[+-])")


def _zone(name: str) -> dt.tzinfo:
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


_NUMERIC = re.compile(r"-?\d+(\.\d+)?")
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_DIGITS = re.compile(r"\d+")


def position_order(position: str | None, lsn: bool = True) -> str | None:
    """A string that sorts as the source orders its positions.

    A PostgreSQL LSN ``X/Y`` is a 64-bit number in two hex halves, so it becomes 16 hex digits;
    a SQL Server LSN (``0000002b:00000d98:0002``, hex of fixed widths) sorts as its upper-case
    text; elsewhere (and everywhere with ``lsn=False``, for sources whose positions are never
    LSNs, such as Kafka's ``partition/offset``) every run of decimal digits is zero-padded.
    """
    if position is None:
        return None
    text = position.strip()
    m = _LSN.fullmatch(text) if lsn else None
    if m:
        return f"{int(m.group(1), 16):08X}{int(m.group(2), 16):08X}"
    if _SQLSERVER_LSN.fullmatch(text):
        return text.upper()
    return _DIGITS.sub(lambda d: d.group(0).lstrip("0").rjust(20, "0"), text)


_SQLSERVER_LSN = re.compile(r"[0-9A-Fa-f]{8}:[0-9A-Fa-f]{8}:[0-9A-Fa-f]{4}")


def position_kind(position: str, lsn: bool = True) -> str:
    """What kind of position a text is, to tell a user's position from the store's: ``lsn`` for
    a PostgreSQL LSN (unless ``lsn`` is false, as ``position_order``'s), else the text with each
    run of (hex) digits written ``0``: ``mysql-bin.0:0``, Kafka's ``0/0``, SQL Server's ``0:0:0``."""
    text = position.strip()
    return "lsn" if lsn and _LSN.fullmatch(text) else _NUMBER_RUN.sub("0", text)


_NUMBER_RUN = re.compile(r"[0-9A-Fa-f]*[0-9][0-9A-Fa-f]*")  # a word like "bin" has no digit: not one


# --------------------------------------------------------------------------- batches


@dataclass
class Batcher:
    """Collects events as Python values and yields canonical record batches of bounded size."""

    rows: int = BATCH_ROWS
    _cols: dict[str, list[Any]] = field(default_factory=dict)
    source: Source | None = None  # told of a lone surrogate read as U+FFFD

    def __post_init__(self) -> None:
        from ..schema import input_schema

        self._schema = input_schema()
        self._cols = {name: [] for name in self._schema.names}

    def add(
        self,
        *,
        ts: int | None,
        entity: str,
        key: str | None,
        op: str,
        data: str | None,
        source: dict[str, Any],
        type: str | None = None,
        before: str | None = None,
        meta: str | None = None,
        txn: dict[str, Any] | None = None,
        prev_key: str | None = None,
        offset: int | None = None,
    ) -> None:
        """Add one event; times are microseconds since the epoch; JSON columns are JSON text."""
        c = self._cols
        c["offset"].append(offset)
        c["ts"].append(ts)
        c["entity"].append(entity)
        c["key"].append(key)
        c["prev_key"].append(prev_key)
        c["op"].append(op)
        c["type"].append(type)
        c["data"].append(data)
        c["before"].append(before)
        c["meta"].append(meta)
        if txn is not None and "position_order" not in txn:
            txn = {**txn, "position_order": position_order(txn.get("position"))}
        c["txn"].append(txn)
        if "position_order" not in source:
            source = {**source, "position_order": position_order(source.get("position"))}
        c["source"].append(source)

    def __len__(self) -> int:
        return len(self._cols["op"])

    def full(self) -> bool:
        return len(self) >= self.rows

    def flush(self) -> pa.RecordBatch:
        """The events collected so far as one batch; the batcher starts empty again."""
        import pyarrow as pa

        try:
            batch = pa.RecordBatch.from_pydict(self._cols, schema=self._schema)
        except UnicodeEncodeError:
            # a lone surrogate a reader decoded from JSON inside a value (a document as JSON text,
            # its escape escaped): read as U+FFFD, as replace_lone_surrogates reads a record's
            if self.source is not None:
                self.source.note_lone_surrogate(None)
            batch = pa.RecordBatch.from_pydict(without_surrogates(self._cols), schema=self._schema)
        self._cols = {name: [] for name in self._schema.names}
        return batch


def without_surrogates(value: Any) -> Any:
    """A value with each surrogate in its texts (dict keys too) read as U+FFFD."""
    if isinstance(value, str):
        return SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_surrogates(v) for v in value]
    return value


def check_mapping_for(format_name: str, mapping: Mapping, allowed: set[str]) -> None:
    """Refuse field-mapping options that a self-describing format does not take."""
    given = {
        "--key-field": bool(mapping.key_fields), "--entity-field": bool(mapping.entity_field),
        "--op-field": bool(mapping.op_field), "--type-field": bool(mapping.type_field),
        "--ts-field": bool(mapping.ts_field), "--data-field": bool(mapping.data_field),
        "--meta-field": bool(mapping.meta_fields), "--prev-key-field": bool(mapping.prev_key_field),
        "--offset-field": bool(mapping.offset_field),
    }  # fmt: skip
    extra = [k for k, v in given.items() if v and k not in allowed]
    if extra:
        raise UsageError(
            f"{', '.join(extra)} does not apply to {format_name}: its records say this themselves",
            "drop the option, or pass --format jsonl to read the records as generic JSON lines",
        )


# --------------------------------------------------------------------------- records of the JSON formats

#: Keyword arguments of ``Batcher.add`` for one event.
Event = dict[str, Any]


def read_records(
    records: Iterable[tuple[int, str]],
    source: Source,
    report: Report,
    format_name: str,
    decode: Callable[[Any, dict[str, Any]], list[Event]],
) -> Iterator[pa.RecordBatch]:
    """Parse each (line, JSON text) exactly, turn it into events with ``decode(value, where)`` and
    batch them. ``where`` is the event's ``source`` column, its position still None. A record that
    does not parse, or that ``decode`` refuses with a ValueError, is reported and skipped."""
    batcher = Batcher(source=source)
    for line, text in records:
        if (readable := replace_lone_surrogates(text)) is not text:
            source.note_lone_surrogate(line)
        try:
            value = loads_exact(readable)
        except ValueError as e:
            report(BadRecord(source.name, line, f"invalid JSON: {json_error(e, line)}", text.encode()))
            continue
        where = {"format": format_name, "file": source.name, "line": line, "position": None}
        try:
            events = decode(value, where)
        except RecursionError:
            report(BadRecord(source.name, line, "nested too deeply", text.encode()))
            continue
        except ValueError as e:
            report(BadRecord(source.name, line, str(e), text.encode()))
            continue
        for event in events:
            batcher.add(**event)
        if batcher.full():
            yield batcher.flush()
    yield batcher.flush()


def read_json_lines(
    source: Source,
    mapping: Mapping,
    report: Report,
    format_name: str,
    decode: Callable[[Any, dict[str, Any]], list[Event]],
) -> Iterator[pa.RecordBatch]:
    """``read_records`` over a source of one JSON record a line."""
    with source.open() as stream:
        lines = iter_lines(stream, source, report, mapping.max_line_bytes)
        yield from read_records(lines, source, report, format_name, decode)


def json_error(error: ValueError, line: int = 1) -> str:
    """Why JSON text did not parse, and where: lines counted from ``line``, the text's first."""
    if not isinstance(error, json.JSONDecodeError):
        return str(error)
    if error.lineno == 1:
        return f"{error.msg} at column {error.colno}"
    return f"{error.msg} at line {line + error.lineno - 1} column {error.colno}"


def sniff_lines(head: bytes, classify: Callable[[Any], bool | None], lines: int = 8) -> bool:
    """Whether the JSON lines at the start of ``head`` are of one format: ``classify`` recognizes
    at least one of the first ``lines`` lines it has a verdict on, and rejects none of them.

    A record it has no verdict on (None: a tombstone, a heartbeat) is not counted, so that any
    number of them at the start (a dump of a compacted topic may begin with thousands of
    tombstones) cannot hide the records after them. A line that is not JSON, or is cut off at the
    end of the head, decides nothing but is counted: text that is not JSON lines is not searched
    through for a line that looks like one."""
    found = False
    counted = 0
    # lines end at \n only: str.splitlines would also cut at U+2028, U+0085 and others, which JSON
    # strings may hold as they are
    for line in head.split(b"\n"):
        text = line.decode("utf-8", "replace")
        if not text.strip():
            continue
        if counted == lines:
            break
        try:
            value = loads_exact(text)
        except (ValueError, RecursionError):
            counted += 1
            continue
        verdict = classify(value)
        if verdict is False:
            return False
        if verdict:
            found, counted = True, counted + 1
    return found


def row_key(row: dict[str, Any], names: tuple[str, ...], image: str = "row") -> str:
    """The key of a row from its key columns, or a ValueError naming the missing column."""
    missing = [n for n in names if n not in row]
    if missing:
        raise ValueError(f"key column {missing[0]!r} is not in the {image}")
    return key_text([row[n] for n in names], names)


def kind_of(value: Any) -> str:
    """What a JSON value is, for messages: 'an object', 'a list', 'a string'..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str) and not isinstance(value, RawNumber):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"
