"""Bounded load test: N logged-in sessions drive filter callbacks against `gunicorn wsgi:server`.

    python scripts/loadtest.py --duration 60 --sessions 50 --database-url sqlite:////tmp/x.sqlite

What it does, all on 127.0.0.1 and all torn down at the end:
  * a SQLite database is copied first (read-only access to the original: the run writes
    accounts, the audit log and ETL state); a PostgreSQL one is used in place and the
    `loadtest_*` accounts it adds are removed afterwards (their audit rows stay);
  * a throwaway redis-server (no persistence) is the shared cache of the workers;
  * `gunicorn -w WORKERS wsgi:server` runs with SECRET_KEY, login required, CACHE_TYPE=RedisCache;
  * each session logs in (managers and vendors mixed), loads the page, then until the deadline
    changes the filters like a user: filter bar -> overview cards/trend -> comparison, product
    options when the vendor changes, now and then a refresh tick; with think time between
    interactions;
  * reports requests, errors, latency p50/p95/p99 per callback and overall, and the peak RSS of
    each gunicorn worker (sampled from /proc every 0.25 s).

Exit status 0 when there were no errors, 1 otherwise, 2 on a setup failure. `--json` prints the
summary as one JSON line (used by tests/test_load_smoke.py).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from dashboard.dash_requests import body_for_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ERROR_TEXTS = ("Something went wrong", "Data source unavailable", "Traceback", "took longer than")
PREFIX = "loadtest_"


class SetupError(Exception):
    """The environment could not be set up: printed as one message, exit status 2."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- environment: database copy, accounts, redis, gunicorn -----------------------------------

def copy_sqlite(url: str, target_dir: str) -> str:
    """A private copy through the backup API, opening the original read-only."""
    source = url.split("///", 1)[1]
    if not Path(source).exists():
        raise SetupError(f"error: no SQLite database at {source}")
    target = os.path.join(target_dir, "loadtest.sqlite")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    return f"sqlite:///{target}"


def make_accounts(url: str, vendors_wanted: int) -> tuple[list[tuple[str, str, str | None]], str]:
    """A manager and up to `vendors_wanted` vendor accounts (the vendors with most products)."""
    import sqlalchemy as sa

    from data_access import accounts
    from data_access.db import init_db, make_engine
    engine = make_engine(url)
    init_db(engine)  # only adds missing project tables
    password = secrets.token_urlsafe(12)
    made = []
    with engine.begin() as conn:
        remove_accounts_on(conn)
        vendors = [str(v) for v in conn.execute(sa.text(
            "SELECT vendor_id FROM products WHERE deleted_at IS NULL GROUP BY vendor_id "
            "ORDER BY COUNT(*) DESC, vendor_id LIMIT :n"), {"n": vendors_wanted}).scalars()]
        accounts.add_account(conn, f"{PREFIX}manager", password, "manager")
        made.append((f"{PREFIX}manager", "manager", None))
        for i, vendor in enumerate(vendors):
            accounts.add_account(conn, f"{PREFIX}vendor_{i}", password, "vendor", vendor)
            made.append((f"{PREFIX}vendor_{i}", "vendor", vendor))
    engine.dispose()
    return made, password


def remove_accounts_on(conn) -> None:
    import sqlalchemy as sa

    from data_access import accounts
    conn.execute(sa.delete(accounts.accounts).where(accounts.accounts.c.username.like(f"{PREFIX}%")))


def remove_accounts(url: str) -> None:
    from data_access.db import make_engine
    engine = make_engine(url)
    with engine.begin() as conn:
        remove_accounts_on(conn)
    engine.dispose()


class Redis:
    def __init__(self, workdir: str):
        self.dir, self.port = workdir, free_port()
        self.pidfile = os.path.join(workdir, "redis.pid")

    def start(self) -> str:
        binary = shutil.which("redis-server")
        if not binary:
            raise SetupError("error: redis-server not found (Debian package redis-server)")
        subprocess.run([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        "--dir", self.dir, "--daemonize", "yes", "--pidfile", self.pidfile,
                        "--logfile", os.path.join(self.dir, "redis.log")], check=True)
        import redis
        client = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return f"redis://127.0.0.1:{self.port}/0"
            except redis.ConnectionError:
                time.sleep(0.05)
        raise SetupError("error: redis-server did not start")

    def stop(self) -> None:
        try:
            pid = int(Path(self.pidfile).read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            if not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.05)


class Gunicorn:
    def __init__(self, workdir: str, workers: int, threads: int):
        self.port, self.workers, self.threads = free_port(), workers, threads
        self.log_path = os.path.join(workdir, "gunicorn.log")
        self.proc: subprocess.Popen | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}",
               "--timeout", "60", "--no-control-socket", "wsgi:server"]
        if self.threads > 1:
            cmd[5:5] = ["--threads", str(self.threads)]
        return cmd

    def start(self, env: dict) -> None:
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SetupError(f"error: gunicorn exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SetupError(f"error: gunicorn did not answer /healthz in 120 s:\n{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        out = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    out.append(int(entry))
        return out

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the master stops its workers
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (all resident pages) and RssAnon (private memory: what the worker itself holds;
    the rest is mostly SQLite's memory-mapped database file, shared and reclaimable)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "RssAnon:")):
                out[line.split(":")[0]] = int(line.split()[1])
    except OSError:
        pass
    return out


class RssSampler(threading.Thread):
    def __init__(self, server: Gunicorn):
        super().__init__(daemon=True)
        self.server, self.stop_event = server, threading.Event()
        self.peak: dict[int, int] = {}
        self.peak_anon: dict[int, int] = {}

    def run(self) -> None:
        while not self.stop_event.wait(0.25):
            for pid in self.server.worker_pids():
                kb = memory_kb(pid)
                if kb.get("VmRSS"):
                    self.peak[pid] = max(self.peak.get(pid, 0), kb["VmRSS"])
                    self.peak_anon[pid] = max(self.peak_anon.get(pid, 0), kb.get("RssAnon", 0))


# -- one user session ------------------------------------------------------------------------

def find_component(node, component_id: str):
    """The props of the component with this id in a /_dash-layout tree."""
    if isinstance(node, dict):
        props = node.get("props")
        if isinstance(props, dict) and props.get("id") == component_id:
            return props
        for value in node.values():
            found = find_component(value, component_id)
            if found is not None:
                return found
    elif isinstance(node, list):
        for value in node:
            found = find_component(value, component_id)
            if found is not None:
                return found
    return None


class Session:
    def __init__(self, base: str, username: str, password: str, vendor: str | None, stats, rng: random.Random,
                 think: float, windows: list[tuple[str, str]]):
        self.base, self.username, self.password, self.vendor = base, username, password, vendor
        self.stats, self.rng, self.think, self.windows = stats, rng, think, windows
        self.http = requests.Session()
        self.deps: dict[str, dict] = {}
        self.version = None
        self.vendors: list[str] = []

    def request(self, kind: str, method: str, path: str, **kwargs):
        started = time.perf_counter()
        try:
            response = self.http.request(method, self.base + path, timeout=30, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            self.stats.record(kind, time.perf_counter() - started, f"{kind}: {type(exc).__name__}")
            return None
        elapsed = time.perf_counter() - started
        error = None
        if response.status_code not in (200, 204, 302):
            error = f"{kind}: HTTP {response.status_code}"
        elif path == "/_dash-update-component" and response.status_code == 200:
            text = response.text
            bad = next((t for t in ERROR_TEXTS if t in text), None)
            if bad:
                error = f"{kind}: page says {bad!r}"
        self.stats.record(kind, elapsed, error)
        return response

    def login(self) -> bool:
        response = self.request("login", "POST", "/login", data={"username": self.username, "password": self.password})
        if response is None or response.status_code != 302 or response.headers.get("Location") != "/":
            self.stats.record("login", 0, f"login as {self.username} refused")
            return False
        self.request("page", "GET", "/")
        deps = self.request("page", "GET", "/_dash-dependencies")
        if deps is None or deps.status_code != 200:
            return False
        for spec in deps.json():
            for part in spec["output"].strip(".").split("..."):
                self.deps[part.rsplit(".", 1)[0]] = spec
        layout = self.request("page", "GET", "/_dash-layout")
        dates = find_component(layout.json(), "filter-dates") if layout is not None and layout.status_code == 200 else None
        if dates and not self.windows:
            self.windows.append((dates["start_date"], dates["end_date"]))
        return True

    def callback(self, kind: str, component_id: str, values: dict):
        spec = self.deps[component_id]
        body = body_for_spec(spec["output"], spec, values)
        response = self.request(kind, "POST", "/_dash-update-component", json=body)
        if response is None or response.status_code != 200:
            return {}
        return response.json().get("response", {})

    def refresh(self) -> None:
        out = self.callback("refresh", "data-version-store", {
            "refresh-interval.n_intervals": self.rng.randint(1, 1000), "data-version-store.data": self.version})
        version = out.get("data-version-store", {}).get("data")
        if version is not None:
            self.version = version

    def load_options(self) -> None:
        out = self.callback("vendor_options", "filter-vendor", {"data-version-store.data": self.version})
        self.vendors = [o["value"] for o in out.get("filter-vendor", {}).get("options", [])]

    def vendor_choices(self, limit_to: list[str] | None) -> list[str | None]:
        """What this user may pick in the vendor filter: nothing, or a vendor from its list (a
        vendor's list holds only itself; a manager's every vendor, or `limit_to` in --warm)."""
        vendors = [v for v in self.vendors if limit_to is None or v in limit_to]
        return [None, *vendors]

    def interaction(self, start: str, end: str, vendor: str | None, product_rate: float) -> None:
        """One filter change, as the browser sends it: product options for the vendor, the
        filter bar, then the overview's two callbacks."""
        products = self.callback("products", "filter-product", {"filter-vendor.value": vendor,
                                                                "filter-product.value": None})
        product_ids = [o["value"] for o in products.get("filter-product", {}).get("options", [])]
        product = self.rng.choice(product_ids) if product_ids and self.rng.random() < product_rate else None
        out = self.callback("filters", "filters-store", {
            "filter-dates.start_date": start, "filter-dates.end_date": end, "filter-vendor.value": vendor,
            "filter-product.value": product, "filter-category.value": None})
        store = out.get("filters-store", {}).get("data")
        if store is None:
            self.stats.record("filters", 0, f"filters: selection refused for {self.username}: {json.dumps(out)[:200]}")
            return
        self.callback("overview", "overview-kpis", {"filters-store.data": store, "data-version-store.data": self.version})
        self.callback("compare", "overview-compare", {"filters-store.data": store, "data-version-store.data": self.version,
                                                      "metric-select.value": ["revenue", "completed_orders"]})

    def warm_up(self, limit_to: list[str] | None) -> None:
        """Every view this user can reach in --warm mode, once (fills the shared cache)."""
        for start, end in dict.fromkeys(self.windows):
            for vendor in self.vendor_choices(limit_to):
                self.interaction(start, end, vendor, 0.0)

    def run(self, ready: threading.Barrier, go: threading.Barrier, deadline_box: list,
            product_rate: float, limit_to: list[str] | None) -> None:
        ok = self.login()
        if ok:
            self.refresh()
            self.load_options()
        try:
            ready.wait(timeout=300)
            go.wait(timeout=900)
        except threading.BrokenBarrierError:
            return
        if not ok:
            return
        deadline = deadline_box[0]
        choices = self.vendor_choices(limit_to)
        n = 0
        while time.time() < deadline:
            start, end = self.rng.choice(self.windows)
            vendor = None if self.rng.random() < 0.5 else self.rng.choice(choices)
            self.interaction(start, end, vendor, product_rate)
            n += 1
            if n % 5 == 0:
                self.refresh()
            pause = self.think * self.rng.uniform(0.5, 1.5)
            if pause > 0:
                time.sleep(max(0.0, min(pause, deadline - time.time())))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.measuring = False

    def record(self, kind: str, seconds: float, error: str | None) -> None:
        with self.lock:
            if error:
                self.errors.append(error)
            if seconds and (self.measuring or kind in ("login", "page")):
                self.latencies[kind].append(seconds * 1000)

    def summary(self) -> dict:
        out = {}
        callbacks = []
        for kind, values in sorted(self.latencies.items()):
            out[kind] = {"n": len(values), "p50": percentile(values, 0.50), "p95": percentile(values, 0.95),
                         "p99": percentile(values, 0.99), "max": max(values)}
            if kind not in ("login", "page"):
                callbacks += values
        out["callbacks"] = {"n": len(callbacks), "p50": percentile(callbacks, 0.50),
                            "p95": percentile(callbacks, 0.95), "p99": percentile(callbacks, 0.99),
                            "max": max(callbacks) if callbacks else None,
                            "mean": statistics.fmean(callbacks) if callbacks else None}
        return out


def date_windows(end_iso: str, count: int, rng: random.Random) -> list[tuple[str, str]]:
    """The default last-30-days view (half the picks when count > 0) plus `count` other windows."""
    end = dt.date.fromisoformat(end_iso[:10])
    default = ((end - dt.timedelta(days=29)).isoformat(), end.isoformat())
    others = []
    for _ in range(count):
        last = end - dt.timedelta(days=rng.randint(0, 90))
        length = rng.choice([7, 14, 30, 60, 90])
        others.append(((last - dt.timedelta(days=length - 1)).isoformat(), last.isoformat()))
    return [default] * max(1, count) + others


# -- the run ---------------------------------------------------------------------------------

def run(args) -> dict:
    workdir = tempfile.mkdtemp(prefix="pulse-loadtest-")
    redis_server, server = Redis(workdir), Gunicorn(workdir, args.workers, args.threads)
    url = args.database_url
    copied = url.startswith("sqlite")
    made_accounts = False
    try:
        if copied:
            started = time.time()
            url = copy_sqlite(url, workdir)
            log(args, f"copied the SQLite database in {time.time() - started:.1f} s")
        try:
            users, password = make_accounts(url, args.vendors)
        except Exception as exc:  # noqa: BLE001 - unreachable database, missing tables ...
            raise SetupError(f"error: cannot create the load-test accounts: {str(exc).splitlines()[0]}") from None
        made_accounts = True
        cache_url = redis_server.start()
        env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(32), "CACHE_TYPE": "RedisCache",
               "CACHE_REDIS_URL": cache_url, "REQUIRE_LOGIN": "1", "PYTHONUNBUFFERED": "1"}
        server.start(env)
        log(args, f"gunicorn up: {' '.join(server.command()[2:])} (workers {server.worker_pids()})")

        rng = random.Random(args.seed)
        stats, sampler = Stats(), RssSampler(server)
        sampler.start()
        probe = Session(server.base, users[0][0], password, None, stats, rng, 0, [])
        if not probe.login():
            raise SetupError(f"error: could not log in:\n{server.log_tail()}")
        windows = date_windows(probe.windows[0][1], args.windows, rng)

        ready, go = threading.Barrier(args.sessions + 1), threading.Barrier(args.sessions + 1)
        deadline_box = [0.0]
        product_rate = 0.0 if args.warm else 0.2
        limit_to = [vendor for _, role, vendor in users if role == "vendor"] if args.warm else None
        sessions, threads = [], []
        for i in range(args.sessions):
            username, _role, vendor = users[0] if i % 5 == 0 else users[1 + i % (len(users) - 1)]
            session = Session(server.base, username, password, vendor, stats, random.Random(args.seed * 1000 + i),
                              args.think, windows)
            sessions.append(session)
            threads.append(threading.Thread(target=session.run, daemon=True,
                                            args=(ready, go, deadline_box, product_rate, limit_to)))
        for t in threads:
            t.start()
        ready.wait(timeout=300)  # everybody logged in and has the page
        if args.warm:  # one session per account visits every view it will ask for
            started = time.time()
            first_of = {s.username: s for s in reversed(sessions)}
            warmers = [threading.Thread(target=s.warm_up, args=(limit_to,)) for s in first_of.values()]
            for t in warmers:
                t.start()
            for t in warmers:
                t.join()
            log(args, f"warm-up: every reachable view computed once in {time.time() - started:.0f} s")
        stats.measuring = True
        began = time.time()
        deadline_box[0] = began + args.duration
        go.wait(timeout=60)  # start the clock
        for t in threads:
            t.join(timeout=max(0.0, deadline_box[0] - time.time()) + 45)
        elapsed = time.time() - began
        stats.measuring = False
        sampler.stop_event.set()
        stuck = sum(t.is_alive() for t in threads)

        summary = stats.summary()
        requests_done = sum(v["n"] for k, v in summary.items() if k not in ("login", "page", "callbacks"))
        result = {
            "command": f"python scripts/loadtest.py --duration {args.duration:g} --sessions {args.sessions} "
                       f"--workers {args.workers} --threads {args.threads} --think {args.think:g} "
                       f"--windows {args.windows}{' --warm' if args.warm else ''} --database-url {args.database_url}",
            "server": " ".join(server.command()[2:]),
            "sessions": args.sessions, "seconds": round(elapsed, 1), "requests": requests_done,
            "requests_per_second": round(requests_done / elapsed, 1) if elapsed else None,
            "errors": len(stats.errors), "error_samples": sorted(set(stats.errors))[:10], "stuck_sessions": stuck,
            "latency_ms": summary,
            "worker_peak_rss_mb": {str(pid): round(kb / 1024, 1) for pid, kb in sorted(sampler.peak.items())},
            "worker_peak_anon_mb": {str(pid): round(kb / 1024, 1) for pid, kb in sorted(sampler.peak_anon.items())},
            "worker_timeouts": server.log_tail(10_000).count("WORKER TIMEOUT"),
        }
        if stats.errors or stuck:
            result["server_log_tail"] = server.log_tail(20)
        return result
    finally:
        server.stop()
        redis_server.stop()
        if made_accounts and not copied:
            remove_accounts(url)
        shutil.rmtree(workdir, ignore_errors=True)


def log(args, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def report(result: dict) -> str:
    lines = [result["command"],
             f"{result['server']}  ·  {result['sessions']} sessions  ·  {result['seconds']} s",
             f"requests {result['requests']} ({result['requests_per_second']}/s), errors {result['errors']}, "
             f"stuck sessions {result['stuck_sessions']}, worker timeouts {result['worker_timeouts']}",
             f"{'kind':<16}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for kind, s in result["latency_ms"].items():
        fmt = [f"{v:>10.1f}" if v is not None else f"{'-':>10}" for v in (s["p50"], s["p95"], s["p99"], s["max"])]
        lines.append(f"{kind:<16}{s['n']:>7}{''.join(fmt)}")
    anon = result["worker_peak_anon_mb"]
    lines.append("peak RSS per worker, MB (of which private/anonymous): " + ", ".join(
        f"{pid}: {mb} ({anon.get(pid)})" for pid, mb in result["worker_peak_rss_mb"].items()))
    for sample in result["error_samples"]:
        lines.append(f"error: {sample}")
    if result.get("server_log_tail"):
        lines.append("gunicorn log tail:\n" + result["server_log_tail"])
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--database-url", required=True, help="a seeded database (SQLite is copied first)")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of load after every session logged in")
    p.add_argument("--sessions", type=int, default=50)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    p.add_argument("--threads", type=int, default=1, help="gunicorn threads per worker (1 = sync workers)")
    p.add_argument("--think", type=float, default=1.0, help="mean pause between a session's interactions (s)")
    p.add_argument("--windows", type=int, default=12, help="distinct non-default date windows users pick")
    p.add_argument("--vendors", type=int, default=10, help="vendor accounts (sessions share them)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--warm", action="store_true",
                   help="measure a warm cache: before the clock, visit every view the sessions will ask for "
                        "(no product picks; managers pick among the vendor accounts' vendors)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    args = p.parse_args(argv)
    if not (0 < args.duration <= 600 and 0 < args.sessions <= 200):
        p.error("--duration must be in (0, 600] and --sessions in (0, 200]")
    try:
        result = run(args)
    except SetupError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else report(result), flush=True)
    return 0 if result["errors"] == 0 and result["stuck_sessions"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
