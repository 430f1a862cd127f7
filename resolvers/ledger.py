"""The customer ledger query. Admins and services read any customer's; a customer token reads
its own, limited to the accounts that are the customer's side of the books (what it owes, its
credit balance, its payments and refunds), never the organization's income or write-offs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from app.context import Context
from app.core.errors import DomainError, PublicError
from app.core.ids import has_prefix
from app.core.money import Money, normalize_currency
from app.ledger import Account, LedgerEntry

__all__ = ["CUSTOMER_ACCOUNTS", "LedgerView", "balances", "entries", "view"]

CUSTOMER_ACCOUNTS = (
    Account.RECEIVABLE,
    Account.CUSTOMER_CREDIT,
    Account.CASH,
    Account.REFUNDS_PAYABLE,
)


class LedgerView:
    """One customer's ledger in one currency, as this caller may see it."""

    def __init__(
        self,
        customer_id: str,
        currency: str,
        accounts: tuple[Account, ...],
        since: datetime | None,
        until: datetime | None,
    ) -> None:
        self.customer_id = customer_id
        self.currency = currency
        self.accounts = accounts
        self.since = since
        self.until = until


async def view(
    ctx: Context,
    customer_id: str,
    currency: str,
    since: datetime | None,
    until: datetime | None,
) -> LedgerView | None:
    """None when the customer is not the caller's to see (or does not exist)."""
    if not has_prefix(customer_id, "cus") or not ctx.can_see_customer(customer_id):
        return None
    if await ctx.loaders.customer_by_id.load(customer_id) is None:
        return None
    try:
        code = normalize_currency(currency)
    except DomainError as exc:
        raise PublicError(exc.message) from None
    own = ctx.require_principal().customer_id is not None
    accounts = CUSTOMER_ACCOUNTS if own else tuple(Account)
    return LedgerView(customer_id, code, accounts, since, until)


async def entries(
    ctx: Context, ledger: LedgerView, *, first: int, after: str | None, newest: bool = False
) -> tuple[list[LedgerEntry], bool, Callable[[], Awaitable[int]]]:
    services, org = ctx.services, ctx.org
    nodes, has_next = await services.ledger.entries(
        org,
        ledger.customer_id,
        ledger.currency,
        accounts=ledger.accounts,
        since=ledger.since,
        until=ledger.until,
        after=after,
        limit=first,
        newest=newest,
    )

    def count() -> Awaitable[int]:
        return services.ledger.count(
            org,
            ledger.customer_id,
            ledger.currency,
            accounts=ledger.accounts,
            since=ledger.since,
            until=ledger.until,
        )

    return nodes, has_next, count


async def balances(ctx: Context, ledger: LedgerView) -> list[tuple[Account, Money]]:
    """Each visible account's balance (debits minus credits) over the entries before ``to``."""
    found = await ctx.services.ledger.balances(
        ctx.org, ledger.customer_id, ledger.currency, until=ledger.until
    )
    return [(account, Money(found.get(account, 0), ledger.currency)) for account in ledger.accounts]
