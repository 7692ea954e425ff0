"""Alert rules: fire only after the duration, no flapping around the threshold (hysteresis),
resolve, webhook POSTs received by a local HTTP server; metrics measured on a real database."""
from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa

from data_access.db import init_db
from data_access.operations import alert_log, record_request
from data_access.schema import orders
from pipeline import alerts, etl
from pipeline.alerts import Rule, collect_metrics, evaluate, load_rules
from tests.conftest import TZ
from tests.test_pipeline_groups import seeded_fresh

T0 = dt.datetime(2026, 11, 24, 8, 0)
RULE = Rule(name="refund_delay", metric="refund_delay_max_hours", comparison=">", threshold=10, for_seconds=60,
            resolve_threshold=8, resolve_for_seconds=30, severity="critical", description="refunds late")


@pytest.fixture
def webhook():
    """(url, received payloads) of a local HTTP server on 127.0.0.1 running in a thread."""
    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/pulse-hook", received
    server.shutdown()
    server.server_close()


def empty_db(fresh_db):
    engine = fresh_db("sqlite")
    init_db(engine)
    return engine


def test_fires_after_duration_no_flapping_resolves_with_hysteresis(fresh_db, webhook):
    engine, (url, received) = empty_db(fresh_db), webhook
    timeline = [  # (seconds after T0, value, notification expected)
        (0, 12, None), (30, 12, None),
        (45, 9, None),  # dipped below the threshold before the 60 s were up: start again
        (50, 12, None), (100, 12, None), (111, 12, "firing"),  # held for 61 s
        (120, 9.5, None), (130, 10.5, None), (140, 9, None), (150, 11, None), (160, 8.5, None),  # no flapping
        (200, 7, None), (210, 9, None),  # back above resolve_threshold: resolving starts over
        (220, 7.5, None), (249, 7, None), (251, 7.9, "resolved"),  # below 8 for 31 s
        (300, 20, None),
    ]
    for sec, value, expected in timeline:
        sent = evaluate(engine, [RULE], {"refund_delay_max_hours": value}, T0 + dt.timedelta(seconds=sec), url)
        assert [s["state"] for s in sent] == ([expected] if expected else []), f"at {sec}s value {value}"
    log = alert_log(engine)
    assert len(log) == 1
    a = log.iloc[0]
    assert (a["rule"], a["state"], a["severity"], a["value"], a["resolved_value"]) == (
        "refund_delay", "resolved", "critical", 12.0, 7.9)
    assert a["fired_at"] == T0 + dt.timedelta(seconds=111) and a["resolved_at"] == T0 + dt.timedelta(seconds=251)
    assert a["webhook_status"] == "HTTP 204"
    assert [(p, ct) for p, ct, _ in received] == [("/pulse-hook", "application/json")] * 2
    fired, resolved = (body for _, _, body in received)
    assert (fired["state"], fired["rule"], fired["value"], fired["threshold"]) == ("firing", "refund_delay", 12, 10)
    assert (resolved["state"], resolved["alert_id"]) == ("resolved", fired["alert_id"])
    assert resolved["resolved_at"].startswith("2026-11-24T08:04:11")
    # The next breach is a new alert once it has held for the duration again.
    evaluate(engine, [RULE], {"refund_delay_max_hours": 20}, T0 + dt.timedelta(seconds=361), url)
    assert list(alert_log(engine)["state"]) == ["firing", "resolved"]


def test_no_data_changes_nothing_and_zero_duration_fires_at_once(fresh_db):
    engine = empty_db(fresh_db)
    instant = Rule(name="etl_lag", metric="etl_lag_seconds", comparison=">=", threshold=900, severity="critical")
    assert evaluate(engine, [instant], {"etl_lag_seconds": None}, T0, "") == []
    assert [s["state"] for s in evaluate(engine, [instant], {"etl_lag_seconds": 900}, T0, "")] == ["firing"]
    assert evaluate(engine, [instant], {"etl_lag_seconds": None}, T0 + dt.timedelta(minutes=1), "") == []
    assert [s["state"] for s in evaluate(engine, [instant], {"etl_lag_seconds": 10}, T0, "")] == ["resolved"]


def test_an_unreachable_webhook_is_recorded_not_fatal(fresh_db):
    engine = empty_db(fresh_db)
    rule = Rule(name="r", metric="m", comparison="<", threshold=0.5)
    sent = evaluate(engine, [rule], {"m": 0.1}, T0, "http://127.0.0.1:9/nothing-listens-here")
    assert sent[0]["webhook_status"].startswith("error:")
    assert alert_log(engine).iloc[0]["webhook_status"].startswith("error:")


def test_rules_file_is_valid_and_bad_rules_are_refused(tmp_path):
    rules = load_rules()
    assert {r.metric for r in rules} >= {"refund_delay_max_hours", "order_processing_delay_p90_hours",
                                         "etl_lag_seconds", "request_latency_p95_ms", "group_conversion_drop",
                                         "order_volume_abs_z", "pending_order_age_p90_hours"}
    with pytest.raises(ValueError, match="safe side"):
        Rule(name="x", metric="m", comparison=">", threshold=5, resolve_threshold=6)
    bad = tmp_path / "rules.json"
    bad.write_text(json.dumps({"rules": [{"name": "x", "metric": "m", "comparison": "!=", "threshold": 1}]}))
    with pytest.raises(ValueError, match="bad alert rules file"):
        load_rules(bad)


def test_etl_lag_and_request_latency_measured_on_a_real_database(fresh_db, backend):
    engine = seeded_fresh(fresh_db, backend)
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    m = collect_metrics(engine, TZ, now)
    assert m["etl_lag_seconds"] == 0 and m["request_latency_p95_ms"] is None
    assert m["order_processing_delay_p90_hours"] > 0 and m["pending_order_age_p90_hours"] > 0
    with engine.begin() as conn:  # a new order arrives: the ETL is now behind
        cart = conn.execute(sa.text("SELECT personal_cart_id FROM orders WHERE personal_cart_id IS NOT NULL "
                                    "LIMIT 1")).scalar()
        conn.execute(sa.insert(orders).values(id=str(uuid.uuid4()), personal_cart_id=str(cart), status="PENDING",
                                              total_amount=99, discount=0, payment_method="CHAPA",
                                              created_at=now, updated_at=now))
    for ms in (40, 60, 80, 100, 900):
        record_request(engine, "/_dash-update-component", ms, 200, at=now - dt.timedelta(seconds=5))
    m = collect_metrics(engine, TZ, now)
    assert m["etl_lag_seconds"] > 900 and 700 < m["request_latency_p95_ms"] <= 900
    rules = [r for r in load_rules() if r.name == "etl_lag"]
    assert evaluate(engine, rules, m, now, "") == []  # must hold for 300 s first
    assert [s["state"] for s in evaluate(engine, rules, m, now + dt.timedelta(seconds=301), "")] == ["firing"]
    etl.run_once(engine, TZ)
    m = collect_metrics(engine, TZ, now + dt.timedelta(seconds=400))
    assert m["etl_lag_seconds"] == 0
    evaluate(engine, rules, m, now + dt.timedelta(seconds=400), "")
    values, sent = alerts.run(engine, TZ, now=now + dt.timedelta(seconds=530), webhook_url="")
    assert "etl_lag resolved" in [f"{s['rule']} {s['state']}" for s in sent]
