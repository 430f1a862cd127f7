"""Signatures of outgoing webhooks, and the receiver's check printed in docs/webhooks.md."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from app.outgoing_webhooks import sign, verify

DOCS = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"
BODY = b'{"id":"evt_1","type":"payment.succeeded"}'


def documented_verify() -> Any:
    """The ``verify`` of the docs' Signatures section, executed as printed."""
    section = DOCS.read_text(encoding="utf-8").split("## Signatures", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    body_lines = [line for line in code.group(1).splitlines() if line.startswith("    ")]
    assert len(body_lines) <= 5  # "verification in 5 lines of Python"
    scope: dict[str, Any] = {}
    exec(code.group(1), scope)  # noqa: S102 - our own documentation
    return scope["verify"]


@pytest.fixture(params=["library", "docs"])
def check(request: pytest.FixtureRequest) -> Any:
    return verify if request.param == "library" else documented_verify()


def test_a_signature_verifies_with_its_secret_only(check: Any) -> None:
    header = sign(["whsec_a"], int(time.time()), BODY)
    assert check("whsec_a", header, BODY)
    assert not check("whsec_b", header, BODY)


def test_a_changed_body_or_timestamp_fails(check: Any) -> None:
    now = int(time.time())
    header = sign(["whsec_a"], now, BODY)
    assert not check("whsec_a", header, BODY + b" ")
    forged = header.replace(f"t={now}", f"t={now + 1}")
    assert not check("whsec_a", forged, BODY)


def test_an_old_signature_is_refused(check: Any) -> None:
    header = sign(["whsec_a"], int(time.time()) - 301, BODY)
    assert not check("whsec_a", header, BODY)


def test_during_a_rotation_either_secret_verifies(check: Any) -> None:
    header = sign(["whsec_new", "whsec_old"], int(time.time()), BODY)
    assert header.count("v1=") == 2
    assert check("whsec_new", header, BODY)
    assert check("whsec_old", header, BODY)
    assert not check("whsec_other", header, BODY)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=x,v1=abc", "t=1,t=2,v1=abc", "garbage"])
def test_malformed_headers_fail(header: str) -> None:
    assert not verify("whsec_a", header, BODY)
    assert not documented_verify()("whsec_a", header, BODY)
