"""A bad configuration stops start-up with one line naming the variable and the problem."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start(command: list[str], **overrides: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return subprocess.run(
        [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("overrides", "named", "problem"),
    [
        ({"DATABASE_URL": "mysql://root@localhost/scrm"}, "DATABASE_URL", "not a PostgreSQL URL"),
        ({"DATABASE_URL": "postgresql://u@localhost:5432"}, "DATABASE_URL", "names no database"),
        ({"DATABASE_URL": None}, "DATABASE_URL", "is not set"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL", "not a Redis URL"),
        ({"REDIS_URL": "redis://localhost:port/0"}, "REDIS_URL", "port that is not a number"),
        ({"SCRM_ENV": "staging"}, "SCRM_ENV", "unknown"),
        ({"DEBUG": "maybe"}, "DEBUG", "not a boolean"),
        (
            {"SCRM_ENV": "production", "DJANGO_SECRET_KEY": None, "ALLOWED_HOSTS": "scrm.example"},
            "DJANGO_SECRET_KEY",
            "required in production",
        ),
        (
            {"SCRM_ENV": "production", "DJANGO_SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": None},
            "ALLOWED_HOSTS",
            "required in production",
        ),
    ],
)
def test_a_bad_variable_stops_manage_py_with_one_line_naming_it(overrides, named, problem):
    result = start(["manage.py", "check"], **overrides)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0] and problem in lines[0]


def test_the_worker_and_web_entry_points_check_the_configuration_too():
    bad = {"DATABASE_URL": "sqlite:///db.sqlite3"}
    for command in (
        ["-c", "import scrm.wsgi"],
        ["-m", "celery", "-A", "scrm.celery", "inspect", "ping"],
    ):
        result = start(command, **bad)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.strip().splitlines() == [
            "scrm: configuration error: DATABASE_URL='sqlite:///db.sqlite3' is not a PostgreSQL "
            "URL; expected postgresql://user:password@host:port/dbname"
        ]


def test_a_good_configuration_passes_the_checks():
    result = start(["manage.py", "check"])

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
