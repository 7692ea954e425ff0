"""Shared filter bar (validated into the filters store), cascading options, interval refresh."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from dash import Input, Output, State, no_update

from callbacks.common import current_scope, guarded, parse_filters, services
from components import widgets
from components.ids import Shell
from data_access import sales
from data_access.db import DatabaseUnavailable
from data_access.filters import Filters


def validate_selection(svc, data: dict) -> dict:
    """Reject unknown ids and a product that is not the chosen vendor's (forged or stale input)."""
    window, filters = parse_filters(data, svc.settings.timezone)
    scope = current_scope()
    if scope.vendor_id is not None and not set(filters.vendor_ids) <= {scope.vendor_id}:
        # another vendor's id (forged): the same answer as a non-existent one, so the reply
        # neither shows that vendor's data nor confirms that the id exists
        raise ValueError("Unknown vendor: it does not exist (or was removed)")
    with svc.connect() as conn:
        for table, values, label in (("vendors", filters.vendor_ids, "vendor"),
                                     ("products", filters.product_ids, "product"),
                                     ("categories", filters.category_ids, "category")):
            if values and len(sales.known_ids(conn, table, values)) != len(values):
                raise ValueError(f"Unknown {label}: it does not exist (or was removed)")
        if filters.product_ids:
            own = svc.query(sales.product_options, scope, vendor_ids=filters.vendor_ids)
            if not set(filters.product_ids) <= set(own["value"]):
                raise ValueError("That product is not sold by the selected vendor")
    return data


def register(app):
    svc = services(app)

    @app.callback(Output(Shell.VENDOR, "options"), Output(Shell.CATEGORY, "options"),
                  Input(Shell.VERSION, "data"))
    def load_options(version):
        scope = current_scope()
        try:
            version = svc.version() if version is None else version  # one version check, not two
            vendors = svc.query(sales.vendor_options, scope, version)
            cats = svc.query(sales.category_options, scope, version)
        except Exception:  # options are best effort; the pages say what is wrong
            return no_update, no_update
        return vendors[["value", "label"]].to_dict("records"), cats[["value", "label"]].to_dict("records")

    @app.callback(Output(Shell.PRODUCT, "options"), Output(Shell.PRODUCT, "value"),
                  Input(Shell.VENDOR, "value"), State(Shell.PRODUCT, "value"))
    def cascade_products(vendor, product):
        """Only the chosen vendor's products; clearing the vendor restores all."""
        try:
            vendor_ids = Filters.of(vendor=vendor).vendor_ids
            opts = svc.query(sales.product_options, current_scope(), vendor_ids=vendor_ids)
        except DatabaseUnavailable:  # outage: keep the list on screen rather than emptying it
            return no_update, no_update
        except Exception:
            return [], None
        options = opts[["value", "label"]].to_dict("records")
        keep = product if product in set(opts["value"]) else None
        return options, keep

    @app.callback(Output(Shell.FILTERS, "data"), Output(Shell.FILTER_MESSAGE, "children"),
                  Input(Shell.DATES, "start_date"), Input(Shell.DATES, "end_date"),
                  Input(Shell.VENDOR, "value"), Input(Shell.PRODUCT, "value"), Input(Shell.CATEGORY, "value"))
    @guarded(2, 1)
    def commit_filters(start, end, vendor, product, category):
        data = {"start": start, "end": end, "vendor": vendor, "product": product, "category": category}
        return validate_selection(svc, data), None

    @app.callback(Output(Shell.VERSION, "data"), Output(Shell.UPDATED, "children"),
                  Output(Shell.BANNER, "children"),
                  Input(Shell.INTERVAL, "n_intervals"), State(Shell.VERSION, "data"),
                  State(Shell.BANNER, "children"))
    def refresh(_n, current, banner_shown):
        """A tick that finds the same data version changes nothing on screen."""
        tz = ZoneInfo(svc.settings.timezone)
        try:
            version = svc.version()
        except Exception:
            return no_update, no_update, widgets.message("Data source unavailable — no data could be loaded yet",
                                                         "danger")
        if svc.stale_since is not None:
            at = svc.last_ok_at.astimezone(tz).strftime("%H:%M") if svc.last_ok_at else "earlier"
            banner = widgets.message(f"Data source unavailable — showing data from {at}", "danger")
            return no_update, no_update, banner
        clear = None if banner_shown else no_update
        if version == current:
            return no_update, no_update, clear
        stamp = f"Updated {dt.datetime.now(tz):%Y-%m-%d %H:%M}"
        return version, stamp, clear

