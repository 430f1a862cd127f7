"""Subscriptions: the model, lifecycle service, periods, proration, billing, value of service."""

from app.subscriptions.billing import InvoicedBilling
from app.subscriptions.checkout import CheckoutItem, CheckoutQuote, CheckoutQuotes, QuotedItem
from app.subscriptions.loaders import SubscriptionLoaders
from app.subscriptions.model import Status, Subscription
from app.subscriptions.previews import ChangePreview, InvoicePreview
from app.subscriptions.service import DunningPolicy, SubscriptionDraft, SubscriptionService

__all__ = [
    "ChangePreview",
    "CheckoutItem",
    "CheckoutQuote",
    "CheckoutQuotes",
    "DunningPolicy",
    "InvoicePreview",
    "InvoicedBilling",
    "QuotedItem",
    "Status",
    "Subscription",
    "SubscriptionDraft",
    "SubscriptionLoaders",
    "SubscriptionService",
]
