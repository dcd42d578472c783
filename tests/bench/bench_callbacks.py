"""Benchmark: WeCom webhook throughput on loopback (callbacks/s accepted, latency percentiles).

    make bench-callbacks                               # 5,000 callbacks, 16 clients
    make bench-callbacks BENCH_ARGS="--callbacks 20000 --clients 32"

Starts the web app under gunicorn on a free port against a throwaway database, then posts
distinct, correctly encrypted and signed add_member callbacks from concurrent clients (each
with a keep-alive connection). Every answer must be 200 "success", and every callback must be
stored exactly once. Bounded in count; traffic stays on 127.0.0.1.
"""

import argparse
import http.client
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from wechatpy.enterprise.crypto import WeChatCrypto

ROOT = Path(__file__).resolve().parents[2]
BENCH_DB = "scrm_bench_callbacks"
# The development credentials (scrm/settings.py): the bench runs without real WeCom.
TOKEN, AES_KEY, CORP_ID = "fake-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wwfakecorp"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def callback_bodies(count: int) -> list[tuple[str, bytes]]:
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    bodies = []
    for i in range(count):
        inner = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[sys]]>"
            f"</FromUserName><CreateTime>{1_760_000_000 + i}</CreateTime><MsgType><![CDATA[event]]>"
            "</MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrbench]]>"
            "</ChatId><ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]>"
            f"</UpdateDetail><JoinScene>3</JoinScene><MemChangeCnt>1</MemChangeCnt><MemChangeList>"
            f"<Item><![CDATA[wmbench{i}]]></Item></MemChangeList></xml>"
        )
        nonce, timestamp = secrets.token_hex(5), str(int(time.time()))
        envelope = crypto.encrypt_message(inner, nonce, timestamp)
        encrypted = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        signature = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
        query = f"/wecom/callback?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        body = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        bodies.append((query, body.encode()))
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    args = parser.parse_args()

    admin_url = os.environ["DATABASE_URL"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    env = {
        **os.environ,
        "DATABASE_URL": urlunsplit(urlsplit(admin_url)._replace(path=f"/{BENCH_DB}")),
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
        # The bench never runs a worker: keep its queued tasks out of the real queue.
        "CELERY_TASK_DEFAULT_QUEUE": "bench",
    }
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
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
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        bodies = callback_bodies(args.callbacks)
        latencies: list[float] = []
        failures: list[str] = []
        lock = threading.Lock()
        chunks = [bodies[i :: args.clients] for i in range(args.clients)]

        def client(chunk):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            mine = []
            for query, body in chunk:
                started = time.perf_counter()
                conn.request("POST", query, body=body, headers={"Content-Type": "text/xml"})
                response = conn.getresponse()
                text = response.read()
                mine.append(time.perf_counter() - started)
                if response.status != 200 or text != b"success":
                    with lock:
                        failures.append(f"{response.status} {text[:80]!r}")
            conn.close()
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            stored = conn.execute("SELECT count(*) FROM wecom_callback").fetchone()[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}"')

    latencies.sort()
    pct = lambda p: latencies[min(int(len(latencies) * p), len(latencies) - 1)] * 1000  # noqa: E731
    print(
        f"\nWeCom webhook on loopback: {args.callbacks:,} callbacks, {args.clients} clients, "
        f"gunicorn {args.workers} workers"
    )
    print(f"accepted/s   {args.callbacks / elapsed:,.0f}")
    print(
        f"latency ms   p50 {pct(0.50):.1f}   p95 {pct(0.95):.1f}   p99 {pct(0.99):.1f}   "
        f"max {latencies[-1] * 1000:.1f}   mean {statistics.mean(latencies) * 1000:.1f}"
    )
    print(f"stored once  {stored:,} of {args.callbacks:,}; failures {len(failures)}")
    assert not failures, failures[:5]
    assert stored == args.callbacks


if __name__ == "__main__":
    main()
