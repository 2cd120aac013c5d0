"""logtool: ingest, replay, audit, diff, compact and purge event logs.

The library mirrors the CLI: ``logtool.ingest(...)`` is ``logtool ingest``. Everything is
imported on first use, so ``import logtool`` (and ``logtool --help``) stays fast. A module and
its verb share a name (``logtool.replay`` the module, ``logtool.replay()`` the function): the
package keeps the name for the function, whatever is imported first.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

_API = {
    "LogtoolError": "logtool.errors",
    "Mapping": "logtool.formats.base",
    "Store": "logtool.store",
    "blame": "logtool.audit",
    "compact": "logtool.compact",
    "compact_file": "logtool.compact",
    "configure_store": "logtool.store",
    "diff": "logtool.diff",
    "history": "logtool.audit",
    "info": "logtool.query",
    "ingest": "logtool.ingest",
    "log": "logtool.query",
    "purge": "logtool.purge",
    "redact": "logtool.purge",
    "replay": "logtool.replay",
    "snapshot": "logtool.replay",
    "sql": "logtool.query",
    "stats": "logtool.audit",
    "verify": "logtool.integrity",
    "why": "logtool.audit",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'logtool' has no attribute {name!r}")


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing logtool.replay would bind the module over the verb: keep the verb.
        if name in _API and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
