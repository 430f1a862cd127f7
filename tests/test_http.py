"""The plain HTTP endpoints beside /graphql."""

from __future__ import annotations

import httpx

from tests.support import GraphQLClient


async def test_metrics_count_requests_by_route_template(
    http: httpx.AsyncClient, admin: GraphQLClient
) -> None:
    await admin.data("{ serviceInfo { name } }")
    await http.get("/health")
    response = await http.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'billing_http_requests_total{method="POST",route="/graphql",status="200"}' in text
    assert 'billing_http_request_seconds_bucket{le="0.005",method="GET",route="/health"}' in text


async def test_unknown_paths_are_404_and_unmatched(http: httpx.AsyncClient) -> None:
    response = await http.get("/invoices/../../etc/passwd")
    assert response.status_code == 404
    assert 'route="unmatched"' in (await http.get("/metrics")).text
