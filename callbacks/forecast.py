"""Forecast page: item options per series kind; forecast served from the cached model."""
from __future__ import annotations

from dash import Input, Output, State, no_update

from callbacks.common import current_scope, figure_message, guarded, require_version, services
from components import forecast as view
from components import widgets
from components.ids import Forecast, Shell
from dashboard.forecasting import ForecastService, ForecastView
from data_access import sales


OPTION_SOURCES = {"category": sales.category_options, "vendor": sales.vendor_options, "product": sales.product_options}


def register(app):
    svc = services(app)
    forecasts = ForecastService(svc)
    app.server.extensions["pulse_forecasts"] = forecasts

    @app.callback(Output(Forecast.SERIES_ITEM, "options"), Output(Forecast.SERIES_ITEM, "value"),
                  Output(Forecast.SERIES_ITEM, "disabled"), Input(Forecast.SERIES_KIND, "value"))
    def item_options(kind):
        source = OPTION_SOURCES.get(kind) if isinstance(kind, str) else None  # forged values too
        if source is None:
            return [], None, True
        try:
            opts = svc.query(source, current_scope())
        except Exception:
            return [], None, False
        return opts[["value", "label"]].to_dict("records"), (opts["value"].iloc[0] if len(opts) else None), False

    @app.callback(Output(Forecast.GRAPH, "figure"), Output(Forecast.BACKTEST, "children"),
                  Output(Forecast.MESSAGE, "children"), Output(Forecast.POLL, "disabled"),
                  Input(Forecast.SERIES_KIND, "value"), Input(Forecast.SERIES_ITEM, "value"),
                  Input(Forecast.METRIC, "value"), Input(Forecast.HORIZON, "value"),
                  Input(Shell.VERSION, "data"), Input(Forecast.POLL, "n_intervals"),
                  State(Forecast.POLL, "disabled"))
    @guarded(4, 0, figure_message, on_error={1: None, 3: True})
    def update_forecast(kind, item, metric, horizon, version, _tick, _poll_disabled):
        require_version(version)
        result = forecasts.get(current_scope(), kind, item, metric, horizon, version)
        if not isinstance(result, ForecastView):
            return widgets.empty_figure(result.message), no_update, None, False
        return (view.forecast_figure(result.history, result.forecast, metric),
                view.backtest_panel(result.backtest, result.order), None, True)
