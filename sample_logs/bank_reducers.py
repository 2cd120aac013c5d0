"""Reducers for ``bank_events.jsonl``: the state of one bank account, folded from its events.

Every reducer is a pure function ``(state, event) -> state``. ``event`` is a dict with the keys
``offset``, ``ts``, ``key`` (the account id), ``type`` (``MoneyDeposited`` ...), ``data`` (the
event body, a dict) and ``meta`` (a dict: actor, event_id, causation_id, correlation_id).

The state of an account is a dict::

    {"owner": "Ada Lindqvist", "currency": "EUR", "balance": "120.50", "status": "open"}

``balance`` is a decimal string with two places, so it stays exact (never a float). ``status`` is
``open``, ``frozen`` or ``closed``; a closed account keeps its state, so a replay still shows it.

Event versions: every body carries its schema version as ``"v"`` (``VERSION_FIELD``); the log's
envelope has the same number as ``version``, but a reducer sees only ``data`` and ``meta``, so
the body carries it too. The current version of every type is 2 (``CURRENT_VERSION``). Version 1
exists only for ``MoneyDeposited``: ``{"v": 1, "amount_cents": 1000}``, which
``UPCASTERS[("MoneyDeposited", 1)]`` turns into ``{"v": 2, "amount": "10.00", "currency": "EUR"}``
(the version-1 teller system handled euros only). A replay looks up
``UPCASTERS[(event["type"], event["data"]["v"])]`` and applies it, again and again, until no
upcaster matches, then calls ``REDUCERS[event["type"]]``.

Reducers record facts; they do not enforce business rules. An overdraft that the log holds (the
``sweep-bot`` transfer that takes ``acc-1003`` to ``-300.00``) is replayed as it happened.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

State = dict[str, Any]
Event = dict[str, Any]

VERSION_FIELD = "v"
CURRENT_VERSION = 2

_CENT = Decimal("0.01")


def _money(text: str) -> Decimal:
    return Decimal(text).quantize(_CENT)


def _require(state: State | None, event: Event) -> State:
    # An event for an account that was never opened means the log is broken: say where.
    if state is None:
        raise ValueError(f"{event['type']} at offset {event['offset']} for {event['key']}, which was never opened")
    return state


def _move(state: State | None, event: Event, sign: int) -> State:
    current = _require(state, event)
    body = event["data"]
    if body.get("currency", current["currency"]) != current["currency"]:
        raise ValueError(
            f"{event['type']} at offset {event['offset']} is in {body['currency']}, "
            f"but {event['key']} holds {current['currency']}"
        )
    balance = _money(current["balance"]) + sign * _money(body["amount"])
    return {**current, "balance": str(balance)}


def account_opened(state: State | None, event: Event) -> State:
    """A new account: its owner and currency, balance zero, open."""
    body = event["data"]
    return {"owner": body["owner"], "currency": body["currency"], "balance": "0.00", "status": "open"}


def money_deposited(state: State | None, event: Event) -> State:
    """Cash in: the balance grows by ``amount``."""
    return _move(state, event, +1)


def money_withdrawn(state: State | None, event: Event) -> State:
    """Cash out: the balance shrinks by ``amount``."""
    return _move(state, event, -1)


def transfer_sent(state: State | None, event: Event) -> State:
    """Money leaves this account for ``to_account``."""
    return _move(state, event, -1)


def transfer_received(state: State | None, event: Event) -> State:
    """Money arrives from ``from_account``."""
    return _move(state, event, +1)


def account_frozen(state: State | None, event: Event) -> State:
    """The account is frozen; its balance stays as it is."""
    return {**_require(state, event), "status": "frozen"}


def account_closed(state: State | None, event: Event) -> State:
    """The account is closed; its last state is kept."""
    return {**_require(state, event), "status": "closed"}


def upcast_money_deposited_v1(event: Event) -> Event:
    """Version 1 ``{"amount_cents": 1000}`` -> version 2 ``{"amount": "10.00", "currency": "EUR"}``."""
    body = {k: v for k, v in event["data"].items() if k not in ("amount_cents", VERSION_FIELD)}
    amount = (Decimal(event["data"]["amount_cents"]) * _CENT).quantize(_CENT)
    return {**event, "data": {VERSION_FIELD: 2, "amount": str(amount), "currency": "EUR", **body}}


REDUCERS: dict[str, Callable[[State | None, Event], State | None]] = {
    "AccountOpened": account_opened,
    "MoneyDeposited": money_deposited,
    "MoneyWithdrawn": money_withdrawn,
    "TransferSent": transfer_sent,
    "TransferReceived": transfer_received,
    "AccountFrozen": account_frozen,
    "AccountClosed": account_closed,
}

UPCASTERS: dict[tuple[str, int], Callable[[Event], Event]] = {
    ("MoneyDeposited", 1): upcast_money_deposited_v1,
}
