"""The hand-written baseline of bench/graphql_vs_baseline.py: Starlette + asyncpg serving the same
rows and the same JSON as three GraphQL requests, with the same token check and SQL shapes (one
statement per table, like the API's loaders), and nothing else — no GraphQL, no rate limit, no
idempotency, no framework of ours.

    uvicorn --app-dir bench baseline_app:app   (DATABASE_URL and JWT_SECRET in the environment)
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

EXPONENTS = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


def money(amount: int, currency: str) -> dict[str, str]:
    exponent = EXPONENTS[currency]
    sign, whole = ("-" if amount < 0 else ""), abs(amount)
    text = (
        str(whole)
        if exponent == 0
        else f"{whole // 10**exponent}.{whole % 10**exponent:0{exponent}d}"
    )
    return {"amount": str(amount), "currency": currency, "decimal": sign + text}


def principal(request: Request) -> dict[str, Any] | None:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            os.environ["JWT_SECRET"],
            algorithms=["HS256"],
            options={"require": ["exp", "sub", "org", "role"]},
            leeway=5,
        )
    except jwt.InvalidTokenError:
        return None
    return claims


def answer(data: dict[str, Any]) -> Response:
    return Response(
        json.dumps({"data": data}, separators=(",", ":")), media_type="application/json"
    )


def refused() -> Response:
    return Response('{"errors":[{"message":"Authentication required"}]}', 401)


def plan_json(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": row["id"],
        "code": row["code"],
        "name": row["name"],
        "price": money(row["amount"], row["currency"]),
    }


async def plan(request: Request) -> Response:
    claims = principal(request)
    if claims is None:
        return refused()
    body = await request.json()
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT id, code, name, amount, currency FROM plans "
            "WHERE organization_id = $1 AND id = $2",
            claims["org"],
            body["id"],
        )
    return answer({"plan": plan_json(row) if row else None})


async def plans(request: Request) -> Response:
    claims = principal(request)
    if claims is None:
        return refused()
    body = await request.json()
    first = int(body.get("first", 20))
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, code, name, amount, currency FROM plans WHERE organization_id = $1 "
            "ORDER BY id LIMIT $2",
            claims["org"],
            first + 1,
        )
    return answer({"plans": {"edges": [{"node": plan_json(r)} for r in rows[:first]]}})


async def payments(request: Request) -> Response:
    claims = principal(request)
    if claims is None:
        return refused()
    body = await request.json()
    first, org = int(body.get("first", 100)), claims["org"]
    async with request.app.state.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT id, status, amount, currency, customer_id FROM payments "
            "WHERE organization_id = $1 ORDER BY id LIMIT $2",
            org,
            first + 1,
        )
        rows = rows[:first]
        customers = {
            r["id"]: r
            for r in await conn.fetch(
                "SELECT id, email FROM customers WHERE organization_id = $1 AND id = ANY($2)",
                org,
                list({r["customer_id"] for r in rows}),
            )
        }
        refunds: dict[str, list[asyncpg.Record]] = {}
        for r in await conn.fetch(
            "SELECT id, payment_id, amount, currency, status FROM refunds "
            "WHERE organization_id = $1 AND payment_id = ANY($2) ORDER BY payment_id, id",
            org,
            [r["id"] for r in rows],
        ):
            refunds.setdefault(r["payment_id"], []).append(r)
    edges = [
        {
            "node": {
                "id": r["id"],
                "status": r["status"].upper(),
                "amount": {"amount": str(r["amount"]), "currency": r["currency"]},
                "customer": {
                    "id": r["customer_id"],
                    "email": customers[r["customer_id"]]["email"],
                },
                "refunds": [
                    {
                        "id": f["id"],
                        "amount": {"amount": str(f["amount"])},
                        "status": f["status"].upper(),
                    }
                    for f in refunds.get(r["id"], [])
                ],
            }
        }
        for r in rows
    ]
    return answer({"payments": {"edges": edges}})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=2, max_size=10)
    try:
        yield
    finally:
        await app.state.pool.close()


app = Starlette(
    routes=[
        Route("/plan", plan, methods=["POST"]),
        Route("/plans", plans, methods=["POST"]),
        Route("/payments", payments, methods=["POST"]),
    ],
    lifespan=lifespan,
)
