"""The compaction invariant as a Hypothesis property: for random keyed logs (aborted transactions
included, over one or several segments), a compacted store replays to exactly the same state
(digest) as the original at its head and at every offset at or after the compaction point.
Alongside it, the records that survive are those Kafka's cleaner keeps, rule by rule (the state
alone cannot tell a kept tombstone from an expired one), offsets are never rewritten and the
protected head is untouched."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_compact import DAY, SECOND, T0, digest, ev, iso, make_store, records

from logtool.compact import compact, parse_duration
from logtool.formats.base import RawNumber, parse_ts
from logtool.integrity import verify
from logtool.store import Store

ENTITIES = ("e1", "e2")
KEYS = ("a", "b", "c", "\u00e9")
COLUMNS = ("x", "y", "z")

values = st.one_of(
    st.none(),
    st.integers(-2, 2),
    st.sampled_from(["", "s", "\u00e9"]),
    st.builds(lambda n: {"n": n}, st.integers(0, 1)),
    st.sampled_from(["1.10", "2.5", "123456789012345678901234567.891"]).map(RawNumber),
)
full_rows = st.fixed_dictionaries(dict.fromkeys(COLUMNS, values))
partial_rows = st.dictionaries(st.sampled_from(COLUMNS), values, min_size=1, max_size=2)
# Seconds between one event and the next: equal and regressing times are as likely as forward ones.
steps = st.sampled_from([0, 0, -5, -3600, 1, 60, 3600, 6 * 3600])


@st.composite
def events(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    t = 0
    for _ in range(draw(st.integers(1, 10))):
        t += draw(steps)
        entity = draw(st.sampled_from(ENTITIES))
        key = draw(st.sampled_from(KEYS))
        kind = draw(
            st.sampled_from(
                ["insert", "upsert", "update", "update-partial", "patch", "delete", "tombstone", "truncate", "aborted"]
            )
        )
        if kind in ("insert", "upsert", "update"):
            out.append(ev(kind, key, draw(full_rows), t=t, entity=entity))
        elif kind == "update-partial":
            out.append(ev("update", key, draw(partial_rows), t=t, entity=entity))
        elif kind == "patch":
            out.append(ev("patch", key, draw(partial_rows), t=t, entity=entity))
        elif kind == "delete":
            out.append(ev("delete", key, t=t, entity=entity))
        elif kind == "tombstone":
            out.append(ev(draw(st.sampled_from(["upsert", "update", "patch"])), key, None, t=t, entity=entity))
        elif kind == "aborted":
            out.append(
                ev(draw(st.sampled_from(["upsert", "delete"])), key, draw(full_rows), t=t, entity=entity, aborted=True)
            )
        else:
            out.append(ev("truncate", None, t=t, entity=entity))
    return out


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    log = draw(events())
    n = len(log)
    first, last = min(e["ts"] for e in log), max(e["ts"] for e in log)
    return {
        "events": log,
        "until_offset": draw(st.one_of(st.none(), st.none(), st.integers(0, n + 1))),
        "tombstone_retention": draw(st.sampled_from(["0s", "1s", "1h", "1d"])),
        "min_lag": draw(st.sampled_from([None, None, None, "1s", "1h"])),
        "now": iso(draw(st.integers(first - SECOND, last + 2 * DAY))),
        "segment_rows": draw(st.sampled_from([2, 3, 1_000])),
    }


SAMPLE = {
    "events": [
        ev("insert", "a", {"x": 1, "y": 2, "z": 3}, entity="e1"),
        ev("patch", "a", {"y": None}, t=0, entity="e1"),
        ev("delete", "b", t=-5, entity="e2"),
        ev("truncate", None, t=-5, entity="e2"),
        ev("update", "b", {"x": ""}, t=60, entity="e2"),
        ev("upsert", "a", None, t=60, entity="e1"),
        ev("update", "a", {"z": RawNumber("1.10")}, t=3600, entity="e1"),
    ],
    "until_offset": 6,
    "tombstone_retention": "1h",
    "min_lag": None,
    "now": iso(T0 + 30 * 60 * SECOND),
    "segment_rows": 3,
}


def aborted(event: dict[str, Any]) -> bool:
    return bool((event["txn"] or {}).get("aborted"))


def cleaner(case: dict[str, Any]) -> tuple[int, list[int]]:
    """Kafka's log cleaner on a generated case, rule by rule, in plain Python: the compaction
    point and the offsets that survive."""
    log = case["events"]
    now = parse_ts(case["now"])
    point = len(log) if case["until_offset"] is None else min(case["until_offset"], len(log))
    lag = parse_duration(case["min_lag"])
    young = [o for o, e in enumerate(log) if lag and e["ts"] > now - lag]
    point = min([point, *young[:1]])
    retention = parse_duration(case["tombstone_retention"])
    keep = []
    for o, e in enumerate(log):
        if o >= point:
            keep.append(o)
            continue
        if aborted(e):
            continue
        later = [x for x in log[o + 1 : point] if not aborted(x)]
        if e["op"] == "truncate":
            superseded = any(x["op"] == "truncate" and x["entity"] == e["entity"] for x in later)
        else:
            superseded = any(
                x["entity"] == e["entity"] and (x["op"] == "truncate" or x["key"] == e["key"]) for x in later
            )
        tombstone = e["op"] in ("delete", "truncate") or e["data"] is None
        expired = tombstone and e["ts"] + retention <= now
        if not (superseded or expired):
            keep.append(o)
    return point, keep


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(SAMPLE)
@given(cases())
def test_a_compacted_store_replays_like_the_original(case: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        original = make_store(Path(tmp) / "original", case["events"], segment_rows=case["segment_rows"])
        compacted = Path(tmp) / "compacted"
        shutil.copytree(original, compacted)
        result = compact(
            compacted,
            tombstone_retention=case["tombstone_retention"],
            min_lag=case["min_lag"],
            until_offset=case["until_offset"],
            now=case["now"],
        )
        point, keep = cleaner(case)
        assert result.cleanable_before == point
        before, after = records(original), records(compacted)
        assert [r[0] for r in after] == keep
        assert result.events_after == len(keep)
        # Offsets never rewritten: a survivor is its original record, or (a partial one) folded to a full upsert.
        originals = {r[0]: r for r in before}
        for o, e, k, op, data in after:
            assert (e, k) == originals[o][1:3]
            assert (op, data) == originals[o][3:] or (op == "upsert" and originals[o][3] in ("update", "patch"))
        assert [r for r in after if r[0] >= point] == [r for r in before if r[0] >= point]
        assert Store.open(compacted).state().next_offset == len(before)
        report = verify(str(compacted))
        assert report.ok, report.problems

        # The invariant: the same state at the head and at every offset at or after the compaction point.
        assert digest(compacted) == digest(original)
        for offset in range(max(point - 1, 0), len(before) - 1):
            assert digest(compacted, offset) == digest(original, offset), f"state differs at offset {offset}"


# --------------------------------------------------------------------------- raw files


@st.composite
def raw_lines(draw: st.DrawFn) -> list[str]:
    """JSON lines of a few keys: full rows (in their column order or another), partial updates,
    patches, deletes and tombstones."""
    import json

    out = []
    for _ in range(draw(st.integers(1, 12))):
        key = draw(st.sampled_from(["a", "b"]))
        kind = draw(st.sampled_from(["c", "u-full", "u-reordered", "u-partial", "u-wider", "patch", "d", "tombstone"]))
        ints = st.integers(0, 3)
        data: Any
        if kind in ("c", "u-full"):
            data = {"x": draw(ints), "y": draw(ints)}
        elif kind == "u-reordered":
            data = {"y": draw(ints), "x": draw(ints)}
        elif kind == "u-partial":
            data = {"y": draw(ints)}
        elif kind == "u-wider":
            data = {"x": draw(ints), "y": draw(ints), "z": draw(ints)}
        elif kind == "patch":
            data = {"z": draw(ints)}
        else:
            data = None
        op = {"c": "c", "patch": "patch", "d": "d", "tombstone": "u"}.get(kind, "u")
        out.append(json.dumps({"id": key, "op": op, "data": data}))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=raw_lines())
def test_a_compacted_raw_file_replays_as_the_file_does(lines: list[str]) -> None:
    from logtool.compact import compact_file
    from logtool.formats.base import Mapping
    from logtool.ingest import ingest
    from logtool.replay import replay

    mapping = Mapping(key_fields=("id",), op_field="op", data_field="data", entity="t")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("".join(line + "\n" for line in lines))
        with out.open("wb") as sink:
            compact_file(str(src), sink, mapping=mapping, now="2026-01-01T00:00:00Z")
        kept = out.read_text().splitlines()
        rest = iter(lines)
        assert all(any(line == other for other in rest) for line in kept)  # a subsequence, in order
        ingest(Path(tmp) / "a", [str(src)], mapping=mapping)
        if kept:
            ingest(Path(tmp) / "b", [str(out)], mapping=mapping)
            assert replay(Path(tmp) / "b").digest == replay(Path(tmp) / "a").digest
        else:
            assert replay(Path(tmp) / "a").state.num_rows == 0
