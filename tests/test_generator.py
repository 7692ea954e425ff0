"""Invariants of the demo data generator, checked on its frames (no database).

Every expectation is recomputed here in pandas from the raw frames, following DESIGN.md §3-§4,
never read back from the generator's own intermediate columns.
"""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_access.schema import SOURCE_TABLES
from pipeline.demo_data import DemoSpec, generate

END = dt.datetime(2026, 11, 24, 12, 0)
SCALE = 0.02
ROOT = Path(__file__).resolve().parent.parent
PAYMENT_METHODS = {"CHAPA", "CHIPCHIP_PAY", "CHIPCHIP_WALLET", "WE_BIRR", "CASH_ON_DELIVERY"}
CATEGORIES = {"Vegetable", "Fruit", "Packed Food & Drink", "Condiments", "Baking Goods", "Meat and Poultry",
              "Personal Care", "Household", "Cloth & Fashion", "Dairy", "Holiday", "Baby Items"}


@pytest.fixture(scope="module")
def frames():
    return generate(DemoSpec(scale=SCALE, seed=7, end=END))


def _derived_status(f: dict, as_of: dt.datetime) -> pd.DataFrame:
    """groups with goal, deadline, goal-th member's join time and the §4 status at as_of."""
    gc = f["groups_carts"]
    live = gc[gc["deleted_at"].isna() & (gc["created_at"] <= as_of)]
    first_join = (live.sort_values("created_at").drop_duplicates(["group_id", "user_id"])
                  [["group_id", "created_at"]])
    first_join["nth"] = first_join.groupby("group_id").cumcount() + 1
    g = f["groups"].merge(f["group_deals"][["id", "max_group_member", "expiration_time"]],
                          left_on="group_deals_id", right_on="id", suffixes=("", "_deal"))
    g["deadline"] = g["created_at"] + pd.to_timedelta(g["expiration_time"], unit="h")
    g["members"] = g["id"].map(first_join.groupby("group_id").size()).fillna(0).astype(int)
    reached = first_join.merge(g[["id", "max_group_member"]], left_on="group_id", right_on="id")
    reached = reached[reached["nth"] == reached["max_group_member"]].set_index("group_id")["created_at"]
    g["goal_at"] = g["id"].map(reached)
    completed = g["goal_at"].notna() & (g["goal_at"] <= g["deadline"])
    expired = ~completed & (g["deadline"] <= as_of)
    g["derived"] = np.where(completed, "COMPLETED", np.where(expired, "EXPIRED", "ACTIVE"))
    return g


def _agrees(stored: pd.Series, derived: pd.Series) -> pd.Series:
    allowed = {"COMPLETED": {"COMPLETED"}, "EXPIRED": {"FAILED"}, "ACTIVE": {"ACTIVE", "PENDING"}}
    return pd.Series([s in allowed[d] for s, d in zip(stored, derived)], index=stored.index)


def _order_list_values(f: dict) -> pd.DataFrame:
    """orders with their list value (quantity x group_price, or sum of items x original_price)."""
    o = f["orders"]
    gc = f["groups_carts"][["id", "group_id", "quantity"]]
    price = f["groups"][["id", "group_deals_id"]].merge(
        f["group_deals"][["id", "group_price"]], left_on="group_deals_id", right_on="id",
        suffixes=("", "_d")).set_index("id")["group_price"]
    go = o[o["groups_carts_id"].notna()].merge(gc, left_on="groups_carts_id", right_on="id",
                                               suffixes=("", "_gc"))
    go["list"] = go["quantity"] * go["group_id"].map(price)
    items = f["personal_cart_items"].merge(f["single_deals"][["product_id", "original_price"]], on="product_id")
    cart_list = (items["quantity"] * items["original_price"]).groupby(items["cart_id"]).sum()
    io = o[o["personal_cart_id"].notna()].copy()
    io["list"] = io["personal_cart_id"].map(cart_list)
    return pd.concat([go[list(o.columns) + ["list"]], io], ignore_index=True)


def _frame_digest(f: dict) -> dict:
    return {name: int(pd.util.hash_pandas_object(df, index=False).sum()) for name, df in f.items()}


def test_same_seed_same_frames_different_seed_different(frames):
    again = generate(DemoSpec(scale=SCALE, seed=7, end=END))
    assert list(again) == list(frames)
    for name in frames:
        pd.testing.assert_frame_equal(again[name], frames[name], obj=name)
    other = generate(DemoSpec(scale=SCALE, seed=8, end=END))
    assert set(other["orders"]["id"]).isdisjoint(frames["orders"]["id"])
    assert other["orders"]["total_amount"].sum() != frames["orders"]["total_amount"].sum()


def test_determinism_does_not_depend_on_the_process(frames):
    """Hash randomisation (sets, dict order of strings) must not leak into the data."""
    code = ("import datetime as dt, json, pandas as pd; from pipeline.demo_data import DemoSpec, generate; "
            f"f = generate(DemoSpec(scale={SCALE}, seed=7, end=dt.datetime(2026, 11, 24, 12))); "
            "print(json.dumps({n: int(pd.util.hash_pandas_object(d, index=False).sum()) for n, d in f.items()}))")
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    import json
    assert json.loads(out.stdout) == _frame_digest(frames)


def test_every_foreign_key_value_exists_in_its_parent(frames):
    checked = 0
    for table in SOURCE_TABLES:
        for fk in table.foreign_keys:
            child = frames[table.name][fk.parent.name].dropna()
            parent = set(frames[fk.column.table.name][fk.column.name])
            orphans = set(child) - parent
            assert not orphans, f"{table.name}.{fk.parent.name}: {len(orphans)} values missing in {fk.target_fullname}"
            checked += 1
    assert checked >= 14
    for name, df in frames.items():
        assert df["id"].is_unique, f"{name}.id has duplicates"


def test_groups_never_exceed_goal_and_members_join_after_creation_and_signup(frames):
    g = _derived_status(frames, END)
    assert (g["members"] <= g["max_group_member"]).all(), g[g["members"] > g["max_group_member"]]
    assert (g["members"] >= 1).all()
    gc = frames["groups_carts"]
    live = gc[gc["deleted_at"].isna()]
    joined = live.merge(frames["groups"][["id", "created_at"]], left_on="group_id", right_on="id",
                        suffixes=("", "_group"))
    joined = joined.merge(frames["users"][["id", "created_at"]], left_on="user_id", right_on="id",
                          suffixes=("", "_user"))
    assert len(joined) == len(live)
    assert (joined["created_at"] >= joined["created_at_group"]).all()
    assert (joined["created_at"] >= joined["created_at_user"]).all()
    assert not live.duplicated(["group_id", "user_id"]).any(), "a user joined one group twice"
    assert (gc["created_at"] < END).all() and (frames["groups"]["created_at"] < END).all()


def test_stored_group_status_agrees_with_derived_status(frames):
    g = _derived_status(frames, END)
    assert set(g["status"]) <= {"PENDING", "ACTIVE", "COMPLETED", "FAILED"}
    wrong = int((~_agrees(g["status"], g["derived"])).sum())
    assert wrong < 0.01 * len(g), f"{wrong} of {len(g)} groups contradict the derived status"
    # the injected contradictions (for the anomaly report) are rare: look for them in more data
    big = _derived_status(generate(DemoSpec(scale=0.1, seed=7, end=END)), END)
    big_wrong = int((~_agrees(big["status"], big["derived"])).sum())
    assert 0 < big_wrong < 0.01 * len(big), f"{big_wrong} of {len(big)} groups contradict the derived status"
    counts = g["derived"].value_counts()
    assert counts.get("COMPLETED", 0) > 0.6 * len(g) and counts.get("EXPIRED", 0) > 0.1 * len(g)
    assert counts.get("ACTIVE", 0) >= 1, "groups still open at the data's end are expected"


def test_groups_that_filled_after_the_deadline_exist_and_are_stored_failed(frames):
    g = _derived_status(frames, END)
    late = g[g["goal_at"].notna() & (g["goal_at"] > g["deadline"])]
    assert len(late) >= 5
    assert (late["derived"] == "EXPIRED").all()
    assert (late["goal_at"] - late["deadline"]).max() < pd.Timedelta(hours=1)
    contradictions = int((~_agrees(g["status"], g["derived"])).sum())
    assert (late["status"] == "FAILED").sum() >= len(late) - contradictions


def test_orders_reference_exactly_one_cart(frames):
    o = frames["orders"]
    assert (o["groups_carts_id"].isna() ^ o["personal_cart_id"].isna()).all()
    assert o["groups_carts_id"].dropna().is_unique, "one order per groups_carts row"
    assert o["personal_cart_id"].dropna().is_unique, "one order per checked-out cart"
    assert o["groups_carts_id"].notna().sum() > 5 * o["personal_cart_id"].notna().sum()


def test_total_amount_is_list_value_minus_discount(frames):
    o = _order_list_values(frames)
    assert len(o) == len(frames["orders"]) and o["list"].notna().all()
    has_total = o["total_amount"].notna()
    expected = o["list"] - o["discount"].fillna(0)
    diff = (o.loc[has_total, "total_amount"] - expected[has_total]).abs()
    assert diff.max() <= 0.01, o.loc[diff.idxmax()]
    assert (o["discount"].fillna(0) >= 0).all() and (o["total_amount"].dropna() > 0).all()
    assert (o["discount"].fillna(0) < o["list"]).all()
    # DESIGN.md §3: order totals 15-750 ETB (a rare big individual cart may go above)
    assert (o["total_amount"].dropna() >= 15).all()
    assert (o["total_amount"].dropna() <= 750).mean() > 0.99


def test_all_categories_present_vegetable_and_fruit_lead_completed_revenue(frames):
    f = frames
    names = f["categories"].set_index("id")["name"]
    assert set(names) == CATEGORIES
    product_cat = (f["products"].merge(f["product_names"], left_on="name_id", right_on="id",
                                       suffixes=("", "_pn")).set_index("id")["category_id"].map(names))
    o = f["orders"]
    done = o[(o["status"] == "COMPLETED") & o["deleted_at"].isna()]
    gc = f["groups_carts"]
    gc = gc[gc["deleted_at"].isna()]
    deal_product = f["group_deals"].set_index("id")["product_id"]
    group_product = f["groups"].set_index("id")["group_deals_id"].map(deal_product)
    go = done.merge(gc[["id", "group_id"]], left_on="groups_carts_id", right_on="id", suffixes=("", "_gc"))
    go_rev = go["total_amount"].fillna(0).groupby(go["group_id"].map(group_product).map(product_cat)).sum()
    items = f["personal_cart_items"].merge(f["single_deals"][["product_id", "original_price"]], on="product_id")
    items["value"] = items["quantity"] * items["original_price"]
    items = items.merge(done[["personal_cart_id", "total_amount"]], left_on="cart_id", right_on="personal_cart_id")
    items["rev"] = items["total_amount"].fillna(0) * items["value"] / items.groupby("cart_id")["value"].transform("sum")
    io_rev = items["rev"].groupby(items["product_id"].map(product_cat)).sum()
    revenue = go_rev.add(io_rev, fill_value=0).sort_values(ascending=False)
    assert set(revenue.index) <= CATEGORIES and len(revenue[revenue > 0]) >= 9  # tiny categories may miss at 2%
    assert list(revenue.index[:2]) == ["Vegetable", "Fruit"]
    assert revenue["Vegetable"] > 1.4 * revenue["Fruit"]


def test_payment_methods_nulls_and_soft_deletes(frames):
    o = frames["orders"]
    assert set(o["payment_method"].dropna()) == PAYMENT_METHODS
    assert 0 < o["payment_method"].isna().sum() < 0.05 * len(o)
    assert o["total_amount"].isna().any() and o["discount"].isna().any()
    assert frames["users"]["email"].isna().any() and frames["users"]["name"].isna().any()
    for name in ("orders", "groups_carts", "users"):
        deleted = frames[name]["deleted_at"].dropna()
        assert 0 < len(deleted) < 0.05 * len(frames[name]), name
        assert (deleted >= frames[name].loc[deleted.index, "created_at"]).all(), name
    for name, df in frames.items():
        assert (df["updated_at"] >= df["created_at"]).all(), name
        if name != "users":  # see test_nothing_is_created_after_the_data_end
            assert (df["created_at"] < END).all() and (df["updated_at"] < END).all(), name


def test_nothing_is_created_after_the_data_end(frames):
    users = frames["users"]
    assert (users["created_at"] < END).all(), users[users["created_at"] >= END][["id", "created_at"]]


def test_order_status_mix(frames):
    o = frames["orders"]
    assert set(o["status"]) <= {"PENDING", "COMPLETED", "CANCELED", "FAILED"}
    share = (o["status"] == "COMPLETED").mean()
    assert 0.75 <= share <= 0.85, share
    # an order is created after its cart row and by a user who had signed up
    gc = frames["groups_carts"].set_index("id")
    go = o[o["groups_carts_id"].notna()]
    assert (go["created_at"].to_numpy() >= gc.loc[go["groups_carts_id"], "created_at"].to_numpy()).all()


def test_scale_multiplies_order_count(frames):
    expected = SCALE * 380_000
    assert 0.7 * expected <= len(frames["orders"]) <= 1.3 * expected
    bigger = generate(DemoSpec(scale=2 * SCALE, seed=7, end=END))
    ratio = len(bigger["orders"]) / len(frames["orders"])
    assert 1.7 <= ratio <= 2.3, ratio
