"""What every page callback shares: services lookup, scope, input parsing, error containment."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
import functools
import hashlib
import json
import logging

import plotly.graph_objects as go

from dash import no_update
from dash.exceptions import PreventUpdate

from components import widgets
from data_access.db import DatabaseUnavailable
from data_access.filters import MANAGER, Filters, Scope, Window, parse_date
from data_access.services import DB_ERRORS, QueryTimeout, is_statement_timeout

log = logging.getLogger(__name__)
MAX_DAYS = 3 * 366
# Dates outside this range are refused up front: near year 1 or 9999 the UTC conversion
# overflows, which would otherwise surface as a generic error instead of a clear message.
EARLIEST, LATEST = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


def services(app):
    return app.server.extensions["pulse"]


def current_scope() -> Scope:
    """The caller's vendor scope, from the server-side session only (never a callback input)."""
    try:
        from flask_login import current_user
        user = current_user._get_current_object()
    except Exception:  # no login manager (tests of pure callbacks) or outside a request
        return MANAGER
    if getattr(user, "is_authenticated", False) and getattr(user, "role", None) == "vendor":
        return Scope(user.vendor_id)
    return MANAGER


def parse_filters(data, tz: str) -> tuple[Window, Filters]:
    """Window and Filters from the filters store; ValueError with a user-facing message."""
    if not isinstance(data, dict):
        raise ValueError("Choose a date range to see data")
    start, end = parse_date(data.get("start"), "start date"), parse_date(data.get("end"), "end date")
    for day in (start, end):
        if not EARLIEST <= day <= LATEST:
            raise ValueError(f"Choose dates between {EARLIEST} and {LATEST} ({day} is outside)")
    if end < start:
        raise ValueError(f"The end date {end} is before the start date {start}")
    if (end - start).days > MAX_DAYS:
        raise ValueError("Choose a range of at most three years")
    filters = Filters.of(data.get("vendor"), data.get("product"), data.get("category"))
    return Window.days(start, end, tz), filters


def require_version(version) -> int:
    """Pages draw once the first refresh has read the data version (not before and again after)."""
    if version is None:
        raise PreventUpdate
    return version


@dataclass(frozen=True)
class PageInputs:
    """What every filter-driven page callback starts from, validated."""

    tz: str
    window: Window
    filters: Filters
    scope: Scope
    as_of: dt.datetime


def page_inputs(svc, filters_data, version) -> PageInputs:
    """Version known (else no update yet), filters parsed, scope from the session, as-of."""
    require_version(version)
    tz = svc.settings.timezone
    window, filters = parse_filters(filters_data, tz)
    return PageInputs(tz, window, filters, current_scope(), as_of_for(window))


def live_now() -> dt.datetime:
    """'Now' for live counts (active / nearing expiry), to the minute so it can be cached."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, second=0, microsecond=0)


def as_of_for(window: Window) -> dt.datetime:
    """Metrics of a past window are as of its end; of the current one, as of now."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return min(window.end, now)


def figure_message(text: str, _color: str):
    return widgets.empty_figure(text)


def cached_output(svc):
    """Memoize a page callback's rendered outputs by (callback, inputs, caller's scope).

    The data version is one of the inputs, so new data means new entries. Building Plotly
    figures costs tens of ms; a warm page is then a cache lookup. Errors are never cached.
    """
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args):
            raw = f"{fn.__module__}.{fn.__name__}|{current_scope().key}|{json.dumps(args, sort_keys=True, default=str)}"
            key = "out:" + hashlib.sha1(raw.encode()).hexdigest()
            try:
                hit = svc.cache.get(key)
            except Exception:  # noqa: BLE001 - a broken cache only costs time
                hit = None
            if hit is not None:
                return hit
            out = fn(*args)
            out = tuple(o.to_dict() if isinstance(o, go.Figure) else o for o in out) if isinstance(out, tuple) \
                else (out.to_dict() if isinstance(out, go.Figure) else out)
            try:
                svc.cache.set(key, out)
            except Exception:  # noqa: BLE001
                pass
            return out
        return inner
    return wrap


def outage_message(exc: BaseException) -> str:
    """What the page says when the database is down or a statement ran past its timeout."""
    if isinstance(exc, QueryTimeout):
        return str(exc)
    if is_statement_timeout(exc):
        return "The data source took too long for this view — try a shorter date range or fewer filters"
    return "Data source unavailable — these figures could not be refreshed"


def guarded(n_outputs: int, message_at: int, render=widgets.message, on_error: dict | None = None):
    """Contain errors: bad input -> its message; outage -> 'data source unavailable'; a bug ->
    a generic message (logged with its traceback). Never a traceback in the page."""
    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except PreventUpdate:
                raise
            except ValueError as exc:
                text, color = str(exc), "warning"
            except (DatabaseUnavailable, *DB_ERRORS) as exc:  # also errors of direct connections
                text, color = outage_message(exc), "danger"
            except Exception:  # noqa: BLE001 - last line of defence for the page
                log.exception("callback %s failed", fn.__name__)
                text, color = "Something went wrong while computing this view; it has been logged", "danger"
            out = [no_update] * n_outputs
            for index, value in (on_error or {}).items():
                out[index] = value
            out[message_at] = render(text, color)
            return tuple(out) if n_outputs > 1 else out[0]
        return inner
    return wrap
