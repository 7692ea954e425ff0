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
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from data_access.dialect import bind_ts, project_table, to_utc_naive
from data_access.meta import bump_data_version, get_meta, set_meta
from data_access.operations import naive_utc, read_df
from data_access.pipeline_tables import group_state

INSTALL_KEY = "group_tracking_version"
VERSION = "2"  # bump when the SQL functions change: the next sweep reinstalls them
WATERMARK_KEY = "group_state_watermark"
SWEEP_KEY = "group_sweep_mark"
EPOCH = dt.datetime(1970, 1, 1)
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
           RETURNING s.group_id, s.derived_status, s.goal_reached_at, s.deadline, s.members, s.goal, s.created_at),
    ev AS (SELECT group_id, CASE derived_status WHEN 'COMPLETED' THEN 'goal_reached' ELSE 'nearing_expiry' END AS kind,
                  CASE derived_status WHEN 'COMPLETED' THEN goal_reached_at
                       ELSE GREATEST(created_at, deadline - near) END AS at
           FROM up WHERE derived_status IN ('COMPLETED', 'NEARING_EXPIRY')),
    ins AS (INSERT INTO pulse.pulse_group_events (group_id, kind, at, recorded_at, notified)
            SELECT group_id, kind, at, clock_timestamp(), do_notify AND at >= at_ts - interval '1 day' FROM ev
            ON CONFLICT (group_id, kind) DO NOTHING RETURNING group_id, kind, at, notified)
    SELECT ins.*, up.members, up.goal, up.deadline FROM ins JOIN up USING (group_id)
  LOOP
    n := n + 1;
    IF ev.notified THEN  -- live events only: a backfill or bulk load of history stays quiet
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


def derive_frame(conn, ids: list[str] | None, now: dt.datetime, near_hours: float) -> pd.DataFrame:
    """The §4 derivation in pandas (the SQLite path; identical rules to pulse.refresh_groups).
    `ids` None: every group (one pass, no id lists)."""
    only = "" if ids is None else " AND {} IN :ids"
    binds = [] if ids is None else [sa.bindparam("ids", expanding=True)]
    g = read_df(conn, "SELECT g.id AS group_id, gd.id AS group_deal_id, gd.product_id, p.vendor_id, "
                "gd.max_group_member AS goal, g.created_at, gd.expiration_time, g.status AS stored_status "
                "FROM groups g JOIN group_deals gd ON gd.id = g.group_deals_id "
                "JOIN products p ON p.id = gd.product_id WHERE g.deleted_at IS NULL" + only.format("g.id"),
                {"ids": ids}, binds)
    m = read_df(conn, "SELECT group_id, user_id, MIN(created_at) AS joined FROM groups_carts WHERE deleted_at "
                "IS NULL AND created_at <= :now" + only.format("group_id") + " GROUP BY group_id, user_id",
                {"ids": ids, "now": bind_ts(conn, now)}, binds)
    naive_utc(g, "created_at")
    g["deadline"] = g["created_at"] + pd.to_timedelta(g["expiration_time"].astype("int64"), unit="h")
    naive_utc(m, "joined")
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


def _sqlite_rows(df: pd.DataFrame) -> list[tuple]:
    """Rows for executemany with timestamps in SQLite's stored text form (vectorised: 100K+ rows)."""
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    out = out.astype(object)
    return list(out.where(out.notna(), None).itertuples(index=False, name=None))


def _refresh_py(conn, ids: list[str] | None, now: dt.datetime) -> None:
    """SQLite path of pulse.refresh_groups: rewrite the state rows, add goal/nearing events."""
    near_h = float(get_meta(conn, NEAR_KEY) or 2.0)
    g = derive_frame(conn, ids, now, near_h)
    g["updated_at"] = pd.Timestamp(now_utc())
    conn.execute(sa.delete(group_state) if ids is None else sa.delete(group_state).where(group_state.c.group_id.in_(ids)))
    cols = [c.name for c in group_state.columns]
    if len(g):
        conn.exec_driver_sql(f"INSERT INTO pulse_group_state ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                             _sqlite_rows(g[cols]))
    done = g.loc[g["derived_status"] == "COMPLETED", ["group_id", "goal_reached_at"]].set_axis(["group_id", "at"], axis=1)
    near = g.loc[g["derived_status"] == "NEARING_EXPIRY"]
    near = pd.DataFrame({"group_id": near["group_id"], "at": np.maximum(near["created_at"], near["deadline"]
                                                                         - pd.Timedelta(hours=near_h))})
    events = pd.concat([done.assign(kind="goal_reached"), near.assign(kind="nearing_expiry")])
    if len(events):
        events = events.assign(recorded_at=g["updated_at"].iloc[0], notified=0)
        conn.exec_driver_sql("INSERT INTO pulse_group_events (group_id, at, kind, recorded_at, notified) "
                             "VALUES (?, ?, ?, ?, ?) ON CONFLICT (group_id, kind) DO NOTHING", _sqlite_rows(events))


def bump_version(conn) -> None:
    """bump_data_version, serialised on PostgreSQL: its delete+insert of one key would otherwise
    fail with a unique violation when two pipeline transactions bump at the same time."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('pulse_data_version'))"))
    bump_data_version(conn)


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
        if wm is not None:
            lo = dt.datetime.fromisoformat(wm) - dt.timedelta(seconds=overlap_seconds)
            ids = [str(i) for i in conn.execute(sa.text(
                "SELECT id FROM groups WHERE updated_at > :lo UNION "
                "SELECT group_id FROM groups_carts WHERE updated_at > :lo"), {"lo": bind_ts(conn, lo)}).scalars()]
            refresh(conn, ids, now)
            n = len(ids)
        else:  # backfill: every group in one set-based pass, no notifications for history
            n = conn.execute(sa.text("SELECT COUNT(*) FROM groups")).scalar_one()
            if pg:
                conn.execute(sa.text("SELECT pulse.refresh_groups(ARRAY(SELECT id FROM groups), :at, false)"),
                             {"at": bind_ts(conn, now)})
            else:
                _refresh_py(conn, None, now)
        if hi is not None:  # rows changed after `now` (a derivation in the past) are seen again later
            set_meta(conn, WATERMARK_KEY, min(hi, to_utc_naive(now)).isoformat())
        if n:
            bump_version(conn)
    return n


@dataclass
class SweepResult:
    refreshed: int = 0
    nearing: int = 0
    expired: int = 0
    refunds: int = 0


# Paid = captured when the member joined: not cash on delivery, not FAILED, nothing soft-deleted.
REFUNDS_SQL = """
INSERT INTO {refunds} (id, order_id, group_id, user_id, amount, payment_method, status, attempts, created_at, updated_at)
SELECT {new_id}, o.id, gc.group_id, gc.user_id, o.total_amount, o.payment_method, 'pending', 0, :stamp, :stamp
FROM {state} s JOIN groups_carts gc ON gc.group_id = s.group_id JOIN orders o ON o.groups_carts_id = gc.id
WHERE s.group_id IN :ids AND s.derived_status = 'EXPIRED' AND o.deleted_at IS NULL AND gc.deleted_at IS NULL
  AND o.payment_method IS NOT NULL AND o.payment_method <> 'CASH_ON_DELIVERY'
  AND o.status <> 'FAILED' AND o.total_amount IS NOT NULL
ON CONFLICT (order_id) DO NOTHING RETURNING id
"""
SQLITE_UUID4 = ("lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) "
                "|| '-' || substr('89ab', 1 + abs(random()) % 4, 1) || substr(hex(randomblob(2)), 2) || '-' "
                "|| hex(randomblob(6)))")


def _expire(conn, ids: list[str], now: dt.datetime) -> tuple[int, int]:
    """Record the expiry of `ids` still expired after rederiving, and refund their paid orders
    (set-based; events and refunds ignore rows that exist: a re-run adds only what is missing)."""
    pg = conn.dialect.name == "postgresql"
    refresh(conn, ids, now)
    state, events, refunds_t = (project_table(conn, t) for t in
                                ("pulse_group_state", "pulse_group_events", "pulse_refunds"))
    p = {"ids": ids, "stamp": bind_ts(conn, now_utc()), "n": pg}
    ids_bind = sa.bindparam("ids", expanding=True)
    if pg:  # concurrent sweepers serialise on the groups they expire
        conn.execute(sa.text(f"SELECT 1 FROM {state} WHERE group_id IN :ids ORDER BY group_id FOR UPDATE"
                             ).bindparams(ids_bind), p)
    p["live"] = bind_ts(conn, now - dt.timedelta(days=1))  # older expiries are history: not announced
    new = conn.execute(sa.text(
        f"INSERT INTO {events} (group_id, kind, at, recorded_at, notified) SELECT group_id, 'expired', deadline, "
        f":stamp, CASE WHEN :n AND deadline >= :live THEN 1 = 1 ELSE 1 = 0 END FROM {state} "
        f"WHERE derived_status = 'EXPIRED' AND group_id IN :ids "
        f"ON CONFLICT (group_id, kind) DO NOTHING RETURNING group_id, notified").bindparams(ids_bind), p).all()
    live = [str(g) for g, notified in new if notified]
    if pg and live:
        conn.execute(sa.text("SELECT pg_notify('pulse_groups', json_build_object('kind', 'expired', 'group_id', g)::text) "
                             "FROM unnest(CAST(:g AS text[])) AS g"), {"g": live})
    made = conn.execute(sa.text(REFUNDS_SQL.format(refunds=refunds_t, state=state, new_id="gen_random_uuid()" if pg
                                                   else SQLITE_UUID4)).bindparams(ids_bind), p).all()
    return len(new), len(made)


def sweep(engine: sa.Engine, nearing_expiry_hours: float = 2.0, now: dt.datetime | None = None,
          grace_seconds: float = 60) -> SweepResult:
    """Bring group state up to `now`: rederive changed groups (SQLite), flag groups entering the
    nearing-expiry window, expire groups whose deadline passed `grace_seconds` ago (the grace
    lets late commits of on-time joins land first), and refund paid orders that reached an
    already expired group since the last sweep."""
    now = to_utc_naive(now or now_utc())
    started = now_utc()
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
        mark = get_meta(conn, SWEEP_KEY)
        due = [str(i) for i in conn.execute(sa.text(
            f"SELECT s.group_id FROM {state} s WHERE s.derived_status <> 'COMPLETED' AND s.deadline <= :cutoff "
            f"AND (NOT EXISTS (SELECT 1 FROM {events} e WHERE e.group_id = s.group_id AND e.kind = 'expired') "
            f"OR (s.derived_status = 'EXPIRED' AND s.updated_at > :mark)) ORDER BY s.deadline"),
            {"cutoff": bind_ts(conn, now - dt.timedelta(seconds=grace_seconds)),
             "mark": bind_ts(conn, dt.datetime.fromisoformat(mark) - dt.timedelta(minutes=5) if mark else EPOCH)}
        ).scalars()]
    for part in _chunks(due):
        with engine.begin() as conn:
            n_groups, n_refunds = _expire(conn, part, now)
            out.expired += n_groups
            out.refunds += n_refunds
            if n_groups or n_refunds:
                bump_version(conn)
    with engine.begin() as conn:
        set_meta(conn, SWEEP_KEY, started.isoformat())
    return out
