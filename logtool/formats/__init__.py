"""Format readers: raw bytes in, canonical Arrow record batches out (one module per format).

Each module defines ``FORMAT``, a :class:`Format`. Modules are found by listing this package,
so adding a format is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InputError, UsageError
from .base import HEAD_BYTES, Mapping, Report, Source

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class Format:
    """A readable format.

    ``sniff(head)`` scores the first bytes of an input from 0 (not this format) to 100 (surely
    this one); the highest score wins auto-detection. ``read(source, mapping, report)`` yields
    batches in the input schema and calls ``report`` for every record it cannot read, then goes on.
    ``keyless_hint`` says how to have the source write its rows' keys, where it reads a table with
    a key as one without by default.
    """

    name: str
    description: str
    sniff: Callable[[bytes], int]
    read: Callable[[Source, Mapping, Report], Iterator[pa.RecordBatch]]
    keyless_hint: str | None = None


def keyless_hint(entity: str, format_name: str | None) -> str:
    """What to do about an entity whose rows went in without a key, if it has one: ingest again
    with ``--key-field``, or (``Format.keyless_hint``) have the source write the key."""
    fmt = all_formats().get(format_name or "")
    hint = f"if it has a key, ingest the input into a new store with --key-field {entity}:COLUMN (its key column)"
    return f"{hint}, or {fmt.keyless_hint}" if fmt is not None and fmt.keyless_hint else hint


def all_formats() -> dict[str, Format]:
    """Every format, by name."""
    found: dict[str, Format] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        fmt = getattr(module, "FORMAT", None)
        if isinstance(fmt, Format):
            found[fmt.name] = fmt
    return found


def get_format(name: str) -> Format:
    """The format of that name, or a UsageError listing the known ones."""
    formats = all_formats()
    if name not in formats:
        raise UsageError(f"unknown format {name!r}", f"known formats: {', '.join(sorted(formats))}")
    return formats[name]


# Compressions ingest does not read, by their magic bytes, and how to decompress each to stdout
_OTHER_COMPRESSIONS = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip", b"\x04\x22\x4d\x18": "lz4"}
_DECOMPRESS = {"bzip2": "bzip2 -dc", "xz": "xz -dc", "zip": "unzip -p", "lz4": "lz4 -dc"}


MAX_HEAD_BYTES = 64 << 20  # what detection reads at most, to reach the end of a long first record


def detect(source: Source, empty_ok: bool = False) -> Format:
    """Sniff the first bytes of a source and pick the format that recognizes them best. An empty
    file (or one of blank lines) is refused, but with ``empty_ok`` (a raw file copied without some
    records, which has none: read as JSON lines, it is copied as it is)."""
    head = source.head()
    # a first record longer than the head says nothing cut off: read on to the end of it
    while b"\n" not in head and len(head) >= HEAD_BYTES and len(head) < MAX_HEAD_BYTES:
        longer = source.head(min(2 * len(head), MAX_HEAD_BYTES))
        if len(longer) == len(head):
            break
        head = longer
    if not head.strip():
        if empty_ok:
            return all_formats()["jsonl"]
        raise InputError(source.name, None, "file is empty", "nothing to ingest")
    scores = sorted(((f.sniff(head), f.name) for f in all_formats().values()), reverse=True)
    best_score, best = scores[0]
    if best_score <= 0:
        for magic, kind in _OTHER_COMPRESSIONS.items():
            if head.startswith(magic):
                raise InputError(
                    source.name, None, f"compressed with {kind}: logtool reads plain, gzip and zstd files",
                    f"decompress it first, or recompress it with gzip or zstd: `{_DECOMPRESS[kind]} {source.name} | "
                    "logtool ingest STORE - ...`",
                )  # fmt: skip
        if head.lstrip().startswith(b"["):
            raise InputError(
                source.name, 1, "a JSON array, not JSON lines: one record per line is what logtool reads",
                f"write it one record a line, e.g. `jq -c '.[]' {source.name} > records.jsonl`",
            )  # fmt: skip
        raise InputError(
            source.name, 1, "could not recognize the format", "name it with --format (see `logtool formats`)"
        )
    return all_formats()[best]
