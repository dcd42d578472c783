"""Without DATABASE_URL / REDIS_URL the launcher starts real servers that keep their data."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Runs inside the launcher: talks to both servers the way the product does.
CHILD = """
import os, sys, psycopg, redis
db = psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)
print("postgres:", db.execute("SELECT 1").fetchone()[0] == 1)
if sys.argv[1] != "ping":
    db.execute("CREATE TABLE IF NOT EXISTS kept (note text)")
if sys.argv[1] == "write":
    db.execute("INSERT INTO kept VALUES ('从上次保留')")
if sys.argv[1] != "ping":
    print("rows:", [r[0] for r in db.execute("SELECT note FROM kept")])
print("redis:", redis.Redis.from_url(os.environ["REDIS_URL"]).ping())
print("urls:", os.environ["DATABASE_URL"].split("@")[0], os.environ["REDIS_URL"].split(":")[0])
"""


def launch(data_dir: Path, *args: str, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SCRM_DATA_DIR=str(data_dir), **env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "scrm.embedded", "--", sys.executable, "-c", CHILD, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_embedded_servers_start_and_keep_their_data_across_restarts(tmp_path):
    first = launch(tmp_path, "write")
    second = launch(tmp_path, "read")

    assert first.returncode == 0, first.stderr
    assert "redis: True" in first.stdout
    assert "urls: postgresql://postgres unix" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "rows: ['从上次保留']" in second.stdout
    assert (tmp_path / "postgres").is_dir()


def test_urls_that_are_set_are_used_and_nothing_is_started(tmp_path):
    result = launch(
        tmp_path,
        "ping",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
    )

    assert result.returncode == 0, result.stderr
    assert "postgres: True" in result.stdout
    assert "servers up" not in result.stderr
    assert not (tmp_path / "postgres").exists()


def test_the_commands_exit_code_is_passed_on(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scrm.embedded", "--", sys.executable, "-c", "raise SystemExit(3)"],
        cwd=ROOT,
        env={**os.environ, "SCRM_DATA_DIR": str(tmp_path)},
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 3
