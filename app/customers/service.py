"""Customers: validation, the Stripe Customer mirror and the default payment method.

No transaction is open while Stripe answers (see app/stripe/mirror.py): a slow Stripe slows the
customer being written, not every tenant sharing the database pool.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from app.core.errors import DomainError, ErrorCode, NotFound, ValidationFailed
from app.core.ids import new_id
from app.core.listing import Listing
from app.core.money import normalize_currency
from app.stripe import Held, MirrorLeases, StripeGateway
from db.connection import Database, Row
from db.repositories.customers import CustomerRepository

__all__ = ["Address", "Customer", "CustomerDraft", "CustomerService", "TaxExempt", "TaxId"]

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TAX_ID_TYPE = re.compile(r"^[a-z]{2,5}_[a-z]{2,5}$")  # Stripe style: eu_vat, gb_vat, us_ein
_MAX_METADATA_KEYS = 50
# What Stripe's Customer mirrors; the other fields live only here.
_MIRRORED = ("email", "name", "address")

log = logging.getLogger(__name__)


class TaxExempt(enum.Enum):
    NONE = "none"
    EXEMPT = "exempt"
    REVERSE = "reverse"


@dataclass(frozen=True, slots=True)
class Address:
    country: str
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "country": self.country,
            "line1": self.line1,
            "line2": self.line2,
            "city": self.city,
            "region": self.region,
            "postal_code": self.postal_code,
        }

    def for_stripe(self) -> dict[str, str]:
        names = {"region": "state"}
        return {names.get(k, k): v for k, v in self.as_dict().items() if v}


@dataclass(frozen=True, slots=True)
class TaxId:
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    organization_id: str
    external_ref: str | None
    email: str
    name: str
    address: Address | None
    preferred_currency: str | None
    tax_ids: list[TaxId]
    tax_exempt: TaxExempt
    metadata: dict[str, str]
    stripe_customer_id: str | None
    default_payment_method_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> Customer:
        address = row["address"]
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            external_ref=row["external_ref"],
            email=row["email"],
            name=row["name"],
            address=Address(**address) if address else None,
            preferred_currency=row["preferred_currency"],
            tax_ids=[TaxId(**item) for item in row["tax_ids"]],
            tax_exempt=TaxExempt(row["tax_exempt"]),
            metadata=row["metadata"],
            stripe_customer_id=row["stripe_customer_id"],
            default_payment_method_id=row["default_payment_method_id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True)
class CustomerDraft:
    email: str
    name: str = ""
    external_ref: str | None = None
    address: Address | None = None
    preferred_currency: str | None = None
    tax_ids: list[TaxId] = field(default_factory=list)
    tax_exempt: TaxExempt = TaxExempt.NONE
    metadata: Any = field(default_factory=dict)  # validated: an object of strings


UPDATABLE = ("email", "name", "address", "preferred_currency", "tax_ids", "tax_exempt", "metadata")


def _normalize(values: dict[str, Any], path: tuple[str, ...]) -> list[DomainError]:
    """Trim and check every field present in ``values`` in place; return every problem."""
    errors: list[DomainError] = []

    def bad(name: str, message: str, code: ErrorCode = ErrorCode.INVALID) -> None:
        errors.append(DomainError(code, message, field=(*path, name)))

    if "email" in values:
        values["email"] = (values["email"] or "").strip()
        if not _EMAIL.match(values["email"]):
            bad("email", "Email must be an address like name@example.com.")
    if "name" in values:
        values["name"] = (values["name"] or "").strip()
        if len(values["name"]) > 200:
            bad("name", "Name must be at most 200 characters.")
    if values.get("external_ref") is not None:
        values["external_ref"] = values["external_ref"].strip()
        if not 1 <= len(values["external_ref"]) <= 200:
            bad("externalRef", "External reference must be 1-200 characters.")
    address = values.get("address")
    if address is not None:
        country = address.country.strip().upper()
        if not _COUNTRY.match(country):
            bad("address", "Country must be an ISO 3166-1 alpha-2 code such as FR.")
        lengths = [len(getattr(address, name)) for name in ("line1", "line2", "city", "region")]
        if max(lengths) > 200 or len(address.postal_code) > 20:
            bad("address", "Address lines are at most 200 characters, postal codes 20.")
        values["address"] = Address(
            country=country,
            line1=address.line1.strip(),
            line2=address.line2.strip(),
            city=address.city.strip(),
            region=address.region.strip(),
            postal_code=address.postal_code.strip(),
        )
    if values.get("preferred_currency") is not None:
        try:
            values["preferred_currency"] = normalize_currency(values["preferred_currency"])
        except DomainError as exc:
            errors.append(exc.at((*path, "preferredCurrency")))
    if "tax_ids" in values:
        tax_ids = values["tax_ids"] or []
        if len(tax_ids) > 5:
            bad("taxIds", "At most 5 tax ids per customer.")
        for tax_id in tax_ids:
            if not _TAX_ID_TYPE.match(tax_id.type) or not 1 <= len(tax_id.value.strip()) <= 64:
                bad("taxIds", "A tax id has a type such as eu_vat and a value of 1-64 characters.")
        values["tax_ids"] = [TaxId(t.type, t.value.strip()) for t in tax_ids]
    if "metadata" in values:
        metadata = values["metadata"] or {}
        if not isinstance(metadata, dict) or len(metadata) > _MAX_METADATA_KEYS:
            bad("metadata", f"Metadata is an object of at most {_MAX_METADATA_KEYS} keys.")
        elif not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 40 and len(v) <= 500
            for k, v in metadata.items()
        ):
            bad("metadata", "Metadata keys (≤ 40 chars) and values (≤ 500 chars) are strings.")
        values["metadata"] = metadata
    return errors


def _row_values(values: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(values)
    if "address" in row:
        row["address"] = row["address"].as_dict() if row["address"] else None
    if "tax_ids" in row:
        row["tax_ids"] = [{"type": t.type, "value": t.value} for t in row["tax_ids"]]
    if isinstance(row.get("tax_exempt"), TaxExempt):
        row["tax_exempt"] = row["tax_exempt"].value
    return row


class CustomerService:
    def __init__(
        self,
        db: Database,
        stripe: StripeGateway,
        *,
        lease: timedelta | None = None,
        wait_seconds: float | None = None,
    ) -> None:
        self._db = db
        self._stripe = stripe
        self._customers = CustomerRepository(db)
        self._leases = MirrorLeases(
            self._customers,
            kind="customer",
            lease=lease or timedelta(seconds=2 * stripe.timeout + 10),
            wait=stripe.timeout + 5 if wait_seconds is None else wait_seconds,
        )
        self.read = Listing(self._customers, Customer.from_row)

    async def create(self, org: str, draft: CustomerDraft) -> Customer:
        """Insert the customer (leased), create its Stripe Customer with no transaction open,
        then record the Stripe id. A taken external reference is refused before Stripe is
        called; a Stripe failure deletes the inserted row, so it leaves nothing. A crash between
        the two leaves a customer without a Stripe id, which ``ensure_stripe_customer`` mirrors
        with the same idempotency key when it is next needed."""
        values: dict[str, Any] = {
            "email": draft.email,
            "name": draft.name,
            "external_ref": draft.external_ref,
            "address": draft.address,
            "preferred_currency": draft.preferred_currency,
            "tax_ids": draft.tax_ids,
            "tax_exempt": draft.tax_exempt,
            "metadata": draft.metadata,
        }
        errors = _normalize(values, ("input",))
        if errors:
            raise ValidationFailed(errors)
        customer_id = new_id("cus")
        token = self._leases.token()
        row = await self._customers.insert_reserved(
            {**_row_values(values), "organization_id": org, "id": customer_id},
            token=token,
            lease=self._leases.lease,
        )
        if row is None:
            raise DomainError(
                ErrorCode.DUPLICATE,
                "A customer with this external reference already exists.",
                field=("input", "externalRef"),
            )
        held = Held(org, customer_id, token, row)
        try:
            stripe_id = await self._create_at_stripe(row)
        except DomainError:
            if await self._customers.discard(
                org, customer_id, token=token, stripe_id="stripe_customer_id"
            ):
                raise
            # Kept: another request mirrored it meanwhile, or rows already reference it.
            await self._customers.release(org, customer_id, token=token, synced=False)
            current = await self._customers.get(org, customer_id)
            if current is not None and current["stripe_customer_id"]:
                return Customer.from_row(current)
            log.warning("customer %s kept without a Stripe Customer: it is referenced", customer_id)
            raise
        done = await self._leases.finish(
            held, synced=True, values={"stripe_customer_id": stripe_id}
        )
        return Customer.from_row(done)

    async def quote_customer(self, org: str, draft: CustomerDraft) -> Customer:
        """A customer row for a quote (``checkoutPreview``), validated like ``create`` but
        without its Stripe mirror: for use only inside a transaction that is rolled back."""
        values: dict[str, Any] = {
            "email": draft.email,
            "name": draft.name,
            "external_ref": None,
            "address": draft.address,
            "preferred_currency": draft.preferred_currency,
            "tax_ids": draft.tax_ids,
            "tax_exempt": draft.tax_exempt,
            "metadata": draft.metadata,
        }
        errors = _normalize(values, ("input", "address"))
        if errors:
            raise ValidationFailed(errors)
        row = await self._customers.insert_reserved(
            {**_row_values(values), "organization_id": org, "id": new_id("cus")},
            token=self._leases.token(),
            lease=self._leases.lease,
        )
        assert row is not None  # no external reference: nothing to collide with
        return Customer.from_row(row)

    async def ensure_stripe_customer(
        self,
        org: str,
        customer_id: str,
        *,
        field: tuple[str, ...] = ("input", "customerId"),
        repair: bool = True,
    ) -> Customer:
        """The customer, with a Stripe Customer. One that a crash left without (or whose create
        is still running) gets it now, with the same idempotency key and values as the first
        attempt, so Stripe returns what that attempt may already have made. With ``repair``, a
        mirror left out of date by an unknown outcome is written again; that is best effort (a
        failure is logged): the Stripe id is good either way."""
        row = await self._customers.get(org, customer_id)
        if row is None:
            raise NotFound("Customer", field)
        if row["stripe_customer_id"]:
            if repair and not row["stripe_synced"] and not row["sync_busy"]:
                try:
                    return await self._repair(org, customer_id, field)
                except DomainError as exc:
                    log.warning("customer %s: Stripe mirror not repaired (%s)", customer_id, exc)
            return Customer.from_row(row)
        held = await self._leases.hold(org, customer_id, field)
        if held.row["stripe_customer_id"]:
            await self._leases.end(held)
            return Customer.from_row(held.row)
        stripe_id = await self._leases.call(held, lambda: self._create_at_stripe(held.row))
        done = await self._leases.finish(
            held, synced=True, values={"stripe_customer_id": stripe_id}
        )
        return Customer.from_row(done)

    async def update(self, org: str, customer_id: str, changes: Mapping[str, Any]) -> Customer:
        """Change the customer. Changes to what Stripe mirrors (email, name, address) are sent
        to Stripe first, with the values the row will have, then written; the row is leased
        meanwhile, so concurrent changes reach Stripe in the order they are written. A Stripe
        failure changes nothing here."""
        unknown = set(changes) - set(UPDATABLE)
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        values = dict(changes)
        errors = _normalize(values, ("input",))
        if errors:
            raise ValidationFailed(errors)
        field = ("input", "id")
        if not any(name in values for name in _MIRRORED):
            row = (
                await self._customers.update(org, customer_id, _row_values(values))
                if values
                else await self._customers.get(org, customer_id)
            )
            if row is None:
                raise NotFound("Customer", field)
            return Customer.from_row(row)
        await self.ensure_stripe_customer(org, customer_id, field=field, repair=False)
        held = await self._leases.hold(org, customer_id, field)
        target = Customer.from_row({**held.row, **_row_values(values)})
        stripe_id = held.row["stripe_customer_id"]
        await self._leases.call(
            held,
            lambda: self._stripe.update_customer(
                stripe_id,
                email=target.email,
                name=target.name,
                address=target.address.for_stripe() if target.address else None,
                # A mirror out of date may also miss the default card; write it again too.
                default_payment_method=(
                    None if held.row["stripe_synced"] else target.default_payment_method_id
                ),
            ),
        )
        done = await self._leases.finish(held, synced=True, values=_row_values(values))
        return Customer.from_row(done)

    async def set_default_payment_method(
        self, org: str, customer_id: str, payment_method_id: str
    ) -> Customer:
        method = payment_method_id.strip()
        if not method.startswith("pm_") or len(method) > 255:
            raise DomainError(
                ErrorCode.INVALID,
                "A payment method id looks like pm_…",
                field=("input", "paymentMethodId"),
            )
        field = ("input", "customerId")
        await self.ensure_stripe_customer(org, customer_id, field=field, repair=False)
        held = await self._leases.hold(org, customer_id, field)
        stripe_id = held.row["stripe_customer_id"]
        attached = await self._leases.call(
            held, lambda: self._stripe.attach_default_payment_method(stripe_id, method)
        )
        done = await self._leases.finish(
            held, synced=None, values={"default_payment_method_id": attached.payment_method_id}
        )
        return Customer.from_row(done)

    async def _repair(self, org: str, customer_id: str, field: tuple[str, ...]) -> Customer:
        """Write the row's mirrored values (and default card) to Stripe again."""
        held = await self._leases.hold(org, customer_id, field)
        if held.row["stripe_synced"] or not held.row["stripe_customer_id"]:
            await self._leases.end(held)
            return Customer.from_row(held.row)
        customer = Customer.from_row(held.row)
        stripe_id = held.row["stripe_customer_id"]
        await self._leases.call(
            held,
            lambda: self._stripe.update_customer(
                stripe_id,
                email=customer.email,
                name=customer.name,
                address=customer.address.for_stripe() if customer.address else None,
                default_payment_method=customer.default_payment_method_id,
            ),
        )
        return Customer.from_row(await self._leases.finish(held, synced=True))

    async def _create_at_stripe(self, row: Row) -> str:
        """Create the Stripe Customer of ``row``: the key and the values are the row's own, so
        every attempt for one customer sends the same request (the mirrored fields cannot
        change before it has a Stripe id: ``update`` ensures one first)."""
        customer = Customer.from_row(row)
        org, customer_id = customer.organization_id, customer.id
        return await self._stripe.create_customer(
            idempotency_key=f"customer:{org}:{customer_id}",
            email=customer.email,
            name=customer.name,
            address=customer.address.for_stripe() if customer.address else None,
            metadata={"organization": org, "customer_id": customer_id},
        )
