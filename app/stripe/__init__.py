"""The Stripe integration: the gateway (the only code that talks to Stripe), the local emulator
and the leases of the objects mirrored from Stripe."""

from app.stripe.emulator import EMULATOR_API_KEY, StripeEmulator
from app.stripe.gateway import (
    CardDeclined,
    ProviderRefused,
    StripeGateway,
    StripeIntent,
    StripeProduct,
    StripeRefund,
)
from app.stripe.mirror import Held, MirrorLeases

__all__ = [
    "EMULATOR_API_KEY",
    "CardDeclined",
    "Held",
    "MirrorLeases",
    "ProviderRefused",
    "StripeEmulator",
    "StripeGateway",
    "StripeIntent",
    "StripeProduct",
    "StripeRefund",
]
