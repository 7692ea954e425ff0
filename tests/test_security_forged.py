"""Forged requests over HTTP: logged in as vendor A, POST to Dash's /_dash-update-component
bodies shaped exactly like the browser's (built from app.callback_map), with vendor B's ids,
SQL-looking strings, huge lists, wrong types and impossible dates. The answer never carries B's
numbers or names, never a traceback, and says what is wrong where the page shows messages.

test_callbacks_forged.py calls the callback functions directly; this goes through Flask, Dash's
request handling, the login session and the cache, as an attacker would.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from components import widgets
from components.ids import Forecast, Operations, Overview, Shell
from dashboard.app import create_app
from dashboard.dash_requests import body_for_spec
from dashboard.settings import Settings
from data_access import accounts, sales
from data_access.db import make_engine
from data_access.filters import Filters, Scope, Window
from tests.conftest import TZ
from tests.support.apps import copy_sqlite

START, END_DAY = "2026-10-26", "2026-11-24"
GOOD = {"start": START, "end": END_DAY, "vendor": None, "product": None, "category": None}
LEAK_MARKERS = ("Traceback", 'File "', "ValueError", "KeyError", "TypeError", "AttributeError",
                "OverflowError", "OperationalError", "ProgrammingError", "DataError", "sqlalchemy",
                "psycopg2", "sqlite3")


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def world(seeded, tmp_path_factory):
    """A private copy of the small seeded database; vendors A and B are the two biggest sellers
    in the window, each with an account, plus a manager."""
    url = copy_sqlite(seeded("sqlite", 0.02, 1), tmp_path_factory.mktemp("forged") / "forged.sqlite")
    engine = make_engine(url)
    window = Window.days(dt.date.fromisoformat(START), dt.date.fromisoformat(END_DAY), TZ)
    with engine.begin() as conn:
        top = [str(v) for v in conn.execute(sa.text(
            "SELECT vendor_id FROM pulse_order_lines WHERE status = 'COMPLETED' GROUP BY vendor_id "
            "ORDER BY SUM(revenue) DESC LIMIT 2")).scalars()]
        accounts.add_account(conn, "vendor_a", "vendor-a-pass", "vendor", top[0])
        accounts.add_account(conn, "vendor_b", "vendor-b-pass", "vendor", top[1])
        accounts.add_account(conn, "boss", "manager-pass", "manager")
        w = {}
        for name, vendor in (("a", top[0]), ("b", top[1])):
            options = sales.product_options(conn, scope=Scope(vendor))
            w[name] = {
                "vendor": vendor,
                "name": conn.execute(sa.text("SELECT name FROM vendors WHERE id = :v"), {"v": vendor}).scalar(),
                "products": list(options["value"]),
                "labels": list(options["label"]),
                "revenue": widgets.fmt_value(sales.sales_totals(conn, window, Filters(), Scope(vendor))["revenue"],
                                             "etb"),
            }
    a, b = w["a"], w["b"]
    # preconditions that keep the leak checks meaningful
    assert a["name"] != b["name"] and b["name"] not in " ".join(a["labels"]) + a["name"]
    assert a["revenue"] != b["revenue"] and b["revenue"] != "ETB 0"
    b_only = {label.split(" — ")[0] for label in b["labels"]} - {label.split(" — ")[0] for label in a["labels"]}
    w["b"]["only_product_names"] = sorted(b_only)
    with engine.connect() as conn:  # B's customers who never bought from A (top-users markers)
        buyers = {v: {(str(i), n) for i, n in conn.execute(sa.text(
            "SELECT DISTINCT l.user_id, u.name FROM pulse_order_lines l JOIN users u ON u.id = l.user_id "
            "WHERE l.vendor_id = :v"), {"v": v})} for v in (a["vendor"], b["vendor"])}
    a_ids, a_names = {i for i, _ in buyers[a["vendor"]]}, {n for _, n in buyers[a["vendor"]]}
    w["b"]["only_buyers"] = sorted(i for i, _ in buyers[b["vendor"]] if i not in a_ids)
    w["b"]["only_buyer_names"] = sorted({n for _, n in buyers[b["vendor"]]} - a_names)  # names repeat
    assert w["b"]["only_buyers"] and w["b"]["only_buyer_names"]
    w["url"] = url
    yield w
    engine.dispose()


@pytest.fixture(scope="module")
def app(world):
    return create_app(Settings(database_url=world["url"], secret_key="forged-secret", require_login=True))


@pytest.fixture(scope="module")
def version(app):
    return app.server.extensions["pulse"].version()


def _login(app, username, password):
    client = app.server.test_client()
    response = client.post("/login", data={"username": username, "password": password})
    assert response.status_code == 302, f"login as {username} failed"
    return client


@pytest.fixture
def as_a(app):
    return _login(app, "vendor_a", "vendor-a-pass")


@pytest.fixture
def as_b(app):
    return _login(app, "vendor_b", "vendor-b-pass")


# -- Dash request bodies ---------------------------------------------------------------------

def output_key(app, component_id: str) -> str:
    """The callback_map key of the callback that outputs to component_id."""
    keys = [k for k in app.callback_map
            if any(part.rsplit(".", 1)[0] == component_id for part in k.strip(".").split("..."))]
    assert len(keys) == 1, f"{len(keys)} callbacks output to {component_id!r}"
    return keys[0]


def dash_body(app, component_id: str, values: dict, changed: list[str] | None = None) -> dict:
    """What the Dash renderer POSTs for the callback that outputs to component_id.

    values: {"id.property": value} for its inputs and states (missing ones are sent as null).
    """
    key = output_key(app, component_id)
    return body_for_spec(key, app.callback_map[key], values, changed)


def post(client, app, component_id: str, values: dict) -> tuple[int, str, dict]:
    """(status, raw text, {output id: {property: value}}) of one forged callback request."""
    response = client.post("/_dash-update-component", json=dash_body(app, component_id, values))
    text = response.get_data(as_text=True)
    payload = json.loads(text).get("response", {}) if response.status_code == 200 else {}
    return response.status_code, text, payload


def assert_no_leak(text: str, world) -> None:
    b = world["b"]
    for marker in LEAK_MARKERS:
        assert marker not in text, f"{marker!r} in response"
    assert b["name"] not in text, "vendor B's name leaked"
    assert b["revenue"] not in text, "vendor B's revenue leaked"
    for name in b["only_product_names"]:
        assert name not in text, f"vendor B's product {name!r} leaked"
    for product in b["products"]:
        assert product not in text, "vendor B's product id leaked"
    for user in b["only_buyers"]:
        assert user not in text, "a customer of vendor B only leaked"
    for name in b["only_buyer_names"]:
        assert f'"{name}"' not in text, f"a customer of vendor B only leaked ({name})"


def message_text(payload: dict, component_id: str) -> str:
    """Text of a message component or an empty-figure annotation in a Dash response."""
    return json.dumps(payload.get(component_id, {}))


# -- the overview and the filter bar ---------------------------------------------------------

def forged_stores(world) -> list[tuple[object, str | None]]:
    """(filters store as forged by vendor A, the message the page must show or None)."""
    b = world["b"]
    return [
        ({**GOOD, "vendor": b["vendor"]}, None),            # B's numbers filtered into A's view
        ({**GOOD, "product": b["products"][0]}, None),
        ({**GOOD, "vendor": [b["vendor"], world["a"]["vendor"]]}, None),
        ({**GOOD, "vendor": "1' OR '1'='1"}, None),
        ({**GOOD, "category": "'; DROP TABLE orders; --"}, None),
        ({**GOOD, "vendor": ["x"] * 5000}, "invalid filter value"),
        ({**GOOD, "product": list(range(50))}, "invalid filter value"),
        ({**GOOD, "vendor": {"$ne": None}}, "invalid filter value"),
        ({**GOOD, "vendor": 12345}, "invalid filter value"),
        ({**GOOD, "start": "9999-99-99"}, "not a valid date"),
        ({**GOOD, "start": "0001-01-01", "end": "0001-01-05"}, "Choose dates between"),
        ({**GOOD, "start": "9999-12-01", "end": "9999-12-31"}, "Choose dates between"),
        ({**GOOD, "start": 20261026}, "not a date"),
        ({**GOOD, "end": {"year": 2026}}, "not a date"),
        ({**GOOD, "start": "2000-01-01"}, "at most three years"),
        ("'; SELECT * FROM pulse_accounts; --", "Choose a date range"),
        ([GOOD], "Choose a date range"),
    ]


def test_overview_with_forged_filters_never_shows_vendor_b(app, as_a, world, version):
    for store, expected in forged_stores(world):
        status, text, payload = post(as_a, app, Overview.KPIS, {f"{Shell.FILTERS}.data": store,
                                                               f"{Shell.VERSION}.data": version})
        assert status == 200, (store, status)
        assert_no_leak(text, world)
        if expected:
            assert expected in message_text(payload, Overview.MESSAGE), (store, text[:300])
        else:  # scoped to A: a filter on B's ids finds nothing (or only A's own share)
            kpis = json.dumps(payload.get(Overview.KPIS, {}))
            assert "ETB 0" in kpis or world["a"]["revenue"] in kpis, (store, text[:300])

        status, text, payload = post(as_a, app, Overview.COMPARE, {
            f"{Shell.FILTERS}.data": store, f"{Shell.VERSION}.data": version,
            f"{Shell.METRICS}.value": ["revenue", "'; DROP TABLE x; --", {"a": 1}]})
        assert status == 200
        assert_no_leak(text, world)


@pytest.mark.parametrize("version_value, expected", [
    ("'; DROP TABLE pulse_meta; --", "version is invalid"), (["x"] * 1000, "version is invalid"),
    ({"v": 1}, "version is invalid"), (-1, "version is invalid"), (True, "version is invalid"),
    (10**30, "ahead of the data source"), (1000, "ahead of the data source")])
def test_overview_with_forged_version_is_refused(app, as_a, world, version_value, expected):
    """A future version would cache today's numbers under tomorrow's key: refused, nothing cached."""
    before = _cache_size(app)
    status, text, payload = post(as_a, app, Overview.KPIS, {f"{Shell.FILTERS}.data": GOOD,
                                                             f"{Shell.VERSION}.data": version_value})
    assert status == 200
    assert expected in message_text(payload, Overview.MESSAGE)
    assert Overview.KPIS not in payload and Overview.TREND not in payload
    assert _cache_size(app) == before
    assert_no_leak(text, world)


def filter_bar_values(**changes) -> dict:
    data = {**GOOD, **changes}
    return {f"{Shell.DATES}.start_date": data["start"], f"{Shell.DATES}.end_date": data["end"],
            f"{Shell.VENDOR}.value": data["vendor"], f"{Shell.PRODUCT}.value": data["product"],
            f"{Shell.CATEGORY}.value": data["category"]}


def test_filter_bar_refuses_vendor_b_and_its_products(app, as_a, world):
    a, b = world["a"], world["b"]
    cases = [
        ({"vendor": b["vendor"]}, "Unknown vendor"),
        ({"vendor": [a["vendor"], b["vendor"]]}, "Unknown vendor"),
        ({"vendor": a["vendor"], "product": b["products"][0]}, "not sold by the selected vendor"),
        ({"product": b["products"][0]}, "not sold by the selected vendor"),
        ({"vendor": "1' OR '1'='1"}, "Unknown vendor"),
        ({"category": "'; DROP TABLE orders; --"}, "Unknown category"),
        ({"product": ["x"] * 100_000}, "invalid filter value"),
        ({"vendor": True}, "invalid filter value"),
        ({"start": "9999-99-99"}, "not a valid date"),
        ({"end": "2026-02-30"}, "not a valid date"),
        ({"start": "0001-01-01", "end": "0001-01-02"}, "Choose dates between"),
        ({"start": ["2026-11-01"]}, "not a date"),
    ]
    for changes, expected in cases:
        status, text, payload = post(as_a, app, Shell.FILTERS, filter_bar_values(**changes))
        assert status == 200, changes
        assert Shell.FILTERS not in payload, f"forged selection {changes} was stored"
        assert expected in message_text(payload, Shell.FILTER_MESSAGE), (changes, text[:300])
        assert_no_leak(text, world)


def test_filter_bar_accepts_own_vendor_and_product(app, as_a, world):
    a = world["a"]
    status, _, payload = post(as_a, app, Shell.FILTERS,
                              filter_bar_values(vendor=a["vendor"], product=a["products"][0]))
    assert status == 200
    assert payload[Shell.FILTERS]["data"]["vendor"] == a["vendor"]


def test_vendor_sees_only_own_vendor_and_products_in_the_dropdowns(app, as_a, world, version):
    a = world["a"]
    status, text, payload = post(as_a, app, Shell.VENDOR, {f"{Shell.VERSION}.data": version})
    assert status == 200
    assert payload[Shell.VENDOR]["options"] == [{"value": a["vendor"], "label": a["name"]}]
    assert_no_leak(text, world)

    for vendor in (None, a["vendor"], world["b"]["vendor"], [a["vendor"], world["b"]["vendor"]],
                   "1' OR '1'='1", ["x"] * 5000, {"$gt": ""}, 7):
        status, text, payload = post(as_a, app, Shell.PRODUCT, {f"{Shell.VENDOR}.value": vendor,
                                                               f"{Shell.PRODUCT}.value": world["b"]["products"][0]})
        assert status == 200, vendor
        options = payload[Shell.PRODUCT]["options"]
        assert {o["value"] for o in options} <= set(a["products"]), vendor
        assert payload[Shell.PRODUCT]["value"] is None  # B's product is never kept as the selection
        assert_no_leak(text, world)
    # unfiltered, A gets all of A's products (the check above is not passing on empty lists)
    _, _, payload = post(as_a, app, Shell.PRODUCT, {f"{Shell.VENDOR}.value": None})
    assert {o["value"] for o in payload[Shell.PRODUCT]["options"]} == set(a["products"])


def test_manager_sees_every_vendor(app, world, version):
    boss = _login(app, "boss", "manager-pass")
    _, text, payload = post(boss, app, Shell.VENDOR, {f"{Shell.VERSION}.data": version})
    values = {o["value"] for o in payload[Shell.VENDOR]["options"]}
    assert {world["a"]["vendor"], world["b"]["vendor"]} <= values


def test_pages_and_layout_carry_no_other_vendor_data(app, as_a, world):
    for path in ("/", "/_dash-layout", "/_dash-dependencies", "/forecast", "/operations"):
        response = as_a.get(path)
        assert response.status_code == 200, path
        assert_no_leak(response.get_data(as_text=True), world)


# -- forecast and operations -----------------------------------------------------------------

def test_forecast_item_options_are_scoped(app, as_a, world):
    a = world["a"]
    for kind, allowed in (("vendor", {a["vendor"]}), ("product", set(a["products"]))):
        status, text, payload = post(as_a, app, Forecast.SERIES_ITEM, {f"{Forecast.SERIES_KIND}.value": kind})
        assert status == 200
        assert {o["value"] for o in payload[Forecast.SERIES_ITEM]["options"]} == allowed
        assert_no_leak(text, world)


@pytest.mark.parametrize("kind", ["'; DROP TABLE orders; --", None, 7,
                                  ["vendor"], {"k": 1}])
def test_forecast_item_options_with_forged_kind(app, as_a, world, kind):
    status, text, payload = post(as_a, app, Forecast.SERIES_ITEM, {f"{Forecast.SERIES_KIND}.value": kind})
    assert_no_leak(text, world)
    assert status == 200 and payload[Forecast.SERIES_ITEM]["options"] == []


def test_forecast_of_vendor_b_series_is_refused(app, as_a, world, version):
    b = world["b"]
    cases = [
        (("vendor", b["vendor"], "revenue", 28), "No orders in this selection"),
        (("product", b["products"][0], "orders", 28), "No orders in this selection"),
        (("vendor", "1' OR '1'='1", "revenue", 28), "No orders in this selection"),
        (("vendor", ["x"] * 5000, "revenue", 28), "Choose a vendor"),
        (("vendor", b["vendor"], "revenue", "9999-99-99"), "number of days"),
        (("vendor", b["vendor"], "revenue", 10**9), "between 7 and 60"),
        (("all", None, {"$ne": 1}, 28), "revenue or orders"),
        (("drop table", None, "revenue", 28), "Choose what to forecast"),
    ]
    for (kind, item, metric, horizon), expected in cases:
        status, text, payload = post(as_a, app, Forecast.GRAPH, {
            f"{Forecast.SERIES_KIND}.value": kind, f"{Forecast.SERIES_ITEM}.value": item,
            f"{Forecast.METRIC}.value": metric, f"{Forecast.HORIZON}.value": horizon,
            f"{Shell.VERSION}.data": version, f"{Forecast.POLL}.n_intervals": 0, f"{Forecast.POLL}.disabled": True})
        assert status == 200, (kind, item)
        assert expected in message_text(payload, Forecast.GRAPH), (kind, item, text[:300])
        assert_no_leak(text, world)


def test_operations_page_is_refused_to_vendors(app, as_a, world, version):
    status, text, payload = post(as_a, app, Operations.CARDS, {f"{Shell.VERSION}.data": version})
    assert status == 200
    assert "for ChipChip managers" in message_text(payload, Operations.MESSAGE)
    assert Operations.REFUNDS not in payload and Operations.CARDS not in payload
    assert_no_leak(text, world)


# -- malformed requests ----------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    {"output": "pulse-accounts.data", "outputs": {"id": "pulse-accounts", "property": "data"}, "inputs": []},
    {"inputs": []}, [1, 2, 3], "not json", {"output": None},
])
def test_malformed_callback_requests_fail_without_details(app, as_a, world, raw):
    if raw == "not json":
        response = as_a.post("/_dash-update-component", data="{{", content_type="application/json")
    else:
        response = as_a.post("/_dash-update-component", json=raw)
    assert 400 <= response.status_code < 600
    assert_no_leak(response.get_data(as_text=True), world)


# -- caches are keyed by scope ---------------------------------------------------------------

def _cache_size(app) -> int:
    return len(app.server.extensions["pulse"].cache.cache._cache)  # SimpleCache's dict


def _overview_revenue(client, app, version) -> tuple[str, str]:
    status, text, payload = post(client, app, Overview.KPIS, {f"{Shell.FILTERS}.data": GOOD,
                                                               f"{Shell.VERSION}.data": version})
    assert status == 200
    return json.dumps(payload[Overview.KPIS]), text


def test_cached_figures_are_never_served_to_another_vendor(app, world, version):
    a, b = world["a"], world["b"]
    client_a = _login(app, "vendor_a", "vendor-a-pass")
    kpis_a, text_a = _overview_revenue(client_a, app, version)
    assert a["revenue"] in kpis_a and b["revenue"] not in text_a
    warm = _cache_size(app)
    assert _overview_revenue(client_a, app, version)[0] == kpis_a
    assert _cache_size(app) == warm  # A's second request is served from the cache

    client_b = _login(app, "vendor_b", "vendor-b-pass")  # same inputs, other scope
    kpis_b, text_b = _overview_revenue(client_b, app, version)
    assert b["revenue"] in kpis_b and a["revenue"] not in text_b
    assert _cache_size(app) > warm  # B got entries of its own instead of A's

    # the same for the shared filter-bar options
    _, _, opts_b = post(client_b, app, Shell.PRODUCT, {f"{Shell.VENDOR}.value": None})
    assert {o["value"] for o in opts_b[Shell.PRODUCT]["options"]} == set(b["products"])


def test_leak_check_recognises_vendor_b_data(app, as_b, world, version):
    """Control: the detector used above does fire on B's own overview and product list."""
    _, text, _ = post(as_b, app, Overview.KPIS, {f"{Shell.FILTERS}.data": GOOD, f"{Shell.VERSION}.data": version})
    with pytest.raises(AssertionError, match="revenue"):
        assert_no_leak(text, world)
    _, text, _ = post(as_b, app, Shell.PRODUCT, {f"{Shell.VENDOR}.value": None})
    with pytest.raises(AssertionError, match="vendor B's"):
        assert_no_leak(text, world)


# -- every page callback that reads the filter store -----------------------------------------

def filter_page_callbacks(app) -> list[str]:
    """Output keys of the page callbacks driven by the filters store (overview, groups,
    products, customers ... whichever pages exist), the shell's own excluded."""
    return sorted(k for k, spec in app.callback_map.items()
                  if any(i["id"] == Shell.FILTERS and i["property"] == "data" for i in spec["inputs"]))


def page_values(app, key: str, store, version) -> dict:
    """Inputs for one page callback: the (forged) store and version, and a forged value for
    every other input (modes, periods, metric lists ...)."""
    values = {f"{Shell.FILTERS}.data": store, f"{Shell.VERSION}.data": version}
    for dep in app.callback_map[key]["inputs"] + app.callback_map[key].get("state", []):
        values.setdefault(f"{dep['id']}.{dep['property']}", "'; DROP TABLE orders; --")
    return values


def post_key(client, app, key: str, values: dict) -> tuple[int, str]:
    first = key.strip(".").split("...")[0].rsplit(".", 1)[0]
    response = client.post("/_dash-update-component", json=dash_body(app, first, values))
    return response.status_code, response.get_data(as_text=True)


def test_every_filter_driven_page_callback_resists_forged_stores(app, as_a, world, version):
    keys = filter_page_callbacks(app)
    assert any(k.startswith("..overview-kpis") for k in keys) and len(keys) >= 2
    for key in keys:
        for store, _expected in forged_stores(world):
            status, text = post_key(as_a, app, key, page_values(app, key, store, version))
            assert status == 200, (key, store, status)
            assert_no_leak(text, world)


def test_every_filter_driven_page_callback_stays_in_scope(app, as_a, world, version):
    """With ordinary inputs, no page shows anything of B's; the cross-vendor share heatmap is
    replaced by the category correlation of A's own sales."""
    for key in filter_page_callbacks(app):
        status, text = post_key(as_a, app, key, page_values(app, key, GOOD, version))
        assert status == 200, key
        assert_no_leak(text, world)
    if any(k.startswith("products-heatmap") for k in app.callback_map):
        status, text, _ = post(as_a, app, "products-heatmap", {
            f"{Shell.FILTERS}.data": GOOD, f"{Shell.VERSION}.data": version, "products-heatmap-mode.value": "share"})
        assert status == 200 and "Pearson r" in text


def test_vendor_top_users_are_its_own_buyers_spending_on_its_products(app, world, version):
    """Top users for a vendor rank its buyers by what they spent on its products only."""
    if not any(k.startswith("..customers-top.") for k in app.callback_map):
        pytest.skip("no customers page yet")
    from callbacks.common import as_of_for
    from data_access.customers import top_users
    window = Window.days(dt.date.fromisoformat(START), dt.date.fromisoformat(END_DAY), TZ)
    engine = make_engine(world["url"])
    shown = {}
    for who, username, password, scope in (("a", "vendor_a", "vendor-a-pass", Scope(world["a"]["vendor"])),
                                           ("boss", "boss", "manager-pass", Scope(None))):
        client = _login(app, username, password)
        _, text, payload = post(client, app, "customers-top", {f"{Shell.FILTERS}.data": GOOD,
                                                               f"{Shell.VERSION}.data": version})
        rows = payload["customers-top"]["data"]
        with engine.connect() as conn:
            expected = top_users(conn, as_of_for(window), n=10, scope=scope, tz=TZ)
        names = [n if isinstance(n, str) else "(no name)" for n in expected["user_name"]]  # as the table shows it
        assert [(r["user_name"], r["completed_orders"]) for r in rows] == \
            list(zip(names, expected["completed_orders"])), who
        shown[who] = rows
    engine.dispose()
    assert shown["a"] and shown["a"] != shown["boss"]
