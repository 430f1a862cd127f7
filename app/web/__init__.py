"""The Starlette application: app factory, GraphQL view, middleware, dashboard, document routes."""

from app.web.app import create_app
from app.web.request_log import JsonFormatter

__all__ = ["JsonFormatter", "create_app"]
