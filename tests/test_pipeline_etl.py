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

from data_access.dialect import project_table
from data_access.meta import get_meta, set_meta
from data_access.schema import orders
from pipeline import etl
from tests.conftest import END, TZ
from tests.test_pipeline_groups import frame, seeded_fresh

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


def derived(engine) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
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
            quar.sort_values(["source_id"], ignore_index=True))


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
        for t in ("pulse_order_lines", "pulse_daily_sales", "pulse_quarantine"):
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
