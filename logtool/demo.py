"""The demo: logtool's main job, end to end, on the bundled sample logs in a temporary store.

Each step is the library call a CLI command makes; ``steps()`` yields what each found, so the
command can show it and a test can check it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UsageError
from .formats.base import Mapping

SHOP = Mapping(
    key_fields=("id",), entity_field="table", op_field="op", ts_field="ts", data_field="data",
    meta_fields=("actor", "txid"),
)  # fmt: skip
BANK = Mapping(
    key_fields=("account_id",), entity_field="stream", type_field="type", ts_field="ts", data_field="body",
    meta_fields=("actor", "event_id", "causation_id", "correlation_id"),
)  # fmt: skip
PEOPLE = Mapping(
    key_fields=("id",), entity_field="table", op_field="op", ts_field="ts", data_field="data",
    meta_fields=("actor",), prev_key_field="prev_id",
)  # fmt: skip
REPLICA = Mapping(key_fields=("id",), entity_field="table", op_field="op", ts_field="ts", data_field="data")


@dataclass
class Step:
    """One step of the demo: what it does, the command a user would type, and what it found."""

    title: str
    command: str
    result: Any


def sample_dir() -> Path:
    """The bundled sample_logs/ (next to the package in a checkout)."""
    here = Path(__file__).resolve().parent.parent / "sample_logs"
    if not (here / "shop_cdc.jsonl").exists():
        raise UsageError("the bundled sample_logs/ folder was not found", "run the demo from a checkout of logtool, or pass --samples DIR")
    return here


def steps(workdir: str | Path, samples: str | Path | None = None) -> Iterator[Step]:
    """Run the demo in ``workdir`` (stores are created there), yielding each step's result."""
    from .ingest import ingest
    from .integrity import verify
    from .query import info, sql
    from .replay import replay

    src = Path(samples) if samples else sample_dir()
    work = Path(workdir)
    shop, bank = work / "shop.store", work / "bank.store"

    r = ingest(shop, [str(src / "shop_cdc.jsonl")], mapping=SHOP)
    yield Step(
        "Ingest an e-commerce CDC log",
        "logtool ingest shop.store sample_logs/shop_cdc.jsonl --key-field id --entity-field table --op-field op "
        "--ts-field ts --data-field data --meta-field actor --meta-field txid",
        {"ingested": r.ingested, "quarantined": r.quarantined, "entities": info(shop)["entities"]},
    )
    deploy = (
        "SELECT \"offset\", ts, key, op, data FROM events WHERE ts BETWEEN '2026-03-01 14:03:00' AND "
        "'2026-03-01 14:03:30' AND meta->>'actor' = 'deploy-bot' ORDER BY \"offset\""
    )
    yield Step(
        "What happened around the bad deploy? (SQL over the events)",
        'logtool sql shop.store "' + deploy.replace('"', '\\"') + '"',
        sql(shop, deploy),
    )
    before = replay(shop, at_time="2026-03-01T14:03:00Z", entity="public.customers", key="42")
    during = replay(shop, at_time="2026-03-01T14:03:10Z", entity="public.customers", key="42")
    yield Step(
        "Customer 42 before the bad deploy (14:03:00) and just after it (14:03:10)",
        "logtool replay shop.store --at-time 2026-03-01T14:03:00Z --entity public.customers --key 42",
        {"14:03:00": before.state.column("state")[0].as_py(), "14:03:10": during.state.column("state")[0].as_py()},
    )
    from .audit import why

    blamed = why(shop, "42", "balance", value=-300, entity="public.customers")
    yield Step(
        "Why was customer 42's balance -300? The event, its actor, and what else its transaction did",
        "logtool why shop.store 42 balance --value -300 --entity public.customers",
        {
            "event": {k: blamed.event.get(k) for k in ("offset", "ts", "op", "actor", "txid", "data")},
            "same transaction": [(e.get("offset"), e.get("entity"), e.get("key")) for e in blamed.transaction],
            "note": blamed.note,
        },
    )
    head = replay(shop)
    yield Step(
        "The whole state at the head, with its digest",
        "logtool replay shop.store --format parquet -o state/",
        {"offset": head.offset, "rows": head.state.num_rows, "digest": head.digest},
    )

    ingest(bank, [str(src / "bank_events.jsonl")], mapping=BANK)
    accounts = replay(bank, reducer=str(src / "bank_reducers.py"))
    yield Step(
        "Replay an event-sourced bank log through its Python reducers",
        "logtool replay bank.store --reducer sample_logs/bank_reducers.py",
        accounts.state,
    )
    reducers = str(src / "bank_reducers.py")
    overdraft = why(bank, "acc-1003", "balance", reducer=reducers)
    yield Step(
        "Why is account acc-1003 at -300.00? Its causation chain crosses accounts",
        "logtool why bank.store acc-1003 balance --reducer sample_logs/bank_reducers.py",
        {
            "event": {k: overdraft.event.get(k) for k in ("offset", "type", "actor", "event_id", "causation_id")},
            "caused by": [(e.get("event_id"), e.get("key"), e.get("type")) for e in overdraft.chain],
            "correlated": [(e.get("event_id"), e.get("key"), e.get("type")) for e in overdraft.correlated],
        },
    )

    from .diff import diff

    replica_a, replica_b = work / "replica_a.store", work / "replica_b.store"
    ingest(replica_a, [str(src / "replica_a.jsonl")], mapping=REPLICA)
    ingest(replica_b, [str(src / "replica_b.jsonl")], mapping=REPLICA)
    compared = diff(replica_a, replica_b)
    yield Step(
        "Where did two replicas diverge?",
        "logtool diff replica_a.store replica_b.store --format json",
        {
            "same": compared.same,
            "first divergent offset": compared.first_divergent_offset,
            "events missing / extra / changed": (compared.only_left, compared.only_right, compared.changed),
            "head states": (compared.to_dict().get("state") or {}).get("examples"),
        },
    )

    from .compact import compact

    compacted = compact(shop, tombstone_retention="1d", now="2026-03-05T00:00:00Z")
    after = replay(shop)
    yield Step(
        "Compact the CDC log (latest record per key; tombstones older than a day expire)",
        "logtool compact shop.store --tombstone-retention 1d --now 2026-03-05T00:00:00Z --yes",
        {
            "events": f"{compacted.events_before} -> {compacted.events_after}",
            "removed": compacted.removed,
            "bytes": f"{compacted.bytes_before} -> {compacted.bytes_after}",
            "same state at the head": after.digest == head.digest,
        },
    )

    from .purge import purge, redact

    people = work / "people.store"
    ingest(people, [str(src / "people_pii.jsonl")], mapping=PEOPLE, segment_rows=16)
    mira = "mira.kovac@example.org"
    before_hits = sql(people, f"SELECT count(*) AS n FROM events WHERE contains(data, '{mira}')").column("n")[0].as_py()
    erased = purge(people, key="10033", entity="public.users", reason="erasure request #118")
    signups = [purge(people, key=k, entity="public.signups", reason="erasure request #118") for k in ("508", "519")]
    note = redact(people, ["note"], where="data->>'note' LIKE '%Mira Kovac%'", reason="erasure request #118")
    after_hits = sql(people, f"SELECT count(*) AS n FROM events WHERE contains(data, '{mira}')").column("n")[0].as_py()
    receipt = erased.receipt or {}
    yield Step(
        "Erase a person (user 33, later 10033) from a PII log: purge, redact, and the receipt",
        "logtool purge people.store --key 10033 --entity public.users --reason 'erasure request #118' --yes\n"
        "$ logtool purge people.store --key 508 --entity public.signups --reason 'erasure request #118' --yes\n"
        "$ logtool purge people.store --key 519 --entity public.signups --reason 'erasure request #118' --yes\n"
        "$ logtool redact people.store --field note --where \"data->>'note' LIKE '%Mira Kovac%'\" "
        "--reason 'erasure request #118' --yes",
        {
            "events mentioning her email, before": before_hits,
            "events purged": erased.events + sum(p.events for p in signups),
            "notes redacted": note.events,
            "events mentioning her email, after": after_hits,
            "receipt (in the commit)": {k: v for k, v in receipt.items() if k != "segments"},
            "segments in the receipt": len(receipt.get("segments", [])),
            # kept with the request, not in the store: it alone shows the receipt was for user 10033
            "proof (printed by the purge)": erased.proof,
        },
    )

    for name, path in (("shop.store", shop), ("people.store", people)):
        check = verify(str(path))
        yield Step(
            f"Verify {name}: every digest, the commit chain, every offset gap explained",
            f"logtool verify {name}",
            {"ok": check.ok, "commits": check.commits, "segments": check.segments, "events": check.events},
        )
