"""The envelope, the object view and the retry schedule."""

from __future__ import annotations

import enum
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.money import Money
from app.outgoing_webhooks import EVENT_TYPES, EventType, api_view, backoff
from app.outgoing_webhooks.envelope import envelope_json


class Color(enum.Enum):
    DARK_RED = "dark_red"


@dataclass(frozen=True)
class Inner:
    unit_amount: Money


@dataclass(frozen=True)
class Thing:
    id: str
    organization_id: str
    customer_id: str | None
    total: Money
    color: Color
    made_at: datetime
    secret_note: str
    inner: Inner
    tags: list[str]


def test_api_view_names_and_shapes_fields_as_graphql_does() -> None:
    thing = Thing(
        id="x_1",
        organization_id="acme",
        customer_id="cus_1",
        total=Money(1999, "USD"),
        color=Color.DARK_RED,
        made_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        secret_note="internal",
        inner=Inner(Money(5, "JPY")),
        tags=["a"],
    )
    view = api_view(
        thing, typename="Thing", hide=frozenset({"secret_note"}), links={"customer_id": "customer"}
    )
    assert view == {
        "__typename": "Thing",
        "id": "x_1",
        "customer": {"id": "cus_1"},
        "total": {"amount": "1999", "currency": "USD", "decimal": "19.99"},
        "color": "DARK_RED",
        "madeAt": "2026-01-02T03:04:05+00:00",
        "inner": {"unitAmount": {"amount": "5", "currency": "JPY", "decimal": "5"}},
        "tags": ["a"],
    }


def test_the_envelope_has_every_part() -> None:
    text = envelope_json(
        event_id="evt_1",
        event_type="invoice.paid",
        org="acme",
        created=datetime(2026, 1, 1, tzinfo=UTC),
        data={"id": "inv_1"},
    )
    assert json.loads(text) == {
        "id": "evt_1",
        "type": "invoice.paid",
        "apiVersion": "2026-11-30",
        "created": "2026-01-01T00:00:00+00:00",
        "organization": "acme",
        "data": {"object": {"id": "inv_1"}},
    }


def test_every_event_type_is_described() -> None:
    assert set(EVENT_TYPES) == set(EventType)
    assert all(text.endswith(")") or text.endswith(".") for text in EVENT_TYPES.values())


def test_backoff_doubles_up_to_the_cap_with_at_most_half_taken_off() -> None:
    base, cap = timedelta(seconds=30), timedelta(hours=6)
    rng = random.Random(7)  # noqa: S311 - a reproducible sample, not a secret
    for attempt in range(1, 40):
        full = min(base * 2 ** (attempt - 1), cap)
        for _ in range(20):
            wait = backoff(attempt, base, cap, rng)
            assert full / 2 <= wait <= full
    waits = {backoff(3, base, cap, rng) for _ in range(50)}
    assert len(waits) > 1  # jittered
