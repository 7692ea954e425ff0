"""Preprocessor: learned on fit, applied unchanged on transform; NULLs, encodings, unseen
categories, local-time buckets, soft-deleted rows; and every real table of a seeded database."""
from __future__ import annotations

import decimal

import numpy as np
import pandas as pd
import pytest

from analytics.preprocessing import Preprocessor
from tests.conftest import TZ


def orders(**over) -> pd.DataFrame:
    base = {
        "id": ["o1", "o2", "o3", "o4", "o5"],
        "status": ["COMPLETED", "CANCELED", None, "COMPLETED", "PENDING"],
        "total_amount": [decimal.Decimal("100.50"), None, decimal.Decimal("20"), decimal.Decimal("30"), 40.0],
        "discount": [5.0, None, None, 0.0, 1.0],
        "payment_method": ["CHAPA", "CHAPA", "WE_BIRR", None, "CHAPA"],
        # SQLite hands timestamps over as text; 22:30 UTC is already the next day in Addis Ababa
        "created_at": ["2026-03-01 22:30:00.000000", "2026-03-04 10:00:00.000000", None,
                       "2026-12-31 21:00:00.000000", "2026-02-28 20:59:59.999999"],
        "deleted_at": [None, None, None, None, "2026-03-01 00:00:00.000000"],
    }
    base.update(over)
    return pd.DataFrame(base)


def test_nulls_learned_on_fit_and_reused():
    p = Preprocessor().fit(orders())
    out = p.transform(orders())
    assert list(out.index) == [0, 1, 2, 3]  # the soft-deleted o5 is dropped
    assert len(out) == 4 and "id" not in out.columns and "deleted_at" not in out.columns
    assert out["total_amount"].tolist() == pytest.approx([100.5, 30.0, 20.0, 30.0])  # median of 100.5, 20, 30
    new = orders(total_amount=[None] * 5, discount=[None] * 5)
    again = p.transform(new)
    assert again["total_amount"].eq(30.0).all() and again["discount"].eq(2.5).all()  # fit's medians, not new ones
    zero = Preprocessor(numeric_nulls="zero").fit_transform(orders())
    assert zero["total_amount"].tolist() == pytest.approx([100.5, 0.0, 20.0, 30.0])
    const = Preprocessor(numeric_nulls="constant", fill_value=-1).fit_transform(orders())
    assert const["discount"].tolist() == [5.0, -1.0, -1.0, 0.0]


def test_onehot_remembers_categories_and_ignores_unseen():
    p = Preprocessor().fit(orders())
    names = p.get_feature_names()
    assert {"status=COMPLETED", "status=CANCELED", "status=missing"} <= set(names)
    assert "status=PENDING" not in names  # only seen on a soft-deleted row
    fresh = orders(status=["REFUNDED", "COMPLETED", "COMPLETED", "CANCELED", "PENDING"],
                   payment_method=["TELEBIRR"] * 5)
    out = p.transform(fresh)
    assert list(out.columns) == names  # no new columns for new values
    assert out.filter(like="status=").iloc[0].sum() == 0  # unseen: all zeros
    assert out.filter(like="payment_method=").to_numpy().sum() == 0
    with pytest.raises(ValueError, match="not seen on fit"):
        Preprocessor(unseen="error").fit(orders()).transform(fresh)


def test_label_ordinal_mode_and_per_column():
    p = Preprocessor(encoding="label", categorical_nulls="mode", per_column={
        "status": {"encoding": "ordinal", "order": ["PENDING", "CANCELED", "COMPLETED"]},
        "discount": {"nulls": "constant", "fill_value": 7.0}})
    out = p.fit_transform(orders())
    assert out["status"].tolist() == [2, 1, 2, 2]  # NULL -> mode COMPLETED
    assert out["payment_method"].tolist() == [0, 0, 1, 0]  # CHAPA=0, WE_BIRR=1 (sorted); NULL -> mode CHAPA
    assert out["discount"].tolist() == [5.0, 7.0, 7.0, 0.0]
    unseen = p.transform(orders(status=["LOST"] * 5, payment_method=["CASH"] * 5))
    assert unseen["status"].eq(-1).all() and unseen["payment_method"].eq(-1).all()


@pytest.mark.parametrize("freq,expected", [
    ("day", ["2026-03-02", "2026-03-04", None, "2027-01-01"]),
    ("week", ["2026-03-02", "2026-03-02", None, "2026-12-28"]),  # Monday weeks
    ("month", ["2026-03-01", "2026-03-01", None, "2027-01-01"]),
    ("year", ["2026-01-01", "2026-01-01", None, "2027-01-01"]),
])
def test_timestamps_bucketed_in_local_time(freq, expected):
    out = Preprocessor(timestamp_freq=freq, tz=TZ).fit_transform(orders())["created_at"]
    got = [None if pd.isna(v) else v.date().isoformat() for v in out]
    assert got == expected


def test_timestamp_fill_and_aware_input_and_keep_deleted():
    df = orders(created_at=pd.to_datetime(["2026-03-01 22:30", "2026-03-04 10:00", None, "2026-03-10 01:00",
                                           "2026-03-02 00:00"]).tz_localize("UTC"))
    out = Preprocessor(timestamp_nulls="min").fit_transform(df)["created_at"]
    assert out.notna().all() and out.iloc[2] == pd.Timestamp("2026-03-02")  # NULL -> earliest (local day)
    kept = Preprocessor(drop_deleted=False, keep_ids=True).fit_transform(orders())
    assert len(kept) == 5 and "id" in kept.columns and "deleted_at" in kept.columns


def test_misuse_is_a_clear_error():
    with pytest.raises(RuntimeError, match="before fit"):
        Preprocessor().transform(orders())
    with pytest.raises(ValueError, match="unknown encoding"):
        Preprocessor(encoding="hash")
    with pytest.raises(ValueError, match="columns missing"):
        Preprocessor().fit(orders()).transform(orders().drop(columns="discount"))
    with pytest.raises(ValueError, match="not in the data"):
        Preprocessor(columns=["nope"]).fit(orders())


@pytest.mark.parametrize("table", ["orders", "users", "products", "groups", "groups_carts", "group_deals", "vendors"])
def test_every_real_table(seeded, table):
    engine = seeded("sqlite", 0.02, 1)
    with engine.connect() as conn:
        raw = pd.read_sql(f"SELECT * FROM {table}", conn)
    half = len(raw) // 2
    p = Preprocessor().fit(raw.iloc[:half])
    out = p.transform(raw.iloc[half:])
    assert list(out.columns) == p.get_feature_names() and len(out) == raw.iloc[half:]["deleted_at"].isna().sum()
    numeric = out.select_dtypes(include=[np.number])
    assert not numeric.isna().any().any()
    assert not any(c == "id" or c.endswith("_id") for c in out.columns)
    assert pd.api.types.is_datetime64_any_dtype(out["created_at"])
