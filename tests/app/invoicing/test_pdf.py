from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from pypdf import PdfReader

from app.catalog.terms import Coupon, TaxRate
from app.invoicing.math import LineDraft, LineKind, compute_totals
from app.invoicing.pdf import DocumentLine, InvoiceDocument, document_lines, pdf_text, render_pdf


def document(lines: list[DocumentLine], **overrides: object) -> InvoiceDocument:
    base = InvoiceDocument(
        organization_name="Acme Software Ltd",
        organization_address=("1 Market Street", "London EC1 1AA", "VAT GB123456789"),
        customer_name="Globex GmbH",
        customer_email="billing@globex.example",
        customer_address=("Hauptstrasse 5", "10115 Berlin"),
        number="INV-2025-0042",
        issue_date=date(2025, 1, 31),
        due_date=date(2025, 2, 14),
        currency="EUR",
        lines=lines,
        subtotal="1500.00",
        discount="-150.00",
        tax="0.00",
        total="1350.00",
        amount_paid="0.00",
        amount_due="1350.00",
        memo="Thank you for your business.",
        tax_note="Reverse charge",
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def pages_text(pdf: bytes) -> list[str]:
    reader = PdfReader(io.BytesIO(pdf))
    return [page.extract_text() for page in reader.pages]


def fragments(pdf: bytes) -> list[tuple[str, float, float]]:
    """(text, font size, x in points) of every text run on the first page."""
    found: list[tuple[str, float, float]] = []

    def visit(text: str, cm: object, tm: list[float], font: object, size: float) -> None:
        if text.strip():
            found.append((text.strip(), size, tm[4]))

    PdfReader(io.BytesIO(pdf)).pages[0].extract_text(visitor_text=visit)
    return found


def item(index: int) -> DocumentLine:
    return DocumentLine(f"Seat licence {index:04d} for team", "1", "3.00", "3.00")


def test_one_line_invoice() -> None:
    pdf = render_pdf(document([DocumentLine("Pro plan, monthly", "3", "500.00", "1500.00")]))
    assert pdf.startswith(b"%PDF-")
    (text,) = pages_text(pdf)
    assert "INV-2025-0042" in text
    assert "Pro plan, monthly 3 500.00 1500.00" in text
    assert "Total (EUR) 1350.00" in text
    assert "Amount due (EUR) 1350.00" in text
    assert "Reverse charge" in text
    assert "Thank you for your business." in text
    assert "Page 1 of 1" in text
    assert text.startswith("Invoice")


def test_five_hundred_lines_paginate_with_repeated_headings() -> None:
    lines = [item(index) for index in range(500)]
    texts = pages_text(render_pdf(document(lines, total="1500.00", amount_due="1500.00")))
    pages = len(texts)
    assert pages > 1
    whole = "\n".join(texts)
    for index in range(500):
        assert f"Seat licence {index:04d} for team 1 3.00 3.00" in whole
    for number, text in enumerate(texts, start=1):
        assert "Description Qty Unit price Amount" in text
        assert f"Page {number} of {pages}" in text
        assert "INV-2025-0042" in text
    assert "Total (EUR) 1500.00" in texts[-1]
    # Every row is printed once, in order.
    found = [int(n) for n in re.findall(r"Seat licence (\d{4})", whole)]
    assert found == list(range(500))


def test_credit_note_uses_the_same_renderer_with_its_title() -> None:
    pdf = render_pdf(document([item(1)], number="CN-0007"), title="Credit note")
    (text,) = pages_text(pdf)
    assert text.startswith("Credit note")
    assert "Credit note CN-0007" in text
    assert "Invoice" not in text


def test_draft_without_due_date() -> None:
    (text,) = pages_text(render_pdf(document([item(1)], number="DRAFT", due_date=None)))
    assert "Number: DRAFT" in text
    assert "Due date: On receipt" in text


def test_text_outside_latin1_is_replaced_not_fatal() -> None:
    doc = document(
        [DocumentLine("Café ☕ 東京", "1", "3.00", "3.00")],
        customer_name="Zoë Łukasiewicz 山田",
        memo="Merci — “à bientôt” €",
    )
    (text,) = pages_text(render_pdf(doc))
    assert "Café ? ?? 1 3.00 3.00" in text
    assert "Zoë Lukasiewicz ??" in text
    assert "Merci — “à bientôt” €" in text


def test_long_descriptions_are_wrapped_and_cut() -> None:
    words = " ".join(f"word{n}" for n in range(200))
    unbroken = "x" * 2000
    texts = pages_text(
        render_pdf(
            document(
                [
                    DocumentLine(words, "1", "1.00", "1.00"),
                    DocumentLine(unbroken, "1", "1.00", "1.00"),
                ]
            )
        )
    )
    whole = "".join(texts)
    assert "word0 word1" in whole
    assert "word199" not in whole
    assert "..." in whole
    assert whole.count("x") < 400


def test_wide_amounts_are_printed_whole() -> None:
    wide = DocumentLine("Enterprise", "1000000000000000", "-1000000000000.000", "-1.000")
    doc = document([wide], total="-10000000000000.000", tax_label="VAT 20% (Ł)")
    pdf = render_pdf(doc)
    (text,) = pages_text(pdf)
    assert "Enterprise 1000000000000000 -1000000000000.000 -1.000" in text
    (size, x) = next((size, x) for run, size, x in fragments(pdf) if run == "1000000000000000")
    # Smaller than the 9 pt of the table, and starting inside the quantity column (15 + 92 mm).
    assert size < 9
    assert x >= (15 + 92) * 72 / 25.4
    assert "Total (EUR) -10000000000000.000" in text
    assert "VAT 20% (L) 0.00" in text


def test_page_count_alias_in_user_text_is_printed_as_typed() -> None:
    (text,) = pages_text(render_pdf(document([DocumentLine("Plan {nb}", "1", "1.00", "1.00")])))
    assert "Plan {nb}" in text


def test_rendering_is_deterministic() -> None:
    doc = document([item(index) for index in range(5)])
    pdf = render_pdf(doc)
    assert pdf == render_pdf(doc)
    metadata = PdfReader(io.BytesIO(pdf)).metadata
    assert metadata is not None
    assert metadata.creation_date == datetime(2025, 1, 31, tzinfo=UTC)
    assert metadata.title == "Invoice INV-2025-0042"


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("Café", "Café"),
        ("Őrség", "Orség"),
        ("ﬁnance", "finance"),
        ("a\tb\nc", "a b c"),
        ("zero\u200bwidth", "zerowidth"),
        ("東京", "??"),
        ("€ \u2013 “x”", "€ \u2013 “x”"),
    ],
)
def test_pdf_text(raw: str, safe: str) -> None:
    assert pdf_text(raw) == safe


def test_pdf_text_cuts_long_text_and_keeps_memo_lines() -> None:
    assert pdf_text("a" * 50, 10) == "aaaaaaa..."
    assert pdf_text("one\ntwo", keep_newlines=True) == "one\ntwo"


def test_document_lines_format_computed_totals() -> None:
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    totals = compute_totals(
        [
            LineDraft("Pro", 2, 1999, LineKind.SUBSCRIPTION, period_start=start, period_end=end),
            LineDraft("Unused time", 1, -500, LineKind.PRORATION),
        ],
        "KWD",
        coupon=Coupon(percent_off=1000),
        tax_rate=TaxRate.parse("VAT", "5"),
    )
    assert document_lines(totals) == [
        DocumentLine("Pro (2025-01-01 to 2025-02-01)", "2", "1.999", "3.998"),
        DocumentLine("Unused time", "1", "-0.500", "-0.500"),
    ]
