"""The benchmark's derived figures, without a stack: what the declared limits allow at a rate, the
comparison of two runs, the Redis key families, the option parsing and the plain progress lines."""
from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import compare, freshness, memory
from benchmarks.progress import Throttled
from benchmarks.runner import VENDORS, cpu_per_event
from connectors import CONNECTORS
from hub.core import keys, timeline
from hub.core.progress import Progress

ROOT = Path(__file__).resolve().parents[2]


def ometria_ceiling(per_event: dict[str, float]) -> float:
    """Events/s at which Ometria's declared push limit, in records of max_batch, is used up."""
    (count, period), = CONNECTORS["ometria"].rate_limits["push"].obeyed
    return count / period * CONNECTORS["ometria"].max_batch / per_event["contacts"]


def test_the_limits_verdict_follows_the_declaration() -> None:
    events = freshness.slice_for(200, seed=42)
    per_event = freshness.shape(events)
    assert 1 < per_event["contacts"] < 2, "an event changes the referrer, and the friend when there is one"
    ceiling = ometria_ceiling(per_event)
    below = freshness.verdict("ometria", 0.9 * ceiling, per_event)
    above = freshness.verdict("ometria", 1.1 * ceiling, per_event)
    assert below["can_meet"] is True and below["p95_lower_bound_s"] < freshness.TARGET_P95_S
    assert above["can_meet"] is False and above["bucket"] == "push"
    assert above["need_per_s"] > above["allowed_per_s"]
    assert "8 calls per 1 s" in above["why"], above["why"]


def test_a_connector_without_a_short_window_limit_is_never_ruled_out() -> None:
    per_event = freshness.shape(freshness.slice_for(20, seed=1))
    assert CONNECTORS["salesforce"].rate_limits["api"].obeyed == ()
    assert freshness.verdict("salesforce", 100_000, per_event)["can_meet"] is True


def test_a_tighter_declaration_rules_out_a_rate_it_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The verdict reads the connector's declaration, nothing of its own: halve Splio's contacts
    limit and a rate just under the old ceiling is ruled out."""
    per_event = freshness.shape(freshness.slice_for(200, seed=3))
    (count, period), = CONNECTORS["splio"].rate_limits["contacts"].obeyed
    rate = 0.9 * count / period * CONNECTORS["splio"].max_batch / per_event["contacts"]
    assert freshness.verdict("splio", rate, per_event)["can_meet"] is True
    monkeypatch.setattr(freshness, "obeyed", lambda vendor, bucket: ((count // 2, period),))
    assert freshness.verdict("splio", rate, per_event)["can_meet"] is False


def test_the_slice_as_sent_counts_each_contact_once_a_flush() -> None:
    """One person's events within a flush are one contact to push; steady traffic assumes none repeat."""
    events = freshness.slice_for(200, seed=5)
    per_event = freshness.shape(events)
    assert freshness.as_sent(events, 200)(2.0)["contacts"] <= freshness.steady(per_event, 200)(2.0)["contacts"]
    same = [{"id": f"e{i}", "type": "referral.invited", "referrer": {"email": "a@x.example"}} for i in range(100)]
    assert freshness.as_sent(same, 50)(1.0)["contacts"] == 1
    assert freshness.steady(freshness.shape(same), 50)(1.0)["contacts"] == 50


def test_freshness_rates_are_parsed_and_bad_ones_named() -> None:
    assert freshness.parse_rates("1000, 20,70,20") == (20, 70, 1000)
    for bad in ("20,fast", "0", "-5", ","):
        with pytest.raises(ValueError, match="--freshness-rates"):
            freshness.parse_rates(bad)


def test_cpu_per_event_covers_http_redis_and_workers_only() -> None:
    before = {"hub": 1.0, "redis": 2.0, "worker": 3.0, "sandbox": 0.5}
    after = {"hub": 2.0, "redis": 4.0, "worker": 7.0, "sandbox": 9.5, "bench (this process)": 20.0}
    figures = cpu_per_event(before, after, accepted=1000, sent=1050)
    assert (figures["http"], figures["redis"], figures["workers"]) == (1000, 2000, 4000)
    assert figures["total"] == 7000 and figures["accepted_events"] == 1000


def test_key_families_follow_the_hub_key_names() -> None:
    email = "ref000001@bench.example"
    assert memory.family(keys.contact(email))[:2] == ("contact hashes", True)
    assert memory.family(keys.contact(email) + ":friends")[0] == "contact links (friends, credits, orders)"
    assert memory.family(keys.contact(email) + ":log") == ("event log index per contact", False, memory.LINEAR)
    assert memory.family(keys.dirty("splio"))[:2] == ("dirty sets", True)
    assert memory.family(keys.SEEN.format("e1"))[:2] == ("dedupe markers", True)
    assert memory.family(keys.PUSHED.format("klaviyo"))[:2] == ("pushed fingerprints", True)
    assert memory.family(keys.EVENTS)[:2] == ("event log stream", False)
    assert memory.family(timeline.TIMELINE.format(email))[:2] == ("timelines", False)
    assert memory.family(timeline.SHAPES) == ("timeline shapes", False, memory.FIXED)    # shared, not per person
    assert memory.family(timeline.INDEX)[:2] == ("contact index", False)
    assert memory.family("hub:somethingnew:1")[0] == "other hub:somethingnew:"


def report(events_per_s: int, ratio: float, calls: dict[str, tuple[int, int]], **more: object) -> dict[str, object]:
    return {"referrers": 10_000, "ingest_batch": {"events_per_s": events_per_s}, "drain": {"ratio": ratio},
            "calls": {v: {"total": t, "floor": f} for v, (t, f) in calls.items()}, **more}


def test_compare_shows_each_figure_beside_the_other_runs() -> None:
    new = report(4000, 1.5, {"ometria": (330, 300)}, referrers=100_000,
                 cpu_per_event_us={"total": 900, "redis": 200}, redis_memory={"used_memory_per_referrer": 2100.0})
    old = report(5000, 1.2, {"ometria": (300, 300)})          # an older report: no CPU or memory figures
    rows = compare.compare(new, old, "r10000.json")["figures"]
    assert rows["Ingest, batch mode"] == {"this": 4000, "other": 5000, "change": "-20.0%", "unit": " events/s",
                                          "better": "higher"}
    assert rows["Drain at the vendors / floor"]["change"] == "+0.30x"
    assert rows["Calls vs floor: ometria"]["this"] == 1.1 and rows["Calls vs floor: ometria"]["change"] == "+0.10x"
    assert rows["Redis used_memory per referrer"]["other"] is None
    assert rows["Redis used_memory per referrer"]["change"] == "n/a"
    text = compare.table({**new, "compared_with": compare.compare(new, old, "r10000.json")})
    assert "| Ingest, batch mode | 4,000 events/s | 5,000 events/s | -20.0% (higher is better) |" in text
    assert "R = 100,000" in text and "(R = 10,000)" in text


def test_compare_refuses_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "y.json").write_text("{not json")
    for path, reason in ((tmp_path / "x.json", "not a benchmark report"), (tmp_path / "y.json", "not JSON"),
                         (tmp_path / "missing.json", "cannot read")):
        done = subprocess.run([sys.executable, "-m", "benchmarks", "--compare", str(path)], cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "--compare" in done.stderr and reason in done.stderr and "Traceback" not in done.stderr


def test_plain_progress_lines_say_done_of_total_and_end_once() -> None:
    out = io.StringIO()
    sink = Throttled(every=0.0)
    sink.lines.stream = out
    progress = Progress("ingest", 300, "events", [sink])
    progress.start(300)
    for _ in range(3):
        progress.step(100)
    progress.step(0)            # nothing new: no line
    lines = out.getvalue().splitlines()
    assert lines[0] == "ingest: 300 events to do"
    assert [line.split(" events")[0] for line in lines[1:]] == ["ingest: 100/300", "ingest: 200/300", "ingest: 300/300"]
    assert "(100%)" in lines[-1]


def test_every_vendor_has_a_call_model() -> None:
    for vendor in VENDORS:
        calls = freshness.flush_calls(vendor, 500, 40, 40)
        assert calls and set(calls) <= set(CONNECTORS[vendor].rate_limits), vendor


def test_splio_is_compared_against_its_deadline_floor() -> None:
    # Splio has no bulk update: its calls are judged against the updates the deadline forces, as
    # in the report's floor table, not against the plain floor of one create per 1,000 contacts.
    new = report(4000, 1.5, {"splio": (1669, 301)})
    new["calls"]["splio"]["deadline_floor"] = 208_025                          # type: ignore[index]
    old = report(5000, 1.2, {"splio": (31, 31)})
    old["calls"]["splio"]["deadline_floor"] = 31                               # type: ignore[index]
    rows = compare.compare(new, old, "r10000.json")["figures"]
    assert rows["Calls vs floor: splio"]["this"] == 0.01 and rows["Calls vs floor: splio"]["other"] == 1.0
