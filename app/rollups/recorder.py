"""Keeps the statistics rollups up to date, called inside the transaction that records a payment,
refund or subscription change (so a rolled-back change leaves no trace in them).

Revenue: each payment and refund *contributes* to one 15-minute bucket of its currency, as a
function of its row alone (a succeeded payment: its captured amount and a count at
``succeeded_at``; a succeeded refund: its amount and a count at its ``succeeded_at``). A change
adds ``contribution(after) - contribution(before)``, so the rollups always equal the sum of the
contributions of the rows as they are. Callers pass the row as their conditional update found it
(the update names the status it starts from, and the contributing columns only change with the
status), and the row it returned.

Declines are events, not a state: a payment entering FAILED appends one ``payment_declines`` row
(keyed by the payment and the operation that saw the decline) and counts one failed payment at
its ``failed_at``, and nothing takes it back (a declined payment canceled before dunning charges
again, or retried and paid, was still declined). The conditional update that records the status
already happens once per transition; the key makes a second recording of the same attempt (a
replay, a concurrent worker) add nothing even if it got this far.

Subscriptions: each subscription's inputs (customer, currency, plan, status, MRR by
``stats_subscription_mrr``) are compared with what was last recorded for it, under a lock on
that record; a difference becomes one ledger row, the customer-level MRR movement, and deltas
to the totals and per-day rollups.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.rollups.calendar import bucket_floor
from app.rollups.math import Movement, classify, customer_delta
from db.connection import Database, Row
from db.repositories.statistics import (
    REVENUE_COLUMNS,
    DeclineRow,
    StatisticsRepository,
    SubscriptionChangeRow,
)

__all__ = [
    "StatsRecorder",
    "decline_of",
    "movement_numbers",
    "payment_contribution",
    "refund_contribution",
]

_Parts = dict[tuple[str, datetime], dict[str, int]]

_MOVEMENT_COLUMN = {
    Movement.NEW: "new_mrr",
    Movement.EXPANSION: "expansion_mrr",
    Movement.CONTRACTION: "contraction_mrr",
    Movement.CHURN: "churned_mrr",
    Movement.REACTIVATION: "reactivation_mrr",
}
_CUSTOMER_COLUMN = {
    Movement.NEW: "new_customers",
    Movement.REACTIVATION: "reactivated_customers",
    Movement.CHURN: "churned_customers",
}


def payment_contribution(row: Mapping[str, Any] | None) -> _Parts:
    """What one payment row, as it is, adds to the revenue rollups (declines are counted as
    they happen instead: ``decline_of``)."""
    if row is None or row["status"] != "succeeded":
        return {}
    key = (row["currency"], bucket_floor(row["succeeded_at"]))
    return {key: {"gross": int(row["amount_captured"]), "payments": 1}}


def decline_of(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> DeclineRow | None:
    """The declined charge attempt that ``before`` becoming ``after`` records, if it entered
    FAILED. The attempt is the operation that recorded it (``before``'s operation key: the
    prefix of the idempotency keys sent to Stripe for that request, so every retry of one
    request has the same); a payment inserted already failed is its creation's attempt."""
    if after["status"] != "failed" or (before is not None and before["status"] == "failed"):
        return None
    if before is None:
        attempt = "create"
    elif before["operation_key"]:
        attempt = str(before["operation_key"])
    else:  # every status change holds an operation; a change without one is still one attempt
        attempt = f"{before['status']}:{after['failed_at'].isoformat()}"
    return DeclineRow(
        organization_id=after["organization_id"],
        payment_id=after["id"],
        attempt_key=attempt,
        customer_id=after["customer_id"],
        currency=after["currency"],
        amount=int(after["amount"]),
        failure_code=after["failure_code"],
        declined_at=after["failed_at"],
    )


def refund_contribution(row: Mapping[str, Any] | None) -> _Parts:
    """What one refund row adds to the revenue rollups."""
    if row is None or row["status"] != "succeeded":
        return {}
    key = (row["currency"], bucket_floor(row["succeeded_at"]))
    return {key: {"refunded": int(row["amount"]), "refunds": 1}}


def movement_numbers(
    status_before: str | None,
    status_after: str,
    mrr_before: int,
    mrr_after: int,
    movement: Movement | None,
) -> dict[str, int]:
    """What one subscription change adds to the per-day movement rollup (``mrr_movement_days``
    columns): the MRR moved by its customer-level movement, the paying-customer change, and
    trials started (created trialing), ended (left TRIALING) and converted (left it for
    ACTIVE)."""
    moved: dict[str, int] = {}
    if movement is not None:
        moved[_MOVEMENT_COLUMN[movement]] = abs(mrr_after - mrr_before)
        if customer_delta(movement):
            moved[_CUSTOMER_COLUMN[movement]] = 1
    if status_before is None and status_after == "trialing":
        moved["trials_started"] = 1
    if status_before == "trialing" and status_after != "trialing":
        moved["trials_ended"] = 1
        if status_after == "active":
            moved["trials_converted"] = 1
    return moved


def _difference(before: _Parts, after: _Parts) -> _Parts:
    changes: _Parts = {}
    for sign, parts in ((-1, before), (1, after)):
        for key, numbers in parts.items():
            into = changes.setdefault(key, dict.fromkeys(REVENUE_COLUMNS, 0))
            for name, value in numbers.items():
                into[name] += sign * value
    return {key: numbers for key, numbers in changes.items() if any(numbers.values())}


class StatsRecorder:
    def __init__(self, db: Database) -> None:
        self._repo = StatisticsRepository(db)

    async def payment_changed(self, before: Row | None, after: Row) -> None:
        """``before`` (None for a new payment) became ``after`` in this transaction."""
        changes = _difference(payment_contribution(before), payment_contribution(after))
        if changes:
            await self._repo.add_revenue(after["organization_id"], changes)
        decline = decline_of(before, after)
        if decline is not None:
            await self._repo.add_decline(decline, bucket_floor(decline.declined_at))

    async def refund_changed(self, before: Row | None, after: Row) -> None:
        """``before`` (None for a new refund) became ``after`` in this transaction."""
        changes = _difference(refund_contribution(before), refund_contribution(after))
        if changes:
            await self._repo.add_revenue(after["organization_id"], changes)

    async def subscription_changed(self, org: str, subscription_id: str) -> None:
        """Record the subscription as it is now in this transaction, if that differs from what
        was last recorded. Safe to call after any change that may affect it (a transition, a
        coupon redeemed for its current period): an unchanged subscription writes nothing."""
        now, state = await self._repo.lock_state(org, subscription_id)
        # Read after the lock: a concurrent recorder of this subscription has committed by now.
        current = await self._repo.current_subscription(org, subscription_id)
        if current is None:
            return
        names = ("customer_id", "currency", "plan_id", "status", "mrr")
        if state is not None and all(state[n] == current[n] for n in names):
            return
        customer, currency = current["customer_id"], current["currency"]
        if state is not None and (state["customer_id"], state["currency"]) != (customer, currency):
            raise RuntimeError(f"subscription {subscription_id} changed customer or currency")
        mrr_before = int(state["mrr"]) if state is not None else 0
        mrr = int(current["mrr"])
        movement = None
        if mrr != mrr_before:
            after, episodes = await self._repo.add_customer_mrr(
                org, customer, currency, mrr - mrr_before
            )
            movement = classify(after - (mrr - mrr_before), after, episodes)
        await self._repo.record_subscription_change(
            org, _change(org, subscription_id, now, state, current, movement)
        )


def _change(
    org: str,
    subscription_id: str,
    now: datetime,
    state: Row | None,
    current: Row,
    movement: Movement | None,
) -> SubscriptionChangeRow:
    mrr = int(current["mrr"])
    mrr_before = int(state["mrr"]) if state is not None else 0
    status_before = state["status"] if state is not None else None
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    if state is not None:
        key = (state["currency"], state["plan_id"], state["status"])
        counts[key] = {"subscriptions": -1, "mrr": -mrr_before}
    key = (current["currency"], current["plan_id"], current["status"])
    into = counts.setdefault(key, {"subscriptions": 0, "mrr": 0})
    into["subscriptions"] += 1
    into["mrr"] += mrr
    moved = movement_numbers(status_before, current["status"], mrr_before, mrr, movement)
    return SubscriptionChangeRow(
        event={
            "organization_id": org,
            "occurred_at": now,
            "subscription_id": subscription_id,
            "customer_id": current["customer_id"],
            "currency": current["currency"],
            "plan_before": state["plan_id"] if state is not None else None,
            "status_before": status_before,
            "mrr_before": mrr_before,
            "plan_after": current["plan_id"],
            "status_after": current["status"],
            "mrr_after": mrr,
            "movement": movement.value if movement is not None else None,
        },
        state={
            "organization_id": org,
            "subscription_id": subscription_id,
            "customer_id": current["customer_id"],
            "currency": current["currency"],
            "plan_id": current["plan_id"],
            "status": current["status"],
            "mrr": mrr,
            "recorded_at": now,
        },
        counts=[
            {"currency": c, "plan_id": p, "status": s, **numbers}
            for (c, p, s), numbers in counts.items()
            if any(numbers.values())
        ],
        movement=moved or None,
    )
