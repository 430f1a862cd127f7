"""``billing demo``: a realistic organization made through the application services (plans in
three currencies, hundreds of customers, a year of renewals, plan changes, cancellations,
failed cards and dunning, refunds and credit notes on its test clock)."""

from app.demo.runner import DemoOptions, DemoRefused, run_demo
from app.demo.summary import DemoReport

__all__ = ["DemoOptions", "DemoRefused", "DemoReport", "run_demo"]
