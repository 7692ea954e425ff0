"""`python -m dashboard COMMAND`: init-db, seed, etl, run, report (see README "CLI reference").

Errors a user can cause (bad arguments, unreachable database, non-empty target) print one line
and exit 2; nothing is half-written.
"""
from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from functools import partial

from dashboard.settings import Settings


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
        return value
    return parse


def _datetime(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from None


class _Parser(argparse.ArgumentParser):
    """Bad arguments print one line (the usage stays in --help), like every other user error."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m dashboard", description="ChipChip Pulse")
    p.add_argument("--database-url", help="overrides DATABASE_URL")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("init-db", help="create missing tables (never alters existing ones)")
    sub.add_parser("compact", help="rewrite the SQLite file defragmented with 64 KiB pages (app and ETL stopped)")
    s = sub.add_parser("seed", help="generate and load demo data")
    s.add_argument("--scale", type=_positive(float), default=None, help="1 = ChipChip's size (default DEMO_SCALE)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--months", type=_positive(int), default=12)
    s.add_argument("--end", type=_datetime, default=None, help="UTC end of the data (default: now)")
    s.add_argument("--force", action="store_true", help="replace existing data")
    s.add_argument("--if-empty", action="store_true", help="do nothing when data exists (make run)")
    e = sub.add_parser("etl", help="incremental ETL into the reporting tables")
    mode = e.add_mutually_exclusive_group(required=True)
    mode.add_argument("--once", action="store_true")
    mode.add_argument("--follow", action="store_true")
    mode.add_argument("--rebuild", action="store_true")
    e.add_argument("--interval", type=_positive(float), default=10.0, help="poll seconds (--follow)")
    e.add_argument("--batch-rows", type=_positive(int), default=None,
                   help="orders per committed batch (--once; default 250,000)")
    r = sub.add_parser("run", help="serve the dashboard (development server)")
    r.add_argument("--host", default="127.0.0.1")
    r.add_argument("--port", type=int, default=8050)
    r.add_argument("--debug", action="store_true")
    _add_pipeline_parsers(sub)
    from dashboard.cli_report import add_report_parser
    from dashboard.cli_users import add_users_parser
    add_report_parser(sub)
    add_users_parser(sub)
    b = sub.add_parser("bench", help="benchmark callbacks, refresh, forecast, ETL and the naive approach")
    b.add_argument("--scale", type=_positive(float), default=1.0)
    b.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    b.add_argument("--bench-url", default=None, help="use this database instead of building one")
    b.add_argument("--repeat", type=_positive(int), default=20)
    b.add_argument("--json", default=None, help="write the results as JSON here")
    b.add_argument("--etl-only", action="store_true", help="only the ETL rebuild and incremental replay")
    return p


def _add_pipeline_parsers(sub) -> None:
    """refunds, sweep, simulate, alerts: the real-time pipeline's one-shot commands."""
    f = sub.add_parser("refunds", help="refund queue; --process runs the refund workers")
    f.add_argument("--process", action="store_true")
    f.add_argument("--workers", type=_positive(int), default=1)
    f.add_argument("--failure-rate", type=float, default=0.0, help="simulated gateway failures (0..1)")
    f.add_argument("--latency-ms", type=float, default=20.0, help="simulated gateway latency")
    f.add_argument("--max-attempts", type=_positive(int), default=3)
    f.add_argument("--batch", type=_positive(int), default=50)
    sub.add_parser("sweep", help="expire overdue groups (with their refunds), flag nearing expiry, detect anomalies")
    m = sub.add_parser("simulate", help="insert live demo traffic through ChipChip's tables")
    m.add_argument("--rate", type=_positive(float), required=True, help="actions per second")
    m.add_argument("--duration", type=_positive(float), default=None, help="seconds (default: until Ctrl-C)")
    m.add_argument("--seed", type=int, default=0)
    a = sub.add_parser("alerts", help="alert log; --evaluate checks the rules once")
    a.add_argument("--evaluate", action="store_true")
    a.add_argument("--rules", default=None, help="rules file (default config/alert_rules.json)")


def _engine(settings: Settings):
    """The CLI runs batch jobs (seed, ETL backfills, sweeps): STATEMENT_TIMEOUT_MS protects the
    dashboard's request path and would cut a scale-10 backfill statement short, so none here."""
    from data_access.db import check_connection, make_engine
    engine = make_engine(settings.database_url, None)
    check_connection(engine)
    return engine


def cmd_init_db(settings, args):
    from data_access.db import init_db
    engine = _engine(settings)
    created = init_db(engine)
    print(f"created {len(created)} tables: {', '.join(created) or '(none, all present)'}")
    from pipeline.group_tracking import install
    print(f"group tracking installed ({install(engine, settings.nearing_expiry_hours):,} groups derived)")


def cmd_compact(settings, args):
    """A SQLite file made before large pages (or fragmented by rebuilds) gets them, rows untouched."""
    from dashboard.progress import Progress
    from data_access.sqlite_file import DatabaseInUse, compact, sqlite_path
    path = sqlite_path(settings.database_url)
    if path is None:
        raise CliError("compact rewrites the SQLite file; PostgreSQL keeps its own 8 KiB pages (VACUUM there)")
    if not path.exists():
        raise CliError(f"no database file at {path}")
    bar = Progress("compact", 1.0)
    try:
        old, new = compact(path, progress=lambda d, t: bar.update(d / max(t, 1), f"{d / 1e6:,.0f} MB written"))
    except DatabaseInUse as exc:
        raise CliError(str(exc)) from None
    bar.close()
    print(f"compacted {path}: pages {old:,} -> {new:,} bytes, {path.stat().st_size / 1e6:,.0f} MB")


def cmd_seed(settings, args):
    from data_access.db import init_db, source_row_count
    from pipeline.demo_data import DemoSpec
    from pipeline.seed import TargetNotEmpty, seed
    engine = _engine(settings)
    if args.if_empty:
        init_db(engine)
        if source_row_count(engine):
            print("database already has data; not seeding")
            return
    spec = DemoSpec(scale=args.scale or settings.demo_scale,
                    seed=settings.demo_seed if args.seed is None else args.seed,
                    months=args.months, end=args.end)
    try:
        out = seed(engine, spec, settings.timezone, force=args.force)
    except TargetNotEmpty as exc:
        raise CliError(str(exc)) from None
    print(f"seeded {out['rows']:,} rows ({out['orders']:,} orders) at scale {spec.scale:g}")


def cmd_etl(settings, args):
    from dashboard.progress import Progress
    from data_access.db import init_db
    from pipeline import etl
    engine = _engine(settings)
    init_db(engine)  # tables added by a newer version (filled by the first run)
    if args.follow:
        from pipeline.follow import follow
        return follow(engine, settings, args.interval)
    bar = Progress("etl", 1.0)
    run = etl.rebuild if args.rebuild else partial(etl.run_once, batch_rows=args.batch_rows, own_process=True)
    res = run(engine, settings.timezone, progress=lambda d, t: bar.update(d / max(t, 1), f"{d:,} orders"))
    bar.close()
    print(f"etl: {res.orders:,} orders, {res.lines:,} lines, {res.quarantined} quarantined, "
          f"{res.batches} batches, {res.rows_per_second:,.0f} orders/s")


def cmd_bench(settings, args):
    from dashboard import bench
    if args.etl_only:
        results = bench.run_etl(args.scale, args.db, args.bench_url, args.json)
        print(bench.etl_table(results))
        return
    results = bench.run(args.scale, args.db, args.bench_url, args.repeat, args.json)
    print(bench.table(results))


def cmd_run(settings, args):
    from dashboard.app import create_app
    app = create_app(settings)
    if settings.is_demo:
        from data_access.db import init_db
        from pipeline import etl
        svc = app.server.extensions["pulse"]
        init_db(svc.engine)
        etl.ensure_per_entity_tables(svc.engine, settings.timezone)  # a demo file from an older version
        _hint_small_pages(settings.database_url)
    if settings.is_demo and settings.require_login:
        from dashboard.auth import ensure_demo_accounts
        for username, password, role in ensure_demo_accounts(svc.engine):
            print(f"demo {role} account: {username} / {password}  (shown once; change with "
                  f"`python -m dashboard users set-password {username}`)", flush=True)
    app.run(host=args.host, port=args.port, debug=args.debug)


def _hint_small_pages(url: str) -> None:
    """A demo file made before large pages works, only slower on cold reads: say how to fix it."""
    from data_access.sqlite_file import PAGE_SIZE, sqlite_path, url_page_size
    size = url_page_size(url)
    if size and size < PAGE_SIZE:
        print(f"note: {sqlite_path(url)} has {size // 1024} KiB pages; with the app stopped, "
              "`python -m dashboard compact` makes cold pages and ETL rebuilds faster", flush=True)


def cmd_refunds(settings, args):
    from data_access.operations import refund_queue
    engine = _engine(settings)
    if args.process:
        from pipeline.refunds import SimulatedGateway, run_workers
        gateway = SimulatedGateway(latency_ms=args.latency_ms, failure_rate=args.failure_rate)
        st = run_workers(engine, gateway, workers=args.workers, batch=args.batch, max_attempts=args.max_attempts)
        print(f"refunds: {st.processed} processed, {st.failed} failed, {st.retried} retries, "
              f"{st.recovered} expired claims recovered, {st.seconds:.1f}s with {args.workers} worker(s)")
    queue = refund_queue(engine)
    print(queue.to_string(index=False) if len(queue) else "refund queue empty")


def cmd_sweep(settings, args):
    from pipeline import anomalies, group_tracking
    engine = _engine(settings)
    r = group_tracking.sweep(engine, settings.nearing_expiry_hours)
    found = anomalies.run(engine, settings.timezone)
    print(f"sweep: {r.refreshed} groups rederived, {r.nearing} nearing expiry, {r.expired} expired, "
          f"{r.refunds} refunds created; {len(found)} anomalies")


def cmd_simulate(settings, args):
    from pipeline.simulate import simulate
    s = simulate(_engine(settings), args.rate, args.duration, args.seed)
    print(f"simulated {s.seconds:.0f}s: {s.groups} groups, {s.joins} joins, {s.completed} completed, "
          f"{s.expired} expired, {s.individual} individual orders, {s.users} new users")


def cmd_alerts(settings, args):
    from data_access.operations import alert_log
    engine = _engine(settings)
    if args.evaluate:
        from pipeline import alerts
        values, sent = alerts.run(engine, settings.timezone, args.rules)
        for k, v in values.items():
            print(f"{k:34} {'no data' if v is None else f'{v:,.3f}'}")
        for a in sent:
            print(f"{a['state'].upper()}: {a['rule']} ({a['severity']}) value {a['value']:.3g}")
    log = alert_log(engine, 20)
    print(log.to_string(index=False) if len(log) else "no alerts fired")


COMMANDS = {"bench": cmd_bench, "init-db": cmd_init_db, "compact": cmd_compact, "seed": cmd_seed, "etl": cmd_etl,
            "run": cmd_run, "refunds": cmd_refunds, "sweep": cmd_sweep, "simulate": cmd_simulate, "alerts": cmd_alerts}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from data_access.db import DatabaseUnavailable
    try:
        settings = Settings.from_env()
        if args.database_url:
            settings = settings.with_(database_url=args.database_url)
        if args.command == "report":
            from dashboard.cli_report import cmd_report
            cmd_report(settings, args, _engine)
        elif args.command == "users":
            from dashboard.cli_users import cmd_users
            cmd_users(settings, args, _engine)
        else:
            COMMANDS[args.command](settings, args)
    except (CliError, DatabaseUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
