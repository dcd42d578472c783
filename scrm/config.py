"""Typed readers for the environment variables that configure the product.

Every reader fails with ``ConfigError`` whose message names the variable and the problem, so
start-up stops with one readable line instead of a traceback (see ``exit_on_bad_config``).
"""

import os
import sys
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
POSTGRES_SCHEMES = {"postgres", "postgresql", "pgsql"}
REDIS_SCHEMES = {"redis", "rediss", "redis+socket", "unix"}


class ConfigError(ImproperlyConfigured):
    """A configuration variable is missing or malformed."""


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ConfigError(f"{name} is not set; it is required in production mode")
        return default
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} is too small; the minimum is {minimum}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(name: str, url: str) -> dict:
    """Django DATABASES entry for a PostgreSQL URL; anything else is a ConfigError."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in POSTGRES_SCHEMES:
        raise ConfigError(
            f"{name}={url!r} is not a PostgreSQL URL; "
            "expected postgresql://user:password@host:port/dbname"
        )
    try:
        parsed = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    except ValueError as exc:
        raise ConfigError(f"{name}={url!r} is malformed: {exc}") from None
    if not parsed.get("NAME"):
        raise ConfigError(f"{name}={url!r} names no database; add /dbname to the URL")
    return parsed


def redis_url(name: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        raise ConfigError(
            f"{name}={url!r} is not a Redis URL; expected redis://host:port/db "
            "or redis+socket:///path/to/redis.socket"
        )
    if parts.scheme in {"redis", "rediss"}:
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError(f"{name}={url!r} has a port that is not a number") from None
        if not parts.hostname:
            raise ConfigError(f"{name}={url!r} names no host")
    return url


def exit_on_bad_config(settings_module: str) -> None:
    """Import the settings; on a ConfigError print one line naming the variable and stop."""
    import importlib

    try:
        importlib.import_module(settings_module)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"scrm: configuration error: {exc}\n")
        raise SystemExit(2) from None
