"""Invoice and credit-note PDFs, rendered with fpdf2 and its built-in Helvetica.

No network and no font files: the core PDF fonts ship with every reader. They cover only the
Windows-1252 character set (Latin-1 plus typographic quotes, dashes and the euro sign), so every
text goes through ``pdf_text`` first:

* characters Windows-1252 can encode are kept; line breaks and tabs become spaces (except in the
  memo, which keeps its line breaks); other control and invisible format characters are dropped;
* anything else is decomposed (NFKD) and its encodable letters kept, so "ő" becomes "o" and
  "ﬁ" becomes "fi"; a few letters that do not decompose get their base letter ("Ł" becomes "L");
* what is left (CJK, emoji, other scripts) becomes "?", one per character, so the reader can see
  that something was there;
* free text is cut to a length that fits its place ("..." marks the cut): a line description to
  300 characters, wrapped inside its column, so that no table row can outgrow a page. Amounts are
  never cut: one too wide for its column is printed in a smaller size.

The PDF is a function of the document alone (its creation date is the issue date), so the same
invoice always renders to the same bytes.

The page count in the "Page N of M" footer is written after the body is laid out, instead of with
fpdf2's ``{nb}`` alias, so a description containing "{nb}" is printed as typed.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import cast

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, WrapMode, XPos, YPos

from app.core.money import format_decimal
from app.invoicing.math import InvoiceTotals, LineKind

__all__ = [
    "DocumentLine",
    "InvoiceDocument",
    "document_lines",
    "pdf_text",
    "render_pdf",
]

_ENCODING = "windows-1252"
_MAX_DESCRIPTION = 300
_MAX_FIELD = 200
_MAX_ADDRESS_LINES = 6
_MAX_MEMO = 2_000

_FONT = "Helvetica"
_MARGIN = 15.0
_LINE = 5.0
_COLUMNS = (92.0, 18.0, 35.0, 35.0)
_HEADINGS = ("Description", "Qty", "Unit price", "Amount")
_ALIGNS = ("L", "R", "R", "R")
_TABLE_SIZE = 9.0
_MIN_SIZE = 4.0
_ROW_LINE = 4.5
_ROW_PAD = 1.0
_GREY = (90, 90, 90)

# Letters that NFKD does not decompose (the stroke is part of the letter), and the minus sign.
_FALLBACKS = str.maketrans("ŁłĐđĦħıĿŀŦŧŊŋ\u2212", "LlDdHhiLlTtNn-")


@dataclass(frozen=True, slots=True)
class DocumentLine:
    """One table row; the numbers are already formatted (``app.core.money.format_decimal``)."""

    description: str
    quantity: str
    unit_amount: str
    amount: str


@dataclass(frozen=True, slots=True)
class InvoiceDocument:
    """Everything printed on an invoice or credit note, already formatted as text.

    ``number`` is the invoice number, or "DRAFT" before finalization. ``discount`` and ``tax`` are
    printed as given (e.g. "-15.00"), under ``discount_label`` and ``tax_label`` (e.g. "VAT 20%").
    ``tax_note`` is printed in bold under the totals (e.g. "Reverse charge").
    """

    organization_name: str
    organization_address: Sequence[str]
    customer_name: str
    customer_email: str
    customer_address: Sequence[str]
    number: str
    issue_date: date
    due_date: date | None
    currency: str
    lines: Sequence[DocumentLine]
    subtotal: str
    discount: str
    tax: str
    total: str
    amount_paid: str
    amount_due: str
    memo: str = ""
    tax_note: str = ""
    discount_label: str = "Discount"
    tax_label: str = "Tax"


def document_lines(totals: InvoiceTotals) -> list[DocumentLine]:
    """Table rows for the given lines of computed totals; discount and tax go in the totals box."""
    rows = []
    for line in totals.lines:
        if line.kind in (LineKind.DISCOUNT, LineKind.TAX):
            continue
        description = line.description
        if line.period_start is not None and line.period_end is not None:
            description += f" ({line.period_start:%Y-%m-%d} to {line.period_end:%Y-%m-%d})"
        rows.append(
            DocumentLine(
                description=description,
                quantity=str(line.quantity),
                unit_amount=format_decimal(line.unit_amount, totals.currency),
                amount=format_decimal(line.amount, totals.currency),
            )
        )
    return rows


@lru_cache(maxsize=4096)
def _safe_char(char: str, keep_newlines: bool) -> str:
    if char in "\r\n\t\v\f\x85\u2028\u2029":
        return "\n" if keep_newlines and char in "\n\u2028\u2029" else " "
    if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn"):
        return ""
    try:
        char.encode(_ENCODING)
    except UnicodeEncodeError:
        pass
    else:
        return char
    kept = []
    for part in unicodedata.normalize("NFKD", char.translate(_FALLBACKS)):
        if unicodedata.combining(part):
            continue
        try:
            part.encode(_ENCODING)
        except UnicodeEncodeError:
            continue
        kept.append(part)
    return "".join(kept) or "?"


def pdf_text(text: str, limit: int = _MAX_FIELD, *, keep_newlines: bool = False) -> str:
    """``text`` reduced to what Helvetica can print, cut to ``limit`` characters."""
    safe = "".join(_safe_char(char, keep_newlines) for char in text).strip()
    if len(safe) > limit:
        return safe[: limit - 3].rstrip() + "..."
    return safe


class _Renderer:
    def __init__(self, document: InvoiceDocument, title: str) -> None:
        self.document = document
        self.title = pdf_text(title, 24)
        self.pdf = FPDF(orientation="portrait", unit="mm", format="A4")
        self.pdf.core_fonts_encoding = _ENCODING
        self.pdf.alias_nb_pages(None)  # type: ignore[arg-type]
        self.pdf.set_margins(_MARGIN, _MARGIN, _MARGIN)
        self.pdf.set_auto_page_break(True, margin=20)
        # The issue date, not the clock, so that the same document renders to the same bytes.
        self.pdf.set_creation_date(datetime.combine(document.issue_date, time(), UTC))
        self.pdf.set_title(f"{self.title} {pdf_text(document.number, 60)}")
        self.pdf.set_author(pdf_text(document.organization_name))
        self.pdf.set_creator("billing-api")

    def render(self) -> bytes:
        self.pdf.add_page()
        self._heading()
        self._parties()
        self._table()
        self._totals()
        self._notes()
        self._footers()
        return bytes(self.pdf.output())

    def _text(self, text: str, *, size: float = 10, style: str = "", width: float = 0) -> None:
        self.pdf.set_font(_FONT, style, size)
        self.pdf.multi_cell(
            width, _LINE, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT, wrapmode=WrapMode.WORD
        )

    def _heading(self) -> None:
        doc, pdf = self.document, self.pdf
        top = pdf.get_y()
        pdf.set_font(_FONT, "B", 20)
        pdf.cell(0, 10, self.title, align="R")
        pdf.set_xy(_MARGIN, top)
        self._text(pdf_text(doc.organization_name), size=14, style="B", width=110)
        for line in doc.organization_address[:_MAX_ADDRESS_LINES]:
            self._text(pdf_text(line), width=110)
        pdf.ln(4)
        facts = [
            ("Number", pdf_text(doc.number, 60)),
            ("Issue date", doc.issue_date.isoformat()),
            ("Due date", doc.due_date.isoformat() if doc.due_date else "On receipt"),
            ("Currency", pdf_text(doc.currency, 3)),
        ]
        for label, value in facts:
            pdf.set_font(_FONT, "B", 10)
            pdf.cell(28, _LINE, f"{label}:")
            pdf.set_font(_FONT, "", 10)
            pdf.cell(0, _LINE, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(4)

    def _parties(self) -> None:
        doc = self.document
        self._text("Bill to", style="B")
        self._text(pdf_text(doc.customer_name))
        if doc.customer_email.strip():
            self._text(pdf_text(doc.customer_email))
        for line in doc.customer_address[:_MAX_ADDRESS_LINES]:
            self._text(pdf_text(line))
        self.pdf.ln(6)

    def _fit(
        self,
        width: float,
        text: str,
        *,
        style: str = "",
        size: float = _TABLE_SIZE,
        height: float = _ROW_LINE,
    ) -> None:
        """A right-aligned one-line cell; an amount too wide for it is printed smaller, not cut."""
        pdf = self.pdf
        fitted = size
        pdf.set_font(_FONT, style, fitted)
        while fitted > _MIN_SIZE and pdf.get_string_width(text) > width - 2 * pdf.c_margin:
            fitted -= 0.5
            pdf.set_font(_FONT, style, fitted)
        pdf.cell(width, height, text, align="R")
        pdf.set_font(_FONT, style, size)

    def _headings(self) -> None:
        pdf = self.pdf
        pdf.set_font(_FONT, "B", _TABLE_SIZE)
        pdf.set_fill_color(235, 235, 235)
        for width, text, align in zip(_COLUMNS, _HEADINGS, _ALIGNS, strict=True):
            pdf.cell(width, _ROW_LINE + 2 * _ROW_PAD, text, align=align, fill=True)
        pdf.ln()
        pdf.set_font(_FONT, "", _TABLE_SIZE)

    def _wrap(self, text: str) -> list[str]:
        self.pdf.set_font(_FONT, "", _TABLE_SIZE)
        if self.pdf.get_string_width(text) <= _COLUMNS[0] - 2 * self.pdf.c_margin:
            return [text]
        lines = self.pdf.multi_cell(
            _COLUMNS[0],
            _ROW_LINE,
            text,
            dry_run=True,
            output=MethodReturnValue.LINES,
            wrapmode=WrapMode.WORD,
        )
        return cast("list[str]", lines)

    def _table(self) -> None:
        # Laid out by hand rather than with FPDF.table(), which measures every cell twice and
        # made a 500-line invoice about seven times slower to render.
        pdf = self.pdf
        heading_height = _ROW_LINE + 2 * _ROW_PAD
        if pdf.will_page_break(heading_height + _ROW_LINE * 3):
            pdf.add_page()
        self._headings()
        pdf.set_line_width(0.2)
        for line in self.document.lines:
            description = self._wrap(pdf_text(line.description, _MAX_DESCRIPTION))
            height = len(description) * _ROW_LINE + 2 * _ROW_PAD
            if pdf.will_page_break(height):
                pdf.add_page()
                self._headings()
            top = pdf.get_y()
            for index, text in enumerate(description):
                pdf.set_xy(_MARGIN, top + _ROW_PAD + index * _ROW_LINE)
                pdf.cell(_COLUMNS[0], _ROW_LINE, text)
            pdf.set_xy(_MARGIN + _COLUMNS[0], top + _ROW_PAD)
            numbers = (line.quantity, line.unit_amount, line.amount)
            for width, text in zip(_COLUMNS[1:], numbers, strict=True):
                self._fit(width, pdf_text(text, 30))
            pdf.line(_MARGIN, top + height, _MARGIN + sum(_COLUMNS), top + height)
            pdf.set_xy(_MARGIN, top + height)
        pdf.ln(4)

    def _totals(self) -> None:
        doc, pdf = self.document, self.pdf
        currency = pdf_text(doc.currency, 3)
        rows = [
            ("Subtotal", doc.subtotal, ""),
            (pdf_text(doc.discount_label, 40), doc.discount, ""),
            (pdf_text(doc.tax_label, 40), doc.tax, ""),
            (f"Total ({currency})", doc.total, "B"),
            ("Amount paid", doc.amount_paid, ""),
            (f"Amount due ({currency})", doc.amount_due, "B"),
        ]
        if pdf.will_page_break(len(rows) * 6 + 2):
            pdf.add_page()
        label_x = _MARGIN + sum(_COLUMNS) - 95
        for label, value, style in rows:
            pdf.set_x(label_x)
            pdf.set_font(_FONT, style, 10)
            pdf.cell(50, 6, label)
            self._fit(45, pdf_text(value, 30), style=style, size=10, height=6)
            pdf.ln(6)
        pdf.ln(4)

    def _notes(self) -> None:
        doc = self.document
        if doc.tax_note.strip():
            self._text(pdf_text(doc.tax_note), style="B")
            self.pdf.ln(2)
        if doc.memo.strip():
            self._text(pdf_text(doc.memo, _MAX_MEMO, keep_newlines=True))

    def _footers(self) -> None:
        pdf = self.pdf
        pdf.set_auto_page_break(False)
        pages = pdf.page
        label = f"{self.title} {pdf_text(self.document.number, 40)}"
        for number in range(1, pages + 1):
            pdf.page = number
            pdf.set_xy(_MARGIN, -14)
            pdf.set_font(_FONT, "", 8)
            pdf.set_text_color(*_GREY)
            pdf.cell(sum(_COLUMNS) / 2, 5, label)
            pdf.cell(sum(_COLUMNS) / 2, 5, f"Page {number} of {pages}", align="R")
        pdf.page = pages


def render_pdf(document: InvoiceDocument, *, title: str = "Invoice") -> bytes:
    """The document as PDF bytes; ``title="Credit note"`` for a credit note."""
    return _Renderer(document, title).render()
