"""Hand-built tiny worlds with answers worked out by hand (DESIGN.md §4), on both backends.

The world (times UTC; local = UTC+3), as of 2026-03-20 21:00 (local midnight of the 21st),
KPI window = the 7 days before it:
- users u1, u2 (Jan), u3, u7 (Feb), u4 (Mar), u5 (Jan, soft-deleted), u6 (signs up after as-of);
- deal d1 (vendor V1, Vegetable, goal 2, 24 h): gA completed by u1+u2 (completed orders 16+16);
  gB: u3 joins, u4 joins ONE MINUTE after the deadline (expired), u1's row soft-deleted, u2 late
  with a FAILED order; gF: second member exactly at the deadline (completed); gC still active
  (13 h left); gE (January, u1 alone, expired);
- deal d2 (V1, Fruit): gD completed by u1, u2, u5 but its only completed order is soft-deleted
  and the other one canceled (so d2 is not converted);
- individual orders: u3 45 (items Veg 10 + Fruit 40, list 50, discount 5), u4 canceled,
  u7 16, u1 20 in the previous week;
- vendor V2 has a product and a deal but never sold anything; category Dairy never sold.
"""
from __future__ import annotations

import datetime as dt
import itertools
import math

import pytest

from analytics.cohorts import cohort_retention
from analytics.growth import category_growth
from data_access import breakdowns, customers, groups, metrics, schema
from data_access.db import init_db
from data_access.filters import Filters, Scope, Window
from pipeline.etl import run_once
from tests.conftest import TZ

T = dt.datetime
AS_OF = T(2026, 3, 20, 21)
WEEK = Window.last(AS_OF, 7)
_n = itertools.count(1)


def uid(prefix: int, n: int | None = None) -> str:
    return f"{prefix:08d}-0000-4000-8000-{(next(_n) if n is None else n):012d}"


class World:
    def __init__(self):
        self.rows = {t.name: [] for t in schema.SOURCE_TABLES}

    def add(self, table, **row):
        created = row.setdefault("created_at", T(2025, 1, 1))
        row.setdefault("updated_at", max(created, row.get("deleted_at") or created))
        row.setdefault("deleted_at", None)
        row.setdefault("id", uid(9))
        self.rows[table].append(row)
        return row["id"]

    def join(self, group, user, at, qty=2, deleted=None, order=None):
        gc = self.add("groups_carts", group_id=group, user_id=user, quantity=qty, status="X", created_at=at,
                      deleted_at=deleted)
        if order:
            status, total, pay, *rest = order
            self.add("orders", groups_carts_id=gc, personal_cart_id=None, status=status, total_amount=total,
                     discount=0, payment_method=pay, created_at=at + dt.timedelta(seconds=30),
                     deleted_at=rest[0] if rest else None)
        return gc

    def cart(self, user, at, items, status, total, pay="CHAPA", discount=0):
        cart = self.add("carts", user_id=user, status="CHECKED_OUT", created_at=at)
        for product, qty in items:
            self.add("personal_cart_items", cart_id=cart, product_id=product, quantity=qty, created_at=at)
        return self.add("orders", groups_carts_id=None, personal_cart_id=cart, status=status, total_amount=total,
                        discount=discount, payment_method=pay, created_at=at + dt.timedelta(minutes=1))

    def load(self, engine):
        init_db(engine)
        with engine.begin() as conn:
            for table in schema.SOURCE_TABLES:
                if self.rows[table.name]:
                    conn.execute(table.insert(), self.rows[table.name])
        run_once(engine, TZ)
        return engine


def build() -> tuple[World, dict]:
    w, ids = World(), {}
    for k, (created, deleted) in enumerate([(T(2026, 1, 10), None), (T(2026, 1, 15), None), (T(2026, 2, 5), None),
                                            (T(2026, 3, 1), None), (T(2026, 1, 20), T(2026, 2, 1)),
                                            (T(2026, 3, 25), None), (T(2026, 2, 10), None)], start=1):
        ids[f"u{k}"] = w.add("users", id=uid(1, k), name=f"User {k}", user_status="VERIFIED", created_at=created,
                             deleted_at=deleted)
    for name in ("Vegetable", "Fruit", "Dairy"):
        ids[name] = w.add("categories", id=uid(2), name=name, status="ACTIVE")
        ids["pn_" + name] = w.add("product_names", name=name + " item", category_id=ids[name], measuring_unit="kg")
    for v in ("V1", "V2"):
        ids[v] = w.add("vendors", id=uid(3), name=f"Vendor {v}", city="Addis Ababa", status="ACTIVE")
    for p, v, cat, price in (("p1", "V1", "Vegetable", 10), ("p2", "V1", "Fruit", 20), ("p3", "V2", "Vegetable", 30)):
        ids[p] = w.add("products", vendor_id=ids[v], name_id=ids["pn_" + cat], status="ACTIVE", approved="APPROVED")
        w.add("single_deals", product_id=ids[p], original_price=price)
    for d, p in (("d1", "p1"), ("d2", "p2"), ("d3", "p3")):
        ids[d] = w.add("group_deals", product_id=ids[p], max_group_member=2, group_price=8, expiration_time=24,
                       effective_from=T(2025, 12, 1), effective_to=T(2026, 12, 1), max_quantity_per_order=5)

    def group(name, deal, created, stored):
        ids[name] = w.add("groups", id=uid(4, len(ids)), group_deals_id=ids[deal], created_by=None, status=stored,
                          created_at=created)
        return ids[name]
    u = ids
    g = group("gA", "d1", T(2026, 3, 15, 10), "COMPLETED")
    w.join(g, u["u1"], T(2026, 3, 15, 10), order=("COMPLETED", 16, "CHAPA"))
    w.join(g, u["u2"], T(2026, 3, 15, 12), order=("COMPLETED", 16, "CHAPA"))
    g = group("gB", "d1", T(2026, 3, 16, 9), "COMPLETED")  # stored status contradicts: derived EXPIRED
    w.join(g, u["u3"], T(2026, 3, 16, 9), order=("CANCELED", 8, "CHAPA"))  # paid -> refunded
    w.join(g, u["u1"], T(2026, 3, 16, 10), deleted=T(2026, 3, 16, 11), order=("CANCELED", 8, "CHAPA"))
    w.join(g, u["u4"], T(2026, 3, 17, 9, 1), order=("CANCELED", 8, "CASH_ON_DELIVERY"))  # a minute late
    w.join(g, u["u2"], T(2026, 3, 17, 12), order=("FAILED", 8, "CHAPA"))
    g = group("gF", "d1", T(2026, 3, 18, 9), "COMPLETED")
    w.join(g, u["u1"], T(2026, 3, 18, 9))
    w.join(g, u["u3"], T(2026, 3, 19, 9))  # exactly at the deadline: completed
    g = group("gC", "d1", T(2026, 3, 20, 10), "PENDING")
    w.join(g, u["u2"], T(2026, 3, 20, 10))
    g = group("gE", "d1", T(2026, 1, 12, 8), "FAILED")
    w.join(g, u["u1"], T(2026, 1, 12, 8))
    g = group("gD", "d2", T(2026, 3, 14, 8), "COMPLETED")
    w.join(g, u["u1"], T(2026, 3, 14, 8), order=("COMPLETED", 20, "CHAPA", T(2026, 3, 14, 20)))  # deleted
    w.join(g, u["u2"], T(2026, 3, 14, 9), order=("CANCELED", 20, "CHAPA"))
    w.join(g, u["u5"], T(2026, 3, 14, 10))
    w.cart(u["u3"], T(2026, 3, 18, 12), [(u["p1"], 1), (u["p2"], 2)], "COMPLETED", 45, discount=5)
    w.cart(u["u4"], T(2026, 3, 18, 13), [(u["p1"], 1)], "CANCELED", 10)
    w.cart(u["u7"], T(2026, 3, 19, 12), [(u["p1"], 2)], "COMPLETED", 16, discount=4)
    w.cart(u["u1"], T(2026, 3, 10, 12), [(u["p1"], 2)], "COMPLETED", 20)
    return w, ids


@pytest.fixture
def world(fresh_db, backend):
    w, ids = build()
    engine = w.load(fresh_db(backend))
    with engine.connect() as conn:
        yield conn, ids


def test_kpis_by_hand(world):
    conn, ids = world
    k = metrics.kpi_summary(conn, WEEK, AS_OF)
    assert k["revenue"] == pytest.approx(16 + 16 + 45 + 16)  # canceled and soft-deleted orders excluded
    assert k["completed_orders"] == 4
    assert k["aov"] == pytest.approx(93 / 4)
    assert k["deal_conversion_rate"] == 0.5  # d1 converted; d2's only completed order is deleted
    assert k["group_success_rate"] == pytest.approx(3 / 4)  # gA, gF, gD completed; gB expired; gC open
    assert k["avg_revenue_per_deal"] == pytest.approx(32.0)
    assert k["participation_rate"] == pytest.approx(4 / 5)  # u1-u4 of u1,u2,u3,u4,u7 (u5 deleted, u6 later)
    assert k["refund_total"] == pytest.approx(8.0) and k["refund_orders"] == 1  # not COD, FAILED, deleted row


def test_series_rows_equal_summaries(world):
    conn, _ = world
    window = Window(T(2026, 3, 8, 21), AS_OF)
    series = metrics.kpi_series(conn, window, AS_OF, "week")
    assert [d.isoformat() for d in series["period_start"]] == ["2026-03-09", "2026-03-16"]
    assert series["completed_orders"].sum() == 5  # u1's 20 on the 10th is in the first week
    for _, row in series.iterrows():
        start = max(window.start, T.combine(row["period_start"], dt.time()) - dt.timedelta(hours=3))
        one = metrics.kpi_summary(conn, Window(start, min(AS_OF, start + dt.timedelta(days=7))), AS_OF)
        for key, value in one.items():
            assert (value is None and math.isnan(row[key])) or row[key] == pytest.approx(value), key


def test_empty_window_is_zero_and_null_not_zero_rates(world):
    conn, _ = world
    k = metrics.kpi_summary(conn, Window(T(2026, 2, 20), T(2026, 2, 27)), T(2026, 2, 27))
    assert k == {"revenue": 0.0, "completed_orders": 0, "aov": None, "deal_conversion_rate": None,
                 "group_success_rate": None, "avg_revenue_per_deal": None, "participation_rate": 0.0,
                 "refund_total": 0.0, "refund_orders": 0}
    early = metrics.kpi_summary(conn, Window(T(2025, 6, 1), T(2025, 6, 8)), T(2025, 6, 8))
    assert early["participation_rate"] is None  # nobody had signed up: no denominator
    assert customers.top_users(conn, T(2025, 6, 8)).empty
    series = metrics.kpi_series(conn, Window(T(2026, 2, 20), T(2026, 2, 27)), T(2026, 2, 27), "day")
    assert len(series) == 8 and series["revenue"].eq(0).all() and series["aov"].isna().all()


def test_vendor_without_sales(world):
    conn, ids = world
    k = metrics.kpi_summary(conn, WEEK, AS_OF, scope=Scope(ids["V2"]))
    assert k["revenue"] == 0.0 and k["completed_orders"] == 0
    for key in ("aov", "deal_conversion_rate", "group_success_rate", "avg_revenue_per_deal"):
        assert k[key] is None, key
    assert k["participation_rate"] == 0.0  # a real zero: all users are the denominator
    assert customers.top_users(conn, AS_OF, scope=Scope(ids["V2"])).empty
    assert breakdowns.vendor_category_revenue(conn, WEEK, scope=Scope(ids["V2"])).empty
    # asking for V1's data inside V2's scope yields nothing, not V1's numbers
    assert metrics.kpi_summary(conn, WEEK, AS_OF, Filters.of(ids["V1"]), Scope(ids["V2"]))["revenue"] == 0.0


def test_group_status_late_goal_is_expired(world):
    conn, ids = world
    states = groups.group_states(conn, Window(T(2026, 1, 1), AS_OF), AS_OF).set_index("group_id")["status"]
    assert states[ids["gB"]] == "EXPIRED"  # goal reached one minute after the deadline (stored COMPLETED)
    assert states[ids["gF"]] == "COMPLETED"  # reached exactly at the deadline
    assert states[ids["gE"]] == "EXPIRED" and states[ids["gC"]] == "ACTIVE"
    before = groups.group_states(conn, Window(T(2026, 3, 16), T(2026, 3, 17)), T(2026, 3, 17, 8))
    assert before.set_index("group_id").loc[ids["gB"], "status"] == "ACTIVE"  # before its deadline
    counts = groups.group_status_counts(conn, AS_OF, 14)
    assert counts == {"active": 1, "nearing_expiry": 1, "completed": 3, "expired": 1}
    assert groups.group_status_counts(conn, AS_OF, 2)["nearing_expiry"] == 0
    near = groups.groups_nearing_expiry(conn, AS_OF, 14)
    assert list(near["group_id"]) == [ids["gC"]] and near["hours_left"].iloc[0] == pytest.approx(13.0)
    assert (near["product"].iloc[0], near["vendor"].iloc[0], near["members"].iloc[0]) == ("Vegetable item",
                                                                                         "Vendor V1", 1)


def test_top_users_soft_deleted_orders_and_ties(world):
    conn, ids = world
    top = customers.top_users(conn, AS_OF)
    assert list(top["user_id"]) == [ids["u3"], ids["u1"], ids["u2"], ids["u7"]]  # u2/u7 tie at 16: id order
    assert list(top["revenue"]) == pytest.approx([45, 36, 16, 16])  # u1's deleted 20 is not there
    assert list(top["completed_orders"]) == [1, 2, 1, 1]
    assert list(top["groups_joined"]) == [2, 3, 4, 0]  # u1's deleted membership of gB does not count
    assert list(top["categories"]) == ["Fruit, Vegetable", "Vegetable", "Vegetable", "Vegetable"]
    assert list(customers.top_users(conn, AS_OF, n=2)["rank"]) == [1, 2]
    rfm = customers.user_rfm(conn, AS_OF).set_index("user_id")
    assert rfm.loc[ids["u1"], "frequency"] == 2 and rfm.loc[ids["u1"], "monetary"] == pytest.approx(36)
    assert ids["u5"] not in rfm.index


def test_cohorts_denominators_and_incomplete_months(world):
    conn, ids = world
    as_of = T(2026, 4, 10)
    act = customers.cohort_activity(conn, as_of).set_index("cohort")
    assert act["size"].to_dict() == {dt.date(2026, 1, 1): 2, dt.date(2026, 2, 1): 2, dt.date(2026, 3, 1): 2}
    ret = cohort_retention(act.reset_index(), as_of, TZ)
    jan, feb, mar = (ret.loc[dt.date(2026, m, 1)] for m in (1, 2, 3))
    assert jan[0] == 0.5  # u1 of {u1, u2}: share of ALL the cohort, not of month-0 participants
    assert jan[1] == 0.0  # nobody in February: a real zero (the month ended)
    assert jan[2] == 1.0  # u1 and u2 in March (u5, deleted, counts nowhere)
    assert math.isnan(jan[3])  # April has not ended by April 10th
    assert feb[0] == 0.0 and feb[1] == 0.5 and math.isnan(feb[2])  # u3 of {u3, u7}
    assert mar[0] == 0.5 and math.isnan(mar[1])  # u4 of {u4, u6}
    mid = cohort_retention(customers.cohort_activity(conn, AS_OF).reset_index(drop=True), AS_OF, TZ)
    assert mid.loc[dt.date(2026, 3, 1)].isna().all()  # March not over on the 20th: empty, not 0


def test_growth_new_and_null(world):
    conn, ids = world
    got = category_growth(*breakdowns.category_growth_inputs(conn, AS_OF, "week")).set_index("category")
    assert got.loc["Vegetable", "growth"] == pytest.approx((16 + 16 + 9 + 16 - 20) / 20)
    assert got.loc["Fruit", "growth"] == "new"  # previous week 0, this week 36
    assert got.loc["Dairy", "growth"] is None  # nothing in either week
    assert got.loc["Fruit", "current"] == pytest.approx(36.0)
    gvi = breakdowns.group_vs_individual(conn, WEEK, "category").set_index("key")
    assert gvi.loc["Vegetable"].tolist() == [4, 3]  # quantities (2 + 2 group; 1 + 2 individual), not orders
    assert gvi.loc["Fruit"].tolist() == [0, 2]


def test_bad_input_is_a_clear_error(world):
    conn, _ = world
    with pytest.raises(ValueError, match="future"):
        metrics.kpi_summary(conn, WEEK, dt.datetime.now() + dt.timedelta(days=2))
    with pytest.raises(ValueError, match="before it starts"):
        Window(AS_OF, AS_OF - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="N must be"):
        customers.top_users(conn, AS_OF, n=0)
    with pytest.raises(ValueError, match="after as-of"):
        metrics.kpi_summary(conn, Window(AS_OF, AS_OF + dt.timedelta(days=1)), AS_OF - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="frequency"):
        metrics.kpi_series(conn, WEEK, AS_OF, "hour")


def test_segments_rules_and_summary():
    import pandas as pd

    from analytics.segments import SEGMENTS, assign_segments, segment_summary
    rfm = pd.DataFrame({"user_id": list("abcdef"), "recency_days": [3, 60, 5, 8, 10, 2],
                        "frequency": [1, 9, 3, 5, 1, 2], "monetary": [900, 5000, 4000, 300, 50, 80],
                        "tenure_days": [10, 200, 150, 120, 100, 90]})
    seg = assign_segments(rfm).set_index("user_id")["segment"]
    # a is new despite its spend; b lapsed despite being the biggest spender
    assert seg.to_dict() == {"a": "new", "b": "at risk", "c": "high-value", "d": "regular", "e": "occasional",
                             "f": "occasional"}
    summary = segment_summary(rfm).set_index("segment")
    assert list(summary.index) == SEGMENTS and summary["users"].sum() == 6
    assert summary["revenue_share"].sum() == pytest.approx(1.0)
    assert summary.loc["high-value", "revenue"] == 4000
    empty = segment_summary(rfm.iloc[:0])
    assert empty["users"].eq(0).all() and empty["revenue_share"].isna().all()
