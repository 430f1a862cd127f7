"""Pages and counts of invoices by customer: one call per distinct page shape (or statuses),
answers in key order (no database)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.invoicing.loaders import InvoicingLoaders

PAID = ("paid",)


class FakeInvoices:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def pages_by_customer(
        self,
        org: str,
        customer_ids: list[str],
        *,
        first: int,
        after: str | None,
        statuses: tuple[str, ...] | None,
        newest: bool = False,
    ) -> list[tuple[list[Any], bool]]:
        self.calls.append(("pages", org, list(customer_ids), first, after, statuses, newest))
        return [([f"{c}/{first}/{statuses}"], True) for c in customer_ids]

    async def counts_by_customer(
        self, org: str, customer_ids: list[str], statuses: tuple[str, ...] | None
    ) -> list[int]:
        self.calls.append(("counts", org, list(customer_ids), statuses))
        return [len(c) + (0 if statuses is None else 100) for c in customer_ids]


async def test_invoice_pages_batch_by_shape() -> None:
    invoices = FakeInvoices()
    loaders = InvoicingLoaders(invoices, None, "acme")  # only the invoices are read
    keys = [
        ("cus_1", 10, None, None, False),
        ("cus_2", 10, None, PAID, False),
        ("cus_3", 10, None, None, False),
        ("cus_4", 10, None, None, True),
    ]
    pages = await asyncio.gather(*(loaders.invoices_by_customer_id.load(k) for k in keys))
    assert [page[0] for page in pages] == [
        ["cus_1/10/None"],
        ["cus_2/10/('paid',)"],
        ["cus_3/10/None"],
        ["cus_4/10/None"],
    ]
    assert invoices.calls == [
        ("pages", "acme", ["cus_1", "cus_3"], 10, None, None, False),
        ("pages", "acme", ["cus_2"], 10, None, PAID, False),
        ("pages", "acme", ["cus_4"], 10, None, None, True),
    ]


async def test_invoice_counts_batch_by_statuses() -> None:
    invoices = FakeInvoices()
    loaders = InvoicingLoaders(invoices, None, "acme")  # only the invoices are read
    keys = [("cus_1", PAID), ("cus_22", None), ("cus_333", PAID)]
    counts = await asyncio.gather(*(loaders.invoice_count_by_customer_id.load(k) for k in keys))
    assert counts == [105, 6, 107]
    assert invoices.calls == [
        ("counts", "acme", ["cus_1", "cus_333"], PAID),
        ("counts", "acme", ["cus_22"], None),
    ]
