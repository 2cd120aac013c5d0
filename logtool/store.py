"""The log store: immutable Parquet segments, an append-only commit log, and one writer at a time.

```
store/
  segments/     immutable Parquet files, each a contiguous run of offsets, named by base offset
  snapshots/    Parquet state snapshots (a cache)
  _log/         one JSON file per commit, numbered, never edited
  quarantine/   input that could not be ingested, verbatim, with file, line and reason
```

The store's state is the fold of its commits. A commit is published atomically (temp file,
fsync, then a hard link to the numbered name, which fails rather than overwrite), so a crash
leaves the old state or the new one; files no commit names are leftovers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import getpass
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .errors import LockedError, LogtoolError, StoreError, counted, disk_trouble, undecodable_parquet

if TYPE_CHECKING:
    import duckdb

P = ParamSpec("P")
R = TypeVar("R")

FORMAT_VERSION = 1
KINDS = ("segment", "snapshot", "quarantine")


def canonical_json(value: Any) -> str:
    """The one serialization commits are hashed and written in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def actor() -> str:
    """Who is making a change: user@host (LOGTOOL_ACTOR overrides)."""
    if os.environ.get("LOGTOOL_ACTOR"):
        return os.environ["LOGTOOL_ACTOR"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def iso_utc(moment: dt.datetime) -> str:
    """An instant as logtool prints it: UTC with ``Z``, microseconds where there are any."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    """Now, for a commit: always with microseconds, so commit times have one width."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class State:
    """The store as its commits leave it."""

    version: int = -1  # number of the last commit
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # path -> entry (kind, digests, ...)
    next_offset: int = 0
    gaps: list[list[int]] = field(default_factory=list)  # offset ranges [first, last] commits explain
    # (input content sha256, the entity its file name gave, or None where no name did) -> commit
    ingested: dict[tuple[str, str | None], int] = field(default_factory=dict)
    ingested_sizes: set[int] = field(default_factory=set)  # the byte sizes of those inputs, on disk and read
    head_hash: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # settings made by `config` commits

    def copy(self) -> State:
        """A copy to fold more commits onto (the entries themselves are shared: never changed)."""
        return State(self.version, dict(self.files), self.next_offset, list(self.gaps), dict(self.ingested),
                     set(self.ingested_sizes), self.head_hash, dict(self.config))  # fmt: skip

    def ingested_in(self, sha: str, entity: str | None) -> int | None:
        """The commit that ingested this content as events of this default entity (None: the
        content's events do not depend on one), or None if none did. The same bytes under names
        that give other entities are other events (orders.jsonl is not customers.jsonl)."""
        found = self.ingested.get((sha, entity))
        return self.ingested.get((sha, None)) if found is None else found

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        entries = [e for e in self.files.values() if e["kind"] == kind]
        return sorted(entries, key=lambda e: (e.get("min_offset", 0), e["path"]))

    @property
    def segments(self) -> list[dict[str, Any]]:
        return self.of_kind("segment")


class Store:
    """A log store directory. Readers need no lock; ``writer()`` takes the one writer lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.log_dir = self.path / "_log"
        self._lock_held = False
        self._locked_version = -1  # the log's version when the writer lock was taken
        # Commits read so far, by file name, and the last state folded from them: an ingest of
        # many files reads each commit once, not once a file.
        self._read: dict[str, dict[str, Any]] = {}
        self._folded: tuple[list[dict[str, Any]], State] | None = None
        # What `create` made of a new store (None: the store was there): the directory itself
        # (True) or its folders in an empty directory (False). A writer failing before the store's
        # first commit removes it again: a failed first ingest leaves no empty store behind.
        self._made: bool | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Store:
        """An existing store, or a StoreError that says what the path is instead."""
        store = cls(path)
        p = store.path
        if not p.exists():
            raise StoreError(f"{p}: no such store", f"create it with `logtool ingest {p} FILE...`")
        if not p.is_dir():
            raise StoreError(f"{p}: is a file, not a store directory", "name a directory for the store")
        if not store.log_dir.is_dir():
            raise StoreError(f"{p}: not a logtool store (no _log/ directory)", "check the path")
        return store

    @classmethod
    def create(cls, path: str | os.PathLike[str]) -> Store:
        """Open a store, creating an empty one if the path does not exist (or is an empty dir)."""
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise StoreError(f"{p}: is a file, not a store directory", "name a directory for the store")
        if p.is_dir() and not (p / "_log").is_dir() and any(p.iterdir()):
            raise StoreError(f"{p}: directory exists and is not a logtool store", "name a new or empty directory")
        store = cls(p)
        made = None if (p / "_log").is_dir() else not p.is_dir()
        try:
            for sub in ("segments", "snapshots", "_log", "quarantine"):
                (p / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a file where a folder of the path should be, a system folder, ...
            raise disk_trouble(e) or StoreError(
                f"{p}: cannot create the store here ({e.strerror or e})", "name a directory path where one can be made"
            ) from None
        store._made = made
        return store

    # ------------------------------------------------------------------ commits

    def commit_paths(self) -> list[Path]:
        return [self.log_dir / n for n in self._commit_names()]

    def _commit_names(self) -> list[str]:
        """The commit files' names, in order (zero-padded numbers: text order is number order)."""
        return sorted(n for n in os.listdir(self.log_dir) if n.endswith(".json") and n[:-5].isdigit())

    def commits(self) -> list[dict[str, Any]]:
        """Every commit, oldest first. A commit file is published once and never rewritten, so
        each is read once by this object (``verify`` reads the bytes themselves)."""
        out: list[dict[str, Any]] = []
        for i, name in enumerate(self._commit_names()):
            if name not in self._read:
                p = self.log_dir / name
                try:
                    body = json.loads(p.read_text("utf-8"))
                except (ValueError, UnicodeDecodeError, OSError) as e:
                    # (a denied permission is no damage: the file may be whole)
                    raise (isinstance(e, OSError) and disk_trouble(e)) or StoreError(
                        f"{p}: commit file is damaged ({e})", f"run `logtool verify {self.path}`"
                    ) from None
                if not isinstance(body, dict):
                    raise StoreError(f"{p}: commit file is damaged (not a JSON object)", f"run `logtool verify {self.path}`")
                if body.get("hash") != commit_hash(body):  # edited: nothing read from it can be trusted
                    raise StoreError(f"{p}: commit file was changed after it was written (its hash does not match)",
                                     f"run `logtool verify {self.path}`")  # fmt: skip
                # a commit file lost, or two swapped: the state folded without it would be wrong,
                # and a writer would sweep the files only it names
                broken = chain_break(i, name, body, out[-1]["hash"] if out else None)
                if broken:
                    raise StoreError(f"{p}: {broken}", f"restore the commit log from a backup; `logtool verify {self.path}` "
                                     "lists every problem")  # fmt: skip
                self._read[name] = body
            out.append(self._read[name])
        return out

    def lost_head(self, newest: int | None = None) -> str | None:
        """What is wrong where the head mark names a commit after ``newest`` (the newest commit file;
        by default, as listed now) and that commit's file is gone, or where the mark is damaged;
        None where neither (or where there is no mark: a store from before it). A commit is
        published before the mark, so a commit a writer published meanwhile is found there, not
        taken for lost."""
        if newest is None:
            names = self._commit_names()
            newest = int(names[-1][:-5]) if names else -1
        path = self.log_dir / HEAD_MARK
        try:
            mark = json.loads(path.read_text("utf-8"))
            version = mark["version"] if isinstance(mark, dict) else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:  # (it is written whole, then renamed: no crash leaves it so)
            return f"the head mark {HEAD_MARK} is damaged ({e})"
        if not isinstance(version, int) or isinstance(version, bool) or version < 0:
            return f"the head mark {HEAD_MARK} is damaged (it names no commit number)"
        if version <= newest or (self.log_dir / f"{version:08d}.json").exists():
            return None
        files = f"{newest + 1:08d}.json" + ("" if version == newest + 1 else f" to {version:08d}.json")
        there = f"the newest commit file is {newest}" if newest >= 0 else "no commit file is left"
        return f"commit {files} missing: the log's head mark ({HEAD_MARK}) names commit {version}, {there}"

    def check_head(self) -> None:
        """Refuse a change to a store whose newest commit file is lost (or whose head mark is
        damaged): a writer would sweep the files only that commit names. Reads go on: the log as it
        stands reads as the state before that commit."""
        lost = self.lost_head()
        if lost:
            raise self.lost_head_error(lost)

    def lost_head_error(self, lost: str, then: str = "") -> StoreError:
        """The error for a lost newest commit file (or a damaged head mark), ``lost`` being what
        :meth:`lost_head` said, ``then`` what it caused (appended to the message)."""
        if lost.startswith("the head mark"):
            return StoreError(f"{self.log_dir}: {lost}{then}", f"remove {self.log_dir / HEAD_MARK}: the next change writes it anew")
        return StoreError(
            f"{self.log_dir}: {lost}{then}",
            f"restore that commit file from a backup; if it is lost for good, or this store is a copy taken while "
            f"a writer was at work, remove {self.log_dir / HEAD_MARK} to go on from the log as it stands (the next "
            "change then deletes the files only that commit names)",
        )

    def _mark_head(self, version: int) -> None:
        """Record the newest commit's number in the head mark (after that commit is published):
        a lost newest commit file is then told from a log that never had it."""
        tmp = self.log_dir / f".{HEAD_MARK}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(canonical_json({"version": version}) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.log_dir / HEAD_MARK)  # (atomic, and replaces the mark before it)
        except OSError:
            pass  # the commit is published: a mark left behind names an older one, which checks nothing
        finally:
            tmp.unlink(missing_ok=True)

    def state(self) -> State:
        """Fold the commits into the current state (read-only: callers must not change it). Only
        commits published since the last call are folded, onto a copy of the state then."""
        commits = self.commits()
        try:
            if self._folded is not None:
                before, state = self._folded
                if len(before) <= len(commits) and all(a is b for a, b in zip(before, commits, strict=False)):
                    state = fold(commits[len(before) :], state.copy()) if len(before) < len(commits) else state
                    self._folded = (commits, state)
                    return state
            state = fold(commits)
        except (KeyError, TypeError, ValueError, AttributeError) as e:  # valid JSON, but not a commit's
            raise StoreError(
                f"{self.log_dir}: a commit file is damaged (it does not read as a commit: {type(e).__name__} {e})",
                f"run `logtool verify {self.path}` to find which",
            ) from None
        self._folded = (commits, state)
        return state

    def commit(
        self,
        operation: str,
        params: dict[str, Any],
        *,
        add: list[dict[str, Any]] | None = None,
        remove: list[dict[str, Any]] | None = None,
        gaps: list[list[int]] | None = None,
        info: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Publish one commit atomically. The caller holds the writer lock."""
        if not self._lock_held:
            raise StoreError("internal: commit without the writer lock")
        state = self.state()
        if state.version != self._locked_version:
            # offsets and files were chosen from the log as it was when the lock was taken
            raise StoreError(
                f"{self.path}: another writer committed while this one held the lock (commit {state.version})",
                "nothing of this change was published: run it again",
            )
        body: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "version": state.version + 1,
            "operation": operation,
            "time": now_iso(),
            "actor": actor(),
            "params": params,
            "add": add or [],
            "remove": remove or [],
            "gaps": gaps or [],
            "info": info or {},
            "prev": state.head_hash,
        }
        body["hash"] = commit_hash(body)
        final = self.log_dir / f"{body['version']:08d}.json"
        tmp = self.log_dir / f".{body['version']:08d}.{secrets.token_hex(4)}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(canonical_json(body) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, final)  # fails if the name exists: a commit is never overwritten
        except FileExistsError:
            raise StoreError(f"commit {final.name} already exists", "another writer got in: retry") from None
        finally:
            tmp.unlink(missing_ok=True)
        self._mark_head(body["version"])
        fsync_path(self.log_dir)
        self._locked_version = body["version"]
        return body

    # ------------------------------------------------------------------ lock

    @contextlib.contextmanager
    def writer(self, operation: str) -> Iterator[Store]:
        """Hold the store's single writer lock for the duration of a change."""
        lock = self.path / "_lock"
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "operation": operation, "since": now_iso()}
        # The lock appears with its holder written in it (a link of a finished file), so no one
        # ever finds it empty, and a writer killed while taking it leaves none.
        mine = lock.with_name(f"{lock.name}.{secrets.token_hex(4)}.new")
        try:
            mine.write_text(json.dumps(holder))
        except OSError as e:  # a read-only store (or disk): no change can be made to it
            raise StoreError(
                f"{self.path}: cannot change the store ({e.strerror or e})",
                "check that it is writable by this user; reading it (replay, sql, verify, --dry-run) needs no write",
            ) from None
        try:
            for _ in range(2):
                try:
                    os.link(mine, lock)
                except FileExistsError:
                    if _stale(lock) and _take_over(lock):
                        continue
                    raise LockedError(
                        f"{self.path}: store is locked by {_describe_holder(lock)}",
                        f"wait for it to finish; if that process is gone, remove {lock}",
                    ) from None
                break
            else:  # stale locks one after another: someone else is taking the store over too
                raise LockedError(f"{self.path}: store is locked by {_describe_holder(lock)}", "try again")
        finally:
            mine.unlink(missing_ok=True)
        self._lock_held = True
        unmade = False
        try:
            self._locked_version = self.state().version  # (a damaged log raises here: the lock goes)
            self.check_head()
            yield self
        except BaseException:
            # what this writer wrote and did not commit goes with it (a full disk stays no fuller)
            with contextlib.suppress(Exception):
                self.sweep()
                unmade = self._made is not None and not self._commit_names()
                if unmade:  # a store made for this change, which committed nothing: its folders go
                    for sub in ("segments", "snapshots", "quarantine"):
                        shutil.rmtree(self.path / sub)
            raise
        finally:
            self._lock_held = False
            lock.unlink(missing_ok=True)
            if unmade:  # (removed only while empty: a writer that came since and committed keeps it)
                with contextlib.suppress(OSError):
                    self.log_dir.rmdir()
                    if self._made:
                        self.path.rmdir()

    # ------------------------------------------------------------------ files

    def new_file(self, kind: str, stem: str, suffix: str = ".parquet") -> Path:
        """A fresh, never-used path for a file of this kind."""
        folder = {"segment": "segments", "snapshot": "snapshots", "quarantine": "quarantine"}[kind]
        return self.path / folder / f"{stem}-{secrets.token_hex(4)}{suffix}"

    def rel(self, path: Path) -> str:
        return path.relative_to(self.path).as_posix()

    def segment_files(self, state: State | None = None) -> list[str]:
        """Absolute paths of the live segments, in offset order."""
        state = state or self.state()
        return [str(self.path / s["path"]) for s in state.segments]

    def first_removed(self) -> int | None:
        """The first offset a purge or compaction removed (None: none was): a snapshot at or after
        it holds state whose events are gone, and replay cannot rebuild it."""
        starts = [a for c in self.commits() if c["operation"] in ("purge", "compact") for a, _b in c.get("gaps") or []]
        return min(starts, default=None)

    def unrebuildable_snapshots(self) -> set[str]:
        """The snapshots whose state the log cannot rebuild (paths): after a head drop, of each
        reducer, the lowest of the snapshots the drop left (the one it stored at its cut, or one
        taken before it), or the file a purge or redact rewrote that one into. Every other snapshot
        is a replay of the log, or of that one and the events after it: removed, it is rebuilt. A
        key purge leaves no such snapshot; a compaction rewrites that one (its receipt names the new file)."""
        live: dict[str, dict[str, Any]] = {}
        left: set[str] = set()
        for c in self.commits():
            for entry in c.get("remove", []):
                live.pop(entry["path"], None)
            live.update((e["path"], e) for e in c.get("add", []) if e["kind"] == "snapshot")
            receipt = (c.get("info") or {}).get("receipt") or {}
            left |= {r["replaced_by"] for r in receipt.get("snapshots_rewritten") or [] if r.get("path") in left}
            if c["operation"] == "purge" and (c.get("params") or {}).get("before_offset") is not None:
                left = set(live)
        lowest: dict[Any, dict[str, Any]] = {}
        for path in left & set(live):
            snap = live[path]
            low = lowest.get(snap.get("reducer"))
            if low is None or snap["offset"] < low["offset"]:
                lowest[snap.get("reducer")] = snap
        return {s["path"] for s in lowest.values()}

    def check_segments_present(self, state: State | None = None) -> None:
        """A StoreError for the first live segment whose file is gone or is not the size its commit
        recorded (for work that would otherwise trust the commit log's digests without opening
        the files). A change that keeps the size is for `verify` to find."""
        state = state or self.state()
        for seg in state.segments:
            path = str(self.path / seg["path"])
            try:
                size = os.path.getsize(path)
            except OSError as e:
                raise disk_trouble(e) or segment_damage(path) from None
            if seg.get("bytes") is not None and size != seg["bytes"]:
                raise segment_damage(path, f"{counted(size, 'byte')} where its commit recorded {seg['bytes']}")

    def events_view(self, con: duckdb.DuckDBPyConnection, name: str = "events", files: list[str] | None = None) -> None:
        """Create a view of the live events (without the salt) on a DuckDB connection."""
        from .engine import sql_string
        from .schema import event_schema

        files = self.segment_files() if files is None else files
        if files:
            listing = "[" + ", ".join(sql_string(f) for f in files) + "]"
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (salt) FROM read_parquet({listing})")
        else:
            con.register(f"_{name}_empty", event_schema().empty_table())
            con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * EXCLUDE (salt) FROM _{name}_empty")

    def sweep(self) -> list[str]:
        """Delete every file in the store that no commit names (replaced files, crash leftovers);
        returns them. The caller holds the writer lock: only a writer creates files, so none of
        these is in use."""
        if not self._lock_held:
            raise StoreError("internal: sweep without the writer lock")
        gone = []
        for p in self.leftovers():
            p.unlink(missing_ok=True)
            gone.append(self.rel(p))
        return gone

    def writer_at_work(self) -> str | None:
        """Who holds the writer lock (None: no one, or a holder that is gone): files no commit
        names may then be that writer's, not leftovers."""
        lock = self.path / "_lock"
        if self._lock_held or not lock.exists() or _stale(lock):
            return None
        return _describe_holder(lock)

    def leftovers(self, state: State | None = None) -> list[Path]:
        """Files in the store that no commit names (left by a crash): safe to delete. Refused where
        the newest commit is lost: the files only it names would look like leftovers."""
        self.check_head()
        state = state or self.state()
        named = {self.path / p for p in state.files}
        out = []
        for folder in ("segments", "snapshots", "quarantine"):
            for p in (self.path / folder).glob("*"):
                if p.is_file() and p not in named:
                    out.append(p)
        out += list(self.log_dir.glob(".*.tmp"))
        return sorted(out)


READ_ATTEMPTS = 3
HEAD_MARK = "HEAD"  # in _log/: the newest commit's number, as JSON (no commit: its name is no number.json)
_SEGMENT_PATH = re.compile(r"""[^"'\s]*(?:segments|snapshots)/[^"'\s]+\.parquet""")


def reads_latest(read: Callable[P, R]) -> Callable[P, R]:
    """For a read (readers take no lock): where a segment it was about to open has been removed
    meanwhile by a commit (a compaction or a purge), the read runs again, on the new state; still
    gone on the latest state, or there but unreadable, the store is damaged (``names_damage``)."""

    @functools.wraps(read)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, READ_ATTEMPTS + 1):
            try:
                return read(*args, **kwargs)
            except LogtoolError:
                raise
            except Exception as e:
                if _segments_named(e)[0] and attempt < READ_ATTEMPTS:
                    continue
                raise
        raise AssertionError("unreachable")

    return names_damage(run)


def names_damage(work: Callable[P, R]) -> Callable[P, R]:
    """For work that reads a store (its path the first argument): an error of reading one of its
    files is the damage it is, named, not an internal error (a full disk is no damage)."""

    @functools.wraps(work)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return work(*args, **kwargs)
        except LogtoolError:
            raise
        except Exception as e:
            damage = damaged_store(e) or unreadable_store(e, args[0] if args else None)
            if damage is not None and disk_trouble(e) is None:
                raise damage from e
            raise

    return run


def damaged_store(error: BaseException) -> LogtoolError | None:
    """The error to give where ``error`` (or one it was raised from) is a segment file that is
    missing, or that is there but cannot be read; None where it is something else. A segment
    that cannot be looked up, a folder on its path denying it, is no damage: the permission is
    named."""
    gone, there = _segments_named(error)
    if not gone and not there:
        return None
    if (denied := _denied((gone or there)[0])) is not None:
        return denied
    return segment_damage((gone or there)[0], None if gone else str(error).strip().splitlines()[0])


def _denied(path: str) -> LogtoolError | None:
    """The error of a file that cannot be looked up for a denied permission (None: it can be, or
    it is not there)."""
    try:
        os.stat(path)
    except OSError as e:
        return disk_trouble(e)
    return None


def file_status(path: str | os.PathLike[str]) -> os.stat_result | None:
    """The file's status, None where there is no such file; a file that cannot be looked up (a
    folder on its path denies it) raises that PermissionError, rather than reading as missing."""
    try:
        return os.stat(path)
    except PermissionError:
        raise
    except OSError:
        return None


def unreadable_store(error: BaseException, path: object) -> StoreError | None:
    """Where reading the store at ``path`` failed on Parquet bytes that cannot be decoded, but
    the error names no file: the store is likely damaged, and ``verify`` finds which file."""
    text = str(error).strip()
    path = path.path if isinstance(path, Store) else path
    not_utf8 = read_text_not_utf8(error)
    if not isinstance(path, str | Path) or not (undecodable_parquet(error) or not_utf8):
        return None
    if not_utf8:
        text = "text in it is not UTF-8"
    return StoreError(
        f"{path}: reading the store failed ({text.splitlines()[0]}): a segment or snapshot may be damaged",
        f"`logtool verify {path}` finds which; if it finds nothing, rerun with --debug and report it",
    )


def read_text_not_utf8(error: BaseException) -> bool:
    """Is ``error`` a read meeting text that is not UTF-8? The store writes only UTF-8: such text
    read back from it was damaged on disk. How DuckDB's Python binding meets it varies with the
    Python: a UnicodeDecodeError, its own "str(): conversion error!", or an error of its own whose
    message (naming the text) is lost."""
    import duckdb

    text = str(error).strip()
    return (
        isinstance(error, UnicodeDecodeError)
        or (isinstance(error, RuntimeError) and text.endswith("str(): conversion error!"))
        or (isinstance(error, duckdb.Error) and not text)
    )


def segment_damage(segment: str, reading: str | None = None) -> StoreError:
    """A segment (or snapshot) the commit log names is missing (``reading`` None) or cannot be
    read (why)."""
    what = "is missing" if reading is None else f"cannot be read ({reading})"
    if reading is None:
        # A lost newest commit is the likely cause: the file it replaced was deleted after it was
        # published, and the log as it stands still names it. The cause leads, with its remedy.
        store = Store(Path(segment).parent.parent)
        lost = store.lost_head() if store.log_dir.is_dir() else None
        if lost and not lost.startswith("the head mark"):
            return store.lost_head_error(
                lost, f"; {segment}, which the log as it stands names, is missing (that commit likely replaced it)"
            )
    if Path(segment).parent.name == "snapshots":
        return StoreError(
            f"{segment}: a snapshot the commit log names {what}",
            f"replay without it: --no-snapshots; `logtool verify {Path(segment).parent.parent}` lists what is wrong",
        )
    return StoreError(
        f"{segment}: a segment the commit log names {what}",
        f"the store is damaged: `logtool verify {Path(segment).parent.parent}` lists what is wrong",
    )


# Errors of reading a file (DuckDB's, pyarrow's, the OS's): where one names a segment that is
# there, that segment's bytes are what failed
_READ_ERRORS = {"IOException", "InvalidInputException", "ArrowInvalid", "ArrowIOError", "OSError", "Error"}


def _in_a_store(name: str) -> bool:
    folder = Path(name).parent
    return folder.name in ("segments", "snapshots") and (folder.parent / "_log").is_dir()


def _segments_named(error: BaseException) -> tuple[list[str], list[str]]:
    """The segment files an error (or the ones it was raised from) names: those gone, and those
    there that an error of reading names."""
    gone: list[str] = []
    there: list[str] = []
    seen: BaseException | None = error
    while seen is not None:
        for name in [str(getattr(seen, "filename", None) or ""), *_SEGMENT_PATH.findall(str(seen))]:
            # a file of a store's segments/ or snapshots/ (a store holds _log/): not a dump of a
            # table kept in a folder of that name, nor a value quoted in an error
            if not _SEGMENT_PATH.fullmatch(name) or name in gone + there or not _in_a_store(name):
                continue
            if not os.path.exists(name):
                (there if _denied(name) else gone).append(name)  # (one not to be looked up is not gone)
            elif type(seen).__name__ in _READ_ERRORS:
                there.append(name)
        seen = seen.__cause__ or seen.__context__
    return gone, there


def configure_store(path: str | os.PathLike[str], **settings: Any) -> dict[str, Any]:
    """Record store settings (e.g. ``snapshot_every``) in a commit; returns the new config."""
    store = Store.open(path)
    with store.writer("config"):
        store.commit("config", settings)
    return store.state().config


def chain_break(expected: int, name: str, body: dict[str, Any], prev: str | None) -> str | None:
    """What is wrong where the commit file ``name``, holding ``body``, comes where commit number
    ``expected`` should and does not follow the commit before it (whose hash is ``prev``), or None."""
    number = int(name.removesuffix(".json"))
    if number != expected:
        missing = f"{expected:08d}.json" + ("" if number == expected + 1 else f" to {number - 1:08d}.json")
        return f"commit {missing} missing: the log goes on at {name}"
    if body.get("version") != number:
        return f"commit file holds commit {body.get('version')!r}, not {number}"
    if body.get("prev") != prev:
        return "commit chain broken: its prev does not name the commit before it"
    return None


def commit_hash(body: dict[str, Any]) -> str:
    """SHA-256 of a commit's canonical JSON without its own hash."""
    return hashlib.sha256(canonical_json({k: v for k, v in body.items() if k != "hash"}).encode()).hexdigest()


def fold(commits: list[dict[str, Any]], state: State | None = None) -> State:
    """The state a sequence of commits leaves (applied onto ``state``, changed in place, if given)."""
    state = state if state is not None else State()
    for c in commits:
        for entry in c.get("remove", []):
            state.files.pop(entry["path"], None)
        for entry in c.get("add", []):
            state.files[entry["path"]] = entry
            if entry["kind"] == "segment" and entry["rows"]:
                state.next_offset = max(state.next_offset, entry["max_offset"] + 1)
        state.gaps.extend(c.get("gaps", []))
        source_sha = c.get("params", {}).get("sha256")
        # a file none of whose events went in (all quarantined or skipped) may be ingested again
        if c.get("operation") == "ingest" and source_sha and c.get("info", {}).get("ingested", 1):
            state.ingested.setdefault((source_sha, c["params"].get("default_entity")), c["version"])
            state.ingested_sizes.update(c["params"].get(n) for n in ("bytes", "file_bytes") if isinstance(c["params"].get(n), int))
        state.next_offset = max(state.next_offset, c.get("info", {}).get("next_offset", 0))
        if c.get("operation") == "config":
            state.config.update(c.get("params", {}))
        state.version = c["version"]
        state.head_hash = c["hash"]
    return state


def fsync_path(path: Path) -> None:
    """Flush a file or a directory entry to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe_holder(lock: Path) -> str:
    try:
        h = json.loads(lock.read_text())
        return f"pid {h['pid']} on {h['host']} ({h['operation']} since {h['since']})"
    except (OSError, ValueError, KeyError):
        return "another process"


def _take_over(lock: Path) -> bool:
    """Remove a stale lock, unless another writer took it over first. Writers taking over hold
    an advisory lock on a file beside it (the system releases it if they die), and look again
    under it: only a lock whose holder is gone is removed, never a fresh one."""
    import fcntl

    with open(lock.with_name(f"{lock.name}.takeover"), "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            if not lock.exists():
                return True  # gone already: try to create it
            if not _stale(lock):
                return False  # another writer took it over first
            lock.unlink(missing_ok=True)
            return True
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)


def _stale(lock: Path) -> bool:
    """A lock whose holder ran on this host and is no longer alive."""
    try:
        h = json.loads(lock.read_text())
    except (OSError, ValueError):
        return False
    if h.get("host") != socket.gethostname():
        return False
    try:
        pid = int(h["pid"])
    except (KeyError, ValueError, TypeError):
        return False
    from .engine import process_alive

    return not process_alive(pid)
