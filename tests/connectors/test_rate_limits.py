"""Every rate limit is declared once per connector, and the sandbox's own copy of the vendors'
published figures agrees with what the connectors declare as published."""
from __future__ import annotations

import pytest

from benchmarks import floor
from connectors import CONNECTORS
from connectors.ratelimit import Budget
from sandbox import emarsys as sb_emarsys
from sandbox import klaviyo as sb_klaviyo
from sandbox import ometria as sb_ometria
from sandbox import salesforce as sb_salesforce
from sandbox import splio as sb_splio

# The sandbox's buckets, in its own shapes, by connector bucket. Klaviyo's connector keeps
# subscribe and unsubscribe jobs in one budget; the sandbox counts each operation apart.
SANDBOX = {
    "klaviyo": {bucket: [sb_klaviyo.LIMITS[bucket]] for bucket in sb_klaviyo.LIMITS
                if bucket not in ("subscribe", "unsubscribe")}
    | {"subscriptions": [sb_klaviyo.LIMITS["subscribe"], sb_klaviyo.LIMITS["unsubscribe"]]},
    "emarsys": {"api": [sb_emarsys.LIMIT]},
    "ometria": {bucket: [limits] for bucket, limits in sb_ometria.LIMITS.items()},
    "splio": {bucket: [((count, 1.0),)] for bucket, count in sb_splio.LIMITS.items()},
    # Salesforce has no short-window limit; the sandbox enforces only the org's 24 h allocation.
    "salesforce": {"api": [()]},
}


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_the_published_limits_match_the_sandboxs_copy(name: str) -> None:
    declared = CONNECTORS[name].rate_limits
    assert set(declared) == set(SANDBOX[name]), name
    for bucket, copies in SANDBOX[name].items():
        for published in copies:
            assert declared[bucket].published == tuple(published), (name, bucket)
        assert declared[bucket].source, (name, bucket)


def test_salesforce_sandbox_enforces_only_a_daily_allocation() -> None:
    assert sb_salesforce.DAILY_REQUESTS > 0


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_every_call_is_limited_by_what_its_bucket_declares(name: str) -> None:
    connector = CONNECTORS[name]({})
    for bucket, budget in connector.rate_limits.items():
        for count, period in budget.obeyed:
            assert 0 < count and 0 < period
        if budget.margin is not None:
            assert budget.reason, (name, bucket)
    for path in ("/api/profiles", "/api/profile-bulk-import-jobs", "/api/v2/contact", "/v2/push",
                 "/data/contacts/a@b.c", "/services/data/v62.0/composite/sobjects"):
        bucket, limits = connector.limits_for("POST", path)
        assert bucket in connector.rate_limits
        assert tuple(limits) == connector.rate_limits[bucket].obeyed


def test_emarsys_obeys_its_margin_and_the_floor_uses_the_same_figure() -> None:
    budget = CONNECTORS["emarsys"].rate_limits["api"]
    assert budget.published == ((1000, 60.0),) and budget.obeyed == ((190, 60.0),)
    assert CONNECTORS["emarsys"]({}).limits_for("PUT", "/api/v2/contact") == ("api", ((190, 60.0),))
    assert floor.limits("emarsys", "api") == ((190, 60.0),)
    # 400 calls under 190 a minute: the last one is two full minutes after the first.
    assert floor.span(400, floor.limits("emarsys", "api")) == 120.0


def test_a_declared_margin_must_be_below_the_published_figure_and_say_why() -> None:
    with pytest.raises(ValueError, match="reason"):
        Budget(((10, 1.0),), "doc", margin=((9, 1.0),))
    with pytest.raises(ValueError, match="not at or below"):
        Budget(((10, 1.0),), "doc", margin=((11, 1.0),), reason="why")
    with pytest.raises(ValueError, match="not at or below"):
        Budget(((10, 1.0),), "doc", margin=((10, 60.0),), reason="why")
