"""The output of raw-file compact, purge and redact (`-o OUT`): compressed as its name says, and
never left half-written in place of a good one, nor as a temporary file, whether the run fails
(a full disk), is interrupted (Ctrl-C) or killed (SIGTERM)."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import zstandard

from logtool.errors import LogtoolError
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


@pytest.mark.parametrize("midway", [False, True])
@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.jsonl.zst"])
def test_a_full_disk_leaves_the_old_output_and_no_temporary_file(tmp_path: Path, name: str, midway: bool) -> None:
    """A write that fails at the last flush (the disk full: /dev/full says ENOSPC to every write)
    left the temporary file behind, as big as what had been written: on a full disk, space the
    next try needed. Midway or at the end, the error names the output and what is left of it."""
    target = tmp_path / name
    target.write_bytes(b"the good output\n")
    with pytest.raises(LogtoolError) as failure, output_file(target) as sink:
        sink.write(b"x" * 100)
        tmp = next(p for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
        full = os.open("/dev/full", os.O_WRONLY)
        with open(tmp, "rb+") as f:  # the temporary file's descriptor, pointed at the full disk
            os.dup2(full, _fd_of(sink, tmp, f))
        os.close(full)
        if midway:  # a write that fails, not the last flush
            sink.write(os.urandom(1 << 20))
    assert failure.value.message == f"{target}: No space left on device (its disk is full)"
    assert failure.value.hint == (f"free space there or write elsewhere, then run it again: {target} is as it was, "
                                  "and nothing of this run is left")  # fmt: skip
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


_CHILD = """
import sys
import logtool.formats.writers as w
from logtool.cli import main

class Stalling:  # the output's stream: its first write is followed by a wait for the signal
    def __init__(self, file):
        self.file, self.first = file, True

    def write(self, data):
        n = self.file.write(data)
        if self.first:
            self.first = False
            self.file.flush()
            print("READY", flush=True)
            sys.stdin.read()  # until the test sends the signal
        return n

    def flush(self):
        self.file.flush()

    def close(self):
        pass

w._compressing = lambda file, name: Stalling(file)
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("command", sorted(RUNS))
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_run_stopped_midway_leaves_the_old_output_and_no_temporary_file(
    tmp_path: Path, command: str, sig: signal.Signals
) -> None:
    """Ctrl-C and `kill` (SIGTERM: a timeout, a service stopped) midway: the output is the one
    there before, and no temporary file is left (SIGTERM left one, as a kill skipped the cleanup);
    the exit status is the signal's (130, 143)."""
    src = tmp_path / "log.jsonl"
    src.write_text("".join(LINES))
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"the good output\n")
    args = [a.replace("{src}", str(src)) for a in RUNS[command]]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *args, "-o", str(out)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "READY"
        assert len([p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]) == 1
        child.send_signal(sig)
        _, err = child.communicate()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    stopped = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}[sig]
    assert (child.returncode, err.splitlines()[-1]) == (stopped[0], f"error: {stopped[1]}")
    assert out.read_bytes() == b"the good output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "out.jsonl"]


def test_an_output_replacing_a_file_keeps_its_permissions(cli: Any, tmp_path: Path) -> None:
    """A private log's cleaned copy written over a private file was readable by everyone (the
    temporary file took the umask's mode, and its rename replaced the old file's)."""
    src = tmp_path / "log.jsonl"
    src.write_text("".join(LINES))
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"the old output\n")
    out.chmod(0o600)
    for command in RUNS.values():
        run = cli(*[a.replace("{src}", str(src)) for a in command], "-o", out)
        assert run.code == 0, run.err
        assert out.read_bytes() != b"the old output\n" and out.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf"])
def test_an_empty_log_is_copied_not_refused(cli: Any, tmp_path: Path, content: bytes) -> None:
    """An empty log (as logrotate leaves one) was refused ("file is empty", hint "nothing to
    ingest"), so a sweep of an erasure over a folder of logs stopped there, with no output for it:
    it holds no record, and its copy is the answer."""
    src = tmp_path / "log.jsonl"
    src.write_bytes(content)
    out = tmp_path / "out.jsonl"
    for command in RUNS.values():
        out.unlink(missing_ok=True)
        run = cli(*[a.replace("{src}", str(src)) for a in command], "-o", out)
        assert run.code == 0 and "warning" not in run.err, run.err
        assert out.read_bytes() == content


def test_an_output_that_is_a_link_to_a_file_is_replaced_whole_and_stays_a_link(tmp_path: Path) -> None:
    """-o through a link to a file wrote into the file in place: a run stopped midway left it cut
    short (emptied at the start) in place of the good one. The file the link names is replaced as
    any other, and the link stays."""
    src = tmp_path / "log.jsonl"
    src.write_text("".join(LINES))
    real = tmp_path / "real.jsonl"
    real.write_bytes(b"the good output\n")
    (tmp_path / "link1.jsonl").symlink_to("real.jsonl")
    link = tmp_path / "link.jsonl"
    link.symlink_to("link1.jsonl")
    args = [a.replace("{src}", str(src)) for a in RUNS["purge"]]
    child = subprocess.Popen([sys.executable, "-c", _CHILD, *args, "-o", str(link)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "READY"
        child.send_signal(signal.SIGTERM)
        child.communicate()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 143 and real.read_bytes() == b"the good output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "link1.jsonl", "log.jsonl", "real.jsonl"]
    done = subprocess.run([sys.executable, "-m", "logtool", *args, "-o", str(link)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == "link1.jsonl" and os.readlink(tmp_path / "link1.jsonl") == "real.jsonl"
    assert real.read_text() == "".join(line for line in LINES if not line.startswith('{"id": 1,'))


def test_dev_stdout_is_written_as_it_is_appending_where_the_shell_appends(tmp_path: Path) -> None:
    """-o /dev/stdout (or a link to it) is the stream the shell opened, never replaced by a file:
    sent to a file with >>, it is appended to, as the shell was asked (it was emptied)."""
    src = tmp_path / "log.jsonl"
    src.write_text("".join(LINES))
    (tmp_path / "mystdout").symlink_to("/dev/stdout")
    kept = "".join(line for line in LINES if not line.startswith('{"id": 1,'))
    for name in ("/dev/stdout", str(tmp_path / "mystdout")):
        out = tmp_path / "appended.jsonl"
        out.write_text("first\n")
        with open(out, "ab") as sink:
            args = [a.replace("{src}", str(src)) for a in RUNS["purge"]]
            run = subprocess.run([sys.executable, "-m", "logtool", *args, "-o", name], stdout=sink, stderr=subprocess.PIPE)
        assert run.returncode == 0, run.stderr
        assert out.read_text() == "first\n" + kept
        assert Path("/dev/stdout").is_symlink() and (tmp_path / "mystdout").is_symlink()


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm")
def test_a_file_in_dev_shm_is_a_file_replaced_whole(cli: Any, tmp_path: Path) -> None:
    """Only the system's names of streams are written to as they are: a file in /dev/shm (a
    scratch folder in memory) is replaced whole like any other, never appended to."""
    src = tmp_path / "log.jsonl"
    src.write_text("".join(LINES))
    out = Path("/dev/shm") / f"logtool-test-{os.getpid()}.jsonl"
    out.write_bytes(b"the old output\n")
    try:
        run = cli(*[a.replace("{src}", str(src)) for a in RUNS["purge"]], "-o", out)
        assert run.code == 0, run.err
        assert out.read_text() == "".join(line for line in LINES if not line.startswith('{"id": 1,'))
    finally:
        out.unlink(missing_ok=True)
