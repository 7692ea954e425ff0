"""Forecast page: series picker, horizon, history + forecast with 80/95% bands, backtest."""
from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from components import widgets
from components.ids import Forecast

SHOW_HISTORY_DAYS = 120


def layout(**_query):
    picker = dbc.Row([
        dbc.Col([dbc.Label("Series", className="small mb-1"), dbc.RadioItems(
            id=Forecast.SERIES_KIND, inline=True, value="all",
            options=[{"label": l, "value": v} for v, l in
                     (("all", "All sales"), ("category", "Category"), ("vendor", "Vendor"), ("product", "Product"))])],
            lg=4),
        dbc.Col([dbc.Label("Which", className="small mb-1"),
                 dcc.Dropdown(id=Forecast.SERIES_ITEM, placeholder="(all sales)", disabled=True)], lg=3),
        dbc.Col([dbc.Label("Metric", className="small mb-1"), dbc.RadioItems(
            id=Forecast.METRIC, inline=True, value="revenue",
            options=[{"label": "Revenue", "value": "revenue"}, {"label": "Orders", "value": "orders"}])], lg=2),
        dbc.Col([dbc.Label("Horizon (days)", className="small mb-1"),
                 dcc.Slider(id=Forecast.HORIZON, min=7, max=60, step=1, value=28,
                            marks={7: "7", 14: "14", 28: "28", 42: "42", 60: "60"})], lg=3),
    ], className="g-2")
    return html.Div([
        dbc.Card(dbc.CardBody(picker), className="mb-3"),
        html.Div(id=Forecast.MESSAGE),
        dcc.Interval(id=Forecast.POLL, interval=1500, disabled=True),
        dbc.Row([widgets.section("Daily demand forecast (auto-ARIMA, weekly seasonality)",
                                 widgets.graph(Forecast.GRAPH, height=420), width=9),
                 widgets.section("Backtest (last 4 weeks)", html.Div(id=Forecast.BACKTEST), width=3)]),
    ])


def forecast_figure(history: pd.Series, forecast: pd.DataFrame, metric: str) -> go.Figure:
    hist = history.iloc[-SHOW_HISTORY_DAYS:]
    unit = "ETB" if metric == "revenue" else "orders"
    fig = go.Figure()
    band = [("95% interval", "lo95", "hi95", "rgba(21,101,192,0.12)"),
            ("80% interval", "lo80", "hi80", "rgba(21,101,192,0.25)")]
    x = list(forecast["day"]) + list(forecast["day"][::-1])
    for name, lo, hi, color in band:
        fig.add_scatter(x=x, y=list(forecast[hi]) + list(forecast[lo][::-1]), fill="toself", fillcolor=color,
                        line={"width": 0}, name=name, hoverinfo="skip")
    fig.add_scatter(x=hist.index, y=hist.values, name="History", mode="lines",
                    line={"color": widgets.PALETTE[0], "width": 1.6})
    fig.add_scatter(x=forecast["day"], y=forecast["mean"], name="Forecast", mode="lines",
                    line={"color": widgets.PALETTE[2], "width": 2, "dash": "dash"})
    fig.update_yaxes(title_text=f"Daily {metric} ({unit})", tickformat=",.0f", rangemode="tozero")
    return widgets.style_figure(fig, height=420)


def backtest_panel(bt: dict, order: tuple):
    def pct(v):
        return "n/a" if v is None else f"{v:.1%}"
    better = (bt.get("mape_model") is not None and bt.get("mape_naive") is not None
              and bt["mape_model"] < bt["mape_naive"])
    return html.Div([
        html.Div("MAPE, auto-ARIMA", className="kpi-title"),
        html.Div(pct(bt.get("mape_model")), className="kpi-value"),
        html.Div("MAPE, seasonal naive (same weekday last week)", className="kpi-title mt-3"),
        html.Div(pct(bt.get("mape_naive")), className="kpi-value"),
        html.Div(("The model beats the naive baseline" if better else "The naive baseline is as good or better"),
                 className="small mt-3 " + ("text-success" if better else "text-muted")),
        html.Div(f"ARIMA order {order} + weekly Fourier terms; {bt.get('holdout_days', 0)} held-out days",
                 className="small text-muted mt-2"),
    ])
