"""How order lines are derived from ChipChip's orders: the validation that quarantines orders
which cannot be reported, and the SQL of group and individual lines (one batch or one month of
history at a time; `{selected}` picks the orders)."""
from __future__ import annotations

# Validation: why a changed order cannot be reported. Orphans are orders pointing at carts that
# do not exist; impossible timestamps are updates before creation or creation in the future.
# Joins rather than NOT EXISTS: PostgreSQL pushed `reason IS NOT NULL` into a scan of every
# orders partition, rebuilding both lookups as hashes per partition (1.7 s for 40K changed orders).
QUARANTINE_SQL = """
SELECT o.id, CASE
  WHEN o.total_amount < 0 OR o.discount < 0 THEN 'negative amount'
  WHEN (o.groups_carts_id IS NULL) = (o.personal_cart_id IS NULL) THEN 'order must reference exactly one cart'
  WHEN o.groups_carts_id IS NOT NULL AND gc.id IS NULL THEN 'orphan: groups_carts row missing'
  WHEN o.personal_cart_id IS NOT NULL AND c.id IS NULL THEN 'orphan: cart missing'
  WHEN o.updated_at < o.created_at THEN 'impossible timestamp: updated before created'
  WHEN o.created_at > :future THEN 'impossible timestamp: created in the future'
  END AS reason
FROM orders o
LEFT JOIN groups_carts gc ON gc.id = o.groups_carts_id
LEFT JOIN carts c ON c.id = o.personal_cart_id
WHERE {selected}
"""

GROUP_LINES_SQL = """
SELECT o.id, 0, o.created_at, {day}, o.updated_at, o.status, 'group', o.payment_method, gc.user_id,
       g.id, gd.id, p.id, p.vendor_id, pn.category_id, gc.quantity,
       COALESCE(o.total_amount, 0), COALESCE(o.total_amount, 0)
FROM orders o
JOIN groups_carts gc ON gc.id = o.groups_carts_id
JOIN groups g ON g.id = gc.group_id
JOIN group_deals gd ON gd.id = g.group_deals_id
JOIN products p ON p.id = gd.product_id
JOIN product_names pn ON pn.id = p.name_id
WHERE {selected} AND o.deleted_at IS NULL AND gc.deleted_at IS NULL
  AND o.id NOT IN (SELECT order_id FROM etl_bad)
"""

# An individual order's total is shared out over its items by list value (quantity x price).
# {orders}: how a rebuild reads one month of orders on SQLite (see orders_by_creation).
INDIVIDUAL_LINES_SQL = """
SELECT id, line_no, created_at, day, updated_at, status, 'individual', payment_method, user_id,
       NULL, NULL, product_id, vendor_id, category_id, quantity,
       CASE WHEN cart_value > 0 THEN total * 1.0 * item_value / cart_value ELSE total * 1.0 / n_items END, total
FROM (
  SELECT o.id, ROW_NUMBER() OVER (PARTITION BY o.id ORDER BY i.id) AS line_no, o.created_at,
         {day} AS day, o.updated_at, o.status, o.payment_method, c.user_id, p.id AS product_id,
         p.vendor_id, pn.category_id, i.quantity, COALESCE(o.total_amount, 0) AS total,
         i.quantity * COALESCE(sd.price, 0) AS item_value,
         SUM(i.quantity * COALESCE(sd.price, 0)) OVER (PARTITION BY o.id) AS cart_value,
         COUNT(*) OVER (PARTITION BY o.id) AS n_items
  FROM {orders}
  JOIN carts c ON c.id = o.personal_cart_id
  JOIN personal_cart_items i ON i.cart_id = c.id AND i.deleted_at IS NULL
  JOIN products p ON p.id = i.product_id
  JOIN product_names pn ON pn.id = p.name_id
  LEFT JOIN (SELECT product_id, MAX(original_price) AS price FROM single_deals
             WHERE deleted_at IS NULL GROUP BY product_id) sd ON sd.product_id = p.id
  WHERE {selected} AND o.deleted_at IS NULL AND c.deleted_at IS NULL
    AND o.id NOT IN (SELECT order_id FROM etl_bad)
) x
"""

LINE_COLUMNS = ("order_id, line_no, created_at, local_day, updated_at, status, deal_type, payment_method, "
                "user_id, group_id, group_deal_id, product_id, vendor_id, category_id, quantity, revenue, "
                "order_total")


def orders_by_creation(conn) -> str:
    """A month of orders through the creation-time index: for the individual lines' window
    (PARTITION BY o.id) SQLite otherwise walks every order in id order, each month (2.0 s instead
    of 0.8 s a month at scale 10)."""
    return "orders o INDEXED BY ix_orders_created_at" if conn.dialect.name == "sqlite" else "orders o"
