"""Which URLs an endpoint may use, and the SSRF check after DNS resolution."""

from __future__ import annotations

import pytest

from app.outgoing_webhooks import Refused, check_url, resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://[::1]:9000/x?y=1",
        "https://example.com/hooks",
        "https://10.0.0.5/internal",  # outside production only
    ],
)
def test_development_allows_https_and_http_to_loopback(url: str) -> None:
    assert check_url(url, production=False).url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hooks",  # http beyond loopback
        "ftp://example.com/x",
        "https://user:pw@example.com/x",
        "https://example.com/x#frag",
        "https:///nohost",
        "https://example.com:99999/x",
        "https://" + "a" * 2100 + ".com/",
    ],
)
def test_development_refuses(url: str) -> None:
    with pytest.raises(Refused):
        check_url(url, production=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hooks",
        "http://127.0.0.1/hooks",
        "https://127.0.0.1/hooks",
        "https://127.1.2.3/hooks",
        "https://10.0.0.5/",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://169.254.169.254/latest/meta-data/",
        "https://100.64.0.1/",  # carrier-grade NAT: not global
        "https://0.0.0.0/",
        "https://[::1]/",
        "https://[fe80::1]/",
        "https://[fd00::1]/",
        "https://[::ffff:10.0.0.1]/",
        "https://localhost/",
        "https://224.0.0.1/",
    ],
)
def test_production_refuses_internal_addresses_by_form(url: str) -> None:
    with pytest.raises(Refused):
        check_url(url, production=True)


def test_production_accepts_a_public_address() -> None:
    target = check_url("https://93.184.215.14:8443/hooks?x=1", production=True)
    assert (target.host, target.port, target.path) == ("93.184.215.14", 8443, "/hooks?x=1")


async def test_resolution_is_checked_in_production() -> None:
    # "localhost" passes no form check in production, but a name that resolves to loopback is
    # the rebinding case: resolve refuses it whatever the name.
    target = check_url("http://localhost:1/x", production=False)
    with pytest.raises(Refused, match="resolves to a private"):
        await resolve(target, production=True)
    assert await resolve(target, production=False) in ("127.0.0.1", "::1")


async def test_an_unresolvable_name_is_refused() -> None:
    target = check_url("https://no-such-host.invalid/x", production=False)
    with pytest.raises(Refused, match="does not resolve"):
        await resolve(target, production=True)
