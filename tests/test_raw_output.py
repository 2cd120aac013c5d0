"""The output of raw-file compact, purge and redact (`-o OUT`): compressed as its name says, and
never left half-written in place of a good one, nor as a temporary file, whether the run fails
(a full disk), is interrupted (Ctrl-C) or killed (SIGTERM)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest
import zstandard

from logtool.formats.writers import output_file

LINES = [json.dumps({"id": i % 3, "op": "upsert", "data": {"v": i, "email": f"u{i}@x.org"}}) + "\n" for i in range(9)]
MAPPING = ["--key-field", "id", "--op-field", "op", "--data-field", "data"]
RUNS = {
    "compact": ["compact", "{src}", *MAPPING],
    "purge": ["purge", "{src}", "--key", "1", *MAPPING],
    "redact": ["redact", "{src}", "--field", "email", "--key", "1", *MAPPING],
}


def _decompress(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


@pytest.mark.parametrize("command", sorted(RUNS))
@pytest.mark.parametrize("source", ["log.jsonl", "log.jsonl.gz", "log.jsonl.zst"])
def test_the_output_is_compressed_as_its_name_says_whatever_the_input(
    cli: Any, tmp_path: Path, command: str, source: str
) -> None:
    """`-o out.jsonl.gz` was written as plain text under a gzip name (zcat refused it), so was
    `.zst`; a compressed input gave a plain output whatever its name. The name decides now."""
    content = "".join(LINES).encode()
    src = tmp_path / source
    src.write_bytes(_compress(content, source))
    args = [a.replace("{src}", str(src)) for a in RUNS[command]]
    plain = cli(*args, "-o", tmp_path / "out.jsonl")
    assert plain.code == 0, plain.err
    expected = (tmp_path / "out.jsonl").read_bytes()
    assert expected and expected != content  # something was removed or redacted
    for name in ("out.jsonl.gz", "out.jsonl.zst"):
        run = cli(*args, "-o", tmp_path / name)
        assert run.code == 0, run.err
        assert (tmp_path / name).read_bytes()[:4] != expected[:4]
        assert _decompress(tmp_path / name) == expected
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _compress(content: bytes, name: str) -> bytes:
    if name.endswith(".gz"):
        return gzip.compress(content)
    if name.endswith(".zst"):
        return zstandard.ZstdCompressor().compress(content)
    return content


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.jsonl.zst"])
def test_a_full_disk_leaves_the_old_output_and_no_temporary_file(tmp_path: Path, name: str) -> None:
    """A write that fails at the last flush (the disk full: /dev/full says ENOSPC to every write)
    left the temporary file behind, as big as what had been written: on a full disk, space the
    next try needed."""
    target = tmp_path / name
    target.write_bytes(b"the good output\n")
    with pytest.raises(OSError) as failure, output_file(target) as sink:
        sink.write(b"x" * 100)
        tmp = next(p for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        full = os.open("/dev/full", os.O_WRONLY)
        with open(tmp, "rb+") as f:  # the temporary file's descriptor, pointed at the full disk
            os.dup2(full, _fd_of(sink, tmp, f))
        os.close(full)
    assert "No space left on device" in str(failure.value)
    assert target.read_bytes() == b"the good output\n"
    assert [p.name for p in tmp_path.iterdir()] == [name]


def _fd_of(sink: Any, tmp: Path, opened: Any) -> int:
    """The descriptor the sink writes the temporary file through (under a compressor, its file)."""
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd != opened.fileno():
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == str(tmp):
                    return fd
            except OSError:
                continue
    raise AssertionError("no descriptor of the temporary file")
