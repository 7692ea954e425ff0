"""The KPIs of DESIGN.md §4 for a window, as one dict or as a day/week/month series.

A series row is exactly the summary of that period (the window cut to the period) at the same
as_of, so the two never disagree. Rates are fractions in [0, 1]; a zero denominator gives None
(NaN in a series), never 0. Each KPI's numerator and denominator come from one grouped query:

- revenue, completed_orders, aov: completed order lines created in the window;
- avg_revenue_per_deal (KPI 2): revenue of completed group orders / distinct group deals of them;
- deal_conversion_rate (KPI 1): deals with a group created in the window that got a completed
  order from such a group (before as_of) / deals with a group created in the window;
- group_success_rate: completed / (completed + expired) of groups created in the window, by
  their derived status at as_of (group_facts.py, from the ETL's per-group table);
- participation_rate (KPI 3): distinct users who joined a group in the window / users not
  deleted who signed up before as_of (with filters or a vendor scope: users who joined matching
  groups / all users);
- refund_total, refund_orders: paid orders (payment method not CASH_ON_DELIVERY, status not
  FAILED) of groups that expired with their deadline in the window, amount = total_amount.
"""
from __future__ import annotations

import math

import pandas as pd

from data_access.customers import participation, user_base
from data_access.dialect import local_date_sql, project_table
from data_access.filters import MANAGER, Filters, Scope, Window
from data_access.group_facts import facts_cte
from data_access.groups import (DEFAULT_TZ, as_dates, bucket_sql, check_freq, clamp, max_expiration, period_starts,
                                read_df, resolve, success_rate)
from data_access.scope import line_conditions, where

KPI_KEYS = ["revenue", "completed_orders", "aov", "deal_conversion_rate", "group_success_rate",
            "avg_revenue_per_deal", "participation_rate", "refund_total", "refund_orders"]


def _sales(conn, window: Window, filters: Filters, scope: Scope, freq: str | None) -> pd.DataFrame:
    """Columns: key, revenue, completed_orders, group_revenue, group_deals."""
    conds, params, binds = line_conditions(filters, scope, alias="l")
    conds += ["l.status = 'COMPLETED'", "l.created_at >= :w_start", "l.created_at < :w_end"]
    params.update(window.params(conn))
    key = bucket_sql(conn, "l.local_day", freq)
    sql = (f"SELECT {key} AS key, SUM(l.revenue) AS revenue, COUNT(DISTINCT l.order_id) AS completed_orders, "
           f"SUM(CASE WHEN l.deal_type = 'group' THEN l.revenue ELSE 0 END) AS group_revenue, "
           f"COUNT(DISTINCT CASE WHEN l.deal_type = 'group' THEN l.group_deal_id END) AS group_deals "
           f"FROM {project_table(conn, 'pulse_order_lines')} l WHERE {where(conds)} GROUP BY 1")
    return read_df(conn, sql, params, binds,
                   columns=["key", "revenue", "completed_orders", "group_revenue", "group_deals"])


def _group_kpis(conn, window: Window, as_of, filters: Filters, scope: Scope, freq: str | None,
                tz: str) -> pd.DataFrame:
    """Columns: key, deals, converted, completed, expired, refund_total, refund_orders — one pass
    over the groups created in the window or up to one deal lifetime before it (refunds are
    keyed by the deadline's period, the rest by the creation's)."""
    lo = window.start - max_expiration(conn)
    cte, params, binds = facts_cte(conn, lo, window.end, as_of, filters, scope, orders=window)
    ckey = bucket_sql(conn, local_date_sql(conn, "created_at", tz), freq)
    dkey = bucket_sql(conn, local_date_sql(conn, "deadline", tz), freq)
    gk = (f", gk AS MATERIALIZED (SELECT id, deal_id, status, converted, paid_total, paid_orders, "
          f"CASE WHEN created_at >= :o_start THEN 1 ELSE 0 END AS in_win, CASE WHEN deadline >= :o_start "
          f"AND deadline < :o_end THEN 1 ELSE 0 END AS due, {ckey} AS ckey, {dkey} AS dkey FROM gs)")
    deals = ("SELECT ckey, COUNT(DISTINCT deal_id) AS deals, "
             "COUNT(DISTINCT CASE WHEN converted = 1 THEN deal_id END) AS converted FROM gk WHERE in_win = 1 GROUP BY ckey")
    sql = (f"{cte}{gk} SELECT 'deals' AS kind, d.*, 0, 0, 0, 0 FROM ({deals}) d "
           f"UNION ALL SELECT 'groups', ckey, 0, 0, SUM(CASE WHEN status = 'COMPLETED' THEN 1 ELSE 0 END), "
           f"SUM(CASE WHEN status = 'EXPIRED' THEN 1 ELSE 0 END), 0, 0 FROM gk WHERE in_win = 1 GROUP BY ckey "
           f"UNION ALL SELECT 'refunds', dkey, 0, 0, 0, 0, SUM(COALESCE(paid_total, 0)), SUM(COALESCE(paid_orders, 0)) "
           f"FROM gk WHERE status = 'EXPIRED' AND due = 1 GROUP BY dkey")
    cols = ["kind", "key", "deals", "converted", "completed", "expired", "refund_total", "refund_orders"]
    df = read_df(conn, sql, params, binds, columns=cols)
    df["key"] = df["key"].astype(str)
    return df.drop(columns="kind").groupby("key", as_index=False).sum()


def _ratio(num, den):
    return num / den if den else math.nan


def _nan(value):
    return math.nan if value is None else value


def _kpi_frame(conn, win: Window, as_of, filters: Filters, scope: Scope, freq: str | None,
               tz: str) -> pd.DataFrame:
    """Columns: key + KPI_KEYS, one row per key that has any data (rates NaN when undefined)."""
    parts = [_sales(conn, win, filters, scope, freq),
             _group_kpis(conn, win, as_of, filters, scope, freq, tz),
             participation(conn, win, as_of, filters, scope, freq, tz)]
    frames = [p.assign(key=p["key"].astype(str)).set_index("key") for p in parts]
    df = pd.concat(frames, axis=1).fillna(0)
    users = user_base(conn, as_of)
    out = pd.DataFrame(index=df.index)
    out["revenue"] = df.get("revenue", 0.0).astype(float)
    out["completed_orders"] = df.get("completed_orders", 0).astype(int)
    out["aov"] = [_ratio(r, n) for r, n in zip(out["revenue"], out["completed_orders"])]
    out["deal_conversion_rate"] = [_ratio(c, d) for c, d in zip(df["converted"], df["deals"])]
    out["group_success_rate"] = [_nan(success_rate(c, e)) for c, e in zip(df["completed"], df["expired"])]
    out["avg_revenue_per_deal"] = [_ratio(r, d) for r, d in zip(df["group_revenue"], df["group_deals"])]
    out["participation_rate"] = [_ratio(p, users) for p in df["participants"]]
    out["refund_total"] = df["refund_total"].astype(float)
    out["refund_orders"] = df["refund_orders"].astype(int)
    return out


def _empty_row() -> dict:
    return {"revenue": 0.0, "completed_orders": 0, "aov": math.nan, "deal_conversion_rate": math.nan,
            "group_success_rate": math.nan, "avg_revenue_per_deal": math.nan, "participation_rate": math.nan,
            "refund_total": 0.0, "refund_orders": 0}


def kpi_summary(conn, window: Window, as_of=None, filters: Filters = Filters(), scope: Scope = MANAGER,
                tz: str = DEFAULT_TZ) -> dict:
    """{KPI_KEYS: value} for the window cut at as_of; rates None when their denominator is 0."""
    as_of = resolve(conn, as_of, tz)
    win = clamp(window, as_of)
    frame = _kpi_frame(conn, win, as_of, filters, scope, None, tz)
    row = frame.iloc[0].to_dict() if len(frame) else _empty_row()
    if not len(frame) or math.isnan(row["participation_rate"]):
        users = user_base(conn, as_of)
        row["participation_rate"] = 0.0 if users else None
    out = {}
    for k in KPI_KEYS:
        v = row[k]
        if k in ("completed_orders", "refund_orders"):
            out[k] = int(v)
        else:
            out[k] = None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
    return out


def kpi_series(conn, window: Window, as_of=None, freq: str = "day", filters: Filters = Filters(),
               scope: Scope = MANAGER, tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: period_start (local date; Monday weeks) + KPI_KEYS — one row per period of the
    window (cut at as_of), each equal to kpi_summary of that period; rates NaN when undefined."""
    check_freq(freq)
    as_of = resolve(conn, as_of, tz)
    win = clamp(window, as_of)
    frame = _kpi_frame(conn, win, as_of, filters, scope, freq, tz)
    frame.index = as_dates(pd.Series(frame.index, dtype=object)) if len(frame) else frame.index
    starts = period_starts(win, freq, tz)
    out = frame.reindex(starts)
    empty = _empty_row()
    users = user_base(conn, as_of)
    empty["participation_rate"] = 0.0 if users else math.nan
    for k in KPI_KEYS:
        out[k] = out[k].fillna(empty[k]) if k in ("revenue", "completed_orders", "refund_total", "refund_orders",
                                                  "participation_rate") else out[k]
    out = out.astype({"completed_orders": int, "refund_orders": int, "revenue": float, "refund_total": float})
    out.index.name = "period_start"
    return out.reset_index()[["period_start"] + KPI_KEYS]
