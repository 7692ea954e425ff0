"""Queries of the Operations page and of the pipeline's health checks (parameterized SQL only).

Every function returns a DataFrame whose columns are listed in its docstring; timestamps come
back as naive UTC pandas timestamps on both backends.
"""
from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data_access.dialect import bind_ts, project_table, to_utc_naive
from data_access.filters import MANAGER, Scope
from data_access.pipeline_tables import request_metrics

AGE_BUCKETS = [(0, 1, "< 1 h"), (1, 6, "1–6 h"), (6, 24, "6–24 h"), (24, 72, "1–3 d"), (72, None, "> 3 d")]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def naive_utc(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Text (SQLite) or aware (PostgreSQL) timestamps -> naive UTC datetime64."""
    for c in cols:
        if c in df:
            df[c] = pd.to_datetime(df[c], format="ISO8601", utc=True).dt.tz_localize(None)
    return df


def read_df(conn, sql: str, params: dict | None = None, binds: list | None = None,
            columns: list[str] | None = None) -> pd.DataFrame:
    """Like frames.read_df, but builds the frame from plain tuples: pandas probing 100K SQLAlchemy
    Row objects for attributes cost seconds per call at scale 1."""
    stmt = sa.text(sql).bindparams(*binds) if binds else sa.text(sql)
    result = conn.execute(stmt, params or {})
    df = pd.DataFrame([tuple(r) for r in result], columns=columns or list(result.keys()))
    for c in df.columns:
        sample = df[c].dropna()
        if df[c].dtype == object and len(sample):
            if isinstance(sample.iloc[0], decimal.Decimal):
                df[c] = df[c].astype(float)
            elif isinstance(sample.iloc[0], uuid.UUID):
                df[c] = df[c].map(lambda v: None if v is None else str(v))
    return df


def _str(column: str) -> str:
    """Ids as text in big results: psycopg2 would build a uuid.UUID per value (seconds at scale 1)."""
    return f"CAST({column} AS VARCHAR(36))"


def _t(conn, name: str) -> str:
    return project_table(conn, name)


def refund_queue(engine: sa.Engine, now: dt.datetime | None = None) -> pd.DataFrame:
    """status, refunds, amount, oldest_age_hours (age of the oldest refund in that status)."""
    with engine.connect() as conn:
        df = read_df(conn, f"SELECT status, COUNT(*) AS refunds, SUM(amount) AS amount, MIN(created_at) AS oldest "
                     f"FROM {_t(conn, 'pulse_refunds')} GROUP BY status ORDER BY status",
                     columns=["status", "refunds", "amount", "oldest"])
    naive_utc(df, "oldest")
    now = to_utc_naive(now or _now())
    df["oldest_age_hours"] = (pd.Timestamp(now) - df["oldest"]).dt.total_seconds() / 3600
    return df.drop(columns=["oldest"])


def refunds_frame(conn) -> pd.DataFrame:
    """refund_id, order_id, group_id, status, amount, attempts, created_at, last_error,
    paid_amount (the order's total_amount), order_status."""
    df = read_df(conn, f"SELECT {_str('r.id')}, {_str('r.order_id')}, {_str('r.group_id')}, r.status, r.amount, r.attempts, r.created_at, "
                 f"r.last_error, o.total_amount, o.status FROM {_t(conn, 'pulse_refunds')} r "
                 f"LEFT JOIN orders o ON o.id = r.order_id",
                 columns=["refund_id", "order_id", "group_id", "status", "amount", "attempts", "created_at",
                          "last_error", "paid_amount", "order_status"])
    return naive_utc(df, "created_at")


def refund_delays(engine: sa.Engine, threshold_hours: float = 24.0, limit: int = 200,
                  now: dt.datetime | None = None) -> pd.DataFrame:
    """Oldest first: refund_id, order_id, group_id, status, amount, attempts, created_at,
    age_hours, last_error — refunds pending/processing for longer than the threshold."""
    now = to_utc_naive(now or _now())
    with engine.connect() as conn:
        df = read_df(conn, f"SELECT id AS refund_id, order_id, group_id, status, amount, attempts, created_at, "
                     f"last_error FROM {_t(conn, 'pulse_refunds')} WHERE status IN ('pending', 'processing') "
                     f"AND created_at < :cut ORDER BY created_at, id LIMIT :n",
                     {"cut": bind_ts(conn, now - dt.timedelta(hours=threshold_hours)), "n": int(limit)},
                     columns=["refund_id", "order_id", "group_id", "status", "amount", "attempts", "created_at",
                              "last_error"])
    naive_utc(df, "created_at")
    df.insert(7, "age_hours", (pd.Timestamp(now) - df["created_at"]).dt.total_seconds() / 3600)
    return df


def anomalies_list(engine: sa.Engine, kinds: list[str] | None = None, limit: int = 500) -> pd.DataFrame:
    """kind, severity, entity_id, observed_at, summary, evidence (JSON text), detected_at —
    the latest detection run, critical first."""
    with engine.connect() as conn:
        where, params, binds = "1 = 1", {"n": int(limit)}, []
        if kinds:
            where, params["kinds"] = "kind IN :kinds", list(kinds)
            binds.append(sa.bindparam("kinds", expanding=True))
        df = read_df(conn, f"SELECT kind, severity, entity_id, observed_at, summary, evidence, detected_at "
                     f"FROM {_t(conn, 'pulse_anomalies')} WHERE {where} "
                     f"ORDER BY CASE severity WHEN 'critical' THEN 0 ELSE 1 END, kind, observed_at DESC, entity_id "
                     f"LIMIT :n", params, binds,
                     columns=["kind", "severity", "entity_id", "observed_at", "summary", "evidence", "detected_at"])
    return naive_utc(df, "observed_at", "detected_at")


def alert_log(engine: sa.Engine, limit: int = 200) -> pd.DataFrame:
    """Newest first: id, rule, metric, severity, state, value, threshold, comparison, message,
    fired_at, resolved_at, resolved_value, webhook_status."""
    cols = ["id", "rule", "metric", "severity", "state", "value", "threshold", "comparison", "message",
            "fired_at", "resolved_at", "resolved_value", "webhook_status"]
    with engine.connect() as conn:
        df = read_df(conn, f"SELECT {', '.join(cols)} FROM {_t(conn, 'pulse_alerts')} "
                     f"ORDER BY fired_at DESC, id DESC LIMIT :n", {"n": int(limit)}, columns=cols)
    return naive_utc(df, "fired_at", "resolved_at")


def quarantine_counts(engine: sa.Engine) -> pd.DataFrame:
    """source_table, reason, rows, last_detected_at — rows the ETL refused, by reason."""
    with engine.connect() as conn:
        df = read_df(conn, f"SELECT source_table, reason, COUNT(*) AS n, MAX(detected_at) AS last "
                     f"FROM {_t(conn, 'pulse_quarantine')} GROUP BY source_table, reason ORDER BY 3 DESC, 2",
                     columns=["source_table", "reason", "rows", "last_detected_at"])
    return naive_utc(df, "last_detected_at")


def completion_times(conn, start: dt.datetime, end: dt.datetime, by: str = "updated_at") -> pd.DataFrame:
    """created_at, updated_at of completed, non-deleted orders with `by` in [start, end)."""
    col = "updated_at" if by == "updated_at" else "created_at"
    df = read_df(conn, f"SELECT created_at, updated_at FROM orders WHERE status = 'COMPLETED' "
                 f"AND deleted_at IS NULL AND {col} >= :lo AND {col} < :hi",
                 {"lo": bind_ts(conn, start), "hi": bind_ts(conn, end)}, columns=["created_at", "updated_at"])
    return naive_utc(df, "created_at", "updated_at")


def processing_delay_by_day(engine: sa.Engine, tz: str, days: int = 30,
                            now: dt.datetime | None = None) -> pd.DataFrame:
    """day (local, of creation), orders, p50_hours, p90_hours: completion (updated_at of
    COMPLETED orders) minus creation, for orders created in the last `days` days."""
    now = to_utc_naive(now or _now())
    with engine.connect() as conn:
        df = completion_times(conn, now - dt.timedelta(days=days), now, by="created_at")
    if df.empty:
        return pd.DataFrame(columns=["day", "orders", "p50_hours", "p90_hours"])
    df["hours"] = (df["updated_at"] - df["created_at"]).dt.total_seconds() / 3600
    df["day"] = df["created_at"].dt.tz_localize("UTC").dt.tz_convert(tz).dt.date
    g = df.groupby("day")["hours"]
    return pd.DataFrame({"orders": g.size(), "p50_hours": g.quantile(0.5), "p90_hours": g.quantile(0.9)}
                        ).reset_index()


def pending_orders_by_age(engine: sa.Engine, now: dt.datetime | None = None) -> pd.DataFrame:
    """bucket, orders, amount — PENDING, non-deleted orders by age (every bucket listed)."""
    now = to_utc_naive(now or _now())
    cases, params = [], {}
    for i, (lo, hi, label) in enumerate(AGE_BUCKETS):
        params[f"b{i}"] = label
        if hi is None:
            cases.append(f"ELSE :b{i}")
        else:
            params[f"t{i}"] = now - dt.timedelta(hours=hi)
            cases.append(f"WHEN created_at > :t{i} THEN :b{i}")
    with engine.connect() as conn:
        params = {k: bind_ts(conn, v) if isinstance(v, dt.datetime) else v for k, v in params.items()}
        df = read_df(conn, f"SELECT CASE {' '.join(cases)} END AS bucket, COUNT(*) AS orders, "
                     f"COALESCE(SUM(total_amount), 0) AS amount FROM orders WHERE status = 'PENDING' "
                     f"AND deleted_at IS NULL GROUP BY 1", params, columns=["bucket", "orders", "amount"])
    labels = [b[2] for b in AGE_BUCKETS]
    return (df.set_index("bucket").reindex(labels, fill_value=0).rename_axis("bucket").reset_index()
            .astype({"orders": int, "amount": float}))


def group_events_recent(engine: sa.Engine, limit: int = 100, kinds: list[str] | None = None,
                        scope: Scope = MANAGER) -> pd.DataFrame:
    """Newest first: at, kind, group_id, group_deal_id, product_id, vendor_id, members, goal,
    deadline, derived_status — goal reached / nearing expiry / expired events."""
    cols = ["at", "kind", "group_id", "group_deal_id", "product_id", "vendor_id", "members", "goal",
            "deadline", "derived_status"]
    conds, params, binds = [], {"n": int(limit)}, []
    if kinds:
        conds.append("e.kind IN :kinds")
        params["kinds"] = list(kinds)
        binds.append(sa.bindparam("kinds", expanding=True))
    if scope.vendor_id is not None:
        conds.append("s.vendor_id = :vendor")
        params["vendor"] = scope.vendor_id
    with engine.connect() as conn:
        df = read_df(conn, f"SELECT e.at, e.kind, e.group_id, s.group_deal_id, s.product_id, s.vendor_id, "
                     f"s.members, s.goal, s.deadline, s.derived_status FROM {_t(conn, 'pulse_group_events')} e "
                     f"JOIN {_t(conn, 'pulse_group_state')} s ON s.group_id = e.group_id "
                     f"WHERE {' AND '.join(conds) or '1 = 1'} ORDER BY e.at DESC, e.id DESC LIMIT :n",
                     params, binds, columns=cols)
    return naive_utc(df, "at", "deadline")


def group_status_frame(conn) -> pd.DataFrame:
    """group_id, stored_status (live groups.status), goal_reached_at, deadline, members, goal."""
    df = read_df(conn, f"SELECT {_str('s.group_id')}, g.status, s.goal_reached_at, s.deadline, s.members, s.goal "
                 f"FROM {_t(conn, 'pulse_group_state')} s JOIN groups g ON g.id = s.group_id "
                 f"WHERE g.deleted_at IS NULL",
                 columns=["group_id", "stored_status", "goal_reached_at", "deadline", "members", "goal"])
    return naive_utc(df, "goal_reached_at", "deadline")


def expired_paid_orders(conn, as_of: dt.datetime) -> pd.DataFrame:
    """order_id, group_id, amount, deadline, has_refund: paid orders (not cash on delivery, not
    FAILED, nothing soft-deleted) of groups expired at `as_of` by the §4 rule."""
    df = read_df(conn, f"SELECT {_str('o.id')}, {_str('s.group_id')}, o.total_amount, s.deadline, "
                 f"CASE WHEN r.id IS NULL THEN 0 ELSE 1 END FROM {_t(conn, 'pulse_group_state')} s "
                 f"JOIN groups_carts gc ON gc.group_id = s.group_id AND gc.deleted_at IS NULL "
                 f"JOIN orders o ON o.groups_carts_id = gc.id AND o.deleted_at IS NULL "
                 f"LEFT JOIN {_t(conn, 'pulse_refunds')} r ON r.order_id = o.id "
                 f"WHERE (s.goal_reached_at IS NULL OR s.goal_reached_at > s.deadline) AND s.deadline <= :as_of "
                 f"AND o.payment_method IS NOT NULL AND o.payment_method <> 'CASH_ON_DELIVERY' "
                 f"AND o.status <> 'FAILED'", {"as_of": bind_ts(conn, as_of)},
                 columns=["order_id", "group_id", "amount", "deadline", "has_refund"])
    return naive_utc(df, "deadline")


def daily_orders(conn) -> pd.DataFrame:
    """day (local), orders: orders created per local business day, every status (order lines:
    line_no 0 is a group order, 1 the first line of an individual order — one row per order)."""
    return read_df(conn, f"SELECT local_day, COUNT(*) FROM {_t(conn, 'pulse_order_lines')} "
                   f"WHERE line_no <= 1 GROUP BY local_day ORDER BY local_day", columns=["day", "orders"])


def record_request(engine: sa.Engine, path: str, ms: float, status: int | None = None,
                   at: dt.datetime | None = None) -> None:
    """Store one served request's latency (the server calls this; the latency alert reads it)."""
    with engine.begin() as conn:
        conn.execute(sa.insert(request_metrics).values(path=path[:200], ms=float(ms), status=status,
                                                       at=to_utc_naive(at or _now())))


def request_latency(conn, since: dt.datetime) -> pd.DataFrame:
    """path, requests, p50_ms, p95_ms over requests served since `since`."""
    df = read_df(conn, f"SELECT path, ms FROM {_t(conn, 'pulse_request_metrics')} WHERE at >= :since",
                 {"since": bind_ts(conn, since)}, columns=["path", "ms"])
    if df.empty:
        return pd.DataFrame(columns=["path", "requests", "p50_ms", "p95_ms"])
    g = df.groupby("path")["ms"]
    return pd.DataFrame({"requests": g.size(), "p50_ms": g.quantile(0.5), "p95_ms": g.quantile(0.95)}).reset_index()


def percentile(values, q: float) -> float | None:
    values = np.asarray(values, dtype=float)
    return float(np.percentile(values, q)) if len(values) else None

