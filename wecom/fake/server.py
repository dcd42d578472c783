"""The fake WeCom server: real HTTP on 127.0.0.1, WeCom's APIs plus /_fake/ control endpoints."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from wecom.fake import errors
from wecom.fake.api import ROUTES, Request
from wecom.fake.api.messages import confirm_mass_message
from wecom.fake.driver import Driver, DriveResult
from wecom.fake.errors import ApiError
from wecom.fake.state import World
from wecom.fake.traffic import Tokens, Traffic, api_name

logger = logging.getLogger(__name__)

DEFAULT_CORP_ID = "wwfakecorp"
DEFAULT_SECRET = "fake-secret"
DEFAULT_TOKEN = "fake-token"
DEFAULT_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeCom's
DEFAULT_AGENT_ID = "1000002"


class FakeWeCom:
    """A WeCom stand-in with in-memory state; see load_world for the shape of the world."""

    def __init__(
        self,
        corp_id: str = DEFAULT_CORP_ID,
        secret: str = DEFAULT_SECRET,
        token: str = DEFAULT_TOKEN,
        aes_key: str = DEFAULT_AES_KEY,
        callback_url: str | None = None,
        token_ttl: int = 7200,
        rate_limits: dict[str, Any] | None = None,
        *,
        agent_id: str = DEFAULT_AGENT_ID,
        clock: Callable[[], float] = time.time,
        mass_message_cap: int = 1,
        mass_message_cap_period: str = "day",
        welcome_code_ttl: float = 20,
        concurrency_limits: dict[str, int] | None = None,
        latency: float = 0.0,
    ):
        self.corp_id = corp_id
        self.secret = secret
        self.token = token
        self.aes_key = aes_key
        self.agent_id = agent_id
        self.callback_url = callback_url
        self.latency = latency  # seconds each API call takes, so concurrency limits can bite
        # api → seconds the next call's answer is held back after the work is done: how a
        # test kills a caller between WeCom acting and the caller hearing of it.
        self.answer_delays: dict[str, float] = {}
        self.world = World(
            clock=clock,
            mass_message_cap=mass_message_cap,
            mass_message_cap_period=mass_message_cap_period,
            welcome_code_ttl=welcome_code_ttl,
        )
        self.tokens = Tokens(corp_id=corp_id, secret=secret, ttl=token_ttl, clock=clock)
        self.traffic = Traffic(rate_limits=rate_limits, concurrency_limits=concurrency_limits)
        self.driver = Driver(self)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeWeCom:
        httpd = ThreadingHTTPServer((host, port), _RequestHandler)
        httpd.daemon_threads = True
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        # A short poll interval makes stop() quick, which keeps test teardown fast.
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-wecom",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeWeCom:
        return self if self._httpd else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the fake WeCom is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_base(self) -> str:
        return self.url + "/cgi-bin/"

    # The world.

    def load_world(self, data: dict[str, Any]) -> None:
        """Replace the world. Keys (all optional):
        staff: [{userid, name, status}]
        contacts: [{external_userid, name, type, gender, avatar, unionid,
                    follow_users: [{userid, remark, description, createtime, tags, state,
                                    add_way}]}]
        tag_groups: [{group_id, group_name, order, create_time,
                      tags: [{id, name, order, create_time}]}]
        groups: [{chat_id, name, owner, notice, create_time, admin_list, status,
                  members: [{userid, type, join_time, join_scene, invitor, name}]}]"""
        with self.world.lock:
            self.world.load(data)

    def world_snapshot(self) -> dict[str, Any]:
        with self.world.lock:
            return self.world.snapshot()

    def confirm_mass_message(self, msgid: str, userid: str) -> list[dict[str, Any]]:
        """The sender taps 'send' in the WeCom app; returns the send results of that sender."""
        with self.world.lock:
            return confirm_mass_message(self.world, msgid, userid)

    def complete_transfers(self, refuse: list[str] | tuple[str, ...] = ()) -> list[DriveResult]:
        return self.driver.complete_transfers(refuse)

    def welcome_messages(self, external_userid: str | None = None) -> list[dict[str, Any]]:
        with self.world.lock:
            return [
                asdict(m)
                for m in self.world.welcome_messages
                if external_userid is None or m.external_userid == external_userid
            ]

    # Traffic.

    def calls(self, path: str | None = None) -> list[tuple[float, str]]:
        return self.traffic.calls(path)

    def max_calls_in_window(self, path: str | None = None, seconds: float = 1.0) -> int:
        return self.traffic.max_calls_in_window(path, seconds)

    def stats(self) -> dict[str, Any]:
        return self.traffic.stats()

    def reset_calls(self) -> None:
        self.traffic.reset()

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        self.traffic.fail_next(path, errcode, times)

    def expire_tokens(self) -> None:
        self.tokens.expire_all()

    @property
    def gettoken_calls(self) -> int:
        return len(self.calls("gettoken"))

    # Request handling, called by the HTTP handler.

    def handle_api(self, path: str, query: dict[str, str], raw_body: bytes) -> tuple[int, dict]:
        name = api_name(path)
        call = self.traffic.arrive(name)
        handler = ROUTES.get(name)
        if handler is None and name != "gettoken":
            call.errcode = errors.UNKNOWN_API
            return 404, {"errcode": errors.UNKNOWN_API, "errmsg": f"unknown api: {name}"}
        try:
            self.traffic.take_injected(call)
            if name == "gettoken":
                self.traffic.admit(call)
                self.traffic.leave(call)
                return 200, _ok(
                    self.tokens.issue(query.get("corpid", ""), query.get("corpsecret", ""))
                )
            self.tokens.check(query.get("access_token"))
            request = Request(query, _parse_body(raw_body))
            self.traffic.admit(call)
            try:
                if self.latency:
                    time.sleep(self.latency)
                with self.world.lock:
                    answer = 200, _ok(handler(self.world, request))
                if delay := self.answer_delays.pop(name, 0):
                    time.sleep(delay)
                return answer
            finally:
                self.traffic.leave(call)
        except ApiError as e:
            call.errcode = e.errcode
            return 200, {"errcode": e.errcode, "errmsg": e.errmsg}

    def handle_control(self, method: str, path: str, raw_body: bytes) -> tuple[int, dict]:
        action = path.removeprefix("/_fake/").strip("/")
        try:
            body = _parse_body(raw_body)
            if action.startswith("drive/") and method == "POST":
                return 200, _ok(self._drive(action.removeprefix("drive/"), body))
            control = _CONTROL_ROUTES.get((method, action))
            if control is None:
                return 404, {"errcode": 404, "errmsg": f"unknown control: {method} {action}"}
            return 200, _ok(control(self, body))
        except ApiError as e:
            return 200, {"errcode": e.errcode, "errmsg": e.errmsg}
        except (ValueError, TypeError, KeyError) as e:
            return 400, {"errcode": 400, "errmsg": f"{type(e).__name__}: {e}"}

    def _drive(self, action: str, args: dict[str, Any]) -> dict[str, Any]:
        if action not in Driver.ACTIONS:
            raise ValueError(f"unknown driver action: {action}")
        result = getattr(self.driver, action)(**args)
        if isinstance(result, list):
            return {"results": [asdict(r) for r in result]}
        return asdict(result)


def _ok(payload: dict[str, Any]) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **payload}


def _parse_body(raw_body: bytes) -> dict[str, Any]:
    # wechatpy posts raw UTF-8 JSON with no Content-Type, so the header is never looked at.
    if not raw_body.strip():
        return {}
    try:
        body = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(errors.DATA_FORMAT_ERROR, "data format error: body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(errors.DATA_FORMAT_ERROR, "data format error: body is not an object")
    return body


def _control_fail_next(fake: FakeWeCom, body: dict) -> dict:
    fake.fail_next(body["path"], int(body["errcode"]), int(body.get("times", 1)))
    return {}


def _control_expire_tokens(fake: FakeWeCom, body: dict) -> dict:
    fake.expire_tokens()
    return {}


def _control_load_world(fake: FakeWeCom, body: dict) -> dict:
    fake.load_world(body)
    return {}


def _control_reset_calls(fake: FakeWeCom, body: dict) -> dict:
    fake.reset_calls()
    return {}


_CONTROL_ROUTES: dict[tuple[str, str], Callable[[FakeWeCom, dict], dict]] = {
    ("GET", "stats"): lambda fake, body: {
        "gettoken_calls": fake.gettoken_calls,
        "apis": fake.stats(),
    },
    ("POST", "reset_calls"): _control_reset_calls,
    ("POST", "confirm"): lambda fake, body: {
        "send_list": fake.confirm_mass_message(body["msgid"], body["userid"]),
    },
    ("POST", "fail_next"): _control_fail_next,
    ("POST", "expire_tokens"): _control_expire_tokens,
    ("GET", "world"): lambda fake, body: {"world": fake.world_snapshot()},
    ("POST", "world"): _control_load_world,
    ("GET", "welcome_messages"): lambda fake, body: {"welcome_messages": fake.welcome_messages()},
}


class _RequestHandler(BaseHTTPRequestHandler):
    # Keep-alive, so a client's connection pool is reused as it is with the real WeCom.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (~40 ms)
    server_version = "FakeWeCom/1.0"

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake: FakeWeCom = self.server.fake  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        raw_body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if url.path.startswith("/_fake/"):
                status, payload = fake.handle_control(self.command, url.path, raw_body)
            elif url.path.startswith("/cgi-bin/"):
                status, payload = fake.handle_api(url.path, query, raw_body)
            else:
                status, payload = 404, {"errcode": errors.UNKNOWN_API, "errmsg": "unknown api"}
        except Exception as e:  # a bug in the fake: say so loudly rather than hang the client
            logger.exception("fake WeCom failed on %s", self.path)
            status, payload = 500, {"errcode": errors.SYSTEM_BUSY, "errmsg": f"fake crashed: {e}"}
        data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake WeCom: " + format, *args)
