"""Products & vendors page: share heatmap / category correlation, group vs individual bars,
category growth."""
from __future__ import annotations


from dash import Input, Output

from analytics.growth import category_growth
from analytics.shares import category_correlation, vendor_share_matrix
from callbacks.common import cached_output, figure_message, guarded, page_inputs, services
from components import products as view
from components.ids import Products, Shell
from data_access import breakdowns


def register(app):
    svc = services(app)

    @app.callback(Output(Products.HEATMAP, "figure"), Input(Shell.FILTERS, "data"),
                  Input(Shell.VERSION, "data"), Input(Products.HEATMAP_MODE, "value"))
    @guarded(1, 0, figure_message)
    @cached_output(svc)
    def update_heatmap(filters_data, version, mode):
        p = page_inputs(svc, filters_data, version)
        tz, window, filters, scope = p.tz, p.window, p.filters, p.scope
        if scope.vendor_id is not None:  # a vendor's share of a category would need the others' numbers
            mode = "correlation"
        if mode == "correlation":
            daily = svc.query(breakdowns.category_daily_revenue, scope, version, window=window, filters=filters, tz=tz)
            return view.correlation_heatmap(category_correlation(daily))
        cells = svc.query(breakdowns.vendor_category_revenue, scope, version, window=window, filters=filters, tz=tz)
        return view.share_heatmap(vendor_share_matrix(cells))

    @app.callback(Output(Products.BARS, "figure"), Input(Shell.FILTERS, "data"),
                  Input(Shell.VERSION, "data"), Input(Products.BARS_BY, "value"))
    @guarded(1, 0, figure_message)
    @cached_output(svc)
    def update_bars(filters_data, version, by):
        p = page_inputs(svc, filters_data, version)
        by = by if by in ("category", "month") else "category"
        tz, window, filters = p.tz, p.window, p.filters
        df = svc.query(breakdowns.group_vs_individual, p.scope, version, window=window, by=by,
                       filters=filters, tz=tz)
        return view.grouped_bars(df, by)

    @app.callback(Output(Products.GROWTH, "data"), Output(Products.MESSAGE, "children"),
                  Input(Shell.FILTERS, "data"), Input(Shell.VERSION, "data"), Input(Products.GROWTH_PERIOD, "value"))
    @guarded(2, 1)
    @cached_output(svc)
    def update_growth(filters_data, version, period):
        """Growth of the period ending at the window's end vs the equal period before it."""
        p = page_inputs(svc, filters_data, version)
        period = period if period in ("week", "month") else "week"
        cur, prev = svc.query(breakdowns.category_growth_inputs, p.scope, version, as_of=p.as_of,
                              period=period, filters=p.filters, tz=p.tz)
        return view.growth_rows(category_growth(cur, prev)), None


