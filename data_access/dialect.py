"""The few SQL spellings that differ between SQLite and PostgreSQL, in one place."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from data_access.schema import PROJECT_SCHEMA


def project_table(conn_or_engine, name: str) -> str:
    """Qualified name of a project table for text() SQL (`pulse.x` on PostgreSQL, `x` on SQLite)."""
    return f"{PROJECT_SCHEMA}.{name}" if conn_or_engine.dialect.name == "postgresql" else name


def utc_offset_hours(tz: str) -> float:
    """The business time zone's UTC offset (Addis Ababa has had no DST since 1936)."""
    return ZoneInfo(tz).utcoffset(dt.datetime(2024, 1, 1)).total_seconds() / 3600


def local_date_sql(conn_or_engine, column: str, tz: str) -> str:
    """SQL for the local calendar date of a UTC timestamp column."""
    if conn_or_engine.dialect.name == "postgresql":
        return f"(({column}) AT TIME ZONE '{ZoneInfo(tz).key}')::date"
    return f"date({column}, '{utc_offset_hours(tz):+g} hours')"


def to_utc_naive(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def local_midnight_utc(day: dt.date, tz: str) -> dt.datetime:
    """UTC instant (naive) of local midnight starting `day` (a date without time = local midnight)."""
    aware = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(tz))
    return to_utc_naive(aware)


def utc_to_local_date(value: dt.datetime, tz: str) -> dt.date:
    return to_utc_naive(value).replace(tzinfo=dt.timezone.utc).astimezone(ZoneInfo(tz)).date()


def bind_ts(conn_or_engine, value: dt.datetime):
    """A timestamp parameter in the form each backend compares correctly with stored values."""
    value = to_utc_naive(value)
    if conn_or_engine.dialect.name == "postgresql":
        return value.replace(tzinfo=dt.timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def is_sqlite(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


TS_BIND = sa.DateTime(timezone=True)
