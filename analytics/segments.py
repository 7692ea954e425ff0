"""RFM customer segments from data_access.customers.user_rfm (pure pandas).

Rules, first match wins (thresholds are arguments so the page can expose them):
- new: first completed order less than `new_days` ago;
- at risk: no completed order for more than `at_risk_days`;
- high-value: monetary in the top (1 - high_value_quantile) of all these users;
- regular: at least `regular_orders` completed orders;
- occasional: everyone else.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

SEGMENTS = ["high-value", "regular", "occasional", "at risk", "new"]


def assign_segments(rfm: pd.DataFrame, new_days: float = 30, at_risk_days: float = 45,
                    high_value_quantile: float = 0.8, regular_orders: int = 4) -> pd.DataFrame:
    """rfm + column `segment` (one of SEGMENTS). Needs recency_days, frequency, monetary,
    tenure_days; an empty frame stays empty."""
    if not 0 < high_value_quantile < 1:
        raise ValueError("high_value_quantile must be between 0 and 1")
    out = rfm.copy()
    if out.empty:
        out["segment"] = pd.Series(dtype=object)
        return out
    threshold = out["monetary"].quantile(high_value_quantile)
    out["segment"] = np.select(
        [out["tenure_days"] < new_days, out["recency_days"] > at_risk_days, out["monetary"] >= threshold,
         out["frequency"] >= regular_orders],
        ["new", "at risk", "high-value", "regular"], default="occasional")
    return out


def segment_summary(rfm: pd.DataFrame, **thresholds) -> pd.DataFrame:
    """Columns: segment, users, revenue, revenue_share (fraction; NaN when no revenue at all),
    avg_orders, avg_recency_days — one row per segment in SEGMENTS order (zeros when empty)."""
    seg = assign_segments(rfm, **thresholds)
    grouped = seg.groupby("segment").agg(users=("user_id", "size"), revenue=("monetary", "sum"),
                                         avg_orders=("frequency", "mean"), avg_recency_days=("recency_days", "mean"))
    out = grouped.reindex(SEGMENTS)
    out["users"] = out["users"].fillna(0).astype(int)
    out["revenue"] = out["revenue"].fillna(0.0).astype(float)
    total = out["revenue"].sum()
    out["revenue_share"] = out["revenue"] / total if total > 0 else np.nan
    out.index.name = "segment"
    return out.reset_index()[["segment", "users", "revenue", "revenue_share", "avg_orders", "avg_recency_days"]]
