"""Settings read from environment variables, with documented defaults.

Every knob lives here so `create_app(settings)` and the CLI take one object and tests can
build as many differently-configured apps as they like.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "data" / "chipchip_demo.sqlite"


def _number(env, name: str, default: float, kind=float):
    """Read a numeric variable; a malformed value is a clear error, not a traceback later."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return kind(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be a number, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Runtime configuration (see README "Configuration")."""

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    refresh_interval_seconds: float = 300.0
    secret_key: str | None = None
    timezone: str = "Africa/Addis_Ababa"
    nearing_expiry_hours: float = 2.0
    cache_type: str = "SimpleCache"
    cache_redis_url: str | None = None
    cache_dir: str | None = None
    cache_timeout_seconds: int = 3600
    demo_scale: float = 1.0
    demo_seed: int = 42
    statement_timeout_ms: int = 10_000
    require_login: bool = True
    secure_cookies: bool = False
    warm_cache: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def is_demo(self) -> bool:
        """Demo mode: embedded SQLite and no secret configured (make run on a laptop)."""
        return self.is_embedded and not self.secret_key

    @property
    def is_embedded(self) -> bool:
        """True when running on the default embedded SQLite file (demo mode)."""
        return self.database_url.startswith("sqlite")

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: dict | None = None) -> "Settings":
        env = os.environ if env is None else env
        get = env.get
        return cls(
            database_url=get("DATABASE_URL") or cls.database_url,
            refresh_interval_seconds=_number(env, "REFRESH_INTERVAL_SECONDS", 300.0),
            secret_key=get("SECRET_KEY") or None,
            timezone=get("TIMEZONE") or "Africa/Addis_Ababa",
            nearing_expiry_hours=_number(env, "NEARING_EXPIRY_HOURS", 2.0),
            cache_type=get("CACHE_TYPE") or "SimpleCache",
            cache_redis_url=get("CACHE_REDIS_URL") or None,
            cache_dir=get("CACHE_DIR") or None,
            cache_timeout_seconds=_number(env, "CACHE_TIMEOUT_SECONDS", 3600, int),
            demo_scale=_number(env, "DEMO_SCALE", 1.0),
            demo_seed=_number(env, "DEMO_SEED", 42, int),
            statement_timeout_ms=_number(env, "STATEMENT_TIMEOUT_MS", 10_000, int),
            require_login=(get("REQUIRE_LOGIN") or "1").lower() not in ("0", "false", "no"),
            secure_cookies=(get("SESSION_COOKIE_SECURE") or "0").lower() in ("1", "true", "yes"),
            warm_cache=(get("WARM_CACHE") or "1").lower() not in ("0", "false", "no"),
        )
