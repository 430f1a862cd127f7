"""HTTP routes serving invoice and credit-note PDFs, authorized like the GraphQL API.

A bearer token is required; the document must belong to the token's organization and, for a
customer token, to that customer. Anything else (another organization's id, a malformed id,
one that does not exist) is the same 404, so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.auth import Principal, decode_token
from app.errors import Unauthenticated
from app.invoice_documents import RenderedPdf, credit_note_pdf, invoice_pdf
from app.services import Services

__all__ = ["credit_note_pdf_route", "invoice_pdf_route"]

Loader = Callable[[Services, Principal, str], Awaitable[RenderedPdf | None]]


def _principal(services: Services, request: Request) -> Principal:
    scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authentication required: send a bearer token.")
    return decode_token(services.settings, token.strip())


async def _serve(request: Request, load: Loader, name: str) -> Response:
    services: Services = request.app.state.services
    try:
        principal = _principal(services, request)
    except Unauthenticated as exc:
        return JSONResponse(
            {"error": str(exc), "code": exc.code},
            status_code=401,
            headers={"www-authenticate": "Bearer"},
        )
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
