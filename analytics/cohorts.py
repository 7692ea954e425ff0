"""Signup-month cohort retention (DESIGN.md §4) from the counts data_access.customers gives.

Each cell is a share of ALL the cohort's users (not of month-0 participants), and a cell whose
calendar month has not ended by as_of is NaN ("not yet known"), never 0.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

MONTHS = (0, 1, 2, 3)


def _add_months(day: dt.date, k: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + k
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_ended(month_start: dt.date, as_of: dt.datetime, tz: str) -> bool:
    """True when local midnight starting the next month is at or before as_of (naive UTC)."""
    end_local = dt.datetime.combine(_add_months(month_start, 1), dt.time(), tzinfo=ZoneInfo(tz))
    end_utc = end_local.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if as_of.tzinfo is not None:
        as_of = as_of.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return end_utc <= as_of


def cohort_retention(activity: pd.DataFrame, as_of: dt.datetime, tz: str) -> pd.DataFrame:
    """Matrix: index cohort (month start date), columns 0..3 (int) = active_mk / size (floats);
    NaN where month cohort + k has not ended by as_of or the cohort has no users.

    `activity` has columns cohort, size, active_m0..active_m3 (data_access.customers.cohort_activity).
    """
    out = pd.DataFrame(index=pd.Index(list(activity["cohort"]), name="cohort"), columns=list(MONTHS), dtype=float)
    sizes = activity["size"].to_numpy(dtype=float)
    for k in MONTHS:
        share = np.where(sizes > 0, activity[f"active_m{k}"].to_numpy(dtype=float) / np.where(sizes > 0, sizes, 1),
                         np.nan)
        ended = np.array([_month_ended(_add_months(c, k), as_of, tz) for c in activity["cohort"]], dtype=bool)
        out[k] = np.where(ended, share, np.nan)
    return out
