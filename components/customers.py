"""Customers page: top users (30 days), cohort retention heatmap, RFM segments."""
from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import html

from components import widgets
from components.ids import Customers

TOP_COLUMNS = [{"name": "#", "id": "rank"}, {"name": "Customer", "id": "user_name"},
               {"name": "Revenue (ETB)", "id": "revenue_fmt"}, {"name": "Completed orders", "id": "completed_orders"},
               {"name": "Groups joined", "id": "groups_joined"}, {"name": "Categories", "id": "categories"}]
SEGMENT_COLUMNS = [{"name": "Segment", "id": "segment"}, {"name": "Customers", "id": "users"},
                   {"name": "Revenue (ETB)", "id": "revenue_fmt"}, {"name": "Share of revenue", "id": "share_fmt"}]


def layout(**_query):
    return html.Div([
        html.Div(id=Customers.MESSAGE),
        dbc.Row([widgets.section("Top customers — last 30 days before the end date",
                                 widgets.data_table(Customers.TOP, TOP_COLUMNS))]),
        dbc.Row([
            widgets.section("Monthly cohort retention (share of all signups active in month k)",
                            widgets.graph(Customers.COHORTS, height=420), width=7),
            widgets.section("Customer segments (RFM)", widgets.graph(Customers.SEGMENTS, height=260),
                            widgets.data_table(Customers.SEGMENT_TABLE, SEGMENT_COLUMNS, page_size=6), width=5),
        ]),
    ])


def top_rows(df: pd.DataFrame) -> list[dict]:
    if df.empty:
        return []
    out = df.assign(revenue_fmt=df["revenue"].map(lambda v: f"{v:,.0f}"),
                    user_name=df["user_name"].fillna("(no name)"))
    return out[[c["id"] for c in TOP_COLUMNS]].to_dict("records")


def cohort_heatmap(matrix: pd.DataFrame) -> go.Figure:
    """matrix: index = cohort label, columns = month offsets 0..3 (+ 'size'); NaN = month not over."""
    if matrix.empty:
        return widgets.empty_figure("No signups in this selection")
    months = [c for c in matrix.columns if c != "size"]
    z = matrix[months].to_numpy(dtype=float) * 100
    text = np.where(np.isnan(z), "", np.char.mod("%.0f%%", np.nan_to_num(z)))
    names = [f"{c:%b %Y}" if hasattr(c, "strftime") else str(c) for c in matrix.index]
    labels = [f"{name} (n={int(n):,})" for name, n in zip(names, matrix["size"])] if "size" in matrix else names
    fig = go.Figure(go.Heatmap(z=z, x=[f"Month {m}" for m in months], y=labels, text=text, texttemplate="%{text}",
                               colorscale="Blues", zmin=0, zmax=100, colorbar={"title": "% of cohort"},
                               hoverongaps=False, hovertemplate="%{y}, %{x}: %{z:.1f}%<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return widgets.style_figure(fig, height=420).update_layout(hovermode="closest")


def segment_figure(df: pd.DataFrame) -> go.Figure:
    if df.empty:
        return widgets.empty_figure()
    fig = go.Figure(go.Bar(x=df["users"], y=df["segment"], orientation="h", marker_color=widgets.PALETTE[2],
                           text=df["users"].map(lambda v: f"{v:,}"), textposition="auto"))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(title_text="Customers")
    return widgets.style_figure(fig, height=260).update_layout(hovermode="closest", showlegend=False)


def segment_rows(df: pd.DataFrame) -> list[dict]:
    if df.empty:
        return []
    out = df.assign(revenue_fmt=df["revenue"].map(lambda v: f"{v:,.0f}"),
                    share_fmt=df["revenue_share"].map(lambda v: "" if pd.isna(v) else f"{v:.1%}"))
    return out[["segment", "users", "revenue_fmt", "share_fmt"]].to_dict("records")
