"""Reconciliation with Stripe: what a lost webhook (or a crash) left is repaired from Stripe's
state, logged, and announced like any change; failed incoming Stripe events are listed and
replayed."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from app.core.settings import Settings
from tests.fault_support import BILLING, fault_env
from tests.support import GraphQLClient

STATUS = "query($id: ID!) { payment(id: $id) { status } }"


async def _intent(app_services: Any, org: str, payment_id: str) -> str:
    return str(
        await app_services.db.fetch_val(
            "SELECT stripe_payment_intent_id FROM payments WHERE organization_id = :org "
            "AND id = :id",
            {"org": org, "id": payment_id},
        )
    )


async def _events(app_services: Any, org: str, object_id: str) -> list[str]:
    rows = await app_services.db.fetch_all(
        "SELECT type FROM webhook_events WHERE organization_id = :org AND object_id = :id "
        "ORDER BY id",
        {"org": org, "id": object_id},
    )
    return [row["type"] for row in rows]


async def test_a_payment_completed_at_stripe_with_its_webhook_lost_is_repaired(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    payment_factory: Callable[..., Any],
) -> None:
    completed = await payment_factory()
    canceled = await payment_factory()
    untouched = await payment_factory()
    # Stripe moves on without us: the customer completes one payment (Stripe.js), the other is
    # canceled from the dashboard; both webhooks are lost.
    await app_services.stripe.confirm_payment_intent(
        await _intent(app_services, org, completed["id"]), idempotency_key=f"js-{uuid.uuid4()}"
    )
    await app_services.stripe.cancel_payment_intent(
        await _intent(app_services, org, canceled["id"]), idempotency_key=f"ui-{uuid.uuid4()}"
    )
    for made in (completed, canceled, untouched):
        status = (await admin.data(STATUS, {"id": made["id"]}))["payment"]["status"]
        assert status == "REQUIRES_CONFIRMATION"

    report = await app_services.reconcile(org=org, settle=timedelta(0))

    assert report.unreachable == 0
    assert sorted((r.object_id, r.before, r.after) for r in report.repairs) == sorted(
        [
            (completed["id"], "requires_confirmation", "succeeded"),
            (canceled["id"], "requires_confirmation", "canceled"),
        ]
    )
    assert report.checked == 3
    assert (await admin.data(STATUS, {"id": completed["id"]}))["payment"]["status"] == "SUCCEEDED"
    assert (await admin.data(STATUS, {"id": canceled["id"]}))["payment"]["status"] == "CANCELED"
    # announced like any change, in the transaction that recorded it
    assert await _events(app_services, org, completed["id"]) == ["payment.succeeded"]
    assert await _events(app_services, org, canceled["id"]) == []
    logged = await app_services.db.fetch_all(
        "SELECT object_id, status_before, status_after FROM reconciliation_repairs "
        "WHERE organization_id = :org ORDER BY object_id",
        {"org": org},
    )
    assert sorted((r["object_id"], r["status_after"]) for r in logged) == sorted(
        [(completed["id"], "succeeded"), (canceled["id"], "canceled")]
    )
    again = await app_services.reconcile(org=org, settle=timedelta(0))
    assert again.repairs == []


async def test_recent_changes_are_left_to_their_requests(
    org: str, app_services: Any, payment_factory: Callable[..., Any]
) -> None:
    made = await payment_factory()
    await app_services.stripe.confirm_payment_intent(
        await _intent(app_services, org, made["id"]), idempotency_key=f"js-{uuid.uuid4()}"
    )
    report = await app_services.reconcile(org=org, settle=timedelta(minutes=5))
    assert report.checked == 0
    assert report.repairs == []


async def test_billing_reconcile_repairs_and_reports(
    org: str,
    settings: Settings,
    app_services: Any,
    payment_factory: Callable[..., Any],
    tmp_path: Path,
) -> None:
    made = await payment_factory()
    await app_services.stripe.confirm_payment_intent(
        await _intent(app_services, org, made["id"]), idempotency_key=f"js-{uuid.uuid4()}"
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [*BILLING, "reconcile", "--org", org, "--settle-seconds", "0"],
        env=fault_env(settings, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"repaired payment {made['id']} ({org}): requires_confirmation -> succeeded" in (
        done.stdout
    )
    assert "1 checked with Stripe: 1 repaired, 0 skipped, 0 unreachable." in done.stdout


FAILED_EVENTS = """
{ stripeEvents(status: FAILED) { totalCount edges { node { id status error replayable } } } }
"""
REPLAY = """
mutation($input: StripeEventReplayInput!) {
  stripeEventReplay(input: $input) { event { id status error } errors { code } }
}
"""


async def test_a_failed_stripe_event_is_listed_and_replayed(
    admin: GraphQLClient,
    org: str,
    app_services: Any,
    payment_factory: Callable[..., Any],
) -> None:
    made = await payment_factory()
    intent = await _intent(app_services, org, made["id"])
    await app_services.stripe.confirm_payment_intent(intent, idempotency_key=f"js-{uuid.uuid4()}")
    event_id = f"evt_{uuid.uuid4().hex}"
    body = json.dumps(
        {
            "id": event_id,
            "type": "payment_intent.succeeded",
            "data": {
                "object": {
                    "id": intent,
                    "metadata": {"billing_organization": org, "billing_payment_id": made["id"]},
                }
            },
        }
    )
    # It failed when it arrived (say the payment was busy and then the database refused):
    await app_services.webhooks._events.failed(org, event_id, "payment_intent.succeeded", "x", body)
    listed = (await admin.data(FAILED_EVENTS))["stripeEvents"]
    assert listed["totalCount"] == 1
    assert listed["edges"][0]["node"] == {
        "id": event_id,
        "status": "FAILED",
        "error": "x",
        "replayable": True,
    }
    replayed = (await admin.data(REPLAY, {"input": {"eventId": event_id}}))["stripeEventReplay"]
    assert replayed == {
        "event": {"id": event_id, "status": "PROCESSED", "error": None},
        "errors": [],
    }
    assert (await admin.data(STATUS, {"id": made["id"]}))["payment"]["status"] == "SUCCEEDED"
    assert (await admin.data(FAILED_EVENTS))["stripeEvents"]["totalCount"] == 0
    again = (await admin.data(REPLAY, {"input": {"eventId": event_id}}))["stripeEventReplay"]
    assert again["errors"] == [{"code": "INVALID_STATE"}]
    unknown = (await admin.data(REPLAY, {"input": {"eventId": "evt_nope"}}))["stripeEventReplay"]
    assert unknown["errors"] == [{"code": "NOT_FOUND"}]
