"""The process-wide services, built once by the lifespan and shared by every request."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.catalog import CouponService, PlanService, TaxRateService
from app.core.clock import Clock
from app.core.idempotency import IdempotencyKeys
from app.core.pubsub import EventBroker
from app.core.settings import Settings, SettingsError
from app.customers import CreditBalances, CustomerService
from app.entitlements import EntitlementService
from app.identity import ApiKeys, AuditLog, Authenticator, OidcVerifier
from app.invoicing import CreditNoteService, InvoiceBilling, InvoiceService, InvoiceSettingsService
from app.ledger import Ledger
from app.live import LiveFeeds
from app.organizations import OrganizationService
from app.outgoing_webhooks import (
    DeliveryPolicy,
    WebhookEndpoints,
    WebhookRetention,
    WebhookSender,
)
from app.payments import PaymentService, RefundService, StripeWebhooks
from app.reconciliation import Reconciler, ReconcileReport
from app.statistics import StatisticsService
from app.stripe import StripeGateway
from app.subscriptions import (
    CheckoutQuotes,
    DunningPolicy,
    InvoicedBilling,
    Status,
    SubscriptionService,
)
from app.throttling import Budget, ConnectionSlots, Throttle
from app.usage import MetricService, UsageIngestion, UsageQueries, UsageRating
from db.connection import Database

__all__ = ["Services", "require_backends"]


def require_backends(settings: Settings) -> tuple[str, str]:
    """The database URL and Stripe key, which must be set by now (`billing serve` and
    `billing worker` start embedded ones when they are not configured)."""
    if not settings.database_url:
        raise SettingsError(
            "DATABASE_URL is not set; `billing serve` starts an embedded PostgreSQL when it is not."
        )
    if not settings.stripe_api_key:
        raise SettingsError(
            "STRIPE_API_KEY is not set; `billing serve` starts a Stripe emulator when it is not."
        )
    return settings.database_url, settings.stripe_api_key


@dataclass
class Services:
    settings: Settings
    db: Database
    stripe: StripeGateway
    events: EventBroker
    plans: PlanService
    customers: CustomerService
    idempotency: IdempotencyKeys
    organizations: OrganizationService
    payments: PaymentService
    refunds: RefundService
    tax_rates: TaxRateService
    coupons: CouponService
    balances: CreditBalances
    invoice_settings: InvoiceSettingsService
    invoices: InvoiceService
    credit_notes: CreditNoteService
    invoice_billing: InvoiceBilling
    clock: Clock
    subscriptions: SubscriptionService
    statistics: StatisticsService
    live: LiveFeeds
    webhooks: StripeWebhooks
    ledger: Ledger
    throttle: Throttle
    connections: ConnectionSlots
    metrics: MetricService
    usage: UsageIngestion
    usage_rating: UsageRating
    usage_queries: UsageQueries
    entitlements: EntitlementService
    checkout: CheckoutQuotes
    identity: Authenticator
    audit: AuditLog
    webhook_endpoints: WebhookEndpoints
    webhook_sender: WebhookSender
    webhook_retention: WebhookRetention
    reconciler: Reconciler

    async def housekeeping(
        self, *, org: str | None = None, older_than: timedelta = timedelta(minutes=2)
    ) -> int:
        """The worker's periodic chores: purge idempotency keys past their retention, and
        finish what requests that died (or got no answer from Stripe) left half done when no
        one retried them within ``older_than``: invoice charges
        (``InvoiceBilling.resume_abandoned``), payments marked in flight
        (``PaymentService.resume_interrupted``), refunds not sent
        (``RefundService.send_unsent``); write ``subscription.trial_will_end`` for trials
        ending within 3 days; and delete webhook events past their retention. Returns how many
        records they handled."""
        handled = 0
        if org is None:
            handled += await self.idempotency.purge_expired()
            handled += await self.webhook_retention.purge()
        handled += await self.invoice_billing.resume_abandoned(older_than=older_than, org=org)
        handled += await self.payments.resume_interrupted(older_than=older_than, org=org)
        handled += await self.payments.cancel_orphans(older_than=older_than, org=org)
        handled += await self.subscriptions.announce_trials_ending(org=org)
        return handled + await self.refunds.send_unsent(older_than=older_than, org=org)

    async def reconcile(
        self, *, org: str | None = None, settle: timedelta | None = None
    ) -> ReconcileReport:
        """Compare recent payments and refunds with Stripe and record what Stripe says
        (``billing reconcile``, and the worker every RECONCILE_EVERY_SECONDS); then finish the
        invoice charges dead requests left, which settles the subscriptions they bill."""
        report = await self.reconciler.run(org=org, settle=settle)
        older = timedelta(minutes=2) if settle is None else settle
        await self.invoice_billing.resume_abandoned(older_than=older, org=org)
        return report

    async def _reconcile_count(self) -> int:
        return len((await self.reconcile()).repairs)

    def worker_options(self) -> dict[str, Any]:
        """What a BillingWorker gets from the services and settings (``billing worker`` and
        ``billing serve --with-worker`` build it the same way)."""
        return {
            "idle_seconds": self.settings.worker_idle_seconds,
            "housekeeping": self.housekeeping,
            "deliveries": self.webhook_sender.deliver_due,
            "reconcile": self._reconcile_count,
            "reconcile_seconds": self.settings.reconcile_every_seconds,
        }

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings) -> AsyncIterator[Services]:
        """Connect the database pool, the Stripe client and the event listener, build the
        services, and close them all on exit (the app's lifespan and the worker use this)."""
        database_url, stripe_key = require_backends(settings)
        db = Database(database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        await db.connect()
        stripe = StripeGateway(
            stripe_key,
            api_base=settings.stripe_api_base,
            max_network_retries=settings.stripe_max_network_retries,
            timeout_seconds=settings.stripe_timeout_seconds,
        )
        events = EventBroker(database_url)
        try:
            await events.start()
            services = cls.build(settings, db, stripe, events)
            try:
                async with (
                    services.connections.heartbeat(),
                    services.identity.api_keys.running(),
                ):
                    yield services
            finally:
                await services.identity.oidc.close()
                await services.webhook_sender.close()
        finally:
            await events.stop()
            await stripe.close()
            await db.disconnect()

    @classmethod
    def build(
        cls, settings: Settings, db: Database, stripe: StripeGateway, events: EventBroker
    ) -> Services:
        keys = IdempotencyKeys(db, lease=timedelta(seconds=settings.idempotency_lease_seconds))
        ledger = Ledger(db)
        organizations = OrganizationService(db)
        customers = CustomerService(db, stripe)
        tax_rates, coupons = TaxRateService(db), CouponService(db)
        balances, invoice_settings = CreditBalances(db), InvoiceSettingsService(db)
        payments = PaymentService(db, stripe, keys, customers=customers, ledger=ledger)
        invoices = InvoiceService(
            db,
            customers=customers,
            tax_rates=tax_rates,
            coupons=coupons,
            balances=balances,
            settings=invoice_settings,
            idempotency=keys,
            ledger=ledger,
        )
        plans = PlanService(db, stripe)
        refunds = RefundService(db, stripe, keys, organizations, ledger=ledger)
        invoice_billing = InvoiceBilling(db, invoices=invoices, payments=payments, idempotency=keys)
        clock = Clock(db, test_clocks=settings.test_clocks)
        metrics = MetricService(db)
        usage_rating = UsageRating(db, metrics)
        subscriptions = SubscriptionService(
            db,
            clock=clock,
            plans=plans,
            billing=InvoicedBilling(invoice_billing),
            invoices=invoices,
            keys=keys,
            dunning=DunningPolicy(
                retry_days=settings.dunning_retry_days,
                final=Status(settings.dunning_final_state),
            ),
            lease=timedelta(seconds=settings.worker_lease_seconds),
            organizations=organizations,
            concurrency=settings.worker_concurrency,
            usage=usage_rating,
        )

        async def customer_by_reference(org: str, reference: str) -> str | None:
            found, _ = await customers.read.page(
                org, {"external_ref": reference}, first=1, after=None
            )
            return found[0].id if found else None

        identity = Authenticator(
            settings,
            ApiKeys(
                db,
                events,
                mode="live" if settings.stripe_mode == "live" else "test",
                enabled=settings.api_keys,
                cache_seconds=settings.api_key_cache_seconds,
            ),
            OidcVerifier(
                settings.oidc_issuers,
                resolve_customer=customer_by_reference,
                cache_seconds=settings.oidc_jwks_cache_seconds,
                max_stale_seconds=settings.oidc_jwks_max_stale_seconds,
                min_refetch_seconds=settings.oidc_jwks_min_refetch_seconds,
            ),
        )
        production = settings.production
        return cls(
            identity=identity,
            audit=AuditLog(db),
            webhook_endpoints=WebhookEndpoints(db, production=production),
            webhook_sender=WebhookSender(
                db,
                production=production,
                policy=DeliveryPolicy(
                    retry_base=timedelta(seconds=settings.webhook_retry_base_seconds),
                    max_age=timedelta(seconds=settings.webhook_max_age_seconds),
                    lease=timedelta(seconds=settings.webhook_lease_seconds),
                    timeout_seconds=settings.webhook_timeout_seconds,
                ),
            ),
            webhook_retention=WebhookRetention(db, days=settings.webhook_retention_days),
            reconciler=Reconciler(
                db,
                payments=payments,
                refunds=refunds,
                window=timedelta(hours=settings.reconcile_window_hours),
            ),
            settings=settings,
            db=db,
            stripe=stripe,
            events=events,
            plans=plans,
            customers=customers,
            idempotency=keys,
            organizations=organizations,
            payments=payments,
            refunds=refunds,
            tax_rates=tax_rates,
            coupons=coupons,
            balances=balances,
            invoice_settings=invoice_settings,
            invoices=invoices,
            credit_notes=CreditNoteService(
                db,
                customers=customers,
                settings=invoice_settings,
                idempotency=keys,
                ledger=ledger,
                refunds=refunds,
            ),
            invoice_billing=invoice_billing,
            clock=clock,
            subscriptions=subscriptions,
            statistics=StatisticsService(db),
            live=LiveFeeds(events),
            webhooks=StripeWebhooks(
                db, secret=settings.stripe_webhook_secret, payments=payments, refunds=refunds
            ),
            ledger=ledger,
            throttle=Throttle(
                db,
                authenticated=Budget(settings.rate_limit_points, settings.rate_limit_restore_rate),
                anonymous=Budget(
                    settings.rate_limit_anonymous_points,
                    settings.rate_limit_anonymous_restore_rate,
                ),
            ),
            connections=ConnectionSlots(db, per_token=settings.ws_max_connections_per_token),
            metrics=metrics,
            usage=UsageIngestion(db, clock=clock, metrics=metrics, organizations=organizations),
            usage_rating=usage_rating,
            usage_queries=UsageQueries(db),
            checkout=CheckoutQuotes(subscriptions, customers, coupons),
            entitlements=EntitlementService(
                clock=clock, plans=plans, subscriptions=subscriptions, usage=usage_rating
            ),
        )
