"""Refund worker: concurrent workers process every refund exactly once (threads and separate
processes on PostgreSQL), failures are retried up to the limit, every attempt is audited, and
claims of a dead worker are recovered."""
from __future__ import annotations

import collections
import datetime as dt
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from data_access.dialect import bind_ts, project_table
from pipeline import group_tracking as gt
from pipeline.refunds import SimulatedGateway, claim, process, run_workers
from tests.conftest import END
from tests.test_pipeline_groups import frame, seeded_fresh

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def with_refunds(fresh_db, backend: str, seed_: int = 3):
    engine = seeded_fresh(fresh_db, backend, seed_)
    gt.install(engine, now=END)
    made = gt.sweep(engine, now=END + dt.timedelta(days=3)).refunds
    assert made > 100
    return engine, made


def table(engine, name: str, *ts):
    return frame(engine, f"SELECT * FROM {project_table(engine, name)}", *ts)


def check_audit_matches(engine) -> tuple:
    """Every attempt has one audit row, numbered 1..attempts, the last one matching the status."""
    refunds, audit = table(engine, "pulse_refunds"), table(engine, "pulse_refund_audit")
    assert set(refunds["status"]) <= {"processed", "failed"}
    attempts = audit[audit["outcome"] != "lease_expired"].sort_values(["refund_id", "attempt"])
    per = attempts.groupby("refund_id")["attempt"].apply(list)
    for r in refunds.itertuples():
        assert per[r.id] == list(range(1, r.attempts + 1))
    last = attempts.groupby("refund_id").last()
    assert (last.loc[refunds["id"], "to_status"].to_numpy() == refunds["status"].to_numpy()).all()
    return refunds, audit


@pytest.mark.postgres
def test_two_threaded_workers_process_every_refund_exactly_once(fresh_db):
    engine, n = with_refunds(fresh_db, "postgres")
    gateway = SimulatedGateway(latency_ms=3, failure_rate=0.0, seed=1)
    stats = run_workers(engine, gateway, workers=2, batch=7, backoff_seconds=0)
    refunds, audit = check_audit_matches(engine)
    calls = collections.Counter(r for r, _ in gateway.calls)
    assert len(calls) == n and set(calls.values()) == {1}  # the gateway saw each refund once
    assert set(refunds["status"]) == {"processed"} and set(refunds["attempts"]) == {1}
    assert refunds["gateway_ref"].notna().all() and refunds["processed_at"].notna().all()
    assert len(audit) == n and set(audit["outcome"]) == {"ok"}
    assert stats.processed == n and all(w.claimed > 0 for w in stats.per_worker)
    assert audit["worker_id"].nunique() == 2


@pytest.mark.postgres
def test_two_worker_processes_never_process_the_same_refund(fresh_db):
    engine, n = with_refunds(fresh_db, "postgres", seed_=4)
    url = engine.url.render_as_string(hide_password=False)
    cmd = [sys.executable, "-m", "dashboard", "--database-url", url, "refunds", "--process", "--latency-ms", "15",
           "--batch", "5"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    refunds, audit = check_audit_matches(engine)
    assert set(refunds["status"]) == {"processed"} and len(audit) == n
    assert audit["refund_id"].is_unique
    pids = {w.split(":")[1] for w in audit["worker_id"]}
    assert len(pids) == 2  # both processes did part of the work


def test_failures_are_retried_up_to_the_limit_and_audited(fresh_db, backend):
    engine, n = with_refunds(fresh_db, backend)
    gateway = SimulatedGateway(latency_ms=0, failure_rate=0.4, seed=7)
    stats = run_workers(engine, gateway, workers=2, batch=10, max_attempts=3, backoff_seconds=0)
    refunds, audit = check_audit_matches(engine)
    assert stats.processed + stats.failed == n and stats.retried > 0
    assert len(audit) == refunds["attempts"].sum() == len(gateway.calls)
    assert refunds["attempts"].max() == 3
    assert ((refunds["status"] == "processed") & (refunds["attempts"] > 1)).any()  # a retry succeeded
    last = audit.sort_values("attempt").groupby("refund_id").last()
    failed = refunds[refunds["status"] == "failed"].set_index("id")
    assert len(failed) > 0
    # A refund fails only when its attempts are used up or the provider declined (final).
    assert ((failed["attempts"] == 3) | (last.loc[failed.index, "outcome"] == "declined")).all()
    assert failed["last_error"].notna().all()


def test_claims_of_a_dead_worker_are_recovered_after_the_lease(fresh_db):
    engine, n = with_refunds(fresh_db, "sqlite")
    with engine.begin() as conn:  # a worker claims 10 refunds, then dies before calling the gateway
        dead = {str(r.id) for r in claim(conn, 10, "dead-worker", "token-of-the-dead")}
        conn.execute(sa.text(f"UPDATE {project_table(conn, 'pulse_refunds')} SET claimed_at = :t "
                             "WHERE claim_token = 'token-of-the-dead'"),
                     {"t": bind_ts(conn, gt.now_utc() - dt.timedelta(hours=1))})
    stats = process(engine, SimulatedGateway(latency_ms=0), batch=50, lease_seconds=600)
    assert stats.recovered == 10 and stats.processed == n
    refunds, audit = check_audit_matches(engine)
    leases = audit[audit["outcome"] == "lease_expired"]
    assert set(leases["refund_id"]) == dead and set(refunds["status"]) == {"processed"}


def test_simulated_gateway_is_deterministic_per_seed_and_key():
    def outcomes(seed):
        g = SimulatedGateway(latency_ms=0, failure_rate=0.5, seed=seed)
        return [g.refund(refund_id=k, order_id=k, amount=1, payment_method="CHAPA", idempotency_key=k).ok
                for k in map(str, range(200)) for _ in range(2)]
    assert outcomes(1) == outcomes(1) != outcomes(2)
    assert 0.3 < sum(outcomes(1)) / 400 < 0.7
    with pytest.raises(ValueError):
        SimulatedGateway(failure_rate=1.5)
