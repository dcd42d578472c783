"""Limits on calls to WeCom shared by every process: a rate per API, a concurrency cap per
API, and a shared pause after WeCom says 45009. All state lives in Redis.

The rate is a GCRA (generic cell rate algorithm) on Redis' own clock, so any number of
workers on any number of machines together never exceed it.
"""

import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

import redis

from wecom.errors import WeComRateLimited

# Returns 0 when the call may go now, else the microseconds to wait. ARGV: emission interval
# and burst tolerance, both in microseconds.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return allow_at - now end
local new_tat = tat + interval
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
return 0
"""

# Holders are a sorted set scored by lease expiry, so a crashed holder frees its slot.
# Returns 1 when a slot was taken.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
  return 1
end
return 0
"""


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: int = 1  # calls allowed back to back after an idle spell
    concurrency: int = 5


class WeComLimiter:
    def __init__(
        self,
        client: redis.Redis,
        *,
        default: Limit,
        overrides: dict[str, Limit] | None = None,
        max_wait: float = 30.0,
        pause_after_limit: float = 60.0,
        lease: float = 30.0,
        prefix: str = "wecom:limit",
    ):
        self.redis = client
        self.default = default
        self.overrides = overrides or {}
        self.max_wait = max_wait
        self.pause_after_limit = pause_after_limit
        self.lease_ms = int(lease * 1000)
        self.prefix = prefix
        self._gcra = client.register_script(_GCRA)
        self._acquire = client.register_script(_ACQUIRE)

    def limit_for(self, api: str) -> Limit:
        return self.overrides.get(api, self.default)

    def paused_for(self, api: str) -> float:
        """Seconds left of the pause WeCom imposed on this API (0 when none)."""
        ttl = self.redis.pttl(f"{self.prefix}:paused:{api}")
        return max(ttl, 0) / 1000

    def pause(self, api: str, seconds: float | None = None) -> None:
        """WeCom said 45009: every process stops calling this API for a while."""
        ms = int((seconds or self.pause_after_limit) * 1000)
        self.redis.set(f"{self.prefix}:paused:{api}", "1", px=ms)

    def _wait_for_rate(self, api: str, limit: Limit, deadline: float) -> None:
        interval = int(1_000_000 / limit.per_second)
        tolerance = interval * max(limit.burst - 1, 0)
        while True:
            wait_us = self._gcra(keys=[f"{self.prefix}:rate:{api}"], args=[interval, tolerance])
            if not wait_us:
                return
            wait = wait_us / 1_000_000
            if time.monotonic() + wait > deadline:
                raise WeComRateLimited(
                    "our rate limit for this API is saturated", retry_after=wait, api=api
                )
            time.sleep(wait)

    @contextmanager
    def slot(self, api: str):
        """Hold one call's worth of rate and one concurrency slot for `api`."""
        paused = self.paused_for(api)
        if paused:
            raise WeComRateLimited(
                "WeCom asked us to slow down (45009)", retry_after=paused, code=45009, api=api
            )
        limit = self.limit_for(api)
        deadline = time.monotonic() + self.max_wait
        holder = uuid.uuid4().hex
        key = f"{self.prefix}:running:{api}"
        while not self._acquire(keys=[key], args=[limit.concurrency, self.lease_ms, holder]):
            if time.monotonic() > deadline:
                raise WeComRateLimited("too many calls in flight", retry_after=1.0, api=api)
            time.sleep(0.005 + random.random() * 0.02)  # jitter: waiters don't move in step
        try:
            self._wait_for_rate(api, limit, deadline)
            yield
        finally:
            self.redis.zrem(key, holder)
