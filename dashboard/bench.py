"""`python -m dashboard bench`: server-side time of every dashboard callback through the real Dash
app (Flask test client), cold page load, no-new-data refresh, forecast (first fit / cached /
update), ETL throughput and the naive approach on the same data, with p50/p95 and ratios.
"""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import url as sa_url

from dashboard.dash_requests import find_output_key, post
from dashboard.progress import Progress
from dashboard.settings import PROJECT_ROOT, Settings

# page -> [(callback output fragment, extra input values)]; the filters store and the data
# version are filled in for every request.
SCENARIOS = {
    "overview": [("overview-kpis", {}), ("overview-compare", {"metric-select.value": ["revenue", "aov"]})],
    "groups": [("groups-board", {})],
    "products": [("products-heatmap", {"products-heatmap-mode.value": "share"}),
                 ("products-bars", {"products-bars-by.value": "category"}),
                 ("products-growth", {"products-growth-period.value": "week"})],
    "customers": [("customers-top", {})],
    "operations": [("ops-cards", {})],
    "shell": [("filter-vendor.options", {}), ("filter-product.options", {}),
              ("filters-store.data", {})],
}


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered), 2), "p95_ms": round(p95, 2), "n": len(ordered)}


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def _measure(fn, repeat: int, warmup: int = 2, before=None) -> dict:
    for _ in range(warmup):
        if before:
            before()
        fn()
    samples = []
    for _ in range(repeat):
        if before:
            before()
        samples.append(_timed(fn))
    return percentiles(samples)


def prepare_database(scale: float, db: str, url: str | None, seed: int = 7) -> str:
    """Reuse or build a demo database of this scale (SQLite file under data/bench, or a URL)."""
    from data_access.db import init_db, make_engine, source_row_count
    if url is None:
        if db == "postgres":
            from tests.support.pgserver import create_database, start_server
            server = start_server()  # throwaway; lives as long as this process
            url = create_database(server.url, f"bench_{str(scale).replace('.', '_')}")
        else:
            path = PROJECT_ROOT / "data" / "bench" / f"scale_{scale:g}.sqlite"
            url = f"sqlite:///{path}"
    engine = make_engine(url)
    init_db(engine)
    empty = not source_row_count(engine)
    engine.dispose()
    if empty:  # in a child process: the app's peak RSS must not include the generator's
        subprocess.run([sys.executable, "-m", "dashboard", "--database-url", url, "seed", "--scale", str(scale),
                        "--seed", str(seed)], check=True, cwd=PROJECT_ROOT)
    else:  # a database built by an older version: fill tables it does not have yet
        subprocess.run([sys.executable, "-m", "dashboard", "--database-url", url, "etl", "--once"], check=True,
                       cwd=PROJECT_ROOT)
    return url


def run(scale: float = 1.0, db: str = "sqlite", url: str | None = None, repeat: int = 20,
        json_path: str | None = None) -> dict:
    from dashboard.app import create_app
    from data_access.db import make_engine
    from data_access.dialect import utc_to_local_date
    from data_access.filters import Window, newest_order_time
    from data_access import naive

    url = prepare_database(scale, db, url)
    settings = Settings(database_url=url, secret_key="bench", require_login=False, warm_cache=False,
                        statement_timeout_ms=600_000)  # measure the real cost, not a timeout message
    tz = settings.timezone
    results: dict = {"scale": scale, "db": _db_label(db, url), "callbacks": {}, "uncached": {}, "naive": {},
                     "pages": {}}
    bar = Progress(f"bench scale={scale:g} {db}", 1.0)

    # Cold first page load: a new app (empty cache), the shell + the overview's first callbacks.
    app = create_app(settings)
    client = app.server.test_client()
    svc = app.server.extensions["pulse"]
    started = time.perf_counter()
    client.get("/")
    client.get("/_dash-layout")
    client.get("/_dash-dependencies")
    version = json.loads(post(client, app, "data-version-store",
                              {"refresh-interval.n_intervals": 0}).data)["response"]["data-version-store"]["data"]
    with svc.connect() as conn:
        end = utc_to_local_date(newest_order_time(conn), tz)
    filters = {"start": (end - dt.timedelta(days=29)).isoformat(), "end": end.isoformat()}
    base = {"filters-store.data": filters, "data-version-store.data": version,
            "filter-dates.start_date": filters["start"], "filter-dates.end_date": filters["end"]}
    post(client, app, "overview-kpis", base)
    post(client, app, "filter-vendor.options", base)
    results["cold_page_ms"] = round((time.perf_counter() - started) * 1000, 1)
    bar.update(0.1, "cold page")

    results["refresh_no_new_data"] = _measure(lambda: post(
        client, app, "data-version-store", {"refresh-interval.n_intervals": 5, "data-version-store.data": version}),
        repeat)
    for page, scenarios in SCENARIOS.items():
        for fragment, extra in scenarios:
            try:
                find_output_key(app, fragment)
            except KeyError:
                continue
            values = {**base, **extra}
            call = lambda: post(client, app, fragment, values)  # noqa: E731
            results["callbacks"][fragment] = {"page": page, **_measure(call, repeat)}
            results["uncached"][fragment] = {"page": page, **_measure(call, max(5, repeat // 4), 1,
                                                                         before=svc.cache.clear)}
        bar.update(0.1 + 0.4 * (list(SCENARIOS).index(page) + 1) / len(SCENARIOS), page)

    results["forecast"] = _bench_forecast(app, client, base)
    bar.update(0.65, "forecast")

    engine = make_engine(url, statement_timeout_ms=600_000)
    results["queries"] = _bench_queries(engine, tz, repeat)
    bar.update(0.75, "metrics queries")

    window = Window.days(end - dt.timedelta(days=29), end, tz)
    for page, fn in naive.PAGES.items():
        with engine.connect() as conn:
            results["naive"][page] = _measure(lambda: fn(conn, window, tz), max(3, repeat // 4), 1)
    bar.update(0.85, "naive")

    for page in naive.PAGES:
        ours_warm = sum(v["p50_ms"] for v in results["callbacks"].values() if v["page"] == page)
        ours_cold = sum(v["p50_ms"] for v in results["uncached"].values() if v["page"] == page)
        if page == "forecast":
            ours_warm = ours_cold = results["forecast"].get("cached_ms", 0)
        if ours_warm:
            n = results["naive"][page]["p50_ms"]
            results["pages"][page] = {"ours_warm_ms": round(ours_warm, 1), "ours_uncached_ms": round(ours_cold, 1),
                                      "naive_ms": n, "ratio_warm": round(n / ours_warm, 1),
                                      "ratio_uncached": round(n / ours_cold, 1) if ours_cold else None}

    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    bar.update(0.9, "ETL rebuild")
    results.update(_etl_in_child(url, tz))
    bar.close()
    _write_json(results, json_path)
    return results


def _db_label(db: str, url: str) -> str:
    """'sqlite (64 KiB pages)': a file made before large pages reads slower until `compact`."""
    from data_access.sqlite_file import url_page_size
    size = url_page_size(url)
    return f"{db} ({size // 1024} KiB pages)" if size else db


def run_etl(scale: float = 1.0, db: str = "sqlite", url: str | None = None, json_path: str | None = None) -> dict:
    """Only the ETL part of the bench (a full run at scale 10 takes most of an hour)."""
    url = prepare_database(scale, db, url)
    shown = sa_url.make_url(url).render_as_string(hide_password=True)
    results = {"scale": scale, "db": _db_label(db, url), "database": shown,
               **_etl_in_child(url, Settings(database_url=url).timezone)}
    _write_json(results, json_path)
    return results


def _etl_in_child(url: str, tz: str) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:  # its own process, as in production
        rates = pool.apply(_etl_rates, (url, tz))
    return {**rates, "etl_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}


def _write_json(results: dict, json_path: str | None) -> None:
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(results, indent=2))


def _etl_rates(url: str, tz: str) -> dict:
    """Throughput of a full ETL rebuild, then of the incremental path (normal batches) replaying
    the last 30 days of changes, which changes nothing (run in a child process, as in production)."""
    from data_access.db import make_engine
    from data_access.meta import get_meta, set_meta
    from pipeline import etl
    engine = make_engine(url)
    full = etl.rebuild(engine, tz)
    with engine.begin() as conn:
        newest = dt.datetime.fromisoformat(get_meta(conn, etl.WATERMARK_KEY))
        set_meta(conn, etl.WATERMARK_KEY, (newest - dt.timedelta(days=30)).isoformat())
    replay = etl.run_once(engine, tz, own_process=True)  # as `etl --once` / `--follow` run it
    return {"etl_rows_per_s": round(full.rows_per_second), "etl_lines_per_s": round(full.lines / full.seconds),
            "etl_incremental_orders_per_s": round(replay.rows_per_second), "etl_incremental_orders": replay.orders}


def _bench_queries(engine, tz: str, repeat: int) -> dict:
    """Each metrics query of issue #3 straight on data_access (no cache), as of the newest data."""
    from dashboard.bench_queries import busiest_vendor, cases
    from data_access.filters import resolve_as_of
    out = {}
    with engine.connect() as conn:
        as_of = resolve_as_of(conn, "latest", tz, now=dt.datetime(2100, 1, 1))
        for name, fn in cases(conn, as_of, 30, False, busiest_vendor(conn), tz):
            out[name] = _measure(fn, max(3, repeat // 4), 1)
    return out


def _bench_forecast(app, client, base) -> dict:
    forecasts = app.server.extensions.get("pulse_forecasts")
    if forecasts is None:
        return {}
    values = {**base, "forecast-kind.value": "all", "forecast-metric.value": "revenue", "forecast-horizon.value": 28}
    started = time.perf_counter()
    post(client, app, "forecast-graph", values)
    forecasts.wait(timeout=600)
    first = (time.perf_counter() - started) * 1000
    cached = _measure(lambda: post(client, app, "forecast-graph", values), 10)
    import pandas as pd

    from analytics import forecast as fc
    key = "fc:*:all:None:revenue"
    state = forecasts.svc.cache.get(key)
    update_ms = None
    if state is not None:  # one more observed day fed to the fitted model (no order search)
        fitted = state["fitted"]
        new = pd.Series([1.0], index=[pd.Timestamp(fitted.last_day) + pd.Timedelta(days=1)])
        update_ms = round(_timed(lambda: fc.update(fitted, new)), 2)
    return {"first_fit_ms": round(first, 1), "cached_ms": cached["p50_ms"], "cached_p95_ms": cached["p95_ms"],
            "update_one_day_ms": update_ms}


def table(results: dict) -> str:
    lines = [f"scale {results['scale']:g} on {results['db']}",
             f"{'item':<34}{'p50 ms':>10}{'p95 ms':>10}{'uncached p50':>14}{'uncached p95':>14}"]
    for name, v in results["callbacks"].items():
        u = results["uncached"].get(name, {})
        lines.append(f"{name:<34}{v['p50_ms']:>10.1f}{v['p95_ms']:>10.1f}{u.get('p50_ms', 0):>14.1f}"
                     f"{u.get('p95_ms', 0):>14.1f}")
    r = results["refresh_no_new_data"]
    lines.append(f"{'refresh, no new data':<34}{r['p50_ms']:>10.1f}{r['p95_ms']:>10.1f}")
    lines.append(f"{'cold first page load':<34}{results['cold_page_ms']:>10.1f}")
    f = results.get("forecast") or {}
    if f:
        lines.append(f"{'forecast first fit (background)':<34}{f['first_fit_ms']:>10.1f}")
        lines.append(f"{'forecast served from cache':<34}{f['cached_ms']:>10.1f}{f['cached_p95_ms']:>10.1f}")
        lines.append(f"{'forecast update (1 new day)':<34}{f['update_one_day_ms'] or 0:>10.1f}")
    lines += etl_table(results).splitlines()[1:4]
    lines.append(f"{'peak RSS of the app (MB)':<34}{results['peak_rss_mb']:>10.1f}")
    lines.append(f"{'peak RSS of ETL/seed children (MB)':<34}{results.get('etl_peak_rss_mb', 0):>10.1f}")
    lines.append("")
    lines.append(f"{'metrics query (no cache, 30 days)':<34}{'p50 ms':>10}{'p95 ms':>10}")
    for name, v in results.get("queries", {}).items():
        lines.append(f"{name:<34}{v['p50_ms']:>10.1f}{v['p95_ms']:>10.1f}")
    lines.append("")
    lines.append(f"{'page':<14}{'naive p50':>12}{'ours warm':>12}{'ratio':>8}{'ours uncached':>15}{'ratio':>8}")
    for page, v in results["pages"].items():
        lines.append(f"{page:<14}{v['naive_ms']:>12.1f}{v['ours_warm_ms']:>12.1f}{v['ratio_warm']:>8.1f}"
                     f"{v['ours_uncached_ms']:>15.1f}{(v['ratio_uncached'] or 0):>8.1f}")
    return "\n".join(lines)


def etl_table(results: dict) -> str:
    return "\n".join([f"ETL on {results.get('database', results['db'])}",
                      f"{'ETL rebuild (orders/s)':<34}{results['etl_rows_per_s']:>10,}",
                      f"{'ETL rebuild (order lines/s)':<34}{results['etl_lines_per_s']:>10,}",
                      f"{'ETL incremental, 30 days (orders/s)':<34}{results['etl_incremental_orders_per_s']:>10,}",
                      f"{'peak RSS of the ETL process (MB)':<34}{results['etl_peak_rss_mb']:>10.1f}"])
