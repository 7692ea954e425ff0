"""Login on the Dash server: Flask-Login sessions, a plain login page, and the request guard.

The vendor scope of every query comes from the account loaded here (server side); callback
inputs can never widen it. Unauthenticated page requests are redirected to /login and Dash
API requests get 401.
"""
from __future__ import annotations

import html
import secrets
import time
from urllib.parse import urlparse

import sqlalchemy as sa
from flask import Response, jsonify, redirect, request
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from data_access import accounts

PUBLIC_PREFIXES = ("/login", "/assets/", "/_favicon.ico", "/healthz")


class Account(UserMixin):
    def __init__(self, row: dict):
        self.id = row["username"]
        self.role = row["role"]
        self.vendor_id = row["vendor_id"]


LOGIN_PAGE = """<!doctype html><html><head><title>Sign in · ChipChip Pulse</title>
<link rel="stylesheet" href="/assets/00-bootstrap.min.css"><link rel="stylesheet" href="/assets/pulse.css"></head>
<body class="d-flex align-items-center" style="min-height:100vh"><main class="container" style="max-width:380px">
<h1 class="h4 mb-3"><span class="brand-a">ChipChip</span> Pulse</h1>{message}
<form method="post" class="card card-body"><input type="hidden" name="next" value="{next}">
<label class="form-label" for="username">Username</label>
<input class="form-control mb-2" id="username" name="username" autocomplete="username" required>
<label class="form-label" for="password">Password</label>
<input class="form-control mb-3" id="password" name="password" type="password" autocomplete="current-password" required>
<button class="btn btn-success" type="submit" id="login-submit">Sign in</button></form></main></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: never an open redirect."""
    if (not isinstance(target, str) or not target.startswith("/") or target.startswith("//")
            or "\\" in target or urlparse(target).netloc):  # browsers read "\\" as "/"
        return "/"
    return target


class FailedLogins:
    """At most 5 failed logins per username and 100 per client address in `window` seconds (in
    memory, per process): slows password guessing without locking an office behind one NAT out."""

    LIMITS = {"user": 5, "ip": 100}

    def __init__(self, window: float = 300.0):
        self.window, self.failures = window, {}

    def _recent(self, key) -> list:
        now = time.monotonic()
        recent = [t for t in self.failures.get(key, []) if now - t < self.window]
        self.failures[key] = recent
        return recent

    def blocked(self, *keys) -> bool:
        return any(len(self._recent(k)) >= self.LIMITS[k.split(":", 1)[0]] for k in keys)

    def add(self, *keys) -> None:
        for k in keys:
            self._recent(k).append(time.monotonic())


def init_auth(server, svc, require_login: bool, secure_cookies: bool = False) -> None:
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_SECURE=secure_cookies, REMEMBER_COOKIE_SECURE=secure_cookies)
    failures = FailedLogins()
    manager = LoginManager()
    manager.init_app(server)

    @manager.user_loader
    def load(username):
        try:
            with svc.connect() as conn:
                row = accounts.get_account(conn, username)
        except sa.exc.SQLAlchemyError:
            return None
        return Account(row) if row and not row["disabled"] else None

    def audit(user, action, detail=""):
        try:
            with svc.engine.begin() as conn:
                accounts.audit(conn, user, action, detail)
        except sa.exc.SQLAlchemyError:
            pass

    server.extensions["pulse_audit"] = audit

    @server.route("/login", methods=["GET", "POST"])
    def login():
        message, nxt = "", _safe_next(request.values.get("next"))
        if request.method == "POST":
            username = (request.form.get("username") or "")[:80]
            keys = (f"user:{username}", f"ip:{request.remote_addr}")
            if failures.blocked(*keys):
                audit(username, "login_blocked", request.remote_addr or "")
                alert = '<div class="alert alert-danger py-2">Too many failed attempts; wait a few minutes.</div>'
                return Response(LOGIN_PAGE.format(message=alert, next=html.escape(nxt)), mimetype="text/html",
                                status=429)
            try:
                with svc.connect() as conn:
                    row = accounts.verify(conn, username, request.form.get("password") or "")
            except sa.exc.SQLAlchemyError:
                row, message = None, "The data source is unavailable; try again shortly."
            if row:
                login_user(Account(row))
                audit(username, "login")
                return redirect(nxt)
            failures.add(*keys)
            audit(username, "login_failed", request.remote_addr or "")
            message = message or "Wrong username or password."
        alert = f'<div class="alert alert-danger py-2">{html.escape(message)}</div>' if message else ""
        return Response(LOGIN_PAGE.format(message=alert, next=html.escape(nxt)), mimetype="text/html")

    @server.route("/logout")
    def logout():
        if current_user.is_authenticated:
            audit(current_user.id, "logout")
        logout_user()
        return redirect("/login")

    @server.route("/healthz")
    def healthz():
        return jsonify(status="ok")

    if not require_login:
        return

    @server.before_request
    def guard():
        if request.path.startswith(PUBLIC_PREFIXES) or current_user.is_authenticated:
            return None
        if request.path.startswith("/_dash") or request.method != "GET":
            return jsonify(error="authentication required"), 401
        return redirect(f"/login?next={request.full_path.rstrip('?')}")


def ensure_demo_accounts(engine) -> list[tuple[str, str, str]]:
    """Demo mode: a manager and a vendor account (the largest vendor), created once.

    Returns (username, password, role) for accounts created now, so they are printed once.
    """
    created = []
    with engine.begin() as conn:
        if accounts.list_accounts(conn):
            return []
        vendor = conn.execute(sa.text(  # the vendor with the widest catalogue: a rich demo view
            "SELECT vendor_id FROM products WHERE deleted_at IS NULL GROUP BY vendor_id "
            "ORDER BY COUNT(*) DESC, vendor_id LIMIT 1")).scalar()
        for username, role, vendor_id in (("manager", "manager", None), ("vendor", "vendor", vendor)):
            if role == "vendor" and vendor_id is None:
                continue
            password = secrets.token_urlsafe(9)
            accounts.add_account(conn, username, password, role, str(vendor_id) if vendor_id else None)
            created.append((username, password, role))
    return created
