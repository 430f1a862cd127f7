"""The Starlette application: app factory, GraphQL view, middleware, dashboard, document routes."""

from app.web.app import create_app

__all__ = ["create_app"]
