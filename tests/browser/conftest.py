"""Browser tests: Playwright driving Debian's chromium (``/usr/bin/chromium``, installed by ``make install``)
against pytest-django's live server, as a phone inside WeCom (390×844, WeCom's user agent).

Playwright's own browser download is not used. Without chromium (or Playwright) these tests fail and
say what to run: they are part of the default suite (``make test``), never skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
WECOM_USER_AGENT = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                    "Mobile/15E148 wxwork/4.1.26 MicroMessenger/7.0.1 Language/zh ColorScheme/Light")
INSTALL_HINT = "run `make install` (as root it installs Debian's chromium; otherwise it prints the apt-get command)"


@pytest.fixture(scope="module")
def browser(django_db_setup, live_server):
    """One headless chromium per test module, started after the test database and the live server.

    Playwright's sync API keeps an asyncio event loop running on this thread while it is open, and Django
    refuses ORM calls under a running loop. The tests' ORM calls are plain synchronous ones, so that guard
    is lifted while the browser is open, and only then: the browser closes with its module, so the rest
    of the suite runs without the loop and with the guard.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"Playwright is not installed: {INSTALL_HINT}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing, so the browser tests cannot run: {INSTALL_HINT}", pytrace=False)
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@dataclass
class Problems:
    """What went wrong in the page: uncaught exceptions, console errors, failed requests (404s included)."""

    errors: list[str] = field(default_factory=list)


@pytest.fixture
def page_problems() -> Problems:
    return Problems()


def _page(browser, live_server, problems: Problems, **options):
    context = browser.new_context(base_url=live_server.url, locale="zh-CN", timezone_id="Asia/Shanghai", **options)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda error: problems.errors.append(f"uncaught: {error}"))
    # A failed request is also a console error without its URL: the response handler records it with its URL.
    page.on("console", lambda message: message.type == "error" and not message.text.startswith("Failed to load")
            and problems.errors.append(f"console: {message.text}"))
    page.on("response", lambda response: response.status >= 400 and not response.url.endswith("/favicon.ico")
            and problems.errors.append(f"{response.status}: {response.url}"))
    return context, page


@pytest.fixture
def phone(browser, live_server, page_problems) -> Iterator:
    """A fresh page on a phone inside WeCom, its base URL the live server; it records the page's problems."""
    context, page = _page(browser, live_server, page_problems, viewport=PHONE, user_agent=WECOM_USER_AGENT,
                          is_mobile=True, has_touch=True)
    yield page
    context.close()


@pytest.fixture
def desktop(browser, live_server, page_problems) -> Iterator:
    """A fresh page in a desktop window (HQ in the admin), like ``phone`` otherwise."""
    context, page = _page(browser, live_server, page_problems, viewport={"width": 1280, "height": 800})
    yield page
    context.close()


def sign_in_as(page, live_server, user) -> None:
    """Puts a signed-in session of ``user`` into the page's browser (as the test client's force_login does)."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": cookie.value,
                               "url": live_server.url, "httpOnly": True}])
