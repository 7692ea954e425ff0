"""Operations page: processing delays, pending orders, refunds, anomalies, alerts, quarantine."""
from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import html

from components import widgets
from components.ids import Operations

REFUND_COLUMNS = [{"name": "Status", "id": "status"}, {"name": "Refunds", "id": "refunds"},
                  {"name": "Amount (ETB)", "id": "amount_fmt"}, {"name": "Oldest (hours)", "id": "oldest_fmt"}]
ANOMALY_COLUMNS = [{"name": "Kind", "id": "kind"}, {"name": "Severity", "id": "severity"},
                   {"name": "Observed", "id": "observed_at"}, {"name": "What", "id": "summary"},
                   {"name": "Evidence", "id": "evidence"}]
ALERT_COLUMNS = [{"name": "Fired", "id": "fired_at"}, {"name": "Rule", "id": "rule"},
                 {"name": "Severity", "id": "severity"}, {"name": "State", "id": "state"},
                 {"name": "Value", "id": "value_fmt"}, {"name": "Resolved", "id": "resolved_at"}]
QUARANTINE_COLUMNS = [{"name": "Table", "id": "source_table"}, {"name": "Reason", "id": "reason"},
                      {"name": "Rows", "id": "rows"}, {"name": "Last seen", "id": "last_detected_at"}]


def layout(**_query):
    return html.Div([
        html.Div(id=Operations.MESSAGE),
        dbc.Row(id=Operations.CARDS, className="g-3 mb-3"),
        dbc.Row([widgets.section("Order processing delay (completion − creation), by day",
                                 widgets.graph(Operations.DELAY), width=7),
                 widgets.section("Pending orders by age", widgets.graph(Operations.PENDING), width=5)]),
        dbc.Row([widgets.section("Refund queue", widgets.data_table(Operations.REFUNDS, REFUND_COLUMNS), width=5),
                 widgets.section("Alert log", widgets.data_table(Operations.ALERTS, ALERT_COLUMNS), width=7)]),
        dbc.Row([widgets.section("Anomalies (with evidence)",
                                 widgets.data_table(Operations.ANOMALIES, ANOMALY_COLUMNS, page_size=8))]),
        dbc.Row([widgets.section("Rows the ETL quarantined",
                                 widgets.data_table(Operations.QUARANTINE, QUARANTINE_COLUMNS, page_size=5))]),
    ])


def cards(summary: dict) -> list:
    items = [("Pending refunds", widgets.fmt_value(summary.get("pending_refunds"), "count"),
              f"ETB {summary.get('pending_amount', 0):,.0f} waiting"),
             ("Median processing delay", _hours(summary.get("p50_delay")), "last 30 days"),
             ("Pending orders", widgets.fmt_value(summary.get("pending_orders"), "count"),
              f"{summary.get('old_pending', 0):,} older than a day"),
             ("Firing alerts", widgets.fmt_value(summary.get("firing"), "count"), "now"),
             ("Anomalies", widgets.fmt_value(summary.get("anomalies"), "count"), "detected"),
             ("Quarantined rows", widgets.fmt_value(summary.get("quarantined"), "count"), "refused by the ETL")]
    return [dbc.Col(widgets.kpi_card(t, v, (n, "text-muted"), name=f"ops-{i}"), xs=6, lg=2)
            for i, (t, v, n) in enumerate(items)]


def _hours(h) -> str:
    if h is None or pd.isna(h):
        return "no data"
    return f"{h:.1f} h"


def delay_figure(df: pd.DataFrame) -> go.Figure:
    if df.empty:
        return widgets.empty_figure("No completed orders in the last 30 days")
    fig = go.Figure()
    fig.add_scatter(x=df["day"], y=df["p50_hours"], name="Median", mode="lines+markers")
    fig.add_scatter(x=df["day"], y=df["p90_hours"], name="90th percentile", mode="lines", line={"dash": "dot"})
    fig.update_yaxes(title_text="Hours", rangemode="tozero")
    return widgets.style_figure(fig)


def pending_figure(df: pd.DataFrame) -> go.Figure:
    if df.empty or df["orders"].sum() == 0:
        return widgets.empty_figure("No pending orders")
    fig = go.Figure(go.Bar(x=df["bucket"], y=df["orders"], marker_color=widgets.PALETTE[6],
                           text=df["orders"].map(lambda v: f"{v:,}"), textposition="auto"))
    fig.update_yaxes(title_text="Orders", tickformat=",d")
    return widgets.style_figure(fig).update_layout(hovermode="closest")


def _fmt_ts(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series).dt.strftime("%Y-%m-%d %H:%M UTC").fillna("")


def refund_rows(df: pd.DataFrame) -> list[dict]:
    if df.empty:
        return []
    return df.assign(amount_fmt=df["amount"].map(lambda v: f"{v:,.2f}"),
                     oldest_fmt=df["oldest_age_hours"].map(lambda v: "" if pd.isna(v) else f"{v:,.1f}")
                     ).to_dict("records")


def anomaly_rows(df: pd.DataFrame) -> list[dict]:
    if df.empty:
        return []
    return df.assign(observed_at=_fmt_ts(df["observed_at"]))[[c["id"] for c in ANOMALY_COLUMNS]].to_dict("records")


def alert_rows(df: pd.DataFrame) -> list[dict]:
    if df.empty:
        return []
    return df.assign(fired_at=_fmt_ts(df["fired_at"]), resolved_at=_fmt_ts(df["resolved_at"]),
                     value_fmt=df["value"].map(lambda v: "" if pd.isna(v) else f"{v:,.2f}")
                     )[[c["id"] for c in ALERT_COLUMNS]].to_dict("records")


def quarantine_rows(df: pd.DataFrame) -> list[dict]:
    if df.empty:
        return []
    return df.assign(last_detected_at=_fmt_ts(df["last_detected_at"])).to_dict("records")
