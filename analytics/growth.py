"""Category revenue growth, current period vs the previous equal one (DESIGN.md §4).

growth = (current - previous) / previous; previous 0 and current > 0 is "new" (no finite
growth exists); both 0 is null. Nothing is silently turned into 0 or infinity.
"""
from __future__ import annotations

import math

import pandas as pd

NEW = "new"


def growth_value(current: float, previous: float):
    """A float fraction, 'new', or None (no sales in either period)."""
    if previous:
        return (current - previous) / previous
    return NEW if current > 0 else None


def category_growth(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """Columns: category_id, category, current, previous, change, growth (float | 'new' | None).

    Inputs have columns category_id, category, revenue (data_access.breakdowns.category_revenue);
    a category missing from one side counts 0 there. Ordered by current revenue desc, name.
    """
    cols = ["category_id", "category", "revenue"]
    merged = pd.merge(current[cols], previous[cols], on="category_id", how="outer", suffixes=("_cur", "_prev"))
    merged["category"] = merged["category_cur"].fillna(merged["category_prev"])
    merged["current"] = merged["revenue_cur"].fillna(0.0).astype(float)
    merged["previous"] = merged["revenue_prev"].fillna(0.0).astype(float)
    merged["change"] = merged["current"] - merged["previous"]
    merged["growth"] = pd.Series([growth_value(c, p) for c, p in zip(merged["current"], merged["previous"])],
                                 index=merged.index, dtype=object)
    out = merged.sort_values(["current", "category"], ascending=[False, True], kind="mergesort")
    return out[["category_id", "category", "current", "previous", "change", "growth"]].reset_index(drop=True)


def is_finite_growth(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)
