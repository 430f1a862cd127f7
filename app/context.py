"""The per-request (per-event for subscriptions) context: who is asking, services and loaders.

Loaders are built here, never at module level: a loader caches, and a cache shared across
requests would leak one caller's data to another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiodataloader import DataLoader

from app.catalog import CouponRecord, Plan
from app.core.auth import Principal, Role
from app.core.errors import Forbidden, Unauthenticated
from app.core.money import Money
from app.customers import Customer
from app.invoicing import CreditNote, CreditNoteLine, Invoice, InvoiceLine
from app.ledger import RefundLimits
from app.payments import Payment, Refund
from app.services import Services
from app.subscriptions import Subscription
from app.throttling import Caller

__all__ = ["Context", "InvoicePageKey", "Loaders"]

InvoicePageKey = tuple[str, int, str | None, tuple[str, ...] | None]
"""(customer id, first, after, statuses) of one customer's page of invoices."""


class Loaders:
    """One set of batching loaders, scoped to one organization."""

    def __init__(self, services: Services, org: str) -> None:
        async def plans(ids: list[str]) -> list[Plan | None]:
            return await services.plans.read.by_ids(org, ids)

        async def customers(ids: list[str]) -> list[Customer | None]:
            return await services.customers.read.by_ids(org, ids)

        async def payments(ids: list[str]) -> list[Payment | None]:
            return await services.payments.read.by_ids(org, ids)

        async def refunds(ids: list[str]) -> list[Refund | None]:
            return await services.refunds.read.by_ids(org, ids)

        async def refunds_of_payments(payment_ids: list[str]) -> list[list[Refund]]:
            return await services.refunds.by_payment_ids(org, payment_ids)

        async def payment_pages(
            keys: list[tuple[str, int, str | None]],
        ) -> list[tuple[list[Payment], bool]]:
            """Keys are (customer id, first, after); one statement per distinct page shape."""
            shapes: dict[tuple[int, str | None], list[str]] = {}
            for customer_id, first, after in keys:
                shapes.setdefault((first, after), []).append(customer_id)
            found: dict[tuple[str, int, str | None], tuple[list[Payment], bool]] = {}
            for (first, after), customer_ids in shapes.items():
                pages = await services.payments.pages_by_customer(
                    org, customer_ids, first=first, after=after
                )
                for customer_id, page in zip(customer_ids, pages, strict=True):
                    found[(customer_id, first, after)] = page
            return [found[key] for key in keys]

        self.plan_by_id: DataLoader[str, Plan | None] = DataLoader(plans)
        self.customer_by_id: DataLoader[str, Customer | None] = DataLoader(customers)
        self.payment_by_id: DataLoader[str, Payment | None] = DataLoader(payments)
        self.refund_by_id: DataLoader[str, Refund | None] = DataLoader(refunds)
        self.refunds_by_payment_id: DataLoader[str, list[Refund]] = DataLoader(refunds_of_payments)

        async def refund_limits(payment_ids: list[str]) -> list[RefundLimits]:
            return await services.ledger.refund_limits(org, payment_ids)

        self.refund_limits_by_payment_id: DataLoader[str, RefundLimits] = DataLoader(refund_limits)
        self.payments_by_customer_id: DataLoader[
            tuple[str, int, str | None], tuple[list[Payment], bool]
        ] = DataLoader(payment_pages)

        async def invoices(ids: list[str]) -> list[Invoice | None]:
            return await services.invoices.read.by_ids(org, ids)

        async def invoice_lines(invoice_ids: list[str]) -> list[list[InvoiceLine]]:
            return await services.invoices.lines_of(org, invoice_ids)

        async def invoice_pages(keys: list[InvoicePageKey]) -> list[tuple[list[Invoice], bool]]:
            """One statement per distinct (first, after, statuses) among the keys."""
            shapes: dict[tuple[int, str | None, tuple[str, ...] | None], list[str]] = {}
            for customer_id, first, after, statuses in keys:
                shapes.setdefault((first, after, statuses), []).append(customer_id)
            found: dict[InvoicePageKey, tuple[list[Invoice], bool]] = {}
            for (first, after, statuses), customer_ids in shapes.items():
                pages = await services.invoices.pages_by_customer(
                    org, customer_ids, first=first, after=after, statuses=statuses
                )
                for customer_id, page in zip(customer_ids, pages, strict=True):
                    found[(customer_id, first, after, statuses)] = page
            return [found[key] for key in keys]

        async def invoice_counts(keys: list[tuple[str, tuple[str, ...] | None]]) -> list[int]:
            by_statuses: dict[tuple[str, ...] | None, list[str]] = {}
            for customer_id, statuses in keys:
                by_statuses.setdefault(statuses, []).append(customer_id)
            found: dict[tuple[str, tuple[str, ...] | None], int] = {}
            for statuses, customer_ids in by_statuses.items():
                counts = await services.invoices.counts_by_customer(org, customer_ids, statuses)
                found.update(((c, statuses), n) for c, n in zip(customer_ids, counts, strict=True))
            return [found[key] for key in keys]

        async def credit_notes(ids: list[str]) -> list[CreditNote | None]:
            return await services.credit_notes.read.by_ids(org, ids)

        async def credit_notes_of_invoices(invoice_ids: list[str]) -> list[list[CreditNote]]:
            return await services.credit_notes.of_invoices(org, invoice_ids)

        async def credit_note_lines(ids: list[str]) -> list[list[CreditNoteLine]]:
            return await services.credit_notes.lines_of(org, ids)

        async def coupons(ids: list[str]) -> list[CouponRecord | None]:
            return await services.coupons.read.by_ids(org, ids)

        async def balances(customer_ids: list[str]) -> list[list[Money]]:
            return await services.balances.of_customers(org, customer_ids)

        self.invoice_by_id: DataLoader[str, Invoice | None] = DataLoader(invoices)
        self.lines_by_invoice_id: DataLoader[str, list[InvoiceLine]] = DataLoader(invoice_lines)
        self.invoices_by_customer_id: DataLoader[InvoicePageKey, tuple[list[Invoice], bool]] = (
            DataLoader(invoice_pages)
        )
        self.invoice_count_by_customer_id: DataLoader[tuple[str, tuple[str, ...] | None], int] = (
            DataLoader(invoice_counts)
        )
        self.credit_note_by_id: DataLoader[str, CreditNote | None] = DataLoader(credit_notes)
        self.credit_notes_by_invoice_id: DataLoader[str, list[CreditNote]] = DataLoader(
            credit_notes_of_invoices
        )
        self.lines_by_credit_note_id: DataLoader[str, list[CreditNoteLine]] = DataLoader(
            credit_note_lines
        )
        self.coupon_by_id: DataLoader[str, CouponRecord | None] = DataLoader(coupons)
        self.balances_by_customer_id: DataLoader[str, list[Money]] = DataLoader(balances)

        async def subscriptions(ids: list[str]) -> list[Subscription | None]:
            return await services.subscriptions.read.by_ids(org, ids)

        async def subscriptions_of_customers(ids: list[str]) -> list[list[Subscription]]:
            return await services.subscriptions.of_customers(org, ids)

        async def invoices_of_subscriptions(ids: list[str]) -> list[list[Invoice]]:
            return await services.invoices.of_subscriptions(org, ids)

        self.subscription_by_id: DataLoader[str, Subscription | None] = DataLoader(subscriptions)
        self.subscriptions_by_customer_id: DataLoader[str, list[Subscription]] = DataLoader(
            subscriptions_of_customers
        )
        self.invoices_by_subscription_id: DataLoader[str, list[Invoice]] = DataLoader(
            invoices_of_subscriptions
        )


class Context:
    def __init__(
        self,
        services: Services,
        *,
        principal: Principal | None = None,
        auth_error: Unauthenticated | None = None,
        request: Any = None,
        response: Any = None,
    ) -> None:
        self.services = services
        self.request = request
        self.response = response  # Starlette's sub-response for HTTP (headers), else None
        self.principal = principal
        self.auth_error = auth_error
        self.connection_params: dict[str, Any] | None = None  # set by graphql-transport-ws
        # The WebSocket connection slot this connection's token holds (released on close).
        self.connection_slot: tuple[Principal, str] | None = None
        self._loaders: Loaders | None = None

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise self.auth_error or Unauthenticated(
                "Authentication required: send a bearer token."
            )
        return self.principal

    def require_unexpired(self) -> Principal:
        """The principal, if its token has not expired since the connection was opened (a
        WebSocket authenticates once; long-lived streams check this before every message)."""
        principal = self.require_principal()
        if principal.expires_at is not None and principal.expires_at <= datetime.now(UTC):
            raise Unauthenticated("Token has expired; reconnect with a new one.")
        return principal

    def require_role(self, *roles: Role) -> Principal:
        principal = self.require_principal()
        if principal.role not in roles:
            raise Forbidden(f"This operation needs the {' or '.join(r.value for r in roles)} role.")
        return principal

    def can_see_customer(self, customer_id: str) -> bool:
        """Admins and services see every customer of their organization; a customer token
        sees only itself."""
        principal = self.require_principal()
        return principal.customer_id in (None, customer_id)

    @property
    def client_ip(self) -> str | None:
        client = getattr(self.request, "client", None)
        return str(client.host) if client is not None else None

    def throttle_caller(self) -> Caller | None:
        """Whose rate-limit budget this request draws on (None when it is not limited)."""
        return self.services.throttle.caller(self.principal, self.client_ip)

    def set_response_header(self, name: str, value: str) -> None:
        """Set a header on the HTTP response (nothing to set on a WebSocket message)."""
        headers = getattr(self.response, "headers", None)
        if headers is not None:
            headers[name] = value

    @property
    def org(self) -> str:
        return self.require_principal().org

    @property
    def loaders(self) -> Loaders:
        if self._loaders is None:
            self._loaders = Loaders(self.services, self.org)
        return self._loaders

    def fresh_loaders(self) -> None:
        """Forget cached loads (a subscription calls this before each emitted event)."""
        self._loaders = None
