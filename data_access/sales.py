"""Sales totals and daily series, read from the order-lines facts the ETL maintains.

Completed sale = order status COMPLETED and not soft-deleted (the ETL only writes lines for
orders whose order and cart rows are not soft-deleted). Revenue = total_amount (after discount),
shared across an individual order's items by list value.
"""
from __future__ import annotations

import pandas as pd

from data_access.dialect import project_table
from data_access.filters import MANAGER, Filters, Scope, Window
from data_access.frames import read_df
from data_access.scope import line_conditions, where


def _base(conn, window: Window, filters: Filters, scope: Scope):
    conds, params, binds = line_conditions(filters, scope)
    conds += ["l.status = 'COMPLETED'", "l.created_at >= :w_start", "l.created_at < :w_end"]
    params.update(window.params(conn))
    return project_table(conn, "pulse_order_lines"), where(conds), params, binds


def sales_totals(conn, window: Window, filters: Filters = Filters(), scope: Scope = MANAGER) -> dict:
    """{'revenue': float, 'orders': int} of completed orders created in the window.

    An order counts once even when only some of its lines match the filters; its revenue is
    the matching lines' share.
    """
    table, cond, params, binds = _base(conn, window, filters, scope)
    df = read_df(conn, f"SELECT COALESCE(SUM(l.revenue), 0) AS revenue, COUNT(DISTINCT l.order_id) AS orders "
                       f"FROM {table} l WHERE {cond}", params, binds)
    return {"revenue": float(df["revenue"].iloc[0]), "orders": int(df["orders"].iloc[0])}


def daily_sales(conn, window: Window, filters: Filters = Filters(), scope: Scope = MANAGER) -> pd.DataFrame:
    """Columns: day (date, local), revenue (float), orders (int) — only days with sales."""
    table, cond, params, binds = _base(conn, window, filters, scope)
    df = read_df(conn, f"SELECT l.local_day AS day, SUM(l.revenue) AS revenue, COUNT(DISTINCT l.order_id) "
                       f"AS orders FROM {table} l WHERE {cond} GROUP BY l.local_day ORDER BY l.local_day",
                 params, binds)
    df["day"] = pd.to_datetime(df["day"]).dt.date
    return df.astype({"revenue": float, "orders": int})


def vendor_options(conn, scope: Scope = MANAGER) -> pd.DataFrame:
    """Columns: value (vendor id), label (vendor name). A vendor sees only itself."""
    sql = "SELECT id AS value, name AS label FROM vendors WHERE deleted_at IS NULL"
    params = {}
    if scope.vendor_id is not None:
        sql += " AND id = :scope_vendor"
        params["scope_vendor"] = scope.vendor_id
    return read_df(conn, sql + " ORDER BY name, id", params)


def product_options(conn, vendor_ids: tuple[str, ...] = (), scope: Scope = MANAGER) -> pd.DataFrame:
    """Columns: value (product id), label ('name' or 'name — vendor'), vendor_id.

    Products of the given vendors only (all vendors when empty), within the caller's scope.
    """
    conds, params, binds = line_conditions(Filters(vendor_ids=tuple(vendor_ids)), scope, alias="p")
    sql = (f"SELECT p.id AS value, pn.name AS product, v.name AS vendor, p.vendor_id FROM products p "
           f"JOIN product_names pn ON pn.id = p.name_id JOIN vendors v ON v.id = p.vendor_id "
           f"WHERE p.deleted_at IS NULL AND {where(conds)} ORDER BY pn.name, v.name, p.id")
    df = read_df(conn, sql, params, binds)
    df["label"] = df["product"] + " — " + df["vendor"]
    return df[["value", "label", "vendor_id"]]


def category_options(conn, scope: Scope = MANAGER) -> pd.DataFrame:
    """Columns: value (category id), label (category name). Categories are not vendor data:
    every scope sees them all (the scope argument keeps the cached-query signature)."""
    return read_df(conn, "SELECT id AS value, name AS label FROM categories WHERE deleted_at IS NULL "
                         "ORDER BY name, id")


def known_ids(conn, table: str, ids: tuple[str, ...]) -> set[str]:
    """Which of `ids` exist in vendors/products/categories (to tell 'unknown id' from 'no sales')."""
    if table not in ("vendors", "products", "categories") or not ids:
        return set()
    import sqlalchemy as sa
    stmt = sa.text(f"SELECT id FROM {table} WHERE id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
    try:
        return {str(r[0]) for r in conn.execute(stmt, {"ids": list(ids)})}
    except Exception:  # a malformed uuid on PostgreSQL is simply not known
        conn.rollback()
        return set()
