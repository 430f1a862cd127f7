"""The idempotency module against PostgreSQL: claim, replay, reuse, in-flight, take-over after
a lease, release, retention and purge."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from app.core.errors import DomainError, ErrorCode, ProviderUnreachable, ValidationFailed
from app.core.idempotency import RETENTION, Claim, IdempotencyKeys, Stored, validate_key

SHORT = timedelta(milliseconds=300)


@pytest.fixture
def keys(app_services: Any) -> IdempotencyKeys:
    return IdempotencyKeys(app_services.db, lease=SHORT)


async def begin(keys: IdempotencyKeys, org: str, key: str, **request: Any) -> Claim | Stored:
    return await keys.begin(
        org, key, operation="test", request=request or {"n": 1}, resource_id="pay_x"
    )


async def row(app_services: Any, org: str, key: str) -> dict[str, Any] | None:
    found = await app_services.db.fetch_one(
        "SELECT *, expires_at - created_at AS kept FROM idempotency_keys "
        "WHERE organization_id = :org AND key = :key",
        {"org": org, "key": key},
    )
    return None if found is None else dict(found)


async def test_same_key_and_input_return_the_stored_result(
    keys: IdempotencyKeys, app_services: Any, org: str
) -> None:
    claim = await begin(keys, org, "k")
    assert isinstance(claim, Claim)
    assert (claim.attempt, claim.retried, claim.resource_id) == (1, False, "pay_x")
    async with app_services.db.transaction():
        await keys.complete(claim)
    stored = await begin(keys, org, "k")
    assert stored == Stored("pay_x", None)
    kept = (await row(app_services, org, "k") or {})["kept"]
    assert kept >= RETENTION


async def test_a_stored_error_is_replayed(
    keys: IdempotencyKeys, app_services: Any, org: str
) -> None:
    claim = await begin(keys, org, "declined")
    assert isinstance(claim, Claim)
    error = DomainError(
        ErrorCode.CARD_DECLINED, "The card was declined (x).", details={"decline_code": "x"}
    )
    async with app_services.db.transaction():
        await keys.complete(claim, error=error)
    stored = await begin(keys, org, "declined")
    assert isinstance(stored, Stored)
    assert stored.error is not None
    assert (stored.error.code, stored.error.message, stored.error.details) == (
        ErrorCode.CARD_DECLINED,
        "The card was declined (x).",
        {"decline_code": "x"},
    )


async def test_another_input_or_operation_with_the_key_is_refused(
    keys: IdempotencyKeys, org: str
) -> None:
    assert isinstance(await begin(keys, org, "k", amount=100), Claim)
    with pytest.raises(DomainError) as raised:
        await begin(keys, org, "k", amount=101)
    assert raised.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
    assert raised.value.field == ("input", "idempotencyKey")
    with pytest.raises(DomainError) as other_operation:
        await keys.begin(org, "k", operation="other", request={"amount": 100}, resource_id="x")
    assert other_operation.value.code is ErrorCode.IDEMPOTENCY_KEY_REUSED


async def test_a_key_in_flight_is_in_use_until_its_lease_ends_then_taken_over(
    keys: IdempotencyKeys, org: str
) -> None:
    first = await begin(keys, org, "k")
    assert isinstance(first, Claim)
    with pytest.raises(DomainError) as raised:
        await begin(keys, org, "k")
    assert raised.value.code is ErrorCode.IDEMPOTENCY_KEY_IN_USE
    await asyncio.sleep(SHORT.total_seconds() + 0.1)
    second = await keys.begin(org, "k", operation="test", request={"n": 1}, resource_id="pay_y")
    assert isinstance(second, Claim)
    assert (second.attempt, second.retried) == (2, True)
    assert second.resource_id == "pay_x", "a take-over keeps the first attempt's resource"
    assert second.stripe_key("confirm") == first.stripe_key("confirm")
    assert second.token != first.token
    with pytest.raises(DomainError) as lost:
        await keys.complete(first)
    assert lost.value.code is ErrorCode.IDEMPOTENCY_KEY_IN_USE


async def test_only_one_of_many_concurrent_requests_claims_a_key(
    app_services: Any, org: str
) -> None:
    # A lease no busy machine outlives while the 25 requests queue for 10 connections (with
    # the 300 ms one, a late request could lawfully take an expired claim over).
    keys = IdempotencyKeys(app_services.db, lease=timedelta(seconds=30))

    async def attempt() -> str:
        try:
            outcome = await begin(keys, org, "race")
        except DomainError as exc:
            return exc.code.value
        return "claimed" if isinstance(outcome, Claim) else "stored"

    results = await asyncio.gather(*(attempt() for _ in range(25)))
    assert results.count("claimed") == 1
    assert set(results) == {"claimed", "IDEMPOTENCY_KEY_IN_USE"}


async def test_run_frees_the_key_when_nothing_happened_and_keeps_it_when_unsure(
    keys: IdempotencyKeys, app_services: Any, org: str
) -> None:
    async def invalid(claim: Claim) -> str:
        raise ValidationFailed([DomainError(ErrorCode.INVALID, "bad")])

    async def replay(stored: Stored) -> str:
        return f"replayed {stored.resource_id}"

    with pytest.raises(ValidationFailed):
        await keys.run(
            org, "free", operation="t", request={}, resource_id="r1", work=invalid, replay=replay
        )
    assert await row(app_services, org, "free") is None

    async def unreachable(claim: Claim) -> str:
        raise ProviderUnreachable("confirm the payment")

    with pytest.raises(ProviderUnreachable):
        await keys.run(
            org,
            "unsure",
            operation="t",
            request={},
            resource_id="r2",
            work=unreachable,
            replay=replay,
        )
    kept = await row(app_services, org, "unsure")
    assert kept is not None
    assert kept["state"] == "in_flight"

    async def done(claim: Claim) -> str:
        async with app_services.db.transaction():
            await keys.complete(claim)
        return f"done {claim.resource_id} attempt {claim.attempt}"

    result = await keys.run(
        org, "unsure", operation="t", request={}, resource_id="r3", work=done, replay=replay
    )
    assert result == "done r2 attempt 2", "an immediate retry resumes the same resource"
    again = await keys.run(
        org, "unsure", operation="t", request={}, resource_id="r4", work=done, replay=replay
    )
    assert again == "replayed r2"


async def test_keys_past_their_retention_are_reusable_and_purged(
    keys: IdempotencyKeys, app_services: Any, org: str
) -> None:
    for name in ("old", "older"):
        claim = await begin(keys, org, name)
        assert isinstance(claim, Claim)
        async with app_services.db.transaction():
            await keys.complete(claim)
    await app_services.db.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
        "WHERE organization_id = :org",
        {"org": org},
    )
    reused = await begin(keys, org, "old", different="input")
    assert isinstance(reused, Claim)
    assert reused.attempt == 1
    assert await keys.purge_expired() >= 1
    assert await row(app_services, org, "older") is None
    assert await row(app_services, org, "old") is not None, "in flight again: kept"


def test_keys_are_validated_and_forwarded_deterministically() -> None:
    for bad in ("", " padded", "x" * 256, "tab\there"):
        with pytest.raises(DomainError):
            validate_key(bad)
    one = Claim("acme", "k-1", "t1", "pay_1", 1)
    assert one.stripe_key("confirm") == Claim("acme", "k-1", "t2", "pay_9", 3).stripe_key("confirm")
    assert one.stripe_key("confirm") != Claim("beta", "k-1", "t1", "pay_1", 1).stripe_key("confirm")
    assert one.stripe_key("confirm") != one.stripe_key("capture")
    assert len(one.stripe_key("confirm-method")) <= 255
    with pytest.raises(ValueError, match="24 hours"):
        IdempotencyKeys(None, retention=timedelta(hours=1))  # type: ignore[arg-type]
