"""Group deals page: live status board, groups nearing expiry, status over time."""
from __future__ import annotations

import dash_bootstrap_components as dbc
import pandas as pd
import plotly.graph_objects as go
from dash import html

from components import widgets
from components.ids import Groups

STATUSES = [("active", "Active", "#1565c0"), ("nearing_expiry", "Nearing expiry", "#ef6c00"),
            ("completed", "Completed", "#2e7d32"), ("expired", "Expired", "#c62828")]
NEARING_COLUMNS = [{"name": "Product", "id": "product"}, {"name": "Vendor", "id": "vendor"},
                   {"name": "Members / goal", "id": "members_goal"}, {"name": "Time left", "id": "time_left"},
                   {"name": "Deadline (local)", "id": "deadline_local"}]


EVENT_COLUMNS = [{"name": "When (local)", "id": "at_local"}, {"name": "Event", "id": "event"},
                 {"name": "Product — vendor", "id": "product"}, {"name": "Members / goal", "id": "members_goal"}]
EVENT_LABELS = {"goal_reached": "Goal reached", "nearing_expiry": "Nearing expiry", "expired": "Expired"}


def layout(**_query):
    return html.Div([
        html.Div(id=Groups.MESSAGE),
        dbc.Row(id=Groups.BOARD, className="g-3 mb-3"),
        dbc.Row([
            widgets.section("Groups nearing expiry", widgets.data_table(Groups.NEARING, NEARING_COLUMNS), width=6),
            widgets.section("Group outcomes by creation day", widgets.graph(Groups.SERIES), width=6),
        ]),
        dbc.Row([widgets.section("Recent group events (from the pipeline)",
                                 widgets.data_table(Groups.EVENTS, EVENT_COLUMNS, page_size=8))]),
    ])


def status_board(counts: dict, window_note: str) -> list:
    cards = []
    for key, label, color in STATUSES:
        note = "now" if key in ("active", "nearing_expiry") else window_note
        card = dbc.Card(dbc.CardBody([
            html.Div(label, className="kpi-title"),
            html.Div(widgets.fmt_value(counts.get(key), "count"), className="kpi-value", style={"color": color},
                     id={"type": "group-status", "name": key}),
            html.Div(note, className="kpi-delta text-muted")]), className="kpi-card h-100")
        cards.append(dbc.Col(card, xs=6, lg=3))
    return cards


def _time_left(hours: float) -> str:
    minutes = max(0, int(round(hours * 60)))
    return f"{minutes // 60}h {minutes % 60:02d}m"


def nearing_rows(df: pd.DataFrame, tz: str) -> list[dict]:
    if df.empty:
        return []
    deadline = pd.to_datetime(df["deadline"], utc=True).dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M")
    out = pd.DataFrame({"product": df["product"], "vendor": df["vendor"],
                        "members_goal": df["members"].astype(int).astype(str) + " / " + df["goal"].astype(int).astype(str),
                        "time_left": df["hours_left"].map(_time_left), "deadline_local": deadline})
    return out.to_dict("records")


def series_figure(df: pd.DataFrame) -> go.Figure:
    if df.empty:
        return widgets.empty_figure("No groups in this selection")
    fig = go.Figure()
    for key, label, color in STATUSES:
        if key in df and key != "nearing_expiry":
            fig.add_bar(x=df["period_start"], y=df[key], name=label, marker_color=color)
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="Groups", tickformat=",d")
    return widgets.style_figure(fig)


def event_rows(df: pd.DataFrame, product_labels: dict, tz: str) -> list[dict]:
    """Events with names, not ids; local times."""
    if df.empty:
        return []
    at = pd.to_datetime(df["at"], utc=True).dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M")
    return pd.DataFrame({
        "at_local": at, "event": df["kind"].map(EVENT_LABELS).fillna(df["kind"]),
        "product": df["product_id"].astype(str).map(product_labels).fillna("(unknown product)"),
        "members_goal": df["members"].astype(int).astype(str) + " / " + df["goal"].astype(int).astype(str),
    }).to_dict("records")
