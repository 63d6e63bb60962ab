"""The benchmark's expected state stays independent of the hub, yet describes the shipped mappings.

`benchmarks.expected.DEFAULTS` is a hand-written copy of mappings/defaults/: these tests read the
JSON files themselves and check every field, list and consent rule against the copy, so a change
to a default mapping that the copy does not follow fails here instead of silently passing the
benchmark's comparison.
"""
from __future__ import annotations

import ast
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from benchmarks import expected, workload
from connectors.salesforce import PLACEHOLDER_LAST_NAME

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS_DIR = ROOT / "mappings" / "defaults"


def shipped(vendor: str) -> dict[str, Any]:
    return json.loads((DEFAULTS_DIR / f"{vendor}.json").read_text())


def conversion(rule: dict[str, Any]) -> str:
    """A mapping rule's transform in the copy's words."""
    name = rule.get("transform") or ""
    if name == "decimal":
        return f"decimal:{rule.get('places', 2)}"
    if name == "date":
        return f"date:{rule.get('format', 'iso')}"
    return name


def test_the_copy_covers_every_shipped_default_mapping() -> None:
    assert set(expected.DEFAULTS) == {p.stem for p in DEFAULTS_DIR.glob("*.json")}


def test_the_copy_matches_each_default_mapping_field_by_field() -> None:
    for vendor, spec in expected.DEFAULTS.items():
        mapping = shipped(vendor)
        assert spec["identity"] == (mapping["identity"]["field"], mapping["identity"]["source"]), vendor
        assert spec["fields"] == [(r["target"], r["source"], conversion(r)) for r in mapping["fields"]], vendor
        assert not any("default" in r or "as" in r for r in mapping["fields"]), \
            f"{vendor}: a default or output style the copy does not model"
        assert spec["lists"] == {r["id"]: (r["kind"], r["when"]) for r in mapping.get("lists", [])}, vendor
        assert spec["consent"] == mapping.get("consent", True), vendor


def test_the_vendor_filler_is_what_the_salesforce_connector_writes() -> None:
    assert expected.VENDOR_FILLERS[("salesforce", "LastName")] == (PLACEHOLDER_LAST_NAME,)


def test_the_expected_side_imports_nothing_of_the_hub() -> None:
    """No mappings, hub or connectors code computes what the vendors should hold."""
    tree = ast.parse((ROOT / "benchmarks" / "expected.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"mappings", "hub", "connectors"}, imported


def test_the_expected_view_of_a_converted_friend_and_their_referrer() -> None:
    """Worked by hand from one story: the values each vendor should hold, in each vendor's form."""
    events = workload.build(12, seed=5).stream
    model = expected.model_of(events)
    referrer = "ref000003@bench.example"
    friend = next(e for e, p in model.people.items()
                  if p.converted_at and p.referred_by and p.referred_by[1] == referrer)
    state = model.state(friend)
    order = next(e["order"] for e in events if e["type"] == "friend.converted" and e["friend"]["email"] == friend)
    emarsys = expected.vendor_view("emarsys", model.state(referrer))
    assert emarsys["fields"]["12001"] == 5 and emarsys["fields"]["12003"] == 1
    assert emarsys["fields"]["12005"] == Decimal(str(order["total"])).quantize(Decimal("0.01"))
    assert emarsys["fields"]["12009"] == order["currency"].upper()
    assert emarsys["fields"]["12010"] == model.state(referrer)["last_activity_at"][:10]
    assert emarsys["lists"] == set() and emarsys["consent"] is None
    splio = expected.vendor_view("splio", state)
    assert splio["lists"] == {"25", "26"} and splio["consent"] is True
    assert splio["fields"]["referral_last_activity"] == state["last_activity_at"][:19].replace("T", " ")
    assert splio["fields"]["referral_referred_by"] == referrer
    ometria = expected.vendor_view("ometria", state)
    assert ometria["identity"] == {"id": expected.contact_id(friend)}
    klaviyo = expected.vendor_view("klaviyo", state)
    assert klaviyo["fields"]["referral_converted_at"] == state["converted_at"][:19] + "Z"
    assert "referral_friends_invited" not in klaviyo["fields"]       # a friend has no referrer counters
    other = next(e for e, p in model.people.items() if p.is_friend and not p.converted_at
                 and p.referred_by and p.referred_by[1] == referrer)
    salesforce = expected.vendor_view("salesforce", model.state(other))
    assert salesforce["lists"] == set() and salesforce["consent"] is False
