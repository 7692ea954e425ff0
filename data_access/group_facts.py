"""Group status, conversion and refunds at any as_of from the ETL's pulse_group_facts.

One row per group (pipeline/etl_derived.py) holds the times that decide its state, so a KPI
over a month of groups reads a few thousand rows instead of probing every member and order row
(data_access/groups.states_cte, which stays for member counts and the live board's list).
The result is the same as states_cte's for any as_of: the stored times are compared with it.
"""
from __future__ import annotations

import datetime as dt

from data_access.dialect import bind_ts, project_table
from data_access.filters import Filters, Scope, Window
from data_access.scope import line_conditions, where

PAID = "{o}.payment_method IS NOT NULL AND {o}.payment_method <> 'CASH_ON_DELIVERY' AND {o}.status <> 'FAILED'"
COMPLETED = "f.reached_at IS NOT NULL AND f.reached_at <= f.deadline AND f.reached_at < :as_of"


def _paid_at_as_of(conn, what: str) -> str:
    """Paid orders of group gf.group_id created before as_of; only asked for groups that have
    paid orders after as_of (as_of in the past), where the stored totals count too many."""
    lines = project_table(conn, "pulse_order_lines")
    return (f"(SELECT {what} FROM {lines} l WHERE l.group_id = gf.group_id AND l.deal_type = 'group' "
            f"AND l.created_at < :as_of AND {PAID.format(o='l')})")


def facts_cte(conn, lo: dt.datetime, hi: dt.datetime, as_of: dt.datetime, filters: Filters, scope: Scope,
              orders: Window | None = None) -> tuple[str, dict, list]:
    """`WITH ... gs`: groups created in [lo, hi) within filters/scope with their state at as_of.

    gs columns: id, deal_id, product_id, vendor_id, category_id, created_at, goal, deadline,
    status (ACTIVE | COMPLETED | EXPIRED); with `orders` (the KPI window) also converted (1 when
    the group has a completed order before as_of) and paid_total / paid_orders (its paid orders
    before as_of when it expired with its deadline in the window, else NULL).
    """
    conds, params, binds = line_conditions(filters, scope, alias="f")
    params.update(gs_lo=bind_ts(conn, lo), gs_hi=bind_ts(conn, hi), as_of=bind_ts(conn, as_of))
    facts = project_table(conn, "pulse_group_facts")
    gf = (f"WITH gf AS (SELECT f.*, CASE WHEN {COMPLETED} THEN 'COMPLETED' WHEN f.deadline <= :as_of THEN 'EXPIRED' "
          f"ELSE 'ACTIVE' END AS status FROM {facts} f WHERE f.created_at >= :gs_lo AND f.created_at < :gs_hi "
          f"AND {where(conds)})")
    cols = "group_id AS id, deal_id, product_id, vendor_id, category_id, created_at, goal, deadline, status"
    if orders is None:
        return f"{gf}, gs AS (SELECT {cols} FROM gf)", params, binds
    params.update(o_start=bind_ts(conn, orders.start), o_end=bind_ts(conn, orders.end))
    not_due = "status <> 'EXPIRED' OR deadline < :o_start OR deadline >= :o_end"
    stored = "paid_last_at IS NULL OR paid_last_at < :as_of"
    gs = (f"SELECT {cols}, CASE WHEN converted_at < :as_of THEN 1 ELSE 0 END AS converted, "
          f"CASE WHEN {not_due} THEN NULL WHEN {stored} THEN paid_total "
          f"ELSE {_paid_at_as_of(conn, 'COALESCE(SUM(l.order_total), 0)')} END AS paid_total, "
          f"CASE WHEN {not_due} THEN NULL WHEN {stored} THEN paid_orders ELSE {_paid_at_as_of(conn, 'COUNT(*)')} END "
          f"AS paid_orders FROM gf")
    return f"{gf}, gs AS ({gs})", params, binds
