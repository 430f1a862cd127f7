"""Payments' and refunds' batching loaders, scoped to one organization (assembled by
`app.context`). What a payment may still refund is read from the ledger."""

from __future__ import annotations

from aiodataloader import DataLoader

from app.ledger import Ledger, RefundLimits
from app.payments.refunds import Refund, RefundService
from app.payments.service import CurrencySummary, Payment, PaymentService

__all__ = ["PaymentLoaders", "PaymentPageKey"]

PaymentPageKey = tuple[str, int, str | None, bool]  # customer, first, after, newest first
"""(customer id, first, after) of one customer's page of payments."""


class PaymentLoaders:
    """Payments and refunds by id, refunds and refund limits by payment, pages of payments and
    their totals per currency by customer: one statement per batch (per distinct page shape for
    the pages)."""

    def __init__(
        self, payments: PaymentService, refunds: RefundService, ledger: Ledger, org: str
    ) -> None:
        async def payments_by_ids(ids: list[str]) -> list[Payment | None]:
            return await payments.read.by_ids(org, ids)

        async def refunds_by_ids(ids: list[str]) -> list[Refund | None]:
            return await refunds.read.by_ids(org, ids)

        async def refunds_of_payments(payment_ids: list[str]) -> list[list[Refund]]:
            return await refunds.by_payment_ids(org, payment_ids)

        async def refund_limits(payment_ids: list[str]) -> list[RefundLimits]:
            return await ledger.refund_limits(org, payment_ids)

        async def payment_pages(keys: list[PaymentPageKey]) -> list[tuple[list[Payment], bool]]:
            """One statement per distinct (first, after, order) among the keys."""
            shapes: dict[tuple[int, str | None, bool], list[str]] = {}
            for customer_id, first, after, newest in keys:
                shapes.setdefault((first, after, newest), []).append(customer_id)
            found: dict[PaymentPageKey, tuple[list[Payment], bool]] = {}
            for (first, after, newest), customer_ids in shapes.items():
                pages = await payments.pages_by_customer(
                    org, customer_ids, first=first, after=after, newest=newest
                )
                for customer_id, page in zip(customer_ids, pages, strict=True):
                    found[(customer_id, first, after, newest)] = page
            return [found[key] for key in keys]

        async def summaries(customer_ids: list[str]) -> list[list[CurrencySummary]]:
            return await payments.summaries_by_customer(org, customer_ids)

        self.payment_by_id: DataLoader[str, Payment | None] = DataLoader(payments_by_ids)
        self.payment_summary_by_customer_id: DataLoader[str, list[CurrencySummary]] = DataLoader(
            summaries
        )
        self.refund_by_id: DataLoader[str, Refund | None] = DataLoader(refunds_by_ids)
        self.refunds_by_payment_id: DataLoader[str, list[Refund]] = DataLoader(refunds_of_payments)
        self.refund_limits_by_payment_id: DataLoader[str, RefundLimits] = DataLoader(refund_limits)
        self.payments_by_customer_id: DataLoader[PaymentPageKey, tuple[list[Payment], bool]] = (
            DataLoader(payment_pages)
        )
