"""ChipChip's source tables (real names and columns) and the project's own tables.

Source tables mirror the production schema (DESIGN.md §3) so DATABASE_URL can point at a copy of
ChipChip's PostgreSQL. Keys are UUIDs: native `uuid` on PostgreSQL, 36-char strings on SQLite;
Python always sees strings. The project's own tables are named `pulse_*` and, on PostgreSQL,
live in the `pulse` schema (SQLite has no schemas: see `execution_options` in db.py).
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()
PROJECT_SCHEMA = "pulse"

UUID = sa.String(36).with_variant(postgresql.UUID(as_uuid=False), "postgresql")
TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(14, 2)


def _audit_columns():
    return [
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("deleted_at", TS, nullable=True),
    ]


def _fk(name: str, target: str, nullable: bool = False) -> sa.Column:
    """A UUID foreign key column, indexed (every FK is indexed: joins and scoping use them)."""
    return sa.Column(name, UUID, sa.ForeignKey(target), nullable=nullable, index=True)


users = sa.Table(
    "users", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("name", sa.String(120)),
    sa.Column("phone", sa.String(20)),
    sa.Column("email", sa.String(120)),
    sa.Column("user_status", sa.String(20)),
    *_audit_columns(),
)

vendors = sa.Table(
    "vendors", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    sa.Column("city", sa.String(60)),
    sa.Column("status", sa.String(20), nullable=False),
    *_audit_columns(),
)

categories = sa.Table(
    "categories", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("name", sa.String(60), nullable=False),
    sa.Column("status", sa.String(20)),
    *_audit_columns(),
)

product_names = sa.Table(
    "product_names", metadata,
    sa.Column("id", UUID, primary_key=True),
    sa.Column("name", sa.String(120), nullable=False),
    _fk("category_id", "categories.id"),
    sa.Column("measuring_unit", sa.String(20)),
    *_audit_columns(),
)

products = sa.Table(
    "products", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("vendor_id", "vendors.id"),
    _fk("name_id", "product_names.id"),
    sa.Column("status", sa.String(20)),
    sa.Column("approved", sa.String(20)),
    sa.Column("commission", sa.Numeric(6, 3)),
    *_audit_columns(),
)

single_deals = sa.Table(
    "single_deals", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("product_id", "products.id"),
    sa.Column("original_price", MONEY, nullable=False),
    *_audit_columns(),
)

group_deals = sa.Table(
    "group_deals", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("product_id", "products.id"),
    sa.Column("max_group_member", sa.Integer, nullable=False),
    sa.Column("group_price", MONEY, nullable=False),
    sa.Column("effective_from", TS),
    sa.Column("effective_to", TS),
    sa.Column("expiration_time", sa.Integer, nullable=False),
    sa.Column("max_quantity_per_order", sa.Integer),
    *_audit_columns(),
)

groups = sa.Table(
    "groups", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("group_deals_id", "group_deals.id"),
    _fk("created_by", "users.id", nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    *_audit_columns(),
    sa.Index("ix_groups_created_at", "created_at"),
    sa.Index("ix_groups_updated_at", "updated_at"),
)

groups_carts = sa.Table(
    "groups_carts", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("group_id", "groups.id"),
    _fk("user_id", "users.id"),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20)),
    *_audit_columns(),
    sa.Index("ix_groups_carts_created_at", "created_at"),
    sa.Index("ix_groups_carts_updated_at", "updated_at"),
    # Covering indexes of the metrics layer: a group's members (derived group status) and a
    # user's memberships over time (cohorts, groups joined) without reading table rows.
    sa.Index("ix_groups_carts_group_user", "group_id", "user_id", "created_at", "deleted_at"),
    sa.Index("ix_groups_carts_user_created", "user_id", "created_at", "group_id", "deleted_at"),
)

carts = sa.Table(
    "carts", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("user_id", "users.id"),
    sa.Column("status", sa.String(20)),
    *_audit_columns(),
    sa.Index("ix_carts_updated_at", "updated_at"),
)

personal_cart_items = sa.Table(
    "personal_cart_items", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("cart_id", "carts.id"),
    _fk("product_id", "products.id"),
    sa.Column("quantity", sa.Integer, nullable=False),
    *_audit_columns(),
    sa.Index("ix_personal_cart_items_updated_at", "updated_at"),
)

# On PostgreSQL orders is range-partitioned by month on created_at, so its primary key must
# include created_at; `id` alone stays unique in practice (UUIDs) and is indexed.
orders = sa.Table(
    "orders", metadata,
    sa.Column("id", UUID, primary_key=True),
    _fk("groups_carts_id", "groups_carts.id", nullable=True),
    _fk("personal_cart_id", "carts.id", nullable=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("total_amount", MONEY),
    sa.Column("discount", MONEY),
    sa.Column("payment_method", sa.String(30)),
    sa.Column("created_at", TS, primary_key=True),
    sa.Column("updated_at", TS, nullable=False),
    sa.Column("deleted_at", TS, nullable=True),
    sa.Index("ix_orders_status_created_at", "status", "created_at"),
    sa.Index("ix_orders_updated_at", "updated_at"),
    sa.Index("ix_orders_created_at", "created_at"),
    postgresql_partition_by="RANGE (created_at)",
)

SOURCE_TABLES = [users, vendors, categories, product_names, products, single_deals, group_deals,
                 groups, groups_carts, carts, personal_cart_items, orders]
