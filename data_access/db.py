"""Engine creation and database initialisation (no engine exists until someone asks for one)."""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from data_access import sqlite_file
from data_access import accounts, pipeline_tables, project_tables  # noqa: F401  (register project tables on metadata)
from data_access.schema import PROJECT_SCHEMA, SOURCE_TABLES, metadata, orders


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached; callers show a clear message instead of a traceback."""


def make_engine(url: str, statement_timeout_ms: int | None = None) -> sa.Engine:
    """Build an engine for `url`. SQLite: WAL so readers never wait for the ETL writer, and
    large pages in a new file (data_access/sqlite_file.py says why).

    PostgreSQL: sessions run in UTC (timestamps are stored in UTC) with a statement timeout so
    a runaway query cannot hang a page.
    """
    if url.startswith("sqlite"):
        path = sqlite_file.sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        engine = engine.execution_options(schema_translate_map={PROJECT_SCHEMA: None})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA page_size={sqlite_file.PAGE_SIZE}")  # takes effect only on a new file
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA cache_size=-131072")
            cur.execute("PRAGMA temp_store=MEMORY")
            # Debian builds SQLite with secure_delete on: every freed page and deleted row is
            # overwritten with zeros. Dropping the old order lines in a scale-10 rebuild wrote
            # 2.7 GB and took 43 s (1-10 s without); the derived rows are copies of source rows.
            cur.execute("PRAGMA secure_delete=OFF")
            cur.close()
        return engine
    # JIT compiles ~1 s per misestimated dashboard query; 4 MB work_mem spills per-user
    # aggregates (RFM, cohorts) to disk at scale 1.
    options = "-c timezone=UTC -c jit=off -c work_mem=32MB"
    if statement_timeout_ms:
        options += f" -c statement_timeout={int(statement_timeout_ms)}"
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                            connect_args={"options": options, "connect_timeout": 5})


def is_postgres(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


def check_connection(engine: sa.Engine) -> None:
    """Raise DatabaseUnavailable with a one-line reason when the database cannot be reached."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise DatabaseUnavailable(f"database unreachable ({engine.url.render_as_string()}): "
                                  f"{reason}") from None


def existing_tables(engine: sa.Engine, schema: str | None = None) -> set[str]:
    return set(sa.inspect(engine).get_table_names(schema=schema))


def init_db(engine: sa.Engine) -> list[str]:
    """Create missing tables (never alters existing ones); returns the names of the tables and
    indexes created.

    An existing ChipChip database keeps its source tables' columns and rows untouched: the
    project's own tables are added beside them, and the `updated_at` indexes the ETL finds its
    changes by are added where missing (without them every ETL pass reads whole tables).
    """
    created: list[str] = []
    with engine.begin() as conn:
        if is_postgres(engine):
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{PROJECT_SCHEMA}"'))
        present = existing_tables(conn)
        project_present = existing_tables(conn, PROJECT_SCHEMA if is_postgres(engine) else None)
        for table in SOURCE_TABLES:
            if table.name not in present:
                table.create(conn)
                created.append(table.name)
            else:
                created += _missing_change_indexes(conn, table)
        own = [t for t in metadata.sorted_tables if t.schema == PROJECT_SCHEMA]
        for table in own:
            if table.name not in project_present:
                table.create(conn)
                created.append(table.name)
        if is_postgres(engine) and "orders" in created:
            conn.execute(sa.text("CREATE TABLE orders_default PARTITION OF orders DEFAULT"))
    return created


def _missing_change_indexes(conn, table: sa.Table) -> list[str]:
    """Create the table's `updated_at` indexes an existing database lacks (a database seeded by
    an older version, or ChipChip's own)."""
    wanted = [i for i in table.indexes if [c.name for c in i.columns] == ["updated_at"]]
    if not wanted:
        return []
    have = {i["name"] for i in sa.inspect(conn).get_indexes(table.name)}
    for index in wanted:
        if index.name not in have:
            index.create(conn)
    return [i.name for i in wanted if i.name not in have]


def month_starts(start: dt.datetime, end: dt.datetime) -> list[dt.date]:
    """First days of every month touching [start, end]."""
    first = dt.date(start.year, start.month, 1)
    out = []
    while first <= end.date():
        out.append(first)
        first = dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1)
    return out


def ensure_order_partitions(conn: sa.Connection, start: dt.datetime, end: dt.datetime) -> int:
    """Create monthly partitions of orders covering [start, end] (PostgreSQL only).

    Partitions are made as data needs them; rows outside every partition land in the DEFAULT
    partition, so an insert never fails for want of one.
    """
    if conn.dialect.name != "postgresql":
        return 0
    existing = set(conn.execute(sa.text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'orders'")).scalars())
    made = 0
    for first in month_starts(start, end):
        name = f"orders_{first:%Y_%m}"
        if name in existing:
            continue
        nxt = dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1)
        # Identifiers come from dates we formatted ourselves; bounds are literals by necessity
        # (DDL takes no bind parameters).
        conn.execute(sa.text(
            f"CREATE TABLE {name} PARTITION OF orders "
            f"FOR VALUES FROM ('{first.isoformat()} 00:00:00+00') TO ('{nxt.isoformat()} 00:00:00+00')"))
        made += 1
    return made


def source_row_count(engine: sa.Engine) -> int:
    """Rows in orders + users: zero means the source tables are empty (safe to seed)."""
    with engine.connect() as conn:
        return sum(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                   for t in (orders, metadata.tables["users"]))
