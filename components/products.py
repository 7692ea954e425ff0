"""Products & vendors page: vendor x category heatmap (or category correlation), group vs
individual quantities, category growth."""
from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import html

from components import widgets
from components.ids import Products

GROWTH_COLUMNS = [{"name": "Category", "id": "category"}, {"name": "Current (ETB)", "id": "current"},
                  {"name": "Previous (ETB)", "id": "previous"}, {"name": "Growth", "id": "growth_label"}]


def _toggle(id_, options, value):
    return dbc.RadioItems(id=id_, options=[{"label": l, "value": v} for v, l in options], value=value,
                          inline=True, className="mb-2")


def layout(**_query):
    return html.Div([
        html.Div(id=Products.MESSAGE),
        dbc.Row([widgets.section("Revenue share by vendor and category (vendors: category correlation)", _toggle(
            Products.HEATMAP_MODE, [("share", "Vendor share of category revenue"),
                                    ("correlation", "Category correlation (daily revenue)")], "share"),
            widgets.graph(Products.HEATMAP, height=560))]),
        dbc.Row([
            widgets.section("Group vs individual quantities", _toggle(
                Products.BARS_BY, [("category", "By category"), ("month", "By month")], "category"),
                widgets.graph(Products.BARS, height=420), width=7),
            widgets.section("Category sales growth", _toggle(
                Products.GROWTH_PERIOD, [("week", "Last 7 days vs previous 7"), ("month", "Last 30 vs previous 30")],
                "week"), widgets.data_table(Products.GROWTH, GROWTH_COLUMNS, page_size=12), width=5),
        ]),
    ])


def share_heatmap(matrix: pd.DataFrame) -> go.Figure:
    if matrix.empty:
        return widgets.empty_figure()
    z = matrix.to_numpy() * 100
    text = np.where(z >= 0.05, np.char.mod("%.1f%%", z), "")
    fig = go.Figure(go.Heatmap(z=z, x=list(matrix.columns), y=list(matrix.index), text=text,
                               texttemplate="%{text}", colorscale="Greens", zmin=0, zmax=100,
                               colorbar={"title": "% of category"},
                               hovertemplate="%{y} · %{x}: %{z:.1f}% of category revenue<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-30)
    return widgets.style_figure(fig, height=560).update_layout(hovermode="closest")


def correlation_heatmap(corr: pd.DataFrame) -> go.Figure:
    if corr.empty:
        return widgets.empty_figure()
    fig = go.Figure(go.Heatmap(z=corr.to_numpy(), x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1,
                               colorscale="RdBu", text=np.char.mod("%.2f", corr.to_numpy()), texttemplate="%{text}",
                               colorbar={"title": "Pearson r"},
                               hovertemplate="%{y} vs %{x}: r = %{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(tickangle=-30)
    return widgets.style_figure(fig, height=560).update_layout(hovermode="closest")


def grouped_bars(df: pd.DataFrame, by: str) -> go.Figure:
    if df.empty:
        return widgets.empty_figure()
    fig = go.Figure()
    fig.add_bar(x=df["key"], y=df["group_quantity"], name="Group deals", marker_color=widgets.PALETTE[0])
    fig.add_bar(x=df["key"], y=df["individual_quantity"], name="Individual", marker_color=widgets.PALETTE[1])
    fig.update_layout(barmode="group")
    # Vegetable and Fruit outsell the rest by orders of magnitude: a log axis keeps all readable.
    fig.update_yaxes(title_text="Quantity (units, log scale)", type="log", tickformat=",d")
    fig.update_xaxes(tickangle=-30 if by == "category" else 0, automargin=True)
    return widgets.style_figure(fig, height=420).update_layout(margin={"b": 110}, legend={"y": -0.35})


def growth_rows(df: pd.DataFrame) -> list[dict]:
    if df.empty:
        return []
    def label(row):
        if row["growth"] == "new":
            return "new"
        if row["growth"] is None or pd.isna(row["growth"]):
            return "no sales"
        return f"{float(row['growth']):+.1%}"
    out = df.assign(growth_label=df.apply(label, axis=1),
                    current=df["current"].map(lambda v: f"{v:,.0f}"), previous=df["previous"].map(lambda v: f"{v:,.0f}"))
    return out[["category", "current", "previous", "growth_label"]].to_dict("records")
