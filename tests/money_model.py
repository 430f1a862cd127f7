"""An independent, deliberately simple model of one customer's money, for the property test of
the ledger (tests/test_money_properties.py).

The model is fed only what the GraphQL API returns about documents (invoices, credit notes,
payments, refunds), never ledger entries, and keeps its own running account of the customer's
credit balance. ``Books.observe`` takes a fresh ``Snapshot`` after every step, folds the new
documents and state changes into the model, then compares the model with the ledger's balances
(read separately, through the ``ledger`` query). Each rule it checks is one function below, so
a failure names the rule and the amounts.

What the model tracks, per customer, in the example's one currency (minor units):

* ``credit``: the credit balance by its own account: + the credit of every finalized invoice
  with a negative total (``creditToBalance``), + what each credit note put on the balance
  (``creditedToBalance``), + credit notes' refunds that will never be paid (rejected, failed,
  canceled: the note is honoured as balance), - the balance every finalized invoice spent
  (``balanceApplied``), + that balance again when such an invoice is voided.
* ``granted``: credit the organization gave deliberately, with nothing paid for it: the credit
  of the one-off invoices with a negative total that the test itself issued.
* per invoice, what credit notes gave back of the balance it spent, and per payment, the card
  money credit notes put on the balance (the documented order: "first the credit balance the
  invoice spent, then card money"), so each payment's ``amountRefundable`` can be predicted.
* the credit notes' own refunds (attributed when the note is made), to predict
  ``REFUNDS_PAYABLE`` and the credit coming back when such a refund is rejected.

The rules (``RULES``) it asserts after every step:

1. cash: ledger ``CASH`` == Σ captured of succeeded payments - Σ succeeded refunds.
2. credit balance: ``creditBalances`` == -``CUSTOMER_CREDIT`` and ≥ 0.
3. credit model: the model's own ``credit`` == the credit balance.
4. nothing minted: R + C <= K + G, where R = refunds paid out (succeeded), C = the credit
   balance held now, K = cash captured (succeeded payments), G = credit granted.
   Everything the customer can still take out of the organization (cash returned, credit it
   holds) never exceeds everything that came in for it (cash it paid, credit staff gave it
   without payment). K + G - R - C is what the customer consumed: invoices paid (by card or by
   balance) and kept, net of everything given back for them (credit notes, refunds, credits
   for unused time); it can never be negative, a negative value is money minted.
   Defined with care:
   - G counts only the credit of the one-off invoices with a negative total the test issued
     (credit-only or mixed ones, a balance top-up). A GOODWILL credit note on an unpaid invoice
     gives the customer neither money nor credit: it lowers what is owed (the receivable) and
     gives back at most the balance the invoice spent, which C then counts again; so it is not
     in G; nor does a written-off invoice (used, never paid) move any of the four.
   - Balance already spent is deliberately not added to the left side: it bought invoices, and
     what those invoices are worth can come back as credit (a credit note, a credit for unused
     time), which C then counts; adding what was spent too would count the same money twice.
   - Refunds awaiting approval or in flight are not in R (nothing left yet); rule 5 and
     ``billing verify`` hold them within what each payment captured.
5. per payment: Σ succeeded refunds == ``amountRefunded`` ≤ ``amountCaptured``;
   ``amountRefundable`` == captured - refunds succeeded, in flight or awaiting approval - card
   money its invoice's credit notes put on the balance; and ≥ 0. For the payment of a
   subscription's invoice, at most that and at most what the subscription has left to give
   back (paid for it less given back, read from its documents: the credit for unused time came
   out of the same payments); the real room also nets credits pending for the next invoice,
   which the API does not show, so here it is a bound, not an equality.
6. what is owed: ledger ``RECEIVABLE`` == Σ ``amountRemaining`` of open invoices not being
   paid; ``BAD_DEBT`` == Σ ``amountRemaining`` of uncollectible invoices.
7. refunds payable: ledger ``REFUNDS_PAYABLE`` == -Σ credit-note refunds still awaiting
   approval or in flight.
8. invoice arithmetic: ``amountDue`` == max(total, 0) - balance applied - credit applied,
   ``amountRemaining`` == due - paid (0 once paid), ``amountCredited`` == Σ its notes,
   ``creditApplied`` == Σ their ``appliedToInvoice``, a note's total == applied + to balance +
   refunded, ``amountPaid`` == its succeeded payment's capture; finalized amounts never change.
9. discounts: ledger ``DISCOUNTS`` == Σ ``discountTotal`` of finalized invoices not voided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["RULES", "Books", "NoteSeen", "Snapshot", "amount", "snapshot_of"]

RULES = {
    1: "cash: CASH == captured - succeeded refunds",
    2: "credit balance: creditBalances == -CUSTOMER_CREDIT >= 0",
    3: "credit model: the model's own account of the credit balance",
    4: "nothing minted: refunds + credit held <= captured + credit granted",
    5: "per payment: refunded <= captured, refundable as documented and >= 0",
    6: "what is owed: RECEIVABLE == open invoices' amountRemaining, BAD_DEBT == uncollectible's",
    7: "refunds payable: REFUNDS_PAYABLE == -credit-note refunds in flight",
    8: "invoice arithmetic and immutable finalized amounts",
    9: "discounts: DISCOUNTS == discountTotal of finalized invoices not voided",
}

_LIVE_REFUNDS = {"PENDING_APPROVAL", "PENDING", "SUCCEEDED"}
_UNPAID_REFUNDS = {"REJECTED", "FAILED", "CANCELED"}
_IN_FLIGHT = {"PENDING_APPROVAL", "PENDING"}


def amount(money: dict[str, Any] | None) -> int:
    """The minor units of a ``Money`` (0 for null)."""
    return int(money["amount"]) if money else 0


@dataclass(frozen=True)
class Snapshot:
    """What the API says about one customer, read in one request after a step."""

    customer_id: str
    currency: str
    credit_balances: dict[str, int]
    ledger: dict[str, int]
    entry_count: int
    payments: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    subscriptions: list[dict[str, Any]]

    def books_position(self) -> tuple[tuple[str, int], ...]:
        """The ledger's balances and the credit balance: what a refused step must not move."""
        return (
            *sorted(self.ledger.items()),
            ("entries", self.entry_count),
            *sorted(("credit " + c, a) for c, a in self.credit_balances.items()),
        )


def snapshot_of(customer_id: str, currency: str, data: dict[str, Any]) -> Snapshot:
    """A ``Snapshot`` from the response of tests.test_money_properties.SNAPSHOT."""
    customer = data["customer"]
    ledger = data["ledger"]
    for name in ("payments", "invoices"):
        assert not data[name]["pageInfo"]["hasNextPage"], f"more than 100 {name}: raise the page"
    return Snapshot(
        customer_id=customer_id,
        currency=currency,
        credit_balances={m["currency"]: amount(m) for m in customer["creditBalances"]},
        ledger={b["account"]: amount(b["balance"]) for b in ledger["balances"]},
        entry_count=ledger["entries"]["totalCount"],
        payments=[e["node"] for e in data["payments"]["edges"]],
        invoices=[e["node"] for e in data["invoices"]["edges"]],
        subscriptions=customer["subscriptions"],
    )


@dataclass
class InvoiceSeen:
    id: str
    status: str
    total: int
    balance_applied: int
    credit_to_balance: int
    fixed: tuple[int, ...]  # every amount set at finalization, which must never change
    balance_returned: int = 0  # what its credit notes gave back of the balance it spent


@dataclass(frozen=True)
class NoteSeen:
    id: str
    invoice_id: str
    settlement: str
    total: int
    applied: int
    credited: int
    refunded: int


@dataclass
class Books:
    """The model of one customer's money (see the module docstring)."""

    customer_id: str
    currency: str
    credit: int = 0
    granted: int = 0
    staff_invoices: set[str] = field(default_factory=set)
    invoices: dict[str, InvoiceSeen] = field(default_factory=dict)
    notes: dict[str, NoteSeen] = field(default_factory=dict)
    card_credited: dict[str, int] = field(default_factory=dict)  # payment id -> amount
    note_refunds: dict[str, int] = field(default_factory=dict)  # refund id -> amount
    honoured: set[str] = field(default_factory=set)  # note refunds turned into credit
    ledger_checked: int = 0

    # -- what the steps tell the model ---------------------------------------------------------

    def issued_by_staff(self, invoice_id: str) -> None:
        """A one-off invoice the test made: its credit, if any, is deliberately granted."""
        self.staff_invoices.add(invoice_id)

    def note_refund(self, refund_id: str, value: int) -> None:
        """The refund a ``REFUND`` credit note made."""
        self.note_refunds[refund_id] = value

    # -- folding a snapshot in -----------------------------------------------------------------

    def observe(self, snap: Snapshot) -> None:
        """Fold the snapshot's new documents and state changes into the model, then check
        every rule against it; an AssertionError names the rule broken."""
        assert snap.customer_id == self.customer_id
        paid_by = self._payments_of_invoices(snap)
        for invoice in snap.invoices:
            self._fold_invoice(invoice, paid_by)
        for payment in snap.payments:
            for refund in payment["refunds"]:
                if (
                    refund["id"] in self.note_refunds
                    and refund["status"] in _UNPAID_REFUNDS
                    and refund["id"] not in self.honoured
                ):
                    self.honoured.add(refund["id"])
                    self.credit += self.note_refunds[refund["id"]]
        self.check(snap)

    @staticmethod
    def _payments_of_invoices(snap: Snapshot) -> dict[str, dict[str, Any]]:
        found = {}
        for invoice in snap.invoices:
            payment = invoice["payment"]
            if payment is not None and payment["status"] == "SUCCEEDED":
                found[invoice["id"]] = payment
        return found

    def _fold_invoice(self, invoice: dict[str, Any], paid_by: dict[str, dict[str, Any]]) -> None:
        if invoice["status"] == "DRAFT":
            return
        seen = self.invoices.get(invoice["id"])
        total = amount(invoice["total"])
        applied = amount(invoice["balanceApplied"])
        to_balance = amount(invoice["creditToBalance"])
        fixed = tuple(
            amount(invoice[name])
            for name in ("subtotal", "discountTotal", "total", "balanceApplied", "creditToBalance")
        )
        if seen is None:
            seen = InvoiceSeen(invoice["id"], invoice["status"], total, applied, to_balance, fixed)
            self.invoices[invoice["id"]] = seen
            self.credit += to_balance - applied
            if invoice["id"] in self.staff_invoices:
                self.granted += to_balance
            if invoice["status"] == "VOID":  # finalized and voided between two looks
                self.credit += applied - to_balance
        else:
            assert seen.fixed == fixed, (
                f"rule 8 ({RULES[8]}): finalized amounts of {invoice['id']} changed: "
                f"{seen.fixed} -> {fixed} (subtotal, discount, total, balance applied, "
                "credit to balance)"
            )
            if invoice["status"] == "VOID" and seen.status != "VOID":
                self.credit += applied - to_balance
        assert not (seen.status == "VOID" and invoice["status"] != "VOID"), (
            f"rule 8: {invoice['id']} left VOID"
        )
        seen.status = invoice["status"]
        for note in invoice["creditNotes"]:
            if note["id"] in self.notes:
                continue
            self._fold_note(seen, note, paid_by.get(invoice["id"]))

    def _fold_note(
        self, invoice: InvoiceSeen, note: dict[str, Any], payment: dict[str, Any] | None
    ) -> None:
        made = NoteSeen(
            id=note["id"],
            invoice_id=invoice.id,
            settlement=note["settlement"],
            total=amount(note["total"]),
            applied=amount(note["appliedToInvoice"]),
            credited=amount(note["creditedToBalance"]),
            refunded=amount(note["refunded"]),
        )
        assert made.total == made.applied + made.credited + made.refunded, (
            f"rule 8: credit note parts do not add up: {note}"
        )
        assert min(made.total, made.applied, made.credited, made.refunded) >= 0, note
        self.notes[made.id] = made
        self.credit += made.credited
        # Documented order of what goes to the balance: the balance the invoice spent first,
        # then card money (which its payment can then no longer refund).
        balance_part = min(made.credited, invoice.balance_applied - invoice.balance_returned)
        invoice.balance_returned += balance_part
        card_part = made.credited - balance_part
        if card_part:
            assert payment is not None, (
                f"rule 4: credit note {made.id} put {card_part} of card money on the balance "
                f"but invoice {invoice.id} was paid by no card"
            )
            self.card_credited[payment["id"]] = self.card_credited.get(payment["id"], 0) + card_part
        if made.refunded:
            assert made.settlement == "REFUND", note

    # -- the rules ------------------------------------------------------------------------------

    def check(self, snap: Snapshot) -> None:
        """Every rule, in order; each is its own method so a failure names it."""
        self.rule_cash(snap)
        self.rule_credit_balance(snap)
        self.rule_credit_model(snap)
        self.rule_nothing_minted(snap)
        rooms = self._subscription_rooms(snap)
        for payment in snap.payments:
            self.rule_payment(payment, rooms)
        self.rule_receivable(snap)
        self.rule_refunds_payable(snap)
        for invoice in snap.invoices:
            self.rule_invoice(invoice)
        self.rule_discounts(snap)

    @staticmethod
    def _cash(snap: Snapshot) -> tuple[int, int]:
        """What the customer's payments captured, and what their refunds returned."""
        captured = sum(
            amount(p["amountCaptured"]) for p in snap.payments if p["status"] == "SUCCEEDED"
        )
        refunded = sum(
            amount(r["amount"])
            for p in snap.payments
            for r in p["refunds"]
            if r["status"] == "SUCCEEDED"
        )
        return captured, refunded

    def _subscription_rooms(self, snap: Snapshot) -> dict[str, tuple[str, int]]:
        """Per payment of a subscription's invoice: the subscription and its room read from
        the documents (paid for it: card captured and balance spent by its invoices not void;
        given back: credit its invoices and their credit notes put on the balance, credit-note
        refunds honoured as balance, refunds succeeded, in flight or awaiting approval). Credit
        still pending for the next invoice is not visible through the API and only
        lowers the real room, so the model's room is an upper bound of it."""
        per_payment: dict[str, str] = {}
        room: dict[str, int] = {}
        for invoice in snap.invoices:
            sub = invoice["subscriptionId"]
            if sub is None or invoice["status"] in ("DRAFT", "VOID"):
                continue
            paid = invoice["payment"]
            captured = 0
            if paid is not None and paid["status"] == "SUCCEEDED":
                per_payment[paid["id"]] = sub
                captured = amount(paid["amountCaptured"])
            given = amount(invoice["creditToBalance"]) + sum(
                amount(n["creditedToBalance"]) for n in invoice["creditNotes"]
            )
            room[sub] = room.get(sub, 0) + captured + amount(invoice["balanceApplied"]) - given
        for payment_id, sub in per_payment.items():
            for refund in next(p for p in snap.payments if p["id"] == payment_id)["refunds"]:
                if refund["status"] in _LIVE_REFUNDS:
                    room[sub] -= amount(refund["amount"])
                elif refund["status"] in _UNPAID_REFUNDS and refund["id"] in self.note_refunds:
                    # a credit note's refund that will never be paid went to the balance
                    room[sub] -= amount(refund["amount"])
        return {p: (sub, room[sub]) for p, sub in per_payment.items()}

    def _held(self, snap: Snapshot) -> int:
        others = {c: a for c, a in snap.credit_balances.items() if c != self.currency and a}
        assert not others, f"rule 2 ({RULES[2]}): credit in another currency: {others}"
        return snap.credit_balances.get(self.currency, 0)

    def rule_cash(self, snap: Snapshot) -> None:
        captured, refunded = self._cash(snap)
        cash = snap.ledger.get("CASH", 0)
        assert cash == captured - refunded, (
            f"rule 1 ({RULES[1]}): ledger {cash}, payments {captured} - refunds {refunded}"
        )

    def rule_credit_balance(self, snap: Snapshot) -> None:
        held = self._held(snap)
        assert held >= 0, f"rule 2 ({RULES[2]}): creditBalances {held}"
        assert held == -snap.ledger.get("CUSTOMER_CREDIT", 0), (
            f"rule 2 ({RULES[2]}): creditBalances {held}, "
            f"CUSTOMER_CREDIT {snap.ledger.get('CUSTOMER_CREDIT', 0)}"
        )

    def rule_credit_model(self, snap: Snapshot) -> None:
        held = self._held(snap)
        assert self.credit == held, (
            f"rule 3 ({RULES[3]}): model {self.credit}, credit balance {held}"
        )

    def rule_nothing_minted(self, snap: Snapshot) -> None:
        captured, refunded = self._cash(snap)
        held = self._held(snap)
        assert refunded + held <= captured + self.granted, (
            f"rule 4 ({RULES[4]}): refunds {refunded} + credit held {held} = "
            f"{refunded + held} > captured {captured} + granted {self.granted} = "
            f"{captured + self.granted}: {refunded + held - captured - self.granted} minted"
        )

    def rule_receivable(self, snap: Snapshot) -> None:
        receivable = sum(
            amount(i["amountRemaining"])
            for i in snap.invoices
            if i["status"] == "OPEN" and not i["paymentInProgress"]
        )
        assert snap.ledger.get("RECEIVABLE", 0) == receivable, (
            f"rule 6 ({RULES[6]}): ledger {snap.ledger.get('RECEIVABLE', 0)}, "
            f"open invoices {receivable}"
        )
        written_off = sum(
            amount(i["amountRemaining"]) for i in snap.invoices if i["status"] == "UNCOLLECTIBLE"
        )
        assert snap.ledger.get("BAD_DEBT", 0) == written_off, (
            f"rule 6 ({RULES[6]}): ledger BAD_DEBT {snap.ledger.get('BAD_DEBT', 0)}, "
            f"uncollectible invoices {written_off}"
        )

    def rule_discounts(self, snap: Snapshot) -> None:
        given = sum(
            amount(i["discountTotal"])
            for i in snap.invoices
            if i["status"] not in ("DRAFT", "VOID")
        )
        assert snap.ledger.get("DISCOUNTS", 0) == given, (
            f"rule 9 ({RULES[9]}): ledger {snap.ledger.get('DISCOUNTS', 0)}, invoices {given}"
        )

    def rule_refunds_payable(self, snap: Snapshot) -> None:
        in_flight = sum(
            amount(r["amount"])
            for p in snap.payments
            for r in p["refunds"]
            if r["id"] in self.note_refunds and r["status"] in _IN_FLIGHT
        )
        assert snap.ledger.get("REFUNDS_PAYABLE", 0) == -in_flight, (
            f"rule 7 ({RULES[7]}): ledger {snap.ledger.get('REFUNDS_PAYABLE', 0)}, "
            f"credit-note refunds in flight {in_flight}"
        )

    def rule_payment(self, payment: dict[str, Any], rooms: dict[str, tuple[str, int]]) -> None:
        captured = amount(payment["amountCaptured"])
        refunds = payment["refunds"]
        succeeded = sum(amount(r["amount"]) for r in refunds if r["status"] == "SUCCEEDED")
        live = sum(amount(r["amount"]) for r in refunds if r["status"] in _LIVE_REFUNDS)
        refunded = amount(payment["amountRefunded"])
        assert refunded == succeeded <= captured, (
            f"rule 5 ({RULES[5]}): {payment['id']} refunded {refunded}, "
            f"succeeded refunds {succeeded}, captured {captured}"
        )
        if payment["status"] != "SUCCEEDED":
            assert (captured, live) == (0, 0), f"rule 5: unsucceeded payment moved money {payment}"
            return
        expected = captured - live - self.card_credited.get(payment["id"], 0)
        refundable = amount(payment["amountRefundable"])
        assert refundable >= 0, f"rule 5 ({RULES[5]}): {payment['id']} refundable {refundable}"
        if payment["id"] not in rooms:
            assert refundable == expected, (
                f"rule 5 ({RULES[5]}): {payment['id']} refundable {refundable}, expected "
                f"captured {captured} - live refunds {live} - card credited "
                f"{self.card_credited.get(payment['id'], 0)} = {expected}"
            )
            return
        sub, room = rooms[payment["id"]]
        bound = max(min(expected, room), 0)
        assert refundable <= bound, (
            f"rule 5 ({RULES[5]}): {payment['id']} refundable {refundable}, more than "
            f"min(captured {captured} - live refunds {live} - card credited "
            f"{self.card_credited.get(payment['id'], 0)} = {expected}, what {sub} has left to "
            f"give back {room})"
        )

    def rule_invoice(self, invoice: dict[str, Any]) -> None:
        if invoice["status"] == "DRAFT":
            return
        total = amount(invoice["total"])
        due = amount(invoice["amountDue"])
        paid = amount(invoice["amountPaid"])
        notes = invoice["creditNotes"]
        where = f"rule 8 ({RULES[8]}): invoice {invoice['id']} {invoice['status']}"
        assert due == max(total, 0) - amount(invoice["balanceApplied"]) - amount(
            invoice["creditApplied"]
        ), f"{where}: amountDue {invoice}"
        assert amount(invoice["amountRemaining"]) == due - paid, f"{where}: remaining {invoice}"
        if invoice["status"] == "PAID":
            assert due == paid, f"{where}: paid but {due - paid} remains"
        assert amount(invoice["amountCredited"]) == sum(amount(n["total"]) for n in notes), where
        assert amount(invoice["creditApplied"]) == sum(
            amount(n["appliedToInvoice"]) for n in notes
        ), where
        payment = invoice["payment"]
        if payment is not None and payment["status"] == "SUCCEEDED":
            assert paid == amount(payment["amountCaptured"]), f"{where}: paid {paid} vs {payment}"
        elif invoice["status"] != "PAID":
            assert paid == 0, f"{where}: amountPaid {paid} without a succeeded payment"
