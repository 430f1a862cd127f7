"""Everything we ask of Stripe goes through here (async SDK, one HTTP client per process).

Each call carries an idempotency key derived from our own ids, so a retry after a crash between
Stripe's answer and our commit cannot create a second object or charge twice.

Every call is bounded: the SDK's HTTP client has a timeout, and each method runs under an
``asyncio.timeout`` of the same length, so connecting, waiting and the SDK's own retries together
never take longer (``STRIPE_TIMEOUT_SECONDS``). A timeout is an unknown outcome
(``ProviderTimeout``, a ``ProviderUnreachable``): Stripe may have done it. Callers never hold a
database transaction across these calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import stripe

from app.core.errors import RETRY_WITH_KEY, DomainError, ErrorCode, ProviderUnreachable

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "AttachedCard",
    "CardDeclined",
    "ProviderRefused",
    "ProviderTimeout",
    "ProviderUnreachable",
    "StripeGateway",
    "StripeIntent",
    "StripeProduct",
    "StripeRefund",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 20.0
_NOTHING_CHANGED = "nothing was changed. Try again later."


@dataclass(frozen=True, slots=True)
class StripeProduct:
    product_id: str
    price_id: str | None


@dataclass(frozen=True, slots=True)
class AttachedCard:
    payment_method_id: str
    brand: str | None
    last4: str | None


@dataclass(frozen=True, slots=True)
class StripeIntent:
    """What we record of a PaymentIntent, read from Stripe's answer."""

    id: str
    status: str
    amount: int
    currency: str
    client_secret: str | None
    payment_method: str | None
    amount_received: int | None
    amount_capturable: int | None
    next_action: dict[str, Any] | None
    error_code: str | None
    error_message: str | None


@dataclass(frozen=True, slots=True)
class StripeRefund:
    id: str
    status: str
    amount: int
    failure_reason: str | None


class CardDeclined(DomainError):
    """Stripe answered: the card was declined (``decline_code`` is Stripe's reason)."""

    def __init__(self, decline_code: str, message: str) -> None:
        super().__init__(
            ErrorCode.CARD_DECLINED,
            f"The card was declined ({decline_code}).",
            details={"decline_code": decline_code},
        )
        self.decline_code = decline_code
        self.provider_message = message


class ProviderRefused(DomainError):
    """Stripe answered and refused the request (4xx): it did nothing."""

    def __init__(self, action: str, code: str | None, *, message: str | None = None) -> None:
        super().__init__(
            ErrorCode.PAYMENT_PROVIDER_ERROR,
            message or f"The payment provider refused to {action}; nothing was changed.",
            details={"provider_code": code or "refused"},
        )


class ProviderTimeout(ProviderUnreachable):
    """Stripe did not answer within the gateway's timeout: an unknown outcome, like a crash."""

    def __init__(self, action: str, seconds: float, *, money: bool) -> None:
        head = f"Stripe did not answer in time (within {seconds:g} seconds)"
        if money:
            message = f"{head}, so whether it could {action} is not known yet. {RETRY_WITH_KEY}"
        else:
            message = f"{head} to {action}; {_NOTHING_CHANGED}"
        super().__init__(action, message=message, details={"provider_code": "timeout"})
        self.seconds = seconds


_NO_SUCH = re.compile(r"No such ([A-Za-z_]+)")


def _missing(exc: stripe.StripeError, action: str) -> ProviderRefused | None:
    """Stripe has no object our records refer to (``resource_missing``): say which kind (the
    request parameter's name, never its value) and what to do, instead of a bare refusal."""
    if exc.code != "resource_missing" and exc.http_status != 404:
        return None
    param = exc.error.param if exc.error is not None and exc.error.param else None
    if param is None:  # e.g. "No such customer: cus_…"; localstripe says only "Not Found"
        named = _NO_SUCH.search(str(exc.user_message or ""))
        param = named.group(1).lower() if named else None
    what = (
        f"no such {param}" if param else "no object this request refers to (such as its customer)"
    )
    return ProviderRefused(
        action,
        exc.code,
        message=f"The payment provider could not {action}: it has {what}, which our records "
        "refer to (the Stripe account, or the local Stripe emulator's state, was reset or "
        "changed since it was made). Create it again (for a customer: a new customer, or "
        "restore BILLING_HOME/stripe-emulator.pickle with the database); nothing was changed.",
    )


def _payment_error(exc: stripe.StripeError, action: str) -> DomainError:
    """Classify a failed money call by what it tells us about Stripe's state."""
    log.warning("stripe %s failed: %s (%s)", action, type(exc).__name__, exc.code or "no code")
    if isinstance(exc, stripe.CardError):
        error = exc.error
        reason = (error.decline_code if error else None) or exc.code or "card_declined"
        message = (error.message if error else None) or "The card was declined."
        return CardDeclined(str(reason), str(message))
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError) or status is None or status >= 500:
        return ProviderUnreachable(action)
    if status == 409:  # an identical request is still being processed at Stripe
        return ProviderUnreachable(action)
    return _missing(exc, action) or ProviderRefused(action, exc.code)


def _intent(obj: Any) -> StripeIntent:
    data: dict[str, Any] = obj.to_dict()
    method = data.get("payment_method")
    if isinstance(method, dict):
        method = method.get("id")
    error = data.get("last_payment_error") or {}
    return StripeIntent(
        id=data["id"],
        status=data["status"],
        amount=int(data["amount"]),
        currency=str(data["currency"]).upper(),
        client_secret=data.get("client_secret"),
        payment_method=method,
        amount_received=data.get("amount_received"),
        amount_capturable=data.get("amount_capturable"),
        next_action=data.get("next_action") or None,
        error_code=error.get("decline_code") or error.get("code"),
        error_message=error.get("message"),
    )


def _refund(obj: Any) -> StripeRefund:
    data: dict[str, Any] = obj.to_dict()
    return StripeRefund(
        id=data["id"],
        status=data.get("status") or "pending",
        amount=int(data["amount"]),
        failure_reason=data.get("failure_reason"),
    )


def _provider_error(exc: stripe.StripeError, action: str) -> DomainError:
    """Classify a failed call that mirrors our catalog or customers (no money moves): a card
    error or a refusal is definite; anything else may have taken effect (``ProviderUnreachable``,
    which the callers record as "Stripe may differ")."""
    if isinstance(exc, stripe.CardError):
        reason = (exc.error.decline_code if exc.error else None) or exc.code or "card_declined"
        message = (exc.error.message if exc.error else None) or "The card was declined."
        return CardDeclined(str(reason), str(message))
    # The SDK's message can echo request details; log it, return a generic, safe message.
    log.warning("stripe %s failed: %s (%s)", action, type(exc).__name__, exc.code or "no code")
    message = f"The payment provider could not {action}; {_NOTHING_CHANGED}"
    status = exc.http_status
    if isinstance(exc, stripe.APIConnectionError) or status is None or status >= 500:
        return ProviderUnreachable(action, message=message)
    if status == 409:
        return ProviderUnreachable(action, message=message)
    return _missing(exc, action) or ProviderRefused(action, exc.code, message=message)


class StripeGateway:
    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError("the Stripe timeout is a positive number of seconds")
        self.timeout = float(timeout_seconds)
        self._http = stripe.HTTPXClient(timeout=self.timeout)
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else {},
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    @contextlib.asynccontextmanager
    async def _bounded(self, action: str, *, money: bool) -> AsyncIterator[None]:
        """Bound one gateway call (all its HTTP requests and the SDK's retries) by the timeout;
        past it, the call is cancelled and raises ``ProviderTimeout``."""
        try:
            async with asyncio.timeout(self.timeout):
                yield
        except TimeoutError as exc:
            log.warning("stripe %s: no answer within %gs", action, self.timeout)
            raise ProviderTimeout(action, self.timeout, money=money) from exc

    # -- the catalog and customers (no money moves) ------------------------------------------

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
        action = "create the product"
        async with self._bounded(action, money=False):
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
                raise _provider_error(exc, action) from exc
        return StripeProduct(product.id, price_id)

    async def update_product(
        self, product_id: str, *, name: str, price_id: str | None = None, active: bool = True
    ) -> None:
        """Rename the product; with ``price_id``, also set whether that price is offered (how a
        plan's mirror is repaired after an unknown outcome)."""
        action = "update the product"
        async with self._bounded(action, money=False):
            try:
                await self._client.v1.products.update_async(product_id, params={"name": name})
                if price_id is not None:
                    await self._client.v1.plans.update_async(price_id, params={"active": active})
            except stripe.StripeError as exc:
                raise _provider_error(exc, action) from exc

    async def deactivate_price(self, price_id: str) -> None:
        action = "archive the price"
        async with self._bounded(action, money=False):
            try:
                await self._client.v1.plans.update_async(price_id, params={"active": False})
            except stripe.StripeError as exc:
                raise _provider_error(exc, action) from exc

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
        action = "create the customer"
        async with self._bounded(action, money=False):
            try:
                customer = await self._client.v1.customers.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                )
            except stripe.StripeError as exc:
                raise _provider_error(exc, action) from exc
        return customer.id

    async def update_customer(
        self,
        customer_id: str,
        *,
        email: str,
        name: str,
        address: dict[str, str] | None,
        default_payment_method: str | None = None,
    ) -> None:
        params: dict[str, object] = {"email": email, "name": name}
        if address:
            params["address"] = address
        if default_payment_method:
            params["invoice_settings"] = {"default_payment_method": default_payment_method}
        action = "update the customer"
        async with self._bounded(action, money=False):
            try:
                await self._client.v1.customers.update_async(customer_id, params=params)  # type: ignore[arg-type]
            except stripe.StripeError as exc:
                raise _provider_error(exc, action) from exc

    async def attach_default_payment_method(
        self, customer_id: str, payment_method_id: str
    ) -> AttachedCard:
        """Attach a PaymentMethod to the customer (Stripe validates the card) and make it the
        customer's default for invoices."""
        action = "attach the payment method"
        async with self._bounded(action, money=False):
            try:
                method = await self._client.v1.payment_methods.attach_async(
                    payment_method_id, params={"customer": customer_id}
                )
                await self._client.v1.customers.update_async(
                    customer_id,
                    params={"invoice_settings": {"default_payment_method": method.id}},
                )
            except stripe.InvalidRequestError as exc:
                if exc.http_status == 404:
                    raise DomainError(
                        ErrorCode.NOT_FOUND,
                        "The payment method does not exist at Stripe.",
                        field=("input", "paymentMethodId"),
                    ) from exc
                raise _provider_error(exc, action) from exc
            except stripe.StripeError as exc:
                raise _provider_error(exc, action) from exc
        card = method.card
        return AttachedCard(method.id, card.brand if card else None, card.last4 if card else None)

    # -- money ---------------------------------------------------------------------------------

    async def create_payment_intent(
        self,
        *,
        idempotency_key: str,
        amount: int,
        currency: str,
        customer: str,
        payment_method: str | None,
        manual_capture: bool,
        metadata: dict[str, str],
    ) -> StripeIntent:
        params: dict[str, Any] = {
            "amount": amount,
            "currency": currency.lower(),
            "customer": customer,
            "capture_method": "manual" if manual_capture else "automatic",
            "metadata": metadata,
        }
        if payment_method:
            params["payment_method"] = payment_method
        action = "create the payment"
        async with self._bounded(action, money=True):
            try:
                intent = await self._client.v1.payment_intents.create_async(
                    params=params,  # type: ignore[arg-type]
                    options={"idempotency_key": idempotency_key},
                )
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _intent(intent)

    async def set_payment_method(
        self, intent_id: str, payment_method: str, *, idempotency_key: str
    ) -> StripeIntent:
        action = "set the payment method"
        async with self._bounded(action, money=True):
            try:
                intent = await self._client.v1.payment_intents.update_async(
                    intent_id,
                    params={"payment_method": payment_method},
                    options={"idempotency_key": idempotency_key},
                )
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _intent(intent)

    async def confirm_payment_intent(self, intent_id: str, *, idempotency_key: str) -> StripeIntent:
        """Raises ``CardDeclined`` when Stripe declines the charge."""
        action = "confirm the payment"
        async with self._bounded(action, money=True):
            try:
                intent = await self._client.v1.payment_intents.confirm_async(
                    intent_id, options={"idempotency_key": idempotency_key}
                )
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _intent(intent)

    async def capture_payment_intent(
        self, intent_id: str, *, amount: int | None, idempotency_key: str
    ) -> StripeIntent:
        action = "capture the payment"
        async with self._bounded(action, money=True):
            try:
                intent = await self._client.v1.payment_intents.capture_async(
                    intent_id,
                    params={"amount_to_capture": amount} if amount is not None else None,
                    options={"idempotency_key": idempotency_key},
                )
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _intent(intent)

    async def cancel_payment_intent(self, intent_id: str, *, idempotency_key: str) -> StripeIntent:
        action = "cancel the payment"
        async with self._bounded(action, money=True):
            try:
                intent = await self._client.v1.payment_intents.cancel_async(
                    intent_id, options={"idempotency_key": idempotency_key}
                )
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _intent(intent)

    async def retrieve_payment_intent(self, intent_id: str) -> StripeIntent:
        action = "read the payment"
        async with self._bounded(action, money=True):
            try:
                intent = await self._client.v1.payment_intents.retrieve_async(intent_id)
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _intent(intent)

    async def create_refund(
        self,
        *,
        idempotency_key: str,
        payment_intent: str,
        amount: int,
        metadata: dict[str, str],
    ) -> StripeRefund:
        action = "create the refund"
        async with self._bounded(action, money=True):
            try:
                refund = await self._client.v1.refunds.create_async(
                    params={
                        "payment_intent": payment_intent,
                        "amount": amount,
                        "metadata": metadata,
                    },
                    options={"idempotency_key": idempotency_key},
                )
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _refund(refund)

    async def retrieve_refund(self, refund_id: str) -> StripeRefund:
        action = "read the refund"
        async with self._bounded(action, money=True):
            try:
                refund = await self._client.v1.refunds.retrieve_async(refund_id)
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
        return _refund(refund)

    async def find_refund(self, payment_intent: str, *, refund_id: str) -> StripeRefund | None:
        """The Stripe refund created for our ``refund_id`` (found by its metadata), if any: how
        a retry learns whether an interrupted attempt reached Stripe. All pages together are
        bounded by one timeout."""
        params: dict[str, Any] = {"payment_intent": payment_intent, "limit": 100}
        action = "read the refunds"
        async with self._bounded(action, money=True):
            try:
                while True:
                    page = await self._client.v1.refunds.list_async(params=params)  # type: ignore[arg-type]
                    for refund in page.data:
                        metadata: dict[str, Any] = refund.to_dict().get("metadata") or {}
                        if metadata.get("refund_id") == refund_id:
                            return _refund(refund)
                    if not page.has_more or not page.data:
                        return None
                    params["starting_after"] = page.data[-1].id
            except stripe.StripeError as exc:
                raise _payment_error(exc, action) from exc
