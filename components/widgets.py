"""Small pure building blocks shared by pages: KPI cards, tables with CSV export, messages."""
from __future__ import annotations

import math

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import dash_table, dcc, html

from components import ids

NO_DATA = "No orders in this selection"
PALETTE = ["#2e7d32", "#f9a825", "#1565c0", "#c62828", "#6a1b9a", "#00838f", "#ef6c00", "#4e342e"]


def fmt_value(value, kind: str) -> str:
    """Format a metric for a card: ETB amounts, counts, rates as percentages, None as 'no data'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no data"
    if kind == "etb":
        return f"ETB {value:,.0f}" if abs(value) < 1e6 else f"ETB {value / 1e6:,.2f}M"
    if kind == "rate":
        return f"{value:.1%}"
    return f"{value:,.0f}"


def delta_text(current, previous) -> tuple[str, str]:
    """('+12.3% vs previous period', css class); no baseline -> a neutral note."""
    if current is None or previous is None or (isinstance(previous, float) and math.isnan(previous)):
        return "no previous data", "text-muted"
    if previous == 0:
        return ("new vs previous period", "text-success") if current else ("flat", "text-muted")
    change = (current - previous) / abs(previous)
    return f"{change:+.1%} vs previous period", ("text-success" if change >= 0 else "text-danger")


def kpi_card(title: str, value: str, delta: tuple[str, str] | None = None, name: str | None = None):
    body = [html.Div(title, className="kpi-title"),
            html.Div(value, className="kpi-value", id=ids.kpi(name) if name else {"type": "kpi-value", "name": title})]
    if delta:
        body.append(html.Div(delta[0], className=f"kpi-delta {delta[1]}"))
    return dbc.Card(dbc.CardBody(body), className="kpi-card h-100")


def message(text: str | None, color: str = "warning"):
    """An inline alert for bad input or an outage; None renders nothing."""
    if not text:
        return None
    return dbc.Alert(text, color=color, className="py-2 mb-2", dismissable=False)


def empty_figure(text: str = NO_DATA) -> go.Figure:
    """A figure that says why it is empty instead of showing blank axes."""
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, font={"size": 16, "color": "#6c757d"},
                       xref="paper", yref="paper", x=0.5, y=0.5)
    fig.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, template="plotly_white",
                      margin={"l": 20, "r": 20, "t": 30, "b": 20}, height=320)
    return fig


def style_figure(fig: go.Figure, height: int = 360, title: str | None = None) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, title=title, colorway=PALETTE,
                      margin={"l": 60, "r": 20, "t": 50 if title else 20, "b": 50},
                      legend={"orientation": "h", "y": -0.2}, hovermode="x unified")
    return fig


def graph(id_, figure=None, height: int = 360):
    return dcc.Loading(dcc.Graph(id=id_, figure=figure or empty_figure("Loading…"),
                                 config={"displaylogo": False}, style={"height": f"{height}px"}),
                       type="dot", delay_show=300)


def data_table(id_, columns: list[dict], page_size: int = 10):
    """A sortable table with CSV export (every table exports)."""
    return dash_table.DataTable(
        id=id_, columns=columns, data=[], page_size=page_size, sort_action="native",
        export_format="csv", export_headers="display",
        style_table={"overflowX": "auto"}, style_as_list_view=True,
        style_header={"fontWeight": "600", "backgroundColor": "#f8f9fa", "fontFamily": "var(--bs-body-font-family)"},
        style_cell={"fontFamily": "var(--bs-body-font-family)", "fontSize": "0.85rem", "padding": "6px 10px",
                    "textAlign": "left", "whiteSpace": "normal", "height": "auto"})


def section(title: str, *children, width: int = 12):
    return dbc.Col(dbc.Card([dbc.CardHeader(title, className="fw-semibold"), dbc.CardBody(list(children))],
                            className="h-100"), lg=width, className="mb-3")
