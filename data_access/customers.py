"""Who buys: top users, participation, signup cohorts and RFM inputs — aggregated in SQL.

Users whose row is soft-deleted count nowhere. "Joining a group" = a groups_carts row that is
not soft-deleted, of a group that is not soft-deleted. With filters or a vendor scope, only
groups of matching deals and order lines of matching products count, while denominators stay
all users (participation and cohort sizes): "share of all users who joined this vendor's
groups", the only reading that lets a vendor compare itself with the marketplace.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa

from data_access.dialect import (bind_ts, local_date_sql, local_midnight_utc, project_table, utc_offset_hours,
                                 utc_to_local_date)
from data_access.filters import MANAGER, Filters, Scope, Window
from data_access.groups import DEALS, DEFAULT_TZ, bucket_sql, no_index, read_df, resolve
from data_access.scope import line_conditions, where

MAX_TOP = 1000


def membership(conn, filters: Filters, scope: Scope, all_time: bool = False) -> tuple[str, list[str], dict, list]:
    """(joins, conditions, params, binds) restricting groups_carts `gc` to counted memberships.

    Filtered, memberships join their group, whose deal must be in the short list of matching
    deals. For a window SQLite is kept on the window's memberships (`+`); over all time
    (cohorts) it may start from the matching deals' groups instead.
    """
    conds, params, binds = line_conditions(filters, scope, alias="d")
    if not conds:  # no dimension restriction: only drop soft-deleted groups
        return "", ["gc.group_id NOT IN (SELECT id FROM groups WHERE deleted_at IS NOT NULL)"], params, binds
    deals = f"SELECT d.deal_id FROM {DEALS} WHERE {where(conds)}"
    plus = "" if all_time else no_index(conn)
    return (f"JOIN groups g ON g.id = gc.group_id AND g.deleted_at IS NULL AND {plus}g.group_deals_id IN ({deals})",
            [], params, binds)


def month_sql(conn, column: str, tz: str) -> str:
    """Local month start (a date) of a UTC timestamp column."""
    if conn.dialect.name == "postgresql":  # one time-zone conversion per row, not two
        return f"CAST(date_trunc('month', {column} AT TIME ZONE '{ZoneInfo(tz).key}') AS date)"
    return f"strftime('%Y-%m-01', {column}, '{utc_offset_hours(tz):+g} hours')"


def days_before_sql(conn, as_of: str) -> str:
    """SQL template: days (float) from the timestamp `{}` to the bound as_of."""
    if conn.dialect.name == "postgresql":
        return f"(EXTRACT(EPOCH FROM (CAST({as_of} AS timestamptz) - {{}})) / 86400.0)"
    return f"(julianday({as_of}) - julianday({{}}))"


def user_base(conn, as_of: dt.datetime) -> int:
    """Users not soft-deleted who signed up before as_of (the participation denominator)."""
    return int(conn.execute(sa.text("SELECT COUNT(*) FROM users WHERE deleted_at IS NULL AND created_at < :as_of"),
                            {"as_of": bind_ts(conn, as_of)}).scalar_one())


def participation(conn, window: Window, as_of: dt.datetime, filters: Filters, scope: Scope,
                  freq: str | None, tz: str) -> pd.DataFrame:
    """Columns: key (local period of the join, or 'all'), participants — distinct counted users
    (not deleted, signed up before as_of) who joined a group in the window (KPI 3 numerator)."""
    joins, conds, params, binds = membership(conn, filters, scope)
    params.update(window.params(conn), as_of=bind_ts(conn, as_of))
    key = bucket_sql(conn, local_date_sql(conn, "gc.created_at", tz), freq)
    sql = (f"SELECT a.key, COUNT(*) AS participants FROM (SELECT DISTINCT {key} AS key, gc.user_id "
           f"FROM groups_carts gc {joins} WHERE gc.deleted_at IS NULL AND gc.created_at >= :w_start "
           f"AND gc.created_at < :w_end AND {where(conds)}) a JOIN users u ON u.id = a.user_id "
           f"AND u.deleted_at IS NULL AND u.created_at < :as_of GROUP BY a.key")
    return read_df(conn, sql, params, binds, columns=["key", "participants"])


def top_users(conn, as_of=None, n: int = 10, filters: Filters = Filters(), scope: Scope = MANAGER,
              tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: rank, user_id, user_name, revenue, completed_orders, groups_joined, categories.

    The n users with the highest revenue of completed orders (group and individual) created in
    [as_of - 30 d, as_of); ties by user id. groups_joined = distinct groups of their memberships
    created in the window; categories = sorted distinct category names of those orders, ', '-joined.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 0 < n <= MAX_TOP:
        raise ValueError(f"N must be a whole number between 1 and {MAX_TOP}, got {n!r}")
    as_of = resolve(conn, as_of, tz)
    win = Window.last(as_of, 30)
    lines = project_table(conn, "pulse_order_lines")
    conds, params, binds = line_conditions(filters, scope, alias="l")
    conds += ["l.status = 'COMPLETED'", "l.created_at >= :w_start", "l.created_at < :w_end"]
    params.update(win.params(conn), n=n)
    top = read_df(conn, f"SELECT l.user_id, u.name AS user_name, SUM(l.revenue) AS revenue, "
                        f"COUNT(DISTINCT l.order_id) AS completed_orders FROM {lines} l "
                        f"JOIN users u ON u.id = l.user_id AND u.deleted_at IS NULL WHERE {where(conds)} "
                        f"GROUP BY l.user_id, u.name ORDER BY ROUND(SUM(l.revenue), 2) DESC, l.user_id LIMIT :n",
                  params, binds, columns=["user_id", "user_name", "revenue", "completed_orders"])
    columns = ["rank", "user_id", "user_name", "revenue", "completed_orders", "groups_joined", "categories"]
    if top.empty:
        return pd.DataFrame(columns=columns)
    ids = sa.bindparam("uids", expanding=True)
    params["uids"] = top["user_id"].tolist()
    cats = read_df(conn, f"SELECT DISTINCT l.user_id, c.name FROM {lines} l JOIN categories c ON c.id = l.category_id "
                         f"WHERE l.user_id IN :uids AND {where(conds)}", params, binds + [ids],
                   columns=["user_id", "name"])
    joins, gconds, gparams, gbinds = membership(conn, filters, scope)
    gparams.update(win.params(conn), uids=params["uids"])
    groups = read_df(conn, f"SELECT gc.user_id, COUNT(DISTINCT gc.group_id) AS n FROM groups_carts gc {joins} "
                           f"WHERE gc.user_id IN :uids AND gc.deleted_at IS NULL AND gc.created_at >= :w_start "
                           f"AND gc.created_at < :w_end AND {where(gconds)} GROUP BY gc.user_id",
                     gparams, gbinds + [ids], columns=["user_id", "n"])
    names = cats.groupby("user_id")["name"].agg(lambda s: ", ".join(sorted(set(s))))
    top["groups_joined"] = top["user_id"].map(groups.set_index("user_id")["n"]).fillna(0).astype(int)
    top["categories"] = top["user_id"].map(names).fillna("")
    top["rank"] = range(1, len(top) + 1)
    return top.astype({"revenue": float, "completed_orders": int})[columns]


def _activity_table(conn, filters: Filters, scope: Scope) -> tuple[str, list[str], dict, list] | None:
    """(table, conditions, params, binds) of the ETL's per-user-month table answering this
    filter, or None when only the order lines / memberships can (product or category filters,
    several vendors: an order with items of two of them would count twice)."""
    if filters.product_ids or filters.category_ids or len(filters.vendor_ids) > 1:
        return None
    conds, params, binds = line_conditions(filters, scope, alias="a")
    if not conds:
        return project_table(conn, "pulse_user_months"), [], params, binds
    return project_table(conn, "pulse_user_vendor_months"), conds, params, binds


NOT_DELETED_USER = "{}.user_id NOT IN (SELECT id FROM users WHERE deleted_at IS NOT NULL)"


def _cohort_rows(conn, as_of: dt.datetime, filters: Filters, scope: Scope, tz: str) -> pd.DataFrame:
    """Columns: cohort, month (NULL for the cohort's size row), n."""
    sizes = (f"SELECT {month_sql(conn, 'created_at', tz)} AS cohort, NULL AS month, COUNT(*) AS n FROM users "
             f"WHERE deleted_at IS NULL AND created_at < :as_of GROUP BY 1")
    fast = _activity_table(conn, filters, scope)
    if fast is not None:
        table, conds, params, binds = fast
        params["as_of"] = bind_ts(conn, as_of)
        conds += ["a.first_join_at < :as_of", "a.signup_at < :as_of", NOT_DELETED_USER.format("a")]
        sql = (f"{sizes} UNION ALL SELECT a.cohort, a.month, COUNT(*) FROM {table} a WHERE {where(conds)} "
               f"GROUP BY a.cohort, a.month")
        return read_df(conn, sql, params, binds, columns=["cohort", "month", "n"])
    joins, conds, params, binds = membership(conn, filters, scope, all_time=True)
    params["as_of"] = bind_ts(conn, as_of)
    sql = (f"WITH u AS (SELECT id, {month_sql(conn, 'created_at', tz)} AS cohort FROM users "
           f"WHERE deleted_at IS NULL AND created_at < :as_of), "
           f"a AS (SELECT DISTINCT gc.user_id, {month_sql(conn, 'gc.created_at', tz)} AS month FROM groups_carts gc "
           f"{joins} WHERE gc.deleted_at IS NULL AND gc.created_at < :as_of AND {where(conds)}) "
           f"{sizes} UNION ALL "
           f"SELECT u.cohort, a.month, COUNT(*) FROM a JOIN u ON u.id = a.user_id GROUP BY u.cohort, a.month")
    return read_df(conn, sql, params, binds, columns=["cohort", "month", "n"])


def cohort_activity(conn, as_of=None, filters: Filters = Filters(), scope: Scope = MANAGER,
                    tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: cohort (local signup month start, date), size, active_m0..active_m3.

    size = users (not deleted) who signed up in that local month before as_of; active_mk = how
    many of them joined >= 1 group in calendar month cohort + k (before as_of). Incomplete
    months are not marked here: analytics.cohorts decides that from as_of. Read from the ETL's
    per-user-month table unless a product/category filter needs the memberships themselves.
    """
    as_of = resolve(conn, as_of, tz)
    rows = _cohort_rows(conn, as_of, filters, scope, tz)
    sizes = rows[rows["month"].isna()].rename(columns={"n": "size"})[["cohort", "size"]]
    active = rows[rows["month"].notna()].copy()
    out = sizes.assign(cohort=pd.to_datetime(sizes["cohort"])).set_index("cohort")
    if len(active):
        c, m = pd.to_datetime(active["cohort"]), pd.to_datetime(active["month"])
        active["k"] = (m.dt.year - c.dt.year) * 12 + (m.dt.month - c.dt.month)
        active["cohort"] = c
        grid = active[active["k"].between(0, 3)].pivot_table(index="cohort", columns="k", values="n", aggfunc="sum")
    else:
        grid = pd.DataFrame()
    for k in range(4):
        col = grid[k] if k in getattr(grid, "columns", []) else pd.Series(dtype=float)
        out[f"active_m{k}"] = col.reindex(out.index).fillna(0).astype(int)
    out = out.sort_index().reset_index()
    out["cohort"] = out["cohort"].dt.date
    return out.astype({"size": int})


RFM_COLUMNS = ["user_id", "recency_days", "frequency", "monetary", "tenure_days"]


def _rfm_parts(conn, as_of: dt.datetime, filters: Filters, scope: Scope, window: Window | None,
               tz: str) -> list[tuple[str, dict, list]]:
    """Queries of per-user completed sales before as_of (RFM_COLUMNS, users not deleted).

    Whole local months before as_of's come from the per-user-month table, as_of's own month from
    the order lines; the caller merges the parts (min recency, max tenure, sums).
    """
    lines = project_table(conn, "pulse_order_lines")
    conds, params, binds = line_conditions(filters, scope, alias="l")
    conds += ["l.status = 'COMPLETED'", "l.created_at < :as_of", NOT_DELETED_USER.format("l")]
    params["as_of"] = bind_ts(conn, as_of)
    days = days_before_sql(conn, ":as_of")
    # Floats and text in SQL: psycopg2 would otherwise build a Decimal / UUID object per value.
    select = ("SELECT CAST({a}.user_id AS VARCHAR(36)), CAST({d_last} AS FLOAT), {n}, CAST(SUM({a}.revenue) AS FLOAT), "
              "CAST({d_first} AS FLOAT) FROM {table} {a} WHERE {where} GROUP BY {plus}{a}.user_id")
    line_part = dict(a="l", d_last=days.format("MAX(l.created_at)"), d_first=days.format("MIN(l.created_at)"),
                     n="COUNT(DISTINCT l.order_id)", table=lines)
    fast = None if window is not None else _activity_table(conn, filters, scope)
    if fast is None:
        if window is not None:
            conds.append("l.created_at >= :w_start")
            params["w_start"] = bind_ts(conn, window.start)
        return [(select.format(**line_part, where=where(conds), plus=""), params, binds)]
    table, tconds, tparams, tbinds = fast
    month = utc_to_local_date(as_of, tz).replace(day=1)
    tparams.update(as_of=params["as_of"], cut_month=month if conn.dialect.name == "postgresql" else month.isoformat())
    tconds += ["a.month < :cut_month", "a.orders > 0", NOT_DELETED_USER.format("a")]
    params["cut"] = bind_ts(conn, local_midnight_utc(month, tz))
    conds.append("l.created_at >= :cut")
    month_part = dict(a="a", d_last=days.format("MAX(a.last_order_at)"), d_first=days.format("MIN(a.first_order_at)"),
                      n="SUM(a.orders)", table=table)
    # `+`: SQLite reads the month's range of lines, not every user's lines in user order.
    return [(select.format(**month_part, where=where(tconds), plus=""), tparams, tbinds),
            (select.format(**line_part, where=where(conds), plus=no_index(conn)), params, binds)]


def user_rfm(conn, as_of=None, filters: Filters = Filters(), scope: Scope = MANAGER,
             window: Window | None = None, tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: user_id, recency_days (float days since the last completed order), frequency
    (completed orders), monetary (revenue), tenure_days (days since the first one) — users (not
    deleted) with completed orders created before as_of (and in `window` if given)."""
    as_of = resolve(conn, as_of, tz)
    parts = [read_df(conn, sql, params, binds, columns=RFM_COLUMNS)
             for sql, params, binds in _rfm_parts(conn, as_of, filters, scope, window, tz)]
    df = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        df = df.groupby("user_id", as_index=False, sort=False).agg(
            recency_days=("recency_days", "min"), frequency=("frequency", "sum"), monetary=("monetary", "sum"),
            tenure_days=("tenure_days", "max"))
    return df.astype({"recency_days": float, "frequency": int, "monetary": float, "tenure_days": float})[RFM_COLUMNS]
