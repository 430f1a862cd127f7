"""Tax rates through the API: exclusive and inclusive rates chosen by the billing address,
regions, reverse charge, exemption, archiving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support import GraphQLClient

CREATE_RATE = """mutation($input: TaxRateCreateInput!) {
  taxRateCreate(input: $input) {
    taxRate { id name percentage inclusive country region active }
    errors { field code message }
  }
}"""
ARCHIVE_RATE = """mutation($id: ID!) {
  taxRateArchive(input: {id: $id}) { taxRate { id active archivedAt } errors { field code } }
}"""
RATES = """query($filter: TaxRateFilter) {
  taxRates(filter: $filter) { totalCount edges { node { id country region active } } }
}"""


async def rate(admin: GraphQLClient, **fields: Any) -> dict[str, Any]:
    payload = (await admin.data(CREATE_RATE, {"input": fields}))["taxRateCreate"]
    assert payload["errors"] == [], payload["errors"]
    created: dict[str, Any] = payload["taxRate"]
    return created


def figures(invoice: dict[str, Any]) -> dict[str, Any]:
    return {
        "subtotal": invoice["subtotal"]["amount"],
        "tax": invoice["taxTotal"]["amount"],
        "total": invoice["total"]["amount"],
        "due": invoice["amountDue"]["amount"],
        "lines": [
            (line["kind"], line["description"], line["amount"]["amount"], line["informational"])
            for line in invoice["lines"]
        ],
    }


async def test_exclusive_tax_is_added_and_rounded_once(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await rate(admin, name="VAT", percentage="20", country="fr")
    customer = await customer_factory(address={"country": "FR", "city": "Paris"})
    invoice = await invoice_factory(
        customer=customer,
        currency="EUR",
        lines=[{"description": "Plan", "unitAmount": 1999}],
        finalize=True,
    )
    assert figures(invoice) == {
        "subtotal": "1999",
        "tax": "400",
        "total": "2399",
        "due": "2399",
        "lines": [("ONE_OFF", "Plan", "1999", False), ("TAX", "VAT 20%", "400", False)],
    }
    assert invoice["tax"] == {
        "name": "VAT",
        "percentage": "20",
        "inclusive": False,
        "reverseCharge": False,
    }
    assert invoice["lines"][1]["taxRate"] == 200000


async def test_inclusive_tax_is_extracted_not_added(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await rate(admin, name="MwSt", percentage="19", country="DE", inclusive=True)
    customer = await customer_factory(address={"country": "DE"})
    invoice = await invoice_factory(
        customer=customer,
        currency="EUR",
        lines=[
            {"description": "Plan", "unitAmount": 11900},
            {"description": "Untaxed fee", "unitAmount": 100, "taxable": False},
        ],
        finalize=True,
    )
    assert figures(invoice) == {
        "subtotal": "12000",
        "tax": "1900",
        "total": "12000",
        "due": "12000",
        "lines": [
            ("ONE_OFF", "Plan", "11900", False),
            ("ONE_OFF", "Untaxed fee", "100", False),
            ("TAX", "MwSt 19% included", "1900", True),
        ],
    }
    assert invoice["taxInclusive"] is True
    assert invoice["taxableAmount"]["amount"] == "10000"


async def test_the_region_rate_wins_over_the_country_rate(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await rate(admin, name="Sales tax", percentage="5", country="US")
    await rate(admin, name="CA sales tax", percentage="8.875", country="US", region="ca")
    california = await customer_factory(address={"country": "US", "region": "Ca"})
    texas = await customer_factory(address={"country": "US", "region": "TX"})
    nowhere = await customer_factory()
    lines = [{"description": "Widget", "unitAmount": 10000}]
    assert (await invoice_factory(customer=california, lines=lines))["taxTotal"]["amount"] == "888"
    assert (await invoice_factory(customer=texas, lines=lines))["taxTotal"]["amount"] == "500"
    untaxed = await invoice_factory(customer=nowhere, lines=lines)
    assert (untaxed["taxTotal"]["amount"], untaxed["tax"], len(untaxed["lines"])) == ("0", None, 1)


async def test_reverse_charge_needs_a_tax_id_and_prints_a_zero_line(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await rate(admin, name="VAT", percentage="21", country="NL")
    business = await customer_factory(
        address={"country": "NL"},
        taxExempt="REVERSE",
        taxIds=[{"type": "eu_vat", "value": "NL123456789B01"}],
    )
    invoice = await invoice_factory(
        customer=business,
        currency="EUR",
        lines=[{"description": "Licence", "unitAmount": 50000}],
        finalize=True,
    )
    assert figures(invoice) == {
        "subtotal": "50000",
        "tax": "0",
        "total": "50000",
        "due": "50000",
        "lines": [
            ("ONE_OFF", "Licence", "50000", False),
            ("TAX", "Reverse charge (VAT)", "0", False),
        ],
    }
    assert invoice["tax"] == {
        "name": "VAT",
        "percentage": "0",
        "inclusive": False,
        "reverseCharge": True,
    }
    without_id = await customer_factory(address={"country": "NL"}, taxExempt="REVERSE")
    draft = await invoice_factory(customer=without_id, currency="EUR")
    refused = (
        await admin.data(
            "mutation($id: ID!) { invoiceFinalize(input: {invoiceId: $id}) "
            "{ invoice { id } errors { field code message } } }",
            {"id": draft["id"]},
        )
    )["invoiceFinalize"]
    assert [e["code"] for e in refused["errors"]] == ["INVALID_STATE"]
    assert "no tax id" in refused["errors"][0]["message"]


async def test_exempt_customers_pay_no_tax(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    await rate(admin, name="GST", percentage="10", country="AU")
    charity = await customer_factory(address={"country": "AU"}, taxExempt="EXEMPT")
    invoice = await invoice_factory(customer=charity, currency="AUD", finalize=True)
    assert (invoice["taxTotal"]["amount"], invoice["tax"], invoice["total"]["amount"]) == (
        "0",
        None,
        "1000",
    )


async def test_rates_are_validated_unique_and_archivable(
    admin: GraphQLClient, customer_factory: Callable[..., Any], invoice_factory: Callable[..., Any]
) -> None:
    vat = await rate(admin, name="VAT", percentage="20", country="GB")
    duplicate = (
        await admin.data(
            CREATE_RATE, {"input": {"name": "VAT", "percentage": "5", "country": "GB"}}
        )
    )["taxRateCreate"]
    assert [(e["field"], e["code"]) for e in duplicate["errors"]] == [
        (["input", "country"], "DUPLICATE")
    ]
    invalid = (
        await admin.data(
            CREATE_RATE, {"input": {"name": "", "percentage": "8.12345", "country": "GBR"}}
        )
    )["taxRateCreate"]
    assert sorted((e["field"][1], e["code"]) for e in invalid["errors"]) == [
        ("country", "INVALID"),
        ("name", "REQUIRED"),
        ("percentage", "INVALID"),
    ]
    huge = (
        await admin.data(
            CREATE_RATE, {"input": {"name": "X", "percentage": "1e999999999", "country": "DE"}}
        )
    )["taxRateCreate"]
    assert [(e["field"], e["code"]) for e in huge["errors"]] == [
        (["input", "percentage"], "INVALID")
    ]
    archived = (await admin.data(ARCHIVE_RATE, {"id": vat["id"]}))["taxRateArchive"]
    assert archived["errors"] == []
    assert archived["taxRate"]["active"] is False
    again = (await admin.data(ARCHIVE_RATE, {"id": vat["id"]}))["taxRateArchive"]
    assert [e["code"] for e in again["errors"]] == ["INVALID_STATE"]
    customer = await customer_factory(address={"country": "GB"})
    assert (await invoice_factory(customer=customer, currency="GBP"))["tax"] is None
    await rate(admin, name="VAT", percentage="17.5", country="GB")
    listing = (await admin.data(RATES, {"filter": {"country": "gb"}}))["taxRates"]
    assert [e["node"]["active"] for e in listing["edges"]] == [False, True]
