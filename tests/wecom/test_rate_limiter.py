"""The shared limiter holds WeCom's limits across every worker."""

import os
import threading
import time
import uuid

import pytest
import redis

from wecom.errors import WeComRateLimited
from wecom.ratelimit import Limit, WeComLimiter


@pytest.fixture
def limiter_for():
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    prefix = f"test:limit:{uuid.uuid4().hex}"

    def make(**kwargs) -> WeComLimiter:
        return WeComLimiter(redis.Redis.from_url(os.environ["REDIS_URL"]), prefix=prefix, **kwargs)

    yield make
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def hammer(limiter_for, *, workers: int, seconds: float, on_call):
    stop = time.monotonic() + seconds

    def worker():
        limiter = limiter_for(default=Limit(per_second=40, burst=1, concurrency=workers))
        while time.monotonic() < stop:
            with limiter.slot("externalcontact/mark_tag"):
                on_call()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_eight_workers_together_stay_within_the_rate(limiter_for):
    calls: list[float] = []
    hammer(limiter_for, workers=8, seconds=2.5, on_call=lambda: calls.append(time.monotonic()))

    assert max_in_window(calls, 1.0) <= 41  # 40/s; one more can sit on the window's edge
    assert len(calls) >= 80  # and the limiter does let calls through at about that rate


def test_concurrent_calls_never_exceed_the_cap(limiter_for):
    limiter = limiter_for(default=Limit(per_second=1000, burst=1000, concurrency=3))
    running, peak, lock = 0, 0, threading.Lock()

    def call():
        nonlocal running, peak
        with limiter.slot("externalcontact/remark"):
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.02)
            with lock:
                running -= 1

    threads = [threading.Thread(target=lambda: [call() for _ in range(5)]) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert peak == 3


def test_after_wecom_says_45009_every_process_pauses_that_api(limiter_for):
    first, second = limiter_for(default=Limit(per_second=100)), limiter_for(default=Limit(10))
    first.pause("externalcontact/add_msg_template")

    with pytest.raises(WeComRateLimited) as raised:
        with second.slot("externalcontact/add_msg_template"):
            pass
    assert 55 < raised.value.retry_after <= 60
    with second.slot("externalcontact/get"):  # other APIs go on
        pass


def test_a_wait_longer_than_allowed_is_refused_not_slept(limiter_for):
    limiter = limiter_for(default=Limit(per_second=1, burst=1), max_wait=0.2)
    with limiter.slot("externalcontact/get"):
        pass

    started = time.monotonic()
    with pytest.raises(WeComRateLimited):
        with limiter.slot("externalcontact/get"):
            pass
    assert time.monotonic() - started < 0.5
