"""The per-request (per-event for subscriptions) context: who is asking, services and loaders.

Loaders are built per context (by each domain's `loaders.py`, assembled here), never at module
level: a loader caches, and a cache shared across requests would leak one caller's data to another.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.catalog import CatalogLoaders
from app.core.auth import Principal, Role
from app.core.errors import Forbidden, Unauthenticated
from app.customers import CustomerLoaders
from app.invoicing import InvoicePageKey, InvoicingLoaders
from app.outgoing_webhooks import WebhookLoaders
from app.payments import PaymentLoaders
from app.services import Services
from app.subscriptions import SubscriptionLoaders
from app.throttling import Caller
from app.usage import UsageLoaders

__all__ = ["Context", "InvoicePageKey", "Loaders"]


class Loaders:
    """One set of batching loaders, scoped to one organization: each domain package builds its
    own (`app/<domain>/loaders.py`); this assembles them under the names resolvers use."""

    def __init__(self, services: Services, org: str) -> None:
        catalog = CatalogLoaders(services.plans, services.coupons, org)
        self.plan_by_id = catalog.plan_by_id
        self.coupon_by_id = catalog.coupon_by_id

        customers = CustomerLoaders(services.customers, services.balances, org)
        self.customer_by_id = customers.customer_by_id
        self.balances_by_customer_id = customers.balances_by_customer_id

        payments = PaymentLoaders(services.payments, services.refunds, services.ledger, org)
        self.payment_by_id = payments.payment_by_id
        self.refund_by_id = payments.refund_by_id
        self.refunds_by_payment_id = payments.refunds_by_payment_id
        self.refund_limits_by_payment_id = payments.refund_limits_by_payment_id
        self.payments_by_customer_id = payments.payments_by_customer_id
        self.payment_summary_by_customer_id = payments.payment_summary_by_customer_id

        invoicing = InvoicingLoaders(services.invoices, services.credit_notes, org)
        self.invoice_by_id = invoicing.invoice_by_id
        self.lines_by_invoice_id = invoicing.lines_by_invoice_id
        self.invoices_by_customer_id = invoicing.invoices_by_customer_id
        self.invoice_count_by_customer_id = invoicing.invoice_count_by_customer_id
        self.invoices_by_subscription_id = invoicing.invoices_by_subscription_id
        self.credit_note_by_id = invoicing.credit_note_by_id
        self.credit_notes_by_invoice_id = invoicing.credit_notes_by_invoice_id
        self.lines_by_credit_note_id = invoicing.lines_by_credit_note_id

        subscriptions = SubscriptionLoaders(services.subscriptions, org)
        self.subscription_by_id = subscriptions.subscription_by_id
        self.subscriptions_by_customer_id = subscriptions.subscriptions_by_customer_id

        usage = UsageLoaders(services.metrics, services.usage_rating, services.clock, org)
        self.metered_prices_by_plan = usage.metered_prices_by_plan
        self.current_usage_by_subscription = usage.current_usage_by_subscription
        webhooks = WebhookLoaders(services.webhook_endpoints, org)
        self.webhook_endpoint_by_id = webhooks.webhook_endpoint_by_id
        self.attempts_by_delivery_id = webhooks.attempts_by_delivery_id
        self.webhook_delivery_by_id = webhooks.webhook_delivery_by_id


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
    def request_id(self) -> str | None:
        """The HTTP request's X-Request-ID (app/web/request_log.py); None on a WebSocket."""
        scope = getattr(self.request, "scope", None)
        state = scope.get("state") if isinstance(scope, dict) else None
        value = state.get("request_id") if isinstance(state, dict) else None
        return value if isinstance(value, str) else None

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
