"""POST /webhooks/stripe with genuine (signed) deliveries that cannot be applied, and with
failures along the way: a delivery is answered 503 only when a later one can succeed; anything
else is acknowledged (Stripe would otherwise retry it for days) and a delivery that can never
be applied is recorded as failed, with its reason, for an operator."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from app.core.errors import DomainError, ErrorCode
from app.core.settings import Settings
from app.stripe.emulator import free_port
from app.web.app import create_app
from db.repositories.stripe.events import StripeEventRepository
from tests.conftest import running
from tests.support import GraphQLClient, new_org, token
from tests.test_webhooks import PAYMENT, SECRET, confirmed_at_stripe_only

OK_ORG = "acme-shapes"


def services(http: httpx.AsyncClient) -> Any:
    return http._transport.app.state.services  # type: ignore[attr-defined]


async def deliver(http: httpx.AsyncClient, body: bytes, *, at: int | None = None) -> httpx.Response:
    import hmac

    timestamp = int(time.time()) if at is None else at
    mac = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return await http.post(
        "/webhooks/stripe",
        content=body,
        headers={"stripe-signature": f"t={timestamp},v1={mac}", "content-type": "application/json"},
    )


async def record(http: httpx.AsyncClient, org: str, event_id: str) -> dict[str, Any] | None:
    row = await StripeEventRepository(services(http).db).get(org, event_id)
    return None if row is None else dict(row)


@pytest.fixture
async def hooked(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for client in running(create_app(settings.with_overrides(stripe_webhook_secret=SECRET))):
        yield client


def evt() -> str:
    return f"evt_{uuid.uuid4().hex}"


def payment_event(metadata: Any, *, event_type: str = "payment_intent.succeeded") -> dict[str, Any]:
    return {
        "id": evt(),
        "type": event_type,
        "data": {"object": {"id": "pi_1", "metadata": metadata}},
    }


def digest_id(body: bytes) -> str:
    return "evt_unparsable_" + hashlib.sha256(body).hexdigest()[:32]


NAMED = {"billing_organization": OK_ORG, "billing_payment_id": "pay_00000000000000000000000000"}

# (event or raw body, reason, organization it is recorded under, key: "id" / "digest")
UNUSABLE: list[Any] = [
    pytest.param(b"not json", "The body is not JSON.", "", "digest", id="not-json"),
    pytest.param(b"[" * 100_000, "The body is not JSON.", "", "digest", id="deep-json"),
    pytest.param(b"[1, 2]", "The body is not a JSON object.", "", "digest", id="list"),
    pytest.param(b'"evt_1"', "The body is not a JSON object.", "", "digest", id="string"),
    *(
        pytest.param(
            {"id": bad, "type": "payment_intent.succeeded", "data": {"object": {}}},
            "`id` is not a Stripe event id (evt_…).",
            "",
            "digest",
            id=f"id-{name}",
        )
        for name, bad in [
            ("int", 5),
            ("list", ["evt_1"]),
            ("null", None),
            ("object", {"evt_": 1}),
            ("nul", "evt_a\u0000b"),
            ("surrogate", "evt_a\ud800"),
            ("prefix", "ev_1"),
            ("long", "evt_" + "a" * 5000),
            ("newline", "evt_1\n"),
        ]
    ),
    *(
        pytest.param(
            {"id": "KEEP", "type": bad, "data": {"object": {}}},
            message,
            "",
            "id",
            id=f"type-{name}",
        )
        for name, bad, message in [
            ("int", 5, "`type` is not a string."),
            ("list", ["payment_intent.succeeded"], "`type` is not a string."),
            ("null", None, "`type` is not a string."),
            ("long", "a" * 201, "`type` is not a string."),
            ("nul", "payment_intent.\u0000", "`type` is not an event type."),
            ("surrogate", "payment_intent.\ud800", "`type` is not an event type."),
            ("empty", "", "`type` is not an event type."),
        ]
    ),
    *(
        pytest.param(
            {"id": "KEEP", "type": "payment_intent.succeeded", **data},
            "`data.object` is not an object.",
            "",
            "id",
            id=f"data-{name}",
        )
        for name, data in [
            ("missing", {}),
            ("list", {"data": [{"object": {}}]}),
            ("string", {"data": "object"}),
            ("null", {"data": None}),
            ("object-list", {"data": {"object": [NAMED]}}),
            ("object-string", {"data": {"object": "pi_1"}}),
            ("object-null", {"data": {"object": None}}),
        ]
    ),
    *(
        pytest.param(
            payment_event(metadata),
            "`data.object.metadata` is not an object.",
            "",
            "id",
            id=f"metadata-{name}",
        )
        for name, metadata in [("list", [NAMED]), ("string", "acme"), ("number", 1)]
    ),
    *(
        pytest.param(
            payment_event({**NAMED, "billing_organization": bad}),
            "`metadata.billing_organization` is not an organization id.",
            "",
            "id",
            id=f"org-{name}",
        )
        for name, bad in [("int", 5), ("upper", "ACME"), ("nul", "acme\u0000"), ("list", [OK_ORG])]
    ),
    *(
        pytest.param(
            payment_event({**NAMED, "billing_payment_id": bad}),
            "`metadata.billing_payment_id` is not a payment id (pay_…).",
            OK_ORG,
            "id",
            id=f"payment-id-{name}",
        )
        for name, bad in [
            ("int", 5),
            ("other-prefix", "re_00000000000000000000000000"),
            ("nul", "pay_0000000000000000000000000\u0000"),
            ("surrogate", "pay_0000000000000000000000000\ud800"),
            ("long", "pay_" + "0" * 5000),
        ]
    ),
    pytest.param(
        payment_event(
            {"billing_organization": OK_ORG, "refund_id": {"id": "re_1"}},
            event_type="charge.refund.updated",
        ),
        "`metadata.refund_id` is not a refund id (re_…).",
        OK_ORG,
        "id",
        id="refund-id-object",
    ),
]


@pytest.mark.parametrize(("event", "reason", "org", "key"), UNUSABLE)
async def test_a_signed_event_of_the_wrong_shape_is_acknowledged_and_recorded_as_failed(
    hooked: httpx.AsyncClient, event: Any, reason: str, org: str, key: str
) -> None:
    if isinstance(event, bytes):
        body = event
    else:
        if event["id"] == "KEEP":
            event = {**event, "id": evt()}
        body = json.dumps(event).encode()
    event_id = digest_id(body) if key == "digest" else event["id"]

    first = await deliver(hooked, body)
    assert first.status_code == 200
    assert first.json() == {"id": event_id, "applied": False, "detail": f"failed: {reason}"}
    row = await record(hooked, org, event_id)
    assert row is not None
    assert (row["state"], row["error"], row["attempts"], row["lease_until"]) == (
        "failed",
        reason,
        1,
        None,
    )
    again = await deliver(hooked, body)  # a repeated delivery is counted, still acknowledged
    assert (again.status_code, again.json()) == (200, first.json())
    row = await record(hooked, org, event_id)
    assert row is not None
    assert (row["state"], row["attempts"]) == ("failed", 2)
    failures = await StripeEventRepository(services(hooked).db).failures(limit=1000)
    assert [(f["organization_id"], f["error"]) for f in failures if f["event_id"] == event_id] == [
        (org, reason)
    ]


@pytest.mark.parametrize(
    "event",
    [
        pytest.param({"type": "customer.created", "data": {"object": {"id": "cus_1"}}}, id="other"),
        pytest.param(
            {"type": "payment_intent.succeeded", "data": {"object": {"metadata": None}}},
            id="no-metadata",
        ),
        pytest.param(
            {"type": "payment_intent.succeeded", "data": {"object": {"metadata": {"a": [1]}}}},
            id="not-ours",
        ),
        pytest.param(
            {"type": "customer.created", "data": {"object": {"metadata": {"x": "\u0000"}}}},
            id="odd-foreign-metadata",
        ),
    ],
)
async def test_well_formed_events_that_are_not_ours_are_ignored(
    hooked: httpx.AsyncClient, event: dict[str, Any]
) -> None:
    event = {"id": evt(), **event}
    response = await deliver(hooked, json.dumps(event).encode())
    assert response.status_code == 200
    assert response.json() == {
        "id": event["id"],
        "applied": False,
        "detail": f"ignored {event['type']}",
    }
    assert await record(hooked, "", event["id"]) is None


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-301 - 5, 400), (-200, 200), (200, 200), (301 + 5, 400), (10**9, 400), (-(10**9), 400)],
)
async def test_timestamps_too_far_in_the_past_or_the_future_are_refused(
    hooked: httpx.AsyncClient, offset: int, status: int
) -> None:
    event = {"id": evt(), "type": "customer.created", "data": {"object": {}}}
    response = await deliver(hooked, json.dumps(event).encode(), at=int(time.time()) + offset)
    assert response.status_code == status, response.text
    if status == 400:
        assert "Timestamp outside the tolerance zone" in response.json()["error"]


async def test_a_payment_not_ours_is_recorded_as_failed(hooked: httpx.AsyncClient) -> None:
    event = payment_event(NAMED)
    response = await deliver(hooked, json.dumps(event).encode())
    assert response.json() == {
        "id": event["id"],
        "applied": False,
        "detail": "failed: NOT_FOUND: Payment not found.",
    }
    row = await record(hooked, OK_ORG, event["id"])
    assert row is not None
    assert (row["state"], row["error"]) == ("failed", "NOT_FOUND: Payment not found.")


def intent_event(payment: dict[str, Any], intent: dict[str, Any], org: str) -> dict[str, Any]:
    metadata = {"billing_organization": org, "billing_payment_id": payment["id"]}
    return {
        "id": evt(),
        "type": "payment_intent.succeeded",
        "data": {"object": {**intent, "metadata": metadata}},
    }


async def test_stripe_unreachable_is_503_and_the_next_delivery_applies(
    hooked: httpx.AsyncClient,
    settings: Settings,
    org: str,
    payment_factory: Callable[..., Any],
) -> None:
    payment, intent = await confirmed_at_stripe_only(settings, payment_factory)
    event = intent_event(payment, intent, org)
    body = json.dumps(event).encode()
    nowhere = settings.with_overrides(
        stripe_webhook_secret=SECRET, stripe_api_base=f"http://127.0.0.1:{free_port()}"
    )
    async for cut_off in running(create_app(nowhere)):
        response = await deliver(cut_off, body)
        assert (response.status_code, response.json()) == (
            503,
            {"error": "Not applied; retry later."},
        )
    row = await record(hooked, org, event["id"])
    assert row is not None
    assert (row["state"], row["attempts"], row["error"]) == ("processing", 1, None)

    retried = await deliver(hooked, body)  # Stripe's next delivery takes the event over
    assert retried.json() == {
        "id": event["id"],
        "applied": True,
        "detail": f"refreshed payment {payment['id']}",
    }
    row = await record(hooked, org, event["id"])
    assert row is not None
    assert (row["state"], row["attempts"]) == ("processed", 2)
    client = GraphQLClient(hooked, token(settings, org))
    assert (await client.data(PAYMENT, {"id": payment["id"]}))["payment"]["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("error", "status", "state", "reason"),
    [
        (DomainError(ErrorCode.OPERATION_IN_PROGRESS, "Busy."), 503, "processing", None),
        (ConnectionResetError(), 503, "processing", None),
        (asyncpg.exceptions.AdminShutdownError("terminating"), 503, "processing", None),
        (asyncpg.exceptions.SerializationError("retry"), 503, "processing", None),
        (
            RuntimeError("a bug"),
            200,
            "failed",
            "Unexpected RuntimeError while refreshing payment {id}.",
        ),
        (KeyError("status"), 200, "failed", "Unexpected KeyError while refreshing payment {id}."),
        (
            DomainError(ErrorCode.PAYMENT_PROVIDER_ERROR, "Refused."),
            200,
            "failed",
            "PAYMENT_PROVIDER_ERROR: Refused.",
        ),
    ],
)
async def test_only_a_failure_a_retry_can_fix_is_a_5xx(
    hooked: httpx.AsyncClient,
    settings: Settings,
    org: str,
    payment_factory: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    state: str,
    reason: str | None,
) -> None:
    payment, intent = await confirmed_at_stripe_only(settings, payment_factory)
    event = intent_event(payment, intent, org)
    body = json.dumps(event).encode()
    payments = services(hooked).webhooks._payments
    real_refresh = payments.refresh

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise error

    monkeypatch.setattr(payments, "refresh", failing)
    response = await deliver(hooked, body)
    assert response.status_code == status, response.text
    expected = None if reason is None else reason.format(id=payment["id"])
    row = await record(hooked, org, event["id"])
    assert row is not None
    assert (row["state"], row["error"]) == (state, expected)
    if status == 200:
        assert response.json() == {
            "id": event["id"],
            "applied": False,
            "detail": f"failed: {expected}",
        }

    # Fixed (or recovered): the next delivery of the same event applies it, once.
    monkeypatch.setattr(payments, "refresh", real_refresh)
    retried = await deliver(hooked, body)
    assert (retried.status_code, retried.json()["applied"]) == (200, True)
    assert (await deliver(hooked, body)).json()["detail"] == "already applied"


class _Proxy:
    """A TCP proxy in front of the PostgreSQL server; ``cut()`` stops it and drops every
    connection through it, as a database host going away would."""

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        self._unix = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir else None
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        self._writers += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.sleep(0.1)


async def test_database_down_is_503_and_nothing_is_recorded(
    settings: Settings, database_url: str, server_url: str
) -> None:
    proxy = _Proxy(server_url)
    await proxy.start()
    parts = urlsplit(database_url)
    through_proxy = urlunsplit(
        (parts.scheme, f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}", parts.path, "", "")
    )
    event = payment_event({**NAMED, "billing_organization": new_org()})
    body = json.dumps(event).encode()
    app = create_app(
        settings.with_overrides(
            database_url=through_proxy, stripe_webhook_secret=SECRET, db_pool_min=1
        )
    )
    async for http in running(app):
        await proxy.cut()
        response = await deliver(http, body)
        assert (response.status_code, response.json()) == (
            503,
            {"error": "Not applied; retry later."},
        )
    conn = await asyncpg.connect(database_url)
    try:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM stripe_events WHERE event_id = $1", event["id"]
            )
            == 0
        )
    finally:
        await conn.close()
