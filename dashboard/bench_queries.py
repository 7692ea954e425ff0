"""The metrics queries of issue #3, named, for `bench` and scripts/time_metrics.py: each is
called straight on data_access (no cache), so its time is the query's own."""
from __future__ import annotations

import datetime as dt

from analytics.cohorts import cohort_retention
from analytics.growth import category_growth
from analytics.segments import segment_summary
from data_access import breakdowns, customers, groups, metrics
from data_access.dialect import utc_to_local_date
from data_access.filters import Scope, Window


def busiest_vendor(conn) -> str:
    """The vendor with the most group deals (the heaviest vendor scope)."""
    return str(conn.exec_driver_sql("SELECT vendor_id FROM products p JOIN group_deals d ON d.product_id = p.id "
                                    "GROUP BY vendor_id ORDER BY COUNT(*) DESC, vendor_id LIMIT 1").scalar())


def cases(conn, as_of: dt.datetime, days: int, long: bool, vendor: str, tz: str) -> list[tuple[str, callable]]:
    w = Window.last(as_of, days)
    last = utc_to_local_date(as_of, tz) - dt.timedelta(days=1)
    wd = Window.days(last - dt.timedelta(days=days - 1), last, tz)  # whole local days (rollup path)
    live = as_of - dt.timedelta(hours=9)  # a time with groups still running
    v = Scope(vendor)
    out = [
        ("kpi_summary", lambda: metrics.kpi_summary(conn, w, as_of)),
        ("kpi_summary vendor", lambda: metrics.kpi_summary(conn, w, as_of, scope=v)),
        ("kpi_series day", lambda: metrics.kpi_series(conn, w, as_of, "day")),
        ("kpi_series week", lambda: metrics.kpi_series(conn, w, as_of, "week")),
        ("group_status_counts", lambda: groups.group_status_counts(conn, live, 2.0)),
        ("group_status_counts vendor", lambda: groups.group_status_counts(conn, live, 2.0, scope=v)),
        ("groups_nearing_expiry", lambda: groups.groups_nearing_expiry(conn, live, 2.0)),
        ("group_status_series day", lambda: groups.group_status_series(conn, w, as_of, "day")),
        ("top_users", lambda: customers.top_users(conn, as_of)),
        ("top_users vendor", lambda: customers.top_users(conn, as_of, scope=v)),
        ("cohort_activity+retention", lambda: cohort_retention(customers.cohort_activity(conn, as_of), as_of, tz)),
        ("cohort_activity vendor", lambda: customers.cohort_activity(conn, as_of, scope=v)),
        ("user_rfm+segments", lambda: segment_summary(customers.user_rfm(conn, as_of))),
        ("user_rfm vendor", lambda: customers.user_rfm(conn, as_of, scope=v)),
        ("vendor_category_revenue days", lambda: breakdowns.vendor_category_revenue(conn, wd)),
        ("vendor_category_revenue times", lambda: breakdowns.vendor_category_revenue(conn, w)),
        ("category_daily_revenue", lambda: breakdowns.category_daily_revenue(conn, wd)),
        ("group_vs_individual category", lambda: breakdowns.group_vs_individual(conn, wd, "category")),
        ("category_growth week", lambda: category_growth(*breakdowns.category_growth_inputs(conn, as_of, "week"))),
        ("category_growth month", lambda: category_growth(*breakdowns.category_growth_inputs(conn, as_of, "month"))),
    ]
    if long:
        y = Window.last(as_of, 365)
        yd = Window.days(last - dt.timedelta(days=364), last, tz)
        out += [
            ("kpi_summary 365d", lambda: metrics.kpi_summary(conn, y, as_of)),
            ("kpi_series 365d month", lambda: metrics.kpi_series(conn, y, as_of, "month")),
            ("group_status_series 365d week", lambda: groups.group_status_series(conn, y, as_of, "week")),
            ("group_vs_individual 365d month", lambda: breakdowns.group_vs_individual(conn, yd, "month")),
            ("vendor_category_revenue 365d", lambda: breakdowns.vendor_category_revenue(conn, yd)),
        ]
    return out
