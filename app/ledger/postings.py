"""The double-entry ledger: every money movement, as balanced entries, in the transaction of the
change that moves it (docs/ledger.md).

The accounting rules live here, one method per movement; the services call them in their own
database transaction. The figures that limits are checked against — what an invoice may still be
credited, what a payment may still refund, the customer's credit balance — are read back from
the entries, so they cannot drift from what was posted. Entries are signed: a debit is positive,
a credit negative; every transaction sums to zero (the database checks it at commit).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.core.ids import monotonic_ids, new_id
from db.connection import Database, Row
from db.repositories.ledger.postings import LedgerRepository

__all__ = [
    "Account",
    "Entry",
    "EntryKind",
    "InvoicePosition",
    "Ledger",
    "LedgerEntry",
    "PaymentPosition",
    "Refs",
    "RefundLimits",
]


class Account(enum.Enum):
    RECEIVABLE = "receivable"
    CASH = "cash"
    CUSTOMER_CREDIT = "customer_credit"
    REFUNDS_PAYABLE = "refunds_payable"
    REVENUE = "revenue"
    DISCOUNTS = "discounts"
    TAX = "tax"
    BAD_DEBT = "bad_debt"
    OPENING = "opening"


class EntryKind(enum.Enum):
    INVOICE_FINALIZED = "invoice_finalized"
    BALANCE_APPLIED = "balance_applied"
    CREDIT_INVOICE = "credit_invoice"
    INVOICE_VOIDED = "invoice_voided"
    INVOICE_UNCOLLECTIBLE = "invoice_uncollectible"
    INVOICE_COLLECTED = "invoice_collected"
    PAYMENT = "payment"
    REFUND = "refund"
    CREDIT_NOTE = "credit_note"
    CREDIT_NOTE_REFUND_FAILED = "credit_note_refund_failed"
    OPENING_BALANCE = "opening_balance"


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of a transaction: ``amount`` > 0 debits ``account``, < 0 credits it.
    ``payment_id`` tags the entry with the payment whose money it concerns."""

    account: Account
    amount: int
    payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Refs:
    """Whose money a transaction moves, and the documents it belongs to (on every entry)."""

    customer_id: str
    currency: str
    invoice_id: str | None = None
    payment_id: str | None = None
    refund_id: str | None = None
    credit_note_id: str | None = None
    subscription_id: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: str
    transaction_id: str
    customer_id: str
    currency: str
    account: Account
    amount: int
    kind: EntryKind
    invoice_id: str | None
    payment_id: str | None
    refund_id: str | None
    credit_note_id: str | None
    subscription_id: str | None
    occurred_at: datetime

    @classmethod
    def from_row(cls, row: Row) -> LedgerEntry:
        return cls(
            id=row["id"],
            transaction_id=row["transaction_id"],
            customer_id=row["customer_id"],
            currency=row["currency"],
            account=Account(row["account"]),
            amount=int(row["amount"]),
            kind=EntryKind(row["kind"]),
            invoice_id=row["invoice_id"],
            payment_id=row["payment_id"],
            refund_id=row["refund_id"],
            credit_note_id=row["credit_note_id"],
            subscription_id=row["subscription_id"],
            occurred_at=row["occurred_at"],
        )


@dataclass(frozen=True, slots=True)
class InvoicePosition:
    """An invoice's money, from its entries (amounts ≥ 0 except ``receivable``)."""

    receivable: int  # still owed
    paid_by_card: int  # payments received for it
    paid_by_balance: int  # credit balance spent on it
    credited: int  # credit notes issued against it
    credited_tax: int  # the tax those credit notes gave back
    refunded_directly: int  # refunds of its payment that no credit note made
    balance_returned: int  # credit notes' part that gave back the balance spent on it
    card_credited: int  # credit notes' part credited to the balance out of card money
    written_off: int  # marked uncollectible and not collected since


@dataclass(frozen=True, slots=True)
class PaymentPosition:
    collected: int  # received at Stripe
    refunded: int  # refunded at Stripe
    credited_to_balance: int  # given to the customer's credit balance by credit notes


@dataclass(frozen=True, slots=True)
class RefundLimits:
    """What limits a payment's refunds besides its own refunds (see ``refundable``)."""

    credited: int  # card money credit notes gave to the credit balance
    room: int | None  # what its subscription has left to give back; None: no subscription


class Ledger:
    def __init__(self, db: Database) -> None:
        self._entries = LedgerRepository(db)

    async def post(
        self,
        org: str,
        refs: Refs,
        kind: EntryKind,
        entries: Sequence[Entry],
        *,
        occurred_at: datetime | None = None,
    ) -> str | None:
        """Append one balanced transaction (zero amounts dropped); returns its id, or None when
        nothing moves. Must run inside the caller's database transaction."""
        moving = [entry for entry in entries if entry.amount != 0]
        if not moving:
            return None
        if sum(entry.amount for entry in moving) != 0:
            raise ValueError(f"unbalanced ledger transaction {kind.value}: {moving}")
        transaction_id = new_id("lt")
        ids = monotonic_ids("le", len(moving))  # entries list in the order they were posted
        await self._entries.insert(
            org,
            transaction_id=transaction_id,
            customer_id=refs.customer_id,
            currency=refs.currency,
            kind=kind.value,
            entries=[
                (entry_id, e.account.value, e.amount, e.payment_id or refs.payment_id)
                for entry_id, e in zip(ids, moving, strict=True)
            ],
            invoice_id=refs.invoice_id,
            refund_id=refs.refund_id,
            credit_note_id=refs.credit_note_id,
            subscription_id=refs.subscription_id,
            occurred_at=occurred_at,
        )
        credit = sum(e.amount for e in moving if e.account is Account.CUSTOMER_CREDIT)
        if credit:
            # customer_credit is credit-normal: a credit (negative entry) raises the balance.
            await self._entries.add_credit(org, refs.customer_id, refs.currency, -credit)
        return transaction_id

    # -- positions ---------------------------------------------------------------------------

    async def invoice_position(self, org: str, invoice_id: str) -> InvoicePosition:
        sums: dict[tuple[str, str, bool], int] = {
            (row["account"], row["kind"], bool(row["tagged"])): int(row["amount"])
            for row in await self._entries.by_invoice(org, invoice_id)
        }

        def total(
            account: Account, kind: EntryKind | None = None, tagged: bool | None = None
        ) -> int:
            return sum(
                amount
                for (a, k, t), amount in sums.items()
                if a == account.value
                and (kind is None or k == kind.value)
                and (tagged is None or t is tagged)
            )

        note = EntryKind.CREDIT_NOTE
        return InvoicePosition(
            receivable=total(Account.RECEIVABLE),
            paid_by_card=total(Account.CASH, EntryKind.PAYMENT),
            paid_by_balance=total(Account.CUSTOMER_CREDIT, EntryKind.BALANCE_APPLIED),
            credited=total(Account.REVENUE, note) + total(Account.TAX, note),
            credited_tax=total(Account.TAX, note),
            refunded_directly=total(Account.REVENUE, EntryKind.REFUND),
            balance_returned=-total(Account.CUSTOMER_CREDIT, note, tagged=False),
            card_credited=-total(Account.CUSTOMER_CREDIT, note, tagged=True),
            written_off=total(Account.BAD_DEBT),
        )

    async def payment_position(self, org: str, payment_id: str) -> PaymentPosition:
        sums = {
            (row["account"], row["kind"]): int(row["amount"])
            for row in await self._entries.by_payment(org, payment_id)
        }
        cash, credit = Account.CASH.value, Account.CUSTOMER_CREDIT.value
        return PaymentPosition(
            collected=sums.get((cash, EntryKind.PAYMENT.value), 0),
            refunded=-sums.get((cash, EntryKind.REFUND.value), 0),
            credited_to_balance=-sums.get((credit, EntryKind.CREDIT_NOTE.value), 0),
        )

    async def subscription_room(self, org: str, subscription_id: str) -> int:
        """What may still go back to the customer out of a subscription's invoices, by any
        road (credit notes, refunds, credit for unused time): what the customer paid for them
        (card money received and credit balance spent) less what was already given back (credit
        to the balance, refunds succeeded, in flight or awaiting approval, credits pending for
        the next invoice). Each road checks its own document's limit and this one, so a
        payment given back once as credit for unused time is not refunded or credited again.
        May be negative; read it under the lock of the document being given back."""
        return await self._entries.subscription_room(org, subscription_id)

    async def refund_limits(self, org: str, payment_ids: Sequence[str]) -> list[RefundLimits]:
        """For each payment (aligned with ``payment_ids``, one statement): the card money
        credit notes gave to the credit balance, and the room of the subscription whose invoice
        it paid (None: not a subscription's payment)."""
        found = await self._entries.refund_limits(org, payment_ids)
        limits = []
        for payment_id in payment_ids:
            row = found.get(payment_id)
            if row is None:
                limits.append(RefundLimits(0, None))
            else:
                room = row["room"]
                limits.append(
                    RefundLimits(int(row["credited"]), None if room is None else int(room))
                )
        return limits

    # -- movements ---------------------------------------------------------------------------

    async def invoice_finalized(
        self,
        org: str,
        refs: Refs,
        *,
        total: int,
        discount: int,
        tax: int,
        balance_applied: int,
        credit_to_balance: int,
    ) -> None:
        """The invoice becomes a debt: receivable for its total, revenue gross of its discount
        and net of tax; then the credit balance it spends, or the net credit it gives."""
        R, C = Account.RECEIVABLE, Account.CUSTOMER_CREDIT
        await self.post(
            org,
            refs,
            EntryKind.INVOICE_FINALIZED,
            [
                Entry(R, total),
                Entry(Account.DISCOUNTS, discount),
                Entry(Account.REVENUE, -(total - tax + discount)),
                Entry(Account.TAX, -tax),
            ],
        )
        balance = [Entry(C, balance_applied), Entry(R, -balance_applied)]
        await self.post(org, refs, EntryKind.BALANCE_APPLIED, balance)
        credit = [Entry(R, credit_to_balance), Entry(C, -credit_to_balance)]
        await self.post(org, refs, EntryKind.CREDIT_INVOICE, credit)

    async def payment_succeeded(self, org: str, refs: Refs, amount: int) -> None:
        """Money received: it settles the invoice it pays (written-off debt is first taken back
        on the books), or is revenue of its own (a payment without an invoice)."""
        cash = Entry(Account.CASH, amount)
        if refs.invoice_id is None:
            await self.post(org, refs, EntryKind.PAYMENT, [cash, Entry(Account.REVENUE, -amount)])
            return
        written_off = (await self.invoice_position(org, refs.invoice_id)).written_off
        collected = [Entry(Account.RECEIVABLE, written_off), Entry(Account.BAD_DEBT, -written_off)]
        await self.post(org, refs, EntryKind.INVOICE_COLLECTED, collected)
        await self.post(org, refs, EntryKind.PAYMENT, [cash, Entry(Account.RECEIVABLE, -amount)])

    async def refund_succeeded(self, org: str, refs: Refs, amount: int) -> None:
        """Money returned: it pays out a credit note's refund, or reverses revenue. A negative
        ``amount`` takes back a refund that Stripe reversed."""
        source = Account.REFUNDS_PAYABLE if refs.credit_note_id else Account.REVENUE
        entries = [Entry(source, amount), Entry(Account.CASH, -amount)]
        await self.post(org, refs, EntryKind.REFUND, entries)

    async def credit_note_refund_failed(self, org: str, refs: Refs, amount: int) -> None:
        """A credit note's refund failed or was rejected: what it owed the customer goes to the
        customer's credit balance instead, so the credit note is still honoured."""
        entries = [Entry(Account.REFUNDS_PAYABLE, amount), Entry(Account.CUSTOMER_CREDIT, -amount)]
        await self.post(org, refs, EntryKind.CREDIT_NOTE_REFUND_FAILED, entries)

    async def credit_note_issued(
        self,
        org: str,
        refs: Refs,
        *,
        total: int,
        tax: int,
        applied_to_invoice: int,
        balance_returned: int,
        card_credited: int,
        refund: int,
        payment_id: str | None,
    ) -> None:
        """Revenue and tax given back; the credit settles the invoice's debt, returns to the
        credit balance (``balance_returned`` the balance the invoice spent, ``card_credited``
        card money, tagged with its payment), or waits for a refund."""
        credit = Account.CUSTOMER_CREDIT
        await self.post(
            org,
            refs,
            EntryKind.CREDIT_NOTE,
            [
                Entry(Account.REVENUE, total - tax),
                Entry(Account.TAX, tax),
                Entry(Account.RECEIVABLE, -applied_to_invoice),
                Entry(credit, -balance_returned),
                Entry(credit, -card_credited, payment_id=payment_id),
                Entry(Account.REFUNDS_PAYABLE, -refund, payment_id=payment_id),
            ],
        )

    async def invoice_voided(self, org: str, invoice_id: str) -> None:
        """Undo everything the invoice moved (it has no payment: only open and uncollectible
        invoices are voided): its debt, revenue, discount, tax, the credit balance it spent
        (given back) and any write-off."""
        rows = await self._entries.invoice_entries(org, invoice_id)
        grouped: dict[tuple[str, str], list[Row]] = {}
        for row in rows:
            grouped.setdefault((row["customer_id"], row["currency"]), []).append(row)
        for (customer_id, currency), group in grouped.items():
            refs = Refs(
                customer_id,
                currency,
                invoice_id=invoice_id,
                subscription_id=group[0]["subscription_id"],
            )
            reversal = [
                Entry(Account(row["account"]), -int(row["amount"]), row["payment_id"])
                for row in group
            ]
            await self.post(org, refs, EntryKind.INVOICE_VOIDED, reversal)

    async def invoice_uncollectible(self, org: str, refs: Refs) -> None:
        """Write the invoice's outstanding debt off as bad debt."""
        assert refs.invoice_id is not None
        outstanding = (await self.invoice_position(org, refs.invoice_id)).receivable
        entries = [Entry(Account.BAD_DEBT, outstanding), Entry(Account.RECEIVABLE, -outstanding)]
        await self.post(org, refs, EntryKind.INVOICE_UNCOLLECTIBLE, entries)

    # -- reading -----------------------------------------------------------------------------

    async def entries_by_ids(self, org: str, ids: Sequence[str]) -> list[LedgerEntry | None]:
        found = await self._entries.by_ids(org, ids)
        return [LedgerEntry.from_row(found[i]) if i in found else None for i in ids]

    async def entries(
        self,
        org: str,
        customer_id: str,
        currency: str,
        *,
        accounts: Sequence[Account] = tuple(Account),
        since: datetime | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        newest: bool = False,
    ) -> tuple[list[LedgerEntry], bool]:
        """A page of the customer's entries in one currency, oldest first (or newest first),
        and whether more follow (``after``: the last entry id of the previous page)."""
        rows = await self._entries.page(
            org,
            customer_id,
            currency,
            accounts=[a.value for a in accounts],
            since=since,
            until=until,
            after=after,
            limit=limit + 1,
            newest=newest,
        )
        return [LedgerEntry.from_row(row) for row in rows[:limit]], len(rows) > limit

    async def count(
        self,
        org: str,
        customer_id: str,
        currency: str,
        *,
        accounts: Sequence[Account] = tuple(Account),
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        return await self._entries.count(
            org,
            customer_id,
            currency,
            accounts=[a.value for a in accounts],
            since=since,
            until=until,
        )

    async def balances(
        self, org: str, customer_id: str, currency: str, *, until: datetime | None = None
    ) -> dict[Account, int]:
        """Each account's balance (debits minus credits) over the entries before ``until``."""
        rows = await self._entries.totals(org, customer_id, currency, until=until)
        return {Account(row["account"]): int(row["amount"]) for row in rows}
