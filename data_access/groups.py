"""Group status derived from member rows (DESIGN.md §4), counted in SQL.

The stored groups.status is not trusted (an expired group is stored FAILED, some rows contradict
themselves): every figure here recomputes the status at `as_of` from groups_carts. "The goal-th
distinct member joined by the deadline" is tested as the equivalent "at least `goal` distinct
members joined by the deadline": one index probe per group instead of sorting every member row,
which keeps SQLite within budget at scale 1.

Members count when their groups_carts row is not soft-deleted and was created before as_of; a
soft-deleted group counts for nothing. Filters and the vendor scope apply through the group's
deal's product (scope.line_conditions on the `d` alias).
"""
from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pandas as pd
import sqlalchemy as sa

from data_access.dialect import bind_ts, local_date_sql, to_utc_naive
from data_access.filters import MANAGER, Filters, Scope, Window, resolve_as_of
from data_access.group_facts import facts_cte
from data_access.scope import line_conditions, where

DEFAULT_TZ = "Africa/Addis_Ababa"
FREQS = ("day", "week", "month")


# -- time helpers shared by the metrics modules ------------------------------------------------
def resolve(conn, as_of, tz: str = DEFAULT_TZ) -> dt.datetime:
    """as_of as a naive UTC datetime (None = now, 'latest', ISO text); the future is refused.

    A datetime already resolved from 'latest' (the end of the newest order's local day, which
    can lie a few hours ahead on live data) is accepted again.
    """
    if isinstance(as_of, dt.datetime):
        value = to_utc_naive(as_of)
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        if value > now + dt.timedelta(minutes=1) and value <= resolve_as_of(conn, "latest", tz):
            return value
    return resolve_as_of(conn, as_of, tz)


def clamp(window: Window, as_of: dt.datetime) -> Window:
    """The part of the window before as_of: nothing created at or after as_of counts."""
    if window.start >= as_of:
        raise ValueError(f"the window starts ({window.start:%Y-%m-%d %H:%M} UTC) at or after as-of "
                         f"({as_of:%Y-%m-%d %H:%M} UTC)")
    return Window(window.start, min(window.end, as_of))


def check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise ValueError(f"unknown frequency {freq!r}: use one of {', '.join(FREQS)}")
    return freq


def bucket_sql(conn, day: str, freq: str | None) -> str:
    """SQL for the local period start (Monday weeks) of a local-date SQL expression; None = one bucket."""
    if freq is None:
        return "'all'"
    if freq == "day":
        return day
    if conn.dialect.name == "postgresql":
        field = "ISODOW" if freq == "week" else "DAY"
        return f"(({day}) - (EXTRACT({field} FROM ({day}))::int - 1))"
    return f"date({day}, '-6 days', 'weekday 1')" if freq == "week" else f"date({day}, 'start of month')"


def period_start(day: dt.date, freq: str) -> dt.date:
    if freq == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1) if freq == "month" else day


def period_starts(window: Window, freq: str, tz: str) -> list[dt.date]:
    """Every local period start touching the window, in order."""
    first, last = (period_start(d, freq) for d in window.local_days(tz))
    out, day = [], first
    while day <= last:
        out.append(day)
        day = next_period(day, freq)
    return out


def next_period(start: dt.date, freq: str) -> dt.date:
    if freq == "month":
        return dt.date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return start + dt.timedelta(days=7 if freq == "week" else 1)


def read_df(conn, sql: str, params: dict | None = None, binds: list | None = None,
            columns: list[str] | None = None) -> pd.DataFrame:
    """frames.read_df, but rows are the driver's plain tuples: building and unpacking a
    SQLAlchemy Row per row costs ~4 us (a tenth of a second for the 30k users of RFM); text()
    columns carry no type processing to lose."""
    stmt = sa.text(sql)
    if binds:
        stmt = stmt.bindparams(*binds)
    result = conn.execute(stmt, params or {})
    rows = result.cursor.fetchall() if result.returns_rows else []
    result.close()
    df = pd.DataFrame.from_records(rows, columns=columns or list(result.keys()), nrows=len(rows))
    for c in df.columns:  # Decimal -> float, uuid -> str, as frames.read_df does
        sample = df[c].dropna() if df[c].dtype == object else ()
        if len(sample) and isinstance(sample.iloc[0], decimal.Decimal):
            df[c] = df[c].astype(float)
        elif len(sample) and isinstance(sample.iloc[0], uuid.UUID):
            df[c] = df[c].map(lambda v: None if v is None else str(v))
    return df


def as_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values).dt.date


def as_utc(values: pd.Series) -> pd.Series:
    """Timestamps from either backend as naive UTC pandas datetimes."""
    return pd.to_datetime(values, utc=True, format="ISO8601").dt.tz_convert(None)


def deadline_sql(conn, created: str, hours: str) -> str:
    """created + hours, exact to the microsecond (SQLite keeps the stored fraction as text)."""
    if conn.dialect.name == "postgresql":
        return f"({created} + {hours} * INTERVAL '1 hour')"
    return f"(strftime('%Y-%m-%d %H:%M:%S', {created}, '+' || {hours} || ' hours') || substr({created}, 20))"


# -- deals and derived group states -----------------------------------------------------------
DEALS = ("(SELECT gd.id AS deal_id, gd.max_group_member AS goal, gd.expiration_time AS exp_h, "
         "p.id AS product_id, p.vendor_id, pn.category_id FROM group_deals gd "
         "JOIN products p ON p.id = gd.product_id JOIN product_names pn ON pn.id = p.name_id) d")
BARE_DEALS = ("(SELECT gd.id AS deal_id, gd.max_group_member AS goal, gd.expiration_time AS exp_h, "
              "gd.product_id, NULL AS vendor_id, NULL AS category_id FROM group_deals gd) d")
# A membership (or its order) is never older than its group: the app creates the group with its
# first member. Reading only rows from a day before the first group on lets PostgreSQL scan a
# range of groups_carts/orders instead of all of it; both backends apply the same bound.
SLACK = dt.timedelta(days=1)


def no_index(conn) -> str:
    """SQLite's unary `+` keeps a column's index out of the plan: with a vendor filter SQLite would
    otherwise walk all of the vendor's groups (or memberships) ever, not the window's range."""
    return "+" if conn.dialect.name == "sqlite" else ""


def max_expiration(conn) -> dt.timedelta:
    """Longest deal lifetime: groups older than this cannot be active."""
    hours = conn.execute(sa.text("SELECT MAX(expiration_time) FROM group_deals")).scalar()
    return dt.timedelta(hours=int(hours or 0))


def states_cte(conn, lo: dt.datetime, hi: dt.datetime, as_of: dt.datetime, filters: Filters, scope: Scope,
               members: bool = False, dims: bool = False) -> tuple[str, dict, list]:
    """`WITH ... gs`: groups created in [lo, hi) within filters/scope with their state at as_of.

    gs columns: id, deal_id, product_id, vendor_id, category_id (NULL unless dims or filtered),
    created_at, goal, deadline, members_by_deadline, [members,] status. KPIs over many groups
    read group_facts.facts_cte instead; this one counts members (live board, group lists).
    PostgreSQL aggregates membership rows with hash joins; SQLite probes the group_id index per
    group inside a MATERIALIZED CTE (so once per group).
    """
    conds, params, binds = line_conditions(filters, scope, alias="d")
    params.update(gs_lo=bind_ts(conn, lo), gs_hi=bind_ts(conn, hi), as_of=bind_ts(conn, as_of),
                  gs_floor=bind_ts(conn, lo - SLACK))
    deals = DEALS if (conds or dims) else BARE_DEALS
    gx = f"""WITH gx AS (
  SELECT g.id, g.group_deals_id AS deal_id, d.product_id, d.vendor_id, d.category_id, g.created_at, d.goal,
         {deadline_sql(conn, 'g.created_at', 'd.exp_h')} AS deadline
  FROM groups g JOIN {deals} ON d.deal_id = {no_index(conn)}g.group_deals_id
  WHERE g.deleted_at IS NULL AND g.created_at >= :gs_lo AND g.created_at < :gs_hi AND {where(conds)}
)"""
    status = ("SELECT gm.*, CASE WHEN members_by_deadline >= goal THEN 'COMPLETED' "
              "WHEN deadline <= :as_of THEN 'EXPIRED' ELSE 'ACTIVE' END AS status FROM gm")
    live = "gc.deleted_at IS NULL AND gc.created_at < :as_of AND gc.created_at >= :gs_floor"
    if conn.dialect.name == "postgresql":
        extra = "COUNT(DISTINCT gc.user_id) AS members, " if members else ""
        cols = "gx.id, gx.deal_id, gx.product_id, gx.vendor_id, gx.category_id, gx.created_at, gx.goal, gx.deadline"
        gm = (f"SELECT {cols}, {extra}COUNT(DISTINCT CASE WHEN gc.created_at <= gx.deadline THEN gc.user_id END) "
              f"AS members_by_deadline FROM gx LEFT JOIN groups_carts gc ON gc.group_id = gx.id AND {live} "
              f"GROUP BY {cols}")
        return f"{gx}, gm AS ({gm}), gs AS ({status})", params, binds
    probe = ("(SELECT COUNT(*) FROM (SELECT gc.user_id FROM groups_carts gc WHERE gc.group_id = gx.id "
             f"AND {live} {{extra}} GROUP BY gc.user_id) {{alias}})")
    extra = f"{probe.format(extra='', alias='m1')} AS members, " if members else ""
    gm = (f"SELECT gx.*, {extra}{probe.format(extra='AND gc.created_at <= gx.deadline', alias='m2')} "
          f"AS members_by_deadline FROM gx")
    return f"{gx}, gm AS MATERIALIZED ({gm}), gs AS ({status})", params, binds


ID_COLUMNS = [("id", "group_id"), ("deal_id", "deal_id"), ("product_id", "product_id"), ("vendor_id", "vendor_id"),
              ("category_id", "category_id")]


def group_states(conn, created: Window, as_of, filters: Filters = Filters(), scope: Scope = MANAGER,
                 tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: group_id, deal_id, product_id, vendor_id, category_id, created_at (UTC), goal,
    deadline (UTC), members, members_by_deadline, status — groups created in the window."""
    as_of = resolve(conn, as_of, tz)
    win = clamp(created, as_of)
    cte, params, binds = states_cte(conn, win.start, win.end, as_of, filters, scope, members=True, dims=True)
    df = read_df(conn, f"{cte} SELECT {', '.join(f'CAST({c} AS VARCHAR(36)) AS {n}' for c, n in ID_COLUMNS)}, created_at, "
                       f"goal, deadline, members, members_by_deadline, status FROM gs ORDER BY created_at, id",
                 params, binds)
    for c in ("created_at", "deadline"):
        df[c] = as_utc(df[c])
    return df


def group_outcomes(conn, window: Window, as_of: dt.datetime, filters: Filters, scope: Scope,
                   freq: str | None, tz: str) -> pd.DataFrame:
    """Columns: key (local period start of creation, or 'all'), completed, expired, active —
    groups created in the (clamped) window, by their status at as_of."""
    cte, params, binds = facts_cte(conn, window.start, window.end, as_of, filters, scope)
    key = bucket_sql(conn, local_date_sql(conn, "created_at", tz), freq)
    sql = (f"{cte} SELECT {key} AS key, SUM(CASE WHEN status = 'COMPLETED' THEN 1 ELSE 0 END) AS completed, "
           f"SUM(CASE WHEN status = 'EXPIRED' THEN 1 ELSE 0 END) AS expired, "
           f"SUM(CASE WHEN status = 'ACTIVE' THEN 1 ELSE 0 END) AS active FROM gs GROUP BY 1")
    return read_df(conn, sql, params, binds, columns=["key", "completed", "expired", "active"])


def success_rate(completed, expired):
    """Completed share of closed groups; None when no group closed (no data, not 0%)."""
    closed = (completed or 0) + (expired or 0)
    return (completed or 0) / closed if closed else None


def group_status_counts(conn, as_of=None, nearing_hours: float = 2.0, filters: Filters = Filters(),
                        scope: Scope = MANAGER, window: Window | None = None, tz: str = DEFAULT_TZ) -> dict:
    """{'active', 'nearing_expiry', 'completed', 'expired'}: active and nearing (a subset of
    active) are live at as_of; completed and expired count groups created in `window`
    (default: the 30 days before as_of) by their status at as_of."""
    if not nearing_hours > 0:
        raise ValueError(f"nearing-expiry hours must be > 0, got {nearing_hours}")
    as_of = resolve(conn, as_of, tz)
    win = clamp(window or Window.last(as_of, 30), as_of)
    lo = min(win.start, as_of - max_expiration(conn))
    cte, params, binds = facts_cte(conn, lo, as_of, as_of, filters, scope)
    params.update(win.params(conn), near_end=bind_ts(conn, as_of + dt.timedelta(hours=nearing_hours)))
    in_win = "created_at >= :w_start AND created_at < :w_end"
    sql = (f"{cte} SELECT SUM(CASE WHEN status = 'ACTIVE' THEN 1 ELSE 0 END), "
           f"SUM(CASE WHEN status = 'ACTIVE' AND deadline < :near_end THEN 1 ELSE 0 END), "
           f"SUM(CASE WHEN status = 'COMPLETED' AND {in_win} THEN 1 ELSE 0 END), "
           f"SUM(CASE WHEN status = 'EXPIRED' AND {in_win} THEN 1 ELSE 0 END) FROM gs")
    row = read_df(conn, sql, params, binds, columns=["a", "n", "c", "e"]).iloc[0]
    return {k: int(v or 0) for k, v in zip(("active", "nearing_expiry", "completed", "expired"), row)}


def groups_nearing_expiry(conn, as_of=None, nearing_hours: float = 2.0, filters: Filters = Filters(),
                          scope: Scope = MANAGER, tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: group_id, product, vendor, members, goal, deadline (UTC), hours_left (float) —
    active groups whose deadline is less than nearing_hours after as_of, most urgent first."""
    if not nearing_hours > 0:
        raise ValueError(f"nearing-expiry hours must be > 0, got {nearing_hours}")
    as_of = resolve(conn, as_of, tz)
    cte, params, binds = states_cte(conn, as_of - max_expiration(conn), as_of, as_of, filters, scope,
                                    members=True, dims=True)
    params["near_end"] = bind_ts(conn, as_of + dt.timedelta(hours=nearing_hours))
    sql = (f"{cte} SELECT gs.id AS group_id, pn.name AS product, v.name AS vendor, gs.members, gs.goal, "
           f"gs.deadline FROM gs JOIN products p ON p.id = gs.product_id "
           f"JOIN product_names pn ON pn.id = p.name_id JOIN vendors v ON v.id = gs.vendor_id "
           f"WHERE gs.status = 'ACTIVE' AND gs.deadline < :near_end ORDER BY gs.deadline, gs.id")
    df = read_df(conn, sql, params, binds, columns=["group_id", "product", "vendor", "members", "goal", "deadline"])
    df["deadline"] = as_utc(df["deadline"])
    df["hours_left"] = ((df["deadline"] - pd.Timestamp(as_of)).dt.total_seconds() / 3600).astype(float)
    return df.astype({"members": int, "goal": int})


def group_status_series(conn, window: Window, as_of=None, freq: str = "day", filters: Filters = Filters(),
                        scope: Scope = MANAGER, tz: str = DEFAULT_TZ) -> pd.DataFrame:
    """Columns: period_start (local date), completed, expired, active — groups created in each
    period by their status at as_of; every period of the window is present (zeros)."""
    check_freq(freq)
    as_of = resolve(conn, as_of, tz)
    win = clamp(window, as_of)
    df = group_outcomes(conn, win, as_of, filters, scope, freq, tz)
    return fill_periods(df, win, freq, tz, ["completed", "expired", "active"])


def fill_periods(df: pd.DataFrame, win: Window, freq: str, tz: str, columns: list[str],
                 fill=0) -> pd.DataFrame:
    """One row per period start of the window (key -> period_start), missing periods filled."""
    frame = df.copy()
    frame["period_start"] = as_dates(frame["key"]) if len(frame) else []
    frame = frame.set_index("period_start")[columns]
    out = frame.reindex(pd.Index(period_starts(win, freq, tz), name="period_start"))
    if fill is not None:
        out = out.fillna(fill).astype(int)
    return out.reset_index()
