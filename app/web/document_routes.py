"""HTTP routes serving invoice and credit-note PDFs, authorized like the GraphQL API.

A bearer token is required; the document must belong to the token's organization and, for a
customer token, to that customer. Anything else (another organization's id, a malformed id,
one that does not exist) is the same 404, so ids cannot be probed. A download draws
``DOCUMENT_COST`` points from the caller's rate-limit budget (the one GraphQL operations use);
a refused token draws one point from its IP's; an empty budget is a 429 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.core.auth import Principal
from app.core.errors import Unauthenticated
from app.invoicing import RenderedPdf, credit_note_pdf, invoice_pdf
from app.services import Services

__all__ = [
    "DOCUMENT_COST",
    "bearer_principal",
    "credit_note_pdf_route",
    "invoice_pdf_route",
    "throttled",
]

DOCUMENT_COST = 100
"""Rate-limit points one PDF costs: rendering one is worth about a 100-node query."""

Loader = Callable[[Services, Principal, str], Awaitable[RenderedPdf | None]]


async def bearer_principal(services: Services, request: Request) -> Principal:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authentication required: send a bearer token.")
    return await services.identity.authenticate(token.strip())


async def throttled(
    services: Services, request: Request, principal: Principal | None, cost: int
) -> Response | None:
    """A 429 when the caller's budget cannot pay ``cost``, else None (and the cost is paid)."""
    client = request.client.host if request.client else None
    caller = services.throttle.caller(principal, client)
    if caller is None:
        return None
    status = await services.throttle.spend(caller, cost)
    if status.granted:
        return None
    retry = status.seconds_until(cost)
    return JSONResponse(
        {
            "error": f"Throttled: this request costs {cost} points and "
            f"{status.currently_available} are available; retry in {retry} s.",
            "code": "THROTTLED",
        },
        status_code=429,
        headers={"retry-after": str(retry)},
    )


async def _serve(request: Request, load: Loader, name: str) -> Response:
    services: Services = request.app.state.services
    try:
        principal = await bearer_principal(services, request)
    except Unauthenticated as exc:
        refused = await throttled(services, request, None, 1)
        if refused is not None:
            return refused
        return JSONResponse(
            {"error": str(exc), "code": exc.code},
            status_code=401,
            headers={"www-authenticate": "Bearer"},
        )
    refused = await throttled(services, request, principal, DOCUMENT_COST)
    if refused is not None:
        return refused
    document = await load(services, principal, request.path_params["document_id"])
    if document is None:
        return JSONResponse({"error": f"{name} not found.", "code": "NOT_FOUND"}, 404)
    return Response(
        document.content,
        media_type="application/pdf",
        headers={
            "content-disposition": f'inline; filename="{document.filename}"',
            "cache-control": "private, no-store",
        },
    )


async def invoice_pdf_route(request: Request) -> Response:
    return await _serve(request, invoice_pdf, "Invoice")


async def credit_note_pdf_route(request: Request) -> Response:
    return await _serve(request, credit_note_pdf, "Credit note")
