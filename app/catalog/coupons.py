"""Coupons and discounts: a coupon (percentage or fixed amount off, for one, N or every billing
period) is applied to a customer or a subscription as a *discount*; each invoice then asks which
coupon applies to it and records the redemption.

Rules:

* ``max_redemptions`` limits how many times the coupon can be applied (discounts created) and
  ``redeem_by`` until when; both are checked by one conditional UPDATE, so concurrent
  applications cannot pass them. A discount already applied keeps working after either.
* A discount covers the customer's (or subscription's) next billing periods: ``once`` the first
  invoice, ``repeating`` the next N, ``forever`` all. A period is identified by its invoice, or
  for subscriptions by ``subscription:period_index``, so billing a period again (a retried
  renewal) does not use another one.
* A subscription's own discount comes first, then the customer's. Applying a coupon replaces the
  discount in force for the same customer or subscription.
* A fixed-amount coupon only applies to invoices in its currency (it is skipped, not used up, on
  the others); it never takes an invoice below zero (see ``app.invoicing.math``).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from app.catalog.terms import BASIS_POINTS, Coupon
from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.ids import new_id
from app.core.listing import Listing
from app.core.money import MAX_AMOUNT, Money
from app.rollups import StatsRecorder
from db.connection import Database, Row
from db.repositories.coupons import CouponRepository, DiscountRepository
from db.repositories.customers import CustomerRepository

__all__ = [
    "AppliedCoupon",
    "CouponDraft",
    "CouponDuration",
    "CouponRecord",
    "CouponService",
    "Discount",
    "parse_percent",
]

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_PERIODS = 1200
_INT32 = 2**31 - 1


class CouponDuration(enum.Enum):
    ONCE = "once"
    REPEATING = "repeating"
    FOREVER = "forever"


@dataclass(frozen=True, slots=True)
class CouponRecord:
    id: str
    organization_id: str
    code: str
    name: str
    percent_off: int | None  # basis points
    amount_off: Money | None
    duration: CouponDuration
    duration_periods: int | None
    max_redemptions: int | None
    times_redeemed: int
    redeem_by: datetime | None
    active: bool
    created_at: datetime
    archived_at: datetime | None

    @classmethod
    def from_row(cls, row: Row) -> CouponRecord:
        amount_off = row["amount_off"]
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            code=row["code"],
            name=row["name"],
            percent_off=row["percent_off"],
            amount_off=Money(amount_off, row["currency"]) if amount_off is not None else None,
            duration=CouponDuration(row["duration"]),
            duration_periods=row["duration_periods"],
            max_redemptions=row["max_redemptions"],
            times_redeemed=row["times_redeemed"],
            redeem_by=row["redeem_by"],
            active=row["active"],
            created_at=row["created_at"],
            archived_at=row["archived_at"],
        )

    def covers(self, periods_used: int) -> bool:
        """Whether a discount that has already discounted ``periods_used`` periods discounts
        one more."""
        if self.duration is CouponDuration.FOREVER:
            return True
        limit = 1 if self.duration is CouponDuration.ONCE else self.duration_periods or 0
        return periods_used < limit

    def for_invoice(self, currency: str) -> Coupon | None:
        """The coupon as ``compute_totals`` takes it; None for a fixed amount in another
        currency."""
        if self.amount_off is not None and self.amount_off.currency != currency:
            return None
        return Coupon(percent_off=self.percent_off, amount_off=self.amount_off, name=self.name)


@dataclass(frozen=True, slots=True)
class Discount:
    id: str
    organization_id: str
    coupon_id: str
    customer_id: str
    subscription_id: str | None
    periods_used: int
    ended_at: datetime | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Discount:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            coupon_id=row["coupon_id"],
            customer_id=row["customer_id"],
            subscription_id=row["subscription_id"],
            periods_used=row["periods_used"],
            ended_at=row["ended_at"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class AppliedCoupon:
    """The coupon an invoice gets, and the discount it comes from."""

    discount: Discount
    coupon: CouponRecord
    terms: Coupon


@dataclass(frozen=True)
class CouponDraft:
    code: str
    name: str
    duration: CouponDuration
    percent_off: str | None = None
    amount_off: int | None = None
    currency: str | None = None
    duration_periods: int | None = None
    max_redemptions: int | None = None
    redeem_by: datetime | None = None


def parse_percent(text: str) -> int:
    """ "15" or "12.5" percent as basis points (1500, 1250); at most 2 decimals, 0 < p <= 100."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise DomainError(ErrorCode.INVALID, f"{text[:32]!r} is not a percentage.") from None
    if not value.is_finite():
        raise DomainError(ErrorCode.INVALID, "A percentage must be a finite number.")
    try:
        scaled = value.scaleb(2)
    except ArithmeticError:  # an exponent beyond Decimal's range, e.g. "1e999999999"
        raise DomainError(ErrorCode.INVALID, "A percentage off is at most 100.") from None
    if scaled != scaled.to_integral_value():
        raise DomainError(ErrorCode.INVALID, "A percentage off has at most 2 decimal places.")
    if not 0 < scaled <= BASIS_POINTS:
        raise DomainError(ErrorCode.INVALID, "A percentage off is more than 0 and at most 100.")
    return int(scaled)


def _check(draft: CouponDraft) -> tuple[dict[str, object], list[DomainError]]:
    errors: list[DomainError] = []

    def bad(name: str, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        errors.append(DomainError(code, message, field=("input", name)))

    code, name = draft.code.strip(), draft.name.strip()
    if not _CODE.match(code):
        bad("code", "Code must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric.")
    if not name:
        bad("name", "A coupon needs a name, shown on invoices.", ErrorCode.REQUIRED)
    elif len(name) > 200:
        bad("name", "Name must be at most 200 characters.")
    percent_off = amount_off = None
    if (draft.percent_off is None) == (draft.amount_off is None):
        bad("percentOff", "Give exactly one of percentOff or amountOff.")
    elif draft.percent_off is not None:
        try:
            percent_off = parse_percent(draft.percent_off)
        except DomainError as exc:
            errors.append(exc.at(("input", "percentOff")))
    else:
        try:
            amount_off = Money.of(
                draft.amount_off or 0, draft.currency or "", field=("input", "amountOff")
            )
        except DomainError as exc:
            errors.append(exc)
        else:
            if not 1 <= amount_off.amount <= MAX_AMOUNT:
                bad("amountOff", "A fixed amount off is more than zero.")
    if draft.duration is CouponDuration.REPEATING:
        if draft.duration_periods is None or not 1 <= draft.duration_periods <= _MAX_PERIODS:
            bad("durationPeriods", f"A repeating coupon lasts 1-{_MAX_PERIODS} periods.")
    elif draft.duration_periods is not None:
        bad("durationPeriods", "Only a repeating coupon has a number of periods.")
    if draft.max_redemptions is not None and not 1 <= draft.max_redemptions <= _INT32:
        bad("maxRedemptions", "Max redemptions must be a positive 32-bit integer, or null.")
    if draft.redeem_by is not None:
        if draft.redeem_by.utcoffset() is None:
            bad("redeemBy", "redeemBy needs a time zone (ISO 8601 with an offset or Z).")
        elif draft.redeem_by <= datetime.now(UTC):
            bad("redeemBy", "redeemBy must be in the future.")
    values: dict[str, object] = {
        "code": code,
        "name": name,
        "percent_off": percent_off,
        "amount_off": amount_off.amount if amount_off else None,
        "currency": amount_off.currency if amount_off else None,
        "duration": draft.duration.value,
        "duration_periods": draft.duration_periods,
        "max_redemptions": draft.max_redemptions,
        "redeem_by": draft.redeem_by,
    }
    return values, errors


class CouponService:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._coupons = CouponRepository(db)
        self._discounts = DiscountRepository(db)
        self._customers = CustomerRepository(db)
        self._stats = StatsRecorder(db)
        self.read = Listing(self._coupons, CouponRecord.from_row)
        self.discounts = Listing(self._discounts, Discount.from_row)

    async def create(self, org: str, draft: CouponDraft) -> CouponRecord:
        values, errors = _check(draft)
        if errors:
            raise ValidationFailed(errors)
        row = await self._coupons.insert({**values, "organization_id": org, "id": new_id("coup")})
        if row is None:
            raise DomainError(
                ErrorCode.DUPLICATE,
                f"A coupon with code {values['code']!r} already exists.",
                field=("input", "code"),
            )
        return CouponRecord.from_row(row)

    async def archive(self, org: str, coupon_id: str) -> CouponRecord:
        """Stop new applications; discounts already applied keep running."""
        row = await self._coupons.archive(org, coupon_id)
        if row is not None:
            return CouponRecord.from_row(row)
        (existing,) = await self._coupons.by_ids(org, [coupon_id])
        if existing is None:
            raise NotFound("Coupon", ("input", "id"))
        raise DomainError(
            ErrorCode.INVALID_STATE, "The coupon is already archived.", field=("input", "id")
        )

    async def find(self, org: str, *, coupon_id: str | None, code: str | None) -> CouponRecord:
        if (coupon_id is None) == (code is None):
            raise DomainError(
                ErrorCode.INVALID,
                "Give exactly one of couponId or code.",
                field=("input", "couponId"),
            )
        if coupon_id is not None:
            (row,) = await self._coupons.by_ids(org, [coupon_id])
            if row is None:
                raise NotFound("Coupon", ("input", "couponId"))
            return CouponRecord.from_row(row)
        page = await self._coupons.page(org, {"code": (code or "").strip()}, first=1, after=None)
        if not page.rows:
            raise NotFound("Coupon", ("input", "code"))
        return CouponRecord.from_row(page.rows[0])

    async def apply(
        self, org: str, coupon: CouponRecord, customer_id: str, *, subscription_id: str | None
    ) -> Discount:
        """Apply ``coupon`` to the customer (or one of its subscriptions), replacing the
        discount in force there, and count the redemption."""
        async with self._db.transaction():
            if await self._customers.lock(org, customer_id) is None:
                raise NotFound("Customer", ("input", "customerId"))
            if await self._coupons.redeem(org, coupon.id) is None:
                raise self._not_redeemable(coupon)
            current = await self._discounts.current(org, customer_id, subscription_id, lock=True)
            if current is not None:
                await self._discounts.end(org, current["id"])
            row = await self._discounts.insert(
                {
                    "organization_id": org,
                    "id": new_id("di"),
                    "coupon_id": coupon.id,
                    "customer_id": customer_id,
                    "subscription_id": subscription_id,
                }
            )
        assert row is not None
        return Discount.from_row(row)

    @staticmethod
    def _not_redeemable(coupon: CouponRecord) -> DomainError:
        if not coupon.active:
            reason = "The coupon is archived."
        elif coupon.redeem_by is not None and coupon.redeem_by <= datetime.now(UTC):
            reason = "The coupon has expired."
        else:
            reason = "The coupon has reached its maximum number of redemptions."
        return DomainError(ErrorCode.INVALID_STATE, reason, field=("input", "couponId"))

    async def preview(
        self, org: str, *, customer_id: str, subscription_id: str | None, currency: str
    ) -> AppliedCoupon | None:
        """The coupon the customer's next invoice would get (nothing is recorded)."""
        for discount, coupon in await self._candidates(org, customer_id, subscription_id, False):
            terms = coupon.for_invoice(currency)
            if terms is not None and coupon.covers(discount.periods_used):
                return AppliedCoupon(discount, coupon, terms)
        return None

    async def redeem(
        self,
        org: str,
        *,
        customer_id: str,
        subscription_id: str | None,
        currency: str,
        invoice_id: str,
        discounts: Callable[[Coupon], bool],
        period_index: int | None = None,
    ) -> AppliedCoupon | None:
        """The coupon that applies to ``invoice_id``, its use recorded; None if none applies.

        Call it inside the transaction that finalizes the invoice (the discount row stays
        locked until it ends). Subscriptions pass the billing period's ``period_index``: asking
        again for a period already redeemed returns the same coupon without using another
        period. ``discounts`` says whether the terms would take anything off this invoice: an
        invoice the coupon cannot discount (a credit, or only lines it does not apply to) does
        not use one of its periods, so a ``once`` coupon waits for the first invoice it can
        discount.
        """
        key = invoice_id
        if subscription_id is not None and period_index is not None:
            key = f"{subscription_id}:{period_index}"
        for discount, coupon in await self._candidates(org, customer_id, subscription_id, True):
            terms = coupon.for_invoice(currency)
            if terms is None:
                continue
            if await self._discounts.redeemed_for(org, discount.id, key):
                return AppliedCoupon(discount, coupon, terms)
            if not discounts(terms):
                continue
            if coupon.covers(discount.periods_used):
                await self._discounts.record_redemption(org, discount.id, key, invoice_id)
                if subscription_id is not None and period_index is not None:
                    # A subscription's MRR counts the coupon of its current period.
                    await self._stats.subscription_changed(org, subscription_id)
                return AppliedCoupon(discount, coupon, terms)
        return None

    async def _candidates(
        self, org: str, customer_id: str, subscription_id: str | None, lock: bool
    ) -> list[tuple[Discount, CouponRecord]]:
        scopes: list[str | None] = [subscription_id, None] if subscription_id else [None]
        found: list[Discount] = []
        for scope in scopes:
            row = await self._discounts.current(org, customer_id, scope, lock=lock)
            if row is not None:
                found.append(Discount.from_row(row))
        if not found:
            return []
        coupons = await self.read.by_ids(org, [d.coupon_id for d in found])
        return [(d, c) for d, c in zip(found, coupons, strict=True) if c is not None]
