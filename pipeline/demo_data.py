"""Deterministic, vectorised generator of ChipChip-like demo data (DESIGN.md §3 magnitudes).

Times are int64 microseconds since the epoch (UTC) until the very end, so every step is a
numpy operation. Group mechanics are generated first (groups, member joins, deadlines) and the
stored group status is *derived from the rows actually produced*, so the data is consistent by
construction: members never exceed the goal, joins never precede signup or group creation.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import demo_catalog as cat
from pipeline.demo_population import Population, day_weights, make_population, uuids

US_PER_H = 3_600_000_000
US_PER_DAY = 24 * US_PER_H


@dataclass(frozen=True)
class DemoSpec:
    scale: float = 1.0
    seed: int = 42
    months: int = 12
    end: dt.datetime | None = None  # naive UTC; default: now, floored to the hour

    def resolved_end(self) -> dt.datetime:
        if self.end is not None:
            return self.end.replace(tzinfo=None)
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        return now.replace(minute=0, second=0, microsecond=0)


def to_ts(us: np.ndarray) -> np.ndarray:
    return np.asarray(us, dtype="int64").astype("datetime64[us]")


def _members(rng, groups: pd.DataFrame, end_us: int) -> pd.DataFrame:
    """Member join rows per group: completed groups fill before the deadline, expired don't,
    and a few reach the goal minutes after it (still expired, stored FAILED by ChipChip)."""
    n = len(groups)
    goal = groups["goal"].to_numpy()
    exp_h = groups["expiration_time"].to_numpy().astype(float)
    fate = rng.choice(3, size=n, p=[0.78, 0.015, 0.205])  # 0 fill, 1 late, 2 short
    count = np.where(fate == 2, 1 + (rng.random(n) * (goal - 1)).astype(int), goal)
    fill_h = np.where(fate == 0, exp_h * rng.uniform(0.05, 0.95, n),
                      exp_h + rng.uniform(1 / 60, 0.5, n))
    gidx = np.repeat(np.arange(n), count)
    pos = np.arange(len(gidx)) - np.repeat(np.cumsum(count) - count, count)
    u = rng.random(len(gidx))
    u[pos == 0] = 0.0
    order = np.lexsort((u, gidx))
    u = u[order]
    span = np.where(fate[gidx] == 2, exp_h[gidx] * 0.999, fill_h[gidx])
    offset = u * span
    last = pos == count[gidx] - 1
    offset = np.where(last & (fate[gidx] != 2) & (pos > 0), fill_h[gidx], offset)
    join = groups["created_us"].to_numpy()[gidx] + (offset * US_PER_H).astype(np.int64)
    keep = join < end_us
    return pd.DataFrame({"g": gidx[keep], "pos": pos[keep], "join_us": join[keep]})


def _derive_status(groups: pd.DataFrame, members: pd.DataFrame, end_us: int) -> pd.DataFrame:
    """DESIGN.md §4 group status at `end`, from the member rows that exist."""
    goal_rows = members[members["pos"] == groups["goal"].to_numpy()[members["g"]] - 1]
    goal_us = np.full(len(groups), np.iinfo(np.int64).max)
    goal_us[goal_rows["g"].to_numpy()] = goal_rows["join_us"].to_numpy()
    deadline = groups["created_us"].to_numpy() + groups["expiration_time"].to_numpy() * US_PER_H
    completed = goal_us <= deadline
    expired = ~completed & (end_us >= deadline)
    out = groups.copy()
    out["goal_us"] = goal_us
    out["deadline_us"] = deadline
    out["derived"] = np.where(completed, "COMPLETED", np.where(expired, "EXPIRED", "ACTIVE"))
    return out


def _group_orders(rng, gc: pd.DataFrame, groups: pd.DataFrame, end_us: int) -> pd.DataFrame:
    """One order per groups_carts row; status follows the group's fate."""
    n = len(gc)
    g = groups.iloc[gc["g"].to_numpy()]
    derived = g["derived"].to_numpy()
    created = np.minimum(gc["join_us"].to_numpy() + rng.integers(5, 120, n) * 1_000_000, end_us - 2)
    r = rng.random(n)
    delay = (np.clip(rng.lognormal(np.log(6), 0.8, n), 0.5, 72) * US_PER_H).astype(np.int64)
    done_at = np.maximum(g["goal_us"].to_numpy(), created) + delay
    status = np.select(
        [derived == "COMPLETED", derived == "EXPIRED"],
        [np.where(r < 0.9, "COMPLETED", np.where(r < 0.96, "CANCELED", "FAILED")),
         np.where(r < 0.9, "CANCELED", "FAILED")],
        np.where(r < 0.97, "PENDING", "FAILED"))
    still_processing = (status == "COMPLETED") & (done_at >= end_us)
    status = np.where(still_processing, "PENDING", status)
    expired_at = g["deadline_us"].to_numpy() + rng.integers(0, 600, n) * 1_000_000
    updated = np.select([status == "COMPLETED", derived == "EXPIRED"], [done_at, expired_at],
                        created + rng.integers(1, 300, n) * 1_000_000)
    updated = np.minimum(np.maximum(updated, created), end_us - 1)
    price = g["group_price"].to_numpy()
    qty = np.minimum(gc["quantity"].to_numpy(), np.maximum(1, (750 // price).astype(int)))
    return pd.DataFrame({"created_us": created, "updated_us": updated, "status": status,
                         "list": qty * price, "quantity": qty})


def _finish_orders(rng, o: pd.DataFrame) -> pd.DataFrame:
    """Discounts, payment methods and the dirt preprocessing must handle (NULLs, deletions)."""
    n = len(o)
    has_disc = rng.random(n) < 0.25
    discount = np.where(has_disc, np.round(o["list"].to_numpy() * rng.uniform(0.05, 0.15, n)), 0.0)
    total = np.round(o["list"].to_numpy() - discount, 2)
    disc_col = pd.Series(discount).where(~((~has_disc) & (rng.random(n) < 0.4)))  # NULL = none
    pay = rng.choice(cat.PAYMENT_METHODS, size=n, p=cat.PAYMENT_SHARES).astype(object)
    pay[rng.random(n) < 0.005] = None
    total_col = pd.Series(total).where(~((o["status"].to_numpy() == "FAILED") & (rng.random(n) < 0.1)))
    deleted = np.where(rng.random(n) < 0.003, o["updated_us"].to_numpy() + US_PER_H, -1)
    return pd.DataFrame({
        "id": uuids(rng, n), "groups_carts_id": o.get("groups_carts_id"),
        "personal_cart_id": o.get("personal_cart_id"), "status": o["status"].to_numpy(),
        "total_amount": total_col, "discount": disc_col, "payment_method": pay,
        "created_at": to_ts(o["created_us"]), "updated_at": to_ts(o["updated_us"]),
        "deleted_at": pd.Series(to_ts(deleted)).where(deleted >= 0),
    })


def generate(spec: DemoSpec, progress=lambda step, frac: None) -> dict[str, pd.DataFrame]:
    """All source tables as DataFrames (column names = ChipChip's)."""
    if not spec.scale > 0:
        raise ValueError(f"scale must be > 0, got {spec.scale}")
    if not 1 <= spec.months <= 60:
        raise ValueError(f"months must be between 1 and 60, got {spec.months}")
    rng = np.random.default_rng(spec.seed)
    end = spec.resolved_end()
    start = (end - dt.timedelta(days=round(spec.months * 30.44))).replace(hour=0, minute=0, second=0,
                                                                          microsecond=0)
    pop: Population = make_population(rng, spec.scale, start, end)
    progress("catalog and users", 0.15)
    end_us = pop.end_us

    # Group deals with effective windows covering the timeline.
    deals = pop.deals
    # Groups: daily volume x seasonality, each assigned a deal active that day.
    n_groups = max(40, round(115_000 * spec.scale))
    w = day_weights(pop.days, pop.holiday_dates)
    per_day = rng.multinomial(n_groups, w / w.sum())
    g_day, g_deal = [], []
    for d, k in enumerate(per_day):
        if k == 0:
            continue
        lo = pop.day_start_us[d]
        active = np.flatnonzero((deals["from_us"] <= lo + US_PER_DAY) & (deals["to_us"] >= lo))
        pw = deals["popularity"].to_numpy()[active] * pop.holiday_boost(d, deals["category"].to_numpy()[active])
        g_deal.append(rng.choice(active, size=k, p=pw / pw.sum()))
        g_day.append(np.full(k, d))
    g_day, g_deal = np.concatenate(g_day), np.concatenate(g_deal)
    groups = pd.DataFrame({"deal": g_deal, "created_us": pop.sample_times(g_day)})
    groups = groups[groups["created_us"] < end_us].sort_values("created_us", ignore_index=True)
    d = deals.iloc[groups["deal"].to_numpy()]
    groups["goal"] = d["max_group_member"].to_numpy()
    groups["expiration_time"] = d["expiration_time"].to_numpy()
    groups["group_price"] = d["group_price"].to_numpy()
    groups["max_q"] = d["max_quantity_per_order"].to_numpy()
    progress("groups", 0.3)

    members = _members(rng, groups, end_us)
    members["user"] = pop.pick_users(members["join_us"].to_numpy())
    for _ in range(20):  # a user joins a group once: redraw the rare duplicates
        dup = members.duplicated(["g", "user"]).to_numpy()
        if not dup.any():
            break
        members.loc[dup, "user"] = pop.pick_users(members.loc[dup, "join_us"].to_numpy(), uniform=True)
    members = members[~members.duplicated(["g", "user"])]
    members = members.sort_values(["g", "join_us"], ignore_index=True)
    members["pos"] = members.groupby("g").cumcount()
    groups = _derive_status(groups, members, end_us)
    first = members[members["pos"] == 0].set_index("g")["user"]
    progress("members", 0.45)

    # Soft-deleted extra rows: a user joined, then left (counts for nothing).
    n_left = max(1, int(len(members) * 0.004))
    left = members.sample(n=n_left, random_state=spec.seed).copy()
    left["join_us"] = np.minimum(left["join_us"] + rng.integers(1, 600, n_left) * 1_000_000, end_us - 2)
    left["user"] = pop.pick_users(left["join_us"].to_numpy(), uniform=True)
    left["deleted_us"] = np.minimum(left["join_us"] + rng.integers(60, 3600, n_left) * 1_000_000, end_us - 1)
    members["deleted_us"] = -1
    gc = pd.concat([members, left], ignore_index=True)
    gc["quantity"] = np.minimum(rng.geometric(0.3, len(gc)), groups["max_q"].to_numpy()[gc["g"]])
    gc["id"] = uuids(rng, len(gc))

    go = _group_orders(rng, gc, groups, end_us)
    go.loc[gc["deleted_us"].to_numpy() >= 0, "status"] = "CANCELED"
    go["groups_carts_id"] = gc["id"].to_numpy()
    gc["quantity"] = go["quantity"].to_numpy()
    progress("group orders", 0.6)

    carts, items, io = pop.individual_orders(rng, uuids)
    io = io.assign(personal_cart_id=io["cart_id"])
    orders = _finish_orders(rng, pd.concat([go, io], ignore_index=True))
    progress("individual orders", 0.75)

    gid = uuids(rng, len(groups))
    stored = groups["derived"].map({"COMPLETED": "COMPLETED", "EXPIRED": "FAILED", "ACTIVE": "ACTIVE"})
    n_members = members.groupby("g").size().reindex(range(len(groups)), fill_value=0).to_numpy()
    stored = stored.where(~((stored == "ACTIVE") & (n_members <= 1)), "PENDING").to_numpy()
    wrong = (groups["derived"].to_numpy() == "EXPIRED") & (rng.random(len(groups)) < 0.002)
    stored[wrong] = "COMPLETED"  # contradictions the anomaly detector must report
    g_updated = np.select([groups["derived"] == "COMPLETED", groups["derived"] == "EXPIRED"],
                          [groups["goal_us"], groups["deadline_us"]], groups["created_us"])
    g_updated = np.minimum(g_updated, end_us - 1)
    user_ids = pop.users["id"].to_numpy()
    tables = dict(pop.tables)
    tables["groups"] = pd.DataFrame({
        "id": gid, "group_deals_id": deals["id"].to_numpy()[groups["deal"]],
        "created_by": user_ids[first.reindex(range(len(groups))).fillna(0).astype(int).to_numpy()],
        "status": stored, "created_at": to_ts(groups["created_us"]), "updated_at": to_ts(g_updated),
        "deleted_at": pd.Series(pd.NaT, index=range(len(groups)), dtype="datetime64[us]"),
    })
    gc_status = np.where(gc["deleted_us"] >= 0, "LEFT", groups["derived"].to_numpy()[gc["g"]])
    tables["groups_carts"] = pd.DataFrame({
        "id": gc["id"], "group_id": gid[gc["g"]], "user_id": user_ids[gc["user"]],
        "quantity": gc["quantity"], "status": gc_status, "created_at": to_ts(gc["join_us"]),
        "updated_at": to_ts(np.maximum(gc["join_us"], gc["deleted_us"])),
        "deleted_at": pd.Series(to_ts(gc["deleted_us"])).where(gc["deleted_us"] >= 0),
    })
    tables["carts"], tables["personal_cart_items"] = carts, items
    tables["orders"] = orders
    progress("assembled", 0.8)
    return tables
