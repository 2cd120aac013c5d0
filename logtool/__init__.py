"""logtool: ingest, replay, audit, diff, compact and purge event logs.

The library mirrors the CLI: ``logtool.ingest(...)`` is ``logtool ingest``. Everything is
imported on first use, so ``import logtool`` (and ``logtool --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "ingest": "logtool.ingest",
    "verify": "logtool.integrity",
    "sql": "logtool.query",
    "info": "logtool.query",
    "log": "logtool.query",
    "diff": "logtool.diff",
    "purge": "logtool.purge",
    "redact": "logtool.purge",
    "replay": "logtool.replay",
    "snapshot": "logtool.replay",
    "history": "logtool.audit",
    "blame": "logtool.audit",
    "why": "logtool.audit",
    "stats": "logtool.audit",
    "configure_store": "logtool.store",
    "compact": "logtool.compact",
    "compact_file": "logtool.compact",
    "Store": "logtool.store",
    "Mapping": "logtool.formats.base",
    "LogtoolError": "logtool.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'logtool' has no attribute {name!r}")
