"""Who and what exists in the demo world: catalog, vendors, deals, users and when they shop.

`Population` also knows the calendar (weekly pattern, holiday peaks, hours of the day in Addis)
and draws buyers for any timestamp: only users who signed up before it, weighted by their
appetite and by whether they are still around (monthly retention decays per cohort).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline import demo_catalog as cat

US_PER_H = 3_600_000_000
US_PER_DAY = 24 * US_PER_H
LOCAL_OFFSET_H = 3  # Africa/Addis_Ababa, UTC+3 all year
WEEKDAY = np.array([0.86, 0.9, 0.95, 1.0, 1.06, 1.27, 1.18])  # Monday first
HOURS = np.array([1, 1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 9, 8, 7, 7, 8, 9, 10, 10, 9, 7, 5, 3, 2], float)


def uuids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random (version 4 shaped) UUID strings drawn from rng, so ids follow the seed."""
    raw = rng.integers(0, 2**63, size=(n, 2), dtype=np.int64).view(np.uint64)
    hi, lo = raw[:, 0], raw[:, 1]
    hi = (hi & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)
    lo = (lo & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)
    out = np.empty(n, dtype=object)
    for i, (h, l) in enumerate(zip(hi.tolist(), lo.tolist())):
        s = f"{h:016x}{l:016x}"
        out[i] = f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}"
    return out


def _epoch_us(t: dt.datetime) -> int:
    return int((t - dt.datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def _ts(us) -> np.ndarray:
    return np.asarray(us, dtype="int64").astype("datetime64[us]")


def day_weights(days: list[dt.date], holiday_dates: set[dt.date]) -> np.ndarray:
    """Growth trend x weekday pattern x pre-holiday peaks."""
    n = len(days)
    trend = np.linspace(0.55, 1.0, n)
    weekday = WEEKDAY[[d.weekday() for d in days]]
    peak = np.array([1.0 + 0.6 * any((d + dt.timedelta(days=k)) in holiday_dates for k in (1, 2, 3))
                     - 0.3 * (d in holiday_dates) for d in days])
    return trend * weekday * peak


@dataclass
class Population:
    rng: np.random.Generator
    scale: float
    start: dt.datetime
    end: dt.datetime
    tables: dict = field(default_factory=dict)

    def __post_init__(self):
        self.end_us = _epoch_us(self.end)
        first_local = (self.start + dt.timedelta(hours=LOCAL_OFFSET_H)).date()
        last_local = (self.end + dt.timedelta(hours=LOCAL_OFFSET_H)).date()
        self.days = [first_local + dt.timedelta(days=i) for i in range((last_local - first_local).days + 1)]
        self.day_start_us = np.array([_epoch_us(dt.datetime.combine(d, dt.time()))
                                      - LOCAL_OFFSET_H * US_PER_H for d in self.days])
        self.holiday_dates = {d for d, _ in cat.holidays(self.start.year, self.end.year)}
        self._near_holiday = np.array([any((d + dt.timedelta(days=k)) in self.holiday_dates
                                           for k in range(0, 8)) for d in self.days])

    # -- calendar -------------------------------------------------------------------------
    def sample_times(self, day_idx: np.ndarray) -> np.ndarray:
        """A timestamp (us, UTC) inside each given local day, following the hourly profile."""
        n = len(day_idx)
        hour = self.rng.choice(24, size=n, p=HOURS / HOURS.sum())
        within = ((hour + self.rng.random(n)) * US_PER_H).astype(np.int64)
        return self.day_start_us[day_idx] + within

    def holiday_boost(self, day: int, categories: np.ndarray) -> np.ndarray:
        return np.where((categories == "Holiday") & self._near_holiday[day], 6.0, 1.0)

    # -- buyers ---------------------------------------------------------------------------
    def pick_users(self, times_us: np.ndarray, uniform: bool = False) -> np.ndarray:
        """Index of a buyer for each time: signed up before it, alive that month, by appetite."""
        signup = self.users_signup_us
        out = np.zeros(len(times_us), dtype=np.int64)
        eligible_n = np.searchsorted(signup, times_us, side="left")
        month = ((times_us - self.day_start_us[0]) // (30 * US_PER_DAY)).astype(int)
        for m in np.unique(month):
            rows = np.flatnonzero(month == m)
            age = m - self.user_month
            if uniform:
                w = np.ones(len(signup))
            else:
                alive = (age == 0) | ((age > 0) & (age <= self.user_life))
                w = self.user_appetite * alive * np.where(age == 0, 2.0, 1.0) + 1e-9
            cum = np.cumsum(w)
            n = np.maximum(eligible_n[rows], 1)
            u = self.rng.random(len(rows)) * cum[n - 1]
            out[rows] = np.minimum(np.searchsorted(cum, u, side="right"), n - 1)
        return out

    # -- individual (cart) orders -----------------------------------------------------------
    def individual_orders(self, rng, uuids):
        n = max(10, round(38_000 * self.scale))
        w = day_weights(self.days, self.holiday_dates)
        day = rng.choice(len(self.days), size=n, p=w / w.sum())
        created = np.sort(self.sample_times(day))
        created = created[created < self.end_us - 10 * 60 * 1_000_000]
        n = len(created)
        user = self.pick_users(created)
        cart_ids = uuids(rng, n)
        n_items = rng.choice([1, 2, 3], size=n, p=[0.55, 0.3, 0.15])
        cart_of = np.repeat(np.arange(n), n_items)
        product = rng.choice(len(self.products), size=len(cart_of), p=self.product_weight)
        items = pd.DataFrame({"cart": cart_of, "product": product}).drop_duplicates()
        items["quantity"] = rng.geometric(0.5, len(items)).clip(1, 4)
        price = self.single_price[items["product"].to_numpy()]
        cart_list = pd.Series(items["quantity"].to_numpy() * price).groupby(items["cart"].to_numpy()).sum()
        too_big = cart_list.index[cart_list > 750]
        items.loc[items["cart"].isin(too_big), "quantity"] = 1
        items["list"] = items["quantity"] * price
        cart_list = items.groupby("cart")["list"].sum().reindex(range(n)).to_numpy()
        cart_created = created - rng.integers(60, 1800, n) * 1_000_000
        item_created = cart_created[items["cart"]] + rng.integers(1, 50, len(items)) * 1_000_000
        carts = pd.DataFrame({"id": cart_ids, "user_id": self.users["id"].to_numpy()[user],
                              "status": "CHECKED_OUT", "created_at": _ts(cart_created),
                              "updated_at": _ts(created), "deleted_at": pd.NaT})
        carts["deleted_at"] = carts["deleted_at"].astype("datetime64[us]")
        pci = pd.DataFrame({"id": uuids(rng, len(items)), "cart_id": cart_ids[items["cart"]],
                            "product_id": self.products["id"].to_numpy()[items["product"]],
                            "quantity": items["quantity"].to_numpy(), "created_at": _ts(item_created),
                            "updated_at": _ts(item_created)})
        pci["deleted_at"] = pd.Series(pd.NaT, index=pci.index, dtype="datetime64[us]")
        r = rng.random(n)
        recent = created > self.end_us - 48 * US_PER_H
        status = np.where(recent & (r < 0.7), "PENDING",
                          np.where(r < 0.85, "COMPLETED", np.where(r < 0.94, "CANCELED", "FAILED")))
        delay = (np.clip(rng.lognormal(np.log(5), 0.7, n), 0.5, 48) * US_PER_H).astype(np.int64)
        updated = np.where(status == "COMPLETED", created + delay, created + rng.integers(1, 600, n) * 1_000_000)
        status = np.where((status == "COMPLETED") & (updated >= self.end_us), "PENDING", status)
        updated = np.minimum(updated, self.end_us - 1)
        orders = pd.DataFrame({"created_us": created, "updated_us": updated, "status": status,
                               "list": cart_list, "quantity": 0, "cart_id": cart_ids})
        return carts, pci, orders


def _catalog(rng, scale: float, start_us: int, end_us: int, pop: Population) -> None:
    """Categories, product names, vendors (very unequal sizes), products, prices, group deals."""
    def stamps(n, lo=start_us - 400 * US_PER_DAY, hi=start_us - US_PER_DAY):
        t = rng.integers(lo, hi, n)
        return _ts(t), _ts(t + rng.integers(0, 30, n) * US_PER_DAY)

    names = [(c, *p) for c, (_, ps) in cat.CATALOG.items() for p in ps]
    cat_names = list(cat.CATALOG)
    cat_ids = uuids(rng, len(cat_names))
    c_created, c_updated = stamps(len(cat_names))
    pop.tables["categories"] = pd.DataFrame({"id": cat_ids, "name": cat_names, "status": "ACTIVE",
                                             "created_at": c_created, "updated_at": c_updated, "deleted_at": pd.NaT})
    pn_ids = uuids(rng, len(names))
    pn_created, pn_updated = stamps(len(names))
    pop.tables["product_names"] = pd.DataFrame({
        "id": pn_ids, "name": [n[1] for n in names],
        "category_id": [cat_ids[cat_names.index(n[0])] for n in names],
        "measuring_unit": [n[2] for n in names], "created_at": pn_created, "updated_at": pn_updated,
        "deleted_at": pd.NaT})

    n_vendors = int(np.clip(round(40 * scale ** 0.5), 12, 120))
    vnames = [f"{p} {k}" for k in cat.KINDS for p in cat.PLACES]
    vnames = list(np.array(vnames)[rng.permutation(len(vnames))[:n_vendors]])
    size = 1.0 / np.arange(1, n_vendors + 1) ** 1.1  # Zipf-like: a few giants, a long tail
    v_created, v_updated = stamps(n_vendors)
    city = rng.choice(cat.CITIES, n_vendors).astype(object)
    city[rng.random(n_vendors) < 0.06] = None
    v_status = np.where(np.arange(n_vendors) >= n_vendors - 2, "INACTIVE", "ACTIVE")
    vendor_ids = uuids(rng, n_vendors)
    pop.tables["vendors"] = pd.DataFrame({"id": vendor_ids, "name": vnames, "city": city, "status": v_status,
                                          "created_at": v_created, "updated_at": v_updated, "deleted_at": pd.NaT})

    # Products: each selling vendor carries names in proportion to its size. The last vendor
    # carries nothing (a vendor with no sales must still show up as such).
    rows = []
    for v in range(n_vendors - 1):
        k = int(np.clip(round(4 + 70 * size[v] / size[0]), 3, len(names)))
        for i in rng.choice(len(names), size=k, replace=False):
            rows.append((v, i))
    prod = pd.DataFrame(rows, columns=["v", "n"])
    lo = np.array([n[3] for n in names])[prod["n"]]
    hi = np.array([n[4] for n in names])[prod["n"]]
    price = np.round(rng.uniform(lo, hi) * 2) / 2
    cat_of = np.array([n[0] for n in names])[prod["n"]]
    share = np.array([cat.CATALOG[c][0] for c in cat_of])
    per_cat = pd.Series(1, index=cat_of).groupby(level=0).transform("sum").to_numpy()
    exp_qty = np.clip(750 // price, 1, 2.2)
    weight = share / per_cat / (price * exp_qty) * (0.3 + size[prod["v"]] / size[0])
    n_p = len(prod)
    p_created, p_updated = stamps(n_p)
    commission = np.round(rng.uniform(0.05, 0.15, n_p), 3).astype(object)
    commission[rng.random(n_p) < 0.1] = None
    p_ids = uuids(rng, n_p)
    pop.products = pd.DataFrame({
        "id": p_ids, "vendor_id": vendor_ids[prod["v"]], "name_id": pn_ids[prod["n"]],
        "status": np.where(rng.random(n_p) < 0.04, "INACTIVE", "ACTIVE"),
        "approved": "APPROVED", "commission": commission,
        "created_at": p_created, "updated_at": p_updated, "deleted_at": pd.NaT})
    pop.product_weight = weight / weight.sum()
    pop.single_price = price
    pop.tables["products"] = pop.products
    pop.tables["single_deals"] = pd.DataFrame({
        "id": uuids(rng, n_p), "product_id": p_ids, "original_price": price,
        "created_at": p_created, "updated_at": p_updated, "deleted_at": pd.NaT})

    n_deals = max(60, round(3600 * scale))
    dp = rng.choice(n_p, size=n_deals, p=pop.product_weight)
    span = end_us - start_us
    from_us = start_us - 10 * US_PER_DAY + (rng.random(n_deals) * span).astype(np.int64)
    to_us = from_us + rng.integers(14, 60, n_deals) * US_PER_DAY
    for d, lo_us in enumerate(pop.day_start_us):  # every day needs a deal on offer
        if not ((from_us <= lo_us + US_PER_DAY) & (to_us >= lo_us)).any():
            j = int(np.argmin(np.abs(from_us - lo_us)))
            from_us[j], to_us[j] = min(from_us[j], lo_us), max(to_us[j], lo_us + US_PER_DAY)
    popularity = rng.lognormal(0, 0.7, n_deals) * pop.product_weight[dp] / (1.0 / n_p)
    pop.deals = pd.DataFrame({
        "id": uuids(rng, n_deals), "product_id": p_ids[dp],
        "max_group_member": rng.choice([2, 3, 4, 5], n_deals, p=[0.25, 0.35, 0.25, 0.15]),
        "group_price": np.round(price[dp] * rng.uniform(0.78, 0.92, n_deals) * 2) / 2,
        "expiration_time": rng.choice([12, 24, 48], n_deals, p=[0.2, 0.6, 0.2]),
        "max_quantity_per_order": rng.choice([5, 10, 10], n_deals),
        "from_us": from_us, "to_us": to_us, "popularity": popularity, "category": cat_of[dp]})
    created = from_us - rng.integers(1, 5, n_deals) * US_PER_DAY
    pop.tables["group_deals"] = pop.deals.drop(columns=["from_us", "to_us", "popularity", "category"]).assign(
        effective_from=_ts(from_us), effective_to=_ts(to_us), created_at=_ts(created),
        updated_at=_ts(created), deleted_at=pd.NaT)


def _users(rng, scale: float, pop: Population) -> None:
    """Signups grow over time (launch month large); retention decays per cohort."""
    n = max(60, round(45_000 * scale))
    w = day_weights(pop.days, pop.holiday_dates) * np.linspace(0.6, 1.4, len(pop.days))
    w[:30] *= 2.5
    day = np.sort(rng.choice(len(pop.days), size=n, p=w / w.sum()))
    signup = pop.sample_times(day)
    late = signup >= pop.end_us  # the last local day runs past the data end: nobody signs up later
    signup[late] = pop.end_us - rng.integers(1, 6 * 3600, late.sum()) * 1_000_000
    signup = np.sort(signup)
    signup[0] = pop.day_start_us[0]
    month = ((signup - pop.day_start_us[0]) // (30 * US_PER_DAY)).astype(int)
    p_stay = rng.uniform(0.32, 0.78, month.max() + 1)[month]  # month-1 retention by cohort
    life = np.where(rng.random(n) < p_stay, rng.geometric(0.22, n), 0)
    pop.users_signup_us, pop.user_month, pop.user_life = signup, month, life
    pop.user_appetite = rng.lognormal(0, 1.15, n) * (rng.random(n) > 0.12)
    first = rng.choice(cat.FIRST_NAMES, n).astype(object)
    name = first + " " + rng.choice(cat.LAST_NAMES, n).astype(object)
    name[rng.random(n) < 0.02] = None
    email = np.array([f"{f.lower()}{i}@example.et" for i, f in enumerate(first)], dtype=object)
    email[rng.random(n) < 0.35] = None
    phone = np.array([f"+2519{x:08d}" for x in rng.integers(0, 10**8, n)], dtype=object)
    deleted = np.where(rng.random(n) < 0.01, np.minimum(signup + 90 * US_PER_DAY, pop.end_us - 1), -1)
    pop.users = pd.DataFrame({
        "id": uuids(rng, n), "name": name, "phone": phone, "email": email,
        "user_status": np.where(rng.random(n) < 0.9, "VERIFIED", "UNVERIFIED"),
        "created_at": _ts(signup), "updated_at": _ts(signup),
        "deleted_at": pd.Series(_ts(deleted)).where(deleted >= 0)})
    pop.tables["users"] = pop.users


def make_population(rng, scale: float, start: dt.datetime, end: dt.datetime) -> Population:
    pop = Population(rng, scale, start, end)
    _catalog(rng, scale, _epoch_us(start), pop.end_us, pop)
    _users(rng, scale, pop)
    for name in ("categories", "product_names", "vendors", "products", "single_deals", "group_deals"):
        pop.tables[name]["deleted_at"] = pop.tables[name]["deleted_at"].astype("datetime64[us]")
    return pop
