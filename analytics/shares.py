"""Vendor x category revenue shares and category correlation (heatmap inputs). pandas only."""
from __future__ import annotations

import pandas as pd

OTHER = "Other vendors"


def vendor_share_matrix(df: pd.DataFrame, top: int = 15) -> pd.DataFrame:
    """Rows = vendors (top `top` by revenue, by name; the rest pooled as 'Other vendors'),
    columns = categories, cells = the vendor's share of the category's revenue (columns sum to 1).

    df columns: vendor, category, revenue. Categories without revenue are dropped (0/0).
    """
    if df.empty:
        return pd.DataFrame()
    by_vendor = df.groupby("vendor")["revenue"].sum().sort_values(ascending=False, kind="mergesort")
    by_vendor = by_vendor[by_vendor > 0]
    keep = set(by_vendor.index[:top])
    pooled = df.assign(vendor=df["vendor"].where(df["vendor"].isin(keep), OTHER))
    table = pooled.pivot_table(index="vendor", columns="category", values="revenue", aggfunc="sum", fill_value=0.0)
    totals = table.sum(axis=0)
    table = table.loc[:, totals > 0] / totals[totals > 0]
    order = [v for v in by_vendor.index if v in keep] + ([OTHER] if OTHER in table.index else [])
    return table.reindex(order)


def category_correlation(daily: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlation of the categories' daily revenue (df columns: day, category, revenue);
    days without sales in a category count as 0."""
    if daily.empty:
        return pd.DataFrame()
    wide = daily.pivot_table(index="day", columns="category", values="revenue", aggfunc="sum", fill_value=0.0)
    wide = wide.loc[:, wide.std() > 0]
    return wide.corr(method="pearson")
