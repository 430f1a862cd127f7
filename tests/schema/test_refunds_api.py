"""Refunds end to end: partial refunds within what was captured, the approval policy, customer
requests, status following Stripe (a failed refund frees its amount), idempotency, visibility."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.core.auth import Principal, Role
from app.core.errors import ErrorCode
from app.core.idempotency import IdempotencyKeys
from app.core.settings import Settings
from app.organizations.service import OrganizationService
from app.payments.refunds import RefundFailed, RefundReason, RefundService
from app.stripe.gateway import ProviderRefused, StripeRefund
from tests.schema.test_plans_api import stripe_get
from tests.support import GraphQLClient, error_codes, token

REFUND_FIELDS = """
  id paymentId customerId status reason note stripeRefundId failureReason requestedBy
  approvedBy approvedAt rejectedBy rejectedAt rejectionReason amount { amount currency decimal }
"""
CREATE = f"""mutation($input: RefundCreateInput!) {{
  refundCreate(input: $input) {{ refund {{ {REFUND_FIELDS} }} errors {{ field code message }} }}
}}"""
APPROVE = f"""mutation($input: RefundApproveInput!) {{
  refundApprove(input: $input) {{ refund {{ {REFUND_FIELDS} }} errors {{ field code message }} }}
}}"""
REJECT = f"""mutation($input: RefundRejectInput!) {{
  refundReject(input: $input) {{ refund {{ {REFUND_FIELDS} }} errors {{ field code message }} }}
}}"""
REFRESH = f"""mutation($input: RefundRefreshInput!) {{
  refundRefresh(input: $input) {{ refund {{ {REFUND_FIELDS} }} errors {{ field code message }} }}
}}"""
SETTINGS = """mutation($input: OrganizationSettingsUpdateInput!) {
  organizationSettingsUpdate(input: $input) {
    organization { id refundApprovalThresholds { amount currency } }
    errors { field code message }
  }
}"""
PAYMENT = """query($id: ID!) { payment(id: $id) {
  id amountCaptured { amount } amountRefunded { amount } amountRefundable { amount }
  refunds { id status amount { amount } }
} }"""
GET = f"query($id: ID!) {{ refund(id: $id) {{ {REFUND_FIELDS} }} }}"
LIST = """query($filter: RefundFilter) {
  refunds(filter: $filter) { totalCount edges { node { id status paymentId } } }
}"""


def key() -> str:
    return str(uuid.uuid4())


async def refund(
    client: GraphQLClient, payment_id: str, amount: int | None = None, **extra: Any
) -> dict[str, Any]:
    currency = extra.pop("currency", "USD")
    fields: dict[str, Any] = {
        "paymentId": payment_id,
        "reason": "REQUESTED_BY_CUSTOMER",
        "idempotencyKey": key(),
        **extra,
    }
    if amount is not None:
        fields["amount"] = {"amount": amount, "currency": currency}
    data = await client.data(CREATE, {"input": fields})
    payload: dict[str, Any] = data["refundCreate"]
    return payload


async def stripe_refunds(settings: Settings, payment: dict[str, Any]) -> list[dict[str, Any]]:
    listed = await stripe_get(
        settings, f"/v1/refunds?payment_intent={payment['stripePaymentIntentId']}&limit=100"
    )
    return [r for r in listed["data"] if "refund_id" in r["metadata"]]


async def set_thresholds(admin: GraphQLClient, *thresholds: dict[str, Any]) -> dict[str, Any]:
    data = await admin.data(SETTINGS, {"input": {"refundApprovalThresholds": list(thresholds)}})
    payload: dict[str, Any] = data["organizationSettingsUpdate"]
    return payload


async def test_several_partial_refunds_never_exceed_what_was_captured(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    payment = await payment_factory(confirm=True)
    first = await refund(admin, payment["id"], 3000, note="damaged box")
    assert first["errors"] == []
    made = first["refund"]
    assert made["id"].startswith("re_")
    assert (made["status"], made["amount"]["decimal"], made["note"]) == (
        "SUCCEEDED",
        "30.00",
        "damaged box",
    )
    assert (made["requestedBy"], made["approvedBy"]) == ("test-admin", None)
    assert made["stripeRefundId"].startswith("re_")
    assert (await refund(admin, payment["id"], 5000))["refund"]["status"] == "SUCCEEDED"

    over = await refund(admin, payment["id"], 3000)
    assert over["refund"] is None
    assert [(e["field"], e["code"]) for e in over["errors"]] == [
        (["input", "amount"], "AMOUNT_EXCEEDS_REFUNDABLE")
    ]
    assert over["errors"][0]["message"].startswith("At most 20.00 USD")

    rest = await refund(admin, payment["id"])
    assert rest["refund"]["amount"]["amount"] == "2000", "omitted amount = the remainder"
    nothing = await refund(admin, payment["id"])
    assert [e["code"] for e in nothing["errors"]] == ["AMOUNT_EXCEEDS_REFUNDABLE"]

    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert state["amountRefunded"] == {"amount": "10000"}
    assert state["amountRefundable"] == {"amount": "0"}
    assert [r["amount"]["amount"] for r in state["refunds"]] == ["3000", "5000", "2000"]
    at_stripe = await stripe_refunds(settings, payment)
    assert sorted(r["amount"] for r in at_stripe) == [2000, 3000, 5000]
    assert {r["metadata"]["refund_id"] for r in at_stripe} == {r["id"] for r in state["refunds"]}


@pytest.mark.parametrize(
    ("amount", "currency", "field", "code"),
    [
        (0, "USD", ["input", "amount", "amount"], "INVALID"),
        (-100, "USD", ["input", "amount", "amount"], "INVALID"),
        (100, "EUR", ["input", "amount", "currency"], "CURRENCY_MISMATCH"),
        (100, "XXX", ["input", "amount", "currency"], "UNKNOWN_CURRENCY"),
    ],
)
async def test_invalid_refund_is_a_payload_error_and_writes_nothing(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    settings: Settings,
    amount: int,
    currency: str,
    field: list[str],
    code: str,
) -> None:
    payment = await payment_factory(confirm=True)
    payload = await refund(admin, payment["id"], amount, currency=currency)
    assert payload["refund"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)]
    assert (await admin.data(LIST))["refunds"]["totalCount"] == 0
    assert await stripe_refunds(settings, payment) == []


async def test_only_succeeded_payments_can_be_refunded(
    admin: GraphQLClient, payment_factory: Callable[..., Any]
) -> None:
    unconfirmed = await payment_factory()
    payload = await refund(admin, unconfirmed["id"], 100)
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [
        (["input", "paymentId"], "INVALID_STATE")
    ]
    missing = await refund(admin, "pay_01hzzzzzzzzzzzzzzzzzzzzzzz", 100)
    assert [e["code"] for e in missing["errors"]] == ["NOT_FOUND"]


async def test_refunds_above_the_threshold_wait_for_another_admin(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> None:
    policy = await set_thresholds(
        admin, {"amount": 5000, "currency": "usd"}, {"amount": 0, "currency": "JPY"}
    )
    assert policy["errors"] == []
    assert policy["organization"]["refundApprovalThresholds"] == [
        {"amount": "0", "currency": "JPY"},
        {"amount": "5000", "currency": "USD"},
    ]
    payment = await payment_factory(confirm=True)

    small = await refund(admin, payment["id"], 1000)
    assert small["refund"]["status"] == "SUCCEEDED", "at or below the threshold: at once"
    # The threshold applies to the payment's cumulative refunds: 10.00 + 60.00 > 50.00.
    held = await refund(admin, payment["id"], 6000)
    assert held["errors"] == []
    assert held["refund"]["status"] == "PENDING_APPROVAL"
    assert held["refund"]["stripeRefundId"] is None
    assert [r["amount"] for r in await stripe_refunds(settings, payment)] == [1000], (
        "nothing reaches Stripe before approval"
    )
    reserved = await refund(admin, payment["id"], 3001)
    assert [e["code"] for e in reserved["errors"]] == ["AMOUNT_EXCEEDS_REFUNDABLE"]

    self_approval = (
        await admin.data(
            APPROVE, {"input": {"refundId": held["refund"]["id"], "idempotencyKey": key()}}
        )
    )["refundApprove"]
    assert [e["code"] for e in self_approval["errors"]] == ["INVALID_STATE"]
    for role, sub in (("customer", payment["customerId"]), ("service", "svc")):
        body = await GraphQLClient(http, token(settings, org, role, sub=sub))(
            APPROVE, {"input": {"refundId": held["refund"]["id"], "idempotencyKey": key()}}
        )
        assert error_codes(body) == ["FORBIDDEN"]

    approver = GraphQLClient(http, token(settings, org, "admin", sub="approver"))
    approved = (
        await approver.data(
            APPROVE, {"input": {"refundId": held["refund"]["id"], "idempotencyKey": key()}}
        )
    )["refundApprove"]
    assert approved["errors"] == []
    assert approved["refund"]["status"] == "SUCCEEDED"
    assert approved["refund"]["approvedBy"] == "approver"
    assert approved["refund"]["approvedAt"] is not None
    assert sorted(r["amount"] for r in await stripe_refunds(settings, payment)) == [1000, 6000]

    twice = (
        await approver.data(
            APPROVE, {"input": {"refundId": held["refund"]["id"], "idempotencyKey": key()}}
        )
    )["refundApprove"]
    assert [e["code"] for e in twice["errors"]] == ["INVALID_STATE"]
    late_reject = (
        await approver.data(REJECT, {"input": {"refundId": held["refund"]["id"], "reason": "no"}})
    )["refundReject"]
    assert [e["code"] for e in late_reject["errors"]] == ["INVALID_STATE"]
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert state["amountRefunded"] == {"amount": "7000"}


async def test_rejecting_a_refund_records_why_and_frees_its_amount(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    await set_thresholds(admin, {"amount": 0, "currency": "USD"})
    payment = await payment_factory(confirm=True)
    held = (await refund(admin, payment["id"]))["refund"]
    assert (held["status"], held["amount"]["amount"]) == ("PENDING_APPROVAL", "10000")
    blank = (await admin.data(REJECT, {"input": {"refundId": held["id"], "reason": " "}}))[
        "refundReject"
    ]
    assert [(e["field"], e["code"]) for e in blank["errors"]] == [(["input", "reason"], "REQUIRED")]
    rejected = (
        await admin.data(REJECT, {"input": {"refundId": held["id"], "reason": "Not eligible"}})
    )["refundReject"]
    assert rejected["errors"] == []
    assert (rejected["refund"]["status"], rejected["refund"]["rejectionReason"]) == (
        "REJECTED",
        "Not eligible",
    )
    assert rejected["refund"]["rejectedBy"] == "test-admin"
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert state["amountRefundable"] == {"amount": "10000"}
    assert await stripe_refunds(settings, payment) == []
    again = await refund(admin, payment["id"])
    assert again["refund"]["status"] == "PENDING_APPROVAL"


@pytest.mark.parametrize(
    ("thresholds", "field", "code"),
    [
        (
            [{"amount": 10, "currency": "ABC"}],
            ["input", "refundApprovalThresholds", "0", "currency"],
            "UNKNOWN_CURRENCY",
        ),
        (
            [{"amount": -1, "currency": "USD"}],
            ["input", "refundApprovalThresholds", "0", "amount"],
            "INVALID",
        ),
        (
            [{"amount": 1, "currency": "USD"}, {"amount": 2, "currency": "usd"}],
            ["input", "refundApprovalThresholds", "1", "currency"],
            "DUPLICATE",
        ),
    ],
)
async def test_invalid_thresholds_are_payload_errors(
    admin: GraphQLClient, thresholds: list[dict[str, Any]], field: list[str], code: str
) -> None:
    await set_thresholds(admin, {"amount": 700, "currency": "EUR"})
    payload = await set_thresholds(admin, *thresholds)
    assert payload["organization"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [(field, code)]
    current = await admin.data("{ organization { refundApprovalThresholds { amount currency } } }")
    assert current["organization"]["refundApprovalThresholds"] == [
        {"amount": "700", "currency": "EUR"}
    ]
    cleared = await set_thresholds(admin)
    assert cleared["organization"]["refundApprovalThresholds"] == []


async def test_customers_ask_for_refunds_of_their_own_payments_and_wait_for_approval(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    customer_factory: Callable[..., Any],
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
) -> None:
    me, other = await customer_factory(), await customer_factory()
    mine = await payment_factory(customer=me, confirm=True)
    theirs = await payment_factory(customer=other, confirm=True)
    their_refund = (await refund(admin, theirs["id"], 100))["refund"]
    client = GraphQLClient(http, token(settings, org, "customer", sub=me["id"]))

    asked = await refund(client, mine["id"], 100)
    assert asked["errors"] == []
    assert asked["refund"]["status"] == "PENDING_APPROVAL", "below the threshold, still held"
    assert asked["refund"]["requestedBy"] == me["id"]
    refused = await refund(client, theirs["id"], 100)
    assert [e["code"] for e in refused["errors"]] == ["NOT_FOUND"]
    assert (await client.data(GET, {"id": their_refund["id"]}))["refund"] is None
    listing = (await client.data(LIST))["refunds"]
    assert [e["node"]["id"] for e in listing["edges"]] == [asked["refund"]["id"]]
    spying = (await client.data(LIST, {"filter": {"customerId": other["id"]}}))["refunds"]
    assert spying["totalCount"] == 0
    body = await client(REJECT, {"input": {"refundId": asked["refund"]["id"], "reason": "x"}})
    assert error_codes(body) == ["FORBIDDEN"]

    approved = (
        await admin.data(
            APPROVE, {"input": {"refundId": asked["refund"]["id"], "idempotencyKey": key()}}
        )
    )["refundApprove"]
    assert approved["refund"]["status"] == "SUCCEEDED"
    assert (await client.data(GET, {"id": asked["refund"]["id"]}))["refund"]["status"] == (
        "SUCCEEDED"
    )
    admin_view = (await admin.data(LIST, {"filter": {"paymentId": theirs["id"]}}))["refunds"]
    assert [e["node"]["id"] for e in admin_view["edges"]] == [their_refund["id"]]


async def test_same_key_returns_the_same_refund_and_another_input_is_refused(
    admin: GraphQLClient, payment_factory: Callable[..., Any], settings: Settings
) -> None:
    payment = await payment_factory(confirm=True)
    fixed = key()
    first = await refund(admin, payment["id"], 1500, idempotencyKey=fixed)
    second = await refund(admin, payment["id"], 1500, idempotencyKey=fixed)
    assert first == second
    reused = await refund(admin, payment["id"], 1600, idempotencyKey=fixed)
    assert [(e["field"], e["code"]) for e in reused["errors"]] == [
        (["input", "idempotencyKey"], "IDEMPOTENCY_KEY_REUSED")
    ]
    assert len(await stripe_refunds(settings, payment)) == 1


class _Gateway:
    """The real gateway, with some answers replaced (what localstripe cannot produce)."""

    def __init__(self, inner: Any, **replaced: Any) -> None:
        self._inner = inner
        self._replaced = replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced.get(name) or getattr(self._inner, name)


def _service(app_services: Any, gateway: Any) -> RefundService:
    db = app_services.db
    return RefundService(db, gateway, IdempotencyKeys(db), OrganizationService(db))


async def test_refund_refused_by_stripe_is_failed_and_frees_its_amount(
    admin: GraphQLClient, payment_factory: Callable[..., Any], app_services: Any, org: str
) -> None:
    payment = await payment_factory(confirm=True)

    async def refuse(**_: Any) -> StripeRefund:
        raise ProviderRefused("create the refund", "charge_disputed")

    service = _service(app_services, _Gateway(app_services.stripe, create_refund=refuse))
    actor = Principal("test-admin", org, Role.ADMIN)
    fixed = key()
    with pytest.raises(RefundFailed) as raised:
        await service.create(
            org,
            actor,
            payment["id"],
            amount=4000,
            currency="USD",
            reason=RefundReason.OTHER,
            note="",
            idempotency_key=fixed,
        )
    assert raised.value.code is ErrorCode.PAYMENT_PROVIDER_ERROR
    failed = raised.value.refund
    assert failed.status.value == "failed"
    assert failed.failure_reason == "refused by the payment provider (charge_disputed)"
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert state["amountRefundable"] == {"amount": "10000"}
    assert state["amountRefunded"] == {"amount": "0"}

    replay = await refund(admin, payment["id"], 4000, reason="OTHER", idempotencyKey=fixed)
    assert [e["code"] for e in replay["errors"]] == ["PAYMENT_PROVIDER_ERROR"]
    assert replay["refund"]["id"] == failed.id
    assert replay["refund"]["status"] == "FAILED"
    assert (await refund(admin, payment["id"]))["refund"]["amount"]["amount"] == "10000"


async def test_refund_status_follows_stripe(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    app_services: Any,
    settings: Settings,
    org: str,
) -> None:
    payment = await payment_factory(confirm=True)
    real = app_services.stripe

    async def pending(**kwargs: Any) -> StripeRefund:
        created = await real.create_refund(**kwargs)
        return StripeRefund(created.id, "pending", created.amount, None)

    service = _service(app_services, _Gateway(real, create_refund=pending))
    actor = Principal("test-admin", org, Role.ADMIN)
    made = await service.create(
        org,
        actor,
        payment["id"],
        amount=2500,
        currency="USD",
        reason=RefundReason.DUPLICATE,
        note="",
        idempotency_key=key(),
    )
    assert made.status.value == "pending"
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert (state["amountRefunded"], state["amountRefundable"]) == (
        {"amount": "0"},
        {"amount": "7500"},
    )
    refreshed = (await admin.data(REFRESH, {"input": {"refundId": made.id}}))["refundRefresh"]
    assert refreshed["errors"] == []
    assert refreshed["refund"]["status"] == "SUCCEEDED", "the emulator says succeeded"
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert state["amountRefunded"] == {"amount": "2500"}

    async def bounced(refund_id: str) -> StripeRefund:
        found = await real.retrieve_refund(refund_id)
        return StripeRefund(found.id, "failed", found.amount, "expired_or_canceled_card")

    later = _service(app_services, _Gateway(real, retrieve_refund=bounced))
    failed = await later.refresh(org, actor, made.id)
    assert (failed.status.value, failed.failure_reason) == ("failed", "expired_or_canceled_card")
    state = (await admin.data(PAYMENT, {"id": payment["id"]}))["payment"]
    assert (state["amountRefunded"], state["amountRefundable"]) == (
        {"amount": "0"},
        {"amount": "10000"},
    ), "a failed refund frees its amount"
    assert (await refund(admin, payment["id"]))["refund"]["amount"]["amount"] == "10000"


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("succeeded", "approve"),
        ("succeeded", "reject"),
        ("rejected", "approve"),
        ("rejected", "reject"),
    ],
)
async def test_illegal_refund_transitions_are_payload_errors_and_change_nothing(
    admin: GraphQLClient,
    payment_factory: Callable[..., Any],
    app_services: Any,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    state: str,
    action: str,
) -> None:
    payment = await payment_factory(confirm=True)
    approver = GraphQLClient(http, token(settings, org, "admin", sub="approver"))
    if state == "succeeded":
        made = (await refund(admin, payment["id"], 100))["refund"]
    else:
        await set_thresholds(admin, {"amount": 0, "currency": "USD"})
        made = (await refund(admin, payment["id"], 100))["refund"]
        await approver.data(REJECT, {"input": {"refundId": made["id"], "reason": "no"}})
    before = await app_services.db.fetch_one(
        "SELECT * FROM refunds WHERE id = :id", {"id": made["id"]}
    )
    if action == "approve":
        variables = {"input": {"refundId": made["id"], "idempotencyKey": key()}}
        payload = (await approver.data(APPROVE, variables))["refundApprove"]
    else:
        variables = {"input": {"refundId": made["id"], "reason": "too late"}}
        payload = (await approver.data(REJECT, variables))["refundReject"]
    assert payload["refund"] is None
    assert [(e["field"], e["code"]) for e in payload["errors"]] == [
        (["input", "refundId"], "INVALID_STATE")
    ]
    after = await app_services.db.fetch_one(
        "SELECT * FROM refunds WHERE id = :id", {"id": made["id"]}
    )
    assert dict(after or {}) == dict(before or {})
