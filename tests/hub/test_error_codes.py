"""A 404 says what is missing: `unknown_<thing>` names the thing the path or body names, `not_found`
is left for a URL no route matches (CONTRIBUTING.md, Naming; docs/event-api.md, Error codes)."""
from __future__ import annotations

from typing import Any

import pytest

OPS = {"Authorization": "Bearer ops-token"}
ADMIN = {"Authorization": "Bearer admin-token"}
CASES = [
    ("get", "/v1/contacts/nobody@example.com", OPS, None, "unknown_contact"),
    ("post", "/v1/contacts/nobody@example.com/erase", ADMIN, None, "unknown_contact"),
    ("get", "/v1/connectors/klaviyo/pause", OPS, None, "unknown_connector"),
    ("post", "/v1/connectors/klaviyo/audit", OPS, {}, "unknown_connector"),
    ("get", "/v1/failed?connector=klaviyo", OPS, None, "unknown_connector"),
    ("post", "/v1/failed/retry", OPS, {"connector": "klaviyo"}, "unknown_connector"),
    ("get", "/v1/failed/job_that_never_was", OPS, None, "unknown_failed_sync"),
    ("post", "/v1/failed/job_that_never_was/retry", OPS, None, "unknown_failed_sync"),
    ("delete", "/v1/failed/job_that_never_was", OPS, None, "unknown_failed_sync"),
    ("get", "/v1/mappings/nope", ADMIN, None, "unknown_connector"),
    ("get", "/v1/mappings/klaviyo/versions/99", ADMIN, None, "unknown_version"),
    ("get", "/v1/endpoints/ep_nope", ADMIN, None, "unknown_endpoint"),
    ("post", "/v1/webhooks/nope", {}, {}, "unknown_source"),
    ("get", "/v1/no/such/route", OPS, None, "not_found"),
]


@pytest.mark.parametrize(("method", "url", "headers", "body", "code"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES])
def test_a_404_names_what_is_missing(make_app, method: str, url: str, headers: dict[str, str], body: Any,
                                     code: str) -> None:  # type: ignore[no-untyped-def]
    response = make_app().test_client().open(url, method=method.upper(), headers=headers, json=body)
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["error"]["code"] == code


def test_view_functions_are_named_for_what_they_do(make_app) -> None:  # type: ignore[no-untyped-def]
    """No `_route` / `_view` suffixes: the endpoint (blueprint.function) is the operationId."""
    names = [endpoint for endpoint in make_app().view_functions if endpoint != "static"]
    assert len(names) > 40
    assert [n for n in names if n.endswith(("_route", "_view"))] == []
