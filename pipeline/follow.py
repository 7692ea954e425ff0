"""`python -m dashboard etl --follow`: keep the reporting tables, group state and alerts current.

Each cycle runs the incremental ETL, the group sweeper (expiries and refunds), anomaly detection
and alert evaluation. Between cycles it sleeps for `interval` seconds — on PostgreSQL it wakes
early on `NOTIFY pulse_orders / pulse_groups` (sent by the triggers), elsewhere it just polls.
SIGTERM or Ctrl-C stops it between two committed steps, so nothing is left half-written.
"""
from __future__ import annotations

import datetime as dt
import json
import select
import signal
import sys
import threading
import time

import sqlalchemy as sa

from data_access.dialect import bind_ts, project_table
from pipeline import alerts, anomalies, etl, group_tracking

CHANNELS = ("pulse_groups", "pulse_orders")


class _Stop(Exception):
    """Raised from the ETL progress callback to end a backfill after its last committed batch."""


def log(msg: str) -> None:
    print(f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M:%S}Z {msg}", flush=True)


class Listener:
    """A dedicated psycopg2 connection LISTENing on the pipeline channels (PostgreSQL only)."""

    def __init__(self, engine: sa.Engine):
        self.conn = engine.raw_connection()
        self.conn.dbapi_connection.set_isolation_level(0)  # autocommit: LISTEN takes effect at once
        cur = self.conn.dbapi_connection.cursor()
        for ch in CHANNELS:
            cur.execute(f"LISTEN {ch}")
        cur.close()

    def wait(self, seconds: float, stop: threading.Event) -> list:
        """Block until a notification, `seconds`, or stop; returns the notifications received."""
        pg = self.conn.dbapi_connection
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            if select.select([pg], [], [], min(left, 0.5))[0]:
                pg.poll()
                if pg.notifies:
                    time.sleep(0.2)  # let a burst of commits arrive: one cycle for all of them
                    pg.poll()
                    got = list(pg.notifies)
                    pg.notifies.clear()
                    return got
        return []

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:  # already broken: nothing to release
            pass


def _listen(engine: sa.Engine) -> Listener | None:
    try:
        return Listener(engine)
    except Exception:  # raw_connection raises the driver's own errors: still down, poll and retry
        return None


def _announce(engine: sa.Engine, since: dt.datetime) -> int:
    """Log group events not yet announced (SQLite has no NOTIFY) and mark them announced."""
    t = project_table(engine, "pulse_group_events")
    with engine.begin() as conn:
        rows = conn.execute(sa.text(f"SELECT id, kind, group_id, at FROM {t} WHERE notified = :f AND at >= :since "
                                    f"ORDER BY at LIMIT 50"), {"f": False, "since": bind_ts(conn, since)}).all()
        for _, kind, group_id, at in rows:
            log(f"group {str(group_id)[:8]} {kind} at {at}")
        conn.execute(sa.text(f"UPDATE {t} SET notified = :t WHERE notified = :f"), {"t": True, "f": False})
    return len(rows)


def _log_notifies(notifies: list, show: int = 3) -> None:
    """One line per kind of group event received, with a few examples (a burst stays readable)."""
    by_kind: dict = {}
    for n in notifies:
        if n.channel == "pulse_groups":
            p = json.loads(n.payload)
            by_kind.setdefault(p.get("kind"), []).append(str(p.get("group_id"))[:8])
    for kind, groups in by_kind.items():
        more = f" and {len(groups) - show} more" if len(groups) > show else ""
        log(f"NOTIFY {kind}: group {', '.join(groups[:show])}{more}")


def cycle(engine: sa.Engine, settings, stop: threading.Event, rules_path=None, detect: bool = True) -> dict:
    """One pass of every pipeline step; returns what each step did."""
    def check(done, total):
        if stop.is_set():
            raise _Stop

    out: dict = {}
    res = etl.run_once(engine, settings.timezone, progress=check, own_process=True)
    out["etl_orders"] = res.orders
    sw = group_tracking.sweep(engine, settings.nearing_expiry_hours)
    out.update(nearing=sw.nearing, expired=sw.expired, refunds=sw.refunds)
    if detect:
        out["anomalies"] = len(anomalies.run(engine, settings.timezone))
    _, sent = alerts.run(engine, settings.timezone, rules_path)
    out["alerts"] = [f"{a['rule']} {a['state']}" for a in sent]
    return out


def follow(engine: sa.Engine, settings, interval: float = 10.0, stop: threading.Event | None = None,
           rules_path=None, anomaly_every: float = 60.0, max_cycles: int | None = None) -> int:
    """Run cycles until SIGTERM/SIGINT (or `stop`); returns the exit code (0 = clean stop)."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    group_tracking.ensure_installed(engine, settings.nearing_expiry_hours)
    pg = engine.dialect.name == "postgresql"
    listener = Listener(engine) if pg else None
    log(f"following {engine.url.render_as_string()} every {interval:g}s"
        f"{' (LISTEN ' + ', '.join(CHANNELS) + ')' if listener else ' (polling)'}")
    cycles, last_detect, started = 0, 0.0, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    try:
        while not stop.is_set():
            try:
                detect = time.monotonic() - last_detect >= anomaly_every
                out = cycle(engine, settings, stop, rules_path, detect)
                last_detect = time.monotonic() if detect else last_detect
                _announce(engine, started - dt.timedelta(days=1))
                if out["etl_orders"] or out["expired"] or out["nearing"] or out["alerts"]:
                    log(json.dumps(out))
            except _Stop:
                break
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:  # database restarting: retry later
                log(f"database error, retrying in {interval:g}s: {str(exc.orig or exc).splitlines()[0]}")
            cycles += 1
            if max_cycles is not None and cycles >= max_cycles:
                break
            if pg and listener is None:
                listener = _listen(engine)
            if listener:
                try:
                    _log_notifies(listener.wait(interval, stop))
                except Exception as exc:  # the LISTEN connection died (database restart): poll meanwhile
                    log(f"lost LISTEN connection ({type(exc).__name__}); polling until it is back")
                    listener.close()
                    listener = None
            else:
                stop.wait(interval)
    finally:
        if listener:
            listener.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log("stopped")
    sys.stdout.flush()
    return 0
