"""Operations page (managers only): what the data and the pipeline know about delays, refunds,
anomalies and alerts."""
from __future__ import annotations

from dash import Input, Output

from callbacks.common import cached_output, current_scope, guarded, require_version, services
from components import operations as view
from components.ids import Operations, Shell
from data_access import operations as ops


def operations_snapshot(conn, scope, tz: str) -> dict:
    """Everything the page shows, in one cached call (the functions take an engine)."""
    engine = conn.engine
    delay = ops.processing_delay_by_day(engine, tz)
    pending = ops.pending_orders_by_age(engine)
    refunds = ops.refund_queue(engine)
    anomalies = ops.anomalies_list(engine, limit=200)
    alerts = ops.alert_log(engine, limit=100)
    quarantine = ops.quarantine_counts(engine)
    pending_refunds = refunds[refunds["status"].isin(["pending", "processing"])] if len(refunds) else refunds
    summary = {
        "pending_refunds": int(pending_refunds["refunds"].sum()) if len(refunds) else 0,
        "pending_amount": float(pending_refunds["amount"].sum()) if len(refunds) else 0.0,
        "p50_delay": float((delay["p50_hours"] * delay["orders"]).sum() / delay["orders"].sum())
        if len(delay) and delay["orders"].sum() else None,
        "pending_orders": int(pending["orders"].sum()),
        "old_pending": int(pending.iloc[3:]["orders"].sum()) if len(pending) > 3 else 0,  # 1-3 d, > 3 d
        "firing": int((alerts["state"] == "firing").sum()) if len(alerts) else 0,
        "anomalies": len(anomalies),
        "quarantined": int(quarantine["rows"].sum()) if len(quarantine) else 0,
    }
    return {"summary": summary, "delay": delay, "pending": pending, "refunds": refunds,
            "anomalies": anomalies, "alerts": alerts, "quarantine": quarantine}


def register(app):
    svc = services(app)
    outputs = [Output(Operations.CARDS, "children"), Output(Operations.DELAY, "figure"),
               Output(Operations.PENDING, "figure"), Output(Operations.REFUNDS, "data"),
               Output(Operations.ANOMALIES, "data"), Output(Operations.ALERTS, "data"),
               Output(Operations.QUARANTINE, "data"), Output(Operations.MESSAGE, "children")]

    @app.callback(*outputs, Input(Shell.VERSION, "data"))
    @guarded(len(outputs), len(outputs) - 1)
    @cached_output(svc)
    def update_operations(version):
        require_version(version)
        scope = current_scope()
        if scope.vendor_id is not None:
            raise ValueError("The Operations page is for ChipChip managers")
        snap = svc.query(operations_snapshot, scope, version, tz=svc.settings.timezone)
        return (view.cards(snap["summary"]), view.delay_figure(snap["delay"]), view.pending_figure(snap["pending"]),
                view.refund_rows(snap["refunds"]), view.anomaly_rows(snap["anomalies"]),
                view.alert_rows(snap["alerts"]), view.quarantine_rows(snap["quarantine"]), None)
