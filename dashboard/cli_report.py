"""`report NAME`: the analysts' metrics printed as JSON, CSV or a table (filled by the metrics layer)."""
from __future__ import annotations

REPORTS: dict = {}


def add_report_parser(sub):
    r = sub.add_parser("report", help="print a metric (json|csv|table)")
    r.add_argument("name")
    r.add_argument("--as-of", default=None)
    r.add_argument("--vendor", default=None)
    r.add_argument("--format", choices=["json", "csv", "table"], default="table")
    return r


def cmd_report(settings, args, engine_factory):
    raise ValueError("reports are not available yet")
