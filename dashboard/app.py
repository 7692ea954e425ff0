"""The app factory: Flask server + cache + Dash pages + per-page callbacks. Nothing connects here;
the engine is created on the first query."""
from __future__ import annotations

import datetime as dt
import importlib
import logging
import secrets
import time

import dash
from dash import Dash
from flask import Flask, g, request

from dashboard.audit_routes import init_audit_routes
from dashboard.auth import init_auth
from dashboard.settings import PROJECT_ROOT, Settings
from dashboard.warmup import warmer
from data_access.services import Services

PAGE_MODULES = ["overview", "groups", "products", "customers", "forecast", "operations"]
PAGE_META = {"overview": ("/", "Overview"), "groups": ("/groups", "Group deals"),
             "products": ("/products", "Products & vendors"), "customers": ("/customers", "Customers"),
             "forecast": ("/forecast", "Forecast"), "operations": ("/operations", "Operations")}
log = logging.getLogger(__name__)


def _available(kind: str, name: str):
    try:
        return importlib.import_module(f"{kind}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{kind}.{name}":
            return None
        raise


def _default_dates(svc: Services, tz: str) -> tuple[dt.date, dt.date]:
    """Last 30 days up to the newest order's local day (works for live data and old dumps)."""
    from data_access.dialect import utc_to_local_date
    from data_access.filters import newest_order_time
    try:
        with svc.connect() as conn:
            newest = newest_order_time(conn)
    except Exception:
        newest = None
    end = utc_to_local_date(newest, tz) if newest else dt.datetime.now(dt.timezone.utc).date()
    return end - dt.timedelta(days=29), end


def _secret_key(settings: Settings) -> str:
    """Production refuses to start without SECRET_KEY; demo mode keeps a random one on disk so
    sessions survive restarts."""
    if settings.secret_key:
        return settings.secret_key
    if not settings.is_embedded:
        raise RuntimeError("SECRET_KEY must be set when DATABASE_URL points at a production database")
    path = PROJECT_ROOT / "data" / ".demo_secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def create_app(settings: Settings | None = None) -> Dash:
    settings = settings or Settings.from_env()
    server = Flask(__name__)
    server.config["SECRET_KEY"] = _secret_key(settings)
    svc = Services(settings, server)
    server.extensions["pulse"] = svc
    init_auth(server, svc, settings.require_login, settings.secure_cookies)
    init_audit_routes(server)

    app = Dash(__name__, server=server, use_pages=True, pages_folder="", title="ChipChip Pulse",
               assets_folder=str(PROJECT_ROOT / "assets"), suppress_callback_exceptions=True)
    # Bootstrap's CSS is served from assets/ (not a CDN): the dashboard must work offline.
    dash.page_registry.clear()  # the registry is process-wide; each app registers its own pages
    for order, name in enumerate(PAGE_MODULES):
        component = _available("components", name)
        if component is None:
            continue
        path, title = PAGE_META[name]
        dash.register_page(f"pages.{name}", path=path, name=title, title=f"{title} · ChipChip Pulse",
                           order=order, layout=component.layout)

    from components.layout import shell

    def layout():
        start, end = _default_dates(svc, settings.timezone)
        return shell(start, end, int(settings.refresh_interval_seconds * 1000))

    app.layout = layout
    for name in ["shell", *PAGE_MODULES]:
        module = _available("callbacks", name)
        if module is not None:
            module.register(app)
    _instrument(server, svc)
    if settings.warm_cache:
        svc.warmers.append(warmer(app, lambda: _default_dates(svc, settings.timezone)))
    return app


def _instrument(server: Flask, svc: Services) -> None:
    """The server measures its own request latency (shown on Operations, used by alerts)."""
    @server.before_request
    def _start():
        g.pulse_started = time.perf_counter()

    @server.after_request
    def _stop(response):
        started = getattr(g, "pulse_started", None)
        if started is not None and request.path.startswith("/_dash-update-component"):
            body = request.get_json(silent=True) or {}
            output = str(body.get("output", ""))[:120] if isinstance(body, dict) else ""
            svc.record_latency(f"callback:{output}", (time.perf_counter() - started) * 1000)
        return response
