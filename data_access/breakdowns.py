"""Completed sales broken down by vendor, category, day, month and deal type.

A window made of whole local days is answered from the daily rollup (pulse_daily_sales, one row
per day x product x deal type x status), which sums to exactly what the order lines give for
those days; any other window reads the order lines. Both carry vendor_id, product_id and
category_id, so filters and the vendor scope apply through scope.line_conditions either way.
"""
from __future__ import annotations

import datetime as dt

import pandas as pd

from data_access.dialect import bind_ts, local_midnight_utc, project_table
from data_access.filters import MANAGER, Filters, Scope, Window
from data_access.groups import DEFAULT_TZ, read_df, as_dates, bucket_sql, resolve
from data_access.scope import line_conditions, where

PERIOD_DAYS = {"week": 7, "month": 30}


def whole_days(window: Window, tz: str) -> tuple[dt.date, dt.date] | None:
    """(first, last) local day when the window is exactly those whole days, else None."""
    first, last = window.local_days(tz)
    if (window.start == local_midnight_utc(first, tz)
            and window.end == local_midnight_utc(last + dt.timedelta(days=1), tz)):
        return first, last
    return None


def completed_source(conn, window: Window, filters: Filters, scope: Scope, tz: str):
    """(table AS s, where, params, binds): completed sales in the window, rollup when possible."""
    conds, params, binds = line_conditions(filters, scope, alias="s")
    conds.append("s.status = 'COMPLETED'")
    days = whole_days(window, tz)
    if days:
        conds += ["s.local_day >= :d_lo", "s.local_day <= :d_hi"]
        params.update(d_lo=days[0].isoformat(), d_hi=days[1].isoformat())
        table = project_table(conn, "pulse_daily_sales")
    else:
        conds += ["s.created_at >= :w_start", "s.created_at < :w_end"]
        params.update(w_start=bind_ts(conn, window.start), w_end=bind_ts(conn, window.end))
        table = project_table(conn, "pulse_order_lines")
    return f"{table} s", where(conds), params, binds


def vendor_category_revenue(conn, window: Window, filters: Filters = Filters(), scope: Scope = MANAGER,
                            tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: vendor_id, vendor, category_id, category, revenue — cells with sales only,
    ordered by vendor name, category name (heatmap input; names, never raw ids, on axes)."""
    src, cond, params, binds = completed_source(conn, window, filters, scope, tz)
    sql = (f"SELECT r.vendor_id, v.name AS vendor, r.category_id, c.name AS category, r.revenue FROM "
           f"(SELECT s.vendor_id, s.category_id, SUM(s.revenue) AS revenue FROM {src} WHERE {cond} "
           f"GROUP BY s.vendor_id, s.category_id) r JOIN vendors v ON v.id = r.vendor_id "
           f"JOIN categories c ON c.id = r.category_id ORDER BY v.name, r.vendor_id, c.name, r.category_id")
    df = read_df(conn, sql, params, binds, columns=["vendor_id", "vendor", "category_id", "category", "revenue"])
    return df.astype({"revenue": float})


def category_daily_revenue(conn, window: Window, filters: Filters = Filters(), scope: Scope = MANAGER,
                           tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: day (local date), category, revenue — every day of the window for every category
    with sales in it (0 on days without), so daily series correlate correctly."""
    src, cond, params, binds = completed_source(conn, window, filters, scope, tz)
    sql = (f"SELECT r.day, c.name AS category, r.revenue FROM (SELECT s.local_day AS day, s.category_id, "
           f"SUM(s.revenue) AS revenue FROM {src} WHERE {cond} GROUP BY s.local_day, s.category_id) r "
           f"JOIN categories c ON c.id = r.category_id")
    df = read_df(conn, sql, params, binds, columns=["day", "category", "revenue"])
    first, last = window.local_days(tz)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    if df.empty:
        return pd.DataFrame({"day": pd.Series(dtype=object), "category": pd.Series(dtype=object),
                             "revenue": pd.Series(dtype=float)})
    df["day"] = as_dates(df["day"])
    grid = df.groupby(["day", "category"])["revenue"].sum().unstack(fill_value=0.0)
    grid = grid.reindex(days, fill_value=0.0).sort_index(axis=1)
    out = grid.stack().rename("revenue").reset_index()
    out.columns = ["day", "category", "revenue"]
    return out.astype({"revenue": float})


def group_vs_individual(conn, window: Window, by: str = "category", filters: Filters = Filters(),
                        scope: Scope = MANAGER, tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: key (category name, or local month start date), group_quantity, individual_quantity.

    Quantities of completed orders, not order counts: groups_carts.quantity for group orders,
    personal_cart_items.quantity for individual ones (by the category of each item).
    """
    if by not in ("category", "month"):
        raise ValueError(f"group vs individual by {by!r}: use 'category' or 'month'")
    src, cond, params, binds = completed_source(conn, window, filters, scope, tz)
    sums = ("SUM(CASE WHEN s.deal_type = 'group' THEN s.quantity ELSE 0 END) AS group_quantity, "
            "SUM(CASE WHEN s.deal_type = 'individual' THEN s.quantity ELSE 0 END) AS individual_quantity")
    if by == "category":
        sql = (f"SELECT c.name AS key, SUM(r.group_quantity), SUM(r.individual_quantity) FROM "
               f"(SELECT s.category_id, {sums} FROM {src} WHERE {cond} GROUP BY s.category_id) r "
               f"JOIN categories c ON c.id = r.category_id GROUP BY c.name ORDER BY c.name")
    else:
        month = bucket_sql(conn, "s.local_day", "month")
        sql = f"SELECT {month} AS key, {sums} FROM {src} WHERE {cond} GROUP BY 1 ORDER BY 1"
    df = read_df(conn, sql, params, binds, columns=["key", "group_quantity", "individual_quantity"])
    if by == "month" and len(df):
        df["key"] = as_dates(df["key"])
    return df.astype({"group_quantity": int, "individual_quantity": int})


def category_revenue(conn, window: Window, filters: Filters = Filters(), scope: Scope = MANAGER,
                     tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: category_id, category, revenue — every category (not deleted, or with sales;
    only the filtered ones when a category filter is set), 0 when nothing sold."""
    src, cond, params, binds = completed_source(conn, window, filters, scope, tz)
    sql = (f"SELECT c.id AS category_id, c.name AS category, COALESCE(r.revenue, 0) AS revenue "
           f"FROM categories c LEFT JOIN (SELECT s.category_id, SUM(s.revenue) AS revenue FROM {src} "
           f"WHERE {cond} GROUP BY s.category_id) r ON r.category_id = c.id "
           f"WHERE c.deleted_at IS NULL OR r.revenue IS NOT NULL ORDER BY c.name, c.id")
    df = read_df(conn, sql, params, binds, columns=["category_id", "category", "revenue"])
    if filters.category_ids:
        df = df[df["category_id"].isin(filters.category_ids)].reset_index(drop=True)
    return df.astype({"revenue": float})


def category_growth_inputs(conn, as_of=None, period: str = "week", filters: Filters = Filters(),
                           scope: Scope = MANAGER, tz: str = DEFAULT_TZ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, previous) category_revenue for [as_of - P, as_of) and [as_of - 2P, as_of - P),
    P = 7 days ('week') or 30 days ('month'); feed them to analytics.growth.category_growth."""
    if period not in PERIOD_DAYS:
        raise ValueError(f"unknown growth period {period!r}: use 'week' or 'month'")
    current = Window.last(resolve(conn, as_of, tz), PERIOD_DAYS[period])
    return (category_revenue(conn, current, filters, scope, tz),
            category_revenue(conn, current.previous(), filters, scope, tz))
