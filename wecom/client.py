"""wechatpy's enterprise client, adapted: configurable base URL, a token shared through Redis
and refreshed by one process at a time, one bounded retry on a stale token, every call under
the shared limiter, and wechatpy's exceptions turned into ours.
"""

import logging
from urllib.parse import urlsplit

import redis
import requests
from wechatpy.enterprise import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from wecom.errors import (
    WeComAlreadyDone,
    WeComAuthError,
    WeComBusy,
    WeComError,
    WeComInvalidRequest,
    WeComRateLimited,
    WeComUnavailable,
)
from wecom.ratelimit import WeComLimiter

logger = logging.getLogger(__name__)

TOKEN_ERRORS = {40001, 40014, 42001}  # invalid credential, invalid token, token expired
CREDENTIAL_ERRORS = {40013, 40091, 41004}  # bad corp id / secret at gettoken
# A token is renewed this long before WeCom says it expires, so none is used at its edge.
TOKEN_MARGIN = 300


def error_from(exc: WeChatClientException | None, *, api: str, code=None, message="") -> WeComError:
    """Our error for a WeCom answer, by its errcode."""
    if exc is not None:
        code, message = exc.errcode, exc.errmsg or str(exc)
    message = str(message or "no answer")
    if code is None or code in (-1, 50001):  # no JSON answer / system busy
        return WeComUnavailable(message, code=code, api=api)
    if code == 45009:
        return WeComRateLimited(message, retry_after=60.0, code=code, api=api)
    if code == 45033:
        return WeComBusy(message, code=code, api=api)
    if code in TOKEN_ERRORS or code in CREDENTIAL_ERRORS:
        return WeComAuthError(message, code=code, api=api)
    if code == 41051:
        return WeComAlreadyDone(message, code=code, api=api)
    return WeComInvalidRequest(message, code=code, api=api)


class WeComClient(WeChatClient):
    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        api_base: str,
        redis_client: redis.Redis,
        limiter: WeComLimiter,
        timeout: float = 10.0,
    ):
        self.API_BASE_URL = api_base if api_base.endswith("/") else api_base + "/"
        self._redis = redis_client
        self.limiter = limiter
        super().__init__(
            corp_id,
            secret,
            session=RedisStorage(redis_client, prefix="wecom"),
            timeout=timeout,
            # wechatpy's own retry on a stale token recurses without bound; ours retries once.
            auto_retry=False,
        )

    def api_name(self, url_or_endpoint: str) -> str:
        path = urlsplit(url_or_endpoint).path
        base = urlsplit(self.API_BASE_URL).path
        return path[len(base) :] if path.startswith(base) else path.lstrip("/")

    # --- the access token, shared by every process -------------------------------------

    def fetch_access_token(self):
        # wechatpy hard-codes the real gettoken URL; ours follows API_BASE_URL.
        try:
            result = self._fetch_access_token(
                url=self.API_BASE_URL + "gettoken",
                params={"corpid": self.corp_id, "corpsecret": self.secret},
            )
        except WeChatClientException as exc:
            raise error_from(exc, api="gettoken") from None
        except requests.RequestException as exc:
            raise WeComUnavailable(str(exc), api="gettoken") from None
        ttl = max(int(result.get("expires_in", 7200)) - TOKEN_MARGIN, 60)
        self.session.set(self.access_token_key, result["access_token"], ttl)
        return result

    @property
    def access_token(self) -> str:
        return self.session.get(self.access_token_key) or self.refresh_token(stale=None)

    def refresh_token(self, *, stale: str | None) -> str:
        """Fetch a new token unless another process already replaced `stale` meanwhile."""
        with self._redis.lock(f"wecom:token-lock:{self.corp_id}", timeout=30, blocking_timeout=30):
            current = self.session.get(self.access_token_key)
            if current and current != stale:
                return current
            logger.info("fetching a WeCom access token")
            return self.fetch_access_token()["access_token"]

    # --- every API call ---------------------------------------------------------------

    def _request(self, method, url_or_endpoint, **kwargs):
        api = self.api_name(url_or_endpoint)
        params = dict(kwargs.pop("params", None) or {})
        for attempt in (1, 2):
            token = self.access_token
            try:
                with self.limiter.slot(api):
                    return super()._request(
                        method, url_or_endpoint, params={**params, "access_token": token}, **kwargs
                    )
            except WeChatClientException as exc:
                if exc.errcode in TOKEN_ERRORS and attempt == 1:
                    self.refresh_token(stale=token)
                    continue
                error = error_from(exc, api=api)
                if isinstance(error, WeComRateLimited):
                    self.limiter.pause(api)
                raise error from None
            except requests.RequestException as exc:
                raise WeComUnavailable(str(exc), api=api) from None
        raise AssertionError("unreachable")
