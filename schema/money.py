"""Money: integer minor units and an ISO 4217 currency, never a float."""

from __future__ import annotations

import strawberry

from schema.scalars import BigInt

__all__ = ["Money", "MoneyInput"]


@strawberry.type(
    description=(
        "An amount of money. `amount` is in the currency's minor units (ISO 4217 exponent: "
        "USD 2 → cents, JPY 0, KWD 3); `decimal` is the same amount as a decimal string."
    )
)
class Money:
    amount: BigInt = strawberry.field(description="Amount in minor units, e.g. 1999 for $19.99.")
    currency: str = strawberry.field(description="ISO 4217 code, upper case, e.g. `USD`.")
    decimal: str = strawberry.field(
        description="The amount as a decimal string with the currency's exponent, e.g. `19.99`."
    )


@strawberry.input(description="An amount in minor units and an ISO 4217 currency code.")
class MoneyInput:
    amount: BigInt = strawberry.field(
        description="Amount in minor units (1999 = 19.99 USD; 500 = 500 JPY)."
    )
    currency: str = strawberry.field(
        description="ISO 4217 code (USD, EUR, GBP, JPY, CNY, KWD, …); unknown codes are refused."
    )
