"""Typed errors of the library and the exit codes the CLI maps them to."""

from __future__ import annotations

import errno
import re

#: Exit codes shared by every command (diff(1) convention).
EXIT_OK = 0
EXIT_DIFFERENT = 1  # "different" (diff), "problem found" (verify), "not found" (audit)
EXIT_TROUBLE = 2  # usage errors and every failure


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``n`` and its noun, singular for one: ``1 event``, ``2 events``, ``3 entities`` (``plural``
    where adding an s is wrong)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


class LogtoolError(Exception):
    """An error a user can act on: one line of message and a hint of what to do next."""

    exit_code = EXIT_TROUBLE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(LogtoolError):
    """The arguments do not make sense together."""


class InputError(LogtoolError):
    """A log file could not be read: names the file, the line and what is wrong."""

    def __init__(self, file: str, line: int | None, reason: str, hint: str | None = None) -> None:
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}", hint)
        self.file = file
        self.line = line
        self.reason = reason


class StoreError(LogtoolError):
    """The store is missing, locked, damaged or cannot take this change."""


class LockedError(StoreError):
    """Another writer holds the store's lock."""


class NotFoundError(LogtoolError):
    """What was asked for is not in the store (exit 1, as grep does for no match)."""

    exit_code = EXIT_DIFFERENT


class ReducerError(LogtoolError):
    """A user reducer raised while replaying an event."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a `kill`, a `timeout`, a service stopped): raised where it arrives, so the command
    unwinds as for Ctrl-C and deletes what it was writing (a temporary output, uncommitted files)."""


terminated = False  # SIGTERM arrived: the command ends with 143 (128 + 15), not Ctrl-C's 130


def on_sigterm(signum: int, frame: object) -> None:
    """The console script's SIGTERM handler (never installed by the library)."""
    global terminated
    terminated = True
    raise Terminated()


def interrupted(error: BaseException) -> bool:
    """Is ``error`` a Ctrl-C that reached DuckDB mid-query? (It raises RuntimeError('Query
    interrupted') for the signal, InterruptException for ``interrupt()``.) Such an error is the
    user stopping the command, never a finding about the store or the input."""
    return (
        type(error).__name__ == "InterruptException"
        or isinstance(error, RuntimeError) and str(error).strip() == "Query interrupted"
        # a Python function DuckDB called (a time parser, a reducer) got the signal
        or "while executing the UDF: KeyboardInterrupt:" in str(error)
    )


# what the system says when a disk cannot take a write, as OSError or as DuckDB's message quotes it
_DISK_TROUBLE = {
    errno.ENOSPC: "No space left on device",
    errno.EDQUOT: "Disk quota exceeded",
    errno.EROFS: "Read-only file system",
    errno.EACCES: "Permission denied",
}


def disk_trouble(error: BaseException) -> LogtoolError | None:
    """A full disk, a quota, a read-only file system or a denied permission, met while reading
    or writing, as one line and a hint (None: ``error`` is none of them)."""
    if isinstance(error, OSError) and error.errno in _DISK_TROUBLE:
        message = (f"{error.filename}: " if error.filename else "") + (error.strerror or _DISK_TROUBLE[error.errno])
    else:  # DuckDB's error, quoting the system's words after the file it names
        lines = str(error).strip().splitlines()
        if not lines or not any(w.lower() in lines[0].lower() for w in _DISK_TROUBLE.values()):
            return None
        message = lines[0]
    return LogtoolError(
        message,
        "free space or fix the permissions, then run it again: a store keeps its last commit (a change "
        "that failed deletes what it wrote and did not commit)",
    )


def out_of_memory(error: BaseException) -> LogtoolError | None:
    """DuckDB running out of its memory limit, as one line and a hint (None: ``error`` is not
    that). A command that reports its own failures (a query, a selection, a comparison) hands
    this one on as it is: the limit, not the query, is what to change."""
    if type(error).__name__ != "OutOfMemoryException":
        return None
    from . import engine

    return LogtoolError(
        f"out of memory: the work needed more than the engine's limit ({engine.settings.memory_limit})",
        "raise it with `logtool --memory-limit 8GB ...`, point --temp-dir at a disk with room to spill, "
        "or use --threads 1",
    )


def engine_trouble(error: BaseException) -> LogtoolError | None:
    """The engine's memory, or a disk, failing the work (None: ``error`` is something else, such
    as a query or a value the user gave)."""
    return out_of_memory(error) or disk_trouble(error)


# what DuckDB's (or pyarrow's) Parquet reader says of bytes it cannot decode, often without naming
# the file: its message begins so (a user's query failing on a value quotes the value later, as in
# 'Could not parse string "corrupt upload"', and is another matter)
_UNDECODABLE = re.compile(
    r"([A-Z][A-Za-z]*( [A-Z][A-Za-z]*)* Error: )?"
    r"(TProtocolException|Couldn't deserialize thrift|invalid TType|don't know what type|Out of buffer|"
    r"Decode bit width too large|Variable-length int over|Payload value bigger|Page sizes must|"
    r"Parquet file is likely corrupted|Invalid (Parquet|page|[Dd]ictionary)|Footer length error|Corrupted|"
    r"ZSTD decompression failed|Snappy decompression failed|Corrupt snappy|Invalid base64 input|Malformed levels|"
    r"Parquet metadata is corrupt|Corrupt Parquet file|DELTA_[A-Z_]+ - )"
)
# the errors the readers raise them as (a user's conversion or binding error is another kind)
_READER_ERRORS = {"Error", "IOException", "InvalidInputException", "InternalException", "SerializationException",
                  "OSError", "ArrowInvalid", "ArrowIOError"}  # fmt: skip


def undecodable_parquet(error: BaseException) -> bool:
    """Is ``error`` DuckDB's Parquet reader failing to decode bytes (a damaged file)?"""
    lines = str(error).strip().splitlines()
    return type(error).__name__ in _READER_ERRORS and bool(lines) and bool(_UNDECODABLE.match(lines[0]))
