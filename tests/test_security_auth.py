"""Login, sessions and the audit log through the Flask test client, on a private copy of a
seeded SQLite database with login required (DESIGN §7)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from werkzeug.security import check_password_hash

from dashboard.app import create_app
from dashboard.settings import PROJECT_ROOT, Settings
from data_access import accounts
from data_access.db import make_engine
from tests.support.apps import copy_sqlite

SECRET = "auth-test-secret"
PASSWORDS = {"boss": "manager-pass-1", "vend_a": "vendor-a-pass", "vend_b": "vendor-b-pass",
             "gone": "disabled-pass-1"}


@pytest.fixture(scope="module")
def db(seeded, tmp_path_factory):
    """A writable copy of the small seeded database with four accounts (one disabled)."""
    source = seeded("sqlite", 0.02, 1)
    url = copy_sqlite(source, tmp_path_factory.mktemp("auth") / "auth.sqlite")
    engine = make_engine(url)
    with engine.begin() as conn:
        vendors = [str(v) for v in conn.execute(sa.text(
            "SELECT DISTINCT vendor_id FROM products ORDER BY vendor_id")).scalars()]
        accounts.add_account(conn, "boss", PASSWORDS["boss"], "manager")
        accounts.add_account(conn, "vend_a", PASSWORDS["vend_a"], "vendor", vendors[0])
        accounts.add_account(conn, "vend_b", PASSWORDS["vend_b"], "vendor", vendors[1])
        accounts.add_account(conn, "gone", PASSWORDS["gone"], "vendor", vendors[0])
        accounts.set_disabled(conn, "gone")
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def app(db):
    return create_app(Settings(database_url=db.url.render_as_string(hide_password=False),
                               secret_key=SECRET, require_login=True))


@pytest.fixture
def client(app):
    return app.server.test_client()


def login(client, username, password=None, **extra):
    return client.post("/login", data={"username": username,
                                       "password": PASSWORDS.get(username, "") if password is None else password,
                                       **extra})


def audit_rows(engine, action=None, username=None) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(accounts.audit_log).order_by(accounts.audit_log.c.id)).mappings().all()
    return [dict(r) for r in rows if (action is None or r["action"] == action)
            and (username is None or r["username"] == username)]


# -- login / logout --------------------------------------------------------------------------

def test_login_page_is_public_and_pages_redirect_to_it(client):
    page = client.get("/login")
    assert page.status_code == 200 and b'id="login-submit"' in page.data
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert client.get("/healthz").status_code == 200


def test_dash_api_without_login_is_401(client):
    body = {"output": "overview-compare.figure", "outputs": {"id": "overview-compare", "property": "figure"},
            "inputs": [], "state": [], "changedPropIds": []}
    for path in ("/_dash-update-component", "/_dash-layout", "/_dash-dependencies"):
        response = client.post(path, json=body) if path == "/_dash-update-component" else client.get(path)
        assert response.status_code == 401, path
        assert b"Traceback" not in response.data


def test_login_then_logout(client, db):
    response = login(client, "boss")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/_dash-layout").status_code == 200
    assert client.get("/logout").headers["Location"] == "/login"
    assert client.get("/").status_code == 302
    assert client.get("/_dash-layout").status_code == 401


def test_wrong_password_and_unknown_user_get_the_same_answer(client):
    wrong = login(client, "boss", "not-the-password")
    unknown = login(client, "nobody", "whatever-123")
    for response in (wrong, unknown):
        assert response.status_code == 200
        assert b"Wrong username or password." in response.data
    assert client.get("/").status_code == 302


def test_disabled_account_cannot_log_in(client):
    response = login(client, "gone")
    assert response.status_code == 200 and b"Wrong username or password." in response.data
    assert client.get("/_dash-layout").status_code == 401


def test_disabling_an_account_ends_its_open_session(app, db):
    client = app.server.test_client()
    with db.begin() as conn:
        accounts.add_account(conn, "short_lived", "short-lived-pass", "manager")
    assert login(client, "short_lived", "short-lived-pass").status_code == 302
    assert client.get("/_dash-layout").status_code == 200
    with db.begin() as conn:
        accounts.set_disabled(conn, "short_lived")
    assert client.get("/_dash-layout").status_code == 401


@pytest.mark.parametrize("username", ["' OR '1'='1", "boss'--", "x" * 5000, "boss\x00"])
def test_hostile_usernames_are_just_wrong(client, username):
    response = login(client, username, "' OR '1'='1")
    assert response.status_code == 200 and b"Wrong username or password." in response.data
    assert b"Traceback" not in response.data


# -- passwords and cookies -------------------------------------------------------------------

def test_passwords_are_stored_hashed(db):
    with db.connect() as conn:
        rows = {r["username"]: r["password_hash"] for r in conn.execute(
            sa.select(accounts.accounts.c.username, accounts.accounts.c.password_hash)).mappings()}
    for username, password in PASSWORDS.items():
        stored = rows[username]
        assert password not in stored
        assert stored.split(":", 1)[0] in ("scrypt", "pbkdf2")
        assert check_password_hash(stored, password)
    assert rows["vend_a"] != rows["vend_b"]


def test_session_cookie_is_httponly_samesite_and_signed(client):
    response = login(client, "boss")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    value = client.get_cookie("session").value
    assert "boss" not in value  # not readable as plain text either (zlib/base64 + signature)
    assert client.get("/_dash-layout").status_code == 200

    tampered = value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB")
    client.set_cookie("session", tampered)
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/").status_code == 302


def _forged_session_cookie(secret: str, username: str) -> str:
    """A session cookie claiming `username`, signed with `secret` (as Flask would sign it)."""
    forger = Flask("forger")
    forger.secret_key = secret
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    return serializer.dumps({"_user_id": username, "_fresh": True})


def test_session_signed_with_another_secret_is_not_a_login(app):
    client = app.server.test_client()
    client.set_cookie("session", _forged_session_cookie("guessed-secret", "boss"))
    assert client.get("/_dash-layout").status_code == 401
    # control: the same payload signed with the real secret is accepted, so the refusal above
    # is the signature check and not a malformed cookie
    client.set_cookie("session", _forged_session_cookie(SECRET, "boss"))
    assert client.get("/_dash-layout").status_code == 200


# -- redirects -------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "http:evil.example",
                                    "/\t/evil.example", "javascript:alert(1)", "evil.example"])
def test_next_parameter_cannot_leave_the_site(client, target):
    page = client.get("/login", query_string={"next": target})
    assert b"evil.example" not in page.data and b"javascript:" not in page.data
    response = login(client, "boss", next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_next_with_backslash_cannot_leave_the_site(client):
    response = login(client, "boss", next="/\\evil.example")
    assert "evil.example" not in response.headers["Location"]


def test_next_parameter_keeps_a_local_path(client):
    redirect_to_login = client.get("/forecast")
    assert redirect_to_login.headers["Location"] == "/login?next=/forecast"
    response = login(client, "boss", next="/forecast")
    assert response.headers["Location"] == "/forecast"


# -- configuration ---------------------------------------------------------------------------

def test_production_database_without_secret_key_refuses_to_start():
    settings = Settings(database_url="postgresql+psycopg2://pulse@127.0.0.1:1/pulse", secret_key=None)
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set"):
        create_app(settings)


# -- audit log -------------------------------------------------------------------------------

def test_login_failed_login_and_logout_are_audited(app, db):
    client = app.server.test_client()
    before = len(audit_rows(db))
    login(client, "vend_a", "wrong-password")
    login(client, "vend_a")
    client.get("/logout")
    new = audit_rows(db)[before:]
    assert [(r["username"], r["action"]) for r in new] == [
        ("vend_a", "login_failed"), ("vend_a", "login"), ("vend_a", "logout")]
    assert all(r["at"] is not None for r in new)
    assert PASSWORDS["vend_a"] not in " ".join(str(r["detail"]) for r in new)


def test_export_is_audited_with_user_and_table(app, db):
    client = app.server.test_client()
    assert client.post("/audit/export", json={"table": "customers-segment-table"}).status_code == 401
    login(client, "vend_b")
    before = len(audit_rows(db))
    response = client.post("/audit/export", json={"table": "customers-segment-table"})
    assert response.status_code == 204
    (row,) = audit_rows(db)[before:]
    assert (row["username"], row["action"], row["detail"]) == ("vend_b", "export", "customers-segment-table")
    assert row["at"] is not None


@pytest.mark.parametrize("payload", [None, {"table": ""}, {"table": ["a"]}, {"table": "x" * 201},
                                     {"table": "a\nb"}, {"nope": 1}, ["customers-top"]])
def test_export_audit_rejects_malformed_bodies(app, db, payload):
    client = app.server.test_client()
    login(client, "boss")
    before = len(audit_rows(db))
    response = (client.post("/audit/export", data="table=x") if payload is None
                else client.post("/audit/export", json=payload))
    assert response.status_code == 400 and b"Traceback" not in response.data
    assert len(audit_rows(db)) == before


def test_export_audit_script_is_served_with_the_page(app):
    client = app.server.test_client()
    login(client, "boss")
    page = client.get("/").get_data(as_text=True)
    assert "audit_export.js" in page
    script = (PROJECT_ROOT / "assets" / "audit_export.js").read_text()
    assert "/audit/export" in script and "button.export" in script


# -- users CLI -------------------------------------------------------------------------------

def _cli(db, *args, password=None):
    env = {**os.environ, "PULSE_PASSWORD": password or ""}
    env.pop("DATABASE_URL", None)
    url = db.url.render_as_string(hide_password=False)
    return subprocess.run([sys.executable, "-m", "dashboard", "--database-url", url, "users", *args],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_users_cli_add_list_disable_set_password(app, db):
    with db.connect() as conn:
        vendor_id = conn.execute(sa.text("SELECT vendor_id FROM pulse_accounts WHERE username = 'vend_a'")).scalar()
    added = _cli(db, "add", "cli_vendor", "--role", "vendor", "--vendor-id", vendor_id, password="cli-password-1")
    assert added.returncode == 0, added.stderr
    assert "added vendor cli_vendor" in added.stdout

    client = app.server.test_client()
    assert login(client, "cli_vendor", "cli-password-1").status_code == 302
    client.get("/logout")

    listed = _cli(db, "list")
    assert listed.returncode == 0
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("cli_vendor "))
    assert "vendor" in line and vendor_id in line and "active" in line
    assert "cli-password-1" not in listed.stdout

    changed = _cli(db, "set-password", "cli_vendor", password="cli-password-2")
    assert changed.returncode == 0, changed.stderr
    assert login(client, "cli_vendor", "cli-password-1").status_code == 200  # old one refused
    assert login(client, "cli_vendor", "cli-password-2").status_code == 302
    client.get("/logout")

    disabled = _cli(db, "disable", "cli_vendor")
    assert disabled.returncode == 0, disabled.stderr
    assert "disabled" in next(ln for ln in _cli(db, "list").stdout.splitlines() if ln.startswith("cli_vendor "))
    assert login(client, "cli_vendor", "cli-password-2").status_code == 200

    cli_audit = [r["action"] for r in audit_rows(db, username="cli")]
    assert {"users_add", "users_set-password", "users_disable"} <= set(cli_audit)


@pytest.mark.parametrize("args, password, expected", [
    (("add", "bad_vendor", "--role", "vendor", "--vendor-id", "00000000-0000-4000-8000-000000000000"),
     "long-enough-1", "unknown vendor id"),
    (("add", "short_pw"), "short", "at least 8 characters"),
    (("add", "boss"), "long-enough-1", "already exists"),
    (("disable", "nobody"), None, "no account"),
])
def test_users_cli_errors_are_one_line(db, args, password, expected):
    result = _cli(db, *args, password=password)
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_password_guessing_is_slowed_down(tmp_path, seeded):
    """Five wrong passwords for one account, then even the right one is refused for a while."""
    from data_access.accounts import add_account
    from data_access.db import init_db, make_engine
    from tests.support.apps import app_for, copy_sqlite
    engine = make_engine(copy_sqlite(seeded("sqlite", 0.02, 1), tmp_path / "guess.sqlite"))
    init_db(engine)
    with engine.begin() as conn:
        add_account(conn, "target", "right-password", "manager")
    client = app_for(engine, require_login=True).server.test_client()
    for _ in range(5):
        assert "Wrong username or password" in client.post("/login", data={"username": "target",
                                                                            "password": "guess"}).get_data(True)
    blocked = client.post("/login", data={"username": "target", "password": "right-password"})
    assert blocked.status_code == 429 and "Too many failed attempts" in blocked.get_data(True)
