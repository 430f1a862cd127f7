"""GraphiQL that works offline: strawberry's page, with its seven CDN assets served from here.

strawberry's GraphiQL page loads React, GraphiQL, its explorer plugin and js-cookie from
unpkg.com; with no network it never leaves "Loading...". The same files, byte for byte, are
shipped in ``app/web/static/graphiql`` (``NOTICE.md`` there lists versions and licenses), and
the page is rewritten to load them from ``/graphiql/assets/<file>``. The page keeps its
``integrity`` attributes, so the browser itself checks each file is the one strawberry pinned.
A CDN URL in the page that ``ASSETS`` does not know raises at start (and in the test), so a
strawberry upgrade that changes them cannot silently go back online.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from strawberry.http.ides import get_graphql_ide_html

__all__ = ["ASSETS", "graphiql_asset", "graphiql_policy", "offline_graphiql_html"]

ASSET_PATH = "/graphiql/assets/"

# The page's CDN URL -> the file shipped in static/graphiql.
ASSETS = {
    "https://unpkg.com/react@18.2.0/umd/react.production.min.js": "react.production.min.js",
    "https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js": (
        "react-dom.production.min.js"
    ),
    "https://unpkg.com/js-cookie@3.0.5/dist/js.cookie.min.js": "js.cookie.min.js",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.css": "graphiql.min.css",
    "https://unpkg.com/graphiql@3.8.3/graphiql.min.js": "graphiql.min.js",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/style.css": "plugin-explorer.css",
    "https://unpkg.com/@graphiql/plugin-explorer@1.0.2/dist/index.umd.js": (
        "plugin-explorer.umd.js"
    ),
}

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_URL = re.compile(r"""https?://[^"'\s)]+""")


class UnknownAsset(RuntimeError):
    """strawberry's page names a remote URL this module does not ship."""


@functools.cache
def offline_graphiql_html() -> str:
    """strawberry's GraphiQL page with every remote asset pointed at this server."""
    html = get_graphql_ide_html(graphql_ide="graphiql")
    for url in _URL.findall(html):
        if url not in ASSETS and not url.startswith(("http://www.w3.org/", "https://www.w3.org/")):
            raise UnknownAsset(
                f"strawberry's GraphiQL page loads {url}; ship it in app/web/static/graphiql "
                "and list it in app/web/graphiql.py ASSETS"
            )
    for url, name in ASSETS.items():
        html = html.replace(url, ASSET_PATH + name)
    return html


@functools.cache
def graphiql_policy() -> str:
    """The page's Content-Security-Policy: scripts only from this server or the page's own
    inline script (by hash), no other host for anything; styles may be inline (the editor sets
    them at run time); requests only to this server (HTTP and WebSocket)."""
    inline = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(offline_graphiql_html())
    ]
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'self' {' '.join(inline)}",
            "style-src 'self' 'unsafe-inline'",
            "font-src 'self' data:",
            "img-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


@functools.cache
def _asset(name: str) -> bytes | None:
    if name not in ASSETS.values():
        return None
    return resources.files("app.web").joinpath(f"static/graphiql/{name}").read_bytes()


async def graphiql_asset(request: Request) -> Response:
    """One of the shipped files; they never change for a given name (versions are pinned), so
    browsers may keep them for a day."""
    name = request.path_params["name"]
    body = _asset(name)
    if body is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    return Response(
        body,
        media_type=_MEDIA[name[name.rfind(".") :]],
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
