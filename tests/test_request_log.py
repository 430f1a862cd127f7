"""One log line per request with its request id, operation and organization; JSON in
production; the id is echoed, taken from the caller only when it is a plain token."""

from __future__ import annotations

import json
import logging
import sys

import httpx
import pytest

from app.web.request_log import JsonFormatter
from tests.support import GraphQLClient


def _lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "billing.request"]


async def test_a_graphql_request_is_one_line_with_its_operation_and_organization(
    admin: GraphQLClient, http: httpx.AsyncClient, org: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="billing.request")
    response = await http.post(
        "/graphql",
        json={"query": "query Plans { plans(first: 1) { totalCount } }", "operationName": "Plans"},
        headers={"authorization": f"Bearer {admin.bearer}", "x-request-id": "trace-42"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-42"
    (line,) = _lines(caplog)
    fields = vars(line)
    assert (fields["route"], fields["status"], fields["operation"], fields["org"]) == (
        "/graphql",
        200,
        "Plans",
        org,
    )
    assert fields["request_id"] == "trace-42"
    assert "plans(first" not in line.getMessage()  # never the document or its variables


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 129, "new\nline"])
async def test_a_missing_or_unsafe_request_id_is_replaced(
    http: httpx.AsyncClient, given: str | None
) -> None:
    headers = {} if given is None else {"x-request-id": given.replace("\n", "%0A")}
    response = await http.get("/health", headers=headers)
    made = response.headers["x-request-id"]
    assert made != given
    assert len(made) == 32
    assert int(made, 16) >= 0


def test_json_lines_carry_the_extra_fields_and_no_exception_text() -> None:
    record = logging.LogRecord("billing.request", logging.INFO, "", 0, "GET /x 200", None, None)
    record.request_id = "abc"
    try:
        raise ValueError("secret detail")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "GET /x 200"
    assert entry["request_id"] == "abc"
    assert entry["level"] == "info"
    assert entry["error"] == "ValueError"
    assert "secret detail" not in json.dumps(entry)
