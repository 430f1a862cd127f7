"""Refunds: type, inputs, payloads, queries and mutations."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry

from app.payments import Payment as DomainPayment
from app.payments import Refund as DomainRefund
from app.payments import RefundFailed
from resolvers import refunds as resolve
from schema.base import INPUT, Info
from schema.enums import RefundReason, RefundStatus
from schema.errors import UserError, attempt
from schema.money import Money, MoneyInput
from schema.node import Node, serves
from schema.pagination import (
    AFTER,
    BEFORE,
    FIRST,
    LAST,
    ORDER_BY,
    Connection,
    ListOrder,
    ordered,
    to_connection,
    window,
)
from schema.permissions import AdminOnly, AdminOrService, AnyRole

if TYPE_CHECKING:
    from schema.payments import Payment

__all__ = ["Refund", "RefundMutations", "RefundQueries"]


@strawberry.type(description="Money returned from a payment through a Stripe Refund.")
class Refund(Node):
    id: strawberry.ID = strawberry.field(description="Opaque id, `re_…`.")

    is_type_of = serves(DomainRefund)

    payment_id: strawberry.ID = strawberry.field(description="The refunded payment, `pay_…`.")
    customer_id: strawberry.ID = strawberry.field(description="The payment's customer, `cus_…`.")
    amount: Money = strawberry.field(description="Amount returned, in the payment's currency.")
    reason: RefundReason = strawberry.field(description="Why.")
    status: RefundStatus = strawberry.field(description="Where it stands (follows Stripe).")
    stripe_refund_id: str | None = strawberry.field(
        description="The Stripe Refund, once Stripe has it."
    )
    failure_reason: str | None = strawberry.field(
        description="Why Stripe failed or refused it, when `FAILED`."
    )
    approved_at: datetime | None = strawberry.field(description="When it was approved (UTC).")
    rejected_at: datetime | None = strawberry.field(description="When it was rejected (UTC).")
    created_at: datetime = strawberry.field(description="When it was asked for (UTC).")
    updated_at: datetime = strawberry.field(description="Last change (UTC).")

    # Customers never see staff identities nor staff text (``app.payments.refunds.audit_for``).
    @strawberry.field(
        description="Free text from the requester; may be empty. Null for a customer token "
        "unless that customer asked for the refund itself (staff notes are not shown to "
        "customers)."
    )
    def note(self, info: Info, root: strawberry.Parent[DomainRefund]) -> str | None:
        return resolve.audit(info.context, root).note

    @strawberry.field(
        description="Subject of the token that asked for it. Null for a customer token unless "
        "that customer asked for it itself (customers never see staff identities)."
    )
    def requested_by(self, info: Info, root: strawberry.Parent[DomainRefund]) -> str | None:
        return resolve.audit(info.context, root).requested_by

    @strawberry.field(
        description="Subject of the admin who approved it, if it needed approval. Always null "
        "for a customer token (customers never see staff identities; `approvedAt` says when)."
    )
    def approved_by(self, info: Info, root: strawberry.Parent[DomainRefund]) -> str | None:
        return resolve.audit(info.context, root).approved_by

    @strawberry.field(
        description="Subject of the admin who rejected it. Always null for a customer token "
        "(customers never see staff identities; `rejectedAt` says when)."
    )
    def rejected_by(self, info: Info, root: strawberry.Parent[DomainRefund]) -> str | None:
        return resolve.audit(info.context, root).rejected_by

    @strawberry.field(
        description="Why it was rejected (the admin's words). Always null for a customer token."
    )
    def rejection_reason(self, info: Info, root: strawberry.Parent[DomainRefund]) -> str | None:
        return resolve.audit(info.context, root).rejection_reason

    @strawberry.field(
        description="The refunded payment.",
        graphql_type=Annotated["Payment", strawberry.lazy("schema.payments")] | None,
    )
    async def payment(
        self, info: Info, root: strawberry.Parent[DomainRefund]
    ) -> DomainPayment | None:
        return await resolve.payment_of(info.context, root)


@strawberry.input(description="Filters for `refunds`; omitted fields do not filter.")
class RefundFilter:
    payment_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only refunds of this payment."
    )
    customer_id: strawberry.ID | None = strawberry.field(
        default=None, description="Only refunds of this customer's payments."
    )
    status: list[RefundStatus] | None = strawberry.field(
        default=None, description="Only refunds in one of these statuses."
    )


@strawberry.input(description="Return money from a succeeded payment.")
class RefundCreateInput:
    payment_id: strawberry.ID = strawberry.field(description="The payment to refund, `pay_…`.")
    amount: MoneyInput | None = strawberry.field(
        default=None,
        description="How much, in the payment's currency, more than zero and at most what is "
        "still refundable. Omitted: all that is still refundable.",
    )
    reason: RefundReason = strawberry.field(description="Why.")
    note: str = strawberry.field(default="", description="Free text, at most 1000 characters.")
    idempotency_key: str = strawberry.field(
        description="Your unique key for this request (1-255 chars, e.g. a UUID). Retrying with "
        "the same key and input returns the same refund; it is never made twice."
    )


@strawberry.input(description="Approve a refund waiting for approval: it goes to Stripe now.")
class RefundApproveInput:
    refund_id: strawberry.ID = strawberry.field(description="The refund, `re_…`.")
    idempotency_key: str = strawberry.field(
        description="Your unique key for this request; a retry with it never refunds twice."
    )


@strawberry.input(description="Reject a refund waiting for approval.")
class RefundRejectInput:
    refund_id: strawberry.ID = strawberry.field(description="The refund, `re_…`.")
    reason: str = strawberry.field(description="Why, 1-1000 characters (kept with the refund).")


@strawberry.input(description="Read a refund's state from Stripe.")
class RefundRefreshInput:
    refund_id: strawberry.ID = strawberry.field(description="The refund, `re_…`.")


@strawberry.type(description="Result of the refund mutations.")
class RefundPayload:
    refund: DomainRefund | None = strawberry.field(
        graphql_type=Refund | None,
        description="The refund; null on errors, except when Stripe refused it: then it is "
        "returned `FAILED` with the error.",
    )
    errors: list[UserError] = strawberry.field(description="What went wrong, if anything.")


async def _payload(action: Awaitable[DomainRefund]) -> RefundPayload:
    carried: list[DomainRefund] = []

    async def run() -> DomainRefund:
        try:
            return await action
        except RefundFailed as exc:
            carried.append(exc.refund)
            raise

    refund, errors = await attempt(run())
    return RefundPayload(refund=refund or next(iter(carried), None), errors=errors)


@strawberry.type
class RefundQueries:
    @strawberry.field(
        description="One refund by id; null if it does not exist or is not yours.",
        permission_classes=[AnyRole],
        graphql_type=Refund | None,
    )
    async def refund(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="`re_…`")]
    ) -> DomainRefund | None:
        return await resolve.get(info.context, id)

    @strawberry.field(
        description="Refunds, oldest first. A customer token sees refunds of its own payments.",
        permission_classes=[AnyRole],
        graphql_type=Connection[Refund],
    )
    async def refunds(
        self,
        info: Info,
        first: Annotated[int | None, strawberry.argument(description=FIRST)] = None,
        after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
        last: Annotated[int | None, strawberry.argument(description=LAST)] = None,
        before: Annotated[str | None, strawberry.argument(description=BEFORE)] = None,
        filter: Annotated[RefundFilter | None, strawberry.argument(description="Filters.")] = None,
        order_by: Annotated[
            ListOrder, strawberry.argument(description=ORDER_BY)
        ] = ListOrder.OLDEST_FIRST,
    ) -> Connection[DomainRefund]:
        page = window(first, after, last, before)
        filters: dict[str, object] = {}
        if filter is not None:
            filters = {
                "payment_id": filter.payment_id,
                "customer_id": filter.customer_id,
                "statuses": [s.value for s in filter.status] if filter.status else None,
            }
        nodes, has_next, count = await resolve.list_page(
            info.context,
            ordered(filters, order_by, page),
            first=page.size,
            after=page.cursor,
        )
        return to_connection(nodes, has_next, count, page)


@strawberry.type
class RefundMutations:
    @strawberry.mutation(
        description="Refund a succeeded payment, in full or in part (several partial refunds "
        "are allowed; together they never exceed what was captured, whatever the concurrency). "
        "The refund waits in PENDING_APPROVAL when it is asked for by a customer token, or "
        "when the payment's cumulative refunded amount (refunds succeeded, in flight and "
        "awaiting approval, plus this one) would be above the organization's approval "
        "threshold for its currency; otherwise it goes to Stripe at once.",
        permission_classes=[AnyRole],
    )
    async def refund_create(
        self,
        info: Info,
        input: Annotated[RefundCreateInput, strawberry.argument(description=INPUT)],
    ) -> RefundPayload:
        return await _payload(
            resolve.create(
                info.context,
                input.payment_id,
                amount=input.amount.amount if input.amount else None,
                currency=input.amount.currency if input.amount else None,
                reason=input.reason,
                note=input.note,
                idempotency_key=input.idempotency_key,
            )
        )

    @strawberry.mutation(
        description="Approve a refund waiting for approval and send it to Stripe; records you "
        "as the approver (who must not be the requester). Admin only.",
        permission_classes=[AdminOnly],
    )
    async def refund_approve(
        self,
        info: Info,
        input: Annotated[RefundApproveInput, strawberry.argument(description=INPUT)],
    ) -> RefundPayload:
        return await _payload(resolve.approve(info.context, input.refund_id, input.idempotency_key))

    @strawberry.mutation(
        description="Reject a refund waiting for approval, with a reason; its amount becomes "
        "refundable again. Admin only.",
        permission_classes=[AdminOnly],
    )
    async def refund_reject(
        self,
        info: Info,
        input: Annotated[RefundRejectInput, strawberry.argument(description=INPUT)],
    ) -> RefundPayload:
        return await _payload(resolve.reject(info.context, input.refund_id, input.reason))

    @strawberry.mutation(
        description="Read the refund's status from Stripe and record it (a failed refund frees "
        "its amount). A refund whose sending was interrupted is looked up at Stripe, and sent "
        "if Stripe never got it. Admin or service.",
        permission_classes=[AdminOrService],
    )
    async def refund_refresh(
        self,
        info: Info,
        input: Annotated[RefundRefreshInput, strawberry.argument(description=INPUT)],
    ) -> RefundPayload:
        return await _payload(resolve.refresh(info.context, input.refund_id))
