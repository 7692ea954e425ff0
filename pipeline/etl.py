"""Incremental, idempotent ETL: source rows changed since the watermark -> order lines + rollup.

Each batch reads orders (and their carts) whose `updated_at` lies in (watermark - overlap,
batch end], deletes their old lines, validates them (bad rows go to quarantine with a reason),
re-inserts their lines, recomputes the daily rollup of every touched day and commits the new
watermark in the same transaction. Replaying a batch therefore changes nothing, and a run killed
at any point resumes from the last committed batch with results identical to a full rebuild.
"""
from __future__ import annotations

import datetime as dt
import time
from contextlib import nullcontext
from dataclasses import dataclass

import sqlalchemy as sa

from data_access.db import month_starts
from data_access.dialect import bind_ts, local_date_sql, project_table, to_utc_naive
from data_access.meta import bump_data_version, get_meta, set_meta
from pipeline.etl_derived import (analyze, analyze_temp, changed_orders, collect_touched, id_ts, read_all_reached,
                                  refresh_group_facts, refresh_user_months, temp_table)
from pipeline.etl_lines import (GROUP_LINES_SQL, INDIVIDUAL_LINES_SQL, LINE_COLUMNS, QUARANTINE_SQL,
                                orders_by_creation)
from pipeline.etl_tuning import (batch_memory, beside_the_writer, group_facts_indexed_afterwards,
                                 lines_indexed_afterwards, missing_line_indexes)

WATERMARK_KEY = "etl_watermark"
PER_ENTITY_KEY, PER_ENTITY_VERSION = "per_entity_tables", "1"  # bump when etl_derived's tables change
# The lines first: rebuild recreates that table and empties the others.
DERIVED = ("pulse_order_lines", "pulse_daily_sales", "pulse_quarantine", "pulse_group_facts", "pulse_user_months",
           "pulse_user_vendor_months")
EPOCH = dt.datetime(1970, 1, 1)
# Orders per committed batch. Every batch rewrites each index page its lines touch, and random
# ids spread a batch over nearly all of them: at scale 10 a SQLite commit wrote 3 GB for one
# day of orders. An ETL process catching up therefore takes larger bites (scale 10, 30-day
# replay: 3.7K -> 5.5K orders/s on SQLite, 3.0K -> 5.2K on PostgreSQL); the app's own ETL
# keeps small ones, which hold the write lock and memory for less time.
APP_BATCH_ROWS, PROCESS_BATCH_ROWS = 50_000, 250_000
BY_CREATION = "o.created_at >= :c_lo AND o.created_at < :c_hi"  # a rebuild's month of orders


@dataclass
class EtlResult:
    batches: int = 0
    orders: int = 0
    lines: int = 0
    quarantined: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.orders / self.seconds if self.seconds else 0.0


def _parse_ts(value) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return to_utc_naive(value)


def _source_max(conn) -> dt.datetime | None:
    values = [conn.execute(sa.text(f"SELECT MAX(updated_at) FROM {t}")).scalar()
              for t in ("orders", "groups_carts", "groups", "carts", "personal_cart_items")]
    values = [_parse_ts(v) for v in values if v is not None]
    return max(values) if values else None


def _batch_upper(conn, wm: dt.datetime, batch_rows: int, source_max: dt.datetime) -> dt.datetime:
    nth = conn.execute(sa.text(
        "SELECT updated_at FROM orders WHERE updated_at > :wm ORDER BY updated_at LIMIT 1 OFFSET :k"),
        {"wm": bind_ts(conn, wm), "k": batch_rows - 1}).scalar()
    return min(_parse_ts(nth), source_max) if nth is not None else source_max


# With each order's creation time: on PostgreSQL the batch then reads orders only in the
# partitions from the oldest changed order on (by ids alone it scanned every partition).
CHANGED_SQL = """
INSERT INTO etl_changed (order_id, created_at)
SELECT id, created_at FROM orders WHERE updated_at > :lo AND updated_at <= :hi
UNION SELECT o.id, o.created_at FROM groups_carts gc JOIN orders o ON o.groups_carts_id = gc.id
      WHERE gc.updated_at > :lo AND gc.updated_at <= :hi
UNION SELECT o.id, o.created_at FROM carts c JOIN orders o ON o.personal_cart_id = c.id
      WHERE c.updated_at > :lo AND c.updated_at <= :hi
UNION SELECT o.id, o.created_at FROM personal_cart_items i JOIN orders o ON o.personal_cart_id = i.cart_id
      WHERE i.updated_at > :lo AND i.updated_at <= :hi
"""

def _run_batch(conn, lo: dt.datetime, hi: dt.datetime, tz: str,
               lines_written=lambda n_orders: None) -> tuple[int, int, int, int]:
    """(changed orders, their lines, quarantined, touched groups + user months) of one batch;
    `lines_written` hears when its lines are written, about half of its work."""
    lines, rollup, quarantine = (project_table(conn, t) for t in
                                 ("pulse_order_lines", "pulse_daily_sales", "pulse_quarantine"))
    ids, ts = id_ts(conn)
    for name, columns in (("etl_changed", f"order_id {ids} PRIMARY KEY, created_at {ts}"),
                          ("etl_bad", f"order_id {ids} PRIMARY KEY"), ("etl_days", "day DATE PRIMARY KEY"),
                          ("etl_groups", f"group_id {ids} PRIMARY KEY")):
        temp_table(conn, name, columns)
    lo_hi = {"lo": bind_ts(conn, lo), "hi": bind_ts(conn, hi)}
    conn.execute(sa.text(CHANGED_SQL), lo_hi)
    analyze_temp(conn, "etl_changed")
    n_orders, since = conn.execute(sa.text("SELECT COUNT(*), MIN(created_at) FROM etl_changed")).one()
    lo_hi["since"] = since if since is not None else bind_ts(conn, EPOCH)
    collect_touched(conn, lo_hi, before_lines=True, tz=tz)
    in_changed = "IN (SELECT order_id FROM etl_changed)"
    conn.execute(sa.text(f"DELETE FROM {lines} WHERE order_id {in_changed}"))

    cast = "::varchar" if conn.dialect.name == "postgresql" else ""
    conn.execute(sa.text(f"DELETE FROM {quarantine} WHERE source_table = 'orders' AND source_id IN "
                         f"(SELECT order_id{cast} FROM etl_changed)"))
    n_bad = _validate_and_insert(conn, changed_orders(conn), {"since": lo_hi["since"]}, tz)
    lines_written(n_orders)
    collect_touched(conn, lo_hi, before_lines=False, tz=tz)
    conn.execute(sa.text(f"DELETE FROM {rollup} WHERE local_day IN (SELECT day FROM etl_days)"))
    _rollup(conn, "local_day IN (SELECT day FROM etl_days)")
    refresh_group_facts(conn, only_touched=True)
    refresh_user_months(conn, tz, lo_hi)
    n_lines = conn.execute(sa.text(f"SELECT COUNT(*) FROM {lines} WHERE order_id {in_changed}")).scalar_one()
    touched = conn.execute(sa.text("SELECT (SELECT COUNT(*) FROM etl_groups) + (SELECT COUNT(*) FROM etl_user_months)"))
    return n_orders, n_lines, n_bad, touched.scalar_one()


def _find_bad(conn, selected: str, params: dict) -> list[tuple[str, str]]:
    """(order id, reason) of the selected orders that cannot be reported."""
    now = bind_ts(conn, dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1))
    only_bad = f"SELECT id, reason FROM ({QUARANTINE_SQL.format(selected=selected)}) q WHERE reason IS NOT NULL"
    return [(str(r[0]), r[1]) for r in conn.execute(sa.text(only_bad), {**params, "future": now}) if r[1]]


def _read_bad(engine: sa.Engine, selected: str, params: dict) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return _find_bad(conn, selected, params)


def _validate_and_insert(conn, selected: str, params: dict, tz: str, orders: str = "orders o",
                         bad: list[tuple[str, str]] | None = None) -> int:
    """Quarantine the selected orders that cannot be reported (`bad`, when already found),
    insert lines for the others."""
    lines, quarantine = project_table(conn, "pulse_order_lines"), project_table(conn, "pulse_quarantine")
    conn.execute(sa.text("DELETE FROM etl_bad"))
    bad = _find_bad(conn, selected, params) if bad is None else bad
    if bad:
        detected = bind_ts(conn, dt.datetime.now(dt.timezone.utc))
        conn.execute(sa.text(f"INSERT INTO {quarantine} (source_table, source_id, reason, detected_at) "
                             "VALUES ('orders', :id, :reason, :at)"),
                     [{"id": i, "reason": r, "at": detected} for i, r in bad])
        conn.execute(sa.text("INSERT INTO etl_bad (order_id) VALUES (:id)"), [{"id": i} for i, _ in bad])
    day = local_date_sql(conn, "o.created_at", tz)
    for template in (GROUP_LINES_SQL, INDIVIDUAL_LINES_SQL):
        sql = template.format(day=day, selected=selected, orders=orders)
        conn.execute(sa.text(f"INSERT INTO {lines} ({LINE_COLUMNS}) {sql}"), params)
    return len(bad)


def _rollup(conn, days_condition: str) -> None:
    lines, rollup = project_table(conn, "pulse_order_lines"), project_table(conn, "pulse_daily_sales")
    conn.execute(sa.text(
        f"INSERT INTO {rollup} (local_day, product_id, deal_type, status, vendor_id, category_id, orders, "
        f"quantity, revenue) SELECT local_day, product_id, deal_type, status, vendor_id, category_id, "
        f"COUNT(DISTINCT order_id), SUM(quantity), SUM(revenue) FROM {lines} WHERE {days_condition} "
        f"GROUP BY local_day, product_id, deal_type, status, vendor_id, category_id"))


def ensure_per_entity_tables(engine: sa.Engine, tz: str) -> bool:
    """Fill the per-group / per-user-month tables once when their definition is newer than the
    data in them (a database built by an older version): batches only refresh what they touch."""
    with engine.begin() as conn:
        if get_meta(conn, PER_ENTITY_KEY) == PER_ENTITY_VERSION:
            return False
        missing_line_indexes(conn)  # ix_pol_group came with these tables
        _refresh_all_per_entity(conn, tz)
        bump_data_version(conn)
    return True


def _refresh_all_per_entity(conn, tz: str, reached: list[tuple] | None = None) -> None:
    """Every group's facts and every user's months from the current lines, then statistics."""
    with group_facts_indexed_afterwards(conn):
        refresh_group_facts(conn, only_touched=False, reached=reached)
    refresh_user_months(conn, tz)
    analyze(conn)
    set_meta(conn, PER_ENTITY_KEY, PER_ENTITY_VERSION)


def run_once(engine: sa.Engine, tz: str, overlap_seconds: float = 300, batch_rows: int | None = None,
             progress=lambda done, total: None, own_process: bool = False) -> EtlResult:
    """Process everything changed since the watermark, batch by batch (each batch commits).

    own_process: in an ETL process of its own (not the app's), batches get the rebuild's memory
    and are larger (batch_rows by default: PROCESS_BATCH_ROWS, else APP_BATCH_ROWS). A large
    batch rewrites index pages all over the order lines, which the app's 128 MB page cache kept
    re-reading (SQLite scale 1, 30-day replay: 6.9-7.1K -> 10.3-10.8K orders/s); a small one
    touches few pages, so its cache stays small.
    """
    batch_rows = batch_rows or (PROCESS_BATCH_ROWS if own_process else APP_BATCH_ROWS)
    result = EtlResult()
    started = time.perf_counter()
    ensure_per_entity_tables(engine, tz)
    with engine.connect() as conn:
        wm = _parse_ts(get_meta(conn, WATERMARK_KEY))
        source_max = _source_max(conn)
        todo = conn.execute(sa.text("SELECT COUNT(*) FROM orders WHERE updated_at > :wm"),
                            {"wm": bind_ts(conn, wm or EPOCH)}).scalar_one()
    if source_max is None or (wm is not None and wm >= source_max):
        return result
    overlap = dt.timedelta(seconds=overlap_seconds)
    memory = batch_memory if own_process else lambda conn: nullcontext()
    while wm is None or wm < source_max:
        with engine.begin() as conn, memory(conn):
            hi = _batch_upper(conn, wm or EPOCH, batch_rows, source_max)
            lo = (wm - overlap) if wm is not None else EPOCH
            n_orders, n_lines, n_bad, touched = _run_batch(
                conn, lo, hi, tz, lambda n: progress(min(result.orders + n // 2, todo), todo))
            set_meta(conn, WATERMARK_KEY, hi.isoformat())
            if n_orders or touched:
                bump_data_version(conn)
        wm = hi
        result.batches += 1
        result.orders += n_orders
        result.lines += n_lines
        result.quarantined += n_bad
        progress(min(result.orders, todo), todo)
    result.seconds = time.perf_counter() - started
    return result


def rebuild(engine: sa.Engine, tz: str, progress=lambda done, total: None) -> EtlResult:
    """Forget everything derived and replay the whole history (the reference for idempotence).

    One transaction, month by month of order creation, the rollup built once at the end: a
    backfill killed midway leaves the previous state intact, and a restart starts over.
    """
    result = EtlResult()
    started = time.perf_counter()
    with engine.begin() as conn, batch_memory(conn), beside_the_writer(engine) as beside:
        for t in DERIVED[1:]:  # all but the lines, recreated below; TRUNCATE is transactional on PostgreSQL
            verb = "TRUNCATE" if conn.dialect.name == "postgresql" else "DELETE FROM"
            conn.execute(sa.text(f"{verb} {project_table(conn, t)}"))
        set_meta(conn, WATERMARK_KEY, None)
        source_max = _source_max(conn)
        months = _creation_months(conn)
        # Validation reads each month ahead of the writer, then every group's reached time.
        bad = [beside.submit(_read_bad, engine, BY_CREATION, m) for m in months] if beside else None
        reached = beside.submit(read_all_reached, engine) if beside else None
        with lines_indexed_afterwards(conn):
            _load_all_lines(conn, tz, result, progress, months, bad)
        if source_max is not None and result.orders:
            _rollup(conn, "1 = 1")
            _refresh_all_per_entity(conn, tz, reached.result() if reached else None)
            set_meta(conn, WATERMARK_KEY, source_max.isoformat())
            result.lines = conn.execute(sa.text(
                f"SELECT COUNT(*) FROM {project_table(conn, 'pulse_order_lines')}")).scalar_one()
            progress(result.orders, result.orders)
        bump_data_version(conn)
    result.seconds = time.perf_counter() - started
    return result


def _creation_months(conn) -> list[dict]:
    """BY_CREATION's bounds for each month of order creation, oldest first (none without orders)."""
    first, last = conn.execute(sa.text("SELECT MIN(created_at), MAX(created_at) FROM orders")).one()
    if first is None:
        return []
    months = month_starts(_parse_ts(first), _parse_ts(last))
    bounds = [EPOCH] + [dt.datetime.combine(m, dt.time()) for m in months[1:]] + [dt.datetime(9999, 1, 1)]
    return [{"c_lo": bind_ts(conn, lo), "c_hi": bind_ts(conn, hi)} for lo, hi in zip(bounds, bounds[1:])]


def _load_all_lines(conn, tz: str, result: EtlResult, progress, months: list[dict], bad: list | None) -> None:
    """Every order's lines, month by month of creation (bounded memory per statement); `bad`:
    each month's invalid orders as futures, when read on a second connection."""
    if not months:
        return
    temp_table(conn, "etl_bad", f"order_id {id_ts(conn)[0]} PRIMARY KEY")
    total = conn.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar_one()
    for i, month in enumerate(months):
        result.quarantined += _validate_and_insert(conn, BY_CREATION, month, tz, orders_by_creation(conn),
                                                   bad[i].result() if bad else None)
        progress(int(total * (i + 1) / len(months) * 0.9), total)
    result.orders, result.batches = total, len(months)
