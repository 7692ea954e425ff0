"""Cache warm-up of the default views after new data (see Services._start_warmup).

It calls the page callbacks exactly as a browser with the default filters would (same inputs,
so the same cache keys), as a manager. Vendors' views are computed on first use.
"""
from __future__ import annotations

import logging

from dashboard.dash_requests import find_output_key

log = logging.getLogger(__name__)
DEFAULT_VALUES = {"metric-select.value": ["revenue", "completed_orders"], "products-heatmap-mode.value": "share",
                  "products-bars-by.value": "category", "products-growth-period.value": "week"}
PAGE_OUTPUTS = ["overview-kpis", "overview-compare", "groups-board", "products-heatmap", "products-bars",
                "products-growth", "customers-top", "ops-cards"]


def warmer(app, default_dates):
    """A callable(version) that renders every page's default view into the cache."""
    def warm(version: int) -> None:
        start, end = default_dates()
        filters = {"start": start.isoformat(), "end": end.isoformat(), "vendor": None, "product": None,
                   "category": None}
        values = {**DEFAULT_VALUES, "filters-store.data": filters, "data-version-store.data": version}
        with app.server.test_request_context():  # no user: the manager's (unscoped) view
            for fragment in PAGE_OUTPUTS:
                try:
                    spec = app.callback_map[find_output_key(app, fragment)]
                except KeyError:
                    continue
                args = [values.get(f"{d['id']}.{d['property']}") for d in spec["inputs"] + spec.get("state", [])]
                spec["callback"].__wrapped__(*args)
    return warm
