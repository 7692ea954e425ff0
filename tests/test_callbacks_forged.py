"""Callbacks called directly with forged or malformed inputs: a clear message, no exception,
nothing from outside the request leaks."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from dash import no_update

from tests.support.apps import app_for
from tests.support.callbacks import callback, text_of


@pytest.fixture(scope="module")
def app(seeded):
    return app_for(seeded("sqlite", 0.02, 1))


@pytest.fixture(scope="module")
def ids(seeded):
    with seeded("sqlite", 0.02, 1).connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT p.vendor_id, p.id FROM products p ORDER BY p.vendor_id, p.id")).all()
        silent = conn.execute(sa.text(
            "SELECT v.id FROM vendors v WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.vendor_id = v.id)")).scalar()
    vendors = sorted({str(v) for v, _ in rows})
    product_of = {str(v): str(p) for v, p in rows}
    return {"vendor_a": vendors[0], "vendor_b": vendors[1], "product_b": product_of[vendors[1]],
            "silent_vendor": str(silent)}


GOOD = {"start": "2026-10-26", "end": "2026-11-24", "vendor": None, "product": None, "category": None}


def commit(app, **changes):
    data = {**GOOD, **changes}
    with app.server.test_request_context():
        return callback(app, "filters-store.data")(data["start"], data["end"], data["vendor"],
                                                      data["product"], data["category"])


@pytest.mark.parametrize("changes, expected", [
    ({"vendor": "00000000-0000-4000-8000-000000000000"}, "Unknown vendor"),
    ({"vendor": "1' OR '1'='1"}, "Unknown vendor"),
    ({"category": "; DROP TABLE orders; --"}, "Unknown category"),
    ({"start": "2026-11-24", "end": "2026-10-01"}, "before the start date"),
    ({"start": "9999-99-99"}, "not a valid date"),
    ({"end": ["2026-11-01"]}, "not a date"),
    ({"vendor": ["x"] * 5000}, "invalid filter value"),
    ({"vendor": {"$ne": 1}}, "invalid filter value"),
])
def test_filter_bar_rejects_forged_values(app, changes, expected):
    store, message = commit(app, **changes)
    assert store is no_update
    assert expected in text_of(message)


def test_product_of_another_vendor_is_refused(app, ids):
    store, message = commit(app, vendor=ids["vendor_a"], product=ids["product_b"])
    assert store is no_update
    assert "not sold by the selected vendor" in text_of(message)


def test_valid_selection_is_stored(app, ids):
    store, message = commit(app, vendor=ids["vendor_b"], product=ids["product_b"])
    assert store["vendor"] == ids["vendor_b"] and message is None


@pytest.mark.parametrize("store, expected", [
    ({**GOOD, "start": "2026-13-45"}, "not a valid date"),
    ({**GOOD, "start": "2026-11-24", "end": "2026-11-01"}, "before the start date"),
    ("not-a-dict", "Choose a date range"),
    ({**GOOD, "start": "2000-01-01"}, "at most three years"),
])
def test_overview_with_forged_store_says_why(app, store, expected):
    with app.server.test_request_context():
        kpis, figure, message = callback(app, "overview-kpis.children")(store, 1)
    assert kpis is no_update and figure is no_update
    assert expected in text_of(message)


def test_vendor_without_sales_says_no_orders(app, ids):
    with app.server.test_request_context():
        kpis, figure, message = callback(app, "overview-kpis.children")({**GOOD, "vendor": ids["silent_vendor"]}, 1)
    assert message is None
    assert "No orders in this selection" in text_of(figure)
    assert "ETB 0" in text_of(kpis)


@pytest.mark.parametrize("args, expected", [
    (("all", None, "revenue", 500), "between 7 and 60"),
    (("all", None, "revenue", "ten"), "number of days"),
    (("drop table", None, "revenue", 28), "Choose what to forecast"),
    (("vendor", None, "revenue", 28), "Choose a vendor"),
    (("all", None, "margin", 28), "revenue or orders"),
])
def test_forecast_rejects_bad_requests(app, args, expected):
    with app.server.test_request_context():
        figure, _bt, message, poll_disabled = callback(app, "forecast-graph.figure")(*args, 1, 0, True)
    assert expected in text_of(figure)
    assert poll_disabled is True
