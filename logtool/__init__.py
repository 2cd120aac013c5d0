"""logtool: ingest, replay, audit, diff, compact and purge event logs.

The library mirrors the CLI: ``logtool.ingest(...)`` is ``logtool ingest``. The modules import
duckdb and pyarrow only inside their functions, so ``import logtool`` (and ``logtool --help``)
stays fast. The functions are bound here explicitly: a module and its verb share a name
(``logtool.replay`` the module, ``logtool.replay()`` the function), and this way the name is
always the function.
"""

from __future__ import annotations

from .audit import blame, history, stats, why
from .compact import compact, compact_file
from .diff import diff
from .errors import LogtoolError
from .formats.base import Mapping
from .ingest import ingest
from .integrity import verify
from .purge import purge, redact
from .query import info, log, sql
from .replay import replay, snapshot
from .store import Store, configure_store

__version__ = "0.1.0"

__all__ = [
    "LogtoolError",
    "Mapping",
    "Store",
    "blame",
    "compact",
    "compact_file",
    "configure_store",
    "diff",
    "history",
    "info",
    "ingest",
    "log",
    "purge",
    "redact",
    "replay",
    "snapshot",
    "sql",
    "stats",
    "verify",
    "why",
]
