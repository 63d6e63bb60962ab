"""Sign-in, the layout and sign-out in a real browser."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.e2e


def test_sign_in_layout_and_sign_out(console) -> None:  # type: ignore[no-untyped-def]
    console.get("/overview")
    assert "/console/sign-in" in console.driver.current_url
    console.screenshot("sign-in")
    console.find("#token").send_keys("not-a-token")
    console.submit("form.stack button[type=submit]")
    assert "not an admin or ops token" in console.text()
    console.sign_in("ops-token")
    assert console.driver.current_url.endswith("/console/overview")
    labels = [a.text for a in console.finds("header nav a")]
    assert labels[0] == "Overview"
    assert "Signed in as" in console.find("form.who").text and "(ops)" in console.find("form.who").text
    # the cookie is HttpOnly and SameSite=Strict, and holds no token
    cookie = console.driver.get_cookie("hub_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and "ops-token" not in cookie["value"]
    # keyboard: the first Tab reaches the skip link, which moves the focus to the content
    from selenium.webdriver.common.keys import Keys

    console.find("body").send_keys(Keys.TAB)
    active = console.driver.switch_to.active_element
    assert active.text == "Skip to content"
    active.send_keys(Keys.ENTER)
    assert console.driver.switch_to.active_element.get_attribute("id") == "main"
    console.sign_out()
    console.get("/overview")
    assert "/console/sign-in" in console.driver.current_url
