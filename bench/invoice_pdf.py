"""Render time of invoice PDFs: a 500-line invoice against a 1-line baseline, same run.

python bench/invoice_pdf.py [--runs N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from datetime import date

from pypdf import PdfReader

from app.invoicing.pdf import DocumentLine, InvoiceDocument, render_pdf


def _document(line_count: int) -> InvoiceDocument:
    lines = [
        DocumentLine(
            f"API calls, project {index:04d} (2025-01-01 to 2025-02-01)", "12", "0.25", "3.00"
        )
        for index in range(line_count)
    ]
    total = f"{3 * line_count}.00"
    return InvoiceDocument(
        organization_name="Acme Software Ltd",
        organization_address=("1 Market Street", "London EC1 1AA"),
        customer_name="Globex GmbH",
        customer_email="billing@globex.example",
        customer_address=("Hauptstrasse 5", "10115 Berlin"),
        number="INV-2025-0042",
        issue_date=date(2025, 1, 31),
        due_date=date(2025, 2, 14),
        currency="EUR",
        lines=lines,
        subtotal=total,
        discount="0.00",
        tax="0.00",
        total=total,
        amount_paid="0.00",
        amount_due=total,
        tax_note="Reverse charge",
    )


def _measure(document: InvoiceDocument, runs: int) -> tuple[float, float, int, int]:
    render_pdf(document)  # warm-up: imports, font metrics, caches
    timings = []
    pdf = b""
    for _ in range(runs):
        start = time.perf_counter()
        pdf = render_pdf(document)
        timings.append(time.perf_counter() - start)
    pages = len(PdfReader(io.BytesIO(pdf)).pages)
    return statistics.median(timings), min(timings), pages, len(pdf)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()

    results = {count: _measure(_document(count), args.runs) for count in (1, 500)}
    print(f"{'lines':>6} {'pages':>6} {'bytes':>8} {'median ms':>10} {'min ms':>8}")
    for count, (median, fastest, pages, size) in results.items():
        print(f"{count:>6} {pages:>6} {size:>8} {median * 1000:>10.1f} {fastest * 1000:>8.1f}")
    ratio = results[500][0] / results[1][0]
    print(f"ratio 500-line / 1-line (median): {ratio:.1f}x  ({args.runs} runs each)")


if __name__ == "__main__":
    main()
