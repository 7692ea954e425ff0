"""Group-deal status tracking: PostgreSQL triggers + NOTIFY, the sweeper's expiries and refunds,
and the SQLite path deriving exactly what PostgreSQL derives.

Expected statuses and refunds come from a small re-implementation of DESIGN.md §4 over the raw
source tables (`_oracle`), never from the tables the code under test wrote.
"""
from __future__ import annotations

import datetime as dt
import json
import select
import uuid

import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from data_access.dialect import bind_ts, project_table
from data_access.operations import naive_utc
from data_access.schema import groups, groups_carts, orders
from pipeline import group_tracking as gt
from pipeline.demo_data import DemoSpec
from pipeline.seed import seed
from tests.conftest import END, TZ


def seeded_fresh(fresh_db, backend: str, seed_: int = 3):
    engine = fresh_db(backend)
    seed(engine, DemoSpec(scale=0.01, seed=seed_, end=END), TZ, show_progress=False)
    return engine


def frame(engine, sql: str, *ts_cols: str, **params) -> pd.DataFrame:
    with engine.connect() as conn:
        res = conn.execute(sa.text(sql), params)
        df = pd.DataFrame(res.fetchall(), columns=list(res.keys()))
    for c in df.columns:
        if df[c].dtype == object and len(df) and isinstance(df[c].dropna().iloc[0] if df[c].notna().any() else None, uuid.UUID):
            df[c] = df[c].astype(str)
    return naive_utc(df, *ts_cols)


def naive(v) -> pd.Timestamp:
    t = pd.Timestamp(v)
    return t.tz_convert(None) if t.tzinfo else t


def _oracle(engine, now: dt.datetime) -> tuple[pd.DataFrame, set[str]]:
    """(group_id -> status at `now`, paid order ids of expired groups) straight from source rows."""
    g = frame(engine, "SELECT g.id, g.created_at, gd.expiration_time AS h, gd.max_group_member AS goal FROM groups g "
              "JOIN group_deals gd ON gd.id = g.group_deals_id WHERE g.deleted_at IS NULL", "created_at")
    m = frame(engine, "SELECT group_id, user_id, MIN(created_at) AS t FROM groups_carts WHERE deleted_at IS NULL "
              "GROUP BY group_id, user_id", "t")
    m = m[m["t"] <= now].sort_values("t")
    nth = m.groupby("group_id")["t"].apply(list).to_dict()
    status = {}
    for r in g.itertuples():
        deadline = r.created_at + pd.Timedelta(hours=int(r.h))
        joins = nth.get(r.id, [])
        reached = joins[r.goal - 1] if len(joins) >= r.goal else None
        status[r.id] = ("COMPLETED" if reached is not None and reached <= deadline else
                        "EXPIRED" if now >= deadline else "ACTIVE")
    o = frame(engine, "SELECT o.id, gc.group_id FROM orders o JOIN groups_carts gc ON gc.id = o.groups_carts_id "
              "WHERE o.deleted_at IS NULL AND gc.deleted_at IS NULL AND o.payment_method <> 'CASH_ON_DELIVERY' "
              "AND o.status <> 'FAILED' AND o.total_amount IS NOT NULL")
    paid = {r.id for r in o.itertuples() if status.get(r.group_id) == "EXPIRED"}
    return pd.Series(status), paid


def _deal(engine, goal: int) -> tuple[str, int]:
    with engine.connect() as conn:
        d, h = conn.execute(sa.text("SELECT id, expiration_time FROM group_deals WHERE max_group_member = :g "
                                    "ORDER BY id LIMIT 1"), {"g": goal}).one()
        return str(d), int(h)


def _users(engine, n: int) -> list[str]:
    with engine.connect() as conn:
        return [str(u) for u in conn.execute(sa.text("SELECT id FROM users ORDER BY id LIMIT :n"), {"n": n}).scalars()]


def add_group(engine, deal: str, created: dt.datetime) -> str:
    """A group created at `created` (maybe in the past) but written now: updated_at = wall clock."""
    gid = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(sa.insert(groups).values(id=gid, group_deals_id=deal, status="PENDING",
                                              created_at=created, updated_at=gt.now_utc()))
    return gid


def add_member(engine, gid: str, user: str, at: dt.datetime, pay: str = "CHAPA", amount: float = 120.0) -> str:
    gc, oid = str(uuid.uuid4()), str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(sa.insert(groups_carts).values(id=gc, group_id=gid, user_id=user, quantity=1, status="ACTIVE",
                                                    created_at=at, updated_at=gt.now_utc()))
        conn.execute(sa.insert(orders).values(id=oid, groups_carts_id=gc, status="PENDING", total_amount=amount,
                                              discount=0, payment_method=pay, created_at=at,
                                              updated_at=gt.now_utc()))
    return oid


def state(engine, gid: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(f"SELECT * FROM {project_table(conn, 'pulse_group_state')} "
                                         "WHERE group_id = :g"), {"g": gid}).mappings().one())


def events(engine, gid: str) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text(f"SELECT kind FROM {project_table(conn, 'pulse_group_events')} "
                                        "WHERE group_id = :g"), {"g": gid}).scalars())


def drain(listen, seconds: float = 3.0) -> list:
    """Notifications that arrive within `seconds` (returns as soon as some came)."""
    if select.select([listen], [], [], seconds)[0]:
        listen.poll()
    got = list(listen.notifies)
    listen.notifies.clear()
    return got


@pytest.mark.postgres
def test_triggers_keep_state_and_notify_goal_and_nearing_expiry(fresh_db):
    engine = seeded_fresh(fresh_db, "postgres")
    gt.install(engine, nearing_expiry_hours=2.0)
    listen = psycopg2.connect(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
    listen.set_isolation_level(0)
    listen.cursor().execute("LISTEN pulse_groups; LISTEN pulse_orders")
    deal, hours = _deal(engine, 3)
    u = _users(engine, 4)
    now = gt.now_utc()
    gid = add_group(engine, deal, now - dt.timedelta(hours=1))
    assert state(engine, gid)["members"] == 0 and state(engine, gid)["derived_status"] == "ACTIVE"
    add_member(engine, gid, u[0], now - dt.timedelta(minutes=50))
    second = add_member(engine, gid, u[1], now - dt.timedelta(minutes=40))
    s = state(engine, gid)
    assert (s["members"], s["goal"], s["derived_status"]) == (2, 3, "ACTIVE")
    got = drain(listen)
    assert {n.channel for n in got} == {"pulse_orders"}  # orders notify; no group event yet
    third = now - dt.timedelta(minutes=1)
    add_member(engine, gid, u[2], third)
    s = state(engine, gid)
    assert (s["members"], s["derived_status"]) == (3, "COMPLETED")
    assert naive(s["goal_reached_at"]) == third
    assert naive(s["deadline"]) == now - dt.timedelta(hours=1) + dt.timedelta(hours=hours)
    goal = [json.loads(n.payload) for n in drain(listen) if n.channel == "pulse_groups"]
    assert [(p["kind"], p["group_id"], p["members"], p["goal"]) for p in goal] == [("goal_reached", gid, 3, 3)]
    assert events(engine, gid) == {"goal_reached"}

    # A member leaving (soft delete) is seen by the UPDATE trigger: two members, goal no longer met.
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE groups_carts SET deleted_at = :t, updated_at = :t WHERE id = "
                             "(SELECT groups_carts_id FROM orders WHERE id = :o)"), {"t": now, "o": second})
    assert state(engine, gid)["members"] == 2

    # A group one hour before its deadline is in the nearing-expiry window from its first row on.
    near = add_group(engine, deal, now - dt.timedelta(hours=hours - 1))
    assert state(engine, near)["derived_status"] == "NEARING_EXPIRY"
    payloads = [json.loads(n.payload) for n in drain(listen) if n.channel == "pulse_groups"]
    assert [(p["kind"], p["group_id"]) for p in payloads] == [("nearing_expiry", near)]
    add_member(engine, near, u[3], now)
    assert [n for n in drain(listen, 1.0) if n.channel == "pulse_groups"] == []  # notified once only
    listen.close()


def test_sweeper_refunds_every_paid_order_of_expired_groups_exactly_once(fresh_db, backend):
    engine = seeded_fresh(fresh_db, backend)
    now = END + dt.timedelta(days=3)  # every group closed (deadlines are at most 48 h out)
    # Soft-deleted rows count for nothing: delete one paid order of a group that will be expired.
    status, paid = _oracle(engine, now)
    victim = sorted(paid)[0]
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE orders SET deleted_at = updated_at WHERE id = :o"), {"o": victim})
    status, paid = _oracle(engine, now)
    assert victim not in paid and len(paid) > 50
    gt.install(engine, now=END)
    first = gt.sweep(engine, now=now)
    assert first.expired == int((status == "EXPIRED").sum())
    refunds = frame(engine, f"SELECT r.order_id, r.amount, r.status, o.total_amount FROM "
                    f"{project_table(engine, 'pulse_refunds')} r JOIN orders o ON o.id = r.order_id")
    assert set(refunds["order_id"]) == paid and first.refunds == len(paid)
    assert (refunds["amount"].astype(float) == refunds["total_amount"].astype(float)).all()
    assert set(refunds["status"]) == {"pending"}
    again = gt.sweep(engine, now=now + dt.timedelta(hours=1))
    assert (again.expired, again.refunds) == (0, 0)
    with engine.connect() as conn:
        n = conn.execute(sa.text(f"SELECT COUNT(*) FROM {project_table(conn, 'pulse_refunds')}")).scalar_one()
        ev = conn.execute(sa.text(f"SELECT COUNT(*) FROM {project_table(conn, 'pulse_group_events')} "
                                  "WHERE kind = 'expired'")).scalar_one()
    assert n == len(paid) and ev == first.expired
    derived = frame(engine, f"SELECT group_id, derived_status FROM {project_table(engine, 'pulse_group_state')}")
    assert derived.set_index("group_id")["derived_status"].sort_index().equals(status.sort_index())


def test_goal_reached_one_minute_after_the_deadline_is_expired(fresh_db, backend):
    engine = seeded_fresh(fresh_db, backend)
    gt.install(engine, now=END)
    deal, hours = _deal(engine, 3)
    u = _users(engine, 3)
    created = END - dt.timedelta(hours=hours + 5)
    deadline = created + dt.timedelta(hours=hours)
    late, on_time = add_group(engine, deal, created), add_group(engine, deal, created)
    for gid, last in ((late, deadline + dt.timedelta(minutes=1)), (on_time, deadline - dt.timedelta(minutes=1))):
        add_member(engine, gid, u[0], created + dt.timedelta(minutes=1))
        add_member(engine, gid, u[1], created + dt.timedelta(minutes=2), pay="CASH_ON_DELIVERY")
        add_member(engine, gid, u[2], last)
    result = gt.sweep(engine, now=END)
    s = state(engine, late)
    assert s["derived_status"] == "EXPIRED" and s["members"] == 3
    assert naive(s["goal_reached_at"]) == deadline + dt.timedelta(minutes=1)  # reached, but late
    assert events(engine, late) == {"expired"} and events(engine, on_time) == {"goal_reached"}
    assert state(engine, on_time)["derived_status"] == "COMPLETED"
    refunds = frame(engine, f"SELECT group_id, amount FROM {project_table(engine, 'pulse_refunds')} "
                    f"WHERE group_id IN (:a, :b)", a=late, b=on_time)
    assert list(refunds["group_id"]) == [late, late]  # two paid members; cash on delivery is not refunded
    assert result.refunds >= 2
    # Someone still pays into the expired group: the next sweep refunds that order too, once.
    extra = add_member(engine, late, _users(engine, 4)[3], END - dt.timedelta(minutes=30))
    assert gt.sweep(engine, now=END).refunds == 1
    assert gt.sweep(engine, now=END).refunds == 0
    ids = frame(engine, f"SELECT id, order_id FROM {project_table(engine, 'pulse_refunds')} WHERE group_id = :g", g=late)
    assert extra in set(ids["order_id"]) and len(ids) == 3
    assert all(uuid.UUID(i).version == 4 and str(uuid.UUID(i)) == i for i in ids["id"])


def _snapshot(engine) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    st = frame(engine, f"SELECT group_id, group_deal_id, product_id, vendor_id, members, goal, created_at, deadline, "
               f"goal_reached_at, derived_status, stored_status FROM {project_table(engine, 'pulse_group_state')}",
               "created_at", "deadline", "goal_reached_at").sort_values("group_id", ignore_index=True)
    ev = frame(engine, f"SELECT group_id, kind, at FROM {project_table(engine, 'pulse_group_events')}", "at"
               ).sort_values(["group_id", "kind"], ignore_index=True)
    rf = frame(engine, f"SELECT order_id, group_id, user_id, amount, payment_method, status FROM "
               f"{project_table(engine, 'pulse_refunds')}").sort_values("order_id", ignore_index=True)
    rf["amount"] = rf["amount"].astype(float)
    return st, ev, rf


@pytest.mark.postgres
def test_sqlite_derives_the_same_states_events_and_refunds_as_postgres(fresh_db):
    lite, pg = seeded_fresh(fresh_db, "sqlite", 11), seeded_fresh(fresh_db, "postgres", 11)
    at = END - dt.timedelta(hours=5)
    for engine in (lite, pg):
        gt.install(engine, nearing_expiry_hours=2.0, now=at)
    a, b = _snapshot(lite), _snapshot(pg)
    assert set(a[0]["derived_status"]) == {"ACTIVE", "NEARING_EXPIRY", "COMPLETED", "EXPIRED"}
    pd.testing.assert_frame_equal(a[0], b[0], check_dtype=False)
    pd.testing.assert_frame_equal(a[1], b[1], check_dtype=False)
    for engine in (lite, pg):  # triggers saw no change since `at`: bring both up to the sweep's time
        gt.refresh_changed(engine, END + dt.timedelta(hours=1), full=True)
        gt.sweep(engine, now=END + dt.timedelta(hours=1))
    a, b = _snapshot(lite), _snapshot(pg)
    assert len(a[2]) > 20
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y, check_dtype=False)


def test_simulated_traffic_agrees_with_the_derivation(fresh_db, backend):
    """The live simulator plays ChipChip: what it stores as COMPLETED must derive COMPLETED."""
    from pipeline.simulate import simulate
    engine = seeded_fresh(fresh_db, backend)
    gt.install(engine)
    started = gt.now_utc()
    stats = simulate(engine, rate=40, duration=2.5, seed=5, report=None)
    assert stats.groups > 5 and stats.joins > stats.groups and stats.completed > 0
    gt.sweep(engine)
    sim = frame(engine, f"SELECT s.derived_status, g.status, s.members, s.goal FROM "
                f"{project_table(engine, 'pulse_group_state')} s JOIN groups g ON g.id = s.group_id "
                f"WHERE g.created_at >= :t", t=bind_ts(engine, started))
    assert len(sim) == stats.groups
    done = sim[sim["status"] == "COMPLETED"]
    assert len(done) == stats.completed and set(done["derived_status"]) == {"COMPLETED"}
    assert (done["members"] == done["goal"]).all()
    assert set(sim.loc[sim["status"] != "COMPLETED", "derived_status"]) <= {"ACTIVE", "NEARING_EXPIRY"}
