"""Shared fixtures: the database and Redis are the real servers the run was started with;
WeCom is the fake WeCom server over real HTTP; Celery tasks run in a real worker."""

import os
import time

import pytest
import redis
from django.conf import settings as django_settings

from wecom import gateway
from wecom.fake import FakeWeCom


@pytest.fixture
def redis_client():
    return redis.Redis.from_url(os.environ["REDIS_URL"])


class Clock:
    """The fake WeCom's clock: real time, which a test can move forward."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def fake_wecom(settings, redis_client):
    """A fake WeCom on a free port, with the gateway pointed at it and a clean token cache.

    `fake_wecom.clock.advance(s)` moves WeCom's time (callback CreateTime, join times)."""
    for key in redis_client.scan_iter("wecom*"):
        redis_client.delete(key)
    fake = FakeWeCom(
        corp_id=django_settings.WECOM_CORP_ID,
        secret=django_settings.WECOM_SECRET,
        token=django_settings.WECOM_TOKEN,
        aes_key=django_settings.WECOM_AES_KEY,
        agent_id=django_settings.WECOM_AGENT_ID,
        clock=(clock := Clock()),
    )
    fake.clock = clock
    fake.start()
    settings.WECOM_API_BASE = fake.api_base
    gateway.client.cache_clear()
    yield fake
    fake.stop()
    gateway.client.cache_clear()


@pytest.fixture
def celery_worker_thread(transactional_db):
    """A real Celery worker consuming from the Redis broker, in a thread of this process."""
    from celery.contrib.testing.worker import start_worker

    from scrm.celery import app

    app.control.purge()  # messages left by earlier tests name rows that are gone
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        yield app


def wait_for(condition, *, timeout: float = 15.0, interval: float = 0.05):
    """Poll until condition() is truthy; return its value or fail with what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {condition.__doc__ or condition}")
