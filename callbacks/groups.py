"""Group deals page: live status board, nearing-expiry list, outcomes over time."""
from __future__ import annotations

from dash import Input, Output

from callbacks.common import cached_output, guarded, live_now, page_inputs, services
from components import groups as view
from components.ids import Groups, Shell
from data_access import groups as gq
from data_access import operations, sales


def register(app):
    svc = services(app)

    @app.callback(Output(Groups.BOARD, "children"), Output(Groups.NEARING, "data"),
                  Output(Groups.SERIES, "figure"), Output(Groups.EVENTS, "data"), Output(Groups.MESSAGE, "children"),
                  Input(Shell.FILTERS, "data"), Input(Shell.VERSION, "data"))
    @guarded(5, 4)
    @cached_output(svc)
    def update_groups(filters_data, version):
        p = page_inputs(svc, filters_data, version)
        tz, window, filters, scope, as_of = p.tz, p.window, p.filters, p.scope, p.as_of
        hours = svc.settings.nearing_expiry_hours
        counts = svc.query(gq.group_status_counts, scope, version, window=window, as_of=as_of,
                           nearing_hours=hours, filters=filters, tz=tz)
        now = live_now()  # active and nearing expiry are live; completed/expired belong to the window
        live = svc.query(gq.group_status_counts, scope, version, as_of=now, nearing_hours=hours,
                         filters=filters, tz=tz)
        counts = {**counts, "active": live["active"], "nearing_expiry": live["nearing_expiry"]}
        nearing = svc.query(gq.groups_nearing_expiry, scope, version, as_of=now, nearing_hours=hours,
                            filters=filters, tz=tz)
        days = (window.end - window.start).days
        freq = "day" if days <= 62 else "week" if days <= 370 else "month"
        series = svc.query(gq.group_status_series, scope, version, window=window, as_of=as_of, freq=freq,
                           filters=filters, tz=tz)
        events = svc.query(recent_events, scope, version)
        labels = svc.query(sales.product_options, scope, version)
        start, end = window.local_days(tz)
        note = f"created {start:%d %b} – {end:%d %b %Y}"
        return (view.status_board(counts, note), view.nearing_rows(nearing, tz), view.series_figure(series),
                view.event_rows(events, dict(zip(labels["value"], labels["label"])), tz), None)


def recent_events(conn, scope):
    """The pipeline's latest goal-reached / nearing-expiry / expired events in the caller's scope."""
    return operations.group_events_recent(conn.engine, limit=50, scope=scope)
