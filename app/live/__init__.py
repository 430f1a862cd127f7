"""Live GraphQL subscriptions fed by the events of app.core.pubsub."""

from app.live.feeds import LiveFeeds

__all__ = ["LiveFeeds"]
