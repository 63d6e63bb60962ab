"""One referral story, all five platforms, each through its own emulated API; one vendor down
must not hold the others back."""
from __future__ import annotations


import pytest

from sandbox import DEMO_SETTINGS
from tests.story import messy, story

pytestmark = pytest.mark.e2e

# Where each platform's default mapping puts the numbers, and its two lists (marketing, customers).
NUMBERS = {
    "klaviyo": ("referral_friends_invited", "referral_friends_signed_up", "referral_friends_converted", "referral_turnover"),
    "emarsys": ("12001", "12002", "12003", "12005"),
    "salesforce": ("Referral_Friends_Invited__c", "Referral_Friends_Registered__c", "Referral_Friends_Converted__c", "Referral_Turnover__c"),
    "ometria": ("friends_invited", "friends_registered", "friends_converted", "referral_turnover"),
    "splio": ("referral_nb_potential_referred", "referral_nb_converted_prospects", "referral_nb_converted_customers", "referral_turnover_generated"),
}
LISTS = {"klaviyo": ("RfMkt1", "RfTxn1"), "emarsys": ("740001", "740002"),
         "salesforce": ("701Rf000000Mkt1AAA", "701Rf000000Txn1AAA"), "ometria": ("8400", "8401"), "splio": ("25", "26")}
# invites, friends signed up, friends converted, turnover; then (in marketing list, in customers list, consent)
REFERRERS = {"anna@example.com": (2, 2, 1, 59.9), "ben@example.com": (1, 1, 1, 120.0)}
FRIENDS = {"cleo@example.com": (True, True, True), "dan@example.com": (False, False, None),
           "eve@example.com": (True, True, True)}


def connectors() -> dict[str, dict[str, str]]:
    return {vendor: {k.upper(): v for k, v in settings.items()} for vendor, settings in DEMO_SETTINGS.items()}


def lands(stack, vendor: str) -> bool:  # type: ignore[no-untyped-def]
    """The vendor holds exactly the story's numbers, lists and consent."""
    for email, numbers in REFERRERS.items():
        held = stack.holds(vendor, email)
        if held is None:
            return False
        got = tuple(float(held["fields"].get(f, "nan")) for f in NUMBERS[vendor])
        if got != tuple(float(n) for n in numbers) or held["lists"]:
            return False
    marketing, customers = LISTS[vendor]
    for email, (in_marketing, in_customers, consent) in FRIENDS.items():
        held = stack.holds(vendor, email)
        if held is None or held["deleted"]:
            return False
        if (marketing in held["lists"], customers in held["lists"], held["marketing_consent"]) != (in_marketing, in_customers, consent):
            return False
    return True


def test_every_platform_ends_with_the_story(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(connectors=connectors())
    events = messy(story())
    for start in range(0, len(events), 5):
        assert stack.post(events[start:start + 5], msg_id=f"b{start}").status_code == 202
    for vendor in NUMBERS:
        stack.wait_for(lambda v=vendor: lands(stack, v), what=f"{vendor} to hold the story")


def test_one_vendor_down_does_not_delay_the_others(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(connectors=connectors(), env={"HUB_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1"})
    stack.fault("emarsys", 503)
    assert stack.post(story(), msg_id="all").status_code == 202
    for vendor in ("klaviyo", "salesforce", "ometria", "splio"):
        stack.wait_for(lambda v=vendor: lands(stack, v), what=f"{vendor} to land while Emarsys is down")
    stack.wait_for(lambda: stack.stats().get("emarsys total", 0) >= 2, what="the hub to try Emarsys, and again")
    assert stack.holds("emarsys", "anna@example.com") is None
    stack.clear_faults("emarsys")
    stack.wait_for(lambda: lands(stack, "emarsys"), what="Emarsys to catch up once it answers again")
