"""Validated query inputs: the date window / as-of, dimension filters and the caller's scope.

Every data_access function takes these objects, never raw callback values, so validation and
vendor scoping happen once. Bad input raises ValueError with a message a user can act on.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from data_access.dialect import bind_ts, local_midnight_utc, to_utc_naive, utc_to_local_date


@dataclass(frozen=True)
class Scope:
    """Whose numbers the caller may see: None = everything (manager), else one vendor's."""

    vendor_id: str | None = None

    @property
    def key(self) -> str:
        return self.vendor_id or "*"


MANAGER = Scope(None)


@dataclass(frozen=True)
class Filters:
    """Optional dimension filters (ids); empty tuples mean 'all'."""

    vendor_ids: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()
    category_ids: tuple[str, ...] = ()

    @classmethod
    def of(cls, vendor=None, product=None, category=None) -> "Filters":
        def norm(v):
            if v in (None, "", []):
                return ()
            if not isinstance(v, (str, list, tuple)):
                raise ValueError("invalid filter value")
            items = (v,) if isinstance(v, str) else tuple(v)
            if len(items) > 500 or not all(isinstance(i, str) and 0 < len(i) <= 64 for i in items):
                raise ValueError("invalid filter value")
            return tuple(sorted(set(items)))
        return cls(norm(vendor), norm(product), norm(category))


@dataclass(frozen=True)
class Window:
    """Half-open UTC window [start, end) derived from local dates or as-of times."""

    start: dt.datetime
    end: dt.datetime

    def __post_init__(self):
        if self.end <= self.start:
            raise ValueError(f"the window ends ({self.end:%Y-%m-%d %H:%M}) before it starts "
                             f"({self.start:%Y-%m-%d %H:%M})")

    @classmethod
    def days(cls, start: dt.date, end_inclusive: dt.date, tz: str) -> "Window":
        """Local calendar days start..end_inclusive (a date means local midnight)."""
        if end_inclusive < start:
            raise ValueError(f"end date {end_inclusive} is before start date {start}")
        return cls(local_midnight_utc(start, tz), local_midnight_utc(end_inclusive + dt.timedelta(days=1), tz))

    @classmethod
    def last(cls, as_of: dt.datetime, days: float) -> "Window":
        return cls(as_of - dt.timedelta(days=days), as_of)

    def previous(self) -> "Window":
        """The equal-length window just before this one (for deltas and growth)."""
        return Window(self.start - (self.end - self.start), self.start)

    def params(self, conn) -> dict:
        return {"w_start": bind_ts(conn, self.start), "w_end": bind_ts(conn, self.end)}

    def local_days(self, tz: str) -> tuple[dt.date, dt.date]:
        return utc_to_local_date(self.start, tz), utc_to_local_date(self.end - dt.timedelta(microseconds=1), tz)


def parse_date(value, name: str = "date") -> dt.date:
    """A date from a callback/CLI value; a clear ValueError for '9999-99-99' and friends."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or len(value) > 40:
        raise ValueError(f"{name} is not a date")
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise ValueError(f"{name} {value[:40]!r} is not a valid date (expected YYYY-MM-DD)") from None


def newest_order_time(conn) -> dt.datetime | None:
    value = conn.execute(sa.text("SELECT MAX(created_at) FROM orders")).scalar()
    if value is None:
        return None
    return to_utc_naive(dt.datetime.fromisoformat(value) if isinstance(value, str) else value)


def resolve_as_of(conn, as_of, tz: str, now: dt.datetime | None = None) -> dt.datetime:
    """as_of: None = now; 'latest' = the local midnight ending the newest order's day; or a time.

    A time in the future is refused (it would silently look like 'no sales yet').
    """
    now = to_utc_naive(now or dt.datetime.now(dt.timezone.utc))
    if as_of in (None, "", "now"):
        return now
    if as_of == "latest":
        newest = newest_order_time(conn)
        if newest is None:
            raise ValueError("there are no orders: 'latest' has no meaning")
        return local_midnight_utc(utc_to_local_date(newest, tz) + dt.timedelta(days=1), tz)
    if isinstance(as_of, str):
        try:
            value = dt.datetime.fromisoformat(as_of)
        except ValueError:
            raise ValueError(f"as-of {as_of!r} is not an ISO date/time") from None
        if len(as_of) <= 10:
            value = local_midnight_utc(value.date(), tz)
        as_of = value
    as_of = to_utc_naive(as_of)
    if as_of > now + dt.timedelta(minutes=1):
        raise ValueError(f"as-of {as_of:%Y-%m-%d %H:%M} UTC is in the future")
    return as_of
