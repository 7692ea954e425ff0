"""Per-group and per-user-month tables the ETL keeps beside the order lines.

KPIs, cohorts and RFM would otherwise re-derive every group's members and every user's history
on each request. Each ETL batch collects the groups and user months its changes touch and
recomputes their rows from the source tables (and the order lines just written), so the result
after any sequence of batches equals a full rebuild. A rebuild computes everything in one
statement each.

A user month is touched, and recomputed alone, in one of three ways:
- through an order: the months of the changed orders' old and new lines (an order moved to
  another month touches both);
- through a membership: the month of a changed groups_carts row, or of any membership of a
  changed group (left, deleted, moved to another deal), as they are now;
- through a membership that moved to another month: the month it left is not kept, but there
  the stored first join no longer matches any live membership of that user and vendor.
"""
from __future__ import annotations

import sqlalchemy as sa

from data_access.dialect import local_date_sql, project_table
from data_access.group_facts import PAID
from data_access.groups import deadline_sql
from data_access.project_tables import order_lines

TOUCHED_GROUPS_SQL = """
INSERT INTO etl_groups (group_id)
SELECT id FROM groups WHERE updated_at > :lo AND updated_at <= :hi
UNION SELECT group_id FROM groups_carts WHERE updated_at > :lo AND updated_at <= :hi
UNION SELECT gc.group_id FROM orders o JOIN groups_carts gc ON gc.id = o.groups_carts_id WHERE {changed}
"""

# The months of the changed memberships and of every membership of a changed group, as they are now.
MEMBERSHIP_MONTHS_SQL = """
INSERT INTO etl_user_months (user_id, month)
SELECT gc.user_id, {month} FROM groups_carts gc WHERE gc.updated_at > :lo AND gc.updated_at <= :hi
UNION SELECT gc.user_id, {month} FROM groups_carts gc
      WHERE gc.group_id IN (SELECT id FROM groups WHERE updated_at > :lo AND updated_at <= :hi)
EXCEPT SELECT user_id, month FROM etl_user_months
"""

# A stored month whose first join is no longer a live membership of that user and vendor: a
# changed membership moved out of it, so it is recomputed. Only the changed memberships' users
# and vendors are looked at (seeks on the table's key); the vendor comes from the deal, so a
# membership of a group deleted in the same batch counts too. A deal moved to another vendor in
# the same batch as its member's join time would go unseen; ChipChip edits neither.
STALE_JOIN_MONTHS_SQL = """
INSERT INTO etl_user_months (user_id, month)
SELECT x.user_id, x.month
FROM (SELECT DISTINCT gc.user_id, p.vendor_id FROM groups_carts gc JOIN groups g ON g.id = gc.group_id
      JOIN group_deals gd ON gd.id = g.group_deals_id JOIN products p ON p.id = gd.product_id
      WHERE gc.updated_at > :lo AND gc.updated_at <= :hi) uv
CROSS JOIN {uvm} x
WHERE x.vendor_id = uv.vendor_id AND x.user_id = uv.user_id AND x.first_join_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM groups_carts gc JOIN {facts} f ON f.group_id = gc.group_id
                  WHERE gc.user_id = x.user_id AND gc.created_at = x.first_join_at
                    AND gc.deleted_at IS NULL AND f.vendor_id = x.vendor_id)
EXCEPT SELECT user_id, month FROM etl_user_months
"""

# Users and local days of the changed orders' lines, before they are deleted and after they
# are written: the days to roll up again and the user months to recompute.
LINE_KEYS_SQL = """
INSERT INTO etl_line_keys (user_id, local_day)
SELECT DISTINCT user_id, local_day FROM {lines} WHERE order_id IN (SELECT order_id FROM etl_changed)
EXCEPT SELECT user_id, local_day FROM etl_line_keys
"""


def changed_orders(conn) -> str:
    """The predicate selecting the batch's changed orders `o` (binds :since on PostgreSQL, the
    oldest changed order's creation, so only the partitions from there on are read)."""
    pruned = " AND o.created_at >= :since" if conn.dialect.name == "postgresql" else ""
    return f"o.id IN (SELECT order_id FROM etl_changed){pruned}"


def _month(conn, local_day: str) -> str:
    """Month start of a local date expression."""
    if conn.dialect.name == "postgresql":
        return f"CAST(date_trunc('month', {local_day}) AS date)"
    return f"substr({local_day}, 1, 8) || '01'"


def analyze(conn) -> None:
    """Fresh planner statistics after a full refresh (PostgreSQL would guess 200 rows a table)."""
    if conn.dialect.name == "postgresql":
        for table in ("pulse_order_lines", "pulse_daily_sales", "pulse_group_facts", "pulse_user_months",
                      "pulse_user_vendor_months"):
            conn.execute(sa.text(f"ANALYZE {project_table(conn, table)}"))


def collect_touched(conn, lo_hi: dict, before_lines: bool, tz: str) -> None:
    """Fill etl_groups, and etl_line_keys with the changed orders' old lines, before
    these are deleted; after the new lines are written, add theirs and derive etl_days and
    etl_user_months from both, and add the changed memberships' months."""
    keys = LINE_KEYS_SQL.format(lines=project_table(conn, "pulse_order_lines"))
    if before_lines:
        for name, second in (("etl_user_months", "month"), ("etl_line_keys", "local_day")):
            _pairs_temp(conn, name, second)
        conn.execute(sa.text(TOUCHED_GROUPS_SQL.format(changed=changed_orders(conn))), lo_hi)
        analyze_temp(conn, "etl_groups")
        conn.execute(sa.text(keys))
        return
    conn.execute(sa.text(keys))
    conn.execute(sa.text("INSERT INTO etl_days (day) SELECT DISTINCT local_day FROM etl_line_keys"))
    analyze_temp(conn, "etl_days")  # unanalyzed, PostgreSQL merged it with every line (1.6 s at scale 10)
    conn.execute(sa.text(f"INSERT INTO etl_user_months (user_id, month) SELECT DISTINCT user_id, "
                         f"{_month(conn, 'local_day')} FROM etl_line_keys"))
    join_month = _month(conn, local_date_sql(conn, "gc.created_at", tz))
    conn.execute(sa.text(MEMBERSHIP_MONTHS_SQL.format(month=join_month)), lo_hi)


def _pairs_temp(conn, name: str, second: str) -> None:
    """A keyed (user, date) temp table, emptied."""
    temp_table(conn, name, f"user_id {id_ts(conn)[0]}, {second} DATE, PRIMARY KEY (user_id, {second})")


def temp_table(conn, name: str, columns: str) -> None:
    """A temp table of this connection, created once and emptied for the batch (PostgreSQL also
    empties it at commit)."""
    keep = " ON COMMIT DELETE ROWS" if conn.dialect.name == "postgresql" else ""
    conn.execute(sa.text(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({columns}){keep}"))
    conn.execute(sa.text(f"DELETE FROM {name}"))


def id_ts(conn) -> tuple[str, str]:
    """Column types of ids and timestamps in temp tables, as the source tables store them."""
    return ("UUID", "TIMESTAMPTZ") if conn.dialect.name == "postgresql" else ("VARCHAR(36)", "VARCHAR(32)")


def analyze_temp(conn, table: str) -> None:
    """Statistics for a just-filled temp table on PostgreSQL, which never analyzes temp tables
    itself: without them it guessed sizes and scanned whole source tables per batch."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"ANALYZE {table}"))


# The first join of each group's goal-th distinct live member.
REACHED_SQL = """
WITH m AS (SELECT gc.group_id, gc.user_id, MIN(gc.created_at) AS joined FROM groups_carts gc
           WHERE gc.group_id {pick} AND gc.deleted_at IS NULL GROUP BY gc.group_id, gc.user_id),
r AS (SELECT m.group_id, m.joined, gd.max_group_member AS goal,
             ROW_NUMBER() OVER (PARTITION BY m.group_id ORDER BY m.joined) AS rn
      FROM m JOIN groups g ON g.id = m.group_id JOIN group_deals gd ON gd.id = g.group_deals_id)
SELECT group_id, joined FROM r WHERE rn = goal"""


def read_all_reached(engine: sa.Engine) -> list[tuple]:
    """Every group's reached time, on a connection of its own: a SQLite rebuild computes it on
    its second core while it writes the order lines (12 s of the scale-10 rebuild). It reads
    only source tables, which no one else can change once the rebuild holds the write lock."""
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(REACHED_SQL.format(pick="IS NOT NULL")))]


def _reached(conn, pick: str, known: list[tuple] | None = None) -> None:
    """etl_reached(group_id, joined), computed here or `known` (read_all_reached's rows). A
    keyed temp table, because SQLite would scan a window-function CTE once per group."""
    ids, ts = id_ts(conn)
    temp_table(conn, "etl_reached", f"group_id {ids} PRIMARY KEY, joined {ts}")
    if known is None:
        conn.execute(sa.text(f"INSERT INTO etl_reached (group_id, joined) {REACHED_SQL.format(pick=pick)}"))
    elif known:
        conn.exec_driver_sql("INSERT INTO etl_reached (group_id, joined) VALUES (?, ?)", known)
    analyze_temp(conn, "etl_reached")


def _group_orders(conn, pick: str) -> None:
    """etl_group_orders: each group's conversion and paid orders, from its live order lines."""
    ids, ts = id_ts(conn)
    temp_table(conn, "etl_group_orders", f"group_id {ids} PRIMARY KEY, converted_at {ts}, paid_total NUMERIC, "
                                         f"paid_orders INTEGER, paid_last_at {ts}")
    paid = PAID.format(o="l")
    conn.execute(sa.text(f"""
INSERT INTO etl_group_orders (group_id, converted_at, paid_total, paid_orders, paid_last_at)
SELECT l.group_id, MIN(CASE WHEN l.status = 'COMPLETED' THEN l.created_at END),
       SUM(CASE WHEN {paid} THEN l.order_total ELSE 0 END), SUM(CASE WHEN {paid} THEN 1 ELSE 0 END),
       MAX(CASE WHEN {paid} THEN l.created_at END)
FROM {project_table(conn, "pulse_order_lines")} l WHERE l.group_id {pick} AND l.deal_type = 'group'
GROUP BY l.group_id"""))
    analyze_temp(conn, "etl_group_orders")


def refresh_group_facts(conn, only_touched: bool, reached: list[tuple] | None = None) -> None:
    """Recompute pulse_group_facts for the groups in etl_groups (or all groups). Orders come
    from the order lines (live orders of live memberships, invalid ones quarantined).

    Groups are read in id order, the order of both keyed temp tables and of the facts' key:
    SQLite then seeks neighbouring keys instead of random ones (the join of all groups at scale
    10: 12.7 s -> 7.3 s). `reached`: every group's read_all_reached rows, when already read."""
    facts = project_table(conn, "pulse_group_facts")
    pick = "IN (SELECT group_id FROM etl_groups)" if only_touched else "IS NOT NULL"
    conn.execute(sa.text(f"DELETE FROM {facts} WHERE group_id {pick}"))
    _reached(conn, pick, reached)
    _group_orders(conn, pick)
    conn.execute(sa.text(f"""
INSERT INTO {facts} (group_id, deal_id, product_id, vendor_id, category_id, created_at, deadline, goal,
                     reached_at, converted_at, paid_total, paid_orders, paid_last_at)
SELECT g.id, gd.id, p.id, p.vendor_id, pn.category_id, g.created_at,
       {deadline_sql(conn, 'g.created_at', 'gd.expiration_time')}, gd.max_group_member,
       r.joined, od.converted_at, COALESCE(od.paid_total, 0), COALESCE(od.paid_orders, 0), od.paid_last_at
FROM groups g JOIN group_deals gd ON gd.id = g.group_deals_id JOIN products p ON p.id = gd.product_id
JOIN product_names pn ON pn.id = p.name_id
LEFT JOIN etl_reached r ON r.group_id = g.id
LEFT JOIN etl_group_orders od ON od.group_id = g.id
WHERE g.id {pick} AND g.deleted_at IS NULL
ORDER BY g.id"""))


def _staging(conn) -> None:
    """etl_uvm: one batch's per vendor x user x month activity, before it is split in two tables."""
    ids, ts = id_ts(conn)
    temp_table(conn, "etl_uvm", f"vendor_id {ids}, user_id {ids}, month DATE, first_join_at {ts}, orders INTEGER, "
                                f"first_lines INTEGER, revenue NUMERIC, first_order_at {ts}, last_order_at {ts}")


def refresh_user_months(conn, tz: str, batch: dict | None = None) -> None:
    """Recompute pulse_user_vendor_months and pulse_user_months for etl_user_months' months and
    the stale ones of the batch (its :lo / :hi), or everyone (no batch), after the group facts
    (they say which groups are live and whose they are).

    Memberships and completed order lines are grouped per vendor in one sort (grouping each
    and then their union sorted 3.7M rows twice more at scale 10: 42 s instead of 31 s). The
    all-vendor rows are sums of those, except the order count: an order's first line (line_no
    0 or 1) belongs to exactly one vendor, so counting first lines counts each order once.
    """
    scope = "all" if batch is None else "months"
    if batch is not None:
        conn.execute(sa.text(STALE_JOIN_MONTHS_SQL.format(uvm=project_table(conn, "pulse_user_vendor_months"),
                                                          facts=project_table(conn, "pulse_group_facts"))),
                     {"lo": batch["lo"], "hi": batch["hi"]})
        analyze_temp(conn, "etl_user_months")
    _staging(conn)
    conn.execute(sa.text(f"""
INSERT INTO etl_uvm (vendor_id, user_id, month, first_join_at, orders, first_lines, revenue, first_order_at,
                     last_order_at)
SELECT vendor_id, user_id, month, MIN(joined_at), COUNT(DISTINCT order_id), SUM(first_line), SUM(revenue),
       MIN(ordered_at), MAX(ordered_at)
FROM ({_activity(conn, scope, tz)}) x
GROUP BY vendor_id, user_id, month"""))
    cohort = _month(conn, local_date_sql(conn, "u.created_at", tz))
    columns = "user_id, month, cohort, signup_at, first_join_at, orders, revenue, first_order_at, last_order_at"
    for table, select in (
            ("pulse_user_vendor_months",
             f"SELECT x.vendor_id, x.user_id, x.month, {cohort}, u.created_at, x.first_join_at, x.orders, x.revenue, "
             f"x.first_order_at, x.last_order_at FROM etl_uvm x JOIN users u ON u.id = x.user_id"),
            ("pulse_user_months",
             f"SELECT x.user_id, x.month, {cohort}, u.created_at, MIN(x.first_join_at), SUM(x.first_lines), "
             f"SUM(x.revenue), MIN(x.first_order_at), MAX(x.last_order_at) FROM etl_uvm x "
             f"JOIN users u ON u.id = x.user_id GROUP BY x.user_id, x.month, u.created_at")):
        target = project_table(conn, table)
        conn.execute(sa.text(f"DELETE FROM {target} WHERE {OLD_ROWS[scope]}"))
        vendor = "vendor_id, " if table == "pulse_user_vendor_months" else ""
        conn.execute(sa.text(f"INSERT INTO {target} ({vendor}{columns}) {select}"))


OLD_ROWS = {"all": "user_id IS NOT NULL",
            "months": "(user_id, month) IN (SELECT user_id, month FROM etl_user_months)"}


def _completed_lines_scan(conn) -> str:
    """How SQLite reads every completed line: through the per-user index when it holds every
    column used (fewer pages than the table, laid out in order: 14-20 s instead of 20-31 s at
    scale 10), else the table in order (an older database's narrower index would cost one
    random table read per line)."""
    if conn.dialect.name != "sqlite":
        return ""
    index = next(i for i in order_lines.indexes if i.name == "ix_pol_status_user")
    have = {row[2] for row in conn.exec_driver_sql(f"PRAGMA index_info('{index.name}')")}
    return f" INDEXED BY {index.name}" if {c.name for c in index.columns} <= have else " NOT INDEXED"


def _activity(conn, scope: str, tz: str) -> str:
    """Memberships and completed order lines, one row each, with their vendor, user and month,
    for everyone ("all") or etl_user_months' months ("months")."""
    lines, facts = project_table(conn, "pulse_order_lines"), project_table(conn, "pulse_group_facts")
    join_month = _month(conn, local_date_sql(conn, "gc.created_at", tz))
    line_month = _month(conn, "l.local_day")
    if scope == "months":  # CROSS JOIN: SQLite must start from the few pairs, not scan the table
        memberships = (f"etl_user_months p CROSS JOIN groups_carts gc JOIN {facts} f ON f.group_id = gc.group_id "
                       f"WHERE gc.user_id = p.user_id AND {join_month} = p.month")
        completed = f"etl_user_months p CROSS JOIN {lines} l WHERE l.user_id = p.user_id AND {line_month} = p.month"
    else:
        scan = _completed_lines_scan(conn)
        memberships = f"groups_carts gc JOIN {facts} f ON f.group_id = gc.group_id WHERE gc.user_id IS NOT NULL"
        completed = f"{lines} l{scan} WHERE l.user_id IS NOT NULL"
    return f"""
SELECT f.vendor_id, gc.user_id, {join_month} AS month, gc.created_at AS joined_at, NULL AS order_id,
       0 AS first_line, 0 AS revenue, NULL AS ordered_at
FROM {memberships} AND gc.deleted_at IS NULL
UNION ALL
SELECT l.vendor_id, l.user_id, {line_month}, NULL, l.order_id, CASE WHEN l.line_no <= 1 THEN 1 ELSE 0 END,
       l.revenue, l.created_at
FROM {completed} AND l.status = 'COMPLETED'"""
