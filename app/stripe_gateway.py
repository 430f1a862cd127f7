"""Everything we ask of Stripe goes through here (async SDK, one HTTP client per process).

Each call carries an idempotency key derived from our own ids, so a retry after a crash between
Stripe's answer and our commit cannot create a second object or charge twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe

from app.errors import DomainError, ErrorCode

__all__ = ["AttachedCard", "StripeGateway", "StripeProduct"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StripeProduct:
    product_id: str
    price_id: str | None


@dataclass(frozen=True, slots=True)
class AttachedCard:
    payment_method_id: str
    brand: str | None
    last4: str | None


def _provider_error(exc: stripe.StripeError, action: str) -> DomainError:
    if isinstance(exc, stripe.CardError):
        reason = (exc.error.decline_code if exc.error else None) or exc.code or "card_declined"
        return DomainError(
            ErrorCode.CARD_DECLINED,
            f"The card was declined ({reason}).",
            details={"decline_code": str(reason)},
        )
    # The SDK's message can echo request details; log it, return a generic, safe message.
    log.warning("stripe %s failed: %s (%s)", action, type(exc).__name__, exc.code or "no code")
    return DomainError(
        ErrorCode.PAYMENT_PROVIDER_ERROR,
        f"The payment provider could not {action}; nothing was changed. Try again later.",
    )


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
    ) -> None:
        self._http = stripe.HTTPXClient()
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else {},
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_product(
        self,
        *,
        idempotency_key: str,
        name: str,
        amount: int,
        currency: str,
        interval: str | None,
        interval_count: int,
        metadata: dict[str, str],
    ) -> StripeProduct:
        """A Product and, for recurring plans, a recurring price (created as a Stripe Plan,
        which Stripe accepts wherever a Price id is expected)."""
        try:
            product = await self._client.v1.products.create_async(
                params={"name": name, "metadata": metadata},
                options={"idempotency_key": f"{idempotency_key}:product"},
            )
            price_id = None
            if interval is not None:
                price = await self._client.v1.plans.create_async(
                    params={
                        "product": product.id,
                        "amount": amount,
                        "currency": currency.lower(),
                        "interval": interval,
                        "interval_count": interval_count,
                        "metadata": metadata,
                    },
                    options={"idempotency_key": f"{idempotency_key}:price"},
                )
                price_id = price.id
        except stripe.StripeError as exc:
            raise _provider_error(exc, "create the product") from exc
        return StripeProduct(product.id, price_id)

    async def update_product(self, product_id: str, *, name: str) -> None:
        try:
            await self._client.v1.products.update_async(product_id, params={"name": name})
        except stripe.StripeError as exc:
            raise _provider_error(exc, "update the product") from exc

    async def deactivate_price(self, price_id: str) -> None:
        try:
            await self._client.v1.plans.update_async(price_id, params={"active": False})
        except stripe.StripeError as exc:
            raise _provider_error(exc, "archive the price") from exc

    async def create_customer(
        self,
        *,
        idempotency_key: str,
        email: str,
        name: str,
        address: dict[str, str] | None,
        metadata: dict[str, str],
    ) -> str:
        params: dict[str, object] = {"email": email, "name": name, "metadata": metadata}
        if address:
            params["address"] = address
        try:
            customer = await self._client.v1.customers.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _provider_error(exc, "create the customer") from exc
        return customer.id

    async def update_customer(
        self, customer_id: str, *, email: str, name: str, address: dict[str, str] | None
    ) -> None:
        params: dict[str, object] = {"email": email, "name": name}
        if address:
            params["address"] = address
        try:
            await self._client.v1.customers.update_async(customer_id, params=params)  # type: ignore[arg-type]
        except stripe.StripeError as exc:
            raise _provider_error(exc, "update the customer") from exc

    async def attach_default_payment_method(
        self, customer_id: str, payment_method_id: str
    ) -> AttachedCard:
        """Attach a PaymentMethod to the customer (Stripe validates the card) and make it the
        customer's default for invoices."""
        try:
            method = await self._client.v1.payment_methods.attach_async(
                payment_method_id, params={"customer": customer_id}
            )
            await self._client.v1.customers.update_async(
                customer_id, params={"invoice_settings": {"default_payment_method": method.id}}
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                raise DomainError(
                    ErrorCode.NOT_FOUND,
                    "The payment method does not exist at Stripe.",
                    field=("input", "paymentMethodId"),
                ) from exc
            raise _provider_error(exc, "attach the payment method") from exc
        except stripe.StripeError as exc:
            raise _provider_error(exc, "attach the payment method") from exc
        card = method.card
        return AttachedCard(method.id, card.brand if card else None, card.last4 if card else None)
