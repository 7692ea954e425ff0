"""Browser journeys (dash_duo, headless Chromium): the overview shows what data_access returns,
the interval refresh redraws nothing when the data did not change and updates the KPI cards
when new orders arrive."""
from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
import sqlalchemy as sa

from components.widgets import fmt_value
from data_access import sales
from data_access.db import make_engine
from data_access.dialect import utc_to_local_date
from data_access.filters import Window, newest_order_time
from tests.conftest import TZ
from tests.support.apps import app_for, copy_sqlite
from tests.support.browser import wait_for_traces

pytestmark = pytest.mark.browser


def default_window(engine) -> Window:
    with engine.connect() as conn:
        end = utc_to_local_date(newest_order_time(conn), TZ)
    return Window.days(end - dt.timedelta(days=29), end, TZ)


def kpi_text(dash_duo, name: str) -> str:
    return dash_duo.find_element(f'[id=\'{{"name":"{name}","type":"kpi-value"}}\']').text


def test_overview_cards_show_data_access_numbers(dash_duo, seeded):
    engine = seeded("sqlite", 0.02, 1)
    dash_duo.start_server(app_for(engine))
    with engine.connect() as conn:
        expected = sales.sales_totals(conn, default_window(engine))
    assert expected["orders"] > 0
    dash_duo.wait_for_text_to_equal('[id=\'{"name":"revenue","type":"kpi-value"}\']',
                                    fmt_value(expected["revenue"], "etb"), timeout=30)
    assert kpi_text(dash_duo, "completed_orders") == fmt_value(expected["orders"], "count")
    shown = wait_for_traces(dash_duo, "overview-trend", lambda t: len(t) == 2 and t[0]["points"] > 0)
    assert shown[0]["points"] >= 25  # a bar per day of the 30-day window with sales
    assert dash_duo.get_logs() == []


def test_interval_refresh_redraws_only_on_new_data(dash_duo, seeded, tmp_path):
    url = copy_sqlite(seeded("sqlite", 0.02, 1), tmp_path / "live.sqlite")
    engine = make_engine(url)
    app = app_for(engine, refresh_interval_seconds=1.0)
    svc = app.server.extensions["pulse"]
    checks, queries = [], []
    original_version, original_query = svc.version, svc.query
    svc.version = lambda: checks.append(1) or original_version()  # count, keep real behaviour
    svc.query = lambda fn, *a, **k: queries.append(fn.__name__) or original_query(fn, *a, **k)
    dash_duo.start_server(app)
    dash_duo.wait_for_element("#overview-trend .main-svg", timeout=30)
    before = kpi_text(dash_duo, "completed_orders")
    time.sleep(1.5)  # let the first render settle
    dash_duo.driver.execute_script(
        "window.__shown = document.querySelector('#overview-trend .js-plotly-plot').data;")
    ticks_before, queries_before = len(checks), len(queries)
    time.sleep(3.5)
    assert len(checks) - ticks_before >= 2, "the interval did not tick"
    assert queries[queries_before:] == [], "a tick without new data ran queries"
    assert dash_duo.driver.execute_script(
        "return document.querySelector('#overview-trend .js-plotly-plot').data === window.__shown")
    assert kpi_text(dash_duo, "completed_orders") == before

    with engine.begin() as conn:  # a new completed group order, created now, through the same tables
        gc_id = conn.execute(sa.text("SELECT id FROM groups_carts WHERE deleted_at IS NULL LIMIT 1")).scalar()
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        created = min(now, newest_order_time(conn) + dt.timedelta(minutes=1))
        conn.execute(sa.text(
            "INSERT INTO orders (id, groups_carts_id, status, total_amount, discount, payment_method, "
            "created_at, updated_at) VALUES (:id, :gc, 'COMPLETED', 321.5, 0, 'CHAPA', :c, :u)"),
            {"id": str(uuid.uuid4()), "gc": gc_id, "c": created.strftime("%Y-%m-%d %H:%M:%S.%f"),
             "u": now.strftime("%Y-%m-%d %H:%M:%S.%f")})
    expected = fmt_value(int(before.replace(",", "")) + 1, "count")
    dash_duo.wait_for_text_to_equal('[id=\'{"name":"completed_orders","type":"kpi-value"}\']', expected, timeout=20)
    assert dash_duo.get_logs() == []
