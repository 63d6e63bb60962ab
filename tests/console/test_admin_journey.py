"""The CRM admin's journey in a real browser, against a real hub, worker pool and sandbox: sign
in; rename a field and pick a new list from the account's lists; the preview shows the diff for a
real contact; apply; the sandbox holds the new field; a second admin with a stale version gets the
conflict; roll back. Screenshots of the admin pages go to docs/console/."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import redis as redis_lib

from sandbox import DEMO_SETTINGS
from tests.console.conftest import CONSOLE_ENV, Console, need_browser
from tests.e2e.stack import Stack
from tests.story import story

pytestmark = pytest.mark.e2e
ADMINS = "carla:admin-carla,dana:admin-dana"


@pytest.fixture(scope="module")
def admin_stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need_browser()
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    stack = Stack(redis_url, tmp_path_factory.mktemp("admin-console-logs"),
                  connectors={name: {k.upper(): v for k, v in DEMO_SETTINGS[name].items()}
                              for name in ("klaviyo", "emarsys")},
                  env={**CONSOLE_ENV, "HUB_ADMIN_TOKENS": ADMINS})
    yield stack
    stack.stop()


def select(element: Any, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(element).select_by_value(value)


def blank_row(console: Console, table: str) -> str:
    """The index of the editor's empty row for adding a field or a list."""
    return str(console.finds(f'table[data-table="{table}"] tbody tr')[-1].get_attribute("data-row"))


def row_of(console: Console, target: str) -> str:
    inputs = [i for i in console.finds('table[data-table="fields"] input[name$="-target"]')
              if i.get_attribute("value") == target]
    assert len(inputs) == 1, f"no single editor row for {target}"
    return str(inputs[0].get_attribute("name")).split("-")[1]


def test_the_crm_admin_journey(browser: Any, admin_stack: Stack) -> None:
    stack = admin_stack
    assert stack.post(story()).status_code == 202
    stack.wait_for(lambda: (stack.holds("klaviyo", "anna@example.com") or {}).get("fields", {})
                   .get("referral_friends_invited") == 2, what="the story to reach Klaviyo")
    # Klaviyo's import jobs land before the hub has seen them through: wait for the push to settle.
    stack.wait_for(lambda: stack.api("GET", "/v1/connectors/klaviyo/pause", token="admin-carla").json()
                   .get("last_success"), what="the push to settle")
    carla = Console(browser, stack)

    # 1. sign in; the connectors page says what is enabled, checked and when it last pushed
    carla.sign_in("admin-carla", "/connectors")
    row = carla.find('tr[data-connector="klaviyo"]')
    assert "enabled" in row.find_element("css selector", '[data-field="enabled"]').text
    assert "checked" in row.find_element("css selector", '[data-field="credentials"]').text
    assert row.find_element("css selector", '[data-field="last-success"]').text.startswith("20")
    assert "no credentials" in carla.find('tr[data-connector="splio"] [data-field="enabled"]').text
    carla.screenshot("admin-connectors")

    carla.get("/mappings/emarsys")        # vendor ids labelled with the account's names
    assert "Referral invites sent" in carla.find('tr[data-target="12001"]').text
    carla.get("/mappings/klaviyo")
    assert "turnover_amount" in carla.find('tr[data-target="referral_turnover"]').text
    carla.screenshot("admin-mapping")

    # A second admin opens the editor now, on version 0: her copy goes stale in step 4.
    dana_driver = second_browser()
    try:
        dana = Console(dana_driver, stack)
        dana.sign_in("admin-dana", "/mappings/klaviyo/edit")
        assert "Editing from version 0" in dana.text()

        # 2. rename a field, and pick a new list from the account's lists
        carla.get("/mappings/klaviyo/edit")
        target = carla.find(f'input[name="field-{row_of(carla, "referral_friends_invited")}-target"]')
        target.clear()
        target.send_keys("referral_invites_sent")
        n = blank_row(carla, "lists")
        picker = carla.find(f'select[name="list-{n}-id"]')
        offered = [o.get_attribute("value") for o in picker.find_elements("css selector", "option")]
        assert {"RfMkt1", "RfTxn1", "RfMkt2"} <= set(offered)     # the sandbox account's lists
        select(picker, "RfMkt2")
        select(carla.find(f'select[name="list-{n}-kind"]'), "marketing")
        select(carla.find(f'select[name="list-{n}-when"]'), "marketing_opt_in")

        # 3. the preview shows the diff for a real contact; nothing is written
        carla.find("#preview-email").send_keys("anna@example.com")
        carla.find('button[value="preview"]').click()
        carla.wait(lambda: carla.finds("#preview"), "the preview")
        renamed = carla.find('#preview tr[data-field="referral_invites_sent"]')
        cells = [c.text for c in renamed.find_elements("css selector", "td")]
        assert cells[0] == "(empty)" and cells[1].startswith("2")
        kept = carla.find('#preview tr[data-field="referral_friends_invited"]')
        assert [c.text for c in kept.find_elements("css selector", "td")] == ["2", "2"]
        assert "not a member" in carla.find('#preview tr[data-list="RfMkt2"]').text      # anna did not opt in
        assert "Klaviyo-API-Key ****" in carla.find("#preview-requests").get_attribute("textContent")
        carla.screenshot("admin-preview")
        assert "referral_invites_sent" not in stack.holds("klaviyo", "anna@example.com")["fields"]

        # 4. apply with a comment; the re-sync offer says how many contacts, and is taken
        carla.find("#comment").send_keys("rename invites, add the newsletter list")
        carla.find("#apply").click()
        carla.wait(lambda: carla.finds("#resync-offer"), "the saved page")
        assert "Version 1 by carla" in carla.find("#saved").text and "carla" in carla.find("#saved").text
        assert carla.find('[data-field="resync-count"]').text == "5"
        carla.screenshot("admin-saved")
        carla.find("#resync").click()
        carla.driver.switch_to.alert.accept()
        carla.wait(lambda: "marked for re-sync" in carla.text(), "the re-sync")

        # 5. the sandbox holds the new field; the opted-in friend joined the new list
        stack.wait_for(lambda: (stack.holds("klaviyo", "anna@example.com") or {}).get("fields", {})
                       .get("referral_invites_sent") == 2, what="the renamed field at Klaviyo")
        stack.wait_for(lambda: "RfMkt2" in (stack.holds("klaviyo", "cleo@example.com") or {}).get("lists", []),
                       what="cleo in the new list")

        # 6. the second admin, still on version 0, gets the conflict and sees carla's change
        field = dana.find(f'input[name="field-{row_of(dana, "first_name")}-target"]')
        field.clear()
        field.send_keys("given_name")
        dana.find("#comment").send_keys("my own edit")
        dana.find("#apply").click()
        dana.wait(lambda: dana.finds("#conflict"), "the conflict")
        conflict = dana.find("#conflict")
        assert "carla" in conflict.text and "rename invites, add the newsletter list" in conflict.text
        assert conflict.find_elements("css selector", 'tr[data-change="renamed"]')
        assert conflict.find_elements("css selector", 'tr[data-change="added"]')
        dana.screenshot("admin-conflict")
        assert stack.api("GET", "/v1/mappings/klaviyo", token="admin-carla").json()["version"] == 1
    finally:
        dana_driver.quit()

    # 7. history with the diff, then roll back to version 0
    carla.get("/mappings/klaviyo/history")
    assert carla.find('table[data-table="history"] tr[data-version="1"]').text.count("carla") == 1
    assert carla.finds('table.diff tr[data-change="renamed"]')
    carla.screenshot("admin-history")
    carla.find("#rollback-button-0").click()
    carla.driver.switch_to.alert.accept()
    carla.wait(lambda: carla.finds("#saved"), "the rollback")
    assert "Version 2 by carla" in carla.find("#saved").text and "a rollback" in carla.find("#saved").text
    head = stack.api("GET", "/v1/mappings/klaviyo", token="admin-carla").json()
    assert head["version"] == 2 and head["author"] == "carla" and head["action"] == "rollback"
    assert "referral_friends_invited" in [r["target"] for r in head["document"]["fields"]]


def second_browser() -> Any:
    """Another browser with its own cookies: the second admin."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.console.conftest import CHROMEDRIVER, CHROMIUM

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver
