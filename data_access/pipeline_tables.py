"""Tables of the real-time pipeline (group state, events, refunds, alerts) — see pipeline/.

Like the other project tables they live in schema `pulse` on PostgreSQL and carry a `pulse_`
prefix in SQLite; ChipChip's own tables are never altered.
"""
from __future__ import annotations

import sqlalchemy as sa

from data_access.schema import MONEY, PROJECT_SCHEMA, TS, UUID, metadata

S = PROJECT_SCHEMA
SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER keys only

# Derived state of every non-deleted group (DESIGN.md §4), kept current by PostgreSQL triggers
# or, on SQLite, by the sweeper. derived_status: ACTIVE, NEARING_EXPIRY, COMPLETED, EXPIRED.
group_state = sa.Table(
    "pulse_group_state", metadata,
    sa.Column("group_id", UUID, primary_key=True),
    sa.Column("group_deal_id", UUID, nullable=False),
    sa.Column("product_id", UUID, nullable=False),
    sa.Column("vendor_id", UUID, nullable=False),
    sa.Column("members", sa.Integer, nullable=False),
    sa.Column("goal", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("deadline", TS, nullable=False),
    sa.Column("goal_reached_at", TS),  # join time of the goal-th member (may be after the deadline)
    sa.Column("derived_status", sa.String(20), nullable=False),
    sa.Column("stored_status", sa.String(20)),
    sa.Column("updated_at", TS, nullable=False),
    sa.Index("ix_pgs_status_deadline", "derived_status", "deadline"),
    sa.Index("ix_pgs_vendor", "vendor_id"),
    schema=S,
)

# Each kind happens at most once per group, so replays and concurrent sweepers insert nothing twice.
# notified: the event was announced (pg_notify on PostgreSQL, the follow loop's log elsewhere).
group_events = sa.Table(
    "pulse_group_events", metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("group_id", UUID, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),  # goal_reached | nearing_expiry | expired
    sa.Column("at", TS, nullable=False),  # when it happened (goal-th join, window entry, deadline)
    sa.Column("recorded_at", TS, nullable=False),
    sa.Column("notified", sa.Boolean, nullable=False, default=False),
    sa.UniqueConstraint("group_id", "kind", name="uq_pge_group_kind"),
    sa.Index("ix_pge_at", "at"),
    schema=S,
)

# One refund per paid order of an expired group (unique order_id: never twice).
refunds = sa.Table(
    "pulse_refunds", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("order_id", UUID, nullable=False, unique=True),
    sa.Column("group_id", UUID, nullable=False, index=True),
    sa.Column("user_id", UUID, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("payment_method", sa.String(30), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # pending | processing | processed | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("processed_at", TS),
    sa.Column("next_attempt_at", TS),  # retry backoff: not claimable before this
    sa.Column("claim_token", sa.String(36)),  # which worker run holds it while processing
    sa.Column("claimed_by", sa.String(60)),
    sa.Column("claimed_at", TS),
    sa.Column("gateway_ref", sa.String(80)),
    sa.Column("last_error", sa.String(300)),
    sa.Index("ix_prf_status_created", "status", "created_at"),
    schema=S,
)

# One row per gateway attempt (and per lease recovery): the refund's audit trail.
refund_audit = sa.Table(
    "pulse_refund_audit", metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("refund_id", UUID, nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("worker_id", sa.String(60), nullable=False),
    sa.Column("from_status", sa.String(12), nullable=False),
    sa.Column("to_status", sa.String(12), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),  # ok | declined | error | lease_expired
    sa.Column("gateway_ref", sa.String(80)),
    sa.Column("error", sa.String(300)),
    sa.Column("ms", sa.Float),
    sa.Column("at", TS, nullable=False),
    schema=S,
)

# Fired alerts (one row per firing; resolved_at set when it resolves).
alerts = sa.Table(
    "pulse_alerts", metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(60), nullable=False),
    sa.Column("metric", sa.String(60), nullable=False),
    sa.Column("severity", sa.String(12), nullable=False),
    sa.Column("state", sa.String(10), nullable=False),  # firing | resolved
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("comparison", sa.String(2), nullable=False),
    sa.Column("message", sa.String(300)),
    sa.Column("fired_at", TS, nullable=False),
    sa.Column("resolved_at", TS),
    sa.Column("resolved_value", sa.Float),
    sa.Column("webhook_status", sa.String(60)),
    sa.Index("ix_pal_fired", "fired_at"),
    schema=S,
)

# Per-rule evaluator state: when the condition started holding, and the open alert if firing.
alert_state = sa.Table(
    "pulse_alert_state", metadata,
    sa.Column("rule", sa.String(60), primary_key=True),
    sa.Column("state", sa.String(10), nullable=False),  # ok | pending | firing | resolving
    sa.Column("since", TS),  # start of the current pending/resolving period
    sa.Column("alert_id", sa.BigInteger),
    sa.Column("last_value", sa.Float),
    sa.Column("evaluated_at", TS, nullable=False),
    schema=S,
)

# The dashboard's own request latency, written by the server, read by the latency alert.
request_metrics = sa.Table(
    "pulse_request_metrics", metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("path", sa.String(200), nullable=False),
    sa.Column("ms", sa.Float, nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("at", TS, nullable=False),
    sa.Index("ix_prm_at", "at"),
    schema=S,
)

# The latest anomaly detection run's findings, replaced as a whole by each run.
anomalies = sa.Table(
    "pulse_anomalies", metadata,
    sa.Column("id", SERIAL, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("severity", sa.String(12), nullable=False),
    sa.Column("entity_id", sa.String(64), nullable=False),
    sa.Column("observed_at", TS),
    sa.Column("summary", sa.String(300), nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),  # JSON object
    sa.Column("detected_at", TS, nullable=False),
    sa.Index("ix_pan_kind", "kind"),
    schema=S,
)

PIPELINE_TABLES = [group_state, group_events, refunds, refund_audit, alerts, alert_state,
                   request_metrics, anomalies]
