"""The naive approach, for the benchmark only: every question answered by multi-table joins over
the raw source tables on every request, with no cache and no rollups (what the original exam's
Streamlit app did). Same definitions as the real queries, so the timings compare like for like.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from data_access.dialect import bind_ts, local_date_sql
from data_access.filters import Window

GROUP_SALES = """
SELECT o.id AS order_id, o.created_at, o.total_amount AS revenue, gc.user_id, gc.quantity,
       p.vendor_id, pn.category_id, 'group' AS deal_type
FROM orders o JOIN groups_carts gc ON gc.id = o.groups_carts_id
JOIN groups g ON g.id = gc.group_id JOIN group_deals gd ON gd.id = g.group_deals_id
JOIN products p ON p.id = gd.product_id JOIN product_names pn ON pn.id = p.name_id
WHERE o.status = 'COMPLETED' AND o.deleted_at IS NULL AND gc.deleted_at IS NULL
  AND o.created_at >= :s AND o.created_at < :e
"""
INDIVIDUAL_SALES = """
SELECT o.id AS order_id, o.created_at, o.total_amount AS revenue, c.user_id, i.quantity,
       p.vendor_id, pn.category_id, 'individual' AS deal_type
FROM orders o JOIN carts c ON c.id = o.personal_cart_id JOIN personal_cart_items i ON i.cart_id = c.id
JOIN products p ON p.id = i.product_id JOIN product_names pn ON pn.id = p.name_id
WHERE o.status = 'COMPLETED' AND o.deleted_at IS NULL AND c.deleted_at IS NULL AND i.deleted_at IS NULL
  AND o.created_at >= :s AND o.created_at < :e
"""
SALES = f"({GROUP_SALES} UNION ALL {INDIVIDUAL_SALES})"


def _run(conn, sql: str, window: Window):
    return conn.execute(sa.text(sql), {"s": bind_ts(conn, window.start), "e": bind_ts(conn, window.end)}).all()


def overview(conn, window: Window, tz: str):
    day = local_date_sql(conn, "x.created_at", tz)
    _run(conn, f"SELECT SUM(x.revenue), COUNT(DISTINCT x.order_id) FROM {SALES} x", window)
    return _run(conn, f"SELECT {day}, SUM(x.revenue), COUNT(DISTINCT x.order_id) FROM {SALES} x GROUP BY 1", window)


def products_page(conn, window: Window, tz: str):
    _run(conn, f"SELECT v.name, c.name, SUM(x.revenue) FROM {SALES} x JOIN vendors v ON v.id = x.vendor_id "
               "JOIN categories c ON c.id = x.category_id GROUP BY v.name, c.name", window)
    return _run(conn, f"SELECT c.name, x.deal_type, SUM(x.quantity) FROM {SALES} x "
                      "JOIN categories c ON c.id = x.category_id GROUP BY c.name, x.deal_type", window)


def customers_page(conn, window: Window, tz: str):
    last30 = Window(window.end - dt.timedelta(days=30), window.end)
    _run(conn, f"SELECT u.id, u.name, SUM(x.revenue), COUNT(DISTINCT x.order_id) FROM {SALES} x "
               "JOIN users u ON u.id = x.user_id WHERE u.deleted_at IS NULL GROUP BY u.id, u.name "
               "ORDER BY 3 DESC, u.id LIMIT 10", last30)
    month = "strftime('%Y-%m', {})" if conn.dialect.name == "sqlite" else "to_char({}, 'YYYY-MM')"
    return conn.execute(sa.text(
        f"SELECT {month.format('u.created_at')}, {month.format('gc.created_at')}, COUNT(DISTINCT u.id) "
        "FROM users u LEFT JOIN groups_carts gc ON gc.user_id = u.id AND gc.deleted_at IS NULL "
        "WHERE u.deleted_at IS NULL GROUP BY 1, 2")).all()


def groups_page(conn, window: Window, tz: str):
    return _run(conn, "SELECT g.id, gd.max_group_member, gd.expiration_time, g.created_at, "
                      "COUNT(DISTINCT gc.user_id), MAX(gc.created_at) FROM groups g "
                      "JOIN group_deals gd ON gd.id = g.group_deals_id "
                      "LEFT JOIN groups_carts gc ON gc.group_id = g.id AND gc.deleted_at IS NULL "
                      "WHERE g.created_at >= :s AND g.created_at < :e GROUP BY g.id, gd.max_group_member, "
                      "gd.expiration_time, g.created_at", window)


def forecast_input(conn, window: Window, tz: str):
    year = Window(window.end - dt.timedelta(days=365), window.end)
    day = local_date_sql(conn, "x.created_at", tz)
    return _run(conn, f"SELECT {day}, SUM(x.revenue) FROM {SALES} x GROUP BY 1", year)


PAGES = {"overview": overview, "groups": groups_page, "products": products_page,
         "customers": customers_page, "forecast": forecast_input}
