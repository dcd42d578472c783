"""Our own errors for whatever goes wrong on the way to WeCom; callers never see wechatpy's."""


class WeComError(Exception):
    """WeCom refused a call. `code` is WeCom's errcode (None when no answer came back)."""

    #: Worth retrying later (with backoff); a permanent error will fail the same way again.
    transient = False

    def __init__(self, message: str, *, code: int | None = None, api: str = ""):
        super().__init__(message)
        self.code = code
        self.api = api

    def __str__(self) -> str:
        where = f" [{self.api}]" if self.api else ""
        code = f" (errcode {self.code})" if self.code is not None else ""
        return f"{super().__str__()}{code}{where}"


class WeComUnavailable(WeComError):
    """No usable answer: connection refused, timeout, HTTP 5xx, WeCom's system busy (-1)."""

    transient = True


class WeComRateLimited(WeComError):
    """Over a frequency limit (45009) or our own limiter's wait ran out: come back later."""

    transient = True

    def __init__(self, message: str, *, retry_after: float, code: int | None = None, api: str = ""):
        super().__init__(message, code=code, api=api)
        self.retry_after = retry_after


class WeComBusy(WeComError):
    """Too many concurrent calls to one API (45033): retry soon, with jitter."""

    transient = True


class WeComAuthError(WeComError):
    """Bad corp id or secret, or a token WeCom keeps rejecting after one refresh."""


class WeComAlreadyDone(WeComError):
    """The thing was done already, e.g. a welcome message for this code was sent (41051)."""


class WeComInvalidRequest(WeComError):
    """WeCom rejected what we asked for (bad argument, unknown user, no permission...)."""
