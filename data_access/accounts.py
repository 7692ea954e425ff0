"""Dashboard accounts (managers, vendors bound to one vendors.id) and the audit log.

Passwords are stored as werkzeug hashes (scrypt); never in clear, never logged.
"""
from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from data_access.schema import PROJECT_SCHEMA, TS, UUID, metadata

ROLES = ("manager", "vendor")

accounts = sa.Table(
    "pulse_accounts", metadata,
    sa.Column("username", sa.String(80), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("vendor_id", UUID),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", TS, nullable=False),
    schema=PROJECT_SCHEMA,
)

audit_log = sa.Table(
    "pulse_audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", TS, nullable=False),
    sa.Column("username", sa.String(80)),
    sa.Column("action", sa.String(40), nullable=False),  # login, login_failed, logout, export, refund...
    sa.Column("detail", sa.String(400)),
    sa.Index("ix_audit_at", "at"),
    schema=PROJECT_SCHEMA,
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def add_account(conn, username: str, password: str, role: str, vendor_id: str | None = None) -> None:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not username or len(username) > 80:
        raise ValueError("username must be 1-80 characters")
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    if role == "vendor":
        if not vendor_id:
            raise ValueError("a vendor account needs --vendor-id")
        known = conn.execute(sa.text("SELECT COUNT(*) FROM vendors WHERE id = :v"), {"v": vendor_id}).scalar()
        if not known:
            raise ValueError(f"unknown vendor id {vendor_id}")
    elif vendor_id:
        raise ValueError("a manager account is not bound to a vendor")
    if get_account(conn, username) is not None:
        raise ValueError(f"account {username!r} already exists")
    conn.execute(sa.insert(accounts).values(username=username, password_hash=generate_password_hash(password),
                                            role=role, vendor_id=vendor_id, disabled=False, created_at=_now()))


def get_account(conn, username: str) -> dict | None:
    row = conn.execute(sa.select(accounts).where(accounts.c.username == username)).mappings().first()
    if row is None:
        return None
    out = dict(row)
    out["vendor_id"] = str(out["vendor_id"]) if out["vendor_id"] else None
    return out


def verify(conn, username: str, password: str) -> dict | None:
    """The account if the password matches and it is enabled; None otherwise (no hint which)."""
    account = get_account(conn, username) if isinstance(username, str) and len(username) <= 80 else None
    if account is None or account["disabled"] or not check_password_hash(account["password_hash"], password or ""):
        return None
    return account


def set_password(conn, username: str, password: str) -> None:
    if len(password) < 8:
        raise ValueError("password must be at least 8 characters")
    n = conn.execute(sa.update(accounts).where(accounts.c.username == username)
                     .values(password_hash=generate_password_hash(password))).rowcount
    if not n:
        raise ValueError(f"no account {username!r}")


def set_disabled(conn, username: str, disabled: bool = True) -> None:
    if not conn.execute(sa.update(accounts).where(accounts.c.username == username)
                        .values(disabled=disabled)).rowcount:
        raise ValueError(f"no account {username!r}")


def list_accounts(conn) -> list[dict]:
    rows = conn.execute(sa.select(accounts.c.username, accounts.c.role, accounts.c.vendor_id, accounts.c.disabled)
                        .order_by(accounts.c.username)).mappings()
    return [dict(r) for r in rows]


def audit(conn, username: str | None, action: str, detail: str = "") -> None:
    conn.execute(sa.insert(audit_log).values(at=_now(), username=username, action=action, detail=detail[:400]))
