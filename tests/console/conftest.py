"""The console in a real browser: Debian's Chromium and chromedriver driven by Selenium, against
a real hub, worker pool and sandbox started by tests/e2e/stack.py.

Without /usr/bin/chromium and /usr/bin/chromedriver the browser tests skip and say how to
enable them; with HUB_TEST_REQUIRE_BROWSER=1 (CI) they fail instead.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import redis as redis_lib
import requests

from sandbox import DEMO_SETTINGS
from tests.conftest import ROOT
from tests.e2e.stack import Stack

CHROMIUM = os.environ.get("HUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("HUB_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE = "HUB_TEST_REQUIRE_BROWSER"
SCREENSHOTS = ROOT / "docs" / "console"
ENABLE = ("the console's browser tests need Chromium and chromedriver: on Debian or Ubuntu run "
          "`sudo apt-get install chromium chromium-driver` (or point HUB_TEST_CHROMIUM and "
          "HUB_TEST_CHROMEDRIVER at them); set HUB_TEST_REQUIRE_BROWSER=1 to make them mandatory")

# Short settings so a journey that needs time to pass does not wait long: failures exhaust their
# retries in about a second, and sign-ins last long enough for one test module.
CONSOLE_ENV = {"HUB_RETRY_SCHEDULE": "0.2,0.2", "HUB_RETRY_JITTER": "0", "HUB_CONSOLE_SESSION_TTL": "900"}


def browser_missing() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (Path(p).is_file() and os.access(p, os.X_OK))]
    return f"not found: {', '.join(missing)}" if missing else None


def need_browser() -> None:
    missing = browser_missing()
    if missing:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{missing}, and {REQUIRE}=1 makes the browser tests mandatory")
        pytest.skip(f"{missing}: {ENABLE}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def console_stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One hub + workers + sandbox for a test module, on an emptied database."""
    need_browser()
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    stack = Stack(redis_url, tmp_path_factory.mktemp("console-logs"),
                  connectors={name: {k.upper(): v for k, v in DEMO_SETTINGS[name].items()}
                              for name in ("klaviyo", "ometria")},
                  env=CONSOLE_ENV)
    yield stack
    stack.stop()


class Console:
    """A browser on the console of one stack, with the steps every test repeats."""

    def __init__(self, driver: Any, stack: Stack) -> None:
        self.driver, self.stack = driver, stack

    def url(self, path: str) -> str:
        return f"{self.stack.hub}/console{path}"

    def get(self, path: str) -> None:
        self.driver.get(self.url(path))

    def find(self, css: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def finds(self, css: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def sign_in(self, token: str, path: str = "/overview") -> None:
        self.driver.delete_all_cookies()
        self.get(path)
        assert "/console/sign-in" in self.driver.current_url
        self.find("#token").send_keys(token)
        self.submit("form.stack button[type=submit]")
        assert "/console/sign-in" not in self.driver.current_url, self.text()

    def submit(self, css: str) -> None:
        """Click a button that submits a form, and wait for the page it leads to."""
        from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

        page = self.find("html")
        self.find(css).click()

        def replaced() -> bool:
            try:
                page.tag_name
                return False
            except WebDriverException as exc:
                # Chromium says "stale", or, when the old document is already gone, that the node
                # "does not belong to the document": both mean the page was replaced
                if not (isinstance(exc, StaleElementReferenceException)
                        or "does not belong to the document" in str(exc)):
                    raise
                return self.driver.execute_script("return document.readyState") == "complete"
        self.wait(replaced, f"the page after {css}")

    def sign_out(self) -> None:
        self.submit("form.who button")
        assert "/console/sign-in" in self.driver.current_url

    def wait(self, check: Any, what: str, timeout: float = 60) -> Any:
        from selenium.common.exceptions import StaleElementReferenceException

        def settled() -> Any:
            try:
                return check()
            except StaleElementReferenceException:
                return None         # a refresh replaced what the check was reading: look again
        return self.stack.wait_for(settled, timeout=timeout, what=what)

    def text(self) -> str:
        return str(self.find("main").text)

    def screenshot(self, name: str, width: int = 1280) -> Path:
        """Save the whole page as docs/console/<name>.png, laid out at `width` CSS pixels (a
        phone's when narrow), through Chromium's device metrics so the viewport is exact."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 600}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        height = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**metrics, "height": min(max(height, 400), 3000)})
        path = SCREENSHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        return path


@pytest.fixture
def console(browser: Any, console_stack: Stack) -> Console:
    return Console(browser, console_stack)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def signed_in_session(stack: Stack, token: str) -> requests.Session:
    """A plain HTTP client signed in to the console (for requests a browser would not make)."""
    http = requests.Session()
    page = http.get(f"{stack.hub}/console/sign-in", timeout=10)
    answer = http.post(f"{stack.hub}/console/sign-in", data={"token": token, "csrf": csrf_of(page.text)},
                       timeout=10, allow_redirects=False)
    assert answer.status_code == 302, answer.text
    return http
