"""Operational health metrics and threshold alerts that neither flap nor fire on a blip.

A rule fires only after its condition has held for `for_seconds` and resolves only once the
value is back past `resolve_threshold` (on the safe side of `threshold`) for
`resolve_for_seconds`. Fired and resolved alerts are stored and POSTed as JSON to an optional
webhook (ALERT_WEBHOOK_URL); a webhook that fails is recorded, never fatal.
"""
from __future__ import annotations

import datetime as dt
import json
import operator
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from analytics.anomalies import volume_residuals
from data_access import operations as ops
from data_access.dialect import bind_ts, project_table, to_utc_naive, utc_to_local_date
from data_access.meta import get_meta
from data_access.pipeline_tables import alert_state, alerts, request_metrics
from pipeline.anomalies import data_as_of
from pipeline.group_tracking import bump_version

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "config" / "alert_rules.json"
COMPARE = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    comparison: str
    threshold: float
    for_seconds: float = 0.0
    severity: str = "warning"
    resolve_threshold: float | None = None
    resolve_for_seconds: float = 0.0
    description: str = ""

    def __post_init__(self):
        if self.comparison not in COMPARE:
            raise ValueError(f"rule {self.name}: comparison must be one of {sorted(COMPARE)}")
        if self.for_seconds < 0 or self.resolve_for_seconds < 0:
            raise ValueError(f"rule {self.name}: durations must be >= 0")
        r = self.resolve_at
        if (self.comparison in (">", ">=") and r > self.threshold) or (self.comparison in ("<", "<=") and r < self.threshold):
            raise ValueError(f"rule {self.name}: resolve_threshold must be on the safe side of threshold")

    @property
    def resolve_at(self) -> float:
        return self.threshold if self.resolve_threshold is None else self.resolve_threshold

    def breached(self, value: float) -> bool:
        return COMPARE[self.comparison](value, self.threshold)

    def cleared(self, value: float) -> bool:
        return not COMPARE[self.comparison](value, self.resolve_at)


def load_rules(path: str | Path | None = None) -> list[Rule]:
    path = Path(path or os.environ.get("ALERT_RULES_FILE") or DEFAULT_RULES)
    try:
        raw = json.loads(path.read_text())
        rules = [Rule(**{k: v for k, v in r.items() if not k.startswith("_")}) for r in raw["rules"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"bad alert rules file {path}: {exc}") from None
    if len({r.name for r in rules}) != len(rules):
        raise ValueError(f"bad alert rules file {path}: rule names must be unique")
    return rules


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _hours(delta) -> float:
    return delta.total_seconds() / 3600


def collect_metrics(engine: sa.Engine, tz: str, now: dt.datetime | None = None) -> dict[str, float | None]:
    """Current value of every metric a rule may use (None = no data).

    ChipChip's process (processing delay, pending age, conversion, volume) is measured as of the
    newest source change (a historical dump is not "late"); the pipeline's own work (ETL lag,
    refund delay, request latency) against now.
    """
    now = to_utc_naive(now or _now())
    m: dict[str, float | None] = {}
    with engine.connect() as conn:
        as_of = data_as_of(conn, now)
        done = ops.completion_times(conn, as_of - dt.timedelta(hours=24), as_of)
        hrs = (done["updated_at"] - done["created_at"]).dt.total_seconds() / 3600
        m["order_processing_delay_p90_hours"] = ops.percentile(hrs, 90)
        pend = conn.execute(sa.text("SELECT created_at FROM orders WHERE status = 'PENDING' AND deleted_at IS NULL "
                                    "AND created_at <= :a"), {"a": bind_ts(conn, as_of)}).scalars().all()
        ages = [_hours(as_of - to_utc_naive(dt.datetime.fromisoformat(p) if isinstance(p, str) else p)) for p in pend]
        m["pending_order_age_p90_hours"] = ops.percentile(ages, 90)
        oldest = conn.execute(sa.text(f"SELECT MIN(created_at) FROM {project_table(conn, 'pulse_refunds')} "
                                      "WHERE status IN ('pending', 'processing')")).scalar()
        m["refund_delay_max_hours"] = 0.0 if oldest is None else _hours(now - _ts(oldest))
        m["etl_lag_seconds"] = _etl_lag(conn, now)
        ms = conn.execute(sa.text(f"SELECT ms FROM {project_table(conn, 'pulse_request_metrics')} WHERE at >= :s"),
                          {"s": bind_ts(conn, now - dt.timedelta(minutes=5))}).scalars().all()
        m["request_latency_p95_ms"] = ops.percentile(ms, 95)
        m["group_conversion_drop"] = _conversion_drop(conn, as_of)
        daily = ops.daily_orders(conn)
    today = utc_to_local_date(as_of, tz)
    r = volume_residuals(daily[daily["day"].astype(str) < str(today)]) if len(daily) else daily
    m["order_volume_abs_z"] = float(abs(r["z"].iloc[-1])) if len(r) and np.isfinite(r["z"].iloc[-1]) else None
    return m


def _ts(v) -> dt.datetime:
    return to_utc_naive(dt.datetime.fromisoformat(v) if isinstance(v, str) else v)


def _etl_lag(conn, now: dt.datetime) -> float:
    """now - watermark while source changes wait beyond it; 0 when the ETL has caught up."""
    wm = get_meta(conn, "etl_watermark")
    newest = conn.execute(sa.text("SELECT MAX(updated_at) FROM orders")).scalar()
    if newest is None:
        return 0.0
    if wm is None:  # never ran: as old as the oldest change waiting
        oldest = conn.execute(sa.text("SELECT MIN(updated_at) FROM orders")).scalar()
        return max(0.0, (now - _ts(oldest)).total_seconds())
    wm = dt.datetime.fromisoformat(wm)
    return max(0.0, (now - wm).total_seconds()) if _ts(newest) > wm else 0.0


def _conversion_drop(conn, as_of: dt.datetime) -> float | None:
    """(prev - cur) / prev of the share of groups completing, deadlines in the last 24 h vs the
    7 days before; None without data on either side."""
    t = project_table(conn, "pulse_group_state")
    rows = conn.execute(sa.text(
        f"SELECT CASE WHEN deadline >= :d1 THEN 1 ELSE 0 END, COUNT(*), SUM(CASE WHEN goal_reached_at <= deadline "
        f"THEN 1 ELSE 0 END) FROM {t} WHERE deadline >= :d8 AND deadline < :now GROUP BY 1"),
        {"d1": bind_ts(conn, as_of - dt.timedelta(days=1)), "d8": bind_ts(conn, as_of - dt.timedelta(days=8)),
         "now": bind_ts(conn, as_of)}).all()
    share = {int(k): done / n for k, n, done in rows if n}
    if 0 not in share or 1 not in share or share[0] == 0:
        return None
    return (share[0] - share[1]) / share[0]


def post_webhook(url: str | None, payload: dict, timeout: float = 5.0) -> str | None:
    """POST payload as JSON; returns 'HTTP 200' or 'error: ...' (None when no URL is set)."""
    if not url:
        return None
    req = urllib.request.Request(url, data=json.dumps(payload, default=str).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "User-Agent": "chipchip-pulse"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (operator-set URL)
            return f"HTTP {resp.status}"
    except Exception as exc:  # an unreachable webhook must not stop the pipeline
        return f"error: {type(exc).__name__}: {exc}"[:60]


def _payload(rule: Rule, state: str, alert_id: int, value, fired_at, resolved_at=None) -> dict:
    return {"alert_id": alert_id, "rule": rule.name, "metric": rule.metric, "state": state,
            "severity": rule.severity, "value": value, "threshold": rule.threshold,
            "comparison": rule.comparison, "description": rule.description,
            "fired_at": fired_at.isoformat() + "Z", "resolved_at": resolved_at.isoformat() + "Z" if resolved_at else None}


def evaluate(engine: sa.Engine, rules: list[Rule], values: dict[str, float | None],
             now: dt.datetime | None = None, webhook_url: str | None = None) -> list[dict]:
    """Advance every rule's state machine with the current values; returns the notifications
    sent (fired/resolved). States: ok -> pending -> firing -> resolving -> ok."""
    now = to_utc_naive(now or _now())
    url = webhook_url if webhook_url is not None else os.environ.get("ALERT_WEBHOOK_URL")
    sent = []
    for rule in rules:
        value = values.get(rule.metric)
        with engine.begin() as conn:
            q = sa.select(alert_state).where(alert_state.c.rule == rule.name)
            if conn.dialect.name == "postgresql":
                q = q.with_for_update()
            st = conn.execute(q).mappings().first()
            state, since, alert_id = (st["state"], st["since"], st["alert_id"]) if st else ("ok", None, None)
            since = to_utc_naive(since) if since else None
            event = None
            if value is None:
                pass  # no data: neither starts nor ends anything
            elif state in ("ok", "pending"):
                if not rule.breached(value):
                    state, since = "ok", None
                else:
                    since = since if state == "pending" else now
                    state = "pending"
                    if (now - since).total_seconds() >= rule.for_seconds:
                        alert_id = conn.execute(sa.insert(alerts).values(
                            rule=rule.name, metric=rule.metric, severity=rule.severity, state="firing",
                            value=value, threshold=rule.threshold, comparison=rule.comparison,
                            message=rule.description[:300], fired_at=now).returning(alerts.c.id)).scalar_one()
                        state, since, event = "firing", None, _payload(rule, "firing", alert_id, value, now)
            elif not rule.cleared(value):
                state, since = "firing", None
            else:
                since = since if state == "resolving" else now
                state = "resolving"
                if (now - since).total_seconds() >= rule.resolve_for_seconds:
                    conn.execute(sa.update(alerts).where(alerts.c.id == alert_id).values(
                        state="resolved", resolved_at=now, resolved_value=value))
                    fired = conn.execute(sa.select(alerts.c.fired_at).where(alerts.c.id == alert_id)).scalar()
                    event = _payload(rule, "resolved", alert_id, value, to_utc_naive(fired or now), now)
                    state, since, alert_id = "ok", None, None
            if event:  # the Operations page shows the alert log: let its caches know
                bump_version(conn)
            row = {"state": state, "since": since, "alert_id": alert_id, "last_value": value, "evaluated_at": now}
            if st:
                conn.execute(sa.update(alert_state).where(alert_state.c.rule == rule.name).values(**row))
            else:
                conn.execute(sa.insert(alert_state).values(rule=rule.name, **row))
        if event:
            status = post_webhook(url, event)
            with engine.begin() as conn:
                conn.execute(sa.update(alerts).where(alerts.c.id == event["alert_id"]).values(webhook_status=status))
            sent.append({**event, "webhook_status": status})
    return sent


def run(engine: sa.Engine, tz: str, rules_path=None, now: dt.datetime | None = None,
        webhook_url: str | None = None) -> tuple[dict, list[dict]]:
    """Collect metrics and evaluate the configured rules once (the follow loop's alert step)."""
    values = collect_metrics(engine, tz, now)
    sent = evaluate(engine, load_rules(rules_path), values, now, webhook_url)
    with engine.begin() as conn:  # the latency metric reads 5 minutes; a week is plenty for the page
        conn.execute(sa.delete(request_metrics).where(
            request_metrics.c.at < to_utc_naive(now or _now()) - dt.timedelta(days=7)))
    return values, sent
