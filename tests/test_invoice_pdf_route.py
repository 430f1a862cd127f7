"""`/invoices/{id}.pdf` and `/credit-notes/{id}.pdf` over HTTP: the text a PDF library reads
back, and authorization exactly like the API."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from pypdf import PdfReader

from app.core.settings import Settings
from tests.schema.test_invoice_taxes_api import rate
from tests.support import GraphQLClient, token

SETTINGS = """mutation($input: InvoiceSettingsUpdateInput!) {
  invoiceSettingsUpdate(input: $input) { errors { code } }
}"""
CREDIT = """mutation($input: CreditNoteCreateInput!) {
  creditNoteCreate(input: $input) { creditNote { id number pdfUrl } errors { code } }
}"""


def pdf_text(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(response.content))
    return "\n".join(page.extract_text() for page in reader.pages)


async def get(http: httpx.AsyncClient, path: str, bearer: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    return await http.get(path, headers=headers)


async def test_the_invoice_pdf_holds_the_number_every_line_and_the_total(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    await admin.data(
        SETTINGS,
        {
            "input": {
                "numberPrefix": "ACME",
                "issuerName": "Acme Software Ltd",
                "issuerAddress": ["1 Market Street", "London"],
            }
        },
    )
    await rate(admin, name="VAT", percentage="20", country="GB")
    customer = await customer_factory(
        name="Globex Ltd", address={"country": "GB", "line1": "5 High Street", "city": "Leeds"}
    )
    lines = [
        {"description": "Pro plan, monthly", "unitAmount": 4900, "quantity": 3},
        {"description": "Onboarding workshop", "unitAmount": 25000},
        {"description": "Extra storage", "unitAmount": 199, "quantity": 10},
    ]
    invoice = await invoice_factory(
        customer=customer, currency="GBP", lines=lines, memo="Thank you!", finalize=True
    )
    assert invoice["total"]["decimal"] == "500.28"
    path = f"/invoices/{invoice['id']}.pdf"
    assert invoice["pdfUrl"] == f"http://billing.test{path}"
    response = await get(http, path, admin.bearer)
    text = pdf_text(response)
    assert invoice["number"] in text
    assert invoice["number"].startswith("ACME-")
    for expected in (
        "Pro plan, monthly 3 49.00 147.00",
        "Onboarding workshop 1 250.00 250.00",
        "Extra storage 10 1.99 19.90",
        "VAT 20% 83.38",
        "Total (GBP) 500.28",
        "Amount due (GBP) 500.28",
        "Acme Software Ltd",
        "Globex Ltd",
        "5 High Street",
        "Thank you!",
    ):
        assert expected in text, expected
    assert f'filename="{invoice["number"]}.pdf"' in response.headers["content-disposition"]

    owner = token(settings, org, "customer", sub=customer["id"])
    assert invoice["number"] in pdf_text(await get(http, path, owner))


async def test_the_pdf_is_authorized_like_the_api(
    admin: GraphQLClient,
    http: httpx.AsyncClient,
    settings: Settings,
    org: str,
    customer_factory: Callable[..., Any],
    invoice_factory: Callable[..., Any],
) -> None:
    me, other = await customer_factory(), await customer_factory()
    invoice = await invoice_factory(customer=me, finalize=True)
    path = f"/invoices/{invoice['id']}.pdf"
    assert (await get(http, path, None)).status_code == 401
    assert (await get(http, path, "not-a-token")).status_code == 401
    expired = token(settings, org, "admin", ttl=-60)
    assert (await get(http, path, expired)).status_code == 401
    another_org = token(settings, f"other-{uuid.uuid4().hex[:8]}", "admin")
    missing = await get(http, "/invoices/inv_01m8fz5w5qtptew0c0t030dkky.pdf", admin.bearer)
    foreign = await get(http, path, another_org)
    assert (foreign.status_code, missing.status_code) == (404, 404)
    assert foreign.json() == missing.json()
    not_mine = token(settings, org, "customer", sub=other["id"])
    assert (await get(http, path, not_mine)).status_code == 404
    assert (await get(http, "/invoices/whatever.pdf", admin.bearer)).status_code == 404
    assert (await get(http, path, token(settings, org, "service"))).status_code == 200


async def test_drafts_long_invoices_and_credit_notes(
    admin: GraphQLClient, http: httpx.AsyncClient, invoice_factory: Callable[..., Any]
) -> None:
    draft = await invoice_factory()
    assert "DRAFT" in pdf_text(await get(http, f"/invoices/{draft['id']}.pdf", admin.bearer))

    timings = {}
    for count in (1, 500):
        lines = [{"description": f"Usage item {n:04d}", "unitAmount": 7} for n in range(count)]
        invoice = await invoice_factory(lines=lines, finalize=True)
        started = time.perf_counter()
        response = await get(http, f"/invoices/{invoice['id']}.pdf", admin.bearer)
        timings[count] = time.perf_counter() - started
        text = pdf_text(response)
        assert all(f"Usage item {n:04d} 1 0.07 0.07" in text for n in range(count))
        assert f"Total (USD) {count * 7 / 100:.2f}" in text
        pages = len(PdfReader(io.BytesIO(response.content)).pages)
        assert (pages > 1) is (count == 500)
    one, many = (round(timings[n] * 1000) for n in (1, 500))
    print(f"\nPDF over HTTP: 1 line {one} ms, 500 lines {many} ms")

    paid = await invoice_factory(lines=[{"description": "Plan", "unitAmount": 5000}], finalize=True)
    note = (
        await admin.data(
            CREDIT,
            {
                "input": {
                    "invoiceId": paid["id"],
                    "lines": [{"description": "Goodwill credit", "unitAmount": 1250}],
                    "reason": "GOODWILL",
                    "idempotencyKey": str(uuid.uuid4()),
                }
            },
        )
    )["creditNoteCreate"]["creditNote"]
    text = pdf_text(await get(http, f"/credit-notes/{note['id']}.pdf", admin.bearer))
    for expected in (
        "Credit note",
        note["number"],
        "Goodwill credit 1 12.50 12.50",
        "Total (USD) 12.50",
        f"Credit note for invoice {paid['number']}",
    ):
        assert expected in text, expected
    assert (await get(http, f"/credit-notes/{paid['id']}.pdf", admin.bearer)).status_code == 404
