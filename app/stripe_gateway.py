"""Everything we ask of Stripe goes through here (async SDK, one HTTP client per process).

Each call carries an idempotency key derived from our own ids, so a retry after a crash between
Stripe's answer and our commit cannot create a second object or charge twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe

from app.errors import DomainError, ErrorCode

__all__ = ["StripeGateway", "StripeProduct"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StripeProduct:
    product_id: str
    price_id: str | None


def _provider_error(exc: stripe.StripeError, action: str) -> DomainError:
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
