"""A fault test: two `billing serve` and two `billing worker` processes on one database run a
mixed workload (plans, subscriptions on the test clock, payments, concurrent refunds, invoices,
credit notes, live subscribers on both API processes) for a bounded time; midway one API
process and one worker are SIGKILLed, the workload goes on through the survivors, and both are
restarted on the same ports. Afterwards every guarantee of the design must hold: no double
charge (in our tables and at the Stripe emulator), no over-refund, no period billed twice,
gapless document numbers, rollups equal to a recomputation, `billing verify` clean, and live
subscribers either uninterrupted and complete (the surviving process) or reconnected with a
fresh snapshot (the killed one).

FAULT_SECONDS (default 40) sets the length of the workload, for soaks."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.settings import Settings
from db.connection import Database
from tests.fault_support import (
    BILLING,
    EXPECTED_CODES,
    Apis,
    Org,
    Watcher,
    Workload,
    cluster,
    fault_env,
)
from tests.stats_support import assert_rollups_match_raw
from tests.support import new_org, token

pytestmark = pytest.mark.slow

FAULT_SECONDS = float(os.environ.get("FAULT_SECONDS", "40"))


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = Database(settings.database_url or "", min_size=1, max_size=3)
    await database.connect()
    yield database
    await database.disconnect()


async def run_lanes(lanes: list[asyncio.Task[None]], seconds: float) -> None:
    """Let the workload run ``seconds`` more; a driver that failed fails the test now."""
    done, _ = await asyncio.wait(lanes, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()


async def eventually(check: Callable[[], Any], what: str, seconds: float = 120) -> None:
    """Wait (generously: the machine may be loaded) until the async ``check`` is true."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f}s: {what}")
        await asyncio.sleep(0.3)


# -- invariants over the database -----------------------------------------------------------

UNSETTLED = """
SELECT count(*) FROM subscriptions s JOIN test_clocks c USING (organization_id)
WHERE s.organization_id = ANY(:orgs)
  AND (s.next_action_at <= c.frozen_at OR s.leased_until > now())
"""
# The same subscription period on two invoices (any status but draft).
PERIODS_BILLED_TWICE = """
SELECT i.subscription_id, l.period_start, count(DISTINCT i.id) AS n
FROM invoice_lines l
JOIN invoices i ON i.organization_id = l.organization_id AND i.id = l.invoice_id
WHERE l.organization_id = :org AND l.kind = 'subscription' AND i.status <> 'draft'
GROUP BY i.subscription_id, l.period_start HAVING count(DISTINCT i.id) > 1
"""
SUBSCRIPTION_PERIODS = """
SELECT count(*) FROM invoice_lines l
JOIN invoices i ON i.organization_id = l.organization_id AND i.id = l.invoice_id
WHERE l.organization_id = :org AND l.kind = 'subscription' AND i.status <> 'draft'
"""
# An invoice (so a subscription period) paid by more than one succeeded payment.
INVOICES_CHARGED_TWICE = """
SELECT metadata->>'invoice_id' AS invoice_id, count(*) AS n FROM payments
WHERE organization_id = :org AND status = 'succeeded' AND metadata ? 'invoice_id'
GROUP BY metadata->>'invoice_id' HAVING count(*) > 1
"""
OVERPAID_INVOICES = """
SELECT id FROM invoices WHERE organization_id = :org AND (amount_paid > amount_due OR
  amount_paid > greatest(total, 0))
"""
OVER_REFUNDED = """
SELECT p.id, p.amount_captured, p.amount_refunded,
       coalesce(sum(r.amount) FILTER (WHERE r.status IN ('pending_approval', 'pending',
                'succeeded')), 0) AS committed,
       coalesce(sum(r.amount) FILTER (WHERE r.status = 'succeeded'), 0) AS succeeded
FROM payments p
LEFT JOIN refunds r ON r.organization_id = p.organization_id AND r.payment_id = p.id
WHERE p.organization_id = :org
GROUP BY p.id, p.amount_captured, p.amount_refunded
HAVING coalesce(sum(r.amount) FILTER (WHERE r.status IN ('pending_approval', 'pending',
                'succeeded')), 0) > p.amount_captured
    OR p.amount_refunded > p.amount_captured
    OR p.amount_refunded <> coalesce(sum(r.amount) FILTER (WHERE r.status = 'succeeded'), 0)
"""
SEQUENCES = {
    "invoice": "SELECT number_sequence FROM invoices WHERE organization_id = :org "
    "AND number_sequence IS NOT NULL ORDER BY number_sequence",
    "credit_note": "SELECT number_sequence FROM credit_notes WHERE organization_id = :org "
    "ORDER BY number_sequence",
}
COUNTER = (
    "SELECT last_number FROM document_counters WHERE organization_id = :org AND series = :series"
)
PENDING_REFUNDS = (
    "SELECT organization_id, id, credit_note_id FROM refunds "
    "WHERE organization_id = ANY(:orgs) AND status = 'pending'"
)
NET = """
SELECT currency, sum(amount) AS net FROM (
  SELECT currency, amount_captured AS amount FROM payments
  WHERE organization_id = :org AND status = 'succeeded'
  UNION ALL
  SELECT currency, -amount FROM refunds WHERE organization_id = :org AND status = 'succeeded'
) moved GROUP BY currency
"""


async def net_by_currency(db: Database, org: str) -> dict[str, int]:
    return {r["currency"]: int(r["net"]) for r in await db.fetch_all(NET, {"org": org})}


async def check_books(db: Database, org: str) -> dict[str, int]:
    """Our own SQL checks of one organization; returns what was counted."""
    values = {"org": org}
    assert await db.fetch_all(PERIODS_BILLED_TWICE, values) == [], "a period billed twice"
    assert await db.fetch_all(INVOICES_CHARGED_TWICE, values) == [], "an invoice charged twice"
    assert await db.fetch_all(OVERPAID_INVOICES, values) == [], "an invoice paid beyond its due"
    over = await db.fetch_all(OVER_REFUNDED, values)
    assert over == [], [dict(r._mapping) for r in over]
    numbered = {}
    for series, query in SEQUENCES.items():
        sequence = [r["number_sequence"] for r in await db.fetch_all(query, values)]
        assert sequence == list(range(1, len(sequence) + 1)), (series, sequence)
        last = await db.fetch_val(COUNTER, {**values, "series": series})
        assert (last or 0) == len(sequence), (series, last, len(sequence))
        numbered[series] = len(sequence)
    await assert_rollups_match_raw(db, org)
    statuses = await db.fetch_all(
        "SELECT status, count(*) AS n FROM payments WHERE organization_id = :org GROUP BY status",
        values,
    )
    # Every payment the workload made ended (none left in flight by the killed process).
    in_flight = {r["status"]: r["n"] for r in statuses}
    stuck = await db.fetch_all(
        "SELECT p.id, p.customer_id, p.status, p.metadata, s.next_action_at, p.created_at, "
        "p.updated_at, p.operation, "
        "i.id AS invoice, i.status AS invoice_status, i.subscription_id, i.payment_id, "
        "i.payment_attempts, s.status AS sub_status "
        "FROM payments p LEFT JOIN invoices i ON i.organization_id = p.organization_id "
        "AND i.id = p.metadata->>'invoice_id' LEFT JOIN subscriptions s ON "
        "s.organization_id = i.organization_id AND s.id = i.subscription_id "
        "WHERE p.organization_id = :org AND p.status IN ('processing', 'requires_confirmation')",
        values,
    )
    if stuck:
        pytest.fail("payments left in flight:\n" + "\n".join(str(dict(r._mapping)) for r in stuck))
    return {
        "periods": int(await db.fetch_val(SUBSCRIPTION_PERIODS, values)),
        "invoices": numbered["invoice"],
        "credit_notes": numbered["credit_note"],
        "payments": sum(in_flight.values()),
    }


async def stripe_list(settings: Settings, resource: str) -> list[dict[str, Any]]:
    """Every object of ``resource`` the emulator holds (it is this session's emulator)."""
    found: list[dict[str, Any]] = []
    headers = {"authorization": f"Bearer {settings.stripe_api_key}"}
    async with httpx.AsyncClient(base_url=settings.stripe_api_base or "", timeout=120) as http:
        after: str | None = None
        while True:
            params = {"limit": "100", **({"starting_after": after} if after else {})}
            page = (await http.get(f"/v1/{resource}", params=params, headers=headers)).json()
            found += page["data"]
            if not page["has_more"] or not page["data"]:
                return found
            after = page["data"][-1]["id"]


def _id(value: Any) -> str:
    """The id of a Stripe reference, expanded (an object) or not."""
    return str(value["id"] if isinstance(value, dict) else value or "")


async def check_stripe(settings: Settings, db: Database, orgs: set[str]) -> dict[str, int]:
    """What the emulator charged and refunded equals our books: each succeeded PaymentIntent
    is one succeeded payment of ours (nothing charged that we do not know, nothing charged
    twice for one payment or one invoice), and its refunds there equal ours."""
    intents = [
        i
        for i in await stripe_list(settings, "payment_intents")
        if (i.get("metadata") or {}).get("billing_organization") in orgs
    ]
    succeeded = [i for i in intents if i["status"] == "succeeded"]
    ours = {
        r["stripe_payment_intent_id"]: r
        for r in await db.fetch_all(
            "SELECT id, organization_id, stripe_payment_intent_id, status, amount_captured, "
            "amount_refunded, metadata FROM payments WHERE organization_id = ANY(:orgs)",
            {"orgs": list(orgs)},
        )
    }
    per_payment = Counter(i["metadata"]["billing_payment_id"] for i in succeeded)
    assert [p for p, n in per_payment.items() if n > 1] == [], "a payment charged twice"
    per_invoice = Counter(
        i["metadata"]["invoice_id"] for i in succeeded if "invoice_id" in i["metadata"]
    )
    assert [v for v, n in per_invoice.items() if n > 1] == [], "an invoice charged twice"
    for intent in succeeded:
        row = ours.get(intent["id"])
        assert row is not None, f"charged at Stripe, unknown to us: {intent['id']}"
        assert row["status"] == "succeeded", (intent["id"], row["status"])
        assert row["amount_captured"] == intent["amount"], intent["id"]
    known = {i["id"] for i in succeeded}
    assert [p for p, r in ours.items() if r["status"] == "succeeded" and p not in known] == []

    by_charge = {_id(i["latest_charge"]): i["id"] for i in intents if i.get("latest_charge")}
    refunded: Counter[str] = Counter()
    refunds = 0
    for refund in await stripe_list(settings, "refunds"):
        intent_id = by_charge.get(_id(refund.get("charge")))
        if intent_id is not None and refund["status"] == "succeeded":
            refunded[intent_id] += refund["amount"]
            refunds += 1
    for intent_id, row in ours.items():
        assert refunded[intent_id] == row["amount_refunded"], (intent_id, dict(row._mapping))
        assert refunded[intent_id] <= row["amount_captured"], intent_id
    return {"intents": len(succeeded), "refunds": refunds}


def verify(settings: Settings, home: Path, org: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BILLING, "verify", "--org", org],
        env=fault_env(settings, home),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def test_kill_an_api_and_a_worker_midway_and_every_guarantee_holds(
    settings: Settings, db: Database, tmp_path: Path, app_services: Any
) -> None:
    began = time.monotonic()
    orgs = [
        Org(org, token(settings, org, "admin", ttl=3600), currency)
        for org, currency in ((new_org(), "USD"), (new_org(), "EUR"), (new_org(), "USD"))
    ]
    async with cluster(settings, tmp_path) as procs:
        apis = Apis([p.url for p in procs.apis])
        work = Workload(apis, orgs)
        watch_stop = asyncio.Event()
        watchers = [
            Watcher(f"{o.id}@api{n}", n, procs.apis[n].ws_url, o.admin, o.id)
            for o in orgs
            for n in range(2)
        ]
        watching = [asyncio.create_task(w.run(watch_stop)) for w in watchers]
        stop = asyncio.Event()
        lanes: list[asyncio.Task[None]] = []
        try:
            await asyncio.gather(*(work.setup(o) for o in orgs))

            async def all_watching() -> bool:
                return all(w.snapshots for w in watchers)

            await eventually(all_watching, "every live subscriber has its first snapshot")

            # -- the workload, a kill midway, a restart, more workload ----------------------
            lanes = [
                asyncio.create_task(work.lane(o, stop, clock=n == 0))
                for o in orgs
                for n in range(2)
            ]
            await run_lanes(lanes, FAULT_SECONDS * 0.4)
            api, worker = procs.apis[0], procs.workers[0]
            leased = await db.fetch_val(
                "SELECT count(*) FROM subscriptions WHERE leased_until > now() "
                "AND organization_id = ANY(:orgs)",
                {"orgs": [o.id for o in orgs]},
            )
            killed = f"{api.name} (pid {api.pid}), {worker.name} (pid {worker.pid})"
            before_kill = sum(apis.stats.ok.values())
            await api.kill()
            await worker.kill()
            killed_at = time.monotonic()
            await run_lanes(lanes, max(3.0, FAULT_SECONDS * 0.15))
            during_outage = sum(apis.stats.ok.values()) - before_kill
            api.start()
            worker.start()
            await asyncio.gather(api.ready(), worker.ready())
            outage = time.monotonic() - killed_at
            after_restart = apis.stats.ok[0]
            left = FAULT_SECONDS - (time.monotonic() - began)
            await run_lanes(lanes, max(left, FAULT_SECONDS * 0.3))
            stop.set()
            await asyncio.gather(*lanes)
            served_by_restarted = apis.stats.ok[0] - after_restart

            # -- let the survivors finish what the killed processes held ------------------
            org_ids = [o.id for o in orgs]

            async def settled() -> bool:
                left = await db.fetch_val(UNSETTLED, {"orgs": org_ids})
                return int(left) == 0

            await eventually(settled, "every due subscription billed and every lease released")
            # What the killed process left half done (refunds sent to Stripe but not recorded,
            # an invoice charge or a payment confirmation under way): the workers' housekeeping
            # finishes it once its lease is two minutes past (docs/operations.md); this run is
            # shorter, so the same code runs here with no grace period (no request is running
            # any more, and the killed process's leases have run out).
            pending = await db.fetch_all(PENDING_REFUNDS, {"orgs": org_ids})
            for org_id in org_ids:
                await app_services.housekeeping(org=org_id, older_than=timedelta(0))
            left = await db.fetch_all(PENDING_REFUNDS, {"orgs": org_ids})
            assert left == [], [dict(r._mapping) for r in left]
            expected_net = {o.id: await net_by_currency(db, o.id) for o in orgs}

            async def caught_up() -> bool:
                return all(w.last_net() == expected_net[w.org] for w in watchers)

            await eventually(caught_up, "every live subscriber shows the final revenue", 90)
        finally:
            stop.set()
            watch_stop.set()
            await asyncio.gather(*lanes, *watching, return_exceptions=True)
            await apis.close()

        # -- a graceful stop of every process -------------------------------------------------
        exits = {p.name: await p.terminate() for p in procs.all}
        assert exits == dict.fromkeys(exits, 0), {
            p.name: (exits[p.name], p.tail()) for p in procs.all if exits[p.name] != 0
        }

    # -- every guarantee ------------------------------------------------------------------------
    invariants = 0
    for org in orgs:
        verified = await asyncio.to_thread(verify, settings, tmp_path, org.id)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        invariants += 1
    counted: Counter[str] = Counter()
    for org in orgs:
        counted.update(await check_books(db, org.id))
        # periods, charges, overpaid, refunds, 2 sequences and 2 counters, rollups, in flight
        invariants += 10
    counted.update(await check_stripe(settings, db, {o.id for o in orgs}))
    invariants += 1

    # Live subscribers. PostgreSQL LISTEN/NOTIFY carries every committed event to every process,
    # and a process's listener is its own connection: a peer's death does not touch it, so the
    # survivor's subscribers stay connected, miss nothing and get no resync (the design resyncs
    # only when a process's own listener reconnects or a subscriber falls behind). Those of the
    # killed process lose their connection; on reconnecting they get a fresh snapshot at once.
    for w in watchers:
        assert w.errors == [], (w.name, w.errors[:3])
        if w.api == 0:
            assert w.drops >= 1, (w.name, w.drops)
            assert w.connections >= 2, (w.name, w.connections)
            for conn in range(2, w.connections + 1):
                assert w.snapshots_of(conn) >= 1, (w.name, conn, "no fresh snapshot")
        else:
            assert (w.drops, w.connections) == (0, 1), (w.name, w.drops, w.connections)
            seen = {(k, i) for _, k, s, i in w.events if s == "SUCCEEDED"}
            org_events = {
                (r["kind"], r["id"])
                for r in await db.fetch_all(
                    "SELECT 'PAYMENT' AS kind, id FROM payments WHERE organization_id = :org "
                    "AND status = 'succeeded' UNION ALL SELECT 'REFUND', id FROM refunds "
                    "WHERE organization_id = :org AND status = 'succeeded'",
                    {"org": w.org},
                )
            }
            assert org_events <= seen, (w.name, sorted(org_events - seen)[:10])
        invariants += 1

    stats = apis.stats
    # A retried subscriptionCreate completes what its dead request started (it once answered
    # DUPLICATE and stranded the subscription incomplete).
    assert stats.retried_create_refused == [], stats.retried_create_refused
    unexpected = {k: stats.samples[k] for k in stats.codes if k[1] not in EXPECTED_CODES}
    assert unexpected == {}, unexpected
    elapsed = time.monotonic() - began
    operations = sum(stats.operations.values())
    print(
        f"\nfault test: {operations} operations in {elapsed:.0f}s "
        f"({dict(stats.operations)}); answered per API {dict(stats.ok)}; "
        f"{during_outage} answered during the {outage:.1f}s outage, "
        f"{served_by_restarted} by the restarted API; "
        f"failures on the killed API {stats.transport_failures[0]} "
        f"({stats.in_flight_failures[0]} lost in flight, the rest refused while down) "
        f"(by operation {dict((n, c) for (a, n), c in stats.failed_on.items() if a == 0)}), "
        f"on the survivor {stats.transport_failures[1]}; {stats.retried_elsewhere} requests "
        f"retried on the other API, {sum(stats.in_use_waits.values())} waits for a dead "
        f"request's idempotency lease; clock steps {work.clock_steps}; concurrent refund pairs "
        f"{work.concurrent_refund_pairs}; payload codes {dict(stats.codes)}; "
        f"{leased} subscriptions leased at the kill; refunds left unsent and sent by the "
        f"housekeeping: {len(pending)} (of credit notes: "
        f"{sum(1 for r in pending if r['credit_note_id'])})\n"
        f"processes SIGKILLed and restarted: {killed}; books: {dict(counted)}; "
        f"live: {sum(w.connections for w in watchers)} connections, "
        f"{sum(len(w.snapshots) for w in watchers)} snapshots, "
        f"{sum(len(w.events) for w in watchers)} events\n"
        f"SUMMARY operations={operations} failures_on_killed={stats.transport_failures[0]} "
        f"killed={sum(p.killed for p in procs.all)} invariants_checked={invariants} "
        f"seconds={elapsed:.0f}"
    )
