"""The app shell: navbar, shared filter bar, stores, refresh interval and the page container."""
from __future__ import annotations

import datetime as dt

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from components.ids import Shell

PAGES = [("/", "Overview"), ("/groups", "Group deals"), ("/products", "Products & vendors"),
         ("/customers", "Customers"), ("/forecast", "Forecast"), ("/operations", "Operations")]


def navbar():
    links = [dbc.NavItem(dbc.NavLink(name, href=path, active="exact")) for path, name in PAGES]
    return dbc.Navbar(dbc.Container([
        dbc.NavbarBrand([html.Span("ChipChip", className="brand-a"), html.Span(" Pulse", className="brand-b")],
                        href="/"),
        dbc.Nav(links, navbar=True, className="me-auto"),
        html.Div(id=Shell.UPDATED, className="text-light small"),
    ], fluid=True), color="dark", dark=True, className="mb-3")


def filter_bar(default_start: dt.date, default_end: dt.date):
    return dbc.Card(dbc.CardBody(dbc.Row([
        dbc.Col([dbc.Label("Dates", html_for=Shell.DATES, className="small mb-1"),
                 dcc.DatePickerRange(id=Shell.DATES, start_date=default_start, end_date=default_end,
                                     display_format="YYYY-MM-DD", first_day_of_week=1,
                                     minimum_nights=0, className="d-block")], lg=3),
        dbc.Col([dbc.Label("Vendor", html_for=Shell.VENDOR, className="small mb-1"),
                 dcc.Dropdown(id=Shell.VENDOR, placeholder="All vendors", clearable=True)], lg=3),
        dbc.Col([dbc.Label("Product", html_for=Shell.PRODUCT, className="small mb-1"),
                 dcc.Dropdown(id=Shell.PRODUCT, placeholder="All products", clearable=True)], lg=3),
        dbc.Col([dbc.Label("Category", html_for=Shell.CATEGORY, className="small mb-1"),
                 dcc.Dropdown(id=Shell.CATEGORY, placeholder="All categories", clearable=True)], lg=3),
    ], className="g-2")), className="mb-3 filter-bar")


def shell(default_start: dt.date, default_end: dt.date, refresh_ms: int):
    return html.Div([
        dcc.Location(id=Shell.URL),
        dcc.Store(id=Shell.FILTERS, storage_type="session"),
        dcc.Store(id=Shell.VERSION),
        dcc.Interval(id=Shell.INTERVAL, interval=refresh_ms, n_intervals=0),
        navbar(),
        dbc.Container([
            html.Div(id=Shell.BANNER),
            filter_bar(default_start, default_end),
            html.Div(id=Shell.FILTER_MESSAGE),
            dash.page_container,
        ], fluid=True, className="pb-4"),
    ])
