"""The process-wide services, built once by the lifespan and shared by every request."""

from __future__ import annotations

from dataclasses import dataclass

from app.customers import CustomerService
from app.plans import PlanService
from app.pubsub import EventBroker
from app.settings import Settings
from app.stripe_gateway import StripeGateway
from db.connection import Database

__all__ = ["Services"]


@dataclass
class Services:
    settings: Settings
    db: Database
    stripe: StripeGateway
    events: EventBroker
    plans: PlanService
    customers: CustomerService

    @classmethod
    def build(
        cls, settings: Settings, db: Database, stripe: StripeGateway, events: EventBroker
    ) -> Services:
        return cls(
            settings=settings,
            db=db,
            stripe=stripe,
            events=events,
            plans=PlanService(db, stripe),
            customers=CustomerService(db, stripe),
        )
