"""Group deals page: live status board, nearing-expiry list, outcomes over time."""
from __future__ import annotations

from dash import Input, Output

from callbacks.common import (as_of_for, cached_output, current_scope, guarded, parse_filters,
                              require_version, services)
from components import groups as view
from components.ids import Groups, Shell
from data_access import groups as gq


def register(app):
    svc = services(app)

    @app.callback(Output(Groups.BOARD, "children"), Output(Groups.NEARING, "data"),
                  Output(Groups.SERIES, "figure"), Output(Groups.MESSAGE, "children"),
                  Input(Shell.FILTERS, "data"), Input(Shell.VERSION, "data"))
    @guarded(4, 3)
    @cached_output(svc)
    def update_groups(filters_data, version):
        require_version(version)
        tz = svc.settings.timezone
        window, filters = parse_filters(filters_data, tz)
        scope, as_of = current_scope(), as_of_for(window)
        hours = svc.settings.nearing_expiry_hours
        counts = svc.query(gq.group_status_counts, scope, version, window=window, as_of=as_of,
                           nearing_hours=hours, filters=filters, tz=tz)
        nearing = svc.query(gq.groups_nearing_expiry, scope, version, as_of=as_of, nearing_hours=hours,
                            filters=filters, tz=tz)
        days = (window.end - window.start).days
        freq = "day" if days <= 62 else "week" if days <= 370 else "month"
        series = svc.query(gq.group_status_series, scope, version, window=window, as_of=as_of, freq=freq,
                           filters=filters, tz=tz)
        start, end = window.local_days(tz)
        note = f"created {start:%d %b} – {end:%d %b %Y}"
        return view.status_board(counts, note), view.nearing_rows(nearing, tz), view.series_figure(series), None
