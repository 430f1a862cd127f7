"""Documents and helpers the usage tests share: metrics, metered plans, recording events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tests.support import GraphQLClient

METRIC_CREATE = """mutation($input: BillableMetricCreateInput!) {
  billableMetricCreate(input: $input) {
    billableMetric { id code name aggregation property filters { property values } active }
    errors { field message code }
  }
}"""
RECORD = """mutation($input: UsageEventInput!) {
  usageRecord(input: $input) {
    result { index idempotencyKey status eventId subscriptionId errors { field code message } }
    errors { field message code }
  }
}"""
RECORD_BATCH = """mutation($input: UsageRecordBatchInput!) {
  usageRecordBatch(input: $input) {
    results { index idempotencyKey status eventId subscriptionId errors { field code message } }
    acceptedCount duplicateCount refusedCount
    errors { field message code }
  }
}"""
CURRENT_USAGE = """query($id: ID!) {
  subscription(id: $id) {
    currentUsage {
      metric { code } quantity amount { amount currency } periodStart asOf
      tiers { tier firstUnit lastUnit units unitPrice flatAmount { amount } amount { amount } }
    }
  }
}"""
USAGE = """query($sub: ID!, $metric: String!, $from: DateTime!, $to: DateTime!,
               $groupBy: UsageGranularity!) {
  usage(subscriptionId: $sub, metric: $metric, from: $from, to: $to, groupBy: $groupBy) {
    subscriptionId total metric { code } buckets { start quantity events }
  }
}"""
INVOICE_LINES = """query($id: ID!) {
  invoice(id: $id) {
    id status total { amount } amountDue { amount } periodStart periodEnd
    lines { kind description quantity amount { amount } periodStart periodEnd discountable }
  }
}"""
SETTINGS = """mutation($input: OrganizationSettingsUpdateInput!) {
  organizationSettingsUpdate(input: $input) { organization { lateUsage } errors { code } }
}"""


async def metric(admin: GraphQLClient, **values: Any) -> dict[str, Any]:
    payload = (await admin.data(METRIC_CREATE, {"input": values}))["billableMetricCreate"]
    assert payload["errors"] == [], payload
    found: dict[str, Any] = payload["billableMetric"]
    return found


def event(key: str, metric_code: str, sub: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "idempotencyKey": key,
        "metric": metric_code,
        "subscriptionId": sub,
        "timestamp": at.isoformat(),
        **extra,
    }


async def record_batch(admin: GraphQLClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    payload: dict[str, Any] = (await admin.data(RECORD_BATCH, {"input": {"events": events}}))[
        "usageRecordBatch"
    ]
    return payload


async def lines_of(admin: GraphQLClient, invoice_id: str) -> dict[str, Any]:
    found: dict[str, Any] = (await admin.data(INVOICE_LINES, {"id": invoice_id}))["invoice"]
    return found
