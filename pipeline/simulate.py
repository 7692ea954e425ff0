"""`python -m dashboard simulate --rate R`: live demo traffic through ChipChip's own tables.

It plays ChipChip's app: users sign up, open groups on deals and join them before the deadline,
every groups_carts row gets its order, completed groups' orders complete after a processing
delay, groups that miss their deadline are stored FAILED with their orders CANCELED, and
individual cart orders come and go. One transaction per action, so PostgreSQL triggers, the
ETL's interval refresh, expiries and refunds can be watched working. A few one-hour "flash"
deals (copies of existing deals) make expiries happen within the hour.
"""
from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import sqlalchemy as sa

from data_access.db import ensure_order_partitions
from data_access.schema import carts, group_deals, groups, groups_carts, orders, personal_cart_items, users

PAYMENTS = [("CHAPA", 0.32), ("CHIPCHIP_PAY", 0.14), ("CHIPCHIP_WALLET", 0.2), ("WE_BIRR", 0.1),
            ("CASH_ON_DELIVERY", 0.24)]


@dataclass
class SimStats:
    users: int = 0
    groups: int = 0
    joins: int = 0
    completed: int = 0
    expired: int = 0
    individual: int = 0
    seconds: float = 0.0


@dataclass
class OpenGroup:
    id: str
    deal: dict
    deadline: dt.datetime
    members: set = field(default_factory=set)
    orders: list = field(default_factory=list)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Simulator:
    def __init__(self, engine: sa.Engine, seed: int = 0, flash_deals: int = 3):
        self.engine, self.rng = engine, random.Random(seed)
        self.stats, self.open, self.due = SimStats(), {}, []  # due: (time, kind, ids)
        self._month = None
        with engine.connect() as conn:
            self.deals = [dict(r) for r in conn.execute(sa.text(
                "SELECT id, product_id, max_group_member, group_price, expiration_time, max_quantity_per_order "
                "FROM group_deals WHERE deleted_at IS NULL")).mappings()]
            self.users = [str(u) for u in conn.execute(sa.text(
                "SELECT id FROM users WHERE deleted_at IS NULL ORDER BY created_at DESC LIMIT 3000")).scalars()]
            self.prices = [(str(p), float(v)) for p, v in conn.execute(sa.text(
                "SELECT product_id, MAX(original_price) FROM single_deals WHERE deleted_at IS NULL GROUP BY product_id"))]
        if not self.deals or not self.users:
            raise ValueError("no group deals or users to simulate with: seed the database first")
        for d in self.deals:
            d["id"], d["product_id"], d["group_price"] = str(d["id"]), str(d["product_id"]), float(d["group_price"])
        self._flash(flash_deals)

    @staticmethod
    def uid() -> str:
        """Fresh random ids even with a fixed seed: a second run must not collide with the first."""
        return str(uuid.uuid4())

    def _flash(self, n: int) -> None:
        """One-hour copies of a few deals, so simulated groups can expire while you watch (made once:
        later runs reuse the one-hour deals they find)."""
        self.flash = [d for d in self.deals if int(d["expiration_time"]) == 1]
        if self.flash:
            return
        now, rows = _now(), []
        for d in self.rng.sample(self.deals, min(n, len(self.deals))):
            rows.append({**d, "id": self.uid(), "expiration_time": 1, "max_group_member": max(3, d["max_group_member"]),
                         "effective_from": now, "effective_to": now + dt.timedelta(days=30), "created_at": now,
                         "updated_at": now})
        if rows:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(group_deals), rows)
        self.flash = rows

    def _order(self, conn, now, amount: float, gc_id=None, cart_id=None) -> str:
        oid = self.uid()
        discount = round(amount * self.rng.uniform(0.05, 0.15)) if self.rng.random() < 0.25 else 0.0
        pay = self.rng.choices([p for p, _ in PAYMENTS], [w for _, w in PAYMENTS])[0]
        conn.execute(sa.insert(orders).values(
            id=oid, groups_carts_id=gc_id, personal_cart_id=cart_id, status="PENDING",
            total_amount=round(amount - discount, 2), discount=discount, payment_method=pay,
            created_at=now, updated_at=now))
        return oid

    def signup(self, conn, now) -> str:
        user = self.uid()
        conn.execute(sa.insert(users).values(id=user, name=f"Live user {user[:6]}", phone=None, email=None,
                                             user_status="VERIFIED", created_at=now, updated_at=now))
        self.users.append(user)
        self.stats.users += 1
        return user

    def new_group(self, conn, now) -> None:
        deal = self.rng.choice(self.flash if self.flash and self.rng.random() < 0.3 else self.deals)
        g = OpenGroup(self.uid(), deal, now + dt.timedelta(hours=int(deal["expiration_time"])))
        user = self.rng.choice(self.users)
        conn.execute(sa.insert(groups).values(id=g.id, group_deals_id=deal["id"], created_by=user, status="PENDING",
                                              created_at=now, updated_at=now))
        self.open[g.id] = g
        self.stats.groups += 1
        self.join(conn, now, g, user)

    def join(self, conn, now, g: OpenGroup, user: str | None = None) -> None:
        user = user or self.rng.choice(self.users)
        if user in g.members:
            user = self.signup(conn, now)
        deal, gc = g.deal, self.uid()
        qty = min(self.rng.randint(1, 3), int(deal["max_quantity_per_order"] or 3))
        conn.execute(sa.insert(groups_carts).values(id=gc, group_id=g.id, user_id=user, quantity=qty,
                                                    status="ACTIVE", created_at=now, updated_at=now))
        g.members.add(user)
        g.orders.append(self._order(conn, now, qty * deal["group_price"], gc_id=gc))
        self.stats.joins += 1
        status = "COMPLETED" if len(g.members) >= int(deal["max_group_member"]) else "ACTIVE"
        conn.execute(sa.update(groups).where(groups.c.id == g.id).values(status=status, updated_at=now))
        if status == "COMPLETED":
            self.stats.completed += 1
            del self.open[g.id]
            self.due.append((now + dt.timedelta(seconds=self.rng.uniform(5, 90)), "complete", list(g.orders)))

    def individual(self, conn, now) -> None:
        cart, user = self.uid(), self.rng.choice(self.users)
        conn.execute(sa.insert(carts).values(id=cart, user_id=user, status="CHECKED_OUT", created_at=now, updated_at=now))
        total = 0.0
        for product, price in self.rng.sample(self.prices, min(len(self.prices), self.rng.randint(1, 3))):
            qty = self.rng.randint(1, 2)
            conn.execute(sa.insert(personal_cart_items).values(id=self.uid(), cart_id=cart, product_id=product,
                                                               quantity=qty, created_at=now, updated_at=now))
            total += qty * price
        oid = self._order(conn, now, total, cart_id=cart)
        self.due.append((now + dt.timedelta(seconds=self.rng.uniform(10, 120)), "complete", [oid]))
        self.stats.individual += 1

    def maintain(self, conn, now) -> None:
        """ChipChip's back office: complete processed orders, fail groups past their deadline."""
        ready = [d for d in self.due if d[0] <= now]
        self.due = [d for d in self.due if d[0] > now]
        for _, _, ids in ready:
            conn.execute(sa.update(orders).where(orders.c.id.in_(ids), orders.c.status == "PENDING")
                         .values(status="COMPLETED", updated_at=now))
        for g in [g for g in self.open.values() if g.deadline <= now]:
            conn.execute(sa.update(groups).where(groups.c.id == g.id).values(status="FAILED", updated_at=now))
            conn.execute(sa.update(orders).where(orders.c.id.in_(g.orders)).values(status="CANCELED", updated_at=now))
            del self.open[g.id]
            self.stats.expired += 1

    def step(self) -> None:
        now = _now()
        with self.engine.begin() as conn:
            if (now.year, now.month) != self._month:
                ensure_order_partitions(conn, now, now + dt.timedelta(days=1))
                self._month = (now.year, now.month)
            r = self.rng.random()
            if r < 0.08:
                self.signup(conn, now)
            elif r < 0.22:
                self.individual(conn, now)
            elif r < 0.5 or not self.open:
                self.new_group(conn, now)
            else:
                self.join(conn, now, self.rng.choice(list(self.open.values())))
            self.maintain(conn, now)


def simulate(engine: sa.Engine, rate: float, duration: float | None = None, seed: int = 0,
             stop: threading.Event | None = None, report=print, flash_deals: int = 3) -> SimStats:
    """Insert about `rate` actions per second (Poisson arrivals) for `duration` seconds (None:
    until stopped)."""
    if not rate > 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    sim, stop = Simulator(engine, seed, flash_deals), stop or threading.Event()
    started = next_at = last_report = time.monotonic()
    while not stop.is_set() and (duration is None or time.monotonic() - started < duration):
        next_at += sim.rng.expovariate(rate)
        if stop.wait(max(0.0, next_at - time.monotonic())):
            break
        sim.step()
        if report and time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            s = sim.stats
            report(f"simulate: {s.groups} groups, {s.joins} joins, {s.completed} completed, {s.expired} expired, "
                   f"{s.individual} individual orders, {s.users} new users, {len(sim.open)} open")
    sim.stats.seconds = time.monotonic() - started
    return sim.stats
