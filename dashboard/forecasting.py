"""Forecast models kept per series, fitted off the request path, updated instead of refitted.

A request never waits for an order search: the first request for a series starts a background
fit and gets `Pending`; later requests feed new days to the cached model with `update()` (ms)
and predict. A fresh order search runs at most once a day per series. Models live in the app's
cache (shared by gunicorn workers when the cache is Redis or the file system).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd

from analytics import forecast as fc
from data_access import sales
from data_access.dialect import utc_to_local_date
from data_access.filters import Filters, Scope, Window, newest_order_time

log = logging.getLogger(__name__)
HISTORY_DAYS = 365
REFIT_AFTER = dt.timedelta(days=1)
KINDS = ("all", "category", "vendor", "product")
METRICS = ("revenue", "orders")


@dataclass
class Pending:
    message: str


@dataclass
class ForecastView:
    history: pd.Series
    forecast: pd.DataFrame
    backtest: dict
    order: tuple


def series_history(conn, scope: Scope, kind: str, item: str | None, metric: str, tz: str) -> pd.Series:
    """Up to a year of complete local days (today is partial, so it is left out)."""
    newest = newest_order_time(conn)
    if newest is None:
        return pd.Series(dtype=float)
    last = utc_to_local_date(newest, tz) - dt.timedelta(days=1)
    first = last - dt.timedelta(days=HISTORY_DAYS - 1)
    filters = Filters.of(**{kind: item}) if kind != "all" else Filters()
    df = sales.daily_sales(conn, Window.days(first, last, tz), filters, scope)
    y = fc.daily_series(df, metric, first, last)
    nonzero = y.to_numpy().nonzero()[0]
    return y.iloc[nonzero[0]:] if len(nonzero) else y.iloc[0:0]


class ForecastService:
    def __init__(self, services):
        self.svc = services
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast-fit")
        self.running: dict[str, object] = {}
        self.errors: dict[str, str] = {}
        self.lock = threading.Lock()

    @staticmethod
    def validate(kind, item, metric, horizon) -> tuple[str, str | None, str, int]:
        if kind not in KINDS:
            raise ValueError("Choose what to forecast: all sales, a category, a vendor or a product")
        if metric not in METRICS:
            raise ValueError("Choose revenue or orders")
        if kind != "all" and not (isinstance(item, str) and 0 < len(item) <= 64):
            raise ValueError(f"Choose a {kind} to forecast")
        try:
            horizon = int(horizon)
        except (TypeError, ValueError):
            raise ValueError("The horizon must be a number of days") from None
        if not 7 <= horizon <= 60:
            raise ValueError("The horizon must be between 7 and 60 days")
        return kind, (item if kind != "all" else None), metric, horizon

    def get(self, scope: Scope, kind, item, metric, horizon, version=None):
        kind, item, metric, horizon = self.validate(kind, item, metric, horizon)
        tz = self.svc.settings.timezone
        y = self.svc.query(series_history, scope, version, kind=kind, item=item, metric=metric, tz=tz)
        if y.sum() == 0:
            raise ValueError("No orders in this selection")
        key = f"fc:{scope.key}:{kind}:{item}:{metric}"
        state = self.svc.cache.get(key)
        now = dt.datetime.now(dt.timezone.utc)
        if state is None:
            if key in self.errors:
                raise ValueError(self.errors[key])
            self._start_fit(key, y)
            return Pending("Fitting a model for this series (first fit takes a few seconds)…")
        if now - state["fitted"].searched_at > REFIT_AFTER:
            self._start_fit(key, y)  # the daily search runs in the background; keep serving
        if y.index[-1].date() > state["fitted"].last_day:
            state["fitted"] = fc.update(state["fitted"], y)
            self.svc.cache.set(key, state)
        return ForecastView(y, fc.predict(state["fitted"], horizon), state["backtest"], state["fitted"].order)

    def _start_fit(self, key: str, y: pd.Series) -> None:
        with self.lock:
            if key in self.running:
                return
            self.running[key] = self.pool.submit(self._fit, key, y)

    def _fit(self, key: str, y: pd.Series) -> None:
        try:
            fitted = fc.fit(y)
            state = {"fitted": fitted, "backtest": fc.backtest(y, fitted.order)}
            self.svc.cache.set(key, state, timeout=0)
        except ValueError as exc:
            self.errors[key] = str(exc)
        except Exception:  # noqa: BLE001 - reported to the user as a failed fit
            log.exception("forecast fit failed for %s", key)
            self.errors[key] = "The model could not be fitted for this series"
        finally:
            with self.lock:
                self.running.pop(key, None)

    def wait(self, timeout: float = 120) -> None:
        """Block until running fits finish (benchmarks and tests)."""
        for future in list(self.running.values()):
            future.result(timeout=timeout)
