"""Overview: KPI cards with change vs the previous equal period, trend, metric comparison."""
from __future__ import annotations

from dash import Input, Output

from callbacks.common import cached_output, figure_message, guarded, live_now, page_inputs, services
from components import overview as view
from components.ids import Overview, Shell
from data_access import sales
from data_access.groups import group_status_counts
from data_access.metrics import kpi_series, kpi_summary


def overview_kpis(conn, scope, window, as_of, filters, tz):
    """KPI dict for one window (the metrics layer's summary)."""
    return dict(kpi_summary(conn, window, as_of, filters=filters, scope=scope, tz=tz))


def comparison_series(conn, scope, window, as_of, filters, freq, tz):
    return kpi_series(conn, window, as_of, freq=freq, filters=filters, scope=scope, tz=tz)


def register(app):
    svc = services(app)

    @app.callback(Output(Overview.KPIS, "children"), Output(Overview.TREND, "figure"),
                  Output(Overview.MESSAGE, "children"),
                  Input(Shell.FILTERS, "data"), Input(Shell.VERSION, "data"))
    @guarded(3, 2)
    @cached_output(svc)
    def update_overview(filters_data, version):
        p = page_inputs(svc, filters_data, version)
        window, filters, scope, as_of = p.window, p.filters, p.scope, p.as_of
        hours = svc.settings.nearing_expiry_hours
        kw = dict(filters=filters, tz=svc.settings.timezone)
        current = svc.query(overview_kpis, scope, version, window=window, as_of=as_of, **kw)
        prev_window = window.previous()
        previous = svc.query(overview_kpis, scope, version, window=prev_window, as_of=prev_window.end, **kw)
        live = svc.query(group_status_counts, scope, version, as_of=live_now(), nearing_hours=hours, **kw)
        current = {**current, "active_groups": live["active"]}  # live: no previous-period delta
        daily = svc.query(sales.daily_sales, scope, version, window=window, filters=filters)
        return view.kpi_cards(current, previous), view.trend_figure(daily), None

    @app.callback(Output(Overview.COMPARE, "figure"), Input(Shell.FILTERS, "data"),
                  Input(Shell.VERSION, "data"), Input(Shell.METRICS, "value"))
    @guarded(1, 0, figure_message)
    @cached_output(svc)
    def update_comparison(filters_data, version, metrics):
        p = page_inputs(svc, filters_data, version)
        window, filters = p.window, p.filters
        metrics = [m for m in (metrics or []) if m in view.COMPARABLE]
        days = (window.end - window.start).days
        freq = "day" if days <= 62 else "week" if days <= 370 else "month"
        series = svc.query(comparison_series, p.scope, version, window=window, as_of=p.as_of, filters=filters,
                           freq=freq, tz=p.tz)
        return view.comparison_figure(series, metrics)
