"""Independent plain-pandas reference for every metric, read from the RAW source tables.

Nothing here reads the project's pulse_* tables or calls data_access query code: the SQL layer
is compared against this, so a shared mistake would have to be made twice, differently.
Definitions follow DESIGN.md §4 literally (e.g. the goal-th distinct member's join time).
"""
from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

TABLES = ["orders", "groups_carts", "groups", "group_deals", "carts", "personal_cart_items", "products",
          "product_names", "categories", "users", "single_deals", "vendors"]
TS_COLS = ("created_at", "updated_at", "deleted_at", "effective_from", "effective_to")


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    for c in df.columns:
        if c in TS_COLS:
            df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601").dt.tz_convert(None)
        elif df[c].dtype == object:
            sample = df[c].dropna()
            if len(sample) and isinstance(sample.iloc[0], uuid.UUID):
                df[c] = df[c].map(lambda v: None if v is None else str(v))
            elif len(sample) and not isinstance(sample.iloc[0], str):
                df[c] = pd.to_numeric(df[c])
    return df


def local(ts: pd.Series, tz: str) -> pd.Series:
    return ts.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)


def local_midnight(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(tz)).astimezone(dt.timezone.utc).replace(tzinfo=None)


class Reference:
    def __init__(self, engine, tz: str):
        self.tz = tz
        with engine.connect() as conn:
            self.t = {name: _clean(pd.read_sql(f"SELECT * FROM {name}", conn)) for name in TABLES}
        self.lines = self._lines()

    # -- order lines, rebuilt from scratch ---------------------------------------------------
    def _product_dims(self) -> pd.DataFrame:
        p = self.t["products"].rename(columns={"id": "product_id"})
        pn = self.t["product_names"].rename(columns={"id": "name_id"})
        return p.merge(pn[["name_id", "category_id"]], on="name_id")[["product_id", "vendor_id", "category_id"]]

    def _lines(self) -> pd.DataFrame:
        o = self.t["orders"]
        o = o[o["deleted_at"].isna()].copy()
        o["total"] = o["total_amount"].fillna(0.0).astype(float)
        dims = self._product_dims()
        gc = self.t["groups_carts"]
        gc = gc[gc["deleted_at"].isna()].rename(columns={"id": "gc_id", "created_at": "gc_created"})
        g = self.t["groups"].rename(columns={"id": "group_id"})
        gd = self.t["group_deals"].rename(columns={"id": "group_deal_id"})
        grp = (o.merge(gc[["gc_id", "group_id", "user_id", "quantity"]], left_on="groups_carts_id", right_on="gc_id")
               .merge(g[["group_id", "group_deals_id"]], on="group_id")
               .merge(gd[["group_deal_id", "product_id"]], left_on="group_deals_id", right_on="group_deal_id")
               .merge(dims, on="product_id"))
        grp = grp.assign(deal_type="group", revenue=grp["total"], line_no=0)
        carts = self.t["carts"]
        carts = carts[carts["deleted_at"].isna()].rename(columns={"id": "cart_id"})
        items = self.t["personal_cart_items"]
        items = items[items["deleted_at"].isna()].rename(columns={"id": "item_id"})
        sd = self.t["single_deals"]
        price = sd[sd["deleted_at"].isna()].groupby("product_id")["original_price"].max().astype(float)
        ind = (o.merge(carts[["cart_id", "user_id"]], left_on="personal_cart_id", right_on="cart_id")
               .merge(items[["item_id", "cart_id", "product_id", "quantity"]], on="cart_id")
               .merge(dims, on="product_id"))
        ind["value"] = ind["quantity"] * ind["product_id"].map(price).fillna(0.0)
        cart_value = ind.groupby("id")["value"].transform("sum")
        n_items = ind.groupby("id")["value"].transform("size")
        ind["revenue"] = np.where(cart_value > 0, ind["total"] * ind["value"] / cart_value.where(cart_value > 0, 1),
                                  ind["total"] / n_items)
        ind = ind.assign(deal_type="individual", group_id=None, group_deal_id=None, line_no=1)
        cols = ["id", "line_no", "created_at", "status", "deal_type", "payment_method", "user_id", "group_id",
                "group_deal_id", "product_id", "vendor_id", "category_id", "quantity", "revenue"]
        lines = pd.concat([grp[cols], ind[cols]], ignore_index=True).rename(columns={"id": "order_id"})
        lines["local_day"] = local(lines["created_at"], self.tz).dt.date
        return lines

    def sales(self, start, end, vendor=None) -> pd.DataFrame:
        l = self.lines
        m = (l["status"] == "COMPLETED") & (l["created_at"] >= start) & (l["created_at"] < end)
        if vendor:
            m &= l["vendor_id"] == vendor
        return l[m]

    # -- groups ---------------------------------------------------------------------------------
    def group_states(self, as_of, vendor=None) -> pd.DataFrame:
        """Per non-deleted group: created_at, deal_id, vendor_id, goal, deadline, members, status."""
        g = self.t["groups"]
        g = g[g["deleted_at"].isna() & (g["created_at"] < as_of)]  # nothing created at/after as_of
        g = g.rename(columns={"id": "group_id", "group_deals_id": "deal_id"})
        gd = self.t["group_deals"].rename(columns={"id": "deal_id"})
        g = g.merge(gd[["deal_id", "product_id", "max_group_member", "expiration_time"]], on="deal_id")
        g = g.merge(self._product_dims(), on="product_id")
        if vendor:
            g = g[g["vendor_id"] == vendor]
        g["goal"] = g["max_group_member"].astype(int)
        g["deadline"] = g["created_at"] + pd.to_timedelta(g["expiration_time"].astype(int), unit="h")
        gc = self.t["groups_carts"]
        gc = gc[gc["deleted_at"].isna() & (gc["created_at"] < as_of)]
        first = gc.groupby(["group_id", "user_id"])["created_at"].min().reset_index().sort_values(
            ["group_id", "created_at"])
        first["pos"] = first.groupby("group_id").cumcount() + 1
        members = first.groupby("group_id").size()
        g["members"] = g["group_id"].map(members).fillna(0).astype(int)
        joined = first.set_index(["group_id", "pos"])["created_at"]
        keys = list(zip(g["group_id"], g["goal"]))
        g["goal_at"] = [joined.get(k, pd.NaT) for k in keys]
        done = g["goal_at"].notna() & (g["goal_at"] <= g["deadline"])
        g["status"] = np.where(done, "COMPLETED", np.where(g["deadline"] <= as_of, "EXPIRED", "ACTIVE"))
        return g.reset_index(drop=True)

    def users_before(self, as_of) -> pd.DataFrame:
        u = self.t["users"]
        return u[u["deleted_at"].isna() & (u["created_at"] < as_of)]

    def memberships(self, start, end, vendor=None) -> pd.DataFrame:
        gc = self.t["groups_carts"]
        gc = gc[gc["deleted_at"].isna() & (gc["created_at"] >= start) & (gc["created_at"] < end)]
        g = self.t["groups"]
        g = g[g["deleted_at"].isna()].rename(columns={"id": "group_id"})
        gd = self.t["group_deals"].rename(columns={"id": "group_deals_id"})
        g = g.merge(gd[["group_deals_id", "product_id"]], on="group_deals_id").merge(self._product_dims(), on="product_id")
        if vendor:
            g = g[g["vendor_id"] == vendor]
        return gc.merge(g[["group_id"]], on="group_id")

    def kpis(self, start, end, as_of, vendor=None, states=None) -> dict:
        end = min(end, as_of)
        s = self.sales(start, end, vendor)
        revenue, orders = float(s["revenue"].sum()), int(s["order_id"].nunique())
        gs = self.group_states(as_of, vendor) if states is None else states
        win = gs[(gs["created_at"] >= start) & (gs["created_at"] < end)]
        deals = set(win["deal_id"])
        o = self.t["orders"]
        o = o[o["deleted_at"].isna() & (o["status"] == "COMPLETED") & (o["created_at"] < as_of)]
        gc = self.t["groups_carts"]
        gc = gc[gc["deleted_at"].isna()]
        done_groups = set(gc[gc["id"].isin(o["groups_carts_id"])]["group_id"])
        converted = set(win[win["group_id"].isin(done_groups)]["deal_id"])
        closed = win[win["status"].isin(["COMPLETED", "EXPIRED"])]
        grp = s[s["deal_type"] == "group"]
        participants = self.memberships(start, end, vendor)
        base = self.users_before(as_of)
        participants = participants[participants["user_id"].isin(base["id"])]["user_id"].nunique()
        exp = gs[(gs["status"] == "EXPIRED") & (gs["deadline"] >= start) & (gs["deadline"] < end)]
        o_all = self.t["orders"]
        paid = o_all[o_all["deleted_at"].isna() & o_all["payment_method"].notna()
                     & (o_all["payment_method"] != "CASH_ON_DELIVERY") & (o_all["status"] != "FAILED")
                     & (o_all["created_at"] < as_of)]
        paid = paid.merge(gc[gc["group_id"].isin(exp["group_id"])][["id"]], left_on="groups_carts_id", right_on="id",
                          suffixes=("", "_gc"))

        def rate(n, d):
            return n / d if d else None
        return {"revenue": revenue, "completed_orders": orders, "aov": rate(revenue, orders),
                "deal_conversion_rate": rate(len(converted), len(deals)),
                "group_success_rate": rate(int((closed["status"] == "COMPLETED").sum()), len(closed)),
                "avg_revenue_per_deal": rate(float(grp["revenue"].sum()), grp["group_deal_id"].nunique()),
                "participation_rate": rate(participants, len(base)),
                "refund_total": float(paid["total_amount"].fillna(0).sum()), "refund_orders": int(len(paid))}

    def periods(self, start, end, freq):
        """[(period_start local date, utc start, utc end)] cut to [start, end)."""
        first = local(pd.Series([start]), self.tz).dt.date.iloc[0]
        last = local(pd.Series([end - dt.timedelta(microseconds=1)]), self.tz).dt.date.iloc[0]

        def floor(d):
            return d - dt.timedelta(days=d.weekday()) if freq == "week" else d.replace(day=1) if freq == "month" else d

        def nxt(d):
            if freq == "month":
                return dt.date(d.year + (d.month == 12), d.month % 12 + 1, 1)
            return d + dt.timedelta(days=7 if freq == "week" else 1)
        out, d = [], floor(first)
        while d <= last:
            out.append((d, max(start, local_midnight(d, self.tz)), min(end, local_midnight(nxt(d), self.tz))))
            d = nxt(d)
        return out

    def kpi_series(self, start, end, as_of, freq, vendor=None) -> pd.DataFrame:
        end = min(end, as_of)
        states = self.group_states(as_of, vendor)
        rows = [dict(period_start=p, **self.kpis(s, e, as_of, vendor, states)) for p, s, e in self.periods(start, end, freq)]
        return pd.DataFrame(rows)

    def status_counts(self, as_of, hours, start, end, vendor=None) -> dict:
        gs = self.group_states(as_of, vendor)
        end = min(end, as_of)
        win = gs[(gs["created_at"] >= start) & (gs["created_at"] < end)]
        active = gs[gs["status"] == "ACTIVE"]
        near = active[active["deadline"] - as_of < pd.Timedelta(hours=hours)]
        return {"active": len(active), "nearing_expiry": len(near),
                "completed": int((win["status"] == "COMPLETED").sum()), "expired": int((win["status"] == "EXPIRED").sum())}

    def nearing(self, as_of, hours, vendor=None) -> pd.DataFrame:
        gs = self.group_states(as_of, vendor)
        act = gs[(gs["status"] == "ACTIVE") & (gs["deadline"] - as_of < pd.Timedelta(hours=hours))]
        return act.sort_values(["deadline", "group_id"])[["group_id", "members", "goal", "deadline"]].reset_index(drop=True)

    def status_series(self, start, end, as_of, freq, vendor=None) -> pd.DataFrame:
        gs = self.group_states(as_of, vendor)
        rows = []
        for p, s, e in self.periods(start, min(end, as_of), freq):
            part = gs[(gs["created_at"] >= s) & (gs["created_at"] < e)]
            rows.append({"period_start": p, **{k: int((part["status"] == k.upper()).sum())
                                               for k in ("completed", "expired", "active")}})
        return pd.DataFrame(rows)

    # -- customers --------------------------------------------------------------------------------
    def top_users(self, as_of, n=10, vendor=None) -> pd.DataFrame:
        start = as_of - dt.timedelta(days=30)
        s = self.sales(start, as_of, vendor)
        u = self.t["users"]
        s = s[s["user_id"].isin(u[u["deleted_at"].isna()]["id"])]
        agg = s.groupby("user_id").agg(revenue=("revenue", "sum"), completed_orders=("order_id", "nunique")).reset_index()
        agg["key"] = agg["revenue"].round(2)
        agg = agg.sort_values(["key", "user_id"], ascending=[False, True]).head(n).reset_index(drop=True)
        joined = self.memberships(start, as_of, vendor).groupby("user_id")["group_id"].nunique()
        cats = self.t["categories"].set_index("id")["name"]
        names = s.assign(name=s["category_id"].map(cats)).groupby("user_id")["name"].agg(
            lambda x: ", ".join(sorted(set(x))))
        agg["groups_joined"] = agg["user_id"].map(joined).fillna(0).astype(int)
        agg["categories"] = agg["user_id"].map(names)
        agg["user_name"] = agg["user_id"].map(u.set_index("id")["name"])
        agg["rank"] = range(1, len(agg) + 1)
        return agg[["rank", "user_id", "user_name", "revenue", "completed_orders", "groups_joined", "categories"]]

    def retention(self, as_of, vendor=None) -> pd.DataFrame:
        """index cohort (date), columns 0..3: share of all cohort users; NaN for unfinished months."""
        users = self.users_before(as_of).copy()
        users["cohort"] = local(users["created_at"], self.tz).dt.to_period("M")
        acts = self.memberships(pd.Timestamp.min, as_of, vendor)
        acts = acts.assign(month=local(acts["created_at"], self.tz).dt.to_period("M"))[["user_id", "month"]]
        acts = acts.drop_duplicates().merge(users[["id", "cohort"]], left_on="user_id", right_on="id")
        acts["k"] = [(m - c).n for m, c in zip(acts["month"], acts["cohort"])]
        sizes = users.groupby("cohort").size()
        out = pd.DataFrame(index=[p.start_time.date() for p in sizes.index], columns=[0, 1, 2, 3], dtype=float)
        for cohort, size in sizes.items():
            for k in range(4):
                month = cohort + k
                ended = local_midnight((month + 1).start_time.date(), self.tz) <= as_of
                n = acts[(acts["cohort"] == cohort) & (acts["k"] == k)]["user_id"].nunique()
                out.loc[cohort.start_time.date(), k] = n / size if ended else np.nan
        return out

    def rfm(self, as_of, vendor=None) -> pd.DataFrame:
        s = self.sales(pd.Timestamp.min, as_of, vendor)
        u = self.t["users"]
        s = s[~s["user_id"].isin(u[u["deleted_at"].notna()]["id"])]
        agg = s.groupby("user_id").agg(last=("created_at", "max"), first=("created_at", "min"), frequency=("order_id", "nunique"),
                                       monetary=("revenue", "sum")).reset_index()
        agg["recency_days"] = (as_of - agg["last"]).dt.total_seconds() / 86400
        agg["tenure_days"] = (as_of - agg["first"]).dt.total_seconds() / 86400
        return agg[["user_id", "recency_days", "frequency", "monetary", "tenure_days"]].sort_values("user_id").reset_index(drop=True)

    # -- breakdowns -------------------------------------------------------------------------------
    def _named(self, s: pd.DataFrame) -> pd.DataFrame:
        cats = self.t["categories"].set_index("id")["name"]
        vend = self.t["vendors"].set_index("id")["name"]
        return s.assign(category=s["category_id"].map(cats), vendor=s["vendor_id"].map(vend))

    def vendor_category(self, start, end, vendor=None) -> pd.DataFrame:
        s = self._named(self.sales(start, end, vendor))
        return (s.groupby(["vendor_id", "vendor", "category_id", "category"])["revenue"].sum().reset_index()
                .sort_values(["vendor", "vendor_id", "category", "category_id"]).reset_index(drop=True))

    def category_daily(self, start, end, vendor=None) -> pd.DataFrame:
        s = self._named(self.sales(start, end, vendor))
        return s.groupby(["local_day", "category"])["revenue"].sum()

    def group_vs_individual(self, start, end, by, vendor=None) -> pd.DataFrame:
        s = self._named(self.sales(start, end, vendor))
        key = s["category"] if by == "category" else pd.Series([d.replace(day=1) for d in s["local_day"]], index=s.index)
        s = s.assign(key=key, g=np.where(s["deal_type"] == "group", s["quantity"], 0),
                     i=np.where(s["deal_type"] == "individual", s["quantity"], 0))
        out = s.groupby("key")[["g", "i"]].sum().reset_index().sort_values("key").reset_index(drop=True)
        return out.rename(columns={"g": "group_quantity", "i": "individual_quantity"})

    def category_revenue(self, start, end, vendor=None) -> pd.Series:
        """revenue by category name, every non-deleted category (0 if no sales)."""
        s = self._named(self.sales(start, end, vendor))
        cats = self.t["categories"]
        names = cats[cats["deleted_at"].isna()]["name"]
        return s.groupby("category")["revenue"].sum().reindex(sorted(set(names) | set(s["category"])), fill_value=0.0)

    def growth(self, as_of, days, vendor=None) -> dict:
        cur_start, prev_start = as_of - dt.timedelta(days=days), as_of - dt.timedelta(days=2 * days)
        cur = self.category_revenue(cur_start, as_of, vendor)
        prev = self.category_revenue(prev_start, cur_start, vendor).reindex(cur.index, fill_value=0.0)
        out = {}
        for name in cur.index:
            c, p = cur[name], prev[name]
            out[name] = (c - p) / p if p else ("new" if c > 0 else None)
        return out
