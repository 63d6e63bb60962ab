"""A smoke run of the standard benchmark at R = 200: the whole stack as processes, correctness only.

No timing is asserted here: speed is what `make bench` reports, never a test that can flake.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import charts, expected, report, workload
from benchmarks.runner import Options, VENDORS, run
from tests.benchmarks import png


def test_workload_is_seeded_and_shaped_as_benchmark_md_says() -> None:
    first, again = workload.build(200, seed=7), workload.build(200, seed=7)
    assert first.stream == again.stream
    assert first.story_events == 9 * 200
    ids = [e["id"] for e in first.stream]
    assert len(ids) > len(set(ids)), "client retries reuse event ids"
    again_ids = [i for i in ids if i.endswith("-again")]
    assert again_ids, "some conversions are reported again with a new id"
    assert any(e["order"]["currency"] == "EUR" for e in first.stream if e["type"] == "friend.converted")


def test_expected_state_ignores_duplicates_and_order() -> None:
    events = workload.build(30, seed=3).stream
    ordered = expected.model_of(events)
    shuffled = expected.model_of(list(reversed(events)) + events[:50])
    for email in ordered.people:
        assert ordered.state(email) == shuffled.state(email)
    referrer = ordered.state("ref000009@bench.example")
    assert (referrer["invites_sent"], referrer["friends_registered"], referrer["friends_converted"]) == (5, 2, 1)
    assert referrer["turnover_currency"] == "EUR"


def test_comparison_catches_a_wrong_count() -> None:
    events = workload.build(5, seed=1).stream
    want = expected.expected_for(events, ["splio"])
    held = {"splio": {e: {"fields": dict(r["fields"]), "lists": sorted(r["lists"]),
                          "marketing_consent": r["consent"] if r["consent"] else None, "deleted": False}
                      for e, r in want.vendors["splio"].items()}}
    assert expected.compare(want, held)["splio"]["mismatched"] == 0
    held["splio"]["ref000001@bench.example"]["fields"]["referral_nb_potential_referred"] = 6
    assert expected.compare(want, held)["splio"]["mismatched"] == 1


def sensible_chart(path: Path) -> png.Image:
    """A real PNG of a readable size that draws something (axes, lines and bars in several colours)."""
    image = png.read(path.read_bytes())
    assert 600 <= image.width <= 2000 and 300 <= image.height <= 1500, (path.name, image.width, image.height)
    assert len(image.colours()) >= 6, f"{path.name} is nearly blank"
    return image


@pytest.mark.timeout(180)
def test_smoke_run_every_vendor_holds_the_expected_state(tmp_path: Path) -> None:
    result = run(Options(referrers=200, single=False, freshness=False, drain_timeout=90))
    assert result["correctness"]["failed_syncs"] == 0
    for vendor in VENDORS:
        assert result["correctness"][vendor]["contacts"] == 600
        assert result["correctness"][vendor]["mismatched"] == 0, result["correctness"][vendor]["examples"]
    # The drain is read at the vendors once they all hold the final state: each has a last write.
    assert not result["drain"]["timed_out"], result["drain"]
    assert set(result["drain"]["per_vendor_s"]) == set(VENDORS)
    assert all(seconds > 0 for seconds in result["drain"]["per_vendor_s"].values()), result["drain"]
    json_path, md_path = report.write(result, tmp_path)
    assert json.loads(json_path.read_text())["referrers"] == 200 and md_path.exists()
    for name in ("backlog", "calls"):       # the smoke run measures no freshness
        sensible_chart(tmp_path / f"{name}.png")
    assert not (tmp_path / "freshness.png").exists()


def test_charts_of_a_full_report_and_of_missing_figures(tmp_path: Path) -> None:
    """The committed R = 10,000 report (freshness included) draws all three; a report without a
    section skips its chart instead of failing."""
    result = json.loads((report.REPORTS / "latest.json").read_text())
    written = charts.draw(result, tmp_path / "full")
    assert [p.name for p in written] == ["backlog.png", "calls.png", "freshness.png"]
    for path in written:
        sensible_chart(path)
    partial = {"referrers": 5, "drain": {"backlog_trace": "not a list"}, "calls": {"splio": {"total": 3}}}
    assert [p.name for p in charts.draw(partial, tmp_path / "partial")] == ["calls.png"]


def test_the_png_reader_is_not_fooled() -> None:
    blob = (report.REPORTS.parent.parent / "docs" / "benchmark" / "calls.png").read_bytes()
    png.read(blob)
    broken = bytearray(blob)
    broken[40] ^= 0xFF          # inside IHDR's body or the first chunk after it: a CRC no longer matches
    with pytest.raises(AssertionError):
        png.read(bytes(broken))
