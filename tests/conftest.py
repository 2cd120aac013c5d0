"""Shared fixtures: the CLI run in-process, fresh store paths, and small input files."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from logtool.cli import app

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Run:
    """What one CLI invocation did: exit code, stdout and stderr apart."""

    code: int
    out: str
    err: str

    def lines(self) -> list[str]:
        """Non-empty stdout lines."""
        return [line for line in self.out.splitlines() if line.strip()]

    def errors(self) -> list[str]:
        """The `error:` lines on stderr."""
        return [line for line in self.err.splitlines() if line.startswith("error:")]


Cli = Callable[..., Run]


@pytest.fixture
def cli() -> Cli:
    """Run `logtool ARGS...` in-process; stdout and stderr are captured separately.

    An exception that escapes the command is re-raised: the CLI's error boundary must turn every
    failure into a message and an exit code, so an escaped exception is itself a failure.
    """
    runner = CliRunner()

    def invoke(*args: str | Path, input: str | bytes | None = None) -> Run:
        result = runner.invoke(app, [str(a) for a in args], input=input)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(result.exit_code, _ANSI.sub("", result.stdout), _ANSI.sub("", result.stderr))

    return invoke


@pytest.fixture
def new_store(tmp_path: Path) -> Callable[[str], Path]:
    """A path for a store that does not exist yet (ingest creates it)."""
    counter = iter(range(1_000_000))

    def make(name: str = "store") -> Path:
        path = tmp_path / f"{name}-{next(counter)}"
        assert not path.exists()
        return path

    return make


def write_lines(path: Path, lines: Iterable[str | bytes]) -> Path:
    """Write each line followed by a newline (bytes written verbatim); returns the path."""
    with open(path, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else line.encode("utf-8"))
            f.write(b"\n")
    return path


@pytest.fixture(name="write_lines")
def write_lines_fixture() -> Callable[[Path, Iterable[str | bytes]], Path]:
    """The `write_lines(path, lines)` helper as a fixture."""
    return write_lines


@pytest.fixture
def query() -> Callable[[Path, str], list[dict[str, Any]]]:
    """Rows of one SELECT over a store's `events` view, as Python values."""
    import logtool

    def run(store: Path, sql: str) -> list[dict[str, Any]]:
        return list(logtool.sql(str(store), sql).to_pylist())

    return run
