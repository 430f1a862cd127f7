"""The statistics rollups, kept in the transaction of each payment, refund and subscription
change."""

from app.rollups.calendar import (
    StatsInterval,
    bucket_ceil,
    bucket_floor,
    check_instant,
    check_range,
    periods,
    utc,
    zone,
)
from app.rollups.math import Movement, Ratio, div_half_even
from app.rollups.recorder import StatsRecorder, movement_numbers

__all__ = [
    "Movement",
    "Ratio",
    "StatsInterval",
    "StatsRecorder",
    "bucket_ceil",
    "bucket_floor",
    "check_instant",
    "check_range",
    "div_half_even",
    "movement_numbers",
    "periods",
    "utc",
    "zone",
]
