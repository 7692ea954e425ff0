"""Run every anomaly detector against the database and store the findings for the Operations page.

Checks on ChipChip's data (stored status, volume, missing refunds) are made as of the newest
source change, capped at now: a historical dump is judged as of its own end, not flagged
for having stopped. Refund delays are the pipeline's own clock and use now.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from analytics import anomalies as an
from data_access import operations as ops
from data_access.dialect import to_utc_naive, utc_to_local_date
from data_access.pipeline_tables import anomalies as anomalies_table
from pipeline.group_tracking import bump_version


@dataclass(frozen=True)
class AnomalyConfig:
    refund_delay_hours: float = 24.0
    volume_threshold: float = 4.5
    status_grace_hours: float = 1.0
    refund_grace_hours: float = 1.0


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def data_as_of(conn, now: dt.datetime) -> dt.datetime:
    """Newest change in the source tables, capped at `now` (the as-of of historical dumps)."""
    newest = []
    for t in ("orders", "groups", "groups_carts"):
        v = conn.execute(sa.text(f"SELECT MAX(updated_at) FROM {t}")).scalar()
        if v is not None:
            newest.append(to_utc_naive(dt.datetime.fromisoformat(v) if isinstance(v, str) else v))
    return min(max(newest), now) if newest else now


def detect(engine: sa.Engine, tz: str, now: dt.datetime | None = None,
           config: AnomalyConfig = AnomalyConfig()) -> pd.DataFrame:
    """All findings (analytics.anomalies.ANOMALY_COLUMNS) as of now / the data's as-of."""
    now = to_utc_naive(now or _now())
    with engine.connect() as conn:
        as_of = data_as_of(conn, now)
        refunds = ops.refunds_frame(conn)
        groups = ops.group_status_frame(conn)
        paid = ops.expired_paid_orders(conn, as_of)
        daily = ops.daily_orders(conn)
    today = utc_to_local_date(as_of, tz)
    daily = daily[pd.to_datetime(daily["day"]).dt.date < today] if len(daily) else daily
    found = [
        an.refund_delays(refunds, pd.Timestamp(now), config.refund_delay_hours),
        an.refund_discrepancies(refunds),
        an.missing_refunds(paid, pd.Timestamp(as_of), config.refund_grace_hours),
        an.status_contradictions(groups, pd.Timestamp(as_of), config.status_grace_hours),
        an.volume_anomalies(daily, config.volume_threshold),
    ]
    found = [f for f in found if len(f)]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame(columns=an.ANOMALY_COLUMNS)


def store(engine: sa.Engine, findings: pd.DataFrame, now: dt.datetime | None = None) -> int:
    """Replace the stored findings with this run's (one transaction: the page never sees half).

    The data version (which every dashboard cache keys on) moves only when a finding appears,
    disappears or changes severity — not because a delay grew by a minute."""
    stamp = to_utc_naive(now or _now())
    rows = [{"kind": r.kind, "severity": r.severity, "entity_id": str(r.entity_id)[:64],
             "observed_at": None if r.observed_at is None or pd.isna(r.observed_at)
             else pd.Timestamp(r.observed_at).to_pydatetime(),
             "summary": str(r.summary)[:300], "evidence": json.dumps(r.evidence, default=str, sort_keys=True),
             "detected_at": stamp} for r in findings.itertuples()]
    with engine.begin() as conn:
        old = {tuple(r) for r in conn.execute(sa.select(anomalies_table.c.kind, anomalies_table.c.entity_id,
                                                        anomalies_table.c.severity))}
        conn.execute(sa.delete(anomalies_table))
        if rows:
            conn.execute(sa.insert(anomalies_table), rows)
        if old != {(r["kind"], r["entity_id"], r["severity"]) for r in rows}:
            bump_version(conn)
    return len(rows)


def run(engine: sa.Engine, tz: str, now: dt.datetime | None = None,
        config: AnomalyConfig = AnomalyConfig()) -> pd.DataFrame:
    findings = detect(engine, tz, now, config)
    store(engine, findings, now)
    return findings
