"""Audit hooks the browser calls. DataTable CSV exports happen in the browser, so the server
never sees them: assets/audit_export.js reports each click on an Export button here, and the
route records who exported which table, and when (pulse_audit_log)."""
from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

MAX_TABLE_ID = 200


def init_audit_routes(server) -> None:
    """Register POST /audit/export. Needs init_auth first (it provides the audit writer and the
    login guard: unauthenticated POSTs get 401 before reaching the route)."""
    audit = server.extensions["pulse_audit"]

    @server.route("/audit/export", methods=["POST"])
    def audit_export():
        # JSON only: a cross-site form cannot send it without a CORS preflight we never grant.
        body = request.get_json(silent=True)
        table = body.get("table") if isinstance(body, dict) else None
        if not isinstance(table, str) or not 0 < len(table) <= MAX_TABLE_ID or not table.isprintable():
            return jsonify(error="expected JSON {\"table\": \"<table id>\"}"), 400
        user = current_user.id if current_user.is_authenticated else None
        audit(user, "export", table)
        return "", 204
