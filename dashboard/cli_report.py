"""`report NAME`: the analysts' metrics printed as JSON, CSV or a table.

    python -m dashboard report kpis --as-of latest --days 30 --format json
    python -m dashboard report top-users --vendor <id> --n 20 --format csv

JSON is {"report", "as_of", "vendor", "params", "data"}: numbers are numbers, NaN is null, dates
and times are ISO 8601 (times in UTC). Bad input (unknown report or id, inverted window, as-of in
the future, N <= 0) raises ValueError, which the CLI prints as one line with exit code 2.
"""
from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import math


def add_report_parser(sub):
    r = sub.add_parser("report", help="print a metric (json|csv|table); names: " + ", ".join(REPORTS))
    r.add_argument("name", help="one of: " + ", ".join(REPORTS))
    r.add_argument("--as-of", default=None, help="ISO date/time (UTC), 'latest' (end of the newest order's day) "
                                                 "or nothing for now")
    r.add_argument("--vendor", default=None, help="a vendor id: that vendor's view (its products only)")
    r.add_argument("--category", default=None, help="a category id filter")
    r.add_argument("--product", default=None, help="a product id filter")
    r.add_argument("--format", choices=["json", "csv", "table"], default="table")
    r.add_argument("--days", default="30", help="window: the N days before as-of (default 30)")
    r.add_argument("--start", default=None, help="window start date (local, inclusive); with --end")
    r.add_argument("--end", default=None, help="window end date (local, inclusive)")
    r.add_argument("--freq", default="day", help="kpi-series / group-series: day | week | month")
    r.add_argument("--period", default="week", help="category-growth: week (7 days) | month (30 days)")
    r.add_argument("--by", default="category", help="group-vs-individual: category | month")
    r.add_argument("--n", default="10", help="top-users: how many (default 10)")
    return r


def _int(text: str, name: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


class Context:
    """Validated inputs shared by every report."""

    def __init__(self, conn, settings, args):
        from data_access.filters import Filters, Scope, Window, parse_date, resolve_as_of
        from data_access.sales import known_ids
        self.conn, self.tz, self.args = conn, settings.timezone, args
        self.nearing = settings.nearing_expiry_hours
        for table, value in (("vendors", args.vendor), ("categories", args.category), ("products", args.product)):
            if value is not None and not known_ids(conn, table, (value,)):
                raise ValueError(f"unknown {table[:-1] if table != 'categories' else 'category'} id {value!r}")
        self.as_of = resolve_as_of(conn, args.as_of, self.tz)
        self.scope = Scope(args.vendor) if args.vendor else Scope(None)
        self.filters = Filters.of(product=args.product, category=args.category)
        if (args.start is None) != (args.end is None):
            raise ValueError("give both --start and --end (or neither, for the --days before as-of)")
        if args.start is not None:
            self.window = Window.days(parse_date(args.start, "start date"), parse_date(args.end, "end date"), self.tz)
        else:
            self.window = Window.last(self.as_of, _int(args.days, "--days"))
        self.params = {"window_start": self.window.start, "window_end": self.window.end}

    def kw(self) -> dict:
        return {"filters": self.filters, "scope": self.scope, "tz": self.tz}


def r_kpis(c: Context):
    from data_access.metrics import kpi_summary
    return kpi_summary(c.conn, c.window, c.as_of, **c.kw())


def r_kpi_series(c: Context):
    from data_access.metrics import kpi_series
    c.params["freq"] = c.args.freq
    return kpi_series(c.conn, c.window, c.as_of, c.args.freq, **c.kw())


def r_top_users(c: Context):
    from data_access.customers import top_users
    n = _int(c.args.n, "N (--n)")
    c.params = {"n": n, "window_start": c.as_of - dt.timedelta(days=30), "window_end": c.as_of}
    return top_users(c.conn, c.as_of, n, **c.kw())


def r_cohorts(c: Context):
    from analytics.cohorts import cohort_retention
    from data_access.customers import cohort_activity
    c.params = {}
    activity = cohort_activity(c.conn, c.as_of, **c.kw())
    matrix = cohort_retention(activity, c.as_of, c.tz)
    out = activity[["cohort", "size"]].copy()
    for k in range(4):
        out[f"month_{k}"] = matrix[k].to_numpy()
    return out


def r_category_growth(c: Context):
    from analytics.growth import category_growth
    from data_access.breakdowns import category_growth_inputs
    c.params = {"period": c.args.period}
    return category_growth(*category_growth_inputs(c.conn, c.as_of, c.args.period, **c.kw()))


def r_group_status(c: Context):
    from data_access.groups import group_status_counts
    c.params.update(nearing_hours=c.nearing)
    return group_status_counts(c.conn, c.as_of, c.nearing, window=c.window, **c.kw())


def r_groups_nearing(c: Context):
    from data_access.groups import groups_nearing_expiry
    c.params = {"nearing_hours": c.nearing}
    return groups_nearing_expiry(c.conn, c.as_of, c.nearing, **c.kw())


def r_group_series(c: Context):
    from data_access.groups import group_status_series
    c.params["freq"] = c.args.freq
    return group_status_series(c.conn, c.window, c.as_of, c.args.freq, **c.kw())


def r_segments(c: Context):
    from analytics.segments import segment_summary
    from data_access.customers import user_rfm
    c.params = {}
    return segment_summary(user_rfm(c.conn, c.as_of, **c.kw()))


def r_vendor_category(c: Context):
    from data_access.breakdowns import vendor_category_revenue
    return vendor_category_revenue(c.conn, c.window, **c.kw())


def r_group_vs_individual(c: Context):
    from data_access.breakdowns import group_vs_individual
    c.params["by"] = c.args.by
    return group_vs_individual(c.conn, c.window, c.args.by, **c.kw())


REPORTS = {"kpis": r_kpis, "kpi-series": r_kpi_series, "top-users": r_top_users, "cohorts": r_cohorts,
           "category-growth": r_category_growth, "group-status": r_group_status,
           "groups-nearing": r_groups_nearing, "group-series": r_group_series, "segments": r_segments,
           "vendor-category": r_vendor_category, "group-vs-individual": r_group_vs_individual}


def plain(value):
    """A JSON-ready scalar: numpy -> Python, NaN/NaT -> None, dates/times -> ISO (times UTC, 'Z')."""
    import numpy as np
    import pandas as pd
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating, decimal.Decimal)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        value = pd.Timestamp(value)
        if value.tzinfo is not None:
            value = value.tz_convert("UTC").tz_localize(None)
        return value.isoformat() + "Z"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return value


def as_frame(data):
    import pandas as pd
    return pd.DataFrame([data]) if isinstance(data, dict) else data


def render(name: str, ctx: Context, data, fmt: str) -> str:
    if fmt == "json":
        body = ({k: plain(v) for k, v in data.items()} if isinstance(data, dict)
                else [{k: plain(v) for k, v in row.items()} for row in data.to_dict(orient="records")])
        doc = {"report": name, "as_of": plain(ctx.as_of), "vendor": ctx.args.vendor,
               "params": {k: plain(v) for k, v in ctx.params.items()}, "data": body}
        return json.dumps(doc, allow_nan=False, ensure_ascii=False, indent=2)
    frame = as_frame(data)
    if fmt == "csv":
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        return buf.getvalue().rstrip("\n")
    head = f"{name} as of {ctx.as_of:%Y-%m-%d %H:%M} UTC" + (f", vendor {ctx.args.vendor}" if ctx.args.vendor else "")
    return head + "\n" + (frame.to_string(index=False) if len(frame) else "(no rows)")


def cmd_report(settings, args, engine_factory):
    if args.name not in REPORTS:
        raise ValueError(f"unknown report {args.name!r}: use one of {', '.join(REPORTS)}")
    engine = engine_factory(settings)
    try:
        with engine.connect() as conn:
            ctx = Context(conn, settings, args)
            data = REPORTS[args.name](ctx)
            print(render(args.name, ctx, data, args.format))
    finally:
        engine.dispose()
