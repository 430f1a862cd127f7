"""Pages of payments by customer: one call per distinct page shape, answers in key order
(no database)."""

from __future__ import annotations

import asyncio
from typing import Any

from app.payments.loaders import PaymentLoaders


class FakePayments:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], int, str | None, bool]] = []

    async def pages_by_customer(
        self,
        org: str,
        customer_ids: list[str],
        *,
        first: int,
        after: str | None,
        newest: bool = False,
    ) -> list[tuple[list[Any], bool]]:
        self.calls.append((org, list(customer_ids), first, after, newest))
        return [([f"{c}/{first}/{after}/{newest}"], False) for c in customer_ids]


async def test_payment_pages_batch_by_shape() -> None:
    payments = FakePayments()
    loaders = PaymentLoaders(payments, None, None, "acme")  # only the payments are read
    keys = [
        ("cus_1", 10, None, False),
        ("cus_2", 5, "pay_9", False),
        ("cus_3", 10, None, False),
        ("cus_4", 10, None, True),  # a backward page reads newest first: a shape of its own
    ]
    pages = await asyncio.gather(*(loaders.payments_by_customer_id.load(k) for k in keys))
    assert pages == [
        (["cus_1/10/None/False"], False),
        (["cus_2/5/pay_9/False"], False),
        (["cus_3/10/None/False"], False),
        (["cus_4/10/None/True"], False),
    ]
    assert payments.calls == [
        ("acme", ["cus_1", "cus_3"], 10, None, False),
        ("acme", ["cus_2"], 5, "pay_9", False),
        ("acme", ["cus_4"], 10, None, True),
    ]
