"""A local OpenID Connect issuer on loopback: a discovery document and a JWKS the test
controls (its keys, an outage), and tokens signed with keys made in the test."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["Issuer", "SigningKey", "local_issuer"]


@dataclass
class SigningKey:
    kid: str
    algorithm: str  # RS256 or ES256
    private: Any

    @classmethod
    def make(cls, algorithm: str = "RS256") -> SigningKey:
        private: Any = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        return cls(f"k-{uuid.uuid4().hex[:8]}", algorithm, private)

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        text = (
            jwt.algorithms.RSAAlgorithm.to_jwk(public)
            if self.algorithm == "RS256"
            else jwt.algorithms.ECAlgorithm.to_jwk(public)
        )
        jwk: dict[str, Any] = json.loads(text)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}


@dataclass
class Issuer:
    url: str
    keys: list[SigningKey] = field(default_factory=list)
    down: bool = False  # answer 503 to everything
    hits: Counter[str] = field(default_factory=Counter)

    def token(
        self,
        key: SigningKey | None = None,
        *,
        lifetime: int = 300,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        body = {"iss": self.url, "sub": "user-1", "aud": "billing-api", "iat": now}
        body["exp"] = now + lifetime
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(
            body, key.private, algorithm=key.algorithm, headers={"kid": key.kid, **(headers or {})}
        )


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer.hits[self.path] += 1
            if issuer.down:
                self._send(503, {"error": "down"})
            elif self.path == "/.well-known/openid-configuration":
                self._send(200, {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"})
            elif self.path == "/jwks":
                self._send(200, {"keys": [k.jwk() for k in issuer.keys]})
            else:
                self._send(404, {"error": "not found"})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def local_issuer(*keys: SigningKey) -> Iterator[Issuer]:
    """An issuer at http://127.0.0.1:<port> serving ``keys`` (more can be set later)."""
    issuer = Issuer(url="", keys=list(keys))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(issuer))
    issuer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
