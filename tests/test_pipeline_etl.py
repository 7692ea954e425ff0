"""Incremental ETL under fire: a backfill SIGKILLed mid-run and restarted ends identical to a full
rebuild of an identical database; re-runs and replays change nothing; bad rows are quarantined;
`etl --follow` wakes on NOTIFY (PostgreSQL) or polls (SQLite) and stops cleanly on SIGTERM."""
from __future__ import annotations

import datetime as dt
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid

import pandas as pd
import sqlalchemy as sa

from data_access.dialect import project_table, to_utc_naive
from data_access.meta import get_meta, set_meta
from data_access.schema import groups_carts, orders, users
from data_access.operations import naive_utc
from pipeline import etl
from tests.conftest import END, TZ
from tests.test_pipeline_groups import frame, naive, seeded_fresh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD = {  # order id -> the reason the ETL must give
    "00000000-0000-4000-8000-00000000000a": "negative amount",
    "00000000-0000-4000-8000-00000000000b": "orphan: groups_carts row missing",
    "00000000-0000-4000-8000-00000000000c": "impossible timestamp: updated before created",
}


def cli(engine, *args: str, **kw) -> subprocess.Popen:
    url = engine.url.render_as_string(hide_password=False)
    return subprocess.Popen([sys.executable, "-m", "dashboard", "--database-url", url, *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def inject_bad_rows(engine) -> None:
    """The same three bad orders in any database (fixed ids): negative, orphan, time-travelling."""
    with engine.begin() as conn:
        gc, cart = conn.execute(sa.text("SELECT groups_carts_id FROM orders WHERE groups_carts_id IS NOT NULL "
                                        "ORDER BY id LIMIT 1")).scalar(), None
        if conn.dialect.name == "postgresql":  # a dump without foreign keys: skip their triggers here
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        t = END - dt.timedelta(days=3)
        rows = [(list(BAD)[0], str(gc), -50, t, t), (list(BAD)[1], str(uuid.uuid4()), 80, t, t),
                (list(BAD)[2], str(gc), 80, t, t - dt.timedelta(hours=2))]
        conn.execute(sa.insert(orders), [dict(id=i, groups_carts_id=g, status="COMPLETED", total_amount=a, discount=0,
                                              payment_method="CHAPA", created_at=c, updated_at=u)
                                         for i, g, a, c, u in rows])
        del cart


PER_ENTITY = {"pulse_group_facts": ["group_id"], "pulse_user_months": ["user_id", "month"],
              "pulse_user_vendor_months": ["vendor_id", "user_id", "month"]}
TS_COLUMNS = ["created_at", "deadline", "reached_at", "converted_at", "paid_last_at", "signup_at", "first_join_at",
              "first_order_at", "last_order_at"]


def per_entity(engine) -> list[pd.DataFrame]:
    """The ETL's per-group and per-user-month tables, comparable across runs and backends."""
    out = []
    for table, keys in PER_ENTITY.items():
        df = frame(engine, f"SELECT * FROM {project_table(engine, table)}")
        df = naive_utc(df, *[c for c in TS_COLUMNS if c in df])
        for c in ("paid_total", "revenue"):
            if c in df:
                df[c] = df[c].astype(float).round(6)
        for c in ("month", "cohort"):
            if c in df:
                df[c] = df[c].astype(str)
        out.append(df.sort_values(keys, ignore_index=True))
    return out


def derived(engine) -> tuple[pd.DataFrame, ...]:
    lines = frame(engine, f"SELECT * FROM {project_table(engine, 'pulse_order_lines')}", "created_at", "updated_at")
    daily = frame(engine, f"SELECT * FROM {project_table(engine, 'pulse_daily_sales')}")
    quar = frame(engine, f"SELECT source_table, source_id, reason FROM {project_table(engine, 'pulse_quarantine')}")
    for df in (lines, daily):
        for c in ("revenue", "order_total"):
            if c in df:
                df[c] = df[c].astype(float).round(6)
        df["local_day"] = df["local_day"].astype(str)
    return (lines.sort_values(["order_id", "line_no"], ignore_index=True),
            daily.sort_values(["local_day", "product_id", "deal_type", "status"], ignore_index=True),
            quar.sort_values(["source_id"], ignore_index=True), *per_entity(engine))


def watermark(engine):
    with engine.connect() as conn:
        return get_meta(conn, etl.WATERMARK_KEY)


def kill_mid_run(engine, rng: random.Random) -> str:
    """Start a small-batch backfill, SIGKILL it after some committed batches; returns the watermark."""
    before = watermark(engine)
    proc = cli(engine, "etl", "--once", "--batch-rows", "40")
    deadline = time.monotonic() + 60
    while watermark(engine) == before and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(rng.uniform(0, 0.15))  # land anywhere: between batches or inside one
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the backfill finished before it could be killed"
    return watermark(engine)


def test_killed_backfill_resumes_to_exactly_a_full_rebuild(fresh_db, backend):
    victim, reference = seeded_fresh(fresh_db, backend, 31), seeded_fresh(fresh_db, backend, 31)
    for engine in (victim, reference):
        inject_bad_rows(engine)
    with victim.begin() as conn:  # forget everything derived: a backfill from scratch
        for t in etl.DERIVED:
            conn.execute(sa.text(f"DELETE FROM {project_table(conn, t)}"))
        set_meta(conn, etl.WATERMARK_KEY, None)
        source_max = conn.execute(sa.text("SELECT MAX(updated_at) FROM orders")).scalar()
    rng = random.Random(backend)
    marks = [kill_mid_run(victim, rng), kill_mid_run(victim, rng)]
    assert marks[0] is not None and marks[0] <= marks[1] < pd.Timestamp(source_max).isoformat()
    for engine, args in ((victim, ("--once",)), (reference, ("--rebuild",))):
        proc = cli(engine, "etl", *args)
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    expected = derived(reference)
    got = derived(victim)
    assert len(got[0]) > 3000
    for a, b in zip(got, expected):
        pd.testing.assert_frame_equal(a, b)
    quarantined = dict(zip(got[2]["source_id"], got[2]["reason"]))
    assert quarantined == BAD and not set(BAD) & set(got[0]["order_id"])

    # Re-running changes nothing; replaying the last 30 days (overlap, lost watermark) neither.
    assert etl.run_once(victim, TZ).orders == 0
    with victim.begin() as conn:
        wm = dt.datetime.fromisoformat(get_meta(conn, etl.WATERMARK_KEY))
        set_meta(conn, etl.WATERMARK_KEY, (wm - dt.timedelta(days=30)).isoformat())
    assert etl.run_once(victim, TZ, batch_rows=200).orders > 100
    for a, b in zip(derived(victim), expected):
        pd.testing.assert_frame_equal(a, b)


def test_membership_and_group_changes_alone_reach_the_per_entity_tables(fresh_db, backend):
    """Changes with no order behind them — a member leaves, a member joins without paying yet,
    a group is soft-deleted — must reach group facts and user months like a rebuild would."""
    engine = seeded_fresh(fresh_db, backend, 5)
    before = per_entity(engine)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        left, group, user = conn.execute(sa.text(
            "SELECT gc.id, gc.group_id, gc.user_id FROM groups_carts gc WHERE gc.deleted_at IS NULL "
            "ORDER BY gc.created_at DESC, gc.id LIMIT 1")).one()
        conn.execute(sa.text("UPDATE groups_carts SET deleted_at = :t, updated_at = :t WHERE id = :id"),
                     {"t": now, "id": left})
        other = conn.execute(sa.text("SELECT id FROM users WHERE id <> :u AND deleted_at IS NULL ORDER BY id LIMIT 1"),
                             {"u": user}).scalar()
        conn.execute(sa.insert(groups_carts), [dict(id=str(uuid.uuid4()), group_id=str(group), user_id=str(other),
                                                    quantity=1, status="PENDING", created_at=END - dt.timedelta(hours=1),
                                                    updated_at=now)])
        gone = conn.execute(sa.text("SELECT id FROM groups WHERE deleted_at IS NULL AND id <> :g "
                                    "ORDER BY created_at DESC, id LIMIT 1"), {"g": group}).scalar()
        conn.execute(sa.text("UPDATE groups SET deleted_at = :t, updated_at = :t WHERE id = :id"), {"t": now, "id": gone})
    etl.run_once(engine, TZ)
    got = per_entity(engine)
    assert not all(a.equals(b) for a, b in zip(got, before)), "the changes did not reach the tables"
    assert str(gone) not in set(got[0]["group_id"])
    etl.rebuild(engine, TZ)
    for a, b in zip(got, per_entity(engine)):
        pd.testing.assert_frame_equal(a, b)


def test_orders_and_memberships_moved_to_other_months_leave_no_stale_user_month(fresh_db, backend):
    """A batch recomputes only the user months its orders touch, old and new month alike, and a
    changed membership's months: moving a group order, an individual order and the
    newest membership into earlier months must end like a rebuild (no row left in the old
    month, a row in the new one)."""
    engine = seeded_fresh(fresh_db, backend, 7)
    before = per_entity(engine)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:
        moved = []
        for cart in ("groups_carts_id", "personal_cart_id"):
            moved.append(conn.execute(sa.select(orders.c.id, orders.c.created_at).where(
                orders.c.status == "COMPLETED", orders.c.deleted_at.is_(None), orders.c[cart].is_not(None))
                .order_by(orders.c.created_at.desc(), orders.c.id).limit(1)).one())
        for (order, created), days in zip(moved, (40, 75)):
            conn.execute(sa.update(orders).where(orders.c.id == order).values(
                created_at=to_utc_naive(created) - dt.timedelta(days=days), updated_at=now))
        member, joined = conn.execute(sa.select(groups_carts.c.id, groups_carts.c.created_at).where(
            groups_carts.c.deleted_at.is_(None)).order_by(groups_carts.c.created_at.desc(), groups_carts.c.id)
            .limit(1)).one()
        first = conn.execute(sa.select(sa.func.min(groups_carts.c.created_at))).scalar()
        conn.execute(sa.update(groups_carts).where(groups_carts.c.id == member).values(  # into the first month
            created_at=to_utc_naive(first) + dt.timedelta(minutes=1), updated_at=now))
    etl.run_once(engine, TZ)
    got = per_entity(engine)
    assert not any(a.equals(b) for a, b in zip(got[1:], before[1:])), "the moves did not reach the user months"
    etl.rebuild(engine, TZ)
    for a, b in zip(got, per_entity(engine)):
        pd.testing.assert_frame_equal(a, b)


def test_a_first_join_moved_to_another_month_leaves_no_stale_first_join(fresh_db, backend):
    """The month a membership leaves is not kept anywhere: when it was the user's only join that
    month and has no order (an order would bring that month along), the stored row's first join
    must still go, as a rebuild has none there."""
    engine = seeded_fresh(fresh_db, backend, 9)
    with engine.connect() as conn:
        group, opened = conn.execute(sa.text(  # a live group from the middle of the history
            "SELECT id, created_at FROM groups WHERE deleted_at IS NULL ORDER BY created_at, id")).all()[100]
        first = conn.execute(sa.select(sa.func.min(groups_carts.c.created_at))).scalar()
    first, joined = naive(first).to_pydatetime(), naive(opened).to_pydatetime() + dt.timedelta(minutes=5)
    user, member = str(uuid.uuid4()), str(uuid.uuid4())
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with engine.begin() as conn:  # a new user joins it and does not pay
        conn.execute(sa.insert(users), [dict(id=user, name="Hana", created_at=first - dt.timedelta(days=1),
                                             updated_at=now)])
        conn.execute(sa.insert(groups_carts), [dict(id=member, group_id=str(group), user_id=user, quantity=1,
                                                    status="PENDING", created_at=joined, updated_at=now)])
    etl.run_once(engine, TZ)
    rows = per_entity(engine)[2]
    assert len(rows[rows["user_id"] == user]) == 1  # that month, with its first join
    with engine.begin() as conn:
        conn.execute(sa.update(groups_carts).where(groups_carts.c.id == member).values(
            created_at=first + dt.timedelta(minutes=1), updated_at=now + dt.timedelta(seconds=1)))
    etl.run_once(engine, TZ)
    got = per_entity(engine)
    assert not got[2][got[2]["user_id"] == user].equals(rows[rows["user_id"] == user])
    etl.rebuild(engine, TZ)
    for a, b in zip(got, per_entity(engine)):
        pd.testing.assert_frame_equal(a, b)


class Follower:
    """`etl --follow` in a subprocess whose stdout lines are read by a thread."""

    def __init__(self, engine, interval: str):
        self.proc = cli(engine, "etl", "--follow", "--interval", interval)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(x) for x in self.proc.stdout], daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> float:
        """Seconds until a line matching the regular expression `text` was printed."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            try:
                if re.search(text, self.lines.get(timeout=0.1)):
                    return time.monotonic() - start
            except queue.Empty:
                assert self.proc.poll() is None, self.proc.stderr.read()
        raise AssertionError(f"no {text!r} within {timeout}s")


def test_follow_wakes_on_new_orders_and_stops_cleanly_on_sigterm(fresh_db, backend):
    engine = seeded_fresh(fresh_db, backend, 41)
    follower = Follower(engine, "30" if backend == "postgres" else "0.5")  # PostgreSQL must not need to poll
    follower.wait_for("following", 30)
    follower.wait_for('"anomalies"', 60)  # the first cycle (install, sweep, detection) is done
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    new_id = str(uuid.uuid4())
    with engine.begin() as conn:
        cart = conn.execute(sa.text("SELECT personal_cart_id FROM orders WHERE personal_cart_id IS NOT NULL")).scalar()
        conn.execute(sa.insert(orders).values(id=new_id, personal_cart_id=str(cart), status="PENDING", total_amount=42,
                                              discount=0, payment_method="CHAPA", created_at=now, updated_at=now))
    waited = follower.wait_for('"etl_orders": [1-9]', 15)
    assert waited < 10
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT COUNT(*) FROM {project_table(conn, 'pulse_order_lines')} "
                                    "WHERE order_id = :o"), {"o": new_id}).scalar_one() >= 1
    follower.proc.send_signal(signal.SIGTERM)
    assert follower.proc.wait(timeout=15) == 0
    follower.wait_for("stopped", 5)
