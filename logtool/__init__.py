"""logtool: ingest, replay, audit, diff, compact and purge event logs."""

__version__ = "0.1.0"
