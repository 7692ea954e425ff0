"""Anomaly detectors: injected anomalies are found with their evidence, clean data stays quiet.

Pure detectors are fed synthetic frames; the database test injects one anomaly of each kind into
a freshly seeded, swept and refunded database and runs the whole detection."""
from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from analytics import anomalies as an
from data_access.dialect import bind_ts, project_table
from data_access.meta import data_version
from data_access.operations import anomalies_list
from data_access.schema import orders
from pipeline import anomalies, etl, group_tracking as gt
from pipeline.refunds import SimulatedGateway, run_workers
from tests.conftest import END, TZ
from tests.test_pipeline_groups import frame, seeded_fresh

AS_OF = pd.Timestamp("2026-06-01 12:00")
WEEK = np.array([0.86, 0.9, 0.95, 1.0, 1.06, 1.27, 1.18])


def synthetic_daily(seed: int, days: int = 182, base: float = 300) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = pd.date_range("2026-01-05", periods=days, freq="D")
    mean = base * np.linspace(0.8, 1.2, days) * WEEK[day.day_of_week]
    return pd.DataFrame({"day": day.date, "orders": rng.poisson(mean)})


@pytest.mark.parametrize("seed", range(8))
def test_clean_weekly_volume_stays_quiet(seed):
    assert an.volume_anomalies(synthetic_daily(seed)).empty


def test_volume_spike_and_drop_are_found():
    daily = synthetic_daily(0)
    daily.loc[120, "orders"] = int(daily.loc[120, "orders"] * 2.5)
    daily.loc[150, "orders"] = int(daily.loc[150, "orders"] * 0.3)
    found = an.volume_anomalies(daily)
    assert list(found["entity_id"]) == [str(daily.loc[120, "day"]), str(daily.loc[150, "day"])]
    spike, drop = found["evidence"]
    assert spike["robust_z"] > 4.5 and drop["robust_z"] < -4.5
    assert spike["orders"] == daily.loc[120, "orders"] and 250 < spike["expected"] < 500
    assert an.volume_anomalies(daily.head(20)).empty  # too little history to judge


def test_refund_discrepancies_delays_and_missing_refunds():
    refunds = pd.DataFrame({
        "refund_id": ["ok", "wrong", "both", "late"], "order_id": ["o1", "o2", "o3", "o4"],
        "status": ["processed", "pending", "processed", "pending"], "amount": [100.0, 110.0, 50.0, 70.0],
        "paid_amount": [100.0, 100.0, 50.0, 70.0], "order_status": ["CANCELED", "CANCELED", "COMPLETED", "CANCELED"],
        "attempts": [1, 0, 1, 2], "last_error": [None, None, None, "CHAPA: gateway timeout"],
        "created_at": [AS_OF - pd.Timedelta(hours=h) for h in (100, 2, 50, 30)]})
    d = an.refund_discrepancies(refunds)
    assert sorted(zip(d["kind"], d["entity_id"])) == [("refund_amount_mismatch", "wrong"), ("refunded_and_completed", "both")]
    assert d.set_index("entity_id").loc["wrong", "evidence"]["paid_amount"] == 100.0
    late = an.refund_delays(refunds, AS_OF, threshold_hours=24)
    assert list(late["entity_id"]) == ["late"] and late["evidence"][0]["last_error"] == "CHAPA: gateway timeout"
    paid = pd.DataFrame({"order_id": ["a", "b", "c"], "group_id": ["g1", "g1", "g2"], "amount": [10.0, 20.0, 30.0],
                         "deadline": [AS_OF - pd.Timedelta(hours=5)] * 2 + [AS_OF - pd.Timedelta(minutes=10)],
                         "has_refund": [1, 0, 0]})
    assert list(an.missing_refunds(paid, AS_OF, grace_hours=1)["entity_id"]) == ["b"]  # c: sweeper still has time


def test_stored_status_contradictions():
    h = pd.Timedelta(hours=1)
    rows = [  # group, stored, goal reached at, deadline, contradiction?
        ("done", "COMPLETED", AS_OF - 5 * h, AS_OF - 2 * h, False),
        ("expired", "FAILED", None, AS_OF - 3 * h, False),
        ("active", "ACTIVE", None, AS_OF + 5 * h, False),
        ("pending", "PENDING", None, AS_OF + 1 * h, False),
        ("lagging", "ACTIVE", AS_OF - 0.5 * h, AS_OF + 3 * h, False),  # completed 30 min ago: ChipChip lags
        ("wrong_completed", "COMPLETED", None, AS_OF - 3 * h, True),
        ("late_goal", "COMPLETED", AS_OF - 2 * h, AS_OF - 3 * h, True),  # goal one hour after the deadline
        ("stale_active", "ACTIVE", AS_OF - 4 * h, AS_OF + 3 * h, True),
        ("early_failed", "FAILED", None, AS_OF + 3 * h, True),
    ]
    groups = pd.DataFrame([r[:4] for r in rows], columns=["group_id", "stored_status", "goal_reached_at", "deadline"])
    groups["members"], groups["goal"] = 2, 3
    found = an.status_contradictions(groups, AS_OF, grace_hours=1)
    assert sorted(found["entity_id"]) == sorted(r[0] for r in rows if r[4])
    ev = found.set_index("entity_id").loc["late_goal", "evidence"]
    assert (ev["stored_status"], ev["derived_status"]) == ("COMPLETED", "EXPIRED")


def _one(engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).first()


def test_injected_anomalies_are_found_in_the_database(fresh_db, backend):
    engine = seeded_fresh(fresh_db, backend, 21)
    gt.install(engine, now=END)
    gt.sweep(engine, now=END + dt.timedelta(days=3))
    run_workers(engine, SimulatedGateway(latency_ms=0), workers=2, backoff_seconds=0)
    base = anomalies.detect(engine, TZ)
    assert not set(base["kind"]) & {"refund_delay", "refund_amount_mismatch", "missing_refund", "refunded_and_completed"}
    generated = base[base["kind"] == "status_contradiction"]  # the generator's own ~0.2%: stored COMPLETED, expired
    assert all(e["stored_status"] == "COMPLETED" and e["derived_status"] == "EXPIRED" for e in generated["evidence"])

    r, s, g = (project_table(engine, t) for t in ("pulse_refunds", "pulse_group_state", "groups"))
    refs = frame(engine, f"SELECT r.id, r.order_id, s.deadline FROM {r} r JOIN {s} s ON s.group_id = r.group_id "
                 f"ORDER BY r.id", "deadline")
    old = refs[refs["deadline"] < pd.Timestamp(END) - pd.Timedelta(days=2)]
    wrong, late, gone, done = old["id"].iloc[0], old["id"].iloc[1], old.iloc[2], old["order_id"].iloc[3]
    completed = _one(engine, f"SELECT s.group_id FROM {s} s JOIN groups g ON g.id = s.group_id WHERE "
                     f"s.derived_status = 'COMPLETED' AND g.status = 'COMPLETED' ORDER BY s.group_id")[0]
    now = gt.now_utc()
    spike_day = (END - dt.timedelta(days=40)).replace(hour=9)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {r} SET amount = amount + 10 WHERE id = :i"), {"i": wrong})
        conn.execute(sa.text(f"UPDATE {r} SET status = 'pending', created_at = :t WHERE id = :i"),
                     {"i": late, "t": bind_ts(conn, now - dt.timedelta(hours=30))})
        conn.execute(sa.text(f"DELETE FROM {r} WHERE id = :i"), {"i": gone["id"]})
        conn.execute(sa.text("UPDATE orders SET status = 'COMPLETED' WHERE id = :o"), {"o": done})
        conn.execute(sa.text("UPDATE groups SET status = 'FAILED' WHERE id = :g"), {"g": completed})
        cart = conn.execute(sa.text("SELECT personal_cart_id FROM orders WHERE personal_cart_id IS NOT NULL")).scalar()
        conn.execute(sa.insert(orders), [dict(id=str(uuid.uuid4()), personal_cart_id=str(cart), status="COMPLETED",
                                              total_amount=50, discount=0, payment_method="CHAPA",
                                              created_at=spike_day + dt.timedelta(seconds=i),
                                              updated_at=now) for i in range(120)])
    etl.run_once(engine, TZ)
    found = anomalies.run(engine, TZ)
    by = {(k, e): ev for k, e, ev in zip(found["kind"], found["entity_id"], found["evidence"])}
    assert by[("refund_amount_mismatch", str(wrong))]["refund_amount"] == by[
        ("refund_amount_mismatch", str(wrong))]["paid_amount"] + 10
    assert by[("refund_delay", str(late))]["age_hours"] == pytest.approx(30, abs=0.1)
    assert by[("missing_refund", str(gone["order_id"]))]["group_id"]
    assert [ev["order_id"] for (k, _), ev in by.items() if k == "refunded_and_completed"] == [str(done)]
    ev = by[("status_contradiction", str(completed))]
    assert (ev["stored_status"], ev["derived_status"]) == ("FAILED", "COMPLETED")
    local_day = str((spike_day + dt.timedelta(hours=3)).date())
    assert by[("order_volume", local_day)]["robust_z"] > 4
    with engine.connect() as conn:
        version = data_version(conn)
    anomalies.run(engine, TZ)  # nothing new: the dashboard's caches stay valid
    with engine.connect() as conn:
        assert data_version(conn) == version
    stored = anomalies_list(engine)
    assert len(stored) == len(found) and stored["severity"].iloc[0] == "critical"
    assert json.loads(stored[stored["kind"] == "order_volume"]["evidence"].iloc[0])["orders"] >= 120
