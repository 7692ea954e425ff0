"""Anomaly detection on plain DataFrames (pandas/numpy only; the SQL lives in data_access).

Every detector returns rows in one shape, ANOMALY_COLUMNS, so the Operations page lists them
together: kind, severity, entity_id, observed_at, summary (one line for people) and evidence
(a dict of the numbers that justify the finding).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

ANOMALY_COLUMNS = ["kind", "severity", "entity_id", "observed_at", "summary", "evidence"]
STORED_FOR = {"COMPLETED": {"COMPLETED"}, "EXPIRED": {"FAILED"},
              "ACTIVE": {"PENDING", "ACTIVE"}, "NEARING_EXPIRY": {"PENDING", "ACTIVE"}}


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=ANOMALY_COLUMNS)


def _num(v):
    """JSON-friendly scalar for evidence."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return round(float(v), 4)
    return v if isinstance(v, (int, str, bool)) else str(v)


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD); falls back to the mean absolute deviation when MAD is 0."""
    x = np.asarray(x, dtype=float)
    med = np.nanmedian(x)
    scale = 1.4826 * np.nanmedian(np.abs(x - med))
    if not scale > 0:
        scale = 1.2533 * np.nanmean(np.abs(x - med))
    if not scale > 0:
        return np.zeros_like(x)
    return (x - med) / scale


def volume_residuals(daily: pd.DataFrame, min_days: int = 28) -> pd.DataFrame:
    """Expected orders per day = weekday factor x level, and the robust z-score of the log residual.

    The weekday factors are medians (over all weeks) of the day's ratio to its centred 7-day mean;
    the level is the median of the 7 *previous* deseasonalised days, so a spike never hides in its
    own baseline and the newest day is judged like any other. `daily`: columns day, orders
    (complete days only). Returns day, orders, expected, residual, z (empty: too little history).
    """
    cols = ["day", "orders", "expected", "residual", "z"]
    if daily is None or len(daily) == 0:
        return pd.DataFrame(columns=cols)
    s = daily.assign(day=pd.to_datetime(daily["day"])).groupby("day")["orders"].sum().astype(float)
    s = s.reindex(pd.date_range(s.index.min(), s.index.max(), freq="D"), fill_value=0.0)
    if len(s) < min_days:
        return pd.DataFrame(columns=cols)
    wd = s.index.day_of_week
    ratio = s / s.rolling(7, center=True).mean().replace(0, np.nan)
    factor = ratio.groupby(wd).median().reindex(range(7)).fillna(1.0).to_numpy()
    factor = np.where(factor > 0, factor, 1.0)
    level = (s / factor[wd]).shift(1).rolling(7, min_periods=4).median()
    expected = level * factor[wd]
    residual = np.log1p(s) - np.log1p(expected)
    out = pd.DataFrame({"day": s.index.date, "orders": s.to_numpy(), "expected": expected.to_numpy(),
                        "residual": residual.to_numpy()})
    out["z"] = robust_z(out["residual"].to_numpy())
    return out


def volume_anomalies(daily: pd.DataFrame, threshold: float = 4.5, min_days: int = 28) -> pd.DataFrame:
    """Days whose order volume departs from the weekly pattern by more than `threshold` robust z."""
    r = volume_residuals(daily, min_days)
    rows = []
    for d in r[np.abs(r["z"]) > threshold].itertuples():
        word = "spike" if d.z > 0 else "drop"
        rows.append({"kind": "order_volume", "severity": "warning", "entity_id": str(d.day),
                     "observed_at": pd.Timestamp(d.day), "summary":
                     f"order volume {word} on {d.day}: {d.orders:.0f} orders vs ~{d.expected:.0f} expected",
                     "evidence": {"orders": _num(d.orders), "expected": _num(d.expected),
                                  "log_residual": _num(d.residual), "robust_z": _num(d.z),
                                  "threshold": threshold}})
    return _frame(rows)


def refund_delays(refunds: pd.DataFrame, as_of: pd.Timestamp, threshold_hours: float = 24.0) -> pd.DataFrame:
    """Refunds still pending/processing longer than the threshold.
    `refunds`: refund_id, order_id, status, amount, attempts, created_at, last_error."""
    if len(refunds) == 0:
        return _frame([])
    age = (pd.Timestamp(as_of) - pd.to_datetime(refunds["created_at"])).dt.total_seconds() / 3600
    late = refunds[refunds["status"].isin(["pending", "processing"]) & (age > threshold_hours)]
    return _frame([{
        "kind": "refund_delay", "severity": "critical" if a > 3 * threshold_hours else "warning",
        "entity_id": str(r.refund_id), "observed_at": pd.Timestamp(r.created_at),
        "summary": f"refund of {r.amount:,.2f} ETB {r.status} for {a:.1f} h (threshold {threshold_hours:g} h)",
        "evidence": {"order_id": str(r.order_id), "status": r.status, "amount": _num(r.amount),
                     "age_hours": _num(a), "attempts": _num(r.attempts), "last_error": _num(r.last_error)}}
        for r, a in zip(late.itertuples(), age[late.index])])


def refund_discrepancies(refunds: pd.DataFrame, tolerance: float = 0.005) -> pd.DataFrame:
    """Refund amount != what was paid; refunded (not failed) orders that also completed.
    `refunds`: refund_id, order_id, status, amount, paid_amount, order_status."""
    rows = []
    if len(refunds) == 0:
        return _frame(rows)
    paid = refunds["paid_amount"].astype(float)
    wrong = refunds[paid.isna() | ((refunds["amount"].astype(float) - paid).abs() > tolerance)]
    for r in wrong.itertuples():
        rows.append({"kind": "refund_amount_mismatch", "severity": "critical", "entity_id": str(r.refund_id),
                     "observed_at": None, "summary": f"refund {r.amount:,.2f} ETB but the order paid "
                     f"{'unknown' if pd.isna(r.paid_amount) else f'{r.paid_amount:,.2f} ETB'}",
                     "evidence": {"order_id": str(r.order_id), "refund_amount": _num(r.amount),
                                  "paid_amount": _num(r.paid_amount), "refund_status": r.status}})
    both = refunds[(refunds["order_status"] == "COMPLETED") & (refunds["status"] != "failed")]
    for r in both.itertuples():
        rows.append({"kind": "refunded_and_completed", "severity": "critical", "entity_id": str(r.refund_id),
                     "observed_at": None, "summary": f"order {str(r.order_id)[:8]} is COMPLETED yet refunded ({r.status})",
                     "evidence": {"order_id": str(r.order_id), "refund_status": r.status,
                                  "amount": _num(r.amount), "order_status": r.order_status}})
    return _frame(rows)


def missing_refunds(paid_orders: pd.DataFrame, as_of: pd.Timestamp, grace_hours: float = 1.0) -> pd.DataFrame:
    """Paid orders of expired groups with no refund record, once the sweeper has had its grace.
    `paid_orders`: order_id, group_id, amount, deadline, has_refund."""
    if len(paid_orders) == 0:
        return _frame([])
    due = pd.to_datetime(paid_orders["deadline"]) < pd.Timestamp(as_of) - pd.Timedelta(hours=grace_hours)
    miss = paid_orders[due & ~paid_orders["has_refund"].astype(bool)]
    return _frame([{
        "kind": "missing_refund", "severity": "critical", "entity_id": str(r.order_id),
        "observed_at": pd.Timestamp(r.deadline), "summary":
        f"group {str(r.group_id)[:8]} expired but its paid order ({r.amount:,.2f} ETB) has no refund",
        "evidence": {"group_id": str(r.group_id), "amount": _num(r.amount),
                     "deadline": _num(pd.Timestamp(r.deadline))}} for r in miss.itertuples()])


def derive_status(goal_reached_at: pd.Series, deadline: pd.Series, as_of: pd.Timestamp,
                  near_hours: float = 2.0) -> pd.Series:
    """DESIGN.md §4 status at `as_of` from the goal-th join time and the deadline."""
    reached, deadline = pd.to_datetime(goal_reached_at), pd.to_datetime(deadline)
    as_of = pd.Timestamp(as_of)
    done = reached.notna() & (reached <= deadline) & (reached <= as_of)
    return pd.Series(np.select([done, as_of >= deadline, deadline - as_of < pd.Timedelta(hours=near_hours)],
                               ["COMPLETED", "EXPIRED", "NEARING_EXPIRY"], "ACTIVE"), index=reached.index)


def status_contradictions(groups: pd.DataFrame, as_of: pd.Timestamp, grace_hours: float = 1.0) -> pd.DataFrame:
    """Stored groups.status that contradicts the derived one (ChipChip stores EXPIRED as FAILED).

    A stored PENDING/ACTIVE is allowed for `grace_hours` after the group completed or expired
    (ChipChip's own job updates it with some lag). `groups`: group_id, stored_status,
    goal_reached_at, deadline, members, goal.
    """
    if len(groups) == 0:
        return _frame([])
    as_of = pd.Timestamp(as_of)
    derived = derive_status(groups["goal_reached_at"], groups["deadline"], as_of)
    changed_at = pd.to_datetime(groups["goal_reached_at"]).where(derived == "COMPLETED",
                                                                 pd.to_datetime(groups["deadline"]))
    ok = np.array([s in STORED_FOR.get(d, set()) for s, d in zip(groups["stored_status"], derived)])
    lag = groups["stored_status"].isin(["PENDING", "ACTIVE"]) & derived.isin(["COMPLETED", "EXPIRED"]) & (
        as_of - changed_at < pd.Timedelta(hours=grace_hours))
    bad = groups[~ok & ~lag.to_numpy()]
    return _frame([{
        "kind": "status_contradiction", "severity": "warning", "entity_id": str(r.group_id),
        "observed_at": None, "summary": f"group stored {r.stored_status} but derived {d} "
        f"({r.members}/{r.goal} members by the deadline rule)",
        "evidence": {"stored_status": r.stored_status, "derived_status": d, "members": _num(r.members),
                     "goal": _num(r.goal), "goal_reached_at": _num(pd.Timestamp(r.goal_reached_at))
                     if pd.notna(r.goal_reached_at) else None, "deadline": _num(pd.Timestamp(r.deadline))}}
        for r, d in zip(bad.itertuples(), derived[bad.index])])
