"""Benchmark: flash-sale (秒杀) claims over HTTP on loopback, and the count of oversold units.

    make bench-flash-sale          # 1,000 units, 5,000 customers, 50 clients
    make bench-flash-sale BENCH_ARGS="--units 200 --customers 1000 --clients 20"

Starts the web app under gunicorn (threaded workers) on a free loopback port against a
throwaway database (scrm_bench_flash_sale, created and dropped here), with a running
flash-sale campaign (one item, one unit per customer) and customers holding signed landing
tokens. Each client thread keeps one keep-alive connection and its own cookies: it opens a
landing page once for the CSRF token, then taps "claim" for one customer after another
(POST /c/<token>/claim/, then the page the redirect shows, as a phone would) until the page
says no units are left. Reports successful claims per second, requests per second and claim
latency; the oversold count (claims beyond the units, stock below zero, claims that do not
match the units taken) must be 0, or the run exits non-zero.
"""

import argparse
import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
BENCH_DB = "scrm_bench_flash_sale"
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_UNITS_LEFT = re.compile(r'data-units-left="(\d+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load(*, units: int, customers: int) -> tuple[int, int, list[str]]:
    """A running flash sale with one item of `units`, and `customers` with landing tokens;
    returns (campaign id, stock id, tokens)."""
    import django

    django.setup()
    from django.utils import timezone

    from campaigns.models import Campaign, Stock
    from campaigns.tokens import landing_token
    from contacts.models import Contact

    now = timezone.now()
    campaign = Campaign.objects.create(
        name="秒杀 bench",
        type=Campaign.Type.FLASH_SALE,
        state=Campaign.State.RUNNING,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=1),
        rules={"per_contact": 1, "max_attempts_per_minute": 5},
    )
    stock = Stock.objects.create(
        campaign=campaign, name="茅台 500ml", price_fen=149900, total=units, remaining=units
    )
    people = Contact.objects.bulk_create(
        Contact(external_userid=f"wm-flash-{n:06d}", name=f"客户{n}", first_added_at=now)
        for n in range(customers)
    )
    return campaign.pk, stock.pk, [landing_token(campaign.pk, p.pk) for p in people]


class Browser:
    """One phone: a keep-alive connection and its cookies (CSRF, session)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookies: dict[str, str] = {}
        self.requests = 0

    def request(self, method: str, path: str, body: str | None = None):
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        self.requests += 1
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return response, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=16, help="threads per worker")
    args = parser.parse_args()

    admin_url = os.environ["DATABASE_URL"]
    bench_url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{BENCH_DB}"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
        # Nothing here should queue a task; if something does, keep it out of the real queue.
        "CELERY_TASK_DEFAULT_QUEUE": "bench",
    }
    os.environ.update(env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "scrm.settings")
    server = None
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True
        )
        campaign_id, stock_id, tokens = load(units=args.units, customers=args.customers)
        from django.db import connection

        connection.close()
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "scrm.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(args.threads),
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=env,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)

        lock = threading.Lock()
        claim_latencies: list[float] = []
        tap_latencies: list[float] = []
        failures: list[str] = []
        totals = {"requests": 0, "taps": 0}
        chunks = [tokens[i :: args.clients] for i in range(args.clients)]
        ready = threading.Barrier(args.clients + 1)

        def client(chunk: list[str]) -> None:
            browser = Browser(port)
            claims, taps, mine = [], [], []
            waited = False
            try:
                _response, page = browser.request("GET", f"/c/{chunk[0]}/")
                csrf = _CSRF_INPUT.search(page)[1]
                body = urlencode({"csrfmiddlewaretoken": csrf, "stock": stock_id})
                ready.wait()
                waited = True
                for token in chunk:
                    started = time.perf_counter()
                    response, text = browser.request("POST", f"/c/{token}/claim/", body)
                    posted = time.perf_counter()
                    if response.status != 302:
                        mine.append(f"POST {response.status} {text[:80]!r}")
                        continue
                    response, page = browser.request("GET", response.getheader("Location"))
                    claims.append(posted - started)
                    taps.append(time.perf_counter() - started)
                    left = _UNITS_LEFT.search(page)
                    if response.status != 200 or left is None:
                        mine.append(f"GET {response.status} {page[:80]!r}")
                    elif left[1] == "0":
                        break  # the page says sold out: this phone stops tapping
            except Exception as error:  # reported, and the run fails
                mine.append(repr(error))
                if not waited:
                    ready.abort()  # the sale cannot open fairly: everyone stops
            finally:
                browser.conn.close()
                with lock:
                    claim_latencies.extend(claims)
                    tap_latencies.extend(taps)
                    failures.extend(mine)
                    totals["requests"] += browser.requests
                    totals["taps"] += len(claims)

        threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
        for thread in threads:
            thread.start()
        try:
            ready.wait()  # every client holds its CSRF token: the sale opens now
        except threading.BrokenBarrierError:
            pass  # a client failed to load its page; its error is in `failures`
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started

        with psycopg.connect(bench_url) as conn:
            claimed, claimants = conn.execute(
                "SELECT count(*), count(DISTINCT contact_id) FROM campaigns_claim"
                " WHERE campaign_id = %s",
                [campaign_id],
            ).fetchone()
            total, remaining = conn.execute(
                "SELECT total, remaining FROM campaigns_stock WHERE id = %s", [stock_id]
            ).fetchone()
            rejected = dict(
                conn.execute(
                    "SELECT reason, count(*) FROM campaigns_rejection WHERE campaign_id = %s"
                    " GROUP BY reason",
                    [campaign_id],
                ).fetchall()
            )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')

    def pct(values: list[float], p: float) -> float:
        values = sorted(values)
        return values[min(int(len(values) * p), len(values) - 1)] * 1000 if values else 0.0

    oversold = claimed - args.units
    problems = []
    if oversold > 0:
        problems.append(f"{oversold} units oversold")
    if remaining < 0 or claimed != total - remaining:
        problems.append(f"stock says {total - remaining} taken, {claimed} claims")
    if claimants != claimed:
        problems.append(f"{claimed - claimants} customers got more than one unit")
    if failures:
        problems.append(f"{len(failures)} failed requests, e.g. {failures[:3]}")

    print(
        f"\nFlash sale on loopback: {args.units:,} units, {args.customers:,} customers, "
        f"{args.clients} clients, gunicorn {args.workers} workers × {args.threads} threads"
    )
    rows = [
        ("claims (successful)", f"{claimed:,}"),
        ("claims/s", f"{claimed / elapsed:,.0f}"),
        ("taps (POST claim + page)", f"{totals['taps']:,}"),
        ("requests/s", f"{totals['requests'] / elapsed:,.0f}"),
        (
            "claim POST p50 / p95 ms",
            f"{pct(claim_latencies, 0.5):.1f} / {pct(claim_latencies, 0.95):.1f}",
        ),
        ("tap p50 / p95 ms", f"{pct(tap_latencies, 0.5):.1f} / {pct(tap_latencies, 0.95):.1f}"),
        ("elapsed s", f"{elapsed:.2f}"),
        ("stock remaining", f"{remaining:,} of {total:,}"),
        ("refusals", ", ".join(f"{k} {v:,}" for k, v in sorted(rejected.items())) or "none"),
        ("oversold", f"{max(oversold, 0):,}"),
    ]
    width = max(len(name) for name, _value in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if problems:
        print("FAILED: " + "; ".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
