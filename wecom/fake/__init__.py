"""A fake WeCom for tests and the offline demo: real HTTP, in-memory state, real callbacks."""

from wecom.fake.driver import DriveResult
from wecom.fake.errors import ApiError
from wecom.fake.server import DEFAULT_AES_KEY, FakeWeCom

__all__ = ["DEFAULT_AES_KEY", "ApiError", "DriveResult", "FakeWeCom"]
