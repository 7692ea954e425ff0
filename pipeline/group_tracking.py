"""Group-deal status tracking (DESIGN.md §4): derived state, events, and the expiry sweeper.

On PostgreSQL statement-level triggers on groups_carts and groups call `pulse.refresh_groups`,
which rederives the touched groups set-wise (so a COPY of 100K rows costs one refresh, not 100K)
and `pg_notify('pulse_groups', ...)` the first time a group reaches its goal or enters the
nearing-expiry window. On SQLite the sweeper derives the same in Python from a watermark.
Passing time is the sweeper's job on both: it flags groups entering the window and expires groups
whose deadline passed — recording the expiry and the refunds of their paid orders in one
transaction (refund order_id is unique, events are unique per group and kind: never twice).
"""
from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data_access.dialect import bind_ts, project_table, to_utc_naive
from data_access.frames import read_df
from data_access.meta import bump_data_version, get_meta, set_meta
from data_access.pipeline_tables import group_events, group_state, refunds

INSTALL_KEY = "group_tracking_version"
VERSION = "1"
WATERMARK_KEY = "group_state_watermark"
NEAR_KEY = "nearing_expiry_hours"
CHUNK = 2000

REFRESH_FN = """
CREATE OR REPLACE FUNCTION pulse.refresh_groups(ids uuid[], at_ts timestamptz, do_notify boolean)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  near interval := make_interval(secs => COALESCE(
    (SELECT value FROM pulse.pulse_meta WHERE key = 'nearing_expiry_hours'), '2')::float8 * 3600);
  ev record;
  n integer := 0;
BEGIN
  DELETE FROM pulse.pulse_group_state s USING unnest(ids) AS t(id) WHERE s.group_id = t.id
    AND NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = t.id AND g.deleted_at IS NULL);
  FOR ev IN
    WITH t AS (SELECT DISTINCT unnest(ids) AS id),
    tg AS (SELECT g.id, gd.id AS deal_id, gd.product_id, p.vendor_id, gd.max_group_member AS goal,
                  g.created_at, g.created_at + gd.expiration_time * interval '1 hour' AS deadline, g.status
           FROM t JOIN groups g ON g.id = t.id JOIN group_deals gd ON gd.id = g.group_deals_id
           JOIN products p ON p.id = gd.product_id WHERE g.deleted_at IS NULL),
    m AS (SELECT gc.group_id, gc.user_id, MIN(gc.created_at) AS joined FROM t
          JOIN groups_carts gc ON gc.group_id = t.id
          WHERE gc.deleted_at IS NULL AND gc.created_at <= at_ts GROUP BY gc.group_id, gc.user_id),
    r AS (SELECT group_id, joined, ROW_NUMBER() OVER (PARTITION BY group_id ORDER BY joined) AS rn FROM m),
    agg AS (SELECT r.group_id, COUNT(*) AS members, MAX(r.joined) FILTER (WHERE r.rn = tg.goal) AS reached
            FROM r JOIN tg ON tg.id = r.group_id GROUP BY r.group_id),
    st AS (SELECT tg.*, COALESCE(agg.members, 0) AS members, agg.reached,
                  CASE WHEN agg.reached <= tg.deadline THEN 'COMPLETED'
                       WHEN at_ts >= tg.deadline THEN 'EXPIRED'
                       WHEN tg.deadline - at_ts < near THEN 'NEARING_EXPIRY'
                       ELSE 'ACTIVE' END AS derived
           FROM tg LEFT JOIN agg ON agg.group_id = tg.id),
    up AS (INSERT INTO pulse.pulse_group_state AS s (group_id, group_deal_id, product_id, vendor_id,
             members, goal, created_at, deadline, goal_reached_at, derived_status, stored_status, updated_at)
           SELECT id, deal_id, product_id, vendor_id, members, goal, created_at, deadline, reached, derived,
                  status, clock_timestamp() FROM st
           ON CONFLICT (group_id) DO UPDATE SET group_deal_id = EXCLUDED.group_deal_id,
             product_id = EXCLUDED.product_id, vendor_id = EXCLUDED.vendor_id, members = EXCLUDED.members,
             goal = EXCLUDED.goal, created_at = EXCLUDED.created_at, deadline = EXCLUDED.deadline,
             goal_reached_at = EXCLUDED.goal_reached_at, derived_status = EXCLUDED.derived_status,
             stored_status = EXCLUDED.stored_status, updated_at = EXCLUDED.updated_at
           RETURNING s.group_id, s.derived_status, s.goal_reached_at, s.deadline, s.members, s.goal),
    ins AS (INSERT INTO pulse.pulse_group_events (group_id, kind, at, recorded_at, notified)
            SELECT group_id, CASE derived_status WHEN 'COMPLETED' THEN 'goal_reached' ELSE 'nearing_expiry' END,
                   CASE derived_status WHEN 'COMPLETED' THEN goal_reached_at ELSE deadline - near END,
                   clock_timestamp(), do_notify
            FROM up WHERE derived_status IN ('COMPLETED', 'NEARING_EXPIRY')
            ON CONFLICT (group_id, kind) DO NOTHING RETURNING group_id, kind, at)
    SELECT ins.*, up.members, up.goal, up.deadline FROM ins JOIN up USING (group_id)
  LOOP
    n := n + 1;
    IF do_notify THEN
      PERFORM pg_notify('pulse_groups', json_build_object('kind', ev.kind, 'group_id', ev.group_id,
        'at', ev.at, 'members', ev.members, 'goal', ev.goal, 'deadline', ev.deadline)::text);
    END IF;
  END LOOP;
  RETURN n;
END $fn$;
"""

TRIGGER_FNS = """
CREATE OR REPLACE FUNCTION pulse.on_groups_carts() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM pulse.refresh_groups(ARRAY(SELECT DISTINCT group_id FROM new_rows), clock_timestamp(), true);
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM pulse.refresh_groups(ARRAY(SELECT group_id FROM new_rows UNION SELECT group_id FROM old_rows),
                                 clock_timestamp(), true);
  ELSE
    PERFORM pulse.refresh_groups(ARRAY(SELECT DISTINCT group_id FROM old_rows), clock_timestamp(), true);
  END IF;
  RETURN NULL;
END $fn$;
CREATE OR REPLACE FUNCTION pulse.on_groups() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM pulse.refresh_groups(ARRAY(SELECT id FROM old_rows), clock_timestamp(), true);
  ELSE
    PERFORM pulse.refresh_groups(ARRAY(SELECT id FROM new_rows), clock_timestamp(), true);
  END IF;
  RETURN NULL;
END $fn$;
CREATE OR REPLACE FUNCTION pulse.on_orders() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('pulse_orders', TG_OP);
  RETURN NULL;
END $fn$;
"""

TRIGGERS = [  # (name, table, event, transition tables, function)
    ("pulse_gc_ins", "groups_carts", "INSERT", "NEW TABLE AS new_rows", "on_groups_carts"),
    ("pulse_gc_upd", "groups_carts", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", "on_groups_carts"),
    ("pulse_gc_del", "groups_carts", "DELETE", "OLD TABLE AS old_rows", "on_groups_carts"),
    ("pulse_g_ins", "groups", "INSERT", "NEW TABLE AS new_rows", "on_groups"),
    ("pulse_g_upd", "groups", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", "on_groups"),
    ("pulse_g_del", "groups", "DELETE", "OLD TABLE AS old_rows", "on_groups"),
    ("pulse_orders_notify", "orders", "INSERT OR UPDATE OR DELETE", "", "on_orders"),
]


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def install(engine: sa.Engine, nearing_expiry_hours: float = 2.0, now: dt.datetime | None = None) -> int:
    """Create functions and triggers (PostgreSQL; idempotent) and backfill the state table.

    Returns the number of groups derived. Safe to call on every `init-db`.
    """
    with engine.begin() as conn:
        set_meta(conn, NEAR_KEY, repr(float(nearing_expiry_hours)))
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('pulse_group_tracking'))"))
            conn.exec_driver_sql(REFRESH_FN.replace("%", "%%"))
            conn.exec_driver_sql(TRIGGER_FNS.replace("%", "%%"))
            for name, table, event, refs, fn in TRIGGERS:
                conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON {table}")
                referencing = f"REFERENCING {refs} " if refs else ""
                conn.exec_driver_sql(f"CREATE TRIGGER {name} AFTER {event} ON {table} {referencing}"
                                     f"FOR EACH STATEMENT EXECUTE FUNCTION pulse.{fn}()")
        first = get_meta(conn, INSTALL_KEY) != VERSION
        set_meta(conn, INSTALL_KEY, VERSION)
    return refresh_changed(engine, now or now_utc(), full=first)


def ensure_installed(engine: sa.Engine, nearing_expiry_hours: float = 2.0) -> None:
    with engine.connect() as conn:
        done = get_meta(conn, INSTALL_KEY) == VERSION
    if not done:
        install(engine, nearing_expiry_hours)


def _chunks(ids: list, n: int = CHUNK):
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def refresh(conn, ids: list[str], now: dt.datetime, notify: bool = True) -> None:
    """Rederive the given groups as of `now` (inside the caller's transaction)."""
    for part in _chunks([str(i) for i in ids]):
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pulse.refresh_groups(CAST(:ids AS uuid[]), :at, :notify)"),
                         {"ids": part, "at": bind_ts(conn, now), "notify": notify})
        else:
            _refresh_py(conn, part, now)


def _ts(s: pd.Series) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_localize(None) if s.dt.tz is not None else s
    return pd.to_datetime(s, format="ISO8601", utc=True).dt.tz_localize(None)


def derive_frame(conn, ids: list[str], now: dt.datetime, near_hours: float) -> pd.DataFrame:
    """The §4 derivation in pandas (the SQLite path; identical rules to pulse.refresh_groups)."""
    binds = [sa.bindparam("ids", expanding=True)]
    g = read_df(conn, "SELECT g.id AS group_id, gd.id AS group_deal_id, gd.product_id, p.vendor_id, "
                "gd.max_group_member AS goal, g.created_at, gd.expiration_time, g.status AS stored_status "
                "FROM groups g JOIN group_deals gd ON gd.id = g.group_deals_id "
                "JOIN products p ON p.id = gd.product_id WHERE g.deleted_at IS NULL AND g.id IN :ids",
                {"ids": ids}, binds)
    m = read_df(conn, "SELECT group_id, user_id, MIN(created_at) AS joined FROM groups_carts "
                "WHERE deleted_at IS NULL AND created_at <= :now AND group_id IN :ids GROUP BY group_id, user_id",
                {"ids": ids, "now": bind_ts(conn, now)}, binds)
    g["created_at"] = _ts(g["created_at"])
    g["deadline"] = g["created_at"] + pd.to_timedelta(g["expiration_time"].astype("int64"), unit="h")
    m["joined"] = _ts(m["joined"])
    m = m.sort_values(["group_id", "joined"], kind="stable")
    m["rn"] = m.groupby("group_id").cumcount() + 1
    m = m.merge(g[["group_id", "goal"]], on="group_id")
    g = g.merge(m.groupby("group_id").size().rename("members"), on="group_id", how="left")
    g = g.merge(m[m["rn"] == m["goal"]].set_index("group_id")["joined"].rename("goal_reached_at"),
                on="group_id", how="left")
    g["members"] = g["members"].fillna(0).astype(int)
    now_ts, near = pd.Timestamp(to_utc_naive(now)), pd.Timedelta(hours=near_hours)
    reached = g["goal_reached_at"].notna() & (g["goal_reached_at"] <= g["deadline"])
    g["derived_status"] = np.select(
        [reached, now_ts >= g["deadline"], (g["deadline"] - now_ts) < near],
        ["COMPLETED", "EXPIRED", "NEARING_EXPIRY"], "ACTIVE")
    return g.drop(columns=["expiration_time"])


def _parse(v) -> dt.datetime | None:
    """A timestamp from either backend (text on SQLite, aware on PostgreSQL) as naive UTC."""
    if v is None:
        return None
    return to_utc_naive(dt.datetime.fromisoformat(v) if isinstance(v, str) else v)


def _py(v):
    return None if pd.isna(v) else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v)


def _refresh_py(conn, ids: list[str], now: dt.datetime) -> None:
    near_h = float(get_meta(conn, NEAR_KEY) or 2.0)
    g = derive_frame(conn, ids, now, near_h)
    stamp = now_utc()
    conn.execute(sa.delete(group_state).where(group_state.c.group_id.in_(ids)))
    cols = [c.name for c in group_state.columns if c.name != "updated_at"]
    rows = [{**{c: _py(v) for c, v in zip(cols, r)}, "updated_at": stamp}
            for r in g[cols].itertuples(index=False, name=None)]
    if rows:
        conn.execute(sa.insert(group_state), rows)
    done = g[g["derived_status"] == "COMPLETED"]
    near = g[g["derived_status"] == "NEARING_EXPIRY"]
    events = ([{"group_id": r, "kind": "goal_reached", "at": _py(t)} for r, t in
               zip(done["group_id"], done["goal_reached_at"])]
              + [{"group_id": r, "kind": "nearing_expiry", "at": _py(t)} for r, t in
                 zip(near["group_id"], near["deadline"] - pd.Timedelta(hours=near_h))])
    if events:
        conn.execute(insert_ignore(conn, group_events),
                     [{**e, "recorded_at": stamp, "notified": False} for e in events])


def bump_version(conn) -> None:
    """bump_data_version, serialised on PostgreSQL: its delete+insert of one key would otherwise
    fail with a unique violation when two pipeline transactions bump at the same time."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('pulse_data_version'))"))
    bump_data_version(conn)


def insert_ignore(conn, table: sa.Table):
    """INSERT ... ON CONFLICT DO NOTHING for either backend."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def refresh_changed(engine: sa.Engine, now: dt.datetime, full: bool = False, overlap_seconds: float = 300) -> int:
    """Rederive groups whose rows changed since the watermark (all of them when `full`).

    PostgreSQL needs this only for the first backfill (triggers keep it current afterwards).
    """
    with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        if pg and not full:
            return 0
        his = [_parse(conn.execute(sa.text(f"SELECT MAX(updated_at) FROM {t}")).scalar())
               for t in ("groups", "groups_carts")]
        hi = max((v for v in his if v is not None), default=None)
        wm = None if full else get_meta(conn, WATERMARK_KEY)
        if wm is None:
            ids = [str(i) for i in conn.execute(sa.text("SELECT id FROM groups")).scalars()]
        else:
            lo = dt.datetime.fromisoformat(wm) - dt.timedelta(seconds=overlap_seconds)
            ids = [str(i) for i in conn.execute(sa.text(
                "SELECT id FROM groups WHERE updated_at > :lo UNION "
                "SELECT group_id FROM groups_carts WHERE updated_at > :lo"), {"lo": bind_ts(conn, lo)}).scalars()]
        refresh(conn, ids, now, notify=not full)
        if hi is not None:  # rows changed after `now` (a derivation in the past) are seen again later
            set_meta(conn, WATERMARK_KEY, min(hi, to_utc_naive(now)).isoformat())
        if ids:
            bump_version(conn)
    return len(ids)


@dataclass
class SweepResult:
    refreshed: int = 0
    nearing: int = 0
    expired: int = 0
    refunds: int = 0


PAID_ORDERS_SQL = """
SELECT o.id, gc.group_id, gc.user_id, o.total_amount, o.payment_method
FROM orders o JOIN groups_carts gc ON gc.id = o.groups_carts_id
WHERE gc.group_id IN :ids AND o.deleted_at IS NULL AND gc.deleted_at IS NULL
  AND o.payment_method IS NOT NULL AND o.payment_method <> 'CASH_ON_DELIVERY'
  AND o.status <> 'FAILED' AND o.total_amount IS NOT NULL
"""


def _expire(conn, ids: list[str], now: dt.datetime) -> tuple[int, int]:
    """Record the expiry of `ids` (those still expired after rederiving) and their refunds."""
    pg = conn.dialect.name == "postgresql"
    refresh(conn, ids, now)
    state = project_table(conn, "pulse_group_state")
    stmt = sa.text(f"SELECT group_id, deadline FROM {state} WHERE derived_status = 'EXPIRED' "
                   f"AND group_id IN :ids{' ORDER BY group_id FOR UPDATE' if pg else ''}"
                   ).bindparams(sa.bindparam("ids", expanding=True))
    expired = conn.execute(stmt, {"ids": ids}).all()
    if not expired:
        return 0, 0
    stamp = now_utc()
    conn.execute(insert_ignore(conn, group_events), [{"group_id": str(g), "kind": "expired", "at": _parse(d), "recorded_at": stamp, "notified": pg}
                  for g, d in expired])
    if pg:
        conn.execute(sa.text("SELECT pg_notify('pulse_groups', json_build_object('kind', 'expired', "
                             "'group_id', CAST(:g AS text))::text)"), [{"g": str(g)} for g, _ in expired])
    rows = conn.execute(sa.text(PAID_ORDERS_SQL).bindparams(sa.bindparam("ids", expanding=True)),
                        {"ids": [str(g) for g, _ in expired]}).all()
    made = 0
    if rows:
        res = conn.execute(insert_ignore(conn, refunds).returning(refunds.c.id), [
            {"id": str(uuid.uuid4()), "order_id": str(o), "group_id": str(g), "user_id": str(u), "amount": a,
             "payment_method": pm, "status": "pending", "attempts": 0, "created_at": stamp,
             "updated_at": stamp} for o, g, u, a, pm in rows])
        made = len(res.all())
    return len(expired), made


def sweep(engine: sa.Engine, nearing_expiry_hours: float = 2.0, now: dt.datetime | None = None,
          grace_seconds: float = 60) -> SweepResult:
    """Bring group state up to `now`: rederive changed groups (SQLite), flag groups entering the
    nearing-expiry window, expire groups whose deadline passed `grace_seconds` ago (the grace
    lets late commits of on-time joins land first)."""
    now = to_utc_naive(now or now_utc())
    ensure_installed(engine, nearing_expiry_hours)
    out = SweepResult(refreshed=refresh_changed(engine, now))
    state, events = (project_table(engine, t) for t in ("pulse_group_state", "pulse_group_events"))
    with engine.begin() as conn:
        ids = [str(i) for i in conn.execute(sa.text(
            f"SELECT group_id FROM {state} WHERE derived_status = 'ACTIVE' AND deadline > :now "
            f"AND deadline < :edge"), {"now": bind_ts(conn, now),
                                       "edge": bind_ts(conn, now + dt.timedelta(hours=nearing_expiry_hours))}
        ).scalars()]
        refresh(conn, ids, now)
        out.nearing = len(ids)
    with engine.connect() as conn:
        due = [str(i) for i in conn.execute(sa.text(
            f"SELECT s.group_id FROM {state} s WHERE s.derived_status <> 'COMPLETED' AND s.deadline <= :cutoff "
            f"AND NOT EXISTS (SELECT 1 FROM {events} e WHERE e.group_id = s.group_id AND e.kind = 'expired') "
            f"ORDER BY s.deadline"), {"cutoff": bind_ts(conn, now - dt.timedelta(seconds=grace_seconds))}
        ).scalars()]
    for part in _chunks(due):
        with engine.begin() as conn:
            n_groups, n_refunds = _expire(conn, part, now)
            out.expired += n_groups
            out.refunds += n_refunds
            if n_groups:
                bump_version(conn)
    return out
