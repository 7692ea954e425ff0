"""Refund worker: pending -> processed/failed through a payment-gateway interface, with retries.

Safe to run many at once: a worker *claims* a batch (status -> processing with its own claim
token) in one short transaction — `FOR UPDATE SKIP LOCKED` on PostgreSQL, a single atomic UPDATE
on SQLite whose writers are serialised — then calls the gateway outside any transaction, then
records the outcome only if it still holds the claim. A worker that dies leaves its claims to
expire after a lease; the refund id is the gateway's idempotency key, so a retried call after a
crash cannot pay twice at a real gateway. Every attempt writes an audit row.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa

from data_access.dialect import bind_ts, project_table
from data_access.pipeline_tables import refund_audit
from pipeline.group_tracking import bump_version


@dataclass
class GatewayResult:
    ok: bool
    reference: str | None = None
    error: str | None = None
    retryable: bool = True  # a decline (e.g. closed account) is final; a timeout is not


class PaymentGateway:
    """What a Chapa / telebirr / ChipChip-wallet adapter implements.

    `refund` must be idempotent per `idempotency_key` (the refund id): a provider that sees the
    same key twice returns the first outcome instead of paying again.
    """

    name = "abstract"

    def refund(self, *, refund_id: str, order_id: str, amount: Decimal, payment_method: str,
               idempotency_key: str) -> GatewayResult:
        raise NotImplementedError


class SimulatedGateway(PaymentGateway):
    """Latency and failures drawn from (seed, refund id, attempt): the same run gives the same
    outcomes whichever worker happens to process which refund."""

    name = "simulated"

    def __init__(self, latency_ms: float = 20.0, failure_rate: float = 0.0, seed: int = 0,
                 decline_share: float = 0.2):
        if not 0 <= failure_rate <= 1:
            raise ValueError(f"failure rate must be between 0 and 1, got {failure_rate}")
        self.latency_ms, self.failure_rate, self.seed = latency_ms, failure_rate, seed
        self.decline_share = decline_share
        self.calls: list[tuple[str, int]] = []  # (refund id, attempt number), for tests and stats
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def refund(self, *, refund_id, order_id, amount, payment_method, idempotency_key) -> GatewayResult:
        with self._lock:
            n = self._attempts.get(idempotency_key, 0) + 1
            self._attempts[idempotency_key] = n
            self.calls.append((refund_id, n))
        rng = random.Random(f"{self.seed}:{idempotency_key}:{n}")
        time.sleep(self.latency_ms * rng.uniform(0.5, 1.5) / 1000)
        if rng.random() < self.failure_rate:
            if rng.random() < self.decline_share:
                return GatewayResult(False, error=f"{payment_method}: declined by provider", retryable=False)
            return GatewayResult(False, error=f"{payment_method}: gateway timeout", retryable=True)
        return GatewayResult(True, reference=f"SIM-{uuid.UUID(int=rng.getrandbits(128)).hex[:16]}")


@dataclass
class WorkerStats:
    worker_id: str = ""
    claimed: int = 0
    processed: int = 0
    failed: int = 0
    retried: int = 0
    lost: int = 0  # outcome not recorded: the claim had expired and someone else took over
    recovered: int = 0  # expired claims put back to pending
    seconds: float = 0.0
    per_worker: list = field(default_factory=list)

    def add(self, other: "WorkerStats") -> None:
        for f in ("claimed", "processed", "failed", "retried", "lost", "recovered"):
            setattr(self, f, getattr(self, f) + getattr(other, f))
        self.per_worker.append(other)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _recover(conn, worker_id: str, lease_seconds: float) -> int:
    """Put claims older than the lease back to pending (their worker died or hung)."""
    t = project_table(conn, "pulse_refunds")
    now = _now()
    rows = conn.execute(sa.text(
        f"UPDATE {t} SET status = 'pending', claim_token = NULL, updated_at = :now "
        f"WHERE status = 'processing' AND claimed_at < :stale RETURNING id, attempts"),
        {"now": bind_ts(conn, now), "stale": bind_ts(conn, now - dt.timedelta(seconds=lease_seconds))}).all()
    if rows:
        conn.execute(sa.insert(refund_audit), [
            {"refund_id": str(i), "attempt": a, "worker_id": worker_id, "from_status": "processing",
             "to_status": "pending", "outcome": "lease_expired", "at": now} for i, a in rows])
    return len(rows)


def claim(conn, batch: int, worker_id: str, token: str) -> list:
    """Claim up to `batch` due pending refunds for this worker (inside the caller's transaction)."""
    t = project_table(conn, "pulse_refunds")
    skip = " FOR UPDATE SKIP LOCKED" if conn.dialect.name == "postgresql" else ""
    now = bind_ts(conn, _now())
    return conn.execute(sa.text(
        f"UPDATE {t} SET status = 'processing', claim_token = :token, claimed_by = :worker, "
        f"claimed_at = :now, updated_at = :now WHERE id IN (SELECT id FROM {t} WHERE status = 'pending' "
        f"AND (next_attempt_at IS NULL OR next_attempt_at <= :now) ORDER BY created_at, id LIMIT :n{skip}) "
        f"AND status = 'pending' RETURNING id, order_id, amount, payment_method, attempts"),
        {"token": token, "worker": worker_id, "now": now, "n": batch}).all()


def _record(engine, row, res: GatewayResult, ms: float, token: str, worker_id: str,
            max_attempts: int, backoff_seconds: float) -> str:
    """Store one attempt's outcome and its audit row; returns the new status ('' if lost)."""
    refund_id, attempt = str(row.id), row.attempts + 1
    now = _now()
    if res.ok:
        to, next_at = "processed", None
    elif res.retryable and attempt < max_attempts:
        to, next_at = "pending", now + dt.timedelta(seconds=backoff_seconds * 2 ** (attempt - 1))
    else:
        to, next_at = "failed", None
    with engine.begin() as conn:
        t = project_table(conn, "pulse_refunds")
        done = conn.execute(sa.text(
            f"UPDATE {t} SET status = :to, attempts = :attempt, updated_at = :now, claim_token = NULL, "
            f"processed_at = :processed, next_attempt_at = :next, gateway_ref = :ref, last_error = :err "
            f"WHERE id = :id AND claim_token = :token AND status = 'processing'"),
            {"to": to, "attempt": attempt, "now": bind_ts(conn, now),
             "processed": bind_ts(conn, now) if res.ok else None,
             "next": bind_ts(conn, next_at) if next_at else None, "ref": res.reference,
             "err": (res.error or "")[:300] or None, "id": refund_id, "token": token}).rowcount
        conn.execute(sa.insert(refund_audit).values(
            refund_id=refund_id, attempt=attempt, worker_id=worker_id, from_status="processing",
            to_status=to if done else "processing", outcome="ok" if res.ok else (
                "error" if res.retryable else "declined"), gateway_ref=res.reference,
            error=(res.error or ("claim lost before recording" if not done else None)), ms=ms, at=now))
    return to if done else ""


def process(engine: sa.Engine, gateway: PaymentGateway, batch: int = 50, worker_id: str | None = None,
            max_attempts: int = 3, backoff_seconds: float = 2.0, lease_seconds: float = 300,
            drain: bool = True, max_wait_seconds: float = 30.0, stop: threading.Event | None = None) -> WorkerStats:
    """Process refunds until none is due (`drain`), waiting up to `max_wait_seconds` for retries
    whose backoff has not elapsed; one batch only when not draining."""
    worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
    stats = WorkerStats(worker_id=worker_id)
    started = time.perf_counter()
    while not (stop and stop.is_set()):
        token = str(uuid.uuid4())
        with engine.begin() as conn:
            stats.recovered += _recover(conn, worker_id, lease_seconds)
            rows = claim(conn, batch, worker_id, token)
        stats.claimed += len(rows)
        for row in rows:
            t0 = time.perf_counter()
            try:
                res = gateway.refund(refund_id=str(row.id), order_id=str(row.order_id),
                                     amount=Decimal(str(row.amount)), payment_method=row.payment_method,
                                     idempotency_key=str(row.id))
            except Exception as exc:  # a crashing adapter is a retryable failure, not a dead worker
                res = GatewayResult(False, error=f"{type(exc).__name__}: {exc}", retryable=True)
            to = _record(engine, row, res, (time.perf_counter() - t0) * 1000, token, worker_id,
                         max_attempts, backoff_seconds)
            stats.processed += to == "processed"
            stats.failed += to == "failed"
            stats.retried += to == "pending"
            stats.lost += to == ""
        if rows:
            with engine.begin() as conn:  # once per batch: every bump invalidates dashboard caches
                bump_version(conn)
        if not drain:
            break
        if not rows:
            wait = _next_due_in(engine)
            if wait is None or wait > max_wait_seconds:
                break
            (stop.wait if stop else time.sleep)(max(wait, 0.05))
    stats.seconds = time.perf_counter() - started
    return stats


def _next_due_in(engine) -> float | None:
    """Seconds until the earliest pending refund becomes due (None: nothing pending)."""
    with engine.connect() as conn:
        t = project_table(conn, "pulse_refunds")
        due = conn.execute(sa.text(f"SELECT MIN(COALESCE(next_attempt_at, created_at)) FROM {t} "
                                   "WHERE status = 'pending'")).scalar()
    if due is None:
        return None
    if isinstance(due, str):
        due = dt.datetime.fromisoformat(due)
    return (due.replace(tzinfo=None) - _now()).total_seconds() if due.tzinfo is None else \
        (due - dt.datetime.now(dt.timezone.utc)).total_seconds()


def run_workers(engine: sa.Engine, gateway: PaymentGateway, workers: int = 2, **kwargs) -> WorkerStats:
    """Run `workers` concurrent workers (threads) until the queue is drained."""
    results: list[WorkerStats] = [WorkerStats() for _ in range(workers)]
    errors: list[BaseException] = []

    def run(i):
        try:
            results[i] = process(engine, gateway, worker_id=f"{socket.gethostname()}:{os.getpid()}:{i + 1}", **kwargs)
        except BaseException as exc:  # re-raised in the caller: a dead worker is never silent
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,), name=f"refund-worker-{i + 1}") for i in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    total = WorkerStats(worker_id="all")
    for r in results:
        total.add(r)
    total.seconds = time.perf_counter() - started
    return total
