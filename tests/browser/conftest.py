"""Browser tests: Playwright (the PyPI package) driving Debian's Chromium against the app on
a live server with the test database.

No browser is ever downloaded: the tests use /usr/bin/chromium (or CHROMIUM_PATH). Without
it they are skipped, unless SCRM_BROWSER_TESTS=required (what .ci/run sets), when a missing
browser fails the run instead. Each journey saves a screenshot under .data/screenshots/.
"""

import os
import shutil
from pathlib import Path

import pytest

from scrm.models import User

# Playwright's sync API runs an event loop in this thread; the ORM calls a test makes between
# browser steps are still plain synchronous ones.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
REQUIRED = os.environ.get("SCRM_BROWSER_TESTS") == "required"
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".data" / "screenshots"
# The password of every user a journey makes, so `log_in` can type it.
PASSWORD = "浏览器测试-2026"


@pytest.fixture(scope="session")
def chromium():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --lang and LANG: the browser's own widgets in Chinese, as operators see them (the
        # date picker's 2026/11/23 follows LANG; --lang alone leaves it 11/23/2026).
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--lang=zh-CN"],
            env={**os.environ, "LANG": "zh_CN.UTF-8"},
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server):
    """A fresh browser context (no cookies) on a laptop-sized screen, Chinese first."""
    context = chromium.new_context(
        viewport={"width": 1366, "height": 800}, locale="zh-CN", base_url=live_server.url
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def phone(chromium, live_server):
    """A second browser, a phone's: where a customer opens a campaign link from WeCom."""
    context = chromium.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        base_url=live_server.url,
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def screenshot(page, request):
    """screenshot(name[, of=other_page or a locator]): save the whole page (or just that
    element) as .data/screenshots/<test>-<name>.png."""
    from playwright.sync_api import Locator

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, *, of=None) -> Path:
        path = SCREENSHOTS / f"{request.node.name}-{name}.png"
        if isinstance(of, Locator):
            of.screenshot(path=str(path))
        else:
            (of or page).screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def make_user(transactional_db):
    """make_user(username, role): a dashboard user whose password `log_in` knows."""

    def make(username: str, role: str):
        return User.objects.create_user(username, password=PASSWORD, role=role)

    return make


@pytest.fixture
def log_in(page):
    """log_in(user[, on=other_page]): sign in through the login form as a user made by
    make_user."""

    def sign_in(user, *, on=None) -> None:
        browser = on or page
        browser.goto("/login/")
        browser.fill("input[name=username]", user.get_username())
        browser.fill("input[name=password]", PASSWORD)
        browser.click("form.form button[type=submit]")
        browser.wait_for_url(lambda url: "/login/" not in url)

    return sign_in
