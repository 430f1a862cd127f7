"""Document numbers: format, per-organization series, and why they are gapless (a rolled-back
transaction gives its number back; concurrent transactions take consecutive numbers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.invoicing.numbering import Series, format_number
from tests.support import new_org


class _Rollback(Exception):
    pass


def test_format() -> None:
    assert format_number("ACME", Series.INVOICE, 2026, 42) == "ACME-2026-000042"
    assert format_number("ACME", Series.CREDIT_NOTE, 2026, 7) == "ACME-CN-2026-000007"
    assert format_number("INV", Series.INVOICE, 2026, 1_234_567) == "INV-2026-1234567"


async def test_a_rolled_back_number_is_given_to_the_next_document(app_services: Any) -> None:
    org, db = new_org(), app_services.db
    numbers = app_services.invoice_settings

    async def take(*, commit: bool) -> int:
        try:
            async with db.transaction():
                number = await numbers.next_number(org, Series.INVOICE)
                if not commit:
                    raise _Rollback
        except _Rollback:
            pass
        return number.sequence

    assert await take(commit=True) == 1
    assert await take(commit=False) == 2
    assert await take(commit=True) == 2  # the rolled-back 2 was not lost
    assert (await numbers.next_number(org, Series.CREDIT_NOTE)).sequence == 1
    assert (await numbers.next_number(new_org(), Series.INVOICE)).sequence == 1


async def test_concurrent_transactions_take_consecutive_numbers(app_services: Any) -> None:
    org, db = new_org(), app_services.db
    numbers = app_services.invoice_settings

    async def take(index: int) -> int | None:
        try:
            async with db.transaction():
                number = await numbers.next_number(org, Series.INVOICE)
                await asyncio.sleep(0.001)
                if index % 3 == 0:
                    raise _Rollback
        except _Rollback:
            return None
        return number.sequence

    taken = await asyncio.gather(*(take(index) for index in range(30)))
    committed = sorted(n for n in taken if n is not None)
    assert committed == list(range(1, 21))


@pytest.mark.parametrize("prefix", ["acme", "A-1", "Z9"])
async def test_prefixes_are_upper_cased(app_services: Any, prefix: str) -> None:
    settings = await app_services.invoice_settings.update(new_org(), {"number_prefix": prefix})
    assert settings.number_prefix == prefix.upper()
