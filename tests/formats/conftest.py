"""Shared fixtures of the format reader tests: read a file with a reader, write a small input."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from logtool.formats import Format
from logtool.formats.base import BadRecord, Mapping, Source

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
SAMPLES = Path(__file__).resolve().parents[2] / "sample_logs" / "cdc"

Rows = list[dict[str, Any]]
Reader = Callable[..., tuple[Rows, list[BadRecord]]]

#: A JSON-lines log that no self-describing format should claim.
GENERIC_LINES = (
    b'{"ts":"2024-03-05T10:00:00Z","table":"orders","op":"insert","id":7,"data":{"status":"new"}}\n'
    b'{"ts":"2024-03-05T10:00:01Z","table":"orders","op":"update","id":7,"data":{"status":"paid"}}\n'
)


@pytest.fixture
def cdc_samples() -> Path:
    return SAMPLES


@pytest.fixture
def generic_lines() -> bytes:
    return GENERIC_LINES


@pytest.fixture
def read_events() -> Reader:
    """``read_events(FORMAT, path, mapping=Mapping())`` -> (rows as dicts, bad records), reading the
    whole input through the reader exactly as ingest calls it; ``ts`` and ``txn.ts`` as epoch µs."""

    def run(fmt: Format, path: Path | str, mapping: Mapping | None = None) -> tuple[Rows, list[BadRecord]]:
        bad: list[BadRecord] = []
        rows: Rows = []
        for batch in fmt.read(Source(str(path)), mapping or Mapping(), bad.append):
            rows.extend(batch.to_pylist())
        for row in rows:
            row["ts"] = _micros(row["ts"])
            if row["txn"] is not None:
                row["txn"]["ts"] = _micros(row["txn"]["ts"])
        return rows, bad

    return run


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    """``write_file(name, text)`` -> the path of a new file holding that text."""

    def make(name: str, text: str | bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return path

    return make


def _micros(stamp: dt.datetime | None) -> int | None:
    # times as epoch microseconds, the unit the readers hand to the Batcher
    return None if stamp is None else (stamp - _EPOCH) // dt.timedelta(microseconds=1)
