"""The dashboard while PostgreSQL goes away and comes back, when a query runs too long, and
when the shared cache (Redis) is unreachable or hangs.

A throwaway server of this module's own (the session's shared one must stay up for other
tests) is stopped and restarted under a running app: the refresh says 'Data source unavailable
— showing data from HH:MM', pages keep serving the figures they already computed, a view never
seen gets a clear message instead of an error, and everything recovers by itself.
"""
from __future__ import annotations

import datetime as dt
import json
import socket
import time
import uuid
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from dash import no_update
from plotly.utils import PlotlyJSONEncoder

from callbacks.common import guarded
from data_access.db import DatabaseUnavailable, make_engine
from data_access.filters import MANAGER
from pipeline import etl
from pipeline.demo_data import DemoSpec
from pipeline.seed import seed
from tests.conftest import END, TZ
from tests.support.apps import app_for
from tests.support.callbacks import callback, text_of
from tests.support.pgserver import create_database, start_server


GOOD = {"start": "2026-10-26", "end": "2026-11-24", "vendor": None, "product": None, "category": None}
OTHER = {**GOOD, "start": "2026-09-01", "end": "2026-09-30"}
UNAVAILABLE = "Data source unavailable"


@pytest.fixture(scope="module")
def pg():
    """(server, url of a small seeded database on it). The server is this module's own."""
    server = start_server()
    try:
        url = create_database(server.url, "outage")
        engine = make_engine(url)
        seed(engine, DemoSpec(scale=0.01, seed=5, months=6, end=END), TZ, show_progress=False)
        engine.dispose()
        yield server, url
    finally:
        server.destroy()


def call(app, fragment, *args):
    with app.server.test_request_context():
        return callback(app, fragment)(*args)


def refresh(app, current, banner_shown=None):
    return call(app, "source-banner.children", 1, current, banner_shown)


def overview(app, store, version):
    return call(app, "overview-kpis.children", store, version)


def as_json(value) -> str:
    return json.dumps(value, cls=PlotlyJSONEncoder, sort_keys=True)


def insert_order(url) -> None:
    """A new completed order created now, then the ETL: the data version moves on."""
    engine = make_engine(url)
    with engine.begin() as conn:
        gc_id = conn.execute(sa.text("SELECT id FROM groups_carts WHERE deleted_at IS NULL LIMIT 1")).scalar()
        newest = conn.execute(sa.text("SELECT MAX(created_at) FROM orders")).scalar()
        now = dt.datetime.now(dt.timezone.utc)
        conn.execute(sa.text(
            "INSERT INTO orders (id, groups_carts_id, status, total_amount, discount, payment_method, "
            "created_at, updated_at) VALUES (:id, :gc, 'COMPLETED', 321.5, 0, 'CHAPA', :c, :u)"),
            {"id": str(uuid.uuid4()), "gc": gc_id, "c": newest + dt.timedelta(minutes=1), "u": now})
    etl.run_once(engine, TZ)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_outage_banner_cached_figures_and_recovery(pg):
    server, url = pg
    app = app_for(make_engine(url))
    svc = app.server.extensions["pulse"]

    version, stamp, banner = refresh(app, None)
    assert isinstance(version, int) and stamp.startswith("Updated")
    kpis, trend, message = overview(app, GOOD, version)
    assert message is None and "ETB" in text_of(kpis)
    options, _ = call(app, "filter-product.options", None, None)
    assert options
    with svc.connect() as conn:
        vendor = str(conn.execute(sa.text("SELECT id FROM vendors ORDER BY id LIMIT 1")).scalar())

    server.stop()
    try:
        started = time.perf_counter()
        new_version, new_stamp, banner = refresh(app, version)
        assert time.perf_counter() - started < 10, "the refresh hung on the dead server"
        assert new_version is no_update and new_stamp is no_update
        at = svc.last_ok_at.astimezone(ZoneInfo(TZ)).strftime("%H:%M")
        assert text_of(banner) == f"{UNAVAILABLE} — showing data from {at}"

        # the figures already computed for these inputs are served as they were
        assert as_json(overview(app, GOOD, version)) == as_json((kpis, trend, message))
        assert call(app, "filter-product.options", None, None)[0] == options
        # product options of a vendor never listed keep what is on screen instead of emptying it
        assert call(app, "filter-product.options", vendor, None) == (no_update, no_update)

        # a selection never computed says so, and leaves the figures on screen untouched
        kpis2, trend2, message2 = overview(app, OTHER, version)
        assert kpis2 is no_update and trend2 is no_update
        assert UNAVAILABLE in text_of(message2)

        # the filter bar cannot validate a new selection: it says why instead of 'unknown vendor'
        store, filter_message = call(app, "filters-store.data", OTHER["start"], OTHER["end"],
                                     "00000000-0000-4000-8000-000000000000", None, None)
        assert store is no_update and UNAVAILABLE in text_of(filter_message)

        # the banner stays while the source is down
        assert UNAVAILABLE in text_of(refresh(app, version, banner)[2])
    finally:
        server.start()

    # back: the next tick clears the banner by itself, and new data flows again
    same_version, _, cleared = refresh(app, version, banner)
    assert same_version is no_update and cleared is None
    kpis2, _, message2 = overview(app, OTHER, version)
    assert message2 is None and "ETB" in text_of(kpis2)

    insert_order(url)
    newer, stamp, banner = refresh(app, version, None)
    assert isinstance(newer, int) and newer > version and banner is no_update
    kpis3, _, message3 = overview(app, GOOD, newer)
    assert message3 is None and text_of(kpis3) != text_of(kpis)


@pytest.mark.postgres
@pytest.mark.slow
def test_outage_before_any_data_says_so(pg):
    server, url = pg
    app = app_for(make_engine(url))
    server.stop()
    try:
        version, stamp, banner = refresh(app, None)
        assert version is no_update and UNAVAILABLE in text_of(banner)
        kpis, trend, message = overview(app, GOOD, 1)
        assert kpis is no_update and UNAVAILABLE in text_of(message)
        # the page itself still renders (the layout falls back to today's dates)
        assert app.server.test_client().get("/").status_code == 200
    finally:
        server.start()


def _slow(conn, scope, seconds):
    conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})
    return "slept"


@pytest.mark.postgres
@pytest.mark.slow
def test_statement_timeout_gives_a_clear_message_not_a_hang(pg):
    _, url = pg
    app = app_for(make_engine(url), statement_timeout_ms=300)
    svc = app.server.extensions["pulse"]
    version = svc.version()

    @guarded(1, 0)
    def view():
        return svc.query(_slow, MANAGER, version, seconds=5)

    started = time.perf_counter()
    message = view()
    assert time.perf_counter() - started < 3, "the statement timeout did not stop the query"
    assert "took longer than 0.3 s for this view" in text_of(message)
    with pytest.raises(DatabaseUnavailable):
        svc.query(_slow, MANAGER, version, seconds=5)
    # one slow view does not mark the whole source as down: other views keep working
    assert svc.stale_since is None
    assert svc.query(_slow, MANAGER, version, seconds=0.01) is not None
    kpis, _, message = overview(app, GOOD, version)
    assert message is None and "ETB" in text_of(kpis)


@pytest.mark.postgres
@pytest.mark.slow
def test_worker_started_during_the_outage_uses_the_shared_cache(pg, tmp_path):
    """Two workers sharing a cache (as gunicorn workers share Redis): one that never reached the
    database still shows the banner with the right time and serves the other's figures."""
    server, url = pg
    shared = dict(cache_type="FileSystemCache", cache_dir=str(tmp_path / "cache"))
    first = app_for(make_engine(url), **shared)
    version, _, _ = refresh(first, None)
    figures = overview(first, GOOD, version)
    at = first.server.extensions["pulse"].last_ok_at.astimezone(ZoneInfo(TZ)).strftime("%H:%M")

    server.stop()
    try:
        second = app_for(make_engine(url), **shared)
        new_version, _, banner = refresh(second, version)
        assert new_version is no_update
        assert text_of(banner) == f"{UNAVAILABLE} — showing data from {at}"
        assert as_json(overview(second, GOOD, version)) == as_json(figures)
    finally:
        server.start()


@pytest.mark.postgres
@pytest.mark.slow
def test_a_locked_database_times_out_into_the_banner_and_recovers(pg):
    """A long lock (a migration, a stuck transaction) makes even the version check wait: the
    statement timeout turns that into the banner within a second, and it clears when released."""
    _, url = pg
    app = app_for(make_engine(url), statement_timeout_ms=300)
    version, _, _ = refresh(app, None)
    figures = overview(app, GOOD, version)
    locker = make_engine(url).connect()
    transaction = locker.begin()
    try:
        locker.execute(sa.text("LOCK TABLE pulse.pulse_meta IN ACCESS EXCLUSIVE MODE"))
        started = time.perf_counter()
        new_version, _, banner = refresh(app, version)
        assert time.perf_counter() - started < 3
        assert new_version is no_update and UNAVAILABLE in text_of(banner)
        assert as_json(overview(app, GOOD, version)) == as_json(figures)
    finally:
        transaction.rollback()
        locker.close()
    assert refresh(app, version, banner)[2] is None


@pytest.mark.parametrize("redis", ["refused", "hung"])
def test_cache_outage_only_costs_a_little_time(seeded, redis):
    """Redis refusing connections, or accepting them and never answering: pages still compute
    (no message, no error) and the hang costs one socket timeout, not one per cache call."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if redis == "hung":
        listener.listen(64)  # connections complete, nothing is ever read or answered
    else:
        listener.close()
    try:
        app = app_for(seeded("sqlite", 0.02, 1), cache_type="RedisCache", cache_redis_url=f"redis://127.0.0.1:{port}/0")
        started = time.perf_counter()
        version, stamp, banner = refresh(app, None)
        assert isinstance(version, int) and banner is no_update
        for store in (GOOD, OTHER, GOOD):
            kpis, _, message = overview(app, store, version)
            assert message is None and "ETB" in text_of(kpis)
        assert time.perf_counter() - started < 8
    finally:
        listener.close()
