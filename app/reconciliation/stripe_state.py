"""Compare recent local payments and refunds with Stripe and repair the differences.

A payment whose PaymentIntent succeeded (or failed, or was canceled) at Stripe while our row
still waits — its webhook lost, or the process that called Stripe killed before it recorded
the answer — is read from Stripe and recorded through ``PaymentService.refresh``: the same
transaction as any change records the ledger entries, the statistics, the live event and the
outgoing webhook event (``payment.succeeded``, …). The same for refunds through
``RefundService.refresh``. Subscriptions are billed through invoices whose charges are those
payments; the housekeeping sweeps (``Services.housekeeping``) finish invoice charges a dead
request left, and ``reconcile`` runs them too. Each repair is logged and kept in
``reconciliation_repairs``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from app.core.auth import Principal, Role
from app.core.errors import DomainError, ProviderUnreachable
from app.core.ids import new_id
from app.payments import PaymentService, RefundService
from db.connection import Database
from db.repositories.reconciliation import ReconciliationRepository

__all__ = ["ReconcileReport", "Reconciler", "Repair"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Repair:
    organization_id: str
    kind: str  # payment | refund
    object_id: str
    before: str
    after: str


@dataclass
class ReconcileReport:
    checked: int = 0
    repairs: list[Repair] = field(default_factory=list)
    unreachable: int = 0  # Stripe did not answer: read again at the next run
    skipped: int = 0  # busy with a request, or refused by Stripe (logged)


class Reconciler:
    def __init__(
        self,
        db: Database,
        *,
        payments: PaymentService,
        refunds: RefundService,
        window: timedelta = timedelta(hours=72),
        settle: timedelta = timedelta(minutes=2),
    ) -> None:
        self._db = db
        self._payments = payments
        self._refunds = refunds
        self._rows = ReconciliationRepository(db)
        self._window = window
        self._settle = settle

    async def run(
        self,
        *,
        org: str | None = None,
        limit: int = 500,
        settle: timedelta | None = None,
    ) -> ReconcileReport:
        """Read every payment and refund of the window (created within it, untouched for
        ``settle``) that is not final here from Stripe, and record what Stripe says."""
        report = ReconcileReport()
        wait = self._settle if settle is None else settle
        payments = await self._rows.open_payments(
            window=self._window, settle=wait, limit=limit, org=org
        )
        for row in payments:
            owner = row["organization_id"]
            try:
                remote = await self._payments.status_at_stripe(row["stripe_payment_intent_id"])
                if remote.value == row["status"]:  # Stripe agrees: nothing to record
                    report.checked += 1
                    continue
                after = (
                    await self._payments.refresh(owner, _system(owner), row["id"])
                ).status.value
            except ProviderUnreachable:
                report.unreachable += 1
                break
            except DomainError as exc:
                log.warning("reconcile: payment %s not read (%s)", row["id"], exc.message)
                report.skipped += 1
                continue
            report.checked += 1
            await self._repaired(report, owner, "payment", row["id"], row["status"], after)
        refunds = await self._rows.pending_refunds(
            window=self._window, settle=wait, limit=limit, org=org
        )
        for row in refunds:
            owner = row["organization_id"]
            try:
                after = (await self._refunds.refresh(owner, _system(owner), row["id"])).status.value
            except ProviderUnreachable:
                report.unreachable += 1
                break
            except DomainError as exc:
                log.warning("reconcile: refund %s not read (%s)", row["id"], exc.message)
                report.skipped += 1
                continue
            report.checked += 1
            await self._repaired(report, owner, "refund", row["id"], row["status"], after)
        return report

    async def totals(self) -> dict[str, int]:
        """Repairs so far per kind (payment, refund), for /metrics."""
        return {row["kind"]: int(row["repairs"]) for row in await self._rows.totals()}

    async def _repaired(
        self, report: ReconcileReport, org: str, kind: str, object_id: str, before: str, after: str
    ) -> None:
        if before == after:
            return
        repair = Repair(org, kind, object_id, before, after)
        report.repairs.append(repair)
        log.warning(
            "reconcile: %s %s of %s was %s here and is %s at Stripe; recorded",
            kind,
            object_id,
            org,
            before,
            after,
        )
        await self._rows.record(
            {
                "organization_id": org,
                "id": new_id("rcn"),
                "kind": kind,
                "object_id": object_id,
                "status_before": before,
                "status_after": after,
            }
        )


def _system(org: str) -> Principal:
    return Principal(subject="reconciliation", org=org, role=Role.SERVICE)
