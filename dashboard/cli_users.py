"""`users add|list|disable|enable|set-password`: dashboard accounts (passwords hashed)."""
from __future__ import annotations

import getpass
import os


def add_users_parser(sub):
    u = sub.add_parser("users", help="manage dashboard accounts")
    u.add_argument("action", choices=["add", "list", "disable", "enable", "set-password"])
    u.add_argument("username", nargs="?")
    u.add_argument("--role", choices=["manager", "vendor"], default="manager")
    u.add_argument("--vendor-id", default=None)
    u.add_argument("--password-env", default="PULSE_PASSWORD",
                   help="read the password from this environment variable (else prompt)")
    return u


def _password(args) -> str:
    value = os.environ.get(args.password_env)
    if value:
        return value
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ValueError("passwords differ")
    return first


def cmd_users(settings, args, engine_factory):
    from data_access import accounts
    from data_access.db import init_db
    engine = engine_factory(settings)
    init_db(engine)
    if args.action != "list" and not args.username:
        raise ValueError(f"users {args.action} needs a username")
    with engine.begin() as conn:
        if args.action == "list":
            for row in accounts.list_accounts(conn):
                state = "disabled" if row["disabled"] else "active"
                print(f"{row['username']:<20} {row['role']:<8} {row['vendor_id'] or '-':<38} {state}")
        elif args.action == "add":
            accounts.add_account(conn, args.username, _password(args), args.role, args.vendor_id)
            print(f"added {args.role} {args.username}")
        elif args.action == "set-password":
            accounts.set_password(conn, args.username, _password(args))
            print(f"password changed for {args.username}")
        else:
            accounts.set_disabled(conn, args.username, args.action == "disable")
            print(f"{args.action}d {args.username}")
        accounts.audit(conn, "cli", f"users_{args.action}", args.username or "")
