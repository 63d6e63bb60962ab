"""The console's pictures in a real browser, against a real hub, worker pool and sandbox: after
real pushes (one refused by the vendor first), the overview draws each connector's last hour as
four charts that agree with the figures beside them and refresh in place, and a contact's page
draws its timeline with a mark per push."""
from __future__ import annotations

from typing import Any

import pytest

from tests.story import event, story

pytestmark = pytest.mark.e2e

CONNECTORS = ("klaviyo", "ometria")
PEOPLE = ("anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com", "eve@example.com")
CHARTS = ("backlog", "calls", "errors", "freshness")


def chart(console: Any, name: str, connector: str) -> Any:
    return console.find(f"article[data-connector='{connector}'] svg#chart-{name}-{connector}")


def summed(svg: Any, css: str) -> int:
    return sum(int(float(bar.get_attribute("data-value"))) for bar in svg.find_elements("css selector", css))


def test_the_overview_draws_each_connectors_hour_and_the_contact_page_its_timeline(console) -> None:  # type: ignore[no-untyped-def]
    stack = console.stack
    stack.fault("klaviyo", 500, count=1)              # one call refused: Klaviyo's errors chart shows it
    assert stack.post(story()).status_code == 202
    for vendor in CONNECTORS:
        stack.wait_for(lambda v=vendor: all(stack.holds(v, p) for p in PEOPLE), what=f"{vendor} to hold everyone")

    console.sign_in("ops-token", "/overview")
    for connector in CONNECTORS:
        drawn = {name: chart(console, name, connector) for name in CHARTS}
        card = console.find(f"article[data-connector='{connector}']")
        calls = int(card.find_element("css selector", "[data-field=calls]").text)
        errors = int(card.find_element("css selector", "[data-field=errors]").text)
        assert calls > 0
        # the bars add up to the figures written beside them; the errors are stacked in the calls
        assert drawn["calls"].get_attribute("data-empty") == "false"
        assert summed(drawn["calls"], "rect.bar") == calls
        assert summed(drawn["calls"], "rect.bar-part") == errors == summed(drawn["errors"], "rect.bar")
        # every contact landed: the freshness chart has a point, the backlog at least the reading now
        assert drawn["freshness"].get_attribute("data-empty") == "false"
        assert drawn["freshness"].find_elements("css selector", "circle.point")
        assert drawn["backlog"].find_elements("css selector", "circle.point")
        for svg in drawn.values():
            assert svg.get_attribute("role") == "img" and "last hour" in svg.get_attribute("aria-label")
    assert int(console.find("article[data-connector='klaviyo'] [data-field=errors]").text) >= 1
    assert chart(console, "errors", "ometria").get_attribute("data-empty") == "true"
    assert "no data in the last hour" in chart(console, "errors", "ometria").text

    # the refresh replaces the charts in place: more calls appear without a page load
    before = summed(chart(console, "calls", "ometria"), "rect.bar")
    console.driver.execute_script("window.chartsMarker = 'same page'")
    assert stack.post([event(90, "referrer.enrolled", referrer={"email": "zed@example.com", "first_name": "Zed"})],
                      msg_id="more").status_code == 202
    console.wait(lambda: summed(chart(console, "calls", "ometria"), "rect.bar") > before, "the charts to refresh")
    assert console.driver.execute_script("return window.chartsMarker") == "same page"
    console.screenshot("overview-charts")

    # a contact's timeline, drawn: a mark per push in its connector's lane, one per event received
    console.get("/contacts/cleo@example.com")
    svg = console.find("svg#timeline-chart")
    rows = console.finds("#timeline li")
    marks = svg.find_elements("css selector", ".mark")
    for connector in CONNECTORS:
        pushes = [r for r in rows if r.get_attribute("data-kind") == "push" and r.get_attribute("data-connector") == connector]
        drawn = [m for m in marks if m.get_attribute("data-lane") == connector and m.get_attribute("data-outcome") == "landed"]
        assert pushes and len(drawn) == len(pushes)
        tips = [m.find_element("css selector", "title").get_attribute("textContent") for m in drawn]
        assert all(t.startswith(f"pushed to {connector} at ") for t in tips)
    assert len([m for m in marks if m.get_attribute("data-lane") == "events"]) == \
        len([r for r in rows if r.get_attribute("data-kind") == "event"])
    klaviyo_tips = [m.find_element("css selector", "title").get_attribute("textContent") for m in marks
                    if m.get_attribute("data-lane") == "klaviyo"]
    assert any("joined: RfMkt1 (" in t for t in klaviyo_tips)             # why Cleo is in that list
    console.screenshot("contact-timeline")
