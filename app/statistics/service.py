"""Statistics answered from the rollups (app/rollups/recorder.py keeps them): revenue per
currency and local period, subscription figures at any instant with MRR movements over a range,
the overview behind the `stats` query, and the snapshot the live dashboard shows.

Definitions are in docs/statistics.md. In short: money is per currency, never summed across
currencies, in integer minor units; averages and ARPU are rounded half-even to a minor unit;
revenue is counted when it happened by the organization's clock (a payment when it succeeded, a
refund when it succeeded, a declined charge attempt when it was declined), and ranges are
``[from, to)``.

The figures answered and the arithmetic that builds them from rollup rows are in ``figures.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from app.core.errors import DomainError
from app.core.money import Money, normalize_currency
from app.rollups import (
    StatsInterval,
    bucket_ceil,
    bucket_floor,
    check_instant,
    check_range,
    periods,
    utc,
    zone,
)
from app.statistics.figures import (
    CurrencyOverview,
    CurrencyRevenue,
    CurrencySnapshot,
    CurrencySubscriptionStats,
    DayRevenue,
    MrrMovements,
    Overview,
    PlanStats,
    RevenueFigures,
    RevenueSnapshot,
    StatusCounts,
    SubscriptionStats,
    TierStats,
    _event_counts,
    _event_movement,
    _figures,
    _mrr_by_currency,
    _subscription_stats,
    _Sums,
    _today,
    _within,
)
from app.subscriptions import Status
from db.connection import Database
from db.repositories.statistics import (
    MOVEMENT_COLUMNS,
    REVENUE_COLUMNS,
    StatisticsRepository,
)

__all__ = [
    "CurrencyOverview",
    "CurrencyRevenue",
    "CurrencySnapshot",
    "CurrencySubscriptionStats",
    "DayRevenue",
    "MrrMovements",
    "Overview",
    "PlanStats",
    "RevenueFigures",
    "RevenueSnapshot",
    "StatisticsService",
    "StatsInterval",
    "StatusCounts",
    "SubscriptionStats",
    "TierStats",
]

_MICROSECOND = timedelta(microseconds=1)
_DEFAULT_SPAN = timedelta(days=30)
_SNAPSHOT_DAYS = 30


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _currency(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_currency(value)
    except DomainError as exc:
        raise exc.at(("currency",)) from None


class StatisticsService:
    def __init__(self, db: Database) -> None:
        self._repo = StatisticsRepository(db)

    # -- revenue --------------------------------------------------------------------------------

    async def revenue(
        self,
        org: str,
        *,
        start: datetime,
        end: datetime,
        interval: StatsInterval,
        currency: str | None,
        time_zone: str,
    ) -> list[CurrencyRevenue]:
        """Revenue per currency over ``[start, end)``, per local ``interval`` of ``time_zone``
        (every period meeting the range, empty ones included, the first and last clipped to
        it), and in total. A currency appears when it has any figure in the range, or when it
        is the one asked for."""
        tz = zone(time_zone)
        start, end = check_range(start, end)
        code = _currency(currency)
        spans = list(periods(start, end, interval, tz))
        sums = await self._revenue_sums(org, start, end, [span.start for span in spans], code)
        found: dict[str, list[_Sums]] = {}
        for (row_currency, index), numbers in sums.items():
            if row_currency not in found:
                found[row_currency] = [_Sums() for _ in spans]
            found[row_currency][index].add(numbers.numbers)
        if code is not None and code not in found:
            found[code] = [_Sums() for _ in spans]
        result = []
        for name in sorted(found):
            buckets = found[name]
            if name != code and not any(b.any() for b in buckets):
                continue
            total = _Sums()
            for bucket in buckets:
                total.add(bucket.numbers)
            result.append(
                CurrencyRevenue(
                    currency=name,
                    buckets=[
                        _figures(name, span.start.astimezone(tz), span.end.astimezone(tz), bucket)
                        for span, bucket in zip(spans, buckets, strict=True)
                    ],
                    total=_figures(name, start.astimezone(tz), end.astimezone(tz), total),
                )
            )
        return result

    async def _revenue_sums(
        self,
        org: str,
        start: datetime,
        end: datetime,
        bounds: Sequence[datetime],
        currency: str | None,
    ) -> dict[tuple[str, int], _Sums]:
        """Sums per currency and period (0-based index into ``bounds``, the periods' starts)."""
        inner = (bucket_ceil(start), bucket_floor(end))
        if inner[0] > inner[1]:  # inside one bucket: all of it is an edge
            inner = (end, end)
        rows = await self._repo.revenue_by_period(
            org, start=start, end=end, inner=inner, bounds=bounds, currency=currency
        )
        sums: dict[tuple[str, int], _Sums] = {}
        for row in rows:
            into = sums.setdefault((row["currency"], int(row["period"]) - 1), _Sums())
            into.add({name: row[name] for name in REVENUE_COLUMNS})
        usage = await self._repo.usage_billed_by_period(
            org, start=start, end=end, bounds=bounds, currency=currency
        )
        for row in usage:
            into = sums.setdefault((row["currency"], int(row["period"]) - 1), _Sums())
            into.add({"usage_billed": row["usage_billed"]})
        return sums

    async def overview(self, org: str, *, now: datetime, time_zone: str = "UTC") -> Overview:
        """The `stats` figures: all-time succeeded payments, subscriptions now, and today's and
        this month's revenue (local to ``time_zone``, by ``now``)."""
        tz = zone(time_zone)
        now = utc(now)
        today = now.astimezone(tz).date()
        month = today.replace(day=1)
        following = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        month_start = datetime.combine(month, time(0), tzinfo=tz).astimezone(UTC)
        month_end = datetime.combine(following, time(0), tzinfo=tz).astimezone(UTC)
        revenue = await self.revenue(
            org,
            start=month_start,
            end=month_end,
            interval=StatsInterval.DAY,
            currency=None,
            time_zone=tz.key,
        )
        totals = {row["currency"]: row for row in await self._repo.revenue_totals(org, None)}
        subscriptions = await self._repo.totals(org)
        mrr = _mrr_by_currency(subscriptions)
        by_status: dict[str, int] = {}
        for row in subscriptions:
            by_status[row["status"]] = by_status.get(row["status"], 0) + int(row["subscriptions"])
        names = sorted(
            {r.currency for r in revenue} | set(totals) | {c for c, m in mrr.items() if m}
        )
        by_currency = {r.currency: r for r in revenue}
        currencies = []
        for name in names:
            found = by_currency.get(name)
            day = (
                next((b for b in found.buckets if b.start <= now < b.end), None) if found else None
            )
            empty = _figures(name, month_start.astimezone(tz), month_end.astimezone(tz), _Sums())
            currencies.append(
                CurrencyOverview(
                    currency=name,
                    today=day or _today(name, now, tz),
                    this_month=found.total if found else empty,
                    payment_count=int(totals[name]["payments"]) if name in totals else 0,
                    mrr=Money(mrr.get(name, 0), name),
                )
            )
        return Overview(
            at=now,
            time_zone=tz.key,
            payment_count=sum(c.payment_count for c in currencies),
            failed_payments_today=sum(c.today.failed_payment_count for c in currencies),
            active_subscriptions=by_status.get(Status.ACTIVE.value, 0),
            trialing_subscriptions=by_status.get(Status.TRIALING.value, 0),
            currencies=currencies,
        )

    async def snapshot(self, org: str, *, currency: str | None, now: datetime) -> RevenueSnapshot:
        """The dashboard's figures per currency (UTC days): net today, this month and all
        time, MRR, today's succeeded payments, and the net of each of the last 30 days. With
        ``currency``, that currency only (zeros when it has no data)."""
        now = utc(now)
        code = _currency(currency)
        today = now.date()
        first = min(today - timedelta(days=_SNAPSHOT_DAYS - 1), today.replace(day=1))
        span = [first + timedelta(days=n) for n in range((today - first).days + 1)]
        by_index = await self._revenue_sums(
            org,
            _midnight(first),
            _midnight(today + timedelta(days=1)),
            [_midnight(d) for d in span],
            code,
        )
        sums = {(name, span[index]): found for (name, index), found in by_index.items()}
        totals = {row["currency"]: row for row in await self._repo.revenue_totals(org, code)}
        mrr = _mrr_by_currency(await self._repo.totals(org))
        names = {c for c, _ in sums} | set(totals) | {c for c, m in mrr.items() if m}
        if code is not None:
            names = {code}
        days = [today - timedelta(days=n) for n in range(_SNAPSHOT_DAYS - 1, -1, -1)]
        month = [today - timedelta(days=n) for n in range(today.day)]
        result = []
        for name in sorted(names):

            def net(day: date, name: str = name) -> int:
                found = sums.get((name, day))
                return found["gross"] - found["refunded"] if found else 0

            total = totals.get(name)
            today_sums = sums.get((name, today))
            result.append(
                CurrencySnapshot(
                    currency=name,
                    today=Money(net(today), name),
                    this_month=Money(sum(net(d) for d in month), name),
                    net_total=Money(
                        int(total["gross"]) - int(total["refunded"]) if total else 0, name
                    ),
                    mrr=Money(mrr.get(name, 0), name),
                    payments_today=today_sums["payments"] if today_sums else 0,
                    days=[DayRevenue(day, Money(net(day), name)) for day in days],
                )
            )
        return RevenueSnapshot(at=now, currencies=result)

    # -- subscriptions ---------------------------------------------------------------------------

    async def subscription_stats(
        self,
        org: str,
        *,
        at: datetime,
        start: datetime | None,
        end: datetime | None,
    ) -> SubscriptionStats:
        """Counts and MRR as of ``at`` (every change recorded at or before it), and MRR
        movements, churn and trial conversion over ``[start, end)`` (default: the 30 days
        up to and including ``at``)."""
        at = check_instant(at, ("at",))
        if end is None:
            end = at + _MICROSECOND
        if start is None:
            start = utc(end) - _DEFAULT_SPAN
        start, end = check_range(start, end)
        at_day, start_day = at.date(), start.date()
        full_first = (start - _MICROSECOND).date() + timedelta(days=1)  # first whole day
        full_end = end.date()  # the whole days end where end's day starts
        if full_first >= full_end:
            full_first = full_end = end.date()
            range_edges = [(start, end)]
        else:
            range_edges = [(start, _midnight(full_first)), (_midnight(full_end), end)]
        after_at = at + _MICROSECOND
        ranges = [
            (_midnight(start_day), start),  # position before start
            *range_edges,
            (_midnight(at_day), after_at),  # position at `at`
            (after_at, _midnight(at_day + timedelta(days=1))),  # counts: undo after `at`
        ]
        events = await self._repo.events(org, ranges)
        windows = {
            "start": (None, start_day - timedelta(days=1)),
            "range": (full_first, full_end - timedelta(days=1)),
            "at": (None, at_day - timedelta(days=1)),
        }
        movement_rows = await self._repo.movement_windows(org, windows)

        # Counts and MRR at `at`: the totals, less every change after it.
        counts: dict[tuple[str, str, str], list[int]] = {}
        for row in await self._repo.totals(org):
            key = (row["currency"], row["plan_id"], row["status"])
            counts[key] = [int(row["subscriptions"]), int(row["mrr"])]
        for row in await self._repo.count_changes_after(org, at_day):
            into = counts.setdefault((row["currency"], row["plan_id"], row["status"]), [0, 0])
            into[0] -= int(row["subscriptions"])
            into[1] -= int(row["mrr"])
        for event in _within(events, after_at, _midnight(at_day + timedelta(days=1))):
            for key, subscriptions, mrr in _event_counts(event):
                into = counts.setdefault(key, [0, 0])
                into[0] -= subscriptions
                into[1] -= int(mrr)

        # Movements: whole days from the rollup, the edges from the ledger.
        window_sums: dict[str, dict[str, _Sums]] = {name: {} for name in windows}
        for row in movement_rows:
            for name in windows:
                window_sums[name].setdefault(row["currency"], _Sums()).add(
                    {c: row[f"{name}__{c}"] for c in MOVEMENT_COLUMNS}
                )
        edges = {
            "start": _within(events, _midnight(start_day), start),
            "range": [e for a, b in range_edges for e in _within(events, a, b)],
            "at": _within(events, _midnight(at_day), after_at),
        }
        for name, rows in edges.items():
            for event in rows:
                window_sums[name].setdefault(event["currency"], _Sums()).add(_event_movement(event))

        plan_rows = await self._repo.plans(org, sorted({p for _, p, _ in counts}))
        plans = {row["id"]: row for row in plan_rows}
        return _subscription_stats(at, start, end, counts, window_sums, plans)
