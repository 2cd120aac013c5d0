"""`logtool diff`: where two replicas differ. Exit 0 same, 1 different, 2 trouble (as diff(1))."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import console
from ..errors import EXIT_DIFFERENT, counted
from ._common import FormatOpt, OutputFormat, boundary, render, render_object, resolve, verdict
from .replay import AtPosition, AtTime

if TYPE_CHECKING:
    from ..diff import DiffResult


class Align(StrEnum):
    offset = "offset"
    position = "position"


def command(
    left: Annotated[str, typer.Argument(help="A store, or a table dump (`.parquet`, `.csv` or `.tsv`, plain or .gz/.zst).", metavar="LEFT")],
    right: Annotated[str, typer.Argument(help="A store, or a table dump (`.parquet`, `.csv` or `.tsv`, plain or .gz/.zst).", metavar="RIGHT")],
    at_offset: Annotated[
        int | None,
        typer.Option("--at-offset", help="Compare states at this offset (two stores), or replay the store to it."),
    ] = None,
    at_time: AtTime = None,
    at_position: AtPosition = None,
    entity: Annotated[
        str | None, typer.Option("--entity", "-e", help="Only this entity (the one a dump holds).")
    ] = None,
    key_column: Annotated[
        list[str] | None,
        typer.Option(
            "--key-column",
            "--key",
            "-k",
            help="Key column of a table dump; repeat for a composite key. Without one, rows are compared as multisets.",
        ),
    ] = None,  # fmt: skip
    float_tolerance: Annotated[
        str | None,
        typer.Option("--float-tolerance", help="Let floats, and numbers in JSON or CSV, differ by this much."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many examples to show (`--format jsonl` lists all).")] = 10,
    by: Annotated[Align, typer.Option("--by", help="Align two logs by offset or by source position.")] = Align.offset,
    format: FormatOpt = None,
) -> None:
    """Compare two replicas: exit 0 same, 1 different, 2 trouble.

    Two stores are compared as logs (the first divergent offset, then events missing, extra and
    changed after it), then as states at the head; `--at-offset N` compares their states at N,
    `--at-time T` or `--at-position P` at a time or a source position (replicas captured
    separately, whose offsets differ). A store against a table dump compares the store's entity,
    replayed (to the head, or to that target), with the dump; two dumps
    are compared table to table. Tables are joined on `--key-column` (keys only on one side,
    changed keys with each differing field); without one, as multisets of rows.

    Values are compared exactly: NULL, `''` and `<null>` differ; decimals as decimals; timestamps
    as instants; JSON as values. `--format json` prints one summary object, `--format jsonl`
    every difference.

    Examples:

        logtool diff replica_a.store replica_b.store
        logtool diff shop.store customers.parquet --entity public.customers --key-column id
        logtool diff primary.store standby.store --at-position 0/1B4F678
        logtool diff a.parquet b.csv --key-column region --key-column id --format json
    """
    import logtool

    result = logtool.diff(  # type: ignore[operator]  # the function, not the module of that name
        left, right, at_offset=at_offset, at_time=at_time, at_position=at_position, entity=entity, key_columns=tuple(key_column or ()),
        float_tolerance=float_tolerance, limit=limit, by=by.value,
    )  # fmt: skip
    verdict(0 if result.same else EXIT_DIFFERENT)
    fmt = resolve(format)
    if fmt is OutputFormat.json:
        render_object(result.to_dict(), fmt)
    elif fmt is OutputFormat.jsonl:
        from ..formats.base import dumps_exact
        from ..formats.writers import plain

        for difference in result.differences():
            sys.stdout.write(dumps_exact(plain(difference)) + "\n")
    elif fmt is OutputFormat.csv:
        render(_flat_batches(result.differences()), fmt)
    else:
        _show(result)
    for note in result.notes:
        console.status(f"note: {note}")
    console.status(_verdict(result))
    if not result.same:
        raise typer.Exit(EXIT_DIFFERENT)


def _verdict(result: DiffResult) -> str:
    if result.same:
        return "same"
    parts = []
    if result.first_divergent_offset is not None:
        parts.append(f"first divergent offset {result.first_divergent_offset}")
    parts.append(f"{result.only_left} only left, {result.only_right} only right, {result.changed} changed")
    for side in ("left", "right"):
        if columns := result.info.get(f"columns_only_{side}"):
            parts.append(f"columns only {side}: {', '.join(columns)}")
    if result.state is not None and not result.state.same:
        s = result.state
        parts.append(f"head state: {s.only_left} only left, {s.only_right} only right, {s.changed} changed")
    return "different: " + "; ".join(parts)


# ---------------------------------------------------------------------------- for people


def _show(result: DiffResult) -> None:
    summary = {k: _text(v) if isinstance(v, dict) else v for k, v in result.to_dict().items()
               if k not in ("examples", "state", "notes")}  # fmt: skip
    render_object(summary, OutputFormat.table)
    _examples(result)
    if result.state is not None:
        console.out.print("\n[bold]head state[/bold]")
        state = {k: v for k, v in result.state.to_dict().items() if k not in ("examples", "left", "right")}
        render_object(state, OutputFormat.table)
        _examples(result.state)


def _examples(result: DiffResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    rows = list(_flat(result.examples))
    if not rows:
        return
    total = result.only_left + result.only_right + result.changed
    table = Table(title=f"first {len(result.examples)} of {counted(total, 'difference')}", title_justify="left")
    for name in ("change", "where", "field", "left", "right"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(escape(row[c] or "") for c in ("change", "where", "field", "left", "right")))
    console.out.print(table)


# ---------------------------------------------------------------------------- flat rows


def _text(value: Any) -> str | None:
    from ..formats.base import RawJSON, dumps_exact
    from ..formats.writers import plain

    if value is None:
        return None
    if isinstance(value, str) and not isinstance(value, RawJSON):
        return json.dumps(value, ensure_ascii=False)
    return dumps_exact(plain(value))


def _flat(differences: Iterable[dict[str, Any]]) -> Iterator[dict[str, str | None]]:
    """One row per differing field (per missing or extra row or event): values as JSON text."""
    for d in differences:
        base = {"scope": d.get("scope"), "change": d["change"]}
        if "key" in d and "event" not in d or "count" in d:
            # a key; a keyless row: how many times it is surplus (after its entity, in a state)
            key = d.get("key")
            surplus = f"{d['count']} rows" if d.get("count", 1) != 1 else None
            named = _text(next(iter(key.values())) if len(key) == 1 else key) if key else None
            base["where"] = ", ".join(w for w in (named, surplus) if w) or None
        elif d["change"] == "changed":
            lo, ro = d["left"]["offset"], d["right"]["offset"]
            base["where"] = f"offset {lo}" if lo == ro else f"offset {lo} / {ro}"
        elif "event" in d:
            base["where"] = f"offset {d['event']['offset']}"
        elif d["change"] == "reordered":  # the same events from there on, in another order
            yield {**base, "where": f"offset {d['offset']}", "field": None,
                   "left": _text(d["left"]), "right": _text(d["right"])}  # fmt: skip
            continue
        if d["change"] == "changed":
            for f in d["fields"]:  # a side the field is missing from is empty; a JSON null is `null`
                yield {**base, "field": f["field"], **{side: _json_or_absent(f, side) for side in ("left", "right")}}
        else:
            body = d.get("event", d.get("row"))
            side = "left" if d["change"] == "only_left" else "right"
            other = "right" if side == "left" else "left"
            yield {**base, "field": None, side: _text(body) or "", other: None}


def _json_or_absent(fields: dict[str, Any], side: str) -> str | None:
    if side not in fields:
        return None
    return "null" if fields[side] is None else _text(fields[side])


def _flat_batches(differences: Iterable[dict[str, Any]]) -> Iterator[Any]:
    import itertools

    import pyarrow as pa

    schema = pa.schema([(c, pa.string()) for c in ("scope", "change", "where", "field", "left", "right")])
    rows = _flat(differences)
    yield pa.Table.from_pylist(list(itertools.islice(rows, 1000)), schema=schema)  # (a CSV header, at least)
    while chunk := list(itertools.islice(rows, 1000)):
        yield pa.Table.from_pylist(chunk, schema=schema)


def register(app: typer.Typer) -> None:
    app.command("diff")(boundary(command))
