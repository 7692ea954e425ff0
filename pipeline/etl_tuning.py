"""How the ETL is made fast: memory for whole-history sorts and large batches, indexes built once,
reads on a second connection beside a SQLite rebuild."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import sqlalchemy as sa

from data_access import sqlite_file
from data_access.project_tables import group_facts, order_lines


@contextmanager
def batch_memory(conn):
    """Sort and aggregate a whole history (a rebuild) or a large batch (an ETL process's
    run_once) in memory: the dashboard's per-query memory settings would spill index builds and
    per-user aggregates to disk at scale 10, and re-read index pages a batch rewrites."""
    if conn.dialect.name == "postgresql":  # SET LOCAL: until the transaction ends
        conn.execute(sa.text("SET LOCAL work_mem = '256MB'"))
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
        yield
        return
    before = conn.execute(sa.text("PRAGMA cache_size")).scalar()
    conn.execute(sa.text("PRAGMA cache_size = -2097152"))  # 2 GiB of pages (KiB when negative)
    conn.execute(sa.text("PRAGMA threads = 2"))  # sorts (GROUP BY, CREATE INDEX) on both cores
    try:
        yield
    finally:
        conn.execute(sa.text(f"PRAGMA cache_size = {int(before)}"))
        conn.execute(sa.text("PRAGMA threads = 0"))


@contextmanager
def lines_indexed_afterwards(conn):
    """Recreate the order lines empty and without indexes, fill them, then sort each index once:
    appending rows and sorting each key once beats updating six B-trees per row (and replaces
    the (order_id, line_no) primary key of databases built by older versions). In the rebuild's
    transaction: SQLite readers keep seeing the old lines until it commits, PostgreSQL readers
    wait for it (as they did for TRUNCATE)."""
    order_lines.drop(conn, checkfirst=True)
    conn.execute(sa.schema.CreateTable(order_lines))
    yield
    for index in order_lines.indexes:
        index.create(conn)


def missing_line_indexes(conn) -> None:
    """Create the order lines' indexes a database built by an older version lacks (its primary
    key already is the unique key)."""
    schema = order_lines.schema if conn.dialect.name == "postgresql" else None
    keyed = sa.inspect(conn).get_pk_constraint(order_lines.name, schema=schema)["constrained_columns"]
    for index in order_lines.indexes:
        if not (index.unique and keyed):
            index.create(conn, checkfirst=True)


@contextmanager
def group_facts_indexed_afterwards(conn):
    """Fill every group's facts in key order with the three time indexes dropped, then sort each
    once: filled in group id order, each row went to a random place in all three (scale 10:
    21 s for the insert). In the caller's transaction, like the lines above."""
    for index in group_facts.indexes:
        index.drop(conn, checkfirst=True)
    yield
    for index in group_facts.indexes:
        index.create(conn)


@contextmanager
def beside_the_writer(engine: sa.Engine):
    """A worker reading on a second connection while a rebuild writes, so it uses the second
    core: on a SQLite file, where the rebuild holds the only write lock from its first DELETE on,
    so sources cannot change under those reads (another connection to an in-memory database is
    another database; PostgreSQL would let sources change). None elsewhere. Reads still queued
    when the rebuild fails are dropped."""
    if sqlite_file.sqlite_path(engine.url.render_as_string(hide_password=False)) is None:
        yield None
        return
    pool = ThreadPoolExecutor(1)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
