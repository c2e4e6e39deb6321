"""A radiologist signs in to the web page through the hospital's OpenID Provider (a real oidc-provider on
loopback) in Chromium, analyses an X-ray as themselves, and signs out; the page holds no token itself."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import SAMPLES
from tests.gateway.ui.conftest import UiPage

# Clicks the provider's consent button, unless this document is the gateway's page; returns the URL it clicked on.
CONSENT = """
if (location.host === arguments[0] || document.getElementsByName("login").length) return null;
const button = document.querySelector("button[type=submit]");
if (!button) return null;
button.click();
return location.href;
"""


def sign_in(page: UiPage, login: str) -> None:
    page.element("sign-in").click()
    # The provider's own form; generous waits, as a loaded 2-core CI machine is slow, and a timeout names the page.
    WebDriverWait(page.driver, 60).until(
        lambda d: d.find_elements(By.NAME, "login"), f"no login form at the provider (at {page.driver.current_url})"
    )
    page.driver.find_element(By.NAME, "login").send_keys(login)
    page.driver.find_element(By.NAME, "password").send_keys("any password: the provider's development login")
    page.driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    consented: set[str] = set()

    def back_on_the_page(driver) -> bool:
        if urlsplit(driver.current_url).netloc != urlsplit(page.base_url).netloc:
            # A consent step, if any: clicked once. Never the login form's own button again while the
            # browser is still leaving it (a loaded machine): a second login submission ends the provider's
            # interaction, and the browser on its error page. The checks and the click run as one script in one
            # document: done apart, the browser could reach the gateway's page between them and the click land
            # on its "Analyse" (with no X-ray chosen: seen in CI, the page then never idle).
            if driver.current_url not in consented:
                clicked = driver.execute_script(CONSENT, urlsplit(page.base_url).netloc)
                if clicked:
                    consented.add(clicked)
            return False
        return urlsplit(driver.current_url).path == "/ui" and page.state() == "idle"

    try:
        WebDriverWait(page.driver, 90, poll_frequency=0.5).until(back_on_the_page, "")
    except TimeoutException:
        where = page.driver.current_url
        shown = page.driver.find_element(By.TAG_NAME, "body").text[:500]
        state = page.driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")
        raise AssertionError(f"never back on the page after the login of {login!r}: at {where} ({state!r}): {shown!r}") from None


def test_a_radiologist_signs_in_analyses_as_themselves_and_signs_out(browser, openid):
    _, gateway = openid
    page = UiPage(browser, gateway.url).open()
    page.requested_urls()
    assert page.visible("sign-in") and not page.visible("api-key-field")
    sign_in(page, "dr.chen")
    page.requested_urls()  # the login's own pages are the provider's (its development form loads web fonts)
    assert page.text("user-name") == "dr.chen" and not page.visible("sign-in")
    session = browser.get_cookie("cxr_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert browser.execute_script("return document.cookie") == ""  # the page's script sees no token
    assert page.analyze(SAMPLES / "person1946_bacteria_4874.jpeg") == "done"
    page.screenshot("login-signed-in")
    records = [json.loads(line) for line in (gateway.audit_dir / "audit.jsonl").read_text().splitlines()]
    assert records[-1]["actor"] == "user:dr.chen" and records[-1]["endpoint"] == "/v1/chat/completions"
    assert session["value"] not in gateway.log_text() and session["value"] not in json.dumps(records)
    outside = [url for url in page.requested_urls() if not url.startswith((gateway.url, "data:", "blob:"))]
    assert outside == [], outside  # signed in, the page still asks nothing of anyone but the gateway
    browser.find_element(By.LINK_TEXT, "Sign out").click()
    page.wait_for_state("idle", timeout=20)
    assert browser.get_cookie("cxr_session") is None and page.visible("sign-in")
    # A shared workstation: the next "Sign in" asks the provider for a login again, never reuses its session
    # (the provider still holds dr.chen's; the gateway's authorization request says prompt=login).
    page.element("sign-in").click()
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.NAME, "login"), f"signed in again without a login (at {browser.current_url})"
    )


def test_a_person_without_a_permitted_role_is_signed_in_but_refused(browser, openid):
    _, gateway = openid
    browser.delete_all_cookies()
    page = UiPage(browser, gateway.url).open()
    sign_in(page, "visitor")
    assert page.text("user-name") == "visitor"
    assert page.analyze(SAMPLES / "person1946_bacteria_4874.jpeg") == "failed"
    assert "'user:visitor' has no permission" in page.text("error")
    browser.get(f"{gateway.url}/ui/logout")
