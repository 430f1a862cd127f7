"""GraphQL documents and comparisons shared by the preview property test
(``tests/test_preview_properties.py``) and the preview benchmark (``bench/previews.py``)."""

from __future__ import annotations

from typing import Any

ERRORS = "errors { field code message }"

# Every field an issued invoice and a preview share (not ids, numbers or payment state).
INVOICE_BODY = """
  customerId subscriptionId currency
  subtotal { amount currency } discountTotal { amount } taxableAmount { amount }
  taxTotal { amount } taxInclusive total { amount } balanceApplied { amount }
  creditToBalance { amount } amountDue { amount }
  tax { name percentage inclusive reverseCharge }
  lines {
    kind description quantity taxable taxRate informational periodStart periodEnd
    unitAmount { amount } amount { amount currency } discountAmount { amount }
  }
"""
STATE = """
  status quantity price { amount currency } currentPeriodStart currentPeriodEnd trialEnd
  cancelAtPeriodEnd endedAt
"""
SUBSCRIPTION = f"id {STATE} plan {{ id }} latestInvoiceId resumesAt customer {{ id }}"
PREVIEW_OUT = f"""{{
  preview {{
    subscription {{ {STATE} planId }}
    invoice {{ {INVOICE_BODY} }}
    creditGranted {{ amount currency }}
    nextInvoice {{ {INVOICE_BODY} }}
  }}
  {ERRORS}
}}"""

UPCOMING = f"query($id: ID!) {{ upcomingInvoice(subscriptionId: $id) {{ {INVOICE_BODY} }} }}"
CHANGE_PREVIEW = (
    "query($input: SubscriptionChangePlanInput!) "
    f"{{ subscriptionChangePreview(input: $input) {PREVIEW_OUT} }}"
)
CREATE_PREVIEW = (
    "query($input: SubscriptionCreateInput!) "
    f"{{ subscriptionCreatePreview(input: $input) {PREVIEW_OUT} }}"
)
CANCEL_PREVIEW = (
    "query($input: SubscriptionCancelInput!) "
    f"{{ subscriptionCancelPreview(input: $input) {PREVIEW_OUT} }}"
)
SUB_PAYLOAD = f"{{ subscription {{ {SUBSCRIPTION} }} {ERRORS} }}"
CREATE = (
    "mutation($input: SubscriptionCreateInput!) "
    f"{{ subscriptionCreate(input: $input) {SUB_PAYLOAD} }}"
)
CHANGE = (
    "mutation($input: SubscriptionChangePlanInput!) "
    f"{{ subscriptionChangePlan(input: $input) {SUB_PAYLOAD} }}"
)
CANCEL = (
    "mutation($input: SubscriptionCancelInput!) "
    f"{{ subscriptionCancel(input: $input) {SUB_PAYLOAD} }}"
)
PAUSE = (
    "mutation($input: SubscriptionPauseInput!) "
    f"{{ subscriptionPause(input: $input) {SUB_PAYLOAD} }}"
)
RESUME = (
    "mutation($input: SubscriptionResumeInput!) "
    f"{{ subscriptionResume(input: $input) {SUB_PAYLOAD} }}"
)
GET = f"query($id: ID!) {{ subscription(id: $id) {{ {SUBSCRIPTION} }} }}"
SUBSCRIPTIONS = f"query($id: ID!) {{ customer(id: $id) {{ subscriptions {{ {SUBSCRIPTION} }} }} }}"
INVOICES = f"""query($id: ID!) {{
  invoices(first: 100, filter: {{customerId: $id}}) {{
    pageInfo {{ hasNextPage }}
    edges {{ node {{ id status {INVOICE_BODY} }} }}
  }}
}}"""
ADVANCE = f"""mutation($input: TestClockAdvanceInput!) {{
  testClockAdvance(input: $input) {{ now steps {ERRORS} }}
}}"""
SETTINGS_UPDATE = f"""mutation($input: OrganizationSettingsUpdateInput!) {{
  organizationSettingsUpdate(input: $input) {{ organization {{ id }} {ERRORS} }}
}}"""
PLAN_CREATE = f"""mutation($input: PlanCreateInput!) {{
  planCreate(input: $input) {{ plan {{ id trialDays price {{ amount }} }} {ERRORS} }}
}}"""
CUSTOMER_CREATE = f"""mutation($input: CustomerCreateInput!) {{
  customerCreate(input: $input) {{ customer {{ id }} {ERRORS} }}
}}"""
SET_CARD = f"""mutation($input: CustomerSetDefaultPaymentMethodInput!) {{
  customerSetDefaultPaymentMethod(input: $input) {{ customer {{ id }} {ERRORS} }}
}}"""
TAX_RATE_CREATE = f"""mutation($input: TaxRateCreateInput!) {{
  taxRateCreate(input: $input) {{ taxRate {{ id }} {ERRORS} }}
}}"""
COUPON_CREATE = f"""mutation($input: CouponCreateInput!) {{
  couponCreate(input: $input) {{ coupon {{ id }} {ERRORS} }}
}}"""
COUPON_APPLY = f"""mutation($input: CouponApplyInput!) {{
  couponApply(input: $input) {{ discount {{ id }} {ERRORS} }}
}}"""
INVOICE_CREATE = f"""mutation($input: InvoiceCreateInput!) {{
  invoiceCreate(input: $input) {{ invoice {{ id }} {ERRORS} }}
}}"""
INVOICE_FINALIZE = f"""mutation($input: InvoiceFinalizeInput!) {{
  invoiceFinalize(input: $input) {{ invoice {{ id status creditToBalance {{ amount }} }} {ERRORS} }}
}}"""
CREDIT_NOTE = f"""mutation($input: CreditNoteCreateInput!) {{
  creditNoteCreate(input: $input) {{ creditNote {{ id creditedToBalance {{ amount }} }} {ERRORS} }}
}}"""
BALANCES = "query($id: ID!) { customer(id: $id) { creditBalances { amount currency } } }"

# What a preview must leave as it found it (read straight from the database).
WRITES = """SELECT (SELECT count(*) FROM invoices WHERE organization_id = :org) AS invoices,
  (SELECT count(*) FROM invoice_lines WHERE organization_id = :org) AS lines,
  (SELECT count(*) FROM idempotency_keys WHERE organization_id = :org) AS keys,
  (SELECT count(*) FROM ledger_entries WHERE organization_id = :org) AS entries,
  (SELECT count(*) FROM discount_redemptions WHERE organization_id = :org) AS redemptions,
  (SELECT coalesce(max(last_number), 0) FROM document_counters
     WHERE organization_id = :org) AS numbers,
  (SELECT string_agg(id || ':' || amount || ':' || coalesce(taken_by, '-'), ',' ORDER BY id)
     FROM subscription_pending_lines WHERE organization_id = :org) AS pending,
  (SELECT string_agg(id || status || plan_id || quantity || current_period_end::text
                     || coalesce(next_action_at::text, '-'), ',' ORDER BY id)
     FROM subscriptions WHERE organization_id = :org) AS subscriptions"""

PENDING = """SELECT id, amount FROM subscription_pending_lines
  WHERE organization_id = :org AND subscription_id = :sub AND taken_by IS NULL"""


def amount(money: dict[str, Any] | None) -> int:
    return 0 if money is None else int(money["amount"])


def shape(invoice: dict[str, Any] | None, *, with_subscription: bool = True) -> Any:
    """What a preview and the invoice issued must have alike: every amount and every line
    (kind, description, quantity, amounts, period, tax), in order. A created subscription's
    preview has an id of its own (rolled back): ``with_subscription=False`` leaves it out."""
    if invoice is None:
        return None
    skip = {"id", "status", "lines"} | (set() if with_subscription else {"subscriptionId"})
    return {
        **{k: v for k, v in invoice.items() if k not in skip},
        "lines": [dict(line) for line in invoice["lines"]],
    }


def state(sub: dict[str, Any]) -> dict[str, Any]:
    """A subscription's state as a preview describes it (from either shape)."""
    plan = sub["planId"] if "planId" in sub else sub["plan"]["id"]
    keys = (
        "status",
        "quantity",
        "price",
        "currentPeriodStart",
        "currentPeriodEnd",
        "trialEnd",
        "cancelAtPeriodEnd",
        "endedAt",
    )
    return {"planId": plan, **{k: sub[k] for k in keys}}


def credit_lines(invoice: dict[str, Any] | None) -> int:
    """The credit for unused time on an invoice: its negative proration lines (> 0)."""
    if invoice is None:
        return 0
    return -sum(
        amount(line["amount"])
        for line in invoice["lines"]
        if line["kind"] == "PRORATION" and amount(line["amount"]) < 0
    )
