"""Overview page: KPI cards with deltas, revenue/orders trend, metric comparison."""
from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html
from plotly.subplots import make_subplots

from components import widgets
from components.ids import Overview, Shell

METRICS = {  # key -> (label, kind)
    "revenue": ("Revenue", "etb"),
    "completed_orders": ("Completed orders", "count"),
    "deal_conversion_rate": ("Deal conversion", "rate"),
    "group_success_rate": ("Group success", "rate"),
    "participation_rate": ("Participation", "rate"),
    "aov": ("Avg order value", "etb"),
    "refund_total": ("Refunds", "etb"),
    "active_groups": ("Active groups", "count"),
}
COMPARABLE = ["revenue", "completed_orders", "deal_conversion_rate", "participation_rate", "aov", "refund_total"]


def layout(**_query):
    return html.Div([
        html.Div(id=Overview.MESSAGE),
        dbc.Row(id=Overview.KPIS, className="g-3 mb-3"),
        dbc.Row([
            widgets.section("Revenue and completed orders per day", widgets.graph(Overview.TREND)),
            widgets.section("Compare metrics", dcc.Dropdown(
                id=Shell.METRICS, multi=True, value=["revenue", "completed_orders"],
                options=[{"label": METRICS[k][0], "value": k} for k in COMPARABLE], className="mb-2"),
                widgets.graph(Overview.COMPARE)),
        ]),
    ])


def kpi_cards(current: dict, previous: dict | None) -> list:
    cols = []
    for key, (label, kind) in METRICS.items():
        if key not in current:
            continue
        if key == "active_groups":
            delta = ("live, right now", "text-muted")
        else:
            delta = widgets.delta_text(current[key], (previous or {}).get(key)) if previous is not None else None
        cols.append(dbc.Col(widgets.kpi_card(label, widgets.fmt_value(current[key], kind), delta, name=key),
                            xs=6, md=3, xl=True))
    return cols


def trend_figure(daily: pd.DataFrame) -> go.Figure:
    if daily.empty:
        return widgets.empty_figure()
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=daily["day"], y=daily["revenue"], name="Revenue (ETB)", marker_color=widgets.PALETTE[0],
                hovertemplate="ETB %{y:,.0f}")
    fig.add_scatter(x=daily["day"], y=daily["orders"], name="Completed orders", mode="lines",
                    line={"color": widgets.PALETTE[1], "width": 2}, secondary_y=True)
    fig.update_yaxes(title_text="Revenue (ETB)", secondary_y=False, tickformat=",.0f", rangemode="tozero")
    fig.update_yaxes(title_text="Orders", secondary_y=True, showgrid=False, rangemode="tozero", tickformat=",d",
                     tickmode="auto", nticks=6)
    return widgets.style_figure(fig)


def comparison_figure(series: pd.DataFrame, metrics: list[str]) -> go.Figure:
    """One trace per metric, each indexed to its own mean (=100) so different units share an axis."""
    if series.empty or not metrics:
        return widgets.empty_figure(widgets.NO_DATA if series.empty else "Pick at least one metric")
    fig = go.Figure()
    for key in metrics:
        if key not in series:
            continue
        y = series[key].astype(float)
        base = y.mean()
        idx = y / base * 100 if base and base == base else y * float("nan")
        label, kind = METRICS[key]
        fig.add_scatter(x=series["period_start"], y=idx, name=label, mode="lines+markers",
                        customdata=[widgets.fmt_value(v, kind) for v in y],
                        hovertemplate=f"{label}: %{{customdata}} (index %{{y:.0f}})<extra></extra>")
    fig.update_yaxes(title_text="Index (period mean = 100)")
    return widgets.style_figure(fig)
