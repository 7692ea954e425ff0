"""Project key/value state: the ETL watermark and the data version the dashboard polls."""
from __future__ import annotations

import sqlalchemy as sa

from data_access.project_tables import meta

DATA_VERSION_KEY = "data_version"


def get_meta(conn: sa.Connection, key: str) -> str | None:
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar()


def set_meta(conn: sa.Connection, key: str, value: str | None) -> None:
    conn.execute(sa.delete(meta).where(meta.c.key == key))
    if value is not None:
        conn.execute(sa.insert(meta).values(key=key, value=value))


def bump_data_version(conn: sa.Connection) -> int:
    """Every change that alters what pages show bumps this; caches key on it.

    One UPDATE (a row lock), so concurrent writers (ETL, sweeper, refund workers) serialise
    instead of colliding on a delete + insert.
    """
    current = conn.execute(sa.select(meta.c.value).where(meta.c.key == DATA_VERSION_KEY)
                           .with_for_update()).scalar()
    if current is None:
        set_meta(conn, DATA_VERSION_KEY, "1")
        return 1
    new = int(current) + 1
    conn.execute(sa.update(meta).where(meta.c.key == DATA_VERSION_KEY).values(value=str(new)))
    return new


def data_version(conn: sa.Connection) -> int:
    return int(get_meta(conn, DATA_VERSION_KEY) or 0)
