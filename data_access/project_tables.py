"""The project's own tables: facts and rollups the ETL maintains, and pipeline state.

They live beside ChipChip's tables and never alter them: schema `pulse` on PostgreSQL, a
`pulse_` prefix in SQLite (the schema is translated away there, see db.execution_options).
"""
from __future__ import annotations

import sqlalchemy as sa

from data_access.schema import MONEY, PROJECT_SCHEMA, TS, UUID, metadata

S = PROJECT_SCHEMA

# One row per sold line: a group order is one line; an individual order has one line per
# personal_cart_item, its total_amount shared out by the items' list value. Only rows whose
# order and cart rows are not soft-deleted appear. Every sales question reads this table
# (or the daily rollup below) instead of joining six source tables per request.
order_lines = sa.Table(
    "pulse_order_lines", metadata,
    sa.Column("order_id", UUID, nullable=False),
    sa.Column("line_no", sa.Integer, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("local_day", sa.Date, nullable=False),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("deal_type", sa.String(10), nullable=False),  # 'group' | 'individual'
    sa.Column("payment_method", sa.String(30)),
    sa.Column("user_id", UUID, nullable=False),
    sa.Column("group_id", UUID),
    sa.Column("group_deal_id", UUID),
    sa.Column("product_id", UUID, nullable=False),
    sa.Column("vendor_id", UUID, nullable=False),
    sa.Column("category_id", UUID, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("revenue", MONEY, nullable=False),
    sa.Column("order_total", MONEY, nullable=False),
    # The key is a unique index rather than a primary key, so a rebuild appends rows (SQLite's
    # rowid, PostgreSQL's heap) and sorts the key once, instead of inserting random UUIDs into
    # a B-tree row by row.
    sa.Index("ux_pol_order_line", "order_id", "line_no", unique=True),
    # Covering index: window scans of completed sales never touch the table itself.
    sa.Index("ix_pol_status_created", "status", "created_at", "local_day", "order_id", "revenue"),
    sa.Index("ix_pol_vendor_created", "vendor_id", "created_at"),
    # Per-user aggregates (RFM, top users) of completed sales, also per vendor, and the ETL's
    # per-user months (local_day, line_no), from the index alone. A database built before the
    # last two columns keeps its narrower index until its next rebuild.
    sa.Index("ix_pol_status_user", "status", "user_id", "created_at", "order_id", "revenue", "vendor_id",
             "local_day", "line_no"),
    sa.Index("ix_pol_day", "local_day"),
    sa.Index("ix_pol_group", "group_id"),  # a group's orders (group facts)
    schema=S,
)

# Daily rollup: local day x product x deal type x status (vendor and category carried along).
daily_sales = sa.Table(
    "pulse_daily_sales", metadata,
    sa.Column("local_day", sa.Date, primary_key=True),
    sa.Column("product_id", UUID, primary_key=True),
    sa.Column("deal_type", sa.String(10), primary_key=True),
    sa.Column("status", sa.String(20), primary_key=True),
    sa.Column("vendor_id", UUID, nullable=False),
    sa.Column("category_id", UUID, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("revenue", MONEY, nullable=False),
    sa.Index("ix_pds_vendor_day", "vendor_id", "local_day"),
    schema=S,
)

# Key/value state: ETL watermark, data version (bumped by every run that changed something).
meta = sa.Table(
    "pulse_meta", metadata,
    sa.Column("key", sa.String(60), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
    schema=S,
)

# Rows the ETL refused, with the reason; shown on the Operations page.
quarantine = sa.Table(
    "pulse_quarantine", metadata,
    sa.Column("source_table", sa.String(40), primary_key=True),
    sa.Column("source_id", sa.String(36), primary_key=True),
    sa.Column("reason", sa.String(200), nullable=False),
    sa.Column("detected_at", TS, nullable=False),
    schema=S,
)

# One row per group that is not soft-deleted: the times that decide its status, conversion and
# refunds at any as_of (DESIGN.md §4), so KPIs read one row per group instead of probing every
# member and order row. Exact for any as_of: a group is COMPLETED at as_of when
# reached_at <= deadline and reached_at < as_of; converted when converted_at < as_of; its paid
# orders are all counted when paid_last_at < as_of (otherwise the query counts them itself).
group_facts = sa.Table(
    "pulse_group_facts", metadata,
    sa.Column("group_id", UUID, primary_key=True),
    sa.Column("deal_id", UUID, nullable=False),
    sa.Column("product_id", UUID, nullable=False),
    sa.Column("vendor_id", UUID, nullable=False),
    sa.Column("category_id", UUID, nullable=False),
    sa.Column("created_at", TS, nullable=False),
    sa.Column("deadline", TS, nullable=False),
    sa.Column("goal", sa.Integer, nullable=False),
    sa.Column("reached_at", TS),  # first join of the goal-th distinct live member
    sa.Column("converted_at", TS),  # earliest completed order (and its membership) of the group
    sa.Column("paid_total", MONEY, nullable=False),  # paid orders: not COD, not FAILED (DESIGN.md §6)
    sa.Column("paid_orders", sa.Integer, nullable=False),
    sa.Column("paid_last_at", TS),
    sa.Index("ix_pgf_created", "created_at"),
    sa.Index("ix_pgf_vendor_created", "vendor_id", "created_at"),
    sa.Index("ix_pgf_deadline", "deadline"),
    schema=S,
)


def _user_month_columns() -> list:
    """Per user and local month: first group join and completed sales (cohorts, RFM)."""
    return [sa.Column("month", sa.Date, primary_key=True),  # local month start
            sa.Column("cohort", sa.Date, nullable=False),  # local month of the user's signup
            sa.Column("signup_at", TS, nullable=False),
            sa.Column("first_join_at", TS),  # first live membership of a live group that month
            sa.Column("orders", sa.Integer, nullable=False),  # completed orders created that month
            sa.Column("revenue", MONEY, nullable=False),
            sa.Column("first_order_at", TS),
            sa.Column("last_order_at", TS)]


# All vendors together (an order with several vendors' items counts once) ...
user_months = sa.Table("pulse_user_months", metadata, sa.Column("user_id", UUID, primary_key=True),
                       *_user_month_columns(), schema=S, sqlite_with_rowid=False)
# ... and per vendor (primary key order: a vendor's rows are contiguous, by user).
user_vendor_months = sa.Table("pulse_user_vendor_months", metadata, sa.Column("vendor_id", UUID, primary_key=True),
                              sa.Column("user_id", UUID, primary_key=True), *_user_month_columns(), schema=S,
                              sqlite_with_rowid=False)

PROJECT_TABLES = [order_lines, daily_sales, meta, quarantine, group_facts, user_months, user_vendor_months]
