"""The ops journey in a real browser, against a real hub, worker pool and sandbox: a vendor
failing until failed syncs appear grouped and counted, the fault cleared, the selection retried
until the contacts land and the list is empty, a pause and resume with a reason, and a contact's
timeline showing each push."""
from __future__ import annotations

from typing import Any

import pytest

from tests.story import story

pytestmark = pytest.mark.e2e

PEOPLE = {"anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com", "eve@example.com"}


def api_failed(stack: Any, connector: str) -> list[dict[str, Any]]:
    return stack.api("GET", f"/v1/failed?connector={connector}", token="ops-token").json()["failed"]


def settled_failures(stack: Any) -> dict[str, list[dict[str, Any]]] | None:
    """Each vendor's failed syncs once every contact is in one there and nothing is left to try."""
    out = {}
    for vendor in ("klaviyo", "ometria"):
        items = api_failed(stack, vendor)
        named = {c for item in items for c in item["contacts"]}
        status = stack.api("GET", f"/v1/connectors/{vendor}/pause", token="ops-token").json()
        # klaviyo refused one call: the contacts of that batch failed, any others landed
        landed = {p for p in PEOPLE - named if stack.holds(vendor, p)} if vendor == "klaviyo" else set()
        if not items or named | landed != PEOPLE or status["dirty"] or status["backing_off_until"]:
            return None
        out[vendor] = items
    return out


def test_ops_journey(console) -> None:  # type: ignore[no-untyped-def]
    stack = console.stack
    # 1. Ometria answers 500 to everything: its pushes exhaust the (short) retry schedule. Klaviyo
    # refuses its first call as invalid (a vendor validation error, never retried).
    stack.fault("ometria", 500)
    stack.fault("klaviyo", 400, count=1, body={"errors": [{"status": "400", "code": "invalid", "detail": "refused"}]})
    assert stack.post(story()).status_code == 202
    failures = stack.wait_for(lambda: settled_failures(stack), what="the failed syncs", timeout=120)
    every = failures["klaviyo"] + failures["ometria"]

    console.sign_in("ops-token", "/failed")
    assert console.driver.current_url.endswith("/console/failed")
    counts = {(row.get_attribute("data-connector"), row.get_attribute("data-class")):
              row.find_element("css selector", "[data-field=count]").text for row in console.finds("#groups tbody tr")}
    assert counts == {("klaviyo", "validation"): str(len(failures["klaviyo"])),
                      ("ometria", "transient"): str(len(failures["ometria"]))}
    rows = console.finds("#failed-list tbody tr")
    assert sorted(r.get_attribute("data-id") for r in rows) == sorted(f["id"] for f in every)
    assert "HTTP 500" in console.find("#failed-list").text and "HTTP 400" in console.find("#failed-list").text
    assert f"{len(every)} matching" in console.find("#matching").text
    # the filter narrows to one group
    console.get("/failed?connector=ometria&class=transient")
    assert sorted(r.get_attribute("data-id") for r in console.finds("#failed-list tbody tr")) == \
        sorted(f["id"] for f in failures["ometria"])
    console.get("/failed")
    console.screenshot("failed-syncs")

    # the overview counts the same, with the errors of the last hour
    console.get("/overview")
    for vendor, calls in (("ometria", 3), ("klaviyo", 1)):     # ometria: every attempt of each batch
        card = console.find(f"article[data-connector='{vendor}']")
        assert card.find_element("css selector", "[data-field=failed]").text == str(len(failures[vendor]))
        assert int(card.find_element("css selector", "[data-field=errors]").text) >= calls * len(failures[vendor])
    console.screenshot("overview")
    console.screenshot("overview-phone", width=390)

    # 2. the fault is cleared; 3. the selection is retried, after a confirmation that counts it
    stack.clear_faults("ometria")
    console.get("/failed")
    console.find("#select-all").click()
    assert all(box.is_selected() for box in console.finds("input[name=ids]"))
    console.submit("#retry-selected")
    assert console.find("h1").text == f"Retry {len(every)} failed syncs?"
    console.screenshot("failed-syncs-confirm")
    console.submit("#confirm")
    assert f"retried {len(every)} failed sync(s)" in console.text()

    # 4. the contacts land with their current state, and the list empties
    for vendor in ("klaviyo", "ometria"):
        stack.wait_for(lambda v=vendor: all(stack.holds(v, p) for p in PEOPLE), what=f"{vendor} to hold everyone")

    def emptied() -> bool:
        console.get("/failed")
        return bool(console.finds("#no-failed"))
    console.wait(emptied, "the failed-syncs list to empty")
    assert api_failed(stack, "ometria") == [] and api_failed(stack, "klaviyo") == []
    assert stack.holds("ometria", "anna@example.com")["fields"]["friends_invited"] == 2

    # 5. pause and resume with a reason everyone sees
    console.get("/overview")
    console.find("#reason-klaviyo").send_keys("Klaviyo maintenance window")
    console.submit("#pause-klaviyo")
    reason = console.find("article[data-connector='klaviyo'] [data-field=pause-reason]").text
    assert "Klaviyo maintenance window" in reason
    status = stack.api("GET", "/v1/connectors/klaviyo/pause", token="ops-token").json()
    assert status["paused"]["reason"] == "Klaviyo maintenance window"
    assert status["paused"]["by"].startswith("token:")          # the bare ops token's name
    assert status["paused"]["by"] in reason
    console.submit("#resume-klaviyo")
    assert not console.finds("article[data-connector='klaviyo'] [data-field=pause-reason]")
    assert stack.api("GET", "/v1/connectors/klaviyo/pause", token="ops-token").json()["paused"] is None
    # the overview refreshes by itself: a pause made elsewhere (the API) appears without a reload
    marker = console.find("h1")
    stack.api("POST", "/v1/connectors/ometria/pause", {"reason": "paused over the API"}, token="ops-token")
    console.wait(lambda: "paused over the API" in console.find("article[data-connector='ometria']").text,
                 "the overview to refresh", timeout=45)
    assert marker.is_displayed()                  # the same page, not a reload (a stale element would raise)
    stack.api("POST", "/v1/connectors/ometria/resume", token="ops-token")

    # 6. a contact's timeline shows each push, and each failure before it
    console.get("/contacts")
    console.find("#lookup-email").send_keys("cleo@example.com")
    console.submit("form[role=search] button")
    assert console.find("h1").text == "cleo@example.com"
    entries = console.finds("#timeline li")
    kinds = [(e.get_attribute("data-kind"), e.get_attribute("data-connector")) for e in entries]
    for vendor in ("klaviyo", "ometria"):
        assert ("push", vendor) in kinds
        if any("cleo@example.com" in f["contacts"] for f in failures[vendor]):
            # newest first: the push after the retry came after the failure
            assert kinds.index(("push", vendor)) < kinds.index(("failed", vendor))
    assert max(i for i, k in enumerate(kinds) if k[0] == "push") < min(i for i, k in enumerate(kinds) if k[0] == "event")
    klaviyo_push = next(e for e in entries if e.get_attribute("data-kind") == "push"
                        and e.get_attribute("data-connector") == "klaviyo")
    # why is Cleo in these lists: the push that joined them, with the mapping version
    assert "joined list RfMkt1" in klaviyo_push.text and "mapping version 0" in klaviyo_push.text
    assert "marketing consent given" in klaviyo_push.text
    assert "After event friend.converted" in klaviyo_push.text     # the story's last event for Cleo
    assert console.find("#per-connector tr[data-connector='ometria'] [data-field=last]").text.endswith("landed")
    assert not console.finds("#erase")               # erasure is not offered to ops
    console.screenshot("contact")
    console.get("/contacts")
    console.screenshot("contacts")
    console.get("/webhooks")
    console.screenshot("webhooks")
