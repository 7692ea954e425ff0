"""After new data the default views are rendered in the background: the first look afterwards
is served from the cache, without running a query."""
from __future__ import annotations

import time

from dashboard.app import _default_dates
from dashboard.dash_requests import post
from tests.conftest import TZ
from tests.support.apps import app_for


def test_default_views_are_ready_before_anyone_asks(seeded):
    app = app_for(seeded("sqlite", 0.02, 1), warm_cache=True)
    svc = app.server.extensions["pulse"]
    version = svc.version()  # the first version seen starts the warm-up
    deadline = time.time() + 120
    while time.time() < deadline and (svc._warming.locked() or not svc.warmers):
        time.sleep(0.1)
    assert not svc._warming.locked(), "warm-up did not finish"
    ran = []
    original = svc.query
    svc.query = lambda fn, *a, **k: ran.append(fn.__name__) or original(fn, *a, **k)
    start, end = _default_dates(svc, TZ)
    filters = {"start": start.isoformat(), "end": end.isoformat(), "vendor": None, "product": None, "category": None}
    client = app.server.test_client()
    for fragment in ("overview-kpis", "groups-board", "products-heatmap", "customers-top"):
        response = post(client, app, fragment, {"filters-store.data": filters, "data-version-store.data": version,
                                                "products-heatmap-mode.value": "share"})
        assert response.status_code == 200
    assert ran == [], f"these ran on request instead of being warm: {ran}"
    other = {**filters, "start": (start.replace(day=1)).isoformat()}  # a view nobody warmed: computed now
    post(client, app, "overview-kpis", {"filters-store.data": other, "data-version-store.data": version})
    assert ran
