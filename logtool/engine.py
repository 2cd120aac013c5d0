"""The DuckDB connection every operation runs on: threads, memory limit, spill directory, UTC."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb


@dataclass
class Settings:
    """Engine settings; None means DuckDB's default (threads: all cores)."""

    memory_limit: str | None = "2GB"
    threads: int | None = None
    temp_dir: str | None = None


settings = Settings(
    memory_limit=os.environ.get("LOGTOOL_MEMORY_LIMIT", "2GB"),
    threads=int(os.environ["LOGTOOL_THREADS"]) if os.environ.get("LOGTOOL_THREADS") else None,
    temp_dir=os.environ.get("LOGTOOL_TEMP_DIR"),
)


def configure(memory_limit: str | None = None, threads: int | None = None, temp_dir: str | None = None) -> None:
    """Change the settings of connections opened from now on (the CLI's global options)."""
    if memory_limit is not None:
        import re

        import duckdb

        amount = re.match(r"\s*([+-]?[0-9]+(\.[0-9]*)?)", memory_limit)
        if amount and float(amount.group(1)) <= 0:
            from .errors import UsageError

            raise UsageError(f"--memory-limit {memory_limit}: the limit must be more than 0", "write e.g. 2GB, 512MiB or 50%")
        try:
            duckdb.connect(":memory:", config={"memory_limit": memory_limit}).close()
        except duckdb.Error as e:
            from .errors import UsageError

            raise UsageError(
                f"--memory-limit {memory_limit}: {str(e).strip().splitlines()[0].removeprefix('Parser Error: ')}",
                "write e.g. 2GB, 512MiB or 50% (of the machine's memory)",
            ) from None
        settings.memory_limit = memory_limit
    if threads is not None:
        settings.threads = threads
    if temp_dir is not None:
        settings.temp_dir = temp_dir


def connect() -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB connection, bounded in memory and spilling to a temp dir."""
    import duckdb

    config: dict[str, Any] = {"preserve_insertion_order": True}
    if settings.memory_limit:
        config["memory_limit"] = settings.memory_limit
    if settings.threads:
        config["threads"] = settings.threads
    config["temp_directory"] = _spill_dir(settings.temp_dir or os.path.join(tempfile.gettempdir(), "logtool-spill"))
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")  # logtool draws its own, on stderr, when it should
    # An in-memory database needs no checkpoint: DuckDB would stop the first query after a large
    # temporary table to compress it (0.2-0.5 s of a 1M-event replay) and gain no memory by it.
    con.execute("SET checkpoint_threshold = '1TB'")
    return con


_swept: set[str] = set()


def _spill_dir(base: str) -> str:
    """This process's own spill directory under ``base``. What DuckDB spills holds event data (a
    purged person's too): the directories of processes that are gone (killed before DuckDB could
    delete its files) are deleted, once per process and base."""
    import shutil

    if base not in _swept:
        _swept.add(base)
        try:
            entries = list(os.scandir(base))
        except OSError:
            entries = []
        for entry in entries:
            pid = entry.name.removeprefix("pid-")
            if entry.is_dir(follow_symlinks=False) and pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(entry.path, ignore_errors=True)
    mine = os.path.join(base, f"pid-{os.getpid()}")
    try:
        os.makedirs(mine, exist_ok=True)
    except OSError:
        pass  # DuckDB says so if it has to spill there
    return mine


def process_alive(pid: int) -> bool:
    """Is a process of this host alive (another user's counts as alive)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def sql_string(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def json_path(name: str) -> str:
    """A SQL string literal: the path of a JSON object's top-level member, whatever its name (the
    empty name, quotes, dots and slashes included), as a JSON pointer."""
    return sql_string("/" + name.replace("~", "~0").replace("/", "~1"))


def sql_ident(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'
