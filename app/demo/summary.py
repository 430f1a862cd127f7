"""What the demo made, read back through the services, and what to do next."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from app.core.money import Money, format_decimal
from app.core.settings import Settings
from app.demo.scenario import Kind
from app.invoicing import InvoiceStatus
from app.ledger import verify
from app.payments import CurrencySummary
from app.services import Services
from app.subscriptions import Status

__all__ = ["DemoReport", "collect_report"]


@dataclass
class DemoReport:
    org: str
    clock: datetime
    elapsed: float
    customers: int
    plans: int
    subscriptions: dict[str, int]  # by status, non-zero only
    invoices: dict[str, int]  # by status, non-zero only
    refunds: int
    credit_notes: int
    payments: list[CurrencySummary]
    mrr: dict[str, Money]
    worker_steps: int
    actions: dict[str, int]  # done, by kind
    skipped: dict[str, int]
    violations: list[str] = field(default_factory=list)

    def render(self, settings: Settings) -> str:
        lines = [
            f"Demo organization {self.org!r} ready in {self.elapsed:.1f}s "
            f"(its test clock is at {self.clock:%Y-%m-%d %H:%M} UTC).",
            f"  customers {self.customers}, plans {self.plans}, "
            f"billing worker steps {self.worker_steps}",
            "  subscriptions " + _counts(self.subscriptions),
            "  invoices " + _counts(self.invoices),
            f"  refunds {self.refunds}, credit notes {self.credit_notes}",
            "  events " + _counts(self.actions),
        ]
        if self.skipped:
            lines.append("  skipped (no longer applicable) " + _counts(self.skipped))
        lines.append("  money per currency (succeeded payments, refunded, net; MRR now):")
        for summary in self.payments:
            code = summary.currency
            mrr = self.mrr.get(code, Money(0, code))
            lines.append(
                f"    {code}  {summary.succeeded_count:5d} payments  "
                f"{_money(summary.succeeded):>12}  -{_money(summary.refunded):>10}  "
                f"= {_money(summary.net):>12}   MRR {_money(mrr)}"
            )
        if self.violations:
            lines.append(f"  billing verify: {len(self.violations)} violation(s):")
            lines.extend(f"    {v}" for v in self.violations[:20])
        else:
            lines.append("  billing verify: every money invariant holds.")
        base = f"http://{settings.host}:{settings.port}"
        lines += [
            "",
            "Next steps:",
            "  .venv/bin/billing serve",
            f"  .venv/bin/billing token --role admin --org {self.org}",
            f'  GraphiQL:  {base}/graphql  (header {{"Authorization": "Bearer <token>"}})',
            f"  Dashboard: {base}/dashboard  (sign in with the same token)",
        ]
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or "none"


def _money(money: Money) -> str:
    return format_decimal(money.amount, money.currency)


async def collect_report(
    services: Services,
    org: str,
    *,
    elapsed: float,
    worker_steps: int,
    done: dict[Kind, int],
    skipped: dict[Kind, int],
) -> DemoReport:
    subs, invoices = services.subscriptions.read, services.invoices.read
    by_status = {s.value: await subs.count(org, {"status": s.value}) for s in Status}
    invoice_counts = {
        s.value: await invoices.count(org, {"statuses": [s.value]}) for s in InvoiceStatus
    }
    now = await services.clock.now(org)
    snapshot = await services.statistics.snapshot(org, currency=None, now=now)
    violations = await verify(services.db, org)
    return DemoReport(
        org=org,
        clock=now,
        elapsed=elapsed,
        customers=await services.customers.read.count(org, {}),
        plans=await services.plans.read.count(org, {}),
        subscriptions={k: n for k, n in by_status.items() if n},
        invoices={k: n for k, n in invoice_counts.items() if n},
        refunds=await services.refunds.read.count(org, {}),
        credit_notes=await services.credit_notes.read.count(org, {}),
        payments=await services.payments.summary(org, {}),
        mrr={c.currency: c.mrr for c in snapshot.currencies},
        worker_steps=worker_steps,
        actions={k.value: n for k, n in sorted(done.items(), key=lambda i: i[0].value)},
        skipped={k.value: n for k, n in sorted(skipped.items(), key=lambda i: i[0].value)},
        violations=[str(v) for v in violations],
    )
