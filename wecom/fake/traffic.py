"""Access tokens, the call log, rate and concurrency limits and injected failures of the fake."""

from __future__ import annotations

import secrets
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wecom.fake import errors
from wecom.fake.errors import ApiError


def api_name(path: str) -> str:
    """'/cgi-bin/externalcontact/get' and 'externalcontact/get' name the same API."""
    path = path.split("?", 1)[0].strip("/")
    return path.removeprefix("cgi-bin/")


class Tokens:
    """Issues access tokens the way gettoken does and checks them on every other call."""

    def __init__(self, *, corp_id: str, secret: str, ttl: int, clock: Callable[[], float]):
        self.corp_id = corp_id
        self.secret = secret
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._expires_at: dict[str, float] = {}
        self._current: str | None = None

    def issue(self, corpid: str, corpsecret: str) -> dict[str, Any]:
        if corpid != self.corp_id:
            raise ApiError(errors.INVALID_CORPID, "invalid corpid")
        if corpsecret != self.secret:
            raise ApiError(errors.INVALID_CREDENTIAL, "invalid credential")
        now = self.clock()
        with self._lock:
            # Within its lifetime WeCom hands out the same token again.
            current = self._current
            if current is None or self._expires_at[current] <= now:
                current = secrets.token_urlsafe(48)
                self._expires_at[current] = now + self.ttl
                self._current = current
            expires_in = int(self._expires_at[current] - now)
        return {"access_token": current, "expires_in": expires_in}

    def check(self, token: str | None) -> None:
        if not token:
            raise ApiError(errors.MISSING_ACCESS_TOKEN, "access_token missing")
        with self._lock:
            expires_at = self._expires_at.get(token)
        if expires_at is None:
            raise ApiError(errors.INVALID_ACCESS_TOKEN, "invalid access_token")
        if expires_at <= self.clock():
            raise ApiError(errors.EXPIRED_ACCESS_TOKEN, "access_token expired")

    def expire_all(self) -> None:
        with self._lock:
            for token in self._expires_at:
                self._expires_at[token] = float("-inf")
            self._current = None

    @property
    def issued(self) -> int:
        with self._lock:
            return len(self._expires_at)


@dataclass(slots=True)
class Call:
    at: float  # time.monotonic() on arrival
    path: str
    errcode: int = 0


@dataclass(frozen=True)
class RateLimit:
    per_second: float | None = None
    per_minute: float | None = None

    @classmethod
    def parse(cls, value: Any) -> RateLimit:
        """A number means calls per second; a dict may give per_second and per_minute."""
        if isinstance(value, dict):
            return cls(value.get("per_second"), value.get("per_minute"))
        return cls(per_second=float(value))


class Traffic:
    """Counts every call by API (rejected ones too) and applies limits and injected failures."""

    def __init__(
        self,
        *,
        rate_limits: dict[str, Any] | None = None,
        concurrency_limits: dict[str, int] | None = None,
    ):
        self._lock = threading.Lock()
        self.rate_limits = {api_name(p): RateLimit.parse(v) for p, v in (rate_limits or {}).items()}
        self.concurrency_limits = {api_name(p): n for p, n in (concurrency_limits or {}).items()}
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._calls: list[Call] = []
            # times of the calls accepted per API in the last second and minute
            self._accepted_1s: dict[str, deque[float]] = defaultdict(deque)
            self._accepted_60s: dict[str, deque[float]] = defaultdict(deque)
            self._in_flight: dict[str, int] = defaultdict(int)
            self._injected: dict[str, deque[int]] = defaultdict(deque)

    def arrive(self, path: str) -> Call:
        call = Call(time.monotonic(), path)
        with self._lock:
            self._calls.append(call)
        return call

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        with self._lock:
            self._injected[api_name(path)].extend([errcode] * times)

    def take_injected(self, call: Call) -> None:
        with self._lock:
            queue = self._injected.get(call.path)
            errcode = queue.popleft() if queue else None
        if errcode is not None:
            raise ApiError(errcode, "injected by the fake")

    def admit(self, call: Call) -> None:
        """Raise 45009/45033 when the call is over a limit; otherwise count it as in flight."""
        limit = self.rate_limits.get(call.path)
        cap = self.concurrency_limits.get(call.path)
        with self._lock:
            now = time.monotonic()  # taken under the lock so the windows stay in order
            last_second = self._accepted_1s[call.path]
            last_minute = self._accepted_60s[call.path]
            if limit is not None:
                for window, seconds in ((last_second, 1), (last_minute, 60)):
                    while window and window[0] <= now - seconds:
                        window.popleft()
                # WeCom also blocks for a whole minute after a minute limit is hit; not modelled.
                if (limit.per_second is not None and len(last_second) >= limit.per_second) or (
                    limit.per_minute is not None and len(last_minute) >= limit.per_minute
                ):
                    raise ApiError(errors.API_FREQ_OUT_OF_LIMIT, "api freq out of limit")
            if cap is not None and self._in_flight[call.path] >= cap:
                raise ApiError(errors.TOO_MANY_CONCURRENT_CALLS, "too many concurrent calls")
            if limit is not None:
                last_second.append(now)
                last_minute.append(now)
            self._in_flight[call.path] += 1

    def leave(self, call: Call) -> None:
        with self._lock:
            self._in_flight[call.path] -= 1

    def calls(self, path: str | None = None) -> list[tuple[float, str]]:
        wanted = api_name(path) if path is not None else None
        with self._lock:
            return [(c.at, c.path) for c in self._calls if wanted is None or c.path == wanted]

    def max_calls_in_window(self, path: str | None = None, seconds: float = 1.0) -> int:
        times = sorted(t for t, _ in self.calls(path))
        best = start = 0
        for end, t in enumerate(times):
            while t - times[start] >= seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    def stats(self) -> dict[str, Any]:
        with self._lock:
            calls = list(self._calls)
        by_path: dict[str, list[Call]] = defaultdict(list)
        for call in calls:
            by_path[call.path].append(call)
        result = {}
        for path, path_calls in sorted(by_path.items()):
            errcodes: dict[str, int] = defaultdict(int)
            for call in path_calls:
                if call.errcode:
                    errcodes[str(call.errcode)] += 1
            result[path] = {
                "total": len(path_calls),
                "max_in_1s": self.max_calls_in_window(path, 1.0),
                "max_in_60s": self.max_calls_in_window(path, 60.0),
                "rate_limited": errcodes.get(str(errors.API_FREQ_OUT_OF_LIMIT), 0),
                "errors": dict(errcodes),
            }
        return result
