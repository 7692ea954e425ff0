"""Time every metrics query against DATABASE_URL: median of N runs after one warm-up run.

    DATABASE_URL=sqlite:////tmp/x.sqlite .venv/bin/python scripts/time_metrics.py [--as-of latest]
        [--days 30] [--repeat 5] [--long]

--long adds 365-day windows (a whole year at once). Prints one row per function: median, min
and max wall milliseconds, plus process CPU ms (meaningful for SQLite, which runs in-process).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.bench_queries import busiest_vendor, cases  # noqa: E402
from data_access.db import make_engine  # noqa: E402
from data_access.filters import resolve_as_of  # noqa: E402

TZ = os.environ.get("TIMEZONE", "Africa/Addis_Ababa")


def measure(fn, repeat: int) -> tuple[list[float], list[float]]:
    fn()  # warm-up: caches, prepared plans
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return wall, cpu


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    p.add_argument("--as-of", default="latest")
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--long", action="store_true")
    p.add_argument("--only", default=None, help="substring of the case names to run")
    p.add_argument("--no-jit", action="store_true", help="PostgreSQL: SET jit = off on every connection")
    args = p.parse_args(argv)
    if not args.database_url:
        p.error("set DATABASE_URL or --database-url")
    engine = make_engine(args.database_url)
    if args.no_jit and engine.dialect.name == "postgresql":
        import sqlalchemy as sa

        @sa.event.listens_for(engine, "connect")
        def _no_jit(dbapi_conn, _record):
            with dbapi_conn.cursor() as cur:
                cur.execute("SET jit = off")
    with engine.connect() as conn:
        as_of = resolve_as_of(conn, args.as_of, TZ, now=dt.datetime(2100, 1, 1))
        vendor = busiest_vendor(conn)
        jit = conn.exec_driver_sql("SHOW jit").scalar() if engine.dialect.name == "postgresql" else "-"
        print(f"{engine.url.render_as_string()}  jit={jit}  as_of={as_of:%Y-%m-%d %H:%M} UTC  window={args.days} d  "
              f"median of {args.repeat} after 1 warm-up")
        print(f"{'function':34} {'median ms':>10} {'min':>8} {'max':>8} {'cpu ms':>8}")
        for name, fn in cases(conn, as_of, args.days, args.long, vendor, TZ):
            if args.only and args.only not in name:
                continue
            wall, cpu = measure(fn, args.repeat)
            print(f"{name:34} {statistics.median(wall):10.1f} {min(wall):8.1f} {max(wall):8.1f} "
                  f"{statistics.median(cpu):8.1f}", flush=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
