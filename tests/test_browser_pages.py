"""Browser journeys (dash_duo, headless Chromium) over every page: cascading vendor -> product
filter, metric multi-select, each page's main graph drawn with data, the forecast bands."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
import sqlalchemy as sa

from tests.support.apps import app_for
from tests.support.browser import wait_for_traces, wait_until

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def engine(seeded):
    return seeded("sqlite", 0.02, 1)


def dropdown_options(dash_duo, dropdown_id: str) -> list[str]:
    """Option labels the dropdown holds (from the renderer: the list itself is virtualized)."""
    return dash_duo.driver.execute_script(
        f"const c = window.dash_component_api.getLayout('{dropdown_id}');"
        "return ((c && c.props && c.props.options) || []).map(o => o.label);")


def test_vendor_filter_cascades_to_products(dash_duo, engine):
    with engine.connect() as conn:
        vendor_id, vendor = conn.execute(sa.text(
            "SELECT v.id, v.name FROM vendors v JOIN products p ON p.vendor_id = v.id "
            "GROUP BY v.id, v.name HAVING COUNT(*) BETWEEN 3 AND 20 ORDER BY v.name LIMIT 1")).one()
        own = {r[0] for r in conn.execute(sa.text(
            "SELECT pn.name FROM products p JOIN product_names pn ON pn.id = p.name_id "
            "WHERE p.vendor_id = :v"), {"v": vendor_id})}
        total = conn.execute(sa.text("SELECT COUNT(*) FROM products WHERE deleted_at IS NULL")).scalar()
    dash_duo.start_server(app_for(engine))
    dash_duo.wait_for_element("#overview-trend .main-svg", timeout=30)
    everything = dropdown_options(dash_duo, "filter-product")
    assert len(everything) == total
    dash_duo.select_dcc_dropdown("#filter-vendor", value=vendor)
    wait_until(lambda: len(dropdown_options(dash_duo, "filter-product")) == len(own), what="cascade")
    shown = dropdown_options(dash_duo, "filter-product")
    assert {label.split(" — ")[0] for label in shown} == own
    assert all(label.endswith(f"— {vendor}") for label in shown)
    dash_duo.find_element("#filter-vendor .dash-dropdown-clear").click()
    wait_until(lambda: len(dropdown_options(dash_duo, "filter-product")) == total, what="restore")
    assert dash_duo.get_logs() == []


def test_metric_multiselect_adds_and_removes_traces(dash_duo, engine):
    dash_duo.start_server(app_for(engine))
    names = lambda t: [x["name"] for x in t]  # noqa: E731
    wait_for_traces(dash_duo, "overview-compare", lambda t: names(t) == ["Revenue", "Completed orders"])
    dash_duo.driver.set_window_size(1440, 2200)  # the comparison sits below the fold
    dash_duo.select_dcc_dropdown("#metric-select", value="Avg order value")
    wait_for_traces(dash_duo, "overview-compare", lambda t: "Avg order value" in names(t) and len(t) == 3)
    ActionChains(dash_duo.driver).send_keys(Keys.ESCAPE).perform()  # a multi dropdown stays open
    dash_duo.select_dcc_dropdown("#metric-select", value="Revenue")  # a selected option toggles off
    shown = wait_for_traces(dash_duo, "overview-compare", lambda t: len(t) == 2)
    assert "Revenue" not in names(shown)
    assert all(t["points"] > 0 for t in shown)
    assert dash_duo.get_logs() == []


@pytest.mark.parametrize("path, graph, min_traces", [
    ("/", "overview-trend", 2), ("/groups", "groups-series", 2), ("/products", "products-heatmap", 1),
    ("/products", "products-bars", 2), ("/customers", "customers-cohorts", 1),
    ("/operations", "ops-delay", 2)])
def test_each_page_draws_its_main_graph(dash_duo, engine, path, graph, min_traces):
    dash_duo.start_server(app_for(engine))
    dash_duo.wait_for_page(url=dash_duo.server_url + path)
    shown = wait_for_traces(dash_duo, graph, lambda t: len(t) >= min_traces and all(x["points"] > 0 for x in t))
    assert shown
    assert dash_duo.get_logs() == []


def test_forecast_page_draws_history_forecast_and_bands(dash_duo, engine):
    dash_duo.start_server(app_for(engine))
    dash_duo.wait_for_page(url=dash_duo.server_url + "/forecast")
    expected = {"History", "Forecast", "80% interval", "95% interval"}
    shown = wait_for_traces(dash_duo, "forecast-graph", lambda t: {x["name"] for x in t} == expected, timeout=240)
    assert next(x for x in shown if x["name"] == "Forecast")["points"] == 28
    assert "MAPE" in dash_duo.find_element("#forecast-backtest").text.upper()
    assert dash_duo.get_logs() == []
