"""`seed`: generate demo data and load it in one transaction, then build the reporting tables."""
from __future__ import annotations

import sqlalchemy as sa

from dashboard.progress import Progress
from data_access.bulk import load_frames
from data_access.db import ensure_order_partitions, init_db, source_row_count
from data_access.schema import PROJECT_SCHEMA, SOURCE_TABLES, metadata
from pipeline import etl
from pipeline.demo_data import DemoSpec, generate


def derived_tables() -> list[sa.Table]:
    """Project tables whose rows derive from the source data (accounts and audit survive)."""
    from data_access.accounts import accounts, audit_log
    keep = {accounts.name, audit_log.name}
    return [t for t in reversed(metadata.sorted_tables) if t.schema == PROJECT_SCHEMA and t.name not in keep]


class TargetNotEmpty(RuntimeError):
    pass


def seed(engine: sa.Engine, spec: DemoSpec, tz: str, force: bool = False, show_progress: bool = True) -> dict:
    """Fill an empty database with demo data; refuses a non-empty one unless `force`.

    The whole load is one transaction: an error leaves the database as it was.
    """
    init_db(engine)
    if source_row_count(engine) and not force:
        raise TargetNotEmpty("the database already has data; use --force to replace it with demo data")
    bar = Progress(f"seed scale={spec.scale:g}", 1.0, enabled=show_progress)
    frames = generate(spec, progress=lambda step, frac: bar.update(frac * 0.3, step))
    total_rows = sum(len(f) for f in frames.values())
    loaded = 0

    def on_load(name, n):
        nonlocal loaded
        loaded += n
        bar.update(0.3 + 0.5 * loaded / total_rows, f"load {name}")

    with engine.begin() as conn:
        if force:
            for table in derived_tables():  # everything derived from the old data goes too
                conn.execute(table.delete())
            for table in reversed(SOURCE_TABLES):
                conn.execute(table.delete())
        orders = frames["orders"]["created_at"]
        ensure_order_partitions(conn, orders.min().to_pydatetime(), orders.max().to_pydatetime())
        load_frames(conn, frames, progress=on_load)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    result = etl.rebuild(engine, tz, progress=lambda done, todo: bar.update(0.8 + 0.2 * done / max(todo, 1),
                                                                           "build order lines"))
    bar.close(f"{total_rows:,} rows")
    return {"rows": total_rows, "orders": len(frames["orders"]), "etl_orders_per_s": result.rows_per_second}
