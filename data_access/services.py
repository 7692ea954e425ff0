"""Per-app data services: a lazily created engine, the data version, and cached queries.

Caching wraps data_access functions, keyed by function, arguments, data version and the
caller's vendor scope (passed in explicitly: a cached function never reads the session).
When the database is down, the last version's cached results keep the pages alive and
`stale_since` tells the UI to say so.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time

import sqlalchemy as sa
from flask_caching import Cache

from data_access.db import DatabaseUnavailable, make_engine
from data_access.dialect import to_utc_naive
from data_access.filters import Scope
from data_access.meta import DATA_VERSION_KEY

log = logging.getLogger(__name__)
DB_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, DatabaseUnavailable)
LAST_OK_KEY = "meta:last_ok"  # (version, time): shared by all workers when the cache is Redis


class QueryTimeout(DatabaseUnavailable):
    """One statement ran past statement_timeout_ms: that view is too heavy, the source is up."""


def is_statement_timeout(exc: BaseException) -> bool:
    """PostgreSQL cancelled the statement (SQLSTATE 57014, raised by statement_timeout)."""
    return getattr(getattr(exc, "orig", None), "pgcode", None) == "57014"


def cache_config(settings) -> dict:
    if settings.cache_type == "RedisCache" and settings.cache_redis_url:
        # short socket timeouts: a hung Redis costs one wait, then ResilientCache skips it
        return {"CACHE_TYPE": "RedisCache", "CACHE_REDIS_URL": settings.cache_redis_url,
                "CACHE_DEFAULT_TIMEOUT": settings.cache_timeout_seconds, "CACHE_KEY_PREFIX": "pulse:",
                "CACHE_OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2}}
    if settings.cache_type == "FileSystemCache":
        return {"CACHE_TYPE": "FileSystemCache", "CACHE_DIR": settings.cache_dir or "data/cache",
                "CACHE_DEFAULT_TIMEOUT": settings.cache_timeout_seconds, "CACHE_THRESHOLD": 5000}
    return {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": settings.cache_timeout_seconds,
            "CACHE_THRESHOLD": 2000}


class ResilientCache:
    """The app's cache, where an unreachable or hung backend (Redis) means misses, never an
    error: after a connection failure the cache is skipped for RETRY_AFTER seconds, so a page
    pays at most one socket timeout instead of one per cache call. Every user of svc.cache
    (queries, page outputs, forecast models) gets this."""

    RETRY_AFTER = 10.0

    def __init__(self, cache: Cache):
        self.backend = cache
        self._down_until = 0.0

    def _call(self, default, method: str, *args, **kwargs):
        if time.monotonic() < self._down_until:
            return default
        try:
            return getattr(self.backend, method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a cache problem must never fail a page
            if _is_connection_error(exc):
                self._down_until = time.monotonic() + self.RETRY_AFTER
                log.warning("cache unavailable, skipping it for %.0f s: %s", self.RETRY_AFTER, exc)
            else:
                log.warning("cache %s failed: %s", method, exc)
            return default

    def get(self, key):
        return self._call(None, "get", key)

    def set(self, key, value, timeout=None):
        return self._call(False, "set", key, value, timeout=timeout)

    def delete(self, key):
        return self._call(False, "delete", key)

    def clear(self):
        return self._call(False, "clear")

    def __getattr__(self, name):  # anything else (e.g. .cache, the backend object) as is
        return getattr(self.backend, name)


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, (OSError, TimeoutError)) or type(exc).__module__.startswith("redis")


class Services:
    def __init__(self, settings, server=None):
        self.settings = settings
        backend = Cache(config=cache_config(settings))
        if server is not None:
            backend.init_app(server)
        self.cache = ResilientCache(backend)
        self._engine = None
        self._lock = threading.Lock()
        self.last_version: int | None = None
        self.last_ok_at: dt.datetime | None = None
        self.stale_since: dt.datetime | None = None
        self._shared_at = float("-inf")
        self.auto_etl = settings.is_embedded
        self.warmers: list = []  # callables(version), registered by the app factory
        self._warming = threading.Lock()
        self.latency = LatencyLog()
        self._flushed_at = time.time()

    def record_latency(self, path: str, ms: float) -> None:
        """Keep in memory; persist in batches (every 30 s) for the latency alert, never per request."""
        self.latency.add(path, ms)
        if time.time() - self._flushed_at >= 30:
            self.flush_latency()

    def flush_latency(self) -> None:
        from data_access.pipeline_tables import request_metrics
        self._flushed_at = time.time()
        rows = self.latency.drain()
        if not rows:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(request_metrics), [
                    {"path": p[:200], "ms": ms, "at": dt.datetime.fromtimestamp(t, dt.timezone.utc).replace(tzinfo=None)}
                    for t, p, ms in rows])
        except Exception as exc:  # metrics are best effort: never fail a request for them
            log.debug("could not persist request metrics: %s", exc)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = make_engine(self.settings.database_url, self.settings.statement_timeout_ms)
        return self._engine

    def connect(self):
        return self.engine.connect()

    # -- data version -------------------------------------------------------------------------
    def _read_version(self) -> int:
        """One cheap query. In embedded mode, source rows newer than the ETL watermark are
        folded in first (incremental ETL), so the demo stays live without a separate process."""
        from data_access.dialect import project_table
        with self.connect() as conn:
            meta = project_table(conn, "pulse_meta")
            row = conn.execute(sa.text(
                f"SELECT (SELECT value FROM {meta} WHERE key = :v), (SELECT value FROM {meta} WHERE key = :w), "
                f"(SELECT MAX(updated_at) FROM orders)"), {"v": DATA_VERSION_KEY, "w": "etl_watermark"}).one()
        version, watermark, newest = row
        if self.auto_etl and newest is not None and (watermark is None or _ts(newest) > _ts(watermark)):
            from pipeline import etl
            with self._lock:
                etl.run_once(self.engine, self.settings.timezone)
            return self._read_version()
        return int(version or 0)

    def version(self) -> int:
        """Current data version; on a database error, the last one seen (and mark stale).

        The last good (version, time) is also kept in the cache, so a worker that never reached
        the database (started during the outage) still knows what the shared cache holds.
        """
        try:
            v = self._read_version()
        except DB_ERRORS as exc:
            if self.stale_since is None:
                self.stale_since = dt.datetime.now(dt.timezone.utc)
                log.warning("data source unavailable: %s", str(exc).splitlines()[0])
            if self.last_version is None:
                shared = self._cache_get(LAST_OK_KEY)
                if not shared:
                    raise DatabaseUnavailable("the data source is unavailable") from None
                self.last_version, self.last_ok_at = shared
            return self.last_version
        now = dt.datetime.now(dt.timezone.utc)
        changed = v != self.last_version
        if changed or time.monotonic() - self._shared_at > 30:  # at most one write per 30 s
            self._cache_set(LAST_OK_KEY, (v, now))
            self._shared_at = time.monotonic()
        self.last_version, self.stale_since, self.last_ok_at = v, None, now
        if changed:
            self._start_warmup(v)
        return v

    def _start_warmup(self, version: int) -> None:
        """New data: recompute the default views in the background, so the first person to look
        (or the wall screen's next refresh) is served from the cache instead of waiting."""
        if not self.warmers or not self._warming.acquire(blocking=False):
            return

        def run():
            try:
                for warm in self.warmers:
                    warm(version)
            except Exception as exc:  # noqa: BLE001 - warming is an optimisation only
                log.warning("cache warm-up failed: %s", exc)
            finally:
                self._warming.release()
        threading.Thread(target=run, name="cache-warmup", daemon=True).start()

    def _cache_get(self, key):
        try:
            return self.cache.get(key)
        except Exception as exc:  # noqa: BLE001 - e.g. Redis down: behave as a miss
            log.warning("cache unavailable: %s", exc)
            return None

    def _cache_set(self, key, value) -> None:
        try:
            self.cache.set(key, value)
        except Exception as exc:  # noqa: BLE001
            log.warning("cache unavailable: %s", exc)

    def _checked_version(self, version) -> int:
        """A data version sent by the browser: an int no newer than the data. A forged future
        version would otherwise cache today's numbers under tomorrow's key."""
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise ValueError("The page's data version is invalid; reload the page")
        if (self.last_version is None or version > self.last_version) and version > self.version():
            raise ValueError("The page is ahead of the data source; reload the page")
        return version

    # -- cached queries -----------------------------------------------------------------------
    def query(self, fn, scope: Scope, version: int | None = None, **kwargs):
        """fn(conn, scope=scope, **kwargs), cached by (fn, kwargs, data version, scope)."""
        version = self.version() if version is None else self._checked_version(version)
        raw = f"{fn.__module__}.{fn.__qualname__}|v{version}|s:{scope.key}|{sorted(kwargs.items())!r}"
        key = "q:" + hashlib.sha1(raw.encode()).hexdigest()
        try:
            hit = self.cache.get(key)
        except Exception as exc:  # e.g. Redis down: compute instead of failing the page
            log.warning("cache unavailable: %s", exc)
            hit = None
        if hit is not None:
            return hit
        if self.stale_since is not None:
            raise DatabaseUnavailable("the data source is unavailable and this view is not cached")
        started = time.perf_counter()
        try:
            with self.connect() as conn:
                result = fn(conn, scope=scope, **kwargs)
        except DB_ERRORS as exc:
            if is_statement_timeout(exc):  # this view is too heavy; the source itself is fine
                limit = self.settings.statement_timeout_ms / 1000
                raise QueryTimeout(f"The data source took longer than {limit:g} s for this view — "
                                   "try a shorter date range or fewer filters") from None
            self.stale_since = self.stale_since or dt.datetime.now(dt.timezone.utc)
            raise DatabaseUnavailable("the data source is unavailable") from None
        log.debug("%s took %.1f ms", fn.__qualname__, (time.perf_counter() - started) * 1000)
        try:
            self.cache.set(key, result)
        except Exception as exc:
            log.warning("cache unavailable: %s", exc)
        return result


def _ts(value) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return to_utc_naive(value)


class LatencyLog:
    """Request latencies waiting to be persisted (bounded: if the database is down for long,
    the oldest samples are dropped rather than growing memory)."""

    def __init__(self, size: int = 5000):
        from collections import deque
        self.unsaved = deque(maxlen=size)

    def add(self, path: str, ms: float) -> None:
        self.unsaved.append((time.time(), path, ms))

    def drain(self) -> list:
        rows = list(self.unsaved)
        self.unsaved.clear()
        return rows
