"""Customers page: top users (30 days), cohort retention, RFM segments."""
from __future__ import annotations

from dash import Input, Output

from analytics.cohorts import cohort_retention
from analytics.segments import segment_summary
from callbacks.common import cached_output, guarded, page_inputs, services
from components import customers as view
from components.ids import Customers, Shell
from data_access import customers as cq


def register(app):
    svc = services(app)

    @app.callback(Output(Customers.TOP, "data"), Output(Customers.COHORTS, "figure"),
                  Output(Customers.SEGMENTS, "figure"), Output(Customers.SEGMENT_TABLE, "data"),
                  Output(Customers.MESSAGE, "children"),
                  Input(Shell.FILTERS, "data"), Input(Shell.VERSION, "data"))
    @guarded(5, 4)
    @cached_output(svc)
    def update_customers(filters_data, version):
        p = page_inputs(svc, filters_data, version)
        tz, filters, scope, as_of = p.tz, p.filters, p.scope, p.as_of
        top = svc.query(cq.top_users, scope, version, as_of=as_of, n=10, filters=filters, tz=tz)
        activity = svc.query(cq.cohort_activity, scope, version, as_of=as_of, filters=filters, tz=tz)
        rfm = svc.query(cq.user_rfm, scope, version, as_of=as_of, filters=filters, tz=tz)
        segments = segment_summary(rfm)
        cohorts = cohort_retention(activity, as_of, tz)
        cohorts["size"] = activity.set_index("cohort")["size"].reindex(cohorts.index).to_numpy()
        return (view.top_rows(top), view.cohort_heatmap(cohorts),
                view.segment_figure(segments), view.segment_rows(segments), None)
