"""A real headless Chromium (Debian's), driven by Selenium, once per session; a page helper per test.

Every test ends by reading the browser's own network log and failing if the
page asked for anything outside the gateway's origin, and leaves a screenshot
under test-output/ui/ (docs/img/report-en.png is one of them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from services.contract.paths import REPO_ROOT
from tests.conftest import gateway_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "make test-packages (as root; it runs apt-get install -y chromium chromium-driver fonts-wqy-microhei)"
OUTPUT = REPO_ROOT / "test-output" / "ui"
LAPTOP = (1280, 800)
# Schemes that never leave the browser: the page's own data, and Chromium's internal pages (its
# new-tab page loads chrome:// resources when the browser starts).
LOCAL_SCHEMES = {"data", "chrome", "about"}
# Flags that keep Chromium from calling Google's services, which this closed network refuses.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)


@pytest.fixture(scope="session")
def browser(tmp_path_factory) -> Iterator[webdriver.Chrome]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(f"the web-page tests need Debian's Chromium and ChromeDriver; install them with: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument(f"--window-size={LAPTOP[0]},{LAPTOP[1]}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


class UiPage:
    """The gateway's /ui in the browser, with the few actions and reads the tests need."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url

    def open(self, base_url: str | None = None) -> UiPage:
        self.base_url = base_url or self.base_url
        self.driver.set_window_size(*LAPTOP)
        self.driver.get(f"{self.base_url}/ui")
        self.wait_for_state("idle", timeout=20)
        return self

    def element(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.element(element_id).text

    def visible(self, element_id: str) -> bool:
        return self.element(element_id).is_displayed()

    def state(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").get_attribute("data-state") or ""

    def wait_for_state(self, *states: str, timeout: float) -> str:
        WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(lambda _: self.state() in states)
        return self.state()

    def choose_language(self, language: str) -> None:
        Select(self.element("language")).select_by_value(language)

    def analyze(self, path: Path, timeout: float = 300) -> str:
        self.element("file").send_keys(str(path))
        self.element("submit").click()
        return self.wait_for_state("done", "failed", timeout=timeout)

    def requested_urls(self) -> list[str]:
        """Every URL the browser asked for since the last call, from Chromium's own network log."""
        urls = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"] == "Network.requestWillBeSent":
                urls.append(message["params"]["request"]["url"])
        return urls

    def screenshot(self, name: str) -> Path:
        """The whole page, not just the window: the window is stretched to the page's height for the picture."""
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        size = self.driver.get_window_size()
        height = self.driver.execute_script(
            "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight"
        )
        self.driver.set_window_size(size["width"], max(size["height"], height))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(size["width"], size["height"])
        return path


@pytest.fixture
def ui(browser: webdriver.Chrome, gateway_base_url: str, request) -> Iterator[UiPage]:
    page = UiPage(browser, gateway_base_url)
    page.requested_urls()  # start the network log afresh
    yield page
    page.screenshot(request.node.name)
    own = (page.base_url + "/", "blob:" + page.base_url + "/")
    outside = [url for url in page.requested_urls() if not url.startswith(own) and urlsplit(url).scheme not in LOCAL_SCHEMES]
    assert outside == [], f"the page asked for something outside the gateway's origin: {outside}"


@pytest.fixture(scope="session")
def gateway_base_url(stack) -> str:
    return gateway_url(stack)
